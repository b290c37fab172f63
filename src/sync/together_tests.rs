//! Frames that arrive together (`Session::handle_all`), and what a session
//! asks Automerge for between frames (`Session::generate_sync`).

use super::harness::{Rng, sync_pair};
use super::memory::MemoryReplica;
use super::tests::{Calls, Recording, replica};
use super::{Frame, Replica, Session, SyncError};
use crate::trust::DeviceId;
use crate::trust::fixture::{TestCommunity as Community, community};

const DOCS: [&str; 4] = [
    "response-00a1",
    "response-00a2",
    "response-00a3",
    "response-00a4",
];

fn devices(c: &Community) -> (DeviceId, DeviceId) {
    (c.device(0), c.device(1))
}

/// A and B share every document of `DOCS`, then A writes `more` changes to
/// each: B is behind on all of them.
fn behind_on_every_doc(c: &Community, more: i64) -> (MemoryReplica, MemoryReplica) {
    let (da, db) = devices(c);
    let (mut a, mut b) = (replica(c, 0), replica(c, 1));
    for doc in DOCS {
        a.write(doc, "first", 0).unwrap_or_else(|e| panic!("{e}"));
    }
    sync_pair(&mut a, da, &mut b, db, &mut Rng(5)).unwrap_or_else(|e| panic!("{e}"));
    for doc in DOCS {
        for i in 0..more {
            a.write(doc, &format!("k{i}"), i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    (a, b)
}

/// Sessions between A and B (devices `da`, `db`) that speak protocol 2,
/// as devices of an earlier build do: a peer behind gets its changes in
/// `Sync` frames, which these tests are about (protocol 3 sends them in a
/// `Delta`: `delta_tests`).
fn change_by_change(da: DeviceId, db: DeviceId) -> (Session, Session) {
    (Session::new(db).speaking(2), Session::new(da).speaking(2))
}

/// `frames` handled together by `session`: what it answers.
fn all(session: &mut Session, replica: &mut dyn Replica, frames: Vec<Frame>) -> Vec<Frame> {
    let mut out = Vec::new();
    session
        .handle_all(replica, frames, &mut out)
        .unwrap_or_else(|e| panic!("{e}"));
    out
}

/// Both sessions to the end, each side handling all that the other sent in
/// the last round at once; `b_round` sees each round B handles and what B
/// answers it.
fn together(
    (sa, a): (&mut Session, &mut dyn Replica),
    (sb, b): (&mut Session, &mut dyn Replica),
    b_round: &mut dyn FnMut(&[Frame], &[Frame]),
) {
    let mut to_b = sa.start(a);
    let mut to_a = sb.start(b);
    for _ in 0..100 {
        if sa.is_done() && sb.is_done() {
            return;
        }
        let got = std::mem::take(&mut to_b);
        let next_to_a = if sb.is_done() || got.is_empty() {
            Vec::new()
        } else {
            let out = all(sb, b, got.clone());
            b_round(&got, &out);
            out
        };
        let got = std::mem::take(&mut to_a);
        if !sa.is_done() && !got.is_empty() {
            to_b = all(sa, a, got);
        }
        to_a = next_to_a;
    }
    panic!("the session did not end");
}

/// The documents of the `Sync` frames among `frames` that carry changes.
pub(super) fn syncs_with_changes(frames: &[Frame]) -> Vec<&str> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Sync {
                doc, signatures, ..
            } if !signatures.is_empty() => Some(doc.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn frames_for_several_documents_that_arrive_together_are_applied_at_once_and_answered_once() {
    let c = community(2);
    let (da, db) = devices(&c);
    let (mut a, mut b) = behind_on_every_doc(&c, 6);
    let (mut sa, mut sb) = change_by_change(da, db);
    let mut recording = Recording {
        inner: &mut b,
        calls: Calls::default(),
    };
    let mut runs = 0;
    together(
        (&mut sa, &mut a),
        (&mut sb, &mut recording),
        &mut |got, answer| {
            if syncs_with_changes(got).len() < 2 {
                return;
            }
            runs += 1;
            // One answer for the run: at most a message per document, and
            // no `Idle` among them.
            let mut answered: Vec<&str> = answer
                .iter()
                .filter_map(|f| match f {
                    Frame::Sync { doc, .. } => Some(doc.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(answered.len(), answer.len(), "{answer:?}");
            answered.sort();
            answered.dedup();
            assert_eq!(answered.len(), answer.len(), "{answer:?}");
        },
    );
    assert_eq!(runs, 1, "A's four documents arrive in one round");
    // The four documents were applied together (each on a core).
    let together = format!("docs {}", DOCS.join(","));
    let calls = recording.calls.borrow();
    assert!(calls.contains(&together), "{calls:?}");
    assert_eq!(sb.stats().received_changes, 24);
    assert_eq!(sa.stats().sent_changes, 24);
    assert_eq!(a.all_heads(), b.all_heads());
    assert_eq!(a.all_values(), b.all_values());
}

/// Hello, certificates and heads, each side handling the other's frames one
/// by one; returns A's first sync frames to B, and B's to A.
fn to_first_syncs(
    (sa, a): (&mut Session, &mut MemoryReplica),
    (sb, b): (&mut Session, &mut MemoryReplica),
) -> (Vec<Frame>, Vec<Frame>) {
    let (mut to_b, mut to_a) = (sa.start(a), sb.start(b));
    for _ in 0..3 {
        let mut next_to_a = Vec::new();
        for frame in std::mem::take(&mut to_b) {
            next_to_a.extend(sb.handle(b, frame).unwrap_or_else(|e| panic!("{e}")));
        }
        for frame in std::mem::take(&mut to_a) {
            to_b.extend(sa.handle(a, frame).unwrap_or_else(|e| panic!("{e}")));
        }
        to_a = next_to_a;
    }
    (to_b, to_a)
}

#[test]
fn a_frame_refused_among_others_keeps_what_the_frames_before_it_brought() {
    let c = community(2);
    let (da, db) = devices(&c);
    let (mut a, mut b) = behind_on_every_doc(&c, 3);
    let before = b.all_heads();
    let (mut sa, mut sb) = change_by_change(da, db);
    let (mut frames, _) = to_first_syncs((&mut sa, &mut a), (&mut sb, &mut b));
    assert_eq!(syncs_with_changes(&frames), DOCS, "{frames:?}");
    // The second document's changes come with a forged signature.
    let Some(Frame::Sync { signatures, .. }) = frames.get_mut(1) else {
        panic!("{frames:?}");
    };
    signatures[0].1[0] ^= 1;
    let refused = sb.handle_all(&mut b, frames, &mut Vec::new());
    assert!(
        matches!(refused, Err(SyncError::Refused(ref e)) if e.contains(DOCS[1])),
        "{refused:?}"
    );
    let (ours, theirs) = (b.all_heads(), a.all_heads());
    assert_eq!(ours[DOCS[0]], theirs[DOCS[0]], "the first frame is applied");
    for doc in &DOCS[1..] {
        assert_eq!(ours[*doc], before[*doc], "{doc} is untouched");
    }
    // Kept, with each change's signature: what a store writes durably.
    let kept = b.changes_of(DOCS[0]);
    assert_eq!(kept.len(), 4);
    assert!(kept.iter().all(|(_, sig)| sig.is_some()), "{kept:?}");
    assert_eq!(sb.stats().received_changes, 3);
}

#[test]
fn a_change_written_during_a_session_goes_with_the_next_answer_about_any_document() {
    let c = community(2);
    let (da, db) = devices(&c);
    let (mut a, mut b) = behind_on_every_doc(&c, 2);
    let (mut sa, mut sb) = change_by_change(da, db);
    let (first, mut to_a) = to_first_syncs((&mut sa, &mut a), (&mut sb, &mut b));
    to_a.extend(all(&mut sb, &mut b, first));
    // A has sent its message for the last document, whose sync state no
    // frame about the first document changes, when it writes to it.
    a.write(DOCS[3], "written meanwhile", 7)
        .unwrap_or_else(|e| panic!("{e}"));
    let about_first = to_a
        .iter()
        .position(|f| matches!(f, Frame::Sync { doc, .. } if doc == DOCS[0]))
        .unwrap_or_else(|| panic!("{to_a:?}"));
    let frame = to_a.remove(about_first);
    let mut to_b = all(&mut sa, &mut a, vec![frame]);
    assert_eq!(
        syncs_with_changes(&to_b),
        [DOCS[3]],
        "the new change leaves with the answer: {to_b:?}"
    );
    for _ in 0..50 {
        if sa.is_done() && sb.is_done() {
            break;
        }
        if !to_a.is_empty() && !sa.is_done() {
            let out = all(&mut sa, &mut a, std::mem::take(&mut to_a));
            to_b.extend(out);
        }
        if !to_b.is_empty() && !sb.is_done() {
            let out = all(&mut sb, &mut b, std::mem::take(&mut to_b));
            to_a.extend(out);
        }
    }
    assert!(sa.is_done() && sb.is_done(), "the session did not end");
    assert_eq!(a.all_heads(), b.all_heads());
    assert_eq!(a.all_values(), b.all_values());
}

#[test]
fn whole_documents_from_frames_that_arrive_together_are_kept_together_and_answered_once() {
    let c = community(2);
    let (da, db) = devices(&c);
    let (mut a, mut b) = (replica(&c, 0), replica(&c, 1));
    for doc in DOCS {
        a.write(doc, "first", 0).unwrap_or_else(|e| panic!("{e}"));
    }
    // One document per `Whole` frame, all four in flight at once (with
    // the certificates and heads).
    let mut sa = Session::with_whole_frames(db, 1, 8);
    let mut sb = Session::new(da);
    let (mut to_b, _) = to_first_syncs((&mut sa, &mut a), (&mut sb, &mut b));
    while let Some(next) = sa.send_ahead(&mut a).unwrap_or_else(|e| panic!("{e}")) {
        to_b.push(next);
    }
    let wholes = to_b
        .iter()
        .filter(|f| matches!(f, Frame::Whole { .. }))
        .count();
    assert_eq!(wholes, DOCS.len(), "{to_b:?}");
    let answer = all(&mut sb, &mut b, to_b);
    assert!(
        matches!(answer[..], [Frame::Idle { received }] if received == 2 + DOCS.len() as u64),
        "one answer for the four frames: {answer:?}"
    );
    assert_eq!(sb.stats().received_changes, DOCS.len());
    assert_eq!(a.all_heads(), b.all_heads());
}

/// Writes down each batch of frames handed over (each call to `extend`,
/// what a link hands its writer at once) in a shared record of calls.
struct Handed(Calls);

impl Extend<Frame> for Handed {
    fn extend<I: IntoIterator<Item = Frame>>(&mut self, frames: I) {
        let kinds: Vec<String> = frames.into_iter().map(|f| f.kind()).collect();
        self.0
            .borrow_mut()
            .push(format!("handed {}", kinds.join(", ")));
    }
}

#[test]
fn our_heads_are_handed_over_before_the_messages_the_peers_heads_call_for_are_built() {
    let c = community(2);
    let (da, db) = devices(&c);
    let (mut a, mut b) = behind_on_every_doc(&c, 2);
    let (mut sa, mut sb) = change_by_change(da, db);
    let (to_b, to_a) = (sa.start(&mut a), sb.start(&mut b));
    // A reads B's hello and certificates together, and so sends its
    // certificates and its heads back to back.
    let certificates = all(&mut sa, &mut a, to_a);
    let mut to_a = Vec::new();
    for frame in to_b {
        to_a.extend(sb.handle(&mut b, frame).unwrap_or_else(|e| panic!("{e}")));
    }
    let mut from_a = certificates;
    from_a.extend(all(&mut sa, &mut a, to_a));
    assert!(
        matches!(
            from_a[..],
            [Frame::Certificates { .. }, Frame::Heads { .. }]
        ),
        "{from_a:?}"
    );
    // B handles them together: its heads are handed over on their own,
    // before B reads any document to build what A's heads call for.
    let calls = Calls::default();
    let mut recording = Recording {
        inner: &mut b,
        calls: calls.clone(),
    };
    sb.handle_all(&mut recording, from_a, &mut Handed(calls.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    let calls = calls.borrow();
    let heads = calls.iter().position(|c| c.starts_with("handed heads"));
    let read = calls
        .iter()
        .position(|c| c.starts_with("doc ") || c.starts_with("docs ") || c.starts_with("ahead "));
    let syncs = calls.iter().position(|c| c.starts_with("handed sync"));
    assert!(heads.is_some() && heads < read && read < syncs, "{calls:?}");
}

#[test]
fn the_answer_to_the_peers_heads_is_handed_over_a_document_at_a_time() {
    let c = community(2);
    let (da, db) = devices(&c);
    let (mut a, mut b) = behind_on_every_doc(&c, 2);
    let (mut sa, mut sb) = change_by_change(da, db);
    let (hello_a, hello_b) = (sa.start(&mut a), sb.start(&mut b));
    let certificates_of_a = all(&mut sa, &mut a, hello_b);
    let certificates_of_b = all(&mut sb, &mut b, hello_a);
    let heads_of_a = all(&mut sa, &mut a, certificates_of_b);
    let heads_of_b = all(&mut sb, &mut b, certificates_of_a);
    assert!(
        matches!(heads_of_b[..], [Frame::Heads { .. }]),
        "{heads_of_b:?}"
    );
    assert!(
        matches!(heads_of_a[..], [Frame::Heads { .. }]),
        "{heads_of_a:?}"
    );
    // A, ahead on every document, answers B's heads: each document's
    // changes are handed over on their own, the first before A reads the
    // last document to build its message.
    let calls = Calls::default();
    let mut recording = Recording {
        inner: &mut a,
        calls: calls.clone(),
    };
    let answered = sa
        .handle_all(&mut recording, heads_of_b, &mut Handed(calls.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(answered);
    let calls = calls.borrow();
    let handed: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].starts_with("handed"))
        .collect();
    assert_eq!(handed.len(), DOCS.len(), "{calls:?}");
    for (i, doc) in handed.iter().zip(DOCS) {
        assert_eq!(calls[*i], format!("handed sync {doc} with 2 changes"));
    }
    let last_read = calls.iter().rposition(|c| *c == format!("doc {}", DOCS[3]));
    assert!(last_read > Some(handed[0]), "{calls:?}");
    // Each part goes on after the document before it: the first document
    // is not read again for the parts after it.
    let first_again = calls[handed[0]..]
        .iter()
        .any(|c| *c == format!("doc {}", DOCS[0]));
    assert!(!first_again, "{calls:?}");
}
