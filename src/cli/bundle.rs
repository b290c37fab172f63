//! `bundle export` and `bundle import`: the community on a USB stick.

use std::path::Path;

use anyhow::Context;

use super::output::{Ctx, IntegrityFailure};
use crate::bundle::{self, BundleError};
use crate::model::inbox::NewsCounts;
use crate::store::CommunityStore;
use crate::store::bundle::{export as export_bundle, import as import_bundle, last_seen};
use crate::store::peers::{self, KnownPeer};
use crate::store::pending;
use crate::trust::Certificate;

/// `convene bundle export [-o FILE] [--for MEMBER]`
pub fn export(ctx: &Ctx, output: Option<&Path>, for_member: Option<&str>) -> anyhow::Result<()> {
    ctx.home.identity()?;
    let lock = ctx.home.lock_file()?;
    let _guard = lock.read()?;
    let store = ctx.home.resolve(ctx.community.as_deref())?;
    let since = match for_member {
        None => Default::default(),
        Some(reference) => {
            let m = store.membership();
            let by_name: Vec<_> = m
                .members()
                .filter(|x| x.name == reference)
                .map(|x| x.id)
                .collect();
            let member = match by_name[..] {
                [one] => one,
                _ => crate::ids::resolve_prefix(
                    reference,
                    m.members().map(|x| (x.id.to_hex(), x.id)),
                    "member",
                )?,
            };
            last_seen(&store, &member)
        }
    };
    let mut content = export_bundle(&store, &since, ctx.now)?;
    content.from = Some(ctx.home.identity()?.device_id().0);
    let bytes = bundle::encode(&store.id(), &content);
    let summary = serde_json::json!({
        "community": store.id(),
        "certificates": content.certificates.len(),
        "changes": content.changes.len(),
        "bytes": bytes.len(),
    });
    match output {
        Some(p) if p == Path::new("-") => {
            use std::io::Write;
            std::io::stdout()
                .lock()
                .write_all(&bytes)
                .context("writing the bundle to stdout")?;
            Ok(())
        }
        _ => {
            let default = format!("convene-{}.bundle", store.id().short());
            let path = output
                .map(Path::to_path_buf)
                .unwrap_or_else(|| default.into());
            crate::store::fsutil::write_atomic(&path, &bytes)?;
            ctx.emit(&summary, || format!("{}\n", path.display()))?;
            ctx.status(&format!(
                "Wrote {} ({} bytes: {} certificates, {} changes).",
                path.display(),
                bytes.len(),
                content.certificates.len(),
                content.changes.len()
            ));
            Ok(())
        }
    }
}

/// `convene bundle import FILE`
pub fn import(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let integrity = |e: BundleError| IntegrityFailure(format!("{}: {e}", file.display()));
    let identity = ctx.home.identity()?;
    let mut lock = ctx.home.lock_file()?;
    let _guard = lock.write()?;
    let claimed = bundle::community_of(&bytes).map_err(integrity)?;
    let mut store = match &ctx.community {
        Some(reference) => ctx.home.resolve(Some(reference))?,
        None if ctx.home.community_ids()?.contains(&claimed) => {
            ctx.home.open_community(&claimed)?
        }
        None => match pending::load(ctx.home.root(), &claimed)? {
            Some(p) => {
                complete_join(ctx, &bytes, &p).map_err(|e| match e.downcast::<BundleError>() {
                    Ok(b) => integrity(b).into(),
                    Err(e) => e,
                })?
            }
            None => {
                return Err(IntegrityFailure(format!(
                    "{}: this bundle belongs to community {}, which this home does not hold; join it first (`convene join TICKET`)",
                    file.display(),
                    claimed.short()
                ))
                .into());
            }
        },
    };
    let content = bundle::decode(&bytes, &store.id()).map_err(integrity)?;
    let progress = super::progress::Progress::start(ctx, "importing", None);
    let report = import_bundle(&mut store, &content, ctx.now)?;
    drop(progress);
    let (arrived, _) = super::inbox::after_arrival(
        &store,
        &identity,
        &report.before,
        Default::default(),
        ctx.now,
    );
    #[derive(serde::Serialize)]
    struct Imported<'a> {
        #[serde(flatten)]
        report: &'a crate::store::bundle::ImportReport,
        arrived: NewsCounts,
    }
    let out = Imported {
        report: &report,
        arrived,
    };
    ctx.emit(&out, || {
        format!(
            "applied {} changes, {} new certificates, {} held back\n",
            report.applied_changes, report.certificates, report.held_back
        )
    })?;
    ctx.status(&format!("Arrived: {}.", arrived.sentence()));
    Ok(())
}

/// Finish an offline join: the local copy starts from the bundle's
/// certificates plus this device's claim.
fn complete_join(
    ctx: &Ctx,
    bytes: &[u8],
    p: &pending::PendingJoin,
) -> anyhow::Result<crate::store::CommunityStore> {
    let content = bundle::decode(bytes, &p.community)?;
    let mut certs = Vec::new();
    for c in content.certificates.iter().chain([&p.claim, &p.device]) {
        certs.push(Certificate::from_bytes(c)?);
    }
    let store =
        CommunityStore::create_joined(&ctx.home.root().join("communities"), p.community, &certs)?;
    let identity = ctx.home.identity()?;
    if store.membership().owner_of(&identity.device_id()).is_none() {
        anyhow::bail!(
            "this bundle does not hold the invite that admits you; import one from the inviter"
        );
    }
    ctx.home.set_current(&store.id())?;
    peers::remember(
        store.dir(),
        KnownPeer {
            device: p.inviter,
            addrs: p.addrs.clone(),
            last_synced: None,
        },
    )?;
    pending::remove(ctx.home.root(), &p.community)?;
    ctx.status(&format!(
        "Joined '{}' from a bundle.",
        store.membership().name
    ));
    Ok(store)
}
