//! `serve`: keep this device reachable and its peers up to date until Ctrl-C.
//!
//! Each incoming connection runs in its own task (at most
//! [`MAX_CONNECTIONS`] at once), and every session holds the store only while
//! it handles a frame ([`Shared`]), so a slow or silent peer delays nobody.
//! Twice a second the loop looks at the files: if another command (or a peer)
//! changed them, every known peer is due a push; failed pushes are retried
//! with a doubling delay ([`PushSchedule`]). With LAN discovery on, devices of
//! the community announced over mDNS become known peers and are synced with
//! at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use iroh::Endpoint;
use iroh::endpoint::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::output::Ctx;
use super::peer::runtime;
use crate::net::access::DiskStamp;
use crate::net::endpoint::bind;
use crate::net::join::{accept_join, read_join_request};
use crate::net::lan::{self, DiscoveryEvent};
use crate::net::schedule::PushSchedule;
use crate::net::{
    Gate, JOIN_ALPN, PeerTicket, RelayChoice, SYNC_ALPN, Shared, StoreAccess, accept_sync,
    sync_with,
};
use crate::store::Identity;
use crate::store::endpoint::{self, EndpointInfo};
use crate::store::peers::{self, KnownPeer};
use crate::trust::DeviceId;

/// Connections served at the same time; more are turned away.
pub const MAX_CONNECTIONS: usize = 32;

/// How often the files are checked for changes to push.
const TICK: Duration = Duration::from_millis(500);

/// What the connection and push tasks tell the main loop.
enum Event {
    /// A line for the log on stderr.
    Log(String),
    /// A push to this peer ended, well or not.
    Pushed(DeviceId, bool),
}

/// `convene serve [--bind ADDR] [--no-mdns] [--relay off|default|URL]`
pub fn serve(
    ctx: &Ctx,
    bind_addr: SocketAddr,
    relay: &RelayChoice,
    timeout: u64,
    lan_discovery: bool,
) -> anyhow::Result<()> {
    let identity = Arc::new(ctx.home.identity()?);
    let store = ctx.home.resolve(ctx.community.as_deref())?;
    let idle = Duration::from_secs(timeout.max(1));
    runtime()?.block_on(async {
        let gate = Gate::for_store(&store);
        let endpoint = bind(&identity.device, bind_addr, relay, gate.clone()).await?;
        let addrs: Vec<SocketAddr> = endpoint.addr().ip_addrs().copied().collect();
        let info = EndpointInfo {
            device: identity.device_id(),
            addrs: addrs.clone(),
        };
        endpoint::save(&ctx.home, &info)?;
        let ticket = PeerTicket {
            device: identity.device_id().0,
            addrs: addrs.clone(),
        };
        ctx.status(&format!(
            "Serving '{}' as device {} on {}; Ctrl-C stops.",
            store.membership().name,
            identity.device_id().short(),
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        super::output::print_stdout(&format!("{}\n", ticket.encode()))?;
        let access = Arc::new(Shared::new(&ctx.home, store)?);
        let mut discoveries = if lan_discovery {
            match lan::announce(&endpoint) {
                Ok(mdns) => Some(mdns.subscribe().await),
                Err(e) => {
                    ctx.status(&format!("Local network discovery is off: {e}"));
                    None
                }
            }
        } else {
            None
        };
        let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let started = Instant::now();
        let now_ms = || started.elapsed().as_millis() as u64;
        let mut schedule = PushSchedule::new();
        // An empty stamp: the first tick pushes to every known peer.
        let mut last_stamp = DiskStamp::default();
        let mut tick = tokio::time::interval(TICK);
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    match slots.clone().try_acquire_owned() {
                        Ok(permit) => {
                            tokio::spawn(serve_connection(
                                incoming,
                                access.clone(),
                                identity.clone(),
                                gate.clone(),
                                idle,
                                events_tx.clone(),
                                permit,
                            ));
                        }
                        Err(_) => {
                            incoming.refuse();
                            ctx.status("Busy: a connection was turned away");
                        }
                    }
                }
                Some(event) = events.recv() => match event {
                    Event::Log(line) => ctx.status(&line),
                    Event::Pushed(device, ok) => schedule.finished(device, ok, now_ms()),
                },
                Some(found) = next_discovery(&mut discoveries) => {
                    if let DiscoveryEvent::Discovered { endpoint_info, .. } = found {
                        let device = DeviceId(*endpoint_info.endpoint_id.as_bytes());
                        if device != identity.device_id() && gate.allows(&device.0) {
                            let peer = KnownPeer {
                                device,
                                addrs: endpoint_info.to_endpoint_addr().ip_addrs().copied().collect(),
                                last_synced: None,
                            };
                            let dir = access.dir().to_path_buf();
                            if access.with(|_| peers::remember(&dir, peer)).is_ok() {
                                ctx.status(&format!("Found {} on the local network", device.short()));
                                schedule.seen(device);
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    // A damaged list of peers must not stop serve: it
                    // still accepts connections, and `doctor` reports it.
                    let known = peers::load(access.dir()).unwrap_or_else(|e| {
                        tracing::warn!("{e}");
                        Vec::new()
                    });
                    let stamp = DiskStamp::read(access.dir());
                    if stamp != last_stamp {
                        let devices: Vec<DeviceId> = known.iter().map(|p| p.device).collect();
                        schedule.local_change(&devices);
                        // What was on disk before pushing: a change written
                        // during the pushes makes the next tick push again.
                        last_stamp = stamp;
                    }
                    for device in schedule.due(now_ms()) {
                        let addrs = known.iter().find(|p| p.device == device).map(|p| p.addrs.clone()).unwrap_or_default();
                        tokio::spawn(push(
                            endpoint.clone(),
                            PeerTicket { device: device.0, addrs },
                            access.clone(),
                            identity.clone(),
                            gate.clone(),
                            idle,
                            events_tx.clone(),
                        ));
                    }
                }
            }
        }
        endpoint.close().await;
        ctx.status("Stopped.");
        anyhow::Ok(())
    })
}

/// The next mDNS event, or never when discovery is off.
async fn next_discovery(
    events: &mut Option<impl futures_util::Stream<Item = DiscoveryEvent> + Unpin>,
) -> Option<DiscoveryEvent> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// `; arrived: 3 comments, 1 stance` for a session that brought changes
/// (empty otherwise). Also records receipts for the drafts that arrived
/// (`model::receipt`); a failure there is only a warning.
fn arrived(access: &Shared, identity: &Identity, received: usize) -> String {
    if received == 0 {
        return String::new();
    }
    let now = crate::clock::now();
    access
        .with(|replica| {
            replica.fold_appended();
            let arrived = replica.take_arrivals();
            if arrived.is_empty() {
                return String::new();
            }
            replica.keep_draft_digests(&arrived);
            let loaded = replica.copies(arrived.keys());
            let (counts, receipts_in) =
                super::inbox::after_arrival(replica.store(), identity, &arrived, loaded, now);
            // Written beside the documents held (all or, if writing failed
            // part way, some): read those again, so that the next push
            // carries the receipts (the others stay loaded).
            replica.forget_docs(&receipts_in);
            format!("; arrived: {}", counts.sentence())
        })
        .unwrap_or_default()
}

/// Push to one known peer (a sync session that we dial).
async fn push(
    endpoint: Endpoint,
    peer: PeerTicket,
    access: Arc<Shared>,
    identity: Arc<Identity>,
    gate: Gate,
    idle: Duration,
    events: mpsc::UnboundedSender<Event>,
) {
    let device = DeviceId(peer.device);
    let ok = if gate.allows(&peer.device) {
        let report = sync_with(&endpoint, &peer, &*access, idle).await;
        if let Some(e) = &report.error {
            tracing::info!("push to {} failed: {e}", device.short());
        } else if report.received_changes > 0 {
            let _ = events.send(Event::Log(format!(
                "Synced with {}: {} in, {} out{}",
                device.short(),
                report.received_changes,
                report.sent_changes,
                arrived(&access, &identity, report.received_changes)
            )));
        }
        let dir = access.dir().to_path_buf();
        let _ = access.with(|replica| {
            gate.update(replica.store().membership());
            if report.ok {
                let _ = peers::remember(
                    &dir,
                    KnownPeer {
                        device,
                        addrs: Vec::new(),
                        last_synced: Some(crate::clock::now()),
                    },
                );
            }
        });
        report.ok
    } else {
        // Not (or no longer) a device of the community: nothing to push.
        true
    };
    let _ = events.send(Event::Pushed(device, ok));
}

/// Serve one incoming connection: a join, a device link or a sync session.
async fn serve_connection(
    incoming: Incoming,
    access: Arc<Shared>,
    identity: Arc<Identity>,
    gate: Gate,
    idle: Duration,
    events: mpsc::UnboundedSender<Event>,
    _slot: OwnedSemaphorePermit,
) {
    let log = |line: String| {
        let _ = events.send(Event::Log(line));
    };
    let conn = match tokio::time::timeout(idle, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return tracing::info!("a connection failed: {e}"),
        Err(_) => return tracing::info!("a handshake timed out"),
    };
    let alpn = conn.alpn().to_vec();
    if alpn == JOIN_ALPN {
        let start = match read_join_request(conn, idle).await {
            Ok(start) => start,
            Err(e) => return log(format!("A join failed: {e}")),
        };
        match accept_join(start, &*access, &identity, crate::clock::now(), idle).await {
            Ok((member, _)) => {
                let name = access
                    .with(|r| r.store().membership().name_of(&member))
                    .unwrap_or_default();
                log(format!("{name} joined"));
            }
            Err(e) => log(format!("A join was refused: {e}")),
        }
    } else if alpn == SYNC_ALPN {
        let report = accept_sync(conn, &*access, idle).await;
        log(match &report.error {
            None => format!(
                "Synced with {}: {} in, {} out{}",
                report.id.short(),
                report.received_changes,
                report.sent_changes,
                arrived(&access, &identity, report.received_changes)
            ),
            Some(e) => format!("Session with {} failed: {e}", report.id.short()),
        });
    }
    let _ = access.with(|replica| gate.update(replica.store().membership()));
}
