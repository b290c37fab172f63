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
