//! HTTP for the registry client: one reqwest client per TLS setting (verified with the system's
//! roots, verified with an extra certificate authority, unverified), requests retried with
//! exponential backoff and jitter on transient failures until a response arrives, and bodies
//! read with a stall timeout (no bytes for too long is an error, however long the whole body
//! takes).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Once;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::config::RegistriesConfig;
use super::error::{RegistryError, classify_send_error, is_not_tls_server, is_transient_status};

/// A blob's bytes as they arrive. Errors carry a [`RegistryError`] (see
/// [`RegistryError::from_io`]): a stall, or a connection that broke off.
pub type BlobStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// Timeouts and retries of a [`Client`](super::Client).
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time allowed to establish a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time allowed without receiving anything: for the response headers after the request
    /// is sent, and between two pieces of a body.
    pub read_timeout: Duration,
    pub retry: RetryPolicy,
    /// The largest manifest accepted.
    pub max_manifest_size: u64,
    pub user_agent: String,
}

/// How requests are retried on transient failures (connection errors, timeouts, 429, 5xx):
/// up to `attempts` tries, waiting `initial_delay` doubled after each failure (with jitter, at
/// most `max_delay`, or what a `Retry-After` asks for within that bound), and never past
/// `max_elapsed` since the first try.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub max_elapsed: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_manifest_size: 4 << 20,
            user_agent: format!("cleat/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

/// How a host's certificates are checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tls {
    /// Against the system's certificate authorities.
    Verified,
    /// Against the system's and those in this PEM file.
    VerifiedWith(PathBuf),
    /// Not at all (an `insecure` registry).
    Unverified,
}

/// The reqwest clients, built once, and the options.
#[derive(Debug)]
pub(super) struct Transport {
    verified: reqwest::Client,
    unverified: reqwest::Client,
    /// Verified with an extra certificate authority, per CA file.
    with_ca: HashMap<PathBuf, reqwest::Client>,
    pub(super) options: ClientOptions,
    /// registries.toml, for messages that suggest a setting.
    pub(super) config_path: PathBuf,
}

/// A failed send: the error, and whether it looks like the server does not speak TLS (so
/// plain HTTP is worth a try where it is allowed).
#[derive(Debug)]
pub(super) struct SendFailure {
    pub(super) error: RegistryError,
    pub(super) not_tls_server: bool,
}

impl From<SendFailure> for RegistryError {
    fn from(failure: SendFailure) -> RegistryError {
        failure.error
    }
}

/// Installs ring as rustls's process-wide crypto provider (reqwest is built without one).
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Transport {
    /// Builds a client for each TLS setting `config` uses.
    pub(super) fn new(
        config: &RegistriesConfig,
        options: ClientOptions,
    ) -> Result<Transport, RegistryError> {
        install_crypto_provider();
        let verified = build_client(&options, &TlsRoots::Verified)?;
        let unverified = build_client(&options, &TlsRoots::Unverified)?;
        let mut with_ca = HashMap::new();
        for (registry, settings) in &config.registries {
            if let Some(ca_file) = &settings.ca_file {
                if !with_ca.contains_key(ca_file) {
                    let certificates =
                        read_ca_file(ca_file).map_err(|detail| RegistryError::CaFile {
                            config: config.path.clone(),
                            registry: registry.clone(),
                            ca_file: ca_file.clone(),
                            detail,
                        })?;
                    let client = build_client(&options, &TlsRoots::VerifiedWith(certificates))?;
                    with_ca.insert(ca_file.clone(), client);
                }
            }
        }
        Ok(Transport {
            verified,
            unverified,
            with_ca,
            options,
            config_path: config.path.clone(),
        })
    }

    /// The client for a TLS setting.
    pub(super) fn client(&self, tls: &Tls) -> &reqwest::Client {
        match tls {
            Tls::Verified => &self.verified,
            Tls::Unverified => &self.unverified,
            // Endpoints come from the configuration the transport was built from, so every CA
            // file has its client.
            Tls::VerifiedWith(ca_file) => self.with_ca.get(ca_file).unwrap_or(&self.verified),
        }
    }

    /// Sends the request `make` builds, again on transient failures, until a response that is
    /// not worth retrying arrives or the retry budget is spent (then the last failure, which
    /// may be a response with a 5xx status, is returned).
    pub(super) async fn send<F>(
        &self,
        subject: &str,
        host: &str,
        make: F,
    ) -> Result<reqwest::Response, SendFailure>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let policy = &self.options.retry;
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let outcome = self.send_once(subject, host, make()).await;
            let retryable = match &outcome {
                Ok(response) => is_transient_status(response.status().as_u16()),
                Err(failure) => failure.error.is_transient(),
            };
            if !retryable || attempt >= policy.attempts {
                return outcome;
            }
            let asked = outcome.as_ref().ok().and_then(|r| retry_after(r.headers()));
            let delay = backoff_delay(policy, attempt, asked);
            if started.elapsed() + delay > policy.max_elapsed {
                return outcome;
            }
            drop(outcome);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One try: the response headers, within the connect and read timeouts.
    async fn send_once(
        &self,
        subject: &str,
        host: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SendFailure> {
        let limit = self.options.connect_timeout + self.options.read_timeout;
        let failure = |error, not_tls_server| SendFailure {
            error,
            not_tls_server,
        };
        match tokio::time::timeout(limit, request.send()).await {
            Ok(Ok(response)) => Ok(response),
            // reqwest times out only while connecting: the overall limit is ours.
            Ok(Err(error)) if error.is_timeout() => Err(failure(
                self.timeout(subject, host, self.options.connect_timeout),
                false,
            )),
            Ok(Err(error)) => Err(failure(
                classify_send_error(&error, subject, host, &self.config_path),
                is_not_tls_server(&error),
            )),
            Err(_) => Err(failure(self.timeout(subject, host, limit), false)),
        }
    }

    fn timeout(&self, subject: &str, host: &str, after: Duration) -> RegistryError {
        RegistryError::Timeout {
            subject: subject.to_owned(),
            host: host.to_owned(),
            after,
        }
    }

    /// The body of `response` as a stream that fails when no bytes arrive for the read
    /// timeout.
    pub(super) fn body_stream(
        &self,
        response: reqwest::Response,
        subject: &str,
        host: &str,
    ) -> BlobStream {
        let read_timeout = self.options.read_timeout;
        let subject = subject.to_owned();
        let host = host.to_owned();
        let body = response.bytes_stream();
        Box::pin(futures_util::stream::unfold(Some(body), move |body| {
            let subject = subject.clone();
            let host = host.clone();
            async move {
                let mut body = body?;
                match tokio::time::timeout(read_timeout, body.next()).await {
                    Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(body))),
                    Ok(None) => None,
                    Ok(Some(Err(error))) => {
                        let failure = RegistryError::Interrupted {
                            subject,
                            detail: format!(
                                "the download from {host} broke off: {}",
                                super::error::innermost(&error)
                            ),
                        };
                        Some((Err(io::Error::other(failure)), None))
                    }
                    Err(_) => {
                        let stalled = RegistryError::Stalled {
                            subject,
                            host,
                            after: read_timeout,
                        };
                        Some((Err(io::Error::new(io::ErrorKind::TimedOut, stalled)), None))
                    }
                }
            }
        }))
    }

    /// The whole body of `response`, at most `limit` bytes (`what` names it in the error).
    pub(super) async fn read_body(
        &self,
        response: reqwest::Response,
        limit: u64,
        subject: &str,
        host: &str,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_large = || RegistryError::TooLarge {
            subject: subject.to_owned(),
            what: what.to_owned(),
            limit,
        };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let capacity = response.content_length().unwrap_or(0).min(limit);
        let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        let mut stream = self.body_stream(response, subject, host);
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| into_registry_error(e, subject))?;
            if body.len() as u64 + piece.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&piece);
        }
        Ok(body)
    }
}

/// The registry error a body stream's I/O error carries.
fn into_registry_error(error: io::Error, subject: &str) -> RegistryError {
    match error
        .into_inner()
        .map(|inner| inner.downcast::<RegistryError>())
    {
        Some(Ok(registry_error)) => *registry_error,
        Some(Err(other)) => RegistryError::Interrupted {
            subject: subject.to_owned(),
            detail: other.to_string(),
        },
        None => RegistryError::Interrupted {
            subject: subject.to_owned(),
            detail: "reading the response failed".to_owned(),
        },
    }
}

/// The certificates of a PEM file, or what is wrong with it.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certificates.is_empty() {
        return Err("no certificates in the file".to_owned());
    }
    Ok(certificates)
}

/// How a client checks certificates, with the extra roots loaded.
enum TlsRoots {
    Verified,
    VerifiedWith(Vec<reqwest::Certificate>),
    Unverified,
}

fn build_client(options: &ClientOptions, tls: &TlsRoots) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .user_agent(options.user_agent.clone())
        // Redirects are followed (blobs often live on a storage service); reqwest drops the
        // Authorization header when one leads to another host, port or scheme.
        .redirect(reqwest::redirect::Policy::limited(10));
    match tls {
        TlsRoots::Verified => {}
        TlsRoots::Unverified => builder = builder.tls_danger_accept_invalid_certs(true),
        TlsRoots::VerifiedWith(certificates) => {
            builder = builder.tls_certs_merge(certificates.iter().cloned())
        }
    }
    builder.build().map_err(|e| RegistryError::Protocol {
        subject: "registry client".to_owned(),
        detail: format!("cannot set up HTTPS: {}", super::error::error_chain(&e)),
    })
}

/// A `Retry-After` given in seconds (the HTTP-date form is rare from registries and ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The wait before try `attempt + 1`: the initial delay doubled per failure, with the upper
/// half jittered, capped at the maximum; a `Retry-After` within the maximum wins.
fn backoff_delay(policy: &RetryPolicy, attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(asked) = retry_after.filter(|d| *d <= policy.max_delay) {
        return asked;
    }
    let exponential = policy
        .initial_delay
        .saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let capped = exponential.min(policy.max_delay);
    let half = capped / 2;
    half + half.mul_f64(random_fraction())
}

/// A random number in [0, 1).
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    let random = ring::rand::SystemRandom::new();
    if ring::rand::SecureRandom::fill(&random, &mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_ne_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let policy = RetryPolicy {
            attempts: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(10),
        };
        for attempt in 1..=10 {
            let expected =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            for _ in 0..20 {
                let delay = backoff_delay(&policy, attempt, None);
                assert!(
                    delay >= expected / 2 && delay <= expected,
                    "attempt {attempt}: {delay:?}"
                );
            }
        }
        assert_eq!(
            backoff_delay(&policy, 1, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        let ignored = backoff_delay(&policy, 1, Some(Duration::from_secs(60)));
        assert!(ignored <= Duration::from_millis(100));
        assert!(backoff_delay(&policy, u32::MAX, None) <= Duration::from_secs(1));
    }

    #[test]
    fn retry_after_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn random_fractions_are_in_range() {
        for _ in 0..100 {
            let f = random_fraction();
            assert!((0.0..1.0).contains(&f));
        }
    }
}
