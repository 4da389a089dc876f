//! Store tests: layout, blobs, references, committing layers (and refusing bad ones without a
//! trace), concurrency between threads and processes, crash recovery, garbage collection.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use super::*;
use crate::image::unpack::testing::{Layer, Scratch, gzip, is_root, noise, zstd};
use crate::image::{Compression, LayerDescriptor};

/// A layer for the tests: its tar stream, blob and descriptor.
struct TestLayer {
    tar: Vec<u8>,
    blob: Vec<u8>,
    descriptor: LayerDescriptor,
}

impl TestLayer {
    fn new(seed: u64, compression: Compression) -> TestLayer {
        let mut layer = Layer::new();
        layer
            .dir("etc/")
            .file("etc/hostname", format!("layer {seed}\n").as_bytes())
            .file("data.bin", &noise(300_000, seed))
            .hard_link("data-again.bin", "data.bin");
        TestLayer::from_tar(layer.tar(), compression)
    }

    fn from_tar(tar: Vec<u8>, compression: Compression) -> TestLayer {
        let (blob, media_type) = match compression {
            Compression::Gzip => (gzip(&tar), "application/vnd.oci.image.layer.v1.tar+gzip"),
            Compression::Zstd => (zstd(&tar), "application/vnd.oci.image.layer.v1.tar+zstd"),
            Compression::None => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
        };
        let descriptor = LayerDescriptor {
            digest: Digest::of(&blob),
            size: blob.len() as u64,
            media_type: media_type.to_owned(),
            compression,
        };
        TestLayer {
            tar,
            blob,
            descriptor,
        }
    }

    fn diff_id(&self) -> Digest {
        Digest::of(&self.tar)
    }

    fn unpack(&self, store: &Store) -> Result<LayerInfo, StoreError> {
        store.unpack_layer_into_store(
            &self.blob[..],
            &self.descriptor,
            &self.diff_id(),
            &mut |_| {},
        )
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The store holds no layer and no staging.
fn assert_no_layers_nor_staging(store: &Store) {
    assert_eq!(
        names(&store.root().join(LAYERS)),
        Vec::<String>::new(),
        "a layer was committed"
    );
    assert_eq!(
        names(&store.root().join(TMP)),
        Vec::<String>::new(),
        "staging was left behind"
    );
}

#[test]
fn open_creates_a_private_layout() {
    let scratch = Scratch::new("store-open");
    let root = scratch.path().join("store");
    let store = Store::open(&root).unwrap();
    assert_eq!(
        fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for dir in [BLOBS, LAYERS, REFS, LOCKS, TMP] {
        assert!(root.join(dir).is_dir(), "{dir}");
    }
    drop(store);
    Store::open(&root).unwrap();
}

#[test]
fn blobs_are_verified_on_the_way_in_and_out() {
    let scratch = Scratch::new("store-blobs");
    let store = Store::open(scratch.path()).unwrap();
    let manifest = br#"{"schemaVersion":2}"#;
    let digest = Digest::of(manifest);
    assert_eq!(store.get_blob(&digest).unwrap(), None);
    store.put_blob(&digest, manifest).unwrap();
    store.put_blob(&digest, manifest).unwrap();
    assert_eq!(
        store.get_blob(&digest).unwrap().as_deref(),
        Some(&manifest[..])
    );
    assert_eq!(store.blob_size(&digest), Some(manifest.len() as u64));

    let other = Digest::of(b"something else");
    let err = store.put_blob(&other, manifest).unwrap_err();
    assert!(matches!(err, StoreError::BlobDigest { .. }), "{err}");
    assert!(!store.has_blob(&other));

    // Damaged on disk: reads as absent (and is removed, so a pull fetches it again).
    fs::write(store.blob_path(&digest), b"bit rot").unwrap();
    assert_eq!(store.get_blob(&digest).unwrap(), None);
    assert!(!store.has_blob(&digest));
    assert_eq!(names(&scratch.path().join(TMP)), Vec::<String>::new());
}

#[test]
fn references_round_trip() {
    let scratch = Scratch::new("store-refs");
    let store = Store::open(scratch.path()).unwrap();
    let a = Digest::of(b"a");
    let b = Digest::of(b"b");
    let long = format!("example.com/{}:v1", "x".repeat(300));
    store
        .set_ref("docker.io/library/busybox:latest", &a, "linux/amd64")
        .unwrap();
    store
        .set_ref("localhost:5000/team/app@sha256:00", &b, "linux/arm64/v8")
        .unwrap();
    store.set_ref(&long, &b, "linux/amd64").unwrap();
    let got = store
        .get_ref("docker.io/library/busybox:latest")
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.digest, got.platform.as_str()),
        (a.clone(), "linux/amd64")
    );
    assert!(got.pulled_usec > 0);
    assert_eq!(store.get_ref(&long).unwrap().unwrap().digest, b);
    assert_eq!(
        store.get_ref("docker.io/library/other:latest").unwrap(),
        None
    );
    let all: Vec<String> = store
        .list_refs()
        .unwrap()
        .into_iter()
        .map(|r| r.reference)
        .collect();
    assert_eq!(all.len(), 3);
    assert!(all.contains(&long));

    store
        .set_ref("docker.io/library/busybox:latest", &b, "linux/amd64")
        .unwrap();
    assert_eq!(
        store
            .get_ref("docker.io/library/busybox:latest")
            .unwrap()
            .unwrap()
            .digest,
        b
    );
    assert!(
        store
            .remove_ref("docker.io/library/busybox:latest")
            .unwrap()
    );
    assert!(
        !store
            .remove_ref("docker.io/library/busybox:latest")
            .unwrap()
    );
    assert_eq!(store.list_refs().unwrap().len(), 2);
    assert!(matches!(
        store.set_ref("", &a, "linux/amd64"),
        Err(StoreError::Reference(_))
    ));
    assert_eq!(names(&scratch.path().join(TMP)), Vec::<String>::new());
}

#[test]
fn a_layer_is_unpacked_verified_and_committed() {
    let scratch = Scratch::new("store-layer");
    let store = Store::open(scratch.path()).unwrap();
    let layer = TestLayer::new(1, Compression::Gzip);
    let diff_id = layer.diff_id();
    assert!(!store.has_layer(&diff_id));
    let mut consumed = 0;
    let info = store
        .unpack_layer_into_store(&layer.blob[..], &layer.descriptor, &diff_id, &mut |n| {
            consumed += n
        })
        .unwrap();
    assert_eq!(consumed, layer.blob.len() as u64);
    assert!(store.has_layer(&diff_id));
    assert_eq!(info.diff_id, diff_id);
    assert_eq!(info.compressed_digest, layer.descriptor.digest);
    assert_eq!(info.compressed_size, layer.blob.len() as u64);
    assert_eq!(info.size, 300_000 + 8);
    assert_eq!(store.layer_info(&diff_id).unwrap(), Some(info.clone()));
    assert_eq!(
        store
            .layers_size(&[diff_id.clone(), Digest::of(b"absent")])
            .unwrap(),
        info.size
    );
    assert_eq!(store.list_layers().unwrap(), vec![info.clone()]);
    let tree = store.layer_dir(&diff_id);
    assert_eq!(fs::read(tree.join("etc/hostname")).unwrap(), b"layer 1\n");
    assert_eq!(
        fs::metadata(&tree).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(names(&scratch.path().join(TMP)), Vec::<String>::new());

    // Present: the blob is not even read.
    struct Untouchable;
    impl Read for Untouchable {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            panic!("the blob of a present layer was read");
        }
    }
    assert_eq!(
        store
            .unpack_layer_into_store(Untouchable, &layer.descriptor, &diff_id, &mut |_| {})
            .unwrap(),
        info
    );

    // The same content compressed otherwise is the same layer.
    let zstd_layer = TestLayer::from_tar(layer.tar.clone(), Compression::Zstd);
    assert_eq!(zstd_layer.diff_id(), diff_id);
    assert_eq!(zstd_layer.unpack(&store).unwrap(), info);
    assert_eq!(names(&scratch.path().join(LAYERS)).len(), 1);
}

#[test]
fn bad_layers_leave_no_trace() {
    let scratch = Scratch::new("store-bad");
    let store = Store::open(scratch.path()).unwrap();
    let layer = TestLayer::new(2, Compression::Gzip);

    // The registry sent other bytes than the manifest names.
    let mut wrong = layer.descriptor.clone();
    wrong.digest = Digest::of(b"another blob");
    let err = store
        .unpack_layer_into_store(&layer.blob[..], &wrong, &layer.diff_id(), &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, StoreError::LayerDigest { .. }), "{err}");
    assert_no_layers_nor_staging(&store);

    // The configuration names another diff_id.
    let other = Digest::of(b"another tar");
    let err = store
        .unpack_layer_into_store(&layer.blob[..], &layer.descriptor, &other, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, StoreError::DiffId { .. }), "{err}");
    assert!(err.to_string().contains(&other.to_string()));
    assert_no_layers_nor_staging(&store);

    // Truncated.
    let cut = &layer.blob[..layer.blob.len() * 2 / 3];
    let err = store
        .unpack_layer_into_store(cut, &layer.descriptor, &layer.diff_id(), &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, StoreError::Unpack { .. }), "{err}");
    assert_no_layers_nor_staging(&store);

    // Hostile.
    let mut hostile = Layer::new();
    hostile.file("fine", b"fine").file("../../escape", b"owned");
    let hostile = TestLayer::from_tar(hostile.tar(), Compression::Gzip);
    let err = hostile.unpack(&store).unwrap_err();
    assert!(err.to_string().contains("../../escape"), "{err}");
    assert_no_layers_nor_staging(&store);
    assert!(!scratch.path().parent().unwrap().join("escape").exists());

    // The reader fails (the network).
    struct Broken<'a>(&'a [u8]);
    impl Read for Broken<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "connection reset",
                ));
            }
            let n = buf.len().min(self.0.len()).min(4096);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let err = store
        .unpack_layer_into_store(
            Broken(&layer.blob[..1000]),
            &layer.descriptor,
            &layer.diff_id(),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Unpack {
                source: UnpackError::Read(_),
                ..
            }
        ),
        "{err}"
    );
    assert_no_layers_nor_staging(&store);

    // And the good one still goes in afterwards.
    layer.unpack(&store).unwrap();
    assert!(store.has_layer(&layer.diff_id()));
}

#[test]
fn a_full_disk_is_reported_and_leaves_no_trace() {
    if !is_root() {
        eprintln!("not root: cannot mount a small file system; skipped");
        return;
    }
    let scratch = Scratch::new("store-full");
    let root = scratch.path().join("small");
    fs::create_dir(&root).unwrap();
    if let Err(e) = rustix::mount::mount(
        "tmpfs",
        &root,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        c"size=256k",
    ) {
        eprintln!("cannot mount tmpfs ({e}); skipped");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(self.0, rustix::mount::UnmountFlags::DETACH);
        }
    }
    let _unmount = Unmount(&root);
    let store = Store::open(&root).unwrap();
    let layer = TestLayer::new(3, Compression::Zstd);
    let err = layer.unpack(&store).unwrap_err();
    assert!(matches!(err, StoreError::NoSpace { .. }), "{err}");
    assert!(err.to_string().contains("full"), "{err}");
    assert_no_layers_nor_staging(&store);
}

/// A reader that feeds `blob` slowly, so that concurrent unpacks overlap.
struct Slow<'a> {
    blob: &'a [u8],
    reads: &'a AtomicUsize,
    delay: Duration,
}

impl Read for Slow<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(self.delay);
        let n = buf.len().min(self.blob.len()).min(16 * 1024);
        buf[..n].copy_from_slice(&self.blob[..n]);
        self.blob = &self.blob[n..];
        Ok(n)
    }
}

/// What a pull does for one layer: lock, look, fetch only if missing. `true` if it unpacked.
fn pull_layer(store: &Store, layer: &TestLayer, reads: &AtomicUsize, delay: Duration) -> bool {
    let diff_id = layer.diff_id();
    if store.has_layer(&diff_id) {
        return false;
    }
    let lock = store.lock_layer(&diff_id).unwrap();
    assert_eq!(lock.diff_id(), &diff_id);
    if store.has_layer(&diff_id) {
        return false;
    }
    let blob = Slow {
        blob: &layer.blob,
        reads,
        delay,
    };
    store
        .unpack_layer_into_store(blob, &layer.descriptor, &diff_id, &mut |_| {})
        .unwrap();
    true
}

#[test]
fn concurrent_unpacks_of_one_layer_do_the_work_once() {
    let scratch = Scratch::new("store-threads");
    let layer = Arc::new(TestLayer::new(4, Compression::Gzip));
    let reads = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (layer, reads, start) = (layer.clone(), reads.clone(), start.clone());
            let root = scratch.path().to_owned();
            std::thread::spawn(move || {
                let store = Store::open(root).unwrap();
                start.wait();
                pull_layer(&store, &layer, &reads, Duration::from_millis(2))
            })
        })
        .collect();
    let unpacked: usize = threads
        .into_iter()
        .map(|t| usize::from(t.join().unwrap()))
        .sum();
    assert_eq!(unpacked, 1, "the layer was unpacked more than once");
    let one_pass = layer.blob.len().div_ceil(16 * 1024);
    assert!(
        reads.load(Ordering::Relaxed) <= one_pass + 2,
        "the blob was read more than once"
    );
    let store = Store::open(scratch.path()).unwrap();
    assert!(store.has_layer(&layer.diff_id()));
    assert_eq!(names(&scratch.path().join(TMP)), Vec::<String>::new());
}

/// The environment variables that make a test binary a helper process for the tests below.
const CHILD_ROOT: &str = "CLEAT_STORE_TEST_CHILD_ROOT";
const CHILD_MODE: &str = "CLEAT_STORE_TEST_CHILD_MODE";

/// Not a test: the body of the helper processes (a no-op when run as a test).
#[test]
fn child_process_helper() {
    let (Some(root), Some(mode)) = (std::env::var_os(CHILD_ROOT), std::env::var_os(CHILD_MODE))
    else {
        return;
    };
    let store = Store::open(Path::new(&root)).unwrap();
    let layer = TestLayer::new(5, Compression::Gzip);
    match mode.to_str() {
        Some("pull") => {
            let reads = AtomicUsize::new(0);
            // Slow enough (about a second) that the two helpers overlap.
            let unpacked = pull_layer(&store, &layer, &reads, Duration::from_millis(50));
            println!("OUTCOME={}", if unpacked { "unpacked" } else { "present" });
        }
        Some("hang") => {
            // All but the end of the blob, then nothing: the parent kills us mid-unpack (or,
            // should it fail to, we give up after a while).
            struct Hang<'a>(&'a [u8]);
            impl Read for Hang<'_> {
                fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                    if self.0.is_empty() {
                        std::thread::sleep(Duration::from_secs(120));
                        return Err(io::Error::other("nobody killed the helper"));
                    }
                    let n = buf.len().min(self.0.len());
                    buf[..n].copy_from_slice(&self.0[..n]);
                    self.0 = &self.0[n..];
                    Ok(n)
                }
            }
            let _lock = store.lock_layer(&layer.diff_id()).unwrap();
            let most = &layer.blob[..layer.blob.len() - 100];
            let _ = store.unpack_layer_into_store(
                Hang(most),
                &layer.descriptor,
                &layer.diff_id(),
                &mut |_| {},
            );
        }
        other => panic!("unknown helper mode {other:?}"),
    }
}

fn helper(root: &Path, mode: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "image::store::tests::child_process_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROOT, root)
        .env(CHILD_MODE, mode)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    command
}

#[test]
fn concurrent_unpacks_in_two_processes_do_the_work_once() {
    let scratch = Scratch::new("store-processes");
    let children: Vec<_> = (0..2)
        .map(|_| {
            helper(scratch.path(), "pull")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outcomes: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "helper failed: {out:?}");
            let stdout = String::from_utf8(out.stdout).unwrap();
            stdout
                .lines()
                .find_map(|l| l.split_once("OUTCOME=").map(|(_, outcome)| outcome.trim()))
                .unwrap_or_else(|| panic!("no outcome in {stdout:?}"))
                .to_owned()
        })
        .collect();
    let mut sorted = outcomes.clone();
    sorted.sort();
    assert_eq!(sorted, ["present", "unpacked"], "{outcomes:?}");
    let store = Store::open(scratch.path()).unwrap();
    assert!(store.has_layer(&TestLayer::new(5, Compression::Gzip).diff_id()));
    assert_eq!(names(&scratch.path().join(TMP)), Vec::<String>::new());
}

/// A helper process that dies with the test, whatever happens.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_pull_killed_mid_unpack_leaves_only_staging_which_open_removes() {
    let scratch = Scratch::new("store-sigkill");
    let layer = TestLayer::new(5, Compression::Gzip);
    let child = helper(scratch.path(), "hang")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    // Wait until it is unpacking (its staging tree has content).
    let tmp = scratch.path().join(TMP);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let staged = fs::read_dir(&tmp)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().join("fs/etc/hostname").exists())
            })
            .unwrap_or(false);
        if staged {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the helper never started unpacking"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Meanwhile its lock is held, and a second pull would wait.
    let store = Store::open(scratch.path()).unwrap();
    assert!(store.try_lock_layer(&layer.diff_id()).unwrap().is_none());
    assert_eq!(
        names(&tmp).len(),
        1,
        "open removed the staging of a live process"
    );
    drop(store);

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(
        names(&tmp).len(),
        1,
        "no staging left to clean: the test proves nothing"
    );
    let store = Store::open(scratch.path()).unwrap();
    assert_no_layers_nor_staging(&store);
    // The lock died with its holder; the next pull completes.
    assert!(store.try_lock_layer(&layer.diff_id()).unwrap().is_some());
    layer.unpack(&store).unwrap();
    assert!(store.has_layer(&layer.diff_id()));
}

#[test]
fn open_removes_stale_staging_only() {
    let scratch = Scratch::new("store-stale");
    let store = Store::open(scratch.path()).unwrap();
    let tmp = scratch.path().join(TMP);
    // A PID that is surely dead: a child we waited for.
    let dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    fs::create_dir_all(tmp.join(format!("{dead_pid}.0123456789abcdef/fs/usr"))).unwrap();
    fs::write(
        tmp.join(format!("{dead_pid}.0123456789abcdef/fs/usr/x")),
        b"x",
    )
    .unwrap();
    fs::write(
        tmp.join(format!("{dead_pid}.fedcba9876543210")),
        b"half a blob",
    )
    .unwrap();
    // Ours (alive), and something that is not staging at all.
    let live = staging::Staged::new_dir(&tmp).unwrap();
    fs::write(tmp.join("not-staging"), b"").unwrap();
    drop(store);
    Store::open(scratch.path()).unwrap();
    let left = names(&tmp);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"not-staging".to_owned()));
    assert!(live.path().exists());
}

/// An image in the store: its layers, config, manifest and maybe a reference.
struct TestImage {
    manifest: Digest,
    config: Digest,
    layers: Vec<Digest>,
}

fn put_image(store: &Store, layers: &[&TestLayer]) -> TestImage {
    for layer in layers {
        layer.unpack(store).unwrap();
    }
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id().to_string()).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_digest = Digest::of(config.as_bytes());
    store.put_blob(&config_digest, config.as_bytes()).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.descriptor.media_type, "digest": l.descriptor.digest.to_string(), "size": l.descriptor.size,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    let manifest_digest = Digest::of(manifest.as_bytes());
    store
        .put_blob(&manifest_digest, manifest.as_bytes())
        .unwrap();
    TestImage {
        manifest: manifest_digest,
        config: config_digest,
        layers: layers.iter().map(|l| l.diff_id()).collect(),
    }
}

fn put_index(store: &Store, manifests: &[&Digest]) -> Digest {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests.iter().map(|m| serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m.to_string(), "size": 1,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    let digest = Digest::of(index.as_bytes());
    store.put_blob(&digest, index.as_bytes()).unwrap();
    digest
}

#[test]
fn prune_keeps_what_is_referenced_and_frees_the_rest() {
    let scratch = Scratch::new("store-prune");
    let store = Store::open(scratch.path()).unwrap();
    let base = TestLayer::new(10, Compression::Gzip);
    let app = TestLayer::new(11, Compression::Gzip);
    let old = TestLayer::new(12, Compression::Zstd);
    let used = TestLayer::new(13, Compression::Gzip);
    let pulling = TestLayer::new(14, Compression::Gzip);
    let a = put_image(&store, &[&base, &app]);
    let b = put_image(&store, &[&base, &old]);
    let c = put_image(&store, &[&used]);
    let index = put_index(&store, &[&a.manifest, &Digest::of(b"arm64 manifest")]);
    let orphan_index = put_index(&store, &[&b.manifest]);
    store
        .set_ref("docker.io/library/a:latest", &a.manifest, "linux/amd64")
        .unwrap();
    // A layer being pulled right now: locked, not referenced yet.
    pulling.unpack(&store).unwrap();
    let pulling_lock = store.lock_layer(&pulling.diff_id()).unwrap();
    // A lock file left by a failed pull.
    drop(store.lock_layer(&Digest::of(b"failed pull")).unwrap());

    let keep = HashSet::from([c.manifest.clone()]);
    let old_size = store.layer_info(&old.diff_id()).unwrap().unwrap().size;
    let b_blobs = store.blob_size(&b.manifest).unwrap()
        + store.blob_size(&b.config).unwrap()
        + store.blob_size(&orphan_index).unwrap();
    let report = store.prune(&keep, false).unwrap();

    let mut removed = report.removed.clone();
    removed.sort_by_key(|r| format!("{r:?}"));
    let mut expected = vec![
        Removed::Blob(b.manifest.clone()),
        Removed::Blob(b.config.clone()),
        Removed::Blob(orphan_index.clone()),
        Removed::Layer(old.diff_id()),
    ];
    expected.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(removed, expected);
    assert_eq!(report.bytes_freed, old_size + b_blobs);
    assert_eq!(report.skipped, vec![pulling.diff_id()]);
    for layer in a.layers.iter().chain(&c.layers) {
        assert!(store.has_layer(layer), "{layer} was removed");
    }
    assert!(!store.has_layer(&old.diff_id()));
    assert!(
        store.has_layer(&pulling.diff_id()),
        "a locked layer was removed"
    );
    for blob in [&a.manifest, &a.config, &c.manifest, &c.config, &index] {
        assert!(store.has_blob(blob), "{blob} was removed");
    }
    assert!(
        !scratch
            .path()
            .join(LOCKS)
            .join(Digest::of(b"failed pull").hex())
            .exists()
    );
    assert!(
        !scratch
            .path()
            .join(LOCKS)
            .join(old.diff_id().hex())
            .exists()
    );
    assert_eq!(names(&scratch.path().join(TMP)), Vec::<String>::new());
    drop(pulling_lock);

    // -a: references that no container uses go too, and with them their images.
    let report = store.prune(&keep, true).unwrap();
    assert!(
        report
            .removed
            .contains(&Removed::Ref("docker.io/library/a:latest".into()))
    );
    assert!(report.removed.contains(&Removed::Layer(app.diff_id())));
    assert!(report.removed.contains(&Removed::Layer(pulling.diff_id())));
    assert!(report.bytes_freed > 0);
    assert!(!store.has_layer(&base.diff_id()));
    assert!(store.has_layer(&used.diff_id()));
    assert!(store.has_blob(&c.manifest));
    assert_eq!(store.list_refs().unwrap(), Vec::new());

    // Nothing left to do.
    let report = store.prune(&keep, true).unwrap();
    assert_eq!(report, PruneReport::default());
}
