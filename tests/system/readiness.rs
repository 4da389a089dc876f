//! When a unit counts as started (DESIGN decision 5), and what happens when the payload
//! cannot be run at all.

use std::time::Duration;

use crate::host::{Case, expect_journal, host, wait_until};

#[test]
fn by_default_ready_once_the_payload_runs_and_no_socket_leaks_in() {
    let h = host();
    let c = Case::new("ready-exec");
    let out = c.run(
        &["-d"],
        &["sh", "-c", "echo notify=${NOTIFY_SOCKET:-none}; sleep 1000"],
    );
    out.ok();
    assert!(
        out.elapsed < Duration::from_secs(3),
        "run -d of a payload that never notifies took {:?}",
        out.elapsed
    );
    assert_eq!(h.prop(&c.adhoc_unit(), "ActiveState"), "active");
    expect_journal(&c.adhoc_unit(), "notify=none");
    h.cleat(&["rm", "-f", &c.name]).ok();
}

#[test]
fn notify_container_waits_for_the_payloads_ready() {
    let h = host();
    let c = Case::new("ready-container");
    let out = h.cleat(&[
        "run",
        "-d",
        "--notify",
        "container",
        "--name",
        &c.name,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        "echo socket=$NOTIFY_SOCKET; sleep 1.5; exec sd-notify READY=1 STATUS=serving -- sleep 1000",
    ]);
    out.ok();
    assert!(
        out.elapsed >= Duration::from_millis(1400),
        "run -d returned after {:?}, before the payload said READY=1",
        out.elapsed
    );
    let unit = c.adhoc_unit();
    assert_eq!(h.prop(&unit, "ActiveState"), "active");
    assert_eq!(h.prop(&unit, "StatusText"), "serving");
    expect_journal(&unit, "socket=/run/host/notify");
    h.cleat(&["rm", "-f", &c.name]).ok();
}

#[test]
fn notify_container_that_never_reports_times_out() {
    let h = host();
    let c = Case::new("ready-never");
    let unit = c.declared_unit();
    c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"sleep\", \"1000\"]\nnotify = \"container\"\nstart-timeout = 2\n",
        c.rootfs()
    ));
    h.daemon_reload();
    let out = h.systemctl(&["start", &unit]);
    out.fails();
    assert!(
        out.elapsed >= Duration::from_millis(1900) && out.elapsed < Duration::from_secs(20),
        "start gave up after {:?}",
        out.elapsed
    );
    assert_eq!(h.prop(&unit, "Result"), "timeout");
    h.systemctl(&["reset-failed", &unit]);
}

#[test]
fn a_command_that_cannot_run_exits_126_or_127_as_in_docker() {
    let h = host();
    let c = Case::new("exec-fail");
    c.run(&[], &["no-such-command"])
        .code_is(127)
        .says("executable file not found");
    let other = c.another("exec-noexec");
    h.cleat(&[
        "run",
        "--name",
        &other,
        "--rootfs",
        c.rootfs(),
        "/etc/passwd",
    ])
    .code_is(126)
    .says("permission denied");
    let dir = c.another("exec-dir");
    h.cleat(&["run", "-d", "--name", &dir, "--rootfs", c.rootfs(), "/etc"])
        .code_is(126);
    for n in [&c.name, &other, &dir] {
        let e = crate::host::ps_entry(n, true).expect("a failed run is still listed");
        assert_eq!(e["state"], "exited", "{e}");
    }
}

#[test]
fn a_declared_command_that_cannot_run_is_the_units_exit_status() {
    let h = host();
    let c = Case::new("decl-exec-fail");
    let unit = c.declared_unit();
    c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"no-such-command\"]\n",
        c.rootfs()
    ));
    h.systemctl(&["start", &unit]).fails();
    assert!(wait_until(Duration::from_secs(5), || h
        .prop(&unit, "ExecMainStatus")
        == "127"));
    expect_journal(&unit, "executable file not found in $PATH");
    h.systemctl(&["reset-failed", &unit]);
}
