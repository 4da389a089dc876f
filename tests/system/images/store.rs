//! The store as a whole: concurrent pulls share the work, a killed pull leaves nothing half
//! done, bad input changes nothing, `rmi` respects containers, `image prune` frees space.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use super::fixtures::{
    PLAIN, PULL_TIMEOUT, STORE, THROTTLED, assert_pull_digest, blob_gets, exclusive, image,
    images_json, inspect, listed, pull, pull_ok, registries, registry_log, registry_log_until,
    shared,
};
use super::pull::summary;
use crate::host::{Case, expect_active, host};

/// The layer directories of every listed image: path → diff_id.
fn known_layers() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in images_json() {
        let name = match e["reference"].as_str() {
            Some(r) if !r.is_empty() && !r.contains("<none>") => r.to_string(),
            _ => e["id"].as_str().unwrap_or_default().to_string(),
        };
        for l in inspect(&name).layers {
            out.insert(l.path, l.diff_id);
        }
    }
    out
}

fn is_empty_dir(p: &Path) -> bool {
    fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}

/// What does not belong in the store: entries beside the layer directories that are neither
/// a listed image's layer nor, unless `strict`, a content-addressed name (a complete layer
/// nothing references any more, which stays until `image prune`); a second directory for one
/// diff_id; and anything under /var/lib/cleat (outside layers and containers) named like a
/// temporary or partial file. Empty directories and lock files are tolerated.
fn store_leftovers(strict: bool) -> Vec<String> {
    let h = host();
    let layers = known_layers();
    let mut out = Vec::new();
    let mut by_diff: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (p, d) in &layers {
        by_diff.entry(d).or_default().push(p);
    }
    for (d, paths) in &by_diff {
        if paths.len() > 1 {
            out.push(format!("diff_id {d} is unpacked more than once: {paths:?}"));
        }
    }
    // The directory holding the layer directories: the deepest common ancestor of them all;
    // each layer's "slot" is its path's component right below it.
    let paths: Vec<Vec<&str>> = layers
        .keys()
        .map(|p| p.split('/').filter(|c| !c.is_empty()).collect())
        .collect();
    let mut slots = BTreeSet::new();
    if paths.len() >= 2 {
        let mut depth = 0;
        while paths
            .iter()
            .all(|p| p.len() > depth + 1 && p[depth] == paths[0][depth])
        {
            depth += 1;
        }
        let base = format!("/{}", paths[0][..depth].join("/"));
        for p in &paths {
            slots.insert(p[depth].to_string());
        }
        match fs::read_dir(h.path(&base)) {
            Ok(rd) => {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if slots.contains(&name) || name == "lock" || name.ends_with(".lock") {
                        continue;
                    }
                    if e.path().is_dir() && is_empty_dir(&e.path()) {
                        continue;
                    }
                    let hex = name
                        .strip_prefix("sha256:")
                        .or_else(|| name.strip_prefix("sha256-"))
                        .unwrap_or(&name);
                    let content_addressed = hex.len() == 64
                        && hex
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                    if content_addressed && !strict {
                        continue;
                    }
                    out.push(format!(
                        "{base}/{name}: beside the layer directories, but no listed image's layer"
                    ));
                }
            }
            Err(e) => out.push(format!("{base}: {e}")),
        }
        // Anything named like a temporary or partial file, anywhere else in the store.
        let skip_base = h.path(&base);
        let mut stack = vec![h.path(STORE)];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().to_lowercase();
                if p == h.path(&format!("{STORE}/containers")) {
                    continue;
                }
                let suspicious = [
                    "tmp",
                    "temp",
                    "partial",
                    "staging",
                    "incomplete",
                    "download",
                ]
                .iter()
                .any(|w| name.contains(w))
                    || name.ends_with(".part");
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                if suspicious && !(is_dir && is_empty_dir(&p)) {
                    let inside = p.strip_prefix(h.path("/")).unwrap_or(&p);
                    out.push(format!("/{}: looks like a leftover", inside.display()));
                }
                // The layer directories hold image content: not scanned.
                if is_dir && p != skip_base {
                    stack.push(p);
                }
            }
        }
    }
    out
}

#[track_caller]
fn assert_store_clean(when: &str) {
    let left = store_leftovers(false);
    assert!(
        left.is_empty(),
        "{when}: the store has leftovers:\n{}",
        left.join("\n")
    );
}

#[test]
fn two_pulls_at_once_fetch_and_unpack_each_layer_once() {
    let r = registries();
    let _g = exclusive();
    // Through the throttling proxy, so that the two pulls overlap.
    let img = image(THROTTLED, "concurrent");
    let m = r.layout("concurrent").manifest("latest");
    let log0 = registry_log();
    let before: Vec<usize> = m
        .layers
        .iter()
        .map(|d| blob_gets(&log0, "concurrent", d))
        .collect();
    assert!(
        before.iter().all(|n| *n == 0),
        "the concurrent fixture was fetched before this test: {before:?}"
    );
    let (a, b) = thread::scope(|s| {
        let t1 = s.spawn(|| pull(&[&img]));
        let t2 = s.spawn(|| pull(&[&img]));
        (
            t1.join().expect("pull thread"),
            t2.join().expect("pull thread"),
        )
    });
    a.ok();
    b.ok();
    let digest = r.digest("concurrent");
    for out in [&a, &b] {
        assert_pull_digest(out, &img, digest);
    }
    let log = registry_log_until(|log| {
        m.layers
            .iter()
            .all(|d| blob_gets(log, "concurrent", d) >= 1)
    });
    let counts: Vec<usize> = m
        .layers
        .iter()
        .map(|d| blob_gets(&log, "concurrent", d))
        .collect();
    assert_eq!(
        counts,
        vec![1; m.layers.len()],
        "GETs of each layer blob (bottom first) for two concurrent pulls; config blob GETs: {}",
        blob_gets(&log, "concurrent", &m.config_digest)
    );
    let i = super::assert_image_tree(r, &img, "concurrent", "latest");
    let paths: BTreeSet<&str> = i.layers.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(paths.len(), m.layers.len(), "{}", i.json);
    assert_store_clean("after two concurrent pulls");
}

#[test]
fn a_pull_killed_mid_download_leaves_the_store_consistent() {
    let r = registries();
    let _g = exclusive();
    let h = host();
    // 12 MB through the throttling proxy: about 3 s; killed after 1 s.
    let img = image(THROTTLED, "bulky");
    let out = h.sh_timeout(
        &format!(
            "/usr/local/bin/cleat pull {img} >/tmp/killed-pull.out 2>&1 & p=$!\n\
             sleep 1\n\
             if kill -0 $p 2>/dev/null; then kill -KILL $p; wait $p; echo \"killed $?\"; \
             else wait $p; echo \"finished $?\"; fi\n\
             cat /tmp/killed-pull.out"
        ),
        PULL_TIMEOUT,
    );
    assert!(
        out.stdout.starts_with("killed 137"),
        "the pull was to be killed while downloading:\n{out}"
    );
    // Nothing of it keeps running, and no half image is listed.
    let ps = h.sh("ps -eo pid,args | grep '[c]leat pull' || true");
    assert!(
        ps.stdout.trim().is_empty(),
        "processes of the killed pull are still running:\n{ps}"
    );
    assert!(
        listed(&img).is_none(),
        "a killed pull left {img} listed: {:?}",
        images_json()
    );

    // The next pull completes, and the image is whole.
    let out = pull_ok(&img);
    assert_pull_digest(&out, &img, r.digest("bulky"));
    super::assert_image_tree(r, &img, "bulky", "latest");
    assert_store_clean("after a killed pull and a complete one");
}

#[test]
fn bad_references_and_missing_images_fail_cleanly_and_change_nothing() {
    registries();
    let _g = exclusive();
    let h = host();
    let images_before = summary(&images_json());
    let log_before = registry_log().len();

    // Invalid references: refused before any network traffic.
    for bad in [
        // (`UPPER/case` is not one: Docker takes an upper-case first component for a host.)
        "Upper",
        "library/UPPER",
        "a:b:c",
        "127.0.0.1:5000/UPPER/case",
        "127.0.0.1:5000/busybox:bad tag",
        "127.0.0.1:5000/busybox:-dash",
        "127.0.0.1:5000/busybox:",
        "127.0.0.1:5000//busybox",
        "127.0.0.1:5000/busybox@sha256:1234",
    ] {
        let out = pull(&[bad]);
        out.fails().says(bad).reads_clean();
        let text = out.all_lower();
        assert!(
            ["invalid", "not a valid", "malformed"]
                .iter()
                .any(|w| text.contains(w)),
            "the message does not say the reference is invalid:\n{out}"
        );
        assert!(
            out.elapsed < Duration::from_secs(5),
            "an invalid reference took {:?}",
            out.elapsed
        );
    }
    thread::sleep(Duration::from_millis(500));
    let log = registry_log();
    assert_eq!(
        log.len(),
        log_before,
        "invalid references reached the registry:\n{}",
        log[log_before.min(log.len())..].join("\n")
    );

    // An unknown host, a missing tag, a missing repository: the message names them.
    pull(&["nonexistent.invalid/x"])
        .fails()
        .says("nonexistent.invalid")
        .reads_clean();
    pull(&["127.0.0.1:5000/busybox:no-such-tag"])
        .fails()
        .says("127.0.0.1:5000/busybox")
        .says("no-such-tag")
        .reads_clean();
    pull(&["127.0.0.1:5000/no-such-repo:latest"])
        .fails()
        .says("no-such-repo")
        .reads_clean();
    // Nothing listens on this port of the test host.
    pull(&["127.0.0.1:5999/busybox:latest"])
        .fails()
        .says("127.0.0.1:5999")
        .reads_clean();
    // And run says the same, before creating anything.
    let c = Case::new("img-bad");
    h.cleat_timeout(
        &[
            "run",
            "--rm",
            "--name",
            &c.name,
            "127.0.0.1:5000/busybox:no-such-tag",
        ],
        PULL_TIMEOUT,
    )
    .fails()
    .says("no-such-tag")
    .reads_clean();
    assert!(crate::host::ps_entry(&c.name, true).is_none());

    assert_eq!(
        summary(&images_json()),
        images_before,
        "failed pulls changed the image list"
    );
    assert_store_clean("after failed pulls");
}

#[test]
fn rmi_is_refused_while_a_container_uses_the_image() {
    registries();
    let _g = shared();
    let h = host();
    // An image only this test uses, which shares its bottom layer with busybox.
    let img = image(PLAIN, "rmi");
    let other = image(PLAIN, "busybox");
    pull_ok(&other);
    pull_ok(&img);
    let c = Case::new("rmi");

    // A created container uses the image.
    h.cleat_timeout(&["create", "--name", &c.name, &img], PULL_TIMEOUT)
        .ok();
    h.cleat(&["rmi", &img]).fails().says(&c.name).reads_clean();
    assert!(listed(&img).is_some(), "rmi removed an image in use");
    h.cleat(&["rm", &c.name]).ok();

    // So does a running one.
    let running = c.another("rmi-run");
    h.cleat_timeout(&["run", "-d", "--name", &running, &img], PULL_TIMEOUT)
        .ok();
    h.cleat(&["rmi", &img]).fails().says(&running).reads_clean();
    assert!(listed(&img).is_some(), "rmi removed an image in use");
    h.cleat(&["rm", "-f", &running]).ok();

    // Unused: removed.
    h.cleat(&["rmi", &img]).ok();
    assert!(listed(&img).is_none(), "rmi left {img} listed");
    // The other image with the same layer is intact.
    for l in inspect(&other).layers {
        assert!(
            h.path(&l.path).is_dir(),
            "rmi removed a shared layer: {l:?}"
        );
    }

    // -f removes it even while a container uses it.
    pull_ok(&img);
    let forced = c.another("rmi-f");
    h.cleat_timeout(&["create", "--name", &forced, &img], PULL_TIMEOUT)
        .ok();
    h.cleat(&["rmi", "-f", &img]).ok();
    assert!(listed(&img).is_none(), "rmi -f left {img} listed");
    h.cleat(&["rm", "-f", &forced]).ok();

    // An image that is not there.
    h.cleat(&["rmi", "127.0.0.1:5000/never-pulled:latest"])
        .fails()
        .says("never-pulled")
        .reads_clean();
}

/// The space `image prune` reports, in bytes, from its `Total reclaimed space: …` line.
fn reclaimed(out: &crate::host::Output) -> f64 {
    let line = out
        .all()
        .lines()
        .find(|l| l.starts_with("Total reclaimed space:"))
        .unwrap_or_else(|| panic!("no 'Total reclaimed space:' line:\n{out}"))
        .to_string();
    let v = line["Total reclaimed space:".len()..]
        .trim()
        .replace(' ', "");
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let n: f64 = v[..split]
        .parse()
        .unwrap_or_else(|_| panic!("cannot read the amount in {line:?}"));
    let unit = match v[split..].to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" | "K" => 1e3,
        "KIB" => 1024.0,
        "MB" | "M" => 1e6,
        "MIB" => 1024.0 * 1024.0,
        "GB" | "G" => 1e9,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unknown unit {other:?} in {line:?}"),
    };
    n * unit
}

#[test]
fn image_prune_all_frees_space_and_keeps_images_in_use() {
    registries();
    let _g = exclusive();
    let h = host();
    let used = image(PLAIN, "busybox");
    let unused = image(PLAIN, "layers");
    pull_ok(&used);
    pull_ok(&unused);
    let c = Case::new("prune");
    h.cleat_timeout(&["run", "-d", "--name", &c.name, &used], PULL_TIMEOUT)
        .ok();
    expect_active(&c.adhoc_unit());
    let used_layers = inspect(&used).layers;
    let unused_layers = inspect(&unused).layers;

    let out = h.cleat_timeout(&["image", "prune", "-a"], Duration::from_secs(60));
    out.ok();
    assert!(reclaimed(&out) > 0.0, "prune -a freed nothing:\n{out}");
    assert!(listed(&used).is_some(), "prune -a removed an image in use");
    assert!(listed(&unused).is_none(), "prune -a kept {unused}");
    for l in &used_layers {
        assert!(
            h.path(&l.path).is_dir(),
            "prune -a removed a layer in use: {l:?}"
        );
    }
    for l in &unused_layers {
        assert!(!h.exists(&l.path), "prune -a kept an unused layer: {l:?}");
    }
    assert_eq!(h.prop(&c.adhoc_unit(), "ActiveState"), "active");
    let left = store_leftovers(true);
    assert!(
        left.is_empty(),
        "after image prune -a, the store keeps what nothing references:\n{}",
        left.join("\n")
    );

    // Nothing left to prune: still the report, zero.
    let out = h.cleat_timeout(&["image", "prune", "-a"], Duration::from_secs(60));
    out.ok();
    assert_eq!(reclaimed(&out), 0.0, "{out}");
    // Without -a: only dangling images; the report all the same.
    let out = h.cleat_timeout(&["image", "prune"], Duration::from_secs(60));
    out.ok().says("Total reclaimed space:");
    assert!(listed(&used).is_some());
    h.cleat(&["rm", "-f", &c.name]).ok();
}
