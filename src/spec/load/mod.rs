//! Container definitions in TOML (see `cleat.toml(5)`): where they are found (the search path,
//! drop-ins, masking), how a file and its drop-ins merge, and how the result is checked and
//! becomes a [`Spec`]. Every problem is located by file, line, column and key, and all of them
//! are reported at once.
//!
//! ```text
//! SearchPath::find(name) ─► Definition ─► Definition::load() ─► Loaded { spec, merged }
//!                            (main file + drop-ins)              Merged::to_toml()/to_json()
//! ```

mod error;
mod schema;
mod search;
mod show;
mod suggest;
mod tree;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use error::{LoadError, Position, Problem};
pub use search::{Definition, SearchPath};
pub use show::{Merged, Origin};
pub use suggest::suggest;

use super::{Name, Spec};
use tree::Table;

/// A loaded definition: the spec, and the merged tree it came from (for `cleat config show`).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub spec: Spec,
    pub merged: Merged,
}

/// Loads one file on its own, without the search path or drop-ins (`cleat config check FILE`).
/// The container is named after the file: `web.toml` is `web`.
pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    load(name_from_file(path)?, vec![path.to_owned()], Vec::new())
}

fn name_from_file(path: &Path) -> Result<Name, Problem> {
    let invalid = |message: String| Problem::Invalid {
        path: path.to_owned(),
        at: None,
        key: None,
        message,
    };
    let stem = path.file_stem().unwrap_or_default();
    let stem = stem.to_str().ok_or_else(|| {
        invalid("the file name is not valid UTF-8, so it names no container".into())
    })?;
    stem.parse()
        .map_err(|e| invalid(format!("the file name does not name a container: {e}")))
}

/// Reads `files` (main file first, then drop-ins in order), checks each, merges them and turns
/// the result into a spec. Every problem of every file is reported.
fn load(name: Name, files: Vec<PathBuf>, overridden: Vec<PathBuf>) -> Result<Loaded, LoadError> {
    let mut problems = Vec::new();
    let mut tables = Vec::new();
    for (index, path) in files.iter().enumerate() {
        match tree::read_file(index, path) {
            Ok(table) => {
                // Each file is checked on its own, so that a bad value a later drop-in
                // overrides is still reported, and reported once.
                problems.extend(schema::read(&table, &files, &name).1);
                tables.push(table);
            }
            Err(found) => problems.extend(found),
        }
    }
    if tables.len() < files.len() {
        // A file could not be read or parsed: what the rest say together would be guesswork.
        return Err(problems.into());
    }
    let root = tables
        .into_iter()
        .fold(Table::default(), |mut merged, table| {
            merged.merge(table);
            merged
        });
    // Every problem of single values was found above; merging only adds image-vs-rootfs.
    let (draft, _) = schema::read(&root, &files, &name);
    match draft.into_spec(&files) {
        Ok(spec) if problems.is_empty() => Ok(Loaded {
            spec,
            merged: Merged {
                name,
                files,
                overridden,
                root,
            },
        }),
        Ok(_) => Err(problems.into()),
        Err(problem) => {
            problems.push(problem);
            Err(problems.into())
        }
    }
}
