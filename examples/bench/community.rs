//! A realistic generated community, built through the model as members'
//! commands would build it: members admitted by the founder, responses,
//! threads, comments of realistic lengths (a third of them replies), drafts
//! edited many times by several members, and stances from most members.
//!
//! Work is grouped into sittings (a member posts a few comments, or makes a
//! few edits, in one workspace) so that a community of 10,000 comments
//! builds in seconds to minutes rather than hours; every change is still
//! signed and stored as a command would store it.

use convene::ids::ObjectId;
use convene::model::Workspace;
use convene::model::response::NewResponse;
use convene::model::views::{ResponseKind, Stance};
use convene::store::{CommunityStore, Home, Identity};
use convene::trust::{CertBody, Certificate, Role};

use crate::rng::Rng;

/// A fixed "now" (29 Nov 2026): generated data does not depend on the clock.
pub const NOW: i64 = 1_795_946_400;

/// How big a community to build.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub members: usize,
    pub responses: usize,
    pub comments: usize,
    pub drafts: usize,
    pub edits_per_draft: usize,
}

/// A community and the handles a benchmark needs into it.
pub struct Community {
    pub store: CommunityStore,
    /// Every member, founder first; each has a home of its own.
    pub members: Vec<Member>,
    /// (response, thread) pairs, one thread per response at least.
    pub threads: Vec<(ObjectId, ObjectId)>,
    pub responses: Vec<ObjectId>,
    pub drafts: Vec<ObjectId>,
    /// Bytes of plain text written (comment bodies and final drafts).
    pub text_bytes: usize,
    rng: Rng,
    /// Recent comments per thread, for replies.
    recent: Vec<Vec<ObjectId>>,
    comments: usize,
}

/// One member: identity and home folder.
pub struct Member {
    pub identity: Identity,
    pub home: Home,
}

const WORDS: &[&str] = &[
    "the",
    "policy",
    "would",
    "our",
    "members",
    "in",
    "field",
    "monitoring",
    "costs",
    "we",
    "support",
    "aim",
    "but",
    "timeline",
    "is",
    "too",
    "short",
    "for",
    "small",
    "operators",
    "data",
    "sharing",
    "agreement",
    "needs",
    "clear",
    "consent",
    "rules",
    "and",
    "region",
    "laboratories",
    "capacity",
    "training",
    "funding",
    "a",
    "transition",
    "period",
    "of",
    "two",
    "years",
    "seems",
    "fair",
    "to",
    "most",
    "people",
    "I",
    "spoke",
    "with",
    "evidence",
    "from",
    "pilot",
    "shows",
    "that",
    "reporting",
    "burden",
    "doubles",
    "when",
    "forms",
    "change",
    "every",
    "season",
    "ministry",
    "consultation",
    "asks",
    "whether",
    "should",
    "apply",
    "cooperatives",
    "as",
    "well",
    "this",
    "point",
    "matters",
    "because",
    "it",
    "affects",
    "women",
    "farmers",
    "first",
    "could",
    "propose",
    "an",
    "amendment",
    "on",
    "paragraph",
    "three",
    "not",
    "sure",
    "agree",
    "with",
    "wording",
    "risk",
    "standards",
    "practice",
    "community",
    "network",
    "local",
    "partners",
    "schedule",
    "audit",
    "water",
    "soil",
    "quality",
    "safety",
    "market",
    "access",
    "price",
    "review",
    "after",
    "one",
    "year",
];

/// A comment of realistic length: most are a few sentences, some are long.
fn comment_text(rng: &mut Rng) -> String {
    let words = match rng.below(10) {
        0..=3 => 8 + rng.below(25),
        4..=7 => 30 + rng.below(60),
        8 => 90 + rng.below(120),
        _ => 200 + rng.below(200),
    };
    sentence_of(rng, words)
}

fn sentence_of(rng: &mut Rng, words: usize) -> String {
    let mut out = String::with_capacity(words * 7);
    for i in 0..words {
        if i > 0 {
            out.push(if rng.below(14) == 0 { '.' } else { ' ' });
            if out.ends_with('.') {
                out.push(' ');
            }
        }
        out.push_str(WORDS[rng.below(WORDS.len())]);
    }
    out.push('.');
    out
}

/// Admit a member: the founder's admission and the member's device.
pub fn admit(
    store: &mut CommunityStore,
    founder: &Identity,
    member: &Identity,
) -> anyhow::Result<()> {
    let id = store.id();
    store.add_certificates(&[
        Certificate::issue(
            &id,
            &CertBody::Admit {
                member: member.member_id(),
                name: member.name.clone(),
                role: Role::Member,
                by: founder.member_id(),
                at: NOW,
            },
            &[founder.member_key()?],
        ),
        Certificate::issue(
            &id,
            &CertBody::Device {
                member: member.member_id(),
                device: member.device_id(),
                label: "laptop".into(),
                at: NOW,
            },
            &[member.member_key()?, &member.device],
        ),
    ])?;
    Ok(())
}

impl Community {
    /// Found a community in `root`/member-0 and admit the others, each with
    /// a home of its own under `root`; then open the responses, their
    /// threads and drafts. Comments, edits and stances come with
    /// [`Community::add_comments`], [`Community::edit_drafts`] and
    /// [`Community::take_stances`].
    pub fn found(root: &std::path::Path, size: Size, seed: u64) -> anyhow::Result<Self> {
        let mut members = Vec::with_capacity(size.members);
        for i in 0..size.members {
            let home = Home::new(root.join(format!("member-{i}")));
            let identity = home.init(&format!("Member {i}"))?;
            members.push(Member { identity, home });
        }
        let mut store = members[0].home.create_community(
            &members[0].identity,
            "Bench Network",
            "benchmark",
            NOW,
        )?;
        for m in &members[1..] {
            admit(&mut store, &members[0].identity, &m.identity)?;
        }
        let mut community = Community {
            store,
            members,
            threads: Vec::new(),
            responses: Vec::new(),
            drafts: Vec::new(),
            text_bytes: 0,
            rng: Rng(seed),
            recent: Vec::new(),
            comments: 0,
        };
        for r in 0..size.responses {
            // Facilitators open responses: the founder here.
            let (mut response, mut thread) = (None, None);
            community.act(0, |ws, rng| {
                let id = ws.open_response(NewResponse {
                    kind: ResponseKind::Development,
                    title: format!("Development {r}: new monitoring rules"),
                    summary: sentence_of(rng, 40),
                    source: None,
                    requester: None,
                    questions: vec![],
                    due: None,
                })?;
                let (t, _) = ws.start_thread(&id, "Discussion", Some(&sentence_of(rng, 30)))?;
                response = Some(id);
                thread = Some(t);
                Ok(())
            })?;
            let (response, thread) = response
                .zip(thread)
                .ok_or_else(|| anyhow::anyhow!("no ids"))?;
            community.responses.push(response.clone());
            community.threads.push((response, thread));
            community.recent.push(Vec::new());
        }
        for d in 0..size.drafts {
            let response = community.responses[d % community.responses.len()].clone();
            let who = (d * 7 + 1) % community.members.len();
            let mut draft = None;
            community.act(who, |ws, rng| {
                draft =
                    Some(ws.new_draft(&response, &format!("Draft {d}"), &sentence_of(rng, 250))?);
                Ok(())
            })?;
            community
                .drafts
                .push(draft.ok_or_else(|| anyhow::anyhow!("no draft"))?);
        }
        Ok(community)
    }

    /// Let member `who` work in one workspace, then persist what it did.
    pub fn act(
        &mut self,
        who: usize,
        work: impl FnOnce(&mut Workspace, &mut Rng) -> convene::model::Result<()>,
    ) -> anyhow::Result<()> {
        let identity = &self.members[who].identity;
        let mut ws = self.store.workspace(identity, NOW, true);
        work(&mut ws, &mut self.rng)?;
        self.store.persist(&mut ws, identity)?;
        Ok(())
    }

    /// `count` more comments, in sittings of up to 10 by one member in one
    /// response's thread; a third are replies to a recent comment.
    pub fn add_comments(&mut self, count: usize) -> anyhow::Result<()> {
        let mut left = count;
        while left > 0 {
            let batch = left.min(1 + self.rng.below(10));
            let who = self.pick_member();
            let t = self.rng.below(self.threads.len());
            let (response, thread) = self.threads[t].clone();
            let mut recent = std::mem::take(&mut self.recent[t]);
            let mut written = 0;
            self.act(who, |ws, rng| {
                for _ in 0..batch {
                    let body = comment_text(rng);
                    let reply_to = (!recent.is_empty() && rng.below(3) == 0).then(|| {
                        recent[recent.len() - 1 - rng.below(recent.len().min(20))].clone()
                    });
                    let id = ws.post(
                        &response,
                        &thread,
                        &body,
                        reply_to.as_ref().map(|c| c.as_str()),
                    )?;
                    written += body.len();
                    recent.push(id);
                }
                Ok(())
            })?;
            if recent.len() > 50 {
                recent.drain(..recent.len() - 50);
            }
            self.recent[t] = recent;
            self.text_bytes += written;
            self.comments += batch;
            left -= batch;
        }
        Ok(())
    }

    /// Comments written so far by [`Community::add_comments`].
    pub fn comments(&self) -> usize {
        self.comments
    }

    /// `edits` edits of every draft, in sittings of up to 5 by one member:
    /// a sentence rewritten, a paragraph added, a phrase cut.
    pub fn edit_drafts(&mut self, edits: usize) -> anyhow::Result<()> {
        for d in 0..self.drafts.len() {
            let draft = self.drafts[d].clone();
            let mut left = edits;
            while left > 0 {
                let batch = left.min(1 + self.rng.below(5));
                let who = self.pick_member();
                self.act(who, |ws, rng| {
                    let entry = ws.resolve_draft(draft.as_str())?;
                    for _ in 0..batch {
                        let text = ws.draft_text(&entry.id)?;
                        let edited = edit(rng, &text);
                        ws.edit_draft(&entry, &edited)?;
                    }
                    Ok(())
                })?;
                left -= batch;
            }
        }
        Ok(())
    }

    /// Most members (four in five) take a stance on the first draft of each
    /// response, with a reason one time in three.
    pub fn take_stances(&mut self) -> anyhow::Result<()> {
        let firsts: Vec<ObjectId> = self
            .drafts
            .iter()
            .take(self.responses.len())
            .cloned()
            .collect();
        for who in 0..self.members.len() {
            if who % 5 == 4 {
                continue;
            }
            self.act(who, |ws, rng| {
                for draft in &firsts {
                    let entry = ws.resolve_draft(draft.as_str())?;
                    let stance = match rng.below(10) {
                        0..=5 => Stance::Support,
                        6..=7 => Stance::Reservations,
                        8 => Stance::StandAside,
                        _ => Stance::Object,
                    };
                    // Standing aside and objecting need a reason.
                    let needs_reason = matches!(stance, Stance::StandAside | Stance::Object);
                    let reason = (needs_reason || rng.below(3) == 0).then(|| sentence_of(rng, 15));
                    ws.take_stance(&entry, stance, reason.as_deref())?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The same community after its whole folder of homes was copied from
    /// `from` to `to` (built on tmpfs, measured on disk).
    pub fn moved(self, from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<Self> {
        copy_dir(from, to)?;
        let relocate = |p: &std::path::Path| -> anyhow::Result<std::path::PathBuf> {
            Ok(to.join(p.strip_prefix(from)?))
        };
        let members = self
            .members
            .into_iter()
            .map(|m| {
                Ok(Member {
                    home: Home::new(relocate(m.home.root())?),
                    identity: m.identity,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let store = CommunityStore::open(&relocate(self.store.dir())?, self.store.id())?;
        Ok(Community {
            store,
            members,
            ..self
        })
    }

    /// Copy the community folder into `member`'s home, as that member's
    /// device would hold it after a sync (its own actor file).
    pub fn copy_to(&self, member: usize) -> anyhow::Result<()> {
        let home = &self.members[member].home;
        let target = home
            .root()
            .join("communities")
            .join(self.store.id().to_hex());
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        copy_dir(self.store.dir(), &target)?;
        std::fs::write(
            target.join("actor"),
            format!("{:016x}", 0xbe00 + member as u64),
        )?;
        home.set_current(&self.store.id())?;
        self.compact_as(member, &target)
    }

    /// Compact every document in the community folder `dir` as `member`'s
    /// device, and keep each draft's digest. The generator's writers all
    /// share one store, so its snapshots and digests were attested by
    /// whichever member wrote last; a device that received the community
    /// by sync holds snapshots it compacted and attested itself as the
    /// changes arrived, and the digest of each draft it received
    /// (`StoreReplica::install_all`, `keep_draft_digests`). (Its logs would
    /// then hold up to `COMPACT_AT_BYTES` of changes since; here they end
    /// empty.)
    pub fn compact_as(&self, member: usize, dir: &std::path::Path) -> anyhow::Result<()> {
        let device = self.members[member].identity.device.clone();
        let store = CommunityStore::open(dir, self.store.id())?.with_device(device);
        for name in store.doc_names()? {
            if let Some(mut loaded) = store.load_doc(&name, true, NOW)? {
                store.compact_doc(&name, &mut loaded)?;
                if let Some(convene::model::DocId::Draft(_)) = convene::model::DocId::parse(&name) {
                    anyhow::ensure!(
                        store.keep_draft_digest(&name, &mut loaded.doc),
                        "the digest of {name} was not kept"
                    );
                }
            }
        }
        Ok(())
    }

    fn pick_member(&mut self) -> usize {
        // A few members write much more than the rest, as in real networks.
        if self.rng.below(2) == 0 {
            self.rng.below(self.members.len().min(8))
        } else {
            self.rng.below(self.members.len())
        }
    }
}

/// One edit of a draft's text: rewrite a sentence, add one, or cut a phrase.
fn edit(rng: &mut Rng, text: &str) -> String {
    let sentences: Vec<&str> = text.split_inclusive(". ").collect();
    let at = rng.below(sentences.len().max(1));
    let mut out: Vec<String> = sentences.iter().map(|s| s.to_string()).collect();
    let words = 6 + rng.below(15);
    match rng.below(3) {
        0 if !out.is_empty() => out[at] = format!("{} ", sentence_of(rng, words)),
        1 | 0 => out.insert(at.min(out.len()), format!("{} ", sentence_of(rng, words))),
        _ if out.len() > 3 => {
            out.remove(at);
        }
        _ => out.push(format!("{} ", sentence_of(rng, 10))),
    }
    out.concat()
}

/// Copy a folder recursively.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
