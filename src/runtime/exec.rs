//! `cleat exec`: another process in a running container, under the same restrictions as the
//! container's own.
//!
//! What such a process needs to know about its container (environment, working directory,
//! identity, capabilities, seccomp setting, no_new_privs, resource limits) is a [`Snapshot`]
//! that `cleat internal start` writes into the container's state directory once the
//! container's payload runs (not before: until its exec, the first process runs cleat's
//! binary, and nothing of the container may be beside it). exec reads that, never the
//! definition, which may have been edited since.
//!
//! How the process gets in ([`spawn`], then [`Helper::go`]): cleat (running from a sealed
//! copy of its binary, see [`crate::sealed`]), a child subreaper, forks a helper that marks
//! itself non-dumpable, takes the process's standard descriptors, and waits until cleat has asked systemd to move it
//! into the unit's control group. The helper then joins the namespaces of the container's main
//! process through a pidfd (`setns`), takes its root (the main process's `/proc/PID/root`,
//! opened on the host side beforehand, as `nsenter -r` does), and forks the process itself:
//! only a child enters the container's PID namespace, and it inherits the control group. The
//! helper exits at once, so the process becomes cleat's child (cleat waits for it and passes
//! signals on) and no cleat code stays in the container. The process takes on the container's
//! resource limits, identity and restrictions (the very `restrict` of the container's first
//! process), and execs; its exec makes it dumpable again.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use caps::{Capability, CapsHashSet};
use rustix::fs::{Mode, OFlags};
use rustix::net::{RecvFlags, SendFlags};
use rustix::process::{Pid, Resource, Rlimit};
use serde::{Deserialize, Serialize};

use crate::spec::Seccomp;
use crate::sys::{self, Forked};

use super::child::{self, EXIT_CANNOT_INVOKE};
use super::launch::Security;
use super::limits::{self, Limit};
use super::process::{DEFAULT_PATH, ProcessPlan};
use super::seccomp::SeccompError;
use super::user::{self, Ids, UserDb, UserError};

/// The snapshot's file in the container's state directory.
pub const SNAPSHOT_FILE: &str = "exec.json";

/// What a process started by `cleat exec` inherits from its container's start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Snapshot {
    /// systemd's invocation ID of the start that wrote it (`$INVOCATION_ID`), to tell it from
    /// an earlier start's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    /// `KEY=value`, as the container's process got it.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
    /// `group-add`: applied to another user (`exec -u`) too, as Docker does.
    #[serde(default)]
    pub group_add: Vec<String>,
    /// Canonical names (`CAP_CHOWN`).
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    /// The setting, compiled again at every exec (the same capabilities give the same filter).
    pub seccomp: Seccomp,
    /// Every resource limit the container's process started with: the unit's (which cleat's
    /// start process has) under the container's own `ulimits`.
    pub rlimits: Vec<SavedLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLimit {
    pub name: String,
    /// `None`: unlimited.
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// The environment variable of the payload's notification socket: the payload's channel to
/// systemd (through cleat's relay), not something a process started by exec should inherit.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

impl Snapshot {
    /// The snapshot of a container about to be launched with `process` and `security`.
    /// `current` gives this process's limits (those the container inherits where it sets
    /// none).
    pub fn new(
        process: &ProcessPlan,
        security: &Security,
        seccomp: Seccomp,
        group_add: Vec<String>,
        invocation_id: Option<String>,
        current: impl Fn(Resource) -> Rlimit,
    ) -> Snapshot {
        let rlimits = limits::RESOURCES
            .iter()
            .map(|&(name, resource)| {
                let (soft, hard) = match security.limits.iter().find(|l| l.name == name) {
                    Some(l) => (l.soft, l.hard),
                    None => {
                        let now = current(resource);
                        (now.current, now.maximum)
                    }
                };
                SavedLimit {
                    name: name.to_owned(),
                    soft,
                    hard,
                }
            })
            .collect();
        Snapshot {
            invocation_id,
            env: process
                .env
                .iter()
                .filter(|kv| kv.split('=').next() != Some(NOTIFY_SOCKET))
                .cloned()
                .collect(),
            cwd: process.cwd.clone(),
            uid: process.ids.uid,
            gid: process.ids.gid,
            groups: process.ids.groups.clone(),
            home: process.ids.home.clone(),
            group_add,
            capabilities: super::caps::names(&security.capabilities),
            no_new_privileges: security.no_new_privileges,
            seccomp,
            rlimits,
        }
    }

    /// Writes it as `dir/exec.json`, atomically (a temporary file, private to root, renamed).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        self.stage(dir)?.publish()
    }

    /// Writes it under a temporary name in `dir` (private to root), for
    /// [`StagedSnapshot::publish`] to put in place later with a mere rename. Dropped
    /// unpublished, the file goes.
    pub fn stage(&self, dir: &Path) -> io::Result<StagedSnapshot> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        let tmp = dir.join(format!(".{SNAPSHOT_FILE}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let staged = StagedSnapshot {
            tmp,
            path: dir.join(SNAPSHOT_FILE),
        };
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staged.tmp)
            .and_then(|mut f| f.write_all(&json))?;
        Ok(staged)
    }

    /// Reads `dir/exec.json`; `Ok(None)` if there is none.
    pub fn read(dir: &Path) -> io::Result<Option<Snapshot>> {
        let path = dir.join(SNAPSHOT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }

    /// Removes `dir/exec.json` (so that a start that could not write its own leaves none of an
    /// earlier start's).
    pub fn remove(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(SNAPSHOT_FILE));
    }

    fn ids(&self) -> Ids {
        Ids {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
            home: self.home.clone(),
        }
    }

    /// The container's restrictions, with its seccomp filter compiled again.
    fn security(&self) -> Result<Security, PlanError> {
        let capabilities = self
            .capabilities
            .iter()
            .map(|name| {
                name.parse::<Capability>()
                    .map_err(|_| PlanError::Snapshot(format!("unknown capability {name:?}")))
            })
            .collect::<Result<CapsHashSet, _>>()?;
        let limits = self
            .rlimits
            .iter()
            .map(|saved| {
                let &(name, resource) = limits::RESOURCES
                    .iter()
                    .find(|(n, _)| *n == saved.name)
                    .ok_or_else(|| {
                        PlanError::Snapshot(format!("unknown resource limit {:?}", saved.name))
                    })?;
                Ok(Limit {
                    name,
                    resource,
                    soft: saved.soft,
                    hard: saved.hard,
                })
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        let seccomp = super::seccomp::compile(&self.seccomp, &capabilities)?;
        Ok(Security {
            capabilities,
            no_new_privileges: self.no_new_privileges,
            seccomp,
            limits,
        })
    }
}

/// A snapshot written under a temporary name (see [`Snapshot::stage`]).
#[derive(Debug)]
pub struct StagedSnapshot {
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl StagedSnapshot {
    /// Puts it in place (`dir/exec.json`), atomically.
    pub fn publish(self) -> io::Result<()> {
        std::fs::rename(&self.tmp, &self.path)
        // On failure, dropping it removes the temporary file.
    }
}

impl Drop for StagedSnapshot {
    fn drop(&mut self) {
        // Nothing left once published (renamed away).
        let _ = std::fs::remove_file(&self.tmp);
    }
}

// ---------------------------------------------------------------------------------------------
// Planning (pure)

/// What the user asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub argv: Vec<String>,
    /// `-u USER[:GROUP]`, resolved in the container's user database.
    pub user: Option<String>,
    /// `-w DIR`; default: the container's working directory.
    pub workdir: Option<String>,
    /// `--env-file` contents (in order), then `-e`: a later one wins.
    pub env: Vec<(String, String)>,
    /// `-t`: a terminal, and `TERM=xterm` unless something sets TERM.
    pub tty: bool,
}

/// The process to start.
#[derive(Debug, Clone)]
pub struct Plan {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub ids: Ids,
    pub security: Security,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    User(#[from] UserError),
    #[error("working directory {0:?} must be an absolute path")]
    RelativeWorkdir(String),
    #[error("no command given")]
    NoCommand,
    #[error("the container's recorded settings cannot be used: {0}")]
    Snapshot(String),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
}

/// Plans the process from the container's snapshot, the request and the container's user
/// database (read inside its root).
pub fn plan(snapshot: &Snapshot, request: &Request, users: &UserDb) -> Result<Plan, PlanError> {
    if request.argv.is_empty() {
        return Err(PlanError::NoCommand);
    }
    let cwd = request
        .workdir
        .clone()
        .unwrap_or_else(|| snapshot.cwd.clone());
    if !cwd.starts_with('/') {
        return Err(PlanError::RelativeWorkdir(cwd));
    }
    let ids = match &request.user {
        Some(spec) => {
            let mut ids = user::resolve(spec, users)?;
            for gid in user::extra_groups(&snapshot.group_add, users)? {
                if !ids.groups.contains(&gid) {
                    ids.groups.push(gid);
                }
            }
            ids
        }
        None => snapshot.ids(),
    };
    // HOME follows the user, unless the container set it to something else than its own
    // user's home.
    let home = request
        .user
        .as_ref()
        .map(|_| (snapshot.home.as_str(), ids.home.as_str()));
    let env = environment(&snapshot.env, &request.env, request.tty, home);
    Ok(Plan {
        argv: request.argv.clone(),
        env,
        cwd,
        ids,
        security: snapshot.security()?,
    })
}

/// The container's environment, with `extra` set over it (a later value wins), HOME moved from
/// `home.0` to `home.1` if it was the former, and with a terminal `TERM=xterm` unless set (as
/// Docker). The container's order is kept; new variables come after it.
pub fn environment(
    base: &[String],
    extra: &[(String, String)],
    tty: bool,
    home: Option<(&str, &str)>,
) -> Vec<String> {
    let mut vars: Vec<(String, String)> = base
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    if let Some((old, new)) = home {
        for (k, v) in &mut vars {
            if k == "HOME" && v == old {
                *v = new.to_owned();
            }
        }
    }
    for (k, v) in extra {
        match vars.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => vars.push((k.clone(), v.clone())),
        }
    }
    if tty && !vars.iter().any(|(k, _)| k == "TERM") {
        vars.push(("TERM".into(), "xterm".into()));
    }
    vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

// ---------------------------------------------------------------------------------------------
// The container's main process

/// The container's main process, held by a pidfd, and its root.
#[derive(Debug)]
pub struct Target {
    pid: i32,
    pidfd: OwnedFd,
    root: OwnedFd,
}

impl Target {
    /// Opens the process `pid` (a host PID, the unit's MainPID). `Ok(None)` if it is gone or
    /// is not in a PID namespace of its own: not a container's process (yet), for example
    /// cleat's start process before it handed the container over.
    pub fn open(pid: i32) -> io::Result<Option<Target>> {
        let Some(process) = Pid::from_raw(pid) else {
            return Ok(None);
        };
        let pidfd = match rustix::process::pidfd_open(process, rustix::process::PidfdFlags::empty())
        {
            Ok(fd) => fd,
            Err(rustix::io::Errno::SRCH) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let gone = |e: rustix::io::Errno| -> io::Result<Option<Target>> {
            match e {
                rustix::io::Errno::NOENT | rustix::io::Errno::SRCH => Ok(None),
                e => Err(e.into()),
            }
        };
        let root = match rustix::fs::open(
            format!("/proc/{pid}/root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => return gone(e),
        };
        let ours = rustix::fs::stat("/proc/self/ns/pid")?;
        let theirs = match rustix::fs::stat(format!("/proc/{pid}/ns/pid")) {
            Ok(s) => s,
            Err(e) => return gone(e),
        };
        let target = Target { pid, pidfd, root };
        // Both were opened under the PID: still the process the pidfd holds (had it ended,
        // the PID could have been another's by then)?
        if target.has_exited() {
            return Ok(None);
        }
        if (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino) {
            return Ok(None);
        }
        Ok(Some(target))
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The container's root directory (an `O_PATH` descriptor).
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Whether the process has ended (its pidfd is readable).
    pub fn has_exited(&self) -> bool {
        let mut fds = [rustix::event::PollFd::new(
            &self.pidfd,
            rustix::event::PollFlags::IN,
        )];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
    }

    /// The container's /etc/passwd and /etc/group, read inside its root (either may be
    /// missing).
    pub fn users(&self) -> io::Result<UserDb> {
        const LIMIT: u64 = 16 << 20;
        UserDb::read_with(|path| crate::rootfs::resolve::read_file(self.root(), path, LIMIT))
            .map_err(|(path, e)| io::Error::new(e.kind(), format!("reading {path}: {e}")))
    }
}

// ---------------------------------------------------------------------------------------------
// Starting the process

/// The process's standard input, output and error.
#[derive(Debug, Clone, Copy)]
pub enum Stdio<'a> {
    /// These three descriptors, as they are. Never a terminal of the caller's: a process left
    /// behind in the container would keep it, and read what is typed at it later (the caller
    /// gives pipes instead, and copies).
    Plain {
        stdin: BorrowedFd<'a>,
        stdout: BorrowedFd<'a>,
        stderr: BorrowedFd<'a>,
    },
    /// The slave side of a pseudo-terminal of the container's, as the process's controlling
    /// terminal.
    Terminal(BorrowedFd<'a>),
}

impl Stdio<'_> {
    fn fds(&self) -> [BorrowedFd<'_>; 3] {
        match *self {
            Stdio::Plain {
                stdin,
                stdout,
                stderr,
            } => [stdin, stdout, stderr],
            Stdio::Terminal(slave) => [slave, slave, slave],
        }
    }
}

/// Makes `fds` this process's standard input, output and error, whatever their numbers (any
/// of them may be 0, 1 or 2 already).
fn redirect(fds: [BorrowedFd<'_>; 3]) -> io::Result<()> {
    // Out of the way of 0 to 2 first (new descriptors, close-on-exec), then into place (which
    // clears close-on-exec).
    let high = fds
        .iter()
        .map(|fd| rustix::io::fcntl_dupfd_cloexec(fd, 3))
        .collect::<Result<Vec<_>, _>>()?;
    rustix::stdio::dup2_stdin(&high[0])?;
    rustix::stdio::dup2_stdout(&high[1])?;
    rustix::stdio::dup2_stderr(&high[2])?;
    Ok(())
}

/// Why the process did not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// It could not be set up (exit 126, as Docker's "OCI runtime exec failed").
    #[error("{0}")]
    Setup(String),
    /// The command cannot be run: 126, or 127 when it was not found.
    #[error("{message}")]
    Exec { code: u8, message: String },
    #[error("lost contact with the process starting in the container: {0}")]
    Lost(#[source] io::Error),
}

impl ExecError {
    /// Docker's exit status for it.
    pub fn exit_code(&self) -> u8 {
        match self {
            ExecError::Setup(_) => EXIT_CANNOT_INVOKE,
            ExecError::Exec { code, .. } => *code,
            ExecError::Lost(_) => EXIT_CANNOT_INVOKE,
        }
    }
}

/// What the helper and the process tell cleat, and cleat the helper (over a `SOCK_SEQPACKET`
/// pair, close-on-exec: a successful exec shows as end-of-file).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Report {
    /// cleat → helper: systemd has it in the unit's control group; enter.
    Go,
    /// helper → cleat: the process started, with this (host) PID.
    Started(i32),
    /// helper → cleat: entering the container failed.
    Failed(String),
    /// process → cleat: it cannot run the command; it exits with `code`.
    ExecFailed { code: u8, message: String },
}

impl Report {
    fn encode(&self) -> Vec<u8> {
        match self {
            Report::Go => b"G".to_vec(),
            Report::Started(pid) => [b"P".as_slice(), &pid.to_le_bytes()].concat(),
            Report::Failed(text) => [b"E".as_slice(), text.as_bytes()].concat(),
            Report::ExecFailed { code, message } => {
                [b"X".as_slice(), &[*code], message.as_bytes()].concat()
            }
        }
    }

    fn decode(buf: &[u8]) -> io::Result<Report> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match buf {
            [b'G'] => Ok(Report::Go),
            [b'P', a, b, c, d] => Ok(Report::Started(i32::from_le_bytes([*a, *b, *c, *d]))),
            [b'E', rest @ ..] => Ok(Report::Failed(text(rest))),
            [b'X', code, rest @ ..] => Ok(Report::ExecFailed {
                code: *code,
                message: text(rest),
            }),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "garbled message from the process starting in the container",
            )),
        }
    }
}

fn send(sock: &OwnedFd, report: &Report) -> io::Result<()> {
    rustix::net::send(sock, &report.encode(), SendFlags::NOSIGNAL)?;
    Ok(())
}

/// The next report, or `None` at end-of-file.
fn recv(sock: &OwnedFd) -> io::Result<Option<Report>> {
    let mut buf = [0u8; 4096];
    loop {
        match rustix::net::recv(sock, &mut buf, RecvFlags::empty()) {
            Ok((0, _)) => return Ok(None),
            Ok((n, _)) => return Report::decode(&buf[..n]).map(Some),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The plan in the form the process needs after the fork (allocated before it).
struct Prepared<'a> {
    argv: Vec<CString>,
    env: Vec<CString>,
    path: String,
    cwd: String,
    ids: &'a Ids,
    security: &'a Security,
}

fn cstrings(list: &[String], what: &str) -> io::Result<Vec<CString>> {
    list.iter()
        .map(|s| {
            CString::new(s.as_str()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{what} contains a NUL byte: {s:?}"),
                )
            })
        })
        .collect()
}

/// The helper, forked and waiting for [`Helper::go`].
#[derive(Debug)]
pub struct Helper {
    pid: i32,
    sock: OwnedFd,
}

/// Forks the helper that will start the process in `target`'s container. The calling process
/// must be single-threaded; it becomes a child subreaper (so that the process, the helper's
/// child, becomes its own when the helper exits).
pub fn spawn(target: &Target, plan: &Plan, stdio: Stdio<'_>) -> io::Result<Helper> {
    let threads = sys::thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "refusing to fork a process that has {threads} threads"
        )));
    }
    let prepared = Prepared {
        argv: cstrings(&plan.argv, "an argument")?,
        env: cstrings(&plan.env, "an environment variable")?,
        path: plan
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_owned(),
        cwd: plan.cwd.clone(),
        ids: &plan.ids,
        security: &plan.security,
    };
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    let (ours, theirs) = super::sync::pair()?;
    match sys::fork()? {
        Forked::Child => {
            drop(ours);
            helper(theirs, target, &prepared, stdio)
        }
        Forked::Parent(pid) => Ok(Helper { pid, sock: ours }),
    }
}

impl Helper {
    /// The helper's PID (to move into the unit's control group).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Lets the helper enter the container, and returns the running process once it has
    /// exec'd the command.
    pub fn go(self) -> Result<Process, ExecError> {
        let Helper { pid, sock } = self;
        if let Err(e) = send(&sock, &Report::Go) {
            kill_and_reap(pid);
            return Err(ExecError::Lost(e));
        }
        let started = recv(&sock);
        // It exits right after the fork (or after failing): reaped, its child is ours.
        let _ = wait(pid);
        let process = match started {
            Ok(Some(Report::Started(process))) => process,
            Ok(Some(Report::Failed(message))) => return Err(ExecError::Setup(message)),
            Ok(_) => {
                return Err(ExecError::Lost(io::Error::other(
                    "the helper ended without starting it",
                )));
            }
            Err(e) => return Err(ExecError::Lost(e)),
        };
        let pidfd = Pid::from_raw(process)
            .ok_or_else(|| ExecError::Lost(io::Error::other("bad PID")))
            .and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                    .map_err(|e| ExecError::Lost(e.into()))
            });
        let pidfd = match pidfd {
            Ok(fd) => fd,
            Err(e) => {
                kill_and_reap(process);
                return Err(e);
            }
        };
        let running = Process {
            pid: process,
            pidfd,
        };
        match recv(&sock) {
            Ok(None) => Ok(running),
            Ok(Some(Report::ExecFailed { code, message })) => {
                let _ = running.wait();
                Err(ExecError::Exec { code, message })
            }
            Ok(Some(_)) => {
                let _ = running.signal(libc::SIGKILL);
                let _ = running.wait();
                Err(ExecError::Lost(io::Error::other("unexpected message")))
            }
            Err(e) => {
                let _ = running.signal(libc::SIGKILL);
                let _ = running.wait();
                Err(ExecError::Lost(e))
            }
        }
    }

    /// Ends the helper before it entered the container.
    pub fn abandon(self) {
        kill_and_reap(self.pid);
    }
}

/// Our own child, not yet reaped: its PID cannot have been reused.
fn kill_and_reap(pid: i32) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        let _ = wait(pid);
    }
}

/// Waits for a child and returns its exit code (128 + the signal's number if a signal ended
/// it, as a shell reports it).
fn wait(pid: i32) -> io::Result<i32> {
    let process = Pid::from_raw(pid).ok_or_else(|| io::Error::other("bad PID"))?;
    sys::wait_exit_code(process)
}

/// The process, running the command in the container: cleat's child.
#[derive(Debug)]
pub struct Process {
    pid: i32,
    pidfd: OwnedFd,
}

impl Process {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Readable once the process has ended.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Sends it a signal (by number).
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        let sig = rustix::process::Signal::from_named_raw(sig)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unknown signal"))?;
        rustix::process::pidfd_send_signal(&self.pidfd, sig)?;
        Ok(())
    }

    /// Waits for it to end; its exit code (128 + signal if a signal ended it).
    pub fn wait(&self) -> io::Result<i32> {
        wait(self.pid)
    }
}

/// The helper: waits for the go-ahead, enters the container, forks the process and exits.
fn helper(sock: OwnedFd, target: &Target, p: &Prepared<'_>, stdio: Stdio<'_>) -> ! {
    let failed = |message: String| -> ! {
        let _ = send(&sock, &Report::Failed(message));
        sys::exit_now(i32::from(EXIT_CANNOT_INVOKE));
    };
    // Before it is anywhere near the container: this process runs the host's cleat binary,
    // which the container must not reach through /proc (CVE-2019-5736). Inherited by the fork;
    // the command's exec makes the process dumpable again.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        failed(format!("marking the process non-dumpable: {e}"));
    }
    match recv(&sock) {
        Ok(Some(Report::Go)) => {}
        // cleat gave up (or went away): do not enter.
        _ => sys::exit_now(i32::from(EXIT_CANNOT_INVOKE)),
    }
    // Before the fork: the process never holds cleat's own standard descriptors (the
    // caller's terminal, maybe), not even for the moment before its exec.
    if let Err(e) = redirect(stdio.fds()) {
        failed(format!("redirecting input and output: {e}"));
    }
    if let Err(e) = enter(target) {
        failed(e);
    }
    match sys::fork() {
        Ok(Forked::Child) => process(sock, p, stdio),
        Ok(Forked::Parent(pid)) => {
            let _ = send(&sock, &Report::Started(pid));
            sys::exit_now(0);
        }
        Err(e) => failed(format!("starting the process in the container: {e}")),
    }
}

/// Joins the container's namespaces and root.
fn enter(target: &Target) -> Result<(), String> {
    use rustix::thread::ThreadNameSpaceType as Ns;
    // Atomically, all those of the main process (the same as ours, for a namespace the
    // container shares with the host, changes nothing). The PID namespace applies to children.
    let all = Ns::MOUNT
        | Ns::PROCESS_ID
        | Ns::HOST_NAME_AND_NIS_DOMAIN_NAME
        | Ns::INTER_PROCESS_COMMUNICATION
        | Ns::NETWORK
        | Ns::CONTROL_GROUP;
    rustix::thread::move_into_thread_name_spaces(target.pidfd.as_fd(), all)
        .map_err(|e| format!("joining the container's namespaces: {e}"))?;
    // The mount namespace's root is not the container's root (it pivoted into it): take the
    // main process's, as `nsenter -r` does.
    rustix::process::fchdir(target.root())
        .and_then(|()| rustix::process::chroot("."))
        .map_err(|e| format!("entering the container's root: {e}"))?;
    Ok(())
}

/// The process, between the fork and the exec. Never returns.
fn process(sock: OwnedFd, p: &Prepared<'_>, stdio: Stdio<'_>) -> ! {
    let failed = |code: u8, message: String| -> ! {
        let _ = send(&sock, &Report::ExecFailed { code, message });
        sys::exit_now(i32::from(code));
    };
    // A session of its own: signals from cleat's terminal reach cleat, which passes them on.
    match stdio {
        Stdio::Terminal(slave) => {
            if let Err(e) = super::pty::make_controlling(slave) {
                failed(
                    EXIT_CANNOT_INVOKE,
                    format!("taking the terminal as the controlling terminal: {e}"),
                );
            }
        }
        // Its descriptors are in place already (see `helper`).
        Stdio::Plain { .. } => {
            let _ = rustix::process::setsid();
        }
    }
    rustix::process::umask(Mode::from_raw_mode(0o022));
    // As root first (the user may lack the right to some directory on the way), then again
    // as the user if that failed.
    let early = rustix::process::chdir(p.cwd.as_str());
    if let Err(e) = apply_limits(&p.security.limits) {
        failed(EXIT_CANNOT_INVOKE, e);
    }
    if let Err(e) = child::restrict(p.security, p.ids) {
        failed(EXIT_CANNOT_INVOKE, e);
    }
    if early.is_err() {
        if let Err(e) = rustix::process::chdir(p.cwd.as_str()) {
            failed(
                EXIT_CANNOT_INVOKE,
                format!(
                    "cannot enter the working directory {}: {}",
                    p.cwd,
                    io::Error::from(e)
                ),
            );
        }
    }
    if let Err(e) = sys::cloexec_from(3) {
        failed(
            EXIT_CANNOT_INVOKE,
            format!("closing inherited descriptors: {e}"),
        );
    }
    if let Err(e) = sys::reset_signals() {
        failed(EXIT_CANNOT_INVOKE, format!("resetting signals: {e}"));
    }
    let command = p.argv[0].to_string_lossy();
    let program = match child::find_program(&command, &p.path) {
        Ok(program) => program,
        Err((code, message)) => failed(code, message),
    };
    let Ok(program) = CString::new(program) else {
        failed(EXIT_CANNOT_INVOKE, "the command contains a NUL byte".into())
    };
    let argv: Vec<&std::ffi::CStr> = p.argv.iter().map(|a| a.as_c_str()).collect();
    let env: Vec<&std::ffi::CStr> = p.env.iter().map(|e| e.as_c_str()).collect();
    let err = sys::execve(&program, &argv, &env);
    let code = match rustix::io::Errno::from_io_error(&err) {
        Some(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => child::EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_INVOKE,
    };
    failed(code, format!("exec: {command:?}: {err}"))
}

/// Sets the container's resource limits. A hard limit above this process's own cannot be set
/// without CAP_SYS_RESOURCE: it is then lowered to what this process has (the container's
/// start may have run with more than the user who runs exec).
fn apply_limits(limits: &[Limit]) -> Result<(), String> {
    for l in limits {
        let wanted = Rlimit {
            current: l.soft,
            maximum: l.hard,
        };
        match rustix::process::setrlimit(l.resource, wanted) {
            Ok(()) => {}
            Err(rustix::io::Errno::PERM) => {
                let now = rustix::process::getrlimit(l.resource);
                let clamped = clamp(wanted, now.maximum);
                rustix::process::setrlimit(l.resource, clamped)
                    .map_err(|e| format!("setting ulimit {}: {e}", l.name))?;
            }
            Err(e) => return Err(format!("setting ulimit {}: {e}", l.name)),
        }
    }
    Ok(())
}

/// `wanted` with its hard limit at most `ceiling` (and the soft one at most the hard one);
/// `None` is unlimited.
fn clamp(wanted: Rlimit, ceiling: Option<u64>) -> Rlimit {
    let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(a), Some(b)) => Some(a.min(b)),
    };
    let hard = min(wanted.maximum, ceiling);
    Rlimit {
        current: min(wanted.current, hard),
        maximum: hard,
    }
}

// ---------------------------------------------------------------------------------------------
// Signals, for the client

/// Signals taken as data: blocked, and read from a descriptor (`signalfd(2)`), so that a loop
/// over descriptors sees them in turn with everything else.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Blocks `signals` in the calling thread (threads and children created later inherit
    /// that) and returns a non-blocking descriptor that reads them.
    pub fn block(signals: &[i32]) -> io::Result<SignalFd> {
        // SAFETY: the set is initialised by sigemptyset before use; sigaddset, sigprocmask
        // and signalfd only read it (the old mask is not asked for); the descriptor signalfd
        // returns is new and owned by nothing else.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in signals {
                if libc::sigaddset(&mut set, sig) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(SignalFd {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// The next pending signal's number, or `None` if there is none.
    pub fn read(&self) -> io::Result<Option<i32>> {
        // One `struct signalfd_siginfo` (128 bytes) per signal; its first field is the number.
        let mut buf = [0u8; 128];
        match rustix::io::read(&self.fd, &mut buf) {
            Ok(n) if n >= 4 => Ok(Some(
                u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as i32
            )),
            Ok(_) => Ok(None),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            invocation_id: None,
            env: vec![
                "HOME=/root".into(),
                "HOSTNAME=web".into(),
                "PATH=/usr/bin:/bin".into(),
            ],
            cwd: "/srv".into(),
            uid: 0,
            gid: 0,
            groups: vec![],
            home: "/root".into(),
            group_add: vec!["audio".into()],
            capabilities: vec!["CAP_CHOWN".into(), "CAP_KILL".into()],
            no_new_privileges: true,
            seccomp: Seccomp::Unconfined,
            rlimits: vec![SavedLimit {
                name: "nofile".into(),
                soft: Some(1024),
                hard: Some(4096),
            }],
        }
    }

    fn users() -> UserDb {
        UserDb {
            passwd: user::parse_passwd(
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            ),
            groups: user::parse_group("root:x:0:\nstaff:x:50:app\naudio:x:29:\n"),
        }
    }

    fn request(argv: &[&str]) -> Request {
        Request {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..Request::default()
        }
    }

    #[test]
    fn the_container_settings_by_default() {
        let p = plan(&snapshot(), &request(&["ls"]), &users()).unwrap();
        assert_eq!(p.cwd, "/srv");
        assert_eq!((p.ids.uid, p.ids.gid, p.ids.home.as_str()), (0, 0, "/root"));
        assert_eq!(p.env, snapshot().env);
        assert!(p.security.no_new_privileges);
        assert_eq!(
            crate::runtime::caps::names(&p.security.capabilities),
            ["CAP_CHOWN", "CAP_KILL"]
        );
        assert!(p.security.seccomp.is_none());
        assert_eq!(p.security.limits.len(), 1);
        assert_eq!(p.security.limits[0].resource, Resource::Nofile);
        assert_eq!(
            (p.security.limits[0].soft, p.security.limits[0].hard),
            (Some(1024), Some(4096))
        );
    }

    #[test]
    fn another_user_with_the_containers_extra_groups_and_home() {
        let mut r = request(&["id"]);
        r.user = Some("app".into());
        let p = plan(&snapshot(), &r, &users()).unwrap();
        assert_eq!((p.ids.uid, p.ids.gid), (1000, 1000));
        assert_eq!(
            p.ids.groups,
            [50, 29],
            "staff from /etc/group, audio from group-add"
        );
        assert!(p.env.contains(&"HOME=/home/app".to_string()), "{:?}", p.env);
        r.user = Some("4242:50".into());
        let p = plan(&snapshot(), &r, &users()).unwrap();
        assert_eq!((p.ids.uid, p.ids.gid, p.ids.home.as_str()), (4242, 50, "/"));
        r.user = Some("ghost".into());
        let e = plan(&snapshot(), &r, &users()).unwrap_err().to_string();
        assert!(e.contains("unable to find user ghost"), "{e}");
    }

    #[test]
    fn workdir_must_be_absolute() {
        let mut r = request(&["ls"]);
        r.workdir = Some("tmp".into());
        assert!(matches!(
            plan(&snapshot(), &r, &users()),
            Err(PlanError::RelativeWorkdir(_))
        ));
        r.workdir = Some("/tmp".into());
        assert_eq!(plan(&snapshot(), &r, &users()).unwrap().cwd, "/tmp");
        assert!(matches!(
            plan(&snapshot(), &request(&[]), &users()),
            Err(PlanError::NoCommand)
        ));
    }

    #[test]
    fn environment_overrides_in_order_and_term_with_a_terminal() {
        let base = vec!["A=1".to_string(), "HOME=/root".into(), "B=2".into()];
        let extra = vec![
            ("B".to_string(), "file".to_string()),
            ("C".into(), "file".into()),
            ("B".into(), "flag".into()),
        ];
        assert_eq!(
            environment(&base, &extra, false, None),
            ["A=1", "HOME=/root", "B=flag", "C=file"]
        );
        assert_eq!(
            environment(&base, &[], true, Some(("/root", "/home/app"))),
            ["A=1", "HOME=/home/app", "B=2", "TERM=xterm"]
        );
        // A HOME the container chose stays; a TERM it set (or -e) wins over xterm.
        let base = vec!["HOME=/data".to_string(), "TERM=vt100".into()];
        assert_eq!(
            environment(&base, &[], true, Some(("/root", "/home/app"))),
            ["HOME=/data", "TERM=vt100"]
        );
    }

    #[test]
    fn snapshot_keeps_every_limit_and_drops_the_notify_socket() {
        let process = ProcessPlan {
            argv: vec!["x".into()],
            env: vec!["A=1".into(), "NOTIFY_SOCKET=/run/host/notify".into()],
            cwd: "/".into(),
            ids: Ids {
                uid: 1000,
                gid: 1000,
                groups: vec![50],
                home: "/home/app".into(),
            },
            hostname: "h".into(),
            domainname: None,
        };
        let security = Security {
            capabilities: [Capability::CAP_KILL].into_iter().collect(),
            no_new_privileges: false,
            seccomp: None,
            limits: vec![Limit {
                name: "nofile",
                resource: Resource::Nofile,
                soft: Some(10),
                hard: Some(20),
            }],
        };
        let current = |_| Rlimit {
            current: Some(7),
            maximum: None,
        };
        let s = Snapshot::new(
            &process,
            &security,
            Seccomp::Default,
            vec![],
            Some("abc".into()),
            current,
        );
        assert_eq!(s.env, ["A=1"]);
        assert_eq!(s.rlimits.len(), limits::RESOURCES.len());
        let by = |n: &str| s.rlimits.iter().find(|l| l.name == n).unwrap().clone();
        assert_eq!((by("nofile").soft, by("nofile").hard), (Some(10), Some(20)));
        assert_eq!((by("core").soft, by("core").hard), (Some(7), None));
        assert_eq!(s.capabilities, ["CAP_KILL"]);

        let dir = std::env::temp_dir().join(format!("cleat-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Snapshot::read(&dir).unwrap(), None);
        s.write(&dir).unwrap();
        assert_eq!(Snapshot::read(&dir).unwrap(), Some(s));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(SNAPSHOT_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file"
        );
        Snapshot::remove(&dir);
        assert_eq!(Snapshot::read(&dir).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn limits_are_clamped_to_a_ceiling() {
        let r = |current, maximum| Rlimit { current, maximum };
        assert_eq!(
            clamp(r(Some(1024), Some(524288)), Some(20000)),
            r(Some(1024), Some(20000))
        );
        assert_eq!(clamp(r(None, None), Some(5)), r(Some(5), Some(5)));
        assert_eq!(clamp(r(Some(3), None), None), r(Some(3), None));
    }

    #[test]
    fn reports_round_trip() {
        for r in [
            Report::Go,
            Report::Started(123456),
            Report::Failed("joining: EPERM".into()),
            Report::ExecFailed {
                code: 127,
                message: "not found".into(),
            },
        ] {
            assert_eq!(Report::decode(&r.encode()).unwrap(), r);
        }
        assert!(Report::decode(b"P12").is_err());
    }
}
