//! `read.json` in a community folder: the heads of every document when the
//! member last marked their inbox read on this device (`inbox --mark-read`).
//! Local to the device and never synced. Missing, everything is news;
//! damaged, a warning and everything is news: nothing is lost, only shown
//! again.

use std::collections::BTreeMap;

use automerge::ChangeHash;

use super::{CommunityStore, Result};
use crate::model::inbox::Marks;

fn path(store: &CommunityStore) -> std::path::PathBuf {
    store.dir().join("read.json")
}

/// The marks saved last, or `None` if there are none (or they are damaged).
pub fn load(store: &CommunityStore) -> Option<Marks> {
    let bytes = std::fs::read(path(store)).ok()?;
    let parsed: Option<BTreeMap<String, Vec<String>>> = serde_json::from_slice(&bytes).ok();
    let marks = parsed.and_then(|docs| {
        docs.into_iter()
            .map(|(name, heads)| {
                let heads = heads
                    .iter()
                    .map(|h| h.parse::<ChangeHash>().ok())
                    .collect::<Option<Vec<_>>>()?;
                Some((name, heads))
            })
            .collect::<Option<Marks>>()
    });
    if marks.is_none() {
        tracing::warn!(
            "{} is damaged; the inbox shows everything as new",
            path(store).display()
        );
    }
    marks
}

/// Save `marks` as read.
pub fn save(store: &CommunityStore, marks: &Marks) -> Result<()> {
    let docs: BTreeMap<&String, Vec<String>> = marks
        .iter()
        .map(|(name, heads)| (name, heads.iter().map(|h| h.to_string()).collect()))
        .collect();
    let bytes = serde_json::to_vec_pretty(&docs)
        .map_err(|e| super::StoreError::Missing(format!("cannot write the read marks: {e}")))?;
    super::fsutil::write_atomic(&path(store), &bytes)
}

/// The heads of every document now.
pub fn current(store: &CommunityStore, now: i64) -> Result<Marks> {
    let mut marks = Marks::new();
    for name in store.doc_names()? {
        if let Some(mut loaded) = store.load_doc(&name, false, now)? {
            marks.insert(name, loaded.doc.get_heads());
        }
    }
    Ok(marks)
}
