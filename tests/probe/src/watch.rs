//! `probe watch-exe MS [COUNT]`: what a container process with CAP_SYS_PTRACE can get of the
//! binary that runs cleat code inside its container (the way of CVE-2019-5736): the exe of
//! PID 1 when that is not the probe (cleat's `--init`), then of every new process of the PID
//! namespace (a `cleat exec`), caught as early as possible: the probe spins on the next PID
//! with SIGSTOP, so a process is held while it still runs cleat's code, before its exec.
//!
//! For each process it keeps an `O_PATH` descriptor of `/proc/PID/exe`, and reports, as one
//! JSON line (`{"watch": "exe", ...}`):
//!
//! - `exe`: where the link points; `dev`, `ino`: the file's identity (to compare with the
//!   host's binary); `foreign`: whether that file is not one of the container's own (the
//!   path does not name it inside the container);
//! - `seals`: the file's memfd seals (`null` for an ordinary file);
//! - `direct`: opening `/proc/PID/exe` for writing while the process is held;
//! - `reopen`: re-opening the kept descriptor (`/proc/self/fd/N`) for writing once the process
//!   (and, a moment later, the cleat that waited for it) has gone; for PID 1, at once.
//!
//! An attempt reports `opened`, and `writable`: opened on a file that is not sealed against
//! writing (then nothing is written: it may be the host's binary), or sealed and a write of
//! the byte already there worked anyway. Nothing else is ever written.
//!
//! The probe forks nothing while it watches (each `cleat exec` then makes exactly one new PID).
//! It prints `{"watch": "ready"}` once it watches for new processes, a line per new PID
//! (`{"watch": "missed", "pid": N}` for one it did not catch), and `{"watch": "end", ...}`
//! after COUNT foreign catches or MS milliseconds.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::sys::{check, cstr, error_fields};

/// Every seal cleat's copy should carry.
const SEALS: i32 = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

fn print(j: &Json) {
    use std::io::Write;
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", j.render());
    let _ = out.flush();
}

fn open(path: &str, flags: i32) -> io::Result<OwnedFd> {
    let p = cstr(path)?;
    // SAFETY: a NUL-terminated path; the descriptor returned is new and ours.
    let fd = check(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The memfd seals of an open file, `None` for a file that cannot have any.
fn seals(fd: &OwnedFd) -> Option<i32> {
    // SAFETY: fcntl(F_GET_SEALS) on a descriptor of ours.
    let s = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    (s >= 0).then_some(s)
}

/// Opens `path` for writing and reports what that allows (see the module's doc).
fn try_write(path: &str) -> Json {
    let fd = match open(path, libc::O_RDWR) {
        Ok(fd) => fd,
        Err(e) => {
            return Json::obj()
                .set("opened", false)
                .set("writable", false)
                .merge(error_fields(&e));
        }
    };
    let out = Json::obj().set("opened", true);
    let Some(s) = seals(&fd) else {
        // An ordinary file, open for writing: never touched.
        return out.set("seals", Json::Null).set("writable", true);
    };
    let out = out.set("seals", s);
    if s & libc::F_SEAL_WRITE == 0 {
        return out.set("writable", true);
    }
    // Sealed: the write must fail. The byte written back is the one already there.
    let mut byte = [0u8; 1];
    // SAFETY: reads one byte into a buffer of one byte.
    let n = unsafe { libc::pread(fd.as_raw_fd(), byte.as_mut_ptr().cast(), 1, 0) };
    if n != 1 {
        return out
            .set("writable", false)
            .set("write", "not tried: nothing to read");
    }
    // SAFETY: writes one byte from a buffer of one byte.
    let w = unsafe { libc::pwrite(fd.as_raw_fd(), byte.as_ptr().cast(), 1, 0) };
    if w == 1 {
        out.set("writable", true).set("wrote", true)
    } else {
        let e = io::Error::last_os_error();
        out.set("writable", false)
            .set("wrote", false)
            .set("write_error", error_fields(&e))
    }
}

fn readlink(path: &str) -> Option<String> {
    fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// `(dev, ino)` of an open file.
fn identity(fd: &OwnedFd) -> Option<(u64, u64)> {
    // SAFETY: an all-zero `stat` is a valid value; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a descriptor of ours, into a `stat` of ours.
    (unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// What the container knows as `path`, `(dev, ino)`.
fn identity_of(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The report on the exe of `pid`, held (`O_PATH`) by `exe`. `later`: what to wait for
/// before the second attempt.
fn report(pid: i32, exe: &OwnedFd, at: &str, later: impl FnOnce()) -> Json {
    let link = readlink(&format!("/proc/{pid}/exe"));
    let id = identity(exe);
    let foreign = match (&link, id) {
        (Some(l), Some(id)) => identity_of(l) != Some(id),
        _ => true,
    };
    let kept = format!("/proc/self/fd/{}", exe.as_raw_fd());
    let seals = open(&kept, libc::O_RDONLY).ok().and_then(|fd| seals(&fd));
    let direct = try_write(&format!("/proc/{pid}/exe"));
    later();
    // Reopened a few times: another process may still be running the file for a moment.
    let mut reopen = try_write(&kept);
    for _ in 0..4 {
        if reopen.get("opened") == Some(&Json::Bool(true)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        reopen = try_write(&kept);
    }
    let writable = [&direct, &reopen]
        .iter()
        .any(|j| j.get("writable") == Some(&Json::Bool(true)));
    Json::obj()
        .set("watch", "exe")
        .set("at", at)
        .set("pid", pid)
        .set("exe", link)
        .set("dev", id.map(|i| i.0))
        .set("ino", id.map(|i| i.1))
        .set("foreign", foreign)
        .set("seals", seals)
        .set("all_seals", seals.is_some_and(|s| s & SEALS == SEALS))
        .set("direct", direct)
        .set("reopen", reopen)
        .set("writable", writable)
}

/// The PID most recently made in this PID namespace (the last field of /proc/loadavg).
fn last_pid() -> Option<i32> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

fn signal(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) with plain integers.
    check(unsafe { libc::kill(pid, sig) }).map(|_| ())
}

/// The state letter of a process (`None` once it is gone).
fn state(pid: i32) -> Option<char> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..].trim_start().chars().next()
}

fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn watch(ms: u64, count: usize) -> i32 {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if me != 1 {
        match open("/proc/1/exe", libc::O_PATH) {
            Ok(fd) => print(&report(1, &fd, "pid1", || {})),
            Err(e) => print(
                &Json::obj()
                    .set("watch", "exe")
                    .set("at", "pid1")
                    .set("pid", 1)
                    .set("held", false)
                    .merge(error_fields(&e)),
            ),
        }
    }
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut next = last_pid().unwrap_or(me) + 1;
    let mut foreign = 0;
    let mut seen = 0;
    print(&Json::obj().set("watch", "ready").set("next", next));
    let mut spins: u64 = 0;
    while foreign < count && Instant::now() < deadline {
        spins += 1;
        if next == me {
            next += 1;
            continue;
        }
        // Held first (a stopped process stays in cleat's code), then looked at.
        match signal(next, libc::SIGSTOP) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                print(
                    &Json::obj()
                        .set("watch", "denied")
                        .set("pid", next)
                        .merge(error_fields(&e)),
                );
                seen += 1;
                next += 1;
                continue;
            }
            Err(_) if spins.is_multiple_of(256) && last_pid().is_some_and(|l| l >= next) => {
                // Made and gone already, or made and missed between two tries: too late.
                if state(next).is_none() {
                    print(&Json::obj().set("watch", "missed").set("pid", next));
                    seen += 1;
                    next += 1;
                }
                continue;
            }
            Err(_) => continue,
        }
        let pid = next;
        next += 1;
        seen += 1;
        let held = open(&format!("/proc/{pid}/exe"), libc::O_PATH);
        wait_for(Duration::from_millis(200), || state(pid) != Some('R'));
        let line = match held {
            Ok(fd) => report(pid, &fd, "new", || {
                let _ = signal(pid, libc::SIGCONT);
                // Gone (or a zombie its parent, cleat, reaps), and cleat gone a moment later.
                wait_for(Duration::from_secs(10), || {
                    matches!(state(pid), None | Some('Z'))
                });
                std::thread::sleep(Duration::from_millis(300));
            }),
            Err(e) => {
                let _ = signal(pid, libc::SIGCONT);
                Json::obj()
                    .set("watch", "exe")
                    .set("at", "new")
                    .set("pid", pid)
                    .set("held", false)
                    .merge(error_fields(&e))
            }
        };
        if line.get("foreign") == Some(&Json::Bool(true)) {
            foreign += 1;
        }
        print(&line);
    }
    print(
        &Json::obj()
            .set("watch", "end")
            .set("seen", seen)
            .set("foreign", foreign),
    );
    0
}
