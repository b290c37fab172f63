//! Taking an Automerge sync message apart before trusting it.
//!
//! A sync message carries opaque chunks: single changes, or (in Automerge's
//! V2 format) a whole compressed document. We split them, decode every change
//! on scratch data with panics contained (Automerge has known panics on
//! crafted input), and rebuild the message with only the changes we accept.

use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::Change;
use automerge::sync::{ChunkList, Message};

use crate::trust::signed_change::decode_change;

/// The first bytes of every Automerge chunk.
pub const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// The unsigned LEB128 number at `bytes[*at..]` (at most ten bytes); `at`
/// moves past it.
pub fn uleb128(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Split a blob into (chunk type, chunk bytes).
pub fn split(mut data: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 10 || data[0..4] != CHUNK_MAGIC {
            return Err("bad chunk magic".into());
        }
        let kind = data[8];
        let mut len: u64 = 0;
        let mut shift = 0;
        let mut i = 9;
        loop {
            let byte = *data.get(i).ok_or("truncated chunk length")?;
            if shift > 56 {
                return Err("chunk length overflows".into());
            }
            len |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            i += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| i.checked_add(l))
            .ok_or("chunk length overflows")?;
        if end > data.len() {
            return Err("truncated chunk".into());
        }
        out.push((kind, &data[..end]));
        data = &data[end..];
    }
    Ok(out)
}

/// Every change carried by a sync message, decoded on scratch data, on
/// every core once there are many (a catch-up's message for one document
/// can carry a thousand changes, each parsed and hashed). The error is the
/// first failure in order, as if each blob were split and its chunks
/// decoded in turn.
pub fn changes_in(message: &Message) -> Result<Vec<Change>, String> {
    let mut chunks = Vec::new();
    let mut unsplit = None;
    for blob in message.changes.iter() {
        match split(blob) {
            Ok(parts) => chunks.extend(parts),
            Err(e) => {
                unsplit = Some(e);
                break;
            }
        }
    }
    let changes = decode_all(chunks, DECODE_APART_FROM)?;
    match unsplit {
        Some(e) => Err(e),
        None => Ok(changes),
    }
}

/// Every change in a blob of change chunks, decoded on scratch data, in
/// turn: a caller that checks several blobs at once already uses every
/// core.
pub fn decode_chunks(blob: &[u8]) -> Result<Vec<Change>, String> {
    decode_all(split(blob)?, usize::MAX)
}

/// Decode change chunks, on every core from `apart_from` chunks on; the
/// first that fails, in order, is the error.
fn decode_all(chunks: Vec<(u8, &[u8])>, apart_from: usize) -> Result<Vec<Change>, String> {
    crate::parallel::in_order(
        chunks,
        apart_from,
        |(kind, bytes)| match kind {
            1 => guarded(|| decode_change(bytes)),
            // Whole documents (type 0) and compressed changes (type 2) can
            // inflate without bound, and convene peers never send them:
            // V2 is never advertised.
            k => Err(format!("chunk type {k} is not accepted")),
        },
        |_| Err("the document library failed on these bytes".into()),
    )
    .into_iter()
    .collect()
}

/// A message's chunks are decoded on every core from this many on: below,
/// starting the threads costs more than it saves.
const DECODE_APART_FROM: usize = 64;

/// Refuse Bloom filters that would make Automerge divide by zero or
/// reserve absurd memory when it answers (`have` entries come from the peer).
pub fn check_have(message: &Message) -> Result<(), String> {
    if message.have.len() > 64 {
        return Err(format!("{} 'have' entries", message.have.len()));
    }
    for have in &message.have {
        let bytes = have.bloom.to_bytes();
        let mut at = 0;
        let mut next = || uleb128(&bytes, &mut at);
        let entries = next().unwrap_or(0);
        if entries == 0 {
            continue;
        }
        let bits = next().unwrap_or(0);
        let probes = next().unwrap_or(0);
        if !(1..=64).contains(&bits) || !(1..=32).contains(&probes) {
            return Err(format!(
                "a Bloom filter with {bits} bits per entry and {probes} probes"
            ));
        }
    }
    Ok(())
}

/// The same message, carrying only `changes` (as single change chunks).
pub fn with_changes(message: Message, changes: &[Change]) -> Message {
    let chunks: Vec<Vec<u8>> = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
    Message {
        changes: ChunkList::from(chunks),
        ..message
    }
}

/// Run an Automerge call on untrusted bytes with panics contained.
pub fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err("the document library failed on these bytes".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};
    use proptest::prelude::*;

    fn change() -> Change {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "k", "v").unwrap_or_else(|e| panic!("{e}"));
        doc.commit();
        doc.get_last_local_change()
            .unwrap_or_else(|| panic!("no change"))
    }

    #[test]
    fn splits_concatenated_changes() {
        let a = change();
        let b = change();
        let mut blob = a.raw_bytes().to_vec();
        blob.extend_from_slice(b.raw_bytes());
        let parts = split(&blob).unwrap_or_default();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1, a.raw_bytes());
    }

    #[test]
    fn many_chunks_decode_in_order_and_the_first_failure_is_the_error() {
        // Enough chunks to be decoded on every core.
        let mut doc = AutoCommit::new();
        for i in 0..(DECODE_APART_FROM as i64 + 36) {
            doc.put(ROOT, "k", i).unwrap_or_else(|e| panic!("{e}"));
            doc.commit();
        }
        let changes = doc.get_changes(&[]);
        // One chunk per blob, as `with_changes` sends them.
        let message = |blobs: Vec<Vec<u8>>| Message {
            changes: ChunkList::from(blobs),
            ..automerge::sync::Message::decode(&empty_message()).unwrap_or_else(|e| panic!("{e}"))
        };
        let each: Vec<Vec<u8>> = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
        let decoded = changes_in(&message(each.clone())).unwrap_or_else(|e| panic!("{e}"));
        let hashes = |cs: &[Change]| cs.iter().map(Change::hash).collect::<Vec<_>>();
        assert_eq!(hashes(&decoded), hashes(&changes));
        let decoded = decode_chunks(&each.concat()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hashes(&decoded), hashes(&changes));

        // The 70th chunk damaged, a whole document as the 80th and a blob
        // that does not split as the 90th: the damage, which comes first,
        // is the error.
        let mut damaged = each[70].clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        let alone = decode_chunks(&damaged).err();
        assert!(alone.is_some(), "the damaged chunk decoded");
        let mut blobs = each.clone();
        blobs[70] = damaged;
        blobs[80] = doc.save();
        blobs[90] = b"not a chunk".to_vec();
        assert_eq!(changes_in(&message(blobs.clone())).err(), alone);
        // One blob is split whole before any chunk is decoded.
        assert_eq!(decode_chunks(&blobs[..90].concat()).err(), alone);
        // Without the damage, the whole document is the error; without
        // that too, the blob that does not split.
        blobs[70] = each[70].clone();
        let whole = changes_in(&message(blobs.clone())).err();
        assert_eq!(whole.as_deref(), Some("chunk type 0 is not accepted"));
        blobs[80] = each[80].clone();
        let unsplit = changes_in(&message(blobs)).err();
        assert_eq!(unsplit.as_deref(), Some("bad chunk magic"));
    }

    #[test]
    fn a_whole_document_chunk_is_refused() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "a", 1).unwrap_or_else(|e| panic!("{e}"));
        doc.commit();
        let msg = Message {
            changes: ChunkList::from(vec![doc.save()]),
            ..automerge::sync::Message::decode(&empty_message()).unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(changes_in(&msg).is_err());
    }

    #[test]
    fn a_degenerate_bloom_filter_is_refused() {
        let mut msg =
            automerge::sync::Message::decode(&empty_message()).unwrap_or_else(|e| panic!("{e}"));
        assert!(check_have(&msg).is_ok());
        // 1 entry, 0 bits per entry, 7 probes: Automerge would divide by zero.
        let bloom = automerge::sync::BloomFilter::try_from(&[1u8, 0, 7][..])
            .unwrap_or_else(|e| panic!("{e:?}"));
        msg.have = vec![automerge::sync::Have {
            last_sync: vec![],
            bloom,
        }];
        assert!(check_have(&msg).is_err());
    }

    fn empty_message() -> Vec<u8> {
        use automerge::sync::SyncDoc;
        let doc = automerge::Automerge::new();
        let mut state = automerge::sync::State::new();
        doc.generate_sync_message(&mut state)
            .map(|m| m.encode())
            .unwrap_or_default()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn arbitrary_blobs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = split(&bytes);
            let mut with_magic = CHUNK_MAGIC.to_vec();
            with_magic.extend(&bytes);
            if let Ok(parts) = split(&with_magic) {
                for (kind, chunk) in parts {
                    if kind == 1 {
                        let _ = guarded(|| Change::try_from(chunk).map_err(|e| e.to_string()));
                    }
                }
            }
        }
    }
}
