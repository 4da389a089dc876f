//! Unpacked layers (`layers/sha256/<diff_id hex>/`): the tree in `fs/`, an overlay lower
//! directory, and `layer.json`. A layer is unpacked into a staging directory, checked against
//! the manifest's digest (of the compressed blob) and the configuration's diff_id (of the
//! tar stream), and renamed into place only if both match.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::lock::{self, LayerLock, Wait};
use super::staging::Staged;
use super::{LAYERS, Store, StoreError, io_at, read_json};
use crate::image::unpack::{self, EntryError, UnpackError, Unpacked};
use crate::image::{Digest, LayerDescriptor};

/// The tree of a layer, inside its directory.
const TREE: &str = "fs";
/// The record of a layer, inside its directory.
const RECORD: &str = "layer.json";

/// What the store knows about an unpacked layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LayerInfo {
    /// The digest of the uncompressed tar stream, the layer's identity here.
    pub diff_id: Digest,
    /// Bytes of file content in the tree (a hard-linked file once): what `images` shows.
    pub size: u64,
    /// The blob it was unpacked from (the manifest's layer digest), its size and media type.
    pub compressed_digest: Digest,
    pub compressed_size: u64,
    pub media_type: String,
    /// When it was unpacked, in microseconds since the epoch.
    pub unpacked_usec: u64,
}

impl Store {
    /// The directory of a layer (its tree and its record).
    fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join(LAYERS).join(diff_id.hex())
    }

    /// The unpacked tree of a layer: the overlay lower directory. (Whether it exists is
    /// [`Store::has_layer`]'s business.)
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layer_path(diff_id).join(TREE)
    }

    /// Whether the layer is unpacked in the store (complete: layers appear atomically).
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_path(diff_id).join(RECORD).is_file()
    }

    /// The record of a layer, if the store has it.
    pub fn layer_info(&self, diff_id: &Digest) -> Result<Option<LayerInfo>, StoreError> {
        read_json(&self.layer_path(diff_id).join(RECORD))
    }

    /// Bytes of file content of the layers the store has among `diff_ids` (an image's size).
    pub fn layers_size(&self, diff_ids: &[Digest]) -> Result<u64, StoreError> {
        let mut total = 0;
        for diff_id in diff_ids {
            total += self.layer_info(diff_id)?.map_or(0, |info| info.size);
        }
        Ok(total)
    }

    /// Every layer's record.
    pub fn list_layers(&self) -> Result<Vec<LayerInfo>, StoreError> {
        let dir = self.root.join(LAYERS);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            let Some(diff_id) = super::blobs::digest_of_name(&entry.file_name()) else {
                continue;
            };
            if let Some(info) = self.layer_info(&diff_id)? {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// Takes the layer's lock, waiting while another thread or process holds it (a blocking
    /// call: from async code, use `spawn_blocking`). Whoever holds it is the only one fetching
    /// or removing that layer: take it, check [`Store::has_layer`], and fetch and
    /// [`Store::unpack_layer_into_store`] only if the layer is still missing.
    pub fn lock_layer(&self, diff_id: &Digest) -> Result<LayerLock, StoreError> {
        let locks = self.locks();
        let file = lock::lock(&locks, diff_id.hex(), Wait::Yes)
            .map_err(io_at(&locks))?
            .ok_or_else(|| io_at(&locks)(io::Error::other("lock not taken")))?;
        Ok(LayerLock::new(diff_id.clone(), file))
    }

    /// [`Store::lock_layer`] without waiting: `None` if someone holds it.
    pub fn try_lock_layer(&self, diff_id: &Digest) -> Result<Option<LayerLock>, StoreError> {
        let locks = self.locks();
        Ok(lock::lock(&locks, diff_id.hex(), Wait::No)
            .map_err(io_at(&locks))?
            .map(|file| LayerLock::new(diff_id.clone(), file)))
    }

    /// Unpacks the layer `blob` (described by the manifest's `descriptor`) and commits it as
    /// `expected_diff_id`, in one streaming pass; `progress` gets the number of blob bytes of
    /// each block read. The caller should hold the layer's lock ([`Store::lock_layer`]), so
    /// that the work is done once; without it the result is still correct (the first commit
    /// wins, the other copy is thrown away). A layer already present is returned as it is,
    /// without reading `blob`.
    ///
    /// On any failure (a digest mismatch, a truncated or hostile stream, a full disk, the
    /// reader failing) nothing is left behind.
    pub fn unpack_layer_into_store(
        &self,
        blob: impl Read,
        descriptor: &LayerDescriptor,
        expected_diff_id: &Digest,
        progress: &mut dyn FnMut(u64),
    ) -> Result<LayerInfo, StoreError> {
        if let Some(info) = self.layer_info(expected_diff_id)? {
            return Ok(info);
        }
        let tmp = self.tmp();
        let staged = Staged::new_dir(&tmp).map_err(io_at(&tmp))?;
        let tree = staged.path().join(TREE);
        make_tree_root(&tree).map_err(io_at(&tree))?;
        let unpacked = unpack::unpack_layer(blob, descriptor.compression, &tree, progress)
            .map_err(|source| self.unpack_failure(descriptor, source))?;
        let info = verify(descriptor, expected_diff_id, &unpacked)?;
        let record = staged.path().join(RECORD);
        write_record(&record, &info).map_err(io_at(&record))?;
        let path = self.layer_path(expected_diff_id);
        if staged.commit(&path).map_err(io_at(&path))? {
            Ok(info)
        } else {
            // Someone else committed it meanwhile (without holding the lock).
            Ok(self.layer_info(expected_diff_id)?.unwrap_or(info))
        }
    }

    fn unpack_failure(&self, descriptor: &LayerDescriptor, source: UnpackError) -> StoreError {
        match source {
            UnpackError::Entry {
                cause: EntryError::Io { source, .. } | EntryError::Xattr { source, .. },
                ..
            } if is_full(&source) => StoreError::NoSpace {
                layer: descriptor.digest.clone(),
                root: self.root.clone(),
                source,
            },
            source => StoreError::Unpack {
                layer: descriptor.digest.clone(),
                source,
            },
        }
    }

    /// Removes a layer whose lock the caller holds, atomically (renamed into `tmp/`, then
    /// deleted); returns the size its record gave, or `None` if it was not there.
    pub(super) fn remove_layer(&self, lock: &LayerLock) -> Result<Option<u64>, StoreError> {
        let diff_id = lock.diff_id();
        let path = self.layer_path(diff_id);
        let size = self
            .layer_info(diff_id)
            .ok()
            .flatten()
            .map_or(0, |info| info.size);
        let tmp = self.tmp();
        match Staged::adopt_dir(&path, &tmp) {
            // Dropping it deletes it.
            Ok(_doomed) => Ok(Some(size)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at(&path)(e)),
        }
    }
}

fn is_full(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// The layer's tree root: mode 0755 whatever the umask (it is the container's `/` unless the
/// layer says otherwise).
fn make_tree_root(tree: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o755).create(tree)?;
    fs::set_permissions(tree, fs::Permissions::from_mode(0o755))
}

/// The record of an unpacked layer if it is the one that was asked for.
fn verify(
    descriptor: &LayerDescriptor,
    expected_diff_id: &Digest,
    unpacked: &Unpacked,
) -> Result<LayerInfo, StoreError> {
    if unpacked.compressed_digest != descriptor.digest {
        return Err(StoreError::LayerDigest {
            expected: descriptor.digest.clone(),
            actual: unpacked.compressed_digest.clone(),
        });
    }
    if unpacked.diff_id != *expected_diff_id {
        return Err(StoreError::DiffId {
            layer: descriptor.digest.clone(),
            expected: expected_diff_id.clone(),
            actual: unpacked.diff_id.clone(),
        });
    }
    Ok(LayerInfo {
        diff_id: unpacked.diff_id.clone(),
        size: unpacked.content_size,
        compressed_digest: unpacked.compressed_digest.clone(),
        compressed_size: unpacked.compressed_size,
        media_type: descriptor.media_type.clone(),
        unpacked_usec: crate::time::now_usec(),
    })
}

fn write_record(path: &Path, info: &LayerInfo) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(info).map_err(io::Error::other)?;
    json.push(b'\n');
    fs::File::create(path)?.write_all(&json)
}
