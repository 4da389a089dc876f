//! Starting the container's first process and handing it to systemd (DESIGN decision 4).
//!
//! cleat runs as the unit's `ExecStart=` process of a `Type=notify` service. It clones the
//! container's first process into new namespaces *as a sibling* (`CLONE_PARENT`, so its parent
//! is systemd, which therefore reaps it and sees its exit status), waits until the child has
//! built the root file system and found the program, tells systemd `MAINPID=<child>` (and
//! `READY=1`, unless the payload reports readiness itself), waits on a notification barrier
//! until systemd has taken that in, and only then lets the child exec the payload. Had the
//! payload been allowed to run first, a fast exit could be reaped before systemd knew whose
//! exit it was, or arrive before `READY=1` and turn a run into a failed start. cleat then
//! waits for the exec to happen (the close-on-exec socket reports it) and exits: no cleat
//! process stays behind.
//!
//! Outside systemd (no `$NOTIFY_SOCKET`) the child is an ordinary child and cleat waits for it
//! and returns its exit code, which is useful for debugging a definition by hand.

use std::io;

use sd_notify::NotifyState;

use crate::rootfs::RootfsPlan;
use crate::spec::Notify;
use crate::sys::{self, CloneFlags, Forked};

use super::child;
use super::notify;
use super::process::ProcessPlan;
use super::sync::{self, Message};

/// The namespaces every container gets; a network namespace too unless it shares another's
/// (the host's, or another container's: `join_network`).
pub fn namespaces(own_network: bool) -> CloneFlags {
    let always = CloneFlags::NEWNS.0
        | CloneFlags::NEWPID.0
        | CloneFlags::NEWUTS.0
        | CloneFlags::NEWIPC.0
        | CloneFlags::NEWCGROUP.0;
    CloneFlags(if own_network {
        always | CloneFlags::NEWNET.0
    } else {
        always
    })
}

/// What the payload may do: its capabilities, whether it may gain privileges, its system call
/// filter (compiled before the clone), its resource limits.
#[derive(Debug, Clone)]
pub struct Security {
    pub capabilities: caps::CapsHashSet,
    pub no_new_privileges: bool,
    pub seccomp: Option<seccompiler::BpfProgram>,
    pub limits: Vec<super::limits::Limit>,
}

/// What to start.
pub struct Launch<'a> {
    pub rootfs: &'a RootfsPlan,
    pub process: &'a ProcessPlan,
    pub namespaces: CloneFlags,
    pub notify: Notify,
    pub security: &'a Security,
    /// Run cleat's tiny init as PID 1, with the payload as its child.
    pub init: bool,
    /// Called with the first process's host PID once its namespaces exist and before its
    /// payload may run: connects its network namespace. An error abandons the start.
    pub connect_network: Option<&'a dyn Fn(i32) -> Result<(), String>>,
    /// Another container's network namespace (`container:NAME`), joined by the first process
    /// before anything else.
    pub join_network: Option<std::os::fd::BorrowedFd<'a>>,
    /// Run the payload on a terminal of the container's own, whose master side comes back in
    /// [`Outcome::HandedOver`].
    pub terminal: Option<Terminal<'a>>,
    /// A foreground run's output: the write ends of the pipes that become the payload's
    /// stdout and stderr (see [`super::console::Streams`]).
    pub output_pipes: Option<[std::os::fd::BorrowedFd<'a>; 2]>,
}

/// The container's terminal.
pub struct Terminal<'a> {
    /// A client already connected (`cleat run -it`), whose first frame may give the size.
    pub first_client: Option<std::os::fd::BorrowedFd<'a>>,
}

/// How it ended, from cleat's point of view.
#[derive(Debug)]
pub enum Outcome {
    /// systemd now supervises the container's first process (host PID) as the main process.
    /// `pidfd` refers to that process: opened while it was still waiting for the go-ahead, so
    /// it can neither have ended nor its PID been reused (systemd, its parent, reaps it).
    HandedOver {
        pid: i32,
        pidfd: std::os::fd::OwnedFd,
        /// The master side of the container's terminal (`terminal`).
        terminal: Option<std::os::fd::OwnedFd>,
    },
    /// Not under systemd: the container ran to completion with this exit code (128 + signal
    /// number if a signal ended it, as a shell reports it).
    Exited(i32),
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot create the container's first process: {0}")]
    Clone(#[source] io::Error),
    #[error("{0}")]
    Setup(String),
    #[error("{message}")]
    Exec { code: u8, message: String },
    #[error("lost contact with the container's first process: {0}")]
    Sync(#[source] io::Error),
    #[error("the container's first process died while setting up")]
    ChildDied,
    #[error("notifying systemd: {0}")]
    Notify(#[source] io::Error),
    #[error("waiting for the container: {0}")]
    Wait(#[source] io::Error),
}

/// Starts the container. Must be called from a single-threaded process.
pub fn launch(l: &Launch<'_>) -> Result<Outcome, LaunchError> {
    let supervised = notify::supervised();
    let (parent_end, child_end) = sync::pair().map_err(LaunchError::Sync)?;
    let flags = if supervised {
        l.namespaces | CloneFlags::PARENT
    } else {
        l.namespaces
    };
    match sys::clone_process(flags).map_err(LaunchError::Clone)? {
        Forked::Child => {
            drop(parent_end);
            child::run(child_end, l)
        }
        Forked::Parent(pid) => {
            drop(child_end);
            parent(parent_end, pid, supervised, l)
        }
    }
}

fn parent(
    sock: std::os::fd::OwnedFd,
    pid: i32,
    supervised: bool,
    l: &Launch<'_>,
) -> Result<Outcome, LaunchError> {
    let mode = l.notify;
    let (message, terminal) = sync::recv_with_fd(&sock).map_err(LaunchError::Sync)?;
    match message {
        Some(Message::Ready) => {}
        Some(Message::SetupFailed(msg)) => {
            reap_if_ours(pid, supervised);
            return Err(LaunchError::Setup(msg));
        }
        Some(Message::ExecFailed { code, message }) => {
            reap_if_ours(pid, supervised);
            return Err(LaunchError::Exec { code, message });
        }
        _ => {
            reap_if_ours(pid, supervised);
            return Err(LaunchError::ChildDied);
        }
    }
    if let Some(connect) = l.connect_network {
        if let Err(message) = connect(pid) {
            // Our end of the handshake goes: the first process exits without running the
            // payload.
            drop(sock);
            reap_if_ours(pid, supervised);
            return Err(LaunchError::Setup(message));
        }
    }
    let pidfd = if supervised {
        let process = rustix::process::Pid::from_raw(pid).ok_or(LaunchError::ChildDied)?;
        Some(
            rustix::process::pidfd_open(process, rustix::process::PidfdFlags::empty())
                .map_err(|e| LaunchError::Wait(e.into()))?,
        )
    } else {
        None
    };
    if supervised {
        let main_pid = u32::try_from(pid).map_err(|_| LaunchError::ChildDied)?;
        let states = match mode {
            Notify::Exec => vec![
                NotifyState::MainPid(main_pid),
                NotifyState::Ready,
                NotifyState::Status("Container running"),
            ],
            Notify::Container => vec![
                NotifyState::MainPid(main_pid),
                NotifyState::Status("Waiting for the container to report readiness"),
            ],
        };
        notify::send(&states).map_err(LaunchError::Notify)?;
        notify::barrier(notify::BARRIER_TIMEOUT).map_err(LaunchError::Notify)?;
    }
    sync::send(&sock, &Message::Go).map_err(LaunchError::Sync)?;
    match sync::recv(&sock).map_err(LaunchError::Sync)? {
        None => {}
        Some(Message::ExecFailed { code, message }) => {
            reap_if_ours(pid, supervised);
            return Err(LaunchError::Exec { code, message });
        }
        Some(_) => {
            reap_if_ours(pid, supervised);
            return Err(LaunchError::ChildDied);
        }
    }
    match pidfd {
        Some(pidfd) => Ok(Outcome::HandedOver {
            pid,
            pidfd,
            terminal,
        }),
        None => wait(pid).map(Outcome::Exited),
    }
}

/// Waits for our own child (the unsupervised case) and turns its status into an exit code.
fn wait(pid: i32) -> Result<i32, LaunchError> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or(LaunchError::ChildDied)?;
    sys::wait_exit_code(pid).map_err(LaunchError::Wait)
}

/// After a failure, collect the child if it is ours (unsupervised). Under systemd it is
/// systemd's child, and systemd reaps it.
fn reap_if_ours(pid: i32, supervised: bool) {
    if !supervised {
        let _ = wait(pid);
    }
}
