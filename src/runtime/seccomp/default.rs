//! Docker's default seccomp profile, as cleat data.
//!
//! The policy is Docker's, as moby's profiles repository has it in mid-2026 (the version that
//! allows `socket(2)` for a list of address families, without `AF_ALG` and `AF_VSOCK`): every
//! container may make the system calls of ordinary programs; calls that reach beyond the
//! container (kernel keyrings, modules, mounts, namespaces, clocks, reboot…) are refused with
//! `EPERM` unless the container holds the capability that makes them meaningful; a few calls
//! are allowed only for harmless argument values. Anything not listed fails with `EPERM`, and
//! system calls newer than the newest one listed with `ENOSYS` (see [`super::plan`]), as under
//! Docker.
//!
//! The lists are grouped by purpose rather than alphabetically, so a reader can see what a
//! container gets. Like Docker's profile, they name the calls of every architecture Docker
//! supports; the ones the running architecture lacks are skipped.

use std::borrow::Cow;

use caps::Capability::{self, *};
use seccompiler::{SeccompAction, SeccompCmpOp};

use super::profile::{ArgCheck, KernelVersion, Profile, Rule, Scope};

/// What every container may call, by purpose.
#[rustfmt::skip]
const EVERY_CONTAINER: &[(&str, &[&str])] = &[
    ("files and directories", &[
        "access", "chdir", "chmod", "chown", "chown32", "creat", "faccessat", "faccessat2",
        "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fstat",
        "fstat64", "fstatat64", "fstatfs", "fstatfs64", "futimesat", "getcwd", "getdents",
        "getdents64", "lchown", "lchown32", "link", "linkat", "lstat", "lstat64", "mkdir",
        "mkdirat", "mknod", "mknodat", "name_to_handle_at", "newfstatat", "open", "openat",
        "openat2", "readlink", "readlinkat", "rename", "renameat", "renameat2", "rmdir", "stat",
        "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "truncate", "truncate64",
        "ftruncate", "ftruncate64", "umask", "unlink", "unlinkat", "utime", "utimensat",
        "utimensat_time64", "utimes",
    ]),
    ("extended attributes", &[
        "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "getxattrat",
        "lgetxattr", "listxattr", "listxattrat", "llistxattr", "lremovexattr", "lsetxattr",
        "removexattr", "removexattrat", "setxattr", "setxattrat",
    ]),
    ("reading and writing", &[
        "cachestat", "close", "close_range", "copy_file_range", "dup", "dup2", "dup3", "fadvise64",
        "fadvise64_64", "fallocate", "fcntl", "fcntl64", "fdatasync", "flock", "fsync", "ioctl",
        "_llseek", "lseek", "pipe", "pipe2", "pread64", "preadv", "preadv2", "pwrite64", "pwritev",
        "pwritev2", "read", "readahead", "readv", "sendfile", "sendfile64", "splice", "sync",
        "sync_file_range", "syncfs", "tee", "vmsplice", "write", "writev",
    ]),
    // Not io_uring: its requests bypass this filter (Docker removed it in version 25).
    ("asynchronous I/O", &[
        "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
        "io_setup", "io_submit",
    ]),
    ("waiting for events", &[
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
        "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "fanotify_mark",
        "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "_newselect",
        "poll", "ppoll", "ppoll_time64", "pselect6", "pselect6_time64", "select", "signalfd",
        "signalfd4", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
        "timerfd_settime64",
    ]),
    ("memory", &[
        "brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret",
        "mincore", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "mseal",
        "msync", "munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect",
        "remap_file_pages",
    ]),
    ("processes and threads", &[
        "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "futex",
        "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake",
        "get_robust_list", "get_thread_area", "getpgid", "getpgrp", "getpid", "getppid", "getsid",
        "gettid", "kill", "pidfd_open", "pidfd_send_signal", "prctl", "process_mrelease",
        "restart_syscall", "rseq", "set_robust_list", "set_thread_area", "set_tid_address",
        "setpgid", "setsid", "tgkill", "tkill", "uretprobe", "vfork", "wait4", "waitid", "waitpid",
    ]),
    ("user and group identity", &[
        "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
        "getgroups32", "getresgid", "getresgid32", "getresuid", "getresuid32", "getuid", "getuid32",
        "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
        "setgroups32", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
        "setresuid32", "setreuid", "setreuid32", "setuid", "setuid32",
    ]),
    ("signals", &[
        "alarm", "pause", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
        "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo", "sigaltstack", "sigprocmask", "sigreturn",
    ]),
    ("scheduling and resource limits", &[
        "getcpu", "getpriority", "getrlimit", "getrusage", "ioprio_get", "ioprio_set", "prlimit64",
        "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr",
        "sched_getparam", "sched_getscheduler", "sched_rr_get_interval",
        "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam",
        "sched_setscheduler", "sched_yield", "setpriority", "setrlimit", "times", "ugetrlimit",
    ]),
    // Setting the clocks needs CAP_SYS_TIME (below); adjtimex and clock_adjtime only read
    // them without it.
    ("time and timers", &[
        "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
        "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
        "getitimer", "gettimeofday", "nanosleep", "setitimer", "time", "timer_create",
        "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
        "timer_settime64",
    ]),
    ("System V and POSIX IPC", &[
        "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
        "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
        "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt",
        "shmget",
    ]),
    // socket(2) itself is allowed per address family, below.
    ("sockets", &[
        "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
        "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg",
        "sendmsg", "sendto", "setsockopt", "shutdown", "socketcall", "socketpair",
    ]),
    ("information and sandboxing", &[
        "getrandom", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
        "listmount", "riscv_hwprobe", "seccomp", "statmount", "sysinfo", "uname",
    ]),
];

/// Calls that are allowed only with a capability, the one that makes them meaningful. In
/// Docker's order; a call may be in several groups.
#[rustfmt::skip]
const WITH_CAPABILITY: &[(Capability, &[&str])] = &[
    (CAP_DAC_READ_SEARCH, &["open_by_handle_at"]),
    (CAP_SYS_ADMIN, &[
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr",
        "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl",
        "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2",
        "unshare",
    ]),
    (CAP_SYS_BOOT, &["reboot"]),
    (CAP_SYS_CHROOT, &["chroot"]),
    (CAP_SYS_MODULE, &["delete_module", "init_module", "finit_module"]),
    (CAP_SYS_PACCT, &["acct"]),
    (CAP_SYS_PTRACE, &[
        "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
        "ptrace",
    ]),
    (CAP_SYS_RAWIO, &["iopl", "ioperm"]),
    (CAP_SYS_TIME, &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    (CAP_SYS_TTY_CONFIG, &["vhangup"]),
    (CAP_SYS_NICE, &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    (CAP_SYSLOG, &["syslog"]),
    (CAP_BPF, &["bpf"]),
    (CAP_PERFMON, &["perf_event_open"]),
];

/// Calls specific to some architectures (by Docker's names), allowed there.
#[rustfmt::skip]
const ON_ARCHITECTURE: &[(&[&str], &[&str])] = &[
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (&["arm", "arm64"], &[
        "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
        "cacheflush", "set_tls",
    ]),
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (&["s390", "s390x"], &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"]),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// Tracing other processes is safe from kernel 4.8 on (before, ptrace could bypass seccomp);
/// without CAP_SYS_PTRACE it reaches only the container's own processes of the same user.
const TRACING: &[&str] = &["process_vm_readv", "process_vm_writev", "ptrace"];
const TRACING_SAFE_SINCE: KernelVersion = KernelVersion { major: 4, minor: 8 };

// Address families libc does not define for every Linux target (`linux/socket.h`).
const AF_KCM: i32 = 41;
const AF_QIPCRTR: i32 = 42;
const AF_SMC: i32 = 43;
const AF_MCTP: i32 = 45;

/// The address families `socket(2)` may create. Left out: families the kernel removed
/// (DECnet, Econet, ATM SVC, IrDA, WAN pipe, ISDN, CAIF), `AF_ALG` (the kernel's crypto API,
/// CVE-2026-31431) and `AF_VSOCK` (host/guest sockets, global across network namespaces).
#[rustfmt::skip]
const SOCKET_FAMILIES: &[i32] = &[
    libc::AF_UNIX, libc::AF_INET, libc::AF_AX25, libc::AF_IPX, libc::AF_APPLETALK, libc::AF_NETROM,
    libc::AF_BRIDGE, libc::AF_ATMPVC, libc::AF_X25, libc::AF_INET6, libc::AF_ROSE, libc::AF_NETBEUI,
    libc::AF_SECURITY, libc::AF_KEY, libc::AF_NETLINK, libc::AF_PACKET, libc::AF_ASH, libc::AF_RDS,
    libc::AF_SNA, libc::AF_PPPOX, libc::AF_LLC, libc::AF_IB, libc::AF_MPLS, libc::AF_CAN,
    libc::AF_TIPC, libc::AF_BLUETOOTH, libc::AF_IUCV, libc::AF_RXRPC, libc::AF_PHONET,
    libc::AF_IEEE802154, libc::AF_NFC, AF_KCM, AF_QIPCRTR, AF_SMC, libc::AF_XDP, AF_MCTP,
];

/// The personas `personality(2)` may select: Linux, 32-bit Linux, the 2.6 uname variants of
/// both, and `0xffffffff`, which only queries the current persona.
const PERSONAS: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// `clone(2)` flags that create namespaces: without CAP_SYS_ADMIN, clone may not use them.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

const EPERM: SeccompAction = SeccompAction::Errno(libc::EPERM as u32);
const ENOSYS: SeccompAction = SeccompAction::Errno(libc::ENOSYS as u32);

/// Docker's default profile.
pub fn profile() -> Profile {
    let mut rules: Vec<Rule> = EVERY_CONTAINER
        .iter()
        .map(|(_, names)| allow(names))
        .collect();
    rules.push(Rule {
        includes: since_kernel(TRACING_SAFE_SINCE),
        ..allow(TRACING)
    });
    rules.extend(socket_rules());
    rules.extend(
        PERSONAS
            .iter()
            .map(|&persona| allow_if(&["personality"], 0, SeccompCmpOp::Eq, persona)),
    );
    rules.extend(ON_ARCHITECTURE.iter().map(|(arches, names)| Rule {
        includes: on(arches),
        ..allow(names)
    }));
    rules.extend(WITH_CAPABILITY.iter().map(|&(cap, names)| Rule {
        includes: holding(cap),
        ..allow(names)
    }));
    rules.extend(without_sys_admin());
    Profile {
        default_action: EPERM,
        rules,
    }
}

/// `socket(2)` for [`SOCKET_FAMILIES`]: one range for the families numbered from `AF_UNIX`
/// up without a gap (the comparison of the first rule), then one rule per other family. A
/// family outside the list, including any family added to the kernel later, is refused.
fn socket_rules() -> Vec<Rule> {
    let mut families: Vec<u64> = SOCKET_FAMILIES.iter().map(|&f| f as u64).collect();
    families.sort_unstable();
    let run = families
        .iter()
        .zip(libc::AF_UNIX as u64..)
        .take_while(|(f, n)| *f == n)
        .count();
    let mut rules = Vec::new();
    if run > 1 {
        rules.push(allow_if(
            &["socket"],
            0,
            SeccompCmpOp::Lt,
            families[run - 1] + 1,
        ));
    }
    let singles = if run > 1 {
        &families[run..]
    } else {
        &families[..]
    };
    rules.extend(
        singles
            .iter()
            .map(|&family| allow_if(&["socket"], 0, SeccompCmpOp::Eq, family)),
    );
    rules
}

/// Without CAP_SYS_ADMIN: `clone` without namespace flags (the flags are the second argument
/// on s390), and `clone3` fails with `ENOSYS`, since seccomp cannot see its flags (they are
/// in memory), so that the C library falls back to `clone`.
fn without_sys_admin() -> [Rule; 3] {
    let unless_admin = |arches: &[&'static str]| Scope {
        caps: vec![CAP_SYS_ADMIN],
        ..on(arches)
    };
    let no_namespaces = |index| ArgCheck {
        index,
        op: SeccompCmpOp::MaskedEq(NAMESPACE_FLAGS),
        value: 0,
    };
    [
        Rule {
            args: vec![no_namespaces(0)],
            excludes: unless_admin(&["s390", "s390x"]),
            ..allow(&["clone"])
        },
        Rule {
            args: vec![no_namespaces(1)],
            includes: on(&["s390", "s390x"]),
            excludes: unless_admin(&[]),
            ..allow(&["clone"])
        },
        Rule {
            action: ENOSYS,
            excludes: unless_admin(&[]),
            ..allow(&["clone3"])
        },
    ]
}

fn allow(names: &[&'static str]) -> Rule {
    Rule {
        names: names.iter().map(|&name| Cow::Borrowed(name)).collect(),
        action: SeccompAction::Allow,
        args: Vec::new(),
        includes: Scope::default(),
        excludes: Scope::default(),
    }
}

fn allow_if(names: &[&'static str], index: u8, op: SeccompCmpOp, value: u64) -> Rule {
    Rule {
        args: vec![ArgCheck { index, op, value }],
        ..allow(names)
    }
}

fn holding(cap: Capability) -> Scope {
    Scope {
        caps: vec![cap],
        ..Scope::default()
    }
}

fn on(arches: &[&'static str]) -> Scope {
    Scope {
        arches: arches.iter().map(|&arch| Cow::Borrowed(arch)).collect(),
        ..Scope::default()
    }
}

fn since_kernel(version: KernelVersion) -> Scope {
    Scope {
        min_kernel: Some(version),
        ..Scope::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::syscalls;
    use super::*;

    #[test]
    fn every_name_is_a_system_call() {
        for rule in profile().rules {
            for name in &rule.names {
                assert!(syscalls::exists_anywhere(name), "{name}");
            }
        }
    }

    #[test]
    fn the_allow_list_has_no_duplicates() {
        let names: Vec<&str> = EVERY_CONTAINER
            .iter()
            .flat_map(|(_, names)| names.iter().copied())
            .collect();
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), unique.len());
        assert_eq!(names.len(), 361, "Docker's list");
        for blocked in [
            "keyctl",
            "add_key",
            "request_key",
            "mount",
            "umount2",
            "reboot",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "ptrace",
            "unshare",
            "setns",
            "clone",
            "clone3",
            "personality",
            "socket",
            "io_uring_setup",
            "io_uring_enter",
            "userfaultfd",
            "swapon",
            "pivot_root",
            "open_by_handle_at",
            "bpf",
            "perf_event_open",
        ] {
            assert!(!unique.contains(blocked), "{blocked}");
        }
    }

    #[test]
    fn socket_families() {
        let rules = socket_rules();
        assert_eq!(
            rules[0].args,
            [ArgCheck {
                index: 0,
                op: SeccompCmpOp::Lt,
                value: 12
            }],
            "AF_UNIX to AF_ROSE"
        );
        let singles: Vec<u64> = rules[1..].iter().map(|r| r.args[0].value).collect();
        assert_eq!(
            singles,
            [
                13, 14, 15, 16, 17, 18, 21, 22, 24, 26, 27, 28, 29, 30, 31, 32, 33, 35, 36, 39, 41,
                42, 43, 44, 45
            ]
        );
        assert!(rules[1..].iter().all(|r| r.args[0].op == SeccompCmpOp::Eq));
    }

    #[test]
    fn clone_mask_is_dockers() {
        assert_eq!(NAMESPACE_FLAGS, 2_114_060_288);
    }
}
