//! The sync session state machine, one per connection and peer.
//!
//! ```text
//!  both sides:  Hello ──▶            (version, community, certificate ids)
//!               ◀── Hello
//!  on Hello:    Certificates ──▶     (what the peer lacks)
//!  on Certs:    Heads ──▶            (every document's heads)
//!  on Heads:    Lacking ──▶          (protocol 3: what we lack of theirs)
//!               Whole*, Delta*, Sync* ──▶ (documents that differ)
//!  on Lacking:  Sync* ──▶            (documents both sides lack of)
//!  on Sync:     verify, apply, persist; reply with Sync* or Idle
//!  on Whole, Delta: verify, keep; reply
//!  on Idle:     reply with Sync*, or Idle, or finish
//! ```
//!
//! A side is done when it has nothing to send, its last frame was `Idle`,
//! and the peer's `Idle` says the peer received every content frame it sent.

use std::collections::{BTreeMap, BTreeSet};
use std::mem::discriminant;

use automerge::sync::{State, SyncDoc};
use automerge::{Change, ChangeHash};

use super::chunks::{changes_in, guarded, with_changes};
use super::delta;
use super::frame::Frame;
use super::whole::{self, Outcome};
use super::{OLDEST_VERSION, PROTOCOL_VERSION, Replica, SyncError};
use crate::model::DocId;
use crate::trust::signed_change::ChangeSignature;
use crate::trust::{Certificate, DeviceId, sha256};

mod incoming;

/// A session handles at most this many frames.
pub const MAX_FRAMES: u64 = 100_000;
/// The most documents a peer may list in `Heads`.
pub const MAX_DOCS: usize = 50_000;
/// Sync messages received for one document in one session before it is
/// left for the next session (a guard against endless rounds).
pub const MAX_ROUNDS_PER_DOC: u32 = 256;
/// Messages without changes received for one document in a row, with no
/// change sent or received for it in between, before it is left for the
/// next session; and messages sent for one document with none received for
/// it in between. Two peers that disagree on heads they can never reconcile
/// (one holds back a change the other will not send again) would otherwise
/// trade empty messages for ever, or one would keep talking to a peer that
/// has left the document.
pub const MAX_QUIET_MESSAGES: u32 = 8;
/// `Whole` frames (or other content frames) unacknowledged at most before
/// another document is sent whole.
pub const WHOLE_IN_FLIGHT: u64 = 4;
/// Removed members' later changes kept aside per session, at most.
pub const MAX_LATE_KEPT_ASIDE: usize = 10_000;
/// Change bytes carried by one `Sync` frame at most. A message with more is
/// sent as several frames, each with the same heads and a share of the
/// changes in causal order: frames stay far below the 16 MiB frame cap, and
/// a receiver keeps each share durably as it arrives, so a catch-up cut
/// short on a bad link resumes where it stopped.
pub const BATCH_BYTES: usize = 4 << 20;

/// What a session moved, for the `sync` report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Changes sent to the peer.
    pub sent_changes: usize,
    /// Changes received and applied.
    pub received_changes: usize,
    /// Changes received but not applied: author unknown, removed, or observer.
    pub held_back: usize,
    /// New certificates received.
    pub certificates: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    AwaitCertificates,
    AwaitHeads,
    Syncing,
}

/// One side of a sync session.
pub struct Session {
    peer: DeviceId,
    /// The protocol version this side speaks ([`PROTOCOL_VERSION`] unless
    /// [`Session::speaking`]).
    own_version: u32,
    /// The protocol version both sides speak: the lower of ours and the
    /// one in the peer's `Hello`.
    peer_version: u32,
    phase: Phase,
    content_sent: u64,
    content_received: u64,
    frames: u64,
    last_sent_idle: bool,
    done: bool,
    states: BTreeMap<String, State>,
    /// Documents left alone for the rest of the session.
    closed: BTreeSet<String>,
    /// Documents we hold nothing of: we speak only once the peer has. If
    /// both sides opened, the peer would read our empty heads twice (once
    /// after it sent everything), take us for a peer that lost its data,
    /// and send the whole document again. Also those we named lacking
    /// (`lacking`), until the peer's delta or its `Lacking` comes.
    waiting: BTreeSet<String>,
    /// Messages without changes received per document since changes last
    /// moved.
    quiet: BTreeMap<String, u32>,
    /// Removed members' later changes received in this session, per
    /// document, kept aside in case a later accepted change of the same
    /// document builds on them.
    late: BTreeMap<String, BTreeMap<[u8; 32], Change>>,
    /// Messages sent per document since the last one received for it.
    unanswered: BTreeMap<String, u32>,
    /// Changes received before their dependencies, per document.
    out_of_order: BTreeMap<String, Vec<Change>>,
    rounds: BTreeMap<String, u32>,
    /// Changes held back so far, per document.
    held: BTreeSet<(String, [u8; 32])>,
    /// Documents still to send in one frame, each with the peer's heads:
    /// none to send it whole (the peer holds none of it), else its changes
    /// since them (a `Delta`: the peer is behind).
    to_send_whole: std::collections::VecDeque<(String, Vec<ChangeHash>)>,
    /// Documents we named in our `Lacking` frame and wait for (a `Delta`,
    /// or the peer's first `Sync`), with the heads the peer listed.
    lacking: BTreeMap<String, Vec<ChangeHash>>,
    /// The heads we sent, sorted, per document: one whose heads changed
    /// before we read the peer's (`serve` runs several sessions on one
    /// store) goes by Automerge's protocol, since the peer judged it from
    /// heads we no longer have.
    sent_heads: BTreeMap<String, Vec<[u8; 32]>>,
    /// The most content frames the peer said (`Idle`) it had received.
    peer_received: u64,
    /// Whole documents go together in a frame up to this many bytes.
    whole_frame_bytes: usize,
    /// Content frames unacknowledged at most before more whole documents
    /// are read and sent.
    whole_in_flight: u64,
    /// Documents that arrived whole, with their heads then: shared with the
    /// peer, remembered as such when the session ends.
    installed: BTreeMap<String, Vec<ChangeHash>>,
    /// The first signature received for each change, per document.
    signatures: BTreeMap<String, BTreeMap<[u8; 32], ChangeSignature>>,
    /// The heads each document had when Automerge was last asked for its
    /// message, while its sync state has not changed since: asked again, it
    /// would answer the same `None` (see [`Session::generate_sync`]).
    asked_at: BTreeMap<String, Vec<ChangeHash>>,
    stats: Stats,
    batch_bytes: usize,
    /// Change bytes in the messages of the answer being built (a step
    /// stops adding documents once they reach `batch_bytes`).
    step_bytes: usize,
    /// The answer to the peer's heads is being built a document at a time
    /// ([`Session::answer_more`]).
    answering: bool,
    /// The last document a step visited for its messages: the step's next
    /// part goes on after it (each part would otherwise visit again every
    /// document before it).
    visited: Option<String>,
}

impl Session {
    /// A session with the device `peer` (authenticated by the transport).
    pub fn new(peer: DeviceId) -> Self {
        Session {
            peer,
            own_version: PROTOCOL_VERSION,
            peer_version: OLDEST_VERSION,
            phase: Phase::AwaitHello,
            content_sent: 0,
            content_received: 0,
            frames: 0,
            last_sent_idle: false,
            done: false,
            states: BTreeMap::new(),
            closed: BTreeSet::new(),
            waiting: BTreeSet::new(),
            quiet: BTreeMap::new(),
            late: BTreeMap::new(),
            out_of_order: BTreeMap::new(),
            unanswered: BTreeMap::new(),
            rounds: BTreeMap::new(),
            held: BTreeSet::new(),
            signatures: BTreeMap::new(),
            asked_at: BTreeMap::new(),
            installed: BTreeMap::new(),
            to_send_whole: Default::default(),
            lacking: BTreeMap::new(),
            sent_heads: BTreeMap::new(),
            peer_received: 0,
            whole_frame_bytes: whole::FRAME_BYTES,
            whole_in_flight: WHOLE_IN_FLIGHT,
            stats: Stats::default(),
            batch_bytes: BATCH_BYTES,
            step_bytes: 0,
            answering: false,
            visited: None,
        }
    }

    /// The same, with another limit on change bytes per `Sync` frame.
    pub fn with_batch_bytes(peer: DeviceId, batch_bytes: usize) -> Self {
        Session {
            batch_bytes: batch_bytes.max(1),
            ..Session::new(peer)
        }
    }

    /// The same, with other limits for whole documents: bytes per `Whole`
    /// frame, and content frames unacknowledged at most (for tests).
    pub fn with_whole_frames(peer: DeviceId, frame_bytes: usize, in_flight: u64) -> Self {
        Session {
            whole_frame_bytes: frame_bytes.max(1),
            whole_in_flight: in_flight.max(1),
            ..Session::new(peer)
        }
    }

    /// The same session, speaking protocol `version` (from
    /// [`OLDEST_VERSION`] up), as a device of an earlier build does.
    pub fn speaking(self, version: u32) -> Self {
        Session {
            own_version: version.clamp(OLDEST_VERSION, PROTOCOL_VERSION),
            ..self
        }
    }

    /// What the session moved so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// True once both sides have nothing more to say.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The first frame.
    pub fn start(&mut self, replica: &mut dyn Replica) -> Vec<Frame> {
        let certificates = replica.certificates().iter().map(|c| sha256(c)).collect();
        vec![Frame::Hello {
            version: self.own_version,
            community: replica.membership().community.0,
            certificates,
        }]
    }

    /// Handle one frame from the peer; returns the frames to send.
    pub fn handle(
        &mut self,
        replica: &mut dyn Replica,
        frame: Frame,
    ) -> Result<Vec<Frame>, SyncError> {
        let mut out = self.handle_first(replica, frame)?;
        while let Some(more) = self.answer_more(replica)? {
            out.extend(more);
        }
        Ok(out)
    }

    /// [`Self::handle`], but of an answer built a document at a time only
    /// the first part: the caller asks for the rest ([`Self::answer_more`]).
    fn handle_first(
        &mut self,
        replica: &mut dyn Replica,
        frame: Frame,
    ) -> Result<Vec<Frame>, SyncError> {
        self.count_received(1, u64::from(frame.is_content()))?;
        let out = match (self.phase, frame) {
            (_, Frame::Refuse { reason }) => return Err(SyncError::RefusedByPeer(reason)),
            (
                Phase::AwaitHello,
                Frame::Hello {
                    version,
                    community,
                    certificates,
                },
            ) => self.on_hello(replica, version, community, certificates)?,
            (Phase::AwaitCertificates, Frame::Certificates { certificates }) => {
                self.on_certificates(replica, certificates)?
            }
            (Phase::AwaitHeads, Frame::Heads { docs }) => self.on_heads(replica, docs)?,
            (
                Phase::Syncing,
                Frame::Sync {
                    doc,
                    message,
                    signatures,
                },
            ) => {
                self.on_syncs(replica, vec![(doc, message, signatures)])?;
                self.reply(replica)?
            }
            (Phase::Syncing, Frame::Whole { docs }) => {
                self.on_whole(replica, docs)?;
                self.reply(replica)?
            }
            (Phase::Syncing, Frame::Delta { docs }) => {
                self.on_delta(replica, docs)?;
                self.reply(replica)?
            }
            (Phase::Syncing, Frame::Lacking { docs }) => self.on_lacking(replica, docs)?,
            (Phase::Syncing, Frame::Idle { received }) => self.on_idle(replica, received)?,
            (phase, other) => {
                return Err(SyncError::Protocol(format!(
                    "unexpected {} while waiting for {phase:?}",
                    frame_name(&other)
                )));
            }
        };
        Ok(self.sent(out))
    }

    /// Handle frames that arrived together, in order, as [`Self::handle`]
    /// would one after the other, adding what they answer to `out` (also
    /// when a frame fails: the answers to those before it stand) as soon
    /// as each is answered: a link that sends what `out` receives at once
    /// lets the peer act on an answer (its heads, say) while the frames
    /// after it are handled. Whole
    /// documents that came in several frames are checked and kept on every
    /// core together. A run of
    /// `Sync` frames for distinct documents is handled at once, with its
    /// documents applied and kept on every core (`incoming`), and answered
    /// once:
    /// each document's next message then says all that its frame changed,
    /// and frames for other documents in between change nothing of it.
    /// Frames after the one that ends the session are left unread, as
    /// `handle` would leave them. Returns whether the last frame handled
    /// (or run) was answered.
    pub fn handle_all(
        &mut self,
        replica: &mut dyn Replica,
        frames: Vec<Frame>,
        out: &mut impl Extend<Frame>,
    ) -> Result<bool, SyncError> {
        let mut answered = false;
        let mut frames = frames.into_iter().peekable();
        while let Some(frame) = frames.next() {
            if self.done {
                break;
            }
            let answer = match frame {
                Frame::Sync {
                    doc,
                    message,
                    signatures,
                } if self.phase == Phase::Syncing
                    && matches!(frames.peek(), Some(Frame::Sync { doc: next, .. }) if *next != doc) =>
                {
                    let mut run = vec![(doc, message, signatures)];
                    while let Some(Frame::Sync { doc, .. }) = frames.peek() {
                        if run.iter().any(|(name, _, _)| name == doc) {
                            break;
                        }
                        let Some(Frame::Sync {
                            doc,
                            message,
                            signatures,
                        }) = frames.next()
                        else {
                            break;
                        };
                        run.push((doc, message, signatures));
                    }
                    let count = run.len() as u64;
                    self.count_received(count, count)?;
                    self.on_syncs(replica, run)?;
                    let answer = self.reply(replica)?;
                    self.sent(answer)
                }
                first @ (Frame::Whole { .. } | Frame::Delta { .. })
                    if self.phase == Phase::Syncing
                        && frames
                            .peek()
                            .is_some_and(|next| discriminant(next) == discriminant(&first)) =>
                {
                    // A run of `Whole` (or of `Delta`) frames: their
                    // documents are checked and kept on every core
                    // together, as if they had come in one frame.
                    let kind = discriminant(&first);
                    let is_delta = matches!(first, Frame::Delta { .. });
                    let mut run = vec![first];
                    while let Some(next) = frames.next_if(|next| discriminant(next) == kind) {
                        run.push(next);
                    }
                    let count = run.len() as u64;
                    let mut docs = Vec::new();
                    for frame in run {
                        if let Frame::Whole { docs: more } | Frame::Delta { docs: more } = frame {
                            docs.extend(more);
                        }
                    }
                    self.count_received(count, count)?;
                    if is_delta {
                        self.on_delta(replica, docs)?;
                    } else {
                        self.on_whole(replica, docs)?;
                    }
                    let answer = self.reply(replica)?;
                    self.sent(answer)
                }
                frame => self.handle_first(replica, frame)?,
            };
            answered = !answer.is_empty();
            out.extend(answer);
            // The rest of an answer built a document at a time, each part
            // handed on as soon as it is built: the peer applies the first
            // document's changes while we build the next message.
            while let Some(more) = self.answer_more(replica)? {
                out.extend(more);
            }
        }
        Ok(answered)
    }

    /// The next part of the answer to the peer's heads: the next document's
    /// message, while the step's batch is not full; `None` once the answer
    /// is complete. [`Self::handle`] and [`Self::handle_all`] ask for every
    /// part before they return.
    fn answer_more(&mut self, replica: &mut dyn Replica) -> Result<Option<Vec<Frame>>, SyncError> {
        if !self.answering {
            return Ok(None);
        }
        let part = self.generate_sync_for(replica, 1)?;
        if part.is_empty() {
            self.answering = false;
            return Ok(None);
        }
        Ok(Some(self.sent(part)))
    }

    /// Count `frames` frames received, `content` of them content frames;
    /// a session refuses more than [`MAX_FRAMES`].
    fn count_received(&mut self, frames: u64, content: u64) -> Result<(), SyncError> {
        self.frames += frames;
        if self.frames > MAX_FRAMES {
            return Err(SyncError::Protocol(format!(
                "more than {MAX_FRAMES} frames in one session"
            )));
        }
        self.content_received += content;
        Ok(())
    }

    fn sent(&mut self, out: Vec<Frame>) -> Vec<Frame> {
        for f in &out {
            if f.is_content() {
                self.content_sent += 1;
            }
            self.last_sent_idle = matches!(f, Frame::Idle { .. });
        }
        out
    }

    fn on_hello(
        &mut self,
        replica: &mut dyn Replica,
        version: u32,
        community: [u8; 32],
        theirs: Vec<[u8; 32]>,
    ) -> Result<Vec<Frame>, SyncError> {
        // A later build speaks ours too: both speak the lower version.
        if version < OLDEST_VERSION {
            return Err(SyncError::Protocol(format!(
                "the peer speaks protocol {version}, this device {OLDEST_VERSION} to {PROTOCOL_VERSION}"
            )));
        }
        self.peer_version = version.min(self.own_version);
        if community != replica.membership().community.0 {
            return Err(SyncError::Refused(
                "the peer is in another community".into(),
            ));
        }
        let theirs: BTreeSet<[u8; 32]> = theirs.into_iter().collect();
        let certificates = replica
            .certificates()
            .into_iter()
            .filter(|c| !theirs.contains(&sha256(c)))
            .collect();
        self.phase = Phase::AwaitCertificates;
        Ok(vec![Frame::Certificates { certificates }])
    }

    fn on_certificates(
        &mut self,
        replica: &mut dyn Replica,
        certificates: Vec<Vec<u8>>,
    ) -> Result<Vec<Frame>, SyncError> {
        let mut parsed = Vec::with_capacity(certificates.len());
        for bytes in &certificates {
            parsed.push(
                Certificate::from_bytes(bytes).map_err(|e| SyncError::Refused(e.to_string()))?,
            );
        }
        self.stats.certificates += replica.add_certificates(&parsed)?;
        let peer_ok = replica
            .membership()
            .owner_of(&self.peer)
            .is_some_and(|m| !m.removed);
        if !peer_ok {
            return Err(SyncError::Refused(format!(
                "device {} is not a current device of a member",
                self.peer.short()
            )));
        }
        let names = replica.doc_names()?;
        let heads = replica.heads_all(&names)?;
        let docs: Vec<(String, Vec<[u8; 32]>)> = names
            .into_iter()
            .zip(heads)
            .map(|(name, heads)| (name, heads.iter().map(|h| h.0).collect()))
            .collect();
        self.sent_heads = docs
            .iter()
            .map(|(name, heads)| {
                let mut sorted = heads.clone();
                sorted.sort();
                (name.clone(), sorted)
            })
            .collect();
        self.phase = Phase::AwaitHeads;
        Ok(vec![Frame::Heads { docs }])
    }

    fn on_heads(
        &mut self,
        replica: &mut dyn Replica,
        theirs: Vec<(String, Vec<[u8; 32]>)>,
    ) -> Result<Vec<Frame>, SyncError> {
        self.phase = Phase::Syncing;
        if theirs.len() > MAX_DOCS {
            return Err(SyncError::Protocol(format!(
                "the peer lists {} documents; the limit is {MAX_DOCS}",
                theirs.len()
            )));
        }
        let theirs: BTreeMap<String, Vec<[u8; 32]>> = theirs.into_iter().collect();
        let mut names: BTreeSet<String> = replica.doc_names()?.into_iter().collect();
        names.extend(theirs.keys().cloned());
        if let Some(name) = names.iter().find(|name| DocId::parse(name).is_none()) {
            return Err(SyncError::Protocol(format!(
                "'{name}' is not a document name"
            )));
        }
        let names: Vec<String> = names.into_iter().collect();
        let all_ours = replica.heads_all(&names)?;
        // The documents exchanged change by change, with the peer's heads.
        let mut exchanged = Vec::new();
        for (name, ours) in names.into_iter().zip(all_ours) {
            let mut ours: Vec<[u8; 32]> = ours.iter().map(|h| h.0).collect();
            let mut other = theirs.get(&name).cloned().unwrap_or_default();
            ours.sort();
            other.sort();
            if ours != other {
                if other.is_empty() && self.peer_version >= 2 {
                    // The peer holds nothing of it: it goes whole
                    // (`send_whole`).
                    self.to_send_whole.push_back((name, Vec::new()));
                    continue;
                }
                let changed = self
                    .sent_heads
                    .get(&name)
                    .map_or(!ours.is_empty(), |sent| *sent != ours);
                if ours.is_empty() {
                    self.waiting.insert(name.clone());
                } else if self.peer_version >= 3 && !changed {
                    // Whoever holds all the other's heads sends what the
                    // other lacks in one `Delta`; the other waits for it
                    // (`delta`).
                    let their_heads: Vec<ChangeHash> =
                        other.iter().map(|h| ChangeHash(*h)).collect();
                    if replica.holds_all(&name, &their_heads)? {
                        self.to_send_whole.push_back((name, their_heads));
                    } else {
                        self.waiting.insert(name.clone());
                        self.lacking.insert(name, their_heads);
                    }
                    continue;
                }
                exchanged.push((name, other));
            }
        }
        // Each of them is read next (the remembered state is checked
        // against it, then a message generated from it): all at once.
        let held: Vec<String> = exchanged
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| !self.waiting.contains(name))
            .collect();
        replica.load_ahead(&held);
        for (name, other) in exchanged {
            let their_heads: Vec<ChangeHash> = other.iter().map(|h| ChangeHash(*h)).collect();
            let mut state = remembered_state(replica, &self.peer, &name, &their_heads)?;
            // (Not for a document we hold none of: we wait for it whole.)
            if !their_heads.is_empty()
                && !self.waiting.contains(&name)
                && holds_all(replica.doc(&name)?, &their_heads)
            {
                peer_is_behind(&mut state, their_heads);
            }
            self.asked_at.remove(&name);
            self.states.insert(name, state);
        }
        let mut out = Vec::new();
        if self.peer_version >= 3 {
            out.push(Frame::Lacking {
                docs: self.lacking.keys().cloned().collect(),
            });
        }
        // Only the first document's message: the others follow one by one
        // (`answer_more`), so that a peer behind on many documents starts
        // on the first while we build the rest.
        let first = self.reply_with(replica, 1)?;
        self.answering = !matches!(first[..], [Frame::Idle { .. }]);
        out.extend(first);
        Ok(out)
    }

    /// The peer's `Lacking`: a document both of us lack something of
    /// (each holds changes the other does not) goes by Automerge's
    /// protocol, opened now by both sides. One that only the peer lacks
    /// gets our delta (already on its way), one that only we lack the
    /// peer's.
    fn on_lacking(
        &mut self,
        replica: &mut dyn Replica,
        docs: Vec<String>,
    ) -> Result<Vec<Frame>, SyncError> {
        if self.peer_version < 3 {
            return Err(SyncError::Protocol(
                "a Lacking frame from a peer that speaks protocol 1 or 2".into(),
            ));
        }
        if docs.len() > MAX_DOCS {
            return Err(SyncError::Protocol(format!(
                "the peer lacks {} documents; the limit is {MAX_DOCS}",
                docs.len()
            )));
        }
        let mut both = Vec::new();
        for name in docs {
            if let Some(their_heads) = self.lacking.remove(&name) {
                self.waiting.remove(&name);
                both.push((name, their_heads));
            }
        }
        let names: Vec<String> = both.iter().map(|(name, _)| name.clone()).collect();
        replica.load_ahead(&names);
        for (name, their_heads) in both {
            let state = remembered_state(replica, &self.peer, &name, &their_heads)?;
            self.asked_at.remove(&name);
            self.states.insert(name, state);
        }
        // No answer if there is nothing to say: the frame is not content.
        self.generate(replica)
    }

    /// Deltas from a peer that holds all our heads of documents we named
    /// lacking: check every change of each ([`delta::check_all`]) and keep
    /// what each document lacked, or go change by change for one (we speak
    /// first then, since the peer did not open it).
    fn on_delta(
        &mut self,
        replica: &mut dyn Replica,
        docs: Vec<whole::WholeDoc>,
    ) -> Result<(), SyncError> {
        if self.peer_version < 3 {
            return Err(SyncError::Protocol(
                "a delta from a peer that speaks protocol 1 or 2".into(),
            ));
        }
        let mut asked = Vec::with_capacity(docs.len());
        for doc in docs {
            // Only what we named lacking, and each once: anything else is
            // ignored (a crafted frame could name any number of documents;
            // and one that changed here since we sent our heads, which the
            // peer judged from them, we opened change by change: `on_heads`).
            if self.lacking.remove(&doc.doc).is_none() {
                continue;
            }
            self.waiting.remove(&doc.doc);
            self.asked_at.remove(&doc.doc);
            asked.push(doc);
        }
        let names: Vec<String> = asked.iter().map(|d| d.doc.clone()).collect();
        let checked = delta::check_all(replica.membership(), asked);
        // What passed before a refused document is kept, as if each had
        // come alone.
        let mut accepted = Vec::new();
        let mut refused = Ok(());
        for (name, outcome) in names.into_iter().zip(checked) {
            match outcome {
                Ok(Some(signed)) => accepted.push((name, signed)),
                Ok(None) => {
                    self.states.entry(name).or_default();
                }
                Err(e) => {
                    refused = Err(e);
                    break;
                }
            }
        }
        let names: Vec<String> = accepted.iter().map(|(name, _)| name.clone()).collect();
        // The peer's heads: ours as we sent them, and the delta on top.
        let theirs: Vec<Vec<ChangeHash>> = accepted
            .iter()
            .map(|(name, signed)| {
                let sent: Vec<ChangeHash> = self
                    .sent_heads
                    .get(name)
                    .map(|heads| heads.iter().map(|h| ChangeHash(*h)).collect())
                    .unwrap_or_default();
                delta::heads_after(&sent, signed)
            })
            .collect();
        let kept = replica.add_deltas(accepted);
        for ((name, kept), theirs) in names.into_iter().zip(kept).zip(theirs) {
            match kept {
                Ok(Some(count)) => {
                    self.stats.received_changes += count;
                    let mut heads = replica.heads(&name)?;
                    heads.sort();
                    if heads == theirs {
                        self.states.remove(&name);
                        self.installed.insert(name, heads);
                    } else {
                        // Changes written here since our heads went: the
                        // peer lacks them, and goes on change by change.
                        self.states.entry(name).or_default();
                    }
                }
                Ok(None) => {
                    self.states.entry(name).or_default();
                }
                Err(e) => {
                    if refused.is_ok() {
                        refused = Err(e);
                    }
                }
            }
        }
        refused
    }

    /// `Whole` frames for the documents waiting to go whole, as long as
    /// fewer than `whole_in_flight` content frames are unacknowledged (the
    /// next frame is read while the peer checks the last one, and little is
    /// buffered), and at least one if `at_least_one`: a side that answers a
    /// frame must not answer `Idle` while documents still wait to go whole,
    /// or the peer would take it for "nothing more" and finish without them.
    /// A frame holds documents up to `whole_frame_bytes` (one larger
    /// document goes alone). A document that cannot go whole (too large,
    /// or empty) goes change by change; we open it, since the peer, which
    /// holds none of it, waits for us.
    fn send_whole(
        &mut self,
        replica: &mut dyn Replica,
        at_least_one: bool,
    ) -> Result<Vec<Frame>, SyncError> {
        let mut out = Vec::new();
        // One frame per call: the driver asks for the next ones with
        // `send_ahead`, each written while the following one is read.
        while !self.to_send_whole.is_empty() && out.is_empty() {
            let in_flight = self.content_sent.saturating_sub(self.peer_received);
            if in_flight >= self.whole_in_flight && !at_least_one {
                break;
            }
            // A frame holds whole documents or deltas, not both.
            let deltas = self
                .to_send_whole
                .front()
                .is_some_and(|(_, base)| !base.is_empty());
            let limit = if deltas {
                self.whole_frame_bytes.min(delta::FRAME_BYTES)
            } else {
                self.whole_frame_bytes
            };
            let (mut docs, mut bytes) = (Vec::new(), 0);
            while bytes < limit {
                let Some((name, base)) = self.to_send_whole.pop_front() else {
                    break;
                };
                if base.is_empty() == deltas {
                    self.to_send_whole.push_front((name, base));
                    break;
                }
                let prepared = if deltas {
                    replica.delta(&name, &base)?
                } else {
                    replica.whole(&name)?
                };
                match prepared {
                    Some(doc) => {
                        self.stats.sent_changes += doc.signatures.len();
                        bytes += doc.size();
                        docs.push(doc);
                    }
                    None => {
                        // Change by change, opened by us: the peer waits.
                        self.asked_at.remove(&name);
                        let mut state = State::new();
                        if deltas {
                            peer_is_behind(&mut state, base);
                        }
                        self.states.insert(name, state);
                    }
                }
            }
            if !docs.is_empty() {
                out.push(if deltas {
                    Frame::Delta { docs }
                } else {
                    Frame::Whole { docs }
                });
            }
        }
        Ok(out)
    }

    /// The next `Whole` frame, while documents wait to go whole and fewer
    /// than `whole_in_flight` content frames are unacknowledged, at least
    /// one of them: the peer answers that one, so the session goes on even
    /// if this call only moves a document to change by change. The driver
    /// calls it after writing what `handle` returned, until `None`, so that
    /// the first frame leaves before the next is read.
    pub fn send_ahead(&mut self, replica: &mut dyn Replica) -> Result<Option<Frame>, SyncError> {
        let in_flight = self.content_sent.saturating_sub(self.peer_received);
        if self.done || self.phase != Phase::Syncing || in_flight == 0 {
            return Ok(None);
        }
        let out = self.send_whole(replica, false)?;
        Ok(self.sent(out).pop())
    }

    /// Whole documents from a peer that saw we held nothing of them: check
    /// every change of each ([`whole::check_all`]) and keep them, or
    /// go change by change for one (we speak first then, since the peer did
    /// not open it).
    fn on_whole(
        &mut self,
        replica: &mut dyn Replica,
        docs: Vec<whole::WholeDoc>,
    ) -> Result<(), SyncError> {
        if self.peer_version < 2 {
            return Err(SyncError::Protocol(
                "a whole document from a peer that speaks protocol 1".into(),
            ));
        }
        let mut fresh = Vec::with_capacity(docs.len());
        for doc in docs {
            // Only what we lacked when the heads were exchanged, and each
            // once: anything else is ignored (a crafted frame could name
            // any number of documents).
            if !self.waiting.remove(&doc.doc) {
                continue;
            }
            self.asked_at.remove(&doc.doc);
            // Something of it may have arrived meanwhile (`serve` runs
            // several sessions on one store): it goes change by change.
            if replica.heads(&doc.doc)?.is_empty() {
                fresh.push(doc);
            }
        }
        let names: Vec<String> = fresh.iter().map(|d| d.doc.clone()).collect();
        let outcomes = whole::check_all(replica.membership(), fresh);
        // What passed before a refused document is kept, as if each had
        // come alone.
        let mut accepted = Vec::new();
        let mut refused = Ok(());
        for (name, outcome) in names.into_iter().zip(outcomes) {
            match outcome {
                Ok(Outcome::Accepted(mut verified)) => {
                    self.stats.received_changes += verified.signatures.len();
                    let heads = verified.doc.get_heads();
                    self.states.remove(&name);
                    self.installed.insert(name.clone(), heads);
                    accepted.push((name, *verified));
                }
                Ok(Outcome::FallBack) => {
                    self.states.entry(name).or_default();
                }
                Err(e) => {
                    refused = Err(e);
                    break;
                }
            }
        }
        replica.install_all(accepted)?;
        refused
    }

    /// Sync messages for every document in play, or an Idle if none.
    fn reply(&mut self, replica: &mut dyn Replica) -> Result<Vec<Frame>, SyncError> {
        self.reply_with(replica, usize::MAX)
    }

    /// [`Self::reply`] with the messages of at most `docs` documents (the
    /// step's next ones come from [`Self::generate_sync_for`]).
    fn reply_with(
        &mut self,
        replica: &mut dyn Replica,
        docs: usize,
    ) -> Result<Vec<Frame>, SyncError> {
        let mut out = self.send_whole(replica, true)?;
        out.extend(self.generate_sync(replica, docs)?);
        if out.is_empty() {
            return Ok(vec![Frame::Idle {
                received: self.content_received,
            }]);
        }
        Ok(out)
    }

    /// The next whole frame if the window allows, and the sync messages.
    fn generate(&mut self, replica: &mut dyn Replica) -> Result<Vec<Frame>, SyncError> {
        let mut out = self.send_whole(replica, false)?;
        out.extend(self.generate_sync(replica, usize::MAX)?);
        Ok(out)
    }

    /// A sync message for each document exchanged change by change that
    /// has one to send, for at most `docs` of them: a new step.
    ///
    /// Automerge is asked only for a document whose heads or sync state
    /// changed since it was last asked (`asked_at`). Once it has answered
    /// (a message, which leaves the state in flight, or none), it would
    /// answer `None` again for the same document and state, but only after
    /// building a Bloom filter and looking for changes to send: with 20
    /// documents in play, every frame of a catch-up cost each side about
    /// 20 such calls for the one document that frame was about.
    ///
    /// Once the changes of one step fill a batch (`batch_bytes`), the other
    /// documents wait for the next step: a peer behind on every document
    /// would otherwise get all that it lacks built in one step
    /// (`peer_is_behind`), held in memory at once and under `serve`'s store
    /// lock. The peer answers what was sent, which brings the next step.
    fn generate_sync(
        &mut self,
        replica: &mut dyn Replica,
        docs: usize,
    ) -> Result<Vec<Frame>, SyncError> {
        self.step_bytes = 0;
        self.visited = None;
        self.generate_sync_for(replica, docs)
    }

    /// The step's messages for at most `docs` more documents that have
    /// one, adding to its batch so far (`step_bytes`) and going on after
    /// the last document it visited (`visited`).
    fn generate_sync_for(
        &mut self,
        replica: &mut dyn Replica,
        docs: usize,
    ) -> Result<Vec<Frame>, SyncError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut out = Vec::new();
        let mut answered = 0;
        while self.step_bytes < self.batch_bytes && answered < docs {
            let after = match &self.visited {
                Some(name) => Excluded(name.clone()),
                None => Unbounded,
            };
            let next = self
                .states
                .range::<String, _>((after, Unbounded))
                .map(|(name, _)| name)
                .find(|n| !self.closed.contains(*n) && !self.waiting.contains(*n))
                .cloned();
            let Some(name) = next else {
                break;
            };
            self.visited = Some(name.clone());
            let Some(state) = self.states.get_mut(&name) else {
                continue;
            };
            let doc = replica.doc(&name)?;
            let heads = doc.get_heads();
            if self.asked_at.get(&name) == Some(&heads) {
                continue;
            }
            self.asked_at.insert(name.clone(), heads);
            // A peer whose last sync names a change we do not hold (it
            // remembers one we dropped) gets a reset from Automerge on every
            // call, in flight or not: send it once per message received.
            let resetting = state
                .their_have
                .as_ref()
                .and_then(|have| have.first())
                .is_some_and(|have| !holds_all(doc, &have.last_sync));
            if resetting && state.in_flight {
                continue;
            }
            let generated = guarded(|| Ok(doc.sync().generate_sync_message(state)))
                .map_err(|e| SyncError::Refused(format!("{name}: {e}")))?;
            let Some(mut message) = generated else {
                continue;
            };
            if resetting {
                state.in_flight = true;
            }
            // Never advertise Automerge's V2 capability: peers then send
            // single change chunks, which are checked one by one.
            message.flags = None;
            // Ask for what the changes kept aside are waiting for: the peer
            // believes it sent them, and Automerge alone would only ask for
            // the heads, which it will not send twice.
            let missing = self.missing_for(&name, doc);
            if !missing.is_empty() {
                message.need.extend(missing);
                // The encoding requires sorted, distinct hashes.
                message.need.sort();
                message.need.dedup();
            }
            let changes = changes_in(&message).map_err(SyncError::Local)?;
            self.step_bytes += changes.iter().map(|c| c.raw_bytes().len()).sum::<usize>();
            self.stats.sent_changes += changes.len();
            if !changes.is_empty() {
                self.quiet.insert(name.clone(), 0);
            }
            let unanswered = self.unanswered.entry(name.clone()).or_default();
            *unanswered += 1;
            if *unanswered > MAX_QUIET_MESSAGES {
                // The peer stopped answering for this document (it left it
                // for the next session): stop too.
                self.closed.insert(name);
                continue;
            }
            answered += 1;
            if changes.is_empty() {
                out.push(Frame::Sync {
                    doc: name,
                    message: message.encode(),
                    signatures: Vec::new(),
                });
                continue;
            }
            for batch in batches(&changes, self.batch_bytes) {
                let mut signatures = Vec::with_capacity(batch.len());
                for change in batch {
                    let sig = replica.signature(&name, &change.hash()).ok_or_else(|| {
                        SyncError::Local(format!(
                            "change {} of {name} has no stored signature",
                            change.hash()
                        ))
                    })?;
                    signatures.push((change.hash().0, sig.0.to_vec()));
                }
                out.push(Frame::Sync {
                    doc: name.clone(),
                    message: with_changes(message.clone(), batch).encode(),
                    signatures,
                });
            }
        }
        Ok(out)
    }

    fn on_idle(
        &mut self,
        replica: &mut dyn Replica,
        received: u64,
    ) -> Result<Vec<Frame>, SyncError> {
        self.peer_received = self.peer_received.max(received.min(self.content_sent));
        let acknowledged_all = received == self.content_sent;
        if acknowledged_all {
            // The peer has read and answered everything we sent: nothing of
            // ours is in flight any more.
            for state in self.states.values_mut() {
                state.in_flight = false;
            }
            self.asked_at.clear();
        }
        if self.last_sent_idle {
            // We said we had nothing more, and the peer finishes on reading
            // that if it acknowledges all the peer sent and the peer has
            // nothing more either. Since our last `Idle` we have read no
            // content from it that we have not answered (every answer to
            // content is content or a newer `Idle`). So we start nothing
            // new here: anything that reached our store meanwhile (another
            // session's changes, a local command's) goes in an answer to
            // the peer's content, or waits for the next session; sent now,
            // it could reach a peer that has stopped reading. An `Idle`
            // that acknowledges all we sent answered ours (the peer is
            // done) or crossed it (the peer finishes on ours, by this same
            // rule).
            return if acknowledged_all {
                self.finish(replica)
            } else {
                Ok(Vec::new())
            };
        }
        let out = self.generate(replica)?;
        if !out.is_empty() {
            return Ok(out);
        }
        if !acknowledged_all {
            // The peer has not seen all we sent; it will answer that first.
            return Ok(Vec::new());
        }
        self.finish(replica)
    }

    /// The session is over: remember each document's sync state for the
    /// next session with this peer, and say `Idle` if our last frame did
    /// not.
    fn finish(&mut self, replica: &mut dyn Replica) -> Result<Vec<Frame>, SyncError> {
        self.done = true;
        for (name, heads) in std::mem::take(&mut self.installed) {
            let mut state = State::new();
            state.shared_heads = heads;
            self.states.entry(name).or_insert(state);
        }
        replica.save_sync_states(&self.peer, &self.states)?;
        if self.last_sent_idle {
            Ok(Vec::new())
        } else {
            Ok(vec![Frame::Idle {
                received: self.content_received,
            }])
        }
    }
}

/// Consecutive runs of `changes` holding at most `limit` bytes each (a
/// single larger change travels alone).
pub(super) fn batches(changes: &[Change], limit: usize) -> Vec<&[Change]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, change) in changes.iter().enumerate() {
        let size = change.raw_bytes().len();
        if i > start && bytes + size > limit {
            out.push(&changes[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    out.push(&changes[start..]);
    out
}

fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello { .. } => "Hello",
        Frame::Certificates { .. } => "Certificates",
        Frame::Heads { .. } => "Heads",
        Frame::Sync { .. } => "Sync",
        Frame::Idle { .. } => "Idle",
        Frame::Refuse { .. } => "Refuse",
        Frame::JoinRequest { .. } => "JoinRequest",
        Frame::LinkRequest { .. } => "LinkRequest",
        Frame::JoinAccepted { .. } => "JoinAccepted",
        Frame::Whole { .. } => "Whole",
        Frame::Lacking { .. } => "Lacking",
        Frame::Delta { .. } => "Delta",
    }
}

/// The sync state remembered with `peer` for a document, if it still
/// holds. Every shared head it names must be in our document: a state
/// naming a change we do not hold (the file was damaged, or a repair cut
/// the log's tail since) would make the peer answer each of our messages
/// with a reset and never send what we lack. And when we hold all of the
/// peer's heads (from its `Heads` frame), every shared head must be in the
/// peer's history: a peer that restored an older copy, or dropped a removed
/// member's late change, would otherwise answer with a reset, and we would
/// send it the whole document again. A fresh state costs only a slower
/// first round.
fn remembered_state(
    replica: &mut dyn Replica,
    peer: &DeviceId,
    name: &str,
    their_heads: &[ChangeHash],
) -> Result<State, SyncError> {
    let Some(state) = replica.sync_state(peer, name) else {
        return Ok(State::new());
    };
    let doc = replica.doc(name)?;
    if !holds_all(doc, &state.shared_heads) {
        return Ok(State::new());
    }
    if holds_all(doc, their_heads) {
        // Our changes that the peer does not hold (their metadata only:
        // building each change in full was a third of a `serve`'s answer
        // to the heads of a device behind on 20 documents).
        let beyond: BTreeSet<ChangeHash> = doc
            .get_changes_meta(their_heads)
            .iter()
            .map(|c| c.hash)
            .collect();
        if state.shared_heads.iter().any(|h| beyond.contains(h)) {
            return Ok(State::new());
        }
    }
    Ok(state)
}

/// We hold every change the peer holds (all of `their_heads`): what it
/// lacks is exactly our changes since those heads. Start the document's
/// sync as if the peer had said so (its heads, and nothing beyond them), so
/// that our first message carries those changes, rather than a Bloom filter
/// that would bring them a round trip later. Automerge sends them once: a
/// message the peer sent meanwhile is answered without them (`sent_hashes`).
fn peer_is_behind(state: &mut State, their_heads: Vec<ChangeHash>) {
    state.shared_heads.clone_from(&their_heads);
    state.their_have = Some(vec![automerge::sync::Have {
        last_sync: their_heads.clone(),
        bloom: automerge::sync::BloomFilter::default(),
    }]);
    state.their_need = Some(Vec::new());
    state.their_heads = Some(their_heads);
}

/// Whether `doc` holds every one of `hashes`.
fn holds_all(doc: &mut automerge::AutoCommit, hashes: &[ChangeHash]) -> bool {
    hashes
        .iter()
        .all(|h| doc.get_change_meta_by_hash(h).is_some())
}
