//! Text arguments: `-m TEXT`, `-m -` (stdin) or `--file F` (`-` is stdin).

use std::io::Read;
use std::path::Path;

use anyhow::Context;

use super::output::usage;

/// The longest text accepted for a comment, a draft or a reason.
pub const MAX_TEXT: usize = 1 << 20;

fn checked(text: String) -> anyhow::Result<String> {
    if text.len() > MAX_TEXT {
        return Err(usage(format!(
            "the text is {} bytes; the limit is {MAX_TEXT}",
            text.len()
        )));
    }
    Ok(text)
}

/// Read stdin to the end (at most one byte past the limit).
fn stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_TEXT as u64 + 1)
        .read_to_string(&mut text)
        .context("reading standard input")?;
    checked(text)
}

/// A `-m` value, with `-` meaning stdin.
pub fn message(value: &str) -> anyhow::Result<String> {
    if value == "-" {
        stdin()
    } else {
        checked(value.to_string())
    }
}

/// Text from `--file F` or `-m TEXT`.
pub fn text(file: Option<&Path>, message_arg: Option<&str>) -> anyhow::Result<String> {
    match (file, message_arg) {
        (Some(path), _) if path == Path::new("-") => stdin(),
        (Some(path), _) => {
            let size = std::fs::metadata(path)
                .with_context(|| format!("reading {}", path.display()))?
                .len();
            if size > MAX_TEXT as u64 {
                return Err(usage(format!(
                    "{} is {size} bytes; the limit is {MAX_TEXT}",
                    path.display()
                )));
            }
            checked(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
        }
        (None, Some(m)) => message(m),
        (None, None) => Err(usage("give the text with --file F or -m TEXT")),
    }
}

#[cfg(test)]
mod tests {
    use super::MAX_TEXT;
    use crate::trust::ownership::MAX_OPS_PER_CHANGE;

    #[test]
    fn peers_accept_the_largest_edit_a_command_can_make() {
        // Replacing the largest accepted text with another as large: every
        // character deleted and every one inserted is an operation.
        let largest_edit = 2 * MAX_TEXT as u64;
        assert!(MAX_OPS_PER_CHANGE >= 2 * largest_edit);
    }
}
