//! Test support: building layer tar streams entry by entry (hostile ones included, which
//! `tar::Builder` refuses to write), compressing them, and scratch directories.

use std::io::Write;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::image::Compression;

/// A layer tar stream under construction.
pub struct Layer {
    out: Vec<u8>,
    mtime: u64,
}

impl Default for Layer {
    fn default() -> Self {
        Layer::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            out: Vec::new(),
            mtime: 1_600_000_000,
        }
    }

    /// A header for `path` of `kind`, owned by root, mode 0644 (0755 for directories).
    pub fn header(&self, path: &str, kind: EntryType) -> Header {
        let mut h = Header::new_ustar();
        set_raw_name(&mut h, path.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_size(0);
        h
    }

    /// Appends `header` (its checksum computed here) and `data`.
    pub fn append(&mut self, mut header: Header, data: &[u8]) -> &mut Layer {
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Layer {
        let h = self.header(path, EntryType::Regular);
        self.append(h, data)
    }

    pub fn file_with(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> &mut Layer {
        let mut h = self.header(path, EntryType::Regular);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.append(h, data)
    }

    pub fn dir(&mut self, path: &str) -> &mut Layer {
        let h = self.header(path, EntryType::Directory);
        self.append(h, b"")
    }

    pub fn dir_with(
        &mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> &mut Layer {
        let mut h = self.header(path, EntryType::Directory);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.append(h, b"")
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Layer {
        let mut h = self.header(path, EntryType::Symlink);
        h.set_mode(0o777);
        set_raw_link(&mut h, target.as_bytes());
        self.append(h, b"")
    }

    pub fn hard_link(&mut self, path: &str, target: &str) -> &mut Layer {
        let mut h = self.header(path, EntryType::Link);
        set_raw_link(&mut h, target.as_bytes());
        self.append(h, b"")
    }

    pub fn node(&mut self, path: &str, kind: EntryType, major: u32, minor: u32) -> &mut Layer {
        let mut h = self.header(path, kind);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.append(h, b"")
    }

    /// A PAX extended header applying `records` to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Layer {
        let mut data = Vec::new();
        for (key, value) in records {
            // "LEN key=value\n", where LEN counts itself.
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len += 1;
            }
            write!(data, "{len} {key}=").expect("write");
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let h = self.header("././@PaxHeader", EntryType::XHeader);
        self.append(h, &data)
    }

    /// The stream, with its end-of-archive marker.
    pub fn tar(&self) -> Vec<u8> {
        let mut out = self.out.clone();
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}

fn set_raw_name(h: &mut Header, name: &[u8]) {
    let slot = &mut h.as_old_mut().name;
    assert!(name.len() <= slot.len(), "name too long for a test header");
    slot.fill(0);
    slot[..name.len()].copy_from_slice(name);
}

fn set_raw_link(h: &mut Header, target: &[u8]) {
    let slot = &mut h.as_old_mut().linkname;
    assert!(
        target.len() <= slot.len(),
        "link target too long for a test header"
    );
    slot.fill(0);
    slot[..target.len()].copy_from_slice(target);
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

/// Gzip in several members (as `pigz` or concatenated files produce).
pub fn gzip_members(bytes: &[u8], members: usize) -> Vec<u8> {
    let chunk = bytes.len().div_ceil(members);
    bytes.chunks(chunk).flat_map(gzip).collect()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).expect("zstd")
}

pub fn compress(bytes: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => bytes.to_vec(),
        Compression::Gzip => gzip(bytes),
        Compression::Zstd => zstd(bytes),
    }
}

/// Deterministic incompressible-ish bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A directory removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cleat-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::fs::remove_dir_all(&self.0).is_err() {
            // Without privileges, a read-only directory of a layer is in the way.
            open_up(&self.0);
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Gives every directory under `path` mode 0700.
fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return;
    }
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        open_up(&entry.path());
    }
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
