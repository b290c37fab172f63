//! Text arguments: `-m TEXT`, `-m -` (stdin) or `--file F` (`-` is stdin).

use std::io::Read;
use std::path::Path;

use anyhow::Context;

use super::output::usage;

/// Read stdin to the end.
fn stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading standard input")?;
    Ok(text)
}

/// A `-m` value, with `-` meaning stdin.
pub fn message(value: &str) -> anyhow::Result<String> {
    if value == "-" {
        stdin()
    } else {
        Ok(value.to_string())
    }
}

/// Text from `--file F` or `-m TEXT`.
pub fn text(file: Option<&Path>, message_arg: Option<&str>) -> anyhow::Result<String> {
    match (file, message_arg) {
        (Some(path), _) if path == Path::new("-") => stdin(),
        (Some(path), _) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        }
        (None, Some(m)) => message(m),
        (None, None) => Err(usage("give the text with --file F or -m TEXT")),
    }
}
