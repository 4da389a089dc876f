//! Talking to systemd through `$NOTIFY_SOCKET` (sd_notify): hand over the main PID, wait until
//! systemd has read it (a barrier), and report readiness.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use sd_notify::NotifyState;

/// True when systemd is waiting for our notifications (a `Type=notify` unit).
pub fn supervised() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
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

/// What a container may tell systemd through cleat's relay: its readiness and status, and
/// more time to start. Everything else (`MAINPID=`, which would make systemd watch and kill
/// any process of the host; the file descriptor store; `WATCHDOG_USEC=`; barriers) is dropped.
const RELAYED: &[&str] = &[
    "READY",
    "STATUS",
    "ERRNO",
    "BUSERROR",
    "EXTEND_TIMEOUT_USEC",
    "STOPPING",
];

/// The assignments of one notification message that the relay passes on, and whether the
/// message says `READY=1`.
pub fn filter(message: &str) -> (Vec<&str>, bool) {
    let kept: Vec<&str> = message
        .split('\n')
        .filter(|line| {
            line.split_once('=')
                .is_some_and(|(key, _)| RELAYED.contains(&key))
        })
        .collect();
    let ready = kept.contains(&"READY=1");
    (kept, ready)
}

/// The socket a container with `notify = "container"` sends its notifications to (bound into
/// it at /run/host/notify), relayed to systemd by `internal start` until the container says
/// `READY=1` or ends, the way runc relays for `runc run`. The container never reaches
/// systemd's own socket, and only [`RELAYED`] assignments get through, so a container root
/// cannot redirect the unit's main PID to a process of the host.
pub struct Relay {
    socket: std::os::fd::OwnedFd,
    path: std::path::PathBuf,
}

impl Drop for Relay {
    /// The socket file goes with the relay, whether it ran or the start failed before.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The largest notification message relayed (systemd itself reads at most a page of text).
const MAX_MESSAGE: usize = 4096;

impl Relay {
    /// Binds a new datagram socket at `path` (replacing a stale one), writable by every user,
    /// since the container's process may run as any user.
    pub fn bind(path: &std::path::Path) -> io::Result<Relay> {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        // Through the directory's descriptor: a socket address holds at most 107 bytes, and
        // the state directory of a container with a long name is longer than that.
        let (dir, name) = match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => (dir, name),
            _ => {
                return Err(io::Error::other(
                    "a relay socket needs a directory and a name",
                ));
            }
        };
        let dir = rustix::fs::open(
            dir,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let short = format!(
            "/proc/self/fd/{}/{}",
            std::os::fd::AsRawFd::as_raw_fd(&dir),
            name.to_string_lossy()
        );
        rustix::net::bind(&socket, &SocketAddrUnix::new(short.as_str())?)?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        Ok(Relay {
            socket,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Relays the container's notifications until it says `READY=1` (passed on, and
    /// acknowledged by systemd before this returns: systemd only accepts a message while its
    /// sender is alive) or its first process (`pidfd`) ends. The socket file is removed when
    /// the relay goes; later notifications from the container find no one, as sd_notify(3)
    /// allows.
    pub fn run(self, pidfd: BorrowedFd<'_>) -> io::Result<()> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(16))];
        loop {
            let mut fds = [
                PollFd::new(&self.socket, PollFlags::IN),
                PollFd::new(&pidfd, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let message_waiting = !fds[0].revents().is_empty();
            let container_ended = !fds[1].revents().is_empty();
            if message_waiting {
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let received = rustix::net::recvmsg(
                    &self.socket,
                    &mut [io::IoSliceMut::new(&mut buf)],
                    &mut control,
                    RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
                );
                // Descriptors sent along (the fd store, barriers) are closed, unused.
                for message in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(fds) = message {
                        fds.for_each(drop);
                    }
                }
                let received = match received {
                    Ok(r) => r,
                    Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                };
                // A message longer than systemd would take is dropped whole, not cut.
                if received.flags.contains(rustix::net::ReturnFlags::TRUNC) {
                    continue;
                }
                let text = String::from_utf8_lossy(&buf[..received.bytes]);
                let (kept, ready) = filter(&text);
                let mut states: Vec<NotifyState<'_>> =
                    kept.iter().map(|s| NotifyState::Custom(s)).collect();
                if ready {
                    // Once the relay is gone, only the main process may notify again (systemd
                    // 254+; older ones ignore it), as without `notify = "container"`.
                    states.push(NotifyState::Custom("NOTIFYACCESS=main"));
                }
                if !states.is_empty() {
                    send(&states)?;
                }
                if ready {
                    return barrier(BARRIER_TIMEOUT);
                }
            } else if container_ended {
                return Ok(());
            }
        }
    }
}

/// How long systemd may take to acknowledge a message (`MAINPID=` at the hand-over, a relayed
/// `READY=1`) before cleat gives up.
pub const BARRIER_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_passes_readiness_and_status_only() {
        assert_eq!(
            filter("READY=1\nSTATUS=serving\nMAINPID=1\nFDSTORE=1\nWATCHDOG_USEC=1"),
            (vec!["READY=1", "STATUS=serving"], true)
        );
        assert_eq!(
            filter("STATUS=loading\nEXTEND_TIMEOUT_USEC=5000000"),
            (vec!["STATUS=loading", "EXTEND_TIMEOUT_USEC=5000000"], false)
        );
        assert_eq!(filter("READY=0\nMAINPID=4242"), (vec!["READY=0"], false));
        assert_eq!(filter("garbage\n\n=x\nREADY"), (Vec::<&str>::new(), false));
        // A key is matched whole: a longer name that starts like an allowed one is dropped.
        assert_eq!(filter("READYX=1\nSTATUSES=1"), (Vec::<&str>::new(), false));
    }
}
