//! Unpacking tests: every entry type, metadata, overlay conversion, replacement, the three
//! compressions, hostile layers, broken streams.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use tar::EntryType;

use super::testing::{Layer, Scratch, compress, gzip, gzip_members, is_root, noise, zstd};
use super::*;

/// Unpacks `blob` into a fresh `dest` inside `scratch`.
fn unpack_into(
    scratch: &Scratch,
    blob: &[u8],
    compression: Compression,
) -> Result<Unpacked, UnpackError> {
    let dest = scratch.path().join("dest");
    fs::create_dir_all(&dest).unwrap();
    unpack_layer(blob, compression, &dest, &mut |_| {})
}

fn unpack_ok(scratch: &Scratch, layer: &Layer) -> Unpacked {
    let tar = layer.tar();
    unpack_into(scratch, &tar, Compression::None).unwrap()
}

fn dest(scratch: &Scratch) -> std::path::PathBuf {
    scratch.path().join("dest")
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

fn assert_whiteout(path: &Path) {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        meta.file_type().is_char_device(),
        "{} is not a whiteout",
        path.display()
    );
    assert_eq!(meta.rdev(), 0, "{} is not device 0/0", path.display());
}

fn entry_cause(err: &UnpackError) -> &EntryError {
    match err {
        UnpackError::Entry { cause, .. } => cause,
        other => panic!("expected an entry error, got {other}"),
    }
}

/// Nothing but `dest` was created in the scratch directory.
fn assert_only_dest(scratch: &Scratch) {
    let names: Vec<_> = fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["dest"], "something was written outside the layer");
}

#[test]
fn every_entry_type_is_extracted() {
    let scratch = Scratch::new("unpack-types");
    let big = noise(3 * 1024 * 1024 + 17, 1);
    let long = format!("{}/deep-file", "d".repeat(120));
    let mut layer = Layer::new();
    layer
        .dir("usr/")
        .dir("usr/bin/")
        .file("usr/bin/tool", b"#!/bin/sh\necho hi\n")
        .file("usr/big.bin", &big)
        .file("usr/empty", b"")
        .symlink("bin", "usr/bin")
        .symlink("dangling", "/nowhere/at/all")
        .hard_link("usr/bin/tool-again", "usr/bin/tool")
        .hard_link("usr/bin/link-to-symlink", "bin")
        .node("run/fifo", EntryType::Fifo, 0, 0)
        .pax(&[("path", long.as_bytes())])
        .file("short-name-replaced-by-pax", b"deep\n");
    if is_root() {
        layer
            .node("dev/null", EntryType::Char, 1, 3)
            .node("dev/loop0", EntryType::Block, 7, 0);
    }
    let tar = layer.tar();
    let got = unpack_into(&scratch, &tar, Compression::None).unwrap();
    let d = dest(&scratch);

    assert_eq!(
        fs::read(d.join("usr/bin/tool")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    assert_eq!(fs::read(d.join("usr/big.bin")).unwrap(), big);
    assert_eq!(fs::read(d.join("usr/empty")).unwrap(), b"");
    assert_eq!(fs::read_link(d.join("bin")).unwrap(), Path::new("usr/bin"));
    assert_eq!(
        fs::read_link(d.join("dangling")).unwrap(),
        Path::new("/nowhere/at/all")
    );
    let tool = fs::metadata(d.join("usr/bin/tool")).unwrap();
    let again = fs::metadata(d.join("usr/bin/tool-again")).unwrap();
    assert_eq!(tool.ino(), again.ino(), "hard link is not the same inode");
    assert_eq!(tool.nlink(), 2);
    let to_symlink = fs::symlink_metadata(d.join("usr/bin/link-to-symlink")).unwrap();
    assert!(
        to_symlink.file_type().is_symlink(),
        "a hard link to a symlink links the symlink"
    );
    assert!(
        fs::symlink_metadata(d.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(fs::read(d.join(&long)).unwrap(), b"deep\n");
    assert!(!d.join("short-name-replaced-by-pax").exists());
    if is_root() {
        let null = fs::symlink_metadata(d.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
        let block = fs::symlink_metadata(d.join("dev/loop0")).unwrap();
        assert!(block.file_type().is_block_device());
        assert_eq!(block.rdev(), rustix::fs::makedev(7, 0));
    } else {
        eprintln!("not root: device nodes not tested");
    }
    // Implicit parents (run/, the long path's) are created 0755.
    assert_eq!(
        fs::metadata(d.join("run")).unwrap().permissions().mode() & 0o7777,
        0o755
    );

    assert_eq!(got.compressed_digest, Digest::of(&tar));
    assert_eq!(got.diff_id, Digest::of(&tar));
    assert_eq!(got.compressed_size, tar.len() as u64);
    assert_eq!(got.uncompressed_size, tar.len() as u64);
    assert_eq!(got.content_size, (big.len() + 18 + 5) as u64);
    assert_eq!(got.entries, if is_root() { 13 } else { 11 });
}

#[test]
fn owners_modes_times_and_xattrs_are_preserved() {
    let scratch = Scratch::new("unpack-meta");
    // ping's capability: CAP_NET_RAW permitted and effective (VFS_CAP_REVISION_2).
    let cap: &[u8] = &[
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut layer = Layer::new();
    layer
        .dir_with("srv/", 0o2775, 1000, 2000, 1_500_000_000)
        .file_with("srv/suid", b"x", 0o4755, 1000, 2000, 1_400_000_000)
        .file_with("srv/sgid", b"x", 0o2711, 0, 50, 1_400_000_001)
        .file_with("srv/private", b"x", 0o600, 1, 1, 1_400_000_002)
        .dir_with("tmp/", 0o1777, 0, 0, 1_300_000_000)
        .dir_with("locked/", 0o555, 0, 0, 1_200_000_000)
        .file("locked/inside", b"still written\n")
        .pax(&[
            ("mtime", b"1234567890.25"),
            ("SCHILY.xattr.user.origin", b"layer"),
            ("SCHILY.xattr.security.capability", cap),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:shadow_t:s0",
            ),
        ])
        .file_with("usr/bin/ping", b"ELF", 0o755, 0, 0, 1);
    layer.symlink("srv/link", "suid");
    unpack_ok(&scratch, &layer);
    let d = dest(&scratch);

    let mode = |p: &str| {
        fs::symlink_metadata(d.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("srv"), 0o2775);
    assert_eq!(mode("srv/suid"), 0o4755);
    assert_eq!(mode("srv/sgid"), 0o2711);
    assert_eq!(mode("srv/private"), 0o600);
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(mode("locked"), 0o555);
    assert_eq!(
        fs::read(d.join("locked/inside")).unwrap(),
        b"still written\n"
    );

    let mtime = |p: &str| {
        let m = fs::symlink_metadata(d.join(p)).unwrap();
        (m.mtime(), m.mtime_nsec())
    };
    // Directories keep their own mtime although entries were created in them afterwards.
    assert_eq!(mtime("srv"), (1_500_000_000, 0));
    assert_eq!(mtime("tmp"), (1_300_000_000, 0));
    assert_eq!(mtime("locked"), (1_200_000_000, 0));
    assert_eq!(mtime("srv/suid"), (1_400_000_000, 0));
    assert_eq!(mtime("srv/link"), (1_600_000_000, 0));
    assert_eq!(mtime("usr/bin/ping"), (1_234_567_890, 250_000_000));

    let ping = d.join("usr/bin/ping");
    assert_eq!(xattr(&ping, "trusted.overlay.opaque"), None);
    assert_eq!(xattr(&ping, "trusted.overlay.redirect"), None);
    assert_eq!(
        xattr(&ping, "security.selinux").as_deref(),
        None::<&[u8]>.or(selinux_default(&ping).as_deref())
    );
    if is_root() {
        assert_eq!(xattr(&ping, "user.origin").as_deref(), Some(&b"layer"[..]));
        assert_eq!(xattr(&ping, "security.capability").as_deref(), Some(cap));
        let owner = |p: &str| {
            let m = fs::symlink_metadata(d.join(p)).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner("srv"), (1000, 2000));
        assert_eq!(owner("srv/suid"), (1000, 2000));
        assert_eq!(owner("srv/sgid"), (0, 50));
        assert_eq!(owner("srv/private"), (1, 1));
        assert_eq!(owner("srv/link"), (0, 0));
    } else {
        eprintln!("not root: owners and xattrs not checked");
    }
}

/// Whatever label the host's policy gives new files (none without SELinux).
fn selinux_default(_path: &Path) -> Option<Vec<u8>> {
    None
}

#[test]
fn whiteouts_and_opaque_directories_become_overlay_form() {
    if !is_root() {
        eprintln!("not root: whiteouts need mknod and trusted xattrs; skipped");
        return;
    }
    let scratch = Scratch::new("unpack-whiteout");
    let mut layer = Layer::new();
    layer
        .dir("a/")
        .file("a/x", b"x")
        .file("c", b"c")
        .dir("b/")
        .file("b/before", b"kept\n")
        .file("b/.wh..wh..opq", b"")
        .file("b/after", b"kept too\n")
        .file(".wh.a", b"")
        .file(".wh.c", b"")
        .file("d/.wh.gone", b"")
        .file("e/.wh..wh.plnk", b"")
        .file(".wh..wh..opq", b"");
    unpack_ok(&scratch, &layer);
    let d = dest(&scratch);
    assert_whiteout(&d.join("a"));
    assert_whiteout(&d.join("c"));
    assert_whiteout(&d.join("d/gone"));
    assert_eq!(
        xattr(&d.join("b"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(fs::read(d.join("b/before")).unwrap(), b"kept\n");
    assert_eq!(fs::read(d.join("b/after")).unwrap(), b"kept too\n");
    assert!(
        !d.join("e/.wh..wh.plnk").exists(),
        "aufs metadata was not skipped"
    );
    assert_eq!(
        xattr(&d, "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    for name in ["b/.wh..wh..opq", ".wh.a", "d/.wh.gone"] {
        assert!(
            fs::symlink_metadata(d.join(name)).is_err(),
            "{name} was written as a file"
        );
    }
}

#[test]
fn later_entries_replace_earlier_ones() {
    let scratch = Scratch::new("unpack-replace");
    let outside = scratch.path().join("outside");
    let mut layer = Layer::new();
    layer
        .file("f", b"first")
        .file("f", b"second")
        .file("g", b"file")
        .dir("g/")
        .file("g/inner", b"inner")
        .dir("h/")
        .file("h/x", b"x")
        .file("h", b"now a file")
        .dir_with("k/", 0o700, 0, 0, 1)
        .file("k/x", b"kept")
        .dir_with("k/", 0o750, 0, 0, 2)
        .symlink("s", outside.to_str().unwrap())
        .file("s", b"not through the link")
        .dir("t/")
        .file("t/x", b"x")
        .symlink("t", "elsewhere")
        .file("u", b"u")
        .hard_link("v", "u")
        .file("u", b"new u");
    unpack_ok(&scratch, &layer);
    let d = dest(&scratch);
    assert_eq!(fs::read(d.join("f")).unwrap(), b"second");
    assert_eq!(fs::read(d.join("g/inner")).unwrap(), b"inner");
    assert_eq!(fs::read(d.join("h")).unwrap(), b"now a file");
    assert_eq!(fs::read(d.join("k/x")).unwrap(), b"kept");
    let k = fs::metadata(d.join("k")).unwrap();
    assert_eq!((k.permissions().mode() & 0o7777, k.mtime()), (0o750, 2));
    assert_eq!(fs::read(d.join("s")).unwrap(), b"not through the link");
    assert!(!outside.exists());
    assert_eq!(fs::read_link(d.join("t")).unwrap(), Path::new("elsewhere"));
    assert_eq!(fs::read(d.join("v")).unwrap(), b"u");
    assert_eq!(fs::read(d.join("u")).unwrap(), b"new u");
    assert_only_dest(&scratch);
}

#[test]
fn gzip_multi_member_zstd_and_plain_streams() {
    let mut layer = Layer::new();
    for i in 0..200 {
        layer.file(
            &format!("dir{}/file{i}", i % 7),
            &noise(1000 + i * 37, i as u64),
        );
    }
    let tar = layer.tar();
    let blobs = [
        (Compression::None, tar.clone()),
        (Compression::Gzip, gzip(&tar)),
        (Compression::Gzip, gzip_members(&tar, 5)),
        (Compression::Zstd, zstd(&tar)),
        (
            Compression::Zstd,
            [zstd(&tar[..70_000]), zstd(&tar[70_000..])].concat(),
        ),
    ];
    for (compression, blob) in blobs {
        let scratch = Scratch::new("unpack-compressed");
        let mut seen = Vec::new();
        let got = unpack_layer(
            &blob[..],
            compression,
            &{
                let d = dest(&scratch);
                fs::create_dir_all(&d).unwrap();
                d
            },
            &mut |n| seen.push(n),
        )
        .unwrap_or_else(|e| panic!("{compression:?}: {e}"));
        assert_eq!(got.compressed_digest, Digest::of(&blob), "{compression:?}");
        assert_eq!(got.compressed_size, blob.len() as u64);
        assert_eq!(got.diff_id, Digest::of(&tar), "{compression:?}");
        assert_eq!(got.uncompressed_size, tar.len() as u64);
        assert_eq!(got.entries, 200);
        assert_eq!(
            fs::read(dest(&scratch).join("dir3/file199")).unwrap(),
            noise(1000 + 199 * 37, 199)
        );
        assert!(
            seen.len() > 1 || blob.len() < 300_000,
            "{compression:?}: progress reported once"
        );
        assert_eq!(
            seen.iter().sum::<u64>(),
            blob.len() as u64,
            "{compression:?}: progress does not add up"
        );
    }
}

#[test]
fn the_diff_id_covers_what_follows_the_end_marker() {
    let scratch = Scratch::new("unpack-trailer");
    let mut layer = Layer::new();
    layer.file("a", b"a");
    let mut tar = layer.tar();
    tar.extend(std::iter::repeat_n(0u8, 10 * 1024));
    let blob = gzip(&tar);
    let got = unpack_into(&scratch, &blob, Compression::Gzip).unwrap();
    assert_eq!(got.diff_id, Digest::of(&tar));
    assert_eq!(got.uncompressed_size, tar.len() as u64);
}

#[test]
fn paths_climbing_out_are_refused() {
    for hostile in [
        "../escape",
        "/abs/../../escape",
        "a/../../escape",
        "./../escape",
    ] {
        let scratch = Scratch::new("unpack-dotdot");
        let mut layer = Layer::new();
        layer.file("ok", b"ok").file(hostile, b"owned");
        let err = unpack_into(&scratch, &layer.tar(), Compression::None).unwrap_err();
        assert!(
            matches!(entry_cause(&err), EntryError::Escapes),
            "{hostile}: {err}"
        );
        assert!(
            err.to_string().contains(hostile),
            "the error does not name the entry: {err}"
        );
        assert_only_dest(&scratch);
    }
}

#[test]
fn symlinks_in_parents_resolve_inside_the_layer() {
    let scratch = Scratch::new("unpack-symlink-parent");
    let outside = scratch.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let mut layer = Layer::new();
    layer
        .symlink("up", "../../..")
        .file("up/x", b"x\n")
        .symlink("abs", outside.to_str().unwrap())
        .file("abs/victim", b"inside too\n")
        .symlink("loop", "up/abs")
        .file("loop/deeper/y", b"y\n");
    unpack_ok(&scratch, &layer);
    let d = dest(&scratch);
    assert_eq!(fs::read(d.join("x")).unwrap(), b"x\n");
    let inner = d.join(outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read(inner.join("victim")).unwrap(), b"inside too\n");
    assert_eq!(fs::read(inner.join("deeper/y")).unwrap(), b"y\n");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside the layer"
    );
}

#[test]
fn a_symlink_to_itself_is_a_loop_not_an_escape() {
    let scratch = Scratch::new("unpack-loop");
    let marker = format!("cleat-unpack-test-{}", std::process::id());
    let mut layer = Layer::new();
    layer
        .symlink("etc", "/etc")
        .file(&format!("etc/{marker}"), b"x");
    let err = unpack_into(&scratch, &layer.tar(), Compression::None).unwrap_err();
    assert!(matches!(entry_cause(&err), EntryError::Io { .. }), "{err}");
    assert!(
        !Path::new("/etc").join(&marker).exists(),
        "wrote into the host's /etc"
    );
    assert_only_dest(&scratch);
}

#[test]
fn symlinked_parent_to_etc_lands_in_the_layers_etc() {
    let scratch = Scratch::new("unpack-etc");
    let before = fs::read("/etc/passwd").ok();
    let mut layer = Layer::new();
    layer
        .symlink("a", "/etc")
        .file("a/passwd", b"root::0:0::/:/bin/sh\n");
    unpack_ok(&scratch, &layer);
    let d = dest(&scratch);
    assert_eq!(
        fs::read("/etc/passwd").ok(),
        before,
        "the host's /etc/passwd changed"
    );
    // `a` stays a symlink; through it (inside the root) the file is the layer's etc/passwd.
    assert!(
        fs::symlink_metadata(d.join("a"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let etc = fs::symlink_metadata(d.join("etc")).unwrap();
    assert!(etc.is_dir());
    assert_eq!(
        fs::read(d.join("etc/passwd")).unwrap(),
        b"root::0:0::/:/bin/sh\n"
    );
    assert_only_dest(&scratch);
}

/// A named way to add entries to a layer.
type Case<'a> = (&'a str, &'a dyn Fn(&mut Layer));

#[test]
fn hard_links_must_stay_inside_the_layer() {
    let cases: [Case; 5] = [
        ("relative escape", &|l| {
            l.hard_link("h", "../../etc/passwd");
        }),
        ("absolute path not in the layer", &|l| {
            l.hard_link("h", "/etc/passwd");
        }),
        ("through a symlink leading out", &|l| {
            l.symlink("l", "/etc").hard_link("h", "l/passwd");
        }),
        ("through a relative symlink leading out", &|l| {
            l.symlink("l", "../../../../../etc")
                .hard_link("h", "l/passwd");
        }),
        ("to a directory", &|l| {
            l.dir("d/").hard_link("h", "d");
        }),
    ];
    for (what, build) in cases {
        let scratch = Scratch::new("unpack-hardlink");
        let mut layer = Layer::new();
        build(&mut layer);
        let err = unpack_into(&scratch, &layer.tar(), Compression::None).unwrap_err();
        assert!(
            matches!(
                entry_cause(&err),
                EntryError::LinkEscapes(_) | EntryError::LinkTarget { .. }
            ),
            "{what}: {err}"
        );
        assert!(
            fs::symlink_metadata(dest(&scratch).join("h")).is_err(),
            "{what}: the link was made"
        );
        assert_only_dest(&scratch);
    }
}

#[test]
fn whiteout_tricks_are_refused_or_confined() {
    for bad in [".wh...", "x/.wh..", "x/.wh."] {
        let scratch = Scratch::new("unpack-badwh");
        let mut layer = Layer::new();
        layer.file(bad, b"");
        let err = unpack_into(&scratch, &layer.tar(), Compression::None).unwrap_err();
        assert!(
            matches!(entry_cause(&err), EntryError::BadWhiteout),
            "{bad}: {err}"
        );
    }
    if !is_root() {
        eprintln!("not root: whiteout confinement not tested");
        return;
    }
    let scratch = Scratch::new("unpack-wh-out");
    let victim = scratch.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    let mut layer = Layer::new();
    layer
        .symlink("up", "../..")
        .file("up/.wh.victim", b"")
        .symlink("abs", scratch.path().to_str().unwrap())
        .file("abs/.wh.victim", b"");
    unpack_ok(&scratch, &layer);
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_whiteout(&dest(&scratch).join("victim"));
}

#[test]
fn corrupt_and_truncated_streams_are_errors() {
    let mut layer = Layer::new();
    layer.file("big", &noise(600_000, 3)).file("after", b"a");
    let tar = layer.tar();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let blob = compress(&tar, compression);
        for cut in [blob.len() / 2, blob.len() - 8, 10] {
            let scratch = Scratch::new("unpack-truncated");
            let result = unpack_into(&scratch, &blob[..cut], compression);
            match (compression, result) {
                // An uncompressed stream cut at an entry boundary looks complete to tar: only
                // its digest tells (the store checks it).
                (Compression::None, Ok(got)) => assert_ne!(got.diff_id, Digest::of(&tar)),
                (_, Ok(_)) => panic!("{compression:?} cut at {cut} was accepted"),
                (
                    _,
                    Err(
                        UnpackError::Corrupt { .. }
                        | UnpackError::Entry {
                            cause: EntryError::Content(_),
                            ..
                        },
                    ),
                ) => {}
                (_, Err(e)) => panic!("{compression:?} cut at {cut}: unexpected error {e}"),
            }
        }
        let mut garbled = blob.clone();
        let middle = garbled.len() / 2;
        garbled[middle..middle + 64]
            .iter_mut()
            .for_each(|b| *b ^= 0x5a);
        let scratch = Scratch::new("unpack-garbled");
        // Gzip has a CRC; a zstd frame without a checksum may decode to other bytes, which
        // the diff_id then tells.
        match unpack_into(&scratch, &garbled, compression) {
            Err(_) => {}
            Ok(got) => assert_ne!(
                got.diff_id,
                Digest::of(&tar),
                "{compression:?}: garbled stream accepted"
            ),
        }
    }
}

#[test]
fn a_failing_reader_is_reported_as_such() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "network stalled"));
            }
            self.0 -= 1;
            buf[..100].fill(0x1f);
            Ok(100)
        }
    }
    let scratch = Scratch::new("unpack-failing");
    let d = dest(&scratch);
    fs::create_dir_all(&d).unwrap();
    let mut layer = Layer::new();
    layer.file("a", &noise(100_000, 1));
    let blob = gzip(&layer.tar());
    struct Prefix<'a>(&'a [u8], usize);
    impl Read for Prefix<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 >= self.0.len() / 2 {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "network stalled"));
            }
            let n = buf.len().min(1000).min(self.0.len() / 2 - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let err = unpack_layer(Prefix(&blob, 0), Compression::Gzip, &d, &mut |_| {}).unwrap_err();
    match err {
        UnpackError::Read(e) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
        other => panic!("expected a read error, got {other}"),
    }
    let err = unpack_layer(Failing(0), Compression::Zstd, &d, &mut |_| {}).unwrap_err();
    assert!(matches!(err, UnpackError::Read(_)), "{err}");
}

#[test]
fn root_entry_and_unsupported_types() {
    let scratch = Scratch::new("unpack-root");
    let mut layer = Layer::new();
    layer
        .dir_with("./", 0o755, 0, 0, 1_000_000_000)
        .file("f", b"f");
    unpack_ok(&scratch, &layer);
    let root = fs::metadata(dest(&scratch)).unwrap();
    assert_eq!(
        (root.permissions().mode() & 0o7777, root.mtime()),
        (0o755, 1_000_000_000)
    );

    // A regular entry whose name ends with a slash is an old-style directory.
    let scratch = Scratch::new("unpack-v7-dir");
    let mut layer = Layer::new();
    layer
        .file_with("./", b"", 0o755, 0, 0, 1)
        .file_with("v7/", b"", 0o755, 0, 0, 1)
        .file("v7/f", b"f");
    unpack_ok(&scratch, &layer);
    assert!(dest(&scratch).join("v7").is_dir());

    let scratch = Scratch::new("unpack-root-link");
    let mut layer = Layer::new();
    layer.symlink(".", "/");
    let err = unpack_into(&scratch, &layer.tar(), Compression::None).unwrap_err();
    assert!(
        matches!(entry_cause(&err), EntryError::RootNotDirectory),
        "{err}"
    );

    let scratch = Scratch::new("unpack-volume");
    let mut layer = Layer::new();
    let h = layer.header("label", EntryType::new(b'V'));
    layer.append(h, b"");
    let err = unpack_into(&scratch, &layer.tar(), Compression::None).unwrap_err();
    assert!(
        matches!(entry_cause(&err), EntryError::UnsupportedType(b'V')),
        "{err}"
    );
}

/// Throughput on a real blob: `CLEAT_UNPACK_BENCH=layer.tar.gz cargo test --release --lib
/// unpack_throughput -- --ignored --nocapture` (gzip; `.zst` and `.tar` by extension). Prints
/// the time to decompress to nothing in-process and to unpack, hashing included.
#[test]
#[ignore = "benchmark: needs CLEAT_UNPACK_BENCH=<blob>"]
fn unpack_throughput() {
    let Some(blob) = std::env::var_os("CLEAT_UNPACK_BENCH") else {
        eprintln!("set CLEAT_UNPACK_BENCH to a layer blob");
        return;
    };
    let blob = std::path::PathBuf::from(blob);
    let compression = match blob.extension().and_then(|e| e.to_str()) {
        Some("zst") => Compression::Zstd,
        Some("tar") => Compression::None,
        _ => Compression::Gzip,
    };
    let size = fs::metadata(&blob).unwrap().len() as f64 / 1e6;
    let open = || io::BufReader::with_capacity(READ_BUFFER, fs::File::open(&blob).unwrap());
    let start = std::time::Instant::now();
    let decoded = match compression {
        Compression::Gzip => io::copy(
            &mut flate2::bufread::MultiGzDecoder::new(open()),
            &mut io::sink(),
        ),
        Compression::Zstd => io::copy(
            &mut zstd::stream::read::Decoder::with_buffer(open()).unwrap(),
            &mut io::sink(),
        ),
        Compression::None => io::copy(&mut open(), &mut io::sink()),
    }
    .unwrap();
    let decompress = start.elapsed().as_secs_f64();
    // Trees are kept until the end: ext4 is slow to allocate inodes right after deleting many.
    let scratches: Vec<Scratch> = (0..3).map(|_| Scratch::new("unpack-bench")).collect();
    for (round, scratch) in scratches.iter().enumerate() {
        let d = dest(scratch);
        fs::create_dir_all(&d).unwrap();
        let start = std::time::Instant::now();
        let got =
            unpack_layer(fs::File::open(&blob).unwrap(), compression, &d, &mut |_| {}).unwrap();
        let unpack = start.elapsed().as_secs_f64();
        eprintln!(
            "round {round}: {size:.1} MB blob, {:.1} MB tar, {} entries: decompress only {decompress:.2} s ({:.0} MB/s), unpack {unpack:.2} s ({:.0} MB/s), ratio {:.2}",
            decoded as f64 / 1e6,
            got.entries,
            size / decompress,
            size / unpack,
            unpack / decompress
        );
    }
}
