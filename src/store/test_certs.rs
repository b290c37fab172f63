//! Certificates the store's tests issue: a member admitted by another, a
//! member's device, a member removed. Each as a facilitator or the member
//! would sign it, at `NOW`.

use std::path::Path;

use super::{CommunityStore, Home, Identity};
use crate::trust::{CertBody, Certificate, Role};

/// The time every certificate here carries, and the clock of the store's tests.
pub const NOW: i64 = 1_790_000_000;

/// `member` admitted to `store`'s community as `name`, by `by` (a
/// facilitator).
pub fn admission(
    store: &CommunityStore,
    by: &Identity,
    member: &Identity,
    name: &str,
) -> Certificate {
    let key = by.member_key().unwrap_or_else(|e| panic!("{e}"));
    Certificate::issue(
        &store.id(),
        &CertBody::Admit {
            member: member.member_id(),
            name: name.into(),
            role: Role::Member,
            by: by.member_id(),
            at: NOW,
        },
        &[key],
    )
}

/// `member`'s device, certified by them.
pub fn device_of(store: &CommunityStore, member: &Identity) -> Certificate {
    let key = member.member_key().unwrap_or_else(|e| panic!("{e}"));
    Certificate::issue(
        &store.id(),
        &CertBody::Device {
            member: member.member_id(),
            device: member.device_id(),
            label: "laptop".into(),
            at: NOW,
        },
        &[key, &member.device],
    )
}

/// A new person `name`, with keys in a home of their own at `home`, and
/// the certificates that admit them (by `by`) with their device.
pub fn newcomer(
    store: &CommunityStore,
    by: &Identity,
    home: &Path,
    name: &str,
) -> (Identity, [Certificate; 2]) {
    let member = Home::new(home.to_path_buf())
        .init(name)
        .unwrap_or_else(|e| panic!("{e}"));
    let certs = [
        admission(store, by, &member, name),
        device_of(store, &member),
    ];
    (member, certs)
}

/// `member` removed by `by`, keeping none of their changes.
pub fn removal(store: &CommunityStore, by: &Identity, member: &Identity) -> Certificate {
    let key = by.member_key().unwrap_or_else(|e| panic!("{e}"));
    Certificate::issue(
        &store.id(),
        &CertBody::Revoke {
            member: member.member_id(),
            reason: "left".into(),
            by: by.member_id(),
            at: NOW + 1,
            cutoff: std::collections::BTreeMap::new(),
        },
        &[key],
    )
}
