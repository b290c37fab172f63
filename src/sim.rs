//! A seeded simulation of a whole community on the sans-IO core.
//!
//! K devices, one per member, work through the model for rounds: responses,
//! threads, comments, drafts and edits, stances, amendments and decisions.
//! Facilitators invite new members (invite, claim and device certificates)
//! and remove members (a revocation keeping what the facilitator holds).
//! Between rounds the devices fall into random partitions and sync inside
//! them; some sessions drop part-way, some devices restart. Then the
//! partitions heal, and every device whose member still belongs must hold
//! identical heads and show byte-identical `show` and `tally` views.
//!
//! Everything, ids and keys included, derives from the seed, so a failing
//! run names its seed and replays exactly:
//! `CONVENE_SIM_SEED=<seed> CONVENE_SIM_PEERS=<k> cargo test sim::`.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::{AutoCommit, ChangeHash};

use crate::ids::ObjectId;
use crate::model::response::NewResponse;
use crate::model::views::{AmendmentState, ResponseKind, Stance};
use crate::model::workspace::Writer;
use crate::model::{DocId, DocLoader, LoadError, Workspace};
use crate::sync::harness::{DROPPED, Rng, sync_pair, sync_pair_dropping};
use crate::sync::memory::MemoryReplica;
use crate::sync::{Replica, SyncError};
use crate::trust::{
    CertBody, Certificate, CommunityId, DeviceId, MemberId, Role, SecretKey, VerifiedCert,
};

/// Rounds of work and sync before the partitions heal.
const ROUNDS: usize = 10;

/// Documents copied out of a replica, as a model loader.
struct MemoryDocs(BTreeMap<String, AutoCommit>);

impl DocLoader for MemoryDocs {
    fn load(&mut self, id: &DocId) -> Result<Option<AutoCommit>, LoadError> {
        let Some(doc) = self.0.get_mut(&id.name()) else {
            return Ok(None);
        };
        Ok((!doc.get_heads().is_empty()).then(|| doc.clone()))
    }
}

struct Person {
    member: SecretKey,
    device: SecretKey,
}

/// What a run did, to check that the simulation is not inert.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    ops: usize,
    invites: usize,
    removals: usize,
    sessions: usize,
    dropped: usize,
    restarts: usize,
}

struct World {
    seed: u64,
    rng: Rng,
    id: CommunityId,
    people: Vec<Person>,
    /// Each member's device copy, once they have joined.
    replicas: Vec<Option<MemoryReplica>>,
    facilitators: BTreeSet<usize>,
    removed: BTreeSet<usize>,
    now: i64,
    counts: Counts,
}

fn device_cert(id: &CommunityId, p: &Person) -> Certificate {
    Certificate::issue(
        id,
        &CertBody::Device {
            member: MemberId(p.member.public()),
            device: DeviceId(p.device.public()),
            label: "sim".into(),
            at: 0,
        },
        &[&p.member, &p.device],
    )
}

fn verified(id: &CommunityId, certs: &[Certificate]) -> Vec<VerifiedCert> {
    certs
        .iter()
        .map(|c| c.verify(id).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

impl World {
    fn new(seed: u64, k: usize) -> World {
        crate::ids::seed_random_for_tests(seed);
        let people: Vec<Person> = (0..k)
            .map(|_| Person {
                member: SecretKey::generate(),
                device: SecretKey::generate(),
            })
            .collect();
        let founder = &people[0];
        let (id, genesis) = Certificate::genesis(
            &founder.member,
            &CertBody::Genesis {
                name: "Sim".into(),
                purpose: String::new(),
                founder: MemberId(founder.member.public()),
                founder_name: "P0".into(),
                at: 0,
                nonce: seed.to_string(),
            },
        );
        let mut certs = vec![genesis, device_cert(&id, founder)];
        // About half are members from the start (P1 a facilitator); the
        // others are invited during the run.
        let initial = 1 + (k - 1) / 2;
        let mut facilitators = BTreeSet::from([0]);
        for (i, p) in people.iter().enumerate().take(initial).skip(1) {
            let role = if i == 1 {
                facilitators.insert(1);
                Role::Facilitator
            } else {
                Role::Member
            };
            certs.push(Certificate::issue(
                &id,
                &CertBody::Admit {
                    member: MemberId(p.member.public()),
                    name: format!("P{i}"),
                    role,
                    by: MemberId(founder.member.public()),
                    at: 0,
                },
                &[&founder.member],
            ));
            certs.push(device_cert(&id, p));
        }
        let certs = verified(&id, &certs);
        let replicas = (0..k)
            .map(|i| {
                (i < initial).then(|| {
                    MemoryReplica::new(
                        id,
                        certs.clone(),
                        SecretKey::from_bytes(people[i].device.to_bytes()),
                        [i as u8; 8],
                    )
                    .unwrap_or_else(|e| panic!("{e}"))
                })
            })
            .collect();
        let mut world = World {
            seed,
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            id,
            people,
            replicas,
            facilitators,
            removed: BTreeSet::new(),
            now: 1_000,
            counts: Counts::default(),
        };
        world.act(0, |ws| ws.init_community_doc());
        world
    }

    fn replay(&self) -> String {
        format!(
            "seed {} with {} peers; replay: CONVENE_SIM_SEED={} CONVENE_SIM_PEERS={} cargo test sim::",
            self.seed,
            self.people.len(),
            self.seed,
            self.people.len()
        )
    }

    fn joined(&self) -> Vec<usize> {
        (0..self.people.len())
            .filter(|i| self.replicas[*i].is_some())
            .collect()
    }

    fn workspace(&self, i: usize, writing: bool) -> Option<Workspace> {
        let replica = self.replicas[i].as_ref()?;
        let ws = Workspace::new(
            replica.membership().clone(),
            Box::new(MemoryDocs(replica.docs_copy())),
            self.now,
        );
        Some(if writing {
            ws.with_writer(Writer {
                member: MemberId(self.people[i].member.public()),
                actor: replica.actor(),
            })
        } else {
            ws
        })
    }

    /// Run a model operation as member `i`; keep its changes if it succeeded
    /// (a refused operation changes nothing, as at the command line).
    fn act<T>(
        &mut self,
        i: usize,
        op: impl FnOnce(&mut Workspace) -> crate::model::Result<T>,
    ) -> Option<T> {
        let mut ws = self.workspace(i, true)?;
        let out = op(&mut ws).ok()?;
        let replay = self.replay();
        let replica = self.replicas[i].as_mut()?;
        for (id, changes) in ws.take_new_changes() {
            replica
                .commit_local(&id.name(), &changes)
                .unwrap_or_else(|e| panic!("{replay}: {e}"));
        }
        self.counts.ops += 1;
        Some(out)
    }

    fn read<T>(
        &self,
        i: usize,
        view: impl FnOnce(&mut Workspace) -> crate::model::Result<T>,
    ) -> Option<T> {
        view(&mut self.workspace(i, false)?).ok()
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.below(items.len() as u64) as usize].clone())
    }

    /// One random piece of work by member `i`.
    fn work(&mut self, i: usize) {
        self.now += 1 + self.rng.below(600) as i64;
        let responses: Vec<ObjectId> = self
            .read(i, |ws| ws.index())
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.id)
            .collect();
        let Some(response) = self.pick(&responses) else {
            if self.facilitators.contains(&i) {
                let n = self.rng.next_u64();
                self.act(i, |ws| ws.open_response(development(n)));
            }
            return;
        };
        let n = self.rng.next_u64() % 1000;
        match self.rng.below(12) {
            0 => {
                self.act(i, |ws| ws.open_response(development(n)));
            }
            1 => {
                self.act(i, |ws| {
                    ws.start_thread(&response, &format!("T{n}"), Some("Opening words."))
                });
            }
            2..=4 => {
                let threads: Vec<String> = self
                    .read(i, |ws| ws.threads(&response))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| t.id)
                    .collect();
                if let Some(thread) = self.pick(&threads).and_then(|t| ObjectId::parse(&t)) {
                    self.act(i, |ws| ws.post(&response, &thread, &format!("C{n}"), None));
                }
            }
            5 => {
                self.act(i, |ws| {
                    ws.new_draft(&response, &format!("D{n}"), "We support the aim.")
                });
            }
            6 | 7 => {
                let drafts = self
                    .read(i, |ws| ws.draft_entries(&response))
                    .unwrap_or_default();
                if let Some(entry) = self.pick(&drafts) {
                    if self.rng.chance(50) {
                        self.act(i, |ws| {
                            let text = ws.draft_text(&entry.id)?;
                            ws.edit_draft(&entry, &format!("{text} Point {n}."))
                        });
                    } else {
                        let stance = Stance::ALL[self.rng.below(5) as usize];
                        let reason = stance.needs_reason().then_some("A reason.");
                        self.act(i, |ws| ws.take_stance(&entry, stance, reason));
                    }
                }
            }
            8 => {
                let drafts = self
                    .read(i, |ws| ws.draft_entries(&response))
                    .unwrap_or_default();
                if let Some(entry) = self.pick(&drafts) {
                    self.act(i, |ws| {
                        ws.propose_amendment(&entry, "aim", &format!("goal {n}"), "Clearer.")
                    });
                }
            }
            9 => {
                let proposed: Vec<String> = self
                    .read(i, |ws| ws.amendments(&response))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| a.state == AmendmentState::Proposed)
                    .map(|a| a.id)
                    .collect();
                if let Some(id) = self.pick(&proposed) {
                    let accept = self.rng.chance(60);
                    self.act(i, |ws| ws.decide_amendment(&id, accept));
                }
            }
            10 => self.invite(i),
            _ => {
                if self.rng.chance(40) {
                    self.remove(i);
                }
            }
        }
    }

    /// Facilitator `by` invites someone not yet joined, who joins at once.
    fn invite(&mut self, by: usize) {
        if !self.facilitators.contains(&by) {
            return;
        }
        let waiting: Vec<usize> = (0..self.people.len())
            .filter(|i| self.replicas[*i].is_none())
            .collect();
        let Some(new) = self.pick(&waiting) else {
            return;
        };
        let invite_key = SecretKey::generate();
        let (id, now) = (self.id, self.now);
        let p = &self.people[new];
        let certs = [
            Certificate::issue(
                &id,
                &CertBody::Invite {
                    invite_key: DeviceId(invite_key.public()),
                    role: Role::Member,
                    expires_at: now + 1_000_000,
                    by: MemberId(self.people[by].member.public()),
                    at: now,
                },
                &[&self.people[by].member],
            ),
            Certificate::issue(
                &id,
                &CertBody::Claim {
                    invite_key: DeviceId(invite_key.public()),
                    member: MemberId(p.member.public()),
                    name: format!("P{new}"),
                    at: now,
                },
                &[&invite_key, &p.member],
            ),
            device_cert(&id, p),
        ];
        let device = SecretKey::from_bytes(p.device.to_bytes());
        let Some(inviter) = self.replicas[by].as_mut() else {
            return;
        };
        if inviter.add_certificates(&certs).is_err() {
            return;
        }
        let joined = MemoryReplica::new(
            id,
            inviter.verified_certs().to_vec(),
            device,
            [new as u8; 8],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.replicas[new] = Some(joined);
        self.counts.invites += 1;
    }

    /// Facilitator `by` removes a member (never the founder), keeping the
    /// member's changes `by` holds.
    fn remove(&mut self, by: usize) {
        if !self.facilitators.contains(&by) || self.removed.len() * 3 >= self.people.len() {
            return;
        }
        let candidates: Vec<usize> = self
            .joined()
            .into_iter()
            .filter(|m| *m != 0 && *m != by && !self.removed.contains(m))
            .collect();
        let Some(m) = self.pick(&candidates) else {
            return;
        };
        let (id, now) = (self.id, self.now);
        let member = MemberId(self.people[m].member.public());
        let device = DeviceId(self.people[m].device.public());
        let by_key = SecretKey::from_bytes(self.people[by].member.to_bytes());
        let Some(remover) = self.replicas[by].as_mut() else {
            return;
        };
        let revoke = Certificate::issue(
            &id,
            &CertBody::Revoke {
                member,
                reason: "simulated".into(),
                by: MemberId(by_key.public()),
                at: now,
                cutoff: remover.changes_by(&device),
            },
            &[&by_key],
        );
        if remover.add_certificates(&[revoke]).is_ok() {
            self.removed.insert(m);
            self.facilitators.remove(&m);
            self.counts.removals += 1;
        }
    }

    /// One session between `a` and `b`; it may drop part-way.
    fn session(&mut self, a: usize, b: usize, may_drop: bool) -> usize {
        let drop_after = (may_drop && self.rng.chance(15)).then(|| self.rng.below(12) as usize);
        let (Some(mut ra), Some(mut rb)) = (self.replicas[a].take(), self.replicas[b].take())
        else {
            panic!(
                "{}: session with a device that has not joined",
                self.replay()
            );
        };
        let (da, db) = (
            DeviceId(self.people[a].device.public()),
            DeviceId(self.people[b].device.public()),
        );
        if std::env::var("CONVENE_TRACE_FRAMES").is_ok() {
            eprintln!("session a=P{a} b=P{b} drop={drop_after:?}");
        }
        let result = match drop_after {
            Some(frames) => sync_pair_dropping(&mut ra, da, &mut rb, db, &mut self.rng, frames),
            None => sync_pair(&mut ra, da, &mut rb, db, &mut self.rng),
        };
        self.replicas[a] = Some(ra);
        self.replicas[b] = Some(rb);
        self.counts.sessions += 1;
        let involves_removed = self.removed.contains(&a) || self.removed.contains(&b);
        match result {
            Ok((sa, sb)) => {
                sa.received_changes + sb.received_changes + sa.certificates + sb.certificates
            }
            Err(SyncError::Protocol(m)) if m == DROPPED => {
                self.counts.dropped += 1;
                0
            }
            Err(SyncError::Refused(_) | SyncError::RefusedByPeer(_)) if involves_removed => 0,
            Err(e) => panic!("{}: session P{a}–P{b} failed: {e}", self.replay()),
        }
    }

    /// Random partitions, sessions inside them, restarts.
    fn sync_phase(&mut self) {
        let joined = self.joined();
        let parts = 1 + self.rng.below(3);
        let mut groups: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for i in joined {
            groups.entry(self.rng.below(parts)).or_default().push(i);
        }
        for group in groups.into_values() {
            if group.len() < 2 {
                continue;
            }
            for _ in 0..group.len() {
                let a = group[self.rng.below(group.len() as u64) as usize];
                let b = group[self.rng.below(group.len() as u64) as usize];
                if a != b {
                    self.session(a, b, true);
                }
            }
        }
        for i in self.joined() {
            if self.rng.chance(8) {
                if let Some(r) = self.replicas[i].as_mut() {
                    r.restart();
                }
                self.counts.restarts += 1;
            }
        }
    }

    fn live(&self) -> Vec<usize> {
        self.joined()
            .into_iter()
            .filter(|i| !self.removed.contains(i))
            .collect()
    }

    /// Every pair of live devices syncs, until a whole pass moves nothing.
    fn heal(&mut self) {
        if std::env::var("CONVENE_TRACE_FRAMES").is_ok() {
            eprintln!("=== heal");
        }
        let live = self.live();
        for _ in 0..8 {
            let mut moved = 0;
            for (x, a) in live.iter().enumerate() {
                for b in &live[x + 1..] {
                    moved += self.session(*a, *b, false);
                }
            }
            if moved == 0 {
                return;
            }
        }
        panic!("{}: still moving changes after 8 passes", self.replay());
    }

    fn heads(&mut self, i: usize) -> BTreeMap<String, Vec<ChangeHash>> {
        let replica = self.replicas[i]
            .as_mut()
            .unwrap_or_else(|| panic!("P{i} has no replica"));
        replica
            .all_heads()
            .into_iter()
            .filter(|(_, h)| !h.is_empty())
            .collect()
    }

    /// `show` and `tally` of every response, as JSON text.
    fn views(&self, i: usize) -> String {
        let replay = self.replay();
        let fail = |e: crate::model::ModelError| -> ! { panic!("{replay}: P{i}: {e}") };
        let Some(mut ws) = self.workspace(i, false) else {
            panic!("{replay}: P{i} has no replica");
        };
        let mut out = String::new();
        for entry in ws.index().unwrap_or_else(|e| fail(e)) {
            let show = ws.show(&entry.id).unwrap_or_else(|e| fail(e));
            let tally = ws.tally(&entry.id).unwrap_or_else(|e| fail(e));
            out.push_str(&serde_json::to_string(&show).unwrap_or_default());
            out.push_str(&serde_json::to_string(&tally).unwrap_or_default());
        }
        out
    }

    /// Why `i` and `j` differ: the changes one holds and the other lacks,
    /// with what the other's rules say of them.
    fn explain(&mut self, i: usize, j: usize) -> String {
        let mut out = String::new();
        for (have, lack) in [(i, j), (j, i)] {
            let names: Vec<String> = self.heads(have).into_keys().collect();
            for name in names {
                let theirs: BTreeSet<ChangeHash> = self.replicas[lack]
                    .as_mut()
                    .map(|r| {
                        r.changes_of(&name)
                            .into_iter()
                            .map(|(c, _)| c.hash())
                            .collect()
                    })
                    .unwrap_or_default();
                let Some(ours) = self.replicas[have].as_mut().map(|r| r.changes_of(&name)) else {
                    continue;
                };
                let Some(rules) = self.replicas[lack].as_ref().map(|r| r.membership().clone())
                else {
                    continue;
                };
                for (change, sig) in ours {
                    if theirs.contains(&change.hash()) {
                        continue;
                    }
                    let verdict = sig.map(|sig| {
                        crate::trust::signed_change::verify_signed(
                            &rules,
                            &name,
                            change.actor_id().to_bytes(),
                            &change.hash().0,
                            &sig,
                        )
                        .map(|(_, standing)| standing)
                        .and_then(|s| {
                            crate::trust::ownership::check_ownership(&rules, &name, &change)
                                .map(|_| s)
                        })
                    });
                    let author =
                        crate::trust::signed_change::device_of_actor(change.actor_id().to_bytes())
                            .and_then(|d| {
                                self.people
                                    .iter()
                                    .position(|p| DeviceId(p.device.public()) == d)
                            });
                    out.push_str(&format!(
                        "\n  P{have} has {name} {} by P{author:?} ({} deps) that P{lack} lacks: {verdict:?}",
                        &change.hash().to_string()[..8],
                        change.deps().len()
                    ));
                }
            }
        }
        out
    }

    fn check_converged(&mut self) {
        let live = self.live();
        let first = live[0];
        let (heads, views) = (self.heads(first), self.views(first));
        for &i in &live[1..] {
            if self.heads(i) != heads {
                let why = self.explain(i, first);
                panic!("{}: heads of P{i} and P{first} differ:{why}", self.replay());
            }
            assert_eq!(
                self.views(i),
                views,
                "{}: views of P{i} and P{first}",
                self.replay()
            );
        }
    }
}

fn development(n: u64) -> NewResponse {
    NewResponse {
        kind: ResponseKind::Development,
        title: format!("R{}", n % 1000),
        summary: "Something happened.".into(),
        source: None,
        requester: None,
        questions: Vec::new(),
        due: None,
    }
}

/// One whole run.
fn run(seed: u64, k: usize) -> Counts {
    let mut world = World::new(seed, k);
    for _ in 0..ROUNDS {
        for i in world.joined() {
            for _ in 0..1 + world.rng.below(3) {
                world.work(i);
            }
        }
        world.sync_phase();
    }
    world.heal();
    world.check_converged();
    world.counts
}

/// The seeds to run: `CONVENE_SIM_SEED` alone, or `CONVENE_SIM_SEEDS` of
/// them (100 by default).
fn seeds() -> std::ops::Range<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match var("CONVENE_SIM_SEED") {
        Some(seed) => seed..seed + 1,
        None => 1..1 + var("CONVENE_SIM_SEEDS").unwrap_or(100),
    }
}

fn run_all(k: usize) {
    if let Some(only) = std::env::var("CONVENE_SIM_PEERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        && only != k
    {
        return;
    }
    let mut total = Counts::default();
    let started = std::time::Instant::now();
    let runs = seeds().count();
    for seed in seeds() {
        let counts = catch_unwind(AssertUnwindSafe(|| run(seed, k))).unwrap_or_else(|_| {
            panic!("the simulation failed: seed {seed} with {k} peers; replay: CONVENE_SIM_SEED={seed} CONVENE_SIM_PEERS={k} cargo test sim::")
        });
        total.ops += counts.ops;
        total.invites += counts.invites;
        total.removals += counts.removals;
        total.sessions += counts.sessions;
        total.dropped += counts.dropped;
        total.restarts += counts.restarts;
    }
    eprintln!(
        "sim K={k}: {runs} seeds converged in {:.1} s: {total:?}",
        started.elapsed().as_secs_f64()
    );
    // The simulation must exercise what it claims to.
    assert!(total.ops > 0 && total.sessions > 0, "{total:?}");
    if runs >= 20 {
        assert!(
            total.invites > 0 && total.dropped > 0 && total.restarts > 0,
            "{total:?}"
        );
        if k >= 3 {
            assert!(total.removals > 0, "{total:?}");
        }
    }
}

#[test]
fn two_peers_converge_after_partitions() {
    run_all(2);
}

#[test]
fn three_peers_converge_after_partitions() {
    run_all(3);
}

#[test]
fn five_peers_converge_after_partitions() {
    run_all(5);
}

#[test]
fn eight_peers_converge_after_partitions() {
    run_all(8);
}
