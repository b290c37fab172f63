//! The store as a sync [`Replica`]: documents load (verified) on demand,
//! received changes are appended durably with their signatures (and a log
//! grown past [`super::community::COMPACT_AT_BYTES`] is folded into an attested snapshot right
//! after, on the core that applied them, so that later commands need not
//! verify it all again), and new certificates go to the certificate log.

use std::collections::BTreeMap;

use automerge::sync::State;
use automerge::{AutoCommit, Change, ChangeHash};

use super::community::{CommunityStore, Sound};
use super::doclog::{FileView, LoadedDoc};
use crate::model::DocId;
use crate::sync::delta::{self, Signed};
use crate::sync::step::{self, DocStep};
use crate::sync::whole::{self, Verified, WholeDoc};
use crate::sync::{Replica, SyncError};
use crate::trust::signed_change::ChangeSignature;
use crate::trust::{Certificate, DeviceId, Membership};

/// Where the sync states shared with one peer are kept:
/// `communities/<id>/peers/<device>.json`, document name → hex of
/// Automerge's encoded state (its shared heads).
fn states_path(dir: &std::path::Path, peer: &DeviceId) -> std::path::PathBuf {
    dir.join("peers").join(format!("{}.json", peer.to_hex()))
}

fn load_states(path: &std::path::Path) -> Option<BTreeMap<String, String>> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An empty document held for one the store does not have (nothing of it
/// arrived, or all of it was held back): no reader may take it for one
/// that exists.
fn is_placeholder(loaded: &LoadedDoc) -> bool {
    loaded.signatures.is_empty()
}

/// Where a delta goes ([`Replica::add_deltas`]).
enum Target<'a> {
    /// Into the loaded document, then its log.
    Loaded(&'a mut LoadedDoc),
    /// Into the log of a document not loaded, its files holding this.
    Files(FileView),
    /// Nowhere: the document could not be read.
    Failed(SyncError),
}

/// What became of a delta ([`Replica::add_deltas`]).
enum Added {
    /// Applied to the loaded document and kept: how many changes, and
    /// whether the document held is sound (see [`Sound`]).
    Applied(usize, Sound),
    /// Appended to the log of a document not loaded: its heads before,
    /// what its files hold now, and the changes appended.
    Appended(Vec<ChangeHash>, FileView, Vec<([u8; 32], ChangeSignature)>),
    /// A change builds on one the document does not hold: nothing kept.
    FallBack,
    /// The same, for a document not loaded (its files, unchanged).
    FallBackFiles(FileView),
    /// Failed.
    Failed(SyncError),
}

/// A community store seen by sync sessions, with the documents they have
/// loaded so far. Hold the home's write lock while using one (see
/// [`crate::net::access`]).
pub struct StoreReplica {
    store: CommunityStore,
    docs: BTreeMap<String, LoadedDoc>,
    now: i64,
    /// The heads each document's arrivals are counted from: when it was
    /// first loaded (or loaded again after [`Self::forget_docs`]), or when
    /// its arrivals were last taken ([`Self::take_arrivals`]).
    first_heads: crate::model::inbox::Marks,
    /// The drafts whose digest this replica kept, with their heads then
    /// ([`Self::keep_draft_digests`]).
    digested: BTreeMap<String, Vec<ChangeHash>>,
    /// Heads of documents not loaded, as read from their files: a session
    /// asks for every document's heads twice (to send them, then to compare
    /// with the peer's), and reading them means hashing each snapshot.
    /// Dropped when the document is loaded, or the loaded ones forgotten.
    file_heads: BTreeMap<String, Vec<ChangeHash>>,
    /// Documents not loaded whose files were read for every change they
    /// hold (a delta is checked against them, [`Replica::add_deltas`]), as
    /// they stand after what this replica appended. Dropped with
    /// `file_heads`.
    file_views: BTreeMap<String, FileView>,
    /// Documents a delta was appended to without loading them, since the
    /// last [`Self::fold_appended`], with the changes appended (verified
    /// here: loading them checks their authors, not their signatures).
    appended: BTreeMap<String, super::doclog::Appended>,
    /// How many times a document was read from its files ([`Self::reads`]).
    reads: usize,
}

impl StoreReplica {
    /// Wrap an open community.
    pub fn new(store: CommunityStore, now: i64) -> Self {
        StoreReplica {
            store,
            docs: BTreeMap::new(),
            now,
            first_heads: Default::default(),
            digested: BTreeMap::new(),
            file_heads: BTreeMap::new(),
            file_views: BTreeMap::new(),
            appended: Default::default(),
            reads: 0,
        }
    }

    /// How many times this replica loaded a document so far (read from its
    /// files, or found to have none): a replica that holds its documents
    /// loaded reads none again unless it had to drop them.
    pub fn reads(&self) -> usize {
        self.reads
    }

    /// The community underneath.
    pub fn store(&self) -> &CommunityStore {
        &self.store
    }

    /// The community underneath, to record certificates.
    pub fn store_mut(&mut self) -> &mut CommunityStore {
        &mut self.store
    }

    /// Give the community back.
    pub fn into_store(self) -> CommunityStore {
        self.store
    }

    /// The documents that changed since they were first loaded, with their
    /// heads then (empty: the document arrived whole): what to compare with
    /// to tell what arrived (`model::inbox`). A document no longer held
    /// (dropped after a failed step, or to be read again under a new
    /// membership) is compared as its files hold it; one dropped by
    /// [`Self::forget_docs`] is not compared until it is read again.
    pub fn arrivals(&mut self) -> crate::model::inbox::Marks {
        self.arrivals_now()
            .into_iter()
            .map(|(name, (before, _))| (name, before))
            .collect()
    }

    /// [`Self::arrivals`], and start counting again from now (for `serve`,
    /// whose replica outlives its sessions).
    pub fn take_arrivals(&mut self) -> crate::model::inbox::Marks {
        let mut arrived = crate::model::inbox::Marks::new();
        for (name, (before, now)) in self.arrivals_now() {
            self.first_heads.insert(name.clone(), now);
            arrived.insert(name, before);
        }
        arrived
    }

    /// Each document whose heads changed since it was first loaded: its
    /// heads then and now.
    fn arrivals_now(&mut self) -> BTreeMap<String, (Vec<ChangeHash>, Vec<ChangeHash>)> {
        let mut out = BTreeMap::new();
        for (name, before) in &self.first_heads {
            let mut now = match self.docs.get_mut(name) {
                Some(loaded) => loaded.doc.get_heads(),
                None => match self.store.doc_heads(name) {
                    Some(heads) => heads,
                    None => continue,
                },
            };
            now.sort();
            let mut then = before.clone();
            then.sort();
            if now != then {
                out.insert(name.clone(), (before.clone(), now));
            }
        }
        out
    }

    /// Keep the digest of each draft among `arrived` ([`Self::arrivals`])
    /// that the replica holds loaded, on every core, as a command that
    /// loads a draft does: the next `show` or `tally` then reads it from
    /// its digest instead of loading it in full. A draft whose digest was
    /// kept at these heads already (arrived whole: `install_all`) is left
    /// alone; one whose digest may not be taken from a sync
    /// (`CommunityStore::keep_draft_digest`) gets none, as before.
    pub fn keep_draft_digests(&mut self, arrived: &crate::model::inbox::Marks) {
        let mut names = Vec::new();
        for name in arrived.keys() {
            if !matches!(DocId::parse(name), Some(DocId::Draft(_))) {
                continue;
            }
            let Some(loaded) = self.docs.get_mut(name).filter(|l| !is_placeholder(l)) else {
                continue;
            };
            if self.digested.get(name) != Some(&loaded.doc.get_heads()) {
                names.push(name.clone());
            }
        }
        let Ok(loaded) = crate::sync::replica::entries_mut(&mut self.docs, &names) else {
            return;
        };
        let store = &self.store;
        let kept = crate::parallel::in_order(
            names.iter().zip(loaded).collect(),
            2,
            |(name, loaded)| {
                store
                    .keep_draft_digest(name, &mut loaded.doc)
                    .then(|| loaded.doc.get_heads())
            },
            |_| None,
        );
        for (name, heads) in names.into_iter().zip(kept) {
            if let Some(heads) = heads {
                self.digested.insert(name, heads);
            }
        }
    }

    /// Copies of the loaded documents among `names`, as they are on disk
    /// (everything received is appended before a session goes on), for the
    /// commands that read what arrived (`model::shared_loads`).
    pub fn copies<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> crate::model::shared_loads::LoadedDocs {
        let copies = names
            .into_iter()
            .filter_map(|name| {
                let loaded = self.docs.get(name).filter(|l| !is_placeholder(l))?;
                Some((DocId::parse(name)?, loaded.doc.clone()))
            })
            .collect();
        crate::model::shared_loads::LoadedDocs::new(copies)
    }

    /// The loaded documents among `names`, taken out of the replica (for a
    /// command whose sessions are over): [`Self::copies`] without copying.
    pub fn take_loaded<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> crate::model::shared_loads::LoadedDocs {
        let taken = names
            .into_iter()
            .filter_map(|name| {
                let id = DocId::parse(name)?;
                let loaded = self.docs.remove(name).filter(|l| !is_placeholder(l))?;
                Some((id, loaded.doc))
            })
            .collect();
        crate::model::shared_loads::LoadedDocs::new(taken)
    }

    /// Drop what is held of documents `names`, loaded or their heads read
    /// from files, to read them again from disk (after this device wrote
    /// to them through another path: `serve`'s receipts). What this device
    /// wrote did not arrive: each is compared, for what arrives next, from
    /// its heads when read again ([`Self::arrivals`]), not from before the
    /// write. Call it in the same step as [`Self::take_arrivals`], right
    /// after: what arrived in `names` and was not yet taken is not counted.
    pub fn forget_docs(&mut self, names: &[String]) {
        for name in names {
            self.forget_doc(name);
            self.first_heads.remove(name);
        }
    }

    /// Load the documents that deltas were appended to without loading
    /// them ([`Replica::add_deltas`]), on every core, folding each log
    /// grown past [`super::community::COMPACT_AT_BYTES`] (or holding
    /// changes the load left out) into an attested snapshot, and hold them
    /// loaded: for once a sync's sessions are over
    /// (the peer need not wait for it), so that later commands neither
    /// apply nor verify those changes again, and the commands that read
    /// what arrived get them loaded ([`Self::take_loaded`]). A document
    /// that fails to load or fold is only a warning: its changes are
    /// durable in its log, and the next command reports the damage.
    pub fn fold_appended(&mut self) {
        let appended: Vec<(String, super::doclog::Appended)> = std::mem::take(&mut self.appended)
            .into_iter()
            .filter(|(name, _)| !self.docs.contains_key(name))
            .collect();
        let names: Vec<String> = appended.iter().map(|(name, _)| name.clone()).collect();
        let (store, now) = (&self.store, self.now);
        let loaded = crate::parallel::in_order(
            appended,
            2,
            |(name, hashes)| match store.load_folding(&name, now, &hashes) {
                Ok(loaded) => loaded,
                Err(e) => {
                    tracing::warn!("could not load {name} to fold its log: {e}");
                    None
                }
            },
            |_| None,
        );
        for (name, loaded) in names.into_iter().zip(loaded) {
            if let Some(loaded) = loaded {
                self.hold(&name, loaded);
            }
        }
    }

    /// The names of the documents loaded so far.
    pub fn loaded_docs(&self) -> Vec<String> {
        self.docs.keys().cloned().collect()
    }

    /// The time used to judge expiries from now on.
    pub fn set_now(&mut self, now: i64) {
        self.now = now;
    }

    /// Hold a document just read from disk, remembering its heads before
    /// anything arrives.
    fn hold(&mut self, name: &str, mut loaded: LoadedDoc) {
        self.reads += 1;
        self.first_heads
            .entry(name.to_string())
            .or_insert_with(|| loaded.doc.get_heads());
        self.file_heads.remove(name);
        self.file_views.remove(name);
        self.docs.insert(name.to_string(), loaded);
    }

    /// What the files of document `name`, not loaded, hold (read once,
    /// then kept up to date by [`Replica::add_deltas`]); `None` if they
    /// cannot be read so (see [`super::doclog::held`]).
    fn file_view(&mut self, name: &str) -> Option<&FileView> {
        if !self.file_views.contains_key(name) {
            let view = self.store.doc_view(name)?;
            self.file_heads.insert(name.to_string(), view.heads.clone());
            self.file_views.insert(name.to_string(), view);
        }
        self.file_views.get(name)
    }

    fn local(e: impl std::fmt::Display) -> SyncError {
        SyncError::Local(e.to_string())
    }
}

impl Replica for StoreReplica {
    fn membership(&self) -> &Membership {
        self.store.membership()
    }

    fn certificates(&self) -> Vec<Vec<u8>> {
        self.store.certificate_bytes()
    }

    fn add_certificates(&mut self, certs: &[Certificate]) -> Result<usize, SyncError> {
        let before = (!certs.is_empty()).then(|| self.store.membership().clone());
        let added = self.store.add_certificates(certs).map_err(|e| {
            if e.is_integrity() {
                SyncError::Refused(e.to_string())
            } else {
                SyncError::Local(e.to_string())
            }
        })?;
        let keeps = before.is_some_and(|b| self.store.membership().keeps_verdicts_of(&b));
        if added > 0 && !keeps {
            // Load the documents again under the new membership: a removal
            // drops what its member wrote later (`trust::removal`). New
            // members and devices judge no held change differently, so an
            // admission keeps them loaded (a `serve` holds every document
            // it synced, and would otherwise load them all again).
            self.docs.clear();
        }
        Ok(added)
    }

    fn doc_names(&mut self) -> Result<Vec<String>, SyncError> {
        let mut names: Vec<String> = self.store.doc_names().map_err(Self::local)?;
        for (name, loaded) in &mut self.docs {
            if !loaded.doc.get_heads().is_empty() && !names.contains(name) {
                names.push(name.clone());
            }
        }
        names.sort();
        Ok(names)
    }

    fn doc(&mut self, name: &str) -> Result<&mut AutoCommit, SyncError> {
        if DocId::parse(name).is_none() {
            return Err(SyncError::Protocol(format!(
                "'{name}' is not a document name"
            )));
        }
        if !self.docs.contains_key(name) {
            let loaded = self
                .store
                .load_doc(name, true, self.now)
                .map_err(|e| {
                    if e.is_integrity() {
                        SyncError::Local(format!("the local copy is damaged: {e}"))
                    } else {
                        Self::local(e)
                    }
                })?
                .unwrap_or_else(LoadedDoc::empty);
            self.hold(name, loaded);
        }
        self.docs
            .get_mut(name)
            .map(|l| &mut l.doc)
            .ok_or_else(|| Self::local("document vanished"))
    }

    fn docs_mut(&mut self, names: &[String]) -> Result<Vec<&mut AutoCommit>, SyncError> {
        for name in names {
            self.doc(name)?;
        }
        let loaded = crate::sync::replica::entries_mut(&mut self.docs, names)?;
        Ok(loaded.into_iter().map(|l| &mut l.doc).collect())
    }

    fn load_ahead(&mut self, names: &[String]) {
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| !self.docs.contains_key(*name) && DocId::parse(name).is_some())
            .collect();
        let (store, now) = (&self.store, self.now);
        let loaded = crate::parallel::in_order(
            missing.clone(),
            2,
            |name| match store.load_doc(name, true, now) {
                Ok(loaded) => Some(loaded.unwrap_or_else(LoadedDoc::empty)),
                Err(_) => None,
            },
            |_| None,
        );
        for (name, loaded) in missing.into_iter().zip(loaded) {
            if let Some(loaded) = loaded {
                self.hold(name, loaded);
            }
        }
    }

    fn heads(&mut self, name: &str) -> Result<Vec<ChangeHash>, SyncError> {
        if !self.docs.contains_key(name) {
            if let Some(heads) = self.file_heads.get(name) {
                return Ok(heads.clone());
            }
            if let Some(heads) = self.store.doc_heads(name) {
                self.file_heads.insert(name.to_string(), heads.clone());
                return Ok(heads);
            }
        }
        Ok(self.doc(name)?.get_heads())
    }

    fn heads_all(&mut self, names: &[String]) -> Result<Vec<Vec<ChangeHash>>, SyncError> {
        // Those to read from files, on every core.
        let unread: Vec<&String> = names
            .iter()
            .filter(|name| {
                !self.docs.contains_key(*name)
                    && !self.file_heads.contains_key(*name)
                    && DocId::parse(name).is_some()
            })
            .collect();
        let store = &self.store;
        let read =
            crate::parallel::in_order(unread.clone(), 8, |name| store.doc_heads(name), |_| None);
        for (name, heads) in unread.into_iter().zip(read) {
            if let Some(heads) = heads {
                self.file_heads.insert(name.clone(), heads);
            }
        }
        names.iter().map(|name| self.heads(name)).collect()
    }

    fn whole(&mut self, name: &str) -> Result<Option<WholeDoc>, SyncError> {
        // Its change chunks as kept on disk, without loading it.
        if let Some(whole) = self.store.whole_from_files(name) {
            return Ok(Some(whole));
        }
        let was_loaded = self.docs.contains_key(name);
        self.doc(name)?;
        let Some(LoadedDoc {
            doc, signatures, ..
        }) = self.docs.get_mut(name)
        else {
            return Ok(None);
        };
        let whole = whole::prepare(name, doc, |hash| signatures.get(hash).copied());
        if let Some(whole) = &whole {
            // So that the next newcomer is sent it from disk.
            self.store.keep_history(name, whole);
        }
        if !was_loaded {
            // Loaded only to be sent: a join would otherwise keep the whole
            // community loaded for its session.
            self.docs.remove(name);
        }
        Ok(whole)
    }

    fn install(&mut self, name: &str, verified: Verified) -> Result<(), SyncError> {
        self.install_all(vec![(name.to_string(), verified)])
    }

    /// Each document is saved, attested and written on every core (a
    /// frame of whole documents was checked the same way), and a draft's
    /// digest kept beside it: a newcomer's first `show` of a response would
    /// otherwise load each of its drafts in full.
    fn install_all(&mut self, docs: Vec<(String, Verified)>) -> Result<(), SyncError> {
        // Their heads as read from files (none) no longer hold, whatever
        // happens to each below.
        for (name, _) in &docs {
            self.file_heads.remove(name);
            self.file_views.remove(name);
        }
        let store = &self.store;
        let installed = crate::parallel::in_order(
            docs,
            2,
            |(name, Verified { doc, signatures })| {
                let mut loaded = LoadedDoc {
                    doc,
                    signatures,
                    log_records: 0,
                    left_out: 0,
                };
                let written = store.install_doc(&name, &mut loaded);
                // Read by the next `show` or `tally` without loading it.
                let digested = written.is_ok()
                    && matches!(DocId::parse(&name), Some(DocId::Draft(_)))
                    && store.keep_draft_digest(&name, &mut loaded.doc);
                Some((name, loaded, written, digested))
            },
            |_| None,
        );
        let mut result = Ok(());
        for one in installed {
            let Some((name, mut loaded, written, digested)) = one else {
                result = result.and(Err(Self::local("a thread installing documents failed")));
                continue;
            };
            if let Err(e) = written {
                result = result.and(Err(Self::local(e)));
                continue;
            }
            if digested {
                self.digested.insert(name.clone(), loaded.doc.get_heads());
            }
            // Arrived whole: everything in it is new here.
            self.first_heads.insert(name.clone(), Vec::new());
            self.docs.insert(name, loaded);
        }
        result
    }

    fn signature(&self, doc: &str, hash: &ChangeHash) -> Option<ChangeSignature> {
        self.docs
            .get(doc)
            .and_then(|l| l.signatures.get(&hash.0))
            .copied()
    }

    fn sync_state(&mut self, peer: &DeviceId, doc: &str) -> Option<State> {
        let states = load_states(&states_path(self.store.dir(), peer))?;
        let bytes = hex::decode(states.get(doc)?).ok()?;
        State::decode(&bytes).ok()
    }

    fn save_sync_states(
        &mut self,
        peer: &DeviceId,
        states: &BTreeMap<String, State>,
    ) -> Result<(), SyncError> {
        let path = states_path(self.store.dir(), peer);
        let mut all = load_states(&path).unwrap_or_default();
        for (doc, state) in states {
            all.insert(doc.clone(), hex::encode(state.encode()));
        }
        let bytes = serde_json::to_vec_pretty(&all).map_err(Self::local)?;
        if let Some(dir) = path.parent() {
            crate::store::fsutil::private_dir(dir).map_err(Self::local)?;
        }
        crate::store::fsutil::write_atomic(&path, &bytes).map_err(Self::local)
    }

    fn persist(
        &mut self,
        doc: &str,
        changes: &[(ChangeSignature, Change)],
    ) -> Result<(), SyncError> {
        let kept = self
            .store
            .keep_verified(doc, self.docs.get_mut(doc), changes)
            .map_err(Self::local);
        if !matches!(kept, Ok(Sound::Yes)) {
            // The document in memory may differ from its files: it must
            // not be read as it is (`arrivals`, `copies`).
            self.forget_doc(doc);
        }
        kept.map(|_| ())
    }

    fn apply_and_keep(
        &mut self,
        steps: Vec<DocStep<'_>>,
    ) -> Result<Vec<Result<usize, SyncError>>, SyncError> {
        let names: Vec<String> = steps.iter().map(|s| s.name.clone()).collect();
        for name in &names {
            self.doc(name)?;
        }
        let loaded = crate::sync::replica::entries_mut(&mut self.docs, &names)?;
        let store = &self.store;
        // Each document kept (and folded) on the core that applied it, while
        // the other cores go on with the next documents.
        let kept = crate::parallel::in_order(
            steps.into_iter().zip(loaded).collect(),
            2,
            |(step, loaded)| {
                let name = step.name.clone();
                let signed = step.apply_to(&mut loaded.doc)?;
                if signed.is_empty() {
                    return Ok((0, Sound::Yes));
                }
                let sound = store
                    .keep_verified(&name, Some(loaded), &signed)
                    .map_err(Self::local)?;
                Ok((signed.len(), sound))
            },
            |i| Err(step::failed(&names[i])),
        );
        // A document whose fold failed half-way is read again from its
        // files, which hold all it applied (the caller forgets those that
        // failed).
        for (name, kept) in names.iter().zip(&kept) {
            if matches!(kept, Ok((_, Sound::No))) {
                self.forget_doc(name);
            }
        }
        Ok(kept
            .into_iter()
            .map(|kept| kept.map(|(count, _)| count))
            .collect())
    }

    fn forget_doc(&mut self, doc: &str) {
        self.docs.remove(doc);
        self.file_heads.remove(doc);
        self.file_views.remove(doc);
    }

    fn holds_all(&mut self, name: &str, hashes: &[ChangeHash]) -> Result<bool, SyncError> {
        if !self.docs.contains_key(name) {
            if let Some(heads) = self.file_heads.get(name)
                && hashes.iter().all(|h| heads.contains(h))
            {
                return Ok(true);
            }
            if let Some(view) = self.file_view(name) {
                return Ok(hashes.iter().all(|h| view.held.contains(&h.0)));
            }
        }
        let doc = self.doc(name)?;
        Ok(hashes
            .iter()
            .all(|h| doc.get_change_meta_by_hash(h).is_some()))
    }

    fn add_deltas(
        &mut self,
        deltas: Vec<(String, Signed)>,
    ) -> Vec<Result<Option<usize>, SyncError>> {
        // A document not loaded whose files tell what they hold takes its
        // delta into its log without being loaded; any other is loaded.
        let names: Vec<String> = deltas.iter().map(|(name, _)| name.clone()).collect();
        let mut views = BTreeMap::new();
        let mut unreadable = BTreeMap::new();
        for name in &names {
            if self.docs.contains_key(name) {
                continue;
            }
            if self.file_view(name).is_some() {
                if let Some(view) = self.file_views.remove(name) {
                    views.insert(name.clone(), view);
                }
            } else if let Err(e) = self.doc(name) {
                unreadable.insert(name.clone(), e);
            }
        }
        let loaded_names: Vec<String> = names
            .iter()
            .filter(|name| self.docs.contains_key(*name))
            .cloned()
            .collect();
        let mut loaded: BTreeMap<String, &mut LoadedDoc> =
            match crate::sync::replica::entries_mut(&mut self.docs, &loaded_names) {
                Ok(found) => loaded_names.into_iter().zip(found).collect(),
                Err(e) => {
                    let e = e.to_string();
                    return names.iter().map(|_| Err(Self::local(&e))).collect();
                }
            };
        let work: Vec<(String, Signed, Target<'_>)> = deltas
            .into_iter()
            .map(|(name, changes)| {
                let target = if let Some(doc) = loaded.remove(&name) {
                    Target::Loaded(doc)
                } else if let Some(view) = views.remove(&name) {
                    Target::Files(view)
                } else {
                    Target::Failed(
                        unreadable
                            .remove(&name)
                            .unwrap_or_else(|| Self::local(format!("document {name} is not held"))),
                    )
                };
                (name, changes, target)
            })
            .collect();
        let store = &self.store;
        // Each document applied or appended on its own core, as a step's.
        let done = crate::parallel::in_order(
            work,
            2,
            |(name, changes, target)| match target {
                Target::Loaded(loaded) => {
                    let new = match delta::apply(&name, &mut loaded.doc, changes) {
                        Ok(Some(new)) => new,
                        Ok(None) => return Added::FallBack,
                        Err(e) => return Added::Failed(e),
                    };
                    if new.is_empty() {
                        return Added::Applied(0, Sound::Yes);
                    }
                    match store.keep_verified(&name, Some(loaded), &new) {
                        Ok(sound) => Added::Applied(new.len(), sound),
                        Err(e) => Added::Failed(Self::local(e)),
                    }
                }
                Target::Files(view) => {
                    let Some(new) = delta::lacked(changes, |h| view.held.contains(&h.0)) else {
                        return Added::FallBackFiles(view);
                    };
                    if new.is_empty() {
                        return Added::Appended(view.heads.clone(), view, Vec::new());
                    }
                    if let Err(e) = store.keep_verified(&name, None, &new) {
                        return Added::Failed(Self::local(e));
                    }
                    let before = view.heads.clone();
                    let mut after = FileView {
                        heads: delta::heads_after(&view.heads, &new),
                        held: view.held,
                    };
                    let kept: Vec<([u8; 32], ChangeSignature)> =
                        new.iter().map(|(sig, c)| (c.hash().0, *sig)).collect();
                    after.held.extend(kept.iter().map(|(hash, _)| *hash));
                    Added::Appended(before, after, kept)
                }
                Target::Failed(e) => Added::Failed(e),
            },
            |i| Added::Failed(step::failed(&names[i])),
        );
        names
            .iter()
            .zip(done)
            .map(|(name, added)| match added {
                Added::Applied(count, sound) => {
                    if matches!(sound, Sound::No) {
                        self.forget_doc(name);
                    }
                    Ok(Some(count))
                }
                Added::Appended(before, after, new) => {
                    let count = new.len();
                    // What arrived is counted from the heads before.
                    self.first_heads.entry(name.clone()).or_insert(before);
                    if !new.is_empty() {
                        self.appended.entry(name.clone()).or_default().extend(new);
                    }
                    self.file_heads.insert(name.clone(), after.heads.clone());
                    self.file_views.insert(name.clone(), after);
                    Ok(Some(count))
                }
                Added::FallBackFiles(view) => {
                    self.file_views.insert(name.clone(), view);
                    Ok(None)
                }
                Added::FallBack => Ok(None),
                Added::Failed(e) => {
                    // It may hold, or its log may hold, part of the delta.
                    self.forget_doc(name);
                    Err(e)
                }
            })
            .collect()
    }
}
