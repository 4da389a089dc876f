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

fn emit(priority: u8, label: &str, msg: &str) {
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
