//! Known peers of a community: device ids and the addresses they were last
//! reachable at, in `communities/<id>/peers.json`, so `sync` with no
//! argument reaches every peer this device has met.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fsutil::{read_if_exists, write_atomic};
use super::{Result, StoreError};
use crate::trust::DeviceId;

/// One known peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownPeer {
    /// Its device (and iroh endpoint) id.
    pub device: DeviceId,
    /// Direct addresses.
    pub addrs: Vec<SocketAddr>,
    /// Unix seconds of the last successful session, if any.
    pub last_synced: Option<i64>,
}

/// Read the known peers of a community folder.
pub fn load(dir: &Path) -> Result<Vec<KnownPeer>> {
    let path = dir.join("peers.json");
    match read_if_exists(&path)? {
        None => Ok(Vec::new()),
        Some(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| StoreError::corrupt(&path, e.to_string()))
        }
    }
}

/// Remember a peer (merging addresses), atomically.
pub fn remember(dir: &Path, peer: KnownPeer) -> Result<()> {
    let mut by_device: BTreeMap<DeviceId, KnownPeer> =
        load(dir)?.into_iter().map(|p| (p.device, p)).collect();
    let entry = by_device.entry(peer.device).or_insert_with(|| KnownPeer {
        device: peer.device,
        addrs: Vec::new(),
        last_synced: None,
    });
    if !peer.addrs.is_empty() {
        entry.addrs = peer.addrs;
    }
    if peer.last_synced.is_some() {
        entry.last_synced = peer.last_synced;
    }
    let all: Vec<KnownPeer> = by_device.into_values().collect();
    let bytes = serde_json::to_vec_pretty(&all).unwrap_or_default();
    write_atomic(&dir.join("peers.json"), &bytes)
}
