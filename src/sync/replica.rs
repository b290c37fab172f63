//! What a sync session needs from the local copy of a community.
//!
//! The store implements this over files; [`super::memory::MemoryReplica`]
//! implements it in memory for the multi-peer tests.

use std::collections::BTreeMap;

use automerge::sync::State;
use automerge::{AutoCommit, Change, ChangeHash};

use super::SyncError;
use super::delta::{self, Signed};
use super::step::{self, DocStep};
use super::whole::{self, Verified, WholeDoc};
use crate::trust::signed_change::ChangeSignature;
use crate::trust::{Certificate, DeviceId, Membership};

/// The local copy of one community, as a sync session sees it.
pub trait Replica {
    /// The current membership view.
    fn membership(&self) -> &Membership;

    /// Every certificate held, as stored bytes.
    fn certificates(&self) -> Vec<Vec<u8>>;

    /// Verify certificates and keep the new ones durably; returns how many
    /// were new. The membership view is rebuilt.
    fn add_certificates(&mut self, certs: &[Certificate]) -> Result<usize, SyncError>;

    /// The names of every document held.
    fn doc_names(&mut self) -> Result<Vec<String>, SyncError>;

    /// A document, loaded and verified, or a new empty one if not held.
    fn doc(&mut self, name: &str) -> Result<&mut AutoCommit, SyncError>;

    /// Documents `names` (distinct), each as [`Self::doc`] gives it, at
    /// once: a session applies several documents' changes on every core.
    fn docs_mut(&mut self, names: &[String]) -> Result<Vec<&mut AutoCommit>, SyncError>;
    /// A document's heads; a replica that can tell them without loading the
    /// document (the store, from an attested snapshot) saves a session from
    /// loading every document it does not need to exchange.
    fn heads(&mut self, name: &str) -> Result<Vec<ChangeHash>, SyncError> {
        Ok(self.doc(name)?.get_heads())
    }

    /// [`Self::heads`] of each of `names`, in order (a replica that reads
    /// them from files reads them on every core).
    fn heads_all(&mut self, names: &[String]) -> Result<Vec<Vec<ChangeHash>>, SyncError> {
        names.iter().map(|name| self.heads(name)).collect()
    }
    /// Load `names` now, on every core, because the session is about to
    /// read each of them (by default nothing: [`Self::doc`] loads on
    /// demand). A document that fails to load here is left to `doc`, which
    /// reports why.
    fn load_ahead(&mut self, _names: &[String]) {}

    /// Document `name` to send whole to a peer that holds nothing of it:
    /// every change chunk and the signature of each; `None`
    /// to send it change by change (empty, too large, or a signature is
    /// missing). See [`super::whole::prepare`].
    fn whole(&mut self, name: &str) -> Result<Option<WholeDoc>, SyncError>;

    /// Whether document `name` holds every one of `hashes` (a replica that
    /// can tell from its files need not load it).
    fn holds_all(&mut self, name: &str, hashes: &[ChangeHash]) -> Result<bool, SyncError> {
        let doc = self.doc(name)?;
        Ok(hashes
            .iter()
            .all(|h| doc.get_change_meta_by_hash(h).is_some()))
    }

    /// Document `name`'s changes since `base` (heads of a peer that are all
    /// held here), each with its signature, for a `Delta` frame; `None` to
    /// send them change by change (too large, or a signature is missing).
    fn delta(&mut self, name: &str, base: &[ChangeHash]) -> Result<Option<WholeDoc>, SyncError> {
        let changes = self.doc(name)?.get_changes(base);
        Ok(whole::pack(name, &changes, |hash| {
            self.signature(name, &ChangeHash(*hash))
        }))
    }

    /// Keep the checked changes of each delta (distinct documents), durably:
    /// per document in order, how many it lacked and now holds, or `None`
    /// if a change builds on one neither the delta nor the document holds
    /// (nothing is kept then: the document goes change by change). A
    /// replica that can keeps a delta to a document it has not loaded
    /// without loading it (the store appends it to the log).
    fn add_deltas(
        &mut self,
        deltas: Vec<(String, Signed)>,
    ) -> Vec<Result<Option<usize>, SyncError>> {
        deltas
            .into_iter()
            .map(|(name, changes)| {
                let doc = self.doc(&name)?;
                let applied = delta::apply(&name, doc, changes);
                let new = match applied {
                    Ok(Some(new)) => new,
                    Ok(None) => return Ok(None),
                    Err(e) => {
                        self.forget_doc(&name);
                        return Err(e);
                    }
                };
                if !new.is_empty() {
                    self.persist(&name, &new)?;
                }
                Ok(Some(new.len()))
            })
            .collect()
    }

    /// Keep a document that arrived whole and passed every check, in place
    /// of the empty one held, durably.
    fn install(&mut self, name: &str, verified: Verified) -> Result<(), SyncError>;

    /// [`Self::install`] each of `docs`, in order (a replica that can keeps
    /// them on every core); the first failure, after the others.
    fn install_all(&mut self, docs: Vec<(String, Verified)>) -> Result<(), SyncError> {
        let mut result = Ok(());
        for (name, verified) in docs {
            let installed = self.install(&name, verified);
            if result.is_ok() {
                result = installed;
            }
        }
        result
    }

    /// The stored signature of a change held in `doc`.
    fn signature(&self, doc: &str, hash: &ChangeHash) -> Option<ChangeSignature>;

    /// Keep changes that were just applied to `doc`, with their signatures,
    /// durably. The document held must then hold exactly what is kept of
    /// it: the store folds a grown log from it.
    fn persist(
        &mut self,
        doc: &str,
        changes: &[(ChangeSignature, Change)],
    ) -> Result<(), SyncError>;

    /// Apply each of `steps` (distinct documents) to its document and keep
    /// what it brought ([`Self::persist`]): the number of changes kept, per
    /// step in order, or why that document failed (it may then hold what
    /// is not kept: the caller forgets it, [`Self::forget_doc`]). The error
    /// is for the documents not being at hand, before any is applied.
    ///
    /// By default the documents are applied on every core, then kept one
    /// after the other; the store keeps each document as soon as it is
    /// applied, on the core that applied it.
    fn apply_and_keep(
        &mut self,
        steps: Vec<DocStep<'_>>,
    ) -> Result<Vec<Result<usize, SyncError>>, SyncError> {
        let names: Vec<String> = steps.iter().map(|s| s.name.clone()).collect();
        let applied = crate::parallel::in_order(
            steps.into_iter().zip(self.docs_mut(&names)?).collect(),
            2,
            |(step, doc)| step.apply_to(doc),
            |i| Err(step::failed(&names[i])),
        );
        Ok(names
            .iter()
            .zip(applied)
            .map(|(name, applied)| {
                let signed = applied?;
                if !signed.is_empty() {
                    self.persist(name, &signed)?;
                }
                Ok(signed.len())
            })
            .collect())
    }

    /// Drop what is held of `doc` in memory, to read it again from where
    /// it is kept: applying a message to it failed, or what it applied was
    /// not kept, so it may hold what its files do not (by default nothing:
    /// a replica in memory keeps nothing elsewhere).
    fn forget_doc(&mut self, _doc: &str) {}
    /// The Automerge sync state remembered from the last session with
    /// `peer` for `doc` (only the shared heads are kept).
    fn sync_state(&mut self, _peer: &DeviceId, _doc: &str) -> Option<State> {
        None
    }

    /// Remember the sync states of a finished session with `peer`.
    fn save_sync_states(
        &mut self,
        _peer: &DeviceId,
        _states: &BTreeMap<String, State>,
    ) -> Result<(), SyncError> {
        Ok(())
    }
}

/// The entries of `map` named by `names` (distinct), in that order, each
/// borrowed mutably at once; an error names one that is missing.
pub fn entries_mut<'a, V>(
    map: &'a mut BTreeMap<String, V>,
    names: &[String],
) -> Result<Vec<&'a mut V>, SyncError> {
    let wanted: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    let mut found: Vec<Option<&'a mut V>> = names.iter().map(|_| None).collect();
    for (name, value) in map.iter_mut() {
        if let Some(&i) = wanted.get(name.as_str()) {
            found[i] = Some(value);
        }
    }
    names
        .iter()
        .zip(found)
        .map(|(name, value)| {
            value.ok_or_else(|| {
                SyncError::Local(format!("document {name} is not held, or named twice"))
            })
        })
        .collect()
}
