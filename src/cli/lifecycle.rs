//! `start`, `stop`, `kill`, `restart` and `rm`, for both kinds of containers. Each takes
//! several names, carries on past a failing one, and fails at the end if any did (as Docker
//! does). systemd does the work: start and stop jobs, `KillUnit`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;

use cleat::containers::{Found, LookupError, Registry};
use cleat::spec::{Name, Signal};
use cleat::unit::dbus::{BusError, Systemd};
use cleat::unit::{Kind, unit_name};

use super::journal;
use super::run::{runtime_block, start_adhoc};
use super::{CmdResult, Failure, diag, name};
use cleat::volume::VolumeStore;

#[derive(Args)]
pub struct StartArgs {
    /// Stay attached: the container's output (or its terminal) here until it stops, then its
    /// exit status
    #[arg(short = 'a', long)]
    attach: bool,
    /// Pass standard input to the container (implies -a)
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Keys that detach from the container's terminal and leave it running
    #[arg(long, value_name = "KEYS", default_value = super::terminal::DEFAULT_DETACH_KEYS)]
    detach_keys: String,
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait for the container to exit before killing it (default, and at most: the
    /// container's stop-timeout, which systemd enforces)
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    time: Option<u64>,
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send (SIGKILL stops the container; other signals are only delivered)
    #[arg(
        short = 's',
        long = "signal",
        default_value = "SIGKILL",
        value_name = "SIGNAL"
    )]
    signal: String,
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

#[derive(Args)]
pub struct RestartArgs {
    /// Seconds to wait for the container to stop before killing it
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    time: Option<u64>,
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Kill and remove a running container
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove the container's anonymous volumes too (those it got from its image's VOLUME
    /// declarations); named volumes stay
    #[arg(short = 'v', long)]
    volumes: bool,
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

/// What `each` runs per container.
type Each<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;

/// Connects to systemd and runs `f` for every named container, printing each name that
/// succeeds and each failure as it comes; fails at the end if any failed (as Docker does).
fn each(
    names: &[String],
    f: impl for<'a> Fn(&'a Systemd, &'a Registry, Name) -> Each<'a>,
) -> CmdResult {
    runtime_block(async {
        let systemd = Systemd::connect().await.map_err(Failure::from)?;
        let registry = Registry::system();
        let mut failed = false;
        for arg in names {
            let result = match name(arg) {
                Ok(n) => f(&systemd, &registry, n).await,
                Err(f) => Err(f.error),
            };
            match result {
                Ok(()) => println!("{arg}"),
                Err(e) => {
                    diag::error(format!("{e:#}"));
                    failed = true;
                }
            }
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}

/// True if the unit is running (or starting, or stopping).
async fn is_running(systemd: &Systemd, unit: &str) -> anyhow::Result<bool> {
    Ok(systemd
        .state_if_loaded(unit)
        .await?
        .is_some_and(|s| s.is_running()))
}

pub fn start(args: StartArgs) -> CmdResult {
    if args.attach || args.interactive {
        return start_and_attach(&args);
    }
    each(&args.names, |systemd, registry, n| {
        Box::pin(start_one(systemd, registry, n))
    })
}

/// `start -a [-i]`: one container, started (unless it runs already) with this command attached
/// as `run` without -d would be, until it stops or the user detaches from its terminal.
fn start_and_attach(args: &StartArgs) -> CmdResult {
    let [one] = &args.names[..] else {
        return Err(Failure::from(anyhow!(
            "-a and -i attach to one container; name only one"
        )));
    };
    let keys = super::terminal::parse_detach_keys(&args.detach_keys)?;
    let name = name(one)?;
    let registry = Registry::system();
    let container = registry.load(&name)?;
    let unit = registry.unit_of(&name);
    let tty = container.spec.tty == Some(true);
    let interactive = args.interactive && container.spec.interactive == Some(true);
    runtime_block(async {
        let systemd = Systemd::connect().await?;
        let mut state = systemd.state_if_loaded(&unit).await?;
        if state
            .as_ref()
            .is_some_and(|s| s.active_state == "deactivating")
        {
            systemd.wait_stopped(&unit).await?;
            state = None;
        }
        let running = state.is_some_and(|s| s.is_running());
        if container.kind == Kind::Adhoc && !running {
            let record = registry
                .state
                .load_adhoc(&name)?
                .ok_or_else(|| anyhow!("no such container: {name}"))?;
            let streams = super::run::Streams {
                input: args.interactive,
                detach_keys: &keys,
            };
            return super::run::start_attached(&systemd, &registry, &record, streams)
                .await
                .map_err(|e| match e {
                    super::run::Attached::Start(f) => Failure::from(f.error),
                    super::run::Attached::Other(e) => Failure::from(e),
                });
        }
        // A declared container (systemd starts it: nothing of ours can be handed to it), or
        // one that runs already: its terminal, or its output from the journal.
        if tty {
            if !running {
                start_one(&systemd, &registry, name.clone()).await?;
            }
            return super::attach::attach_terminal(&systemd, &registry, &name, interactive, &keys)
                .await;
        }
        // From now: from before the start, so that nothing of this run is missed (the
        // container did not run, so nothing older comes with it).
        let now = cleat::time::now_usec();
        let from = if running {
            "--lines=0".to_owned()
        } else {
            format!("--since=@{}.{:06}", now / 1_000_000, now % 1_000_000)
        };
        let selection = journal::Selection {
            matches: journal::matches(&unit, None),
            options: vec![from],
            timestamps: false,
        };
        let mut failed = None;
        let stopped = async {
            if !running {
                if let Err(e) = start_one(&systemd, &registry, name.clone()).await {
                    failed = Some(e);
                    return;
                }
            }
            let _ = systemd.wait_stopped(&unit).await;
        };
        journal::follow_until(&selection, stopped).await?;
        if let Some(e) = failed {
            return Err(Failure::from(e));
        }
        let end = systemd.state_if_loaded(&unit).await?;
        Ok(super::run::exit_code_of(
            &registry,
            &name,
            None,
            end.as_ref(),
        ))
    })
}

async fn start_one(systemd: &Systemd, registry: &Registry, name: Name) -> anyhow::Result<()> {
    match registry.require(&name)? {
        Found::Declared(_) => {
            let unit = unit_name(Kind::Declared, &name);
            // A start by hand clears an earlier failure and systemd's start rate limit, as a
            // `docker start` resets the restart count.
            systemd.reset_failed(&unit).await?;
            let job = systemd.start(&unit).await?;
            if !job.is_done() {
                let state = systemd.state_if_loaded(&unit).await?.unwrap_or_default();
                let output = journal::excerpt(&unit, Some(&state.invocation_id), 20).await;
                return Err(anyhow!(
                    "container {name} failed to start (job {}):\n{output}",
                    job.0
                ));
            }
            Ok(())
        }
        Found::Adhoc => {
            let unit = unit_name(Kind::Adhoc, &name);
            match systemd.state_if_loaded(&unit).await? {
                // Still stopping: let it finish, then start afresh.
                Some(s) if s.active_state == "deactivating" => {
                    systemd.wait_stopped(&unit).await?;
                }
                Some(s) if s.is_running() => return Ok(()),
                _ => {}
            }
            let record = registry
                .state
                .load_adhoc(&name)?
                .ok_or_else(|| anyhow!("no such container: {name}"))?;
            match start_adhoc(systemd, registry, &record, &Default::default()).await {
                Ok(_) => Ok(()),
                // A concurrent start won the race: the container runs, which is what was asked.
                Err(_) if is_running(systemd, &unit).await? => Ok(()),
                Err(f) => Err(f.error),
            }
        }
    }
}

/// Stops a unit gracefully; with `timeout`, SIGKILLs what is left after that many seconds
/// (systemd's own TimeoutStopSec= still applies if it is shorter).
async fn stop_unit(systemd: &Systemd, unit: &str, timeout: Option<u64>) -> anyhow::Result<()> {
    let job = systemd.stop(unit);
    tokio::pin!(job);
    let result = match timeout {
        None => job.await,
        Some(secs) => {
            tokio::select! {
                r = &mut job => r,
                _ = tokio::time::sleep(Duration::from_secs(secs)) => {
                    // The container's PID 1 only: its death ends its PID namespace, and
                    // KillMode=mixed sweeps the rest. "all" would also hit ExecStopPost.
                    match systemd.kill(unit, "main", libc::SIGKILL).await {
                        // Gone already (it may have just exited on the stop signal): nothing to kill.
                        Ok(()) | Err(BusError::NoSuchUnit(_) | BusError::NoSuchProcess(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                    job.await
                }
            }
        }
    };
    match result {
        Ok(_) | Err(BusError::NoSuchUnit(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn stop(args: StopArgs) -> CmdResult {
    each(&args.names, |systemd, registry, n| {
        Box::pin(async move {
            let kind = registry.require(&n)?.kind();
            stop_unit(systemd, &unit_name(kind, &n), args.time).await
        })
    })
}

/// SIGKILL as `docker kill` means it: the container stops now and is not restarted. A stop
/// job (which suppresses the restart policy) plus an immediate SIGKILL to every process.
async fn kill_now(systemd: &Systemd, unit: &str) -> anyhow::Result<()> {
    if !is_running(systemd, unit).await? {
        return Ok(());
    }
    match systemd.stop_no_wait(unit).await {
        Ok(()) => {}
        Err(BusError::NoSuchUnit(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    // The main process only (see stop_unit): ExecStopPost= must survive to record the exit.
    match systemd.kill(unit, "main", libc::SIGKILL).await {
        // Gone already (it may have just exited on the stop signal): nothing to kill.
        Ok(()) | Err(BusError::NoSuchUnit(_) | BusError::NoSuchProcess(_)) => {}
        Err(e) => return Err(e.into()),
    }
    systemd.wait_stopped(unit).await?;
    Ok(())
}

pub fn kill(args: KillArgs) -> CmdResult {
    let signal: Signal = args
        .signal
        .parse()
        .map_err(|e| Failure::from(anyhow!("--signal: {e}")))?;
    each(&args.names, |systemd, registry, n| {
        Box::pin(async move {
            let unit = unit_name(registry.require(&n)?.kind(), &n);
            if !is_running(systemd, &unit).await? {
                return Err(anyhow!("container {n} is not running"));
            }
            if signal == Signal::KILL {
                kill_now(systemd, &unit).await
            } else {
                Ok(systemd.kill(&unit, "main", signal.number()).await?)
            }
        })
    })
}

pub fn restart(args: RestartArgs) -> CmdResult {
    each(&args.names, |systemd, registry, n| {
        Box::pin(async move {
            let unit = unit_name(registry.require(&n)?.kind(), &n);
            stop_unit(systemd, &unit, args.time).await?;
            start_one(systemd, registry, n).await
        })
    })
}

pub fn rm(args: RmArgs) -> CmdResult {
    each(&args.names, |systemd, registry, n| {
        Box::pin(async move {
            let found = match registry.require(&n) {
                // The name is both declared and ad-hoc: `rm` is how the ad-hoc one goes.
                Err(LookupError::Clash { .. }) => Found::Adhoc,
                other => other?,
            };
            let unit = unit_name(found.kind(), &n);
            if is_running(systemd, &unit).await? {
                if !args.force {
                    return Err(anyhow!(
                        "cannot remove container {n}: it is running; stop it first, or use `cleat rm -f`"
                    ));
                }
                kill_now(systemd, &unit).await?;
            }
            systemd.reset_failed(&unit).await?;
            if args.volumes {
                let outcome =
                    cleat::volume::remove_anonymous(&VolumeStore::system(), registry, &n)?;
                for (volume, users) in outcome.kept {
                    let users: Vec<String> = users.iter().map(ToString::to_string).collect();
                    diag::note(format!(
                        "volume {volume} stays: {} mount it with --volumes-from",
                        users.join(", ")
                    ));
                }
            }
            registry.state.remove(&n)?;
            if let Found::Declared(def) = found {
                diag::note(format!(
                    "{n} is declared in {}: its state is reset, its definition stays",
                    def.main.display()
                ));
            }
            Ok(())
        })
    })
}
