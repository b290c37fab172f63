//! Several workspaces over the same community read the same documents:
//! telling what arrived reads the community now and as it was before, and
//! both read every response they compare. A [`SharedLoads`] loader hands
//! each workspace its own copy of a document read once. Copying a loaded
//! document takes about a tenth of a millisecond where reading and checking
//! it from disk takes about ten. Documents already in memory (those a sync
//! session holds) can be put in first.
//!
//! A workspace works on its copy: what one workspace writes, the others
//! sharing the loads do not see. The last workspace to read them (the one
//! that writes receipts after a sync) takes the documents out instead of
//! copying them ([`SharedLoads::last`]). The documents read are shared across
//! threads, so that workspaces on every core read news together
//! (`Workspace::news_on_every_core`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::AutoCommit;

use super::digest::DraftDigest;
use super::doc::DocId;
use super::workspace::{DocLoader, LoadError};
use crate::ids::ObjectId;

/// Documents read once, shared by the [`SharedLoads`] loaders made with it
/// (a handle: clones share the same documents). The lock is held only to
/// find or add a document, never while one is read or copied.
#[derive(Clone, Default)]
pub struct LoadedDocs(Arc<Mutex<BTreeMap<DocId, Arc<AutoCommit>>>>);

impl LoadedDocs {
    /// Shared documents, starting with `docs`.
    pub fn new(docs: BTreeMap<DocId, AutoCommit>) -> Self {
        let docs = docs.into_iter().map(|(id, doc)| (id, Arc::new(doc)));
        LoadedDocs(Arc::new(Mutex::new(docs.collect())))
    }

    /// A copy of document `id`, if it was read.
    pub fn copy(&self, id: &DocId) -> Option<AutoCommit> {
        let shared = self.docs().get(id).cloned();
        shared.map(|doc| AutoCommit::clone(&doc))
    }

    /// Document `id`, if it was read, taken out: no copy is made unless
    /// another handle still shares it.
    pub fn take(&self, id: &DocId) -> Option<AutoCommit> {
        let shared = self.docs().remove(id)?;
        Some(Arc::try_unwrap(shared).unwrap_or_else(|still| AutoCommit::clone(&still)))
    }

    /// Whether document `id` was read.
    pub fn holds(&self, id: &DocId) -> bool {
        self.docs().contains_key(id)
    }

    /// Keep a copy of `doc`, read as document `id` (one read before it on
    /// another thread stays).
    pub fn keep(&self, id: &DocId, doc: &AutoCommit) {
        let copy = Arc::new(doc.clone());
        self.docs().entry(id.clone()).or_insert(copy);
    }

    fn docs(&self) -> MutexGuard<'_, BTreeMap<DocId, Arc<AutoCommit>>> {
        // A thread that panicked while holding the lock left the map whole:
        // every change to it is one insert.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A loader that reads through `inner` only what no loader sharing `docs`
/// has read yet.
pub struct SharedLoads<L> {
    inner: L,
    docs: LoadedDocs,
    /// The last to read `docs`: take documents out instead of copying them,
    /// and keep none of what `inner` reads.
    last: bool,
    /// What this loader took out of `docs`: it still exists.
    taken: BTreeSet<DocId>,
}

impl<L: DocLoader> SharedLoads<L> {
    /// Load through `inner`, sharing what is read in `docs`.
    pub fn new(inner: L, docs: LoadedDocs) -> Self {
        SharedLoads {
            inner,
            docs,
            last: false,
            taken: BTreeSet::new(),
        }
    }

    /// [`SharedLoads::new`] for the last workspace to read `docs` (receipts
    /// after a sync): it takes what it reads out of them, since nobody reads
    /// them after it. Copying a discussion and freeing the copies cost as
    /// much as reading what arrived did.
    pub fn last(inner: L, docs: LoadedDocs) -> Self {
        SharedLoads {
            inner,
            docs,
            last: true,
            taken: BTreeSet::new(),
        }
    }
}

impl<L: DocLoader> DocLoader for SharedLoads<L> {
    fn load(&mut self, id: &DocId) -> Result<Option<AutoCommit>, LoadError> {
        let held = match self.last {
            true => self.docs.take(id).inspect(|_| {
                self.taken.insert(id.clone());
            }),
            false => self.docs.copy(id),
        };
        if let Some(doc) = held {
            return Ok(Some(doc));
        }
        let loaded = self.inner.load(id)?;
        if let (Some(doc), false) = (&loaded, self.last) {
            self.docs.keep(id, doc);
        }
        Ok(loaded)
    }

    fn exists(&mut self, id: &DocId) -> Result<bool, LoadError> {
        if self.docs.holds(id) || self.taken.contains(id) {
            return Ok(true);
        }
        self.inner.exists(id)
    }

    fn draft_digest(&mut self, draft: &ObjectId) -> Option<DraftDigest> {
        self.inner.draft_digest(draft)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ROOT, ReadDoc};

    /// Counts the loads that reach it.
    struct Counting {
        loads: Rc<RefCell<usize>>,
    }

    impl DocLoader for Counting {
        fn load(&mut self, id: &DocId) -> Result<Option<AutoCommit>, LoadError> {
            *self.loads.borrow_mut() += 1;
            if *id == DocId::Community {
                return Ok(None);
            }
            let mut doc = AutoCommit::new();
            doc.put(ROOT, "name", id.name()).map_err(|e| LoadError {
                message: e.to_string(),
                integrity: false,
            })?;
            Ok(Some(doc))
        }
    }

    #[test]
    fn a_document_is_read_once_and_each_loader_gets_its_own_copy() {
        let loads = Rc::new(RefCell::new(0));
        let docs = LoadedDocs::default();
        let mut a = SharedLoads::new(
            Counting {
                loads: loads.clone(),
            },
            docs.clone(),
        );
        let mut b = SharedLoads::new(
            Counting {
                loads: loads.clone(),
            },
            docs.clone(),
        );
        let id = DocId::Response(ObjectId::random());
        let Ok(Some(mut first)) = a.load(&id) else {
            panic!("the document should load");
        };
        assert_eq!(*loads.borrow(), 1);
        // A change to one copy is not seen through the other loader.
        assert!(first.put(ROOT, "name", "changed").is_ok());
        let Ok(Some(second)) = b.load(&id) else {
            panic!("the document should load");
        };
        assert_eq!(*loads.borrow(), 1, "the second loader read it again");
        let name = second.get(ROOT, "name").ok().flatten();
        assert_eq!(
            name.map(|(v, _)| v.to_string()),
            Some(format!("\"{}\"", id.name()))
        );
        assert!(matches!(b.exists(&id), Ok(true)));
        // What does not exist is asked again (and still does not exist).
        assert!(matches!(a.load(&DocId::Community), Ok(None)));
        assert!(matches!(b.load(&DocId::Community), Ok(None)));
        assert_eq!(*loads.borrow(), 3);
    }

    #[test]
    fn documents_put_in_first_are_never_read() {
        let loads = Rc::new(RefCell::new(0));
        let id = DocId::Draft(ObjectId::random());
        let docs = LoadedDocs::default();
        docs.keep(&id, &AutoCommit::new());
        let mut loader = SharedLoads::new(
            Counting {
                loads: loads.clone(),
            },
            docs,
        );
        assert!(matches!(loader.load(&id), Ok(Some(_))));
        assert_eq!(*loads.borrow(), 0);
    }

    #[test]
    fn the_last_reader_takes_what_was_read_and_keeps_nothing() {
        let loads = Rc::new(RefCell::new(0));
        let held = DocId::Draft(ObjectId::random());
        let docs = LoadedDocs::default();
        let mut doc = AutoCommit::new();
        assert!(doc.put(ROOT, "name", "held").is_ok());
        docs.keep(&held, &doc);
        let mut last = SharedLoads::last(
            Counting {
                loads: loads.clone(),
            },
            docs.clone(),
        );
        let Ok(Some(taken)) = last.load(&held) else {
            panic!("the document should load");
        };
        assert_eq!(*loads.borrow(), 0, "read again instead of taken");
        let name = taken.get(ROOT, "name").ok().flatten();
        assert_eq!(name.map(|(v, _)| v.to_string()), Some("\"held\"".into()));
        assert!(!docs.holds(&held), "taken, yet still held");
        // Taken, it still exists, though the inner loader is never asked.
        assert!(matches!(last.exists(&held), Ok(true)));
        // Read through the inner loader: not kept for anyone after.
        let other = DocId::Response(ObjectId::random());
        assert!(matches!(last.load(&other), Ok(Some(_))));
        assert_eq!(*loads.borrow(), 1);
        assert!(!docs.holds(&other));
    }
}
