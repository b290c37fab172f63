//! Bundles: the same verified bytes as sync, carried in a file.

use crate::common::{TestHome, joined_offline};

fn path(home: &TestHome, name: &str) -> String {
    home.path().join(name).to_string_lossy().into_owned()
}

fn snapshot(home: &TestHome, rid: &str) -> (String, String) {
    (
        home.ok(&["--json", "show", rid]).stdout,
        home.ok(&["--json", "members"]).stdout,
    )
}

#[test]
fn a_bundle_carries_changes_and_refuses_tampering() {
    // Ana and Bo met once on the network; from then on only files travel.
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views", "-m", "Ana's view."]).id();
    let bo = TestHome::new();
    bo.ok(&["init", "--name", "Bo"]);
    let bundle_a = path(&ana, "a.bundle");
    ana.ok(&["bundle", "export", "-o", &bundle_a]);
    // Bo cannot import a community he is not in: he needs its certificates.
    bo.fails(4, &["bundle", "import", &bundle_a]);

    // Ana's second home stands in for a member who joined earlier.
    let ana2 = TestHome::founded("Other");
    let r = ana2.fails(4, &["bundle", "import", &bundle_a]);
    assert!(r.stderr.contains("belongs to community"), "{}", r.stderr);
    let r = ana2.fails(4, &["-c", "Water Network", "bundle", "import", &bundle_a]);
    assert!(r.stderr.contains("belongs to community"), "{}", r.stderr);

    // Ana posts more and exports again; importing into a copy of her own
    // home is idempotent.
    ana.ok(&["post", &tid, "-m", "A second thought."]);
    ana.ok(&["bundle", "export", "-o", &bundle_a]);
    let report = ana.ok(&["--json", "bundle", "import", &bundle_a]).json();
    assert_eq!(report["applied_changes"], 0);
    assert_eq!(report["certificates"], 0);

    // Tampering: every truncation and a flipped bit in each section are
    // refused with exit 4 and change nothing.
    let bytes = std::fs::read(&bundle_a).unwrap_or_default();
    let before = snapshot(&ana, &rid);
    let tampered = path(&ana, "t.bundle");
    let cuts = [0, 8, 40, 72, bytes.len() / 2, bytes.len() - 1];
    for cut in cuts {
        std::fs::write(&tampered, &bytes[..cut]).unwrap_or_else(|e| panic!("{e}"));
        ana.fails(4, &["bundle", "import", &tampered]);
    }
    for pos in [3, 20, 50, 80, bytes.len() - 3] {
        let mut b = bytes.clone();
        b[pos] ^= 0x10;
        std::fs::write(&tampered, &b).unwrap_or_else(|e| panic!("{e}"));
        ana.fails(4, &["bundle", "import", &tampered]);
    }
    assert_eq!(
        snapshot(&ana, &rid),
        before,
        "the store is exactly as it was"
    );
}

#[test]
fn a_bundle_with_a_forged_signature_is_refused_whole() {
    use convene::bundle;
    use convene::trust::CommunityId;
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    ana.ok(&["thread", &rid, "Views", "-m", "Ana's view."]);
    let file = path(&ana, "a.bundle");
    ana.ok(&["bundle", "export", "-o", &file]);
    let bytes = std::fs::read(&file).unwrap_or_default();
    let id = bundle::community_of(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut content = bundle::decode(&bytes, &id).unwrap_or_else(|e| panic!("{e}"));
    // Re-encode with one signature altered: the checksum is valid again, the
    // signature is not.
    let last = content.changes.len() - 1;
    content.changes[last].1.0[0] ^= 1;
    std::fs::write(&file, bundle::encode(&CommunityId(id.0), &content))
        .unwrap_or_else(|e| panic!("{e}"));
    let before = ana.ok(&["--json", "show", &rid]).stdout;
    let r = ana.fails(4, &["bundle", "import", &file]);
    assert!(r.stderr.contains("bad signature"), "{}", r.stderr);
    assert_eq!(ana.ok(&["--json", "show", &rid]).stdout, before);
}

#[test]
fn two_members_complete_a_joint_response_with_bundles_only() {
    let ana = TestHome::founded("Ana");
    // The inviter's address leads nowhere: this community has no network.
    let ticket = ana.ok(&["invite", "--addr", "127.0.0.1:9"]).id();
    let bo = TestHome::new();
    bo.ok(&["init", "--name", "Bo"]);
    let pending = bo
        .ok(&[
            "--json",
            "join",
            &ticket,
            "--bind",
            "127.0.0.1:0",
            "--timeout",
            "1",
        ])
        .json();
    assert_eq!(pending["pending"], true);

    let rid = ana
        .ok(&[
            "open",
            "request",
            "Consultation",
            "--from",
            "Ministry",
            "--question",
            "Q1?",
            "--question",
            "Q2?",
            "--due",
            "2027-02-01",
        ])
        .id();
    let tid = ana
        .ok(&["thread", &rid, "Views", "-m", "What do you see?"])
        .id();
    let a1 = path(&ana, "a1.bundle");
    ana.ok(&["bundle", "export", "-o", &a1]);

    let report = bo.ok(&["--json", "bundle", "import", &a1]).json();
    assert!(report["applied_changes"].as_u64() >= Some(3), "{report}");
    bo.ok(&["post", &tid, "-m", "Field teams see delays."]);
    let did = bo
        .ok(&[
            "draft",
            "new",
            &rid,
            "Answer",
            "-m",
            "We answer both questions.",
        ])
        .id();
    bo.ok(&["stance", &did, "support"]);
    let b1 = path(&bo, "b1.bundle");
    bo.ok(&["bundle", "export", "-o", &b1]);

    let report = ana.ok(&["--json", "bundle", "import", &b1]).json();
    assert_eq!(
        report["held_back"], 0,
        "Bo's claim travels with his changes: {report}"
    );
    assert!(report["certificates"].as_u64() >= Some(2));
    ana.ok(&["stance", &did, "reservations", "-m", "Add figures."]);
    ana.ok(&["publish", &rid, "--draft", &did]);
    ana.ok(&["endorse", &rid]);
    let a2 = path(&ana, "a2.bundle");
    let full = ana.ok(&["--json", "bundle", "export", "-o", &a2]).json();
    // Ana knows from Bo's own bundle what Bo holds: the delta is smaller.
    let delta = ana
        .ok(&["--json", "bundle", "export", "-o", &a2, "--for", "Bo"])
        .json();
    assert!(
        delta["changes"].as_u64() < full["changes"].as_u64(),
        "{delta} vs {full}"
    );
    assert!(
        delta["changes"].as_u64() >= Some(3),
        "stance, publication, endorsement: {delta}"
    );
    bo.ok(&["bundle", "import", &a2]);
    bo.ok(&["endorse", &rid]);
    let b2 = path(&bo, "b2.bundle");
    bo.ok(&["bundle", "export", "-o", &b2]);
    ana.ok(&["bundle", "import", &b2]);
    // Importing the same bundle twice changes nothing.
    assert_eq!(
        ana.ok(&["--json", "bundle", "import", &b2]).json()["applied_changes"],
        0
    );

    for args in [
        ["--json", "show", rid.as_str()],
        ["--json", "tally", rid.as_str()],
    ] {
        assert_eq!(ana.ok(&args).stdout, bo.ok(&args).stdout, "{args:?}");
    }
    let shown = ana.ok(&["--json", "show", &rid]).json();
    assert_eq!(shown["status"], "published");
    assert_eq!(
        shown["outcome"]["endorsements"].as_array().map(|e| e.len()),
        Some(2)
    );
}

#[test]
fn a_bundle_with_a_non_members_change_is_refused_whole() {
    use automerge::transaction::Transactable;
    use convene::bundle;
    use convene::trust::signed_change::{actor_bytes, sign_change};
    use convene::trust::{DeviceId, SecretKey};
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let file = path(&ana, "a.bundle");
    ana.ok(&["bundle", "export", "-o", &file]);
    let bytes = std::fs::read(&file).unwrap_or_default();
    let id = bundle::community_of(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut content = bundle::decode(&bytes, &id).unwrap_or_else(|e| panic!("{e}"));
    // A stranger's correctly signed change, slipped into the bundle.
    let stranger = SecretKey::generate();
    let mut doc = automerge::AutoCommit::new().with_actor(automerge::ActorId::from(actor_bytes(
        &DeviceId(stranger.public()),
        &[5; 8],
    )));
    doc.put(automerge::ROOT, "kind", "forged")
        .unwrap_or_else(|e| panic!("{e}"));
    let hash = doc.commit().unwrap_or_else(|| panic!("no change"));
    let change = doc
        .get_change_by_hash(&hash)
        .unwrap_or_else(|| panic!("no change"));
    let sig = sign_change(&stranger, &id, "community", &hash.0);
    content
        .changes
        .push(("community".into(), sig, change.raw_bytes().to_vec()));
    std::fs::write(&file, bundle::encode(&id, &content)).unwrap_or_else(|e| panic!("{e}"));
    let before = ana.ok(&["--json", "show", &rid]).stdout;
    let r = ana.fails(4, &["bundle", "import", &file]);
    assert!(
        r.stderr.contains("not a device of any member"),
        "{}",
        r.stderr
    );
    assert_eq!(ana.ok(&["--json", "show", &rid]).stdout, before);
}

#[test]
fn three_members_carry_bundles_onward_and_converge() {
    let ana = TestHome::founded("Ana");
    let mut members = Vec::new();
    for name in ["Bo", "Cy"] {
        members.push(joined_offline(&ana, name));
    }
    let (bo, cy) = (&members[0], &members[1]);
    let rid = ana
        .ok(&["open", "development", "New director", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views", "-m", "First."]).id();
    let a1 = path(&ana, "a1.bundle");
    ana.ok(&["bundle", "export", "-o", &a1]);
    bo.ok(&["bundle", "import", &a1]);
    cy.ok(&["bundle", "import", &a1]);

    // Bo's words reach Ana only through Cy's bundle: carried onward, still
    // signed by Bo.
    bo.ok(&["post", &tid, "-m", "Bo, via Cy."]);
    let did = bo
        .ok(&[
            "draft",
            "new",
            &rid,
            "Position",
            "-m",
            "We ask to be heard.",
        ])
        .id();
    let b1 = path(bo, "b1.bundle");
    bo.ok(&["bundle", "export", "-o", &b1]);
    cy.ok(&["bundle", "import", &b1]);
    cy.ok(&["stance", &did, "object", "-m", "Too timid."]);
    let c1 = path(cy, "c1.bundle");
    cy.ok(&["bundle", "export", "-o", &c1]);
    let report = ana.ok(&["--json", "bundle", "import", &c1]).json();
    assert_eq!(report["held_back"], 0, "{report}");
    let shown = ana.ok(&["--json", "show", &rid]).json();
    let bo_comment = shown["threads"][0]["comments"]
        .as_array()
        .and_then(|c| c.iter().find(|x| x["body"] == "Bo, via Cy."))
        .cloned()
        .unwrap_or_default();
    assert_eq!(bo_comment["author_name"], "Bo");

    ana.ok(&["stance", &did, "support"]);
    ana.ok(&["publish", &rid, "--draft", &did]);
    ana.ok(&["endorse", &rid]);
    let a2 = path(&ana, "a2.bundle");
    ana.ok(&["bundle", "export", "-o", &a2]);
    for m in [bo, cy] {
        m.ok(&["bundle", "import", &a2]);
        m.ok(&["endorse", &rid, "--stance", "support"]);
        let out = path(m, "out.bundle");
        m.ok(&["bundle", "export", "-o", &out]);
        ana.ok(&["bundle", "import", &out]);
    }
    let a3 = path(&ana, "a3.bundle");
    ana.ok(&["bundle", "export", "-o", &a3]);
    for m in [bo, cy] {
        m.ok(&["bundle", "import", &a3]);
    }
    for args in [
        ["--json", "show", rid.as_str()],
        ["--json", "tally", rid.as_str()],
    ] {
        let a = ana.ok(&args).stdout;
        assert_eq!(a, bo.ok(&args).stdout, "{args:?}");
        assert_eq!(a, cy.ok(&args).stdout, "{args:?}");
    }
    let shown = ana.ok(&["--json", "show", &rid]).json();
    assert_eq!(
        shown["outcome"]["endorsements"].as_array().map(|e| e.len()),
        Some(3)
    );
    assert_eq!(shown["outcome"]["dissent"][0]["name"], "Cy");
}

#[test]
fn a_removed_members_later_changes_in_a_bundle_are_refused() {
    let ana = TestHome::founded("Ana");
    let bo = joined_offline(&ana, "Bo");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views"]).id();
    let a1 = path(&ana, "a1.bundle");
    ana.ok(&["bundle", "export", "-o", &a1]);
    bo.ok(&["bundle", "import", &a1]);
    bo.ok(&["post", &tid, "-m", "Before removal."]);
    let b1 = path(&bo, "b1.bundle");
    bo.ok(&["bundle", "export", "-o", &b1]);
    ana.ok(&["bundle", "import", &b1]);
    ana.ok(&["remove", "Bo", "--reason", "left"]);
    // Bo has not heard of it and writes again.
    bo.ok(&["post", &tid, "-m", "After removal."]);
    let b2 = path(&bo, "b2.bundle");
    bo.ok(&["bundle", "export", "-o", &b2]);
    let before = ana.ok(&["--json", "show", &rid]).stdout;
    let r = ana.fails(4, &["bundle", "import", &b2]);
    assert!(r.stderr.contains("removed"), "{}", r.stderr);
    let after = ana.ok(&["--json", "show", &rid]).stdout;
    assert_eq!(before, after);
    assert!(after.contains("Before removal.") && !after.contains("After removal."));
}

/// Ana founds, Bo and Cy join offline; Cy posts, then Ana removes Cy, then
/// Cy posts again and Bo, not yet aware, imports it. Returns the homes, the
/// response id and the thread id.
fn late_post_reaches_bo() -> (TestHome, TestHome, String, String) {
    let ana = TestHome::founded("Ana");
    let mut others = Vec::new();
    for name in ["Bo", "Cy"] {
        others.push(joined_offline(&ana, name));
    }
    let cy = others.pop().unwrap_or_else(|| panic!("no Cy"));
    let bo = others.pop().unwrap_or_else(|| panic!("no Bo"));
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views"]).id();
    let a1 = path(&ana, "a1.bundle");
    ana.ok(&["bundle", "export", "-o", &a1]);
    bo.ok(&["bundle", "import", &a1]);
    cy.ok(&["bundle", "import", &a1]);
    cy.ok(&["post", &tid, "-m", "Before removal, by Cy."]);
    let c1 = path(&cy, "c1.bundle");
    cy.ok(&["bundle", "export", "-o", &c1]);
    ana.ok(&["bundle", "import", &c1]);
    bo.ok(&["bundle", "import", &c1]);
    ana.ok(&["remove", "Cy", "--reason", "left"]);
    cy.ok(&["post", &tid, "-m", "Late, by Cy."]);
    let c2 = path(&cy, "c2.bundle");
    cy.ok(&["bundle", "export", "-o", &c2]);
    bo.ok(&["bundle", "import", &c2]);
    assert!(bo.ok(&["show", &rid]).stdout.contains("Late, by Cy."));
    (ana, bo, rid, tid)
}

/// Bundles both ways between `a` and `b`.
fn exchange(a: &TestHome, b: &TestHome, tag: &str) {
    let from_a = path(a, &format!("{tag}-a.bundle"));
    a.ok(&["bundle", "export", "-o", &from_a]);
    b.ok(&["bundle", "import", &from_a]);
    let from_b = path(b, &format!("{tag}-b.bundle"));
    b.ok(&["bundle", "export", "-o", &from_b]);
    a.ok(&["bundle", "import", &from_b]);
}

#[test]
fn a_removed_members_late_post_nobody_answered_disappears_where_it_arrived_early() {
    let (ana, bo, rid, _) = late_post_reaches_bo();
    exchange(&ana, &bo, "x");
    let shown = ana.ok(&["--json", "show", &rid]).stdout;
    assert!(shown.contains("Before removal, by Cy."), "{shown}");
    assert!(!shown.contains("Late, by Cy."), "{shown}");
    assert_eq!(bo.ok(&["--json", "show", &rid]).stdout, shown);
    assert_eq!(
        bo.ok(&["--json", "tally", &rid]).stdout,
        ana.ok(&["--json", "tally", &rid]).stdout
    );
}

#[test]
fn a_removed_members_late_post_that_someone_answered_stays_everywhere() {
    let (ana, bo, rid, tid) = late_post_reaches_bo();
    // Bo answers before hearing of the removal: the answer builds on it.
    bo.ok(&["post", &tid, "-m", "Answer by Bo."]);
    exchange(&ana, &bo, "x");
    let shown = ana.ok(&["--json", "show", &rid]).stdout;
    assert!(shown.contains("Late, by Cy."), "{shown}");
    assert!(shown.contains("Answer by Bo."), "{shown}");
    assert_eq!(bo.ok(&["--json", "show", &rid]).stdout, shown);
}
