//! Markdown to roff for cleat's reference pages (`packaging/man/*.md`): the subset those pages
//! are written in, with pandoc's man-page conventions, so that the Markdown stays the one
//! source (tests read it as Markdown) and no document converter is needed to build a package.
//!
//! Blocks: a `% TITLE(SECTION) source | manual` title line, `#` (`.SH`) and `##`/`###` (`.SS`)
//! headings, paragraphs, fenced code blocks, tables (laid out as preformatted text), `*`/`-`
//! and `1.` lists, and definition lists (a one-line term, then `:   definition`, continued by
//! indented lines). Inline: `` `code` `` and `**bold**` in bold, `*emphasis*` in italics,
//! `[text](url)`, and backslash escapes. Anything else is text.

use clap_mangen::roff::{Inline, Roff, bold, italic, roman};

/// The `.TH` line of a page, from its `% TITLE(SECTION) source | manual` line.
#[derive(Debug, PartialEq, Eq)]
pub struct Title {
    pub name: String,
    pub section: String,
    pub manual: String,
}

impl Title {
    fn parse(line: &str) -> Option<Title> {
        let line = line.strip_prefix("% ")?;
        let (name_section, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (name, section) = name_section.strip_suffix(')')?.split_once('(')?;
        let manual = rest.split_once('|').map_or("", |(_, m)| m.trim());
        Some(Title {
            name: name.to_owned(),
            section: section.to_owned(),
            manual: manual.to_owned(),
        })
    }

    /// The page's file name: `cleat.toml.5` for `CLEAT.TOML(5)`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.name.to_lowercase(), self.section)
    }
}

/// The title of a page, if its first line is a title line.
pub fn title(markdown: &str) -> Option<Title> {
    Title::parse(markdown.lines().next()?)
}

/// Renders a page (with its title line) or a fragment of sections (without) to roff; `source`
/// goes in the `.TH` line (`cleat 0.1.0`).
pub fn to_roff(markdown: &str, source: &str) -> String {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Roff::new();
    let mut at = 0;
    if let Some(title) = lines.first().and_then(|l| Title::parse(l)) {
        out.control(
            "TH",
            [
                title.name.as_str(),
                title.section.as_str(),
                NO_DATE,
                source,
                title.manual.as_str(),
            ],
        );
        no_hyphenation(&mut out);
        at = 1;
    }
    Blocks {
        lines: &lines,
        at,
        out: &mut out,
    }
    .run();
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = out.to_writer(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The date argument of `.TH`: empty (pages are made at install time, and should not differ
/// from one build to the next). Written quoted, since the roff crate writes an empty argument as
/// nothing, which would shift the ones after it.
pub const NO_DATE: &str = "\"\"";

/// Left-aligned, without hyphenation: commands, keys and paths in the text stay whole (as
/// systemd's pages do).
pub fn no_hyphenation(out: &mut Roff) {
    out.control("ad", ["l"]);
    out.control("nh", []);
}

struct Blocks<'a, 'r> {
    lines: &'a [&'a str],
    at: usize,
    out: &'r mut Roff,
}

fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let text = line[level..].strip_prefix(' ')?;
    (1..=3).contains(&level).then_some((level, text.trim()))
}

/// A list item's marker and text: `* text`, `- text`, `12. text`.
fn list_item(line: &str) -> Option<(String, &str)> {
    if let Some(text) = line.strip_prefix("* ").or_else(|| line.strip_prefix("- ")) {
        return Some(("\\(bu".to_owned(), text.trim_start()));
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let text = line.get(digits..)?.strip_prefix(". ")?;
    (digits > 0).then(|| (format!("{}.", &line[..digits]), text.trim_start()))
}

fn definition(line: &str) -> Option<&str> {
    let text = line.strip_prefix(':')?;
    text.starts_with([' ', '\t']).then(|| text.trim_start())
}

fn is_table_row(line: &str) -> bool {
    line.starts_with('|')
}

/// Does this line start a block of its own (and so end a paragraph)?
fn starts_block(line: &str) -> bool {
    line.trim().is_empty()
        || heading(line).is_some()
        || is_fence(line)
        || list_item(line).is_some()
        || definition(line).is_some()
        || is_table_row(line)
}

fn indented(line: &str) -> bool {
    line.starts_with("  ") || line.starts_with('\t')
}

impl<'a> Blocks<'a, '_> {
    fn line(&self) -> Option<&'a str> {
        self.lines.get(self.at).copied()
    }

    fn run(&mut self) {
        while let Some(line) = self.line() {
            if line.trim().is_empty() {
                self.at += 1;
            } else if let Some((level, text)) = heading(line) {
                let macro_ = if level == 1 { "SH" } else { "SS" };
                // Arguments of a macro are not escaped for us: `-` stays a minus sign, as in
                // text, so that a key copied from a heading works.
                let text = plain(text).replace('\\', "\\\\").replace('-', "\\-");
                self.out.control(macro_, [text.as_str()]);
                self.at += 1;
            } else if is_fence(line) {
                self.out.control("PP", []);
                self.code();
            } else if is_table_row(line) {
                self.out.control("PP", []);
                self.table();
            } else if let Some((marker, _)) = list_item(line) {
                let width = if marker == "\\(bu" { "2" } else { "4" };
                self.item(
                    |text| list_item(text).map(|(_, t)| t),
                    &[marker.as_str(), width],
                );
            } else if self
                .lines
                .get(self.at + 1)
                .is_some_and(|l| definition(l).is_some())
            {
                self.out.control("TP", []);
                self.out.text(inline(line.trim()));
                self.at += 1;
                self.item(definition, &[]);
            } else {
                self.out.control("PP", []);
                self.paragraph();
            }
        }
    }

    /// A paragraph: lines up to a blank line or the start of another block.
    fn paragraph(&mut self) {
        let mut text = Vec::new();
        while let Some(line) = self.line() {
            if !text.is_empty() && starts_block(line) {
                break;
            }
            text.push(line.trim());
            self.at += 1;
        }
        self.out.text(inline(&text.join(" ")));
    }

    /// A list item or a definition: its first line (which `first` strips of its marker), lazy
    /// continuation lines, and further indented paragraphs and code blocks after blank lines.
    fn item(&mut self, first: fn(&'a str) -> Option<&'a str>, ip_args: &[&str]) {
        let Some(start) = self.line().and_then(first) else {
            return;
        };
        if !ip_args.is_empty() {
            self.out.control("IP", ip_args.iter().copied());
        }
        let mut text = vec![start.trim()];
        self.at += 1;
        loop {
            match self.line() {
                Some(line)
                    if !line.trim().is_empty() && (indented(line) || !starts_block(line)) =>
                {
                    if is_fence(line) {
                        self.flush(&mut text);
                        self.out.control("RS", []);
                        self.code();
                        self.out.control("RE", []);
                    } else {
                        text.push(line.trim());
                        self.at += 1;
                    }
                }
                Some(line) if line.trim().is_empty() => {
                    // A blank line continues the item only if an indented line follows.
                    let next = self.lines[self.at..].iter().find(|l| !l.trim().is_empty());
                    if !next.is_some_and(|l| indented(l)) {
                        break;
                    }
                    self.flush(&mut text);
                    self.at += 1;
                    if self
                        .line()
                        .is_some_and(|l| !l.trim().is_empty() && !is_fence(l))
                    {
                        self.out.control("IP", []);
                    }
                }
                _ => break,
            }
        }
        self.flush(&mut text);
    }

    fn flush(&mut self, text: &mut Vec<&'a str>) {
        if !text.is_empty() {
            self.out.text(inline(&text.join(" ")));
            text.clear();
        }
    }

    /// A fenced code block, indented, without filling; the fence's own indentation is removed
    /// from its lines.
    fn code(&mut self) {
        let Some(fence) = self.line() else { return };
        let indent = fence.len() - fence.trim_start().len();
        self.at += 1;
        self.out.control("RS", ["4"]);
        self.out.control("nf", []);
        while let Some(line) = self.line() {
            self.at += 1;
            if is_fence(line) {
                break;
            }
            let line = line.get(indent..).unwrap_or(line.trim_start());
            self.out.text([roman(line)]);
        }
        self.out.control("fi", []);
        self.out.control("RE", []);
    }

    /// A table, laid out in columns as preformatted text, its header in bold.
    fn table(&mut self) {
        let mut rows: Vec<Vec<String>> = Vec::new();
        while let Some(line) = self.line().filter(|l| is_table_row(l)) {
            self.at += 1;
            let cells: Vec<String> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|c| plain(c.trim()))
                .collect();
            let rule = cells
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')));
            if !rule {
                rows.push(cells);
            }
        }
        let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                rows.iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        self.out.control("RS", ["4"]);
        self.out.control("nf", []);
        for (n, row) in rows.iter().enumerate() {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            let line = line.trim_end().to_owned();
            self.out
                .text([if n == 0 { bold(line) } else { roman(line) }]);
        }
        self.out.control("fi", []);
        self.out.control("RE", []);
    }
}

/// Text without its inline markup (for headings and table cells).
fn plain(text: &str) -> String {
    inline(text)
        .into_iter()
        .map(|i| match i {
            Inline::Roman(s) | Inline::Bold(s) | Inline::Italic(s) => s,
            Inline::LineBreak => " ".to_owned(),
        })
        .collect()
}

/// Inline markup to roff fonts. Code spans are literal; bold and emphasis do not nest (roff
/// fonts do not), so markup inside them is dropped.
fn inline(text: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut run = String::new();
    let mut rest = text;
    let flush = |run: &mut String, out: &mut Vec<Inline>| {
        if !run.is_empty() {
            out.push(roman(std::mem::take(run)));
        }
    };
    while let Some(c) = rest.chars().next() {
        if c == '\\' {
            if let Some(next) = rest[1..].chars().next().filter(char::is_ascii_punctuation) {
                run.push(next);
                rest = &rest[1 + next.len_utf8()..];
                continue;
            }
        } else if c == '`' {
            if let Some(end) = rest[1..].find('`') {
                flush(&mut run, &mut out);
                out.push(bold(&rest[1..1 + end]));
                rest = &rest[end + 2..];
                continue;
            }
        } else if let Some(inner) = rest.strip_prefix("**") {
            if let Some(end) = inner.find("**").filter(|&e| e > 0) {
                flush(&mut run, &mut out);
                out.push(bold(plain(&inner[..end])));
                rest = &inner[end + 2..];
                continue;
            }
        } else if c == '*' && rest[1..].starts_with(|n: char| !n.is_whitespace() && n != '*') {
            let inner = &rest[1..];
            let close = inner.match_indices('*').find(|&(i, _)| {
                !inner[..i].ends_with(char::is_whitespace) && !inner[i + 1..].starts_with('*')
            });
            if let Some((end, _)) = close {
                flush(&mut run, &mut out);
                out.push(italic(plain(&inner[..end])));
                rest = &inner[end + 1..];
                continue;
            }
        } else if c == '[' {
            if let Some((label, url, after)) = link(rest) {
                flush(&mut run, &mut out);
                out.extend(inline(label));
                if url != label && !url.starts_with('#') {
                    run.push_str(&format!(" <{url}>"));
                }
                rest = after;
                continue;
            }
        }
        run.push(c);
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut run, &mut out);
    out
}

/// `[label](url)` at the start of `text`: the label, the URL and what follows.
fn link(text: &str) -> Option<(&str, &str, &str)> {
    let close = text.find("](")?;
    let label = &text[1..close];
    if label.contains(['[', ']']) {
        return None;
    }
    let rest = &text[close + 2..];
    let end = rest.find(')')?;
    Some((label, &rest[..end], &rest[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(roff: &str) -> String {
        // Leave out roff's apostrophe preamble (its first two lines).
        roff.lines().skip(2).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn title_heading_and_paragraph() {
        let md = "% CLEAT.TOML(5) cleat | File Formats\n\n# NAME\n\ncleat.toml - container\ndefinitions\n\n## When\n\nSome `code`, **bold** and *words*.\n";
        assert_eq!(
            body(&to_roff(md, "cleat 1.0")),
            ".TH CLEAT.TOML 5 \"\" \"cleat 1.0\" \"File Formats\"\n.ad l\n.nh\n.SH NAME\n.PP\ncleat.toml \\- container definitions\n.SS When\n.PP\nSome \\fBcode\\fR, \\fBbold\\fR and \\fIwords\\fR."
        );
        assert_eq!(
            title(md),
            Some(Title {
                name: "CLEAT.TOML".into(),
                section: "5".into(),
                manual: "File Formats".into()
            })
        );
        assert_eq!(
            title(md).map(|t| t.file_name()).as_deref(),
            Some("cleat.toml.5")
        );
    }

    #[test]
    fn code_blocks_keep_their_lines() {
        let md = "```toml\n# a comment\n.starts = \"with a dot\"\n\nx = 'q'\n```\nafter\n";
        assert_eq!(
            body(&to_roff(md, "")),
            ".PP\n.RS 4\n.nf\n# a comment\n\\&.starts = \"with a dot\"\n\nx = \\*(Aqq\\*(Aq\n.fi\n.RE\n.PP\nafter"
        );
    }

    #[test]
    fn lists_and_definitions() {
        let md = "* one,\n  continued\n* two\n\n1. first\n2. second\n\n`/etc`\n:   The admin's,\n    really.\n\n    More.\n\nEnd.\n";
        assert_eq!(
            body(&to_roff(md, "")),
            ".IP \\(bu 2\none, continued\n.IP \\(bu 2\ntwo\n.IP 1. 4\nfirst\n.IP 2. 4\nsecond\n.TP\n\\fB/etc\\fR\nThe admin\\*(Aqs, really.\n.IP\nMore.\n.PP\nEnd."
        );
    }

    #[test]
    fn tables_are_aligned() {
        let md = "| key | systemd |\n|-----|---------|\n| `after` | `After=` |\n| `binds-to` | `BindsTo=` |\n";
        assert_eq!(
            body(&to_roff(md, "")),
            ".PP\n.RS 4\n.nf\n\\fBkey       systemd\\fR\nafter     After=\nbinds\\-to  BindsTo=\n.fi\n.RE"
        );
    }

    #[test]
    fn inline_markup() {
        let i = |s: &str| body(&to_roff(s, ""));
        assert_eq!(i("a `x*y*` b"), ".PP\na \\fBx*y*\\fR b");
        assert_eq!(i("**cleat**(1), 2 * 3 *"), ".PP\n\\fBcleat\\fR(1), 2 * 3 *");
        assert_eq!(
            i("\\*not\\* [the page](https://e.org/x)"),
            ".PP\n*not* the page <https://e.org/x>"
        );
        assert_eq!(i("`[install]` and [x]"), ".PP\n\\fB[install]\\fR and [x]");
        assert_eq!(i("a*b* and *c d*"), ".PP\na\\fIb\\fR and \\fIc d\\fR");
    }
}
