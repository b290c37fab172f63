//! Making and importing bundles with the store.
//!
//! Import verifies every certificate and every change (signature, author,
//! removal cutoff, ownership rule: the same rules as sync) before a single
//! byte is written; a bad signature or a damaged record refuses the whole
//! bundle and leaves the store as it was, and so does a change whose author
//! is not a member (even with the bundle's own certificates), was removed, or
//! overwrites another member. Changes whose history is missing are held back.

use std::collections::BTreeMap;

use automerge::sync::State;
use automerge::{Change, ChangeHash};

use super::community::CommunityStore;
use super::doclog::{DocFiles, LoadedDoc};
use super::{Result, StoreError};
use crate::bundle::Bundle;
use crate::model::DocId;
use crate::sync::chunks::guarded;
use crate::trust::ownership::check_ownership;
use crate::trust::removal::unanswered;
use crate::trust::signed_change::{ChangeSignature, Standing, decode_change, verify_changes};
use crate::trust::{Certificate, Membership, TrustError};

/// What an import did (`bundle import --json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Changes newly applied.
    pub applied_changes: usize,
    /// Changes not applied because the history they build on is missing.
    pub held_back: usize,
    /// New certificates.
    pub certificates: usize,
    /// The heads, before the import, of each document it changed (empty:
    /// the document arrived whole); see `model::inbox`.
    #[serde(skip)]
    pub before: crate::model::inbox::Marks,
}

/// Everything this store holds, or only what is not reachable from `since`
/// (per document heads).
pub fn export(
    store: &CommunityStore,
    since: &BTreeMap<String, Vec<ChangeHash>>,
    now: i64,
) -> Result<Bundle> {
    let mut bundle = Bundle {
        certificates: store.certificate_bytes(),
        changes: Vec::new(),
        from: None,
    };
    for name in store.doc_names()? {
        let Some(mut loaded) = store.load_doc(&name, false, now)? else {
            continue;
        };
        let base = since.get(&name).cloned().unwrap_or_default();
        let known: Vec<ChangeHash> = base
            .into_iter()
            .filter(|h| loaded.doc.get_change_meta_by_hash(h).is_some())
            .collect();
        for change in loaded.doc.get_changes(&known) {
            let sig = loaded
                .signatures
                .get(&change.hash().0)
                .copied()
                .ok_or_else(|| {
                    StoreError::corrupt(
                        &DocFiles::new(&store.docs_dir(), &name).log,
                        format!("change {} has no signature", change.hash()),
                    )
                })?;
            bundle
                .changes
                .push((name.clone(), sig, change.raw_bytes().to_vec()));
        }
    }
    Ok(bundle)
}

/// The heads a member's devices were last seen at (from sync states), per
/// document: what `bundle export --for` can leave out.
pub fn last_seen(
    store: &CommunityStore,
    member: &crate::trust::MemberId,
) -> BTreeMap<String, Vec<ChangeHash>> {
    let mut out = BTreeMap::new();
    let Some(m) = store.membership().member(member) else {
        return out;
    };
    for device in &m.devices {
        let path = store
            .dir()
            .join("peers")
            .join(format!("{}.json", device.to_hex()));
        let Some(states) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, String>>(&b).ok())
        else {
            continue;
        };
        for (doc, hex_state) in states {
            if let Some(state) = hex::decode(hex_state)
                .ok()
                .and_then(|b| State::decode(&b).ok())
            {
                out.entry(doc).or_insert(state.shared_heads);
            }
        }
    }
    out
}

/// The maker of a bundle holds every change in it: remember, per document,
/// the heads of those changes as shared with that device, so that a later
/// `bundle export --for` its member can leave them out.
fn remember_seen(
    store: &CommunityStore,
    device: &crate::trust::DeviceId,
    changes: &[(String, ChangeSignature, Vec<u8>)],
) {
    let mut per_doc: BTreeMap<&str, Vec<Change>> = BTreeMap::new();
    for (name, _, bytes) in changes {
        if let Ok(Ok(c)) = std::panic::catch_unwind(|| decode_change(bytes)) {
            per_doc.entry(name).or_default().push(c);
        }
    }
    let path = store
        .dir()
        .join("peers")
        .join(format!("{}.json", device.to_hex()));
    let mut states: BTreeMap<String, String> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    for (name, changes) in per_doc {
        let deps: std::collections::BTreeSet<ChangeHash> =
            changes.iter().flat_map(|c| c.deps().to_vec()).collect();
        let mut heads: Vec<ChangeHash> = changes
            .iter()
            .map(|c| c.hash())
            .filter(|h| !deps.contains(h))
            .collect();
        // Automerge's encoder requires sorted hashes.
        heads.sort();
        let mut state = State::new();
        state.shared_heads = heads;
        states.insert(name.to_string(), hex::encode(state.encode()));
    }
    if let Ok(bytes) = serde_json::to_vec_pretty(&states) {
        let _ = super::fsutil::private_dir(&store.dir().join("peers"));
        let _ = super::fsutil::write_atomic(&path, &bytes);
    }
}

fn refused(store: &CommunityStore, what: String) -> StoreError {
    StoreError::Refused {
        path: store.dir().to_path_buf(),
        source: TrustError::CertRefused(what),
    }
}

/// Verify a whole bundle, then apply what is acceptable.
pub fn import(store: &mut CommunityStore, bundle: &Bundle, now: i64) -> Result<ImportReport> {
    let id = store.id();
    let mut report = ImportReport::default();
    // 1. Certificates.
    let mut new_certs = Vec::new();
    let mut verified = Vec::new();
    for (i, bytes) in bundle.certificates.iter().enumerate() {
        let cert = Certificate::from_bytes(bytes)
            .map_err(|e| refused(store, format!("certificate {i}: {e}")))?;
        verified.push(
            cert.verify(&id)
                .map_err(|e| refused(store, format!("certificate {i}: {e}")))?,
        );
        new_certs.push(cert);
    }
    let known: Vec<[u8; 32]> = store
        .certificate_bytes()
        .iter()
        .map(|b| crate::trust::sha256(b))
        .collect();
    let mut all: Vec<crate::trust::VerifiedCert> = Vec::new();
    for bytes in store.certificate_bytes() {
        if let Ok(c) = Certificate::from_bytes(&bytes).and_then(|c| c.verify(&id)) {
            all.push(c);
        }
    }
    report.certificates = verified.iter().filter(|c| !known.contains(&c.id())).count();
    all.extend(verified);
    let membership = Membership::build(id, &all).map_err(|e| refused(store, e.to_string()))?;

    // 2. Changes, per document, applied to in-memory copies only.
    let mut by_doc: BTreeMap<String, Vec<(ChangeSignature, &Vec<u8>)>> = BTreeMap::new();
    for (name, sig, bytes) in &bundle.changes {
        if DocId::parse(name).is_none() {
            return Err(refused(store, format!("'{name}' is not a document name")));
        }
        by_doc.entry(name.clone()).or_default().push((*sig, bytes));
    }
    // Per document: the new signed changes, and the loaded copy holding them.
    type Write = (String, Vec<(ChangeSignature, Change)>, LoadedDoc);
    let mut writes: Vec<Write> = Vec::new();
    for (name, records) in by_doc {
        let mut loaded = store
            .load_doc(&name, false, now)?
            .unwrap_or_else(LoadedDoc::empty);
        let heads_before = loaded.doc.get_heads();
        let doc = &mut loaded.doc;
        let mut sigs = BTreeMap::new();
        let mut accepted = Vec::new();
        let mut late = Vec::new();
        // The changes up to the first that cannot be read, their signatures
        // checked together; a refused change before it is the error, as if
        // each were checked as it is read.
        let mut decoded = Vec::with_capacity(records.len());
        let mut unreadable = None;
        for (i, (sig, bytes)) in records.into_iter().enumerate() {
            match guarded(|| decode_change(bytes)) {
                Ok(change) => decoded.push((sig, change)),
                Err(e) => {
                    unreadable = Some(refused(store, format!("{name} change {i}: {e}")));
                    break;
                }
            }
        }
        let to_check: Vec<_> = decoded
            .iter()
            .map(|(sig, change)| (name.as_str(), change, sig))
            .collect();
        let verdicts = verify_changes(&membership, &to_check);
        for ((sig, change), signed) in decoded.into_iter().zip(verdicts) {
            let hash = change.hash();
            // Every signature is checked, even for changes already held: an
            // altered bundle is refused whole.
            let verdict = signed.and_then(|(_, standing)| {
                check_ownership(&membership, &name, &change).map(|_| standing)
            });
            if doc.get_change_meta_by_hash(&hash).is_some() {
                if let Err(e @ (TrustError::BadSignature(_) | TrustError::BadKey(_))) = verdict {
                    return Err(refused(store, format!("{name}: {e}")));
                }
                continue;
            }
            match verdict {
                Ok(standing) => {
                    sigs.insert(hash.0, sig);
                    match standing {
                        Standing::Current => accepted.push(change),
                        Standing::AfterRemoval => late.push(change),
                    }
                }
                // A bundle carries its own certificates: a change whose author
                // is still not a member, or that overwrites another member, is
                // refused with the whole bundle.
                Err(e) => return Err(refused(store, format!("{name}: {e}"))),
            }
        }
        if let Some(e) = unreadable {
            return Err(e);
        }
        if !late.is_empty() {
            // A removed member's later change stays only if a change that
            // stays builds on it (`trust::removal`); any other is refused with
            // the whole bundle.
            if let Some(hash) = unanswered(&late, &accepted).first() {
                return Err(refused(
                    store,
                    format!(
                        "{name}: change {} was made after its member was removed",
                        crate::ids::short(&hex::encode(hash))
                    ),
                ));
            }
            late.append(&mut accepted);
            accepted = late;
        }
        let offered = accepted.len();
        let before = doc.get_heads();
        guarded(|| doc.apply_changes(accepted).map_err(|e| e.to_string()))
            .map_err(|e| refused(store, format!("{name}: {e}")))?;
        let new = doc.get_changes(&before);
        report.held_back += offered.saturating_sub(new.len());
        let signed: Vec<(ChangeSignature, Change)> = new
            .into_iter()
            .filter_map(|c| sigs.get(&c.hash().0).map(|s| (*s, c)))
            .collect();
        report.applied_changes += signed.len();
        if !signed.is_empty() {
            report.before.insert(name.clone(), heads_before);
            writes.push((name, signed, loaded));
        }
    }

    // 3. Everything verified: write.
    store.add_certificates(&new_certs)?;
    if let Some(device) = bundle.from {
        remember_seen(store, &crate::trust::DeviceId(device), &bundle.changes);
    }
    for (name, signed, mut loaded) in writes {
        // A long log folded into an attested snapshot, as a sync does:
        // `loaded` holds exactly the files and these changes.
        store.keep_verified(&name, Some(&mut loaded), &signed)?;
    }
    Ok(report)
}
