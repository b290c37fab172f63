//! Draft digests on disk: `docs/draft-<id>.digest`, the text, version and
//! editors of a draft (`model::digest`), kept so that `show`, `tally` and
//! the inbox need not rebuild a long edit history.
//!
//! A digest is a cache, written by this device after it loaded and verified
//! the draft, and attested like a snapshot (`super::attestation`, over the
//! name `<draft name>.digest`). It is used only when all of these hold:
//! this device attested it; every device that made one of its changes
//! stands now as it stood then (its member, that member's role, removal
//! and, if removed, which of its changes in this draft the removal keeps:
//! all a load's verdict on a change depends on, so a removal arriving since
//! invalidates it, while admitting a member or adding a device, which
//! changes no verdict on a change already held, does not); and the heads
//! read from the draft's files (`doclog::heads`) are exactly the digest's. Heads name every change through the hash chain, so
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
use crate::trust::signed_change::device_of_actor;
use crate::trust::{DeviceId, Membership, SecretKey};

/// What the digest file holds, besides the attestation.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// The devices that made the draft's changes, sorted.
    devices: Vec<[u8; 32]>,
    /// Their standing when the digest was computed ([`standing`]).
    standing: [u8; 32],
    digest: DraftDigest,
}

/// What a load's verdicts on the changes `devices` made to document `doc`
/// depend on in `membership`, as SHA-256 over each device in order: the
/// device, its member (or none), that member's role, whether removed, and
/// the removal's list of kept changes in `doc`. Every variable-length part
/// is preceded by its length, so that no two standings read the same.
pub fn standing(membership: &Membership, doc: &str, devices: &[[u8; 32]]) -> [u8; 32] {
    let mut all = Vec::new();
    for device in devices {
        all.extend_from_slice(device);
        match membership.owner_of(&DeviceId(*device)) {
            None => all.push(0),
            Some(member) => {
                let mut field = |bytes: &[u8]| {
                    all.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    all.extend_from_slice(bytes);
                };
                field(&member.id.0);
                field(member.role.as_str().as_bytes());
                field(&[u8::from(member.removed)]);
                let mut kept = member
                    .revocation
                    .as_ref()
                    .and_then(|r| r.cutoff.get(doc))
                    .cloned()
                    .unwrap_or_default();
                kept.sort();
                field(&(kept.len() as u64).to_le_bytes());
                for hash in kept {
                    field(hash.as_bytes());
                }
                all.push(1);
            }
        }
    }
    crate::trust::sha256(&all)
}

/// The devices that made `doc`'s changes, sorted and each once.
pub fn devices_of(doc: &mut automerge::AutoCommit) -> Vec<[u8; 32]> {
    let devices: std::collections::BTreeSet<[u8; 32]> = doc
        .get_changes_meta(&[])
        .iter()
        .filter_map(|c| device_of_actor(c.actor.to_bytes()).map(|d| d.0))
        .collect();
    devices.into_iter().collect()
}

/// Write the digest of draft `name`, loaded and verified as `doc`, made
/// by `devices` ([`devices_of`]); whether it had one to write.
pub fn keep(
    docs_dir: &Path,
    name: &str,
    device: &SecretKey,
    membership: &Membership,
    devices: Vec<[u8; 32]>,
    doc: &mut automerge::AutoCommit,
) -> bool {
    let Some(digest) = DraftDigest::of(doc, membership) else {
        return false;
    };
    write(docs_dir, name, device, membership, devices, &digest);
    true
}

/// Whether a digest may be taken from a draft a sync holds (rather than
/// one a load gave): only if every device that made one of its changes is
/// a device of a current member. A session may hold a removed member's
/// later change that a load would drop (`trust::removal`: it stays only if
/// a change that stays builds on it), and the heads read from the files
/// would still name it; a load, which applies the removal's cut, writes
/// the digest of such a draft instead.
pub fn from_sync_allowed(membership: &Membership, devices: &[[u8; 32]]) -> bool {
    devices.iter().all(|device| {
        membership
            .owner_of(&DeviceId(*device))
            .is_some_and(|member| !member.removed)
    })
}

/// The digest file of document `name`.
pub fn path(docs_dir: &Path, name: &str) -> PathBuf {
    docs_dir.join(format!("{name}.digest"))
}

fn attested_name(name: &str) -> String {
    format!("{name}.digest")
}

/// The digest of draft document `files`, if this device wrote it for
/// exactly the document the files hold now, and its authors' devices stand
/// in `membership` as they did then.
pub fn read(
    files: &DocFiles,
    docs_dir: &Path,
    own_device: &DeviceId,
    membership: &Membership,
) -> Option<DraftDigest> {
    let community = &membership.community;
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
    if stored.standing != standing(membership, &files.name, &stored.devices) {
        return None;
    }
    let mut heads: Vec<String> = doclog::heads(files, Some(own_device), community)?
        .iter()
        .map(|h| h.to_string())
        .collect();
    heads.sort();
    (heads == stored.digest.heads).then_some(stored.digest)
}

/// Write `digest` for document `name`, whose changes `devices` made,
/// attested by `device`. A failure is only logged: the digest is a cache.
pub fn write(
    docs_dir: &Path,
    name: &str,
    device: &SecretKey,
    membership: &Membership,
    devices: Vec<[u8; 32]>,
    digest: &DraftDigest,
) {
    let community = &membership.community;
    let stored = Stored {
        standing: standing(membership, name, &devices),
        devices,
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
    use crate::ids::ObjectId;
    use crate::model::DocLoader;
    use crate::model::response::NewResponse;
    use crate::model::views::ResponseKind;
    use crate::store::Home;
    use crate::store::test_certs::{NOW, admission, newcomer};
    use crate::trust::{CertBody, Certificate};

    /// Ana's community under `root`, with one response and one draft of
    /// `text`, written: Ana, her store, the draft.
    fn ana_with_draft(
        root: &Path,
        text: &str,
    ) -> (
        crate::store::Identity,
        crate::store::CommunityStore,
        ObjectId,
    ) {
        let home = Home::new(root.join("ana"));
        let ana = home.init("Ana").unwrap_or_else(|e| panic!("{e}"));
        let store = home
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
            .new_draft(&rid, "Reply", text)
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .persist(&mut ws, &ana)
            .unwrap_or_else(|e| panic!("{e}"));
        (ana, store, did)
    }

    /// A workspace of `who` in which draft `did` now reads `text`, not yet
    /// persisted.
    fn edited(
        store: &crate::store::CommunityStore,
        who: &crate::store::Identity,
        did: &ObjectId,
        text: &str,
    ) -> crate::model::Workspace {
        let mut ws = store.workspace(who, NOW, true);
        let entry = ws
            .resolve_draft(did.as_str())
            .unwrap_or_else(|e| panic!("{e}"));
        ws.edit_draft(&entry, text)
            .unwrap_or_else(|e| panic!("{e}"));
        ws
    }

    #[test]
    fn a_sync_takes_no_digest_of_a_draft_with_a_removed_or_unknown_author() {
        let c = crate::trust::fixture::community(3);
        let devices = [c.device(0).0, c.device(2).0];
        assert!(from_sync_allowed(&c.membership(), &devices));
        let without = c.membership_without(2, "draft-00bb", Vec::new());
        assert!(!from_sync_allowed(&without, &devices));
        assert!(from_sync_allowed(&without, &devices[..1]));
        assert!(!from_sync_allowed(&c.membership(), &[[7; 32]]));
    }

    #[test]
    fn a_digest_serves_only_the_document_it_was_taken_from() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (ana, mut store, did) = ana_with_draft(root.path(), "First text.");
        let name = crate::model::DocId::Draft(did.clone()).name();
        let digest_of =
            |store: &crate::store::CommunityStore| store.loader(&ana, NOW).draft_digest(&did);

        // The command that wrote the draft kept its digest.
        let written = digest_of(&store).unwrap_or_else(|| panic!("the creation kept no digest"));
        // Without it, none until a command loads the draft; then the one it
        // loaded, the same.
        std::fs::remove_file(path(&store.docs_dir(), &name)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(digest_of(&store), None);
        let mut ws = store.workspace(&ana, NOW, false);
        let version = ws.draft_version(&did).unwrap_or_else(|e| panic!("{e}"));
        let digest = digest_of(&store).unwrap_or_else(|| panic!("no digest"));
        assert_eq!(digest, written);
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

        // An edit renews the digest as it is written.
        let mut ws = edited(&store, &ana, &did, "Second text.");
        store
            .persist(&mut ws, &ana)
            .unwrap_or_else(|e| panic!("{e}"));
        let renewed = digest_of(&store).unwrap_or_else(|| panic!("the edit kept no digest"));
        assert_eq!(renewed.text, "Second text.");
        let mut held = store
            .load_doc(&name, false, NOW)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no draft"))
            .doc
            .get_heads()
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>();
        held.sort();
        assert_eq!(renewed.heads, held);

        // The digest of the version before, with that edit in the log: the
        // heads differ, so the document is read (and a digest kept anew).
        std::fs::write(&file, &good).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(digest_of(&store), None);
        let mut ws = store.workspace(&ana, NOW, false);
        assert_eq!(
            ws.draft_text(&did).unwrap_or_else(|e| panic!("{e}")),
            "Second text."
        );
        assert_eq!(digest_of(&store), Some(renewed));

        // Bo is admitted with a device and edits the draft; Ana's next
        // read keeps a digest naming both.
        let ana_key = ana.member_key().unwrap_or_else(|e| panic!("{e}"));
        let (bo, certs) = newcomer(&store, &ana, &root.path().join("bo-device"), "Bo");
        store
            .add_certificates(&certs)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut ws = edited(&store, &bo, &did, "Third text.");
        store
            .persist(&mut ws, &bo)
            .unwrap_or_else(|e| panic!("{e}"));
        // (This store is Ana's device's: it attested the digest that Bo's
        // edit renewed. Without it, Ana's read loads the draft and keeps
        // the same digest.)
        let renewed = digest_of(&store).unwrap_or_else(|| panic!("the edit kept no digest"));
        std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{e}"));
        let mut ws = store.workspace(&ana, NOW, false);
        ws.draft_text(&did).unwrap_or_else(|e| panic!("{e}"));
        let digest = digest_of(&store).unwrap_or_else(|| panic!("no digest"));
        assert_eq!(digest, renewed);
        let mut authors = digest.authors.clone();
        authors.sort();
        let mut both = vec![ana.member_id(), bo.member_id()];
        both.sort();
        assert_eq!(authors, both);

        // Certificates that change no verdict on a change it holds (a
        // second device of Ana's, a new member): still used.
        let second = SecretKey::generate();
        let ana_phone = Certificate::issue(
            &store.id(),
            &CertBody::Device {
                member: ana.member_id(),
                device: DeviceId(second.public()),
                label: "phone".into(),
                at: NOW,
            },
            &[ana_key, &second],
        );
        let cy = Home::new(root.path().join("cy"))
            .init("Cy")
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .add_certificates(&[ana_phone, admission(&store, &ana, &cy, "Cy")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(digest_of(&store), Some(digest.clone()));

        // The removal of an author: not used, even if the removal keeps
        // every change of theirs (a load decides that, not the digest).
        let bo_changes: Vec<String> = store
            .load_doc(&name, false, NOW)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no draft"))
            .doc
            .get_changes_meta(&[])
            .iter()
            .filter(|c| device_of_actor(c.actor.to_bytes()).is_some_and(|d| d == bo.device_id()))
            .map(|c| c.hash.to_string())
            .collect();
        assert!(!bo_changes.is_empty());
        let revoke = Certificate::issue(
            &store.id(),
            &CertBody::Revoke {
                member: bo.member_id(),
                reason: "left".into(),
                by: ana.member_id(),
                at: NOW + 1,
                cutoff: std::collections::BTreeMap::from([(name.clone(), bo_changes)]),
            },
            &[ana_key],
        );
        store
            .add_certificates(&[revoke])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(digest_of(&store), None);
        let mut ws = store.workspace(&ana, NOW, false);
        assert_eq!(
            ws.draft_text(&did).unwrap_or_else(|e| panic!("{e}")),
            "Third text."
        );
        assert!(digest_of(&store).is_some());
    }

    #[test]
    fn after_an_edit_of_a_draft_that_changed_on_disk_meanwhile_no_digest_serves() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (ana, mut store, did) = ana_with_draft(root.path(), "First text. Second sentence.");
        // Bo, a member with a device, writes to the same store (a change
        // arriving while Ana's command holds the draft).
        let (bo, certs) = newcomer(&store, &ana, &root.path().join("bo"), "Bo");
        store
            .add_certificates(&certs)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut anas = edited(&store, &ana, &did, "Changed text. Second sentence.");
        let mut bos = edited(&store, &bo, &did, "First text. Second sentence, changed.");
        store
            .persist(&mut bos, &bo)
            .unwrap_or_else(|e| panic!("{e}"));
        let digest_of = || store.loader(&ana, NOW).draft_digest(&did);
        assert!(digest_of().is_some(), "Bo's edit kept no digest");
        // Ana's workspace holds the draft without Bo's edit: no digest
        // serves after her edit (persist keeps none from her draft, and
        // the one Bo's edit kept names a version the files no longer
        // hold). The draft is read, with both edits.
        store
            .persist(&mut anas, &ana)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(digest_of(), None);
        let mut ws = store.workspace(&ana, NOW, false);
        let text = ws.draft_text(&did).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            text.contains("Changed text.") && text.contains("Second sentence, changed."),
            "{text}"
        );
        assert_eq!(digest_of().map(|d| d.text), Some(text));
    }

    #[test]
    fn the_standing_of_devices_changes_with_what_a_verdict_depends_on() {
        use crate::trust::fixture::community;
        let c = community(3);
        let devices: Vec<[u8; 32]> = (0..3).map(|i| c.device(i).0).collect();
        let before = standing(&c.membership(), "draft-aa", &devices);
        assert_eq!(before, standing(&c.membership(), "draft-aa", &devices));
        // Another set of devices.
        assert_ne!(before, standing(&c.membership(), "draft-aa", &devices[..2]));
        // A removal keeping nothing, or one change, of member 2's.
        let removed = |kept: Vec<String>| c.membership_without(2, "draft-aa", kept);
        let none = standing(&removed(Vec::new()), "draft-aa", &devices);
        let one = standing(&removed(vec!["ab".into()]), "draft-aa", &devices);
        assert_ne!(before, none);
        assert_ne!(none, one);
        // The kept changes of the document named only.
        assert_ne!(
            one,
            standing(&removed(vec!["ab".into()]), "draft-bb", &devices)
        );
        // Two kept changes are not one whose name holds a separator.
        let two = standing(
            &removed(vec!["ab".into(), "cd".into()]),
            "draft-aa",
            &devices,
        );
        for joined in ["ab\0cd", "ab\u{0}cd", "abcd"] {
            assert_ne!(
                two,
                standing(&removed(vec![joined.into()]), "draft-aa", &devices),
                "{joined:?}"
            );
        }
        // A removal of someone who made none of the changes: unchanged.
        assert_eq!(
            standing(&c.membership(), "draft-aa", &devices[..2]),
            standing(&removed(Vec::new()), "draft-aa", &devices[..2])
        );
    }
}
