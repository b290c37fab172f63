//! `device link` and `device add`: a second device for the same member.

use std::net::SocketAddr;
use std::time::Duration;

use super::invite::parse_duration;
use super::output::{Ctx, usage};
use super::peer::{endpoint_info, runtime};
use crate::net::device::{LinkTicket, add_device, make_link};
use crate::net::endpoint::bind;
use crate::net::{Gate, RelayChoice};
use crate::store::Identity;
use crate::store::peers::{self, KnownPeer};
use crate::trust::{DeviceId, MemberId};

/// `convene device link [--expires 10m] [--addr IP:PORT]`
pub fn link(ctx: &Ctx, expires: &str, addr: &[SocketAddr]) -> anyhow::Result<()> {
    let lifetime = parse_duration(expires).map_err(usage)?;
    let identity = ctx.home.identity()?;
    identity.member_key()?;
    let device = endpoint_info(&ctx.home, identity.device_id(), addr)?;
    let mut lock = ctx.home.lock_file()?;
    let _guard = lock.write()?;
    let store = ctx.home.resolve(ctx.community.as_deref())?;
    let ticket = make_link(&store, &identity, ctx.now + lifetime, device)?.encode();
    ctx.emit(&serde_json::json!({"ticket": ticket}), || {
        format!("{ticket}\n")
    })?;
    ctx.status("On the new device run `convene device add TICKET`; keep `convene serve` running here meanwhile.");
    ctx.hint("the ticket works once; the new device never receives your member key");
    Ok(())
}

/// `convene device add TICKET [--bind ADDR] [--timeout SECS]`
pub fn add(ctx: &Ctx, ticket: &str, bind_addr: SocketAddr, timeout: u64) -> anyhow::Result<()> {
    let ticket = LinkTicket::decode(ticket).map_err(usage)?;
    let mut lock = ctx.home.lock_file()?;
    let _guard = lock.write()?;
    if ctx.home.identity().is_ok() {
        anyhow::bail!("this home already has an identity; use a new --home for the new device");
    }
    let identity = Identity::create_linked(
        &ctx.home.root().join("identity"),
        &ticket.name,
        MemberId(ticket.member),
    )?;
    let communities_dir = ctx.home.root().join("communities");
    let idle = Duration::from_secs(timeout.max(1));
    let joined = runtime()?.block_on(async {
        let endpoint = bind(
            &identity.device,
            bind_addr,
            &RelayChoice::Off,
            Gate::default(),
        )
        .await?;
        let joined = add_device(
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
    })?;
    let store = joined.store;
    ctx.home.set_current(&store.id())?;
    super::inbox::acknowledge_everything(&store, &identity, ctx.now, joined.loaded);
    peers::remember(
        store.dir(),
        KnownPeer {
            device: DeviceId(ticket.device.device),
            addrs: ticket.device.addrs.clone(),
            last_synced: Some(ctx.now),
        },
    )?;
    let out = serde_json::json!({
        "id": store.id(),
        "name": store.membership().name,
        "member": identity.member_id(),
        "device": identity.device_id(),
        "received_changes": joined.stats.received_changes,
    });
    ctx.emit(&out, || format!("{}\n", identity.device_id()))?;
    ctx.status(&format!(
        "This device now belongs to {} in '{}'.",
        identity.name,
        store.membership().name
    ));
    Ok(())
}
