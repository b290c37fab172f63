//! The home folder: where one member's identity and communities live.
//!
//! `--home DIR` or `CONVENE_HOME` selects it (default: the platform data
//! folder). Several members on one machine use several homes. A lock file
//! serialises writers: every command that writes holds it from the moment it
//! reads until its data is fsynced, so concurrent commands never lose or
//! duplicate a write.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::community::CommunityStore;
use super::fsutil::{private_dir, read_if_exists, write_atomic};
use super::identity::Identity;
use super::{Result, StoreError};
use crate::ids::resolve_prefix;
use crate::trust::CommunityId;

/// A home folder.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }

    /// The platform's data folder for convene, if the platform has one.
    pub fn default_root() -> Option<PathBuf> {
        directories::ProjectDirs::from("org", "convene", "convene")
            .map(|d| d.data_dir().to_path_buf())
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn identity_dir(&self) -> PathBuf {
        self.root.join("identity")
    }

    fn communities_dir(&self) -> PathBuf {
        self.root.join("communities")
    }

    /// Create this home's identity.
    pub fn init(&self, name: &str) -> Result<Identity> {
        private_dir(&self.root)?;
        Identity::create(&self.identity_dir(), name)
    }

    /// Load this home's identity.
    pub fn identity(&self) -> Result<Identity> {
        Identity::load(&self.identity_dir())
    }

    /// The lock file (create the home first).
    pub fn lock_file(&self) -> Result<fd_lock::RwLock<File>> {
        private_dir(&self.root)?;
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(fd_lock::RwLock::new(file))
    }

    /// Found a community and make it current.
    pub fn create_community(
        &self,
        identity: &Identity,
        name: &str,
        purpose: &str,
        now: i64,
    ) -> Result<CommunityStore> {
        let store = CommunityStore::create(&self.communities_dir(), identity, name, purpose, now)?;
        self.set_current(&store.id())?;
        Ok(store)
    }

    /// The ids of the communities in this home.
    pub fn community_ids(&self) -> Result<Vec<CommunityId>> {
        let dir = self.communities_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        let mut ids: Vec<CommunityId> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| CommunityId::from_hex(&e.file_name().to_string_lossy()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Open one community, with this home's device key if it has an
    /// identity (see [`CommunityStore::with_device`]).
    pub fn open_community(&self, id: &CommunityId) -> Result<CommunityStore> {
        let device = self.identity().ok().map(|identity| identity.device);
        CommunityStore::open_as(&self.communities_dir().join(id.to_hex()), *id, device)
    }

    /// Every community in this home.
    pub fn communities(&self) -> Result<Vec<CommunityStore>> {
        self.community_ids()?
            .iter()
            .map(|id| self.open_community(id))
            .collect()
    }

    /// The current community, as set by `community use` or `create`.
    pub fn current(&self) -> Result<Option<CommunityId>> {
        Ok(read_if_exists(&self.root.join("current"))?
            .and_then(|b| CommunityId::from_hex(String::from_utf8_lossy(&b).trim())))
    }

    /// Make a community current.
    pub fn set_current(&self, id: &CommunityId) -> Result<()> {
        write_atomic(
            &self.root.join("current"),
            format!("{}\n", id.to_hex()).as_bytes(),
        )
    }

    /// The community named by `reference` (id, id prefix or exact name), or
    /// by default the current one, or the only one.
    pub fn resolve(&self, reference: Option<&str>) -> Result<CommunityStore> {
        let ids = self.community_ids()?;
        if ids.is_empty() {
            return Err(StoreError::Missing("no community yet".into()));
        }
        let id = match reference {
            Some(r) => {
                let mut by_name = Vec::new();
                for id in &ids {
                    if self.open_community(id)?.membership().name == r {
                        by_name.push(*id);
                    }
                }
                match by_name[..] {
                    [one] => one,
                    [] => resolve_prefix(r, ids.iter().map(|id| (id.to_hex(), *id)), "community")
                        .map_err(|e| StoreError::Missing(e.to_string()))?,
                    _ => {
                        return Err(StoreError::Missing(format!(
                            "several communities are named '{r}'; use an id prefix"
                        )));
                    }
                }
            }
            None => match (self.current()?, &ids[..]) {
                (Some(current), _) if ids.contains(&current) => current,
                (_, [only]) => *only,
                _ => {
                    return Err(StoreError::Missing(
                        "several communities and none is current; pick one with `convene community use` or -c".into(),
                    ));
                }
            },
        };
        self.open_community(&id)
    }
}
