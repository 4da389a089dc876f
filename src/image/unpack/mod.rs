//! Unpacking a layer blob into a directory, in one streaming pass:
//!
//! ```text
//! blob ─► SHA-256 (layer digest) ─► decompress ─► SHA-256 (diff_id) ─► untar ─► dest/
//! ```
//!
//! Nothing is held whole in memory: the blob flows through in blocks of 256 KiB, a few at a
//! time, and two threads share the work (one reads, hashes and decompresses, the other writes
//! the files), so that a layer unpacks about as fast as it decompresses. The tree is written in
//! overlayfs
//! form (whiteouts are 0/0 character devices, opaque directories carry
//! `trusted.overlay.opaque=y`), ready to be a lower directory as it is. The layer is hostile
//! until proven otherwise: [`extract`] has the rules.
//!
//! This module unpacks and measures; whether the result is the layer that was asked for (both
//! digests) is for the caller to decide: [`crate::image::store`] commits it or throws it away.

mod extract;
mod fsops;
mod path;
mod pipe;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::Compression;
use super::digest::{Digest, HashingReader, Sha256};

/// Size of the blocks read from the blob and from the decompressor.
const READ_BUFFER: usize = 256 * 1024;

/// What an unpacked layer turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The digest of the blob as read (compressed): a manifest's layer digest.
    pub compressed_digest: Digest,
    pub compressed_size: u64,
    /// The digest of the uncompressed tar stream: the image configuration's `diff_id`.
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    /// Bytes of regular-file content written (a hard-linked file counted once).
    pub content_size: u64,
    /// Tar entries applied (whiteouts included).
    pub entries: u64,
}

/// Why a layer could not be unpacked. The destination is then in an unspecified state: throw
/// it away.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{path}: cannot open the directory to unpack into: {source}")]
    Destination {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The blob's reader failed (network, disk): the layer itself may be fine.
    #[error("reading the layer blob failed: {0}")]
    Read(#[source] io::Error),
    /// The compressed stream or the tar framing is broken: a corrupt or truncated layer.
    #[error("the layer is corrupt or truncated{}: {source}", after_entry(.after))]
    Corrupt {
        /// The last entry read before the damage.
        after: Option<String>,
        #[source]
        source: io::Error,
    },
    /// An entry is hostile, or could not be written.
    #[error("layer entry {path:?}: {cause}")]
    Entry { path: String, cause: EntryError },
}

fn after_entry(entry: &Option<String>) -> String {
    entry
        .as_ref()
        .map(|e| format!(" after entry {e:?}"))
        .unwrap_or_default()
}

impl UnpackError {
    fn corrupt(after: Option<String>, source: io::Error) -> UnpackError {
        UnpackError::Corrupt { after, source }
    }
}

/// What is wrong with one entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("its path climbs out of the layer")]
    Escapes,
    #[error("the layer root can only be a directory")]
    RootNotDirectory,
    #[error("not a valid whiteout: it names no file, or the directory itself, or its parent")]
    BadWhiteout,
    #[error("unsupported tar entry type {:?}", char::from(*.0))]
    UnsupportedType(u8),
    #[error("invalid tar header: {0}")]
    Header(#[source] io::Error),
    #[error("a link without a target")]
    NoLinkTarget,
    #[error("hard link target {0:?} climbs out of the layer")]
    LinkEscapes(String),
    #[error(
        "hard link target {target:?} is not a file of this layer reached without symlinks: {source}"
    )]
    LinkTarget {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("reading its content: {0}")]
    Content(#[source] io::Error),
    #[error("setting extended attribute {name}: {source}")]
    Xattr {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Unpacks the layer `blob`, compressed as `compression`, into `dest` (an empty directory),
/// hashing both the blob and the tar stream as they go by. `progress` is called once per
/// block read from the blob with the number of bytes in it (a delta: add them up).
pub fn unpack_layer<R: Read>(
    blob: R,
    compression: Compression,
    dest: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Unpacked, UnpackError> {
    let root = open_dest(dest).map_err(|source| UnpackError::Destination {
        path: dest.to_owned(),
        source,
    })?;
    unpack_layer_at(blob, compression, root.as_fd(), progress)
}

/// [`unpack_layer`] into a directory already open (a descriptor that `*at` calls accept, not
/// `O_PATH`).
///
/// Two threads share the work: this one reads, hashes and decompresses the blob; a scoped
/// helper writes the files. The tar stream is hashed by whichever side has time to spare:
/// the helper for gzip (inflating is the slow part), this thread for zstd (writing is).
pub fn unpack_layer_at<R: Read>(
    blob: R,
    compression: Compression,
    dest: BorrowedFd<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<Unpacked, UnpackError> {
    let mut source = Metered::new(blob, progress);
    let hash_side = HashSide::for_compression(compression);
    let (writer, reader) = pipe::pipe(READ_BUFFER, hash_side == HashSide::Writer);
    let (decoded, extracted) = std::thread::scope(|scope| {
        let extraction = scope.spawn(move || extract_from(reader, dest));
        let decoded = decode_into(
            &mut source,
            compression,
            hash_side == HashSide::Reader,
            writer,
        );
        let extracted = extraction
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (decoded, extracted)
    });
    // If the blob's own reader failed, that is the story, whatever the decompressor made of
    // it; if the decompressor failed, that explains whatever extraction said.
    if let Some(error) = source.error.take() {
        return Err(UnpackError::Read(error));
    }
    let hashed_here = match decoded {
        Ok(hashed) => hashed,
        Err(source) => {
            let after = match extracted {
                Err(UnpackError::Corrupt { after, .. }) => after,
                Err(UnpackError::Entry { path, .. }) => Some(path),
                _ => None,
            };
            return Err(UnpackError::Corrupt { after, source });
        }
    };
    let (tree, hashed_there) = extracted?;
    let compressed_size = source.hasher.len();
    let compressed_digest = source.hasher.finish();
    let (diff_id, uncompressed_size) = hashed_here
        .or(hashed_there)
        .unwrap_or_else(|| (compressed_digest.clone(), compressed_size));
    Ok(Unpacked {
        compressed_digest,
        compressed_size,
        diff_id,
        uncompressed_size,
        content_size: tree.content_size,
        entries: tree.entries,
    })
}

fn open_dest(dest: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Where the tar stream is hashed (a plain tar stream is the blob: it is not hashed twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashSide {
    Nowhere,
    /// The decompressing thread.
    Reader,
    /// The thread writing files.
    Writer,
}

impl HashSide {
    fn for_compression(compression: Compression) -> HashSide {
        match compression {
            Compression::None => HashSide::Nowhere,
            Compression::Gzip => HashSide::Writer,
            Compression::Zstd => HashSide::Reader,
        }
    }
}

/// Decompresses the blob into the pipe (hashing the result if `hash`), then reads the blob to
/// its end: whatever follows the compressed stream is part of the blob, and of its digest.
fn decode_into<R: Read>(
    source: &mut Metered<'_, R>,
    compression: Compression,
    hash: bool,
    mut pipe: pipe::Writer,
) -> io::Result<Option<(Digest, u64)>> {
    let (complete, hashed) = match compression {
        Compression::None => (pipe.send_all(&mut *source)?, None),
        Compression::Gzip => {
            let input = BufReader::with_capacity(READ_BUFFER, &mut *source);
            send_decoded(&mut pipe, flate2::bufread::MultiGzDecoder::new(input), hash)?
        }
        Compression::Zstd => {
            let input = BufReader::with_capacity(READ_BUFFER, &mut *source);
            let decoder = zstd::stream::read::Decoder::with_buffer(input)?;
            send_decoded(&mut pipe, decoder, hash)?
        }
    };
    // The end of the stream for the extraction (or it is gone, with an error of its own).
    drop(pipe);
    if complete {
        io::copy(source, &mut io::sink())?;
    }
    Ok(hashed)
}

/// Sends a decoder's output, hashed if `hash`.
fn send_decoded(
    pipe: &mut pipe::Writer,
    decoder: impl Read,
    hash: bool,
) -> io::Result<(bool, Option<(Digest, u64)>)> {
    if !hash {
        return Ok((pipe.send_all(decoder)?, None));
    }
    let mut hashing = HashingReader::new(decoder);
    let complete = pipe.send_all(&mut hashing)?;
    let len = hashing.len();
    let (_, digest) = hashing.finish();
    Ok((complete, Some((digest, len))))
}

/// Extracts the tar stream coming through the pipe; with its digest and size if hashed.
fn extract_from(
    mut tar: pipe::Reader,
    root: BorrowedFd<'_>,
) -> Result<(extract::Tree, Option<(Digest, u64)>), UnpackError> {
    let tree = extract::extract(&mut tar, root)?;
    Ok((tree, tar.finish()))
}

/// The blob's reader, hashed, counted and watched: an error of its own is kept aside, so that
/// it is not mistaken for corruption once a decompressor has wrapped it.
struct Metered<'p, R> {
    inner: R,
    hasher: Sha256,
    progress: &'p mut dyn FnMut(u64),
    error: Option<io::Error>,
}

impl<'p, R> Metered<'p, R> {
    fn new(inner: R, progress: &'p mut dyn FnMut(u64)) -> Metered<'p, R> {
        Metered {
            inner,
            hasher: Sha256::new(),
            progress,
            error: None,
        }
    }
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                if n > 0 {
                    (self.progress)(n as u64);
                }
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let kind = e.kind();
                self.error.get_or_insert(e);
                Err(io::Error::new(kind, "the layer blob could not be read"))
            }
        }
    }
}
