//! Entry names: normalising a path from a tar header into a path relative to the layer root,
//! and recognising the whiteout names of the image format.
//!
//! Normalisation is lexical, as in every OCI unpacker: a leading `/` and `.` components are
//! dropped and `..` removes the component before it. A `..` that would climb above the root
//! is refused (the whole layer is rejected): no well-formed layer has one, and the ways tools
//! differ in "clamping" such paths are exactly what hostile layers exploit.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A tar entry's name marks a deleted file with this prefix (`.wh.NAME`).
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Names with this prefix are aufs metadata (`.wh..wh.plnk`, `.wh..wh.aufs`), not whiteouts.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";
/// Marks its directory as opaque: nothing of the lower layers shows through it.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// The path would leave the layer root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escapes;

/// `raw` as a path relative to the layer root; empty for the root itself.
pub fn normalise(raw: &[u8]) -> Result<PathBuf, Escapes> {
    let mut out = PathBuf::new();
    for component in Path::new(OsStr::from_bytes(raw)).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(Escapes);
                }
            }
            Component::Normal(name) => out.push(name),
            Component::Prefix(_) => return Err(Escapes),
        }
    }
    Ok(out)
}

/// A normalised path split into its parent directory (empty for the root) and its last
/// component; `None` for the root itself.
pub fn split(path: &Path) -> Option<(&Path, &OsStr)> {
    Some((path.parent()?, path.file_name()?))
}

/// What an entry name means to the image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role<'a> {
    /// An ordinary entry.
    Plain,
    /// `DIR/.wh.NAME`: NAME, in DIR, is deleted.
    Whiteout { dir: &'a Path, name: &'a OsStr },
    /// `DIR/.wh..wh..opq`: DIR hides the lower layers' content.
    Opaque { dir: &'a Path },
    /// aufs bookkeeping, meaningless here.
    AufsMeta,
    /// `.wh.`, `.wh..` or `.wh...`: a whiteout of nothing, of the directory itself or of its
    /// parent.
    BadWhiteout,
}

/// The role of a normalised, non-root path.
pub fn role(path: &Path) -> Role<'_> {
    let Some((dir, name)) = split(path) else {
        return Role::Plain;
    };
    let bytes = name.as_bytes();
    if bytes == OPAQUE_MARKER {
        return Role::Opaque { dir };
    }
    if bytes.starts_with(AUFS_META_PREFIX) {
        return Role::AufsMeta;
    }
    match bytes.strip_prefix(WHITEOUT_PREFIX) {
        None => Role::Plain,
        Some(b"" | b"." | b"..") => Role::BadWhiteout,
        Some(deleted) => Role::Whiteout {
            dir,
            name: OsStr::from_bytes(deleted),
        },
    }
}

/// A path as error messages show it (not necessarily UTF-8).
pub fn display(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, Escapes> {
        normalise(raw.as_bytes()).map(|p| p.to_string_lossy().into_owned())
    }

    #[test]
    fn normalisation_strips_roots_and_dots_and_refuses_escapes() {
        assert_eq!(norm("./usr/bin/"), Ok("usr/bin".into()));
        assert_eq!(norm("/etc/passwd"), Ok("etc/passwd".into()));
        assert_eq!(norm("a/./b/../c"), Ok("a/c".into()));
        assert_eq!(norm("./"), Ok("".into()));
        assert_eq!(norm("a/.."), Ok("".into()));
        assert_eq!(norm("../escape"), Err(Escapes));
        assert_eq!(norm("/abs/../../escape"), Err(Escapes));
        assert_eq!(norm("a/../../b"), Err(Escapes));
    }

    #[test]
    fn whiteout_names() {
        let p = PathBuf::from("a/b/.wh.c");
        assert_eq!(
            role(&p),
            Role::Whiteout {
                dir: Path::new("a/b"),
                name: OsStr::new("c")
            }
        );
        let p = PathBuf::from(".wh..wh..opq");
        assert_eq!(role(&p), Role::Opaque { dir: Path::new("") });
        assert_eq!(role(Path::new("x/.wh..wh.plnk")), Role::AufsMeta);
        assert_eq!(role(Path::new("x/.wh..wh.")), Role::AufsMeta);
        for bad in ["x/.wh.", "x/.wh..", "x/.wh..."] {
            assert_eq!(role(Path::new(bad)), Role::BadWhiteout, "{bad}");
        }
        assert_eq!(role(Path::new("x/.whx")), Role::Plain);
        assert_eq!(role(Path::new("x/a.wh.b")), Role::Plain);
    }
}
