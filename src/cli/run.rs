//! `cleat run` and `cleat create`: an ad-hoc container from Docker-style flags, recorded in the
//! state directory and started as a transient unit (`StartTransientUnit`) in machine.slice.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{ArgAction, Args};

use cleat::containers::Registry;
use cleat::spec::flags::ContainerFlags;
use std::sync::Arc;

use cleat::image::manifest::Platform;
use cleat::image::parse_reference;
use cleat::image::pull;
use cleat::image::store::Store;
use cleat::spec::{Restart, Source, Spec};
use cleat::state::AdhocRecord;
use cleat::unit::dbus::{BusError, Systemd, UnitState, UnitStdio};
use cleat::unit::{Kind, props, unit_name};

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use super::journal;
use super::{CmdResult, EXIT_RUN_ERROR, Failure, diag};

#[derive(Args)]
pub struct RunArgs {
    /// Run in the background: print the name and return once the container is running
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keys that detach from a container's terminal (-it) and leave it running: ctrl-X or
    /// single characters, separated by commas; empty to turn detaching off
    #[arg(long, value_name = "KEYS", default_value = super::terminal::DEFAULT_DETACH_KEYS)]
    detach_keys: String,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(Args)]
pub struct CreateArgs {
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Platform of the image to pull (os/arch[/variant]); default: this machine's
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    #[command(flatten)]
    flags: ContainerFlags,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

fn run_error(e: impl Into<anyhow::Error>) -> Failure {
    Failure::with_code(EXIT_RUN_ERROR, e)
}

/// Checks that the spec can be started at all, before anything is recorded.
fn validate(spec: &Spec, auto_remove: bool) -> anyhow::Result<()> {
    // A profile file that cannot be read or compiled fails now, not at the first start.
    if let Some(setting @ cleat::spec::Seccomp::Profile(_)) = &spec.seccomp {
        let caps = cleat::runtime::caps::resolve(&spec.cap_add, &spec.cap_drop)?;
        cleat::runtime::seccomp::compile(setting, &caps)?;
    }
    if auto_remove && spec.restart.is_some_and(|r| r.restart != Restart::No) {
        return Err(anyhow!(
            "conflicting options: --restart and --rm (a container that removes itself cannot be restarted)"
        ));
    }
    // The rest is checked by `preflight`, after the image is in the store.
    Ok(())
}

/// Brings the container's image into the store as its pull policy says (showing progress),
/// and returns it (the container keeps its manifest digest).
fn pull_for_create(spec: &Spec, platform: &Platform) -> Result<Option<pull::LocalImage>, Failure> {
    let Source::Image(text) = &spec.source else {
        return Ok(None);
    };
    let reference = parse_reference(text).map_err(run_error)?;
    let store = Arc::new(Store::system().map_err(run_error)?);
    let policy = spec.pull.unwrap_or_default();
    let progress = super::image::progress_for_terminal(false);
    let image = super::runtime()
        .block_on(pull::ensure(
            &store,
            &reference,
            platform,
            policy,
            progress.as_ref(),
        ))
        .map_err(run_error)?;
    Ok(Some(image))
}

/// Records a new ad-hoc container (nothing is recorded if any check fails).
fn define(
    flags: &ContainerFlags,
    auto_remove: bool,
    platform: Option<&str>,
) -> Result<(Registry, AdhocRecord), Failure> {
    let spec = flags
        .to_spec(&|k| std::env::var(k).ok())
        .map_err(run_error)?;
    validate(&spec, auto_remove).map_err(run_error)?;
    let registry = Registry::system();
    if let Some(def) = registry.search.find(&spec.name).map_err(run_error)? {
        return Err(run_error(anyhow!(
            "the name {} is taken by the declared container in {}; choose another --name",
            spec.name,
            def.main.display()
        )));
    }
    let platform = super::image::platform(platform).map_err(|f| run_error(f.error))?;
    let local = pull_for_create(&spec, &platform)?;
    let image = local.as_ref().map(|l| l.manifest_digest.clone());
    // Everything a start would check (user and groups in the image, capabilities, seccomp
    // profile, mounts...), before the container exists.
    super::prepare::check(&spec, local, &registry).map_err(run_error)?;
    let id = cleat::state::new_id()
        .map_err(|e| run_error(anyhow!("reading /dev/urandom for a container ID: {e}")))?;
    let record = AdhocRecord {
        id,
        spec,
        created_usec: cleat::time::now_usec(),
        image,
        auto_remove,
    };
    registry.state.create_adhoc(&record).map_err(run_error)?;
    Ok((registry, record))
}

/// The spec as the unit sees it: the image's StopSignal applies where the spec sets none
/// (Docker's precedence). The other image defaults are applied at each start.
fn with_image_defaults(record: &AdhocRecord) -> Spec {
    let mut spec = record.spec.clone();
    if spec.stop_signal.is_none() {
        spec.stop_signal = image_stop_signal(record);
    }
    spec
}

fn image_stop_signal(record: &AdhocRecord) -> Option<cleat::spec::Signal> {
    let (Source::Image(text), Some(digest)) = (&record.spec.source, &record.image) else {
        return None;
    };
    let reference = parse_reference(text).ok()?;
    let store = Store::system().ok()?;
    pull::load_manifest(&store, &reference, digest)
        .ok()?
        .config
        .defaults
        .stop_signal
}

/// The absolute path systemd should run for `ExecStart=`: this very binary.
fn exe() -> anyhow::Result<String> {
    let exe = cleat::sealed::own_path().context("finding cleat's own path")?;
    exe.to_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("cleat's path {} is not UTF-8", exe.display()))
}

/// A start that failed: the message (with what the run printed), and the exit status of the
/// container's process if it got as far as running (126 or 127 for a command that could not
/// be executed, as in Docker).
pub struct StartFailure {
    pub error: anyhow::Error,
    pub status: Option<i32>,
}

impl<E: Into<anyhow::Error>> From<E> for StartFailure {
    fn from(e: E) -> StartFailure {
        StartFailure {
            error: e.into(),
            status: None,
        }
    }
}

/// Starts an ad-hoc container's transient unit and waits for the start job. The calling
/// connection holds a reference to the unit (`AddRef`), so its final state can be read even if
/// it stops at once.
pub async fn start_adhoc(
    systemd: &Systemd,
    registry: &Registry,
    record: &AdhocRecord,
    stdio: &UnitStdio<'_>,
) -> Result<UnitState, StartFailure> {
    let spec = &with_image_defaults(record);
    let unit = unit_name(Kind::Adhoc, &spec.name);
    // Its unit binds to the other's: say so clearly rather than as a failed dependency.
    if let Some(cleat::spec::NetworkMode::Container(other)) = &spec.network {
        let running = systemd
            .state_if_loaded(&registry.unit_of(other))
            .await?
            .is_some_and(|s| s.active_state == "active" || s.active_state == "reloading");
        if !running {
            let why = if registry.find(other).ok().flatten().is_none() {
                "no such container"
            } else {
                "it is not running"
            };
            return Err(StartFailure {
                error: anyhow!("network container:{other}: {why}"),
                status: None,
            });
        }
    }
    let unit_of = |n: &cleat::spec::Name| registry.unit_of(n);
    let mut props = props::transient(spec, &record.id, &exe()?, &unit_of);
    if stdio.stdout.is_some() {
        // cleat passes the output on (see `console::Streams`), and the unit lasts until it has.
        props.push(props::Prop::Environment(vec![format!(
            "{}=1",
            cleat::runtime::console::RELAY_ENV
        )]));
        props.push(props::Prop::ExitType("cgroup"));
    }
    let mut attempt = 0;
    let job = loop {
        match systemd.start_transient_with(&unit, &props, stdio).await {
            // A unit of the same name that just stopped may not be garbage-collected yet.
            Err(BusError::Call(msg)) if msg.contains("already exists") && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => break other?,
        }
    };
    let state = systemd.state_if_loaded(&unit).await?.unwrap_or_default();
    if !job.is_done() {
        // cleat's own messages went to the caller's stderr already when it has the unit's.
        let output = if stdio.stderr.is_some() {
            String::new()
        } else {
            journal::excerpt(&unit, Some(&state.invocation_id), 20).await
        };
        let mut msg = format!("container {} failed to start (job {})", spec.name, job.0);
        if !output.is_empty() {
            msg.push_str(":\n");
            msg.push_str(&output);
        }
        return Err(StartFailure {
            error: anyhow!(msg),
            status: exit_status(&state),
        });
    }
    Ok(state)
}

/// The exit status to report for a finished run: the payload's, as a shell reports it.
pub fn exit_status(state: &UnitState) -> Option<i32> {
    match state.exec_main_code {
        1 => Some(state.exec_main_status),
        2 | 3 => Some(128 + state.exec_main_status),
        _ => None,
    }
}

/// The exit status to end with once a container has stopped: from its unit's last state,
/// else from the record its ExecStopPost wrote (kept under its ID when `--rm` removed it).
pub fn exit_code_of(
    registry: &Registry,
    name: &cleat::spec::Name,
    id: Option<&str>,
    end: Option<&UnitState>,
) -> ExitCode {
    let kept = id.and_then(cleat::state::take_kept_exit);
    let code = end
        .and_then(exit_status)
        .or_else(|| {
            registry
                .state
                .read_exit(name)
                .ok()
                .flatten()
                .and_then(|e| e.exit_code)
        })
        .or_else(|| kept.and_then(|e| e.exit_code))
        .unwrap_or(i32::from(EXIT_RUN_ERROR));
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(EXIT_RUN_ERROR))
}

pub fn run(args: RunArgs) -> CmdResult {
    let flags = &args.create.flags;
    let detach_keys = super::terminal::parse_detach_keys(&args.detach_keys).map_err(run_error)?;
    // Docker's check: keys for a terminal must come from one.
    if flags.tty && flags.interactive && !args.detach && !std::io::stdin().is_terminal() {
        return Err(run_error(anyhow!(
            "the input device is not a TTY: -it needs a terminal on standard input (use -i \
             alone to pipe input)"
        )));
    }
    let (registry, record) = define(flags, args.create.rm, args.create.platform.as_deref())?;
    let name = record.spec.name.clone();
    runtime_block(async {
        let systemd = match Systemd::connect().await {
            Ok(s) => s,
            Err(e) => {
                let _ = registry.state.remove(&name);
                return Err(run_error(e));
            }
        };
        if args.detach {
            if let Err(f) = start_adhoc(&systemd, &registry, &record, &UnitStdio::default()).await {
                return Err(start_failed(&registry, &record, f));
            }
            println!("{name}");
            return Ok(ExitCode::SUCCESS);
        }
        let streams = Streams {
            input: flags.interactive,
            detach_keys: &detach_keys,
        };
        start_attached(&systemd, &registry, &record, streams)
            .await
            .map_err(|f| match f {
                Attached::Start(f) => start_failed(&registry, &record, f),
                Attached::Other(e) => run_error(e),
            })
    })
}

/// A failed start: with `--rm`, the container goes; the exit status is the payload's if it
/// ran (126, 127), else Docker's 125.
fn start_failed(registry: &Registry, record: &AdhocRecord, f: StartFailure) -> Failure {
    if record.auto_remove {
        let _ = registry.state.remove(&record.spec.name);
    }
    let code = f
        .status
        .and_then(|s| u8::try_from(s).ok())
        .filter(|s| *s != 0)
        .unwrap_or(EXIT_RUN_ERROR);
    Failure::with_code(code, f.error)
}

/// How a command that waits for the container (`run` without -d, `start -a`) connects to it.
pub struct Streams<'a> {
    /// Our standard input goes to the container (`-i`).
    pub input: bool,
    pub detach_keys: &'a [u8],
}

/// Why an attached start ended in error.
pub enum Attached {
    Start(StartFailure),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Attached {
    fn from(e: E) -> Attached {
        Attached::Other(e.into())
    }
}

/// Starts an ad-hoc container with this command attached, and returns once it has stopped
/// (with its exit status) or the user detached from its terminal (success). With a
/// terminal: a session over a socket whose other end is the unit's stdin (cleat, beside the
/// container, serves it). Without: this command's stdout and stderr (and stdin with -i) given
/// to the unit, as `systemd-run --pipe` does.
pub async fn start_attached(
    systemd: &Systemd,
    registry: &Registry,
    record: &AdhocRecord,
    streams: Streams<'_>,
) -> Result<ExitCode, Attached> {
    let unit = unit_name(Kind::Adhoc, &record.spec.name);
    let tty = record.spec.tty == Some(true);
    let mut session = None;
    let mut input_pipe = None;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let stdio = if tty {
        let (ours, theirs) = UnixStream::pair()?;
        // The size goes first, so the payload never sees another.
        let (rows, cols) = super::attach::local_size();
        (&ours).write_all(&cleat::runtime::console::resize_frame(rows, cols))?;
        session = Some((ours, theirs));
        UnitStdio {
            stdin: session.as_ref().map(|(_, theirs)| theirs.as_fd()),
            ..UnitStdio::default()
        }
    } else {
        // A terminal never goes into a container: a process left behind there could read
        // what is typed into it long after (cleat copies into a pipe instead). Anything
        // else is given as it is.
        if streams.input && stdin.is_terminal() {
            input_pipe = Some(copy_stdin_through_pipe()?);
        }
        UnitStdio {
            stdin: match &input_pipe {
                Some(pipe) => Some(pipe.as_fd()),
                None => streams.input.then(|| stdin.as_fd()),
            },
            stdout: Some(stdout.as_fd()),
            stderr: Some(stderr.as_fd()),
        }
    };
    let signals = if tty { None } else { Some(Forwarded::catch()?) };
    let started = start_adhoc(systemd, registry, record, &stdio).await;
    // The unit has its own copy: ours would keep the pipe open after the container ends.
    drop(input_pipe);
    let session = session.map(|(ours, theirs)| {
        drop(theirs);
        ours
    });
    started.map_err(Attached::Start)?;
    let end = match session {
        Some(sock) => {
            let interactive = record.spec.interactive == Some(true);
            match super::attach::session(sock, interactive, streams.detach_keys).await {
                super::attach::SessionEnd::Detached => return Ok(ExitCode::SUCCESS),
                super::attach::SessionEnd::Closed => systemd.wait_stopped(&unit).await,
            }
        }
        None => match signals {
            Some(signals) => wait_forwarding_signals(systemd, &unit, signals).await,
            None => systemd.wait_stopped(&unit).await,
        },
    }?;
    Ok(exit_code_of(
        registry,
        &record.spec.name,
        Some(&record.id),
        end.as_ref(),
    ))
}

/// A pipe whose read end is to be the container's standard input, fed from ours by a thread
/// (until our input ends, or the container stops reading).
fn copy_stdin_through_pipe() -> std::io::Result<std::os::fd::OwnedFd> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    std::thread::spawn(move || {
        let mut pipe = std::fs::File::from(write);
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut pipe);
    });
    Ok(read)
}

/// The signals a foreground run passes on, caught from before the container starts (so that
/// one arriving meanwhile is not lost, nor ends cleat).
struct Forwarded {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Forwarded {
    fn catch() -> std::io::Result<Forwarded> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Forwarded {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Waits for the unit to stop; SIGINT, SIGTERM and SIGHUP received meanwhile are passed on to
/// the container's main process, as `docker run` does. A second Ctrl-C stops the container
/// (its stop signal, then SIGKILL after its timeout), a third kills it at once: a payload
/// that, as PID 1, ignores SIGINT cannot hold the terminal hostage.
async fn wait_forwarding_signals(
    systemd: &Systemd,
    unit: &str,
    signals: Forwarded,
) -> Result<Option<UnitState>, BusError> {
    let Forwarded {
        mut int,
        mut term,
        mut hup,
    } = signals;
    let wait = systemd.wait_stopped(unit);
    tokio::pin!(wait);
    let mut interrupts = 0;
    loop {
        let sig = tokio::select! {
            end = &mut wait => return end,
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
            _ = hup.recv() => libc::SIGHUP,
        };
        if sig == libc::SIGINT {
            interrupts += 1;
        }
        let result = match interrupts {
            2 if sig == libc::SIGINT => {
                diag::warning(format_args!(
                    "stopping the container (press Ctrl-C again to kill it)"
                ));
                systemd.stop_no_wait(unit).await
            }
            n if n >= 3 && sig == libc::SIGINT => systemd.kill(unit, "all", libc::SIGKILL).await,
            _ => systemd.kill(unit, "main", sig).await,
        };
        if let Err(e) = result {
            diag::warning(format!("passing signal {sig} to the container: {e}"));
        }
    }
}

pub fn create(args: CreateArgs) -> CmdResult {
    let (_, record) = define(&args.flags, args.rm, args.platform.as_deref())?;
    println!("{}", record.spec.name);
    Ok(ExitCode::SUCCESS)
}

/// Runs a future on a fresh single-threaded runtime.
pub fn runtime_block<F: std::future::Future<Output = CmdResult>>(f: F) -> CmdResult {
    super::runtime().block_on(f)
}
