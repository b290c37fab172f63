//! The sync core with many simulated peers, no sockets: seeded random edits,
//! partitions and reconnections; every run must end with identical heads and
//! values everywhere, and bad input must be refused with nothing applied.

use automerge::ChangeHash;

use super::frame::decode;
use super::harness::{
    Faults, Rng, STALLED, run_pair, sync_pair, sync_pair_faulty, sync_pair_speaking,
    sync_pair_tampered,
};
use super::memory::MemoryReplica;
use super::together_tests::syncs_with_changes;
use super::{Frame, Replica, Session, SyncError, whole};
use crate::trust::signed_change::ChangeSignature;
use crate::trust::{Certificate, DeviceId, SecretKey, VerifiedCert};

use crate::trust::fixture::{TestCommunity as Community, community};

pub(super) fn replica(c: &Community, i: usize) -> MemoryReplica {
    MemoryReplica::new(
        c.id,
        c.certs.clone(),
        SecretKey::from_bytes(c.devices[i].to_bytes()),
        [i as u8; 8],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn assert_converged(replicas: &mut [MemoryReplica]) {
    let heads: Vec<_> = replicas.iter_mut().map(|r| r.all_heads()).collect();
    let values: Vec<_> = replicas.iter_mut().map(|r| r.all_values()).collect();
    for i in 1..replicas.len() {
        assert_eq!(heads[i], heads[0], "heads of replica {i}");
        assert_eq!(values[i], values[0], "values of replica {i}");
    }
}

const DOCS: [&str; 3] = ["community", "response-00aa", "draft-00bb"];

#[test]
fn a_large_catch_up_travels_in_frames_below_the_batch_limit() {
    let c = community(2);
    let mut rng = Rng(11);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    // B holds a little of the document, so it comes change by change (a
    // peer that holds none of it gets it whole).
    b.write(DOCS[1], "b", 0).unwrap_or_else(|e| panic!("{e}"));
    let text = "a long comment that takes room ".repeat(20);
    for i in 0..120 {
        a.write(DOCS[1], &format!("{text}{i}"), i as i64)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    const LIMIT: usize = 8 * 1024;
    let (a_device, b_device) = (
        DeviceId(c.devices[0].public()),
        DeviceId(c.devices[1].public()),
    );
    let mut sa = Session::with_batch_bytes(b_device, LIMIT);
    let mut sb = Session::with_batch_bytes(a_device, LIMIT);
    let mut sync_frames = Vec::new();
    let (sa_stats, sb_stats) = run_pair(&mut sa, &mut a, &mut sb, &mut b, &mut rng, &mut |wire| {
        if let Ok(Frame::Sync { signatures, .. }) = decode(&wire[4..]) {
            sync_frames.push((wire.len(), signatures.len()));
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sa_stats.sent_changes, 120);
    assert_eq!(sb_stats.received_changes, 120);
    let carrying: Vec<_> = sync_frames.iter().filter(|(_, n)| *n > 0).collect();
    assert!(
        carrying.len() >= 5,
        "split into several frames: {carrying:?}"
    );
    // A frame holds at most the limit in changes, plus heads, a Bloom
    // filter and 96 bytes of signature per change.
    for (len, n) in &carrying {
        assert!(*len <= LIMIT + 2048 + 96 * n, "{len} bytes for {n} changes");
    }
    assert_converged(&mut [a, b]);
}

#[test]
fn batches_keep_causal_order_and_cover_every_change() {
    let c = community(1);
    let mut a = replica(&c, 0);
    for i in 0..50 {
        a.write(DOCS[0], &"x".repeat(i * 10), i as i64)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let changes: Vec<_> = a
        .doc(DOCS[0])
        .unwrap_or_else(|e| panic!("{e}"))
        .get_changes(&[]);
    for limit in [1, 100, 1_000, 10_000, usize::MAX] {
        let parts = super::session::batches(&changes, limit);
        let joined: Vec<_> = parts
            .iter()
            .flat_map(|p| p.iter())
            .map(|c| c.hash())
            .collect();
        let all: Vec<_> = changes.iter().map(|c| c.hash()).collect();
        assert_eq!(joined, all, "limit {limit}");
        for part in &parts {
            let bytes: usize = part.iter().map(|c| c.raw_bytes().len()).sum();
            assert!(part.len() == 1 || bytes <= limit, "limit {limit}: {bytes}");
        }
    }
}

#[test]
fn two_peers_converge_on_every_document() {
    let c = community(2);
    let mut rng = Rng(7);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    for i in 0..20 {
        a.write(DOCS[i % 3], &format!("a{i}"), i as i64)
            .unwrap_or_else(|e| panic!("{e}"));
        b.write(DOCS[(i + 1) % 3], &format!("b{i}"), i as i64)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let (sa, sb) = sync_pair(
        &mut a,
        DeviceId(c.devices[0].public()),
        &mut b,
        DeviceId(c.devices[1].public()),
        &mut rng,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sa.received_changes, 20);
    assert_eq!(sb.received_changes, 20);
    assert_eq!(sa.sent_changes, 20);
    let mut both = [a, b];
    assert_converged(&mut both);
    // A second session moves nothing.
    let [mut a, mut b] = both;
    let (sa, sb) = sync_pair(
        &mut a,
        DeviceId(c.devices[0].public()),
        &mut b,
        DeviceId(c.devices[1].public()),
        &mut rng,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((sa.received_changes, sb.received_changes), (0, 0));
}

#[test]
fn many_peers_with_partitions_converge() {
    for seed in 1..=12u64 {
        let n = 2 + (seed as usize % 4);
        let c = community(n);
        let mut rng = Rng(seed * 7919);
        let mut peers: Vec<MemoryReplica> = (0..n).map(|i| replica(&c, i)).collect();
        let devices: Vec<DeviceId> = c.devices.iter().map(|d| DeviceId(d.public())).collect();
        for round in 0..8 {
            for (i, peer) in peers.iter_mut().enumerate() {
                for _ in 0..rng.below(4) {
                    let doc = DOCS[rng.below(3) as usize];
                    // Members own their keys in the community and discussion
                    // documents; drafts are co-written, so keys are shared.
                    let key = if doc.starts_with("draft-") {
                        format!("k{}", rng.below(6))
                    } else {
                        format!("p{i}k{}", rng.below(6))
                    };
                    peer.write(doc, &key, (round * 100 + i) as i64)
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            }
            // A partition: only some random pairs talk this round.
            for _ in 0..rng.below(n as u64) {
                let i = rng.below(n as u64) as usize;
                let j = rng.below(n as u64) as usize;
                if i == j {
                    continue;
                }
                let (x, y) = if i < j { (i, j) } else { (j, i) };
                let (left, right) = peers.split_at_mut(y);
                sync_pair(
                    &mut left[x],
                    devices[x],
                    &mut right[0],
                    devices[y],
                    &mut rng,
                )
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            }
        }
        // Heal: a chain there and back reaches everyone.
        let chain: Vec<usize> = (0..n - 1).chain((0..n - 1).rev()).collect();
        for x in chain {
            let (left, right) = peers.split_at_mut(x + 1);
            sync_pair(
                &mut left[x],
                devices[x],
                &mut right[0],
                devices[x + 1],
                &mut rng,
            )
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        assert_converged(&mut peers);
    }
}

#[test]
fn certificates_travel_before_changes() {
    let c = community(3);
    let mut rng = Rng(3);
    let devices: Vec<DeviceId> = c.devices.iter().map(|d| DeviceId(d.public())).collect();
    // B knows only the founder's certificates; C is unknown to B.
    let founder_only: Vec<VerifiedCert> = c.certs.iter().take(2).cloned().collect();
    let mut a = replica(&c, 0);
    let mut b = MemoryReplica::new(
        c.id,
        founder_only,
        SecretKey::from_bytes(c.devices[1].to_bytes()),
        [1; 8],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut cc = replica(&c, 2);
    cc.write("community", "from_c", 1)
        .unwrap_or_else(|e| panic!("{e}"));
    sync_pair(&mut a, devices[0], &mut cc, devices[2], &mut rng).unwrap_or_else(|e| panic!("{e}"));
    // B does not know its own device yet: A refuses it... so B learns from A
    // only once A's certificates include B, which they do; B's view grows.
    let (_, sb) = sync_pair(&mut a, devices[0], &mut b, devices[1], &mut rng)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(sb.certificates >= 4, "{sb:?}");
    assert_eq!(sb.received_changes, 1);
    assert_eq!(sb.held_back, 0);
    let mut all = [a, b, cc];
    assert_converged(&mut all);
}

#[test]
fn a_forged_signature_ends_the_session_and_nothing_is_applied() {
    let c = community(2);
    let mut rng = Rng(5);
    let devices: Vec<DeviceId> = c.devices.iter().map(|d| DeviceId(d.public())).collect();
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    a.write("community", "x", 1)
        .unwrap_or_else(|e| panic!("{e}"));
    // Replace the stored signature with one made by another key.
    let heads = a.all_heads();
    let hash = heads["community"][0];
    let forger = SecretKey::generate();
    let forged = crate::trust::signed_change::sign_change(&forger, &c.id, "community", &hash.0);
    let change = a
        .doc("community")
        .ok()
        .and_then(|d| d.get_change_by_hash(&hash))
        .unwrap_or_else(|| panic!("change"));
    a.persist("community", &[(forged, change)])
        .unwrap_or_else(|e| panic!("{e}"));
    let result = sync_pair(&mut a, devices[0], &mut b, devices[1], &mut rng);
    assert!(
        matches!(result, Err(SyncError::Refused(ref m)) if m.contains("bad signature")),
        "{:?}",
        result.err()
    );
    assert!(
        b.all_heads().values().all(|h| h.is_empty()),
        "nothing of it is applied"
    );
    let _: ChangeSignature = forged;
}

#[test]
fn a_non_member_device_is_refused() {
    let c = community(2);
    let mut rng = Rng(11);
    let mut a = replica(&c, 0);
    let stranger = SecretKey::generate();
    let mut s = MemoryReplica::new(
        c.id,
        c.certs.clone(),
        SecretKey::from_bytes(stranger.to_bytes()),
        [9; 8],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    a.write("community", "secret", 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let result = sync_pair(
        &mut a,
        DeviceId(c.devices[0].public()),
        &mut s,
        DeviceId(stranger.public()),
        &mut rng,
    );
    assert!(result.is_err());
    assert!(
        s.all_heads().values().all(|h| h.is_empty()),
        "the stranger received nothing"
    );
}

#[test]
fn another_communitys_peer_is_refused() {
    let c = community(2);
    let other = community(2);
    let mut rng = Rng(13);
    let mut a = replica(&c, 0);
    let mut o = replica(&other, 1);
    let result = sync_pair(
        &mut a,
        DeviceId(c.devices[0].public()),
        &mut o,
        DeviceId(other.devices[1].public()),
        &mut rng,
    );
    assert!(
        matches!(result, Err(SyncError::Refused(_))),
        "{:?}",
        result.err()
    );
}

/// The founder's removal of member `i`, keeping the changes `kept` of
/// the community document.
fn removal(c: &Community, i: usize, kept: Vec<ChangeHash>) -> Certificate {
    c.removal(i, "community", kept.iter().map(|h| h.to_string()).collect())
}

/// Founder A, member B and member M; M wrote "before", which A holds, then
/// A removed M, then M wrote "late" and gave it to `b` only.
fn late_change_reaches(b: &mut MemoryReplica, c: &Community, rng: &mut Rng) -> MemoryReplica {
    let mut a = replica(c, 0);
    let mut m = replica(c, 2);
    m.write("community", "before", 1)
        .unwrap_or_else(|e| panic!("{e}"));
    sync_pair(&mut a, c.device(0), &mut m, c.device(2), rng).unwrap_or_else(|e| panic!("{e}"));
    let kept = m.all_heads()["community"].clone();
    a.add_certificates(&[removal(c, 2, kept)])
        .unwrap_or_else(|e| panic!("{e}"));
    m.write("community", "late", 2)
        .unwrap_or_else(|e| panic!("{e}"));
    sync_pair(b, c.device(1), &mut m, c.device(2), rng).unwrap_or_else(|e| panic!("{e}"));
    assert!(b.all_values()["community"].contains("late"));
    // And M itself can no longer sync with A.
    assert!(sync_pair(&mut a, c.device(0), &mut m, c.device(2), rng).is_err());
    a
}

#[test]
fn a_removed_members_late_change_is_dropped_once_the_removal_is_known() {
    let c = community(3);
    let mut rng = Rng(17);
    let mut b = replica(&c, 1);
    let mut a = late_change_reaches(&mut b, &c, &mut rng);
    let (sa, _) = sync_pair(&mut a, c.device(0), &mut b, c.device(1), &mut rng)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sa.received_changes, 0);
    let mut both = [a, b];
    assert_converged(&mut both);
    let values = both[0].all_values();
    assert!(values["community"].contains("before"));
    assert!(
        !values["community"].contains("late"),
        "{}",
        values["community"]
    );
}

#[test]
fn a_removed_members_late_change_is_held_back_from_a_peer_that_ignores_the_removal() {
    let c = community(3);
    let mut rng = Rng(19);
    let mut b = replica(&c, 1).ignoring_removals();
    let mut a = late_change_reaches(&mut b, &c, &mut rng);
    let (sa, _) = sync_pair(&mut a, c.device(0), &mut b, c.device(1), &mut rng)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sa.held_back, 1);
    let values = a.all_values();
    assert!(values["community"].contains("before"));
    assert!(
        !values["community"].contains("late"),
        "{}",
        values["community"]
    );
}

#[test]
fn an_answer_to_a_removed_members_late_change_keeps_it_everywhere() {
    let c = community(4);
    let mut rng = Rng(29);
    let mut b = replica(&c, 1);
    let mut a = late_change_reaches(&mut b, &c, &mut rng);
    // B, not yet aware of the removal, answers on top of M's late change.
    b.write("community", "answer", 3)
        .unwrap_or_else(|e| panic!("{e}"));
    let (sa, _) = sync_pair(&mut a, c.device(0), &mut b, c.device(1), &mut rng)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((sa.received_changes, sa.held_back), (2, 0), "{sa:?}");
    // A fourth member who never met B gets both from A.
    let mut d = replica(&c, 3);
    sync_pair(&mut d, c.device(3), &mut a, c.device(0), &mut rng).unwrap_or_else(|e| panic!("{e}"));
    let mut all = [a, b, d];
    assert_converged(&mut all);
    let values = all[2].all_values();
    assert!(
        values["community"].contains("answer"),
        "{}",
        values["community"]
    );
    assert!(
        values["community"].contains("late"),
        "{}",
        values["community"]
    );
}

#[test]
fn a_change_overwriting_another_members_value_is_held_back() {
    let c = community(3);
    let mut rng = Rng(23);
    let devices: Vec<DeviceId> = c.devices.iter().map(|d| DeviceId(d.public())).collect();
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    let mut cc = replica(&c, 2);
    a.write("response-00aa", "stance", 1)
        .unwrap_or_else(|e| panic!("{e}"));
    sync_pair(&mut a, devices[0], &mut b, devices[1], &mut rng).unwrap_or_else(|e| panic!("{e}"));
    // B overwrites A's value in a discussion document, and in a draft.
    b.write("response-00aa", "stance", 666)
        .unwrap_or_else(|e| panic!("{e}"));
    a.write("draft-00bb", "text", 1)
        .unwrap_or_else(|e| panic!("{e}"));
    sync_pair(&mut a, devices[0], &mut b, devices[1], &mut rng).unwrap_or_else(|e| panic!("{e}"));
    b.write("draft-00bb", "text", 2)
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, sc) = sync_pair(&mut b, devices[1], &mut cc, devices[2], &mut rng)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sc.held_back, 1, "{sc:?}");
    let values = cc.all_values();
    assert!(
        values["response-00aa"].contains("\"stance\":1"),
        "{}",
        values["response-00aa"]
    );
    // Co-editing a draft is not overwriting someone's words.
    assert!(
        values["draft-00bb"].contains("\"text\":2"),
        "{}",
        values["draft-00bb"]
    );
}

#[test]
fn sessions_end_when_frames_are_lost_or_duplicated_and_a_clean_one_converges() {
    let c = community(2);
    let (mut ended, mut stalled, mut failed, mut completed) = (0, 0, 0, 0);
    for seed in 1..=300u64 {
        let mut rng = Rng(seed);
        let mut a = replica(&c, 0);
        let mut b = replica(&c, 1);
        for i in 0..(seed % 7) as usize {
            a.write(DOCS[i % 3], &format!("a{i}"), i as i64)
                .unwrap_or_else(|e| panic!("{e}"));
            b.write(DOCS[(i + 1) % 3], &format!("b{i}"), i as i64)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let faults = Faults {
            lose: seed % 20,
            duplicate: (seed / 20) % 20,
        };
        // Every session ends, well or not, within the step bound (the
        // harness reports "too many steps" otherwise), and nothing panics.
        match sync_pair_faulty(&mut a, c.device(0), &mut b, c.device(1), &mut rng, faults) {
            Ok(_) => completed += 1,
            Err(SyncError::Protocol(m)) if m == STALLED => stalled += 1,
            Err(SyncError::Protocol(m)) if m.contains("too many steps") => {
                panic!("seed {seed}: the session did not end: {faults:?}")
            }
            Err(_) => failed += 1,
        }
        ended += 1;
        // A clean session afterwards converges whatever the faulty one did.
        sync_pair(&mut a, c.device(0), &mut b, c.device(1), &mut rng)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_converged(&mut [a, b]);
    }
    assert_eq!(ended, 300);
    // The faults did bite, in every way.
    assert!(
        completed > 0 && stalled > 0 && failed > 0,
        "{completed} {stalled} {failed}"
    );
}

#[test]
fn a_remembered_state_naming_a_change_we_lack_is_set_aside() {
    let c = community(2);
    let (da, db) = (
        DeviceId(c.devices[0].public()),
        DeviceId(c.devices[1].public()),
    );
    let mut rng = Rng(11);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    b.write("response-00aa", "first", 1)
        .unwrap_or_else(|e| panic!("{e}"));
    sync_pair(&mut a, da, &mut b, db, &mut rng).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        a.remembered_shared_heads(db, "response-00aa")
            .is_some_and(|heads| !heads.is_empty()),
        "a finished session leaves its shared heads remembered"
    );
    b.write("response-00aa", "second", 2)
        .unwrap_or_else(|e| panic!("{e}"));
    // What A remembers sharing with B names a change A does not hold: a
    // damaged state file, or a log whose tail a repair cut since.
    a.remember_shared_heads(db, "response-00aa", vec![ChangeHash([7; 32])]);
    let (sa, _) = sync_pair(&mut a, da, &mut b, db, &mut rng).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sa.received_changes, 1);
    assert_converged(&mut [a, b]);
}

#[test]
fn a_peer_whose_state_names_a_change_we_lack_gets_one_reset_per_message_and_converges() {
    let c = community(2);
    let (da, db) = (
        DeviceId(c.devices[0].public()),
        DeviceId(c.devices[1].public()),
    );
    let mut rng = Rng(5);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    for i in 0..30 {
        b.write(DOCS[i % 3], &format!("b{i}"), i as i64)
            .unwrap_or_else(|e| panic!("{e}"));
        a.write(DOCS[(i + 1) % 3], &format!("a{i}"), i as i64)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // B believes A holds its latest change of each document, which A does
    // not (as when A dropped a removed member's late change, or restored an
    // older copy).
    for doc in DOCS {
        let heads = b.doc(doc).unwrap_or_else(|e| panic!("{e}")).get_heads();
        b.remember_shared_heads(da, doc, heads);
    }
    let mut sa = Session::new(db);
    let mut sb = Session::new(da);
    let mut frames = 0;
    run_pair(&mut sa, &mut a, &mut sb, &mut b, &mut rng, &mut |_| {
        frames += 1
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_converged(&mut [a, b]);
    // Each side speaks once per message received, plus the opening and
    // closing frames: no flood of resets.
    assert!(frames < 40, "{frames} frames");
}

#[test]
fn a_peer_restored_from_an_older_copy_is_sent_only_what_it_lacks() {
    let c = community(2);
    let (da, db) = (
        DeviceId(c.devices[0].public()),
        DeviceId(c.devices[1].public()),
    );
    let mut rng = Rng(9);
    let mut a = replica(&c, 0);
    // The same device, twice: its copy now, and a backup taken earlier.
    let mut now = replica(&c, 1);
    let mut backup = replica(&c, 1);
    for i in 0..5 {
        a.write("response-00aa", &format!("k{i}"), i)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    sync_pair(&mut a, da, &mut backup, db, &mut rng).unwrap_or_else(|e| panic!("{e}"));
    for i in 5..10 {
        a.write("response-00aa", &format!("k{i}"), i)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    sync_pair(&mut a, da, &mut now, db, &mut rng).unwrap_or_else(|e| panic!("{e}"));
    // A remembers sharing all ten with that device, which comes back with
    // the backup's five.
    let (sa, sb) =
        sync_pair(&mut a, da, &mut backup, db, &mut rng).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((sa.sent_changes, sb.received_changes), (5, 5));
    assert_converged(&mut [a, backup]);
}

#[test]
fn a_peer_that_holds_nothing_of_a_document_receives_it_whole() {
    let c = community(3);
    let mut rng = Rng(41);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    for i in 0..40 {
        for doc in DOCS {
            a.write(doc, &format!("a{i}"), i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    b.write(DOCS[0], "b", 1).unwrap_or_else(|e| panic!("{e}"));
    let (a_device, b_device) = (c.device(0), c.device(1));
    let (mut sa, mut sb) = (Session::new(b_device), Session::new(a_device));
    let (mut whole, mut carrying) = (Vec::new(), 0);
    let (sa_stats, sb_stats) =
        run_pair(
            &mut sa,
            &mut a,
            &mut sb,
            &mut b,
            &mut rng,
            &mut |wire| match decode(&wire[4..]) {
                Ok(Frame::Whole { docs }) => whole.extend(docs.into_iter().map(|d| d.doc)),
                Ok(Frame::Sync { signatures, .. }) if !signatures.is_empty() => carrying += 1,
                _ => {}
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // The two documents B lacks travel whole; the one it holds part of
    // goes change by change.
    whole.sort();
    assert_eq!(whole, vec![DOCS[2].to_string(), DOCS[1].to_string()]);
    assert!(carrying >= 1);
    assert_eq!(sb_stats.received_changes, 120);
    assert_eq!(sa_stats.sent_changes, 120);
    assert_eq!(sa_stats.received_changes, 1);
    // What arrived whole is shared, and remembered so.
    assert!(
        b.remembered_shared_heads(a_device, DOCS[1])
            .is_some_and(|heads| !heads.is_empty())
    );
    let mut both = [a, b];
    assert_converged(&mut both);
    // B can build on it, and a third member gets B's changes too.
    let [mut a, mut b] = both;
    b.write(DOCS[1], "b-after", 2)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut d = replica(&c, 2);
    sync_pair(&mut b, c.device(1), &mut d, c.device(2), &mut rng).unwrap_or_else(|e| panic!("{e}"));
    let (sa, _) =
        sync_pair(&mut a, a_device, &mut b, b_device, &mut rng).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sa.received_changes, 1);
    assert_converged(&mut [a, b, d]);
}

#[test]
fn a_peer_speaking_protocol_1_gets_documents_change_by_change() {
    let c = community(2);
    let mut rng = Rng(43);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    for i in 0..10 {
        a.write(DOCS[1], &format!("a{i}"), i)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut whole = 0;
    let (_, sb) = sync_pair_speaking(
        &mut a,
        c.device(0),
        &mut b,
        c.device(1),
        &mut rng,
        1,
        &mut |_, frame| {
            if matches!(
                frame,
                Frame::Whole { .. } | Frame::Delta { .. } | Frame::Lacking { .. }
            ) {
                whole += 1;
            }
            frame
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(whole, 0);
    assert_eq!(sb.received_changes, 10);
    assert_converged(&mut [a, b]);
}

/// Rewrites a `Whole` frame's change chunks and signatures.
type WholeTamper = dyn FnMut(&mut Vec<u8>, &mut Vec<([u8; 32], Vec<u8>)>);

/// Sync `a` (holding a discussion and a draft) into an empty `b`, with
/// `tamper` applied to the `Whole` frame of document `only`; the error, if
/// any, and `b`.
fn whole_tampered(only: &str, tamper: &mut WholeTamper) -> (Result<(), SyncError>, MemoryReplica) {
    let c = community(2);
    let mut rng = Rng(47);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    // A discussion and a draft (whose changes are checked from their
    // metadata).
    for doc in &DOCS[1..] {
        for i in 0..10 {
            a.write(doc, &format!("a{i}"), i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let result = sync_pair_tampered(
        &mut a,
        c.device(0),
        &mut b,
        c.device(1),
        &mut rng,
        &mut |_, frame| match frame {
            Frame::Whole { mut docs } => {
                for doc in &mut docs {
                    if doc.doc == only {
                        tamper(&mut doc.changes, &mut doc.signatures);
                    }
                }
                Frame::Whole { docs }
            }
            other => other,
        },
    );
    (result.map(|_| ()), b)
}

/// Each tampering, applied to a discussion and then to a draft sent whole,
/// ends the session as an integrity refusal with nothing of it kept.
fn each_is_refused_with_nothing_kept<const N: usize>(cases: [&mut WholeTamper; N]) {
    for (i, tamper) in cases.into_iter().enumerate() {
        for doc in &DOCS[1..] {
            let (result, mut b) = whole_tampered(doc, tamper);
            assert!(
                matches!(&result, Err(e) if e.is_integrity()),
                "case {i}, {doc}: {result:?}"
            );
            assert!(
                b.all_heads().get(*doc).is_none_or(|heads| heads.is_empty()),
                "case {i}, {doc}"
            );
        }
    }
}

#[test]
fn a_whole_document_with_a_forged_or_missing_signature_is_refused_and_nothing_is_kept() {
    let forged: [&mut WholeTamper; 4] = [
        &mut |_, sigs| sigs[3].1[10] ^= 1,
        &mut |_, sigs| {
            sigs.remove(5);
        },
        // A signature by the right device, over another change.
        &mut |_, sigs| sigs[0].1 = sigs[1].1.clone(),
        &mut |_, sigs| sigs[2].1.truncate(63),
    ];
    each_is_refused_with_nothing_kept(forged);
}

#[test]
fn a_whole_document_that_is_not_its_intact_complete_signed_changes_is_refused() {
    // The blob without its `k`th change chunk.
    fn without(blob: &mut Vec<u8>, k: usize) {
        let chunks: Vec<Vec<u8>> = super::chunks::split(blob)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|(_, bytes)| bytes.to_vec())
            .collect();
        *blob = chunks
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != k)
            .flat_map(|(_, c)| c.clone())
            .collect();
    }
    let broken: [&mut WholeTamper; 7] = [
        &mut |blob, _| blob.truncate(blob.len() / 2),
        &mut |blob, _| blob.extend_from_slice(b"trailing"),
        &mut |blob, _| {
            let middle = blob.len() / 2;
            blob[middle] ^= 0x55;
        },
        &mut |blob, _| blob.clear(),
        // A gap in its history: a change whose dependency is missing.
        &mut |blob, _| without(blob, 0),
        &mut |blob, _| without(blob, 4),
        // A change listed twice.
        &mut |blob, _| {
            let first = super::chunks::split(blob)
                .unwrap_or_else(|e| panic!("{e}"))
                .first()
                .map(|(_, bytes)| bytes.to_vec())
                .unwrap_or_default();
            blob.extend(first);
        },
    ];
    each_is_refused_with_nothing_kept(broken);
}

#[test]
fn the_same_change_in_two_documents_is_checked_against_each_ones_signature() {
    let c = community(2);
    let mut rng = Rng(53);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    // B holds something of both documents, so both go change by change.
    for doc in &DOCS[..2] {
        b.write(doc, "b", 1).unwrap_or_else(|e| panic!("{e}"));
    }
    // A's first change is byte for byte the same in both documents (same
    // author, content and empty history): same hash, two signatures.
    for doc in &DOCS[..2] {
        a.write(doc, "same", 7).unwrap_or_else(|e| panic!("{e}"));
    }
    let hash =
        |r: &mut MemoryReplica, doc: &str| r.doc(doc).unwrap_or_else(|e| panic!("{e}")).get_heads();
    assert_eq!(hash(&mut a, DOCS[0]), hash(&mut a, DOCS[1]));
    let (_, sb) = sync_pair(&mut a, c.device(0), &mut b, c.device(1), &mut rng)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sb.received_changes, 2);
    assert_converged(&mut [a, b]);
}

#[test]
fn a_document_too_large_to_go_whole_goes_change_by_change() {
    let c = community(2);
    let mut rng = Rng(59);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    // About 9 MiB of changes: over the whole-document limit.
    let long = "x".repeat(100 << 10);
    for i in 0..90 {
        a.write(DOCS[1], &format!("{long}{i}"), i)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    a.write(DOCS[0], "small", 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut sa, mut sb) = (Session::new(c.device(1)), Session::new(c.device(0)));
    let mut whole = Vec::new();
    let (_, sb_stats) = run_pair(&mut sa, &mut a, &mut sb, &mut b, &mut rng, &mut |wire| {
        if let Ok(Frame::Whole { docs }) = decode(&wire[4..]) {
            whole.extend(docs.into_iter().map(|d| d.doc));
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(whole, vec![DOCS[0].to_string()]);
    assert_eq!(sb_stats.received_changes, 91);
    assert_converged(&mut [a, b]);
}

#[test]
fn a_whole_document_with_a_change_held_back_here_goes_change_by_change() {
    let c = community(3);
    let mut rng = Rng(61);
    let (mut a, mut b, mut cc) = (replica(&c, 0), replica(&c, 1), replica(&c, 2));
    a.write("response-00aa", "stance", 1)
        .unwrap_or_else(|e| panic!("{e}"));
    a.write("response-00aa", "other", 2)
        .unwrap_or_else(|e| panic!("{e}"));
    sync_pair(&mut a, c.device(0), &mut b, c.device(1), &mut rng).unwrap_or_else(|e| panic!("{e}"));
    // B overwrites A's value: B keeps its own write, others hold it back.
    b.write("response-00aa", "stance", 666)
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut sb, mut sc) = (Session::new(c.device(2)), Session::new(c.device(1)));
    let (mut whole, mut carrying) = (0, 0);
    let (_, sc_stats) =
        run_pair(
            &mut sb,
            &mut b,
            &mut sc,
            &mut cc,
            &mut rng,
            &mut |wire| match decode(&wire[4..]) {
                Ok(Frame::Whole { docs }) => whole += docs.len(),
                Ok(Frame::Sync { signatures, .. }) if !signatures.is_empty() => carrying += 1,
                _ => {}
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(whole, 1, "offered whole");
    assert!(carrying >= 1, "then sent change by change");
    assert_eq!((sc_stats.received_changes, sc_stats.held_back), (2, 1));
    let values = cc.all_values();
    assert!(
        values["response-00aa"].contains("\"stance\":1"),
        "{}",
        values["response-00aa"]
    );
}

#[test]
fn whole_documents_in_many_small_frames_both_ways_all_arrive() {
    let c = community(3);
    for seed in 1..=20u64 {
        let mut rng = Rng(seed);
        let (mut a, mut b, mut m) = (replica(&c, 0), replica(&c, 1), replica(&c, 2));
        // A document A holds in which A overwrote M's value: B holds that
        // change back, so it falls back to change by change.
        m.write("response-fff0", "stance", 1)
            .unwrap_or_else(|e| panic!("{e}"));
        sync_pair(&mut a, c.device(0), &mut m, c.device(2), &mut rng)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        a.write("response-fff0", "stance", 666)
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..12 {
            a.write(&format!("response-{i:04x}"), "a", i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for i in 100..104 {
            b.write(&format!("response-{i:04x}"), "b", i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // One document per frame, one or two frames in flight.
        let mut sa = Session::with_whole_frames(c.device(1), 1, 1 + seed % 2);
        let mut sb = Session::with_whole_frames(c.device(0), 1, 1);
        let mut frames = 0;
        let (_, sb_stats) = run_pair(&mut sa, &mut a, &mut sb, &mut b, &mut rng, &mut |wire| {
            if let Ok(Frame::Whole { docs }) = decode(&wire[4..]) {
                assert_eq!(docs.len(), 1);
                frames += 1;
            }
        })
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(frames, 12 + 4 + 1, "seed {seed}");
        assert_eq!(sb_stats.held_back, 1, "seed {seed}");
        let (a_docs, b_docs) = (a.all_heads(), b.all_heads());
        assert_eq!(a_docs.len(), 17, "seed {seed}");
        assert_eq!(b_docs.len(), 17, "seed {seed}");
        for (name, heads) in &a_docs {
            if name != "response-fff0" {
                assert_eq!(Some(heads), b_docs.get(name), "seed {seed}: {name}");
            }
        }
    }
}

#[test]
fn a_whole_frame_naming_documents_never_announced_is_ignored() {
    let c = community(2);
    let mut rng = Rng(67);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    a.write(DOCS[1], "a", 1).unwrap_or_else(|e| panic!("{e}"));
    let (_, sb) = sync_pair_tampered(
        &mut a,
        c.device(0),
        &mut b,
        c.device(1),
        &mut rng,
        &mut |_, frame| match frame {
            Frame::Whole { mut docs } => {
                // The same document again, and many it never announced.
                let first = docs[0].clone();
                docs.push(first.clone());
                for i in 0..5_000 {
                    docs.push(whole::WholeDoc {
                        doc: format!("response-{i:04x}"),
                        ..first.clone()
                    });
                }
                Frame::Whole { docs }
            }
            other => other,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sb.received_changes, 1);
    assert_eq!(b.all_heads().len(), 1);
    assert_converged(&mut [a, b]);
}

#[test]
fn the_first_whole_frame_leaves_alone_and_the_window_fills_ahead() {
    let c = community(2);
    let (mut a, mut b) = (replica(&c, 0), replica(&c, 1));
    for i in 0..6 {
        a.write(&format!("response-{i:04x}"), "a", i)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // One document per frame, five content frames in flight: the
    // certificates and heads frames count until the peer acknowledges them,
    // which leaves three whole frames.
    let mut sa = Session::with_whole_frames(c.device(1), 1, 5);
    let mut sb = Session::new(c.device(0));
    let mut to_a: std::collections::VecDeque<Frame> = sb.start(&mut b).into();
    let mut to_b: std::collections::VecDeque<Frame> = sa.start(&mut a).into();
    // Nothing to read ahead before the heads are known.
    assert!(matches!(sa.send_ahead(&mut a), Ok(None)));
    loop {
        if let Some(frame) = to_b.pop_front() {
            to_a.extend(sb.handle(&mut b, frame).unwrap_or_else(|e| panic!("{e}")));
            continue;
        }
        let frame = to_a
            .pop_front()
            .unwrap_or_else(|| panic!("A waits for nothing"));
        let out = sa.handle(&mut a, frame).unwrap_or_else(|e| panic!("{e}"));
        let wholes = out
            .iter()
            .filter(|f| matches!(f, Frame::Whole { .. }))
            .count();
        if wholes == 0 {
            to_b.extend(out);
            continue;
        }
        assert_eq!(wholes, 1, "handle answered with more than one whole frame");
        let mut ahead = 0;
        while let Some(frame) = sa.send_ahead(&mut a).unwrap_or_else(|e| panic!("{e}")) {
            assert!(matches!(frame, Frame::Whole { .. }), "{frame:?}");
            ahead += 1;
        }
        assert_eq!(ahead, 2, "the window holds three whole frames");
        break;
    }
}

/// A replica that writes down which documents are loaded ahead and which
/// are read, and remembers a (blank) sync state for every document. What
/// it writes down can be shared with whatever else a test records.
pub(super) struct Recording<'a> {
    pub(super) inner: &'a mut MemoryReplica,
    pub(super) calls: Calls,
}

/// A shared record of calls, in the order they were made.
pub(super) type Calls = std::rc::Rc<std::cell::RefCell<Vec<String>>>;

impl Replica for Recording<'_> {
    fn membership(&self) -> &crate::trust::Membership {
        self.inner.membership()
    }
    fn certificates(&self) -> Vec<Vec<u8>> {
        self.inner.certificates()
    }
    fn add_certificates(&mut self, certs: &[Certificate]) -> Result<usize, SyncError> {
        self.inner.add_certificates(certs)
    }
    fn doc_names(&mut self) -> Result<Vec<String>, SyncError> {
        self.inner.doc_names()
    }
    fn doc(&mut self, name: &str) -> Result<&mut automerge::AutoCommit, SyncError> {
        self.calls.borrow_mut().push(format!("doc {name}"));
        self.inner.doc(name)
    }
    fn docs_mut(&mut self, names: &[String]) -> Result<Vec<&mut automerge::AutoCommit>, SyncError> {
        self.calls
            .borrow_mut()
            .push(format!("docs {}", names.join(",")));
        self.inner.docs_mut(names)
    }
    fn heads(&mut self, name: &str) -> Result<Vec<ChangeHash>, SyncError> {
        self.inner.heads(name)
    }
    fn load_ahead(&mut self, names: &[String]) {
        self.calls
            .borrow_mut()
            .push(format!("ahead {}", names.join(",")));
    }
    fn whole(&mut self, name: &str) -> Result<Option<whole::WholeDoc>, SyncError> {
        self.inner.whole(name)
    }
    // (As a store tells from its files, without reading the document.)
    fn holds_all(&mut self, name: &str, hashes: &[ChangeHash]) -> Result<bool, SyncError> {
        self.inner.holds_all(name, hashes)
    }
    fn install(&mut self, name: &str, verified: whole::Verified) -> Result<(), SyncError> {
        self.inner.install(name, verified)
    }
    fn signature(&self, doc: &str, hash: &ChangeHash) -> Option<ChangeSignature> {
        self.inner.signature(doc, hash)
    }
    fn persist(
        &mut self,
        doc: &str,
        changes: &[(ChangeSignature, automerge::Change)],
    ) -> Result<(), SyncError> {
        self.inner.persist(doc, changes)
    }
    fn sync_state(&mut self, _peer: &DeviceId, _doc: &str) -> Option<automerge::sync::State> {
        Some(automerge::sync::State::new())
    }
}

#[test]
fn the_documents_to_exchange_are_loaded_ahead_before_any_is_read() {
    let c = community(2);
    let (mut a, mut b) = (replica(&c, 0), replica(&c, 1));
    for doc in [DOCS[1], DOCS[2]] {
        a.write(doc, "a", 1).unwrap_or_else(|e| panic!("{e}"));
        b.write(doc, "b", 2).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut recording = Recording {
        inner: &mut a,
        calls: Calls::default(),
    };
    super::harness::sync_replicas(
        &mut recording,
        c.device(1),
        &mut b,
        c.device(0),
        &mut Rng(3),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let calls = recording.calls.borrow();
    let first_doc = calls.iter().position(|c| c.starts_with("doc "));
    let ahead = calls.iter().position(|c| c.starts_with("ahead "));
    assert!(ahead.is_some() && ahead < first_doc, "{calls:?}");
    let expected = format!("ahead {},{}", DOCS[2], DOCS[1]);
    assert!(calls.contains(&expected), "{calls:?}");
}

/// Run a session in rounds: each side handles every frame the other sent in
/// the last round; `a_sent` sees what each of A's steps sends (its first
/// frames included).
fn in_rounds(
    sa: &mut Session,
    a: &mut MemoryReplica,
    sb: &mut Session,
    b: &mut MemoryReplica,
    a_sent: &mut dyn FnMut(&[Frame]),
) {
    let mut to_b = sa.start(a);
    a_sent(&to_b);
    let mut to_a = sb.start(b);
    for _ in 0..100 {
        if sa.is_done() && sb.is_done() {
            break;
        }
        let mut next_to_a = Vec::new();
        for frame in std::mem::take(&mut to_b) {
            if !sb.is_done() {
                next_to_a.extend(sb.handle(b, frame).unwrap_or_else(|e| panic!("{e}")));
            }
        }
        let mut next_to_b = Vec::new();
        for frame in std::mem::take(&mut to_a) {
            if !sa.is_done() {
                let out = sa.handle(a, frame).unwrap_or_else(|e| panic!("{e}"));
                a_sent(&out);
                next_to_b.extend(out);
            }
        }
        to_a = next_to_a;
        to_b = next_to_b;
    }
}

#[test]
fn a_peer_behind_gets_what_it_lacks_in_the_first_message_and_only_once() {
    let c = community(2);
    let (da, db) = (
        DeviceId(c.devices[0].public()),
        DeviceId(c.devices[1].public()),
    );
    let mut rng = Rng(17);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    for i in 0..5 {
        a.write("response-00aa", &format!("k{i}"), i)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    sync_pair(&mut a, da, &mut b, db, &mut rng).unwrap_or_else(|e| panic!("{e}"));
    for i in 5..12 {
        a.write("response-00aa", &format!("k{i}"), i)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // The first message A sends for the document already carries B's
    // seven missing changes (not a Bloom filter to answer first). (As a
    // peer of protocol 2 gets them; protocol 3 sends them in a `Delta`.)
    let mut sa = Session::new(db).speaking(2);
    let mut sb = Session::new(da).speaking(2);
    let mut first_to_b: Option<usize> = None;
    in_rounds(&mut sa, &mut a, &mut sb, &mut b, &mut |out| {
        for frame in out {
            if let Frame::Sync {
                doc, signatures, ..
            } = frame
                && doc == "response-00aa"
                && first_to_b.is_none()
            {
                first_to_b = Some(signatures.len());
            }
        }
    });
    assert!(sa.is_done() && sb.is_done(), "the session did not end");
    assert_eq!(first_to_b, Some(7));
    assert_eq!(sa.stats().sent_changes, 7, "sent once");
    assert_eq!(sb.stats().received_changes, 7);
    assert_converged(&mut [a, b]);
}

#[test]
fn a_peer_behind_on_many_documents_gets_them_a_batch_per_step() {
    let c = community(2);
    let (da, db) = (
        DeviceId(c.devices[0].public()),
        DeviceId(c.devices[1].public()),
    );
    let mut rng = Rng(23);
    let mut a = replica(&c, 0);
    let mut b = replica(&c, 1);
    let docs = [
        "response-00a1",
        "response-00a2",
        "response-00a3",
        "response-00a4",
    ];
    for doc in docs {
        a.write(doc, "first", 0).unwrap_or_else(|e| panic!("{e}"));
    }
    sync_pair(&mut a, da, &mut b, db, &mut rng).unwrap_or_else(|e| panic!("{e}"));
    for doc in docs {
        for i in 0..6 {
            a.write(doc, &format!("k{i}"), i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    // A batch of one byte: each step of A's sends the changes of one
    // document at most, and the session still ends with B holding all.
    let mut sa = Session::with_batch_bytes(db, 1);
    let mut sb = Session::new(da);
    in_rounds(&mut sa, &mut a, &mut sb, &mut b, &mut |out| {
        let carrying = syncs_with_changes(out)
            .into_iter()
            .collect::<std::collections::BTreeSet<&str>>()
            .len();
        assert!(carrying <= 1, "{carrying} documents' changes in one step");
    });
    assert!(sa.is_done() && sb.is_done(), "the session did not end");
    assert_eq!(sb.stats().received_changes, 24);
    assert_converged(&mut [a, b]);
}
