//! The commands systemd runs: `internal start` (a container unit's `ExecStart=`),
//! `internal stopped` (its `ExecStopPost=`) and `internal network-idle` (a timer's, after the
//! last container left a network). `internal man` and `internal completions` (see `docs.rs`)
//! are for `make install`.
//!
//! `start` reads the definition afresh (so editing the TOML and restarting is enough), warns
//! if unit-level settings changed since the last daemon-reload, applies resource limits live,
//! plans the root file system and the process, and launches the container. It stays
//! single-threaded until the clone: any D-Bus work runs on a runtime that is gone by then.

use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::Subcommand;

use cleat::containers::{Container, Registry};
use std::path::PathBuf;
use std::sync::Arc;

use cleat::image::manifest::Platform;
use cleat::image::progress::Plain;
use cleat::image::pull::{self, LocalImage};
use cleat::image::store::Store;
use cleat::network::attach;
use cleat::rootfs::Overlay;
use cleat::rootfs::{RootfsOptions, RootfsPlan};
use cleat::runtime::launch::{self, Launch, Outcome};
use cleat::runtime::{EXIT_SETUP, notify, process};
use cleat::spec::{NetworkMode, PullPolicy};
use cleat::spec::{Notify, Source, Spec};
use cleat::state::ExitRecord;
use cleat::state::ImageUse;
use cleat::unit::generator::{DIGEST_ENV, DROPIN_NAME, unit_level_digest};
use cleat::unit::props;
use cleat::unit::{Kind, unit_name};
use cleat::volume::VolumeStore;

use super::{CmdResult, Failure, diag, name, prepare};

#[derive(Subcommand)]
pub enum InternalCommand {
    /// Start a container (ExecStart= of its unit)
    Start {
        #[arg(long, conflicts_with = "adhoc", required_unless_present = "adhoc")]
        declared: bool,
        #[arg(long)]
        adhoc: bool,
        name: String,
    },
    /// Record how a container's run ended and clean up (ExecStopPost= of its unit)
    Stopped {
        #[arg(long, conflicts_with = "adhoc", required_unless_present = "adhoc")]
        declared: bool,
        #[arg(long)]
        adhoc: bool,
        name: String,
    },
    /// Take a network down if no container uses it (run by a timer after the last one left)
    NetworkIdle { network: String },
    /// Manual pages and shell completions (for `make install`)
    #[command(flatten)]
    Docs(super::docs::DocsCommand),
}

pub fn internal(cmd: InternalCommand) -> CmdResult {
    match cmd {
        InternalCommand::Start { adhoc, name: n, .. } => {
            let kind = if adhoc { Kind::Adhoc } else { Kind::Declared };
            start(kind, &n).map_err(|e| {
                // A command that cannot be run ends the unit as Docker ends the container: 126
                // or 127. Anything else is cleat's failure to set the container up: 125.
                let code = match e.downcast_ref::<launch::LaunchError>() {
                    Some(launch::LaunchError::Exec { code, .. }) => *code,
                    _ => EXIT_SETUP as u8,
                };
                Failure::with_code(code, e)
            })
        }
        InternalCommand::Stopped { adhoc, name: n, .. } => {
            let kind = if adhoc { Kind::Adhoc } else { Kind::Declared };
            stopped(kind, &n)
        }
        InternalCommand::NetworkIdle { network } => {
            cleat::network::store::check_name(&network)?;
            let registry = Registry::system();
            attach::take_down_if_idle(&network, &super::network::Known(&registry))
                .with_context(|| format!("taking network {network} down"))?;
            Ok(ExitCode::SUCCESS)
        }
        InternalCommand::Docs(cmd) => super::docs::docs(cmd),
    }
}

/// Loads the container of the given kind, refusing a name that both kinds claim.
fn load(registry: &Registry, kind: Kind, name: &cleat::spec::Name) -> anyhow::Result<Container> {
    let container = registry.load(name)?;
    if container.kind != kind {
        return Err(anyhow!(
            "{} is now {} container, not {} one; stop this unit",
            name,
            if container.kind == Kind::Declared {
                "a declared"
            } else {
                "an ad-hoc"
            },
            if kind == Kind::Declared {
                "a declared"
            } else {
                "an ad-hoc"
            },
        ));
    }
    Ok(container)
}

/// A foreground run's output (`cleat run` without -d or -t): the caller's stdout and stderr,
/// which systemd gave this process, and journal streams for copies of the container's output.
/// What cleat itself says goes to the caller's stderr (so a failed start explains itself at
/// once) and to a journal stream of its own (so the journal has it as for any run).
struct CallerOutput {
    to_caller: [std::os::fd::OwnedFd; 2],
    to_journal: [std::os::fd::OwnedFd; 2],
}

fn take_over_output(name: &cleat::spec::Name) -> anyhow::Result<Option<CallerOutput>> {
    if std::env::var_os(cleat::runtime::console::RELAY_ENV).is_none() {
        return Ok(None);
    }
    let stream = || {
        cleat::runtime::console::journal_stream(name.as_str(), 6)
            .context("connecting to the journal")
    };
    diag::mirror_to(stream()?);
    Ok(Some(CallerOutput {
        to_caller: [
            rustix::io::fcntl_dupfd_cloexec(std::io::stdout(), 3)?,
            rustix::io::fcntl_dupfd_cloexec(std::io::stderr(), 3)?,
        ],
        to_journal: [stream()?, stream()?],
    }))
}

fn start(kind: Kind, arg: &str) -> Result<ExitCode, anyhow::Error> {
    let name = name(arg).map_err(|f| f.error)?;
    let registry = Registry::system();
    let loaded = load(&registry, kind, &name);
    // `--init` is cleat's code that stays in the container as its PID 1: it runs from a sealed
    // copy of cleat, never from the host's binary (see `cleat::sealed`). Before anything that
    // must not happen twice (the copy starts over); only then, so a start without an init
    // costs nothing more.
    if loaded.as_ref().is_ok_and(|c| c.spec.init == Some(true)) {
        cleat::sealed::reexec_sealed().context("running the init from a sealed copy of cleat")?;
    }
    let caller_output = take_over_output(&name)?;
    let container = loaded?;
    let spec = &container.spec;
    if kind == Kind::Declared {
        warn_if_reload_needed(spec);
        apply_resources_live(spec);
    }
    let local = match &spec.source {
        Source::Rootfs(_) => None,
        Source::Image(text) => Some(image_for_start(&registry, &container, text)?),
    };
    let content = prepare::content(spec, local)?;
    let (process, security) = prepare::plan(spec, &content)?;
    let image = &content.image;
    // The layers (or the rootfs directory, as the one read-only layer: it is never written
    // to, and any number of containers can share it) under the container's own upper layer.
    let (upper, work, root) = registry.state.overlay_dirs(&name)?;
    let overlay = Some(Overlay {
        lower: content.lower.clone(),
        upper,
        work,
    });
    let network_mode = spec.network_mode();
    let host_network = network_mode == NetworkMode::Host;
    // What a start that crashed (or whose stop never ran) left on the network first.
    detach_leftovers(&registry, &name);
    prepare::check_network(spec)?;
    // `container:NAME`: that container's network namespace, held open until the launch.
    let joined = match &network_mode {
        NetworkMode::Container(other) => Some(other_network(&registry, other)?),
        _ => None,
    };
    let attachment = match &network_mode {
        NetworkMode::Network(network) => {
            Some(attach_network(&registry, &name, spec, image, network)?)
        }
        _ => None,
    };
    // From here, a failed start gives back what attach_network took.
    let result = start_attached(
        &registry,
        &name,
        spec,
        caller_output,
        StartParts {
            process,
            security,
            image,
            root,
            overlay,
            host_network,
            attachment: attachment.as_ref(),
            joined: joined.as_ref(),
        },
    );
    if result.is_err() && attachment.is_some() {
        detach_leftovers(&registry, &name);
    }
    result
}

/// What `start` has worked out before launching.
struct StartParts<'a> {
    process: process::ProcessPlan,
    security: launch::Security,
    image: &'a cleat::image::ImageConfig,
    root: PathBuf,
    overlay: Option<Overlay>,
    host_network: bool,
    attachment: Option<&'a attach::Attachment>,
    /// The network namespace of the container this one shares (`container:NAME`) and that
    /// container's state directory.
    joined: Option<&'a (std::fs::File, PathBuf)>,
}

/// The network namespace of the running container `other` (`network = "container:NAME"`), and
/// its state directory (its /etc/hosts and /etc/resolv.conf are this one's too, as Docker's).
fn other_network(
    registry: &Registry,
    other: &cleat::spec::Name,
) -> anyhow::Result<(std::fs::File, PathBuf)> {
    let unit = registry.unit_of(other);
    let not_running = || anyhow!("network container:{other}: container {other} is not running");
    if registry.find(other)?.is_none() {
        return Err(anyhow!("network container:{other}: no such container"));
    }
    // A runtime confined to this block: dropping it joins its threads before the clone.
    let main_pid = || -> anyhow::Result<Option<u32>> {
        super::runtime().block_on(async {
            let systemd = cleat::unit::dbus::Systemd::connect().await?;
            Ok(systemd
                .state_if_loaded(&unit)
                .await?
                .filter(|s| s.active_state == "active" || s.active_state == "reloading")
                .map(|s| s.main_pid)
                .filter(|p| *p != 0))
        })
    };
    let pid = main_pid()?.ok_or_else(not_running)?;
    let path = format!("/proc/{pid}/ns/net");
    let netns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    // The PID could have ended and been reused between the two: still the same main process?
    if main_pid()? != Some(pid) {
        return Err(not_running());
    }
    Ok((netns, registry.state.dir(other)))
}

/// Takes back what a container still has on a network (its stop did not run), and forgets it.
fn detach_leftovers(registry: &Registry, name: &cleat::spec::Name) {
    let dir = registry.state.dir(name);
    let old = attach::load(&dir);
    if let Some(old) = &old {
        if let Err(e) = attach::detach(old, name.as_str()) {
            diag::warning(format_args!("{name}: leaving network {}: {e}", old.network));
        }
    }
    attach::forget(&dir);
    if let Some(old) = old {
        super::network::refresh_names(registry, &old.network);
        super::network::take_down_later(registry, &old.network);
    }
}

/// Prepares the container's place on a bridge network (address, bridge, rules, host ports)
/// and records it.
fn attach_network(
    registry: &Registry,
    name: &cleat::spec::Name,
    spec: &Spec,
    image: &cleat::image::ImageConfig,
    network: &str,
) -> anyhow::Result<attach::Attachment> {
    let definition = cleat::network::store::NetworkStore::system().require(network)?;
    let mut ports = spec.ports.clone();
    if spec.publish_all == Some(true) {
        ports.extend(cleat::network::ports::expose_all(&image.exposed_ports)?);
    }
    // A lease's owner holds it while it is marked: from before it takes its addresses until
    // its stop (or its next start, after a crash).
    let dir = registry.state.dir(name);
    attach::mark(&dir, network).with_context(|| format!("marking {}", dir.display()))?;
    let request = attach::Request {
        ports: &ports,
        ip: spec.ip,
        ip6: spec.ip6,
        aliases: &spec.network_aliases,
    };
    let recorded = attach::prepare(
        &definition,
        name.as_str(),
        &request,
        &super::network::Known(registry),
    )
    .map_err(|e| anyhow::Error::new(e).context(format!("joining network {network}")))
    .and_then(|a| match attach::save(&dir, &a) {
        Ok(()) => Ok(a),
        Err(e) => {
            let _ = attach::detach(&a, name.as_str());
            Err(anyhow!("recording the network in {}: {e}", dir.display()))
        }
    });
    if recorded.is_err() {
        attach::forget(&dir);
        // What the failed start brought up goes once nobody uses it.
        super::network::take_down_later(registry, network);
    }
    recorded
}

fn start_attached(
    registry: &Registry,
    name: &cleat::spec::Name,
    spec: &Spec,
    caller_output: Option<CallerOutput>,
    parts: StartParts<'_>,
) -> Result<ExitCode, anyhow::Error> {
    let StartParts {
        process,
        security,
        image,
        root,
        overlay,
        host_network,
        attachment,
        joined,
    } = parts;
    let address = attachment.and_then(|a| a.addresses.first().map(|(ip, _)| *ip));
    let mut etc_files = etc_files(registry, name, spec, &process, host_network, address)?;
    if let Some((_, other)) = joined {
        // The other container's view of names, kept as it changes (its files, bound).
        for (source, target) in &mut etc_files {
            let theirs = other.join(source.file_name().unwrap_or_default());
            if target != "/etc/hostname" && theirs.is_file() {
                *source = theirs;
            }
        }
    }
    if let Some(a) = attachment {
        // Its /etc/hosts and the other containers' know each other's names from now on.
        super::network::refresh_names(registry, &a.network);
    }
    let extra = cleat::rootfs::volumes::plan_mounts(spec, image, &VolumeStore::system(), registry)?;
    let notify_mode = spec.notify.unwrap_or_default();
    // The container's notifications go through a relay of ours (see `notify::Relay`), never
    // straight to systemd's socket.
    let relay = match notify_mode {
        Notify::Container if notify::supervised() => {
            // An abstract socket is reachable from any process of the network namespace: with
            // the host's, the container could bypass the relay.
            if host_network
                && std::env::var_os("NOTIFY_SOCKET")
                    .is_some_and(|s| s.as_encoded_bytes().starts_with(b"@"))
            {
                return Err(anyhow!(
                    "notify = \"container\" with network = \"host\" needs systemd's notification \
                     socket to be a file, not an abstract socket"
                ));
            }
            let path = registry.state.dir(name).join("notify");
            Some(
                notify::Relay::bind(&path)
                    .with_context(|| format!("making the notification relay {}", path.display()))?,
            )
        }
        _ => None,
    };
    let options = RootfsOptions {
        read_only: spec.read_only.unwrap_or(false),
        etc_files,
        extra,
        workdir: Some(process.cwd.clone()),
        notify_socket: relay.as_ref().map(|r| r.path().to_owned()),
    };
    let mut process = process;
    if options.notify_socket.is_some() {
        process.env.push(format!(
            "NOTIFY_SOCKET={}",
            cleat::rootfs::CONTAINER_NOTIFY_SOCKET
        ));
        process.env.sort();
    }
    let rootfs = RootfsPlan::new(root, overlay, &options);
    let tty = spec.tty.unwrap_or(false);
    // A foreground run: the payload's stdout and stderr are pipes that cleat passes on.
    let caller_output = caller_output.filter(|_| !tty);
    let pipes = match caller_output {
        Some(_) => {
            let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
            Some([pipe()?, pipe()?])
        }
        None => None,
    };
    let listener = if tty {
        Some(console_listener(&registry.state.dir(name))?)
    } else {
        None
    };
    // `cleat run -it` connects before the unit starts: its socket is the unit's stdin.
    let stdin = std::io::stdin();
    let first_client =
        (tty && cleat::runtime::console::is_socket(stdin.as_fd())).then(|| stdin.as_fd());
    let connect =
        attachment.map(|a| move |pid: i32| attach::connect(a, pid).map_err(|e| e.to_string()));
    let l = Launch {
        rootfs: &rootfs,
        process: &process,
        namespaces: launch::namespaces(!host_network && joined.is_none()),
        notify: notify_mode,
        security: &security,
        init: spec.init.unwrap_or(false),
        connect_network: connect
            .as_ref()
            .map(|c| c as &dyn Fn(i32) -> Result<(), String>),
        join_network: joined.map(|(netns, _)| std::os::fd::AsFd::as_fd(netns)),
        terminal: tty.then_some(launch::Terminal { first_client }),
        output_pipes: pipes
            .as_ref()
            .map(|[(_, out), (_, err)]| [out.as_fd(), err.as_fd()]),
    };
    // What `cleat exec` needs, put in place only once the payload runs (see there).
    let for_exec = super::exec::stage_for_exec(registry, name, spec, &process, &security);
    let outcome = launch::launch(&l)?;
    // The container started: the volumes it filled stay filled.
    if let Err(e) = cleat::rootfs::volumes::mark_filled(&rootfs.mounts, &VolumeStore::system()) {
        diag::warning(format_args!(
            "recording the volumes filled from the image: {e}"
        ));
    }
    match outcome {
        // The container runs: whatever happens now is not a failed start (its network stays).
        Outcome::HandedOver {
            pidfd, terminal, ..
        } => {
            super::exec::publish_for_exec(for_exec, registry, name);
            // From here this process only passes things on, and ends by itself when the
            // container has: `systemctl kill` (every process of the unit by default) is for
            // the container, not for it.
            ignore_signals();
            // The container's terminal, held here until the container has ended.
            let console = match (terminal, listener) {
                (Some(master), Some(listener)) => {
                    let console = cleat::runtime::console::Console {
                        master,
                        listener: listener.into(),
                        first_client: first_client.map(|c| c.try_clone_to_owned()).transpose()?,
                        interactive: spec.interactive.unwrap_or(false),
                        main: pidfd.try_clone()?,
                    };
                    Some(std::thread::spawn(move || {
                        cleat::runtime::console::serve(console)
                    }))
                }
                _ => None,
            };
            // The output of a foreground run, until the container has none left to give.
            let streams = match (pipes, caller_output) {
                (Some([(out, out_w), (err, err_w)]), Some(c)) => {
                    // Only the container may hold the write ends now: its end is their end.
                    drop((out_w, err_w));
                    let streams = cleat::runtime::console::Streams {
                        from_payload: [out, err],
                        to_caller: c.to_caller,
                        to_journal: c.to_journal,
                    };
                    Some(std::thread::spawn(move || {
                        cleat::runtime::console::pass_on_streams(streams)
                    }))
                }
                _ => None,
            };
            let result = relay_notifications(relay, &pidfd);
            for relay in [streams, console].into_iter().flatten() {
                let _ = relay.join();
            }
            result
        }
        // Not under systemd, no ExecStopPost: the network goes now.
        Outcome::Exited(code) => {
            if attachment.is_some() {
                detach_leftovers(registry, name);
            }
            Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)))
        }
    }
}

/// Signals a `systemctl kill` or a terminal may send to cleat's start process once it has
/// handed the container over and stays only to pass its terminal or output on.
fn ignore_signals() {
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPIPE,
    ] {
        // SAFETY: sets a standard disposition; no handler runs.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

/// With `notify = "container"`: relays the container's notifications until it ends.
fn relay_notifications(
    relay: Option<notify::Relay>,
    pidfd: &std::os::fd::OwnedFd,
) -> Result<ExitCode, anyhow::Error> {
    if let Some(relay) = relay {
        if let Err(e) = relay.run(pidfd.as_fd()) {
            diag::error(format_args!(
                "relaying the container's notifications to systemd: {e}"
            ));
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The socket `cleat attach` connects to (cleat, beside the container, listens on it), made afresh
/// in the container's state directory, which only root can enter.
fn console_listener(dir: &Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    let path = dir.join(cleat::state::CONSOLE_SOCKET);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow!("removing the old {}: {e}", path.display())),
    }
    std::os::unix::net::UnixListener::bind(&path)
        .with_context(|| format!("making the terminal's socket {}", path.display()))
}

/// Writes the container's /etc/hostname, /etc/hosts and /etc/resolv.conf into its state
/// directory (at every start: the host's resolver may have changed) and returns what to bind
/// where.
fn etc_files(
    registry: &Registry,
    name: &cleat::spec::Name,
    spec: &Spec,
    process: &process::ProcessPlan,
    host_network: bool,
    address: Option<std::net::IpAddr>,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let dir = registry.state.dir(name);
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let hosts = if host_network {
        read("/etc/hosts")
            .unwrap_or_else(|| cleat::runtime::etc::hosts(&process.hostname, None, None))
    } else {
        cleat::runtime::etc::hosts(&process.hostname, process.domainname.as_deref(), address)
    };
    let added: Vec<(String, std::net::IpAddr)> = spec
        .add_hosts
        .iter()
        .filter_map(|e| cleat::spec::parse_add_host(e).ok())
        .collect();
    let hosts = cleat::runtime::etc::add_hosts(&hosts, &added);
    let resolv = cleat::runtime::etc::resolv_conf(
        &read("/etc/resolv.conf").unwrap_or_default(),
        read("/run/systemd/resolve/resolv.conf").as_deref(),
        host_network,
    );
    let resolv = cleat::runtime::etc::override_resolv_conf(
        &resolv,
        &cleat::runtime::etc::DnsOverrides {
            servers: &spec.dns,
            search: &spec.dns_search,
            options: &spec.dns_options,
        },
    );
    let files = [
        (
            "hostname",
            cleat::runtime::etc::hostname(&process.hostname),
            "/etc/hostname",
        ),
        ("hosts", hosts, "/etc/hosts"),
        ("resolv.conf", resolv, "/etc/resolv.conf"),
    ];
    let mut out = Vec::new();
    for (file, text, target) in files {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        out.push((path, target.to_owned()));
    }
    Ok(out)
}

/// The image a start uses: an ad-hoc container's, the one it was created from; a declared
/// one's, whatever its reference names now, pulled as its pull policy says (with plain
/// progress in the journal, and the start timeout extended while bytes flow). Recorded in the
/// container's state so the image is not removed under it.
fn image_for_start(
    registry: &Registry,
    container: &Container,
    text: &str,
) -> anyhow::Result<LocalImage> {
    let reference = cleat::image::parse_reference(text)?;
    let store = Arc::new(Store::system()?);
    let pinned = container.record.as_ref().and_then(|r| r.image.clone());
    let image = match pinned {
        Some(digest) => pull::load_manifest(&store, &reference, &digest).map_err(|e| {
            anyhow!("{e}\nhint: the image this container was created from is no longer complete in the store; remove the container and run it again")
        })?,
        None => {
            let policy = spec_pull_policy(container);
            let progress = Plain::new(notify::supervised());
            // A runtime confined to this block: dropping it joins its threads before the clone.
            super::runtime().block_on(pull::ensure(&store, &reference, &Platform::host(), policy, &progress))?
        }
    };
    registry.state.write_image_use(
        &container.name,
        &ImageUse {
            reference: reference.to_string(),
            digest: image.manifest_digest.clone(),
        },
    )?;
    Ok(image)
}

fn spec_pull_policy(container: &Container) -> PullPolicy {
    container.spec.pull.unwrap_or_default()
}

/// Unit-level settings reach systemd only through the generator: if the definition says
/// something else now than at the last daemon-reload, say so.
fn warn_if_reload_needed(spec: &Spec) {
    let compiled = std::env::var(DIGEST_ENV).ok();
    let now = unit_level_digest(spec);
    // No digest: no drop-in, i.e. the generator has not seen this definition yet. Only a
    // definition with unit-level settings then needs a reload.
    let stale = match compiled {
        Some(d) => d != now,
        None => now != unit_level_digest(&Spec::new(spec.name.clone(), spec.source.clone())),
    };
    if stale {
        diag::warning(format!(
            "the definition of {} changed since systemd last read it: its unit-level settings (restart, \
             dependencies, timeouts, stop signal, [install]) take effect after `systemctl daemon-reload`",
            spec.name
        ));
    }
}

/// Resource limits are read at every start: set them on the running unit (runtime only), and
/// lift limits an earlier start set that the definition no longer has.
fn apply_resources_live(spec: &Spec) {
    if !notify::supervised() {
        return;
    }
    let unit = unit_name(Kind::Declared, &spec.name);
    let wanted = props::live_resources(spec, &resource_keys_set_by_cleat(&unit));
    if wanted.is_empty() {
        return;
    }
    // A runtime confined to this block: dropping it joins its threads before the clone.
    let result = super::runtime().block_on(async {
        let systemd = cleat::unit::dbus::Systemd::connect().await?;
        // Set only what differs: an unchanged limit needs no runtime drop-in (which would
        // also make systemd flag the unit as needing a daemon-reload).
        let names: Vec<&str> = wanted.iter().map(|p| p.dbus().0).collect();
        let current = systemd.service_u64s(&unit, &names).await?;
        let changed = props::differing(wanted, &current);
        if changed.is_empty() {
            return Ok(());
        }
        systemd.set_properties(&unit, true, &changed).await
    });
    if let Err(e) = result {
        diag::warning(format!("could not apply resource limits to {unit}: {e}"));
    }
}

/// The resource keys that cleat's drop-ins for `unit` set: the generator's, and the runtime
/// ones `SetUnitProperties` left (`50-KEY.conf` in systemd's control directory).
fn resource_keys_set_by_cleat(unit: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let generated = Path::new("/run/systemd/generator")
        .join(format!("{unit}.d"))
        .join(DROPIN_NAME);
    if let Ok(text) = std::fs::read_to_string(generated) {
        keys.extend(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, _)| k.trim().to_owned()),
        );
    }
    let control = Path::new("/run/systemd/system.control").join(format!("{unit}.d"));
    for key in ["MemoryMax", "CPUQuota", "TasksMax"] {
        if control.join(format!("50-{key}.conf")).exists() {
            keys.push(key.to_owned());
        }
    }
    keys
}

fn stopped(kind: Kind, arg: &str) -> CmdResult {
    let name = name(arg)?;
    let registry = Registry::system();
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let record = ExitRecord::from_service_env(
        &env("SERVICE_RESULT"),
        &env("EXIT_CODE"),
        &env("EXIT_STATUS"),
        cleat::time::now_usec(),
    );
    // The container's place on its network goes with it.
    detach_leftovers(&registry, &name);
    let adhoc = match kind {
        Kind::Adhoc => registry.state.load_adhoc(&name).ok().flatten(),
        Kind::Declared => None,
    };
    let auto_remove = adhoc.as_ref().is_some_and(|r| r.auto_remove);
    if let Some(adhoc) = adhoc.as_ref().filter(|r| r.auto_remove) {
        // The container's state goes; its exit stays a while for a `cleat run` that waits for
        // it and finds the unit already collected.
        cleat::state::keep_exit(&adhoc.id, &record);
    }
    if auto_remove {
        // `--rm` takes the container's anonymous volumes with it, as Docker's does; named
        // volumes stay.
        if let Err(e) = cleat::volume::remove_anonymous(&VolumeStore::system(), &registry, &name) {
            diag::warning(format_args!("{name}: anonymous volumes kept: {e}"));
        }
        registry.state.remove(&name)?;
    } else {
        registry.state.write_exit(&name, &record)?;
    }
    Ok(ExitCode::SUCCESS)
}
