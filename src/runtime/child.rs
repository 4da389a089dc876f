//! The container's first process, between `clone` and `execve`: it builds the root file
//! system in its new mount namespace, sets the hostname and identity, reports back, waits for
//! the go-ahead, and execs the payload. It never returns.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;

use rustix::io::Errno;

use crate::sys;

use super::launch::Launch;
use super::sync::{self, Message};

/// Exit codes, as Docker uses them: 125 when the container could not be set up, 126 when the
/// command cannot be invoked, 127 when it cannot be found.
pub const EXIT_SETUP: i32 = 125;
pub const EXIT_CANNOT_INVOKE: u8 = 126;
pub const EXIT_NOT_FOUND: u8 = 127;

pub fn run(sock: OwnedFd, l: &Launch<'_>) -> ! {
    let prepared = match setup(l) {
        Ok(p) => p,
        Err(msg) => {
            let _ = sync::send(&sock, &Message::SetupFailed(msg));
            sys::exit_now(EXIT_SETUP);
        }
    };
    if sync::send(&sock, &Message::Ready).is_err() {
        sys::exit_now(EXIT_SETUP);
    }
    match sync::recv(&sock) {
        Ok(Some(Message::Go)) => {}
        // cleat went away (killed, or failed to notify systemd): do not start the payload.
        _ => sys::exit_now(EXIT_SETUP),
    }
    let (code, message) = exec(&prepared);
    let _ = sync::send(&sock, &Message::ExecFailed { code, message });
    sys::exit_now(i32::from(code));
}

/// The payload, ready for `execve`: everything allocated before the go-ahead.
struct Prepared {
    argv: Vec<CString>,
    env: Vec<CString>,
    /// Candidate paths for argv[0], in `PATH` order (just argv[0] if it contains a '/').
    candidates: Vec<CString>,
}

fn cstring(s: &str, what: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte: {s:?}"))
}

fn setup(l: &Launch<'_>) -> Result<Prepared, String> {
    let p = l.process;
    // Our own session: the container must not share cleat's (systemd's) process group.
    let _ = rustix::process::setsid();
    crate::rootfs::mount::apply(l.rootfs).map_err(|e| e.to_string())?;
    rustix::system::sethostname(p.hostname.as_bytes())
        .map_err(|e| format!("setting the hostname to {:?}: {e}", p.hostname))?;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    // Docker creates a missing working directory.
    std::fs::create_dir_all(&p.cwd)
        .map_err(|e| format!("creating the working directory {}: {e}", p.cwd))?;
    rustix::process::chdir(p.cwd.as_str())
        .map_err(|e| format!("entering the working directory {}: {e}", p.cwd))?;
    let groups: Vec<rustix::process::Gid> = p
        .ids
        .groups
        .iter()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    // There is only one thread (clone_process checked), so per-thread credential calls set the
    // credentials of the whole process.
    rustix::thread::set_thread_groups(&groups)
        .map_err(|e| format!("setting supplementary groups: {e}"))?;
    rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(p.ids.gid))
        .map_err(|e| format!("setting group id {}: {e}", p.ids.gid))?;
    rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(p.ids.uid))
        .map_err(|e| format!("setting user id {}: {e}", p.ids.uid))?;
    sys::cloexec_from(3).map_err(|e| format!("closing inherited descriptors: {e}"))?;
    sys::reset_signals().map_err(|e| format!("resetting signals: {e}"))?;

    let argv = p
        .argv
        .iter()
        .map(|a| cstring(a, "an argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let env = p
        .env
        .iter()
        .map(|e| cstring(e, "an environment variable"))
        .collect::<Result<Vec<_>, _>>()?;
    let program = &p.argv[0];
    let candidates = if program.contains('/') {
        vec![cstring(program, "the command")?]
    } else {
        let path = p
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(super::process::DEFAULT_PATH);
        path.split(':')
            .map(|dir| if dir.is_empty() { "." } else { dir })
            .map(|dir| cstring(&format!("{dir}/{program}"), "the command"))
            .collect::<Result<Vec<_>, _>>()?
    };
    Ok(Prepared {
        argv,
        env,
        candidates,
    })
}

/// Execs the payload; returns only on failure, with the exit code and message to report.
fn exec(p: &Prepared) -> (u8, String) {
    let argv: Vec<&std::ffi::CStr> = p.argv.iter().map(|a| a.as_c_str()).collect();
    let env: Vec<&std::ffi::CStr> = p.env.iter().map(|e| e.as_c_str()).collect();
    let program = p.argv[0].to_string_lossy();
    let searched = !program.contains('/');
    let mut denied: Option<io::Error> = None;
    for candidate in &p.candidates {
        let err = sys::execve(candidate, &argv, &env);
        match Errno::from_io_error(&err) {
            Some(Errno::NOENT) | Some(Errno::NOTDIR) if searched => continue,
            Some(Errno::ACCESS) if searched => denied = Some(err),
            Some(Errno::NOENT) | Some(Errno::NOTDIR) => {
                return (EXIT_NOT_FOUND, format!("exec: {program:?}: {err}"));
            }
            _ => return (EXIT_CANNOT_INVOKE, format!("exec: {program:?}: {err}")),
        }
    }
    match denied {
        Some(err) => (EXIT_CANNOT_INVOKE, format!("exec: {program:?}: {err}")),
        None => (
            EXIT_NOT_FOUND,
            format!("exec: {program:?}: executable file not found in $PATH"),
        ),
    }
}
