//! `cleat ps`: every container with its state, from systemd (running units) and from the exit
//! records `ExecStopPost=` leaves (finished ones), as a table or as JSON.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use futures_util::future::join_all;
use serde::Serialize;

use cleat::containers::{Found, Registry};
use cleat::spec::{Name, Source, Spec};
use cleat::state::ExitRecord;
use cleat::time;
use cleat::unit::dbus::{Systemd, UnitState};
use cleat::unit::{Kind, unit_name};

use super::run::runtime_block;
use super::{CmdResult, Failure};

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default: only running ones)
    #[arg(short = 'a', long)]
    all: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// One container as `ps` and `inspect` describe it.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub kind: Kind,
    pub unit: String,
    pub image: Option<String>,
    pub rootfs: Option<String>,
    pub command: Vec<String>,
    /// `created`, `starting`, `running`, `restarting`, `stopping` or `exited`.
    pub state: &'static str,
    /// Docker's human status: `Up 5 minutes`, `Exited (0) 2 hours ago`, ...
    pub status: String,
    pub exit_code: Option<i32>,
    pub pid: Option<u32>,
    pub created: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub restarts: u32,
    /// Published ports while it runs, as `docker ps` shows them (`0.0.0.0:8080->80/tcp`).
    pub ports: Vec<String>,
    /// Why a declared container's definition could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    created_usec: Option<u64>,
}

fn nonzero(usec: u64) -> Option<String> {
    (usec != 0).then(|| time::rfc3339(usec))
}

/// The state word, the human status and the exit code, from what systemd and the exit
/// record say.
pub fn describe(
    unit: Option<&UnitState>,
    exit: Option<&ExitRecord>,
    now: u64,
) -> (&'static str, String, Option<i32>) {
    let exit_code = exit.and_then(|e| e.exit_code);
    let code_text = exit_code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "?".into());
    if let Some(u) = unit.filter(|u| u.is_running()) {
        let (state, status) = match (u.active_state.as_str(), u.sub_state.as_str()) {
            ("active", _) => (
                "running",
                format!(
                    "Up {}",
                    time::human_duration(now.saturating_sub(u.active_enter_usec))
                ),
            ),
            ("activating", "auto-restart") => {
                let when = exit
                    .map(|e| time::ago(e.finished_usec, now))
                    .unwrap_or_default();
                (
                    "restarting",
                    format!("Restarting ({code_text}) {when}")
                        .trim_end()
                        .to_owned(),
                )
            }
            ("activating", _) => ("starting", "Starting".into()),
            _ => ("stopping", "Stopping".into()),
        };
        return (state, status, exit_code);
    }
    match exit {
        Some(e) => (
            "exited",
            format!("Exited ({code_text}) {}", time::ago(e.finished_usec, now)),
            exit_code,
        ),
        None => ("created", "Created".into(), None),
    }
}

/// What the container runs: its own entrypoint and command, with the image's where it sets
/// none (from the store, without network; just the spec's if the image is not there).
fn command(spec: &Spec, pinned: Option<&cleat::image::Digest>) -> Vec<String> {
    let own = || {
        spec.entrypoint
            .iter()
            .chain(spec.command.iter())
            .flatten()
            .cloned()
            .collect()
    };
    let Source::Image(text) = &spec.source else {
        return own();
    };
    let image = (|| {
        let reference = cleat::image::parse_reference(text).ok()?;
        let store = cleat::image::store::Store::system().ok()?;
        let digest = match pinned {
            Some(d) => d.clone(),
            None => store.get_ref(&reference.to_string()).ok()??.digest,
        };
        cleat::image::pull::load_manifest(&store, &reference, &digest).ok()
    })();
    match image {
        Some(i) => cleat::runtime::process::argv(spec, &i.config.defaults).unwrap_or_default(),
        None => own(),
    }
}

/// Builds the row of one container (the unit state is fetched by the caller).
pub fn row(
    registry: &Registry,
    name: &Name,
    kind: Kind,
    unit_state: Option<&UnitState>,
    now: u64,
) -> Row {
    let mut spec = None;
    let mut pinned = None;
    let mut created_usec = None;
    let mut error = None;
    match kind {
        Kind::Adhoc => match registry.state.load_adhoc(name) {
            Ok(Some(rec)) => {
                created_usec = Some(rec.created_usec);
                spec = Some(rec.spec);
                pinned = rec.image;
            }
            Ok(None) => {}
            Err(e) => error = Some(e.to_string()),
        },
        Kind::Declared => match registry.find(name) {
            Ok(Some(Found::Declared(def))) => {
                created_usec = std::fs::metadata(&def.main)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_micros() as u64);
                match def.load() {
                    Ok(l) => spec = Some(l.spec),
                    Err(e) => error = Some(e.to_string()),
                }
            }
            Ok(_) => {}
            Err(e) => error = Some(e.to_string()),
        },
    }
    let exit = registry.state.read_exit(name).ok().flatten();
    let (state, status, exit_code) = describe(unit_state, exit.as_ref(), now);
    let running = unit_state.filter(|u| u.is_running());
    let (image, rootfs) = match spec.as_ref().map(|s| &s.source) {
        Some(Source::Image(i)) => (Some(i.clone()), None),
        Some(Source::Rootfs(r)) => (None, Some(r.display().to_string())),
        None => (None, None),
    };
    Row {
        name: name.to_string(),
        kind,
        unit: unit_name(kind, name),
        image,
        rootfs,
        command: spec
            .as_ref()
            .map(|s| command(s, pinned.as_ref()))
            .unwrap_or_default(),
        state,
        status,
        exit_code: if running.is_some() { None } else { exit_code },
        pid: running.map(|u| u.main_pid).filter(|p| *p != 0),
        created: created_usec.map(time::rfc3339),
        started_at: unit_state.and_then(|u| nonzero(u.exec_main_start_usec)),
        finished_at: if running.is_some() {
            None
        } else {
            exit.as_ref().map(|e| time::rfc3339(e.finished_usec))
        },
        restarts: unit_state.map(|u| u.n_restarts).unwrap_or_default(),
        ports: running
            .and_then(|_| cleat::network::attach::load(&registry.state.dir(name)))
            .map(|a| super::network::ports_column(&a.published))
            .unwrap_or_default(),
        error,
        created_usec,
    }
}

fn quote_command(argv: &[String]) -> String {
    let full = argv.join(" ");
    let shown: String = if full.chars().count() > 28 {
        full.chars().take(27).chain(['…']).collect()
    } else {
        full
    };
    format!("\"{shown}\"")
}

fn table(rows: &[Row], now: u64) -> String {
    let header = [
        "NAME", "KIND", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.kind.as_str().to_owned(),
                r.image
                    .clone()
                    .or_else(|| r.rootfs.clone())
                    .unwrap_or_else(|| "?".into()),
                quote_command(&r.command),
                r.created_usec
                    .map(|c| time::ago(c, now))
                    .unwrap_or_else(|| "-".into()),
                if r.error.is_some() {
                    format!("{} (definition has errors)", r.status)
                } else {
                    r.status.clone()
                },
                r.ports.join(", "),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i + 1 == cols.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(w - c.chars().count() + 3));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

pub fn ps(args: PsArgs) -> CmdResult {
    runtime_block(async {
        let registry = Registry::system();
        let containers = registry.list()?;
        let systemd = Systemd::connect().await.map_err(Failure::from)?;
        let states = join_all(containers.iter().map(|(name, kind)| {
            let unit = unit_name(*kind, name);
            let systemd = &systemd;
            async move { systemd.state_if_loaded(&unit).await }
        }))
        .await;
        let now = time::now_usec();
        let mut rows = Vec::new();
        for ((name, kind), state) in containers.iter().zip(states) {
            // One unit systemd cannot describe must not hide all the others.
            let (state, bus_error) = match state {
                Ok(s) => (s, None),
                Err(e) => (None, Some(format!("systemd: {e}"))),
            };
            let mut row = row(&registry, name, *kind, state.as_ref(), now);
            row.error = row.error.or(bus_error);
            if args.all || state.as_ref().is_some_and(|s| s.is_running()) {
                rows.push(row);
            }
        }
        match args.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
            Format::Table => print!("{}", table(&rows, now)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(active: &str, sub: &str, since: u64) -> UnitState {
        UnitState {
            active_state: active.into(),
            sub_state: sub.into(),
            active_enter_usec: since,
            main_pid: 42,
            ..UnitState::default()
        }
    }

    #[test]
    fn describes_states_like_docker() {
        let now = 100_000_000;
        assert_eq!(
            describe(Some(&unit("active", "running", 40_000_000)), None, now).1,
            "Up About a minute"
        );
        let exit = ExitRecord::from_service_env("exit-code", "exited", "3", now - 5_000_000);
        assert_eq!(
            describe(None, Some(&exit), now),
            ("exited", "Exited (3) 5 seconds ago".into(), Some(3))
        );
        assert_eq!(
            describe(Some(&unit("inactive", "dead", 0)), Some(&exit), now).0,
            "exited"
        );
        assert_eq!(
            describe(
                Some(&unit("activating", "auto-restart", 0)),
                Some(&exit),
                now
            )
            .1,
            "Restarting (3) 5 seconds ago"
        );
        assert_eq!(
            describe(None, None, now),
            ("created", "Created".into(), None)
        );
    }

    #[test]
    fn long_commands_are_shortened() {
        let argv: Vec<String> = ["sh", "-c", "while true; do echo hello world; sleep 1; done"]
            .map(String::from)
            .to_vec();
        let q = quote_command(&argv);
        assert!(q.starts_with("\"sh -c while") && q.ends_with("…\""), "{q}");
    }
}
