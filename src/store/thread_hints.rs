//! `threads.json` in a community folder: the thread ids of each response's
//! discussion, with the sizes of its files when they were read, so that
//! `post THREAD` finds its thread without loading every discussion. A hint
//! only: an entry whose document files changed size since is read again, a
//! damaged file reads as empty, and a thread found through it is checked in
//! its document.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::CommunityStore;
use super::doclog::DocFiles;
use crate::ids::ObjectId;
use crate::model::DocId;
use crate::model::thread::ThreadHints;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Entry {
    /// Length of the log and of the snapshot when the ids were read.
    stamp: (u64, u64),
    threads: Vec<String>,
}

/// The hints of one community, read from and written back to its folder.
pub struct StoredThreadHints {
    path: PathBuf,
    docs_dir: PathBuf,
    entries: BTreeMap<String, Entry>,
    changed: bool,
}

impl StoredThreadHints {
    /// Read the hints of `store` (none if missing or damaged).
    pub fn open(store: &CommunityStore) -> Self {
        let path = store.dir().join("threads.json");
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        StoredThreadHints {
            path,
            docs_dir: store.docs_dir(),
            entries,
            changed: false,
        }
    }

    /// Write the hints back if they changed (a failure costs only a slower
    /// next lookup).
    pub fn save(&self) {
        if !self.changed {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(&self.entries) else {
            return;
        };
        let _ = super::fsutil::write_atomic(&self.path, &bytes);
    }

    fn stamp(&self, response: &ObjectId) -> (u64, u64) {
        let files = DocFiles::new(&self.docs_dir, &DocId::Response(response.clone()).name());
        let len = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        (len(&files.log), len(&files.snapshot))
    }
}

impl ThreadHints for StoredThreadHints {
    fn thread_ids(&mut self, response: &ObjectId) -> Option<Vec<String>> {
        let entry = self.entries.get(response.as_str())?;
        (entry.stamp == self.stamp(response)).then(|| entry.threads.clone())
    }

    fn remember(&mut self, response: &ObjectId, ids: &[String]) {
        let stamp = self.stamp(response);
        self.entries.insert(
            response.to_string(),
            Entry {
                stamp,
                threads: ids.to_vec(),
            },
        );
        self.changed = true;
    }
}
