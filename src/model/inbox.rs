//! What arrived since a point in the record's history: new responses,
//! comments and replies, draft changes with a short diff, stances,
//! amendments, publications, and deadlines that are near or passed.
//!
//! A point is the heads of every document ([`Marks`]). The news is the
//! difference between the views at that point and the views now, the same
//! views that `show` prints, computed over documents read as of the old heads
//! ([`AtMarks`]). So news is what *arrived*, whenever it was written: a
//! comment written offline a week ago and carried in by a bundle today is
//! news today. The reader's own comments, stances and proposals are not
//! news to them. It is a pure function of the record and the marks, so it
//! is tested like the rest of the model.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{AutoCommit, ChangeHash};
use serde::Serialize;

use super::digest::DraftDigest;
use super::doc::DocId;
use super::response::IndexEntry;
use super::views::{AmendmentState, ResponseView, Stance};
use super::workspace::{DocLoader, LoadError};
use super::{Result, Workspace};
use crate::ids::ObjectId;
use crate::trust::MemberId;

/// The heads of documents at one point: document name → heads (empty: the
/// document did not exist yet).
pub type Marks = BTreeMap<String, Vec<ChangeHash>>;

/// A deadline this close (or passed) is news every time.
pub const DUE_SOON_DAYS: i64 = 3;

/// Loads documents as they were at `marks`.
pub struct AtMarks<L> {
    inner: L,
    marks: Marks,
    unmarked_as_now: bool,
}

impl<L: DocLoader> AtMarks<L> {
    /// Documents of `inner` as they were at `marks`. A document the marks do not
    /// name is as it is now if `unmarked_as_now` (the marks list only what
    /// changed), else it did not exist then (the marks list everything).
    pub fn new(inner: L, marks: Marks, unmarked_as_now: bool) -> Self {
        AtMarks {
            inner,
            marks,
            unmarked_as_now,
        }
    }
}

impl<L: DocLoader> DocLoader for AtMarks<L> {
    fn load(&mut self, id: &DocId) -> std::result::Result<Option<AutoCommit>, LoadError> {
        let heads = match self.marks.get(&id.name()) {
            Some(heads) if heads.is_empty() => return Ok(None),
            Some(heads) => heads,
            None if self.unmarked_as_now => return self.inner.load(id),
            None => return Ok(None),
        };
        let Some(mut doc) = self.inner.load(id)? else {
            return Ok(None);
        };
        // Heads this device no longer holds (a removed member's change was
        // dropped since) cannot be read at: count the document as unseen.
        if !doc.get_missing_deps(heads).is_empty() {
            return Ok(None);
        }
        match id {
            // A draft's view also reads its change history (who wrote it),
            // which reading at heads does not scope: rebuild it at the marks.
            DocId::Draft(_) => Ok(doc.fork_at(heads).ok()),
            // Every other view reads through `ReadDoc`, which an isolated
            // document answers as of `heads`, and searches history only up
            // to them (`Workspace::history_of`): no replay of the history as
            // `fork_at` does (a discussion of 500 comments: ms, not tens).
            // The store and sync never leave changes queued in a document,
            // so the heads held are exactly those applied.
            DocId::Community | DocId::Response(_) => {
                doc.isolate(heads);
                Ok(Some(doc))
            }
        }
    }

    fn exists(&mut self, id: &DocId) -> std::result::Result<bool, LoadError> {
        match self.marks.get(&id.name()) {
            Some(heads) if heads.is_empty() => Ok(false),
            None if !self.unmarked_as_now => Ok(false),
            _ => self.inner.exists(id),
        }
    }

    /// A draft as it is now has the digest it has now; one at marks has none.
    fn draft_digest(&mut self, draft: &ObjectId) -> Option<DraftDigest> {
        let as_now =
            self.unmarked_as_now && !self.marks.contains_key(&DocId::Draft(draft.clone()).name());
        as_now.then(|| self.inner.draft_digest(draft)).flatten()
    }
}

/// What arrived, per response, most recently opened first.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Inbox {
    /// Responses with news.
    pub responses: Vec<ResponseNews>,
}

/// The news of one response.
#[derive(Clone, Debug, Serialize)]
pub struct ResponseNews {
    /// Response id.
    pub id: String,
    /// Title.
    pub title: String,
    /// The response itself is new.
    pub new: bool,
    /// New comments and replies.
    pub comments: Vec<CommentNews>,
    /// New drafts and changed drafts.
    pub drafts: Vec<DraftNews>,
    /// New or changed stances.
    pub stances: Vec<StanceNews>,
    /// New amendments, and amendments decided since.
    pub amendments: Vec<AmendmentNews>,
    /// Published since.
    pub published: bool,
    /// The reply-by date, when within [`DUE_SOON_DAYS`] or passed (and not
    /// yet published).
    pub due: Option<DueNews>,
}

/// A new comment.
#[derive(Clone, Debug, Serialize)]
pub struct CommentNews {
    /// Comment id.
    pub id: String,
    /// Its thread's title.
    pub thread: String,
    /// Author.
    pub author: MemberId,
    /// Their name.
    pub author_name: String,
    /// The comment answered, if any.
    pub reply_to: Option<String>,
    /// It answers a comment of the member reading.
    pub reply_to_you: bool,
    /// The first words.
    pub excerpt: String,
}

/// A new or changed draft.
#[derive(Clone, Debug, Serialize)]
pub struct DraftNews {
    /// Draft id.
    pub id: String,
    /// Title.
    pub title: String,
    /// The draft is new.
    pub new: bool,
    /// Words added and removed since.
    pub words_added: usize,
    /// Words removed since.
    pub words_removed: usize,
    /// A few changed lines, `+ ` added and `- ` removed.
    pub diff: Vec<String>,
}

/// A new or changed stance.
#[derive(Clone, Debug, Serialize)]
pub struct StanceNews {
    /// Draft id.
    pub draft: String,
    /// Draft title.
    pub draft_title: String,
    /// Who.
    pub member: MemberId,
    /// Their name.
    pub name: String,
    /// The stance now.
    pub stance: Stance,
    /// The stance before, if they had one.
    pub previous: Option<Stance>,
}

/// A new amendment, or one decided since.
#[derive(Clone, Debug, Serialize)]
pub struct AmendmentNews {
    /// Amendment id.
    pub id: String,
    /// Draft id.
    pub draft: String,
    /// Who proposed it.
    pub author_name: String,
    /// Its state now.
    pub state: AmendmentState,
    /// It was proposed since (rather than only decided).
    pub new: bool,
}

/// A deadline near or passed.
#[derive(Clone, Debug, Serialize)]
pub struct DueNews {
    /// YYYY-MM-DD.
    pub date: String,
    /// Days left (negative once passed).
    pub days_left: i64,
}

/// How many changed lines a draft's diff shows at most.
const DIFF_LINES: usize = 6;
/// Words of a comment shown.
const EXCERPT_WORDS: usize = 12;

impl Inbox {
    /// Nothing arrived and no deadline is near.
    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
    }

    /// Counts for a one-line summary: new responses, comments, draft
    /// changes, stances, amendments, publications.
    pub fn counts(&self) -> NewsCounts {
        let mut c = NewsCounts::default();
        for r in &self.responses {
            c.responses += usize::from(r.new);
            c.comments += r.comments.len();
            c.drafts += r.drafts.len();
            c.stances += r.stances.len();
            c.amendments += r.amendments.len();
            c.publications += usize::from(r.published);
        }
        c
    }
}

/// Totals of an [`Inbox`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NewsCounts {
    /// New responses.
    pub responses: usize,
    /// New comments.
    pub comments: usize,
    /// New or changed drafts.
    pub drafts: usize,
    /// New or changed stances.
    pub stances: usize,
    /// New or decided amendments.
    pub amendments: usize,
    /// Publications.
    pub publications: usize,
}

impl NewsCounts {
    /// `3 comments, 1 stance` — or `nothing new`.
    pub fn sentence(&self) -> String {
        let parts: Vec<String> = [
            (self.responses, "new response", "new responses"),
            (self.comments, "comment", "comments"),
            (self.drafts, "draft change", "draft changes"),
            (self.stances, "stance", "stances"),
            (self.amendments, "amendment", "amendments"),
            (self.publications, "publication", "publications"),
        ]
        .iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| format!("{n} {}", if *n == 1 { one } else { many }))
        .collect();
        if parts.is_empty() {
            "nothing new".to_string()
        } else {
            parts.join(", ")
        }
    }
}

impl Workspace {
    /// What is in this workspace and was not in `then` (the same community
    /// at earlier marks), read by `reader`; deadlines are judged at
    /// `self.now()`.
    pub fn news_since(&mut self, then: &mut Workspace, reader: Option<MemberId>) -> Result<Inbox> {
        self.news_of(then, reader, None)
    }

    /// [`Self::news_since`] for what `changed` (the documents that differ
    /// between `then` and now) brought: the responses none of them can
    /// have changed read the same then and now, so they are not read, and
    /// their deadlines, which are no arrival, are left out.
    pub fn arrived_since(
        &mut self,
        then: &mut Workspace,
        reader: Option<MemberId>,
        changed: &BTreeSet<DocId>,
    ) -> Result<Inbox> {
        let touched = self.touched_by(then, changed)?;
        self.news_of(then, reader, touched.as_ref())
    }

    /// The responses whose view the `changed` documents can change; `None`
    /// for all of them. A response's view is read from its index entry in
    /// the community document, its discussion document and its drafts. A
    /// changed draft counts for the response that lists it
    /// ([`Self::listed_where_named`]), or for all when its document's name
    /// of it is not confirmed or cannot be read. A draft that a crafted
    /// change also listed under a second response has its later edits told
    /// under the one its document names only (`show` of the other still
    /// shows it).
    fn touched_by(
        &mut self,
        then: &mut Workspace,
        changed: &BTreeSet<DocId>,
    ) -> Result<Option<BTreeSet<ObjectId>>> {
        let mut touched = BTreeSet::new();
        for id in changed {
            match id {
                DocId::Response(response) => {
                    touched.insert(response.clone());
                }
                DocId::Draft(draft) => match self.listed_where_named(draft) {
                    Some(entry) => {
                        touched.insert(entry.response);
                    }
                    None => return Ok(None),
                },
                DocId::Community => {
                    let before: BTreeMap<ObjectId, IndexEntry> = then
                        .index()?
                        .into_iter()
                        .map(|e| (e.id.clone(), e))
                        .collect();
                    for entry in self.index()? {
                        if before.get(&entry.id) != Some(&entry) {
                            touched.insert(entry.id);
                        }
                    }
                }
            }
        }
        Ok(Some(touched))
    }

    /// The news of the responses in `only` (all when `None`), most recently
    /// opened first. Each response is read now and then in turn, so that a
    /// loader shared by both workspaces reads each document once.
    fn news_of(
        &mut self,
        then: &mut Workspace,
        reader: Option<MemberId>,
        only: Option<&BTreeSet<ObjectId>>,
    ) -> Result<Inbox> {
        let responses = self.responses_to_compare(then, only)?;
        self.news_in_turn(then, responses, reader, only.is_none())
    }

    /// The news of `responses` (from [`Self::responses_to_compare`]), read
    /// one after the other on this thread.
    fn news_in_turn(
        &mut self,
        then: &mut Workspace,
        responses: Vec<(ObjectId, bool)>,
        reader: Option<MemberId>,
        everything: bool,
    ) -> Result<Inbox> {
        let mut inbox = Inbox::default();
        for (id, was_listed) in responses {
            let news = self.news_of_one(then, &id, was_listed, reader, everything)?;
            inbox.responses.extend(news);
        }
        Ok(inbox)
    }

    /// [`Self::news_since`] (`changed` absent) or [`Self::arrived_since`],
    /// with the responses read on every core: a pair of workspaces, now and
    /// then, made by `now_and_then` for each thread (each caches what it
    /// read, which cannot be shared), over loads they share
    /// (`super::shared_loads`). The same news, in the same order, in about
    /// half the time on two cores: telling what a sync brought reads every
    /// response it touched twice, comment by comment.
    pub fn news_on_every_core(
        now_and_then: impl Fn() -> (Workspace, Workspace) + Sync,
        reader: Option<MemberId>,
        changed: Option<&BTreeSet<DocId>>,
    ) -> Result<Inbox> {
        let (mut now, mut then) = now_and_then();
        let only = match changed {
            Some(changed) => now.touched_by(&mut then, changed)?,
            None => None,
        };
        let everything = only.is_none();
        let responses = now.responses_to_compare(&mut then, only.as_ref())?;
        if responses.len() < 2 {
            // One response (a sync that touched one discussion): this pair
            // reads it.
            return now.news_in_turn(&mut then, responses, reader, everything);
        }
        let names: Vec<ObjectId> = responses.iter().map(|(id, _)| id.clone()).collect();
        // The pair is dropped on this thread before the others start: the
        // loads they share already hold the community document it read.
        drop((now, then));
        let read = crate::parallel::in_order_with(
            responses,
            2,
            &now_and_then,
            |(now, then), (id, was_listed)| {
                now.news_of_one(then, &id, was_listed, reader, everything)
            },
            |i| {
                Err(super::ModelError::Invalid(format!(
                    "reading the news of response {} failed",
                    names[i]
                )))
            },
        );
        let mut inbox = Inbox::default();
        for news in read {
            inbox.responses.extend(news?);
        }
        Ok(inbox)
    }

    /// The responses to compare, most recently opened first, each with
    /// whether `then` listed it: those in `only` (all when `None`).
    fn responses_to_compare(
        &mut self,
        then: &mut Workspace,
        only: Option<&BTreeSet<ObjectId>>,
    ) -> Result<Vec<(ObjectId, bool)>> {
        let was_listed: BTreeSet<ObjectId> = then.index()?.into_iter().map(|e| e.id).collect();
        let mut index = self.index()?;
        index.sort_by_key(|e| std::cmp::Reverse((e.at, e.seq)));
        Ok(index
            .into_iter()
            .filter(|entry| only.is_none_or(|only| only.contains(&entry.id)))
            .map(|entry| {
                let listed = was_listed.contains(&entry.id);
                (entry.id, listed)
            })
            .collect())
    }

    /// The news of response `id` between `then` and now, if it has any to
    /// tell; deadlines count as news only when reading `everything` (they
    /// are no arrival).
    fn news_of_one(
        &mut self,
        then: &mut Workspace,
        id: &ObjectId,
        was_listed: bool,
        reader: Option<MemberId>,
        everything: bool,
    ) -> Result<Option<ResponseNews>> {
        let now = self.show(id)?;
        let before = match was_listed {
            true => then.show(id).ok(),
            false => None,
        };
        let news = response_news(&now, before.as_ref(), reader, self.now());
        let counted = news.new
            || news.published
            || !news.comments.is_empty()
            || !news.drafts.is_empty()
            || !news.stances.is_empty()
            || !news.amendments.is_empty();
        Ok((counted || (news.due.is_some() && everything)).then_some(news))
    }
}

/// The news of one response between `before` (absent: it is new) and `now`.
fn response_news(
    now: &ResponseView,
    before: Option<&ResponseView>,
    reader: Option<MemberId>,
    at: i64,
) -> ResponseNews {
    let old_comments: BTreeSet<&str> = before
        .iter()
        .flat_map(|b| b.threads.iter())
        .flat_map(|t| t.comments.iter())
        .map(|c| c.id.as_str())
        .collect();
    let mine: BTreeSet<&str> = now
        .threads
        .iter()
        .flat_map(|t| t.comments.iter())
        .filter(|c| Some(c.author) == reader)
        .map(|c| c.id.as_str())
        .collect();
    let mut comments = Vec::new();
    for thread in &now.threads {
        for c in &thread.comments {
            // The reader's own words are not news to them, unless a
            // facilitator recorded them on their behalf (to confirm).
            let own = Some(c.author) == reader && c.recorded_by.is_none();
            if old_comments.contains(c.id.as_str()) || own {
                continue;
            }
            comments.push(CommentNews {
                id: c.id.clone(),
                thread: thread.title.clone(),
                author: c.author,
                author_name: c.author_name.clone(),
                reply_to: c.reply_to.clone(),
                reply_to_you: c
                    .reply_to
                    .as_deref()
                    .is_some_and(|parent| mine.contains(parent))
                    && Some(c.author) != reader,
                excerpt: excerpt(&c.body),
            });
        }
    }

    let old_drafts: BTreeMap<&str, &super::views::DraftView> = before
        .iter()
        .flat_map(|b| b.drafts.iter())
        .map(|d| (d.id.as_str(), d))
        .collect();
    let mut drafts = Vec::new();
    let mut stances = Vec::new();
    for draft in &now.drafts {
        let old = old_drafts.get(draft.id.as_str());
        let old_body = old.map_or("", |d| d.body.as_str());
        if old.is_none() || old_body != draft.body {
            let (words_added, words_removed, diff) = text_diff(old_body, &draft.body);
            drafts.push(DraftNews {
                id: draft.id.clone(),
                title: draft.title.clone(),
                new: old.is_none(),
                words_added,
                words_removed,
                diff,
            });
        }
        for s in &draft.stances {
            let previous = old
                .and_then(|d| d.stances.iter().find(|o| o.member == s.member))
                .map(|o| (o.stance, o.reason.clone()));
            if previous.as_ref() == Some(&(s.stance, s.reason.clone())) || Some(s.member) == reader
            {
                continue;
            }
            stances.push(StanceNews {
                draft: draft.id.clone(),
                draft_title: draft.title.clone(),
                member: s.member,
                name: s.name.clone(),
                stance: s.stance,
                previous: previous.map(|(stance, _)| stance),
            });
        }
    }

    let old_amendments: BTreeMap<&str, AmendmentState> = before
        .iter()
        .flat_map(|b| b.amendments.iter())
        .map(|a| (a.id.as_str(), a.state))
        .collect();
    let amendments = now
        .amendments
        .iter()
        .filter(|a| old_amendments.get(a.id.as_str()) != Some(&a.state))
        .filter(|a| Some(a.author) != reader || a.decided_by.is_some())
        .map(|a| AmendmentNews {
            id: a.id.clone(),
            draft: a.draft.clone(),
            author_name: a.author_name.clone(),
            state: a.state,
            new: !old_amendments.contains_key(a.id.as_str()),
        })
        .collect();

    let published = now.outcome.is_some() && before.is_none_or(|b| b.outcome.is_none());
    let due = match (&now.due, &now.outcome) {
        (Some(date), None) => days_until(date, at)
            .filter(|days| *days <= DUE_SOON_DAYS)
            .map(|days_left| DueNews {
                date: date.clone(),
                days_left,
            }),
        _ => None,
    };
    ResponseNews {
        id: now.id.clone(),
        title: now.title.clone(),
        new: before.is_none(),
        comments,
        drafts,
        stances,
        amendments,
        published,
        due,
    }
}

/// The first words of a comment, on one line.
fn excerpt(body: &str) -> String {
    let words: Vec<&str> = body.split_whitespace().collect();
    let mut text = words[..words.len().min(EXCERPT_WORDS)].join(" ");
    if words.len() > EXCERPT_WORDS {
        text.push('…');
    }
    text
}

/// Words added and removed, and a few changed lines.
fn text_diff(old: &str, new: &str) -> (usize, usize, Vec<String>) {
    use similar::{ChangeTag, TextDiff};
    let words = TextDiff::from_words(old, new);
    let (mut added, mut removed) = (0, 0);
    for change in words.iter_all_changes() {
        let counted = usize::from(!change.value().trim().is_empty());
        match change.tag() {
            ChangeTag::Insert => added += counted,
            ChangeTag::Delete => removed += counted,
            ChangeTag::Equal => {}
        }
    }
    let lines: Vec<String> = TextDiff::from_lines(old, new)
        .iter_all_changes()
        .filter_map(|change| match change.tag() {
            ChangeTag::Insert => Some(format!("+ {}", change.value().trim_end())),
            ChangeTag::Delete => Some(format!("- {}", change.value().trim_end())),
            ChangeTag::Equal => None,
        })
        .take(DIFF_LINES)
        .collect();
    (added, removed, lines)
}

/// Whole days from `now` until the start of `date` (YYYY-MM-DD, UTC).
fn days_until(date: &str, now: i64) -> Option<i64> {
    let due = crate::clock::start_of_day(date)?;
    Some((due - now).div_euclid(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_counts_words_and_shows_changed_lines() {
        let (added, removed, lines) = text_diff(
            "We support the aims.\nMonthly sampling.\n",
            "We support the aims.\nQuarterly sampling for small systems.\n",
        );
        // Punctuation belongs to its word: "sampling." became "sampling".
        assert_eq!((added, removed), (5, 2));
        assert_eq!(
            lines,
            [
                "- Monthly sampling.",
                "+ Quarterly sampling for small systems."
            ]
        );
    }

    #[test]
    fn days_until_a_date_count_whole_days_and_go_negative() {
        let noon = 1_795_946_400 + 7_200; // 2026-11-29T12:00:00Z
        assert_eq!(days_until("2026-12-01", noon), Some(1));
        assert_eq!(days_until("2026-11-29", noon), Some(-1));
        assert_eq!(days_until("not a date", noon), None);
    }

    #[test]
    fn counts_read_as_one_sentence() {
        let mut c = NewsCounts::default();
        assert_eq!(c.sentence(), "nothing new");
        c.comments = 3;
        c.stances = 1;
        assert_eq!(c.sentence(), "3 comments, 1 stance");
    }

    #[test]
    fn an_excerpt_is_the_first_words_on_one_line() {
        assert_eq!(excerpt("a\nb  c"), "a b c");
        let long = "w ".repeat(20);
        assert_eq!(excerpt(&long), format!("{}…", "w ".repeat(12).trim_end()));
    }
}
