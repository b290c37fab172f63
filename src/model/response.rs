//! Responses: opening one (an external development or a request for opinion),
//! listing them, and the whole view of one.
//!
//! The community document's `responses` map is the index (kind, title, due,
//! opened at); the rest lives in the response's own discussion document. The
//! status is derived from content (draft → drafting, stance → consultation,
//! outcome → published), so concurrent edits can never disagree about it.

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ROOT};

use super::doc::{self, DocId};
use super::stance::DraftStance;
use super::views::{MemberRef, ResponseKind, ResponseSummary, ResponseView, Status};
use super::{ModelError, Result, Workspace};
use crate::ids::{ObjectId, resolve_prefix};
use crate::trust::MemberId;

/// What `open development` and `open request` provide.
#[derive(Clone, Debug)]
pub struct NewResponse {
    /// development | request.
    pub kind: ResponseKind,
    /// Title.
    pub title: String,
    /// What changed and why it matters, or context for a request.
    pub summary: String,
    /// A link to the source.
    pub source: Option<String>,
    /// Who asks (requests).
    pub requester: Option<String>,
    /// Their questions (requests).
    pub questions: Vec<String>,
    /// Reply-by date, YYYY-MM-DD (requests).
    pub due: Option<String>,
}

/// One entry of the community's index of responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Response id.
    pub id: ObjectId,
    /// Kind.
    pub kind: ResponseKind,
    /// Title.
    pub title: String,
    /// Reply-by date.
    pub due: Option<String>,
    /// When opened.
    pub at: i64,
    /// Who opened it.
    pub opener: MemberId,
    /// Causal order within the same second.
    pub seq: u64,
}

/// Top-level maps of a discussion document, made when it is created so that
/// members never race to create them.
pub(super) const DISCUSSION_MAPS: [&str; 5] =
    ["threads", "drafts", "amendments", "stances", "endorsements"];

/// Check a YYYY-MM-DD date.
pub fn parse_due(text: &str) -> Result<String> {
    let date: jiff::civil::Date = text.trim().parse().map_err(|_| {
        ModelError::Invalid(format!("'{text}' is not a date of the form YYYY-MM-DD"))
    })?;
    Ok(date.to_string())
}

impl Workspace {
    /// Create the community document (once, by the founder).
    pub fn init_community_doc(&mut self) -> Result<()> {
        let now = self.now;
        let doc = self.create(&DocId::Community)?;
        doc.put(ROOT, "kind", "convene/community")?;
        doc.put_object(ROOT, "responses", ObjType::Map)?;
        doc::commit(doc, "create community document".into(), now);
        Ok(())
    }

    /// Open a response; facilitators only.
    pub fn open_response(&mut self, new: NewResponse) -> Result<ObjectId> {
        self.facilitator("open a response")?;
        let title = new.title.trim().to_string();
        if title.is_empty() {
            return Err(ModelError::Invalid("a response needs a title".into()));
        }
        let due = new.due.as_deref().map(parse_due).transpose()?;
        if new.kind == ResponseKind::Request {
            if new.requester.as_deref().unwrap_or("").trim().is_empty() {
                return Err(ModelError::Invalid("a request needs --from ACTOR".into()));
            }
            if new.questions.iter().all(|q| q.trim().is_empty()) {
                return Err(ModelError::Invalid(
                    "a request needs at least one --question".into(),
                ));
            }
            if due.is_none() {
                return Err(ModelError::Invalid(
                    "a request needs --due YYYY-MM-DD".into(),
                ));
            }
        }
        let id = ObjectId::random();
        let now = self.now;

        let discussion = self.create(&DocId::Response(id.clone()))?;
        discussion.put(ROOT, "summary", new.summary.as_str())?;
        if let Some(source) = &new.source {
            discussion.put(ROOT, "source", source.as_str())?;
        }
        if let Some(requester) = &new.requester {
            discussion.put(ROOT, "requester", requester.trim())?;
        }
        let questions: Vec<String> = new
            .questions
            .iter()
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty())
            .collect();
        doc::put_strings(discussion, &ROOT, "questions", &questions)?;
        for key in DISCUSSION_MAPS {
            discussion.put_object(ROOT, key, ObjType::Map)?;
        }
        doc::commit(
            discussion,
            format!("open {} {}", new.kind.as_str(), id),
            now,
        );

        let community = self.write(&DocId::Community)?;
        let index = doc::ensure_map(community, &ROOT, "responses")?;
        let entry = community.put_object(&index, id.as_str(), ObjType::Map)?;
        community.put(&entry, "kind", new.kind.as_str())?;
        community.put(&entry, "title", title.as_str())?;
        if let Some(due) = &due {
            community.put(&entry, "due", due.as_str())?;
        }
        community.put(&entry, "at", now)?;
        doc::commit(community, format!("index {} '{}'", id, title), now);
        Ok(id)
    }

    /// The index of responses whose discussion document is here, oldest
    /// first.
    pub fn index(&mut self) -> Result<Vec<IndexEntry>> {
        if !self.load(&DocId::Community)? {
            return Ok(Vec::new());
        }
        // The heads name what was read; in the middle of a write (pending
        // operations) they are not asked for, since asking would commit.
        let heads = self.docs.get_mut(&DocId::Community).and_then(|open| {
            (automerge::transaction::Transactable::pending_ops(&open.doc) == 0)
                .then(|| open.doc.get_heads())
        });
        let out = match (&self.index_memo, heads) {
            (Some((at, entries)), Some(heads)) if *at == heads => entries.clone(),
            (_, heads) => {
                let entries = self.read_index();
                self.index_memo = heads.map(|heads| (heads, entries.clone()));
                entries
            }
        };
        // A response whose discussion document has not arrived (a sync cut
        // short) is not listed yet.
        let mut present = Vec::with_capacity(out.len());
        for entry in out {
            if self.has_doc(&DocId::Response(entry.id.clone()))? {
                present.push(entry);
            }
        }
        Ok(present)
    }

    /// Every response the community document lists, oldest first, whether
    /// or not its discussion has arrived.
    fn read_index(&self) -> Vec<IndexEntry> {
        let Some(community) = self.get(&DocId::Community) else {
            return Vec::new();
        };
        let m = &self.membership;
        let Some(index) = doc::map(community, &ROOT, "responses") else {
            return Vec::new();
        };
        let mut out: Vec<IndexEntry> = doc::authored_maps(community, m, &index)
            .into_iter()
            .filter_map(|(key, obj, opener)| {
                // Only facilitators may open responses.
                if !m.member(&opener).is_some_and(|x| x.role.can_facilitate()) {
                    return None;
                }
                Some(IndexEntry {
                    id: ObjectId::parse(&key)?,
                    kind: ResponseKind::parse(&doc::authored_string(
                        community, m, &obj, "kind", &opener,
                    )?)?,
                    title: doc::authored_string(community, m, &obj, "title", &opener)?,
                    due: doc::authored_string(community, m, &obj, "due", &opener),
                    at: doc::authored_int(community, m, &obj, "at", &opener).unwrap_or(0),
                    seq: doc::op_counter(&obj),
                    opener,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.at, a.seq, &a.id).cmp(&(b.at, b.seq, &b.id)));
        out
    }

    /// The index entry of one response.
    pub fn entry(&mut self, id: &ObjectId) -> Result<IndexEntry> {
        self.index()?
            .into_iter()
            .find(|e| e.id == *id)
            .ok_or_else(|| ModelError::Invalid(format!("no response {}", id.short())))
    }

    /// Resolve a response id prefix.
    pub fn resolve_response(&mut self, prefix: &str) -> Result<ObjectId> {
        let ids = self.index()?.into_iter().map(|e| (e.id.to_string(), e.id));
        Ok(resolve_prefix(prefix, ids, "response")?)
    }

    /// Load a response's discussion document and return it with the roster.
    pub(super) fn discussion(
        &mut self,
        id: &ObjectId,
    ) -> Result<(&automerge::AutoCommit, &crate::trust::Membership)> {
        let doc_id = DocId::Response(id.clone());
        if !self.load(&doc_id)? {
            return Err(ModelError::Invalid(format!(
                "the discussion of response {} is missing",
                id.short()
            )));
        }
        let doc = self
            .get(&doc_id)
            .ok_or_else(|| ModelError::Invalid(format!("response {} is missing", id.short())))?;
        Ok((doc, &self.membership))
    }

    /// A map at the top of a response's discussion document.
    /// A top-level map of a discussion document: the one its opener made,
    /// even if another member raced to put a map under the same key.
    pub(super) fn discussion_map(&mut self, id: &ObjectId, key: &str) -> Result<ObjId> {
        let opener = self.entry(id)?.opener;
        let (doc, m) = self.discussion(id)?;
        doc::owned_map(doc, m, &ROOT, key, &opener)
            .ok_or_else(|| ModelError::Invalid(format!("response {} has no {key}", id.short())))
    }

    /// Has anyone taken a stance on a draft of this response? (Cheap: no
    /// draft document is opened.)
    pub fn has_stances(&mut self, id: &ObjectId) -> Result<bool> {
        let stances = self.discussion_map(id, "stances")?;
        let (doc, _) = self.discussion(id)?;
        Ok(!doc::keys(doc, &stances).is_empty())
    }

    /// The status of a response, derived from its content.
    pub fn status(&mut self, id: &ObjectId) -> Result<Status> {
        if self.outcome_exists(id)? {
            return Ok(Status::Published);
        }
        if self.has_stances(id)? {
            return Ok(Status::Consultation);
        }
        if !self.draft_entries(id)?.is_empty() {
            return Ok(Status::Drafting);
        }
        Ok(Status::Open)
    }

    /// Every response with its counts (`responses`).
    pub fn responses(&mut self) -> Result<Vec<ResponseSummary>> {
        let mut out = Vec::new();
        for entry in self.index()? {
            out.push(ResponseSummary {
                status: self.status(&entry.id)?,
                threads: self.threads(&entry.id)?.len(),
                drafts: self.draft_entries(&entry.id)?.len(),
                id: entry.id.to_string(),
                kind: entry.kind,
                title: entry.title,
                due: entry.due,
                opened_at: entry.at,
            });
        }
        Ok(out)
    }

    /// Everything about one response (`show`).
    pub fn show(&mut self, id: &ObjectId) -> Result<ResponseView> {
        let entry = self.entry(id)?;
        let (doc, m) = self.discussion(id)?;
        let opener = entry.opener;
        let summary = doc::authored_string(doc, m, &ROOT, "summary", &opener).unwrap_or_default();
        let source = doc::authored_string(doc, m, &ROOT, "source", &opener);
        let requester = doc::authored_string(doc, m, &ROOT, "requester", &opener);
        let questions = doc::authored_strings(doc, m, &ROOT, "questions", &opener);
        let opened_by = MemberRef {
            member: opener,
            name: m.name_of(&opener),
        };
        let threads = self.threads(id)?;
        // The stances are read once for all drafts, not once per draft.
        let entries = self.draft_entries(id)?;
        let mut stances = match entries.is_empty() {
            true => Vec::new(),
            false => self.all_stances(id)?,
        };
        let mut drafts = Vec::new();
        for d in entries {
            let on: Vec<DraftStance>;
            (on, stances) = stances.into_iter().partition(|s| s.draft == d.id);
            let on = on.into_iter().map(|s| s.view).collect();
            drafts.push(self.draft_view_with(&d, on)?);
        }
        Ok(ResponseView {
            id: id.to_string(),
            kind: entry.kind,
            title: entry.title,
            summary,
            source,
            status: self.status(id)?,
            requester,
            questions,
            due: entry.due,
            opened_by,
            opened_at: entry.at,
            threads,
            drafts,
            amendments: self.amendments(id)?,
            outcome: self.outcome(id)?,
        })
    }
}
