//! Bad input to the isolation settings (issue 4): an unknown capability, a malformed volume
//! or mount spec, an invalid ulimit, an unreadable seccomp profile: one clear message, exit 125
//! from `run` (with or without `-d`) and `create`, nothing left behind. A user or group
//! missing from the image can only be found at start: the start fails and says so.

use crate::host::{Case, host};
use crate::inside::{HostTemp, assert_no_trace, journal_of};

/// Each verb (`run`, `run -d`, `create`) with `flags` must exit 125 with a clean message
/// holding every needle, and leave nothing.
#[track_caller]
fn refused(c: &Case, flags: &[&str], needles: &[&str]) {
    for verb in [&["run"][..], &["run", "-d"], &["create"]] {
        let mut args = verb.to_vec();
        args.extend(["--name", &c.name]);
        args.extend_from_slice(flags);
        args.extend(["--rootfs", c.rootfs(), "true"]);
        let out = host().cleat(&args);
        out.code_is(125).reads_clean();
        for n in needles {
            out.says(n);
        }
        assert_no_trace(&c.name);
    }
}

#[test]
fn unknown_capability() {
    let c = Case::new("bad-cap");
    // With a suggestion of the nearest name.
    refused(&c, &["--cap-add", "NET_ADMN"], &["NET_ADMN", "NET_ADMIN"]);
    refused(&c, &["--cap-drop", "NO_SUCH_CAP"], &["NO_SUCH_CAP"]);
}

#[test]
fn malformed_volume_specs() {
    let c = Case::new("bad-vol");
    for (spec, needle) in [
        ("/tmp:relative/path", "relative/path"),
        ("/tmp:/x:bogus", "bogus"),
        (":/x", ":/x"),
        ("/tmp:/x:ro:extra", "extra"),
        ("/tmp:/proc", "/proc"),
        ("/tmp:/dev", "/dev"),
    ] {
        refused(&c, &["-v", spec], &[needle]);
    }
}

#[test]
fn malformed_mount_and_tmpfs_specs() {
    let c = Case::new("bad-mount");
    for (spec, needle) in [
        ("type=bind,target=/x", "source"),
        ("type=bind,source=/tmp", "target"),
        ("type=nope,source=/tmp,target=/x", "nope"),
        ("type=bind,source=/tmp,target=/x,bogus=1", "bogus"),
        ("type=tmpfs,target=relative", "relative"),
    ] {
        refused(&c, &["--mount", spec], &[needle]);
    }
    refused(&c, &["--tmpfs", "relative"], &["relative"]);
}

#[test]
fn invalid_ulimits() {
    let c = Case::new("bad-ulimit");
    refused(&c, &["--ulimit", "nofile=abc"], &["abc"]);
    refused(&c, &["--ulimit", "bogus=1"], &["bogus"]);
    refused(&c, &["--ulimit", "nofile"], &["nofile"]);
}

#[test]
fn unreadable_or_invalid_seccomp_profile() {
    let h = host();
    let c = Case::new("bad-seccomp");
    let dir = HostTemp::new(&c.name);
    let missing = dir.join("missing.json");
    refused(
        &c,
        &["--security-opt", &format!("seccomp={missing}")],
        &[&missing],
    );
    let broken = dir.join("broken.json");
    h.write_file(&broken, "{ \"defaultAction\": ");
    refused(
        &c,
        &["--security-opt", &format!("seccomp={broken}")],
        &[&broken],
    );
    refused(&c, &["--security-opt", "bogus-option"], &["bogus-option"]);
}

/// Not malformed, but missing: a bind mount's source must exist (Docker refuses it for
/// `--mount`), and nothing is created in its place.
#[test]
fn missing_bind_source() {
    let h = host();
    let c = Case::new("bad-src");
    let missing = format!("/tmp/{}-missing", c.name);
    let spec = format!("type=bind,source={missing},target=/x");
    let out = h.cleat(&[
        "run",
        "--rm",
        "--name",
        &c.name,
        "--mount",
        &spec,
        "--rootfs",
        c.rootfs(),
        "true",
    ]);
    out.fails().reads_clean();
    let text = format!("{}{}", out.all(), journal_of(&c.name));
    assert!(
        text.contains(&missing),
        "no message names {missing}:\n{out}\n--- journal\n{}",
        journal_of(&c.name)
    );
    assert!(!h.exists(&missing), "{missing} was created");
    assert_no_trace(&c.name);
}

/// A user or group that the image does not have: the start fails, and says which.
#[test]
fn user_or_group_missing_from_the_image_fails_the_start() {
    let h = host();
    let c = Case::new("bad-user");
    for (flags, needle) in [
        (&["-u", "nosuchuser"][..], "nosuchuser"),
        (&["-u", "app:nosuchgroup"], "nosuchgroup"),
        (&["--group-add", "nosuchgroup"], "nosuchgroup"),
    ] {
        let n = c.another("bad-user-rm");
        let mut args = vec!["run", "--rm", "--name", &n];
        args.extend_from_slice(flags);
        args.extend(["--rootfs", c.rootfs(), "true"]);
        let out = h.cleat(&args);
        out.fails().reads_clean();
        let journal = journal_of(&n);
        assert!(
            format!("{}{journal}", out.all()).contains(needle),
            "{flags:?}: no message names {needle}:\n{out}\n--- journal\n{journal}"
        );
        assert_no_trace(&n);
    }
    // In the background too: refused before the container exists.
    let out = c.run(&["-d", "-u", "nosuchuser"], &["true"]);
    out.code_is(125).reads_clean().says("nosuchuser");
    assert_no_trace(&c.name);
}

#[test]
fn declared_container_with_an_unknown_capability() {
    let h = host();
    let c = Case::new("bad-cap-decl");
    let path = c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"true\"]\ncap-add = [\"NET_ADMN\"]\n",
        c.rootfs()
    ));
    h.cleat(&["config", "check", &c.name])
        .fails()
        .reads_clean()
        .says(&path)
        .says("NET_ADMN")
        .says("NET_ADMIN");
    let out = h.systemctl(&["start", &c.declared_unit()]);
    assert!(!out.success(), "the container started:\n{out}");
    let journal = h.journal(&c.declared_unit());
    assert!(
        journal.contains("NET_ADMN"),
        "the journal does not name the bad capability:\n{journal}"
    );
}
