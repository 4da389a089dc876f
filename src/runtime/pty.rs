//! Pseudo-terminals inside a container: allocated on the container's own devpts instance (so
//! that `tty`, `ttyname(3)` and `/dev/console` inside the container name a device the
//! container can see, as with runc), and made a process's controlling terminal.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;

/// `DEVPTS_SUPER_MAGIC`, the file system type of a devpts mount.
const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// Both sides of a new pseudo-terminal.
#[derive(Debug)]
pub struct Pty {
    /// The side a terminal emulator (or cleat's relay) reads output from and writes input to.
    pub master: OwnedFd,
    /// The side the container's process uses as its terminal.
    pub slave: OwnedFd,
    /// N in `/dev/pts/N` of the devpts instance it came from.
    pub index: u32,
}

/// Allocates a pseudo-terminal from the devpts instance mounted at `dev/pts` under `root` (a
/// directory that stands for a container's `/`, such as `/proc/PID/root` or `/` itself inside
/// the container). The path is resolved inside `root`, so a container that made `/dev/pts` a
/// link cannot send cleat elsewhere. What it names is looked at before anything is opened
/// (an `O_PATH` descriptor opens nothing: no device's open runs, a FIFO does not block): it
/// must be the multiplexer, the character device 5:2, on a devpts file system; only then is
/// it opened, read-write, through that descriptor.
pub fn open_in(root: BorrowedFd<'_>) -> io::Result<Pty> {
    let at = rustix::fs::openat2(
        root,
        "dev/pts/ptmx",
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS,
    )?;
    check_multiplexer(at.as_fd())?;
    let master = rustix::fs::open(
        crate::rootfs::resolve::fd_path(at.as_fd()).as_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    drop(at);
    rustix::pty::unlockpt(&master)?;
    let mut index: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer, which points at `index`.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut index) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )?;
    Ok(Pty {
        master,
        slave,
        index,
    })
}

/// `PTMX_MAJOR`:`PTMX_MINOR`, the device number of a devpts multiplexer (`/dev/pts/ptmx`).
const PTMX: (u32, u32) = (5, 2);

/// Checks that `fd` (possibly an `O_PATH` descriptor) is a devpts multiplexer: the character
/// device 5:2 on a devpts file system.
fn check_multiplexer(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fs = rustix::fs::fstatfs(fd)?;
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
    if fs.f_type as i64 != DEVPTS_SUPER_MAGIC {
        return Err(io::Error::other(
            "dev/pts/ptmx is not on a devpts file system",
        ));
    }
    let st = rustix::fs::fstat(fd)?;
    let device =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice;
    let number = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    if !device || number != PTMX {
        return Err(io::Error::other(
            "dev/pts/ptmx is not the pseudo-terminal multiplexer (character device 5:2)",
        ));
    }
    Ok(())
}

/// Makes `slave` the calling process's controlling terminal and its standard input, output
/// and error, in a session of its own (what a login does). For a process about to exec the
/// program that owns the terminal.
pub fn make_controlling(slave: BorrowedFd<'_>) -> io::Result<()> {
    // Already a session leader (the container's first process is): keep that session.
    let _ = rustix::process::setsid();
    rustix::process::ioctl_tiocsctty(slave)?;
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which this process owns; `slave` stays
        // open (it may be one of them already, which dup2 then leaves alone).
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The terminal's size (rows, columns).
pub fn size(fd: impl AsFd) -> io::Result<(u16, u16)> {
    let w = rustix::termios::tcgetwinsize(fd)?;
    Ok((w.ws_row, w.ws_col))
}

/// Sets the terminal's size; the kernel sends SIGWINCH to its foreground process group.
pub fn set_size(fd: impl AsFd, rows: u16, cols: u16) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_from_the_hosts_devpts_and_sizes_it() {
        let root = rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let pty = match open_in(root.as_fd()) {
            Ok(p) => p,
            // A build sandbox without a devpts at /dev/pts has nothing to test here.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => panic!("{e}"),
        };
        set_size(&pty.master, 33, 101).unwrap();
        assert_eq!(size(&pty.slave).unwrap(), (33, 101));
        rustix::io::write(&pty.slave, b"hi\n").unwrap();
        let mut buf = [0u8; 16];
        let n = rustix::io::read(&pty.master, &mut buf).unwrap();
        // The line discipline turns the newline into CR LF.
        assert_eq!(&buf[..n], b"hi\r\n");
    }

    #[test]
    fn only_the_multiplexer_of_a_devpts_passes() {
        let open = |path: &str| {
            rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap()
        };
        // A character device, but not on devpts; a directory; a regular file.
        for path in ["/dev/null", "/dev", "/proc/self/status"] {
            assert!(check_multiplexer(open(path).as_fd()).is_err(), "{path}");
        }
        // On devpts, but not the multiplexer: the slave side of a terminal.
        let root = rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        if let Ok(pty) = open_in(root.as_fd()) {
            assert!(check_multiplexer(pty.slave.as_fd()).is_err());
            let ptmx = open("/dev/pts/ptmx");
            check_multiplexer(ptmx.as_fd()).unwrap();
        }
    }
}
