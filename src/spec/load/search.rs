//! Where definitions live (DESIGN decision 2, systemd's rules): search directories in priority
//! order; `NAME.toml` from the first directory that has it (a symlink to /dev/null there masks
//! the container); `NAME.toml.d/*.toml` drop-ins from every directory, a drop-in file name taken
//! from the first directory that has it (or masked there), applied in file-name order.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::error::{LoadError, Problem};
use super::{Loaded, load};
use crate::spec::Name;

/// The directories definitions are looked up in, highest priority first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath {
    pub dirs: Vec<PathBuf>,
}

/// A declared container: its main file and the drop-ins that apply to it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: Name,
    pub main: PathBuf,
    /// Drop-ins in the order they apply (by file name, bytewise).
    pub dropins: Vec<PathBuf>,
    /// Same-named files in lower-priority directories: shadowed or masked, and so ignored.
    pub overridden: Vec<PathBuf>,
}

const SUFFIX: &str = ".toml";

impl SearchPath {
    /// The system's directories: local configuration, runtime, then the distribution's.
    pub const SYSTEM: [&'static str; 3] = [
        "/etc/cleat/containers",
        "/run/cleat/containers",
        "/usr/lib/cleat/containers",
    ];

    pub fn system() -> SearchPath {
        SearchPath::new(SearchPath::SYSTEM)
    }

    /// A search path of `dirs`, highest priority first.
    pub fn new(dirs: impl IntoIterator<Item = impl Into<PathBuf>>) -> SearchPath {
        SearchPath {
            dirs: dirs.into_iter().map(Into::into).collect(),
        }
    }

    /// Every declared container, sorted. A masked name is not declared; a `.toml` file whose
    /// name is not a valid container name is left out (see [`SearchPath::misnamed`]).
    pub fn list(&self) -> Result<Vec<Name>, LoadError> {
        let declared = self.declared()?;
        Ok(declared.keys().filter_map(|stem| name_of(stem)).collect())
    }

    /// The definition files that [`SearchPath::list`] leaves out because their names are not
    /// valid container names (loading one with [`super::load_file`] says why).
    pub fn misnamed(&self) -> Result<Vec<PathBuf>, LoadError> {
        let declared = self.declared()?;
        Ok(declared
            .into_iter()
            .filter(|(stem, _)| name_of(stem).is_none())
            .map(|(_, path)| path)
            .collect())
    }

    /// The winning, unmasked `*.toml` file for each file stem.
    fn declared(&self) -> Result<BTreeMap<OsString, PathBuf>, LoadError> {
        let mut winners = BTreeMap::new();
        let mut problems = Vec::new();
        for dir in &self.dirs {
            match file_names(dir) {
                Ok(names) => {
                    for file_name in names {
                        if let Some(stem) = strip_suffix(&file_name) {
                            winners.entry(stem).or_insert_with(|| dir.join(&file_name));
                        }
                    }
                }
                Err(problem) => problems.push(problem),
            }
        }
        if !problems.is_empty() {
            return Err(problems.into());
        }
        winners.retain(|_, path| !is_masked(path));
        Ok(winners)
    }

    /// The definition of `name`: `None` if no directory has `NAME.toml` or if it is masked
    /// (drop-ins alone declare nothing).
    pub fn find(&self, name: &Name) -> Result<Option<Definition>, LoadError> {
        let file_name = format!("{name}{SUFFIX}");
        let mut problems = Vec::new();
        let mut mains = Vec::new();
        for dir in &self.dirs {
            let path = dir.join(&file_name);
            match exists(&path) {
                Ok(true) => mains.push(path),
                Ok(false) => {}
                Err(problem) => problems.push(problem),
            }
        }
        let (dropins, shadowed_dropins) = self.dropins(&format!("{file_name}.d"), &mut problems);
        if !problems.is_empty() {
            return Err(problems.into());
        }
        let mut mains = mains.into_iter();
        let Some(main) = mains.next().filter(|main| !is_masked(main)) else {
            return Ok(None);
        };
        let overridden = mains.chain(shadowed_dropins).collect();
        Ok(Some(Definition {
            name: name.clone(),
            main,
            dropins,
            overridden,
        }))
    }

    /// The drop-ins in `DIR_NAME` under every search directory: those that apply, in order, and
    /// those shadowed by a file of the same name in a higher-priority directory.
    fn dropins(&self, dir_name: &str, problems: &mut Vec<Problem>) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let mut winners: BTreeMap<OsString, PathBuf> = BTreeMap::new();
        let mut shadowed = Vec::new();
        for dir in &self.dirs {
            let dropin_dir = dir.join(dir_name);
            let names = match file_names(&dropin_dir) {
                Ok(names) => names,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            for file_name in names {
                let path = dropin_dir.join(&file_name);
                if strip_suffix(&file_name).is_none() || is_directory(&path) {
                    continue;
                }
                match winners.entry(file_name) {
                    Entry::Vacant(slot) => {
                        slot.insert(path);
                    }
                    Entry::Occupied(_) => shadowed.push(path),
                }
            }
        }
        // BTreeMap<OsString> orders file names bytewise, as systemd orders drop-ins.
        let applied = winners
            .into_values()
            .filter(|path| !is_masked(path))
            .collect();
        (applied, shadowed)
    }
}

impl Definition {
    /// The main file, then the drop-ins in the order they apply.
    pub fn files(&self) -> Vec<PathBuf> {
        std::iter::once(&self.main)
            .chain(&self.dropins)
            .cloned()
            .collect()
    }

    /// Reads, merges and checks the files.
    pub fn load(&self) -> Result<Loaded, LoadError> {
        load(self.name.clone(), self.files(), self.overridden.clone())
    }
}

/// The names in `dir`, without hidden ones; none if `dir` does not exist.
fn file_names(dir: &Path) -> Result<Vec<OsString>, Problem> {
    let io_problem = |source: io::Error| Problem::Io {
        path: dir.to_owned(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_problem(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry.map_err(io_problem)?.file_name();
        if !name.as_bytes().starts_with(b".") {
            names.push(name);
        }
    }
    Ok(names)
}

/// `web` for `web.toml`; `None` for names without the suffix.
fn strip_suffix(file_name: &OsStr) -> Option<OsString> {
    let stem = file_name.as_bytes().strip_suffix(SUFFIX.as_bytes())?;
    (!stem.is_empty()).then(|| OsStr::from_bytes(stem).to_owned())
}

fn name_of(stem: &OsStr) -> Option<Name> {
    stem.to_str()?.parse().ok()
}

/// Whether `path` exists as a directory entry (a dangling symlink counts: loading reports it).
fn exists(path: &Path) -> Result<bool, Problem> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Problem::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn is_directory(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// A mask: a symlink to /dev/null (or anything else that resolves to the null device).
fn is_masked(path: &Path) -> bool {
    if fs::read_link(path).is_ok_and(|target| target == Path::new("/dev/null")) {
        return true;
    }
    fs::metadata(path).is_ok_and(|m| {
        let rdev = m.rdev();
        m.file_type().is_char_device()
            && rustix::fs::major(rdev) == 1
            && rustix::fs::minor(rdev) == 3
    })
}
