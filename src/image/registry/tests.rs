//! The real [`Client`] against the in-process [`FakeRegistry`]: pulls, indexes, authentication,
//! verification, retries, stalls and mirrors.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::config::RegistriesConfig;
use super::creds::{Credential, Credentials};
use super::fake::{Auth, FakeRegistry, Fault, Pushed, SERVICE, TlsFake, manifest_json};
use super::*;
use crate::image::manifest::{DOCKER_MANIFEST, OCI_MANIFEST};

fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_elapsed: Duration::from_secs(1),
        },
        ..ClientOptions::default()
    }
}

fn client_with(config: &str, credentials: Credentials, options: ClientOptions) -> Client {
    let config = RegistriesConfig::parse(config, Path::new("/test/registries.toml")).unwrap();
    Client::new(config, credentials, options).unwrap()
}

fn default_client() -> Client {
    client_with("", Credentials::none(), options())
}

fn with_login(registry: &str, username: &str, password: &str) -> Credentials {
    let credential = Credential {
        username: username.into(),
        password: password.into(),
    };
    Credentials::none().with(registry, credential, Path::new("/test/auth.json"))
}

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

fn amd64() -> Platform {
    "linux/amd64".parse().unwrap()
}

async fn read_all(mut stream: BlobStream) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(piece) = stream.next().await {
        bytes.extend_from_slice(&piece?);
    }
    Ok(bytes)
}

/// Pushes a two-layer image `app:v1` and returns it.
fn push_app(fake: &FakeRegistry) -> Pushed {
    fake.push_image("app", "v1", &[b"layer one", b"the second layer"])
}

#[tokio::test]
async fn anonymous_pull_of_a_manifest_and_its_blobs() {
    let fake = FakeRegistry::start().await;
    let image = push_app(&fake);
    let client = default_client();
    let reference = reference(&format!("{}/app:v1", fake.host));

    let resolved = client.resolve(&reference, &amd64()).await.unwrap();
    assert_eq!(resolved.digest, image.digest);
    assert_eq!(resolved.manifest_bytes, image.manifest);
    assert_eq!(resolved.manifest.media_type, OCI_MANIFEST);
    assert_eq!(resolved.manifest.config.digest, image.config);
    let layers: Vec<&Digest> = resolved.manifest.layers.iter().map(|l| &l.digest).collect();
    assert_eq!(layers, image.layers.iter().collect::<Vec<_>>());
    assert!(resolved.index.is_none() && resolved.platform.is_none());
    assert!(!resolved.endpoint.is_mirror && resolved.mirror_failures.is_empty());

    let config = client
        .blob_bytes(&resolved.endpoint, "app", &image.config, 1 << 20)
        .await
        .unwrap();
    assert!(config.starts_with(b"{\"architecture\""));
    let (stream, length) = client
        .blob_stream(&resolved.endpoint, "app", &image.layers[1])
        .await
        .unwrap();
    assert_eq!(length, Some(16));
    assert_eq!(read_all(stream).await.unwrap(), b"the second layer");

    let error = client
        .blob_bytes(&resolved.endpoint, "app", &image.config, 4)
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::TooLarge { .. }), "{error}");
    assert!(fake.requests().iter().all(|r| r.authorization.is_none()));
}

#[tokio::test]
async fn an_index_resolves_to_the_platform_asked_for() {
    let fake = FakeRegistry::start().await;
    let amd = fake.push_image("multi", "amd", &[b"amd64 layer"]);
    let arm = fake.push_image("multi", "arm", &[b"arm64 layer"]);
    let index = fake.push_index(
        "multi",
        "latest",
        &[("linux/amd64", &amd), ("linux/arm64/v8", &arm)],
    );
    let client = default_client();
    let reference = reference(&format!("{}/multi", fake.host));

    for (platform, image) in [
        ("linux/amd64", &amd),
        ("linux/arm64", &arm),
        ("linux/arm64/v8", &arm),
    ] {
        let resolved = client
            .resolve(&reference, &platform.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(resolved.digest, image.digest, "{platform}");
        assert_eq!(resolved.manifest.layers[0].digest, image.layers[0]);
        assert_eq!(resolved.index.as_ref().map(|i| &i.digest), Some(&index));
        assert_eq!(
            resolved.platform.as_ref().map(|p| p.to_string()).as_deref(),
            Some(
                platform
                    .trim_end_matches("/v8")
                    .replace("arm64", "arm64/v8")
                    .as_str()
            )
        );
    }

    let error = client
        .resolve(&reference, &"linux/s390x".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "image {}/multi:latest has no manifest for platform linux/s390x; available: linux/amd64, linux/arm64/v8",
            fake.host
        )
    );

    // Pinned to the index's digest: verified, then followed.
    let pinned = reference.with_digest(index);
    assert_eq!(
        client.resolve(&pinned, &amd64()).await.unwrap().digest,
        amd.digest
    );
}

#[tokio::test]
async fn a_manifest_without_media_type_takes_the_content_type() {
    let fake = FakeRegistry::start().await;
    let config = fake.put_blob("umoci", b"{}");
    let layer = fake.put_blob("umoci", b"layer");
    let body = manifest_json(None, &config, &[layer], vec![5]);
    fake.put_manifest("umoci", "oci", body.as_bytes(), Some(OCI_MANIFEST));
    fake.put_manifest("umoci", "docker", body.as_bytes(), Some(DOCKER_MANIFEST));
    let client = default_client();
    let resolved = client
        .resolve(&reference(&format!("{}/umoci:oci", fake.host)), &amd64())
        .await
        .unwrap();
    assert_eq!(resolved.manifest.media_type, OCI_MANIFEST);
    let resolved = client
        .resolve(&reference(&format!("{}/umoci:docker", fake.host)), &amd64())
        .await
        .unwrap();
    assert_eq!(resolved.manifest.media_type, DOCKER_MANIFEST);
}

#[tokio::test]
async fn bearer_tokens_are_fetched_once_and_reused() {
    let fake = FakeRegistry::start().await;
    fake.set_auth(Auth::Bearer { credential: None });
    let image = push_app(&fake);
    let client = default_client();
    let resolved = client
        .resolve(&reference(&format!("{}/app:v1", fake.host)), &amd64())
        .await
        .unwrap();
    client
        .blob_bytes(&resolved.endpoint, "app", &image.config, 1 << 20)
        .await
        .unwrap();
    let (stream, _) = client
        .blob_stream(&resolved.endpoint, "app", &image.layers[0])
        .await
        .unwrap();
    assert_eq!(read_all(stream).await.unwrap(), b"layer one");

    let requests = fake.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths[..3],
        ["/v2/app/manifests/v1", "/token", "/v2/app/manifests/v1"]
    );
    assert_eq!(fake.count("/token"), 1, "{paths:?}");
    assert_eq!(
        requests[1].query,
        format!("service={SERVICE}&scope=repository%3Aapp%3Apull")
    );
    assert_eq!(requests[1].authorization, None);
    assert!(
        requests[2..]
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer token:repository:app:pull"))
    );
}

#[tokio::test]
async fn bearer_tokens_with_credentials() {
    let fake = FakeRegistry::start().await;
    fake.set_auth(Auth::Bearer {
        credential: Some(("alice".into(), "secret".into())),
    });
    push_app(&fake);
    let reference = reference(&format!("{}/app:v1", fake.host));

    let client = client_with("", with_login(&fake.host, "alice", "secret"), options());
    client.resolve(&reference, &amd64()).await.unwrap();
    let token_request = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert_eq!(
        token_request.authorization.as_deref(),
        Some("Basic YWxpY2U6c2VjcmV0")
    );

    let client = client_with("", with_login(&fake.host, "alice", "wrong"), options());
    let error = client.resolve(&reference, &amd64()).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(
            "refused the credentials of alice from /test/auth.json: incorrect username or password"
        ),
        "{message}"
    );
    assert!(
        message.ends_with(&format!("log in with cleat login {}", fake.host)),
        "{message}"
    );

    let error = default_client()
        .resolve(&reference, &amd64())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("refused anonymous access"),
        "{error}"
    );
}

#[tokio::test]
async fn basic_authentication() {
    let fake = FakeRegistry::start().await;
    fake.set_auth(Auth::Basic {
        username: "bob".into(),
        password: "pw".into(),
    });
    let image = push_app(&fake);
    let reference = reference(&format!("{}/app:v1", fake.host));

    let client = client_with("", with_login(&fake.host, "bob", "pw"), options());
    let resolved = client.resolve(&reference, &amd64()).await.unwrap();
    let before = fake.requests().len();
    client
        .blob_bytes(&resolved.endpoint, "app", &image.config, 1 << 20)
        .await
        .unwrap();
    // The basic host is remembered: credentials go with the first request.
    assert_eq!(fake.requests().len(), before + 1);

    let wrong = client_with("", with_login(&fake.host, "bob", "nope"), options());
    let error = wrong.resolve(&reference, &amd64()).await.unwrap_err();
    assert!(
        error.to_string().contains("refused the credentials of bob"),
        "{error}"
    );

    let error = default_client()
        .resolve(&reference, &amd64())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("requires a user name and password"),
        "{error}"
    );
}

#[tokio::test]
async fn login_checks() {
    let fake = FakeRegistry::start().await;
    let client = default_client();
    client
        .check_login(&fake.host, "anyone", "anything")
        .await
        .unwrap();
    client
        .check_login(&format!("http://{}/v2/", fake.host), "anyone", "anything")
        .await
        .unwrap();

    fake.set_auth(Auth::Bearer {
        credential: Some(("alice".into(), "secret".into())),
    });
    client
        .check_login(&fake.host, "alice", "secret")
        .await
        .unwrap();
    let error = client
        .check_login(&fake.host, "alice", "wrong")
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { .. }),
        "{error}"
    );
    let token_request = fake
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/token")
        .unwrap();
    assert_eq!(token_request.query, format!("service={SERVICE}"));

    fake.set_auth(Auth::Basic {
        username: "bob".into(),
        password: "pw".into(),
    });
    client.check_login(&fake.host, "bob", "pw").await.unwrap();
    let error = client
        .check_login(&fake.host, "bob", "wrong")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("unauthorized"), "{error}");

    let error = client
        .check_login("not a host", "u", "p")
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::InvalidReference(_)),
        "{error}"
    );
}

#[tokio::test]
async fn digests_are_verified() {
    let fake = FakeRegistry::start().await;
    let image = push_app(&fake);
    let other = fake.push_image("app", "v2", &[b"other"]);
    // The registry serves v2's manifest under v1's digest.
    fake.put_manifest(
        "app",
        &image.digest.to_string(),
        &other.manifest,
        Some(OCI_MANIFEST),
    );
    let client = default_client();
    let pinned = reference(&format!("{}/app@{}", fake.host, image.digest));
    let error = client.resolve(&pinned, &amd64()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "image {}/app@{}: digest mismatch for the manifest: expected {}, got {}",
            fake.host, image.digest, image.digest, other.digest
        )
    );

    // An index whose entry does not match what is served for it.
    fake.push_index("app", "multi", &[("linux/amd64", &image)]);
    let error = client
        .resolve(&reference(&format!("{}/app:multi", fake.host)), &amd64())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("digest mismatch for the linux/amd64 manifest"),
        "{error}"
    );
}

#[tokio::test]
async fn a_blob_served_under_the_wrong_digest_is_refused() {
    let fake = FakeRegistry::start().await;
    let image = push_app(&fake);
    let client = default_client();
    let resolved = client
        .resolve(&reference(&format!("{}/app:v1", fake.host)), &amd64())
        .await
        .unwrap();
    fake.put_raw(
        &format!("/v2/app/blobs/{}", image.config),
        b"not the config",
    );
    let error = client
        .blob_bytes(&resolved.endpoint, "app", &image.config, 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "blob {} of {}/app: digest mismatch for the blob: expected {}, got {}",
            image.config,
            fake.host,
            image.config,
            Digest::of(b"not the config")
        )
    );
}

#[tokio::test]
async fn a_truncated_blob_is_an_error() {
    let fake = FakeRegistry::start().await;
    let image = push_app(&fake);
    let client = default_client();
    let resolved = client
        .resolve(&reference(&format!("{}/app:v1", fake.host)), &amd64())
        .await
        .unwrap();
    let path = format!("/v2/app/blobs/{}", image.layers[1]);
    fake.fail(&path, &[Fault::Truncated]);
    let (stream, length) = client
        .blob_stream(&resolved.endpoint, "app", &image.layers[1])
        .await
        .unwrap();
    assert_eq!(length, Some(16));
    let error = read_all(stream).await.unwrap_err();
    let cause = RegistryError::from_io(&error).unwrap();
    assert!(cause.to_string().contains("broke off"), "{cause}");

    fake.fail(&path, &[Fault::Truncated]);
    let error = client
        .blob_bytes(&resolved.endpoint, "app", &image.layers[1], 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Interrupted { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("broke off"), "{error}");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let fake = FakeRegistry::start().await;
    push_app(&fake);
    fake.fail(
        "/v2/app/manifests/v1",
        &[Fault::Status(500), Fault::Status(503)],
    );
    let client = default_client();
    client
        .resolve(&reference(&format!("{}/app:v1", fake.host)), &amd64())
        .await
        .unwrap();
    assert_eq!(fake.count("/v2/app/manifests/v1"), 3);
}

#[tokio::test]
async fn persistent_server_errors_give_up_with_the_status() {
    let fake = FakeRegistry::start().await;
    push_app(&fake);
    fake.fail("/v2/app/manifests/v1", &[Fault::Status(500); 10]);
    let client = default_client();
    let started = Instant::now();
    let error = client
        .resolve(&reference(&format!("{}/app:v1", fake.host)), &amd64())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(error, RegistryError::Status { status: 500, .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "image {0}/app:v1: {0} answered 500 Internal Server Error: the fake registry is having a bad day",
            fake.host
        )
    );
    assert_eq!(fake.count("/v2/app/manifests/v1"), 3);
}

#[tokio::test]
async fn a_stalled_blob_fails_after_the_read_timeout() {
    let fake = FakeRegistry::start().await;
    let image = push_app(&fake);
    let options = ClientOptions {
        read_timeout: Duration::from_millis(200),
        ..options()
    };
    let client = client_with("", Credentials::none(), options);
    let resolved = client
        .resolve(&reference(&format!("{}/app:v1", fake.host)), &amd64())
        .await
        .unwrap();
    fake.fail(
        &format!("/v2/app/blobs/{}", image.layers[1]),
        &[Fault::Stalled],
    );
    let (mut stream, _) = client
        .blob_stream(&resolved.endpoint, "app", &image.layers[1])
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(stream.next().await.unwrap().unwrap().as_ref(), b"the seco");
    let error = stream.next().await.unwrap().unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(200)
            && started.elapsed() < Duration::from_secs(1)
    );
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    let cause = RegistryError::from_io(&error).unwrap();
    assert!(matches!(cause, RegistryError::Stalled { .. }), "{cause}");
    assert!(
        cause.to_string().contains("stalled: no data for"),
        "{cause}"
    );
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn a_mirror_that_is_down_falls_back_to_the_registry() {
    let fake = FakeRegistry::start().await;
    let image = push_app(&fake);
    let down = unused_port().await;
    let config = format!(
        "[registries.\"{}\"]\nmirrors = [\"127.0.0.1:{down}\"]\n",
        fake.host
    );
    let client = client_with(&config, Credentials::none(), options());
    let resolved = client
        .resolve(&reference(&format!("{}/app:v1", fake.host)), &amd64())
        .await
        .unwrap();
    assert_eq!(resolved.digest, image.digest);
    assert!(!resolved.endpoint.is_mirror);
    assert_eq!(resolved.mirror_failures.len(), 1);
    assert!(
        resolved.mirror_failures[0].contains(&format!("cannot connect to 127.0.0.1:{down}")),
        "{:?}",
        resolved.mirror_failures
    );
}

#[tokio::test]
async fn a_working_mirror_is_used_for_manifest_and_blobs() {
    let registry = FakeRegistry::start().await;
    let mirror = FakeRegistry::start().await;
    let image = push_app(&mirror);
    let config = format!(
        "[registries.\"{}\"]\nmirrors = [\"http://{}\"]\n",
        registry.host, mirror.host
    );
    let client = client_with(&config, Credentials::none(), options());
    let resolved = client
        .resolve(&reference(&format!("{}/app:v1", registry.host)), &amd64())
        .await
        .unwrap();
    assert!(resolved.endpoint.is_mirror);
    assert_eq!(resolved.endpoint.host, mirror.host);
    let (stream, _) = client
        .blob_stream(&resolved.endpoint, "app", &image.layers[0])
        .await
        .unwrap();
    assert_eq!(read_all(stream).await.unwrap(), b"layer one");
    assert!(registry.requests().is_empty());

    // A mirror without the image: the registry answers.
    let other = push_app(&registry);
    let empty_mirror = FakeRegistry::start().await;
    let config = format!(
        "[registries.\"{}\"]\nmirrors = [\"{}\"]\n",
        registry.host, empty_mirror.host
    );
    let client = client_with(&config, Credentials::none(), options());
    let resolved = client
        .resolve(&reference(&format!("{}/app:v1", registry.host)), &amd64())
        .await
        .unwrap();
    assert_eq!(resolved.digest, other.digest);
    assert!(
        resolved.mirror_failures[0].contains("not found: manifest unknown"),
        "{:?}",
        resolved.mirror_failures
    );
}

#[tokio::test]
async fn redirects_to_storage_do_not_carry_the_registry_authorization() {
    let registry = FakeRegistry::start().await;
    let storage = FakeRegistry::start().await;
    registry.set_auth(Auth::Bearer { credential: None });
    let image = push_app(&registry);
    push_app(&storage);
    registry.redirect_blobs_to(&storage.host);
    let client = default_client();
    let resolved = client
        .resolve(&reference(&format!("{}/app:v1", registry.host)), &amd64())
        .await
        .unwrap();
    let (stream, _) = client
        .blob_stream(&resolved.endpoint, "app", &image.layers[0])
        .await
        .unwrap();
    assert_eq!(read_all(stream).await.unwrap(), b"layer one");
    let path = format!("/v2/app/blobs/{}", image.layers[0]);
    let at_registry = registry
        .requests()
        .into_iter()
        .rfind(|r| r.path == path)
        .unwrap();
    assert!(at_registry.authorization.is_some());
    let at_storage = storage
        .requests()
        .into_iter()
        .find(|r| r.path == path)
        .unwrap();
    assert_eq!(at_storage.authorization, None);
}

#[tokio::test]
async fn missing_images_and_unreachable_registries_are_clear() {
    let fake = FakeRegistry::start().await;
    let client = default_client();
    let error = client
        .resolve(&reference(&format!("{}/app:nope", fake.host)), &amd64())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("image {}/app:nope not found: manifest unknown", fake.host)
    );

    let down = unused_port().await;
    let error = client
        .resolve(&reference(&format!("127.0.0.1:{down}/app")), &amd64())
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { .. }),
        "{error}"
    );
    assert!(
        error.to_string().starts_with(&format!(
            "image 127.0.0.1:{down}/app:latest: cannot connect to 127.0.0.1:{down}"
        )),
        "{error}"
    );
}

/// A port nothing listens on.
async fn unused_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unknown_host_is_named() {
    let error = default_client()
        .resolve(&reference("nonexistent.invalid/app"), &amd64())
        .await
        .unwrap_err();
    match &error {
        RegistryError::UnknownHost { host, .. } => {
            assert_eq!(host, "nonexistent.invalid");
            assert!(
                error.to_string().starts_with(
                    "image nonexistent.invalid/app:latest: unknown host nonexistent.invalid: "
                ),
                "{error}"
            );
        }
        // A resolver that does not answer within the connect timeout (no network at all).
        RegistryError::Timeout { .. } => {}
        _ => panic!("{error:?}"),
    }
}

#[test]
fn futures_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let client = default_client();
    let reference = reference("localhost:1/app");
    let platform = amd64();
    assert_send(&client.resolve(&reference, &platform));
    let endpoint = client.endpoints("localhost:1").remove(0);
    let digest = Digest::of(b"");
    assert_send(&client.blob_stream(&endpoint, "app", &digest));
    assert_send(&client.blob_bytes(&endpoint, "app", &digest, 1));
    assert_send(&client.check_login("localhost:1", "u", "p"));
    fn assert_sync<T: Send + Sync>(_: &T) {}
    assert_sync(&client);
}

#[tokio::test]
async fn tls_with_a_private_certificate_authority() {
    let server = TlsFake::start();
    let dir = std::env::temp_dir().join(format!("cleat-registry-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &server.ca_pem).unwrap();

    // Loopback without configuration: HTTPS without verification.
    default_client()
        .check_login(&server.host, "u", "p")
        .await
        .unwrap();

    // Verified against the configured authority.
    let config = format!(
        "[registries.\"{}\"]\nca-file = \"{}\"\n",
        server.host,
        ca_file.display()
    );
    let client = client_with(&config, Credentials::none(), options());
    client.check_login(&server.host, "u", "p").await.unwrap();

    // Verified against the system's authorities only: refused, with a hint.
    let config = format!("[registries.\"{}\"]\ninsecure = false\n", server.host);
    let client = client_with(&config, Credentials::none(), options());
    let error = client
        .check_login(&server.host, "u", "p")
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::Tls { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "registry {0}: TLS failure talking to {0}: ",
            server.host
        )),
        "{message}"
    );
    assert!(
        message.ends_with(
            "set ca-file for it in /test/registries.toml, or insecure = true to skip verification"
        ),
        "{message}"
    );

    // insecure = true: no verification.
    let config = format!("[registries.\"{}\"]\ninsecure = true\n", server.host);
    let client = client_with(&config, Credentials::none(), options());
    client.check_login(&server.host, "u", "p").await.unwrap();

    // A CA file that is not there is an error when the client is built.
    let config = format!(
        "[registries.\"{}\"]\nca-file = \"{}\"\n",
        server.host,
        dir.join("missing.pem").display()
    );
    let config = RegistriesConfig::parse(&config, Path::new("/test/registries.toml")).unwrap();
    let error = Client::new(config, Credentials::none(), options()).unwrap_err();
    assert!(
        error.to_string().starts_with(&format!(
            "/test/registries.toml: ca-file {}/missing.pem for {}: ",
            dir.display(),
            server.host
        )),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
