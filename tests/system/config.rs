//! `cleat config show|check` and what bad definitions do: a clear message naming file, line,
//! column and key, a non-zero exit, and nothing else affected.

use std::time::Duration;

use crate::host::{Case, GRACEFUL, host, wait_until};

/// Whether `text` contains `path:LINE:COL` (LINE given, COL any number).
fn has_position(text: &str, path: &str, line: u32) -> bool {
    let prefix = format!("{path}:{line}:");
    text.match_indices(&prefix).any(|(i, _)| {
        text[i + prefix.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

#[test]
fn config_check_accepts_a_valid_definition() {
    let h = host();
    let c = Case::new("check-ok");
    let path = c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\nrestart = \"on-failure\"\n\
         stop-timeout = \"5s\"\nenv = {{ A = \"1\" }}\n\n[install]\nwanted-by = [\"multi-user.target\"]\n",
        c.rootfs()
    ));
    h.cleat(&["config", "check", &path]).ok();
    h.cleat(&["config", "check", &c.name]).ok();
}

/// `config check` also finds what only the first start would otherwise refuse: a user the
/// image lacks, a missing bind source, a seccomp profile that does not compile. It creates
/// nothing doing so.
#[test]
fn config_check_finds_what_a_start_would_refuse() {
    let h = host();
    let c = Case::new("check-deep");
    let base = format!("rootfs = \"{}\"\ncommand = [\"true\"]\n", c.rootfs());
    let missing = format!("/tmp/{}-missing", c.name);
    let profile = format!("/tmp/{}-profile.json", c.name);
    h.write_file(&profile, "{\"defaultAction\": \"SCMP_ACT_NOPE\"}\n");
    for (extra, needle) in [
        ("user = \"nosuchuser\"\n".to_string(), "nosuchuser"),
        ("group-add = [\"nosuchgroup\"]\n".to_string(), "nosuchgroup"),
        (
            format!("volumes = [\"{missing}:/data\"]\n"),
            missing.as_str(),
        ),
        (format!("seccomp = \"{profile}\"\n"), "SCMP_ACT_NOPE"),
    ] {
        c.declare(&format!("{base}{extra}"));
        h.cleat(&["config", "check", &c.name])
            .fails()
            .reads_clean()
            .says(needle);
    }
    assert!(!h.exists(&missing), "checking created the bind source");
    h.remove(&profile);
    c.declare(&format!("{base}user = \"app\"\n"));
    h.cleat(&["config", "check", &c.name]).ok();
}

#[test]
fn malformed_toml_is_reported_with_its_position() {
    let h = host();
    let c = Case::new("bad-toml");
    let unit = c.declared_unit();
    // Line 3: a missing comma.
    let path = c.declare(&format!(
        "rootfs = \"{}\"\n# a comment\ncommand = [\"sh\" \"-c\", \"true\"]\n",
        c.rootfs()
    ));
    let out = h.cleat(&["config", "check", &path]);
    out.fails().reads_clean();
    assert!(
        has_position(&out.all(), &path, 3),
        "expected {path}:3:COL:\n{out}"
    );

    // Another, valid container is not affected by this one at daemon-reload.
    let good = c.another("bad-toml-neighbour");
    h.write_file(
        &format!("/etc/cleat/containers/{good}.toml"),
        &format!(
            "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\nrestart = \"always\"\n",
            c.rootfs()
        ),
    );
    h.daemon_reload();
    assert_eq!(
        h.prop(&crate::host::declared_unit(&good), "Restart"),
        "always"
    );

    // Starting the broken one fails, and the journal says where.
    h.systemctl(&["start", &unit]).fails();
    let mut journal = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            journal = h.journal(&unit);
            has_position(&journal, &path, 3)
        }),
        "journal of {unit} does not name {path}:3:COL:\n{journal}"
    );
    assert_ne!(h.prop(&unit, "ActiveState"), "active");
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let h = host();
    let c = Case::new("typo");
    let path = c.declare(&format!(
        "rootfs = \"{}\"\ncomand = [\"true\"]\n",
        c.rootfs()
    ));
    let out = h.cleat(&["config", "check", &path]);
    out.fails()
        .says("comand")
        .says("did you mean")
        .says("command")
        .reads_clean();
    assert!(
        has_position(&out.all(), &path, 2),
        "expected {path}:2:COL:\n{out}"
    );
}

#[test]
fn invalid_value_names_the_key() {
    let h = host();
    let c = Case::new("badvalue");
    let path = c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"true\"]\nstop-timeout = \"soon\"\n",
        c.rootfs()
    ));
    let out = h.cleat(&["config", "check", &path]);
    out.fails().says("stop-timeout").reads_clean();
    assert!(
        has_position(&out.all(), &path, 3),
        "expected {path}:3:COL:\n{out}"
    );
}

#[test]
fn image_and_rootfs_together_are_refused() {
    let h = host();
    let c = Case::new("both");
    let unit = c.declared_unit();
    let path = c.declare(&format!(
        "image = \"docker.io/library/busybox:latest\"\nrootfs = \"{}\"\ncommand = [\"true\"]\n",
        c.rootfs()
    ));
    h.cleat(&["config", "check", &path])
        .fails()
        .says("image")
        .says("rootfs");
    h.systemctl(&["start", &unit]).fails();
    let mut journal = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            journal = h.journal(&unit);
            journal.contains("image") && journal.contains("rootfs")
        }),
        "{journal}"
    );
}

#[test]
fn config_show_prints_the_merged_definition_and_its_sources() {
    let h = host();
    let c = Case::new("show");
    let n = &c.name;
    let main = format!("/usr/lib/cleat/containers/{n}.toml");
    let dropin = format!("/etc/cleat/containers/{n}.toml.d/50-override.toml");
    h.write_file(
        &main,
        &format!(
            "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\nenv = {{ KEEP = \"vendor-value\", OVER = \"vendor\" }}\n",
            c.rootfs()
        ),
    );
    h.write_file(&dropin, "env = { OVER = \"admin-value\" }\n");
    let out = h.cleat(&["config", "show", n]);
    out.ok();
    for want in [
        main.as_str(),
        dropin.as_str(),
        "vendor-value",
        "admin-value",
        GRACEFUL,
    ] {
        assert!(out.stdout.contains(want), "missing {want:?}:\n{out}");
    }
    // The effective value of OVER is the drop-in's.
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("OVER") && l.contains("admin-value")),
        "OVER is not shown with its effective value:\n{out}"
    );
}
