//! The documents of one community open in memory, and who is acting.
//!
//! A [`Workspace`] loads documents on demand through a [`DocLoader`] (the
//! store verifies every signature before handing a document over), lets the
//! typed operations of this module's siblings change them, and then hands the
//! new local changes back with [`Workspace::take_new_changes`] so the store
//! can sign and persist them.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, AutoCommit, Change, ChangeHash};

use super::digest::DraftDigest;
use super::doc::DocId;
use super::response::IndexEntry;
use super::{ModelError, Result};
use crate::ids::ObjectId;
use crate::trust::{Member, MemberId, Membership, Role};

/// Why a document could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    /// What went wrong, for people.
    pub message: String,
    /// True when the cause is corruption or a refused signature (exit 4).
    pub integrity: bool,
}

/// Where documents come from: the store on disk, or memory in tests.
pub trait DocLoader {
    /// Load a document, fully verified, or `None` if it does not exist.
    fn load(&mut self, id: &DocId) -> std::result::Result<Option<AutoCommit>, LoadError>;

    /// Whether the document is here, without loading it (by default, by
    /// loading it).
    fn exists(&mut self, id: &DocId) -> std::result::Result<bool, LoadError> {
        Ok(self.load(id)?.is_some())
    }

    /// A draft's digest, if the loader holds one that is still exactly the
    /// draft document's (by default none: the views load the document).
    fn draft_digest(&mut self, _draft: &ObjectId) -> Option<DraftDigest> {
        None
    }
}

/// A loader with no documents (a community seen for the first time, tests).
pub struct NoDocs;

impl DocLoader for NoDocs {
    fn load(&mut self, _: &DocId) -> std::result::Result<Option<AutoCommit>, LoadError> {
        Ok(None)
    }
}

/// The member acting through this device, and the actor their changes use.
#[derive(Clone, Debug)]
pub struct Writer {
    /// The acting member.
    pub member: MemberId,
    /// This store's actor: device key ‖ random suffix.
    pub actor: ActorId,
}

pub(super) struct OpenDoc {
    pub(super) doc: AutoCommit,
    /// Heads when loaded or last persisted: changes after them are new.
    persisted_heads: Vec<ChangeHash>,
}

/// Open documents of one community.
pub struct Workspace {
    pub(super) membership: Membership,
    pub(super) writer: Option<Writer>,
    pub(super) now: i64,
    pub(super) docs: BTreeMap<DocId, OpenDoc>,
    pub(super) loader: Box<dyn DocLoader>,
    /// Draft digests the loader gave, for drafts not loaded.
    digests: BTreeMap<ObjectId, DraftDigest>,
    /// Documents the loader said exist (a document never goes away).
    present: BTreeSet<DocId>,
    /// The index of responses, read at these heads of the community
    /// document (`super::response`): many operations look a response up.
    pub(super) index_memo: Option<(Vec<ChangeHash>, Vec<IndexEntry>)>,
}

impl Workspace {
    /// A workspace over `loader` for `membership`, at time `now`.
    pub fn new(membership: Membership, loader: Box<dyn DocLoader>, now: i64) -> Self {
        Workspace {
            membership,
            writer: None,
            now,
            docs: BTreeMap::new(),
            loader,
            digests: BTreeMap::new(),
            present: BTreeSet::new(),
            index_memo: None,
        }
    }

    /// Act as `writer` (without one the workspace is read-only).
    pub fn with_writer(mut self, writer: Writer) -> Self {
        self.writer = Some(writer);
        self
    }

    /// The roster.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The time operations are stamped with.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The acting member, who must have write rights.
    pub(crate) fn writer(&self) -> Result<&Member> {
        let writer = self
            .writer
            .as_ref()
            .ok_or_else(|| ModelError::NotAllowed("this workspace is read-only".into()))?;
        let member = self.membership.member(&writer.member).ok_or_else(|| {
            ModelError::NotAllowed(format!("{} is not a member", writer.member.short()))
        })?;
        if member.removed || !member.role.can_write() {
            return Err(ModelError::NotAllowed(format!(
                "{} ({}) may not write here",
                member.name,
                member.role.as_str()
            )));
        }
        Ok(member)
    }

    /// The acting member, who must be a facilitator.
    pub(crate) fn facilitator(&self, action: &str) -> Result<&Member> {
        let member = self.writer()?;
        if !member.role.can_facilitate() {
            return Err(ModelError::NotAllowed(format!(
                "only facilitators may {action}; {} is a {}",
                member.name,
                member.role.as_str()
            )));
        }
        Ok(member)
    }

    /// Whether a document is here (loaded, or on disk), without loading it.
    pub fn has_doc(&mut self, id: &DocId) -> Result<bool> {
        if self.docs.contains_key(id) || self.present.contains(id) {
            return Ok(true);
        }
        let exists = self.loader.exists(id)?;
        if exists {
            self.present.insert(id.clone());
        }
        Ok(exists)
    }

    /// Make sure a document is loaded; false if it does not exist.
    pub fn load(&mut self, id: &DocId) -> Result<bool> {
        if self.docs.contains_key(id) {
            return Ok(true);
        }
        let Some(mut doc) = self.loader.load(id)? else {
            return Ok(false);
        };
        if let Some(w) = &self.writer {
            doc.set_actor(w.actor.clone());
        }
        let persisted_heads = doc.get_heads();
        self.docs.insert(
            id.clone(),
            OpenDoc {
                doc,
                persisted_heads,
            },
        );
        Ok(true)
    }

    /// A loaded document (call [`Workspace::load`] first).
    pub fn get(&self, id: &DocId) -> Option<&AutoCommit> {
        self.docs.get(id).map(|d| &d.doc)
    }

    /// Load a document for reading; an error if it does not exist.
    pub fn read(&mut self, id: &DocId) -> Result<&AutoCommit> {
        if !self.load(id)? {
            return Err(ModelError::Invalid(format!(
                "document {} is missing",
                id.name()
            )));
        }
        self.get(id)
            .ok_or_else(|| ModelError::Invalid(format!("document {} is missing", id.name())))
    }

    /// Load a document for writing; an error if it does not exist.
    pub fn write(&mut self, id: &DocId) -> Result<&mut AutoCommit> {
        self.writer()?;
        if !self.load(id)? {
            return Err(ModelError::Invalid(format!(
                "document {} is missing",
                id.name()
            )));
        }
        self.docs
            .get_mut(id)
            .map(|d| &mut d.doc)
            .ok_or_else(|| ModelError::Invalid(format!("document {} is missing", id.name())))
    }

    /// Create a new, empty document for writing.
    pub fn create(&mut self, id: &DocId) -> Result<&mut AutoCommit> {
        let actor = self
            .writer
            .as_ref()
            .map(|w| w.actor.clone())
            .ok_or_else(|| ModelError::NotAllowed("this workspace is read-only".into()))?;
        if self.load(id)? {
            return Err(ModelError::Invalid(format!(
                "document {} exists",
                id.name()
            )));
        }
        let open = self.docs.entry(id.clone()).or_insert(OpenDoc {
            doc: AutoCommit::new().with_actor(actor),
            persisted_heads: Vec::new(),
        });
        Ok(&mut open.doc)
    }

    /// The documents changed since load (or since the last
    /// [`Self::take_new_changes`]): those the next persist writes to.
    pub fn changed_docs(&mut self) -> Vec<DocId> {
        self.docs
            .iter_mut()
            .filter_map(|(id, open)| {
                (open.doc.get_heads() != open.persisted_heads).then(|| id.clone())
            })
            .collect()
    }

    /// The changes made since load (or the last call), per document, oldest
    /// first. The caller signs and persists them.
    pub fn take_new_changes(&mut self) -> Vec<(DocId, Vec<Change>)> {
        let mut out = Vec::new();
        for (id, open) in &mut self.docs {
            let heads = open.doc.get_heads();
            if heads == open.persisted_heads {
                continue;
            }
            let changes = open.doc.get_changes(&open.persisted_heads);
            open.persisted_heads = heads;
            if !changes.is_empty() {
                out.push((id.clone(), changes));
            }
        }
        out
    }

    /// Document `id` as this workspace holds it, read in full and with its
    /// own changes, if it read or wrote it.
    pub fn held_doc(&mut self, id: &DocId) -> Option<&mut AutoCommit> {
        self.docs.get_mut(id).map(|open| &mut open.doc)
    }

    /// A draft's digest when the draft is not loaded here and the loader
    /// holds a current one (`super::digest`); `None` means: read the
    /// document.
    pub(super) fn digest(&mut self, draft: &ObjectId) -> Option<&DraftDigest> {
        if self.docs.contains_key(&DocId::Draft(draft.clone())) {
            return None;
        }
        if !self.digests.contains_key(draft) {
            let digest = self.loader.draft_digest(draft)?;
            self.digests.insert(draft.clone(), digest);
        }
        self.digests.get(draft)
    }

    /// Heads of a document, hex, sorted (empty if it does not exist).
    pub fn heads_hex(&mut self, id: &DocId) -> Result<Vec<String>> {
        if !self.load(id)? {
            return Ok(Vec::new());
        }
        Ok(self
            .docs
            .get_mut(id)
            .map(|open| heads_hex(&mut open.doc))
            .unwrap_or_default())
    }

    /// Every change of a document with its author, oldest first, up to
    /// the document's heads: a document read as of earlier heads
    /// (`super::inbox::AtMarks`) also holds the changes after them.
    pub fn history_of(&mut self, id: &DocId) -> Result<Vec<(ChangeHash, MemberId)>> {
        if !self.load(id)? {
            return Ok(Vec::new());
        }
        let Some(open) = self.docs.get_mut(id) else {
            return Ok(Vec::new());
        };
        let heads = open.doc.get_heads();
        let changes = open.doc.get_changes_meta(&[]);
        let graph: BTreeMap<[u8; 32], Vec<[u8; 32]>> = changes
            .iter()
            .map(|c| (c.hash.0, c.deps.iter().map(|d| d.0).collect()))
            .collect();
        let upto = crate::trust::removal::reachable(&graph, heads.iter().map(|h| &h.0));
        let membership = &self.membership;
        Ok(changes
            .iter()
            .filter(|c| upto.contains(&c.hash.0))
            .filter_map(|c| {
                let device = crate::trust::signed_change::device_of_actor(c.actor.to_bytes())?;
                Some((c.hash, membership.owner_of(&device)?.id))
            })
            .collect())
    }

    /// Whether the acting member has the given role or higher.
    pub fn writer_role(&self) -> Option<Role> {
        let w = self.writer.as_ref()?;
        self.membership.member(&w.member).map(|m| m.role)
    }
}

/// The heads of a document as sorted hex strings (a draft's "version").
pub fn heads_hex(doc: &mut AutoCommit) -> Vec<String> {
    let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    heads.sort();
    heads
}
