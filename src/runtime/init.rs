//! `--init`: a tiny PID 1 for the container (what tini is to Docker). It is the container's
//! first process itself, which stays instead of exec'ing: no binary has to exist inside the
//! container. It forwards every signal to the payload (so a stop signal reaches a payload that
//! would, as PID 1, never see it), reaps every orphan that lands on it, and exits with the
//! payload's status (128 + the signal if a signal ended it).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

use crate::sys;

/// What the init does with a signal it receives.
pub(super) fn forward(payload: Pid, sig: i32) {
    if let Some(signal) = Signal::from_named_raw(sig) {
        let _ = rustix::process::kill_process(payload, signal);
    }
}

/// The exit status an init reports for the payload's wait status.
fn status_code(status: WaitStatus) -> i32 {
    code(status.exit_status(), status.terminating_signal())
}

/// A shell's convention: the exit status, or 128 + the signal that ended the process.
fn code(exit_status: Option<i32>, signal: Option<i32>) -> i32 {
    match (exit_status, signal) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

/// Reaps every child that has exited; returns the payload's exit code if it was among them.
pub(super) fn reap(payload: Pid) -> Option<i32> {
    let mut payload_code = None;
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                if pid == payload {
                    payload_code = Some(status_code(status));
                }
            }
            // No child left, or none has exited.
            Ok(None) | Err(_) => return payload_code,
        }
    }
}

/// Runs the init loop; never returns. Signals must already be blocked (they are taken with
/// `sigwaitinfo`), in this process since before the payload was forked.
pub fn run(payload: i32) -> ! {
    let Some(payload) = Pid::from_raw(payload) else {
        sys::exit_now(1);
    };
    // None of cleat's descriptors may stay reachable through /proc/1/fd of the container; the
    // caller dropped those it owned (and made this process non-dumpable before the payload
    // existed: see `child::run`).
    if sys::close_from(3).is_err() {
        sys::exit_now(1);
    }
    // What `ps` shows for PID 1 (it would say `cleat`, which is not what runs there).
    let _ = rustix::thread::set_name(c"cleat-init");
    loop {
        let sig = match sys::wait_signal() {
            Ok(sig) => sig,
            Err(_) => sys::exit_now(1),
        };
        if sig == libc::SIGCHLD {
            if let Some(code) = reap(payload) {
                sys::exit_now(code);
            }
        } else {
            forward(payload, sig);
        }
    }
}

/// The init of a container with a terminal (`tty`): keeps the terminal's master side and
/// relays it (see [`super::console`]); never returns. Only the terminal, the attach socket,
/// the first client (on standard input) and the journal (standard output and error) stay
/// open.
pub fn run_console(payload: i32, master: OwnedFd, t: &super::launch::Terminal<'_>) -> ! {
    let Some(payload) = Pid::from_raw(payload) else {
        sys::exit_now(1);
    };
    let first_client = t.first_client.is_some();
    let placed = place(&[master.as_fd(), t.listener]);
    std::mem::forget(master);
    let Ok(Ok([master, listener])) = placed.map(<[OwnedFd; 2]>::try_from) else {
        sys::exit_now(1);
    };
    if sys::close_from(5).is_err() {
        sys::exit_now(1);
    }
    let _ = rustix::thread::set_name(c"cleat-init");
    let console = super::console::Console {
        master,
        listener,
        // SAFETY: standard input is the client's socket, which nothing else owns here.
        first_client: first_client.then(|| unsafe_fd(0)),
        interactive: t.interactive,
    };
    sys::exit_now(super::console::serve(console, payload))
}

/// Puts copies of `fds` on descriptors 3, 4, ... (first out of the way, then into place) and
/// returns them owned; the caller then closes everything above. The originals must not be
/// closed by their owners afterwards (they are among those closed).
fn place(fds: &[BorrowedFd<'_>]) -> std::io::Result<Vec<OwnedFd>> {
    let high: Vec<OwnedFd> = fds
        .iter()
        .map(|fd| rustix::io::fcntl_dupfd_cloexec(fd, 3 + fds.len() as i32))
        .collect::<Result<_, _>>()?;
    let mut placed = Vec::with_capacity(fds.len());
    for (i, fd) in high.iter().enumerate() {
        let mut target = unsafe_fd(3 + i as i32);
        rustix::io::dup2(fd, &mut target)?;
        placed.push(target);
    }
    // The high copies are closed with everything else above the placed ones.
    std::mem::forget(high);
    Ok(placed)
}

/// Takes ownership of a descriptor number this process has open and nothing else owns.
fn unsafe_fd(fd: i32) -> OwnedFd {
    // SAFETY: the callers name descriptors they have just put in place (or standard input),
    // which no other owner in this process refers to.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_as_a_shell_reports_them() {
        assert_eq!(code(Some(3), None), 3);
        assert_eq!(code(None, Some(9)), 137);
    }
}
