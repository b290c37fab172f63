//! `demo`: a whole joint response among three simulated members, each with
//! their own temporary home and their own iroh endpoint on 127.0.0.1, joining
//! by invite and syncing over real peer-to-peer connections. It ends with the
//! published response, its range of views and its offline verification, and
//! leaves nothing behind.

use std::net::SocketAddr;
use std::time::Duration;

use iroh::Endpoint;

use super::invite::make_invite;
use super::output::{Ctx, print_stdout};
use crate::ids::ObjectId;
use crate::model::Workspace;
use crate::model::export::{to_markdown, verify_export};
use crate::model::response::NewResponse;
use crate::model::views::{ResponseKind, Stance};
use crate::net::endpoint::bind;
use crate::net::join::{accept_join, join, read_join_request};
use crate::net::{Exclusive, Gate, PeerTicket, RelayChoice, accept_sync, sync_with};
use crate::store::{CommunityStore, Home, Identity};
use crate::trust::Role;

const IDLE: Duration = Duration::from_secs(20);

/// One simulated member: a home, an open community and an endpoint.
struct Member {
    identity: Identity,
    store: CommunityStore,
    endpoint: Endpoint,
}

impl Member {
    fn ticket(&self) -> PeerTicket {
        PeerTicket {
            device: self.identity.device_id().0,
            addrs: self.endpoint.addr().ip_addrs().copied().collect(),
        }
    }

    /// Act through the model as this member, then sign and persist.
    fn act<T>(
        &mut self,
        now: i64,
        work: impl FnOnce(&mut Workspace) -> crate::model::Result<T>,
    ) -> anyhow::Result<T> {
        let mut ws = self.store.workspace(&self.identity, now, true);
        let out = work(&mut ws)?;
        self.store.persist(&mut ws, &self.identity)?;
        Ok(out)
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The member's community, opened afresh for a session.
fn access(store: &CommunityStore, now: i64) -> anyhow::Result<Exclusive> {
    let mut fresh = CommunityStore::open(store.dir(), store.id())?;
    if let Some(device) = store.device() {
        fresh = fresh.with_device(device.clone());
    }
    Ok(Exclusive::new(fresh, now))
}

/// `b` dials `a`; both run their side of the session concurrently.
async fn sync_pair(a: &mut Member, b: &mut Member, now: i64) -> anyhow::Result<usize> {
    let target = a.ticket();
    let (access_a, access_b) = (access(&a.store, now)?, access(&b.store, now)?);
    let (served, dialed) = tokio::join!(
        async {
            let incoming = a
                .endpoint
                .accept()
                .await
                .ok_or_else(|| anyhow::anyhow!("endpoint closed"))?;
            let conn = incoming.await?;
            anyhow::Ok(accept_sync(conn, &access_a, IDLE).await)
        },
        sync_with(&b.endpoint, &target, &access_b, IDLE)
    );
    a.store = access_a.into_store();
    b.store = access_b.into_store();
    let served = served?;
    if let Some(e) = dialed.error.as_ref().or(served.error.as_ref()) {
        anyhow::bail!("sync failed: {e}");
    }
    Ok(dialed.received_changes + served.received_changes)
}

/// A new member joins through `inviter`'s endpoint with a fresh invite.
async fn join_via(
    inviter: &mut Member,
    root: &std::path::Path,
    name: &str,
    now: i64,
) -> anyhow::Result<Member> {
    let home = Home::new(root.join(name.to_lowercase()));
    let identity = home.init(name)?;
    let address = inviter.ticket();
    let ticket = make_invite(
        &mut inviter.store,
        &inviter.identity,
        Role::Member,
        now + 86_400,
        now,
        address,
    )?;
    let temporary = bind(
        &identity.device,
        loopback(),
        &RelayChoice::Off,
        Gate::default(),
    )
    .await?;
    let communities = home.root().join("communities");
    let inviter_access = access(&inviter.store, now)?;
    let (accepted, joined) = tokio::join!(
        async {
            let incoming = inviter
                .endpoint
                .accept()
                .await
                .ok_or_else(|| anyhow::anyhow!("endpoint closed"))?;
            let conn = incoming.await?;
            let start = read_join_request(conn, IDLE)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            accept_join(start, &inviter_access, &inviter.identity, now, IDLE)
                .await
                .map_err(|e| anyhow::anyhow!(e))
        },
        join(&temporary, &ticket, &identity, &communities, now, IDLE)
    );
    inviter.store = inviter_access.into_store();
    temporary.close().await;
    accepted?;
    let store = joined?.store;
    home.set_current(&store.id())?;
    let endpoint = bind(
        &identity.device,
        loopback(),
        &RelayChoice::Off,
        Gate::for_store(&store),
    )
    .await?;
    Ok(Member {
        identity,
        store,
        endpoint,
    })
}

/// `convene demo`
pub fn demo(ctx: &Ctx) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    super::peer::runtime()?.block_on(run(ctx, dir.path()))
}

async fn run(ctx: &Ctx, root: &std::path::Path) -> anyhow::Result<()> {
    let now = ctx.now;
    let live = super::progress::Progress::start(ctx, "demo running", None);
    let say = |text: &str| live.say(ctx, &format!("▸ {text}"));

    let home = Home::new(root.join("ana"));
    let identity = home.init("Ana")?;
    let store = home.create_community(
        &identity,
        "Water Commons Network",
        "Field practitioners of community water systems",
        now,
    )?;
    let endpoint = bind(
        &identity.device,
        loopback(),
        &RelayChoice::Off,
        Gate::for_store(&store),
    )
    .await?;
    let mut ana = Member {
        identity,
        store,
        endpoint,
    };
    say(&format!(
        "Ana founds 'Water Commons Network' ({}); her device listens on {}",
        ana.store.id().short(),
        ana.ticket()
            .addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut bo = join_via(&mut ana, root, "Bo", now).await?;
    let mut chen = join_via(&mut ana, root, "Chen", now).await?;
    let dina = join_via(&mut ana, root, "Dina", now).await?;
    say("Bo, Chen and Dina join with one-time invites, each from their own home and endpoint");

    let rid = ana.act(now, |ws| {
        ws.open_response(NewResponse {
            kind: ResponseKind::Request,
            title: "Consultation on water reuse in small municipalities".into(),
            summary:
                "The Commission asks practitioners how the new reuse rules would work in the field."
                    .into(),
            source: None,
            requester: Some("European Commission, DG Environment".into()),
            questions: vec![
                "Are the monitoring duties proportionate for systems under 10,000 people?".into(),
                "What support would operators need in the first two years?".into(),
            ],
            due: Some("2027-01-15".into()),
        })
    })?;
    sync_pair(&mut ana, &mut bo, now).await?;
    sync_pair(&mut ana, &mut chen, now).await?;
    say("Ana opens a request for opinion with two questions; Bo and Chen sync it");

    let (tid, first) = bo.act(now, |ws| {
        ws.start_thread(
            &rid,
            "Monitoring load",
            Some("Weekly sampling would take two days a month from our operators."),
        )
    })?;
    let first = first.unwrap_or_else(ObjectId::random);
    let draft_a = bo.act(now, |ws| {
        ws.new_draft(
            &rid,
            "Tiered monitoring",
            "We support the aims of the rules. Monitoring should be weekly for large systems and monthly for systems under 10,000 people. Operators need two years of funded training.",
        )
    })?;
    sync_pair(&mut ana, &mut bo, now).await?;
    sync_pair(&mut ana, &mut chen, now).await?;
    chen.act(now, |ws| {
        ws.post(
            &rid,
            &tid,
            "Same in our valley; shared regional labs would halve that.",
            Some(first.as_str()),
        )
    })?;
    let draft_b = chen.act(now, |ws| {
        ws.new_draft(
            &rid,
            "Regional labs first",
            "We ask for shared regional laboratories before any new monitoring duty applies.",
        )
    })?;
    let entry_a = chen.act(now, |ws| ws.resolve_draft(draft_a.as_str()))?;
    let accepted = chen.act(now, |ws| {
        ws.propose_amendment(
            &entry_a,
            "two years of funded training",
            "two years of funded training and access to shared regional laboratories",
            "Labs are the real bottleneck.",
        )
    })?;
    sync_pair(&mut ana, &mut chen, now).await?;
    sync_pair(&mut ana, &mut bo, now).await?;
    say(
        "Bo starts a thread and a draft; Chen replies, writes a competing draft and proposes an amendment",
    );

    let rejected = bo.act(now, |ws| {
        ws.propose_amendment(
            &entry_a,
            "We support the aims",
            "We welcome the aims",
            "Warmer tone.",
        )
    })?;
    bo.act(now, |ws| ws.decide_amendment(accepted.as_str(), true))?;
    bo.act(now, |ws| ws.decide_amendment(rejected.as_str(), false))?;
    sync_pair(&mut ana, &mut bo, now).await?;
    sync_pair(&mut ana, &mut chen, now).await?;
    say("Bo, the draft's creator, accepts Chen's amendment and withdraws his own (kept on record)");

    let entry_b = ana.act(now, |ws| ws.resolve_draft(draft_b.as_str()))?;
    ana.act(now, |ws| ws.take_stance(&entry_a, Stance::Support, None))?;
    bo.act(now, |ws| {
        ws.take_stance(
            &entry_a,
            Stance::Reservations,
            Some("Monthly may still be too often in winter."),
        )
    })?;
    chen.act(now, |ws| {
        ws.take_stance(
            &entry_a,
            Stance::Object,
            Some("Without labs first, duties land on operators."),
        )
    })?;
    chen.act(now, |ws| ws.take_stance(&entry_b, Stance::Support, None))?;
    sync_pair(&mut ana, &mut bo, now).await?;
    sync_pair(&mut ana, &mut chen, now).await?;
    say(
        "Stances: Ana supports, Bo has reservations, Chen objects and supports the other draft; Dina is silent",
    );

    let ana_key = crate::trust::SecretKey::from_bytes(ana.identity.member_key()?.to_bytes());
    ana.act(now, |ws| ws.publish(&rid, &draft_a, &ana_key))?;
    sync_pair(&mut ana, &mut bo, now).await?;
    sync_pair(&mut ana, &mut chen, now).await?;
    for m in [&mut ana, &mut bo, &mut chen] {
        let key = crate::trust::SecretKey::from_bytes(m.identity.member_key()?.to_bytes());
        m.act(now, |ws| ws.endorse(&rid, &key, None))?;
    }
    sync_pair(&mut ana, &mut bo, now).await?;
    sync_pair(&mut ana, &mut chen, now).await?;
    sync_pair(&mut ana, &mut bo, now).await?;
    say(
        "Ana publishes with the dissent annex; Ana, Bo and Chen endorse it, each on their own device",
    );

    let mut exports = Vec::new();
    for m in [&ana, &bo, &chen] {
        let mut ws = m.store.workspace(&m.identity, now, false);
        exports.push(serde_json::to_string(
            &ws.export(&rid, &m.store.certificate_bytes())?,
        )?);
    }
    if exports.iter().any(|e| *e != exports[0]) {
        anyhow::bail!("the members' copies did not converge");
    }
    say("All three copies hold byte-identical exports");

    let mut ws = chen.store.workspace(&chen.identity, now, false);
    let exported = ws.export(&rid, &chen.store.certificate_bytes())?;
    let markdown = to_markdown(&exported);
    let report = verify_export(&markdown);
    live.stop();
    if ctx.json {
        print_stdout(&(serde_json::to_string_pretty(&exported)? + "\n"))?;
    } else {
        print_stdout(&markdown)?;
    }
    for m in [ana, bo, chen, dina] {
        m.endpoint.close().await;
    }
    if report.ok {
        say(&format!(
            "verify: all {} checks hold (text hash, statement, {} endorsements)",
            report.checks.len(),
            exported.endorsements.len()
        ));
        Ok(())
    } else {
        Err(anyhow::anyhow!("the demo's own export failed verification"))
    }
}
