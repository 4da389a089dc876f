//! Images against real registries: Debian's `docker-registry` (plain HTTP, HTTPS with basic
//! authentication, bearer tokens from a token server), fed with fixture images built without
//! any network by `tests/testhost/images.sh` (umoci, skopeo), all inside the test host's
//! private network namespace. See `images/fixtures.rs` for the set-up.
//!
//! Black-box against the CLI contract: `cleat pull [--platform] [-q]`, `cleat images
//! [--digests] [--format json]`, `cleat image inspect`, `cleat rmi [-f]`, `cleat image prune
//! [-a]`, `cleat login` / `logout`, `cleat run IMAGE`, `--pull`, and `image = ...` in a
//! declared container. Each image's stacked layers must equal the tree `umoci unpack` makes.
//!
//! Tests that look at the whole store hold `fixtures::exclusive()`; the others hold
//! `fixtures::shared()`.

pub(crate) mod fixtures;
mod tree;

mod auth;
mod pull;
mod run;
mod selfcheck;
mod store;

use fixtures::{Inspect, Registries, inspect};
use tree::{MergedView, Tree, assert_same_tree, walk_ok};

use crate::host::host;

/// Walks the overlay of the image's layers (as `image inspect` lists them), mounted in a
/// private mount namespace inside the test host.
#[track_caller]
fn merged_tree(insp: &Inspect) -> Tree {
    let h = host();
    assert!(
        !insp.layers.is_empty(),
        "{} has no layers: {}",
        insp.reference,
        insp.json
    );
    let mut userxattr = false;
    for l in &insp.layers {
        assert!(
            l.path.starts_with('/'),
            "layer path is not absolute: {}",
            l.path
        );
        let dir = h.path(&l.path);
        assert!(
            dir.is_dir(),
            "{}: layer {} is not a directory in the test host: {}",
            insp.reference,
            l.diff_id,
            l.path
        );
        userxattr |= walk_ok(&dir).uses_user_overlay_xattrs();
    }
    let paths: Vec<String> = insp.layers.iter().map(|l| l.path.clone()).collect();
    let view = MergedView::mount(&paths, userxattr)
        .unwrap_or_else(|e| panic!("mounting the layers of {}: {e}", insp.reference));
    walk_ok(&view.path())
}

/// Pulls nothing: compares the stacked layers of `image` (already pulled) with the
/// reference tree of fixture `fixture`, tag `tag`, and checks the layers' diff_ids against
/// the fixture's config.
#[track_caller]
fn assert_image_tree(r: &Registries, image: &str, fixture: &str, tag: &str) -> Inspect {
    let insp = inspect(image);
    let m = r.layout(fixture).manifest(tag);
    let diff_ids: Vec<&str> = insp.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(
        diff_ids, m.diff_ids,
        "{image}: image inspect's layers (bottom first) against the image config's diff_ids"
    );
    let expected = walk_ok(&r.reference_tree(fixture, tag));
    let actual = merged_tree(&insp);
    assert_same_tree(&expected, &actual, &format!("{image} (layers stacked)"));
    insp
}
