//! Timing and reporting helpers: medians, whole-process runs of the
//! `convene` binary, `serve` as a child process, folder sizes, and the one
//! JSON line per figure the benchmark prints.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One figure, as printed and as written into docs/performance.md.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Figure {
    pub figure: String,
    pub value: f64,
    pub unit: &'static str,
}

/// Print a figure as one JSON line and keep it.
pub fn report(figures: &mut Vec<Figure>, name: &str, value: f64, unit: &'static str) {
    let figure = Figure {
        figure: name.to_string(),
        value: (value * 100.0).round() / 100.0,
        unit,
    };
    println!("{}", serde_json::to_string(&figure).unwrap_or_default());
    figures.push(figure);
}

/// The median of some durations, in milliseconds.
pub fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    if times.is_empty() {
        return f64::NAN;
    }
    let mid = times.len() / 2;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if times.len() % 2 == 1 {
        ms(times[mid])
    } else {
        (ms(times[mid - 1]) + ms(times[mid])) / 2.0
    }
}

/// Build the release `convene` binary (a no-op when it is up to date) and
/// return its path.
pub fn convene_binary() -> anyhow::Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--bin", "convene"])
        .status()?;
    anyhow::ensure!(
        status.success(),
        "cargo build --release --bin convene failed"
    );
    let exe = std::env::current_exe()?;
    // target/release/examples/bench → target/release/convene
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow::anyhow!("cannot find the target folder"))?;
    Ok(release.join("convene"))
}

/// Run `convene --home HOME ARGS…` to the end; its wall time.
pub fn run(bin: &Path, home: &Path, args: &[&str]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = Command::new(bin)
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    let took = start.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "convene {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

/// `runs` timings of the whole `convene sync` process in `home` against
/// `ticket`, as people run it, each after `reset` put the home back.
pub fn sync_commands(
    bin: &Path,
    home: &Path,
    ticket: &str,
    runs: usize,
    reset: &dyn Fn() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs {
        reset()?;
        took.push(run(bin, home, &["-q", "sync", ticket, "--relay", "off"])?);
    }
    Ok(took)
}

/// `convene serve` on loopback, without relays or LAN discovery.
pub struct Serve {
    child: Child,
    pub ticket: String,
}

impl Serve {
    pub fn start(bin: &Path, home: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .arg("--home")
            .arg(home)
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--no-mdns",
                "--relay",
                "off",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("serve has no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        anyhow::ensure!(
            line.starts_with("cvpeer"),
            "serve printed no ticket: {line}"
        );
        Ok(Serve {
            child,
            ticket: line.trim().to_string(),
        })
    }

    /// Peak resident memory so far (VmHWM), in MiB.
    pub fn peak_rss_mb(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/…/status"))?;
        Ok(kb / 1024.0)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes of all files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
