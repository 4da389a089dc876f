//! Images: references ([`reference`]), the registry client ([`registry`]), manifests and
//! platforms ([`manifest`]), the content-addressed store with its unpacked layers ([`store`],
//! [`unpack`]), the pull that streams layers from the one into the other ([`pull`]), and the
//! image configuration a container inherits ([`config`]). See DESIGN.md decision 7.

pub mod config;
pub mod digest;
pub mod manifest;
pub mod progress;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

pub use config::ImageConfig;
pub use digest::Digest;

/// Parses an image reference with the configured short-name registry
/// (`short-name-registry` in registries.toml; docker.io by default).
pub fn parse_reference(s: &str) -> Result<reference::Reference, registry::RegistryError> {
    let config = registry::config::RegistriesConfig::load(std::path::Path::new(
        registry::config::DEFAULT_PATH,
    ))?;
    Ok(reference::Reference::parse_with(
        s,
        &config.short_name_registry,
    )?)
}

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression of a layer media type (OCI and Docker), or `None` if the media type is
    /// not a layer type cleat can unpack.
    pub fn of_layer_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// A layer as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDescriptor {
    /// Digest of the blob as stored in the registry (compressed).
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub compression: Compression,
}
