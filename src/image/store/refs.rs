//! References: `refs/<name>` maps an image reference (`docker.io/library/busybox:latest`) to
//! the manifest it was pulled as, one small JSON file per reference, replaced atomically.
//!
//! File names are the reference with every byte outside `[A-Za-z0-9._-]` written `%XX` (and a
//! leading `.`), which is reversible; a reference too long for a file name is stored under
//! `%sha256-<hex of the reference>` instead (never the encoding of a reference, since `%s` is
//! not an escape). The record itself always holds the reference.

use serde::{Deserialize, Serialize};

use crate::image::Digest;

/// Longest encoded name used as is (file names are limited to 255 bytes).
const MAX_NAME: usize = 200;
const HASHED_PREFIX: &str = "%sha256-";

/// What a reference points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageRef {
    /// The canonical reference, as given to [`Store::set_ref`](super::Store::set_ref).
    pub reference: String,
    /// The image manifest (not the index: the platform's manifest).
    pub digest: Digest,
    /// `os/architecture[/variant]`.
    pub platform: String,
    /// When it was pulled, in microseconds since the epoch.
    pub pulled_usec: u64,
}

/// The file name for `reference`.
pub(super) fn file_name(reference: &str) -> String {
    let mut out = String::with_capacity(reference.len());
    for (i, b) in reference.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => out.push(char::from(b)),
            b'.' if i > 0 => out.push('.'),
            _ => out.push_str(&hex_escape(b)),
        }
    }
    if out.len() > MAX_NAME {
        format!("{HASHED_PREFIX}{}", Digest::of(reference.as_bytes()).hex())
    } else {
        out
    }
}

fn hex_escape(byte: u8) -> String {
    format!("%{byte:02X}")
}

/// The reference a file name encodes; `None` for a hashed name (read the record) or a name
/// that is not an encoding at all.
pub(super) fn reference_of(name: &str) -> Option<String> {
    if name.starts_with(HASHED_PREFIX) {
        return None;
    }
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `name` is a reference file (not a temporary or foreign file).
pub(super) fn is_ref_file(name: &str) -> bool {
    match name.strip_prefix(HASHED_PREFIX) {
        Some(hex) => hex.len() == 64,
        None => reference_of(name).is_some_and(|r| file_name(&r) == name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_reversible() {
        for reference in [
            "docker.io/library/busybox:latest",
            "registry.example.com:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "localhost/a_b-c.d:v1.2",
            ".hidden/x",
            "..",
            "weird%name/ü",
        ] {
            let name = file_name(reference);
            assert!(
                !name.contains('/') && !name.starts_with('.') && !name.is_empty(),
                "{name}"
            );
            assert_eq!(reference_of(&name).as_deref(), Some(reference));
            assert!(is_ref_file(&name));
        }
        assert_eq!(
            file_name("docker.io/library/busybox:latest"),
            "docker.io%2Flibrary%2Fbusybox%3Alatest"
        );
        let long = format!("example.com/{}:tag", "a".repeat(300));
        let name = file_name(&long);
        assert!(name.starts_with(HASHED_PREFIX) && name.len() < 255);
        assert_eq!(reference_of(&name), None);
        assert!(is_ref_file(&name));
        assert!(!is_ref_file("123.0123456789abcdef.tmp%"));
        assert!(!is_ref_file("%zz"));
    }
}
