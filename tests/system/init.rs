//! `--init` (issue 4): a tiny PID 1 of cleat's runs the payload as its child, reaps orphans,
//! forwards the stop signal and exits with the payload's status.

use std::time::Duration;

use crate::host::{
    Case, expect_active, expect_journal, expect_stopped, host, ps_entry, wait_until,
};
use crate::inside::{Facts, default_caps, facts, reports, run_in_rootfs};

#[test]
fn init_is_pid_1_and_the_payload_is_its_child() {
    let c = Case::new("init-pid");
    let f = facts(&c.name, &["--init"]);
    assert!(
        f.int("pid") >= 2,
        "--init: the payload is PID {}:\n{}",
        f.int("pid"),
        f.out
    );
    assert_eq!(f.int("ppid"), 1, "--init: the payload's parent:\n{}", f.out);
    assert_eq!(
        f.v["pid1"]["comm"], "cleat-init",
        "--init: PID 1 is not cleat's init: {}",
        f.v["pid1"]
    );
    // Without it, the payload is PID 1.
    let n = c.another("init-none");
    let f = facts(&n, &[]);
    assert_eq!(f.int("pid"), 1, "{}", f.out);
}

/// Runs `probe orphan`: an orphan that exits 50 ms after it is made, watched until it is
/// reaped or stays a zombie (at most 10 s, for a loaded machine).
#[track_caller]
fn orphan_report(name: &str, flags: &[&str]) -> serde_json::Value {
    let out = run_in_rootfs(name, flags, &["orphan", "10000"]);
    out.ok();
    reports(&out)
        .into_iter()
        .find(|r| r.get("orphan").is_some())
        .unwrap_or_else(|| panic!("no orphan report:\n{out}"))
}

#[test]
fn init_reaps_orphans() {
    let c = Case::new("init-reap");
    let r = orphan_report(&c.name, &["--init"]);
    assert!(
        r["orphan_now"].is_null(),
        "--init: the orphan is still there: {r}"
    );
    assert_eq!(r["zombies"], serde_json::json!([]), "--init: zombies: {r}");
    // The check sees zombies when nobody reaps: the probe as PID 1 does not.
    let n = c.another("init-reap-none");
    let r = orphan_report(&n, &[]);
    assert_eq!(
        r["orphan_now"]["state"], "Z",
        "without --init the orphan should stay a zombie of the probe: {r}"
    );
}

/// Waits until a process named `comm` runs in the unit's cgroup.
fn wait_for_process(unit: &str, comm: &str) -> bool {
    wait_until(Duration::from_secs(10), || {
        let cg = host().prop(unit, "ControlGroup");
        if cg.is_empty() {
            return false;
        }
        let out = host().sh(&format!(
            "for p in $(find '/sys/fs/cgroup{cg}' -name cgroup.procs -exec cat {{}} +); do \
             cat /proc/$p/comm; done"
        ));
        out.stdout.lines().any(|l| l.trim() == comm)
    })
}

#[test]
fn init_forwards_the_stop_signal() {
    let h = host();
    // The contract's payload: a shell that exits 0 on SIGTERM while waiting for a child.
    let c = Case::new("init-term");
    let unit = c.adhoc_unit();
    c.run(
        &["-d", "--init"],
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo ready; sleep 1000 & wait",
        ],
    )
    .ok();
    expect_journal(&unit, "ready");
    assert!(
        wait_for_process(&unit, "sleep"),
        "the payload's sleep never ran"
    );
    let out = h.cleat(&["stop", &c.name]);
    out.ok();
    assert!(
        out.elapsed < Duration::from_secs(5),
        "stop took {:?}: SIGTERM not forwarded?",
        out.elapsed
    );
    assert_eq!(expect_stopped(&unit, Duration::from_secs(3)), "inactive");
    let e = ps_entry(&c.name, true).expect("listed by ps -a");
    assert_eq!(e["exit_code"], 0, "{e}");

    // A payload that handles nothing: as PID 1 it would ignore SIGTERM; under the init it
    // gets it and dies, and the stop is not a failure.
    let n = c.another("init-term-sleep");
    let nunit = crate::host::adhoc_unit(&n);
    h.cleat(&[
        "run",
        "-d",
        "--init",
        "--name",
        &n,
        "--rootfs",
        c.rootfs(),
        "sleep",
        "1000",
    ])
    .ok();
    expect_active(&nunit);
    assert!(wait_for_process(&nunit, "sleep"), "the payload never ran");
    let out = h.cleat(&["stop", &n]);
    out.ok();
    assert!(
        out.elapsed < Duration::from_secs(5),
        "stop of `sleep` under --init took {:?}: SIGTERM not forwarded?",
        out.elapsed
    );
    assert_eq!(
        expect_stopped(&nunit, Duration::from_secs(3)),
        "inactive",
        "a stop is not a failure"
    );
}

#[test]
fn init_exits_with_the_payloads_status() {
    let h = host();
    let c = Case::new("init-exit");
    let out = c.run(&["--rm", "--init"], &["sh", "-c", "exit 7"]);
    out.code_is(7);
    let n = c.another("init-exit-sig");
    let out = h.cleat(&[
        "run",
        "--rm",
        "--init",
        "--name",
        &n,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        "kill -KILL $$",
    ]);
    out.code_is(137);
}

/// Beyond the letter of the contract: the init stays in the container's bounds (Docker's
/// tini is an ordinary process of the container), so it holds no capability the payload
/// could not have and is under the same seccomp filter.
#[test]
fn init_holds_no_more_privilege_than_the_container() {
    let c = Case::new("init-priv");
    let f: Facts = facts(&c.name, &["--init"]);
    let pid1 = &f.v["pid1"];
    let set = |s: &str| -> std::collections::BTreeSet<String> {
        pid1["caps"][s]["names"]
            .as_array()
            .unwrap_or_else(|| panic!("no Cap{s} of PID 1: {pid1}"))
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect()
    };
    for s in ["eff", "prm", "bnd"] {
        let extra: Vec<String> = set(s).difference(&default_caps()).cloned().collect();
        assert!(
            extra.is_empty(),
            "--init: PID 1 has Cap{s} beyond the container's: {extra:?}\n{pid1}"
        );
    }
    assert_eq!(pid1["seccomp"], 2, "--init: PID 1 is not filtered: {pid1}");
}

/// The init is cleat's code that stays in the container without exec'ing: none of cleat's file
/// descriptors (the handshake socket, the notification relay) may stay reachable through its
/// /proc/1/fd.
#[test]
fn init_holds_only_the_standard_descriptors() {
    let h = host();
    let c = Case::new("init-fds");
    c.run(
        &["-d", "--init", "--notify", "container"],
        &["sh", "-c", "sd-notify READY=1; exec sleep 1000"],
    )
    .ok();
    let main = h.prop(&c.adhoc_unit(), "MainPID");
    let fds = h.exec(&["ls", &format!("/proc/{main}/fd")]);
    fds.ok();
    let fds: Vec<&str> = fds.stdout.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2"], "the init (PID {main}) holds more");
    h.cleat(&["rm", "-f", &c.name]).ok();
}

/// The init runs the host's cleat binary: a root payload must not be able to open it through
/// /proc/1/exe (and overwrite it once no cleat runs, as in CVE-2019-5736), nor read the
/// init's environment.
#[test]
fn the_init_binary_is_out_of_the_containers_reach() {
    let c = Case::new("init-exe");
    let out = c.run(
        &["--rm", "--init"],
        &[
            "sh",
            "-c",
            "cat /proc/1/exe >/dev/null 2>&1 && echo EXE-OPENED; \
         cat /proc/1/environ >/dev/null 2>&1 && echo ENVIRON-READ; echo checked",
        ],
    );
    out.ok();
    assert!(out.stdout.contains("checked"), "{out}");
    assert!(!out.stdout.contains("EXE-OPENED"), "{out}");
    assert!(!out.stdout.contains("ENVIRON-READ"), "{out}");
}

/// With CAP_SYS_PTRACE a container may open /proc/1/exe of a non-dumpable init; the init must
/// then run from a sealed copy of cleat: no handle on the host's binary (which could be
/// passed out, or reopened for writing once no cleat runs), nothing writable.
#[test]
fn init_gives_a_tracer_in_the_container_no_handle_on_cleats_binary() {
    let c = Case::new("init-exe-ptrace");
    let unit = c.adhoc_unit();
    let _ = crate::host::probe_binary();
    // The probe, as the payload, reports on PID 1 at once (and then would watch new
    // processes: it is stopped before that matters).
    c.run(
        &["-d", "--init", "--cap-add", "SYS_PTRACE"],
        &[crate::host::PROBE, "watch-exe", "1000", "1"],
    )
    .ok();
    expect_journal(&unit, "\"watch\":\"ready\"");
    let reports = crate::inside::watch_reports(&unit);
    let pid1 = reports
        .iter()
        .find(|r| r["at"] == "pid1")
        .unwrap_or_else(|| panic!("no report on PID 1: {reports:?}"));
    crate::inside::assert_sealed_copy(pid1, crate::inside::installed_cleat());

    // The variable that tells the copy where the original is never reaches the container.
    let n = c.another("init-exe-env");
    let out = host().cleat(&[
        "run",
        "--rm",
        "--init",
        "--name",
        &n,
        "--rootfs",
        c.rootfs(),
        "env",
    ]);
    out.ok();
    assert!(out.stdout.contains("PATH="), "{out}");
    assert!(!out.stdout.contains(crate::exec::SEALED_MARKER), "{out}");
}
