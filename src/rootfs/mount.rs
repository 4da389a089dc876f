//! Carries out a [`RootfsPlan`] in the current (private, freshly unshared) mount namespace and
//! pivots into the result. Runs in the container's first process, before the payload is
//! exec'd; every step names itself in its error so a failed start says what broke.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode};
use rustix::io::Errno;
use rustix::mount::{MountFlags as Flags, MountPropagationFlags, UnmountFlags};

use super::resolve::{self, Create, fd_path};
use super::{Mount, MountFlags, Overlay, RootfsPlan};

/// A step that failed, and why.
#[derive(Debug)]
pub struct MountError {
    pub step: String,
    pub source: io::Error,
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.source)
    }
}

impl std::error::Error for MountError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

trait Step<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, MountError>;
}

impl<T, E: Into<io::Error>> Step<T> for Result<T, E> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, MountError> {
        self.map_err(|e| MountError {
            step: what(),
            source: e.into(),
        })
    }
}

/// Mounts everything in `plan` and makes its root the process's `/`.
pub fn apply(plan: &RootfsPlan) -> Result<(), MountError> {
    // Nothing we mount may propagate back to the host; what the host mounts may still reach
    // the bind mounts that ask for it (`rslave`). runc's default.
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .step(|| "making the mount namespace a slave of the host's".into())?;
    // pivot_root needs the new root to be a mount point: the overlay is one; a plain
    // directory is bound onto itself.
    match &plan.overlay {
        Some(overlay) => mount_overlay(&plan.root, overlay)?,
        None => rustix::mount::mount_bind_recursive(&plan.root, &plan.root)
            .step(|| format!("binding the root {}", plan.root.display()))?,
    }
    let root = resolve::open_root(&plan.root)
        .step(|| format!("opening the root {}", plan.root.display()))?;
    for mount in &plan.mounts {
        apply_mount(root.as_fd(), mount)?;
    }
    pivot(root.as_fd())
}

/// overlayfs takes its options as one string of at most a page; ':' and ',' inside paths must
/// be escaped.
const OVERLAY_OPTIONS_MAX: usize = 4095;

fn escape_overlay_path(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The overlayfs options for `overlay`, with the layers named relative to `base` when they all
/// live below it (they do: the store's layer directory), which keeps the string short enough
/// for images with many layers.
pub fn overlay_options(overlay: &Overlay, base: Option<&Path>) -> String {
    let lower: Vec<String> = overlay
        .lower
        .iter()
        .map(|l| match base.and_then(|b| l.strip_prefix(b).ok()) {
            Some(rel) => escape_overlay_path(rel),
            None => escape_overlay_path(l),
        })
        .collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        escape_overlay_path(&overlay.upper),
        escape_overlay_path(&overlay.work)
    )
}

/// The deepest directory that contains every lower layer.
fn common_parent(paths: &[std::path::PathBuf]) -> Option<std::path::PathBuf> {
    let first = paths.first()?.parent()?.to_path_buf();
    let mut base = first;
    for p in paths {
        while !p.starts_with(&base) {
            base = base.parent()?.to_path_buf();
        }
    }
    Some(base)
}

/// Mounts the image's layers and the container's writable layer on `target`. The mount is
/// `nodev`: device nodes that come with an image are inert (the container's /dev is its own).
fn mount_overlay(target: &Path, overlay: &Overlay) -> Result<(), MountError> {
    let base = common_parent(&overlay.lower);
    let options = overlay_options(overlay, base.as_deref());
    if options.len() > OVERLAY_OPTIONS_MAX {
        return Err(MountError {
            step: format!("mounting the image's {} layers", overlay.lower.len()),
            source: std::io::Error::other("too many layers for one overlay mount"),
        });
    }
    // Relative lower paths resolve against the working directory at mount time.
    if let Some(base) = &base {
        rustix::process::chdir(base.as_path()).step(|| format!("entering {}", base.display()))?;
    }
    let data = data(&options);
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        Flags::NODEV,
        Some(data.as_c_str()),
    )
    .step(|| format!("mounting the image's layers on {}", target.display()))
}

fn flags(f: MountFlags) -> Flags {
    let mut out = Flags::empty();
    if f.readonly {
        out |= Flags::RDONLY;
    }
    if f.nosuid {
        out |= Flags::NOSUID;
    }
    if f.nodev {
        out |= Flags::NODEV;
    }
    if f.noexec {
        out |= Flags::NOEXEC;
    }
    out
}

fn data(options: &str) -> std::ffi::CString {
    // Options come from the plan, never from user input with NULs; an interior NUL would be a
    // bug in cleat, and mounting with truncated options is the safe outcome.
    std::ffi::CString::new(options.split('\0').next().unwrap_or_default()).unwrap_or_default()
}

/// Whose path a mount point is, which decides how it is resolved inside the root.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The container's own /proc, /sys and /dev and what is in them: no symbolic link may
    /// be on the way (see [`resolve::resolve_plain`]).
    Standard,
    /// A mount the spec or cleat asks for (volumes, binds, tmpfs, /etc/hosts): symbolic
    /// links in the image are followed inside the root, as Docker does, but the mount may not
    /// land in the container's /proc or /dev/pts.
    Container,
}

/// Opens (creating what is missing as `create` says) the mount point `target` inside `root`.
fn mount_point(
    root: BorrowedFd<'_>,
    target: &str,
    create: Create,
    owner: Owner,
) -> Result<OwnedFd, MountError> {
    let at = match owner {
        Owner::Standard => resolve::resolve_plain(root, target, create),
        Owner::Container => resolve::resolve(root, target, create),
    }
    .step(|| format!("opening mount point {target}"))?;
    if owner == Owner::Container {
        // What the kernel says the path is on, wherever symbolic links led.
        const PROC: i64 = 0x9fa0;
        const DEVPTS: i64 = 0x1cd1;
        let fs = rustix::fs::fstatfs(&at).step(|| format!("examining mount point {target}"))?;
        #[allow(
            clippy::unnecessary_cast,
            reason = "f_type's type differs between targets"
        )]
        if matches!(fs.f_type as i64, PROC | DEVPTS) {
            return Err(MountError {
                step: format!("mounting on {target}"),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "it leads into the container's /proc or /dev/pts (a symbolic link in the image?)",
                ),
            });
        }
    }
    Ok(at)
}

/// Mounts a pseudo file system on `target` inside `root`.
fn mount_fs(
    root: BorrowedFd<'_>,
    target: &str,
    owner: Owner,
    fstype: &str,
    f: Flags,
    options: &str,
) -> Result<(), MountError> {
    let at = mount_point(root, target, Create::Dir, owner)?;
    let options = data(options);
    rustix::mount::mount(
        fstype,
        fd_path(at.as_fd()).as_str(),
        fstype,
        f,
        Some(options.as_c_str()),
    )
    .step(|| format!("mounting {fstype} on {target}"))
}

fn apply_mount(root: BorrowedFd<'_>, mount: &Mount) -> Result<(), MountError> {
    match mount {
        Mount::Proc { target } => mount_fs(
            root,
            target,
            Owner::Standard,
            "proc",
            Flags::NOSUID | Flags::NODEV | Flags::NOEXEC,
            "",
        ),
        Mount::Sysfs { target } => mount_sysfs(root, target),
        Mount::Dev { target } => mount_dev(root, target),
        Mount::Tmpfs {
            target,
            options,
            flags: f,
        } => mount_fs(root, target, Owner::Container, "tmpfs", flags(*f), options),
        Mount::Bind {
            source,
            target,
            readonly,
            propagation,
        } => bind_tree(root, source, target, *readonly, propagation.as_deref()),
        Mount::Volume {
            source,
            target,
            readonly,
            populate,
        } => {
            if *populate {
                super::copy::populate(root, target, source)?;
            }
            bind_tree(root, source, target, *readonly, None)
        }
        Mount::Mask { target } => mask(root, target),
        Mount::ReadOnly { target } => read_only_in_place(root, target),
        Mount::ReadOnlyRoot => read_only_root(root),
        Mount::Cgroup { target } => mount_cgroup(root, target),
        Mount::EnsureDir { target } => resolve::resolve(root, target, Create::Dir)
            .map(drop)
            .step(|| format!("creating {target}")),
        Mount::File {
            source,
            target,
            readonly,
        } => bind(root, source, target, *readonly, Owner::Container),
    }
}

fn mount_sysfs(root: BorrowedFd<'_>, target: &str) -> Result<(), MountError> {
    let ro = Flags::RDONLY | Flags::NOSUID | Flags::NODEV | Flags::NOEXEC;
    match mount_fs(root, target, Owner::Standard, "sysfs", ro, "") {
        // Without a network namespace of our own the kernel may refuse a new sysfs instance;
        // fall back to a read-only view of the host's, as runc does.
        Err(e)
            if matches!(
                e.source.raw_os_error(),
                Some(libc::EPERM) | Some(libc::EBUSY)
            ) =>
        {
            bind(root, Path::new("/sys"), target, true, Owner::Standard)
        }
        other => other,
    }
}

/// Attaches a copy of the mount tree at `source` (with `recursive`, the mounts below it too)
/// on the mount point `at`, with `attrs` (`MOUNT_ATTR_*`) and `propagation` set on the copy
/// while it is still detached: the mount is never visible without them, and nothing is looked
/// up again by path in between (where a container sharing a volume could swap a directory for
/// a symbolic link).
fn attach_copy(
    source: (BorrowedFd<'_>, &Path),
    recursive: bool,
    attrs: u64,
    propagation: Option<(crate::sys::Propagation, bool)>,
    at: BorrowedFd<'_>,
) -> io::Result<()> {
    use rustix::mount::{MoveMountFlags, OpenTreeFlags};
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    if source.1.as_os_str().is_empty() {
        flags |= OpenTreeFlags::AT_EMPTY_PATH;
    }
    let tree = rustix::mount::open_tree(source.0, source.1, flags)?;
    if attrs != 0 {
        crate::sys::mount_setattr(tree.as_fd(), recursive, attrs, None)?;
    }
    if let Some((kind, rec)) = propagation {
        crate::sys::mount_setattr(tree.as_fd(), rec, 0, Some(kind))?;
    }
    rustix::mount::move_mount(
        &tree,
        "",
        at,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?;
    Ok(())
}

/// Binds `source` (a host path) on `target` (inside the root), read-only if asked. A
/// read-only bind takes the source alone, without the mounts below it (and nosuid, nodev): a
/// writable submount (the host's /sys/fs/cgroup under /sys) must not slip through.
fn bind(
    root: BorrowedFd<'_>,
    source: &Path,
    target: &str,
    readonly: bool,
    owner: Owner,
) -> Result<(), MountError> {
    use crate::sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
    let is_dir = std::fs::metadata(source)
        .step(|| format!("bind source {}", source.display()))?
        .is_dir();
    let create = if is_dir { Create::Dir } else { Create::File };
    let at = mount_point(root, target, create, owner)?;
    let (recursive, attrs) = if readonly {
        (
            false,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )
    } else {
        (true, 0)
    };
    attach_copy(
        (rustix::fs::CWD, source),
        recursive,
        attrs,
        Some((crate::sys::Propagation::Private, recursive)),
        at.as_fd(),
    )
    .step(|| format!("binding {} on {target}", source.display()))
}

/// A bind mount of a host tree (`-v`, `--mount type=bind`, volumes): recursive, like Docker's;
/// read-only means every mount in it, not just the top one. Private (`rprivate`, Docker's
/// default) unless `propagation` says `rslave` or `slave` (receive the host's new mounts).
fn bind_tree(
    root: BorrowedFd<'_>,
    source: &Path,
    target: &str,
    readonly: bool,
    propagation: Option<&str>,
) -> Result<(), MountError> {
    use crate::sys::Propagation;
    let meta = std::fs::metadata(source).step(|| format!("bind source {}", source.display()))?;
    let create = if meta.is_dir() {
        Create::Dir
    } else {
        Create::File
    };
    let propagation = match propagation.unwrap_or("rprivate") {
        "private" => (Propagation::Private, false),
        "rprivate" => (Propagation::Private, true),
        "slave" => (Propagation::Slave, false),
        "rslave" => (Propagation::Slave, true),
        other => {
            return Err(MountError {
                step: format!("mount propagation of {target}"),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unsupported mode {other:?}"),
                ),
            });
        }
    };
    let at = mount_point(root, target, create, Owner::Container)?;
    let attrs = if readonly {
        crate::sys::MOUNT_ATTR_RDONLY
    } else {
        0
    };
    attach_copy(
        (rustix::fs::CWD, source),
        true,
        attrs,
        Some(propagation),
        at.as_fd(),
    )
    .step(|| format!("binding {} on {target}", source.display()))
}

/// Opens `target`, one of the container's standard paths (masks, read-only paths, its cgroup
/// tree), inside the root if it exists (`None` if it does not). A symbolic link on the way is
/// an error, not a reason to skip it.
fn existing(root: BorrowedFd<'_>, target: &str) -> Result<Option<OwnedFd>, MountError> {
    match resolve::resolve_plain(root, target, Create::No) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).step(|| format!("opening {target}")),
    }
}

/// Hides `target`: a directory behind an empty read-only tmpfs, anything else behind
/// /dev/null.
fn mask(root: BorrowedFd<'_>, target: &str) -> Result<(), MountError> {
    let Some(at) = existing(root, target)? else {
        return Ok(());
    };
    let stat = rustix::fs::fstat(&at).step(|| format!("examining {target}"))?;
    let path = fd_path(at.as_fd());
    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        let options = data("size=0,mode=0555");
        rustix::mount::mount(
            "tmpfs",
            path.as_str(),
            "tmpfs",
            Flags::RDONLY | Flags::NOSUID | Flags::NODEV | Flags::NOEXEC,
            Some(options.as_c_str()),
        )
        .step(|| format!("masking {target}"))
    } else {
        attach_copy(
            (rustix::fs::CWD, Path::new("/dev/null")),
            false,
            0,
            Some((crate::sys::Propagation::Private, false)),
            at.as_fd(),
        )
        .step(|| format!("masking {target}"))
    }
}

/// Makes `target` read-only where it stands (a read-only copy of it mounted on top).
fn read_only_in_place(root: BorrowedFd<'_>, target: &str) -> Result<(), MountError> {
    let Some(at) = existing(root, target)? else {
        return Ok(());
    };
    attach_copy(
        (at.as_fd(), Path::new("")),
        true,
        crate::sys::MOUNT_ATTR_RDONLY,
        None,
        at.as_fd(),
    )
    .step(|| format!("making {target} read-only"))
}

/// The container's cgroup hierarchy (its cgroup namespace makes its own cgroup the root),
/// read-only as Docker mounts it. Where the kernel refuses a cgroup2 mount here (a host with
/// only cgroup v1 hierarchies), the container simply has none.
fn mount_cgroup(root: BorrowedFd<'_>, target: &str) -> Result<(), MountError> {
    let Some(at) = existing(root, target)? else {
        return Ok(());
    };
    let flags = Flags::RDONLY | Flags::NOSUID | Flags::NODEV | Flags::NOEXEC;
    match rustix::mount::mount(
        "cgroup2",
        fd_path(at.as_fd()).as_str(),
        "cgroup2",
        flags,
        None,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::PERM | Errno::BUSY | Errno::NODEV | Errno::INVAL) => Ok(()),
        Err(e) => Err(e).step(|| format!("mounting cgroup2 on {target}")),
    }
}

/// `--read-only`: the root's own mount becomes read-only (the mounts on it keep their own
/// flags: /dev, /proc, tmpfs and volumes stay writable as configured).
fn read_only_root(root: BorrowedFd<'_>) -> Result<(), MountError> {
    rustix::mount::mount_remount(
        fd_path(root).as_str(),
        Flags::BIND | Flags::RDONLY | Flags::NODEV,
        "",
    )
    .step(|| "making the root file system read-only".into())
}

/// The device nodes every container gets (Docker's set), as (name, major, minor).
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

fn mount_dev(root: BorrowedFd<'_>, target: &str) -> Result<(), MountError> {
    mount_fs(
        root,
        target,
        Owner::Standard,
        "tmpfs",
        Flags::NOSUID | Flags::STRICTATIME,
        "mode=755,size=65536k",
    )?;
    // Open the new tmpfs (the descriptor used to mount it still names the directory below).
    let dev = open_dir(root, target)?;
    for &(name, major, minor) in DEVICES {
        make_device(root, dev.as_fd(), target, name, major, minor)?;
    }
    for &(name, dest) in DEV_LINKS {
        rustix::fs::symlinkat(dest, &dev, name).step(|| format!("linking {target}/{name}"))?;
    }
    mount_fs(
        root,
        &format!("{target}/pts"),
        Owner::Standard,
        "devpts",
        Flags::NOSUID | Flags::NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    )?;
    mount_fs(
        root,
        &format!("{target}/shm"),
        Owner::Standard,
        "tmpfs",
        Flags::NOSUID | Flags::NODEV | Flags::NOEXEC,
        "mode=1777,size=65536k",
    )?;
    mount_fs(
        root,
        &format!("{target}/mqueue"),
        Owner::Standard,
        "mqueue",
        Flags::NOSUID | Flags::NODEV | Flags::NOEXEC,
        "",
    )
}

fn open_dir(root: BorrowedFd<'_>, path: &str) -> Result<OwnedFd, MountError> {
    let at = resolve::resolve_plain(root, path, Create::No).step(|| format!("opening {path}"))?;
    rustix::fs::openat(
        &at,
        ".",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        Mode::empty(),
    )
    .step(|| format!("opening {path}"))
}

/// Creates a character device node; where the kernel or a device cgroup forbids `mknod`, binds
/// the host's node instead (as rootless runtimes do).
fn make_device(
    root: BorrowedFd<'_>,
    dev: BorrowedFd<'_>,
    target: &str,
    name: &str,
    major: u32,
    minor: u32,
) -> Result<(), MountError> {
    let mode = Mode::from_raw_mode(0o666);
    match rustix::fs::mknodat(
        dev,
        name,
        FileType::CharacterDevice,
        mode,
        rustix::fs::makedev(major, minor),
    ) {
        Ok(()) => {
            // mknod applies the umask; the mode must be exact.
            rustix::fs::chmodat(dev, name, mode, rustix::fs::AtFlags::empty())
                .step(|| format!("setting the mode of {target}/{name}"))
        }
        Err(Errno::PERM) => bind(
            root,
            &Path::new("/dev").join(name),
            &format!("{target}/{name}"),
            false,
            Owner::Standard,
        ),
        Err(e) => Err(e).step(|| format!("creating device {target}/{name}")),
    }
}

/// Makes the root the process's `/` and detaches the old root (the "pivot_root(".", ".")"
/// idiom: no directory for the old root is needed inside the new one).
fn pivot(root: BorrowedFd<'_>) -> Result<(), MountError> {
    rustix::process::fchdir(root).step(|| "entering the root".into())?;
    rustix::process::pivot_root(".", ".").step(|| "pivot_root".into())?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).step(|| "detaching the old root".into())?;
    rustix::process::chdir("/").step(|| "chdir /".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn overlay_options_name_layers_relative_to_the_store_and_escape_paths() {
        let layer = |h: &str| PathBuf::from(format!("/var/lib/cleat/layers/sha256/{h}/fs"));
        let overlay = Overlay {
            lower: vec![layer("bb"), layer("aa")],
            upper: "/var/lib/cleat/containers/web/upper".into(),
            work: "/var/lib/cleat/containers/web/work".into(),
        };
        let base = common_parent(&overlay.lower).unwrap();
        assert_eq!(base, PathBuf::from("/var/lib/cleat/layers/sha256"));
        assert_eq!(
            overlay_options(&overlay, Some(&base)),
            "lowerdir=bb/fs:aa/fs,upperdir=/var/lib/cleat/containers/web/upper,workdir=/var/lib/cleat/containers/web/work"
        );
        let odd = Overlay {
            lower: vec!["/a:b,c".into()],
            upper: "/u".into(),
            work: "/w".into(),
        };
        assert_eq!(
            overlay_options(&odd, None),
            "lowerdir=/a\\:b\\,c,upperdir=/u,workdir=/w"
        );
    }
}
