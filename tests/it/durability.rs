//! Durability under kill -9: commands are killed at random moments (posts,
//! draft edits, stances, bundle imports, and `serve` while it receives a
//! sync). Every command that exited 0 before the kill must be present
//! afterwards, and the store must always reopen.
//!
//! `CONVENE_KILL_TRIALS` sets the number of trials (100 by default, as in
//! CI); docs/reliability.md records a run of 1,000.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Server, TestHome, joined, joined_offline};

fn trials() -> usize {
    std::env::var("CONVENE_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// A small seeded generator for the kill delays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Start `child`, wait `delay`, kill -9; true if it had already exited 0.
fn kill_after(mut child: Child, delay: Duration) -> bool {
    std::thread::sleep(delay);
    if let Ok(Some(status)) = child.try_wait() {
        return status.success();
    }
    let _ = child.kill(); // SIGKILL
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    // It may have finished between the check and the kill.
    status.success()
}

fn spawn(home: &TestHome, args: &[&str]) -> Child {
    home.command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// How long a command takes here, so that kills land before, during and
/// after its writes.
fn typical(home: &TestHome, args: &[&str]) -> Duration {
    let started = Instant::now();
    home.ok(args);
    started.elapsed()
}

fn path(home: &TestHome, name: &str) -> String {
    home.path().join(name).to_string_lossy().into_owned()
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let ana = TestHome::founded("Ana");
    let bo = joined_offline(&ana, "Bo");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views"]).id();
    let did = ana.ok(&["draft", "new", &rid, "Text", "-m", "Start."]).id();
    let first = path(&ana, "first.bundle");
    ana.ok(&["bundle", "export", "-o", &first]);
    bo.ok(&["bundle", "import", &first]);

    let span = typical(&ana, &["post", &tid, "-m", "timing"]);
    let mut rng = Rng(0x5eed);
    let (mut acked, mut killed) = (0, 0);
    let mut posts: Vec<String> = Vec::new();
    let mut edits: Vec<String> = Vec::new();
    let mut imported: Vec<String> = Vec::new();
    let n = trials();
    for trial in 0..n {
        let delay = Duration::from_micros(rng.below(span.as_micros() as u64 * 3));
        let ok = match trial % 4 {
            0 => {
                let text = format!("post {trial}");
                let ok = kill_after(spawn(&ana, &["post", &tid, "-m", &text]), delay);
                if ok {
                    posts.push(text);
                }
                ok
            }
            1 => {
                let current = ana.ok(&["--json", "draft", "show", &did]).json();
                let body = current["body"].as_str().unwrap_or_default().to_string();
                let token = format!("e{trial}.");
                let text = format!("{body} {token}");
                let ok = kill_after(spawn(&ana, &["draft", "edit", &did, "-m", &text]), delay);
                if ok {
                    edits.push(token);
                }
                ok
            }
            2 => {
                let stance = ["support", "abstain"][rng.below(2) as usize];
                let ok = kill_after(spawn(&ana, &["stance", &did, stance]), delay);
                if ok {
                    // Checked at once: a later stance may replace it.
                    let tally = ana.ok(&["--json", "tally", &rid]).stdout;
                    assert!(tally.contains(stance), "trial {trial}: {tally}");
                }
                ok
            }
            _ => {
                let text = format!("from Bo {trial}");
                bo.ok(&["post", &tid, "-m", &text]);
                let file = path(&bo, &format!("b{trial}.bundle"));
                bo.ok(&["bundle", "export", "-o", &file]);
                let ok = kill_after(spawn(&ana, &["bundle", "import", &file]), delay);
                if ok {
                    imported.push(text);
                }
                ok
            }
        };
        if ok {
            acked += 1;
        } else {
            killed += 1;
        }
        // The store reopens after every kill, with everything acknowledged.
        let shown = ana.run(&["--json", "show", &rid]);
        assert_eq!(shown.code, 0, "trial {trial}: {}", shown.stderr);
        if trial % 10 == 9 || trial + 1 == n {
            for text in posts.iter().chain(&imported) {
                assert!(
                    shown.stdout.contains(text.as_str()),
                    "trial {trial}: lost {text}"
                );
            }
            let draft = ana.ok(&["--json", "draft", "show", &did]).json()["body"].to_string();
            for token in &edits {
                assert!(
                    draft.contains(token.as_str()),
                    "trial {trial}: lost edit {token}"
                );
            }
        }
    }
    eprintln!(
        "kill -9: {n} trials, {acked} acknowledged, {killed} killed first; \
         0 acknowledged writes lost, 0 unloadable stores"
    );
    assert!(acked > 0 && killed > 0, "kills must land on both sides");
}

#[test]
fn serve_killed_while_receiving_a_sync_keeps_what_it_acknowledged() {
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views"]).id();
    let bo = {
        let _server = Server::start(&ana);
        joined(&ana, "Bo")
    };
    let mut rng = Rng(0xbeef);
    let (mut acked, mut killed) = (0, 0);
    let mut delivered: Vec<String> = Vec::new();
    let n = (trials() / 4).max(10);
    for trial in 0..n {
        // Bo writes a few comments, then pushes them to Ana's serve, which
        // is killed at a random moment of the session.
        let texts: Vec<String> = (0..3).map(|k| format!("bo {trial}.{k}")).collect();
        for text in &texts {
            bo.ok(&["post", &tid, "-m", text]);
        }
        let server = Server::start(&ana);
        let sync = bo
            .command(&[
                "sync",
                &server.ticket,
                "--bind",
                "127.0.0.1:0",
                "--timeout",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(rng.below(100)));
        drop(server); // kill -9
        let status = sync
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{e}"))
            .status;
        if status.success() {
            acked += 1;
            delivered.extend(texts);
        } else {
            killed += 1;
        }
        let shown = ana.run(&["--json", "show", &rid]);
        assert_eq!(shown.code, 0, "trial {trial}: {}", shown.stderr);
        for text in &delivered {
            assert!(
                shown.stdout.contains(text.as_str()),
                "trial {trial}: lost {text}"
            );
        }
    }
    eprintln!("serve kill -9: {n} trials, {acked} syncs completed, {killed} cut short; 0 lost");
    assert!(acked + killed == n);
}
