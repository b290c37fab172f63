//! Receipts: which version of each draft a member's device holds.
//!
//! A facilitator reminding the members who have not been heard should not
//! nag someone in the field whose device has not synced since the current
//! draft was written: they *could not yet have seen* it. Only the record
//! can tell the two apart the same way on every device, so when a sync or a
//! bundle brings a new version of a draft, the member's device writes a
//! receipt: under a fresh root key `seen:<draft>:<member>:<nonce>` of the
//! response's discussion document, a map with the draft's `version` (its
//! heads) and `at`; the latest of the member's own counts. A fresh key
//! never replaces anything, so nobody can block a member's receipts by
//! writing under their key first (the ownership rule would refuse the
//! member's overwrite), and the draft document is left alone (a change there
//! would make every stance stale). Only the member's own devices can author a
//! receipt that counts. Receipts are visible to every member; docs/guide.md
//! says so.

use std::collections::btree_map::Entry;

use automerge::ObjType;
use automerge::transaction::Transactable;

use super::doc::{self, DocId};
use super::draft::DraftEntry;
use super::stance::DraftStance;
use super::{Result, Workspace};
use crate::ids::ObjectId;
use crate::trust::MemberId;

/// The start of the root keys of `member`'s receipts for `draft`.
fn receipt_prefix(draft: &ObjectId, member: &MemberId) -> String {
    format!("seen:{draft}:{member}:")
}

impl Workspace {
    /// Record that this device holds the current version of `entry`'s
    /// draft. Returns false (and writes nothing) if the acting member's
    /// receipt or stance already names that version.
    pub fn acknowledge(&mut self, entry: &DraftEntry) -> Result<bool> {
        let stances = self.all_stances(&entry.response)?;
        self.acknowledge_among(entry, &stances)
    }

    /// [`Workspace::acknowledge`] each of `entries`, reading each
    /// response's stances once (a join acknowledges every draft). Returns
    /// how many receipts were written.
    pub fn acknowledge_all(&mut self, entries: &[DraftEntry]) -> Result<usize> {
        let mut stances: std::collections::BTreeMap<ObjectId, Vec<DraftStance>> =
            Default::default();
        let mut written = 0;
        for entry in entries {
            // A receipt changes no stance: those read stay current.
            let among = match stances.entry(entry.response.clone()) {
                Entry::Occupied(read) => read.into_mut(),
                Entry::Vacant(unread) => unread.insert(self.all_stances(&entry.response)?),
            };
            written += usize::from(self.acknowledge_among(entry, among)?);
        }
        Ok(written)
    }

    /// [`Workspace::acknowledge`], given the response's stances.
    fn acknowledge_among(&mut self, entry: &DraftEntry, stances: &[DraftStance]) -> Result<bool> {
        let me = self.writer()?.id;
        let version = self.draft_version(&entry.id)?;
        if version.is_empty() || self.seen_version(entry, &me, stances)? == Some(version.clone()) {
            return Ok(false);
        }
        let now = self.now;
        let doc = self.write(&DocId::Response(entry.response.clone()))?;
        let key = format!("{}{}", receipt_prefix(&entry.id, &me), ObjectId::random());
        let receipt = doc.put_object(automerge::ROOT, key, ObjType::Map)?;
        doc::put_strings(doc, &receipt, "version", &version)?;
        doc.put(&receipt, "at", now)?;
        doc::commit(doc, format!("seen draft {}", entry.id), now);
        Ok(true)
    }

    /// The latest version of `entry`'s draft that `member` is known to hold:
    /// from their receipt, else from their stance on it (among `stances`,
    /// the response's [`Workspace::all_stances`]).
    fn seen_version(
        &mut self,
        entry: &DraftEntry,
        member: &MemberId,
        stances: &[DraftStance],
    ) -> Result<Option<Vec<String>>> {
        let stance = stances
            .iter()
            .find(|s| s.draft == entry.id && s.view.member == *member)
            .map(|s| s.view.version.clone());
        let (doc, m) = self.discussion(&entry.response)?;
        let prefix = receipt_prefix(&entry.id, member);
        let latest = doc::keys(doc, &automerge::ROOT)
            .into_iter()
            .filter(|key| key.starts_with(&prefix))
            .filter_map(|key| doc::owned_map(doc, m, &automerge::ROOT, &key, member))
            .max_by_key(|obj| {
                let at = doc::authored_int(doc, m, obj, "at", member).unwrap_or(0);
                (at, doc::op_counter(obj))
            });
        let receipt = latest.map(|obj| doc::authored_strings(doc, m, &obj, "version", member));
        Ok(receipt.or(stance))
    }

    /// Whether `member` could have seen the current version of every draft
    /// of `response`: they made it (its one head is their change), or their
    /// receipt (or stance) names that version or a later one this device
    /// does not hold yet. With no drafts, yes.
    pub fn has_seen_drafts(&mut self, response: &ObjectId, member: &MemberId) -> Result<bool> {
        let stances = self.all_stances(response)?;
        self.has_seen_drafts_among(response, member, &stances)
    }

    /// [`Workspace::has_seen_drafts`], given the response's stances.
    pub(super) fn has_seen_drafts_among(
        &mut self,
        response: &ObjectId,
        member: &MemberId,
        stances: &[DraftStance],
    ) -> Result<bool> {
        for entry in self.draft_entries(response)? {
            let current = self.draft_version(&entry.id)?;
            if let [head] = &current[..]
                && self.draft_change_author(&entry.id, head)? == Some(Some(*member))
            {
                continue;
            }
            let Some(seen) = self.seen_version(&entry, member, stances)? else {
                return Ok(false);
            };
            if seen != current && !self.names_unknown_change(&entry.id, &seen)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Does `version` name a change of `draft` that this device lacks (so
    /// the one who recorded it holds a later version than ours)?
    fn names_unknown_change(&mut self, draft: &ObjectId, version: &[String]) -> Result<bool> {
        for hex in version {
            if self.draft_change_author(draft, hex)?.is_none() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
