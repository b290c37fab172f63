//! Amendments: a proposed find/replace on a draft, with its rationale.
//!
//! Accepting one applies it to the draft (through the same diffing edit as
//! `draft edit`); rejecting one keeps it on the record. Either way the
//! proposal stays in the discussion document. A decision counts only if it was
//! made by a facilitator or by the member who created the draft.

use automerge::ObjType;
use automerge::transaction::Transactable;

use super::doc::{self, DocId};
use super::draft::DraftEntry;
use super::views::{AmendmentState, AmendmentView, MemberRef};
use super::{ModelError, Result, Workspace};
use crate::ids::{ObjectId, resolve_prefix};

impl Workspace {
    /// Propose an amendment to a draft.
    pub fn propose_amendment(
        &mut self,
        entry: &DraftEntry,
        find: &str,
        replace: &str,
        rationale: &str,
    ) -> Result<ObjectId> {
        self.writer()?;
        if find.is_empty() {
            return Err(ModelError::Invalid("--find is empty".into()));
        }
        if find == replace {
            return Err(ModelError::Invalid(
                "--find and --replace are the same".into(),
            ));
        }
        let rationale = rationale.trim();
        if rationale.is_empty() {
            return Err(ModelError::Invalid(
                "an amendment needs a rationale (-m)".into(),
            ));
        }
        if !self.draft_text(&entry.id)?.contains(find) {
            return Err(ModelError::Invalid(format!(
                "draft {} does not contain the text to find",
                entry.id.short()
            )));
        }
        let amendments = self.discussion_map(&entry.response, "amendments")?;
        let now = self.now;
        let id = ObjectId::random();
        let doc = self.write(&DocId::Response(entry.response.clone()))?;
        let a = doc.put_object(&amendments, id.as_str(), ObjType::Map)?;
        doc.put(&a, "draft", entry.id.as_str())?;
        doc.put(&a, "find", find)?;
        doc.put(&a, "replace", replace)?;
        doc.put(&a, "rationale", rationale)?;
        doc.put(&a, "at", now)?;
        doc::commit(
            doc,
            format!("propose amendment {id} to draft {}", entry.id),
            now,
        );
        Ok(id)
    }

    /// The amendments of a response, oldest first.
    pub fn amendments(&mut self, response: &ObjectId) -> Result<Vec<AmendmentView>> {
        let drafts = self.draft_entries(response)?;
        let amendments = self.discussion_map(response, "amendments")?;
        let (doc, m) = self.discussion(response)?;
        let mut out = Vec::new();
        for (key, obj, author) in doc::authored_maps(doc, m, &amendments) {
            let get = |k: &str| doc::authored_string(doc, m, &obj, k, &author);
            let (Some(draft), Some(find), Some(replace)) =
                (get("draft"), get("find"), get("replace"))
            else {
                continue;
            };
            let Some(draft_entry) = drafts.iter().find(|d| d.id.as_str() == draft) else {
                continue;
            };
            // The latest decision by someone entitled to decide, under
            // `decision:<nonce>` (`doc::fresh_key`; `decision` in earlier
            // builds).
            let decision = doc::fresh_maps(doc, m, &obj, "decision", |id, decider| {
                let entitled = *decider == draft_entry.author
                    || m.member(decider).is_some_and(|x| x.role.can_facilitate());
                entitled && doc::authored_string(doc, m, id, "state", decider).is_some()
            })
            .pop()
            .and_then(|(id, decider)| {
                Some((
                    decider,
                    doc::authored_string(doc, m, &id, "state", &decider)?,
                ))
            });
            let (state, decided_by) = match decision {
                Some((who, s)) if s == "accepted" => (AmendmentState::Accepted, Some(who)),
                Some((who, s)) if s == "rejected" => (AmendmentState::Rejected, Some(who)),
                _ => (AmendmentState::Proposed, None),
            };
            out.push(AmendmentView {
                id: key,
                draft,
                find,
                replace,
                rationale: get("rationale").unwrap_or_default(),
                author,
                author_name: m.name_of(&author),
                at: doc::authored_int(doc, m, &obj, "at", &author).unwrap_or(0),
                state,
                decided_by: decided_by.map(|member| MemberRef {
                    member,
                    name: m.name_of(&member),
                }),
                seq: doc::op_counter(&obj),
            });
        }
        out.sort_by(|a, b| (a.at, a.seq, &a.id).cmp(&(b.at, b.seq, &b.id)));
        Ok(out)
    }

    /// Find an amendment by id prefix across all responses.
    pub fn resolve_amendment(&mut self, prefix: &str) -> Result<(ObjectId, AmendmentView)> {
        let mut all = Vec::new();
        for response in self.index()? {
            for a in self.amendments(&response.id)? {
                all.push((a.id.clone(), (response.id.clone(), a)));
            }
        }
        Ok(resolve_prefix(prefix, all, "amendment")?)
    }

    /// Accept (apply to the draft) or reject (keep on record) an amendment.
    pub fn decide_amendment(&mut self, prefix: &str, accept: bool) -> Result<AmendmentView> {
        let me = self.writer()?.clone();
        let (response, amendment) = self.resolve_amendment(prefix)?;
        if amendment.state != AmendmentState::Proposed {
            return Err(ModelError::Invalid(format!(
                "amendment {} was already {}",
                crate::ids::short(&amendment.id),
                if amendment.state == AmendmentState::Accepted {
                    "accepted"
                } else {
                    "rejected"
                }
            )));
        }
        let entry = self
            .draft_entries(&response)?
            .into_iter()
            .find(|d| d.id.as_str() == amendment.draft)
            .ok_or_else(|| ModelError::Invalid("the amended draft is missing".into()))?;
        if entry.author != me.id && !me.role.can_facilitate() {
            return Err(ModelError::NotAllowed(format!(
                "only a facilitator or the draft's creator ({}) may decide on amendments",
                self.membership.name_of(&entry.author)
            )));
        }
        if accept {
            let text = self.draft_text(&entry.id)?;
            if !text.contains(&amendment.find) {
                return Err(ModelError::Invalid(format!(
                    "draft {} no longer contains the text this amendment replaces; reject it or propose it anew",
                    entry.id.short()
                )));
            }
            let amended = text.replacen(&amendment.find, &amendment.replace, 1);
            self.edit_draft(&entry, &amended)?;
        }
        let amendments = self.discussion_map(&response, "amendments")?;
        let now = self.now;
        let state = if accept { "accepted" } else { "rejected" };
        let doc = self.write(&DocId::Response(response.clone()))?;
        let a = doc::map(doc, &amendments, &amendment.id)
            .ok_or_else(|| ModelError::Invalid("the amendment is missing".into()))?;
        let d = doc.put_object(&a, doc::fresh_key("decision"), ObjType::Map)?;
        doc.put(&d, "state", state)?;
        doc.put(&d, "at", now)?;
        doc::commit(doc, format!("{state} amendment {}", amendment.id), now);
        let updated = self
            .amendments(&response)?
            .into_iter()
            .find(|a| a.id == amendment.id)
            .ok_or_else(|| ModelError::Invalid("the amendment is missing".into()))?;
        Ok(updated)
    }
}
