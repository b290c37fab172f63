//! Where `serve` last listened, in `endpoint.json` at the home's root, so
//! that `invite` and `device add` can print a ticket while `serve` runs in
//! another process. A hint only: a ticket carries the device id, which the
//! connection authenticates, so a wrong address can only fail to connect.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::Home;
use super::fsutil::write_atomic;
use crate::trust::DeviceId;

/// This device and the addresses it listens on.
#[derive(Debug, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// This device.
    pub device: DeviceId,
    /// Its direct addresses.
    pub addrs: Vec<SocketAddr>,
}

/// Record where this device listens.
pub fn save(home: &Home, info: &EndpointInfo) -> super::Result<()> {
    let bytes = serde_json::to_vec_pretty(info).unwrap_or_default();
    write_atomic(&home.root().join("endpoint.json"), &bytes)
}

/// Where `device` last listened, if this home recorded it and the record
/// reads (a damaged one reads as none).
pub fn load(home: &Home, device: DeviceId) -> Option<Vec<SocketAddr>> {
    let bytes = std::fs::read(home.root().join("endpoint.json")).ok()?;
    let info: EndpointInfo = serde_json::from_slice(&bytes).ok()?;
    (info.device == device).then_some(info.addrs)
}
