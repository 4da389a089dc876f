//! The few system calls that rustix does not wrap (or wraps in a way that does not fit), each
//! behind a safe function. This is the only module with `unsafe` code.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};

/// Namespace and process flags for [`clone_process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneFlags(pub u64);

impl CloneFlags {
    pub const NEWNS: CloneFlags = CloneFlags(libc::CLONE_NEWNS as u64);
    pub const NEWPID: CloneFlags = CloneFlags(libc::CLONE_NEWPID as u64);
    pub const NEWUTS: CloneFlags = CloneFlags(libc::CLONE_NEWUTS as u64);
    pub const NEWIPC: CloneFlags = CloneFlags(libc::CLONE_NEWIPC as u64);
    pub const NEWCGROUP: CloneFlags = CloneFlags(libc::CLONE_NEWCGROUP as u64);
    pub const NEWNET: CloneFlags = CloneFlags(libc::CLONE_NEWNET as u64);
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

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: executes the file open at `fd` (which may
/// be close-on-exec, as a memfd of [`crate::sealed`] is: the kernel holds the file). Returns
/// only on failure.
pub fn execveat_fd(fd: BorrowedFd<'_>, argv: &[&CStr], envp: &[&CStr]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let empty = c"";
    // SAFETY: `fd` is a valid descriptor for the call; the path is a NUL-terminated empty
    // string (with AT_EMPTY_PATH, `fd` itself is executed); both pointer arrays hold pointers
    // into NUL-terminated strings borrowed for the duration of the call, ending with a null
    // pointer, as execveat requires.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// Removes a variable from this process's environment, if the process has a single thread
/// (another could be reading the environment meanwhile, which is why `remove_var` is unsafe):
/// for the first thing `main` does. `false` if it could not.
pub fn remove_env_single_threaded(key: &str) -> bool {
    if !matches!(thread_count(), Ok(1)) {
        return false;
    }
    // SAFETY: no other thread exists (checked above) to read or write the environment
    // concurrently.
    unsafe { std::env::remove_var(key) };
    true
}

/// Marks every file descriptor from `first` up close-on-exec (`close_range(2)` with
/// `CLOSE_RANGE_CLOEXEC`, Linux 5.11+), so that nothing cleat holds leaks into the container.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    close_range(first, libc::CLOSE_RANGE_CLOEXEC)
}

/// Closes every file descriptor from `first` up: for a process of cleat's that stays in the
/// container without exec'ing (the `--init`), so that none of cleat's descriptors can be
/// reached through its /proc/1/fd.
///
/// Only for a process that holds no `OwnedFd` above `first` any more (they would be closed
/// twice).
pub fn close_from(first: u32) -> io::Result<()> {
    close_range(first, 0)
}

/// `prctl(PR_CAPBSET_DROP, index)`: removes one capability, by number, from the bounding set.
pub fn capbset_drop(index: u8) -> io::Result<()> {
    // SAFETY: prctl(PR_CAPBSET_DROP) takes plain integers and changes no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(index), 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn close_range(first: u32, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: close_range takes plain integers; with flags 0 it closes descriptors, which the
    // callers guarantee nothing else owns.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) };
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

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// A mount propagation type for [`mount_setattr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Private,
    Slave,
}

/// `mount_setattr(2)` (Linux 5.12+) on the mount at `fd` (attached or detached), and with
/// `recursive` every mount below it: sets the `MOUNT_ATTR_*` bits in `set`, and the
/// propagation type if one is given.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    propagation: Option<Propagation>,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: match propagation {
            None => 0,
            Some(Propagation::Private) => libc::MS_PRIVATE,
            Some(Propagation::Slave) => libc::MS_SLAVE,
        },
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let empty = c"";
    // SAFETY: `fd` is a valid descriptor for the call, the path is a NUL-terminated empty
    // string (with AT_EMPTY_PATH, the call acts on `fd` itself), and `attr` is a properly
    // laid-out `struct mount_attr` whose size is passed along.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the mount at `fd` and every mount below it read-only. A remount could only reach the
/// top one.
pub fn set_readonly_recursive(fd: BorrowedFd<'_>) -> io::Result<()> {
    mount_setattr(fd, true, MOUNT_ATTR_RDONLY, None)
}

/// Brings a network interface up (`SIOCSIFFLAGS` with `IFF_UP`), in the calling process's
/// network namespace: loopback in a fresh one.
pub fn interface_up(name: &str) -> io::Result<()> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    // SAFETY: socket(2) with constant arguments; the descriptor is owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero `ifreq` is a valid value of that plain C struct.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `req` is a valid `ifreq` naming the interface; the ioctls read and write it.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) == -1 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Waits for a child of ours and returns its exit code (128 + the signal's number if a signal
/// ended it, as a shell reports it).
pub fn wait_exit_code(pid: rustix::process::Pid) -> io::Result<i32> {
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Ok(code);
                }
                if let Some(sig) = status.terminating_signal() {
                    return Ok(128 + sig);
                }
            }
            Ok(None) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `fork(2)` through libc (so its atfork handlers run). Returns [`Forked::Child`] in the child.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the callers are single-threaded (the container's first process), so the child is
    // a faithful copy with no lock held by another thread.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: from now on, execve never grants privileges (setuid bits
/// and file capabilities are ignored).
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes plain integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn full_sigset() -> libc::sigset_t {
    // SAFETY: sigfillset initialises the zeroed set it is given.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        set
    }
}

/// Blocks every signal (they stay pending, to be taken with [`wait_signal`]).
pub fn block_all_signals() -> io::Result<()> {
    let set = full_sigset();
    // SAFETY: `set` is an initialised signal set; the old mask is not asked for.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits for any (blocked) signal and returns its number (`sigwaitinfo(2)`).
pub fn wait_signal() -> io::Result<i32> {
    let set = full_sigset();
    loop {
        // SAFETY: `set` is initialised; a null info pointer is allowed.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if sig >= 0 {
            return Ok(sig);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)` for a program of `len` instructions (1 to 4096,
/// checked by the caller). Needs `no_new_privs` or CAP_SYS_ADMIN; applies to the calling thread.
pub fn seccomp_set_filter(program: &[seccompiler::sock_filter], len: u16) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: len.min(u16::try_from(program.len()).unwrap_or(u16::MAX)),
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `fprog` points to at most `program.len()` instructions owned by `program`, which
    // outlives the call; seccompiler's `sock_filter` has the layout of the kernel's (checked
    // below). The kernel only reads (copies) the program and changes no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &raw const fprog,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const _: () = assert!(
    std::mem::size_of::<seccompiler::sock_filter>() == std::mem::size_of::<libc::sock_filter>()
        && std::mem::align_of::<seccompiler::sock_filter>()
            == std::mem::align_of::<libc::sock_filter>()
);
