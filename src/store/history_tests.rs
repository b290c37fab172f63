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

/// What a whole document carries: each chunk with its hash and signature.
fn contents(whole: &WholeDoc) -> BTreeSet<(Vec<u8>, [u8; 32], Vec<u8>)> {
    let chunks = split(&whole.changes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(chunks.len(), whole.signatures.len());
    chunks
        .into_iter()
        .zip(&whole.signatures)
        .map(|((_, chunk), (hash, sig))| {
            assert_eq!(change_hash(chunk), Some(*hash));
            (chunk.to_vec(), *hash, sig.clone())
        })
        .collect()
}

/// The document as the slow way sends it: loaded, its changes rebuilt.
fn rebuilt(c: &TestCommunity, files: &DocFiles) -> WholeDoc {
    let mut loaded = loaded(c, files);
    let signatures = loaded.signatures.clone();
    prepare("community", &mut loaded.doc, |h| signatures.get(h).copied())
        .unwrap_or_else(|| panic!("not sendable"))
}

fn from_history(c: &TestCommunity, files: &DocFiles) -> Option<WholeDoc> {
    history::whole(files, Some(&c.device(0)), &c.id)
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
    // the log's changes in both: each is sent once.
    let log = std::fs::read(&files.log).unwrap_or_else(|e| panic!("{e}"));
    let seal = std::fs::read(format!("{}.seal", files.log.display())).ok();
    compact(&files, &mut loaded(&c, &files), Some(&c.devices[0]), &c.id)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&files.log, &log).unwrap_or_else(|e| panic!("{e}"));
    if let Some(seal) = seal {
        std::fs::write(format!("{}.seal", files.log.display()), seal)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    check("changes in the snapshot and the log");
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
    let chunks: Vec<Vec<u8>> = parsed
        .records
        .iter()
        .flat_map(|r| split(r).unwrap_or_else(|e| panic!("{e}")))
        .map(|(_, chunk)| chunk.to_vec())
        .collect();
    assert_eq!(chunks.len(), 9);

    // Another device's snapshot.
    assert!(history::whole(&files, Some(&c.device(1)), &c.id).is_none());
    assert!(history::whole(&files, None, &c.id).is_none());

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

    // Rebuilt from the loaded document, it is used again.
    history::rebuilt(&files, &rebuilt(&c, &files));
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
