//! Draft digests on disk: `docs/draft-<id>.digest`, the text, version and
//! editors of a draft (`model::digest`), kept so that `show`, `tally` and
//! the inbox need not rebuild a long edit history.
//!
//! A digest is a cache, written by this device after it loaded and verified
//! the draft, and attested like a snapshot (`super::attestation`, over the
//! name `<draft name>.digest`). It is used only when all of these hold:
//! this device attested it; it was computed with exactly the certificates
//! the community holds now (by a digest of their ids: a removal arriving
//! since could drop a change at load); and the heads read from the draft's files (`doclog::heads`) are
//! exactly the digest's. Heads name every change through the hash chain, so
//! equal heads mean the very document that was verified. Anything else (no
//! digest, another device's, a changed byte, a new change in the log) means
//! the document is loaded as usual and a fresh digest written. Losing or
//! damaging a digest costs time, never data: it is written without fsync.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::attestation;
use super::doclog::{self, DocFiles};
use super::frame::{self, DIGEST_MAGIC};
use super::fsutil::write_cache;
use crate::model::digest::DraftDigest;
use crate::trust::{CommunityId, DeviceId, SecretKey};

/// What the digest file holds, besides the attestation.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// SHA-256 of the ids of the certificates the community held when the
    /// digest was computed ([`certificates_digest`]).
    certificates: [u8; 32],
    digest: DraftDigest,
}

/// What a digest depends on in the membership: SHA-256 of the certificate
/// ids, in log order.
pub fn certificates_digest(ids: impl IntoIterator<Item = [u8; 32]>) -> [u8; 32] {
    crate::trust::sha256(&ids.into_iter().collect::<Vec<_>>().concat())
}

/// The digest file of document `name`.
pub fn path(docs_dir: &Path, name: &str) -> PathBuf {
    docs_dir.join(format!("{name}.digest"))
}

fn attested_name(name: &str) -> String {
    format!("{name}.digest")
}

/// The digest of draft document `files`, if this device wrote it for
/// exactly the document the files hold now, with the certificates whose
/// [`certificates_digest`] is `certificates`.
pub fn read(
    files: &DocFiles,
    docs_dir: &Path,
    own_device: &DeviceId,
    community: &CommunityId,
    certificates: &[u8; 32],
) -> Option<DraftDigest> {
    let bytes = std::fs::read(path(docs_dir, &files.name)).ok()?;
    let parsed = frame::parse(&bytes, DIGEST_MAGIC).ok()?;
    let [body, seal] = parsed.records[..] else {
        return None;
    };
    if parsed.torn_at.is_some()
        || !attestation::holds(
            seal,
            own_device,
            community,
            &attested_name(&files.name),
            &[body],
        )
    {
        return None;
    }
    let stored: Stored = postcard::from_bytes(body).ok()?;
    if stored.certificates != *certificates {
        return None;
    }
    let mut heads: Vec<String> = doclog::heads(files, Some(own_device), community)?
        .iter()
        .map(|h| h.to_string())
        .collect();
    heads.sort();
    (heads == stored.digest.heads).then_some(stored.digest)
}

/// Write `digest` for document `name`, attested by `device`. A failure is
/// only logged: the digest is a cache.
pub fn write(
    docs_dir: &Path,
    name: &str,
    device: &SecretKey,
    community: &CommunityId,
    certificates: &[u8; 32],
    digest: &DraftDigest,
) {
    let stored = Stored {
        certificates: *certificates,
        digest: digest.clone(),
    };
    let Ok(body) = postcard::to_stdvec(&stored) else {
        return;
    };
    let seal = attestation::attest(device, community, &attested_name(name), &[&body]);
    let mut bytes = DIGEST_MAGIC.to_vec();
    bytes.extend(frame::encode(&body));
    bytes.extend(frame::encode(&seal));
    // No fsync: after a crash a torn digest fails its attestation.
    if let Err(e) = write_cache(&path(docs_dir, name), &bytes) {
        tracing::debug!("could not keep the digest of {name}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DocLoader;
    use crate::model::response::NewResponse;
    use crate::model::views::ResponseKind;
    use crate::store::Home;
    use crate::trust::{CertBody, Certificate};

    const NOW: i64 = 1_790_000_000;

    #[test]
    fn a_digest_serves_only_the_document_it_was_taken_from() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let home = Home::new(root.path().join("ana"));
        let ana = home.init("Ana").unwrap_or_else(|e| panic!("{e}"));
        let mut store = home
            .create_community(&ana, "Net", "testing", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut ws = store.workspace(&ana, NOW, true);
        let rid = ws
            .open_response(NewResponse {
                kind: ResponseKind::Development,
                title: "Policy".into(),
                summary: "s".into(),
                source: None,
                requester: None,
                questions: Vec::new(),
                due: None,
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let did = ws
            .new_draft(&rid, "Reply", "First text.")
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .persist(&mut ws, &ana)
            .unwrap_or_else(|e| panic!("{e}"));
        let name = crate::model::DocId::Draft(did.clone()).name();
        let digest_of =
            |store: &crate::store::CommunityStore| store.loader(&ana, NOW).draft_digest(&did);

        // None until a command loads the draft; then the one it loaded.
        assert_eq!(digest_of(&store), None);
        let mut ws = store.workspace(&ana, NOW, false);
        let version = ws.draft_version(&did).unwrap_or_else(|e| panic!("{e}"));
        let digest = digest_of(&store).unwrap_or_else(|| panic!("no digest"));
        assert_eq!(digest.text, "First text.");
        assert_eq!(digest.heads, version);
        assert_eq!(digest.authors, vec![ana.member_id()]);

        // A fresh workspace reads the draft from the digest alone.
        let mut ws = store.workspace(&ana, NOW, false);
        assert_eq!(
            ws.draft_text(&did).unwrap_or_else(|e| panic!("{e}")),
            "First text."
        );

        // A flipped byte, or another device's key: not used.
        let file = path(&store.docs_dir(), &name);
        let good = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
        for i in (0..good.len()).step_by(5) {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            std::fs::write(&file, &bad).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(digest_of(&store), None, "byte {i} flipped");
        }
        std::fs::write(&file, &good).unwrap_or_else(|e| panic!("{e}"));
        let bo = Home::new(root.path().join("bo"))
            .init("Bo")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.loader(&bo, NOW).draft_digest(&did), None);
        assert!(digest_of(&store).is_some());

        // An edit in the log: the heads differ, so the document is read.
        let mut ws = store.workspace(&ana, NOW, true);
        let entry = ws
            .resolve_draft(did.as_str())
            .unwrap_or_else(|e| panic!("{e}"));
        ws.edit_draft(&entry, "Second text.")
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .persist(&mut ws, &ana)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(digest_of(&store), None);
        let mut ws = store.workspace(&ana, NOW, false);
        assert_eq!(
            ws.draft_text(&did).unwrap_or_else(|e| panic!("{e}")),
            "Second text."
        );
        assert_eq!(
            digest_of(&store).map(|d| d.text),
            Some("Second text.".to_string())
        );

        // A new certificate (here a second device of Ana's): not used, since
        // a removal could drop a change at load.
        let second = SecretKey::generate();
        let member_key = ana.member_key().unwrap_or_else(|e| panic!("{e}"));
        let cert = Certificate::issue(
            &store.id(),
            &CertBody::Device {
                member: ana.member_id(),
                device: DeviceId(second.public()),
                label: "phone".into(),
                at: NOW,
            },
            &[member_key, &second],
        );
        store
            .add_certificates(&[cert])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(digest_of(&store), None);
    }
}
