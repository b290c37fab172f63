//! The change history: who changed what, when (`log`).
//!
//! Every change carries a message and a time stamp written by the device that
//! made it; its author is the member owning that device. The history is read
//! from the documents themselves, so it is exactly what was signed.

use super::doc::DocId;
use super::views::LogEntry;
use super::{Result, Workspace};
use crate::trust::signed_change::device_of_actor;

impl Workspace {
    /// Every change in every document of the community, oldest first.
    pub fn history(&mut self) -> Result<Vec<LogEntry>> {
        let mut ids = vec![DocId::Community];
        for entry in self.index()? {
            ids.push(DocId::Response(entry.id.clone()));
            for d in self.draft_entries(&entry.id)? {
                ids.push(DocId::Draft(d.id));
            }
        }
        let mut out = Vec::new();
        for id in ids {
            if !self.load(&id)? {
                continue;
            }
            let Some(open) = self.docs.get_mut(&id) else {
                continue;
            };
            let name = id.name();
            for c in open.doc.get_changes_meta(&[]) {
                let member = device_of_actor(c.actor.to_bytes())
                    .and_then(|d| self.membership.owner_of(&d))
                    .map(|m| m.id);
                out.push(LogEntry {
                    at: c.timestamp,
                    member,
                    name: member
                        .map(|m| self.membership.name_of(&m))
                        .unwrap_or_else(|| "unknown".into()),
                    doc: name.clone(),
                    message: c.message.as_deref().unwrap_or("").to_string(),
                    change: c.hash.to_string(),
                });
            }
        }
        // Stable: within one second, each document keeps its causal order.
        out.sort_by_key(|e| e.at);
        Ok(out)
    }
}
