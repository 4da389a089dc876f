//! A pull: resolve the reference to a manifest for the platform, fetch the configuration, and
//! bring every layer into the store — all layers at once, each in one pass (download → hash →
//! decompress → hash → unpack) on a thread of its own, fed through a small bounded channel so
//! no layer is ever held in memory. Layers already in the store are skipped, and a layer that
//! another pull is unpacking right now is waited for, not fetched twice. The manifest,
//! configuration and reference are recorded only when every layer is in: a failed pull leaves
//! no image behind (verified layers it finished stay, for the next attempt).

use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::config::{self, ParsedConfig};
use super::manifest::{self, Fetched, Manifest, Platform};
use super::progress::{LayerCounter, LayerState, Progress, Snapshot};
use super::reference::Reference;
use super::registry::{Client, ClientOptions, Endpoint, RegistryError};
use super::store::{ImageRef, Store, StoreError};
use super::{Digest, LayerDescriptor};
use crate::spec::PullPolicy;

/// The largest image configuration accepted.
const MAX_CONFIG_SIZE: u64 = 16 << 20;
/// Chunks in flight between a layer's download and its unpacking thread.
const CHANNEL_CHUNKS: usize = 16;
/// Whole-layer attempts when a download breaks off midway.
const LAYER_ATTEMPTS: u32 = 3;
/// How often the progress display is refreshed.
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{reference}: {source}")]
    Config {
        reference: String,
        #[source]
        source: config::ConfigError,
    },
    #[error(
        "{reference}: the manifest lists {layers} layers but the configuration {diff_ids} diff_ids"
    )]
    LayerCount {
        reference: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("{reference}: the image is for {found}, not {wanted}")]
    WrongPlatform {
        reference: String,
        found: String,
        wanted: String,
    },
    #[error(
        "image {0} is not in the store, and the pull policy is never: pull it first (cleat pull {0})"
    )]
    NotPresent(String),
    #[error(
        "image {reference}: the store is damaged: {detail}; remove the image (cleat rmi -f {reference}) and pull it again"
    )]
    Damaged { reference: String, detail: String },
    #[error("{reference}: downloading layer {layer}: {source}")]
    Download {
        reference: String,
        layer: Digest,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

impl From<RegistryError> for PullError {
    fn from(e: RegistryError) -> PullError {
        PullError::Registry(Box::new(e))
    }
}

/// An image in the store, ready to be a container's root.
#[derive(Debug, Clone)]
pub struct LocalImage {
    pub reference: Reference,
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    pub config_digest: Digest,
    pub config: ParsedConfig,
    /// The unpacked layers' directories, bottom first (as the manifest lists them).
    pub layer_dirs: Vec<std::path::PathBuf>,
}

/// How a pull ended.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: LocalImage,
    /// Layers fetched by this pull (0: the image was complete already).
    pub downloaded: usize,
    /// The reference pointed at another manifest before this pull.
    pub updated: bool,
}

/// Makes sure the image is in the store, as the pull policy says: `missing` pulls only when it
/// is not there, `always` pulls (following a tag that moved), `never` only looks.
pub async fn ensure(
    store: &Arc<Store>,
    reference: &Reference,
    platform: &Platform,
    policy: PullPolicy,
    progress: &dyn Progress,
) -> Result<LocalImage, PullError> {
    if policy != PullPolicy::Always {
        if let Some(image) = local(store, reference)? {
            return Ok(image);
        }
        if policy == PullPolicy::Never {
            return Err(PullError::NotPresent(reference.to_string()));
        }
    }
    let client = Client::from_system(ClientOptions::default())?;
    progress.line(&format!("Pulling {reference}"));
    Ok(pull(&client, store, reference, platform, progress)
        .await?
        .image)
}

/// The image `reference` (as written in a definition) names in the system store, if the
/// store has it, read without changing anything: no pull, no store created, no staging
/// cleaned. For readers that must not write (the generator, `cleat config check`).
pub fn find_in_system_store(reference: &str) -> Option<LocalImage> {
    let reference = crate::image::parse_reference(reference).ok()?;
    let store = Store::open_existing(crate::image::store::SYSTEM_ROOT).ok()??;
    let digest = store.get_ref(&reference.to_string()).ok()??.digest;
    load_manifest(&store, &reference, &digest).ok()
}

/// Loads an image of the store by manifest digest.
pub fn load_manifest(
    store: &Store,
    reference: &Reference,
    digest: &Digest,
) -> Result<LocalImage, PullError> {
    let damaged = |detail: String| PullError::Damaged {
        reference: reference.to_string(),
        detail,
    };
    let bytes = store
        .get_blob(digest)?
        .ok_or_else(|| damaged(format!("manifest {digest} is missing")))?;
    let manifest = match manifest::parse(&bytes, None) {
        Ok(Fetched::Manifest(m)) => m,
        Ok(Fetched::Index(_)) => {
            return Err(damaged(format!(
                "{digest} is an index, not an image manifest"
            )));
        }
        Err(e) => return Err(damaged(e.to_string())),
    };
    let config_bytes = store.get_blob(&manifest.config.digest)?.ok_or_else(|| {
        damaged(format!(
            "configuration {} is missing",
            manifest.config.digest
        ))
    })?;
    let config = config::parse(&config_bytes).map_err(|source| PullError::Config {
        reference: reference.to_string(),
        source,
    })?;
    check_layer_count(reference, &manifest, &config)?;
    let mut layer_dirs = Vec::with_capacity(config.diff_ids.len());
    for diff_id in &config.diff_ids {
        if !store.has_layer(diff_id) {
            return Err(damaged(format!("layer {diff_id} is missing")));
        }
        layer_dirs.push(store.layer_dir(diff_id));
    }
    Ok(LocalImage {
        reference: reference.clone(),
        manifest_digest: digest.clone(),
        config_digest: manifest.config.digest.clone(),
        manifest,
        config,
        layer_dirs,
    })
}

/// The image a reference names in the store, if it is there.
pub fn local(store: &Store, reference: &Reference) -> Result<Option<LocalImage>, PullError> {
    let digest = match &reference.digest {
        Some(d) if store.get_blob(d)?.is_some() => Some(d.clone()),
        Some(_) => None,
        None => store
            .get_ref(&reference.to_string())?
            .map(|r: ImageRef| r.digest),
    };
    match digest {
        Some(d) => match load_manifest(store, reference, &d) {
            Ok(image) => Ok(Some(image)),
            // A reference whose layers were pruned underneath is simply not there.
            Err(PullError::Damaged { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        None => Ok(None),
    }
}

fn check_layer_count(
    reference: &Reference,
    manifest: &Manifest,
    config: &ParsedConfig,
) -> Result<(), PullError> {
    if manifest.layers.len() != config.diff_ids.len() {
        return Err(PullError::LayerCount {
            reference: reference.to_string(),
            layers: manifest.layers.len(),
            diff_ids: config.diff_ids.len(),
        });
    }
    Ok(())
}

/// Pulls `reference` for `platform` into `store`.
pub async fn pull(
    client: &Client,
    store: &Arc<Store>,
    reference: &Reference,
    platform: &Platform,
    progress: &dyn Progress,
) -> Result<Pulled, PullError> {
    let resolved = client.resolve(reference, platform).await?;
    for failure in &resolved.mirror_failures {
        progress.line(&format!("mirror skipped: {failure}"));
    }
    let config_bytes = match store.get_blob(&resolved.manifest.config.digest)? {
        Some(b) => b,
        None => {
            client
                .blob_bytes(
                    &resolved.endpoint,
                    reference.repository_path(),
                    &resolved.manifest.config.digest,
                    MAX_CONFIG_SIZE,
                )
                .await?
        }
    };
    let config = config::parse(&config_bytes).map_err(|source| PullError::Config {
        reference: reference.to_string(),
        source,
    })?;
    check_layer_count(reference, &resolved.manifest, &config)?;
    if resolved.platform.is_none() && !config.os.is_empty() {
        // A single manifest (no index): its configuration says what it is for.
        let found = Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
        };
        if found.normalized().os != platform.normalized().os
            || found.normalized().architecture != platform.normalized().architecture
        {
            return Err(PullError::WrongPlatform {
                reference: reference.to_string(),
                found: found.to_string(),
                wanted: platform.to_string(),
            });
        }
    }

    let layers: Vec<LayerCounter> = resolved
        .manifest
        .layers
        .iter()
        .map(|l| LayerCounter::new(l.digest.short().to_owned(), Some(l.size)))
        .collect();
    let layers = Arc::new(layers);
    let started = Instant::now();
    let reference_text = reference.to_string();
    let downloaded = {
        let mut tasks: FuturesUnordered<_> = resolved
            .manifest
            .layers
            .iter()
            .zip(&config.diff_ids)
            .enumerate()
            .map(|(index, (descriptor, diff_id))| {
                LayerJob {
                    client,
                    store,
                    endpoint: &resolved.endpoint,
                    reference,
                    descriptor,
                    diff_id,
                    counters: layers.clone(),
                    index,
                }
                .fetch()
            })
            .collect();
        let mut ticker = tokio::time::interval(TICK);
        let mut downloaded = 0;
        let mut failure: Option<PullError> = None;
        while !tasks.is_empty() {
            tokio::select! {
                done = tasks.next() => match done {
                    Some(Ok(true)) => downloaded += 1,
                    Some(Ok(false)) | None => {}
                    Some(Err(e)) => {
                        // The first failure decides; the others are dropped (their staging is
                        // removed by the store).
                        failure.get_or_insert(e);
                        break;
                    }
                },
                _ = ticker.tick() => {
                    progress.tick(&Snapshot { reference: &reference_text, layers: &layers, elapsed: started.elapsed() }, false);
                }
            }
        }
        progress.tick(
            &Snapshot {
                reference: &reference_text,
                layers: &layers,
                elapsed: started.elapsed(),
            },
            true,
        );
        if let Some(e) = failure {
            return Err(e);
        }
        downloaded
    };

    // Every layer is in: record the image, reference last.
    if let Some(index) = &resolved.index {
        store.put_blob(&index.digest, &index.bytes)?;
    }
    store.put_blob(&resolved.manifest.config.digest, &config_bytes)?;
    store.put_blob(&resolved.digest, &resolved.manifest_bytes)?;
    let previous = store.get_ref(&reference_text)?;
    let updated = previous
        .as_ref()
        .is_some_and(|p| p.digest != resolved.digest);
    let platform_text = resolved.platform.clone().unwrap_or_else(|| Platform {
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
    });
    store.set_ref(
        &reference_text,
        &resolved.digest,
        &platform_text.to_string(),
    )?;
    let image = load_manifest(store, reference, &resolved.digest)?;
    Ok(Pulled {
        image,
        downloaded,
        updated: updated || (previous.is_none() && downloaded > 0),
    })
}

/// One layer of a pull: where it comes from, what it must turn out to be, where its progress
/// goes.
struct LayerJob<'a> {
    client: &'a Client,
    store: &'a Arc<Store>,
    endpoint: &'a Endpoint,
    reference: &'a Reference,
    descriptor: &'a LayerDescriptor,
    diff_id: &'a Digest,
    counters: Arc<Vec<LayerCounter>>,
    index: usize,
}

impl LayerJob<'_> {
    /// Brings the layer into the store; `Ok(true)` if it was downloaded, `Ok(false)` if it was
    /// there already (or another pull brought it in meanwhile).
    async fn fetch(self) -> Result<bool, PullError> {
        let (store, diff_id) = (self.store, self.diff_id);
        let counter = &self.counters[self.index];
        if store.has_layer(diff_id) {
            counter.set(LayerState::Exists);
            return Ok(false);
        }
        // Another process may be unpacking the same layer: wait for it, then look again.
        let lock = {
            let store = store.clone();
            let diff_id = diff_id.clone();
            tokio::task::spawn_blocking(move || store.lock_layer(&diff_id))
                .await
                .map_err(|e| PullError::Internal(format!("waiting for a layer lock: {e}")))??
        };
        if store.has_layer(diff_id) {
            counter.set(LayerState::Exists);
            return Ok(false);
        }
        let mut attempt = 1;
        loop {
            counter.reset();
            counter.set(LayerState::Downloading);
            match self.download_and_unpack().await {
                Ok(()) => {
                    counter.set(LayerState::Done);
                    drop(lock);
                    return Ok(true);
                }
                Err(e) if attempt < LAYER_ATTEMPTS && is_transient(&e) => attempt += 1,
                Err(e) => {
                    counter.set(LayerState::Failed);
                    return Err(e);
                }
            }
        }
    }

    /// One attempt: the download feeds the unpacking thread through a bounded channel.
    async fn download_and_unpack(&self) -> Result<(), PullError> {
        let (descriptor, reference) = (self.descriptor, self.reference);
        let (mut stream, _length) = self
            .client
            .blob_stream(
                self.endpoint,
                reference.repository_path(),
                &descriptor.digest,
            )
            .await?;
        let (counters, index) = (self.counters.clone(), self.index);
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
        let unpack = {
            let store = self.store.clone();
            let descriptor = descriptor.clone();
            let diff_id = self.diff_id.clone();
            tokio::task::spawn_blocking(move || {
                let reader = ChannelReader {
                    rx,
                    chunk: Bytes::new(),
                };
                let counter = &counters[index];
                store
                    .unpack_layer_into_store(reader, &descriptor, &diff_id, &mut |n| counter.add(n))
            })
        };
        // Feed the unpacking thread; it stops reading (and the channel closes) on its own errors.
        let mut feed_error = None;
        while let Some(chunk) = stream.next().await {
            let failed = chunk.is_err();
            if let Err(e) = &chunk {
                feed_error = Some(io::Error::new(e.kind(), e.to_string()));
            }
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
        drop(tx);
        let unpacked = unpack
            .await
            .map_err(|e| PullError::Internal(format!("unpacking a layer: {e}")))?;
        match (unpacked, feed_error) {
            (Ok(_), _) => Ok(()),
            // The network failed first: report that (it explains the broken stream).
            (Err(_), Some(source)) => Err(PullError::Download {
                reference: reference.to_string(),
                layer: descriptor.digest.clone(),
                source,
            }),
            (Err(e), None) => Err(e.into()),
        }
    }
}

/// A failure worth another attempt at the whole layer: the connection broke or stalled.
fn is_transient(e: &PullError) -> bool {
    match e {
        PullError::Download { .. } => true,
        PullError::Registry(r) => r.is_transient(),
        _ => false,
    }
}

/// A blocking reader over the chunks of a download.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}
