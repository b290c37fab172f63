//! The changes a peer that is behind lacks, sent in one frame, and kept by
//! a receiver that has not loaded the document.
//!
//! When one side holds every change the other holds (all of the heads the
//! peer listed in its `Heads` frame), what the peer lacks is exactly the
//! changes since those heads. Automerge's sync protocol reaches the same
//! set, but its receiver must hold the document in memory: a device that
//! catches up from its files first loads every discussion it lacks
//! anything of (Automerge's `load`, about a third of a catch-up), then
//! applies. Sent as a `Delta`, the changes are checked exactly as any
//! received change (signature, author's standing, ownership, operation
//! bound: [`super::whole::signed_set`]), and a receiver that has not loaded
//! the document appends them to its log without loading it, provided each
//! change's dependencies are in the frame or already in its files. The
//! next command that reads the document applies them as it loads the log,
//! checking each signature again (`docs/storage.md`).
//!
//! Who sends: after the heads, a side that holds all of the peer's heads
//! for a document sends its delta; a side that does not names the document
//! in its `Lacking` frame and waits for it. A document that both name
//! lacking (each holds changes the other lacks) goes by Automerge's
//! protocol, each side opening it once it reads the other's `Lacking`.
//!
//! A delta is taken or left as a whole, as a whole document is: a bad
//! signature or bytes that are not changes end the session (exit 4); a
//! change that is merely not acceptable here, or one that builds on a
//! change neither the frame nor the receiver holds, sets the document
//! aside, and the receiver opens it change by change.

use std::collections::BTreeSet;

use automerge::{AutoCommit, Change, ChangeHash};

use super::SyncError;
use super::chunks::guarded;
use super::whole::{WholeDoc, each_on_every_core, signed_set};
use crate::trust::Membership;
use crate::trust::signed_change::ChangeSignature;

/// Changes with the signature each was checked against.
pub type Signed = Vec<(ChangeSignature, Change)>;

/// Frames of deltas hold documents up to this many bytes (one larger
/// document goes alone): the receiver checks and keeps the first frames
/// while the sender builds the next.
pub const FRAME_BYTES: usize = 256 << 10;

/// Each of `docs` checked ([`signed_set`]), in order, on every core:
/// `Some` with the signed changes, or `None` to take the document change
/// by change.
pub fn check_all(
    membership: &Membership,
    docs: Vec<WholeDoc>,
) -> Vec<Result<Option<Signed>, SyncError>> {
    each_on_every_core(docs, "delta", |d| {
        signed_set(membership, &d.doc, "delta", &d.changes, d.signatures)
    })
}

/// The changes of `changes` that a document lacks (`held` tells which it
/// holds), each after those it builds on (a log is read in that order);
/// `None` if one of them builds on a change that neither `changes` nor the
/// document holds.
pub fn lacked(changes: Signed, held: impl Fn(&ChangeHash) -> bool) -> Option<Signed> {
    let waiting: Signed = changes
        .into_iter()
        .filter(|(_, change)| !held(&change.hash()))
        .collect();
    let arriving: BTreeSet<ChangeHash> = waiting.iter().map(|(_, c)| c.hash()).collect();
    let complete = waiting.iter().all(|(_, change)| {
        change
            .deps()
            .iter()
            .all(|dep| arriving.contains(dep) || held(dep))
    });
    if !complete {
        return None;
    }
    // In causal order (Kahn's): a change goes once every change it builds
    // on that arrives with it has gone.
    let index: std::collections::HashMap<ChangeHash, usize> = waiting
        .iter()
        .enumerate()
        .map(|(i, (_, c))| (c.hash(), i))
        .collect();
    let mut pending: Vec<usize> = vec![0; waiting.len()];
    let mut builders: Vec<Vec<usize>> = vec![Vec::new(); waiting.len()];
    for (i, (_, change)) in waiting.iter().enumerate() {
        for dep in change.deps() {
            if let Some(&j) = index.get(dep) {
                pending[i] += 1;
                builders[j].push(i);
            }
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..waiting.len()).filter(|&i| pending[i] == 0).collect();
    let mut order = Vec::with_capacity(waiting.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &b in &builders[i] {
            pending[b] -= 1;
            if pending[b] == 0 {
                ready.push_back(b);
            }
        }
    }
    if order.len() != waiting.len() {
        // A cycle: impossible for hashes, so not what they claim to be.
        return None;
    }
    let mut slots: Vec<Option<(ChangeSignature, Change)>> = waiting.into_iter().map(Some).collect();
    let ordered: Signed = order.into_iter().filter_map(|i| slots[i].take()).collect();
    Some(ordered)
}

/// Apply `changes` to `doc`, loaded: the changes it lacked, now applied,
/// to keep; `None` (nothing applied) if one builds on a change neither
/// holds.
pub fn apply(
    name: &str,
    doc: &mut AutoCommit,
    changes: Signed,
) -> Result<Option<Signed>, SyncError> {
    let held = doc.document();
    let Some(new) = lacked(changes, |hash| held.get_change_meta_by_hash(hash).is_some()) else {
        return Ok(None);
    };
    if new.is_empty() {
        return Ok(Some(new));
    }
    let refused = |why: String| SyncError::Refused(format!("{name} (delta): {why}"));
    let to_apply: Vec<Change> = new.iter().map(|(_, c)| c.clone()).collect();
    guarded(|| doc.apply_changes(to_apply).map_err(|e| e.to_string())).map_err(refused)?;
    if let Some((_, change)) = new
        .iter()
        .find(|(_, c)| doc.get_change_meta_by_hash(&c.hash()).is_none())
    {
        return Err(refused(format!("change {} was not applied", change.hash())));
    }
    Ok(Some(new))
}

/// The heads of a document at `heads` once `new` is added (every
/// dependency of each held): those heads and the new changes, less every
/// change a new one builds on.
pub fn heads_after(heads: &[ChangeHash], new: &Signed) -> Vec<ChangeHash> {
    let mut out: BTreeSet<ChangeHash> = heads.iter().copied().collect();
    out.extend(new.iter().map(|(_, c)| c.hash()));
    for (_, change) in new {
        for dep in change.deps() {
            out.remove(dep);
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ROOT;
    use automerge::transaction::Transactable;

    fn signed(changes: Vec<Change>) -> Signed {
        changes
            .into_iter()
            .map(|c| (ChangeSignature([7; 64]), c))
            .collect()
    }

    /// A document with three changes in a row; the changes.
    fn three() -> (AutoCommit, Vec<Change>) {
        let mut doc = AutoCommit::new();
        for i in 0..3 {
            doc.put(ROOT, format!("k{i}"), i as i64)
                .unwrap_or_else(|e| panic!("{e}"));
            doc.commit();
        }
        let changes = doc.get_changes(&[]);
        (doc, changes)
    }

    #[test]
    fn only_what_the_document_lacks_is_kept_and_the_heads_move_on() {
        let (_, changes) = three();
        let held: BTreeSet<ChangeHash> = [changes[0].hash(), changes[1].hash()].into();
        let sent = signed(changes[1..].to_vec());
        let new = lacked(sent, |h| held.contains(h)).unwrap_or_else(|| panic!("complete"));
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].1.hash(), changes[2].hash());
        assert_eq!(
            heads_after(&[changes[1].hash()], &new),
            vec![changes[2].hash()]
        );
    }

    #[test]
    fn a_change_that_builds_on_what_neither_holds_sets_the_delta_aside() {
        let (_, changes) = three();
        // The receiver holds the first change; the second is not sent.
        let held: BTreeSet<ChangeHash> = [changes[0].hash()].into();
        assert!(lacked(signed(vec![changes[2].clone()]), |h| held.contains(h)).is_none());
        let mut doc = AutoCommit::new();
        doc.apply_changes(vec![changes[0].clone()])
            .unwrap_or_else(|e| panic!("{e}"));
        let applied = apply("d", &mut doc, signed(vec![changes[2].clone()]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(applied.is_none());
        assert_eq!(doc.get_heads(), vec![changes[0].hash()], "nothing applied");
    }

    #[test]
    fn a_loaded_document_applies_the_delta() {
        let (full, changes) = three();
        let mut doc = AutoCommit::new();
        doc.apply_changes(vec![changes[0].clone()])
            .unwrap_or_else(|e| panic!("{e}"));
        let new = apply("d", &mut doc, signed(changes.clone()))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("complete"));
        assert_eq!(new.len(), 2);
        assert_eq!(doc.get_heads(), full.clone().get_heads());
    }
}
