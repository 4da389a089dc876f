//! Tests from the inside: the probe (`tests/probe`, a static binary built once per run, see
//! `host::probe_binary`) runs in containers and reports what it sees as JSON; these helpers
//! run it and read its reports. The tests themselves are in `isolation.rs` (namespaces, /proc,
//! /sys, /dev, mounts, volumes, users, limits), `security.rs` (capabilities, seccomp,
//! no-new-privileges), `escape.rs` (escape attempts under default settings), `init.rs`
//! (`--init`) and `bad_input.rs`.
//!
//! Containers from the busybox root file system run `/bin/probe` (copied there when the test
//! host builds it); containers from an image get it with `-v PROBE:/probe:ro`.

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::host::{Output, PROBE, PROBE_MOUNT, host, probe_binary, probe_volume};

/// Docker's default capability set (moby's `oci/caps/defaults.go`), names without `CAP_`.
pub const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Bound for one container that runs the probe (an image may be pulled first).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(90);

pub fn default_caps() -> BTreeSet<String> {
    names(DEFAULT_CAPS)
}

pub fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `cleat run --rm --name NAME FLAGS... --rootfs BUSYBOX /bin/probe ARGS...`.
pub fn run_in_rootfs(name: &str, flags: &[&str], args: &[&str]) -> Output {
    let mut cmd = vec![PROBE];
    cmd.extend_from_slice(args);
    run_cmd_in_rootfs(name, flags, &cmd)
}

/// `cleat run --rm --name NAME FLAGS... --rootfs BUSYBOX CMD...`.
pub fn run_cmd_in_rootfs(name: &str, flags: &[&str], cmd: &[&str]) -> Output {
    let _ = probe_binary();
    let rootfs = host().rootfs.clone();
    let mut argv = vec!["run", "--rm", "--name", name];
    argv.extend_from_slice(flags);
    argv.extend(["--rootfs", &rootfs]);
    argv.extend_from_slice(cmd);
    host().cleat_timeout(&argv, PROBE_TIMEOUT)
}

/// `cleat run --rm --name NAME -v PROBE:/probe:ro --entrypoint /probe FLAGS... IMAGE ARGS...`.
pub fn run_in_image(name: &str, image: &str, flags: &[&str], args: &[&str]) -> Output {
    let vol = probe_volume();
    let mut argv = vec![
        "run",
        "--rm",
        "--name",
        name,
        "-v",
        &vol,
        "--entrypoint",
        PROBE_MOUNT,
    ];
    argv.extend_from_slice(flags);
    argv.push(image);
    argv.extend_from_slice(args);
    host().cleat_timeout(&argv, PROBE_TIMEOUT)
}

/// The JSON objects among the lines of stdout (the probe prints one per line).
#[track_caller]
pub fn reports(out: &Output) -> Vec<Value> {
    out.stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("a probe line is not JSON ({e}): {l}\n{out}"))
        })
        .collect()
}

/// `probe facts` of a container of the busybox root file system, which must exit 0.
#[track_caller]
pub fn facts(name: &str, flags: &[&str]) -> Facts {
    Facts::from_output(&run_in_rootfs(name, flags, &["facts"]))
}

/// `probe try ACTIONS...` in a container of the busybox root file system, which must exit 0.
#[track_caller]
pub fn attempts(name: &str, flags: &[&str], actions: &[&str]) -> Attempts {
    let mut args = vec!["try"];
    args.extend_from_slice(actions);
    Attempts::from_output(&run_in_rootfs(name, flags, &args))
}

/// `probe facts`, then `probe try ACTIONS...`, in one container of the busybox root file
/// system (run by its shell, which is PID 1 then), which must exit 0.
#[track_caller]
pub fn facts_and_attempts(name: &str, flags: &[&str], actions: &[&str]) -> (Facts, Attempts) {
    let mut cmd = vec!["sh", "-c", "\"$0\" facts && \"$0\" try \"$@\"", PROBE];
    cmd.extend_from_slice(actions);
    let out = run_cmd_in_rootfs(name, flags, &cmd);
    (Facts::from_output(&out), Attempts::from_output(&out))
}

/// Whether a report says `"ok": true`.
pub fn ok(v: &Value) -> bool {
    v["ok"] == Value::Bool(true)
}

/// A report's errno (0 when it has none).
pub fn errno(v: &Value) -> i32 {
    v["errno"].as_i64().unwrap_or(0) as i32
}

// ---------------------------------------------------------------------------------------------
// probe facts

/// What `probe facts` reported.
pub struct Facts {
    pub v: Value,
    /// The command and its output, for messages.
    pub out: String,
}

impl Facts {
    #[track_caller]
    pub fn from_output(out: &Output) -> Facts {
        out.ok();
        let v = assemble_facts(&reports(out)).unwrap_or_else(|e| {
            panic!("no complete `probe facts` report in the output: {e}\n{out}")
        });
        Facts {
            v,
            out: out.to_string(),
        }
    }

    /// The facts printed by a declared container, from its unit's journal.
    #[track_caller]
    pub fn from_journal(unit: &str) -> Facts {
        let journal = host().journal(unit);
        let lines: Vec<Value> = journal
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let v = assemble_facts(&lines).unwrap_or_else(|e| {
            panic!("no complete `probe facts` report in the journal: {e}\n{journal}")
        });
        Facts { v, out: journal }
    }

    /// Capability set `set` (`inh`, `prm`, `eff`, `bnd`, `amb`) as names without `CAP_`.
    #[track_caller]
    pub fn caps(&self, set: &str) -> BTreeSet<String> {
        let list = self.v["caps"][set]["names"]
            .as_array()
            .unwrap_or_else(|| panic!("no capability set {set}: {}", self.v["caps"]));
        list.iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect()
    }

    /// The link target of /proc/self/ns/NAME (`net:[4026531993]`).
    #[track_caller]
    pub fn ns(&self, name: &str) -> String {
        match self.v["ns"][name].as_str() {
            Some(s) => s.to_string(),
            None => panic!("no namespace {name} in {}", self.v["ns"]),
        }
    }

    #[track_caller]
    pub fn int(&self, key: &str) -> i64 {
        self.v[key]
            .as_i64()
            .unwrap_or_else(|| panic!("no number {key} in the facts: {}", self.v[key]))
    }

    #[track_caller]
    pub fn str(&self, key: &str) -> String {
        self.v[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string {key} in the facts: {}", self.v[key]))
            .to_string()
    }

    /// getgroups(2).
    #[track_caller]
    pub fn groups(&self) -> BTreeSet<u64> {
        self.v["groups"]
            .as_array()
            .unwrap_or_else(|| panic!("no groups: {}", self.v["groups"]))
            .iter()
            .filter_map(Value::as_u64)
            .collect()
    }

    /// (soft, hard) of a resource limit, `None` meaning unlimited.
    #[track_caller]
    pub fn rlimit(&self, name: &str) -> (Option<u64>, Option<u64>) {
        let r = &self.v["rlimits"][name];
        assert!(r.is_object(), "no rlimit {name}: {}", self.v["rlimits"]);
        (r["soft"].as_u64(), r["hard"].as_u64())
    }

    /// Every mount, in /proc/self/mountinfo's order.
    pub fn mounts(&self) -> Vec<&Value> {
        self.v["mounts"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }

    /// The topmost mount exactly at `point`.
    pub fn mount_at(&self, point: &str) -> Option<&Value> {
        self.mounts()
            .into_iter()
            .rfind(|m| m["mount_point"] == point)
    }

    /// The mount that `path` lives on: the topmost of those with the longest mount point that
    /// contains it.
    pub fn covering_mount(&self, path: &str) -> Option<&Value> {
        let contains = |point: &str| {
            point == "/"
                || path == point
                || path
                    .strip_prefix(point)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        let mut best: Option<&Value> = None;
        for m in self.mounts() {
            let Some(point) = m["mount_point"].as_str() else {
                continue;
            };
            if !contains(point) {
                continue;
            }
            let longer_or_same = best
                .and_then(|b| b["mount_point"].as_str())
                .is_none_or(|b| point.len() >= b.len());
            if longer_or_same {
                best = Some(m);
            }
        }
        best
    }

    /// The entries of the container's /dev (names relative to /dev, `pts/ptmx`).
    pub fn dev(&self) -> Vec<&Value> {
        self.v["dev"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }

    pub fn dev_entry(&self, name: &str) -> Option<&Value> {
        self.dev().into_iter().find(|e| e["name"] == name)
    }
}

/// Puts the lines of `probe facts` back together (the probe splits its report into short
/// lines: see `split_facts` in tests/probe/src/main.rs). Uses the last complete report among
/// `lines` (a journal may hold several runs).
pub fn assemble_facts(lines: &[Value]) -> Result<Value, String> {
    let facts: Vec<&Value> = lines.iter().filter(|l| l.get("fact").is_some()).collect();
    let end = facts
        .iter()
        .rposition(|l| l["fact"] == "end")
        .ok_or("no end line (lines lost?)")?;
    let count = facts[end]["lines"].as_u64().unwrap_or(0) as usize;
    if count > end {
        return Err(format!("{count} lines announced, {end} received"));
    }
    let mut out = serde_json::Map::new();
    for l in &facts[end - count..end] {
        let key = l["fact"].as_str().unwrap_or("").to_string();
        if let Some(n) = l["items"].as_u64() {
            out.insert(key, Value::Array(vec![Value::Null; n as usize]));
        } else if l.get("keys").is_some() {
            out.insert(key, Value::Object(serde_json::Map::new()));
        } else if let Some(i) = l["item"].as_u64() {
            match out.get_mut(&key) {
                Some(Value::Array(a)) if (i as usize) < a.len() => {
                    a[i as usize] = l["value"].clone()
                }
                _ => return Err(format!("item {i} of {key} out of place")),
            }
        } else if let Some(k) = l["key"].as_str() {
            match out.get_mut(&key) {
                Some(Value::Object(o)) => {
                    o.insert(k.to_string(), l["value"].clone());
                }
                _ => return Err(format!("key {k} of {key} out of place")),
            }
        } else {
            out.insert(key, l["value"].clone());
        }
    }
    for (k, v) in &out {
        if let Value::Array(a) = v {
            if a.iter().any(Value::is_null) {
                return Err(format!("items of {k} missing"));
            }
        }
    }
    Ok(Value::Object(out))
}

/// The per-mount options of a mount (`rw,nosuid,...`) as a set.
pub fn mount_options(m: &Value) -> BTreeSet<String> {
    m["options"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .map(str::to_string)
        .collect()
}

/// The super-block options of a mount (`rw,size=1024k,mode=1777`) as a set.
pub fn super_options(m: &Value) -> BTreeSet<String> {
    m["super_options"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .map(str::to_string)
        .collect()
}

pub fn is_read_only(m: &Value) -> bool {
    mount_options(m).contains("ro")
}

// ---------------------------------------------------------------------------------------------
// probe try

/// What `probe try` reported: one object per attempt.
pub struct Attempts {
    pub list: Vec<Value>,
    pub out: String,
}

impl Attempts {
    #[track_caller]
    pub fn from_output(out: &Output) -> Attempts {
        out.ok();
        let list: Vec<Value> = reports(out)
            .into_iter()
            .filter(|r| r.get("action").is_some())
            .collect();
        assert!(
            !list.is_empty(),
            "no `probe try` report in the output:\n{out}"
        );
        Attempts {
            list,
            out: out.to_string(),
        }
    }

    /// The (first) report of `action`.
    #[track_caller]
    pub fn get(&self, action: &str) -> &Value {
        self.list
            .iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("no report for {action}:\n{}", self.out))
    }

    /// Every report of `action`, in order.
    pub fn all(&self, action: &str) -> Vec<&Value> {
        self.list.iter().filter(|r| r["action"] == action).collect()
    }

    /// The report of `action` on `path`.
    #[track_caller]
    pub fn at(&self, action: &str, path: &str) -> &Value {
        self.list
            .iter()
            .find(|r| r["action"] == action && r["path"] == path)
            .unwrap_or_else(|| panic!("no report for {action} {path}:\n{}", self.out))
    }
}

// ---------------------------------------------------------------------------------------------
// The test host's side

/// The test host's namespace `name` (the link target of /proc/1/ns/NAME there).
#[track_caller]
pub fn host_ns(name: &str) -> String {
    let out = host().exec(&["readlink", &format!("/proc/1/ns/{name}")]);
    out.ok();
    out.stdout.trim().to_string()
}

/// FNV-1a (64 bits) as the probe prints it, to compare contents without printing them.
pub fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Hash of a file of the test host (None if it cannot be read).
pub fn host_file_hash(inside: &str) -> Option<String> {
    fs::read(host().path(inside)).ok().map(|b| fnv1a64(&b))
}

/// `major:minor` of a real block device of the machine (the one holding the test host's
/// state directory, or else the first one the kernel lists), so that opening a node made for
/// it fails for a reason that says something (not ENXIO).
pub fn real_block_device() -> String {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = fs::metadata(&host().state) {
        let dev = m.dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        if major != 0 {
            return format!("{major}:{minor}");
        }
    }
    let mut devs: Vec<String> = fs::read_dir("/sys/class/block")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| fs::read_to_string(e.path().join("dev")).ok())
                .map(|s| s.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    devs.sort();
    devs.into_iter().next().unwrap_or_else(|| "8:0".into())
}

/// A unique path inside the test host's private /tmp, for files a test shares with its
/// containers; removed by the returned guard.
pub struct HostTemp {
    pub path: String,
}

impl HostTemp {
    pub fn new(name: &str) -> HostTemp {
        let path = format!("/tmp/{name}");
        host().remove(&path);
        fs::create_dir_all(host().path(&path))
            .unwrap_or_else(|e| panic!("mkdir {path} in the test host: {e}"));
        HostTemp { path }
    }

    /// `PATH/rel` inside the test host.
    pub fn join(&self, rel: &str) -> String {
        format!("{}/{rel}", self.path)
    }
}

impl Drop for HostTemp {
    fn drop(&mut self) {
        host().remove(&self.path);
    }
}

/// The ad-hoc unit's journal (message text), which outlives the unit.
pub fn journal_of(name: &str) -> String {
    host().journal(&crate::host::adhoc_unit(name))
}

/// Asserts that nothing of `name` is left: no unit, not listed by `ps -a`.
#[track_caller]
pub fn assert_no_trace(name: &str) {
    let unit = crate::host::adhoc_unit(name);
    assert_eq!(
        host().prop(&unit, "LoadState"),
        "not-found",
        "{unit} left behind"
    );
    assert!(
        crate::host::ps_entry(name, true).is_none(),
        "{name} listed by ps -a"
    );
}

// ---------------------------------------------------------------------------------------------
// probe watch-exe: cleat's binary, seen from a container with CAP_SYS_PTRACE

/// `(st_dev, st_ino)` of the installed cleat, in the test host.
pub fn installed_cleat() -> (u64, u64) {
    let out = host().exec(&["stat", "-L", "-c", "%d %i", crate::host::CLEAT]);
    out.ok();
    let mut it = out
        .stdout
        .split_whitespace()
        .map(|n| n.parse::<u64>().expect("a number"));
    (it.next().expect("st_dev"), it.next().expect("st_ino"))
}

/// The lines of `probe watch-exe` in the unit's journal (which outlives the unit).
pub fn watch_reports(unit: &str) -> Vec<Value> {
    host()
        .journal(unit)
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("watch").is_some())
        .collect()
}

/// Asserts that the report of `probe watch-exe` on a process caught running cleat's code
/// inside the container shows a sealed copy of cleat, never the host's binary, and that the
/// container could not write to what it holds.
#[track_caller]
pub fn assert_sealed_copy(r: &Value, installed: (u64, u64)) {
    assert_eq!(
        r["foreign"], true,
        "not caught running cleat's code (the container's own file): {r}"
    );
    assert_ne!(
        (r["dev"].as_u64(), r["ino"].as_u64()),
        (Some(installed.0), Some(installed.1)),
        "the container holds the host's cleat binary: {r}"
    );
    assert_eq!(r["all_seals"], true, "not a sealed copy: {r}");
    assert_eq!(r["direct"]["writable"], false, "{r}");
    assert_eq!(r["reopen"]["writable"], false, "{r}");
    assert_eq!(r["writable"], false, "{r}");
}
