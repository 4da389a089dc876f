//! The small value types of a spec (names, signals, time spans, sizes, limits, restart
//! policies), each parsed from the spellings users already know from Docker and systemd and
//! printed back in a canonical form. TOML and command-line flags parse through the same code.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A parse failure: what was wrong, phrased to be shown after the offending key or flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError(msg.into()))
}

/// Implements `Serialize`/`Deserialize` through `Display`/`FromStr`, so that the JSON form
/// of a spec uses the same spellings as TOML.
macro_rules! serde_via_str {
    ($t:ty) => {
        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $t {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_via_str;

// ---------------------------------------------------------------------------------------------
// Names

/// A container name. Docker's rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), which also makes every name a
/// valid systemd unit-name instance that needs no escaping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

pub const NAME_MAX: usize = 128;

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Name, ValueError> {
        let mut chars = s.chars();
        let Some(first) = chars.next() else {
            return err("a container name cannot be empty");
        };
        if s.len() > NAME_MAX {
            return err(format!(
                "container name is longer than {NAME_MAX} characters"
            ));
        }
        if !first.is_ascii_alphanumeric() {
            return err(format!(
                "invalid container name {s:?}: it must start with a letter or digit"
            ));
        }
        if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c))) {
            return err(format!(
                "invalid container name {s:?}: {bad:?} is not allowed (use letters, digits, '_', '.' and '-')"
            ));
        }
        Ok(Name(s.to_owned()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
serde_via_str!(Name);

/// The longest host name Linux accepts (`HOST_NAME_MAX`).
const HOSTNAME_MAX: usize = 64;

/// A network alias (`--network-alias`): a host name, and not one every container resolves
/// itself (other containers' /etc/hosts list it).
pub fn check_alias(name: &str) -> Result<(), ValueError> {
    check_hostname(name).map_err(|e| ValueError(e.0.replace("hostname", "alias")))?;
    let lower = name.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") || lower.starts_with("localhost.") {
        return err(format!(
            "invalid alias {name:?}: localhost is every container's own"
        ));
    }
    Ok(())
}

/// An RFC 1123 host name: dot-separated labels of letters, digits and inner `-`.
pub fn check_hostname(name: &str) -> Result<(), ValueError> {
    let bad = |why: &str| err(format!("invalid hostname {name:?}: {why}"));
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > HOSTNAME_MAX {
        return bad(&format!("it is longer than {HOSTNAME_MAX} characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return bad("it has an empty label (a dot at either end, or two in a row)");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return bad(&format!(
                "{c:?} is not allowed (use letters, digits, '-' and '.')"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with '-'");
        }
    }
    Ok(())
}

impl Name {
    /// The host name a container gets by default: its name, made a valid host name ('_'
    /// becomes '-', cut to 63 characters).
    pub fn default_hostname(&self) -> String {
        let mut h: String = self
            .0
            .chars()
            .map(|c| if c == '_' { '-' } else { c })
            .take(63)
            .collect();
        while h.ends_with(['-', '.']) {
            h.pop();
        }
        h
    }
}

// ---------------------------------------------------------------------------------------------
// Signals

/// A signal, by number; parsed from `SIGTERM`, `TERM`, `term`, `15` or `SIGRTMIN+3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Linux's real-time signal range as the kernel sees it (glibc reserves the first two for
/// itself, but containers run arbitrary libcs, and systemd accepts the kernel range too).
const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

impl Signal {
    pub const TERM: Signal = Signal(libc::SIGTERM);
    pub const KILL: Signal = Signal(libc::SIGKILL);

    pub fn from_number(n: i32) -> Option<Signal> {
        (1..=SIGRTMAX).contains(&n).then_some(Signal(n))
    }

    pub fn number(self) -> i32 {
        self.0
    }

    /// True for signals whose default action ends the process.
    pub fn terminates_by_default(self) -> bool {
        ![
            libc::SIGCHLD,
            libc::SIGCONT,
            libc::SIGSTOP,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGURG,
            libc::SIGWINCH,
        ]
        .contains(&self.0)
    }
}

impl FromStr for Signal {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Signal, ValueError> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i32>() {
            return Signal::from_number(n).ok_or_else(|| {
                ValueError(format!(
                    "invalid signal number {n} (valid: 1 to {SIGRTMAX})"
                ))
            });
        }
        let upper = t.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some(&(_, n)) = SIGNALS.iter().find(|(name, _)| *name == bare) {
            return Ok(Signal(n));
        }
        let rt = |rest: &str, base: i32, sign: i32| -> Option<Signal> {
            let off: i32 = if rest.is_empty() {
                0
            } else {
                rest.strip_prefix(if sign > 0 { '+' } else { '-' })?
                    .parse()
                    .ok()?
            };
            let n = base + sign * off;
            (SIGRTMIN..=SIGRTMAX).contains(&n).then_some(Signal(n))
        };
        let parsed = if let Some(rest) = bare.strip_prefix("RTMIN") {
            rt(rest, SIGRTMIN, 1)
        } else if let Some(rest) = bare.strip_prefix("RTMAX") {
            rt(rest, SIGRTMAX, -1)
        } else {
            None
        };
        parsed.ok_or_else(|| {
            ValueError(format!(
                "unknown signal {t:?} (use a name such as SIGTERM, SIGQUIT or SIGINT, or a number)"
            ))
        })
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((name, _)) = SIGNALS.iter().find(|(_, n)| *n == self.0) {
            write!(f, "SIG{name}")
        } else if self.0 >= SIGRTMIN && self.0 <= SIGRTMAX {
            match self.0 - SIGRTMIN {
                0 => f.write_str("SIGRTMIN"),
                off => write!(f, "SIGRTMIN+{off}"),
            }
        } else {
            write!(f, "{}", self.0)
        }
    }
}
serde_via_str!(Signal);

// ---------------------------------------------------------------------------------------------
// Time spans

/// A time span, or "never" (`infinity`). Parsed as systemd parses time spans (`90`, `90s`,
/// `1min 30s`, `1m30s`, `500ms`, `1.5h`); a bare number means seconds, as in Docker's
/// `--stop-timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timeout {
    Finite(Duration),
    Infinity,
}

impl Timeout {
    pub fn from_secs(s: u64) -> Timeout {
        Timeout::Finite(Duration::from_secs(s))
    }

    /// Microseconds, with `u64::MAX` for infinity: systemd's D-Bus encoding (`USec` properties).
    pub fn as_usec(self) -> u64 {
        match self {
            Timeout::Finite(d) => u64::try_from(d.as_micros()).unwrap_or(u64::MAX - 1),
            Timeout::Infinity => u64::MAX,
        }
    }

    /// systemd's unit-file spelling: exact, and short (`10s`, `1500ms`, `infinity`).
    pub fn to_unit_file(self) -> String {
        match self {
            Timeout::Infinity => "infinity".into(),
            Timeout::Finite(d) => {
                let us = d.as_micros();
                if us == 0 {
                    "0".into()
                } else if us % 1_000_000 == 0 {
                    format!("{}s", us / 1_000_000)
                } else if us % 1000 == 0 {
                    format!("{}ms", us / 1000)
                } else {
                    format!("{us}us")
                }
            }
        }
    }
}

const TIME_UNITS: &[(&[&str], u64)] = &[
    (&["us", "usec", "µs"], 1),
    (&["ms", "msec"], 1_000),
    (&["s", "sec", "secs", "second", "seconds"], 1_000_000),
    (&["m", "min", "mins", "minute", "minutes"], 60_000_000),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600_000_000),
    (&["d", "day", "days"], 86_400_000_000),
    (&["w", "week", "weeks"], 604_800_000_000),
];

impl FromStr for Timeout {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Timeout, ValueError> {
        let t = s.trim();
        if matches!(t, "infinity" | "inf" | "never") {
            return Ok(Timeout::Infinity);
        }
        let bad = || {
            ValueError(format!(
                "invalid time span {s:?} (examples: 10, 10s, 1min 30s, 500ms, infinity)"
            ))
        };
        if t.is_empty() {
            return Err(bad());
        }
        let mut total: f64 = 0.0;
        let mut rest = t;
        while !rest.is_empty() {
            rest = rest.trim_start();
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_len == 0 {
                return Err(bad());
            }
            let num: f64 = rest[..num_len].parse().map_err(|_| bad())?;
            rest = rest[num_len..].trim_start();
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let mult = if unit.is_empty() {
                1_000_000
            } else {
                TIME_UNITS
                    .iter()
                    .find(|(names, _)| names.contains(&unit))
                    .map(|(_, m)| *m)
                    .ok_or_else(bad)?
            };
            total += num * mult as f64;
        }
        if !total.is_finite() || total >= u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Timeout::Finite(Duration::from_micros(total.round() as u64)))
    }
}

impl fmt::Display for Timeout {
    /// Human form, as `systemctl show` prints it: `1min 30s`, `500ms`, `infinity`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Timeout::Finite(d) = self else {
            return f.write_str("infinity");
        };
        let mut us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if us == 0 {
            return f.write_str("0");
        }
        let parts: &[(u64, &str)] = &[
            (604_800_000_000, "w"),
            (86_400_000_000, "d"),
            (3_600_000_000, "h"),
            (60_000_000, "min"),
            (1_000_000, "s"),
            (1_000, "ms"),
            (1, "us"),
        ];
        let mut first = true;
        for &(size, unit) in parts {
            if us >= size {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{}{unit}", us / size)?;
                us %= size;
                first = false;
            }
        }
        Ok(())
    }
}
serde_via_str!(Timeout);

// ---------------------------------------------------------------------------------------------
// Sizes and limits

/// A size in bytes. Suffixes are powers of 1024, as both Docker (`--memory 512m`) and systemd
/// (`MemoryMax=512M`) read them: `b`, `k`/`kb`/`kib`, `m`, `g`, `t`, `p`, any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

const SIZE_UNITS: &[(char, u32)] = &[('k', 1), ('m', 2), ('g', 3), ('t', 4), ('p', 5), ('e', 6)];

impl FromStr for Bytes {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Bytes, ValueError> {
        let t = s.trim();
        let bad = || {
            ValueError(format!(
                "invalid size {s:?} (examples: 536870912, 512M, 1.5G)"
            ))
        };
        let lower = t.to_ascii_lowercase();
        let num_len = lower
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(lower.len());
        if num_len == 0 {
            return Err(bad());
        }
        let (num, unit) = lower.split_at(num_len);
        let unit = unit.trim();
        let unit = unit
            .strip_suffix("ib")
            .or_else(|| unit.strip_suffix('b'))
            .unwrap_or(unit);
        let power = match unit {
            "" => 0,
            u if u.len() == 1 => SIZE_UNITS
                .iter()
                .find(|(c, _)| u.starts_with(*c))
                .map(|(_, p)| *p)
                .ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        let mult = 1024f64.powi(power as i32);
        let value = if num.contains('.') {
            let f: f64 = num.parse().map_err(|_| bad())?;
            f * mult
        } else {
            let n: u64 = num.parse().map_err(|_| bad())?;
            let m = 1024u64.checked_pow(power).ok_or_else(bad)?;
            return n.checked_mul(m).map(Bytes).ok_or_else(bad);
        };
        if !value.is_finite() || value >= u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Bytes(value.round() as u64))
    }
}

impl fmt::Display for Bytes {
    /// The largest unit that represents the value exactly: `512M`, `1536K`, `1000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for &(c, p) in SIZE_UNITS.iter().rev() {
            let m = 1024u64.pow(p);
            if n != 0 && n % m == 0 {
                return write!(f, "{}{}", n / m, c.to_ascii_uppercase());
            }
        }
        write!(f, "{n}")
    }
}
serde_via_str!(Bytes);

/// A resource limit that may be lifted entirely (`infinity`, also spelled `max`, `unlimited`,
/// or Docker's `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit<T> {
    Value(T),
    Infinity,
}

impl<T: FromStr<Err = ValueError>> FromStr for Limit<T> {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Limit<T>, ValueError> {
        match s.trim() {
            // Docker reads 0 and -1 as "no limit" (`--memory 0`, `--pids-limit -1`).
            "infinity" | "max" | "unlimited" | "-1" | "0" => Ok(Limit::Infinity),
            other => other.parse().map(Limit::Value),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Limit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Value(v) => v.fmt(f),
            Limit::Infinity => f.write_str("infinity"),
        }
    }
}

impl<T: fmt::Display> Serialize for Limit<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de, T: FromStr<Err = ValueError>> Deserialize<'de> for Limit<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A count for limits such as `pids-limit`: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Count(pub u64);

impl FromStr for Count {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Count, ValueError> {
        match s.trim().parse::<u64>() {
            Ok(0) | Err(_) => err(format!(
                "invalid count {s:?} (a positive integer, or infinity)"
            )),
            Ok(n) => Ok(Count(n)),
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
serde_via_str!(Count);

/// A CPU quota in thousandths of a CPU (`1.5` CPUs = 1500), as Docker's `--cpus` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cpus(u64);

impl Cpus {
    pub const MAX_MILLI: u64 = 1024 * 1000;

    pub fn from_milli(m: u64) -> Option<Cpus> {
        (10..=Cpus::MAX_MILLI).contains(&m).then_some(Cpus(m))
    }

    pub fn milli(self) -> u64 {
        self.0
    }

    /// systemd's `CPUQuotaPerSecUSec`: CPU time per wall-clock second.
    pub fn quota_usec_per_sec(self) -> u64 {
        self.0 * 1000
    }

    /// systemd's unit-file spelling, a percentage: `150%`, `12.5%`.
    pub fn to_unit_file(self) -> String {
        if self.0 % 10 == 0 {
            format!("{}%", self.0 / 10)
        } else {
            format!("{}.{}%", self.0 / 10, self.0 % 10)
        }
    }
}

impl FromStr for Cpus {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Cpus, ValueError> {
        let bad = || {
            ValueError(format!(
                "invalid CPU count {s:?} (a number of CPUs from 0.01 to 1024, such as 0.5 or 2)"
            ))
        };
        let f: f64 = s.trim().parse().map_err(|_| bad())?;
        if !f.is_finite() {
            return Err(bad());
        }
        Cpus::from_milli((f * 1000.0).round() as u64).ok_or_else(bad)
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1000;
        let frac = self.0 % 1000;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let s = format!("{frac:03}");
            write!(f, "{whole}.{}", s.trim_end_matches('0'))
        }
    }
}
serde_via_str!(Cpus);

// ---------------------------------------------------------------------------------------------
// Restart policy

/// systemd's `Restart=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Restart {
    No,
    OnSuccess,
    OnFailure,
    OnAbnormal,
    OnWatchdog,
    OnAbort,
    Always,
}

impl Restart {
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::No => "no",
            Restart::OnSuccess => "on-success",
            Restart::OnFailure => "on-failure",
            Restart::OnAbnormal => "on-abnormal",
            Restart::OnWatchdog => "on-watchdog",
            Restart::OnAbort => "on-abort",
            Restart::Always => "always",
        }
    }
}

/// A restart policy: systemd's `Restart=` value, optionally with Docker's retry cap
/// (`on-failure:5`), which becomes `StartLimitBurst=`. Docker's `unless-stopped` reads as
/// `always` (systemd never restarts a unit that was stopped on purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RestartPolicy {
    pub restart: Restart,
    pub max_retries: Option<u32>,
}

pub const RESTART_VALUES: &[&str] = &[
    "no",
    "on-success",
    "on-failure",
    "on-abnormal",
    "on-watchdog",
    "on-abort",
    "always",
    "unless-stopped",
];

impl FromStr for RestartPolicy {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<RestartPolicy, ValueError> {
        let t = s.trim();
        let (mode, retries) = match t.split_once(':') {
            Some((m, n)) => (m, Some(n)),
            None => (t, None),
        };
        let restart = match mode {
            "no" => Restart::No,
            "on-success" => Restart::OnSuccess,
            "on-failure" => Restart::OnFailure,
            "on-abnormal" => Restart::OnAbnormal,
            "on-watchdog" => Restart::OnWatchdog,
            "on-abort" => Restart::OnAbort,
            "always" | "unless-stopped" => Restart::Always,
            _ => {
                let hint = crate::spec::load::suggest(mode, RESTART_VALUES.iter().copied())
                    .map(|s| format!("did you mean {s:?}? "))
                    .unwrap_or_default();
                return err(format!(
                    "invalid restart policy {t:?} ({hint}valid: {})",
                    RESTART_VALUES.join(", ")
                ));
            }
        };
        let max_retries = match retries {
            None => None,
            Some(n) if restart == Restart::OnFailure => Some(n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ValueError(format!("invalid retry count in {t:?}: expected on-failure:N with N a positive integer"))
            })?),
            Some(_) => {
                return err(format!(
                    "invalid restart policy {t:?}: only on-failure takes a retry count"
                ));
            }
        };
        Ok(RestartPolicy {
            restart,
            max_retries,
        })
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.restart.as_str())?;
        if let Some(n) = self.max_retries {
            write!(f, ":{n}")?;
        }
        Ok(())
    }
}
serde_via_str!(RestartPolicy);

// ---------------------------------------------------------------------------------------------
// Pull policy

/// When a container's image is pulled from its registry (Docker's and Podman's `--pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PullPolicy {
    /// Only if the image is not in the store.
    #[default]
    Missing,
    /// At every start (a tag that moved is followed).
    Always,
    /// Never: the image must be in the store.
    Never,
}

impl FromStr for PullPolicy {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<PullPolicy, ValueError> {
        match s.trim() {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => err(format!(
                "invalid pull policy {other:?} (valid: missing, always, never)"
            )),
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullPolicy::Missing => "missing",
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
        })
    }
}
serde_via_str!(PullPolicy);

// ---------------------------------------------------------------------------------------------
// Network mode

/// Which network namespace a container gets: its own on a bridge network (the default one,
/// `bridge`, or a network made with `cleat network create`), its own with only loopback
/// (`none`), or the host's (`host`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetworkMode {
    Host,
    None,
    /// A bridge network, by name.
    Network(String),
    /// Another container's network namespace (`container:NAME`).
    Container(crate::spec::Name),
}

impl NetworkMode {
    /// The network a container joins when its definition names none.
    pub fn default_network() -> NetworkMode {
        NetworkMode::Network(crate::network::store::DEFAULT_NETWORK.to_owned())
    }
}

impl FromStr for NetworkMode {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<NetworkMode, ValueError> {
        match s.trim() {
            "host" => Ok(NetworkMode::Host),
            "none" => Ok(NetworkMode::None),
            other if other.starts_with("container:") => {
                let name = &other["container:".len()..];
                name.parse::<crate::spec::Name>()
                    .map(NetworkMode::Container)
                    .map_err(|e| ValueError(format!("invalid network {other:?}: {e}")))
            }
            other => {
                crate::network::store::check_name(other).map_err(|e| ValueError(e.to_string()))?;
                Ok(NetworkMode::Network(other.to_owned()))
            }
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::None => f.write_str("none"),
            NetworkMode::Network(name) => f.write_str(name),
            NetworkMode::Container(name) => write!(f, "container:{name}"),
        }
    }
}
serde_via_str!(NetworkMode);

// ---------------------------------------------------------------------------------------------
// Seccomp

/// The system call filter: Docker's default profile, none, or a profile file in Docker's
/// JSON format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seccomp {
    Default,
    Unconfined,
    Profile(std::path::PathBuf),
}

impl FromStr for Seccomp {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Seccomp, ValueError> {
        match s.trim() {
            "default" | "" => Ok(Seccomp::Default),
            "unconfined" => Ok(Seccomp::Unconfined),
            path if path.starts_with('/') => Ok(Seccomp::Profile(path.into())),
            other => err(format!(
                "invalid seccomp setting {other:?} (valid: default, unconfined, or the absolute path of a profile in Docker's JSON format)"
            )),
        }
    }
}

impl fmt::Display for Seccomp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seccomp::Default => f.write_str("default"),
            Seccomp::Unconfined => f.write_str("unconfined"),
            Seccomp::Profile(p) => write!(f, "{}", p.display()),
        }
    }
}
serde_via_str!(Seccomp);

// ---------------------------------------------------------------------------------------------
// Resource limits (setrlimit)

/// The resources `--ulimit` names, as Docker spells them, with their `RLIMIT_*`.
pub const ULIMITS: &[(&str, i32)] = &[
    ("as", libc::RLIMIT_AS as i32),
    ("core", libc::RLIMIT_CORE as i32),
    ("cpu", libc::RLIMIT_CPU as i32),
    ("data", libc::RLIMIT_DATA as i32),
    ("fsize", libc::RLIMIT_FSIZE as i32),
    ("locks", libc::RLIMIT_LOCKS as i32),
    ("memlock", libc::RLIMIT_MEMLOCK as i32),
    ("msgqueue", libc::RLIMIT_MSGQUEUE as i32),
    ("nice", libc::RLIMIT_NICE as i32),
    ("nofile", libc::RLIMIT_NOFILE as i32),
    ("nproc", libc::RLIMIT_NPROC as i32),
    ("rss", libc::RLIMIT_RSS as i32),
    ("rtprio", libc::RLIMIT_RTPRIO as i32),
    ("rttime", libc::RLIMIT_RTTIME as i32),
    ("sigpending", libc::RLIMIT_SIGPENDING as i32),
    ("stack", libc::RLIMIT_STACK as i32),
];

/// A soft and a hard limit (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ulimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl Ulimit {
    /// `RLIMIT_*` of a name (`nofile`, also `RLIMIT_NOFILE`), or a message listing the names.
    pub fn resource(name: &str) -> Result<i32, ValueError> {
        let lower = name.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix("rlimit_").unwrap_or(&lower);
        ULIMITS
            .iter()
            .find(|(n, _)| *n == bare)
            .map(|(_, r)| *r)
            .ok_or_else(|| {
                let names: Vec<&str> = ULIMITS.iter().map(|(n, _)| *n).collect();
                let hint = crate::spec::load::suggest(bare, names.iter().copied())
                    .map(|s| format!("did you mean {s:?}? "))
                    .unwrap_or_default();
                ValueError(format!(
                    "unknown ulimit {name:?} ({hint}valid: {})",
                    names.join(", ")
                ))
            })
    }
}

impl FromStr for Ulimit {
    type Err = ValueError;
    /// `SOFT[:HARD]`, each a number or `unlimited` (also `-1`); HARD defaults to SOFT.
    fn from_str(s: &str) -> Result<Ulimit, ValueError> {
        let bad = || {
            ValueError(format!(
                "invalid ulimit value {s:?} (expected SOFT[:HARD], numbers or unlimited)"
            ))
        };
        let one = |v: &str| -> Result<Option<u64>, ValueError> {
            match v.trim() {
                "unlimited" | "infinity" | "-1" => Ok(None),
                n => n.parse().map(Some).map_err(|_| bad()),
            }
        };
        let (soft, hard) = match s.split_once(':') {
            Some((a, b)) => (one(a)?, one(b)?),
            None => {
                let v = one(s)?;
                (v, v)
            }
        };
        let above = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, Some(_)) => true,
            (Some(x), Some(y)) => x > y,
            _ => false,
        };
        if above(soft, hard) {
            return err(format!(
                "invalid ulimit value {s:?}: the soft limit is above the hard limit"
            ));
        }
        Ok(Ulimit { soft, hard })
    }
}

impl fmt::Display for Ulimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: Option<u64>| {
            v.map(|n| n.to_string())
                .unwrap_or_else(|| "unlimited".into())
        };
        if self.soft == self.hard {
            f.write_str(&show(self.soft))
        } else {
            write!(f, "{}:{}", show(self.soft), show(self.hard))
        }
    }
}
serde_via_str!(Ulimit);

// ---------------------------------------------------------------------------------------------
// Readiness

/// When the unit counts as started (DESIGN decision 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Notify {
    /// As soon as the payload has been exec'd.
    #[default]
    Exec,
    /// When the payload itself sends `READY=1` on the `NOTIFY_SOCKET` passed into it.
    Container,
}

impl FromStr for Notify {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Notify, ValueError> {
        match s.trim() {
            "exec" => Ok(Notify::Exec),
            "container" => Ok(Notify::Container),
            other => err(format!(
                "invalid notify mode {other:?} (valid: exec, container)"
            )),
        }
    }
}

impl fmt::Display for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Notify::Exec => "exec",
            Notify::Container => "container",
        })
    }
}
serde_via_str!(Notify);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web", "a", "db-1", "my_app.v2", "9lives"] {
            assert_eq!(ok.parse::<Name>().unwrap().as_str(), ok);
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "ü", &"x".repeat(NAME_MAX + 1)] {
            assert!(bad.parse::<Name>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ulimits_networks_seccomp() {
        let u = |s: &str| s.parse::<Ulimit>();
        assert_eq!(
            u("1024"),
            Ok(Ulimit {
                soft: Some(1024),
                hard: Some(1024)
            })
        );
        assert_eq!(u("1024:2048").unwrap().to_string(), "1024:2048");
        assert_eq!(
            u("unlimited").unwrap(),
            Ulimit {
                soft: None,
                hard: None
            }
        );
        assert!(u("2048:1024").is_err());
        assert!(u("lots").is_err());
        assert_eq!(Ulimit::resource("NOFILE"), Ok(libc::RLIMIT_NOFILE as i32));
        assert!(
            Ulimit::resource("nofiles")
                .unwrap_err()
                .0
                .contains("did you mean \"nofile\"")
        );
        assert_eq!("host".parse::<NetworkMode>(), Ok(NetworkMode::Host));
        assert_eq!(
            "bridge".parse::<NetworkMode>(),
            Ok(NetworkMode::default_network())
        );
        assert_eq!(
            "backend".parse::<NetworkMode>(),
            Ok(NetworkMode::Network("backend".into()))
        );
        assert!("a b".parse::<NetworkMode>().is_err());
        assert_eq!(
            "container:db".parse::<NetworkMode>().unwrap(),
            NetworkMode::Container("db".parse().unwrap())
        );
        assert_eq!(
            "container:db".parse::<NetworkMode>().unwrap().to_string(),
            "container:db"
        );
        assert!("container:".parse::<NetworkMode>().is_err());
        assert!("container:bad/name".parse::<NetworkMode>().is_err());
        assert_eq!("unconfined".parse::<Seccomp>(), Ok(Seccomp::Unconfined));
        assert_eq!(
            "/etc/p.json".parse::<Seccomp>(),
            Ok(Seccomp::Profile("/etc/p.json".into()))
        );
        assert!("p.json".parse::<Seccomp>().is_err());
    }

    #[test]
    fn aliases() {
        assert!(check_alias("db").is_ok());
        assert!(check_alias("db.internal").is_ok());
        for bad in [
            "localhost",
            "LocalHost",
            "x.localhost",
            "localhost.localdomain",
        ] {
            let e = check_alias(bad).unwrap_err().0;
            assert!(
                e.contains("localhost is every container's own"),
                "{bad}: {e}"
            );
        }
        let e = check_alias("two words").unwrap_err().0;
        assert!(e.starts_with("invalid alias"), "{e}");
    }

    #[test]
    fn hostnames() {
        assert!(check_hostname("web-1.example").is_ok());
        for bad in ["", "-web", "web-", "a_b", "a..b", &"x".repeat(65)] {
            assert!(check_hostname(bad).is_err(), "{bad:?} accepted");
        }
        let n: Name = "my_app_".parse().unwrap();
        assert_eq!(n.default_hostname(), "my-app");
        let long: Name = "a".repeat(100).parse().unwrap();
        assert_eq!(long.default_hostname().len(), 63);
    }

    #[test]
    fn signals() {
        for (s, n) in [
            ("SIGTERM", 15),
            ("term", 15),
            ("TERM", 15),
            ("9", 9),
            ("SigQuit", 3),
        ] {
            assert_eq!(s.parse::<Signal>().unwrap().number(), n, "{s}");
        }
        assert_eq!("SIGRTMIN+3".parse::<Signal>().unwrap().number(), 37);
        assert_eq!("RTMAX-1".parse::<Signal>().unwrap().number(), 63);
        assert_eq!(Signal(37).to_string(), "SIGRTMIN+3");
        assert_eq!(Signal::TERM.to_string(), "SIGTERM");
        for bad in ["", "SIGFOO", "0", "65", "-1", "RTMIN+40"] {
            assert!(bad.parse::<Signal>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn timeouts() {
        let secs = |s| Timeout::Finite(Duration::from_secs(s));
        assert_eq!("10".parse::<Timeout>().unwrap(), secs(10));
        assert_eq!("10s".parse::<Timeout>().unwrap(), secs(10));
        assert_eq!("1min 30s".parse::<Timeout>().unwrap(), secs(90));
        assert_eq!("1m30s".parse::<Timeout>().unwrap(), secs(90));
        assert_eq!("2h".parse::<Timeout>().unwrap(), secs(7200));
        assert_eq!(
            "1.5s".parse::<Timeout>().unwrap(),
            Timeout::Finite(Duration::from_millis(1500))
        );
        assert_eq!("infinity".parse::<Timeout>().unwrap(), Timeout::Infinity);
        for bad in ["", "s", "10 parsecs", "-1", "1..2s"] {
            assert!(bad.parse::<Timeout>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(secs(90).to_string(), "1min 30s");
        assert_eq!(secs(90).to_unit_file(), "90s");
        assert_eq!(
            Timeout::Finite(Duration::from_millis(1500)).to_unit_file(),
            "1500ms"
        );
        assert_eq!(Timeout::Infinity.as_usec(), u64::MAX);
    }

    #[test]
    fn sizes() {
        let b = |s: &str| s.parse::<Bytes>().map(|b| b.0);
        assert_eq!(b("1024"), Ok(1024));
        assert_eq!(b("512m"), Ok(512 << 20));
        assert_eq!(b("512M"), Ok(512 << 20));
        assert_eq!(b("512MiB"), Ok(512 << 20));
        assert_eq!(b("1g"), Ok(1 << 30));
        assert_eq!(b("1.5G"), Ok(3 << 29));
        assert_eq!(b("10b"), Ok(10));
        for bad in [
            "",
            "M",
            "12x",
            "1.2.3G",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(b(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Bytes(512 << 20).to_string(), "512M");
        assert_eq!(Bytes(1000).to_string(), "1000");
        assert_eq!("max".parse::<Limit<Bytes>>(), Ok(Limit::Infinity));
        assert_eq!("0".parse::<Limit<Bytes>>(), Ok(Limit::Infinity));
    }

    #[test]
    fn cpus() {
        assert_eq!("1.5".parse::<Cpus>().unwrap().milli(), 1500);
        assert_eq!("1.5".parse::<Cpus>().unwrap().to_unit_file(), "150%");
        assert_eq!("0.125".parse::<Cpus>().unwrap().to_unit_file(), "12.5%");
        assert_eq!("0.125".parse::<Cpus>().unwrap().to_string(), "0.125");
        assert_eq!("2".parse::<Cpus>().unwrap().quota_usec_per_sec(), 2_000_000);
        for bad in ["0", "-1", "0.001", "2000", "nan", "x"] {
            assert!(bad.parse::<Cpus>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn restart_policies() {
        let p = |s: &str| s.parse::<RestartPolicy>();
        assert_eq!(p("always").unwrap().restart, Restart::Always);
        assert_eq!(p("unless-stopped").unwrap().restart, Restart::Always);
        assert_eq!(p("on-failure:3").unwrap().max_retries, Some(3));
        assert_eq!(p("on-failure:3").unwrap().to_string(), "on-failure:3");
        assert!(p("always:3").is_err());
        assert!(p("on-failure:0").is_err());
        let e = p("on-failur").unwrap_err().0;
        assert!(e.contains("did you mean \"on-failure\""), "{e}");
    }
}
