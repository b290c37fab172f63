//! Whole documents for a peer that holds nothing of them.
//!
//! A new member, or a device back from a long absence with a document it
//! never had, would otherwise receive every change of that document through
//! Automerge's sync protocol: applied one message at a time, with sync
//! messages regenerated in between, which made a join of a 10,000-comment
//! community take about 6 to 12 s. Instead the holder sends all of the
//! document's changes in one frame (in no required order), each with its
//! signature; the receiver checks every change exactly as if it had arrived
//! alone (signature by its author's device over the document name and
//! hash, the author's standing, the ownership rule, the operation bound),
//! and builds the document by applying them all at once.
//!
//! Why changes and not Automerge's compact document chunk (`save()`): a
//! document chunk is loaded from its operation columns as they are, and
//! Automerge does not check that they are in the order their changes
//! imply. The changes rebuilt from it hash and verify the same, yet the
//! order decides the text of a draft and which of two concurrent values
//! shows: a member could send a newcomer a draft with someone's words
//! rearranged and every signature intact. Applying the signed changes
//! themselves leaves Automerge no such freedom. Change chunks are also
//! never compressed here (that is refused), so nothing inflates before it
//! is checked.
//!
//! A whole document is taken or left as a whole. A bad or missing signature,
//! bytes that are not change chunks, or a history with gaps end the session
//! (exit 4), as a bad change does. A change that is merely not acceptable
//! here (an author this device does not know yet, a removed member's later
//! change, an observer, an overwrite) does not: the document is set aside
//! and the two sides fall back to the change-by-change protocol for it,
//! which holds back exactly those changes.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{AutoCommit, Change, ReadDoc};

use super::SyncError;
use super::chunks::{decode_chunks, guarded};
use super::verdicts::verdicts;
use crate::parallel::in_order;
use crate::trust::signed_change::{ChangeSignature, Standing};
use crate::trust::{Membership, TrustError};

/// A document is sent whole only if its changes and signatures fit in this
/// many bytes (half the 16 MiB frame cap); a larger one goes change by
/// change, in batches.
pub const WHOLE_BYTES: usize = 8 << 20;

/// Bytes a signature adds to a frame: hash, signature and their lengths.
const SIGNATURE_BYTES: usize = 100;

/// Whole documents go together in one frame until it holds this many
/// bytes: the receiver checks the documents of a frame on every core
/// ([`check_all`]), and the sender reads the next frame's while it does.
/// Each frame ends with its cores waiting for its slowest document: 2 MiB
/// (about 14 documents of a 10,000-comment community) made a join 4.5 %
/// faster than 1 MiB, and 4 MiB no faster (`docs/performance.md`).
pub const FRAME_BYTES: usize = 2 << 20;

/// A document sent whole (the body of a `Whole` frame holds several).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WholeDoc {
    /// The document's name.
    pub doc: String,
    /// Every change chunk of the document, one after the other, in no
    /// required order (the receiver checks the set; Automerge applies a
    /// batch in any order).
    pub changes: Vec<u8>,
    /// (change hash, 64-byte signature) for every change in it.
    pub signatures: Vec<([u8; 32], Vec<u8>)>,
}

impl WholeDoc {
    /// Roughly what it adds to a frame.
    pub fn size(&self) -> usize {
        self.doc.len() + self.changes.len() + self.signatures.len() * SIGNATURE_BYTES
    }
}

/// A document that arrived whole and passed every check.
pub struct Verified {
    /// The document, built from its changes.
    pub doc: AutoCommit,
    /// Change hash → signature, for every change in it.
    pub signatures: BTreeMap<[u8; 32], ChangeSignature>,
}

/// What became of a whole document.
pub enum Outcome {
    /// Every change passed.
    Accepted(Box<Verified>),
    /// Some change is not acceptable here: take the document change by
    /// change instead.
    FallBack,
}

/// [`check`] on each of `docs`, in order, on every core: documents are
/// independent, and a frame of many small ones (a join) would otherwise
/// leave a core idle while Automerge applies each.
pub fn check_all(membership: &Membership, docs: Vec<WholeDoc>) -> Vec<Result<Outcome, SyncError>> {
    each_on_every_core(docs, "whole", |d| {
        check(membership, &d.doc, &d.changes, d.signatures)
    })
}

/// `check` on each of `docs` (the documents of `what` frames), in order, on
/// every core; a check that panics refuses its document.
pub fn each_on_every_core<R: Send>(
    docs: Vec<WholeDoc>,
    what: &str,
    check: impl Fn(WholeDoc) -> Result<R, SyncError> + Sync,
) -> Vec<Result<R, SyncError>> {
    let names: Vec<String> = docs.iter().map(|d| d.doc.clone()).collect();
    in_order(docs, 2, check, |i| {
        Err(SyncError::Refused(format!(
            "{} ({what}): checking it failed",
            names[i]
        )))
    })
}

/// Check a whole document `name` sent as `changes` (change chunks) with
/// `signatures` (change hash, 64-byte signature; the first listed for a
/// change counts), and build it.
pub fn check(
    membership: &Membership,
    name: &str,
    changes: &[u8],
    signatures: Vec<([u8; 32], Vec<u8>)>,
) -> Result<Outcome, SyncError> {
    let refused = |why: String| SyncError::Refused(format!("{name} (whole): {why}"));
    let Some(signed) = signed_set(membership, name, "whole", changes, signatures)? else {
        return Ok(Outcome::FallBack);
    };
    let held: BTreeSet<[u8; 32]> = signed.iter().map(|(_, c)| c.hash().0).collect();
    for (_, change) in &signed {
        if let Some(dep) = change.deps().iter().find(|d| !held.contains(&d.0)) {
            return Err(refused(format!(
                "change {} builds on {dep}, which it does not hold",
                change.hash()
            )));
        }
    }
    let signatures = signed.iter().map(|(sig, c)| (c.hash().0, *sig)).collect();
    let changes: Vec<Change> = signed.into_iter().map(|(_, c)| c).collect();
    let mut doc = AutoCommit::new();
    let count = changes.len();
    guarded(|| doc.apply_changes(changes).map_err(|e| e.to_string())).map_err(refused)?;
    let complete = guarded(|| {
        Ok(doc.get_missing_deps(&[]).is_empty() && doc.get_changes_meta(&[]).len() == count)
    })
    .map_err(refused)?;
    if !complete {
        return Err(refused("its history is incomplete".into()));
    }
    Ok(Outcome::Accepted(Box::new(Verified { doc, signatures })))
}

/// The changes sent as `changes` (change chunks) for document `name`, each
/// with its signature from `signatures` (the first listed for a change
/// counts), in the order sent, once every one is checked as if it had
/// arrived alone: signature, author's standing, ownership, operation
/// bound. `None` if some change is merely not acceptable here (an author
/// this device does not know yet, a removed member's later change, an
/// observer, an overwrite): the document then goes change by change, which
/// holds back exactly those. A frame with no change, a change listed twice,
/// bytes that are not change chunks, or a missing or bad signature is the
/// error (`what` names the frame in it).
pub fn signed_set(
    membership: &Membership,
    name: &str,
    what: &str,
    changes: &[u8],
    signatures: Vec<([u8; 32], Vec<u8>)>,
) -> Result<Option<Vec<(ChangeSignature, Change)>>, SyncError> {
    let refused = |why: String| SyncError::Refused(format!("{name} ({what}): {why}"));
    let changes = decode_chunks(changes).map_err(refused)?;
    if changes.is_empty() {
        return Err(refused("it holds no change".into()));
    }
    let hashes: Vec<[u8; 32]> = changes.iter().map(|c| c.hash().0).collect();
    let held: BTreeSet<[u8; 32]> = hashes.iter().copied().collect();
    if held.len() != hashes.len() {
        return Err(refused("it lists a change twice".into()));
    }
    let mut table: BTreeMap<[u8; 32], ChangeSignature> = BTreeMap::new();
    for (hash, sig) in signatures {
        if !held.contains(&hash) {
            continue;
        }
        let sig: [u8; 64] = sig
            .try_into()
            .map_err(|_| refused("a signature is not 64 bytes".into()))?;
        table.entry(hash).or_insert(ChangeSignature(sig));
    }
    let mut signed = Vec::with_capacity(changes.len());
    for hash in &hashes {
        let sig = table.get(hash).copied().ok_or_else(|| {
            refused(format!(
                "change {} is unsigned",
                crate::ids::short(&hex::encode(hash))
            ))
        })?;
        signed.push(sig);
    }
    let mut fall_back = false;
    for verdict in verdicts(membership, name, &changes, &signed) {
        match verdict {
            Ok(Standing::Current) => {}
            Ok(Standing::AfterRemoval) | Err(TrustError::ChangeRefused { .. }) => fall_back = true,
            Err(e) => return Err(refused(e.to_string())),
        }
    }
    if fall_back {
        return Ok(None);
    }
    Ok(Some(signed.into_iter().zip(changes).collect()))
}

/// `doc` ready to send whole: every change in causal order with its
/// signature, or `None` if it has none, a signature is missing, or it is
/// over [`WHOLE_BYTES`].
pub fn prepare(
    name: &str,
    doc: &mut AutoCommit,
    signature: impl Fn(&[u8; 32]) -> Option<ChangeSignature>,
) -> Option<WholeDoc> {
    pack(name, &doc.get_changes(&[]), signature)
}

/// `changes` of document `name` packed for a `Whole` or `Delta` frame,
/// each with its signature: `None` if there are none, a signature is
/// missing, or they are over [`WHOLE_BYTES`].
pub fn pack(
    name: &str,
    changes: &[Change],
    signature: impl Fn(&[u8; 32]) -> Option<ChangeSignature>,
) -> Option<WholeDoc> {
    if changes.is_empty() {
        return None;
    }
    let mut signatures = Vec::with_capacity(changes.len());
    for change in changes {
        let hash = change.hash().0;
        signatures.push((hash, signature(&hash)?.0.to_vec()));
    }
    let size: usize = changes.iter().map(|c| c.raw_bytes().len()).sum();
    if size + signatures.len() * SIGNATURE_BYTES > WHOLE_BYTES {
        return None;
    }
    let mut bytes = Vec::with_capacity(size);
    for change in changes {
        bytes.extend_from_slice(change.raw_bytes());
    }
    Some(WholeDoc {
        doc: name.to_string(),
        changes: bytes,
        signatures,
    })
}
