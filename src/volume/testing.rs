//! Test support: a scratch registry (definitions and state) and volume store in a temporary
//! directory, removed when dropped.

use std::fs;
use std::path::PathBuf;

use crate::containers::Registry;
use crate::spec::load::SearchPath;
use crate::spec::{MountSpec, Source, Spec};
use crate::state::{AdhocRecord, StateDir};

use super::VolumeStore;

pub struct Scratch {
    pub dir: PathBuf,
    pub registry: Registry,
    pub store: VolumeStore,
}

impl Scratch {
    /// A fresh tree under the temporary directory; `label` must be unique among the tests.
    pub fn new(label: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("cleat-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("etc")).unwrap();
        Scratch {
            registry: Registry {
                search: SearchPath::new(vec![dir.join("etc")]),
                state: StateDir::at(dir.join("state")),
            },
            store: VolumeStore::at(dir.join("volumes")),
            dir,
        }
    }

    /// A container `name` on a rootfs, with `-v` for each of `volumes`.
    pub fn spec(&self, name: &str, volumes: &[&str]) -> Spec {
        let mut spec = Spec::new(name.parse().unwrap(), Source::Rootfs("/r".into()));
        spec.volumes = volumes
            .iter()
            .map(|v| MountSpec::parse_volume(v).unwrap())
            .collect();
        spec
    }

    /// Records `spec` as an ad-hoc container.
    pub fn adhoc(&self, spec: Spec) {
        self.registry
            .state
            .create_adhoc(&AdhocRecord {
                id: "0".repeat(32),
                spec,
                created_usec: 0,
                auto_remove: false,
                image: None,
            })
            .unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
