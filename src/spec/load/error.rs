//! What can go wrong while finding and loading definitions: [`LoadError`], a list of every
//! [`Problem`] found, each naming the file (and line, column and key when there is one).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Every problem found in a definition and its drop-ins (or in the search directories). Loading
/// does not stop at the first one; `Display` prints them one per line: file by file in the order
/// the files apply, then those that involve several files.
#[derive(Debug, thiserror::Error)]
#[error("{}", DisplayLines(.problems))]
pub struct LoadError {
    problems: Vec<Problem>,
}

impl LoadError {
    /// The problems, in the order they are printed. Never empty.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}

impl From<Vec<Problem>> for LoadError {
    fn from(problems: Vec<Problem>) -> LoadError {
        LoadError { problems }
    }
}

impl From<Problem> for LoadError {
    fn from(problem: Problem) -> LoadError {
        LoadError {
            problems: vec![problem],
        }
    }
}

/// One thing wrong, printed as `FILE:LINE:COLUMN: KEY: message` (the parts that are known).
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A file or directory that exists but could not be read.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The content of a file is wrong: bad TOML, an unknown key, a value of the wrong type or
    /// out of range, or settings that contradict each other.
    #[error("{}{}: {}{message}", .path.display(), DisplayAt(.at), DisplayKey(.key))]
    Invalid {
        path: PathBuf,
        /// Where in the file, if the problem is at one place.
        at: Option<Position>,
        /// The key the problem is about, as written in TOML (`env.PORT`, `unit.after[1]`).
        key: Option<String>,
        message: String,
    },
}

/// A place in a file, both 1-based; the column counts characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

struct DisplayLines<'a>(&'a [Problem]);

impl fmt::Display for DisplayLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

struct DisplayAt<'a>(&'a Option<Position>);

impl fmt::Display for DisplayAt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(at) => write!(f, ":{at}"),
            None => Ok(()),
        }
    }
}

struct DisplayKey<'a>(&'a Option<String>);

impl fmt::Display for DisplayKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(key) => write!(f, "{key}: "),
            None => Ok(()),
        }
    }
}
