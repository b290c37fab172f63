//! What every command shares: the context (home, community, output mode),
//! printing data to stdout and hints to stderr, aligned tables, and the one
//! place where errors become exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::model::ModelError;
use crate::store::{Home, StoreError};
use crate::trust::TrustError;

/// The context of one command.
pub struct Ctx {
    /// The home folder.
    pub home: Home,
    /// The `-c` reference, if given.
    pub community: Option<String>,
    /// `--json`.
    pub json: bool,
    /// `-q`.
    pub quiet: bool,
    /// The time the command runs at.
    pub now: i64,
}

/// A usage error (exit 2): a bad or missing value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// An integrity rejection found by a command itself (exit 4).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IntegrityFailure(pub String);

/// Partial success (exit 3), e.g. some peers synced and some did not.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Partial(pub String);

/// A usage error.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

impl Ctx {
    /// Resolve the home folder and the clock.
    pub fn new(
        home: Option<PathBuf>,
        community: Option<String>,
        json: bool,
        quiet: bool,
    ) -> anyhow::Result<Self> {
        let root = match home {
            Some(h) => h,
            None => Home::default_root().ok_or_else(|| {
                usage("no platform data folder here; pass --home DIR or set CONVENE_HOME")
            })?,
        };
        Ok(Ctx {
            home: Home::new(root),
            community,
            json,
            quiet,
            now: crate::clock::now(),
        })
    }

    /// Print a result: `value` as JSON with `--json`, else the human text.
    pub fn emit<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        let text = if self.json {
            let mut t = serde_json::to_string_pretty(value)?;
            t.push('\n');
            t
        } else {
            human()
        };
        print_stdout(&text)
    }

    /// A hint on stderr after a success (not with `-q`, nor with `--json`,
    /// where a script is reading and a suggestion is noise). An error's
    /// hint is printed by `main` with the error, whatever the mode.
    pub fn hint(&self, text: &str) {
        if !self.quiet && !self.json {
            eprintln!("hint: {text}");
        }
    }

    /// A status line on stderr saying what a command did (not with `-q`).
    /// It stays with `--json`: stdout then carries the data alone, and a
    /// script may keep stderr as its log (`serve` logs its sessions this
    /// way). The live progress line of long operations is another thing
    /// (`progress.rs`), never shown with `--json`.
    pub fn status(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// A relative time for people.
    pub fn ago(&self, at: i64) -> String {
        crate::clock::relative(at, self.now)
    }
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Columns aligned to their widest cell; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The exit code for an error: 2 usage, 4 integrity or security, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return 2;
        }
        if cause.is::<Partial>() {
            return 3;
        }
        if let Some(e) = cause.downcast_ref::<crate::sync::SyncError>()
            && e.is_integrity()
        {
            return 4;
        }
        if cause.is::<IntegrityFailure>() || cause.is::<TrustError>() {
            return 4;
        }
        if let Some(e) = cause.downcast_ref::<StoreError>()
            && e.is_integrity()
        {
            return 4;
        }
        if let Some(ModelError::Load(load)) = cause.downcast_ref::<ModelError>()
            && load.integrity
        {
            return 4;
        }
    }
    1
}

/// A next step for the errors people meet most, printed as `hint: …`.
fn hint_for(err: &anyhow::Error) -> Option<&'static str> {
    let text = err.to_string();
    let prefix = err.chain().find_map(|cause| {
        cause.downcast_ref::<crate::ids::PrefixError>().or(
            match cause.downcast_ref::<crate::model::ModelError>() {
                Some(crate::model::ModelError::Reference(e)) => Some(e),
                _ => None,
            },
        )
    });
    if text.starts_with("no identity in") {
        Some("create one with `convene init --name NAME`")
    } else if text.starts_with("no community yet") {
        Some("found one with `convene community create NAME`")
    } else if exit_code(err) == 4 {
        Some("nothing was changed; the damaged or refused data is left as it is for inspection")
    } else if let Some(e) = prefix {
        Some(match e {
            crate::ids::PrefixError::Ambiguous { .. } => "type more of the id",
            crate::ids::PrefixError::NotFound { .. } => {
                "list what there is with `convene responses`, `convene show RESPONSE` or `convene members`; if someone else made it, sync first"
            }
        })
    } else if text.contains("only facilitators may") {
        Some("ask a facilitator (`convene members` lists them)")
    } else if text.starts_with("no known peer") {
        Some("on the other device, `convene ticket` prints a ticket to pass here")
    } else if text == "no peer could be reached" {
        Some(
            "check that `convene serve` runs on the other device and that its address is reachable; offline, carry a `convene bundle export` file instead",
        )
    } else if text.contains("is published") {
        Some("a published response is frozen; open a new response to take it further")
    } else {
        None
    }
}

/// Print an error as `convene: error: …` (and a hint) and give its exit code.
pub fn report(err: &anyhow::Error, quiet: bool) -> ExitCode {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !message.contains(&c) {
            message.push_str(": ");
            message.push_str(&c);
        }
    }
    eprintln!("convene: error: {message}");
    if !quiet && let Some(hint) = hint_for(err) {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(exit_code(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["ID", "NAME"],
            &[
                vec!["a".into(), "x".into()],
                vec!["abcdef".into(), "y".into()],
            ],
        );
        assert_eq!(t, "ID      NAME\na       x\nabcdef  y\n");
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(exit_code(&usage("bad")), 2);
        assert_eq!(exit_code(&IntegrityFailure("x".into()).into()), 4);
        assert_eq!(exit_code(&TrustError::BadSignature("x".into()).into()), 4);
        let corrupt = StoreError::corrupt(std::path::Path::new("f"), "bad");
        assert_eq!(
            exit_code(&anyhow::Error::from(corrupt).context("loading")),
            4
        );
        assert_eq!(exit_code(&anyhow::anyhow!("nope")), 1);
        assert_eq!(exit_code(&StoreError::Missing("x".into()).into()), 1);
    }
}
