//! Snapshots of the human output of the main views, so that a change to
//! what people read is a reviewed change (`cargo insta review`, or
//! `INSTA_UPDATE=always` and a look at the diff). Ids are random, so they are
//! replaced by `[id]`; the clock is fixed.

use crate::common::{TestHome, joined_offline};

/// Run in `home` and return stdout, with ids masked.
fn human(home: &TestHome, args: &[&str]) -> String {
    home.ok(args).stdout
}

macro_rules! snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({filters => vec![
            (r"\b[0-9a-f]{64}\b", "[key]"),
            (r"\b[0-9a-f]{8,16}\b", "[id]"),
        ]}, {
            insta::assert_snapshot!($name, $text);
        });
    };
}

#[test]
fn show_tally_inbox_and_responses_read_as_reviewed() {
    let ana = TestHome::founded("Ana");
    let bo = joined_offline(&ana, "Bo");
    let rid = ana
        .ok(&[
            "open",
            "request",
            "EU consultation on water reuse",
            "--from",
            "European Commission",
            "--question",
            "Are duties proportionate?",
            "--due",
            "2026-12-01",
        ])
        .id();
    let tid = ana
        .ok(&[
            "thread",
            &rid,
            "Field experience",
            "-m",
            "Sampling takes two days a month.",
        ])
        .id();
    let did = ana
        .ok(&[
            "draft",
            "new",
            &rid,
            "Tiered monitoring",
            "-m",
            "We support the aims.\nMonthly sampling.\n",
        ])
        .id();
    let a = ana.path().join("a.bundle").to_string_lossy().into_owned();
    ana.ok(&["bundle", "export", "-o", &a]);
    bo.ok(&["bundle", "import", &a]);
    bo.ok(&["inbox", "--mark-read"]);
    ana.ok(&["post", &tid, "-m", "Regional labs would halve that."]);
    ana.ok(&[
        "draft",
        "edit",
        &did,
        "-m",
        "We support the aims.\nQuarterly sampling for small systems.\n",
    ]);
    ana.ok(&[
        "stance",
        &did,
        "reservations",
        "-m",
        "Quarterly may be too rare",
    ]);
    ana.ok(&["bundle", "export", "-o", &a]);
    bo.ok(&["bundle", "import", &a]);
    bo.ok(&[
        "stance",
        &did,
        "object",
        "-m",
        "Labs alone do not answer the questions",
    ]);

    snapshot!("show", human(&bo, &["show", &rid]));
    snapshot!("tally", human(&bo, &["tally", &rid]));
    snapshot!("inbox", human(&bo, &["inbox"]));
    snapshot!("responses", human(&bo, &["responses"]));
}
