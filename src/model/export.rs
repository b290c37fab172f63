//! Exporting a published response, and checking an export offline.
//!
//! The JSON export carries the text, its hash, the tally, the dissent annex,
//! the publisher's signed statement, every endorsement, and the community's
//! certificates, so that anyone holding the file can check it with no access
//! to the community: `verify` rebuilds the roster from the certificates,
//! checks the text against its hash, the statement against the publisher's
//! key and every endorsement against its member's key. The Markdown export is
//! for people; it ends with the JSON as a proof block, and `verify` also
//! checks that the Markdown above it is exactly what that proof renders to.

use serde::{Deserialize, Serialize};

use super::outcome::{STATEMENT_FORMAT, Statement, text_hash};
use super::views::{DissentEntry, EndorsementView, MemberRef, MinorityDraft, TallyView};
use super::{ModelError, Result, Workspace};
use crate::ids::{ObjectId, short};
use crate::trust::keys::signature_from_hex;
use crate::trust::statement::{verify_endorsement, verify_publication};
use crate::trust::{Certificate, CommunityId, Membership};

/// The format tag of an export.
pub const EXPORT_FORMAT: &str = "convene/export/v1";
/// The info string of the Markdown proof block.
pub const PROOF_FENCE: &str = "```convene-proof";

/// A published response as exported (`export --format json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exported {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// The community id.
    pub community: CommunityId,
    /// Its name.
    pub community_name: String,
    /// The response id.
    pub response: String,
    /// development | request.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Summary.
    pub summary: String,
    /// Who asked.
    pub requester: Option<String>,
    /// Their questions.
    pub questions: Vec<String>,
    /// Reply-by date.
    pub due: Option<String>,
    /// The adopted draft.
    pub draft: String,
    /// The adopted text.
    pub text: String,
    /// SHA-256 of the text, hex.
    pub text_hash: String,
    /// The tally at publication.
    pub tally: TallyView,
    /// The dissent annex.
    pub dissent: Vec<DissentEntry>,
    /// Other drafts and their supporters.
    pub minority_drafts: Vec<MinorityDraft>,
    /// Who published.
    pub published_by: MemberRef,
    /// When, RFC 3339.
    pub published_at: String,
    /// The signed statement (exact JSON text).
    pub statement: String,
    /// The publisher's signature over it, hex.
    pub statement_signature: String,
    /// Endorsements.
    pub endorsements: Vec<EndorsementView>,
    /// The community's certificates (their stored JSON text).
    pub certificates: Vec<String>,
}

impl Workspace {
    /// Export a published response. `certificates` are the community's
    /// certificates as stored.
    pub fn export(&mut self, response: &ObjectId, certificates: &[Vec<u8>]) -> Result<Exported> {
        let outcome = self.outcome(response)?.ok_or_else(|| {
            ModelError::Invalid(format!(
                "response {} is not published yet; a facilitator publishes it with `convene publish`",
                response.short()
            ))
        })?;
        let statement: Statement = serde_json::from_str(&outcome.statement)
            .map_err(|e| ModelError::Invalid(format!("the stored statement is unreadable: {e}")))?;
        Ok(Exported {
            format: EXPORT_FORMAT.into(),
            community: self.membership.community,
            community_name: self.membership.name.clone(),
            response: response.to_string(),
            kind: statement.kind,
            title: statement.title,
            summary: statement.summary,
            requester: statement.requester,
            questions: statement.questions,
            due: statement.due,
            draft: outcome.draft,
            text: outcome.text,
            text_hash: outcome.text_hash,
            tally: statement.tally,
            dissent: statement.dissent,
            minority_drafts: statement.minority_drafts,
            published_by: outcome.published_by,
            published_at: crate::clock::rfc3339(outcome.published_at),
            statement: outcome.statement,
            statement_signature: outcome.statement_signature,
            endorsements: outcome.endorsements,
            certificates: certificates
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect(),
        })
    }
}

/// Render an export for people, ending with its JSON as a proof block.
pub fn to_markdown(e: &Exported) -> String {
    let mut md = String::new();
    md.push_str(&format!("# {}\n\n", e.title));
    md.push_str(&format!(
        "A joint response of **{}**, published by {} on {}.\n\n",
        e.community_name, e.published_by.name, e.published_at
    ));
    if let Some(requester) = &e.requester {
        md.push_str(&format!(
            "In answer to a request for opinion from **{requester}**"
        ));
        if let Some(due) = &e.due {
            md.push_str(&format!(", due {due}"));
        }
        md.push_str(".\n\n");
        if !e.questions.is_empty() {
            md.push_str("Questions asked:\n\n");
            for q in &e.questions {
                md.push_str(&format!("- {q}\n"));
            }
            md.push('\n');
        }
    }
    if !e.summary.is_empty() {
        md.push_str(&format!("> {}\n\n", e.summary.replace('\n', "\n> ")));
    }
    md.push_str("## Adopted text\n\n");
    md.push_str(&e.text);
    if !e.text.ends_with('\n') {
        md.push('\n');
    }
    md.push_str(&format!("\nSHA-256 of the text: `{}`\n\n", e.text_hash));
    md.push_str("## Range of views\n\n| draft | support | reservations | stand-aside | object | abstain | stale |\n|---|---|---|---|---|---|---|\n");
    for d in &e.tally.drafts {
        let c = &d.counts;
        let mark = if d.id == e.draft { " (adopted)" } else { "" };
        md.push_str(&format!(
            "| {}{} | {} | {} | {} | {} | {} | {} |\n",
            d.title, mark, c.support, c.reservations, c.stand_aside, c.object, c.abstain, d.stale
        ));
    }
    if !e.tally.not_yet_heard.is_empty() {
        let names: Vec<&str> = e
            .tally
            .not_yet_heard
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        md.push_str(&format!("\nNot yet heard: {}.\n", names.join(", ")));
    }
    md.push_str("\n## Dissent\n\n");
    if e.dissent.is_empty() {
        md.push_str("No reservations, stand-asides or objections were recorded.\n");
    }
    for d in &e.dissent {
        let stale = if d.stale {
            " (on an earlier version)"
        } else {
            ""
        };
        let on = if d.draft == e.draft {
            String::new()
        } else {
            format!(" on “{}”", d.draft_title)
        };
        let recorded = d
            .recorded_by
            .as_ref()
            .map(|f| format!(" (recorded by {f} on their behalf)"))
            .unwrap_or_default();
        md.push_str(&format!(
            "- **{}**{} — {}{}{}: {}\n",
            d.name, recorded, d.stance, on, stale, d.reason
        ));
    }
    if !e.minority_drafts.is_empty() {
        md.push_str("\n## Other drafts\n\n");
        for d in &e.minority_drafts {
            md.push_str(&format!(
                "### {}\n\nSupported by {}.\n\n{}\n\n",
                d.title,
                d.supporters.join(", "),
                d.text.trim_end()
            ));
        }
    }
    md.push_str("\n## Endorsements\n\n");
    if e.endorsements.is_empty() {
        md.push_str("None yet.\n");
    }
    for en in &e.endorsements {
        md.push_str(&format!(
            "- {} ({}) — `{}`\n",
            en.name,
            en.stance,
            short(&en.signature)
        ));
    }
    md.push_str(&format!(
        "\n---\nCheck this file with `convene verify FILE`. Proof:\n\n{PROOF_FENCE}\n{}\n```\n",
        serde_json::to_string(e).unwrap_or_default()
    ));
    md
}

/// One check `verify` made.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
    /// Why not, if it did not.
    pub detail: Option<String>,
}

/// The result of `verify`.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// Everything held.
    pub ok: bool,
    /// The response id, if the file could be read.
    pub response: Option<String>,
    /// The title, if the file could be read.
    pub title: Option<String>,
    /// The community id the file claims (checked against its genesis).
    pub community: Option<CommunityId>,
    /// Its name.
    pub community_name: Option<String>,
    /// Its founder's name, from the genesis certificate.
    pub founder: Option<String>,
    /// Each check.
    pub checks: Vec<Check>,
}

impl VerifyReport {
    fn check(&mut self, what: impl Into<String>, result: std::result::Result<(), String>) {
        let ok = result.is_ok();
        self.ok &= ok;
        self.checks.push(Check {
            what: what.into(),
            ok,
            detail: result.err(),
        });
    }
}

/// Check an exported file (JSON, or Markdown with its proof block).
pub fn verify_export(content: &str) -> VerifyReport {
    let mut report = VerifyReport {
        ok: true,
        response: None,
        title: None,
        community: None,
        community_name: None,
        founder: None,
        checks: Vec::new(),
    };
    let trimmed = content.trim_start();
    let (json, markdown) = if trimmed.starts_with('{') {
        (trimmed.to_string(), None)
    } else {
        match extract_proof(content) {
            Some(json) => (json, Some(content)),
            None => {
                report.check(
                    "the file holds a convene export",
                    Err("no JSON and no proof block found".into()),
                );
                return report;
            }
        }
    };
    let exported: Exported = match serde_json::from_str(&json) {
        Ok(e) => e,
        Err(e) => {
            report.check("the export is well-formed", Err(e.to_string()));
            return report;
        }
    };
    report.response = Some(exported.response.clone());
    report.community = Some(exported.community);
    report.community_name = Some(exported.community_name.clone());
    report.title = Some(exported.title.clone());
    report.check(
        "format",
        if exported.format == EXPORT_FORMAT {
            Ok(())
        } else {
            Err(format!("unknown format '{}'", exported.format))
        },
    );
    if let Some(md) = markdown {
        report.check(
            "the Markdown text matches its proof",
            if to_markdown(&exported) == md {
                Ok(())
            } else {
                Err("the visible text was changed".into())
            },
        );
    }
    report.check(
        "text hash",
        if text_hash(&exported.text) == exported.text_hash {
            Ok(())
        } else {
            Err("the text does not match its SHA-256".into())
        },
    );

    let membership = match roster(&exported) {
        Ok(m) => {
            report.check("community certificates", Ok(()));
            report.founder = m
                .members()
                .find(|x| x.role == crate::trust::Role::Founder)
                .map(|x| x.name.clone());
            m
        }
        Err(e) => {
            report.check("community certificates", Err(e));
            return report;
        }
    };
    report.check(
        "publication statement",
        check_statement(&exported, &membership),
    );
    for en in &exported.endorsements {
        report.check(
            format!("endorsement by {}", en.name),
            check_endorsement(&exported, &membership, en),
        );
    }
    report
}

fn extract_proof(markdown: &str) -> Option<String> {
    let mut lines = markdown.lines();
    lines.find(|l| l.trim_end() == PROOF_FENCE)?;
    lines.next().map(str::to_string)
}

fn roster(e: &Exported) -> std::result::Result<Membership, String> {
    let mut verified = Vec::new();
    for (i, text) in e.certificates.iter().enumerate() {
        let cert = Certificate::from_bytes(text.as_bytes())
            .map_err(|err| format!("certificate {i}: {err}"))?;
        verified.push(
            cert.verify(&e.community)
                .map_err(|err| format!("certificate {i}: {err}"))?,
        );
    }
    let m = Membership::build(e.community, &verified).map_err(|err| err.to_string())?;
    if m.name != e.community_name {
        return Err(format!(
            "the community is named '{}', not '{}'",
            m.name, e.community_name
        ));
    }
    Ok(m)
}

fn check_statement(e: &Exported, m: &Membership) -> std::result::Result<(), String> {
    let s: Statement =
        serde_json::from_str(&e.statement).map_err(|err| format!("unreadable statement: {err}"))?;
    let publisher = m
        .member(&s.published_by)
        .ok_or_else(|| "the publisher is not a member of the community".to_string())?;
    if !publisher.role.can_facilitate() {
        return Err(format!(
            "the publisher {} is not a facilitator",
            publisher.name
        ));
    }
    let sig =
        signature_from_hex(&e.statement_signature).ok_or("the statement signature is malformed")?;
    verify_publication(&s.published_by, &e.community, e.statement.as_bytes(), &sig)
        .map_err(|err| err.to_string())?;
    let mismatches: Vec<&str> = [
        (s.format == STATEMENT_FORMAT, "format"),
        (s.community == e.community, "community"),
        (s.response == e.response, "response"),
        (s.kind == e.kind, "kind"),
        (s.title == e.title, "title"),
        (s.summary == e.summary, "summary"),
        (s.requester == e.requester, "requester"),
        (s.questions == e.questions, "questions"),
        (s.due == e.due, "due"),
        (s.draft == e.draft, "draft"),
        (s.text_hash == e.text_hash, "text hash"),
        (s.tally == e.tally, "tally"),
        (s.dissent == e.dissent, "dissent"),
        (s.minority_drafts == e.minority_drafts, "minority drafts"),
        (s.published_by == e.published_by.member, "publisher"),
        (publisher.name == e.published_by.name, "publisher name"),
        (
            crate::clock::rfc3339(s.published_at) == e.published_at,
            "publication time",
        ),
    ]
    .into_iter()
    .filter_map(|(ok, what)| (!ok).then_some(what))
    .collect();
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "differs from what was signed: {}",
            mismatches.join(", ")
        ))
    }
}

fn check_endorsement(
    e: &Exported,
    m: &Membership,
    en: &EndorsementView,
) -> std::result::Result<(), String> {
    let member = m
        .member(&en.member)
        .ok_or_else(|| format!("{} is not a member of the community", en.member.short()))?;
    if member.name != en.name {
        return Err(format!(
            "the member is named '{}', not '{}'",
            member.name, en.name
        ));
    }
    let sig = signature_from_hex(&en.signature).ok_or("the signature is malformed")?;
    verify_endorsement(
        &en.member,
        &e.community,
        &e.response,
        &e.text_hash,
        &en.stance,
        &sig,
    )
    .map_err(|err| err.to_string())
}
