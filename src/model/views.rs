//! What people and scripts read: plain serialisable views of the documents.
//!
//! The JSON field names here are the contract of `../shared/CLI.md`; fields
//! may be added, none renamed. Times are Unix seconds in memory and RFC 3339
//! in JSON.

use serde::{Serialize, Serializer};

use crate::trust::MemberId;

/// Serialise Unix seconds as RFC 3339.
pub fn ser_time<S: Serializer>(at: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::clock::rfc3339(*at))
}

/// A member named in a view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MemberRef {
    /// Member key, hex.
    pub member: MemberId,
    /// Display name from the certificates.
    pub name: String,
}

/// The kinds of response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseKind {
    /// A position on an external development.
    Development,
    /// An answer to a request for opinion.
    Request,
}

impl ResponseKind {
    /// The word stored in documents and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseKind::Development => "development",
            ResponseKind::Request => "request",
        }
    }

    /// Parse the stored word.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "development" => Some(ResponseKind::Development),
            "request" => Some(ResponseKind::Request),
            _ => None,
        }
    }
}

/// Where a response stands; derived from its content, so it always merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Opened, no draft yet.
    Open,
    /// At least one draft.
    Drafting,
    /// At least one stance taken.
    Consultation,
    /// A facilitator published it.
    Published,
}

impl Status {
    /// The word printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Drafting => "drafting",
            Status::Consultation => "consultation",
            Status::Published => "published",
        }
    }
}

/// A stance a member takes on a draft.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Stance {
    /// In favour.
    #[serde(rename = "support")]
    Support,
    /// In favour, with reservations.
    #[serde(rename = "reservations")]
    Reservations,
    /// Will not block, but does not join.
    #[serde(rename = "stand-aside")]
    StandAside,
    /// Against.
    #[serde(rename = "object")]
    Object,
    /// No position.
    #[serde(rename = "abstain")]
    Abstain,
}

impl Stance {
    /// Every stance, in display order.
    pub const ALL: [Stance; 5] = [
        Stance::Support,
        Stance::Reservations,
        Stance::StandAside,
        Stance::Object,
        Stance::Abstain,
    ];

    /// The command-line word.
    pub fn as_str(self) -> &'static str {
        match self {
            Stance::Support => "support",
            Stance::Reservations => "reservations",
            Stance::StandAside => "stand-aside",
            Stance::Object => "object",
            Stance::Abstain => "abstain",
        }
    }

    /// Parse the command-line word.
    pub fn parse(text: &str) -> Option<Self> {
        Stance::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Must a reason be given?
    pub fn needs_reason(self) -> bool {
        matches!(self, Stance::StandAside | Stance::Object)
    }

    /// Is this part of the dissent annex?
    pub fn is_dissent(self) -> bool {
        matches!(
            self,
            Stance::Reservations | Stance::StandAside | Stance::Object
        )
    }
}

/// One line of `responses`.
#[derive(Clone, Debug, Serialize)]
pub struct ResponseSummary {
    /// Response id.
    pub id: String,
    /// development | request.
    pub kind: ResponseKind,
    /// Title.
    pub title: String,
    /// Derived status.
    pub status: Status,
    /// Reply-by date (YYYY-MM-DD), requests only.
    pub due: Option<String>,
    /// Number of threads.
    pub threads: usize,
    /// Number of drafts.
    pub drafts: usize,
    /// When opened.
    #[serde(serialize_with = "ser_time")]
    pub opened_at: i64,
}

/// One comment.
#[derive(Clone, Debug, Serialize)]
pub struct CommentView {
    /// Comment id.
    pub id: String,
    /// Author's member key.
    pub author: MemberId,
    /// Author's name.
    pub author_name: String,
    /// Text.
    pub body: String,
    /// The comment this replies to.
    pub reply_to: Option<String>,
    /// When.
    #[serde(serialize_with = "ser_time")]
    pub at: i64,
    /// Causal order within the same second (not serialised).
    #[serde(skip)]
    pub seq: u64,
    /// The facilitator who recorded it on the author's behalf (the author
    /// has no device); `author` is then the member it speaks for.
    pub recorded_by: Option<MemberRef>,
    /// The member confirmed it from their own device.
    pub confirmed: bool,
    /// The member's own correction of it, from their own device.
    pub correction: Option<String>,
}

/// One thread with its comments, oldest first.
#[derive(Clone, Debug, Serialize)]
pub struct ThreadView {
    /// Thread id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Who started it.
    pub author: MemberId,
    /// Their name.
    pub author_name: String,
    /// When.
    #[serde(serialize_with = "ser_time")]
    pub at: i64,
    /// Comments, oldest first.
    pub comments: Vec<CommentView>,
    /// Causal order within the same second (not serialised).
    #[serde(skip)]
    pub seq: u64,
}

/// One member's stance on a draft.
#[derive(Clone, Debug, Serialize)]
pub struct StanceView {
    /// Member key.
    pub member: MemberId,
    /// Name.
    pub name: String,
    /// The stance.
    pub stance: Stance,
    /// Why (required for stand-aside and object).
    pub reason: Option<String>,
    /// The draft changed since the stance was taken.
    pub stale: bool,
    /// The draft version it was taken on (heads, hex).
    pub version: Vec<String>,
    /// When.
    #[serde(serialize_with = "ser_time")]
    pub at: i64,
    /// Taken after the request's due date, by the time it was made (which
    /// its author signed with the change), not when it arrived here.
    pub late: bool,
    /// The facilitator who recorded it on the member's behalf; `None` for
    /// the member's own stance, which always replaces a recorded one.
    pub recorded_by: Option<MemberRef>,
}

/// One draft.
#[derive(Clone, Debug, Serialize)]
pub struct DraftView {
    /// Draft id.
    pub id: String,
    /// The response it belongs to.
    pub response: String,
    /// Title.
    pub title: String,
    /// Current text.
    pub body: String,
    /// Everyone who changed the text.
    pub authors: Vec<MemberRef>,
    /// Current version (heads, hex).
    pub version: Vec<String>,
    /// Stances, by member name.
    pub stances: Vec<StanceView>,
    /// When created.
    #[serde(serialize_with = "ser_time")]
    pub at: i64,
}

/// What became of an amendment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AmendmentState {
    /// Waiting for a decision.
    Proposed,
    /// Applied to the draft.
    Accepted,
    /// Kept on record, not applied.
    Rejected,
}

impl AmendmentState {
    /// The word printed.
    pub fn as_str(self) -> &'static str {
        match self {
            AmendmentState::Proposed => "proposed",
            AmendmentState::Accepted => "accepted",
            AmendmentState::Rejected => "rejected",
        }
    }
}

/// A proposed find/replace on a draft.
#[derive(Clone, Debug, Serialize)]
pub struct AmendmentView {
    /// Amendment id.
    pub id: String,
    /// The draft it amends.
    pub draft: String,
    /// Text to find.
    pub find: String,
    /// Replacement.
    pub replace: String,
    /// Why.
    pub rationale: String,
    /// Proposer.
    pub author: MemberId,
    /// Proposer's name.
    pub author_name: String,
    /// When proposed.
    #[serde(serialize_with = "ser_time")]
    pub at: i64,
    /// State.
    pub state: AmendmentState,
    /// Who decided.
    pub decided_by: Option<MemberRef>,
    /// Causal order within the same second (not serialised).
    #[serde(skip)]
    pub seq: u64,
}

/// One dissenting view in the annex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DissentEntry {
    /// The draft it is about.
    pub draft: String,
    /// That draft's title.
    pub draft_title: String,
    /// Member key.
    pub member: MemberId,
    /// Name.
    pub name: String,
    /// reservations | stand-aside | object.
    pub stance: String,
    /// Their reason.
    pub reason: String,
    /// The stance was given on an earlier version of the draft.
    pub stale: bool,
    /// The facilitator who recorded it on the member's behalf (absent from
    /// exports made before this field existed, and for the member's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
}

/// Another draft that some members supported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MinorityDraft {
    /// Draft id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Its text.
    pub text: String,
    /// Members who supported it.
    pub supporters: Vec<String>,
}

/// A member's endorsement of the published text.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct EndorsementView {
    /// Member key.
    pub member: MemberId,
    /// Name.
    pub name: String,
    /// Their stance on the adopted draft.
    pub stance: String,
    /// Signature (hex) over the response id, text hash, member and stance.
    pub signature: String,
}

/// The published outcome.
#[derive(Clone, Debug, Serialize)]
pub struct OutcomeView {
    /// The adopted draft.
    pub draft: String,
    /// Its frozen text.
    pub text: String,
    /// SHA-256 of the text, hex.
    pub text_hash: String,
    /// Who published.
    pub published_by: MemberRef,
    /// When.
    #[serde(serialize_with = "ser_time")]
    pub published_at: i64,
    /// The tally at publication.
    pub tally: serde_json::Value,
    /// Every reservation, stand-aside and objection with its reason.
    pub dissent: Vec<DissentEntry>,
    /// Other drafts with their supporters.
    pub minority_drafts: Vec<MinorityDraft>,
    /// The signed statement (exact bytes, JSON text).
    pub statement: String,
    /// The publisher's signature over the statement, hex.
    pub statement_signature: String,
    /// Endorsements so far.
    pub endorsements: Vec<EndorsementView>,
}

/// Everything about one response (`show`).
#[derive(Clone, Debug, Serialize)]
pub struct ResponseView {
    /// Response id.
    pub id: String,
    /// development | request.
    pub kind: ResponseKind,
    /// Title.
    pub title: String,
    /// What changed, why it matters (developments) or context (requests).
    pub summary: String,
    /// Source URL, if any.
    pub source: Option<String>,
    /// Derived status.
    pub status: Status,
    /// Who asks (requests).
    pub requester: Option<String>,
    /// Their questions (requests).
    pub questions: Vec<String>,
    /// Reply-by date (requests).
    pub due: Option<String>,
    /// Who opened it.
    pub opened_by: MemberRef,
    /// When.
    #[serde(serialize_with = "ser_time")]
    pub opened_at: i64,
    /// Threads.
    pub threads: Vec<ThreadView>,
    /// Drafts.
    pub drafts: Vec<DraftView>,
    /// Amendments.
    pub amendments: Vec<AmendmentView>,
    /// The published outcome, once published.
    pub outcome: Option<OutcomeView>,
}

/// Stance counts for one draft (`tally`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StanceCounts {
    /// support
    pub support: usize,
    /// reservations
    pub reservations: usize,
    /// stand-aside
    pub stand_aside: usize,
    /// object
    pub object: usize,
    /// abstain
    pub abstain: usize,
}

impl StanceCounts {
    /// Count one stance.
    pub fn add(&mut self, stance: Stance) {
        match stance {
            Stance::Support => self.support += 1,
            Stance::Reservations => self.reservations += 1,
            Stance::StandAside => self.stand_aside += 1,
            Stance::Object => self.object += 1,
            Stance::Abstain => self.abstain += 1,
        }
    }

    /// The count for one stance.
    pub fn get(&self, stance: Stance) -> usize {
        match stance {
            Stance::Support => self.support,
            Stance::Reservations => self.reservations,
            Stance::StandAside => self.stand_aside,
            Stance::Object => self.object,
            Stance::Abstain => self.abstain,
        }
    }
}

/// The tally of one draft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DraftTally {
    /// Draft id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Counts of every stance taken on it (stale ones included).
    pub counts: StanceCounts,
    /// How many of those were taken on an earlier version.
    pub stale: usize,
    /// How many were taken after the request's due date (still counted).
    #[serde(default)]
    pub late: usize,
}

/// One member's share of voice in a response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Participation {
    /// Member key.
    pub member: MemberId,
    /// Name.
    pub name: String,
    /// Comments written.
    pub comments: usize,
    /// Words in those comments.
    pub words: usize,
    /// Stances taken.
    pub stances: usize,
}

/// The range of views on a response (`tally`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TallyView {
    /// Response id.
    pub response: String,
    /// Per draft.
    pub drafts: Vec<DraftTally>,
    /// Members with write rights who have neither commented nor taken a stance.
    pub not_yet_heard: Vec<MemberRef>,
    /// Of those, the ones known to hold the current version of every draft
    /// (a receipt, `model::receipt`): they have seen it and stayed silent.
    #[serde(default)]
    pub silent: Vec<MemberRef>,
    /// The others: their device has not synced since the current drafts
    /// were written (as far as the record shows), so no reminder yet.
    #[serde(default)]
    pub could_not_have_seen: Vec<MemberRef>,
    /// Per member, most vocal first.
    pub participation: Vec<Participation>,
    /// How much of the discussion the most active fifth of members wrote.
    #[serde(default)]
    pub top_fifth: TopFifth,
}

/// The words written by the most active fifth of the members who may
/// write (at least one member), against all words of the discussion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TopFifth {
    /// How many members make up the fifth.
    pub members: usize,
    /// The words they wrote.
    pub words: usize,
    /// All words written.
    pub total_words: usize,
    /// `words` as a whole percentage of `total_words` (0 when nobody wrote).
    pub percent: u32,
}

/// One entry of `log`.
#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    /// When (the change's own time stamp).
    #[serde(serialize_with = "ser_time")]
    pub at: i64,
    /// Who.
    pub member: Option<MemberId>,
    /// Their name.
    pub name: String,
    /// Which document.
    pub doc: String,
    /// What (the change message).
    pub message: String,
    /// Change hash, hex.
    pub change: String,
}
