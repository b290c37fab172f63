//! The store: identity files and, per community, the certificate log and the
//! signed change logs and snapshots of its documents, under one home folder.
//!
//! It is thin on purpose: it frames bytes, fsyncs, locks and recovers, and
//! hands every byte it reads to `trust` for verification before anything
//! reaches a document. The layout and record format are in `docs/storage.md`.

#[cfg(test)]
mod arrival_tests;
pub mod attestation;
pub mod bundle;
#[cfg(test)]
mod certs_tests;
pub mod community;
#[cfg(test)]
mod corruption;
#[cfg(test)]
mod delta_tests;
pub mod digest;
pub mod doclog;
pub mod endpoint;
pub mod frame;
pub mod fsutil;
pub mod history;
#[cfg(test)]
mod history_tests;
pub mod home;
pub mod identity;
pub mod peers;
pub mod pending;
pub mod read_marks;
pub mod replica;
#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod test_certs;
pub mod thread_hints;

pub use community::CommunityStore;
pub use home::Home;
pub use identity::Identity;

use std::path::{Path, PathBuf};

use crate::trust::TrustError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is damaged (exit 4).
    #[error("{path} is corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        detail: String,
    },
    /// Signed bytes on disk were refused (exit 4).
    #[error("{path}: {source}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        source: TrustError,
    },
    /// Something expected is not there.
    #[error("{0}")]
    Missing(String),
    /// Something to be created already exists.
    #[error("{0}")]
    Exists(String),
}

impl StoreError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A corruption error on `path`.
    pub fn corrupt(path: &Path, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    /// Is this an integrity or security rejection (exit code 4)?
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. } | StoreError::Refused { .. }
        )
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
