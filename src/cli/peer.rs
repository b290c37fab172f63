//! `ticket` and `sync`: reaching other devices of the community (`serve`
//! is in its own module).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::output::{Ctx, IntegrityFailure, table, usage};
use crate::ids::resolve_prefix;
use crate::model::inbox::NewsCounts;
use crate::net::endpoint::bind;
use crate::net::{Exclusive, Gate, PeerReport, PeerTicket, RelayChoice, StoreAccess, sync_with};
use crate::store::peers::{self, KnownPeer};
use crate::store::{CommunityStore, Home};
use crate::trust::DeviceId;

/// The addresses `serve` last listened on (or `--addr`).
pub fn endpoint_info(
    home: &Home,
    device: DeviceId,
    addr: &[SocketAddr],
) -> anyhow::Result<PeerTicket> {
    if !addr.is_empty() {
        return Ok(PeerTicket {
            device: device.0,
            addrs: addr.to_vec(),
        });
    }
    match crate::store::endpoint::load(home, device) {
        Some(addrs) => Ok(PeerTicket {
            device: device.0,
            addrs,
        }),
        None => Err(anyhow::anyhow!(
            "this device has no known address yet: run `convene serve` first, or pass --addr IP:PORT"
        )),
    }
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the network runtime")
}

/// `convene ticket [--addr IP:PORT]`
pub fn ticket(ctx: &Ctx, addr: &[SocketAddr]) -> anyhow::Result<()> {
    let identity = ctx.home.identity()?;
    let t = endpoint_info(&ctx.home, identity.device_id(), addr)?;
    let text = t.encode();
    ctx.emit(
        &serde_json::json!({"ticket": text, "device": identity.device_id(), "addrs": t.addrs}),
        || format!("{text}\n"),
    )
}

#[derive(Serialize)]
struct SyncReport {
    peers: Vec<PeerReport>,
    /// What arrived, counted as `inbox` counts it.
    arrived: NewsCounts,
}

fn resolve_peers(store: &CommunityStore, args: &[String]) -> anyhow::Result<Vec<PeerTicket>> {
    let known = peers::load(store.dir())?;
    if args.is_empty() {
        return Ok(known
            .into_iter()
            .map(|p| PeerTicket {
                device: p.device.0,
                addrs: p.addrs,
            })
            .collect());
    }
    let mut out = Vec::new();
    for arg in args {
        if arg.starts_with(crate::net::ticket::PEER_PREFIX) {
            out.push(PeerTicket::decode(arg).map_err(usage)?);
        } else {
            let candidates = known.iter().map(|p| (p.device.to_hex(), p.clone()));
            let p: KnownPeer =
                resolve_prefix(arg, candidates, "known peer").map_err(|e| anyhow::anyhow!(e))?;
            out.push(PeerTicket {
                device: p.device.0,
                addrs: p.addrs,
            });
        }
    }
    Ok(out)
}

/// `convene sync [PEER...] [--timeout SECS] [--bind ADDR]`
pub fn sync(
    ctx: &Ctx,
    args: &[String],
    timeout: u64,
    bind_addr: SocketAddr,
    relay: &RelayChoice,
) -> anyhow::Result<()> {
    let identity = ctx.home.identity()?;
    let mut lock = ctx.home.lock_file()?;
    let _guard = lock.write().context("taking the home's write lock")?;
    let store = ctx.home.resolve(ctx.community.as_deref())?;
    let targets = resolve_peers(&store, args)?;
    if targets.is_empty() {
        return Err(anyhow::anyhow!(
            "no known peer: pass a peer ticket (from `convene ticket` on the other device)"
        ));
    }
    let idle = Duration::from_secs(timeout.max(1));
    let now = ctx.now;
    let dir = store.dir().to_path_buf();
    let gate = Gate::for_membership(store.membership());
    let access = Exclusive::new(store, now);
    let progress =
        super::progress::Progress::start(ctx, "syncing", Some(&crate::net::link::RECEIVED_BYTES));
    let reports = runtime()?.block_on(async {
        let endpoint = bind(&identity.device, bind_addr, relay, gate.clone()).await?;
        let mut reports = Vec::new();
        for peer in &targets {
            let report = if gate.allows(&peer.device) {
                sync_with(&endpoint, peer, &access, idle).await
            } else {
                PeerReport::not_a_member(DeviceId(peer.device))
            };
            access.with(|replica| gate.update(replica.store().membership()))?;
            if report.ok {
                peers::remember(
                    &dir,
                    KnownPeer {
                        device: DeviceId(peer.device),
                        addrs: peer.addrs.clone(),
                        last_synced: Some(now),
                    },
                )?;
            }
            reports.push(report);
        }
        endpoint.close().await;
        anyhow::Ok(reports)
    })?;
    drop(progress);
    let (arrived, loaded) = access.with(|replica| {
        replica.fold_appended();
        let arrived = replica.arrivals();
        replica.keep_draft_digests(&arrived);
        let loaded = replica.take_loaded(arrived.keys());
        (arrived, loaded)
    })?;
    let store = access.into_store();
    let (arrived, _) = super::inbox::after_arrival(&store, &identity, &arrived, loaded, now);
    let report = SyncReport {
        peers: reports,
        arrived,
    };
    ctx.emit(&report, || {
        let rows: Vec<Vec<String>> = report
            .peers
            .iter()
            .map(|p| {
                vec![
                    p.id.short(),
                    if p.ok { "ok".into() } else { "failed".into() },
                    p.sent_changes.to_string(),
                    p.received_changes.to_string(),
                    p.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(&["PEER", "RESULT", "SENT", "RECEIVED", "ERROR"], &rows)
    })?;
    ctx.status(&format!("Arrived: {}.", report.arrived.sentence()));
    let ok = report.peers.iter().filter(|p| p.ok).count();
    if report.peers.iter().any(|p| p.integrity) {
        return Err(IntegrityFailure("a peer was refused for integrity reasons".into()).into());
    }
    match ok {
        n if n == report.peers.len() => Ok(()),
        0 => Err(anyhow::anyhow!("no peer could be reached")),
        _ => Err(
            super::output::Partial(format!("{ok} of {} peers synced", report.peers.len())).into(),
        ),
    }
}
