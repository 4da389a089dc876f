//! `cleat logs`: the container's output, read from the journal with `journalctl`, in
//! Docker's form (the messages, with `-t` their time first); `-f` follows until the container
//! stops.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::Args;

use cleat::containers::Registry;
use cleat::spec::Timeout;
use cleat::unit::props::CONTAINER_ID_FIELD;
use cleat::unit::{Kind, unit_name};

use cleat::unit::dbus::Systemd;

use super::journal;
use super::{CmdResult, Failure, name};

#[derive(Args)]
pub struct LogsArgs {
    /// Follow the output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines to show from the end ("all" for everything)
    #[arg(short = 'n', long = "tail", value_name = "N")]
    tail: Option<String>,
    /// Show output since a time: RFC 3339 (2026-11-23T10:00:00Z), a Unix timestamp, or a
    /// relative time (42m, 1h30m)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Show output before a time, in the same forms as --since (42m: until 42 minutes ago)
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Show timestamps
    #[arg(short = 't', long)]
    timestamps: bool,
    #[arg(value_name = "NAME")]
    name: String,
}

/// Docker's `--since` forms, as seconds since the epoch.
pub fn since_secs(since: &str, now_secs: u64) -> Result<u64, String> {
    time_secs("--since", since, now_secs)
}

/// Docker's `--since`/`--until` forms (RFC 3339, a Unix timestamp, or a duration meaning that
/// long ago), as seconds since the epoch; `flag` names the option in messages.
fn time_secs(flag: &str, since: &str, now_secs: u64) -> Result<u64, String> {
    let s = since.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs);
    }
    if let Some(epoch) = parse_rfc3339(s) {
        return Ok(epoch);
    }
    match s.parse::<Timeout>() {
        Ok(Timeout::Finite(d)) => Ok(now_secs.saturating_sub(d.as_secs())),
        _ => Err(format!(
            "invalid {flag} {since:?}: use RFC 3339 (2026-11-23T10:00:00Z), a Unix timestamp, or a duration such as 42m"
        )),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let (date, rest) = s.split_once(['T', ' '])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (time, offset) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (t, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (
            t,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let ss = t.next()?.split('.').next()?.parse::<i64>().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (inverse of time::rfc3339's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss - offset).ok()
}

pub fn logs(args: LogsArgs) -> CmdResult {
    let name = name(&args.name)?;
    let registry = Registry::system();
    let kind = registry.require(&name)?.kind();
    let unit = unit_name(kind, &name);
    let mut options = Vec::new();
    match args.tail.as_deref() {
        Some("all") | None => options.push("--lines=all".to_owned()),
        Some(n) => {
            let n: u64 = n
                .parse()
                .map_err(|_| Failure::from(anyhow!("--tail: {n:?} is not a number or \"all\"")))?;
            options.push(format!("--lines={n}"));
        }
    }
    let now = cleat::time::now_usec() / 1_000_000;
    if let Some(arg) = &args.since {
        let secs = since_secs(arg, now).map_err(|e| Failure::from(anyhow!(e)))?;
        options.push(format!("--since=@{secs}"));
    }
    if let Some(arg) = &args.until {
        let secs = time_secs("--until", arg, now).map_err(|e| Failure::from(anyhow!(e)))?;
        options.push(format!("--until=@{secs}"));
    }
    let mut matches = journal::matches(&unit, None);
    // An ad-hoc name can be reused: show only this container's output, not that of an
    // earlier one of the same name.
    if kind == Kind::Adhoc {
        if let Some(rec) = registry.state.load_adhoc(&name)? {
            matches.push(format!("{CONTAINER_ID_FIELD}={}", rec.id));
        }
    }
    let selection = journal::Selection {
        matches,
        options,
        timestamps: args.timestamps,
    };
    super::run::runtime_block(async {
        // Following a container that runs: until it stops, as `docker logs -f` (with a
        // restart policy, a restart is not a stop). One that does not run: what there is.
        let systemd = if args.follow && args.until.is_none() {
            Some(Systemd::connect().await?)
        } else {
            None
        };
        let running = match &systemd {
            Some(s) => s
                .state_if_loaded(&unit)
                .await?
                .is_some_and(|s| s.is_running()),
            None => false,
        };
        let result = match systemd.filter(|_| running) {
            Some(systemd) => {
                let stopped = async {
                    if let Err(e) = systemd.wait_stopped(&unit).await {
                        super::diag::warning(format_args!("watching {unit}: {e}"));
                        std::future::pending::<()>().await;
                    }
                };
                journal::follow_until(&selection, stopped).await
            }
            None => journal::print(&selection).await,
        };
        result.map_err(|e| Failure::from(anyhow!("running {}: {e}", journal::JOURNALCTL)))?;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        assert_eq!(since_secs("1700000000", 0).unwrap(), 1_700_000_000);
        assert_eq!(
            since_secs("2026-11-23T04:05:06Z", 0).unwrap(),
            1_795_406_706
        );
        assert_eq!(
            since_secs("2026-11-23T05:05:06+01:00", 0).unwrap(),
            1_795_406_706
        );
        assert_eq!(
            since_secs("2000-02-29T00:00:00.5Z", 0).unwrap(),
            951_782_400
        );
        assert_eq!(since_secs("42m", 10_000).unwrap(), 7480);
        assert_eq!(since_secs("1h30m", 10_000).unwrap(), 4600);
        assert!(since_secs("yesterday-ish", 0).is_err());
        let e = time_secs("--until", "soon", 0).unwrap_err();
        assert!(e.starts_with("invalid --until \"soon\""), "{e}");
        assert_eq!(time_secs("--until", "10m", 10_000).unwrap(), 9400);
    }
}
