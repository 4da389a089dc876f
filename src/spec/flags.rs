//! `cleat run` / `cleat create` flags (Docker's names and short options) and their
//! translation into the same [`Spec`] a TOML definition produces. Values parse through the
//! same code as TOML values, so `--memory 512m` and `memory = "512m"` cannot disagree.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use super::value::ValueError;
use super::{MountSpec, Name, Source, Spec};

/// The container definition flags shared by `run` and `create`.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFlags {
    /// Name of the container (default: a random one)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Use this directory as the root file system instead of an image
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE, or KEY to pass on cleat's own value)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file (read at every start)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User (name or UID, optionally :group or :GID)
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Override the image's ENTRYPOINT ("" removes it)
    #[arg(long, value_name = "COMMAND")]
    pub entrypoint: Option<String>,
    /// Host name inside the container (default: the container name)
    #[arg(short = 'h', long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Restart policy: no, on-failure[:N], always, unless-stopped, or any systemd Restart= value
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Memory limit (MemoryMax=), e.g. 512m
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// CPU quota in CPUs (CPUQuota=), e.g. 1.5
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<String>,
    /// Maximum number of tasks (TasksMax=); -1 for unlimited
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Signal that stops the container (default SIGTERM)
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds (or a time span) between the stop signal and SIGKILL (default 10)
    #[arg(long = "stop-timeout", value_name = "SECONDS")]
    pub stop_timeout: Option<String>,
    /// Network: bridge (the default), a network's name, host, none (loopback only), or
    /// container:NAME (another running container's)
    #[arg(long = "network", alias = "net", value_name = "NETWORK")]
    pub network: Option<String>,
    /// Another name the container is known by on its network (user-defined networks)
    #[arg(long = "network-alias", alias = "net-alias", value_name = "NAME")]
    pub network_alias: Vec<String>,
    /// The container's IPv4 address on its network (user-defined networks)
    #[arg(long = "ip", value_name = "IPV4")]
    pub ip: Option<String>,
    /// The container's IPv6 address on its network (user-defined networks)
    #[arg(long = "ip6", value_name = "IPV6")]
    pub ip6: Option<String>,
    /// Publish a container port: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp], ranges allowed
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes, on random host ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Add an /etc/hosts entry
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// Name server, instead of the host's
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// Search domain, instead of the host's
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// Resolver option, instead of the host's
    #[arg(long = "dns-option", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// Domain name inside the container
    #[arg(long, value_name = "NAME")]
    pub domainname: Option<String>,
    /// Mount the container's root file system read-only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Bind mount or volume: HOST_PATH:TARGET[:OPTS], NAME:TARGET[:OPTS] or TARGET
    #[arg(short = 'v', long = "volume", value_name = "SPEC")]
    pub volume: Vec<String>,
    /// Mount: type=bind|volume|tmpfs,source=…,target=…[,readonly]
    #[arg(long = "mount", value_name = "SPEC")]
    pub mount: Vec<String>,
    /// tmpfs mount: TARGET[:size=…,mode=…]
    #[arg(long = "tmpfs", value_name = "TARGET[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Mount the volumes of another container
    #[arg(long = "volumes-from", value_name = "NAME")]
    pub volumes_from: Vec<String>,
    /// Add a capability (NET_ADMIN, ALL, ...)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (NET_RAW, ALL, ...)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// seccomp=unconfined|default|PROFILE.json, or no-new-privileges[=true|false]
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Resource limit: NAME=SOFT[:HARD] (nofile=1024:2048); never above the current hard limit
    #[arg(long = "ulimit", value_name = "NAME=LIMIT")]
    pub ulimit: Vec<String>,
    /// Add a supplementary group (name in the container, or number)
    #[arg(long = "group-add", value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Run a tiny init as PID 1 (forwards signals, reaps zombies)
    #[arg(long)]
    pub init: bool,
    /// Run the container on a pseudo-terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Keep standard input open: what you type reaches the container
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Pull the image: missing (default), always, or never
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<String>,
    /// Readiness: exec (when the payload has started) or container (the payload sends READY=1)
    #[arg(long, value_name = "MODE")]
    pub notify: Option<String>,
    /// IMAGE [COMMAND [ARG...]], or with --rootfs just [COMMAND [ARG...]]
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE|COMMAND"
    )]
    pub args: Vec<String>,
}

/// A flag with a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct FlagError {
    pub flag: &'static str,
    pub message: String,
}

/// An address flag (`--ip`, `--ip6`) of one family.
fn parse_address<T: std::str::FromStr>(
    flag: &'static str,
    value: &Option<String>,
) -> Result<Option<T>, FlagError> {
    value
        .as_deref()
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| {
                let family = if flag == "--ip" { "IPv4" } else { "IPv6" };
                ValueError(format!("invalid {family} address {v:?}"))
            })
        })
        .transpose()
        .map_err(flag_err(flag))
}

fn flag_err(flag: &'static str) -> impl Fn(ValueError) -> FlagError {
    move |e| FlagError { flag, message: e.0 }
}

fn parse<T: std::str::FromStr<Err = ValueError>>(
    flag: &'static str,
    value: &Option<String>,
) -> Result<Option<T>, FlagError> {
    value
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(flag_err(flag))
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_owned())
    }
}

/// One `-e`/`--env` value: `KEY=VALUE`, or a bare `KEY` that takes `lookup_env`'s value (and
/// is skipped, `None`, when that has none), as Docker does. Shared by `run`/`create` and `exec`.
pub fn parse_env_flag(
    kv: &str,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(String, String)>, FlagError> {
    let (k, v) = match kv.split_once('=') {
        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
        None => (kv.to_owned(), lookup_env(kv)),
    };
    if k.is_empty() || k.contains('\0') {
        return Err(FlagError {
            flag: "--env",
            message: format!("invalid variable {kv:?}"),
        });
    }
    Ok(v.map(|v| (k, v)))
}

impl ContainerFlags {
    /// The spec these flags describe. `lookup_env` supplies values for a bare `-e KEY`.
    pub fn to_spec(&self, lookup_env: &dyn Fn(&str) -> Option<String>) -> Result<Spec, FlagError> {
        let name: Name = match &self.name {
            Some(n) => n.parse().map_err(flag_err("--name"))?,
            None => random_name(),
        };
        let (source, command) = match &self.rootfs {
            Some(dir) => (Source::Rootfs(absolute(dir)), self.args.clone()),
            None => match self.args.split_first() {
                Some((image, rest)) => (Source::Image(image.clone()), rest.to_vec()),
                None => {
                    return Err(FlagError {
                        flag: "IMAGE",
                        message: "an image (or --rootfs DIR) is required".into(),
                    });
                }
            },
        };
        let mut spec = Spec::new(name, source);
        if !command.is_empty() {
            spec.command = Some(command);
        }
        spec.entrypoint = self.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![]
            } else {
                vec![e.clone()]
            }
        });
        for kv in &self.env {
            if let Some((k, v)) = parse_env_flag(kv, lookup_env)? {
                spec.env.insert(k, v);
            }
        }
        spec.env_files = self.env_file.iter().map(|p| absolute(p)).collect();
        if let Some(w) = &self.workdir {
            if !w.starts_with('/') {
                return Err(FlagError {
                    flag: "--workdir",
                    message: format!("{w:?} is not an absolute path"),
                });
            }
            spec.working_dir = Some(w.clone());
        }
        spec.user = self.user.clone().filter(|u| !u.is_empty());
        if let Some(h) = &self.hostname {
            super::value::check_hostname(h).map_err(flag_err("--hostname"))?;
            spec.hostname = Some(h.clone());
        }
        spec.restart = parse("--restart", &self.restart)?;
        spec.memory = parse("--memory", &self.memory)?;
        spec.cpus = parse("--cpus", &self.cpus)?;
        spec.pids_limit = match self.pids_limit.as_deref() {
            // Docker: 0 or -1 mean unlimited.
            Some("0") => Some(super::Limit::Infinity),
            _ => parse("--pids-limit", &self.pids_limit)?,
        };
        spec.stop_signal = parse("--stop-signal", &self.stop_signal)?;
        spec.stop_timeout = parse("--stop-timeout", &self.stop_timeout)?;
        spec.notify = parse("--notify", &self.notify)?;
        spec.pull = parse("--pull", &self.pull)?;
        spec.network = parse("--network", &self.network)?;
        for alias in &self.network_alias {
            super::value::check_alias(alias).map_err(flag_err("--network-alias"))?;
        }
        spec.network_aliases = self.network_alias.clone();
        spec.ip = parse_address("--ip", &self.ip)?;
        spec.ip6 = parse_address("--ip6", &self.ip6)?;
        spec.ports = self
            .publish
            .iter()
            .map(|p| p.parse())
            .collect::<Result<_, _>>()
            .map_err(flag_err("--publish"))?;
        crate::network::ports::check_conflicts(&spec.ports).map_err(flag_err("--publish"))?;
        if self.publish_all {
            spec.publish_all = Some(true);
        }
        for entry in &self.add_host {
            super::parse_add_host(entry).map_err(flag_err("--add-host"))?;
        }
        spec.add_hosts = self.add_host.clone();
        spec.dns = self
            .dns
            .iter()
            .map(|d| {
                d.parse()
                    .map_err(|_| ValueError(format!("invalid name server {d:?} (an IP address)")))
            })
            .collect::<Result<_, _>>()
            .map_err(flag_err("--dns"))?;
        spec.dns_search = self.dns_search.clone();
        spec.dns_options = self.dns_option.clone();
        if let Some(d) = &self.domainname {
            super::value::check_hostname(d).map_err(flag_err("--domainname"))?;
            spec.domainname = Some(d.clone());
        }
        spec.read_only = self.read_only.then_some(true);
        spec.init = self.init.then_some(true);
        spec.tty = self.tty.then_some(true);
        spec.interactive = self.interactive.then_some(true);
        spec.volumes = self
            .volume
            .iter()
            .map(|v| MountSpec::parse_volume(v))
            .collect::<Result<_, _>>()
            .map_err(flag_err("--volume"))?;
        spec.mounts = self
            .mount
            .iter()
            .map(|v| MountSpec::parse_mount(v))
            .collect::<Result<_, _>>()
            .map_err(flag_err("--mount"))?;
        spec.tmpfs = self
            .tmpfs
            .iter()
            .map(|v| MountSpec::parse_tmpfs(v))
            .collect::<Result<_, _>>()
            .map_err(flag_err("--tmpfs"))?;
        spec.volumes_from = self
            .volumes_from
            .iter()
            .map(|v| v.parse())
            .collect::<Result<_, _>>()
            .map_err(flag_err("--volumes-from"))?;
        let caps = |v: &[String], flag: &'static str| -> Result<Vec<String>, FlagError> {
            v.iter()
                .map(|c| crate::runtime::caps::canonical(c))
                .collect::<Result<_, _>>()
                .map_err(flag_err(flag))
        };
        spec.cap_add = caps(&self.cap_add, "--cap-add")?;
        spec.cap_drop = caps(&self.cap_drop, "--cap-drop")?;
        for opt in &self.security_opt {
            apply_security_opt(&mut spec, opt)?;
        }
        for u in &self.ulimit {
            let (name, value) = u.split_once('=').ok_or_else(|| FlagError {
                flag: "--ulimit",
                message: format!(
                    "invalid ulimit {u:?}: expected NAME=SOFT[:HARD], e.g. nofile=1024:2048"
                ),
            })?;
            super::Ulimit::resource(name).map_err(flag_err("--ulimit"))?;
            spec.ulimits.insert(
                name.trim().to_ascii_lowercase(),
                value.parse().map_err(flag_err("--ulimit"))?,
            );
        }
        for g in &self.group_add {
            if g.is_empty() || g.contains(':') {
                return Err(FlagError {
                    flag: "--group-add",
                    message: format!("invalid group {g:?}"),
                });
            }
        }
        spec.group_add = self.group_add.clone();
        Ok(spec)
    }
}

/// `--security-opt`: Docker's `seccomp=…` and `no-new-privileges[=true|false]` (also
/// `no-new-privileges:true`); options for security modules cleat does not use are refused,
/// except those that turn them off.
fn apply_security_opt(spec: &mut Spec, opt: &str) -> Result<(), FlagError> {
    let bad = |message: String| FlagError {
        flag: "--security-opt",
        message,
    };
    let (key, value) = match opt.split_once(['=', ':']) {
        Some((k, v)) => (k, Some(v)),
        None => (opt, None),
    };
    match (key, value) {
        ("seccomp", Some(v)) => {
            spec.seccomp = Some(v.parse().map_err(|e: ValueError| bad(e.0))?);
        }
        ("no-new-privileges", None | Some("true")) => spec.no_new_privileges = Some(true),
        ("no-new-privileges", Some("false")) => spec.no_new_privileges = Some(false),
        // Asking for no confinement by a security module cleat does not use: what the
        // container gets anyway (scripts written for Docker pass these).
        ("label", Some("disable")) | ("apparmor", Some("unconfined")) => {}
        ("label" | "apparmor", _) => {
            return Err(bad(format!(
                "{opt:?}: cleat does not use SELinux labels or AppArmor profiles \
                 (only label=disable and apparmor=unconfined are accepted, and change nothing)"
            )));
        }
        _ => {
            return Err(bad(format!(
                "unknown security option {opt:?} (valid: seccomp=unconfined|default|PROFILE, no-new-privileges)"
            )));
        }
    }
    Ok(())
}

const ADJECTIVES: &[&str] = &[
    "agile", "bold", "brave", "calm", "clever", "crisp", "eager", "fair", "gentle", "happy",
    "keen", "lucid", "mellow", "nimble", "proud", "quiet", "rapid", "serene", "sharp", "steady",
    "swift", "tidy", "vivid", "witty", "zesty",
];
const NOUNS: &[&str] = &[
    "albatross",
    "badger",
    "beaver",
    "condor",
    "dolphin",
    "falcon",
    "gecko",
    "heron",
    "ibis",
    "jaguar",
    "kestrel",
    "lemur",
    "marmot",
    "narwhal",
    "otter",
    "panda",
    "quokka",
    "raven",
    "salmon",
    "tapir",
    "urchin",
    "vole",
    "walrus",
    "yak",
    "zebra",
];

/// A Docker-style random name (`adjective_animal_NNNN`).
pub fn random_name() -> Name {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(crate::time::now_usec().into());
    let r = h.finish();
    let adj = ADJECTIVES[(r % ADJECTIVES.len() as u64) as usize];
    let noun = NOUNS[((r >> 16) % NOUNS.len() as u64) as usize];
    let n = (r >> 32) % 10_000;
    format!("{adj}_{noun}_{n:04}")
        .parse()
        .unwrap_or_else(|_| unreachable_name())
}

fn unreachable_name() -> Name {
    // The word lists only hold valid name characters; this is never reached.
    "container"
        .parse()
        .unwrap_or_else(|_| std::process::abort())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Limit, RestartPolicy};
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct Cli {
        #[command(flatten)]
        flags: ContainerFlags,
    }

    fn spec(args: &[&str]) -> Result<Spec, FlagError> {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied())).unwrap();
        cli.flags
            .to_spec(&|k| (k == "FROM_HOST").then(|| "host".to_owned()))
    }

    #[test]
    fn security_options() {
        let s = spec(&[
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "label=disable",
            "--security-opt",
            "apparmor=unconfined",
            "alpine",
        ])
        .unwrap();
        assert_eq!(s.seccomp, Some(crate::spec::Seccomp::Unconfined));
        assert_eq!(s.no_new_privileges, Some(true));
        let s = spec(&["--security-opt", "no-new-privileges:false", "alpine"]).unwrap();
        assert_eq!(s.no_new_privileges, Some(false));
        for bad in [
            "label=type:svirt_t",
            "apparmor=docker-default",
            "systempaths=x",
            "seccomp",
        ] {
            let e = spec(&["--security-opt", bad, "alpine"]).unwrap_err();
            assert_eq!(e.flag, "--security-opt", "{bad}");
        }
    }

    #[test]
    fn rootfs_and_command() {
        let s = spec(&["--name", "web", "--rootfs", "/srv/r", "sh", "-c", "echo hi"]).unwrap();
        assert_eq!(s.name.as_str(), "web");
        assert_eq!(s.source, Source::Rootfs("/srv/r".into()));
        assert_eq!(
            s.command.as_deref(),
            Some(&["sh".to_owned(), "-c".into(), "echo hi".into()][..])
        );
    }

    #[test]
    fn image_then_command_and_flags_after_image_belong_to_the_command() {
        let s = spec(&["-e", "A=1", "nginx:1.27", "nginx", "-g", "daemon off;"]).unwrap();
        assert_eq!(s.source, Source::Image("nginx:1.27".into()));
        assert_eq!(s.command.unwrap(), ["nginx", "-g", "daemon off;"]);
        assert_eq!(s.env["A"], "1");
        let s = spec(&["alpine"]).unwrap();
        assert_eq!(s.command, None, "no command means the image's CMD");
        assert!(s.name.as_str().contains('_'), "a random name");
    }

    #[test]
    fn every_flag_maps_onto_the_spec() {
        let s = spec(&[
            "--rootfs",
            "/r",
            "-e",
            "FROM_HOST",
            "-e",
            "UNSET_HERE",
            "-w",
            "/app",
            "-u",
            "app:staff",
            "--entrypoint",
            "",
            "-h",
            "box",
            "--restart",
            "on-failure:3",
            "-m",
            "512m",
            "--cpus",
            "1.5",
            "--pids-limit",
            "-1",
            "--stop-signal",
            "QUIT",
            "--stop-timeout",
            "3",
            "--notify",
            "container",
            "--env-file",
            "/etc/x.env",
            "true",
        ])
        .unwrap();
        assert_eq!(s.env.get("FROM_HOST").map(String::as_str), Some("host"));
        assert!(!s.env.contains_key("UNSET_HERE"));
        assert_eq!(s.working_dir.as_deref(), Some("/app"));
        assert_eq!(s.user.as_deref(), Some("app:staff"));
        assert_eq!(s.entrypoint, Some(vec![]));
        assert_eq!(s.hostname.as_deref(), Some("box"));
        assert_eq!(
            s.restart,
            Some("on-failure:3".parse::<RestartPolicy>().unwrap())
        );
        assert_eq!(s.memory.unwrap().to_string(), "512M");
        assert_eq!(s.cpus.unwrap().milli(), 1500);
        assert_eq!(s.pids_limit, Some(Limit::Infinity));
        assert_eq!(s.stop_signal.unwrap().to_string(), "SIGQUIT");
        assert_eq!(s.stop_timeout.unwrap().to_string(), "3s");
        assert_eq!(s.notify, Some(crate::spec::Notify::Container));
        assert_eq!(s.env_files, [PathBuf::from("/etc/x.env")]);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = spec(&["--rootfs", "/r", "--memory", "lots", "true"]).unwrap_err();
        assert_eq!(e.flag, "--memory");
        assert!(e.to_string().starts_with("--memory: invalid size"));
        assert_eq!(
            spec(&["--rootfs", "/r", "--name", "a/b"]).unwrap_err().flag,
            "--name"
        );
        assert_eq!(
            spec(&["--rootfs", "/r", "-w", "rel"]).unwrap_err().flag,
            "--workdir"
        );
        assert_eq!(spec(&[]).unwrap_err().flag, "IMAGE");
        assert_eq!(
            spec(&["--rootfs", "/r", "--restart", "sometimes"])
                .unwrap_err()
                .flag,
            "--restart"
        );
    }
}
