//! The shape of every command that touches a community: take the home lock,
//! open the community (verifying its certificates), work in a workspace, and
//! for writers sign and fsync the new changes before the lock is released and
//! success is printed.

use anyhow::Context;

use super::output::Ctx;
use crate::model::Workspace;
use crate::store::{CommunityStore, Identity};

/// Run `work` as the local member with the write lock held; its changes are
/// durable when this returns `Ok`.
pub fn write<T>(
    ctx: &Ctx,
    work: impl FnOnce(&mut Workspace, &Identity, &CommunityStore) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let identity = ctx.home.identity()?;
    let mut lock = ctx.home.lock_file()?;
    let _guard = lock.write().context("taking the home's write lock")?;
    let store = ctx.home.resolve(ctx.community.as_deref())?;
    store.repair(ctx.now)?;
    let mut ws = store.workspace(&identity, ctx.now, true);
    let out = work(&mut ws, &identity, &store)?;
    store.persist(&mut ws, &identity)?;
    Ok(out)
}

/// Run `work` with the read lock held.
pub fn read<T>(
    ctx: &Ctx,
    work: impl FnOnce(&mut Workspace, &CommunityStore) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let identity = ctx.home.identity()?;
    let lock = ctx.home.lock_file()?;
    let _guard = lock.read().context("taking the home's read lock")?;
    let store = ctx.home.resolve(ctx.community.as_deref())?;
    let mut ws = store.workspace(&identity, ctx.now, false);
    work(&mut ws, &store)
}
