//! File trees: walk one without following symlinks, compare two (paths, types, modes, owners,
//! link targets, contents, user xattrs, which paths are hard links of each other), and mount
//! the overlay of an image's layers in a private mount namespace inside the test host.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fmt;
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::host::host;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { size: u64, hash: u64 },
    Symlink(String),
    CharDev(u64),
    BlockDev(u64),
    Fifo,
    Socket,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission and setuid/setgid/sticky bits (not meaningful for symlinks).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Every extended attribute (name, value).
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub nlink: u64,
    dev_ino: (u64, u64),
}

impl Entry {
    /// The user xattrs a comparison looks at: `user.*` except overlayfs's own.
    fn user_xattrs(&self) -> BTreeMap<&str, &[u8]> {
        self.xattrs
            .iter()
            .filter(|(k, _)| k.starts_with("user.") && !k.starts_with("user.overlay."))
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect()
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Dir => write!(f, "dir")?,
            Kind::File { size, hash } => write!(f, "file size={size} hash={hash:016x}")?,
            Kind::Symlink(t) => return write!(f, "symlink -> {t} {}:{}", self.uid, self.gid),
            Kind::CharDev(r) => write!(f, "char {}:{}", libc::major(*r), libc::minor(*r))?,
            Kind::BlockDev(r) => write!(f, "block {}:{}", libc::major(*r), libc::minor(*r))?,
            Kind::Fifo => write!(f, "fifo")?,
            Kind::Socket => write!(f, "socket")?,
        }
        write!(f, " mode={:04o} owner={}:{}", self.mode, self.uid, self.gid)?;
        let x = self.user_xattrs();
        if !x.is_empty() {
            write!(f, " xattrs={:?}", x.keys().collect::<Vec<_>>())?;
        }
        Ok(())
    }
}

/// A walked tree: relative path (`.` for the root) → entry.
pub struct Tree {
    pub root: PathBuf,
    pub entries: BTreeMap<String, Entry>,
}

fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return out;
    };
    let mut names = vec![0u8; 4096];
    // SAFETY: `c` is a valid C string; `names` is writable for its length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return out;
    }
    names.truncate(n as usize);
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let mut value = vec![0u8; 65536];
        // SAFETY: valid C strings; `value` is writable for its length.
        let len = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if len >= 0 {
            value.truncate(len as usize);
            out.insert(String::from_utf8_lossy(name).into_owned(), value);
        }
    }
    out
}

fn hash_file(path: &Path) -> io::Result<u64> {
    let mut f = fs::File::open(path)?;
    let mut h = DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
    Ok(h.finish())
}

/// Walks `root` without following symlinks (the root itself is followed).
pub fn walk(root: &Path) -> io::Result<Tree> {
    let mut entries = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), ".".to_string())];
    while let Some((path, rel)) = stack.pop() {
        let md = if rel == "." {
            fs::metadata(&path)
        } else {
            fs::symlink_metadata(&path)
        }
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            let mut children: Vec<_> = fs::read_dir(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?
                .collect::<Result<_, _>>()?;
            children.sort_by_key(|e| e.file_name());
            for c in children {
                let name = c.file_name().to_string_lossy().into_owned();
                let child_rel = if rel == "." {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                stack.push((c.path(), child_rel));
            }
            Kind::Dir
        } else if ft.is_file() {
            Kind::File {
                size: md.len(),
                hash: hash_file(&path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?,
            }
        } else if ft.is_symlink() {
            Kind::Symlink(fs::read_link(&path)?.to_string_lossy().into_owned())
        } else if ft.is_char_device() {
            Kind::CharDev(md.rdev())
        } else if ft.is_block_device() {
            Kind::BlockDev(md.rdev())
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Socket
        };
        entries.insert(
            rel,
            Entry {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                xattrs: xattrs(&path),
                nlink: md.nlink(),
                dev_ino: (md.dev(), md.ino()),
            },
        );
    }
    Ok(Tree {
        root: root.to_path_buf(),
        entries,
    })
}

#[track_caller]
pub fn walk_ok(root: &Path) -> Tree {
    walk(root).unwrap_or_else(|e| panic!("walking {}: {e}", root.display()))
}

impl Tree {
    /// Groups of paths (two or more) that are the same inode, each sorted, the groups sorted.
    pub fn hard_link_groups(&self) -> BTreeSet<Vec<String>> {
        let mut by_inode: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
        for (p, e) in &self.entries {
            if !matches!(e.kind, Kind::Dir) {
                by_inode.entry(e.dev_ino).or_default().push(p.clone());
            }
        }
        by_inode
            .into_values()
            .filter(|g| g.len() > 1)
            .map(|mut g| {
                g.sort();
                g
            })
            .collect()
    }

    /// Whether any entry carries one of overlayfs's `user.overlay.*` xattrs (a layer
    /// unpacked for an overlay mounted with `userxattr`).
    pub fn uses_user_overlay_xattrs(&self) -> bool {
        self.entries
            .values()
            .any(|e| e.xattrs.keys().any(|k| k.starts_with("user.overlay.")))
    }
}

/// The differences between `expected` and `actual` (empty when they match).
pub fn differences(expected: &Tree, actual: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (p, e) in &expected.entries {
        let Some(a) = actual.entries.get(p) else {
            out.push(format!("missing: {p} ({e})"));
            continue;
        };
        let mut what = Vec::new();
        if a.kind != e.kind {
            what.push("type/content/target");
        }
        if !matches!(e.kind, Kind::Symlink(_)) && a.mode != e.mode {
            what.push("mode");
        }
        if (a.uid, a.gid) != (e.uid, e.gid) {
            what.push("owner");
        }
        if a.user_xattrs() != e.user_xattrs() {
            what.push("user xattrs");
        }
        if !what.is_empty() {
            out.push(format!(
                "differs ({}): {p}\n    expected {e}\n    actual   {a}",
                what.join(", ")
            ));
        }
    }
    for (p, a) in &actual.entries {
        if !expected.entries.contains_key(p) {
            out.push(format!("unexpected: {p} ({a})"));
        }
    }
    let (eg, ag) = (expected.hard_link_groups(), actual.hard_link_groups());
    for g in eg.difference(&ag) {
        out.push(format!("hard links expected but not found: {g:?}"));
    }
    for g in ag.difference(&eg) {
        out.push(format!("unexpected hard links: {g:?}"));
    }
    out
}

/// Panics with the differences (at most 60 of them) unless the trees match.
#[track_caller]
pub fn assert_same_tree(expected: &Tree, actual: &Tree, what: &str) {
    let diffs = differences(expected, actual);
    if diffs.is_empty() {
        return;
    }
    let n = diffs.len();
    let shown: Vec<String> = diffs.into_iter().take(60).collect();
    panic!(
        "{what}: {n} difference(s) between the reference tree {} ({} entries) and {} ({} entries):\n{}{}",
        expected.root.display(),
        expected.entries.len(),
        actual.root.display(),
        actual.entries.len(),
        shown.join("\n"),
        if n > 60 { "\n..." } else { "" }
    );
}

// ---------------------------------------------------------------------------------------------
// The merged view of layers

/// A read-only overlay of layer directories, mounted inside the test host in a private mount
/// namespace (held by a shell started for it) so that nothing else ever sees it. The tree is
/// reached from the host through that shell's `/proc/PID/root`. Unmounted, and the shell
/// ends, when this is dropped.
pub struct MergedView {
    child: Child,
    /// The host PID of the shell holding the mount namespace.
    pid: i32,
    /// The mount point inside the test host.
    pub mountpoint: String,
}

impl MergedView {
    /// Mounts `lower` (bottom layer first, as `image inspect` lists them) read-only.
    /// `userxattr` mounts it the way an unprivileged overlay reads `user.overlay.*` xattrs.
    pub fn mount(lower: &[String], userxattr: bool) -> Result<MergedView, String> {
        // overlayfs stacks the first lowerdir on top; an empty directory at the bottom makes a
        // single-layer image mountable without an upper directory too.
        let mut dirs: Vec<String> = lower.iter().rev().cloned().collect();
        dirs.push("$empty".into());
        let opts = format!(
            "ro{},lowerdir={}",
            if userxattr { ",userxattr" } else { "" },
            dirs.join(":")
        );
        let script = format!(
            "set -e\n\
             d=$(mktemp -d /tmp/cleat-merged.XXXXXX)\n\
             empty=$(mktemp -d /tmp/cleat-empty.XXXXXX)\n\
             trap 'umount \"$d\" 2>/dev/null; rmdir \"$d\" \"$empty\"' EXIT\n\
             mount -t overlay overlay -o \"{opts}\" \"$d\"\n\
             echo \"mounted $d\"\n\
             read -r _ || true\n"
        );
        let h = host();
        let mut cmd = h.command(&[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("spawning nsenter: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let Some(mountpoint) = line.trim().strip_prefix("mounted ").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            return Err(format!(
                "mount -t overlay -o {opts} failed: {}{}",
                line.trim(),
                err.trim()
            ));
        };
        // nsenter forks once (to enter the PID namespace); its only child is the shell
        // (unshare without --fork execs it).
        let nsenter = child.id();
        let children = fs::read_to_string(format!("/proc/{nsenter}/task/{nsenter}/children"))
            .unwrap_or_default();
        let pid: i32 = match children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
        {
            Some(p) => p,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no child of nsenter {nsenter}"));
            }
        };
        Ok(MergedView {
            child,
            pid,
            mountpoint,
        })
    }

    /// The merged tree, as seen from the host.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{}", self.pid, self.mountpoint))
    }
}

impl Drop for MergedView {
    fn drop(&mut self) {
        // Closing stdin ends the shell's `read`: it unmounts and exits.
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Still there after 2 s: end the shell (the mount goes with its namespace), then
        // nsenter. Both are ours.
        // SAFETY: kill(2) on a process we started.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
