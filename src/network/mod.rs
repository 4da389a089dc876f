//! Container networking (issue 5): networks (a bridge and its subnets), address management,
//! published ports, and the kernel objects that make them work (veth pairs, the bridge, nft
//! rules in cleat's own table).
//!
//! - [`attach`]: a container on a bridge network, from its start to its stop.
//! - [`forwarding`]: IP forwarding turned on while cleat needs it, and put back after.
//! - [`cidr`]: subnets and addresses, IPv4 and IPv6.
//! - [`link`]: the bridge, veth pairs and the container's interface, over rtnetlink.
//! - [`nft`]: cleat's nftables table: published ports, outbound NAT.
//! - [`ipam`]: leases of addresses on a network, as files under /run, safe against crashes
//!   and concurrent starts.
//! - [`ports`]: `-p [ip:][hostPort:]containerPort[/proto]` and its ranges.
//! - [`publish`]: from `-p` specs to the ports a container publishes (host ports chosen and
//!   checked free).
//! - [`store`]: network definitions under /var/lib/cleat/networks.
//!
//! How a container joins a bridge network (the plan these pieces serve): `internal start`
//! allocates its address ([`ipam::Leases`], owner = container name, liveness = its unit
//! runs), makes the network's bridge if it is missing, and after the clone creates a veth
//! pair whose peer goes straight into the container's network namespace (one RTM_NEWLINK
//! with the peer's IFLA_NET_NS_FD), then lets the container's first process, still cleat's
//! code and already in that namespace, name it eth0, give it its address and default route
//! and bring it up, before the payload runs. Published ports and outbound NAT are rules in
//! cleat's own nft table (`inet cleat`), one set of elements per container, so that adding
//! or removing a container never rewrites another's. `internal stopped` (ExecStopPost)
//! releases the lease and removes the veth and the elements; a crash is cleaned up at the
//! container's next start or by `network prune`.

pub mod attach;
pub mod cidr;
pub mod forwarding;
pub mod ipam;
pub mod link;
pub mod names;
pub mod nft;
pub mod ports;
pub mod publish;
pub mod store;
#[cfg(test)]
mod testing;
