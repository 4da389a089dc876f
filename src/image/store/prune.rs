//! Garbage collection: removing the blobs and layers that no reference, and no manifest the
//! caller keeps (those of existing containers), reaches.
//!
//! Reachability follows the content: an index lists manifests, a manifest its configuration,
//! a configuration its layers' diff_ids. An index is also kept while it lists a kept manifest
//! (a reference records the platform's manifest, not the index it was chosen from).
//!
//! Pruning holds the store's garbage-collection lock exclusively: it waits (a while) for the
//! other open stores to close, so that what a pull has brought in but not referenced yet is
//! never collected; and it removes a layer only while holding that layer's lock, skipping
//! layers that someone holds.

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::lock::{self, Wait};
use super::{Store, StoreError, io_at};
use crate::image::Digest;

/// How long a prune waits for other cleat processes to close the store.
const GC_WAIT: Duration = Duration::from_secs(30);
const GC_POLL: Duration = Duration::from_millis(50);

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: Vec<Removed>,
    /// Bytes of blobs and of layer content removed.
    pub bytes_freed: u64,
    /// Unreachable layers left alone because someone holds their lock (a pull in progress).
    pub skipped: Vec<Digest>,
}

/// One thing a prune removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Ref(String),
    Blob(Digest),
    Layer(Digest),
}

/// The links of an index, a manifest or a configuration (whichever it is).
#[derive(Deserialize, Default)]
struct Links {
    #[serde(default)]
    manifests: Vec<Link>,
    #[serde(default)]
    config: Option<Link>,
    #[serde(default)]
    layers: Vec<Link>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

impl Links {
    fn parse(bytes: &[u8]) -> Links {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    fn manifests(&self) -> impl Iterator<Item = Digest> + '_ {
        self.manifests.iter().filter_map(Link::digest)
    }

    /// Blobs a manifest points at (its configuration; its layers are not stored as blobs, but
    /// a foreign layout might).
    fn blobs(&self) -> impl Iterator<Item = Digest> + '_ {
        self.config
            .iter()
            .chain(&self.layers)
            .filter_map(Link::digest)
    }

    fn diff_ids(&self) -> impl Iterator<Item = Digest> + '_ {
        self.rootfs
            .iter()
            .flat_map(|r| &r.diff_ids)
            .filter_map(|d| d.parse().ok())
    }
}

impl Link {
    fn digest(&self) -> Option<Digest> {
        self.digest.as_deref()?.parse().ok()
    }
}

/// What is reachable.
#[derive(Default)]
struct Live {
    blobs: HashSet<Digest>,
    layers: HashSet<Digest>,
}

impl Store {
    /// Removes what is unreachable from the references and from `keep_manifests` (the
    /// manifests of existing containers). With `remove_unused_refs` (`image prune -a`),
    /// first removes the references whose manifest is not in `keep_manifests`.
    ///
    /// Fails with [`StoreError::Busy`] if other cleat processes keep the store open for
    /// longer than 30 seconds.
    pub fn prune(
        &self,
        keep_manifests: &HashSet<Digest>,
        remove_unused_refs: bool,
    ) -> Result<PruneReport, StoreError> {
        let _one_at_a_time = self
            .pruning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.hold_gc_exclusively()?;
        let result = self.prune_exclusively(keep_manifests, remove_unused_refs);
        let shared = self.gc.share().map_err(io_at(self.gc.path()));
        let report = result?;
        shared?;
        Ok(report)
    }

    fn hold_gc_exclusively(&self) -> Result<(), StoreError> {
        let deadline = Instant::now() + GC_WAIT;
        loop {
            if self.gc.try_exclusive().map_err(io_at(self.gc.path()))? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.gc.share().map_err(io_at(self.gc.path()))?;
                return Err(StoreError::Busy(self.root.clone()));
            }
            std::thread::sleep(GC_POLL);
        }
    }

    fn prune_exclusively(
        &self,
        keep_manifests: &HashSet<Digest>,
        remove_unused_refs: bool,
    ) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        let mut roots: Vec<Digest> = keep_manifests.iter().cloned().collect();
        for record in self.list_refs()? {
            if remove_unused_refs && !keep_manifests.contains(&record.digest) {
                if self.remove_ref(&record.reference)? {
                    report.removed.push(Removed::Ref(record.reference));
                }
            } else {
                roots.push(record.digest);
            }
        }
        let live = self.reachable(roots)?;
        for (digest, size) in self.list_blobs()? {
            if live.blobs.contains(&digest) {
                continue;
            }
            let path = self.blob_path(&digest);
            match fs::remove_file(&path) {
                Ok(()) => {
                    report.bytes_freed += size;
                    report.removed.push(Removed::Blob(digest));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
        for diff_id in self.layer_ids()? {
            if live.layers.contains(&diff_id) {
                continue;
            }
            let Some(lock) = self.try_lock_layer(&diff_id)? else {
                report.skipped.push(diff_id);
                continue;
            };
            if let Some(size) = self.remove_layer(&lock)? {
                report.bytes_freed += size;
                report.removed.push(Removed::Layer(diff_id.clone()));
            }
            let locks = self.locks();
            lock::remove(&locks, diff_id.hex()).map_err(io_at(&locks))?;
        }
        self.remove_stale_locks(&live)?;
        Ok(report)
    }

    /// Blobs and layers reachable from `roots` (manifest or index digests).
    fn reachable(&self, roots: Vec<Digest>) -> Result<Live, StoreError> {
        let mut live = Live::default();
        let mut queue = roots;
        while let Some(digest) = queue.pop() {
            if !live.blobs.insert(digest.clone()) {
                continue;
            }
            let Some(bytes) = self.get_blob(&digest)? else {
                continue;
            };
            let links = Links::parse(&bytes);
            queue.extend(links.manifests());
            queue.extend(links.blobs());
            live.layers.extend(links.diff_ids());
        }
        // Indexes that list a live manifest.
        for (digest, _) in self.list_blobs()? {
            if live.blobs.contains(&digest) {
                continue;
            }
            if let Some(bytes) = self.get_blob(&digest)? {
                if Links::parse(&bytes)
                    .manifests()
                    .any(|m| live.blobs.contains(&m))
                {
                    live.blobs.insert(digest);
                }
            }
        }
        Ok(live)
    }

    /// The diff_ids of the layer directories (complete or not).
    fn layer_ids(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.root.join(super::LAYERS);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            if let Some(digest) = super::blobs::digest_of_name(&entry.file_name()) {
                out.push(digest);
            }
        }
        Ok(out)
    }

    /// Lock files of layers that are not in the store (pulls that failed), unless held.
    fn remove_stale_locks(&self, live: &Live) -> Result<(), StoreError> {
        let locks = self.locks();
        for entry in fs::read_dir(&locks).map_err(io_at(&locks))? {
            let entry = entry.map_err(io_at(&locks))?;
            let Some(diff_id) = super::blobs::digest_of_name(&entry.file_name()) else {
                continue;
            };
            if live.layers.contains(&diff_id) || self.has_layer(&diff_id) {
                continue;
            }
            // Deleted only while held (see `lock`).
            if let Some(_held) =
                lock::lock(&locks, diff_id.hex(), Wait::No).map_err(io_at(&locks))?
            {
                lock::remove(&locks, diff_id.hex()).map_err(io_at(&locks))?;
            }
        }
        Ok(())
    }
}
