//! How a session ends while its store changes under it: `serve` runs
//! several sessions on one store, and a local command may write while a
//! `sync` runs, so a side can find new changes to send just as its peer
//! has finished.

use std::collections::VecDeque;

use super::harness::{Rng, sync_pair};
use super::memory::MemoryReplica;
use super::tests::replica;
use super::{Frame, Session};
use crate::trust::fixture::community;

const DOCS: [&str; 2] = ["response-00a1", "response-00a2"];

/// What a session with a write in the middle came to.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Both sides finished, with nothing sent to a side that had stopped
    /// reading; `wrote` says whether the write happened in the session.
    Cleanly { wrote: bool },
    /// One side was left waiting, or sent to a side that had finished.
    Stranded(String),
}

/// A session between `a` and `b` whose frames arrive in runs of one to
/// three, in an order `rng` picks (as `harness::run_pair` delivers them),
/// where A's store gets a new change (another session's, say) just before
/// A handles the `nth` frame it receives (with those that arrived with it). A side that is done stops
/// reading, as `net::link` does: a frame sent to it is never read.
fn session_with_a_write(
    a: &mut MemoryReplica,
    b: &mut MemoryReplica,
    devices: (crate::trust::DeviceId, crate::trust::DeviceId),
    nth: usize,
    rng: &mut Rng,
) -> Ended {
    let (mut sa, mut sb) = (Session::new(devices.1), Session::new(devices.0));
    let mut to_b: VecDeque<Frame> = sa.start(a).into();
    let mut to_a: VecDeque<Frame> = sb.start(b).into();
    let (mut frames_to_a, mut wrote) = (0, false);
    for _ in 0..10_000 {
        if sa.is_done() && sb.is_done() {
            if !to_a.is_empty() || !to_b.is_empty() {
                return Ended::Stranded("a frame was sent to a side that had finished".into());
            }
            return Ended::Cleanly { wrote };
        }
        let a_turn = match (
            to_a.is_empty() || sa.is_done(),
            to_b.is_empty() || sb.is_done(),
        ) {
            (true, true) => return Ended::Stranded("one side waits for a frame".into()),
            (false, true) => true,
            (true, false) => false,
            (false, false) => rng.below(2) == 0,
        };
        let take = 1 + rng.below(3) as usize;
        let answer = if a_turn {
            let count = take.min(to_a.len());
            let arrived: Vec<Frame> = to_a.drain(..count).collect();
            if (frames_to_a + 1..=frames_to_a + count).contains(&nth) {
                a.write(DOCS[0], "meanwhile", 7)
                    .unwrap_or_else(|e| panic!("{e}"));
                wrote = true;
            }
            frames_to_a += count;
            let mut out = Vec::new();
            if let Err(e) = sa.handle_all(a, arrived, &mut out) {
                return Ended::Stranded(format!("A failed: {e}"));
            }
            out
        } else {
            let count = take.min(to_b.len());
            let arrived: Vec<Frame> = to_b.drain(..count).collect();
            let mut out = Vec::new();
            if let Err(e) = sb.handle_all(b, arrived, &mut out) {
                return Ended::Stranded(format!("B failed: {e}"));
            }
            out
        };
        if a_turn { &mut to_b } else { &mut to_a }.extend(answer);
    }
    Ended::Stranded("too many steps".into())
}

/// Whether `replica`'s document `doc` holds the key `key`.
fn holds(replica: &mut MemoryReplica, doc: &str, key: &str) -> bool {
    replica
        .all_values()
        .get(doc)
        .is_some_and(|json| json.contains(&format!("\"{key}\"")))
}

/// A change written while a session runs never leaves it stranded: one
/// written before the end goes in the same session; one that reaches a side
/// after its last `Idle` waits for the next session, which brings it. Sent
/// at once, it could reach a peer that has finished (its `Idle` answered
/// ours, or crossed it and it finishes on reading ours), the session would
/// end in an error, and the `sync` report would say it failed.
#[test]
fn a_change_written_during_a_session_goes_in_it_or_waits_for_the_next() {
    let c = community(2);
    let devices = (c.device(0), c.device(1));
    let (mut stranded, mut went_at_once, mut waited) = (Vec::new(), 0, 0);
    for seed in 1..=30u64 {
        for nth in 1..=10 {
            let (mut a, mut b) = (replica(&c, 0), replica(&c, 1));
            for doc in DOCS {
                a.write(doc, "first", 0).unwrap_or_else(|e| panic!("{e}"));
            }
            sync_pair(&mut a, devices.0, &mut b, devices.1, &mut Rng(5))
                .unwrap_or_else(|e| panic!("{e}"));
            // Each side has something the other lacks: both send content.
            a.write(DOCS[0], "from a", 1)
                .unwrap_or_else(|e| panic!("{e}"));
            b.write(DOCS[1], "from b", 2)
                .unwrap_or_else(|e| panic!("{e}"));
            let at = format!("seed {seed}, frame {nth}");
            match session_with_a_write(&mut a, &mut b, devices, nth, &mut Rng(seed)) {
                Ended::Cleanly { wrote: false } => {
                    assert_eq!(a.all_heads(), b.all_heads(), "{at}: not converged");
                }
                Ended::Cleanly { wrote: true } => {
                    // What each side had before the session went across in
                    // it; only the change written during it may wait.
                    assert!(holds(&mut b, DOCS[0], "from a"), "{at}: B lacks A's change");
                    assert!(holds(&mut a, DOCS[1], "from b"), "{at}: A lacks B's change");
                    if holds(&mut b, DOCS[0], "meanwhile") {
                        assert_eq!(a.all_heads(), b.all_heads(), "{at}: not converged");
                        went_at_once += 1;
                    } else {
                        waited += 1;
                    }
                    sync_pair(&mut a, devices.0, &mut b, devices.1, &mut Rng(seed))
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(a.all_heads(), b.all_heads(), "{at}");
                    assert_eq!(a.all_values(), b.all_values(), "{at}");
                }
                Ended::Stranded(why) => stranded.push(format!("{at}: {why}")),
            }
        }
    }
    assert!(stranded.is_empty(), "{stranded:#?}");
    // Both cases happened.
    assert!(went_at_once > 0, "no write went in its own session");
    assert!(waited > 0, "no write landed at a session's end");
}
