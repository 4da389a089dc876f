//! The image configuration (OCI image config, or Docker's identical schema): the defaults a
//! container inherits, the platform, and the layers' uncompressed digests (`diff_ids`),
//! which is how a pull verifies what it unpacked.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::spec::Signal;

use super::Digest;

/// The runtime defaults an image supplies (the config's `config` object). A container built
/// from a plain directory has none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `KEY=value` strings, in order.
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<Signal>,
    /// `80/tcp`, `53/udp`, ...
    pub exposed_ports: Vec<String>,
    /// Paths the image declares as volumes.
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// A parsed image configuration blob.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedConfig {
    pub defaults: ImageConfig,
    pub diff_ids: Vec<Digest>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// RFC 3339, as the image says.
    pub created: Option<String>,
    /// The `config` object as the image has it (Docker's capitalised keys), for `image inspect`.
    pub raw_runtime: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the image configuration is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the image configuration has rootfs type {0:?}, not \"layers\"")]
    RootfsType(String),
    #[error("the image configuration's StopSignal {0:?} is not a signal")]
    StopSignal(String),
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    rootfs: RawRootfs,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    diff_ids: Vec<Digest>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawRuntime {
    env: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    stop_signal: Option<String>,
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    volumes: Option<BTreeMap<String, serde_json::Value>>,
    labels: Option<BTreeMap<String, String>>,
}

/// Parses an image configuration blob.
pub fn parse(bytes: &[u8]) -> Result<ParsedConfig, ConfigError> {
    let raw: Raw = serde_json::from_slice(bytes)?;
    if raw.rootfs.kind != "layers" {
        return Err(ConfigError::RootfsType(raw.rootfs.kind));
    }
    let raw_runtime = raw.config.unwrap_or(serde_json::Value::Null);
    let runtime: RawRuntime = if raw_runtime.is_null() {
        RawRuntime::default()
    } else {
        serde_json::from_value(raw_runtime.clone())?
    };
    let stop_signal = match runtime.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse()
                .map_err(|_| ConfigError::StopSignal(s.to_owned()))?,
        ),
        None => None,
    };
    let defaults = ImageConfig {
        env: runtime.env.unwrap_or_default(),
        entrypoint: runtime.entrypoint,
        cmd: runtime.cmd,
        working_dir: runtime.working_dir.filter(|w| !w.is_empty()),
        user: runtime.user.filter(|u| !u.is_empty()),
        stop_signal,
        exposed_ports: runtime
            .exposed_ports
            .unwrap_or_default()
            .into_keys()
            .collect(),
        volumes: runtime.volumes.unwrap_or_default().into_keys().collect(),
        labels: runtime.labels.unwrap_or_default(),
    };
    Ok(ParsedConfig {
        defaults,
        diff_ids: raw.rootfs.diff_ids,
        os: raw.os,
        architecture: raw.architecture,
        variant: raw.variant,
        created: raw.created,
        raw_runtime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
        "architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05Z",
        "config": {
            "Env": ["PATH=/usr/bin", "A=1"], "Entrypoint": ["/entry"], "Cmd": ["serve"],
            "WorkingDir": "/srv", "User": "app:app", "StopSignal": "SIGQUIT",
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Volumes": {"/data": {}},
            "Labels": {"org.opencontainers.image.title": "t"}
        },
        "rootfs": {"type": "layers", "diff_ids": [
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ]}
    }"#;

    #[test]
    fn parses_docker_and_oci_configs() {
        let c = parse(CONFIG.as_bytes()).unwrap();
        assert_eq!(c.defaults.env, ["PATH=/usr/bin", "A=1"]);
        assert_eq!(
            c.defaults.entrypoint.as_deref(),
            Some(&["/entry".to_owned()][..])
        );
        assert_eq!(c.defaults.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.defaults.user.as_deref(), Some("app:app"));
        assert_eq!(c.defaults.stop_signal.unwrap().to_string(), "SIGQUIT");
        assert_eq!(c.defaults.exposed_ports, ["53/udp", "80/tcp"]);
        assert_eq!(c.defaults.volumes, ["/data"]);
        assert_eq!(c.diff_ids.len(), 1);
        assert_eq!((c.os.as_str(), c.architecture.as_str()), ("linux", "amd64"));
        assert_eq!(c.raw_runtime["WorkingDir"], "/srv");
    }

    #[test]
    fn minimal_and_bad_configs() {
        let c = parse(br#"{"rootfs": {"type": "layers", "diff_ids": []}}"#).unwrap();
        assert_eq!(c.defaults, ImageConfig::default());
        assert!(matches!(
            parse(br#"{"rootfs": {"type": "other"}}"#),
            Err(ConfigError::RootfsType(_))
        ));
        assert!(matches!(
            parse(br#"{"config": {"StopSignal": "SIGNOPE"}, "rootfs": {"type": "layers"}}"#),
            Err(ConfigError::StopSignal(_))
        ));
        assert!(parse(b"not json").is_err());
    }
}
