//! The commands systemd runs: `internal start` (a container unit's `ExecStart=`) and
//! `internal stopped` (its `ExecStopPost=`).
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

use cleat::image::ImageConfig;
use cleat::image::manifest::Platform;
use cleat::image::progress::Plain;
use cleat::image::pull::{self, LocalImage};
use cleat::image::store::Store;
use cleat::rootfs::Overlay;
use cleat::rootfs::layers::read_in_layers;
use cleat::rootfs::{RootfsOptions, RootfsPlan, resolve};
use cleat::runtime::launch::{self, Launch, Outcome};
use cleat::runtime::user::{self, UserDb};
use cleat::runtime::{EXIT_SETUP, notify, process};
use cleat::spec::PullPolicy;
use cleat::spec::{Notify, Source, Spec};
use cleat::state::ExitRecord;
use cleat::state::ImageUse;
use cleat::unit::generator::{DIGEST_ENV, DROPIN_NAME, unit_level_digest};
use cleat::unit::props;
use cleat::unit::{Kind, unit_name};

use super::{CmdResult, Failure, diag, name};

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
    let (root, overlay, users, image) = match &spec.source {
        Source::Rootfs(dir) => {
            let meta =
                std::fs::metadata(dir).with_context(|| format!("rootfs {}", dir.display()))?;
            if !meta.is_dir() {
                return Err(anyhow!("rootfs {} is not a directory", dir.display()));
            }
            // The directory is the one read-only layer: it is never written to, and any number
            // of containers can share it.
            let (upper, work, mountpoint) = registry.state.overlay_dirs(&name)?;
            let overlay = Overlay {
                lower: vec![dir.clone()],
                upper,
                work,
            };
            (
                mountpoint,
                Some(overlay),
                user_db(dir)?,
                ImageConfig::default(),
            )
        }
        Source::Image(text) => {
            let image = image_for_start(&registry, &container, text)?;
            let (upper, work, mountpoint) = registry.state.overlay_dirs(&name)?;
            // overlayfs wants the top layer first; manifests list the base first.
            let lower: Vec<PathBuf> = image.layer_dirs.iter().rev().cloned().collect();
            let users = layered_user_db(&lower)?;
            let overlay = Overlay { lower, upper, work };
            (mountpoint, Some(overlay), users, image.config.defaults)
        }
    };
    let env_files = read_env_files(spec)?;
    let process = process::plan(spec, &image, &users, &env_files)?;
    let notify_mode = spec.notify.unwrap_or_default();
    let options = RootfsOptions {
        notify_socket: match notify_mode {
            Notify::Container if notify::supervised() => Some(notify::socket_path().ok_or_else(|| {
                anyhow!(
                    "notify = \"container\" needs systemd's notification socket as a file to pass into \
                     the container, but NOTIFY_SOCKET is {:?}",
                    std::env::var("NOTIFY_SOCKET").unwrap_or_default()
                )
            })?),
            _ => None,
        },
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
        namespaces: launch::NAMESPACES,
        notify: notify_mode,
    };
    match launch::launch(&l)? {
        Outcome::HandedOver { .. } => Ok(ExitCode::SUCCESS),
        Outcome::Exited(code) => Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))),
    }
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

/// /etc/passwd and /etc/group as the container will see them through its layers (top first).
fn layered_user_db(layers: &[PathBuf]) -> anyhow::Result<UserDb> {
    user_db_with(|path| read_in_layers(layers, path, USER_DB_LIMIT))
}

/// The container's /etc/passwd and /etc/group, read inside its root.
fn user_db(root: &Path) -> anyhow::Result<UserDb> {
    let fd =
        resolve::open_root(root).with_context(|| format!("opening rootfs {}", root.display()))?;
    user_db_with(|path| resolve::read_file(fd.as_fd(), path, USER_DB_LIMIT))
}

/// The largest /etc/passwd or /etc/group read.
const USER_DB_LIMIT: u64 = 16 << 20;

fn user_db_with(read: impl Fn(&str) -> std::io::Result<Option<Vec<u8>>>) -> anyhow::Result<UserDb> {
    let text = |path: &str| -> anyhow::Result<String> {
        let bytes = read(path).with_context(|| format!("reading {path} in the container"))?;
        Ok(bytes
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default())
    };
    Ok(UserDb {
        passwd: user::parse_passwd(&text("/etc/passwd")?),
        groups: user::parse_group(&text("/etc/group")?),
    })
}

fn read_env_files(spec: &Spec) -> anyhow::Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for path in &spec.env_files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("env file {}", path.display()))?;
        vars.extend(
            process::parse_env_file(&text)
                .map_err(|e| anyhow!("env file {}: {e}", path.display()))?,
        );
    }
    Ok(vars)
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
        registry.state.remove(&name)?;
    } else {
        registry.state.write_exit(&name, &record)?;
    }
    Ok(ExitCode::SUCCESS)
}
