//! Running the real binary against an isolated home with a fixed clock.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The fixed clock of the tests: 2026-11-29T10:00:00Z.
pub const NOW: &str = "1795946400";

/// A home folder that lives as long as the test.
pub struct TestHome {
    dir: tempfile::TempDir,
}

/// What a command did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The first line of stdout (the id a creating command prints).
    pub fn id(&self) -> String {
        self.stdout.lines().next().unwrap_or("").trim().to_string()
    }
}

impl TestHome {
    pub fn new() -> Self {
        TestHome {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn community_dir(&self) -> PathBuf {
        let communities = self.path().join("communities");
        std::fs::read_dir(&communities)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .unwrap_or_else(|| panic!("no community in {}", communities.display()))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_convene"));
        cmd.args(args)
            .env("CONVENE_HOME", self.path())
            .env("CONVENE_NOW", NOW)
            .env_remove("CONVENE_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Run and return whatever happened.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        to_run(out)
    }

    /// Run with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        to_run(child.wait_with_output().unwrap_or_else(|e| panic!("{e}")))
    }

    /// Run and insist on success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "convene {args:?} failed:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r
    }

    /// Run and insist on a given exit code, with the error on stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, code,
            "convene {args:?}:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "panic: {}", r.stderr);
        r
    }

    /// A home with an identity and a community.
    pub fn founded(name: &str) -> Self {
        let home = TestHome::new();
        home.ok(&["init", "--name", name]);
        home.ok(&[
            "community",
            "create",
            "Water Network",
            "--purpose",
            "testing",
        ]);
        home
    }
}

fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A new member `name` of `inviter`'s community, joined over the network
/// (`inviter` must be serving).
pub fn joined(inviter: &TestHome, name: &str) -> TestHome {
    let ticket = inviter.ok(&["invite"]).id();
    let home = TestHome::new();
    home.ok(&["init", "--name", name]);
    let r = home.ok(&["--json", "join", &ticket, "--bind", "127.0.0.1:0"]);
    assert_eq!(r.json()["name"], "Water Network");
    home
}

/// A new member `name` of `inviter`'s community, joined offline: the
/// invite's address leads nowhere, and the claim waits for a bundle.
pub fn joined_offline(inviter: &TestHome, name: &str) -> TestHome {
    let ticket = inviter.ok(&["invite", "--addr", "127.0.0.1:9"]).id();
    let home = TestHome::new();
    home.ok(&["init", "--name", name]);
    home.ok(&["join", &ticket, "--bind", "127.0.0.1:0", "--timeout", "1"]);
    home
}

/// A `convene serve` process, stopped when dropped.
pub struct Server {
    child: Child,
    /// The peer ticket it printed.
    pub ticket: String,
}

impl Server {
    /// `serve` on 127.0.0.1 with LAN discovery off.
    pub fn start(home: &TestHome) -> Self {
        Server::spawn(home.command(&["serve", "--bind", "127.0.0.1:0", "--no-mdns"]))
    }

    /// [`Server::start`], with what it says on stderr going to `log`.
    pub fn start_logged(home: &TestHome, log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("{e}"));
        let mut command = home.command(&["serve", "--bind", "127.0.0.1:0", "--no-mdns"]);
        command.stderr(file);
        Server::spawn_with(command)
    }

    /// Run a prepared `serve` command and wait for its ticket.
    pub fn spawn(mut command: Command) -> Self {
        command.stderr(Stdio::null());
        Server::spawn_with(command)
    }

    fn spawn_with(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let ticket = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("serve printed no ticket"));
        assert!(ticket.starts_with("cvpeer"), "{ticket}");
        Server {
            child,
            ticket: ticket.trim().to_string(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `check` for up to `seconds`.
pub fn eventually_within(seconds: u64, mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..seconds * 10 {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Poll `check` for up to ten seconds.
pub fn eventually(check: impl FnMut() -> bool) -> bool {
    eventually_within(10, check)
}
