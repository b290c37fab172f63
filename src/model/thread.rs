//! Threads and comments: where members discuss a response.
//!
//! A thread is a map in the discussion document's `threads`, created with its
//! own `comments` map so that no two members ever race to create a container.
//! Comment bodies are plain strings, not co-edited text: a comment has one
//! author, and its author is the member whose device created it.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType};

use super::doc::{self, AuthoredFields, DocId};
use super::views::{CommentView, MemberRef, ThreadView};
use super::{ModelError, Result, Workspace};
use crate::ids::{ObjectId, resolve_prefix};
use crate::trust::{MemberId, Membership};

fn non_empty(text: &str, what: &str) -> Result<String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ModelError::Invalid(format!("{what} is empty")));
    }
    Ok(t.to_string())
}

fn put_comment(
    doc: &mut AutoCommit,
    comments: &ObjId,
    id: &ObjectId,
    body: &str,
    reply_to: Option<&ObjectId>,
    on_behalf_of: Option<&MemberId>,
    now: i64,
) -> Result<()> {
    let c = doc.put_object(comments, id.as_str(), ObjType::Map)?;
    doc.put(&c, "body", body)?;
    if let Some(parent) = reply_to {
        doc.put(&c, "reply_to", parent.as_str())?;
    }
    if let Some(member) = on_behalf_of {
        doc.put(&c, "on_behalf_of", member.to_hex())?;
        // Where the member confirms it later, each time under a fresh key
        // (`Workspace::confirm_comment`); made now so nobody races for it.
        doc.put_object(&c, "confirmations", ObjType::Map)?;
    }
    doc.put(&c, "at", now)?;
    Ok(())
}

/// The latest confirmation that `member` wrote in the `confirmations` map
/// that `author` made with a comment recorded for them.
fn confirmation(
    doc: &AutoCommit,
    m: &Membership,
    comment: &ObjId,
    author: &MemberId,
    member: Option<MemberId>,
) -> Option<(ObjId, MemberId)> {
    let member = member?;
    let confirmations = doc::owned_map(doc, m, comment, "confirmations", author)?;
    doc::authored_maps(doc, m, &confirmations)
        .into_iter()
        .filter(|(_, _, by)| *by == member)
        .max_by_key(|(_, obj, _)| {
            let at = doc::authored_int(doc, m, obj, "at", &member).unwrap_or(0);
            (at, doc::op_counter(obj))
        })
        .map(|(_, obj, _)| (obj, member))
}

/// The member a facilitator's comment speaks for, if it was recorded on
/// their behalf: honoured only from a facilitator, for a member.
fn spoken_for(m: &Membership, fields: &AuthoredFields, author: &MemberId) -> Option<MemberId> {
    if !m.member(author)?.role.can_facilitate() {
        return None;
    }
    let hex = fields.string("on_behalf_of")?;
    let member = MemberId::from_hex(&hex).filter(|id| id.to_hex() == hex)?;
    m.member(&member).map(|found| found.id)
}

/// A thread's author, if the thread is well formed (a known author and a
/// title they wrote): the threads every view shows.
fn thread_author(doc: &AutoCommit, m: &Membership, obj: &ObjId) -> Option<crate::trust::MemberId> {
    let author = doc::author_of(m, obj)?;
    doc::authored_string(doc, m, obj, "title", &author)?;
    Some(author)
}

/// The comment `cobj` (id `cid`) created by `cauthor`; `None` without a
/// body of its author's.
fn read_comment(
    doc: &AutoCommit,
    m: &Membership,
    cid: String,
    cobj: &ObjId,
    cauthor: MemberId,
) -> Option<CommentView> {
    let fields = AuthoredFields::read(doc, m, cobj, &cauthor);
    let body = fields.string("body")?;
    let member = spoken_for(m, &fields, &cauthor);
    let speaker = member.unwrap_or(cauthor);
    let confirmation = confirmation(doc, m, cobj, &cauthor, member);
    Some(CommentView {
        id: cid,
        author: speaker,
        author_name: m.name_of(&speaker),
        body,
        reply_to: fields.string("reply_to"),
        at: fields.int("at").unwrap_or(0),
        seq: doc::op_counter(cobj),
        recorded_by: member.map(|_| MemberRef {
            member: cauthor,
            name: m.name_of(&cauthor),
        }),
        confirmed: confirmation.is_some(),
        correction: confirmation
            .and_then(|(obj, id)| doc::authored_string(doc, m, &obj, "correction", &id)),
    })
}

fn read_thread(doc: &AutoCommit, m: &Membership, key: &str, obj: &ObjId) -> Option<ThreadView> {
    let author = thread_author(doc, m, obj)?;
    let title = doc::authored_string(doc, m, obj, "title", &author)?;
    let at = doc::authored_int(doc, m, obj, "at", &author).unwrap_or(0);
    let mut comments = Vec::new();
    if let Some(cmap) = doc::map(doc, obj, "comments") {
        for (cid, cobj, cauthor) in doc::authored_maps(doc, m, &cmap) {
            comments.extend(read_comment(doc, m, cid, &cobj, cauthor));
        }
    }
    comments.sort_by(|a, b| (a.at, a.seq, &a.id).cmp(&(b.at, b.seq, &b.id)));
    Some(ThreadView {
        id: key.to_string(),
        title,
        author,
        author_name: m.name_of(&author),
        at,
        comments,
        seq: doc::op_counter(obj),
    })
}

impl Workspace {
    /// Start a thread on a response, optionally with a first comment.
    pub fn start_thread(
        &mut self,
        response: &ObjectId,
        title: &str,
        first: Option<&str>,
    ) -> Result<(ObjectId, Option<ObjectId>)> {
        self.writer()?;
        let title = non_empty(title, "the thread title")?;
        let first = first.map(|b| non_empty(b, "the comment")).transpose()?;
        let threads = self.discussion_map(response, "threads")?;
        let now = self.now;
        let id = ObjectId::random();
        let first_id = first.as_ref().map(|_| ObjectId::random());
        let doc = self.write(&DocId::Response(response.clone()))?;
        let t = doc.put_object(&threads, id.as_str(), ObjType::Map)?;
        doc.put(&t, "title", title.as_str())?;
        doc.put(&t, "at", now)?;
        let comments = doc.put_object(&t, "comments", ObjType::Map)?;
        if let (Some(body), Some(cid)) = (&first, &first_id) {
            put_comment(doc, &comments, cid, body, None, None, now)?;
        }
        doc::commit(doc, format!("start thread {id} '{title}'"), now);
        Ok((id, first_id))
    }

    /// Post a comment in a thread, optionally replying to another comment.
    pub fn post(
        &mut self,
        response: &ObjectId,
        thread: &ObjectId,
        body: &str,
        reply_to: Option<&str>,
    ) -> Result<ObjectId> {
        self.post_for(response, thread, body, reply_to, None)
    }

    /// [`Self::post`], by a facilitator on behalf of `member` when given
    /// (a member without a device); every view marks it as recorded by the
    /// facilitator, and the member can confirm or correct it later
    /// ([`Self::confirm_comment`]).
    pub fn post_for(
        &mut self,
        response: &ObjectId,
        thread: &ObjectId,
        body: &str,
        reply_to: Option<&str>,
        on_behalf_of: Option<&MemberId>,
    ) -> Result<ObjectId> {
        if let Some(member) = on_behalf_of {
            self.facilitator("record a comment on someone's behalf")?;
            self.represented(member)?;
        } else {
            self.writer()?;
        }
        let body = non_empty(body, "the comment")?;
        let reply_to = match reply_to {
            None => None,
            Some(prefix) => Some(self.resolve_comment(response, thread, prefix)?),
        };
        let threads = self.discussion_map(response, "threads")?;
        let now = self.now;
        let id = ObjectId::random();
        let doc = self.write(&DocId::Response(response.clone()))?;
        let t = doc::map(doc, &threads, thread.as_str())
            .ok_or_else(|| ModelError::Invalid(format!("no thread {}", thread.short())))?;
        let comments = doc::map(doc, &t, "comments")
            .ok_or_else(|| ModelError::Invalid(format!("thread {} is damaged", thread.short())))?;
        put_comment(
            doc,
            &comments,
            &id,
            &body,
            reply_to.as_ref(),
            on_behalf_of,
            now,
        )?;
        let what = match &reply_to {
            Some(p) => format!("reply {id} to {} in thread {thread}", p.short()),
            None => format!("comment {id} in thread {thread}"),
        };
        doc::commit(doc, what, now);
        Ok(id)
    }

    /// The threads of a response, oldest first.
    pub fn threads(&mut self, response: &ObjectId) -> Result<Vec<ThreadView>> {
        let threads = self.discussion_map(response, "threads")?;
        let (doc, m) = self.discussion(response)?;
        let mut out: Vec<ThreadView> = doc::keys(doc, &threads)
            .into_iter()
            .filter_map(|key| {
                let obj = doc::map(doc, &threads, &key)?;
                read_thread(doc, m, &key, &obj)
            })
            .collect();
        out.sort_by(|a, b| (a.at, a.seq, &a.id).cmp(&(b.at, b.seq, &b.id)));
        Ok(out)
    }

    /// One comment of a thread, as [`Workspace::threads`] shows it, without
    /// reading the others; `None` if the thread or the comment is not there.
    pub fn comment(
        &mut self,
        response: &ObjectId,
        thread: &ObjectId,
        comment: &ObjectId,
    ) -> Result<Option<CommentView>> {
        let threads = self.discussion_map(response, "threads")?;
        let (doc, m) = self.discussion(response)?;
        let found = doc::map(doc, &threads, thread.as_str())
            .filter(|obj| thread_author(doc, m, obj).is_some())
            .and_then(|obj| doc::map(doc, &obj, "comments"))
            .and_then(|cmap| doc::map(doc, &cmap, comment.as_str()))
            .and_then(|cobj| {
                let cauthor = doc::author_of(m, &cobj)?;
                read_comment(doc, m, comment.to_string(), &cobj, cauthor)
            });
        Ok(found)
    }

    /// The ids of a response's threads, the same ones [`Workspace::threads`]
    /// shows, without reading their comments.
    pub fn thread_ids(&mut self, response: &ObjectId) -> Result<Vec<String>> {
        let threads = self.discussion_map(response, "threads")?;
        let (doc, m) = self.discussion(response)?;
        Ok(doc::keys(doc, &threads)
            .into_iter()
            .filter(|key| {
                doc::map(doc, &threads, key)
                    .is_some_and(|obj| thread_author(doc, m, &obj).is_some())
            })
            .collect())
    }

    /// Find a thread by id prefix across all responses: (response, thread).
    pub fn resolve_thread(&mut self, prefix: &str) -> Result<(ObjectId, ObjectId)> {
        self.resolve_thread_with(prefix, &mut NoThreadHints)
    }

    /// Like [`Workspace::resolve_thread`], reading each response's thread ids
    /// from `hints` where they are still valid, so that only the discussions
    /// that changed since are loaded. Hints serve only a whole thread id (a
    /// prefix must be checked against every thread, which hints that left
    /// one out could not do), and a thread found through them is checked in
    /// its document before it is returned.
    pub fn resolve_thread_with(
        &mut self,
        prefix: &str,
        hints: &mut dyn ThreadHints,
    ) -> Result<(ObjectId, ObjectId)> {
        let whole_id = prefix.len() == ObjectId::LEN && ObjectId::parse(prefix).is_some();
        let mut all = Vec::new();
        let mut hinted = false;
        for entry in self.index()? {
            let remembered = if whole_id {
                hints.thread_ids(&entry.id)
            } else {
                None
            };
            let ids = match remembered {
                Some(ids) => {
                    hinted = true;
                    ids
                }
                None => {
                    let ids = self.thread_ids(&entry.id)?;
                    hints.remember(&entry.id, &ids);
                    ids
                }
            };
            for id in ids {
                if let Some(tid) = ObjectId::parse(&id) {
                    all.push((id, (entry.id.clone(), tid)));
                }
            }
        }
        match resolve_prefix(prefix, all, "thread") {
            Ok((response, thread)) if self.thread_ids(&response)?.contains(&thread.to_string()) => {
                Ok((response, thread))
            }
            // The hints may be wrong: read every discussion.
            _ if hinted => self.resolve_thread_with(prefix, &mut NoThreadHints),
            Ok((_, thread)) => Err(ModelError::Invalid(format!("no thread {}", thread.short()))),
            Err(e) => Err(e.into()),
        }
    }

    /// Find a comment by id prefix within a thread.
    pub fn resolve_comment(
        &mut self,
        response: &ObjectId,
        thread: &ObjectId,
        prefix: &str,
    ) -> Result<ObjectId> {
        let comments = self
            .threads(response)?
            .into_iter()
            .find(|t| t.id == thread.as_str())
            .map(|t| t.comments)
            .unwrap_or_default();
        let ids = comments
            .into_iter()
            .filter_map(|c| ObjectId::parse(&c.id).map(|id| (c.id, id)));
        Ok(resolve_prefix(prefix, ids, "comment in this thread")?)
    }
}

/// Thread ids per response remembered between commands: a hint that
/// spares loading every discussion to find a thread. An implementation
/// returns `None` for a response whose document changed since it
/// remembered it.
pub trait ThreadHints {
    /// The thread ids remembered for `response`, if still valid.
    fn thread_ids(&mut self, response: &ObjectId) -> Option<Vec<String>>;
    /// Remember the thread ids of `response` as its document is now.
    fn remember(&mut self, response: &ObjectId, ids: &[String]);
}

/// No hints: every discussion is read.
pub struct NoThreadHints;

impl ThreadHints for NoThreadHints {
    fn thread_ids(&mut self, _: &ObjectId) -> Option<Vec<String>> {
        None
    }

    fn remember(&mut self, _: &ObjectId, _: &[String]) {}
}
