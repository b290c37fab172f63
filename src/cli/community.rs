//! `community create`, `community list`, `community use`.

use serde::Serialize;

use super::output::{Ctx, table};
use crate::store::CommunityStore;
use crate::trust::{CommunityId, DeviceId, MemberId};

#[derive(Serialize)]
struct CommunityView {
    id: CommunityId,
    name: String,
    purpose: String,
    members: usize,
    current: bool,
}

fn view(store: &CommunityStore, current: Option<CommunityId>) -> CommunityView {
    let m = store.membership();
    CommunityView {
        id: store.id(),
        name: m.name.clone(),
        purpose: m.purpose.clone(),
        members: m.members().filter(|x| !x.removed).count(),
        current: current == Some(store.id()),
    }
}

/// `convene community create NAME [--purpose TEXT]`
pub fn create(ctx: &Ctx, name: &str, purpose: &str) -> anyhow::Result<()> {
    let identity = ctx.home.identity()?;
    let store = {
        let mut lock = ctx.home.lock_file()?;
        let _guard = lock.write()?;
        ctx.home
            .create_community(&identity, name, purpose, ctx.now)?
    };
    let v = view(&store, Some(store.id()));
    ctx.emit(&v, || format!("{}\n", v.id))?;
    ctx.status(&format!(
        "Founded '{}' ({}); it is now the current community.",
        v.name,
        v.id.short()
    ));
    ctx.hint("open a response with `convene open development TITLE --summary TEXT` or `convene open request ...`");
    Ok(())
}

/// `convene community list`
pub fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let lock = ctx.home.lock_file()?;
    let _guard = lock.read()?;
    let current = ctx.home.current()?;
    let views: Vec<CommunityView> = ctx
        .home
        .communities()?
        .iter()
        .map(|s| view(s, current))
        .collect();
    ctx.emit(&views, || {
        if views.is_empty() {
            return String::new();
        }
        let rows: Vec<Vec<String>> = views
            .iter()
            .map(|v| {
                vec![
                    if v.current { "*".into() } else { " ".into() },
                    v.id.short(),
                    v.members.to_string(),
                    v.name.clone(),
                    v.purpose.clone(),
                ]
            })
            .collect();
        table(&[" ", "ID", "MEMBERS", "NAME", "PURPOSE"], &rows)
    })?;
    if views.is_empty() {
        ctx.hint("no community yet; found one with `convene community create NAME`");
    }
    Ok(())
}

/// `convene community use COMMUNITY`
pub fn select(ctx: &Ctx, reference: &str) -> anyhow::Result<()> {
    let mut lock = ctx.home.lock_file()?;
    let _guard = lock.write()?;
    let store = ctx.home.resolve(Some(reference))?;
    ctx.home.set_current(&store.id())?;
    let v = view(&store, Some(store.id()));
    ctx.emit(&v, || format!("{}\n", v.id))?;
    ctx.status(&format!("Now using '{}'.", v.name));
    Ok(())
}

#[derive(Serialize)]
struct MemberView {
    id: MemberId,
    name: String,
    role: &'static str,
    devices: Vec<DeviceId>,
    removed: bool,
    you: bool,
}

/// `convene members`
pub fn members(ctx: &Ctx) -> anyhow::Result<()> {
    let identity = ctx.home.identity()?;
    let lock = ctx.home.lock_file()?;
    let _guard = lock.read()?;
    let store = ctx.home.resolve(ctx.community.as_deref())?;
    let mut views: Vec<MemberView> = store
        .membership()
        .members()
        .map(|m| MemberView {
            id: m.id,
            name: m.name.clone(),
            role: m.role.as_str(),
            devices: m.devices.clone(),
            removed: m.removed,
            you: m.id == identity.member_id(),
        })
        .collect();
    views.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    ctx.emit(&views, || {
        let rows: Vec<Vec<String>> = views
            .iter()
            .map(|v| {
                vec![
                    v.id.short(),
                    format!("{}{}", v.name, if v.you { " (you)" } else { "" }),
                    v.role.to_string(),
                    v.devices.len().to_string(),
                    if v.removed {
                        "removed".into()
                    } else {
                        "".into()
                    },
                ]
            })
            .collect();
        table(&["ID", "NAME", "ROLE", "DEVICES", ""], &rows)
    })
}

/// One raw document written by `community export-doc`.
#[derive(Serialize)]
struct RawDoc {
    name: String,
    file: String,
    changes: usize,
    bytes: usize,
}

/// `convene community export-doc -o DIR`: each of the community's
/// Automerge documents as `DIR/<name>.automerge` (Automerge's `save()`), for
/// any Automerge implementation to open. The schema is in docs/schema.md.
/// The files hold no signatures: they are for reading, not for proof (use
/// `bundle export` or `export` for that).
pub fn export_docs(ctx: &Ctx, dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let written = super::session::read(ctx, |_, store| {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut written = Vec::new();
        for name in store.doc_names()? {
            let Some(mut loaded) = store.load_doc(&name, false, ctx.now)? else {
                continue;
            };
            let bytes = loaded.doc.save();
            let file = dir.join(format!("{name}.automerge"));
            std::fs::write(&file, &bytes).with_context(|| format!("writing {}", file.display()))?;
            written.push(RawDoc {
                name,
                file: file.display().to_string(),
                changes: loaded.signatures.len(),
                bytes: bytes.len(),
            });
        }
        Ok(written)
    })?;
    let count = written.len();
    ctx.emit(&written, || {
        let rows: Vec<Vec<String>> = written
            .iter()
            .map(|d| vec![d.file.clone(), d.changes.to_string(), d.bytes.to_string()])
            .collect();
        table(&["FILE", "CHANGES", "BYTES"], &rows)
    })?;
    ctx.status(&format!(
        "Wrote {count} documents to {}; their schema is in docs/schema.md.",
        dir.display()
    ));
    Ok(())
}
