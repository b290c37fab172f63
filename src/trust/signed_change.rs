//! Signed Automerge changes.
//!
//! Every change is made by an actor whose id is `device key (32) ‖ store
//! suffix (8)`, and travels with `sign(device key, "convene/change/v1" ‖
//! community id ‖ change hash)`. A signature cannot live inside the change (the
//! hash covers every byte of it), so it sits beside it: in the log record on
//! disk, and later in sync frames and bundles.

use super::keys::{self, CommunityId, DeviceId, MemberId, SecretKey};
use super::membership::Membership;
use super::{CHANGE_DOMAIN, TrustError};

/// Length of an actor id: device key plus a random per-store suffix.
pub const ACTOR_LEN: usize = 40;

/// A device's signature over one change hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeSignature(pub [u8; 64]);

/// A change whose signature and author were checked; only
/// [`verify_change`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedChange {
    hash: [u8; 32],
    device: DeviceId,
    author: MemberId,
}

impl VerifiedChange {
    /// The change hash.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
    /// The device that made it.
    pub fn device(&self) -> DeviceId {
        self.device
    }
    /// The member who owns that device.
    pub fn author(&self) -> MemberId {
        self.author
    }
}

/// Build this store's actor id from the device key and a random suffix.
pub fn actor_bytes(device: &DeviceId, suffix: &[u8; 8]) -> Vec<u8> {
    let mut actor = device.0.to_vec();
    actor.extend_from_slice(suffix);
    actor
}

/// The device named by an actor id, if it has the convene shape.
pub fn device_of_actor(actor: &[u8]) -> Option<DeviceId> {
    if actor.len() != ACTOR_LEN {
        return None;
    }
    Some(DeviceId(actor[..32].try_into().ok()?))
}

/// Parse one Automerge change chunk, refusing one whose checksum field does
/// not match its hash. The hash (which the signature covers) does not cover
/// the checksum field, and Automerge does not check it on parsing: without
/// this, the same signed change could travel in many encodings, some of
/// which a later load might refuse.
pub fn decode_change(bytes: &[u8]) -> Result<automerge::Change, String> {
    let change = automerge::Change::try_from(bytes).map_err(|e| e.to_string())?;
    if bytes.get(4..8) != Some(&change.hash().0[..4]) {
        return Err("the change's checksum does not match its content".into());
    }
    Ok(change)
}

/// What a device signs for a change: the document's name, a NUL byte, and
/// the change hash, so that a signed change cannot be replayed into another
/// document.
pub fn change_message(doc: &str, hash: &[u8; 32]) -> Vec<u8> {
    let mut message = doc.as_bytes().to_vec();
    message.push(0);
    message.extend_from_slice(hash);
    message
}

/// Sign a change of document `doc` with the device key.
pub fn sign_change(
    device: &SecretKey,
    community: &CommunityId,
    doc: &str,
    hash: &[u8; 32],
) -> ChangeSignature {
    ChangeSignature(device.sign(CHANGE_DOMAIN, community, &change_message(doc, hash)))
}

/// Where a change stands with respect to its author's removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Its author is a member, or the removal keeps it (lists its hash).
    Current,
    /// Its author was removed and the removal does not keep it. It is
    /// authentic, but refused unless a change that stays builds on it (see
    /// [`super::removal`]).
    AfterRemoval,
}

/// Accept a change of document `doc` only if its actor names a device of a
/// member with write rights, the member was not removed before it (the
/// removal lists its hash), and the signature by that device holds.
pub fn verify_change(
    membership: &Membership,
    doc: &str,
    actor: &[u8],
    hash: &[u8; 32],
    signature: &ChangeSignature,
) -> Result<VerifiedChange, TrustError> {
    match verify_signed(membership, doc, actor, hash, signature)? {
        (verified, Standing::Current) => Ok(verified),
        (verified, Standing::AfterRemoval) => Err(TrustError::ChangeRefused {
            change: crate::ids::short(&hex::encode(hash)).to_string(),
            device: verified.device.short(),
            reason: "its member was removed".into(),
        }),
    }
}

/// Check that a change comes from a device of a member with write rights and
/// that its signature holds, and say whether the author's removal keeps it.
pub fn verify_signed(
    membership: &Membership,
    doc: &str,
    actor: &[u8],
    hash: &[u8; 32],
    signature: &ChangeSignature,
) -> Result<(VerifiedChange, Standing), TrustError> {
    let (verified, standing) = check_author(membership, doc, actor, hash)?;
    keys::verify(
        &verified.device.0,
        CHANGE_DOMAIN,
        &membership.community,
        &change_message(doc, hash),
        &signature.0,
        "change",
    )
    .map_err(|e| match e {
        TrustError::BadSignature(_) => bad_signature(hash),
        other => other,
    })?;
    Ok((verified, standing))
}

/// The refusal of a change whose signature does not hold, naming it. Made
/// only when it failed: formatting it for every change that verifies
/// showed in profiles.
fn bad_signature(hash: &[u8; 32]) -> TrustError {
    TrustError::BadSignature(format!("change {}", crate::ids::short(&hex::encode(hash))))
}

/// One change for [`verify_signed_all`]: its document, actor, hash and
/// signature.
pub struct ToCheck<'a> {
    /// The document's name.
    pub doc: &'a str,
    /// The change's actor id.
    pub actor: &'a [u8],
    /// The change's hash.
    pub hash: &'a [u8; 32],
    /// The signature that came with it.
    pub signature: &'a ChangeSignature,
}

/// [`verify_signed`] on each of `changes`: the same verdicts, in order,
/// with the signatures checked together ([`keys::verify_all`]).
pub fn verify_signed_all(
    membership: &Membership,
    changes: &[ToCheck<'_>],
) -> Vec<Result<(VerifiedChange, Standing), TrustError>> {
    let authors: Vec<_> = changes
        .iter()
        .map(|c| check_author(membership, c.doc, c.actor, c.hash))
        .collect();
    let messages: Vec<Vec<u8>> = changes
        .iter()
        .map(|c| change_message(c.doc, c.hash))
        .collect();
    // Only the changes whose author holds have a signature worth checking.
    let mut signed = Vec::new();
    let mut devices = Vec::new();
    for ((change, author), message) in changes.iter().zip(&authors).zip(&messages) {
        if let Ok((verified, _)) = author {
            devices.push(verified.device.0);
            signed.push((change, message));
        }
    }
    let items: Vec<keys::Signed<'_>> = signed
        .iter()
        .zip(&devices)
        .map(|((change, message), device)| keys::Signed {
            public: device,
            message,
            signature: &change.signature.0,
        })
        .collect();
    let mut signatures =
        keys::verify_all(CHANGE_DOMAIN, &membership.community, &items, "change").into_iter();
    changes
        .iter()
        .zip(authors)
        .map(|(change, author)| {
            let author = author?;
            match signatures.next() {
                Some(Ok(())) => Ok(author),
                Some(Err(TrustError::BadSignature(_))) | None => Err(bad_signature(change.hash)),
                Some(Err(other)) => Err(other),
            }
        })
        .collect()
}

/// [`verify_signed_all`] on decoded changes, each with its document's name
/// and its signature.
pub fn verify_changes(
    membership: &Membership,
    changes: &[(&str, &automerge::Change, &ChangeSignature)],
) -> Vec<Result<(VerifiedChange, Standing), TrustError>> {
    let hashes: Vec<[u8; 32]> = changes.iter().map(|(_, c, _)| c.hash().0).collect();
    let to_check: Vec<ToCheck<'_>> = changes
        .iter()
        .zip(&hashes)
        .map(|((doc, change, signature), hash)| ToCheck {
            doc,
            actor: change.actor_id().to_bytes(),
            hash,
            signature,
        })
        .collect();
    verify_signed_all(membership, &to_check)
}

/// The membership half of [`verify_signed`], without the signature: the
/// change's device belongs to a member with write rights, and where the
/// change stands with respect to a removal. Only a caller that has already
/// checked the signature itself may stop here: the store, for a snapshot
/// that this device attested after verifying it (`store::attestation`).
pub fn check_author(
    membership: &Membership,
    doc: &str,
    actor: &[u8],
    hash: &[u8; 32],
) -> Result<(VerifiedChange, Standing), TrustError> {
    let refuse = |device: String, reason: &str| TrustError::ChangeRefused {
        change: crate::ids::short(&hex::encode(hash)).to_string(),
        device,
        reason: reason.to_string(),
    };
    let device = device_of_actor(actor)
        .ok_or_else(|| refuse(hex::encode(actor), "actor id is not a convene device actor"))?;
    let owner = membership
        .owner_of(&device)
        .ok_or_else(|| refuse(device.short(), "device is not a device of any member"))?;
    if !owner.role.can_write() {
        return Err(refuse(device.short(), "its member is an observer"));
    }
    let kept = !owner.removed
        || owner
            .revocation
            .as_ref()
            .is_some_and(|r| r.covers(doc, &hex::encode(hash)));
    let standing = if kept {
        Standing::Current
    } else {
        Standing::AfterRemoval
    };
    Ok((
        VerifiedChange {
            hash: *hash,
            device,
            author: owner.id,
        },
        standing,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{CertBody, Certificate, Role};

    struct Setup {
        view: Membership,
        founder_device: SecretKey,
        observer_device: SecretKey,
    }

    fn setup() -> Setup {
        let founder = SecretKey::generate();
        let (id, genesis) = Certificate::genesis(
            &founder,
            &CertBody::Genesis {
                name: "c".into(),
                purpose: "".into(),
                founder: MemberId(founder.public()),
                founder_name: "F".into(),
                at: 0,
                nonce: "1".into(),
            },
        );
        let founder_device = SecretKey::generate();
        let observer = SecretKey::generate();
        let observer_device = SecretKey::generate();
        let certs = [
            genesis,
            Certificate::issue(
                &id,
                &CertBody::Device {
                    member: MemberId(founder.public()),
                    device: DeviceId(founder_device.public()),
                    label: "l".into(),
                    at: 1,
                },
                &[&founder, &founder_device],
            ),
            Certificate::issue(
                &id,
                &CertBody::Admit {
                    member: MemberId(observer.public()),
                    name: "O".into(),
                    role: Role::Observer,
                    by: MemberId(founder.public()),
                    at: 1,
                },
                &[&founder],
            ),
            Certificate::issue(
                &id,
                &CertBody::Device {
                    member: MemberId(observer.public()),
                    device: DeviceId(observer_device.public()),
                    label: "o".into(),
                    at: 1,
                },
                &[&observer, &observer_device],
            ),
        ];
        let verified: Vec<_> = certs.iter().filter_map(|c| c.verify(&id).ok()).collect();
        assert_eq!(verified.len(), 4);
        Setup {
            view: Membership::build(id, &verified).unwrap_or_else(|e| panic!("{e}")),
            founder_device,
            observer_device,
        }
    }

    #[test]
    fn a_members_device_signature_is_accepted() {
        let s = setup();
        let device = DeviceId(s.founder_device.public());
        let sig = sign_change(&s.founder_device, &s.view.community, "d", &[3; 32]);
        let ok = verify_change(&s.view, "d", &actor_bytes(&device, &[1; 8]), &[3; 32], &sig)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.device(), device);
    }

    #[test]
    fn tampered_signature_or_hash_is_refused() {
        let s = setup();
        let actor = actor_bytes(&DeviceId(s.founder_device.public()), &[1; 8]);
        let mut sig = sign_change(&s.founder_device, &s.view.community, "d", &[3; 32]);
        assert!(verify_change(&s.view, "d", &actor, &[4; 32], &sig).is_err());
        sig.0[0] ^= 0x80;
        assert!(verify_change(&s.view, "d", &actor, &[3; 32], &sig).is_err());
    }

    #[test]
    fn a_signature_for_another_document_is_refused() {
        let s = setup();
        let actor = actor_bytes(&DeviceId(s.founder_device.public()), &[1; 8]);
        let sig = sign_change(
            &s.founder_device,
            &s.view.community,
            "response-aa",
            &[3; 32],
        );
        assert!(verify_change(&s.view, "response-aa", &actor, &[3; 32], &sig).is_ok());
        assert!(verify_change(&s.view, "response-bb", &actor, &[3; 32], &sig).is_err());
    }

    #[test]
    fn signature_by_the_wrong_key_is_refused() {
        let s = setup();
        let actor = actor_bytes(&DeviceId(s.founder_device.public()), &[1; 8]);
        let forger = SecretKey::generate();
        let sig = sign_change(&forger, &s.view.community, "d", &[3; 32]);
        assert!(matches!(
            verify_change(&s.view, "d", &actor, &[3; 32], &sig),
            Err(TrustError::BadSignature(_))
        ));
    }

    #[test]
    fn unknown_device_and_observer_and_odd_actor_are_refused() {
        let s = setup();
        let stranger = SecretKey::generate();
        let sig = sign_change(&stranger, &s.view.community, "d", &[3; 32]);
        let actor = actor_bytes(&DeviceId(stranger.public()), &[1; 8]);
        assert!(matches!(
            verify_change(&s.view, "d", &actor, &[3; 32], &sig),
            Err(TrustError::ChangeRefused { .. })
        ));
        let sig = sign_change(&s.observer_device, &s.view.community, "d", &[3; 32]);
        let actor = actor_bytes(&DeviceId(s.observer_device.public()), &[1; 8]);
        assert!(verify_change(&s.view, "d", &actor, &[3; 32], &sig).is_err());
        assert!(verify_change(&s.view, "d", &[1; 16], &[3; 32], &sig).is_err());
    }
}
