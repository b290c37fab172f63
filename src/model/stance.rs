//! Stances: each member's position on a draft, bound to the draft version.
//!
//! Stances live in the discussion document's flat `stances` map. Each time a
//! member takes a stance it goes under a fresh key,
//! `<draft id>:<member key>:<nonce>`, and the member's latest one counts (by
//! operation order, which follows causality). A fresh key replaces nothing,
//! so no other member can block it by writing there first, as they could
//! with one fixed key per member (an overwrite of another member's value is
//! refused by every peer). Only values the member named in the key created
//! count; `<draft id>:<member key>`, written by earlier builds, is still
//! read. A stance records the draft's heads; once the draft changes, the
//! stance shows as stale until the member takes it again.

use std::collections::BTreeMap;

use automerge::ObjType;
use automerge::transaction::Transactable;

use super::doc::{self, DocId};
use super::draft::DraftEntry;
use super::views::{Stance, StanceView};
use super::{ModelError, Result, Workspace};
use crate::ids::ObjectId;
use crate::trust::MemberId;

/// A stance with the draft it is on.
#[derive(Clone, Debug)]
pub struct DraftStance {
    /// The draft.
    pub draft: ObjectId,
    /// The stance.
    pub view: StanceView,
}

/// A fresh key for `member`'s stance on `draft`.
fn stance_key(draft: &ObjectId, member: &MemberId) -> String {
    doc::fresh_key(&format!("{draft}:{member}"))
}

/// The draft and member of a member's own stance key, in the one spelling
/// [`stance_key`] writes (or the earlier `<draft>:<member>`). The parsers
/// would also read an uppercase or padded id as the same member, and a
/// modified client could then count twice.
fn own_stance_key(key: &str) -> Option<(ObjectId, MemberId)> {
    let parts: Vec<&str> = key.split(':').collect();
    let (draft_text, member_text, nonce) = match parts[..] {
        [draft, member] => (draft, member, None),
        [draft, member, nonce] => (draft, member, Some(nonce)),
        _ => return None,
    };
    let (draft, member) = (
        ObjectId::parse(draft_text)?,
        MemberId::from_hex(member_text)?,
    );
    let spelled = draft.as_str() == draft_text
        && member.to_hex() == member_text
        && nonce.is_none_or(doc::is_nonce);
    spelled.then_some((draft, member))
}

/// The stance map `obj`, written by `author`, for `member` (the author
/// themselves, or the member a facilitator recorded it for); `None` without
/// a stance word of the author's.
pub(super) fn read_stance(
    doc: &automerge::AutoCommit,
    m: &crate::trust::Membership,
    obj: &automerge::ObjId,
    author: &MemberId,
    member: MemberId,
) -> Option<StanceView> {
    let stance = doc::authored_string(doc, m, obj, "stance", author)
        .as_deref()
        .and_then(Stance::parse)?;
    Some(StanceView {
        member,
        name: m.name_of(&member),
        stance,
        reason: doc::authored_string(doc, m, obj, "reason", author),
        stale: false,
        version: doc::authored_strings(doc, m, obj, "version", author),
        at: doc::authored_int(doc, m, obj, "at", author).unwrap_or(0),
        late: false,
        recorded_by: (*author != member).then(|| super::views::MemberRef {
            member: *author,
            name: m.name_of(author),
        }),
    })
}

/// The first second after the due date `date` (YYYY-MM-DD) ends in UTC: a
/// stance made on the due date itself is in time.
pub(super) fn end_of_day(date: &str) -> Option<i64> {
    crate::clock::start_of_day(date).map(|start| start + 86_400)
}

impl Workspace {
    /// Take (or change) the acting member's stance on a draft.
    pub fn take_stance(
        &mut self,
        entry: &DraftEntry,
        stance: Stance,
        reason: Option<&str>,
    ) -> Result<()> {
        let me = self.writer()?.id;
        let message = format!("stance {} on draft {}", stance.as_str(), entry.id);
        self.write_stance(entry, stance_key(&entry.id, &me), stance, reason, message)
    }

    /// Write a stance on `entry` under `key` of the discussion's `stances`
    /// (the member's own, or one a facilitator records for them), after the
    /// checks every stance needs: a reason where the stance requires one, and
    /// a response not yet published.
    pub(super) fn write_stance(
        &mut self,
        entry: &DraftEntry,
        key: String,
        stance: Stance,
        reason: Option<&str>,
        message: String,
    ) -> Result<()> {
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        if stance.needs_reason() && reason.is_none() {
            return Err(ModelError::Invalid(format!(
                "a reason is required for {}: add -m REASON",
                stance.as_str()
            )));
        }
        if self.outcome_exists(&entry.response)? {
            return Err(ModelError::Invalid(format!(
                "response {} is published; stances are closed",
                entry.response.short()
            )));
        }
        let version = self.draft_version(&entry.id)?;
        let stances = self.discussion_map(&entry.response, "stances")?;
        let now = self.now;
        let doc = self.write(&DocId::Response(entry.response.clone()))?;
        let s = doc.put_object(&stances, key, ObjType::Map)?;
        doc.put(&s, "stance", stance.as_str())?;
        if let Some(reason) = reason {
            doc.put(&s, "reason", reason)?;
        }
        doc::put_strings(doc, &s, "version", &version)?;
        doc.put(&s, "at", now)?;
        doc::commit(doc, message, now);
        Ok(())
    }

    /// Every stance on every draft of a response.
    pub fn all_stances(&mut self, response: &ObjectId) -> Result<Vec<DraftStance>> {
        let drafts: Vec<ObjectId> = self
            .draft_entries(response)?
            .into_iter()
            .map(|d| d.id)
            .collect();
        let stances = self.discussion_map(response, "stances")?;
        let keys = doc::keys(self.discussion(response)?.0, &stances);
        // Under a fresh key nobody else can have written (the ownership
        // rule refuses it): only the fixed key of earlier builds needs the
        // search through history, which rebuilds every change's metadata.
        let fixed_keys = keys
            .iter()
            .any(|key| own_stance_key(key).is_some() && key.matches(':').count() != 2);
        let history = match fixed_keys {
            true => self.history_of(&DocId::Response(response.clone()))?,
            false => Vec::new(),
        };
        let (doc, m) = self.discussion(response)?;
        // The latest of each member's own stances on each draft: by the
        // counter of the operation that created it, then by key.
        let mut latest: BTreeMap<(ObjectId, MemberId), (u64, String, StanceView)> = BTreeMap::new();
        for key in keys {
            let Some((draft, member)) = own_stance_key(&key) else {
                continue;
            };
            if !drafts.contains(&draft) {
                continue;
            }
            let obj = if key.matches(':').count() == 2 {
                doc::owned_map(doc, m, &stances, &key, &member)
            } else {
                doc::owned_map_or_history(doc, m, &history, &stances, &key, &member)
            };
            let Some(obj) = obj else {
                continue;
            };
            let order = doc::op_counter(&obj);
            let newer = latest
                .get(&(draft.clone(), member))
                .is_none_or(|(counter, seen, _)| (order, &key) > (*counter, seen));
            if !newer {
                continue;
            }
            let Some(view) = read_stance(doc, m, &obj, &member, member) else {
                continue;
            };
            latest.insert((draft, member), (order, key, view));
        }
        let mut found: Vec<(ObjectId, StanceView)> = latest
            .into_iter()
            .map(|((draft, _), (_, _, view))| (draft, view))
            .collect();
        // Stances recorded by a facilitator count for members who have not
        // taken their own.
        let own: Vec<(ObjectId, MemberId)> = found
            .iter()
            .map(|(draft, view)| (draft.clone(), view.member))
            .collect();
        found.extend(self.recorded_stances(response, &drafts, &own)?);
        let deadline = self.entry(response)?.due.as_deref().and_then(end_of_day);
        let mut out = Vec::new();
        for (draft, mut view) in found {
            view.stale = view.version != self.draft_version(&draft)?;
            view.late = deadline.is_some_and(|end| view.at >= end);
            out.push(DraftStance { draft, view });
        }
        out.sort_by(|a, b| {
            (&a.draft, &a.view.name, a.view.member).cmp(&(&b.draft, &b.view.name, b.view.member))
        });
        Ok(out)
    }

    /// The stances on one draft, by member name.
    pub fn stances_on(&mut self, response: &ObjectId, draft: &ObjectId) -> Result<Vec<StanceView>> {
        Ok(self
            .all_stances(response)?
            .into_iter()
            .filter(|s| s.draft == *draft)
            .map(|s| s.view)
            .collect())
    }
}
