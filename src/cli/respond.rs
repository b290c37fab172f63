//! `open development`, `open request`, `responses`, `show`.

use std::collections::{HashMap, HashSet};

use super::input;
use super::output::{Ctx, table, usage};
use super::session;
use crate::ids::short;
use crate::model::response::{NewResponse, parse_due};
use crate::model::views::{CommentView, ResponseKind, ResponseView, Stance, ThreadView};

fn open(ctx: &Ctx, new: NewResponse) -> anyhow::Result<()> {
    let summary = session::write(ctx, |ws, _, _| {
        let id = ws.open_response(new)?;
        let listed = ws.responses()?.into_iter().find(|r| r.id == id.as_str());
        listed.ok_or_else(|| anyhow::anyhow!("the new response cannot be read back"))
    })?;
    ctx.emit(&summary, || format!("{}\n", summary.id))?;
    ctx.status(&format!(
        "Opened {} {}: {}",
        summary.kind.as_str(),
        short(&summary.id),
        summary.title
    ));
    ctx.hint(&format!(
        "start the discussion with `convene thread {} TITLE -m TEXT`",
        short(&summary.id)
    ));
    Ok(())
}

/// `convene open development TITLE --summary TEXT [--source URL]`
pub fn open_development(
    ctx: &Ctx,
    title: &str,
    summary: &str,
    source: Option<String>,
) -> anyhow::Result<()> {
    open(
        ctx,
        NewResponse {
            kind: ResponseKind::Development,
            title: title.to_string(),
            summary: input::message(summary)?,
            source,
            requester: None,
            questions: Vec::new(),
            due: None,
        },
    )
}

/// `convene open request TITLE --from ACTOR --question TEXT... --due YYYY-MM-DD`
pub fn open_request(
    ctx: &Ctx,
    title: &str,
    requester: &str,
    questions: Vec<String>,
    due: &str,
    summary: &str,
) -> anyhow::Result<()> {
    let due = parse_due(due).map_err(|e| usage(e.to_string()))?;
    if questions.iter().all(|q| q.trim().is_empty()) {
        return Err(usage("give at least one non-empty --question"));
    }
    open(
        ctx,
        NewResponse {
            kind: ResponseKind::Request,
            title: title.to_string(),
            summary: input::message(summary)?,
            source: None,
            requester: Some(requester.to_string()),
            questions,
            due: Some(due),
        },
    )
}

/// `convene responses`
pub fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let responses = session::read(ctx, |ws, _| Ok(ws.responses()?))?;
    ctx.emit(&responses, || {
        let rows: Vec<Vec<String>> = responses
            .iter()
            .map(|r| {
                vec![
                    short(&r.id).to_string(),
                    r.kind.as_str().to_string(),
                    r.status.as_str().to_string(),
                    r.due.clone().unwrap_or_else(|| "-".into()),
                    r.threads.to_string(),
                    r.drafts.to_string(),
                    r.title.clone(),
                ]
            })
            .collect();
        if rows.is_empty() {
            String::new()
        } else {
            table(
                &["ID", "KIND", "STATUS", "DUE", "THREADS", "DRAFTS", "TITLE"],
                &rows,
            )
        }
    })?;
    if responses.is_empty() {
        ctx.hint("no responses yet; a facilitator opens one with `convene open development` or `convene open request`");
    }
    Ok(())
}

/// `convene show RESPONSE`
pub fn show(ctx: &Ctx, reference: &str) -> anyhow::Result<()> {
    let view = session::read(ctx, |ws, _| {
        let id = ws.resolve_response(reference)?;
        Ok(ws.show(&id)?)
    })?;
    ctx.emit(&view, || render(ctx, &view))
}

fn render(ctx: &Ctx, v: &ResponseView) -> String {
    let mut s = format!(
        "{}  [{} · {}]  {}\n",
        v.title,
        v.kind.as_str(),
        v.status.as_str(),
        short(&v.id)
    );
    s.push_str(&format!(
        "Opened by {}, {}.\n",
        v.opened_by.name,
        ctx.ago(v.opened_at)
    ));
    if let Some(r) = &v.requester {
        s.push_str(&format!("Requested by {r}"));
        if let Some(due) = &v.due {
            s.push_str(&format!(", reply by {due}"));
        }
        s.push_str(".\n");
    }
    if let Some(src) = &v.source {
        s.push_str(&format!("Source: {src}\n"));
    }
    if !v.summary.is_empty() {
        s.push_str(&format!("\n{}\n", v.summary.trim_end()));
    }
    if !v.questions.is_empty() {
        s.push_str("\nQuestions\n");
        for (i, q) in v.questions.iter().enumerate() {
            s.push_str(&format!("  {}. {q}\n", i + 1));
        }
    }
    s.push_str(&format!("\nThreads ({})\n", v.threads.len()));
    for t in &v.threads {
        render_thread(ctx, t, &mut s);
    }
    s.push_str(&format!("\nDrafts ({})\n", v.drafts.len()));
    for d in &v.drafts {
        let authors: Vec<&str> = d.authors.iter().map(|a| a.name.as_str()).collect();
        s.push_str(&format!(
            "  {}  {}  by {}\n",
            short(&d.id),
            d.title,
            authors.join(", ")
        ));
        let mut counts = Vec::new();
        for st in Stance::ALL {
            let n = d.stances.iter().filter(|x| x.stance == st).count();
            if n > 0 {
                counts.push(format!("{n} {}", st.as_str()));
            }
        }
        let stale = d.stances.iter().filter(|x| x.stale).count();
        if !counts.is_empty() {
            s.push_str(&format!("            {}", counts.join(", ")));
            if stale > 0 {
                s.push_str(&format!(" ({stale} stale)"));
            }
            s.push('\n');
        }
        for st in &d.stances {
            let reason = st
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            let stale = match (st.stale, st.late) {
                (true, true) => " [stale, late]",
                (true, false) => " [stale]",
                (false, true) => " [late]",
                (false, false) => "",
            };
            let recorded = st
                .recorded_by
                .as_ref()
                .map(|f| format!(" (recorded by {} on their behalf)", f.name))
                .unwrap_or_default();
            s.push_str(&format!(
                "            {}{recorded} — {}{stale}{reason}\n",
                st.name,
                st.stance.as_str()
            ));
        }
    }
    if !v.amendments.is_empty() {
        s.push_str(&format!("\nAmendments ({})\n", v.amendments.len()));
        for a in &v.amendments {
            let state = match &a.decided_by {
                Some(by) => format!("{} by {}", format!("{:?}", a.state).to_lowercase(), by.name),
                None => "proposed".to_string(),
            };
            s.push_str(&format!(
                "  {}  on {}  \"{}\" → \"{}\"  ({}, {})\n            {}\n",
                short(&a.id),
                short(&a.draft),
                a.find,
                a.replace,
                a.author_name,
                state,
                a.rationale
            ));
        }
    }
    if let Some(o) = &v.outcome {
        s.push_str(&format!(
            "\nPublished by {}, {}, with draft {} (text sha256 {}).\n",
            o.published_by.name,
            ctx.ago(o.published_at),
            short(&o.draft),
            short(&o.text_hash)
        ));
        if !o.dissent.is_empty() {
            s.push_str("Dissent on record:\n");
            for d in &o.dissent {
                s.push_str(&format!("  {} — {}: {}\n", d.name, d.stance, d.reason));
            }
        }
        let names: Vec<String> = o
            .endorsements
            .iter()
            .map(|e| format!("{} ({})", e.name, e.stance))
            .collect();
        s.push_str(&format!(
            "Endorsed by {}.\n",
            if names.is_empty() {
                "nobody yet".to_string()
            } else {
                names.join(", ")
            }
        ));
    }
    s
}

/// The comments replying to `parent`, and their replies, indented.
fn walk<'a>(
    ctx: &Ctx,
    children: &HashMap<Option<&'a str>, Vec<&'a CommentView>>,
    parent: Option<&'a str>,
    depth: usize,
    shown: &mut HashSet<&'a str>,
    s: &mut String,
) {
    for c in children.get(&parent).into_iter().flatten() {
        shown.insert(c.id.as_str());
        let indent = "  ".repeat(depth + 2);
        let recorded = match (&c.recorded_by, c.confirmed) {
            (Some(f), true) => format!(" (recorded by {}, confirmed)", f.name),
            (Some(f), false) => format!(" (recorded by {} on their behalf)", f.name),
            (None, _) => String::new(),
        };
        s.push_str(&format!(
            "{indent}{}  {}{recorded} · {}\n",
            short(&c.id),
            c.author_name,
            ctx.ago(c.at)
        ));
        for line in c.body.lines() {
            s.push_str(&format!("{indent}  {line}\n"));
        }
        if let Some(correction) = &c.correction {
            s.push_str(&format!("{indent}  {} corrects it:\n", c.author_name));
            for line in correction.lines() {
                s.push_str(&format!("{indent}    {line}\n"));
            }
        }
        walk(ctx, children, Some(c.id.as_str()), depth + 1, shown, s);
    }
}

fn render_thread(ctx: &Ctx, t: &ThreadView, s: &mut String) {
    s.push_str(&format!(
        "  {}  {}  ({}, {})\n",
        short(&t.id),
        t.title,
        t.author_name,
        ctx.ago(t.at)
    ));
    // Replies are indented under their parent, in time order.
    let mut children: HashMap<Option<&str>, Vec<&CommentView>> = HashMap::new();
    for c in &t.comments {
        children.entry(c.reply_to.as_deref()).or_default().push(c);
    }
    let mut shown: HashSet<&str> = HashSet::new();
    walk(ctx, &children, None, 0, &mut shown, s);
    // Comments not reached from the top of the thread still show: replies
    // to comments that are not (yet) here, or replies in a loop (which only
    // a modified client writes).
    for c in &t.comments {
        if let Some(p) = &c.reply_to
            && !shown.contains(c.id.as_str())
        {
            s.push_str(&format!(
                "    {}  {} (reply to {}): {}\n",
                short(&c.id),
                c.author_name,
                short(p),
                c.body
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{MemberId, SecretKey};

    fn comment(id: &str, reply_to: Option<&str>, body: &str) -> CommentView {
        CommentView {
            id: id.into(),
            author: MemberId(SecretKey::generate().public()),
            author_name: "Ana".into(),
            body: body.into(),
            reply_to: reply_to.map(Into::into),
            at: 0,
            seq: 0,
            recorded_by: None,
            confirmed: false,
            correction: None,
        }
    }

    #[test]
    fn every_comment_of_a_thread_shows_even_outside_the_reply_tree() {
        let ctx = Ctx {
            home: crate::store::Home::new(std::path::PathBuf::from("/nonexistent")),
            community: None,
            json: false,
            quiet: false,
            now: 0,
        };
        let thread = ThreadView {
            id: "t0000000000000000".into(),
            title: "Views".into(),
            author: MemberId(SecretKey::generate().public()),
            author_name: "Ana".into(),
            at: 0,
            comments: vec![
                comment("a000000000000000", None, "top"),
                comment("b000000000000000", Some("a000000000000000"), "reply"),
                comment(
                    "c000000000000000",
                    Some("b000000000000000"),
                    "reply to reply",
                ),
                comment("d000000000000000", None, "second top"),
                // Its parent has not arrived; its own reply hangs from it.
                comment("e000000000000000", Some("f000000000000000"), "orphan"),
                comment(
                    "g000000000000000",
                    Some("e000000000000000"),
                    "orphan's reply",
                ),
                // A loop only a modified client writes.
                comment("h000000000000000", Some("i000000000000000"), "loop one"),
                comment("i000000000000000", Some("h000000000000000"), "loop two"),
            ],
            seq: 0,
        };
        let mut out = String::new();
        render_thread(&ctx, &thread, &mut out);
        let expected = "  t0000000  Views  (Ana, just now)
    a0000000  Ana · just now
      top
      b0000000  Ana · just now
        reply
        c0000000  Ana · just now
          reply to reply
    d0000000  Ana · just now
      second top
    e0000000  Ana (reply to f0000000): orphan
    g0000000  Ana (reply to e0000000): orphan's reply
    h0000000  Ana (reply to i0000000): loop one
    i0000000  Ana (reply to h0000000): loop two
";
        assert_eq!(out, expected);
    }
}
