//! Filling a new volume with what the image has at its mount point (Docker's behaviour): the
//! first time a volume is mounted, and only if it is empty, the tree at the mount point in the
//! container's root is copied into it, so that `-v data:/var/lib/db` starts with the image's
//! database skeleton rather than hiding it.
//!
//! The copy keeps types, owners, modes (setuid and setgid included), times, symlinks (their
//! text, never followed), hard links within the tree, and the extended attributes an image may
//! carry (`user.*`, `security.capability`). Device nodes are left out: a volume is not mounted
//! `nodev`, and a node from an image must stay as inert as it is in the image's own (`nodev`)
//! root.
//!
//! Both trees are hostile until proven otherwise: the image's content, and a volume that other
//! containers may write to. Every path is opened relative to a directory descriptor with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, and every entry is created with
//! `O_EXCL`/`O_NOFOLLOW` semantics, so no symlink in either tree is ever followed. Concurrent
//! fills of one volume are serialised with `flock(2)` on its directory.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, Dir, FileType, FlockOperation, Gid, Mode, OFlags, ResolveFlags, Stat, Timespec,
    Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use super::mount::MountError;
use super::resolve::fd_path;

/// Below a directory descriptor, through no symlink, no magic link and no mount point.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// A directory opened for reading entries and for the `*at` calls.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);

/// Copies the tree at `target` inside `root` into the volume directory `volume`, if `volume`
/// is empty and `target` exists in the root and is a directory (resolved inside the root: a
/// symlink there is followed as the container would, never out of the root). The volume's
/// directory takes the owner, mode and times of `target`.
pub fn populate(root: BorrowedFd<'_>, target: &str, volume: &Path) -> Result<(), MountError> {
    let failed = |what: String| move |source: io::Error| MountError { step: what, source };
    let destination = open_volume(volume).map_err(failed(format!(
        "opening volume {} for {target}",
        volume.display()
    )))?;
    // Two containers starting at once with one new volume: one fills it, the other finds it
    // full. The lock goes with the descriptor.
    rustix::fs::flock(&destination, FlockOperation::LockExclusive)
        .map_err(|e| failed(format!("locking volume {}", volume.display()))(e.into()))?;
    if !is_empty(destination.as_fd())
        .map_err(failed(format!("reading volume {}", volume.display())))?
    {
        return Ok(());
    }
    // The image's own file system alone, without what is mounted on it by now (/proc, /sys,
    // /dev, other volumes): a detached copy of the root mount. A volume below another volume
    // is filled from the image too, as in Docker.
    let image = rustix::mount::open_tree(
        root,
        "",
        rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE
            | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC
            | rustix::mount::OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| failed(format!("opening the image for {target}"))(e.into()))?;
    let Some(source) = open_source(image.as_fd(), target)
        .map_err(failed(format!("opening {target} in the image")))?
    else {
        return Ok(());
    };
    let mut copier = Copier::new(source, destination);
    copier.run().map_err(|(path, e)| {
        // Leave the volume as it was (empty, still under the lock), so that the next start
        // fills it whole instead of finding it half full.
        empty_volume(volume);
        failed(format!(
            "filling the volume for {target} from the image ({})",
            Path::new(target).join(&path).display()
        ))(e)
    })
}

/// Removes what a failed fill left in the volume directory (best effort: the start fails
/// anyway). `remove_dir_all` never follows a symlink.
fn empty_volume(volume: &Path) {
    let Ok(entries) = std::fs::read_dir(volume) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let _ = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
    }
}

/// The volume's directory itself, which must not be a symlink.
fn open_volume(volume: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        volume,
        DIR_FLAGS | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

fn is_empty(dir: BorrowedFd<'_>) -> io::Result<bool> {
    for entry in Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_owned();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The directory at `target` inside the image's root (a copy without submounts); `None` if
/// there is nothing there, or something other than a directory, or if the path leaves that
/// file system: a volume is filled from the image, never from the kernel's files (/proc,
/// /sys), which cleat would read with all its privileges.
fn open_source(root: BorrowedFd<'_>, target: &str) -> io::Result<Option<OwnedFd>> {
    let how = ResolveFlags::IN_ROOT
        .union(ResolveFlags::NO_MAGICLINKS)
        .union(ResolveFlags::NO_XDEV);
    let relative = target.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    let at = match rustix::fs::openat2(
        root,
        relative,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        how,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::XDEV) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let stat = rustix::fs::fstat(&at)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return Ok(None);
    }
    Ok(Some(rustix::fs::openat(
        &at,
        ".",
        DIR_FLAGS,
        Mode::empty(),
    )?))
}

/// A failure, with the path (relative to the copied tree) it happened at.
type CopyError = (PathBuf, io::Error);

fn at(path: &Path) -> impl FnOnce(Errno) -> CopyError + '_ {
    move |e| (path.to_owned(), e.into())
}

fn at_io(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |e| (path.to_owned(), e)
}

/// One copy of a tree: directories are visited from a stack of paths relative to the two
/// roots (so the descriptors held do not grow with the depth), their times set last (adding
/// entries changes them), deepest first.
struct Copier {
    source: OwnedFd,
    destination: OwnedFd,
    /// The first copy of each multiply-linked file, by (device, inode) in the source.
    links: HashMap<(u64, u64), PathBuf>,
    /// Directories copied, in creation order, with their source times.
    dirs: Vec<(PathBuf, Timestamps)>,
}

impl Copier {
    fn new(source: OwnedFd, destination: OwnedFd) -> Copier {
        Copier {
            source,
            destination,
            links: HashMap::new(),
            dirs: Vec::new(),
        }
    }

    fn run(&mut self) -> Result<(), CopyError> {
        let mut pending = vec![PathBuf::new()];
        while let Some(dir) = pending.pop() {
            self.copy_directory(&dir, &mut pending)?;
        }
        for (dir, times) in self.dirs.iter().rev() {
            let fd = open_beneath(self.destination.as_fd(), dir).map_err(at(dir))?;
            rustix::fs::futimens(&fd, times).map_err(at(dir))?;
        }
        Ok(())
    }

    /// Gives the (already created) directory `dir` its source's metadata and copies its
    /// entries; subdirectories are created and queued on `pending`.
    fn copy_directory(&mut self, dir: &Path, pending: &mut Vec<PathBuf>) -> Result<(), CopyError> {
        let src = open_beneath(self.source.as_fd(), dir).map_err(at(dir))?;
        let dst = open_beneath(self.destination.as_fd(), dir).map_err(at(dir))?;
        let stat = rustix::fs::fstat(&src).map_err(at(dir))?;
        set_owner_and_mode(dst.as_fd(), &stat).map_err(at(dir))?;
        copy_xattrs(src.as_fd(), dst.as_fd()).map_err(at(dir))?;
        self.dirs.push((dir.to_owned(), times(&stat)));
        for name in entry_names(src.as_fd()).map_err(at_io(dir))? {
            let path = dir.join(&name);
            let stat = rustix::fs::statat(&src, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(at(&path))?;
            let kind = FileType::from_raw_mode(stat.st_mode);
            if kind == FileType::Directory {
                rustix::fs::mkdirat(&dst, name.as_os_str(), Mode::from_raw_mode(0o700))
                    .map_err(at(&path))?;
                pending.push(path);
                continue;
            }
            if matches!(
                kind,
                FileType::CharacterDevice | FileType::BlockDevice | FileType::Unknown
            ) {
                continue;
            }
            if self.link_to_earlier_copy(&stat, dst.as_fd(), &name)? {
                continue;
            }
            let entry = Entry {
                src: src.as_fd(),
                dst: dst.as_fd(),
                name: &name,
                stat: &stat,
            };
            match kind {
                FileType::RegularFile => entry.copy_file(),
                FileType::Symlink => entry.copy_symlink(),
                _ => entry.copy_special(),
            }
            .map_err(at_io(&path))?;
            if stat.st_nlink > 1 {
                self.links.insert(inode(&stat), path);
            }
        }
        Ok(())
    }

    /// A further name of a file copied already becomes a hard link to the copy.
    fn link_to_earlier_copy(
        &self,
        stat: &Stat,
        dst: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<bool, CopyError> {
        if stat.st_nlink < 2 {
            return Ok(false);
        }
        let Some(first) = self.links.get(&inode(stat)) else {
            return Ok(false);
        };
        let (parent, file) = match (first.parent(), first.file_name()) {
            (Some(parent), Some(file)) => (parent, file),
            _ => return Ok(false),
        };
        let parent_fd = open_beneath(self.destination.as_fd(), parent).map_err(at(first))?;
        rustix::fs::linkat(&parent_fd, file, dst, name, AtFlags::empty()).map_err(at(first))?;
        Ok(true)
    }
}

/// One non-directory entry to copy: `name` in `src`, described by `stat`, into `dst`.
struct Entry<'a> {
    src: BorrowedFd<'a>,
    dst: BorrowedFd<'a>,
    name: &'a OsStr,
    stat: &'a Stat,
}

impl Entry<'_> {
    fn copy_file(&self) -> io::Result<()> {
        // O_NONBLOCK: if the entry was swapped for a FIFO since it was examined, the open
        // must not hang; the check below then refuses it.
        let src = rustix::fs::openat(
            self.src,
            self.name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        let now = rustix::fs::fstat(&src)?;
        if FileType::from_raw_mode(now.st_mode) != FileType::RegularFile
            || inode(&now) != inode(self.stat)
        {
            return Err(io::Error::other("it changed while being copied"));
        }
        let dst = rustix::fs::openat(
            self.dst,
            self.name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut from = File::from(src);
        let mut to = File::from(dst);
        io::copy(&mut from, &mut to)?;
        // Owner before mode (chown clears setuid), file capabilities after both (chown
        // clears them too), times last.
        set_owner_and_mode(to.as_fd(), self.stat)?;
        copy_xattrs(from.as_fd(), to.as_fd())?;
        rustix::fs::futimens(&to, &times(self.stat))?;
        Ok(())
    }

    /// The link's text as it is: it means something inside the container, not here.
    fn copy_symlink(&self) -> io::Result<()> {
        let text = rustix::fs::readlinkat(self.src, self.name, Vec::new())?;
        rustix::fs::symlinkat(text.as_c_str(), self.dst, self.name)?;
        set_owner_at(self.dst, self.name, self.stat, AtFlags::SYMLINK_NOFOLLOW)?;
        self.set_times()
    }

    /// A FIFO or a socket: a new node of the same type (opening one to copy it could block
    /// or connect, so its extended attributes, which only `trusted.*` could be, stay behind).
    fn copy_special(&self) -> io::Result<()> {
        let kind = FileType::from_raw_mode(self.stat.st_mode);
        rustix::fs::mknodat(self.dst, self.name, kind, Mode::from_raw_mode(0o600), 0)?;
        // The mode is set through a descriptor of exactly the node made (mknod applies the
        // umask, and chmod by name would follow a symlink swapped in meanwhile).
        let node = rustix::fs::openat(
            self.dst,
            self.name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if FileType::from_raw_mode(rustix::fs::fstat(&node)?.st_mode) != kind {
            return Err(io::Error::other("it changed while being copied"));
        }
        set_owner_at(&node, "", self.stat, AtFlags::EMPTY_PATH)?;
        rustix::fs::chmodat(
            rustix::fs::CWD,
            fd_path(node.as_fd()).as_str(),
            mode_bits(self.stat),
            AtFlags::empty(),
        )?;
        self.set_times()
    }

    /// Gives the copy (by name, never following it) the source's times: last, after
    /// everything that changes it.
    fn set_times(&self) -> io::Result<()> {
        rustix::fs::utimensat(
            self.dst,
            self.name,
            &times(self.stat),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }
}

/// Opens the directory at `path` (relative, empty for the base itself) below `base`.
fn open_beneath(base: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, Errno> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    rustix::fs::openat2(
        base,
        path,
        DIR_FLAGS | OFlags::NOFOLLOW,
        Mode::empty(),
        BENEATH,
    )
}

/// The names in a directory, without `.` and `..`, sorted (a reproducible copy: the first of
/// several hard links is always the same one).
fn entry_names(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn inode(stat: &Stat) -> (u64, u64) {
    (stat.st_dev, stat.st_ino)
}

fn mode_bits(stat: &Stat) -> Mode {
    Mode::from_raw_mode(stat.st_mode & 0o7777)
}

fn times(stat: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: stat.st_atime,
            tv_nsec: stat.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: stat.st_mtime,
            tv_nsec: stat.st_mtime_nsec as _,
        },
    }
}

/// Gives `path` in `dir` (or, with `AtFlags::EMPTY_PATH` and an empty path, `dir` itself) the
/// owner in `stat`.
fn set_owner_at<P: rustix::path::Arg>(
    dir: impl AsFd,
    path: P,
    stat: &Stat,
    flags: AtFlags,
) -> Result<(), Errno> {
    rustix::fs::chownat(
        dir,
        path,
        Some(Uid::from_raw(stat.st_uid)),
        Some(Gid::from_raw(stat.st_gid)),
        flags,
    )
}

fn set_owner_and_mode(fd: BorrowedFd<'_>, stat: &Stat) -> Result<(), Errno> {
    rustix::fs::fchown(
        fd,
        Some(Uid::from_raw(stat.st_uid)),
        Some(Gid::from_raw(stat.st_gid)),
    )?;
    rustix::fs::fchmod(fd, mode_bits(stat))
}

/// The extended attributes an image may carry: its own (`user.*`) and file capabilities. Not
/// `trusted.*` (overlayfs's bookkeeping), not ACLs or security labels (host policy).
fn copied_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.") || name == b"security.capability"
}

/// Copies the extended attributes worth copying from `src` to `dst`; a file system without
/// them on either side simply has none.
fn copy_xattrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<(), Errno> {
    let names = match list_xattrs(src) {
        Ok(names) => names,
        Err(Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in names.split(|b| *b == 0).filter(|n| copied_xattr(n)) {
        let name = OsStr::from_bytes(name);
        let value = match read_xattr(src, name) {
            Ok(v) => v,
            // Removed meanwhile.
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e),
        };
        match rustix::fs::fsetxattr(dst, name, &value, XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The NUL-separated names of a file's extended attributes.
fn list_xattrs(fd: BorrowedFd<'_>) -> Result<Vec<u8>, Errno> {
    loop {
        let size = rustix::fs::flistxattr_query(fd)?;
        let mut buf = vec![0u8; size];
        match rustix::fs::flistxattr(fd, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            // Grew since the size was asked for.
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn read_xattr(fd: BorrowedFd<'_>, name: &OsStr) -> Result<Vec<u8>, Errno> {
    loop {
        let size = rustix::fs::fgetxattr_query(fd, name)?;
        let mut buf = vec![0u8; size];
        match rustix::fs::fgetxattr(fd, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(label: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("cleat-copy-{}-{label}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("root")).unwrap();
            fs::create_dir_all(dir.join("volume")).unwrap();
            Scratch(dir)
        }

        fn root(&self) -> PathBuf {
            self.0.join("root")
        }

        fn volume(&self) -> PathBuf {
            self.0.join("volume")
        }

        fn populate(&self, target: &str) -> Result<(), MountError> {
            let root = super::super::resolve::open_root(&self.root()).unwrap();
            populate(root.as_fd(), target, &self.volume())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    fn set_times(path: &Path, secs: i64) {
        let t = Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            path,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }

    /// Sets a user xattr if the file system allows; says whether it did.
    fn try_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
        rustix::fs::setxattr(path, name, value, XattrFlags::empty()).is_ok()
    }

    #[test]
    fn copies_types_owners_modes_times_links_and_xattrs() {
        if !is_root() {
            eprintln!("skipped: needs root (file owners)");
            return;
        }
        let s = Scratch::new("full");
        let data = s.root().join("data");
        fs::create_dir_all(data.join("sub/deeper")).unwrap();
        fs::write(data.join("plain"), "hello").unwrap();
        fs::write(data.join("setuid"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::chown(data.join("setuid"), Some(1234), Some(5678)).unwrap();
        fs::set_permissions(data.join("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(data.join("plain"), data.join("sub/also-plain")).unwrap();
        symlink("../../../../etc/passwd", data.join("climbs-out")).unwrap();
        symlink("/etc/shadow", data.join("absolute")).unwrap();
        std::os::unix::fs::lchown(data.join("absolute"), Some(7), Some(8)).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            data.join("fifo").as_path(),
            Mode::from_raw_mode(0o640),
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            data.join("sub/null").as_path(),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        std::os::unix::fs::chown(data.join("sub"), Some(1000), Some(1000)).unwrap();
        fs::set_permissions(data.join("sub"), fs::Permissions::from_mode(0o2750)).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o1777)).unwrap();
        std::os::unix::fs::chown(&data, Some(42), Some(43)).unwrap();
        let xattrs = try_xattr(&data.join("plain"), "user.color", b"blue")
            && try_xattr(&data.join("sub"), "user.dir", b"yes");
        set_times(&data.join("plain"), 1_000_000);
        set_times(&data.join("absolute"), 2_000_000);
        set_times(&data.join("sub/deeper"), 3_000_000);
        set_times(&data.join("sub"), 4_000_000);
        set_times(&data, 5_000_000);

        s.populate("/data").unwrap();

        let v = s.volume();
        let meta = |p: &str| fs::symlink_metadata(v.join(p)).unwrap();
        // The volume's own directory takes the target's owner, mode and time.
        let top = fs::metadata(&v).unwrap();
        assert_eq!(
            (top.uid(), top.gid(), top.mode() & 0o7777),
            (42, 43, 0o1777)
        );
        assert_eq!(top.mtime(), 5_000_000);
        assert_eq!(fs::read_to_string(v.join("plain")).unwrap(), "hello");
        assert_eq!(meta("plain").mtime(), 1_000_000);
        let setuid = meta("setuid");
        assert_eq!(
            (setuid.uid(), setuid.gid(), setuid.mode() & 0o7777),
            (1234, 5678, 0o4755)
        );
        // Hard links stay links to each other.
        assert_eq!(meta("plain").ino(), meta("sub/also-plain").ino());
        assert_eq!(meta("plain").nlink(), 2);
        // Symlinks are copied as they are, never followed.
        assert_eq!(
            fs::read_link(v.join("climbs-out")).unwrap(),
            Path::new("../../../../etc/passwd")
        );
        assert_eq!(
            fs::read_link(v.join("absolute")).unwrap(),
            Path::new("/etc/shadow")
        );
        let link = meta("absolute");
        assert_eq!((link.uid(), link.gid(), link.mtime()), (7, 8, 2_000_000));
        assert!(meta("fifo").file_type().is_fifo());
        assert_eq!(meta("fifo").mode() & 0o7777, 0o640);
        // Device nodes stay behind.
        assert!(!v.join("sub/null").exists());
        let sub = meta("sub");
        assert_eq!(
            (sub.uid(), sub.gid(), sub.mode() & 0o7777),
            (1000, 1000, 0o2750)
        );
        assert_eq!(
            sub.mtime(),
            4_000_000,
            "a directory's time is set after its content"
        );
        assert_eq!(meta("sub/deeper").mtime(), 3_000_000);
        if xattrs {
            let get = |p: &Path, n: &str| {
                let mut buf = vec![0u8; 64];
                let len = rustix::fs::getxattr(p, n, &mut buf[..]).unwrap();
                buf.truncate(len);
                buf
            };
            assert_eq!(get(&v.join("plain"), "user.color"), b"blue");
            assert_eq!(get(&v.join("sub"), "user.dir"), b"yes");
        }
    }

    #[test]
    fn a_volume_with_content_or_a_missing_target_is_left_alone() {
        let s = Scratch::new("alone");
        fs::create_dir_all(s.root().join("data")).unwrap();
        fs::write(s.root().join("data/image-file"), "image").unwrap();
        fs::write(s.volume().join("mine"), "kept").unwrap();
        s.populate("/data").unwrap();
        assert!(!s.volume().join("image-file").exists());
        assert_eq!(fs::read_to_string(s.volume().join("mine")).unwrap(), "kept");

        let s = Scratch::new("missing");
        s.populate("/not/there").unwrap();
        fs::write(s.root().join("file"), "x").unwrap();
        s.populate("/file").unwrap();
        assert_eq!(fs::read_dir(s.volume()).unwrap().count(), 0);
    }

    #[test]
    fn the_target_resolves_inside_the_root() {
        let s = Scratch::new("confined");
        // The host side of the trap: a directory the link would reach on the host.
        let outside = s.0.join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), "host").unwrap();
        fs::create_dir_all(s.root().join(outside.strip_prefix("/").unwrap())).unwrap();
        fs::write(
            s.root()
                .join(outside.strip_prefix("/").unwrap())
                .join("inside"),
            "image",
        )
        .unwrap();
        symlink(&outside, s.root().join("data")).unwrap();
        s.populate("/data").unwrap();
        assert!(!s.volume().join("secret").exists(), "copied from the host");
        assert_eq!(
            fs::read_to_string(s.volume().join("inside")).unwrap(),
            "image"
        );
    }

    #[test]
    fn a_volume_that_is_a_symlink_is_refused() {
        let s = Scratch::new("vol-link");
        fs::create_dir_all(s.root().join("data")).unwrap();
        fs::write(s.root().join("data/f"), "x").unwrap();
        let elsewhere = s.0.join("elsewhere");
        fs::create_dir_all(&elsewhere).unwrap();
        fs::remove_dir(s.volume()).unwrap();
        symlink(&elsewhere, s.volume()).unwrap();
        let err = s.populate("/data").unwrap_err();
        assert!(err.step.contains("opening volume"), "{err}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    }
}
