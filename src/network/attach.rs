//! A container on a bridge network, from its start to its stop: [`prepare`] before the
//! container exists (its address, the bridge, cleat's table, forwarding, the host ports),
//! [`connect`] once its network namespace exists and before its payload runs (the veth pair,
//! eth0, the published ports), [`detach`] when it has stopped, or when its start failed, or
//! at its next start after a crash (everything it had, and the bridge and forwarding when it
//! was the last container on them).
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
    Leases::new(PathBuf::from(RUN_ROOT).join(network).join("leases"))
}

/// The veth names of a container: `ve` / `vp` and 12 hexadecimal digits of a hash of its
/// name (interface names have at most 15 characters).
fn veth_names(container: &str) -> (String, String) {
    let digest = crate::image::digest::Digest::of(container.as_bytes());
    let hex = &digest.hex()[..12];
    (format!("ve{hex}"), format!("vp{hex}"))
}

/// Everything that can be decided and made before the container exists: its addresses (a
/// lease per subnet; `is_alive` says whether another lease's owner still runs), the bridge
/// up with the gateways' addresses, cleat's table with this network in it, forwarding on,
/// and the host ports chosen and checked free. Undone by [`detach`].
pub fn prepare(
    network: &Network,
    container: &str,
    ports: &[PortSpec],
    is_alive: impl Fn(&str) -> bool,
) -> Result<Attachment, AttachError> {
    let leases = leases(&network.name);
    let mut addresses = Vec::new();
    let mut gateways = Vec::new();
    for config in &network.subnets {
        let addr = leases
            .allocate(
                &config.subnet,
                &[config.gateway],
                container,
                None,
                &is_alive,
            )
            .map_err(|source| AttachError::Lease {
                network: network.name.clone(),
                source,
            })?;
        addresses.push((addr, config.subnet.prefix()));
        gateways.push(config.gateway);
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
    };
    // From here, a failure gives back what was taken.
    match finish_prepare(network, ports, &mut attachment) {
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
) -> Result<(), AttachError> {
    attachment.published = publish::resolve(ports, attachment.container_addresses())?;

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
    Ok(())
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
    // One nftables transaction: the network in cleat's table (again: `add` is idempotent) and
    // the container's ports. The table is made only when it is missing (loading its whole
    // definition costs more than the rest of a start).
    let script = nft::add_network(&attachment.bridge, &attachment.subnets)
        + &nft::add_ports(&attachment.published);
    let applied = match nft::apply(&script) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            nft::ensure_table().map_err(io_step("creating cleat's nftables table"))?;
            nft::apply(&script)
        }
        other => other,
    };
    applied.map_err(|e| {
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

/// Takes back what a container had: its published ports, its veth pair (gone with its
/// namespace already, usually), its leases; and when it was the last container on the
/// network, the network's bridge and its place in cleat's table, and when no network of
/// cleat's is left in use, IP forwarding as cleat found it. Every step is tried; the first
/// failure is reported.
pub fn detach(attachment: &Attachment, container: &str) -> Result<(), AttachError> {
    let mut first_error: Option<AttachError> = None;
    let mut keep = |r: Result<(), AttachError>| {
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    };
    keep(nft::delete_own_ports(&attachment.published).map_err(io_step("unpublishing the ports")));
    let runtime = runtime();
    keep(runtime.as_ref().map_err(clone_io).and_then(|rt| {
        rt.block_on(async {
            let h = link::connect()?;
            link::delete(&h, &attachment.veth).await?;
            Ok(())
        })
    }));
    let released = leases(&attachment.network).release_last(container, || {
        let _ = nft::apply(&nft::delete_network(
            &attachment.bridge,
            &attachment.subnets,
        ));
        match &runtime {
            Ok(rt) => rt.block_on(async {
                let h = link::connect()?;
                link::delete(&h, &attachment.bridge).await?;
                Ok::<(), AttachError>(())
            }),
            Err(e) => Err(clone_io(e)),
        }
    });
    match released {
        Ok((_, Ok(true))) => keep(
            Forwarding::system()
                .restore_unless(any_network_in_use)
                .map(drop)
                .map_err(io_step("restoring IP forwarding")),
        ),
        Ok((_, Ok(false))) => {}
        Ok((_, Err(e))) => keep(Err(e)),
        Err(source) => keep(Err(AttachError::Lease {
            network: attachment.network.clone(),
            source,
        })),
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
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

fn clone_io(e: &AttachError) -> AttachError {
    AttachError::Io {
        what: "starting a runtime".into(),
        source: io::Error::other(e.to_string()),
    }
}

/// Whether any network has a lease left (a container joins by taking its lease before it
/// turns forwarding on).
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
