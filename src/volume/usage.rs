//! Which containers use which volume, computed from what cleat knows of every container
//! (declared and ad-hoc, running or not) and never stored, so it cannot go stale: a container
//! uses the named volumes its definition mounts, the anonymous volumes it owns, and, through
//! `--volumes-from`, everything the containers it names use.

use std::collections::{BTreeMap, BTreeSet};

use crate::containers::Registry;
use crate::spec::{MountKind, Name, Spec};
use crate::unit::Kind;

use super::owned::OwnedVolumes;
use super::{VolumeError, VolumeName};

/// What one container's definition and state refer to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Named volumes it mounts and anonymous volumes it owns.
    pub volumes: BTreeSet<VolumeName>,
    /// Containers whose volumes it mounts too.
    pub volumes_from: Vec<Name>,
}

impl References {
    /// What `spec` mounts by name, plus the anonymous volumes recorded in `owned`.
    pub fn of(spec: &Spec, owned: &OwnedVolumes) -> References {
        let named = spec
            .volumes
            .iter()
            .chain(&spec.mounts)
            .filter(|m| m.kind == MountKind::Volume)
            .filter_map(|m| m.source.as_deref()?.parse::<VolumeName>().ok());
        References {
            volumes: named.chain(owned.volumes().cloned()).collect(),
            volumes_from: spec
                .volumes_from
                .iter()
                .map(|v| v.container.clone())
                .collect(),
        }
    }

    fn merge(&mut self, other: References) {
        self.volumes.extend(other.volumes);
        self.volumes_from.extend(other.volumes_from);
    }
}

/// Who uses what.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    users: BTreeMap<VolumeName, BTreeSet<Name>>,
    running: BTreeSet<Name>,
    /// Containers whose definition could not be read: they may use volumes nobody can see.
    unreadable: Vec<Unreadable>,
}

/// A container whose definition could not be read.
#[derive(Debug, Clone)]
struct Unreadable {
    container: Name,
    reason: String,
    /// The definition's text (every file of it), if it could be read at all: a volume it
    /// never names, directly or through a container that uses it, it cannot use.
    text: Option<String>,
}

impl Usage {
    /// Every container's use of volumes. `running` names the containers that run now (the
    /// caller asks systemd).
    pub fn compute(registry: &Registry, running: BTreeSet<Name>) -> Result<Usage, VolumeError> {
        let listed = registry
            .list()
            .map_err(|e| VolumeError::Containers(Box::new(e)))?;
        let mut refs: BTreeMap<Name, References> = BTreeMap::new();
        let mut unreadable = Vec::new();
        for (name, kind) in listed {
            // The anonymous volumes it owns are known even when its definition is not.
            let owned = match OwnedVolumes::read(&registry.state, &name) {
                Ok(owned) => owned,
                Err(e) => {
                    unreadable.push(Unreadable {
                        container: name,
                        reason: e.to_string(),
                        text: None,
                    });
                    continue;
                }
            };
            match load_spec(registry, &name, kind) {
                Ok(Some(spec)) => refs
                    .entry(name)
                    .or_default()
                    .merge(References::of(&spec, &owned)),
                // Gone since it was listed: not a container any more.
                Ok(None) => {}
                Err(problem) => {
                    refs.entry(name).or_default().merge(References {
                        volumes: owned.volumes().cloned().collect(),
                        volumes_from: Vec::new(),
                    });
                    unreadable.push(problem);
                }
            }
        }
        let mut usage = Usage::from_references(&refs);
        usage.running = running;
        usage.unreadable = unreadable;
        Ok(usage)
    }

    /// The use the containers `refs` describe make of volumes, `--volumes-from` followed to
    /// the end (a cycle adds nothing twice).
    pub fn from_references(refs: &BTreeMap<Name, References>) -> Usage {
        let mut usage = Usage::default();
        for container in refs.keys() {
            let mut seen = BTreeSet::new();
            let mut pending = vec![container];
            while let Some(next) = pending.pop() {
                if !seen.insert(next) {
                    continue;
                }
                let Some(r) = refs.get(next) else { continue };
                for volume in &r.volumes {
                    usage.add_user(container, volume);
                }
                pending.extend(&r.volumes_from);
            }
        }
        usage
    }

    pub fn add_user(&mut self, container: &Name, volume: &VolumeName) {
        self.users
            .entry(volume.clone())
            .or_default()
            .insert(container.clone());
    }

    /// Notes a container whose definition cannot be read, nor its text: it may use any
    /// volume.
    pub fn add_unreadable(&mut self, container: &Name, reason: String) {
        self.unreadable.push(Unreadable {
            container: container.clone(),
            reason,
            text: None,
        });
    }

    pub fn set_running(&mut self, running: BTreeSet<Name>) {
        self.running = running;
    }

    /// The containers that use `volume`, sorted.
    pub fn users(&self, volume: &VolumeName) -> Vec<Name> {
        self.users
            .get(volume)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The containers other than `container` that use `volume`.
    pub fn other_users(&self, volume: &VolumeName, container: &Name) -> Vec<Name> {
        let mut users = self.users(volume);
        users.retain(|u| u != container);
        users
    }

    pub fn is_used(&self, volume: &VolumeName) -> bool {
        self.users.get(volume).is_some_and(|s| !s.is_empty())
    }

    /// A container whose definition cannot be read and that may use `volume` (its text names
    /// the volume, or a container that uses it), with the reason it cannot be read.
    pub fn unreadable_user(&self, volume: &VolumeName) -> Option<(&Name, &str)> {
        let users = self.users(volume);
        self.unreadable
            .iter()
            .find(|u| match &u.text {
                None => true,
                Some(text) => {
                    text.contains(volume.as_str())
                        || users.iter().any(|c| text.contains(c.as_str()))
                }
            })
            .map(|u| (&u.container, u.reason.as_str()))
    }

    /// Whether `volume` may be removed: never while a running container uses it; while a
    /// stopped one uses it (or may: its definition cannot be read), only with `force`.
    pub fn check_removable(&self, volume: &VolumeName, force: bool) -> Result<(), VolumeError> {
        let users = self.users(volume);
        let running: Vec<Name> = users
            .iter()
            .filter(|u| self.running.contains(*u))
            .cloned()
            .collect();
        if !running.is_empty() {
            return Err(VolumeError::InUseRunning {
                volume: volume.clone(),
                containers: running,
            });
        }
        if force {
            return Ok(());
        }
        if !users.is_empty() {
            return Err(VolumeError::InUse {
                volume: volume.clone(),
                containers: users,
            });
        }
        match self.unreadable_user(volume) {
            Some((container, reason)) => Err(VolumeError::UnknownUser {
                volume: volume.clone(),
                container: container.clone(),
                reason: reason.to_owned(),
            }),
            None => Ok(()),
        }
    }
}

/// A container's spec; `Ok(None)` if it is gone, `Err` if it cannot be read.
fn load_spec(registry: &Registry, name: &Name, kind: Kind) -> Result<Option<Spec>, Unreadable> {
    let unreadable = |reason: String, text: Option<String>| Unreadable {
        container: name.clone(),
        reason,
        text,
    };
    match kind {
        Kind::Declared => match registry.search.find(name) {
            Ok(Some(def)) => def.load().map(|l| Some(l.spec)).map_err(|e| {
                let text = std::iter::once(&def.main)
                    .chain(&def.dropins)
                    .map(std::fs::read)
                    .collect::<Result<Vec<_>, _>>()
                    .ok()
                    .map(|files| String::from_utf8_lossy(&files.concat()).into_owned());
                unreadable(e.to_string(), text)
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(unreadable(e.to_string(), None)),
        },
        Kind::Adhoc => registry
            .state
            .load_adhoc(name)
            .map(|r| r.map(|r| r.spec))
            .map_err(|e| unreadable(e.to_string(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{MountSpec, Source};

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn vol(s: &str) -> VolumeName {
        s.parse().unwrap()
    }

    #[test]
    fn references_of_a_spec() {
        let mut spec = Spec::new(name("web"), Source::Rootfs("/r".into()));
        spec.volumes = vec![
            MountSpec::parse_volume("data:/data").unwrap(),
            MountSpec::parse_volume("/srv:/srv").unwrap(),
            MountSpec::parse_volume("/anon").unwrap(),
        ];
        spec.mounts = vec![MountSpec::parse_mount("src=cache,dst=/cache").unwrap()];
        spec.volumes_from = vec![(&name("db")).into()];
        let mut owned = OwnedVolumes::default();
        owned.anonymous.insert("/anon".into(), vol(&"a".repeat(64)));
        let r = References::of(&spec, &owned);
        let volumes: Vec<&str> = r.volumes.iter().map(VolumeName::as_str).collect();
        assert_eq!(volumes, [&"a".repeat(64), "cache", "data"]);
        assert_eq!(r.volumes_from, [name("db")]);
    }

    #[test]
    fn volumes_from_is_followed_transitively_and_cycles_end() {
        let refs = BTreeMap::from([
            (
                name("a"),
                References {
                    volumes: [vol("va")].into(),
                    volumes_from: vec![name("b")],
                },
            ),
            (
                name("b"),
                References {
                    volumes: [vol("vb")].into(),
                    volumes_from: vec![name("c"), name("a")],
                },
            ),
            (
                name("c"),
                References {
                    volumes: [vol("vc")].into(),
                    volumes_from: vec![name("gone")],
                },
            ),
        ]);
        let usage = Usage::from_references(&refs);
        assert_eq!(usage.users(&vol("vc")), [name("a"), name("b"), name("c")]);
        assert_eq!(usage.users(&vol("va")), [name("a"), name("b")]);
        assert_eq!(usage.other_users(&vol("vb"), &name("b")), [name("a")]);
        assert!(!usage.is_used(&vol("other")));
    }

    #[test]
    fn removal_rules() {
        let mut usage = Usage::default();
        usage.add_user(&name("web"), &vol("v"));
        usage.add_user(&name("job"), &vol("v"));
        assert!(matches!(
            usage.check_removable(&vol("v"), false),
            Err(VolumeError::InUse { ref containers, .. }) if containers.len() == 2
        ));
        usage.check_removable(&vol("v"), true).unwrap();
        usage.set_running([name("job")].into());
        match usage.check_removable(&vol("v"), true) {
            Err(VolumeError::InUseRunning { containers, .. }) => {
                assert_eq!(containers, [name("job")])
            }
            other => panic!("{other:?}"),
        }
        usage.check_removable(&vol("free"), false).unwrap();
        usage.add_unreadable(&name("broken"), "bad TOML".into());
        let err = usage.check_removable(&vol("free"), false).unwrap_err();
        assert!(
            err.to_string().contains("broken") && err.to_string().contains("bad TOML"),
            "{err}"
        );
        usage.check_removable(&vol("free"), true).unwrap();
    }

    #[test]
    fn an_unreadable_definition_only_holds_the_volumes_its_text_could_mean() {
        let mut usage = Usage::default();
        usage.add_user(&name("db"), &vol("dbdata"));
        usage.unreadable.push(Unreadable {
            container: name("broken"),
            reason: "web.toml:3:1: bad".into(),
            text: Some(
                "image = \"x\"\nvolumes = [\"cache:/c\"]\nvolumes-from = [\"db\"]\noops".into(),
            ),
        });
        let who = |v: &str| usage.unreadable_user(&vol(v)).map(|u| u.0.clone());
        assert_eq!(who("cache"), Some(name("broken")));
        assert_eq!(
            who("dbdata"),
            Some(name("broken")),
            "through volumes-from db"
        );
        assert_eq!(who("other"), None);
        usage.check_removable(&vol("other"), false).unwrap();
    }
}
