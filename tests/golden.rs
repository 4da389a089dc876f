//! Golden files for the one translator (DESIGN decision 1): each `tests/golden/NAME.toml` is
//! loaded as a declared container, and the generator's drop-in and the transient unit's D-Bus
//! properties it translates to must equal `NAME.conf` and `NAME.dbus` line for line.
//! `CLEAT_BLESS=1 cargo test --test golden` rewrites the expected files after a deliberate
//! change (review the diff).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cleat::spec::Name;
use cleat::spec::load::load_file;
use cleat::unit::{generator, props};

fn unit_of(n: &Name) -> String {
    format!("container@{n}.service")
}

fn check(expected_path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("CLEAT_BLESS").is_some() {
        std::fs::write(expected_path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{} differs.\n--- expected\n{expected}\n--- actual\n{actual}",
            expected_path.display()
        ));
    }
}

#[test]
fn golden_translations() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 4,
        "golden inputs missing in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for input in &inputs {
        let spec = match load_file(input) {
            Ok(l) => l.spec,
            Err(e) => panic!("{} does not load:\n{e}", input.display()),
        };
        check(
            &input.with_extension("conf"),
            &generator::dropin(&spec, &unit_of),
            &mut failures,
        );
        let transient = props::transient(
            &spec,
            "d00dfeedd00dfeedd00dfeedd00dfeed",
            "/usr/bin/cleat",
            &unit_of,
        );
        check(
            &input.with_extension("dbus"),
            &props::render_dbus(&transient),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
