//! The commands systemd runs: `internal start` (a container unit's `ExecStart=`) and
//! `internal stopped` (its `ExecStopPost=`).
//!
//! `start` reads the definition afresh (so editing the TOML and restarting is enough), warns
//! if unit-level settings changed since the last daemon-reload, applies resource limits live,
//! plans the root file system and the process, and launches the container. It stays
//! single-threaded until the clone: any D-Bus work runs on a runtime that is gone by then.

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

fn start(kind: Kind, arg: &str) -> Result<ExitCode, anyhow::Error> {
    let name = name(arg).map_err(|f| f.error)?;
    let registry = Registry::system();
    let container = load(&registry, kind, &name)?;
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
    let host_network = spec.network == Some(NetworkMode::Host);
    let etc_files = etc_files(&registry, &name, &process, host_network)?;
    let extra =
        cleat::rootfs::volumes::plan_mounts(spec, image, &VolumeStore::system(), &registry)?;
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
            let path = registry.state.dir(&name).join("notify");
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
    let l = Launch {
        rootfs: &rootfs,
        process: &process,
        namespaces: launch::namespaces(host_network),
        notify: notify_mode,
        security: &security,
        init: spec.init.unwrap_or(false),
    };
    let outcome = launch::launch(&l)?;
    // The container started: the volumes it filled stay filled.
    if let Err(e) = cleat::rootfs::volumes::mark_filled(&rootfs.mounts, &VolumeStore::system()) {
        diag::warning(format_args!(
            "recording the volumes filled from the image: {e}"
        ));
    }
    match outcome {
        Outcome::HandedOver { pidfd, .. } => {
            if let Some(relay) = relay {
                relay
                    .run(std::os::fd::AsFd::as_fd(&pidfd))
                    .context("relaying the container's notifications to systemd")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Exited(code) => Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))),
    }
}

/// Writes the container's /etc/hostname, /etc/hosts and /etc/resolv.conf into its state
/// directory (at every start: the host's resolver may have changed) and returns what to bind
/// where.
fn etc_files(
    registry: &Registry,
    name: &cleat::spec::Name,
    process: &process::ProcessPlan,
    host_network: bool,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let dir = registry.state.dir(name);
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let hosts = if host_network {
        read("/etc/hosts").unwrap_or_else(|| cleat::runtime::etc::hosts(&process.hostname, None))
    } else {
        cleat::runtime::etc::hosts(&process.hostname, process.domainname.as_deref())
    };
    let resolv = cleat::runtime::etc::resolv_conf(
        &read("/etc/resolv.conf").unwrap_or_default(),
        read("/run/systemd/resolve/resolv.conf").as_deref(),
        host_network,
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
    let auto_remove = kind == Kind::Adhoc
        && registry
            .state
            .load_adhoc(&name)
            .ok()
            .flatten()
            .is_some_and(|r| r.auto_remove);
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
