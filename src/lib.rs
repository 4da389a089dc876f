//! cleat: run OCI containers as systemd units.
//!
//! The modules follow the pipeline (see DESIGN.md): a [`spec`] (TOML or flags) names an
//! [`image`] or a directory, the [`rootfs`] stage turns that into a mount plan, the [`runtime`]
//! builds the namespaces and execs the payload, and the [`unit`] stage is everything systemd
//! sees: the properties a spec translates to, the D-Bus client, the generator. [`state`] is
//! the little cleat remembers between commands.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod containers;
pub mod image;
pub mod network;
pub mod rootfs;
pub mod runtime;
pub mod sealed;
pub mod spec;
pub mod state;
pub mod sys;
pub mod time;
pub mod unit;
pub mod volume;
