//! The set of containers cleat knows: declared ones (TOML in the search path) and ad-hoc ones
//! (recorded in the state directory). One namespace of names for both: a name that is both is
//! a clash, reported as such rather than resolved silently.

use crate::spec::load::{Definition, LoadError, Loaded, SearchPath};
use crate::spec::{Name, Spec};
use crate::state::{AdhocRecord, StateDir, StateError};
use crate::unit::{self, Kind};

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no such container: {0}")]
    NotFound(Name),
    #[error(
        "the name {name} is used twice: by the declared container in {} and by an ad-hoc container; \
         remove one of them (`cleat rm {name}` removes the ad-hoc one)",
        path.display()
    )]
    Clash {
        name: Name,
        path: std::path::PathBuf,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Where a container's definition lives.
#[derive(Debug, Clone)]
pub enum Found {
    Declared(Definition),
    Adhoc,
}

impl Found {
    pub fn kind(&self) -> Kind {
        match self {
            Found::Declared(_) => Kind::Declared,
            Found::Adhoc => Kind::Adhoc,
        }
    }
}

/// A container with its definition loaded.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: Name,
    pub kind: Kind,
    pub spec: Spec,
    /// Declared: the merged TOML with provenance.
    pub loaded: Option<Loaded>,
    /// Ad-hoc: the record.
    pub record: Option<AdhocRecord>,
}

impl Container {
    pub fn unit(&self) -> String {
        unit::unit_name(self.kind, &self.name)
    }
}

/// Both sources of containers.
#[derive(Debug, Clone)]
pub struct Registry {
    pub search: SearchPath,
    pub state: StateDir,
}

impl Registry {
    pub fn system() -> Registry {
        Registry {
            search: SearchPath::system(),
            state: StateDir::system(),
        }
    }

    /// Which kind of container `name` is, without loading (so a broken definition can still
    /// be stopped or inspected). `Ok(None)` if there is none.
    pub fn find(&self, name: &Name) -> Result<Option<Found>, LookupError> {
        let declared = self.search.find(name)?;
        let adhoc = self.state.is_adhoc(name);
        match (declared, adhoc) {
            (Some(def), true) => Err(LookupError::Clash {
                name: name.clone(),
                path: def.main,
            }),
            (Some(def), false) => Ok(Some(Found::Declared(def))),
            (None, true) => Ok(Some(Found::Adhoc)),
            (None, false) => Ok(None),
        }
    }

    /// Like [`find`](Self::find), but a missing container is an error.
    pub fn require(&self, name: &Name) -> Result<Found, LookupError> {
        self.find(name)?
            .ok_or_else(|| LookupError::NotFound(name.clone()))
    }

    /// Finds and loads a container's definition.
    pub fn load(&self, name: &Name) -> Result<Container, LookupError> {
        match self.require(name)? {
            Found::Declared(def) => {
                let loaded = def.load()?;
                Ok(Container {
                    name: name.clone(),
                    kind: Kind::Declared,
                    spec: loaded.spec.clone(),
                    loaded: Some(loaded),
                    record: None,
                })
            }
            Found::Adhoc => {
                let record = self
                    .state
                    .load_adhoc(name)?
                    .ok_or_else(|| LookupError::NotFound(name.clone()))?;
                Ok(Container {
                    name: name.clone(),
                    kind: Kind::Adhoc,
                    spec: record.spec.clone(),
                    loaded: None,
                    record: Some(record),
                })
            }
        }
    }

    /// Every container name with its kind, sorted; a clashing name appears once per kind.
    pub fn list(&self) -> Result<Vec<(Name, Kind)>, LookupError> {
        let mut all: Vec<(Name, Kind)> = self
            .search
            .list()?
            .into_iter()
            .map(|n| (n, Kind::Declared))
            .collect();
        all.extend(
            self.state
                .list_adhoc()?
                .into_iter()
                .map(|n| (n, Kind::Adhoc)),
        );
        all.sort_by(|a, b| a.0.cmp(&b.0).then((a.1 as u8).cmp(&(b.1 as u8))));
        Ok(all)
    }

    /// The unit of the container a `depends-on` entry names: declared if there is such a
    /// definition, else ad-hoc if there is such a record, else (not defined yet) the declared
    /// unit name, which systemd resolves once the definition appears.
    pub fn unit_of(&self, name: &Name) -> String {
        let kind = match self.search.find(name) {
            Ok(Some(_)) => Kind::Declared,
            _ if self.state.is_adhoc(name) => Kind::Adhoc,
            _ => Kind::Declared,
        };
        unit::unit_name(kind, name)
    }
}

/// A container's claim on an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    pub container: Name,
    /// The manifest it runs (or last ran, or was created from).
    pub digest: Option<crate::image::Digest>,
    /// The reference its definition names (canonical).
    pub reference: Option<String>,
}

impl Registry {
    /// Every container's claim on an image: the manifest its last start used, the one an
    /// ad-hoc container was created from, and the reference a definition names (with the
    /// manifest that reference resolves to in the store now).
    pub fn image_users(&self, store: &crate::image::store::Store) -> Vec<ImageUser> {
        let mut users = Vec::new();
        for name in self.state.list_all().unwrap_or_default() {
            if let Ok(Some(used)) = self.state.read_image_use(&name) {
                users.push(ImageUser {
                    container: name,
                    digest: Some(used.digest),
                    reference: Some(used.reference),
                });
            }
        }
        for (name, _) in self.list().unwrap_or_default() {
            let Ok(container) = self.load(&name) else {
                continue;
            };
            let crate::spec::Source::Image(text) = &container.spec.source else {
                continue;
            };
            let reference = crate::image::parse_reference(text)
                .ok()
                .map(|r| r.to_string());
            let pinned = container.record.as_ref().and_then(|r| r.image.clone());
            let current = reference
                .as_ref()
                .and_then(|r| store.get_ref(r).ok().flatten())
                .map(|r| r.digest);
            for digest in [pinned, current] {
                users.push(ImageUser {
                    container: name.clone(),
                    digest,
                    reference: reference.clone(),
                });
            }
        }
        users
    }
}
