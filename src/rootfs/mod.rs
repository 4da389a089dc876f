//! The container's file system: a [`RootfsPlan`] (a plain list of mount steps, built without
//! side effects, so it can be read and tested without root) and [`apply`](mount::apply), which
//! carries it out inside the container's private mount namespace and pivots into it.
//!
//! Every path inside the root is resolved with `openat2(RESOLVE_IN_ROOT)`, so a symlink in the
//! root file system (hostile image content) can never send a mount outside it.

pub mod layers;
pub mod mount;
pub mod resolve;

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
    /// A file or directory of the host bound into the container.
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
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
}

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
        if let Some(socket) = &options.notify_socket {
            mounts.push(Mount::Tmpfs {
                target: "/run/host".into(),
                options: "mode=0755,size=64k".into(),
                flags: MountFlags::SECURE,
            });
            mounts.push(Mount::Bind {
                source: socket.clone(),
                target: CONTAINER_NOTIFY_SOCKET.into(),
                readonly: false,
            });
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
            .map(|m| match m {
                Mount::Proc { target }
                | Mount::Sysfs { target }
                | Mount::Dev { target }
                | Mount::Tmpfs { target, .. }
                | Mount::Bind { target, .. } => target.as_str(),
            })
            .collect();
        assert_eq!(targets, ["/proc", "/dev", "/sys"]);
    }

    #[test]
    fn notify_socket_gets_its_own_tmpfs_and_bind() {
        let plan = RootfsPlan::new(
            "/srv/root".into(),
            None,
            &RootfsOptions {
                notify_socket: Some("/run/systemd/notify".into()),
            },
        );
        assert_eq!(
            plan.mounts.last(),
            Some(&Mount::Bind {
                source: "/run/systemd/notify".into(),
                target: CONTAINER_NOTIFY_SOCKET.into(),
                readonly: false
            })
        );
    }
}
