//! A delta (`crate::sync::delta`) kept by the store: appended to the log of
//! a document it has not loaded, checked against what its files hold, and
//! read back; or, when the files cannot tell what they hold, applied to
//! the document loaded.

use std::path::Path;

use super::CommunityStore;
use super::arrival_tests::{ahead_replica_of, copy_dir, heads_of, post_as, with_discussion};
use super::doclog::DocFiles;
use super::replica::StoreReplica;
use super::test_certs::NOW;
use crate::store::Identity;
use crate::sync::Replica;
use crate::sync::delta::Signed;
use crate::sync::whole::signed_set;

/// Ana's discussion, and a copy of her community as it is now.
struct Pair {
    _root: tempfile::TempDir,
    ana: Identity,
    ahead: CommunityStore,
    behind: std::path::PathBuf,
    name: String,
    thread: (crate::ids::ObjectId, crate::ids::ObjectId),
}

fn pair() -> Pair {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ana, ahead, response, thread) = with_discussion(root.path());
    let behind = root.path().join("behind");
    copy_dir(ahead.dir(), &behind);
    Pair {
        _root: root,
        ana,
        ahead,
        behind,
        name: format!("response-{response}"),
        thread: (response, thread),
    }
}

/// The copy, opened with Ana's device key (its attestations hold), or with
/// `other` key.
fn behind_replica(p: &Pair, key: Option<crate::trust::SecretKey>) -> StoreReplica {
    let key = key.map(std::sync::Arc::new).unwrap_or_else(|| {
        p.ahead
            .device()
            .cloned()
            .unwrap_or_else(|| panic!("no key"))
    });
    let store = CommunityStore::open(&p.behind, p.ahead.id())
        .unwrap_or_else(|e| panic!("{e}"))
        .with_device(key);
    StoreReplica::new(store, NOW)
}

/// Ana comments `count` times; then her changes since `base`, checked as a
/// receiver checks them.
fn comment_and_delta(p: &Pair, count: usize, base: &[automerge::ChangeHash]) -> Signed {
    for i in 0..count {
        post_as(
            &p.ahead,
            &p.ana,
            (&p.thread.0, &p.thread.1),
            &format!("Comment {i}."),
        );
    }
    let mut ahead = ahead_replica_of(&p.ahead);
    let whole = ahead
        .delta(&p.name, base)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no delta"));
    signed_set(
        p.ahead.membership(),
        &p.name,
        "delta",
        &whole.changes,
        whole.signatures,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|| panic!("set aside"))
}

fn log_len(dir: &Path, name: &str) -> u64 {
    let log = DocFiles::new(&dir.join("docs"), name).log;
    std::fs::metadata(log).map_or(0, |m| m.len())
}

#[test]
fn a_delta_to_a_document_not_loaded_is_appended_and_reads_back() {
    let p = pair();
    let mut b = behind_replica(&p, None);
    let base = b.heads(&p.name).unwrap_or_else(|e| panic!("{e}"));

    // Twice in a row: the second is checked against what the first
    // appended.
    for count in [3, 2] {
        let base_now = b.heads(&p.name).unwrap_or_else(|e| panic!("{e}"));
        let delta = comment_and_delta(&p, count, &base_now);
        let ahead_heads = heads_of(&mut ahead_replica_of(&p.ahead), &p.name);
        assert!(!b.holds_all(&p.name, &ahead_heads).unwrap_or(true));
        let kept = b.add_deltas(vec![(p.name.clone(), delta)]);
        assert!(matches!(kept[..], [Ok(Some(n))] if n == count), "{kept:?}");
        assert_eq!(b.reads(), 0, "the document was loaded");
        let mut heads = b.heads(&p.name).unwrap_or_else(|e| panic!("{e}"));
        heads.sort();
        assert_eq!(heads, ahead_heads);
        assert!(b.holds_all(&p.name, &ahead_heads).unwrap_or(false));
    }
    // Counted as arrived from the heads before the first, and loaded (and
    // verified) once the session is over to the sender's document.
    assert_eq!(b.arrivals().get(&p.name), Some(&base));
    b.fold_appended();
    assert_eq!(b.reads(), 1);
    let ahead_heads = heads_of(&mut ahead_replica_of(&p.ahead), &p.name);
    let mut again = behind_replica(&p, None);
    let mut loaded = heads_of(&mut again, &p.name);
    loaded.sort();
    assert_eq!(loaded, ahead_heads);
}

#[test]
fn a_delta_missing_a_change_it_builds_on_is_not_kept() {
    let p = pair();
    let mut b = behind_replica(&p, None);
    let base = b.heads(&p.name).unwrap_or_else(|e| panic!("{e}"));
    let mut delta = comment_and_delta(&p, 3, &base);
    delta.remove(0);
    let before = log_len(&p.behind, &p.name);
    let kept = b.add_deltas(vec![(p.name.clone(), delta)]);
    assert!(matches!(kept[..], [Ok(None)]), "{kept:?}");
    assert_eq!(log_len(&p.behind, &p.name), before);
    assert_eq!(b.heads(&p.name).unwrap_or_default(), base);
    assert_eq!(b.reads(), 0);
}

#[test]
fn files_that_cannot_tell_what_they_hold_are_loaded_to_take_a_delta() {
    let p = pair();
    // The discussion folded into a snapshot attested by Ana's device; the
    // copy opened with another key cannot trust its table.
    let mut ahead = ahead_replica_of(&p.ahead);
    post_as(&p.ahead, &p.ana, (&p.thread.0, &p.thread.1), "First.");
    let mut loaded = p
        .ahead
        .load_doc(&p.name, true, NOW)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no discussion"));
    p.ahead
        .compact_doc(&p.name, &mut loaded)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(&p.behind).unwrap_or_else(|e| panic!("{e}"));
    copy_dir(p.ahead.dir(), &p.behind);
    let mut b = behind_replica(&p, Some(crate::trust::SecretKey::generate()));
    let base = heads_of(&mut ahead, &p.name);
    let delta = comment_and_delta(&p, 2, &base);
    let kept = b.add_deltas(vec![(p.name.clone(), delta)]);
    assert!(matches!(kept[..], [Ok(Some(2))]), "{kept:?}");
    assert_eq!(b.reads(), 1, "loaded to apply it");
    let ahead_heads = heads_of(&mut ahead_replica_of(&p.ahead), &p.name);
    let mut heads = heads_of(&mut b, &p.name);
    heads.sort();
    assert_eq!(heads, ahead_heads);
    let mut b_fresh = behind_replica(&p, Some(crate::trust::SecretKey::generate()));
    let mut from_files = heads_of(&mut b_fresh, &p.name);
    from_files.sort();
    assert_eq!(from_files, ahead_heads);
}
