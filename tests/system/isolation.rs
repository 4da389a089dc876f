//! Isolation seen from the inside (issue 4): namespaces, the network, host and domain names,
//! /proc's masked and read-only paths, /sys, /dev, the root file system and mounts
//! (`--read-only`, `--tmpfs`, bind mounts, named volumes, `--volumes-from`), users and groups,
//! resource limits; the same keys in a declared container; a container from an image.
//! Expectations are Docker's with default settings.

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::host::{Case, PROBE, expect_journal, expect_stopped, host, wait_until};
use crate::images::fixtures::{PLAIN, image, registries, shared};
use crate::inside::{
    Attempts, Facts, HostTemp, default_caps, errno, facts, facts_and_attempts, host_ns,
    is_read_only, journal_of, mount_options, names, ok, run_in_image, run_in_rootfs, super_options,
};

const NAMESPACES: &[&str] = &["mnt", "pid", "uts", "ipc", "cgroup", "net"];

// ---------------------------------------------------------------------------------------------
// Namespaces and network

#[test]
fn namespaces_differ_from_the_test_hosts() {
    let c = Case::new("ns");
    let f = facts(&c.name, &[]);
    for ns in NAMESPACES {
        assert_ne!(
            f.ns(ns),
            host_ns(ns),
            "the container shares the test host's {ns} namespace:\n{}",
            f.out
        );
    }
    // Only its own processes are visible: the probe (PID 1), nothing of the test host.
    let n = c.another("ns-procs");
    let out = run_in_rootfs(&n, &[], &["procs"]);
    out.ok();
    let v: Value = crate::inside::reports(&out)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no report:\n{out}"));
    let procs = v["procs"].as_array().cloned().unwrap_or_default();
    let comms: Vec<&str> = procs.iter().filter_map(|p| p["comm"].as_str()).collect();
    assert_eq!(
        comms,
        ["probe"],
        "processes visible in the container:\n{out}"
    );
    assert_eq!(procs[0]["pid"], 1, "{out}");
}

#[test]
fn network_host_shares_the_test_hosts_and_none_is_private() {
    let c = Case::new("net-host");
    let f = facts(&c.name, &["--network", "host"]);
    assert_eq!(
        f.ns("net"),
        host_ns("net"),
        "--network host: not the test host's network namespace:\n{}",
        f.out
    );
    // The other namespaces stay private.
    for ns in ["mnt", "pid", "uts", "ipc", "cgroup"] {
        assert_ne!(f.ns(ns), host_ns(ns), "--network host shares {ns}");
    }

    let n = c.another("net-none");
    let f = facts(&n, &["--network", "none"]);
    assert_ne!(f.ns("net"), host_ns("net"), "--network none: {}", f.out);
    assert_eq!(
        f.v["net"]["interfaces"],
        serde_json::json!(["lo"]),
        "--network none:\n{}",
        f.out
    );
    assert_eq!(f.v["net"]["lo"]["up"], true, "--network none: lo is not up");
}

#[test]
fn hostname_and_domainname() {
    let c = Case::new("uts");
    let f = facts(
        &c.name,
        &["--hostname", "probe-host", "--domainname", "example.org"],
    );
    assert_eq!(f.str("hostname"), "probe-host", "{}", f.out);
    assert_eq!(f.str("domainname"), "example.org", "{}", f.out);
}

// ---------------------------------------------------------------------------------------------
// /proc, /sys

/// Docker's masked paths (those this kernel may have).
const MASKED: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/acpi",
    "/proc/latency_stats",
    "/proc/asound",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
const READ_ONLY: &[&str] = &[
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
];

/// Whether a path of the test host has content (a file with at least one byte, a directory
/// with at least one entry).
fn has_content_in_test_host(path: &str) -> bool {
    let p = host().path(path);
    match fs::metadata(&p) {
        Ok(m) if m.is_dir() => fs::read_dir(&p).is_ok_and(|mut rd| rd.next().is_some()),
        Ok(_) => {
            use std::io::Read;
            let mut one = [0u8; 1];
            fs::File::open(&p).is_ok_and(|mut f| matches!(f.read(&mut one), Ok(1)))
        }
        Err(_) => false,
    }
}

#[test]
fn masked_paths_read_as_empty_or_fail() {
    let c = Case::new("masked");
    let mut actions = vec!["read-masked"];
    actions.extend_from_slice(MASKED);
    let a = crate::inside::attempts(&c.name, &[], &actions);
    let mut live = Vec::new();
    for path in MASKED {
        if has_content_in_test_host(path) {
            live.push(*path);
        }
        let r = a.at("read-masked", path);
        let bytes = r["bytes"].as_u64().unwrap_or(0);
        let entries = r["entries"].as_u64().unwrap_or(0);
        assert!(
            !(ok(r) && (bytes > 0 || entries > 0)),
            "{path} is readable in the container ({bytes} bytes, {entries} entries): {r}"
        );
    }
    // The check means something here: some of them do have content outside.
    assert!(
        !live.is_empty(),
        "none of the masked paths has content in the test host: the test checks nothing"
    );
    eprintln!("masked paths with content in the test host: {live:?}");
}

#[test]
fn proc_read_only_paths_and_sys_are_read_only() {
    let c = Case::new("proc-ro");
    let mut actions = vec!["proc-sys-write", "/proc/sys/kernel/hostname", "sysrq"];
    let irq = "/proc/irq/default_smp_affinity";
    let has_irq = host().exists(irq);
    if has_irq {
        actions.extend(["proc-sys-write", irq]);
    }
    let (f, a) = facts_and_attempts(&c.name, &[], &actions);
    for path in READ_ONLY {
        if !host().exists(path) {
            continue;
        }
        let m = f
            .covering_mount(path)
            .unwrap_or_else(|| panic!("no mount holds {path}:\n{}", f.out));
        assert!(
            is_read_only(m),
            "{path} is on a writable mount in the container: {m}"
        );
    }
    let sys = f
        .covering_mount("/sys")
        .unwrap_or_else(|| panic!("no mount holds /sys:\n{}", f.out));
    assert_eq!(sys["fs_type"], "sysfs", "{sys}");
    assert!(is_read_only(sys), "/sys is mounted writable: {sys}");

    // Writing is refused with EROFS.
    for r in a.all("proc-sys-write") {
        assert!(!ok(r), "{} could be written: {r}", r["path"]);
        assert_eq!(errno(r), libc::EROFS, "{r}");
    }
    let r = a.get("sysrq");
    assert!(
        !ok(r),
        "/proc/sysrq-trigger could be opened for writing: {r}"
    );
    if host().exists("/proc/sysrq-trigger") {
        assert_eq!(errno(r), libc::EROFS, "{r}");
    }
}

// ---------------------------------------------------------------------------------------------
// /dev

#[test]
fn dev_holds_exactly_dockers_devices() {
    let c = Case::new("dev");
    let f = facts(&c.name, &[]);
    let top: BTreeSet<String> = f
        .dev()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .filter(|n| !n.contains('/'))
        .map(str::to_string)
        .collect();
    let want = names(&[
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd",
        "stdin", "stdout", "stderr",
    ]);
    assert_eq!(top, want, "/dev holds:\n{}", f.v["dev"]);

    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let e = f.dev_entry(name).expect("listed");
        assert_eq!(e["type"], "char", "/dev/{name}: {e}");
        assert_eq!(
            (e["major"].as_u64(), e["minor"].as_u64()),
            (Some(major), Some(minor)),
            "/dev/{name}: {e}"
        );
        assert_eq!(e["mode"], "0666", "/dev/{name}: {e}");
    }
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let e = f.dev_entry(name).expect("listed");
        assert_eq!(e["type"], "symlink", "/dev/{name}: {e}");
        assert_eq!(e["target"], target, "/dev/{name}: {e}");
    }
    for name in ["pts", "shm", "mqueue"] {
        assert_eq!(
            f.dev_entry(name).expect("listed")["type"],
            "dir",
            "/dev/{name}"
        );
    }
    assert_eq!(f.dev_entry("shm").expect("listed")["mode"], "1777");
    // No block device anywhere, no character device but those and the private ptmx.
    for e in f.dev() {
        assert_ne!(e["type"], "block", "a block device in /dev: {e}");
        if e["type"] == "char" {
            let n = e["name"].as_str().unwrap_or("");
            assert!(
                [
                    "null", "zero", "full", "random", "urandom", "tty", "pts/ptmx"
                ]
                .contains(&n),
                "an unexpected character device in /dev: {e}"
            );
        }
    }

    let fs_type = |point: &str| {
        f.mount_at(point)
            .map(|m| m["fs_type"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("nothing mounted at {point}:\n{}", f.out))
    };
    assert_eq!(fs_type("/dev"), "tmpfs");
    assert_eq!(fs_type("/dev/pts"), "devpts");
    assert_eq!(fs_type("/dev/shm"), "tmpfs");
    assert_eq!(fs_type("/dev/mqueue"), "mqueue");
    // A devpts instance of its own, not the test host's.
    let host_pts = host().exec(&["mountpoint", "-d", "/dev/pts"]);
    if host_pts.success() {
        let pts = f.mount_at("/dev/pts").expect("mounted");
        assert_ne!(
            pts["dev"].as_str(),
            Some(host_pts.stdout.trim()),
            "/dev/pts is the test host's devpts: {pts}"
        );
    }
}

/// The unit's cgroup enforces Docker's device rules: the standard pseudo devices and pseudo
/// terminals, mknod of anything, nothing else (a device node made inside cannot be opened:
/// the escape tests try).
#[test]
fn device_rules_are_the_units() {
    let h = host();
    let c = Case::new("devrules");
    c.run(&["-d"], &["sleep", "1000"]).ok();
    let unit = c.adhoc_unit();
    assert_eq!(h.prop(&unit, "DevicePolicy"), "closed");
    let allow = h.prop(&unit, "DeviceAllow");
    for rule in ["char-pts rw", "char-* m", "block-* m"] {
        assert!(allow.contains(rule), "{unit}: DeviceAllow={allow}");
    }
    h.cleat(&["rm", "-f", &c.name]).ok();
    // A declared container: the template unit says the same.
    let d = Case::new("devrules-decl");
    d.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"sleep\", \"1000\"]\n",
        d.rootfs()
    ));
    h.daemon_reload();
    let unit = d.declared_unit();
    assert_eq!(h.prop(&unit, "DevicePolicy"), "closed");
    assert_eq!(h.prop(&unit, "DeviceAllow"), allow);
}

// ---------------------------------------------------------------------------------------------
// Root file system and mounts

#[test]
fn read_only_root_keeps_dev_shm_proc_tmpfs_and_volumes_writable() {
    let c = Case::new("ro-root");
    let dir = HostTemp::new(&c.name);
    let vol = format!("{}:/vol", dir.path);
    let (f, a) = facts_and_attempts(
        &c.name,
        &["--read-only", "--tmpfs", "/scratch", "-v", &vol],
        &[
            "write",
            "/probe-written",
            "write",
            "/etc/probe-written",
            "write",
            "/dev/shm/probe-written",
            "write",
            "/dev/probe-written",
            "write",
            "/proc/self/comm",
            "probe-w",
            "write",
            "/scratch/probe-written",
            "write",
            "/vol/probe-written",
        ],
    );
    let root = f
        .covering_mount("/")
        .unwrap_or_else(|| panic!("no root mount:\n{}", f.out));
    assert!(is_read_only(root), "--read-only: / is writable: {root}");
    for path in ["/probe-written", "/etc/probe-written"] {
        let r = a.at("write", path);
        assert!(!ok(r), "--read-only: {path} could be written: {r}");
        assert_eq!(errno(r), libc::EROFS, "{r}");
    }
    for path in [
        "/dev/shm/probe-written",
        "/dev/probe-written",
        "/proc/self/comm",
        "/scratch/probe-written",
        "/vol/probe-written",
    ] {
        let r = a.at("write", path);
        assert!(ok(r), "--read-only: {path} should stay writable: {r}");
    }
    assert_eq!(
        fs::read_to_string(host().path(&dir.join("probe-written"))).ok(),
        Some("probe\n".to_string()),
        "the write to the volume did not reach the host directory"
    );
}

#[test]
fn tmpfs_mounts() {
    let c = Case::new("tmpfs");
    let f = facts(
        &c.name,
        &[
            "--tmpfs",
            "/scratch:size=1m,mode=1770",
            "--mount",
            "type=tmpfs,target=/t2",
            // Below /dev is allowed (Docker's way to size /dev/shm without --shm-size).
            "--tmpfs",
            "/dev/shm:size=2m",
        ],
    );
    let m = f
        .mount_at("/scratch")
        .unwrap_or_else(|| panic!("nothing at /scratch:\n{}", f.out));
    assert_eq!(m["fs_type"], "tmpfs", "{m}");
    assert!(!is_read_only(m), "{m}");
    let so = super_options(m);
    assert!(so.contains("size=1024k"), "size=1m not applied: {m}");
    assert!(so.contains("mode=1770"), "mode=1770 not applied: {m}");
    let m = f
        .mount_at("/t2")
        .unwrap_or_else(|| panic!("nothing at /t2:\n{}", f.out));
    assert_eq!(m["fs_type"], "tmpfs", "{m}");
    let m = f
        .mount_at("/dev/shm")
        .unwrap_or_else(|| panic!("nothing at /dev/shm:\n{}", f.out));
    assert!(super_options(m).contains("size=2048k"), "/dev/shm: {m}");
}

#[test]
fn bind_mounts_read_only_and_read_write() {
    let c = Case::new("bind");
    let dir = HostTemp::new(&c.name);
    host().write_file(&dir.join("hello"), "from the host\n");
    let ro = format!("{}:/ro:ro", dir.path);
    let rw = format!("{}:/rw", dir.path);
    let m = format!("type=bind,source={},target=/m,readonly", dir.path);
    let (f, a) = facts_and_attempts(
        &c.name,
        &["-v", &ro, "-v", &rw, "--mount", &m],
        &[
            "read",
            "/ro/hello",
            "read",
            "/m/hello",
            "write",
            "/ro/x",
            "write",
            "/m/z",
            "write",
            "/rw/y",
        ],
    );
    for path in ["/ro/hello", "/m/hello"] {
        let r = a.at("read", path);
        assert!(ok(r), "{r}");
        assert_eq!(r["head"], "from the host\n", "{r}");
    }
    for path in ["/ro/x", "/m/z"] {
        let r = a.at("write", path);
        assert!(!ok(r), "{path} is on a read-only bind mount: {r}");
        assert_eq!(errno(r), libc::EROFS, "{r}");
    }
    assert!(ok(a.at("write", "/rw/y")), "{}", a.out);
    assert!(
        host().exists(&dir.join("y")),
        "the write did not reach the host"
    );
    assert!(!host().exists(&dir.join("x")) && !host().exists(&dir.join("z")));
    for (point, ro) in [("/ro", true), ("/m", true), ("/rw", false)] {
        let mnt = f
            .mount_at(point)
            .unwrap_or_else(|| panic!("nothing at {point}:\n{}", f.out));
        assert_eq!(is_read_only(mnt), ro, "{point}: {mnt}");
    }
}

/// Bind mounts are private by default (Docker's `rprivate`): what the host mounts below the
/// source later stays out of the container; with `rslave` it comes in. Nothing the container
/// mounts reaches the host either way.
#[test]
fn bind_propagation_private_by_default_rslave_on_request() {
    let h = host();
    let c = Case::new("propagation");
    let dir = HostTemp::new(&c.name);
    h.exec(&["mkdir", "-p", &dir.join("sub")]).ok();
    // The source must be a shared mount for the host's mounts to propagate anywhere.
    h.exec(&["mount", "--bind", &dir.path, &dir.path]).ok();
    h.exec(&["mount", "--make-shared", &dir.path]).ok();
    let private = format!("{}:/private", dir.path);
    let slave = format!("{}:/slave:rslave", dir.path);
    c.run(&["-d", "-v", &private, "-v", &slave], &["sleep", "1000"])
        .ok();
    let main = h.prop(&c.adhoc_unit(), "MainPID");
    // The test host mounts something below the source now.
    let sub = dir.join("sub");
    h.exec(&["mount", "-t", "tmpfs", "-o", "size=1m", "late", &sub])
        .ok();
    h.write_file(&format!("{sub}/marker"), "late\n");
    let sees = |path: &str| {
        h.exec(&["nsenter", "-t", &main, "-m", "cat", path])
            .stdout
            .contains("late")
    };
    let host_shared = h
        .exec(&["findmnt", "-no", "PROPAGATION", "-T", &dir.path])
        .stdout
        .contains("shared");
    assert!(
        host_shared,
        "the test host's /tmp is not a shared mount: rslave cannot be checked"
    );
    assert!(
        wait_until(Duration::from_secs(5), || sees("/slave/sub/marker")),
        "an rslave bind did not get the host's new mount"
    );
    assert!(
        !sees("/private/sub/marker"),
        "a private bind got the host's new mount"
    );
    h.cleat(&["rm", "-f", &c.name]).ok();
    h.exec(&["umount", &sub]).ok();
    h.exec(&["umount", &dir.path]).ok();
}

/// Removes a named volume at the end of a test.
struct VolumeGuard(String);

impl Drop for VolumeGuard {
    fn drop(&mut self) {
        let _ = host().cleat(&["volume", "rm", "-f", &self.0]);
    }
}

#[test]
fn named_volumes_persist_are_filled_from_the_image_and_are_shared_by_volumes_from() {
    let h = host();
    let c = Case::new("namedvol");
    let vol = format!("{}-data", c.name);
    let _g = VolumeGuard(vol.clone());
    let spec = format!("{vol}:/data");

    let n1 = c.another("namedvol-w");
    let a = crate::inside::attempts(&n1, &["-v", &spec], &["write", "/data/kept"]);
    assert!(ok(a.get("write")), "{}", a.out);
    // A later container finds what the first one wrote.
    let n2 = c.another("namedvol-r");
    let a = crate::inside::attempts(&n2, &["-v", &spec], &["read", "/data/kept"]);
    let r = a.get("read");
    assert!(ok(r), "the named volume lost its content: {r}");
    assert_eq!(r["head"], "probe\n", "{r}");

    // --volumes-from: the volumes of another (created, never started) container.
    let holder = c.another("namedvol-holder");
    let shared_spec = format!("{vol}:/shared");
    h.cleat(&[
        "create",
        "--name",
        &holder,
        "-v",
        &shared_spec,
        "--rootfs",
        c.rootfs(),
        "true",
    ])
    .ok();
    let n3 = c.another("namedvol-from");
    let a = crate::inside::attempts(&n3, &["--volumes-from", &holder], &["read", "/shared/kept"]);
    let r = a.get("read");
    assert!(ok(r), "--volumes-from did not bring the volume: {r}");
    assert_eq!(r["head"], "probe\n", "{r}");

    // A new named volume is first filled with what the image has at its target.
    let etc_vol = format!("{}-etc", c.name);
    let _g2 = VolumeGuard(etc_vol.clone());
    let n4 = c.another("namedvol-fill");
    let spec = format!("{etc_vol}:/etc");
    let a = crate::inside::attempts(&n4, &["-v", &spec], &["read", "/etc/group"]);
    let r = a.get("read");
    assert!(ok(r), "the new volume was not filled from the image: {r}");
    let want = fs::read(format!("{}/etc/group", c.rootfs())).expect("the rootfs's /etc/group");
    assert_eq!(
        r["fnv1a64"].as_str(),
        Some(crate::inside::fnv1a64(&want).as_str()),
        "/etc/group in the new volume differs from the image's: {r}"
    );
}

// ---------------------------------------------------------------------------------------------
// Users and groups

/// The supplementary groups, without the primary group (Docker may list it or not).
fn extra_groups(f: &Facts) -> BTreeSet<u64> {
    let gid = f.int("gid") as u64;
    f.groups().into_iter().filter(|g| *g != gid).collect()
}

#[test]
fn users_and_supplementary_groups() {
    let c = Case::new("users");
    // A name from the image's /etc/passwd; its groups from /etc/group (staff lists app).
    let f = facts(&c.name, &["-u", "app"]);
    assert_eq!(
        (f.int("uid"), f.int("gid"), f.int("euid"), f.int("egid")),
        (1000, 1000, 1000, 1000),
        "{}",
        f.out
    );
    assert_eq!(extra_groups(&f), BTreeSet::from([50]), "{}", f.v["groups"]);
    assert_eq!(f.v["env"]["HOME"], "/home/app", "HOME for app");

    // A number that is in /etc/passwd: the same user.
    let n = c.another("users-num");
    let f = facts(&n, &["-u", "1000"]);
    assert_eq!((f.int("uid"), f.int("gid")), (1000, 1000), "{}", f.out);
    assert_eq!(extra_groups(&f), BTreeSet::from([50]), "{}", f.v["groups"]);

    // --group-add, by name (from the image's /etc/group) and by number.
    let n = c.another("users-groupadd");
    let f = facts(&n, &["--group-add", "staff", "--group-add", "4242"]);
    assert_eq!((f.int("uid"), f.int("gid")), (0, 0), "{}", f.out);
    assert_eq!(
        extra_groups(&f),
        BTreeSet::from([50, 4242]),
        "{}",
        f.v["groups"]
    );
    assert_eq!(f.v["env"]["HOME"], "/root", "HOME for root");

    let n = c.another("users-app-groupadd");
    let f = facts(&n, &["-u", "app", "--group-add", "4242"]);
    assert_eq!(
        extra_groups(&f),
        BTreeSet::from([50, 4242]),
        "{}",
        f.v["groups"]
    );
}

// ---------------------------------------------------------------------------------------------
// Resource limits

#[test]
fn ulimits_are_set_and_clamped_to_the_hard_limit() {
    let c = Case::new("ulimit");
    let f = facts(&c.name, &["--ulimit", "nofile=512:1024"]);
    assert_eq!(f.rlimit("nofile"), (Some(512), Some(1024)), "{}", f.out);

    let n = c.another("ulimit-one");
    let f = facts(&n, &["--ulimit", "nofile=512"]);
    assert_eq!(f.rlimit("nofile"), (Some(512), Some(512)), "{}", f.out);

    // Above the hard limit a container may have: clamped, never an error at start.
    let n = c.another("ulimit-base");
    let base = facts(&n, &[]).rlimit("nofile");
    let Some(hard) = base.1 else {
        eprintln!("RLIMIT_NOFILE is unlimited here: no clamp to check");
        return;
    };
    let n = c.another("ulimit-clamp");
    let want = format!("nofile=1024:{}", hard * 10);
    let out = run_in_rootfs(&n, &["--ulimit", &want], &["facts"]);
    out.ok().reads_clean();
    let f = Facts::from_output(&out);
    assert_eq!(
        f.rlimit("nofile"),
        (Some(1024.min(hard)), Some(hard)),
        "--ulimit {want} with a hard limit of {hard}:\n{}",
        f.out
    );
    // ... with a warning that names the limit.
    let text = format!("{}{}", out.all(), journal_of(&n));
    assert!(
        text.to_lowercase().contains("nofile"),
        "no warning about the clamped nofile limit:\n{out}\n--- journal\n{}",
        journal_of(&n)
    );
}

// ---------------------------------------------------------------------------------------------
// The same settings in a declared container

#[test]
fn declared_container_takes_the_same_keys() {
    let h = host();
    let c = Case::new("decl-iso");
    let dir = HostTemp::new(&c.name);
    h.write_file(&dir.join("hello"), "declared\n");
    let unit = c.declared_unit();
    c.declare(&format!(
        r#"rootfs = "{rootfs}"
command = ["{PROBE}", "facts"]
network = "host"
domainname = "example.org"
read-only = true
tmpfs = ["/scratch:size=1m"]
mounts = ["type=tmpfs,target=/t2"]
volumes = ["{dir}:/vol:ro"]
cap-add = ["SYS_ADMIN"]
cap-drop = ["NET_RAW"]
seccomp = "unconfined"
no-new-privileges = true
group-add = ["staff", "4242"]
init = true

[ulimits]
nofile = "1024:2048"
"#,
        rootfs = c.rootfs(),
        dir = dir.path,
    ));
    h.systemctl(&["start", &unit]).ok();
    expect_stopped(&unit, Duration::from_secs(20));
    expect_journal(&unit, "\"fact\":\"end\"");
    let f = Facts::from_journal(&unit);
    assert_eq!(f.ns("net"), host_ns("net"), "network = \"host\"");
    assert_eq!(f.str("domainname"), "example.org");
    let root = f.covering_mount("/").expect("a root mount");
    assert!(is_read_only(root), "read-only = true: {root}");
    let m = f.mount_at("/scratch").expect("tmpfs = [\"/scratch\"]");
    assert_eq!(m["fs_type"], "tmpfs");
    assert!(super_options(m).contains("size=1024k"), "{m}");
    assert_eq!(
        f.mount_at("/t2").expect("mounts = [tmpfs /t2]")["fs_type"],
        "tmpfs"
    );
    let m = f.mount_at("/vol").expect("volumes = [.../vol:ro]");
    assert!(mount_options(m).contains("ro"), "{m}");
    let mut caps = default_caps();
    caps.insert("SYS_ADMIN".into());
    caps.remove("NET_RAW");
    assert_eq!(f.caps("eff"), caps, "cap-add/cap-drop");
    assert_eq!(f.caps("bnd"), caps, "cap-add/cap-drop");
    assert_eq!(f.int("seccomp"), 0, "seccomp = \"unconfined\"");
    assert_eq!(f.int("no_new_privs"), 1, "no-new-privileges = true");
    assert_eq!(f.rlimit("nofile"), (Some(1024), Some(2048)), "ulimits");
    assert_eq!(extra_groups(&f), BTreeSet::from([50, 4242]), "group-add");
    assert!(
        f.int("pid") >= 2,
        "init = true: the payload is PID {}",
        f.int("pid")
    );
    assert_eq!(f.int("ppid"), 1, "init = true");
}

// ---------------------------------------------------------------------------------------------
// A container from an image

#[test]
fn a_container_from_an_image_is_isolated_the_same_way() {
    registries();
    let _g = shared();
    let img = image(PLAIN, "busybox");
    let c = Case::new("img-iso");
    // The image's user (app): no effective capability, the default bounding set.
    let out = run_in_image(&c.name, &img, &[], &["facts"]);
    let f = Facts::from_output(&out);
    assert_eq!((f.int("uid"), f.int("gid")), (1000, 1000), "{}", f.out);
    assert_eq!(extra_groups(&f), BTreeSet::from([50]), "{}", f.v["groups"]);
    assert!(f.caps("eff").is_empty(), "{}", f.v["caps"]);
    assert_eq!(f.caps("bnd"), default_caps(), "{}", f.v["caps"]);
    assert_eq!(f.int("seccomp"), 2, "{}", f.out);
    for ns in NAMESPACES {
        assert_ne!(
            f.ns(ns),
            host_ns(ns),
            "shares the test host's {ns} namespace"
        );
    }
    // The probe's own bind mount is read-only.
    let m = f
        .mount_at(crate::host::PROBE_MOUNT)
        .unwrap_or_else(|| panic!("the probe is not mounted:\n{}", f.out));
    assert!(is_read_only(m), "-v ...:/probe:ro is writable: {m}");

    // As root, and with a read-only root.
    let n = c.another("img-iso-root");
    let out = run_in_image(
        &n,
        &img,
        &["-u", "0", "--read-only"],
        &["try", "write", "/etc/x"],
    );
    let a = Attempts::from_output(&out);
    let r = a.get("write");
    assert!(!ok(r), "--read-only: /etc/x written: {r}");
    assert_eq!(errno(r), libc::EROFS, "{r}");
    let n = c.another("img-iso-caps");
    let f = Facts::from_output(&run_in_image(&n, &img, &["-u", "0"], &["facts"]));
    assert_eq!(f.caps("eff"), default_caps(), "{}", f.v["caps"]);
}
