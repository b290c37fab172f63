//! Drafts: co-written text that a response may adopt.
//!
//! Each draft has its own document whose `body` is Automerge Text. An edit
//! replaces the whole text through `update_text`, which diffs old and new and
//! applies only the difference, so concurrent edits by different members
//! merge instead of overwriting each other. The draft's authors are the
//! members whose devices changed it, read from the change history itself.

use std::collections::BTreeSet;

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc};

use super::doc::{self, DocId};
use super::views::{DraftView, MemberRef, StanceView};
use super::workspace::heads_hex;
use super::{ModelError, Result, Workspace};
use crate::ids::{ObjectId, resolve_prefix};
use crate::trust::MemberId;
use crate::trust::signed_change::device_of_actor;

/// A draft as listed in its response's discussion document.
#[derive(Clone, Debug)]
pub struct DraftEntry {
    /// Draft id.
    pub id: ObjectId,
    /// The response it belongs to.
    pub response: ObjectId,
    /// Title.
    pub title: String,
    /// Who created it.
    pub author: MemberId,
    /// When.
    pub at: i64,
    /// Causal order within the same second.
    pub seq: u64,
}

impl Workspace {
    /// Start a draft on a response.
    pub fn new_draft(&mut self, response: &ObjectId, title: &str, body: &str) -> Result<ObjectId> {
        self.writer()?;
        let title = title.trim().to_string();
        if title.is_empty() {
            return Err(ModelError::Invalid("a draft needs a title".into()));
        }
        if self.outcome_exists(response)? {
            return Err(ModelError::Invalid(format!(
                "response {} is already published",
                response.short()
            )));
        }
        let drafts = self.discussion_map(response, "drafts")?;
        let now = self.now;
        let id = ObjectId::random();

        let draft = self.create(&DocId::Draft(id.clone()))?;
        draft.put(ROOT, "response", response.as_str())?;
        draft.put(ROOT, "title", title.as_str())?;
        let text = draft.put_object(ROOT, "body", ObjType::Text)?;
        draft.splice_text(&text, 0, 0, body)?;
        doc::commit(draft, format!("create draft {id} '{title}'"), now);

        let discussion = self.write(&DocId::Response(response.clone()))?;
        let entry = discussion.put_object(&drafts, id.as_str(), ObjType::Map)?;
        discussion.put(&entry, "title", title.as_str())?;
        discussion.put(&entry, "at", now)?;
        doc::commit(discussion, format!("list draft {id} '{title}'"), now);
        Ok(id)
    }

    /// Replace a draft's text through a diff; false if nothing changed.
    pub fn edit_draft(&mut self, entry: &DraftEntry, body: &str) -> Result<bool> {
        self.writer()?;
        if self.outcome_exists(&entry.response)? {
            return Err(ModelError::Invalid(format!(
                "response {} is published; its drafts are frozen",
                entry.response.short()
            )));
        }
        if self.draft_text(&entry.id)? == body {
            return Ok(false);
        }
        let now = self.now;
        let doc = self.write(&DocId::Draft(entry.id.clone()))?;
        let text = doc::map_text(doc).ok_or_else(|| {
            ModelError::Invalid(format!("draft {} has no text", entry.id.short()))
        })?;
        doc.update_text(&text, body)?;
        doc::commit(doc, format!("edit draft {}", entry.id), now);
        Ok(true)
    }

    /// The drafts of a response whose document is here, oldest first.
    pub fn draft_entries(&mut self, response: &ObjectId) -> Result<Vec<DraftEntry>> {
        let drafts = self.discussion_map(response, "drafts")?;
        let (doc, m) = self.discussion(response)?;
        let mut out: Vec<DraftEntry> = doc::authored_maps(doc, m, &drafts)
            .into_iter()
            .filter_map(|(key, obj, author)| {
                Some(DraftEntry {
                    id: ObjectId::parse(&key)?,
                    response: response.clone(),
                    title: doc::authored_string(doc, m, &obj, "title", &author)?,
                    author,
                    at: doc::authored_int(doc, m, &obj, "at", &author).unwrap_or(0),
                    seq: doc::op_counter(&obj),
                })
            })
            .collect();
        out.sort_by(|a, b| (a.at, a.seq, &a.id).cmp(&(b.at, b.seq, &b.id)));
        // A draft whose document has not arrived (a sync cut short, or its
        // creation dropped with a removed member's late changes) is not
        // listed.
        let mut present = Vec::with_capacity(out.len());
        for entry in out {
            if self.has_doc(&DocId::Draft(entry.id.clone()))? {
                present.push(entry);
            }
        }
        Ok(present)
    }

    /// Find a draft by id prefix across all responses.
    pub fn resolve_draft(&mut self, prefix: &str) -> Result<DraftEntry> {
        // A whole id is looked up first where the draft's document says it
        // is listed: one discussion read instead of every one.
        if prefix.len() == ObjectId::LEN
            && let Some(id) = ObjectId::parse(prefix)
            && let Some(entry) = self.listed_where_named(&id)
        {
            return Ok(entry);
        }
        let mut all = Vec::new();
        for response in self.index()? {
            for d in self.draft_entries(&response.id)? {
                all.push((d.id.to_string(), d));
            }
        }
        Ok(resolve_prefix(prefix, all, "draft")?)
    }

    /// A draft's current text.
    pub fn draft_text(&mut self, draft: &ObjectId) -> Result<String> {
        if let Some(digest) = self.digest(draft) {
            return Ok(digest.text.clone());
        }
        let doc = self.read(&DocId::Draft(draft.clone()))?;
        let text = doc::map_text(doc)
            .ok_or_else(|| ModelError::Invalid(format!("draft {} has no text", draft.short())))?;
        Ok(doc.text(&text)?)
    }

    /// The entry of `draft` in the discussion of the response its document
    /// names, if that discussion lists it. The name is written when the
    /// draft is created, but drafts are co-written and any member can
    /// rewrite it: only the discussion's listing is trusted. A command
    /// lists a draft under the response it was created for alone; a draft
    /// that a crafted change also listed under a second response is found
    /// under the one its document names (before, under the oldest listing
    /// response), which any member can choose.
    pub fn listed_where_named(&mut self, draft: &ObjectId) -> Option<DraftEntry> {
        let named = self.draft_named_response(draft).ok().flatten()?;
        // Only a response the community lists, as when searching them all.
        if !self.index().ok()?.iter().any(|entry| entry.id == named) {
            return None;
        }
        self.draft_entries(&named)
            .ok()?
            .into_iter()
            .find(|entry| &entry.id == draft)
    }

    /// The response a draft's document names, written when it was created
    /// (a hint: any member can rewrite it; the discussions list drafts).
    /// Read from its digest when it has one, so that the draft is not
    /// loaded for it.
    pub fn draft_named_response(&mut self, draft: &ObjectId) -> Result<Option<ObjectId>> {
        let named = match self.digest(draft) {
            Some(digest) => digest.response.clone(),
            None => doc::string(self.read(&DocId::Draft(draft.clone()))?, &ROOT, "response"),
        };
        Ok(named.as_deref().and_then(ObjectId::parse))
    }

    /// A draft's current version: its document heads, hex, sorted.
    pub fn draft_version(&mut self, draft: &ObjectId) -> Result<Vec<String>> {
        if let Some(digest) = self.digest(draft) {
            return Ok(digest.heads.clone());
        }
        let id = DocId::Draft(draft.clone());
        self.read(&id)?;
        Ok(self
            .docs
            .get_mut(&id)
            .map(|o| heads_hex(&mut o.doc))
            .unwrap_or_default())
    }

    /// The author of the change `hash` (hex) of a draft: `Some(author)` if
    /// the draft holds it (`None` inside for a device nobody owns), `None`
    /// if it does not.
    pub fn draft_change_author(
        &mut self,
        draft: &ObjectId,
        hash: &str,
    ) -> Result<Option<Option<MemberId>>> {
        if let Some(digest) = self.digest(draft) {
            return Ok(digest.author_of(hash));
        }
        let id = DocId::Draft(draft.clone());
        self.read(&id)?;
        let Some(open) = self.docs.get_mut(&id) else {
            return Ok(None);
        };
        let Ok(hash) = hash.parse::<automerge::ChangeHash>() else {
            return Ok(None);
        };
        Ok(open.doc.get_change_meta_by_hash(&hash).map(|c| {
            device_of_actor(c.actor.to_bytes())
                .and_then(|d| self.membership.owner_of(&d))
                .map(|m| m.id)
        }))
    }

    /// Members who changed a draft, in order of their first change.
    pub fn draft_authors(&mut self, draft: &ObjectId) -> Result<Vec<MemberRef>> {
        if let Some(digest) = self.digest(draft) {
            let authors = digest.authors.clone();
            return Ok(authors
                .into_iter()
                .map(|m| MemberRef {
                    member: m,
                    name: self.membership.name_of(&m),
                })
                .collect());
        }
        let id = DocId::Draft(draft.clone());
        self.read(&id)?;
        let Some(open) = self.docs.get_mut(&id) else {
            return Ok(Vec::new());
        };
        let mut changes: Vec<(i64, MemberId)> = open
            .doc
            .get_changes_meta(&[])
            .iter()
            .filter_map(|c| {
                let device = device_of_actor(c.actor.to_bytes())?;
                Some((c.timestamp, self.membership.owner_of(&device)?.id))
            })
            .collect();
        changes.sort();
        let mut seen = BTreeSet::new();
        Ok(changes
            .into_iter()
            .filter(|(_, m)| seen.insert(*m))
            .map(|(_, m)| MemberRef {
                member: m,
                name: self.membership.name_of(&m),
            })
            .collect())
    }

    /// Everything about one draft, with the stances taken on it.
    pub fn draft_view(&mut self, entry: &DraftEntry) -> Result<DraftView> {
        let stances = self.stances_on(&entry.response, &entry.id)?;
        self.draft_view_with(entry, stances)
    }

    /// One draft's view with `stances`, the stances on it already read
    /// ([`Workspace::stances_on`]).
    pub(super) fn draft_view_with(
        &mut self,
        entry: &DraftEntry,
        stances: Vec<StanceView>,
    ) -> Result<DraftView> {
        Ok(DraftView {
            id: entry.id.to_string(),
            response: entry.response.to_string(),
            title: entry.title.clone(),
            body: self.draft_text(&entry.id)?,
            authors: self.draft_authors(&entry.id)?,
            version: self.draft_version(&entry.id)?,
            stances,
            at: entry.at,
        })
    }
}
