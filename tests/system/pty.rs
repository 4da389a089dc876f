//! A real pseudo-terminal to drive interactive commands as a person would: the command runs
//! with the terminal's slave side as its controlling terminal (in a session of its own), and
//! the test types into the master side, reads what the terminal shows, resizes it, and waits
//! for the exit status.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;

use crate::host::host;

/// A command running on a terminal of the test's.
pub struct Term {
    master: OwnedFd,
    child: Child,
    /// Everything read from the terminal so far.
    seen: Vec<u8>,
    /// How much of `seen` earlier `expect`s consumed.
    mark: usize,
    /// The slave side's (file system device, device number).
    slave_id: (u64, u64),
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Term {
    /// Runs `argv` inside the test host on a new `rows`×`cols` terminal.
    pub fn spawn(argv: &[&str], rows: u16, cols: u16) -> Term {
        let mut cmd = host().command(argv);
        cmd.env("TERM", "xterm");
        Term::spawn_command(cmd, rows, cols)
    }

    pub fn spawn_command(mut cmd: Command, rows: u16, cols: u16) -> Term {
        let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
        rustix::pty::grantpt(&master).expect("grantpt");
        rustix::pty::unlockpt(&master).expect("unlockpt");
        rustix::termios::tcsetwinsize(&master, winsize(rows, cols)).expect("window size");
        let name = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
        let slave = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("opening the terminal's slave side");
        let st = rustix::fs::fstat(&slave).expect("fstat of the terminal's slave side");
        let slave_id = (st.st_dev, st.st_rdev);
        let (i, o, e) = (
            slave.try_clone().expect("dup"),
            slave.try_clone().expect("dup"),
            slave.try_clone().expect("dup"),
        );
        cmd.stdin(Stdio::from(i))
            .stdout(Stdio::from(o))
            .stderr(Stdio::from(e));
        // SAFETY: only async-signal-safe calls between fork and exec: setsid, ioctl, signal.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(io::stdin())?;
                // Ctrl-C on this terminal is for cleat, not for the nsenter that waits for
                // it (cleat installs its own handler).
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawning on the terminal");
        drop(slave);
        let flags = rustix::fs::fcntl_getfl(&master).expect("fcntl");
        rustix::fs::fcntl_setfl(&master, flags | OFlags::NONBLOCK).expect("fcntl");
        Term {
            master,
            child,
            seen: Vec::new(),
            mark: 0,
            slave_id,
        }
    }

    /// The terminal's slave side as `(st_dev, st_rdev)`: which devpts instance, which device.
    /// Device numbers alone repeat from one devpts instance to another (a container's own
    /// `/dev/pts/0` is 136:0 as the host's is).
    pub fn slave_id(&self) -> (u64, u64) {
        self.slave_id
    }

    /// The PID of the command started (the `nsenter` that runs it in the test host).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types `keys`.
    pub fn send(&self, keys: &str) {
        self.send_bytes(keys.as_bytes());
    }

    pub fn send_bytes(&self, mut keys: &[u8]) {
        while !keys.is_empty() {
            match rustix::io::write(&self.master, keys) {
                Ok(n) => keys = &keys[n..],
                Err(rustix::io::Errno::AGAIN) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("typing into the terminal: {e}"),
            }
        }
    }

    /// Reads what the terminal shows, for up to `wait`; false once nothing has it open.
    fn pump(&mut self, wait: Duration) -> bool {
        let mut fds = [rustix::event::PollFd::new(
            &self.master,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
        let mut buf = [0u8; 8192];
        loop {
            match rustix::io::read(&self.master, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => return false,
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(_) => return true,
            }
        }
    }

    /// Waits until the terminal has shown `needle` (after what earlier calls matched) and
    /// returns what it showed up to and including it.
    #[track_caller]
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let hay = &self.seen[self.mark..];
            if let Some(at) = find(hay, needle.as_bytes()) {
                let end = self.mark + at + needle.len();
                let text = String::from_utf8_lossy(&self.seen[self.mark..end]).into_owned();
                self.mark = end;
                return text;
            }
            let now = Instant::now();
            let open =
                now < deadline && self.pump((deadline - now).min(Duration::from_millis(100)));
            if !open && find(&self.seen[self.mark..], needle.as_bytes()).is_none() {
                panic!(
                    "the terminal did not show {needle:?} within {timeout:?}; it showed:\n{}",
                    self.transcript()
                );
            }
        }
    }

    /// Everything the terminal showed, escaped for a failure message.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.seen)
            .escape_debug()
            .to_string()
    }

    /// Changes the terminal's size (its foreground process gets SIGWINCH).
    pub fn resize(&self, rows: u16, cols: u16) {
        rustix::termios::tcsetwinsize(&self.master, winsize(rows, cols)).expect("resizing");
    }

    /// Waits for the command's exit code, reading the terminal meanwhile.
    #[track_caller]
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting") {
                self.pump(Duration::ZERO);
                return status.code().unwrap_or_else(|| {
                    panic!(
                        "ended by {status}; the terminal showed:\n{}",
                        self.transcript()
                    )
                });
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "still running after {timeout:?}; the terminal showed:\n{}",
                    self.transcript()
                );
            }
            self.pump(Duration::from_millis(20));
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl AsFd for Term {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.master.as_fd()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len().max(1)).position(|w| w == needle)
}
