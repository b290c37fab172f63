//! An in-memory [`Replica`] for tests and simulations: certificates,
//! documents and signatures held in maps, with the same verification rules
//! as the store.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ChangeHash};

use super::whole::{self, Verified, WholeDoc};
use super::{Replica, SyncError};
use crate::trust::removal::LateChanges;
use crate::trust::signed_change::{
    ChangeSignature, actor_bytes, device_of_actor, sign_change, verify_signed,
};
use crate::trust::{Certificate, CommunityId, DeviceId, Membership, SecretKey, VerifiedCert};

/// One device's copy of a community, in memory.
pub struct MemoryReplica {
    certs: Vec<VerifiedCert>,
    membership: Membership,
    docs: BTreeMap<String, AutoCommit>,
    signatures: BTreeMap<String, BTreeMap<ChangeHash, ChangeSignature>>,
    device: SecretKey,
    actor: ActorId,
    /// Sync states remembered per peer and document, encoded as the store
    /// keeps them (only the shared heads survive).
    states: BTreeMap<(DeviceId, String), Vec<u8>>,
    /// Tests only: behave like a peer that ignores removals.
    ignore_removals: bool,
}

impl MemoryReplica {
    /// A replica of `community` holding `certs`, acting with `device`.
    pub fn new(
        community: CommunityId,
        certs: Vec<VerifiedCert>,
        device: SecretKey,
        actor_suffix: [u8; 8],
    ) -> Result<Self, SyncError> {
        let membership =
            Membership::build(community, &certs).map_err(|e| SyncError::Local(e.to_string()))?;
        let actor = ActorId::from(actor_bytes(&DeviceId(device.public()), &actor_suffix));
        Ok(MemoryReplica {
            certs,
            membership,
            docs: BTreeMap::new(),
            signatures: BTreeMap::new(),
            device,
            actor,
            states: BTreeMap::new(),
            ignore_removals: false,
        })
    }

    /// The same replica, behaving like a modified or outdated peer that
    /// keeps a removed member's later changes and offers them on.
    pub fn ignoring_removals(mut self) -> Self {
        self.ignore_removals = true;
        self
    }

    /// Put `key = value` at the root of `doc` as this device, signed.
    pub fn write(&mut self, doc: &str, key: &str, value: i64) -> Result<(), SyncError> {
        let actor = self.actor.clone();
        let d = self
            .docs
            .entry(doc.to_string())
            .or_insert_with(|| AutoCommit::new().with_actor(actor.clone()));
        d.set_actor(actor);
        d.put(automerge::ROOT, key, value)
            .map_err(|e| SyncError::Local(e.to_string()))?;
        let Some(hash) = d.commit() else {
            return Ok(());
        };
        let sig = sign_change(&self.device, &self.membership.community, doc, &hash.0);
        self.signatures
            .entry(doc.to_string())
            .or_default()
            .insert(hash, sig);
        Ok(())
    }

    /// This replica's actor (device key ‖ suffix).
    pub fn actor(&self) -> ActorId {
        self.actor.clone()
    }

    /// The certificates held.
    pub fn verified_certs(&self) -> &[VerifiedCert] {
        &self.certs
    }

    /// A copy of every document (for a model workspace to read).
    pub fn docs_copy(&self) -> BTreeMap<String, AutoCommit> {
        self.docs.clone()
    }

    /// Keep changes a model workspace made here, signed by this device.
    pub fn commit_local(&mut self, doc: &str, changes: &[Change]) -> Result<(), SyncError> {
        let actor = self.actor.clone();
        let d = self
            .docs
            .entry(doc.to_string())
            .or_insert_with(|| AutoCommit::new().with_actor(actor));
        d.apply_changes(changes.iter().cloned())
            .map_err(|e| SyncError::Local(e.to_string()))?;
        let sigs = self.signatures.entry(doc.to_string()).or_default();
        for change in changes {
            let hash = change.hash();
            sigs.insert(
                hash,
                sign_change(&self.device, &self.membership.community, doc, &hash.0),
            );
        }
        Ok(())
    }

    /// Every change `device` made, per document, as hex hashes (what a
    /// removal keeps).
    pub fn changes_by(&mut self, device: &DeviceId) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (name, doc) in self.docs.iter_mut() {
            let hashes: Vec<String> = doc
                .get_changes_meta(&[])
                .iter()
                .filter(|m| device_of_actor(m.actor.to_bytes()) == Some(*device))
                .map(|m| m.hash.to_string())
                .collect();
            if !hashes.is_empty() {
                out.insert(name.clone(), hashes);
            }
        }
        out
    }

    /// A restart: every document rebuilt from its changes, as the store
    /// loads them (anything only in memory, such as changes waiting for
    /// their dependencies, is gone).
    pub fn restart(&mut self) {
        for doc in self.docs.values_mut() {
            let changes = doc.get_changes(&[]);
            let mut fresh = AutoCommit::new().with_actor(self.actor.clone());
            if fresh.apply_changes(changes).is_ok() {
                *doc = fresh;
            }
        }
        if !self.ignore_removals {
            self.drop_late_changes();
        }
    }

    /// Replace the sync state remembered with `peer` for `doc` by one that
    /// claims these shared heads (as a damaged or outdated state would).
    pub fn remember_shared_heads(&mut self, peer: DeviceId, doc: &str, heads: Vec<ChangeHash>) {
        let mut state = automerge::sync::State::new();
        state.shared_heads = heads;
        self.states.insert((peer, doc.to_string()), state.encode());
    }

    /// The shared heads remembered with `peer` for `doc`.
    pub fn remembered_shared_heads(&self, peer: DeviceId, doc: &str) -> Option<Vec<ChangeHash>> {
        let bytes = self.states.get(&(peer, doc.to_string()))?;
        Some(automerge::sync::State::decode(bytes).ok()?.shared_heads)
    }

    /// Every change of a document, with its signature when held.
    pub fn changes_of(&mut self, doc: &str) -> Vec<(Change, Option<ChangeSignature>)> {
        let Some(d) = self.docs.get_mut(doc) else {
            return Vec::new();
        };
        let sigs = self.signatures.get(doc);
        d.get_changes(&[])
            .into_iter()
            .map(|c| {
                let sig = sigs.and_then(|s| s.get(&c.hash())).copied();
                (c, sig)
            })
            .collect()
    }

    /// Heads of every document, for comparing replicas.
    pub fn all_heads(&mut self) -> BTreeMap<String, Vec<ChangeHash>> {
        self.docs
            .iter_mut()
            .map(|(n, d)| (n.clone(), d.get_heads()))
            .collect()
    }

    /// Every document's content as JSON text, for comparing replicas.
    pub fn all_values(&mut self) -> BTreeMap<String, String> {
        self.docs
            .iter()
            .map(|(n, d)| {
                (
                    n.clone(),
                    serde_json::to_string(&automerge::AutoSerde::from(d)).unwrap_or_default(),
                )
            })
            .collect()
    }
}

impl MemoryReplica {
    /// Rebuild every document without the removed members' later changes
    /// that nothing kept builds on, as the store does on its next load.
    fn drop_late_changes(&mut self) {
        for (name, doc) in self.docs.iter_mut() {
            let sigs = self.signatures.get(name);
            let changes = doc.get_changes(&[]);
            let mut late = LateChanges::default();
            for change in &changes {
                let Some(sig) = sigs.and_then(|s| s.get(&change.hash())) else {
                    continue;
                };
                let actor = change.actor_id().to_bytes();
                if let Ok((_, standing)) =
                    verify_signed(&self.membership, name, actor, &change.hash().0, sig)
                {
                    late.add_change(change, standing);
                }
            }
            let dropped = late.dropped();
            if dropped.is_empty() {
                continue;
            }
            let mut rebuilt = AutoCommit::new().with_actor(self.actor.clone());
            let kept: Vec<Change> = changes
                .into_iter()
                .filter(|c| !dropped.contains(&c.hash().0))
                .collect();
            if rebuilt.apply_changes(kept).is_ok() {
                *doc = rebuilt;
            }
        }
    }
}

impl Replica for MemoryReplica {
    fn membership(&self) -> &Membership {
        &self.membership
    }

    fn certificates(&self) -> Vec<Vec<u8>> {
        self.certs.iter().map(|c| c.bytes().to_vec()).collect()
    }

    fn add_certificates(&mut self, certs: &[Certificate]) -> Result<usize, SyncError> {
        let mut added = 0;
        for cert in certs {
            let v = cert
                .verify(&self.membership.community)
                .map_err(|e| SyncError::Refused(e.to_string()))?;
            if !self.certs.iter().any(|c| c.id() == v.id()) {
                self.certs.push(v);
                added += 1;
            }
        }
        self.membership = Membership::build(self.membership.community, &self.certs)
            .map_err(|e| SyncError::Refused(e.to_string()))?;
        if added > 0 && !self.ignore_removals {
            self.drop_late_changes();
        }
        Ok(added)
    }

    fn doc_names(&mut self) -> Result<Vec<String>, SyncError> {
        Ok(self
            .docs
            .iter_mut()
            .filter_map(|(n, d)| (!d.get_heads().is_empty()).then(|| n.clone()))
            .collect())
    }

    fn doc(&mut self, name: &str) -> Result<&mut AutoCommit, SyncError> {
        let actor = self.actor.clone();
        Ok(self
            .docs
            .entry(name.to_string())
            .or_insert_with(|| AutoCommit::new().with_actor(actor)))
    }

    fn docs_mut(&mut self, names: &[String]) -> Result<Vec<&mut AutoCommit>, SyncError> {
        for name in names {
            self.doc(name)?;
        }
        super::replica::entries_mut(&mut self.docs, names)
    }

    fn whole(&mut self, name: &str) -> Result<Option<WholeDoc>, SyncError> {
        let Some(doc) = self.docs.get_mut(name) else {
            return Ok(None);
        };
        let signatures = self.signatures.get(name);
        Ok(whole::prepare(name, doc, |hash| {
            signatures.and_then(|s| s.get(&ChangeHash(*hash))).copied()
        }))
    }

    fn install(&mut self, name: &str, verified: Verified) -> Result<(), SyncError> {
        let Verified { doc, signatures } = verified;
        self.docs
            .insert(name.to_string(), doc.with_actor(self.actor.clone()));
        self.signatures.insert(
            name.to_string(),
            signatures
                .into_iter()
                .map(|(hash, sig)| (ChangeHash(hash), sig))
                .collect(),
        );
        Ok(())
    }

    fn signature(&self, doc: &str, hash: &ChangeHash) -> Option<ChangeSignature> {
        self.signatures.get(doc).and_then(|s| s.get(hash)).copied()
    }

    fn persist(
        &mut self,
        doc: &str,
        changes: &[(ChangeSignature, Change)],
    ) -> Result<(), SyncError> {
        let sigs = self.signatures.entry(doc.to_string()).or_default();
        for (sig, change) in changes {
            sigs.insert(change.hash(), *sig);
        }
        Ok(())
    }

    fn sync_state(&mut self, peer: &DeviceId, doc: &str) -> Option<automerge::sync::State> {
        let bytes = self.states.get(&(*peer, doc.to_string()))?;
        automerge::sync::State::decode(bytes).ok()
    }

    fn save_sync_states(
        &mut self,
        peer: &DeviceId,
        states: &BTreeMap<String, automerge::sync::State>,
    ) -> Result<(), SyncError> {
        for (doc, state) in states {
            self.states.insert((*peer, doc.clone()), state.encode());
        }
        Ok(())
    }
}
