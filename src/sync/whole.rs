//! Whole documents for a peer that holds nothing of them.
//!
//! A new member, or a device back from a long absence with a document it
//! never had, would otherwise receive every change of that document one by
//! one: Automerge applies them one message at a time and regenerates its
//! sync messages in between, which made a join of a 10,000-comment
//! community take about 12 s. Instead the holder sends the document as
//! Automerge saves it (one compressed document chunk, as the store's
//! snapshot holds it) with the signature of every change in it, and the
//! receiver loads it on scratch data and checks every change exactly as if
//! it had arrived alone: a signature by its author's device over the
//! document name and hash, the author's standing, and the ownership rule.
//!
//! A whole document is taken or left as a whole. A bad or missing signature,
//! or bytes that are not one loadable document with its complete history,
//! end the session (exit 4), as a bad change does. A change that is merely
//! not acceptable here (an author this device does not know yet, a removed
//! member's later change, an observer, an overwrite) does not: the whole
//! document is set aside and the two sides fall back to the change-by-change
//! protocol for it, which holds back exactly those changes.

use std::collections::BTreeMap;

use automerge::{AutoCommit, Change, ReadDoc};

use super::SyncError;
use super::chunks::{guarded, split};
use super::verdicts::{DraftChange, draft_verdicts, verdicts};
use crate::trust::signed_change::{ChangeSignature, Standing};
use crate::trust::{Membership, TrustError};

/// A whole document is sent only if its save and signatures fit in this
/// many bytes (far below the 16 MiB frame cap); a larger one goes change by
/// change, in batches.
pub const WHOLE_BYTES: usize = 8 << 20;

/// A document ready to send whole.
pub struct WholeDoc {
    /// One compressed Automerge document chunk.
    pub save: Vec<u8>,
    /// (change hash, 64-byte signature) for every change in it.
    pub signatures: Vec<([u8; 32], Vec<u8>)>,
}

impl WholeDoc {
    /// `save` with the signatures of a snapshot's table (hash ‖ signature
    /// entries), if it fits in [`WHOLE_BYTES`].
    pub fn from_table(save: Vec<u8>, table: Vec<[u8; 96]>) -> Option<Self> {
        let signatures = table
            .iter()
            .map(|entry| {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&entry[..32]);
                (hash, entry[32..].to_vec())
            })
            .collect();
        WholeDoc { save, signatures }.fits()
    }

    fn fits(self) -> Option<Self> {
        (self.save.len() + self.signatures.len() * 100 <= WHOLE_BYTES).then_some(self)
    }
}

/// A document that arrived whole and passed every check.
pub struct Verified {
    /// The document.
    pub doc: AutoCommit,
    /// The bytes it was loaded from: one compressed document chunk, fit to
    /// be kept as the store's snapshot.
    pub save: Vec<u8>,
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

/// Load and check a whole document `name` sent as `save` with
/// `signatures` (change hash, 64-byte signature; the first listed for a
/// change counts).
pub fn check(
    membership: &Membership,
    name: &str,
    save: Vec<u8>,
    signatures: Vec<([u8; 32], Vec<u8>)>,
) -> Result<Outcome, SyncError> {
    let refused = |why: String| SyncError::Refused(format!("{name} (whole): {why}"));
    let chunks = split(&save).map_err(refused)?;
    if !matches!(chunks[..], [(0, _)]) {
        return Err(refused("it is not one document chunk".into()));
    }
    let mut doc =
        guarded(|| AutoCommit::load(&save).map_err(|e| e.to_string())).map_err(refused)?;
    if !doc.get_missing_deps(&[]).is_empty() {
        return Err(refused("it holds changes whose history is missing".into()));
    }
    let mut table: BTreeMap<[u8; 32], ChangeSignature> = BTreeMap::new();
    for (hash, sig) in signatures {
        let sig: [u8; 64] = sig
            .try_into()
            .map_err(|_| refused("a signature is not 64 bytes".into()))?;
        table.entry(hash).or_insert(ChangeSignature(sig));
    }
    let signature = |hash: &[u8; 32]| {
        table.get(hash).copied().ok_or_else(|| {
            refused(format!(
                "change {} is unsigned",
                crate::ids::short(&hex::encode(hash))
            ))
        })
    };
    let mut hashes = Vec::new();
    let verdicts = if name.starts_with("draft-") {
        // Drafts are exempt from the ownership rule: their changes' metadata
        // is all a verdict needs, and Automerge need not rebuild them.
        let mut changes = Vec::new();
        for meta in doc.get_changes_meta(&[]) {
            let hash = meta.hash.0;
            changes.push(DraftChange {
                actor: meta.actor.to_bytes().to_vec(),
                hash,
                ops: meta.max_op.saturating_sub(meta.start_op) + 1,
                signature: signature(&hash)?,
            });
            hashes.push(hash);
        }
        draft_verdicts(membership, name, &changes)
    } else {
        let changes: Vec<Change> = guarded(|| Ok(doc.get_changes(&[]))).map_err(refused)?;
        let mut signed = Vec::with_capacity(changes.len());
        for change in &changes {
            let hash = change.hash().0;
            signed.push(signature(&hash)?);
            hashes.push(hash);
        }
        verdicts(membership, name, &changes, &signed)
    };
    let mut fall_back = false;
    for verdict in verdicts {
        match verdict {
            Ok(Standing::Current) => {}
            Ok(Standing::AfterRemoval) | Err(TrustError::ChangeRefused { .. }) => fall_back = true,
            Err(e) => return Err(refused(e.to_string())),
        }
    }
    if fall_back {
        return Ok(Outcome::FallBack);
    }
    let signatures = hashes
        .into_iter()
        .filter_map(|hash| Some((hash, table.get(&hash).copied()?)))
        .collect();
    Ok(Outcome::Accepted(Box::new(Verified {
        doc,
        save,
        signatures,
    })))
}

/// `doc` ready to send whole: its save (without changes whose history is
/// missing) and every change's signature, or `None` if a signature is
/// missing or it is over [`WHOLE_BYTES`].
pub fn prepare(
    doc: &mut AutoCommit,
    signature: impl Fn(&[u8; 32]) -> Option<ChangeSignature>,
) -> Option<WholeDoc> {
    let mut signatures = Vec::new();
    for meta in doc.get_changes_meta(&[]) {
        signatures.push((meta.hash.0, signature(&meta.hash.0)?.0.to_vec()));
    }
    if signatures.len() * 100 > WHOLE_BYTES {
        return None;
    }
    let save = doc.save_with_options(automerge::SaveOptions {
        deflate: true,
        retain_orphans: false,
    });
    WholeDoc { save, signatures }.fits()
}
