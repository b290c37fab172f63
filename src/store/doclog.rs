//! One document on disk: `docs/<name>.snapshot` plus `docs/<name>.log`.
//!
//! The log holds one record per signed change (`signature (64) ‖ change
//! chunk`); the snapshot holds a compacted Automerge save, the signatures
//! of every change in it, and this device's attestation. Loading verifies every
//! signature against the membership view before the document is handed
//! over, except those in a snapshot this device attested (`super::attestation`), whose
//! authors are still checked against the membership; Automerge calls on
//! bytes from disk are guarded so that damage is an error, never a panic.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use automerge::{AutoCommit, Change, ReadDoc};

use super::frame::{self, CHANGES_MAGIC, SNAPSHOT_MAGIC};
use super::fsutil::{
    append_durably, check_seal, cut_torn_tail, read_if_exists, write_atomic, write_seal,
};
use super::{Result, StoreError};
use super::{attestation, history};
use crate::trust::removal::LateChanges;
use crate::trust::signed_change::{
    ChangeSignature, Standing, ToCheck, VerifiedChange, check_author, decode_change,
    verify_changes, verify_signed_all,
};
use crate::trust::{CommunityId, DeviceId, Membership, SecretKey, TrustError};

/// Bytes of a signature-table entry in a snapshot: hash (32) ‖ signature (64).
const SIG_ENTRY: usize = 96;

/// The entries of a snapshot's signature table, (change hash, signature),
/// or `None` if it is not a whole number of entries.
pub(super) fn table_entries(
    table: &[u8],
) -> Option<impl Iterator<Item = ([u8; 32], [u8; 64])> + '_> {
    table.len().is_multiple_of(SIG_ENTRY).then(|| {
        table.chunks_exact(SIG_ENTRY).map(|entry| {
            let mut hash = [0u8; 32];
            let mut sig = [0u8; 64];
            hash.copy_from_slice(&entry[..32]);
            sig.copy_from_slice(&entry[32..]);
            (hash, sig)
        })
    })
}

/// A verified document with the signatures of all its changes.
pub struct LoadedDoc {
    /// The document.
    pub doc: AutoCommit,
    /// Change hash → device signature, for every change in the document.
    pub signatures: BTreeMap<[u8; 32], ChangeSignature>,
    /// How many records the log holds (a compaction hint).
    pub log_records: usize,
    /// How many logged changes were left out because the document library
    /// would not apply them ([`load`]): the files then hold more than the
    /// document, and compacting it brings them back in line.
    pub left_out: usize,
}

impl LoadedDoc {
    /// A document with no files yet.
    pub fn empty() -> Self {
        LoadedDoc {
            doc: AutoCommit::new(),
            signatures: BTreeMap::new(),
            log_records: 0,
            left_out: 0,
        }
    }
}

/// The two files of one document.
pub struct DocFiles {
    /// The document's name (`community`, `response-<id>`, `draft-<id>`).
    pub name: String,
    /// The append-only log.
    pub log: PathBuf,
    /// The compacted snapshot.
    pub snapshot: PathBuf,
    /// The snapshot's change chunks, as made (a cache, `super::history`).
    pub history: PathBuf,
}

impl DocFiles {
    /// The files of document `name` in `docs_dir`.
    pub fn new(docs_dir: &Path, name: &str) -> Self {
        DocFiles {
            name: name.to_string(),
            log: docs_dir.join(format!("{name}.log")),
            snapshot: docs_dir.join(format!("{name}.snapshot")),
            history: docs_dir.join(format!("{name}.history")),
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

/// Load and verify a document; `None` if it has no files. With `repair`, a
/// torn log tail is cut (and kept aside); without, it is only skipped. A
/// snapshot attested by `own_device` has its authors checked but not its
/// signatures again; with `None`, every signature is checked.
///
/// A removed member's later change is dropped unless a change that stays
/// builds on it (`trust::removal`), also when it sits in the snapshot or the
/// log because this device applied it before it learnt of the removal.
///
/// A log change that passed every check but that the document library
/// will not apply (a sync keeps a delta to a document it has not loaded
/// without applying it, `crate::sync::delta`: a member's crafted change
/// could be one) is left out with a warning, with every log change that
/// builds on it, rather than make the document unreadable; the next
/// compaction leaves it out of the files.
pub fn load(
    files: &DocFiles,
    membership: &Membership,
    own_device: Option<&DeviceId>,
    repair: bool,
    now: i64,
) -> Result<Option<LoadedDoc>> {
    load_trusting(files, membership, own_device, repair, now, &Appended::new())
}

/// Log changes this process verified and appended, each with the
/// signature it verified ([`load_trusting`]).
pub type Appended = std::collections::HashMap<[u8; 32], ChangeSignature>;

/// [`load`], where the log changes in `appended` were verified by this
/// process when it appended them (a sync that kept a delta without
/// loading the document, `crate::sync::delta`): a logged change with that
/// hash and that signature has its author's standing checked again, as for
/// an attested snapshot, not its signature.
pub fn load_trusting(
    files: &DocFiles,
    membership: &Membership,
    own_device: Option<&DeviceId>,
    repair: bool,
    now: i64,
    appended: &Appended,
) -> Result<Option<LoadedDoc>> {
    let nothing = std::collections::HashSet::new();
    load_leaving_out(
        files, membership, own_device, repair, now, appended, &nothing,
    )
}

/// [`load_trusting`], leaving out the log changes `left_out` names and
/// those that build on them.
fn load_leaving_out(
    files: &DocFiles,
    membership: &Membership,
    own_device: Option<&DeviceId>,
    repair: bool,
    now: i64,
    appended: &Appended,
    left_out: &std::collections::HashSet<[u8; 32]>,
) -> Result<Option<LoadedDoc>> {
    let snapshot = read_if_exists(&files.snapshot)?;
    let log = read_if_exists(&files.log)?;
    if snapshot.is_none() && log.is_none() {
        return Ok(None);
    }
    let mut verified = LateChanges::default();
    // Every change checked, to make sure at the end that the document holds
    // no other (a change hidden in a snapshot behind missing history would
    // otherwise be applied once the log supplies that history).
    let mut checked: std::collections::HashSet<[u8; 32]> = std::collections::HashSet::new();
    // Note the verdict on one change read from disk, in the order read: the
    // first refused one refuses the file.
    let mut note = |path: &Path,
                    hash: [u8; 32],
                    deps: Vec<[u8; 32]>,
                    verdict: std::result::Result<(VerifiedChange, Standing), TrustError>|
     -> Result<()> {
        let (_, standing) = verdict.map_err(|e| refused(path, e))?;
        checked.insert(hash);
        verified.add(hash, deps, standing);
        Ok(())
    };
    let mut signatures = BTreeMap::new();
    let mut doc = match &snapshot {
        None => AutoCommit::new(),
        Some(bytes) => {
            let path = &files.snapshot;
            let parsed = frame::parse(bytes, SNAPSHOT_MAGIC)
                .map_err(|e| StoreError::corrupt(path, e.to_string()))?;
            let (saved, table, attested) = match parsed.records[..] {
                [saved, table] => (saved, table, false),
                [saved, table, heads, attestation] => {
                    let attested = own_device.is_some_and(|device| {
                        attestation::holds(
                            attestation,
                            device,
                            &membership.community,
                            &files.name,
                            &[saved, table, heads],
                        )
                    });
                    (saved, table, attested)
                }
                // An attestation of an earlier build, over two records:
                // checked in full, and replaced at the next compaction.
                [saved, table, _] => (saved, table, false),
                _ => {
                    return Err(StoreError::corrupt(
                        path,
                        "a snapshot holds two to four records",
                    ));
                }
            };
            let entries = table_entries(table)
                .filter(|_| parsed.torn_at.is_none())
                .ok_or_else(|| StoreError::corrupt(path, "the snapshot is incomplete"))?;
            for (hash, sig) in entries {
                signatures.insert(hash, ChangeSignature(sig));
            }
            let mut doc = guarded(path, "cannot load the snapshot", || {
                AutoCommit::load(saved).map_err(|e| e.to_string())
            })?;
            if !doc.get_missing_deps(&[]).is_empty() {
                return Err(StoreError::corrupt(
                    path,
                    "the snapshot holds changes whose history is missing",
                ));
            }
            // The changes up to the first without a signature, checked
            // together; a refused change before it is the error, as if each
            // were checked in turn.
            let metas = doc.get_changes_meta(&[]);
            let mut signed = Vec::with_capacity(metas.len());
            let mut unsigned = None;
            for meta in &metas {
                let Some(sig) = signatures.get(&meta.hash.0) else {
                    unsigned = Some(StoreError::corrupt(
                        path,
                        format!(
                            "change {} has no signature",
                            crate::ids::short(&hex::encode(meta.hash.0))
                        ),
                    ));
                    break;
                };
                signed.push(ToCheck {
                    doc: &files.name,
                    actor: meta.actor.to_bytes(),
                    hash: &meta.hash.0,
                    signature: sig,
                });
            }
            let verdicts = if attested {
                signed
                    .iter()
                    .map(|c| check_author(membership, c.doc, c.actor, c.hash))
                    .collect()
            } else {
                verify_signed_all(membership, &signed)
            };
            for (meta, verdict) in metas.iter().zip(verdicts) {
                let deps = meta.deps.iter().map(|d| d.0).collect();
                note(path, meta.hash.0, deps, verdict)?;
            }
            if let Some(e) = unsigned {
                return Err(e);
            }
            doc
        }
    };

    let mut logged = Vec::new();
    if let Some(bytes) = &log {
        let path = &files.log;
        let parsed = frame::parse(bytes, CHANGES_MAGIC)
            .map_err(|e| StoreError::corrupt(path, e.to_string()))?;
        check_seal(path, bytes.len() as u64, repair, now)?;
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
        // The records up to the first damaged one, their signatures then
        // checked together; a refused change before the damage is the
        // error, as if each record were checked as it is read.
        let mut damaged = None;
        logged.reserve(parsed.records.len());
        for (i, record) in parsed.records.iter().enumerate() {
            if record.len() <= 64 {
                damaged = Some(StoreError::corrupt(
                    path,
                    format!("record {i} is too short for a signed change"),
                ));
                break;
            }
            let mut sig = [0u8; 64];
            sig.copy_from_slice(&record[..64]);
            match guarded(path, &format!("record {i} is not a change"), || {
                decode_change(&record[64..])
            }) {
                Ok(change) => logged.push((ChangeSignature(sig), change)),
                Err(e) => {
                    damaged = Some(e);
                    break;
                }
            }
        }
        // What is left out, and every logged change that builds on it, as
        // if the log did not hold them (a removed member's late change one
        // of them builds on is not kept by it).
        if !left_out.is_empty() {
            let mut leaving = left_out.clone();
            loop {
                let before = leaving.len();
                for (_, change) in &logged {
                    if change.deps().iter().any(|d| leaving.contains(&d.0)) {
                        leaving.insert(change.hash().0);
                    }
                }
                if leaving.len() == before {
                    break;
                }
            }
            logged.retain(|(_, change)| !leaving.contains(&change.hash().0));
        }
        // Those this process appended: their authors only.
        let trusted: Vec<bool> = logged
            .iter()
            .map(|(sig, change)| appended.get(&change.hash().0) == Some(sig))
            .collect();
        let signed: Vec<_> = logged
            .iter()
            .zip(&trusted)
            .filter(|(_, trusted)| !**trusted)
            .map(|((sig, change), _)| (files.name.as_str(), change, sig))
            .collect();
        let mut checked_all = verify_changes(membership, &signed).into_iter();
        let mut verdicts = Vec::with_capacity(logged.len());
        for ((_, change), trusted) in logged.iter().zip(&trusted) {
            let verdict = if *trusted {
                check_author(
                    membership,
                    &files.name,
                    change.actor_id().to_bytes(),
                    &change.hash().0,
                )
            } else {
                checked_all.next().unwrap_or_else(|| {
                    Err(crate::trust::TrustError::ChangeRefused {
                        change: String::new(),
                        device: String::new(),
                        reason: "not checked".into(),
                    })
                })
            };
            verdicts.push(verdict);
        }
        for ((_, change), verdict) in logged.iter().zip(verdicts) {
            let deps = change.deps().iter().map(|d| d.0).collect();
            note(path, change.hash().0, deps, verdict)?;
        }
        if let Some(e) = damaged {
            return Err(e);
        }
    }

    let dropped = verified.dropped();
    if !dropped.is_empty() {
        tracing::warn!(
            "{}: {} change(s) by removed members are not applied",
            files.name,
            dropped.len()
        );
        let in_snapshot = doc
            .get_changes_meta(&[])
            .iter()
            .any(|m| dropped.contains(&m.hash.0));
        if in_snapshot {
            // Applied here before this device learnt of the removal: rebuild
            // the document without them.
            let kept: Vec<Change> = doc
                .get_changes(&[])
                .into_iter()
                .filter(|c| !dropped.contains(&c.hash().0))
                .collect();
            let mut rebuilt = AutoCommit::new();
            guarded(&files.snapshot, "cannot rebuild the snapshot", || {
                rebuilt.apply_changes(kept).map_err(|e| e.to_string())
            })?;
            doc = rebuilt;
        }
        signatures.retain(|h, _| !dropped.contains(h));
    }
    let mut changes = Vec::with_capacity(logged.len());
    for (sig, change) in logged {
        let hash = change.hash().0;
        if dropped.contains(&hash) {
            continue;
        }
        signatures.insert(hash, sig);
        changes.push(change);
    }
    let log_records = changes.len();
    let applied = guarded(&files.log, "cannot apply the logged changes", || {
        doc.apply_changes(changes).map_err(|e| e.to_string())
    });
    if let Err(e) = applied {
        // Once only: what is left out was found in one pass.
        if !left_out.is_empty() {
            return Err(e);
        }
        // The changes applied, read again from the log (none was left out
        // on this pass), and the document without them, to find each that
        // does not apply; then loaded again without those.
        let again = logged_changes(log.as_deref(), |hash| !dropped.contains(hash));
        let in_log: std::collections::HashSet<[u8; 32]> =
            again.iter().map(|c| c.hash().0).collect();
        let without_log = || -> Result<AutoCommit> {
            let base =
                load_leaving_out(files, membership, own_device, false, now, appended, &in_log)?;
            Ok(base.map(|loaded| loaded.doc).unwrap_or_default())
        };
        let found = refused_among(without_log()?, again, without_log)?;
        if found.is_empty() {
            return Err(e);
        }
        tracing::warn!(
            "{}: {} logged change(s) the document library will not apply are left out, with every logged change that builds on them (first: {})",
            files.name,
            found.len(),
            crate::ids::short(&hex::encode(found[0]))
        );
        let culprits = found.into_iter().collect();
        return load_leaving_out(
            files, membership, own_device, repair, now, appended, &culprits,
        );
    }
    let missing = doc.get_missing_deps(&[]);
    if !missing.is_empty() {
        return Err(StoreError::corrupt(
            &files.log,
            format!("{} changes refer to history that is missing", missing.len()),
        ));
    }
    if let Some(meta) = doc
        .get_changes_meta(&[])
        .into_iter()
        .find(|meta| !checked.contains(&meta.hash.0))
    {
        return Err(StoreError::corrupt(
            &files.snapshot,
            format!(
                "the document holds change {} that no record accounts for",
                crate::ids::short(&hex::encode(meta.hash.0))
            ),
        ));
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
        left_out: left_out.len(),
    }))
}

/// The heads of a document from its files, without loading it: the heads
/// recorded in a snapshot this device attested, combined with the changes
/// of the log (or the log alone). `None` when that cannot be read so (a
/// snapshot without this device's attestation, damage): load the document
/// instead. No signature is checked:
/// heads only tell a sync whether a document differs, and whatever is then
/// exchanged is loaded and verified first.
pub fn heads(
    files: &DocFiles,
    own_device: Option<&DeviceId>,
    community: &CommunityId,
) -> Option<Vec<automerge::ChangeHash>> {
    read_view(files, own_device, community, false).map(|view| view.heads)
}

/// A document as its files tell it without loading it ([`held`]).
pub struct FileView {
    /// Its heads, as [`heads`] reads them.
    pub heads: Vec<automerge::ChangeHash>,
    /// Every change its files hold: the attested snapshot's signature
    /// table and the log's changes.
    pub held: std::collections::HashSet<[u8; 32]>,
}

/// The heads of a document and every change its files hold, read as
/// [`heads`] reads them (`None` in the same cases). The snapshot's changes
/// are those of its signature table, which this device attested with the
/// snapshot; a log change is held whether or not a load would apply it (a
/// removed member's later change is in the files, and a change that builds
/// on it keeps it). A sync keeps a delta to a document it has not loaded
/// only if each change the delta builds on is held so (`crate::sync::delta`);
/// loading then checks every change again.
pub fn held(
    files: &DocFiles,
    own_device: Option<&DeviceId>,
    community: &CommunityId,
) -> Option<FileView> {
    read_view(files, own_device, community, true)
}

fn read_view(
    files: &DocFiles,
    own_device: Option<&DeviceId>,
    community: &CommunityId,
    with_held: bool,
) -> Option<FileView> {
    use std::collections::BTreeSet;
    let mut heads: BTreeSet<[u8; 32]> = BTreeSet::new();
    let mut held = std::collections::HashSet::new();
    if let Some(bytes) = read_if_exists(&files.snapshot).ok()? {
        let parsed = frame::parse(&bytes, SNAPSHOT_MAGIC).ok()?;
        let [saved, table, recorded, attestation] = parsed.records[..] else {
            return None;
        };
        let attested = parsed.torn_at.is_none()
            && recorded.len() % 32 == 0
            && own_device.is_some_and(|device| {
                attestation::holds(
                    attestation,
                    device,
                    community,
                    &files.name,
                    &[saved, table, recorded],
                )
            });
        if !attested {
            return None;
        }
        for head in recorded.chunks_exact(32) {
            heads.insert(head.try_into().ok()?);
        }
        if with_held {
            held.extend(table_entries(table)?.map(|(hash, _)| hash));
        }
    }
    if let Some(bytes) = read_if_exists(&files.log).ok()? {
        let parsed = frame::parse(&bytes, CHANGES_MAGIC).ok()?;
        let mut deps = BTreeSet::new();
        for record in &parsed.records {
            let change = record_change(record)?;
            heads.insert(change.hash().0);
            if with_held {
                held.insert(change.hash().0);
            }
            deps.extend(change.deps().iter().map(|d| d.0));
        }
        heads.retain(|h| !deps.contains(h));
    }
    Some(FileView {
        heads: heads.into_iter().map(automerge::ChangeHash).collect(),
        held,
    })
}

/// A panic in the document library while looking for the changes it will
/// not apply costs reading the document again; past this many, every
/// logged change not yet tried is left out too (peers send them again).
const MOST_PANICS: usize = 16;

/// The change of a log record (signature, then change chunk), if it
/// decodes (panics contained).
fn record_change(record: &[u8]) -> Option<Change> {
    catch_unwind(AssertUnwindSafe(|| decode_change(record.get(64..)?).ok())).ok()?
}

/// The changes of the log (`log`, its bytes) that `wanted` keeps, in log
/// order.
fn logged_changes(log: Option<&[u8]>, wanted: impl Fn(&[u8; 32]) -> bool) -> Vec<Change> {
    let Some(parsed) = log.and_then(|bytes| frame::parse(bytes, CHANGES_MAGIC).ok()) else {
        return Vec::new();
    };
    parsed
        .records
        .iter()
        .filter_map(|record| record_change(record))
        .filter(|change| wanted(&change.hash().0))
        .collect()
}

/// The changes among `changes` (in log order: each after those it builds
/// on) that the document library will not apply to `doc` one at a time,
/// skipping those that build on one of them or that it only queues (they
/// build on a change it does not hold). After a panic the document is read
/// again (`fresh`) and what applied so far applied again; past
/// [`MOST_PANICS`], every change not yet tried counts as refused.
fn refused_among(
    mut doc: AutoCommit,
    changes: Vec<Change>,
    fresh: impl Fn() -> Result<AutoCommit>,
) -> Result<Vec<[u8; 32]>> {
    let mut refused = Vec::new();
    let mut skipped: std::collections::HashSet<[u8; 32]> = std::collections::HashSet::new();
    let mut applied: Vec<Change> = Vec::new();
    let mut panics = 0;
    for change in changes {
        let hash = change.hash().0;
        if panics > MOST_PANICS {
            refused.push(hash);
            continue;
        }
        if change.deps().iter().any(|d| skipped.contains(&d.0)) {
            skipped.insert(hash);
            continue;
        }
        let one = change.clone();
        match catch_unwind(AssertUnwindSafe(|| doc.apply_changes(vec![one]))) {
            Ok(Ok(())) if doc.get_change_meta_by_hash(&change.hash()).is_some() => {
                applied.push(change);
            }
            // Queued: what it builds on is not here (a removed member's
            // late change the first pass kept for it, say).
            Ok(Ok(())) => {
                skipped.insert(hash);
            }
            Ok(Err(_)) => {
                refused.push(hash);
                skipped.insert(hash);
            }
            Err(_) => {
                refused.push(hash);
                skipped.insert(hash);
                panics += 1;
                if panics > MOST_PANICS {
                    continue;
                }
                doc = fresh()?;
                let again = applied.clone();
                if !matches!(
                    catch_unwind(AssertUnwindSafe(|| doc.apply_changes(again))),
                    Ok(Ok(()))
                ) {
                    return Ok(refused);
                }
            }
        }
    }
    Ok(refused)
}

/// Append signed changes to the log and fsync; the log's length after.
pub fn append(files: &DocFiles, changes: &[(ChangeSignature, Vec<u8>)]) -> Result<u64> {
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

/// Fold the log into a new snapshot, attested by `device` if given: write the snapshot
/// atomically, then an empty log. A crash in between leaves changes in both,
/// which is harmless. `loaded` must have been verified, as [`load`] does.
/// The log's chunks join the document's history (`super::history`).
pub fn compact(
    files: &DocFiles,
    loaded: &mut LoadedDoc,
    device: Option<&SecretKey>,
    community: &CommunityId,
) -> Result<()> {
    // A load that left changes out: the log holds them, the history must
    // not (it is rewritten when the document is next sent whole).
    let fold = if loaded.left_out > 0 {
        history::Fold::Forget
    } else {
        history::Fold::before_compaction(files)
    };
    compact_folding(files, loaded, device, community, fold)
}

/// [`compact`], with what becomes of the history given.
pub fn compact_folding(
    files: &DocFiles,
    loaded: &mut LoadedDoc,
    device: Option<&SecretKey>,
    community: &CommunityId,
    fold: history::Fold,
) -> Result<()> {
    // Without the changes Automerge holds back for missing history: they
    // were never written to the log, and saved they would make the snapshot
    // fail to load ("history that is missing") for good. Not deflated:
    // compressing was a twentieth of a join's CPU, for snapshots 2 to 2.7
    // times smaller (docs/performance.md, eighth round); Automerge loads
    // both, so snapshots written deflated by earlier builds still load.
    let saved = loaded.doc.save_with_options(automerge::SaveOptions {
        deflate: false,
        retain_orphans: false,
    });
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
    if let Some(device) = device {
        // The heads, so that a sync can tell whether the document differs
        // without loading it ([`heads`]).
        let heads: Vec<u8> = loaded.doc.get_heads().iter().flat_map(|h| h.0).collect();
        let attestation =
            attestation::attest(device, community, &files.name, &[&saved, &table, &heads]);
        snapshot.extend(frame::encode(&heads));
        snapshot.extend(frame::encode(&attestation));
    }
    write_atomic(&files.snapshot, &snapshot)?;
    // The seal first: a crash between the two leaves a log longer than its
    // seal, which is fine; the other order would look like lost records.
    write_seal(&files.log, CHANGES_MAGIC.len() as u64)?;
    write_atomic(&files.log, CHANGES_MAGIC)?;
    loaded.log_records = 0;
    // Last: a crash before leaves the history short of the log's changes,
    // not holding any twice (it is then rebuilt at the next send whole).
    fold.apply(files);
    Ok(())
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ROOT, ReadDoc};

    use super::*;
    use crate::trust::fixture::{TestCommunity, community};
    use crate::trust::signed_change::{actor_bytes, sign_change};
    use crate::trust::{CertBody, Membership};

    /// Member `i` writes `key` on top of `doc`; returns the signed record.
    fn write(
        c: &TestCommunity,
        i: usize,
        doc: &mut AutoCommit,
        key: &str,
    ) -> (ChangeSignature, Vec<u8>) {
        doc.set_actor(ActorId::from(actor_bytes(&c.device(i), &[i as u8; 8])));
        doc.put(ROOT, key, i as i64)
            .unwrap_or_else(|e| panic!("{e}"));
        let hash = doc.commit().unwrap_or_else(|| panic!("no change"));
        let change = doc
            .get_change_by_hash(&hash)
            .unwrap_or_else(|| panic!("no change"));
        let sig = sign_change(&c.devices[i], &c.id, "community", &hash.0);
        (sig, change.raw_bytes().to_vec())
    }

    /// The membership after the founder removed member `i`, keeping `kept`.
    fn removed(c: &TestCommunity, i: usize, kept: &[String]) -> Membership {
        c.membership_without(i, "community", kept.to_vec())
    }

    /// M (member 2) writes "before" and, after its removal, "late"; B
    /// (member 1) answers on top of it if `answered`. Returns the files, the
    /// hash of "before", and the membership before the removal.
    fn history(c: &TestCommunity, dir: &Path, answered: bool) -> (DocFiles, String) {
        let files = DocFiles::new(dir, "community");
        let mut doc = AutoCommit::new();
        let before = write(c, 2, &mut doc, "before");
        let before_hash = hex::encode(doc.get_heads()[0].0);
        let mut records = vec![before, write(c, 2, &mut doc, "late")];
        if answered {
            records.push(write(c, 1, &mut doc, "answer"));
        }
        append(&files, &records).unwrap_or_else(|e| panic!("{e}"));
        (files, before_hash)
    }

    /// The keys of the document as device 0 loads it (trusting its attestation).
    fn keys_after_load(
        c: &TestCommunity,
        files: &DocFiles,
        membership: &Membership,
    ) -> Vec<String> {
        let loaded = load(files, membership, Some(&c.device(0)), true, 0)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no document"));
        loaded.doc.keys(ROOT).collect()
    }

    #[test]
    fn a_logged_change_the_library_will_not_apply_is_left_out_with_what_builds_on_it() {
        let c = community(3);
        for compacted in [false, true] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let files = DocFiles::new(dir.path(), "community");
            let mut doc = AutoCommit::new();
            let first = write(&c, 1, &mut doc, "first");
            append(&files, &[first]).unwrap_or_else(|e| panic!("{e}"));
            if compacted {
                let mut loaded = load(&files, &c.membership(), None, true, 0)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("no document"));
                compact(&files, &mut loaded, Some(&c.devices[0]), &c.id)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            // Two changes by the same device and actor at the same sequence
            // number, each signed: Automerge applies one and refuses the
            // other. A third builds on the refused one; a fourth, by
            // another member, on the first.
            let mut fork = doc.fork();
            let kept = write(&c, 1, &mut doc, "kept");
            let refused = write(&c, 1, &mut fork, "refused");
            let on_refused = write(&c, 1, &mut fork, "on refused");
            // And the same for member 2, found in the same pass.
            let mut fork_2 = doc.fork();
            let other = write(&c, 2, &mut doc, "other");
            let refused_2 = write(&c, 2, &mut fork_2, "refused too");
            append(&files, &[kept, refused, on_refused, other, refused_2])
                .unwrap_or_else(|e| panic!("{e}"));
            let loaded = load(&files, &c.membership(), Some(&c.device(0)), true, 0)
                .unwrap_or_else(|e| panic!("compacted {compacted}: {e}"))
                .unwrap_or_else(|| panic!("no document"));
            let keys: Vec<String> = loaded.doc.keys(ROOT).collect();
            assert_eq!(keys, ["first", "kept", "other"], "compacted {compacted}");
            assert_eq!(loaded.signatures.len(), 3);
            assert_eq!(
                loaded.left_out, 2,
                "the two refused, not what builds on one"
            );
        }
    }

    #[test]
    fn a_change_this_process_appended_is_trusted_only_with_the_signature_it_checked() {
        let c = community(2);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = DocFiles::new(dir.path(), "community");
        let mut doc = AutoCommit::new();
        let (good, bytes) = write(&c, 1, &mut doc, "k");
        let hash = doc.get_heads()[0].0;
        // On disk with a signature that does not verify.
        let mut forged = good;
        forged.0[5] ^= 1;
        append(&files, &[(forged, bytes)]).unwrap_or_else(|e| panic!("{e}"));
        let with = |appended: &Appended| {
            load_trusting(
                &files,
                &c.membership(),
                Some(&c.device(0)),
                false,
                0,
                appended,
            )
        };
        assert!(with(&Appended::new()).is_err(), "checked in full");
        // Trusted as verified here only with those exact signature bytes.
        assert!(with(&[(hash, good)].into_iter().collect()).is_err());
        let trusted = with(&[(hash, forged)].into_iter().collect())
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no document"));
        assert_eq!(trusted.doc.keys(ROOT).collect::<Vec<_>>(), ["k"]);
        // Its author is still checked: removed, with nothing kept, it goes.
        let removed = c.membership_without(1, "community", Vec::new());
        let later = load_trusting(
            &files,
            &removed,
            Some(&c.device(0)),
            false,
            0,
            &[(hash, forged)].into_iter().collect(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no document"));
        assert_eq!(later.doc.keys(ROOT).count(), 0);
    }

    #[test]
    fn a_late_change_nobody_answered_is_dropped_from_the_log_and_the_snapshot() {
        let c = community(3);
        for compacted in [false, true] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let (files, before) = history(&c, dir.path(), false);
            if compacted {
                // Compacted while this device did not know of the removal.
                let mut loaded = load(&files, &c.membership(), None, true, 0)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("no document"));
                compact(&files, &mut loaded, Some(&c.devices[0]), &c.id)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            assert_eq!(
                keys_after_load(&c, &files, &c.membership()),
                ["before", "late"]
            );
            let after = removed(&c, 2, std::slice::from_ref(&before));
            assert_eq!(
                keys_after_load(&c, &files, &after),
                ["before"],
                "compacted: {compacted}"
            );
        }
    }

    #[test]
    fn a_late_change_someone_answered_stays() {
        let c = community(3);
        for compacted in [false, true] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let (files, before) = history(&c, dir.path(), true);
            if compacted {
                let mut loaded = load(&files, &c.membership(), None, true, 0)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("no document"));
                compact(&files, &mut loaded, Some(&c.devices[0]), &c.id)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            let after = removed(&c, 2, &[before]);
            assert_eq!(
                keys_after_load(&c, &files, &after),
                ["answer", "before", "late"],
                "compacted: {compacted}"
            );
        }
    }

    /// Device `attester` compacts a history whose first signature it forged
    /// in memory; returns the files.
    fn attested_with_a_bad_signature(c: &TestCommunity, dir: &Path, attester: usize) -> DocFiles {
        let (files, _) = history(c, dir, true);
        let mut loaded = load(&files, &c.membership(), None, true, 0)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no document"));
        let first = loaded.doc.get_heads();
        let first = loaded
            .doc
            .get_changes(&[])
            .first()
            .map(|change| change.hash().0)
            .unwrap_or_else(|| panic!("no change under {first:?}"));
        loaded.signatures.insert(first, ChangeSignature([9; 64]));
        compact(&files, &mut loaded, Some(&c.devices[attester]), &c.id)
            .unwrap_or_else(|e| panic!("{e}"));
        files
    }

    fn loads(c: &TestCommunity, files: &DocFiles, own: usize) -> bool {
        load(files, &c.membership(), Some(&c.device(own)), false, 0).is_ok()
    }

    #[test]
    fn only_this_devices_intact_attestation_spares_the_signature_checks() {
        let c = community(3);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = attested_with_a_bad_signature(&c, dir.path(), 0);
        // Device 0 trusts what it attested: the forged signature is not checked
        // again (which is what makes loading fast).
        assert!(loads(&c, &files, 0));
        // Anyone else's attestation, or none, means every signature is checked.
        assert!(!loads(&c, &files, 1));
        assert!(load(&files, &c.membership(), None, false, 0).is_err());

        // Any changed byte of the snapshot breaks the attestation, so the forged
        // signature is checked and refused, or the snapshot does not parse.
        let original = std::fs::read(&files.snapshot).unwrap_or_else(|e| panic!("{e}"));
        for at in (SNAPSHOT_MAGIC.len()..original.len()).step_by(7) {
            let mut bent = original.clone();
            bent[at] ^= 0x20;
            std::fs::write(&files.snapshot, &bent).unwrap_or_else(|e| panic!("{e}"));
            assert!(!loads(&c, &files, 0), "byte {at} changed and still loaded");
        }
        // An attestation moved onto another document's name does not hold either.
        let moved = DocFiles::new(dir.path(), "draft-00112233445566778899aabbccddeeff");
        std::fs::write(&moved.snapshot, &original).unwrap_or_else(|e| panic!("{e}"));
        assert!(!loads(&c, &moved, 0));
    }

    #[test]
    fn an_attested_snapshot_still_answers_to_the_membership() {
        let c = community(3);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = attested_with_a_bad_signature(&c, dir.path(), 0);
        // Member 2 wrote the first changes; without its device in the
        // membership, the attested snapshot is refused all the same.
        let certs: Vec<_> = c
            .certs
            .iter()
            .filter(|cert| !matches!(cert.body(), CertBody::Device { member, .. } if member.0 == c.members[2].public()))
            .cloned()
            .collect();
        let without = Membership::build(c.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        assert!(load(&files, &without, Some(&c.device(0)), false, 0).is_err());
    }

    #[test]
    fn a_log_is_checked_in_order_its_first_refused_change_refusing_it() {
        let c = community(3);
        // 120 changes by three devices, checked together at load.
        let records = |forged: Option<usize>, unreadable: Option<usize>| {
            let mut doc = AutoCommit::new();
            let mut records: Vec<(ChangeSignature, Vec<u8>)> = (0..120)
                .map(|i| write(&c, i % 3, &mut doc, &format!("k{i}")))
                .collect();
            if let Some(at) = forged {
                records[at].0.0[10] ^= 1;
            }
            if let Some(at) = unreadable {
                records[at].1 = vec![0x85; 40];
            }
            records
        };
        let load_of = |records: Vec<(ChangeSignature, Vec<u8>)>| {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let files = DocFiles::new(dir.path(), "community");
            append(&files, &records).unwrap_or_else(|e| panic!("{e}"));
            load(&files, &c.membership(), None, false, 0).map(|l| l.map(|l| l.doc.length(ROOT)))
        };
        assert_eq!(load_of(records(None, None)).ok(), Some(Some(120)));
        // One forged signature among them refuses the file, naming it.
        let forged = load_of(records(Some(70), None));
        assert!(
            matches!(
                &forged,
                Err(StoreError::Refused {
                    source: TrustError::BadSignature(_),
                    ..
                })
            ),
            "{forged:?}"
        );
        // A forged signature before an unreadable record is the error, as
        // if each record were checked as it is read; after it, the
        // unreadable record is.
        let before = load_of(records(Some(30), Some(90)));
        assert!(
            matches!(&before, Err(StoreError::Refused { .. })),
            "{before:?}"
        );
        let after = load_of(records(Some(100), Some(90)));
        assert!(
            matches!(&after, Err(StoreError::Corrupt { .. })),
            "{after:?}"
        );
    }

    #[test]
    fn a_snapshot_is_checked_in_order_its_first_refused_change_refusing_it() {
        let c = community(3);
        // The snapshot's first change forged and its last unsigned, or the
        // reverse: the first fault in the document's order is the error.
        for forged_first in [true, false] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let (files, _) = history(&c, dir.path(), true);
            let mut loaded = load(&files, &c.membership(), None, true, 0)
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("no document"));
            let order: Vec<[u8; 32]> = loaded
                .doc
                .get_changes_meta(&[])
                .iter()
                .map(|m| m.hash.0)
                .collect();
            let (forged, unsigned) = if forged_first {
                (order[0], order[2])
            } else {
                (order[2], order[0])
            };
            loaded.signatures.insert(forged, ChangeSignature([9; 64]));
            compact(&files, &mut loaded, None, &c.id).unwrap_or_else(|e| panic!("{e}"));
            // Rewrite the snapshot without the signature of `unsigned`.
            let bytes = std::fs::read(&files.snapshot).unwrap_or_else(|e| panic!("{e}"));
            let parsed = frame::parse(&bytes, SNAPSHOT_MAGIC).unwrap_or_else(|e| panic!("{e}"));
            let table: Vec<u8> = parsed.records[1]
                .chunks_exact(SIG_ENTRY)
                .filter(|entry| entry[..32] != unsigned)
                .flatten()
                .copied()
                .collect();
            assert_eq!(table.len(), 2 * SIG_ENTRY);
            let mut rewritten = SNAPSHOT_MAGIC.to_vec();
            rewritten.extend(frame::encode(parsed.records[0]));
            rewritten.extend(frame::encode(&table));
            std::fs::write(&files.snapshot, rewritten).unwrap_or_else(|e| panic!("{e}"));
            let loaded = load(&files, &c.membership(), None, false, 0).map(|_| ());
            if forged_first {
                assert!(
                    matches!(&loaded, Err(StoreError::Refused { .. })),
                    "{loaded:?}"
                );
            } else {
                assert!(
                    matches!(&loaded, Err(StoreError::Corrupt { .. })),
                    "{loaded:?}"
                );
            }
        }
    }

    #[test]
    fn heads_read_from_the_files_are_the_heads_of_the_loaded_document() {
        let c = community(3);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (files, _) = history(&c, dir.path(), true);
        let loaded_heads = |files: &DocFiles| {
            let mut heads = load(files, &c.membership(), None, false, 0)
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("no document"))
                .doc
                .get_heads();
            heads.sort();
            heads
        };
        let own = c.device(0);
        // A log alone needs no attestation.
        assert_eq!(heads(&files, None, &c.id), Some(loaded_heads(&files)));

        // An attested snapshot, then two concurrent changes in the log on
        // top of it: two heads.
        let mut loaded = load(&files, &c.membership(), None, true, 0)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no document"));
        compact(&files, &mut loaded, Some(&c.devices[0]), &c.id).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(heads(&files, Some(&own), &c.id), Some(loaded_heads(&files)));
        let mut left = loaded.doc.fork();
        let mut right = loaded.doc.fork();
        let records = vec![
            write(&c, 1, &mut left, "left"),
            write(&c, 2, &mut right, "right"),
        ];
        append(&files, &records).unwrap_or_else(|e| panic!("{e}"));
        let both = loaded_heads(&files);
        assert_eq!(both.len(), 2);
        assert_eq!(heads(&files, Some(&own), &c.id), Some(both));

        // Another device's snapshot, or a changed byte: load instead.
        assert_eq!(heads(&files, Some(&c.device(1)), &c.id), None);
        assert_eq!(heads(&files, None, &c.id), None);
        let bytes = std::fs::read(&files.snapshot).unwrap_or_else(|e| panic!("{e}"));
        for at in (SNAPSHOT_MAGIC.len()..bytes.len()).step_by(11) {
            let mut bent = bytes.clone();
            bent[at] ^= 0x04;
            std::fs::write(&files.snapshot, &bent).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(heads(&files, Some(&own), &c.id), None, "byte {at}");
        }
    }

    #[test]
    fn a_change_hidden_in_a_snapshot_behind_missing_history_is_refused() {
        let c = community(3);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = DocFiles::new(dir.path(), "community");
        // A genuine history: A, then D on top of it.
        let mut doc = AutoCommit::new();
        let a = write(&c, 1, &mut doc, "a");
        let mut ahead = doc.fork();
        let d = write(&c, 1, &mut ahead, "d");
        // O, "by" member 2, builds on D; nobody signed it.
        let o = write(&c, 2, &mut ahead, "forged");
        // The snapshot: A, with O kept aside for its missing history; its
        // table only vouches for A.
        let mut snap = AutoCommit::new();
        snap.apply_changes([Change::from_bytes(a.1.clone()).unwrap_or_else(|e| panic!("{e}"))])
            .unwrap_or_else(|e| panic!("{e}"));
        snap.apply_changes([Change::from_bytes(o.1.clone()).unwrap_or_else(|e| panic!("{e}"))])
            .unwrap_or_else(|e| panic!("{e}"));
        let saved = snap.save_with_options(automerge::SaveOptions {
            deflate: true,
            retain_orphans: true,
        });
        let mut table = snap.get_heads()[0].0.to_vec();
        table.extend_from_slice(&a.0.0);
        let mut bytes = SNAPSHOT_MAGIC.to_vec();
        bytes.extend(frame::encode(&saved));
        bytes.extend(frame::encode(&table));
        std::fs::write(&files.snapshot, &bytes).unwrap_or_else(|e| panic!("{e}"));
        // The log supplies D, genuine: O would then apply, unchecked.
        append(&files, &[d]).unwrap_or_else(|e| panic!("{e}"));
        let loaded = load(&files, &c.membership(), None, false, 0);
        assert!(loaded.is_err(), "a change nobody checked was loaded");
    }
}
