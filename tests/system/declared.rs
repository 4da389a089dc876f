//! Declared containers: `/etc|/run|/usr/lib/cleat/containers/NAME.toml` plus drop-ins, run by
//! the real template `container@.service`, with unit-level settings compiled by
//! `cleat-generator` at daemon-reload.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::host::{
    Case, GRACEFUL, SHOW_ENV, declared_unit, expect_active, expect_journal, expect_stopped, host,
    main_pid, ps_entry, wait_until,
};

fn props(unit: &str, names: &str) -> BTreeMap<String, String> {
    let out = host().systemctl(&["show", "-p", names, unit]);
    out.ok();
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn exit_status_becomes_exec_main_status() {
    let h = host();
    let c = Case::new("decl-exit");
    let unit = c.declared_unit();
    c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"sh\", \"-c\", \"echo declared-marker; exit 7\"]\n",
        c.rootfs()
    ));
    // The start job itself may succeed or fail depending on how fast the payload exits.
    let _ = h.systemctl(&["start", &unit]);
    let mut st = BTreeMap::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            st = props(&unit, "ActiveState,ExecMainStatus,ExecMainCode,Result");
            st.get("ExecMainStatus").map(String::as_str) == Some("7")
                && st.get("ActiveState").map(String::as_str) != Some("active")
        }),
        "{st:?}"
    );
    assert_eq!(st["Result"], "exit-code", "{st:?}");
    assert_eq!(st["ExecMainCode"], "1", "CLD_EXITED expected: {st:?}");
    let journal = expect_journal(&unit, "declared-marker");
    let logs = h.cleat(&["logs", &c.name]);
    logs.ok();
    assert!(
        logs.stdout.contains("declared-marker"),
        "{logs}\njournal:\n{journal}"
    );
    let e = ps_entry(&c.name, true).expect("ps -a lists a declared container");
    assert_eq!(e["kind"], "declared", "{e}");
    assert_eq!(e["exit_code"], 7, "{e}");
}

#[test]
fn lifecycle_through_systemctl_and_cleat() {
    let h = host();
    let c = Case::new("decl-life");
    let unit = c.declared_unit();
    c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\n",
        c.rootfs()
    ));

    h.systemctl(&["start", &unit]).ok();
    expect_active(&unit);
    let pid = main_pid(&unit);
    assert!(pid > 0);
    let e = ps_entry(&c.name, false).expect("ps lists a running declared container");
    assert_eq!(e["kind"], "declared", "{e}");
    assert_eq!(e["unit"], unit.as_str(), "{e}");
    assert_eq!(e["state"], "running", "{e}");
    assert_eq!(e["pid"], pid, "{e}");

    let out = h.cleat(&["stop", &c.name]);
    out.ok();
    assert_eq!(expect_stopped(&unit, Duration::from_secs(5)), "inactive");
    assert_eq!(h.prop(&unit, "Result"), "success");
    expect_journal(&unit, "graceful: got TERM");

    h.cleat(&["start", &c.name]).ok();
    expect_active(&unit);
    let pid = main_pid(&unit);
    h.cleat(&["restart", &c.name]).ok();
    expect_active(&unit);
    let pid2 = main_pid(&unit);
    assert!(pid2 > 0 && pid2 != pid, "MainPID {pid} -> {pid2}");

    // systemctl stop: stop signal to PID 1, which exits 0: inactive, not failed.
    h.systemctl(&["stop", &unit]).ok();
    assert_eq!(h.prop(&unit, "ActiveState"), "inactive");
    assert_eq!(h.prop(&unit, "Result"), "success");
    // Declared containers are not removed by stopping them.
    assert!(ps_entry(&c.name, true).is_some());
}

#[test]
fn restart_on_failure_restarts_a_crashing_container() {
    let h = host();
    let c = Case::new("decl-crash");
    let unit = c.declared_unit();
    c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"sh\", \"-c\", \"echo crashing; sleep 0.3; exit 3\"]\n\
         restart = \"on-failure\"\nrestart-delay = \"100ms\"\n",
        c.rootfs()
    ));
    h.daemon_reload();
    assert_eq!(h.prop(&unit, "Restart"), "on-failure");
    let _ = h.systemctl(&["start", "--no-block", &unit]);
    let mut n = 0;
    assert!(
        wait_until(Duration::from_secs(15), || {
            n = h.prop(&unit, "NRestarts").parse().unwrap_or(0);
            n >= 2
        }),
        "NRestarts={n}"
    );
    let journal = h.journal(&unit);
    assert!(journal.matches("crashing").count() >= 2, "{journal}");
    h.systemctl(&["stop", &unit]).ok();
}

#[test]
fn drop_in_precedence_across_directories() {
    let h = host();
    let c = Case::new("dropins");
    let n = &c.name;
    let unit = c.declared_unit();
    // The main file in /usr/lib (the vendor's), drop-ins from /etc and /run, merged in
    // file-name order; a /run drop-in masks the /usr/lib one of the same name.
    h.write_file(
        &format!("/usr/lib/cleat/containers/{n}.toml"),
        &format!(
            "rootfs = \"{}\"\ncommand = [\"{SHOW_ENV}\", \"A\", \"B\", \"C\", \"D\"]\n\
             env = {{ A = \"usr\", B = \"usr\", C = \"usr\" }}\n\
             restart = \"no\"\nstop-timeout = \"20s\"\n",
            c.rootfs()
        ),
    );
    h.write_file(
        &format!("/etc/cleat/containers/{n}.toml.d/10-etc.toml"),
        "env = { B = \"etc\" }\nrestart = \"on-failure\"\n",
    );
    h.write_file(
        &format!("/run/cleat/containers/{n}.toml.d/20-run.toml"),
        "env = { C = \"run\" }\nstop-timeout = \"3s\"\n",
    );
    h.write_file(
        &format!("/usr/lib/cleat/containers/{n}.toml.d/20-run.toml"),
        "env = { C = \"shadowed\", D = \"shadowed\" }\nstop-timeout = \"30s\"\n",
    );
    h.daemon_reload();

    let p = props(&unit, "Restart,TimeoutStopUSec");
    assert_eq!(
        p.get("Restart").map(String::as_str),
        Some("on-failure"),
        "{p:?}"
    );
    assert_eq!(
        p.get("TimeoutStopUSec").map(String::as_str),
        Some("3s"),
        "{p:?}"
    );

    h.systemctl(&["start", &unit]).ok();
    let journal = expect_journal(&unit, "ready");
    let lines: Vec<&str> = journal.lines().collect();
    for want in ["A=usr", "B=etc", "C=run", "D=<unset>"] {
        assert!(
            lines.contains(&want),
            "missing {want:?} in the container's env:\n{journal}"
        );
    }

    // The /etc main file replaces the /usr/lib one entirely (no merging of main files).
    h.write_file(
        &format!("/etc/cleat/containers/{n}.toml"),
        &format!(
            "rootfs = \"{}\"\ncommand = [\"{SHOW_ENV}\", \"A\", \"B\", \"E\"]\nenv = {{ E = \"etc-main\" }}\n",
            c.rootfs()
        ),
    );
    h.daemon_reload();
    h.systemctl(&["restart", &unit]).ok();
    let journal = expect_journal(&unit, "E=etc-main");
    // The drop-ins still apply on top of the new main file.
    let tail: Vec<&str> = {
        let all: Vec<&str> = journal.lines().collect();
        let start = all.iter().rposition(|l| l.starts_with("A=")).unwrap_or(0);
        all[start..].to_vec()
    };
    assert!(
        tail.contains(&"A=<unset>"),
        "A from the masked /usr/lib file leaked: {tail:?}"
    );
    assert!(
        tail.contains(&"B=etc"),
        "the /etc drop-in no longer applies: {tail:?}"
    );
    assert!(tail.contains(&"E=etc-main"), "{tail:?}");
    h.systemctl(&["stop", &unit]).ok();
}

#[test]
fn container_settings_are_read_at_each_start() {
    let h = host();
    let c = Case::new("reread");
    let unit = c.declared_unit();
    let def = |msg: &str| {
        format!(
            "rootfs = \"{}\"\ncommand = [\"{SHOW_ENV}\", \"MSG\"]\nenv = {{ MSG = \"{msg}\" }}\n",
            c.rootfs()
        )
    };
    c.declare(&def("first"));
    h.daemon_reload();
    h.systemctl(&["start", &unit]).ok();
    expect_journal(&unit, "MSG=first");
    // No daemon-reload: container-level settings are read by the start itself.
    c.declare(&def("second"));
    h.systemctl(&["restart", &unit]).ok();
    let journal = expect_journal(&unit, "MSG=second");
    // Only container-level settings changed: nothing for daemon-reload to pick up.
    assert!(
        !journal.contains("daemon-reload"),
        "a container-level change must not ask for daemon-reload:\n{journal}"
    );
    h.systemctl(&["stop", &unit]).ok();
}

#[test]
fn start_warns_when_unit_settings_changed_without_daemon_reload() {
    let h = host();
    let c = Case::new("reload-warn");
    let unit = c.declared_unit();
    let def = |restart: &str| {
        format!(
            "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\nrestart = \"{restart}\"\n",
            c.rootfs()
        )
    };
    c.declare(&def("no"));
    h.daemon_reload();
    h.systemctl(&["start", &unit]).ok();
    let journal = expect_journal(&unit, "ready");
    assert!(
        !journal.contains("daemon-reload"),
        "warning although nothing changed since daemon-reload:\n{journal}"
    );
    h.systemctl(&["stop", &unit]).ok();
    // A unit-level setting changes; the generator has not seen it (and must not, through
    // another test's daemon-reload, before this start).
    let no_reload = h.hold_reloads();
    c.declare(&def("on-failure"));
    let _ = h.systemctl(&["start", &unit]);
    drop(no_reload);
    expect_journal(&unit, "systemctl daemon-reload");
    h.systemctl(&["stop", &unit]).ok();
}

#[test]
fn generator_compiles_unit_level_settings() {
    let h = host();
    let c = Case::new("gen");
    let dep = c.another("gen-dep");
    let unit = c.declared_unit();
    let dep_unit = declared_unit(&dep);
    h.write_file(
        &format!("/etc/cleat/containers/{dep}.toml"),
        &format!("rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\n", c.rootfs()),
    );
    c.declare(&format!(
        r#"rootfs = "{rootfs}"
command = ["sh", "-c", "trap 'exit 0' USR1; echo ready; while :; do sleep 0.1; done"]
description = "generator test {name}"
restart = "on-failure"
restart-delay = "200ms"
stop-timeout = "3s"
stop-signal = "SIGUSR1"
memory = "64M"
cpus = 0.5
pids-limit = 100
depends-on = ["{dep}"]

[unit]
wants = ["dbus.service"]
after = ["dbus.service"]
"#,
        rootfs = c.rootfs(),
        name = c.name,
    ));
    h.daemon_reload();
    let p = props(
        &unit,
        "Description,Restart,RestartUSec,TimeoutStopUSec,KillSignal,MemoryMax,TasksMax,\
         CPUQuotaPerSecUSec,Requires,Wants,After",
    );
    let want = [
        ("Description", format!("generator test {}", c.name)),
        ("Restart", "on-failure".into()),
        ("RestartUSec", "200ms".into()),
        ("TimeoutStopUSec", "3s".into()),
        ("KillSignal", "10".into()),
        ("MemoryMax", "67108864".into()),
        ("TasksMax", "100".into()),
        ("CPUQuotaPerSecUSec", "500ms".into()),
    ];
    for (k, v) in want {
        assert_eq!(p.get(k), Some(&v), "{k}: {p:?}");
    }
    let has = |k: &str, u: &str| {
        p.get(k)
            .is_some_and(|v| v.split_whitespace().any(|x| x == u))
    };
    assert!(has("Requires", &dep_unit), "depends-on -> Requires: {p:?}");
    assert!(has("After", &dep_unit), "depends-on -> After: {p:?}");
    assert!(has("Wants", "dbus.service"), "[unit] wants: {p:?}");
    assert!(has("After", "dbus.service"), "[unit] after: {p:?}");

    // Starting it starts its dependency first.
    h.systemctl(&["start", &unit]).ok();
    expect_active(&dep_unit);
    expect_journal(&unit, "ready");
    // And the stop signal is SIGUSR1: a quick, clean stop.
    let t = Instant::now();
    h.systemctl(&["stop", &unit]).ok();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(h.prop(&unit, "Result"), "success");
    h.systemctl(&["stop", &dep_unit]).ok();
}

#[test]
fn stop_signal_and_stop_timeout() {
    let h = host();
    let c = Case::new("stop-decl");
    let unit = c.declared_unit();
    c.declare(&format!(
        r#"rootfs = "{}"
command = ["sh", "-c", "trap 'echo got-usr1; exit 0' USR1; trap '' TERM; echo ready; while :; do sleep 0.1; done"]
stop-signal = "SIGUSR1"
stop-timeout = "8s"
"#,
        c.rootfs()
    ));
    h.daemon_reload();
    h.systemctl(&["start", &unit]).ok();
    expect_journal(&unit, "ready");
    let t = Instant::now();
    h.systemctl(&["stop", &unit]).ok();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t.elapsed()
    );
    expect_journal(&unit, "got-usr1");
    assert_eq!(h.prop(&unit, "ActiveState"), "inactive");
    assert_eq!(h.prop(&unit, "Result"), "success");

    // A payload that ignores the stop signal is killed after stop-timeout.
    let s = c.another("stop-decl-stubborn");
    let sunit = declared_unit(&s);
    h.write_file(
        &format!("/etc/cleat/containers/{s}.toml"),
        &format!(
            "rootfs = \"{}\"\ncommand = [\"{}\"]\nstop-timeout = \"1s\"\n",
            c.rootfs(),
            crate::host::STUBBORN
        ),
    );
    h.daemon_reload();
    h.systemctl(&["start", &sunit]).ok();
    expect_journal(&sunit, "ready");
    let t = Instant::now();
    let _ = h.systemctl(&["stop", &sunit]);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "stop took only {took:?}"
    );
    assert_ne!(h.prop(&sunit, "ActiveState"), "active");
}

#[test]
fn systemctl_enable_now_on_the_template() {
    let h = host();
    let c = Case::new("enable");
    let unit = c.declared_unit();
    c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\n",
        c.rootfs()
    ));
    // enable and disable reload systemd themselves.
    {
        let _one_reload_at_a_time = h.hold_reloads();
        h.systemctl(&["enable", "--now", &unit]).ok();
    }
    let link = format!("/etc/systemd/system/multi-user.target.wants/{unit}");
    assert!(h.exists(&link), "{link} missing after systemctl enable");
    expect_active(&unit);
    {
        let _one_reload_at_a_time = h.hold_reloads();
        h.systemctl(&["disable", "--now", &unit]).ok();
    }
    assert!(
        !h.exists(&link),
        "{link} still there after systemctl disable"
    );
    assert_ne!(h.prop(&unit, "ActiveState"), "active");
}

#[test]
fn install_wanted_by_through_the_generator() {
    let h = host();
    let c = Case::new("wantedby");
    let unit = c.declared_unit();
    let target = format!("{}.target", c.another("wantedby-target"));
    h.write_file(
        &format!("/etc/systemd/system/{target}"),
        "[Unit]\nDescription=cleat test target\n",
    );
    c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\n\n[install]\nwanted-by = [\"{target}\"]\n",
        c.rootfs()
    ));
    h.daemon_reload();
    let wants = h.prop(&target, "Wants");
    assert!(
        wants.split_whitespace().any(|u| u == unit),
        "{target} Wants={wants}: [install] wanted-by not linked"
    );
    h.systemctl(&["start", &target]).ok();
    expect_active(&unit);
    h.systemctl(&["stop", &target, &unit]).ok();
    h.remove(&format!("/etc/systemd/system/{target}"));
}
