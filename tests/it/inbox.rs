//! What's new: `inbox`, `inbox --mark-read`, and the one-line summary that
//! `sync` and `bundle import` end with.

use crate::common::{Server, TestHome, eventually, joined, joined_offline};

fn path(home: &TestHome, name: &str) -> String {
    home.path().join(name).to_string_lossy().into_owned()
}

/// Ana's community with Bo joined offline, both holding one response with
/// Ana's first comment; returns (ana, bo, response, thread, first comment).
fn two_members() -> (TestHome, TestHome, String, String, String) {
    let ana = TestHome::founded("Ana");
    let bo = joined_offline(&ana, "Bo");
    let rid = ana
        .ok(&[
            "open",
            "request",
            "Consultation",
            "--from",
            "Ministry",
            "--question",
            "Q1?",
            "--due",
            "2026-12-01",
        ])
        .id();
    let tid = ana
        .ok(&["thread", &rid, "Views", "-m", "What do you see?"])
        .id();
    let first = ana.ok(&["--json", "show", &rid]).json()["threads"][0]["comments"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let a = path(&ana, "a.bundle");
    ana.ok(&["bundle", "export", "-o", &a]);
    bo.ok(&["bundle", "import", &a]);
    (ana, bo, rid, tid, first)
}

#[test]
fn the_inbox_shows_what_a_bundle_brought_until_marked_read() {
    let (ana, bo, rid, tid, first) = two_members();
    ana.ok(&["inbox", "--mark-read"]);

    // Bo answers Ana, drafts, and carries it back in a bundle.
    bo.ok(&[
        "post",
        &tid,
        "-m",
        "Field teams see delays.",
        "--reply-to",
        &first,
    ]);
    let did = bo
        .ok(&["draft", "new", &rid, "Reply", "-m", "We ask for more time."])
        .id();
    bo.ok(&["stance", &did, "support"]);
    let b = path(&bo, "b.bundle");
    bo.ok(&["bundle", "export", "-o", &b]);
    let imported = ana.ok(&["--json", "bundle", "import", &b]);
    let arrived = &imported.json()["arrived"];
    assert_eq!(arrived["comments"], 1, "{arrived}");
    assert_eq!(arrived["drafts"], 1);
    assert_eq!(arrived["stances"], 1);
    let plain = ana.ok(&["bundle", "import", &b]);
    assert!(
        plain.stderr.contains("Arrived: nothing new."),
        "{}",
        plain.stderr
    );

    let inbox = ana.ok(&["--json", "inbox"]).json();
    let r = &inbox["responses"][0];
    assert_eq!(r["id"], rid.as_str());
    assert_eq!(r["new"], false);
    assert_eq!(r["comments"][0]["author_name"], "Bo");
    assert_eq!(r["comments"][0]["reply_to_you"], true);
    assert_eq!(r["drafts"][0]["new"], true);
    assert_eq!(r["drafts"][0]["diff"][0], "+ We ask for more time.");
    assert_eq!(r["stances"][0]["stance"], "support");
    // Due 2026-12-01; the tests' clock is 2026-11-29T10:00Z.
    assert_eq!(r["due"]["days_left"], 1);
    assert_eq!(inbox["marked_read"], false);

    let human = ana.ok(&["inbox"]);
    assert!(
        human
            .stdout
            .contains("Bo replied to you in \"Views\": Field teams see delays."),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("new draft \"Reply\""),
        "{}",
        human.stdout
    );
    assert!(
        human.stderr.contains("hint: `convene inbox --mark-read`"),
        "{}",
        human.stderr
    );
    // A script reading JSON gets no suggestions on stderr.
    let scripted = ana.ok(&["--json", "inbox"]);
    assert!(!scripted.stderr.contains("hint:"), "{}", scripted.stderr);

    // Marked read, only the deadline is left.
    ana.ok(&["inbox", "--mark-read"]);
    let after = ana.ok(&["--json", "inbox"]).json();
    let r = &after["responses"][0];
    assert_eq!(r["comments"].as_array().map(Vec::len), Some(0), "{after}");
    assert_eq!(r["drafts"].as_array().map(Vec::len), Some(0));
    assert_eq!(r["due"]["date"], "2026-12-01");

    // A damaged read file is not an error: everything is new again.
    let read = ana.community_dir().join("read.json");
    std::fs::write(&read, "{not json").unwrap_or_else(|e| panic!("{e}"));
    let again = ana.ok(&["--json", "inbox"]).json();
    assert_eq!(again["responses"][0]["new"], true);
}

#[test]
fn sync_ends_with_a_summary_of_what_arrived() {
    let ana = TestHome::founded("Ana");
    let server = Server::start(&ana);
    let bo = joined(&ana, "Bo");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    ana.ok(&["thread", &rid, "Views", "-m", "One."]);
    // serve picks up Ana's new changes; Bo syncs with it.
    let synced = bo.ok(&["--json", "sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    let arrived = &synced.json()["arrived"];
    assert_eq!(arrived["responses"], 1, "{arrived}");
    assert_eq!(arrived["comments"], 1);
    let again = bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    assert!(
        again.stderr.contains("Arrived: nothing new."),
        "{}",
        again.stderr
    );
    // Not a terminal: no live progress line, ever.
    assert!(!again.stderr.contains('\r') && !synced.stderr.contains('\r'));
}

/// Whether the tally of response `rid`, as `home` holds it, lists Ana as
/// silent: she could have seen the current draft (a receipt says so) and
/// took no stance.
fn ana_is_silent(home: &TestHome, rid: &str) -> bool {
    home.ok(&["--json", "tally", rid]).json()["silent"]
        .as_array()
        .map(|l| l.iter().any(|m| m["name"] == "Ana"))
        .unwrap_or(false)
}

#[test]
fn serve_says_what_arrived_and_records_that_its_member_has_seen_the_draft() {
    let ana = TestHome::founded("Ana");
    let log = ana.path().join("serve.log");
    let server = Server::start_logged(&ana, &log);
    let bo = joined(&ana, "Bo");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    bo.ok(&["draft", "new", &rid, "Reply", "-m", "Text."]);
    bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    assert!(
        eventually(|| std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("; arrived: 1 draft change")),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Ana's serve recorded her receipt: she could have seen the draft.
    let silent = |home: &TestHome| ana_is_silent(home, &rid);
    assert!(eventually(|| silent(&ana)));
    // And it reaches Bo with the next sync.
    bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    assert!(silent(&bo));
}

#[test]
fn serve_records_its_receipt_for_an_edit_that_brought_no_discussion() {
    let ana = TestHome::founded("Ana");
    let log = ana.path().join("serve.log");
    let server = Server::start_logged(&ana, &log);
    let bo = joined(&ana, "Bo");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    let did = bo.ok(&["draft", "new", &rid, "Reply", "-m", "Text."]).id();
    bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    let arrivals = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("; arrived: 1 draft change")
            .count()
    };
    assert!(eventually(|| arrivals() == 1));
    let silent = |home: &TestHome| ana_is_silent(home, &rid);
    assert!(eventually(|| silent(&ana)));
    // Bo fetches the receipt: `serve` reads the discussion to send it, and
    // holds it from then on.
    bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    assert!(silent(&bo));

    // Bo edits the draft: only the draft changes, and Ana has not seen
    // this version.
    bo.ok(&["draft", "edit", &did, "-m", "Text, again."]);
    assert!(!silent(&bo));
    bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    assert!(
        eventually(|| arrivals() == 2),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(eventually(|| silent(&ana)));
    // The receipt went into the discussion `serve` held, which did not
    // arrive: it is read again, so the next sync carries the receipt.
    bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    assert!(silent(&bo));
}

/// The draft digest `home`'s device holds for draft `did`, if any still
/// serves (its heads are the draft's files' and it is this device's).
fn digest_text(home: &TestHome, did: &str) -> Option<String> {
    use convene::model::DocLoader;
    let store_home = convene::store::Home::new(home.path().to_path_buf());
    let identity = store_home.identity().unwrap_or_else(|e| panic!("{e}"));
    let store = store_home.resolve(None).unwrap_or_else(|e| panic!("{e}"));
    let now = crate::common::NOW.parse().unwrap_or_else(|e| panic!("{e}"));
    let id = convene::ids::ObjectId::parse(did).unwrap_or_else(|| panic!("bad id {did}"));
    store
        .loader(&identity, now)
        .draft_digest(&id)
        .map(|digest| digest.text)
}

/// Ana's community with a response and a draft of "First text." on it:
/// Ana, and the draft's id.
fn founded_with_a_draft() -> (TestHome, String) {
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let did = ana
        .ok(&["draft", "new", &rid, "Reply", "-m", "First text."])
        .id();
    (ana, did)
}

#[test]
fn sync_keeps_the_digest_of_each_draft_it_brought_or_changed() {
    let (ana, did) = founded_with_a_draft();
    let server = Server::start(&ana);
    let bo = joined(&ana, "Bo");
    // The draft arrived whole in Bo's join: its digest came with it.
    assert_eq!(digest_text(&bo, &did).as_deref(), Some("First text."));
    drop(server);
    ana.ok(&["draft", "edit", &did, "-m", "Second text."]);
    let server = Server::start(&ana);
    bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    // Changed by the sync: its digest is kept again for the new version.
    assert_eq!(digest_text(&bo, &did).as_deref(), Some("Second text."));
}

/// Counting what arrived after the import reads each changed draft in
/// full, which writes its digest: the next `show` loads no draft.
#[test]
fn a_bundle_import_leaves_the_digest_of_each_draft_it_changed() {
    let (ana, did) = founded_with_a_draft();
    let server = Server::start(&ana);
    let bo = joined(&ana, "Bo");
    drop(server);
    ana.ok(&["draft", "edit", &did, "-m", "Second text."]);
    let bundle = ana.path().join("a.bundle").to_string_lossy().into_owned();
    ana.ok(&["bundle", "export", "-o", &bundle]);
    bo.ok(&["bundle", "import", &bundle]);
    assert_eq!(digest_text(&bo, &did).as_deref(), Some("Second text."));
}

#[test]
fn sync_keeps_no_digest_of_a_draft_a_removed_member_wrote_in() {
    let (ana, did) = founded_with_a_draft();
    let server = Server::start(&ana);
    let bo = joined(&ana, "Bo");
    let cy = joined(&ana, "Cy");
    bo.ok(&["draft", "edit", &did, "-m", "First text, and Bo's words."]);
    bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    drop(server);
    // Bo is removed (his words so far stay), and Ana edits again.
    ana.ok(&["remove", "Bo", "--reason", "left"]);
    ana.ok(&["draft", "edit", &did, "-m", "Ana's text, and Bo's words."]);
    let server = Server::start(&ana);
    cy.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    // A load writes that draft's digest, applying the removal; the sync
    // does not. The draft reads the same either way.
    assert_eq!(digest_text(&cy, &did), None);
    let shown = cy.ok(&["--json", "draft", "show", &did]).json();
    assert_eq!(shown["body"], "Ana's text, and Bo's words.", "{shown}");
    assert_eq!(
        digest_text(&cy, &did).as_deref(),
        Some("Ana's text, and Bo's words.")
    );
}
