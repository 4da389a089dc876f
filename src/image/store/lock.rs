//! Locks between processes: `flock(2)` on small files under `locks/`, which the kernel
//! releases when the holder dies, however it dies.
//!
//! - `locks/<hex>`: one per layer (keyed by its diff_id), held while the layer is fetched and
//!   unpacked, and while garbage collection removes it. A lock file may be deleted, but only by
//!   its holder; whoever acquires a lock checks that the file it locked is still the one at
//!   that name, and tries again if not.
//! - `locks/gc`: every open [`Store`](super::Store) holds it shared; pruning takes it
//!   exclusively, so that nothing a pull has brought in (but not yet referenced) can be
//!   collected under it.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::image::Digest;

/// Exclusive right to fetch, unpack or remove one layer, released when dropped (or when the
/// process dies).
#[derive(Debug)]
pub struct LayerLock {
    diff_id: Digest,
    _file: File,
}

impl LayerLock {
    pub(super) fn new(diff_id: Digest, file: File) -> LayerLock {
        LayerLock {
            diff_id,
            _file: file,
        }
    }

    /// The layer this lock is for.
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }
}

/// Whether to wait for a lock someone else holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    Yes,
    No,
}

/// Locks `dir/name` exclusively (creating the file); `None` if it is held and `wait` is
/// [`Wait::No`].
pub(super) fn lock(dir: &Path, name: &str, wait: Wait) -> io::Result<Option<File>> {
    let path = dir.join(name);
    let operation = match wait {
        Wait::Yes => FlockOperation::LockExclusive,
        Wait::No => FlockOperation::NonBlockingLockExclusive,
    };
    loop {
        let file = open_lock_file(&path)?;
        match rustix::fs::flock(&file, operation) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        // The holder before us may have deleted the file (and someone may have created a new
        // one): then what we hold locks nothing.
        let held = file.metadata()?;
        match std::fs::symlink_metadata(&path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(Some(file)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
}

/// Deletes the lock file `dir/name`. Only the holder of the lock may call this.
pub(super) fn remove(dir: &Path, name: &str) -> io::Result<()> {
    match std::fs::remove_file(dir.join(name)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The lock every open store holds shared.
pub(super) struct GcLock {
    file: File,
    path: PathBuf,
}

impl GcLock {
    /// Opens `path` and holds it shared (waiting while a prune runs).
    pub(super) fn shared(path: PathBuf) -> io::Result<GcLock> {
        let file = open_lock_file(&path)?;
        rustix::fs::flock(&file, FlockOperation::LockShared)?;
        Ok(GcLock { file, path })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Tries to turn the shared hold into an exclusive one. A conversion drops the shared
    /// hold first: on `false`, nothing is held until [`GcLock::share`].
    pub(super) fn try_exclusive(&self) -> io::Result<bool> {
        match rustix::fs::flock(&self.file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(true),
            Err(Errno::WOULDBLOCK) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Back to (or again) a shared hold.
    pub(super) fn share(&self) -> io::Result<()> {
        Ok(rustix::fs::flock(&self.file, FlockOperation::LockShared)?)
    }
}

impl std::fmt::Debug for GcLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GcLock({})", self.path.display())
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}
