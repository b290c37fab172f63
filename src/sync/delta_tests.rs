//! Protocol 3: `Lacking` and `Delta` frames between two replicas in memory
//! (the store's side, a delta kept without loading the document, is in
//! `store::replica_tests`).

use super::chunks::split;
use super::harness::{Rng, sync_pair, sync_pair_speaking, sync_pair_tampered};
use super::memory::MemoryReplica;
use super::tests::replica;
use super::{Frame, SyncError};
use crate::trust::fixture::{TestCommunity as Community, community};

const DOCS: [&str; 3] = ["response-00a1", "response-00a2", "draft-00b1"];

/// A and B share `DOCS`; then A writes `more` changes to each.
fn behind(c: &Community, more: i64) -> (MemoryReplica, MemoryReplica) {
    let (mut a, mut b) = (replica(c, 0), replica(c, 1));
    for doc in DOCS {
        a.write(doc, "first", 0).unwrap_or_else(|e| panic!("{e}"));
    }
    sync_pair(&mut a, c.device(0), &mut b, c.device(1), &mut Rng(5))
        .unwrap_or_else(|e| panic!("{e}"));
    for doc in DOCS {
        for i in 0..more {
            a.write(doc, &format!("k{i}"), i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    (a, b)
}

/// What crossed the wire, by kind (and for `Sync`, with changes or not).
#[derive(Default, Debug)]
struct Seen {
    lacking: Vec<(bool, Vec<String>)>,
    deltas: Vec<(bool, Vec<String>)>,
    syncs_with_changes: usize,
}

fn watch(seen: &mut Seen) -> impl FnMut(bool, Frame) -> Frame + '_ {
    move |from_a, frame| {
        match &frame {
            Frame::Lacking { docs } => seen.lacking.push((from_a, docs.clone())),
            Frame::Delta { docs } => seen
                .deltas
                .push((from_a, docs.iter().map(|d| d.doc.clone()).collect())),
            Frame::Sync { signatures, .. } if !signatures.is_empty() => {
                seen.syncs_with_changes += 1;
            }
            _ => {}
        }
        frame
    }
}

fn assert_same(a: &mut MemoryReplica, b: &mut MemoryReplica) {
    assert_eq!(a.all_heads(), b.all_heads());
    assert_eq!(a.all_values(), b.all_values());
}

#[test]
fn a_peer_behind_names_what_it_lacks_and_gets_it_in_one_delta() {
    let c = community(2);
    let (mut a, mut b) = behind(&c, 5);
    let mut seen = Seen::default();
    let (sa, sb) = sync_pair_tampered(
        &mut a,
        c.device(0),
        &mut b,
        c.device(1),
        &mut Rng(7),
        &mut watch(&mut seen),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut lacking: Vec<String> = DOCS.iter().map(|d| d.to_string()).collect();
    lacking.sort();
    assert!(seen.lacking.contains(&(false, lacking.clone())), "{seen:?}");
    assert!(seen.lacking.contains(&(true, Vec::new())), "{seen:?}");
    let sent: Vec<String> = seen
        .deltas
        .iter()
        .flat_map(|(from_a, docs)| {
            assert!(from_a, "{seen:?}");
            docs.clone()
        })
        .collect();
    assert_eq!(sent, lacking);
    assert_eq!(seen.syncs_with_changes, 0, "{seen:?}");
    assert_eq!((sa.sent_changes, sb.received_changes), (15, 15));
    assert_same(&mut a, &mut b);
}

#[test]
fn documents_both_sides_lack_something_of_go_change_by_change() {
    let c = community(2);
    for seed in 0..8 {
        let (mut a, mut b) = behind(&c, 2);
        // B writes to the first document too: neither holds all the
        // other's heads of it.
        b.write(DOCS[0], "b", 9).unwrap_or_else(|e| panic!("{e}"));
        let mut seen = Seen::default();
        sync_pair_tampered(
            &mut a,
            c.device(0),
            &mut b,
            c.device(1),
            &mut Rng(seed),
            &mut watch(&mut seen),
        )
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(
            seen.lacking.contains(&(true, vec![DOCS[0].to_string()])),
            "{seen:?}"
        );
        assert!(
            seen.deltas
                .iter()
                .all(|(from_a, docs)| *from_a && !docs.contains(&DOCS[0].to_string())),
            "{seen:?}"
        );
        assert!(seen.syncs_with_changes >= 2, "{seen:?}");
        assert_same(&mut a, &mut b);
    }
}

#[test]
fn a_peer_of_protocol_2_gets_no_delta() {
    let c = community(2);
    let (mut a, mut b) = behind(&c, 3);
    let mut seen = Seen::default();
    let (_, sb) = sync_pair_speaking(
        &mut a,
        c.device(0),
        &mut b,
        c.device(1),
        &mut Rng(3),
        2,
        &mut watch(&mut seen),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        seen.lacking.is_empty() && seen.deltas.is_empty(),
        "{seen:?}"
    );
    assert_eq!(sb.received_changes, 9);
    assert_same(&mut a, &mut b);
}

/// Sync B, behind, from A with `tamper` applied to every delta's change
/// chunks and signatures.
/// The session's outcome, A, B, B's heads before, and how many `Sync`
/// frames carried changes.
type Tampered = (
    Result<(), SyncError>,
    MemoryReplica,
    MemoryReplica,
    std::collections::BTreeMap<String, Vec<automerge::ChangeHash>>,
    usize,
);

/// Rewrites a delta's change chunks and signatures.
type DeltaTamper = dyn FnMut(&mut Vec<u8>, &mut Vec<([u8; 32], Vec<u8>)>);

fn tampered(tamper: &mut DeltaTamper) -> Tampered {
    let c = community(2);
    let (mut a, mut b) = behind(&c, 4);
    let before = b.all_heads();
    let mut syncs = 0;
    let result = sync_pair_tampered(
        &mut a,
        c.device(0),
        &mut b,
        c.device(1),
        &mut Rng(11),
        &mut |_, frame| match frame {
            Frame::Delta { mut docs } => {
                for doc in &mut docs {
                    tamper(&mut doc.changes, &mut doc.signatures);
                }
                Frame::Delta { docs }
            }
            frame @ Frame::Sync { .. } => {
                if matches!(&frame, Frame::Sync { signatures, .. } if !signatures.is_empty()) {
                    syncs += 1;
                }
                frame
            }
            other => other,
        },
    );
    (result.map(|_| ()), a, b, before, syncs)
}

#[test]
fn a_delta_with_a_forged_signature_is_refused_and_nothing_of_it_is_kept() {
    let (result, _, mut b, before, _) = tampered(&mut |_, sigs| sigs[1].1[7] ^= 1);
    assert!(matches!(&result, Err(e) if e.is_integrity()), "{result:?}");
    assert_eq!(b.all_heads(), before);
}

#[test]
fn a_delta_missing_a_change_it_builds_on_goes_change_by_change() {
    // Each delta without its first change: the others build on it, and
    // the receiver does not hold it.
    let (result, mut a, mut b, _, syncs) = tampered(&mut |blob, _| {
        let chunks: Vec<Vec<u8>> = split(blob)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .skip(1)
            .map(|(_, bytes)| bytes.to_vec())
            .collect();
        *blob = chunks.concat();
    });
    result.unwrap_or_else(|e| panic!("{e}"));
    assert!(syncs > 0, "no document went change by change");
    assert_same(&mut a, &mut b);
}

#[test]
fn a_delta_for_a_document_not_named_lacking_is_ignored() {
    let c = community(2);
    let (mut a, mut b) = behind(&c, 2);
    // A third document only A holds: it goes whole, never as a delta; a
    // delta naming it (or naming a document twice) changes nothing.
    a.write("response-00a9", "only", 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Seen::default();
    let mut watching = watch(&mut seen);
    sync_pair_tampered(
        &mut a,
        c.device(0),
        &mut b,
        c.device(1),
        &mut Rng(13),
        &mut |from_a, frame| match watching(from_a, frame) {
            Frame::Delta { mut docs } => {
                let mut again = docs.clone();
                for doc in &mut again {
                    doc.doc = "response-00a8".into();
                }
                docs.extend(again);
                docs.extend(docs.clone());
                Frame::Delta { docs }
            }
            other => other,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.all_heads().get("response-00a8"), None);
    assert_same(&mut a, &mut b);
}

#[test]
fn a_document_written_after_our_heads_went_is_sent_change_by_change() {
    use super::Session;
    use std::collections::VecDeque;
    let c = community(2);
    let (mut a, mut b) = behind(&c, 0);
    let (mut sa, mut sb) = (Session::new(c.device(1)), Session::new(c.device(0)));
    let mut to_b: VecDeque<Frame> = sa.start(&mut a).into();
    let mut to_a: VecDeque<Frame> = sb.start(&mut b).into();
    let step = |sa: &mut Session,
                a: &mut MemoryReplica,
                to_a: &mut VecDeque<Frame>,
                to_b: &mut VecDeque<Frame>| {
        if let Some(frame) = to_a.pop_front()
            && !sa.is_done()
        {
            to_b.extend(sa.handle(a, frame).unwrap_or_else(|e| panic!("{e}")));
        }
    };
    // Hellos, then certificates: each side has sent its heads, equal.
    for _ in 0..2 {
        step(&mut sa, &mut a, &mut to_a, &mut to_b);
        step(&mut sb, &mut b, &mut to_b, &mut to_a);
    }
    assert!(to_b.iter().any(|f| matches!(f, Frame::Heads { .. })));
    // A writes before it reads B's heads (`serve` runs sessions side by
    // side): B, which took A's heads for its own, names nothing lacking
    // and would ignore a delta.
    a.write(DOCS[0], "late", 7)
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..200 {
        if sa.is_done() && sb.is_done() {
            break;
        }
        step(&mut sa, &mut a, &mut to_a, &mut to_b);
        step(&mut sb, &mut b, &mut to_b, &mut to_a);
    }
    assert!(sa.is_done() && sb.is_done(), "the session did not end");
    assert_eq!(sb.stats().received_changes, 1, "not in the same session");
    assert_same(&mut a, &mut b);
}
