//! Members without a device: a facilitator records a comment or a stance on
//! their behalf, and the member confirms or corrects it later from a device
//! of their own.
//!
//! The record never pretends: a comment recorded on someone's behalf is the
//! facilitator's object with an `on_behalf_of` field, and a recorded stance
//! sits under its own fresh key,
//! `<draft>:<member>:by:<facilitator>:<nonce>`, apart from the member's own
//! `<draft>:<member>:<nonce>`. Views show the member as the speaker and the
//! facilitator as the one who recorded it, everywhere (`show`,
//! `tally`, `inbox`, the exports). The member's own stance always replaces a
//! recorded one; on a comment, the member adds a confirmation (perhaps with
//! a `correction`) under a fresh key of its `confirmations` map, which only
//! their devices can author and nobody can block by writing there first.

use automerge::ObjType;
use automerge::transaction::Transactable;

use super::doc::{self, DocId};
use super::draft::DraftEntry;
use super::views::{Stance, StanceView};
use super::{ModelError, Result, Workspace};
use crate::ids::ObjectId;
use crate::trust::MemberId;

/// The key of a stance `facilitator` recorded for `member` on `draft`.
fn recorded_key(draft: &ObjectId, member: &MemberId, facilitator: &MemberId) -> String {
    format!("{draft}:{member}:by:{facilitator}")
}

/// Does `key` spell the recorded key of (draft, member, facilitator), plain
/// (earlier builds) or fresh (`doc::fresh_key`)?
fn is_recorded_key(key: &str, draft: &ObjectId, member: &MemberId, facilitator: &MemberId) -> bool {
    doc::is_fresh_key_of(key, &recorded_key(draft, member, facilitator))
}

impl Workspace {
    /// Check that a facilitator may speak for `member`: a current member
    /// with write rights, other than the facilitator.
    pub(crate) fn represented(&self, member: &MemberId) -> Result<()> {
        let me = self.writer()?.id;
        let found = self
            .membership
            .member(member)
            .ok_or_else(|| ModelError::Invalid(format!("{} is not a member", member.short())))?;
        if found.removed || !found.role.can_write() {
            return Err(ModelError::NotAllowed(format!(
                "{} ({}) may not write here",
                found.name,
                found.role.as_str()
            )));
        }
        if found.id == me {
            return Err(ModelError::Invalid(
                "you speak for yourself: leave out --on-behalf-of".into(),
            ));
        }
        Ok(())
    }

    /// Record `member`'s stance on `entry` as a facilitator.
    pub fn take_stance_for(
        &mut self,
        entry: &DraftEntry,
        stance: Stance,
        reason: Option<&str>,
        member: &MemberId,
    ) -> Result<()> {
        let me = self.facilitator("record a stance on someone's behalf")?.id;
        self.represented(member)?;
        let message = format!(
            "stance {} on draft {} for {}",
            stance.as_str(),
            entry.id,
            member.short()
        );
        // A fresh key: nobody can block the record by writing there first.
        let key = doc::fresh_key(&recorded_key(&entry.id, member, &me));
        self.write_stance(entry, key, stance, reason, message)
    }

    /// The stances facilitators recorded on `response`'s drafts (`drafts`),
    /// for members who have not taken their own (`own`: draft, member); the
    /// latest record per draft and member.
    pub(super) fn recorded_stances(
        &mut self,
        response: &ObjectId,
        drafts: &[ObjectId],
        own: &[(ObjectId, MemberId)],
    ) -> Result<Vec<(ObjectId, StanceView)>> {
        let stances = self.discussion_map(response, "stances")?;
        let (doc, m) = self.discussion(response)?;
        let mut found: Vec<((u64, String), ObjectId, StanceView)> = Vec::new();
        for key in doc::keys(doc, &stances) {
            let parts: Vec<&str> = key.split(':').collect();
            let ([draft, member, "by", facilitator] | [draft, member, "by", facilitator, _]) =
                parts[..]
            else {
                continue;
            };
            let (Some(draft), Some(member), Some(facilitator)) = (
                ObjectId::parse(draft),
                MemberId::from_hex(member),
                MemberId::from_hex(facilitator),
            ) else {
                continue;
            };
            // The rules of `take_stance_for`, again on reading: a modified
            // client could record anything.
            if !is_recorded_key(&key, &draft, &member, &facilitator)
                || !drafts.contains(&draft)
                || own.contains(&(draft.clone(), member))
                || member == facilitator
                || !m
                    .member(&facilitator)
                    .is_some_and(|f| f.role.can_facilitate())
                || !m
                    .member(&member)
                    .is_some_and(|x| !x.removed && x.role.can_write())
            {
                continue;
            }
            let Some(obj) = doc::owned_map(doc, m, &stances, &key, &facilitator) else {
                continue;
            };
            // `member != facilitator` (checked above): shown as recorded.
            let Some(view) = super::stance::read_stance(doc, m, &obj, &facilitator, member) else {
                continue;
            };
            // The latest record per draft and member, by the operation that
            // made it (which follows causality), then by key.
            let order = (doc::op_counter(&obj), key.clone());
            match found
                .iter_mut()
                .find(|(_, d, v)| *d == draft && v.member == member)
            {
                Some(earlier) if earlier.0 <= order => *earlier = (order, draft, view),
                Some(_) => {}
                None => found.push((order, draft, view)),
            }
        }
        Ok(found
            .into_iter()
            .map(|(_, draft, view)| (draft, view))
            .collect())
    }

    /// Confirm, and perhaps correct, a comment a facilitator recorded on
    /// the acting member's behalf.
    pub fn confirm_comment(
        &mut self,
        response: &ObjectId,
        thread: &ObjectId,
        comment: &ObjectId,
        correction: Option<&str>,
    ) -> Result<()> {
        let me = self.writer()?.id;
        let view = self
            .threads(response)?
            .into_iter()
            .find(|t| t.id == thread.as_str())
            .and_then(|t| t.comments.into_iter().find(|c| c.id == comment.as_str()))
            .ok_or_else(|| ModelError::Invalid(format!("no comment {}", comment.short())))?;
        if view.recorded_by.is_none() || view.author != me {
            return Err(ModelError::NotAllowed(format!(
                "comment {} was not recorded on your behalf",
                comment.short()
            )));
        }
        let correction = correction.map(str::trim).filter(|c| !c.is_empty());
        let threads = self.discussion_map(response, "threads")?;
        let now = self.now;
        let doc = self.write(&DocId::Response(response.clone()))?;
        let confirmations = doc::map(doc, &threads, thread.as_str())
            .and_then(|t| doc::map(doc, &t, "comments"))
            .and_then(|c| doc::map(doc, &c, comment.as_str()))
            .and_then(|c| doc::map(doc, &c, "confirmations"))
            .ok_or_else(|| ModelError::Invalid(format!("no comment {}", comment.short())))?;
        let entry = doc.put_object(&confirmations, ObjectId::random().as_str(), ObjType::Map)?;
        doc.put(&entry, "at", now)?;
        if let Some(text) = correction {
            doc.put(&entry, "correction", text)?;
        }
        let what = if correction.is_some() {
            "correct"
        } else {
            "confirm"
        };
        doc::commit(doc, format!("{what} comment {comment}"), now);
        Ok(())
    }
}
