//! Volume verbs: `volume create`, `ls`, `inspect`, `rm`, `prune`. The work is in the library
//! (`cleat::volume`); this file turns it into Docker's output.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use futures_util::future::join_all;
use serde_json::{Value, json};

use cleat::containers::Registry;
use cleat::image::progress::human_size;
use cleat::spec::Name;
use cleat::time;
use cleat::unit::dbus::Systemd;
use cleat::unit::unit_name;
use cleat::volume::store::{LOCAL_DRIVER, random_name};
use cleat::volume::{Usage, Volume, VolumeError, VolumeName, VolumeStore};

use super::image::render_table;
use super::ps::Format;
use super::{CmdResult, Failure, diag};

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random name if none is given); prints its name
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show volumes as JSON, with the containers that use them
    Inspect(InspectArgs),
    /// Remove volumes (never while a running container uses one)
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove the anonymous volumes no container uses (with -a, every unused volume)
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Set a label on the volume
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Volume driver (only "local")
    #[arg(short = 'd', long, default_value = LOCAL_DRIVER, value_name = "DRIVER")]
    driver: String,
    #[arg(value_name = "NAME")]
    name: Option<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Print only volume names
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Remove volumes that stopped containers use, and ignore volumes that do not exist
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove every unused volume, named ones too, not only anonymous ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not ask for confirmation (cleat never asks; accepted for Docker compatibility)
    #[arg(short = 'f', long)]
    force: bool,
}

pub fn volume(cmd: VolumeCommand) -> CmdResult {
    match cmd {
        VolumeCommand::Create(a) => create(a),
        VolumeCommand::Ls(a) => ls(a),
        VolumeCommand::Inspect(a) => inspect(a),
        VolumeCommand::Rm(a) => rm(a),
        VolumeCommand::Prune(a) => prune(a),
    }
}

fn volume_name(text: &str) -> Result<VolumeName, Failure> {
    text.parse::<VolumeName>()
        .map_err(|e| Failure::from(anyhow!(e)))
}

/// `KEY=VALUE`, or `KEY` alone for an empty value (as Docker reads `--label`).
fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    for label in labels {
        let (key, value) = label.split_once('=').unwrap_or((label, ""));
        if key.is_empty() {
            return Err(anyhow!("--label {label:?}: the key is empty (KEY=VALUE)").into());
        }
        out.insert(key.to_owned(), value.to_owned());
    }
    Ok(out)
}

pub fn create(args: CreateArgs) -> CmdResult {
    if args.driver != LOCAL_DRIVER {
        return Err(anyhow!(
            "--driver {}: cleat has only the \"{LOCAL_DRIVER}\" driver",
            args.driver
        )
        .into());
    }
    let labels = parse_labels(&args.labels)?;
    let name = match &args.name {
        Some(text) => volume_name(text)?,
        None => random_name()?,
    };
    let (volume, _) = VolumeStore::system().create(&name, labels)?;
    println!("{}", volume.name);
    Ok(ExitCode::SUCCESS)
}

/// A volume as Docker's `volume inspect` shows it, plus `Anonymous` and `UsedBy`.
fn describe(volume: &Volume, used_by: &[Name]) -> Value {
    json!({
        "CreatedAt": time::rfc3339(volume.meta.created_usec),
        "Driver": volume.meta.driver,
        "Labels": volume.meta.labels,
        "Mountpoint": volume.data_dir().display().to_string(),
        "Name": volume.name.as_str(),
        "Options": {},
        "Scope": "local",
        "Anonymous": volume.meta.anonymous,
        "UsedBy": used_by.iter().map(Name::as_str).collect::<Vec<_>>(),
    })
}

/// Which containers use which volume (without asking systemd which of them run).
fn usage(registry: &Registry) -> Result<Usage, Failure> {
    Ok(Usage::compute(registry, BTreeSet::new())?)
}

pub fn ls(args: LsArgs) -> CmdResult {
    let volumes = VolumeStore::system().list()?;
    if args.quiet {
        for volume in &volumes {
            println!("{}", volume.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.format == Format::Json {
        let usage = usage(&Registry::system())?;
        let json: Vec<Value> = volumes
            .iter()
            .map(|v| describe(v, &usage.users(&v.name)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = vec![vec!["DRIVER".to_owned(), "VOLUME NAME".to_owned()]];
    table.extend(
        volumes
            .iter()
            .map(|v| vec![v.meta.driver.clone(), v.name.to_string()]),
    );
    print!("{}", render_table(&table));
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(args: InspectArgs) -> CmdResult {
    let store = VolumeStore::system();
    let usage = usage(&Registry::system())?;
    let mut found = Vec::new();
    let code = diag::each_reported(&args.names, |text| {
        let volume = volume_name(text)
            .and_then(|n| Ok(store.require(&n)?))
            .map_err(|f| f.error)?;
        found.push(describe(&volume, &usage.users(&volume.name)));
        Ok(())
    });
    println!("{}", serde_json::to_string_pretty(&found)?);
    Ok(code)
}

/// The containers whose units run now, asked of systemd.
fn running_containers(registry: &Registry) -> anyhow::Result<BTreeSet<Name>> {
    let containers = registry.list()?;
    super::runtime().block_on(async {
        let systemd = Systemd::connect()
            .await
            .context("asking systemd which containers run")?;
        let states = join_all(containers.iter().map(|(name, kind)| {
            let unit = unit_name(*kind, name);
            let systemd = &systemd;
            async move { systemd.state_if_loaded(&unit).await }
        }))
        .await;
        let mut running = BTreeSet::new();
        for ((name, _), state) in containers.iter().zip(states) {
            if state?.is_some_and(|s| s.is_running()) {
                running.insert(name.clone());
            }
        }
        Ok(running)
    })
}

pub fn rm(args: RmArgs) -> CmdResult {
    let store = VolumeStore::system();
    let registry = Registry::system();
    let usage = Usage::compute(&registry, running_containers(&registry)?)?;
    Ok(diag::each_reported(&args.names, |text| {
        let name = volume_name(text).map_err(|f| f.error)?;
        match store.remove(&name, &usage, args.force) {
            Ok(_) => println!("{text}"),
            // Docker's -f: a volume that is not there is not an error.
            Err(VolumeError::NotFound(_)) if args.force => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }))
}

pub fn prune(args: PruneArgs) -> CmdResult {
    let _ = args.force;
    let store = VolumeStore::system();
    // Running containers use their volumes like stopped ones do: no need to ask systemd.
    let report = store.prune(&usage(&Registry::system())?, args.all)?;
    if !report.removed.is_empty() {
        println!("Deleted Volumes:");
        for name in &report.removed {
            println!("{name}");
        }
        println!();
    }
    for (volume, container, reason) in &report.kept {
        diag::note(format!(
            "volume {volume} kept: container {container} may use it, but its definition cannot be read ({reason})"
        ));
    }
    println!("Total reclaimed space: {}", human_size(report.bytes_freed));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_value_or_key_alone() {
        let labels = parse_labels(&["a=1".into(), "b".into(), "c=x=y".into()])
            .unwrap_or_else(|f| panic!("{:#}", f.error));
        assert_eq!(labels["a"], "1");
        assert_eq!(labels["b"], "");
        assert_eq!(labels["c"], "x=y");
        assert!(parse_labels(&["=v".into()]).is_err());
    }
}
