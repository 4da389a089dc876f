//! `cleat attach` and the terminal session it shares with `cleat run -it`: the local terminal
//! connected to a container's terminal, which its init holds (see `runtime::console`).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use clap::Args;

use cleat::containers::Registry;
use cleat::runtime::console;
use cleat::runtime::pty;
use cleat::unit::dbus::Systemd;

use super::terminal::{DEFAULT_DETACH_KEYS, DetachScanner, RawMode, Scanned, parse_detach_keys};
use super::{CmdResult, Failure, name};

#[derive(Args)]
pub struct AttachArgs {
    /// Keys that detach (leave the container running): ctrl-X or single characters, with commas
    #[arg(long, value_name = "KEYS", default_value = DEFAULT_DETACH_KEYS)]
    detach_keys: String,
    /// Only watch: do not pass what you type to the container
    #[arg(long)]
    no_stdin: bool,
    #[arg(value_name = "NAME")]
    name: String,
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The user typed the detach keys (or cleat was told to stop): the container runs on.
    Detached,
    /// The container's terminal is gone: its init has exited.
    Closed,
}

/// The local terminal's size, or the container terminal's default when there is none.
pub fn local_size() -> (u16, u16) {
    pty::size(std::io::stdin())
        .or_else(|_| pty::size(std::io::stdout()))
        .ok()
        .filter(|(r, c)| *r > 0 && *c > 0)
        .unwrap_or(console::DEFAULT_SIZE)
}

/// Connects the local terminal to the container's over `sock` until either side ends it:
/// the container's output to standard output, and (if `interactive`) standard input to the
/// container, in raw mode when it is a terminal, watching for the detach keys. Window size
/// changes are passed on.
pub async fn session(sock: UnixStream, interactive: bool, detach_keys: &[u8]) -> SessionEnd {
    use tokio::signal::unix::{SignalKind, signal};
    let stdin = std::io::stdin();
    let raw = if interactive {
        RawMode::enter(stdin.as_fd()).ok().flatten()
    } else {
        None
    };
    let stdout = std::io::stdout();
    let raw_output = if raw.is_none() {
        RawMode::output_only(stdout.as_fd()).ok().flatten()
    } else {
        None
    };
    let writer = match sock.try_clone() {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(_) => return SessionEnd::Closed,
    };
    let (end_tx, mut end_rx) = tokio::sync::mpsc::unbounded_channel::<SessionEnd>();
    // The container's output. Ends when the init closes its side (it exited).
    let mut reader = match sock.try_clone() {
        Ok(r) => r,
        Err(_) => return SessionEnd::Closed,
    };
    let out_tx = end_tx.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 32 * 1024];
        let mut stdout = std::io::stdout().lock();
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stdout
                        .write_all(&buf[..n])
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = out_tx.send(SessionEnd::Closed);
    });
    if interactive {
        let writer = Arc::clone(&writer);
        let in_tx = end_tx.clone();
        let mut scanner = DetachScanner::new(detach_keys.to_vec());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            loop {
                let n = match stdin.read(&mut buf) {
                    // End of input: the container's terminal stays, the user just stops typing.
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let (keys, detach) = match scanner.feed(&buf[..n]) {
                    Scanned::Forward(k) => (k, false),
                    Scanned::Detach(k) => (k, true),
                };
                if !keys.is_empty() {
                    let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
                    if w.write_all(&console::frames(console::INPUT, &keys))
                        .is_err()
                    {
                        return;
                    }
                }
                if detach {
                    let _ = in_tx.send(SessionEnd::Detached);
                    return;
                }
            }
        });
    }
    let send_size = || {
        let (rows, cols) = local_size();
        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
        let _ = w.write_all(&console::resize_frame(rows, cols));
    };
    let mut winch = signal(SignalKind::window_change()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    let end = loop {
        tokio::select! {
            end = end_rx.recv() => break end.unwrap_or(SessionEnd::Closed),
            Some(()) = recv(&mut winch) => send_size(),
            // The local terminal went away, or cleat was asked to end: the container runs on.
            Some(()) = recv(&mut hup) => break SessionEnd::Detached,
            Some(()) = recv(&mut term) => break SessionEnd::Detached,
        }
    };
    drop(raw);
    drop(raw_output);
    if end == SessionEnd::Detached {
        let _ = sock.shutdown(std::net::Shutdown::Both);
    }
    end
}

async fn recv(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

pub fn attach(args: AttachArgs) -> CmdResult {
    let keys = parse_detach_keys(&args.detach_keys)?;
    let name = name(&args.name)?;
    let registry = Registry::system();
    let container = registry.load(&name)?;
    let unit = registry.unit_of(&name);
    super::run::runtime_block(async {
        let systemd = Systemd::connect().await?;
        let running = systemd
            .state_if_loaded(&unit)
            .await?
            .is_some_and(|s| s.is_running() && s.main_pid != 0);
        if !running {
            return Err(Failure::from(anyhow!("container {name} is not running")));
        }
        if container.spec.tty != Some(true) {
            return Err(Failure::from(anyhow!(
                "container {name} has no terminal to attach to (start it with -t, or tty = true); \
                 its output is in `cleat logs -f {name}`"
            )));
        }
        let interactive = container.spec.interactive == Some(true) && !args.no_stdin;
        attach_terminal(&systemd, &registry, &name, interactive, &keys).await
    })
}

/// Connects to the terminal of a running container until the user detaches (success) or it
/// stops (its exit status).
pub async fn attach_terminal(
    systemd: &Systemd,
    registry: &Registry,
    name: &cleat::spec::Name,
    interactive: bool,
    keys: &[u8],
) -> CmdResult {
    let unit = registry.unit_of(name);
    let path = registry.state.dir(name).join(cleat::state::CONSOLE_SOCKET);
    let sock = UnixStream::connect(&path).with_context(|| {
        format!(
            "connecting to the terminal of container {name} ({}); was it started with a \
             terminal?",
            path.display()
        )
    })?;
    {
        let (rows, cols) = local_size();
        (&sock).write_all(&console::resize_frame(rows, cols))?;
    }
    match session(sock, interactive, keys).await {
        SessionEnd::Detached => Ok(ExitCode::SUCCESS),
        SessionEnd::Closed => {
            let end = systemd.wait_stopped(&unit).await?;
            Ok(super::run::exit_code_of(registry, name, None, end.as_ref()))
        }
    }
}
