//! Offline bundles: a community's certificates and signed changes in one
//! file, to carry on a USB stick when there is no network at all.
//!
//! ```text
//!  0          8             40                72
//!  +----------+-------------+-----------------+---------------------------+
//!  | CVBUNDL1 | community id| SHA-256 of body | body: deflate(records)    |
//!  +----------+-------------+-----------------+---------------------------+
//!  record (framed as in storage.md: len ‖ crc(len) ‖ crc(payload) ‖ payload):
//!    0x01 ‖ certificate bytes
//!    0x02 ‖ doc name length (u16 BE) ‖ doc name ‖ signature (64) ‖ change chunk
//!    0x03 ‖ device id (32): the device that made the bundle (optional)
//! ```
//!
//! Decoding checks the magic, the community, the checksum, and inflates with
//! a hard size limit; it trusts nothing. Verification and application are
//! the importer's (`store::bundle`), with the same rules as sync.

use std::io::{Read, Write};

use crate::store::frame;
use crate::trust::signed_change::ChangeSignature;
use crate::trust::{CommunityId, sha256};

/// First bytes of a bundle file.
pub const MAGIC: &[u8; 8] = b"CVBUNDL1";
/// The largest body accepted once inflated.
pub const MAX_BODY: u64 = 1 << 30;

/// A bundle's content, not yet verified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bundle {
    /// Certificate bytes.
    pub certificates: Vec<Vec<u8>>,
    /// (document name, signature, change chunk).
    pub changes: Vec<(String, ChangeSignature, Vec<u8>)>,
    /// The device that made the bundle (it holds everything in it).
    pub from: Option<[u8; 32]>,
}

/// Why bytes are not a bundle of this community.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// Wrong magic, truncated, or a damaged record.
    #[error("not a convene bundle, or a damaged one: {0}")]
    Damaged(String),
    /// A bundle of another community.
    #[error("this bundle belongs to community {0}, not this one")]
    OtherCommunity(String),
}

/// Write a bundle.
pub fn encode(community: &CommunityId, bundle: &Bundle) -> Vec<u8> {
    let mut records = Vec::new();
    for cert in &bundle.certificates {
        let mut payload = vec![0x01];
        payload.extend_from_slice(cert);
        records.extend(frame::encode(&payload));
    }
    if let Some(device) = &bundle.from {
        let mut payload = vec![0x03];
        payload.extend_from_slice(device);
        records.extend(frame::encode(&payload));
    }
    for (doc, sig, change) in &bundle.changes {
        let mut payload = vec![0x02];
        payload.extend_from_slice(&(doc.len() as u16).to_be_bytes());
        payload.extend_from_slice(doc.as_bytes());
        payload.extend_from_slice(&sig.0);
        payload.extend_from_slice(change);
        records.extend(frame::encode(&payload));
    }
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = encoder.write_all(&records);
    let body = encoder.finish().unwrap_or_default();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&community.0);
    out.extend_from_slice(&sha256(&body));
    out.extend_from_slice(&body);
    out
}

/// The community a bundle claims to belong to (checked by [`decode`]).
pub fn community_of(bytes: &[u8]) -> Result<CommunityId, BundleError> {
    if bytes.len() < 72 || &bytes[..8] != MAGIC {
        return Err(BundleError::Damaged("bad magic or too short".into()));
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&bytes[8..40]);
    Ok(CommunityId(id))
}

/// Read a bundle of `community`.
pub fn decode(bytes: &[u8], community: &CommunityId) -> Result<Bundle, BundleError> {
    let claimed = community_of(bytes)?;
    if claimed != *community {
        return Err(BundleError::OtherCommunity(claimed.short()));
    }
    let body = &bytes[72..];
    if sha256(body)[..] != bytes[40..72] {
        return Err(BundleError::Damaged("checksum mismatch".into()));
    }
    let mut records = Vec::new();
    flate2::read::DeflateDecoder::new(body)
        .take(MAX_BODY + 1)
        .read_to_end(&mut records)
        .map_err(|e| BundleError::Damaged(format!("cannot inflate: {e}")))?;
    if records.len() as u64 > MAX_BODY {
        return Err(BundleError::Damaged(
            "the body is over the size limit".into(),
        ));
    }
    let mut with_magic = frame::CHANGES_MAGIC.to_vec();
    with_magic.extend_from_slice(&records);
    let parsed = frame::parse(&with_magic, frame::CHANGES_MAGIC)
        .map_err(|e| BundleError::Damaged(e.to_string()))?;
    if parsed.torn_at.is_some() {
        return Err(BundleError::Damaged("truncated records".into()));
    }
    let mut bundle = Bundle::default();
    for (i, record) in parsed.records.iter().enumerate() {
        let damaged = |what: &str| BundleError::Damaged(format!("record {i}: {what}"));
        match record.first() {
            Some(0x01) => bundle.certificates.push(record[1..].to_vec()),
            Some(0x02) => {
                let len = record.get(1..3).ok_or_else(|| damaged("short"))?;
                let len = u16::from_be_bytes([len[0], len[1]]) as usize;
                let name = record
                    .get(3..3 + len)
                    .ok_or_else(|| damaged("short name"))?;
                let name =
                    String::from_utf8(name.to_vec()).map_err(|_| damaged("name is not UTF-8"))?;
                let sig = record
                    .get(3 + len..3 + len + 64)
                    .ok_or_else(|| damaged("short signature"))?;
                let mut s = [0u8; 64];
                s.copy_from_slice(sig);
                let change = record
                    .get(3 + len + 64..)
                    .ok_or_else(|| damaged("no change"))?;
                bundle
                    .changes
                    .push((name, ChangeSignature(s), change.to_vec()));
            }
            Some(0x03) => {
                let id: [u8; 32] = record
                    .get(1..)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| damaged("bad device id"))?;
                bundle.from = Some(id);
            }
            _ => return Err(damaged("unknown record type")),
        }
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Bundle {
        Bundle {
            certificates: vec![b"{\"cert\":1}".to_vec()],
            changes: vec![("community".into(), ChangeSignature([7; 64]), vec![1, 2, 3])],
            from: Some([9; 32]),
        }
    }

    #[test]
    fn round_trip() {
        let c = CommunityId([1; 32]);
        let bytes = encode(&c, &sample());
        assert_eq!(decode(&bytes, &c), Ok(sample()));
        assert!(matches!(
            decode(&bytes, &CommunityId([2; 32])),
            Err(BundleError::OtherCommunity(_))
        ));
    }

    #[test]
    fn every_truncation_and_every_flipped_bit_is_refused() {
        let c = CommunityId([1; 32]);
        let bytes = encode(&c, &sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], &c).is_err(), "cut {cut}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(decode(&b, &c).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn every_mutation_of_a_bundle_is_refused(
            certs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..3),
            changes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..3),
            pos in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let c = CommunityId([3; 32]);
            let bundle = Bundle {
                certificates: certs,
                changes: changes
                    .into_iter()
                    .map(|bytes| ("community".to_string(), ChangeSignature([9; 64]), bytes))
                    .collect(),
                from: Some([4; 32]),
            };
            let bytes = encode(&c, &bundle);
            let decoded = decode(&bytes, &c);
            prop_assert!(decoded.is_ok());
            let mut mutated = bytes.clone();
            let i = pos.index(mutated.len());
            mutated[i] ^= flip;
            prop_assert!(decode(&mutated, &c).is_err(), "a change at byte {} went unnoticed", i);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let c = CommunityId([1; 32]);
            let _ = decode(&bytes, &c);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&c.0);
            framed.extend_from_slice(&sha256(&bytes));
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed, &c);
        }
    }
}
