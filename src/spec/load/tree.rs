//! TOML values that remember where they were written. Each file is parsed into a [`Table`]
//! whose every value carries its [`Pos`] (file, line, column); the tables of a definition and its
//! drop-ins are then merged in order: tables merge key by key, anything else replaces.

use std::fs;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use toml::value::Datetime;

use super::error::{Position, Problem};

/// Where a key or value was written: file number `file` of the definition (0 is the main file,
/// then the drop-ins in the order they apply), at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Pos {
    pub file: usize,
    pub at: Position,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(Datetime),
    Array(Vec<Node>),
    Table(Table),
}

impl Value {
    /// The TOML type name, for "expected …, found …" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Boolean(_) => "boolean",
            Value::Datetime(_) => "datetime",
            Value::Array(_) => "array",
            Value::Table(_) => "table",
        }
    }
}

/// A value and where it was written (for a table: where it was first opened).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// A key, where the key itself was written (for "unknown key" messages), and its value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub node: Node,
}

/// A table's entries in the order they were first written.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Table {
    pub entries: Vec<Entry>,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.node)
    }

    /// Applies `later` on top of `self`: a table merges into a table key by key; any other value
    /// (a scalar, an array, even an empty one) replaces what was there, with its position.
    pub fn merge(&mut self, later: Table) {
        for entry in later.entries {
            let Some(existing) = self.entries.iter_mut().find(|e| e.key == entry.key) else {
                self.entries.push(entry);
                continue;
            };
            match (&mut existing.node.value, entry.node.value) {
                (Value::Table(mine), Value::Table(theirs)) => mine.merge(theirs),
                (_, value) => {
                    *existing = Entry {
                        key: entry.key,
                        key_pos: entry.key_pos,
                        node: Node {
                            value,
                            pos: entry.node.pos,
                        },
                    };
                }
            }
        }
    }
}

/// Reads file number `file` of a definition and parses it. Every syntax error is reported.
pub(super) fn read_file(file: usize, path: &Path) -> Result<Table, Vec<Problem>> {
    let text = read_text(path).map_err(|problem| vec![problem])?;
    parse(file, path, &text)
}

fn read_text(path: &Path) -> Result<String, Problem> {
    let bytes = fs::read(path).map_err(|source| Problem::Io {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        Problem::Invalid {
            path: path.to_owned(),
            at: Some(byte_position(e.as_bytes(), valid)),
            key: None,
            message: "not valid UTF-8 (a TOML file must be UTF-8 text)".into(),
        }
    })
}

/// The position of byte `offset` in `bytes`, which are valid UTF-8 up to there.
fn byte_position(bytes: &[u8], offset: usize) -> Position {
    let before = &bytes[..offset];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Position {
        line: saturate(line),
        column: saturate(column),
    }
}

/// Parses the text of file number `file`. Only the first syntax error is reported: what the
/// parser finds after recovering from one is mostly an echo of it.
pub(super) fn parse(file: usize, path: &Path, text: &str) -> Result<Table, Vec<Problem>> {
    let lines = Lines::new(text);
    let invalid = |at: Position, message: &str| Problem::Invalid {
        path: path.to_owned(),
        at: Some(at),
        key: None,
        message: format!("invalid TOML: {message}"),
    };
    let root = DeTable::parse(text).map_err(|e| {
        let offset = e.span().map_or(0, |span| span.start);
        vec![invalid(lines.position(text, offset), e.message())]
    })?;
    let mut builder = Builder {
        file,
        text,
        lines: &lines,
        out_of_range: Vec::new(),
    };
    let table = builder.table(root.get_ref());
    if builder.out_of_range.is_empty() {
        return Ok(table);
    }
    let message = "integer out of range (TOML integers are 64-bit)";
    Err(builder
        .out_of_range
        .into_iter()
        .map(|at| invalid(at, message))
        .collect())
}

/// Turns toml's borrowed, spanned tree into a [`Table`] of owned values with positions.
struct Builder<'a> {
    file: usize,
    text: &'a str,
    lines: &'a Lines,
    out_of_range: Vec<Position>,
}

impl Builder<'_> {
    fn table(&mut self, table: &DeTable<'_>) -> Table {
        let mut entries: Vec<Entry> = table
            .iter()
            .map(|(key, value)| Entry {
                key: key.get_ref().to_string(),
                key_pos: self.pos(key.span().start),
                node: self.node(value),
            })
            .collect();
        // toml keeps keys sorted; the file's order is nicer to show and to report errors in.
        entries.sort_by_key(|entry| entry.key_pos);
        Table { entries }
    }

    fn node(&mut self, value: &Spanned<DeValue<'_>>) -> Node {
        let pos = self.pos(value.span().start);
        let value = match value.get_ref() {
            DeValue::String(s) => Value::String(s.to_string()),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Value::Integer(n),
                Err(_) => {
                    self.out_of_range.push(pos.at);
                    Value::Integer(0)
                }
            },
            // toml hands out a `FromStr`-compatible spelling (`1000.5`, `+inf`, `nan`).
            DeValue::Float(f) => Value::Float(f.as_str().parse().unwrap_or(f64::NAN)),
            DeValue::Boolean(b) => Value::Boolean(*b),
            DeValue::Datetime(d) => Value::Datetime(*d),
            DeValue::Array(items) => Value::Array(items.iter().map(|v| self.node(v)).collect()),
            DeValue::Table(t) => Value::Table(self.table(t)),
        };
        Node { value, pos }
    }

    fn pos(&self, offset: usize) -> Pos {
        Pos {
            file: self.file,
            at: self.lines.position(self.text, offset),
        }
    }
}

/// The byte offsets where lines start, to turn an offset into a line and column.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines {
            starts: starts.collect(),
        }
    }

    fn position(&self, text: &str, offset: usize) -> Position {
        let line = self
            .starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let column = text
            .get(start..offset)
            .map_or(offset.saturating_sub(start), |s| s.chars().count());
        Position {
            line: saturate(line + 1),
            column: saturate(column + 1),
        }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(file: usize, text: &str) -> Table {
        parse(file, Path::new("t.toml"), text).expect("valid TOML")
    }

    fn at(line: u32, column: u32) -> Position {
        Position { line, column }
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\n\"é\" = \"ü\"\nb = [\n  2,\n]\n";
        let t = tree(3, text);
        let keys: Vec<_> = t
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.key_pos.at))
            .collect();
        assert_eq!(keys, [("a", at(1, 1)), ("é", at(2, 1)), ("b", at(3, 1))]);
        assert_eq!(
            t.get("é").map(|n| n.pos),
            Some(Pos {
                file: 3,
                at: at(2, 7)
            })
        );
        let Some(Value::Array(items)) = t.get("b").map(|n| &n.value) else {
            panic!()
        };
        assert_eq!(items[0].pos.at, at(4, 3));
    }

    #[test]
    fn merge_tables_scalars_and_arrays() {
        let mut t = tree(0, "x = 1\nl = [1, 2]\n[t]\na = 1\nb = 2\n");
        t.merge(tree(1, "l = []\n[t]\nb = 3\nc = 4\n"));
        assert_eq!(t.get("x").map(|n| n.pos.file), Some(0));
        let l = t.get("l").expect("l");
        assert_eq!((&l.value, l.pos.file), (&Value::Array(vec![]), 1));
        let Some(Value::Table(inner)) = t.get("t").map(|n| &n.value) else {
            panic!()
        };
        let got: Vec<_> = inner
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.node.value.clone(), e.node.pos.file))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Value::Integer(1), 0),
                ("b", Value::Integer(3), 1),
                ("c", Value::Integer(4), 1)
            ]
        );
        t.merge(tree(2, "t = \"flat\"\n"));
        assert_eq!(
            t.get("t").map(|n| &n.value),
            Some(&Value::String("flat".into()))
        );
    }

    #[test]
    fn non_utf8_is_located() {
        assert_eq!(byte_position(b"ab\ncd\xff", 5), at(2, 3));
        assert_eq!(byte_position(b"\xc3\xa9\xff", 2), at(1, 2));
    }

    #[test]
    fn integers_beyond_64_bits_are_errors() {
        let e = parse(0, Path::new("t.toml"), "a = 1\nb = 99999999999999999999\n")
            .expect_err("out of range");
        assert_eq!(
            e[0].to_string(),
            "t.toml:2:5: invalid TOML: integer out of range (TOML integers are 64-bit)"
        );
    }
}
