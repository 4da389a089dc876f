//! The anonymous volumes a container owns, recorded in its state directory
//! (`/var/lib/cleat/containers/NAME/volumes.json`, by mount point): created at its first start,
//! found again at every later one, removed with it by `cleat rm -v` (and by `--rm`). Without
//! `-v` they outlive the record (which goes with the state directory) and `volume prune`
//! removes them, as in Docker.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;

use serde::{Deserialize, Serialize};

use crate::containers::Registry;
use crate::spec::Name;
use crate::state::StateDir;

use super::store::VolumeStore;
use super::usage::Usage;
use super::{VolumeError, VolumeName, io_err};

const RECORD: &str = "volumes.json";

/// What `volumes.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OwnedVolumes {
    /// Mount point in the container → its anonymous volume.
    #[serde(default)]
    pub anonymous: BTreeMap<String, VolumeName>,
}

impl OwnedVolumes {
    /// The container's record; empty if it has none.
    pub fn read(state: &StateDir, container: &Name) -> Result<OwnedVolumes, VolumeError> {
        let path = state.dir(container).join(RECORD);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| VolumeError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(OwnedVolumes::default()),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    /// Replaces the container's record (atomically), creating its state directory if needed.
    pub fn write(&self, state: &StateDir, container: &Name) -> Result<(), VolumeError> {
        let dir = state.dir(container);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        let path = dir.join(RECORD);
        let json = serde_json::to_vec_pretty(self).map_err(|source| VolumeError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let tmp = dir.join(format!(".{RECORD}.{}", std::process::id()));
        fs::write(&tmp, json).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(&path)(e)
        })
    }

    /// Every volume in the record.
    pub fn volumes(&self) -> impl Iterator<Item = &VolumeName> {
        self.anonymous.values()
    }

    pub fn is_empty(&self) -> bool {
        self.anonymous.is_empty()
    }
}

/// What [`remove_anonymous`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnonymousRemoval {
    pub removed: Vec<VolumeName>,
    /// Volumes kept because other containers mount them (`--volumes-from`), with those
    /// containers.
    pub kept: Vec<(VolumeName, Vec<Name>)>,
}

/// Removes the anonymous volumes `container` owns (`cleat rm -v`, and `--rm` when the
/// container stops), except those another container mounts through `--volumes-from`; then
/// records what is left. Call it before the container's state directory is removed: the
/// record is there.
pub fn remove_anonymous(
    store: &VolumeStore,
    registry: &Registry,
    container: &Name,
) -> Result<AnonymousRemoval, VolumeError> {
    let mut owned = OwnedVolumes::read(&registry.state, container)?;
    let mut outcome = AnonymousRemoval::default();
    if owned.is_empty() {
        return Ok(outcome);
    }
    let usage = Usage::compute(registry, Default::default())?;
    let mut first_error = None;
    owned.anonymous.retain(|_, volume| {
        let others = usage.other_users(volume, container);
        if !others.is_empty() {
            outcome.kept.push((volume.clone(), others));
            return true;
        }
        match store.delete(volume) {
            Ok(_) | Err(VolumeError::NotFound(_)) => {
                outcome.removed.push(volume.clone());
                false
            }
            // Keep going: remove what can be removed, report the first failure.
            Err(e) => {
                first_error.get_or_insert(e);
                true
            }
        }
    });
    owned.write(&registry.state, container)?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::testing::Scratch;

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn the_record_round_trips() {
        let s = Scratch::new("owned-record");
        let web = name("web");
        assert!(
            OwnedVolumes::read(&s.registry.state, &web)
                .unwrap()
                .is_empty()
        );
        let mut owned = OwnedVolumes::default();
        owned
            .anonymous
            .insert("/data".into(), "ab".repeat(32).parse().unwrap());
        owned.write(&s.registry.state, &web).unwrap();
        assert_eq!(OwnedVolumes::read(&s.registry.state, &web).unwrap(), owned);
        fs::write(s.registry.state.dir(&web).join(RECORD), "nope").unwrap();
        assert!(matches!(
            OwnedVolumes::read(&s.registry.state, &web),
            Err(VolumeError::Corrupt { .. })
        ));
    }

    #[test]
    fn rm_v_removes_owned_volumes_unless_shared() {
        let s = Scratch::new("owned-rmv");
        s.adhoc(s.spec("owner", &[]));
        let mut sharer = s.spec("sharer", &[]);
        sharer.volumes_from = vec![(&name("owner")).into()];
        let kept_one = s.store.create_anonymous().unwrap();
        let removed_one = s.store.create_anonymous().unwrap();
        let mut owned = OwnedVolumes::default();
        owned
            .anonymous
            .insert("/kept".into(), kept_one.name.clone());
        owned
            .anonymous
            .insert("/gone".into(), removed_one.name.clone());
        owned.write(&s.registry.state, &name("owner")).unwrap();
        // A named volume the owner mounts is never its to remove.
        s.adhoc(s.spec("named", &["keepme:/k"]));
        s.store
            .create(&"keepme".parse().unwrap(), BTreeMap::new())
            .unwrap();

        // Shared with a running or stopped container: kept.
        s.adhoc(sharer);
        let outcome = remove_anonymous(&s.store, &s.registry, &name("owner")).unwrap();
        assert_eq!(outcome.kept.len(), 2);
        assert!(outcome.removed.is_empty());

        s.registry.state.remove(&name("sharer")).unwrap();
        let outcome = remove_anonymous(&s.store, &s.registry, &name("owner")).unwrap();
        let mut removed = outcome.removed.clone();
        removed.sort();
        let mut expected = vec![kept_one.name.clone(), removed_one.name.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(s.store.get(&kept_one.name).unwrap().is_none());
        assert!(s.store.get(&removed_one.name).unwrap().is_none());
        assert!(s.store.get(&"keepme".parse().unwrap()).unwrap().is_some());
        assert!(
            OwnedVolumes::read(&s.registry.state, &name("owner"))
                .unwrap()
                .is_empty()
        );
    }
}
