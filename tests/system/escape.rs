//! Escape attempts from the inside, under default settings (issue 4): all must fail. Mount,
//! remount of /, /proc/sysrq-trigger, /proc/sys, kernel modules, ptrace of a process of the
//! test host, a device node opened after mknod, the classic chroot escape, raw sockets without
//! NET_RAW, and host files reached through symlinks placed in a volume or in the image (also
//! as mount targets).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use serde_json::Value;

use crate::host::{Case, host};
use crate::inside::{
    HostTemp, assert_no_trace, attempts, errno, host_file_hash, ok, real_block_device,
    run_in_rootfs,
};

#[test]
fn escape_attempts_fail_under_default_settings() {
    let h = host();
    let c = Case::new("escape");
    // A marker that exists only outside the container.
    let marker = format!("/run/{}-marker", c.name);
    h.write_file(&marker, "outside\n");
    // A process of the test host (its PID there; the container must not reach it).
    let dbus: i32 = h.prop("dbus.service", "MainPID").parse().unwrap_or(0);
    assert!(dbus > 1, "no dbus-daemon in the test host to aim at");
    let dbus = dbus.to_string();
    let block = real_block_device();
    let a = attempts(
        &c.name,
        &[],
        // Remounts last: one that worked (it is undone) should not change what the others
        // see.
        &[
            "mknod-block",
            &block,
            "mknod-char",
            "1:11",
            "chroot-escape",
            &marker,
            "sysrq",
            "proc-sys-write",
            "kmod",
            "ptrace",
            &dbus,
            "mount",
            "remount-root",
            "remount-root-ro",
        ],
    );
    h.remove(&marker);

    // Mounting and remounting need CAP_SYS_ADMIN (and the filter refuses mount).
    for action in ["mount", "remount-root", "remount-root-ro"] {
        let r = a.get(action);
        assert!(!ok(r), "{action} worked: {r}");
        assert_eq!(errno(r), libc::EPERM, "{action}: {r}");
    }
    // /proc's read-only paths.
    let r = a.get("sysrq");
    assert!(!ok(r), "/proc/sysrq-trigger opened for writing: {r}");
    if h.exists("/proc/sysrq-trigger") {
        assert_eq!(errno(r), libc::EROFS, "{r}");
    }
    let r = a.get("proc-sys-write");
    assert!(!ok(r), "/proc/sys written: {r}");
    assert_eq!(errno(r), libc::EROFS, "{r}");
    // Kernel modules: refused before the kernel looks at the (empty) image.
    for action in ["init-module", "finit-module"] {
        let r = a.get(action);
        assert!(!ok(r), "{action} worked: {r}");
        assert_eq!(errno(r), libc::EPERM, "{action}: {r}");
    }
    // A process of the test host is not even visible.
    let r = a.get("ptrace");
    assert!(
        !ok(r),
        "ptrace of the test host's dbus-daemon ({dbus}) worked: {r}"
    );
    assert!(
        [libc::ESRCH, libc::EPERM].contains(&errno(r)),
        "ptrace: {r}"
    );
    assert_eq!(r["target_visible"], false, "PID {dbus} is visible: {r}");
    // Device nodes: making one may work (CAP_MKNOD), opening it must not.
    for action in ["mknod-block", "mknod-char"] {
        let r = a.get(action);
        assert!(
            !ok(r),
            "{action} {}: the device could be opened: {r}",
            r["device"]
        );
        if ok(&r["mknod"]) {
            let open = &r["open"];
            assert!(
                [libc::EPERM, libc::EACCES].contains(&errno(open)),
                "{action}: opening the node failed, but not for lack of permission: {r}"
            );
        }
    }
    // The classic chroot escape leads back to the container's own root.
    let r = a.get("chroot-escape");
    assert!(!ok(r), "chroot escape reached another root: {r}");
    assert_ne!(
        r["marker_visible"], true,
        "the test host's {marker} is visible after the chroot escape: {r}"
    );
}

#[test]
fn raw_sockets_need_net_raw() {
    let c = Case::new("rawsock");
    // Docker's default set has NET_RAW.
    let a = attempts(&c.name, &[], &["raw-socket"]);
    let r = a.get("raw-socket");
    assert!(ok(r), "no raw socket with the default capabilities: {r}");
    let n = c.another("rawsock-drop");
    let a = attempts(&n, &["--cap-drop", "NET_RAW"], &["raw-socket"]);
    let r = a.get("raw-socket");
    assert!(!ok(r), "a raw socket without NET_RAW: {r}");
    assert_eq!(errno(r), libc::EPERM, "{r}");
}

#[test]
fn remount_of_a_read_only_root_fails() {
    let c = Case::new("escape-ro");
    let a = attempts(
        &c.name,
        &["--read-only"],
        &["remount-root-rw", "write", "/probe-written"],
    );
    let r = a.get("remount-root-rw");
    assert!(!ok(r), "--read-only: / was remounted read-write: {r}");
    assert_eq!(errno(r), libc::EPERM, "{r}");
    let r = a.get("write");
    assert!(!ok(r), "--read-only: / written: {r}");
}

/// Panics unless following `via` reached the very file `own` is (or both failed alike).
#[track_caller]
fn same_target(via: &Value, own: &Value) {
    if ok(own) {
        assert!(
            ok(via),
            "{} does not reach {}: {via}",
            via["path"],
            own["path"]
        );
        for k in ["dev", "ino", "fnv1a64", "reached"] {
            assert_eq!(via[k], own[k], "{k}: {via} is not {own}");
        }
    } else {
        assert!(!ok(via), "{} reaches something: {via}", via["path"]);
        assert_eq!(errno(via), errno(own), "{via} vs {own}");
    }
}

#[test]
fn a_symlink_in_a_volume_does_not_reach_the_test_hosts_files() {
    let c = Case::new("escape-vol");
    let dir = HostTemp::new(&c.name);
    host().write_file(&dir.join("marker"), "the volume\n");
    symlink("/etc/shadow", host().path(&dir.join("escape"))).expect("symlink in the volume");
    let vol = format!("{}:/vol", dir.path);
    let a = attempts(
        &c.name,
        &["-v", &vol],
        &[
            "read",
            "/vol/marker",
            "follow-symlink",
            "/vol/escape",
            "follow-symlink",
            "/etc/shadow",
        ],
    );
    let r = a.at("read", "/vol/marker");
    assert!(ok(r), "the volume is not there: {r}");
    assert_eq!(r["head"], "the volume\n");
    let via = a.at("follow-symlink", "/vol/escape");
    assert_eq!(via["is_symlink"], true, "{via}");
    same_target(via, a.at("follow-symlink", "/etc/shadow"));
    if ok(via) {
        assert_ne!(
            via["fnv1a64"].as_str().map(str::to_string),
            host_file_hash("/etc/shadow"),
            "/vol/escape reads the test host's /etc/shadow: {via}"
        );
    }
}

#[test]
fn a_symlink_in_the_image_does_not_reach_the_test_hosts_files() {
    let c = Case::new("escape-img");
    // The busybox root file system has /escape -> /../../../etc/hostname.
    let a = attempts(
        &c.name,
        &[],
        &[
            "follow-symlink",
            "/escape",
            "follow-symlink",
            "/etc/hostname",
        ],
    );
    let via = a.at("follow-symlink", "/escape");
    assert_eq!(via["is_symlink"], true, "{via}");
    assert_eq!(via["link"], "/../../../etc/hostname", "{via}");
    same_target(via, a.at("follow-symlink", "/etc/hostname"));
}

/// Mount targets are resolved inside the root: `/escape-dir` (a symlink to
/// `../../../../../../tmp` in the image) leads to the container's /tmp, never the test host's.
/// cleat may refuse such a target with a clear error; it must never mount or create anything
/// outside the container.
#[test]
fn mount_targets_through_a_symlink_in_the_image_stay_inside() {
    let h = host();
    let c = Case::new("escape-target");
    let dir = HostTemp::new(&c.name);
    let t = format!("{}-t", c.name);
    let v = format!("{}-v", c.name);
    let tmpfs = format!("/escape-dir/{t}");
    let vol = format!("{}:/escape-dir/{v}", dir.path);
    let out = run_in_rootfs(&c.name, &["--tmpfs", &tmpfs, "-v", &vol], &["facts"]);
    for leaked in [format!("/tmp/{t}"), format!("/tmp/{v}")] {
        assert!(
            !h.exists(&leaked),
            "{leaked} appeared in the test host: a mount target left the root\n{out}"
        );
    }
    if out.success() {
        let f = crate::inside::Facts::from_output(&out);
        for point in [format!("/tmp/{t}"), format!("/tmp/{v}")] {
            assert!(
                f.mount_at(&point).is_some(),
                "nothing mounted at {point} inside the container:\n{}",
                f.out
            );
        }
    } else {
        // Refused: the message names the target.
        out.fails().reads_clean().says("/escape-dir/");
        assert_no_trace(&c.name);
    }
}

/// A root file system of the test's own: busybox and whatever `links` (path, target) adds, in
/// the test host's /tmp.
fn hostile_rootfs(name: &str, links: &[(&str, &str)]) -> HostTemp {
    let h = host();
    let dir = HostTemp::new(name);
    let root = h.path(&dir.path);
    fs::create_dir_all(root.join("bin")).expect("bin");
    fs::copy(
        Path::new(&h.rootfs).join("bin/busybox"),
        root.join("bin/busybox"),
    )
    .expect("copying busybox");
    for (path, target) in links {
        let at = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(at.parent().expect("a parent")).expect("parent directory");
        symlink(target, at).expect("symlink");
    }
    dir
}

/// An image whose /proc is a symbolic link to a directory that a link under /sys (hidden by
/// the container's own /sys once mounted) leads to would, if followed, get procfs mounted
/// there and every mask and read-only path under "/proc" skipped as missing: a writable
/// /proc/sys for a root payload (core_pattern runs a program as host root). Refused.
#[test]
fn an_image_cannot_move_proc_out_from_under_its_masks() {
    let h = host();
    let c = Case::new("escape-proc");
    for (label, links) in [
        (
            "via-sys",
            [("/proc", "/sys/link"), ("/sys/link", "/realproc")],
        ),
        (
            "via-dev",
            [("/proc", "/dev/link"), ("/dev/link", "/realproc")],
        ),
    ] {
        let root = hostile_rootfs(&format!("{}-{label}", c.name), &links);
        let n = c.another(&format!("escape-proc-{label}"));
        let out = h.cleat(&[
            "run",
            "--rm",
            "--name",
            &n,
            "--rootfs",
            &root.path,
            "/bin/busybox",
            "cat",
            "/realproc/sys/kernel/core_pattern",
        ]);
        out.code_is(125).reads_clean().says("symbolic link");
        assert_no_trace(&n);
    }
}

/// A volume is filled from the image, never from the kernel's files: a path in the image that
/// leads into /proc is refused as a mount target, and into /sys it is mounted but filled with
/// nothing (cleat would read them with all its privileges: kernel addresses, the host's
/// boot id).
#[test]
fn a_volume_is_never_filled_from_proc_or_sys() {
    let h = host();
    let c = Case::new("escape-fill");
    let root = hostile_rootfs(
        &c.name,
        &[
            ("/data", "/proc/sys/kernel/random"),
            ("/mods", "/sys/module"),
        ],
    );
    let proc_volume = format!("{}-p", c.name);
    let out = h.cleat(&[
        "run",
        "--rm",
        "--name",
        &c.name,
        "-v",
        &format!("{proc_volume}:/data"),
        "--rootfs",
        &root.path,
        "/bin/busybox",
        "true",
    ]);
    out.code_is(125).reads_clean().says("/proc");
    assert_no_trace(&c.name);
    let sys_volume = format!("{}-s", c.name);
    let n = c.another("escape-fill-sys");
    h.cleat(&[
        "run",
        "--rm",
        "--name",
        &n,
        "-v",
        &format!("{sys_volume}:/mods"),
        "--rootfs",
        &root.path,
        "/bin/busybox",
        "true",
    ])
    .ok();
    for volume in [&proc_volume, &sys_volume] {
        let data = format!("/var/lib/cleat/volumes/{volume}/_data");
        let listing = h.exec(&["ls", "-A", &data]);
        assert_eq!(listing.stdout.trim(), "", "{volume} was filled: {listing}");
        h.cleat(&["volume", "rm", volume]);
    }
}

/// A volume below another is filled from the image too (from the image's own file system,
/// not from the volume mounted above it), as in Docker.
#[test]
fn a_nested_volume_is_filled_from_the_image() {
    let h = host();
    let c = Case::new("fill-nested");
    let root = hostile_rootfs(&c.name, &[]);
    let base = h.path(&root.path);
    fs::create_dir_all(base.join("data/sub")).expect("data/sub");
    fs::write(base.join("data/top"), "top\n").expect("top");
    fs::write(base.join("data/sub/inner"), "inner\n").expect("inner");
    let (outer, inner) = (format!("{}-o", c.name), format!("{}-i", c.name));
    let out = h.cleat(&[
        "run",
        "--rm",
        "--name",
        &c.name,
        "-v",
        &format!("{outer}:/data"),
        "-v",
        &format!("{inner}:/data/sub"),
        "--rootfs",
        &root.path,
        "/bin/busybox",
        "cat",
        "/data/top",
        "/data/sub/inner",
    ]);
    out.ok();
    assert_eq!(out.stdout, "top\ninner\n", "{out}");
    for volume in [&outer, &inner] {
        h.cleat(&["volume", "rm", volume]).ok();
    }
}
