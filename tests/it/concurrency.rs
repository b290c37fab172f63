//! Concurrent commands on one home never lose or duplicate a write.

use std::process::Stdio;

use crate::common::TestHome;

#[test]
fn concurrent_posts_are_all_kept_exactly_once() {
    let home = TestHome::founded("Ana");
    let rid = home
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = home.ok(&["thread", &rid, "Busy thread"]).id();
    const WRITERS: usize = 8;
    let children: Vec<_> = (0..WRITERS)
        .map(|i| {
            home.command(&["post", &tid, "-m", &format!("comment number {i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shown = home.ok(&["--json", "show", &rid]).json();
    let comments = shown["threads"][0]["comments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(comments.len(), WRITERS);
    for i in 0..WRITERS {
        let body = format!("comment number {i}");
        assert_eq!(
            comments
                .iter()
                .filter(|c| c["body"] == body.as_str())
                .count(),
            1,
            "{body}"
        );
    }
}

#[test]
fn commands_and_serve_write_one_home_at_once_without_loss() {
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Busy thread"]).id();
    let server = crate::common::Server::start(&ana);
    let bo = crate::common::joined(&ana, "Bo");
    const EACH: usize = 6;
    for i in 0..EACH {
        bo.ok(&["post", &tid, "-m", &format!("from Bo {i}")]);
    }
    // Ana's commands and Bo's sync into Ana's serve, all at once.
    let mut children: Vec<_> = (0..EACH)
        .map(|i| {
            ana.command(&["post", &tid, "-m", &format!("from Ana {i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    children.push(
        bo.command(&[
            "sync",
            &server.ticket,
            "--bind",
            "127.0.0.1:0",
            "--timeout",
            "10",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}")),
    );
    for child in children {
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shown = ana.ok(&["--json", "show", &rid]).json();
    let comments = shown["threads"][0]["comments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for who in ["Ana", "Bo"] {
        for i in 0..EACH {
            let body = format!("from {who} {i}");
            let count = comments
                .iter()
                .filter(|c| c["body"] == body.as_str())
                .count();
            assert_eq!(count, 1, "{body}");
        }
    }
    assert_eq!(comments.len(), 2 * EACH);
    drop(server);
    // And the home loads cleanly with nothing torn.
    ana.ok(&["--json", "show", &rid]);
}
