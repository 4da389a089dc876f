//! The test host itself: systemd, journald and the installed files work.

use std::time::Duration;

use crate::host::{Case, host, wait_until};

#[test]
fn smoke_transient_unit_runs_and_logs() {
    let h = host();
    h.exec(&[
        "systemd-run",
        "--wait",
        "-q",
        "-p",
        "Slice=machine.slice",
        "true",
    ])
    .ok();

    let c = Case::new("smoke");
    let unit = format!("{}.service", c.name);
    let marker = format!("hello from {}", c.name);
    h.exec(&[
        "systemd-run",
        "--wait",
        "-q",
        "-u",
        &unit,
        "-p",
        "Slice=machine.slice",
        "sh",
        "-c",
        &format!("echo '{marker}'"),
    ])
    .ok();
    let mut journal = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            journal = h.journal(&unit);
            journal.lines().any(|l| l == marker)
        }),
        "journalctl -u {unit} does not show {marker:?}:\n{journal}"
    );
}

#[test]
fn smoke_host_is_private_and_cleat_is_installed() {
    let h = host();
    // PID 1 inside is our systemd, in its own namespaces.
    let comm = h.sh("cat /proc/1/comm").ok().stdout.trim().to_string();
    assert_eq!(comm, "systemd");
    for ns in ["pid", "mnt", "net", "uts", "ipc", "cgroup"] {
        let outside = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("own namespace");
        let inside = std::fs::read_link(format!("/proc/{}/ns/{ns}", h.systemd_pid))
            .expect("test host namespace");
        assert_ne!(outside, inside, "the test host shares the {ns} namespace");
    }
    // Writes to /usr, /etc and /var stay inside.
    h.sh("echo x >/usr/lib/cleat/containers/.smoke && echo y >/etc/.cleat-smoke")
        .ok();
    assert!(!std::path::Path::new("/usr/lib/cleat/containers/.smoke").exists());
    assert!(!std::path::Path::new("/etc/.cleat-smoke").exists());
    h.sh("rm -f /usr/lib/cleat/containers/.smoke /etc/.cleat-smoke")
        .ok();

    h.sh("test -x /usr/local/bin/cleat && test -x /usr/local/lib/systemd/system-generators/cleat-generator")
        .ok();
    assert_eq!(
        h.prop("container@smoke-probe.service", "LoadState"),
        "loaded"
    );

    // The busybox rootfs works as a root.
    let out = h
        .exec(&[
            "chroot",
            &h.rootfs,
            "/bin/sh",
            "-c",
            "id -u app; id -G app; timeout 1 /bin/show-env HOME; true",
        ])
        .ok()
        .clone();
    assert!(out.stdout.starts_with("1000\n"), "{out}");
    assert!(out.stdout.contains("1000 50"), "{out}");
    assert!(out.stdout.contains("HOME=/root\nready"), "{out}");
}
