//! A container's mounts besides its root, as mount steps: bind mounts, volumes, tmpfs, the
//! image's declared volumes and those shared with `--volumes-from`, with Docker's precedence:
//!
//! 1. `--volumes-from C[:ro|:rw]`: C's bind mounts and volumes (not its tmpfs), at C's
//!    targets; a later C wins over an earlier one at the same target;
//! 2. the spec's own `volumes`, `mounts` and `tmpfs`: they win over what `--volumes-from`
//!    brings, but two of them at one target are an error ("duplicate mount point");
//! 3. the image's `VOLUME`s, as anonymous volumes, where nothing else is mounted.
//!
//! Planning is two-phase. [`check_mounts`] does every check and touches nothing (so
//! `cleat run`/`create` can refuse a bad mount before anything exists); [`plan_mounts`]
//! checks the same way, and only then creates what is missing: named volumes on first use,
//! the container's anonymous volumes at its first start (recorded in its state, found again
//! at the next starts). A volume is filled from the image (`populate`) the first time a
//! container mounts it with the right to (not `nocopy`, not through `--volumes-from`).
//!
//! The steps come out ordered by depth (`/data` before `/data/cache`), so a mount never
//! lands in a directory that a later one covers.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;

use crate::containers::Registry;
use crate::image::ImageConfig;
use crate::spec::mounts::{PROPAGATION_MODES, VolumesFrom, check_host_path, check_target};
use crate::spec::{MountKind, MountSpec, Name, Spec};
use crate::state::StateDir;
use crate::volume::{OwnedVolumes, Volume, VolumeError, VolumeName, VolumeStore};

use super::{Mount, MountFlags};

/// Checks a container's mounts as [`plan_mounts`] would, without creating anything: every
/// target valid and used once, every bind source present, every `--volumes-from` container
/// known, the image's volumes mountable.
pub fn check_mounts(
    spec: &Spec,
    image: &ImageConfig,
    registry: &Registry,
) -> Result<(), VolumeError> {
    draft(spec, image, registry).map(drop)
}

/// The mount steps for a container's volumes, bind mounts and tmpfs, to be made after the
/// standard ones (`/proc`, `/dev`, `/sys`) and before the root is made read-only. Creates the
/// volumes that are missing and records the container's anonymous volumes in its state, but
/// only once every check has passed: a bad mount creates nothing.
pub fn plan_mounts(
    spec: &Spec,
    image: &ImageConfig,
    volumes: &VolumeStore,
    registry: &Registry,
) -> Result<Vec<Mount>, VolumeError> {
    let entries = draft(spec, image, registry)?;
    Realiser::new(volumes, &registry.state).realise(entries)
}

/// Records that the volumes a plan filled (`populate`) are filled, so that no later start
/// fills them again. Call it once the container has started: a start that failed before or
/// while filling leaves the volume empty and unmarked, to be filled by the next one.
pub fn mark_filled(mounts: &[Mount], volumes: &VolumeStore) -> Result<(), VolumeError> {
    for mount in mounts {
        if let Mount::Volume {
            source,
            populate: true,
            ..
        } = mount
        {
            let name = source
                .parent()
                .filter(|dir| dir.parent() == Some(volumes.root()))
                .and_then(|dir| dir.file_name()?.to_str()?.parse::<VolumeName>().ok());
            if let Some(name) = name {
                volumes.mark_populated(&name)?;
            }
        }
    }
    Ok(())
}

/// One mount, checked but not yet backed by a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    target: String,
    what: What,
    readonly: bool,
    /// May fill a new volume from the image: an own mount without `nocopy`.
    copy: bool,
    /// What it is, for messages: `volume "data"`, `the bind mount of /srv`.
    description: String,
    /// The container it comes from, through `--volumes-from`.
    shared_by: Option<Name>,
    /// From the spec's own `volumes`/`mounts`/`tmpfs`: a second one at the same target is a
    /// duplicate.
    own: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    Bind {
        path: PathBuf,
        propagation: Option<String>,
    },
    Named(VolumeName),
    /// The anonymous volume `owner` has (or will have) at this target.
    Anonymous {
        owner: Name,
    },
    Tmpfs {
        options: String,
        flags: MountFlags,
    },
}

/// Every mount of the container, checked, ordered parents first. No side effects.
fn draft(spec: &Spec, image: &ImageConfig, registry: &Registry) -> Result<Vec<Entry>, VolumeError> {
    let mut by_target: BTreeMap<String, Entry> = BTreeMap::new();
    for from in spec.volumes_from.iter().cloned() {
        if from.container == spec.name {
            return Err(VolumeError::Invalid(format!(
                "--volumes-from {}: a container cannot mount its own volumes",
                from.container
            )));
        }
        let mut visiting = BTreeSet::from([spec.name.clone()]);
        for entry in shared_mounts(registry, &from, &mut visiting)? {
            by_target.insert(entry.target.clone(), entry);
        }
    }
    for mount in spec.volumes.iter().chain(&spec.mounts).chain(&spec.tmpfs) {
        let entry = entry(mount, &spec.name)?;
        if let Some(earlier) = by_target.get(&entry.target).filter(|e| e.own) {
            return Err(VolumeError::Duplicate {
                target: entry.target,
                first: earlier.description.clone(),
                second: entry.description,
            });
        }
        by_target.insert(entry.target.clone(), entry);
    }
    for path in &image.volumes {
        let target = image_volume_target(path)?;
        by_target
            .entry(target.clone())
            .or_insert_with(|| anonymous(target, &spec.name, "the image's volume"));
    }
    for entry in by_target.values() {
        check_bind_source(entry)?;
    }
    let mut entries: Vec<Entry> = by_target.into_values().collect();
    entries.sort_by_key(|e| e.target.matches('/').count());
    Ok(entries)
}

/// The mounts container `from` shares: its bind mounts and volumes (its own anonymous ones
/// included, and what it has through its own `--volumes-from`), never filled from this
/// container's image, read-only if `:ro` says so. `visiting` stops a cycle.
fn shared_mounts(
    registry: &Registry,
    from: &VolumesFrom,
    visiting: &mut BTreeSet<Name>,
) -> Result<Vec<Entry>, VolumeError> {
    let name = &from.container;
    if !visiting.insert(name.clone()) {
        return Ok(Vec::new());
    }
    let container = registry.load(name).map_err(|e| VolumeError::VolumesFrom {
        container: name.clone(),
        source: Box::new(e),
    })?;
    let spec = &container.spec;
    let mut by_target: BTreeMap<String, Entry> = BTreeMap::new();
    for inner in &spec.volumes_from {
        for entry in shared_mounts(registry, inner, visiting)? {
            by_target.insert(entry.target.clone(), entry);
        }
    }
    for mount in spec.volumes.iter().chain(&spec.mounts) {
        let entry = entry(mount, name)
            .map_err(|e| VolumeError::Invalid(format!("--volumes-from {name}: {e}")))?;
        by_target.insert(entry.target.clone(), entry);
    }
    let owned = OwnedVolumes::read(&registry.state, name)?;
    for target in owned.anonymous.keys() {
        by_target
            .entry(target.clone())
            .or_insert_with(|| anonymous(target.clone(), name, "an anonymous volume"));
    }
    Ok(by_target
        .into_values()
        .map(|mut entry| {
            entry.readonly |= from.read_only == Some(true);
            entry.copy = false;
            entry.own = false;
            entry.shared_by.get_or_insert_with(|| name.clone());
            entry
        })
        .collect())
}

/// The entry for one mount of the spec of `owner`.
fn entry(mount: &MountSpec, owner: &Name) -> Result<Entry, VolumeError> {
    // Checked again: a spec may come from JSON state rather than through the parsers.
    let target = check_target(&mount.target)?;
    let what = match (mount.kind, &mount.source) {
        (MountKind::Bind, Some(path)) => What::Bind {
            path: check_host_path(path)?.into(),
            propagation: match &mount.propagation {
                Some(p) if !PROPAGATION_MODES.contains(&p.as_str()) => {
                    return Err(VolumeError::Invalid(format!(
                        "unknown propagation mode {p:?} for the mount at {target}"
                    )));
                }
                p => p.clone(),
            },
        },
        (MountKind::Bind, None) => {
            return Err(VolumeError::Invalid(format!(
                "the bind mount at {target} has no source"
            )));
        }
        (MountKind::Volume, Some(name)) => What::Named(name.parse()?),
        (MountKind::Volume, None) => What::Anonymous {
            owner: owner.clone(),
        },
        (MountKind::Tmpfs, _) => What::Tmpfs {
            options: tmpfs_options(mount),
            flags: tmpfs_flags(mount),
        },
    };
    Ok(Entry {
        target,
        what,
        readonly: mount.read_only,
        copy: !mount.no_copy,
        description: mount.to_string(),
        shared_by: None,
        own: true,
    })
}

fn anonymous(target: String, owner: &Name, description: &str) -> Entry {
    Entry {
        target,
        what: What::Anonymous {
            owner: owner.clone(),
        },
        readonly: false,
        copy: true,
        description: description.to_owned(),
        shared_by: None,
        own: false,
    }
}

/// An image's `VOLUME` path as a target: relative paths are taken from `/`, as Docker does.
fn image_volume_target(path: &str) -> Result<String, VolumeError> {
    let absolute = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    check_target(&absolute)
        .map_err(|e| VolumeError::Invalid(format!("the image declares a volume at {path:?}: {e}")))
}

fn check_bind_source(entry: &Entry) -> Result<(), VolumeError> {
    let What::Bind { path, .. } = &entry.what else {
        return Ok(());
    };
    match std::fs::metadata(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(VolumeError::MissingBindSource {
            path: path.clone(),
            target: entry.target.clone(),
            via: entry
                .shared_by
                .as_ref()
                .map(|c| format!(", shared by container {c}"))
                .unwrap_or_default(),
        }),
        Err(e) => Err(VolumeError::Io {
            path: path.clone(),
            source: e,
        }),
    }
}

/// The data options of a tmpfs: `size=BYTES`, `mode=OCTAL`, then `uid=`, `gid=`,
/// `nr_inodes=` as given.
fn tmpfs_options(mount: &MountSpec) -> String {
    let mut options = Vec::new();
    if let Some(size) = mount.size {
        options.push(format!("size={}", size.0));
    }
    if let Some(mode) = mount.mode {
        options.push(format!("mode={mode:o}"));
    }
    options.extend(mount.options.iter().filter(|o| o.contains('=')).cloned());
    options.join(",")
}

/// A tmpfs is `noexec,nosuid,nodev` unless the spec says `exec`, `suid` or `dev` (Docker's
/// defaults).
fn tmpfs_flags(mount: &MountSpec) -> MountFlags {
    let mut flags = MountFlags {
        readonly: mount.read_only,
        ..MountFlags::SECURE
    };
    for option in &mount.options {
        match option.as_str() {
            "exec" => flags.noexec = false,
            "noexec" => flags.noexec = true,
            "suid" => flags.nosuid = false,
            "nosuid" => flags.nosuid = true,
            "dev" => flags.nodev = false,
            "nodev" => flags.nodev = true,
            _ => {}
        }
    }
    flags
}

/// The second phase: volumes found or created, records written.
struct Realiser<'a> {
    store: &'a VolumeStore,
    state: &'a StateDir,
    /// The anonymous-volume records read, by owner, and whether each changed.
    owned: BTreeMap<Name, (OwnedVolumes, bool)>,
    /// Volumes this plan fills (each once, by its first mount).
    populated: Vec<VolumeName>,
}

impl<'a> Realiser<'a> {
    fn new(store: &'a VolumeStore, state: &'a StateDir) -> Realiser<'a> {
        Realiser {
            store,
            state,
            owned: BTreeMap::new(),
            populated: Vec::new(),
        }
    }

    fn realise(mut self, entries: Vec<Entry>) -> Result<Vec<Mount>, VolumeError> {
        let mut mounts = Vec::with_capacity(entries.len());
        for entry in entries {
            mounts.push(self.mount(entry)?);
        }
        for (owner, (record, changed)) in &self.owned {
            if *changed {
                record.write(self.state, owner)?;
            }
        }
        Ok(mounts)
    }

    fn mount(&mut self, entry: Entry) -> Result<Mount, VolumeError> {
        let volume = match entry.what {
            What::Bind { path, propagation } => {
                return Ok(Mount::Bind {
                    source: path,
                    target: entry.target,
                    readonly: entry.readonly,
                    propagation,
                });
            }
            What::Tmpfs { options, flags } => {
                return Ok(Mount::Tmpfs {
                    target: entry.target,
                    options,
                    flags,
                });
            }
            What::Named(name) => self.store.create(&name, BTreeMap::new())?.0,
            What::Anonymous { owner } => self.anonymous(&owner, &entry.target)?,
        };
        let populate = entry.copy && !volume.meta.populated;
        if populate && !self.populated.contains(&volume.name) {
            self.populated.push(volume.name.clone());
        }
        Ok(Mount::Volume {
            source: volume.data_dir(),
            target: entry.target,
            readonly: entry.readonly,
            populate,
        })
    }

    /// The anonymous volume `owner` has at `target`: the recorded one if it still exists,
    /// else a new one, recorded.
    fn anonymous(&mut self, owner: &Name, target: &str) -> Result<Volume, VolumeError> {
        if !self.owned.contains_key(owner) {
            let record = OwnedVolumes::read(self.state, owner)?;
            self.owned.insert(owner.clone(), (record, false));
        }
        let Some((record, changed)) = self.owned.get_mut(owner) else {
            return Err(VolumeError::Invalid(format!(
                "the volumes of container {owner} could not be read"
            )));
        };
        if let Some(name) = record.anonymous.get(target) {
            if let Some(volume) = self.store.get(name)? {
                return Ok(volume);
            }
        }
        let volume = self.store.create_anonymous()?;
        record
            .anonymous
            .insert(target.to_owned(), volume.name.clone());
        *changed = true;
        Ok(volume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The volume module's scratch tree, with a host directory `host/www` to bind.
    struct Scratch(crate::volume::testing::Scratch);

    impl std::ops::Deref for Scratch {
        type Target = crate::volume::testing::Scratch;
        fn deref(&self) -> &Self::Target {
            &self.0
        }
    }

    impl Scratch {
        fn new(label: &str) -> Scratch {
            let s = crate::volume::testing::Scratch::new(&format!("plan-{label}"));
            fs::create_dir_all(s.dir.join("host/www")).unwrap();
            Scratch(s)
        }

        fn host(&self, sub: &str) -> String {
            self.dir.join("host").join(sub).display().to_string()
        }

        fn plan(&self, spec: &Spec, image: &ImageConfig) -> Result<Vec<Mount>, VolumeError> {
            plan_mounts(spec, image, &self.store, &self.registry)
        }

        fn volume_count(&self) -> usize {
            self.store.list().unwrap().len()
        }
    }

    fn image_with(volumes: &[&str]) -> ImageConfig {
        ImageConfig {
            volumes: volumes.iter().map(|v| (*v).to_owned()).collect(),
            ..ImageConfig::default()
        }
    }

    fn target(m: &Mount) -> &str {
        m.target()
            .unwrap_or_else(|| panic!("unexpected step {m:?}"))
    }

    fn targets(mounts: &[Mount]) -> Vec<&str> {
        mounts.iter().map(target).collect()
    }

    fn find<'m>(mounts: &'m [Mount], at: &str) -> &'m Mount {
        mounts
            .iter()
            .find(|m| target(m) == at)
            .unwrap_or_else(|| panic!("nothing at {at} in {mounts:?}"))
    }

    #[test]
    fn binds_volumes_and_tmpfs_become_steps_parents_first() {
        let s = Scratch::new("basic");
        let www = s.host("www");
        let mut spec = s.spec(
            "web",
            &[&format!("{www}:/srv/www/html:ro"), "data:/srv", "/cache"],
        );
        spec.mounts = vec![
            MountSpec::parse_mount(&format!(
                "type=bind,src={www},dst=/b,bind-propagation=rslave"
            ))
            .unwrap(),
        ];
        spec.tmpfs = vec![MountSpec::parse_tmpfs("/run:size=64m,mode=1777,exec,uid=5").unwrap()];
        let mounts = s.plan(&spec, &ImageConfig::default()).unwrap();
        assert_eq!(
            targets(&mounts),
            ["/b", "/cache", "/run", "/srv", "/srv/www/html"]
        );
        assert_eq!(
            find(&mounts, "/srv/www/html"),
            &Mount::Bind {
                source: www.clone().into(),
                target: "/srv/www/html".into(),
                readonly: true,
                propagation: None
            }
        );
        assert!(matches!(
            find(&mounts, "/b"),
            Mount::Bind { propagation: Some(p), readonly: false, .. } if p == "rslave"
        ));
        let data = s.store.get(&"data".parse().unwrap()).unwrap().unwrap();
        assert_eq!(
            find(&mounts, "/srv"),
            &Mount::Volume {
                source: data.data_dir(),
                target: "/srv".into(),
                readonly: false,
                populate: true
            }
        );
        assert!(!data.meta.populated, "marked filled before the start");
        mark_filled(&mounts, &s.store).unwrap();
        let data = s.store.get(&"data".parse().unwrap()).unwrap().unwrap();
        assert!(
            data.meta.populated,
            "the first container to mount it fills it"
        );
        assert_eq!(
            find(&mounts, "/run"),
            &Mount::Tmpfs {
                target: "/run".into(),
                options: "size=67108864,mode=1777,uid=5".into(),
                flags: MountFlags {
                    readonly: false,
                    nosuid: true,
                    nodev: true,
                    noexec: false
                }
            }
        );
        // The anonymous volume is the container's, recorded in its state.
        let owned = OwnedVolumes::read(&s.registry.state, &spec.name).unwrap();
        let anon = &owned.anonymous["/cache"];
        assert!(anon.looks_anonymous());
        assert!(
            matches!(find(&mounts, "/cache"), Mount::Volume { source, populate: true, .. } if source.starts_with(s.store.root().join(anon.as_str())))
        );
        assert_eq!(s.volume_count(), 2);
    }

    #[test]
    fn a_second_start_finds_the_same_volumes_and_fills_nothing() {
        let s = Scratch::new("restart");
        let spec = s.spec("web", &["data:/data", "/anon"]);
        let image = image_with(&["/declared"]);
        let first = s.plan(&spec, &image).unwrap();
        // A start that failed (nothing marked) fills at the next one.
        let retried = s.plan(&spec, &image).unwrap();
        assert_eq!(first, retried);
        mark_filled(&first, &s.store).unwrap();
        let second = s.plan(&spec, &image).unwrap();
        assert_eq!(s.volume_count(), 3);
        for (a, b) in first.iter().zip(&second) {
            match (a, b) {
                (
                    Mount::Volume {
                        source: sa,
                        populate: true,
                        ..
                    },
                    Mount::Volume {
                        source: sb,
                        populate: false,
                        ..
                    },
                ) => assert_eq!(sa, sb),
                other => panic!("{other:?}"),
            }
        }
        // A second container with the named volume does not fill it either.
        let other = s.spec("other", &["data:/elsewhere"]);
        assert!(matches!(
            s.plan(&other, &ImageConfig::default()).unwrap()[0],
            Mount::Volume {
                populate: false,
                ..
            }
        ));
    }

    #[test]
    fn nocopy_never_fills_and_leaves_the_volume_fillable() {
        let s = Scratch::new("nocopy");
        let spec = s.spec("a", &["data:/data:nocopy"]);
        assert!(matches!(
            s.plan(&spec, &ImageConfig::default()).unwrap()[0],
            Mount::Volume {
                populate: false,
                ..
            }
        ));
        let spec = s.spec("b", &["data:/data"]);
        assert!(matches!(
            s.plan(&spec, &ImageConfig::default()).unwrap()[0],
            Mount::Volume { populate: true, .. }
        ));
    }

    #[test]
    fn image_volumes_yield_to_anything_mounted_there() {
        let s = Scratch::new("image");
        let www = s.host("www");
        let spec = s.spec("web", &[&format!("{www}:/data")]);
        let mut spec2 = spec.clone();
        spec2.tmpfs = vec![MountSpec::parse_tmpfs("/tmp").unwrap()];
        let image = image_with(&["/data", "/tmp/", "logs"]);
        let mounts = s.plan(&spec2, &image).unwrap();
        assert_eq!(targets(&mounts), ["/data", "/logs", "/tmp"]);
        assert!(matches!(find(&mounts, "/data"), Mount::Bind { .. }));
        assert!(matches!(find(&mounts, "/tmp"), Mount::Tmpfs { .. }));
        assert!(matches!(
            find(&mounts, "/logs"),
            Mount::Volume { populate: true, .. }
        ));
        assert_eq!(s.volume_count(), 1);
    }

    #[test]
    fn duplicates_are_errors_and_create_nothing() {
        let s = Scratch::new("dup");
        let www = s.host("www");
        let mut spec = s.spec("web", &["data:/data", "fresh:/other"]);
        spec.mounts =
            vec![MountSpec::parse_mount(&format!("type=bind,src={www},dst=/data/")).unwrap()];
        let err = s.plan(&spec, &ImageConfig::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "duplicate mount point /data: volume \"data\" and the bind mount of {www} both mount there"
            )
        );
        let mut spec = s.spec("web", &["/x"]);
        spec.tmpfs = vec![MountSpec::parse_tmpfs("/x").unwrap()];
        assert!(matches!(
            s.plan(&spec, &ImageConfig::default()),
            Err(VolumeError::Duplicate { .. })
        ));
        assert_eq!(s.volume_count(), 0);
        assert!(!s.registry.state.dir(&spec.name).exists());
    }

    #[test]
    fn a_missing_bind_source_is_named_and_creates_nothing() {
        let s = Scratch::new("missing");
        let gone = s.host("gone");
        let spec = s.spec("web", &["data:/data", &format!("{gone}:/x")]);
        let err = s.plan(&spec, &image_with(&["/declared"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("bind source {gone} does not exist (for the mount at /x)")
        );
        assert!(check_mounts(&spec, &ImageConfig::default(), &s.registry).is_err());
        assert_eq!(s.volume_count(), 0);
        assert!(!s.registry.state.dir(&spec.name).exists());
    }

    #[test]
    fn bad_targets_from_json_state_and_images_are_refused() {
        let s = Scratch::new("targets");
        let mut spec = s.spec("web", &[]);
        let mut bad = MountSpec::parse_volume("data:/data").unwrap();
        bad.target = "/proc/sys".into();
        spec.volumes = vec![bad];
        let err = s.plan(&spec, &ImageConfig::default()).unwrap_err();
        assert!(
            err.to_string().contains("cannot mount over /proc/sys"),
            "{err}"
        );
        let err = s
            .plan(&s.spec("web", &[]), &image_with(&["/dev/pts/x"]))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the image declares a volume at \"/dev/pts/x\""),
            "{err}"
        );
        assert_eq!(s.volume_count(), 0);
    }

    #[test]
    fn volumes_from_shares_binds_and_volumes_with_their_mode() {
        let s = Scratch::new("from");
        let www = s.host("www");
        let mut db = s.spec(
            "db",
            &["dbdata:/var/lib/db", &format!("{www}:/www:ro"), "/anon"],
        );
        db.tmpfs = vec![MountSpec::parse_tmpfs("/run").unwrap()];
        s.adhoc(db.clone());
        // db has started once: its image volume is recorded.
        let db_mounts = s.plan(&db, &image_with(&["/declared"])).unwrap();
        assert_eq!(db_mounts.len(), 5);

        let mut app = s.spec("app", &[]);
        app.volumes_from = vec!["db".parse().unwrap()];
        let mounts = s.plan(&app, &ImageConfig::default()).unwrap();
        assert_eq!(
            targets(&mounts),
            ["/anon", "/declared", "/www", "/var/lib/db"]
        );
        let shared_source = |at: &str, mounts: &[Mount]| match find(mounts, at) {
            Mount::Volume {
                source, populate, ..
            } => {
                assert!(!populate, "a shared volume is never filled by the sharer");
                source.clone()
            }
            other => panic!("{other:?}"),
        };
        for at in ["/anon", "/declared", "/var/lib/db"] {
            assert_eq!(shared_source(at, &mounts), shared_source_of(&db_mounts, at));
        }
        assert!(matches!(
            find(&mounts, "/www"),
            Mount::Bind { readonly: true, .. }
        ));
        assert!(matches!(
            find(&mounts, "/var/lib/db"),
            Mount::Volume {
                readonly: false,
                ..
            }
        ));
        // The sharer owns nothing.
        assert!(
            OwnedVolumes::read(&s.registry.state, &app.name)
                .unwrap()
                .is_empty()
        );

        // `:ro` makes everything read-only; own mounts win over shared ones.
        let mut ro = s.spec("ro", &["mine:/var/lib/db"]);
        ro.volumes_from = vec!["db".parse().unwrap()];
        let from: VolumesFrom = "db:ro".parse().unwrap();
        let mut visiting = BTreeSet::new();
        let shared = shared_mounts(&s.registry, &from, &mut visiting).unwrap();
        assert!(shared.iter().all(|e| e.readonly && !e.copy));
        let mounts = s.plan(&ro, &ImageConfig::default()).unwrap();
        let mine = s.store.get(&"mine".parse().unwrap()).unwrap().unwrap();
        assert!(
            matches!(find(&mounts, "/var/lib/db"), Mount::Volume { source, .. } if *source == mine.data_dir())
        );
    }

    fn shared_source_of(mounts: &[Mount], at: &str) -> PathBuf {
        match find(mounts, at) {
            Mount::Volume { source, .. } => source.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn volumes_from_errors() {
        let s = Scratch::new("from-errors");
        let mut app = s.spec("app", &[]);
        app.volumes_from = vec!["nobody".parse().unwrap()];
        let err = s.plan(&app, &ImageConfig::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--volumes-from nobody: no such container: nobody"
        );
        app.volumes_from = vec!["app".parse().unwrap()];
        let err = s.plan(&app, &ImageConfig::default()).unwrap_err();
        assert!(err.to_string().contains("its own volumes"), "{err}");
        // A shared bind whose source is gone names the container that has it.
        let gone = s.host("gone");
        s.adhoc(s.spec("db", &[&format!("{gone}:/x")]));
        app.volumes_from = vec!["db".parse().unwrap()];
        let err = s.plan(&app, &ImageConfig::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "bind source {gone} does not exist (for the mount at /x, shared by container db)"
            )
        );
        // Cycles end.
        let mut a = s.spec("a", &["va:/a"]);
        a.volumes_from = vec!["b".parse().unwrap()];
        let mut b = s.spec("b", &["vb:/b"]);
        b.volumes_from = vec!["a".parse().unwrap()];
        s.adhoc(a.clone());
        s.adhoc(b);
        assert_eq!(
            targets(&s.plan(&a, &ImageConfig::default()).unwrap()),
            ["/a", "/b"]
        );
    }

    #[test]
    fn a_never_started_containers_anonymous_volumes_are_made_for_it() {
        let s = Scratch::new("from-unstarted");
        s.adhoc(s.spec("db", &["/anon"]));
        let mut app = s.spec("app", &[]);
        app.volumes_from = vec!["db".parse().unwrap()];
        let mounts = s.plan(&app, &ImageConfig::default()).unwrap();
        let db = OwnedVolumes::read(&s.registry.state, &"db".parse().unwrap()).unwrap();
        let volume = s.store.get(&db.anonymous["/anon"]).unwrap().unwrap();
        assert_eq!(shared_source_of(&mounts, "/anon"), volume.data_dir());
        // ...and db finds it at its own first start, and fills it then.
        let db_mounts = s
            .plan(&s.spec("db", &["/anon"]), &ImageConfig::default())
            .unwrap();
        assert!(
            matches!(&db_mounts[0], Mount::Volume { source, populate: true, .. } if *source == volume.data_dir())
        );
    }

    #[test]
    fn a_recorded_volume_removed_behind_the_containers_back_is_made_again() {
        let s = Scratch::new("recreate");
        let spec = s.spec("web", &["/anon"]);
        let first = shared_source_of(&s.plan(&spec, &ImageConfig::default()).unwrap(), "/anon");
        fs::remove_dir_all(first.parent().unwrap()).unwrap();
        let second = shared_source_of(&s.plan(&spec, &ImageConfig::default()).unwrap(), "/anon");
        assert_ne!(first, second);
        assert!(second.is_dir());
    }
}
