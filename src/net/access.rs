//! Access to the local store for one step of a sync session at a time.
//!
//! A session spends most of its life waiting on the network. `serve` runs
//! many sessions at once, so a session holds the store only while it handles
//! the frames that have arrived, never while it waits: a silent or slow peer
//! then delays nobody. [`StoreAccess`] is that contract. [`Exclusive`] serves a command that holds
//! the home's lock for its whole (short) run; [`Shared`] serves `serve`, which
//! takes the home's lock for each step and reloads what other `convene`
//! commands wrote in between.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::store::replica::StoreReplica;
use crate::store::{CommunityStore, Home};
use crate::sync::SyncError;
use crate::trust::CommunityId;

/// Exclusive use of the store for the length of one closure.
pub trait StoreAccess: Sync {
    /// Run `f` on the replica, with the store locked for its duration.
    fn with<T>(&self, f: impl FnOnce(&mut StoreReplica) -> T) -> Result<T, SyncError>;
}

/// For a command that already holds the home's write lock.
pub struct Exclusive(Mutex<StoreReplica>);

impl Exclusive {
    /// Wrap an open community.
    pub fn new(store: CommunityStore, now: i64) -> Self {
        Exclusive(Mutex::new(StoreReplica::new(store, now)))
    }

    /// Give the community back.
    pub fn into_store(self) -> CommunityStore {
        self.0
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .into_store()
    }
}

impl StoreAccess for Exclusive {
    fn with<T>(&self, f: impl FnOnce(&mut StoreReplica) -> T) -> Result<T, SyncError> {
        let mut replica = self
            .0
            .lock()
            .map_err(|_| SyncError::Local("an earlier session panicked".into()))?;
        Ok(f(&mut replica))
    }
}

/// For `serve`: many sessions, other commands writing in between.
pub struct Shared {
    dir: PathBuf,
    id: CommunityId,
    inner: Mutex<SharedInner>,
}

struct SharedInner {
    lock: fd_lock::RwLock<File>,
    replica: StoreReplica,
    /// The files as this replica last saw them.
    stamp: DiskStamp,
}

impl Shared {
    /// Hold `store` for many sessions; `home` provides the lock.
    pub fn new(home: &Home, store: CommunityStore) -> anyhow::Result<Self> {
        let lock = home.lock_file()?;
        let dir = store.dir().to_path_buf();
        Ok(Shared {
            id: store.id(),
            inner: Mutex::new(SharedInner {
                lock,
                // Unknown: the first step reads the community again. The
                // store was opened before this, and a command (an `invite`
                // right after `serve` printed its ticket) may have written
                // in between; a stamp read now would hide that write.
                stamp: DiskStamp::default(),
                replica: StoreReplica::new(store, crate::clock::now()),
            }),
            dir,
        })
    }

    /// The community's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn step<T>(&self, f: impl FnOnce(&mut StoreReplica) -> T) -> Result<T, SyncError> {
        let local = |e: &dyn std::fmt::Display| SyncError::Local(e.to_string());
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| SyncError::Local("an earlier session panicked".into()))?;
        let SharedInner {
            lock,
            replica,
            stamp,
        } = &mut *inner;
        let _guard = lock.write().map_err(|e| local(&e))?;
        let now_on_disk = DiskStamp::read(&self.dir);
        if now_on_disk != *stamp {
            // Another command wrote: start again from what is on disk.
            let device = replica.store().device().cloned();
            let store =
                CommunityStore::open_as(&self.dir, self.id, device).map_err(|e| local(&e))?;
            *replica = StoreReplica::new(store, crate::clock::now());
        }
        replica.set_now(crate::clock::now());
        let out = f(replica);
        *stamp = DiskStamp::read(&self.dir);
        Ok(out)
    }
}

impl StoreAccess for Shared {
    fn with<T>(&self, f: impl FnOnce(&mut StoreReplica) -> T) -> Result<T, SyncError> {
        // Waiting for the lock must not stall the runtime's other tasks.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.step(f))
            }
            _ => self.step(f),
        }
    }
}

/// A cheap summary of a community's files (name, size, modification time
/// of each document's log and snapshot and of the certificate log): it
/// changes whenever a command writes content. Caches that reading commands
/// write (draft digests) and temporary files are left out, so that a `show`
/// next to a running `serve` does not make it reopen the community.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskStamp(Vec<(String, u64, Option<SystemTime>)>);

impl DiskStamp {
    /// Read the stamp of the community in `dir`.
    pub fn read(dir: &Path) -> Self {
        let entry = |name: String, path: &Path| {
            let meta = std::fs::metadata(path).ok();
            (
                name,
                meta.as_ref().map(|m| m.len()).unwrap_or(0),
                meta.and_then(|m| m.modified().ok()),
            )
        };
        let mut out: Vec<_> = std::fs::read_dir(dir.join("docs"))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                    .filter(|(name, _)| {
                        !name.starts_with('.')
                            && (name.ends_with(".log") || name.ends_with(".snapshot"))
                    })
                    .map(|(name, path)| entry(name, &path))
                    .collect()
            })
            .unwrap_or_default();
        out.push(entry("certs.log".into(), &dir.join("certs.log")));
        out.sort();
        DiskStamp(out)
    }
}
