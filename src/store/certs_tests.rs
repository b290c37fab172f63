//! The certificate log's attestation (`certs.attest`): a device does not
//! check again the certificate signatures it checked before, and nothing
//! else can make it skip them.

use std::sync::Arc;

use super::frame::{self, CERTS_MAGIC};
use super::test_certs::NOW;
use super::{CommunityStore, Home, attestation};
use crate::trust::{SecretKey, sha256};

#[test]
fn only_this_devices_attestation_spares_the_certificate_checks() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = Home::new(root.path().join("ana"));
    let ana = home.init("Ana").unwrap_or_else(|e| panic!("{e}"));
    let store = home
        .create_community(&ana, "Net", "testing", NOW)
        .unwrap_or_else(|e| panic!("{e}"));
    let (dir, id) = (store.dir().to_path_buf(), store.id());
    let attest_path = dir.join("certs.attest");

    // Opening on this device attests what it verified.
    let opened = home.open_community(&id).unwrap_or_else(|e| panic!("{e}"));
    assert!(opened.device().is_some());
    let file = std::fs::read(&attest_path).unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(dir.join("certs.log")).unwrap_or_else(|e| panic!("{e}"));
    let parsed = frame::parse(&bytes, CERTS_MAGIC).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<[u8; 32]> = parsed.records.iter().map(|r| sha256(r)).collect();
    assert_eq!(
        attestation::attested_certificates(&file, &ana.device_id(), &id, &ids),
        ids.len()
    );

    // A certificate whose signature fails, written with a valid checksum.
    let forged = String::from_utf8_lossy(parsed.records[1]).replace("1790000000", "1790000001");
    assert_ne!(forged.as_bytes(), parsed.records[1]);
    let mut log = CERTS_MAGIC.to_vec();
    log.extend(frame::encode(parsed.records[0]));
    log.extend(frame::encode(forged.as_bytes()));
    std::fs::write(dir.join("certs.log"), &log).unwrap_or_else(|e| panic!("{e}"));
    let forged_ids = [ids[0], sha256(forged.as_bytes())];

    // The old attestation does not name it: refused.
    assert!(home.open_community(&id).is_err());

    // Attested by this device (as if it had checked it), it is taken as
    // checked: the skip is real...
    std::fs::write(
        &attest_path,
        attestation::attest_certificates(&ana.device, &id, &forged_ids),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        CommunityStore::open_as(&dir, id, Some(ana.device.clone())).is_ok(),
        "the attested certificate was checked again"
    );
    // ...but only for this device: without the key, with another key, or
    // attested by another device, every signature is checked.
    assert!(CommunityStore::open(&dir, id).is_err());
    let other = Arc::new(SecretKey::generate());
    assert!(CommunityStore::open_as(&dir, id, Some(other.clone())).is_err());
    std::fs::write(
        &attest_path,
        attestation::attest_certificates(&other, &id, &forged_ids),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(CommunityStore::open_as(&dir, id, Some(ana.device.clone())).is_err());
}
