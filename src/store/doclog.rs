//! One document on disk: `docs/<name>.snapshot` plus `docs/<name>.log`.
//!
//! The log holds one record per signed change (`signature (64) ‖ change
//! chunk`); the snapshot holds a compacted Automerge save and the signatures
//! of every change in it. Loading verifies every signature against the
//! membership view before the document is handed over; Automerge calls on
//! bytes from disk are guarded so that damage is an error, never a panic.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use automerge::{AutoCommit, Change, ReadDoc};

use super::frame::{self, CHANGES_MAGIC, SNAPSHOT_MAGIC};
use super::fsutil::{append_durably, cut_torn_tail, read_if_exists, write_atomic};
use super::{Result, StoreError};
use crate::trust::Membership;
use crate::trust::signed_change::{ChangeSignature, verify_change};

/// Bytes of a signature-table entry in a snapshot: hash (32) ‖ signature (64).
const SIG_ENTRY: usize = 96;

/// A verified document with the signatures of all its changes.
pub struct LoadedDoc {
    /// The document.
    pub doc: AutoCommit,
    /// Change hash → device signature, for every change in the document.
    pub signatures: BTreeMap<[u8; 32], ChangeSignature>,
    /// How many records the log holds (a compaction hint).
    pub log_records: usize,
}

/// The two files of one document.
pub struct DocFiles {
    /// The document's name (`community`, `response-<id>`, `draft-<id>`).
    pub name: String,
    /// The append-only log.
    pub log: PathBuf,
    /// The compacted snapshot.
    pub snapshot: PathBuf,
}

impl DocFiles {
    /// The files of document `name` in `docs_dir`.
    pub fn new(docs_dir: &Path, name: &str) -> Self {
        DocFiles {
            name: name.to_string(),
            log: docs_dir.join(format!("{name}.log")),
            snapshot: docs_dir.join(format!("{name}.snapshot")),
        }
    }
}

fn guarded<T>(
    path: &Path,
    what: &str,
    f: impl FnOnce() -> std::result::Result<T, String>,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StoreError::corrupt(path, format!("{what}: {e}"))),
        Err(_) => Err(StoreError::corrupt(
            path,
            format!("{what}: the document library failed on these bytes"),
        )),
    }
}

fn refused(path: &Path, source: crate::trust::TrustError) -> StoreError {
    StoreError::Refused {
        path: path.to_path_buf(),
        source,
    }
}

/// Is this actor a device of a removed member? (Their changes after the
/// removal's cutoff are skipped on load rather than refused.)
fn removed_after_cutoff(membership: &Membership, actor: &[u8]) -> bool {
    crate::trust::signed_change::device_of_actor(actor)
        .and_then(|d| membership.owner_of(&d))
        .is_some_and(|m| m.removed)
}

/// Load and verify a document; `None` if it has no files. With `repair`, a
/// torn log tail is cut (and kept aside); without, it is only skipped.
pub fn load(
    files: &DocFiles,
    membership: &Membership,
    repair: bool,
    now: i64,
) -> Result<Option<LoadedDoc>> {
    let snapshot = read_if_exists(&files.snapshot)?;
    let log = read_if_exists(&files.log)?;
    if snapshot.is_none() && log.is_none() {
        return Ok(None);
    }
    let mut signatures = BTreeMap::new();
    let mut doc = match &snapshot {
        None => AutoCommit::new(),
        Some(bytes) => {
            let path = &files.snapshot;
            let parsed = frame::parse(bytes, SNAPSHOT_MAGIC)
                .map_err(|e| StoreError::corrupt(path, e.to_string()))?;
            let [saved, table] = parsed.records[..] else {
                return Err(StoreError::corrupt(
                    path,
                    "a snapshot holds exactly two records",
                ));
            };
            if parsed.torn_at.is_some() || table.len() % SIG_ENTRY != 0 {
                return Err(StoreError::corrupt(path, "the snapshot is incomplete"));
            }
            for entry in table.chunks_exact(SIG_ENTRY) {
                let mut hash = [0u8; 32];
                let mut sig = [0u8; 64];
                hash.copy_from_slice(&entry[..32]);
                sig.copy_from_slice(&entry[32..]);
                signatures.insert(hash, ChangeSignature(sig));
            }
            let mut doc = guarded(path, "cannot load the snapshot", || {
                AutoCommit::load(saved).map_err(|e| e.to_string())
            })?;
            for meta in doc.get_changes_meta(&[]) {
                let hash = meta.hash.0;
                let sig = signatures.get(&hash).ok_or_else(|| {
                    StoreError::corrupt(
                        path,
                        format!(
                            "change {} has no signature",
                            crate::ids::short(&hex::encode(hash))
                        ),
                    )
                })?;
                let actor = meta.actor.to_bytes();
                if let Err(e) = verify_change(membership, &files.name, actor, &hash, sig) {
                    // A removed member's change compacted here before this
                    // device learnt of the removal is part of the snapshot
                    // already; refusing it would make the store unloadable.
                    if !removed_after_cutoff(membership, actor) {
                        return Err(refused(path, e));
                    }
                    tracing::warn!(
                        "{} holds a change by a removed member from before this device learnt of the removal",
                        path.display()
                    );
                }
            }
            doc
        }
    };

    let mut log_records = 0;
    if let Some(bytes) = &log {
        let path = &files.log;
        let parsed = frame::parse(bytes, CHANGES_MAGIC)
            .map_err(|e| StoreError::corrupt(path, e.to_string()))?;
        if let Some(at) = parsed.torn_at {
            if repair {
                cut_torn_tail(path, bytes, at, now)?;
            } else {
                tracing::warn!(
                    "{} has a torn tail of {} bytes; it is skipped",
                    path.display(),
                    bytes.len() - at
                );
            }
        }
        let mut changes = Vec::with_capacity(parsed.records.len());
        let mut skipped = 0usize;
        for (i, record) in parsed.records.iter().enumerate() {
            if record.len() <= 64 {
                return Err(StoreError::corrupt(
                    path,
                    format!("record {i} is too short for a signed change"),
                ));
            }
            let mut sig = [0u8; 64];
            sig.copy_from_slice(&record[..64]);
            let change = guarded(path, &format!("record {i} is not a change"), || {
                Change::from_bytes(record[64..].to_vec()).map_err(|e| e.to_string())
            })?;
            let hash = change.hash().0;
            let actor = change.actor_id().to_bytes();
            let verdict =
                verify_change(membership, &files.name, actor, &hash, &ChangeSignature(sig));
            if let Err(e) = verdict {
                if removed_after_cutoff(membership, actor) {
                    // Written here before this device learnt of the removal:
                    // kept on disk, but never applied.
                    skipped += 1;
                    continue;
                }
                return Err(refused(path, e));
            }
            signatures.insert(hash, ChangeSignature(sig));
            changes.push(change);
        }
        log_records = changes.len();
        guarded(path, "cannot apply the logged changes", || {
            doc.apply_changes(changes).map_err(|e| e.to_string())
        })?;
        let missing = doc.get_missing_deps(&[]);
        if !missing.is_empty() && skipped == 0 {
            return Err(StoreError::corrupt(
                path,
                format!("{} changes refer to history that is missing", missing.len()),
            ));
        }
    }
    tracing::debug!(
        "loaded {} with {} verified changes ({} from the log)",
        files.log.display(),
        signatures.len(),
        log_records
    );
    Ok(Some(LoadedDoc {
        doc,
        signatures,
        log_records,
    }))
}

/// Append signed changes to the log and fsync.
pub fn append(files: &DocFiles, changes: &[(ChangeSignature, Vec<u8>)]) -> Result<()> {
    let mut bytes = Vec::new();
    for (sig, change) in changes {
        if 64 + change.len() > frame::MAX_PAYLOAD {
            return Err(StoreError::Missing(format!(
                "a change of {} bytes is over the {}-byte record limit; nothing was written",
                change.len(),
                frame::MAX_PAYLOAD
            )));
        }
        let mut payload = Vec::with_capacity(64 + change.len());
        payload.extend_from_slice(&sig.0);
        payload.extend_from_slice(change);
        bytes.extend(frame::encode(&payload));
    }
    append_durably(&files.log, CHANGES_MAGIC, &bytes)
}

/// Fold the log into a new snapshot: write the snapshot atomically, then an
/// empty log. A crash in between leaves changes in both, which is harmless.
pub fn compact(files: &DocFiles, loaded: &mut LoadedDoc) -> Result<()> {
    let saved = loaded.doc.save();
    let mut table = Vec::with_capacity(loaded.signatures.len() * SIG_ENTRY);
    for meta in loaded.doc.get_changes_meta(&[]) {
        let sig = loaded.signatures.get(&meta.hash.0).ok_or_else(|| {
            StoreError::corrupt(&files.log, "a change lost its signature during compaction")
        })?;
        table.extend_from_slice(&meta.hash.0);
        table.extend_from_slice(&sig.0);
    }
    let mut snapshot = SNAPSHOT_MAGIC.to_vec();
    snapshot.extend(frame::encode(&saved));
    snapshot.extend(frame::encode(&table));
    write_atomic(&files.snapshot, &snapshot)?;
    write_atomic(&files.log, CHANGES_MAGIC)?;
    loaded.log_records = 0;
    Ok(())
}
