//! The corruption campaign: for each kind of file in a home, random
//! mutations (bit flips, truncations, zeroed blocks, appended junk), each
//! followed by opening the home as a command would (identity, certificates,
//! every document, every view). Each outcome must be one of: refused with
//! an integrity error; the same content as before; or, for a damaged log
//! tail only, the tail cut and kept aside (`*.torn-*`) with a prefix of the
//! history. Never a panic, never altered content accepted in silence.
//!
//! `CONVENE_CORRUPTIONS` sets the mutations per kind of file (1,000 by
//! default).
//!
//! Hint files (what a device remembers to work faster or reach peers) have
//! their own campaign: no view may change, a sync must still converge and
//! writing must go on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use super::{CommunityStore, Home};
use crate::model::response::NewResponse;
use crate::model::views::{ResponseKind, Stance};

const NOW: i64 = 1_795_946_400;

fn mutations() -> usize {
    std::env::var("CONVENE_CORRUPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

/// Hint files cost a sync and a write per mutation: `CONVENE_HINT_CORRUPTIONS`
/// sets how many per file (200 by default; docs/reliability.md records 1,000).
fn hint_mutations() -> usize {
    std::env::var("CONVENE_HINT_CORRUPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// A home with a community, a response, a thread with comments, a draft
/// with a stance, and one document compacted into a snapshot.
fn pristine(root: &Path) -> (Home, PathBuf) {
    let home = Home::new(root.to_path_buf());
    let identity = home.init("Ana").unwrap_or_else(|e| panic!("{e}"));
    let store = home
        .create_community(&identity, "Net", "testing", NOW)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ws = store.workspace(&identity, NOW, true);
    let response = ws
        .open_response(NewResponse {
            kind: ResponseKind::Development,
            title: "Policy".into(),
            summary: "Something happened.".into(),
            source: None,
            requester: None,
            questions: Vec::new(),
            due: None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (thread, _) = ws
        .start_thread(&response, "Views", Some("First."))
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..5 {
        ws.post(&response, &thread, &format!("Comment {i}."), None)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let draft = ws
        .new_draft(&response, "Text", "We support the aim.")
        .unwrap_or_else(|e| panic!("{e}"));
    let entry = ws
        .draft_entries(&response)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|d| d.id == draft)
        .unwrap_or_else(|| panic!("no draft"));
    ws.take_stance(&entry, Stance::Support, None)
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .persist(&mut ws, &identity)
        .unwrap_or_else(|e| panic!("{e}"));
    // Compact the draft into a snapshot attested by this device, so that
    // snapshots and their attestations are covered too.
    let name = format!("draft-{draft}");
    let mut loaded = store
        .load_doc(&name, true, NOW)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no draft document"));
    assert!(
        store.device().is_some(),
        "the snapshot would not be attested"
    );
    store
        .compact_doc(&name, &mut loaded)
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = store.dir().to_path_buf();
    (home, dir)
}

/// Everything a command would show, or the error that stopped it.
fn open_everything(home: &Home) -> Result<String, String> {
    let identity = home.identity().map_err(|e| e.to_string())?;
    let store = home.resolve(None).map_err(|e| e.to_string())?;
    // As a writing command does: repair what can be repaired, noting it.
    store.repair(NOW).map_err(|e| e.to_string())?;
    let mut ws = store.workspace(&identity, NOW, true);
    let members: Vec<_> = store.membership().members().collect();
    let mut out = format!(
        "{}|{}|{}|{members:?}|",
        identity.name,
        identity.device_id().to_hex(),
        identity.member_id().to_hex(),
    );
    for entry in ws.index().map_err(|e| e.to_string())? {
        let show = ws.show(&entry.id).map_err(|e| e.to_string())?;
        let tally = ws.tally(&entry.id).map_err(|e| e.to_string())?;
        out.push_str(&serde_json::to_string(&show).unwrap_or_default());
        out.push_str(&serde_json::to_string(&tally).unwrap_or_default());
    }
    Ok(out)
}

/// Notes a load leaves beside a log: a torn tail kept aside, or lost bytes.
fn torn_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("docs")] {
        if let Ok(entries) = std::fs::read_dir(&sub) {
            out.extend(
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| {
                        let name = p.to_string_lossy();
                        name.contains(".torn-") || name.contains(".truncated-")
                    }),
            );
        }
    }
    out
}

fn mutate(rng: &mut Rng, original: &[u8], round: usize) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let len = bytes.len().max(1);
    match round % 4 {
        0 => {
            if !bytes.is_empty() {
                let bit = rng.below(bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
        }
        1 => bytes.truncate(rng.below(len)),
        2 => {
            let at = rng.below(len);
            let end = (at + 1 + rng.below(64)).min(bytes.len());
            for b in &mut bytes[at.min(end)..end] {
                *b = 0;
            }
        }
        _ => {
            let extra = 1 + rng.below(64);
            bytes.extend((0..extra).map(|_| rng.below(256) as u8));
        }
    }
    bytes
}

#[derive(Debug, Default)]
struct Tally {
    refused: usize,
    unchanged: usize,
    tail_cut: usize,
    identical_bytes: usize,
}

#[test]
fn every_mutation_is_detected_or_harmless() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (home, dir) = pristine(root.path());
    let expected = open_everything(&home).unwrap_or_else(|e| panic!("{e}"));
    let docs = dir.join("docs");
    let find = |prefix: &str, suffix: &str| {
        std::fs::read_dir(&docs)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                name.is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
            })
            .unwrap_or_else(|| panic!("no {prefix}*{suffix}"))
    };
    let identity = home.root().join("identity");
    let files: Vec<(&str, PathBuf)> = vec![
        ("member key", identity.join("member.key")),
        ("device key", identity.join("device.key")),
        ("profile", identity.join("profile.json")),
        ("certificate log", dir.join("certs.log")),
        ("community log", find("community", ".log")),
        ("discussion log", find("response-", ".log")),
        ("draft snapshot", find("draft-", ".snapshot")),
    ];
    let n = mutations();
    let mut rng = Rng(0xC0FFEE);
    for (kind, path) in &files {
        let original = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
        let mut tally = Tally::default();
        for round in 0..n {
            let mutated = mutate(&mut rng, &original, round);
            std::fs::write(path, &mutated).unwrap_or_else(|e| panic!("{e}"));
            let outcome = catch_unwind(AssertUnwindSafe(|| open_everything(&home)))
                .unwrap_or_else(|_| panic!("{kind}, round {round}: a panic"));
            let torn = torn_files(&dir);
            match outcome {
                Err(_) => tally.refused += 1,
                Ok(seen) if seen == expected => {
                    if mutated == original {
                        tally.identical_bytes += 1;
                    } else if torn.is_empty() {
                        tally.unchanged += 1;
                    } else {
                        tally.tail_cut += 1;
                    }
                }
                Ok(seen) => {
                    // Only a damaged log tail may change what is seen, and
                    // only with a note beside it (the tail kept aside, or
                    // the bytes found missing), loudly.
                    assert!(
                        kind.ends_with("log") && !torn.is_empty(),
                        "{kind}, round {round}: altered content accepted in silence:\n{seen}"
                    );
                    tally.tail_cut += 1;
                }
            }
            for file in torn {
                let _ = std::fs::remove_file(file);
            }
            std::fs::write(path, &original).unwrap_or_else(|e| panic!("{e}"));
            // A load that found bytes missing sealed the shorter length.
            crate::store::fsutil::write_seal(path, original.len() as u64)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        eprintln!("corruption, {kind}: {n} mutations: {tally:?}");
        assert_eq!(
            tally.refused + tally.unchanged + tally.tail_cut + tally.identical_bytes,
            n
        );
    }
    // The home is intact again.
    assert_eq!(open_everything(&home), Ok(expected));
    let _ = CommunityStore::open(&dir, home.community_ids().unwrap_or_default()[0]);
}

/// Post one more comment in the first thread of the first response, as a
/// writing command does (mending what it can first).
fn post_one(home: &Home, store: &CommunityStore, body: &str) -> Result<(), String> {
    let identity = home.identity().map_err(|e| e.to_string())?;
    store.repair(NOW).map_err(|e| e.to_string())?;
    let mut ws = store.workspace(&identity, NOW, true);
    let index = ws.index().map_err(|e| e.to_string())?;
    let response = &index.first().ok_or("no response")?.id;
    let threads = ws.threads(response).map_err(|e| e.to_string())?;
    let thread = crate::ids::ObjectId::parse(&threads.first().ok_or("no thread")?.id)
        .ok_or("a bad thread id")?;
    ws.post(response, &thread, body, None)
        .map_err(|e| e.to_string())?;
    store
        .persist(&mut ws, &identity)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

fn heads(replica: &mut dyn crate::sync::Replica) -> Vec<(String, Vec<automerge::ChangeHash>)> {
    let names = replica.doc_names().unwrap_or_else(|e| panic!("{e}"));
    names
        .into_iter()
        .map(|name| {
            let heads = replica
                .doc(&name)
                .unwrap_or_else(|e| panic!("{e}"))
                .get_heads();
            (name, heads)
        })
        .collect()
}

/// The hint files: what a device remembers to work faster or reach peers
/// (`current`, `actor`, `peers.json`, the sync states in `peers/`,
/// `endpoint.json`, `threads.json`). Their content is not the community's: each mutation
/// must leave every view as it was (or be refused), writing must still
/// work, and a damaged sync state must not stop a sync from converging.
#[test]
fn every_mutation_of_a_hint_file_is_harmless() {
    use crate::store::replica::StoreReplica;
    use crate::sync::harness::{Rng as WireRng, sync_replicas};

    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (home, dir) = pristine(&root.path().join("a"));
    let identity = home.identity().unwrap_or_else(|e| panic!("{e}"));
    let device = identity.device_id();
    let id = home.community_ids().unwrap_or_else(|e| panic!("{e}"))[0];
    home.set_current(&id).unwrap_or_else(|e| panic!("{e}"));
    crate::store::peers::remember(
        &dir,
        crate::store::peers::KnownPeer {
            device,
            addrs: vec!["127.0.0.1:4433".parse().unwrap_or_else(|e| panic!("{e}"))],
            last_synced: Some(NOW),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let endpoint = crate::store::endpoint::EndpointInfo {
        device,
        addrs: vec!["127.0.0.1:4434".parse().unwrap_or_else(|e| panic!("{e}"))],
    };
    crate::store::endpoint::save(&home, &endpoint).unwrap_or_else(|e| panic!("{e}"));

    // Another copy of the community (as on another device) runs ahead: it
    // is synced once, so that a sync state is kept for it, then writes more.
    let other = root.path().join("b");
    copy_dir(&dir, &other);
    std::fs::write(other.join("actor"), "00000000000000b0").unwrap_or_else(|e| panic!("{e}"));
    let open = |d: &Path| CommunityStore::open(d, id).unwrap_or_else(|e| panic!("{e}"));
    post_one(&home, &open(&other), "Ahead, first.").unwrap_or_else(|e| panic!("{e}"));
    let mut wire = WireRng(7);
    let sync = |wire: &mut WireRng| {
        let mut a = StoreReplica::new(open(&dir), NOW);
        let mut b = StoreReplica::new(open(&other), NOW);
        let outcome = sync_replicas(&mut a, device, &mut b, device, wire);
        (outcome, heads(&mut a), heads(&mut b))
    };
    let (first, _, _) = sync(&mut wire);
    first.unwrap_or_else(|e| panic!("{e}"));
    post_one(&home, &open(&other), "Ahead, second.").unwrap_or_else(|e| panic!("{e}"));
    let state = dir.join("peers").join(format!("{}.json", device.to_hex()));
    let other_state = other
        .join("peers")
        .join(format!("{}.json", device.to_hex()));
    let saved = root.path().join("saved");
    copy_dir(&dir, &saved);
    let other_state_bytes = std::fs::read(&other_state).unwrap_or_else(|e| panic!("{e}"));
    // `post` leaves the thread ids it read in threads.json.
    let thread_of =
        |store: &CommunityStore| -> Result<(crate::ids::ObjectId, crate::ids::ObjectId), String> {
            let mut ws = store.workspace(&identity, NOW, false);
            let response = ws.index().map_err(|e| e.to_string())?[0].id.clone();
            let thread = ws.thread_ids(&response).map_err(|e| e.to_string())?[0].clone();
            let mut hints = crate::store::thread_hints::StoredThreadHints::open(store);
            let found = ws
                .resolve_thread_with(&thread, &mut hints)
                .map_err(|e| e.to_string())?;
            hints.save();
            Ok(found)
        };
    let expected_thread = thread_of(&open(&dir)).unwrap_or_else(|e| panic!("{e}"));
    assert!(dir.join("threads.json").exists());
    let expected = open_everything(&home).unwrap_or_else(|e| panic!("{e}"));

    let files: Vec<(&str, PathBuf)> = vec![
        ("threads.json", dir.join("threads.json")),
        ("current", home.root().join("current")),
        ("actor", dir.join("actor")),
        ("peers.json", dir.join("peers.json")),
        ("endpoint.json", home.root().join("endpoint.json")),
        ("sync state", state),
    ];
    let n = hint_mutations();
    let mut rng = Rng(0xBADC0DE);
    for (kind, path) in &files {
        let original = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
        let (mut hint_read, mut hint_refused) = (0, 0);
        for round in 0..n {
            let mutated = mutate(&mut rng, &original, round);
            std::fs::write(path, &mutated).unwrap_or_else(|e| panic!("{e}"));
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                // The hint's own reader refuses it or reads something.
                let read = match *kind {
                    "peers.json" => crate::store::peers::load(&dir).is_ok(),
                    "endpoint.json" => crate::store::endpoint::load(&home, device).is_some(),
                    "current" => home.current().ok().flatten() == Some(id),
                    "actor" => !open(&dir).actor_replaced(),
                    "threads.json" => {
                        let readable = std::fs::read(path)
                            .ok()
                            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                            .is_some();
                        // Whatever it says, the thread is found where it is.
                        assert_eq!(thread_of(&open(&dir)).as_ref(), Ok(&expected_thread));
                        readable
                    }
                    _ => std::fs::read(path)
                        .ok()
                        .and_then(|b| {
                            serde_json::from_slice::<std::collections::BTreeMap<String, String>>(&b)
                                .ok()
                        })
                        .is_some_and(|states| {
                            states.values().all(|h| {
                                hex::decode(h)
                                    .ok()
                                    .is_some_and(|b| automerge::sync::State::decode(&b).is_ok())
                            })
                        }),
                };
                // Every view is as it was: hints carry no content.
                assert_eq!(
                    open_everything(&home).as_ref(),
                    Ok(&expected),
                    "{kind}, round {round}: a view changed"
                );
                // A sync with the copy that ran ahead converges.
                let (outcome, a, b) = sync(&mut WireRng(round as u64 + 1));
                outcome.unwrap_or_else(|e| panic!("{kind}, round {round}: sync failed: {e}"));
                assert_eq!(a, b, "{kind}, round {round}: the sync did not converge");
                // And this device still writes.
                post_one(&home, &open(&dir), "Still writing.")
                    .unwrap_or_else(|e| panic!("{kind}, round {round}: cannot write: {e}"));
                // A writer mends a damaged actor file.
                assert!(
                    !open(&dir).actor_replaced(),
                    "{kind}, round {round}: the actor file was not mended"
                );
                read
            }))
            .unwrap_or_else(|_| panic!("{kind}, round {round}: a panic or a check failed"));
            if outcome {
                hint_read += 1;
            } else {
                hint_refused += 1;
            }
            std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            copy_dir(&saved, &dir);
            std::fs::write(path, &original).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&other_state, &other_state_bytes).unwrap_or_else(|e| panic!("{e}"));
        }
        eprintln!(
            "corruption, {kind}: {n} mutations: every view unchanged, sync converged, writes \
             went on; the hint itself read {hint_read}, refused {hint_refused}"
        );
    }
}
