//! The few system calls that rustix does not wrap (or wraps in a way that does not fit), each
//! behind a safe function. This is the only module with `unsafe` code.

use std::ffi::CStr;
use std::io;

/// Namespace and process flags for [`clone_process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneFlags(pub u64);

impl CloneFlags {
    pub const NEWNS: CloneFlags = CloneFlags(libc::CLONE_NEWNS as u64);
    pub const NEWPID: CloneFlags = CloneFlags(libc::CLONE_NEWPID as u64);
    pub const NEWUTS: CloneFlags = CloneFlags(libc::CLONE_NEWUTS as u64);
    pub const NEWIPC: CloneFlags = CloneFlags(libc::CLONE_NEWIPC as u64);
    /// The child's parent becomes our parent (systemd), not us.
    pub const PARENT: CloneFlags = CloneFlags(libc::CLONE_PARENT as u64);
}

impl std::ops::BitOr for CloneFlags {
    type Output = CloneFlags;
    fn bitor(self, rhs: CloneFlags) -> CloneFlags {
        CloneFlags(self.0 | rhs.0)
    }
}

/// Which side of a [`clone_process`] we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent, with the child's PID (as seen from the parent's PID namespace).
    Parent(i32),
    Child,
}

/// Counts this process's threads (from /proc/self/task).
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// `fork()` into new namespaces: a `clone(2)` without `CLONE_VM`, so the child gets a copy of
/// the address space and returns here, like `fork`.
///
/// Refuses to run in a multi-threaded process: after a raw clone only the calling thread
/// exists in the child, and a lock held by any other thread (the allocator's, stdio's) would
/// stay locked forever. With a single thread, the child may run ordinary Rust code.
pub fn clone_process(flags: CloneFlags) -> io::Result<Forked> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "refusing to clone a process that has {threads} threads"
        )));
    }
    // SAFETY: the raw clone syscall with a null stack pointer and without CLONE_VM behaves like
    // fork(2): the child continues on a copy of the parent's stack. No other thread exists
    // (checked above), so no lock can be held in the child's copy of memory. The pointer
    // arguments (parent/child TID, TLS) are null and their flags (CLONE_PARENT_SETTID,
    // CLONE_CHILD_SETTID, CLONE_SETTLS) are not in `flags`, so the kernel reads none of them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags.0 | libc::SIGCHLD as u64,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0usize,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// `execve(2)`. Returns only on failure.
pub fn execve(path: &CStr, argv: &[&CStr], envp: &[&CStr]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: `path` is a NUL-terminated string, and both pointer arrays hold pointers into
    // NUL-terminated strings borrowed for the duration of the call, ending with a null
    // pointer, as execve requires.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Marks every file descriptor from `first` up close-on-exec (`close_range(2)` with
/// `CLOSE_RANGE_CLOEXEC`, Linux 5.11+), so that nothing cleat holds leaks into the container.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers and only changes descriptor flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Resets every signal's disposition to the default and unblocks all signals, so the payload
/// starts with a clean slate whatever cleat's own runtime installed.
pub fn reset_signals() -> io::Result<()> {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || (32..34).contains(&sig) {
            continue;
        }
        // SAFETY: installing SIG_DFL is always sound; it runs no code of ours.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty set is initialised by sigemptyset before being passed to sigprocmask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `_exit(2)`: ends the process at once, without running atexit handlers or flushing stdio
/// buffers that belong to the parent's copy of memory (for the child side of a clone).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes a plain integer and never returns; skipping destructors and atexit
    // handlers is its purpose.
    unsafe { libc::_exit(code) }
}
