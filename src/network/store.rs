//! Network definitions: `/var/lib/cleat/networks/NAME.json`, one file a network, written
//! atomically. A definition is only a plan: the bridge and its addresses are made when the
//! first container joins, and removed when the last one leaves.
//!
//! The default network, `bridge`, always exists (its definition is written the first time it
//! is asked for); it cannot be removed. Networks made without `--subnet` take the first /24 of
//! 10.89.0.0/16 that no other network and no route of the host uses (IPv6: the first free /64
//! of fd89:c1ea::/48), so that two hosts' defaults do not get in each other's way any more than
//! Docker's do.

use std::fs;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cidr::Subnet;

/// Where definitions live.
pub const SYSTEM_ROOT: &str = "/var/lib/cleat/networks";
/// The network a container joins when it names none (Docker's name for it).
pub const DEFAULT_NETWORK: &str = "bridge";
/// The default network's bridge interface.
pub const DEFAULT_BRIDGE: &str = "cleat0";
/// The only driver.
pub const BRIDGE_DRIVER: &str = "bridge";

/// IPv4 pool for networks made without a subnet: /24s of this /16, the first for the default.
const POOL_V4: &str = "10.89.0.0/16";
const POOL_V4_PREFIX: u8 = 24;
/// IPv6 pool (unique local addresses): /64s of this /48.
const POOL_V6: &str = "fd89:c1ea::/48";
const POOL_V6_PREFIX: u8 = 64;

/// Docker's rule for network names, as for volume names.
const NAME_MAX: usize = 128;

/// One subnet of a network, with the bridge's (gateway's) address in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetConfig {
    pub subnet: Subnet,
    pub gateway: IpAddr,
}

/// A network definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// 32 random hexadecimal digits.
    pub id: String,
    pub driver: String,
    /// The bridge interface (at most 15 characters).
    pub bridge: String,
    /// One IPv4 subnet, and with IPv6 one IPv6 subnet.
    pub subnets: Vec<SubnetConfig>,
    /// Without outbound NAT nor published ports: containers reach each other only.
    #[serde(default)]
    pub internal: bool,
    pub created_usec: u64,
}

impl Network {
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_NETWORK
    }

    pub fn ipv6(&self) -> bool {
        self.subnets.iter().any(|s| !s.subnet.is_ipv4())
    }
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    /// Explicit subnets (at most one of each family), each with an optional gateway.
    pub subnets: Vec<(Subnet, Option<IpAddr>)>,
    /// An IPv6 subnet too (from the pool when none is given).
    pub ipv6: bool,
    pub internal: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("{0}")]
    Invalid(String),
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network {0} already exists")]
    Exists(String),
    #[error("subnet {subnet} overlaps {what}")]
    Overlap { subnet: Subnet, what: String },
    #[error("no free {family} subnet left in {pool}; give one with --subnet")]
    PoolExhausted {
        family: &'static str,
        pool: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a network definition cleat can read: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> NetworkError + '_ {
    move |source| NetworkError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks a network name against Docker's rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
pub fn check_name(name: &str) -> Result<(), NetworkError> {
    crate::spec::mounts::check_docker_name("network", name, NAME_MAX)
        .map_err(|e| NetworkError::Invalid(e.0))
}

/// The network definitions of one host.
pub struct NetworkStore {
    root: PathBuf,
}

impl NetworkStore {
    pub fn system() -> NetworkStore {
        NetworkStore::at(SYSTEM_ROOT)
    }

    pub fn at(root: impl Into<PathBuf>) -> NetworkStore {
        NetworkStore { root: root.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.json"))
    }

    /// Every network, the default first, then by name.
    pub fn list(&self) -> Result<Vec<Network>, NetworkError> {
        let mut out = vec![self.default_network()?];
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&self.root)(e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".json")?.to_owned();
                (name != DEFAULT_NETWORK && check_name(&name).is_ok()).then_some(name)
            })
            .collect();
        names.sort();
        for name in names {
            if let Some(network) = self.read(&name)? {
                out.push(network);
            }
        }
        Ok(out)
    }

    /// The network called `name`, if there is one (the default always is).
    pub fn get(&self, name: &str) -> Result<Option<Network>, NetworkError> {
        check_name(name)?;
        if name == DEFAULT_NETWORK {
            return self.default_network().map(Some);
        }
        self.read(name)
    }

    pub fn require(&self, name: &str) -> Result<Network, NetworkError> {
        self.get(name)?
            .ok_or_else(|| NetworkError::NotFound(name.to_owned()))
    }

    fn read(&self, name: &str) -> Result<Option<Network>, NetworkError> {
        let path = self.path(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| NetworkError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The default network's definition, written the first time it is asked for (with the
    /// first /24 of the pool, which it keeps even if a route of the host covers it later).
    fn default_network(&self) -> Result<Network, NetworkError> {
        if let Some(network) = self.read(DEFAULT_NETWORK)? {
            return Ok(network);
        }
        let subnet: Subnet = POOL_V4.parse().map_err(invalid)?;
        let subnet = subnet
            .subnets(POOL_V4_PREFIX)
            .next()
            .ok_or_else(|| NetworkError::Invalid("empty pool".into()))?;
        let network = Network {
            name: DEFAULT_NETWORK.to_owned(),
            id: random_hex(16).map_err(io_err(Path::new("/dev/urandom")))?,
            driver: BRIDGE_DRIVER.to_owned(),
            bridge: DEFAULT_BRIDGE.to_owned(),
            subnets: vec![SubnetConfig {
                gateway: default_gateway(&subnet)?,
                subnet,
            }],
            internal: false,
            created_usec: crate::time::now_usec(),
        };
        match self.write_new(&network) {
            Ok(()) => Ok(network),
            // Another process wrote it first: theirs is the one.
            Err(NetworkError::Exists(_)) => self
                .read(DEFAULT_NETWORK)?
                .ok_or_else(|| NetworkError::NotFound(DEFAULT_NETWORK.into())),
            Err(e) => Err(e),
        }
    }

    /// Creates a network. `routes` are the host's routes (see [`host_routes`]): a subnet that
    /// overlaps one, or another network's, is refused. Subnets not given come from the pools.
    pub fn create(&self, req: &CreateRequest, routes: &[Route]) -> Result<Network, NetworkError> {
        check_name(&req.name)?;
        if req.name == DEFAULT_NETWORK || self.read(&req.name)?.is_some() {
            return Err(NetworkError::Exists(req.name.clone()));
        }
        let _lock = self.lock()?;
        let others = self.list()?;
        let taken: Vec<(Subnet, String)> = others
            .iter()
            .flat_map(|n| {
                n.subnets
                    .iter()
                    .map(|s| (s.subnet, format!("network {}", n.name)))
            })
            .chain(
                routes
                    .iter()
                    .filter(|r| !others.iter().any(|n| n.bridge == r.device))
                    .map(|r| {
                        (
                            r.destination,
                            format!("a route of the host (dev {})", r.device),
                        )
                    }),
            )
            .collect();
        let overlap = |subnet: &Subnet| {
            taken
                .iter()
                .find(|(t, _)| t.overlaps(subnet))
                .map(|(_, what)| what.clone())
        };

        let mut subnets = Vec::new();
        for (family_v4, wanted) in [(true, true), (false, req.ipv6)] {
            let given: Vec<&(Subnet, Option<IpAddr>)> = req
                .subnets
                .iter()
                .filter(|(s, _)| s.is_ipv4() == family_v4)
                .collect();
            let config = match given.as_slice() {
                [] if !wanted => continue,
                [] => {
                    let (pool, prefix, name) = if family_v4 {
                        (POOL_V4, POOL_V4_PREFIX, "IPv4")
                    } else {
                        (POOL_V6, POOL_V6_PREFIX, "IPv6")
                    };
                    let pool_subnet: Subnet = pool.parse().map_err(invalid)?;
                    let subnet = pool_subnet
                        .subnets(prefix)
                        .find(|s| overlap(s).is_none())
                        .ok_or(NetworkError::PoolExhausted { family: name, pool })?;
                    SubnetConfig {
                        gateway: default_gateway(&subnet)?,
                        subnet,
                    }
                }
                [(subnet, gateway)] => {
                    if let Some(what) = overlap(subnet) {
                        return Err(NetworkError::Overlap {
                            subnet: *subnet,
                            what,
                        });
                    }
                    let gateway = match gateway {
                        Some(g) => {
                            check_gateway(subnet, *g)?;
                            *g
                        }
                        None => default_gateway(subnet)?,
                    };
                    SubnetConfig {
                        subnet: *subnet,
                        gateway,
                    }
                }
                _ => {
                    return Err(NetworkError::Invalid(format!(
                        "more than one {} subnet; a network has at most one of each family",
                        if family_v4 { "IPv4" } else { "IPv6" }
                    )));
                }
            };
            subnets.push(config);
        }
        let id = random_hex(16).map_err(io_err(Path::new("/dev/urandom")))?;
        let network = Network {
            name: req.name.clone(),
            bridge: format!("cl-{}", &id[..12]),
            id,
            driver: BRIDGE_DRIVER.to_owned(),
            subnets,
            internal: req.internal,
            created_usec: crate::time::now_usec(),
        };
        self.write_new(&network)?;
        Ok(network)
    }

    /// Removes a network's definition. The default network cannot be removed; the caller
    /// checks that no container uses the network.
    pub fn remove(&self, name: &str) -> Result<(), NetworkError> {
        check_name(name)?;
        if name == DEFAULT_NETWORK {
            return Err(NetworkError::Invalid(format!(
                "{DEFAULT_NETWORK} is the default network and cannot be removed"
            )));
        }
        let path = self.path(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(NetworkError::NotFound(name.to_owned()))
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Writes a definition that must not exist yet (link(2) of a complete temporary file:
    /// atomic and exclusive).
    fn write_new(&self, network: &Network) -> Result<(), NetworkError> {
        ensure_dir(&self.root)?;
        let path = self.path(&network.name);
        let json = serde_json::to_vec_pretty(network).map_err(|source| NetworkError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let tmp = self.root.join(format!(
            ".{}.{}",
            network.name,
            random_hex(8).map_err(io_err(Path::new("/dev/urandom")))?
        ));
        fs::write(&tmp, json).map_err(io_err(&tmp))?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(NetworkError::Exists(network.name.clone()))
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Serialises creations, so that two never take the same subnet from the pool.
    fn lock(&self) -> Result<fs::File, NetworkError> {
        ensure_dir(&self.root)?;
        let path = self.root.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(&path)(e.into()))?;
        Ok(file)
    }
}

fn invalid(e: impl std::fmt::Display) -> NetworkError {
    NetworkError::Invalid(e.to_string())
}

fn ensure_dir(dir: &Path) -> Result<(), NetworkError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

/// The first host address of the subnet: the bridge's. A subnet needs room for it and for at
/// least one container.
fn default_gateway(subnet: &Subnet) -> Result<IpAddr, NetworkError> {
    if subnet.size() < 4 {
        return Err(NetworkError::Invalid(format!(
            "subnet {subnet} is too small for a gateway and containers"
        )));
    }
    Ok(subnet.first_host())
}

fn check_gateway(subnet: &Subnet, gateway: IpAddr) -> Result<(), NetworkError> {
    default_gateway(subnet)?;
    let inside = subnet.first_host() <= gateway && gateway <= subnet.last_host();
    if !inside {
        return Err(NetworkError::Invalid(format!(
            "gateway {gateway} is not a host address of subnet {subnet}"
        )));
    }
    Ok(())
}

fn random_hex(n: usize) -> io::Result<String> {
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A route of the host: a destination and the interface it goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: Subnet,
    pub device: String,
}

/// The host's routes (IPv4 and IPv6, in the calling process's network namespace), without
/// default routes (which every subnet would overlap): what a new network must stay clear of.
pub fn host_routes() -> Vec<Route> {
    let mut routes = parse_ipv4_routes(&fs::read_to_string("/proc/net/route").unwrap_or_default());
    routes.extend(parse_ipv6_routes(
        &fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default(),
    ));
    routes
}

/// `/proc/net/route`: `Iface Destination Gateway Flags … Mask …`, addresses as hexadecimal
/// words.
fn parse_ipv4_routes(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let device = (*fields.first()?).to_owned();
            // The kernel prints the address's bytes (network order) as a native-endian word.
            let destination = u32::from_str_radix(fields.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?;
            let prefix = u32::from_be_bytes(mask.to_ne_bytes()).leading_ones();
            if prefix == 0 {
                return None;
            }
            let addr = std::net::Ipv4Addr::from(destination.to_ne_bytes());
            let destination = format!("{addr}/{prefix}").parse().ok()?;
            Some(Route {
                destination,
                device,
            })
        })
        .collect()
}

/// `/proc/net/ipv6_route`: destination (32 hex digits), its prefix length (hex), source,
/// source prefix, next hop, metric, counters, flags, device. Local and multicast routes
/// (fe80::/64 on every link, ff00::/8) are left out.
fn parse_ipv6_routes(text: &str) -> Vec<Route> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let destination = u128::from_str_radix(fields.first()?, 16).ok()?;
            let prefix = u8::from_str_radix(fields.get(1)?, 16).ok()?;
            let device = (*fields.get(9)?).to_owned();
            let addr = std::net::Ipv6Addr::from(destination);
            if prefix == 0 || prefix == 128 || device == "lo" {
                return None;
            }
            let segments = addr.segments();
            if segments[0] & 0xffc0 == 0xfe80 || segments[0] & 0xff00 == 0xff00 {
                return None;
            }
            let destination = format!("{addr}/{prefix}").parse().ok()?;
            Some(Route {
                destination,
                device,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(label: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("cleat-networks-{}-{label}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            Scratch(dir)
        }

        fn store(&self) -> NetworkStore {
            NetworkStore::at(&self.0)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn request(name: &str) -> CreateRequest {
        CreateRequest {
            name: name.into(),
            ..CreateRequest::default()
        }
    }

    fn subnet(s: &str) -> Subnet {
        s.parse().unwrap()
    }

    fn route(destination: &str, device: &str) -> Route {
        Route {
            destination: subnet(destination),
            device: device.into(),
        }
    }

    #[test]
    fn the_default_network_always_exists_and_cannot_be_removed() {
        let s = Scratch::new("default");
        let store = s.store();
        let list = store.list().unwrap();
        assert_eq!(list.len(), 1);
        let default = &list[0];
        assert_eq!(default.name, "bridge");
        assert_eq!(default.bridge, "cleat0");
        assert_eq!(default.subnets[0].subnet, subnet("10.89.0.0/24"));
        assert_eq!(default.subnets[0].gateway.to_string(), "10.89.0.1");
        // Written once: the same id next time.
        assert_eq!(store.require("bridge").unwrap().id, default.id);
        assert!(matches!(
            store.remove("bridge"),
            Err(NetworkError::Invalid(m)) if m.contains("default")
        ));
        assert!(matches!(
            store.create(&request("bridge"), &[]),
            Err(NetworkError::Exists(_))
        ));
    }

    #[test]
    fn pool_subnets_avoid_other_networks_and_the_hosts_routes() {
        let s = Scratch::new("pool");
        let store = s.store();
        let a = store.create(&request("a"), &[]).unwrap();
        assert_eq!(a.subnets.len(), 1);
        assert_eq!(a.subnets[0].subnet, subnet("10.89.1.0/24"));
        assert!(
            a.bridge.starts_with("cl-") && a.bridge.len() == 15,
            "{}",
            a.bridge
        );
        let routes = [
            route("10.89.2.0/23", "eth0"),
            route("10.89.1.0/24", &a.bridge),
        ];
        let b = store.create(&request("b"), &routes).unwrap();
        assert_eq!(b.subnets[0].subnet, subnet("10.89.4.0/24"));
        assert!(matches!(
            store.create(&request("a"), &[]),
            Err(NetworkError::Exists(_))
        ));
        let names: Vec<String> = store.list().unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["bridge", "a", "b"]);
        store.remove("a").unwrap();
        assert!(matches!(store.remove("a"), Err(NetworkError::NotFound(_))));
        // Its subnet is free again.
        assert_eq!(
            store.create(&request("c"), &[]).unwrap().subnets[0].subnet,
            subnet("10.89.1.0/24")
        );
    }

    #[test]
    fn explicit_subnets_gateways_and_ipv6() {
        let s = Scratch::new("explicit");
        let store = s.store();
        let mut req = request("app");
        req.subnets = vec![(
            subnet("192.168.77.0/24"),
            Some("192.168.77.254".parse().unwrap()),
        )];
        req.ipv6 = true;
        let net = store.create(&req, &[]).unwrap();
        assert_eq!(net.subnets[0].gateway.to_string(), "192.168.77.254");
        assert!(net.ipv6());
        assert_eq!(net.subnets[1].subnet, subnet("fd89:c1ea::/64"));
        assert_eq!(net.subnets[1].gateway.to_string(), "fd89:c1ea::1");

        let mut overlapping = request("other");
        overlapping.subnets = vec![(subnet("192.168.0.0/16"), None)];
        let err = store.create(&overlapping, &[]).unwrap_err();
        assert!(err.to_string().contains("overlaps network app"), "{err}");
        let mut on_host = request("other");
        on_host.subnets = vec![(subnet("172.20.0.0/24"), None)];
        let err = store
            .create(&on_host, &[route("172.16.0.0/12", "eth0")])
            .unwrap_err();
        assert!(
            err.to_string().contains("a route of the host (dev eth0)"),
            "{err}"
        );

        let mut bad_gateway = request("gw");
        bad_gateway.subnets = vec![(subnet("10.99.0.0/24"), Some("10.98.0.1".parse().unwrap()))];
        assert!(store.create(&bad_gateway, &[]).is_err());
        bad_gateway.subnets = vec![(subnet("10.99.0.0/24"), Some("10.99.0.255".parse().unwrap()))];
        assert!(
            store.create(&bad_gateway, &[]).is_err(),
            "the broadcast address"
        );

        let mut two = request("two");
        two.subnets = vec![
            (subnet("10.97.0.0/24"), None),
            (subnet("10.96.0.0/24"), None),
        ];
        assert!(
            store
                .create(&two, &[])
                .unwrap_err()
                .to_string()
                .contains("more than one")
        );
        assert!(store.get("app").unwrap().is_some());
        assert!(
            store.get("two").unwrap().is_none(),
            "nothing written on failure"
        );
    }

    #[test]
    fn names_follow_dockers_rule() {
        let s = Scratch::new("names");
        let store = s.store();
        for bad in ["", "-x", "a b", "a/b", ".x"] {
            assert!(store.create(&request(bad), &[]).is_err(), "{bad:?}");
        }
        store.create(&request("web_1.prod-x"), &[]).unwrap();
    }

    #[test]
    fn host_routes_are_read_from_proc() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                  eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(parse_ipv4_routes(v4), [route("192.168.0.0/24", "eth0")]);
        let v6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000000 00000000 00000001     eth0\n\
                  fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000000 00000000 00000001     eth0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000000 00000000 00200200       lo\n";
        assert_eq!(parse_ipv6_routes(v6), [route("fd00::/64", "eth0")]);
    }
}
