//! A document sent whole from its history (`super::history`) is exactly
//! the document rebuilt from its loaded snapshot and log, and a history
//! that is not exactly the snapshot's changes is never used.

use std::collections::BTreeSet;
use std::path::Path;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT};

use super::doclog::{DocFiles, LoadedDoc, append, compact, load};
use super::frame::{self, HISTORY_MAGIC};
use super::history::{self, change_hash};
use crate::sync::chunks::split;
use crate::sync::whole::{WholeDoc, prepare};
use crate::trust::fixture::{TestCommunity, community};
use crate::trust::signed_change::{actor_bytes, sign_change};

/// Member `i` writes `count` keys on top of `doc`; the signed records.
fn write(
    c: &TestCommunity,
    i: usize,
    doc: &mut AutoCommit,
    from: usize,
    count: usize,
) -> Vec<(crate::trust::signed_change::ChangeSignature, Vec<u8>)> {
    doc.set_actor(ActorId::from(actor_bytes(&c.device(i), &[i as u8; 8])));
    (from..from + count)
        .map(|k| {
            doc.put(ROOT, format!("k{k}"), k as i64)
                .unwrap_or_else(|e| panic!("{e}"));
            let hash = doc.commit().unwrap_or_else(|| panic!("no change"));
            let change = doc
                .get_change_by_hash(&hash)
                .unwrap_or_else(|| panic!("no change"));
            let sig = sign_change(&c.devices[i], &c.id, "community", &hash.0);
            (sig, change.raw_bytes().to_vec())
        })
        .collect()
}

fn loaded(c: &TestCommunity, files: &DocFiles) -> LoadedDoc {
    load(files, &c.membership(), Some(&c.device(0)), true, 0)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no document"))
}

/// What a whole document carries: each chunk with its hash and signature,
/// sorted; no change twice (the receiver would refuse it).
fn contents(whole: &WholeDoc) -> Vec<(Vec<u8>, [u8; 32], Vec<u8>)> {
    let chunks = split(&whole.changes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(chunks.len(), whole.signatures.len());
    let mut all: Vec<_> = chunks
        .into_iter()
        .zip(&whole.signatures)
        .map(|((_, chunk), (hash, sig))| {
            assert_eq!(change_hash(chunk), Some(*hash));
            (chunk.to_vec(), *hash, sig.clone())
        })
        .collect();
    all.sort();
    let hashes: BTreeSet<[u8; 32]> = all.iter().map(|(_, h, _)| *h).collect();
    assert_eq!(hashes.len(), all.len(), "a change sent twice");
    all
}

/// The document as the slow way sends it: loaded, its changes rebuilt.
fn rebuilt(c: &TestCommunity, files: &DocFiles) -> WholeDoc {
    let mut loaded = loaded(c, files);
    let signatures = loaded.signatures.clone();
    prepare("community", &mut loaded.doc, |h| signatures.get(h).copied())
        .unwrap_or_else(|| panic!("not sendable"))
}

fn from_history(c: &TestCommunity, files: &DocFiles) -> Option<WholeDoc> {
    history::whole(files, &c.membership(), &c.device(0))
}

/// What the slow way does after sending: the history rebuilt.
fn heal(c: &TestCommunity, files: &DocFiles) {
    history::rebuilt(files, &c.membership(), &c.device(0), &rebuilt(c, files));
}

/// A community document with a snapshot (compacted twice, so its history
/// was written and then extended) and two changes in its log since.
fn grown(c: &TestCommunity, dir: &Path) -> (DocFiles, AutoCommit) {
    let files = DocFiles::new(dir, "community");
    let mut doc = AutoCommit::new();
    let mut next = 0;
    for (member, count) in [(1, 5), (2, 4)] {
        append(&files, &write(c, member, &mut doc, next, count)).unwrap_or_else(|e| panic!("{e}"));
        next += count;
        compact(&files, &mut loaded(c, &files), Some(&c.devices[0]), &c.id)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    append(&files, &write(c, 1, &mut doc, next, 2)).unwrap_or_else(|e| panic!("{e}"));
    (files, doc)
}

#[test]
fn a_document_goes_whole_from_its_history_exactly_as_rebuilt_from_it_loaded() {
    let c = community(3);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let files = DocFiles::new(dir.path(), "community");
    let mut doc = AutoCommit::new();
    // A log alone, then a first compaction (a fresh history), changes
    // since, a second compaction (the history extended), changes since.
    append(&files, &write(&c, 1, &mut doc, 0, 3)).unwrap_or_else(|e| panic!("{e}"));
    let check = |step: &str| {
        let fast = from_history(&c, &files).unwrap_or_else(|| panic!("{step}: not from history"));
        assert_eq!(contents(&fast), contents(&rebuilt(&c, &files)), "{step}");
    };
    check("log alone");
    compact(&files, &mut loaded(&c, &files), Some(&c.devices[0]), &c.id)
        .unwrap_or_else(|e| panic!("{e}"));
    check("first compaction");
    append(&files, &write(&c, 2, &mut doc, 3, 2)).unwrap_or_else(|e| panic!("{e}"));
    check("a log since");
    compact(&files, &mut loaded(&c, &files), Some(&c.devices[0]), &c.id)
        .unwrap_or_else(|e| panic!("{e}"));
    check("second compaction");
    append(&files, &write(&c, 1, &mut doc, 5, 2)).unwrap_or_else(|e| panic!("{e}"));
    check("a log since the second");
    // A crash between a compaction's snapshot and its emptied log leaves
    // the log's changes in both, and the history as it was: not used, and
    // rebuilt at the next send, then sent with each change once.
    let log = std::fs::read(&files.log).unwrap_or_else(|e| panic!("{e}"));
    let seal_path = format!("{}.seal", files.log.display());
    let seal = std::fs::read(&seal_path).unwrap_or_else(|e| panic!("{e}"));
    let kept = std::fs::read(&files.history).unwrap_or_else(|e| panic!("{e}"));
    compact(&files, &mut loaded(&c, &files), Some(&c.devices[0]), &c.id)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&files.log, &log).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&seal_path, seal).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&files.history, kept).unwrap_or_else(|e| panic!("{e}"));
    assert!(from_history(&c, &files).is_none());
    heal(&c, &files);
    check("changes in the snapshot and the log");
    // The next compaction extends the rebuilt history.
    append(&files, &write(&c, 2, &mut doc, 7, 2)).unwrap_or_else(|e| panic!("{e}"));
    compact(&files, &mut loaded(&c, &files), Some(&c.devices[0]), &c.id)
        .unwrap_or_else(|e| panic!("{e}"));
    check("compacted after the crash");
}

#[test]
fn a_history_is_used_only_if_it_holds_exactly_the_changes_of_an_attested_snapshot() {
    let c = community(3);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (files, _) = grown(&c, dir.path());
    let expected = contents(&rebuilt(&c, &files));
    assert!(from_history(&c, &files).is_some());
    let kept = std::fs::read(&files.history).unwrap_or_else(|e| panic!("{e}"));
    let parsed = frame::parse(&kept, HISTORY_MAGIC).unwrap_or_else(|e| panic!("{e}"));
    // Two records (two compactions), each deflated.
    assert_eq!(parsed.records.len(), 2);
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for record in &parsed.records {
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::DeflateDecoder::new(*record),
            &mut inflated,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(record.len() < inflated.len());
        let split = split(&inflated).unwrap_or_else(|e| panic!("{e}"));
        chunks.extend(split.into_iter().map(|(_, chunk)| chunk.to_vec()));
    }
    assert_eq!(chunks.len(), 9);

    // Another device's snapshot.
    assert!(history::whole(&files, &c.membership(), &c.device(1)).is_none());

    // Histories that are not the snapshot's changes, each written as a
    // sound file.
    let mut bent_body = chunks.clone();
    let last = bent_body[3].len() - 1;
    bent_body[3][last] ^= 1;
    let mut bent_checksum = chunks.clone();
    bent_checksum[2][5] ^= 1;
    let mut twice = chunks.clone();
    twice[4] = chunks[3].clone();
    let mut with_log_change = chunks.clone();
    let log = std::fs::read(&files.log).unwrap_or_else(|e| panic!("{e}"));
    let log_records = frame::parse(&log, frame::CHANGES_MAGIC).unwrap_or_else(|e| panic!("{e}"));
    with_log_change.push(log_records.records[0][64..].to_vec());
    let cases = [
        ("one missing", chunks[1..].to_vec()),
        (
            "one added twice",
            [chunks.clone(), vec![chunks[0].clone()]].concat(),
        ),
        ("one in place of another", twice),
        ("a byte of a body changed", bent_body),
        ("a checksum field changed", bent_checksum),
        ("a change of the log too", with_log_change),
        ("none", Vec::new()),
    ];
    for (case, chunks) in cases {
        history::write(&files, &chunks.concat()).unwrap_or_else(|e| panic!("{e}"));
        assert!(from_history(&c, &files).is_none(), "{case}");
    }

    // A torn or damaged file, or none.
    for at in (frame::MAGIC_LEN..kept.len()).step_by(37) {
        std::fs::write(&files.history, &kept[..at]).unwrap_or_else(|e| panic!("{e}"));
        assert!(from_history(&c, &files).is_none(), "cut at {at}");
        let mut bent = kept.clone();
        bent[at] ^= 0x10;
        std::fs::write(&files.history, &bent).unwrap_or_else(|e| panic!("{e}"));
        assert!(from_history(&c, &files).is_none(), "byte {at}");
    }
    history::forget(&files).unwrap_or_else(|e| panic!("{e}"));
    assert!(from_history(&c, &files).is_none(), "no history");
    // A record that would inflate past what could be sent whole is not
    // inflated further.
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(
        &mut deflater,
        &vec![0u8; crate::sync::whole::WHOLE_BYTES + 1],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let bomb = deflater.finish().unwrap_or_else(|e| panic!("{e}"));
    let mut file = HISTORY_MAGIC.to_vec();
    file.extend(frame::encode(&bomb));
    std::fs::write(&files.history, file).unwrap_or_else(|e| panic!("{e}"));
    assert!(from_history(&c, &files).is_none(), "too large");

    // Rebuilt from the loaded document, it is used again.
    heal(&c, &files);
    let healed = from_history(&c, &files).unwrap_or_else(|| panic!("not rebuilt"));
    assert_eq!(contents(&healed), expected);
}

#[test]
fn a_snapshot_without_a_history_gains_none_at_its_next_compaction() {
    // A store of an earlier build: snapshots and no histories. Extending
    // nothing would make a history that misses the snapshot's changes.
    let c = community(3);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (files, mut doc) = grown(&c, dir.path());
    history::forget(&files).unwrap_or_else(|e| panic!("{e}"));
    compact(&files, &mut loaded(&c, &files), Some(&c.devices[0]), &c.id)
        .unwrap_or_else(|e| panic!("{e}"));
    append(&files, &write(&c, 2, &mut doc, 20, 2)).unwrap_or_else(|e| panic!("{e}"));
    compact(&files, &mut loaded(&c, &files), Some(&c.devices[0]), &c.id)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!files.history.exists());
    assert!(from_history(&c, &files).is_none());
}

#[test]
fn the_actor_read_from_a_chunk_is_the_one_automerge_reads() {
    let c = community(3);
    let mut doc = AutoCommit::new();
    let mut records = write(&c, 1, &mut doc, 0, 3);
    // A change with several dependencies (two concurrent heads merged).
    let mut other = doc.fork();
    records.extend(write(&c, 2, &mut other, 10, 1));
    doc.merge(&mut other).unwrap_or_else(|e| panic!("{e}"));
    records.extend(write(&c, 1, &mut doc, 20, 1));
    for (_, chunk) in &records {
        let change =
            crate::trust::signed_change::decode_change(chunk).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            history::chunk_actor(chunk),
            Some(change.actor_id().to_bytes())
        );
        assert_eq!(change_hash(chunk), Some(change.hash().0));
    }
    assert_eq!(
        crate::trust::signed_change::decode_change(&records[4].1)
            .map(|c| c.deps().len())
            .ok(),
        Some(2)
    );
    for cut in 0..records[0].1.len() {
        let _ = history::chunk_actor(&records[0].1[..cut]);
    }
}

#[test]
fn a_removed_members_later_change_takes_the_slow_way() {
    // Member 2's changes sit in the snapshot and the log: after its
    // removal, loading keeps only those its revocation lists, so the
    // document is not sent from its history.
    let c = community(3);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (files, _) = grown(&c, dir.path());
    let removed = |kept: Vec<String>| c.membership_without(2, "community", kept);
    let all = rebuilt(&c, &files);
    let by_two: Vec<String> = split(&all.changes)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .zip(&all.signatures)
        .filter(|((_, chunk), _)| {
            history::chunk_actor(chunk).is_some_and(|a| a.starts_with(&c.device(2).0))
        })
        .map(|(_, (hash, _))| hex::encode(hash))
        .collect();
    assert_eq!(by_two.len(), 4);
    let own = c.device(0);
    assert!(history::whole(&files, &removed(by_two.clone()), &own).is_some());
    assert!(history::whole(&files, &removed(by_two[..3].to_vec()), &own).is_none());
}
