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

/// The most operations one change of a community or discussion document may
/// hold (a whole draft pasted at once is still far below this).
pub const MAX_OPS_PER_CHANGE: u64 = 1_000_000;

/// Refuse a change to `doc` that supersedes an operation of another member.
pub fn check_ownership(
    membership: &Membership,
    doc: &str,
    change: &Change,
) -> Result<(), TrustError> {
    if doc.starts_with("draft-") {
        return Ok(());
    }
    // Decoding expands run-length columns: bound the work before doing it.
    let ops = change.max_op().saturating_sub(change.start_op().get()) + 1;
    if ops > MAX_OPS_PER_CHANGE {
        return Err(TrustError::ChangeRefused {
            change: crate::ids::short(&change.hash().to_string()).to_string(),
            device: String::new(),
            reason: format!("it claims {ops} operations"),
        });
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
