//! `probe try ACTION [ARG...] [ACTION [ARG...]...]`: attempts, most of which must fail in a
//! container with default settings. Each attempt runs in a child process of its own (so a
//! `chroot` or `unshare` that works does not change what the next one sees; mounts do stay,
//! being per mount namespace) and prints one JSON line per result:
//!
//!     {"action": "mount", "ok": false, "errno": 1, "errno_name": "EPERM", "error": "…", …}
//!
//! Lines stay short (well under 4 KiB; see `MAX_LINE` in main.rs): lists are cut.
//!
//! `ok` says whether the attempt *worked* (for an escape attempt: whether it escaped). The
//! probe never does harm when an attempt works: /proc/sysrq-trigger is only opened for
//! writing (nothing is written), a /proc/sys knob is rewritten with its current value, a
//! kernel module image is empty, a block device node is opened and closed without a read, a
//! successful mount is undone.

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::json::Json;
use crate::sys::{
    check, cstr, dev_string, error_fields, file_type, fnv1a64, head, outcome, read_at_most,
};

/// The actions `try` knows.
const ACTIONS: &[&str] = &[
    "mount",
    "remount-root",
    "remount-root-rw",
    "remount-root-ro",
    "sysrq",
    "proc-sys-write",
    "kmod",
    "init-module",
    "finit-module",
    "ptrace",
    "mknod-block",
    "mknod-char",
    "raw-socket",
    "keyctl",
    "add-key",
    "getppid",
    "unshare-user",
    "unshare-ns",
    "unshare-mnt",
    "unshare-uts",
    "unshare-ipc",
    "unshare-net",
    "unshare-pid",
    "unshare-cgroup",
    "read-masked",
    "chroot-escape",
    "read",
    "write",
    "stat",
    "follow-symlink",
];

/// Splits `try`'s arguments into actions with their arguments: a word that is not an action
/// name is an argument of the action before it. Unknown first words are reported.
pub fn parse(args: &[String]) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for a in args {
        if ACTIONS.contains(&a.as_str()) {
            out.push((a.clone(), Vec::new()));
        } else if let Some((_, list)) = out.last_mut() {
            list.push(a.clone());
        } else {
            return Err(format!(
                "unknown action {a:?} (known: {})",
                ACTIONS.join(", ")
            ));
        }
    }
    if out.is_empty() {
        return Err(format!("no action given (known: {})", ACTIONS.join(", ")));
    }
    Ok(out)
}

/// Runs one action in a child process and returns its result lines (or a line saying how
/// the child died).
pub fn run(action: &str, args: &[String]) -> Vec<Json> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        // No pipe: run it here.
        return dispatch(action, args);
    }
    // SAFETY: both descriptors are fresh and ours.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let _ = io::stdout().flush();
    // SAFETY: the probe is single-threaded; the child only runs the action and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return dispatch(action, args);
    }
    if pid == 0 {
        drop(rd);
        let lines = dispatch(action, args);
        let mut f = fs::File::from(wr);
        for l in lines {
            let _ = writeln!(f, "{}", l.render());
        }
        drop(f);
        // SAFETY: leaving the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    drop(wr);
    let mut text = String::new();
    let _ = io::Read::read_to_string(&mut fs::File::from(rd), &mut text);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let mut lines: Vec<Json> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Json::Str(l.to_string()))
        .collect();
    let clean = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if lines.is_empty() || !clean {
        let mut j = Json::obj()
            .set("action", action)
            .set("args", args.to_vec())
            .set("ok", false)
            .set("crashed", true);
        if libc::WIFSIGNALED(status) {
            j.put("signal", libc::WTERMSIG(status));
        } else if libc::WIFEXITED(status) {
            j.put("exit_status", libc::WEXITSTATUS(status));
        }
        lines.push(j);
    }
    lines
}

/// Lines already rendered by the child are passed through as they are.
pub fn render_line(j: &Json) -> String {
    match j {
        Json::Str(s) => s.clone(),
        other => other.render(),
    }
}

fn dispatch(action: &str, args: &[String]) -> Vec<Json> {
    let arg = |i: usize| args.get(i).map(String::as_str);
    let one = |r: Json| vec![Json::obj().set("action", action).merge(r)];
    match action {
        "mount" => one(mount_tmpfs(arg(0))),
        "remount-root" | "remount-root-rw" => one(remount_root(false)),
        "remount-root-ro" => one(remount_root(true)),
        "sysrq" => one(sysrq()),
        "proc-sys-write" => one(proc_sys_write(
            arg(0).unwrap_or("/proc/sys/kernel/hostname"),
        )),
        "kmod" => vec![
            Json::obj()
                .set("action", "init-module")
                .merge(init_module()),
            Json::obj()
                .set("action", "finit-module")
                .merge(finit_module()),
        ],
        "init-module" => one(init_module()),
        "finit-module" => one(finit_module()),
        "ptrace" => one(ptrace(arg(0))),
        "mknod-block" => one(mknod_open(libc::S_IFBLK, arg(0).unwrap_or("8:0"), arg(1))),
        "mknod-char" => one(mknod_open(libc::S_IFCHR, arg(0).unwrap_or("1:1"), arg(1))),
        "raw-socket" => one(raw_socket()),
        "keyctl" => one(keyctl()),
        "add-key" => one(add_key()),
        "getppid" => one(getppid()),
        "unshare-ns" => one(unshare("mnt")),
        a if a.starts_with("unshare-") => one(unshare(&a["unshare-".len()..])),
        "read-masked" => {
            let defaults = [
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
            let paths: Vec<String> = if args.is_empty() {
                defaults.iter().map(|s| s.to_string()).collect()
            } else {
                args.to_vec()
            };
            paths
                .iter()
                .map(|p| {
                    Json::obj()
                        .set("action", action)
                        .set("path", p.as_str())
                        .merge(read_path(p, 4096, false))
                })
                .collect()
        }
        "read" => match arg(0) {
            Some(p) => vec![
                Json::obj()
                    .set("action", action)
                    .set("path", p)
                    .merge(read_path(p, 65536, true)),
            ],
            None => one(usage("read PATH")),
        },
        "write" => match arg(0) {
            Some(p) => vec![
                Json::obj()
                    .set("action", action)
                    .set("path", p)
                    .merge(write_path(p, arg(1).unwrap_or("probe\n"))),
            ],
            None => one(usage("write PATH [DATA]")),
        },
        "stat" => match arg(0) {
            Some(p) => vec![
                Json::obj()
                    .set("action", action)
                    .set("path", p)
                    .merge(stat_path(p)),
            ],
            None => one(usage("stat PATH")),
        },
        "follow-symlink" => match arg(0) {
            Some(p) => vec![
                Json::obj()
                    .set("action", action)
                    .set("path", p)
                    .merge(follow(p)),
            ],
            None => one(usage("follow-symlink PATH")),
        },
        "chroot-escape" => one(chroot_escape(arg(0))),
        other => one(usage(&format!("unknown action {other}"))),
    }
}

fn usage(msg: &str) -> Json {
    Json::obj()
        .set("ok", false)
        .set("errno", 0)
        .set("error", format!("usage: {msg}"))
}

// ---------------------------------------------------------------------------------------------
// Mounts

fn mount_tmpfs(target: Option<&str>) -> Json {
    let target = target.map(str::to_string).unwrap_or_else(|| {
        if Path::new("/mnt").is_dir() {
            "/mnt".into()
        } else {
            "/tmp".into()
        }
    });
    let r = (|| {
        let t = cstr(&target)?;
        // SAFETY: valid NUL-terminated strings.
        check(unsafe {
            libc::mount(
                c"probe".as_ptr(),
                t.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"size=16k".as_ptr().cast(),
            )
        })?;
        // It worked: undo it.
        // SAFETY: as above.
        let undone = unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) } == 0;
        Ok(Json::obj().set("undone", undone))
    })();
    outcome(r).set("target", target)
}

/// The per-mount flags of the mount holding `/`, as `mount(2)` flags (`MS_RDONLY`,
/// `MS_NOSUID`, `MS_NODEV`, ...).
fn root_mount_flags() -> Option<libc::c_ulong> {
    // SAFETY: an all-zero statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a constant path and a valid out-parameter.
    if unsafe { libc::statvfs(c"/".as_ptr(), &mut st) } != 0 {
        return None;
    }
    let mut flags = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    Some(flags)
}

/// `mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | flags, NULL)`.
fn remount_root_with(flags: libc::c_ulong) -> io::Result<()> {
    // SAFETY: null source/type/data are allowed for a remount; the target is a constant.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | flags,
            std::ptr::null(),
        )
    })
    .map(|_| ())
}

/// Remounts / read-write (or read-only), its other flags (nodev, nosuid, ...) kept. Mounts
/// belong to the mount namespace, not to this process: if it works, the root's previous
/// flags are put back, so that later attempts see the container as it was.
fn remount_root(readonly: bool) -> Json {
    let before = root_mount_flags();
    let base = before.unwrap_or(0) & !libc::MS_RDONLY;
    let wanted = if readonly {
        base | libc::MS_RDONLY
    } else {
        base
    };
    let r = remount_root_with(wanted).map(|()| {
        let undone = match before {
            Some(flags) => remount_root_with(flags).is_ok(),
            None => false,
        };
        Json::obj().set("undone", undone)
    });
    outcome(r)
        .set(
            "flags",
            if readonly {
                "remount,bind,ro"
            } else {
                "remount,bind,rw"
            },
        )
        .set(
            "root_was_read_only",
            before.map(|f| f & libc::MS_RDONLY != 0),
        )
}

// ---------------------------------------------------------------------------------------------
// /proc

fn sysrq() -> Json {
    // Opening for writing is the whole test: nothing is ever written.
    let r = fs::OpenOptions::new()
        .write(true)
        .open("/proc/sysrq-trigger")
        .map(|_| {
            Json::obj()
                .set("opened_for_writing", true)
                .set("wrote", false)
        });
    outcome(r).set("path", "/proc/sysrq-trigger")
}

fn proc_sys_write(path: &str) -> Json {
    let r = (|| {
        let current = fs::read(path)?;
        let mut f = fs::OpenOptions::new().write(true).open(path)?;
        // The same value again: a no-op if it works.
        f.write_all(&current)?;
        Ok(Json::obj().set("rewrote_bytes", current.len()))
    })();
    outcome(r).set("path", path)
}

// ---------------------------------------------------------------------------------------------
// Kernel modules

fn init_module() -> Json {
    let image: [u8; 0] = [];
    // SAFETY: an empty image (length 0) and an empty parameter string.
    let r = check(unsafe {
        libc::syscall(libc::SYS_init_module, image.as_ptr(), 0usize, c"".as_ptr())
    })
    .map(|_| Json::obj());
    outcome(r)
}

fn finit_module() -> Json {
    let r = (|| {
        // An empty file: nothing a kernel could load.
        // SAFETY: a constant name, no flags.
        let fd = check(unsafe { libc::memfd_create(c"probe-empty".as_ptr(), 0) })
            .or_else(|_| fs::File::open("/dev/null").map(IntoRawFd::into_raw_fd))?;
        // SAFETY: `fd` is ours and valid.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a valid descriptor and an empty parameter string.
        check(unsafe { libc::syscall(libc::SYS_finit_module, fd.as_raw_fd(), c"".as_ptr(), 0) })?;
        Ok(Json::obj())
    })();
    outcome(r)
}

// ---------------------------------------------------------------------------------------------
// ptrace

/// `PTRACE_SEIZE` (the permission checks of `PTRACE_ATTACH`, without stopping the target; it
/// is let go when this process exits) of `pid`, or, without one, of PID 1 from a child.
fn ptrace(pid: Option<&str>) -> Json {
    let target: i32 = match pid.map(str::parse) {
        Some(Ok(p)) => p,
        Some(Err(_)) => return usage("ptrace [PID]"),
        None => 1,
    };
    let seize = |t: i32| {
        // SAFETY: PTRACE_SEIZE with no address, no options.
        check(unsafe {
            libc::ptrace(
                libc::PTRACE_SEIZE,
                t,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            )
        })
        .map(|_| Json::obj())
    };
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let r = if target == me {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    } else {
        seize(target)
    };
    outcome(r)
        .set("target", target)
        .set("request", "PTRACE_SEIZE")
        .set(
            "target_visible",
            Path::new(&format!("/proc/{target}")).exists(),
        )
}

// ---------------------------------------------------------------------------------------------
// Devices

/// Makes a device node in `dir` (default: /tmp, on the root file system) and opens it (and
/// closes it: nothing is ever read); removes it again.
fn mknod_open(kind: libc::mode_t, majmin: &str, dir: Option<&str>) -> Json {
    let Some((maj, min)) = majmin
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
    else {
        return usage("mknod-block|mknod-char [MAJOR:MINOR [DIR]]");
    };
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let dir = match dir {
        Some(d) => d,
        None => ["/tmp", "/dev/shm", "/run", "/"]
            .into_iter()
            .find(|d| Path::new(d).is_dir())
            .unwrap_or("/tmp"),
    };
    let path = format!(
        "{}/probe-{}-{me}",
        dir.trim_end_matches('/'),
        if kind == libc::S_IFBLK { "blk" } else { "chr" }
    );
    let made = (|| {
        let p = cstr(&path)?;
        // SAFETY: a valid path and a plain device number.
        check(unsafe { libc::mknod(p.as_ptr(), kind | 0o600, libc::makedev(maj, min)) })?;
        Ok(Json::obj())
    })();
    let mknod = outcome(made);
    let mknod_ok = matches!(mknod.get("ok"), Some(Json::Bool(true)));
    let mut j = Json::obj()
        .set("path", path.as_str())
        .set("device", format!("{maj}:{min}"))
        .set(
            "type",
            if kind == libc::S_IFBLK {
                "block"
            } else {
                "char"
            },
        );
    if mknod_ok {
        // Opened and closed again; never read from.
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map(|_| Json::obj());
        let open = outcome(opened);
        let open_ok = matches!(open.get("ok"), Some(Json::Bool(true)));
        let _ = fs::remove_file(&path);
        j = j.set("ok", open_ok);
        j = j.merge(if open_ok {
            Json::obj().set("errno", 0)
        } else {
            pick_error(&open)
        });
        j.set("mknod", mknod).set("open", open)
    } else {
        j.set("ok", false)
            .merge(pick_error(&mknod))
            .set("mknod", mknod)
            .set("open", Json::Null)
    }
}

fn pick_error(step: &Json) -> Json {
    let mut j = Json::obj();
    for k in ["errno", "errno_name", "error"] {
        if let Some(v) = step.get(k) {
            j.put(k, v.clone());
        }
    }
    j
}

// ---------------------------------------------------------------------------------------------
// Sockets, keys, syscalls

fn raw_socket() -> Json {
    // SAFETY: socket(2) with constant arguments.
    let r = check(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    })
    .map(|fd| {
        // SAFETY: the descriptor is ours.
        unsafe { libc::close(fd) };
        Json::obj()
    });
    outcome(r)
}

const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
const KEY_SPEC_PROCESS_KEYRING: libc::c_long = -2;
const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;

fn keyctl() -> Json {
    // SAFETY: KEYCTL_GET_KEYRING_ID takes integers only; create = 0 creates nothing.
    let r = check(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            0,
        )
    })
    .map(|id| Json::obj().set("keyring", id));
    outcome(r)
}

fn add_key() -> Json {
    // A key in the process keyring, which goes away with this (child) process.
    // SAFETY: valid NUL-terminated strings and a 1-byte payload.
    let r = check(unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            c"probe".as_ptr(),
            c"x".as_ptr(),
            1usize,
            KEY_SPEC_PROCESS_KEYRING,
        )
    })
    .map(|id| Json::obj().set("key", id));
    outcome(r)
}

fn getppid() -> Json {
    // The raw system call, not a cached value.
    // SAFETY: getppid takes no arguments.
    let r = check(unsafe { libc::syscall(libc::SYS_getppid) }).map(|p| Json::obj().set("ppid", p));
    outcome(r)
}

fn unshare(ns: &str) -> Json {
    let flag = match ns {
        "user" => libc::CLONE_NEWUSER,
        "mnt" => libc::CLONE_NEWNS,
        "uts" => libc::CLONE_NEWUTS,
        "ipc" => libc::CLONE_NEWIPC,
        "net" => libc::CLONE_NEWNET,
        "pid" => libc::CLONE_NEWPID,
        "cgroup" => libc::CLONE_NEWCGROUP,
        other => return usage(&format!("unknown namespace {other}")),
    };
    // SAFETY: unshare(2) with one namespace flag, in this (single-threaded) child.
    let r = check(unsafe { libc::unshare(flag) }).map(|_| Json::obj());
    outcome(r).set("namespace", ns)
}

// ---------------------------------------------------------------------------------------------
// Files

/// Reads a file (at most `limit` bytes) or lists a directory.
fn read_path(path: &str, limit: usize, show_head: bool) -> Json {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return outcome(Err(e)).set("exists", fs::symlink_metadata(path).is_ok()),
    };
    if meta.is_dir() {
        let r = fs::read_dir(path).map(|rd| {
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Json::obj()
                .set("kind", "dir")
                .set("entries", names.len())
                .set("names", names.into_iter().take(50).collect::<Vec<_>>())
        });
        return outcome(r).set("exists", true);
    }
    let r = (|| {
        let mut f = fs::File::open(path)?;
        let (bytes, more) = read_at_most(&mut f, limit)?;
        let mut j = Json::obj()
            .set("kind", file_type(meta.mode()))
            .set("bytes", bytes.len())
            .set("truncated", more)
            .set("fnv1a64", fnv1a64(&bytes));
        if show_head {
            j.put("head", head(&bytes, 256));
        }
        Ok(j)
    })();
    outcome(r).set("exists", true)
}

fn write_path(path: &str, data: &str) -> Json {
    let r = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path)?;
        f.write_all(data.as_bytes())?;
        Ok(Json::obj().set("bytes", data.len()))
    })();
    outcome(r)
}

fn stat_json(m: &fs::Metadata) -> Json {
    let mut j = Json::obj()
        .set("type", file_type(m.mode()))
        .set("mode", format!("{:04o}", m.mode() & 0o7777))
        .set("uid", m.uid())
        .set("gid", m.gid())
        .set("dev", dev_string(m.dev()))
        .set("ino", m.ino())
        .set("size", m.size());
    let ft = m.file_type();
    if ft.is_char_device() || ft.is_block_device() {
        j.put("rdev", dev_string(m.rdev()));
    }
    j
}

fn stat_path(path: &str) -> Json {
    let r = fs::symlink_metadata(path).map(|m| {
        let mut j = stat_json(&m);
        if m.file_type().is_symlink() {
            j.put(
                "target",
                fs::read_link(path)
                    .map(|t| t.to_string_lossy().into_owned())
                    .ok(),
            );
        }
        j
    });
    outcome(r)
}

/// Opens a path, following symlinks, and says what it reached: device, inode, where the
/// kernel says it is, and a hash of its content (never the content: it might be a secret).
fn follow(path: &str) -> Json {
    let link = fs::symlink_metadata(path);
    let mut j = Json::obj();
    match &link {
        Ok(m) => {
            j.put("is_symlink", m.file_type().is_symlink());
            if m.file_type().is_symlink() {
                j.put(
                    "link",
                    fs::read_link(path)
                        .map(|t| t.to_string_lossy().into_owned())
                        .ok(),
                );
            }
        }
        Err(e) => {
            j.put("lstat", error_fields(e));
        }
    }
    let r = (|| {
        let mut f = fs::File::open(path)?;
        let m = f.metadata()?;
        let reached = fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
            .map(|t| t.to_string_lossy().into_owned())
            .ok();
        let mut out = stat_json(&m).set("reached", reached);
        if m.is_file() {
            let (bytes, more) = read_at_most(&mut f, 1 << 20)?;
            out = out
                .set("bytes", bytes.len())
                .set("truncated", more)
                .set("fnv1a64", fnv1a64(&bytes));
        }
        Ok(out)
    })();
    outcome(r).merge(j)
}

// ---------------------------------------------------------------------------------------------
// chroot

/// The classic escape: chroot into a subdirectory while the working directory stays
/// outside it, climb with `..`, chroot to where that leads. Reports whether the root reached
/// differs from the container's (`ok`: it escaped), and whether `marker` (a path that exists
/// only outside the container) is visible from there.
fn chroot_escape(marker: Option<&str>) -> Json {
    let before = fs::metadata("/").map(|m| (m.dev(), m.ino()));
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let r = (|| {
        let before = before
            .as_ref()
            .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
        std::env::set_current_dir("/")?;
        let mut made = None;
        let mut last_err = None;
        for dir in ["/tmp", "/dev/shm", "/run", "/var/tmp"] {
            let d = format!("{dir}/probe-chroot-{me}");
            match fs::create_dir(&d) {
                Ok(()) => {
                    made = Some(d);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let jail = match made {
            Some(d) => d,
            None => {
                return Err(last_err.unwrap_or_else(|| io::Error::other("no writable directory")));
            }
        };
        let c = cstr(&jail)?;
        // SAFETY: a valid path.
        let chrooted = check(unsafe { libc::chroot(c.as_ptr()) });
        if let Err(e) = chrooted {
            let _ = fs::remove_dir(&jail);
            return Err(e);
        }
        // The working directory is still the old root, outside the new one: climb.
        for _ in 0..64 {
            // SAFETY: a constant path.
            unsafe { libc::chdir(c"..".as_ptr()) };
        }
        // SAFETY: a constant path.
        check(unsafe { libc::chroot(c".".as_ptr()) })?;
        let after = fs::metadata("/")?;
        let escaped = (after.dev(), after.ino()) != *before;
        let mut names: Vec<String> = fs::read_dir("/")
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.truncate(50);
        let mut j = Json::obj()
            .set("escaped", escaped)
            .set(
                "root_before",
                format!("{}:{}", dev_string(before.0), before.1),
            )
            .set(
                "root_after",
                format!("{}:{}", dev_string(after.dev()), after.ino()),
            )
            .set("root_entries", names);
        if let Some(m) = marker {
            j.put("marker", m);
            j.put("marker_visible", fs::symlink_metadata(m).is_ok());
        }
        // Remove the jail directory, wherever we are now (best effort, same path if we
        // did not escape).
        let _ = fs::remove_dir(&jail);
        Ok(j)
    })();
    let escaped = matches!(
        r.as_ref().ok().and_then(|j| j.get("escaped")),
        Some(Json::Bool(true))
    );
    let mut out = outcome(r);
    // `ok` is whether it escaped, not whether the calls worked.
    let chroot_worked = matches!(out.get("ok"), Some(Json::Bool(true)));
    out.put("chroot_worked", chroot_worked);
    out.put("ok", escaped);
    out
}
