//! Images. For now only the part of an image the rest of the pipeline reads (its config:
//! the defaults a container inherits); the registry client and the layer store come next.

use crate::spec::Signal;

/// The runtime defaults an image supplies (OCI image config `config` object). A container
/// built from a plain directory has none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `KEY=value` strings, in order.
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<Signal>,
}
