//! The test set-up checked on its own, with third-party tools only, so that a failure
//! elsewhere is cleat's and not the fixtures', the registries' or the comparison's.

use std::fs;
use std::time::Duration;

use super::fixtures::{
    CA_FILE, REGISTRY_DIR, TLS, TLS_PASSWORD, TLS_USER, TOKEN, TOKEN_PASSWORD, TOKEN_USER, image,
    registries,
};
use super::tree::{MergedView, assert_same_tree, walk_ok};
use crate::host::host;

#[test]
fn skopeo_sees_the_registries_as_the_tests_expect() {
    // The set-up itself, checked with a third-party client, so that a failure below is
    // cleat's and not the fixture's.
    registries();
    let h = host();
    let certs = format!("{REGISTRY_DIR}/tls/certs.d");
    let inspect = |args: &[&str]| {
        let mut argv = vec!["skopeo", "inspect", "--raw"];
        argv.extend_from_slice(args);
        h.exec(&argv)
    };
    let tls_img = format!("docker://{}", image(TLS, "busybox"));
    let token_img = format!("docker://{}", image(TOKEN, "busybox"));
    inspect(&["--cert-dir", &certs, &tls_img]).fails();
    let creds = format!("{TLS_USER}:{TLS_PASSWORD}");
    inspect(&["--cert-dir", &certs, "--creds", &creds, &tls_img]).ok();
    inspect(&["--tls-verify=false", &token_img]).fails();
    let creds = format!("{TOKEN_USER}:{TOKEN_PASSWORD}");
    inspect(&["--tls-verify=false", "--creds", &creds, &token_img]).ok();
    let public = format!("docker://{}", image(TOKEN, "public/busybox"));
    inspect(&["--tls-verify=false", &public]).ok();
    // cleat finds the CA through registries.toml.
    let toml = fs::read_to_string(h.path("/etc/cleat/registries.toml")).unwrap_or_default();
    assert!(
        toml.contains("[registries.\"127.0.0.1:5443\"]") && toml.contains(CA_FILE),
        "{toml}"
    );
}

#[test]
fn a_naive_overlay_unpack_matches_the_umoci_trees() {
    // The fixtures' layers unpacked with GNU tar and turned into overlay form by a few lines
    // of script, stacked by the same mount and compared by the same code as cleat's layers.
    let r = registries();
    let h = host();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/testhost/naive-unpack.sh"
    );
    for (fixture, tag) in [
        ("layers", "latest"),
        ("busybox", "latest"),
        ("zstd", "latest"),
        ("multiarch", "arm64"),
    ] {
        let dir = format!("/run/cleat-naive/{fixture}-{tag}");
        let layout = r.layout(fixture).dir;
        let out = h.exec_timeout(
            &["bash", script, &layout.to_string_lossy(), tag, &dir],
            Duration::from_secs(60),
        );
        out.ok();
        let layers: Vec<String> = out.stdout.lines().map(str::to_string).collect();
        let view =
            MergedView::mount(&layers, false).unwrap_or_else(|e| panic!("{fixture}:{tag}: {e}"));
        let actual = walk_ok(&view.path());
        drop(view);
        assert_same_tree(
            &walk_ok(&r.reference_tree(fixture, tag)),
            &actual,
            &format!("{fixture}:{tag} unpacked by naive-unpack.sh"),
        );
        h.sh(&format!("rm -rf '{dir}'")).ok();
    }
}
