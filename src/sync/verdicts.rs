//! The verdict on each change a peer sent: its signature, its author's
//! standing, and the ownership rule, checked on every core.
//!
//! Checking a signature is most of what receiving a change costs, and a
//! join or a long absence brings tens of thousands. Each verdict is a pure
//! function of the change, its signature and the membership, so checking
//! them on several threads gives exactly the verdicts one thread would, in
//! the same order. Each thread takes the next run of changes left and
//! checks their signatures together (`keys::verify_all`): under the
//! cofactored rule of ZIP 215 that gives the same answers as checking each
//! alone, about four times faster.

use automerge::Change;

use super::chunks::guarded;
use crate::parallel::in_order;
use crate::trust::ownership::check_ownership;
use crate::trust::signed_change::{ChangeSignature, Standing, verify_changes};
use crate::trust::{Membership, TrustError};

/// The most changes whose signatures are checked together: past a few
/// hundred, a larger batch saves little, and the other cores would wait.
const RUN: usize = 256;

/// Runs are at least this long (unless fewer changes came): a shorter one
/// checks its signatures at twice the cost per signature.
const SHORTEST_RUN: usize = 64;

/// The verdict on each of `changes` (to document `doc`), signed by the
/// matching entry of `signatures`, in order.
pub fn verdicts(
    membership: &Membership,
    doc: &str,
    changes: &[Change],
    signatures: &[ChangeSignature],
) -> Vec<Result<Standing, TrustError>> {
    verdicts_by_doc(membership, &[(doc, changes, signatures)])
        .pop()
        .unwrap_or_default()
}

/// [`verdicts`] for several documents' changes at once, all on every core:
/// one list of verdicts per document, in order.
pub fn verdicts_by_doc(
    membership: &Membership,
    docs: &[(&str, &[Change], &[ChangeSignature])],
) -> Vec<Vec<Result<Standing, TrustError>>> {
    let pairs: Vec<(&str, &Change, &ChangeSignature)> = docs
        .iter()
        .flat_map(|(doc, changes, signatures)| {
            changes
                .iter()
                .zip(signatures.iter())
                .map(|(c, s)| (*doc, c, s))
        })
        .collect();
    let threads = crate::parallel::cores();
    let run = pairs.len().div_ceil(threads).clamp(SHORTEST_RUN, RUN);
    let runs: Vec<&[(&str, &Change, &ChangeSignature)]> = pairs.chunks(run).collect();
    let lengths: Vec<usize> = runs.iter().map(|r| r.len()).collect();
    let mut all = in_order(
        runs,
        2,
        |run| verdicts_of_run(membership, run),
        // A check that failed (panicked) refuses its changes: still one
        // verdict per change, in order.
        |i| {
            (0..lengths.get(i).copied().unwrap_or(0))
                .map(|_| {
                    Err(TrustError::ChangeRefused {
                        change: String::new(),
                        device: String::new(),
                        reason: "checking it failed".into(),
                    })
                })
                .collect()
        },
    )
    .into_iter()
    .flatten();
    docs.iter()
        .map(|(_, changes, signatures)| {
            all.by_ref()
                .take(changes.len().min(signatures.len()))
                .collect()
        })
        .collect()
}

/// The verdicts on a run of changes, their signatures checked together.
fn verdicts_of_run(
    membership: &Membership,
    run: &[(&str, &Change, &ChangeSignature)],
) -> Vec<Result<Standing, TrustError>> {
    verify_changes(membership, run)
        .into_iter()
        .zip(run)
        .map(|(signed, (doc, change, _))| {
            signed.and_then(|(_, standing)| owned(membership, doc, change).map(|_| standing))
        })
        .collect()
}

/// The ownership rule on one change whose signature holds.
fn owned(membership: &Membership, doc: &str, change: &Change) -> Result<(), TrustError> {
    guarded(|| Ok(check_ownership(membership, doc, change))).unwrap_or_else(|e| {
        Err(TrustError::ChangeRefused {
            change: change.hash().to_string(),
            device: String::new(),
            reason: e,
        })
    })
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ROOT};

    use super::*;
    use crate::trust::fixture::community;
    use crate::trust::signed_change::{actor_bytes, sign_change, verify_signed};

    /// The verdict on one change, checked alone: what the runs must agree
    /// with.
    fn verdict(
        membership: &Membership,
        doc: &str,
        change: &Change,
        sig: &ChangeSignature,
    ) -> Result<Standing, TrustError> {
        let hash = change.hash();
        verify_signed(membership, doc, change.actor_id().to_bytes(), &hash.0, sig)
            .and_then(|(_, standing)| owned(membership, doc, change).map(|_| standing))
    }

    #[test]
    fn verdicts_on_all_cores_are_the_verdicts_of_one_thread_in_order() {
        let c = community(3);
        let stranger = community(1);
        let m = c.membership();
        let doc_name = "response-00aa";
        // 300 changes by three devices, one a stranger's, some overwriting
        // another member's value (ownership), some with a bad signature.
        let mut doc = AutoCommit::new();
        let mut changes = Vec::new();
        let mut signatures = Vec::new();
        for i in 0..300usize {
            let (key, device) = match i % 3 {
                0 => (&c.devices[0], c.device(0)),
                1 => (&c.devices[1], c.device(1)),
                _ => (&stranger.devices[0], stranger.device(0)),
            };
            let actor = ActorId::from(actor_bytes(&device, &[i as u8; 8]));
            doc.set_actor(actor);
            let map_key = match i % 5 {
                0 => format!("shared{}", i % 7),
                _ => format!("own{}-{}", i % 3, i % 7),
            };
            doc.put(ROOT, map_key, i as i64)
                .unwrap_or_else(|e| panic!("{e}"));
            doc.commit();
            let change = doc
                .get_last_local_change()
                .unwrap_or_else(|| panic!("no change"));
            let mut sig = sign_change(key, &m.community, doc_name, &change.hash().0);
            if i % 11 == 0 {
                sig.0[3] ^= 1;
            }
            changes.push(change);
            signatures.push(sig);
        }
        let one_thread: Vec<String> = changes
            .iter()
            .zip(&signatures)
            .map(|(change, sig)| format!("{:?}", verdict(&m, doc_name, change, sig)))
            .collect();
        let all_cores: Vec<String> = verdicts(&m, doc_name, &changes, &signatures)
            .iter()
            .map(|v| format!("{v:?}"))
            .collect();
        assert_eq!(one_thread, all_cores);
        // The mix is real: accepted, refused signatures, refused authors.
        let count = |needle: &str| one_thread.iter().filter(|v| v.contains(needle)).count();
        let counts = (
            count("Ok(Current)"),
            count("BadSignature"),
            count("not a device of any member"),
            count("overwrites"),
        );
        assert!(
            counts.0 > 50 && counts.1 > 10 && counts.2 > 50 && counts.3 > 5,
            "{counts:?}"
        );
    }

    /// `n` changes to `doc_name` by the community's first two devices, each
    /// signed, the signature of every `forged_every`-th one forged.
    fn signed_changes(
        c: &crate::trust::fixture::TestCommunity,
        doc_name: &str,
        n: usize,
        forged_every: Option<usize>,
    ) -> (Vec<Change>, Vec<ChangeSignature>) {
        let mut doc = AutoCommit::new();
        let mut changes = Vec::new();
        let mut signatures = Vec::new();
        for i in 0..n {
            let device = c.device(i % 2);
            doc.set_actor(ActorId::from(actor_bytes(&device, &[i as u8; 8])));
            doc.put(ROOT, format!("own{}-{}", i % 2, i), i as i64)
                .unwrap_or_else(|e| panic!("{e}"));
            doc.commit();
            let change = doc
                .get_last_local_change()
                .unwrap_or_else(|| panic!("no change"));
            let mut sig = sign_change(
                &c.devices[i % 2],
                &c.membership().community,
                doc_name,
                &change.hash().0,
            );
            if forged_every.is_some_and(|every| i % every == every - 1) {
                sig.0[40] ^= 1;
            }
            changes.push(change);
            signatures.push(sig);
        }
        (changes, signatures)
    }

    #[test]
    fn several_documents_in_runs_get_their_own_verdicts_in_order() {
        let c = community(3);
        let m = c.membership();
        // Honest runs (their equation holds) and a document with one
        // forgery; one document has fewer signatures than changes, one none.
        let (a, a_sigs) = signed_changes(&c, "response-00aa", 700, None);
        let (b, b_sigs) = signed_changes(&c, "response-00bb", 90, Some(45));
        let (d, d_sigs) = signed_changes(&c, "response-00dd", 10, None);
        let docs: Vec<(&str, &[Change], &[ChangeSignature])> = vec![
            ("response-00aa", &a, &a_sigs),
            ("response-00bb", &b, &b_sigs[..80]),
            ("response-00cc", &[], &[]),
            ("response-00dd", &d, &d_sigs),
        ];
        let together = verdicts_by_doc(&m, &docs);
        let alone: Vec<Vec<String>> = docs
            .iter()
            .map(|(name, changes, sigs)| {
                changes
                    .iter()
                    .zip(sigs.iter())
                    .map(|(change, sig)| format!("{:?}", verdict(&m, name, change, sig)))
                    .collect()
            })
            .collect();
        let together: Vec<Vec<String>> = together
            .iter()
            .map(|vs| vs.iter().map(|v| format!("{v:?}")).collect())
            .collect();
        assert_eq!(together, alone);
        let lengths: Vec<usize> = together.iter().map(Vec::len).collect();
        assert_eq!(lengths, [700, 80, 0, 10]);
        let refused = |doc: &[String]| doc.iter().filter(|v| !v.contains("Ok(")).count();
        assert_eq!(
            (
                refused(&together[0]),
                refused(&together[1]),
                refused(&together[3])
            ),
            (0, 1, 0)
        );
    }
}
