//! Timestamps as cleat shows them: RFC 3339 in UTC for machines, Docker's "3 minutes ago"
//! and "Up 2 hours" for people. Time is kept as microseconds since the epoch, systemd's unit.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in microseconds since the epoch.
pub fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `2026-11-23T04:05:06Z`.
pub fn rfc3339(usec: u64) -> String {
    let secs = usec / 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Docker's human durations: "Less than a second", "5 seconds", "About a minute",
/// "3 minutes", "About an hour", "2 hours", "3 days", "2 weeks", "4 months", "2 years".
pub fn human_duration(usec: u64) -> String {
    let s = usec / 1_000_000;
    match s {
        0 => "Less than a second".into(),
        1..=59 => format!("{s} second{}", if s == 1 { "" } else { "s" }),
        60..=119 => "About a minute".into(),
        120..=3_599 => format!("{} minutes", s / 60),
        3_600..=7_199 => "About an hour".into(),
        7_200..=172_799 => format!("{} hours", s / 3_600),
        172_800..=1_209_599 => format!("{} days", s / 86_400),
        1_209_600..=5_183_999 => format!("{} weeks", s / 604_800),
        5_184_000..=63_071_999 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    }
}

/// "3 minutes ago".
pub fn ago(usec: u64, now: u64) -> String {
    format!("{} ago", human_duration(now.saturating_sub(usec)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_406_706_000_000), "2026-11-23T04:05:06Z");
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1_000_000), "1 second");
        assert_eq!(human_duration(90_000_000), "About a minute");
        assert_eq!(human_duration(3 * 3_600_000_000), "3 hours");
        assert_eq!(ago(1_000_000, 6_000_000), "5 seconds ago");
    }
}
