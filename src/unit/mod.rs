//! Everything systemd sees of a container: the unit it runs as, the properties a spec
//! translates to ([`props`]), the D-Bus client that creates and drives units ([`dbus`]), and
//! the generator that compiles declared containers' unit-level settings ([`generator`]).

pub mod dbus;
pub mod generator;
pub mod props;

use crate::spec::Name;

/// The two kinds of containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Defined by a TOML file; runs as an instance of the `container@.service` template.
    Declared,
    /// Created by `cleat run`/`create`; runs as a transient unit.
    Adhoc,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Declared => "declared",
            Kind::Adhoc => "adhoc",
        }
    }
}

/// The template instance prefix of declared containers.
pub const TEMPLATE_PREFIX: &str = "container@";
/// The unit name prefix of ad-hoc containers.
pub const ADHOC_PREFIX: &str = "cleat-";

/// The unit a container runs as.
pub fn unit_name(kind: Kind, name: &Name) -> String {
    match kind {
        Kind::Declared => format!("{TEMPLATE_PREFIX}{name}.service"),
        Kind::Adhoc => format!("{ADHOC_PREFIX}{name}.service"),
    }
}

/// FNV-1a, 64 bits: a stable digest (the standard library's hasher may change between
/// releases) for comparing what the generator compiled with what a start reads.
pub fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}
