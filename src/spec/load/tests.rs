//! Tests of finding, merging, checking and showing definitions, on real files in temporary
//! directories.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::spec::{
    Bytes, Count, Cpus, Install, Limit, Notify, Restart, RestartPolicy, Signal, Source, Timeout,
    UnitDeps,
};

/// A scratch directory, removed when dropped, with `etc`, `run` and `lib` as a search path.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cleat-load-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
        fs::write(&path, text).expect("write file");
        path
    }

    fn mask(&self, rel: &str) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
        symlink("/dev/null", &path).expect("symlink");
        path
    }

    fn search(&self) -> SearchPath {
        SearchPath::new(["etc", "run", "lib"].map(|d| self.path(d)))
    }

    /// `rel` and drop-ins found for it, loaded.
    fn load(&self, name: &str) -> Result<Loaded, LoadError> {
        let definition = self
            .search()
            .find(&n(name))
            .expect("find")
            .expect("declared");
        definition.load()
    }

    /// The problems of loading `name`, with this directory's prefix cut off each path.
    fn problems(&self, name: &str) -> Vec<String> {
        let error = self.load(name).expect_err("problems");
        self.relative(&error)
    }

    fn relative(&self, error: &LoadError) -> Vec<String> {
        let prefix = format!("{}/", self.0.display());
        error
            .problems()
            .iter()
            .map(|p| p.to_string().replace(&prefix, ""))
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn n(name: &str) -> Name {
    name.parse().expect("valid name")
}

/// Loads `text` as `web.toml` on its own.
fn load_text(text: &str) -> Result<Loaded, LoadError> {
    let scratch = Scratch::new();
    load_file(&scratch.write("web.toml", text))
}

/// The spec of `web.toml` holding `text`.
fn spec(text: &str) -> Spec {
    match load_text(text) {
        Ok(loaded) => loaded.spec,
        Err(e) => panic!("{text:?} rejected:\n{e}"),
    }
}

/// The problems of `web.toml` holding `text`, as `web.toml:LINE:COLUMN: …`.
fn problems(text: &str) -> Vec<String> {
    let scratch = Scratch::new();
    let error = load_file(&scratch.write("web.toml", text)).expect_err("problems");
    scratch.relative(&error)
}

fn problem(text: &str) -> String {
    let mut all = problems(text);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    all.remove(0)
}

const IMAGE: &str = "image = \"nginx\"\n";

// --- Search path -------------------------------------------------------------------------------

#[test]
fn system_search_path() {
    assert_eq!(
        SearchPath::system().dirs,
        [
            PathBuf::from("/etc/cleat/containers"),
            PathBuf::from("/run/cleat/containers"),
            PathBuf::from("/usr/lib/cleat/containers"),
        ]
    );
}

#[test]
fn etc_overrides_run_overrides_usr_lib() {
    let s = Scratch::new();
    let lib = s.write("lib/web.toml", "image = \"from-lib\"\n");
    let run = s.write("run/web.toml", "image = \"from-run\"\n");
    s.write("lib/db.toml", "image = \"db-lib\"\n");
    s.write("run/db.toml", "image = \"db-run\"\n");
    s.write("lib/cache.toml", "image = \"cache-lib\"\n");
    let etc = s.write("etc/web.toml", "image = \"from-etc\"\n");

    let web = s.search().find(&n("web")).expect("find").expect("declared");
    assert_eq!(web.main, etc);
    assert_eq!(web.overridden, [run, lib]);
    assert_eq!(
        web.load().expect("load").spec.source,
        Source::Image("from-etc".into())
    );
    let image = |name| s.load(name).expect("load").spec.source;
    assert_eq!(image("db"), Source::Image("db-run".into()));
    assert_eq!(image("cache"), Source::Image("cache-lib".into()));
    assert_eq!(s.search().find(&n("nope")).expect("find"), None);
}

#[test]
fn list_names_every_declared_container_once() {
    let s = Scratch::new();
    s.write("lib/web.toml", IMAGE);
    s.write("etc/web.toml", IMAGE);
    s.write("run/db.toml", IMAGE);
    s.write("lib/a-b_c.1.toml", IMAGE);
    s.write("lib/masked.toml", IMAGE);
    s.mask("etc/masked.toml");
    s.write("lib/only-dropins.toml.d/10.toml", IMAGE);
    s.write("lib/README", "not a definition");
    s.write("lib/.hidden.toml", IMAGE);
    let bad = s.write("run/bad name.toml", IMAGE);

    let names: Vec<String> = s
        .search()
        .list()
        .expect("list")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(names, ["a-b_c.1", "db", "web"]);
    assert_eq!(
        s.search().misnamed().expect("misnamed"),
        std::slice::from_ref(&bad)
    );
    let e = load_file(&bad).expect_err("misnamed");
    assert!(e.to_string().ends_with("bad name.toml: the file name does not name a container: invalid container name \"bad name\": ' ' is not allowed (use letters, digits, '_', '.' and '-')"), "{e}");
}

#[test]
fn missing_directories_are_empty() {
    let s = Scratch::new();
    assert_eq!(s.search().list().expect("list"), []);
    assert_eq!(s.search().find(&n("web")).expect("find"), None);
}

#[test]
fn dev_null_masks_a_container_but_an_empty_file_does_not() {
    let s = Scratch::new();
    s.write("lib/web.toml", IMAGE);
    s.write("lib/web.toml.d/10.toml", "restart = \"always\"\n");
    s.mask("etc/web.toml");
    assert_eq!(s.search().find(&n("web")).expect("find"), None);

    s.write("lib/db.toml", IMAGE);
    s.write("etc/db.toml", "");
    assert_eq!(
        s.problems("db"),
        [
            "etc/db.toml: no image or rootfs: set one, such as image = \"docker.io/library/nginx:1.27\" or rootfs = \"/srv/rootfs\""
        ]
    );
}

#[test]
fn dropins_come_from_every_directory_in_file_name_order() {
    let s = Scratch::new();
    s.write("lib/web.toml", IMAGE);
    let b = s.write("etc/web.toml.d/20-b.toml", "");
    let a = s.write("lib/web.toml.d/10-a.toml", "");
    let c = s.write("run/web.toml.d/05-c.toml", "");
    let upper = s.write("lib/web.toml.d/Z.toml", "");
    s.write("lib/web.toml.d/10-a.toml.bak", "garbage");
    s.write("lib/web.toml.d/notes.txt", "garbage");
    s.write("lib/web.toml.d/.hidden.toml", "garbage");
    fs::create_dir_all(s.path("lib/web.toml.d/dir.toml")).expect("mkdir");

    let web = s.search().find(&n("web")).expect("find").expect("declared");
    // Bytewise: digits, then upper case.
    assert_eq!(web.dropins, [c, a, b, upper]);
    assert_eq!(web.files()[0], s.path("lib/web.toml"));
    assert_eq!(web.overridden, Vec::<PathBuf>::new());
}

#[test]
fn a_dropin_name_is_taken_from_the_first_directory_or_masked_there() {
    let s = Scratch::new();
    s.write("lib/web.toml", IMAGE);
    let lib_env = s.write(
        "lib/web.toml.d/10-env.toml",
        "env.A = \"lib\"\nenv.B = \"lib\"\n",
    );
    let etc_env = s.write("etc/web.toml.d/10-env.toml", "env.A = \"etc\"\n");
    let lib_restart = s.write("lib/web.toml.d/20-restart.toml", "restart = \"always\"\n");
    s.mask("run/web.toml.d/20-restart.toml");

    let web = s.search().find(&n("web")).expect("find").expect("declared");
    assert_eq!(web.dropins, [etc_env]);
    assert_eq!(web.overridden, [lib_env, lib_restart]);
    let spec = web.load().expect("load").spec;
    assert_eq!(spec.env, BTreeMap::from([("A".into(), "etc".into())]));
    assert_eq!(spec.restart, None);
}

#[test]
fn dropins_without_a_main_file_declare_nothing() {
    let s = Scratch::new();
    s.write("etc/web.toml.d/10.toml", IMAGE);
    assert_eq!(s.search().find(&n("web")).expect("find"), None);
    assert_eq!(s.search().list().expect("list"), []);
}

// --- Merging -----------------------------------------------------------------------------------

/// A main file and two drop-ins that exercise every merge rule.
fn merge_fixture(s: &Scratch) {
    s.write(
        "lib/web.toml",
        "image = \"nginx:1.26\"\ncommand = [\"nginx\", \"-g\", \"daemon off;\"]\n\
         entrypoint = [\"/init\"]\nrestart = \"on-failure\"\n\n[env]\nA = \"1\"\nB = \"2\"\n\n\
         [unit]\nafter = [\"a.service\"]\nwants = [\"w.service\"]\n",
    );
    s.write(
        "etc/web.toml.d/10-override.toml",
        "image = \"nginx:1.27\"\nentrypoint = []\n\n[env]\nB = \"two\"\nC = \"3\"\n\n\
         [unit]\nafter = [\"b.service\", \"c.service\"]\n",
    );
    s.write(
        "run/web.toml.d/20-command.toml",
        "command = [\"nginx\", \"-T\"]\nenv.D = \"4\"\n",
    );
}

#[test]
fn tables_merge_scalars_and_arrays_replace_empty_arrays_reset() {
    let s = Scratch::new();
    merge_fixture(&s);
    let Loaded { spec, merged } = s.load("web").expect("load");
    assert_eq!(spec.source, Source::Image("nginx:1.27".into()));
    assert_eq!(spec.entrypoint, Some(vec![]));
    assert_eq!(spec.command, Some(vec!["nginx".into(), "-T".into()]));
    assert_eq!(
        spec.restart,
        Some(RestartPolicy {
            restart: Restart::OnFailure,
            max_retries: None
        })
    );
    let env: Vec<(&str, &str)> = spec
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, [("A", "1"), ("B", "two"), ("C", "3"), ("D", "4")]);
    assert_eq!(spec.unit.after, ["b.service", "c.service"]);
    assert_eq!(spec.unit.wants, ["w.service"]);

    let origin = |key: &[&str]| {
        let o = merged.origin(key).expect("origin");
        format!(
            "{}:{}:{}",
            o.file.strip_prefix(&s.0).expect("in scratch").display(),
            o.line,
            o.column
        )
    };
    assert_eq!(origin(&["image"]), "etc/web.toml.d/10-override.toml:1:9");
    assert_eq!(origin(&["restart"]), "lib/web.toml:4:11");
    assert_eq!(
        origin(&["entrypoint"]),
        "etc/web.toml.d/10-override.toml:2:14"
    );
    assert_eq!(origin(&["command"]), "run/web.toml.d/20-command.toml:1:11");
    assert_eq!(origin(&["env", "A"]), "lib/web.toml:7:5");
    assert_eq!(origin(&["env", "B"]), "etc/web.toml.d/10-override.toml:5:5");
    assert_eq!(origin(&["env", "D"]), "run/web.toml.d/20-command.toml:2:9");
    assert_eq!(
        origin(&["unit", "after"]),
        "etc/web.toml.d/10-override.toml:9:9"
    );
    assert_eq!(origin(&["unit", "wants"]), "lib/web.toml:12:9");
    assert_eq!(merged.origin(&["env", "nope"]), None);
    assert_eq!(merged.origin(&["image", "x"]), None);
}

// --- Every key ---------------------------------------------------------------------------------

#[test]
fn every_key() {
    let text = r#"
image = "registry.example.com/team/app:1.0"
entrypoint = ["/bin/app"]
command = ["--port", "8080"]
env-files = ["/etc/app/env", "/run/app/env"]
working-dir = "/srv"
user = "app:app"
hostname = "app-1.example"
notify = "container"
stop-signal = "SIGQUIT"
stop-timeout = 30
start-timeout = "2min"
restart = "on-failure:5"
restart-delay = "500ms"
memory = "512M"
cpus = 1.5
pids-limit = 100
depends-on = ["db", "cache"]
description = "The app"

[env]
PORT = "8080"
"lower.dotted" = ""

[unit]
after = ["network-online.target"]
before = ["b.service"]
requires = ["r.socket"]
wants = ["network-online.target"]
binds-to = ["dev-sda.device"]
part-of = ["app.target"]
conflicts = ["getty@tty1.service"]

[install]
wanted-by = ["multi-user.target"]
required-by = ["app.target"]
"#;
    let mut expected = Spec::new(
        n("web"),
        Source::Image("registry.example.com/team/app:1.0".into()),
    );
    expected.entrypoint = Some(vec!["/bin/app".into()]);
    expected.command = Some(vec!["--port".into(), "8080".into()]);
    expected.env = BTreeMap::from([
        ("PORT".into(), "8080".into()),
        ("lower.dotted".into(), String::new()),
    ]);
    expected.env_files = vec!["/etc/app/env".into(), "/run/app/env".into()];
    expected.working_dir = Some("/srv".into());
    expected.user = Some("app:app".into());
    expected.hostname = Some("app-1.example".into());
    expected.notify = Some(Notify::Container);
    expected.stop_signal = Some(Signal::from_number(3).expect("SIGQUIT"));
    expected.stop_timeout = Some(Timeout::from_secs(30));
    expected.start_timeout = Some(Timeout::from_secs(120));
    expected.restart = Some(RestartPolicy {
        restart: Restart::OnFailure,
        max_retries: Some(5),
    });
    expected.restart_delay = Some(Timeout::Finite(Duration::from_millis(500)));
    expected.memory = Some(Limit::Value(Bytes(512 << 20)));
    expected.cpus = Cpus::from_milli(1500);
    expected.pids_limit = Some(Limit::Value(Count(100)));
    expected.depends_on = vec![n("db"), n("cache")];
    expected.description = Some("The app".into());
    expected.unit = UnitDeps {
        after: vec!["network-online.target".into()],
        before: vec!["b.service".into()],
        requires: vec!["r.socket".into()],
        wants: vec!["network-online.target".into()],
        binds_to: vec!["dev-sda.device".into()],
        part_of: vec!["app.target".into()],
        conflicts: vec!["getty@tty1.service".into()],
    };
    expected.install = Install {
        wanted_by: vec!["multi-user.target".into()],
        required_by: vec!["app.target".into()],
    };
    assert_eq!(spec(text), expected);
}

#[test]
fn rootfs_instead_of_an_image() {
    let s = spec("rootfs = \"/srv/rootfs\"\n");
    assert_eq!(s.source, Source::Rootfs("/srv/rootfs".into()));
    assert_eq!(s, Spec::new(n("web"), Source::Rootfs("/srv/rootfs".into())));
}

#[test]
fn alternative_spellings_of_values() {
    let s = spec(
        "image = \"x\"\nuser = 1000\nnotify = true\nstop-signal = 9\nmemory = 1048576\ncpus = 2\npids-limit = -1\nrestart-delay = 0\n",
    );
    assert_eq!(s.user.as_deref(), Some("1000"));
    assert_eq!(s.notify, Some(Notify::Container));
    assert_eq!(s.stop_signal, Some(Signal::KILL));
    assert_eq!(s.memory, Some(Limit::Value(Bytes(1 << 20))));
    assert_eq!(s.cpus, Cpus::from_milli(2000));
    assert_eq!(s.pids_limit, Some(Limit::Infinity));
    assert_eq!(s.restart_delay, Some(Timeout::from_secs(0)));

    let s = spec(
        "image = \"x\"\nnotify = false\nmemory = \"infinity\"\npids-limit = \"infinity\"\nstop-timeout = \"infinity\"\ncpus = 0.25\nrestart = \"unless-stopped\"\nuser = \"0\"\n",
    );
    assert_eq!(s.notify, Some(Notify::Exec));
    assert_eq!(s.memory, Some(Limit::Infinity));
    assert_eq!(s.pids_limit, Some(Limit::Infinity));
    assert_eq!(s.stop_timeout, Some(Timeout::Infinity));
    assert_eq!(s.cpus, Cpus::from_milli(250));
    assert_eq!(s.restart.map(|r| r.restart), Some(Restart::Always));
    assert_eq!(s.user.as_deref(), Some("0"));

    let s = spec(
        "image = \"x\"\npids-limit = \"42\"\ncommand = []\nenv-files = []\ndepends-on = []\n[env]\n[unit]\n[install]\n",
    );
    assert_eq!(s.pids_limit, Some(Limit::Value(Count(42))));
    assert_eq!(s.command, Some(vec![]));
    assert!(s.env.is_empty() && s.env_files.is_empty() && s.depends_on.is_empty());
    assert!(s.unit.is_empty() && s.install.is_empty());
}

#[test]
fn bad_values_are_located_and_explained() {
    let cases: &[(&str, &str)] = &[
        (
            "image = \"\"",
            "web.toml:2:9: image: an image reference cannot be empty",
        ),
        (
            "image = 5",
            "web.toml:2:9: image: expected a string, found integer (write image = \"5\")",
        ),
        (
            "rootfs = \"srv\"",
            "web.toml:2:10: rootfs: expected an absolute path, found \"srv\"",
        ),
        (
            "command = 5",
            "web.toml:2:11: command: expected an array of strings, found integer",
        ),
        (
            "command = \"nginx -g\"",
            "web.toml:2:11: command: expected an array of strings, found string",
        ),
        (
            "command = [\"a\", 1]",
            "web.toml:2:17: command[1]: expected a string, found integer (write \"1\")",
        ),
        (
            "entrypoint = [\"a\\u0000b\"]",
            "web.toml:2:15: entrypoint[0]: must not contain a NUL character (\\u0000)",
        ),
        (
            "env = [\"A=1\"]",
            "web.toml:2:7: env: expected a table of strings, found array (write [env] and below it one NAME = \"value\" per line)",
        ),
        (
            "env = \"A=1\"",
            "web.toml:2:7: env: expected a table of strings, found string",
        ),
        (
            "env.PORT = 8080",
            "web.toml:2:12: env.PORT: expected a string, found integer (write PORT = \"8080\")",
        ),
        (
            "env.DEBUG = true",
            "web.toml:2:13: env.DEBUG: expected a string, found boolean (write DEBUG = \"true\")",
        ),
        (
            "env.RATIO = 0.5",
            "web.toml:2:13: env.RATIO: expected a string, found float (write RATIO = \"0.5\")",
        ),
        (
            "env.\"A=B\" = \"x\"",
            "web.toml:2:5: env.\"A=B\": invalid variable name \"A=B\": it cannot contain \"=\"",
        ),
        (
            "env.\"\" = \"x\"",
            "web.toml:2:5: env.\"\": an environment variable name cannot be empty",
        ),
        (
            "env-files = [\"env\"]",
            "web.toml:2:14: env-files[0]: expected an absolute path, found \"env\"",
        ),
        (
            "env-files = \"/env\"",
            "web.toml:2:13: env-files: expected an array of absolute paths, found string",
        ),
        (
            "working-dir = \"srv\"",
            "web.toml:2:15: working-dir: expected an absolute path, found \"srv\"",
        ),
        (
            "user = -1",
            "web.toml:2:8: user: invalid uid -1 (valid: 0 to 4294967294)",
        ),
        (
            "user = 4294967295",
            "web.toml:2:8: user: invalid uid 4294967295 (valid: 0 to 4294967294)",
        ),
        (
            "user = \"app:\"",
            "web.toml:2:8: user: invalid user \"app:\" (expected USER, UID, USER:GROUP or UID:GID)",
        ),
        (
            "user = \"a:b:c\"",
            "web.toml:2:8: user: invalid user \"a:b:c\" (expected USER, UID, USER:GROUP or UID:GID)",
        ),
        (
            "user = [\"app\"]",
            "web.toml:2:8: user: expected a user name or uid (\"nobody\", \"1000:1000\" or 1000), found array",
        ),
        (
            "hostname = \"my_host\"",
            "web.toml:2:12: hostname: invalid hostname \"my_host\": '_' is not allowed (use letters, digits, '-' and '.')",
        ),
        (
            "hostname = \"-a\"",
            "web.toml:2:12: hostname: invalid hostname \"-a\": a label cannot start or end with '-'",
        ),
        (
            "hostname = \"a..b\"",
            "web.toml:2:12: hostname: invalid hostname \"a..b\": it has an empty label (a dot at either end, or two in a row)",
        ),
        (
            "hostname = \"\"",
            "web.toml:2:12: hostname: invalid hostname \"\": it is empty",
        ),
        (
            "description = \"two\\nlines\"",
            "web.toml:2:15: description: must be a single line of text, without control characters ('\\n')",
        ),
        (
            "description = 'C:\\'",
            "web.toml:2:15: description: must not end with a backslash",
        ),
        (
            "notify = \"ready\"",
            "web.toml:2:10: notify: invalid notify mode \"ready\" (valid: exec, container)",
        ),
        (
            "notify = 1",
            "web.toml:2:10: notify: expected \"exec\" or \"container\", found integer",
        ),
        (
            "stop-signal = \"SIGFOO\"",
            "web.toml:2:15: stop-signal: unknown signal \"SIGFOO\" (use a name such as SIGTERM, SIGQUIT or SIGINT, or a number)",
        ),
        (
            "stop-signal = 99",
            "web.toml:2:15: stop-signal: invalid signal number 99 (valid: 1 to 64)",
        ),
        (
            "stop-signal = true",
            "web.toml:2:15: stop-signal: expected a signal name such as \"SIGTERM\", or a number, found boolean",
        ),
        (
            "stop-timeout = \"ten\"",
            "web.toml:2:16: stop-timeout: invalid time span \"ten\" (examples: 10, 10s, 1min 30s, 500ms, infinity)",
        ),
        (
            "stop-timeout = -5",
            "web.toml:2:16: stop-timeout: invalid time span -5: it cannot be negative",
        ),
        (
            "start-timeout = 1.5",
            "web.toml:2:17: start-timeout: expected a whole number of seconds or a time span string, found float (write start-timeout = \"1.5s\")",
        ),
        (
            "restart-delay = []",
            "web.toml:2:17: restart-delay: expected a number of seconds or a time span such as \"1min 30s\", found array",
        ),
        (
            "restart = \"on-failur\"",
            "web.toml:2:11: restart: invalid restart policy \"on-failur\" (did you mean \"on-failure\"? valid: no, on-success, on-failure, on-abnormal, on-watchdog, on-abort, always, unless-stopped)",
        ),
        (
            "restart = true",
            "web.toml:2:11: restart: expected a string, found boolean (write restart = \"true\")",
        ),
        (
            "memory = \"lots\"",
            "web.toml:2:10: memory: invalid size \"lots\" (examples: 536870912, 512M, 1.5G)",
        ),
        (
            "memory = 1.5",
            "web.toml:2:10: memory: expected a size such as \"512M\", or a number of bytes, found float",
        ),
        (
            "cpus = \"1.5\"",
            "web.toml:2:8: cpus: expected a number of CPUs such as 1.5, found string (write cpus = 1.5)",
        ),
        (
            "cpus = 0.001",
            "web.toml:2:8: cpus: invalid CPU count \"0.001\" (a number of CPUs from 0.01 to 1024, such as 0.5 or 2)",
        ),
        (
            "cpus = 5000",
            "web.toml:2:8: cpus: invalid CPU count \"5000\" (a number of CPUs from 0.01 to 1024, such as 0.5 or 2)",
        ),
        (
            "pids-limit = -2",
            "web.toml:2:14: pids-limit: invalid count \"-2\" (a positive integer, or infinity)",
        ),
        (
            "pids-limit = \"lots\"",
            "web.toml:2:14: pids-limit: invalid count \"lots\" (a positive integer, or infinity)",
        ),
        (
            "pids-limit = 1.5",
            "web.toml:2:14: pids-limit: expected a positive integer or \"infinity\", found float",
        ),
        (
            "depends-on = [\"-db\"]",
            "web.toml:2:15: depends-on[0]: invalid container name \"-db\": it must start with a letter or digit",
        ),
        (
            "depends-on = [\"web\"]",
            "web.toml:2:15: depends-on[0]: container web cannot depend on itself",
        ),
        (
            "depends-on = \"db\"",
            "web.toml:2:14: depends-on: expected an array of container names, found string",
        ),
        (
            "name = \"web\"",
            "web.toml:2:8: name: not a setting: a container is named after its file (web.toml is container web)",
        ),
        (
            "unit = \"x\"",
            "web.toml:2:8: unit: expected a table, found string",
        ),
        (
            "[unit]\nafter = \"network.target\"",
            "web.toml:3:9: unit.after: expected an array of unit names, found string",
        ),
        (
            "[unit]\nafter = [\"network-online\"]",
            "web.toml:3:10: unit.after[0]: \"network-online\" is not a unit name: it needs a type suffix such as .service or .target (did you mean \"network-online.service\"?)",
        ),
        (
            "[unit]\nrequires = [\"db.servce\"]",
            "web.toml:3:13: unit.requires[0]: invalid unit name \"db.servce\": unknown unit type \".servce\" (did you mean \"db.service\"?)",
        ),
        (
            "[unit]\nwants = [\"my app.service\"]",
            "web.toml:3:10: unit.wants[0]: invalid unit name \"my app.service\": ' ' is not allowed",
        ),
        (
            "[unit]\nbefore = [\"\"]",
            "web.toml:3:11: unit.before[0]: a unit name cannot be empty",
        ),
        (
            "[unit]\nafter = [\"/srv/data\"]",
            "web.toml:3:10: unit.after[0]: \"/srv/data\" is a path, not a unit name (`systemd-escape --path --suffix=mount /srv/data` prints its mount unit)",
        ),
        (
            "[unit]\nafter = [\"getty@.service\"]",
            "web.toml:3:10: unit.after[0]: \"getty@.service\" is a template: name an instance of it, such as \"getty@NAME.service\"",
        ),
        (
            "[unit]\nafter = [\".service\"]",
            "web.toml:3:10: unit.after[0]: invalid unit name \".service\"",
        ),
        (
            "[install]\nwanted-by = [\"multi-user\"]",
            "web.toml:3:14: install.wanted-by[0]: \"multi-user\" is not a unit name: it needs a type suffix such as .service or .target (did you mean \"multi-user.service\"?)",
        ),
        (
            "[env.X]\ny = \"1\"",
            "web.toml:2:1: env.X: expected a string, found table",
        ),
        (
            "[env]\nFOO = {a = 1}",
            "web.toml:3:7: env.FOO: expected a string, found table",
        ),
        (
            "[[unit]]\nafter = []",
            "web.toml:2:1: unit: expected a table, found array",
        ),
        (
            "[image]\nname = \"x\"",
            "web.toml:2:1: image: expected a string, found table",
        ),
    ];
    for (line, want) in cases {
        let text = format!("{IMAGE}{line}\n");
        let text = if line.starts_with("image") || line.starts_with("[image]") {
            format!("\n{line}\n")
        } else {
            text
        };
        let got = problems(&text);
        let got: Vec<&str> = got
            .iter()
            .map(String::as_str)
            .filter(|p| !p.contains("no image"))
            .collect();
        assert_eq!(got, [*want], "for {line:?}");
    }
}

// --- image and rootfs --------------------------------------------------------------------------

#[test]
fn image_and_rootfs_exclude_each_other_across_files() {
    let s = Scratch::new();
    s.write("lib/web.toml", "image = \"nginx\"\n");
    s.write(
        "etc/web.toml.d/10-rootfs.toml",
        "\nrootfs = \"/srv/root\"\n",
    );
    assert_eq!(
        s.problems("web"),
        [
            "etc/web.toml.d/10-rootfs.toml:2:10: rootfs: conflicts with image set at lib/web.toml:1:9: a container has an image or a rootfs, not both"
        ]
    );

    let s = Scratch::new();
    s.write("lib/web.toml", "rootfs = \"/srv/root\"\n");
    s.write("etc/web.toml.d/10-image.toml", "image = \"nginx\"\n");
    assert_eq!(
        s.problems("web"),
        [
            "etc/web.toml.d/10-image.toml:1:9: image: conflicts with rootfs set at lib/web.toml:1:10: a container has an image or a rootfs, not both"
        ]
    );
}

#[test]
fn neither_image_nor_rootfs_names_the_main_file() {
    let s = Scratch::new();
    s.write("lib/web.toml", "command = [\"true\"]\n");
    s.write("etc/web.toml.d/10.toml", "restart = \"always\"\n");
    assert_eq!(
        s.problems("web"),
        [
            "lib/web.toml: no image or rootfs: set one, such as image = \"docker.io/library/nginx:1.27\" or rootfs = \"/srv/rootfs\""
        ]
    );
}

// --- Unknown keys ------------------------------------------------------------------------------

#[test]
fn unknown_keys_get_suggestions() {
    assert_eq!(
        problems("\n\nimgae = \"nginx\"\n"),
        [
            "web.toml:3:1: unknown key \"imgae\" (did you mean \"image\"?)",
            "web.toml: no image or rootfs: set one, such as image = \"docker.io/library/nginx:1.27\" or rootfs = \"/srv/rootfs\"",
        ]
    );
    assert_eq!(
        problem("image = \"x\"\nworking_dir = \"/srv\"\n"),
        "web.toml:2:1: unknown key \"working_dir\" (did you mean \"working-dir\"?)"
    );
    assert_eq!(
        problem("image = \"x\"\nhealthcheck = []\n"),
        "web.toml:2:1: unknown key \"healthcheck\" (see cleat.toml(5) for the keys)"
    );
    assert_eq!(
        problem("image = \"x\"\n[unit]\nafer = [\"a.service\"]\n"),
        "web.toml:3:1: unknown key \"afer\" in [unit] (did you mean \"after\"?)"
    );
    assert_eq!(
        problem("image = \"x\"\n[install]\n  alias = []\n"),
        "web.toml:3:3: unknown key \"alias\" in [install] (valid: wanted-by, required-by)"
    );
    assert_eq!(
        problem("image = \"x\"\nafter = [\"a.service\"]\n"),
        "web.toml:2:1: unknown key \"after\" (it belongs in the [unit] table)"
    );
    assert_eq!(
        problem("image = \"x\"\n[unit]\nrestart = \"always\"\n"),
        "web.toml:3:1: unknown key \"restart\" in [unit] (restart is a top-level key: move it above the first [table] header)"
    );
    assert_eq!(
        problem("image = \"x\"\n[unti]\nafter = []\n"),
        "web.toml:2:2: unknown key \"unti\" (did you mean \"unit\"?)"
    );
    assert_eq!(
        problem("image = \"x\"\nunit.\"a b\" = 1\n"),
        "web.toml:2:6: unknown key \"a b\" in [unit] (valid: after, before, requires, wants, binds-to, part-of, conflicts)"
    );
}

// --- Files that cannot be read or parsed -------------------------------------------------------

#[test]
fn syntax_errors_are_located() {
    assert_eq!(
        problems("image = \"x\"\nrestart = always\n"),
        ["web.toml:2:11: invalid TOML: string values must be quoted, expected literal string"]
    );
    assert_eq!(
        problems("image = \"x\"\ncommand = [\"a\"\nrestart = \"always\"\n"),
        ["web.toml:3:1: invalid TOML: missing comma between array elements, expected `,`"]
    );
    assert_eq!(
        problems("[unit\nafter = []\n"),
        ["web.toml:1:6: invalid TOML: unclosed table, expected `]`"]
    );
    assert_eq!(
        problems("image = \"x\"\nimage = \"y\"\n"),
        ["web.toml:2:1: invalid TOML: duplicate key"]
    );
}

#[test]
fn unreadable_and_non_utf8_files() {
    let s = Scratch::new();
    s.write("lib/web.toml", "image = \"x\"\n");
    s.write("lib/web.toml.d/10.toml", b"env.A = \"caf\xe9\"\n");
    symlink(s.path("nowhere"), s.path("lib/web.toml.d/20.toml")).expect("symlink");
    s.write("lib/web.toml.d/30.toml", "imgae = 1\n");
    let problems = s.problems("web");
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert_eq!(
        problems[0],
        "lib/web.toml.d/10.toml:1:13: not valid UTF-8 (a TOML file must be UTF-8 text)"
    );
    assert_eq!(
        problems[1],
        "lib/web.toml.d/20.toml: No such file or directory (os error 2)"
    );
    assert_eq!(
        problems[2],
        "lib/web.toml.d/30.toml:1:1: unknown key \"imgae\" (did you mean \"image\"?)"
    );

    let error = s.load("web").expect_err("problems");
    let io = error.problems().iter().find_map(|p| match p {
        Problem::Io { source, .. } => Some(source.kind()),
        Problem::Invalid { .. } => None,
    });
    assert_eq!(io, Some(std::io::ErrorKind::NotFound));

    let s = Scratch::new();
    fs::create_dir_all(s.path("etc/web.toml")).expect("mkdir");
    let problems = s.problems("web");
    assert_eq!(problems, ["etc/web.toml: Is a directory (os error 21)"]);
}

// --- Collecting every problem ------------------------------------------------------------------

#[test]
fn every_problem_of_every_file_is_reported_in_order() {
    let s = Scratch::new();
    s.write(
        "lib/web.toml",
        "image = \"nginx\"\nstop-timeout = \"ten\"\ncommand = 1\n[env]\nPORT = 80\n[unit]\nafer = []\n",
    );
    s.write(
        "etc/web.toml.d/10.toml",
        "stop-timeout = 10\nrootfs = \"/r\"\nhostname = \"a_b\"\n",
    );
    s.write("run/web.toml.d/20.toml", "restart = \"sometimes\"\n");
    assert_eq!(
        s.problems("web"),
        [
            "lib/web.toml:2:16: stop-timeout: invalid time span \"ten\" (examples: 10, 10s, 1min 30s, 500ms, infinity)",
            "lib/web.toml:3:11: command: expected an array of strings, found integer",
            "lib/web.toml:5:8: env.PORT: expected a string, found integer (write PORT = \"80\")",
            "lib/web.toml:7:1: unknown key \"afer\" in [unit] (did you mean \"after\"?)",
            "etc/web.toml.d/10.toml:3:12: hostname: invalid hostname \"a_b\": '_' is not allowed (use letters, digits, '-' and '.')",
            "run/web.toml.d/20.toml:1:11: restart: invalid restart policy \"sometimes\" (valid: no, on-success, on-failure, on-abnormal, on-watchdog, on-abort, always, unless-stopped)",
            "etc/web.toml.d/10.toml:2:10: rootfs: conflicts with image set at lib/web.toml:1:9: a container has an image or a rootfs, not both",
        ]
    );
    let error = s.load("web").expect_err("problems");
    assert_eq!(error.to_string().lines().count(), 7);
}

#[test]
fn a_syntax_error_anywhere_skips_the_cross_file_checks() {
    let s = Scratch::new();
    s.write("lib/web.toml", "image = \"nginx\n");
    s.write("etc/web.toml.d/10.toml", "restart = \"sometimes\"\n");
    let problems = s.problems("web");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("lib/web.toml:1:15: invalid TOML: "),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].starts_with("etc/web.toml.d/10.toml:1:11: restart: "),
        "{}",
        problems[1]
    );

    // No "no image" either: the broken drop-in might have set it.
    let s = Scratch::new();
    s.write("lib/web.toml", "restart = \"sometimes\"\n");
    s.write("etc/web.toml.d/10.toml", "image = = \"nginx\"\n");
    let problems = s.problems("web");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("lib/web.toml:1:11: restart: "),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].starts_with("etc/web.toml.d/10.toml:1:9: invalid TOML: "),
        "{}",
        problems[1]
    );
}

// --- Showing the merged definition -------------------------------------------------------------

#[test]
fn show_annotates_every_value_with_its_file_and_line() {
    let s = Scratch::new();
    merge_fixture(&s);
    let merged = s.load("web").expect("load").merged;
    let prefix = format!("{}/", s.0.display());
    let shown = merged.to_toml().replace(&prefix, "");
    assert_eq!(
        shown,
        r#"# container web: lib/web.toml
#   + etc/web.toml.d/10-override.toml
#   + run/web.toml.d/20-command.toml
image = "nginx:1.27"                 # etc/web.toml.d/10-override.toml:1
command = ["nginx", "-T"]            # run/web.toml.d/20-command.toml:1
entrypoint = []                      # etc/web.toml.d/10-override.toml:2
restart = "on-failure"               # lib/web.toml:4

[env]
A = "1"                              # lib/web.toml:7
B = "two"                            # etc/web.toml.d/10-override.toml:5
C = "3"                              # etc/web.toml.d/10-override.toml:6
D = "4"                              # run/web.toml.d/20-command.toml:2

[unit]
after = ["b.service", "c.service"]   # etc/web.toml.d/10-override.toml:9
wants = ["w.service"]                # lib/web.toml:12
"#
    );
}

#[test]
fn show_output_parses_back_to_the_merged_values() {
    let s = Scratch::new();
    merge_fixture(&s);
    s.write(
        "lib/web.toml.d/30-odd.toml",
        "cpus = 2.0\nmemory = 1073741824\nnotify = true\n\
         description = \"quote \\\" back\\\\slash\"\n[env]\n\"MY.VAR\" = \"é # not a comment\"\n",
    );
    s.write(
        "etc/web.toml.d/40-signal.toml",
        "stop-signal = \"SIGINT\"\n",
    );
    let merged = s.load("web").expect("load").merged;
    let shown: toml::Table = toml::from_str(&merged.to_toml()).expect("show output is TOML");
    let expected: toml::Table = toml::from_str(
        r#"
image = "nginx:1.27"
command = ["nginx", "-T"]
entrypoint = []
restart = "on-failure"
cpus = 2.0
memory = 1073741824
notify = true
description = "quote \" back\\slash"
stop-signal = "SIGINT"
[env]
A = "1"
B = "two"
C = "3"
D = "4"
"MY.VAR" = "é # not a comment"
[unit]
after = ["b.service", "c.service"]
wants = ["w.service"]
"#,
    )
    .expect("expected TOML");
    assert_eq!(shown, expected);
    assert!(shown["cpus"].is_float(), "a float stays a float");
}

#[test]
fn show_as_json() {
    let s = Scratch::new();
    let main = s.write(
        "lib/web.toml",
        "image = \"nginx\"\ncommand = [\"a\"]\ncpus = 0.5\n[env]\nA = \"1\"\n",
    );
    let shadowed = s.write("lib/web.toml.d/10.toml", "");
    let dropin = s.write("etc/web.toml.d/10.toml", "env.B = \"2\"\n");
    let merged = s.load("web").expect("load").merged;
    assert_eq!(merged.name().as_str(), "web");
    assert_eq!(merged.files(), [main.clone(), dropin.clone()]);
    assert_eq!(merged.overridden(), std::slice::from_ref(&shadowed));
    let at = |file: &Path, line: u32, column: u32, value: serde_json::Value| serde_json::json!({"value": value, "file": file.display().to_string(), "line": line, "column": column});
    assert_eq!(
        merged.to_json(),
        serde_json::json!({
            "name": "web",
            "files": [main.display().to_string(), dropin.display().to_string()],
            "overridden": [shadowed.display().to_string()],
            "values": {
                "image": at(&main, 1, 9, "nginx".into()),
                "command": at(&main, 2, 11, serde_json::json!(["a"])),
                "cpus": at(&main, 3, 8, serde_json::json!(0.5)),
                "env": {
                    "A": at(&main, 5, 5, "1".into()),
                    "B": at(&dropin, 1, 9, "2".into()),
                },
            },
        })
    );
}

#[test]
fn load_file_uses_the_file_stem_and_no_dropins() {
    let s = Scratch::new();
    let path = s.write("etc/db.toml", IMAGE);
    s.write("etc/db.toml.d/10.toml", "rootfs = \"/r\"\n");
    let loaded = load_file(&path).expect("load");
    assert_eq!(loaded.spec.name.as_str(), "db");
    assert_eq!(loaded.merged.files(), [path]);
    let missing = load_file(&s.path("etc/missing.toml")).expect_err("missing");
    assert!(
        matches!(missing.problems(), [Problem::Io { .. }]),
        "{missing:?}"
    );
}

// --- The reference page ------------------------------------------------------------------------

#[test]
fn manual_examples_load_and_show_as_documented() {
    let page = include_str!("../../../packaging/man/cleat.toml.5.md");
    let examples = &page[page.find("\n# EXAMPLES").expect("EXAMPLES section")..];
    let blocks: Vec<&str> = examples
        .split("```toml\n")
        .skip(1)
        .map(|block| &block[..block.find("```").expect("closed block")])
        .collect();
    let [main, dropin, shown, appliance] = blocks[..] else {
        panic!(
            "expected four TOML blocks in EXAMPLES, found {}",
            blocks.len()
        );
    };
    let s = Scratch::new();
    s.write("lib/web.toml", main);
    s.write("etc/web.toml.d/50-local.toml", dropin);
    s.write("lib/appliance.toml", appliance);
    let merged = s.load("web").expect("web loads").merged;
    let actual = merged
        .to_toml()
        .replace(
            &s.path("lib").display().to_string(),
            "/usr/lib/cleat/containers",
        )
        .replace(
            &s.path("etc").display().to_string(),
            "/etc/cleat/containers",
        );
    assert_eq!(actual, shown);
    s.load("appliance").expect("appliance loads");
}
