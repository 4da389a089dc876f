//! `cleat pull`, `cleat images`, `cleat image inspect`, and for every fixture: the layers
//! cleat unpacked, stacked by overlayfs, equal the tree `umoci unpack` makes of the same image.

use std::time::Duration;

use serde_json::Value;

use super::fixtures::{
    PLAIN, assert_pull_digest, host_arch, image, images_json, inspect, listed, platform_string,
    pull, pull_ok, registries, shared,
};
use super::tree::walk_ok;
use super::{assert_image_tree, merged_tree};
use crate::host::{Case, host};

/// The image config keys cleat must report as the image has them.
const CONFIG_KEYS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "StopSignal",
    "ExposedPorts",
    "Volumes",
];

#[test]
fn pull_reports_the_digest_and_the_image_is_listed_and_inspected() {
    let r = registries();
    let _g = shared();
    let h = host();
    let img = image(PLAIN, "busybox");
    let digest = r.digest("busybox");
    let m = r.layout("busybox").manifest("latest");
    assert_eq!(
        m.digest, digest,
        "skopeo pushed the layout's manifest as is"
    );

    let out = pull_ok(&img);
    assert_pull_digest(&out, &img, digest);
    // -q prints the canonical reference and nothing else; no tag means :latest.
    let q = pull(&["-q", "127.0.0.1:5000/busybox"]);
    q.ok();
    assert_eq!(q.stdout.trim(), img, "pull -q:\n{q}");
    // By digest.
    let by_digest = format!("127.0.0.1:5000/busybox@{digest}");
    let q = pull(&["-q", &by_digest]);
    q.ok();
    assert_eq!(q.stdout.trim(), by_digest, "pull -q by digest:\n{q}");

    // cleat images --format json
    let e = listed(&img)
        .unwrap_or_else(|| panic!("cleat images does not list {img}: {:?}", images_json()));
    assert_eq!(e["digest"], digest, "{e}");
    assert_eq!(
        e["id"],
        m.config_digest.as_str(),
        "id is the config digest: {e}"
    );
    assert!(
        e["size"].as_u64().is_some_and(|s| s > 0),
        "size must be a positive number: {e}"
    );
    assert_eq!(
        platform_string(&e["platform"]),
        format!("linux/{}", host_arch()),
        "{e}"
    );
    // The tables.
    let table = h.cleat(&["images"]);
    table.ok().says("127.0.0.1:5000/busybox");
    let table = h.cleat(&["images", "--digests"]);
    table.ok().says(digest);

    // cleat image inspect
    let i = inspect(&img);
    assert_eq!(i.reference, img, "{}", i.json);
    assert_eq!(i.digest, digest, "{}", i.json);
    assert_eq!(i.id, m.config_digest, "{}", i.json);
    assert_eq!(i.platform, format!("linux/{}", host_arch()), "{}", i.json);
    let want = &m.config["config"];
    for key in CONFIG_KEYS {
        assert_eq!(
            i.config[*key], want[*key],
            "image inspect: config.{key} differs from the image's:\n{}",
            i.json
        );
    }
    // The values the other tests rely on, spelled out.
    assert_eq!(i.config["User"], "app");
    assert_eq!(i.config["WorkingDir"], "/home/app");
    assert_eq!(i.config["StopSignal"], "SIGUSR1");
    assert_eq!(i.config["Entrypoint"], serde_json::json!(["/bin/entry"]));
    assert_eq!(i.config["Cmd"], serde_json::json!(["/bin/serve"]));
    let digests: Vec<&str> = i.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(digests, m.layers, "layer digests, bottom first");
    for l in &i.layers {
        assert!(l.size > 0, "layer size: {l:?}");
        assert!(h.path(&l.path).is_dir(), "layer path: {l:?}");
    }
}

#[test]
fn busybox_layers_stack_to_the_umoci_tree() {
    let r = registries();
    let _g = shared();
    let img = image(PLAIN, "busybox");
    pull_ok(&img);
    assert_image_tree(r, &img, "busybox", "latest");
}

#[test]
fn whiteouts_opaque_dirs_links_and_owners_stack_to_the_umoci_tree() {
    let r = registries();
    let _g = shared();
    let h = host();
    let img = image(PLAIN, "layers");
    pull_ok(&img);
    let i = assert_image_tree(r, &img, "layers", "latest");
    assert_eq!(i.layers.len(), 4, "{}", i.json);
    let mut paths: Vec<&str> = i.layers.iter().map(|l| l.path.as_str()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 4, "one directory per layer: {}", i.json);
    // Whiteouts are converted to overlayfs's form: no `.wh.` name stays in a layer.
    for l in &i.layers {
        let t = walk_ok(&h.path(&l.path));
        let wh: Vec<&String> = t
            .entries
            .keys()
            .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with(".wh.")))
            .collect();
        assert!(
            wh.is_empty(),
            "layer {} keeps OCI whiteout files: {wh:?}",
            l.path
        );
    }
    // The empty layer is an empty directory.
    let top = walk_ok(&h.path(&i.layers[3].path));
    assert_eq!(
        top.entries.keys().collect::<Vec<_>>(),
        ["."],
        "the empty layer {}",
        i.layers[3].path
    );
}

/// `cleat run --rm --name NAME IMAGE ARGS...`.
fn run_rm(c: &Case, img: &str, args: &[&str]) -> crate::host::Output {
    let mut argv = vec!["run", "--rm", "--name", &c.name, img];
    argv.extend_from_slice(args);
    host().cleat_timeout(&argv, Duration::from_secs(90))
}

#[test]
fn zstd_layer_pulls_stacks_and_runs() {
    let r = registries();
    let _g = shared();
    let served = r.served_manifest("zstd");
    assert_eq!(
        served["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
        "the registry must serve a zstd layer: {served}"
    );
    let img = image(PLAIN, "zstd");
    pull_ok(&img);
    assert_image_tree(r, &img, "zstd", "latest");
    let c = Case::new("img-zstd");
    let out = run_rm(&c, &img, &["cat", "/etc/fixture"]);
    out.code_is(0);
    assert!(out.stdout.lines().any(|l| l == "zstd"), "{out}");
}

#[test]
fn docker_schema2_image_pulls_stacks_and_runs() {
    let r = registries();
    let _g = shared();
    let served = r.served_manifest("schema2");
    assert_eq!(
        served["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "{served}"
    );
    assert_eq!(
        served["layers"][0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "{served}"
    );
    let img = image(PLAIN, "schema2");
    let out = pull_ok(&img);
    assert_pull_digest(&out, &img, r.digest("schema2"));
    // Same content as busybox, converted by skopeo.
    let i = assert_image_tree(r, &img, "busybox", "latest");
    assert_eq!(i.digest, r.digest("schema2"));
    assert_eq!(i.id, served["config"]["digest"], "{}", i.json);
    let c = Case::new("img-schema2");
    let out = run_rm(&c, &img, &["/bin/report", "schema2"]);
    out.code_is(0);
    assert!(
        out.stdout.contains("report: FIXTURE=busybox") && out.stdout.contains("args=schema2"),
        "{out}"
    );
}

/// The text of `/etc/platform` in the image's top layer.
fn platform_marker(i: &super::Inspect) -> String {
    let top = i.layers.last().expect("layers");
    std::fs::read_to_string(host().path(&format!("{}/etc/platform", top.path)))
        .unwrap_or_else(|e| panic!("{}/etc/platform: {e}", top.path))
        .trim()
        .to_string()
}

#[test]
fn image_index_platform_selection() {
    let r = registries();
    let _g = shared();
    let arch = host_arch();
    if arch != "amd64" && arch != "arm64" {
        eprintln!("skipped: the multiarch fixture has amd64 and arm64, this host is {arch}");
        return;
    }
    let other = if arch == "amd64" { "arm64" } else { "amd64" };
    let layout = r.layout("multiarch");
    let img = image(PLAIN, "multiarch");

    // The host's platform by default.
    pull_ok(&img);
    let i = assert_image_tree(r, &img, "multiarch", arch);
    assert_eq!(i.platform, format!("linux/{arch}"), "{}", i.json);
    assert_eq!(i.id, layout.manifest(arch).config_digest, "{}", i.json);
    assert_eq!(platform_marker(&i), format!("linux/{arch}"));
    let e = listed(&img).expect("listed");
    assert_eq!(
        platform_string(&e["platform"]),
        format!("linux/{arch}"),
        "{e}"
    );

    // Another one on request.
    let out = pull(&["--platform", &format!("linux/{other}"), &img]);
    out.ok();
    let i = assert_image_tree(r, &img, "multiarch", other);
    assert_eq!(i.platform, format!("linux/{other}"), "{}", i.json);
    assert_eq!(i.id, layout.manifest(other).config_digest, "{}", i.json);
    assert_eq!(platform_marker(&i), format!("linux/{other}"));

    // One the index does not have: refused, naming what there is, and the image stays.
    let before = listed(&img);
    let out = pull(&["--platform", "linux/s390x", &img]);
    out.fails()
        .says("linux/s390x")
        .says("linux/amd64")
        .says("linux/arm64")
        .reads_clean();
    assert_eq!(listed(&img), before, "a refused pull changed {img}");

    // And back.
    pull_ok(&img);
    let i = inspect(&img);
    assert_eq!(i.platform, format!("linux/{arch}"), "{}", i.json);
}

/// (reference, digest) of each listed image, sorted.
pub fn summary(list: &[Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|e| {
            (
                e["reference"].as_str().unwrap_or("").to_string(),
                e["digest"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn merged_tree_helper_sees_every_layer() {
    // The comparison itself: a tree walked through the private mount equals the one walked
    // from a single-layer image's directory (a mount that shows nothing would be caught here
    // rather than as a puzzling difference elsewhere).
    let _r = registries();
    let _g = shared();
    let img = image(PLAIN, "busybox");
    pull_ok(&img);
    let i = inspect(&img);
    let merged = merged_tree(&i);
    let direct = walk_ok(&host().path(&i.layers[0].path));
    assert!(merged.entries.len() > 100, "{}", merged.entries.len());
    assert_eq!(
        merged.entries.keys().collect::<Vec<_>>(),
        direct.entries.keys().collect::<Vec<_>>()
    );
}
