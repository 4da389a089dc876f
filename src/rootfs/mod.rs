//! The container's file system: a [`RootfsPlan`] (a plain list of mount steps, built without
//! side effects, so it can be read and tested without root) and [`apply`](mount::apply), which
//! carries it out inside the container's private mount namespace and pivots into it.
//!
//! Every path inside the root is resolved with `openat2(RESOLVE_IN_ROOT)`, so a symlink in the
//! root file system (hostile image content) can never send a mount outside it.

pub mod copy;
pub mod layers;
pub mod mount;
pub mod resolve;
pub mod volumes;

use std::path::PathBuf;

/// How the root file system is put together, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsPlan {
    /// Host path of the directory that becomes `/` (with an overlay: its mount point).
    pub root: PathBuf,
    /// An image's layers, stacked on `root` (in the container's mount namespace only).
    pub overlay: Option<Overlay>,
    /// Mounts made inside the root before pivoting, in order.
    pub mounts: Vec<Mount>,
}

/// One mount inside the root. `target` is a path inside the container (absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A fresh `proc` for the container's PID namespace.
    Proc { target: String },
    /// `sysfs`, read-only (Docker's default).
    Sysfs { target: String },
    /// A minimal `/dev`: a tmpfs holding only the devices a container needs, a private devpts,
    /// shm, mqueue and the fd/stdio links.
    Dev { target: String },
    /// A tmpfs.
    Tmpfs {
        target: String,
        options: String,
        flags: MountFlags,
    },
    /// A file or directory of the host bound into the container, with everything mounted
    /// below it; `readonly` applies to all of it (recursively).
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
        /// `rprivate` unless said otherwise (`private`, `rslave`, `slave`).
        propagation: Option<String>,
    },
    /// A volume's directory bound into the container. When `populate` is set and the volume
    /// has never been used, it is first filled with what the image has at `target` (Docker's
    /// behaviour for a new volume), owners, modes and all.
    Volume {
        source: PathBuf,
        target: String,
        readonly: bool,
        populate: bool,
    },
    /// Hides a path: a file behind /dev/null, a directory behind an empty read-only tmpfs
    /// (Docker's masked paths). Missing paths are skipped.
    Mask { target: String },
    /// Makes a path read-only where it is (Docker's read-only paths). Missing paths are
    /// skipped.
    ReadOnly { target: String },
    /// Remounts the root file system read-only (`--read-only`); comes after the mounts that
    /// need to create their mount points in it.
    ReadOnlyRoot,
    /// The cgroup2 hierarchy of the container's cgroup namespace, read-only (skipped where the
    /// kernel refuses it).
    Cgroup { target: String },
    /// Creates a directory in the root if it is missing (before the root goes read-only).
    EnsureDir { target: String },
    /// A small file of cleat's (the container's /etc/hosts, /etc/hostname, /etc/resolv.conf)
    /// bound over the path, read-only or not.
    File {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
}

impl Mount {
    /// The path inside the container this step mounts on, if it has one.
    pub fn target(&self) -> Option<&str> {
        match self {
            Mount::Proc { target }
            | Mount::Sysfs { target }
            | Mount::Dev { target }
            | Mount::Tmpfs { target, .. }
            | Mount::Bind { target, .. }
            | Mount::Volume { target, .. }
            | Mount::Mask { target }
            | Mount::ReadOnly { target }
            | Mount::Cgroup { target }
            | Mount::EnsureDir { target }
            | Mount::File { target, .. } => Some(target),
            Mount::ReadOnlyRoot => None,
        }
    }
}

/// An overlay of read-only layers under a writable one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// The layers' directories, top first (overlayfs's `lowerdir` order).
    pub lower: Vec<PathBuf>,
    /// The container's own writable layer, and overlayfs's work directory beside it.
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// The subset of mount flags a plan uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MountFlags {
    pub readonly: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl MountFlags {
    pub const SECURE: MountFlags = MountFlags {
        readonly: false,
        nosuid: true,
        nodev: true,
        noexec: true,
    };
}

/// Where the systemd notification socket appears inside a container that sends its own
/// readiness (`notify = "container"`); the same path systemd-nspawn uses.
pub const CONTAINER_NOTIFY_SOCKET: &str = "/run/host/notify";

/// Options for [`RootfsPlan::new`].
#[derive(Debug, Clone, Default)]
pub struct RootfsOptions {
    /// Host path of a systemd notification socket to bind at [`CONTAINER_NOTIFY_SOCKET`].
    pub notify_socket: Option<PathBuf>,
    /// Mount the root read-only (`--read-only`).
    pub read_only: bool,
    /// Host files bound over paths in the container: its /etc/hostname, /etc/hosts and
    /// /etc/resolv.conf.
    pub etc_files: Vec<(PathBuf, String)>,
    /// The spec's bind mounts, volumes and tmpfs, in order.
    pub extra: Vec<Mount>,
    /// The working directory, created before a read-only root is made read-only.
    pub workdir: Option<String>,
}

/// Docker's masked paths: what a container must not read of the host's kernel state.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths: kernel knobs a container may read but not change.
pub const READ_ONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

impl RootfsPlan {
    /// The standard layout: the root directory with `/proc`, `/dev` and `/sys` mounted.
    pub fn new(root: PathBuf, overlay: Option<Overlay>, options: &RootfsOptions) -> RootfsPlan {
        let mut mounts = vec![
            Mount::Proc {
                target: "/proc".into(),
            },
            Mount::Dev {
                target: "/dev".into(),
            },
            Mount::Sysfs {
                target: "/sys".into(),
            },
        ];
        mounts.push(Mount::Cgroup {
            target: "/sys/fs/cgroup".into(),
        });
        mounts.extend(MASKED_PATHS.iter().map(|p| Mount::Mask {
            target: (*p).into(),
        }));
        mounts.extend(READ_ONLY_PATHS.iter().map(|p| Mount::ReadOnly {
            target: (*p).into(),
        }));
        // The container's own mounts come before cleat's files, so that a `--tmpfs /run` or a
        // volume at /etc does not hide them; a file the user mounts himself (`-v
        // ./hosts:/etc/hosts`) replaces cleat's.
        mounts.extend(options.extra.iter().cloned());
        if let Some(socket) = &options.notify_socket {
            mounts.push(Mount::Tmpfs {
                target: "/run/host".into(),
                options: "mode=0755,size=64k".into(),
                flags: MountFlags::SECURE,
            });
            mounts.push(Mount::File {
                source: socket.clone(),
                target: CONTAINER_NOTIFY_SOCKET.into(),
                readonly: false,
            });
        }
        for (source, target) in &options.etc_files {
            if options
                .extra
                .iter()
                .any(|m| m.target() == Some(target.as_str()))
            {
                continue;
            }
            mounts.push(Mount::File {
                source: source.clone(),
                target: target.clone(),
                readonly: false,
            });
        }
        if options.read_only {
            if let Some(dir) = &options.workdir {
                mounts.push(Mount::EnsureDir {
                    target: dir.clone(),
                });
            }
            mounts.push(Mount::ReadOnlyRoot);
        }
        RootfsPlan {
            root,
            overlay,
            mounts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_layout_mounts_proc_dev_sys_in_order() {
        let plan = RootfsPlan::new("/srv/root".into(), None, &RootfsOptions::default());
        let targets: Vec<_> = plan
            .mounts
            .iter()
            .map(|m| m.target().unwrap_or("/"))
            .collect();
        assert_eq!(targets[..4], ["/proc", "/dev", "/sys", "/sys/fs/cgroup"]);
        assert!(targets.contains(&"/proc/kcore") && targets.contains(&"/proc/sysrq-trigger"));
        assert_eq!(
            targets.last(),
            Some(&"/proc/sysrq-trigger"),
            "no read-only root unless asked"
        );
    }

    #[test]
    fn notify_socket_gets_its_own_tmpfs_and_bind() {
        let plan = RootfsPlan::new(
            "/srv/root".into(),
            None,
            &RootfsOptions {
                notify_socket: Some("/run/systemd/notify".into()),
                ..RootfsOptions::default()
            },
        );
        assert_eq!(
            plan.mounts.last(),
            Some(&Mount::File {
                source: "/run/systemd/notify".into(),
                target: CONTAINER_NOTIFY_SOCKET.into(),
                readonly: false
            })
        );
    }
}
