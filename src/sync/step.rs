//! One document's share of a sync step, applied and kept on its own.
//!
//! A step of a catch-up brings messages for many documents at once, and
//! one of them may carry half the changes. Applying a message touches only
//! its document and its sync state, and keeping what it brought touches
//! only that document's files; so a replica can apply a document and keep
//! it durably on one core while the other cores do the same for the next
//! documents ([`super::Replica::apply_and_keep`]), instead of waiting for
//! the largest document to be applied before any is kept.

use automerge::sync::{Message, State, SyncDoc};
use automerge::{AutoCommit, Change};

use super::SyncError;
use super::chunks::guarded;
use crate::trust::signed_change::ChangeSignature;

/// A message received for one document, its changes judged and in causal
/// order; the sync state it advances; and the changes it brings that the
/// document lacked, each with the signature it was checked against.
pub struct DocStep<'a> {
    /// The document.
    pub name: String,
    /// Its sync state with the peer.
    pub state: &'a mut State,
    /// The message, carrying only the accepted changes.
    pub message: Message,
    /// The accepted changes the document did not hold, signed.
    pub new: Vec<(ChangeSignature, Change)>,
}

impl DocStep<'_> {
    /// Apply the message to `doc` as Automerge's sync protocol does. The
    /// changes of `new` that `doc` now holds are returned, to keep: a change
    /// Automerge did not apply stays out of the log too.
    pub fn apply_to(
        self,
        doc: &mut AutoCommit,
    ) -> Result<Vec<(ChangeSignature, Change)>, SyncError> {
        let DocStep {
            name,
            state,
            message,
            new,
        } = self;
        guarded(|| {
            doc.sync()
                .receive_sync_message(state, message)
                .map_err(|e| e.to_string())
        })
        .map_err(|e| SyncError::Refused(format!("{name}: {e}")))?;
        Ok(new
            .into_iter()
            .filter(|(_, change)| doc.get_change_meta_by_hash(&change.hash()).is_some())
            .collect())
    }
}

/// Why a step's document has no outcome: the work on it panicked, past
/// the guard around Automerge's apply (so in this device's own code).
pub fn failed(name: &str) -> SyncError {
    SyncError::Local(format!("{name}: applying or keeping it failed"))
}

/// A message carrying `changes`, from a peer at `heads` that asks for
/// nothing and says nothing of what it holds (the tests' steps).
#[cfg(test)]
pub(crate) fn message_carrying(heads: Vec<automerge::ChangeHash>, changes: &[Change]) -> Message {
    Message {
        heads,
        need: Vec::new(),
        have: Vec::new(),
        changes: automerge::sync::ChunkList::from(
            changes
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect::<Vec<_>>(),
        ),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ChangeHash, ROOT};

    /// Two changes of one document, the second building on the first.
    fn two_changes() -> (Change, Change) {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "a", 1).unwrap_or_else(|e| panic!("{e}"));
        doc.commit();
        doc.put(ROOT, "b", 2).unwrap_or_else(|e| panic!("{e}"));
        doc.commit();
        let changes = doc.get_changes(&[]);
        (changes[0].clone(), changes[1].clone())
    }

    /// A (false) signature of its own for each change: its hash, twice.
    fn signed(change: &Change) -> (ChangeSignature, Change) {
        let mut sig = [0; 64];
        sig[..32].copy_from_slice(&change.hash().0);
        sig[32..].copy_from_slice(&change.hash().0);
        (ChangeSignature(sig), change.clone())
    }

    /// The step of a message carrying `changes`, all new and signed, from a
    /// peer whose heads they end at.
    fn step_carrying<'a>(state: &'a mut State, changes: &[Change]) -> DocStep<'a> {
        let heads = changes.last().map(|c| vec![c.hash()]).unwrap_or_default();
        DocStep {
            name: "community".into(),
            state,
            message: message_carrying(heads, changes),
            new: changes.iter().map(signed).collect(),
        }
    }

    #[test]
    fn the_changes_to_keep_are_those_the_document_now_holds() {
        let (first, second) = two_changes();
        let mut doc = AutoCommit::new();
        let mut state = State::new();
        let kept = step_carrying(&mut state, &[first.clone(), second.clone()])
            .apply_to(&mut doc)
            .unwrap_or_else(|e| panic!("{e}"));
        let hashes: Vec<ChangeHash> = kept.iter().map(|(_, c)| c.hash()).collect();
        assert_eq!(hashes, vec![first.hash(), second.hash()]);
        // Each with its own signature.
        for (sig, change) in &kept {
            assert_eq!(sig.0, signed(change).0.0);
        }
        assert_eq!(doc.get_heads(), vec![second.hash()]);
        assert_eq!(state.their_heads, Some(vec![second.hash()]));
    }

    #[test]
    fn a_change_automerge_holds_back_is_not_kept() {
        // Its dependency never came: Automerge queues it, unapplied.
        let (_, second) = two_changes();
        let mut doc = AutoCommit::new();
        let mut state = State::new();
        let kept = step_carrying(&mut state, std::slice::from_ref(&second))
            .apply_to(&mut doc)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(kept.is_empty(), "{} kept", kept.len());
        assert!(doc.get_heads().is_empty());
    }
}
