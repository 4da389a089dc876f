//! The keys of a container definition: which exist, what each accepts, and how its value becomes
//! part of a [`Spec`]. Values are parsed by the types of [`crate::spec::value`], so TOML and
//! command-line flags accept the same spellings; this module adds the TOML side (types,
//! positions, messages). To add a key, add a [`Field`] to [`TOP_LEVEL`] (or to a table's list).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::error::Problem;
use super::show::{scalar_text, toml_float, toml_key, toml_string};
use super::suggest::suggest;
use super::tree::{Node, Pos, Table, Value};
use crate::spec::value::ValueError;
use crate::spec::{Bytes, Count, Cpus, Limit, Name, Notify, Signal, Source, Spec, Timeout};

/// One known key of a table.
struct Field {
    key: &'static str,
    kind: Kind,
}

enum Kind {
    /// A value, checked and stored into the draft by this function.
    Value(fn(&mut Reader<'_>, &Node, &mut Draft)),
    /// A table with its own known keys.
    Table(&'static [Field]),
}

const fn value(key: &'static str, read: fn(&mut Reader<'_>, &Node, &mut Draft)) -> Field {
    Field {
        key,
        kind: Kind::Value(read),
    }
}

const fn table(key: &'static str, fields: &'static [Field]) -> Field {
    Field {
        key,
        kind: Kind::Table(fields),
    }
}

/// The keys of a definition file, in the order `cleat.toml(5)` documents them.
const TOP_LEVEL: &[Field] = &[
    value("image", |r, n, d| d.image = r.image(n).map(|s| (s, n.pos))),
    value("rootfs", |r, n, d| {
        d.rootfs = r.checked(n, absolute_path).map(|p| (p, n.pos))
    }),
    value("entrypoint", |r, n, d| d.spec.entrypoint = r.strings(n)),
    value("command", |r, n, d| d.spec.command = r.strings(n)),
    value("env", |r, n, d| r.env(n, d)),
    value("env-files", |r, n, d| {
        if let Some(files) = r.list(n, "an array of absolute paths", absolute_path) {
            d.spec.env_files = files;
        }
    }),
    value("working-dir", |r, n, d| {
        d.spec.working_dir = r.checked(n, |s| absolute_path(s).map(|_| s.to_owned()));
    }),
    value("user", |r, n, d| d.spec.user = r.user(n)),
    value("hostname", |r, n, d| {
        d.spec.hostname = r.checked(n, |s| {
            crate::spec::value::check_hostname(s)
                .map(|()| s.to_owned())
                .map_err(|e| e.0)
        });
    }),
    value("domainname", |r, n, d| {
        d.spec.domainname = r.checked(n, |s| {
            crate::spec::value::check_hostname(s)
                .map(|()| s.to_owned())
                .map_err(|e| e.0.replace("hostname", "domain name"))
        });
    }),
    value("network", |r, n, d| {
        d.spec.network = r.string(n).and_then(|s| r.parse(n, s));
    }),
    value("ports", |r, n, d| {
        r.parse_list(
            n,
            "an array of published ports (\"8080:80\", \"127.0.0.1:53:53/udp\")",
            |s| s.parse::<crate::network::ports::PortSpec>(),
            &mut d.spec.ports,
        );
        if let Err(e) = crate::network::ports::check_conflicts(&d.spec.ports) {
            r.problem(n.pos, e.0);
        }
    }),
    value("publish-all", |r, n, d| d.spec.publish_all = r.boolean(n)),
    value("add-host", |r, n, d| {
        r.parse_list(
            n,
            "an array of host entries (\"db:10.0.0.5\")",
            |s| crate::spec::parse_add_host(s).map(|_| s.to_owned()),
            &mut d.spec.add_hosts,
        )
    }),
    value("dns", |r, n, d| {
        r.parse_list(
            n,
            "an array of name servers (\"1.1.1.1\")",
            |s| {
                s.parse::<std::net::IpAddr>().map_err(|_| {
                    crate::spec::value::ValueError(format!(
                        "invalid name server {s:?} (an IP address)"
                    ))
                })
            },
            &mut d.spec.dns,
        )
    }),
    value("network-aliases", |r, n, d| {
        r.parse_list(
            n,
            "an array of names (\"db\")",
            |s| crate::spec::value::check_alias(s).map(|()| s.to_owned()),
            &mut d.spec.network_aliases,
        )
    }),
    value("ip", |r, n, d| {
        d.spec.ip = r.checked(n, |s| {
            s.parse::<std::net::Ipv4Addr>()
                .map_err(|_| format!("invalid IPv4 address {s:?}"))
        });
    }),
    value("ip6", |r, n, d| {
        d.spec.ip6 = r.checked(n, |s| {
            s.parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("invalid IPv6 address {s:?}"))
        });
    }),
    value("dns-search", |r, n, d| {
        if let Some(v) = r.strings(n) {
            d.spec.dns_search = v;
        }
    }),
    value("dns-option", |r, n, d| {
        if let Some(v) = r.strings(n) {
            d.spec.dns_options = v;
        }
    }),
    value("read-only", |r, n, d| d.spec.read_only = r.boolean(n)),
    value("volumes", |r, n, d| {
        r.parse_list(
            n,
            "an array of volumes (\"/host/path:/in/container:ro\", \"name:/path\")",
            crate::spec::MountSpec::parse_volume,
            &mut d.spec.volumes,
        )
    }),
    value("mounts", |r, n, d| {
        if let Some(v) = r.mounts(n) {
            d.spec.mounts = v;
        }
    }),
    value("tmpfs", |r, n, d| {
        r.parse_list(
            n,
            "an array of tmpfs mounts (\"/run:size=64m\")",
            crate::spec::MountSpec::parse_tmpfs,
            &mut d.spec.tmpfs,
        )
    }),
    value("volumes-from", |r, n, d| {
        r.parse_list(
            n,
            "an array of container names (\"db\", \"db:ro\")",
            str::parse,
            &mut d.spec.volumes_from,
        )
    }),
    value("cap-add", |r, n, d| {
        r.parse_list(
            n,
            "an array of capabilities (\"NET_ADMIN\", \"ALL\")",
            crate::runtime::caps::canonical,
            &mut d.spec.cap_add,
        )
    }),
    value("cap-drop", |r, n, d| {
        r.parse_list(
            n,
            "an array of capabilities (\"NET_RAW\", \"ALL\")",
            crate::runtime::caps::canonical,
            &mut d.spec.cap_drop,
        )
    }),
    value("seccomp", |r, n, d| {
        d.spec.seccomp = r.string(n).and_then(|s| r.parse(n, s));
    }),
    value("no-new-privileges", |r, n, d| {
        d.spec.no_new_privileges = r.boolean(n)
    }),
    value("ulimits", |r, n, d| r.ulimits(n, d)),
    value("group-add", |r, n, d| {
        if let Some(v) = r.list(n, "an array of group names or numbers", |s| {
            if s.is_empty() || s.contains(':') || s.contains(char::is_whitespace) {
                Err(format!("invalid group {s:?}"))
            } else {
                Ok(s.to_owned())
            }
        }) {
            d.spec.group_add = v;
        }
    }),
    value("init", |r, n, d| d.spec.init = r.boolean(n)),
    value("tty", |r, n, d| d.spec.tty = r.boolean(n)),
    value("interactive", |r, n, d| d.spec.interactive = r.boolean(n)),
    value("notify", |r, n, d| d.spec.notify = r.notify(n)),
    value("pull", |r, n, d| {
        d.spec.pull = r.string(n).and_then(|s| r.parse(n, s));
    }),
    value("stop-signal", |r, n, d| d.spec.stop_signal = r.signal(n)),
    value("stop-timeout", |r, n, d| d.spec.stop_timeout = r.timeout(n)),
    value("start-timeout", |r, n, d| {
        d.spec.start_timeout = r.timeout(n)
    }),
    value("restart", |r, n, d| {
        d.spec.restart = r.string(n).and_then(|s| r.parse(n, s))
    }),
    value("restart-delay", |r, n, d| {
        d.spec.restart_delay = r.timeout(n)
    }),
    value("memory", |r, n, d| d.spec.memory = r.memory(n)),
    value("cpus", |r, n, d| d.spec.cpus = r.cpus(n)),
    value("pids-limit", |r, n, d| d.spec.pids_limit = r.pids_limit(n)),
    value("depends-on", |r, n, d| {
        if let Some(names) = r.depends_on(n) {
            d.spec.depends_on = names;
        }
    }),
    value("description", |r, n, d| {
        d.spec.description = r.checked(n, |s| single_line(s).map(|()| s.to_owned()));
    }),
    value("name", |r, n, _| r.reject_name(n)),
    table("unit", UNIT),
    table("install", INSTALL),
];

/// `[unit]`: dependencies on arbitrary systemd units.
const UNIT: &[Field] = &[
    value("after", |r, n, d| r.units(n, &mut d.spec.unit.after)),
    value("before", |r, n, d| r.units(n, &mut d.spec.unit.before)),
    value("requires", |r, n, d| r.units(n, &mut d.spec.unit.requires)),
    value("wants", |r, n, d| r.units(n, &mut d.spec.unit.wants)),
    value("binds-to", |r, n, d| r.units(n, &mut d.spec.unit.binds_to)),
    value("part-of", |r, n, d| r.units(n, &mut d.spec.unit.part_of)),
    value("conflicts", |r, n, d| {
        r.units(n, &mut d.spec.unit.conflicts)
    }),
];

/// `[install]`: what enabling the container hooks it into.
const INSTALL: &[Field] = &[
    value("wanted-by", |r, n, d| {
        r.units(n, &mut d.spec.install.wanted_by)
    }),
    value("required-by", |r, n, d| {
        r.units(n, &mut d.spec.install.required_by)
    }),
];

/// What a definition said, before the source (image or rootfs) is settled.
pub(super) struct Draft {
    /// Everything but `source`, which holds a placeholder until [`Draft::into_spec`].
    spec: Spec,
    image: Option<(String, Pos)>,
    rootfs: Option<(PathBuf, Pos)>,
}

impl Draft {
    fn new(name: Name) -> Draft {
        Draft {
            spec: Spec::new(name, Source::Image(String::new())),
            image: None,
            rootfs: None,
        }
    }

    /// The spec, once exactly one of `image` and `rootfs` is set. `files` are the definition's
    /// files, main file first.
    pub fn into_spec(self, files: &[PathBuf]) -> Result<Spec, Problem> {
        let Draft {
            mut spec,
            image,
            rootfs,
        } = self;
        spec.source = match (image, rootfs) {
            (Some((image, _)), None) => Source::Image(image),
            (None, Some((rootfs, _))) => Source::Rootfs(rootfs),
            (None, None) => {
                return Err(Problem::Invalid {
                    path: file(files, 0),
                    at: None,
                    key: None,
                    message: "no image or rootfs: set one, such as image = \"docker.io/library/nginx:1.27\" or rootfs = \"/srv/rootfs\"".into(),
                });
            }
            (Some((_, image)), Some((_, rootfs))) => {
                let ((key, at), (other, other_at)) = if image > rootfs {
                    (("image", image), ("rootfs", rootfs))
                } else {
                    (("rootfs", rootfs), ("image", image))
                };
                return Err(Problem::Invalid {
                    path: file(files, at.file),
                    at: Some(at.at),
                    key: Some(key.into()),
                    message: format!(
                        "conflicts with {other} set at {}:{}: a container has an image or a rootfs, not both",
                        file(files, other_at.file).display(),
                        other_at.at
                    ),
                });
            }
        };
        Ok(spec)
    }
}

fn file(files: &[PathBuf], index: usize) -> PathBuf {
    files.get(index).cloned().unwrap_or_default()
}

/// Checks `root` (one file, or the merge of a definition's files) against the schema. Returns
/// what it said and every problem found; `files` name the positions' file numbers.
pub(super) fn read(root: &Table, files: &[PathBuf], name: &Name) -> (Draft, Vec<Problem>) {
    let mut reader = Reader {
        files,
        name,
        path: Vec::new(),
        problems: Vec::new(),
    };
    let mut draft = Draft::new(name.clone());
    reader.fields(root, TOP_LEVEL, &mut draft);
    (draft, reader.problems)
}

/// One step of a key path: `unit`, `after`, `[1]`.
enum Segment {
    Key(String),
    Index(usize),
}

/// Walks a table against its fields, tracking the key path for messages.
struct Reader<'a> {
    files: &'a [PathBuf],
    name: &'a Name,
    path: Vec<Segment>,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn fields(&mut self, table: &Table, fields: &[Field], draft: &mut Draft) {
        for entry in &table.entries {
            let Some(field) = fields.iter().find(|f| f.key == entry.key) else {
                let message = self.unknown_key(&entry.key, fields);
                self.problem_without_key(entry.key_pos, message);
                continue;
            };
            self.within(Segment::Key(entry.key.clone()), |r| match field.kind {
                Kind::Value(read) => read(r, &entry.node, draft),
                Kind::Table(sub) => {
                    if let Some(t) = r.table(&entry.node, "a table") {
                        r.fields(t, sub, draft);
                    }
                }
            });
        }
    }

    /// "unknown key", with the likeliest fix: a typo, a key that belongs in another table, or
    /// (at worst) where to look.
    fn unknown_key(&self, key: &str, fields: &[Field]) -> String {
        let quoted = toml_string(key);
        let names = || fields.iter().map(|f| f.key);
        if self.path.is_empty() {
            if let Some(table) = table_holding(key) {
                return format!("unknown key {quoted} (it belongs in the [{table}] table)");
            }
            return match suggest(key, names()) {
                Some(near) => format!("unknown key {quoted} (did you mean \"{near}\"?)"),
                None => format!("unknown key {quoted} (see cleat.toml(5) for the keys)"),
            };
        }
        let table = self.key();
        if TOP_LEVEL.iter().any(|f| f.key == key) {
            return format!(
                "unknown key {quoted} in [{table}] ({key} is a top-level key: move it above the first [table] header)"
            );
        }
        match suggest(key, names()) {
            Some(near) => format!("unknown key {quoted} in [{table}] (did you mean \"{near}\"?)"),
            None => {
                let valid: Vec<_> = names().collect();
                format!(
                    "unknown key {quoted} in [{table}] (valid: {})",
                    valid.join(", ")
                )
            }
        }
    }

    fn within<T>(&mut self, segment: Segment, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(segment);
        let result = f(self);
        self.path.pop();
        result
    }

    /// The current key path as written in TOML: `env.PORT`, `unit.after[1]`.
    fn key(&self) -> String {
        let mut out = String::new();
        for segment in &self.path {
            match segment {
                Segment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&toml_key(k));
                }
                Segment::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }

    fn problem(&mut self, pos: Pos, message: impl Into<String>) {
        let key = Some(self.key()).filter(|k| !k.is_empty());
        self.push(pos, key, message.into());
    }

    fn problem_without_key(&mut self, pos: Pos, message: String) {
        self.push(pos, None, message);
    }

    fn push(&mut self, pos: Pos, key: Option<String>, message: String) {
        self.problems.push(Problem::Invalid {
            path: file(self.files, pos.file),
            at: Some(pos.at),
            key,
            message,
        });
    }

    fn wrong_type(&mut self, node: &Node, expected: &str) {
        self.wrong_type_hint(node, expected, String::new());
    }

    fn wrong_type_hint(&mut self, node: &Node, expected: &str, hint: String) {
        let found = node.value.type_name();
        let hint = if hint.is_empty() {
            hint
        } else {
            format!(" ({hint})")
        };
        self.problem(
            node.pos,
            format!("expected {expected}, found {found}{hint}"),
        );
    }

    /// How to write `text` as a string at the current key: `write PORT = "8080"`.
    fn quote_hint(&self, text: &str) -> String {
        match self.path.last() {
            Some(Segment::Key(k)) => format!("write {} = {}", toml_key(k), toml_string(text)),
            _ => format!("write {}", toml_string(text)),
        }
    }

    // --- Types ---------------------------------------------------------------------------------

    fn string<'n>(&mut self, node: &'n Node) -> Option<&'n str> {
        match &node.value {
            Value::String(s) if s.contains('\0') => {
                self.problem(node.pos, "must not contain a NUL character (\\u0000)");
                None
            }
            Value::String(s) => Some(s),
            other => {
                let hint = scalar_text(other)
                    .map(|text| self.quote_hint(&text))
                    .unwrap_or_default();
                self.wrong_type_hint(node, "a string", hint);
                None
            }
        }
    }

    fn table<'n>(&mut self, node: &'n Node, expected: &str) -> Option<&'n Table> {
        match &node.value {
            Value::Table(t) => Some(t),
            _ => {
                self.wrong_type(node, expected);
                None
            }
        }
    }

    /// A string that `check` accepts (or turns into a `T`).
    fn checked<T>(
        &mut self,
        node: &Node,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(node)?;
        check(s)
            .map_err(|message| self.problem(node.pos, message))
            .ok()
    }

    /// A string (or the text of a number) parsed by one of the spec's value types.
    fn parse<T: FromStr<Err = ValueError>>(&mut self, node: &Node, text: &str) -> Option<T> {
        text.parse()
            .map_err(|e: ValueError| self.problem(node.pos, e.0))
            .ok()
    }

    /// An array of strings, each accepted by `check`. `expected` describes the whole array.
    fn list<T>(
        &mut self,
        node: &Node,
        expected: &str,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let Value::Array(items) = &node.value else {
            self.wrong_type(node, expected);
            return None;
        };
        let mut values = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(v) = self.within(Segment::Index(i), |r| r.checked(item, &check)) {
                values.push(v);
            }
        }
        (values.len() == items.len()).then_some(values)
    }

    /// An array of strings, each parsed by one of the spec's value parsers, stored in `into` if
    /// every one is valid (each that is not is a problem).
    fn parse_list<T>(
        &mut self,
        node: &Node,
        expected: &str,
        parse: impl Fn(&str) -> Result<T, ValueError>,
        into: &mut Vec<T>,
    ) {
        if let Some(values) = self.list(node, expected, |s| parse(s).map_err(|e| e.0)) {
            *into = values;
        }
    }

    fn strings(&mut self, node: &Node) -> Option<Vec<String>> {
        self.list(node, "an array of strings", |s| Ok(s.to_owned()))
    }

    // --- Keys ----------------------------------------------------------------------------------

    fn image(&mut self, node: &Node) -> Option<String> {
        self.checked(node, |s| match s.trim() {
            "" => Err("an image reference cannot be empty".into()),
            t if t != s => Err(format!(
                "invalid image reference {s:?}: remove the surrounding spaces"
            )),
            _ => Ok(s.to_owned()),
        })
    }

    fn env(&mut self, node: &Node, draft: &mut Draft) {
        let Some(table) = (match &node.value {
            Value::Array(_) => {
                let hint = "write [env] and below it one NAME = \"value\" per line".into();
                self.wrong_type_hint(node, "a table of strings", hint);
                None
            }
            _ => self.table(node, "a table of strings"),
        }) else {
            return;
        };
        for entry in &table.entries {
            self.within(Segment::Key(entry.key.clone()), |r| {
                if let Err(message) = check_env_name(&entry.key) {
                    r.problem(entry.key_pos, message);
                } else if let Some(value) = r.string(&entry.node) {
                    draft.spec.env.insert(entry.key.clone(), value.to_owned());
                }
            });
        }
    }

    fn boolean(&mut self, node: &Node) -> Option<bool> {
        match &node.value {
            Value::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(node, "true or false");
                None
            }
        }
    }

    /// `mounts`: each either Docker's `--mount` string or a table of the same keys
    /// (`{ type = "bind", source = "/srv", target = "/data", readonly = true }`).
    fn mounts(&mut self, node: &Node) -> Option<Vec<crate::spec::MountSpec>> {
        let Value::Array(items) = &node.value else {
            self.wrong_type(node, "an array of mounts");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let parsed = self.within(Segment::Index(i), |r| {
                let text = match &item.value {
                    Value::String(s) => s.clone(),
                    Value::Table(t) => r.mount_table_text(t)?,
                    _ => {
                        r.wrong_type(
                            item,
                            "a mount: \"type=bind,source=/a,target=/b\" or a table",
                        );
                        return None;
                    }
                };
                crate::spec::MountSpec::parse_mount(&text)
                    .map_err(|e| r.problem(item.pos, e.0))
                    .ok()
            });
            out.extend(parsed);
        }
        (out.len() == items.len()).then_some(out)
    }

    /// A mount table as the `--mount` string it stands for.
    fn mount_table_text(&mut self, table: &Table) -> Option<String> {
        let mut parts = Vec::new();
        for entry in &table.entries {
            match &entry.node.value {
                Value::String(s) if s.contains(',') => {
                    self.problem(
                        entry.node.pos,
                        format!("{}: a value cannot contain ','", entry.key),
                    );
                    return None;
                }
                Value::String(s) => parts.push(format!("{}={s}", entry.key)),
                Value::Integer(n) => parts.push(format!("{}={n}", entry.key)),
                Value::Boolean(b) => parts.push(format!("{}={b}", entry.key)),
                _ => {
                    self.wrong_type(&entry.node, "a string, number or boolean");
                    return None;
                }
            }
        }
        Some(parts.join(","))
    }

    /// `[ulimits]`: `nofile = 1024` or `nofile = "1024:2048"`.
    fn ulimits(&mut self, node: &Node, draft: &mut Draft) {
        let Some(table) = self.table(node, "a table of limits (nofile = \"1024:2048\")") else {
            return;
        };
        for entry in &table.entries {
            self.within(Segment::Key(entry.key.clone()), |r| {
                if let Err(e) = crate::spec::Ulimit::resource(&entry.key) {
                    r.problem(entry.key_pos, e.0);
                    return;
                }
                let text = match &entry.node.value {
                    Value::Integer(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => {
                        r.wrong_type(&entry.node, "a number or \"SOFT:HARD\"");
                        return;
                    }
                };
                if let Some(limit) = r.parse::<crate::spec::Ulimit>(&entry.node, &text) {
                    draft
                        .spec
                        .ulimits
                        .insert(entry.key.to_ascii_lowercase(), limit);
                }
            });
        }
    }

    fn user(&mut self, node: &Node) -> Option<String> {
        match &node.value {
            Value::Integer(uid) => match u32::try_from(*uid) {
                Ok(uid) if uid != u32::MAX => Some(uid.to_string()),
                _ => {
                    self.problem(
                        node.pos,
                        format!("invalid uid {uid} (valid: 0 to {})", u32::MAX - 1),
                    );
                    None
                }
            },
            Value::String(_) => self.checked(node, |s| check_user(s).map(|()| s.to_owned())),
            _ => {
                self.wrong_type(
                    node,
                    "a user name or uid (\"nobody\", \"1000:1000\" or 1000)",
                );
                None
            }
        }
    }

    fn notify(&mut self, node: &Node) -> Option<Notify> {
        match &node.value {
            Value::Boolean(true) => Some(Notify::Container),
            Value::Boolean(false) => Some(Notify::Exec),
            Value::String(s) => self.parse(node, s),
            _ => {
                self.wrong_type(node, "\"exec\" or \"container\"");
                None
            }
        }
    }

    fn signal(&mut self, node: &Node) -> Option<Signal> {
        match &node.value {
            Value::String(s) => self.parse(node, s),
            Value::Integer(n) => self.parse(node, &n.to_string()),
            _ => {
                self.wrong_type(node, "a signal name such as \"SIGTERM\", or a number");
                None
            }
        }
    }

    fn timeout(&mut self, node: &Node) -> Option<Timeout> {
        match &node.value {
            Value::Integer(n) => match u64::try_from(*n) {
                Ok(secs) => Some(Timeout::from_secs(secs)),
                Err(_) => {
                    self.problem(
                        node.pos,
                        format!("invalid time span {n}: it cannot be negative"),
                    );
                    None
                }
            },
            Value::String(s) => self.parse(node, s),
            Value::Float(f) => {
                let hint = self.quote_hint(&format!("{f}s"));
                self.wrong_type_hint(
                    node,
                    "a whole number of seconds or a time span string",
                    hint,
                );
                None
            }
            _ => {
                self.wrong_type(
                    node,
                    "a number of seconds or a time span such as \"1min 30s\"",
                );
                None
            }
        }
    }

    fn memory(&mut self, node: &Node) -> Option<Limit<Bytes>> {
        match &node.value {
            Value::String(s) => self.parse(node, s),
            Value::Integer(n) => self.parse(node, &n.to_string()),
            _ => {
                self.wrong_type(node, "a size such as \"512M\", or a number of bytes");
                None
            }
        }
    }

    fn cpus(&mut self, node: &Node) -> Option<Cpus> {
        match &node.value {
            Value::Float(f) => self.parse(node, &f.to_string()),
            Value::Integer(n) => self.parse(node, &n.to_string()),
            Value::String(s) => {
                let number = s.trim().parse::<f64>().ok().filter(|f| f.is_finite());
                let hint = number
                    .map(|f| format!("write cpus = {}", toml_float(f)))
                    .unwrap_or_default();
                self.wrong_type_hint(node, "a number of CPUs such as 1.5", hint);
                None
            }
            _ => {
                self.wrong_type(node, "a number of CPUs such as 1.5");
                None
            }
        }
    }

    fn pids_limit(&mut self, node: &Node) -> Option<Limit<Count>> {
        match &node.value {
            Value::Integer(n) => self.parse(node, &n.to_string()),
            Value::String(s) => self.parse(node, s),
            _ => {
                self.wrong_type(node, "a positive integer or \"infinity\"");
                None
            }
        }
    }

    fn depends_on(&mut self, node: &Node) -> Option<Vec<Name>> {
        let own = self.name.clone();
        self.list(node, "an array of container names", |s| {
            let name: Name = s.parse().map_err(|e: ValueError| e.0)?;
            if name == own {
                return Err(format!("container {own} cannot depend on itself"));
            }
            Ok(name)
        })
    }

    fn units(&mut self, node: &Node, into: &mut Vec<String>) {
        let units = self.list(node, "an array of unit names", |s| {
            check_unit_name(s).map(|()| s.to_owned())
        });
        if let Some(units) = units {
            *into = units;
        }
    }

    fn reject_name(&mut self, node: &Node) {
        let message = format!(
            "not a setting: a container is named after its file ({}.toml is container {})",
            self.name, self.name
        );
        self.problem(node.pos, message);
    }
}

/// The sub-table whose fields include `key`, for keys written at the wrong level.
fn table_holding(key: &str) -> Option<&'static str> {
    TOP_LEVEL.iter().find_map(|field| match field.kind {
        Kind::Table(sub) if sub.iter().any(|f| f.key == key) => Some(field.key),
        _ => None,
    })
}

// --- Checks for values that have no type of their own in crate::spec::value ---------------------

fn absolute_path(s: &str) -> Result<PathBuf, String> {
    if Path::new(s).is_absolute() {
        Ok(PathBuf::from(s))
    } else {
        Err(format!("expected an absolute path, found {s:?}"))
    }
}

fn single_line(s: &str) -> Result<(), String> {
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "must be a single line of text, without control characters ({c:?})"
        )),
        // In a unit file, a line that ends in a backslash continues on the next one.
        None if s.ends_with('\\') => Err("must not end with a backslash".into()),
        None => Ok(()),
    }
}

/// A variable name as `execve` can pass it: non-empty, without `=` or NUL.
fn check_env_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("an environment variable name cannot be empty".into())
    } else if name.contains('=') {
        Err(format!(
            "invalid variable name {name:?}: it cannot contain \"=\""
        ))
    } else if name.contains('\0') {
        Err(format!(
            "invalid variable name {name:?}: it cannot contain a NUL character"
        ))
    } else {
        Ok(())
    }
}

/// `USER`, `UID`, `USER:GROUP` or `UID:GID` (names are looked up in the container at start).
fn check_user(user: &str) -> Result<(), String> {
    let bad = || format!("invalid user {user:?} (expected USER, UID, USER:GROUP or UID:GID)");
    let mut parts = user.split(':');
    let valid_part =
        |p: &str| !p.is_empty() && !p.chars().any(|c| c.is_whitespace() || c.is_control());
    let valid = parts.next().is_some_and(valid_part)
        && parts.next().is_none_or(valid_part)
        && parts.next().is_none();
    if valid { Ok(()) } else { Err(bad()) }
}

/// systemd's unit types, the suffixes of unit names.
const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "target",
    "timer",
    "path",
    "mount",
    "automount",
    "swap",
    "device",
    "slice",
    "scope",
];

/// systemd's `UNIT_NAME_MAX` (256, with the terminating NUL).
const UNIT_NAME_MAX: usize = 255;

/// A systemd unit name: `PREFIX[@INSTANCE].TYPE`, from systemd's character set.
fn check_unit_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a unit name cannot be empty".into());
    }
    if name.starts_with('/') {
        return Err(format!(
            "{name:?} is a path, not a unit name (`systemd-escape --path --suffix=mount {name}` prints its mount unit)"
        ));
    }
    if name.len() > UNIT_NAME_MAX {
        return Err(format!(
            "invalid unit name {name:?}: longer than {UNIT_NAME_MAX} characters"
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Err(format!("invalid unit name {name:?}: {c:?} is not allowed"));
    }
    let Some((prefix, unit_type)) = name
        .rsplit_once('.')
        .filter(|(_, t)| UNIT_TYPES.contains(t))
    else {
        return Err(missing_unit_type(name));
    };
    let (unit, instance) = match prefix.split_once('@') {
        Some((unit, instance)) => (unit, Some(instance)),
        None => (prefix, None),
    };
    if unit.is_empty() || instance.is_some_and(|i| i.contains('@')) {
        return Err(format!("invalid unit name {name:?}"));
    }
    if instance == Some("") {
        return Err(format!(
            "{name:?} is a template: name an instance of it, such as \"{unit}@NAME.{unit_type}\""
        ));
    }
    Ok(())
}

fn missing_unit_type(name: &str) -> String {
    if let Some((stem, suffix)) = name.rsplit_once('.') {
        if let Some(near) = suggest(suffix, UNIT_TYPES.iter().copied()) {
            return format!(
                "invalid unit name {name:?}: unknown unit type \".{suffix}\" (did you mean \"{stem}.{near}\"?)"
            );
        }
    }
    format!(
        "{name:?} is not a unit name: it needs a type suffix such as .service or .target (did you mean \"{name}.service\"?)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = include_str!("../../../packaging/man/cleat.toml.5.md");

    /// The KEYS section of the page (up to the next `# HEADING`; the TOML examples hold
    /// `# comments`, which are not headings).
    fn keys_section() -> &'static str {
        let keys = &PAGE[PAGE.find("\n# KEYS\n").expect("KEYS section") + 1..];
        let end = keys
            .match_indices("\n# ")
            .find(|(i, _)| keys[i + 3..].starts_with(|c: char| c.is_ascii_uppercase()))
            .map_or(keys.len(), |(i, _)| i);
        &keys[..end]
    }

    /// The `## …` headings of the KEYS section, split into the keys they document.
    fn documented() -> Vec<String> {
        keys_section()
            .lines()
            .filter_map(|l| l.strip_prefix("## "))
            .flat_map(|h| h.split(", "))
            .map(|k| k.trim_matches(['[', ']']).to_owned())
            .collect()
    }

    /// Every key a definition may hold has its section in cleat.toml(5), and every section
    /// there is a key.
    #[test]
    fn every_key_is_documented() {
        let mut known: Vec<String> = TOP_LEVEL
            .iter()
            .filter(|f| f.key != "name")
            .map(|f| f.key.to_owned())
            .collect();
        let mut documented = documented();
        known.sort();
        documented.sort();
        assert_eq!(documented, known);
    }

    /// Every example in the KEYS section is a valid definition (with an image, where the
    /// example has none).
    #[test]
    fn every_key_example_loads() {
        let keys = keys_section();
        let dir = std::env::temp_dir().join(format!("cleat-man-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let examples = keys.split("```toml\n").skip(1).flat_map(|block| {
            // Alternatives are separated by `# or` lines.
            block[..block.find("```").expect("closed block")].split("# or\n")
        });
        for (i, example) in examples.enumerate() {
            let text = if example.contains("image =") || example.contains("rootfs =") {
                example.to_owned()
            } else if let Some(at) = example.find("\n[") {
                // Top-level keys must come before the example's first table.
                format!("image = \"x\"\n{}\n{}", &example[..at], &example[at..])
            } else if example.starts_with('[') {
                format!("image = \"x\"\n{example}")
            } else {
                format!("{example}image = \"x\"\n")
            };
            let path = dir.join(format!("example{i}.toml"));
            std::fs::write(&path, &text).expect("write example");
            if let Err(e) = super::super::load_file(&path) {
                panic!("the example\n{example}\ndoes not load:\n{e}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
