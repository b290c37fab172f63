//! `doctor`: check every file of this home as a command would read it, and
//! say what is wrong and how to get it back.
//!
//! Nothing is changed: damaged files are reported (exit 4), notes left by
//! earlier repairs (a torn tail kept aside, bytes found missing at the end of
//! a log) are listed, and each problem comes with the way to recover what it
//! cost from other devices.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::output::{Ctx, IntegrityFailure, table};
use crate::store::doclog::{self, DocFiles};
use crate::store::{CommunityStore, fsutil, peers};

/// One file checked.
#[derive(Debug, Serialize)]
struct Check {
    /// The file or folder, relative to the home.
    file: String,
    /// `ok`, `damaged`, or `note` (left by an earlier repair).
    status: &'static str,
    /// What was found.
    detail: String,
    /// How to recover, when something is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    recover: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    /// True when nothing is damaged.
    ok: bool,
    checks: Vec<Check>,
}

const FROM_PEERS: &str = "move the file aside (keep it), then run `convene sync` with another device \
     of the community, or `convene bundle import` a bundle made on one: the document comes back \
     from their copy";

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Notes left beside files by earlier repairs.
fn notes(root: &Path, dir: &Path, out: &mut Vec<Check>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let detail = if name.contains(".torn-") {
            "a torn tail (a write cut short by a crash) was cut from the log and kept here"
        } else if name.contains(".truncated-") {
            "bytes were found missing at the end of the log; what was left loads"
        } else {
            continue;
        };
        out.push(Check {
            file: relative(root, &path),
            status: "note",
            detail: detail.into(),
            recover: Some(
                "`convene sync` or `convene bundle import` brings back any change another device holds"
                    .into(),
            ),
        });
    }
}

/// A log shorter than its seal: records lost at its end.
fn shortened(root: &Path, log: &Path) -> Option<Check> {
    let sealed = fsutil::sealed_len(log).ok()??;
    let actual = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    (actual < sealed).then(|| Check {
        file: relative(root, log),
        status: "damaged",
        detail: format!(
            "the last {} bytes are missing (it held {sealed} after its last write); what is left loads",
            sealed - actual
        ),
        recover: Some(
            "run `convene sync` with another device, or `convene bundle import` a bundle made on \
             one: they hold the lost changes"
                .into(),
        ),
    })
}

fn check_community(ctx: &Ctx, dir: &Path, id: crate::trust::CommunityId, out: &mut Vec<Check>) {
    let root = ctx.home.root();
    let store = match CommunityStore::open(dir, id) {
        Ok(store) => store,
        Err(e) => {
            out.push(Check {
                file: relative(root, &dir.join("certs.log")),
                status: "damaged",
                detail: e.to_string(),
                recover: Some(FROM_PEERS.into()),
            });
            return;
        }
    };
    out.push(Check {
        file: relative(root, &dir.join("certs.log")),
        status: "ok",
        detail: format!(
            "{} certificates, {} members",
            store.certificate_bytes().len(),
            store.membership().members().count()
        ),
        recover: None,
    });
    if store.actor_replaced() {
        out.push(Check {
            file: relative(root, &dir.join("actor")),
            status: "note",
            detail: "missing or damaged: this device's next changes go under a new Automerge actor"
                .into(),
            recover: Some(
                "nothing is lost: the next command that writes (post, thread, draft, stance, ...) \
                 writes a new one"
                    .into(),
            ),
        });
    }
    let names = match store.doc_names() {
        Ok(names) => names,
        Err(e) => {
            out.push(Check {
                file: relative(root, &store.docs_dir()),
                status: "damaged",
                detail: e.to_string(),
                recover: None,
            });
            return;
        }
    };
    if let Some(check) = shortened(root, &dir.join("certs.log")) {
        out.push(check);
    }
    for name in names {
        let files = DocFiles::new(&store.docs_dir(), &name);
        if let Some(check) = shortened(root, &files.log) {
            out.push(check);
        }
        let (status, detail, recover) =
            // Every signature, even under this device's own attestations: doctor
            // checks more deeply than a command does.
            match doclog::load(&files, store.membership(), None, false, ctx.now) {
                Ok(Some(loaded)) => (
                    "ok",
                    format!(
                        "{} changes, all signatures verified",
                        loaded.signatures.len()
                    ),
                    None,
                ),
                Ok(None) => ("ok", "empty".to_string(), None),
                Err(e) => ("damaged", e.to_string(), Some(FROM_PEERS.to_string())),
            };
        out.push(Check {
            file: relative(root, &store.docs_dir().join(&name)),
            status,
            detail,
            recover,
        });
    }
    notes(root, dir, out);
    notes(root, &store.docs_dir(), out);
    out.push(match peers::load(dir) {
        Ok(known) => Check {
            file: relative(root, &dir.join("peers.json")),
            status: "ok",
            detail: format!("{} known peers to recover from", known.len()),
            recover: None,
        },
        Err(e) => Check {
            file: relative(root, &dir.join("peers.json")),
            status: "damaged",
            detail: e.to_string(),
            recover: Some(
                "delete it: it only lists where peers were; `convene sync TICKET` or LAN \
                 discovery finds them again"
                    .into(),
            ),
        },
    });
}

/// `convene doctor`
pub fn doctor(ctx: &Ctx) -> anyhow::Result<()> {
    // A shared lock: no writer changes files under the check.
    let lock = ctx.home.lock_file()?;
    let _guard = lock.read()?;
    let root = ctx.home.root().to_path_buf();
    let mut checks = Vec::new();
    match ctx.home.identity() {
        Ok(identity) => checks.push(Check {
            file: "identity".into(),
            status: "ok",
            detail: format!(
                "{} on device {}",
                identity.name,
                identity.device_id().short()
            ),
            recover: None,
        }),
        Err(e) => checks.push(Check {
            file: "identity".into(),
            status: "damaged",
            detail: e.to_string(),
            recover: Some(
                "restore the identity folder from a backup; without its keys this device cannot \
                 sign, but its communities can still be read"
                    .into(),
            ),
        }),
    }
    for id in ctx.home.community_ids()? {
        let dir = root.join("communities").join(id.to_hex());
        check_community(ctx, &dir, id, &mut checks);
    }
    let report = Report {
        ok: checks.iter().all(|c| c.status != "damaged"),
        checks,
    };
    ctx.emit(&report, || {
        let rows: Vec<Vec<String>> = report
            .checks
            .iter()
            .map(|c| vec![c.status.to_string(), c.file.clone(), c.detail.clone()])
            .collect();
        let mut text = table(&["STATUS", "FILE", "DETAIL"], &rows);
        for c in report.checks.iter().filter(|c| c.recover.is_some()) {
            text.push_str(&format!(
                "\n{}: {}\n",
                c.file,
                c.recover.as_deref().unwrap_or_default()
            ));
        }
        text
    })?;
    if report.ok {
        Ok(())
    } else {
        let damaged = report
            .checks
            .iter()
            .filter(|c| c.status == "damaged")
            .count();
        Err(IntegrityFailure(format!("{damaged} damaged file(s); see above")).into())
    }
}
