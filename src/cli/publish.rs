//! `publish`, `endorse`, `export`, `verify`.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::ExportFormat;
use super::output::{Ctx, IntegrityFailure, print_stdout};
use super::session;
use crate::ids::short;
use crate::model::export::{to_markdown, verify_export};
use crate::model::views::{EndorsementView, OutcomeView, Stance};

#[derive(Serialize)]
struct Published {
    id: String,
    #[serde(flatten)]
    outcome: OutcomeView,
}

/// `convene publish RESPONSE --draft DRAFT`
pub fn publish(ctx: &Ctx, response: &str, draft: &str) -> anyhow::Result<()> {
    let published = session::write(ctx, |ws, identity, _| {
        let rid = ws.resolve_response(response)?;
        let entry = ws.resolve_draft(draft)?;
        let outcome = ws.publish(&rid, &entry.id, identity.member_key()?)?;
        Ok(Published {
            id: rid.to_string(),
            outcome,
        })
    })?;
    ctx.emit(&published, || format!("{}\n", published.id))?;
    ctx.status(&format!(
        "Published response {} with draft {}; {} dissenting view(s) are on the record.",
        short(&published.id),
        short(&published.outcome.draft),
        published.outcome.dissent.len()
    ));
    ctx.hint(&format!(
        "members endorse it with `convene endorse {}`",
        short(&published.id)
    ));
    Ok(())
}

#[derive(Serialize)]
struct Endorsed {
    response: String,
    #[serde(flatten)]
    endorsement: EndorsementView,
}

/// `convene endorse RESPONSE`
pub fn endorse(ctx: &Ctx, response: &str, stance: Option<Stance>) -> anyhow::Result<()> {
    let endorsed = session::write(ctx, |ws, identity, _| {
        let rid = ws.resolve_response(response)?;
        Ok(Endorsed {
            response: rid.to_string(),
            endorsement: ws.endorse(&rid, identity.member_key()?, stance)?,
        })
    })?;
    ctx.emit(&endorsed, || {
        format!("{}\n", endorsed.endorsement.signature)
    })?;
    ctx.status(&format!(
        "{} endorsed response {} ({}).",
        endorsed.endorsement.name,
        short(&endorsed.response),
        endorsed.endorsement.stance
    ));
    Ok(())
}

/// `convene export RESPONSE [--format md|json|csv] [-o FILE]`
pub fn export(
    ctx: &Ctx,
    response: &str,
    format: ExportFormat,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let text = match format {
        ExportFormat::Csv => {
            let view = session::read(ctx, |ws, _| {
                let rid = ws.resolve_response(response)?;
                Ok(ws.show(&rid)?)
            })?;
            crate::model::table::to_csv(&crate::model::table::rows(&view))
                .map_err(|e| anyhow::anyhow!("cannot write the table: {e}"))?
        }
        ExportFormat::Json | ExportFormat::Md => {
            let exported = session::read(ctx, |ws, store| {
                let rid = ws.resolve_response(response)?;
                Ok(ws.export(&rid, &store.certificate_bytes())?)
            })?;
            if format == ExportFormat::Json {
                serde_json::to_string_pretty(&exported)? + "\n"
            } else {
                to_markdown(&exported)
            }
        }
    };
    let name = match format {
        ExportFormat::Md => "md",
        ExportFormat::Json => "json",
        ExportFormat::Csv => "csv",
    };
    match output {
        Some(path) => {
            std::fs::write(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            if format == ExportFormat::Csv {
                ctx.status(&format!("Wrote {}.", path.display()));
            } else {
                ctx.status(&format!(
                    "Wrote {}; check it with `convene verify {}`.",
                    path.display(),
                    path.display()
                ));
            }
            let written = serde_json::json!({
                "path": path.display().to_string(),
                "format": name,
                "bytes": text.len(),
            });
            ctx.emit(&written, String::new)
        }
        // With --json, stdout holds one JSON document: the export itself, or
        // the Markdown or CSV inside one.
        None if ctx.json && format != ExportFormat::Json => ctx.emit(
            &serde_json::json!({"format": name, "text": text}),
            String::new,
        ),
        None => print_stdout(&text),
    }
}

/// `convene verify FILE`
pub fn verify(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let content = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let report = verify_export(&String::from_utf8_lossy(&content));
    ctx.emit(&report, || {
        let mut s = String::new();
        if let Some(title) = &report.title {
            s.push_str(&format!("{title}\n"));
        }
        if let (Some(id), Some(name)) = (&report.community, &report.community_name) {
            let founder = report.founder.as_deref().unwrap_or("?");
            s.push_str(&format!(
                "  community '{name}' {id}, founded by {founder}\n"
            ));
        }
        for c in &report.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            let detail = c
                .detail
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default();
            s.push_str(&format!("  {mark}  {}{detail}\n", c.what));
        }
        s
    })?;
    if report.ok {
        ctx.status(&format!(
            "{} holds: text, statement and every signature verify.",
            file.display()
        ));
        Ok(())
    } else {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.what.as_str())
            .collect();
        Err(IntegrityFailure(format!(
            "{} was altered or is not genuine: {}",
            file.display(),
            failed.join(", ")
        ))
        .into())
    }
}
