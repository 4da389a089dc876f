//! Opening paths *inside* a root directory. The root's content is hostile until proven
//! otherwise: a symlink `etc -> /etc` or `proc -> ../../..` must resolve inside the root, never
//! to the host. `openat2(2)` with `RESOLVE_IN_ROOT` makes the kernel treat the root fd as `/`
//! for every step, including absolute symlink targets and `..`.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// What to do when the last component (or any parent) does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    No,
    /// Create missing directories, all the way down.
    Dir,
    /// Create missing parent directories and an empty regular file at the end.
    File,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens a directory to serve as the root for the other functions here.
pub fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn relative(path: &str) -> &str {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() { "." } else { rel }
}

/// How many symlinks one resolution may follow (the kernel's limit).
const MAX_LINKS: u32 = 40;

/// An `O_PATH` descriptor for `path` inside `root`, creating what is missing as `create` says.
///
/// Missing components are created where the path *resolves* to inside the root: a dangling
/// symlink `proc -> /elsewhere` gets `/elsewhere` created inside the root, never outside
/// (the behaviour of runc's secure join).
pub fn resolve(root: BorrowedFd<'_>, path: &str, create: Create) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    match rustix::fs::openat2(root, relative(path), flags, Mode::empty(), RESOLVE) {
        Err(Errno::NOENT) if create != Create::No => {}
        other => return Ok(other?),
    }
    // Walk component by component. `done` is a prefix that resolves to a real directory
    // (no symlinks in it), so every open below stays confined by RESOLVE_IN_ROOT.
    let mut pending: std::collections::VecDeque<String> = components(path).collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    let mut steps = 0u32;
    while let Some(name) = pending.pop_front() {
        steps += 1;
        if steps > 4096 {
            return Err(Errno::LOOP.into());
        }
        if name == ".." {
            done.pop();
            continue;
        }
        let candidate = [done.as_slice(), std::slice::from_ref(&name)]
            .concat()
            .join("/");
        let nofollow = flags | OFlags::NOFOLLOW;
        match rustix::fs::openat2(root, candidate.as_str(), nofollow, Mode::empty(), RESOLVE) {
            Ok(fd) if is_symlink(&fd)? => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Errno::LOOP.into());
                }
                let target = rustix::fs::readlinkat(&fd, "", Vec::new())?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                for c in components(&target).collect::<Vec<_>>().into_iter().rev() {
                    pending.push_front(c);
                }
            }
            Ok(_) => done.push(name),
            Err(Errno::NOENT) => {
                let parent = rustix::fs::openat2(
                    root,
                    relative(&done.join("/")),
                    flags,
                    Mode::empty(),
                    RESOLVE,
                )?;
                let dir = reopen_dir(parent.as_fd())?;
                if pending.is_empty() && create == Create::File {
                    let file = rustix::fs::openat(
                        &dir,
                        name.as_str(),
                        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                        Mode::from_raw_mode(0o644),
                    );
                    match file {
                        Ok(_) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                } else {
                    match rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                // Look at it again: a racing writer may have put a symlink there.
                pending.push_front(name);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(rustix::fs::openat2(
        root,
        relative(&done.join("/")),
        flags,
        Mode::empty(),
        RESOLVE,
    )?)
}

/// Where a symbolic link is refused: no component may be one.
const PLAIN: ResolveFlags = RESOLVE.union(ResolveFlags::NO_SYMLINKS);

/// Like [`resolve`], but no component of `path` may be a symbolic link (the error says so). For the paths the container gets its own of (`/proc`,
/// `/sys`, `/dev` and the masks in them): were `/proc` a symlink that a later mount on `/sys`
/// or `/dev` hides, every mask under "/proc" would find nothing and be skipped, and the
/// container would keep a writable /proc/sys.
pub fn resolve_plain(root: BorrowedFd<'_>, path: &str, create: Create) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    let open = |p: &str| match rustix::fs::openat2(root, relative(p), flags, Mode::empty(), PLAIN) {
        Err(Errno::LOOP) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{p} is a symbolic link (or one is on the way), which is refused there"),
        )),
        other => other.map_err(io::Error::from),
    };
    match open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && create != Create::No => {}
        other => return other,
    }
    let names: Vec<String> = components(path).collect();
    let mut done = String::new();
    for (i, name) in names.iter().enumerate() {
        if name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path} contains \"..\""),
            ));
        }
        let next = format!("{done}/{name}");
        match open(&next) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = reopen_dir(open(if done.is_empty() { "/" } else { &done })?.as_fd())?;
                let last = i + 1 == names.len();
                if last && create == Create::File {
                    // O_EXCL with O_NOFOLLOW: never through a symlink planted meanwhile.
                    match rustix::fs::openat(
                        &parent,
                        name.as_str(),
                        OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::WRONLY
                            | OFlags::CLOEXEC
                            | OFlags::NOFOLLOW,
                        Mode::from_raw_mode(0o644),
                    ) {
                        Ok(_) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                } else {
                    match rustix::fs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e) => return Err(e),
        }
        done = next;
    }
    open(path)
}

fn components(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_owned)
}

fn is_symlink(fd: &OwnedFd) -> io::Result<bool> {
    let stat = rustix::fs::fstat(fd)?;
    Ok(rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Symlink)
}

/// A real (non-`O_PATH`) directory descriptor for an `O_PATH` one, for the `*at` calls that
/// need one.
fn reopen_dir(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `/proc/self/fd/N` for a descriptor: a path the mount syscalls accept, naming exactly the
/// object the descriptor refers to.
pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Reads a (small) regular file inside the root; `Ok(None)` if it does not exist.
///
/// The path is first opened with `O_PATH`, which opens nothing: only once it is known to be a
/// regular file is it opened for reading (through its `/proc/self/fd` link, which names
/// exactly that file). Opening a device node planted in a root file system could otherwise
/// act on the host's hardware or give cleat a controlling terminal.
pub fn read_file(root: BorrowedFd<'_>, path: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let at = match rustix::fs::openat2(
        root,
        relative(path),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let stat = rustix::fs::fstat(&at)?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} is not a regular file"),
        ));
    }
    let fd = rustix::fs::open(
        fd_path(at.as_fd()).as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    let mut buf = Vec::new();
    std::fs::File::from(fd).take(limit).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cleat-resolve-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn absolute_symlinks_stay_inside_the_root() {
        let dir = scratch("abs");
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/passwd"), "inside\n").unwrap();
        std::fs::write(dir.join("passwd"), "outside\n").unwrap();
        // /etc -> /real inside the root; on the host it would point at /real.
        symlink("/real", root.join("etc")).unwrap();
        // A link climbing out: ../../passwd from the root is the root itself.
        symlink("../../../passwd", root.join("escape")).unwrap();
        let fd = open_root(&root).unwrap();
        let got = read_file(fd.as_fd(), "/etc/passwd", 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(got, b"inside\n");
        assert_eq!(read_file(fd.as_fd(), "/escape", 1 << 20).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn creating_through_a_symlink_creates_inside_the_root() {
        let dir = scratch("create");
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let outside = dir.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        symlink(&outside, root.join("proc")).unwrap();
        let fd = open_root(&root).unwrap();
        resolve(fd.as_fd(), "/proc/sub", Create::Dir).unwrap();
        assert!(
            !outside.join("sub").exists(),
            "a directory was created outside the root"
        );
        assert!(
            root.join(outside.strip_prefix("/").unwrap())
                .join("sub")
                .is_dir()
        );
        resolve(fd.as_fd(), "/run/host/notify", Create::File).unwrap();
        assert!(root.join("run/host/notify").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plain_resolution_creates_directories_and_refuses_any_symlink() {
        let dir = scratch("plain");
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sys")).unwrap();
        symlink("/sys/link", root.join("proc")).unwrap();
        symlink("/realproc", root.join("sys/link")).unwrap();
        let fd = open_root(&root).unwrap();
        for path in ["/proc", "/proc/sys", "/sys/link/x"] {
            for create in [Create::No, Create::Dir] {
                let err = resolve_plain(fd.as_fd(), path, create).unwrap_err();
                assert!(err.to_string().contains("symbolic link"), "{path}: {err}");
            }
        }
        assert!(!root.join("realproc").exists(), "created through a link");
        resolve_plain(fd.as_fd(), "/dev/pts", Create::Dir).unwrap();
        assert!(root.join("dev/pts").is_dir());
        resolve_plain(fd.as_fd(), "/dev/null", Create::File).unwrap();
        assert!(
            root.join("dev/null").is_file(),
            "a file, to bind a device on"
        );
        assert_eq!(
            resolve_plain(fd.as_fd(), "/missing", Create::No)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dot_dot_is_clamped_at_the_root_and_loops_are_refused() {
        let dir = scratch("dotdot");
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hosts"), "inside\n").unwrap();
        let fd = open_root(&root).unwrap();
        let got = read_file(fd.as_fd(), "/../../etc/../etc/hosts", 1 << 20).unwrap();
        assert_eq!(got.as_deref(), Some(&b"inside\n"[..]));
        // Created through `..`: still inside.
        resolve(fd.as_fd(), "/../../made/here", Create::Dir).unwrap();
        assert!(root.join("made/here").is_dir());
        assert!(!dir.join("made").exists());
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        let err = resolve(fd.as_fd(), "/a/x", Create::Dir).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn read_file_refuses_what_is_not_a_regular_file_without_opening_it() {
        let dir = scratch("fifo");
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        // Opening a FIFO for reading would block forever: it must be refused first.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("etc/passwd").as_path(),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let fd = open_root(&root).unwrap();
        let err = read_file(fd.as_fd(), "/etc/passwd", 1 << 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let err = read_file(fd.as_fd(), "/etc", 1 << 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
