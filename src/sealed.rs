//! Running from a sealed copy of cleat's own binary (what runc does against CVE-2019-5736).
//!
//! Two kinds of cleat's processes run cleat's code inside a container's PID namespace, where
//! the container's processes see them: a process of `cleat exec` between its fork and its
//! exec, and `--init`, the container's PID 1 for as long as the container runs. Both are
//! non-dumpable, but a process of the container with CAP_SYS_PTRACE may open /proc/PID/exe of
//! any process it sees all the same. Were that the host's binary, the container would hold a
//! handle on it that it could reopen for writing once no process runs cleat (or pass out of
//! the container over a shared socket), and overwrite cleat for every later use on the host.
//!
//! So those commands first execute themselves again from a copy ([`reexec_sealed`]): a memfd,
//! which is in no file system anybody can reach by a path, sealed so that nobody can change it
//! (no write, no growing or shrinking, no more seals to add or remove), executed through its
//! descriptor (`execveat` with `AT_EMPTY_PATH`). /proc/PID/exe of their processes then leads
//! to the copy, which is harmless to hold. The container's first process without `--init`
//! needs none: until it execs the payload it is the only process in its PID namespace
//! (`cleat exec` joins a container only once the payload runs: it waits for the record of
//! the run that `internal start` writes after the exec).
//!
//! The copy runs with the same arguments and environment plus [`MARKER`], which carries the
//! original binary's path for what needs it ([`own_path`]: the command lines of units and timers
//! cleat creates). `main` takes the marker out of the environment first thing
//! ([`take_marker`]), so that no process cleat starts, and no container, ever sees it.
//!
//! Cost: a copy of the binary in memory (shmem) for as long as such a process runs, and the
//! time to copy it and start again (a few milliseconds for a release build).

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use rustix::fs::{MemfdFlags, SealFlags};

use crate::sys;

/// The environment variable that tells a sealed copy where the original binary is.
pub const MARKER: &str = "_CLEAT_SEALED_FROM";

/// Every seal the copy carries.
const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// The original binary's path, when this process runs from a sealed copy.
static ORIGINAL: OnceLock<PathBuf> = OnceLock::new();

/// Takes [`MARKER`] out of the environment and, if this process does run from a sealed copy,
/// keeps the path it names (for [`own_path`]). The first thing `main` does, while the process
/// has a single thread.
pub fn take_marker() {
    let Some(original) = std::env::var_os(MARKER) else {
        return;
    };
    if !sys::remove_env_single_threaded(MARKER) {
        // Not the first thing after all: better no marker than one left for children.
        eprintln!("cleat: internal error: {MARKER} left in the environment");
    }
    if running_sealed() {
        let original = PathBuf::from(original);
        // What `ps` shows: the binary's name, not the copy's (`memfd:cleat`, or a descriptor's
        // number on older kernels).
        if let Some(name) = original
            .file_name()
            .and_then(|n| CString::new(n.as_bytes()).ok())
        {
            let _ = rustix::thread::set_name(&name);
        }
        let _ = ORIGINAL.set(original);
    }
}

/// The path of cleat's binary: the original's when this process runs from a sealed copy (whose
/// /proc/self/exe is `/memfd:cleat (deleted)`), else the binary's own.
pub fn own_path() -> io::Result<PathBuf> {
    match ORIGINAL.get() {
        Some(path) => Ok(path.clone()),
        None => std::env::current_exe(),
    }
}

/// Whether this process runs from a copy sealed as [`reexec_sealed`] seals it.
pub fn running_sealed() -> bool {
    std::fs::File::open("/proc/self/exe")
        .ok()
        .and_then(|exe| rustix::fs::fcntl_get_seals(&exe).ok())
        .is_some_and(|seals| seals.contains(SEALS))
}

/// Executes this process again from a sealed copy of its binary, with the same arguments and
/// environment (plus [`MARKER`]), unless it runs from one already (then `Ok(())`). Otherwise
/// it returns only on failure: the copy starts over from `main`, so call this before doing
/// anything that must not happen twice.
pub fn reexec_sealed() -> io::Result<()> {
    if running_sealed() {
        return Ok(());
    }
    let original = std::env::current_exe()?;
    let copy = sealed_copy().map_err(|e| io::Error::new(e.kind(), format!("copying: {e}")))?;
    let argv = std::env::args_os()
        .map(|a| cstring(a.as_bytes().to_vec()))
        .collect::<io::Result<Vec<_>>>()?;
    let mut env = std::env::vars_os()
        .filter(|(k, _)| k != MARKER)
        .map(|(k, v)| cstring(assignment(k, v)))
        .collect::<io::Result<Vec<_>>>()?;
    env.push(cstring(assignment(
        MARKER.into(),
        original.into_os_string(),
    ))?);
    let argv: Vec<&std::ffi::CStr> = argv.iter().map(|a| a.as_c_str()).collect();
    let env: Vec<&std::ffi::CStr> = env.iter().map(|e| e.as_c_str()).collect();
    let e = sys::execveat_fd(copy.as_fd(), &argv, &env);
    Err(io::Error::new(e.kind(), format!("executing the copy: {e}")))
}

fn assignment(key: OsString, value: OsString) -> Vec<u8> {
    [key.as_bytes(), b"=", value.as_bytes()].concat()
}

fn cstring(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// A memfd holding a copy of this process's binary, sealed against any change.
fn sealed_copy() -> io::Result<OwnedFd> {
    let mut source = std::fs::File::open("/proc/self/exe")?;
    let size = source.metadata()?.len();
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // Executable whatever vm.memfd_noexec says by default (a kernel before 6.3 knows no
    // MFD_EXEC: every memfd is executable there).
    let memfd = match rustix::fs::memfd_create("cleat", flags | MemfdFlags::EXEC) {
        Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create("cleat", flags)?,
        made => made?,
    };
    let mut copy = std::fs::File::from(memfd);
    // In the kernel (copy_file_range or sendfile) where it can.
    let copied = io::copy(&mut source, &mut copy)?;
    if copied != size {
        return Err(io::Error::other(format!("copied {copied} bytes of {size}")));
    }
    let memfd = OwnedFd::from(copy);
    rustix::fs::fcntl_add_seals(&memfd, SEALS)?;
    if !rustix::fs::fcntl_get_seals(&memfd)?.contains(SEALS) {
        return Err(io::Error::other("the copy is not sealed"));
    }
    Ok(memfd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_is_the_binary_and_cannot_change() {
        let memfd = sealed_copy().unwrap();
        let copy = std::fs::read(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&memfd)
        ))
        .unwrap();
        assert_eq!(copy, std::fs::read("/proc/self/exe").unwrap());
        let seals = rustix::fs::fcntl_get_seals(&memfd).unwrap();
        assert!(seals.contains(SEALS), "{seals:?}");
        // No write, no truncation, no resize, no unsealing; not even through a new
        // descriptor opened for writing.
        assert_eq!(
            rustix::io::pwrite(&memfd, b"x", 0),
            Err(rustix::io::Errno::PERM)
        );
        assert_eq!(
            rustix::fs::ftruncate(&memfd, 0),
            Err(rustix::io::Errno::PERM)
        );
        let reopened = std::fs::OpenOptions::new()
            .write(true)
            .open(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&memfd)
            ))
            .unwrap();
        assert_eq!(
            rustix::io::pwrite(&reopened, b"x", 0),
            Err(rustix::io::Errno::PERM)
        );
        assert_eq!(
            rustix::fs::ftruncate(&reopened, 1),
            Err(rustix::io::Errno::PERM)
        );
        assert!(rustix::fs::fcntl_add_seals(&memfd, SealFlags::FUTURE_WRITE).is_err());
        // A test binary does not run from a copy, and knows its own path.
        assert!(!running_sealed());
        assert_eq!(own_path().unwrap(), std::env::current_exe().unwrap());
    }
}
