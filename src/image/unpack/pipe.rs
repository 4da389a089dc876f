//! A bounded pipe of byte chunks from one thread to another, so that decompressing a layer
//! (one core) and writing its files (another) overlap. The chunks' buffers go back to the
//! writer once read, so a layer allocates a few of them, not one per chunk.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use crate::image::digest::{Digest, Sha256};

/// Chunks in flight (besides the one being filled and the one being read).
const DEPTH: usize = 4;

struct Chunk {
    buf: Vec<u8>,
    len: usize,
}

/// The writing end.
pub struct Writer {
    full: SyncSender<io::Result<Chunk>>,
    empty: Receiver<Vec<u8>>,
}

/// The reading end: a [`BufRead`] over the chunks, which hashes them if asked to.
pub struct Reader {
    full: Receiver<io::Result<Chunk>>,
    empty: Sender<Vec<u8>>,
    current: Option<Chunk>,
    pos: usize,
    hasher: Option<Sha256>,
}

/// A pipe of chunks of `chunk_size` bytes; the reader hashes what passes if `hash` is set.
pub fn pipe(chunk_size: usize, hash: bool) -> (Writer, Reader) {
    let (full_tx, full_rx) = sync_channel(DEPTH);
    let (empty_tx, empty_rx) = channel();
    for _ in 0..DEPTH + 2 {
        // Cannot fail: the receiver is right here.
        let _ = empty_tx.send(vec![0; chunk_size]);
    }
    let writer = Writer {
        full: full_tx,
        empty: empty_rx,
    };
    let reader = Reader {
        full: full_rx,
        empty: empty_tx,
        current: None,
        pos: 0,
        hasher: hash.then(Sha256::new),
    };
    (writer, reader)
}

impl Writer {
    /// Passes everything `source` reads on, in full chunks. `Ok(true)` at the end of
    /// `source`; `Ok(false)` if the reader went away (it had an error of its own). An error
    /// of `source` is passed on to the reader too.
    pub fn send_all(&mut self, mut source: impl Read) -> io::Result<bool> {
        loop {
            let Ok(mut buf) = self.empty.recv() else {
                return Ok(false);
            };
            let len = match read_full(&mut source, &mut buf) {
                Ok(0) => return Ok(true),
                Ok(len) => len,
                Err(e) => {
                    let _ = self.full.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            if self.full.send(Ok(Chunk { buf, len })).is_err() {
                return Ok(false);
            }
        }
    }
}

/// Reads until `buf` is full or `source` ends.
fn read_full(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Reader {
    /// The digest and size of everything read, if hashing.
    pub fn finish(self) -> Option<(Digest, u64)> {
        let hasher = self.hasher?;
        let len = hasher.len();
        Some((hasher.finish(), len))
    }
}

impl BufRead for Reader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let exhausted = self.current.as_ref().is_none_or(|c| self.pos >= c.len);
        if exhausted {
            if let Some(done) = self.current.take() {
                // The writer may be gone already: then the buffer is simply freed.
                let _ = self.empty.send(done.buf);
            }
            self.pos = 0;
            match self.full.recv() {
                Ok(Ok(chunk)) => {
                    if let Some(hasher) = &mut self.hasher {
                        hasher.update(&chunk.buf[..chunk.len]);
                    }
                    self.current = Some(chunk);
                }
                Ok(Err(e)) => return Err(e),
                // The writer is done: the end of the stream.
                Err(_) => return Ok(&[]),
            }
        }
        Ok(self
            .current
            .as_ref()
            .map_or(&[][..], |c| &c.buf[self.pos..c.len]))
    }

    fn consume(&mut self, amount: usize) {
        self.pos += amount;
    }
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_arrives_in_order_and_hashed() {
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        let (mut writer, mut reader) = pipe(4096, true);
        let sent = std::thread::scope(|s| {
            // The writer is dropped when its thread ends: the end of the stream.
            let bytes = &data[..];
            let sender = s.spawn(move || writer.send_all(bytes));
            let mut got = Vec::new();
            reader.read_to_end(&mut got).unwrap();
            assert_eq!(got, data);
            sender.join().unwrap().unwrap()
        });
        assert!(sent);
        assert_eq!(
            reader.finish(),
            Some((Digest::of(&data), data.len() as u64))
        );
    }

    #[test]
    fn errors_pass_through_and_a_gone_reader_stops_the_writer() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "corrupt deflate stream",
                ))
            }
        }
        let (mut writer, mut reader) = pipe(16, false);
        assert!(writer.send_all(Failing).is_err());
        let err = reader.read(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let (mut writer, reader) = pipe(16, false);
        drop(reader);
        assert!(!writer.send_all(&[1u8; 1000][..]).unwrap());
    }
}
