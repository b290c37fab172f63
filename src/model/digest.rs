//! A draft's digest: what the views read from a draft document, without the
//! document.
//!
//! A draft edited hundreds of times has a long history, and rebuilding it
//! (Automerge's load) is most of what `show` and `tally` cost on a large
//! community. What they read from it is small: the current text, the
//! version (heads), who edited it, and which changes it holds. The digest is
//! that, computed from a loaded and verified document; the store keeps one
//! beside each draft and hands it back only while the draft's files still
//! have exactly those heads and the devices that made its changes stand as
//! they did (`store::digest`).
//! Any write loads the document itself, which then takes precedence.

use automerge::{AutoCommit, ReadDoc};
use serde::{Deserialize, Serialize};

use super::doc;
use super::workspace::heads_hex;
use crate::trust::signed_change::device_of_actor;
use crate::trust::{MemberId, Membership};

/// What the views need of one draft document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftDigest {
    /// The document's heads, hex, sorted (the draft's version).
    pub heads: Vec<String>,
    /// The current text.
    pub text: String,
    /// Members who changed the draft, in order of their first change.
    pub authors: Vec<MemberId>,
    /// Every change the document holds, sorted by hash, with its author
    /// (`None` for a device the membership did not know).
    pub changes: Vec<([u8; 32], Option<MemberId>)>,
    /// The response the document names (written when the draft was
    /// created; co-written like the rest, so only a place to look first:
    /// `Workspace::listed_where_named`).
    pub response: Option<String>,
}

impl DraftDigest {
    /// The digest of `doc`, a loaded and verified draft document; `None`
    /// if it has no text.
    pub fn of(doc: &mut AutoCommit, membership: &Membership) -> Option<Self> {
        let text_obj = doc::map_text(doc)?;
        let text = doc.text(&text_obj).ok()?;
        let author_of = |actor: &[u8]| {
            device_of_actor(actor)
                .and_then(|d| membership.owner_of(&d))
                .map(|m| m.id)
        };
        let metas = doc.get_changes_meta(&[]);
        let mut by_time: Vec<(i64, MemberId)> = metas
            .iter()
            .filter_map(|c| Some((c.timestamp, author_of(c.actor.to_bytes())?)))
            .collect();
        by_time.sort();
        let mut authors: Vec<MemberId> = Vec::new();
        for (_, member) in by_time {
            if !authors.contains(&member) {
                authors.push(member);
            }
        }
        let mut changes: Vec<([u8; 32], Option<MemberId>)> = metas
            .iter()
            .map(|c| (c.hash.0, author_of(c.actor.to_bytes())))
            .collect();
        changes.sort();
        Some(DraftDigest {
            heads: heads_hex(doc),
            text,
            authors,
            changes,
            response: doc::string(doc, &automerge::ROOT, "response"),
        })
    }

    /// Does the draft hold the change with this hex hash?
    pub fn holds(&self, hash_hex: &str) -> bool {
        self.author_of(hash_hex).is_some()
    }

    /// The change with this hex hash: `Some(author)` if held (the author
    /// itself `None` if unknown), `None` if not held.
    pub fn author_of(&self, hash_hex: &str) -> Option<Option<MemberId>> {
        let hash: [u8; 32] = hex::decode(hash_hex).ok()?.try_into().ok()?;
        let i = self.changes.binary_search_by(|(h, _)| h.cmp(&hash)).ok()?;
        Some(self.changes[i].1)
    }
}
