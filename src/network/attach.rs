//! A container on a bridge network, from its start to its stop: [`prepare`] before the
//! container exists (its address, the network up, the host ports chosen), [`connect`] once its
//! network namespace exists and before its payload runs (the veth pair, eth0, the published
//! ports), [`detach`] when it has stopped, or when its start failed, or at its next start
//! after a crash (everything it had).
//!
//! A network is up while containers come and go: its bridge, and its bridge and subnets in
//! cleat's table, are made by the first container that joins and stay when the last one
//! leaves, until [`take_down_if_idle`] finds it unused (systemd runs it a little later; `cleat
//! network prune` at once). Bringing a bridge up and down for each of a run of short-lived
//! containers would cost each of them more than the rest of its start (deleting a link waits
//! for the kernel's RCU grace periods).
//!
//! What a container has is recorded in an [`Attachment`] (in its state directory), so that
//! detaching needs nothing but that record.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::forwarding::Forwarding;
use super::ipam::{IpamError, Leases};
use super::link::{self, Inside, LinkError};
use super::nft::{self, Published};
use super::ports::PortSpec;
use super::publish::{self, Addresses, PublishError};
use super::store::Network;

/// Where a network's runtime state (its leases) lives.
pub const RUN_ROOT: &str = "/run/cleat/networks";

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("network {network}: {source}")]
    Lease {
        network: String,
        #[source]
        source: IpamError,
    },
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_step(what: impl Into<String>) -> impl FnOnce(io::Error) -> AttachError {
    let what = what.into();
    move |source| AttachError::Io { what, source }
}

/// What a container has on its network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub bridge: String,
    /// Subnets of the network (for cleat's table).
    pub subnets: Vec<super::cidr::Subnet>,
    /// The host's end of the veth pair.
    pub veth: String,
    /// The container's end until it is renamed eth0.
    pub peer: String,
    /// The container's addresses with their prefix lengths.
    pub addresses: Vec<(IpAddr, u8)>,
    pub gateways: Vec<IpAddr>,
    pub published: Vec<Published>,
    /// Names the other containers on the network know it by, besides its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl Attachment {
    /// The container's address of each family.
    pub fn container_addresses(&self) -> Addresses {
        let mut out = Addresses { v4: None, v6: None };
        for (addr, _) in &self.addresses {
            match addr {
                IpAddr::V4(a) => out.v4 = out.v4.or(Some(*a)),
                IpAddr::V6(a) => out.v6 = out.v6.or(Some(*a)),
            }
        }
        out
    }
}

/// The record of a container's attachment, in its state directory.
const RECORD: &str = "network.json";
/// The mark of a container that holds (or is taking) addresses: made before it takes them,
/// removed when it gives them back. A lease whose owner has no mark is a crashed start's.
const MARKER: &str = "network.lease";

/// The attachment recorded in the container state directory `dir`, if any.
pub fn load(dir: &Path) -> Option<Attachment> {
    serde_json::from_slice(&std::fs::read(dir.join(RECORD)).ok()?).ok()
}

/// Records `attachment` in the container state directory `dir` (temporary file, then rename).
pub fn save(dir: &Path, attachment: &Attachment) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(attachment)?;
    let tmp = dir.join(format!(".{RECORD}.tmp"));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, dir.join(RECORD))
}

/// Marks the container of state directory `dir` as holding addresses on `network`.
pub fn mark(dir: &Path, network: &str) -> io::Result<()> {
    std::fs::write(dir.join(MARKER), network)
}

/// Whether the container of state directory `dir` holds (or is taking) addresses.
pub fn is_marked(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// Forgets the record and the mark of the container of state directory `dir`.
pub fn forget(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(RECORD));
    let _ = std::fs::remove_file(dir.join(MARKER));
}

fn leases(network: &str) -> Leases {
    Leases::new(run_dir(network).join("leases"))
}

/// A network's runtime directory: its leases, its lock, and its mark while it is up.
fn run_dir(network: &str) -> PathBuf {
    PathBuf::from(RUN_ROOT).join(network)
}

/// The lock of a network's state, held by a container joining it (from taking its address
/// until the network is up) and by the network's take-down: a network is never taken down
/// under a container that is joining it.
const NETWORK_LOCK: &str = "lock";
/// The mark of a network that is up, or being brought up ([`Up`]).
const UP: &str = "up";
/// The lock of cleat's nftables table, taken exclusively to rebuild it and shared to add a
/// network to it, so that a rebuild never misses a network being added.
const TABLE_LOCK: &str = "/run/cleat/nftables.lock";

/// A network that is up (its bridge made, its bridge and subnets in cleat's table), or being
/// brought up (`complete` false): what taking it down needs, whatever became of its
/// definition meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Up {
    bridge: String,
    subnets: Vec<super::cidr::Subnet>,
    #[serde(default)]
    internal: bool,
    complete: bool,
}

impl Up {
    fn add_script(&self) -> String {
        let mut script = nft::add_network(&self.bridge, &self.subnets);
        if self.internal {
            script.push_str(&nft::add_internal(&self.bridge));
        }
        script
    }

    fn delete_script(&self) -> String {
        let mut script = String::new();
        if self.internal {
            script.push_str(&nft::delete_internal(&self.bridge));
        }
        script + &nft::delete_network(&self.bridge, &self.subnets)
    }
}

fn read_up(network: &str) -> Option<Up> {
    serde_json::from_slice(&std::fs::read(run_dir(network).join(UP)).ok()?).ok()
}

fn write_up(network: &str, up: &Up) -> io::Result<()> {
    let dir = run_dir(network);
    let tmp = dir.join(format!(".{UP}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(up)?)?;
    std::fs::rename(&tmp, dir.join(UP))
}

/// What the rest of cleat knows about containers, for what a network needs from it.
pub trait Containers {
    /// Whether the container `owner` may still use its address (a lease of a container that
    /// is not is reclaimed).
    fn is_alive(&self, owner: &str) -> bool;
    /// The attachments of every container that holds addresses, for rebuilding cleat's table.
    fn attachments(&self) -> Vec<Attachment>;
    /// The attachment of one container, if it holds addresses.
    fn attachment(&self, owner: &str) -> Option<Attachment>;
    /// The /etc/hosts file of a container (cleat's file, bind-mounted into it), if it has one.
    fn hosts_file(&self, owner: &str) -> Option<PathBuf>;
    /// Tells the administrator about something that may keep the network from working.
    fn warn(&self, message: &str);
    /// Whether the network is still defined (it may have been removed since it was read).
    fn network_exists(&self, network: &str) -> bool;
}

/// An exclusive lock on `path`, held until the file is dropped.
fn lock_file(path: &Path, operation: rustix::fs::FlockOperation) -> io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    loop {
        match rustix::fs::flock(&file, operation) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn lock_network(network: &str) -> Result<std::fs::File, AttachError> {
    let path = run_dir(network).join(NETWORK_LOCK);
    lock_file(&path, rustix::fs::FlockOperation::LockExclusive)
        .map_err(io_step(path.display().to_string()))
}

/// The veth names of a container: `ve` / `vp` and 12 hexadecimal digits of a hash of its
/// name (interface names have at most 15 characters).
fn veth_names(container: &str) -> (String, String) {
    let digest = crate::image::digest::Digest::of(container.as_bytes());
    let hex = &digest.hex()[..12];
    (format!("ve{hex}"), format!("vp{hex}"))
}

/// What a container asks of its network.
#[derive(Debug, Default, Clone, Copy)]
pub struct Request<'a> {
    pub ports: &'a [PortSpec],
    /// Static addresses (`--ip`, `--ip6`).
    pub ip: Option<std::net::Ipv4Addr>,
    pub ip6: Option<std::net::Ipv6Addr>,
    /// `--network-alias`.
    pub aliases: &'a [String],
}

/// Everything that can be decided and made before the container exists: its addresses (a
/// lease per subnet), the network up (its bridge, its place in cleat's table), forwarding on,
/// and the host ports chosen. Undone by [`detach`] (the network stays up: see
/// [`take_down_if_idle`]).
pub fn prepare(
    network: &Network,
    container: &str,
    request: &Request<'_>,
    containers: &dyn Containers,
) -> Result<Attachment, AttachError> {
    let no_subnet = |family: &str| AttachError::Io {
        what: format!("network {}", network.name),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it has no {family} subnet for a static {family} address"),
        ),
    };
    if network.internal && !request.ports.is_empty() {
        return Err(AttachError::Io {
            what: format!("network {}", network.name),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is internal: nothing reaches it from outside, ports cannot be published",
            ),
        });
    }
    if request.ip.is_some() && !network.subnets.iter().any(|s| s.subnet.is_ipv4()) {
        return Err(no_subnet("IPv4"));
    }
    if request.ip6.is_some() && !network.subnets.iter().any(|s| !s.subnet.is_ipv4()) {
        return Err(no_subnet("IPv6"));
    }
    let _lock = lock_network(&network.name)?;
    // Removed while this start waited for the lock: nothing to join.
    if !containers.network_exists(&network.name) {
        return Err(AttachError::Io {
            what: format!("network {}", network.name),
            source: io::Error::new(io::ErrorKind::NotFound, "it was removed"),
        });
    }
    let leases = leases(&network.name);
    let mut addresses = Vec::new();
    let mut gateways = Vec::new();
    for config in &network.subnets {
        let wanted = if config.subnet.is_ipv4() {
            request.ip.map(IpAddr::V4)
        } else {
            request.ip6.map(IpAddr::V6)
        };
        let addr = leases
            .allocate(
                &config.subnet,
                &[config.gateway],
                container,
                wanted,
                |owner| containers.is_alive(owner),
            )
            .map_err(|source| AttachError::Lease {
                network: network.name.clone(),
                source,
            })?;
        addresses.push((addr, config.subnet.prefix()));
        // An internal network leads nowhere: no default route.
        if !network.internal {
            gateways.push(config.gateway);
        }
    }
    let (veth, peer) = veth_names(container);
    let mut attachment = Attachment {
        network: network.name.clone(),
        bridge: network.bridge.clone(),
        subnets: network.subnets.iter().map(|s| s.subnet).collect(),
        veth,
        peer,
        addresses,
        gateways,
        published: Vec::new(),
        aliases: request.aliases.to_vec(),
    };
    // From here, a failure gives back what was taken.
    match finish_prepare(network, request.ports, &mut attachment, containers) {
        Ok(()) => Ok(attachment),
        Err(e) => {
            let _ = detach(&attachment, container);
            Err(e)
        }
    }
}

fn finish_prepare(
    network: &Network,
    ports: &[PortSpec],
    attachment: &mut Attachment,
    containers: &dyn Containers,
) -> Result<(), AttachError> {
    attachment.published = publish::resolve(ports, attachment.container_addresses())?;
    let up = read_up(&network.name);
    let state = nft::table_state().map_err(io_step("reading cleat's nftables table"))?;
    let is_up = up.as_ref().is_some_and(|u| {
        u.complete && u.bridge == network.bridge && u.internal == network.internal
    }) && state == nft::TableState::Current;
    let wanted = Up {
        bridge: network.bridge.clone(),
        subnets: attachment.subnets.clone(),
        internal: network.internal,
        complete: false,
    };
    if !is_up {
        // Marked first: a take-down after a crash from here on knows what to take down.
        write_up(&network.name, &wanted).map_err(io_step("marking the network up"))?;
    }

    // The bridge is checked at every start (a few netlink messages): one deleted by hand is
    // made again.
    let bridge_addresses: Vec<(IpAddr, u8)> = network
        .subnets
        .iter()
        .map(|s| (s.gateway, s.subnet.prefix()))
        .collect();
    let runtime = runtime()?;
    runtime.block_on(async {
        let h = link::connect()?;
        link::ensure_bridge(&h, &network.bridge, &bridge_addresses).await?;
        Ok::<(), AttachError>(())
    })?;
    // Published ports reached from the host's 127.0.0.1 are routed out by the bridge.
    let localnet = PathBuf::from("/proc/sys/net/ipv4/conf")
        .join(&network.bridge)
        .join("route_localnet");
    std::fs::write(&localnet, "1").map_err(io_step(localnet.display().to_string()))?;
    Forwarding::system()
        .enable(network.ipv6())
        .map_err(io_step("turning IP forwarding on"))?;

    if !is_up {
        // Said once per bring-up: another table's forward chain that drops by default drops
        // the containers' traffic beyond the host too.
        if !network.internal {
            for chain in nft::forward_droppers().unwrap_or_default() {
                containers.warn(&format!(
                    "network {}: the forward chain of table {chain} drops by default: unless it \
                     accepts what comes from and goes to {}, containers cannot reach beyond this \
                     host (cleat never changes another table)",
                    network.name, network.bridge
                ));
            }
        }
        add_to_table(&wanted, state, containers)
            .map_err(io_step("adding the network to cleat's nftables table"))?;
        let complete = Up {
            complete: true,
            ..wanted
        };
        write_up(&network.name, &complete).map_err(io_step("marking the network up"))?;
    }
    Ok(())
}

/// The lock of cleat's table (see [`TABLE_LOCK`]).
fn table_lock(operation: rustix::fs::FlockOperation) -> io::Result<std::fs::File> {
    lock_file(Path::new(TABLE_LOCK), operation)
}

/// Puts a network into cleat's table; when the table is missing (a reboot, `nft flush
/// ruleset`) or was made by another version of cleat, makes it anew with every network that is
/// up and every container's published ports in it.
fn add_to_table(
    network: &Up,
    state: nft::TableState,
    containers: &dyn Containers,
) -> io::Result<()> {
    use rustix::fs::FlockOperation;
    if state == nft::TableState::Current {
        let _shared = lock_file(Path::new(TABLE_LOCK), FlockOperation::LockShared)?;
        match nft::apply(&network.add_script()) {
            // Deleted since it was asked about: make it anew, below.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
    }
    let _exclusive = lock_file(Path::new(TABLE_LOCK), FlockOperation::LockExclusive)?;
    // Another start may have made it meanwhile.
    let state = nft::table_state()?;
    if state == nft::TableState::Current {
        return nft::apply(&network.add_script());
    }
    let mut networks = vec![(
        network.bridge.clone(),
        network.subnets.clone(),
        network.internal,
    )];
    if let Ok(entries) = std::fs::read_dir(RUN_ROOT) {
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(up) = read_up(&name).filter(|u| u.bridge != network.bridge) {
                networks.push((up.bridge, up.subnets, up.internal));
            }
        }
    }
    // Containers of networks an older cleat brought up (without marks) are in the table too.
    let attachments = containers.attachments();
    for a in &attachments {
        if !networks.iter().any(|(bridge, _, _)| *bridge == a.bridge) {
            networks.push((a.bridge.clone(), a.subnets.clone(), false));
        }
    }
    let ports: Vec<Published> = attachments.into_iter().flat_map(|a| a.published).collect();
    nft::apply(&nft::rebuild(
        state == nft::TableState::Outdated,
        &networks,
        &ports,
    ))
}

/// Connects the container whose first process is `pid` (waiting, in its own network
/// namespace): its veth pair, eth0 with its addresses and routes, its published ports.
pub fn connect(attachment: &Attachment, pid: i32) -> Result<(), AttachError> {
    let path = format!("/proc/{pid}/ns/net");
    let netns = std::fs::File::open(&path).map_err(io_step(path))?;
    let runtime = runtime()?;
    runtime.block_on(async {
        let h = link::connect()?;
        let bridge = link::index_of(&h, &attachment.bridge)
            .await?
            .ok_or_else(|| AttachError::Io {
                what: format!("bridge {}", attachment.bridge),
                source: io::Error::from_raw_os_error(libc::ENODEV),
            })?;
        // A leftover pair of a crashed start of the same container would be in the way.
        link::delete(&h, &attachment.veth).await?;
        link::add_veth(
            &h,
            &attachment.veth,
            &attachment.peer,
            netns.as_fd(),
            bridge,
        )
        .await?;
        Ok::<(), AttachError>(())
    })?;
    link::configure_inside(
        netns.as_fd(),
        &Inside {
            from: attachment.peer.clone(),
            addresses: attachment.addresses.clone(),
            gateways: attachment.gateways.clone(),
        },
    )?;
    if attachment.published.is_empty() {
        return Ok(());
    }
    // One nftables transaction for all the container's ports. A host port that another
    // container publishes leads elsewhere, and `add` refuses it.
    nft::apply(&nft::add_ports(&attachment.published)).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            AttachError::Io {
                what: "publishing the ports".into(),
                source: io::Error::new(
                    e.kind(),
                    format!(
                        "another container publishes host port {} already",
                        describe_ports(&attachment.published)
                    ),
                ),
            }
        } else {
            io_step("publishing the ports")(e)
        }
    })?;
    Ok(())
}

/// Takes back what a container had once its processes are gone: its published ports and its
/// addresses (its veth pair goes with its network namespace). The network stays up: a container that
/// restarts, or the next of a run of short-lived ones, finds it ready; [`take_down_if_idle`]
/// takes it down once nobody uses it. Every step is tried; the first failure is reported.
pub fn detach(attachment: &Attachment, container: &str) -> Result<(), AttachError> {
    let mut first_error: Option<AttachError> = None;
    let mut keep = |r: Result<(), AttachError>| {
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    };
    // Until the lease is given back: shared with other changes, exclusive of a table rebuild,
    // which would put back the ports of a container that still held its lease when it read
    // the records.
    let _table = if attachment.published.is_empty() {
        None
    } else {
        match table_lock(rustix::fs::FlockOperation::LockShared) {
            Ok(lock) => Some(lock),
            Err(e) => {
                keep(Err(io_step("locking cleat's nftables table")(e)));
                None
            }
        }
    };
    keep(nft::delete_own_ports(&attachment.published).map_err(io_step("unpublishing the ports")));
    // The veth pair goes with the container's network namespace, which the kernel destroys
    // once nothing is left in it (a container's stop, or a failed start, kills every process
    // in it). Deleting it here would wait for the RCU grace periods that unregistering a link
    // takes, tens of milliseconds of every stop, for what the kernel does anyway. A pair kept
    // by something still holding the namespace (a process someone moved into it) stays while
    // that does, and is deleted at the container's next start.
    keep(
        leases(&attachment.network)
            .release(container)
            .map(drop)
            .map_err(|source| AttachError::Lease {
                network: attachment.network.clone(),
                source,
            }),
    );
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Brings every /etc/hosts of `network`'s containers up to date with who is on it now (see
/// [`super::names`]); under the network's lock, so that of two containers joining at once the
/// later sees the earlier. A member whose file cannot be rewritten is reported and skipped.
pub fn refresh_names(network: &str, containers: &dyn Containers) -> Result<(), AttachError> {
    let _lock = lock_network(network)?;
    let mut owners: Vec<String> = leases(network)
        .list()
        .map_err(|source| AttachError::Lease {
            network: network.to_owned(),
            source,
        })?
        .into_iter()
        .map(|(_, owner)| owner)
        .filter(|owner| containers.is_alive(owner))
        .collect();
    owners.sort();
    owners.dedup();
    let members: Vec<(String, super::names::Member)> = owners
        .into_iter()
        .filter_map(|owner| {
            let attachment = containers.attachment(&owner)?;
            let mut names = vec![owner.clone()];
            names.extend(attachment.aliases.iter().cloned());
            let addresses = attachment.addresses.iter().map(|(a, _)| *a).collect();
            Some((owner, super::names::Member { addresses, names }))
        })
        .collect();
    let all: Vec<super::names::Member> = members.iter().map(|(_, m)| m.clone()).collect();
    let section = super::names::section(network, &all);
    let mut first_error = None;
    for (owner, _) in &members {
        let Some(path) = containers.hosts_file(owner) else {
            continue;
        };
        let Ok(hosts) = std::fs::read_to_string(&path) else {
            continue;
        };
        let text = super::names::with_section(&hosts, network, &section);
        if text != hosts {
            if let Err(e) = super::names::rewrite_in_place(&path, &text) {
                first_error.get_or_insert(AttachError::Io {
                    what: path.display().to_string(),
                    source: e,
                });
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Whether `owner` holds an address on `network` (its record may outlive its lease: a power
/// cut empties /run, not the container's state directory).
pub fn holds_lease(network: &str, owner: &str) -> bool {
    leases(network)
        .list()
        .is_ok_and(|l| l.iter().any(|(_, o)| o == owner))
}

/// Whether `network` is up with no container on it.
pub fn is_idle(network: &str) -> bool {
    read_up(network).is_some() && leases(network).list().is_ok_and(|l| l.is_empty())
}

/// Removes cleat's table once no network is up: the host's ruleset is again what it was
/// before cleat's first container. A network being brought up meanwhile has marked itself up
/// already, or finds the table gone and makes it anew.
fn remove_table_if_unused() -> io::Result<()> {
    if !up_networks().is_empty() {
        return Ok(());
    }
    let _exclusive = lock_file(
        Path::new(TABLE_LOCK),
        rustix::fs::FlockOperation::LockExclusive,
    )?;
    if !up_networks().is_empty() || nft::table_state()? == nft::TableState::Missing {
        return Ok(());
    }
    match nft::apply(&format!("delete table {}\n", nft::TABLE)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The networks that are up (or were being brought up), by name.
pub fn up_networks() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(RUN_ROOT) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| read_up(name).is_some())
        .collect();
    names.sort();
    names
}

/// What a take-down under the network's lock found.
enum TakeDown {
    /// A container is on the network.
    InUse,
    /// Nobody is; `true` if the network was up and is now down.
    Done(bool),
}

/// Takes `network` down if no container is on it (leases of containers that are gone are
/// reclaimed first): its place in cleat's table and its bridge. The caller holds its lock.
fn take_down_locked(network: &str, containers: &dyn Containers) -> Result<TakeDown, AttachError> {
    let leases = leases(network);
    let lease_error = |source| AttachError::Lease {
        network: network.to_owned(),
        source,
    };
    leases
        .reclaim(|owner| containers.is_alive(owner))
        .map_err(lease_error)?;
    if !leases.list().map_err(lease_error)?.is_empty() {
        return Ok(TakeDown::InUse);
    }
    let Some(up) = read_up(network) else {
        return Ok(TakeDown::Done(false));
    };
    // No longer whole from here: a failure halfway leaves a network that the next container
    // brings up again rather than trusts.
    if up.complete {
        let partial = Up {
            complete: false,
            ..up.clone()
        };
        write_up(network, &partial).map_err(io_step("marking the network down"))?;
    }
    let deleted = table_lock(rustix::fs::FlockOperation::LockShared)
        .and_then(|_lock| nft::apply(&up.delete_script()));
    match deleted {
        // Not there (a start that crashed before adding it, or the table is gone): fine.
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io_step("removing the network from cleat's nftables table")(
                e,
            ));
        }
        _ => {}
    }
    runtime()?.block_on(async {
        let h = link::connect()?;
        link::delete(&h, &up.bridge).await?;
        Ok::<(), AttachError>(())
    })?;
    let _ = std::fs::remove_file(run_dir(network).join(UP));
    Ok(TakeDown::Done(true))
}

/// After a network went down: cleat's table when no network is left up, and IP forwarding as
/// cleat found it when no container is left on any network.
fn after_take_down() -> Result<(), AttachError> {
    remove_table_if_unused().map_err(io_step("removing cleat's nftables table"))?;
    Forwarding::system()
        .restore_unless(any_network_in_use)
        .map(drop)
        .map_err(io_step("restoring IP forwarding"))
}

/// Takes `network` down if no container is on it (see [`take_down_locked`]), and then what
/// no network needs any more. Returns whether it took it down.
pub fn take_down_if_idle(network: &str, containers: &dyn Containers) -> Result<bool, AttachError> {
    let lock = lock_network(network)?;
    let outcome = take_down_locked(network, containers)?;
    drop(lock);
    match outcome {
        TakeDown::Done(true) => after_take_down().map(|()| true),
        _ => Ok(false),
    }
}

/// Removes `network` if no container is on it, under its lock (a container joining at the
/// same time either joined first, and the network stays, or finds it gone): takes it down,
/// runs `remove` (the definition's removal), forgets its runtime state. Returns `false`, and
/// removes nothing, if a container is on it.
pub fn remove_network(
    network: &str,
    containers: &dyn Containers,
    remove: impl FnOnce() -> io::Result<()>,
) -> Result<bool, AttachError> {
    let lock = lock_network(network)?;
    let outcome = take_down_locked(network, containers)?;
    if matches!(outcome, TakeDown::InUse) {
        return Ok(false);
    }
    remove().map_err(io_step(format!("removing network {network}")))?;
    // The lock files stay (a process waiting on them must lock what the next one locks).
    let dir = run_dir(network);
    for file in [UP, "idle-timer"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    drop(lock);
    if matches!(outcome, TakeDown::Done(true)) {
        after_take_down()?;
    }
    Ok(true)
}

/// `8080/tcp or 127.0.0.1:53/udp`, for messages.
fn describe_ports(ports: &[Published]) -> String {
    let mut out: Vec<String> = ports
        .iter()
        .map(|p| match p.host_ip {
            Some(ip) => format!("{ip}:{}/{}", p.host_port, p.protocol),
            None => format!("{}/{}", p.host_port, p.protocol),
        })
        .collect();
    out.dedup();
    out.join(" or ")
}

/// Whether any network has a lease left (a container joins by taking its lease before it
/// turns forwarding on, and a network's lock is not needed: a lease taken after this looked
/// turns forwarding on after the restore).
fn any_network_in_use() -> bool {
    let Ok(entries) = std::fs::read_dir(RUN_ROOT) else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        Leases::new(e.path().join("leases"))
            .list()
            .is_ok_and(|l| !l.is_empty())
    })
}

/// A runtime for the netlink calls, confined to the calling thread.
fn runtime() -> Result<tokio::runtime::Runtime, AttachError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_step("starting a runtime"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_and_differ() {
        let (a, pa) = veth_names("web");
        let (b, _) = veth_names("db");
        assert_eq!(a.len(), 14);
        assert!(a.starts_with("ve") && pa.starts_with("vp"));
        assert_eq!(a[2..], pa[2..]);
        assert_ne!(a, b);
        assert_eq!(veth_names("web").0, a, "stable");
    }
}
