//! The image store: content-addressed, shared by every image and container, safe against
//! concurrent pulls and against a pull killed at any point. See DESIGN.md decision 7.
//!
//! ```text
//! ROOT/                       mode 0700 (/var/lib/cleat in production)
//!   blobs/sha256/<hex>        manifests, indexes, configurations: verified before written,
//!                             and again when read
//!   layers/sha256/<hex>/      one unpacked layer, keyed by its diff_id (so the same content
//!     fs/                     compressed differently is stored once): fs/ is the tree, an
//!     layer.json              overlay lower directory; layer.json says where it came from
//!   refs/<encoded reference>  reference → manifest digest, platform, pull time
//!   locks/<hex>, locks/gc     flock(2) files (see `lock`)
//!   tmp/<pid>.<random>        staging: everything is written here, then renamed into place
//! ```
//!
//! Everything is on one file system, so a rename is atomic: a blob, a layer or a reference is
//! either entirely there or not at all. A layer is unpacked under `tmp/`, checked against both
//! its digests, and only then renamed into `layers/`; any failure removes the staging
//! directory, and a process killed half-way leaves only staging, which the next
//! [`Store::open`] removes. Two processes that want the same layer serialise on its lock
//! ([`Store::lock_layer`]): the second finds it present and fetches nothing. Garbage collection
//! ([`Store::prune`]) removes what no reference (and nothing the caller keeps) reaches; it
//! waits until no other store is open, so that it never collects what a pull in progress has
//! brought in but not yet referenced, and it never touches a locked layer.
//!
//! Durability: the store is safe against processes dying, not against the machine losing
//! power (there is no fsync per file, which would make unpacking several times slower).
//! References are synced; blobs are verified when read, and a damaged one reads as absent.

mod blobs;
mod layers;
mod lock;
mod prune;
mod refs;
mod staging;
#[cfg(test)]
mod tests;

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use layers::LayerInfo;
pub use lock::LayerLock;
pub use prune::{PruneReport, Removed};
pub use refs::ImageRef;

use super::Digest;
use super::unpack::UnpackError;
use lock::GcLock;
use staging::Staged;

/// The store of a system-wide cleat.
pub const SYSTEM_ROOT: &str = "/var/lib/cleat";

const BLOBS: &str = "blobs/sha256";
const LAYERS: &str = "layers/sha256";
const REFS: &str = "refs";
const LOCKS: &str = "locks";
const TMP: &str = "tmp";
const GC_LOCK: &str = "gc";

/// An open image store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    gc: GcLock,
    /// One prune at a time through this handle (they would share the exclusive hold).
    pruning: Mutex<()>,
}

/// Why a store operation failed. Whatever failed, the store is as it was before the call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {expected}: the data hashes to {actual}, so it was not stored")]
    BlobDigest { expected: Digest, actual: Digest },
    #[error(
        "layer {expected}: the downloaded blob hashes to {actual}, not to the digest the manifest names; the registry (or a mirror or proxy in between) sent other content. Nothing was stored: pull again, or check the registry"
    )]
    LayerDigest { expected: Digest, actual: Digest },
    #[error(
        "layer {layer}: its content hashes to {actual}, not to the diff_id {expected} the image configuration names; the image is inconsistent. Nothing was stored"
    )]
    DiffId {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {layer}: {source}")]
    Unpack {
        layer: Digest,
        #[source]
        source: UnpackError,
    },
    #[error(
        "layer {layer}: the file system of {root} is full ({source}). Nothing was stored: free some space (cleat image prune removes unused images) and pull again"
    )]
    NoSpace {
        layer: Digest,
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: damaged store record ({source}); remove the file and pull the image again")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0:?} is not a valid image reference to store")]
    Reference(String),
    #[error(
        "the image store {0} is in use by another cleat process (a pull, or a container starting); try again once it has finished"
    )]
    Busy(PathBuf),
}

/// Maps an I/O error about `path` to a [`StoreError`].
fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Store {
    /// Opens the store at `root`, creating its layout (the root private to root, mode 0700),
    /// and removes the staging that dead processes left behind. Waits while a prune runs.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(io_at(&root))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).map_err(io_at(&root))?;
        for dir in [BLOBS, LAYERS, REFS, LOCKS, TMP] {
            let path = root.join(dir);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(io_at(&path))?;
        }
        let gc_path = root.join(LOCKS).join(GC_LOCK);
        let gc = GcLock::shared(gc_path.clone()).map_err(io_at(&gc_path))?;
        staging::clean(&root.join(TMP));
        Ok(Store {
            root,
            gc,
            pruning: Mutex::new(()),
        })
    }

    /// Opens a store that already exists, changing nothing (no directories created, no staging
    /// cleaned): for readers such as the systemd generator, which runs early at boot and must
    /// not write. `None` if there is no store at `root`.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Option<Store>, StoreError> {
        let root = root.into();
        let gc_path = root.join(LOCKS).join(GC_LOCK);
        if !gc_path.is_file() {
            return Ok(None);
        }
        let gc = GcLock::shared(gc_path.clone()).map_err(io_at(&gc_path))?;
        Ok(Some(Store {
            root,
            gc,
            pruning: Mutex::new(()),
        }))
    }

    /// The store of a system-wide cleat, `/var/lib/cleat`.
    pub fn system() -> Result<Store, StoreError> {
        Store::open(SYSTEM_ROOT)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp(&self) -> PathBuf {
        self.root.join(TMP)
    }

    fn locks(&self) -> PathBuf {
        self.root.join(LOCKS)
    }

    fn refs_dir(&self) -> PathBuf {
        self.root.join(REFS)
    }

    /// Records that `reference` now names the manifest `digest` for `platform`
    /// (`os/arch[/variant]`), pulled now. Replaces what it named before, atomically.
    pub fn set_ref(
        &self,
        reference: &str,
        digest: &Digest,
        platform: &str,
    ) -> Result<(), StoreError> {
        self.put_ref(&ImageRef {
            reference: reference.to_owned(),
            digest: digest.clone(),
            platform: platform.to_owned(),
            pulled_usec: crate::time::now_usec(),
        })
    }

    /// Writes a reference record as it is.
    pub fn put_ref(&self, record: &ImageRef) -> Result<(), StoreError> {
        if record.reference.is_empty() || record.reference.contains('\0') {
            return Err(StoreError::Reference(record.reference.clone()));
        }
        let path = self.refs_dir().join(refs::file_name(&record.reference));
        let mut json = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        json.push(b'\n');
        // Durable: a reference is the one record that cannot be recomputed.
        self.write_atomically(&path, &json, true)
    }

    /// What `reference` names, if anything.
    pub fn get_ref(&self, reference: &str) -> Result<Option<ImageRef>, StoreError> {
        let path = self.refs_dir().join(refs::file_name(reference));
        let Some(record) = read_json::<ImageRef>(&path)? else {
            return Ok(None);
        };
        Ok((record.reference == reference).then_some(record))
    }

    /// Every reference, sorted.
    pub fn list_refs(&self) -> Result<Vec<ImageRef>, StoreError> {
        let dir = self.refs_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            let name = entry.file_name();
            if !name.to_str().is_some_and(refs::is_ref_file) {
                continue;
            }
            if let Some(record) = read_json::<ImageRef>(&entry.path())? {
                out.push(record);
            }
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Forgets `reference`; `false` if it named nothing. The image's blobs and layers stay
    /// until [`Store::prune`].
    pub fn remove_ref(&self, reference: &str) -> Result<bool, StoreError> {
        let path = self.refs_dir().join(refs::file_name(reference));
        match self.get_ref(reference)? {
            None => Ok(false),
            Some(_) => match fs::remove_file(&path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_at(&path)(e)),
            },
        }
    }

    /// Writes `bytes` to `path` through a staged file, so that `path` has either its old or
    /// its new content; `durable` also waits until the data is on disk.
    fn write_atomically(&self, path: &Path, bytes: &[u8], durable: bool) -> Result<(), StoreError> {
        let tmp = self.tmp();
        let staged = Staged::new_file(&tmp).map_err(io_at(&tmp))?;
        let mut file = staged.handle();
        file.write_all(bytes).map_err(io_at(staged.path()))?;
        if durable {
            file.sync_all().map_err(io_at(staged.path()))?;
        }
        staged.commit(path).map_err(io_at(path))?;
        Ok(())
    }
}

/// Reads a JSON record; `None` if the file does not exist.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StoreError::Corrupt {
            path: path.to_owned(),
            source,
        })
}
