//! `docs/<name>.history`: the change chunks a document's snapshot holds,
//! kept as they were made, so that the document can be sent whole without
//! loading it.
//!
//! A device that holds none of a document receives it whole: every change
//! chunk with its signature (`crate::sync::whole`). Automerge's snapshot
//! keeps operations, not changes, so the sender used to load the document
//! and rebuild every change from it: about 18 ms for a 300-edit draft, on
//! the cores the joining device also needs when both share a machine, and
//! a join sends every document. The history keeps the chunks themselves.
//!
//! It is a cache, written without fsync, each record deflated (change
//! chunks are mostly text: about 40 % of their size at the fastest level):
//! fresh at a document's first compaction (from its log), extended when a
//! log is folded into the snapshot, and rewritten when the document had to
//! be loaded to be sent. A document that arrived whole gets none until it
//! is first sent whole from this device (writing one would slow every join
//! for a newcomer that may never send it).
//!
//! It is used only when its chunks are exactly the changes of this
//! device's attested snapshot: each chunk's SHA-256 (its Automerge hash,
//! which covers every byte after the checksum field, the checksum field
//! itself being checked too) must be in the snapshot's signature table,
//! none twice, and every entry of the table met. The signatures sent are
//! the table's. Anything else (no history, a torn or stale one, a snapshot
//! of another device, a change a load would now leave out) means the
//! document is loaded and its changes rebuilt, as before.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use sha2::{Digest, Sha256};

use super::attestation;
use super::doclog::{DocFiles, table_entries};
use super::frame::{self, CHANGES_MAGIC, HISTORY_MAGIC, SNAPSHOT_MAGIC};
use super::fsutil::{read_if_exists, write_cache};
use super::{Result, StoreError};
use crate::sync::chunks::{CHUNK_MAGIC, split, uleb128};
use crate::sync::whole::{WHOLE_BYTES, WholeDoc};
use crate::trust::signed_change::{Standing, check_author};
use crate::trust::{DeviceId, Membership};

/// The Automerge hash of one change chunk (type 1) read from disk, or
/// `None` if its magic, type or checksum field is not what Automerge would
/// write. Automerge hashes the chunk type, its length and its body: every
/// byte after the checksum field, as written (a hash found in a signature
/// table then means the very bytes that were signed).
pub fn change_hash(chunk: &[u8]) -> Option<[u8; 32]> {
    if chunk.len() < 10 || chunk[..4] != CHUNK_MAGIC || chunk[8] != 1 {
        return None;
    }
    let hash: [u8; 32] = Sha256::digest(&chunk[8..]).into();
    (chunk[4..8] == hash[..4]).then_some(hash)
}

/// Replace the history with `chunks` (change chunks one after the other;
/// no chunks means a document with no snapshot yet).
pub fn write(files: &DocFiles, chunks: &[u8]) -> Result<()> {
    let mut bytes = HISTORY_MAGIC.to_vec();
    if !chunks.is_empty() {
        let Some(record) = record(files, chunks)? else {
            return forget(files);
        };
        bytes.extend(record);
    }
    write_cache(&files.history, &bytes)
}

/// One record of `chunks`, deflated (fast: text compresses to about 40 %
/// at a tenth of the cost of the default level); `None` if too large to be
/// sent whole anyway.
fn record(files: &DocFiles, chunks: &[u8]) -> Result<Option<Vec<u8>>> {
    if chunks.len() > WHOLE_BYTES {
        return Ok(None);
    }
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let deflated = deflater
        .write_all(chunks)
        .and_then(|()| deflater.finish())
        .map_err(|e| StoreError::io(&files.history, e))?;
    Ok(Some(frame::encode(&deflated)))
}

/// The change chunks of one record, or `None` if it does not inflate
/// within `room` bytes.
fn inflate(record: &[u8], room: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut chunks = Vec::new();
    let limit = u64::try_from(room).ok()?.saturating_add(1);
    flate2::read::DeflateDecoder::new(record)
        .take(limit)
        .read_to_end(&mut chunks)
        .ok()?;
    (chunks.len() <= room).then_some(chunks)
}

/// Remove the history (it would be incomplete).
pub fn forget(files: &DocFiles) -> Result<()> {
    match std::fs::remove_file(&files.history) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::io(&files.history, e))
        }
        _ => Ok(()),
    }
}

/// What a compaction does to the history: the log's chunks join it. Read
/// before the snapshot is written.
pub enum Fold {
    /// No snapshot yet: the log is the whole document.
    Fresh(Vec<u8>),
    /// A snapshot exists: its history, if any, gains the log's chunks.
    Extend(Vec<u8>),
    /// The log cannot be read: the history would be incomplete.
    Forget,
}

impl Fold {
    /// What the compaction of `files` will fold, read from its log (a
    /// torn tail left out, as loading does), without the changes the
    /// snapshot already holds (a crash between a compaction's snapshot and
    /// its emptied log leaves them in both).
    pub fn before_compaction(files: &DocFiles) -> Fold {
        let in_snapshot: Option<BTreeSet<[u8; 32]>> = match read_if_exists(&files.snapshot) {
            Ok(None) => None,
            Ok(Some(bytes)) => {
                let table = frame::parse(&bytes, SNAPSHOT_MAGIC)
                    .ok()
                    .and_then(|parsed| table_entries(parsed.records.get(1)?));
                match table {
                    Some(entries) => Some(entries.map(|(hash, _)| hash).collect()),
                    None => return Fold::Forget,
                }
            }
            Err(_) => return Fold::Forget,
        };
        let mut chunks = Vec::new();
        match read_if_exists(&files.log) {
            Ok(None) => {}
            Ok(Some(bytes)) => {
                let Ok(parsed) = frame::parse(&bytes, CHANGES_MAGIC) else {
                    return Fold::Forget;
                };
                for record in parsed.records {
                    let Some(chunk) = record.get(64..) else {
                        return Fold::Forget;
                    };
                    let Some(hash) = change_hash(chunk) else {
                        return Fold::Forget;
                    };
                    if !in_snapshot.as_ref().is_some_and(|s| s.contains(&hash)) {
                        chunks.extend_from_slice(chunk);
                    }
                }
            }
            Err(_) => return Fold::Forget,
        }
        match in_snapshot {
            Some(_) => Fold::Extend(chunks),
            None => Fold::Fresh(chunks),
        }
    }

    /// Carry it out once the new snapshot is written. A cache: failing is
    /// only a warning, and the next send whole rebuilds it.
    pub fn apply(self, files: &DocFiles) {
        let done = match self {
            Fold::Fresh(chunks) => write(files, &chunks),
            Fold::Extend(chunks) => extend(files, &chunks),
            Fold::Forget => forget(files),
        };
        if let Err(e) = done {
            tracing::debug!("history of {} not kept: {e}", files.name);
            let _ = forget(files);
        }
    }
}

/// Append `chunks` as one record to a history that exists (one missing
/// while a snapshot exists could not be completed).
fn extend(files: &DocFiles, chunks: &[u8]) -> Result<()> {
    if chunks.is_empty() || !files.history.exists() {
        return Ok(());
    }
    let Some(record) = record(files, chunks)? else {
        return forget(files);
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&files.history)
        .map_err(|e| StoreError::io(&files.history, e))?;
    file.write_all(&record)
        .map_err(|e| StoreError::io(&files.history, e))
}

/// Write the history from `whole`, the document's changes rebuilt from it
/// as loaded: those of its snapshot (the entries of its signature table).
/// Nothing unless the snapshot is attested by `own_device` (the history
/// could not be used). A cache: failing is only a note in the debug log.
pub fn rebuilt(files: &DocFiles, membership: &Membership, own_device: &DeviceId, whole: &WholeDoc) {
    let Some(snapshot) = read_if_exists(&files.snapshot).ok().flatten() else {
        return;
    };
    let Some(table) = attested_table(files, &snapshot, membership, own_device) else {
        return;
    };
    let Ok(chunks) = split(&whole.changes) else {
        return;
    };
    let mut history = Vec::with_capacity(whole.changes.len());
    for ((_, chunk), (hash, _)) in chunks.into_iter().zip(&whole.signatures) {
        if table.contains_key(hash) {
            history.extend_from_slice(chunk);
        }
    }
    if let Err(e) = write(files, &history) {
        tracing::debug!("history of {} not kept: {e}", files.name);
    }
}

/// The signature table of `snapshot` (the bytes of `files.snapshot`), hash
/// → signature, if it is whole and attested by `own_device`.
fn attested_table(
    files: &DocFiles,
    snapshot: &[u8],
    membership: &Membership,
    own_device: &DeviceId,
) -> Option<BTreeMap<[u8; 32], [u8; 64]>> {
    let parsed = frame::parse(snapshot, SNAPSHOT_MAGIC).ok()?;
    let [saved, table, heads, attested] = parsed.records[..] else {
        return None;
    };
    let holds = attestation::holds(
        attested,
        own_device,
        &membership.community,
        &files.name,
        &[saved, table, heads],
    );
    if parsed.torn_at.is_some() || !holds {
        return None;
    }
    Some(table_entries(table)?.collect())
}

/// The actor of a change chunk: after the header, the body starts with the
/// dependencies (a count, then 32 bytes each) and the actor (a length,
/// then its bytes), all counts unsigned LEB128.
pub fn chunk_actor(chunk: &[u8]) -> Option<&[u8]> {
    let number = |at: &mut usize| usize::try_from(uleb128(chunk, at)?).ok();
    let mut at = 9;
    let _body_len = number(&mut at)?;
    let deps = number(&mut at)?;
    at = at.checked_add(deps.checked_mul(32)?)?;
    let actor_len = number(&mut at)?;
    chunk.get(at..at.checked_add(actor_len)?)
}

/// Document `name` ready to send whole, read from its files without
/// loading it, or `None` if its history cannot be used (then it is loaded
/// and its changes rebuilt). Its changes are the snapshot's, from the
/// history, then the log's; the snapshot must be attested by `own_device`,
/// and every change's author in good standing now (a removed member's
/// later change is left out of a loaded document, `crate::trust::removal`:
/// that takes the slow way).
pub fn whole(files: &DocFiles, membership: &Membership, own_device: &DeviceId) -> Option<WholeDoc> {
    let mut changes = Vec::new();
    let mut signatures = Vec::new();
    let mut held = BTreeSet::new();
    let current = |chunk: &[u8], hash: &[u8; 32]| {
        chunk_actor(chunk).is_some_and(|actor| {
            matches!(
                check_author(membership, &files.name, actor, hash),
                Ok((_, Standing::Current))
            )
        })
    };
    if let Some(snapshot) = read_if_exists(&files.snapshot).ok()? {
        let table = attested_table(files, &snapshot, membership, own_device)?;
        let history = read_if_exists(&files.history).ok()??;
        let parsed = frame::parse(&history, HISTORY_MAGIC).ok()?;
        if parsed.torn_at.is_some() {
            return None;
        }
        for record in parsed.records {
            let record = inflate(record, WHOLE_BYTES.saturating_sub(changes.len()))?;
            for (_, chunk) in split(&record).ok()? {
                let hash = change_hash(chunk)?;
                let sig = table.get(&hash)?;
                if !held.insert(hash) || !current(chunk, &hash) {
                    return None;
                }
                changes.extend_from_slice(chunk);
                signatures.push((hash, sig.to_vec()));
            }
        }
        if held.len() != table.len() {
            return None;
        }
    }
    let log = read_if_exists(&files.log).ok()?.unwrap_or_default();
    if !log.is_empty() {
        let parsed = frame::parse(&log, CHANGES_MAGIC).ok()?;
        for record in parsed.records {
            let (sig, chunk) = record.split_at_checked(64)?;
            let hash = change_hash(chunk)?;
            if !current(chunk, &hash) {
                return None;
            }
            // A crash between a compaction's snapshot and its emptied log
            // leaves a change in both.
            if held.insert(hash) {
                changes.extend_from_slice(chunk);
                signatures.push((hash, sig.to_vec()));
            }
        }
    }
    let whole = WholeDoc {
        doc: files.name.clone(),
        changes,
        signatures,
    };
    (!held.is_empty() && whole.size() <= WHOLE_BYTES).then_some(whole)
}
