//! Reading a container's output back from the journal with `journalctl`, the canonical
//! reader: an excerpt of one run (for error messages), and following one run to its end (for
//! `cleat run` in the foreground) without losing its last lines.

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

fn message_of(entry: &serde_json::Value) -> Option<String> {
    match entry.get("MESSAGE")? {
        serde_json::Value::String(s) => Some(s.clone()),
        // Non-UTF-8 messages come as arrays of bytes.
        serde_json::Value::Array(bytes) => {
            let raw: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64())
                .map(|b| b as u8)
                .collect();
            Some(String::from_utf8_lossy(&raw).into_owned())
        }
        _ => None,
    }
}

/// Prints journal entries from a `journalctl -o json` stream; returns the last cursor seen.
async fn print_entries(
    stdout: tokio::process::ChildStdout,
    mut cursor: Option<String>,
) -> Option<String> {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(msg) = message_of(&entry) {
            println!("{msg}");
        }
        if let Some(c) = entry.get("__CURSOR").and_then(|c| c.as_str()) {
            cursor = Some(c.to_owned());
        }
    }
    cursor
}

/// A running `journalctl -f` for one invocation, printing its messages.
pub struct Follower {
    child: tokio::process::Child,
    printer: tokio::task::JoinHandle<Option<String>>,
    unit: String,
    invocation: Option<String>,
}

impl Follower {
    pub fn start(unit: &str, invocation: Option<&str>) -> std::io::Result<Follower> {
        let mut child = Command::new(JOURNALCTL)
            .args(["--no-pager", "-o", "json", "-f", "-n", "all"])
            .args(matches(unit, invocation))
            // Out of the terminal's process group: Ctrl-C is for the container (cleat passes
            // it on), not for the reader of its output.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("journalctl has no stdout"))?;
        let printer = tokio::spawn(print_entries(stdout, None));
        Ok(Follower {
            child,
            printer,
            unit: unit.to_owned(),
            invocation: invocation.map(str::to_owned),
        })
    }

    /// Stops following once the run is over, after printing what the journal still had.
    pub async fn finish(mut self) {
        let _ = sync().await;
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let cursor = self.printer.await.unwrap_or(None);
        let mut rest = Command::new(JOURNALCTL);
        rest.args(["--no-pager", "-o", "json"]);
        match &cursor {
            Some(c) => rest.arg(format!("--after-cursor={c}")),
            None => rest.args(["-n", "all"]),
        };
        rest.args(matches(&self.unit, self.invocation.as_deref()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Ok(mut child) = rest.spawn() {
            if let Some(stdout) = child.stdout.take() {
                print_entries(stdout, cursor).await;
            }
            let _ = child.wait().await;
        }
    }
}
