//! `probe facts`: what a process sees of its container, as one JSON object. Every field is
//! filled in even when something cannot be read: the error becomes the value (an object
//! with `errno` and `error`).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::json::Json;
use crate::sys::{self, c_chars, dev_string, error_fields, file_type, read_text};

/// Capability names by bit number, as Docker spells them (without `CAP_`).
pub const CAP_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Names of the bits set in a capability mask (unknown bits as `CAP_<n>`).
pub fn cap_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| match CAP_NAMES.get(bit as usize) {
            Some(name) => (*name).to_string(),
            None => format!("CAP_{bit}"),
        })
        .collect()
}

/// /proc/self/status as key → value.
fn status() -> io::Result<BTreeMap<String, String>> {
    let text = read_text("/proc/self/status")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

fn err(e: &io::Error) -> Json {
    error_fields(e)
}

fn namespaces() -> Json {
    let mut out = Json::obj();
    for ns in ["mnt", "pid", "uts", "ipc", "net", "cgroup", "user", "time"] {
        let v = match fs::read_link(format!("/proc/self/ns/{ns}")) {
            Ok(target) => Json::from(target.to_string_lossy().into_owned()),
            Err(e) => err(&e),
        };
        out.put(ns, v);
    }
    out
}

fn groups() -> Json {
    // SAFETY: getgroups(0, NULL) only returns the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return err(&io::Error::last_os_error());
    }
    let mut list = vec![0 as libc::gid_t; n as usize];
    // SAFETY: `list` has room for `n` entries.
    let n = unsafe { libc::getgroups(n, list.as_mut_ptr()) };
    if n < 0 {
        return err(&io::Error::last_os_error());
    }
    list.truncate(n as usize);
    Json::from(list)
}

fn caps(status: &BTreeMap<String, String>) -> Json {
    let mut out = Json::obj();
    for (key, field) in [
        ("inh", "CapInh"),
        ("prm", "CapPrm"),
        ("eff", "CapEff"),
        ("bnd", "CapBnd"),
        ("amb", "CapAmb"),
    ] {
        let v = match status
            .get(field)
            .and_then(|h| u64::from_str_radix(h, 16).ok().map(|m| (h, m)))
        {
            Some((hex, mask)) => Json::obj()
                .set("hex", hex.as_str())
                .set("names", cap_names(mask)),
            None => Json::Null,
        };
        out.put(key, v);
    }
    out
}

fn number(status: &BTreeMap<String, String>, key: &str) -> Json {
    status
        .get(key)
        .and_then(|v| v.parse::<i64>().ok())
        .map(Json::Int)
        .unwrap_or(Json::Null)
}

fn uts() -> (Json, Json) {
    // SAFETY: an all-zero utsname is a valid out-parameter.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        let e = err(&io::Error::last_os_error());
        return (e.clone(), e);
    }
    (
        Json::from(c_chars(&u.nodename)),
        Json::from(c_chars(&u.domainname)),
    )
}

/// Docker's names for the resource limits.
const RLIMITS: &[(&str, libc::__rlimit_resource_t)] = &[
    ("cpu", libc::RLIMIT_CPU),
    ("fsize", libc::RLIMIT_FSIZE),
    ("data", libc::RLIMIT_DATA),
    ("stack", libc::RLIMIT_STACK),
    ("core", libc::RLIMIT_CORE),
    ("rss", libc::RLIMIT_RSS),
    ("nproc", libc::RLIMIT_NPROC),
    ("nofile", libc::RLIMIT_NOFILE),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("as", libc::RLIMIT_AS),
    ("locks", libc::RLIMIT_LOCKS),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
];

/// Every limit as `{"soft": N, "hard": N}`, `null` meaning unlimited.
fn rlimits() -> Json {
    let mut out = Json::obj();
    let show = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            Json::Null
        } else {
            Json::from(v)
        }
    };
    for (name, res) in RLIMITS {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `r` is a valid, writable rlimit.
        let v = if unsafe { libc::getrlimit(*res, &mut r) } == 0 {
            Json::obj()
                .set("soft", show(r.rlim_cur))
                .set("hard", show(r.rlim_max))
        } else {
            err(&io::Error::last_os_error())
        };
        out.put(name, v);
    }
    out
}

/// One directory entry, not followed.
fn entry(path: &Path, name: &str) -> Json {
    let mut j = Json::obj().set("name", name);
    match fs::symlink_metadata(path) {
        Ok(m) => {
            j.put("type", file_type(m.mode()));
            j.put("mode", format!("{:04o}", m.mode() & 0o7777));
            j.put("uid", m.uid());
            j.put("gid", m.gid());
            let ft = m.file_type();
            if ft.is_char_device() || ft.is_block_device() {
                j.put("major", libc::major(m.rdev()));
                j.put("minor", libc::minor(m.rdev()));
            }
            if ft.is_symlink() {
                j.put(
                    "target",
                    fs::read_link(path)
                        .map(|t| t.to_string_lossy().into_owned())
                        .ok(),
                );
            }
        }
        Err(e) => j = j.merge(err(&e)),
    }
    j
}

/// The /dev tree (at most 3 levels, symlinks not followed), names relative to /dev.
fn dev_listing() -> Json {
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<Json>) {
        let Ok(rd) = fs::read_dir(dir) else {
            return;
        };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let name = name.to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            let path = dir.join(&name);
            let j = entry(&path, &rel);
            let is_dir = matches!(j.get("type"), Some(Json::Str(t)) if t == "dir");
            out.push(j);
            if is_dir && depth < 3 {
                walk(&path, &format!("{rel}/"), depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), "", 1, &mut out);
    Json::Arr(out)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// /proc/self/mountinfo, one object per mount, in order.
pub fn mounts() -> Json {
    let text = match read_text("/proc/self/mountinfo") {
        Ok(t) => t,
        Err(e) => return err(&e),
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            continue;
        }
        out.push(
            Json::obj()
                .set("id", l[0].parse::<u64>().ok())
                .set("parent", l[1].parse::<u64>().ok())
                .set("dev", l[2])
                .set("root", unescape(l[3]))
                .set("mount_point", unescape(l[4]))
                .set("options", l[5])
                .set("optional", l[6..].join(" "))
                .set("fs_type", r[0])
                .set("source", unescape(r[1]))
                .set("super_options", r[2]),
        );
    }
    Json::Arr(out)
}

fn environment() -> Json {
    let mut out = Json::obj();
    for (k, v) in std::env::vars_os() {
        out.put(&k.to_string_lossy(), v.to_string_lossy().into_owned());
    }
    out
}

/// The network interfaces of this network namespace, and the state of `lo`.
fn network() -> Json {
    let interfaces = match read_text("/proc/self/net/dev") {
        Ok(t) => Json::from(
            t.lines()
                .skip(2)
                .filter_map(|l| l.split_once(':'))
                .map(|(n, _)| n.trim().to_string())
                .collect::<Vec<_>>(),
        ),
        Err(e) => err(&e),
    };
    Json::obj()
        .set("interfaces", interfaces)
        .set("lo", interface_flags("lo"))
}

/// `SIOCGIFFLAGS` of an interface: `{"flags": N, "up": bool, "running": bool, "loopback":
/// bool}`.
pub fn interface_flags(name: &str) -> Json {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return err(&io::Error::last_os_error());
    }
    // SAFETY: an all-zero ifreq is a valid value of that plain C struct.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming the interface; the ioctl fills in the flags.
    let ret = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) };
    let e = io::Error::last_os_error();
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    if ret < 0 {
        return err(&e);
    }
    // SAFETY: SIOCGIFFLAGS filled in the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags } as i32;
    Json::obj()
        .set("flags", flags)
        .set("up", flags & libc::IFF_UP != 0)
        .set("running", flags & libc::IFF_RUNNING != 0)
        .set("loopback", flags & libc::IFF_LOOPBACK != 0)
}

/// What PID 1 of this PID namespace is.
fn pid1() -> Json {
    let comm = read_text("/proc/1/comm").map(|s| s.trim().to_string());
    let cmdline = fs::read("/proc/1/cmdline").map(|b| {
        b.split(|c| *c == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
    });
    let mut j = Json::obj()
        .set(
            "comm",
            match comm {
                Ok(c) => Json::from(c),
                Err(e) => err(&e),
            },
        )
        .set(
            "cmdline",
            match cmdline {
                Ok(c) => Json::from(c),
                Err(e) => err(&e),
            },
        );
    // Its credentials and privileges, from /proc/1/status (readable without ptrace access).
    match read_text("/proc/1/status") {
        Ok(text) => {
            let st: BTreeMap<String, String> = text
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let uid = st
                .get("Uid")
                .and_then(|u| u.split_whitespace().next())
                .and_then(|u| u.parse::<u64>().ok());
            j.put("uid", uid);
            j.put("caps", caps(&st));
            j.put("seccomp", number(&st, "Seccomp"));
            j.put("no_new_privs", number(&st, "NoNewPrivs"));
        }
        Err(e) => j.put("status", err(&e)),
    }
    j
}

fn stat_of(path: &str) -> Json {
    match fs::metadata(path) {
        Ok(m) => Json::obj()
            .set("dev", dev_string(m.dev()))
            .set("ino", m.ino()),
        Err(e) => err(&e),
    }
}

/// Everything, as one object.
pub fn facts() -> Json {
    let st = status();
    let empty = BTreeMap::new();
    let stm = st.as_ref().unwrap_or(&empty);
    let (hostname, domainname) = uts();
    // SAFETY: these getters have no preconditions.
    let (pid, ppid, uid, gid, euid, egid) = unsafe {
        (
            libc::getpid(),
            libc::getppid(),
            libc::getuid(),
            libc::getgid(),
            libc::geteuid(),
            libc::getegid(),
        )
    };
    let cwd = match std::env::current_dir() {
        Ok(p) => Json::from(String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned()),
        Err(e) => err(&e),
    };
    let cgroup = match read_text("/proc/self/cgroup") {
        Ok(t) => Json::from(t.lines().map(str::to_string).collect::<Vec<_>>()),
        Err(e) => err(&e),
    };
    let mut j = Json::obj()
        .set("pid", pid)
        .set("ppid", ppid)
        .set("ns", namespaces())
        .set("uid", uid)
        .set("gid", gid)
        .set("euid", euid)
        .set("egid", egid)
        .set("groups", groups())
        .set("caps", caps(stm))
        .set("seccomp", number(stm, "Seccomp"))
        .set("seccomp_filters", number(stm, "Seccomp_filters"))
        .set("no_new_privs", number(stm, "NoNewPrivs"))
        .set("umask", stm.get("Umask").cloned())
        .set("hostname", hostname)
        .set("domainname", domainname)
        .set("rlimits", rlimits())
        .set("dev", dev_listing())
        .set("mounts", mounts())
        .set("env", environment())
        .set("cwd", cwd)
        .set("net", network())
        .set("pid1", pid1())
        .set("cgroup", cgroup)
        .set("root", stat_of("/"));
    if let Err(e) = &st {
        j.put("status_error", err(e));
    }
    j
}

/// `probe procs`: the processes of this PID namespace (from /proc).
pub fn procs() -> Json {
    let mut list = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        let mut pids: Vec<i64> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort();
        for pid in pids {
            if let Some(p) = proc_stat(pid) {
                list.push(p);
            }
        }
    }
    Json::obj().set("procs", Json::Arr(list))
}

/// `{"pid", "ppid", "state", "comm"}` from /proc/PID/stat, if that process exists.
pub fn proc_stat(pid: i64) -> Option<Json> {
    let text = sys::read_text(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = &text[open + 1..close];
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    Some(
        Json::obj()
            .set("pid", pid)
            .set("ppid", rest.get(1).and_then(|p| p.parse::<i64>().ok()))
            .set("state", rest.first().copied().unwrap_or("?"))
            .set("comm", comm),
    )
}
