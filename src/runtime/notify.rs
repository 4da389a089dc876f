//! Talking to systemd through `$NOTIFY_SOCKET` (sd_notify): hand over the main PID, wait until
//! systemd has read it (a barrier), and report readiness.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use sd_notify::NotifyState;

/// True when systemd is waiting for our notifications (a `Type=notify` unit).
pub fn supervised() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// The socket's path, when it is a file-system socket (not an abstract one).
pub fn socket_path() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("NOTIFY_SOCKET")?;
    let path = std::path::PathBuf::from(path);
    path.is_absolute().then_some(path)
}

pub fn send(states: &[NotifyState<'_>]) -> io::Result<()> {
    sd_notify::notify(states)
}

/// `sd_notify_barrier(3)`: returns once systemd has processed every message sent before it.
/// We pass the write end of a pipe with `BARRIER=1` and close our copy; systemd closes its
/// copy after handling the message, and the read end then reports a hang-up.
pub fn barrier(timeout: Duration) -> io::Result<()> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    sd_notify::notify_with_fds(&[NotifyState::Custom("BARRIER=1")], &[write.as_fd()])?;
    drop(write);
    let mut fds = [PollFd::new(&read, PollFlags::IN)];
    let timeout = Timespec::try_from(timeout).map_err(|_| io::Error::other("bad timeout"))?;
    match rustix::event::poll(&mut fds, Some(&timeout))? {
        0 => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "systemd did not acknowledge the notification barrier",
        )),
        _ => Ok(()),
    }
}
