//! Small blobs (`blobs/sha256/<hex>`): manifests, indexes and image configurations, whole in
//! memory. Verified against their digest before they are written, and again when read.

use std::fs;
use std::io;
use std::path::PathBuf;

use super::{BLOBS, Store, StoreError, io_at};
use crate::image::Digest;

impl Store {
    pub(super) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(BLOBS).join(digest.hex())
    }

    /// Stores `bytes` as the blob `digest`, if they hash to it. Storing a blob that is there
    /// already does nothing.
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let actual = Digest::of(bytes);
        if actual != *digest {
            return Err(StoreError::BlobDigest {
                expected: digest.clone(),
                actual,
            });
        }
        if self.has_blob(digest) {
            return Ok(());
        }
        self.write_atomically(&self.blob_path(digest), bytes, false)
    }

    /// The blob `digest`, if the store has it intact. A blob that does not hash to its name
    /// (damaged on disk) is removed and reads as absent, so that the next pull fetches it
    /// again.
    pub fn get_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        if Digest::of(&bytes) != *digest {
            let _ = fs::remove_file(&path);
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The size of the blob `digest` on disk, if the store has it.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest)).ok().map(|m| m.len())
    }

    /// Every blob with its size.
    pub(super) fn list_blobs(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        let dir = self.root.join(BLOBS);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            let Some(digest) = digest_of_name(&entry.file_name()) else {
                continue;
            };
            let size = entry.metadata().map_or(0, |m| m.len());
            out.push((digest, size));
        }
        Ok(out)
    }
}

/// The digest a store file name (64 hex digits) stands for.
pub(super) fn digest_of_name(name: &std::ffi::OsStr) -> Option<Digest> {
    format!("sha256:{}", name.to_str()?).parse().ok()
}
