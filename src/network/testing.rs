//! Test helpers for the kernel side of networking: each test runs in a child process with
//! network namespaces of its own, never in the machine's.

use std::os::fd::OwnedFd;
use std::panic::UnwindSafe;

/// Whether the tests that need the kernel can run (root, and `nft` when `nft` is asked).
pub fn can_run(nft: bool) -> bool {
    let ok = rustix::process::geteuid().is_root()
        && (!nft || std::process::Command::new("nft").arg("-v").output().is_ok());
    if !ok {
        eprintln!("skipped: needs root{}", if nft { " and nft" } else { "" });
    }
    ok
}

/// Moves the calling thread into a new network namespace.
pub fn unshare_net() {
    // SAFETY: CLONE_NEWNET changes only the calling thread's network namespace; no memory is
    // touched.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare(CLONE_NEWNET)");
}

/// A new network namespace, held by a descriptor (made on a thread that then ends).
pub fn new_netns() -> OwnedFd {
    std::thread::spawn(|| {
        unshare_net();
        rustix::fs::open(
            "/proc/thread-self/ns/net",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .expect("opening the namespace")
    })
    .join()
    .expect("namespace thread")
}

/// Runs `body` in a child process moved into a network namespace of its own, and fails if it
/// panics there (its message is printed with `--nocapture`).
pub fn in_own_network_namespace(body: impl FnOnce() + UnwindSafe) {
    // SAFETY: the child only runs the test body and exits.
    match unsafe { libc::fork() } {
        0 => {
            let ok = std::panic::catch_unwind(|| {
                unshare_net();
                body();
            })
            .is_ok();
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "the test failed in its network namespace (status {status:#x}); run with --nocapture"
            );
        }
    }
}
