//! What a sync replica keeps loaded when certificates arrive: an admission
//! judges no held change differently, so the documents stay loaded (a
//! `serve` holds every document it synced); a removal may drop changes its
//! member wrote, so they are loaded again under the new membership. And
//! what a step keeps when one of its documents fails.

use automerge::sync::{Message, State};

use super::CommunityStore;
use super::arrival_tests::{
    ahead_replica_of, copy_dir, heads_of, new_response, post_as, with_discussion,
};
use super::doclog::DocFiles;
use super::replica::StoreReplica;
use super::test_certs::{NOW, newcomer, removal};
use crate::sync::step::{DocStep, message_carrying};
use crate::sync::{Replica, SyncError};
use crate::trust::signed_change::ChangeSignature;

#[test]
fn an_admission_keeps_the_documents_loaded_and_a_removal_loads_them_again() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ana, mut store, response, thread) = with_discussion(root.path());
    let name = format!("response-{response}");
    // Bo is admitted and comments; nobody answers.
    let (bo, certs) = newcomer(&store, &ana, &root.path().join("bo"), "Bo");
    store
        .add_certificates(&certs)
        .unwrap_or_else(|e| panic!("{e}"));
    post_as(&store, &bo, (&response, &thread), "Bo's view.");

    let mut replica = ahead_replica_of(&store);
    replica.load_ahead(std::slice::from_ref(&name));
    assert_eq!(replica.loaded_docs(), vec![name.clone()]);
    let with_bo = heads_of(&mut replica, &name);

    // Cy joins with a device: the discussion stays loaded, as it loads.
    let (_, certs) = newcomer(&store, &ana, &root.path().join("cy"), "Cy");
    let added = replica
        .add_certificates(&certs)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(added, 2);
    let reads = replica.reads();
    assert_eq!(replica.loaded_docs(), vec![name.clone()]);
    assert_eq!(heads_of(&mut replica, &name), with_bo);
    assert_eq!(replica.reads(), reads, "read again from its files");
    assert_eq!(
        heads_of(&mut ahead_replica_of(replica.store()), &name),
        with_bo
    );

    // Bo is removed, keeping nothing: the discussion is loaded again,
    // without Bo's comment, as a fresh load reads it.
    let added = replica
        .add_certificates(&[removal(&store, &ana, &bo)])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(added, 1);
    assert!(
        replica.loaded_docs().is_empty(),
        "still held after a removal"
    );
    let without_bo = heads_of(&mut replica, &name);
    assert_eq!(replica.reads(), reads + 1);
    assert_ne!(without_bo, with_bo);
    assert_eq!(
        heads_of(&mut ahead_replica_of(replica.store()), &name),
        without_bo
    );
}

#[test]
fn a_document_dropped_after_a_failed_step_still_counts_among_arrivals() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ana, store, response, thread) = with_discussion(root.path());
    let name = format!("response-{response}");
    let mut replica = ahead_replica_of(&store);
    replica.load_ahead(std::slice::from_ref(&name));
    let before = heads_of(&mut replica, &name);
    // A comment reaches the files (as a step keeps what it applied), then
    // the replica drops the document (a later step on it failed).
    post_as(&store, &ana, (&response, &thread), "Second.");
    replica.forget_doc(&name);
    assert!(replica.loaded_docs().is_empty());
    let arrived = replica.arrivals();
    assert_eq!(arrived.get(&name), Some(&before), "{arrived:?}");
    // Taken (as `serve` does), it is counted once.
    assert_eq!(replica.take_arrivals().get(&name), Some(&before));
    assert!(replica.arrivals().is_empty());
    // Read again, it holds the comment.
    assert_ne!(heads_of(&mut replica, &name), before);
}

#[test]
fn forgetting_some_documents_keeps_the_others_loaded() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ana, store, response, thread) = with_discussion(root.path());
    let name = format!("response-{response}");
    let community = "community".to_string();
    let mut replica = ahead_replica_of(&store);
    replica.load_ahead(&[community.clone(), name.clone()]);
    let before = heads_of(&mut replica, &name);
    let reads = replica.reads();
    // A receipt-like write to the discussion through another path, which
    // the replica is told of.
    let mut ws = store.workspace(&ana, NOW, true);
    ws.post(&response, &thread, "Second.", None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ws.changed_docs()
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&name)
    );
    store
        .persist(&mut ws, &ana)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ws.changed_docs().is_empty(), "persisted");
    replica.forget_docs(std::slice::from_ref(&name));
    assert_eq!(replica.loaded_docs(), vec![community.clone()]);
    assert_ne!(
        heads_of(&mut replica, &name),
        before,
        "read again with the write"
    );
    heads_of(&mut replica, &community);
    assert_eq!(
        replica.reads(),
        reads + 1,
        "only the forgotten one read again"
    );
}

/// What `ahead` holds of `name` beyond `behind`'s copy, as the message and
/// signed changes a step brings.
fn step_from(
    ahead: &mut StoreReplica,
    behind: &mut StoreReplica,
    name: &str,
) -> (Message, Vec<(ChangeSignature, automerge::Change)>) {
    let held = heads_of(behind, name);
    let doc = ahead.doc(name).unwrap_or_else(|e| panic!("{e}"));
    let heads = doc.get_heads();
    let changes = doc.get_changes(&held);
    let message = message_carrying(heads, &changes);
    let signed = changes
        .into_iter()
        .map(|c| {
            let sig = ahead.signature(name, &c.hash());
            (sig.unwrap_or_else(|| panic!("unsigned")), c)
        })
        .collect();
    (message, signed)
}

#[test]
fn a_step_keeps_every_document_it_applied_when_another_fails() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ana, store, response, thread) = with_discussion(root.path());
    let discussion = format!("response-{response}");
    let behind_dir = root.path().join("behind");
    copy_dir(store.dir(), &behind_dir);
    // Then Ana comments, and opens a second response.
    post_as(&store, &ana, (&response, &thread), "Second.");
    let mut ws = store.workspace(&ana, NOW, true);
    let other = ws
        .open_response(new_response("Another"))
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .persist(&mut ws, &ana)
        .unwrap_or_else(|e| panic!("{e}"));
    let other = format!("response-{other}");

    let mut ahead = ahead_replica_of(&store);
    let behind_store =
        CommunityStore::open(&behind_dir, store.id()).unwrap_or_else(|e| panic!("{e}"));
    let mut behind = StoreReplica::new(behind_store, NOW);
    let (to_discussion, comment) = step_from(&mut ahead, &mut behind, &discussion);
    let (to_other, opening) = step_from(&mut ahead, &mut behind, &other);
    assert!(!comment.is_empty() && !opening.is_empty());
    // The second response's log cannot be written.
    let log = DocFiles::new(&behind.store().docs_dir(), &other).log;
    std::fs::create_dir_all(&log).unwrap_or_else(|e| panic!("{e}"));

    let mut states = [State::new(), State::new()];
    let [first, second] = &mut states;
    let commented = comment.len();
    let signatures: Vec<_> = comment.iter().map(|(sig, c)| (c.hash(), *sig)).collect();
    let kept = behind
        .apply_and_keep(vec![
            DocStep {
                name: other.clone(),
                state: first,
                message: to_other,
                new: opening,
            },
            DocStep {
                name: discussion.clone(),
                state: second,
                message: to_discussion,
                new: comment,
            },
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(kept[0], Err(SyncError::Local(_))), "{:?}", kept[0]);
    assert!(matches!(kept[1], Ok(n) if n == commented), "{:?}", kept[1]);
    // The comment is in the discussion's files, as a fresh read shows.
    let want = heads_of(&mut ahead, &discussion);
    assert_eq!(
        heads_of(&mut ahead_replica_of(behind.store()), &discussion),
        want
    );
    // Each kept with the signature it came with.
    for (hash, sig) in signatures {
        assert_eq!(behind.signature(&discussion, &hash), Some(sig));
    }
}

#[test]
fn what_this_device_wrote_through_another_path_did_not_arrive() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ana, store, response, thread) = with_discussion(root.path());
    let name = format!("response-{response}");
    let mut replica = ahead_replica_of(&store);
    replica.load_ahead(std::slice::from_ref(&name));
    // A write through another path (as `serve` writes its receipts, once it
    // has taken what arrived), which the replica is told of.
    assert!(replica.take_arrivals().is_empty());
    post_as(&store, &ana, (&response, &thread), "Seen.");
    replica.forget_docs(std::slice::from_ref(&name));
    assert!(replica.arrivals().is_empty(), "{:?}", replica.arrivals());
    let read_again = heads_of(&mut replica, &name);
    assert!(replica.arrivals().is_empty(), "{:?}", replica.arrivals());
    // What arrives after that still counts, from the heads read again.
    post_as(&store, &ana, (&response, &thread), "A reply.");
    replica.forget_doc(&name);
    assert_eq!(replica.arrivals().get(&name), Some(&read_again));
}
