//! What cleat remembers between commands, one directory per container under
//! `/var/lib/cleat/containers/NAME/`:
//! - `definition.json`: an ad-hoc container's spec and creation time (its presence is what
//!   makes a name ad-hoc);
//! - `state.json`: how the last run ended, written by the unit's `ExecStopPost=` (both kinds),
//!   so `cleat ps -a` can show "Exited (3) 5 minutes ago" after systemd forgot the unit.
//!
//! Writes are atomic (temporary file, then rename or link); creating a definition is also
//! exclusive, so two `cleat run --name X` at once cannot both win. Nothing here is on the
//! start path's critical section, and nothing takes a global lock.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::{Name, Spec};

pub const SYSTEM_STATE_DIR: &str = "/var/lib/cleat/containers";

/// In a container's state directory: the socket of its terminal (`tty`), for `cleat attach`.
pub const CONSOLE_SOCKET: &str = "console.sock";

const DEFINITION: &str = "definition.json";
const EXIT: &str = "state.json";
const IMAGE: &str = "image.json";

/// An ad-hoc container's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AdhocRecord {
    /// Unique for every container ever created, unlike the name: it tells this container's
    /// journal entries (`CLEAT_CONTAINER_ID=`) from those of an earlier one of the same name.
    pub id: String,
    pub spec: Spec,
    /// Microseconds since the epoch.
    pub created_usec: u64,
    /// `--rm`: remove the container when it stops.
    #[serde(default)]
    pub auto_remove: bool,
    /// The image manifest the container was created from (as Docker keeps the image ID): its
    /// starts use this image even if the tag moves on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::image::Digest>,
}

/// The image a container's last start used, recorded so that the image is not removed under
/// it (`state.json` records how it ended; this, what it ran).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageUse {
    pub reference: String,
    pub digest: crate::image::Digest,
}

/// How a run ended (from systemd's `$SERVICE_RESULT`, `$EXIT_CODE`, `$EXIT_STATUS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExitRecord {
    pub finished_usec: u64,
    /// `success`, `exit-code`, `signal`, `timeout`, `core-dump`, ...
    pub result: String,
    /// `exited`, `killed` or `dumped`; empty if the process never ran.
    pub code: String,
    /// The exit status, or the signal name/number for `killed`/`dumped`.
    pub status: String,
    /// Docker's single number: the status if it exited, 128 + signal if a signal ended it.
    pub exit_code: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "the name {0} is already in use by an ad-hoc container; remove it with `cleat rm {0}` or choose another name"
    )]
    NameInUse(Name),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: corrupt state ({source}); remove the file to reset it")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn system() -> StateDir {
        StateDir::at(SYSTEM_STATE_DIR)
    }

    pub fn at(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    pub fn dir(&self, name: &Name) -> PathBuf {
        self.root.join(name.as_str())
    }

    /// The container's directory, created if needed. Private to root: definitions hold
    /// environment variables, which often carry secrets.
    fn ensure_dir(&self, name: &Name) -> Result<PathBuf, StateError> {
        let dir = self.dir(name);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        Ok(dir)
    }

    /// Writes `bytes` to a fresh temporary file (mode 0600) in `dir` and returns its path;
    /// `durable` also waits until the data is on disk.
    fn write_temp(dir: &Path, bytes: &[u8], durable: bool) -> Result<PathBuf, StateError> {
        for attempt in 0..100u32 {
            let tmp = dir.join(format!(".tmp-{}-{attempt}", std::process::id()));
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
            {
                Ok(mut f) => {
                    let written = f
                        .write_all(bytes)
                        .and_then(|()| if durable { f.sync_all() } else { Ok(()) });
                    if let Err(e) = written {
                        let _ = fs::remove_file(&tmp);
                        return Err(io_err(&tmp)(e));
                    }
                    return Ok(tmp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&tmp)(e)),
            }
        }
        Err(io_err(dir)(io::Error::other(
            "cannot create a temporary file",
        )))
    }

    /// Records a new ad-hoc container; fails with [`StateError::NameInUse`] if one of that
    /// name exists (exclusive even against a concurrent `cleat run`).
    pub fn create_adhoc(&self, record: &AdhocRecord) -> Result<(), StateError> {
        let name = &record.spec.name;
        let dir = self.ensure_dir(name)?;
        let json = serde_json::to_vec_pretty(record).map_err(|source| StateError::Corrupt {
            path: dir.clone(),
            source,
        })?;
        // A definition must survive a crash (it is all there is of an ad-hoc container), so
        // it reaches the disk before it becomes visible. Not on the start path.
        let tmp = Self::write_temp(&dir, &json, true)?;
        let target = dir.join(DEFINITION);
        // link(2) fails if the target exists: the exclusive, atomic create.
        let linked = fs::hard_link(&tmp, &target);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                // A previous container of this name may have left its last exit behind.
                let _ = fs::remove_file(dir.join(EXIT));
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StateError::NameInUse(name.clone()))
            }
            Err(e) => Err(io_err(&target)(e)),
        }
    }

    fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StateError> {
        match fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StateError::Corrupt {
                        path: path.to_owned(),
                        source,
                    })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    fn write_json<T: Serialize>(
        &self,
        name: &Name,
        file: &str,
        value: &T,
    ) -> Result<(), StateError> {
        let dir = self.ensure_dir(name)?;
        let path = dir.join(file);
        let json = serde_json::to_vec_pretty(value).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let tmp = Self::write_temp(&dir, &json, false)?;
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(&path)(e)
        })
    }

    pub fn load_adhoc(&self, name: &Name) -> Result<Option<AdhocRecord>, StateError> {
        Self::read_json(&self.dir(name).join(DEFINITION))
    }

    pub fn is_adhoc(&self, name: &Name) -> bool {
        self.dir(name).join(DEFINITION).exists()
    }

    /// The container directories that `keep` accepts, sorted by name.
    fn names(&self, keep: impl Fn(&Name) -> bool) -> Result<Vec<Name>, StateError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.root)(e)),
        };
        let mut names: Vec<Name> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<Name>().ok()))
            .filter(|n| keep(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every ad-hoc container, sorted by name.
    pub fn list_adhoc(&self) -> Result<Vec<Name>, StateError> {
        self.names(|n| self.is_adhoc(n))
    }

    pub fn write_exit(&self, name: &Name, record: &ExitRecord) -> Result<(), StateError> {
        self.write_json(name, EXIT, record)
    }

    pub fn read_exit(&self, name: &Name) -> Result<Option<ExitRecord>, StateError> {
        Self::read_json(&self.dir(name).join(EXIT))
    }

    pub fn write_image_use(&self, name: &Name, used: &ImageUse) -> Result<(), StateError> {
        self.write_json(name, IMAGE, used)
    }

    pub fn read_image_use(&self, name: &Name) -> Result<Option<ImageUse>, StateError> {
        Self::read_json(&self.dir(name).join(IMAGE))
    }

    /// Every container directory (both kinds), sorted by name.
    pub fn list_all(&self) -> Result<Vec<Name>, StateError> {
        self.names(|_| true)
    }

    /// A container's own directories for an image's overlay: its writable layer, overlayfs's
    /// work directory, and the mount point. Created if missing; the writable layer survives
    /// restarts, and `cleat rm` removes it with the rest.
    pub fn overlay_dirs(&self, name: &Name) -> Result<(PathBuf, PathBuf, PathBuf), StateError> {
        let dir = self.ensure_dir(name)?;
        let make = |sub: &str| -> Result<PathBuf, StateError> {
            let path = dir.join(sub);
            match fs::DirBuilder::new().mode(0o755).create(&path) {
                Ok(()) => Ok(path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(path),
                Err(e) => Err(io_err(&path)(e)),
            }
        };
        Ok((make("upper")?, make("work")?, make("rootfs")?))
    }

    /// Forgets a container entirely.
    pub fn remove(&self, name: &Name) -> Result<(), StateError> {
        let dir = self.dir(name);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&dir)(e)),
        }
    }
}

/// A new container ID: 128 random bits, in hex.
/// Where the exits of `--rm` containers stay for a while after their state is removed, by
/// container ID: for a `cleat run` in the foreground that finds the unit collected before it
/// could read it.
const KEPT_EXITS: &str = "/run/cleat/exits";
/// How long a kept exit stays (nobody reads those of `run -d --rm`).
const KEPT_EXIT_USEC: u64 = 10 * 60 * 1_000_000;

/// Keeps `record` as the exit of the run with container ID `id` (best effort), and forgets
/// kept exits older than [`KEPT_EXIT_USEC`].
pub fn keep_exit(id: &str, record: &ExitRecord) {
    let dir = Path::new(KEPT_EXITS);
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let stale = fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<ExitRecord>(&b).ok())
                .is_none_or(|r| r.finished_usec + KEPT_EXIT_USEC < record.finished_usec);
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    if let Ok(json) = serde_json::to_vec(record) {
        let _ = fs::write(dir.join(format!("{id}.json")), json);
    }
}

/// Takes the kept exit of the run with container ID `id`, if there is one.
pub fn take_kept_exit(id: &str) -> Option<ExitRecord> {
    let path = Path::new(KEPT_EXITS).join(format!("{id}.json"));
    let record = serde_json::from_slice(&fs::read(&path).ok()?).ok();
    let _ = fs::remove_file(&path);
    record
}

pub fn new_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl ExitRecord {
    /// Builds the record from the variables systemd passes to `ExecStopPost=`.
    pub fn from_service_env(result: &str, code: &str, status: &str, now_usec: u64) -> ExitRecord {
        let exit_code = match code {
            "exited" => status.parse().ok(),
            "killed" | "dumped" => status
                .parse::<crate::spec::Signal>()
                .ok()
                .map(|s| 128 + s.number()),
            _ => None,
        };
        ExitRecord {
            finished_usec: now_usec,
            result: result.to_owned(),
            code: code.to_owned(),
            status: status.to_owned(),
            exit_code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Source;

    fn scratch(name: &str) -> StateDir {
        let dir = std::env::temp_dir().join(format!("cleat-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        StateDir::at(dir)
    }

    fn record(name: &str) -> AdhocRecord {
        AdhocRecord {
            id: "0123456789abcdef0123456789abcdef".into(),
            spec: Spec::new(name.parse().unwrap(), Source::Rootfs("/r".into())),
            created_usec: 1,
            auto_remove: false,
            image: None,
        }
    }

    #[test]
    fn create_is_exclusive_and_round_trips() {
        let state = scratch("excl");
        state.create_adhoc(&record("web")).unwrap();
        assert!(matches!(
            state.create_adhoc(&record("web")),
            Err(StateError::NameInUse(_))
        ));
        assert_eq!(
            state.load_adhoc(&"web".parse().unwrap()).unwrap(),
            Some(record("web"))
        );
        state.create_adhoc(&record("db")).unwrap();
        let names: Vec<String> = state
            .list_adhoc()
            .unwrap()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["db", "web"]);
        // No temporary files are left behind, and only root can read the definition.
        let dir = state.dir(&"web".parse().unwrap());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let file = fs::metadata(dir.join(DEFINITION)).unwrap();
        assert_eq!(file.permissions().mode() & 0o777, 0o600);
        fs::remove_dir_all(&state.root).unwrap();
    }

    #[test]
    fn exit_records() {
        let state = scratch("exit");
        let name: Name = "web".parse().unwrap();
        assert_eq!(state.read_exit(&name).unwrap(), None);
        let rec = ExitRecord::from_service_env("exit-code", "exited", "3", 7);
        assert_eq!(rec.exit_code, Some(3));
        state.write_exit(&name, &rec).unwrap();
        assert_eq!(state.read_exit(&name).unwrap(), Some(rec));
        assert!(
            !state.is_adhoc(&name),
            "an exit record alone does not make a container ad-hoc"
        );
        assert_eq!(
            ExitRecord::from_service_env("signal", "killed", "KILL", 0).exit_code,
            Some(137)
        );
        assert_eq!(
            ExitRecord::from_service_env("signal", "killed", "9", 0).exit_code,
            Some(137)
        );
        state.remove(&name).unwrap();
        state.remove(&name).unwrap();
        fs::remove_dir_all(&state.root).ok();
    }
}
