//! Framed records: the on-disk unit of every log.
//!
//! A file starts with an 8-byte magic naming its kind, then holds records of
//! `length (u32 LE) ‖ CRC-32 of length (u32 LE) ‖ CRC-32 of payload (u32 LE)
//! ‖ payload`. The length has its own checksum so that a damaged length is
//! caught rather than mistaken for the end of the file. Reading tells a torn
//! tail (a write cut short by a crash: the file ends inside a record, or in
//! zeros) from corruption (anything else), so the first can be cut cleanly
//! and the second refused.

/// Bytes before the first record.
pub const MAGIC_LEN: usize = 8;
/// Bytes of a record header.
pub const HEADER_LEN: usize = 12;
/// The largest payload accepted; checked before allocating.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// Magic of a certificate log.
pub const CERTS_MAGIC: &[u8; MAGIC_LEN] = b"CVCERT01";
/// Magic of a change log.
pub const CHANGES_MAGIC: &[u8; MAGIC_LEN] = b"CVCHNG01";
/// Magic of a snapshot.
pub const SNAPSHOT_MAGIC: &[u8; MAGIC_LEN] = b"CVSNAP01";
/// Magic of a draft digest (`super::digest`).
pub const DIGEST_MAGIC: &[u8; MAGIC_LEN] = b"CVDGST03";
/// Magic of a document's history (`super::history`).
pub const HISTORY_MAGIC: &[u8; MAGIC_LEN] = b"CVHIST01";

/// Encode one record.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc32fast::hash(&len).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// What a file holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The intact records, in order.
    pub records: Vec<&'a [u8]>,
    /// Where intact data ends, if a torn tail follows.
    pub torn_at: Option<usize>,
}

/// Why a file cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The file does not start with the expected magic.
    #[error("not a {expected} file (bad magic)")]
    BadMagic {
        /// What kind of file was expected.
        expected: String,
    },
    /// A record is damaged and more data follows it.
    #[error("record {index} at byte {offset} is damaged ({reason})")]
    Damaged {
        /// Record number, from 0.
        index: usize,
        /// Byte offset of its header.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Split a file into records, checking magic, lengths and checksums.
pub fn parse<'a>(bytes: &'a [u8], magic: &[u8; MAGIC_LEN]) -> Result<Parsed<'a>, FrameError> {
    let kind = String::from_utf8_lossy(magic).into_owned();
    if bytes.len() < MAGIC_LEN {
        // A crash while the file was being created leaves a prefix of the magic.
        if magic.starts_with(bytes) {
            return Ok(Parsed {
                records: Vec::new(),
                torn_at: Some(0),
            });
        }
        return Err(FrameError::BadMagic { expected: kind });
    }
    if &bytes[..MAGIC_LEN] != magic {
        return Err(FrameError::BadMagic { expected: kind });
    }
    let mut records = Vec::new();
    let mut offset = MAGIC_LEN;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let torn = Parsed {
            records: Vec::new(),
            torn_at: Some(offset),
        };
        // A crash can leave the tail short, or grown but never written (zeros).
        if rest.len() < HEADER_LEN || rest.iter().all(|b| *b == 0) {
            return Ok(Parsed { records, ..torn });
        }
        let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
        let len_crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let crc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let damaged = |reason: &str| FrameError::Damaged {
            index: records.len(),
            offset,
            reason: reason.to_string(),
        };
        if crc32fast::hash(&len_bytes) != len_crc {
            return Err(damaged("length checksum mismatch"));
        }
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len > MAX_PAYLOAD {
            return Err(damaged("length beyond the limit"));
        }
        let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
            // The header is intact but the payload runs past the end.
            return Ok(Parsed { records, ..torn });
        };
        if crc32fast::hash(payload) != crc {
            if HEADER_LEN + len == rest.len() {
                // The last record, complete in length but not in content: a
                // write cut short after the file grew.
                return Ok(Parsed { records, ..torn });
            }
            return Err(damaged("checksum mismatch"));
        }
        records.push(payload);
        offset += HEADER_LEN + len;
    }
    Ok(Parsed {
        records,
        torn_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(payloads: &[&[u8]]) -> Vec<u8> {
        let mut f = CHANGES_MAGIC.to_vec();
        for p in payloads {
            f.extend(encode(p));
        }
        f
    }

    #[test]
    fn round_trip() {
        let f = file(&[b"one", b"", b"three"]);
        let p = parse(&f, CHANGES_MAGIC).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.records, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(p.torn_at, None);
    }

    #[test]
    fn every_truncation_is_a_clean_torn_tail() {
        let f = file(&[b"one", b"two", b"three"]);
        let whole = parse(&f, CHANGES_MAGIC).unwrap_or_else(|e| panic!("{e}"));
        for cut in 0..f.len() {
            let p = parse(&f[..cut], CHANGES_MAGIC).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            // Every record kept is an intact prefix of the original.
            assert_eq!(p.records[..], whole.records[..p.records.len()]);
            let clean_end = MAGIC_LEN
                + p.records
                    .iter()
                    .map(|r| HEADER_LEN + r.len())
                    .sum::<usize>();
            let expected = if cut < MAGIC_LEN { 0 } else { clean_end };
            assert!(
                p.torn_at.is_none() || p.torn_at == Some(expected),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn a_flipped_byte_in_the_middle_is_corruption() {
        let mut f = file(&[b"one", b"two", b"three"]);
        let second_payload = MAGIC_LEN + HEADER_LEN + 3 + HEADER_LEN;
        f[second_payload] ^= 0x01;
        assert!(matches!(
            parse(&f, CHANGES_MAGIC),
            Err(FrameError::Damaged { index: 1, .. })
        ));
    }

    #[test]
    fn a_damaged_last_record_is_a_torn_tail() {
        let mut f = file(&[b"one", b"two"]);
        let last = f.len() - 1;
        f[last] ^= 0xff;
        let p = parse(&f, CHANGES_MAGIC).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.records.len(), 1);
        assert!(p.torn_at.is_some());
    }

    #[test]
    fn wrong_magic_and_absurd_length_are_refused() {
        let f = file(&[b"x"]);
        assert!(matches!(
            parse(&f, CERTS_MAGIC),
            Err(FrameError::BadMagic { .. })
        ));
        let mut g = CHANGES_MAGIC.to_vec();
        let huge = u32::MAX.to_le_bytes();
        g.extend_from_slice(&huge);
        g.extend_from_slice(&crc32fast::hash(&huge).to_le_bytes());
        g.extend_from_slice(&[0; 4]);
        assert!(matches!(
            parse(&g, CHANGES_MAGIC),
            Err(FrameError::Damaged { .. })
        ));
    }

    #[test]
    fn a_damaged_length_in_the_middle_is_corruption_not_a_tail() {
        for bit in 0..32 {
            let mut f = file(&[b"one", b"two", b"three"]);
            f[MAGIC_LEN + bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(
                    parse(&f, CHANGES_MAGIC),
                    Err(FrameError::Damaged { index: 0, .. })
                ),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn a_zeroed_tail_is_torn() {
        let mut f = file(&[b"one"]);
        f.extend([0u8; 40]);
        let p = parse(&f, CHANGES_MAGIC).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.records.len(), 1);
        assert!(p.torn_at.is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&bytes, CHANGES_MAGIC);
            let mut with_magic = CHANGES_MAGIC.to_vec();
            with_magic.extend(&bytes);
            let _ = parse(&with_magic, CHANGES_MAGIC);
        }

        #[test]
        fn flips_are_detected_or_cut(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
            pos in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
            let mut f = file(&refs);
            let i = MAGIC_LEN + pos.index(f.len() - MAGIC_LEN);
            f[i] ^= 1 << bit;
            // A flipped bit is never silent, and it never passes for a torn
            // tail unless it is in the last record: either an error, or the
            // last record cut as torn, with every other record intact.
            if let Ok(p) = parse(&f, CHANGES_MAGIC) {
                for (got, want) in p.records.iter().zip(&refs) {
                    prop_assert_eq!(got, want);
                }
                prop_assert!(p.records.len() + 1 >= refs.len(), "{} of {}", p.records.len(), refs.len());
                prop_assert!(p.records.len() == refs.len() || p.torn_at.is_some());
            }
        }
    }
}
