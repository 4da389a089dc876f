//! The registry client: the Distribution API v2 (OCI distribution spec) over reqwest.
//!
//! [`Client::resolve`] turns a reference and a platform into one image manifest, following an
//! image index or manifest list, verifying every digest it can; the [`Resolved`] value names
//! the [`Endpoint`] (a mirror, or the registry itself) that served it, so the blobs are fetched
//! from the same place with [`Client::blob_stream`] (layers, streamed, verified by the caller)
//! and [`Client::blob_bytes`] (configs, verified here).
//!
//! Around every request: the 401 challenge flow with bearer tokens or basic credentials
//! ([`auth`], [`creds`]); mirrors, insecure registries and extra certificate authorities from
//! registries.toml ([`config`]); retries with backoff on transient failures and a stall
//! timeout on bodies (`transport`). Registries on a loopback address are reached over plain
//! HTTP when they do not speak HTTPS, as Docker does.

pub mod auth;
pub mod config;
pub mod creds;
mod error;
mod transport;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE,
};

use crate::image::Digest;
use crate::image::manifest::{self, Fetched, Manifest, ManifestError, Platform};
use crate::image::reference::{self, Reference, ReferenceError};

use auth::{AuthCache, Challenge, Token};
use config::RegistriesConfig;
use creds::{Credential, Credentials, Found};

pub use error::RegistryError;
pub use transport::{BlobStream, ClientOptions, RetryPolicy, Tls};

/// The largest error body read to explain a failure.
const MAX_ERROR_BODY: u64 = 64 << 10;
/// The largest token server answer accepted.
const MAX_TOKEN_ANSWER: u64 = 1 << 20;

/// A registry client: configuration, credentials, HTTP clients and the authentication cache.
/// Cheap to share by reference across concurrent pulls.
#[derive(Debug)]
pub struct Client {
    config: RegistriesConfig,
    credentials: Credentials,
    transport: transport::Transport,
    auth: AuthCache,
    /// The scheme each host turned out to speak, for hosts that may use either.
    schemes: Mutex<HashMap<String, Scheme>>,
}

/// Where registry requests go: a mirror, or the registry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` of the server (`registry-1.docker.io` for Docker Hub).
    pub host: String,
    /// The registry whose repositories it serves (`docker.io`).
    pub registry: String,
    /// Whether it is a mirror rather than the registry itself.
    pub is_mirror: bool,
    /// How its certificates are checked.
    pub tls: Tls,
    /// The schemes to try, in order.
    schemes: Vec<Scheme>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

impl Endpoint {
    /// The name credentials are looked up under: the registry for the registry itself, the
    /// mirror's host for a mirror.
    pub fn credentials_name(&self) -> &str {
        if self.is_mirror {
            &self.host
        } else {
            &self.registry
        }
    }
}

/// An image manifest resolved for a platform.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub reference: Reference,
    /// The mirror or registry that served the manifest; fetch the blobs from it.
    pub endpoint: Endpoint,
    /// The digest of the image manifest (the platform's manifest when there was an index).
    pub digest: Digest,
    /// The image manifest exactly as served.
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    /// The index or manifest list the reference pointed at, if it did.
    pub index: Option<FetchedIndex>,
    /// The platform of the manifest chosen from the index; `None` when the reference named a
    /// single manifest (its platform is in its config).
    pub platform: Option<Platform>,
    /// Why mirrors tried before `endpoint` failed, one line each.
    pub mirror_failures: Vec<String>,
}

/// An image index or manifest list, exactly as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedIndex {
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

/// The credential for a request, and where it came from.
#[derive(Clone, Copy)]
struct Login<'a> {
    credential: &'a Credential,
    source: &'a Path,
}

impl<'a> From<Found<'a>> for Login<'a> {
    fn from(found: Found<'a>) -> Login<'a> {
        Login {
            credential: found.credential,
            source: found.source,
        }
    }
}

/// What a request is for, for messages and authentication.
struct Request<'a> {
    /// `image docker.io/library/ubuntu:latest`, `blob sha256:… of …`.
    subject: &'a str,
    endpoint: &'a Endpoint,
    /// The repository, for the token scope and credentials; `None` for the API root.
    repository: Option<&'a str>,
}

impl Client {
    /// A client for `config` and `credentials`.
    pub fn new(
        config: RegistriesConfig,
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Client, RegistryError> {
        let transport = transport::Transport::new(&config, options)?;
        Ok(Client {
            config,
            credentials,
            transport,
            auth: AuthCache::default(),
            schemes: Mutex::new(HashMap::new()),
        })
    }

    /// A client for the system: `/etc/cleat/registries.toml` and the credential files of
    /// [`creds::default_paths`].
    pub fn from_system(options: ClientOptions) -> Result<Client, RegistryError> {
        let config = RegistriesConfig::load(Path::new(config::DEFAULT_PATH))?;
        let credentials = Credentials::load_default()?;
        Client::new(config, credentials, options)
    }

    pub fn config(&self) -> &RegistriesConfig {
        &self.config
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Parses a reference with the configured short-name registry.
    pub fn parse_reference(&self, s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse_with(s, &self.config.short_name_registry)
    }

    /// The endpoints for `registry`, in the order they are tried: its mirrors, then itself.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let registry = reference::normalize_registry(registry);
        let mirrors = self
            .config
            .registry(registry)
            .map(|c| c.mirrors.as_slice())
            .unwrap_or_default();
        let mut endpoints: Vec<Endpoint> = mirrors
            .iter()
            .map(|mirror| self.endpoint(registry, &mirror.host, true, mirror.plain_http))
            .collect();
        endpoints.push(self.endpoint(registry, reference::api_host(registry), false, false));
        endpoints
    }

    /// How to reach `host`: its own settings in registries.toml (for the registry itself, those
    /// of the registry name), with loopback hosts insecure unless configured otherwise.
    fn endpoint(&self, registry: &str, host: &str, is_mirror: bool, plain_http: bool) -> Endpoint {
        let settings_name = if is_mirror { host } else { registry };
        let settings = self
            .config
            .registry(settings_name)
            .cloned()
            .unwrap_or_default();
        let loopback = reference::is_loopback_host(host);
        let insecure = settings
            .insecure
            .unwrap_or(loopback && settings.ca_file.is_none());
        let tls = match (&settings.ca_file, insecure) {
            (_, true) => Tls::Unverified,
            (Some(ca_file), false) => Tls::VerifiedWith(ca_file.clone()),
            (None, false) => Tls::Verified,
        };
        let http_allowed = insecure || (loopback && settings.insecure != Some(false));
        let schemes = match (plain_http, http_allowed) {
            (true, _) => vec![Scheme::Http],
            (false, true) => vec![Scheme::Https, Scheme::Http],
            (false, false) => vec![Scheme::Https],
        };
        Endpoint {
            host: host.to_owned(),
            registry: registry.to_owned(),
            is_mirror,
            tls,
            schemes,
        }
    }

    /// Finds the image manifest of `reference` for `platform`: tries each mirror, then the
    /// registry. A digest in the reference must match the manifest (or index) served; a
    /// platform's manifest must match the digest the index gives for it.
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Resolved, RegistryError> {
        let subject = format!("image {reference}");
        let mut mirror_failures = Vec::new();
        for endpoint in self.endpoints(&reference.registry) {
            match self
                .resolve_at(&endpoint, reference, platform, &subject)
                .await
            {
                Ok(resolved) => {
                    return Ok(Resolved {
                        mirror_failures,
                        ..resolved
                    });
                }
                Err(error) if endpoint.is_mirror => {
                    mirror_failures.push(format!("mirror {}: {error}", endpoint.host))
                }
                Err(error) => return Err(error),
            }
        }
        Err(RegistryError::Protocol {
            subject,
            detail: "no endpoint to pull from".to_owned(),
        })
    }

    async fn resolve_at(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        platform: &Platform,
        subject: &str,
    ) -> Result<Resolved, RegistryError> {
        let request = Request {
            subject,
            endpoint,
            repository: Some(&reference.repository),
        };
        let (bytes, content_type) = self
            .fetch_manifest(&request, &reference.manifest_reference())
            .await?;
        let digest = Digest::of(&bytes);
        if let Some(pinned) = &reference.digest {
            verify_digest(subject, "the manifest", pinned, &digest)?;
        }
        let resolved = |digest, manifest_bytes, manifest, index, platform| Resolved {
            reference: reference.clone(),
            endpoint: endpoint.clone(),
            digest,
            manifest_bytes,
            manifest,
            index,
            platform,
            mirror_failures: Vec::new(),
        };
        let entries = match parse_manifest(subject, &bytes, content_type.as_deref())? {
            Fetched::Manifest(manifest) => {
                return Ok(resolved(digest, bytes, manifest, None, None));
            }
            Fetched::Index(entries) => entries,
        };
        let (chosen, descriptor) = platform
            .select(&entries)
            .map_err(|error| platform_error(subject, error))?;
        let what = format!("the {chosen} manifest");
        let (child, _) = self
            .fetch_manifest(&request, &descriptor.digest.to_string())
            .await?;
        verify_digest(subject, &what, &descriptor.digest, &Digest::of(&child))?;
        match parse_manifest(subject, &child, Some(&descriptor.media_type))? {
            Fetched::Manifest(manifest) => {
                let index = FetchedIndex { digest, bytes };
                Ok(resolved(
                    descriptor.digest.clone(),
                    child,
                    manifest,
                    Some(index),
                    Some(chosen.clone()),
                ))
            }
            Fetched::Index(_) => Err(RegistryError::Manifest {
                subject: subject.to_owned(),
                source: ManifestError::Invalid {
                    kind: "image index",
                    reason: format!("{what} is another index; nested indexes are not supported"),
                },
            }),
        }
    }

    /// GETs a manifest by tag or digest: its bytes and Content-Type.
    async fn fetch_manifest(
        &self,
        request: &Request<'_>,
        reference: &str,
    ) -> Result<(Vec<u8>, Option<String>), RegistryError> {
        let repository = request.repository.unwrap_or_default();
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = self.get(request, &path, Some(manifest::ACCEPT)).await?;
        let response = self
            .check_status(request, response, "manifest unknown")
            .await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let limit = self.transport.options.max_manifest_size;
        let bytes = self
            .transport
            .read_body(
                response,
                limit,
                request.subject,
                &request.endpoint.host,
                "the manifest",
            )
            .await?;
        Ok((bytes, content_type))
    }

    /// Starts downloading a blob from `endpoint` (use [`Resolved::endpoint`]): its bytes as
    /// they arrive, and its length when the server says. The caller hashes and verifies them.
    /// A body that stops delivering bytes for the read timeout fails with a
    /// [`RegistryError::Stalled`] inside the I/O error.
    pub async fn blob_stream(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        digest: &Digest,
    ) -> Result<(BlobStream, Option<u64>), RegistryError> {
        let (subject, response) = self.blob_response(endpoint, repository, digest).await?;
        let length = response.content_length();
        let host = response_host(&response);
        Ok((
            self.transport.body_stream(response, &subject, &host),
            length,
        ))
    }

    /// GETs a blob: its subject (for messages) and the successful response.
    async fn blob_response(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        digest: &Digest,
    ) -> Result<(String, reqwest::Response), RegistryError> {
        let subject = blob_subject(endpoint, repository, digest);
        let request = Request {
            subject: &subject,
            endpoint,
            repository: Some(repository),
        };
        let response = self
            .get(&request, &format!("/v2/{repository}/blobs/{digest}"), None)
            .await?;
        let response = self
            .check_status(&request, response, "blob unknown")
            .await?;
        Ok((subject, response))
    }

    /// Downloads a small blob (an image config) whole: at most `max_size` bytes, verified
    /// against `digest`.
    pub async fn blob_bytes(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        digest: &Digest,
        max_size: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let (subject, response) = self.blob_response(endpoint, repository, digest).await?;
        let host = response_host(&response);
        let bytes = self
            .transport
            .read_body(response, max_size, &subject, &host, "the blob")
            .await?;
        verify_digest(&subject, "the blob", digest, &Digest::of(&bytes))?;
        Ok(bytes)
    }

    /// Checks that `username` and `password` are accepted by `registry` (`host[:port]`, or a
    /// URL as Docker writes them), for `cleat login`: GET /v2/ and answer its challenge with
    /// them. A registry that needs no credentials accepts any.
    pub async fn check_login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<(), RegistryError> {
        let name = creds::normalize_key(registry);
        let name = name.split('/').next().unwrap_or_default().to_owned();
        reference::validate_registry(&name).map_err(|reason| ReferenceError {
            input: registry.to_owned(),
            reason,
        })?;
        let endpoint = self.endpoint(&name, reference::api_host(&name), false, false);
        let subject = format!("registry {name}");
        let request = Request {
            subject: &subject,
            endpoint: &endpoint,
            repository: None,
        };
        let credential = Credential {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        let login = Login {
            credential: &credential,
            source: Path::new("the command line"),
        };
        let response = self.send(&request, "/v2/", &HeaderMap::new()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            self.check_status(&request, response, "").await?;
            return Ok(());
        }
        let header = self
            .answer_challenge(&request, &response, "", Some(login))
            .await?;
        let response = self
            .send(&request, "/v2/", &headers(None, Some(&header))?)
            .await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(self.unauthorized(&request, response, Some(login)).await);
        }
        self.check_status(&request, response, "").await?;
        Ok(())
    }

    /// GET with authentication: a cached token or basic credentials when there are some,
    /// else the 401 challenge flow, once.
    async fn get(
        &self,
        request: &Request<'_>,
        path: &str,
        accept: Option<&'static str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let endpoint = request.endpoint;
        let scope = request.repository.map(auth::pull_scope).unwrap_or_default();
        let login = self.login_for(request);
        let cached = self
            .auth
            .header(&endpoint.host, &scope, login.map(|l| l.credential));
        let response = self
            .send(request, path, &headers(accept, cached.as_deref())?)
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.auth.forget(&endpoint.host, &scope);
        let header = self
            .answer_challenge(request, &response, &scope, login)
            .await?;
        let response = self
            .send(request, path, &headers(accept, Some(&header))?)
            .await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(self.unauthorized(request, response, login).await);
        }
        Ok(response)
    }

    fn login_for<'a>(&'a self, request: &Request<'_>) -> Option<Login<'a>> {
        let repository = request.repository.unwrap_or_default();
        self.credentials
            .find(request.endpoint.credentials_name(), repository)
            .map(Login::from)
    }

    /// The `Authorization` value that answers the challenge of a 401 `response`.
    async fn answer_challenge(
        &self,
        request: &Request<'_>,
        response: &reqwest::Response,
        scope: &str,
        login: Option<Login<'_>>,
    ) -> Result<String, RegistryError> {
        let endpoint = request.endpoint;
        let values = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let challenges = auth::parse_challenges(values);
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            subject: request.subject.to_owned(),
            registry: endpoint.credentials_name().to_owned(),
            detail,
        };
        match auth::preferred(&challenges) {
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = self
                    .fetch_token(request, realm, service.as_deref(), scope, login)
                    .await?;
                Ok(self.auth.store_token(&endpoint.host, scope, &token))
            }
            Some(Challenge::Basic { .. }) => match login {
                Some(login) => {
                    self.auth.remember_basic(&endpoint.host);
                    Ok(auth::basic_header(login.credential))
                }
                None => Err(unauthorized(format!(
                    "{} requires a user name and password",
                    endpoint.host
                ))),
            },
            _ => {
                let offered: Vec<&str> = challenges
                    .iter()
                    .map(|c| match c {
                        Challenge::Other(scheme) => scheme.as_str(),
                        Challenge::Bearer { .. } => "Bearer",
                        Challenge::Basic { .. } => "Basic",
                    })
                    .collect();
                let offered = if offered.is_empty() {
                    "none".to_owned()
                } else {
                    offered.join(", ")
                };
                Err(unauthorized(format!(
                    "{} asks for authentication cleat does not support (WWW-Authenticate schemes: {offered})",
                    endpoint.host
                )))
            }
        }
    }

    /// Gets a bearer token from `realm` for `service` and `scope`, with the credentials when
    /// there are some.
    async fn fetch_token(
        &self,
        request: &Request<'_>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        login: Option<Login<'_>>,
    ) -> Result<Token, RegistryError> {
        let protocol = |detail: String| RegistryError::Protocol {
            subject: request.subject.to_owned(),
            detail,
        };
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| protocol(format!("the token realm {realm:?} is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(protocol(format!(
                "the token realm {realm:?} is not an http or https URL"
            )));
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            if !scope.is_empty() {
                query.append_pair("scope", scope);
            }
        }
        let realm_host = url_host(&url);
        let client = self.transport.client(&request.endpoint.tls);
        let authorization = login.map(|l| auth::basic_header(l.credential));
        let headers = headers(None, authorization.as_deref())?;
        let response = self
            .transport
            .send(request.subject, &realm_host, || {
                client.get(url.clone()).headers(headers.clone())
            })
            .await?;
        match response.status() {
            status if status.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let detail = self.error_detail(response).await;
                let who = match login {
                    Some(l) => format!(
                        "the credentials of {} from {}",
                        l.credential.username,
                        l.source.display()
                    ),
                    None => "anonymous access".to_owned(),
                };
                return Err(RegistryError::Unauthorized {
                    subject: request.subject.to_owned(),
                    registry: request.endpoint.credentials_name().to_owned(),
                    detail: format!(
                        "the token server {realm_host} refused {who}{}",
                        colon_detail(&detail)
                    ),
                });
            }
            status => {
                return Err(RegistryError::Status {
                    subject: request.subject.to_owned(),
                    host: realm_host,
                    status: status.as_u16(),
                    detail: self.error_detail(response).await,
                });
            }
        }
        let body = self
            .transport
            .read_body(
                response,
                MAX_TOKEN_ANSWER,
                request.subject,
                &realm_host,
                "the token answer",
            )
            .await?;
        auth::parse_token_answer(&body).map_err(protocol)
    }

    /// The unauthorized error for a 401 that survived authentication.
    async fn unauthorized(
        &self,
        request: &Request<'_>,
        response: reqwest::Response,
        login: Option<Login<'_>>,
    ) -> RegistryError {
        let endpoint = request.endpoint;
        let said = self.error_detail(response).await;
        let detail = match login {
            Some(l) => format!(
                "{} refused the credentials of {} from {}{}",
                endpoint.host,
                l.credential.username,
                l.source.display(),
                colon_detail(&said)
            ),
            None => format!(
                "{} refused anonymous access{} (the repository may not exist, or may need credentials)",
                endpoint.host,
                colon_detail(&said)
            ),
        };
        RegistryError::Unauthorized {
            subject: request.subject.to_owned(),
            registry: endpoint.credentials_name().to_owned(),
            detail,
        }
    }

    /// Sends a GET to `endpoint`, over HTTPS or, where allowed and HTTPS is not spoken, plain
    /// HTTP; remembers which worked.
    async fn send(
        &self,
        request: &Request<'_>,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<reqwest::Response, RegistryError> {
        let endpoint = request.endpoint;
        let client = self.transport.client(&endpoint.tls);
        let schemes = self.schemes_for(endpoint);
        let mut last_failure = None;
        for (i, scheme) in schemes.iter().enumerate() {
            let url = format!("{}://{}{path}", scheme.as_str(), endpoint.host);
            let result = self
                .transport
                .send(request.subject, &endpoint.host, || {
                    client.get(&url).headers(headers.clone())
                })
                .await;
            match result {
                Ok(response) => {
                    self.learn_scheme(endpoint, *scheme);
                    return Ok(response);
                }
                // The server does not speak TLS: plain HTTP is next.
                Err(failure)
                    if *scheme == Scheme::Https
                        && failure.not_tls_server
                        && i + 1 < schemes.len() =>
                {
                    last_failure = Some(failure.error);
                }
                Err(failure) => return Err(failure.error),
            }
        }
        Err(last_failure.unwrap_or_else(|| RegistryError::Protocol {
            subject: request.subject.to_owned(),
            detail: format!("no scheme to reach {}", endpoint.host),
        }))
    }

    /// The endpoint's schemes, the one that worked before first.
    fn schemes_for(&self, endpoint: &Endpoint) -> Vec<Scheme> {
        let learned = self
            .schemes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&endpoint.host)
            .copied();
        let mut schemes = endpoint.schemes.clone();
        if let Some(learned) = learned.filter(|s| schemes.contains(s)) {
            schemes.retain(|s| *s != learned);
            schemes.insert(0, learned);
        }
        schemes
    }

    fn learn_scheme(&self, endpoint: &Endpoint, scheme: Scheme) {
        if endpoint.schemes.len() > 1 {
            self.schemes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(endpoint.host.clone(), scheme);
        }
    }

    /// The response if its status is a success; else the error it means.
    async fn check_status(
        &self,
        request: &Request<'_>,
        response: reqwest::Response,
        not_found: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let host = response_host(&response);
        let login = self.login_for(request);
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(request, response, login).await);
        }
        let detail = self.error_detail(response).await;
        if status == StatusCode::NOT_FOUND && !not_found.is_empty() {
            let detail = if detail.is_empty() {
                not_found.to_owned()
            } else {
                detail
            };
            return Err(RegistryError::NotFound {
                subject: request.subject.to_owned(),
                detail,
            });
        }
        Err(RegistryError::Status {
            subject: request.subject.to_owned(),
            host,
            status: status.as_u16(),
            detail,
        })
    }

    /// The registry's explanation in an error response, if it gives one.
    async fn error_detail(&self, response: reqwest::Response) -> String {
        let host = response_host(&response);
        match self
            .transport
            .read_body(response, MAX_ERROR_BODY, "", &host, "the error answer")
            .await
        {
            Ok(body) => error::render_error_body(&body),
            Err(_) => String::new(),
        }
    }
}

/// The request headers: Accept and Authorization (marked sensitive, so it is never logged).
fn headers(
    accept: Option<&'static str>,
    authorization: Option<&str>,
) -> Result<HeaderMap, RegistryError> {
    let mut headers = HeaderMap::new();
    if let Some(accept) = accept {
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
    }
    if let Some(authorization) = authorization {
        let mut value =
            HeaderValue::from_str(authorization).map_err(|_| RegistryError::Protocol {
                subject: "authentication".to_owned(),
                detail: "the token or credentials contain characters not allowed in an HTTP header"
                    .to_owned(),
            })?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

fn parse_manifest(
    subject: &str,
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<Fetched, RegistryError> {
    manifest::parse(bytes, content_type).map_err(|source| RegistryError::Manifest {
        subject: subject.to_owned(),
        source,
    })
}

fn platform_error(subject: &str, error: ManifestError) -> RegistryError {
    match error {
        ManifestError::NoMatchingPlatform { wanted, available } => {
            RegistryError::NoMatchingPlatform {
                subject: subject.to_owned(),
                wanted,
                available,
            }
        }
        source => RegistryError::Manifest {
            subject: subject.to_owned(),
            source,
        },
    }
}

fn verify_digest(
    subject: &str,
    what: &str,
    expected: &Digest,
    actual: &Digest,
) -> Result<(), RegistryError> {
    if expected == actual {
        return Ok(());
    }
    Err(RegistryError::DigestMismatch {
        subject: subject.to_owned(),
        what: what.to_owned(),
        expected: expected.clone(),
        actual: actual.clone(),
    })
}

/// `blob sha256:… of docker.io/library/ubuntu` (and the mirror, when it is one).
fn blob_subject(endpoint: &Endpoint, repository: &str, digest: &Digest) -> String {
    let mirror = if endpoint.is_mirror {
        format!(" (from mirror {})", endpoint.host)
    } else {
        String::new()
    };
    format!(
        "blob {digest} of {}/{repository}{mirror}",
        endpoint.registry
    )
}

/// `host[:port]` of the server that sent a response (after redirects).
fn response_host(response: &reqwest::Response) -> String {
    url_host(response.url())
}

fn url_host(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// `: detail`, or nothing for an empty detail.
fn colon_detail(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}
