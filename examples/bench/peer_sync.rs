//! One device syncing with a `serve` over iroh on loopback, in process so
//! that only the connection and the session are timed; and the same
//! documents synced by Automerge's own protocol in memory, the limit a
//! protocol over Automerge can approach.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use automerge::sync::{State, SyncDoc};
use automerge::{AutoCommit, ChangeHash};
use convene::net::endpoint::bind;
use convene::net::{Exclusive, Gate, PeerReport, PeerTicket, RelayChoice, StoreAccess, sync_with};
use convene::store::{CommunityStore, Home};
use convene::sync::Replica;

/// Whether the dialing device holds its documents in memory before the
/// clock starts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Only the store is opened: the session loads what it needs from
    /// files, as a `convene sync` process does.
    OnDisk,
    /// Every document is loaded first, as in a `serve` that has synced
    /// before (and as in Automerge's in-memory figure).
    InMemory,
}

/// Sync `home`'s current community with the device behind `ticket`. The
/// time covers connecting, the session and every write it made; the store
/// is opened (and with [`Held::InMemory`] every document loaded) and the
/// endpoint bound before the clock starts.
pub fn dial(home: &Home, ticket: &str, held: Held) -> anyhow::Result<(Duration, PeerReport)> {
    let identity = home.identity()?;
    let store = home.resolve(None)?;
    let gate = Gate::for_store(&store);
    let ticket = PeerTicket::decode(ticket).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let endpoint = bind(
            &identity.device,
            "127.0.0.1:0".parse()?,
            &RelayChoice::Off,
            gate,
        )
        .await?;
        let access = Exclusive::new(store, convene::clock::now());
        if held == Held::InMemory {
            access.with(|replica| -> anyhow::Result<()> {
                let names = replica.doc_names()?;
                replica.load_ahead(&names);
                Ok(())
            })??;
        }
        // Documents held loaded before the clock starts are not read again
        // from their files during the session.
        let reads = || access.with(|replica| replica.reads());
        let reads_before = reads()?;
        let start = Instant::now();
        let report = sync_with(&endpoint, &ticket, &access, Duration::from_secs(120)).await;
        let took = start.elapsed();
        endpoint.close().await;
        if let Some(e) = &report.error {
            anyhow::bail!("sync failed: {e}");
        }
        if held == Held::InMemory {
            anyhow::ensure!(
                reads()? == reads_before,
                "the session read documents held in memory again from files"
            );
        }
        Ok((took, report))
    })
}

/// Every document of a community, loaded and verified.
pub fn load_docs(store: &CommunityStore) -> anyhow::Result<BTreeMap<String, AutoCommit>> {
    let mut out = BTreeMap::new();
    for name in store.doc_names()? {
        if let Some(loaded) = store.load_doc(&name, false, convene::clock::now())? {
            out.insert(name, loaded.doc);
        }
    }
    Ok(out)
}

/// The heads of every document.
pub fn heads(docs: &mut BTreeMap<String, AutoCommit>) -> BTreeMap<String, Vec<ChangeHash>> {
    docs.iter_mut()
        .map(|(name, doc)| (name.clone(), doc.get_heads()))
        .collect()
}

/// Automerge's sync protocol between `ahead` and `behind`, in memory, for
/// every document that differs: (time, bytes of every message). Documents
/// are loaded before the clock starts.
pub fn automerge_in_memory(
    ahead: &BTreeMap<String, AutoCommit>,
    behind: &BTreeMap<String, AutoCommit>,
) -> (Duration, u64) {
    let mut pairs: Vec<(AutoCommit, AutoCommit)> = ahead
        .iter()
        .map(|(name, doc)| {
            let other = behind.get(name).cloned().unwrap_or_else(AutoCommit::new);
            (doc.clone(), other)
        })
        .filter(|(a, b)| a.clone().get_heads() != b.clone().get_heads())
        .collect();
    let start = Instant::now();
    let mut bytes = 0u64;
    for (a, b) in &mut pairs {
        let (mut sa, mut sb) = (State::new(), State::new());
        loop {
            let a_spoke = exchange(a, &mut sa, b, &mut sb, &mut bytes);
            let b_spoke = exchange(b, &mut sb, a, &mut sa, &mut bytes);
            if !a_spoke && !b_spoke {
                break;
            }
        }
    }
    (start.elapsed(), bytes)
}

/// One message from `from` to `to`, if `from` has one, encoded and decoded
/// as on a wire and counted. As convene does, without the V2 capability:
/// single changes go across, never a compressed whole document.
fn exchange(
    from: &mut AutoCommit,
    from_state: &mut State,
    to: &mut AutoCommit,
    to_state: &mut State,
    bytes: &mut u64,
) -> bool {
    let Some(mut message) = from.sync().generate_sync_message(from_state) else {
        return false;
    };
    message.flags = None;
    let encoded = message.encode();
    *bytes += encoded.len() as u64;
    let message = automerge::sync::Message::decode(&encoded).unwrap_or_else(|e| panic!("{e}"));
    let _ = to.sync().receive_sync_message(to_state, message);
    true
}
