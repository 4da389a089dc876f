//! The fixture images and the registries serving them, set up once per test run (lazily, by
//! the first image test), inside the test host, and gone with it.
//!
//! - `tests/testhost/images.sh build` makes the fixture images as OCI layouts under
//!   `target/fixtures/` on the host (cached: a few milliseconds when nothing changed), with
//!   the `umoci unpack` reference tree of each;
//! - `tests/testhost/registries.sh start` (inside the test host) starts the registries on
//!   127.0.0.1 of the test host's network namespace and pushes the images with skopeo.
//!
//! Also here: what the tests know about each fixture (read from its layout), the CLI helpers
//! shared by the image tests, and the lock that keeps tests which look at the whole store
//! (`cleat images`, `image prune -a`, the store's directories) from seeing other tests' pulls.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::host::{Output, host, wait_until};

/// Plain HTTP, no authentication; every fixture is pushed here.
pub const PLAIN: &str = "127.0.0.1:5000";
/// HTTPS with a certificate from the test CA, basic authentication.
pub const TLS: &str = "127.0.0.1:5443";
/// Plain HTTP, bearer tokens from the token server on :5002.
pub const TOKEN: &str = "127.0.0.1:5001";
/// The plain registry behind a proxy that sends 4 MB/s per connection.
pub const THROTTLED: &str = "127.0.0.1:5003";

pub const TLS_USER: &str = "tls-tester";
pub const TLS_PASSWORD: &str = "tls-Secret-1";
pub const TOKEN_USER: &str = "token-tester";
pub const TOKEN_PASSWORD: &str = "token-Secret-2";

/// Registry state inside the test host (see registries.sh).
pub const REGISTRY_DIR: &str = "/var/lib/cleat-test-registry";
/// The CA of the HTTPS registry, inside the test host.
pub const CA_FILE: &str = "/var/lib/cleat-test-registry/tls/ca.pem";
/// cleat's credentials file (written by `cleat login`).
pub const AUTH_FILE: &str = "/etc/cleat/auth.json";
/// cleat's store, inside the test host.
pub const STORE: &str = "/var/lib/cleat";

/// Bound for one `cleat pull` of a fixture.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(90);

/// The units of the registries (inside the test host).
pub const PLAIN_UNIT: &str = "testreg-plain.service";
pub const TOKEN_SERVER_UNIT: &str = "testreg-tokensrv.service";

pub struct Registries {
    /// `target/fixtures`, the same path inside the test host and outside.
    pub fixtures: PathBuf,
    /// Manifest digest of each pushed name, as the registry serves it.
    digests: BTreeMap<String, String>,
}

static REGISTRIES: OnceLock<Result<Registries, String>> = OnceLock::new();

/// The fixture images, pushed to running registries. Panics (in every test that asks) if
/// they could not be set up.
pub fn registries() -> &'static Registries {
    match REGISTRIES.get_or_init(setup) {
        Ok(r) => r,
        Err(e) => panic!("the test registries could not be set up:\n{e}"),
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_cleat"))
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("fixtures")
}

fn setup() -> Result<Registries, String> {
    let h = host();
    let t0 = Instant::now();
    let fixtures = fixtures_dir();
    let script = repo_root().join("tests/testhost/images.sh");
    let mut build = Command::new(&script);
    build.arg("build").arg(&fixtures);
    let out = h.run(build, Duration::from_secs(600));
    if !out.success() {
        return Err(format!("building the fixture images failed:\n{out}"));
    }
    let built = t0.elapsed();
    let registries = repo_root().join("tests/testhost/registries.sh");
    let out = h.exec_timeout(
        &[
            "bash",
            &registries.to_string_lossy(),
            "start",
            &fixtures.to_string_lossy(),
        ],
        Duration::from_secs(180),
    );
    if !out.success() {
        return Err(format!("starting the registries failed:\n{out}"));
    }
    let list = fs::read_to_string(h.path(&format!("{REGISTRY_DIR}/digests")))
        .map_err(|e| format!("{REGISTRY_DIR}/digests: {e}"))?;
    let digests = list
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, d)| (n.to_string(), d.trim().to_string()))
        .collect();
    eprintln!(
        "images: fixtures ready in {built:?}, registries up with the images pushed in {:?}",
        t0.elapsed()
    );
    Ok(Registries { fixtures, digests })
}

impl Registries {
    /// The manifest digest the registry serves for `name:latest` (`name` as pushed, e.g.
    /// `busybox`, `schema2`, `public/busybox`).
    #[track_caller]
    pub fn digest(&self, name: &str) -> &str {
        self.digests
            .get(name)
            .unwrap_or_else(|| panic!("no pushed image {name}: {:?}", self.digests))
    }

    /// The OCI layout of fixture `name`.
    pub fn layout(&self, name: &str) -> Layout {
        Layout {
            dir: self.fixtures.join(name).join("oci"),
        }
    }

    /// The `umoci unpack` tree of fixture `name`, tag `tag` (on the host).
    pub fn reference_tree(&self, name: &str, tag: &str) -> PathBuf {
        self.fixtures
            .join(name)
            .join("ref")
            .join(tag)
            .join("rootfs")
    }

    /// The raw manifest the registry serves for `name:latest`.
    pub fn served_manifest(&self, name: &str) -> Value {
        let path = host().path(&format!(
            "{REGISTRY_DIR}/manifests/{}",
            name.replace('/', "_")
        ));
        read_json(&path)
    }
}

/// `REGISTRY/NAME:latest`.
pub fn image(registry: &str, name: &str) -> String {
    format!("{registry}/{name}:latest")
}

#[track_caller]
fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// What the fixtures' layouts say

pub struct Layout {
    pub dir: PathBuf,
}

/// One image manifest of a layout, with its config.
pub struct Manifest {
    pub digest: String,
    pub config_digest: String,
    /// Layer blob digests, bottom first.
    pub layers: Vec<String>,
    /// The config's `rootfs.diff_ids`, bottom first.
    pub diff_ids: Vec<String>,
    /// The whole image config.
    pub config: Value,
}

impl Layout {
    #[track_caller]
    fn blob(&self, digest: &str) -> Value {
        read_json(&self.dir.join("blobs").join(digest.replace(':', "/")))
    }

    /// The descriptor digest of tag `tag`.
    #[track_caller]
    pub fn tag_digest(&self, tag: &str) -> String {
        let index = read_json(&self.dir.join("index.json"));
        let found = index["manifests"].as_array().and_then(|m| {
            m.iter()
                .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        });
        match found {
            Some(d) => d["digest"].as_str().unwrap_or_default().to_string(),
            None => panic!("{}: no tag {tag}", self.dir.display()),
        }
    }

    /// The image manifest of tag `tag` (which must not be an index).
    #[track_caller]
    pub fn manifest(&self, tag: &str) -> Manifest {
        let digest = self.tag_digest(tag);
        let m = self.blob(&digest);
        let config_digest = m["config"]["digest"]
            .as_str()
            .unwrap_or_else(|| panic!("{digest} is not an image manifest: {m}"))
            .to_string();
        let config = self.blob(&config_digest);
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let layer_list = m["layers"].as_array().cloned().unwrap_or_default();
        Manifest {
            digest,
            config_digest,
            layers: layer_list
                .iter()
                .filter_map(|l| l["digest"].as_str().map(str::to_string))
                .collect(),
            diff_ids: strings(&config["rootfs"]["diff_ids"]),
            config,
        }
    }
}

/// The architecture of this machine in OCI's words.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// The store lock

static STORE_LOCK: RwLock<()> = RwLock::new(());

/// Held by tests that pull, run or inspect images: they may run together.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    STORE_LOCK.read().unwrap_or_else(|p| p.into_inner())
}

/// Held by tests that look at or change the whole store (`cleat images` before and after,
/// `image prune -a`, leftovers in the store's directories, registry request counts): no other
/// image test runs meanwhile.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    STORE_LOCK.write().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// CLI helpers

/// `cleat pull ARGS...` (bounded by PULL_TIMEOUT).
pub fn pull(args: &[&str]) -> Output {
    let mut argv = vec!["pull"];
    argv.extend_from_slice(args);
    host().cleat_timeout(&argv, PULL_TIMEOUT)
}

/// `cleat pull IMAGE`, which must succeed.
#[track_caller]
pub fn pull_ok(image: &str) -> Output {
    let out = pull(&[image]);
    out.ok();
    out
}

/// Panics unless the output of a (non-quiet) `cleat pull` of `reference` reports `digest`: a
/// line `Digest: DIGEST`, which ends the output, or is followed only by Docker's closing
/// lines (`Status: ...` and the canonical reference).
#[track_caller]
pub fn assert_pull_digest(out: &Output, reference: &str, digest: &str) {
    let want = format!("Digest: {digest}");
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let Some(at) = lines.iter().rposition(|l| *l == want) else {
        panic!("the output of cleat pull has no line {want:?}:\n{out}");
    };
    let rest = &lines[at + 1..];
    let docker_tail = rest.len() <= 2
        && rest.last().is_none_or(|l| *l == reference)
        && rest.iter().rev().skip(1).all(|l| l.starts_with("Status: "));
    assert!(
        docker_tail,
        "the output of cleat pull ends neither with {want:?} nor with Docker's Status line and \
         {reference}:\n{out}"
    );
}

/// `cleat images --format json`, which must succeed and print an array.
#[track_caller]
pub fn images_json() -> Vec<Value> {
    let out = host().cleat(&["images", "--format", "json"]);
    out.ok();
    match out.json() {
        Value::Array(v) => v,
        other => panic!("cleat images --format json did not print an array: {other}\n{out}"),
    }
}

/// The entry of `cleat images --format json` whose reference is `reference`.
#[track_caller]
pub fn listed(reference: &str) -> Option<Value> {
    images_json()
        .into_iter()
        .find(|e| e["reference"] == reference)
}

/// One layer as `cleat image inspect` shows it.
#[derive(Debug, Clone)]
pub struct Layer {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    /// The unpacked layer directory, inside the test host.
    pub path: String,
}

/// `cleat image inspect IMAGE`, parsed.
#[derive(Debug, Clone)]
pub struct Inspect {
    pub reference: String,
    pub digest: String,
    pub id: String,
    pub platform: String,
    pub config: Value,
    /// Bottom first.
    pub layers: Vec<Layer>,
    pub json: Value,
}

/// `cleat image inspect IMAGE`, which must succeed and print one object (or an array of one,
/// as `docker image inspect` does).
#[track_caller]
pub fn inspect(image: &str) -> Inspect {
    let out = host().cleat(&["image", "inspect", image]);
    out.ok();
    let mut v = out.json();
    if let Value::Array(mut a) = v {
        assert_eq!(
            a.len(),
            1,
            "image inspect {image}: one object expected:\n{out}"
        );
        v = a.remove(0);
    }
    let s = |key: &str| -> String {
        match v[key].as_str() {
            Some(s) => s.to_string(),
            None => panic!("image inspect {image}: no string {key:?}:\n{out}"),
        }
    };
    let layers = v["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("image inspect {image}: no array \"layers\":\n{out}"))
        .iter()
        .map(|l| {
            let field = |key: &str| -> String {
                match l[key].as_str() {
                    Some(s) => s.to_string(),
                    None => panic!("image inspect {image}: layer without {key:?}: {l}\n{out}"),
                }
            };
            Layer {
                digest: field("digest"),
                diff_id: field("diff_id"),
                size: l["size"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("image inspect {image}: layer size: {l}")),
                path: field("path"),
            }
        })
        .collect();
    Inspect {
        reference: s("reference"),
        digest: s("digest"),
        id: s("id"),
        platform: platform_string(&v["platform"]),
        config: v["config"].clone(),
        layers,
        json: v.clone(),
    }
}

/// A platform as `os/arch[/variant]`, whether cleat prints it as that string or as an object
/// with OCI's field names.
pub fn platform_string(v: &Value) -> String {
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    let os = v["os"].as_str().unwrap_or("?");
    let arch = v["architecture"].as_str().unwrap_or("?");
    match v["variant"].as_str() {
        Some(var) if !var.is_empty() => format!("{os}/{arch}/{var}"),
        _ => format!("{os}/{arch}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Registry logs

/// The plain registry's log lines (its access log and its request log), in order.
pub fn registry_log() -> Vec<String> {
    host()
        .journal(PLAIN_UNIT)
        .lines()
        .map(str::to_string)
        .collect()
}

/// How many times the plain registry answered `GET /v2/REPO/blobs/DIGEST` (whatever the
/// registry name the client used: the throttling proxy forwards to it).
pub fn blob_gets(log: &[String], repo: &str, digest: &str) -> usize {
    let needle = format!("\"GET /v2/{repo}/blobs/{digest} ");
    log.iter().filter(|l| l.contains(&needle)).count()
}

/// Requests the plain registry answered for `Host: host` whose URI starts with `prefix`
/// (from the registry's request log, which names the Host header).
pub fn requests_via(log: &[String], host_header: &str, prefix: &str) -> usize {
    // logrus quotes a value only when it needs quotes.
    let h = [
        format!("http.request.host=\"{host_header}\""),
        format!("http.request.host={host_header} "),
    ];
    let u = [
        format!("http.request.uri=\"{prefix}"),
        format!("http.request.uri={prefix}"),
    ];
    log.iter()
        .filter(|l| {
            l.contains("response completed")
                && h.iter().any(|h| l.contains(h.as_str()))
                && u.iter().any(|u| l.contains(u.as_str()))
        })
        .count()
}

/// Waits (up to 5 s) until the registry log has `cond`, to let journald catch up; returns
/// the last log read.
pub fn registry_log_until(mut cond: impl FnMut(&[String]) -> bool) -> Vec<String> {
    let mut log = Vec::new();
    wait_until(Duration::from_secs(5), || {
        log = registry_log();
        cond(&log)
    });
    log
}
