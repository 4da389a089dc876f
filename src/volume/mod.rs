//! Volumes: directories cleat keeps for containers, outside any container's root, so that
//! their content outlives the container. Named volumes (`-v data:/var/lib/db`) are created on
//! first use or by `cleat volume create` and stay until removed; anonymous ones (an image's
//! `VOLUME`, `-v /path`) belong to one container, which records them in its state directory,
//! and go with `cleat rm -v`.
//!
//! - [`store`]: the volumes themselves, under `/var/lib/cleat/volumes/NAME/` (`_data/` and a
//!   small `volume.json`);
//! - [`owned`]: the anonymous volumes a container owns (`volumes.json` in its state directory);
//! - [`usage`]: which containers use which volume, computed from their definitions, never
//!   stored.
//!
//! Nothing here takes a global lock: a volume appears (and disappears) with one `rename(2)`, so
//! concurrent creates of one name agree on one volume and a removal is never seen half done.

pub mod owned;
pub mod store;
#[cfg(test)]
pub(crate) mod testing;
pub mod usage;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::containers::LookupError;
use crate::spec::Name;
use crate::spec::mounts::check_volume_name;
use crate::spec::value::ValueError;

pub use owned::{OwnedVolumes, remove_anonymous};
pub use store::{Metadata, PruneReport, Volume, VolumeStore};
pub use usage::Usage;

/// A volume name, valid by Docker's rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), so it is also a
/// plain directory name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeName(String);

impl VolumeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name is one cleat gives anonymous volumes (64 hexadecimal digits).
    pub fn looks_anonymous(&self) -> bool {
        self.0.len() == 64 && self.0.bytes().all(|b| b.is_ascii_hexdigit())
    }
}

impl FromStr for VolumeName {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<VolumeName, ValueError> {
        check_volume_name(s)?;
        Ok(VolumeName(s.to_owned()))
    }
}

impl fmt::Display for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for VolumeName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for VolumeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What went wrong with a volume, or with a container's mounts.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A mount that cannot be made as asked (a bad name or path, two mounts at one place, ...).
    #[error("{0}")]
    Invalid(String),
    #[error("bind source {} does not exist (for the mount at {target}{via})", path.display())]
    MissingBindSource {
        path: PathBuf,
        target: String,
        /// ` of container C` for a mount shared with `--volumes-from`, else empty.
        via: String,
    },
    #[error("duplicate mount point {target}: {first} and {second} both mount there")]
    Duplicate {
        target: String,
        first: String,
        second: String,
    },
    #[error("--volumes-from {container}: {source}")]
    VolumesFrom {
        container: Name,
        #[source]
        source: Box<LookupError>,
    },
    /// The containers cleat knows could not be listed.
    #[error(transparent)]
    Containers(Box<LookupError>),
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error(
        "volume {volume} is in use by running container {}: stop {} first",
        list(containers),
        it_or_them(containers)
    )]
    InUseRunning {
        volume: VolumeName,
        containers: Vec<Name>,
    },
    #[error(
        "volume {volume} is in use by container {}: remove {} first (cleat rm), or use -f",
        list(containers),
        it_or_them(containers)
    )]
    InUse {
        volume: VolumeName,
        containers: Vec<Name>,
    },
    #[error(
        "container {container} may use volume {volume}, but its definition cannot be read \
         ({reason}); fix it, remove it, or use -f"
    )]
    UnknownUser {
        volume: VolumeName,
        container: Name,
        reason: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: corrupt ({source}); remove the file to reset it", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn list(names: &[Name]) -> String {
    names
        .iter()
        .map(Name::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn it_or_them(names: &[Name]) -> &'static str {
    if names.len() == 1 { "it" } else { "them" }
}

impl From<ValueError> for VolumeError {
    fn from(e: ValueError) -> VolumeError {
        VolumeError::Invalid(e.0)
    }
}

/// An I/O error with the path it happened at.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> VolumeError {
    let path = path.into();
    move |source| VolumeError::Io { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert_eq!("data".parse::<VolumeName>().unwrap().as_str(), "data");
        assert!("-x".parse::<VolumeName>().is_err());
        assert!("a/b".parse::<VolumeName>().is_err());
        assert!("..".parse::<VolumeName>().is_err());
        let hex: VolumeName = "ab".repeat(32).parse().unwrap();
        assert!(hex.looks_anonymous());
        assert!(!"data".parse::<VolumeName>().unwrap().looks_anonymous());
    }

    #[test]
    fn in_use_messages_name_the_containers() {
        let volume: VolumeName = "data".parse().unwrap();
        let one = VolumeError::InUse {
            volume: volume.clone(),
            containers: vec!["web".parse().unwrap()],
        };
        assert_eq!(
            one.to_string(),
            "volume data is in use by container web: remove it first (cleat rm), or use -f"
        );
        let two = VolumeError::InUseRunning {
            volume,
            containers: vec!["a".parse().unwrap(), "b".parse().unwrap()],
        };
        assert_eq!(
            two.to_string(),
            "volume data is in use by running container a, b: stop them first"
        );
    }
}
