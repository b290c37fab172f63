//! Sync: the sans-IO session that merges two replicas of a community.
//!
//! A session exchanges a hello (protocol version, community id, certificate
//! ids), the certificates the other side lacks, the heads of every document,
//! and then Automerge sync messages per document, each carrying the
//! signatures of the changes inside it, until both sides are idle. Every
//! change is verified (signature, author's device, removal cutoff) before it
//! reaches a document. No sockets and no files here: `net` moves the frames
//! and `store` implements [`Replica`]. The wire format is in `docs/protocol.md`.

pub mod chunks;
pub mod delta;
pub mod frame;
#[cfg(test)]
pub mod harness;
pub mod memory;
pub mod replica;
pub mod session;
pub mod step;
pub mod verdicts;
pub mod whole;

pub use frame::Frame;
pub use replica::Replica;
pub use session::{Session, Stats};

/// The protocol version spoken in `Hello`. Version 2 adds `Whole` frames;
/// a session with a peer that speaks 1 goes change by change. Version 3
/// adds `Lacking` and `Delta` frames ([`delta`]); with a peer that speaks 2
/// every document that both sides hold goes by Automerge's protocol.
pub const PROTOCOL_VERSION: u32 = 3;
/// The oldest version still spoken.
pub const OLDEST_VERSION: u32 = 1;

/// Why a session ended badly.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The peer sent something that breaks the community's integrity rules
    /// (bad signature, unsigned change, malformed data, other community).
    #[error("refused: {0}")]
    Refused(String),
    /// The peer broke the protocol (wrong order, unknown frame, limits).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer refused us, with its reason.
    #[error("the peer refused: {0}")]
    RefusedByPeer(String),
    /// Our own store failed.
    #[error("local store: {0}")]
    Local(String),
}

impl SyncError {
    /// Is this an integrity or security rejection (exit code 4)?
    pub fn is_integrity(&self) -> bool {
        matches!(self, SyncError::Refused(_) | SyncError::RefusedByPeer(_))
    }
}

#[cfg(test)]
mod delta_tests;
#[cfg(test)]
mod ending_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod together_tests;
