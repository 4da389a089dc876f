//! `--init`: a tiny PID 1 for the container (what tini is to Docker). It is the container's
//! first process itself, which stays instead of exec'ing: no binary has to exist inside the
//! container. It forwards every signal to the payload (so a stop signal reaches a payload that
//! would, as PID 1, never see it), reaps every orphan that lands on it, and exits with the
//! payload's status (128 + the signal if a signal ended it).

use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

use crate::sys;

/// What the init does with a signal it receives.
fn forward(payload: Pid, sig: i32) {
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
fn reap(payload: Pid) -> Option<i32> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_as_a_shell_reports_them() {
        assert_eq!(code(Some(3), None), 3);
        assert_eq!(code(None, Some(9)), 137);
    }
}
