//! What a session does with the `Sync` frames it receives: take each in
//! (decode it, keep the first signature of each change), judge its changes
//! (signature, author, ownership; a removed member's later changes kept
//! aside; the rest in causal order), apply them to the document, and keep
//! what is new durably.
//!
//! Frames that arrive together for distinct documents are handled as one
//! after the other would be, but the checks of all their changes share
//! every core, and so do the documents' applications and keeping
//! (`super::super::step`): applying one document's changes touches no other
//! document or sync state. A catch-up receives one such frame per document
//! it is behind on, back to back.

use std::collections::{BTreeMap, BTreeSet};

use automerge::sync::{Message, State};
use automerge::{Change, ChangeHash};

use super::super::chunks::{changes_in, check_have, guarded, with_changes};
use super::super::step::DocStep;
use super::super::verdicts::verdicts_by_doc;
use super::super::{Replica, SyncError};
use super::{MAX_LATE_KEPT_ASIDE, MAX_QUIET_MESSAGES, MAX_ROUNDS_PER_DOC, Session};
use crate::model::DocId;
use crate::trust::TrustError;
use crate::trust::removal::unanswered;
use crate::trust::signed_change::{ChangeSignature, Standing};

/// A `Sync` frame as it arrived: the document, the encoded message, and a
/// signature per change hash.
pub type SyncFrame = (String, Vec<u8>, Vec<([u8; 32], Vec<u8>)>);

/// A frame taken in: its message and changes, each with the signature it is
/// checked against.
struct Received {
    name: String,
    message: Message,
    changes: Vec<Change>,
    signatures: Vec<ChangeSignature>,
}

/// A frame judged: its message with only the accepted changes, in causal
/// order, ready to apply; and which of them the document lacks, each with
/// the signature it was checked against.
struct Judged {
    name: String,
    message: Message,
    new: Vec<(ChangeSignature, Change)>,
}

impl Session {
    /// `Sync` frames for distinct documents (often just one), in order, as
    /// one after the other would be handled. A failure stops the frames
    /// after it; every document applied before is kept durably all the
    /// same, then the first failure is returned.
    pub(super) fn on_syncs(
        &mut self,
        replica: &mut dyn Replica,
        frames: Vec<SyncFrame>,
    ) -> Result<(), SyncError> {
        let mut failure = None;
        let mut received = Vec::with_capacity(frames.len());
        for (name, message, signatures) in frames {
            match self.take_in(&name, &message, signatures) {
                Ok(Some(frame)) => received.push(frame),
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let all: Vec<(&str, &[Change], &[ChangeSignature])> = received
            .iter()
            .map(|r| (r.name.as_str(), &r.changes[..], &r.signatures[..]))
            .collect();
        let verdicts = verdicts_by_doc(replica.membership(), &all);
        let mut judged = Vec::with_capacity(received.len());
        for (frame, verdicts) in received.into_iter().zip(verdicts) {
            match self.judge(replica, frame, verdicts) {
                Ok(Some(frame)) => judged.push(frame),
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let kept = self.apply_all(replica, judged);
        // The frames applied came before the one that failed, if any.
        match (kept, failure) {
            (Err(e), _) | (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) => Ok(()),
        }
    }

    /// Decode a frame and keep the first signature offered for each change
    /// it carries; `None` if the document is left alone from now on.
    fn take_in(
        &mut self,
        name: &str,
        message: &[u8],
        signatures: Vec<([u8; 32], Vec<u8>)>,
    ) -> Result<Option<Received>, SyncError> {
        if DocId::parse(name).is_none() {
            return Err(SyncError::Protocol(format!(
                "'{name}' is not a document name"
            )));
        }
        if self.closed.contains(name) {
            return Ok(None);
        }
        self.waiting.remove(name);
        // (A peer that holds all our heads but could not send a delta
        // opens the document change by change instead.)
        self.lacking.remove(name);
        // Its state changes here, and maybe the document.
        self.asked_at.remove(name);
        let rounds = self.rounds.entry(name.to_string()).or_default();
        *rounds += 1;
        if *rounds > MAX_ROUNDS_PER_DOC {
            self.closed.insert(name.to_string());
            return Ok(None);
        }
        let message = guarded(|| Message::decode(message).map_err(|e| e.to_string()))
            .map_err(|e| SyncError::Refused(format!("undecodable sync message for {name}: {e}")))?;
        check_have(&message).map_err(|e| SyncError::Refused(format!("{name}: {e}")))?;
        let changes =
            changes_in(&message).map_err(|e| SyncError::Refused(format!("{name}: {e}")))?;
        // Per document: the same change (same author, content and history)
        // can exist in two documents, each with its own signature. Only the
        // changes this frame carries get one.
        let carried: BTreeSet<[u8; 32]> = changes.iter().map(|c| c.hash().0).collect();
        let signed = self.signatures.entry(name.to_string()).or_default();
        for (hash, sig) in signatures {
            if !carried.contains(&hash) {
                continue;
            }
            let sig: [u8; 64] = sig
                .try_into()
                .map_err(|_| SyncError::Refused("a signature is not 64 bytes".into()))?;
            // The first signature listed for a change is the one it is
            // checked against and stored with: a later frame cannot swap it.
            signed.entry(hash).or_insert(ChangeSignature(sig));
        }
        self.unanswered.insert(name.to_string(), 0);
        let quiet = self.quiet.entry(name.to_string()).or_default();
        *quiet = if changes.is_empty() { *quiet + 1 } else { 0 };
        if *quiet > MAX_QUIET_MESSAGES {
            self.closed.insert(name.to_string());
            return Ok(None);
        }
        let signatures = changes
            .iter()
            .map(|change| {
                let hash = change.hash();
                signed.get(&hash.0).copied().ok_or_else(|| {
                    SyncError::Refused(format!("change {hash} of {name} is unsigned"))
                })
            })
            .collect::<Result<Vec<ChangeSignature>, SyncError>>()?;
        Ok(Some(Received {
            name: name.to_string(),
            message,
            changes,
            signatures,
        }))
    }

    /// Sort a frame's changes by their `verdicts`: the accepted ones, in
    /// causal order, with a removed member's later changes that they build
    /// on; `None` if the document is left alone from now on.
    fn judge(
        &mut self,
        replica: &mut dyn Replica,
        frame: Received,
        verdicts: Vec<Result<Standing, TrustError>>,
    ) -> Result<Option<Judged>, SyncError> {
        let Received {
            name,
            message,
            changes,
            ..
        } = frame;
        let offered = changes.len();
        let mut accepted: Vec<Change> = Vec::with_capacity(changes.len());
        let mut held_again = 0;
        for (change, verdict) in changes.into_iter().zip(verdicts) {
            let hash = change.hash();
            let late = matches!(verdict, Ok(Standing::AfterRemoval));
            match verdict {
                Ok(Standing::Current) => accepted.push(change),
                Ok(Standing::AfterRemoval) | Err(TrustError::ChangeRefused { .. }) => {
                    if self.held.insert((name.clone(), hash.0)) {
                        self.stats.held_back += 1;
                    } else {
                        held_again += 1;
                    }
                    if late
                        && self.late.values().map(BTreeMap::len).sum::<usize>()
                            < MAX_LATE_KEPT_ASIDE
                    {
                        self.late
                            .entry(name.clone())
                            .or_default()
                            .entry(hash.0)
                            .or_insert(change);
                    }
                }
                Err(e) => return Err(SyncError::Refused(format!("{name}: {e}"))),
            }
        }
        let waiting = self
            .out_of_order
            .get(&name)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let builds_on = !accepted.is_empty() || !waiting.is_empty();
        if let Some(late) = self.late.get_mut(&name).filter(|late| !late.is_empty())
            && builds_on
        {
            // A removed member's later change that an accepted change builds
            // on stays after all (`trust::removal`), also when that change
            // came earlier and waits for it.
            let dropped = unanswered(late.values(), accepted.iter().chain(waiting));
            let kept: Vec<[u8; 32]> = late
                .keys()
                .filter(|h| !dropped.contains(*h))
                .copied()
                .collect();
            let mut admitted = Vec::with_capacity(kept.len() + accepted.len());
            for hash in kept {
                if let Some(change) = late.remove(&hash) {
                    self.stats.held_back = self.stats.held_back.saturating_sub(1);
                    admitted.push(change);
                }
            }
            if !admitted.is_empty() {
                admitted.append(&mut accepted);
                accepted = admitted;
            }
        }
        if offered > 0 && held_again == offered {
            // The peer keeps offering only what we hold back: leave this
            // document for now, or the rounds would never end.
            self.closed.insert(name);
            return Ok(None);
        }
        let doc = replica.doc(&name)?;
        let accepted = self.in_causal_order(&name, doc, accepted);
        let message = with_changes(message, &accepted);
        // What is new here, told from the changes handed over rather than
        // asked of Automerge afterwards (which rebuilds every change).
        let mut seen = BTreeSet::new();
        let signed = self.signatures.get(&name);
        let mut new = Vec::new();
        for change in accepted {
            let hash = change.hash();
            if !seen.insert(hash) || doc.get_change_meta_by_hash(&hash).is_some() {
                continue;
            }
            let sig = signed
                .and_then(|signed| signed.get(&hash.0))
                .copied()
                .ok_or_else(|| {
                    SyncError::Local(format!("change {hash} of {name} lost its signature"))
                })?;
            new.push((sig, change));
        }
        Ok(Some(Judged { name, message, new }))
    }

    /// Apply each judged frame to its document and keep what it applied
    /// durably, documents side by side (`Replica::apply_and_keep`). Every
    /// document applied is kept, whatever failed before it; the first
    /// failure is returned.
    fn apply_all(
        &mut self,
        replica: &mut dyn Replica,
        judged: Vec<Judged>,
    ) -> Result<(), SyncError> {
        if judged.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = judged.iter().map(|j| j.name.clone()).collect();
        let mut states: Vec<State> = names
            .iter()
            .map(|name| self.states.remove(name).unwrap_or_default())
            .collect();
        let steps = states
            .iter_mut()
            .zip(judged)
            .map(|(state, Judged { name, message, new })| DocStep {
                name,
                state,
                message,
                new,
            })
            .collect();
        let kept = replica.apply_and_keep(steps);
        for (name, state) in names.iter().zip(states) {
            self.states.insert(name.clone(), state);
        }
        let mut result = Ok(());
        for (name, kept) in names.iter().zip(kept?) {
            match kept {
                Ok(count) => self.stats.received_changes += count,
                Err(e) => {
                    // What it holds may differ from what is kept: a `serve`
                    // would otherwise serve it so until the process ends.
                    replica.forget_doc(name);
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        result
    }

    /// The dependencies of the changes kept aside for `name` that are
    /// neither in `doc` nor kept aside themselves.
    pub(super) fn missing_for(
        &self,
        name: &str,
        doc: &mut automerge::AutoCommit,
    ) -> Vec<ChangeHash> {
        let Some(waiting) = self.out_of_order.get(name) else {
            return Vec::new();
        };
        let aside: BTreeSet<ChangeHash> = waiting.iter().map(|c| c.hash()).collect();
        let mut missing = BTreeSet::new();
        for change in waiting {
            for dep in change.deps() {
                if !aside.contains(dep) && doc.get_change_meta_by_hash(dep).is_none() {
                    missing.insert(*dep);
                }
            }
        }
        missing.into_iter().collect()
    }

    /// The changes (with those kept aside earlier in this session) whose
    /// dependencies are all in `doc` or among them; the others are kept aside
    /// until theirs arrive. Automerge would otherwise queue a change with
    /// missing dependencies inside the document, beyond this session, and
    /// apply it later without its signature at hand.
    fn in_causal_order(
        &mut self,
        name: &str,
        doc: &mut automerge::AutoCommit,
        accepted: Vec<Change>,
    ) -> Vec<Change> {
        let mut pending = self.out_of_order.remove(name).unwrap_or_default();
        pending.extend(accepted);
        let mut ready: Vec<Change> = Vec::with_capacity(pending.len());
        let mut here: BTreeSet<[u8; 32]> = BTreeSet::new();
        loop {
            let progress = ready.len();
            let mut rest = Vec::new();
            for change in pending {
                let applicable = change
                    .deps()
                    .iter()
                    .all(|d| here.contains(&d.0) || doc.get_change_meta_by_hash(d).is_some());
                if applicable {
                    here.insert(change.hash().0);
                    ready.push(change);
                } else {
                    rest.push(change);
                }
            }
            pending = rest;
            if ready.len() == progress || pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            pending.truncate(MAX_LATE_KEPT_ASIDE);
            self.out_of_order.insert(name.to_string(), pending);
        }
        ready
    }
}
