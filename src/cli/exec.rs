//! `cleat exec`: run a command in a running container, as `docker exec` does: in the
//! container's namespaces and root, with its environment, working directory, user and
//! restrictions (those recorded when it started), inside its unit's control group (so systemd
//! accounts for the process and stops it with the container).
//!
//! Without `-t` the process gets cleat's output and error, and cleat's input with `-i` (else
//! `/dev/null`), except any of them that is a terminal: cleat's terminal never goes into the
//! container; the process gets a pipe instead, which cleat copies to or from (see
//! `PlainStdio`). cleat waits for it, passes signals on and exits with its status. With `-t`
//! it gets a pseudo-terminal from the container's own devpts, and cleat relays between it and
//! the user's terminal (in raw mode, with `-i`), passes on window size changes, and lets the
//! user detach with the detach keys.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Args;
use rustix::event::{PollFd, PollFlags};

use cleat::containers::Registry;
use cleat::runtime::exec::{
    self, ExecError, Process, Request, SignalFd, Snapshot, StagedSnapshot, Target,
};
use cleat::runtime::launch::Security;
use cleat::runtime::process::ProcessPlan;
use cleat::runtime::pty;
use cleat::spec::{Name, Spec};
use cleat::unit::dbus::Systemd;

use super::terminal::{self, DetachScanner, RawMode, Scanned};
use super::{CmdResult, Failure, diag};

#[derive(Args)]
pub struct ExecArgs {
    /// Pass standard input to the command
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Run the command on a pseudo-terminal of the container's
    #[arg(short = 't', long)]
    tty: bool,
    /// Run as this user: a name or UID from the container, optionally with :GROUP
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Working directory in the container (default: the container's)
    #[arg(short = 'w', long, value_name = "DIR")]
    workdir: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to take it from here)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines)
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Keys that detach from the command's terminal and leave it running (default ctrl-p,ctrl-q)
    #[arg(long = "detach-keys", value_name = "KEYS")]
    detach_keys: Option<String>,
    /// The running container
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// The command to run, and its arguments
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

/// Signals passed on to the process (as `docker exec` without a terminal does; with one, they
/// can only come from `kill`, and are passed on too).
const FORWARDED: &[i32] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Exit status when the command could not be started (Docker's for "OCI runtime exec failed").
const EXIT_CANNOT_START: u8 = cleat::runtime::EXIT_CANNOT_INVOKE;

pub fn exec(args: ExecArgs) -> CmdResult {
    // The process runs cleat's code inside the container until its exec: from a sealed copy
    // of cleat, never from the host's binary (see `cleat::sealed`).
    cleat::sealed::reexec_sealed().context("running from a sealed copy of cleat")?;
    let name = super::name(&args.container)?;
    let detach_keys = terminal::parse_detach_keys(
        args.detach_keys
            .as_deref()
            .unwrap_or(terminal::DEFAULT_DETACH_KEYS),
    )?;
    let request = Request {
        argv: args.command.clone(),
        user: args.user.clone().filter(|u| !u.is_empty()),
        workdir: args.workdir.clone(),
        env: environment(&args)?,
        tty: args.tty,
    };

    let registry = Registry::system();
    registry.require(&name)?;
    let unit = registry.unit_of(&name);
    let not_running = || Failure::from(anyhow!("container {name} is not running"));
    let (pid, invocation) = main_process(&unit)?.ok_or_else(not_running)?;
    // From here the process is held by a pidfd; `Target::open` refuses anything but a
    // process in a PID namespace of its own (cleat's start process before the hand-over).
    let target = Target::open(pid)
        .with_context(|| format!("opening the main process of {unit}"))?
        .ok_or_else(not_running)?;
    let dir = registry.state.dir(&name);
    let snapshot = current_snapshot(&dir, &invocation)?.ok_or_else(|| {
        anyhow!(
            "the settings of {name}'s current run were not recorded (a start by an older cleat, \
             or see its journal); restart the container to use exec"
        )
    })?;
    let users = target
        .users()
        .with_context(|| format!("reading the user database of {name}"))?;
    let plan = exec::plan(&snapshot, &request, &users).map_err(|e| match e {
        exec::PlanError::User(_) => Failure::with_code(EXIT_CANNOT_START, e),
        e => Failure::from(e),
    })?;

    let stdin = io::stdin();
    let stdout = io::stdout();
    // The terminal of the user, whose size the container's follows.
    let user_terminal = [stdin.as_fd(), stdout.as_fd()]
        .into_iter()
        .find(|fd| rustix::termios::isatty(fd));
    let pty = if args.tty {
        let pty = pty::open_in(target.root())
            .with_context(|| format!("allocating a terminal in {name}"))?;
        if let Some(fd) = user_terminal {
            copy_size(fd, pty.master.as_fd());
        }
        Some(pty)
    } else {
        None
    };
    let plain = match pty {
        Some(_) => None,
        None => Some(PlainStdio::new(args.interactive).context("setting up input and output")?),
    };
    let stdio = match (&pty, &plain) {
        (Some(pty), _) => exec::Stdio::Terminal(pty.slave.as_fd()),
        (None, Some(plain)) => plain.stdio(),
        (None, None) => unreachable!("a terminal or plain descriptors"),
    };
    let mut forwarded = FORWARDED.to_vec();
    forwarded.push(libc::SIGWINCH);
    // Blocked before the fork, so none is lost (or kills cleat) while the process starts; the
    // process unblocks them all before its exec.
    let signals = SignalFd::block(&forwarded).context("taking signals")?;
    let helper = exec::spawn(&target, &plan, stdio).context("starting the helper process")?;
    // The process has its own copy of the terminal: when it (and whatever it starts) is gone,
    // the master reads end-of-file. Likewise for the pipes.
    let master = pty.map(|p| p.master);
    let relay = plain.map(PlainStdio::into_relay);

    if let Err(e) = attach(&unit, pid, helper.pid()) {
        helper.abandon();
        return Err(e);
    }
    let process = helper
        .go()
        .map_err(|e: ExecError| Failure::with_code(e.exit_code(), e))?;
    drop(target);

    let code = match (master, relay) {
        (None, Some(relay)) if relay.is_empty() => relay_signals(&process, &signals)?,
        (None, Some(relay)) => relay_plain(&process, &signals, relay)?,
        (None, None) => relay_signals(&process, &signals)?,
        (Some(master), _) => {
            let input = args
                .interactive
                .then(|| (stdin.as_fd(), DetachScanner::new(detach_keys.clone())));
            // Raw mode for as long as the user's keys go to the container's terminal.
            let _raw = match &input {
                Some((fd, _)) => RawMode::enter(*fd).context("setting the terminal to raw mode")?,
                None => None,
            };
            match relay_terminal(&process, &signals, master, input, user_terminal)? {
                Relayed::Exited(code) => code,
                Relayed::Detached => 0,
            }
        }
    };
    Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)))
}

/// How long exec waits for the snapshot of a run that has just started (see
/// [`stage_for_exec`]).
const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);

/// The snapshot of the run `invocation`. A start records it once the payload runs, a moment
/// after systemd has the main process: waits for it that long.
fn current_snapshot(dir: &std::path::Path, invocation: &str) -> anyhow::Result<Option<Snapshot>> {
    let deadline = Instant::now() + SNAPSHOT_WAIT;
    loop {
        let current = Snapshot::read(dir)?.filter(|s| {
            s.invocation_id.is_none() || s.invocation_id.as_deref() == Some(invocation)
        });
        if current.is_some() || Instant::now() >= deadline {
            return Ok(current);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--env-file` files in order, then `-e` flags, in `run`'s formats.
fn environment(args: &ExecArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    for path in &args.env_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("env file {}", path.display()))?;
        env.extend(
            cleat::runtime::process::parse_env_file(&text)
                .map_err(|e| anyhow!("env file {}: {e}", path.display()))?,
        );
    }
    for kv in &args.env {
        if let Some(pair) =
            cleat::spec::flags::parse_env_flag(kv, &|k: &str| std::env::var(k).ok())?
        {
            env.push(pair);
        }
    }
    Ok(env)
}

/// The unit's main process and invocation, if it is running. A runtime confined to this
/// function: dropping it joins its threads before the fork.
fn main_process(unit: &str) -> anyhow::Result<Option<(i32, String)>> {
    super::runtime().block_on(async {
        let systemd = Systemd::connect().await?;
        let state = systemd.state_if_loaded(unit).await?;
        Ok(state
            .filter(|s| {
                matches!(
                    s.active_state.as_str(),
                    "active" | "reloading" | "activating"
                )
            })
            .filter(|s| s.main_pid != 0)
            .and_then(|s| Some((i32::try_from(s.main_pid).ok()?, s.invocation_id))))
    })
}

/// Has systemd move the helper into the unit's control group, once it has checked that the
/// unit's main process is still the one the helper is about to join (had it ended, its PID
/// could be another's).
fn attach(unit: &str, pid: i32, helper: i32) -> Result<(), Failure> {
    let helper = u32::try_from(helper).map_err(|_| anyhow!("bad helper PID {helper}"))?;
    super::runtime().block_on(async {
        let systemd = Systemd::connect().await?;
        let still = systemd
            .state_if_loaded(unit)
            .await?
            .is_some_and(|s| i32::try_from(s.main_pid) == Ok(pid));
        if !still {
            return Err(anyhow!("the container stopped"));
        }
        let attached = systemd.attach_processes(unit, &[helper]).await;
        if let Err(e) = attached {
            let hint = if e.to_string().contains("non-delegated") {
                "\nhint: the unit was started by an older cleat, whose units were not delegated; \
                 restart the container (for a declared one, after `systemctl daemon-reload`)"
            } else {
                ""
            };
            return Err(anyhow!(
                "moving the process into {unit}'s control group: {e}{hint}"
            ));
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}

/// Without a terminal: passes signals on until the process exits; its exit code.
fn relay_signals(process: &Process, signals: &SignalFd) -> anyhow::Result<i32> {
    loop {
        let mut fds = [
            PollFd::new(signals, PollFlags::IN),
            PollFd::from_borrowed_fd(process.pidfd(), PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(anyhow!("waiting for the process: {e}")),
        }
        let exited = !fds[1].revents().is_empty();
        while let Some(sig) = signals.read()? {
            if sig != libc::SIGWINCH {
                let _ = process.signal(sig);
            }
        }
        if exited {
            return process.wait().context("waiting for the process");
        }
    }
}

/// Without -t: the process's standard input, output and error. cleat's own, except where one
/// is a terminal: that one never goes into the container (a process left behind there would
/// keep it, and could read what the user types at the shell later on). The process gets a
/// pipe of cleat's instead, and cleat copies. Files, pipes and sockets go as they are, so
/// `cleat exec x cat <big | cmp` copies nothing.
struct PlainStdio {
    /// What the process gets as 0, 1 and 2.
    theirs: [OwnedFd; 3],
    relay: PipeRelay,
}

/// cleat's ends of the pipes that stand in for its terminal.
struct PipeRelay {
    /// With -i, when standard input is a terminal: where what is read from it goes.
    input: Option<OwnedFd>,
    /// Where the process's output and error come from, when ours are a terminal.
    output: [Option<OwnedFd>; 2],
}

impl PlainStdio {
    fn new(interactive: bool) -> io::Result<PlainStdio> {
        let copy = |fd: BorrowedFd<'_>| -> io::Result<OwnedFd> {
            Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?)
        };
        let pipe = || -> io::Result<(OwnedFd, OwnedFd)> {
            Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
        };
        let (stdin, input) = if !interactive {
            (std::fs::File::open("/dev/null")?.into(), None)
        } else if rustix::termios::isatty(io::stdin()) {
            let (read, write) = pipe()?;
            (read, Some(write))
        } else {
            (copy(io::stdin().as_fd())?, None)
        };
        let mut output = [None, None];
        let give = |fd: BorrowedFd<'_>, ours: &mut Option<OwnedFd>| {
            if rustix::termios::isatty(fd) {
                let (read, write) = pipe()?;
                *ours = Some(read);
                Ok(write)
            } else {
                copy(fd)
            }
        };
        let [out, err] = &mut output;
        let stdout = give(io::stdout().as_fd(), out)?;
        let stderr = give(io::stderr().as_fd(), err)?;
        Ok(PlainStdio {
            theirs: [stdin, stdout, stderr],
            relay: PipeRelay { input, output },
        })
    }

    fn stdio(&self) -> exec::Stdio<'_> {
        let [stdin, stdout, stderr] = &self.theirs;
        exec::Stdio::Plain {
            stdin: stdin.as_fd(),
            stdout: stdout.as_fd(),
            stderr: stderr.as_fd(),
        }
    }

    /// Once the process has its copies: ours of its ends go (so that its end is the pipes'
    /// end), and what is left is cleat's.
    fn into_relay(self) -> PipeRelay {
        self.relay
    }
}

impl PipeRelay {
    fn is_empty(&self) -> bool {
        self.input.is_none() && self.output.iter().all(Option::is_none)
    }
}

/// Without -t, with pipes for a terminal: passes signals on, copies the user's input into the
/// process's (up to its end: Ctrl-D) and its output to ours, until the process exits; then
/// copies what output is there already, without waiting for more (a process it left behind
/// may hold the pipe for ever), and returns the exit code.
fn relay_plain(process: &Process, signals: &SignalFd, relay: PipeRelay) -> anyhow::Result<i32> {
    let PipeRelay {
        mut input,
        mut output,
    } = relay;
    for fd in input.iter().chain(output.iter().flatten()) {
        set_nonblocking(fd)?;
    }
    let stdin = io::stdin();
    let (stdout, stderr) = (io::stdout(), io::stderr());
    let targets = [stdout.as_fd(), stderr.as_fd()];
    let mut pending: Vec<u8> = Vec::new();
    let mut input_ended = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = vec![
            PollFd::new(signals, PollFlags::IN),
            PollFd::from_borrowed_fd(process.pidfd(), PollFlags::IN),
        ];
        fn at<'a>(fds: &mut Vec<PollFd<'a>>, fd: BorrowedFd<'a>, events: PollFlags) -> usize {
            fds.push(PollFd::from_borrowed_fd(fd, events));
            fds.len() - 1
        }
        // What was typed waits while the process does not take it.
        let typing = (input.is_some() && !input_ended && pending.is_empty())
            .then(|| at(&mut fds, stdin.as_fd(), PollFlags::IN));
        let feeding = input
            .as_ref()
            .filter(|_| !pending.is_empty())
            .map(|fd| at(&mut fds, fd.as_fd(), PollFlags::OUT));
        let reading: Vec<(usize, usize)> = output
            .iter()
            .enumerate()
            .filter_map(|(i, fd)| Some((i, at(&mut fds, fd.as_ref()?.as_fd(), PollFlags::IN))))
            .collect();
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(anyhow!("waiting for the process: {e}")),
        }
        let ready = |i: Option<usize>| i.is_some_and(|i| !fds[i].revents().is_empty());
        let exited = ready(Some(1));
        let typed = ready(typing);
        let writable = ready(feeding);
        let readable: Vec<usize> = reading
            .iter()
            .filter(|(_, i)| ready(Some(*i)))
            .map(|(o, _)| *o)
            .collect();
        drop(fds);

        while let Some(sig) = signals.read()? {
            if sig != libc::SIGWINCH {
                let _ = process.signal(sig);
            }
        }
        for o in readable {
            // A share at a time: a process that writes without end does not keep cleat from
            // signals, input and its exit.
            if !drain(&mut output[o], targets[o], &mut buf, SHARE) {
                output[o] = None;
            }
        }
        if typed {
            match rustix::io::read(&stdin, &mut buf) {
                Ok(0) => input_ended = true,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(_) => input_ended = true,
            }
        }
        if (typed || writable) && !pending.is_empty() {
            if let Some(fd) = &input {
                if !feed(fd, &mut pending) {
                    // The process closed its input: what is typed has nowhere to go.
                    input = None;
                }
            }
        }
        // At the end of ours, the end of its input (once it has what came before).
        if input_ended && pending.is_empty() {
            input = None;
        }
        if exited {
            // What it wrote before it exited fits in the pipe; a process left behind that
            // writes on does not keep cleat.
            for (o, target) in targets.iter().enumerate() {
                drain(&mut output[o], *target, &mut buf, LAST_OUTPUT);
            }
            return process.wait().context("waiting for the process");
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// How much output cleat copies from one stream before it looks at the others.
const SHARE: usize = 256 << 10;

/// At most how much output cleat copies once the process has exited: more than a pipe holds
/// (64 KiB by default, 1 MiB at most unless an administrator raised fs.pipe-max-size).
const LAST_OUTPUT: usize = 1 << 20;

/// Copies what the (non-blocking) pipe holds now to `to`, up to about `limit` bytes; `false`
/// once it has no writer left.
fn drain(from: &mut Option<OwnedFd>, to: BorrowedFd<'_>, buf: &mut [u8], limit: usize) -> bool {
    let Some(fd) = from else {
        return false;
    };
    let mut copied = 0usize;
    while copied < limit {
        match rustix::io::read(&*fd, &mut *buf) {
            Ok(0) => return false,
            // Our own output may be gone; the process's is read all the same.
            Ok(n) => {
                copied = copied.saturating_add(n);
                let _ = write_all(to, &buf[..n]);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => return true,
            Err(_) => return false,
        }
    }
    true
}

/// Writes all of `bytes` to `fd`, waiting while it is full (a terminal someone made
/// non-blocking).
fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => {
                let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::OUT)];
                let _ = rustix::event::poll(&mut fds, None);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes as much of `pending` to the process's (non-blocking) input as it takes now;
/// `false` once nothing reads it any more.
fn feed(fd: &OwnedFd, pending: &mut Vec<u8>) -> bool {
    while !pending.is_empty() {
        match rustix::io::write(fd, pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => return true,
            Err(_) => {
                pending.clear();
                return false;
            }
        }
    }
    true
}

enum Relayed {
    Exited(i32),
    Detached,
}

/// Sets `to`'s window size to `from`'s.
fn copy_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Ok((rows, cols)) = pty::size(from) {
        let _ = pty::set_size(to, rows, cols);
    }
}

/// How long to wait for the rest of the output once the process has exited.
const DRAIN_QUIET: Duration = Duration::from_millis(100);
const DRAIN_MAX: Duration = Duration::from_secs(2);

/// With a terminal: copies the terminal's output to ours and (with `-i`) our input to it,
/// through the detach scanner, until the process exits (then the rest of its output) or the
/// user detaches.
fn relay_terminal(
    process: &Process,
    signals: &SignalFd,
    master: OwnedFd,
    mut input: Option<(BorrowedFd<'_>, DetachScanner)>,
    user_terminal: Option<BorrowedFd<'_>>,
) -> anyhow::Result<Relayed> {
    let flags = rustix::fs::fcntl_getfl(&master)?;
    rustix::fs::fcntl_setfl(&master, flags | rustix::fs::OFlags::NONBLOCK)?;
    let mut out = io::stdout().lock();
    let mut pending: Vec<u8> = Vec::new();
    let mut output_open = true;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut master_events = PollFlags::empty();
        if output_open {
            master_events |= PollFlags::IN;
        }
        if !pending.is_empty() {
            master_events |= PollFlags::OUT;
        }
        // Input waits while what was typed cannot go anywhere.
        let stdin = input
            .as_ref()
            .filter(|_| pending.len() < buf.len())
            .map(|(fd, _)| *fd);
        let mut fds = vec![
            PollFd::new(signals, PollFlags::IN),
            PollFd::from_borrowed_fd(process.pidfd(), PollFlags::IN),
        ];
        // Polled only for something: a hung-up terminal reports POLLHUP whatever is asked, and
        // would keep the loop spinning while the process runs on without it.
        let master_at = (!master_events.is_empty()).then(|| {
            fds.push(PollFd::new(&master, master_events));
            fds.len() - 1
        });
        let input_at = stdin.map(|fd| {
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
            fds.len() - 1
        });
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(anyhow!("waiting for the terminal: {e}")),
        }
        let exited = !fds[1].revents().is_empty();
        let master_ready = master_at.map_or(PollFlags::empty(), |i| fds[i].revents());
        let input_ready = input_at.is_some_and(|i| !fds[i].revents().is_empty());
        drop(fds);

        while let Some(sig) = signals.read()? {
            if sig == libc::SIGWINCH {
                if let Some(fd) = user_terminal {
                    copy_size(fd, master.as_fd());
                }
            } else {
                let _ = process.signal(sig);
            }
        }
        if output_open && !master_ready.is_empty() {
            output_open = copy_output(&master, &mut out, &mut buf, None);
        }
        if !pending.is_empty() && master_ready.contains(PollFlags::OUT) {
            write_some(&master, &mut pending);
        }
        if input_ready {
            if let Some((fd, scanner)) = input.as_mut() {
                match rustix::io::read(*fd, &mut buf) {
                    Ok(0) => input = None,
                    Ok(n) => match scanner.feed(&buf[..n]) {
                        Scanned::Forward(bytes) => {
                            pending.extend_from_slice(&bytes);
                            write_some(&master, &mut pending);
                        }
                        Scanned::Detach(bytes) => {
                            pending.extend_from_slice(&bytes);
                            write_some(&master, &mut pending);
                            let _ = out.flush();
                            keep_terminal(master);
                            return Ok(Relayed::Detached);
                        }
                    },
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                    Err(_) => input = None,
                }
            }
        }
        if exited {
            if output_open {
                copy_output(
                    &master,
                    &mut out,
                    &mut buf,
                    Some(Instant::now() + DRAIN_MAX),
                );
            }
            let _ = out.flush();
            return process
                .wait()
                .context("waiting for the process")
                .map(Relayed::Exited);
        }
    }
}

/// Copies what the terminal has to `out`. Without a deadline, what is there now; with one,
/// until the output has been quiet for a moment or the deadline passed. `false` once the
/// terminal has no writer left (end-of-file, or EIO from a master).
fn copy_output(
    master: &OwnedFd,
    out: &mut impl Write,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> bool {
    loop {
        match rustix::io::read(master, &mut *buf) {
            Ok(0) => return false,
            Ok(n) => {
                // Our own output may be gone; the process's is read all the same.
                let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => {
                let Some(deadline) = deadline else {
                    return true;
                };
                let now = Instant::now();
                if now >= deadline {
                    return true;
                }
                let wait = DRAIN_QUIET.min(deadline - now);
                let wait = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: i64::from(wait.subsec_nanos()),
                };
                let mut fds = [PollFd::new(master, PollFlags::IN)];
                if !matches!(rustix::event::poll(&mut fds, Some(&wait)), Ok(n) if n > 0) {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
}

/// Writes as much of `pending` to the (non-blocking) terminal as it takes now.
fn write_some(master: &OwnedFd, pending: &mut Vec<u8>) {
    while !pending.is_empty() {
        match rustix::io::write(master, pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(rustix::io::Errno::INTR) => {}
            // Full: what was typed waits.
            Err(rustix::io::Errno::AGAIN) => return,
            // Nobody reads the terminal any more: what was typed has nowhere to go.
            Err(_) => {
                pending.clear();
                return;
            }
        }
    }
}

/// After a detach: the process keeps its terminal (were its master closed, the process would
/// get SIGHUP), so a small process of ours keeps it open and discards its output until
/// nothing in the container has it open any more (the process and what it started ended, or
/// the container stopped).
fn keep_terminal(master: OwnedFd) {
    match cleat::sys::fork() {
        Ok(cleat::sys::Forked::Child) => {
            // Out of the user's session first: when cleat's parent (a shell, or the session
            // leader of the user's terminal) goes, the hangup does not reach this process. One
            // that came before, still pending (blocked), is discarded by ignoring it.
            let _ = rustix::process::setsid();
            // SAFETY: sets a signal's disposition to SIG_IGN and the mask to an initialised
            // empty set; no handler of ours is involved.
            unsafe {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            }
            if let Ok(null) = rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDWR,
                rustix::fs::Mode::empty(),
            ) {
                let _ = rustix::stdio::dup2_stdin(&null);
                let _ = rustix::stdio::dup2_stdout(&null);
                let _ = rustix::stdio::dup2_stderr(&null);
            }
            if let Ok(flags) = rustix::fs::fcntl_getfl(&master) {
                let _ = rustix::fs::fcntl_setfl(&master, flags - rustix::fs::OFlags::NONBLOCK);
            }
            let mut buf = [0u8; 4096];
            loop {
                match rustix::io::read(&master, &mut buf) {
                    Ok(0) => break,
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(_) => break,
                }
            }
            cleat::sys::exit_now(0);
        }
        Ok(cleat::sys::Forked::Parent(_)) => {}
        Err(e) => diag::warning(format_args!(
            "keeping the terminal after detaching: {e}; the process gets a hangup"
        )),
    }
}

/// Records what `cleat exec` needs of the container `internal start` is about to launch (see
/// [`Snapshot`]), for [`publish_for_exec`] to put in place once the payload runs, and removes
/// an earlier run's record. Not before: until the payload's exec, the container's first
/// process runs the host's cleat binary, and `cleat exec` must not put a process of the
/// container beside it (one could open its /proc/PID/exe); without the record of the current
/// run, exec waits. Written now, put in place later with a rename, so that little is added
/// after the payload started. A failure costs only exec, with a warning in the journal.
pub(super) fn stage_for_exec(
    registry: &Registry,
    name: &Name,
    spec: &Spec,
    process: &ProcessPlan,
    security: &Security,
) -> Option<StagedSnapshot> {
    let dir = registry.state.dir(name);
    Snapshot::remove(&dir);
    let snapshot = Snapshot::new(
        process,
        security,
        spec.seccomp
            .clone()
            .unwrap_or(cleat::spec::Seccomp::Default),
        spec.group_add.clone(),
        std::env::var("INVOCATION_ID")
            .ok()
            .filter(|s| !s.is_empty()),
        rustix::process::getrlimit,
    );
    snapshot
        .stage(&dir)
        .map_err(|e| warn_unrecorded(name, &dir, &e))
        .ok()
}

/// Puts the record of [`stage_for_exec`] in place, once the container's payload runs.
pub(super) fn publish_for_exec(staged: Option<StagedSnapshot>, registry: &Registry, name: &Name) {
    if let Some(staged) = staged {
        if let Err(e) = staged.publish() {
            warn_unrecorded(name, &registry.state.dir(name), &e);
        }
    }
}

fn warn_unrecorded(name: &Name, dir: &std::path::Path, e: &io::Error) {
    diag::warning(format_args!(
        "{name}: recording its settings for `cleat exec` in {}: {e}",
        dir.display()
    ));
}
