//! The file system operations of extraction, all relative to directory descriptors: opening
//! (and creating) directories confined to the layer root, removing what an entry replaces,
//! and the process's umask.
//!
//! Every path that comes from the layer is resolved with `openat2(RESOLVE_IN_ROOT)` from the
//! root's descriptor, so a symlink met on the way (`etc -> /etc`, `x -> ../../..`) resolves
//! inside the layer, never outside. The last component is then created or removed relative to
//! its parent's descriptor, without following it.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How paths from the layer resolve: inside the root, never through `/proc` magic links.
pub const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// How hard-link targets resolve: below the root, through no symlink at all. A tar writer
/// records the path under which it archived the first link, which never crosses a symlink.
pub const LINK_TARGET: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// A directory opened for the `*at` calls (and for `fsetxattr`, `fchown`, `futimens`).
pub const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);

/// `path` (relative to the root) as the kernel wants it: `.` for the root itself.
pub fn or_dot(path: &Path) -> &Path {
    if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    }
}

/// Directories by their path in the layer, remembering the last one: entries come in
/// directory order, so most parents are the previous entry's parent or the previous entry.
pub struct Parents<'r> {
    root: BorrowedFd<'r>,
    last: Option<(PathBuf, OwnedFd)>,
}

impl<'r> Parents<'r> {
    pub fn new(root: BorrowedFd<'r>) -> Parents<'r> {
        Parents { root, last: None }
    }

    /// The directory at `dir` (relative to the root), created with missing parents if it does
    /// not exist.
    pub fn get(&mut self, dir: &Path) -> io::Result<BorrowedFd<'_>> {
        if dir.as_os_str().is_empty() {
            return Ok(self.root);
        }
        let entry = match self.last.take() {
            Some((path, fd)) if path == dir => (path, fd),
            _ => (dir.to_owned(), open_or_create_dir(self.root, dir)?),
        };
        let fd: &OwnedFd = &self.last.insert(entry).1;
        Ok(fd.as_fd())
    }

    /// Remembers a directory just created at `path`: the next entries are likely inside it.
    pub fn remember(&mut self, path: PathBuf, fd: OwnedFd) {
        self.last = Some((path, fd));
    }

    /// Forgets directories at or below `path`, which was just removed or replaced.
    pub fn forget_under(&mut self, path: &Path) {
        if self.last.as_ref().is_some_and(|(p, _)| p.starts_with(path)) {
            self.last = None;
        }
    }
}

/// Opens the directory at `dir` inside `root`, creating it and its missing parents (mode
/// 0755) if needed.
fn open_or_create_dir(root: BorrowedFd<'_>, dir: &Path) -> io::Result<OwnedFd> {
    match rustix::fs::openat2(root, dir, DIR_FLAGS, Mode::empty(), IN_ROOT) {
        Err(Errno::NOENT) => {
            create_dirs(root, dir)?;
            Ok(rustix::fs::openat2(
                root,
                dir,
                DIR_FLAGS,
                Mode::empty(),
                IN_ROOT,
            )?)
        }
        other => Ok(other?),
    }
}

/// How many symlinks creating one path may follow (the kernel's limit for one lookup).
const MAX_SYMLINKS: u32 = 40;

/// Creates the missing directories of `dir` where it resolves to inside the root. A symlink
/// met on the way, even a dangling one (`a -> /etc` in a layer without `etc`), is followed
/// with its target taken relative to the root, as the kernel will inside the container; the
/// directories are created there (the way runc's secure join does).
fn create_dirs(root: BorrowedFd<'_>, dir: &Path) -> io::Result<()> {
    let mut pending: VecDeque<OsString> = components(dir.as_os_str().as_bytes()).collect();
    // A prefix that resolves to a real directory and contains no symlink.
    let mut done = PathBuf::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            done.pop();
            continue;
        }
        let next = done.join(&name);
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat2(root, &next, flags, Mode::empty(), IN_ROOT) {
            Ok(fd) if is_symlink(&fd)? => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP.into());
                }
                let target = rustix::fs::readlinkat(&fd, "", Vec::new())?;
                let target = target.as_bytes();
                if target.starts_with(b"/") {
                    done.clear();
                }
                for component in components(target).collect::<Vec<_>>().into_iter().rev() {
                    pending.push_front(component);
                }
            }
            Ok(_) => done = next,
            Err(Errno::NOENT) => {
                let at =
                    rustix::fs::openat2(root, or_dot(&done), DIR_FLAGS, Mode::empty(), IN_ROOT)?;
                make_dir(at.as_fd(), &name, 0o755)?;
                done = next;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The names in a path, `..` included, without the empty and `.` ones.
fn components(path: &[u8]) -> impl Iterator<Item = OsString> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsStr::from_bytes(c).to_owned())
}

fn is_symlink(fd: &OwnedFd) -> io::Result<bool> {
    let stat = rustix::fs::fstat(fd)?;
    Ok(FileType::from_raw_mode(stat.st_mode) == FileType::Symlink)
}

/// `mkdirat` with exactly `mode` whatever the umask; an existing entry is not an error here
/// (the caller resolves the path again and finds out what it is).
fn make_dir(at: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    match rustix::fs::mkdirat(at, name, Mode::from_raw_mode(mode)) {
        Ok(()) if umask() & mode != 0 => Ok(rustix::fs::chmodat(
            at,
            name,
            Mode::from_raw_mode(mode),
            AtFlags::empty(),
        )?),
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs `create` (which makes `name` in `parent` and fails with `EEXIST` if something is
/// there); if something is there, removes it (a directory with its content) and runs `create`
/// once more. Returns what `create` returned and whether something was replaced.
pub fn create_replacing<T>(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    mut create: impl FnMut() -> Result<T, Errno>,
) -> io::Result<(T, bool)> {
    match create() {
        Err(Errno::EXIST) => {
            remove_entry(parent, name)?;
            Ok((create()?, true))
        }
        other => Ok((other?, false)),
    }
}

/// Removes `name` from `parent`, whatever it is (a directory with all its content); `false`
/// if there was nothing.
pub fn remove_entry(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(Errno::ISDIR | Errno::PERM) => {
            remove_tree(parent, name)?;
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes the directory `name` in `parent` and everything in it, without following symlinks.
fn remove_tree(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let fd = rustix::fs::openat(parent, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
    let mut entries = Dir::new(fd)?;
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let child = OsStr::from_bytes(entry.file_name().to_bytes());
        if child == "." || child == ".." {
            continue;
        }
        let dir = entries.fd()?;
        if entry.file_type() == FileType::Directory {
            remove_tree(dir, child)?;
        } else {
            remove_entry(dir, child)?;
        }
    }
    Ok(rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?)
}

/// The process's file mode creation mask, read once (from `/proc/self/status`: reading it with
/// `umask(2)` means changing it, for every thread). If it cannot be read, every mode bit is
/// assumed masked, so that modes are always set explicitly.
pub fn umask() -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    *UMASK.get_or_init(|| read_umask().unwrap_or(0o777))
}

fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}
