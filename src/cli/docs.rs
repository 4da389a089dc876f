//! Manual pages and shell completions, made by the binary they document (`make install` runs
//! `cleat internal man DIR` and `cleat internal completions SHELL`), so that they cannot drift
//! from `--help`:
//!
//! - `cleat(1)` and one page per visible verb, nested ones included (`cleat-network-create(1)`),
//!   from the clap definitions, each with a SEE ALSO section;
//! - the reference pages written in Markdown in `packaging/man/` (`cleat.toml(5)`,
//!   `cleat-registries.toml(5)`, `container@.service(8)`, and the sections of `cleat(1)` that
//!   clap does not know about), rendered to roff by [`markdown`].

mod markdown;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Command, CommandFactory, Subcommand};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Inline, Roff, bold, roman};

use super::CmdResult;

#[derive(Subcommand)]
pub enum DocsCommand {
    /// Write the manual pages (roff, uncompressed) into DIR/man1, DIR/man5 and DIR/man8
    Man { dir: PathBuf },
    /// Print the completion script for a shell
    Completions { shell: Shell },
}

pub fn docs(cmd: DocsCommand) -> CmdResult {
    match cmd {
        DocsCommand::Man { dir } => {
            for page in pages() {
                let path = dir.join(&page.path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                std::fs::write(&path, &page.roff)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        DocsCommand::Completions { shell } => {
            std::io::stdout()
                .write_all(&completions(shell))
                .context("writing the completions")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The completion script for `shell`, without the hidden commands (which clap's generators
/// would offer).
fn completions(shell: Shell) -> Vec<u8> {
    let full = super::Cli::command();
    let visible = full.get_subcommands().filter(|s| !s.is_hide_set()).cloned();
    let mut cmd = Command::new("cleat")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .subcommand_required(true)
        .subcommands(visible);
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cleat", &mut out);
    out
}

/// The reference pages written in Markdown, each with its title line.
const REFERENCE: &[&str] = &[
    include_str!("../../packaging/man/cleat.toml.5.md"),
    include_str!("../../packaging/man/cleat-registries.toml.5.md"),
    include_str!("../../packaging/man/container@.service.8.md"),
];

/// The sections of cleat(1) after those made from the command line's definition.
const CLEAT_1: &str = include_str!("../../packaging/man/cleat.1.md");

/// Pages to read beside a verb's, besides its parent's, its siblings' (for nested verbs) and
/// its subcommands'.
const RELATED: &[(&str, &[&str])] = &[
    (
        "cleat",
        &[
            "cleat.toml(5)",
            "cleat-registries.toml(5)",
            "container@.service(8)",
            "systemctl(1)",
            "journalctl(1)",
            "systemd-run(1)",
        ],
    ),
    (
        "cleat-run",
        &[
            "cleat-create(1)",
            "cleat-ps(1)",
            "cleat-logs(1)",
            "cleat-attach(1)",
            "cleat-exec(1)",
            "cleat-stop(1)",
            "cleat-rm(1)",
            "cleat.toml(5)",
            "systemd-run(1)",
        ],
    ),
    (
        "cleat-create",
        &["cleat-run(1)", "cleat-start(1)", "cleat-rm(1)"],
    ),
    (
        "cleat-start",
        &[
            "cleat-stop(1)",
            "cleat-create(1)",
            "container@.service(8)",
            "systemctl(1)",
        ],
    ),
    (
        "cleat-stop",
        &[
            "cleat-start(1)",
            "cleat-kill(1)",
            "container@.service(8)",
            "systemctl(1)",
        ],
    ),
    (
        "cleat-kill",
        &["cleat-stop(1)", "systemctl(1)", "signal(7)"],
    ),
    (
        "cleat-restart",
        &["cleat-start(1)", "cleat-stop(1)", "systemctl(1)"],
    ),
    (
        "cleat-rm",
        &["cleat-ps(1)", "cleat-stop(1)", "cleat-volume(1)"],
    ),
    (
        "cleat-ps",
        &["cleat-inspect(1)", "cleat-port(1)", "systemctl(1)"],
    ),
    ("cleat-inspect", &["cleat-ps(1)", "cleat-config(1)"]),
    (
        "cleat-logs",
        &["cleat-attach(1)", "container@.service(8)", "journalctl(1)"],
    ),
    (
        "cleat-attach",
        &["cleat-run(1)", "cleat-exec(1)", "cleat-logs(1)"],
    ),
    (
        "cleat-exec",
        &["cleat-run(1)", "cleat-attach(1)", "nsenter(1)"],
    ),
    (
        "cleat-pull",
        &[
            "cleat-images(1)",
            "cleat-login(1)",
            "cleat-registries.toml(5)",
        ],
    ),
    (
        "cleat-images",
        &["cleat-pull(1)", "cleat-rmi(1)", "cleat-image(1)"],
    ),
    (
        "cleat-image",
        &["cleat-images(1)", "cleat-pull(1)", "cleat-rmi(1)"],
    ),
    ("cleat-rmi", &["cleat-images(1)", "cleat-image-prune(1)"]),
    (
        "cleat-login",
        &[
            "cleat-logout(1)",
            "cleat-pull(1)",
            "cleat-registries.toml(5)",
        ],
    ),
    (
        "cleat-logout",
        &["cleat-login(1)", "cleat-registries.toml(5)"],
    ),
    (
        "cleat-volume",
        &["cleat-run(1)", "cleat-rm(1)", "cleat.toml(5)"],
    ),
    (
        "cleat-network",
        &["cleat-port(1)", "cleat-run(1)", "cleat.toml(5)"],
    ),
    ("cleat-port", &["cleat-network(1)", "cleat-run(1)"]),
    (
        "cleat-config",
        &["cleat.toml(5)", "container@.service(8)", "systemd-delta(1)"],
    ),
];

/// One manual page: where it goes under the man directory, and its roff.
pub struct Page {
    pub path: PathBuf,
    pub roff: String,
}

fn source() -> String {
    format!("cleat {}", env!("CARGO_PKG_VERSION"))
}

/// Every page: the verbs' (cleat(1) first), then the reference pages.
pub fn pages() -> Vec<Page> {
    let mut root = without_help_subcommands(super::Cli::command());
    root.build();
    let mut pages = Vec::new();
    verb_pages(&root, &[], None, &mut pages);
    for md in REFERENCE {
        let title =
            markdown::title(md).unwrap_or_else(|| panic!("a reference page has no title line"));
        pages.push(Page {
            path: Path::new(&format!("man{}", title.section)).join(title.file_name()),
            roff: markdown::to_roff(md, &source()),
        });
    }
    pages
}

/// clap's `help` subcommands are for the terminal; the pages list the real verbs only.
fn without_help_subcommands(cmd: Command) -> Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    names
        .into_iter()
        .fold(cmd.disable_help_subcommand(true), |cmd, name| {
            cmd.mut_subcommand(name, without_help_subcommands)
        })
}

fn display_name(cmd: &Command) -> &str {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
}

/// The page of `cmd` (whose ancestors' names are `ancestors`, nearest last; `parent` is the
/// nearest) and those of its visible subcommands.
fn verb_pages(
    cmd: &Command,
    ancestors: &[String],
    parent: Option<&Command>,
    pages: &mut Vec<Page>,
) {
    let name = display_name(cmd).to_owned();
    let man = Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section("1")
        .date(markdown::NO_DATE)
        .source(source())
        .manual("User Commands");
    let mut roff = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = man.render(&mut roff);
    let mut roff = String::from_utf8_lossy(&roff).into_owned();
    if let Some(th) = roff
        .find("\n.TH ")
        .and_then(|at| roff[at + 1..].find('\n').map(|e| at + e + 2))
    {
        let mut setup = Roff::new();
        markdown::no_hyphenation(&mut setup);
        roff.insert_str(th, &setup.to_roff());
    }
    if ancestors.is_empty() {
        roff.push_str(&markdown::to_roff(CLEAT_1, ""));
    }

    let mut see_also: Vec<String> = ancestors.iter().rev().map(|a| format!("{a}(1)")).collect();
    if let Some(parent) = parent.filter(|_| ancestors.len() > 1) {
        let me = format!("{name}(1)");
        see_also.extend(subcommand_pages(parent).into_iter().filter(|s| *s != me));
    }
    if let Some((_, related)) = RELATED.iter().find(|(verb, _)| *verb == name) {
        see_also.extend(related.iter().map(|r| (*r).to_owned()));
    }
    if !see_also.is_empty() {
        roff.push_str(&see_also_section(&see_also));
    }
    pages.push(Page {
        path: Path::new("man1").join(format!("{name}.1")),
        roff,
    });

    let ancestors: Vec<String> = ancestors.iter().cloned().chain([name]).collect();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        verb_pages(sub, &ancestors, Some(cmd), pages);
    }
}

/// `cleat-network-create(1)`, ... for the visible subcommands of `cmd`.
fn subcommand_pages(cmd: &Command) -> Vec<String> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| format!("{}(1)", display_name(s)))
        .collect()
}

/// A SEE ALSO section naming pages as `name(section)`, names in bold.
fn see_also_section(pages: &[String]) -> String {
    let mut text: Vec<Inline> = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let (name, section) = page.split_once('(').unwrap_or((page, ""));
        text.push(bold(name));
        let sep = if i + 1 < pages.len() { ", " } else { "" };
        text.push(roman(format!("({section}{sep}")));
    }
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    roff.text(text);
    let mut bytes = Vec::new();
    let _ = roff.to_writer(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page<'a>(pages: &'a [Page], path: &str) -> &'a str {
        &pages
            .iter()
            .find(|p| p.path == Path::new(path))
            .unwrap_or_else(|| panic!("no page {path}"))
            .roff
    }

    #[test]
    fn a_page_per_visible_verb_and_none_for_hidden_ones() {
        let pages = pages();
        let paths: Vec<String> = pages.iter().map(|p| p.path.display().to_string()).collect();
        for expected in [
            "man1/cleat.1",
            "man1/cleat-run.1",
            "man1/cleat-exec.1",
            "man1/cleat-network.1",
            "man1/cleat-network-create.1",
            "man1/cleat-image-prune.1",
            "man5/cleat.toml.5",
            "man5/cleat-registries.toml.5",
            "man8/container@.service.8",
        ] {
            assert!(
                paths.contains(&expected.to_owned()),
                "{expected} missing: {paths:?}"
            );
        }
        assert!(
            !paths
                .iter()
                .any(|p| p.contains("internal") || p.contains("help")),
            "{paths:?}"
        );
        let cleat = page(&pages, "man1/cleat.1");
        assert!(cleat.contains(".TH CLEAT 1"), "{cleat}");
        assert!(!cleat.contains("internal"), "{cleat}");
        assert!(
            cleat.contains(".SH FILES"),
            "cleat(1) has the sections of cleat.1.md"
        );
        let create = page(&pages, "man1/cleat-network-create.1");
        assert!(create.contains(".TH CLEAT-NETWORK-CREATE 1"), "{create}");
        assert!(create.contains("\\-\\-subnet"), "{create}");
    }

    /// Every page named in a SEE ALSO section of cleat's own exists, and every cleat page is
    /// named in the SEE ALSO of at least one other.
    #[test]
    fn see_also_names_real_pages() {
        let pages = pages();
        let names: Vec<String> = pages
            .iter()
            .map(|p| {
                let file = p.path.file_name().map(|f| f.to_string_lossy().into_owned());
                let file = file.unwrap_or_default();
                let (name, section) = file.rsplit_once('.').unwrap_or((&file, ""));
                format!("{name}({section})")
            })
            .collect();
        let mut named = Vec::new();
        for page in &pages {
            let see_also = &page.roff[page
                .roff
                .find(".SH \"SEE ALSO\"")
                .unwrap_or_else(|| panic!("{} has no SEE ALSO", page.path.display()))..];
            for reference in see_also.split("\\fB").skip(1) {
                let (name, rest) = reference.split_once("\\fR").expect("closed bold");
                let section: String = rest
                    .chars()
                    .skip(1)
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                let reference = format!("{}({section})", name.replace("\\-", "-"));
                if reference.starts_with("cleat") || reference.starts_with("container@") {
                    assert!(
                        names.contains(&reference),
                        "{} names {reference}, which does not exist",
                        page.path.display()
                    );
                    named.push(reference);
                }
            }
        }
        // Verbs are also named in their parent's list of subcommands.
        for name in &names {
            let listed = pages
                .iter()
                .any(|p| p.roff.contains(&name.replace('-', "\\-")));
            assert!(listed || named.contains(name), "no page refers to {name}");
        }
    }

    #[test]
    fn reference_pages_keep_no_markdown() {
        for md in REFERENCE.iter().chain([&CLEAT_1]) {
            let roff = markdown::to_roff(md, "");
            let name = md.lines().next().unwrap_or_default();
            let mut code = false;
            for (n, line) in roff.lines().enumerate() {
                if line == ".nf" || line == ".fi" {
                    code = line == ".nf";
                }
                assert!(
                    code || !(line.contains('`') || line.contains("**")),
                    "{name}: line {}: markdown left: {line}",
                    n + 1
                );
            }
        }
    }

    #[test]
    fn completions_for_each_shell() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completions(shell)).expect("UTF-8");
            assert!(script.contains("network"), "{shell}: {script}");
            assert!(script.contains("publish-all"), "{shell}: {script}");
            // The hidden commands are not offered (`--internal` of network create is).
            let hidden = script
                .replace("-internal", "")
                .replace("internal-", "")
                .replace("-l internal", "");
            assert!(!hidden.contains("internal"), "{shell}: {script}");
        }
    }
}
