//! An in-process registry for tests: a hyper server on 127.0.0.1 at a random port that serves
//! manifests and blobs, speaks the bearer-token or basic authentication flows, records every
//! request, and misbehaves on demand (error statuses, truncated and stalled bodies, redirects
//! to another server).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};

use crate::image::Digest;
use crate::image::manifest::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};

/// The service name the fake's token server expects.
pub const SERVICE: &str = "fake-registry";

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// How the fake wants clients to authenticate.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    #[default]
    Anonymous,
    /// Bearer tokens from `/token`; with `credential`, the token server wants them.
    Bearer {
        credential: Option<(String, String)>,
    },
    Basic {
        username: String,
        password: String,
    },
}

/// A misbehaviour for the next request to a path.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    Status(u16),
    /// Half the body, then the connection is cut.
    Truncated,
    /// Half the body, then nothing, forever.
    Stalled,
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    content: HashMap<String, (Vec<u8>, Option<String>)>,
    auth: Auth,
    faults: HashMap<String, VecDeque<Fault>>,
    requests: Vec<Seen>,
    redirect_blobs_to: Option<String>,
}

/// A running fake registry; stops when dropped.
pub struct FakeRegistry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

/// An image pushed to the fake.
pub struct Pushed {
    pub manifest: Vec<u8>,
    pub digest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeRegistry {
    pub async fn start() -> FakeRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let server = tokio::spawn(serve(listener, state.clone(), host.clone()));
        FakeRegistry {
            host,
            state,
            server,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn set_auth(&self, auth: Auth) {
        self.state().auth = auth;
    }

    /// Redirects blob requests to the same path on `host`.
    pub fn redirect_blobs_to(&self, host: &str) {
        self.state().redirect_blobs_to = Some(format!("http://{host}"));
    }

    /// Serves `body` at `/v2/{repository}/manifests/{reference}`.
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        body: &[u8],
        content_type: Option<&str>,
    ) {
        let path = format!("/v2/{repository}/manifests/{reference}");
        self.state()
            .content
            .insert(path, (body.to_vec(), content_type.map(str::to_owned)));
    }

    /// Serves `body` as a blob of `repository`; its digest.
    pub fn put_blob(&self, repository: &str, body: &[u8]) -> Digest {
        let digest = Digest::of(body);
        let path = format!("/v2/{repository}/blobs/{digest}");
        self.state().content.insert(
            path,
            (body.to_vec(), Some("application/octet-stream".to_owned())),
        );
        digest
    }

    /// Serves `body` at `path`, whatever it is.
    pub fn put_raw(&self, path: &str, body: &[u8]) {
        self.state()
            .content
            .insert(path.to_owned(), (body.to_vec(), None));
    }

    /// Pushes an OCI image with these layer contents under `tag` (and its digest).
    pub fn push_image(&self, repository: &str, tag: &str, layers: &[&[u8]]) -> Pushed {
        let config = self.put_blob(
            repository,
            format!(r#"{{"architecture":"amd64","os":"linux","tag":"{tag}"}}"#).as_bytes(),
        );
        let layers: Vec<Digest> = layers
            .iter()
            .map(|l| self.put_blob(repository, l))
            .collect();
        let manifest = manifest_json(
            Some(OCI_MANIFEST),
            &config,
            &layers,
            layers_sizes(&self.state(), repository, &layers),
        );
        let digest = Digest::of(manifest.as_bytes());
        self.put_manifest(repository, tag, manifest.as_bytes(), Some(OCI_MANIFEST));
        self.put_manifest(
            repository,
            &digest.to_string(),
            manifest.as_bytes(),
            Some(OCI_MANIFEST),
        );
        Pushed {
            manifest: manifest.into_bytes(),
            digest,
            config,
            layers,
        }
    }

    /// Pushes an image index under `tag` over images already pushed (by digest), one per
    /// platform (`linux/arm64/v8`).
    pub fn push_index(&self, repository: &str, tag: &str, images: &[(&str, &Pushed)]) -> Digest {
        let entries: Vec<String> = images
            .iter()
            .map(|(platform, image)| {
                let mut parts = platform.split('/');
                let os = parts.next().unwrap();
                let architecture = parts.next().unwrap();
                let variant = parts.next().map_or(String::new(), |v| format!(r#","variant":"{v}""#));
                format!(
                    r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"os":"{os}","architecture":"{architecture}"{variant}}}}}"#,
                    image.digest,
                    image.manifest.len()
                )
            })
            .collect();
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            entries.join(",")
        );
        let digest = Digest::of(index.as_bytes());
        self.put_manifest(repository, tag, index.as_bytes(), Some(OCI_INDEX));
        self.put_manifest(
            repository,
            &digest.to_string(),
            index.as_bytes(),
            Some(OCI_INDEX),
        );
        digest
    }

    /// Queues misbehaviours for the next requests to `path`.
    pub fn fail(&self, path: &str, faults: &[Fault]) {
        self.state()
            .faults
            .entry(path.to_owned())
            .or_default()
            .extend(faults);
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state().requests.clone()
    }

    /// How many requests went to `path`.
    pub fn count(&self, path: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

fn layers_sizes(state: &State, repository: &str, layers: &[Digest]) -> Vec<usize> {
    layers
        .iter()
        .map(|d| {
            state.content[&format!("/v2/{repository}/blobs/{d}")]
                .0
                .len()
        })
        .collect()
}

/// An image manifest for a config and layers (gzip media type; the fake does not look inside).
pub fn manifest_json(
    media_type: Option<&str>,
    config: &Digest,
    layers: &[Digest],
    sizes: Vec<usize>,
) -> String {
    let media_type = media_type.map_or(String::new(), |m| format!(r#""mediaType":"{m}","#));
    let layers: Vec<String> = layers
        .iter()
        .zip(sizes)
        .map(|(d, size)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":{size}}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,{media_type}"config":{{"mediaType":"{OCI_CONFIG}","digest":"{config}","size":1}},"layers":[{}]}}"#,
        layers.join(",")
    )
}

async fn serve(listener: tokio::net::TcpListener, state: Arc<Mutex<State>>, host: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let state = state.clone();
        let host = host.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = handle(&state, &host, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn handle(state: &Mutex<State>, host: &str, request: &Request<Incoming>) -> Response<Body> {
    let mut state = state.lock().unwrap();
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned());
    state.requests.push(Seen {
        path: path.clone(),
        query: request.uri().query().unwrap_or_default().to_owned(),
        authorization: authorization.clone(),
    });
    if path == "/token" {
        return token(
            &state.auth,
            request.uri().query().unwrap_or_default(),
            authorization.as_deref(),
        );
    }
    let repository = repository_of(&path);
    if let Some(refusal) = check_auth(
        &state.auth,
        host,
        repository.as_deref(),
        authorization.as_deref(),
    ) {
        return refusal;
    }
    if path == "/v2/" {
        return json(StatusCode::OK, "{}");
    }
    if let Some(target) = state
        .redirect_blobs_to
        .as_ref()
        .filter(|_| path.contains("/blobs/"))
    {
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(LOCATION, format!("{target}{path}"))
            .body(empty())
            .unwrap();
    }
    let fault = state.faults.get_mut(&path).and_then(VecDeque::pop_front);
    let Some((body, content_type)) = state.content.get(&path).cloned() else {
        let code = if path.contains("/blobs/") {
            "BLOB_UNKNOWN"
        } else {
            "MANIFEST_UNKNOWN"
        };
        let message = code.to_ascii_lowercase().replace('_', " ");
        return json(
            StatusCode::NOT_FOUND,
            &format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#),
        );
    };
    match fault {
        Some(Fault::Status(status)) => json(
            StatusCode::from_u16(status).unwrap(),
            r#"{"errors":[{"code":"UNKNOWN","message":"the fake registry is having a bad day"}]}"#,
        ),
        Some(Fault::Truncated) => partial(&body, content_type, Tail::Cut),
        Some(Fault::Stalled) => partial(&body, content_type, Tail::Hang),
        None => {
            let mut response = Response::builder()
                .status(StatusCode::OK)
                .header(CONTENT_LENGTH, body.len());
            if let Some(content_type) = content_type {
                response = response.header(CONTENT_TYPE, content_type);
            }
            response.body(full(body)).unwrap()
        }
    }
}

/// The repository in `/v2/REPO/manifests/…` or `/v2/REPO/blobs/…`.
fn repository_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    let end = rest
        .rfind("/manifests/")
        .or_else(|| rest.rfind("/blobs/"))?;
    Some(rest[..end].to_owned())
}

fn basic(username: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{username}:{password}")))
}

/// The 401 answer for a request that lacks the right authorization; `None` when it has it.
fn check_auth(
    auth: &Auth,
    host: &str,
    repository: Option<&str>,
    authorization: Option<&str>,
) -> Option<Response<Body>> {
    let (expected, challenge) = match auth {
        Auth::Anonymous => return None,
        Auth::Bearer { .. } => {
            let scope = repository.map(|r| format!("repository:{r}:pull"));
            let expected = scope
                .as_ref()
                .map_or("Bearer token:".to_owned(), |s| format!("Bearer token:{s}"));
            let scope = scope.map_or(String::new(), |s| format!(r#",scope="{s}""#));
            (
                expected,
                format!(r#"Bearer realm="http://{host}/token",service="{SERVICE}"{scope}"#),
            )
        }
        Auth::Basic { username, password } => (
            basic(username, password),
            r#"Basic realm="fake""#.to_owned(),
        ),
    };
    if authorization == Some(expected.as_str()) {
        return None;
    }
    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
    let mut response = json(StatusCode::UNAUTHORIZED, body);
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, challenge.parse().unwrap());
    Some(response)
}

/// The token server: a token that names the scope asked for, if the service is right and the
/// credentials (when required) match.
fn token(auth: &Auth, query: &str, authorization: Option<&str>) -> Response<Body> {
    let params: HashMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    if params.get("service") != Some(&SERVICE) {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"errors":[{"code":"UNSUPPORTED","message":"wrong service"}]}"#,
        );
    }
    if let Auth::Bearer {
        credential: Some((username, password)),
    } = auth
    {
        if authorization != Some(basic(username, password).as_str()) {
            return json(
                StatusCode::UNAUTHORIZED,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}"#,
            );
        }
    }
    let scope = params
        .get("scope")
        .map_or(String::new(), |s| s.replace("%3A", ":").replace("%2F", "/"));
    json(
        StatusCode::OK,
        &format!(r#"{{"token":"token:{scope}","expires_in":300}}"#),
    )
}

fn json(status: StatusCode, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(full(body.as_bytes().to_vec()))
        .unwrap()
}

fn full(body: Vec<u8>) -> Body {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> Body {
    full(Vec::new())
}

/// What happens after the first half of a partial body.
enum Tail {
    Cut,
    Hang,
}

/// A 200 answer that announces the whole body but sends half of it, then cuts the connection
/// or hangs.
fn partial(body: &[u8], content_type: Option<String>, tail: Tail) -> Response<Body> {
    let half = Bytes::copy_from_slice(&body[..body.len() / 2]);
    let first = futures_util::stream::iter([Ok(Frame::data(half))]);
    let stream = match tail {
        // The pause lets the headers and the first half leave before the connection is cut.
        Tail::Cut => first
            .chain(futures_util::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Err(io::Error::other("cut"))
            }))
            .boxed(),
        Tail::Hang => first.chain(futures_util::stream::pending()).boxed(),
    };
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_LENGTH, body.len());
    if let Some(content_type) = content_type {
        response = response.header(CONTENT_TYPE, content_type);
    }
    response
        .body(BodyExt::boxed_unsync(StreamBody::new(stream)))
        .unwrap()
}

/// A minimal HTTPS server on 127.0.0.1 (rustls over blocking sockets, a thread per
/// connection) that answers every request with `200 {}`: enough for `GET /v2/` and the TLS
/// settings around it. Its certificate, for `127.0.0.1` and `localhost`, is signed by a fresh
/// certificate authority.
pub struct TlsFake {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The certificate authority, PEM.
    pub ca_pem: String,
}

impl TlsFake {
    pub fn start() -> TlsFake {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let certificate = params.signed_by(&key, &ca).unwrap();

        let _ = rustls::crypto::ring::default_provider().install_default();
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![certificate.der().clone()], key_der)
            .unwrap();
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else {
                    return;
                };
                let config = config.clone();
                std::thread::spawn(move || answer_over_tls(config, stream));
            }
        });
        TlsFake {
            host,
            ca_pem: ca.pem(),
        }
    }
}

fn answer_over_tls(config: Arc<rustls::ServerConfig>, stream: std::net::TcpStream) {
    use std::io::{Read, Write};
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let _ = tls.write_all(answer.as_bytes());
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}
