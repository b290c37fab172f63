//! `log`: who changed what, when.

use super::output::{Ctx, table};
use super::session;
use crate::ids::short;

/// `convene log`
pub fn log(ctx: &Ctx) -> anyhow::Result<()> {
    let entries = session::read(ctx, |ws, _| Ok(ws.history()?))?;
    ctx.emit(&entries, || {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                vec![
                    ctx.ago(e.at),
                    e.name.clone(),
                    short(&e.change).to_string(),
                    e.message.clone(),
                ]
            })
            .collect();
        table(&["WHEN", "WHO", "CHANGE", "WHAT"], &rows)
    })
}
