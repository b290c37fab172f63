//! The model tested in memory, with no store: several members, each with
//! their own device actor, share documents through an in-memory loader that
//! keeps only the changes each workspace handed back.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use automerge::{ActorId, AutoCommit, Change};

use super::response::NewResponse;
use super::views::{AmendmentState, ResponseKind, Stance, Status};
use super::workspace::Writer;
use super::{DocId, DocLoader, LoadError, ModelError, Workspace};
use crate::ids::ObjectId;
use crate::trust::{CertBody, Certificate, DeviceId, MemberId, Membership, Role, SecretKey};

type Shared = Rc<RefCell<BTreeMap<DocId, Vec<Vec<u8>>>>>;

struct MemoryLoader(Shared);

impl DocLoader for MemoryLoader {
    fn load(&mut self, id: &DocId) -> Result<Option<AutoCommit>, LoadError> {
        self.0
            .borrow()
            .get(id)
            .map(|changes| built(changes))
            .transpose()
    }
}

/// A document built from its changes.
fn built(changes: &[Vec<u8>]) -> Result<AutoCommit, LoadError> {
    let mut doc = AutoCommit::new();
    let parsed: Vec<Change> = changes
        .iter()
        .filter_map(|c| Change::from_bytes(c.clone()).ok())
        .collect();
    doc.apply_changes(parsed).map_err(|e| LoadError {
        message: e.to_string(),
        integrity: true,
    })?;
    Ok(doc)
}

/// Documents read per document, by loaders on any thread.
type ReadCounts = std::sync::Arc<std::sync::Mutex<BTreeMap<DocId, usize>>>;

/// [`MemoryLoader`] over a copy of the documents, which threads can share,
/// counting what it reads.
struct FrozenLoader {
    docs: std::sync::Arc<BTreeMap<DocId, Vec<Vec<u8>>>>,
    reads: ReadCounts,
}

impl DocLoader for FrozenLoader {
    fn load(&mut self, id: &DocId) -> Result<Option<AutoCommit>, LoadError> {
        if let Ok(mut reads) = self.reads.lock() {
            *reads.entry(id.clone()).or_default() += 1;
        }
        self.docs.get(id).map(|changes| built(changes)).transpose()
    }

    /// Whether a document is here, without reading it (as the store does).
    fn exists(&mut self, id: &DocId) -> Result<bool, LoadError> {
        Ok(self.docs.contains_key(id))
    }
}

struct Person {
    member: SecretKey,
    device: SecretKey,
}

struct World {
    membership: Membership,
    shared: Shared,
    people: BTreeMap<&'static str, Person>,
    now: i64,
}

impl World {
    /// Ana founds; Bo and Cy are members; Ola observes; Fa facilitates.
    fn new() -> Self {
        let mut people = BTreeMap::new();
        for name in ["Ana", "Bo", "Cy", "Ola", "Fa"] {
            people.insert(
                name,
                Person {
                    member: SecretKey::generate(),
                    device: SecretKey::generate(),
                },
            );
        }
        let ana = &people["Ana"];
        let (id, genesis) = Certificate::genesis(
            &ana.member,
            &CertBody::Genesis {
                name: "Net".into(),
                purpose: "".into(),
                founder: MemberId(ana.member.public()),
                founder_name: "Ana".into(),
                at: 0,
                nonce: "0".into(),
            },
        );
        let mut certs = vec![genesis];
        for (name, p) in &people {
            let role = match *name {
                "Ola" => Role::Observer,
                "Fa" => Role::Facilitator,
                _ => Role::Member,
            };
            if *name != "Ana" {
                certs.push(Certificate::issue(
                    &id,
                    &CertBody::Admit {
                        member: MemberId(p.member.public()),
                        name: name.to_string(),
                        role,
                        by: MemberId(ana.member.public()),
                        at: 0,
                    },
                    &[&ana.member],
                ));
            }
            certs.push(Certificate::issue(
                &id,
                &CertBody::Device {
                    member: MemberId(p.member.public()),
                    device: DeviceId(p.device.public()),
                    label: "d".into(),
                    at: 0,
                },
                &[&p.member, &p.device],
            ));
        }
        let verified: Vec<_> = certs.iter().filter_map(|c| c.verify(&id).ok()).collect();
        let membership = Membership::build(id, &verified).unwrap_or_else(|e| panic!("{e}"));
        let world = World {
            membership,
            shared: Rc::default(),
            people,
            now: 1_000,
        };
        world.ok("Ana", |ws| ws.init_community_doc());
        world
    }

    fn workspace(&self, who: &str) -> Workspace {
        let p = &self.people[who];
        let mut actor = p.device.public().to_vec();
        actor.extend_from_slice(&[7; 8]);
        Workspace::new(
            self.membership.clone(),
            Box::new(MemoryLoader(self.shared.clone())),
            self.now,
        )
        .with_writer(Writer {
            member: MemberId(p.member.public()),
            actor: ActorId::from(actor),
        })
    }

    fn act<T>(
        &self,
        who: &str,
        op: impl FnOnce(&mut Workspace) -> super::Result<T>,
    ) -> super::Result<T> {
        let mut ws = self.workspace(who);
        let out = op(&mut ws)?;
        let mut shared = self.shared.borrow_mut();
        for (id, changes) in ws.take_new_changes() {
            let entry = shared.entry(id).or_default();
            entry.extend(changes.iter().map(|c| c.raw_bytes().to_vec()));
        }
        Ok(out)
    }

    fn ok<T>(&self, who: &str, op: impl FnOnce(&mut Workspace) -> super::Result<T>) -> T {
        self.act(who, op).unwrap_or_else(|e| panic!("{who}: {e}"))
    }

    fn key(&self, who: &str) -> &SecretKey {
        &self.people[who].member
    }

    fn id(&self, who: &str) -> MemberId {
        MemberId(self.people[who].member.public())
    }
}

fn request() -> NewResponse {
    NewResponse {
        kind: ResponseKind::Request,
        title: "Consultation".into(),
        summary: "Context".into(),
        source: None,
        requester: Some("Ministry".into()),
        questions: vec!["Q1?".into(), " ".into(), "Q2?".into()],
        due: Some("2027-01-15".into()),
    }
}

fn invalid<T: std::fmt::Debug>(r: super::Result<T>) -> bool {
    matches!(r, Err(ModelError::Invalid(_)))
}

fn not_allowed<T: std::fmt::Debug>(r: super::Result<T>) -> bool {
    matches!(r, Err(ModelError::NotAllowed(_)))
}

#[test]
fn opening_validates_its_input() {
    let w = World::new();
    let mut r = request();
    r.title = "  ".into();
    assert!(invalid(w.act("Ana", |ws| ws.open_response(r))));
    let mut r = request();
    r.questions = vec![" ".into()];
    assert!(invalid(w.act("Ana", |ws| ws.open_response(r))));
    let mut r = request();
    r.due = Some("15/01/2027".into());
    assert!(invalid(w.act("Ana", |ws| ws.open_response(r))));
    let mut r = request();
    r.requester = None;
    assert!(invalid(w.act("Ana", |ws| ws.open_response(r))));
    assert!(not_allowed(w.act("Bo", |ws| ws.open_response(request()))));
    assert!(not_allowed(w.act("Ola", |ws| ws.open_response(request()))));
    let rid = w.ok("Fa", |ws| ws.open_response(request()));
    let shown = w.ok("Bo", |ws| ws.show(&rid));
    assert_eq!(shown.questions, vec!["Q1?", "Q2?"]);
    assert_eq!(shown.requester.as_deref(), Some("Ministry"));
    assert_eq!(shown.opened_by.name, "Fa");
    assert_eq!(shown.status, Status::Open);
}

#[test]
fn status_moves_with_content() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let status = |w: &World| w.ok("Bo", |ws| ws.status(&rid));
    assert_eq!(status(&w), Status::Open);
    let did = w.ok("Bo", |ws| ws.new_draft(&rid, "D", "Text"));
    assert_eq!(status(&w), Status::Drafting);
    let entry = w.ok("Bo", |ws| ws.resolve_draft(did.as_str()));
    w.ok("Cy", |ws| ws.take_stance(&entry, Stance::Support, None));
    assert_eq!(status(&w), Status::Consultation);
    w.ok("Ana", |ws| ws.publish(&rid, &did, w.key("Ana")));
    assert_eq!(status(&w), Status::Published);
    let listed = w.ok("Bo", |ws| ws.responses());
    assert_eq!((listed[0].drafts, listed[0].threads), (1, 0));
}

#[test]
fn threads_comments_and_replies() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    assert!(invalid(w.act("Bo", |ws| ws.start_thread(&rid, " ", None))));
    let (tid, first) = w.ok("Bo", |ws| ws.start_thread(&rid, "T", Some("first")));
    let first = first.unwrap_or_else(ObjectId::random);
    assert!(invalid(w.act("Cy", |ws| ws.post(&rid, &tid, "  ", None))));
    let reply = w.ok("Cy", |ws| {
        ws.post(&rid, &tid, "reply", Some(&first.as_str()[..5]))
    });
    assert!(matches!(
        w.act("Cy", |ws| ws.post(&rid, &tid, "x", Some("zzzz"))),
        Err(ModelError::Reference(_))
    ));
    let (found_r, found_t) = w.ok("Ana", |ws| ws.resolve_thread(&tid.as_str()[..6]));
    assert_eq!((found_r, found_t), (rid.clone(), tid.clone()));
    let threads = w.ok("Ana", |ws| ws.threads(&rid));
    assert_eq!(threads.len(), 1);
    let comments = &threads[0].comments;
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[0].author_name, "Bo");
    assert_eq!(comments[1].id, reply.as_str());
    assert_eq!(comments[1].reply_to.as_deref(), Some(first.as_str()));
    assert_eq!(comments[1].author, w.id("Cy"));
}

#[test]
fn amendments_accept_reject_and_their_errors() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let did = w.ok("Bo", |ws| ws.new_draft(&rid, "D", "alpha beta gamma"));
    let entry = w.ok("Bo", |ws| ws.resolve_draft(did.as_str()));
    assert!(invalid(w.act("Cy", |ws| {
        ws.propose_amendment(&entry, "delta", "x", "why")
    })));
    assert!(invalid(w.act("Cy", |ws| {
        ws.propose_amendment(&entry, "beta", "beta", "why")
    })));
    assert!(invalid(
        w.act("Cy", |ws| ws.propose_amendment(&entry, "beta", "x", " "))
    ));
    let a1 = w.ok("Cy", |ws| {
        ws.propose_amendment(&entry, "beta", "BETA", "caps")
    });
    let a2 = w.ok("Cy", |ws| {
        ws.propose_amendment(&entry, "beta", "b", "short")
    });
    w.ok("Fa", |ws| ws.decide_amendment(a1.as_str(), true));
    assert_eq!(w.ok("Bo", |ws| ws.draft_text(&did)), "alpha BETA gamma");
    // The text a2 replaces is gone: it can only be rejected now.
    assert!(invalid(
        w.act("Fa", |ws| ws.decide_amendment(a2.as_str(), true))
    ));
    let rejected = w.ok("Bo", |ws| ws.decide_amendment(a2.as_str(), false));
    assert_eq!(rejected.state, AmendmentState::Rejected);
    assert_eq!(rejected.decided_by.map(|m| m.name), Some("Bo".to_string()));
    assert!(invalid(
        w.act("Fa", |ws| ws.decide_amendment(a1.as_str(), false))
    ));
    let all = w.ok("Ana", |ws| ws.amendments(&rid));
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].state, AmendmentState::Accepted);
    assert_eq!(all[0].author_name, "Cy");
}

#[test]
fn stances_go_stale_when_the_draft_changes() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let did = w.ok("Bo", |ws| ws.new_draft(&rid, "D", "one"));
    let entry = w.ok("Bo", |ws| ws.resolve_draft(did.as_str()));
    assert!(invalid(w.act("Cy", |ws| ws.take_stance(
        &entry,
        Stance::StandAside,
        Some("  ")
    ))));
    w.ok("Cy", |ws| {
        ws.take_stance(&entry, Stance::Object, Some("no"))
    });
    w.ok("Bo", |ws| ws.take_stance(&entry, Stance::Support, None));
    assert!(
        w.ok("Ana", |ws| ws.stances_on(&rid, &did))
            .iter()
            .all(|s| !s.stale)
    );
    assert!(
        !w.ok("Bo", |ws| ws.edit_draft(&entry, "one")),
        "no change, nothing written"
    );
    assert!(w.ok("Bo", |ws| ws.edit_draft(&entry, "one two")));
    let stances = w.ok("Ana", |ws| ws.stances_on(&rid, &did));
    assert_eq!(stances.len(), 2);
    assert!(stances.iter().all(|s| s.stale));
    w.ok("Cy", |ws| {
        ws.take_stance(&entry, Stance::Reservations, Some("better"))
    });
    let stances = w.ok("Ana", |ws| ws.stances_on(&rid, &did));
    let cy = stances
        .iter()
        .find(|s| s.name == "Cy")
        .map(|s| (s.stance, s.stale));
    assert_eq!(cy, Some((Stance::Reservations, false)));
    let tally = w.ok("Ana", |ws| ws.tally(&rid));
    assert_eq!(tally.drafts[0].counts.support, 1);
    assert_eq!(tally.drafts[0].counts.reservations, 1);
    assert_eq!(tally.drafts[0].stale, 1);
    let unheard: Vec<String> = tally.not_yet_heard.into_iter().map(|m| m.name).collect();
    assert_eq!(unheard, vec!["Ana", "Fa"]);
}

#[test]
fn publish_endorse_export_and_their_rules() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    assert!(invalid(w.act("Ana", |ws| ws.export(&rid, &[]))));
    let empty = w.ok("Bo", |ws| ws.new_draft(&rid, "Empty", " "));
    let did = w.ok("Bo", |ws| ws.new_draft(&rid, "D", "Our answer."));
    assert!(invalid(w.act("Ana", |ws| ws.publish(
        &rid,
        &empty,
        w.key("Ana")
    ))));
    assert!(not_allowed(w.act("Ana", |ws| ws.publish(
        &rid,
        &did,
        w.key("Bo")
    ))));
    let entry = w.ok("Bo", |ws| ws.resolve_draft(did.as_str()));
    w.ok("Bo", |ws| ws.take_stance(&entry, Stance::Support, None));
    w.ok("Cy", |ws| {
        ws.take_stance(&entry, Stance::Object, Some("Too soft."))
    });
    let outcome = w.ok("Fa", |ws| ws.publish(&rid, &did, w.key("Fa")));
    assert_eq!(outcome.text, "Our answer.");
    assert_eq!(outcome.text_hash, super::outcome::text_hash("Our answer."));
    assert_eq!(outcome.dissent.len(), 1);
    assert_eq!(outcome.dissent[0].reason, "Too soft.");
    assert!(invalid(w.act("Ana", |ws| ws.publish(
        &rid,
        &did,
        w.key("Ana")
    ))));
    assert!(invalid(w.act("Bo", |ws| ws.edit_draft(&entry, "changed"))));
    assert!(invalid(w.act("Bo", |ws| ws.take_stance(
        &entry,
        Stance::Abstain,
        None
    ))));
    assert!(invalid(w.act("Bo", |ws| ws.new_draft(&rid, "Late", "x"))));
    // Ana took no stance on the adopted draft: she must say which.
    assert!(invalid(w.act("Ana", |ws| ws.endorse(
        &rid,
        w.key("Ana"),
        None
    ))));
    let e = w.ok("Ana", |ws| {
        ws.endorse(&rid, w.key("Ana"), Some(Stance::Support))
    });
    assert_eq!(e.stance, "support");
    let e = w.ok("Cy", |ws| ws.endorse(&rid, w.key("Cy"), None));
    assert_eq!(e.stance, "object");
    w.ok("Bo", |ws| ws.endorse(&rid, w.key("Bo"), None));
    assert!(invalid(w.act("Bo", |ws| ws.endorse(
        &rid,
        w.key("Bo"),
        None
    ))));
    let outcome = w
        .ok("Ana", |ws| ws.outcome(&rid))
        .unwrap_or_else(|| panic!("published"));
    let names: Vec<&str> = outcome
        .endorsements
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, vec!["Ana", "Bo", "Cy"]);
}

#[test]
fn history_names_every_change_and_its_author() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    w.ok("Bo", |ws| ws.start_thread(&rid, "T", Some("hi")));
    let log = w.ok("Ana", |ws| ws.history());
    assert!(
        log.iter()
            .any(|e| e.name == "Bo" && e.message.starts_with("start thread"))
    );
    assert!(
        log.iter()
            .any(|e| e.name == "Ana" && e.message.starts_with("open request"))
    );
    assert!(log.iter().all(|e| e.member.is_some()));
}

#[test]
fn a_read_only_workspace_refuses_to_write() {
    let w = World::new();
    let mut ws = Workspace::new(
        w.membership.clone(),
        Box::new(MemoryLoader(w.shared.clone())),
        0,
    );
    assert!(not_allowed(ws.open_response(request())));
    assert!(ws.index().unwrap_or_default().is_empty());
}

/// Hints that lie: a thread placed under the wrong response, and a response
/// whose threads are said to be none.
struct LyingHints {
    wrong: (ObjectId, Vec<String>),
    empty: ObjectId,
    asked: usize,
}

impl super::thread::ThreadHints for LyingHints {
    fn thread_ids(&mut self, response: &ObjectId) -> Option<Vec<String>> {
        self.asked += 1;
        if *response == self.wrong.0 {
            Some(self.wrong.1.clone())
        } else if *response == self.empty {
            Some(Vec::new())
        } else {
            None
        }
    }

    fn remember(&mut self, _: &ObjectId, _: &[String]) {}
}

#[test]
fn thread_hints_spare_loading_but_wrong_hints_never_misdirect_a_post() {
    let w = World::new();
    let first = w.ok("Ana", |ws| ws.open_response(request()));
    let second = w.ok("Ana", |ws| ws.open_response(request()));
    let (t1, _) = w.ok("Bo", |ws| ws.start_thread(&first, "One", None));
    let (t2, _) = w.ok("Bo", |ws| ws.start_thread(&second, "Two", None));
    // t2 is claimed to live in the first response, t1's response is said
    // to hold none: both are still found where they are.
    for (thread, response) in [(&t2, &second), (&t1, &first)] {
        let mut hints = LyingHints {
            wrong: (first.clone(), vec![t2.to_string()]),
            empty: if thread == &t1 {
                first.clone()
            } else {
                second.clone()
            },
            asked: 0,
        };
        let found = w.ok("Ana", |ws| {
            ws.resolve_thread_with(thread.as_str(), &mut hints)
        });
        assert_eq!(found, (response.clone(), thread.clone()));
        assert!(hints.asked >= 2, "the hints were consulted");
        // A prefix is checked against every thread: the hints are not asked.
        hints.asked = 0;
        let found = w.ok("Ana", |ws| {
            ws.resolve_thread_with(&thread.as_str()[..6], &mut hints)
        });
        assert_eq!(found, (response.clone(), thread.clone()));
        assert_eq!(hints.asked, 0);
    }
}

#[test]
fn a_prefix_shared_by_two_threads_is_ambiguous_even_when_hints_leave_one_out() {
    let w = World::new();
    let first = w.ok("Ana", |ws| ws.open_response(request()));
    let second = w.ok("Ana", |ws| ws.open_response(request()));
    let mut threads = Vec::new();
    for i in 0..40 {
        let response = if i % 2 == 0 { &first } else { &second };
        threads.push((
            response.clone(),
            w.ok("Bo", |ws| ws.start_thread(response, "T", None)).0,
        ));
    }
    // Two threads in different responses whose ids start alike.
    let (a, b) = threads
        .iter()
        .flat_map(|a| threads.iter().map(move |b| (a, b)))
        .find(|(a, b)| a.0 != b.0 && a.1.as_str()[..1] == b.1.as_str()[..1])
        .unwrap_or_else(|| panic!("no shared first digit among 40 threads"));
    let mut hints = LyingHints {
        wrong: (b.0.clone(), vec![b.1.to_string()]),
        empty: a.0.clone(),
        asked: 0,
    };
    let found = w.act("Ana", |ws| {
        ws.resolve_thread_with(&a.1.as_str()[..1], &mut hints)
    });
    assert!(matches!(found, Err(ModelError::Reference(_))), "{found:?}");
}

/// The heads of every document in `w` now.
fn marks_now(w: &World) -> super::inbox::Marks {
    let ids: Vec<DocId> = w.shared.borrow().keys().cloned().collect();
    let mut loader = MemoryLoader(w.shared.clone());
    ids.into_iter()
        .filter_map(|id| {
            let mut doc = loader.load(&id).ok()??;
            Some((id.name(), doc.get_heads()))
        })
        .collect()
}

/// `who`'s view of what is new since `marks`.
fn news(w: &World, who: &str, marks: super::inbox::Marks) -> super::inbox::Inbox {
    let loader = super::inbox::AtMarks::new(MemoryLoader(w.shared.clone()), marks, false);
    let mut then = Workspace::new(w.membership.clone(), Box::new(loader), w.now);
    w.ok(who, |ws| ws.news_since(&mut then, Some(w.id(who))))
}

#[test]
fn the_inbox_lists_what_arrived_since_the_marks() {
    let mut w = World::new();
    // 2027-01-13T12:00:00Z: the request is due in two days.
    w.now = 1_799_841_600;
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let (tid, first) = w.ok("Ana", |ws| ws.start_thread(&rid, "T", Some("Ana's view")));
    let first = first.unwrap_or_else(ObjectId::random);
    let did = w.ok("Ana", |ws| {
        ws.new_draft(&rid, "D", "We support it.\nMonthly.\n")
    });
    let read = marks_now(&w);

    // Nothing arrived: only the deadline is news.
    let quiet = news(&w, "Ana", read.clone());
    assert_eq!(quiet.counts().sentence(), "nothing new");
    let due = quiet.responses[0].due.as_ref().map(|d| d.days_left);
    assert_eq!(due, Some(1));

    w.ok("Bo", |ws| {
        ws.post(&rid, &tid, "I disagree", Some(first.as_str()))
    });
    w.ok("Cy", |ws| ws.post(&rid, &tid, "Another view", None));
    let entry = w.ok("Bo", |ws| ws.resolve_draft(did.as_str()));
    w.ok("Bo", |ws| {
        ws.edit_draft(&entry, "We support it.\nQuarterly, for small systems.\n")
    });
    let entry = w.ok("Bo", |ws| ws.resolve_draft(did.as_str()));
    w.ok("Cy", |ws| {
        ws.take_stance(&entry, Stance::Object, Some("Too slow"))
    });

    let inbox = news(&w, "Ana", read.clone());
    assert_eq!(inbox.responses.len(), 1);
    let r = &inbox.responses[0];
    assert!(!r.new && !r.published);
    assert_eq!(r.comments.len(), 2);
    let bo = r.comments.iter().find(|c| c.author_name == "Bo");
    assert!(bo.is_some_and(|c| c.reply_to_you));
    assert!(
        r.comments
            .iter()
            .any(|c| c.author_name == "Cy" && !c.reply_to_you)
    );
    assert_eq!(r.drafts.len(), 1);
    assert!(!r.drafts[0].new);
    assert_eq!(
        r.drafts[0].diff,
        ["- Monthly.", "+ Quarterly, for small systems."]
    );
    assert_eq!(r.stances.len(), 1);
    assert_eq!(
        (r.stances[0].stance, r.stances[0].previous),
        (Stance::Object, None)
    );
    assert_eq!(
        inbox.counts().sentence(),
        "2 comments, 1 draft change, 1 stance"
    );

    // With no marks, everything is new; at the marks of now, nothing is.
    // (Ana's own first comment is not news to her.)
    let all = news(&w, "Ana", super::inbox::Marks::new());
    assert!(all.responses[0].new);
    assert_eq!(all.responses[0].comments.len(), 2);
    let caught_up = news(&w, "Ana", marks_now(&w));
    assert_eq!(caught_up.counts().sentence(), "nothing new");

    // A changed stance shows what it was.
    let entry = w.ok("Cy", |ws| ws.resolve_draft(did.as_str()));
    let before = marks_now(&w);
    w.ok("Cy", |ws| ws.take_stance(&entry, Stance::Support, None));
    let changed = news(&w, "Bo", before);
    let s = &changed.responses[0].stances[0];
    assert_eq!(
        (s.stance, s.previous),
        (Stance::Support, Some(Stance::Object))
    );
}

#[test]
fn show_lists_under_each_draft_the_stances_taken_on_it() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let first = w.ok("Ana", |ws| ws.new_draft(&rid, "First", "Monthly.\n"));
    let second = w.ok("Ana", |ws| ws.new_draft(&rid, "Second", "Quarterly.\n"));
    for (who, draft, stance) in [
        ("Bo", &first, Stance::Support),
        ("Cy", &second, Stance::Object),
        ("Bo", &second, Stance::Reservations),
    ] {
        let entry = w.ok(who, |ws| ws.resolve_draft(draft.as_str()));
        w.ok(who, |ws| ws.take_stance(&entry, stance, Some("Because.")));
    }
    let view = w.ok("Ana", |ws| ws.show(&rid));
    let on = |id: &ObjectId| -> Vec<(MemberId, Stance)> {
        let draft = view.drafts.iter().find(|d| d.id == id.as_str());
        let stances = draft.map(|d| d.stances.as_slice()).unwrap_or_default();
        stances.iter().map(|s| (s.member, s.stance)).collect()
    };
    assert_eq!(on(&first), [(w.id("Bo"), Stance::Support)]);
    assert_eq!(on(&second).len(), 2, "Cy's objection and Bo's reservations");
    // The same stances as each draft's own view.
    for draft in [&first, &second] {
        let entry = w.ok("Ana", |ws| ws.resolve_draft(draft.as_str()));
        let alone = w.ok("Ana", |ws| ws.draft_view(&entry));
        let alone: Vec<(MemberId, Stance)> =
            alone.stances.iter().map(|s| (s.member, s.stance)).collect();
        assert_eq!(on(draft), alone);
    }
}

#[test]
fn a_discussion_marked_at_heads_this_device_does_not_hold_counts_as_unseen() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let (tid, _) = w.ok("Ana", |ws| ws.start_thread(&rid, "T", Some("Ana's view")));
    w.ok("Bo", |ws| ws.post(&rid, &tid, "Bo's view", None));
    let read = marks_now(&w);
    assert_eq!(news(&w, "Ana", read.clone()).counts().comments, 0);

    // One of the heads was dropped since (a removed member's change): the
    // discussion cannot be read as it was, so all of it is news again.
    let mut dropped = read;
    if let Some(heads) = dropped.get_mut(&DocId::Response(rid.clone()).name()) {
        heads.push(automerge::ChangeHash([7; 32]));
    }
    let inbox = news(&w, "Ana", dropped);
    assert_eq!(inbox.responses.len(), 1);
    let comments: Vec<&str> = inbox.responses[0]
        .comments
        .iter()
        .map(|c| c.author_name.as_str())
        .collect();
    assert_eq!(comments, ["Bo"]);
}

#[test]
fn a_member_counts_once_per_draft_however_their_key_is_spelt() {
    use automerge::ObjType;
    use automerge::transaction::Transactable;

    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let did = w.ok("Ana", |ws| ws.new_draft(&rid, "D", "Text"));
    let entry = w.ok("Bo", |ws| ws.resolve_draft(did.as_str()));
    w.ok("Bo", |ws| {
        ws.take_stance(&entry, Stance::Object, Some("no"))
    });
    // Bo's modified client writes the same stance under other spellings of
    // his id, which a lenient parser would read as the same member.
    let bo = w.id("Bo");
    w.ok("Bo", |ws| {
        let stances = ws.discussion_map(&rid, "stances")?;
        let version = ws.draft_version(&did)?;
        let doc = ws.write(&DocId::Response(rid.clone()))?;
        let spellings = [
            format!("{did}:{}", bo.to_hex().to_uppercase()),
            format!("{did}: {}", bo.to_hex()),
            format!("{did}:{} ", bo.to_hex()),
        ];
        for key in spellings {
            let s = doc.put_object(&stances, key, ObjType::Map)?;
            doc.put(&s, "stance", "object")?;
            doc.put(&s, "reason", "again")?;
            super::doc::put_strings(doc, &s, "version", &version)?;
            doc.put(&s, "at", 1_000i64)?;
        }
        super::doc::commit(doc, "the same stance, spelt otherwise".into(), 1_000);
        Ok(())
    });
    let tally = w.ok("Ana", |ws| ws.tally(&rid));
    assert_eq!(tally.drafts[0].counts.object, 1);
    assert_eq!(w.ok("Ana", |ws| ws.all_stances(&rid)).len(), 1);
}

#[test]
fn a_facilitator_speaks_for_a_member_who_later_confirms_or_replaces_it() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let (tid, _) = w.ok("Fa", |ws| ws.start_thread(&rid, "T", None));
    let did = w.ok("Fa", |ws| ws.new_draft(&rid, "D", "Text"));
    let entry = w.ok("Fa", |ws| ws.resolve_draft(did.as_str()));
    let cy = w.id("Cy");

    // Only a facilitator may, only for a member with write rights, and not
    // for themselves.
    assert!(not_allowed(w.act("Bo", |ws| ws.post_for(
        &rid,
        &tid,
        "x",
        None,
        Some(&cy)
    ))));
    assert!(not_allowed(w.act("Fa", |ws| {
        ws.take_stance_for(&entry, Stance::Support, None, &w.id("Ola"))
    })));
    assert!(invalid(w.act("Fa", |ws| {
        ws.take_stance_for(&entry, Stance::Support, None, &w.id("Fa"))
    })));

    let cid = w.ok("Fa", |ws| {
        ws.post_for(&rid, &tid, "By phone: too far.", None, Some(&cy))
    });
    w.ok("Fa", |ws| {
        ws.take_stance_for(&entry, Stance::Object, Some("Labs"), &cy)
    });

    let shown = w.ok("Bo", |ws| ws.show(&rid));
    let c = &shown.threads[0].comments[0];
    assert_eq!((c.author, c.author_name.as_str()), (cy, "Cy"));
    assert_eq!(c.recorded_by.as_ref().map(|f| f.name.as_str()), Some("Fa"));
    assert!(!c.confirmed);
    let s = &shown.drafts[0].stances[0];
    assert_eq!((s.member, s.stance), (cy, Stance::Object));
    assert_eq!(s.recorded_by.as_ref().map(|f| f.name.as_str()), Some("Fa"));
    // Cy's voice, not Fa's: Cy is heard.
    let tally = w.ok("Bo", |ws| ws.tally(&rid));
    assert!(!tally.not_yet_heard.iter().any(|m| m.member == cy));
    assert_eq!(tally.drafts[0].counts.object, 1);

    // Someone else cannot confirm it; Cy confirms and corrects.
    assert!(not_allowed(
        w.act("Bo", |ws| ws.confirm_comment(&rid, &tid, &cid, None))
    ));
    w.ok("Cy", |ws| {
        ws.confirm_comment(&rid, &tid, &cid, Some("Too far: 200 km."))
    });
    let c = w.ok("Bo", |ws| ws.show(&rid)).threads[0].comments[0].clone();
    assert!(c.confirmed);
    assert_eq!(c.correction.as_deref(), Some("Too far: 200 km."));

    // Cy's own stance replaces the recorded one.
    w.ok("Cy", |ws| ws.take_stance(&entry, Stance::Support, None));
    let stances = w.ok("Bo", |ws| ws.show(&rid)).drafts[0].stances.clone();
    assert_eq!(stances.len(), 1);
    assert_eq!(
        (stances[0].stance, stances[0].recorded_by.is_none()),
        (Stance::Support, true)
    );
}

#[test]
fn nobody_can_block_or_forge_a_members_receipt_or_confirmation() {
    use automerge::ObjType;
    use automerge::transaction::Transactable;

    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let (tid, _) = w.ok("Fa", |ws| ws.start_thread(&rid, "T", None));
    let did = w.ok("Fa", |ws| ws.new_draft(&rid, "D", "Text"));
    let cy = w.id("Cy");
    let cid = w.ok("Fa", |ws| {
        ws.post_for(&rid, &tid, "For Cy.", None, Some(&cy))
    });
    // Bo's modified client writes a receipt and a confirmation "for" Cy.
    w.ok("Bo", |ws| {
        let version = ws.draft_version(&did)?;
        let doc = ws.write(&DocId::Response(rid.clone()))?;
        let fake = doc.put_object(automerge::ROOT, format!("seen:{did}:{cy}:x"), ObjType::Map)?;
        super::doc::put_strings(doc, &fake, "version", &version)?;
        doc.put(&fake, "at", 5_000i64)?;
        super::doc::commit(doc, "a receipt for someone else".into(), 5_000);
        Ok(())
    });
    assert!(
        !w.ok("Ana", |ws| ws.has_seen_drafts(&rid, &cy)),
        "Bo's receipt counted for Cy"
    );
    let shown = w.ok("Ana", |ws| ws.show(&rid));
    assert!(!shown.threads[0].comments[0].confirmed);

    // Cy's own receipt and confirmation replace nothing, so every peer's
    // ownership check accepts them.
    let entry = w.ok("Cy", |ws| ws.resolve_draft(did.as_str()));
    assert!(w.ok("Cy", |ws| ws.acknowledge(&entry)));
    assert!(
        !w.ok("Cy", |ws| ws.acknowledge(&entry)),
        "a second receipt for the same version"
    );
    w.ok("Cy", |ws| ws.confirm_comment(&rid, &tid, &cid, None));
    let doc = MemoryLoader(w.shared.clone())
        .load(&DocId::Response(rid.clone()))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no discussion"));
    let name = DocId::Response(rid.clone()).name();
    for change in doc.clone().get_changes(&[]) {
        crate::trust::ownership::check_ownership(&w.membership, &name, &change)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(w.ok("Ana", |ws| ws.has_seen_drafts(&rid, &cy)));
    assert!(w.ok("Ana", |ws| ws.show(&rid)).threads[0].comments[0].confirmed);
}

#[test]
fn nobody_can_keep_a_member_from_taking_a_stance() {
    use automerge::ObjType;
    use automerge::transaction::Transactable;

    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let did = w.ok("Fa", |ws| ws.new_draft(&rid, "D", "Text"));
    let cy = w.id("Cy");
    // Bo's modified client writes first under the key of Cy's stance, and
    // under keys of the fresh form, one of them too long or in capitals.
    w.ok("Bo", |ws| {
        let stances = ws.discussion_map(&rid, "stances")?;
        let doc = ws.write(&DocId::Response(rid.clone()))?;
        for key in [
            format!("{did}:{cy}"),
            format!("{did}:{cy}:0123456789abcdef"),
            format!("{did}:{cy}:0123456789abcdef00"),
            format!("{did}:{}:0123456789abcdef", cy.to_hex().to_uppercase()),
        ] {
            let fake = doc.put_object(&stances, key, ObjType::Map)?;
            doc.put(&fake, "stance", "object")?;
        }
        super::doc::commit(doc, "stances in Cy's place".into(), 5_000);
        Ok(())
    });
    let shown = w.ok("Ana", |ws| ws.show(&rid));
    assert!(
        shown.drafts[0].stances.is_empty(),
        "Bo's value counted for Cy"
    );

    // Cy's own stance goes under a fresh key, which replaces nothing: every
    // peer's ownership check takes it.
    let entry = w.ok("Cy", |ws| ws.resolve_draft(did.as_str()));
    w.ok("Cy", |ws| ws.take_stance(&entry, Stance::Support, None));
    let doc = MemoryLoader(w.shared.clone())
        .load(&DocId::Response(rid.clone()))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no discussion"));
    let name = DocId::Response(rid.clone()).name();
    for change in doc.clone().get_changes(&[]) {
        crate::trust::ownership::check_ownership(&w.membership, &name, &change)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let stances = w.ok("Ana", |ws| ws.show(&rid)).drafts[0].stances.clone();
    assert_eq!(stances.len(), 1);
    assert_eq!(
        (stances[0].member, stances[0].stance),
        (cy, Stance::Support)
    );

    // Bo still cannot replace Cy's stance, under the key Cy wrote.
    w.ok("Bo", |ws| {
        let stances = ws.discussion_map(&rid, "stances")?;
        let doc = ws.write(&DocId::Response(rid.clone()))?;
        let cys = super::doc::keys(doc, &stances)
            .into_iter()
            .find(|k| k.starts_with(&format!("{did}:{cy}:")) && !k.contains("0123456789abcdef"))
            .unwrap_or_else(|| panic!("Cy's stance is not under a fresh key"));
        doc.put_object(&stances, cys, ObjType::Map)?;
        super::doc::commit(doc, "again".into(), 6_000);
        Ok(())
    });
    let doc = MemoryLoader(w.shared.clone())
        .load(&DocId::Response(rid.clone()))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no discussion"));
    let last = doc
        .clone()
        .get_changes(&[])
        .into_iter()
        .find(|c| c.message().is_some_and(|m| m == "again"))
        .unwrap_or_else(|| panic!("no change"));
    assert!(
        crate::trust::ownership::check_ownership(&w.membership, &name, &last).is_err(),
        "Bo replaced Cy's own stance"
    );
}

/// The memory loader, plus a digest of every draft, counting how many
/// drafts it had to load.
struct DigestLoader {
    docs: MemoryLoader,
    membership: Membership,
    draft_loads: Rc<RefCell<usize>>,
}

impl DocLoader for DigestLoader {
    fn load(&mut self, id: &DocId) -> Result<Option<AutoCommit>, LoadError> {
        if matches!(id, DocId::Draft(_)) {
            *self.draft_loads.borrow_mut() += 1;
        }
        self.docs.load(id)
    }

    fn exists(&mut self, id: &DocId) -> Result<bool, LoadError> {
        Ok(self.docs.0.borrow().contains_key(id))
    }

    fn draft_digest(&mut self, draft: &ObjectId) -> Option<super::digest::DraftDigest> {
        let mut doc = self.docs.load(&DocId::Draft(draft.clone())).ok()??;
        super::digest::DraftDigest::of(&mut doc, &self.membership)
    }
}

#[test]
fn views_read_from_draft_digests_are_the_views_read_from_the_drafts() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let did = w.ok("Bo", |ws| ws.new_draft(&rid, "D", "First text."));
    let other = w.ok("Cy", |ws| ws.new_draft(&rid, "E", "Other text."));
    let entry = w.ok("Bo", |ws| ws.resolve_draft(did.as_str()));
    w.ok("Cy", |ws| {
        ws.take_stance(&entry, Stance::Object, Some("No."))
    });
    w.ok("Fa", |ws| {
        ws.edit_draft(&entry, "First text, edited by Fa.")
    });
    w.ok("Bo", |ws| ws.take_stance(&entry, Stance::Support, None));
    w.ok("Ana", |ws| ws.acknowledge(&entry));
    let other_entry = w.ok("Cy", |ws| ws.resolve_draft(other.as_str()));
    w.ok("Cy", |ws| {
        ws.take_stance(&other_entry, Stance::Support, None)
    });

    let draft_loads = Rc::new(RefCell::new(0));
    let with_digests = |who: &str| {
        let p = &w.people[who];
        Workspace::new(
            w.membership.clone(),
            Box::new(DigestLoader {
                docs: MemoryLoader(w.shared.clone()),
                membership: w.membership.clone(),
                draft_loads: draft_loads.clone(),
            }),
            w.now,
        )
        .with_writer(Writer {
            member: MemberId(p.member.public()),
            actor: ActorId::from(p.device.public().to_vec()),
        })
    };
    let json = |v: &dyn erased::Json| v.json();
    let mut plain = w.workspace("Ana");
    let mut digested = with_digests("Ana");
    let (shown, shown_d) = (
        plain.show(&rid).unwrap_or_else(|e| panic!("{e}")),
        digested.show(&rid).unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(json(&shown), json(&shown_d));
    assert_eq!(shown_d.drafts[0].body, "First text, edited by Fa.");
    assert_eq!(shown_d.drafts[0].authors.len(), 2);
    let (tally, tally_d) = (
        plain.tally(&rid).unwrap_or_else(|e| panic!("{e}")),
        digested.tally(&rid).unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(tally, tally_d);
    // Found by its whole id where its digest says it is listed.
    let found = digested
        .resolve_draft(did.as_str())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.response, rid);
    assert_eq!(*draft_loads.borrow(), 0, "a draft was loaded");

    // A write loads the draft, and what it then reads is the document.
    let mut writing = with_digests("Bo");
    writing
        .edit_draft(&entry, "Bo's text.")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        writing.draft_text(&did).unwrap_or_else(|e| panic!("{e}")),
        "Bo's text."
    );
}

mod erased {
    /// A view as JSON, to compare views that do not implement `PartialEq`.
    pub trait Json {
        fn json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

#[test]
fn one_comment_reads_as_it_does_among_all_the_threads() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let (tid, first) = w.ok("Bo", |ws| ws.start_thread(&rid, "T", Some("First.")));
    let first = first.unwrap_or_else(|| panic!("no first comment"));
    let cy = w.id("Cy");
    let reply = w.ok("Fa", |ws| {
        ws.post_for(&rid, &tid, "For Cy.", Some(first.as_str()), Some(&cy))
    });
    let mut ws = w.workspace("Ana");
    let all = ws.threads(&rid).unwrap_or_else(|e| panic!("{e}"));
    for cid in [&first, &reply] {
        let one = ws
            .comment(&rid, &tid, cid)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("comment {cid} not found"));
        let among = all[0]
            .comments
            .iter()
            .find(|c| c.id == cid.as_str())
            .unwrap_or_else(|| panic!("not among the threads"));
        assert_eq!(
            serde_json::to_string(&one).unwrap_or_default(),
            serde_json::to_string(among).unwrap_or_default()
        );
    }
    // Unknown comment, or a comment id under another thread: none.
    let (other, _) = w.ok("Bo", |ws| ws.start_thread(&rid, "U", None));
    let mut ws = w.workspace("Ana");
    assert!(
        ws.comment(&rid, &other, &first)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
    assert!(
        ws.comment(&rid, &tid, &ObjectId::random())
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
}

#[test]
fn a_members_latest_stance_counts_and_older_ones_stay_in_the_record() {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let did = w.ok("Bo", |ws| ws.new_draft(&rid, "D", "Text."));
    let entry = w.ok("Bo", |ws| ws.resolve_draft(did.as_str()));
    w.ok("Cy", |ws| ws.take_stance(&entry, Stance::Support, None));
    w.ok("Cy", |ws| {
        ws.take_stance(&entry, Stance::Object, Some("Too fast."))
    });
    w.ok("Cy", |ws| {
        ws.take_stance(&entry, Stance::Reservations, None)
    });
    let stances = w.ok("Ana", |ws| ws.show(&rid)).drafts[0].stances.clone();
    assert_eq!(stances.len(), 1);
    assert_eq!(stances[0].stance, Stance::Reservations);
    assert_eq!(stances[0].reason, None);
    let tally = w.ok("Ana", |ws| ws.tally(&rid));
    assert_eq!(tally.drafts[0].counts.reservations, 1);
    assert_eq!(tally.drafts[0].counts.object, 0);
    // Three objects under three fresh keys: nothing was overwritten.
    let keys = w.ok("Ana", |ws| {
        let stances = ws.discussion_map(&rid, "stances")?;
        let (doc, _) = ws.discussion(&rid)?;
        Ok(super::doc::keys(doc, &stances))
    });
    assert_eq!(keys.len(), 3, "{keys:?}");
}

#[test]
fn nobody_can_keep_a_member_from_endorsing() {
    use automerge::ObjType;
    use automerge::transaction::Transactable;

    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let did = w.ok("Bo", |ws| ws.new_draft(&rid, "D", "Our answer."));
    let entry = w.ok("Bo", |ws| ws.resolve_draft(did.as_str()));
    w.ok("Cy", |ws| ws.take_stance(&entry, Stance::Support, None));
    w.ok("Fa", |ws| ws.publish(&rid, &did, w.key("Fa")));
    let cy = w.id("Cy");
    // Bo's modified client writes first where Cy's endorsement once went.
    w.ok("Bo", |ws| {
        let endorsements = ws.discussion_map(&rid, "endorsements")?;
        let doc = ws.write(&DocId::Response(rid.clone()))?;
        let fake = doc.put_object(&endorsements, cy.to_hex(), ObjType::Map)?;
        doc.put(&fake, "stance", "object")?;
        super::doc::commit(doc, "an endorsement in Cy's place".into(), 5_000);
        Ok(())
    });
    let outcome = w
        .ok("Ana", |ws| ws.outcome(&rid))
        .unwrap_or_else(|| panic!("published"));
    assert!(outcome.endorsements.is_empty(), "Bo's value counted for Cy");

    // Cy's endorsement replaces nothing: every peer's ownership check takes it.
    w.ok("Cy", |ws| ws.endorse(&rid, w.key("Cy"), None));
    let doc = MemoryLoader(w.shared.clone())
        .load(&DocId::Response(rid.clone()))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no discussion"));
    let name = DocId::Response(rid.clone()).name();
    for change in doc.clone().get_changes(&[]) {
        crate::trust::ownership::check_ownership(&w.membership, &name, &change)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let outcome = w
        .ok("Ana", |ws| ws.outcome(&rid))
        .unwrap_or_else(|| panic!("published"));
    assert_eq!(outcome.endorsements.len(), 1);
    assert_eq!(
        (
            outcome.endorsements[0].member,
            outcome.endorsements[0].stance.as_str()
        ),
        (cy, "support")
    );
    // Once is enough.
    assert!(invalid(w.act("Cy", |ws| ws.endorse(
        &rid,
        w.key("Cy"),
        None
    ))));
}

#[test]
fn nobody_can_keep_a_facilitator_from_publishing_or_deciding() {
    use automerge::ObjType;
    use automerge::transaction::Transactable;

    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let did = w.ok("Bo", |ws| ws.new_draft(&rid, "D", "Our answer."));
    let entry = w.ok("Bo", |ws| ws.resolve_draft(did.as_str()));
    let aid = w.ok("Cy", |ws| {
        ws.propose_amendment(&entry, "answer", "reply", "Plainer.")
    });
    // Cy's modified client writes first where a decision and an outcome
    // once went.
    w.ok("Cy", |ws| {
        let amendments = ws.discussion_map(&rid, "amendments")?;
        let doc = ws.write(&DocId::Response(rid.clone()))?;
        let a = super::doc::map(doc, &amendments, aid.as_str())
            .unwrap_or_else(|| panic!("no amendment"));
        let d = doc.put_object(&a, "decision", ObjType::Map)?;
        doc.put(&d, "state", "accepted")?;
        let o = doc.put_object(automerge::ROOT, "outcome", ObjType::Map)?;
        doc.put(&o, "text", "Cy's text.")?;
        super::doc::commit(doc, "in others' places".into(), 5_000);
        Ok(())
    });
    let shown = w.ok("Ana", |ws| ws.amendments(&rid));
    assert_eq!(shown[0].state, AmendmentState::Proposed, "Cy decided");
    assert!(!w.ok("Ana", |ws| ws.outcome_exists(&rid)), "Cy published");
    // Nor can a facilitator freeze the response with an empty publication.
    w.ok("Ana", |ws| {
        let doc = ws.write(&DocId::Response(rid.clone()))?;
        doc.put_object(
            automerge::ROOT,
            super::doc::fresh_key("outcome"),
            ObjType::Map,
        )?;
        super::doc::commit(doc, "an empty outcome".into(), 5_000);
        Ok(())
    });
    assert!(
        !w.ok("Bo", |ws| ws.outcome_exists(&rid)),
        "an empty publication"
    );

    // And where Fa's record of Bo's stance would once have gone.
    let (bo, fa) = (w.id("Bo"), w.id("Fa"));
    w.ok("Cy", |ws| {
        let stances = ws.discussion_map(&rid, "stances")?;
        let doc = ws.write(&DocId::Response(rid.clone()))?;
        doc.put_object(&stances, format!("{did}:{bo}:by:{fa}"), ObjType::Map)?;
        super::doc::commit(doc, "a record in Fa's place".into(), 5_000);
        Ok(())
    });
    w.ok("Fa", |ws| {
        ws.take_stance_for(&entry, Stance::Support, None, &bo)
    });

    // The rightful record, decision and publication replace nothing.
    w.ok("Bo", |ws| ws.decide_amendment(aid.as_str(), false));
    w.ok("Fa", |ws| ws.publish(&rid, &did, w.key("Fa")));
    let doc = MemoryLoader(w.shared.clone())
        .load(&DocId::Response(rid.clone()))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no discussion"));
    let name = DocId::Response(rid.clone()).name();
    for change in doc.clone().get_changes(&[]) {
        crate::trust::ownership::check_ownership(&w.membership, &name, &change)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let shown = w.ok("Ana", |ws| ws.amendments(&rid));
    assert_eq!(shown[0].state, AmendmentState::Rejected);
    let outcome = w
        .ok("Ana", |ws| ws.outcome(&rid))
        .unwrap_or_else(|| panic!("published"));
    assert_eq!(outcome.text, "Our answer.");
    assert_eq!(outcome.published_by.member, w.id("Fa"));
    let recorded = &outcome.tally;
    assert!(recorded.to_string().contains("\"support\":1"), "{recorded}");
}

#[test]
fn fields_read_in_one_pass_are_exactly_the_authored_ones() {
    use super::doc::{AuthoredFields, authored_int, authored_string};
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ROOT};

    let w = World::new();
    let actor = |who: &str| {
        let mut actor = w.people[who].device.public().to_vec();
        actor.extend_from_slice(&[7; 8]);
        ActorId::from(actor)
    };
    let mut ana = AutoCommit::new().with_actor(actor("Ana"));
    let comment = ana
        .put_object(ROOT, "c", ObjType::Map)
        .unwrap_or_else(|e| panic!("{e}"));
    let put = |doc: &mut AutoCommit, key: &str, value: automerge::ScalarValue| {
        doc.put(&comment, key, value)
            .unwrap_or_else(|e| panic!("{e}"));
    };
    put(&mut ana, "body", "Ana's words".into());
    put(&mut ana, "reply_to", "parent".into());
    put(&mut ana, "at", 5.into());
    put(&mut ana, "kind", 3.into());
    put(&mut ana, "flag", true.into());
    put(&mut ana, "overwritten", "Ana's".into());
    let mut bo = ana.fork().with_actor(actor("Bo"));
    // Concurrent writes: a conflict on `body` and `at`; Bo's `at` is a string.
    put(&mut ana, "body", "Ana's edit".into());
    put(&mut bo, "body", "Bo's words".into());
    put(&mut ana, "at", 6.into());
    put(&mut bo, "at", "soon".into());
    // Bo alone replaces `overwritten` and adds a field of his own.
    put(&mut bo, "overwritten", "Bo's".into());
    put(&mut bo, "extra", "Bo's extra".into());
    ana.merge(&mut bo).unwrap_or_else(|e| panic!("{e}"));

    let keys = [
        "body",
        "reply_to",
        "at",
        "kind",
        "flag",
        "overwritten",
        "extra",
        "none",
    ];
    for who in ["Ana", "Bo", "Cy"] {
        let author = w.id(who);
        let fields = AuthoredFields::read(&ana, &w.membership, &comment, &author);
        for key in keys {
            assert_eq!(
                fields.string(key),
                authored_string(&ana, &w.membership, &comment, key, &author),
                "{who} {key}"
            );
            assert_eq!(
                fields.int(key),
                authored_int(&ana, &w.membership, &comment, key, &author),
                "{who} {key}"
            );
        }
    }
    // And what they read, spelled out.
    let fields = AuthoredFields::read(&ana, &w.membership, &comment, &w.id("Ana"));
    assert_eq!(fields.string("body").as_deref(), Some("Ana's edit"));
    assert_eq!(fields.int("at"), Some(6));
    assert_eq!(fields.string("overwritten"), None);
    assert_eq!(fields.string("extra"), None);
    let fields = AuthoredFields::read(&ana, &w.membership, &comment, &w.id("Bo"));
    assert_eq!(fields.string("body").as_deref(), Some("Bo's words"));
    assert_eq!(fields.string("at").as_deref(), Some("soon"));
    assert_eq!(fields.string("extra").as_deref(), Some("Bo's extra"));
}

/// Loads through `MemoryLoader`, writing down which documents it read.
struct Recording {
    inner: MemoryLoader,
    read: Rc<RefCell<Vec<DocId>>>,
}

impl DocLoader for Recording {
    fn load(&mut self, id: &DocId) -> Result<Option<AutoCommit>, LoadError> {
        self.read.borrow_mut().push(id.clone());
        self.inner.load(id)
    }

    /// Whether a document is here, without reading it (as the store does).
    fn exists(&mut self, id: &DocId) -> Result<bool, LoadError> {
        Ok(self.inner.0.borrow().contains_key(id))
    }
}

/// A workspace on `w`'s documents, and the list of those it reads.
fn recording(w: &World) -> (Workspace, Rc<RefCell<Vec<DocId>>>) {
    let read = Rc::new(RefCell::new(Vec::new()));
    let ws = Workspace::new(
        w.membership.clone(),
        Box::new(Recording {
            inner: MemoryLoader(w.shared.clone()),
            read: read.clone(),
        }),
        w.now,
    );
    (ws, read)
}

/// What arrived since `before` (heads of every document then), as a sync
/// tells it: the marks name only the documents that changed.
fn arrivals(w: &World, who: &str, before: &super::inbox::Marks) -> (String, String, Vec<DocId>) {
    let now = marks_now(w);
    let changed: super::inbox::Marks = now
        .keys()
        .filter(|name| before.get(*name) != now.get(*name))
        .map(|name| (name.clone(), before.get(name).cloned().unwrap_or_default()))
        .collect();
    let changed_ids = changed.keys().filter_map(|n| DocId::parse(n)).collect();
    let then = |marks: &super::inbox::Marks| {
        let loader =
            super::inbox::AtMarks::new(MemoryLoader(w.shared.clone()), marks.clone(), true);
        Workspace::new(w.membership.clone(), Box::new(loader), w.now)
    };
    let everything = w.ok(who, |ws| {
        ws.news_since(&mut then(&changed), Some(w.id(who)))
    });
    let (mut ws, read) = recording(w);
    let arrived = ws
        .arrived_since(&mut then(&changed), Some(w.id(who)), &changed_ids)
        .unwrap_or_else(|e| panic!("{e}"));
    let read = read.borrow().clone();
    (
        everything.counts().sentence(),
        arrived.counts().sentence(),
        read,
    )
}

#[test]
fn receipts_for_several_drafts_at_once_are_those_one_by_one_would_write() {
    let w = World::new();
    let first = w.ok("Ana", |ws| ws.open_response(request()));
    let second = w.ok("Ana", |ws| ws.open_response(request()));
    let drafts = [
        w.ok("Ana", |ws| ws.new_draft(&first, "A", "One.\n")),
        w.ok("Ana", |ws| ws.new_draft(&first, "B", "Two.\n")),
        w.ok("Ana", |ws| ws.new_draft(&second, "C", "Three.\n")),
    ];
    // Cy's stances on the second and third drafts already name their
    // versions: only the first needs a receipt (each response's own
    // stances count for it, not another's).
    let entries: Vec<_> = drafts
        .iter()
        .map(|d| w.ok("Cy", |ws| ws.resolve_draft(d.as_str())))
        .collect();
    for entry in &entries[1..] {
        w.ok("Cy", |ws| ws.take_stance(entry, Stance::Support, None));
    }
    let cy = w.id("Cy");
    assert!(!w.ok("Ana", |ws| ws.has_seen_drafts(&first, &cy)));
    assert!(w.ok("Ana", |ws| ws.has_seen_drafts(&second, &cy)));

    assert_eq!(w.ok("Cy", |ws| ws.acknowledge_all(&entries)), 1);
    assert!(w.ok("Ana", |ws| ws.has_seen_drafts(&first, &cy)));
    assert!(w.ok("Ana", |ws| ws.has_seen_drafts(&second, &cy)));
    // Everything is acknowledged: nothing more to write, one by one or all.
    assert_eq!(w.ok("Cy", |ws| ws.acknowledge_all(&entries)), 0);
    for entry in &entries {
        assert!(!w.ok("Cy", |ws| ws.acknowledge(entry)));
    }
    // A new version of one draft (Cy's stance on it is stale): one receipt.
    w.ok("Ana", |ws| ws.edit_draft(&entries[2], "Three, revised.\n"));
    assert!(!w.ok("Ana", |ws| ws.has_seen_drafts(&second, &cy)));
    assert_eq!(w.ok("Cy", |ws| ws.acknowledge_all(&entries)), 1);
    assert!(w.ok("Ana", |ws| ws.has_seen_drafts(&second, &cy)));
}

#[test]
fn news_read_on_every_core_is_the_news_read_on_one() {
    let mut w = World::new();
    // 2027-01-13T12:00:00Z: every request is due in two days.
    w.now = 1_799_841_600;
    // Enough responses that every thread reads some.
    let mut opened = Vec::new();
    for i in 0..6 {
        let rid = w.ok("Ana", |ws| ws.open_response(request()));
        let (tid, opening) = w.ok("Ana", |ws| {
            ws.start_thread(&rid, &format!("T{i}"), Some("Opening"))
        });
        let opening = opening.unwrap_or_else(|| panic!("the thread has no opening comment"));
        let draft = w.ok("Ana", |ws| ws.new_draft(&rid, "D", "We support it.\n"));
        opened.push((rid, tid, opening, draft));
    }
    let before = marks_now(&w);
    for (i, (rid, tid, opening, draft)) in opened.iter().enumerate() {
        if i == 2 {
            // Touched, with no news for Ana: listed only for its deadline,
            // which is no arrival.
            w.ok("Ana", |ws| ws.post(rid, tid, "Only mine", None));
        }
        if i % 3 == 2 {
            continue; // left quiet
        }
        w.ok("Bo", |ws| {
            ws.post(rid, tid, &format!("Bo on {i}"), Some(opening.as_str()))
        });
        w.ok("Cy", |ws| ws.post(rid, tid, "Cy's view", None));
        // Ana's own words are not news to her.
        w.ok("Ana", |ws| ws.post(rid, tid, "A note", None));
        let entry = w.ok("Cy", |ws| ws.resolve_draft(draft.as_str()));
        w.ok("Cy", |ws| ws.take_stance(&entry, Stance::Support, None));
    }
    w.ok("Fa", |ws| ws.open_response(request()));
    let now = marks_now(&w);
    let changed: super::inbox::Marks = now
        .keys()
        .filter(|name| before.get(*name) != now.get(*name))
        .map(|name| (name.clone(), before.get(name).cloned().unwrap_or_default()))
        .collect();
    let changed_ids: std::collections::BTreeSet<DocId> =
        changed.keys().filter_map(|n| DocId::parse(n)).collect();

    let frozen = std::sync::Arc::new(w.shared.borrow().clone());
    let membership = w.membership.clone();
    let at = w.now;
    // Pairs of workspaces as `convene sync` makes them, reading through
    // loads they share: `reads` counts what reaches the documents.
    let pairs = |shared: &super::shared_loads::LoadedDocs, reads: &ReadCounts| {
        let loader = || {
            let inner = FrozenLoader {
                docs: frozen.clone(),
                reads: reads.clone(),
            };
            super::shared_loads::SharedLoads::new(inner, shared.clone())
        };
        let now = Workspace::new(membership.clone(), Box::new(loader()), at);
        let then_loader = super::inbox::AtMarks::new(loader(), changed.clone(), true);
        let then = Workspace::new(membership.clone(), Box::new(then_loader), at);
        (now, then)
    };
    let reader = Some(w.id("Ana"));
    let json = |inbox: &super::inbox::Inbox| {
        serde_json::to_string(inbox).unwrap_or_else(|e| panic!("{e}"))
    };
    let read_once = |reads: &ReadCounts| {
        let reads = reads.lock().map(|r| r.clone()).unwrap_or_default();
        assert!(reads.values().all(|n| *n == 1), "{reads:?}");
    };
    // What arrived: the responses it touched, and no deadline.
    let (shared, reads) = Default::default();
    let (mut now_ws, mut then_ws) = pairs(&shared, &reads);
    let one = now_ws
        .arrived_since(&mut then_ws, reader, &changed_ids)
        .unwrap_or_else(|e| panic!("{e}"));
    let (shared, reads) = Default::default();
    let every =
        Workspace::news_on_every_core(|| pairs(&shared, &reads), reader, Some(&changed_ids))
            .unwrap_or_else(|e| panic!("{e}"));
    read_once(&reads);
    assert_eq!(json(&every), json(&one));
    assert_eq!(
        every.counts().sentence(),
        "1 new response, 8 comments, 4 stances",
        "{}",
        json(&every)
    );
    assert_eq!(every.responses.len(), 5);
    let replies_to_ana = every
        .responses
        .iter()
        .flat_map(|r| &r.comments)
        .filter(|c| c.reply_to_you)
        .count();
    assert_eq!(replies_to_ana, 4);
    // Everything since the marks: the quiet responses too, for their
    // deadline.
    let (shared, reads) = Default::default();
    let (mut now_ws, mut then_ws) = pairs(&shared, &reads);
    let one = now_ws
        .news_since(&mut then_ws, reader)
        .unwrap_or_else(|e| panic!("{e}"));
    let (shared, reads) = Default::default();
    let every = Workspace::news_on_every_core(|| pairs(&shared, &reads), reader, None)
        .unwrap_or_else(|e| panic!("{e}"));
    read_once(&reads);
    assert_eq!(json(&every), json(&one));
    assert_eq!(every.responses.len(), 7);
    assert!(every.responses.iter().all(|r| r.due.is_some()));
}

#[test]
fn what_arrived_is_counted_from_the_responses_it_touched_alone() {
    let w = World::new();
    let quiet = w.ok("Ana", |ws| ws.open_response(request()));
    let quiet_draft = w.ok("Ana", |ws| ws.new_draft(&quiet, "Q", "Quiet text"));
    let busy = w.ok("Ana", |ws| ws.open_response(request()));
    let (tid, _) = w.ok("Ana", |ws| ws.start_thread(&busy, "T", Some("Opening")));
    let busy_draft = w.ok("Ana", |ws| ws.new_draft(&busy, "D", "We support it.\n"));

    // Comments and a stance: only the busy response is read.
    let before = marks_now(&w);
    w.ok("Bo", |ws| ws.post(&busy, &tid, "A view", None));
    w.ok("Cy", |ws| ws.post(&busy, &tid, "Another", None));
    let entry = w.ok("Cy", |ws| ws.resolve_draft(busy_draft.as_str()));
    w.ok("Cy", |ws| ws.take_stance(&entry, Stance::Support, None));
    let (everything, arrived, read) = arrivals(&w, "Ana", &before);
    assert_eq!(arrived, "2 comments, 1 stance");
    assert_eq!(arrived, everything);
    assert!(!read.contains(&DocId::Response(quiet.clone())), "{read:?}");
    assert!(
        !read.contains(&DocId::Draft(quiet_draft.clone())),
        "{read:?}"
    );

    // A new response (the community document changed) is counted, and
    // the response that did not change is still not read.
    let before = marks_now(&w);
    let fresh = w.ok("Fa", |ws| ws.open_response(request()));
    let (everything, arrived, read) = arrivals(&w, "Ana", &before);
    assert_eq!(arrived, "1 new response");
    assert_eq!(arrived, everything);
    assert!(read.contains(&DocId::Response(fresh)));
    assert!(!read.contains(&DocId::Response(quiet.clone())), "{read:?}");

    // A draft changed: it counts for the response its document names,
    // once that response's discussion confirms it lists the draft; the
    // other response is not read.
    let before = marks_now(&w);
    let entry = w.ok("Bo", |ws| ws.resolve_draft(quiet_draft.as_str()));
    w.ok("Bo", |ws| ws.edit_draft(&entry, "Quiet text, edited"));
    let (everything, arrived, read) = arrivals(&w, "Ana", &before);
    assert_eq!(arrived, "1 draft change");
    assert_eq!(arrived, everything);
    assert!(read.contains(&DocId::Response(quiet.clone())), "{read:?}");
    assert!(!read.contains(&DocId::Response(busy.clone())), "{read:?}");

    // Bo rewrites the draft's name of its response (drafts are co-written)
    // to one that does not list it: every response is compared, and the
    // count is the same.
    let before = marks_now(&w);
    w.ok("Bo", |ws| {
        use automerge::transaction::Transactable;
        let doc = ws.write(&DocId::Draft(quiet_draft.clone()))?;
        doc.put(automerge::ROOT, "response", busy.as_str())?;
        super::doc::commit(doc, "rename".into(), 0);
        Ok(())
    });
    w.ok("Bo", |ws| ws.edit_draft(&entry, "Quiet text, edited twice"));
    let (everything, arrived, read) = arrivals(&w, "Ana", &before);
    assert_eq!(arrived, "1 draft change");
    assert_eq!(arrived, everything);
    assert!(read.contains(&DocId::Response(busy.clone())), "{read:?}");
}

#[test]
fn a_draft_is_found_by_its_whole_id_where_its_document_says_it_is_listed() {
    let w = World::new();
    let first = w.ok("Ana", |ws| ws.open_response(request()));
    let second = w.ok("Ana", |ws| ws.open_response(request()));
    let draft = w.ok("Ana", |ws| ws.new_draft(&first, "D", "Text.\n"));
    w.ok("Ana", |ws| ws.new_draft(&second, "E", "Other.\n"));
    let find = |prefix: &str| {
        let (mut ws, read) = recording(&w);
        let entry = ws.resolve_draft(prefix).unwrap_or_else(|e| panic!("{e}"));
        let read = read.borrow().clone();
        (entry, read.contains(&DocId::Response(second.clone())))
    };
    // A whole id: one discussion read.
    let (entry, read_second) = find(draft.as_str());
    assert_eq!(
        (entry.id.clone(), entry.response.clone()),
        (draft.clone(), first.clone())
    );
    assert!(!read_second);
    // A prefix is checked against every draft.
    let (entry, read_second) = find(&draft.as_str()[..6]);
    assert_eq!(entry.response, first);
    assert!(read_second);
    // Bo rewrites the draft's name of its response (drafts are
    // co-written): the listing is what counts, found by reading them all.
    w.ok("Bo", |ws| {
        use automerge::transaction::Transactable;
        let doc = ws.write(&DocId::Draft(draft.clone()))?;
        doc.put(automerge::ROOT, "response", second.as_str())?;
        super::doc::commit(doc, "rename".into(), 0);
        Ok(())
    });
    let (entry, _) = find(draft.as_str());
    assert_eq!(entry.response, first);
}

/// Cy's stance on `did` as earlier builds wrote it: under `<draft>:<member>`.
fn old_build_stance(w: &World, did: &ObjectId, stance: Stance) {
    let cy = w.id("Cy");
    let entry = w.ok("Cy", |ws| ws.resolve_draft(did.as_str()));
    w.ok("Cy", |ws| {
        ws.write_stance(&entry, format!("{did}:{cy}"), stance, None, "stance".into())
    });
}

/// Bo's modified client replaces Cy's stance on `did` (under the fixed key
/// of earlier builds) with a map of his own.
fn overwrite_cys_old_build_stance(w: &World, rid: &ObjectId, did: &ObjectId) {
    use automerge::ObjType;
    use automerge::transaction::Transactable;

    let cy = w.id("Cy");
    w.ok("Bo", |ws| {
        let stances = ws.discussion_map(rid, "stances")?;
        let doc = ws.write(&DocId::Response(rid.clone()))?;
        let fake = doc.put_object(&stances, format!("{did}:{cy}"), ObjType::Map)?;
        doc.put(&fake, "stance", "object")?;
        super::doc::commit(doc, "in Cy's place".into(), 5_000);
        Ok(())
    });
}

/// A response with a draft, on which Cy supports under the fixed key of
/// earlier builds, and Bo's client overwrote it: (world, response, draft).
fn old_build_stance_overwritten() -> (World, ObjectId, ObjectId) {
    let w = World::new();
    let rid = w.ok("Ana", |ws| ws.open_response(request()));
    let did = w.ok("Fa", |ws| ws.new_draft(&rid, "D", "Text"));
    old_build_stance(&w, &did, Stance::Support);
    overwrite_cys_old_build_stance(&w, &rid, &did);
    (w, rid, did)
}

#[test]
fn news_reads_a_stance_of_earlier_builds_from_the_history_before_the_marks() {
    let (w, _, did) = old_build_stance_overwritten();
    let read = marks_now(&w);
    // After the marks, Cy writes again: the news is a change of stance.
    // (Cy's later map, found in a history that runs past the marks, has
    // no fields yet as of the marks.)
    old_build_stance(&w, &did, Stance::Reservations);
    let inbox = news(&w, "Ana", read);
    let stances: Vec<(MemberId, Stance, Option<Stance>)> = inbox.responses[0]
        .stances
        .iter()
        .map(|s| (s.member, s.stance, s.previous))
        .collect();
    let cy = w.id("Cy");
    assert_eq!(stances, [(cy, Stance::Reservations, Some(Stance::Support))]);
}

#[test]
fn a_stance_under_the_fixed_key_of_earlier_builds_is_found_in_history_once_overwritten() {
    let (w, rid, _) = old_build_stance_overwritten();
    let shown = w.ok("Ana", |ws| ws.show(&rid));
    let stances: Vec<(MemberId, Stance)> = shown.drafts[0]
        .stances
        .iter()
        .map(|s| (s.member, s.stance))
        .collect();
    assert_eq!(stances, [(w.id("Cy"), Stance::Support)]);
}
