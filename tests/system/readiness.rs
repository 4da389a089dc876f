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

/// The container's notifications go through cleat's relay: any process of the container may
/// report (here a child of the shell, as user app), and what would let it reach beyond its
/// unit is dropped: `MAINPID=` naming a process of the test host must not make systemd
/// watch (and at stop, kill) that process.
#[test]
fn notify_container_relays_readiness_but_never_mainpid() {
    let h = host();
    let c = Case::new("ready-relay");
    let dbus = h.prop("dbus.service", "MainPID");
    assert!(dbus.parse::<u32>().is_ok_and(|p| p > 1), "dbus: {dbus}");
    let script = format!(
        "sd-notify STATUS=starting MAINPID={dbus}; sleep 0.3; \
         sd-notify READY=1 STATUS=serving MAINPID={dbus} FDSTORE=1; exec sleep 1000"
    );
    let out = h.cleat(&[
        "run",
        "-d",
        "--notify",
        "container",
        "-u",
        "app",
        "--name",
        &c.name,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        &script,
    ]);
    out.ok();
    let unit = c.adhoc_unit();
    assert_eq!(h.prop(&unit, "ActiveState"), "active");
    assert_eq!(h.prop(&unit, "StatusText"), "serving");
    let main: u32 = h.prop(&unit, "MainPID").parse().expect("a main PID");
    assert_ne!(
        main.to_string(),
        dbus,
        "the container redirected the main PID"
    );
    // The main PID is still the container's own first process, in the unit's cgroup.
    let cgroup = h.exec(&["cat", &format!("/proc/{main}/cgroup")]).stdout;
    assert!(
        cgroup.contains(&unit),
        "main PID {main} is not the unit's: {cgroup}"
    );
    // The relay is gone: no cleat process stays with the running container.
    let procs = h.exec(&[
        "sh",
        "-c",
        &format!(
            "cat /sys/fs/cgroup$(systemctl show -p ControlGroup --value {unit})/cgroup.procs \
             | xargs -I@ cat /proc/@/comm"
        ),
    ]);
    assert!(!procs.stdout.contains("cleat"), "{procs}");
    h.cleat(&["rm", "-f", &c.name]).ok();
    // The test host's dbus-daemon survived the container's stop.
    assert_eq!(h.prop("dbus.service", "MainPID"), dbus);
}

/// The relay's socket lives in the container's state directory, whose path is longer than a
/// socket address may be for a long container name.
#[test]
fn notify_container_with_a_long_name() {
    let h = host();
    let c = Case::new("ready-long");
    let name = c.another(&"long".repeat(25));
    assert!(name.len() > 100, "{name}");
    h.cleat(&[
        "run",
        "-d",
        "--notify",
        "container",
        "--name",
        &name,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        "exec sd-notify READY=1 -- sleep 1000",
    ])
    .ok();
    assert_eq!(
        h.prop(&crate::host::adhoc_unit(&name), "ActiveState"),
        "active"
    );
    h.cleat(&["rm", "-f", &name]).ok();
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
