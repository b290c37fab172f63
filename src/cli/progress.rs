//! A live line on stderr while a long operation runs (a sync, a bundle
//! import, the demo): what it is doing and for how long, and for a sync the
//! bytes received so far.
//!
//! Only on a terminal, only after a short delay (a quick command prints
//! nothing), never with `--json` or `-q`, and the line is wiped when the
//! operation ends, so that scripts and logs never see it.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::output::Ctx;

/// Nothing is shown before this.
const DELAY: Duration = Duration::from_millis(800);
/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(250);

/// The line being shown; it stops when dropped.
pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Progress {
    /// Show `what` (and `bytes`, if given) while the returned value lives.
    pub fn start(ctx: &Ctx, what: &str, bytes: Option<&'static AtomicU64>) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let shown = !ctx.json && !ctx.quiet && std::io::stderr().is_terminal();
        let thread = shown.then(|| {
            let done = done.clone();
            let what = what.to_string();
            std::thread::spawn(move || draw(&what, bytes, &done))
        });
        Progress {
            done,
            thread: Mutex::new(thread),
        }
    }

    /// Print a narration line on stderr (not with `-q`) above the live
    /// line, which is wiped first and redrawn at its next tick; on a pipe
    /// it is a plain line.
    pub fn say(&self, ctx: &Ctx, text: &str) {
        if ctx.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        let live = self.thread.lock().is_ok_and(|t| t.is_some());
        let wipe = if live { "\r\x1b[K" } else { "" };
        let _ = writeln!(err, "{wipe}{text}");
        let _ = err.flush();
    }

    /// Wipe the line and stop redrawing it (before writing the result to
    /// stdout, which may be the same terminal).
    pub fn stop(&self) {
        self.done.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

fn draw(what: &str, bytes: Option<&AtomicU64>, done: &AtomicBool) {
    let start = Instant::now();
    let mut drawn = false;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(EVERY.min(DELAY));
        if start.elapsed() < DELAY || done.load(Ordering::Relaxed) {
            continue;
        }
        let line = line(
            what,
            start.elapsed(),
            bytes.map(|b| b.load(Ordering::Relaxed)),
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
        drawn = true;
    }
    if drawn {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}

/// `syncing… 3 s, 1.2 MB received`.
fn line(what: &str, elapsed: Duration, bytes: Option<u64>) -> String {
    let mut text = format!("{what}… {} s", elapsed.as_secs());
    if let Some(bytes) = bytes {
        text.push_str(&format!(", {} received", size(bytes)));
    }
    text
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{} KB", b >> 10),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_for_how_long_and_how_much() {
        assert_eq!(
            line("importing", Duration::from_millis(3_400), None),
            "importing… 3 s"
        );
        assert_eq!(
            line("syncing", Duration::from_secs(12), Some(1_300_000)),
            "syncing… 12 s, 1.2 MB received"
        );
        assert_eq!(size(2_048), "2 KB");
        assert_eq!(size(10), "10 B");
    }
}
