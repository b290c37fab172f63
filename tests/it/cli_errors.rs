//! Bad input gives a clear error and the exit code of the contract, never a
//! panic: 1 failed, 2 usage, 4 integrity.

use crate::common::TestHome;

#[test]
fn usage_errors_exit_2() {
    let home = TestHome::founded("Ana");
    home.fails(2, &["no-such-command"]);
    home.fails(
        2,
        &[
            "open",
            "request",
            "T",
            "--from",
            "X",
            "--question",
            "Q",
            "--due",
            "next week",
        ],
    );
    home.fails(
        2,
        &["open", "request", "T", "--from", "X", "--due", "2027-01-01"],
    );
    home.fails(2, &["stance", "abc", "maybe"]);
    home.fails(2, &["draft", "new", "abc", "T"]);
    home.fails(2, &["amend", "abc", "--find", "x"]);
    // Text over the 1 MiB limit is refused before anything is written.
    let rid = home
        .ok(&["open", "development", "T", "--summary", "s"])
        .id();
    let big = "x".repeat((1 << 20) + 1);
    let r = home.run_with_stdin(&["draft", "new", &rid, "Big", "-m", "-"], &big);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let path = home.path().join("big.txt");
    std::fs::write(&path, &big).unwrap_or_else(|e| panic!("{e}"));
    home.fails(
        2,
        &[
            "draft",
            "new",
            &rid,
            "Big",
            "--file",
            path.to_str().unwrap_or_default(),
        ],
    );
    assert_eq!(home.ok(&["--json", "responses"]).json()[0]["drafts"], 0);
}

#[test]
fn missing_things_exit_1_with_a_hint() {
    let empty = TestHome::new();
    let r = empty.fails(1, &["whoami"]);
    assert!(
        r.stderr.starts_with("convene: error: no identity"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("hint: create one with `convene init --name NAME`")
    );
    empty.ok(&["init", "--name", "Bo"]);
    let r = empty.fails(1, &["responses"]);
    assert!(
        r.stderr
            .contains("hint: found one with `convene community create NAME`")
    );
    empty.fails(1, &["init", "--name", "Bo"]);

    let home = TestHome::founded("Ana");
    let r = home.fails(1, &["show", "ffff"]);
    assert!(
        r.stderr.contains("no response matches 'ffff'"),
        "{}",
        r.stderr
    );
    home.fails(1, &["post", "abcd", "-m", "hello"]);
    home.fails(1, &["endorse", "abcd"]);
    home.fails(1, &["verify", "/no/such/file.json"]);
}

#[test]
fn ambiguous_prefixes_are_refused() {
    let home = TestHome::founded("Ana");
    let mut ids = Vec::new();
    // With 17 responses, two must share their first hex digit.
    for i in 0..17 {
        ids.push(
            home.ok(&["open", "development", &format!("R{i}"), "--summary", "s"])
                .id(),
        );
    }
    let first_digits: Vec<char> = ids.iter().filter_map(|id| id.chars().next()).collect();
    let shared = first_digits
        .iter()
        .find(|c| first_digits.iter().filter(|d| d == c).count() > 1)
        .copied()
        .unwrap_or('0');
    let r = home.fails(1, &["show", &shared.to_string()]);
    assert!(r.stderr.contains("ambiguous"), "{}", r.stderr);
}

#[test]
fn json_mode_keeps_stdout_to_one_document() {
    let home = TestHome::founded("Ana");
    let r = home.ok(&["--json", "open", "development", "T", "--summary", "s"]);
    let v = r.json();
    assert!(v["id"].is_string());
    assert!(r.stderr.contains("Opened development"));
    let quiet = home.ok(&["--json", "-q", "responses"]);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    assert_eq!(quiet.json().as_array().map(|a| a.len()), Some(1));
}

#[test]
fn verify_refuses_garbage_with_exit_4() {
    let home = TestHome::new();
    for (i, content) in [
        "",
        "not json",
        "{}",
        "{\"format\": 1}",
        "# title\n```convene-proof\n{\n```\n",
    ]
    .iter()
    .enumerate()
    {
        let path = home.path().join(format!("g{i}"));
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("{e}"));
        home.fails(4, &["verify", path.to_str().unwrap_or_default()]);
    }
}

#[test]
fn common_mistakes_end_with_a_hint() {
    let home = TestHome::founded("Ana");
    let r = home.fails(1, &["show", "ffff"]);
    assert!(
        r.stderr.contains("hint: list what there is"),
        "{}",
        r.stderr
    );
    let r = home.fails(1, &["sync", "--bind", "127.0.0.1:0"]);
    assert!(
        r.stderr
            .contains("hint: on the other device, `convene ticket`"),
        "{}",
        r.stderr
    );
    // Quiet means no hint.
    let r = home.fails(1, &["-q", "show", "ffff"]);
    assert!(!r.stderr.contains("hint:"), "{}", r.stderr);
}
