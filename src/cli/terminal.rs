//! The user's side of an interactive container: the local terminal in raw mode for as long as
//! it is connected, and Docker's detach keys (Ctrl-P Ctrl-Q unless `--detach-keys` says
//! otherwise) picked out of what the user types.

use std::io;
use std::os::fd::BorrowedFd;

use anyhow::anyhow;
use rustix::termios::{OptionalActions, Termios};

/// Docker's default detach sequence.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Puts a terminal in raw mode (no echo, no line editing, no signals from keys: everything
/// the user types goes to the container's terminal, which does those things itself) and puts
/// it back as it was when dropped.
pub struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    /// `None` if `fd` is not a terminal.
    pub fn enter(fd: BorrowedFd<'a>) -> io::Result<Option<RawMode<'a>>> {
        if !rustix::termios::isatty(fd) {
            return Ok(None);
        }
        let saved = rustix::termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(fd, OptionalActions::Now, &raw)?;
        Ok(Some(RawMode { fd, saved }))
    }
}

impl<'a> RawMode<'a> {
    /// Only the output side: the container's terminal already turned its line ends into CR LF,
    /// so the local terminal must pass its output through untouched (for `-t` without `-i`,
    /// where what the user types stays local). `None` if `fd` is not a terminal.
    pub fn output_only(fd: BorrowedFd<'a>) -> io::Result<Option<RawMode<'a>>> {
        if !rustix::termios::isatty(fd) {
            return Ok(None);
        }
        let saved = rustix::termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        raw.output_modes.remove(rustix::termios::OutputModes::OPOST);
        rustix::termios::tcsetattr(fd, OptionalActions::Now, &raw)?;
        Ok(Some(RawMode { fd, saved }))
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(self.fd, OptionalActions::Now, &self.saved);
    }
}

/// Parses Docker's `--detach-keys` syntax: comma-separated keys, each a single character or
/// `ctrl-X` (X a letter or one of `@ [ \ ] ^ _`). An empty string turns detaching off.
pub fn parse_detach_keys(text: &str) -> anyhow::Result<Vec<u8>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |key: &str| {
        anyhow!(
            "invalid detach key {key:?} in {text:?}: expected a single character or ctrl-X \
             (X one of a-z, @, [, \\, ], ^, _), separated by commas"
        )
    };
    text.split(',')
        .map(|key| {
            if let Some(rest) = key.strip_prefix("ctrl-") {
                match rest.as_bytes() {
                    [c @ (b'a'..=b'z' | b'A'..=b'Z')] => Ok(c.to_ascii_lowercase() - b'a' + 1),
                    [c @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_')] => Ok(c - b'@'),
                    _ => Err(bad(key)),
                }
            } else {
                match key.as_bytes() {
                    [c] if c.is_ascii() => Ok(*c),
                    _ => Err(bad(key)),
                }
            }
        })
        .collect()
}

/// Finds the detach sequence in the typed input. Bytes that might start it are held back until
/// it is clear whether they do; when the sequence breaks off, they are passed on after all.
#[derive(Debug, Clone)]
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

/// What to do with a chunk of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Scanned {
    /// Pass these bytes on (possibly none).
    Forward(Vec<u8>),
    /// The user asked to detach; pass these bytes (typed before the sequence) on first.
    Detach(Vec<u8>),
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> DetachScanner {
        DetachScanner { keys, matched: 0 }
    }

    pub fn feed(&mut self, input: &[u8]) -> Scanned {
        if self.keys.is_empty() {
            return Scanned::Forward(input.to_vec());
        }
        let mut out = Vec::with_capacity(input.len());
        for &byte in input {
            if byte == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return Scanned::Detach(out);
                }
                continue;
            }
            // The held-back bytes were not the sequence after all.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if byte == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return Scanned::Detach(out);
                }
            } else {
                out.push(byte);
            }
        }
        Scanned::Forward(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_in_dockers_syntax() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), [1, b'x']);
        assert_eq!(parse_detach_keys("ctrl-@,ctrl-_").unwrap(), [0, 31]);
        assert_eq!(parse_detach_keys("ctrl-P").unwrap(), [16]);
        assert!(parse_detach_keys("").unwrap().is_empty());
        for bad in ["ctrl-", "ctrl-pq", "ab", "ctrl-1", ",", "ctrl-p,"] {
            let err = parse_detach_keys(bad).unwrap_err().to_string();
            assert!(err.contains("invalid detach key"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_sequence_detaches_and_broken_prefixes_pass_through() {
        let mut s = DetachScanner::new(vec![16, 17]);
        assert_eq!(s.feed(b"ls\r"), Scanned::Forward(b"ls\r".to_vec()));
        // Split across reads.
        assert_eq!(s.feed(&[b'a', 16]), Scanned::Forward(b"a".to_vec()));
        assert_eq!(s.feed(&[17, b'z']), Scanned::Detach(Vec::new()));
        // A prefix that breaks off is passed on, with what broke it.
        assert_eq!(s.feed(&[16, b'x']), Scanned::Forward(vec![16, b'x']));
        // Ctrl-P Ctrl-P Ctrl-Q: the first Ctrl-P is passed on, the rest detaches.
        assert_eq!(s.feed(&[16, 16, 17]), Scanned::Detach(vec![16]));
        let mut off = DetachScanner::new(Vec::new());
        assert_eq!(off.feed(&[16, 17]), Scanned::Forward(vec![16, 17]));
        let mut single = DetachScanner::new(vec![1]);
        assert_eq!(single.feed(b"ab\x01c"), Scanned::Detach(b"ab".to_vec()));
    }
}
