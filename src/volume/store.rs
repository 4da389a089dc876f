//! The volume store: one directory per volume under `/var/lib/cleat/volumes/`:
//!
//! ```text
//! /var/lib/cleat/volumes/
//!   data/
//!     _data/          what the container sees (bound at the mount point)
//!     volume.json     created time, driver, labels, anonymous or not, populated or not
//!   .new-…/           a volume being created (renamed to its name when complete)
//!   .gone-…/          a volume being removed (renamed away first, then deleted)
//! ```
//!
//! A volume is its directory: it appears complete with one `rename(2)` (without replacing:
//! of concurrent creates of one name, one wins and the others find it) and disappears from
//! view with another before its content is deleted. `volume.json` is bookkeeping; a volume
//! whose file is missing or damaged is still a volume, with default metadata.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{CWD, RenameFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use super::usage::Usage;
use super::{VolumeError, VolumeName, io_err};
use crate::spec::Name;

/// Where volumes live.
pub const SYSTEM_VOLUME_DIR: &str = "/var/lib/cleat/volumes";

/// The only driver: a directory on the host.
pub const LOCAL_DRIVER: &str = "local";

const DATA: &str = "_data";
const METADATA: &str = "volume.json";
const STAGING_PREFIX: &str = ".new-";
const REMOVING_PREFIX: &str = ".gone-";

/// A volume being created is left alone for this long by the sweep of leftovers.
const STAGING_GRACE: Duration = Duration::from_secs(3600);

/// What `volume.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Metadata {
    /// Microseconds since the epoch.
    pub created_usec: u64,
    #[serde(default = "local_driver")]
    pub driver: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Created for one container (an image's `VOLUME`, `-v /path`), not by name.
    #[serde(default)]
    pub anonymous: bool,
    /// A container has mounted it with the right to fill it from its image: no container
    /// fills it again (Podman's "copy-up once"), even if it is empty now.
    #[serde(default)]
    pub populated: bool,
}

fn local_driver() -> String {
    LOCAL_DRIVER.to_owned()
}

impl Metadata {
    fn new(anonymous: bool, labels: BTreeMap<String, String>) -> Metadata {
        Metadata {
            created_usec: crate::time::now_usec(),
            driver: local_driver(),
            labels,
            anonymous,
            populated: false,
        }
    }
}

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: VolumeName,
    /// The volume's directory (holding `_data/` and `volume.json`).
    pub dir: PathBuf,
    pub meta: Metadata,
}

impl Volume {
    /// What is bound into containers: Docker's `Mountpoint`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join(DATA)
    }
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: Vec<VolumeName>,
    /// The apparent size of what was removed.
    pub bytes_freed: u64,
    /// Volumes kept because a container whose definition cannot be read may use them: the
    /// volume, the container, and why its definition cannot be read.
    pub kept: Vec<(VolumeName, Name, String)>,
}

/// The volume store.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    root: PathBuf,
}

impl VolumeStore {
    pub fn system() -> VolumeStore {
        VolumeStore::at(SYSTEM_VOLUME_DIR)
    }

    /// A store at another place (tests).
    pub fn at(root: impl Into<PathBuf>) -> VolumeStore {
        VolumeStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, name: &VolumeName) -> PathBuf {
        self.root.join(name.as_str())
    }

    /// The store's directory, private to root (labels and content are nobody else's business;
    /// containers reach their volumes through bind mounts, not through this path).
    fn ensure_root(&self) -> Result<(), VolumeError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io_err(&self.root))
    }

    /// Creates a named volume, or finds the one of that name (Docker's `volume create` is
    /// idempotent). Returns the volume and whether this call created it.
    pub fn create(
        &self,
        name: &VolumeName,
        labels: BTreeMap<String, String>,
    ) -> Result<(Volume, bool), VolumeError> {
        self.create_with(name, &Metadata::new(false, labels))
    }

    /// Creates an anonymous volume, with a fresh random name of 64 hexadecimal digits.
    pub fn create_anonymous(&self) -> Result<Volume, VolumeError> {
        loop {
            let name = random_name()?;
            match self.create_with(&name, &Metadata::new(true, BTreeMap::new()))? {
                (volume, true) => return Ok(volume),
                // 256 random bits never collide; if they did, draw again.
                (_, false) => continue,
            }
        }
    }

    fn create_with(
        &self,
        name: &VolumeName,
        meta: &Metadata,
    ) -> Result<(Volume, bool), VolumeError> {
        if let Some(existing) = self.get(name)? {
            return Ok((existing, false));
        }
        self.ensure_root()?;
        let staging = self.staging_dir(name, meta)?;
        let dir = self.dir(name);
        let renamed = rustix::fs::renameat_with(CWD, &staging, CWD, &dir, RenameFlags::NOREPLACE);
        match renamed {
            Ok(()) => Ok((
                Volume {
                    name: name.clone(),
                    dir,
                    meta: meta.clone(),
                },
                true,
            )),
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                match e {
                    // Someone else created it meanwhile: theirs is the volume.
                    Errno::EXIST | Errno::NOTEMPTY => match self.get(name)? {
                        Some(existing) => Ok((existing, false)),
                        None => Err(io_err(&dir)(Errno::EXIST.into())),
                    },
                    e => Err(io_err(&dir)(e.into())),
                }
            }
        }
    }

    /// A complete volume directory under a temporary name.
    fn staging_dir(&self, name: &VolumeName, meta: &Metadata) -> Result<PathBuf, VolumeError> {
        let staging = self.root.join(format!(
            "{STAGING_PREFIX}{name}-{}",
            random_hex(8).map_err(io_err("/dev/urandom"))?
        ));
        let made = fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .and_then(|()| fs::DirBuilder::new().mode(0o755).create(staging.join(DATA)));
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&staging);
            return Err(io_err(&staging)(e));
        }
        if let Err(e) = write_metadata(&staging, meta) {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        Ok(staging)
    }

    /// The volume of that name, if there is one.
    pub fn get(&self, name: &VolumeName) -> Result<Option<Volume>, VolumeError> {
        let dir = self.dir(name);
        let stat = match fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        if !stat.is_dir() {
            return Ok(None);
        }
        let meta = read_metadata(&dir).unwrap_or_else(|| Metadata {
            created_usec: u64::try_from(stat.mtime()).unwrap_or(0) * 1_000_000,
            driver: local_driver(),
            labels: BTreeMap::new(),
            anonymous: name.looks_anonymous(),
            // Unknown: never fill what may hold data already.
            populated: true,
        });
        Ok(Some(Volume {
            name: name.clone(),
            dir,
            meta,
        }))
    }

    /// The volume of that name, or [`VolumeError::NotFound`].
    pub fn require(&self, name: &VolumeName) -> Result<Volume, VolumeError> {
        self.get(name)?
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))
    }

    /// Every volume, sorted by name.
    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.root)(e)),
        };
        let mut volumes = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.root))?;
            // Leftovers (`.new-…`, `.gone-…`) and strays are not volumes.
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<VolumeName>().ok())
            else {
                continue;
            };
            if let Some(volume) = self.get(&name)? {
                volumes.push(volume);
            }
        }
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(volumes)
    }

    /// Records that a container has mounted the volume with the right to fill it from its
    /// image, so that no later one does.
    pub fn mark_populated(&self, name: &VolumeName) -> Result<(), VolumeError> {
        let volume = self.require(name)?;
        if volume.meta.populated {
            return Ok(());
        }
        let meta = Metadata {
            populated: true,
            ..volume.meta
        };
        write_metadata(&volume.dir, &meta)
    }

    /// Removes a volume unless a container uses it: a running one always keeps it, a stopped
    /// one unless `force`. Returns the space freed.
    pub fn remove(
        &self,
        name: &VolumeName,
        usage: &Usage,
        force: bool,
    ) -> Result<u64, VolumeError> {
        self.require(name)?;
        usage.check_removable(name, force)?;
        self.delete(name)
    }

    /// Removes every volume no container uses: the anonymous ones, or with `all` the named
    /// ones too (Docker's `volume prune` and `volume prune -a`). A volume that a container
    /// whose definition cannot be read may use is kept (and reported).
    pub fn prune(&self, usage: &Usage, all: bool) -> Result<PruneReport, VolumeError> {
        let mut report = PruneReport::default();
        for volume in self.list()? {
            if (!all && !volume.meta.anonymous) || usage.is_used(&volume.name) {
                continue;
            }
            if let Some((container, reason)) = usage.unreadable_user(&volume.name) {
                report
                    .kept
                    .push((volume.name.clone(), container.clone(), reason.to_owned()));
                continue;
            }
            match self.delete(&volume.name) {
                Ok(bytes) => {
                    report.bytes_freed += bytes;
                    report.removed.push(volume.name);
                }
                // Removed by someone else meanwhile.
                Err(VolumeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.sweep_leftovers();
        Ok(report)
    }

    /// Deletes a volume without asking who uses it (the owner's `rm -v`, `--rm`): renamed
    /// away first, so that nobody sees it half deleted. Returns the space freed.
    pub(crate) fn delete(&self, name: &VolumeName) -> Result<u64, VolumeError> {
        let dir = self.dir(name);
        let gone = self.root.join(format!(
            "{REMOVING_PREFIX}{name}-{}",
            random_hex(8).map_err(io_err("/dev/urandom"))?
        ));
        match fs::rename(&dir, &gone) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()));
            }
            Err(e) => return Err(io_err(&dir)(e)),
        }
        let bytes = disk_usage(&gone.join(DATA));
        fs::remove_dir_all(&gone).map_err(io_err(&gone))?;
        Ok(bytes)
    }

    /// Removes what interrupted removals left, and creations interrupted long ago.
    fn sweep_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale_staging = name.starts_with(STAGING_PREFIX)
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age > STAGING_GRACE);
            if name.starts_with(REMOVING_PREFIX) || stale_staging {
                // Another removal may be at it too: whoever finishes, the result is the same.
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// The apparent size of a volume's content.
    pub fn size(&self, volume: &Volume) -> u64 {
        disk_usage(&volume.data_dir())
    }
}

fn read_metadata(dir: &Path) -> Option<Metadata> {
    let bytes = fs::read(dir.join(METADATA)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes `volume.json` in `dir` atomically (temporary file, then rename).
fn write_metadata(dir: &Path, meta: &Metadata) -> Result<(), VolumeError> {
    let path = dir.join(METADATA);
    let json = serde_json::to_vec_pretty(meta).map_err(|source| VolumeError::Corrupt {
        path: path.clone(),
        source,
    })?;
    let tmp = dir.join(format!(
        ".{METADATA}.{}",
        random_hex(8).map_err(io_err("/dev/urandom"))?
    ));
    fs::write(&tmp, &json).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(&path)(e)
    })
}

/// `n` random bytes, in hexadecimal.
fn random_hex(n: usize) -> io::Result<String> {
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A fresh volume name: 256 random bits in hexadecimal, as Docker gives anonymous volumes
/// and `volume create` without a name.
pub fn random_name() -> Result<VolumeName, VolumeError> {
    let hex = random_hex(32).map_err(io_err("/dev/urandom"))?;
    Ok(hex.parse()?)
}

/// The apparent size of everything under `root` (symlinks not followed, each hard-linked file
/// counted once), as Docker reports reclaimed space. Unreadable parts count as empty.
pub fn disk_usage(root: &Path) -> u64 {
    let mut total = 0;
    let mut seen = HashSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.nlink() < 2 || seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(label: &str) -> VolumeStore {
        let dir =
            std::env::temp_dir().join(format!("cleat-volumes-{}-{label}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        VolumeStore::at(dir)
    }

    fn name(s: &str) -> VolumeName {
        s.parse().unwrap()
    }

    fn container(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn unused() -> Usage {
        Usage::default()
    }

    #[test]
    fn create_is_idempotent_and_lays_out_the_volume() {
        let store = scratch("create");
        let labels = BTreeMap::from([("team".to_owned(), "db".to_owned())]);
        let (volume, created) = store.create(&name("data"), labels.clone()).unwrap();
        assert!(created);
        assert!(volume.data_dir().is_dir());
        assert_eq!(volume.data_dir(), store.root().join("data/_data"));
        assert_eq!(volume.meta.labels, labels);
        assert!(!volume.meta.anonymous && !volume.meta.populated);
        assert_eq!(volume.meta.driver, "local");
        fs::write(volume.data_dir().join("keep"), "x").unwrap();
        // A second create finds the first, content and labels and all.
        let (again, created) = store.create(&name("data"), BTreeMap::new()).unwrap();
        assert!(!created);
        assert_eq!(again.meta, volume.meta);
        assert!(again.data_dir().join("keep").exists());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(store.root()), 0o700);
        assert_eq!(mode(&volume.data_dir()), 0o755);
        // Nothing but the volume in the store.
        let names: Vec<_> = fs::read_dir(store.root())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["data"]);
        fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn concurrent_creates_of_one_name_agree() {
        let store = scratch("race");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let labels = BTreeMap::from([("who".to_owned(), i.to_string())]);
                    store.create(&name("shared"), labels).unwrap()
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
        let winner = &results.iter().find(|(_, c)| *c).unwrap().0;
        for (volume, _) in &results {
            assert_eq!(volume.meta, winner.meta);
        }
        assert_eq!(store.list().unwrap().len(), 1);
        assert_eq!(fs::read_dir(store.root()).unwrap().count(), 1, "leftovers");
        fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn anonymous_volumes_get_random_hex_names() {
        let store = scratch("anon");
        let a = store.create_anonymous().unwrap();
        let b = store.create_anonymous().unwrap();
        assert_ne!(a.name, b.name);
        assert!(a.name.looks_anonymous() && a.meta.anonymous);
        assert_eq!(store.list().unwrap().len(), 2);
        fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn list_skips_leftovers_and_survives_damaged_metadata() {
        let store = scratch("list");
        store.create(&name("b"), BTreeMap::new()).unwrap();
        store.create(&name("a"), BTreeMap::new()).unwrap();
        fs::create_dir_all(store.root().join(".new-x-1/_data")).unwrap();
        fs::create_dir_all(store.root().join(".gone-y-1/_data")).unwrap();
        fs::write(store.root().join("stray-file"), "").unwrap();
        fs::write(store.root().join("b").join(METADATA), "{ not json").unwrap();
        let listed = store.list().unwrap();
        let names: Vec<&str> = listed.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        // A volume whose bookkeeping is lost is never filled again.
        assert!(listed[1].meta.populated);
        assert!(store.get(&name("missing")).unwrap().is_none());
        assert!(matches!(
            store.require(&name("missing")),
            Err(VolumeError::NotFound(_))
        ));
        fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn populated_is_recorded() {
        let store = scratch("populated");
        store.create(&name("v"), BTreeMap::new()).unwrap();
        store.mark_populated(&name("v")).unwrap();
        assert!(store.get(&name("v")).unwrap().unwrap().meta.populated);
        store.mark_populated(&name("v")).unwrap();
        fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn remove_reports_space_and_respects_users() {
        let store = scratch("remove");
        let (v, _) = store.create(&name("v"), BTreeMap::new()).unwrap();
        fs::write(v.data_dir().join("a"), vec![0u8; 1000]).unwrap();
        fs::hard_link(v.data_dir().join("a"), v.data_dir().join("a-link")).unwrap();
        fs::create_dir(v.data_dir().join("sub")).unwrap();
        fs::write(v.data_dir().join("sub/b"), vec![0u8; 24]).unwrap();
        std::os::unix::fs::symlink("/etc", v.data_dir().join("out")).unwrap();
        assert_eq!(store.size(&v), 1000 + 24 + 4);

        let mut usage = Usage::default();
        usage.add_user(&container("web"), &name("v"));
        let err = store.remove(&name("v"), &usage, false).unwrap_err();
        assert!(matches!(err, VolumeError::InUse { .. }), "{err}");
        usage.set_running([container("web")].into_iter().collect::<BTreeSet<_>>());
        let err = store.remove(&name("v"), &usage, true).unwrap_err();
        assert!(matches!(err, VolumeError::InUseRunning { .. }), "{err}");
        assert!(v.data_dir().join("a").exists());

        assert_eq!(store.remove(&name("v"), &unused(), false).unwrap(), 1028);
        assert!(store.get(&name("v")).unwrap().is_none());
        assert!(matches!(
            store.remove(&name("v"), &unused(), false),
            Err(VolumeError::NotFound(_))
        ));
        assert_eq!(fs::read_dir(store.root()).unwrap().count(), 0);
        fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn forced_removal_of_a_stopped_users_volume() {
        let store = scratch("force");
        store.create(&name("v"), BTreeMap::new()).unwrap();
        let mut usage = Usage::default();
        usage.add_user(&container("web"), &name("v"));
        store.remove(&name("v"), &usage, true).unwrap();
        assert!(store.get(&name("v")).unwrap().is_none());
        fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn prune_removes_unused_anonymous_volumes_or_all_unused_ones() {
        let store = scratch("prune");
        let used_anon = store.create_anonymous().unwrap();
        let free_anon = store.create_anonymous().unwrap();
        fs::write(free_anon.data_dir().join("f"), "12345").unwrap();
        store.create(&name("named-used"), BTreeMap::new()).unwrap();
        store.create(&name("named-free"), BTreeMap::new()).unwrap();
        fs::create_dir_all(store.root().join(".gone-old-1/_data")).unwrap();
        let mut usage = Usage::default();
        usage.add_user(&container("a"), &used_anon.name);
        usage.add_user(&container("b"), &name("named-used"));

        let report = store.prune(&usage, false).unwrap();
        assert_eq!(report.removed, std::slice::from_ref(&free_anon.name));
        assert_eq!(report.bytes_freed, 5);
        assert!(!store.root().join(".gone-old-1").exists());

        let report = store.prune(&usage, true).unwrap();
        assert_eq!(report.removed, [name("named-free")]);
        let left: Vec<_> = store.list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(left, {
            let mut l = vec![used_anon.name.clone(), name("named-used")];
            l.sort();
            l
        });

        let mut unknown = Usage::default();
        unknown.add_unreadable(&container("broken"), "web.toml:1:1: bad".into());
        let report = store.prune(&unknown, true).unwrap();
        assert!(report.removed.is_empty());
        assert_eq!(report.kept.len(), 2);
        assert_eq!(report.kept[0].1, container("broken"));
        assert_eq!(
            store.list().unwrap().len(),
            2,
            "kept while a container may use them"
        );
        fs::remove_dir_all(store.root()).unwrap();
    }
}
