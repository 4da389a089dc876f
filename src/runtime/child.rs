//! The container's first process, between `clone` and `execve`: it builds the root file
//! system in its new mount namespace, sets the hostname and identity, finds the program to run,
//! reports back, waits for the go-ahead, and execs the payload. It never returns.
//!
//! The program is looked up (and checked to be an executable file) *before* reporting ready,
//! because cleat tells systemd the unit is ready before the go-ahead: a payload that exits
//! at once must not beat `READY=1`, or systemd would count a successful run as a failed start.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;

use crate::sys;

use super::launch::Launch;
use super::sync::{self, Message};

/// Exit codes, as Docker uses them: 125 when the container could not be set up, 126 when the
/// command cannot be invoked, 127 when it cannot be found.
pub const EXIT_SETUP: i32 = 125;
pub const EXIT_CANNOT_INVOKE: u8 = 126;
pub const EXIT_NOT_FOUND: u8 = 127;

pub fn run(sock: OwnedFd, l: &Launch<'_>) -> ! {
    let prepared = match setup(l) {
        Ok(p) => p,
        Err(Failed::Setup(msg)) => {
            let _ = sync::send(&sock, &Message::SetupFailed(msg));
            sys::exit_now(EXIT_SETUP);
        }
        Err(Failed::Exec(code, message)) => exec_failed(&sock, code, message),
    };
    // The terminal's master side goes to cleat, which holds it beside the container.
    let ready = match &prepared.terminal {
        Some(pty) => sync::send_with_fd(&sock, &Message::Ready, pty.master.as_fd()),
        None => sync::send(&sock, &Message::Ready),
    };
    if ready.is_err() {
        sys::exit_now(EXIT_SETUP);
    }
    match sync::recv(&sock) {
        Ok(Some(Message::Go)) => {}
        // cleat went away (killed, or failed to notify systemd): do not start the payload.
        _ => sys::exit_now(EXIT_SETUP),
    }
    if l.init {
        // `--init`: this process stays as the container's PID 1 and a child of it runs the
        // payload. The child keeps the handshake socket (its exec closes it); we drop ours.
        match sys::fork() {
            Ok(sys::Forked::Child) => {}
            Ok(sys::Forked::Parent(payload)) => {
                drop(sock);
                if let Some(pty) = prepared.terminal {
                    // The terminal is the payload's; the init keeps no way to it (standard
                    // input may be the connection of `cleat run -it`, which must end with the
                    // terminal).
                    drop(pty);
                    if let Ok(null) = rustix::fs::open(
                        "/dev/null",
                        rustix::fs::OFlags::RDONLY,
                        rustix::fs::Mode::empty(),
                    ) {
                        let _ = rustix::stdio::dup2_stdin(&null);
                    }
                }
                super::init::run(payload);
            }
            Err(e) => exec_failed(
                &sock,
                EXIT_CANNOT_INVOKE,
                format!("starting the payload under the init: {e}"),
            ),
        }
    }
    if let Some(pipes) = &l.output_pipes {
        for (fd, target) in pipes.iter().zip([1, 2]) {
            // SAFETY: dup2 onto a standard descriptor this process owns.
            if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(fd), target) } == -1 {
                let e = io::Error::last_os_error();
                exec_failed(
                    &sock,
                    EXIT_CANNOT_INVOKE,
                    format!("redirecting output: {e}"),
                );
            }
        }
    }
    if let Some(pty) = &prepared.terminal {
        if let Err(e) = super::pty::make_controlling(pty.slave.as_fd()) {
            exec_failed(
                &sock,
                EXIT_CANNOT_INVOKE,
                format!("making the container's terminal the payload's: {e}"),
            );
        }
    }
    if let Err(e) = sys::reset_signals() {
        exec_failed(&sock, EXIT_CANNOT_INVOKE, format!("resetting signals: {e}"));
    }
    let (code, message) = exec(&prepared);
    exec_failed(&sock, code, message)
}

/// Tells cleat the command cannot be run, and exits with `code` (126 or 127).
fn exec_failed(sock: &OwnedFd, code: u8, message: String) -> ! {
    let _ = sync::send(sock, &Message::ExecFailed { code, message });
    sys::exit_now(i32::from(code));
}

/// Why the child gives up.
enum Failed {
    /// Setting up the container failed (exit 125).
    Setup(String),
    /// The command cannot be run (126 or 127, with Docker's meaning).
    Exec(u8, String),
}

impl From<String> for Failed {
    fn from(msg: String) -> Failed {
        Failed::Setup(msg)
    }
}

/// The payload, ready for `execve`: everything allocated before the go-ahead.
struct Prepared {
    program: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    /// The container's terminal (`tty`).
    terminal: Option<super::pty::Pty>,
}

fn cstring(s: &str, what: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte: {s:?}"))
}

fn setup(l: &Launch<'_>) -> Result<Prepared, Failed> {
    let p = l.process;
    let security = l.security;
    // Our own session: the container must not share cleat's (systemd's) process group.
    let _ = rustix::process::setsid();
    if let Some(netns) = l.join_network {
        rustix::thread::move_into_link_name_space(
            netns,
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| format!("joining the other container's network namespace: {e}"))?;
    }
    if l.namespaces.0 & crate::sys::CloneFlags::NEWNET.0 != 0 {
        sys::interface_up("lo").map_err(|e| format!("bringing up loopback: {e}"))?;
    }
    crate::rootfs::mount::apply(l.rootfs).map_err(|e| e.to_string())?;
    let terminal = match &l.terminal {
        Some(t) => {
            Some(open_terminal(t).map_err(|e| format!("making the container's terminal: {e}"))?)
        }
        None => None,
    };
    rustix::system::sethostname(p.hostname.as_bytes())
        .map_err(|e| format!("setting the hostname to {:?}: {e}", p.hostname))?;
    if let Some(domain) = &p.domainname {
        rustix::system::setdomainname(domain.as_bytes())
            .map_err(|e| format!("setting the domain name to {domain:?}: {e}"))?;
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    // Docker creates a missing working directory.
    std::fs::create_dir_all(&p.cwd)
        .map_err(|e| format!("creating the working directory {}: {e}", p.cwd))?;
    rustix::process::chdir(p.cwd.as_str())
        .map_err(|e| format!("entering the working directory {}: {e}", p.cwd))?;
    super::limits::apply(&security.limits)?;
    if l.init {
        // The init keeps running the host's cleat binary: it must not be dumpable, so that the
        // container (even as root, without CAP_SYS_PTRACE) cannot open it through /proc/1/exe
        // or read /proc/1/environ and /proc/1/mem (the way of CVE-2019-5736). Now, before the
        // filter (a profile may refuse prctl) and long before the payload exists; the
        // payload's exec makes it dumpable again.
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .map_err(|e| format!("preparing the init: {e}"))?;
    }
    restrict(security, &p.ids)?;
    sys::cloexec_from(3).map_err(|e| format!("closing inherited descriptors: {e}"))?;
    if l.init {
        // The init takes every signal through sigwaitinfo: blocked from now on, in both the
        // init and (until it resets them before exec) the payload's process.
        sys::block_all_signals().map_err(|e| format!("blocking signals for the init: {e}"))?;
    }

    let argv = p
        .argv
        .iter()
        .map(|a| cstring(a, "an argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let env = p
        .env
        .iter()
        .map(|e| cstring(e, "an environment variable"))
        .collect::<Result<Vec<_>, _>>()?;
    let path = p
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(super::process::DEFAULT_PATH);
    let program = find_program(&p.argv[0], path).map_err(|(code, msg)| Failed::Exec(code, msg))?;
    let program = cstring(&program, "the command")?;
    Ok(Prepared {
        program,
        argv,
        env,
        terminal,
    })
}

/// Allocates the container's terminal on its own devpts (the root is the container's now),
/// makes it the container's /dev/console, and gives it the first client's size if that client
/// has said it already (before the unit started), so the payload never sees a wrong one.
fn open_terminal(t: &super::launch::Terminal<'_>) -> std::io::Result<super::pty::Pty> {
    use rustix::fs::{Mode, OFlags};
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let pty = super::pty::open_in(root.as_fd())?;
    let (mut rows, mut cols) = super::console::DEFAULT_SIZE;
    if let Some(client) = t.first_client {
        let mut head = [0u8; 7];
        let peeked = rustix::net::recv(
            client,
            &mut head,
            rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT,
        );
        if let Ok((7, _)) = peeked {
            let mut frames = super::console::FrameReader::default();
            frames.push(&head);
            if let Ok(Some(super::console::Frame::Resize(r, c))) = frames.next_frame() {
                rustix::net::recv(client, &mut head, rustix::net::RecvFlags::DONTWAIT)?;
                (rows, cols) = (r, c);
            }
        }
    }
    super::pty::set_size(&pty.master, rows, cols)?;
    // /dev is the container's own tmpfs: the console is a file there with the terminal bound
    // onto it, as runc makes it.
    drop(rustix::fs::open(
        "/dev/console",
        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o600),
    )?);
    rustix::mount::mount_bind(format!("/dev/pts/{}", pty.index).as_str(), "/dev/console")?;
    Ok(pty)
}

/// Takes on the payload's identity and restrictions: its system call filter, bounding set,
/// groups, user and capabilities, and no_new_privs when asked for, in the one order that works
/// (what needs a privilege is done while it is still held). The calling process must be
/// single-threaded. Shared by the container's first process and `cleat exec`.
pub(super) fn restrict(
    security: &super::launch::Security,
    ids: &super::user::Ids,
) -> Result<(), String> {
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN, which only the setup has:
    // install it now (Docker's profile allows the rest of the setup's system calls).
    if !security.no_new_privileges {
        if let Some(filter) = &security.seccomp {
            super::seccomp::install(filter)
                .map_err(|e| format!("installing the seccomp filter: {e}"))?;
        }
    }
    // The bounding set first: cutting it needs CAP_SETPCAP, which a user change may drop.
    super::caps::drop_bounding(&security.capabilities)?;
    let groups: Vec<rustix::process::Gid> = ids
        .groups
        .iter()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    // There is only one thread (the caller's promise), so per-thread credential calls set the
    // credentials of the whole process.
    rustix::thread::set_thread_groups(&groups)
        .map_err(|e| format!("setting supplementary groups: {e}"))?;
    rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(ids.gid))
        .map_err(|e| format!("setting group id {}: {e}", ids.gid))?;
    rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(ids.uid))
        .map_err(|e| format!("setting user id {}: {e}", ids.uid))?;
    super::caps::set_process(&security.capabilities, ids.uid == 0)?;
    if security.no_new_privileges {
        sys::set_no_new_privs().map_err(|e| format!("setting no_new_privs: {e}"))?;
        if let Some(filter) = &security.seccomp {
            super::seccomp::install(filter)
                .map_err(|e| format!("installing the seccomp filter: {e}"))?;
        }
    }
    Ok(())
}

/// Docker's lookup: a name with a '/' is used as is, any other is searched in `PATH` (the
/// container's). The result must be an executable regular file; otherwise the exit code and
/// message Docker would give (127: not found, 126: cannot be invoked).
pub(super) fn find_program(program: &str, path: &str) -> Result<String, (u8, String)> {
    let check = |candidate: &str| -> Result<(), Errno> {
        let stat = rustix::fs::stat(candidate)?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(Errno::ACCESS);
        }
        rustix::fs::access(candidate, rustix::fs::Access::EXEC_OK)
    };
    let failure = |e: Errno| {
        let code = if matches!(e, Errno::NOENT | Errno::NOTDIR) {
            EXIT_NOT_FOUND
        } else {
            EXIT_CANNOT_INVOKE
        };
        (code, format!("exec: {program:?}: {}", io::Error::from(e)))
    };
    if program.contains('/') {
        return check(program).map(|()| program.to_owned()).map_err(failure);
    }
    let mut denied = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{dir}/{program}");
        match check(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(Errno::NOENT | Errno::NOTDIR) => {}
            Err(e) => denied = denied.or(Some(e)),
        }
    }
    Err(match denied {
        Some(e) => failure(e),
        None => (
            EXIT_NOT_FOUND,
            format!("exec: {program:?}: executable file not found in $PATH"),
        ),
    })
}

/// Execs the payload; returns only on failure, with the exit code and message to report.
fn exec(p: &Prepared) -> (u8, String) {
    let argv: Vec<&std::ffi::CStr> = p.argv.iter().map(|a| a.as_c_str()).collect();
    let env: Vec<&std::ffi::CStr> = p.env.iter().map(|e| e.as_c_str()).collect();
    let err = sys::execve(&p.program, &argv, &env);
    let code = match Errno::from_io_error(&err) {
        Some(Errno::NOENT | Errno::NOTDIR) => EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_INVOKE,
    };
    (
        code,
        format!("exec: {:?}: {err}", p.argv[0].to_string_lossy()),
    )
}
