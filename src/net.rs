//! Networking: one iroh endpoint per device, two protocols (`convene/sync/1`
//! for members, `convene/join/1` for holders of an invite), tickets, and the
//! drivers that move sync frames over QUIC streams.
//!
//! Everything that decides anything lives in `sync` and `trust`; this module
//! only binds, dials, accepts, frames bytes and enforces time limits.

pub mod access;
pub mod device;
pub mod endpoint;
pub mod join;
pub mod lan;
pub mod link;
pub mod schedule;
pub mod ticket;
pub mod wire;

pub use access::{Exclusive, Shared, StoreAccess};
pub use endpoint::{Gate, JOIN_ALPN, RelayChoice, SYNC_ALPN};
pub use link::{PeerReport, accept_sync, sync_with};
pub use ticket::{InviteTicket, PeerTicket};

use std::time::Duration;

/// How long a connection attempt may take (an unreachable address otherwise
/// takes 30 s to fail).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
