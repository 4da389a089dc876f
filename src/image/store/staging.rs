//! Staging: everything enters the store through `tmp/`, under a name of its own
//! (`<pid>.<random>`), locked by its writer for as long as it is being written, and becomes
//! visible with one `rename(2)`; everything leaves it the same way in reverse. A process killed
//! at any point leaves at most an entry in `tmp/`, which the next [`clean`] removes once its
//! owner is gone: its PID is not running and nobody holds its lock (the lock also protects the
//! entries of a process in another PID namespace).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom;
use rustix::fs::{FlockOperation, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// An entry of `tmp/` owned by this process: removed when dropped unless committed.
pub(super) struct Staged {
    path: PathBuf,
    /// The entry itself, open and locked.
    file: File,
    is_dir: bool,
    committed: bool,
}

impl Staged {
    /// A new empty directory (mode 0700) in `tmp`.
    pub(super) fn new_dir(tmp: &Path) -> io::Result<Staged> {
        create_unique(tmp, |path| {
            fs::DirBuilder::new().mode(0o700).create(path)?;
            let fd = rustix::fs::open(
                path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Ok((File::from(fd), true))
        })
    }

    /// A new empty file (mode 0644) in `tmp`, open for writing.
    pub(super) fn new_file(tmp: &Path) -> io::Result<Staged> {
        create_unique(tmp, |path| {
            let flags =
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
            let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(0o644))?;
            Ok((File::from(fd), false))
        })
    }

    /// Moves the existing directory `path` into `tmp` (so it disappears from where it was at
    /// once); dropping the result deletes it.
    pub(super) fn adopt_dir(path: &Path, tmp: &Path) -> io::Result<Staged> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        let file = File::from(fd);
        rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive)?;
        loop {
            let to = tmp.join(unique_name()?);
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                path,
                rustix::fs::CWD,
                &to,
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    return Ok(Staged {
                        path: to,
                        file,
                        is_dir: true,
                        committed: false,
                    });
                }
                // Name taken (by a process in another PID namespace): draw again.
                Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn handle(&self) -> &File {
        &self.file
    }

    /// Renames the entry to `to`, replacing a file there. A directory never replaces
    /// anything: `Ok(false)` if `to` exists (someone else committed the same content first),
    /// and the staged copy is dropped.
    pub(super) fn commit(mut self, to: &Path) -> io::Result<bool> {
        let flags = if self.is_dir {
            RenameFlags::NOREPLACE
        } else {
            RenameFlags::empty()
        };
        match rustix::fs::renameat_with(rustix::fs::CWD, &self.path, rustix::fs::CWD, to, flags) {
            Ok(()) => {
                self.committed = true;
                Ok(true)
            }
            Err(Errno::EXIST | Errno::NOTEMPTY) if self.is_dir => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Best effort: what is left is removed by the next `clean`.
        let _ = if self.is_dir {
            fs::remove_dir_all(&self.path)
        } else {
            fs::remove_file(&self.path)
        };
    }
}

fn create_unique(
    tmp: &Path,
    create: impl Fn(&Path) -> io::Result<(File, bool)>,
) -> io::Result<Staged> {
    loop {
        let path = tmp.join(unique_name()?);
        let (file, is_dir) = match create(&path) {
            Ok(created) => created,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let staged = Staged {
            path,
            file,
            is_dir,
            committed: false,
        };
        rustix::fs::flock(&staged.file, FlockOperation::NonBlockingLockExclusive)?;
        return Ok(staged);
    }
}

/// `<pid>.<16 random hex digits>`.
fn unique_name() -> io::Result<String> {
    let mut random = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| io::Error::other("no random numbers from the kernel"))?;
    Ok(format!(
        "{}.{:016x}",
        std::process::id(),
        u64::from_ne_bytes(random)
    ))
}

/// Removes the entries of `tmp` whose owner is gone; returns how many. Best effort: an entry
/// that cannot be removed now is left for next time.
pub(super) fn clean(tmp: &Path) -> usize {
    let Ok(entries) = fs::read_dir(tmp) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else {
            continue;
        };
        if is_running(pid) {
            continue;
        }
        let path = entry.path();
        if remove_if_unlocked(&path).unwrap_or(false) {
            removed += 1;
        }
    }
    removed
}

/// The PID in a staging name, if it is one.
fn owner_pid(name: &str) -> Option<i32> {
    let (pid, random) = name.split_once('.')?;
    if random.len() != 16 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok().filter(|&p| p > 0)
}

fn is_running(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}

fn remove_if_unlocked(path: &Path) -> io::Result<bool> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    if rustix::fs::fstat(&fd).map(|s| rustix::fs::FileType::from_raw_mode(s.st_mode))?
        == rustix::fs::FileType::Directory
    {
        fs::remove_dir_all(path)?;
    } else {
        fs::remove_file(path)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names() {
        assert_eq!(owner_pid("123.0123456789abcdef"), Some(123));
        assert_eq!(owner_pid("123.0123456789abcde"), None);
        assert_eq!(owner_pid("x.0123456789abcdef"), None);
        assert_eq!(owner_pid("0.0123456789abcdef"), None);
        assert_eq!(owner_pid("gc"), None);
        let name = unique_name().unwrap();
        assert_eq!(owner_pid(&name), Some(std::process::id() as i32));
    }
}
