//! The install lists stay one list: what `make install` produces (with the Debian package's
//! directories, and with the RPM spec's) must be exactly what `debian/cleat.install` and the
//! spec's `%files` name: every installed file and empty directory matched by an entry, and
//! every entry matching something. A file added to `make install` and forgotten in a package
//! (or the other way round) fails here, before any package is built. Runs `make install` with
//! the binaries this test was built with, as a user, into temporary directories.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("cleat-packaging-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What `make install VARS` puts into a fresh DESTDIR: its files, symbolic links and empty
/// directories, relative to DESTDIR, with the mode of each.
fn make_install(name: &str, vars: &[String]) -> Vec<(String, u32)> {
    let scratch = Scratch::new(name);
    let bin = Path::new(env!("CARGO_BIN_EXE_cleat")).parent().unwrap();
    assert!(
        bin.join("cleat-generator").exists(),
        "cleat-generator is not beside {}",
        bin.display()
    );
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(repo())
        .arg("install")
        .args(vars)
        .arg(format!("DESTDIR={}", scratch.0.display()))
        .arg(format!("BIN_DIR={}", bin.display()))
        .output()
        .expect("running make");
    assert!(
        out.status.success(),
        "make install {vars:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut entries = Vec::new();
    walk(&scratch.0, &scratch.0, &mut entries);
    entries.sort();
    entries
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    let mut children = std::fs::read_dir(dir).unwrap().peekable();
    if children.peek().is_none() && dir != root {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777;
        out.push((relative(root, dir) + "/", mode));
    }
    for child in children {
        let path = child.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(root, &path, out);
        } else {
            out.push((relative(root, &path), meta.permissions().mode() & 0o7777));
        }
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap().display().to_string()
}

/// Shell-style matching of one path against a pattern where `*` stands for any characters
/// but `/`.
fn glob(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((head, tail)) => {
            let Some(rest) = path.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .take_while(|&i| !rest[..i].contains('/'))
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

/// One entry of a package's list: a pattern, and whether it claims what is below it (a
/// directory named without `%dir` does, in both formats).
struct Entry {
    pattern: String,
    only_itself: bool,
    mode: Option<u32>,
}

impl Entry {
    fn matches(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        glob(&self.pattern, path)
            || (!self.only_itself
                && path
                    .match_indices('/')
                    .any(|(i, _)| glob(&self.pattern, &path[..i])))
    }
}

/// Compares an install tree with a package's list; returns the differences, one per line.
fn compare(what: &str, installed: &[(String, u32)], list: &[Entry]) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, mode) in installed {
        let matching: Vec<&Entry> = list.iter().filter(|e| e.matches(path)).collect();
        if matching.is_empty() {
            problems.push(format!(
                "{what}: make install makes {path}, which is not listed"
            ));
        }
        for e in matching {
            if let Some(want) = e.mode.filter(|want| want != mode) {
                problems.push(format!(
                    "{what}: {path} is installed with mode {mode:o}, listed with {want:o}"
                ));
            }
        }
    }
    for e in list {
        // An entry may name a directory that holds what is installed (`%dir /etc/cleat`).
        let names_something = |path: &str| {
            e.matches(path)
                || path
                    .match_indices('/')
                    .any(|(i, _)| glob(&e.pattern, &path[..i]))
        };
        if !installed.iter().any(|(path, _)| names_something(path)) {
            problems.push(format!(
                "{what}: {} is listed, but make install makes nothing there",
                e.pattern
            ));
        }
    }
    problems
}

/// `debian/rules print-install-dirs`: the directories the Debian package installs with.
fn debian_install_dirs() -> Vec<String> {
    let out = Command::new("make")
        .args(["-s", "-f", "debian/rules", "print-install-dirs"])
        .current_dir(repo())
        .output()
        .expect("running make -f debian/rules");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn debian_list() -> Vec<Entry> {
    let text = std::fs::read_to_string(repo().join("debian/cleat.install")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| Entry {
            // One source per line: the package keeps the path it has in debian/tmp.
            pattern: l.split_whitespace().next().unwrap().to_owned(),
            only_itself: false,
            mode: None,
        })
        .collect()
}

/// The RPM macros the spec uses, with their values on Fedora and RHEL.
const RPM_MACROS: &[(&str, &str)] = &[
    ("_prefix", "/usr"),
    ("_bindir", "/usr/bin"),
    ("_unitdir", "/usr/lib/systemd/system"),
    ("_systemdgeneratordir", "/usr/lib/systemd/system-generators"),
    ("_tmpfilesdir", "/usr/lib/tmpfiles.d"),
    ("_mandir", "/usr/share/man"),
    ("_datadir", "/usr/share"),
    ("_sysconfdir", "/etc"),
    ("_localstatedir", "/var"),
    (
        "bash_completions_dir",
        "/usr/share/bash-completion/completions",
    ),
    ("zsh_completions_dir", "/usr/share/zsh/site-functions"),
    (
        "fish_completions_dir",
        "/usr/share/fish/vendor_completions.d",
    ),
];

fn expand(text: &str) -> String {
    let mut out = text.to_owned();
    for (name, value) in RPM_MACROS {
        out = out.replace(&format!("%{{{name}}}"), value);
    }
    assert!(
        !out.contains("%{"),
        "an RPM macro this test does not know: {text}"
    );
    out
}

fn spec() -> String {
    std::fs::read_to_string(repo().join("packaging/cleat.spec")).unwrap()
}

/// The `VAR=VALUE` arguments of the spec's `%make_install`.
fn rpm_install_dirs(spec: &str) -> Vec<String> {
    let line = spec
        .lines()
        .find(|l| l.starts_with("%make_install"))
        .expect("%make_install in the spec");
    line.split_whitespace().skip(1).map(expand).collect()
}

fn rpm_list(spec: &str) -> Vec<Entry> {
    let files = &spec[spec.find("\n%files").expect("%files in the spec") + 1..];
    files
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("%changelog") && !l.starts_with("%files"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut only_itself = false;
            let mut mode = None;
            let mut rest = line;
            while let Some(directive) = rest.strip_prefix('%').filter(|r| !r.starts_with('{')) {
                let end = directive
                    .find(|c: char| c.is_whitespace() || c == '(')
                    .unwrap_or(directive.len());
                let (name, mut after) = directive.split_at(end);
                let mut args = "";
                if let Some(a) = after.strip_prefix('(') {
                    let close = a.find(')').expect("closed directive");
                    args = &a[..close];
                    after = &a[close + 1..];
                }
                match name {
                    "dir" => only_itself = true,
                    "attr" => {
                        mode = args
                            .split(',')
                            .next()
                            .and_then(|m| u32::from_str_radix(m.trim(), 8).ok());
                    }
                    "config" | "license" | "doc" | "ghost" | "verify" => {}
                    other => panic!("a %files directive this test does not know: %{other}"),
                }
                rest = after.trim_start();
            }
            Entry {
                pattern: expand(rest).trim_start_matches('/').to_owned(),
                only_itself,
                mode,
            }
        })
        .collect()
}

#[test]
fn debian_install_list_is_make_install() {
    let installed = make_install("deb", &debian_install_dirs());
    let problems = compare("debian/cleat.install", &installed, &debian_list());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The Debian package's own additions to what make install does.
    let rules = std::fs::read_to_string(repo().join("debian/rules")).unwrap();
    for (path, mode) in &installed {
        if *mode & 0o7777 == 0o700 && path.ends_with('/') {
            let chmod = format!("chmod 0700 debian/cleat/{}", path.trim_end_matches('/'));
            assert!(
                rules.contains(&chmod),
                "debian/rules must `{chmod}` (dh_fixperms resets it)"
            );
        }
    }
}

#[test]
fn rpm_files_are_make_install() {
    let spec = spec();
    let installed = make_install("rpm", &rpm_install_dirs(&spec));
    let problems = compare("packaging/cleat.spec %files", &installed, &rpm_list(&spec));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Both packages install the same things, only in their distributions' places.
#[test]
fn both_packages_install_the_same_files() {
    let names = |installed: Vec<(String, u32)>| -> BTreeSet<(String, u32)> {
        installed
            .into_iter()
            .map(|(path, mode)| {
                let name = path
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned();
                (name, mode)
            })
            .collect()
    };
    let deb = names(make_install("deb-names", &debian_install_dirs()));
    let rpm = names(make_install("rpm-names", &rpm_install_dirs(&spec())));
    assert_eq!(deb, rpm);
}

#[test]
fn versions_agree() {
    let version = env!("CARGO_PKG_VERSION");
    let changelog = std::fs::read_to_string(repo().join("debian/changelog")).unwrap();
    assert!(
        changelog.starts_with(&format!("cleat ({version})")),
        "debian/changelog's first entry is not {version}"
    );
    assert!(
        spec()
            .lines()
            .any(|l| l.split_whitespace().eq(["Version:", version])),
        "packaging/cleat.spec's Version is not {version}"
    );
}

#[test]
fn glob_matches_within_one_component() {
    assert!(glob(
        "usr/share/man/man1/cleat-*.1.gz",
        "usr/share/man/man1/cleat-run.1.gz"
    ));
    assert!(!glob(
        "usr/share/man/man1/cleat-*.1.gz",
        "usr/share/man/man1/cleat.1.gz"
    ));
    assert!(!glob("usr/*/cleat", "usr/share/bash/cleat"));
    assert!(glob(
        "usr/share/man/man1/cleat.1*",
        "usr/share/man/man1/cleat.1.gz"
    ));
}
