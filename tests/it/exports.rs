//! The table export (`export --format csv`), the raw document export
//! (`community export-doc`) and shell completions, as a script would use
//! them.

use crate::common::TestHome;

/// A response with a thread, a reply, a draft and a stance with a reason;
/// returns (response id, thread id, draft id).
fn discussed(home: &TestHome) -> (String, String, String) {
    let rid = home
        .ok(&[
            "--json",
            "open",
            "development",
            "New monitoring rules",
            "--summary",
            "Monthly sampling for every system.",
        ])
        .json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let tid = home
        .ok(&[
            "thread",
            &rid,
            "Field, experience",
            "-m",
            "Sampling takes \"two days\", every month.\nAnd the lab is far.",
        ])
        .id();
    let first = home.ok(&["--json", "show", &rid]).json()["threads"][0]["comments"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    home.ok(&[
        "post",
        &tid,
        "-m",
        "Regional labs would halve it.",
        "--reply-to",
        &first,
    ]);
    let did = home
        .ok(&["draft", "new", &rid, "Tiered", "-m", "We support the aims."])
        .id();
    home.ok(&[
        "stance",
        &did,
        "object",
        "-m",
        "Too slow, for small systems.",
    ]);
    (rid, tid, did)
}

#[test]
fn csv_has_one_row_per_comment_and_stance_that_a_csv_reader_reads_back() {
    let home = TestHome::founded("Ana");
    let (rid, tid, did) = discussed(&home);
    let file = home.path().join("views.csv");
    let written = home
        .ok(&[
            "--json",
            "export",
            &rid,
            "--format",
            "csv",
            "-o",
            file.to_str().unwrap_or_default(),
        ])
        .json();
    assert_eq!(written["format"], "csv");

    let mut reader = csv::Reader::from_path(&file).unwrap_or_else(|e| panic!("{e}"));
    let header: Vec<String> = reader
        .headers()
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, convene::model::table::COLUMNS);
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or(usize::MAX);
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(rows.len(), 3, "two comments and one stance");
    let kinds: Vec<&str> = rows.iter().map(|r| &r[column("kind")]).collect();
    assert_eq!(kinds, ["comment", "comment", "stance"]);

    let first = &rows[0];
    assert_eq!(&first[column("response")], rid);
    assert_eq!(&first[column("thread")], tid);
    assert_eq!(&first[column("thread_title")], "Field, experience");
    assert_eq!(&first[column("member")], "Ana");
    assert_eq!(
        &first[column("text")],
        "Sampling takes \"two days\", every month.\nAnd the lab is far."
    );
    assert_eq!(&first[column("at")], "2026-11-29T10:00:00Z");
    assert_eq!(&rows[1][column("reply_to")], &first[column("id")]);

    let stance = &rows[2];
    assert_eq!(&stance[column("draft")], did);
    assert_eq!(&stance[column("draft_title")], "Tiered");
    assert_eq!(&stance[column("stance")], "object");
    assert_eq!(&stance[column("stale")], "false");
    assert_eq!(&stance[column("text")], "Too slow, for small systems.");
    assert_eq!(&stance[column("words")], "5");

    // To stdout as well, and inside one JSON document with --json.
    let plain = home.ok(&["export", &rid, "--format", "csv"]).stdout;
    assert_eq!(plain, std::fs::read_to_string(&file).unwrap_or_default());
    let wrapped = home
        .ok(&["--json", "export", &rid, "--format", "csv"])
        .json();
    assert_eq!(wrapped["format"], "csv");
    assert_eq!(wrapped["text"], plain);
}

#[test]
fn raw_documents_load_back_with_automerge_and_hold_the_comments() {
    use automerge::ReadDoc;

    let home = TestHome::founded("Ana");
    let (rid, tid, did) = discussed(&home);
    let dir = home.path().join("raw");
    let written = home
        .ok(&[
            "--json",
            "community",
            "export-doc",
            "-o",
            dir.to_str().unwrap_or_default(),
        ])
        .json();
    let names: Vec<&str> = written
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {written}"))
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    let discussion = format!("response-{rid}");
    let draft = format!("draft-{did}");
    assert_eq!(names, ["community", draft.as_str(), discussion.as_str()]);

    let load = |name: &str| {
        let bytes =
            std::fs::read(dir.join(format!("{name}.automerge"))).unwrap_or_else(|e| panic!("{e}"));
        automerge::AutoCommit::load(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    // The community document indexes the response.
    let community = load("community");
    let (_, responses) = community
        .get(automerge::ROOT, "responses")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no responses map"));
    assert!(community.get(&responses, &rid).unwrap_or(None).is_some());

    // The discussion holds both comments, by the path docs/schema.md gives.
    let doc = load(&discussion);
    let get = |obj: &automerge::ObjId, key: &str| {
        doc.get(obj, key)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no {key}"))
            .1
    };
    let thread = get(&get(&automerge::ROOT, "threads"), &tid);
    let comments = get(&thread, "comments");
    let mut bodies: Vec<String> = doc
        .map_range(&comments, ..)
        .map(|item| {
            let body = doc
                .get(item.id(), "body")
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("a comment without a body"));
            match body.0 {
                automerge::Value::Scalar(s) => s.as_str().unwrap_or_default().to_string(),
                automerge::Value::Object(_) => doc.text(&body.1).unwrap_or_default(),
            }
        })
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [
            "Regional labs would halve it.",
            "Sampling takes \"two days\", every month.\nAnd the lab is far."
        ]
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    let home = TestHome::new();
    for (shell, mark) in [
        ("bash", "_convene()"),
        ("zsh", "#compdef convene"),
        ("fish", "complete -c convene"),
    ] {
        let script = home.ok(&["completions", shell]).stdout;
        assert!(
            script.contains(mark),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
        assert!(script.contains("export-doc"), "{shell} lacks a subcommand");
    }
    home.fails(2, &["completions", "tcsh"]);
}

#[test]
fn an_invite_can_be_drawn_as_a_qr_code_above_its_ticket() {
    let home = TestHome::founded("Ana");
    let plain = home.ok(&["invite", "--addr", "127.0.0.1:9"]).id();
    let drawn = home.ok(&["invite", "--addr", "127.0.0.1:9", "--qr"]).stdout;
    let lines: Vec<&str> = drawn.lines().collect();
    let ticket = lines.last().copied().unwrap_or_default();
    assert_eq!(ticket.len(), plain.len(), "{drawn}");
    assert_eq!(ticket[..5], plain[..5]);
    assert!(lines.len() > 20, "too small for a ticket: {drawn}");
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l.chars().all(|c| " █▀▄".contains(c)))
    );
    // Scripts keep their one JSON document.
    let json = home
        .ok(&["--json", "invite", "--addr", "127.0.0.1:9", "--qr"])
        .json();
    assert!(
        json["ticket"]
            .as_str()
            .is_some_and(|t| t.len() == plain.len())
    );
}
