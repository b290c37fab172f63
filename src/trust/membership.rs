//! The membership view: who belongs, with which role, from which devices.
//!
//! It is a pure function of the *set* of verified certificates: the same set
//! in any order gives the same view (property-tested below), so every peer
//! that holds the same certificates agrees on the roster. Names and roles come
//! only from certificates, never from editable document fields.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::TrustError;
use super::cert::{CertBody, VerifiedCert};
use super::keys::{CommunityId, DeviceId, MemberId};

/// What a member may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read only.
    Observer,
    /// Discuss, draft, take stances, endorse.
    Member,
    /// Also open responses, decide amendments, publish, admit members.
    Facilitator,
    /// The member who created the community; a facilitator.
    Founder,
}

impl Role {
    /// May this role write to the community's documents?
    pub fn can_write(self) -> bool {
        self != Role::Observer
    }

    /// May this role facilitate (open, publish, admit)?
    pub fn can_facilitate(self) -> bool {
        matches!(self, Role::Facilitator | Role::Founder)
    }

    /// The lowercase word for this role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Observer => "observer",
            Role::Member => "member",
            Role::Facilitator => "facilitator",
            Role::Founder => "founder",
        }
    }
}

/// One member as the certificates describe them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Member key.
    pub id: MemberId,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Devices, in key order.
    pub devices: Vec<DeviceId>,
    /// Removed from the community by a Revoke certificate.
    pub removed: bool,
    /// When removed: the reason, and up to which change of each of their
    /// actors, per document, their writing is still accepted.
    pub revocation: Option<Revocation>,
    /// When they were admitted.
    pub joined_at: i64,
}

/// How a member was removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Why.
    pub reason: String,
    /// The facilitator who removed them.
    pub by: MemberId,
    /// When.
    pub at: i64,
    /// Document name → hashes (hex) of the member's accepted changes.
    pub cutoff: BTreeMap<String, Vec<String>>,
}

impl Revocation {
    /// Is this change of this document one the removal keeps? (Named by
    /// hash: a removed member cannot sign a new change in an old one's
    /// place.)
    pub fn covers(&self, doc: &str, hash_hex: &str) -> bool {
        self.cutoff
            .get(doc)
            .is_some_and(|hashes| hashes.iter().any(|h| h == hash_hex))
    }
}

/// The whole roster of one community.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The community.
    pub community: CommunityId,
    /// Its name, from the genesis certificate.
    pub name: String,
    /// Its purpose, from the genesis certificate.
    pub purpose: String,
    /// When it was founded.
    pub founded_at: i64,
    members: BTreeMap<MemberId, Member>,
    device_owner: BTreeMap<DeviceId, MemberId>,
}

impl Membership {
    /// Compute the view from a set of verified certificates of `community`.
    pub fn build<'a>(
        community: CommunityId,
        certs: impl IntoIterator<Item = &'a VerifiedCert>,
    ) -> Result<Self, TrustError> {
        // Sort by certificate id so that nothing depends on the input order.
        let mut sorted: Vec<&VerifiedCert> = certs.into_iter().collect();
        sorted.sort_by_key(|c| c.id());
        sorted.dedup_by_key(|c| c.id());

        let mut genesis = None;
        for cert in &sorted {
            if let CertBody::Genesis { .. } = cert.body() {
                // `Certificate::verify` only accepts the genesis that hashes to `community`.
                genesis = Some(cert.body().clone());
            }
        }
        let Some(CertBody::Genesis {
            name,
            purpose,
            founder,
            founder_name,
            at,
            ..
        }) = genesis
        else {
            return Err(TrustError::CertRefused(format!(
                "no genesis certificate for community {}",
                community.short()
            )));
        };

        let mut members = BTreeMap::new();
        members.insert(
            founder,
            Member {
                id: founder,
                name: founder_name,
                role: Role::Founder,
                devices: Vec::new(),
                removed: false,
                revocation: None,
                joined_at: at,
            },
        );

        // One claim per invitation: the earliest (then lowest certificate id).
        let mut claims: BTreeMap<DeviceId, (i64, MemberId, String)> = BTreeMap::new();
        for cert in &sorted {
            if let CertBody::Claim {
                invite_key,
                member,
                name,
                at,
            } = cert.body()
            {
                let better = claims.get(invite_key).is_none_or(|(t, _, _)| *at < *t);
                if better {
                    claims.insert(*invite_key, (*at, *member, name.clone()));
                }
            }
        }
        // Admissions, direct or through a claimed invitation, as
        // (member, name, role, by, at).
        let mut admissions: Vec<(MemberId, String, Role, MemberId, i64)> = Vec::new();
        for cert in &sorted {
            match cert.body() {
                CertBody::Admit {
                    member,
                    name,
                    role,
                    by,
                    at,
                } => admissions.push((*member, name.clone(), *role, *by, *at)),
                CertBody::Invite {
                    invite_key,
                    role,
                    expires_at,
                    by,
                    ..
                } => {
                    if let Some((at, member, name)) = claims.get(invite_key)
                        && at <= expires_at
                    {
                        admissions.push((*member, name.clone(), *role, *by, *at));
                    }
                }
                _ => {}
            }
        }

        // Repeat until nothing changes, since an admitted facilitator may
        // admit others. Monotone, hence order-independent.
        loop {
            let mut changed = false;
            for (member, name, role, by, at) in &admissions {
                let authorised = members.get(by).is_some_and(|m| m.role.can_facilitate());
                if !authorised || *member == founder || *role == Role::Founder {
                    continue;
                }
                match members.get_mut(member) {
                    None => {
                        members.insert(
                            *member,
                            Member {
                                id: *member,
                                name: name.clone(),
                                role: *role,
                                devices: Vec::new(),
                                removed: false,
                                revocation: None,
                                joined_at: *at,
                            },
                        );
                        changed = true;
                    }
                    Some(existing) => {
                        // Several admissions: the highest role, the latest name
                        // (ties broken by certificate id through the sort).
                        if *role > existing.role {
                            existing.role = *role;
                            changed = true;
                        }
                        if *at > existing.joined_at && existing.name != *name {
                            existing.name = name.clone();
                            existing.joined_at = *at;
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }

        // Removals: by a facilitator of the view above; never the founder.
        // Several removals of one member: the earliest (then lowest id).
        for cert in &sorted {
            let CertBody::Revoke {
                member,
                reason,
                by,
                at,
                cutoff,
            } = cert.body()
            else {
                continue;
            };
            let authorised = members.get(by).is_some_and(|m| m.role.can_facilitate());
            if !authorised || *member == founder {
                continue;
            }
            if let Some(m) = members.get_mut(member) {
                let earlier = m.revocation.as_ref().is_none_or(|r| *at < r.at);
                if earlier {
                    m.removed = true;
                    m.revocation = Some(Revocation {
                        reason: reason.clone(),
                        by: *by,
                        at: *at,
                        cutoff: cutoff.clone(),
                    });
                }
            }
        }

        // Devices: a device claimed by two different members is ignored.
        let mut claims: BTreeMap<DeviceId, BTreeSet<MemberId>> = BTreeMap::new();
        for cert in &sorted {
            if let CertBody::Device { member, device, .. } = cert.body()
                && members.contains_key(member)
            {
                claims.entry(*device).or_default().insert(*member);
            }
        }
        let mut device_owner = BTreeMap::new();
        for (device, owners) in claims {
            if let (1, Some(owner)) = (owners.len(), owners.first()) {
                device_owner.insert(device, *owner);
                if let Some(m) = members.get_mut(owner) {
                    m.devices.push(device);
                }
            }
        }

        Ok(Membership {
            community,
            name,
            purpose,
            founded_at: at,
            members,
            device_owner,
        })
    }

    /// Every member, in key order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// One member.
    pub fn member(&self, id: &MemberId) -> Option<&Member> {
        self.members.get(id)
    }

    /// The member a device belongs to.
    pub fn owner_of(&self, device: &DeviceId) -> Option<&Member> {
        self.device_owner
            .get(device)
            .and_then(|m| self.members.get(m))
    }

    /// A member's display name, or their short id if unknown.
    pub fn name_of(&self, id: &MemberId) -> String {
        self.member(id)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| id.short())
    }

    /// Whether every change judged under `earlier` gets the same verdict
    /// under this view ([`super::signed_change::check_author`]): each
    /// device `earlier` knew still belongs to the same member, whose write
    /// rights and removal (with its cutoff) are unchanged. New members and
    /// new devices leave those verdicts as they were; a removal, a member
    /// made an observer, or a device since claimed by a second member does
    /// not. A document loaded under `earlier` (every change on disk judged
    /// then) loads the same under this view when this holds, so a sync that
    /// received certificates keeps the documents it holds loaded.
    pub fn keeps_verdicts_of(&self, earlier: &Membership) -> bool {
        self.community == earlier.community
            && earlier.device_owner.iter().all(|(device, id)| {
                match (earlier.members.get(id), self.owner_of(device)) {
                    (Some(before), Some(now)) => {
                        now.id == before.id
                            && now.role.can_write() == before.role.can_write()
                            && now.removed == before.removed
                            && now.revocation == before.revocation
                    }
                    _ => false,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{Certificate, SecretKey};
    use proptest::prelude::*;

    struct World {
        id: CommunityId,
        certs: Vec<VerifiedCert>,
        keys: Vec<SecretKey>,
    }

    /// A founder, a facilitator admitted by the founder, members admitted by
    /// the facilitator, and one device per member.
    fn world(members: usize) -> World {
        let founder = SecretKey::generate();
        let (id, genesis) = Certificate::genesis(
            &founder,
            &CertBody::Genesis {
                name: "c".into(),
                purpose: "".into(),
                founder: MemberId(founder.public()),
                founder_name: "F".into(),
                at: 0,
                nonce: "1".into(),
            },
        );
        let mut certs = vec![genesis];
        let facilitator = SecretKey::generate();
        certs.push(Certificate::issue(
            &id,
            &CertBody::Admit {
                member: MemberId(facilitator.public()),
                name: "Fa".into(),
                role: Role::Facilitator,
                by: MemberId(founder.public()),
                at: 1,
            },
            &[&founder],
        ));
        let mut keys = vec![founder, facilitator];
        for i in 0..members {
            let m = SecretKey::generate();
            certs.push(Certificate::issue(
                &id,
                &CertBody::Admit {
                    member: MemberId(m.public()),
                    name: format!("M{i}"),
                    role: Role::Member,
                    by: MemberId(keys[1].public()),
                    at: 2,
                },
                &[&keys[1]],
            ));
            keys.push(m);
        }
        for k in &keys {
            let d = SecretKey::generate();
            certs.push(Certificate::issue(
                &id,
                &CertBody::Device {
                    member: MemberId(k.public()),
                    device: DeviceId(d.public()),
                    label: "d".into(),
                    at: 3,
                },
                &[k, &d],
            ));
        }
        let certs = certs.iter().filter_map(|c| c.verify(&id).ok()).collect();
        World { id, certs, keys }
    }

    #[test]
    fn chain_of_admissions_is_followed() {
        let w = world(3);
        let view = Membership::build(w.id, &w.certs).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(view.members().count(), 5);
        assert_eq!(
            view.member(&MemberId(w.keys[0].public())).map(|m| m.role),
            Some(Role::Founder)
        );
        assert!(view.members().all(|m| m.devices.len() == 1));
    }

    #[test]
    fn admission_by_a_plain_member_is_ignored() {
        let w = world(1);
        let outsider = SecretKey::generate();
        let by_member = Certificate::issue(
            &w.id,
            &CertBody::Admit {
                member: MemberId(outsider.public()),
                name: "X".into(),
                role: Role::Facilitator,
                by: MemberId(w.keys[2].public()),
                at: 5,
            },
            &[&w.keys[2]],
        )
        .verify(&w.id)
        .unwrap_or_else(|e| panic!("{e}"));
        let mut certs = w.certs.clone();
        certs.push(by_member);
        let view = Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        assert!(view.member(&MemberId(outsider.public())).is_none());
    }

    #[test]
    fn a_device_claimed_by_two_members_belongs_to_neither() {
        let w = world(1);
        let device = SecretKey::generate();
        let mut certs = w.certs.clone();
        for k in &w.keys[..2] {
            certs.push(
                Certificate::issue(
                    &w.id,
                    &CertBody::Device {
                        member: MemberId(k.public()),
                        device: DeviceId(device.public()),
                        label: "shared".into(),
                        at: 9,
                    },
                    &[k, &device],
                )
                .verify(&w.id)
                .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        let view = Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        assert!(view.owner_of(&DeviceId(device.public())).is_none());
    }

    #[test]
    fn no_genesis_is_an_error() {
        let w = world(1);
        let without: Vec<_> = w
            .certs
            .iter()
            .filter(|c| c.body().kind() != "genesis")
            .cloned()
            .collect();
        assert!(Membership::build(w.id, &without).is_err());
    }

    fn verified(w: &World, body: CertBody, keys: &[&SecretKey]) -> VerifiedCert {
        Certificate::issue(&w.id, &body, keys)
            .verify(&w.id)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn invite(w: &World, key: &SecretKey, role: Role, expires_at: i64) -> VerifiedCert {
        verified(
            w,
            CertBody::Invite {
                invite_key: DeviceId(key.public()),
                role,
                expires_at,
                by: MemberId(w.keys[1].public()),
                at: 10,
            },
            &[&w.keys[1]],
        )
    }

    fn claim(w: &World, key: &SecretKey, member: &SecretKey, name: &str, at: i64) -> VerifiedCert {
        verified(
            w,
            CertBody::Claim {
                invite_key: DeviceId(key.public()),
                member: MemberId(member.public()),
                name: name.into(),
                at,
            },
            &[key, member],
        )
    }

    #[test]
    fn a_claimed_invite_admits_one_member_with_the_invited_role() {
        let w = world(1);
        let invite_key = SecretKey::generate();
        let first = SecretKey::generate();
        let second = SecretKey::generate();
        let mut certs = w.certs.clone();
        certs.push(invite(&w, &invite_key, Role::Facilitator, 100));
        certs.push(claim(&w, &invite_key, &first, "First", 20));
        certs.push(claim(&w, &invite_key, &second, "Second", 30));
        let view = Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        let admitted = view
            .member(&MemberId(first.public()))
            .map(|m| (m.name.clone(), m.role));
        assert_eq!(admitted, Some(("First".to_string(), Role::Facilitator)));
        assert!(
            view.member(&MemberId(second.public())).is_none(),
            "an invite admits one member only"
        );
    }

    #[test]
    fn an_expired_or_unsigned_invite_admits_nobody() {
        let w = world(1);
        let invite_key = SecretKey::generate();
        let late = SecretKey::generate();
        let mut certs = w.certs.clone();
        certs.push(invite(&w, &invite_key, Role::Member, 15));
        certs.push(claim(&w, &invite_key, &late, "Late", 20));
        let view = Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        assert!(view.member(&MemberId(late.public())).is_none());
        // A claim without a matching invite admits nobody either.
        let stray = SecretKey::generate();
        let mut certs = w.certs.clone();
        certs.push(claim(&w, &SecretKey::generate(), &stray, "Stray", 1));
        let view = Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        assert!(view.member(&MemberId(stray.public())).is_none());
    }

    #[test]
    fn a_revocation_removes_with_a_cutoff_but_never_the_founder() {
        let w = world(1);
        let mut cutoff = BTreeMap::new();
        cutoff.insert("community".to_string(), vec!["aa".to_string()]);
        let revoke = |member: &SecretKey| {
            verified(
                &w,
                CertBody::Revoke {
                    member: MemberId(member.public()),
                    reason: "left".into(),
                    by: MemberId(w.keys[1].public()),
                    at: 50,
                    cutoff: cutoff.clone(),
                },
                &[&w.keys[1]],
            )
        };
        let mut certs = w.certs.clone();
        certs.push(revoke(&w.keys[2]));
        certs.push(revoke(&w.keys[0]));
        let view = Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        let removed = view
            .member(&MemberId(w.keys[2].public()))
            .unwrap_or_else(|| panic!("member"));
        assert!(removed.removed);
        let r = removed
            .revocation
            .as_ref()
            .unwrap_or_else(|| panic!("revocation"));
        assert!(r.covers("community", "aa"));
        assert!(!r.covers("community", "bb"));
        assert!(!r.covers("other", "aa"));
        assert!(
            !view
                .member(&MemberId(w.keys[0].public()))
                .is_some_and(|m| m.removed)
        );
    }

    /// A device certificate of `member` for a new device `device`.
    fn device_cert(w: &World, member: &SecretKey, device: &SecretKey) -> VerifiedCert {
        verified(
            w,
            CertBody::Device {
                member: MemberId(member.public()),
                device: DeviceId(device.public()),
                label: "d".into(),
                at: 40,
            },
            &[member, device],
        )
    }

    #[test]
    fn verdicts_hold_across_admissions_and_new_devices() {
        let w = world(2);
        let before = Membership::build(w.id, &w.certs).unwrap_or_else(|e| panic!("{e}"));
        let mut certs = w.certs.clone();
        // A newcomer by invitation, with a device; a second device of M0;
        // the facilitator admits someone directly.
        let invite_key = SecretKey::generate();
        let newcomer = SecretKey::generate();
        certs.push(invite(&w, &invite_key, Role::Member, 100));
        certs.push(claim(&w, &invite_key, &newcomer, "New", 20));
        certs.push(device_cert(&w, &newcomer, &SecretKey::generate()));
        certs.push(device_cert(&w, &w.keys[2], &SecretKey::generate()));
        let direct = SecretKey::generate();
        certs.push(verified(
            &w,
            CertBody::Admit {
                member: MemberId(direct.public()),
                name: "Direct".into(),
                role: Role::Observer,
                by: MemberId(w.keys[1].public()),
                at: 30,
            },
            &[&w.keys[1]],
        ));
        let after = Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after.members().count(), before.members().count() + 2);
        assert!(after.keeps_verdicts_of(&before));
        assert!(before.keeps_verdicts_of(&before));
    }

    #[test]
    fn verdicts_change_with_a_removal_or_a_device_claimed_twice() {
        let w = world(2);
        let before = Membership::build(w.id, &w.certs).unwrap_or_else(|e| panic!("{e}"));
        let with = |extra: VerifiedCert| {
            let mut certs = w.certs.clone();
            certs.push(extra);
            Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"))
        };
        let removal = with(verified(
            &w,
            CertBody::Revoke {
                member: MemberId(w.keys[3].public()),
                reason: "left".into(),
                by: MemberId(w.keys[1].public()),
                at: 50,
                cutoff: BTreeMap::new(),
            },
            &[&w.keys[1]],
        ));
        assert!(!removal.keeps_verdicts_of(&before));
        // A device M1 and then M0 claim belongs to neither.
        let shared = SecretKey::generate();
        let mut certs = w.certs.clone();
        certs.push(device_cert(&w, &w.keys[3], &shared));
        let before_shared = Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        certs.push(device_cert(&w, &w.keys[2], &shared));
        let claimed_twice = Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        assert!(claimed_twice.owner_of(&DeviceId(shared.public())).is_none());
        assert!(!claimed_twice.keeps_verdicts_of(&before_shared));
        // An observer given write rights: their devices' changes, refused
        // until now, would be judged anew.
        let observer = SecretKey::generate();
        let admit = |role: Role, at: i64| {
            verified(
                &w,
                CertBody::Admit {
                    member: MemberId(observer.public()),
                    name: "O".into(),
                    role,
                    by: MemberId(w.keys[1].public()),
                    at,
                },
                &[&w.keys[1]],
            )
        };
        let mut certs = w.certs.clone();
        certs.push(admit(Role::Observer, 30));
        certs.push(device_cert(&w, &observer, &SecretKey::generate()));
        let watching = Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        certs.push(admit(Role::Member, 31));
        let writing = Membership::build(w.id, &certs).unwrap_or_else(|e| panic!("{e}"));
        assert!(!writing.keeps_verdicts_of(&watching));
        // Another community's view never keeps them.
        let other = world(2);
        let elsewhere = Membership::build(other.id, &other.certs).unwrap_or_else(|e| panic!("{e}"));
        assert!(!elsewhere.keeps_verdicts_of(&before));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn view_is_independent_of_order_and_duplicates(
            seed in any::<u64>(), dupes in 0usize..4
        ) {
            let w = world(4);
            let invite_key = SecretKey::generate();
            let joiner = SecretKey::generate();
            let mut all = w.certs.clone();
            all.push(invite(&w, &invite_key, Role::Member, 100));
            all.push(claim(&w, &invite_key, &joiner, "Joiner", 20));
            all.push(claim(&w, &invite_key, &SecretKey::generate(), "Other", 20));
            all.push(verified(&w, CertBody::Revoke {
                member: MemberId(w.keys[3].public()), reason: "r".into(),
                by: MemberId(w.keys[0].public()), at: 9, cutoff: BTreeMap::new(),
            }, &[&w.keys[0]]));
            let w = World { certs: all, ..w };
            let reference = Membership::build(w.id, &w.certs).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(reference.members().filter(|m| m.removed).count(), 1);
            let mut shuffled = w.certs.clone();
            shuffled.extend(w.certs.iter().take(dupes).cloned());
            // A seeded Fisher–Yates shuffle.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let view = Membership::build(w.id, &shuffled).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(view, reference);
        }
    }
}
