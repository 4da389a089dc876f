//! `cleat-generator`: the systemd generator for declared containers (see
//! `cleat::unit::generator`). systemd runs it as `cleat-generator NORMAL_DIR EARLY_DIR LATE_DIR`
//! at boot and at every daemon-reload; it writes only into NORMAL_DIR.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cleat::containers::Registry;
use cleat::unit::generator;

/// Where the template unit is: next to this generator's own directory
/// (`$PREFIX/lib/systemd/system-generators/` → `$PREFIX/lib/systemd/system/`).
fn template_path() -> PathBuf {
    let beside = cleat::sealed::own_path()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("system/container@.service")));
    match beside {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("/usr/lib/systemd/system/container@.service"),
    }
}

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: cleat-generator NORMAL_DIR [EARLY_DIR LATE_DIR]");
        return ExitCode::from(2);
    };
    let out = generator::generate(&Registry::system(), &template_path());
    for error in &out.errors {
        eprintln!("cleat-generator: {error}");
    }
    match generator::write(Path::new(dir), &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cleat-generator: writing to {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
