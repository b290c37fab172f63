//! A device's attestation on a snapshot it wrote: the record that this device
//! checked every change signature in it, so that loading it again need not.
//!
//! Every load verifies every change (trust.md), and ed25519 verification is
//! most of what opening a large community costs. A snapshot is only ever
//! written by compaction, from a document whose changes were all verified on
//! the way in; the attestation lets this device trust that work later. It is an
//! ed25519 signature by the device key over the document's name and digests
//! of the snapshot's other records, so any change to a byte of it, a snapshot
//! moved to another document's name, and a snapshot written by any other
//! device all fall back to verifying every signature. The membership checks
//! (is the author a member with write rights, was the change made after a
//! removal) still run on every load: they depend on certificates that may
//! have arrived since. What an attestation does not protect against is in trust.md.

use crate::trust::keys::{self, CommunityId, DeviceId, SecretKey};
use crate::trust::{SNAPSHOT_ATTESTATION_DOMAIN, sha256};

/// Bytes of an attestation: the attesting device's public key (32) ‖ its signature (64).
pub const ATTESTATION_LEN: usize = 96;

/// Attest the snapshot of document `name` made of `records`.
pub fn attest(
    device: &SecretKey,
    community: &CommunityId,
    name: &str,
    records: &[&[u8]],
) -> Vec<u8> {
    let mut attestation = device.public().to_vec();
    attestation.extend_from_slice(&device.sign(
        SNAPSHOT_ATTESTATION_DOMAIN,
        community,
        &message(name, records),
    ));
    attestation
}

/// Does `attestation` show that `own_device` wrote this snapshot of `name`
/// made of `records`?
pub fn holds(
    attestation: &[u8],
    own_device: &DeviceId,
    community: &CommunityId,
    name: &str,
    records: &[&[u8]],
) -> bool {
    if attestation.len() != ATTESTATION_LEN || attestation[..32] != own_device.0 {
        return false;
    }
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&attestation[32..]);
    keys::verify(
        &own_device.0,
        SNAPSHOT_ATTESTATION_DOMAIN,
        community,
        &message(name, records),
        &signature,
        "snapshot attestation",
    )
    .is_ok()
}

/// The name under which the certificate log is attested.
const CERTS_NAME: &str = "certs.log";

/// The attestation of the certificate log (`certs.attest`): that this
/// device verified the first `ids.len()` certificates, whose SHA-256 ids
/// (of the stored bytes) these are. The file is the count (u64, little
/// endian) followed by the attestation.
pub fn attest_certificates(
    device: &SecretKey,
    community: &CommunityId,
    ids: &[[u8; 32]],
) -> Vec<u8> {
    let mut file = (ids.len() as u64).to_le_bytes().to_vec();
    file.extend(attest(device, community, CERTS_NAME, &[&ids.concat()]));
    file
}

/// How many of the leading certificates (by their ids, in log order)
/// `file` shows `own_device` verified before; 0 if it shows nothing.
pub fn attested_certificates(
    file: &[u8],
    own_device: &DeviceId,
    community: &CommunityId,
    ids: &[[u8; 32]],
) -> usize {
    let Some((count, attestation)) = file.split_first_chunk::<8>() else {
        return 0;
    };
    let count = u64::from_le_bytes(*count);
    let Some(covered) = usize::try_from(count).ok().and_then(|n| ids.get(..n)) else {
        return 0;
    };
    if holds(
        attestation,
        own_device,
        community,
        CERTS_NAME,
        &[&covered.concat()],
    ) {
        covered.len()
    } else {
        0
    }
}

/// What is signed: the name, a NUL byte, and the digest of each record.
fn message(name: &str, records: &[&[u8]]) -> Vec<u8> {
    let mut message = name.as_bytes().to_vec();
    message.push(0);
    for record in records {
        message.extend_from_slice(&sha256(record));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> (SecretKey, DeviceId) {
        let key = SecretKey::from_bytes([7; 32]);
        let id = DeviceId(key.public());
        (key, id)
    }

    #[test]
    fn an_attestation_holds_only_for_the_same_device_document_and_bytes() {
        let (key, id) = device();
        let community = CommunityId([1; 32]);
        let records: [&[u8]; 3] = [b"saved", b"table", b"heads"];
        let s = attest(&key, &community, "community", &records);
        let check = |a: &[u8], who: &DeviceId, c: &CommunityId, name: &str, r: &[&[u8]]| {
            holds(a, who, c, name, r)
        };
        assert!(check(&s, &id, &community, "community", &records));

        let other = SecretKey::from_bytes([8; 32]);
        let other_id = DeviceId(other.public());
        assert!(!check(&s, &other_id, &community, "community", &records));
        let theirs = attest(&other, &community, "community", &records);
        assert!(!check(&theirs, &id, &community, "community", &records));

        assert!(!check(
            &s,
            &id,
            &CommunityId([2; 32]),
            "community",
            &records
        ));
        assert!(!check(&s, &id, &community, "draft-x", &records));
        assert!(!check(
            &s,
            &id,
            &community,
            "community",
            &[b"saveD", b"table", b"heads"]
        ));
        assert!(!check(
            &s,
            &id,
            &community,
            "community",
            &[b"saved", b"tablE", b"heads"]
        ));
        assert!(!check(
            &s,
            &id,
            &community,
            "community",
            &[b"saved", b"table", b"headS"]
        ));
        // No record can be dropped, added or moved across a boundary.
        assert!(!check(
            &s,
            &id,
            &community,
            "community",
            &[b"saved", b"table"]
        ));
        assert!(!check(
            &s,
            &id,
            &community,
            "community",
            &[b"saved", b"tableheads", b""]
        ));
        assert!(!check(&s, &id, &community, "communit", &records));
        for i in 0..ATTESTATION_LEN {
            let mut bent = s.clone();
            bent[i] ^= 1;
            assert!(!check(&bent, &id, &community, "community", &records));
        }
        assert!(!check(
            &s[..ATTESTATION_LEN - 1],
            &id,
            &community,
            "community",
            &records
        ));
    }

    #[test]
    fn a_certificate_attestation_covers_exactly_the_certificates_it_names() {
        let (key, id) = device();
        let community = CommunityId([1; 32]);
        let ids = [[1u8; 32], [2; 32], [3; 32]];
        let file = attest_certificates(&key, &community, &ids[..2]);
        assert_eq!(attested_certificates(&file, &id, &community, &ids), 2);
        assert_eq!(attested_certificates(&file, &id, &community, &ids[..2]), 2);
        // Fewer certificates than it names, a changed or reordered one,
        // another device or community, any flipped byte: nothing.
        assert_eq!(attested_certificates(&file, &id, &community, &ids[..1]), 0);
        let changed = [[1u8; 32], [9; 32], [3; 32]];
        assert_eq!(attested_certificates(&file, &id, &community, &changed), 0);
        let swapped = [[2u8; 32], [1; 32], [3; 32]];
        assert_eq!(attested_certificates(&file, &id, &community, &swapped), 0);
        let other = DeviceId(SecretKey::from_bytes([8; 32]).public());
        assert_eq!(attested_certificates(&file, &other, &community, &ids), 0);
        assert_eq!(
            attested_certificates(&file, &id, &CommunityId([2; 32]), &ids),
            0
        );
        for i in 0..file.len() {
            let mut bent = file.clone();
            bent[i] ^= 1;
            assert_eq!(attested_certificates(&bent, &id, &community, &ids), 0);
        }
        assert_eq!(attested_certificates(&file[..7], &id, &community, &ids), 0);
    }
}
