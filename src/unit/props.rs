//! The one translator from a [`Spec`] to systemd unit properties (DESIGN decision 1), and
//! the two renderings of its result: D-Bus properties for `StartTransientUnit` /
//! `SetUnitProperties`, and unit-file directives for the generator's drop-in.
//!
//! A [`Prop`] knows its unit-file section and key, its D-Bus name and type, and its value; no
//! other code spells out a systemd property, so the two paths cannot drift.

use std::fmt;

use crate::spec::{Bytes, Count, Cpus, Limit, Name, Restart, Signal, Spec, Timeout};

use super::Kind;

/// A unit-file section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Unit,
    Service,
}

impl Section {
    pub fn header(self) -> &'static str {
        match self {
            Section::Unit => "[Unit]",
            Section::Service => "[Service]",
        }
    }
}

/// Dependency kinds, by their unit-file key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dep {
    After,
    Before,
    Requires,
    Wants,
    BindsTo,
    PartOf,
    Conflicts,
}

impl Dep {
    fn key(self) -> &'static str {
        match self {
            Dep::After => "After",
            Dep::Before => "Before",
            Dep::Requires => "Requires",
            Dep::Wants => "Wants",
            Dep::BindsTo => "BindsTo",
            Dep::PartOf => "PartOf",
            Dep::Conflicts => "Conflicts",
        }
    }
}

/// A command line for `ExecStart=` and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand {
    pub argv: Vec<String>,
    /// The `-` prefix: a failure of this command does not fail the unit.
    pub ignore_failure: bool,
}

/// One systemd unit property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    Description(String),
    Dependency(Dep, Vec<String>),
    StartLimitBurst(u32),
    StartLimitInterval(Timeout),
    Type(&'static str),
    /// `cgroup`: the unit stops when its last process has (not its main one).
    ExitType(&'static str),
    NotifyAccess(&'static str),
    ExecStart(ExecCommand),
    ExecStopPost(ExecCommand),
    Slice(String),
    KillMode(&'static str),
    KillSignal(Signal),
    /// An exit status of 128 + this signal counts as success: what a payload that handles the
    /// stop signal and then exits usually reports (143 for SIGTERM), as systemd already counts
    /// death by the signal itself.
    SuccessExitStatus(Signal),
    TimeoutStart(Timeout),
    TimeoutStop(Timeout),
    Restart(Restart),
    RestartDelay(Timeout),
    SyslogIdentifier(String),
    CollectMode(&'static str),
    /// The calling D-Bus client holds a reference, so the unit outlives its stop until the
    /// client has read the result (transient units only).
    AddRef(bool),
    Environment(Vec<String>),
    /// `FIELD=value` pairs journald adds to every entry of the unit.
    LogExtraFields(Vec<String>),
    MemoryMax(Limit<Bytes>),
    CpuQuota(Option<Cpus>),
    TasksMax(Limit<Count>),
    /// `closed`: the unit's processes may use only the standard pseudo devices (null, zero,
    /// full, random, urandom, tty, ptmx) and those `DeviceAllow` adds.
    DevicePolicy(&'static str),
    /// A device (a `/dev` path, or `char-GROUP`/`block-GROUP` from /proc/devices, globs
    /// allowed) and the access to it (`r`, `w`, `m` for mknod).
    DeviceAllow(&'static str, &'static str),
    /// The unit's control group is delegated to it: processes may be added to it later
    /// (`AttachProcessesToUnit`, which systemd allows only for delegated units: `cleat exec`),
    /// and systemd leaves what is below it alone, as for nspawn's and Docker's containers.
    Delegate(bool),
}

/// A D-Bus value of the types systemd's properties use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbusValue {
    Str(String),
    Bool(bool),
    U32(u32),
    I32(i32),
    U64(u64),
    Strs(Vec<String>),
    /// `a(sasb)`: path, argv, ignore-failure.
    Exec(Vec<(String, Vec<String>, bool)>),
    /// `(aiai)`: exit statuses, signals.
    ExitStatusSet(Vec<i32>, Vec<i32>),
    /// `aay`.
    ByteArrays(Vec<Vec<u8>>),
    /// `a(ss)`.
    Pairs(Vec<(String, String)>),
}

impl fmt::Display for DbusValue {
    /// A readable, stable text form (signature, then value) for golden tests and debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbusValue::Str(s) => write!(f, "s {s:?}"),
            DbusValue::Bool(b) => write!(f, "b {b}"),
            DbusValue::U32(n) => write!(f, "u {n}"),
            DbusValue::I32(n) => write!(f, "i {n}"),
            DbusValue::U64(n) => write!(f, "t {n}"),
            DbusValue::Strs(v) => write!(f, "as {v:?}"),
            DbusValue::Exec(cmds) => {
                f.write_str("a(sasb) [")?;
                for (i, (path, argv, ignore)) in cmds.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "({path:?}, {argv:?}, {ignore})")?;
                }
                f.write_str("]")
            }
            DbusValue::ByteArrays(arrays) => {
                let text: Vec<String> = arrays
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                write!(f, "aay {text:?}")
            }
            DbusValue::ExitStatusSet(codes, signals) => {
                write!(f, "(aiai) ({codes:?}, {signals:?})")
            }
            DbusValue::Pairs(pairs) => write!(f, "a(ss) {pairs:?}"),
        }
    }
}

/// The journal field that carries an ad-hoc container's ID.
pub const CONTAINER_ID_FIELD: &str = "CLEAT_CONTAINER_ID";

/// systemd's D-Bus encoding of "no limit" for 64-bit properties.
const INFINITY: u64 = u64::MAX;

/// Quotes a `KEY=value` assignment for an `Environment=` line: double quotes with C escapes
/// for backslash and `"`, `%` doubled for specifiers. (`$` has no special meaning there.)
fn quote_env_assignment(assignment: &str) -> String {
    let mut out = String::from("\"");
    for c in assignment.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Quotes a word for an `ExecStart=` line (systemd's rules: double quotes, with `\`, `"`
/// escaped; `%` doubled to defeat specifier expansion, `$` doubled to defeat variable
/// expansion).
fn quote_exec_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=,@".contains(c));
    if plain {
        return word.to_owned();
    }
    let mut out = String::from("\"");
    for c in word.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Prop {
    /// True for the resource-control properties, which cleat also applies live at each start
    /// (`SetUnitProperties`), so changing them needs no daemon-reload.
    pub fn is_resource(&self) -> bool {
        matches!(
            self,
            Prop::MemoryMax(_) | Prop::CpuQuota(_) | Prop::TasksMax(_)
        )
    }

    /// Unit-file section and key.
    pub fn key(&self) -> (Section, &'static str) {
        use Section::{Service, Unit};
        match self {
            Prop::Description(_) => (Unit, "Description"),
            Prop::Dependency(d, _) => (Unit, d.key()),
            Prop::StartLimitBurst(_) => (Unit, "StartLimitBurst"),
            Prop::StartLimitInterval(_) => (Unit, "StartLimitIntervalSec"),
            Prop::Type(_) => (Service, "Type"),
            Prop::ExitType(_) => (Service, "ExitType"),
            Prop::NotifyAccess(_) => (Service, "NotifyAccess"),
            Prop::ExecStart(_) => (Service, "ExecStart"),
            Prop::ExecStopPost(_) => (Service, "ExecStopPost"),
            Prop::Slice(_) => (Service, "Slice"),
            Prop::KillMode(_) => (Service, "KillMode"),
            Prop::KillSignal(_) => (Service, "KillSignal"),
            Prop::SuccessExitStatus(_) => (Service, "SuccessExitStatus"),
            Prop::TimeoutStart(_) => (Service, "TimeoutStartSec"),
            Prop::TimeoutStop(_) => (Service, "TimeoutStopSec"),
            Prop::Restart(_) => (Service, "Restart"),
            Prop::RestartDelay(_) => (Service, "RestartSec"),
            Prop::SyslogIdentifier(_) => (Service, "SyslogIdentifier"),
            Prop::CollectMode(_) => (Unit, "CollectMode"),
            Prop::AddRef(_) => (Unit, "AddRef"),
            Prop::Environment(_) => (Service, "Environment"),
            Prop::LogExtraFields(_) => (Service, "LogExtraFields"),
            Prop::MemoryMax(_) => (Service, "MemoryMax"),
            Prop::CpuQuota(_) => (Service, "CPUQuota"),
            Prop::TasksMax(_) => (Service, "TasksMax"),
            Prop::DevicePolicy(_) => (Service, "DevicePolicy"),
            Prop::DeviceAllow(..) => (Service, "DeviceAllow"),
            Prop::Delegate(_) => (Service, "Delegate"),
        }
    }

    /// The unit-file value (the text after `Key=`).
    pub fn unit_file_value(&self) -> String {
        let exec = |c: &ExecCommand| {
            let words: Vec<String> = c.argv.iter().map(|w| quote_exec_word(w)).collect();
            format!(
                "{}{}",
                if c.ignore_failure { "-" } else { "" },
                words.join(" ")
            )
        };
        match self {
            Prop::Description(s) | Prop::Slice(s) | Prop::SyslogIdentifier(s) => {
                s.replace('%', "%%")
            }
            Prop::Dependency(_, units) => units.join(" "),
            Prop::StartLimitBurst(n) => n.to_string(),
            Prop::StartLimitInterval(t)
            | Prop::TimeoutStart(t)
            | Prop::TimeoutStop(t)
            | Prop::RestartDelay(t) => t.to_unit_file(),
            Prop::Type(s)
            | Prop::ExitType(s)
            | Prop::NotifyAccess(s)
            | Prop::KillMode(s)
            | Prop::CollectMode(s)
            | Prop::DevicePolicy(s) => (*s).to_owned(),
            Prop::DeviceAllow(device, access) => format!("{device} {access}"),
            Prop::ExecStart(c) | Prop::ExecStopPost(c) => exec(c),
            Prop::KillSignal(s) => s.to_string(),
            Prop::SuccessExitStatus(s) => (128 + s.number()).to_string(),
            Prop::Restart(r) => r.as_str().to_owned(),
            Prop::AddRef(b) | Prop::Delegate(b) => if *b { "yes" } else { "no" }.to_owned(),
            Prop::LogExtraFields(fields) => fields.join(" "),
            Prop::Environment(vars) => vars
                .iter()
                .map(|v| quote_env_assignment(v))
                .collect::<Vec<_>>()
                .join(" "),
            Prop::MemoryMax(l) => match l {
                Limit::Value(b) => b.0.to_string(),
                Limit::Infinity => "infinity".into(),
            },
            Prop::CpuQuota(q) => q.map(Cpus::to_unit_file).unwrap_or_default(),
            Prop::TasksMax(l) => match l {
                Limit::Value(n) => n.0.to_string(),
                Limit::Infinity => "infinity".into(),
            },
        }
    }

    /// The D-Bus property name and value (as `StartTransientUnit` and `SetUnitProperties`
    /// take them).
    pub fn dbus(&self) -> (&'static str, DbusValue) {
        use DbusValue as V;
        let exec =
            |c: &ExecCommand| V::Exec(vec![(c.argv[0].clone(), c.argv.clone(), c.ignore_failure)]);
        match self {
            Prop::Description(s) => ("Description", V::Str(s.clone())),
            Prop::Dependency(d, units) => (d.key(), V::Strs(units.clone())),
            Prop::StartLimitBurst(n) => ("StartLimitBurst", V::U32(*n)),
            Prop::StartLimitInterval(t) => ("StartLimitIntervalUSec", V::U64(t.as_usec())),
            Prop::Type(s) => ("Type", V::Str((*s).into())),
            Prop::ExitType(s) => ("ExitType", V::Str((*s).into())),
            Prop::NotifyAccess(s) => ("NotifyAccess", V::Str((*s).into())),
            Prop::ExecStart(c) => ("ExecStart", exec(c)),
            Prop::ExecStopPost(c) => ("ExecStopPost", exec(c)),
            Prop::Slice(s) => ("Slice", V::Str(s.clone())),
            Prop::KillMode(s) => ("KillMode", V::Str((*s).into())),
            Prop::KillSignal(s) => ("KillSignal", V::I32(s.number())),
            Prop::SuccessExitStatus(s) => (
                "SuccessExitStatus",
                V::ExitStatusSet(vec![128 + s.number()], vec![]),
            ),
            Prop::TimeoutStart(t) => ("TimeoutStartUSec", V::U64(t.as_usec())),
            Prop::TimeoutStop(t) => ("TimeoutStopUSec", V::U64(t.as_usec())),
            Prop::Restart(r) => ("Restart", V::Str(r.as_str().into())),
            Prop::RestartDelay(t) => ("RestartUSec", V::U64(t.as_usec())),
            Prop::SyslogIdentifier(s) => ("SyslogIdentifier", V::Str(s.clone())),
            Prop::CollectMode(s) => ("CollectMode", V::Str((*s).into())),
            Prop::DevicePolicy(s) => ("DevicePolicy", V::Str((*s).into())),
            Prop::DeviceAllow(device, access) => (
                "DeviceAllow",
                V::Pairs(vec![((*device).into(), (*access).into())]),
            ),
            Prop::AddRef(b) => ("AddRef", V::Bool(*b)),
            Prop::Delegate(b) => ("Delegate", V::Bool(*b)),
            Prop::Environment(vars) => ("Environment", V::Strs(vars.clone())),
            Prop::LogExtraFields(fields) => (
                "LogExtraFields",
                V::ByteArrays(fields.iter().map(|f| f.as_bytes().to_vec()).collect()),
            ),
            Prop::MemoryMax(l) => (
                "MemoryMax",
                V::U64(match l {
                    Limit::Value(b) => b.0,
                    Limit::Infinity => INFINITY,
                }),
            ),
            Prop::CpuQuota(q) => (
                "CPUQuotaPerSecUSec",
                V::U64(q.map(Cpus::quota_usec_per_sec).unwrap_or(INFINITY)),
            ),
            Prop::TasksMax(l) => (
                "TasksMax",
                V::U64(match l {
                    Limit::Value(n) => n.0,
                    Limit::Infinity => INFINITY,
                }),
            ),
        }
    }
}

/// The unit name of the container a `depends-on` entry names. The caller decides (a declared
/// container's unit is `container@NAME.service`, an ad-hoc one's `cleat-NAME.service`).
pub type UnitNamer<'a> = &'a dyn Fn(&Name) -> String;

/// The properties that follow from a spec: the unit-level settings (dependencies, restart,
/// timeouts, stop signal) and the resource limits. The same list feeds the generator's
/// drop-in and a transient unit.
pub fn translate(spec: &Spec, unit_of: UnitNamer<'_>) -> Vec<Prop> {
    let mut props = Vec::new();
    if let Some(d) = &spec.description {
        props.push(Prop::Description(d.clone()));
    }
    let deps: Vec<String> = spec.depends_on.iter().map(unit_of).collect();
    let mut after = deps.clone();
    // A container that joins another's network namespace starts after it and stops with it
    // (BindsTo=): once that one's address is given back, nothing may keep using it.
    let mut binds_to = spec.unit.binds_to.clone();
    if let Some(crate::spec::NetworkMode::Container(other)) = &spec.network {
        let other = unit_of(other);
        if !after.contains(&other) {
            after.push(other.clone());
        }
        if !binds_to.contains(&other) {
            binds_to.push(other);
        }
    }
    after.extend(spec.unit.after.iter().cloned());
    let mut requires = deps;
    requires.extend(spec.unit.requires.iter().cloned());
    for (dep, units) in [
        (Dep::Requires, requires),
        (Dep::After, after),
        (Dep::Wants, spec.unit.wants.clone()),
        (Dep::BindsTo, binds_to),
        (Dep::PartOf, spec.unit.part_of.clone()),
        (Dep::Before, spec.unit.before.clone()),
        (Dep::Conflicts, spec.unit.conflicts.clone()),
    ] {
        if !units.is_empty() {
            props.push(Prop::Dependency(dep, units));
        }
    }
    if let Some(policy) = spec.restart {
        props.push(Prop::Restart(policy.restart));
        if let Some(n) = policy.max_retries {
            // Docker counts restarts; systemd counts starts within the interval. An
            // unlimited interval makes the count absolute, as in Docker.
            props.push(Prop::StartLimitBurst(n.saturating_add(1)));
            props.push(Prop::StartLimitInterval(Timeout::Infinity));
        }
    }
    if let Some(t) = spec.restart_delay {
        props.push(Prop::RestartDelay(t));
    }
    if let Some(t) = spec.start_timeout {
        props.push(Prop::TimeoutStart(t));
    }
    if let Some(t) = spec.stop_timeout {
        props.push(Prop::TimeoutStop(t));
    }
    if let Some(s) = spec.stop_signal {
        props.push(Prop::KillSignal(s));
        props.push(Prop::SuccessExitStatus(s));
    }
    if needs_notify_access_all(spec) {
        props.push(Prop::NotifyAccess("all"));
    }
    if spec.tty == Some(true) {
        // cleat holds the terminal beside the container and passes on its last output after
        // the payload exits: the unit lasts until it has.
        props.push(Prop::ExitType("cgroup"));
    }
    props.extend(resources(spec));
    props
}

/// With `notify = "container"`, the container's notifications reach systemd through cleat's
/// relay (`internal start`, which is no longer the main process once it has handed over):
/// systemd must accept notifications from the whole unit. Only the relay can reach systemd's
/// socket; the container cannot (it is not in its mount namespace), so this does not let the
/// container send `MAINPID=`.
pub fn needs_notify_access_all(spec: &Spec) -> bool {
    spec.notify == Some(crate::spec::Notify::Container)
}

/// The resource-control subset of [`translate`].
pub fn resources(spec: &Spec) -> Vec<Prop> {
    let mut props = Vec::new();
    if let Some(m) = spec.memory {
        props.push(Prop::MemoryMax(m));
    }
    if let Some(c) = spec.cpus {
        props.push(Prop::CpuQuota(Some(c)));
    }
    if let Some(p) = spec.pids_limit {
        props.push(Prop::TasksMax(p));
    }
    props
}

/// The resource properties (unit-file key, and the value that lifts the limit).
fn unlimited_resources() -> [(&'static str, Prop); 3] {
    [
        ("MemoryMax", Prop::MemoryMax(Limit::Infinity)),
        ("CPUQuota", Prop::CpuQuota(None)),
        ("TasksMax", Prop::TasksMax(Limit::Infinity)),
    ]
}

/// The resource limits a start should leave on a declared container's unit: the definition's
/// own, plus the lifting of every limit that one of cleat's drop-ins set (the generator's,
/// or a runtime one left by an earlier start) but the definition no longer has. `set_by_cleat`
/// holds those drop-ins' unit-file keys. Limits set by other drop-ins are left alone.
pub fn live_resources(spec: &Spec, set_by_cleat: &[String]) -> Vec<Prop> {
    let mut wanted = resources(spec);
    for (key, unlimited) in unlimited_resources() {
        let in_spec = wanted.iter().any(|p| p.key().1 == key);
        if !in_spec && set_by_cleat.iter().any(|k| k == key) {
            wanted.push(unlimited);
        }
    }
    wanted
}

/// Of `wanted`, the properties whose value differs from `current` (D-Bus name → value).
pub fn differing(wanted: Vec<Prop>, current: &std::collections::HashMap<String, u64>) -> Vec<Prop> {
    wanted
        .into_iter()
        .filter(|p| match p.dbus() {
            (name, DbusValue::U64(v)) => current.get(name) != Some(&v),
            _ => true,
        })
        .collect()
}

/// The properties that make a unit a cleat container, whatever the spec says: the process
/// model (DESIGN decision 4) and Docker's stop defaults. The template `container@.service`
/// carries exactly these for declared containers (a unit test holds it to that); a
/// transient unit gets them at creation.
pub fn base(kind: Kind, name: &str, exe: &str) -> Vec<Prop> {
    let flag = match kind {
        Kind::Declared => "--declared",
        Kind::Adhoc => "--adhoc",
    };
    let cmd = |verb: &str, ignore_failure: bool| ExecCommand {
        argv: vec![
            exe.into(),
            "internal".into(),
            verb.into(),
            flag.into(),
            name.into(),
        ],
        ignore_failure,
    };
    vec![
        Prop::Type("notify"),
        // Only the main process may notify: cleat while it hands over, the container's PID 1
        // after (with `notify = "container"`, cleat's relay: see `needs_notify_access_all`).
        Prop::NotifyAccess("main"),
        Prop::ExecStart(cmd("start", false)),
        Prop::ExecStopPost(cmd("stopped", true)),
        Prop::Slice("machine.slice".into()),
        Prop::KillMode("mixed"),
        Prop::KillSignal(Signal::TERM),
        Prop::SuccessExitStatus(Signal::TERM),
        Prop::TimeoutStop(Timeout::from_secs(10)),
        Prop::SyslogIdentifier(name.into()),
        // Docker's device rules, enforced by the unit's cgroup: the standard pseudo devices
        // and pseudo terminals may be used; any device node may be made (CAP_MKNOD), none
        // other opened, so that a container root cannot make /dev/sda and read the disk.
        Prop::DevicePolicy("closed"),
        Prop::DeviceAllow("char-pts", "rw"),
        Prop::DeviceAllow("char-*", "m"),
        Prop::DeviceAllow("block-*", "m"),
        // `cleat exec` adds its processes to the unit's control group (systemd moves them only
        // into delegated units), so they count against its limits and stop with it.
        Prop::Delegate(true),
    ]
}

/// The full property list of an ad-hoc container's transient unit: the base, then the spec's
/// (which override the base's defaults, key by key).
pub fn transient(spec: &Spec, id: &str, exe: &str, unit_of: UnitNamer<'_>) -> Vec<Prop> {
    let mut props = vec![Prop::Description(format!("Container {}", spec.name))];
    props.extend(base(Kind::Adhoc, spec.name.as_str(), exe));
    // The exit status is recorded by ExecStopPost, so an exited container need not linger as a
    // failed unit.
    props.push(Prop::CollectMode("inactive-or-failed"));
    // The creating client holds a reference until it disconnects, so it can read how the unit
    // ended even when that is at once.
    props.push(Prop::AddRef(true));
    props.push(Prop::LogExtraFields(vec![format!(
        "{CONTAINER_ID_FIELD}={id}"
    )]));
    props.extend(translate(spec, unit_of));
    dedup_last_wins(props)
}

/// Removes earlier occurrences of single-valued properties that a later one overrides
/// (dependency lists and device rules accumulate, as in unit files).
fn dedup_last_wins(props: Vec<Prop>) -> Vec<Prop> {
    let mut out: Vec<Prop> = Vec::with_capacity(props.len());
    for p in props {
        if !matches!(p, Prop::Dependency(..) | Prop::DeviceAllow(..)) {
            out.retain(|q| q.key() != p.key());
        }
        out.push(p);
    }
    out
}

/// Renders properties as unit-file text, grouped by section in a fixed order.
pub fn render_unit_file(props: &[Prop]) -> String {
    let mut out = String::new();
    for section in [Section::Unit, Section::Service] {
        let lines: Vec<String> = props
            .iter()
            .filter(|p| p.key().0 == section)
            .map(|p| format!("{}={}", p.key().1, p.unit_file_value()))
            .collect();
        if lines.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(section.header());
        out.push('\n');
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Renders properties the way D-Bus receives them, one per line, for tests and `--debug`.
pub fn render_dbus(props: &[Prop]) -> String {
    props
        .iter()
        .map(|p| {
            let (name, value) = p.dbus();
            format!("{name} {value}\n")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Source;

    fn spec() -> Spec {
        Spec::new("web".parse().unwrap(), Source::Rootfs("/srv/web".into()))
    }

    fn unit_of(n: &Name) -> String {
        format!("container@{n}.service")
    }

    #[test]
    fn live_resources_apply_the_spec_and_lift_what_cleat_set_before() {
        let mut s = spec();
        s.memory = Some(Limit::Value(Bytes(1 << 20)));
        let by_cleat = vec!["MemoryMax".to_owned(), "TasksMax".to_owned()];
        let wanted = live_resources(&s, &by_cleat);
        assert_eq!(
            wanted,
            [
                Prop::MemoryMax(Limit::Value(Bytes(1 << 20))),
                Prop::TasksMax(Limit::Infinity)
            ]
        );
        assert!(
            live_resources(&spec(), &[]).is_empty(),
            "limits set by others stay"
        );
        let current = [
            ("MemoryMax".to_owned(), 1u64 << 20),
            ("TasksMax".to_owned(), 50),
        ]
        .into();
        assert_eq!(
            differing(wanted, &current),
            [Prop::TasksMax(Limit::Infinity)]
        );
    }

    #[test]
    fn a_network_shared_with_another_container_binds_to_it() {
        let mut s = spec();
        s.network = Some("container:db".parse().unwrap());
        let props = translate(&s, &unit_of);
        let db = unit_of(&"db".parse().unwrap());
        assert_eq!(
            props,
            [
                Prop::Dependency(Dep::After, vec![db.clone()]),
                Prop::Dependency(Dep::BindsTo, vec![db.clone()])
            ]
        );
        // Named in depends-on too: required, and ordered once.
        s.depends_on = vec!["db".parse().unwrap()];
        let props = translate(&s, &unit_of);
        assert!(props.contains(&Prop::Dependency(Dep::Requires, vec![db.clone()])));
        assert!(props.contains(&Prop::Dependency(Dep::After, vec![db])));
    }

    #[test]
    fn empty_spec_translates_to_nothing() {
        assert!(translate(&spec(), &unit_of).is_empty());
    }

    #[test]
    fn spec_overrides_base_defaults_in_transient_units() {
        let mut s = spec();
        s.stop_timeout = Some(Timeout::from_secs(3));
        s.stop_signal = Some("SIGQUIT".parse().unwrap());
        let props = transient(&s, "0123", "/usr/bin/cleat", &unit_of);
        let stops: Vec<_> = props
            .iter()
            .filter(|p| matches!(p, Prop::TimeoutStop(_)))
            .collect();
        assert_eq!(stops, [&Prop::TimeoutStop(Timeout::from_secs(3))]);
        assert!(props.contains(&Prop::KillSignal("SIGQUIT".parse().unwrap())));
        assert!(!props.contains(&Prop::KillSignal(Signal::TERM)));
    }

    #[test]
    fn environment_assignments_are_quoted_for_unit_files() {
        assert_eq!(quote_env_assignment("A=b"), "\"A=b\"");
        assert_eq!(quote_env_assignment("A=$HOME 100%"), "\"A=$HOME 100%%\"");
        assert_eq!(
            quote_env_assignment("A=say \"hi\" \\o/"),
            "\"A=say \\\"hi\\\" \\\\o/\""
        );
    }

    #[test]
    fn exec_words_are_quoted_for_unit_files() {
        assert_eq!(quote_exec_word("/usr/bin/cleat"), "/usr/bin/cleat");
        assert_eq!(quote_exec_word("a b"), "\"a b\"");
        assert_eq!(quote_exec_word("100%"), "\"100%%\"");
        assert_eq!(quote_exec_word("$HOME"), "\"$$HOME\"");
        assert_eq!(quote_exec_word(""), "\"\"");
    }

    /// The template unit must carry exactly the base properties, so that declared and ad-hoc
    /// containers run the same way.
    #[test]
    fn template_unit_matches_base_properties() {
        let template = include_str!("../../units/container@.service.in");
        let service: Vec<&str> = template
            .lines()
            .skip_while(|l| *l != "[Service]")
            .skip(1)
            .take_while(|l| !l.starts_with('['))
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let expected = render_unit_file(&base(Kind::Declared, "%i", "@bindir@/cleat"));
        let expected: Vec<&str> = expected.lines().skip(1).collect();
        // `%i` is a specifier in the template and must stay one: compare with the escaping
        // of literal percent signs undone.
        let expected: Vec<String> = expected
            .iter()
            .map(|l| l.replace("%%i", "%i").replace("\"%i\"", "%i"))
            .collect();
        assert_eq!(service, expected);
    }
}
