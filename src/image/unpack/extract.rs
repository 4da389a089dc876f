//! Applying a tar stream's entries to a directory tree, in overlayfs form.
//!
//! The rules (the layer is hostile until proven otherwise):
//! - every path is normalised and may not climb out of the layer ([`super::path`]); its parent
//!   resolves inside the layer root even through symlinks ([`super::fsops`]); the last
//!   component is created relative to the parent's descriptor, exclusively and without
//!   following a symlink, and whatever was there before is removed first (a directory
//!   replacing a directory keeps its content, as tar does);
//! - a hard link's target must be an entry of this layer, reached through no symlink;
//! - symlink targets are stored as they are and never followed; devices and FIFOs are created
//!   as nodes, never opened (the runtime mounts root file systems `nodev`);
//! - owners are numeric; modes (setuid, setgid, sticky included) are set after the owner,
//!   since `chown` clears them; extended attributes come from PAX `SCHILY.xattr.*` records and
//!   only `user.*` and `security.capability` are kept (`trusted.*` would let an image forge
//!   overlay metadata); directories get their modes, owners and times once their content is
//!   complete;
//! - `.wh.NAME` becomes a 0/0 character device named NAME, `.wh..wh..opq` the xattr
//!   `trusted.overlay.opaque=y` on its directory, other `.wh..wh.*` names are skipped.
//!
//! Without root privileges (tests), owners and `security.*` attributes are not set, and
//! devices and whiteouts cannot be created.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::fsops::{self, Parents};
use super::path::{self, Role};
use super::{EntryError, UnpackError};

/// Size of the buffer that file content is copied through.
const COPY_BUFFER: usize = 256 * 1024;

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";
const PAX_MTIME: &str = "mtime";

/// What extraction wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tree {
    /// Entries applied, whiteouts included.
    pub entries: u64,
    /// Bytes of regular-file content written (a hard-linked file once).
    pub content_size: u64,
}

/// Extracts every entry of the tar stream `input` into `root`, then reads `input` to its end
/// (past the end-of-archive marker) so that whoever hashes it sees the whole stream.
pub fn extract<R: BufRead>(input: R, root: BorrowedFd<'_>) -> Result<Tree, UnpackError> {
    let mut archive = tar::Archive::new(input);
    let mut extractor = Extractor::new(root);
    let entries = archive
        .entries()
        .map_err(|source| UnpackError::corrupt(None, source))?;
    for entry in entries {
        let mut entry = entry.map_err(|source| UnpackError::corrupt(extractor.last(), source))?;
        extractor.apply(&mut entry)?;
    }
    extractor.finish()?;
    let tree = extractor.tree;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|source| {
        UnpackError::corrupt(Some(String::from("the end-of-archive marker")), source)
    })?;
    Ok(tree)
}

/// An entry's metadata.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

/// A directory whose metadata is applied once its content is complete.
struct PendingDir {
    path: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
}

struct Extractor<'r> {
    root: BorrowedFd<'r>,
    parents: Parents<'r>,
    dirs: Vec<PendingDir>,
    /// Root: owners and `security.*` attributes can be set.
    privileged: bool,
    buf: Vec<u8>,
    last: Option<PathBuf>,
    tree: Tree,
}

impl<'r> Extractor<'r> {
    fn new(root: BorrowedFd<'r>) -> Extractor<'r> {
        Extractor {
            root,
            parents: Parents::new(root),
            dirs: Vec::new(),
            privileged: rustix::process::geteuid().is_root(),
            buf: vec![0; COPY_BUFFER],
            last: None,
            tree: Tree::default(),
        }
    }

    /// The last entry applied, for error messages about what follows it.
    fn last(&self) -> Option<String> {
        self.last
            .as_ref()
            .map(|p| path::display(p.as_os_str().as_bytes()))
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let fail = |cause| UnpackError::Entry {
            path: path::display(&raw),
            cause,
        };
        let path = path::normalise(&raw).map_err(|_| fail(EntryError::Escapes))?;
        // Old (v7) archives mark directories with a trailing slash only.
        let kind = match kind {
            EntryType::Regular if raw.ends_with(b"/") => EntryType::Directory,
            other => other,
        };
        self.apply_at(entry, kind, &path).map_err(fail)?;
        self.tree.entries += 1;
        self.last = Some(path);
        Ok(())
    }

    fn apply_at<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: EntryType,
        path: &Path,
    ) -> Result<(), EntryError> {
        let Some((dir, name)) = path::split(path) else {
            return match kind {
                EntryType::Directory => self.make_root(&read_meta(entry, self.privileged)?),
                _ => Err(EntryError::RootNotDirectory),
            };
        };
        match path::role(path) {
            Role::Plain => {}
            Role::Whiteout { dir, name } => return self.whiteout(dir, name),
            Role::Opaque { dir } => return self.mark_opaque(dir),
            Role::AufsMeta => return Ok(()),
            Role::BadWhiteout => return Err(EntryError::BadWhiteout),
        }
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let meta = read_meta(entry, self.privileged)?;
                self.write_file(entry, dir, name, path, &meta)
            }
            EntryType::Directory => {
                let meta = read_meta(entry, self.privileged)?;
                self.make_dir(dir, name, path, &meta)
            }
            EntryType::Symlink => {
                let meta = read_meta(entry, self.privileged)?;
                let target = entry.link_name_bytes().ok_or(EntryError::NoLinkTarget)?;
                self.make_symlink(dir, name, path, &target, &meta)
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().ok_or(EntryError::NoLinkTarget)?;
                self.make_hard_link(dir, name, path, &target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let meta = read_meta(entry, self.privileged)?;
                let header = entry.header();
                let major = header.device_major().map_err(EntryError::Header)?;
                let minor = header.device_minor().map_err(EntryError::Header)?;
                let (file_type, dev) = match kind {
                    EntryType::Char => (FileType::CharacterDevice, device(major, minor)),
                    EntryType::Block => (FileType::BlockDevice, device(major, minor)),
                    _ => (FileType::Fifo, 0),
                };
                self.make_node(dir, name, path, file_type, dev, &meta)
            }
            other => Err(EntryError::UnsupportedType(other.as_byte())),
        }
    }

    fn write_file(
        &mut self,
        content: &mut impl Read,
        dir: &Path,
        name: &OsStr,
        path: &Path,
        meta: &Meta,
    ) -> Result<(), EntryError> {
        let parent = self.parents.get(dir).map_err(op("opening its directory"))?;
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(meta.mode & 0o777);
        let (fd, replaced) = fsops::create_replacing(parent, name, || {
            rustix::fs::openat(parent, name, flags, mode)
        })
        .map_err(op("creating it"))?;
        if replaced {
            self.parents.forget_under(path);
        }
        let mut file = File::from(fd);
        loop {
            let n = match content.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(EntryError::Content(e)),
            };
            file.write_all(&self.buf[..n])
                .map_err(op("writing its content"))?;
            self.tree.content_size += n as u64;
        }
        self.set_owner_and_mode(file.as_fd(), meta, false)?;
        set_xattrs(file.as_fd(), &meta.xattrs)?;
        rustix::fs::futimens(&file, &meta.times()).map_err(errno("setting its times"))?;
        Ok(())
    }

    /// Creates (or keeps) a directory. Its mode, owner and times wait until the end, so that
    /// a read-only directory can still be filled and its mtime is not disturbed.
    fn make_dir(
        &mut self,
        dir: &Path,
        name: &OsStr,
        path: &Path,
        meta: &Meta,
    ) -> Result<(), EntryError> {
        let parent = self.parents.get(dir).map_err(op("opening its directory"))?;
        let replaced = match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => false,
            Err(Errno::EXIST) if is_directory(parent, name)? => false,
            Err(Errno::EXIST) => {
                fsops::remove_entry(parent, name).map_err(op("removing what it replaces"))?;
                rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                    .map_err(errno("creating it"))?;
                true
            }
            Err(e) => return Err(errno("creating it")(e)),
        };
        let fd = rustix::fs::openat(
            parent,
            name,
            fsops::DIR_FLAGS | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(errno("opening it"))?;
        set_xattrs(fd.as_fd(), &meta.xattrs)?;
        if replaced {
            self.parents.forget_under(path);
        }
        self.parents.remember(path.to_owned(), fd);
        self.defer_dir(path.to_owned(), meta);
        Ok(())
    }

    /// A `./` entry: the layer root's own metadata.
    fn make_root(&mut self, meta: &Meta) -> Result<(), EntryError> {
        set_xattrs(self.root, &meta.xattrs)?;
        self.defer_dir(PathBuf::new(), meta);
        Ok(())
    }

    fn defer_dir(&mut self, path: PathBuf, meta: &Meta) {
        self.dirs.push(PendingDir {
            path,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
        });
    }

    fn make_symlink(
        &mut self,
        dir: &Path,
        name: &OsStr,
        path: &Path,
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), EntryError> {
        let parent = self.parents.get(dir).map_err(op("opening its directory"))?;
        let ((), replaced) =
            fsops::create_replacing(parent, name, || rustix::fs::symlinkat(target, parent, name))
                .map_err(op("creating it"))?;
        set_owner(self.privileged, parent, name, meta)?;
        rustix::fs::utimensat(parent, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno("setting its times"))?;
        if replaced {
            self.parents.forget_under(path);
        }
        Ok(())
    }

    fn make_hard_link(
        &mut self,
        dir: &Path,
        name: &OsStr,
        path: &Path,
        target: &[u8],
    ) -> Result<(), EntryError> {
        let shown = path::display(target);
        let target = path::normalise(target).map_err(|_| EntryError::LinkEscapes(shown.clone()))?;
        if target == path {
            return Ok(());
        }
        let not_in_layer = |source: io::Error| EntryError::LinkTarget {
            target: shown.clone(),
            source,
        };
        let (target_dir, target_name) =
            path::split(&target).ok_or_else(|| not_in_layer(Errno::PERM.into()))?;
        let from = rustix::fs::openat2(
            self.root,
            fsops::or_dot(target_dir),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            fsops::LINK_TARGET,
        )
        .map_err(|e| not_in_layer(e.into()))?;
        let parent = self.parents.get(dir).map_err(op("opening its directory"))?;
        let ((), replaced) = fsops::create_replacing(parent, name, || {
            rustix::fs::linkat(&from, target_name, parent, name, AtFlags::empty())
        })
        .map_err(not_in_layer)?;
        if replaced {
            self.parents.forget_under(path);
        }
        Ok(())
    }

    fn make_node(
        &mut self,
        dir: &Path,
        name: &OsStr,
        path: &Path,
        file_type: FileType,
        dev: rustix::fs::Dev,
        meta: &Meta,
    ) -> Result<(), EntryError> {
        let parent = self.parents.get(dir).map_err(op("opening its directory"))?;
        let mode = Mode::from_raw_mode(meta.mode & 0o777);
        let ((), replaced) = fsops::create_replacing(parent, name, || {
            rustix::fs::mknodat(parent, name, file_type, mode, dev)
        })
        .map_err(op("creating it"))?;
        set_owner(self.privileged, parent, name, meta)?;
        if needs_chmod(meta.mode) {
            // Not a symlink: it was just created, in a directory only this process writes to.
            rustix::fs::chmodat(
                parent,
                name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(errno("setting its mode"))?;
        }
        rustix::fs::utimensat(parent, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno("setting its times"))?;
        if replaced {
            self.parents.forget_under(path);
        }
        Ok(())
    }

    /// `.wh.NAME`: removes what this layer put at NAME and leaves a 0/0 character device, which
    /// overlayfs reads as "deleted".
    fn whiteout(&mut self, dir: &Path, name: &OsStr) -> Result<(), EntryError> {
        let parent = self.parents.get(dir).map_err(op("opening its directory"))?;
        fsops::remove_entry(parent, name).map_err(op("removing what it deletes"))?;
        rustix::fs::mknodat(parent, name, FileType::CharacterDevice, Mode::empty(), 0)
            .map_err(errno("creating the whiteout device"))?;
        self.parents.forget_under(&dir.join(name));
        Ok(())
    }

    /// `.wh..wh..opq`: the directory hides the lower layers' entries (not this layer's).
    fn mark_opaque(&mut self, dir: &Path) -> Result<(), EntryError> {
        let fd = self.parents.get(dir).map_err(op("opening its directory"))?;
        rustix::fs::fsetxattr(fd, OPAQUE_XATTR, b"y", XattrFlags::empty())
            .map_err(errno("marking its directory opaque"))
    }

    fn set_owner_and_mode(
        &self,
        fd: BorrowedFd<'_>,
        meta: &Meta,
        always_chmod: bool,
    ) -> Result<(), EntryError> {
        if self.privileged {
            rustix::fs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
                .map_err(errno("setting its owner"))?;
        }
        if always_chmod || needs_chmod(meta.mode) {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
                .map_err(errno("setting its mode"))?;
        }
        Ok(())
    }

    /// Gives directories their owners, modes and times, now that their content is complete:
    /// deepest first (a parent's mode may forbid reaching its children without privileges),
    /// the last entry for a path winning. A directory that a later entry replaced by
    /// something else is skipped.
    fn finish(&mut self) -> Result<(), UnpackError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        let mut seen = HashSet::new();
        dirs.reverse();
        dirs.retain(|d| seen.insert(d.path.clone()));
        dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
        for dir in &dirs {
            let fd = match rustix::fs::openat2(
                self.root,
                fsops::or_dot(&dir.path),
                fsops::DIR_FLAGS | OFlags::NOFOLLOW,
                Mode::empty(),
                fsops::IN_ROOT,
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(dir_failure(dir, errno("opening it")(e))),
            };
            let meta = Meta {
                mode: dir.mode,
                uid: dir.uid,
                gid: dir.gid,
                mtime: dir.mtime,
                xattrs: Vec::new(),
            };
            self.set_owner_and_mode(fd.as_fd(), &meta, true)
                .and_then(|()| {
                    rustix::fs::futimens(&fd, &meta.times()).map_err(errno("setting its times"))
                })
                .map_err(|cause| dir_failure(dir, cause))?;
        }
        Ok(())
    }
}

fn dir_failure(dir: &PendingDir, cause: EntryError) -> UnpackError {
    UnpackError::Entry {
        path: path::display(dir.path.as_os_str().as_bytes()),
        cause,
    }
}

/// Whether a file created with `mode & 0o777` needs an explicit `chmod` to get `mode`: special
/// bits are never set by `open`/`mknod`, and the umask may have removed some.
fn needs_chmod(mode: u32) -> bool {
    mode & 0o7000 != 0 || mode & fsops::umask() != 0
}

fn is_directory(parent: BorrowedFd<'_>, name: &OsStr) -> Result<bool, EntryError> {
    let stat = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(errno("inspecting what it replaces"))?;
    Ok(FileType::from_raw_mode(stat.st_mode) == FileType::Directory)
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, privileged: bool) -> Result<Meta, EntryError> {
    let header = entry.header();
    let mode = header.mode().map_err(EntryError::Header)? & 0o7777;
    let uid = id(header.uid().map_err(EntryError::Header)?)?;
    let gid = id(header.gid().map_err(EntryError::Header)?)?;
    let seconds = header.mtime().map_err(EntryError::Header)?;
    let mut mtime = Timespec {
        tv_sec: i64::try_from(seconds)
            .map_err(|_| EntryError::Header(invalid("mtime out of range")))?,
        tv_nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Some(extensions) = entry.pax_extensions().map_err(EntryError::Header)? {
        for extension in extensions {
            let extension = extension.map_err(EntryError::Header)?;
            let Ok(key) = extension.key() else { continue };
            if key == PAX_MTIME {
                if let Some(t) = parse_pax_time(extension.value_bytes()) {
                    mtime = t;
                }
            } else if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                if keeps_xattr(name, privileged) {
                    xattrs.push((name.to_owned(), extension.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// The extended attributes an image may set: its own (`user.*`) and file capabilities. Not
/// `trusted.*` (overlayfs metadata: opaque, redirect, metacopy), not ACLs or SELinux labels
/// (`system.*`, `security.selinux`: host policy decides those).
fn keeps_xattr(name: &str, privileged: bool) -> bool {
    name.starts_with("user.") || (privileged && name == "security.capability")
}

fn set_xattrs(fd: BorrowedFd<'_>, xattrs: &[(String, Vec<u8>)]) -> Result<(), EntryError> {
    for (name, value) in xattrs {
        match rustix::fs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty()) {
            // A file system without extended attributes: the layer still works without them.
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(e) => {
                return Err(EntryError::Xattr {
                    name: name.clone(),
                    source: e.into(),
                });
            }
        }
    }
    Ok(())
}

/// A PAX time: decimal seconds since the epoch, possibly negative, possibly with a fraction.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let digits: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    let nanos: i64 = digits.parse().ok()?;
    Some(match (negative, nanos) {
        (false, _) => Timespec {
            tv_sec: seconds,
            tv_nsec: nanos,
        },
        (true, 0) => Timespec {
            tv_sec: -seconds,
            tv_nsec: 0,
        },
        (true, _) => Timespec {
            tv_sec: -seconds - 1,
            tv_nsec: 1_000_000_000 - nanos,
        },
    })
}

fn id(value: u64) -> Result<u32, EntryError> {
    u32::try_from(value).map_err(|_| EntryError::Header(invalid("owner id out of range")))
}

fn uid(id: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(id)
}

fn gid(id: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(id)
}

fn device(major: Option<u32>, minor: Option<u32>) -> rustix::fs::Dev {
    rustix::fs::makedev(major.unwrap_or(0), minor.unwrap_or(0))
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Maps an I/O error to an entry error saying what was being done.
fn op(what: &'static str) -> impl Fn(io::Error) -> EntryError {
    move |source| EntryError::Io { op: what, source }
}

fn errno(what: &'static str) -> impl Fn(Errno) -> EntryError {
    move |e| EntryError::Io {
        op: what,
        source: e.into(),
    }
}

/// Gives an entry the owner its header names (only when running as root: others cannot).
fn set_owner(
    privileged: bool,
    parent: BorrowedFd<'_>,
    name: &OsStr,
    meta: &Meta,
) -> Result<(), EntryError> {
    if privileged {
        rustix::fs::chownat(
            parent,
            name,
            Some(uid(meta.uid)),
            Some(gid(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno("setting its owner"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(t("1.123456789123"), Some((1, 123_456_789)));
        assert_eq!(t("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(t("-3"), Some((-3, 0)));
        assert_eq!(t(""), None);
        assert_eq!(t("x"), None);
        assert_eq!(t("1.x"), None);
    }
}
