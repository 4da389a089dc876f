//! Containers from images: the image config (Env, Entrypoint, Cmd, WorkingDir, User,
//! StopSignal) with Docker's precedence against flags and TOML, pull policies, and the root:
//! the image's layers, read-only and shared, under a per-container upper directory.

use std::time::Duration;

use super::fixtures::{
    PLAIN, PULL_TIMEOUT, STORE, THROTTLED, image, inspect, pull_ok, registries, registry_log,
    registry_log_until, requests_via, shared,
};
use super::tree::{Tree, assert_same_tree, walk_ok};
use crate::host::{
    Case, Output, declared_unit, expect_active, expect_journal, expect_stopped, host, ps_entry,
    wait_until,
};

fn run(args: &[&str]) -> Output {
    let mut argv = vec!["run"];
    argv.extend_from_slice(args);
    host().cleat_timeout(&argv, PULL_TIMEOUT)
}

#[track_caller]
fn has_line(out: &Output, line: &str) {
    assert!(
        out.stdout.lines().any(|l| l.trim_end() == line),
        "expected the line {line:?}:\n{out}"
    );
}

#[test]
fn run_takes_env_entrypoint_cmd_workdir_and_user_from_the_image() {
    registries();
    let _g = shared();
    let img = image(PLAIN, "busybox");
    let c = Case::new("img-cfg");

    // The image's everything; the command replaces Cmd, the entrypoint stays.
    let out = run(&["--rm", "--name", &c.name, &img, "/bin/report", "a", "b"]);
    out.code_is(0);
    has_line(&out, "entrypoint: /bin/report a b");
    has_line(&out, "report: uid=1000 gid=1000 cwd=/home/app");
    has_line(
        &out,
        "report: FIXTURE=busybox GREETING=hello from the image EXTRA=<unset>",
    );
    has_line(&out, "report: args=a b");

    // Flags win.
    let n = c.another("img-cfg-flags");
    let out = run(&[
        "--rm",
        "--name",
        &n,
        "-e",
        "EXTRA=x",
        "-e",
        "GREETING=over",
        "-w",
        "/tmp",
        "-u",
        "0:0",
        &img,
        "/bin/report",
    ]);
    out.code_is(0);
    has_line(&out, "report: uid=0 gid=0 cwd=/tmp");
    has_line(&out, "report: FIXTURE=busybox GREETING=over EXTRA=x");

    // A user name is looked up in the image's /etc/passwd.
    let n = c.another("img-cfg-user");
    let out = run(&["--rm", "--name", &n, "-u", "nobody", &img, "/bin/report"]);
    out.code_is(0);
    has_line(&out, "report: uid=65534 gid=65534 cwd=/home/app");

    // --entrypoint replaces the image's entrypoint (and its Cmd).
    let n = c.another("img-cfg-ep");
    let out = run(&[
        "--rm",
        "--name",
        &n,
        "--entrypoint",
        "/bin/report",
        &img,
        "x",
        "y",
    ]);
    out.code_is(0);
    assert!(
        !out.stdout.contains("entrypoint:"),
        "the image's entrypoint ran:\n{out}"
    );
    has_line(&out, "report: args=x y");
}

#[test]
fn run_detached_uses_the_image_cmd_and_stop_signal() {
    registries();
    let _g = shared();
    let h = host();
    let img = image(PLAIN, "busybox");
    let c = Case::new("img-stop");
    let unit = c.adhoc_unit();
    run(&["-d", "--name", &c.name, &img]).ok();
    expect_active(&unit);
    expect_journal(&unit, "serve: ready");
    let j = h.journal(&unit);
    assert!(j.contains("entrypoint: /bin/serve"), "{j}");
    assert!(j.contains("report: uid=1000 gid=1000 cwd=/home/app"), "{j}");
    // The image's StopSignal (SIGUSR1) stops it: exit 0, not SIGTERM's 143.
    h.cleat(&["stop", &c.name]).ok();
    assert_eq!(expect_stopped(&unit, Duration::from_secs(10)), "inactive");
    expect_journal(&unit, "serve: got USR1");
    let e = ps_entry(&c.name, true).expect("ps -a lists it");
    assert_eq!(e["exit_code"], 0, "{e}");
    h.cleat(&["rm", &c.name]).ok();
}

/// The paths under the store whose file name is `name`.
fn find_in_store(name: &str) -> Vec<String> {
    let out = host().sh(&format!("find {STORE} -name '{name}' 2>/dev/null || true"));
    out.stdout.lines().map(str::to_string).collect()
}

fn layer_trees(img: &str) -> Vec<(String, Tree)> {
    inspect(img)
        .layers
        .into_iter()
        .map(|l| {
            let t = walk_ok(&host().path(&l.path));
            (l.path, t)
        })
        .collect()
}

#[track_caller]
fn assert_layers_unchanged(before: &[(String, Tree)]) {
    for (path, t) in before {
        let now = walk_ok(&host().path(path));
        assert_same_tree(
            t,
            &now,
            &format!("layer {path} (a container wrote through it)"),
        );
    }
}

#[test]
fn container_writes_go_to_its_own_upper_layer_and_go_with_rm() {
    registries();
    let _g = shared();
    let h = host();
    let img = image(PLAIN, "busybox");
    pull_ok(&img);
    let layers = layer_trees(&img);
    let c = Case::new("img-upper");
    let unit = c.adhoc_unit();
    let marker = format!("marker-{}", c.name);
    // As root: write a file, change one and delete one of the image's.
    let script = format!(
        "echo written > /{marker} && echo extra >> /etc/passwd && rm /bin/report && \
         echo done-writing; trap 'exit 0' USR1 TERM; while :; do sleep 0.1; done"
    );
    run(&[
        "-d", "--name", &c.name, "-u", "0", &img, "sh", "-c", &script,
    ])
    .ok();
    expect_journal(&unit, "done-writing");

    let found = find_in_store(&marker);
    assert_eq!(
        found.len(),
        1,
        "the container's file, in the store: {found:?}"
    );
    for (path, _) in &layers {
        assert!(
            !found[0].starts_with(&format!("{path}/")),
            "the container wrote into layer {path}"
        );
    }
    assert_layers_unchanged(&layers);

    // A second container of the same image does not see the first one's writes.
    let other = c.another("img-upper-2");
    let out = run(&[
        "--rm",
        "--name",
        &other,
        "-u",
        "0",
        &img,
        "sh",
        "-c",
        &format!("test -e /{marker} && echo leaked; test -e /bin/report && echo intact"),
    ]);
    out.code_is(0);
    assert!(
        !out.stdout.lines().any(|l| l.trim() == "leaked"),
        "another container sees the first one's file:\n{out}"
    );
    has_line(&out, "intact");

    h.cleat(&["rm", "-f", &c.name]).ok();
    assert!(
        wait_until(Duration::from_secs(5), || find_in_store(&marker).is_empty()),
        "cleat rm left the container's upper layer: {:?}",
        find_in_store(&marker)
    );
    assert_layers_unchanged(&layers);
}

#[test]
fn declared_image_container_keeps_its_writes_across_restarts() {
    registries();
    let _g = shared();
    let h = host();
    let img = image(PLAIN, "busybox");
    let c = Case::new("img-decl");
    let unit = declared_unit(&c.name);
    let runs = format!("runs-{}", c.name);
    // As the image's user (app), in its home directory (owned by it in the image).
    c.declare(&format!(
        "image = \"{img}\"\n\
         command = [\"/bin/sh\", \"-c\", \"echo run >> /home/app/{runs}; echo runs=$(wc -l < /home/app/{runs}); echo whoami=$(id -u); trap 'exit 0' USR1 TERM; while :; do sleep 0.1; done\"]\n"
    ));
    let count = |needle: &str| h.journal(&unit).matches(needle).count();

    h.systemctl(&["start", &unit]).ok();
    expect_active(&unit);
    expect_journal(&unit, "runs=1");
    expect_journal(&unit, "whoami=1000");
    h.systemctl(&["restart", &unit]).ok();
    expect_journal(&unit, "runs=2");

    // rm drops the writable layer: the next start begins afresh.
    h.systemctl(&["stop", &unit]).ok();
    h.cleat(&["rm", &c.name]).ok();
    assert!(
        find_in_store(&runs).is_empty(),
        "cleat rm left the upper layer: {:?}",
        find_in_store(&runs)
    );
    h.systemctl(&["start", &unit]).ok();
    assert!(
        wait_until(Duration::from_secs(10), || count("runs=1") == 2),
        "after rm, a fresh start should count 1 again:\n{}",
        h.journal(&unit)
    );
    h.systemctl(&["stop", &unit]).ok();
}

#[test]
fn pull_policies_for_run_and_declared_containers() {
    registries();
    let _g = shared();
    let h = host();
    // Names only this test uses (through the proxy, so the registry log tells them apart).
    let img = image(THROTTLED, "busybox");
    let manifests = || requests_via(&registry_log(), THROTTLED, "/v2/busybox/manifests/");
    let c = Case::new("img-policy");

    // never, while absent: refused, and nothing asked of the registry.
    let n0 = manifests();
    let name = c.another("img-policy-never");
    run(&["--rm", "--pull", "never", "--name", &name, &img, "true"])
        .fails()
        .says(&img)
        .reads_clean();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(manifests(), n0, "--pull never asked the registry");

    // missing: pulled once.
    let name = c.another("img-policy-missing");
    run(&["--rm", "--pull", "missing", "--name", &name, &img, "true"]).code_is(0);
    let log = registry_log_until(|l| requests_via(l, THROTTLED, "/v2/busybox/manifests/") > n0);
    let n1 = requests_via(&log, THROTTLED, "/v2/busybox/manifests/");
    assert!(n1 > n0, "--pull missing did not pull");
    // missing (the default), while present: nothing asked.
    let name = c.another("img-policy-default");
    run(&["--rm", "--name", &name, &img, "true"]).code_is(0);
    let name = c.another("img-policy-never2");
    run(&["--rm", "--pull", "never", "--name", &name, &img, "true"]).code_is(0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(manifests(), n1, "a present image was looked up again");
    // always: asked every time.
    let name = c.another("img-policy-always");
    run(&["--rm", "--pull", "always", "--name", &name, &img, "true"]).code_is(0);
    registry_log_until(|l| requests_via(l, THROTTLED, "/v2/busybox/manifests/") > n1);
    assert!(manifests() > n1, "--pull always did not ask the registry");

    // A declared container with pull = "never" and an absent image does not start, and its
    // journal names the image; with pull = "missing" it does.
    let absent = image(THROTTLED, "public/busybox");
    let d = c.another("img-policy-decl");
    let unit = declared_unit(&d);
    let path = format!("/etc/cleat/containers/{d}.toml");
    h.write_file(&path, &format!("image = \"{absent}\"\npull = \"never\"\n"));
    let _ = h.systemctl(&["start", &unit]);
    let state = expect_stopped(&unit, Duration::from_secs(10));
    assert_eq!(
        state, "failed",
        "{unit} with an absent image and pull = never"
    );
    expect_journal(&unit, &absent);
    h.write_file(
        &path,
        &format!("image = \"{absent}\"\npull = \"missing\"\n"),
    );
    let _ = h.systemctl(&["reset-failed", &unit]);
    h.systemctl(&["start", &unit]).ok();
    expect_active(&unit);
    expect_journal(&unit, "serve: ready");
    h.systemctl(&["stop", &unit]).ok();
}

/// Forgets `img` and prunes, so that its layers must be downloaded again.
fn forget(img: &str) {
    let h = host();
    let _ = h.cleat(&["rmi", "-f", img]);
    h.cleat_timeout(&["image", "prune", "-a"], PULL_TIMEOUT)
        .ok();
}

/// A declared container whose image arrives slowly: the start timeout (2 s here) is extended
/// for as long as bytes keep flowing (EXTEND_TIMEOUT_USEC), so a 3-second pull still starts it.
#[test]
fn a_long_pull_extends_the_start_timeout_while_bytes_flow() {
    registries();
    let _g = super::fixtures::exclusive();
    let h = host();
    // 12 MB through the 4 MB/s proxy: about 3 s.
    let img = image(THROTTLED, "bulky");
    forget(&img);
    let c = Case::new("img-extend");
    let unit = declared_unit(&c.name);
    c.declare(&format!(
        "image = \"{img}\"\nentrypoint = []\ncommand = [\"sleep\", \"1000\"]\nstart-timeout = 2\n"
    ));
    h.daemon_reload();
    let out = h.exec_timeout(&["systemctl", "start", &unit], PULL_TIMEOUT);
    out.ok();
    assert!(
        out.elapsed > Duration::from_secs(2),
        "the pull was expected to outlast the 2 s start timeout, took {:?}",
        out.elapsed
    );
    expect_active(&unit);
    expect_journal(&unit, "downloading");
    h.systemctl(&["stop", &unit]).ok();
    h.cleat(&["rm", &c.name]).ok();
    forget(&img);
}

/// A declared container takes its image's StopSignal (SIGUSR1 for the busybox fixture) where
/// its definition sets none: the generator reads it from the store at daemon-reload; the
/// start sees no unit-level change (no daemon-reload warning).
#[test]
fn declared_container_takes_the_images_stop_signal() {
    registries();
    let _g = shared();
    let h = host();
    let img = image(PLAIN, "busybox");
    pull_ok(&img);
    let c = Case::new("img-stopsig");
    let unit = declared_unit(&c.name);
    c.declare(&format!(
        "image = \"{img}\"\nentrypoint = []\ncommand = [\"sh\", \"-c\", \"trap 'echo got-usr1; exit 0' USR1; while :; do sleep 0.1; done\"]\n"
    ));
    h.daemon_reload();
    assert_eq!(h.prop(&unit, "KillSignal"), "10", "the image's SIGUSR1");
    h.systemctl(&["start", &unit]).ok();
    expect_active(&unit);
    h.systemctl(&["stop", &unit]).ok();
    expect_journal(&unit, "got-usr1");
    assert_eq!(h.prop(&unit, "Result"), "success");
    assert!(
        !h.journal(&unit).contains("daemon-reload"),
        "a start warned about a daemon-reload:\n{}",
        h.journal(&unit)
    );
}
