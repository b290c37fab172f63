//! Measure bundle sizes for a realistic community: 20 members, 4 responses,
//! 400 comments, 8 drafts edited 30 times each, stances from everyone.
//! Prints the size of a full bundle, of a delta after a week's activity
//! (30 comments and a few edits), and of the raw text for comparison.
//!
//! ```sh
//! cargo run --release --example bundle_size
//! ```

use std::collections::BTreeMap;

use convene::bundle;
use convene::model::response::NewResponse;
use convene::model::views::{ResponseKind, Stance};
use convene::store::bundle::export;
use convene::store::{CommunityStore, Home, Identity};
use convene::trust::{CertBody, Certificate, MemberId, Role, SecretKey};

const NOW: i64 = 1_795_946_400;

fn admit(store: &mut CommunityStore, founder: &Identity, i: usize) -> anyhow::Result<Identity> {
    let key = SecretKey::generate();
    let member = Identity {
        name: format!("Member {i}"),
        member_public: MemberId(key.public()),
        member: Some(key),
        device: std::sync::Arc::new(SecretKey::generate()),
    };
    let id = store.id();
    let founder_key = founder.member_key()?;
    let member_key = member.member_key()?;
    store.add_certificates(&[
        Certificate::issue(
            &id,
            &CertBody::Admit {
                member: member.member_id(),
                name: member.name.clone(),
                role: Role::Member,
                by: founder.member_id(),
                at: NOW,
            },
            &[founder_key],
        ),
        Certificate::issue(
            &id,
            &CertBody::Device {
                member: member.member_id(),
                device: member.device_id(),
                label: "laptop".into(),
                at: NOW,
            },
            &[member_key, &member.device],
        ),
    ])?;
    Ok(member)
}

fn sentence(i: usize) -> String {
    format!(
        "Comment {i}: in our region the monitoring schedule would cost operators about {} hours a month, and we would need shared laboratories to keep up.",
        8 + i % 17
    )
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let home = Home::new(dir.path());
    let founder = home.init("Founder")?;
    let mut store = home.create_community(&founder, "Realistic Network", "", NOW)?;
    let mut members = vec![founder];
    for i in 1..20 {
        let m = admit(&mut store, &members[0], i)?;
        members.push(m);
    }
    let act =
        |who: &Identity,
         work: &mut dyn FnMut(&mut convene::model::Workspace) -> convene::model::Result<()>|
         -> anyhow::Result<()> {
            let mut ws = store.workspace(who, NOW, true);
            work(&mut ws)?;
            store.persist(&mut ws, who)?;
            Ok(())
        };
    let mut text_bytes = 0usize;
    let mut responses = Vec::new();
    for r in 0..4 {
        let mut id = None;
        act(&members[0], &mut |ws| {
            id = Some(ws.open_response(NewResponse {
                kind: ResponseKind::Development,
                title: format!("Development {r}"),
                summary: "A new policy affects our members.".into(),
                source: None,
                requester: None,
                questions: vec![],
                due: None,
            })?);
            Ok(())
        })?;
        responses.push(id.ok_or_else(|| anyhow::anyhow!("no id"))?);
    }
    let mut threads = Vec::new();
    for (r, rid) in responses.iter().enumerate() {
        let mut tid = None;
        act(&members[r + 1], &mut |ws| {
            tid = Some(ws.start_thread(rid, "Discussion", None)?.0);
            Ok(())
        })?;
        threads.push((rid.clone(), tid.ok_or_else(|| anyhow::anyhow!("no id"))?));
    }
    for i in 0..400 {
        let (rid, tid) = &threads[i % threads.len()];
        let body = sentence(i);
        text_bytes += body.len();
        act(&members[i % members.len()], &mut |ws| {
            ws.post(rid, tid, &body, None).map(|_| ())
        })?;
    }
    let mut drafts = Vec::new();
    for d in 0..8 {
        let rid = &responses[d % responses.len()];
        let mut did = None;
        act(&members[d + 2], &mut |ws| {
            did = Some(ws.new_draft(
                rid,
                &format!("Draft {d}"),
                "We support the aims of the policy.",
            )?);
            Ok(())
        })?;
        drafts.push(did.ok_or_else(|| anyhow::anyhow!("no id"))?);
    }
    for (d, did) in drafts.iter().enumerate() {
        let mut body = String::from("We support the aims of the policy.");
        for e in 0..30 {
            body.push_str(&format!(" Point {e}: operators need support and time."));
            let who = &members[(d + e) % members.len()];
            let b = body.clone();
            act(who, &mut |ws| {
                let entry = ws.resolve_draft(did.as_str())?;
                ws.edit_draft(&entry, &b).map(|_| ())
            })?;
        }
        text_bytes += body.len();
    }
    for (i, m) in members.iter().enumerate() {
        let did = &drafts[i % drafts.len()];
        act(m, &mut |ws| {
            let entry = ws.resolve_draft(did.as_str())?;
            ws.take_stance(&entry, Stance::Support, None)
        })?;
    }

    let full = export(&store, &BTreeMap::new(), NOW)?;
    let full_bytes = bundle::encode(&store.id(), &full);
    // What a member who has everything so far would be missing after a week.
    let mut heads = BTreeMap::new();
    for name in store.doc_names()? {
        if let Some(mut l) = store.load_doc(&name, false, NOW)? {
            heads.insert(name, l.doc.get_heads());
        }
    }
    for i in 0..30 {
        let (rid, tid) = &threads[i % threads.len()];
        let body = sentence(1000 + i);
        act(&members[i % members.len()], &mut |ws| {
            ws.post(rid, tid, &body, None).map(|_| ())
        })?;
    }
    let delta = export(&store, &heads, NOW)?;
    let delta_bytes = bundle::encode(&store.id(), &delta);
    println!("community: 20 members, 4 responses, 400 comments, 8 drafts x 30 edits, 20 stances");
    println!("plain text of comments and final drafts: {text_bytes} bytes");
    println!(
        "full bundle: {} bytes ({} certificates, {} changes)",
        full_bytes.len(),
        full.certificates.len(),
        full.changes.len()
    );
    println!(
        "delta bundle after 30 more comments: {} bytes ({} changes)",
        delta_bytes.len(),
        delta.changes.len()
    );
    Ok(())
}
