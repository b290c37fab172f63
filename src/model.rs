//! The joint-response model: the Automerge documents of a community, the
//! typed operations that change them, and the views people and scripts read.
//!
//! A community is a small set of documents (see `docs/ARCHITECTURE.md`):
//! the community document (the index of responses), one discussion document
//! per response (threads, stances, amendments, outcome, endorsements) and one
//! draft document per draft (its co-edited text). A command opens only the
//! documents it touches, through a [`workspace::DocLoader`] that the store
//! provides. Nothing here does I/O.
//!
//! Authorship is never read from a document field: the author of an object is
//! the member owning the device whose actor created it, and a field written by
//! anyone but the object's author is ignored.

pub mod amendment;
pub mod digest;
pub mod doc;
pub mod draft;
pub mod export;
pub mod history;
pub mod inbox;
pub mod outcome;
pub mod proxy;
pub mod receipt;
pub mod response;
pub mod shared_loads;
pub mod stance;
pub mod table;
pub mod tally;
pub mod thread;
pub mod views;
pub mod workspace;

pub use doc::DocId;
pub use workspace::{DocLoader, LoadError, Workspace};

use crate::ids::PrefixError;

/// Why a model operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A reference did not name exactly one object.
    #[error(transparent)]
    Reference(#[from] PrefixError),
    /// The acting member may not do this.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The request itself is wrong (bad value, wrong state).
    #[error("{0}")]
    Invalid(String),
    /// A document could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Automerge refused an operation.
    #[error("document error: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

/// Shorthand for model results.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
