//! The command line: Docker's verbs, each a thin layer over the library.

mod attach;
mod config;
mod diag;
mod docs;
mod exec;
mod image;
mod inspect;
mod internal;
mod journal;
mod lifecycle;
mod logs;
mod network;
mod prepare;
mod ps;
mod run;
mod terminal;
mod volume;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cleat::spec::Name;

/// Run OCI containers as systemd units.
///
/// Declared containers live in /etc/cleat/containers/NAME.toml and run as
/// container@NAME.service; `cleat run` creates ad-hoc ones as transient units
/// (cleat-NAME.service). systemd supervises both; cleat keeps no daemon.
#[derive(Parser)]
#[command(
    name = "cleat",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container and start it
    #[command(disable_help_flag = true)]
    Run(run::RunArgs),
    /// Create a container without starting it
    #[command(disable_help_flag = true)]
    Create(run::CreateArgs),
    /// Start containers
    Start(lifecycle::StartArgs),
    /// Stop containers gracefully (stop signal, then SIGKILL after a timeout)
    Stop(lifecycle::StopArgs),
    /// Send a signal to containers (default SIGKILL, which also stops them)
    Kill(lifecycle::KillArgs),
    /// Restart containers
    Restart(lifecycle::RestartArgs),
    /// Remove containers
    Rm(lifecycle::RmArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// Show a container's definition and state as JSON
    Inspect(inspect::InspectArgs),
    /// Show a container's output (from the journal)
    Logs(logs::LogsArgs),
    /// Connect to the terminal of a running container (Ctrl-P Ctrl-Q leaves it running)
    Attach(attach::AttachArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Pull an image from a registry
    Pull(image::PullArgs),
    /// List images
    Images(image::ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Remove images
    Rmi(image::RmiArgs),
    /// Log in to a registry (credentials go to /etc/cleat/auth.json)
    Login(image::LoginArgs),
    /// Log out of a registry
    Logout(image::LogoutArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Show a container's published ports
    Port(network::PortArgs),
    /// Show or check container definitions
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Entry points for systemd (not for interactive use)
    #[command(subcommand, hide = true)]
    Internal(internal::InternalCommand),
}

/// A failed command: the message and the exit status to end with.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            code: 1,
            error: e.into(),
        }
    }
}

impl Failure {
    pub fn with_code(code: u8, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code,
            error: error.into(),
        }
    }
}

pub type CmdResult = Result<ExitCode, Failure>;

/// Docker's exit status for errors of `run` and `create` themselves (as opposed to the
/// container's own exit status).
pub const EXIT_RUN_ERROR: u8 = 125;

/// A single-threaded runtime for the D-Bus calls of one command.
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            diag::error(format!("cannot create an event loop: {e}"));
            std::process::exit(1)
        }
    }
}

/// Parses a container name argument.
pub fn name(arg: &str) -> Result<Name, Failure> {
    arg.parse::<Name>()
        .map_err(|e| Failure::from(anyhow::anyhow!(e)))
}

/// A command that only reads and prints ends quietly, as `ls` does, when what reads its output
/// goes away (`cleat ps | grep -q …`, `cleat logs -f | head`): SIGPIPE back to its default.
/// Commands that change things keep it ignored, so that a closed pipe never cuts them short
/// halfway.
fn quiet_when_output_is_closed() {
    // SAFETY: restores the default disposition of one signal; no handler is involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

pub fn main() -> ExitCode {
    // Before anything reads the environment or starts a thread.
    cleat::sealed::take_marker();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let run_like = std::env::args()
                .nth(1)
                .is_some_and(|a| a == "run" || a == "create");
            if run_like && e.use_stderr() {
                let _ = e.print();
                return ExitCode::from(EXIT_RUN_ERROR);
            }
            e.exit()
        }
    };
    if matches!(
        cli.command,
        Command::Ps(_)
            | Command::Inspect(_)
            | Command::Logs(_)
            | Command::Images(_)
            | Command::Port(_)
    ) {
        quiet_when_output_is_closed();
    }
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Create(a) => run::create(a),
        Command::Start(a) => lifecycle::start(a),
        Command::Stop(a) => lifecycle::stop(a),
        Command::Kill(a) => lifecycle::kill(a),
        Command::Restart(a) => lifecycle::restart(a),
        Command::Rm(a) => lifecycle::rm(a),
        Command::Ps(a) => ps::ps(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Logs(a) => logs::logs(a),
        Command::Attach(a) => attach::attach(a),
        Command::Exec(a) => exec::exec(a),
        Command::Pull(a) => image::pull(a),
        Command::Images(a) => image::images(a),
        Command::Image(c) => image::image(c),
        Command::Rmi(a) => image::rmi(a),
        Command::Login(a) => image::login(a),
        Command::Logout(a) => image::logout(a),
        Command::Volume(c) => volume::volume(c),
        Command::Network(c) => network::network(c),
        Command::Port(a) => network::port(a),
        Command::Config(c) => config::config(c),
        Command::Internal(c) => internal::internal(c),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            diag::error(format!("{:#}", failure.error));
            ExitCode::from(failure.code)
        }
    }
}
