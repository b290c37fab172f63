//! A join waiting for its first bundle: when the inviter cannot be reached,
//! `join` keeps the claim and device certificates in
//! `pending/<community id>.json`; importing a bundle of that community
//! creates the local copy from the bundle's certificates plus these.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsutil::{private_dir, read_if_exists, write_atomic};
use super::{Result, StoreError};
use crate::trust::{CommunityId, DeviceId};

/// The state of an offline join.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingJoin {
    /// The community being joined.
    pub community: CommunityId,
    /// The Claim certificate bytes.
    pub claim: Vec<u8>,
    /// The Device certificate bytes.
    pub device: Vec<u8>,
    /// The inviting device, to sync with later.
    pub inviter: DeviceId,
    /// Its addresses.
    pub addrs: Vec<SocketAddr>,
}

fn path(home: &Path, community: &CommunityId) -> PathBuf {
    home.join("pending")
        .join(format!("{}.json", community.to_hex()))
}

/// Keep a pending join.
pub fn save(home: &Path, pending: &PendingJoin) -> Result<()> {
    private_dir(&home.join("pending"))?;
    let bytes = serde_json::to_vec_pretty(pending).unwrap_or_default();
    write_atomic(&path(home, &pending.community), &bytes)
}

/// The pending join of a community, if any.
pub fn load(home: &Path, community: &CommunityId) -> Result<Option<PendingJoin>> {
    let p = path(home, community);
    match read_if_exists(&p)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::corrupt(&p, e.to_string())),
    }
}

/// Forget a pending join once it completed.
pub fn remove(home: &Path, community: &CommunityId) -> Result<()> {
    let p = path(home, community);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(&p, e)),
    }
}
