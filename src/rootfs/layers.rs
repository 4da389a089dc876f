//! Reading a file of an image before its layers are mounted: the same answer overlayfs would
//! give, found by walking the layers from the top, honouring whiteouts (a 0/0 character
//! device) and opaque directories (`trusted.overlay.opaque=y`). Used for the few files cleat
//! needs before the container starts (`/etc/passwd`, `/etc/group`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::resolve;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// What one layer says about a path.
enum Seen {
    /// The layer has nothing there: look below.
    Nothing,
    /// The layer hides it (a whiteout of the path or of a parent directory).
    Deleted,
    /// The layer has the file.
    File,
    /// The layer has no file there, but an opaque parent directory hides the layers below.
    Hidden,
}

fn open_nofollow(root: &OwnedFd, path: &str) -> io::Result<Option<OwnedFd>> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    match rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_whiteout(fd: &OwnedFd) -> io::Result<bool> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0)
}

fn is_opaque(fd: &OwnedFd) -> bool {
    // An O_PATH descriptor cannot be read for xattrs directly: go through its /proc link.
    let mut value = [0u8; 2];
    match rustix::fs::getxattr(
        resolve::fd_path(fd.as_fd()).as_str(),
        "trusted.overlay.opaque",
        &mut value,
    ) {
        Ok(n) => &value[..n] == b"y",
        Err(_) => false,
    }
}

fn look(layer: &OwnedFd, path: &str) -> io::Result<Seen> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut opaque = false;
    for i in 0..components.len() {
        let prefix = components[..=i].join("/");
        let Some(fd) = open_nofollow(layer, &prefix)? else {
            return Ok(if opaque { Seen::Hidden } else { Seen::Nothing });
        };
        if is_whiteout(&fd)? {
            return Ok(Seen::Deleted);
        }
        if i + 1 < components.len() {
            opaque |= is_opaque(&fd);
        }
    }
    Ok(Seen::File)
}

/// The content of `path` in the image made of `layers` (top first), as the container will
/// see it; `None` if no layer has it (or one deleted it).
pub fn read_in_layers(layers: &[PathBuf], path: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
    for dir in layers {
        let layer = resolve::open_root(dir)?;
        match look(&layer, path)? {
            Seen::Nothing => continue,
            Seen::Deleted | Seen::Hidden => return Ok(None),
            Seen::File => return resolve::read_file(layer.as_fd(), path, limit),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cleat-layers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn whiteout(path: &std::path::Path) -> io::Result<()> {
        Ok(rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )?)
    }

    #[test]
    fn top_layer_wins_and_whiteouts_and_opaque_dirs_hide() {
        let dir = scratch();
        let (bottom, middle, top) = (dir.join("bottom"), dir.join("middle"), dir.join("top"));
        for l in [&bottom, &middle, &top] {
            std::fs::create_dir_all(l.join("etc")).unwrap();
        }
        std::fs::write(bottom.join("etc/passwd"), "bottom").unwrap();
        std::fs::write(bottom.join("etc/group"), "bottom").unwrap();
        std::fs::write(bottom.join("etc/hosts"), "bottom").unwrap();
        std::fs::write(middle.join("etc/passwd"), "middle").unwrap();
        let layers = [top.clone(), middle.clone(), bottom.clone()];
        let read = |p: &str| {
            read_in_layers(&layers, p, 1 << 20)
                .unwrap()
                .map(|b| String::from_utf8(b).unwrap())
        };
        assert_eq!(read("/etc/passwd").as_deref(), Some("middle"));
        assert_eq!(read("/etc/group").as_deref(), Some("bottom"));
        assert_eq!(read("/etc/nothing"), None);
        // Whiteouts need CAP_MKNOD; opaque directories need CAP_SYS_ADMIN (trusted.*).
        if whiteout(&top.join("etc/group")).is_err() {
            eprintln!("not root: whiteout and opaque checks skipped");
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        }
        assert_eq!(read("/etc/group"), None, "whited out in the top layer");
        rustix::fs::setxattr(
            middle.join("etc").as_path(),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        assert_eq!(
            read("/etc/hosts"),
            None,
            "hidden by the opaque /etc of the middle layer"
        );
        assert_eq!(read("/etc/passwd").as_deref(), Some("middle"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
