//! Ad-hoc containers (`cleat run`, transient units `cleat-NAME.service`) through their whole
//! life: run -d, run in the foreground, create + start, stop, kill, restart, rm, --rm.

use std::time::Duration;

use crate::host::{
    Case, GRACEFUL, STUBBORN, expect_active, expect_journal, expect_stopped, host, main_pid,
    ps_entry, wait_until,
};

/// Exits 0 on SIGUSR1, ignores SIGTERM.
const USR1_EXITS: &str =
    "trap 'echo got-usr1; exit 0' USR1; trap '' TERM; echo ready; while :; do sleep 0.1; done";

#[test]
fn run_detached_then_stop_and_rm() {
    let h = host();
    let c = Case::new("run-d");
    let unit = c.adhoc_unit();
    let out = c.run(&["-d"], &[GRACEFUL]);
    out.ok();
    assert_eq!(out.last_line(), c.name, "run -d prints the name:\n{out}");
    // -d returns once the unit is running.
    assert_eq!(h.prop(&unit, "ActiveState"), "active");
    assert_eq!(h.prop(&unit, "Slice"), "machine.slice");
    let e = ps_entry(&c.name, false).expect("cleat ps lists the running container");
    assert_eq!(e["state"], "running", "{e}");
    assert_eq!(e["kind"], "adhoc", "{e}");
    expect_journal(&unit, "ready");

    let out = h.cleat(&["stop", &c.name]);
    out.ok();
    assert!(
        out.elapsed < Duration::from_secs(8),
        "stop took {:?}",
        out.elapsed
    );
    // A container that exits on the stop signal leaves the unit inactive, not failed.
    assert_eq!(expect_stopped(&unit, Duration::from_secs(5)), "inactive");
    expect_journal(&unit, "graceful: got TERM");
    assert!(
        ps_entry(&c.name, false).is_none(),
        "ps without -a lists a stopped container"
    );
    let e = ps_entry(&c.name, true).expect("ps -a lists a stopped ad-hoc container");
    assert_eq!(e["state"], "exited", "{e}");
    assert_eq!(e["exit_code"], 0, "{e}");

    h.cleat(&["rm", &c.name]).ok();
    assert!(
        ps_entry(&c.name, true).is_none(),
        "ps -a still lists a removed container"
    );
    h.cleat(&["inspect", &c.name])
        .code_is(1)
        .says("no such container");
}

#[test]
fn run_in_foreground_propagates_output_and_exit_code() {
    let h = host();
    let c = Case::new("run-fg");
    let out = c.run(
        &[],
        &["sh", "-c", "echo out-marker; echo err-marker >&2; exit 7"],
    );
    out.code_is(7);
    assert!(
        out.stdout.contains("out-marker"),
        "container output not printed:\n{out}"
    );
    out.says("err-marker");

    // Still listed after it exited, with its exit code, until rm.
    let e = ps_entry(&c.name, true).expect("ps -a lists an exited ad-hoc container");
    assert_eq!(e["exit_code"], 7, "{e}");
    assert!(e["state"] == "exited" || e["state"] == "failed", "{e}");
    let logs = h.cleat(&["logs", &c.name]);
    logs.ok();
    assert!(logs.stdout.contains("out-marker"), "{logs}");

    h.cleat(&["rm", &c.name]).ok();
    assert!(ps_entry(&c.name, true).is_none());

    // And a successful one exits 0.
    let ok = c.another("run-fg-ok");
    h.cleat(&["run", "--rm", "--name", &ok, "--rootfs", c.rootfs(), "true"])
        .code_is(0);
}

#[test]
fn run_with_rm_vanishes_after_exit() {
    let h = host();
    let c = Case::new("run-rm");
    let out = c.run(&["--rm"], &["sh", "-c", "echo bye; exit 3"]);
    out.code_is(3);
    assert!(out.stdout.contains("bye"), "{out}");
    let unit = c.adhoc_unit();
    assert!(
        wait_until(Duration::from_secs(5), || ps_entry(&c.name, true).is_none()
            && h.prop(&unit, "LoadState") == "not-found"),
        "--rm container still there: LoadState={}",
        h.prop(&unit, "LoadState")
    );

    // Detached too: it goes away by itself once it exits.
    let d = c.another("run-rm-d");
    h.cleat(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &d,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        "sleep 0.5",
    ])
    .ok();
    let unit = crate::host::adhoc_unit(&d);
    assert!(
        wait_until(Duration::from_secs(8), || ps_entry(&d, true).is_none()
            && h.prop(&unit, "LoadState") == "not-found"),
        "detached --rm container still there after it exited"
    );
}

#[test]
fn create_then_start() {
    let h = host();
    let c = Case::new("create");
    let unit = c.adhoc_unit();
    let out = h.cleat(&[
        "create",
        "--name",
        &c.name,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        "echo started-marker; trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    out.ok();
    assert_eq!(out.last_line(), c.name, "create prints the name:\n{out}");
    assert_ne!(
        h.prop(&unit, "ActiveState"),
        "active",
        "create must not start it"
    );
    assert!(
        ps_entry(&c.name, false).is_none(),
        "ps without -a lists a created container"
    );
    let e = ps_entry(&c.name, true).expect("ps -a lists a created container");
    assert_eq!(e["state"], "created", "{e}");
    assert!(e["pid"].is_null(), "{e}");
    assert!(!h.journal(&unit).contains("started-marker"));

    h.cleat(&["start", &c.name]).ok();
    expect_active(&unit);
    expect_journal(&unit, "started-marker");
    assert_eq!(
        ps_entry(&c.name, false).expect("running")["state"],
        "running"
    );

    // Stopped, it can be started again.
    h.cleat(&["stop", &c.name]).ok();
    expect_stopped(&unit, Duration::from_secs(5));
    h.cleat(&["start", &c.name]).ok();
    expect_active(&unit);
    h.cleat(&["rm", "-f", &c.name]).ok();
    expect_stopped(&unit, Duration::from_secs(5));
    assert!(ps_entry(&c.name, true).is_none());
}

#[test]
fn run_without_name_generates_one() {
    let h = host();
    let c = Case::new("noname");
    let out = h.cleat(&["run", "-d", "--rootfs", c.rootfs(), GRACEFUL]);
    out.ok();
    let name = out.last_line().to_string();
    c.adopt(&name);
    assert!(
        !name.is_empty() && !name.contains(char::is_whitespace),
        "{out}"
    );
    expect_active(&crate::host::adhoc_unit(&name));
    assert!(
        ps_entry(&name, false).is_some(),
        "generated name {name:?} not in ps"
    );
    h.cleat(&["rm", "-f", &name]).ok();
}

#[test]
fn restart_replaces_the_process() {
    let h = host();
    let c = Case::new("restart");
    let unit = c.adhoc_unit();
    c.run(&["-d"], &[GRACEFUL]).ok();
    let before = main_pid(&unit);
    assert!(before > 0);
    h.cleat(&["restart", &c.name]).ok();
    expect_active(&unit);
    let after = main_pid(&unit);
    assert!(after > 0 && after != before, "MainPID {before} -> {after}");
    // The old one was stopped gracefully.
    expect_journal(&unit, "graceful: got TERM");
}

#[test]
fn rm_refuses_a_running_container_without_force() {
    let h = host();
    let c = Case::new("rm-running");
    let unit = c.adhoc_unit();
    c.run(&["-d"], &[GRACEFUL]).ok();
    h.cleat(&["rm", &c.name]).code_is(1);
    assert_eq!(
        h.prop(&unit, "ActiveState"),
        "active",
        "rm without -f stopped it"
    );
    assert!(ps_entry(&c.name, false).is_some());
    h.cleat(&["rm", "-f", &c.name]).ok();
    expect_stopped(&unit, Duration::from_secs(5));
    assert!(ps_entry(&c.name, true).is_none());
}

#[test]
fn kill_is_immediate_and_final() {
    let h = host();
    let c = Case::new("kill");
    let unit = c.adhoc_unit();
    h.cleat(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        &c.name,
        "--rootfs",
        c.rootfs(),
        STUBBORN,
    ])
    .ok();
    expect_journal(&unit, "ready");
    let out = h.cleat(&["kill", &c.name]);
    out.ok();
    assert!(
        out.elapsed < Duration::from_secs(5),
        "kill took {:?}",
        out.elapsed
    );
    expect_stopped(&unit, Duration::from_secs(3));
    // No restart afterwards, despite --restart always (systemd's RestartSec is 100ms).
    std::thread::sleep(Duration::from_millis(1500));
    let state = h.prop(&unit, "ActiveState");
    assert!(
        state == "inactive" || state == "failed",
        "restarted after kill: {state}"
    );
    let n = h.prop(&unit, "NRestarts");
    assert!(n.is_empty() || n == "0", "NRestarts={n}");
    let e = ps_entry(&c.name, true).expect("ps -a lists a killed container");
    assert_ne!(e["state"], "running", "{e}");
}

#[test]
fn kill_with_a_signal() {
    let h = host();
    let c = Case::new("kill-s");
    let unit = c.adhoc_unit();
    c.run(&["-d"], &["sh", "-c", USR1_EXITS]).ok();
    expect_journal(&unit, "ready");
    h.cleat(&["kill", "-s", "USR1", &c.name]).ok();
    expect_journal(&unit, "got-usr1");
    expect_stopped(&unit, Duration::from_secs(5));
}

#[test]
fn stop_with_timeout_kills_a_payload_ignoring_sigterm() {
    let h = host();
    let c = Case::new("stop-t");
    let unit = c.adhoc_unit();
    c.run(&["-d"], &[STUBBORN]).ok();
    expect_journal(&unit, "ready");
    let out = h.cleat(&["stop", "-t", "1", &c.name]);
    out.ok();
    // About 1 s (the grace period), certainly not systemd's or Docker's default 10 s.
    assert!(
        out.elapsed < Duration::from_secs(8),
        "stop -t 1 took {:?}",
        out.elapsed
    );
    assert!(
        out.elapsed >= Duration::from_millis(900),
        "stop -t 1 returned after {:?}: it did not wait for the grace period",
        out.elapsed
    );
    expect_stopped(&unit, Duration::from_secs(3));
    assert!(ps_entry(&c.name, false).is_none());
}

#[test]
fn stop_sends_the_stop_signal() {
    let h = host();
    let c = Case::new("stop-sig");
    let unit = c.adhoc_unit();
    h.cleat(&[
        "run",
        "-d",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "8",
        "--name",
        &c.name,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        USR1_EXITS,
    ])
    .ok();
    expect_journal(&unit, "ready");
    let out = h.cleat(&["stop", &c.name]);
    out.ok();
    assert!(
        out.elapsed < Duration::from_secs(5),
        "stop took {:?}: SIGUSR1 not sent?",
        out.elapsed
    );
    expect_journal(&unit, "got-usr1");
    assert_eq!(expect_stopped(&unit, Duration::from_secs(3)), "inactive");
    let e = ps_entry(&c.name, true).expect("listed by ps -a");
    assert_eq!(e["exit_code"], 0, "{e}");
}

#[test]
fn restart_on_failure_restarts_a_crashing_container() {
    let h = host();
    let c = Case::new("crash-adhoc");
    let unit = c.adhoc_unit();
    h.cleat(&[
        "run",
        "-d",
        "--restart",
        "on-failure",
        "--name",
        &c.name,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        "echo crashing; sleep 0.3; exit 3",
    ])
    .ok();
    assert_eq!(h.prop(&unit, "Restart"), "on-failure");
    let mut n = 0;
    assert!(
        wait_until(Duration::from_secs(15), || {
            n = h.prop(&unit, "NRestarts").parse().unwrap_or(0);
            n >= 2
        }),
        "NRestarts={n}"
    );
    h.cleat(&["rm", "-f", &c.name]).ok();
}

/// `kill` of a `--rm` container: its ExecStopPost= must survive the kill, so the container is
/// removed (and nothing is left in the state directory).
#[test]
fn kill_of_an_auto_removing_container_still_removes_it() {
    let h = host();
    let c = Case::new("kill-rm");
    c.run(&["-d", "--rm"], &[GRACEFUL]).ok();
    expect_active(&c.adhoc_unit());
    h.cleat(&["kill", &c.name]).ok();
    assert!(
        wait_until(Duration::from_secs(10), || ps_entry(&c.name, true)
            .is_none()),
        "a killed --rm container is still listed"
    );
    assert!(
        !h.exists(&format!("/var/lib/cleat/containers/{}", c.name)),
        "state left behind"
    );
}
