//! Registry credentials, from the files users already have, first match wins:
//!
//! 1. cleat's own `/etc/cleat/auth.json` (written by `cleat login`, mode 0600);
//! 2. `$REGISTRY_AUTH_FILE`;
//! 3. `$XDG_RUNTIME_DIR/containers/auth.json`, then `/run/containers/UID/auth.json` (Podman);
//! 4. `~/.config/containers/auth.json` (Podman);
//! 5. `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json` (Docker).
//!
//! HOME comes from the environment, or from the passwd entry of the current user when it is
//! unset (as under systemd). All files share Docker's format,
//! `{"auths": {"HOST": {"auth": base64("user:password")}}}` (or `username` and `password`
//! fields); keys may be URLs such as `https://index.docker.io/v1/` and, as in Podman,
//! `host/namespace` for credentials that apply to part of a registry only. Credential helpers
//! (`credsStore`, `credHelpers`) are not run; they are reported in [`Credentials::notes`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::image::reference;

/// cleat's own credentials file, written by `cleat login`.
pub const CLEAT_AUTH_FILE: &str = "/etc/cleat/auth.json";

/// A user name and password (or token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Credentials found for a registry, and the file they came from.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    pub credential: &'a Credential,
    pub source: &'a Path,
}

/// The credentials of every file read, in order of precedence.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    files: Vec<AuthFile>,
    notes: Vec<String>,
}

#[derive(Debug, Clone)]
struct AuthFile {
    path: PathBuf,
    /// Normalised key (`host[:port]` or `host[:port]/namespace`) and credential.
    entries: Vec<(String, Credential)>,
}

/// A credentials file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {message}", .path.display())]
    Invalid { path: PathBuf, message: String },
}

impl Credentials {
    /// No credentials: every registry is accessed anonymously.
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// Reads the files of [`default_paths`].
    pub fn load_default() -> Result<Credentials, CredentialsError> {
        Credentials::load(&default_paths())
    }

    /// Reads `paths` in order of precedence; missing files are skipped.
    pub fn load(paths: &[PathBuf]) -> Result<Credentials, CredentialsError> {
        let mut credentials = Credentials::default();
        for path in paths {
            let text = match std::fs::read(path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(CredentialsError::Io {
                        path: path.clone(),
                        source,
                    });
                }
            };
            let (file, notes) = parse_auth_file(path, &text)?;
            credentials.files.push(file);
            credentials.notes.extend(notes);
        }
        Ok(credentials)
    }

    /// The credentials for `repository` on `registry` (`host[:port]`): in the first file
    /// that has any, the most specific key (`host/namespace/repo`, then each parent
    /// namespace, then `host`).
    pub fn find(&self, registry: &str, repository: &str) -> Option<Found<'_>> {
        let registry = reference::normalize_registry(registry);
        let mut scopes = vec![registry.to_owned()];
        let mut scope = registry.to_owned();
        for component in repository.split('/').filter(|c| !c.is_empty()) {
            scope = format!("{scope}/{component}");
            scopes.push(scope.clone());
        }
        self.files.iter().find_map(|file| {
            scopes.iter().rev().find_map(|scope| {
                file.entries
                    .iter()
                    .find(|(key, _)| key == scope)
                    .map(|(_, credential)| Found {
                        credential,
                        source: &file.path,
                    })
            })
        })
    }

    /// Things worth a debug message: credential helpers that were not run, entries that were
    /// skipped.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Adds credentials of the highest precedence (for tests and `--creds`-like options).
    pub fn with(mut self, registry: &str, credential: Credential, source: &Path) -> Credentials {
        self.files.insert(
            0,
            AuthFile {
                path: source.to_owned(),
                entries: vec![(normalize_key(registry), credential)],
            },
        );
        self
    }
}

/// The credential files, in order of precedence, for the current environment.
pub fn default_paths() -> Vec<PathBuf> {
    let uid = rustix::process::getuid().as_raw();
    paths_for(&|name| std::env::var_os(name), uid, &|| {
        home_from_passwd(uid)
    })
}

/// The credential files for an environment (`env` looks up a variable), a uid and a way to
/// find HOME when the environment has none.
fn paths_for(
    env: &dyn Fn(&str) -> Option<OsString>,
    uid: u32,
    passwd_home: &dyn Fn() -> Option<PathBuf>,
) -> Vec<PathBuf> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut paths = vec![PathBuf::from(CLEAT_AUTH_FILE)];
    paths.extend(var("REGISTRY_AUTH_FILE"));
    if let Some(runtime_dir) = var("XDG_RUNTIME_DIR") {
        paths.push(runtime_dir.join("containers/auth.json"));
    }
    paths.push(PathBuf::from(format!("/run/containers/{uid}/auth.json")));
    let home = var("HOME").or_else(passwd_home);
    if let Some(home) = &home {
        paths.push(home.join(".config/containers/auth.json"));
    }
    match (var("DOCKER_CONFIG"), &home) {
        (Some(docker_config), _) => paths.push(docker_config.join("config.json")),
        (None, Some(home)) => paths.push(home.join(".docker/config.json")),
        (None, None) => {}
    }
    paths
}

/// HOME of `uid` in /etc/passwd.
fn home_from_passwd(uid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    crate::runtime::user::parse_passwd(&text)
        .into_iter()
        .find(|entry| entry.uid == uid && !entry.home.is_empty())
        .map(|entry| PathBuf::from(entry.home))
}

/// A credentials key as cleat compares it: URLs lose their scheme and path
/// (`https://index.docker.io/v1/` is `docker.io`), other keys keep their namespace
/// (`quay.io/org`), Docker Hub's aliases become `docker.io`, and trailing slashes go.
pub fn normalize_key(key: &str) -> String {
    let (rest, is_url) = match key.split_once("://") {
        Some((_, rest)) => (rest, true),
        None => (key, false),
    };
    let (host, path) = match rest.split_once('/') {
        Some((host, path)) if !is_url => (host, path.trim_end_matches('/')),
        Some((host, _)) => (host, ""),
        None => (rest, ""),
    };
    let host = reference::normalize_registry(host);
    if path.is_empty() {
        host.to_owned()
    } else {
        format!("{host}/{path}")
    }
}

#[derive(serde::Deserialize)]
struct FileFormat {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The entries of one file, and notes about what was skipped.
fn parse_auth_file(path: &Path, text: &[u8]) -> Result<(AuthFile, Vec<String>), CredentialsError> {
    let invalid = |message: String| CredentialsError::Invalid {
        path: path.to_owned(),
        message,
    };
    let format: FileFormat = serde_json::from_slice(text).map_err(|e| invalid(e.to_string()))?;
    let mut notes = Vec::new();
    if let Some(store) = format.creds_store.filter(|s| !s.is_empty()) {
        notes.push(format!(
            "{}: credential helper docker-credential-{store} (credsStore) is not used; run \
             cleat login to store credentials for cleat",
            path.display()
        ));
    }
    for (registry, helper) in &format.cred_helpers {
        notes.push(format!(
            "{}: credential helper docker-credential-{helper} for {registry} (credHelpers) is not used",
            path.display()
        ));
    }
    let mut entries = Vec::new();
    for (key, entry) in format.auths {
        match decode_entry(&entry)
            .map_err(|message| invalid(format!("auths.{key:?}: {message}")))?
        {
            Some(credential) => entries.push((normalize_key(&key), credential)),
            None if entry.identitytoken.is_some() => notes.push(format!(
                "{}: the identity token for {key} is not supported; skipped",
                path.display()
            )),
            None => {}
        }
    }
    let file = AuthFile {
        path: path.to_owned(),
        entries,
    };
    Ok((file, notes))
}

/// The credential in an entry; `None` for an entry without one (such as the empty entries
/// Docker writes when a credential helper holds the secret).
fn decode_entry(entry: &Entry) -> Result<Option<Credential>, String> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = BASE64
            .decode(auth.trim())
            .map_err(|e| format!("the auth field is not base64: {e}"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| "the auth field is not UTF-8 text".to_owned())?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or("the auth field does not decode to user:password")?;
        return Ok(Some(Credential {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(username), Some(password)) if !username.is_empty() => Ok(Some(Credential {
            username: username.clone(),
            password: password.clone(),
        })),
        _ => Ok(None),
    }
}

/// Stores credentials for `registry` in `path` (cleat's auth.json), replacing any it had for
/// that registry and keeping everything else. The file is written atomically with mode 0600.
pub fn store_credentials(
    path: &Path,
    registry: &str,
    username: &str,
    password: &str,
) -> Result<(), CredentialsError> {
    if username.is_empty() || username.contains(':') {
        return Err(CredentialsError::Invalid {
            path: path.to_owned(),
            message: format!(
                "invalid user name {username:?}: it must be non-empty and without ':'"
            ),
        });
    }
    let key = normalize_key(registry);
    let mut document = read_document(path)?;
    let auths = auths_of(&mut document, path)?;
    auths.retain(|k, _| normalize_key(k) != key);
    let auth = BASE64.encode(format!("{username}:{password}"));
    auths.insert(key, serde_json::json!({ "auth": auth }));
    write_document(path, &document)
}

/// Removes the credentials for `registry` from `path`; whether there were any.
pub fn remove_credentials(path: &Path, registry: &str) -> Result<bool, CredentialsError> {
    let key = normalize_key(registry);
    let mut document = read_document(path)?;
    let auths = auths_of(&mut document, path)?;
    let before = auths.len();
    auths.retain(|k, _| normalize_key(k) != key);
    if auths.len() == before {
        return Ok(false);
    }
    write_document(path, &document)?;
    Ok(true)
}

/// The JSON document in `path`, or an empty object when there is no file.
fn read_document(path: &Path) -> Result<serde_json::Value, CredentialsError> {
    match std::fs::read(path) {
        Ok(text) => serde_json::from_slice(&text).map_err(|e| CredentialsError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(source) => Err(CredentialsError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The `auths` object of a document, created when missing.
fn auths_of<'a>(
    document: &'a mut serde_json::Value,
    path: &Path,
) -> Result<&'a mut serde_json::Map<String, serde_json::Value>, CredentialsError> {
    let not_an_object = |what: &str| CredentialsError::Invalid {
        path: path.to_owned(),
        message: format!("{what} is not a JSON object"),
    };
    let root = document
        .as_object_mut()
        .ok_or_else(|| not_an_object("the document"))?;
    root.entry("auths")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| not_an_object("auths"))
}

/// Writes `document` to `path` atomically: a 0600 temporary file in the same directory,
/// flushed to disk, then renamed over the old one.
fn write_document(path: &Path, document: &serde_json::Value) -> Result<(), CredentialsError> {
    let io_error = |source| CredentialsError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let file_name = path
        .file_name()
        .map_or_else(|| "auth.json".into(), |n| n.to_string_lossy());
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut text =
        serde_json::to_vec_pretty(document).map_err(|e| io_error(io::Error::other(e)))?;
    text.push(b'\n');
    // A temporary file left by a crashed run of this process id is stale.
    let _ = std::fs::remove_file(&temp);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A directory removed when the test ends.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("cleat-creds-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn auth(user: &str, password: &str) -> String {
        BASE64.encode(format!("{user}:{password}"))
    }

    fn found(
        credentials: &Credentials,
        registry: &str,
        repository: &str,
    ) -> Option<(String, String, PathBuf)> {
        credentials.find(registry, repository).map(|f| {
            (
                f.credential.username.clone(),
                f.credential.password.clone(),
                f.source.to_owned(),
            )
        })
    }

    #[test]
    fn keys_normalise() {
        let cases = [
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("docker.io", "docker.io"),
            ("http://registry.lan:5000", "registry.lan:5000"),
            ("https://quay.io/v2/", "quay.io"),
            ("quay.io/org", "quay.io/org"),
            ("quay.io/org/", "quay.io/org"),
            ("localhost:5000", "localhost:5000"),
        ];
        for (key, normalised) in cases {
            assert_eq!(normalize_key(key), normalised, "{key}");
        }
    }

    #[test]
    fn docker_and_podman_formats() {
        let dir = TempDir::new("formats");
        let docker = dir.write(
            "config.json",
            &format!(
                r#"{{"auths": {{
                    "https://index.docker.io/v1/": {{"auth": "{}"}},
                    "registry.lan:5000": {{"username": "bob", "password": "pw:with:colons"}},
                    "helper.io": {{}}
                }}, "credsStore": "desktop", "credHelpers": {{"gcr.io": "gcloud"}}, "psFormat": "x"}}"#,
                auth("alice", "secret")
            ),
        );
        let credentials = Credentials::load(std::slice::from_ref(&docker)).unwrap();
        assert_eq!(
            found(&credentials, "docker.io", "library/ubuntu"),
            Some(("alice".into(), "secret".into(), docker.clone()))
        );
        assert_eq!(
            found(&credentials, "index.docker.io", "x/y"),
            Some(("alice".into(), "secret".into(), docker.clone()))
        );
        assert_eq!(
            found(&credentials, "registry.lan:5000", "app").map(|f| f.1),
            Some("pw:with:colons".into())
        );
        assert_eq!(found(&credentials, "helper.io", "app"), None);
        assert_eq!(found(&credentials, "quay.io", "app"), None);
        let notes = credentials.notes().join("\n");
        assert!(
            notes.contains("docker-credential-desktop (credsStore) is not used"),
            "{notes}"
        );
        assert!(
            notes.contains("docker-credential-gcloud for gcr.io"),
            "{notes}"
        );
    }

    #[test]
    fn first_file_wins_and_namespaces_are_more_specific() {
        let dir = TempDir::new("precedence");
        let first = dir.write(
            "first.json",
            &format!(
                r#"{{"auths": {{"quay.io/team": {{"auth": "{}"}}}}}}"#,
                auth("team", "1")
            ),
        );
        let second = dir.write(
            "second.json",
            &format!(
                r#"{{"auths": {{"quay.io": {{"auth": "{}"}}, "docker.io": {{"auth": "{}"}}}}}}"#,
                auth("everyone", "2"),
                auth("hub", "3")
            ),
        );
        let missing = dir.0.join("missing.json");
        let credentials = Credentials::load(&[missing, first.clone(), second.clone()]).unwrap();
        assert_eq!(
            found(&credentials, "quay.io", "team/app").map(|f| (f.0, f.2)),
            Some(("team".into(), first))
        );
        assert_eq!(
            found(&credentials, "quay.io", "other/app").map(|f| (f.0, f.2)),
            Some(("everyone".into(), second.clone()))
        );
        assert_eq!(
            found(&credentials, "quay.io", "teamx/app").map(|f| f.0),
            Some("everyone".into())
        );
        assert_eq!(
            found(&credentials, "docker.io", "library/ubuntu").map(|f| f.0),
            Some("hub".into())
        );
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = TempDir::new("bad");
        let cases = [
            ("{not json", "key must be a string at line 1 column 2"),
            (
                r#"{"auths": {"a.io": {"auth": "!!!"}}}"#,
                "auths.\"a.io\": the auth field is not base64",
            ),
            (
                r#"{"auths": {"a.io": {"auth": "bm9jb2xvbg=="}}}"#,
                "does not decode to user:password",
            ),
            (r#"{"auths": []}"#, "invalid type: sequence"),
        ];
        for (text, expected) in cases {
            let path = dir.write("bad.json", text);
            let error = Credentials::load(std::slice::from_ref(&path))
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("{}: ", path.display())),
                "{error}"
            );
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn search_path_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let everything = env(&[
            ("REGISTRY_AUTH_FILE", "/custom/auth.json"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("HOME", "/home/u"),
        ]);
        let paths = paths_for(&everything, 1000, &|| panic!("HOME is set"));
        let expected = [
            "/etc/cleat/auth.json",
            "/custom/auth.json",
            "/run/user/1000/containers/auth.json",
            "/run/containers/1000/auth.json",
            "/home/u/.config/containers/auth.json",
            "/home/u/.docker/config.json",
        ];
        assert_eq!(paths, expected.map(PathBuf::from));

        let systemd = env(&[]);
        let paths = paths_for(&systemd, 0, &|| Some(PathBuf::from("/root")));
        let expected = [
            "/etc/cleat/auth.json",
            "/run/containers/0/auth.json",
            "/root/.config/containers/auth.json",
            "/root/.docker/config.json",
        ];
        assert_eq!(paths, expected.map(PathBuf::from));

        let docker_config = env(&[("HOME", ""), ("DOCKER_CONFIG", "/etc/docker-client")]);
        let paths = paths_for(&docker_config, 0, &|| None);
        assert_eq!(
            paths.last(),
            Some(&PathBuf::from("/etc/docker-client/config.json"))
        );
        assert_eq!(paths.len(), 3);
    }

    #[test]
    fn login_and_logout_rewrite_the_file_atomically() {
        let dir = TempDir::new("login");
        let path = dir.0.join("etc/cleat/auth.json");
        store_credentials(&path, "https://index.docker.io/v1/", "alice", "pw1").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        store_credentials(&path, "registry.lan:5000", "bob", "pw2").unwrap();
        store_credentials(&path, "index.docker.io", "alice", "pw3").unwrap();

        let document: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let keys: Vec<&String> = document["auths"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["docker.io", "registry.lan:5000"]);
        let credentials = Credentials::load(std::slice::from_ref(&path)).unwrap();
        assert_eq!(
            found(&credentials, "docker.io", "library/x").map(|f| f.1),
            Some("pw3".into())
        );

        assert!(remove_credentials(&path, "docker.io").unwrap());
        assert!(!remove_credentials(&path, "docker.io").unwrap());
        assert!(!remove_credentials(&dir.0.join("none.json"), "docker.io").unwrap());
        let credentials = Credentials::load(std::slice::from_ref(&path)).unwrap();
        assert!(credentials.find("docker.io", "library/x").is_none());
        assert!(credentials.find("registry.lan:5000", "x").is_some());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary files left behind");

        let error = store_credentials(&path, "x.io", "a:b", "pw").unwrap_err();
        assert!(error.to_string().contains("without ':'"), "{error}");
    }

    #[test]
    fn other_keys_in_the_file_are_kept() {
        let dir = TempDir::new("keep");
        let path = dir.write(
            "auth.json",
            r#"{"auths": {"quay.io": {"auth": "dTpw"}}, "credsStore": "pass"}"#,
        );
        store_credentials(&path, "docker.io", "u", "p").unwrap();
        let document: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(document["credsStore"], "pass");
        assert_eq!(document["auths"]["quay.io"]["auth"], "dTpw");
        assert_eq!(document["auths"]["docker.io"]["auth"], auth("u", "p"));
    }

    #[test]
    fn debug_output_hides_passwords() {
        let credential = Credential {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{credential:?}").contains("hunter2"));
    }
}
