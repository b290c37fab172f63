//! Ownership: in the community and discussion documents, a change may only
//! overwrite or delete values that its own member wrote.
//!
//! A valid member could otherwise sign a change that overwrites another
//! member's comment, stance or endorsement, or the facilitator's outcome,
//! and so erase their words. Every operation names the operations it
//! supersedes (its `pred`), and each of those names its actor, so the rule
//! needs nothing but the change itself and the membership view. Draft
//! documents are exempt: their text is co-written, and editing it means
//! replacing what others wrote.

use automerge::Change;

use super::TrustError;
use super::membership::Membership;
use super::signed_change::device_of_actor;

/// The most operations one change of any document may hold. The largest
/// text a command accepts (1 MiB) replacing another as large is about two
/// million operations (each deleted and each inserted character); twice
/// that leaves room, and anything beyond can only be crafted to cost memory
/// when Automerge expands it.
pub const MAX_OPS_PER_CHANGE: u64 = 4 << 20;

/// How many operations a change claims, from its header (nothing decoded).
pub fn op_count(change: &Change) -> u64 {
    change.max_op().saturating_sub(change.start_op().get()) + 1
}

/// Refuse a change that claims more than `limit` operations.
pub fn check_op_count(change: &Change, limit: u64) -> Result<(), TrustError> {
    let ops = op_count(change);
    if ops > limit {
        return Err(TrustError::ChangeRefused {
            change: crate::ids::short(&change.hash().to_string()).to_string(),
            device: String::new(),
            reason: format!("it claims {ops} operations; the limit is {limit}"),
        });
    }
    Ok(())
}

/// Refuse a change to `doc` that supersedes an operation of another member.
pub fn check_ownership(
    membership: &Membership,
    doc: &str,
    change: &Change,
) -> Result<(), TrustError> {
    // Decoding or applying expands run-length columns: bound the work first,
    // for drafts too.
    check_op_count(change, MAX_OPS_PER_CHANGE)?;
    if doc.starts_with("draft-") {
        return Ok(());
    }
    let owner_of = |actor: &[u8]| {
        device_of_actor(actor)
            .and_then(|d| membership.owner_of(&d))
            .map(|m| m.id)
    };
    let author = owner_of(change.actor_id().to_bytes());
    let expanded = change.decode();
    for op in &expanded.operations {
        for pred in op.pred.iter() {
            if pred.1 == *change.actor_id() {
                continue;
            }
            if owner_of(pred.1.to_bytes()) != author || author.is_none() {
                return Err(TrustError::ChangeRefused {
                    change: crate::ids::short(&change.hash().to_string()).to_string(),
                    device: device_of_actor(change.actor_id().to_bytes())
                        .map(|d| d.short())
                        .unwrap_or_default(),
                    reason: "it overwrites or deletes what another member wrote".into(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ObjType, ROOT};

    use super::*;
    use crate::trust::fixture::{TestCommunity, community};
    use crate::trust::signed_change::actor_bytes;

    fn actor(c: &TestCommunity, i: usize) -> ActorId {
        ActorId::from(actor_bytes(&c.device(i), &[i as u8; 8]))
    }

    fn last_change(doc: &mut AutoCommit) -> Change {
        doc.get_last_local_change()
            .unwrap_or_else(|| panic!("no change"))
    }

    #[test]
    fn overwriting_another_members_value_is_refused_outside_drafts() {
        let c = community(2);
        let m = c.membership();
        let mut doc = AutoCommit::new().with_actor(actor(&c, 0));
        doc.put(ROOT, "stance", "agree")
            .unwrap_or_else(|e| panic!("{e}"));
        doc.commit();
        let mut own = doc.fork().with_actor(actor(&c, 0));
        own.put(ROOT, "stance", "support")
            .unwrap_or_else(|e| panic!("{e}"));
        let own = last_change(&mut own);
        let mut other = doc.fork().with_actor(actor(&c, 1));
        other
            .put(ROOT, "stance", "object")
            .unwrap_or_else(|e| panic!("{e}"));
        let other = last_change(&mut other);
        assert!(check_ownership(&m, "response-00aa", &own).is_ok());
        assert!(check_ownership(&m, "response-00aa", &other).is_err());
        assert!(check_ownership(&m, "community", &other).is_err());
        assert!(check_ownership(&m, "draft-00aa", &other).is_ok());
    }

    #[test]
    fn a_change_by_an_unknown_device_may_not_touch_anything_written() {
        let c = community(1);
        let stranger = community(1);
        let m = c.membership();
        let mut doc = AutoCommit::new().with_actor(actor(&c, 0));
        doc.put(ROOT, "title", "t")
            .unwrap_or_else(|e| panic!("{e}"));
        doc.commit();
        let mut theirs = doc.fork().with_actor(actor(&stranger, 0));
        theirs
            .delete(ROOT, "title")
            .unwrap_or_else(|e| panic!("{e}"));
        let theirs = last_change(&mut theirs);
        assert!(check_ownership(&m, "response-00aa", &theirs).is_err());
    }

    #[test]
    fn a_change_claiming_too_many_operations_is_refused_even_in_a_draft() {
        let c = community(1);
        let mut doc = AutoCommit::new().with_actor(actor(&c, 0));
        let text = doc
            .put_object(ROOT, "body", ObjType::Text)
            .unwrap_or_else(|e| panic!("{e}"));
        doc.splice_text(&text, 0, 0, &"a".repeat(1000))
            .unwrap_or_else(|e| panic!("{e}"));
        let change = last_change(&mut doc);
        assert_eq!(op_count(&change), 1001);
        assert!(check_op_count(&change, 1001).is_ok());
        let verdict = check_op_count(&change, 1000);
        assert!(
            matches!(&verdict, Err(TrustError::ChangeRefused { reason, .. }) if reason.contains("1001 operations")),
            "{verdict:?}"
        );
    }
}
