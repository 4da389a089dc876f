//! Bad input: one clear message, a non-zero exit (125 for run/create, as Docker; 1 for the
//! other verbs), and nothing left behind (no unit, no entry in `ps -a`).

use crate::host::{Case, GRACEFUL, expect_active, host, ps_entry};

/// Nothing of `name` is left: no unit, not listed by `ps -a`.
#[track_caller]
fn assert_no_trace(name: &str) {
    let unit = crate::host::adhoc_unit(name);
    assert_eq!(
        host().prop(&unit, "LoadState"),
        "not-found",
        "{unit} left behind"
    );
    assert!(ps_entry(name, true).is_none(), "{name} listed by ps -a");
}

#[test]
fn unknown_container_name() {
    let h = host();
    let name = "t-no-such-container";
    for verb in [
        &["start", name][..],
        &["stop", name],
        &["restart", name],
        &["kill", name],
        &["rm", name],
        &["logs", name],
        &["inspect", name],
    ] {
        h.cleat(verb)
            .code_is(1)
            .says("no such container")
            .says(name)
            .reads_clean();
    }
}

#[test]
fn missing_rootfs_directory() {
    let h = host();
    let c = Case::new("norootfs");
    let dir = format!("/nonexistent/{}", c.name);
    for verb in [&["run"][..], &["run", "-d"], &["create"]] {
        let mut args = verb.to_vec();
        args.extend(["--name", &c.name, "--rootfs", &dir, "true"]);
        h.cleat(&args).code_is(125).says(&dir).reads_clean();
        assert_no_trace(&c.name);
    }
}

#[test]
fn invalid_flags_are_refused_before_anything_happens() {
    let h = host();
    let c = Case::new("badflag");
    let cases: &[&[&str]] = &[
        &["--stop-timeout", "banana"],
        &["--memory", "lots"],
        &["--restart", "sometimes"],
        &["--stop-signal", "SIGNOPE"],
    ];
    for flags in cases {
        let mut args = vec!["run", "-d", "--name", &c.name];
        args.extend_from_slice(flags);
        args.extend(["--rootfs", c.rootfs(), "true"]);
        h.cleat(&args)
            .code_is(125)
            .says(flags[0].trim_start_matches('-'))
            .reads_clean();
        assert_no_trace(&c.name);
    }
    h.cleat(&["run", "--name", "bad name!", "--rootfs", c.rootfs(), "true"])
        .code_is(125)
        .says("name")
        .reads_clean();
    assert!(ps_entry("bad name!", true).is_none());
}

#[test]
fn name_clash_with_a_declared_container() {
    let h = host();
    let c = Case::new("clash-decl");
    let path = c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\n",
        c.rootfs()
    ));
    for verb in ["run", "create"] {
        h.cleat(&[verb, "--name", &c.name, "--rootfs", c.rootfs(), "true"])
            .code_is(125)
            .says(&path)
            .reads_clean();
        assert_eq!(h.prop(&c.adhoc_unit(), "LoadState"), "not-found");
    }
    let e = ps_entry(&c.name, true).expect("the declared container is still listed");
    assert_eq!(e["kind"], "declared", "{e}");
}

#[test]
fn name_clash_between_adhoc_containers() {
    let h = host();
    let c = Case::new("clash-adhoc");
    let unit = c.adhoc_unit();
    c.run(&["-d"], &[GRACEFUL]).ok();
    expect_active(&unit);
    let pid = crate::host::main_pid(&unit);
    for verb in [&["run", "-d"][..], &["run"], &["create"]] {
        let mut args = verb.to_vec();
        args.extend(["--name", &c.name, "--rootfs", c.rootfs(), "true"]);
        let out = h.cleat(&args);
        out.code_is(125).says(&c.name).reads_clean();
        let text = out.all_lower();
        assert!(
            text.contains("already") || text.contains("in use") || text.contains("exists"),
            "no clear 'name already in use' message:\n{out}"
        );
    }
    // The first one is untouched.
    assert_eq!(h.prop(&unit, "ActiveState"), "active");
    assert_eq!(crate::host::main_pid(&unit), pid);
    let v = h.cleat(&["inspect", &c.name]).ok().json();
    assert_eq!(v["spec"]["command"], serde_json::json!([GRACEFUL]), "{v}");
}

#[test]
fn unreachable_systemd() {
    let h = host();
    let c = Case::new("nobus");
    let env = "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/bus";
    for args in [
        "ps",
        "ps -a",
        &format!("run -d --name {} --rootfs {} true", c.name, c.rootfs()),
    ] {
        let out = h.sh(&format!("{env} {} {args}", crate::host::CLEAT));
        out.fails().reads_clean();
        let text = out.all_lower();
        assert!(
            text.contains("systemd") || text.contains("d-bus") || text.contains("dbus"),
            "the message does not name systemd or D-Bus:\n{out}"
        );
        if args.starts_with("run") {
            out.code_is(125);
        }
    }
    assert_no_trace(&c.name);
}

/// A name both declared (a TOML file appeared) and ad-hoc: every verb names the clash, and
/// `rm` removes the ad-hoc one, as the message says, after which the declared one works.
#[test]
fn rm_resolves_a_clash_between_declared_and_adhoc() {
    let h = host();
    let c = Case::new("clash-rm");
    h.cleat(&[
        "create",
        "--name",
        &c.name,
        "--rootfs",
        c.rootfs(),
        GRACEFUL,
    ])
    .ok();
    let path = c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\n",
        c.rootfs()
    ));
    h.cleat(&["start", &c.name])
        .code_is(1)
        .says("used twice")
        .says(&path)
        .says(&format!("cleat rm {}", c.name));
    h.cleat(&["rm", &c.name]).ok();
    h.cleat(&["start", &c.name]).ok();
    expect_active(&c.declared_unit());
    let e = ps_entry(&c.name, true).expect("listed");
    assert_eq!(e["kind"], "declared", "{e}");
    h.systemctl(&["stop", &c.declared_unit()]);
}
