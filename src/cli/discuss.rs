//! `thread` and `post`.

use serde::Serialize;

use super::input;
use super::output::Ctx;
use super::session;
use crate::ids::short;
use crate::store::thread_hints::StoredThreadHints;

#[derive(Serialize)]
struct ThreadCreated {
    id: String,
    response: String,
    title: String,
    comment: Option<String>,
}

#[derive(Serialize)]
struct Posted {
    id: String,
    thread: String,
    response: String,
    body: String,
    reply_to: Option<String>,
}

/// `convene thread RESPONSE TITLE [-m TEXT]`
pub fn thread(ctx: &Ctx, response: &str, title: &str, message: Option<&str>) -> anyhow::Result<()> {
    let first = message.map(input::message).transpose()?;
    let created = session::write(ctx, |ws, _, _| {
        let rid = ws.resolve_response(response)?;
        let (tid, cid) = ws.start_thread(&rid, title, first.as_deref())?;
        Ok(ThreadCreated {
            id: tid.to_string(),
            response: rid.to_string(),
            title: title.trim().to_string(),
            comment: cid.map(|c| c.to_string()),
        })
    })?;
    ctx.emit(&created, || format!("{}\n", created.id))?;
    ctx.status(&format!(
        "Started thread {}: {}",
        short(&created.id),
        created.title
    ));
    ctx.hint(&format!(
        "reply with `convene post {} -m TEXT`",
        short(&created.id)
    ));
    Ok(())
}

/// `convene post THREAD -m TEXT [--reply-to COMMENT]`
pub fn post(
    ctx: &Ctx,
    thread: &str,
    message: &str,
    reply_to: Option<&str>,
    on_behalf_of: Option<&str>,
) -> anyhow::Result<()> {
    let body = input::message(message)?;
    let posted = session::write(ctx, |ws, _, store| {
        let member = on_behalf_of
            .map(|m| super::invite::member_named(ws.membership(), m))
            .transpose()?;
        let mut hints = StoredThreadHints::open(store);
        let found = ws.resolve_thread_with(thread, &mut hints);
        hints.save();
        let (rid, tid) = found?;
        let cid = ws.post_for(&rid, &tid, &body, reply_to, member.as_ref())?;
        let comment = ws
            .comment(&rid, &tid, &cid)?
            .ok_or_else(|| anyhow::anyhow!("the new comment cannot be read back"))?;
        Ok(Posted {
            id: cid.to_string(),
            thread: tid.to_string(),
            response: rid.to_string(),
            body: comment.body,
            reply_to: comment.reply_to,
        })
    })?;
    ctx.emit(&posted, || format!("{}\n", posted.id))?;
    ctx.status(&format!(
        "Posted {} in thread {}.",
        short(&posted.id),
        short(&posted.thread)
    ));
    Ok(())
}

/// `convene confirm COMMENT [--correct TEXT]`
pub fn confirm(ctx: &Ctx, comment: &str, correct: Option<&str>) -> anyhow::Result<()> {
    let correction = correct.map(input::message).transpose()?;
    let confirmed = session::write(ctx, |ws, _, _| {
        // Find the comment among every thread of every response.
        let mut candidates = Vec::new();
        for entry in ws.index()? {
            for thread in ws.threads(&entry.id)? {
                for c in &thread.comments {
                    if c.id.starts_with(comment) {
                        candidates.push((entry.id.clone(), thread.id.clone(), c.id.clone()));
                    }
                }
            }
        }
        let (rid, tid, cid) = match &candidates[..] {
            [one] => one.clone(),
            [] => anyhow::bail!("no comment starts with '{comment}'"),
            _ => anyhow::bail!(
                "'{comment}' names {} comments; give more of the id",
                candidates.len()
            ),
        };
        let thread =
            crate::ids::ObjectId::parse(&tid).ok_or_else(|| anyhow::anyhow!("a bad thread id"))?;
        let id =
            crate::ids::ObjectId::parse(&cid).ok_or_else(|| anyhow::anyhow!("a bad comment id"))?;
        ws.confirm_comment(&rid, &thread, &id, correction.as_deref())?;
        Ok(serde_json::json!({
            "comment": cid,
            "response": rid.to_string(),
            "corrected": correction.is_some(),
        }))
    })?;
    ctx.emit(&confirmed, || {
        format!("{}\n", confirmed["comment"].as_str().unwrap_or_default())
    })?;
    ctx.status(if correct.is_some() {
        "Corrected."
    } else {
        "Confirmed."
    });
    Ok(())
}
