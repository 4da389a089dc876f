//! Driving a command through a pseudo-terminal, as a user at a terminal would: the command
//! runs on the slave side as its controlling terminal (in a session of its own), and the test
//! holds the master to type, read what appears (with a timeout), resize the window and collect
//! the exit status.
//!
//!     let mut t = Terminal::spawn(host().command(&[CLEAT, "exec", "-it", name, "sh"]), 24, 80)?;
//!     t.write(b"tty\r");
//!     t.read_until("/dev/pts/", Duration::from_secs(10))?;
//!     t.resize(40, 120);
//!     assert_eq!(t.wait(Duration::from_secs(10)), Some(0));

#![allow(dead_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;

/// A command on a pseudo-terminal.
pub struct Terminal {
    master: OwnedFd,
    child: Child,
    /// Everything read so far.
    output: Vec<u8>,
    /// How much of `output` earlier `read_until` calls consumed.
    seen: usize,
    status: Option<Option<i32>>,
}

impl Terminal {
    /// Spawns `cmd` with a new pseudo-terminal of `rows`×`cols` as its standard input, output,
    /// error and controlling terminal (in a new session, so it is also the terminal's
    /// foreground process group and gets its SIGWINCH).
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> io::Result<Terminal> {
        let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let slave: OwnedFd = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        set_size(&master, rows, cols)?;
        let slave = File::from(slave);
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        // The child has the slave; ours went with `cmd`'s copies when it was spawned.
        drop(cmd);
        let flags = rustix::fs::fcntl_getfl(&master)?;
        rustix::fs::fcntl_setfl(&master, flags | OFlags::NONBLOCK)?;
        Ok(Terminal {
            master,
            child,
            output: Vec::new(),
            seen: 0,
            status: None,
        })
    }

    /// The PID of the spawned command.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types `bytes` (a carriage return is the Enter key).
    pub fn write(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !rest.is_empty() && Instant::now() < deadline {
            match rustix::io::write(&self.master, rest) {
                Ok(n) => rest = &rest[n..],
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {
                    self.pump(Duration::from_millis(10));
                }
                Err(e) => panic!("writing to the terminal: {e}"),
            }
        }
    }

    /// Reads what is there, waiting up to `wait` for something; false once the terminal has
    /// no writer left.
    fn pump(&mut self, wait: Duration) -> bool {
        let mut fds = [PollFd::new(&self.master, PollFlags::IN)];
        let timeout = Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
        let mut buf = [0u8; 4096];
        loop {
            match rustix::io::read(&self.master, &mut buf) {
                Ok(0) => return false,
                Ok(n) => self.output.extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::AGAIN) => return true,
                Err(rustix::io::Errno::INTR) => {}
                // EIO: every slave descriptor is closed.
                Err(_) => return false,
            }
        }
    }

    /// Waits until the output not yet consumed contains `needle`; returns it up to and
    /// including the needle (and consumes that much). On timeout, `Err` with everything.
    pub fn read_until(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let fresh = String::from_utf8_lossy(&self.output[self.seen..]).into_owned();
            if let Some(i) = fresh.find(needle) {
                let end = i + needle.len();
                // The lossy string may differ in length from the bytes only for invalid
                // UTF-8; consume by the byte length of the valid prefix.
                self.seen += fresh[..end].len();
                return Ok(fresh[..end].to_string());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.all());
            }
            if !self.pump((deadline - now).min(Duration::from_millis(50))) {
                // Nothing more will come; one last look.
                let fresh = String::from_utf8_lossy(&self.output[self.seen..]).into_owned();
                if fresh.contains(needle) {
                    continue;
                }
                return Err(self.all());
            }
        }
    }

    /// Everything the command wrote so far.
    pub fn all(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    /// Resizes the terminal (the kernel sends SIGWINCH to its foreground process group).
    pub fn resize(&mut self, rows: u16, cols: u16) {
        set_size(&self.master, rows, cols).expect("resizing the terminal");
    }

    /// Waits for the command to exit, reading its output meanwhile; its exit status (`None`
    /// if a signal ended it). Kills it (its whole session's process group) and panics after
    /// `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        if let Some(status) = self.status {
            return status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.pump(Duration::from_millis(20));
            if let Some(st) = self.child.try_wait().expect("waiting for the command") {
                // Whatever it wrote last.
                while self.pump(Duration::from_millis(20)) && self.has_more() {}
                let status = st.code();
                self.status = Some(status);
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "the command on the terminal did not exit within {timeout:?}; output:\n{}",
                    self.all()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn has_more(&self) -> bool {
        let mut fds = [PollFd::new(&self.master, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
    }

    /// SIGKILLs the command's process group (its session) and reaps it.
    pub fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        // SAFETY: kill(2) on our child's process group (it is a session leader, so its PID is
        // the group's ID); it is not reaped yet, so the ID cannot have been reused.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        self.status = Some(None);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.kill();
    }
}

fn set_size(fd: impl AsFd, rows: u16, cols: u16) -> io::Result<()> {
    rustix::termios::tcsetwinsize(
        fd,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}
