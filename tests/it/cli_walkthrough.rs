//! A whole joint response through the command line, as a user runs it: every
//! step is a separate process, so the store is reopened after each operation.

use crate::common::TestHome;

#[test]
fn a_whole_joint_response_from_request_to_verified_export() {
    let home = TestHome::founded("Ana");

    let who = home.ok(&["--json", "whoami"]).json();
    assert_eq!(who["name"], "Ana");
    let me = who["member"].as_str().unwrap_or_default().to_string();
    assert_eq!(me.len(), 64);
    let members = home.ok(&["--json", "members"]).json();
    assert_eq!(members[0]["id"], me.as_str());
    assert_eq!(members[0]["role"], "founder");
    assert_eq!(members[0]["removed"], false);
    assert_eq!(members[0]["devices"][0], who["device"]);
    let communities = home.ok(&["--json", "community", "list"]).json();
    assert_eq!(communities[0]["name"], "Water Network");
    assert_eq!(communities[0]["purpose"], "testing");

    // A request for opinion with two questions.
    let r = home.ok(&[
        "--json",
        "open",
        "request",
        "EU consultation on water reuse",
        "--from",
        "European Commission",
        "--question",
        "Are duties proportionate?",
        "--question",
        "What support is needed?",
        "--due",
        "2027-01-15",
    ]);
    let created = r.json();
    let rid = created["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(created["status"], "open");
    assert_eq!(created["kind"], "request");

    // Threads and replies, one read from stdin.
    let tid = home
        .ok(&[
            "thread",
            &rid[..6],
            "Field experience",
            "-m",
            "Sampling takes two days a month.",
        ])
        .id();
    let shown = home.ok(&["--json", "show", &rid]).json();
    let first = shown["threads"][0]["comments"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let reply = home.run_with_stdin(
        &["post", &tid[..5], "-m", "-", "--reply-to", &first[..4]],
        "Regional labs would halve it.\n",
    );
    assert_eq!(reply.code, 0, "{}", reply.stderr);
    home.ok(&["post", &tid, "-m", "A second top-level comment."]);

    // Two competing drafts, one from a file.
    let da = home
        .ok(&[
            "draft",
            "new",
            &rid,
            "Tiered monitoring",
            "-m",
            "We support the aims. Monitoring should be monthly for small systems.",
        ])
        .id();
    let file = home.path().join("b.txt");
    std::fs::write(&file, "We ask for regional laboratories first.")
        .unwrap_or_else(|e| panic!("{e}"));
    let db = home
        .ok(&[
            "draft",
            "new",
            &rid,
            "Labs first",
            "--file",
            file.to_str().unwrap_or_default(),
        ])
        .id();
    assert_ne!(da, db);
    assert_eq!(
        home.ok(&["--json", "responses"]).json()[0]["status"],
        "drafting"
    );

    // Stances, including an objection; a reason is required for it.
    home.fails(2, &["stance", &da, "object"]);
    home.ok(&["stance", &da, "support"]);
    home.ok(&[
        "stance",
        &db,
        "object",
        "-m",
        "Labs alone do not answer the questions.",
    ]);
    assert_eq!(
        home.ok(&["--json", "responses"]).json()[0]["status"],
        "consultation"
    );

    // An amendment accepted (applied to the draft) and one rejected (kept).
    let accepted = home
        .ok(&[
            "amend",
            &da,
            "--find",
            "monthly",
            "--replace",
            "quarterly",
            "-m",
            "Winter access.",
        ])
        .id();
    let rejected = home
        .ok(&[
            "amend",
            &da,
            "--find",
            "We support",
            "--replace",
            "We welcome",
            "-m",
            "Tone.",
        ])
        .id();
    home.ok(&["amend", "accept", &accepted[..6]]);
    home.ok(&["amend", "reject", &rejected]);
    home.fails(1, &["amend", "accept", &rejected]);
    let text = home.ok(&["draft", "show", &da]).stdout;
    assert_eq!(
        text.trim(),
        "We support the aims. Monitoring should be quarterly for small systems."
    );

    // The accepted amendment changed the draft, so the earlier stance is stale.
    let shown = home.ok(&["--json", "show", &rid]).json();
    let draft_a = shown["drafts"]
        .as_array()
        .and_then(|d| d.iter().find(|x| x["id"] == da.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(draft_a["stances"][0]["stale"], true);
    assert_eq!(draft_a["authors"][0]["name"], "Ana");
    let amendments = shown["amendments"].as_array().cloned().unwrap_or_default();
    assert_eq!(amendments.len(), 2);
    assert!(
        amendments
            .iter()
            .any(|a| a["id"] == accepted.as_str() && a["state"] == "accepted")
    );
    assert!(
        amendments
            .iter()
            .any(|a| a["id"] == rejected.as_str() && a["state"] == "rejected")
    );
    assert_eq!(shown["questions"].as_array().map(|q| q.len()), Some(2));
    assert_eq!(shown["requester"], "European Commission");
    assert_eq!(shown["due"], "2027-01-15");
    let thread = &shown["threads"][0];
    assert_eq!(thread["comments"].as_array().map(|c| c.len()), Some(3));
    assert_eq!(thread["comments"][1]["reply_to"], first.as_str());
    assert_eq!(
        thread["comments"][1]["body"],
        "Regional labs would halve it."
    );

    let tally = home.ok(&["--json", "tally", &rid]).json();
    let tally_of = |tally: &serde_json::Value, id: &str| {
        tally["drafts"]
            .as_array()
            .and_then(|d| d.iter().find(|x| x["id"] == id))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(tally_of(&tally, &da)["counts"]["support"], 1);
    assert_eq!(tally_of(&tally, &da)["stale"], 1);
    assert_eq!(tally_of(&tally, &db)["counts"]["object"], 1);
    assert_eq!(tally_of(&tally, &db)["stale"], 0);
    assert_eq!(tally["not_yet_heard"].as_array().map(|n| n.len()), Some(0));
    assert_eq!(tally["participation"][0]["comments"], 3);
    assert_eq!(tally["participation"][0]["stances"], 2);
    assert_eq!(tally["participation"][0]["words"], 6 + 5 + 4);

    // Taking the stance again on the new version clears it; with reservations.
    home.ok(&[
        "stance",
        &da,
        "reservations",
        "-m",
        "Quarterly may be too rare.",
    ]);
    let tally = home.ok(&["--json", "tally", &rid]).json();
    assert_eq!(tally_of(&tally, &da)["stale"], 0);
    assert_eq!(tally_of(&tally, &da)["counts"]["reservations"], 1);

    // Publish, endorse, export and verify.
    let published = home.ok(&["--json", "publish", &rid, "--draft", &da]).json();
    assert_eq!(published["id"], rid.as_str());
    assert_eq!(published["dissent"][0]["stance"], "reservations");
    assert_eq!(
        published["dissent"][0]["reason"],
        "Quarterly may be too rare."
    );
    assert_eq!(published["dissent"][0]["draft"], da.as_str());
    // The objection to the other draft stays on the record too.
    assert_eq!(published["dissent"][1]["stance"], "object");
    assert_eq!(published["dissent"][1]["draft"], db.as_str());
    assert_eq!(
        published["dissent"][1]["reason"],
        "Labs alone do not answer the questions."
    );
    assert_eq!(
        published["minority_drafts"].as_array().map(|m| m.len()),
        Some(0)
    );
    assert_eq!(
        home.ok(&["--json", "responses"]).json()[0]["status"],
        "published"
    );
    home.fails(1, &["publish", &rid, "--draft", &db]);
    home.fails(
        1,
        &["draft", "edit", &da, "-m", "changed after publication"],
    );

    let endorsed = home.ok(&["--json", "endorse", &rid]).json();
    assert_eq!(endorsed["stance"], "reservations");
    home.fails(1, &["endorse", &rid]);

    let json_path = home.path().join("response.json");
    let md_path = home.path().join("response.md");
    home.ok(&[
        "export",
        &rid,
        "--format",
        "json",
        "-o",
        json_path.to_str().unwrap_or_default(),
    ]);
    home.ok(&["export", &rid, "-o", md_path.to_str().unwrap_or_default()]);
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(
        exported["text"],
        "We support the aims. Monitoring should be quarterly for small systems."
    );
    assert_eq!(exported["endorsements"][0]["member"], me.as_str());
    assert_eq!(exported["dissent"][0]["name"], "Ana");
    let md = std::fs::read_to_string(&md_path).unwrap_or_default();
    assert!(md.contains("## Dissent") && md.contains("Quarterly may be too rare."));
    assert!(
        md.contains("object on “Labs first”: Labs alone do not answer the questions."),
        "{md}"
    );

    let report = home
        .ok(&["--json", "verify", json_path.to_str().unwrap_or_default()])
        .json();
    assert_eq!(report["ok"], true);
    home.ok(&["verify", md_path.to_str().unwrap_or_default()]);

    // Any alteration is refused with exit 4.
    let original = std::fs::read_to_string(&json_path).unwrap_or_default();
    let tampered_cases = [
        original.replace("quarterly for small", "weekly for small"),
        original.replace("Quarterly may be too rare.", "No concerns."),
        original.replacen("\"stance\": \"reservations\"", "\"stance\": \"support\"", 1),
        original.replace("\"name\": \"Ana\"", "\"name\": \"Anna\""),
    ];
    for (i, tampered) in tampered_cases.iter().enumerate() {
        assert_ne!(tampered, &original, "case {i} did not alter anything");
        let path = home.path().join(format!("tampered-{i}.json"));
        std::fs::write(&path, tampered).unwrap_or_else(|e| panic!("{e}"));
        home.fails(4, &["verify", path.to_str().unwrap_or_default()]);
    }
    let tampered_md = md.replacen("quarterly", "weekly", 1);
    let path = home.path().join("tampered.md");
    std::fs::write(&path, tampered_md).unwrap_or_else(|e| panic!("{e}"));
    let refused = home.fails(4, &["verify", path.to_str().unwrap_or_default()]);
    assert!(refused.stderr.contains("convene: error:"));

    // The log names who did what.
    let log = home.ok(&["--json", "log"]).json();
    let messages: Vec<String> = log
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(messages.iter().any(|m| m.starts_with("publish response")));
    assert!(messages.iter().any(|m| m.starts_with("accepted amendment")));
    assert!(
        log.as_array()
            .is_some_and(|l| l.iter().all(|e| e["name"] == "Ana"))
    );
}

#[test]
fn human_output_is_aligned_and_short() {
    let home = TestHome::founded("Ana");
    let rid = home
        .ok(&[
            "open",
            "development",
            "New AI policy",
            "--summary",
            "Management adopts an AI tool.",
        ])
        .id();
    let listing = home.ok(&["responses"]).stdout;
    let lines: Vec<&str> = listing.lines().collect();
    assert!(lines[0].starts_with("ID "), "{listing}");
    assert!(lines[1].starts_with(&rid[..8]));
    assert!(lines[1].contains("development") && lines[1].contains("open"));
    assert_eq!(lines[0].find("KIND"), lines[1].find("development"));
    let shown = home.ok(&["show", &rid[..4]]).stdout;
    assert!(shown.contains("Opened by Ana, just now."), "{shown}");
}
