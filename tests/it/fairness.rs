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
