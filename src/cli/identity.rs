//! `init` and `whoami`.

use serde::Serialize;

use super::output::Ctx;
use crate::trust::{DeviceId, MemberId};

#[derive(Serialize)]
struct WhoAmI {
    member: MemberId,
    device: DeviceId,
    name: String,
    home: String,
}

/// `convene init --name NAME`
pub fn init(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let identity = {
        let mut lock = ctx.home.lock_file()?;
        let _guard = lock.write()?;
        ctx.home.init(name)?
    };
    let who = WhoAmI {
        member: identity.member_id(),
        device: identity.device_id(),
        name: identity.name.clone(),
        home: ctx.home.root().display().to_string(),
    };
    ctx.emit(&who, || format!("{}\n", who.member))?;
    ctx.status(&format!(
        "Created keys for {} in {} (member {}, device {}).",
        who.name,
        who.home,
        who.member.short(),
        who.device.short()
    ));
    ctx.hint("found a community with `convene community create NAME`");
    Ok(())
}

/// `convene whoami`
pub fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    let identity = ctx.home.identity()?;
    let who = WhoAmI {
        member: identity.member_id(),
        device: identity.device_id(),
        name: identity.name.clone(),
        home: ctx.home.root().display().to_string(),
    };
    ctx.emit(&who, || {
        format!(
            "name    {}\nmember  {}\ndevice  {}\nhome    {}\n",
            who.name, who.member, who.device, who.home
        )
    })
}
