//! `invite`, `join` and `remove`: who belongs to the community.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::output::{Ctx, usage};
use super::peer::{endpoint_info, runtime};
use crate::net::endpoint::bind;
use crate::net::join::join as join_over;
use crate::net::{Gate, InviteTicket, RelayChoice};
use crate::store::peers::{self, KnownPeer};
use crate::store::{CommunityStore, Identity};
use crate::trust::{CertBody, Certificate, CommunityId, DeviceId, MemberId, Role, SecretKey};

/// Parse `30m`, `12h`, `7d`, `2w` into seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 30m, 12h, 7d or 2w"))?;
    let unit_secs = match unit {
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "'{text}' is not a duration like 30m, 12h, 7d or 2w"
            ));
        }
    };
    if n <= 0 {
        return Err("the duration must be positive".into());
    }
    n.checked_mul(unit_secs)
        .ok_or_else(|| "the duration is too long".into())
}

#[derive(Serialize)]
struct Invited {
    ticket: String,
    role: Role,
    expires_at: String,
}

/// `convene invite [--role R] [--expires 7d] [--addr IP:PORT]`
pub fn invite(
    ctx: &Ctx,
    role: Role,
    expires: &str,
    addr: &[SocketAddr],
    qr: bool,
) -> anyhow::Result<()> {
    let lifetime = parse_duration(expires).map_err(usage)?;
    let identity = ctx.home.identity()?;
    identity.member_key()?;
    let inviter = endpoint_info(&ctx.home, identity.device_id(), addr)?;
    let mut lock = ctx.home.lock_file()?;
    let _guard = lock.write()?;
    let mut store = ctx.home.resolve(ctx.community.as_deref())?;
    let me = store
        .membership()
        .member(&identity.member_id())
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("you are not a member of this community"))?;
    if !me.role.can_facilitate() || me.removed {
        anyhow::bail!(
            "only facilitators may invite; you are a {}",
            me.role.as_str()
        );
    }
    let expires_at = ctx.now + lifetime;
    let ticket = make_invite(&mut store, &identity, role, expires_at, ctx.now, inviter)?.encode();
    let out = Invited {
        ticket: ticket.clone(),
        role,
        expires_at: crate::clock::rfc3339(expires_at),
    };
    let drawn = if qr && !ctx.json {
        super::qr::render(&ticket)?
    } else {
        String::new()
    };
    ctx.emit(&out, || format!("{drawn}{ticket}\n"))?;
    ctx.status(&format!(
        "Invite for one {} into '{}', valid until {}.",
        role.as_str(),
        store.membership().name,
        out.expires_at
    ));
    ctx.hint("give the ticket to the new member; keep `convene serve` running so that `convene join` can reach you");
    Ok(())
}

/// Record a one-time invitation (the Invite certificate) and return the
/// ticket that carries its secret. The caller checks the role.
pub fn make_invite(
    store: &mut CommunityStore,
    identity: &Identity,
    role: Role,
    expires_at: i64,
    now: i64,
    inviter: crate::net::PeerTicket,
) -> anyhow::Result<InviteTicket> {
    let invite_key = SecretKey::generate();
    let cert = Certificate::issue(
        &store.id(),
        &CertBody::Invite {
            invite_key: DeviceId(invite_key.public()),
            role,
            expires_at,
            by: identity.member_id(),
            at: now,
        },
        &[identity.member_key()?],
    );
    store.add_certificates(&[cert])?;
    Ok(InviteTicket {
        community: store.id().0,
        invite_secret: invite_key.to_bytes(),
        inviter,
    })
}

/// `convene join TICKET [--bind ADDR] [--timeout SECS]`
pub fn join(
    ctx: &Ctx,
    ticket: &str,
    bind_addr: SocketAddr,
    relay: &RelayChoice,
    timeout: u64,
) -> anyhow::Result<()> {
    let ticket = InviteTicket::decode(ticket).map_err(usage)?;
    let identity = ctx.home.identity()?;
    let mut lock = ctx.home.lock_file()?;
    let _guard = lock.write()?;
    let communities_dir = ctx.home.root().join("communities");
    if communities_dir
        .join(CommunityId(ticket.community).to_hex())
        .exists()
    {
        anyhow::bail!("this home already belongs to that community");
    }
    let idle = Duration::from_secs(timeout.max(1));
    let joined = runtime()?.block_on(async {
        let endpoint = bind(&identity.device, bind_addr, relay, Gate::default()).await?;
        let joined = join_over(
            &endpoint,
            &ticket,
            &identity,
            &communities_dir,
            ctx.now,
            idle,
        )
        .await;
        endpoint.close().await;
        joined
    });
    let joined = match joined {
        Ok(j) => j,
        Err(e) if e.is::<crate::net::join::Unreachable>() => {
            // Offline: keep the claim; the first bundle completes the join.
            let (claim, device) =
                crate::net::join::claim_certificates(&ticket, &identity, ctx.now)?;
            crate::store::pending::save(
                ctx.home.root(),
                &crate::store::pending::PendingJoin {
                    community: CommunityId(ticket.community),
                    claim: claim.to_bytes(),
                    device: device.to_bytes(),
                    inviter: DeviceId(ticket.inviter.device),
                    addrs: ticket.inviter.addrs.clone(),
                },
            )?;
            let out = serde_json::json!({"id": CommunityId(ticket.community), "pending": true});
            ctx.emit(&out, || format!("{}\n", CommunityId(ticket.community)))?;
            ctx.status(&format!("{e}; your claim is recorded."));
            ctx.hint("the community arrives with the first `convene bundle import FILE` (or run join again when the inviter is reachable)");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let store = joined.store;
    ctx.home.set_current(&store.id())?;
    super::inbox::acknowledge_everything(&store, &identity, ctx.now, joined.loaded);
    peers::remember(
        store.dir(),
        KnownPeer {
            device: DeviceId(ticket.inviter.device),
            addrs: ticket.inviter.addrs.clone(),
            last_synced: Some(ctx.now),
        },
    )?;
    let m = store.membership();
    let out = serde_json::json!({
        "id": store.id(),
        "name": m.name,
        "purpose": m.purpose,
        "received_changes": joined.stats.received_changes,
        "certificates": joined.stats.certificates,
    });
    ctx.emit(&out, || format!("{}\n", store.id()))?;
    ctx.status(&format!(
        "Joined '{}' as {}; received {} changes. It is now the current community.",
        m.name, identity.name, joined.stats.received_changes
    ));
    Ok(())
}

/// `convene remove MEMBER [--reason TEXT]`
pub fn remove(ctx: &Ctx, member: &str, reason: &str) -> anyhow::Result<()> {
    let identity = ctx.home.identity()?;
    let mut lock = ctx.home.lock_file()?;
    let _guard = lock.write()?;
    let mut store = ctx.home.resolve(ctx.community.as_deref())?;
    let membership = store.membership().clone();
    let me = membership
        .member(&identity.member_id())
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("you are not a member of this community"))?;
    if !me.role.can_facilitate() || me.removed {
        anyhow::bail!(
            "only facilitators may remove members; you are a {}",
            me.role.as_str()
        );
    }
    let target = member_named(&membership, member)?;
    let removed = membership
        .member(&target)
        .cloned()
        .context("no such member")?;
    if removed.role == Role::Founder {
        anyhow::bail!("the founder cannot be removed");
    }
    if removed.removed {
        anyhow::bail!("{} was already removed", removed.name);
    }
    // The cutoff: per document, the hashes of their changes that this device
    // holds. Any other change of theirs will be refused.
    let mut cutoff = std::collections::BTreeMap::new();
    for name in store.doc_names()? {
        let Some(mut loaded) = store.load_doc(&name, true, ctx.now)? else {
            continue;
        };
        let mut hashes = Vec::new();
        for meta in loaded.doc.get_changes_meta(&[]) {
            let owned = crate::trust::signed_change::device_of_actor(meta.actor.to_bytes())
                .is_some_and(|d| removed.devices.contains(&d));
            if owned {
                hashes.push(meta.hash.to_string());
            }
        }
        if !hashes.is_empty() {
            cutoff.insert(name, hashes);
        }
    }
    let cert = Certificate::issue(
        &store.id(),
        &CertBody::Revoke {
            member: target,
            reason: reason.trim().to_string(),
            by: me.id,
            at: ctx.now,
            cutoff,
        },
        &[identity.member_key()?],
    );
    store.add_certificates(&[cert])?;
    let out = serde_json::json!({"member": target, "name": removed.name, "removed": true, "reason": reason.trim()});
    ctx.emit(&out, || format!("{target}\n"))?;
    ctx.status(&format!(
        "Removed {}; their changes after this point will be refused by every peer.",
        removed.name
    ));
    Ok(())
}

/// The member a command names: by exact display name, else by unique id
/// prefix.
pub fn member_named(
    membership: &crate::trust::Membership,
    reference: &str,
) -> anyhow::Result<MemberId> {
    let by_name: Vec<MemberId> = membership
        .members()
        .filter(|m| m.name == reference)
        .map(|m| m.id)
        .collect();
    Ok(match by_name[..] {
        [one] => one,
        _ => crate::ids::resolve_prefix(
            reference,
            membership.members().map(|m| (m.id.to_hex(), m.id)),
            "member",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400));
        assert_eq!(parse_duration("30m"), Ok(1_800));
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999w").is_err());
    }
}
