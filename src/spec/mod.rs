//! What a container is: one [`Spec`] value, whether it was declared in TOML (a file plus
//! drop-ins) or typed as `cleat run` flags. Everything downstream (the unit translator, the
//! runtime) reads only this type, so the two ways in cannot drift apart.

pub mod flags;
pub mod load;
pub mod mounts;
pub mod value;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use mounts::{MountKind, MountSpec};
pub use value::{
    Bytes, Count, Cpus, Limit, Name, NetworkMode, Notify, PullPolicy, Restart, RestartPolicy,
    Seccomp, Signal, Timeout, Ulimit,
};

/// A container definition, validated and merged. Defaults are *not* filled in here (an unset
/// value stays `None`) so that later stages can apply the image's defaults with Docker's
/// precedence and so that `cleat config show` can tell set from unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Spec {
    /// The container's name: the file name of its definition, or `--name`.
    pub name: Name,
    /// Where the root file system comes from.
    pub source: Source,
    /// When the image is pulled (`missing` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullPolicy>,
    /// Replaces the image's ENTRYPOINT. `Some(vec![])` means "no entrypoint at all".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD (the arguments after the entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Environment variables; they override the image's and those from `env_files`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Files of `KEY=value` lines, read at every start, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<PathBuf>,
    /// Working directory inside the container (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `user[:group]`, by name (looked up in the container's /etc/passwd) or number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Host name inside the container's UTS namespace; defaults to the container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Domain name inside the container's UTS namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// The network: unset, the default bridge network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkMode>,
    /// Names other containers on its (user-defined) network know it by, besides its own
    /// (`--network-alias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_aliases: Vec<String>,
    /// Its IPv4 address on its (user-defined) network (`--ip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Its IPv6 address on its (user-defined) network (`--ip6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// Published ports (`-p`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::network::ports::PortSpec>,
    /// Publish every port the image exposes, on random host ports (`-P`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_all: Option<bool>,
    /// Extra /etc/hosts entries (`--add-host NAME:IP`), as `NAME:IP`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_hosts: Vec<String>,
    /// Name servers replacing the host's (`--dns`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<std::net::IpAddr>,
    /// Search domains replacing the host's (`--dns-search`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// Resolver options replacing the host's (`--dns-option`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// Mount the root file system read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// `-v` mounts (bind mounts and volumes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<MountSpec>,
    /// `--mount` mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountSpec>,
    /// `--tmpfs` mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<MountSpec>,
    /// Containers whose volumes this one mounts too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<mounts::VolumesFrom>,
    /// Capabilities added to Docker's default set (canonical names, or `ALL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Capabilities removed from Docker's default set (canonical names, or `ALL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// The system call filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    /// Set `no_new_privs`: setuid binaries and file capabilities gain nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_new_privileges: Option<bool>,
    /// `setrlimit` limits, by Docker's names (`nofile`, `nproc`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Supplementary groups added to the user's (names from the container's /etc/group, or
    /// numbers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// Run a tiny init as PID 1 that forwards signals and reaps zombies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// Run the payload on a pseudo-terminal (which cleat's init holds, for `cleat attach`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// With `tty`: what attached clients type reaches the terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    /// When the unit counts as started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// Signal sent to the container's PID 1 on stop (systemd's `KillSignal=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<Signal>,
    /// Time between the stop signal and SIGKILL (systemd's `TimeoutStopSec=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<Timeout>,
    /// Time allowed for the start (systemd's `TimeoutStartSec=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<Timeout>,
    /// systemd's `Restart=` (plus Docker's spellings, normalised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// systemd's `RestartSec=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_delay: Option<Timeout>,
    /// `MemoryMax=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Limit<Bytes>>,
    /// `CPUQuota=`, in CPUs (1.5 = 150%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    /// `TasksMax=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<Limit<Count>>,
    /// Other containers this one needs: each becomes `Requires=` + `After=` on its unit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Name>,
    /// Free text for the unit's `Description=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Raw systemd dependencies on arbitrary units.
    #[serde(default, skip_serializing_if = "UnitDeps::is_empty")]
    pub unit: UnitDeps,
    /// What a `systemctl enable`-like autostart hooks into (declared containers only).
    #[serde(default, skip_serializing_if = "Install::is_empty")]
    pub install: Install,
}

/// The root file system: an image reference (resolved by the image stage) or a directory used
/// as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Image(String),
    Rootfs(PathBuf),
}

/// systemd unit dependencies, by unit name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UnitDeps {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wants: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_of: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
}

impl UnitDeps {
    pub fn is_empty(&self) -> bool {
        self == &UnitDeps::default()
    }
}

/// The `[install]` table: targets whose `.wants/` (or `.requires/`) the generator links the
/// container's unit into.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Install {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wanted_by: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_by: Vec<String>,
}

impl Install {
    pub fn is_empty(&self) -> bool {
        self == &Install::default()
    }
}

/// `NAME:IP` of `--add-host` (IPv6 with or without brackets): the name and the address.
pub fn parse_add_host(s: &str) -> Result<(String, std::net::IpAddr), value::ValueError> {
    let bad = || {
        value::ValueError(format!(
            "invalid host entry {s:?} (expected NAME:IP, such as db:10.0.0.5)"
        ))
    };
    let (name, addr) = s.split_once(':').ok_or_else(bad)?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    value::check_hostname(name).map_err(|e| value::ValueError(format!("{s:?}: {}", e.0)))?;
    Ok((name.to_owned(), addr.parse().map_err(|_| bad())?))
}

impl Spec {
    /// The network the container is on: the one it names, else the default bridge network.
    pub fn network_mode(&self) -> NetworkMode {
        self.network
            .clone()
            .unwrap_or_else(NetworkMode::default_network)
    }

    /// A spec with only the mandatory parts; everything else unset.
    pub fn new(name: Name, source: Source) -> Spec {
        Spec {
            name,
            source,
            pull: None,
            entrypoint: None,
            command: None,
            env: BTreeMap::new(),
            env_files: Vec::new(),
            working_dir: None,
            user: None,
            hostname: None,
            domainname: None,
            network: None,
            network_aliases: Vec::new(),
            ip: None,
            ip6: None,
            ports: Vec::new(),
            publish_all: None,
            add_hosts: Vec::new(),
            dns: Vec::new(),
            dns_search: Vec::new(),
            dns_options: Vec::new(),
            read_only: None,
            volumes: Vec::new(),
            mounts: Vec::new(),
            tmpfs: Vec::new(),
            volumes_from: Vec::new(),
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            seccomp: None,
            no_new_privileges: None,
            ulimits: BTreeMap::new(),
            group_add: Vec::new(),
            init: None,
            tty: None,
            interactive: None,
            notify: None,
            stop_signal: None,
            stop_timeout: None,
            start_timeout: None,
            restart: None,
            restart_delay: None,
            memory: None,
            cpus: None,
            pids_limit: None,
            depends_on: Vec::new(),
            description: None,
            unit: UnitDeps::default(),
            install: Install::default(),
        }
    }
}
