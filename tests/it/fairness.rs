//! Fairness of voice: a stance counts by when it was made, not when it
//! arrived (offline-fair deadlines), and how much the most active fifth
//! wrote.

use crate::common::{TestHome, joined_offline};

/// 2026-12-03T10:00:00Z: two days after the due date of the request below.
const AFTER_DUE: &str = "1796292000";

fn path(home: &TestHome, name: &str) -> String {
    home.path().join(name).to_string_lossy().into_owned()
}

/// Run `args` in `home` with the clock at `now`, insisting on success.
fn ok_at(home: &TestHome, now: &str, args: &[&str]) -> String {
    let out = home
        .command(args)
        .env("CONVENE_NOW", now)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "convene {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_stance_made_in_time_counts_in_time_even_when_its_bundle_arrives_late() {
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
    let did = ana
        .ok(&["draft", "new", &rid, "Reply", "-m", "We ask for more time."])
        .id();
    let a = path(&ana, "a.bundle");
    ana.ok(&["bundle", "export", "-o", &a]);
    bo.ok(&["bundle", "import", &a]);

    // In the field, before the due date, Bo objects; his bundle reaches Ana
    // only two days after it.
    bo.ok(&["stance", &did, "object", "-m", "Labs are too far."]);
    let b = path(&bo, "b.bundle");
    bo.ok(&["bundle", "export", "-o", &b]);
    ok_at(&ana, AFTER_DUE, &["bundle", "import", &b]);
    // Ana takes her stance after the due date.
    ok_at(&ana, AFTER_DUE, &["stance", &did, "support"]);

    let tally: serde_json::Value =
        serde_json::from_str(&ok_at(&ana, AFTER_DUE, &["--json", "tally", &rid]))
            .unwrap_or_else(|e| panic!("{e}"));
    let draft = &tally["drafts"][0];
    assert_eq!(draft["counts"]["object"], 1);
    assert_eq!(draft["counts"]["support"], 1);
    assert_eq!(draft["late"], 1, "only Ana's stance is late: {tally}");

    let shown: serde_json::Value =
        serde_json::from_str(&ok_at(&ana, AFTER_DUE, &["--json", "show", &rid]))
            .unwrap_or_else(|e| panic!("{e}"));
    let stances = shown["drafts"][0]["stances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let late = |name: &str| {
        stances
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["late"].clone())
    };
    assert_eq!(late("Bo"), Some(serde_json::Value::Bool(false)));
    assert_eq!(late("Ana"), Some(serde_json::Value::Bool(true)));
    let human = ok_at(&ana, AFTER_DUE, &["show", &rid]);
    assert!(human.contains("[late]"), "{human}");
}

#[test]
fn the_tally_says_how_much_the_most_active_fifth_wrote() {
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    ana.ok(&["thread", &rid, "Views", "-m", "one two three four"]);
    let tally = ana.ok(&["--json", "tally", &rid]).json();
    let top = &tally["top_fifth"];
    assert_eq!(top["members"], 1);
    assert_eq!(top["words"], 4);
    assert_eq!(top["percent"], 100);
    let human = ana.ok(&["tally", &rid]).stdout;
    assert!(
        human.contains("The most active fifth (1 member) wrote 100 % of the words."),
        "{human}"
    );
}

/// The names in a tally list.
fn names(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .map(|l| {
            l.iter()
                .filter_map(|m| m["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Carry `from`'s whole record to `to` in a bundle.
fn carry(from: &TestHome, to: &TestHome, tag: &str) {
    let file = path(from, &format!("{tag}.bundle"));
    from.ok(&["bundle", "export", "-o", &file]);
    to.ok(&["bundle", "import", &file]);
}

#[test]
fn a_member_whose_device_has_not_synced_since_the_draft_is_not_counted_as_silent() {
    let ana = TestHome::founded("Ana");
    let bo = joined_offline(&ana, "Bo");
    let cy = joined_offline(&ana, "Cy");
    // Both complete their joins, and Ana learns of them.
    carry(&ana, &bo, "a0");
    carry(&ana, &cy, "a0");
    carry(&bo, &ana, "b0");
    carry(&cy, &ana, "c0");

    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let did = ana
        .ok(&["draft", "new", &rid, "Reply", "-m", "We ask for more time."])
        .id();
    // Bo's device receives the draft (and records that it did); Cy's does
    // not sync again.
    carry(&ana, &bo, "a1");
    carry(&bo, &ana, "b1");

    // Ana wrote the draft, so she has seen it, though she has not spoken.
    let tally = ana.ok(&["--json", "tally", &rid]).json();
    assert_eq!(names(&tally["not_yet_heard"]), ["Ana", "Bo", "Cy"]);
    assert_eq!(names(&tally["silent"]), ["Ana", "Bo"]);
    assert_eq!(names(&tally["could_not_have_seen"]), ["Cy"]);
    let human = ana.ok(&["tally", &rid]).stdout;
    assert!(
        human.contains("Silent (have seen the current drafts): Ana, Bo"),
        "{human}"
    );
    assert!(
        human.contains("Could not yet have seen them: Cy"),
        "{human}"
    );

    // A new version: Bo has not seen it yet, until his device syncs again.
    ana.ok(&["draft", "edit", &did, "-m", "We ask for six more months."]);
    let tally = ana.ok(&["--json", "tally", &rid]).json();
    assert_eq!(names(&tally["could_not_have_seen"]), ["Bo", "Cy"]);
    carry(&ana, &bo, "a2");
    carry(&bo, &ana, "b2");
    let tally = ana.ok(&["--json", "tally", &rid]).json();
    assert_eq!(names(&tally["silent"]), ["Ana", "Bo"]);
    // Bo's own tally agrees with Ana's once they hold the same record.
    let theirs = bo.ok(&["--json", "tally", &rid]).json();
    assert_eq!(theirs["silent"], tally["silent"]);
    assert_eq!(theirs["could_not_have_seen"], tally["could_not_have_seen"]);
}

#[test]
fn a_facilitator_records_for_a_member_who_confirms_from_their_own_device_later() {
    let ana = TestHome::founded("Ana");
    let bo = joined_offline(&ana, "Bo");
    carry(&ana, &bo, "a0");
    carry(&bo, &ana, "b0");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views", "-m", "Thoughts?"]).id();
    let did = ana
        .ok(&["draft", "new", &rid, "Reply", "-m", "We ask for more time."])
        .id();
    // Bo has no device at hand: Ana takes his words down by phone.
    let cid = ana
        .ok(&[
            "post",
            &tid,
            "-m",
            "The lab is too far.",
            "--on-behalf-of",
            "Bo",
        ])
        .id();
    ana.ok(&[
        "stance",
        &did,
        "object",
        "-m",
        "Labs",
        "--on-behalf-of",
        "Bo",
    ]);
    let r = ana.fails(1, &["stance", &did, "support", "--on-behalf-of", "Nobody"]);
    assert!(r.stderr.contains("member"), "{}", r.stderr);

    let shown = ana.ok(&["show", &rid]).stdout;
    assert!(
        shown.contains("Bo (recorded by Ana on their behalf)"),
        "{shown}"
    );
    let csv = ana.ok(&["export", &rid, "--format", "csv"]).stdout;
    assert!(
        csv.lines()
            .next()
            .unwrap_or_default()
            .ends_with(",recorded_by,confirmed,correction")
    );
    assert!(
        csv.contains(",Bo,")
            && csv.contains("The lab is too far.,5,2026-11-29T10:00:00Z,Ana,false,"),
        "{csv}"
    );

    // Later, from his own device, Bo corrects the comment and takes his own
    // stance; the record travels back to Ana.
    carry(&ana, &bo, "a1");
    bo.ok(&[
        "confirm",
        &cid[..6],
        "--correct",
        "The nearest lab is 200 km away.",
    ]);
    bo.ok(&["stance", &did, "reservations", "-m", "Distance"]);
    carry(&bo, &ana, "b1");
    let view = ana.ok(&["--json", "show", &rid]).json();
    let comment = &view["threads"][0]["comments"][1];
    assert_eq!(comment["author_name"], "Bo");
    assert_eq!(comment["recorded_by"]["name"], "Ana");
    assert_eq!(comment["confirmed"], true);
    assert_eq!(comment["correction"], "The nearest lab is 200 km away.");
    let stances = view["drafts"][0]["stances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(stances.len(), 1, "{stances:?}");
    assert_eq!(stances[0]["stance"], "reservations");
    assert!(stances[0]["recorded_by"].is_null());
    // Only the member spoken for may confirm.
    let r = ana.fails(1, &["confirm", &cid]);
    assert!(
        r.stderr.contains("not recorded on your behalf"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_member_who_joins_after_the_draft_has_seen_it() {
    let ana = TestHome::founded("Ana");
    let server = crate::common::Server::start(&ana);
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    ana.ok(&["draft", "new", &rid, "Reply", "-m", "Text."]);
    let bo = crate::common::joined(&ana, "Bo");
    // Bo's receipt travels back with his next sync.
    bo.ok(&["sync", &server.ticket, "--bind", "127.0.0.1:0"]);
    let tally = ana.ok(&["--json", "tally", &rid]).json();
    assert!(
        names(&tally["silent"]).contains(&"Bo".to_string()),
        "{tally}"
    );
}
