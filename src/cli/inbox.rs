//! `convene inbox [--mark-read]`: what arrived since the member last looked,
//! per response, and the one-line summaries that `sync` and `bundle import`
//! end with.

use anyhow::Context;
use serde::Serialize;

use super::output::Ctx;
use crate::model::inbox::{AtMarks, Inbox, Marks, NewsCounts, ResponseNews};
use crate::model::shared_loads::{LoadedDocs, SharedLoads};
use crate::model::{DocId, Workspace};
use crate::store::{CommunityStore, Identity, read_marks};

#[derive(Serialize)]
struct InboxOutput<'a> {
    #[serde(flatten)]
    inbox: &'a Inbox,
    /// The inbox was marked read after it was printed.
    marked_read: bool,
}

/// `convene inbox [--mark-read]`
pub fn inbox(ctx: &Ctx, mark_read: bool) -> anyhow::Result<()> {
    let identity = ctx.home.identity()?;
    let lock = ctx.home.lock_file()?;
    let _guard = lock.read().context("taking the home's read lock")?;
    let store = ctx.home.resolve(ctx.community.as_deref())?;
    let seen = read_marks::load(&store).unwrap_or_default();
    let inbox = news(&store, &identity, seen, false, ctx.now)?;
    let out = InboxOutput {
        inbox: &inbox,
        marked_read: mark_read,
    };
    ctx.emit(&out, || render(&inbox))?;
    if mark_read {
        read_marks::save(&store, &read_marks::current(&store, ctx.now)?)?;
        ctx.status("Marked read.");
    } else if !inbox.is_empty() {
        ctx.hint("`convene inbox --mark-read` marks all this as read.");
    }
    Ok(())
}

/// What is in `store` now and was not at `marks` (see [`AtMarks`]), as
/// `identity`'s member reads it.
pub fn news(
    store: &CommunityStore,
    identity: &Identity,
    marks: Marks,
    unmarked_as_now: bool,
    now: i64,
) -> anyhow::Result<Inbox> {
    let docs = LoadedDocs::default();
    let pair = || {
        now_and_then(
            store,
            identity,
            marks.clone(),
            unmarked_as_now,
            now,
            docs.clone(),
            false,
        )
    };
    Ok(Workspace::news_on_every_core(
        pair,
        Some(identity.member_id()),
        None,
    )?)
}

/// The community now and at `marks`, two workspaces that read each
/// document once between them (`model::shared_loads`), starting from
/// `docs` (documents already in memory, as they are on disk now). With
/// `repair` (the write lock held) torn log tails are cut as documents
/// load: a workspace that writes later may share what these read.
fn now_and_then(
    store: &CommunityStore,
    identity: &Identity,
    marks: Marks,
    unmarked_as_now: bool,
    now: i64,
    docs: LoadedDocs,
    repair: bool,
) -> (Workspace, Workspace) {
    let inner = match repair {
        true => store.repairing_loader(identity, now),
        false => store.loader(identity, now),
    };
    let then_loader = AtMarks::new(
        SharedLoads::new(inner, docs.clone()),
        marks,
        unmarked_as_now,
    );
    let then = Workspace::new(store.membership().clone(), Box::new(then_loader), now);
    let ws = store.workspace_with(identity, now, repair, |loader| {
        Box::new(SharedLoads::new(loader, docs))
    });
    (ws, then)
}

/// The inbox for people.
fn render(inbox: &Inbox) -> String {
    if inbox.is_empty() {
        return "Nothing new.\n".to_string();
    }
    let mut out = String::new();
    for r in &inbox.responses {
        render_response(&mut out, r);
    }
    out
}

fn render_response(out: &mut String, r: &ResponseNews) {
    let short = crate::ids::short(&r.id);
    out.push_str(&format!(
        "{} ({short}){}\n",
        r.title,
        if r.new { "  [new]" } else { "" }
    ));
    if r.published {
        out.push_str("  published\n");
    }
    if let Some(due) = &r.due {
        let when = match due.days_left {
            d if d < 0 => format!("passed {} day(s) ago", -d),
            0 => "today".to_string(),
            d => format!("in {d} day(s)"),
        };
        out.push_str(&format!("  due {} ({when})\n", due.date));
    }
    for c in &r.comments {
        let how = if c.reply_to_you {
            "replied to you"
        } else if c.reply_to.is_some() {
            "replied"
        } else {
            "wrote"
        };
        out.push_str(&format!(
            "  {} {how} in \"{}\": {}\n",
            c.author_name, c.thread, c.excerpt
        ));
    }
    for d in &r.drafts {
        let what = if d.new { "new draft" } else { "draft" };
        out.push_str(&format!(
            "  {what} \"{}\" ({}): +{} -{} words\n",
            d.title,
            crate::ids::short(&d.id),
            d.words_added,
            d.words_removed
        ));
        for line in &d.diff {
            out.push_str(&format!("      {line}\n"));
        }
    }
    for s in &r.stances {
        let was = s
            .previous
            .map(|p| format!(" (was {})", p.as_str()))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}: {}{was} on \"{}\"\n",
            s.name,
            s.stance.as_str(),
            s.draft_title
        ));
    }
    for a in &r.amendments {
        let what = if a.new { "proposed" } else { "decided" };
        out.push_str(&format!(
            "  amendment {} by {} {what}: {}\n",
            crate::ids::short(&a.id),
            a.author_name,
            a.state.as_str()
        ));
    }
}

/// After a sync or an import: record a receipt (`model::receipt`) for each
/// draft whose document changed (`arrived` names it), so that tallies
/// everywhere can tell that this member could have seen it. Returns the
/// documents the receipts went into, also when writing them failed part
/// way (some may be written): whatever holds them in memory must read them
/// again. Failing is only a warning: the community is already durable.
/// Observers and removed members write none. Documents are read through
/// `loaded` first.
fn acknowledge(
    store: &CommunityStore,
    identity: &Identity,
    arrived: &Marks,
    now: i64,
    loaded: LoadedDocs,
) -> Vec<String> {
    let warn = |e: &dyn std::fmt::Display| {
        tracing::warn!("could not record what this device has seen: {e}");
    };
    // Nothing reads `loaded` after the receipts.
    let mut ws = store.workspace_with(identity, now, true, |loader| {
        Box::new(SharedLoads::last(loader, loaded))
    });
    if ws.writer().is_err() {
        return Vec::new();
    }
    let mut entries = Vec::new();
    for name in arrived.keys() {
        let Some(crate::model::DocId::Draft(draft)) = crate::model::DocId::parse(name) else {
            continue;
        };
        // A draft whose listing has not arrived yet is acknowledged later.
        let Ok(entry) = ws.resolve_draft(draft.as_str()) else {
            continue;
        };
        entries.push(entry);
    }
    if let Err(e) = ws.acknowledge_all(&entries) {
        // Nothing was written yet.
        warn(&e);
        return Vec::new();
    }
    let written: Vec<String> = ws.changed_docs().iter().map(DocId::name).collect();
    if let Err(e) = store.persist(&mut ws, identity) {
        warn(&e);
    }
    written
}

/// After a first full sync (`join`, `device add`): record that this
/// device holds every draft, so that the tally counts the member as having
/// seen the current versions, reading documents through `loaded` first
/// (those the sync holds). Only a warning if it fails.
pub fn acknowledge_everything(
    store: &CommunityStore,
    identity: &Identity,
    now: i64,
    loaded: LoadedDocs,
) {
    let everything = store.doc_names().map(|names| {
        names
            .into_iter()
            .map(|name| (name, Vec::new()))
            .collect::<Marks>()
    });
    match everything {
        Ok(everything) => {
            acknowledge(store, identity, &everything, now, loaded);
        }
        Err(e) => tracing::warn!("could not record what this device has seen: {e}"),
    }
}

/// After a sync, a `serve` session or an import: what `arrived` (each
/// changed document's heads before) brought, counted for the one-line
/// summary, and the receipts for the drafts among it. `loaded` holds
/// documents already in memory as they are on disk (those a sync session
/// holds), so that they are not read again. Both come after the data is
/// durable, so either failing is only a warning. Returns the counts and the
/// documents the receipts were written into.
pub fn after_arrival(
    store: &CommunityStore,
    identity: &Identity,
    arrived: &Marks,
    loaded: LoadedDocs,
    now: i64,
) -> (NewsCounts, Vec<String>) {
    if arrived.is_empty() {
        return (NewsCounts::default(), Vec::new());
    }
    let changed: std::collections::BTreeSet<DocId> = arrived
        .keys()
        .filter_map(|name| DocId::parse(name))
        .collect();
    // The receipts are written through the same loads: every document
    // read here has its torn log tail cut first (the write lock is held).
    let pair = || {
        now_and_then(
            store,
            identity,
            arrived.clone(),
            true,
            now,
            loaded.clone(),
            true,
        )
    };
    let counts = Workspace::news_on_every_core(pair, Some(identity.member_id()), Some(&changed))
        .map(|news| news.counts())
        .unwrap_or_else(|e| {
            tracing::warn!("could not tell what arrived: {e}");
            NewsCounts::default()
        });
    let receipts = acknowledge(store, identity, arrived, now, loaded);
    (counts, receipts)
}
