//! What arrives by sync or by bundle ends in a snapshot that the receiving
//! device compacted and attested itself, once a document's log passes
//! [`COMPACT_AT_BYTES`]. Without this, a device that mostly receives (a
//! field member, a member who just joined) would check every signature of
//! everything it received on every command.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::community::COMPACT_AT_BYTES;
use super::doclog::DocFiles;
use super::frame::{self, SNAPSHOT_MAGIC};
use super::identity::Identity;
use super::replica::StoreReplica;
use super::test_certs::NOW;
use super::{CommunityStore, Home, attestation};
use crate::ids::ObjectId;
use crate::model::response::NewResponse;
use crate::model::views::ResponseKind;
use crate::sync::harness::{Rng, sync_replicas};
use crate::sync::{Replica, Stats};
use crate::trust::{DeviceId, SecretKey};

/// A copy of a community folder, as another device holds it.
pub(super) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Does `name`'s snapshot in `dir` carry an attestation by `device` that
/// holds?
fn attested_by(store: &CommunityStore, name: &str, device: &DeviceId) -> bool {
    let files = DocFiles::new(&store.docs_dir(), name);
    let Ok(bytes) = std::fs::read(&files.snapshot) else {
        return false;
    };
    let parsed = frame::parse(&bytes, SNAPSHOT_MAGIC).unwrap_or_else(|e| panic!("{e}"));
    match parsed.records[..] {
        [saved, table, heads, seal] => {
            attestation::holds(seal, device, &store.id(), name, &[saved, table, heads])
        }
        _ => false,
    }
}

/// Ana's community with one discussion, a copy of it taken before that
/// discussion grew past the compaction threshold, and the discussion's name.
struct Grown {
    _root: tempfile::TempDir,
    ahead: CommunityStore,
    behind: std::path::PathBuf,
    discussion: String,
}

/// Ana's community in `root`, with one response and one discussion thread
/// in it: Ana, her store, the response and the thread.
pub(super) fn with_discussion(root: &Path) -> (Identity, CommunityStore, ObjectId, ObjectId) {
    let home = Home::new(root.join("ana"));
    let ana = home.init("Ana").unwrap_or_else(|e| panic!("{e}"));
    let store = home
        .create_community(&ana, "Net", "testing", NOW)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ws = store.workspace(&ana, NOW, true);
    let response = ws
        .open_response(new_response("Policy"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (thread, _) = ws
        .start_thread(&response, "Views", Some("First."))
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .persist(&mut ws, &ana)
        .unwrap_or_else(|e| panic!("{e}"));
    (ana, store, response, thread)
}

/// A response to a development, titled `title`.
pub(super) fn new_response(title: &str) -> NewResponse {
    NewResponse {
        kind: ResponseKind::Development,
        title: title.into(),
        summary: "Something happened.".into(),
        source: None,
        requester: None,
        questions: Vec::new(),
        due: None,
    }
}

fn grown() -> Grown {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ana, ahead, response, thread) = with_discussion(root.path());
    let behind = root.path().join("behind");
    copy_dir(ahead.dir(), &behind);
    std::fs::write(behind.join("actor"), "00000000000000b0").unwrap_or_else(|e| panic!("{e}"));

    // Comments of 700 bytes until the discussion holds half as much again
    // as the threshold.
    let body = "We support the aim but the timetable is too short. ".repeat(14);
    let count = (COMPACT_AT_BYTES as usize * 3 / 2) / body.len() + 1;
    for chunk in 0..count.div_ceil(50) {
        let mut ws = ahead.workspace(&ana, NOW, true);
        for i in 0..50.min(count - chunk * 50) {
            ws.post(&response, &thread, &format!("{i}: {body}"), None)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        ahead
            .persist(&mut ws, &ana)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    Grown {
        _root: root,
        ahead,
        behind,
        discussion: format!("response-{response}"),
    }
}

/// The receiving device's key, and its store opened with it.
fn receiver(dir: &Path, g: &Grown) -> (DeviceId, CommunityStore) {
    let key = Arc::new(SecretKey::generate());
    let id = DeviceId(key.public());
    let store = CommunityStore::open(dir, g.ahead.id())
        .unwrap_or_else(|e| panic!("{e}"))
        .with_device(key);
    (id, store)
}

/// What the receiver holds is attested by it, its log is short again, and
/// it loads to the sender's document.
fn check_received(g: &Grown, device: &DeviceId, store: &CommunityStore) {
    let name = &g.discussion;
    assert!(
        attested_by(store, name, device),
        "no attestation by the receiver"
    );
    let log = DocFiles::new(&store.docs_dir(), name).log;
    let log_bytes = std::fs::metadata(&log).map_or(0, |m| m.len());
    assert!(
        log_bytes <= COMPACT_AT_BYTES,
        "the log was left at {log_bytes} bytes"
    );
    let heads = |s: &CommunityStore| {
        s.load_doc(name, false, NOW)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no discussion"))
            .doc
            .get_heads()
    };
    assert_eq!(heads(store), heads(&g.ahead));
    // Every signature in it holds for anyone who checks them all.
    let files = DocFiles::new(&store.docs_dir(), name);
    super::doclog::load(&files, store.membership(), None, false, NOW)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A session from Ana's store to the receiver's copy (`g.behind`, opened
/// with its own key), and what each side holds and moved.
struct Synced {
    device: DeviceId,
    ahead: StoreReplica,
    behind: StoreReplica,
    sent: Stats,
    received: Stats,
}

/// The sessions only need member devices to talk to: Ana's, on both
/// sides. The receiver's own key only attests its snapshots.
fn ana_device(g: &Grown) -> DeviceId {
    let ana = g.ahead.membership().members().next().map(|m| m.devices[0]);
    ana.unwrap_or_else(|| panic!("no member"))
}

/// Ana's community opened again, as a replica with nothing loaded.
fn ahead_replica(g: &Grown) -> StoreReplica {
    ahead_replica_of(&g.ahead)
}

/// Document `name`'s heads, loading it if need be.
pub(super) fn heads_of(replica: &mut StoreReplica, name: &str) -> Vec<automerge::ChangeHash> {
    replica
        .doc(name)
        .unwrap_or_else(|e| panic!("{e}"))
        .get_heads()
}

fn sync_behind(g: &Grown, seed: u64) -> Synced {
    let (device, store) = receiver(&g.behind, g);
    let mut behind = StoreReplica::new(store, NOW);
    let mut ahead = ahead_replica(g);
    let ana = ana_device(g);
    let (sent, received) = sync_replicas(&mut ahead, ana, &mut behind, ana, &mut Rng(seed))
        .unwrap_or_else(|e| panic!("{e}"));
    Synced {
        device,
        ahead,
        behind,
        sent,
        received,
    }
}

#[test]
fn what_arrives_by_sync_is_compacted_and_attested_by_the_receiver() {
    let g = grown();
    let Synced {
        device,
        mut ahead,
        mut behind,
        ..
    } = sync_behind(&g, 11);
    let (a, b) = (&mut ahead, &mut behind);
    assert!(b.doc_names().unwrap_or_default().contains(&g.discussion));
    // The receiver took the changes into its log without loading the
    // discussion (`Delta`), and folds the grown log once the session is
    // over, as `convene sync` and `serve` do.
    assert_eq!(b.reads(), 0, "the session loaded a document");
    let log = DocFiles::new(&b.store().docs_dir(), &g.discussion).log;
    let grown = std::fs::metadata(&log).map_or(0, |m| m.len());
    assert!(grown > COMPACT_AT_BYTES, "the log holds {grown} bytes");
    b.fold_appended();
    assert_eq!(b.reads(), 1);
    check_received(&g, &device, b.store());
    // Only the document that differed was loaded on Ana's side: the heads
    // of the community document came from its log.
    assert_eq!(a.loaded_docs(), std::slice::from_ref(&g.discussion));

    // The receiver's heads, read from its files, equal those of the loaded
    // document; and a second session, with nothing to exchange, loads
    // nothing more.
    let mut b = StoreReplica::new(
        CommunityStore::open(b.store().dir(), g.ahead.id())
            .unwrap_or_else(|e| panic!("{e}"))
            .with_device(
                b.store()
                    .device()
                    .cloned()
                    .unwrap_or_else(|| panic!("no key")),
            ),
        NOW,
    );
    let heads_read = b.heads(&g.discussion).unwrap_or_else(|e| panic!("{e}"));
    assert!(b.loaded_docs().is_empty(), "heads were read by loading");
    let loaded = heads_of(&mut b, &g.discussion);
    assert_eq!(heads_read, loaded);
    let mut a = ahead_replica(&g);
    let ana = ana_device(&g);
    sync_replicas(&mut a, ana, &mut b, ana, &mut Rng(12)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.loaded_docs(),
        std::slice::from_ref(&g.discussion),
        "only what was loaded above"
    );
}

#[test]
fn what_arrives_by_bundle_is_compacted_and_attested_by_the_receiver() {
    let g = grown();
    let (device, mut store) = receiver(&g.behind, &g);
    let bundle =
        super::bundle::export(&g.ahead, &BTreeMap::new(), NOW).unwrap_or_else(|e| panic!("{e}"));
    let report = super::bundle::import(&mut store, &bundle, NOW).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.applied_changes > 0);
    check_received(&g, &device, &store);
}

#[test]
fn changes_held_back_for_missing_history_never_reach_a_snapshot() {
    let g = grown();
    let (device, mut store) = receiver(&g.behind, &g);
    let full =
        super::bundle::export(&g.ahead, &BTreeMap::new(), NOW).unwrap_or_else(|e| panic!("{e}"));
    // Leave out the third-last change of the discussion: the two after it
    // are held back, while the rest passes the compaction threshold.
    let mut partial = full.clone();
    let positions: Vec<usize> = partial
        .changes
        .iter()
        .enumerate()
        .filter(|(_, (name, _, _))| *name == g.discussion)
        .map(|(i, _)| i)
        .collect();
    partial.changes.remove(positions[positions.len() - 3]);
    let report = super::bundle::import(&mut store, &partial, NOW).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.held_back, 2);
    assert!(
        attested_by(&store, &g.discussion, &device),
        "no compaction happened"
    );
    // The document still loads, and the whole bundle completes it.
    store
        .load_doc(&g.discussion, false, NOW)
        .unwrap_or_else(|e| panic!("the compacted document does not load: {e}"));
    super::bundle::import(&mut store, &full, NOW).unwrap_or_else(|e| panic!("{e}"));
    check_received(&g, &device, &store);
}

#[test]
fn a_document_the_receiver_lacks_arrives_whole_and_is_kept_attested() {
    let g = grown();
    // The receiver never had the discussion.
    let behind_docs = g.behind.join("docs");
    for entry in std::fs::read_dir(&behind_docs).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.to_string_lossy().contains(&g.discussion) {
            std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let sender_changes = g
        .ahead
        .load_doc(&g.discussion, false, NOW)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no discussion"))
        .signatures
        .len();
    let Synced {
        device,
        mut behind,
        sent,
        received,
        ..
    } = sync_behind(&g, 13);
    let b = &mut behind;
    assert_eq!(sent.sent_changes, sender_changes);
    assert_eq!(received.received_changes, sender_changes);
    // Kept as a snapshot the receiver attested, with an empty log; what
    // arrived counts as new.
    check_received(&g, &device, b.store());
    let log = DocFiles::new(&b.store().docs_dir(), &g.discussion).log;
    assert_eq!(
        std::fs::read(&log).map(|bytes| bytes.len()).ok(),
        Some(super::frame::CHANGES_MAGIC.len())
    );
    assert_eq!(
        b.arrivals().get(&g.discussion).map(Vec::len),
        Some(0),
        "arrived whole"
    );
}

#[test]
fn documents_loaded_ahead_are_the_ones_loaded_on_demand() {
    let g = grown();
    let names = g.ahead.doc_names().unwrap_or_else(|e| panic!("{e}"));
    assert!(names.len() >= 2, "{names:?}");
    let mut ahead = ahead_replica(&g);
    let mut asked: Vec<String> = names.clone();
    asked.push("response-0000000000000000".into()); // not held: empty
    asked.push("not a name".into()); // left to `doc`, which refuses it
    ahead.load_ahead(&asked);
    let mut loaded = ahead.loaded_docs();
    loaded.sort();
    let mut expected: Vec<String> = names.clone();
    expected.push("response-0000000000000000".into());
    expected.sort();
    assert_eq!(loaded, expected);

    let mut on_demand = ahead_replica(&g);
    for name in &names {
        assert_eq!(
            heads_of(&mut ahead, name),
            heads_of(&mut on_demand, name),
            "{name}"
        );
    }
    assert!(ahead.doc("not a name").is_err());
    // Loading ahead is not arriving.
    assert!(ahead.arrivals().is_empty());
}

#[test]
fn a_device_holding_nothing_receives_every_document_whole_each_kept_attested() {
    let g = grown();
    std::fs::remove_dir_all(g.behind.join("docs")).unwrap_or_else(|e| panic!("{e}"));
    let names = g.ahead.doc_names().unwrap_or_else(|e| panic!("{e}"));
    assert!(names.len() >= 2, "{names:?}");
    let Synced {
        device,
        mut ahead,
        mut behind,
        ..
    } = sync_behind(&g, 29);
    for name in &names {
        assert!(attested_by(behind.store(), name, &device), "{name}");
        let theirs = heads_of(&mut ahead, name);
        // As held in memory, and as read from disk again.
        assert_eq!(heads_of(&mut behind, name), theirs, "{name}");
        let reread = behind
            .store()
            .load_doc(name, false, NOW)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|mut l| l.doc.get_heads());
        assert_eq!(reread, Some(theirs), "{name}");
        assert_eq!(behind.arrivals().get(name).map(Vec::len), Some(0), "{name}");
        // Sent from the sender's files. The receiver keeps no history
        // until it first sends the document whole itself (loaded, its
        // changes rebuilt), then sends the same from its files.
        let sent = g.ahead.whole_from_files(name);
        assert!(behind.store().whole_from_files(name).is_none(), "{name}");
        let resent = behind.whole(name).unwrap_or_else(|e| panic!("{e}"));
        let kept = behind.store().whole_from_files(name);
        let carried = |w: Option<crate::sync::whole::WholeDoc>| {
            let w = w.unwrap_or_else(|| panic!("{name}: not sendable"));
            let chunks = crate::sync::chunks::split(&w.changes).unwrap_or_else(|e| panic!("{e}"));
            let chunks: Vec<Vec<u8>> = chunks.into_iter().map(|(_, c)| c.to_vec()).collect();
            let mut all: Vec<_> = chunks.into_iter().zip(w.signatures).collect();
            all.sort();
            all
        };
        let sent = carried(sent);
        assert_eq!(carried(resent), sent, "{name}");
        assert_eq!(carried(kept), sent, "{name}");
    }
}

#[test]
fn a_document_not_held_is_never_handed_on_as_if_it_existed() {
    use crate::model::DocId;
    let g = grown();
    let absent = "response-0000000000000000".to_string();
    let mut replica = ahead_replica(&g);
    // A session reads a document it does not hold as an empty one.
    for name in [&absent, &g.discussion] {
        replica.doc(name).unwrap_or_else(|e| panic!("{e}"));
    }
    let held = |name: &String| DocId::parse(name).unwrap_or_else(|| panic!("{name}"));
    let copies = replica.copies([&absent, &g.discussion]);
    assert!(copies.holds(&held(&g.discussion)));
    assert!(!copies.holds(&held(&absent)));
    let taken = replica.take_loaded([&absent, &g.discussion]);
    assert!(taken.holds(&held(&g.discussion)));
    assert!(!taken.holds(&held(&absent)));
}

#[test]
fn heads_read_from_files_are_read_again_once_the_document_is_forgotten() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ana, store, response, thread) = with_discussion(root.path());
    let name = format!("response-{response}");
    let mut replica = ahead_replica_of(&store);
    let read = replica
        .heads_all(std::slice::from_ref(&name))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!read[0].is_empty());
    assert!(replica.loaded_docs().is_empty(), "read from files");
    // Another path writes to the discussion (as `serve` records receipts
    // beside its sessions), then the replica forgets that document.
    post_as(&store, &ana, (&response, &thread), "Second.");
    replica.forget_docs(std::slice::from_ref(&name));
    let again = replica.heads(&name).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(again, read[0], "the heads read before the write");
    assert_eq!(again, heads_of(&mut replica, &name));
}

/// `who` comments `text` in `thread` of `response`, written to `store`.
pub(super) fn post_as(
    store: &CommunityStore,
    who: &Identity,
    (response, thread): (&ObjectId, &ObjectId),
    text: &str,
) {
    let mut ws = store.workspace(who, NOW, true);
    ws.post(response, thread, text, None)
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .persist(&mut ws, who)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `store`'s community opened again, as a replica with nothing loaded.
pub(super) fn ahead_replica_of(store: &CommunityStore) -> StoreReplica {
    let store = CommunityStore::open(store.dir(), store.id()).unwrap_or_else(|e| panic!("{e}"));
    StoreReplica::new(store, NOW)
}

/// Ana's community in `root` with one response and a draft of `text` on
/// it: Ana, her store, and the draft's id.
fn with_draft(root: &Path, text: &str) -> (Identity, CommunityStore, ObjectId) {
    let (ana, store, response, _) = with_discussion(root);
    let mut ws = store.workspace(&ana, NOW, true);
    let draft = ws
        .new_draft(&response, "Reply", text)
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .persist(&mut ws, &ana)
        .unwrap_or_else(|e| panic!("{e}"));
    (ana, store, draft)
}

/// Ana edits `draft` in `store` to `text`.
fn edit_draft(ana: &Identity, store: &CommunityStore, draft: &ObjectId, text: &str) {
    let mut ws = store.workspace(ana, NOW, true);
    let entry = ws
        .resolve_draft(draft.as_str())
        .unwrap_or_else(|e| panic!("{e}"));
    ws.edit_draft(&entry, text)
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .persist(&mut ws, ana)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The digest of document `name` that serves `device` in `replica`'s store.
fn digest_in(
    replica: &StoreReplica,
    device: &DeviceId,
    name: &str,
) -> Option<crate::model::digest::DraftDigest> {
    let docs = replica.store().docs_dir();
    super::digest::read(
        &DocFiles::new(&docs, name),
        &docs,
        device,
        replica.store().membership(),
    )
}

#[test]
fn a_draft_that_arrives_whole_is_kept_with_its_digest() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ana, ahead, draft) = with_draft(root.path(), "Our first text.");
    edit_draft(&ana, &ahead, &draft, "Our first text, amended.");
    // A device that holds nothing of the community's documents.
    let behind = root.path().join("behind");
    copy_dir(ahead.dir(), &behind);
    std::fs::remove_dir_all(behind.join("docs")).unwrap_or_else(|e| panic!("{e}"));
    let key = Arc::new(SecretKey::generate());
    let device = DeviceId(key.public());
    let store = CommunityStore::open(&behind, ahead.id())
        .unwrap_or_else(|e| panic!("{e}"))
        .with_device(key);
    let mut b = StoreReplica::new(store, NOW);
    let mut a = ahead_replica_of(&ahead);
    let ana_device = ana.device_id();
    sync_replicas(&mut a, ana_device, &mut b, ana_device, &mut Rng(5))
        .unwrap_or_else(|e| panic!("{e}"));
    let name = crate::model::DocId::Draft(draft).name();
    let digest = digest_in(&b, &device, &name).unwrap_or_else(|| panic!("no digest kept"));
    assert_eq!(digest.text, "Our first text, amended.");
    assert_eq!(digest.authors, vec![ana.member_id()]);
    let mut held = b.doc(&name).unwrap_or_else(|e| panic!("{e}")).get_heads();
    held.sort();
    let held: Vec<String> = held.iter().map(|h| h.to_string()).collect();
    assert_eq!(digest.heads, held);
}

#[test]
fn a_draft_a_sync_changed_gets_its_digest_again_once_the_session_is_over() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ana, ahead, draft) = with_draft(root.path(), "Our first text.");
    // Ana's other device, with her key, holds the draft as it was.
    let behind_dir = root.path().join("behind");
    copy_dir(ahead.dir(), &behind_dir);
    let key = ahead.device().cloned().unwrap_or_else(|| panic!("no key"));
    let behind = CommunityStore::open(&behind_dir, ahead.id())
        .unwrap_or_else(|e| panic!("{e}"))
        .with_device(key);
    edit_draft(&ana, &ahead, &draft, "Our second text.");

    let mut b = StoreReplica::new(behind, NOW);
    let mut a = ahead_replica_of(&ahead);
    let device = ana.device_id();
    sync_replicas(&mut a, device, &mut b, device, &mut Rng(6)).unwrap_or_else(|e| panic!("{e}"));
    let name = crate::model::DocId::Draft(draft).name();
    assert_eq!(
        digest_in(&b, &device, &name),
        None,
        "no digest of the new version yet"
    );
    // Taken without loading the draft (`Delta`); loaded once the session
    // is over, as `convene sync` and `serve` do.
    assert_eq!(b.reads(), 0, "the session loaded a document");
    b.fold_appended();
    let arrived = b.arrivals();
    assert!(arrived.contains_key(&name));
    b.keep_draft_digests(&arrived);
    let kept = digest_in(&b, &device, &name).unwrap_or_else(|| panic!("no digest kept"));
    assert_eq!(kept.text, "Our second text.");
}
