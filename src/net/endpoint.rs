//! The device's iroh endpoint: key = device key, relays and address lookup
//! off unless asked for, no port mapping, and a gate that refuses any peer
//! that is not a current device of the community before a single community
//! byte is sent (the join protocol aside: its handler checks the claim).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use iroh::endpoint::{AfterHandshakeOutcome, Connection, EndpointHooks, PortmapperConfig, presets};
use iroh::{Endpoint, RelayMode, RelayUrl};

use crate::trust::{Membership, SecretKey};

/// ALPN of the sync protocol (members only).
pub const SYNC_ALPN: &[u8] = b"convene/sync/1";
/// ALPN of the join protocol (holders of an invite).
pub const JOIN_ALPN: &[u8] = b"convene/join/1";

/// Which relay, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayChoice {
    /// No relay: direct connections only (the default).
    Off,
    /// iroh's public relays.
    Default,
    /// A community's own iroh-relay.
    Url(String),
}

impl RelayChoice {
    /// Parse `off`, `default` or a URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "off" => Ok(RelayChoice::Off),
            "default" => Ok(RelayChoice::Default),
            url if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(RelayChoice::Url(url.to_string()))
            }
            other => Err(format!("'{other}' is not off, default or an http(s) URL")),
        }
    }
}

/// The set of devices allowed on the sync protocol; shared with the
/// endpoint's hook and updated when certificates change.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    allowed: Arc<Mutex<BTreeSet<[u8; 32]>>>,
    /// When set, the certificates are re-read from this community folder at
    /// every handshake, so a removal made by another command counts at once.
    source: Option<(std::path::PathBuf, crate::trust::CommunityId)>,
}

impl Gate {
    /// A gate that admits the current devices of `membership`.
    pub fn for_membership(membership: &Membership) -> Self {
        let gate = Gate::default();
        gate.update(membership);
        gate
    }

    /// A gate that re-reads the community's certificates at every handshake.
    pub fn for_store(store: &crate::store::CommunityStore) -> Self {
        let mut gate = Gate::for_membership(store.membership());
        gate.source = Some((store.dir().to_path_buf(), store.id()));
        gate
    }

    /// Replace the allowed set with the current (not removed) devices.
    pub fn update(&self, membership: &Membership) {
        let devices: BTreeSet<[u8; 32]> = membership
            .members()
            .filter(|m| !m.removed)
            .flat_map(|m| m.devices.iter().map(|d| d.0))
            .collect();
        if let Ok(mut allowed) = self.allowed.lock() {
            *allowed = devices;
        }
    }

    /// Is this device allowed to sync?
    pub fn allows(&self, device: &[u8; 32]) -> bool {
        self.allowed
            .lock()
            .map(|a| a.contains(device))
            .unwrap_or(false)
    }
}

impl EndpointHooks for Gate {
    async fn after_handshake<'a>(&'a self, conn: &'a Connection) -> AfterHandshakeOutcome {
        if let Some((dir, id)) = &self.source
            && let Ok(store) = crate::store::CommunityStore::open(dir, *id)
        {
            self.update(store.membership());
        }
        let alpn = conn.alpn();
        if alpn == JOIN_ALPN || (alpn == SYNC_ALPN && self.allows(conn.remote_id().as_bytes())) {
            AfterHandshakeOutcome::Accept
        } else {
            AfterHandshakeOutcome::Reject {
                error_code: 403u32.into(),
                reason: b"not a current device of this community".to_vec(),
            }
        }
    }
}

/// Bind the device's endpoint on `bind`.
pub async fn bind(
    device: &SecretKey,
    bind: SocketAddr,
    relay: &RelayChoice,
    gate: Gate,
) -> anyhow::Result<Endpoint> {
    let relay_mode = match relay {
        RelayChoice::Off => RelayMode::Disabled,
        RelayChoice::Default => RelayMode::Default,
        RelayChoice::Url(url) => RelayMode::custom([url.parse::<RelayUrl>()?]),
    };
    let endpoint = Endpoint::builder(presets::Minimal)
        .relay_mode(relay_mode)
        .secret_key(iroh::SecretKey::from_bytes(&device.to_bytes()))
        .alpns(vec![SYNC_ALPN.to_vec(), JOIN_ALPN.to_vec()])
        .clear_ip_transports()
        .bind_addr(bind)?
        .portmapper_config(PortmapperConfig::Disabled)
        .hooks(gate)
        .bind()
        .await?;
    Ok(endpoint)
}
