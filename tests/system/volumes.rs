//! Volumes, black-box from the CLI and TOML contract: bind mounts (`-v /host:/ctr[:ro]`,
//! `--mount type=bind`), named volumes (created on first use, filled from the image's content
//! at their mount point, kept after `cleat rm`, shared by later containers), `cleat volume
//! create|ls|inspect|rm|prune`, anonymous volumes for an image's `VOLUME` (removed by
//! `cleat rm -v` and with `--rm`), `--tmpfs`, `--volumes-from`, `--read-only` with writable
//! mounts, and bad input refused with exit status 125 and nothing left behind.
//!
//! Host paths for bind mounts live in the test host's private `/tmp`. Every named volume is
//! `t-…` (unique per run) and removed at the end of its test; tests that prune hold
//! [`exclusive`], the others [`shared`], so a prune never takes a volume from under a test.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde_json::Value;

use crate::host::{
    Case, GRACEFUL, Output, declared_unit, expect_active, expect_journal, expect_stopped, host,
    ps_entry, unique_name,
};
use crate::images::fixtures::{PLAIN, PULL_TIMEOUT, image, registries};

static PRUNE_LOCK: RwLock<()> = RwLock::new(());

/// Held by tests that create volumes and expect them to stay.
fn shared() -> RwLockReadGuard<'static, ()> {
    PRUNE_LOCK.read().unwrap_or_else(|p| p.into_inner())
}

/// Held by tests that prune: nobody else's unused volume is around meanwhile.
fn exclusive() -> RwLockWriteGuard<'static, ()> {
    PRUNE_LOCK.write().unwrap_or_else(|p| p.into_inner())
}

/// Named volumes of one test, removed (forcibly) when it ends. Declare it before the test's
/// `Case`, so that the containers are gone first.
struct Volumes(Vec<String>);

impl Volumes {
    fn new() -> Volumes {
        Volumes(Vec::new())
    }

    /// A fresh volume name, cleaned up at the end.
    fn name(&mut self, label: &str) -> String {
        let name = unique_name(label);
        self.0.push(name.clone());
        name
    }
}

impl Drop for Volumes {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut args = vec!["volume", "rm", "-f"];
        args.extend(self.0.iter().map(String::as_str));
        let out = host().cleat(&args);
        if !out.success() {
            eprintln!("cleanup of volumes {} failed:\n{out}", self.0.join(", "));
        }
    }
}

/// A private directory in the test host's `/tmp` for bind mounts, with one file `in`.
fn host_dir(label: &str) -> String {
    let dir = format!("/tmp/{}", unique_name(label));
    host()
        .sh(&format!("mkdir -p {dir} && echo from-host > {dir}/in"))
        .ok();
    dir
}

/// `cleat run --name NAME FLAGS --rootfs ROOTFS PAYLOAD...`.
fn run(name: &str, flags: &[&str], payload: &[&str]) -> Output {
    let mut args = vec!["run", "--name", name];
    args.extend_from_slice(flags);
    args.extend(["--rootfs", &host().rootfs]);
    args.extend_from_slice(payload);
    host().cleat(&args)
}

fn sh(script: &str) -> [&str; 3] {
    ["sh", "-c", script]
}

/// `cleat volume inspect NAME`, which must succeed: the one object of the array.
#[track_caller]
fn inspect_volume(name: &str) -> Value {
    let out = host().cleat(&["volume", "inspect", name]);
    out.ok();
    match out.json() {
        Value::Array(mut v) if v.len() == 1 => v.remove(0),
        other => panic!("volume inspect {name} did not print one object: {other}\n{out}"),
    }
}

/// Every volume, from `cleat volume ls --format json`.
#[track_caller]
fn volumes_json() -> Vec<Value> {
    let out = host().cleat(&["volume", "ls", "--format", "json"]);
    out.ok();
    match out.json() {
        Value::Array(v) => v,
        other => panic!("volume ls --format json did not print an array: {other}\n{out}"),
    }
}

fn volume_exists(name: &str) -> bool {
    volumes_json().iter().any(|v| v["Name"] == name)
}

/// The volumes `cleat volume ls --format json` says `container` uses.
fn volumes_used_by(container: &str) -> Vec<Value> {
    volumes_json()
        .into_iter()
        .filter(|v| {
            v["UsedBy"]
                .as_array()
                .is_some_and(|u| u.iter().any(|c| c == container))
        })
        .collect()
}

/// Where a volume's content is, in the test host.
fn mountpoint(volume: &Value) -> String {
    volume["Mountpoint"]
        .as_str()
        .unwrap_or_else(|| panic!("no Mountpoint: {volume}"))
        .to_owned()
}

/// Nothing of container `name` is left: no unit, not listed by `ps -a`.
#[track_caller]
fn assert_no_container(name: &str) {
    assert_eq!(
        host().prop(&crate::host::adhoc_unit(name), "LoadState"),
        "not-found",
        "a unit for {name} was left behind"
    );
    assert!(ps_entry(name, true).is_none(), "{name} listed by ps -a");
}

// ---------------------------------------------------------------------------------------------
// Bind mounts

#[test]
fn bind_mounts_read_write_and_read_only() {
    let h = host();
    let c = Case::new("vol-bind");
    let dir = host_dir("bind");

    let out = run(
        &c.name,
        &["--rm", "-v", &format!("{dir}:/data")],
        &sh("cat /data/in; echo from-container > /data/out"),
    );
    out.ok().says("from-host");
    let back = h.sh(&format!("cat {dir}/out"));
    back.ok();
    assert_eq!(back.stdout.trim(), "from-container", "{back}");

    let try_write = "if echo x > /data/written 2>/dev/null; then echo WROTE; else echo write-refused; fi; cat /data/in";
    for flags in [
        vec!["-v".to_owned(), format!("{dir}:/data:ro")],
        vec![
            "--mount".to_owned(),
            format!("type=bind,source={dir},target=/data,readonly"),
        ],
    ] {
        let n = c.another("vol-bind-ro");
        let mut all = vec!["--rm"];
        all.extend(flags.iter().map(String::as_str));
        let out = run(&n, &all, &sh(try_write));
        out.ok().says("write-refused").says("from-host");
        assert!(!out.stdout.contains("WROTE"), "{out}");
        assert!(!h.exists(&format!("{dir}/written")));
    }
}

// ---------------------------------------------------------------------------------------------
// Named volumes

#[test]
fn named_volume_is_created_on_first_use_filled_from_the_image_and_kept() {
    let _g = shared();
    let h = host();
    let mut vols = Volumes::new();
    let vol = vols.name("vol-named");
    let c = Case::new("vol-named");
    assert!(!volume_exists(&vol));

    // The root has /home/app, owned by 1000:1000: the new volume starts with it.
    let out = run(
        &c.name,
        &["-v", &format!("{vol}:/home")],
        &sh("ls -ln /home; echo kept-data > /home/app/note"),
    );
    out.ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("app") && l.contains("1000")),
        "the volume was not filled from the root's /home:\n{out}"
    );
    let v = inspect_volume(&vol);
    assert_eq!(v["Driver"], "local", "{v}");
    assert_eq!(v["Anonymous"], false, "{v}");
    assert_eq!(v["UsedBy"], serde_json::json!([c.name]), "{v}");
    let data = mountpoint(&v);
    assert!(data.ends_with(&format!("/{vol}/_data")), "{v}");
    let owner = h.sh(&format!("stat -c %u:%g {data}/app && cat {data}/app/note"));
    owner.ok();
    assert_eq!(owner.stdout, "1000:1000\nkept-data\n", "{owner}");

    // It outlives the container...
    h.cleat(&["rm", &c.name]).ok();
    assert!(volume_exists(&vol), "cleat rm removed a named volume");
    assert_eq!(inspect_volume(&vol)["UsedBy"], serde_json::json!([]));

    // ...and the next container finds its content, not the image's again.
    let n = c.another("vol-named-2");
    let out = run(
        &n,
        &["--rm", "-v", &format!("{vol}:/srv")],
        &sh("cat /srv/app/note; ls /srv"),
    );
    out.ok().says("kept-data");
    let n = c.another("vol-named-3");
    h.sh(&format!("rm -f {data}/app/note && rmdir {data}/app"))
        .ok();
    let out = run(
        &n,
        &["--rm", "-v", &format!("{vol}:/home")],
        &sh("ls -A /home | wc -l"),
    );
    out.ok();
    assert_eq!(
        out.last_line(),
        "0",
        "a volume emptied by its user was filled again:\n{out}"
    );
}

#[test]
fn named_volume_filled_from_a_pulled_image() {
    let _g = shared();
    registries();
    let _images = crate::images::fixtures::shared();
    let h = host();
    let mut vols = Volumes::new();
    let vol = vols.name("vol-image");
    let c = Case::new("vol-image");
    let img = image(PLAIN, "busybox");
    // The image's /bin holds its scripts: a volume over /bin starts with them (and the
    // container still runs its entrypoint from it).
    let out = h.cleat_timeout(
        &[
            "run",
            "--rm",
            "--name",
            &c.name,
            "-v",
            &format!("{vol}:/bin"),
            &img,
            "/bin/report",
        ],
        PULL_TIMEOUT,
    );
    out.ok().says("report: uid=1000");
    let data = mountpoint(&inspect_volume(&vol));
    let files = h.sh(&format!("cat {data}/report && readlink {data}/sh"));
    files.ok().says("echo \"report:").says("busybox");
}

#[test]
fn volume_commands() {
    let _g = shared();
    let h = host();
    let mut vols = Volumes::new();
    let vol = vols.name("vol-cli");

    let out = h.cleat(&[
        "volume", "create", "--label", "team=db", "--label", "tier", &vol,
    ]);
    out.ok();
    assert_eq!(out.last_line(), vol);
    // Idempotent, as in Docker.
    h.cleat(&["volume", "create", &vol]).ok();

    let ls = h.cleat(&["volume", "ls"]);
    ls.ok();
    let mut lines = ls.stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["DRIVER", "VOLUME", "NAME"], "{ls}");
    assert!(
        lines.any(|l| l.split_whitespace().collect::<Vec<_>>() == ["local", vol.as_str()]),
        "{ls}"
    );
    let quiet = h.cleat(&["volume", "ls", "-q"]);
    assert!(quiet.ok().stdout.lines().any(|l| l == vol), "{quiet}");

    let v = inspect_volume(&vol);
    assert_eq!(v["Name"], vol.as_str(), "{v}");
    assert_eq!(v["Labels"]["team"], "db", "{v}");
    assert_eq!(v["Labels"]["tier"], "", "{v}");
    assert_eq!(v["Scope"], "local", "{v}");
    assert!(
        v["CreatedAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
    assert!(h.exists(&mountpoint(&v)), "{v}");

    h.cleat(&["volume", "inspect", &vol, "t-no-such-volume"])
        .code_is(1)
        .says("no such volume")
        .says("t-no-such-volume")
        .reads_clean();

    let rm = h.cleat(&["volume", "rm", &vol]);
    assert_eq!(rm.ok().last_line(), vol);
    assert!(!volume_exists(&vol));
    assert!(
        !h.exists(&mountpoint(&v)),
        "the volume's directory is still there"
    );
    h.cleat(&["volume", "rm", &vol])
        .code_is(1)
        .says("no such volume")
        .reads_clean();
    h.cleat(&["volume", "rm", "-f", &vol]).ok();

    // Without a name: a random one, 64 hexadecimal digits.
    let out = h.cleat(&["volume", "create"]);
    let random = out.ok().last_line().to_owned();
    assert!(
        random.len() == 64 && random.chars().all(|c| c.is_ascii_hexdigit()),
        "{out}"
    );
    h.cleat(&["volume", "rm", &random]).ok();

    h.cleat(&["volume", "create", "bad name"])
        .code_is(1)
        .says("invalid volume name")
        .reads_clean();
    h.cleat(&["volume", "create", "-d", "nfs", "x"])
        .fails()
        .says("local")
        .reads_clean();
}

#[test]
fn a_used_volume_is_not_removed() {
    let _g = shared();
    let h = host();
    let mut vols = Volumes::new();
    let vol = vols.name("vol-busy");
    let c = Case::new("vol-busy");
    let unit = c.adhoc_unit();
    run(&c.name, &["-d", "-v", &format!("{vol}:/v")], &[GRACEFUL]).ok();
    expect_active(&unit);

    for force in [false, true] {
        let mut args = vec!["volume", "rm"];
        if force {
            args.push("-f");
        }
        args.push(&vol);
        h.cleat(&args)
            .code_is(1)
            .says("running container")
            .says(&c.name)
            .reads_clean();
        assert!(volume_exists(&vol));
    }

    h.cleat(&["stop", &c.name]).ok();
    expect_stopped(&unit, Duration::from_secs(10));
    h.cleat(&["volume", "rm", &vol])
        .code_is(1)
        .says("in use by container")
        .says(&c.name)
        .says("-f")
        .reads_clean();
    assert!(volume_exists(&vol));
    // A stopped container's volume goes only by force.
    h.cleat(&["volume", "rm", "-f", &vol]).ok();
    assert!(!volume_exists(&vol));
}

#[test]
fn prune_removes_only_unused_volumes() {
    let _g = exclusive();
    let h = host();
    let mut vols = Volumes::new();
    let free = vols.name("vol-free");
    let used = vols.name("vol-used");
    let c = Case::new("vol-prune");
    h.cleat(&["volume", "create", &free]).ok();
    h.sh(&format!(
        "echo 12345 > {}/f",
        mountpoint(&inspect_volume(&free))
    ))
    .ok();
    run(&c.name, &["-v", &format!("{used}:/v")], &["true"]).ok();

    // Without -a only anonymous volumes go: named ones stay.
    let out = h.cleat(&["volume", "prune", "-f"]);
    out.ok().says("Total reclaimed space");
    assert!(volume_exists(&free) && volume_exists(&used));

    let out = h.cleat(&["volume", "prune", "-f", "-a"]);
    out.ok()
        .says("Deleted Volumes:")
        .says("Total reclaimed space");
    assert!(out.stdout.lines().any(|l| l == free), "{out}");
    assert!(!out.stdout.lines().any(|l| l == used), "{out}");
    assert!(!volume_exists(&free));
    assert!(
        volume_exists(&used),
        "prune removed a stopped container's volume"
    );

    h.cleat(&["rm", &c.name]).ok();
    let out = h.cleat(&["volume", "prune", "-a"]);
    out.ok();
    assert!(out.stdout.lines().any(|l| l == used), "{out}");
    assert!(!volume_exists(&used));
}

// ---------------------------------------------------------------------------------------------
// Anonymous volumes

#[test]
fn an_image_volume_is_anonymous_kept_across_starts_and_removed_by_rm_v() {
    let _g = shared();
    registries();
    let _images = crate::images::fixtures::shared();
    let h = host();
    let c = Case::new("vol-anon");
    let img = image(PLAIN, "busybox");
    // The image declares VOLUME /data.
    let out = h.cleat_timeout(
        &[
            "run",
            "--name",
            &c.name,
            "-u",
            "0",
            &img,
            "sh",
            "-c",
            "echo run >> /data/log; cat /data/log | wc -l",
        ],
        PULL_TIMEOUT,
    );
    out.ok();
    assert_eq!(out.last_line(), "1", "{out}");
    let owned = volumes_used_by(&c.name);
    assert_eq!(owned.len(), 1, "one anonymous volume expected: {owned:?}");
    let anon = owned[0]["Name"].as_str().unwrap_or_default().to_owned();
    assert_eq!(owned[0]["Anonymous"], true, "{owned:?}");
    assert!(
        anon.len() == 64 && anon.chars().all(|c| c.is_ascii_hexdigit()),
        "{anon}"
    );
    let data = mountpoint(&owned[0]);

    // A second start finds the same volume.
    h.cleat(&["start", &c.name]).ok();
    expect_stopped(&c.adhoc_unit(), Duration::from_secs(10));
    let log = h.sh(&format!("wc -l < {data}/log"));
    assert_eq!(log.ok().stdout.trim(), "2", "{log}");
    assert_eq!(volumes_used_by(&c.name).len(), 1);

    // `rm -v` takes it along.
    h.cleat(&["rm", "-v", &c.name]).ok();
    assert!(!volume_exists(&anon), "rm -v left the anonymous volume");
    assert!(!h.exists(&data));
}

#[test]
fn anonymous_volumes_of_an_rm_container_go_with_it() {
    let _g = shared();
    let h = host();
    let c = Case::new("vol-anon-rm");
    let marker = format!("marker-{}", c.name);
    let out = run(
        &c.name,
        &["--rm", "-v", "/scratch"],
        &sh(&format!("echo {marker} > /scratch/m; cat /scratch/m")),
    );
    out.ok().says(&marker);
    assert_no_container(&c.name);
    let left = h.sh(&format!(
        "grep -rl {marker} /var/lib/cleat/volumes 2>/dev/null | head -1"
    ));
    assert_eq!(
        left.stdout.trim(),
        "",
        "the --rm container's volume is left:\n{left}"
    );
}

// ---------------------------------------------------------------------------------------------
// tmpfs, --volumes-from, --read-only

#[test]
fn tmpfs_size_mode_and_flags() {
    let c = Case::new("vol-tmpfs");
    let out = run(
        &c.name,
        &[
            "--rm",
            "--tmpfs",
            "/scratch:size=1m,mode=1770",
            "--mount",
            "type=tmpfs,target=/other,tmpfs-size=2m",
        ],
        &sh("stat -c 'mode=%a' /scratch; grep -E ' /(scratch|other) ' /proc/mounts"),
    );
    out.ok().says("mode=1770");
    let line = |at: &str| {
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(at))
            .unwrap_or_else(|| panic!("{at} is not mounted:\n{out}"))
            .to_owned()
    };
    let scratch = line("/scratch");
    for want in [
        "tmpfs",
        "size=1024k",
        "mode=1770",
        "nosuid",
        "nodev",
        "noexec",
    ] {
        assert!(scratch.contains(want), "{want} missing from {scratch:?}");
    }
    assert!(line("/other").contains("size=2048k"), "{out}");
}

#[test]
fn volumes_from_shares_volumes_and_binds() {
    let _g = shared();
    let h = host();
    let mut vols = Volumes::new();
    let vol = vols.name("vol-from");
    let dir = host_dir("from");
    let c = Case::new("vol-from");
    // The source container need not run.
    let mut args = vec!["create", "--name", &c.name, "--rootfs", c.rootfs()];
    let volume_flag = format!("{vol}:/shared");
    let bind_flag = format!("{dir}:/hostdir:ro");
    args.extend(["-v", &volume_flag, "-v", &bind_flag, GRACEFUL]);
    h.cleat(&args).ok();

    let n = c.another("vol-from-rw");
    let out = run(
        &n,
        &["--rm", "--volumes-from", &c.name],
        &sh(
            "echo shared > /shared/f; cat /hostdir/in; touch /hostdir/x 2>/dev/null || echo bind-ro",
        ),
    );
    out.ok().says("from-host").says("bind-ro");

    let n = c.another("vol-from-ro");
    let from_ro = format!("{}:ro", c.name);
    let out = run(
        &n,
        &["--rm", "--volumes-from", &from_ro],
        &sh("cat /shared/f; touch /shared/g 2>/dev/null && echo WROTE || echo volume-ro"),
    );
    out.ok().says("shared").says("volume-ro");
    assert!(!out.stdout.contains("WROTE"), "{out}");

    let n = c.another("vol-from-none");
    run(
        &n,
        &["--rm", "--volumes-from", "t-no-such-container"],
        &["true"],
    )
    .code_is(125)
    .says("no such container")
    .reads_clean();
    assert_no_container(&n);
}

#[test]
fn read_only_root_with_writable_volume_and_tmpfs() {
    let _g = shared();
    let mut vols = Volumes::new();
    let vol = vols.name("vol-ro-root");
    let c = Case::new("vol-ro-root");
    let out = run(
        &c.name,
        &[
            "--rm",
            "--read-only",
            "-v",
            &format!("{vol}:/data"),
            "--tmpfs",
            "/run",
        ],
        &sh(
            "touch /rootfile 2>/dev/null && echo ROOT-WRITABLE || echo root-ro; \
             touch /data/x && echo data-ok; touch /run/x && echo run-ok",
        ),
    );
    out.ok().says("root-ro").says("data-ok").says("run-ok");
    assert!(!out.stdout.contains("ROOT-WRITABLE"), "{out}");
}

#[test]
fn declared_container_mounts_from_toml() {
    let _g = shared();
    let h = host();
    let mut vols = Volumes::new();
    let vol = vols.name("vol-decl");
    let dir = host_dir("decl");
    let c = Case::new("vol-decl");
    let unit = declared_unit(&c.name);
    c.declare(&format!(
        r#"rootfs = "{}"
command = ["sh", "-c", "cat /b/in; touch /b/x 2>/dev/null || echo bind-ro; echo v > /v/f && cat /v/f; grep ' /t ' /proc/mounts; echo decl-done"]
volumes = ["{vol}:/v"]
mounts = [{{ type = "bind", source = "{dir}", target = "/b", readonly = true }}]
tmpfs = ["/t:size=1m"]
"#,
        c.rootfs()
    ));
    let _ = h.systemctl(&["start", &unit]);
    let journal = expect_journal(&unit, "decl-done");
    for want in ["from-host", "bind-ro", "size=1024k"] {
        assert!(journal.contains(want), "{want} missing:\n{journal}");
    }
    assert!(volume_exists(&vol));
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_mounts_are_refused_and_nothing_is_created() {
    let _g = shared();
    let h = host();
    let mut vols = Volumes::new();
    let vol = vols.name("vol-never");
    let c = Case::new("vol-bad");
    let missing = format!("/tmp/{}", unique_name("missing"));
    let existing = host_dir("bad");
    let never = format!("{vol}:/never");
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec!["-v".into(), format!("{missing}:/x")],
            vec![missing.as_str(), "does not exist"],
        ),
        (
            vec![
                "--mount".into(),
                format!("type=bind,source={missing},target=/x"),
            ],
            vec![missing.as_str(), "does not exist"],
        ),
        (
            vec!["-v".into(), "data:relative".into()],
            vec!["not absolute"],
        ),
        (vec!["-v".into(), "./rel:/x".into()], vec!["absolute"]),
        (
            vec!["-v".into(), format!("{existing}:/proc")],
            vec!["cannot mount over /proc"],
        ),
        (
            vec!["-v".into(), format!("{existing}:/dev")],
            vec!["cannot mount over /dev"],
        ),
        (vec!["--tmpfs".into(), "/dev/pts".into()], vec!["/dev/pts"]),
        (
            vec![
                "-v".into(),
                format!("{existing}:/x"),
                "--tmpfs".into(),
                "/x".into(),
            ],
            vec!["duplicate mount point", "/x"],
        ),
        (
            vec![
                "--mount".into(),
                format!("type=bind,sorce={existing},target=/x"),
            ],
            vec!["unknown key", "source"],
        ),
        (
            vec!["--tmpfs".into(), "/t:size=lots".into()],
            vec!["size=lots"],
        ),
    ];
    for (flags, needles) in &cases {
        for verb in [&["run"][..], &["run", "-d"], &["create"]] {
            let mut args: Vec<&str> = verb.to_vec();
            args.extend(["--name", &c.name, "-v", &never]);
            args.extend(flags.iter().map(String::as_str));
            args.extend(["--rootfs", c.rootfs(), "true"]);
            let out = h.cleat(&args);
            out.code_is(125).reads_clean();
            for n in needles {
                out.says(n);
            }
            assert_no_container(&c.name);
            assert!(
                !volume_exists(&vol),
                "a refused {args:?} created volume {vol}"
            );
        }
    }
    assert!(!h.exists(&missing), "a missing bind source was created");
}
