//! Privileged integration tests: one binary, one private systemd per run (see `host.rs` and
//! /work/shared/TESTHOST.md), shared by all tests, which run in parallel threads. Run as root:
//!
//!     cargo test --test system              # everything
//!     cargo test --test system smoke        # only the test host itself
//!
//! The product tests are written black-box from the CLI/TOML contract: they drive the
//! installed `cleat` and read systemd's view (`systemctl show`, `journalctl -u`, /proc).

mod host;
mod inside;
mod pty;

mod bad_input;
mod cli;
mod config;
mod declared;
mod errors;
mod escape;
mod exec;
mod images;
mod init;
mod isolation;
mod lifecycle;
mod network;
mod process;
mod readiness;
mod security;
mod smoke;
mod terminal;
mod volumes;
