//! The process model: the container's PID 1 is the unit's main process, in its own
//! namespaces, with no cleat process left behind; and what `run` flags set inside (env,
//! working directory, user, hostname, entrypoint) and on the unit (limits).

use std::collections::BTreeMap;

use crate::host::{Case, GRACEFUL, SHOW_ENV, expect_active, expect_journal, host, main_pid};

/// Lines of a foreground `cleat run --rm` with these extra flags and command.
#[track_caller]
fn run_fg(c: &Case, flags: &[&str], cmd: &[&str]) -> Vec<String> {
    let mut args = vec!["run", "--rm", "--name", &c.name];
    args.extend_from_slice(flags);
    args.extend(["--rootfs", c.rootfs()]);
    args.extend_from_slice(cmd);
    let out = host().cleat(&args);
    out.ok();
    out.stdout.lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn container_is_pid_1_inside() {
    let c = Case::new("pid1");
    let lines = run_fg(&c, &[], &["sh", "-c", "echo pid=$$"]);
    assert!(lines.contains(&"pid=1".to_string()), "{lines:?}");
}

#[test]
fn main_pid_is_the_container_in_its_own_namespaces() {
    let h = host();
    let c = Case::new("mainpid");
    let unit = c.adhoc_unit();
    c.run(&["-d"], &[GRACEFUL]).ok();
    expect_journal(&unit, "ready");
    let pid = main_pid(&unit);
    assert!(pid > 0, "no MainPID");

    // The main process is the payload itself, PID 1 of its own PID namespace.
    let cmdline = h
        .sh(&format!("tr '\\0' ' ' </proc/{pid}/cmdline"))
        .ok()
        .stdout
        .clone();
    assert!(
        cmdline.contains(GRACEFUL),
        "MainPID {pid} is not the payload: {cmdline}"
    );
    let status = h.sh(&format!("cat /proc/{pid}/status")).ok().stdout.clone();
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap_or("");
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "{nspid}");

    // mount, PID, UTS and IPC namespaces differ from the (test) host's.
    for ns in ["mnt", "pid", "uts", "ipc"] {
        let links = h
            .sh(&format!(
                "readlink /proc/{pid}/ns/{ns}; readlink /proc/1/ns/{ns}"
            ))
            .ok()
            .stdout
            .clone();
        let v: Vec<&str> = links.lines().collect();
        assert_eq!(v.len(), 2, "{links}");
        assert_ne!(v[0], v[1], "the container shares the host's {ns} namespace");
    }
    // Its host name is the container's name.
    let hn = h.exec(&["nsenter", "-t", &pid.to_string(), "-u", "hostname"]);
    assert_eq!(hn.ok().stdout.trim(), c.name);
}

/// The PIDs in a unit's cgroup (recursively), read inside the test host.
fn cgroup_pids(unit: &str) -> Vec<i32> {
    let cg = host().prop(unit, "ControlGroup");
    assert!(!cg.is_empty(), "{unit} has no ControlGroup");
    let out = host().sh(&format!(
        "find '/sys/fs/cgroup{cg}' -name cgroup.procs -exec cat {{}} +"
    ));
    out.ok();
    out.stdout
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[track_caller]
fn assert_no_cleat_process(unit: &str) {
    let pids = cgroup_pids(unit);
    let main = main_pid(unit);
    assert!(
        pids.contains(&main),
        "MainPID {main} not in {unit}'s cgroup {pids:?}"
    );
    for pid in pids {
        let info = host().sh(&format!(
            "cat /proc/{pid}/comm; readlink /proc/{pid}/exe; tr '\\0' ' ' </proc/{pid}/cmdline"
        ));
        let text = info.stdout.clone();
        let comm = text.lines().next().unwrap_or("");
        let exe = text.lines().nth(1).unwrap_or("");
        assert!(
            comm != "cleat" && !exe.ends_with("/cleat"),
            "a cleat process stays resident in {unit}: pid {pid}:\n{text}"
        );
    }
}

#[test]
fn no_cleat_process_stays_resident() {
    let h = host();
    let c = Case::new("resident");
    let unit = c.adhoc_unit();
    c.run(&["-d"], &[GRACEFUL]).ok();
    expect_journal(&unit, "ready");
    assert_no_cleat_process(&unit);

    let d = c.another("resident-decl");
    h.write_file(
        &format!("/etc/cleat/containers/{d}.toml"),
        &format!("rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\n", c.rootfs()),
    );
    let dunit = crate::host::declared_unit(&d);
    h.systemctl(&["start", &dunit]).ok();
    expect_journal(&dunit, "ready");
    assert_no_cleat_process(&dunit);
}

#[test]
fn hostname_defaults_to_the_name_and_can_be_set() {
    let c = Case::new("hostname");
    let lines = run_fg(&c, &[], &["hostname"]);
    assert_eq!(lines.last(), Some(&c.name), "{lines:?}");
    let c2 = Case::new("hostname-set");
    let lines = run_fg(&c2, &["--hostname", "custom-host"], &["hostname"]);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("custom-host"),
        "{lines:?}"
    );
}

#[test]
fn environment_from_flags_and_env_file() {
    let h = host();
    let c = Case::new("env");
    let file = format!("/tmp/{}.env", c.name);
    h.write_file(&file, "# a comment\nFROM_FILE=yes\nFOO=from-file\n");
    let lines = run_fg(
        &c,
        &["-e", "FOO=bar", "-e", "SPACED=a b", "--env-file", &file],
        &[
            "sh",
            "-c",
            "echo \"FOO=$FOO\"; echo \"SPACED=$SPACED\"; echo \"FROM_FILE=$FROM_FILE\"",
        ],
    );
    for want in ["FOO=bar", "SPACED=a b", "FROM_FILE=yes"] {
        assert!(
            lines.iter().any(|l| l == want),
            "missing {want:?} in {lines:?}"
        );
    }
    h.remove(&file);
}

#[test]
fn working_dir_and_user() {
    let c = Case::new("user");
    let lines = run_fg(
        &c,
        &["-w", "/home/app", "-u", "app"],
        &["sh", "-c", "pwd; id -u; id -g; id -G"],
    );
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], "/home/app");
    assert_eq!(lines[1], "1000");
    assert_eq!(lines[2], "1000");
    let groups: Vec<&str> = lines[3].split_whitespace().collect();
    assert!(
        groups.contains(&"1000") && groups.contains(&"50"),
        "supplementary groups: {lines:?}"
    );

    let c = Case::new("user-num");
    let lines = run_fg(&c, &["-u", "65534"], &["id", "-u"]);
    assert_eq!(lines.last().map(String::as_str), Some("65534"), "{lines:?}");

    let c = Case::new("user-default");
    let lines = run_fg(&c, &["-w", "/tmp"], &["sh", "-c", "id -u; pwd"]);
    assert_eq!(lines, ["0", "/tmp"]);
}

#[test]
fn entrypoint_flag() {
    let c = Case::new("entrypoint");
    let lines = run_fg(&c, &["--entrypoint", "/bin/echo"], &["hello", "world"]);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("hello world"),
        "{lines:?}"
    );
}

#[test]
fn run_flags_become_unit_properties() {
    let h = host();
    let c = Case::new("props");
    let unit = c.adhoc_unit();
    h.cleat(&[
        "run",
        "-d",
        "--name",
        &c.name,
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "100",
        "--restart",
        "on-failure",
        "--stop-timeout",
        "3",
        "--stop-signal",
        "SIGUSR1",
        "-e",
        "PROP_TEST=1",
        "--rootfs",
        c.rootfs(),
        SHOW_ENV,
        "PROP_TEST",
    ])
    .ok();
    expect_active(&unit);
    let props = h.systemctl(&[
        "show",
        "-p",
        "MemoryMax,CPUQuotaPerSecUSec,TasksMax,Restart,TimeoutStopUSec,KillSignal,Slice",
        &unit,
    ]);
    props.ok();
    let map: BTreeMap<&str, &str> = props
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .collect();
    let want = [
        ("MemoryMax", "67108864"),
        ("CPUQuotaPerSecUSec", "500ms"),
        ("TasksMax", "100"),
        ("Restart", "on-failure"),
        ("TimeoutStopUSec", "3s"),
        ("KillSignal", "10"),
        ("Slice", "machine.slice"),
    ];
    for (k, v) in want {
        assert_eq!(map.get(k).copied(), Some(v), "{k}:\n{props}");
    }
    expect_journal(&unit, "PROP_TEST=1");
}
