//! The system call filter (seccomp): Docker's default profile, none, or a profile in Docker's
//! JSON format, compiled for the running architecture and the container's capabilities, and
//! installed in the container's first process just before it execs the payload.
//!
//! [`compile`] does all the checking and can fail with a clear [`SeccompError`]; call it before
//! anything is started. [`install`] only hands the finished program to the kernel.
//!
//! How a profile becomes a filter: `json` reads Docker's format (or `default` provides
//! Docker's default profile) into a `profile::Profile`; `plan` keeps the rules that apply to
//! this container (Docker's `includes`/`excludes` on capabilities, architecture and kernel
//! version) and resolves names to numbers with the `syscalls` tables; `bpf` assembles the
//! program. The semantics follow Docker with runc, so a profile means the same as under
//! `docker run --security-opt seccomp=FILE`, except that only the native ABI is filtered: a
//! 32-bit (i386, x32, arm32) system call kills the process.

mod bpf;
mod default;
mod json;
mod plan;
mod profile;
mod syscalls;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

use caps::CapsHashSet;
pub use seccompiler::BpfProgram;

use crate::spec::value::Seccomp;
use plan::Plan;
use profile::{Host, KernelVersion, Profile};
use syscalls::Arch;

/// Why a seccomp setting cannot be turned into a filter. Each names the profile (its path, or
/// "the default profile") and, for a mistake in it, where: `syscalls[3] (mount) args[0]`.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot read seccomp profile {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("seccomp profile {}: invalid JSON at line {line}, column {column}: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "seccomp profile {profile}: {at}: unknown action {action:?} (known: SCMP_ACT_ALLOW, \
         SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_THREAD, SCMP_ACT_KILL_PROCESS, \
         SCMP_ACT_TRAP, SCMP_ACT_LOG, SCMP_ACT_TRACE)"
    )]
    UnknownAction {
        profile: String,
        at: String,
        action: String,
    },
    #[error(
        "seccomp profile {profile}: {at}: unknown comparison {op:?} (known: SCMP_CMP_EQ, \
         SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_GT, SCMP_CMP_GE, SCMP_CMP_MASKED_EQ)"
    )]
    UnknownOp {
        profile: String,
        at: String,
        op: String,
    },
    #[error("seccomp profile {profile}: {at}: unknown architecture {arch:?} (expected {expected})")]
    UnknownArch {
        profile: String,
        at: String,
        arch: String,
        expected: &'static str,
    },
    #[error(
        "seccomp profile {profile}: {at}: {name:?} is not a system call on any Linux architecture"
    )]
    UnknownSyscall {
        profile: String,
        at: String,
        name: String,
    },
    #[error("seccomp profile {profile}: {at}: {problem}")]
    Invalid {
        profile: String,
        at: String,
        problem: String,
    },
    #[error(
        "cannot filter system calls on {0}: cleat knows the system calls of x86_64 and aarch64 \
         only (use --security-opt seccomp=unconfined)"
    )]
    UnsupportedArch(String),
    #[error("cannot build the seccomp filter from {profile}: {problem}")]
    Compile { profile: String, problem: String },
}

/// Compiles a container's seccomp setting into a BPF program for the running architecture.
///
/// `caps` is the container's final capability set: as with Docker, some system calls are
/// allowed only with a capability (`mount` with CAP_SYS_ADMIN, `reboot` with CAP_SYS_BOOT…).
/// [`Seccomp::Unconfined`] gives `Ok(None)`: no filter.
pub fn compile(setting: &Seccomp, caps: &CapsHashSet) -> Result<Option<BpfProgram>, SeccompError> {
    let (profile, name) = match setting {
        Seccomp::Unconfined => return Ok(None),
        Seccomp::Default => (default::profile(), "the default profile".to_string()),
        Seccomp::Profile(path) => (json::load(path)?, path.display().to_string()),
    };
    let host = Host {
        arch: native_arch()?,
        caps,
        kernel: running_kernel(),
    };
    build(&profile, &host)
        .map(Some)
        .map_err(|problem| SeccompError::Compile {
            profile: name,
            problem,
        })
}

/// The program for a profile on a host; the error says why it cannot be built.
fn build(profile: &Profile, host: &Host) -> Result<BpfProgram, String> {
    bpf::assemble(&Plan::new(profile, host))
}

fn native_arch() -> Result<Arch, SeccompError> {
    Arch::native().ok_or_else(|| SeccompError::UnsupportedArch(std::env::consts::ARCH.to_string()))
}

/// The running kernel's version; if `uname` cannot be read, a kernel new enough for every
/// rule (only `minKernel` 4.8 for `ptrace` depends on it, and cleat needs newer kernels).
fn running_kernel() -> KernelVersion {
    KernelVersion::running().unwrap_or(KernelVersion {
        major: u32::MAX,
        minor: 0,
    })
}

/// Installs a compiled filter on the calling thread; it stays for the thread's life and is
/// inherited by everything the thread forks or execs. Cannot be undone.
///
/// The kernel accepts a filter only from a thread with `no_new_privs` set or with
/// CAP_SYS_ADMIN in its user namespace. This function does not set `no_new_privs` (unlike
/// seccompiler's `apply_filter`): Docker sets it only for `--security-opt no-new-privileges`,
/// so that setuid programs keep working in containers. Without it, install the filter while
/// the process still has CAP_SYS_ADMIN; the profile must then allow what happens between
/// here and `execve` (Docker's default allows `capset`, `setuid`… and `execve`).
///
/// A filter applies to one thread: call this in the container's first process, which is
/// single-threaded, so that every process of the container inherits it.
pub fn install(program: &BpfProgram) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .ok()
        .filter(|&len| len > 0)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a seccomp filter has 1 to 4096 instructions",
            )
        })?;
    crate::sys::seccomp_set_filter(program, len)
}
