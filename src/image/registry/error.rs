//! [`RegistryError`]: everything that can go wrong talking to a registry, each a single line
//! that names what was being fetched (the subject: `image docker.io/library/ubuntu:latest`,
//! `blob sha256:… of docker.io/library/ubuntu`) and the cause, and the classification of
//! transport failures into those causes.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::image::Digest;
use crate::image::manifest::{ManifestError, Platform, PlatformList};
use crate::image::reference::ReferenceError;

use super::config::ConfigError;
use super::creds::CredentialsError;

/// A registry operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    InvalidReference(#[from] ReferenceError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A certificate authority file from registries.toml that cannot be used.
    #[error("{}: ca-file {} for {registry}: {detail}", .config.display(), .ca_file.display())]
    CaFile {
        config: PathBuf,
        registry: String,
        ca_file: PathBuf,
        detail: String,
    },
    #[error("{subject}: unknown host {host}: {detail}")]
    UnknownHost {
        subject: String,
        host: String,
        detail: String,
    },
    #[error("{subject}: cannot connect to {host}: {detail}")]
    Unreachable {
        subject: String,
        host: String,
        detail: String,
    },
    #[error(
        "{subject}: TLS failure talking to {host}: {detail}; if it uses a private certificate \
         authority, set ca-file for it in {}, or insecure = true to skip verification",
        .config.display()
    )]
    Tls {
        subject: String,
        host: String,
        detail: String,
        config: PathBuf,
    },
    #[error("{subject}: {host} did not answer within {}", DisplaySeconds(*.after))]
    Timeout {
        subject: String,
        host: String,
        after: Duration,
    },
    #[error("{subject}: the download from {host} stalled: no data for {}", DisplaySeconds(*.after))]
    Stalled {
        subject: String,
        host: String,
        after: Duration,
    },
    #[error("{subject}: unauthorized: {detail}; log in with cleat login {registry}")]
    Unauthorized {
        subject: String,
        registry: String,
        detail: String,
    },
    #[error("{subject} not found: {detail}")]
    NotFound { subject: String, detail: String },
    #[error("{subject} has no manifest for platform {wanted}; available: {}", PlatformList(.available))]
    NoMatchingPlatform {
        subject: String,
        wanted: Platform,
        available: Vec<Platform>,
    },
    #[error("{subject}: digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        subject: String,
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{subject}: {what} is too large: more than {limit} bytes")]
    TooLarge {
        subject: String,
        what: String,
        limit: u64,
    },
    /// A manifest cleat cannot use (unsupported media type, schema 1, a layer type it cannot
    /// unpack, invalid JSON).
    #[error("{subject}: {source}")]
    Manifest {
        subject: String,
        #[source]
        source: ManifestError,
    },
    #[error("{subject}: {host} answered {}{}", DisplayStatus(*.status), DisplayDetail(.detail))]
    Status {
        subject: String,
        host: String,
        status: u16,
        detail: String,
    },
    /// An exchange that broke off: a connection closed before the response was complete.
    #[error("{subject}: {detail}")]
    Interrupted { subject: String, detail: String },
    /// Anything else about the exchange: too many redirects, a token server that answered
    /// nonsense, a nested index.
    #[error("{subject}: {detail}")]
    Protocol { subject: String, detail: String },
}

impl RegistryError {
    /// Whether trying again later might succeed (connection problems, timeouts, stalls,
    /// 429 and 5xx answers).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. }
            | RegistryError::Timeout { .. }
            | RegistryError::Stalled { .. } => true,
            RegistryError::Status { status, .. } => is_transient_status(*status),
            RegistryError::Interrupted { .. } => true,
            _ => false,
        }
    }

    /// The registry error behind an I/O error from a blob stream, if it carries one.
    pub fn from_io(error: &io::Error) -> Option<&RegistryError> {
        error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<RegistryError>())
    }
}

/// Statuses worth retrying: request timeout, too many requests, and server errors other than
/// "not implemented" and "HTTP version not supported".
pub(super) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status) && !matches!(status, 501 | 505)
}

/// `30 s`, `0.2 s`.
struct DisplaySeconds(Duration);

impl fmt::Display for DisplaySeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_millis() == 0 {
            write!(f, "{} s", self.0.as_secs())
        } else {
            write!(f, "{:.1} s", self.0.as_secs_f64())
        }
    }
}

/// `404 Not Found`: the code and its reason phrase, when it has one.
struct DisplayStatus(u16);

impl fmt::Display for DisplayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = reqwest::StatusCode::from_u16(self.0)
            .ok()
            .and_then(|s| s.canonical_reason());
        match reason {
            Some(reason) => write!(f, "{} {reason}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// `: detail` when there is one.
struct DisplayDetail<'a>(&'a str);

impl fmt::Display for DisplayDetail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, ": {}", self.0)
        }
    }
}

/// The registry's own explanation in an error body (`{"errors":[{"code","message"}]}`), or a
/// short plain-text body; empty when there is neither.
pub(super) fn render_error_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(body) = serde_json::from_slice::<Body>(body) {
        let items: Vec<String> = body
            .errors
            .iter()
            .map(|item| match (item.message.trim(), item.code.trim()) {
                ("", code) => code.to_ascii_lowercase().replace('_', " "),
                (message, _) => message.to_owned(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        return items.join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let looks_plain =
        !text.is_empty() && text.len() <= 200 && !text.contains('<') && !text.contains('\n');
    if looks_plain {
        text.to_owned()
    } else {
        String::new()
    }
}

/// What a failed send means, in user terms.
pub(super) fn classify_send_error(
    error: &reqwest::Error,
    subject: &str,
    host: &str,
    config: &Path,
) -> RegistryError {
    let detail = error_chain(error);
    if let Some(tls) = tls_error(error) {
        return RegistryError::Tls {
            subject: subject.to_owned(),
            host: host.to_owned(),
            detail: tls.to_string(),
            config: config.to_owned(),
        };
    }
    if error.is_connect() && is_dns_failure(error) {
        return RegistryError::UnknownHost {
            subject: subject.to_owned(),
            host: host_of_url(error).unwrap_or_else(|| host.to_owned()),
            detail: innermost(error),
        };
    }
    if error.is_connect() {
        return RegistryError::Unreachable {
            subject: subject.to_owned(),
            host: host.to_owned(),
            detail: innermost(error),
        };
    }
    if error.is_redirect() || error.is_builder() {
        return RegistryError::Protocol {
            subject: subject.to_owned(),
            detail: format!("request to {host} failed: {detail}"),
        };
    }
    RegistryError::Interrupted {
        subject: subject.to_owned(),
        detail: format!("request to {host} failed: {detail}"),
    }
}

/// The rustls error in a failure's causes, if TLS is what failed.
pub(super) fn tls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    causes(error).find_map(|e| e.downcast_ref::<rustls::Error>())
}

/// An error and its causes, outermost first. An `io::Error` wrapping another error reports
/// that error's source as its own, skipping the wrapped error itself; here the wrapped error
/// is a cause of its own (so a rustls error inside I/O errors is found).
fn causes<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&e: &&'a (dyn StdError + 'static)| match e
        .downcast_ref::<io::Error>()
    {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => e.source(),
    })
}

/// Whether a TLS failure means the server does not speak TLS at all (as opposed to a
/// certificate it could not verify): then plain HTTP may be tried, where allowed.
pub(super) fn is_not_tls_server(error: &reqwest::Error) -> bool {
    match tls_error(error) {
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
            false
        }
        Some(_) => true,
        None => {
            error.is_connect()
                && io_kinds(error).any(|k| {
                    matches!(
                        k,
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                    )
                })
        }
    }
}

fn io_kinds<'a>(error: &'a (dyn StdError + 'static)) -> impl Iterator<Item = io::ErrorKind> + 'a {
    causes(error).filter_map(|e| e.downcast_ref::<io::Error>().map(io::Error::kind))
}

/// hyper-util reports resolver failures as "dns error".
fn is_dns_failure(error: &reqwest::Error) -> bool {
    causes(error)
        .skip(1)
        .any(|e| e.to_string().starts_with("dns error"))
}

fn host_of_url(error: &reqwest::Error) -> Option<String> {
    let url = error.url()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// The deepest cause's message ("Connection refused (os error 111)").
pub(super) fn innermost(error: &(dyn StdError + 'static)) -> String {
    causes(error)
        .last()
        .map_or_else(String::new, ToString::to_string)
}

/// Every cause's message, outermost first, without repeats.
pub(super) fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in causes(error) {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_bodies_are_rendered() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(render_error_body(body), "manifest unknown");
        let body = br#"{"errors":[{"code":"DENIED"},{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        assert_eq!(render_error_body(body), "denied; authentication required");
        assert_eq!(
            render_error_body(b"upstream connect error\n"),
            "upstream connect error"
        );
        assert_eq!(render_error_body(b"<html><body>502</body></html>"), "");
        assert_eq!(render_error_body(b""), "");
    }

    #[test]
    fn transient_statuses() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 501, 505] {
            assert!(!is_transient_status(status), "{status}");
        }
    }

    #[test]
    fn messages_name_subject_and_cause() {
        let e = RegistryError::NotFound {
            subject: "image docker.io/library/nope:latest".into(),
            detail: "manifest unknown".into(),
        };
        assert_eq!(
            e.to_string(),
            "image docker.io/library/nope:latest not found: manifest unknown"
        );
        let e = RegistryError::Status {
            subject: "image x".into(),
            host: "r.io".into(),
            status: 500,
            detail: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "image x: r.io answered 500 Internal Server Error"
        );
        let e = RegistryError::Unauthorized {
            subject: "image x".into(),
            registry: "r.io".into(),
            detail: "access denied".into(),
        };
        assert_eq!(
            e.to_string(),
            "image x: unauthorized: access denied; log in with cleat login r.io"
        );
    }
}
