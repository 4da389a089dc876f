//! `cleat ps`, `inspect` and `logs`: tables for people, JSON for scripts, the journal as the
//! source of logs.

use std::time::Duration;

use crate::host::{
    Case, GRACEFUL, expect_active, expect_journal, expect_stopped, host, main_pid, ps_entry,
    wait_until,
};

#[test]
fn ps_table_and_json() {
    let h = host();
    let c = Case::new("ps");
    let unit = c.adhoc_unit();
    c.run(&["-d"], &[GRACEFUL]).ok();
    expect_active(&unit);

    let table = h.cleat(&["ps"]);
    table.ok();
    let header = table.stdout.lines().next().unwrap_or("");
    assert!(
        header.contains("NAME") && header.contains("STATUS"),
        "header: {header:?}\n{table}"
    );
    assert!(
        table
            .stdout
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().any(|w| w == c.name)),
        "{table}"
    );

    let e = ps_entry(&c.name, false).expect("listed");
    assert_eq!(e["kind"], "adhoc", "{e}");
    assert_eq!(e["unit"], unit.as_str(), "{e}");
    assert_eq!(e["state"], "running", "{e}");
    assert_eq!(e["pid"], main_pid(&unit), "{e}");
    assert!(e.get("exit_code").is_some(), "exit_code key missing: {e}");

    h.cleat(&["stop", &c.name]).ok();
    expect_stopped(&unit, Duration::from_secs(5));
    let table = h.cleat(&["ps"]);
    table.ok();
    assert!(
        !table
            .stdout
            .lines()
            .any(|l| l.split_whitespace().any(|w| w == c.name)),
        "ps lists a stopped container:\n{table}"
    );
    let table = h.cleat(&["ps", "-a"]);
    table.ok();
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.split_whitespace().any(|w| w == c.name)),
        "ps -a does not list a stopped container:\n{table}"
    );
    let e = ps_entry(&c.name, true).expect("listed by ps -a");
    assert_eq!(e["state"], "exited", "{e}");
    assert_eq!(e["exit_code"], 0, "{e}");
    assert!(e["pid"].is_null(), "{e}");

    // A reader that goes away early (`| grep -q`, `| head`) ends it quietly, as `ls`.
    let out = h.sh("cleat ps -a --format json 2>/run/ps-epipe.err | true; cat /run/ps-epipe.err");
    out.ok();
    assert!(out.stdout.trim().is_empty(), "{out}");
}

#[test]
fn inspect_json() {
    let h = host();
    let c = Case::new("inspect");
    let unit = c.adhoc_unit();
    let script = "echo inspected; trap 'exit 0' TERM; while :; do sleep 0.1; done";
    h.cleat(&[
        "run",
        "-d",
        "--name",
        &c.name,
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        script,
    ])
    .ok();
    expect_active(&unit);
    let out = h.cleat(&["inspect", &c.name]);
    out.ok();
    let v = out.json();
    assert_eq!(v["name"], c.name.as_str(), "{out}");
    assert_eq!(v["kind"], "adhoc", "{out}");
    assert_eq!(v["unit"], unit.as_str(), "{out}");
    assert_eq!(
        v["spec"]["command"],
        serde_json::json!(["sh", "-c", script]),
        "{out}"
    );
    assert_eq!(v["spec"]["env"]["FOO"], "bar", "{out}");
    assert_eq!(
        v["spec"]["working-dir"], "/tmp",
        "kebab-case keys as in TOML:\n{out}"
    );
    assert_eq!(v["state"]["status"], "running", "{out}");
    assert_eq!(v["state"]["running"], true, "{out}");
    assert_eq!(v["state"]["pid"], main_pid(&unit), "{out}");

    // After a failing exit: the code, and not running.
    let f = c.another("inspect-exit");
    h.cleat(&[
        "run",
        "-d",
        "--name",
        &f,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        "sleep 0.3; exit 5",
    ])
    .ok();
    let mut v = serde_json::Value::Null;
    assert!(
        wait_until(Duration::from_secs(5), || {
            let out = h.cleat(&["inspect", &f]);
            v = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
            v["state"]["exit_code"] == 5
        }),
        "{v}"
    );
    assert_eq!(v["state"]["running"], false, "{v}");
    assert!(
        v["state"]["status"] == "exited" || v["state"]["status"] == "failed",
        "{v}"
    );
    assert!(v["state"]["pid"].is_null(), "{v}");
}

#[test]
fn inspect_declared() {
    let h = host();
    let c = Case::new("inspect-decl");
    c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\nenv = {{ K = \"v\" }}\nstop-timeout = \"4s\"\n",
        c.rootfs()
    ));
    let out = h.cleat(&["inspect", &c.name]);
    out.ok();
    let v = out.json();
    assert_eq!(v["kind"], "declared", "{out}");
    assert_eq!(v["unit"], c.declared_unit().as_str(), "{out}");
    assert_eq!(v["spec"]["command"], serde_json::json!([GRACEFUL]), "{out}");
    assert_eq!(v["spec"]["env"]["K"], "v", "{out}");
    assert!(v["spec"].get("stop-timeout").is_some(), "{out}");
    assert_eq!(v["state"]["running"], false, "{out}");
}

#[test]
fn logs_come_from_the_journal() {
    let h = host();
    let c = Case::new("logs");
    let unit = c.adhoc_unit();
    c.run(
        &["-d"],
        &[
            "sh",
            "-c",
            "echo line-one; echo line-two; echo err-line >&2; sleep 0.2; echo last-line; \
         trap 'exit 0' TERM; while :; do sleep 0.1; done",
        ],
    )
    .ok();
    let journal = expect_journal(&unit, "last-line");
    for l in ["line-one", "line-two", "err-line"] {
        assert!(
            journal.lines().any(|j| j == l),
            "journalctl -u {unit} lacks {l:?}:\n{journal}"
        );
    }

    let out = h.cleat(&["logs", &c.name]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().map(str::trim_end).collect();
    // Message text only: the exact lines, no timestamps or prefixes.
    for l in ["line-one", "line-two", "last-line"] {
        assert!(
            lines.contains(&l),
            "cleat logs lacks the line {l:?}:\n{out}"
        );
    }
    out.says("err-line");
    let one = lines.iter().position(|l| *l == "line-one");
    let two = lines.iter().position(|l| *l == "line-two");
    assert!(one < two, "order lost:\n{out}");

    let out = h.cleat(&["logs", "-n", "1", &c.name]);
    out.ok();
    assert_eq!(out.stdout.trim(), "last-line", "logs -n 1:\n{out}");

    let out = h.cleat(&["logs", "--since", "1h", &c.name]);
    out.ok();
    assert!(out.stdout.contains("line-one"), "logs --since 1h:\n{out}");
    // Until an hour ago: nothing (the container ran just now); until a minute from now: all.
    let out = h.cleat(&["logs", "--until", "1h", &c.name]);
    out.ok();
    assert!(!out.stdout.contains("line-one"), "logs --until 1h:\n{out}");
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
        + 60)
        .to_string();
    let out = h.cleat(&["logs", "--until", &later, &c.name]);
    out.ok();
    assert!(
        out.stdout.contains("last-line"),
        "logs --until {later}:\n{out}"
    );
    h.cleat(&["logs", "--until", "soon", &c.name])
        .fails()
        .says("invalid --until");
}

#[test]
fn logs_follow_keeps_streaming() {
    let h = host();
    let c = Case::new("logs-f");
    let unit = c.adhoc_unit();
    c.run(
        &["-d"],
        &[
            "sh",
            "-c",
            "i=0; trap 'exit 0' TERM; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done",
        ],
    )
    .ok();
    expect_journal(&unit, "tick-0");
    // Follow for 3 s: it must still be running then, and have printed lines that were
    // written after it started.
    let before = h
        .journal(&unit)
        .lines()
        .filter(|l| l.starts_with("tick-"))
        .count();
    let out = h.cleat_timeout(&["logs", "-f", &c.name], Duration::from_secs(3));
    assert!(out.timed_out, "logs -f returned by itself:\n{out}");
    let ticks: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("tick-"))
        .collect();
    assert!(ticks.contains(&"tick-0"), "{out}");
    assert!(
        ticks.len() >= before + 5,
        "logs -f printed {} ticks, {before} existed before it started:\n{out}",
        ticks.len()
    );
}

/// A name can be reused after `rm`; the new container's logs are its own.
#[test]
fn logs_of_a_reused_name_are_the_new_containers_only() {
    let h = host();
    let c = Case::new("logs-reuse");
    c.run(&[], &["echo", "first-container"]).ok();
    h.cleat(&["rm", &c.name]).ok();
    c.run(&[], &["echo", "second-container"]).ok();
    let out = h.cleat(&["logs", &c.name]);
    out.ok();
    assert!(out.stdout.contains("second-container"), "{out}");
    assert!(
        !out.stdout.contains("first-container"),
        "an earlier container's output:\n{out}"
    );
    let id = h.cleat(&["inspect", &c.name]).json()["id"].clone();
    assert!(
        id.as_str().is_some_and(|i| i.len() == 32),
        "inspect shows the container ID: {id}"
    );
}
