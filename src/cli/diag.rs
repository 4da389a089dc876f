//! Messages to the user. When stderr is the journal (systemd sets `$JOURNAL_STREAM` to its
//! device and inode), each line carries a syslog priority prefix so that `journalctl` shows
//! errors as errors; on a terminal, a plain `cleat: ` prefix.

use std::os::unix::fs::MetadataExt;

fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// A journal stream that gets a copy of every message (for `cleat internal start` of a
/// foreground run, whose stderr is the caller's).
static MIRROR: std::sync::OnceLock<std::os::fd::OwnedFd> = std::sync::OnceLock::new();

pub fn mirror_to(stream: std::os::fd::OwnedFd) {
    let _ = MIRROR.set(stream);
}

fn emit(priority: u8, label: &str, msg: &str) {
    if let Some(stream) = MIRROR.get() {
        let mut text = String::new();
        for (i, line) in msg.lines().enumerate() {
            let lead = if i == 0 {
                format!("cleat: {label}")
            } else {
                "  ".to_owned()
            };
            text.push_str(&format!("<{priority}>{lead}{line}\n"));
        }
        // Written through a borrowed descriptor: `&File` writes without owning it.
        let _ = rustix::io::write(stream, text.as_bytes());
    }
    let journal = stderr_is_journal();
    // The first line carries the prefix; continuation lines (such as a container's own output
    // quoted in an error) are indented under it.
    for (i, line) in msg.lines().enumerate() {
        let lead = if i == 0 {
            format!("cleat: {label}")
        } else {
            "  ".to_owned()
        };
        if journal {
            eprintln!("<{priority}>{lead}{line}");
        } else {
            eprintln!("{lead}{line}");
        }
    }
}

pub fn error(msg: impl std::fmt::Display) {
    emit(3, "", &msg.to_string());
}

pub fn warning(msg: impl std::fmt::Display) {
    emit(4, "warning: ", &msg.to_string());
}

pub fn note(msg: impl std::fmt::Display) {
    emit(5, "", &msg.to_string());
}

/// Runs `f` for every item of a command that takes several names, reporting each failure as
/// it comes and going on with the others, as Docker does; the exit status says whether any
/// failed.
pub fn each_reported<T>(
    items: impl IntoIterator<Item = T>,
    mut f: impl FnMut(T) -> anyhow::Result<()>,
) -> std::process::ExitCode {
    let mut failed = false;
    for item in items {
        if let Err(e) = f(item) {
            error(format!("{e:#}"));
            failed = true;
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
