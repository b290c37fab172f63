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
//! It is a cache. It is written without fsync: fresh at a document's first
//! compaction (from its log) or when a document arrives whole, extended
//! when a log is folded into the snapshot, and rewritten when the document
//! had to be loaded to be sent. It is used only when its chunks are exactly
//! the changes of this device's attested snapshot: each chunk's SHA-256
//! (its Automerge hash, which covers every byte after the checksum field,
//! the checksum field itself being checked too) must be in the snapshot's
//! signature table, none twice, and every entry of the table met. The
//! signatures sent are the table's. Anything else (no history, a torn or
//! stale one, a snapshot of another device) means the document is loaded
//! and its changes rebuilt, as before; what is sent is the same either way.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use sha2::{Digest, Sha256};

use super::attestation;
use super::doclog::DocFiles;
use super::frame::{self, CHANGES_MAGIC, HISTORY_MAGIC, SNAPSHOT_MAGIC};
use super::fsutil::{read_if_exists, write_cache};
use super::{Result, StoreError};
use crate::sync::chunks::split;
use crate::sync::whole::{WHOLE_BYTES, WholeDoc};
use crate::trust::{CommunityId, DeviceId};

/// The first bytes of every Automerge chunk.
const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Bytes of a signature-table entry in a snapshot: hash (32) ‖ signature (64).
const SIG_ENTRY: usize = 96;

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
        if chunks.len() > frame::MAX_PAYLOAD {
            return forget(files);
        }
        bytes.extend(frame::encode(chunks));
    }
    write_cache(&files.history, &bytes)
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
    /// torn tail left out, as loading does).
    pub fn before_compaction(files: &DocFiles) -> Fold {
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
                    chunks.extend_from_slice(chunk);
                }
            }
            Err(_) => return Fold::Forget,
        }
        if files.snapshot.exists() {
            Fold::Extend(chunks)
        } else {
            Fold::Fresh(chunks)
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
    if chunks.len() > frame::MAX_PAYLOAD {
        return forget(files);
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&files.history)
        .map_err(|e| StoreError::io(&files.history, e))?;
    file.write_all(&frame::encode(chunks))
        .map_err(|e| StoreError::io(&files.history, e))
}

/// Write the history from `whole`, the document's changes rebuilt from it
/// as loaded (its snapshot and its log): all but the log's. Nothing without
/// a snapshot (the log is then the whole document) or with a log that
/// cannot be read. A cache: failing is only a note in the debug log.
pub fn rebuilt(files: &DocFiles, whole: &WholeDoc) {
    if !files.snapshot.exists() {
        return;
    }
    let mut in_log = BTreeSet::new();
    match read_if_exists(&files.log) {
        Ok(None) => {}
        Ok(Some(bytes)) => {
            let Ok(parsed) = frame::parse(&bytes, CHANGES_MAGIC) else {
                return;
            };
            for record in parsed.records {
                let Some(hash) = record.get(64..).and_then(change_hash) else {
                    return;
                };
                in_log.insert(hash);
            }
        }
        Err(_) => return,
    }
    let Ok(chunks) = split(&whole.changes) else {
        return;
    };
    let mut history = Vec::with_capacity(whole.changes.len());
    for ((_, chunk), (hash, _)) in chunks.into_iter().zip(&whole.signatures) {
        if !in_log.contains(hash) {
            history.extend_from_slice(chunk);
        }
    }
    if let Err(e) = write(files, &history) {
        tracing::debug!("history of {} not kept: {e}", files.name);
    }
}

/// Document `name` ready to send whole, read from its files without
/// loading it, or `None` if its history cannot be used (then it is loaded
/// and its changes rebuilt). Its changes are the snapshot's, from the
/// history, then the log's; the snapshot must be attested by `own_device`.
pub fn whole(
    files: &DocFiles,
    own_device: Option<&DeviceId>,
    community: &CommunityId,
) -> Option<WholeDoc> {
    let mut changes = Vec::new();
    let mut signatures = Vec::new();
    let mut held = BTreeSet::new();
    if let Some(snapshot) = read_if_exists(&files.snapshot).ok()? {
        let parsed = frame::parse(&snapshot, SNAPSHOT_MAGIC).ok()?;
        let [saved, table, heads, attested] = parsed.records[..] else {
            return None;
        };
        let own = own_device?;
        if parsed.torn_at.is_some()
            || table.len() % SIG_ENTRY != 0
            || !attestation::holds(
                attested,
                own,
                community,
                &files.name,
                &[saved, table, heads],
            )
        {
            return None;
        }
        let table: BTreeMap<[u8; 32], &[u8]> = table
            .chunks_exact(SIG_ENTRY)
            .map(|e| (e[..32].try_into().unwrap_or([0; 32]), &e[32..]))
            .collect();
        let history = read_if_exists(&files.history).ok()??;
        let parsed = frame::parse(&history, HISTORY_MAGIC).ok()?;
        if parsed.torn_at.is_some() {
            return None;
        }
        for record in parsed.records {
            for (_, chunk) in split(record).ok()? {
                let hash = change_hash(chunk)?;
                let sig = table.get(&hash)?;
                if !held.insert(hash) {
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
