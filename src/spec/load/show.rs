//! `cleat config show`: a definition merged from its file and drop-ins, as TOML annotated with
//! the file and line every value came from (itself valid TOML) or as JSON; and the TOML
//! spelling of keys and values that these and the error messages share.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::tree::{Node, Table, Value};
use crate::spec::Name;

/// A definition's files merged into one tree, each value still knowing where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub(super) name: Name,
    pub(super) files: Vec<PathBuf>,
    pub(super) overridden: Vec<PathBuf>,
    pub(super) root: Table,
}

/// Where a value was set (1-based line and column, the column in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub file: &'a Path,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// The column (1-based) the provenance comments of [`Merged::to_toml`] line up at, when the
/// value leaves room.
const COMMENT_COLUMN: usize = 38;

impl Merged {
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The files that were applied: the main file, then the drop-ins in the order they apply.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Files of the same name in lower-priority directories, shadowed or masked (and ignored).
    pub fn overridden(&self) -> &[PathBuf] {
        &self.overridden
    }

    /// Where the value at `key` (`["image"]`, `["env", "PORT"]`) was set; for a table, where it
    /// was first opened.
    pub fn origin(&self, key: &[&str]) -> Option<Origin<'_>> {
        let (last, parents) = key.split_last()?;
        let mut table = &self.root;
        for parent in parents {
            match table.get(parent).map(|n| &n.value) {
                Some(Value::Table(t)) => table = t,
                _ => return None,
            }
        }
        let node = table.get(last)?;
        Some(Origin {
            file: self.files.get(node.pos.file).map(PathBuf::as_path)?,
            line: node.pos.at.line,
            column: node.pos.at.column,
        })
    }

    /// The merged definition as TOML, each value followed by a `# FILE:LINE` comment. Parsing
    /// it gives back the merged values.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let mut files = self.files.iter();
        if let Some(main) = files.next() {
            let _ = writeln!(out, "# container {}: {}", self.name, comment_text(main));
        }
        for dropin in files {
            let _ = writeln!(out, "#   + {}", comment_text(dropin));
        }
        for path in &self.overridden {
            let _ = writeln!(out, "#   (overridden: {})", comment_text(path));
        }
        self.write_table(&mut out, &[], &self.root);
        out
    }

    /// Plain entries first (TOML puts everything after a `[header]` into that table), then each
    /// sub-table under its own header.
    fn write_table(&self, out: &mut String, path: &[&str], table: &Table) {
        for entry in &table.entries {
            if matches!(entry.node.value, Value::Table(_)) {
                continue;
            }
            let line = format!("{} = {}", toml_key(&entry.key), inline(&entry.node.value));
            let pad = (COMMENT_COLUMN - 1)
                .saturating_sub(line.chars().count())
                .max(1);
            let _ = writeln!(
                out,
                "{line}{:pad$}# {}",
                "",
                self.where_written(&entry.node)
            );
        }
        for entry in &table.entries {
            if let Value::Table(sub) = &entry.node.value {
                let sub_path: Vec<&str> =
                    path.iter().copied().chain([entry.key.as_str()]).collect();
                let header: Vec<String> = sub_path.iter().map(|k| toml_key(k)).collect();
                let _ = writeln!(out, "\n[{}]", header.join("."));
                self.write_table(out, &sub_path, sub);
            }
        }
    }

    fn where_written(&self, node: &Node) -> String {
        let file = self
            .files
            .get(node.pos.file)
            .map(|f| comment_text(f))
            .unwrap_or_default();
        format!("{file}:{}", node.pos.at.line)
    }

    /// `{"name": …, "files": […], "overridden": […], "values": {…}}`, where each value is
    /// `{"value": …, "file": …, "line": …, "column": …}` and tables are objects of those.
    pub fn to_json(&self) -> serde_json::Value {
        let paths = |paths: &[PathBuf]| -> Vec<String> {
            paths.iter().map(|p| p.display().to_string()).collect()
        };
        json!({
            "name": self.name.as_str(),
            "files": paths(&self.files),
            "overridden": paths(&self.overridden),
            "values": self.table_json(&self.root),
        })
    }

    fn table_json(&self, table: &Table) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for entry in &table.entries {
            let node = &entry.node;
            let value = match &node.value {
                Value::Table(sub) => self.table_json(sub),
                value => json!({
                    "value": plain_json(value),
                    "file": self.files.get(node.pos.file).map(|f| f.display().to_string()),
                    "line": node.pos.at.line,
                    "column": node.pos.at.column,
                }),
            };
            object.insert(entry.key.clone(), value);
        }
        serde_json::Value::Object(object)
    }
}

/// A value as JSON, without provenance (inside arrays).
fn plain_json(value: &Value) -> serde_json::Value {
    match value {
        Value::String(s) => json!(s),
        Value::Integer(n) => json!(n),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or_else(|| json!(toml_float(*f)), serde_json::Value::Number),
        Value::Boolean(b) => json!(b),
        Value::Datetime(d) => json!(d.to_string()),
        Value::Array(items) => items.iter().map(|n| plain_json(&n.value)).collect(),
        Value::Table(t) => {
            let entries = t
                .entries
                .iter()
                .map(|e| (e.key.clone(), plain_json(&e.node.value)));
            serde_json::Value::Object(entries.collect())
        }
    }
}

/// A value on one line: a scalar, `[…]` or `{ … }`.
fn inline(value: &Value) -> String {
    match value {
        Value::String(s) => toml_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|n| inline(&n.value)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Table(t) if t.entries.is_empty() => "{}".into(),
        Value::Table(t) => {
            let entries: Vec<String> = t
                .entries
                .iter()
                .map(|e| format!("{} = {}", toml_key(&e.key), inline(&e.node.value)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
        scalar => scalar_text(scalar).unwrap_or_default(),
    }
}

/// The TOML text of a number, boolean or date-time (what a user would write unquoted).
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Integer(n) => Some(n.to_string()),
        Value::Float(f) => Some(toml_float(*f)),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Datetime(d) => Some(d.to_string()),
        Value::String(_) | Value::Array(_) | Value::Table(_) => None,
    }
}

/// A float as TOML writes it: always with a `.` or an exponent, so it reads back as a float.
pub(super) fn toml_float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        // `Debug` is the shortest text that reads back exactly, and keeps `.0` on whole numbers.
        format!("{f:?}")
    }
}

/// A key, bare if TOML allows it (`image`, `binds-to`), else quoted (`"MY.VAR"`).
pub(super) fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        key.to_owned()
    } else {
        toml_string(key)
    }
}

/// A TOML basic string: quoted, with `"`, `\` and control characters escaped.
pub(super) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A path as it can appear in a `#` comment: control characters (a newline would end the
/// comment) escaped.
fn comment_text(path: &Path) -> String {
    let mut out = String::new();
    for c in path.display().to_string().chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
