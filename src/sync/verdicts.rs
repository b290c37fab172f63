//! The verdict on each change a peer sent: its signature, its author's
//! standing, and the ownership rule, checked on every core.
//!
//! Checking a signature is most of what receiving a change costs, and a
//! join or a long absence brings tens of thousands. Each verdict is a pure
//! function of the change, its signature and the membership, so checking
//! them on several threads gives exactly the verdicts one thread would, in
//! the same order. (Not ed25519 batch verification: its randomised equation
//! can accept a signature that `verify_strict` refuses, and peers would then
//! disagree on what is valid.)

use automerge::Change;

use super::chunks::guarded;
use crate::parallel::in_order;
use crate::trust::ownership::check_ownership;
use crate::trust::signed_change::{ChangeSignature, Standing, verify_signed};
use crate::trust::{Membership, TrustError};

/// Below this many changes, one thread does it all.
const PARALLEL_FROM: usize = 64;

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
    let mut all = in_order(
        pairs,
        PARALLEL_FROM,
        |(doc, change, sig)| verdict(membership, doc, change, sig),
        // A check that failed (panicked) refuses its change: still one
        // verdict per change, in order.
        |_| {
            Err(TrustError::ChangeRefused {
                change: String::new(),
                device: String::new(),
                reason: "checking it failed".into(),
            })
        },
    )
    .into_iter();
    docs.iter()
        .map(|(_, changes, signatures)| {
            all.by_ref()
                .take(changes.len().min(signatures.len()))
                .collect()
        })
        .collect()
}

fn verdict(
    membership: &Membership,
    doc: &str,
    change: &Change,
    sig: &ChangeSignature,
) -> Result<Standing, TrustError> {
    let hash = change.hash();
    verify_signed(membership, doc, change.actor_id().to_bytes(), &hash.0, sig).and_then(
        |(_, standing)| {
            guarded(|| Ok(check_ownership(membership, doc, change)))
                .unwrap_or_else(|e| {
                    Err(TrustError::ChangeRefused {
                        change: hash.to_string(),
                        device: String::new(),
                        reason: e,
                    })
                })
                .map(|_| standing)
        },
    )
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ROOT};

    use super::*;
    use crate::trust::fixture::community;
    use crate::trust::signed_change::{actor_bytes, sign_change};

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
}
