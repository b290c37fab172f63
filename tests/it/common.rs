//! Running the real binary against an isolated home with a fixed clock.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
