//! What `cleat run`/`create` check before recording a container and `internal start` before
//! launching it, with the same code, so that whatever a start would refuse (a user missing
//! from the image, an unknown group, a seccomp profile that does not compile, a bad mount) is
//! refused before anything exists.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

use cleat::image::ImageConfig;
use cleat::image::pull::LocalImage;
use cleat::rootfs::layers::read_in_layers;
use cleat::rootfs::resolve;
use cleat::runtime::launch;
use cleat::runtime::process::{self, ProcessPlan};
use cleat::runtime::user::UserDb;
use cleat::spec::{Source, Spec};

use super::diag;

/// What a container is made of, read without creating anything.
pub(super) struct Content {
    /// The read-only layers, top first (overlayfs's order): an image's, or the rootfs
    /// directory.
    pub lower: Vec<PathBuf>,
    /// /etc/passwd and /etc/group as the container will see them.
    pub users: UserDb,
    /// The image's defaults (none for a rootfs directory).
    pub image: ImageConfig,
}

/// The content of a container from its image (`local`, present in the store) or its rootfs
/// directory.
pub(super) fn content(spec: &Spec, local: Option<LocalImage>) -> anyhow::Result<Content> {
    match (&spec.source, local) {
        (Source::Image(_), Some(image)) => {
            // overlayfs wants the top layer first; manifests list the base first.
            let lower: Vec<PathBuf> = image.layer_dirs.iter().rev().cloned().collect();
            let users = layered_user_db(&lower)?;
            Ok(Content {
                lower,
                users,
                image: image.config.defaults,
            })
        }
        (Source::Image(text), None) => Err(anyhow!("image {text} is not in the store")),
        (Source::Rootfs(dir), _) => {
            let meta =
                std::fs::metadata(dir).with_context(|| format!("rootfs {}", dir.display()))?;
            if !meta.is_dir() {
                return Err(anyhow!("rootfs {} is not a directory", dir.display()));
            }
            Ok(Content {
                lower: vec![dir.clone()],
                users: user_db(dir)?,
                image: ImageConfig::default(),
            })
        }
    }
}

/// Everything a start would check that does not depend on the host at that moment: the user
/// and groups in the image, the environment files, capabilities, the seccomp profile, limits
/// and every mount. Creates nothing. Without the image (`local` is `None` for an image that is
/// not in the store yet), only what does not need it.
pub(super) fn check(
    spec: &Spec,
    local: Option<LocalImage>,
    registry: &cleat::containers::Registry,
) -> anyhow::Result<()> {
    let image = match (&spec.source, local) {
        (Source::Image(_), None) => {
            security(spec)?;
            ImageConfig::default()
        }
        (_, local) => {
            let content = content(spec, local)?;
            plan(spec, &content)?;
            content.image
        }
    };
    cleat::rootfs::volumes::check_mounts(spec, &image, registry)?;
    check_network(spec)?;
    Ok(())
}

/// What the network settings need of the network: published ports a bridge network; a static
/// address and aliases a network made with `cleat network create` (as Docker, whose default
/// network has neither).
pub(super) fn check_network(spec: &Spec) -> anyhow::Result<()> {
    use cleat::spec::NetworkMode;
    let mode = spec.network_mode();
    let bridge = matches!(mode, NetworkMode::Network(_));
    if !bridge && (!spec.ports.is_empty() || spec.publish_all == Some(true)) {
        return Err(anyhow!(
            "published ports need a bridge network; this container's network is {mode}"
        ));
    }
    if let NetworkMode::Network(name) = &mode {
        // Docker's `network NAME not found`, before the container exists.
        cleat::network::store::NetworkStore::system().require(name)?;
    }
    if let NetworkMode::Container(other) = &mode {
        // Its names and resolver are the other container's (as Docker, which refuses these).
        let own = [
            (!spec.dns.is_empty(), "--dns"),
            (!spec.dns_search.is_empty(), "--dns-search"),
            (!spec.dns_options.is_empty(), "--dns-option"),
            (!spec.add_hosts.is_empty(), "--add-host"),
        ];
        if let Some((_, what)) = own.iter().find(|(set, _)| *set) {
            return Err(anyhow!(
                "{what} cannot be used with network container:{other}: the container uses {other}'s /etc/hosts and resolver"
            ));
        }
    }
    let user_defined = matches!(&mode, NetworkMode::Network(n)
        if n != cleat::network::store::DEFAULT_NETWORK);
    let wants = [
        (spec.ip.is_some(), "a static IPv4 address (--ip, ip)"),
        (spec.ip6.is_some(), "a static IPv6 address (--ip6, ip6)"),
        (
            !spec.network_aliases.is_empty(),
            "network aliases (--network-alias, network-aliases)",
        ),
    ];
    if let Some((_, what)) = wants.iter().find(|(set, _)| *set).filter(|_| !user_defined) {
        return Err(anyhow!(
            "{what} needs a network made with `cleat network create`; this container's network is {mode}"
        ));
    }
    Ok(())
}

/// The process to run (user, groups, environment, command, working directory) and what it may
/// do.
pub(super) fn plan(
    spec: &Spec,
    content: &Content,
) -> anyhow::Result<(ProcessPlan, launch::Security)> {
    let env_files = read_env_files(spec)?;
    let process = process::plan(spec, &content.image, &content.users, &env_files)?;
    Ok((process, security(spec)?))
}

/// What the payload may do: Docker's capability rules, the seccomp filter compiled for the
/// resulting capabilities, no_new_privs, and the resource limits (clamped, with a warning, to
/// what this process may set).
fn security(spec: &Spec) -> anyhow::Result<launch::Security> {
    let capabilities = cleat::runtime::caps::resolve(&spec.cap_add, &spec.cap_drop)?;
    let seccomp = seccomp_filter(spec, &capabilities)?;
    let (limits, warnings) = cleat::runtime::limits::plan(spec, rustix::process::getrlimit);
    for w in warnings {
        diag::warning(w);
    }
    Ok(launch::Security {
        capabilities,
        no_new_privileges: spec.no_new_privileges.unwrap_or(false),
        seccomp,
        limits,
    })
}

/// The system call filter, compiled now (for the container's final capabilities: some calls
/// are allowed only with a capability), so that a bad profile fails the start before anything
/// is created.
fn seccomp_filter(
    spec: &Spec,
    capabilities: &caps::CapsHashSet,
) -> anyhow::Result<Option<seccompiler::BpfProgram>> {
    let setting = spec
        .seccomp
        .clone()
        .unwrap_or(cleat::spec::Seccomp::Default);
    Ok(cleat::runtime::seccomp::compile(&setting, capabilities)?)
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
    UserDb::read_with(read).map_err(|(path, e)| {
        anyhow::Error::new(e).context(format!("reading {path} in the container"))
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
