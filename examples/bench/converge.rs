//! Ten peers write at once, then sync through one `serve` until every
//! device holds the same heads for every document.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use convene::ids::ObjectId;
use convene::store::Home;

use crate::community::NOW;
use crate::peer_sync::{Held, dial, heads, load_docs};

/// Every document's heads in `home`'s current community.
fn home_heads(home: &Home) -> anyhow::Result<BTreeMap<String, Vec<ChangeHash>>> {
    let store = home.resolve(None)?;
    Ok(heads(&mut load_docs(&store)?))
}

/// Each home posts `per_peer` comments in `thread` (in sittings of ten, as
/// that member, holding the home's lock as a command does), all homes at
/// once.
pub fn post_everywhere(
    homes: &[Home],
    thread: &(ObjectId, ObjectId),
    per_peer: usize,
) -> anyhow::Result<()> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = homes
            .iter()
            .enumerate()
            .map(|(i, home)| {
                scope.spawn(move || -> anyhow::Result<()> {
                    let identity = home.identity()?;
                    let store = home.resolve(None)?;
                    for sitting in 0..per_peer.div_ceil(10) {
                        let mut lock = home.lock_file()?;
                        let _guard = lock.write()?;
                        let mut ws = store.workspace(&identity, NOW, true);
                        for k in 0..10.min(per_peer - sitting * 10) {
                            let body = format!(
                                "Peer {i}, comment {}: our branch agrees with the second option.",
                                sitting * 10 + k
                            );
                            ws.post(&thread.0, &thread.1, &body, None)?;
                        }
                        store.persist(&mut ws, &identity)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a posting thread panicked"))??;
        }
        Ok(())
    })
}

/// Every home but the hub (`homes[0]`, served at `ticket`) syncs with it,
/// all at once, round after round, until all hold the same heads. Returns
/// the time spent syncing (not checking) and the rounds it took.
pub fn until_identical(homes: &[Home], ticket: &str) -> anyhow::Result<(Duration, usize)> {
    let mut syncing = Duration::ZERO;
    for round in 1..=10 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            let handles: Vec<_> = homes[1..]
                .iter()
                .map(|home| scope.spawn(move || dial(home, ticket, Held::OnDisk)))
                .collect();
            for handle in handles {
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a sync thread panicked"))??;
            }
            anyhow::Ok(())
        })?;
        syncing += start.elapsed();
        let first = home_heads(&homes[0])?;
        let mut same = true;
        for home in &homes[1..] {
            same &= home_heads(home)? == first;
        }
        if same {
            return Ok((syncing, round));
        }
    }
    anyhow::bail!("ten peers did not converge in ten rounds")
}
