//! `draft new`, `draft edit`, `draft show`, `amend` (propose, accept, reject).

use serde::Serialize;

use super::input;
use super::output::Ctx;
use super::session;
use crate::ids::short;
use crate::model::views::{AmendmentState, DraftView};

/// `convene draft new RESPONSE TITLE (--file F | -m TEXT)`
pub fn new(ctx: &Ctx, response: &str, title: &str, body: &str) -> anyhow::Result<()> {
    let view = session::write(ctx, |ws, _, _| {
        let rid = ws.resolve_response(response)?;
        let did = ws.new_draft(&rid, title, body)?;
        let entry = ws.resolve_draft(did.as_str())?;
        Ok(ws.draft_view(&entry)?)
    })?;
    ctx.emit(&view, || format!("{}\n", view.id))?;
    ctx.status(&format!(
        "Started draft {}: {}",
        short(&view.id),
        view.title
    ));
    ctx.hint(&format!(
        "members take a stance with `convene stance {} support|reservations|stand-aside|object|abstain`",
        short(&view.id)
    ));
    Ok(())
}

#[derive(Serialize)]
struct Edited {
    id: String,
    changed: bool,
    version: Vec<String>,
    stale_stances: usize,
}

/// `convene draft edit DRAFT (--file F | -m TEXT)`
pub fn edit(ctx: &Ctx, draft: &str, body: &str) -> anyhow::Result<()> {
    let edited = session::write(ctx, |ws, _, _| {
        let entry = ws.resolve_draft(draft)?;
        let changed = ws.edit_draft(&entry, body)?;
        let view = ws.draft_view(&entry)?;
        Ok(Edited {
            id: view.id,
            changed,
            version: view.version,
            stale_stances: view.stances.iter().filter(|s| s.stale).count(),
        })
    })?;
    ctx.emit(&edited, || format!("{}\n", edited.id))?;
    if edited.changed {
        ctx.status(&format!("Edited draft {}.", short(&edited.id)));
        if edited.stale_stances > 0 {
            ctx.hint(&format!(
                "{} stance(s) were given on the earlier text and are now stale",
                edited.stale_stances
            ));
        }
    } else {
        ctx.status("The text is unchanged; nothing was written.");
    }
    Ok(())
}

/// `convene draft show DRAFT`
pub fn show(ctx: &Ctx, draft: &str) -> anyhow::Result<()> {
    let view: DraftView = session::read(ctx, |ws, _| {
        let entry = ws.resolve_draft(draft)?;
        Ok(ws.draft_view(&entry)?)
    })?;
    ctx.emit(&view, || {
        let mut s = view.body.clone();
        if !s.ends_with('\n') {
            s.push('\n');
        }
        s
    })?;
    if !ctx.json && !ctx.quiet {
        let authors: Vec<&str> = view.authors.iter().map(|a| a.name.as_str()).collect();
        eprintln!(
            "— draft {} '{}' by {}; {} stance(s)",
            short(&view.id),
            view.title,
            authors.join(", "),
            view.stances.len()
        );
    }
    Ok(())
}

/// `convene amend DRAFT --find TEXT --replace TEXT -m RATIONALE`
pub fn amend(
    ctx: &Ctx,
    draft: &str,
    find: &str,
    replace: &str,
    rationale: &str,
) -> anyhow::Result<()> {
    let rationale = input::message(rationale)?;
    let view = session::write(ctx, |ws, _, _| {
        let entry = ws.resolve_draft(draft)?;
        let aid = ws.propose_amendment(&entry, find, replace, &rationale)?;
        let (_, view) = ws.resolve_amendment(aid.as_str())?;
        Ok(view)
    })?;
    ctx.emit(&view, || format!("{}\n", view.id))?;
    ctx.status(&format!(
        "Proposed amendment {} to draft {}.",
        short(&view.id),
        short(&view.draft)
    ));
    ctx.hint(&format!(
        "a facilitator or the draft's creator decides with `convene amend accept {0}` or `convene amend reject {0}`",
        short(&view.id)
    ));
    Ok(())
}

/// `convene amend accept|reject AMENDMENT`
pub fn decide(ctx: &Ctx, amendment: &str, accept: bool) -> anyhow::Result<()> {
    let view = session::write(ctx, |ws, _, _| Ok(ws.decide_amendment(amendment, accept)?))?;
    ctx.emit(&view, || format!("{}\n", view.id))?;
    let what = if view.state == AmendmentState::Accepted {
        "Accepted and applied"
    } else {
        "Rejected (kept on record)"
    };
    ctx.status(&format!(
        "{what}: amendment {} to draft {}.",
        short(&view.id),
        short(&view.draft)
    ));
    Ok(())
}
