//! `ticket`, `sync` and `serve`: reaching other devices of the community.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::output::{Ctx, IntegrityFailure, table, usage};
use crate::ids::resolve_prefix;
use crate::net::endpoint::bind;
use crate::net::join::{accept_join, read_join_request};
use crate::net::{
    Gate, JOIN_ALPN, PeerReport, PeerTicket, RelayChoice, SYNC_ALPN, accept_sync, sync_with,
};
use crate::store::peers::{self, KnownPeer};
use crate::store::replica::StoreReplica;
use crate::store::{CommunityStore, Home};
use crate::trust::DeviceId;

/// Where `serve` said it listens, for `ticket` and `invite`.
#[derive(Debug, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// This device.
    pub device: DeviceId,
    /// Its direct addresses.
    pub addrs: Vec<SocketAddr>,
}

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
    let path = home.root().join("endpoint.json");
    let info: Option<EndpointInfo> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match info {
        Some(info) if info.device == device => Ok(PeerTicket {
            device: device.0,
            addrs: info.addrs,
        }),
        _ => Err(anyhow::anyhow!(
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
    let mut store = ctx.home.resolve(ctx.community.as_deref())?;
    let targets = resolve_peers(&store, args)?;
    if targets.is_empty() {
        return Err(anyhow::anyhow!(
            "no known peer: pass a peer ticket (from `convene ticket` on the other device)"
        ));
    }
    let idle = Duration::from_secs(timeout.max(1));
    let now = ctx.now;
    let reports = runtime()?.block_on(async {
        let gate = Gate::for_membership(store.membership());
        let endpoint = bind(&identity.device, bind_addr, relay, gate.clone()).await?;
        let mut reports = Vec::new();
        for peer in &targets {
            let report = if gate.allows(&peer.device) {
                let mut replica = StoreReplica::new(&mut store, now);
                sync_with(&endpoint, peer, &mut replica, idle).await
            } else {
                PeerReport::not_a_member(DeviceId(peer.device))
            };
            gate.update(store.membership());
            if report.ok {
                peers::remember(
                    store.dir(),
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
    let report = SyncReport { peers: reports };
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

/// A cheap fingerprint of the documents on disk: names and sizes.
fn fingerprint(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir.join("docs"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().map(|m| m.len()).unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.push((
        "certs".into(),
        std::fs::metadata(dir.join("certs.log"))
            .map(|m| m.len())
            .unwrap_or(0),
    ));
    out.sort();
    out
}

/// `convene serve [--bind ADDR] [--no-mdns] [--relay off|default|URL]`
pub fn serve(
    ctx: &Ctx,
    bind_addr: SocketAddr,
    relay: &RelayChoice,
    timeout: u64,
) -> anyhow::Result<()> {
    let identity = ctx.home.identity()?;
    let store = ctx.home.resolve(ctx.community.as_deref())?;
    let community = store.id();
    let dir = store.dir().to_path_buf();
    let idle = Duration::from_secs(timeout.max(1));
    runtime()?.block_on(async {
        let gate = Gate::for_store(&store);
        let endpoint = bind(&identity.device, bind_addr, relay, gate.clone()).await?;
        let addrs: Vec<SocketAddr> = endpoint.addr().ip_addrs().copied().collect();
        let info = EndpointInfo {
            device: identity.device_id(),
            addrs: addrs.clone(),
        };
        crate::store::fsutil::write_atomic(&ctx.home.root().join("endpoint.json"), &serde_json::to_vec_pretty(&info)?)?;
        let ticket = PeerTicket {
            device: identity.device_id().0,
            addrs: addrs.clone(),
        };
        ctx.progress(&format!(
            "Serving '{}' as device {} on {}; Ctrl-C stops.",
            store.membership().name,
            identity.device_id().short(),
            addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
        ));
        super::output::print_stdout(&format!("{}\n", ticket.encode()))?;
        // An empty fingerprint: the first tick syncs with every known peer.
        let mut last = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    let conn = match tokio::time::timeout(idle, incoming).await {
                        Ok(Ok(conn)) => conn,
                        Ok(Err(e)) => { tracing::info!("a connection failed: {e}"); continue; }
                        Err(_) => { tracing::info!("a handshake timed out"); continue; }
                    };
                    let alpn = conn.alpn().to_vec();
                    // A joiner's request is read before the lock is taken.
                    let join = if alpn == JOIN_ALPN {
                        match read_join_request(conn.clone(), idle).await {
                            Ok(start) => Some(start),
                            Err(e) => {
                                ctx.progress(&format!("a join failed: {e}"));
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    let mut lock = ctx.home.lock_file()?;
                    let _guard = lock.write().context("taking the home's write lock")?;
                    let mut store = CommunityStore::open(&dir, community)?;
                    if let Some(start) = join {
                        match accept_join(start, &mut store, &identity, crate::clock::now(), idle).await {
                            Ok((member, _)) => ctx.progress(&format!("{} joined", store.membership().name_of(&member))),
                            Err(e) => ctx.progress(&format!("a join was refused: {e}")),
                        }
                    } else if alpn == SYNC_ALPN {
                        let report = {
                            let mut replica = StoreReplica::new(&mut store, crate::clock::now());
                            accept_sync(conn, &mut replica, idle).await
                        };
                        match &report.error {
                            None => ctx.progress(&format!("synced with {}: {} in, {} out", report.id.short(), report.received_changes, report.sent_changes)),
                            Some(e) => ctx.progress(&format!("session with {} failed: {e}", report.id.short())),
                        }
                    }
                    gate.update(store.membership());
                }
                _ = tick.tick() => {
                    let now_fp = fingerprint(&dir);
                    if now_fp != last {
                        let mut lock = ctx.home.lock_file()?;
                        let _guard = lock.write().context("taking the home's write lock")?;
                        let mut store = CommunityStore::open(&dir, community)?;
                        for peer in peers::load(&dir)? {
                            let ticket = PeerTicket { device: peer.device.0, addrs: peer.addrs.clone() };
                            if ticket.addrs.is_empty() { continue; }
                            let report = {
                                let mut replica = StoreReplica::new(&mut store, crate::clock::now());
                                sync_with(&endpoint, &ticket, &mut replica, idle).await
                            };
                            if let Some(e) = &report.error {
                                tracing::info!("push to {} failed: {e}", peer.device.short());
                            }
                        }
                        gate.update(store.membership());
                        // What was on disk before pushing: a change written
                        // during the pushes is pushed at the next tick.
                        last = now_fp;
                    }
                }
            }
        }
        endpoint.close().await;
        ctx.progress("Stopped.");
        anyhow::Ok(())
    })
}
