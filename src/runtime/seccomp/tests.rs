//! Compiled filters at work in the kernel, and the default profile's decisions.
//!
//! Each behaviour test forks a child that installs a filter and probes system calls. The
//! test binary has other threads, so the child only makes system calls (no allocation, no
//! locks) and reports through a pipe: one result per probe, 0 or the errno.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use caps::CapsHashSet;
use libc::c_long;

use super::*;
use crate::runtime::caps::{all as all_caps, resolve as docker_caps};

const MAX_PROBES: usize = 64;

/// A named system call experiment: 0 if it succeeded, else its errno.
type Probe = (&'static str, fn() -> i32);

fn default_caps() -> CapsHashSet {
    docker_caps(&[], &[]).unwrap()
}

fn default_filter(caps: &CapsHashSet) -> BpfProgram {
    compile(&Seccomp::Default, caps).unwrap().unwrap()
}

/// Runs the probes in a child process under `program` and returns their results by name.
fn run_in_child(program: &BpfProgram, probes: &[Probe]) -> HashMap<&'static str, i32> {
    assert!(probes.len() <= MAX_PROBES);
    let (report, report_end) = rustix::pipe::pipe().unwrap();
    // SAFETY: the child runs `probe_and_exit` only, which makes system calls and never
    // returns; it neither allocates nor takes locks another thread could hold.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        probe_and_exit(program, probes, &report_end);
    }
    drop(report_end);
    let mut bytes = Vec::new();
    std::fs::File::from(report).read_to_end(&mut bytes).unwrap();
    let status = wait_for(pid);
    assert_eq!(
        status, 0,
        "the probing child failed (wait status {status:#x}); probed: {bytes:?}"
    );
    assert_eq!(bytes.len(), probes.len() * 4);
    probes
        .iter()
        .zip(bytes.chunks_exact(4))
        .map(|((name, _), result)| (*name, i32::from_ne_bytes(result.try_into().unwrap())))
        .collect()
}

/// In the forked child: installs the filter, runs the probes, writes the results, exits.
fn probe_and_exit(program: &BpfProgram, probes: &[Probe], report: &std::os::fd::OwnedFd) -> ! {
    let mut results = [0u8; MAX_PROBES * 4];
    let code = if rustix::thread::set_no_new_privs(true).is_err() || install(program).is_err() {
        1
    } else {
        for (i, (_, probe)) in probes.iter().enumerate() {
            results[i * 4..i * 4 + 4].copy_from_slice(&probe().to_ne_bytes());
        }
        let written = rustix::io::write(report, &results[..probes.len() * 4]);
        if written == Ok(probes.len() * 4) {
            0
        } else {
            2
        }
    };
    exit_now(code)
}

fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` ends the process at once, running no exit handlers, which is what a
    // forked child of a multi-threaded process must do.
    unsafe { libc::_exit(code) }
}

/// Waits for a child and returns its raw wait status.
fn wait_for(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: `status` is a valid place for the kernel to write the child's status.
    let rc = unsafe { libc::waitpid(pid, &raw mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    status
}

/// A raw system call: its return value, or its errno.
fn raw(nr: c_long, args: &[c_long]) -> Result<c_long, i32> {
    let arg = |i: usize| args.get(i).copied().unwrap_or(0);
    // SAFETY: the probes pass integers, or pointers to static or stack data that outlive the
    // call and have the size the system call expects; the kernel checks everything else.
    let ret = unsafe { libc::syscall(nr, arg(0), arg(1), arg(2), arg(3), arg(4), arg(5)) };
    if ret == -1 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1))
    } else {
        Ok(ret)
    }
}

/// [`raw`], reduced to 0 or the errno.
fn sys(nr: c_long, args: &[c_long]) -> i32 {
    raw(nr, args).err().unwrap_or(0)
}

fn ptr(text: &'static [u8]) -> c_long {
    text.as_ptr() as c_long
}

// What every container may do.

fn getpid() -> i32 {
    sys(libc::SYS_getpid, &[])
}

fn open_read_close() -> i32 {
    let fd = match raw(
        libc::SYS_openat,
        &[
            libc::AT_FDCWD as c_long,
            ptr(b"/dev/null\0"),
            libc::O_RDONLY as c_long,
        ],
    ) {
        Ok(fd) => fd,
        Err(errno) => return errno,
    };
    let mut byte = [0u8; 1];
    let read = sys(libc::SYS_read, &[fd, byte.as_mut_ptr() as c_long, 1]);
    let close = sys(libc::SYS_close, &[fd]);
    if read != 0 { read } else { close }
}

fn clock_gettime() -> i32 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    sys(
        libc::SYS_clock_gettime,
        &[libc::CLOCK_MONOTONIC as c_long, &raw mut now as c_long],
    )
}

/// `fork` as the C library does it: `clone` with no namespace flag.
fn fork_and_wait() -> i32 {
    match raw(libc::SYS_clone, &[libc::SIGCHLD as c_long, 0, 0, 0, 0]) {
        Ok(0) => exit_now(0),
        Ok(pid) => {
            let mut status = 0i32;
            let waited = sys(libc::SYS_wait4, &[pid, &raw mut status as c_long, 0, 0]);
            if waited != 0 { waited } else { status }
        }
        Err(errno) => errno,
    }
}

fn unix_socket() -> i32 {
    match raw(
        libc::SYS_socket,
        &[libc::AF_UNIX as c_long, libc::SOCK_STREAM as c_long, 0],
    ) {
        Ok(fd) => sys(libc::SYS_close, &[fd]),
        Err(errno) => errno,
    }
}

fn personality_query() -> i32 {
    sys(libc::SYS_personality, &[0xffff_ffff])
}

fn seccomp_mode_is_filter() -> i32 {
    match raw(libc::SYS_prctl, &[libc::PR_GET_SECCOMP as c_long]) {
        Ok(2) => 0,
        Ok(mode) => 1000 + mode as i32,
        Err(errno) => errno,
    }
}

/// Allowed with CAP_SYS_CHROOT (in Docker's default set): fails for a missing directory.
fn chroot_missing() -> i32 {
    sys(libc::SYS_chroot, &[ptr(b"/nonexistent-cleat-seccomp\0")])
}

/// Allowed from kernel 4.8 on: fails for a process that does not exist.
fn ptrace_nobody() -> i32 {
    sys(
        libc::SYS_ptrace,
        &[libc::PTRACE_PEEKDATA as c_long, i32::MAX as c_long, 0, 0],
    )
}

// What Docker refuses without capabilities. Each call is harmless if it got through: its
// arguments make the kernel fail it.

fn keyctl() -> i32 {
    sys(
        libc::SYS_keyctl,
        &[
            0,  /* KEYCTL_GET_KEYRING_ID */
            -3, /* session keyring */
            0,
        ],
    )
}

fn add_key() -> i32 {
    sys(
        libc::SYS_add_key,
        &[
            ptr(b"user\0"),
            ptr(b"cleat\0"),
            ptr(b"x\0"),
            1,
            0, /* no keyring */
        ],
    )
}

fn request_key() -> i32 {
    sys(
        libc::SYS_request_key,
        &[ptr(b"user\0"), ptr(b"cleat-none\0"), 0, 0],
    )
}

fn unshare_mount_namespace() -> i32 {
    sys(libc::SYS_unshare, &[libc::CLONE_NEWNS as c_long])
}

fn mount_missing() -> i32 {
    sys(
        libc::SYS_mount,
        &[
            ptr(b"none\0"),
            ptr(b"/nonexistent-cleat-seccomp\0"),
            ptr(b"tmpfs\0"),
            0,
            0,
        ],
    )
}

fn umount_missing() -> i32 {
    sys(
        libc::SYS_umount2,
        &[ptr(b"/nonexistent-cleat-seccomp\0"), 0],
    )
}

/// Invalid magic numbers: the kernel refuses it with EINVAL before anything else.
fn reboot_bad_magic() -> i32 {
    sys(
        libc::SYS_reboot,
        &[0x0bad, 0x0bad, libc::RB_POWER_OFF as c_long, 0],
    )
}

fn init_module_null() -> i32 {
    sys(libc::SYS_init_module, &[0, 0, ptr(b"\0")])
}

fn finit_module_bad_fd() -> i32 {
    sys(libc::SYS_finit_module, &[-1, ptr(b"\0"), 0])
}

/// Invalid flags: the kernel refuses it with EINVAL.
fn kexec_load_bad_flags() -> i32 {
    sys(libc::SYS_kexec_load, &[0, 0, 0, 0x7fff_0000])
}

fn setns_bad_fd() -> i32 {
    sys(libc::SYS_setns, &[-1, 0])
}

/// `CLONE_NEWNS | CLONE_FS` is invalid: the kernel refuses it with EINVAL.
fn clone_new_namespace() -> i32 {
    sys(
        libc::SYS_clone,
        &[
            (libc::CLONE_NEWNS | libc::CLONE_FS | libc::SIGCHLD) as c_long,
            0,
            0,
            0,
            0,
        ],
    )
}

fn clone3_null() -> i32 {
    sys(libc::SYS_clone3, &[0, 0])
}

fn socket_vsock() -> i32 {
    sys(
        libc::SYS_socket,
        &[libc::AF_VSOCK as c_long, libc::SOCK_STREAM as c_long, 0],
    )
}

fn socket_alg() -> i32 {
    sys(
        libc::SYS_socket,
        &[libc::AF_ALG as c_long, libc::SOCK_SEQPACKET as c_long, 0],
    )
}

fn personality_read_implies_exec() -> i32 {
    sys(libc::SYS_personality, &[0x040_0000])
}

fn userfaultfd() -> i32 {
    match raw(libc::SYS_userfaultfd, &[0]) {
        Ok(fd) => sys(libc::SYS_close, &[fd]),
        Err(errno) => errno,
    }
}

fn io_uring_setup_null() -> i32 {
    sys(libc::SYS_io_uring_setup, &[1, 0])
}

fn swapon_missing() -> i32 {
    sys(libc::SYS_swapon, &[ptr(b"/nonexistent-cleat-seccomp\0"), 0])
}

fn bpf_null() -> i32 {
    sys(libc::SYS_bpf, &[5 /* BPF_PROG_LOAD */, 0, 0])
}

/// `file_getattr` (468), newer than every call Docker's profile names.
fn newer_than_the_profile() -> i32 {
    sys(468, &[-1, 0, 0, 0, 0])
}

fn getppid() -> i32 {
    sys(libc::SYS_getppid, &[])
}

const EPERM: i32 = libc::EPERM;

#[test]
fn default_filter_in_the_kernel() {
    let probes: &[Probe] = &[
        ("getpid", getpid),
        ("openat, read, close", open_read_close),
        ("clock_gettime", clock_gettime),
        ("fork (clone without namespaces)", fork_and_wait),
        ("socket(AF_UNIX)", unix_socket),
        ("personality(query)", personality_query),
        ("PR_GET_SECCOMP", seccomp_mode_is_filter),
        ("chroot", chroot_missing),
        ("ptrace", ptrace_nobody),
        ("keyctl", keyctl),
        ("add_key", add_key),
        ("request_key", request_key),
        ("unshare(CLONE_NEWNS)", unshare_mount_namespace),
        ("mount", mount_missing),
        ("umount2", umount_missing),
        ("reboot", reboot_bad_magic),
        ("init_module", init_module_null),
        ("finit_module", finit_module_bad_fd),
        ("kexec_load", kexec_load_bad_flags),
        ("setns", setns_bad_fd),
        ("clone(CLONE_NEWNS)", clone_new_namespace),
        ("clone3", clone3_null),
        ("socket(AF_VSOCK)", socket_vsock),
        ("socket(AF_ALG)", socket_alg),
        (
            "personality(READ_IMPLIES_EXEC)",
            personality_read_implies_exec,
        ),
        ("userfaultfd", userfaultfd),
        ("io_uring_setup", io_uring_setup_null),
        ("swapon", swapon_missing),
        ("bpf", bpf_null),
        ("file_getattr", newer_than_the_profile),
    ];
    let results = run_in_child(&default_filter(&default_caps()), probes);
    let expected = [
        ("getpid", 0),
        ("openat, read, close", 0),
        ("clock_gettime", 0),
        ("fork (clone without namespaces)", 0),
        ("socket(AF_UNIX)", 0),
        ("personality(query)", 0),
        ("PR_GET_SECCOMP", 0),
        ("chroot", libc::ENOENT),
        ("ptrace", libc::ESRCH),
        ("keyctl", EPERM),
        ("add_key", EPERM),
        ("request_key", EPERM),
        ("unshare(CLONE_NEWNS)", EPERM),
        ("mount", EPERM),
        ("umount2", EPERM),
        ("reboot", EPERM),
        ("init_module", EPERM),
        ("finit_module", EPERM),
        ("kexec_load", EPERM),
        ("setns", EPERM),
        ("clone(CLONE_NEWNS)", EPERM),
        ("clone3", libc::ENOSYS),
        ("socket(AF_VSOCK)", EPERM),
        ("socket(AF_ALG)", EPERM),
        ("personality(READ_IMPLIES_EXEC)", EPERM),
        ("userfaultfd", EPERM),
        ("io_uring_setup", EPERM),
        ("swapon", EPERM),
        ("bpf", EPERM),
        ("file_getattr", libc::ENOSYS),
    ];
    for (name, errno) in expected {
        assert_eq!(
            results[name],
            errno,
            "{name}: expected {}, got {}",
            describe(errno),
            describe(results[name])
        );
    }
}

/// With every capability, the capability-gated calls reach the kernel, which refuses the
/// probes' bad arguments itself; the calls no capability unlocks stay refused.
#[test]
fn capabilities_open_their_groups() {
    let probes: &[Probe] = &[
        ("unshare(CLONE_NEWNS)", unshare_mount_namespace),
        ("mount", mount_missing),
        ("reboot", reboot_bad_magic),
        ("clone3", clone3_null),
        ("setns", setns_bad_fd),
        ("init_module", init_module_null),
        ("keyctl", keyctl),
        ("kexec_load", kexec_load_bad_flags),
    ];
    if !is_root() {
        eprintln!("skipped: the kernel refuses these calls to a user without capabilities");
        return;
    }
    let results = run_in_child(&default_filter(&all_caps()), probes);
    assert_eq!(results["unshare(CLONE_NEWNS)"], 0);
    assert_eq!(results["mount"], libc::ENOENT);
    assert_eq!(results["reboot"], libc::EINVAL);
    assert_eq!(results["clone3"], libc::EINVAL);
    assert_eq!(results["setns"], libc::EBADF);
    assert_ne!(results["init_module"], EPERM);
    assert_eq!(results["keyctl"], EPERM, "no capability unlocks keyctl");
    assert_eq!(results["kexec_load"], EPERM);
}

#[test]
fn custom_profile_in_the_kernel() {
    let path = temp_profile(
        "getppid",
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 25}]}"#,
    );
    let program = compile(&Seccomp::Profile(path.clone()), &default_caps())
        .unwrap()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let results = run_in_child(
        &program,
        &[("getppid", getppid), ("getpid", getpid), ("keyctl", keyctl)],
    );
    assert_eq!(results["getppid"], libc::ENOTTY);
    assert_eq!(results["getpid"], 0);
    assert_ne!(
        results["keyctl"], EPERM,
        "the default action lets everything else through"
    );
}

#[test]
fn unconfined_means_no_filter() {
    assert!(
        compile(&Seccomp::Unconfined, &default_caps())
            .unwrap()
            .is_none()
    );
}

#[test]
fn default_profile_compiles_for_docker_and_all_capabilities() {
    for caps in [default_caps(), all_caps(), CapsHashSet::new()] {
        let program = default_filter(&caps);
        assert!(
            program.len() > 400 && program.len() < 4096,
            "{}",
            program.len()
        );
    }
}

#[test]
fn profile_errors_come_from_compile() {
    let missing = compile(
        &Seccomp::Profile("/nonexistent/seccomp.json".into()),
        &default_caps(),
    );
    assert!(
        matches!(missing, Err(SeccompError::Read { .. })),
        "{missing:?}"
    );
    let path = temp_profile(
        "bad-op",
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_IN"}]}]}"#,
    );
    let bad = compile(&Seccomp::Profile(path.clone()), &default_caps());
    std::fs::remove_file(&path).unwrap();
    let message = bad.unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "seccomp profile {}: syscalls[0] (socket) args[0]: unknown comparison",
            path.display()
        )),
        "{message}"
    );
}

/// Compiling is on every container start's path: it must stay far below 10 ms.
#[test]
fn compiling_the_default_profile_is_fast() {
    let caps = default_caps();
    default_filter(&caps);
    let rounds = 20;
    let start = Instant::now();
    for _ in 0..rounds {
        default_filter(&caps);
    }
    let each = start.elapsed() / rounds;
    eprintln!("compiling the default profile: {each:?} (this build)");
    assert!(each.as_millis() < 10, "{each:?}");
}

/// The default profile's decisions, read from the program without installing it.
#[test]
fn default_decisions() {
    use super::bpf::interpreter::run;
    let arch = Arch::native().unwrap();
    let number = |name| arch.number(name).unwrap();
    let decide = |program: &BpfProgram, name, args: [u64; 6]| {
        run(program, arch.audit_arch(), number(name), args)
    };
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const DENY: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let docker = default_filter(&default_caps());
    let nothing = default_filter(&CapsHashSet::new());
    let with = |cap| {
        let mut caps = default_caps();
        caps.insert(cap);
        default_filter(&caps)
    };
    let admin = with(caps::Capability::CAP_SYS_ADMIN);
    let boot = with(caps::Capability::CAP_SYS_BOOT);
    let module = with(caps::Capability::CAP_SYS_MODULE);
    let time = with(caps::Capability::CAP_SYS_TIME);
    let nice = with(caps::Capability::CAP_SYS_NICE);
    let no_args = [0; 6];

    assert_eq!(decide(&docker, "mount", no_args), DENY);
    assert_eq!(decide(&admin, "mount", no_args), ALLOW);
    assert_eq!(
        decide(&admin, "clone", [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(decide(&admin, "clone3", no_args), ALLOW);
    assert_eq!(decide(&docker, "reboot", no_args), DENY);
    assert_eq!(decide(&boot, "reboot", no_args), ALLOW);
    assert_eq!(decide(&module, "finit_module", no_args), ALLOW);
    assert_eq!(decide(&time, "clock_settime", no_args), ALLOW);
    assert_eq!(decide(&docker, "clock_settime", no_args), DENY);
    assert_eq!(decide(&nice, "mbind", no_args), ALLOW);
    assert_eq!(
        decide(&docker, "chroot", no_args),
        ALLOW,
        "CAP_SYS_CHROOT is a default capability"
    );
    assert_eq!(decide(&nothing, "chroot", no_args), DENY);
    assert_eq!(decide(&docker, "ptrace", no_args), ALLOW, "kernel >= 4.8");
    assert_eq!(
        decide(&docker, "process_madvise", no_args),
        DENY,
        "CAP_SYS_PTRACE only"
    );
    for family in [
        libc::AF_UNIX,
        libc::AF_INET,
        libc::AF_INET6,
        libc::AF_NETLINK,
        libc::AF_PACKET,
        39,
        45,
    ] {
        assert_eq!(
            decide(&docker, "socket", [family as u64, 0, 0, 0, 0, 0]),
            ALLOW,
            "family {family}"
        );
    }
    // AF_UNSPEC (0) passes the first range, as in Docker: no socket can be created with it.
    for family in [12, 38, 40, 46, 1000, 1 << 32 | 1] {
        assert_eq!(
            decide(&docker, "socket", [family, 0, 0, 0, 0, 0]),
            DENY,
            "family {family}"
        );
    }
    for persona in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(
            decide(&docker, "personality", [persona, 0, 0, 0, 0, 0]),
            ALLOW
        );
    }
    assert_eq!(
        decide(&docker, "personality", [0x1_0000_0000, 0, 0, 0, 0, 0]),
        DENY,
        "64 bits compared"
    );
    if arch == Arch::X86_64 {
        assert_eq!(decide(&docker, "arch_prctl", no_args), ALLOW);
        assert_eq!(decide(&docker, "modify_ldt", no_args), ALLOW);
        assert_eq!(decide(&docker, "iopl", no_args), DENY);
    }
    let x32_read = 0x4000_0000;
    assert_eq!(
        run(&docker, arch.audit_arch(), x32_read, no_args) == libc::SECCOMP_RET_KILL_PROCESS,
        arch == Arch::X86_64
    );
}

fn temp_profile(tag: &str, text: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("cleat-seccomp-{tag}-{}.json", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn describe(errno: i32) -> String {
    if errno == 0 {
        "success".into()
    } else {
        std::io::Error::from_raw_os_error(errno).to_string()
    }
}
