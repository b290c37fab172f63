//! The join protocol (`convene/join/1`): a new member presents a claim
//! signed with the one-time invite key from their ticket, the inviter checks
//! it (invite exists, made by a facilitator, not expired, not used by someone
//! else), records it, sends every certificate, and a normal sync session
//! follows on the same stream.

use std::sync::Arc;
use std::time::Duration;

use iroh::Endpoint;
use iroh::endpoint::Connection;

use super::access::{Exclusive, StoreAccess};
use super::link::drive;
use super::wire::{read_frame, write_frame};
use super::{CONNECT_TIMEOUT, InviteTicket, JOIN_ALPN, PeerTicket};
use crate::model::shared_loads::LoadedDocs;
use crate::store::{CommunityStore, Identity};
use crate::sync::{Frame, Session, Stats, SyncError};
use crate::trust::{CertBody, Certificate, CommunityId, DeviceId, MemberId, SecretKey};

/// The inviter could not be reached (the join can complete offline, with a
/// bundle).
#[derive(Debug, thiserror::Error)]
#[error("the inviter is unreachable: {0}")]
pub struct Unreachable(pub String);

/// What the joining side ends up with.
pub struct Joined {
    /// The new local copy.
    pub store: CommunityStore,
    /// What the first session moved.
    pub stats: Stats,
    /// Copies of the documents the first session holds (after a full first
    /// sync, all of them), so that what the command reads next is not read
    /// from disk again (`model::shared_loads`).
    pub loaded: LoadedDocs,
}

/// The claim and device certificates a joining device presents.
pub fn claim_certificates(
    ticket: &InviteTicket,
    identity: &Identity,
    now: i64,
) -> Result<(Certificate, Certificate), crate::store::StoreError> {
    let community = CommunityId(ticket.community);
    let invite_key = SecretKey::from_bytes(ticket.invite_secret);
    let claim = Certificate::issue(
        &community,
        &CertBody::Claim {
            invite_key: DeviceId(invite_key.public()),
            member: identity.member_id(),
            name: identity.name.clone(),
            at: now,
        },
        &[&invite_key, identity.member_key()?],
    );
    let device = Certificate::issue(
        &community,
        &CertBody::Device {
            member: identity.member_id(),
            device: identity.device_id(),
            label: "joined device".into(),
            at: now,
        },
        &[identity.member_key()?, &identity.device],
    );
    Ok((claim, device))
}

/// Join: dial the inviter, present the claim, create the local copy from the
/// certificates it sends, and run the first sync.
pub async fn join(
    endpoint: &Endpoint,
    ticket: &InviteTicket,
    identity: &Identity,
    communities_dir: &std::path::Path,
    now: i64,
    idle: Duration,
) -> anyhow::Result<Joined> {
    let (claim, device) = claim_certificates(ticket, identity, now)?;
    let request = Frame::JoinRequest {
        claim: claim.to_bytes(),
        device: device.to_bytes(),
    };
    let joined = present(
        endpoint,
        &ticket.inviter,
        request,
        CommunityId(ticket.community),
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
        .is_none()
    {
        anyhow::bail!("the inviter's certificates do not admit this device");
    }
    Ok(joined)
}

/// The joining side of `convene/join/1`, for a claim or a device link: dial,
/// send `request`, build the local copy from the certificates that come
/// back, and run the first sync on the same stream. `device` is this
/// device's key, which attests the snapshots the sync writes.
#[allow(clippy::too_many_arguments)]
pub async fn present(
    endpoint: &Endpoint,
    to: &PeerTicket,
    request: Frame,
    community: CommunityId,
    communities_dir: &std::path::Path,
    device: &Arc<SecretKey>,
    now: i64,
    idle: Duration,
) -> anyhow::Result<Joined> {
    let addr = to.endpoint_addr().map_err(|e| anyhow::anyhow!(e))?;
    let wait = CONNECT_TIMEOUT.min(idle);
    let conn = match tokio::time::timeout(wait, endpoint.connect(addr, JOIN_ALPN)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(Unreachable(e.to_string()).into()),
        Err(_) => return Err(Unreachable(format!("no answer within {} s", wait.as_secs())).into()),
    };
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &request).await?;
    let (reply, _) = tokio::time::timeout(idle, read_frame(&mut recv))
        .await
        .map_err(|_| anyhow::anyhow!("the other device did not reply"))??;
    let certificates = match reply {
        Frame::JoinAccepted { certificates } => certificates,
        Frame::Refuse { reason } => return Err(SyncError::RefusedByPeer(reason).into()),
        other => anyhow::bail!("unexpected reply to a join request: {other:?}"),
    };
    let mut certs = Vec::with_capacity(certificates.len());
    for bytes in &certificates {
        certs.push(Certificate::from_bytes(bytes)?);
    }
    let store = CommunityStore::create_joined(communities_dir, community, &certs)?
        .with_device(device.clone());
    let access = Exclusive::new(store, now);
    let mut session = Session::new(DeviceId(to.device));
    let first = access.with(|replica| session.start(replica))?;
    let (result, _, _) = drive(&mut session, &access, send, &mut recv, idle, first).await;
    if result? {
        let _ = tokio::time::timeout(Duration::from_secs(3), conn.closed()).await;
    }
    conn.close(0u32.into(), b"done");
    let stats = session.stats().clone();
    let loaded = access.with(|replica| {
        replica.fold_appended();
        replica.take_loaded(&replica.loaded_docs())
    })?;
    let dir = access.into_store().dir().to_path_buf();
    let store = CommunityStore::open(&dir, community)?.with_device(device.clone());
    Ok(Joined {
        store,
        stats,
        loaded,
    })
}

/// Check a join request against the invite it claims. Returns the
/// certificates to record.
pub fn check_request(
    store: &CommunityStore,
    remote: DeviceId,
    claim: &[u8],
    device: &[u8],
    now: i64,
) -> Result<[Certificate; 2], String> {
    let id = store.id();
    let claim_cert = Certificate::from_bytes(claim).map_err(|e| e.to_string())?;
    let device_cert = Certificate::from_bytes(device).map_err(|e| e.to_string())?;
    let claim_v = claim_cert.verify(&id).map_err(|e| e.to_string())?;
    let device_v = device_cert.verify(&id).map_err(|e| e.to_string())?;
    let CertBody::Claim {
        invite_key,
        member,
        at: claimed_at,
        ..
    } = claim_v.body().clone()
    else {
        return Err("the first certificate is not a claim".into());
    };
    let CertBody::Device {
        member: owner,
        device: dev,
        ..
    } = device_v.body().clone()
    else {
        return Err("the second certificate is not a device certificate".into());
    };
    if owner != member || dev != remote {
        return Err(
            "the device certificate is not for the connecting device of the claiming member".into(),
        );
    }
    let mut invite = None;
    let mut claimed_by: Option<MemberId> = None;
    for cert in store.certificate_bytes() {
        let Ok(c) = Certificate::from_bytes(&cert) else {
            continue;
        };
        let Ok(body) = serde_json::from_str::<CertBody>(&c.body) else {
            continue;
        };
        match body {
            CertBody::Invite {
                invite_key: k,
                expires_at,
                by,
                ..
            } if k == invite_key => invite = Some((expires_at, by)),
            CertBody::Claim {
                invite_key: k,
                member: m,
                ..
            } if k == invite_key => claimed_by = Some(m),
            _ => {}
        }
    }
    let Some((expires_at, by)) = invite else {
        return Err("this invite is unknown here".into());
    };
    if !store
        .membership()
        .member(&by)
        .is_some_and(|m| m.role.can_facilitate() && !m.removed)
    {
        return Err("this invite was not made by a current facilitator".into());
    }
    if now > expires_at || claimed_at > expires_at {
        return Err(format!(
            "this invite expired on {}",
            crate::clock::rfc3339(expires_at)
        ));
    }
    if claimed_by.is_some_and(|m| m != member) {
        return Err("this invite was already used".into());
    }
    Ok([claim_cert, device_cert])
}

/// The first part of a join, read before any lock is taken: a stalled or
/// hostile joiner holds nothing but its own connection.
pub struct JoinStart {
    conn: Connection,
    send: iroh::endpoint::SendStream,
    recv: iroh::endpoint::RecvStream,
    request: Frame,
}

/// Read the join or link request of an incoming join connection.
pub async fn read_join_request(conn: Connection, idle: Duration) -> Result<JoinStart, String> {
    let (send, mut recv) = tokio::time::timeout(idle, conn.accept_bi())
        .await
        .map_err(|_| "the joiner opened no stream".to_string())?
        .map_err(|e| e.to_string())?;
    let (request, _) = tokio::time::timeout(idle, read_frame(&mut recv))
        .await
        .map_err(|_| "the joiner sent nothing".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(JoinStart {
        conn,
        send,
        recv,
        request,
    })
}

/// Tell the joiner why it is refused, and let it read that before closing.
async fn refuse(
    conn: &Connection,
    send: &mut iroh::endpoint::SendStream,
    reason: String,
) -> String {
    let _ = write_frame(
        send,
        &Frame::Refuse {
            reason: reason.clone(),
        },
    )
    .await;
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(3), conn.closed()).await;
    reason
}

/// Serve one join on the inviter's side, once its request is read.
pub async fn accept_join(
    start: JoinStart,
    access: &impl StoreAccess,
    identity: &Identity,
    now: i64,
    idle: Duration,
) -> Result<(MemberId, Stats), String> {
    let JoinStart {
        conn,
        mut send,
        mut recv,
        request,
    } = start;
    let remote = DeviceId(*conn.remote_id().as_bytes());
    let checked = access
        .with(|replica| match request {
            Frame::JoinRequest { claim, device } => {
                check_request(replica.store(), remote, &claim, &device, now).map(|c| c.to_vec())
            }
            Frame::LinkRequest {
                device,
                link_key,
                link_signature,
            } => super::device::check_link(
                replica.store(),
                identity,
                remote,
                &device,
                link_key,
                &link_signature,
                now,
            )
            .map(|c| vec![c]),
            _ => Err("expected a join or link request".into()),
        })
        .map_err(|e| e.to_string())
        .and_then(|checked| checked);
    let certs = match checked {
        Ok(c) => c,
        Err(reason) => {
            return Err(refuse(&conn, &mut send, reason).await);
        }
    };
    let admitted = access
        .with(|replica| {
            let store = replica.store_mut();
            store
                .add_certificates(&certs)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    store
                        .membership()
                        .owner_of(&remote)
                        .filter(|m| !m.removed)
                        .map(|m| m.id)
                        .ok_or_else(|| "the claim did not admit the joiner".to_string())
                })
        })
        .map_err(|e| e.to_string())
        .and_then(|admitted| admitted);
    let member = match admitted {
        Ok(m) => m,
        Err(reason) => {
            return Err(refuse(&conn, &mut send, reason).await);
        }
    };
    let certificates = access
        .with(|replica| replica.store().certificate_bytes())
        .map_err(|e| e.to_string())?;
    write_frame(&mut send, &Frame::JoinAccepted { certificates })
        .await
        .map_err(|e| e.to_string())?;
    let mut session = Session::new(remote);
    let first = access
        .with(|replica| session.start(replica))
        .map_err(|e| e.to_string())?;
    let (result, _, _) = drive(&mut session, access, send, &mut recv, idle, first).await;
    let wrote_last = result.map_err(|e| e.to_string())?;
    if wrote_last {
        let _ = tokio::time::timeout(Duration::from_secs(3), conn.closed()).await;
    }
    conn.close(0u32.into(), b"done");
    Ok((member, session.stats().clone()))
}
