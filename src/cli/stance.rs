//! `stance` and `tally`.

use serde::Serialize;

use super::input;
use super::output::{Ctx, table, usage};
use super::session;
use crate::ids::short;
use crate::model::views::Stance;

#[derive(Serialize)]
struct Taken {
    draft: String,
    response: String,
    stance: Stance,
    reason: Option<String>,
    version: Vec<String>,
}

/// `convene stance DRAFT STANCE [-m REASON]`
pub fn take(
    ctx: &Ctx,
    draft: &str,
    stance: Stance,
    reason: Option<&str>,
    on_behalf_of: Option<&str>,
) -> anyhow::Result<()> {
    let reason = reason.map(input::message).transpose()?;
    if stance.needs_reason() && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(usage(format!(
            "a reason is required for {}: add -m REASON",
            stance.as_str()
        )));
    }
    let taken = session::write(ctx, |ws, _, _| {
        let entry = ws.resolve_draft(draft)?;
        match on_behalf_of {
            Some(m) => {
                let member = super::invite::member_named(ws.membership(), m)?;
                ws.take_stance_for(&entry, stance, reason.as_deref(), &member)?;
            }
            None => ws.take_stance(&entry, stance, reason.as_deref())?,
        }
        Ok(Taken {
            draft: entry.id.to_string(),
            response: entry.response.to_string(),
            stance,
            reason: reason
                .as_deref()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty()),
            version: ws.draft_version(&entry.id)?,
        })
    })?;
    ctx.emit(&taken, || format!("{}\n", taken.draft))?;
    ctx.status(&format!(
        "Your stance on draft {}: {}.",
        short(&taken.draft),
        stance.as_str()
    ));
    Ok(())
}

/// `convene tally RESPONSE`
pub fn tally(ctx: &Ctx, response: &str) -> anyhow::Result<()> {
    let (title, tally) = session::read(ctx, |ws, _| {
        let rid = ws.resolve_response(response)?;
        Ok((ws.entry(&rid)?.title, ws.tally(&rid)?))
    })?;
    ctx.emit(&tally, || {
        let mut s = format!("Range of views on '{title}'\n\n");
        let rows: Vec<Vec<String>> = tally
            .drafts
            .iter()
            .map(|d| {
                let c = &d.counts;
                vec![
                    short(&d.id).to_string(),
                    c.support.to_string(),
                    c.reservations.to_string(),
                    c.stand_aside.to_string(),
                    c.object.to_string(),
                    c.abstain.to_string(),
                    d.stale.to_string(),
                    d.late.to_string(),
                    d.title.clone(),
                ]
            })
            .collect();
        if rows.is_empty() {
            s.push_str("No drafts yet.\n");
        } else {
            s.push_str(&table(
                &[
                    "DRAFT",
                    "SUPPORT",
                    "RESERVATIONS",
                    "STAND-ASIDE",
                    "OBJECT",
                    "ABSTAIN",
                    "STALE",
                    "LATE",
                    "TITLE",
                ],
                &rows,
            ));
        }
        let unheard: Vec<&str> = tally
            .not_yet_heard
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        s.push_str(&format!(
            "\nNot yet heard: {}\n",
            if unheard.is_empty() {
                "nobody — every member has spoken".to_string()
            } else {
                unheard.join(", ")
            }
        ));
        let names = |list: &[crate::model::views::MemberRef]| {
            list.iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !tally.silent.is_empty() {
            s.push_str(&format!(
                "  Silent (have seen the current drafts): {}\n",
                names(&tally.silent)
            ));
        }
        if !tally.could_not_have_seen.is_empty() {
            s.push_str(&format!(
                "  Could not yet have seen them: {} (their devices have not synced since)\n",
                names(&tally.could_not_have_seen)
            ));
        }
        s.push_str("\nShare of voice\n");
        let rows: Vec<Vec<String>> = tally
            .participation
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.comments.to_string(),
                    p.words.to_string(),
                    p.stances.to_string(),
                ]
            })
            .collect();
        s.push_str(&table(&["MEMBER", "COMMENTS", "WORDS", "STANCES"], &rows));
        let t = &tally.top_fifth;
        if t.total_words > 0 {
            s.push_str(&format!(
                "\nThe most active fifth ({} member{}) wrote {} % of the words.\n",
                t.members,
                if t.members == 1 { "" } else { "s" },
                t.percent
            ));
        }
        s
    })
}
