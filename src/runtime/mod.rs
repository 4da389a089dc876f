//! Running the container: the payload process as a plain value ([`process`]), who it runs as
//! ([`user`]), and [`launch`], which builds the namespaces, hands the first process to systemd
//! and gets out of the way.

pub mod caps;
mod child;
pub mod console;
pub mod etc;
pub mod exec;
mod init;
pub mod launch;
pub mod limits;
pub mod notify;
pub mod process;
pub mod pty;
pub mod seccomp;
mod sync;
pub mod user;

pub use child::{EXIT_CANNOT_INVOKE, EXIT_NOT_FOUND, EXIT_SETUP};
