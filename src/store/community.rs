//! One community on disk: `communities/<id>/` with its certificate log, this
//! store's actor suffix, and one log + snapshot per document.
//!
//! Opening a community verifies every certificate and builds the membership
//! view; documents are loaded lazily through [`StoreLoader`], which verifies
//! every change signature on the way in. [`CommunityStore::persist`] signs the
//! workspace's new changes with the device key and appends them durably.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use automerge::{ActorId, Change};

use super::doclog::{self, DocFiles, LoadedDoc};
use super::frame::{self, CERTS_MAGIC};
use super::fsutil::write_cache;
use super::fsutil::{
    append_durably, cut_torn_tail, private_dir, read_if_exists, sync_dir, write_atomic,
};
use super::identity::Identity;
use super::{Result, StoreError};
use super::{attestation, digest};
use crate::model::digest::DraftDigest;
use crate::model::workspace::Writer;
use crate::model::{DocId, DocLoader, LoadError, Workspace};
use crate::trust::signed_change::{ChangeSignature, actor_bytes, sign_change};
use crate::trust::{
    CertBody, Certificate, CommunityId, DeviceId, Membership, SecretKey, VerifiedCert,
};

/// A document log larger than this is folded into its snapshot after a write,
/// a sync or an import. Small enough that a draft edited a few hundred times
/// gets an attested snapshot (so that loading it, and reading its heads for a
/// sync, need not decode and verify every change of its log), large enough
/// that a busy discussion is not rewritten for every few comments.
pub const COMPACT_AT_BYTES: u64 = 64 * 1024;

/// Whether a document held in memory still holds exactly what its files
/// hold, once changes are kept ([`CommunityStore::keep_verified`]).
pub enum Sound {
    /// It does.
    Yes,
    /// Its fold panicked half-way: read it again from its files.
    No,
}

/// An open community.
pub struct CommunityStore {
    dir: PathBuf,
    id: CommunityId,
    certs: Vec<VerifiedCert>,
    membership: Membership,
    actor_suffix: [u8; 8],
    /// The actor file was missing or damaged: `actor_suffix` is a fresh one
    /// that [`CommunityStore::repair`] writes down.
    actor_replaced: bool,
    /// This device's key, to attest the snapshots it compacts and to trust
    /// its own attestations on load (`super::attestation`); see [`CommunityStore::with_device`].
    device: Option<Arc<SecretKey>>,
}

/// Loads documents from a community folder, verifying every signature
/// (except in snapshots `own_device` attested).
pub struct StoreLoader {
    docs_dir: PathBuf,
    membership: Membership,
    own_device: Option<DeviceId>,
    /// This device's key, to keep draft digests (`super::digest`).
    device: Option<Arc<SecretKey>>,
    repair: bool,
    now: i64,
}

impl DocLoader for StoreLoader {
    fn load(
        &mut self,
        id: &DocId,
    ) -> std::result::Result<Option<automerge::AutoCommit>, LoadError> {
        let files = DocFiles::new(&self.docs_dir, &id.name());
        let mut doc = doclog::load(
            &files,
            &self.membership,
            self.own_device.as_ref(),
            self.repair,
            self.now,
        )
        .map(|loaded| loaded.map(|l| l.doc))
        .map_err(|e| LoadError {
            integrity: e.is_integrity(),
            message: e.to_string(),
        })?;
        // A draft loaded in full: keep its digest for the next command.
        if let (DocId::Draft(_), Some(doc), Some(device)) = (id, doc.as_mut(), &self.device) {
            let devices = digest::devices_of(doc);
            digest::keep(
                &self.docs_dir,
                &files.name,
                device,
                &self.membership,
                devices,
                doc,
            );
        }
        Ok(doc)
    }

    fn draft_digest(&mut self, draft: &crate::ids::ObjectId) -> Option<DraftDigest> {
        let own_device = self.own_device.as_ref()?;
        let files = DocFiles::new(&self.docs_dir, &DocId::Draft(draft.clone()).name());
        digest::read(&files, &self.docs_dir, own_device, &self.membership)
    }

    fn exists(&mut self, id: &DocId) -> std::result::Result<bool, LoadError> {
        let files = DocFiles::new(&self.docs_dir, &id.name());
        Ok(files.log.exists() || files.snapshot.exists())
    }
}

impl CommunityStore {
    /// Found a community in `communities_dir` with `identity` as founder.
    pub fn create(
        communities_dir: &Path,
        identity: &Identity,
        name: &str,
        purpose: &str,
        now: i64,
    ) -> Result<Self> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Missing("a community needs a name".into()));
        }
        private_dir(communities_dir)?;
        let genesis_body = CertBody::Genesis {
            name: name.to_string(),
            purpose: purpose.trim().to_string(),
            founder: identity.member_id(),
            founder_name: identity.name.clone(),
            at: now,
            nonce: hex::encode(crate::ids::random_bytes::<16>()),
        };
        let (id, genesis) = Certificate::genesis(identity.member_key()?, &genesis_body);
        let device = Certificate::issue(
            &id,
            &CertBody::Device {
                member: identity.member_id(),
                device: identity.device_id(),
                label: device_label(),
                at: now,
            },
            &[identity.member_key()?, &identity.device],
        );

        // Build the whole folder aside, then rename it into place.
        let tmp = communities_dir.join(format!(
            ".tmp-{}",
            hex::encode(crate::ids::random_bytes::<8>())
        ));
        private_dir(&tmp.join("docs"))?;
        let mut certs = Vec::new();
        for cert in [&genesis, &device] {
            certs.extend(frame::encode(&cert.to_bytes()));
        }
        append_durably(&tmp.join("certs.log"), CERTS_MAGIC, &certs)?;
        write_atomic(
            &tmp.join("actor"),
            hex::encode(crate::ids::random_bytes::<8>()).as_bytes(),
        )?;
        let staged = CommunityStore::open(&tmp, id)?.with_device(identity.device.clone());
        let mut ws = staged.workspace(identity, now, true);
        ws.init_community_doc()
            .map_err(|e| StoreError::Missing(e.to_string()))?;
        staged.persist(&mut ws, identity)?;

        let dir = communities_dir.join(id.to_hex());
        std::fs::rename(&tmp, &dir).map_err(|e| StoreError::io(&dir, e))?;
        sync_dir(communities_dir)?;
        Ok(CommunityStore::open(&dir, id)?.with_device(identity.device.clone()))
    }

    /// Make the local copy of a community this device joins: its
    /// certificates (verified) and a fresh actor suffix; the documents
    /// arrive by sync.
    pub fn create_joined(
        communities_dir: &Path,
        id: CommunityId,
        certs: &[Certificate],
    ) -> Result<Self> {
        let dir = communities_dir.join(id.to_hex());
        if dir.exists() {
            return Err(StoreError::Exists(format!(
                "this home already holds community {}",
                id.short()
            )));
        }
        private_dir(communities_dir)?;
        let tmp = communities_dir.join(format!(
            ".tmp-{}",
            hex::encode(crate::ids::random_bytes::<8>())
        ));
        private_dir(&tmp.join("docs"))?;
        let mut bytes = Vec::new();
        for cert in certs {
            cert.verify(&id).map_err(|source| StoreError::Refused {
                path: tmp.join("certs.log"),
                source,
            })?;
            bytes.extend(frame::encode(&cert.to_bytes()));
        }
        append_durably(&tmp.join("certs.log"), CERTS_MAGIC, &bytes)?;
        write_atomic(
            &tmp.join("actor"),
            hex::encode(crate::ids::random_bytes::<8>()).as_bytes(),
        )?;
        CommunityStore::open(&tmp, id)?;
        std::fs::rename(&tmp, &dir).map_err(|e| StoreError::io(&dir, e))?;
        sync_dir(communities_dir)?;
        CommunityStore::open(&dir, id)
    }

    /// Open the community in `dir`, verifying every certificate.
    pub fn open(dir: &Path, id: CommunityId) -> Result<Self> {
        Self::open_as(dir, id, None)
    }

    /// Open a community on this device: with its key, the certificates it
    /// verified before (`certs.attest`, [`attestation::attested_certificates`])
    /// are not checked again, the new ones are, and the attestation is then
    /// renewed to cover them all; the store is also given the key
    /// ([`CommunityStore::with_device`]). Without a key, like [`CommunityStore::open`].
    pub fn open_as(dir: &Path, id: CommunityId, device: Option<Arc<SecretKey>>) -> Result<Self> {
        let certs_path = dir.join("certs.log");
        let bytes = read_if_exists(&certs_path)?
            .ok_or_else(|| StoreError::corrupt(&certs_path, "the certificate log is missing"))?;
        let parsed = frame::parse(&bytes, CERTS_MAGIC)
            .map_err(|e| StoreError::corrupt(&certs_path, e.to_string()))?;
        // Readers only warn; `repair` (writers) leaves the note.
        super::fsutil::check_seal(&certs_path, bytes.len() as u64, false, 0)?;
        if let Some(at) = parsed.torn_at {
            tracing::warn!(
                "{} has a torn tail of {} bytes; it is skipped",
                certs_path.display(),
                bytes.len() - at
            );
        }
        let ids: Vec<[u8; 32]> = parsed
            .records
            .iter()
            .map(|r| crate::trust::sha256(r))
            .collect();
        let attest_path = dir.join("certs.attest");
        let own_device = device.as_ref().map(|d| DeviceId(d.public()));
        let attested = match (&own_device, read_if_exists(&attest_path)?) {
            (Some(own), Some(file)) => attestation::attested_certificates(&file, own, &id, &ids),
            _ => 0,
        };
        let mut certs = Vec::new();
        for (i, record) in parsed.records.iter().enumerate() {
            let refused = |source| StoreError::Refused {
                path: certs_path.clone(),
                source,
            };
            let cert = Certificate::from_bytes(record).map_err(refused)?;
            let checked = if i < attested {
                cert.accept_attested(&id)
            } else {
                cert.verify(&id)
            };
            certs.push(checked.map_err(|e| StoreError::Refused {
                path: certs_path.clone(),
                source: crate::trust::TrustError::CertRefused(format!("certificate {i}: {e}")),
            })?);
        }
        let membership = Membership::build(id, &certs).map_err(|source| StoreError::Refused {
            path: certs_path.clone(),
            source,
        })?;
        // The actor file only keeps this device's changes under one Automerge
        // actor. A fresh actor is always safe (its sequence starts anew), so
        // a damaged file is replaced rather than refused.
        let actor_path = dir.join("actor");
        let actor_suffix: Option<[u8; 8]> = read_if_exists(&actor_path)?.and_then(|text| {
            let text = std::str::from_utf8(&text).ok()?.trim();
            let bytes = hex::decode(text).ok()?;
            (text.len() == 16).then_some(bytes.try_into().ok()?)
        });
        if actor_suffix.is_none() {
            tracing::warn!(
                "{} is missing or damaged; this device writes under a new actor",
                actor_path.display()
            );
        }
        // Every certificate is verified now: attest them for the next open.
        // A cache, written without fsync: a torn file only fails to hold.
        if let Some(device) = &device
            && attested < ids.len()
            && let Err(e) = write_cache(
                &attest_path,
                &attestation::attest_certificates(device, &id, &ids),
            )
        {
            tracing::debug!("could not attest the certificates: {e}");
        }
        Ok(CommunityStore {
            dir: dir.to_path_buf(),
            id,
            certs,
            membership,
            actor_replaced: actor_suffix.is_none(),
            actor_suffix: actor_suffix.unwrap_or_else(crate::ids::random_bytes::<8>),
            device,
        })
    }

    /// Give the store this device's key. Compaction then attests the snapshots
    /// it writes, and loading trusts this device's own attestations instead of
    /// checking every signature again (`super::attestation`). Without it, loading
    /// checks everything and snapshots are written unattested: correct, only
    /// slower. [`super::Home::open_community`] does this for the home's
    /// identity.
    pub fn with_device(mut self, device: Arc<SecretKey>) -> Self {
        self.device = Some(device);
        self
    }

    /// This device's key, if the store was given it.
    pub fn device(&self) -> Option<&Arc<SecretKey>> {
        self.device.as_ref()
    }

    /// A read-only loader of this community's documents for `identity`'s
    /// device (which trusts its own attestations).
    pub fn loader(&self, identity: &Identity, now: i64) -> StoreLoader {
        StoreLoader {
            docs_dir: self.docs_dir(),
            membership: self.membership.clone(),
            own_device: Some(identity.device_id()),
            device: Some(identity.device.clone()),
            repair: false,
            now,
        }
    }

    /// [`Self::loader`] that cuts torn log tails as documents load (the
    /// home's write lock held), as a writer must before appending.
    pub fn repairing_loader(&self, identity: &Identity, now: i64) -> StoreLoader {
        StoreLoader {
            repair: true,
            ..self.loader(identity, now)
        }
    }

    /// Load and verify document `name`, trusting this device's own attestations.
    pub fn load_doc(&self, name: &str, repair: bool, now: i64) -> Result<Option<LoadedDoc>> {
        let own = self.device.as_ref().map(|d| DeviceId(d.public()));
        let mut loaded = doclog::load(
            &DocFiles::new(&self.docs_dir(), name),
            &self.membership,
            own.as_ref(),
            repair,
            now,
        )?;
        // With repair, a log holding changes the load left out is folded:
        // its files then hold what the document holds, heads included.
        if repair
            && let Some(loaded) = loaded.as_mut().filter(|l| l.left_out > 0)
            && let Err(e) = self.compact_doc(name, loaded)
        {
            tracing::warn!("could not compact {name}: {e}");
        }
        Ok(loaded)
    }

    /// Document `name`'s heads from its files, without loading it, if it
    /// has no snapshot or one this device attested (see [`doclog::heads`]).
    pub fn doc_heads(&self, name: &str) -> Option<Vec<automerge::ChangeHash>> {
        let device = self.device.as_ref().map(|d| DeviceId(d.public()));
        doclog::heads(
            &DocFiles::new(&self.docs_dir(), name),
            device.as_ref(),
            &self.id,
        )
    }

    /// Document `name` loaded (as [`Self::load_doc`] with repair, the log
    /// changes in `appended` checked as [`doclog::load_trusting`] does)
    /// and, if its log has grown past [`COMPACT_AT_BYTES`] or holds changes
    /// the load left out, folded into a new snapshot; `None` if the store does not hold it. A fold that
    /// fails is a warning (the document loaded is sound, its files hold it
    /// all).
    pub fn load_folding(
        &self,
        name: &str,
        now: i64,
        appended: &doclog::Appended,
    ) -> Result<Option<LoadedDoc>> {
        let own = self.device.as_ref().map(|d| DeviceId(d.public()));
        let files = DocFiles::new(&self.docs_dir(), name);
        let Some(mut loaded) =
            doclog::load_trusting(&files, &self.membership, own.as_ref(), true, now, appended)?
        else {
            return Ok(None);
        };
        let log = DocFiles::new(&self.docs_dir(), name).log;
        let grown = std::fs::metadata(&log).is_ok_and(|m| m.len() > COMPACT_AT_BYTES);
        // (A log with changes left out is folded whatever its size: its
        // files then hold what the document holds, heads included.)
        if (grown || loaded.left_out > 0)
            && let Err(e) = self.compact_doc(name, &mut loaded)
        {
            tracing::warn!("could not compact {name}: {e}");
        }
        Ok(Some(loaded))
    }

    /// Document `name`'s heads and every change its files hold, without
    /// loading it, when [`Self::doc_heads`] can read them (see
    /// [`doclog::held`]).
    pub fn doc_view(&self, name: &str) -> Option<doclog::FileView> {
        let device = self.device.as_ref().map(|d| DeviceId(d.public()));
        doclog::held(
            &DocFiles::new(&self.docs_dir(), name),
            device.as_ref(),
            &self.id,
        )
    }

    /// Fold document `name`'s log into a new snapshot, attested if the store
    /// has this device's key. `loaded` must be what [`Self::load_doc`] gave
    /// (plus verified changes appended since).
    pub fn compact_doc(&self, name: &str, loaded: &mut LoadedDoc) -> Result<()> {
        let files = DocFiles::new(&self.docs_dir(), name);
        doclog::compact(&files, loaded, self.device.as_deref(), &self.id)
    }

    /// Keep verified changes that a sync or an import just applied to
    /// document `name` (`loaded`, if held: it must hold exactly its files
    /// and these changes): append them to its log durably, record their
    /// signatures in `loaded`, and fold the log into a snapshot once it has
    /// grown past [`COMPACT_AT_BYTES`] ([`Self::compact_doc`]). A fold that
    /// fails only warns, the changes being durable in the log. Touches only
    /// this document, so documents are kept side by side.
    pub fn keep_verified(
        &self,
        name: &str,
        loaded: Option<&mut LoadedDoc>,
        changes: &[(ChangeSignature, Change)],
    ) -> Result<Sound> {
        let files = DocFiles::new(&self.docs_dir(), name);
        let records: Vec<(ChangeSignature, Vec<u8>)> = changes
            .iter()
            .map(|(s, c)| (*s, c.raw_bytes().to_vec()))
            .collect();
        let size = doclog::append(&files, &records)?;
        let Some(loaded) = loaded else {
            return Ok(Sound::Yes);
        };
        for (sig, change) in changes {
            loaded.signatures.insert(change.hash().0, *sig);
        }
        if size <= COMPACT_AT_BYTES {
            return Ok(Sound::Yes);
        }
        let folded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.compact_doc(name, loaded).map_err(|e| e.to_string())
        }));
        match folded {
            Ok(Ok(())) => Ok(Sound::Yes),
            Ok(Err(e)) => {
                tracing::warn!("could not compact {name}: {e}");
                Ok(Sound::Yes)
            }
            Err(_) => {
                tracing::warn!("could not compact {name}: the document library failed");
                Ok(Sound::No)
            }
        }
    }

    /// Keep a document that arrived whole and was verified
    /// (`crate::sync::whole`) as its snapshot, attested if the store has
    /// this device's key, with an empty log. Without a history: writing
    /// one would slow every join for the sake of a newcomer that may never
    /// send the document whole; the first send writes it
    /// ([`Self::keep_history`]).
    pub fn install_doc(&self, name: &str, loaded: &mut LoadedDoc) -> Result<()> {
        crate::store::fsutil::private_dir(&self.docs_dir())?;
        let files = DocFiles::new(&self.docs_dir(), name);
        let fold = super::history::Fold::Forget;
        doclog::compact_folding(&files, loaded, self.device.as_deref(), &self.id, fold)
    }

    /// Keep the digest of draft `name`, as a sync holds it (`doc`, every
    /// change verified) or as a command wrote it ([`Self::persist`]), for
    /// the next command that reads it (`super::digest`), as a command that
    /// loads a draft does. Only when
    /// `doc` is what its files hold (its heads are those read from them)
    /// and every author is a current member
    /// ([`digest::from_sync_allowed`]); nothing without this device's key.
    /// Whether it was kept.
    pub fn keep_draft_digest(&self, name: &str, doc: &mut automerge::AutoCommit) -> bool {
        let Some(device) = &self.device else {
            return false;
        };
        let devices = digest::devices_of(doc);
        if !digest::from_sync_allowed(&self.membership, &devices) {
            return false;
        }
        let mut held = doc.get_heads();
        held.sort();
        let on_disk = self.doc_heads(name).map(|mut heads| {
            heads.sort();
            heads
        });
        on_disk == Some(held)
            && digest::keep(
                &self.docs_dir(),
                name,
                device,
                &self.membership,
                devices,
                doc,
            )
    }

    /// Write document `name`'s history from `whole`, its changes rebuilt
    /// from the loaded document (`super::history::rebuilt`).
    pub fn keep_history(&self, name: &str, whole: &crate::sync::whole::WholeDoc) {
        if let Some(device) = &self.device {
            let files = DocFiles::new(&self.docs_dir(), name);
            super::history::rebuilt(&files, &self.membership, &DeviceId(device.public()), whole);
        }
    }

    /// Document `name` ready to send whole, read from its history without
    /// loading it (`super::history`), or `None` if that cannot be used.
    pub fn whole_from_files(&self, name: &str) -> Option<crate::sync::whole::WholeDoc> {
        let device = DeviceId(self.device.as_ref()?.public());
        let files = DocFiles::new(&self.docs_dir(), name);
        super::history::whole(&files, &self.membership, &device)
    }

    /// Verify certificates and append the new ones durably to the log, then
    /// rebuild the membership view. Returns how many were new.
    pub fn add_certificates(&mut self, certs: &[Certificate]) -> Result<usize> {
        let path = self.dir.join("certs.log");
        let mut bytes = Vec::new();
        let mut added = 0;
        for cert in certs {
            let verified = cert
                .verify(&self.id)
                .map_err(|source| StoreError::Refused {
                    path: path.clone(),
                    source,
                })?;
            if self.certs.iter().any(|c| c.id() == verified.id()) {
                continue;
            }
            bytes.extend(frame::encode(verified.bytes()));
            self.certs.push(verified);
            added += 1;
        }
        if added > 0 {
            append_durably(&path, CERTS_MAGIC, &bytes)?;
            self.membership =
                Membership::build(self.id, &self.certs).map_err(|source| StoreError::Refused {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(added)
    }

    /// What a writing command mends on opening, under the write lock: a
    /// replaced actor file is written down, a torn tail of the certificate
    /// log is cut, and bytes found missing at its end are noted.
    pub fn repair(&self, now: i64) -> Result<()> {
        if self.actor_replaced {
            write_atomic(
                &self.dir.join("actor"),
                hex::encode(self.actor_suffix).as_bytes(),
            )?;
        }
        let path = self.dir.join("certs.log");
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(());
        };
        super::fsutil::check_seal(&path, bytes.len() as u64, true, now)?;
        if let Ok(frame::Parsed {
            torn_at: Some(at), ..
        }) = frame::parse(&bytes, CERTS_MAGIC)
        {
            cut_torn_tail(&path, &bytes, at, now)?;
        }
        Ok(())
    }

    /// Whether the actor file was missing or damaged when the store opened.
    pub fn actor_replaced(&self) -> bool {
        self.actor_replaced
    }

    /// The community id.
    pub fn id(&self) -> CommunityId {
        self.id
    }

    /// The roster.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The verified certificates' bytes, as stored.
    pub fn certificate_bytes(&self) -> Vec<Vec<u8>> {
        self.certs.iter().map(|c| c.bytes().to_vec()).collect()
    }

    /// The names of the documents held on disk.
    pub fn doc_names(&self) -> Result<Vec<String>> {
        let dir = self.docs_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let stem = name
                    .strip_suffix(".log")
                    .or_else(|| name.strip_suffix(".snapshot"))?;
                DocId::parse(stem).map(|_| stem.to_string())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The community folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder of document files.
    pub fn docs_dir(&self) -> PathBuf {
        self.dir.join("docs")
    }

    /// This store's actor for `identity`'s device.
    pub fn actor(&self, identity: &Identity) -> ActorId {
        ActorId::from(actor_bytes(&identity.device_id(), &self.actor_suffix))
    }

    /// A workspace acting as `identity`. With `repair` (write lock held) torn
    /// log tails are cut as documents load.
    pub fn workspace(&self, identity: &Identity, now: i64, repair: bool) -> Workspace {
        self.workspace_with(identity, now, repair, |loader| Box::new(loader))
    }

    /// [`Self::workspace`], its loader wrapped by `wrap` (to share what it
    /// reads with another workspace: `model::shared_loads`).
    pub fn workspace_with(
        &self,
        identity: &Identity,
        now: i64,
        repair: bool,
        wrap: impl FnOnce(StoreLoader) -> Box<dyn DocLoader>,
    ) -> Workspace {
        let mut loader = self.loader(identity, now);
        loader.repair = repair;
        Workspace::new(self.membership.clone(), wrap(loader), now).with_writer(Writer {
            member: identity.member_id(),
            actor: self.actor(identity),
        })
    }

    /// Sign the workspace's new changes with the device key and append them,
    /// documents that others point to first, and renew the digest of each
    /// draft they changed. Returns how many were written.
    pub fn persist(&self, ws: &mut Workspace, identity: &Identity) -> Result<usize> {
        let actor = self.actor(identity);
        let mut written = 0;
        let mut batches = ws.take_new_changes();
        // Drafts and discussions before the index that points to them.
        batches.reverse();
        for (doc_id, changes) in batches {
            let files = DocFiles::new(&self.docs_dir(), &doc_id.name());
            let mut records = Vec::with_capacity(changes.len());
            for change in changes {
                if *change.actor_id() != actor {
                    return Err(StoreError::Missing(format!(
                        "refusing to sign change {} made by another actor",
                        change.hash()
                    )));
                }
                let sig = sign_change(&identity.device, &self.id, &doc_id.name(), &change.hash().0);
                records.push((sig, change.raw_bytes().to_vec()));
            }
            written += records.len();
            if doclog::append(&files, &records)? > COMPACT_AT_BYTES {
                // The changes are already durable: a failed compaction is
                // only a warning, and the next write tries again.
                let own = identity.device_id();
                let compacted = doclog::load(&files, &self.membership, Some(&own), true, ws.now())
                    .and_then(|loaded| match loaded {
                        Some(mut loaded) => {
                            doclog::compact(&files, &mut loaded, Some(&identity.device), &self.id)
                        }
                        None => Ok(()),
                    });
                if let Err(e) = compacted {
                    tracing::warn!("could not compact {}: {e}", files.log.display());
                }
            }
            // A draft this command edited: its digest is renewed from the
            // draft as written, so that the next `show` does not read it in
            // full (the digest of the version before no longer serves).
            if let DocId::Draft(_) = &doc_id
                && let Some(doc) = ws.held_doc(&doc_id)
            {
                self.keep_draft_digest(&doc_id.name(), doc);
            }
        }
        Ok(written)
    }
}

fn device_label() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this device".to_string())
}
