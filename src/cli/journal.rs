//! Reading a container's output back from the journal with `journalctl`, the canonical
//! reader: an excerpt of one run (for error messages), and `cleat logs`, which follows a
//! container until it stops without losing its last lines.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

pub const JOURNALCTL: &str = "journalctl";

/// Journal matches for the output of one unit (its own processes, not systemd's messages
/// about it), optionally of one invocation.
pub fn matches(unit: &str, invocation: Option<&str>) -> Vec<String> {
    let mut m = vec![format!("_SYSTEMD_UNIT={unit}")];
    if let Some(id) = invocation.filter(|i| !i.is_empty()) {
        m.push(format!("_SYSTEMD_INVOCATION_ID={id}"));
    }
    m
}

/// The last `lines` messages of a run, as text (empty if the journal cannot be read).
pub async fn excerpt(unit: &str, invocation: Option<&str>, lines: usize) -> String {
    let _ = sync().await;
    let out = Command::new(JOURNALCTL)
        .args(["--no-pager", "-o", "cat", "-n", &lines.to_string()])
        .args(matches(unit, invocation))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim_end().to_owned(),
        Err(_) => String::new(),
    }
}

/// `journalctl --sync`: journald writes out everything it has received; its varlink handler
/// runs at low priority, after pending stream data has been read.
async fn sync() -> std::io::Result<()> {
    Command::new(JOURNALCTL)
        .arg("--sync")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .map(|_| ())
}

fn message_of(entry: &serde_json::Value) -> Option<Vec<u8>> {
    match entry.get("MESSAGE")? {
        serde_json::Value::String(s) => Some(s.clone().into_bytes()),
        // Non-UTF-8 messages come as arrays of bytes.
        serde_json::Value::Array(bytes) => Some(
            bytes
                .iter()
                .filter_map(|b| b.as_u64())
                .map(|b| b as u8)
                .collect(),
        ),
        _ => None,
    }
}

/// `2026-11-23T04:05:06.123456Z`: Docker's `--timestamps` form (to the microsecond, the
/// journal's resolution).
fn timestamp(usec: u64) -> String {
    let whole = cleat::time::rfc3339(usec);
    format!("{}.{:06}Z", whole.trim_end_matches('Z'), usec % 1_000_000)
}

/// Prints the messages of a `journalctl -o json` stream (with their time if `timestamps`);
/// returns the last cursor seen.
async fn print_entries(
    stdout: tokio::process::ChildStdout,
    mut cursor: Option<String>,
    timestamps: bool,
) -> Option<String> {
    use std::io::Write;
    let mut lines = BufReader::new(stdout).lines();
    // Buffered: a locked stdout would flush at every newline.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(msg) = message_of(&entry) {
            let mut text = Vec::with_capacity(msg.len() + 32);
            if timestamps {
                let usec = entry
                    .get("__REALTIME_TIMESTAMP")
                    .and_then(|t| t.as_str())
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                text.extend_from_slice(timestamp(usec).as_bytes());
                text.push(b' ');
            }
            text.extend_from_slice(&msg);
            text.push(b'\n');
            if out.write_all(&text).is_err() {
                break;
            }
            // Flushed whenever journalctl has nothing more for now, so a follower sees lines
            // as they come without a write per line for a long log.
            if lines.get_ref().buffer().is_empty() && out.flush().is_err() {
                break;
            }
        }
        if let Some(c) = entry.get("__CURSOR").and_then(|c| c.as_str()) {
            cursor = Some(c.to_owned());
        }
    }
    let _ = out.flush();
    cursor
}

/// Which entries `cleat logs` shows: journal matches and journalctl's selection options.
pub struct Selection {
    pub matches: Vec<String>,
    /// `-n`, `--since=@…`, `--until=@…`.
    pub options: Vec<String>,
    pub timestamps: bool,
}

fn journalctl_json(sel: &Selection) -> Command {
    let mut cmd = Command::new(JOURNALCTL);
    cmd.args(["--no-pager", "--quiet", "-o", "json"])
        .arg("--output-fields=MESSAGE")
        .args(&sel.matches)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// Prints the selected entries once.
pub async fn print(sel: &Selection) -> std::io::Result<()> {
    let mut cmd = journalctl_json(sel);
    cmd.args(&sel.options);
    let mut child = cmd.spawn()?;
    if let Some(stdout) = child.stdout.take() {
        print_entries(stdout, None, sel.timestamps).await;
    }
    child.wait().await?;
    Ok(())
}

/// Prints the selected entries and follows new ones until `stopped` completes (the container
/// stopped), then prints what the journal still had from it and returns.
pub async fn follow_until(
    sel: &Selection,
    stopped: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let mut cmd = journalctl_json(sel);
    cmd.args(&sel.options).arg("--follow");
    let mut child = cmd.spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("journalctl has no stdout"))?;
    let printer = tokio::spawn({
        let timestamps = sel.timestamps;
        async move { print_entries(stdout, None, timestamps).await }
    });
    stopped.await;
    // The container's last lines may still be on their way into the journal.
    let _ = sync().await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let cursor = printer.await.unwrap_or(None);
    let mut rest = journalctl_json(sel);
    match &cursor {
        Some(c) => {
            rest.arg(format!("--after-cursor={c}"));
            // The end of the selection still applies; its start is the cursor now.
            rest.args(sel.options.iter().filter(|o| o.starts_with("--until")));
        }
        None => {
            rest.args(&sel.options);
        }
    }
    let mut child = rest.spawn()?;
    if let Some(stdout) = child.stdout.take() {
        print_entries(stdout, cursor, sel.timestamps).await;
    }
    child.wait().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_to_the_microsecond() {
        assert_eq!(
            timestamp(1_795_406_706_000_042),
            "2026-11-23T04:05:06.000042Z"
        );
    }
}
