//! `demo`: a whole joint response among simulated members, in a temporary
//! home, ending with the published response and its offline verification.
//!
//! Until peer-to-peer sync lands, the members share one store: the founder
//! admits the others with signed certificates, and each acts through their
//! own device key, so every change is signed by its real author exactly as it
//! would be on their own device.

use super::output::{Ctx, print_stdout};
use crate::ids::ObjectId;
use crate::model::Workspace;
use crate::model::export::{to_markdown, verify_export};
use crate::model::response::NewResponse;
use crate::model::views::{ResponseKind, Stance};
use crate::store::{CommunityStore, Home, Identity};
use crate::trust::{CertBody, Certificate, Role, SecretKey};

fn act<T>(
    store: &CommunityStore,
    who: &Identity,
    now: i64,
    work: impl FnOnce(&mut Workspace) -> crate::model::Result<T>,
) -> anyhow::Result<T> {
    let mut ws = store.workspace(who, now, true);
    let out = work(&mut ws)?;
    store.persist(&mut ws, who)?;
    Ok(out)
}

fn admit(
    store: &mut CommunityStore,
    founder: &Identity,
    name: &str,
    role: Role,
    now: i64,
) -> anyhow::Result<Identity> {
    let member = Identity {
        name: name.to_string(),
        member: SecretKey::generate(),
        device: SecretKey::generate(),
    };
    let id = store.id();
    store.add_certificates(&[
        Certificate::issue(
            &id,
            &CertBody::Admit {
                member: member.member_id(),
                name: name.to_string(),
                role,
                by: founder.member_id(),
                at: now,
            },
            &[&founder.member],
        ),
        Certificate::issue(
            &id,
            &CertBody::Device {
                member: member.member_id(),
                device: member.device_id(),
                label: format!("{name}'s laptop"),
                at: now,
            },
            &[&member.member, &member.device],
        ),
    ])?;
    Ok(member)
}

/// `convene demo`
pub fn demo(ctx: &Ctx) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let home = Home::new(dir.path());
    let now = ctx.now;
    let say = |text: &str| ctx.progress(&format!("▸ {text}"));

    let ana = home.init("Ana")?;
    let mut store = home.create_community(
        &ana,
        "Water Commons Network",
        "Field practitioners of community water systems",
        now,
    )?;
    say(&format!(
        "Ana founds 'Water Commons Network' ({}) in {}",
        store.id().short(),
        dir.path().display()
    ));
    let bo = admit(&mut store, &ana, "Bo", Role::Member, now)?;
    let chen = admit(&mut store, &ana, "Chen", Role::Member, now)?;
    let _dina = admit(&mut store, &ana, "Dina", Role::Member, now)?;
    say("Ana admits Bo, Chen and Dina");

    let rid = act(&store, &ana, now, |ws| {
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
    say("Ana opens a request for opinion with two questions");

    let (tid, first) = act(&store, &bo, now, |ws| {
        ws.start_thread(
            &rid,
            "Monitoring load",
            Some("Weekly sampling would take two days a month from our operators."),
        )
    })?;
    let first = first.unwrap_or_else(ObjectId::random);
    act(&store, &chen, now, |ws| {
        ws.post(
            &rid,
            &tid,
            "Same in our valley; shared regional labs would halve that.",
            Some(first.as_str()),
        )
    })?;
    act(&store, &ana, now, |ws| {
        ws.post(&rid, &tid, "Let us propose a tiered schedule.", None)
    })?;
    say("Bo, Chen and Ana discuss in a thread");

    let draft_a = act(&store, &bo, now, |ws| {
        ws.new_draft(
            &rid,
            "Tiered monitoring",
            "We support the aims of the rules. Monitoring should be weekly for large systems and monthly for systems under 10,000 people. Operators need two years of funded training.",
        )
    })?;
    let draft_b = act(&store, &chen, now, |ws| {
        ws.new_draft(
            &rid,
            "Regional labs first",
            "We ask for shared regional laboratories before any new monitoring duty applies.",
        )
    })?;
    say("Bo and Chen write competing drafts");

    let entry_a = act(&store, &ana, now, |ws| ws.resolve_draft(draft_a.as_str()))?;
    let entry_b = act(&store, &ana, now, |ws| ws.resolve_draft(draft_b.as_str()))?;
    let accepted = act(&store, &chen, now, |ws| {
        ws.propose_amendment(
            &entry_a,
            "two years of funded training",
            "two years of funded training and access to shared regional laboratories",
            "Labs are the real bottleneck.",
        )
    })?;
    let rejected = act(&store, &bo, now, |ws| {
        ws.propose_amendment(
            &entry_a,
            "We support the aims",
            "We welcome the aims",
            "Warmer tone.",
        )
    })?;
    act(&store, &ana, now, |ws| {
        ws.take_stance(&entry_a, Stance::Support, None)
    })?;
    act(&store, &ana, now, |ws| {
        ws.decide_amendment(accepted.as_str(), true)
    })?;
    act(&store, &ana, now, |ws| {
        ws.decide_amendment(rejected.as_str(), false)
    })?;
    say(
        "Chen's amendment is accepted, Bo's rejected (kept on record); Ana's earlier stance is now stale",
    );

    act(&store, &ana, now, |ws| {
        ws.take_stance(&entry_a, Stance::Support, None)
    })?;
    act(&store, &bo, now, |ws| {
        ws.take_stance(
            &entry_a,
            Stance::Reservations,
            Some("Monthly may still be too often in winter."),
        )
    })?;
    act(&store, &chen, now, |ws| {
        ws.take_stance(
            &entry_a,
            Stance::Object,
            Some("Without labs first, duties land on operators."),
        )
    })?;
    act(&store, &chen, now, |ws| {
        ws.take_stance(&entry_b, Stance::Support, None)
    })?;
    say(
        "Stances: Ana supports, Bo has reservations, Chen objects and supports the other draft; Dina has not been heard",
    );

    act(&store, &ana, now, |ws| {
        ws.publish(&rid, &draft_a, &ana.member)
    })?;
    for who in [&ana, &bo, &chen] {
        act(&store, who, now, |ws| ws.endorse(&rid, &who.member, None))?;
    }
    say("Ana publishes draft A with the dissent annex; Ana, Bo and Chen endorse it");

    let mut ws = store.workspace(&ana, now, false);
    let exported = ws.export(&rid, &store.certificate_bytes())?;
    let markdown = to_markdown(&exported);
    let report = verify_export(&markdown);
    if ctx.json {
        print_stdout(&(serde_json::to_string_pretty(&exported)? + "\n"))?;
    } else {
        print_stdout(&markdown)?;
    }
    let checks = report.checks.len();
    if report.ok {
        say(&format!(
            "verify: all {checks} checks hold (text hash, statement, {} endorsements)",
            exported.endorsements.len()
        ));
        Ok(())
    } else {
        Err(anyhow::anyhow!("the demo's own export failed verification"))
    }
}
