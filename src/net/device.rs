//! Linking a second device of the same member, without ever moving the
//! member key: the first device prints a link ticket (a one-time link key,
//! the member's id and name, its address); the new device makes its own
//! device key, signs its Device certificate with it, and proves it holds the
//! ticket with the link key; the first device checks that and adds the
//! member's signature. Then a normal sync follows, as for a join.

use std::path::Path;
use std::time::Duration;

use iroh::Endpoint;
use serde::{Deserialize, Serialize};

use super::join::{Joined, present};
use super::ticket::PeerTicket;
use crate::store::fsutil::{read_if_exists, write_atomic};
use crate::store::{CommunityStore, Identity};
use crate::sync::Frame;
use crate::trust::cert::CertSignature;
use crate::trust::keys::{self, signature_from_hex};
use crate::trust::{
    CERT_DOMAIN, CertBody, Certificate, CommunityId, DeviceId, MemberId, SecretKey,
};

/// Prefix of a link ticket.
pub const LINK_PREFIX: &str = "cvlink";

/// What `device link` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTicket {
    /// The community.
    pub community: [u8; 32],
    /// Secret half of the one-time link key.
    pub link_secret: [u8; 32],
    /// The member the new device will belong to.
    pub member: [u8; 32],
    /// Their name.
    pub name: String,
    /// The linking (first) device.
    pub device: PeerTicket,
}

impl LinkTicket {
    /// The text form.
    pub fn encode(&self) -> String {
        let bytes = postcard::to_stdvec(self).unwrap_or_default();
        format!(
            "{LINK_PREFIX}{}",
            data_encoding::BASE32_NOPAD
                .encode(&bytes)
                .to_ascii_lowercase()
        )
    }

    /// Parse the text form.
    pub fn decode(text: &str) -> Result<Self, String> {
        let body = text
            .trim()
            .strip_prefix(LINK_PREFIX)
            .ok_or_else(|| format!("not a link ticket (it should start with '{LINK_PREFIX}')"))?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|e| format!("the ticket is damaged: {e}"))?;
        postcard::from_bytes(&bytes).map_err(|e| format!("the ticket is damaged: {e}"))
    }
}

/// One pending link, kept only on the first device (`links.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PendingLink {
    key: DeviceId,
    expires_at: i64,
    used: bool,
}

fn links_path(store: &CommunityStore) -> std::path::PathBuf {
    store.dir().join("links.json")
}

fn load_links(path: &Path) -> Vec<PendingLink> {
    read_if_exists(path)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Make a one-time link key on the first device and its ticket.
pub fn make_link(
    store: &CommunityStore,
    identity: &Identity,
    expires_at: i64,
    device: PeerTicket,
) -> anyhow::Result<LinkTicket> {
    identity.member_key()?;
    let key = SecretKey::generate();
    let path = links_path(store);
    let mut links = load_links(&path);
    links.push(PendingLink {
        key: DeviceId(key.public()),
        expires_at,
        used: false,
    });
    write_atomic(&path, &serde_json::to_vec_pretty(&links)?)?;
    Ok(LinkTicket {
        community: store.id().0,
        link_secret: key.to_bytes(),
        member: identity.member_id().0,
        name: identity.name.clone(),
        device,
    })
}

/// On the first device: check a link request and return the completed
/// Device certificate (now signed by the member key too).
pub fn check_link(
    store: &CommunityStore,
    identity: &Identity,
    remote: DeviceId,
    device: &[u8],
    link_key: [u8; 32],
    link_signature: &[u8],
    now: i64,
) -> Result<Certificate, String> {
    let member_key = identity.member_key().map_err(|e| e.to_string())?;
    let path = links_path(store);
    let mut links = load_links(&path);
    let link = links
        .iter_mut()
        .find(|l| l.key.0 == link_key)
        .ok_or("this link ticket is unknown here")?;
    if link.used {
        return Err("this link ticket was already used".into());
    }
    if now > link.expires_at {
        return Err(format!(
            "this link ticket expired on {}",
            crate::clock::rfc3339(link.expires_at)
        ));
    }
    let mut cert = Certificate::from_bytes(device).map_err(|e| e.to_string())?;
    let body: CertBody = serde_json::from_str(&cert.body).map_err(|e| e.to_string())?;
    let CertBody::Device {
        member,
        device: dev,
        ..
    } = body
    else {
        return Err("not a device certificate".into());
    };
    if member != identity.member_id() || dev != remote {
        return Err("the certificate is not for this member and the connecting device".into());
    }
    let id = store.id();
    let device_sig = cert
        .signatures
        .iter()
        .find(|s| s.signer == dev.to_hex())
        .and_then(|s| signature_from_hex(&s.signature))
        .ok_or("the device did not sign its certificate")?;
    keys::verify(
        &dev.0,
        CERT_DOMAIN,
        &id,
        cert.body.as_bytes(),
        &device_sig,
        "device certificate",
    )
    .map_err(|e| e.to_string())?;
    let link_sig: [u8; 64] = link_signature
        .try_into()
        .map_err(|_| "the link signature is not 64 bytes")?;
    keys::verify(
        &link_key,
        CERT_DOMAIN,
        &id,
        cert.body.as_bytes(),
        &link_sig,
        "link proof",
    )
    .map_err(|e| e.to_string())?;
    cert.signatures.push(CertSignature {
        signer: identity.member_id().to_hex(),
        signature: hex::encode(member_key.sign(CERT_DOMAIN, &id, cert.body.as_bytes())),
    });
    cert.verify(&id).map_err(|e| e.to_string())?;
    link.used = true;
    let bytes = serde_json::to_vec_pretty(&links).map_err(|e| e.to_string())?;
    write_atomic(&path, &bytes).map_err(|e| e.to_string())?;
    Ok(cert)
}

/// On the new device: present the link, build the local copy, sync.
pub async fn add_device(
    endpoint: &Endpoint,
    ticket: &LinkTicket,
    identity: &Identity,
    communities_dir: &Path,
    now: i64,
    idle: Duration,
) -> anyhow::Result<Joined> {
    let community = CommunityId(ticket.community);
    let link_key = SecretKey::from_bytes(ticket.link_secret);
    let partial = Certificate::issue(
        &community,
        &CertBody::Device {
            member: MemberId(ticket.member),
            device: identity.device_id(),
            label: "linked device".into(),
            at: now,
        },
        &[&identity.device],
    );
    let link_signature = link_key
        .sign(CERT_DOMAIN, &community, partial.body.as_bytes())
        .to_vec();
    let request = Frame::LinkRequest {
        device: partial.to_bytes(),
        link_key: link_key.public(),
        link_signature,
    };
    let joined = present(
        endpoint,
        &ticket.device,
        request,
        community,
        communities_dir,
        &identity.device,
        now,
        idle,
    )
    .await?;
    if joined
        .store
        .membership()
        .owner_of(&identity.device_id())
        .map(|m| m.id)
        != Some(MemberId(ticket.member))
    {
        anyhow::bail!("the first device's certificates do not link this device");
    }
    Ok(joined)
}
