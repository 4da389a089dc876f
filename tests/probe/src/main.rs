//! The probe: run inside a container by cleat's system tests, it reports what the container
//! sees, as JSON on stdout (one object per line), so tests assert on fields instead of
//! parsing tools' output. Static, depends on libc only, never panics on purpose: whatever
//! cannot be read or done becomes an `errno`/`error` field.
//!
//!     probe facts                 namespaces, credentials, capabilities, seccomp,
//!                                 no_new_privs, host and domain names, rlimits, /dev,
//!                                 mounts, environment, cwd, umask, network, PID 1; as
//!                                 several short lines (see `split_facts`)
//!     probe try ACTION [ARG]...   attempts (see attempt.rs), one line per result; several
//!                                 actions may follow each other
//!     probe procs                 the processes of the PID namespace
//!     probe orphan [MS]           makes an orphan that exits after 50 ms, waits until it
//!                                 is reaped or has stayed a zombie for 300 ms (at most MS
//!                                 ms, 500 by default), and reports what became of it
//!     probe watch-exe MS [COUNT]  what a process with CAP_SYS_PTRACE gets of the binary of
//!                                 PID 1 and of new processes (see watch.rs)

mod attempt;
mod facts;
mod json;
mod sys;
mod watch;

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use json::Json;

const USAGE: &str = "usage: probe facts | probe try ACTION [ARG]... | probe procs | probe orphan [MS] | probe udp-echo PORT | probe watch-exe MS [COUNT]";

fn print(j: &Json) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", j.render());
    let _ = out.flush();
}

fn run(args: &[String]) -> i32 {
    match args.first().map(String::as_str) {
        Some("facts") => {
            for line in split_facts(facts::facts()) {
                print(&line);
            }
            0
        }
        Some("try") => match attempt::parse(&args[1..]) {
            Ok(actions) => {
                for (action, action_args) in actions {
                    for line in attempt::run(&action, &action_args) {
                        let mut out = io::stdout().lock();
                        let _ = writeln!(out, "{}", attempt::render_line(&line));
                        let _ = out.flush();
                    }
                }
                0
            }
            Err(e) => {
                print(&Json::obj().set("error", e));
                2
            }
        },
        Some("procs") => {
            print(&facts::procs());
            0
        }
        Some("orphan") => {
            let ms = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
            print(&orphan(ms));
            0
        }
        Some("watch-exe") => match args.get(1).and_then(|a| a.parse::<u64>().ok()) {
            Some(ms) => watch::watch(ms, args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1)),
            None => {
                print(&Json::obj().set("error", USAGE));
                2
            }
        },
        Some("udp-echo") => match args.get(1).and_then(|a| a.parse::<u16>().ok()) {
            Some(port) => udp_echo(port),
            None => {
                print(&Json::obj().set("error", USAGE));
                2
            }
        },
        _ => {
            print(&Json::obj().set("error", USAGE));
            2
        }
    }
}

/// A UDP server (busybox's nc has no UDP): answers each datagram with "PEER DATAGRAM", the
/// sender's address as the container sees it, forever.
fn udp_echo(port: u16) -> i32 {
    let socket = match std::net::UdpSocket::bind(("0.0.0.0", port)) {
        Ok(s) => s,
        Err(e) => {
            print(&Json::obj().set("error", format!("udp port {port}: {e}")));
            return 1;
        }
    };
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let answer = format!(
                "{} {}",
                peer.ip(),
                String::from_utf8_lossy(&buf[..n]).trim()
            );
            let _ = socket.send_to(answer.as_bytes(), peer);
        }
    }
}

/// Longest line the probe prints. `cleat run` in the foreground reads the container's output
/// back from the journal as `journalctl -o json`, which turns fields longer than 4096 bytes
/// into `null`: every line stays well below that.
const MAX_LINE: usize = 3500;

/// The facts as lines that each stay under `MAX_LINE`: `{"fact": KEY, "value": V}` for each
/// key; a key whose line would be too long is split, an array into `{"fact": KEY, "items":
/// N}` and `{"fact": KEY, "item": I, "value": V}`, an object into `{"fact": KEY, "keys": N}`
/// and `{"fact": KEY, "key": K, "value": V}`. A last line `{"fact": "end", "lines": N}`
/// counts the lines before it, so a reader knows it has them all.
fn split_facts(all: Json) -> Vec<Json> {
    let mut lines = Vec::new();
    let Json::Obj(fields) = all else {
        return vec![all];
    };
    for (key, value) in fields {
        let line = Json::obj().set("fact", key.as_str()).set("value", value);
        if line.render().len() <= MAX_LINE {
            lines.push(line);
            continue;
        }
        let Some(value) = line.get("value").cloned() else {
            continue;
        };
        match value {
            Json::Arr(items) => {
                lines.push(
                    Json::obj()
                        .set("fact", key.as_str())
                        .set("items", items.len()),
                );
                for (i, item) in items.into_iter().enumerate() {
                    lines.push(
                        Json::obj()
                            .set("fact", key.as_str())
                            .set("item", i)
                            .set("value", item),
                    );
                }
            }
            Json::Obj(entries) => {
                lines.push(
                    Json::obj()
                        .set("fact", key.as_str())
                        .set("keys", entries.len()),
                );
                for (k, v) in entries {
                    lines.push(
                        Json::obj()
                            .set("fact", key.as_str())
                            .set("key", k.as_str())
                            .set("value", v),
                    );
                }
            }
            other => lines.push(Json::obj().set("fact", key.as_str()).set("value", other)),
        }
    }
    let n = lines.len();
    lines.push(Json::obj().set("fact", "end").set("lines", n));
    lines
}

/// A child forks a grandchild and exits at once; the grandchild (an orphan, now a child of
/// the namespace's init, or of the nearest subreaper) exits after 50 ms. After `ms` ms,
/// reports whether the orphan is still there, and every zombie of the namespace.
/// How long an orphan must stay a zombie before `probe orphan` concludes nobody reaps it.
const ZOMBIE_FOR_MS: u64 = 300;

fn orphan(ms: u64) -> Json {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return sys::outcome(Err(io::Error::last_os_error()));
    }
    // SAFETY: fresh descriptors, ours.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let _ = io::stdout().flush();
    // SAFETY: single-threaded; the child only forks, writes and exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return sys::outcome(Err(io::Error::last_os_error()));
    }
    if child == 0 {
        drop(rd);
        // SAFETY: as above.
        let grandchild = unsafe { libc::fork() };
        if grandchild == 0 {
            // SAFETY: getpid has no preconditions.
            let me = unsafe { libc::getpid() };
            let mut f = fs::File::from(wr);
            let _ = f.write_all(&me.to_ne_bytes());
            drop(f);
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: leaving without the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: as above.
        unsafe { libc::_exit(if grandchild < 0 { 1 } else { 0 }) };
    }
    drop(wr);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    let mut buf = [0u8; 4];
    let read = fs::File::from(rd).read_exact(&mut buf);
    if let Err(e) = read {
        return sys::outcome(Err(e)).set("stage", "reading the orphan's PID");
    }
    let orphan = i32::from_ne_bytes(buf);
    // Until the orphan is gone (reaped), or has stayed a zombie long enough that nobody is
    // going to reap it, or MS ms have passed: a loaded machine may take a while to run it.
    let start = std::time::Instant::now();
    let mut zombie_since = None;
    while start.elapsed() < Duration::from_millis(ms) {
        let Some(state) = facts::proc_stat(i64::from(orphan)) else {
            break;
        };
        let is_zombie = matches!(state.get("state"), Some(Json::Str(s)) if s == "Z");
        if !is_zombie {
            zombie_since = None;
        } else if zombie_since
            .get_or_insert_with(std::time::Instant::now)
            .elapsed()
            >= Duration::from_millis(ZOMBIE_FOR_MS)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let zombies: Vec<Json> = match facts::procs().get("procs") {
        Some(Json::Arr(list)) => list
            .iter()
            .filter(|p| matches!(p.get("state"), Some(Json::Str(s)) if s == "Z"))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    Json::obj()
        .set("ok", true)
        .set("pid", me)
        .set("orphan", orphan)
        .set("waited_ms", start.elapsed().as_millis() as u64)
        .set("orphan_now", facts::proc_stat(i64::from(orphan)))
        .set("zombies", Json::Arr(zombies))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match std::panic::catch_unwind(|| run(&args)) {
        Ok(code) => code,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            print(&Json::obj().set("error", format!("probe panicked: {msg}")));
            3
        }
    };
    let _ = io::stdout().flush();
    std::process::exit(code);
}
