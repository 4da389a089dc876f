//! Image verbs: `pull`, `images`, `image inspect`, `rmi`, `image prune`, `login`, `logout`.
//! The work is in the library (`cleat::image`); this file turns it into Docker's output.

use std::collections::HashSet;
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use serde_json::json;

use cleat::containers::Registry;
use cleat::image::manifest::Platform;
use cleat::image::progress::{Plain, Progress, Quiet, Terminal, human_size};
use cleat::image::pull::{self, LocalImage};
use cleat::image::reference::Reference;
use cleat::image::registry::creds::{self, CLEAT_AUTH_FILE};
use cleat::image::registry::{Client, ClientOptions};
use cleat::image::store::{Removed, Store};
use cleat::image::{Digest, parse_reference};
use cleat::time;

use super::ps::Format;
use super::run::runtime_block;
use super::{CmdResult, Failure};

#[derive(Args)]
pub struct PullArgs {
    /// Platform to pull (os/arch[/variant]); default: this machine's
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// Print only the image's reference
    #[arg(short = 'q', long)]
    quiet: bool,
    #[arg(value_name = "IMAGE")]
    image: String,
}

#[derive(Args)]
pub struct ImagesArgs {
    /// Show the manifest digests
    #[arg(long)]
    digests: bool,
    /// Print only image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(value_name = "IMAGE")]
    image: String,
}

#[derive(Args)]
pub struct RmiArgs {
    /// Remove the reference even while containers use the image (their layers stay until
    /// they are gone)
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only unreferenced data
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not ask for confirmation (cleat never asks; accepted for Docker compatibility)
    #[arg(short = 'f', long)]
    force: bool,
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Pull an image from a registry
    Pull(PullArgs),
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Show an image's configuration and layers as JSON
    Inspect(InspectArgs),
    /// Remove images
    Rm(RmiArgs),
    /// Remove unused images and layers
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct LoginArgs {
    /// User name (asked for on a terminal if not given)
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password (prefer --password-stdin: a command line is visible to other users)
    #[arg(short = 'p', long)]
    password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    password_stdin: bool,
    /// Registry host (default: docker.io)
    #[arg(value_name = "REGISTRY")]
    registry: Option<String>,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry host (default: docker.io)
    #[arg(value_name = "REGISTRY")]
    registry: Option<String>,
}

pub fn image(cmd: ImageCommand) -> CmdResult {
    match cmd {
        ImageCommand::Pull(a) => pull(a),
        ImageCommand::Ls(a) => images(a),
        ImageCommand::Inspect(a) => inspect(a),
        ImageCommand::Rm(a) => rmi(a),
        ImageCommand::Prune(a) => prune(a),
    }
}

fn reference(text: &str) -> Result<Reference, Failure> {
    parse_reference(text).map_err(Failure::from)
}

fn open_store() -> Result<Arc<Store>, Failure> {
    Ok(Arc::new(Store::system()?))
}

/// The display for a pull: live on a terminal, plain lines otherwise.
pub fn progress_for_terminal(quiet: bool) -> Box<dyn Progress> {
    if quiet {
        Box::new(Quiet)
    } else if std::io::stderr().is_terminal() {
        Box::new(Terminal::new())
    } else {
        Box::new(Plain::new(false))
    }
}

pub fn platform(arg: Option<&str>) -> Result<Platform, Failure> {
    match arg {
        Some(p) => p
            .parse::<Platform>()
            .map_err(|e| Failure::from(anyhow!("--platform: {e}"))),
        None => Ok(Platform::host()),
    }
}

pub fn pull(args: PullArgs) -> CmdResult {
    let reference = reference(&args.image)?;
    let platform = platform(args.platform.as_deref())?;
    let store = open_store()?;
    let progress = progress_for_terminal(args.quiet);
    runtime_block(async move {
        let client = Client::from_system(ClientOptions::default())?;
        let pulled = pull::pull(&client, &store, &reference, &platform, progress.as_ref()).await?;
        if args.quiet {
            println!("{reference}");
            return Ok(ExitCode::SUCCESS);
        }
        println!("Digest: {}", pulled.image.manifest_digest);
        if pulled.updated {
            println!(
                "Status: Downloaded newer image for {}",
                reference.familiar()
            );
        } else {
            println!("Status: Image is up to date for {}", reference.familiar());
        }
        println!("{reference}");
        Ok(ExitCode::SUCCESS)
    })
}

/// One line of `images`.
struct Listed {
    reference: Reference,
    image: Option<LocalImage>,
    platform: String,
    pulled_usec: u64,
    size: u64,
}

fn list(store: &Store) -> Result<Vec<Listed>, Failure> {
    let mut out = Vec::new();
    for r in store.list_refs()? {
        let Ok(reference) = r.reference.parse::<Reference>() else {
            continue;
        };
        let image = pull::load_manifest(store, &reference, &r.digest).ok();
        let size = match &image {
            Some(i) => store.layers_size(&i.config.diff_ids)?,
            None => 0,
        };
        out.push(Listed {
            reference,
            image,
            platform: r.platform,
            pulled_usec: r.pulled_usec,
            size,
        });
    }
    Ok(out)
}

/// `docker.io/library/busybox:1.36` → (`busybox`, `1.36`).
fn repository_and_tag(r: &Reference) -> (String, String) {
    let familiar = Reference {
        tag: None,
        digest: None,
        ..r.clone()
    }
    .familiar();
    let repository = familiar
        .rsplit_once(':')
        .map_or(familiar.clone(), |(repo, tag)| {
            if tag.contains('/') {
                familiar.clone()
            } else {
                repo.to_owned()
            }
        });
    (repository, r.tag.clone().unwrap_or_else(|| "<none>".into()))
}

pub fn images(args: ImagesArgs) -> CmdResult {
    let store = open_store()?;
    let now = time::now_usec();
    let rows = list(&store)?;
    if args.quiet {
        let mut seen = HashSet::new();
        for row in &rows {
            if let Some(i) = &row.image {
                if seen.insert(i.config_digest.clone()) {
                    println!("{}", i.config_digest.short());
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.format == Format::Json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|row| {
                let (repository, tag) = repository_and_tag(&row.reference);
                json!({
                    "reference": row.reference.to_string(),
                    "repository": repository,
                    "tag": row.reference.tag,
                    "digest": row.image.as_ref().map(|i| i.manifest_digest.to_string()),
                    "id": row.image.as_ref().map(|i| i.config_digest.to_string()),
                    "created": row.image.as_ref().and_then(|i| i.config.created.clone()),
                    "pulled": time::rfc3339(row.pulled_usec),
                    "size": row.size,
                    "platform": row.platform,
                    "tag_display": tag,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = vec![{
        let mut h = vec!["REPOSITORY", "TAG"];
        if args.digests {
            h.push("DIGEST");
        }
        h.extend(["IMAGE ID", "CREATED", "SIZE"]);
        h.into_iter().map(String::from).collect::<Vec<_>>()
    }];
    for row in &rows {
        let (repository, tag) = repository_and_tag(&row.reference);
        let mut cells = vec![repository, tag];
        if args.digests {
            cells.push(
                row.image
                    .as_ref()
                    .map(|i| i.manifest_digest.to_string())
                    .unwrap_or_else(|| "<damaged>".into()),
            );
        }
        cells.push(
            row.image
                .as_ref()
                .map(|i| i.config_digest.short().to_owned())
                .unwrap_or_else(|| "<damaged>".into()),
        );
        cells.push(
            row.image
                .as_ref()
                .and_then(|i| i.config.created.as_deref())
                .and_then(parse_created)
                .map(|c| time::ago(c, now))
                .unwrap_or_else(|| "-".into()),
        );
        cells.push(human_size(row.size));
        table.push(cells);
    }
    print!("{}", render_table(&table));
    Ok(ExitCode::SUCCESS)
}

/// An image config's `created` (RFC 3339) in microseconds since the epoch.
fn parse_created(text: &str) -> Option<u64> {
    super::logs::parse_rfc3339(text).map(|secs| secs * 1_000_000)
}

/// Left-aligned columns, three spaces apart.
pub fn render_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn local_image(store: &Store, text: &str) -> Result<LocalImage, Failure> {
    let reference = reference(text)?;
    pull::local(store, &reference)?
        .ok_or_else(|| Failure::from(anyhow!("no such image: {reference}")))
}

pub fn inspect(args: InspectArgs) -> CmdResult {
    let store = open_store()?;
    let image = local_image(&store, &args.image)?;
    let record = store.get_ref(&image.reference.to_string())?;
    let mut layers = Vec::new();
    let mut size = 0;
    for (descriptor, diff_id) in image.manifest.layers.iter().zip(&image.config.diff_ids) {
        let info = store.layer_info(diff_id)?;
        let layer_size = info.as_ref().map(|i| i.size).unwrap_or_default();
        size += layer_size;
        layers.push(json!({
            "digest": descriptor.digest.to_string(),
            "diff_id": diff_id.to_string(),
            "media_type": descriptor.media_type,
            "compressed_size": descriptor.size,
            "size": layer_size,
            "path": store.layer_dir(diff_id).display().to_string(),
        }));
    }
    let out = json!({
        "reference": image.reference.to_string(),
        "digest": image.manifest_digest.to_string(),
        "id": image.config_digest.to_string(),
        "platform": record.as_ref().map(|r| r.platform.clone()),
        "pulled": record.as_ref().map(|r| time::rfc3339(r.pulled_usec)),
        "created": image.config.created,
        "os": image.config.os,
        "architecture": image.config.architecture,
        "size": size,
        "config": image.config.raw_runtime,
        "layers": layers,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// The manifests containers hold on to: never removed.
fn kept(registry: &Registry, store: &Store) -> HashSet<Digest> {
    registry
        .image_users(store)
        .into_iter()
        .filter_map(|u| u.digest)
        .collect()
}

pub fn rmi(args: RmiArgs) -> CmdResult {
    let store = open_store()?;
    let registry = Registry::system();
    Ok(super::diag::each_reported(&args.images, |text| {
        remove_image(&store, &registry, text, args.force).map_err(|f| f.error)
    }))
}

fn remove_image(
    store: &Store,
    registry: &Registry,
    text: &str,
    force: bool,
) -> Result<(), Failure> {
    let reference = reference(text)?;
    let canonical = reference.to_string();
    let record = store
        .get_ref(&canonical)?
        .ok_or_else(|| Failure::from(anyhow!("no such image: {canonical}")))?;
    let users: Vec<String> = registry
        .image_users(store)
        .into_iter()
        .filter(|u| {
            u.digest.as_ref() == Some(&record.digest)
                || u.reference.as_deref() == Some(canonical.as_str())
        })
        .map(|u| u.container.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !users.is_empty() && !force {
        return Err(Failure::from(anyhow!(
            "image {canonical} is used by container {}: remove {} first (cleat rm), or use cleat rmi -f",
            users.join(", "),
            if users.len() == 1 { "it" } else { "them" }
        )));
    }
    store.remove_ref(&canonical)?;
    println!("Untagged: {}", reference.familiar());
    let report = store.prune(&kept(registry, store), false)?;
    for removed in &report.removed {
        if let Removed::Blob(d) | Removed::Layer(d) = removed {
            println!("Deleted: {d}");
        }
    }
    Ok(())
}

pub fn prune(args: PruneArgs) -> CmdResult {
    let _ = args.force;
    let store = open_store()?;
    let registry = Registry::system();
    let report = store.prune(&kept(&registry, &store), args.all)?;
    let untagged: Vec<&String> = report
        .removed
        .iter()
        .filter_map(|r| {
            if let Removed::Ref(s) = r {
                Some(s)
            } else {
                None
            }
        })
        .collect();
    if !untagged.is_empty() {
        println!("Deleted Images:");
        for r in untagged {
            println!("untagged: {r}");
        }
    }
    for removed in &report.removed {
        if let Removed::Blob(d) | Removed::Layer(d) = removed {
            println!("deleted: {d}");
        }
    }
    for busy in &report.skipped {
        super::diag::note(format!(
            "layer {busy} is being pulled right now; left alone"
        ));
    }
    println!("Total reclaimed space: {}", human_size(report.bytes_freed));
    Ok(ExitCode::SUCCESS)
}

fn read_line(prompt: &str, echo: bool) -> anyhow::Result<String> {
    use std::io::Write;
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let stdin = std::io::stdin();
    let restore = if echo { None } else { hide_input(&stdin) };
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    if let Some(termios) = restore {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &termios);
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Turns off echo on a terminal; returns the settings to restore.
fn hide_input(stdin: &std::io::Stdin) -> Option<rustix::termios::Termios> {
    let saved = rustix::termios::tcgetattr(stdin).ok()?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
    rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &quiet).ok()?;
    Some(saved)
}

pub fn login(args: LoginArgs) -> CmdResult {
    let registry = creds::normalize_key(args.registry.as_deref().unwrap_or("docker.io"));
    let interactive = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(u) => u,
        None if interactive && !args.password_stdin => read_line("Username: ", true)?,
        None => {
            return Err(anyhow!("a user name is needed: cleat login -u USER {registry}").into());
        }
    };
    let password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from standard input")?;
        text.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        match args.password {
            Some(p) => p,
            None if interactive => read_line("Password: ", false)?,
            None => return Err(anyhow!("a password is needed: use --password-stdin").into()),
        }
    };
    if password.is_empty() {
        return Err(anyhow!("the password is empty").into());
    }
    runtime_block(async move {
        let client = Client::from_system(ClientOptions::default())?;
        client.check_login(&registry, &username, &password).await?;
        creds::store_credentials(Path::new(CLEAT_AUTH_FILE), &registry, &username, &password)?;
        println!("Login Succeeded");
        Ok(ExitCode::SUCCESS)
    })
}

pub fn logout(args: LogoutArgs) -> CmdResult {
    let registry = creds::normalize_key(args.registry.as_deref().unwrap_or("docker.io"));
    if creds::remove_credentials(Path::new(CLEAT_AUTH_FILE), &registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
