//! Manifests as registries serve them: the OCI image manifest and image index, and Docker's
//! schema 2 manifest and manifest list (the same shapes under other media types, which
//! oci-spec parses as `MediaType::Other`). Parsing yields either one image's config and layers
//! ([`Fetched::Manifest`]) or the platforms an index offers ([`Fetched::Index`]), from which
//! [`Platform::select`] picks the one to run, with Docker's matching rules.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{ImageIndex, ImageManifest};

use crate::image::{Compression, Digest, LayerDescriptor};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The `Accept` header of a manifest request: every manifest type cleat understands.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// What a manifest points at: a blob (config or layer) or, in an index, another manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// One image for one platform: its configuration blob and its layers, base first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest's own media type (OCI or Docker schema 2).
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<LayerDescriptor>,
}

/// A parsed manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// An image manifest (OCI or Docker schema 2).
    Manifest(Manifest),
    /// An image index or manifest list: the image manifest for each platform, in the order
    /// the index lists them. Entries without a platform, and entries that are not image
    /// manifests, are left out.
    Index(Vec<(Platform, Descriptor)>),
}

/// An operating system, CPU architecture and optional CPU variant, as Go names them
/// (`linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Why a manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "Docker schema 1 manifests are not supported (the image was pushed by a very old tool; \
         push it again with a current one)"
    )]
    Schema1,
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error(
        "cannot tell what kind of manifest this is: the body has no mediaType and the \
         Content-Type is {}",
        .0.as_deref().map_or("missing".to_owned(), |ct| format!("{ct:?}"))
    )]
    UnknownMediaType(Option<String>),
    #[error("invalid {kind}: {reason}")]
    Invalid { kind: &'static str, reason: String },
    #[error(
        "layer media type {0:?} is not supported (cleat unpacks uncompressed, gzip and zstd \
         tar layers)"
    )]
    UnsupportedLayer(String),
    #[error(
        "not a container image: its config has media type {0:?} (expected {OCI_CONFIG} or \
         {DOCKER_CONFIG})"
    )]
    NotAnImage(String),
    #[error("unsupported digest {0:?}: only sha256 digests are supported")]
    UnsupportedDigest(String),
    #[error("no manifest for platform {wanted}; available: {}", PlatformList(.available))]
    NoMatchingPlatform {
        wanted: Platform,
        available: Vec<Platform>,
    },
    #[error(
        "invalid platform {0:?}: expected os/architecture[/variant], e.g. linux/amd64 or \
         linux/arm64/v8"
    )]
    InvalidPlatform(String),
}

/// Parses a manifest body. The type comes from the body's `mediaType`; when the body has none
/// (umoci writes manifests without it), from the response's Content-Type; when that is missing
/// or generic too, from the document's shape.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Fetched, ManifestError> {
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid {
        kind: "manifest",
        reason: e.to_string(),
    })?;
    if probe.schema_version == Some(1) {
        return Err(ManifestError::Schema1);
    }
    match media_type_of(&probe, content_type)? {
        media_type @ (OCI_MANIFEST | DOCKER_MANIFEST) => {
            parse_manifest(bytes, media_type).map(Fetched::Manifest)
        }
        OCI_INDEX | DOCKER_MANIFEST_LIST => parse_index(bytes).map(Fetched::Index),
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(ManifestError::Schema1),
        other => Err(ManifestError::UnsupportedMediaType(other.to_owned())),
    }
}

/// The fields that tell manifest kinds apart.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
}

fn media_type_of<'a>(
    probe: &'a Probe,
    content_type: Option<&'a str>,
) -> Result<&'a str, ManifestError> {
    if let Some(media_type) = probe.media_type.as_deref().filter(|m| !m.is_empty()) {
        return Ok(media_type);
    }
    let essence = content_type.map(|ct| ct.split(';').next().unwrap_or(ct).trim());
    match essence {
        Some(ct) if !is_generic_content_type(ct) => Ok(ct),
        _ if probe.manifests.is_some() => Ok(OCI_INDEX),
        _ if probe.layers.is_some() => Ok(OCI_MANIFEST),
        _ => Err(ManifestError::UnknownMediaType(
            content_type.map(str::to_owned),
        )),
    }
}

/// Content types that say nothing about the kind of manifest.
fn is_generic_content_type(content_type: &str) -> bool {
    matches!(
        content_type,
        "" | "application/json" | "application/octet-stream" | "text/plain"
    )
}

fn parse_manifest(bytes: &[u8], media_type: &str) -> Result<Manifest, ManifestError> {
    let manifest: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid {
            kind: "image manifest",
            reason: e.to_string(),
        })?;
    let config = descriptor(manifest.config())?;
    if config.media_type != OCI_CONFIG && config.media_type != DOCKER_CONFIG {
        return Err(ManifestError::NotAnImage(config.media_type));
    }
    let layers = manifest
        .layers()
        .iter()
        .map(layer)
        .collect::<Result<_, _>>()?;
    Ok(Manifest {
        media_type: media_type.to_owned(),
        config,
        layers,
    })
}

fn parse_index(bytes: &[u8]) -> Result<Vec<(Platform, Descriptor)>, ManifestError> {
    let index: ImageIndex = serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid {
        kind: "image index",
        reason: e.to_string(),
    })?;
    let mut entries = Vec::new();
    for entry in index.manifests() {
        let media_type = entry.media_type().to_string();
        if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
            continue;
        }
        let Some(platform) = entry.platform() else {
            continue;
        };
        let platform = Platform {
            os: platform.os().to_string(),
            architecture: platform.architecture().to_string(),
            variant: platform.variant().clone().filter(|v| !v.is_empty()),
        };
        entries.push((platform, descriptor(entry)?));
    }
    Ok(entries)
}

fn descriptor(d: &oci_spec::image::Descriptor) -> Result<Descriptor, ManifestError> {
    let digest = d.digest().to_string();
    Ok(Descriptor {
        media_type: d.media_type().to_string(),
        digest: digest
            .parse()
            .map_err(|_| ManifestError::UnsupportedDigest(digest))?,
        size: d.size(),
    })
}

fn layer(d: &oci_spec::image::Descriptor) -> Result<LayerDescriptor, ManifestError> {
    let Descriptor {
        media_type,
        digest,
        size,
    } = descriptor(d)?;
    let compression = Compression::of_layer_media_type(&media_type)
        .ok_or_else(|| ManifestError::UnsupportedLayer(media_type.clone()))?;
    Ok(LayerDescriptor {
        digest,
        size,
        media_type,
        compression,
    })
}

impl Platform {
    /// The platform of the running machine (`linux/amd64`, `linux/arm64/v8`, …).
    pub fn host() -> Platform {
        let (architecture, variant) = host_architecture(std::env::consts::ARCH);
        Platform {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The platform with Go's names and the default variant made explicit: `x86_64` is
    /// `amd64`, `aarch64` is `arm64`, `arm64` without a variant is `arm64/v8`, `arm` without
    /// one is `arm/v7`, `amd64/v1` is plain `amd64`.
    pub fn normalized(&self) -> Platform {
        let os = self.os.to_ascii_lowercase();
        let architecture = self.architecture.to_ascii_lowercase();
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let (architecture, variant) = match (architecture.as_str(), variant.as_deref()) {
            ("x86_64" | "x86-64" | "amd64", Some("v1") | None) => ("amd64", None),
            ("x86_64" | "x86-64", v) => ("amd64", v.map(str::to_owned)),
            ("aarch64" | "arm64", Some("8" | "v8") | None) => ("arm64", Some("v8".to_owned())),
            ("aarch64", v) => ("arm64", v.map(str::to_owned)),
            ("armhf", None) => ("arm", Some("v7".to_owned())),
            ("armel", None) => ("arm", Some("v6".to_owned())),
            ("arm", None) => ("arm", Some("v7".to_owned())),
            ("arm", Some(v)) if !v.starts_with('v') => ("arm", Some(format!("v{v}"))),
            ("i386" | "i486" | "i586" | "i686", v) => ("386", v.map(str::to_owned)),
            (a, v) => (a, v.map(str::to_owned)),
        };
        Platform {
            os,
            architecture: architecture.to_owned(),
            variant,
        }
    }

    /// Picks this platform's manifest from an index, as Docker does: the operating system and
    /// architecture must be equal; a variant, when asked for, must be equal too (after
    /// normalisation, so `arm64` and `arm64/v8` are the same); without one, the architecture's
    /// default variant is preferred, then the first entry listed. The error lists what the
    /// index offers.
    pub fn select<'a>(
        &self,
        entries: &'a [(Platform, Descriptor)],
    ) -> Result<&'a (Platform, Descriptor), ManifestError> {
        let wanted = self.normalized();
        let mut candidates = entries.iter().filter(|(p, _)| {
            let p = p.normalized();
            p.os == wanted.os && p.architecture == wanted.architecture
        });
        let found = if self.variant.is_some() {
            candidates.find(|(p, _)| p.normalized().variant == wanted.variant)
        } else {
            let candidates: Vec<_> = candidates.collect();
            candidates
                .iter()
                .find(|(p, _)| p.normalized().variant == wanted.variant)
                .or_else(|| candidates.first())
                .copied()
        };
        found.ok_or_else(|| ManifestError::NoMatchingPlatform {
            wanted: self.clone(),
            available: available_platforms(entries),
        })
    }
}

/// The platforms an index offers, without the `unknown/unknown` entries that carry build
/// attestations.
fn available_platforms(entries: &[(Platform, Descriptor)]) -> Vec<Platform> {
    let mut platforms: Vec<Platform> = entries
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| p.os != "unknown" && p.architecture != "unknown")
        .collect();
    platforms.dedup();
    platforms
}

/// Go's name and default variant for a Rust target architecture.
fn host_architecture(arch: &str) -> (&str, Option<&str>) {
    match arch {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "loongarch64" => ("loong64", None),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
        "mips" if cfg!(target_endian = "little") => ("mipsle", None),
        other => (other, None),
    }
}

impl FromStr for Platform {
    type Err = ManifestError;

    /// `os/architecture[/variant]`, e.g. `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`.
    fn from_str(s: &str) -> Result<Platform, ManifestError> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid_part = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid_part) {
            return Err(ManifestError::InvalidPlatform(s.to_owned()));
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// `linux/amd64, linux/arm64/v8`, or `none` for an empty list.
pub struct PlatformList<'a>(pub &'a [Platform]);

impl fmt::Display for PlatformList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, platform) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{platform}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn manifest_json(media_type: Option<&str>, layer_type: &str) -> String {
        let media_type = media_type.map_or(String::new(), |m| format!(r#""mediaType": "{m}","#));
        format!(
            r#"{{"schemaVersion": 2, {media_type}
                "config": {{"mediaType": "{OCI_CONFIG}", "digest": "{}", "size": 7}},
                "layers": [{{"mediaType": "{layer_type}", "digest": "{}", "size": 42}}]}}"#,
            digest(1),
            digest(2)
        )
    }

    fn index_json(media_type: &str, platforms: &[&str]) -> String {
        let entries: Vec<String> = platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let p: Platform = p.parse().unwrap();
                let variant = p
                    .variant
                    .map_or(String::new(), |v| format!(r#", "variant": "{v}""#));
                format!(
                    r#"{{"mediaType": "{OCI_MANIFEST}", "digest": "{}", "size": 10,
                        "platform": {{"os": "{}", "architecture": "{}"{variant}}}}}"#,
                    digest(i as u8),
                    p.os,
                    p.architecture
                )
            })
            .collect();
        format!(
            r#"{{"schemaVersion": 2, "mediaType": "{media_type}", "manifests": [{}]}}"#,
            entries.join(",")
        )
    }

    #[test]
    fn oci_and_docker_manifests() {
        for (media_type, layer_type, compression) in [
            (
                OCI_MANIFEST,
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                OCI_MANIFEST,
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            (
                OCI_MANIFEST,
                "application/vnd.oci.image.layer.v1.tar",
                Compression::None,
            ),
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Gzip,
            ),
        ] {
            let Fetched::Manifest(m) =
                parse(manifest_json(Some(media_type), layer_type).as_bytes(), None).unwrap()
            else {
                panic!("not a manifest");
            };
            assert_eq!(m.media_type, media_type);
            assert_eq!(
                m.config,
                Descriptor {
                    media_type: OCI_CONFIG.into(),
                    digest: digest(1),
                    size: 7
                }
            );
            assert_eq!(m.layers.len(), 1);
            assert_eq!(
                (m.layers[0].compression, m.layers[0].size),
                (compression, 42)
            );
            assert_eq!(m.layers[0].digest, digest(2));
        }
    }

    #[test]
    fn media_type_from_content_type_when_the_body_has_none() {
        let body = manifest_json(None, "application/vnd.docker.image.rootfs.diff.tar.gzip");
        for content_type in [
            Some(DOCKER_MANIFEST),
            Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
        ] {
            let Fetched::Manifest(m) = parse(body.as_bytes(), content_type).unwrap() else {
                panic!("not a manifest");
            };
            assert_eq!(m.media_type, DOCKER_MANIFEST);
        }
        // Generic or missing Content-Type: the shape decides.
        for content_type in [
            None,
            Some("application/json"),
            Some("application/octet-stream"),
        ] {
            assert!(matches!(
                parse(body.as_bytes(), content_type).unwrap(),
                Fetched::Manifest(_)
            ));
        }
        // The body's mediaType wins over the Content-Type.
        let body = manifest_json(Some(OCI_MANIFEST), "application/vnd.oci.image.layer.v1.tar");
        assert!(matches!(
            parse(body.as_bytes(), Some("text/html")).unwrap(),
            Fetched::Manifest(_)
        ));
        // A specific but wrong Content-Type is reported.
        let body = manifest_json(None, "application/vnd.oci.image.layer.v1.tar");
        let error = parse(body.as_bytes(), Some("text/html")).unwrap_err();
        assert_eq!(
            error,
            ManifestError::UnsupportedMediaType("text/html".into())
        );
        let error = parse(br#"{"schemaVersion": 2}"#, None).unwrap_err();
        assert!(
            error.to_string().contains("Content-Type is missing"),
            "{error}"
        );
    }

    #[test]
    fn indexes_and_manifest_lists() {
        for media_type in [OCI_INDEX, DOCKER_MANIFEST_LIST] {
            let body = index_json(
                media_type,
                &["linux/amd64", "linux/arm64/v8", "unknown/unknown"],
            );
            let Fetched::Index(entries) = parse(body.as_bytes(), None).unwrap() else {
                panic!("not an index");
            };
            let platforms: Vec<String> = entries.iter().map(|(p, _)| p.to_string()).collect();
            assert_eq!(
                platforms,
                ["linux/amd64", "linux/arm64/v8", "unknown/unknown"]
            );
            assert_eq!(entries[1].1.digest, digest(1));
        }
        let body = index_json(OCI_INDEX, &[]).replace(
            r#""mediaType": "application/vnd.oci.image.index.v1+json","#,
            "",
        );
        assert_eq!(
            parse(body.as_bytes(), None).unwrap(),
            Fetched::Index(vec![])
        );
        assert_eq!(
            parse(body.as_bytes(), Some(OCI_INDEX)).unwrap(),
            Fetched::Index(vec![])
        );
    }

    #[test]
    fn bad_manifests_are_clear_errors() {
        let schema1 = br#"{"schemaVersion": 1, "name": "x", "tag": "latest", "fsLayers": []}"#;
        assert_eq!(parse(schema1, None).unwrap_err(), ManifestError::Schema1);
        assert_eq!(
            parse(b"{}", Some(DOCKER_SCHEMA1_SIGNED)).unwrap_err(),
            ManifestError::Schema1
        );

        let encrypted = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
        let error = parse(
            manifest_json(Some(OCI_MANIFEST), encrypted).as_bytes(),
            None,
        )
        .unwrap_err();
        assert_eq!(error, ManifestError::UnsupportedLayer(encrypted.into()));
        assert!(error.to_string().contains(encrypted));

        let helm = manifest_json(Some(OCI_MANIFEST), "application/vnd.oci.image.layer.v1.tar")
            .replace(OCI_CONFIG, "application/vnd.cncf.helm.config.v1+json");
        let error = parse(helm.as_bytes(), None).unwrap_err();
        assert!(
            error.to_string().starts_with("not a container image"),
            "{error}"
        );

        let sha512 = format!("sha512:{}", "a".repeat(128));
        let body = manifest_json(Some(OCI_MANIFEST), "application/vnd.oci.image.layer.v1.tar")
            .replace(&digest(2).to_string(), &sha512);
        assert_eq!(
            parse(body.as_bytes(), None).unwrap_err(),
            ManifestError::UnsupportedDigest(sha512)
        );

        assert!(matches!(
            parse(b"not json", None).unwrap_err(),
            ManifestError::Invalid { .. }
        ));
        let error = parse(
            format!(r#"{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}"}}"#).as_bytes(),
            None,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid image manifest: missing field"),
            "{error}"
        );
        assert!(matches!(
            parse(br#"{"mediaType": "application/vnd.example+json"}"#, None).unwrap_err(),
            ManifestError::UnsupportedMediaType(_)
        ));
    }

    #[test]
    fn platforms_parse_and_display() {
        for s in [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/arm/v7",
            "windows/amd64",
            "linux/ppc64le",
        ] {
            assert_eq!(s.parse::<Platform>().unwrap().to_string(), s);
        }
        assert_eq!(
            "Linux/AMD64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/v7/x",
            "linux amd64",
            "linux/amd64/",
        ] {
            let error = bad.parse::<Platform>().unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("expected os/architecture[/variant]"),
                "{bad}"
            );
        }
    }

    #[test]
    fn host_platform() {
        assert_eq!(host_architecture("x86_64"), ("amd64", None));
        assert_eq!(host_architecture("aarch64"), ("arm64", Some("v8")));
        assert_eq!(host_architecture("arm"), ("arm", Some("v7")));
        assert_eq!(host_architecture("x86"), ("386", None));
        assert_eq!(host_architecture("s390x"), ("s390x", None));
        assert_eq!(host_architecture("riscv64"), ("riscv64", None));
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.to_string(), "linux/amd64");
        }
    }

    fn entries(platforms: &[&str]) -> Vec<(Platform, Descriptor)> {
        platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (os, rest) = p.split_once('/').unwrap();
                let mut parts = rest.splitn(2, '/');
                let platform = Platform {
                    os: os.into(),
                    architecture: parts.next().unwrap().into(),
                    variant: parts.next().map(Into::into),
                };
                let descriptor = Descriptor {
                    media_type: OCI_MANIFEST.into(),
                    digest: digest(i as u8),
                    size: 1,
                };
                (platform, descriptor)
            })
            .collect()
    }

    fn pick(wanted: &str, offered: &[&str]) -> Result<String, String> {
        let offered = entries(offered);
        wanted
            .parse::<Platform>()
            .unwrap()
            .select(&offered)
            .map(|(p, _)| p.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn platform_matching_follows_docker() {
        let all = [
            "linux/amd64",
            "linux/arm/v6",
            "linux/arm/v7",
            "linux/arm64/v8",
            "linux/386",
            "windows/amd64",
        ];
        assert_eq!(pick("linux/amd64", &all).unwrap(), "linux/amd64");
        assert_eq!(pick("linux/arm64", &all).unwrap(), "linux/arm64/v8");
        assert_eq!(pick("linux/arm64/v8", &all).unwrap(), "linux/arm64/v8");
        assert_eq!(pick("linux/arm/v6", &all).unwrap(), "linux/arm/v6");
        assert_eq!(pick("linux/arm", &all).unwrap(), "linux/arm/v7");
        assert_eq!(pick("linux/386", &all).unwrap(), "linux/386");
        assert_eq!(pick("windows/amd64", &all).unwrap(), "windows/amd64");
        // arm64 without a variant in the index is v8.
        assert_eq!(
            pick("linux/arm64/v8", &["linux/amd64", "linux/arm64"]).unwrap(),
            "linux/arm64"
        );
        // Aliases normalise.
        assert_eq!(
            pick("linux/x86_64", &["linux/amd64"]).unwrap(),
            "linux/amd64"
        );
        assert_eq!(
            pick("linux/aarch64", &["linux/arm64"]).unwrap(),
            "linux/arm64"
        );
        // Without a variant: the default one first, else the first listed.
        assert_eq!(
            pick("linux/arm", &["linux/arm/v6", "linux/arm/v7"]).unwrap(),
            "linux/arm/v7"
        );
        assert_eq!(
            pick("linux/arm", &["linux/arm/v6", "linux/arm/v5"]).unwrap(),
            "linux/arm/v6"
        );
        assert_eq!(
            pick("linux/amd64", &["linux/amd64/v3", "linux/amd64"]).unwrap(),
            "linux/amd64"
        );
        assert_eq!(
            pick("linux/amd64", &["linux/amd64/v2"]).unwrap(),
            "linux/amd64/v2"
        );
        // A variant asked for must be there.
        let error = pick("linux/arm/v7", &["linux/arm/v6", "linux/amd64"]).unwrap_err();
        assert_eq!(
            error,
            "no manifest for platform linux/arm/v7; available: linux/arm/v6, linux/amd64"
        );
        let error = pick(
            "linux/s390x",
            &["linux/amd64", "linux/arm64/v8", "unknown/unknown"],
        )
        .unwrap_err();
        assert_eq!(
            error,
            "no manifest for platform linux/s390x; available: linux/amd64, linux/arm64/v8"
        );
        assert_eq!(
            pick("linux/amd64", &[]).unwrap_err(),
            "no manifest for platform linux/amd64; available: none"
        );
    }
}
