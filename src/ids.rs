//! Identifiers: random object ids, 32-byte key ids, and unique-prefix lookup.
//!
//! Every object a member creates (response, thread, comment, draft,
//! amendment) gets a random id of 16 hex digits; people see the first 8 and
//! may type any unique prefix, as with git.

use std::fmt;

/// How many hex digits of an id people see.
pub const SHORT_LEN: usize = 8;

#[cfg(test)]
thread_local! {
    /// Tests only: a seeded source instead of the operating system's, so a
    /// simulation replays exactly from its seed.
    static SEEDED: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Tests only: draw this thread's random bytes from `seed` from now on.
#[cfg(test)]
pub fn seed_random_for_tests(seed: u64) {
    SEEDED.with(|s| s.set(Some(seed.max(1))));
}

/// Fill an array with random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    #[cfg(test)]
    if let Some(mut state) = SEEDED.with(|s| s.get()) {
        for byte in out.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = (state >> 24) as u8;
        }
        SEEDED.with(|s| s.set(Some(state)));
        return out;
    }
    if getrandom::fill(&mut out).is_err() {
        // The OS random source failing is unrecoverable for a tool that makes keys.
        panic!("the operating system's random source is unavailable");
    }
    out
}

/// A random id for an object inside a community's documents.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId(String);

impl ObjectId {
    /// Hex digits in a whole id.
    pub const LEN: usize = 16;

    /// A fresh random id.
    pub fn random() -> Self {
        ObjectId(hex::encode(random_bytes::<8>()))
    }

    /// Wrap an id read from a document; it must be lowercase hex.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty() && text.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
        ok.then(|| ObjectId(text.to_string()))
    }

    /// The full id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The short form people see.
    pub fn short(&self) -> &str {
        short(&self.0)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first [`SHORT_LEN`] characters of an id.
pub fn short(id: &str) -> &str {
    id.get(..SHORT_LEN).unwrap_or(id)
}

/// Why a typed reference did not name exactly one object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrefixError {
    /// Nothing starts with the prefix.
    #[error("no {what} matches '{prefix}'")]
    NotFound {
        /// The kind of object looked for.
        what: &'static str,
        /// What was typed.
        prefix: String,
    },
    /// More than one object starts with the prefix.
    #[error("'{prefix}' is ambiguous: it matches {count} {what}s ({examples})")]
    Ambiguous {
        /// The kind of object looked for.
        what: &'static str,
        /// What was typed.
        prefix: String,
        /// How many matched.
        count: usize,
        /// A few of the matches, short form.
        examples: String,
    },
}

/// Find the one candidate that starts with `prefix` (case-insensitive).
pub fn resolve_prefix<T: Clone>(
    prefix: &str,
    candidates: impl IntoIterator<Item = (String, T)>,
    what: &'static str,
) -> Result<T, PrefixError> {
    let wanted = prefix.trim().to_ascii_lowercase();
    let mut matches: Vec<(String, T)> = Vec::new();
    if !wanted.is_empty() {
        for (id, value) in candidates {
            if id == wanted {
                return Ok(value);
            }
            if id.starts_with(&wanted) {
                matches.push((id, value));
            }
        }
    }
    match matches.len() {
        0 => Err(PrefixError::NotFound {
            what,
            prefix: prefix.to_string(),
        }),
        1 => Ok(matches.remove(0).1),
        count => Err(PrefixError::Ambiguous {
            what,
            prefix: prefix.to_string(),
            count,
            examples: matches
                .iter()
                .take(3)
                .map(|(id, _)| short(id).to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<(String, u32)> {
        vec![("ab12".into(), 1), ("ab34".into(), 2), ("cd56".into(), 3)]
    }

    #[test]
    fn unique_prefix_resolves() {
        assert_eq!(resolve_prefix("cd", names(), "draft"), Ok(3));
        assert_eq!(resolve_prefix("AB3", names(), "draft"), Ok(2));
    }

    #[test]
    fn exact_match_wins_over_longer_ids() {
        let c = vec![("ab".to_string(), 1), ("abc".to_string(), 2)];
        assert_eq!(resolve_prefix("ab", c, "draft"), Ok(1));
    }

    #[test]
    fn ambiguous_and_missing_are_errors() {
        assert!(matches!(
            resolve_prefix("ab", names(), "draft"),
            Err(PrefixError::Ambiguous { count: 2, .. })
        ));
        assert!(matches!(
            resolve_prefix("ff", names(), "draft"),
            Err(PrefixError::NotFound { .. })
        ));
        assert!(matches!(
            resolve_prefix("", names(), "draft"),
            Err(PrefixError::NotFound { .. })
        ));
    }

    #[test]
    fn object_ids_are_random_hex() {
        let a = ObjectId::random();
        let b = ObjectId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 16);
        assert!(ObjectId::parse(a.as_str()).is_some());
        assert!(ObjectId::parse("xyz").is_none());
        assert_eq!(a.short().len(), SHORT_LEN);
    }
}
