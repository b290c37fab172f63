//! One example or more per command, shown at the end of its `--help`.
//!
//! They live in one table rather than in each command's doc comment, so a
//! test can check that no command lacks one and that every example parses.

/// Command path (space-separated) → example lines.
pub const EXAMPLES: &[(&str, &[&str])] = &[
    ("init", &["convene init --name \"Ana Lima\""]),
    ("whoami", &["convene whoami --json"]),
    (
        "community",
        &[
            "convene community create \"Water Network\" --purpose \"Joint positions on water policy\"",
            "convene community list",
            "convene community use \"Water Network\"",
            "convene community export-doc -o raw/",
        ],
    ),
    ("members", &["convene members --json"]),
    (
        "invite",
        &["convene invite --role member --expires 3d --qr"],
    ),
    (
        "join",
        &["convene join cvinvite7ypr...  (the ticket from `convene invite`)"],
    ),
    (
        "remove",
        &["convene remove Bo --reason \"Left the network\""],
    ),
    (
        "device",
        &[
            "convene device link                 (on the laptop you already use)",
            "convene device add cvlink...        (on the new device, in a fresh home)",
        ],
    ),
    (
        "bundle",
        &[
            "convene bundle export -o /media/usb/net.bundle",
            "convene bundle export --for Bo -o bo.bundle   (only what Bo lacks)",
            "convene bundle import /media/usb/net.bundle",
        ],
    ),
    ("ticket", &["convene ticket"]),
    ("serve", &["convene serve --bind 0.0.0.0:4433"]),
    (
        "sync",
        &[
            "convene sync                        (all known peers)",
            "convene sync cvpeer...  --timeout 60",
        ],
    ),
    (
        "open",
        &[
            "convene open development \"New monitoring rules\" --summary \"Monthly sampling for all systems\"",
            "convene open request \"EU consultation\" --from \"European Commission\" --question \"Are duties proportionate?\" --due 2027-01-15",
        ],
    ),
    ("responses", &["convene responses --json"]),
    ("show", &["convene show 3f2a"]),
    (
        "thread",
        &["convene thread 3f2a \"Field experience\" -m \"Sampling takes two days a month.\""],
    ),
    (
        "post",
        &[
            "convene post 91c0 -m \"Regional labs would halve that.\" --reply-to 5e7d",
            "convene post 91c0 -m \"(by phone) The labs are too far.\" --on-behalf-of Bo",
            "echo \"A longer comment\" | convene post 91c0 -m -",
        ],
    ),
    (
        "draft",
        &[
            "convene draft new 3f2a \"Tiered monitoring\" --file draft.txt",
            "convene draft edit 8b1c --file draft-v2.txt",
            "convene draft show 8b1c",
        ],
    ),
    (
        "amend",
        &[
            "convene amend 8b1c --find monthly --replace quarterly -m \"Winter access is hard\"",
            "convene amend accept 77aa",
        ],
    ),
    (
        "stance",
        &[
            "convene stance 8b1c support",
            "convene stance 8b1c object -m \"Labs alone do not answer the questions\"",
            "convene stance 8b1c support --on-behalf-of Bo",
        ],
    ),
    (
        "confirm",
        &[
            "convene confirm 4d2e",
            "convene confirm 4d2e --correct \"The nearest lab is 200 km away.\"",
        ],
    ),
    ("tally", &["convene tally 3f2a"]),
    ("inbox", &["convene inbox", "convene inbox --mark-read"]),
    ("publish", &["convene publish 3f2a --draft 8b1c"]),
    (
        "endorse",
        &[
            "convene endorse 3f2a",
            "convene endorse 3f2a --stance support",
        ],
    ),
    (
        "export",
        &[
            "convene export 3f2a -o response.md",
            "convene export 3f2a --format csv -o views.csv",
        ],
    ),
    ("verify", &["convene verify response.md"]),
    ("log", &["convene log --json"]),
    ("doctor", &["convene doctor --json"]),
    ("demo", &["convene demo"]),
    (
        "completions",
        &["convene completions bash > ~/.local/share/bash-completion/completions/convene"],
    ),
];

/// `command` with each subcommand's examples at the end of its help.
pub fn with_examples(mut command: clap::Command) -> clap::Command {
    for (name, lines) in EXAMPLES {
        let text = format!(
            "Example{}:\n  {}",
            if lines.len() > 1 { "s" } else { "" },
            lines.join("\n  ")
        );
        command = command.mut_subcommand(name, |sub| sub.after_help(text));
    }
    command
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_command_has_an_example_and_every_example_names_a_command() {
        let command = super::super::Cli::command();
        let names: Vec<&str> = command
            .get_subcommands()
            .map(|c| c.get_name())
            .filter(|n| *n != "help")
            .collect();
        for name in &names {
            assert!(
                EXAMPLES.iter().any(|(n, _)| n == name),
                "`{name}` has no example"
            );
        }
        for (name, lines) in EXAMPLES {
            assert!(names.contains(name), "example for unknown command `{name}`");
            for line in *lines {
                assert!(line.contains(&format!("convene {name}")), "{line}");
            }
        }
    }

    #[test]
    fn examples_without_placeholders_parse() {
        for (_, lines) in EXAMPLES {
            for line in *lines {
                // Lines with a made-up ticket, a comment or a pipe are for people.
                if line.contains("...")
                    || line.contains('(')
                    || line.contains('|')
                    || line.contains('>')
                {
                    continue;
                }
                let words = shell_words(line);
                let parsed =
                    with_examples(super::super::Cli::command()).try_get_matches_from(&words);
                assert!(
                    parsed.is_ok(),
                    "{line}: {}",
                    parsed.err().map(|e| e.to_string()).unwrap_or_default()
                );
            }
        }
    }

    /// Split on spaces, keeping double-quoted words whole.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        words
    }
}
