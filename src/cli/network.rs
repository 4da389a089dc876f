//! Network verbs: `network create`, `ls`, `inspect`, `rm`, `prune`. The work is in the
//! library (`cleat::network`); this file turns it into Docker's output.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use cleat::containers::Registry;
use cleat::network::attach::{self, RUN_ROOT};
use cleat::network::cidr::Subnet;
use cleat::network::ipam::Leases;
use cleat::network::nft::Published;
use cleat::network::store::{BRIDGE_DRIVER, CreateRequest, Network, NetworkStore, host_routes};
use cleat::spec::NetworkMode;
use cleat::time;

use super::image::render_table;
use super::ps::Format;
use super::{CmdResult, diag};

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network (a free subnet of 10.89.0.0/16 unless --subnet says); prints
    /// its ID
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON, with the containers on them
    Inspect(InspectArgs),
    /// Remove networks (never one a container uses)
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove every network no container uses (the default one stays)
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Subnet in CIDR form (at most one IPv4 and one IPv6)
    #[arg(long, value_name = "CIDR")]
    subnet: Vec<String>,
    /// Gateway (the bridge's address) for the subnet given in the same position
    #[arg(long, value_name = "IP")]
    gateway: Vec<String>,
    /// Give the network an IPv6 subnet too (a free /64 of fd89:c1ea::/48 unless --subnet says)
    #[arg(long)]
    ipv6: bool,
    /// Keep the network's containers from reaching anything beyond it and the host (nothing is
    /// forwarded to or from it; no default route, no published ports)
    #[arg(long)]
    internal: bool,
    /// Network driver (only "bridge")
    #[arg(short = 'd', long, default_value = BRIDGE_DRIVER, value_name = "DRIVER")]
    driver: String,
    #[arg(value_name = "NAME")]
    name: String,
}

#[derive(Args)]
pub struct LsArgs {
    /// Print only network names
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
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation (cleat never asks; accepted for Docker compatibility)
    #[arg(short = 'f', long)]
    force: bool,
}

pub fn network(cmd: NetworkCommand) -> CmdResult {
    match cmd {
        NetworkCommand::Create(a) => create(a),
        NetworkCommand::Ls(a) => ls(a),
        NetworkCommand::Inspect(a) => inspect(a),
        NetworkCommand::Rm(a) => rm(a),
        NetworkCommand::Prune(a) => prune(a),
    }
}

fn create(args: CreateArgs) -> CmdResult {
    if args.driver != BRIDGE_DRIVER {
        return Err(anyhow!(
            "--driver {}: cleat has only the \"{BRIDGE_DRIVER}\" driver",
            args.driver
        )
        .into());
    }
    if args.gateway.len() > args.subnet.len() {
        return Err(anyhow!(
            "--gateway needs a --subnet to belong to (one gateway per subnet, in order)"
        )
        .into());
    }
    let mut subnets = Vec::new();
    for (i, text) in args.subnet.iter().enumerate() {
        let subnet: Subnet = text
            .parse()
            .map_err(|e: cleat::spec::value::ValueError| anyhow!("--subnet {text}: {e}"))?;
        let gateway = match args.gateway.get(i) {
            Some(g) => Some(
                g.parse()
                    .map_err(|_| anyhow!("--gateway {g}: not an IP address"))?,
            ),
            None => None,
        };
        subnets.push((subnet, gateway));
    }
    let ipv6 = args.ipv6 || subnets.iter().any(|(s, _)| !s.is_ipv4());
    let request = CreateRequest {
        name: args.name,
        subnets,
        ipv6,
        internal: args.internal,
    };
    let network = NetworkStore::system().create(&request, &host_routes())?;
    println!("{}", network.id);
    Ok(ExitCode::SUCCESS)
}

/// The containers on a network now (they hold leases), and those defined to join it.
fn users(network: &Network, registry: &Registry) -> (Vec<String>, Vec<String>) {
    let mut running: Vec<String> = Leases::new(
        std::path::PathBuf::from(RUN_ROOT)
            .join(&network.name)
            .join("leases"),
    )
    .list()
    .unwrap_or_default()
    .into_iter()
    .map(|(_, owner)| owner)
    .filter(|owner| attach::Containers::is_alive(&Known(registry), owner))
    .collect();
    running.sort();
    running.dedup();
    let defined = registry
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| {
            registry
                .load(name)
                .is_ok_and(|c| c.spec.network_mode() == NetworkMode::Network(network.name.clone()))
        })
        .map(|(name, _)| name.to_string())
        .collect();
    (running, defined)
}

/// A network as Docker's `network inspect` shows it, plus `Bridge` and `Containers` by name.
fn describe(network: &Network, registry: &Registry) -> Value {
    let (running, defined) = users(network, registry);
    json!({
        "Name": network.name,
        "Id": network.id,
        "Created": time::rfc3339(network.created_usec),
        "Scope": "local",
        "Driver": network.driver,
        "EnableIPv6": network.ipv6(),
        "IPAM": {
            "Driver": "default",
            "Config": network.subnets.iter().map(|s| json!({
                "Subnet": s.subnet.to_string(),
                "Gateway": s.gateway.to_string(),
            })).collect::<Vec<_>>(),
        },
        "Internal": network.internal,
        "Options": { "com.docker.network.bridge.name": network.bridge },
        "Bridge": network.bridge,
        "Running": running,
        "Containers": defined,
    })
}

fn ls(args: LsArgs) -> CmdResult {
    let networks = NetworkStore::system().list()?;
    if args.quiet {
        for n in &networks {
            println!("{}", n.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.format == Format::Json {
        let registry = Registry::system();
        let json: Vec<Value> = networks.iter().map(|n| describe(n, &registry)).collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = vec![
        ["NETWORK ID", "NAME", "DRIVER", "SUBNETS"]
            .map(String::from)
            .to_vec(),
    ];
    table.extend(networks.iter().map(|n| {
        vec![
            n.id[..12].to_owned(),
            n.name.clone(),
            n.driver.clone(),
            n.subnets
                .iter()
                .map(|s| s.subnet.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ]
    }));
    print!("{}", render_table(&table));
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: InspectArgs) -> CmdResult {
    let store = NetworkStore::system();
    let registry = Registry::system();
    let mut found = Vec::new();
    let code = diag::each_reported(&args.names, |name| {
        found.push(describe(&store.require(name)?, &registry));
        Ok(())
    });
    println!("{}", serde_json::to_string_pretty(&found)?);
    Ok(code)
}

/// What cleat knows about containers, for a network: a container holds its addresses while
/// its state directory is marked; its attachment is recorded there.
pub struct Known<'a>(pub &'a Registry);

impl attach::Containers for Known<'_> {
    fn is_alive(&self, owner: &str) -> bool {
        owner
            .parse::<cleat::spec::Name>()
            .is_ok_and(|n| attach::is_marked(&self.0.state.dir(&n)))
    }

    fn attachment(&self, owner: &str) -> Option<attach::Attachment> {
        let dir = self.0.state.dir(&owner.parse().ok()?);
        attach::is_marked(&dir)
            .then(|| attach::load(&dir))
            .flatten()
    }

    fn hosts_file(&self, owner: &str) -> Option<std::path::PathBuf> {
        Some(self.0.state.dir(&owner.parse().ok()?).join("hosts"))
    }

    fn warn(&self, message: &str) {
        diag::warning(message);
    }

    fn network_exists(&self, network: &str) -> bool {
        NetworkStore::system()
            .get(network)
            .is_ok_and(|n| n.is_some())
    }

    fn attachments(&self) -> Vec<attach::Attachment> {
        let names = self.0.state.list_all().unwrap_or_default();
        names
            .iter()
            .filter_map(|n| Some((n, attach::load(&self.0.state.dir(n))?)))
            .filter(|(n, a)| {
                attach::is_marked(&self.0.state.dir(n))
                    && attach::holds_lease(&a.network, n.as_str())
            })
            .map(|(_, a)| a)
            .collect()
    }
}

/// Seconds on the monotonic clock (systemd's for `OnActiveSec=`).
fn monotonic_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec.unsigned_abs()
}

/// Brings the names of `network`'s containers in every member's /etc/hosts up to date (a
/// container joined or left). Only on networks made with `cleat network create`: Docker's
/// default network has no names either, and containers there come and go by the hundred.
pub fn refresh_names(registry: &Registry, network: &str) {
    if network == cleat::network::store::DEFAULT_NETWORK {
        return;
    }
    if let Err(e) = attach::refresh_names(network, &Known(registry)) {
        diag::warning(format_args!(
            "network {network}: updating the containers' /etc/hosts: {e}"
        ));
    }
}

/// How long a network stays up after its last container left.
const IDLE_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// After a container left `network`: if nobody else is on it, systemd takes it down a little
/// later (a transient timer running `cleat internal network-idle`), unless a container joins
/// meanwhile. Without systemd to ask, it is taken down now.
pub fn take_down_later(registry: &Registry, network: &str) {
    if !attach::is_idle(network) {
        return;
    }
    // A timer asked for a moment ago is still waiting (each of a run of short-lived containers
    // would ask again): it will find the network idle, or in use.
    let asked = std::path::PathBuf::from(RUN_ROOT)
        .join(network)
        .join("idle-timer");
    let due: Option<u64> = std::fs::read_to_string(&asked)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    if due.is_some_and(|due| due > monotonic_secs() + 1) {
        return;
    }
    let later = || -> anyhow::Result<bool> {
        let exe = cleat::sealed::own_path()?;
        let argv = vec![
            exe.to_str()
                .context("cleat's path is not UTF-8")?
                .to_owned(),
            "internal".to_owned(),
            "network-idle".to_owned(),
            network.to_owned(),
        ];
        let due = monotonic_secs() + IDLE_DELAY.as_secs();
        let made = super::runtime().block_on(async {
            let systemd = cleat::unit::dbus::Systemd::connect().await?;
            systemd
                .run_later(
                    &format!("cleat-network-idle-{network}"),
                    &format!("Take cleat network {network} down if unused"),
                    IDLE_DELAY,
                    &argv,
                )
                .await
        })?;
        if made {
            let _ = std::fs::write(&asked, format!("{due}\n"));
        }
        Ok(made)
    };
    if let Err(e) = later() {
        diag::warning(format_args!(
            "network {network}: asking systemd to take it down later: {e:#}; taking it down now"
        ));
        if let Err(e) = attach::take_down_if_idle(network, &Known(registry)) {
            diag::warning(format_args!("taking network {network} down: {e}"));
        }
    }
}

/// Removes `name` unless a container uses it (runs on it, or is defined to join it).
fn remove(store: &NetworkStore, registry: &Registry, name: &str) -> anyhow::Result<()> {
    let network = store.require(name)?;
    if network.is_default() {
        // The store refuses it too; say so before listing who uses it.
        store.remove(name)?;
    }
    let (running, defined) = users(&network, registry);
    if !running.is_empty() {
        return Err(anyhow!(
            "network {name} is in use by running containers: {}",
            running.join(", ")
        ));
    }
    if !defined.is_empty() {
        return Err(anyhow!(
            "network {name} is used by containers: {}; remove them or change their network first",
            defined.join(", ")
        ));
    }
    // Under the network's lock: a container joining at the same time either is on it (and it
    // stays) or finds it gone. Up still if its last container left a moment ago: taken down.
    let removed = attach::remove_network(name, &Known(registry), || {
        store
            .remove(name)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
    .map_err(|e| anyhow!("network {name}: {e}"))?;
    if !removed {
        return Err(anyhow!(
            "network {name} is in use by a container that just joined it"
        ));
    }
    Ok(())
}

fn rm(args: RmArgs) -> CmdResult {
    let store = NetworkStore::system();
    let registry = Registry::system();
    Ok(diag::each_reported(&args.names, |name| {
        remove(&store, &registry, name)?;
        println!("{name}");
        Ok(())
    }))
}

fn prune(args: PruneArgs) -> CmdResult {
    let _ = args.force;
    let store = NetworkStore::system();
    let registry = Registry::system();
    let mut removed = Vec::new();
    for network in store.list()? {
        if network.is_default() {
            continue;
        }
        if remove(&store, &registry, &network.name).is_ok() {
            removed.push(network.name);
        }
    }
    // What is left of containers that are gone (their leases), and networks up with nobody
    // on them (the default one among them), go now rather than later.
    for name in attach::up_networks() {
        if let Err(e) = attach::take_down_if_idle(&name, &Known(&registry)) {
            diag::warning(format_args!("taking network {name} down: {e}"));
        }
    }
    if !removed.is_empty() {
        println!("Deleted Networks:");
        for name in &removed {
            println!("{name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct PortArgs {
    #[arg(value_name = "NAME")]
    name: String,
    /// Only this container port (`80` or `80/udp`)
    #[arg(value_name = "PORT")]
    port: Option<String>,
}

/// The host address of a published port as Docker shows it: `0.0.0.0` or `[::]` for every
/// address of the host, `[ADDR]` for an IPv6 one.
pub fn host_address(p: &Published) -> String {
    match p.host_ip {
        Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        Some(ip) => ip.to_string(),
        None if p.container_ip.is_ipv4() => "0.0.0.0".to_owned(),
        None => "[::]".to_owned(),
    }
}

/// A container's published ports as `docker ps` shows them: `0.0.0.0:8080->80/tcp`, one per
/// host port (ranges are not folded).
pub fn ports_column(published: &[Published]) -> Vec<String> {
    let mut out: Vec<String> = published
        .iter()
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                host_address(p),
                p.host_port,
                p.container_port,
                p.protocol
            )
        })
        .collect();
    out.dedup();
    out
}

/// A container's network as `inspect` shows it: its addresses and aliases, and its ports in
/// Docker's form (`"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]`).
pub fn describe_attachment(a: &attach::Attachment) -> Value {
    let mut ports = serde_json::Map::new();
    for p in &a.published {
        let key = format!("{}/{}", p.container_port, p.protocol);
        let host_ip = match p.host_ip {
            Some(ip) => ip.to_string(),
            None if p.container_ip.is_ipv4() => "0.0.0.0".to_owned(),
            None => "::".to_owned(),
        };
        let binding = json!({ "HostIp": host_ip, "HostPort": p.host_port.to_string() });
        let entry = ports.entry(key).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            if !list.contains(&binding) {
                list.push(binding);
            }
        }
    }
    json!({
        "name": a.network,
        "bridge": a.bridge,
        "addresses": a.addresses.iter().map(|(ip, len)| format!("{ip}/{len}")).collect::<Vec<_>>(),
        "gateways": a.gateways,
        "aliases": a.aliases,
        "ports": ports,
    })
}

/// `cleat port NAME [PORT]`: the host addresses of a running container's published ports, as
/// Docker prints them (`80/tcp -> 0.0.0.0:8080`).
pub fn port(args: PortArgs) -> CmdResult {
    let name = super::name(&args.name).map_err(|f| f.error)?;
    let registry = Registry::system();
    registry.require(&name)?;
    let Some(attachment) = cleat::network::attach::load(&registry.state.dir(&name)) else {
        return Err(anyhow!("container {name} is not running on a bridge network").into());
    };
    let wanted = match &args.port {
        Some(p) => {
            let (number, protocol) = p.split_once('/').unwrap_or((p, "tcp"));
            let number: u16 = number
                .parse()
                .map_err(|_| anyhow!("invalid port {p:?} (expected PORT or PORT/PROTOCOL)"))?;
            Some((number, protocol.to_ascii_lowercase()))
        }
        None => None,
    };
    let mut lines: Vec<String> = attachment
        .published
        .iter()
        .filter(|p| {
            wanted
                .as_ref()
                .is_none_or(|(n, proto)| p.container_port == *n && p.protocol.to_string() == *proto)
        })
        .map(|p| {
            // As Docker: the container port in front only when all ports are listed.
            let host = format!("{}:{}", host_address(p), p.host_port);
            match wanted {
                Some(_) => host,
                None => format!("{}/{} -> {host}", p.container_port, p.protocol),
            }
        })
        .collect();
    lines.dedup();
    if lines.is_empty() && wanted.is_some() {
        return Err(anyhow!(
            "no public port {} published for {name}",
            args.port.unwrap_or_default()
        )
        .into());
    }
    for line in lines {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
