//! What a container mounts besides its root: bind mounts of host paths, volumes (named ones
//! cleat manages, and anonymous ones), tmpfs. Parsed from Docker's three spellings
//! (`-v SRC:DST[:OPTS]`, `--mount type=…,source=…,target=…`, `--tmpfs DST[:OPTS]`), which TOML
//! accepts too (`volumes = […]`, `mounts = […]`, `tmpfs = […]`), and `--volumes-from C[:ro|rw]`.
//!
//! Parsing checks everything that can be checked without looking at the host: the shape of each
//! spelling, that container paths are absolute and clean and stay away from what the container
//! gets of its own (`/`, `/proc`, `/dev`, `/sys`), that volume names follow Docker's rule.
//! Whether a bind source exists is checked when the mounts are planned (see
//! `rootfs::volumes`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::load::suggest;
use super::value::{Bytes, Name, ValueError};

/// What kind of thing is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host path.
    Bind,
    /// A volume: named (created on first use, kept after the container) or anonymous.
    Volume,
    /// A fresh tmpfs.
    Tmpfs,
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MountSpec {
    #[serde(rename = "type")]
    pub kind: MountKind,
    /// Bind: the host path (absolute, clean). Volume: its name; `None` for an anonymous volume.
    /// Tmpfs: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Where it appears in the container (absolute, clean).
    pub target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Bind: mount propagation (`rprivate` by default; `private`, `rslave`, `slave`; the
    /// shared modes are refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Volume: do not fill a new volume with the image's content at the target.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_copy: bool,
    /// Tmpfs: size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Bytes>,
    /// Tmpfs: mode of its root (octal in the spellings, e.g. `1777`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Tmpfs: further mount options, in the order given: the flags `noexec`, `nosuid`,
    /// `nodev` and their opposites `exec`, `suid`, `dev` (a tmpfs is `noexec,nosuid,nodev`
    /// unless told otherwise, as in Docker), and the tmpfs options `uid=N`, `gid=N`,
    /// `nr_inodes=N`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// Docker's rule for volume names, as shown in messages.
pub const VOLUME_NAME_RULE: &str = "[a-zA-Z0-9][a-zA-Z0-9_.-]*";

/// The longest volume name: a volume is a directory, and a file name has at most 255 bytes.
pub const VOLUME_NAME_MAX: usize = 255;

/// The propagation modes of a bind mount.
pub const PROPAGATION_MODES: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// Paths the container gets its own of, which no mount may cover or go below.
const RESERVED_TREES: &[&str] = &["/proc", "/dev/pts"];
/// Paths no mount may cover (below them is allowed: `--tmpfs /dev/shm:size=1g`, as in Docker).
const RESERVED_PATHS: &[&str] = &["/sys", "/dev"];

/// Checks a volume name against Docker's rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
pub fn check_volume_name(name: &str) -> Result<(), ValueError> {
    check_docker_name("volume", name, VOLUME_NAME_MAX)
}

/// Checks the name of a `kind` of object (volume, network) against Docker's rule
/// (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most `max` characters).
pub fn check_docker_name(kind: &str, name: &str, max: usize) -> Result<(), ValueError> {
    let bad = |why: String| Err(ValueError(format!("invalid {kind} name {name:?}: {why}")));
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return bad("it is empty".into());
    };
    if name.len() > max {
        return bad(format!("it is longer than {max} characters"));
    }
    if !first.is_ascii_alphanumeric() {
        return bad(format!(
            "it must start with a letter or digit (names follow {VOLUME_NAME_RULE})"
        ));
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c))) {
        return bad(format!(
            "{c:?} is not allowed (names follow {VOLUME_NAME_RULE})"
        ));
    }
    Ok(())
}

/// A path inside the container where something may be mounted: absolute, made clean (no
/// empty or `.` components, no trailing `/`), without `..`, and not `/`, `/proc`, `/dev`, `/sys`
/// or anything below `/proc` or `/dev/pts`.
pub fn check_target(raw: &str) -> Result<String, ValueError> {
    if raw.is_empty() {
        return Err(ValueError("the container path is empty".into()));
    }
    if raw.contains('\0') {
        return Err(ValueError(format!(
            "the container path {raw:?} contains a NUL character"
        )));
    }
    if !raw.starts_with('/') {
        return Err(ValueError(format!(
            "the container path {raw:?} is not absolute (it must start with '/')"
        )));
    }
    let mut clean = String::new();
    for component in raw.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if component == ".." {
            return Err(ValueError(format!(
                "the container path {raw:?} contains \"..\" (give the path it stands for)"
            )));
        }
        clean.push('/');
        clean.push_str(component);
    }
    if clean.is_empty() {
        return Err(ValueError(
            "cannot mount over /: it is the container's root file system".into(),
        ));
    }
    if let Some(tree) = RESERVED_TREES
        .iter()
        .find(|t| clean == **t || clean.strip_prefix(**t).is_some_and(|r| r.starts_with('/')))
    {
        return Err(ValueError(if clean == *tree {
            format!("cannot mount over {tree}: the container gets its own")
        } else {
            format!(
                "cannot mount over {clean}: it is inside {tree}, which the container gets its own of"
            )
        }));
    }
    if RESERVED_PATHS.contains(&clean.as_str()) {
        return Err(ValueError(format!(
            "cannot mount over {clean}: the container gets its own"
        )));
    }
    Ok(clean)
}

/// A host path for a bind mount: absolute, made clean lexically as Docker does (`//a/./b/../c/`
/// is `/a/c`).
pub fn check_host_path(raw: &str) -> Result<String, ValueError> {
    if raw.contains('\0') {
        return Err(ValueError(format!(
            "the host path {raw:?} contains a NUL character"
        )));
    }
    if !raw.starts_with('/') {
        return Err(ValueError(format!(
            "the host path {raw:?} is not absolute (it must start with '/')"
        )));
    }
    let mut parts: Vec<&str> = Vec::new();
    for component in raw.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if component == ".." {
            parts.pop();
        } else {
            parts.push(component);
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The options of `-v` (`ro,nocopy,rslave,z`, ...), each kind at most once.
#[derive(Debug, Default)]
struct VolumeOptions {
    read_only: Option<bool>,
    no_copy: bool,
    propagation: Option<String>,
}

/// Docker Desktop's consistency modes: accepted without effect (meaningless on Linux), as
/// SELinux's `z`/`Z` are (cleat does not label).
const CONSISTENCY_MODES: &[&str] = &["cached", "delegated", "consistent"];

const VOLUME_OPTIONS: &[&str] = &[
    "ro", "rw", "nocopy", "private", "rprivate", "shared", "rshared", "slave", "rslave", "z", "Z",
];

fn parse_volume_options(text: &str) -> Result<VolumeOptions, String> {
    let mut out = VolumeOptions::default();
    let mut seen_label = false;
    let mut seen_consistency = false;
    for option in text.split(',') {
        let twice = || format!("options {text:?} say more than once how to mount ({option:?})");
        match option {
            "" => return Err(format!("options {text:?} contain an empty option")),
            "ro" | "rw" => {
                if out.read_only.replace(option == "ro").is_some() {
                    return Err(twice());
                }
            }
            "nocopy" => {
                if std::mem::replace(&mut out.no_copy, true) {
                    return Err(twice());
                }
            }
            "z" | "Z" => {
                if std::mem::replace(&mut seen_label, true) {
                    return Err(twice());
                }
            }
            o if CONSISTENCY_MODES.contains(&o) => {
                if std::mem::replace(&mut seen_consistency, true) {
                    return Err(twice());
                }
            }
            o if PROPAGATION_MODES.contains(&o) => {
                check_propagation(o)?;
                if out.propagation.replace(o.to_owned()).is_some() {
                    return Err(twice());
                }
            }
            other => return Err(unknown("option", other, VOLUME_OPTIONS)),
        }
    }
    Ok(out)
}

/// Refuses the propagation modes cleat cannot honour: the container's mount namespace is a
/// slave of the host's, so nothing mounted inside ever reaches the host, which is what
/// `shared`/`rshared` would promise.
fn check_propagation(mode: &str) -> Result<(), String> {
    if mode.ends_with("shared") {
        return Err(format!(
            "bind propagation {mode} is not supported: mounts made in a container never reach \
             the host (rslave lets the container see the host's new mounts)"
        ));
    }
    Ok(())
}

/// "unknown KIND "x" (did you mean "y"?)" or "unknown KIND "x" (expected a, b, c)".
fn unknown(kind: &str, word: &str, known: &[&str]) -> String {
    match suggest(word, known.iter().copied()) {
        Some(near) => format!("unknown {kind} {word:?} (did you mean {near:?}?)"),
        None => format!(
            "unknown {kind} {word:?} (expected one of: {})",
            known.join(", ")
        ),
    }
}

/// Whether every comma-separated item of `text` is a `-v` option: `/data:ro` has options where
/// its target should be.
fn looks_like_options(text: &str) -> bool {
    !text.is_empty() && parse_volume_options(text).is_ok()
}

/// A source of `-v` that is not a host path: it must be a volume name.
fn volume_source(source: &str) -> Result<String, String> {
    let name_like = source
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    match check_volume_name(source) {
        Ok(()) => return Ok(source.to_owned()),
        // Meant as a name, but not a valid one (too long, or a bad first character).
        Err(e) if name_like && source.starts_with(|c: char| c.is_ascii_alphanumeric()) => {
            return Err(e.0);
        }
        Err(_) => {}
    }
    Err(format!(
        "{source:?} is neither an absolute host path nor a volume name ({VOLUME_NAME_RULE}); \
         give a host directory as an absolute path"
    ))
}

impl MountSpec {
    fn new(kind: MountKind, source: Option<String>, target: String) -> MountSpec {
        MountSpec {
            kind,
            source,
            target,
            read_only: false,
            propagation: None,
            no_copy: false,
            size: None,
            mode: None,
            options: Vec::new(),
        }
    }

    /// `-v`/`--volume`: `HOST_PATH:TARGET[:OPTS]`, `NAME:TARGET[:OPTS]` or `TARGET` (an anonymous
    /// volume); OPTS a comma-separated list of `ro`, `rw`, `nocopy`, a propagation mode, and
    /// SELinux's `z`/`Z` (accepted, without effect). A source that starts with `/` is a host
    /// path; anything else must be a volume name.
    pub fn parse_volume(s: &str) -> Result<MountSpec, ValueError> {
        Self::volume_from_text(s).map_err(|why| ValueError(format!("invalid volume {s:?}: {why}")))
    }

    fn volume_from_text(s: &str) -> Result<MountSpec, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (source, target, options) = match parts.as_slice() {
            [""] => return Err("it is empty".into()),
            [target] => (None, *target, None),
            [_, options] if looks_like_options(options) => {
                return Err(format!(
                    "{options:?} looks like options, but then the container path is missing \
                     (SOURCE:TARGET:OPTIONS; an anonymous volume, TARGET alone, takes no options)"
                ));
            }
            [source, target] => (Some(*source), *target, None),
            [source, target, options] => (Some(*source), *target, Some(*options)),
            _ => {
                return Err(
                    "too many ':' (expected TARGET, SOURCE:TARGET or SOURCE:TARGET:OPTIONS)".into(),
                );
            }
        };
        let target = check_target(target).map_err(|e| e.0)?;
        let options = match options {
            None | Some("") => VolumeOptions::default(),
            Some(text) => parse_volume_options(text)?,
        };
        let mut spec = match source {
            None => MountSpec::new(MountKind::Volume, None, target),
            Some("") => return Err("the source before the first ':' is empty".into()),
            Some(path) if path.starts_with('/') => {
                let path = check_host_path(path).map_err(|e| e.0)?;
                MountSpec::new(MountKind::Bind, Some(path), target)
            }
            Some(name) => MountSpec::new(MountKind::Volume, Some(volume_source(name)?), target),
        };
        spec.read_only = options.read_only.unwrap_or(false);
        match spec.kind {
            MountKind::Bind if options.no_copy => {
                return Err("nocopy applies to volumes, not to a bind mount of a host path".into());
            }
            MountKind::Volume if options.propagation.is_some() => {
                return Err(
                    "a propagation mode applies to bind mounts of host paths, not to volumes"
                        .into(),
                );
            }
            _ => {}
        }
        spec.no_copy = options.no_copy;
        spec.propagation = options.propagation;
        check_read_only_propagation(&spec)?;
        Ok(spec)
    }

    /// `--mount`: comma-separated `key=value` pairs: `type=bind|volume|tmpfs` (`volume` if not
    /// given), `source`/`src`, `target`/`destination`/`dst`, `readonly`/`ro` (alone, or
    /// `=true|false`), `bind-propagation`, `volume-nocopy` (alone, or `=true|false`),
    /// `volume-driver=local`, `tmpfs-size`, `tmpfs-mode` (octal); `consistency` is accepted
    /// without effect. Keys are case-insensitive, as in Docker.
    pub fn parse_mount(s: &str) -> Result<MountSpec, ValueError> {
        MountFields::parse(s)
            .and_then(MountFields::into_spec)
            .map_err(|why| ValueError(format!("invalid mount {s:?}: {why}")))
    }

    /// `--tmpfs`: `TARGET[:OPTS]`, OPTS a comma-separated list of `size=…`, `mode=…` (octal),
    /// `ro`, `rw`, the flags `noexec`/`exec`, `nosuid`/`suid`, `nodev`/`dev`, and `uid=N`,
    /// `gid=N`, `nr_inodes=N`.
    pub fn parse_tmpfs(s: &str) -> Result<MountSpec, ValueError> {
        Self::tmpfs_from_text(s).map_err(|why| ValueError(format!("invalid tmpfs {s:?}: {why}")))
    }

    fn tmpfs_from_text(s: &str) -> Result<MountSpec, String> {
        let (target, options) = match s.split_once(':') {
            Some((target, "")) => (target, None),
            Some((target, options)) => (target, Some(options)),
            None => (s, None),
        };
        let target = check_target(target).map_err(|e| e.0)?;
        let mut spec = MountSpec::new(MountKind::Tmpfs, None, target);
        let mut seen = Vec::new();
        for option in options.into_iter().flat_map(|o| o.split(',')) {
            let (key, value) = match option.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (option, None),
            };
            let kind = tmpfs_option_kind(key).ok_or_else(|| {
                if option.is_empty() {
                    "the options contain an empty option".to_owned()
                } else {
                    unknown("option", key, TMPFS_OPTIONS)
                }
            })?;
            if seen.contains(&kind) {
                return Err(format!("{option:?} says again what an earlier option said"));
            }
            seen.push(kind);
            match (key, value) {
                ("ro" | "rw", None) => spec.read_only = key == "ro",
                ("size", Some(v)) => spec.size = Some(tmpfs_size(v)?),
                ("mode", Some(v)) => spec.mode = Some(octal_mode(v)?),
                ("uid" | "gid", Some(v)) => {
                    v.parse::<u32>()
                        .map_err(|_| format!("{key}={v}: not a number"))?;
                    spec.options.push(option.to_owned());
                }
                ("nr_inodes", Some(v)) => {
                    check_inode_count(v)?;
                    spec.options.push(option.to_owned());
                }
                (flag, None) if TMPFS_FLAGS.contains(&flag) => spec.options.push(flag.to_owned()),
                (_, None) => return Err(format!("{key} needs a value ({key}=…)")),
                (_, Some(_)) => return Err(format!("{key} takes no value")),
            }
        }
        Ok(spec)
    }
}

const TMPFS_OPTIONS: &[&str] = &[
    "size",
    "mode",
    "ro",
    "rw",
    "noexec",
    "exec",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "uid",
    "gid",
    "nr_inodes",
];

/// The mount flags `--tmpfs` takes (each a pair of opposites).
pub const TMPFS_FLAGS: &[&str] = &["noexec", "exec", "nosuid", "suid", "nodev", "dev"];

/// Which setting a tmpfs option is about (an option and its opposite are about the same one).
fn tmpfs_option_kind(key: &str) -> Option<&'static str> {
    Some(match key {
        "ro" | "rw" => "ro",
        "noexec" | "exec" => "exec",
        "nosuid" | "suid" => "suid",
        "nodev" | "dev" => "dev",
        "size" => "size",
        "mode" => "mode",
        "uid" => "uid",
        "gid" => "gid",
        "nr_inodes" => "nr_inodes",
        _ => return None,
    })
}

fn tmpfs_size(text: &str) -> Result<Bytes, String> {
    if text.ends_with('%') {
        return Err(format!(
            "size={text}: a share of memory is not supported; give a size such as 64m"
        ));
    }
    let size: Bytes = text
        .parse()
        .map_err(|e: ValueError| format!("size={text}: {e}"))?;
    if size.0 == 0 {
        return Err(format!("size={text}: a tmpfs needs a size above 0"));
    }
    Ok(size)
}

/// `1777`, `0755`, `755`: an octal mode of at most 12 bits.
fn octal_mode(text: &str) -> Result<u32, String> {
    let bad = || format!("mode {text:?} is not an octal file mode such as 1777 or 0755");
    if text.is_empty() || !text.chars().all(|c| c.is_digit(8)) {
        return Err(bad());
    }
    let mode = u32::from_str_radix(text, 8).map_err(|_| bad())?;
    if mode > 0o7777 {
        return Err(bad());
    }
    Ok(mode)
}

/// `nr_inodes`: a number, optionally with a `k`, `m` or `g` suffix (as tmpfs reads it).
fn check_inode_count(text: &str) -> Result<(), String> {
    let digits = text
        .strip_suffix(['k', 'K', 'm', 'M', 'g', 'G'])
        .unwrap_or(text);
    if digits.is_empty() || digits.parse::<u64>().is_err() {
        return Err(format!(
            "nr_inodes={text}: not a number (examples: 4096, 16k)"
        ));
    }
    Ok(())
}

/// A boolean as Docker reads one (Go's `strconv.ParseBool`).
fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{key}={value}: expected true or false")),
    }
}

/// The keys of `--mount`, by their canonical spelling.
const MOUNT_KEYS: &[&str] = &[
    "type",
    "source",
    "src",
    "target",
    "destination",
    "dst",
    "readonly",
    "ro",
    "bind-propagation",
    "volume-nocopy",
    "volume-driver",
    "tmpfs-size",
    "tmpfs-mode",
    "consistency",
];

/// Keys Docker knows that cleat does not implement.
const UNSUPPORTED_MOUNT_KEYS: &[&str] = &[
    "bind-nonrecursive",
    "bind-recursive",
    "bind-create-src",
    "volume-label",
    "volume-opt",
    "volume-subpath",
    "image-subpath",
    "tmpfs-options",
];

/// The fields of a `--mount` string, read but not yet checked against each other.
#[derive(Debug, Default)]
struct MountFields {
    kind: Option<MountKind>,
    source: Option<String>,
    target: Option<String>,
    read_only: bool,
    propagation: Option<String>,
    no_copy: Option<bool>,
    size: Option<Bytes>,
    mode: Option<u32>,
}

impl MountFields {
    fn parse(s: &str) -> Result<MountFields, String> {
        let mut fields = MountFields::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for item in s.split(',') {
            if item.is_empty() {
                return Err("it has an empty field (two ',' in a row, or one at an end)".into());
            }
            let (raw_key, value) = match item.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (item, None),
            };
            let key = raw_key.to_ascii_lowercase();
            let canonical = canonical_mount_key(&key)?;
            if seen.contains(&canonical) {
                return Err(format!("{canonical} is given more than once"));
            }
            seen.push(canonical);
            fields.set(canonical, &key, value)?;
        }
        Ok(fields)
    }

    fn set(&mut self, canonical: &str, key: &str, value: Option<&str>) -> Result<(), String> {
        let needs_value = || format!("{key} needs a value ({key}=…)");
        match (canonical, value) {
            ("readonly", None) => self.read_only = true,
            ("readonly", Some(v)) => self.read_only = parse_bool(key, v)?,
            ("volume-nocopy", None) => self.no_copy = Some(true),
            ("volume-nocopy", Some(v)) => self.no_copy = Some(parse_bool(key, v)?),
            (_, None) => return Err(needs_value()),
            (_, Some("")) => return Err(format!("{key} has an empty value")),
            ("type", Some(v)) => self.kind = Some(mount_type(v)?),
            ("source", Some(v)) => self.source = Some(v.to_owned()),
            ("target", Some(v)) => self.target = Some(v.to_owned()),
            ("bind-propagation", Some(v)) => {
                if !PROPAGATION_MODES.contains(&v) {
                    return Err(unknown("bind-propagation", v, PROPAGATION_MODES));
                }
                check_propagation(v)?;
                self.propagation = Some(v.to_owned());
            }
            ("volume-driver", Some("local")) => {}
            ("volume-driver", Some(v)) => {
                return Err(format!(
                    "volume-driver={v}: cleat has only the \"local\" driver"
                ));
            }
            ("tmpfs-size", Some(v)) => {
                self.size = Some(tmpfs_size(v).map_err(|e| e.replacen("size=", "tmpfs-size=", 1))?);
            }
            ("tmpfs-mode", Some(v)) => self.mode = Some(octal_mode(v)?),
            ("consistency", Some(_)) => {}
            (other, Some(_)) => return Err(format!("{other} is not supported")),
        }
        Ok(())
    }

    fn into_spec(self) -> Result<MountSpec, String> {
        let kind = self.kind.unwrap_or(MountKind::Volume);
        let target = check_target(
            self.target
                .as_deref()
                .ok_or("target is missing (target=/path/in/container)")?,
        )
        .map_err(|e| e.0)?;
        let type_name = mount_type_name(kind);
        let misplaced = |key: &str| Err(format!("{key} does not apply to type={type_name}"));
        if kind != MountKind::Bind && self.propagation.is_some() {
            return misplaced("bind-propagation");
        }
        if kind != MountKind::Volume && self.no_copy.is_some() {
            return misplaced("volume-nocopy");
        }
        if kind != MountKind::Tmpfs && self.size.is_some() {
            return misplaced("tmpfs-size");
        }
        if kind != MountKind::Tmpfs && self.mode.is_some() {
            return misplaced("tmpfs-mode");
        }
        let source = match (kind, self.source) {
            (MountKind::Bind, None) => {
                return Err("a bind mount needs a source (source=/path/on/host)".into());
            }
            (MountKind::Bind, Some(path)) => Some(check_host_path(&path).map_err(|e| e.0)?),
            (MountKind::Volume, Some(path)) if path.starts_with('/') => {
                return Err(format!(
                    "the source of a volume is a volume name, not {path:?}; for a host path use type=bind"
                ));
            }
            (MountKind::Volume, Some(name)) => {
                check_volume_name(&name).map_err(|e| e.0)?;
                Some(name)
            }
            (MountKind::Volume, None) => None,
            (MountKind::Tmpfs, Some(_)) => return Err("a tmpfs has no source".into()),
            (MountKind::Tmpfs, None) => None,
        };
        let mut spec = MountSpec::new(kind, source, target);
        spec.read_only = self.read_only;
        spec.propagation = self.propagation;
        spec.no_copy = self.no_copy.unwrap_or(false);
        spec.size = self.size;
        spec.mode = self.mode;
        check_read_only_propagation(&spec)?;
        Ok(spec)
    }
}

/// A read-only bind that receives the host's later mounts would receive them writable: the
/// read-only flag covers the mounts there are when the container starts (Docker refuses the
/// same combination for recursive read-only binds).
fn check_read_only_propagation(spec: &MountSpec) -> Result<(), String> {
    match spec.propagation.as_deref() {
        Some(mode @ ("slave" | "rslave")) if spec.read_only => Err(format!(
            "a read-only bind cannot be {mode}: what the host mounts below it later would be \
             writable in the container"
        )),
        _ => Ok(()),
    }
}

/// The canonical name of a `--mount` key (`src` is `source`, `dst` is `target`, ...).
fn canonical_mount_key(key: &str) -> Result<&'static str, String> {
    Ok(match key {
        "type" => "type",
        "source" | "src" => "source",
        "target" | "destination" | "dst" => "target",
        "readonly" | "ro" => "readonly",
        "bind-propagation" => "bind-propagation",
        "volume-nocopy" => "volume-nocopy",
        "volume-driver" => "volume-driver",
        "tmpfs-size" => "tmpfs-size",
        "tmpfs-mode" => "tmpfs-mode",
        "consistency" => "consistency",
        k if UNSUPPORTED_MOUNT_KEYS.contains(&k) => {
            return Err(format!("{k} is not supported by cleat"));
        }
        other => return Err(unknown("key", other, MOUNT_KEYS)),
    })
}

fn mount_type(text: &str) -> Result<MountKind, String> {
    match text {
        "bind" => Ok(MountKind::Bind),
        "volume" => Ok(MountKind::Volume),
        "tmpfs" => Ok(MountKind::Tmpfs),
        "npipe" | "cluster" | "image" => Err(format!(
            "type={text} is not supported by cleat (use bind, volume or tmpfs)"
        )),
        other => Err(unknown("type", other, &["bind", "volume", "tmpfs"])),
    }
}

fn mount_type_name(kind: MountKind) -> &'static str {
    match kind {
        MountKind::Bind => "bind",
        MountKind::Volume => "volume",
        MountKind::Tmpfs => "tmpfs",
    }
}

impl fmt::Display for MountSpec {
    /// A short description for messages: `bind mount of /srv`, `volume "data"`,
    /// `anonymous volume`, `tmpfs`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.source) {
            (MountKind::Bind, Some(path)) => write!(f, "the bind mount of {path}"),
            (MountKind::Bind, None) => write!(f, "a bind mount"),
            (MountKind::Volume, Some(name)) => write!(f, "volume {name:?}"),
            (MountKind::Volume, None) => write!(f, "an anonymous volume"),
            (MountKind::Tmpfs, _) => write!(f, "a tmpfs"),
        }
    }
}

/// `--volumes-from C[:ro|:rw]`: mount the volumes and bind mounts of container C at the same
/// places. Without a mode each mount keeps C's; `ro` makes them all read-only; `rw` keeps
/// them as C has them (it cannot make a read-only mount writable, as in Docker). SELinux's
/// `z`/`Z` are accepted without effect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumesFrom {
    pub container: Name,
    /// `Some(true)` for `:ro`, `Some(false)` for `:rw`.
    pub read_only: Option<bool>,
}

impl FromStr for VolumesFrom {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<VolumesFrom, ValueError> {
        let (name, mode) = match s.split_once(':') {
            Some((name, mode)) => (name, Some(mode)),
            None => (s, None),
        };
        let container: Name = name.parse()?;
        let mut read_only = None;
        for option in mode.into_iter().flat_map(|m| m.split(',')) {
            match option {
                "ro" | "rw" if read_only.is_none() => read_only = Some(option == "ro"),
                "ro" | "rw" => {
                    return Err(ValueError(format!(
                        "invalid --volumes-from {s:?}: ro and rw given together"
                    )));
                }
                "z" | "Z" => {}
                other => {
                    return Err(ValueError(format!(
                        "invalid --volumes-from {s:?}: unknown mode {other:?} (expected ro or rw)"
                    )));
                }
            }
        }
        Ok(VolumesFrom {
            container,
            read_only,
        })
    }
}

impl fmt::Display for VolumesFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.read_only {
            None => write!(f, "{}", self.container),
            Some(true) => write!(f, "{}:ro", self.container),
            Some(false) => write!(f, "{}:rw", self.container),
        }
    }
}

crate::spec::value::serde_via_str!(VolumesFrom);

/// A plain container name: its mounts as they are.
impl From<&Name> for VolumesFrom {
    fn from(container: &Name) -> VolumesFrom {
        VolumesFrom {
            container: container.clone(),
            read_only: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(s: &str) -> MountSpec {
        MountSpec::parse_volume(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn vol_err(s: &str) -> String {
        match MountSpec::parse_volume(s) {
            Ok(m) => panic!("{s} was accepted: {m:?}"),
            Err(e) => e.0,
        }
    }

    fn mount(s: &str) -> MountSpec {
        MountSpec::parse_mount(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn mount_err(s: &str) -> String {
        match MountSpec::parse_mount(s) {
            Ok(m) => panic!("{s} was accepted: {m:?}"),
            Err(e) => e.0,
        }
    }

    fn tmpfs(s: &str) -> MountSpec {
        MountSpec::parse_tmpfs(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn tmpfs_err(s: &str) -> String {
        match MountSpec::parse_tmpfs(s) {
            Ok(m) => panic!("{s} was accepted: {m:?}"),
            Err(e) => e.0,
        }
    }

    #[track_caller]
    fn says(message: &str, needles: &[&str]) {
        for n in needles {
            assert!(message.contains(n), "{message:?} does not say {n:?}");
        }
    }

    #[test]
    fn volume_bind_mounts() {
        let m = vol("/srv/www:/usr/share/nginx/html");
        assert_eq!(m.kind, MountKind::Bind);
        assert_eq!(m.source.as_deref(), Some("/srv/www"));
        assert_eq!(m.target, "/usr/share/nginx/html");
        assert!(!m.read_only && !m.no_copy && m.propagation.is_none());

        let m = vol("/srv/www:/html:ro");
        assert!(m.read_only);
        assert!(!vol("/srv/www:/html:rw").read_only);
        assert_eq!(
            vol("/a:/b:rslave,rw").propagation.as_deref(),
            Some("rslave")
        );
        says(
            &vol_err("/a:/b:rshared"),
            &["rshared is not supported", "rslave"],
        );
        says(
            &vol_err("/a:/b:ro,rslave"),
            &["read-only bind cannot be rslave"],
        );
        says(
            &mount_err("type=bind,src=/a,dst=/b,readonly,bind-propagation=slave"),
            &["read-only bind cannot be slave"],
        );
        says(
            &mount_err("type=bind,src=/a,dst=/b,bind-propagation=shared"),
            &["shared is not supported"],
        );
        let m = vol("/a:/b:ro,Z");
        assert!(m.read_only);
        assert!(!vol("/a:/b:z").read_only);
        assert!(
            !vol("/a:/b:").read_only,
            "empty options are no options (as in Docker)"
        );
        // Cleaned as Docker does, on both sides.
        let m = vol("//srv/./www/:/data//sub/./");
        assert_eq!(m.source.as_deref(), Some("/srv/www"));
        assert_eq!(m.target, "/data/sub");
        assert_eq!(vol("/srv/a/../b:/x").source.as_deref(), Some("/srv/b"));
        // The host's /proc may be bound somewhere else.
        assert_eq!(vol("/proc:/host/proc:ro").source.as_deref(), Some("/proc"));
    }

    #[test]
    fn volume_named_and_anonymous() {
        let m = vol("data:/var/lib/db");
        assert_eq!(m.kind, MountKind::Volume);
        assert_eq!(m.source.as_deref(), Some("data"));
        let m = vol("my_vol.1-x:/d:ro,nocopy");
        assert!(m.read_only && m.no_copy);
        let m = vol("/var/cache");
        assert_eq!(m.kind, MountKind::Volume);
        assert_eq!(m.source, None);
        assert_eq!(m.target, "/var/cache");
        let long = "a".repeat(VOLUME_NAME_MAX);
        assert_eq!(vol(&format!("{long}:/d")).source, Some(long));
    }

    #[test]
    fn volume_errors_name_what_is_wrong() {
        says(
            &vol_err("./x:/y"),
            &["\"./x:/y\"", "absolute", "volume name"],
        );
        says(&vol_err("~/x:/y"), &["\"~/x\"", "absolute"]);
        says(&vol_err("x y:/y"), &["\"x y\""]);
        says(&vol_err("_x:/y"), &["\"_x\""]);
        says(&vol_err("data:y"), &["\"y\"", "not absolute"]);
        says(&vol_err("data"), &["\"data\"", "not absolute"]);
        says(&vol_err("/a:./b"), &["not absolute"]);
        says(&vol_err("/a:/b/../c"), &["\"..\""]);
        says(&vol_err("/a:/proc"), &["cannot mount over /proc"]);
        says(
            &vol_err("/a:/proc/sys"),
            &["cannot mount over /proc/sys", "inside /proc"],
        );
        says(&vol_err("/a:/dev"), &["cannot mount over /dev"]);
        says(&vol_err("/a:/dev/pts/0"), &["inside /dev/pts"]);
        assert_eq!(vol("/a:/dev/shm").target, "/dev/shm");
        says(&vol_err("/a:/sys"), &["cannot mount over /sys"]);
        says(&vol_err("/a:/"), &["cannot mount over /"]);
        says(&vol_err("/a://"), &["cannot mount over /"]);
        says(&vol_err("/a:/b:rx"), &["unknown option \"rx\"", "\"ro\""]);
        says(
            &vol_err("/a:/b:banana"),
            &["unknown option \"banana\"", "expected one of"],
        );
        says(&vol_err("/a:/b:ro,rw"), &["more than once"]);
        says(&vol_err("/a:/b:ro,,z"), &["empty option"]);
        says(&vol_err("/a:/b:private,slave"), &["more than once"]);
        says(&vol_err("/a:/b:nocopy"), &["nocopy", "volumes"]);
        says(&vol_err("v:/b:rshared"), &["propagation", "bind"]);
        says(&vol_err("/data:ro"), &["anonymous volume", "\"ro\""]);
        says(&vol_err("/a:/b:ro:x"), &["too many ':'"]);
        says(&vol_err(":/b"), &["source", "empty"]);
        says(&vol_err(""), &["empty"]);
        says(
            &vol_err(&format!("{}:/d", "a".repeat(VOLUME_NAME_MAX + 1))),
            &["longer"],
        );
        // The source is not mistaken for options: `a:b` with `b` relative is a bad target.
        says(&vol_err("data:ro"), &["\"ro\"", "anonymous volume"]);
    }

    #[test]
    fn targets_near_reserved_paths_are_fine() {
        assert_eq!(vol("/a:/proc2").target, "/proc2");
        assert_eq!(vol("/a:/devices").target, "/devices");
        assert_eq!(vol("/a:/sys/fs/x").target, "/sys/fs/x");
        assert_eq!(vol("/a:/system").target, "/system");
    }

    #[test]
    fn mount_long_form() {
        let m = mount("type=bind,source=/a,target=/b,readonly");
        assert_eq!(
            (m.kind, m.source.as_deref(), m.target.as_str(), m.read_only),
            (MountKind::Bind, Some("/a"), "/b", true)
        );
        let m = mount("type=bind,src=/a/,dst=/b,ro=true,bind-propagation=rprivate");
        assert_eq!(m.source.as_deref(), Some("/a"));
        assert!(m.read_only);
        assert_eq!(m.propagation.as_deref(), Some("rprivate"));
        assert!(!mount("type=bind,src=/a,destination=/b,readonly=false").read_only);
        assert!(mount("type=bind,src=/a,destination=/b,ro=1").read_only);
        // Keys are case-insensitive; the type defaults to volume.
        let m = mount("Source=data,Target=/d,volume-nocopy");
        assert_eq!(
            (m.kind, m.source.as_deref(), m.no_copy),
            (MountKind::Volume, Some("data"), true)
        );
        assert!(!mount("src=data,dst=/d,volume-nocopy=false").no_copy);
        let m = mount("type=volume,target=/cache,volume-driver=local,consistency=cached");
        assert_eq!((m.kind, m.source.as_deref()), (MountKind::Volume, None));
        let m = mount("type=tmpfs,target=/run,tmpfs-size=64m,tmpfs-mode=1770");
        assert_eq!(m.kind, MountKind::Tmpfs);
        assert_eq!(m.size, Some(Bytes(64 << 20)));
        assert_eq!(m.mode, Some(0o1770));
        // A TOML table becomes the same string, booleans spelled out.
        let m = mount("type=bind,source=/srv,target=/data,readonly=true");
        assert!(m.read_only);
    }

    #[test]
    fn mount_errors_name_what_is_wrong() {
        says(
            &mount_err("type=bind,sorce=/a,target=/b"),
            &["unknown key \"sorce\"", "did you mean \"source\""],
        );
        says(
            &mount_err("type=bind,target=/b,colour=red"),
            &["unknown key \"colour\"", "expected one of"],
        );
        says(&mount_err("type=bind,target=/b"), &["needs a source"]);
        says(
            &mount_err("type=bind,source=a,target=/b"),
            &["\"a\"", "not absolute"],
        );
        says(&mount_err("type=bind,source=/a"), &["target is missing"]);
        says(
            &mount_err("type=bind,source=/a,target=b"),
            &["not absolute"],
        );
        says(
            &mount_err("type=bind,source=/a,target=/dev/pts"),
            &["cannot mount over /dev/pts"],
        );
        says(
            &mount_err("type=bind,source=/a,target=/proc"),
            &["cannot mount over /proc"],
        );
        says(
            &mount_err("type=bond,source=/a,target=/b"),
            &["unknown type \"bond\"", "\"bind\""],
        );
        says(
            &mount_err("type=npipe,source=/a,target=/b"),
            &["not supported"],
        );
        says(
            &mount_err("type=bind,source=/a,target=/b,readonly=maybe"),
            &["readonly=maybe", "true or false"],
        );
        says(
            &mount_err("type=bind,source=/a,target=/b,bind-propagation=sideways"),
            &["\"sideways\""],
        );
        says(
            &mount_err("type=bind,source=/a,target=/b,volume-nocopy"),
            &["volume-nocopy", "type=bind"],
        );
        says(
            &mount_err("type=volume,target=/b,bind-propagation=shared"),
            &["bind-propagation", "type=volume"],
        );
        says(
            &mount_err("type=volume,target=/b,tmpfs-size=1m"),
            &["tmpfs-size", "type=volume"],
        );
        says(
            &mount_err("type=bind,source=/a,target=/b,tmpfs-mode=700"),
            &["tmpfs-mode", "type=bind"],
        );
        says(
            &mount_err("type=volume,source=/a,target=/b"),
            &["volume name", "type=bind"],
        );
        says(&mount_err("type=volume,source=a b,target=/b"), &["\"a b\""]);
        says(&mount_err("type=tmpfs,source=x,target=/b"), &["no source"]);
        says(
            &mount_err("type=tmpfs,target=/b,tmpfs-mode=999"),
            &["\"999\"", "octal"],
        );
        says(
            &mount_err("type=tmpfs,target=/b,tmpfs-mode=17777"),
            &["octal"],
        );
        says(
            &mount_err("type=tmpfs,target=/b,tmpfs-size=lots"),
            &["tmpfs-size", "lots"],
        );
        says(
            &mount_err("type=volume,target=/b,volume-driver=nfs"),
            &["local"],
        );
        says(
            &mount_err("type=volume,target=/b,volume-label=a=b"),
            &["volume-label", "not supported"],
        );
        says(
            &mount_err("type=bind,source=/a,target=/b,target=/c"),
            &["target", "more than once"],
        );
        says(
            &mount_err("type=bind,src=/a,source=/c,target=/b"),
            &["source", "more than once"],
        );
        says(
            &mount_err("type=bind,,source=/a,target=/b"),
            &["empty field"],
        );
        says(
            &mount_err("type,source=/a,target=/b"),
            &["type needs a value"],
        );
        says(
            &mount_err("type=bind,source=,target=/b"),
            &["source has an empty value"],
        );
        says(&mount_err(""), &["empty field"]);
    }

    #[test]
    fn tmpfs_options() {
        let m = tmpfs("/run");
        assert_eq!(
            (m.kind, m.target.as_str(), m.size, m.mode),
            (MountKind::Tmpfs, "/run", None, None)
        );
        assert!(m.options.is_empty() && !m.read_only);
        let m = tmpfs("/run:rw,size=64m,mode=1777,noexec");
        assert_eq!(m.size, Some(Bytes(64 << 20)));
        assert_eq!(m.mode, Some(0o1777));
        assert_eq!(m.options, ["noexec"]);
        assert!(!m.read_only);
        let m = tmpfs("/scratch:ro,exec,suid,dev,uid=1000,gid=1000,nr_inodes=16k,mode=0700");
        assert!(m.read_only);
        assert_eq!(m.mode, Some(0o700));
        assert_eq!(
            m.options,
            [
                "exec",
                "suid",
                "dev",
                "uid=1000",
                "gid=1000",
                "nr_inodes=16k"
            ]
        );
    }

    #[test]
    fn tmpfs_errors_name_what_is_wrong() {
        says(&tmpfs_err("run"), &["not absolute"]);
        says(&tmpfs_err("/proc"), &["cannot mount over /proc"]);
        says(
            &tmpfs_err("/run:sise=1m"),
            &["unknown option \"sise\"", "\"size\""],
        );
        says(&tmpfs_err("/run:size=lots"), &["size=lots"]);
        says(&tmpfs_err("/run:size=50%"), &["size=50%", "64m"]);
        says(&tmpfs_err("/run:size=0"), &["above 0"]);
        says(&tmpfs_err("/run:mode=8"), &["\"8\"", "octal"]);
        says(&tmpfs_err("/run:mode="), &["octal"]);
        says(&tmpfs_err("/run:size"), &["size needs a value"]);
        says(&tmpfs_err("/run:noexec=1"), &["noexec takes no value"]);
        says(&tmpfs_err("/run:exec,noexec"), &["\"noexec\"", "again"]);
        says(&tmpfs_err("/run:uid=me"), &["uid=me", "not a number"]);
        says(&tmpfs_err("/run:nr_inodes=x"), &["nr_inodes=x"]);
        says(&tmpfs_err("/run:ro,,size=1m"), &["empty option"]);
    }

    #[test]
    fn volume_names() {
        for good in ["a", "data", "A1", "my_vol", "v.1-2", "0abc"] {
            check_volume_name(good).unwrap();
        }
        for bad in ["", "-a", ".a", "_a", "a/b", "a b", "a:b", "ä"] {
            assert!(check_volume_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn volumes_from() {
        let v: VolumesFrom = "db".parse().unwrap();
        assert_eq!(v.read_only, None);
        assert_eq!(v.to_string(), "db");
        let v: VolumesFrom = "db:ro".parse().unwrap();
        assert_eq!(v.read_only, Some(true));
        assert_eq!(v.to_string(), "db:ro");
        let v: VolumesFrom = "db:rw,z".parse().unwrap();
        assert_eq!(v.read_only, Some(false));
        assert!(
            "db:rx"
                .parse::<VolumesFrom>()
                .unwrap_err()
                .0
                .contains("\"rx\"")
        );
        assert!("db:ro,rw".parse::<VolumesFrom>().is_err());
        assert!("d b".parse::<VolumesFrom>().is_err());
        let name: Name = "web".parse().unwrap();
        assert_eq!(
            VolumesFrom::from(&name),
            VolumesFrom {
                container: name,
                read_only: None
            }
        );
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<VolumesFrom>(&json).unwrap(), v);
    }

    #[test]
    fn specs_round_trip_through_json() {
        for m in [
            vol("/a:/b:ro,rprivate"),
            vol("data:/d:nocopy"),
            vol("/anon"),
            tmpfs("/run:size=1m,mode=755,noexec"),
        ] {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(
                serde_json::from_str::<MountSpec>(&json).unwrap(),
                m,
                "{json}"
            );
        }
    }

    #[test]
    fn descriptions_for_messages() {
        assert_eq!(vol("/srv:/d").to_string(), "the bind mount of /srv");
        assert_eq!(vol("data:/d").to_string(), "volume \"data\"");
        assert_eq!(vol("/d").to_string(), "an anonymous volume");
        assert_eq!(tmpfs("/d").to_string(), "a tmpfs");
    }
}
