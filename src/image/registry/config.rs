//! `/etc/cleat/registries.toml`: the registry that short names belong to, and per registry its
//! mirrors, whether it is insecure, and an extra certificate authority to trust.
//!
//! ```toml
//! short-name-registry = "docker.io"
//!
//! [registries."docker.io"]
//! mirrors = ["mirror.example.com", "10.0.0.5:5000"]
//!
//! [registries."registry.lan:5000"]
//! insecure = true                     # plain HTTP, or HTTPS without certificate verification
//!
//! [registries."registry.example.com"]
//! ca-file = "/etc/cleat/certs/example-ca.pem"
//! ```
//!
//! A missing file means the defaults. Unknown keys and bad values are errors naming the file,
//! line and column.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::image::reference::{self, DOCKER_HUB};

/// Where the configuration lives.
pub const DEFAULT_PATH: &str = "/etc/cleat/registries.toml";

/// The registries configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistriesConfig {
    /// The file it came from (whether or not it exists), for messages.
    pub path: PathBuf,
    /// The registry of short names such as `ubuntu` (default `docker.io`).
    pub short_name_registry: String,
    /// Per-registry settings, keyed by normalised `host[:port]`.
    pub registries: BTreeMap<String, RegistryConfig>,
}

/// The settings of one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Mirrors that serve the same repositories, tried in order before the registry itself.
    pub mirrors: Vec<Mirror>,
    /// `Some(true)`: plain HTTP, or HTTPS without certificate verification. `Some(false)`:
    /// verified HTTPS only, even on a loopback address. `None`: the default (verified HTTPS;
    /// loopback registries as if insecure, as Docker does).
    pub insecure: Option<bool>,
    /// A PEM file of certificate authorities to trust in addition to the system's.
    pub ca_file: Option<PathBuf>,
}

/// A mirror of a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// `host[:port]`.
    pub host: String,
    /// Written as `http://host`: the mirror speaks plain HTTP.
    pub plain_http: bool,
}

/// A registries.toml that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:{line}:{column}: {message}", .path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Default for RegistriesConfig {
    fn default() -> RegistriesConfig {
        RegistriesConfig {
            path: PathBuf::from(DEFAULT_PATH),
            short_name_registry: DOCKER_HUB.to_owned(),
            registries: BTreeMap::new(),
        }
    }
}

impl RegistriesConfig {
    /// Reads the configuration at `path`; a missing file is the default configuration.
    pub fn load(path: &Path) -> Result<RegistriesConfig, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => RegistriesConfig::parse(&text, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RegistriesConfig {
                path: path.to_owned(),
                ..RegistriesConfig::default()
            }),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses the text of a configuration file; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<RegistriesConfig, ConfigError> {
        let invalid = |offset: usize, message: String| {
            let (line, column) = line_and_column(text, offset);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| invalid(e.span().map_or(0, |s| s.start), e.message().to_owned()))?;
        let short_name_registry = match raw.short_name_registry {
            Some(value) => registry_name(value.get_ref())
                .map_err(|message| invalid(value.span().start, message))?,
            None => DOCKER_HUB.to_owned(),
        };
        let mut registries = BTreeMap::new();
        for (key, raw) in raw.registries {
            let name = registry_name(key.get_ref())
                .map_err(|message| invalid(key.span().start, message))?;
            let settings = raw
                .validate()
                .map_err(|(offset, message)| invalid(offset, message))?;
            if registries.insert(name.clone(), settings).is_some() {
                return Err(invalid(
                    key.span().start,
                    format!("registry {name} is configured twice"),
                ));
            }
        }
        Ok(RegistriesConfig {
            path: path.to_owned(),
            short_name_registry,
            registries,
        })
    }

    /// The settings of `registry` (`host[:port]`), if it has any.
    pub fn registry(&self, registry: &str) -> Option<&RegistryConfig> {
        self.registries.get(reference::normalize_registry(registry))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    short_name_registry: Option<Spanned<String>>,
    #[serde(default)]
    registries: BTreeMap<Spanned<String>, RawRegistry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRegistry {
    #[serde(default)]
    mirrors: Vec<Spanned<String>>,
    insecure: Option<bool>,
    ca_file: Option<Spanned<String>>,
}

impl RawRegistry {
    /// The checked settings, or the offset and text of the first problem.
    fn validate(self) -> Result<RegistryConfig, (usize, String)> {
        let mirrors = self
            .mirrors
            .iter()
            .map(|m| parse_mirror(m.get_ref()).map_err(|message| (m.span().start, message)))
            .collect::<Result<_, _>>()?;
        let ca_file = match self.ca_file {
            Some(file) if !Path::new(file.get_ref()).is_absolute() => {
                return Err((
                    file.span().start,
                    format!("ca-file {:?} must be an absolute path", file.get_ref()),
                ));
            }
            Some(file) => Some(PathBuf::from(file.into_inner())),
            None => None,
        };
        Ok(RegistryConfig {
            mirrors,
            insecure: self.insecure,
            ca_file,
        })
    }
}

/// A registry name as a key or value: `host[:port]`, normalised.
fn registry_name(name: &str) -> Result<String, String> {
    if name.contains("://") || name.contains('/') {
        return Err(format!(
            "registry {name:?} must be host[:port], without a scheme or path"
        ));
    }
    reference::validate_registry(name)?;
    Ok(reference::normalize_registry(name).to_owned())
}

/// `host[:port]`, `https://host[:port]` or `http://host[:port]` (plain HTTP), with an optional
/// trailing slash.
fn parse_mirror(value: &str) -> Result<Mirror, String> {
    let (rest, plain_http) = if let Some(rest) = value.strip_prefix("http://") {
        (rest, true)
    } else if let Some(rest) = value.strip_prefix("https://") {
        (rest, false)
    } else {
        (value, false)
    };
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.contains('/') || host.contains("://") {
        return Err(format!(
            "mirror {value:?} must be host[:port] (optionally with http:// or https://), without a path"
        ));
    }
    reference::validate_registry(host).map_err(|e| format!("mirror {value:?}: {e}"))?;
    Ok(Mirror {
        host: host.to_owned(),
        plain_http,
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RegistriesConfig, String> {
        RegistriesConfig::parse(text, Path::new("/etc/cleat/registries.toml"))
            .map_err(|e| e.to_string())
    }

    /// The file the packages install is all comments, so it means the defaults; what it shows
    /// commented out is valid once uncommented.
    #[test]
    fn the_packaged_file_is_the_defaults_and_its_examples_are_valid() {
        let text = include_str!("../../../packaging/registries.toml");
        let config = parse(text).expect("the packaged file parses");
        let default = RegistriesConfig::default();
        assert_eq!(config.short_name_registry, default.short_name_registry);
        assert!(config.registries.is_empty());
        let settings: String = text
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| !l.is_empty() && !l.starts_with(' '))
            .map(|l| format!("{l}\n"))
            .collect();
        let config = parse(&settings).expect("the commented settings parse");
        assert_eq!(config.registries.len(), 3, "{settings}");
    }

    #[test]
    fn a_full_configuration() {
        let config = parse(
            r#"
short-name-registry = "registry.example.com:5000"

[registries."docker.io"]
mirrors = ["mirror.example.com", "https://m2.example.com:8443/", "http://10.0.0.5:5000"]

[registries."registry.lan:5000"]
insecure = true

[registries."registry.example.com"]
ca-file = "/etc/cleat/certs/ca.pem"
insecure = false
"#,
        )
        .unwrap();
        assert_eq!(config.short_name_registry, "registry.example.com:5000");
        let hub = config.registry("docker.io").unwrap();
        let mirrors: Vec<(&str, bool)> = hub
            .mirrors
            .iter()
            .map(|m| (m.host.as_str(), m.plain_http))
            .collect();
        assert_eq!(
            mirrors,
            [
                ("mirror.example.com", false),
                ("m2.example.com:8443", false),
                ("10.0.0.5:5000", true)
            ]
        );
        assert_eq!(config.registry("index.docker.io"), Some(hub));
        assert_eq!(
            config.registry("registry.lan:5000").unwrap().insecure,
            Some(true)
        );
        let example = config.registry("registry.example.com").unwrap();
        assert_eq!(
            example.ca_file.as_deref(),
            Some(Path::new("/etc/cleat/certs/ca.pem"))
        );
        assert_eq!(example.insecure, Some(false));
        assert!(config.registry("quay.io").is_none());
    }

    #[test]
    fn defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.short_name_registry, "docker.io");
        assert!(config.registries.is_empty());
        let config = parse("short-name-registry = \"index.docker.io\"").unwrap();
        assert_eq!(config.short_name_registry, "docker.io");
        let missing = RegistriesConfig::load(Path::new("/nonexistent/registries.toml")).unwrap();
        assert_eq!(missing.short_name_registry, "docker.io");
        assert_eq!(missing.path, Path::new("/nonexistent/registries.toml"));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let cases = [
            (
                "unknown = 1",
                "/etc/cleat/registries.toml:1:1: unknown field `unknown`",
            ),
            (
                "[registries.\"a.io\"]\nmirors = []",
                "/etc/cleat/registries.toml:2:1: unknown field `mirors`",
            ),
            (
                "[registries.\"a.io\"]\ninsecure = \"yes\"",
                "/etc/cleat/registries.toml:2:12: invalid type: string \"yes\", expected a boolean",
            ),
            (
                "[registries.\"a.io\"]\nmirrors = \"m.io\"",
                "/etc/cleat/registries.toml:2:11: invalid type: string \"m.io\", expected a sequence",
            ),
            (
                "[registries.\"a.io\"]\nmirrors = [\"m.io\", \"ftp://x/y\"]",
                "/etc/cleat/registries.toml:2:20: mirror \"ftp://x/y\" must be host[:port]",
            ),
            (
                "[registries.\"a.io\"]\nmirrors = [\"bad host\"]",
                "/etc/cleat/registries.toml:2:12: mirror \"bad host\": invalid registry",
            ),
            (
                "[registries.\"a.io\"]\nca-file = \"ca.pem\"",
                "/etc/cleat/registries.toml:2:11: ca-file \"ca.pem\" must be an absolute path",
            ),
            (
                "[registries.\"https://a.io\"]",
                "/etc/cleat/registries.toml:1:13: registry \"https://a.io\" must be host[:port]",
            ),
            (
                "[registries.\"a.io:x\"]",
                "/etc/cleat/registries.toml:1:13: invalid registry \"a.io:x\"",
            ),
            (
                "[registries.\"docker.io\"]\n[registries.\"index.docker.io\"]",
                "/etc/cleat/registries.toml:2:13: registry docker.io is configured twice",
            ),
            (
                "short-name-registry = \"a b\"",
                "/etc/cleat/registries.toml:1:23: invalid registry \"a b\"",
            ),
            ("x = [", "/etc/cleat/registries.toml:1:6"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(
                error.starts_with(expected),
                "{text:?}:\n  got      {error}\n  expected {expected}"
            );
        }
    }

    #[test]
    fn unreadable_files_are_errors() {
        let dir =
            std::env::temp_dir().join(format!("cleat-registries-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let error = RegistriesConfig::load(&dir).unwrap_err();
        assert!(
            error.to_string().starts_with(&dir.display().to_string()),
            "{error}"
        );
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_and_column("ab\ncdé f", 9), (2, 6));
        assert_eq!(line_and_column("", 0), (1, 1));
    }
}
