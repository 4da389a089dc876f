//! Image references, with Docker's grammar and normalisation: `ubuntu` is
//! `docker.io/library/ubuntu:latest`, `user/repo` is `docker.io/user/repo:latest`, and
//! `host[:port]/path[:tag][@sha256:…]` names any other registry.
//!
//! The grammar (from distribution/reference):
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [ domain "/" ] path
//! domain           := host [ ":" port ]
//! host             := domain-name | IPv4 | "[" IPv6 "]"
//! domain-name      := component ( "." component )*    component := [A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?
//! path             := path-component ( "/" path-component )*
//! path-component   := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```
//!
//! The first component of a name is a registry when it contains `.` or `:`, is `localhost`, or
//! has an uppercase letter (which a repository path cannot); otherwise the name is a short name
//! and belongs to the short-name registry (Docker Hub unless configured otherwise), where a
//! single-component name is an official image under `library/`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::image::Digest;

/// Docker Hub, the registry of short names unless registries.toml says otherwise.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Other names of Docker Hub, normalised to [`DOCKER_HUB`].
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];
/// Where Docker Hub keeps official images.
const OFFICIAL_PREFIX: &str = "library/";
/// The tag a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";
/// The longest `registry/repository` Docker accepts.
const NAME_MAX: usize = 255;
/// The longest tag.
const TAG_MAX: usize = 128;

/// A normalised image reference. The fields hold validated values when the reference comes
/// from [`Reference::from_str`] or [`Reference::parse_with`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]`, with Docker Hub's aliases normalised to `docker.io`.
    pub registry: String,
    /// The repository path inside the registry (`library/ubuntu`).
    pub repository: String,
    /// The tag; `latest` when the reference names neither tag nor digest.
    pub tag: Option<String>,
    /// The pinned manifest digest, if any. When a reference has both, the digest decides what
    /// is pulled and the tag is informational (as in Docker).
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Parses with Docker Hub as the short-name registry.
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse_with(s, DOCKER_HUB)
    }
}

impl Reference {
    /// Parses `s`, resolving a short name (`ubuntu`, `user/repo`) against
    /// `short_name_registry`. `library/` is prepended to single-component names on Docker Hub
    /// only.
    pub fn parse_with(s: &str, short_name_registry: &str) -> Result<Reference, ReferenceError> {
        parse(s, short_name_registry).map_err(|reason| ReferenceError {
            input: s.to_owned(),
            reason,
        })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The repository path as the registry API wants it (`/v2/<path>/manifests/…`).
    pub fn repository_path(&self) -> &str {
        &self.repository
    }

    /// The host the registry API is served from: Docker Hub's API lives on
    /// `registry-1.docker.io`, every other registry on its own name.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// Whether the registry is on this machine (localhost, 127.0.0.0/8, ::1). Such registries
    /// are reached over plain HTTP without configuration, as Docker does.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The same image pinned to `digest` (the tag, if any, is kept).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// Docker's short display: `ubuntu:latest`, `user/repo:tag`; references outside Docker
    /// Hub are shown in full.
    pub fn familiar(&self) -> String {
        let name = if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix(OFFICIAL_PREFIX) {
                Some(official) if !official.contains('/') => official.to_owned(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        };
        format!("{name}{}", TagAndDigest(self))
    }
}

impl fmt::Display for Reference {
    /// The canonical full form: `docker.io/library/ubuntu:latest`, `host:5000/a/b@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}{}",
            self.registry,
            self.repository,
            TagAndDigest(self)
        )
    }
}

/// `:tag`, `@digest`, or both, as they follow a name.
struct TagAndDigest<'a>(&'a Reference);

impl fmt::Display for TagAndDigest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(tag) = &self.0.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.0.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The API host of a registry name (see [`Reference::api_host`]).
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API_HOST
    } else {
        registry
    }
}

/// Docker Hub's aliases become `docker.io`; other registry names are returned unchanged.
pub fn normalize_registry(registry: &str) -> &str {
    if DOCKER_HUB_ALIASES.contains(&registry) {
        DOCKER_HUB
    } else {
        registry
    }
}

/// Whether `host[:port]` names this machine: `localhost`, 127.0.0.0/8, or ::1 (bracketed or
/// not).
pub fn is_loopback_host(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let name = host_without_port(host);
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host` of `host[:port]` (IPv6 addresses keep their brackets).
fn host_without_port(domain: &str) -> &str {
    split_port(domain).map_or(domain, |(host, _)| host)
}

/// `host[:port]` split into host and port; `None` when brackets are unbalanced or something
/// other than a port follows a bracketed address.
fn split_port(domain: &str) -> Option<(&str, Option<&str>)> {
    if domain.starts_with('[') {
        let end = domain.find(']')?;
        let (host, rest) = domain.split_at(end + 1);
        if rest.is_empty() {
            return Some((host, None));
        }
        return rest.strip_prefix(':').map(|port| (host, Some(port)));
    }
    Some(match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    })
}

/// Checks that `domain` is a valid `host[:port]` for a registry; the reason when it is not.
pub fn validate_registry(domain: &str) -> Result<(), String> {
    if is_valid_domain(domain) {
        Ok(())
    } else {
        Err(format!(
            "invalid registry {domain:?}: expected a host name, IPv4 address or [IPv6] address, \
             with an optional :port"
        ))
    }
}

fn parse(s: &str, short_name_registry: &str) -> Result<Reference, String> {
    if s.is_empty() {
        return Err("the reference is empty".to_owned());
    }
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            "a 64-character hexadecimal string is an image ID, not a reference to pull".to_owned(),
        );
    }
    let (name_and_tag, digest) = split_digest(s)?;
    let (name, tag) = split_tag(name_and_tag)?;
    let (registry, repository) = split_registry(name, short_name_registry)?;
    let full_name_len = registry.len() + 1 + repository.len();
    if full_name_len > NAME_MAX {
        return Err(format!(
            "the name {registry}/{repository} is {full_name_len} characters long, \
             more than {NAME_MAX}"
        ));
    }
    let tag = match (tag, &digest) {
        (None, None) => Some(DEFAULT_TAG.to_owned()),
        (tag, _) => tag.map(str::to_owned),
    };
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

/// `name[:tag]` and the digest after `@`, if any.
fn split_digest(s: &str) -> Result<(&str, Option<Digest>), String> {
    let Some((rest, digest)) = s.split_once('@') else {
        return Ok((s, None));
    };
    let digest = digest.parse::<Digest>().map_err(|_| {
        format!(
            "invalid digest {digest:?}: expected sha256: followed by 64 lowercase hexadecimal \
             digits"
        )
    })?;
    Ok((rest, Some(digest)))
}

/// The name and the tag after the last `:` that follows the last `/` (a `:` before a `/` is a
/// registry port).
fn split_tag(s: &str) -> Result<(&str, Option<&str>), String> {
    let after_slash = s.rfind('/').map_or(0, |i| i + 1);
    let Some(colon) = s[after_slash..].rfind(':').map(|i| after_slash + i) else {
        return Ok((s, None));
    };
    let tag = &s[colon + 1..];
    if !is_valid_tag(tag) {
        return Err(format!(
            "invalid tag {tag:?}: a tag is 1 to {TAG_MAX} letters, digits, '_', '.' and '-', \
             and does not start with '.' or '-'"
        ));
    }
    Ok((&s[..colon], Some(tag)))
}

/// The registry (normalised) and the repository path of `name`, by Docker's rules.
fn split_registry(name: &str, short_name_registry: &str) -> Result<(String, String), String> {
    let (registry, path) = match name.split_once('/') {
        Some((first, rest)) if names_registry(first) => {
            validate_registry(first)?;
            (normalize_registry(first), rest)
        }
        _ => (normalize_registry(short_name_registry), name),
    };
    validate_path(path)?;
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path.to_owned()
    };
    Ok((registry.to_owned(), repository))
}

/// Whether the first component of a name is a registry rather than part of the path.
fn names_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn validate_path(path: &str) -> Result<(), String> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("repository name {path:?} must be lowercase"));
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Err(format!(
                "repository name {path:?} has an empty path component"
            ));
        }
        if !is_valid_path_component(component) {
            return Err(format!(
                "invalid repository name component {component:?}: use lowercase letters and \
                 digits, separated by '.', '_', '__' or dashes"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let run = bytes[i..].iter().take_while(|&&b| alnum(b)).count();
        if run == 0 {
            return false;
        }
        i += run;
        if i == bytes.len() {
            return true;
        }
        let separator = match &bytes[i..] {
            [b'_', b'_', ..] => 2,
            [b'_' | b'.', ..] => 1,
            [b'-', ..] => bytes[i..].iter().take_while(|&&b| b == b'-').count(),
            _ => return false,
        };
        i += separator;
        if i == bytes.len() {
            return false;
        }
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn is_valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match tag.as_bytes() {
        [first, rest @ ..] => {
            tag.len() <= TAG_MAX
                && word(*first)
                && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        }
        [] => false,
    }
}

/// `host[:port]` where host is a domain name, an IPv4 address or a bracketed IPv6 address.
fn is_valid_domain(domain: &str) -> bool {
    let Some((host, port)) = split_port(domain) else {
        return false;
    };
    let port_ok =
        port.is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok());
    port_ok && is_valid_host(host)
}

fn is_valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    !host.is_empty() && host.split('.').all(is_valid_domain_component)
}

/// `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`
fn is_valid_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn error(s: &str) -> String {
        match s.parse::<Reference>() {
            Ok(r) => panic!("{s:?} accepted as {r}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn short_names_normalise_to_docker_hub() {
        let cases = [
            ("ubuntu", "docker.io/library/ubuntu:latest"),
            ("ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
            ("user/repo", "docker.io/user/repo:latest"),
            ("user/repo:v1", "docker.io/user/repo:v1"),
            ("a/b/c", "docker.io/a/b/c:latest"),
            ("docker.io/ubuntu", "docker.io/library/ubuntu:latest"),
            (
                "docker.io/library/ubuntu",
                "docker.io/library/ubuntu:latest",
            ),
            ("index.docker.io/ubuntu", "docker.io/library/ubuntu:latest"),
            (
                "registry-1.docker.io/user/repo",
                "docker.io/user/repo:latest",
            ),
            ("library/ubuntu", "docker.io/library/ubuntu:latest"),
            ("localhost", "docker.io/library/localhost:latest"),
            ("localhost:5000", "docker.io/library/localhost:5000"),
        ];
        for (input, canonical) in cases {
            assert_eq!(parse(input).to_string(), canonical, "{input}");
        }
    }

    #[test]
    fn registries_are_recognised_by_dot_colon_localhost_or_uppercase() {
        let cases = [
            ("quay.io/org/app", "quay.io", "org/app"),
            ("host:5000/app", "host:5000", "app"),
            ("localhost/app", "localhost", "app"),
            ("localhost:5000/a/b", "localhost:5000", "a/b"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000", "app"),
            ("[::1]:5000/app", "[::1]:5000", "app"),
            ("[fe80::1]/app", "[fe80::1]", "app"),
            ("Registry/app", "Registry", "app"),
            (
                "my-registry.example.com/team/app",
                "my-registry.example.com",
                "team/app",
            ),
            ("ghcr.io/ubuntu", "ghcr.io", "ubuntu"),
        ];
        for (input, registry, repository) in cases {
            let r = parse(input);
            assert_eq!(
                (r.registry.as_str(), r.repository.as_str()),
                (registry, repository),
                "{input}"
            );
            assert_eq!(r.tag.as_deref(), Some("latest"), "{input}");
        }
    }

    #[test]
    fn tags_and_digests() {
        let digest: Digest = format!("sha256:{HEX}").parse().unwrap();
        let r = parse(&format!("ubuntu@sha256:{HEX}"));
        assert_eq!((r.tag.as_deref(), r.digest.as_ref()), (None, Some(&digest)));
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/ubuntu@sha256:{HEX}")
        );
        assert_eq!(r.manifest_reference(), format!("sha256:{HEX}"));

        let r = parse(&format!("x:tag@sha256:{HEX}"));
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/x:tag@sha256:{HEX}")
        );
        assert_eq!(r.manifest_reference(), format!("sha256:{HEX}"));

        let r = parse(&format!("host:5000/a/b@sha256:{HEX}"));
        assert_eq!(r.to_string(), format!("host:5000/a/b@sha256:{HEX}"));

        let r = parse("host:5000/a:v1.2-rc_3");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("host:5000", Some("v1.2-rc_3"))
        );
        assert_eq!(r.manifest_reference(), "v1.2-rc_3");

        assert_eq!(parse("a:_x").tag.as_deref(), Some("_x"));
        assert_eq!(parse("a:UPPER").tag.as_deref(), Some("UPPER"));
        let longest = "t".repeat(128);
        assert_eq!(parse(&format!("a:{longest}")).tag, Some(longest));
        assert_eq!(
            parse("a").with_digest(digest.clone()).to_string(),
            format!("docker.io/library/a:latest@sha256:{HEX}")
        );
    }

    #[test]
    fn path_components_follow_the_grammar() {
        for good in [
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a1.b2_c3__d4-e5",
            "0",
            "a/b.c/d_e",
        ] {
            parse(good);
        }
        for bad in [
            "a..b", "a___b", "a.-b", "-a", "a-", "_a", "a_", ".a", "a.", "a/.b", "a/b-/c", "a+b",
            "a b", "é",
        ] {
            let message = error(bad);
            assert!(
                message.contains("invalid repository name component")
                    || message.contains("invalid"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("Ubuntu", "must be lowercase"),
            ("user/Repo", "must be lowercase"),
            ("quay.io/Org/app", "must be lowercase"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            ("quay.io/", "empty path component"),
            ("ubuntu:", "invalid tag \"\""),
            ("ubuntu:-x", "invalid tag"),
            ("ubuntu:.x", "invalid tag"),
            (
                "ubuntu:a:b",
                "invalid repository name component \"ubuntu:a\"",
            ),
            ("ubuntu@sha256:abc", "invalid digest \"sha256:abc\""),
            ("ubuntu@sha512:abc", "invalid digest"),
            ("ubuntu@", "invalid digest"),
            (HEX, "image ID"),
            ("host:port/a", "invalid registry \"host:port\""),
            ("host:99999/a", "invalid registry"),
            ("-host.io/a", "invalid registry"),
            ("host..io/a", "invalid registry"),
            ("[::1/a", "invalid registry"),
            ("[zz::1]:5000/a", "invalid registry"),
        ];
        for (input, expected) in cases {
            let message = error(input);
            assert!(message.contains(expected), "{input:?}: {message}");
            assert!(message.starts_with("invalid image reference"), "{message}");
        }
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(error(&long_tag).contains("invalid tag"));
        let long_name = format!("quay.io/{}", "a".repeat(250));
        assert!(error(&long_name).contains("more than 255"));
    }

    #[test]
    fn short_name_registry_is_configurable() {
        let r = Reference::parse_with("ubuntu", "registry.example.com").unwrap();
        assert_eq!(r.to_string(), "registry.example.com/ubuntu:latest");
        let r = Reference::parse_with("team/app:1", "registry.example.com:5000").unwrap();
        assert_eq!(r.to_string(), "registry.example.com:5000/team/app:1");
        let r = Reference::parse_with("docker.io/ubuntu", "registry.example.com").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/ubuntu:latest");
        let r = Reference::parse_with("ubuntu", "index.docker.io").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/ubuntu:latest");
    }

    #[test]
    fn familiar_names_are_docker_short_forms() {
        let cases = [
            ("ubuntu", "ubuntu:latest"),
            ("docker.io/library/ubuntu:22.04", "ubuntu:22.04"),
            ("user/repo:tag", "user/repo:tag"),
            ("library/a/b", "library/a/b:latest"),
            ("quay.io/org/app:1", "quay.io/org/app:1"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
        ];
        for (input, familiar) in cases {
            assert_eq!(parse(input).familiar(), familiar, "{input}");
        }
        assert_eq!(
            parse(&format!("ubuntu@sha256:{HEX}")).familiar(),
            format!("ubuntu@sha256:{HEX}")
        );
    }

    #[test]
    fn api_host_and_repository_path() {
        let r = parse("ubuntu");
        assert_eq!(
            (r.api_host(), r.repository_path()),
            ("registry-1.docker.io", "library/ubuntu")
        );
        let r = parse("quay.io:443/org/app");
        assert_eq!(
            (r.api_host(), r.repository_path()),
            ("quay.io:443", "org/app")
        );
        assert_eq!(r.name(), "quay.io:443/org/app");
    }

    #[test]
    fn loopback_registries() {
        for yes in [
            "localhost/a",
            "localhost:5000/a",
            "127.0.0.1/a",
            "127.0.0.1:5000/a",
            "127.1.2.3:80/a",
            "[::1]/a",
            "[::1]:5000/a",
            "LOCALHOST:5000/a",
        ] {
            assert!(parse(yes).is_loopback(), "{yes}");
        }
        for no in [
            "ubuntu",
            "quay.io/a",
            "128.0.0.1/a",
            "10.0.0.1:5000/a",
            "[::2]:5000/a",
            "localhost.example.com/a",
            "localhostx:1/a",
        ] {
            assert!(!parse(no).is_loopback(), "{no}");
        }
        assert!(is_loopback_host("::1"));
        assert!(is_loopback_host("127.0.0.1"));
        assert!(!is_loopback_host("example.com:5000"));
    }

    #[test]
    fn registry_validation() {
        for good in [
            "docker.io",
            "host:5000",
            "[::1]:5000",
            "[::1]",
            "10.0.0.1:80",
            "Registry",
            "a-b.c",
        ] {
            assert!(validate_registry(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "host:",
            "host:x",
            ":5000",
            "[::1]x",
            "a_b.io",
            "https://host",
            "host/path",
        ] {
            assert!(validate_registry(bad).is_err(), "{bad}");
        }
    }
}
