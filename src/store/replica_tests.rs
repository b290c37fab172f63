//! What a sync replica keeps loaded when certificates arrive: an admission
//! judges no held change differently, so the documents stay loaded (a
//! `serve` holds every document it synced); a removal may drop changes its
//! member wrote, so they are loaded again under the new membership.

use super::Home;
use super::arrival_tests::{ahead_replica_of, heads_of, post_as, with_discussion};
use super::test_certs::{NOW, admission, device_of, removal};
use crate::sync::Replica;

#[test]
fn an_admission_keeps_the_documents_loaded_and_a_removal_loads_them_again() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ana, mut store, response, thread) = with_discussion(root.path());
    let name = format!("response-{response}");
    // Bo is admitted and comments; nobody answers.
    let bo = Home::new(root.path().join("bo"))
        .init("Bo")
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .add_certificates(&[admission(&store, &ana, &bo, "Bo"), device_of(&store, &bo)])
        .unwrap_or_else(|e| panic!("{e}"));
    post_as(&store, &bo, (&response, &thread), "Bo's view.");

    let mut replica = ahead_replica_of(&store);
    replica.load_ahead(std::slice::from_ref(&name));
    assert_eq!(replica.loaded_docs(), vec![name.clone()]);
    let with_bo = heads_of(&mut replica, &name);

    // Cy joins with a device: the discussion stays loaded, as it loads.
    let cy = Home::new(root.path().join("cy"))
        .init("Cy")
        .unwrap_or_else(|e| panic!("{e}"));
    let added = replica
        .add_certificates(&[admission(&store, &ana, &cy, "Cy"), device_of(&store, &cy)])
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
