//! The forgery corpus: generated forged changes and certificates fed
//! through the two doors changes come in by, a sync session and a bundle
//! import. Every forgery must be refused or held back (0 applied, 0
//! panics) and every valid change of the control set accepted.
//!
//! Kinds: a signature by the wrong key; a flipped bit in the change bytes;
//! a signature made for another community, for another change, or for
//! another document; an actor that names one device signed by another
//! member's device; a member admitted by someone outside the community (a
//! chain that does not lead to the founder); a second claim of an invite
//! already used; a removed member's change after the removal.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::sync::ChunkList;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Change, ChangeHash, ROOT};

use crate::bundle::Bundle;
use crate::store::CommunityStore;
use crate::sync::memory::MemoryReplica;
use crate::sync::{Frame, Replica, Session, SyncError};
use crate::trust::fixture::{TestCommunity, community};
use crate::trust::signed_change::{ChangeSignature, actor_bytes, sign_change};
use crate::trust::{CertBody, Certificate, CommunityId, DeviceId, MemberId, Role, SecretKey};

/// Forgeries per kind (nine kinds: 1,008 in all), and valid controls.
const PER_KIND: u64 = 112;
const CONTROLS: u64 = 100;

/// Member 1 is the honest author, member 2 the victim's device (sync),
/// member 3 was removed.
const AUTHOR: usize = 1;
const VICTIM: usize = 2;
const REMOVED: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Control,
    WrongKey,
    FlippedBit,
    OtherCommunity,
    OtherChange,
    OtherDocument,
    ActorNotSigner,
    BrokenChain,
    UsedInvite,
    AfterRemoval,
}

const FORGERIES: [Kind; 9] = [
    Kind::WrongKey,
    Kind::FlippedBit,
    Kind::OtherCommunity,
    Kind::OtherChange,
    Kind::OtherDocument,
    Kind::ActorNotSigner,
    Kind::BrokenChain,
    Kind::UsedInvite,
    Kind::AfterRemoval,
];

/// One change offered to a victim, with the certificates that come with it.
struct Case {
    certs: Vec<Certificate>,
    doc: &'static str,
    bytes: Vec<u8>,
    sig: ChangeSignature,
}

/// The community as every victim knows it: the fixture, an invite already
/// claimed by a newcomer, and the removal of member 3.
struct Setting {
    c: TestCommunity,
    victim_certs: Vec<Certificate>,
    invite_key: SecretKey,
}

fn key(n: u64, salt: u8) -> SecretKey {
    let mut bytes = [salt; 32];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    SecretKey::from_bytes(bytes)
}

fn device_cert(id: &CommunityId, member: &SecretKey, device: &SecretKey) -> Certificate {
    Certificate::issue(
        id,
        &CertBody::Device {
            member: MemberId(member.public()),
            device: DeviceId(device.public()),
            label: "d".into(),
            at: 10,
        },
        &[member, device],
    )
}

impl Setting {
    fn new() -> Self {
        let c = community(4);
        let id = c.id;
        let founder = MemberId(c.founder.public());
        let invite_key = key(0, 0xA1);
        let newcomer = key(0, 0xA2);
        let mut victim_certs: Vec<Certificate> = c
            .certs
            .iter()
            .map(|v| Certificate::from_bytes(v.bytes()).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        victim_certs.extend([
            Certificate::issue(
                &id,
                &CertBody::Invite {
                    invite_key: DeviceId(invite_key.public()),
                    role: Role::Member,
                    expires_at: i64::MAX,
                    by: founder,
                    at: 5,
                },
                &[&c.founder],
            ),
            Certificate::issue(
                &id,
                &CertBody::Claim {
                    invite_key: DeviceId(invite_key.public()),
                    member: MemberId(newcomer.public()),
                    name: "Newcomer".into(),
                    at: 6,
                },
                &[&invite_key, &newcomer],
            ),
            device_cert(&id, &newcomer, &key(0, 0xA3)),
            Certificate::issue(
                &id,
                &CertBody::Revoke {
                    member: MemberId(c.members[REMOVED].public()),
                    reason: "left".into(),
                    by: founder,
                    at: 7,
                    cutoff: BTreeMap::new(),
                },
                &[&c.founder],
            ),
        ]);
        Setting {
            c,
            victim_certs,
            invite_key,
        }
    }

    /// A change by `device` (with its actor) putting `value`, no history.
    fn change(device: &SecretKey, value: u64) -> (Vec<u8>, ChangeHash) {
        let actor = actor_bytes(&DeviceId(device.public()), &[7; 8]);
        let mut doc = AutoCommit::new().with_actor(ActorId::from(actor));
        doc.put(ROOT, "value", value as i64)
            .unwrap_or_else(|e| panic!("{e}"));
        let hash = doc
            .commit_with(CommitOptions::default().with_time(1_000))
            .unwrap_or_else(|| panic!("no change"));
        let change = doc
            .get_change_by_hash(&hash)
            .unwrap_or_else(|| panic!("no change"));
        (change.raw_bytes().to_vec(), hash)
    }

    fn case(&self, kind: Kind, n: u64) -> Case {
        let c = &self.c;
        let id = c.id;
        let author = &c.devices[AUTHOR];
        let honest = |doc: &'static str| {
            let (bytes, hash) = Self::change(author, n);
            Case {
                certs: Vec::new(),
                doc,
                sig: sign_change(author, &id, doc, &hash.0),
                bytes,
            }
        };
        match kind {
            Kind::Control => honest("community"),
            Kind::WrongKey => {
                let (bytes, hash) = Self::change(author, n);
                Case {
                    certs: Vec::new(),
                    doc: "community",
                    sig: sign_change(&key(n, 0x11), &id, "community", &hash.0),
                    bytes,
                }
            }
            Kind::FlippedBit => {
                let mut case = honest("community");
                let bit = n as usize % (case.bytes.len() * 8);
                case.bytes[bit / 8] ^= 1 << (bit % 8);
                case
            }
            Kind::OtherCommunity => {
                let (bytes, hash) = Self::change(author, n);
                let elsewhere = CommunityId(key(n, 0x22).public());
                Case {
                    certs: Vec::new(),
                    doc: "community",
                    sig: sign_change(author, &elsewhere, "community", &hash.0),
                    bytes,
                }
            }
            Kind::OtherChange => {
                let (_, signed) = Self::change(author, n + 1_000_000);
                let (bytes, _) = Self::change(author, n);
                Case {
                    certs: Vec::new(),
                    doc: "community",
                    sig: sign_change(author, &id, "community", &signed.0),
                    bytes,
                }
            }
            Kind::OtherDocument => {
                let (bytes, hash) = Self::change(author, n);
                Case {
                    certs: Vec::new(),
                    doc: "community",
                    sig: sign_change(author, &id, "response-00aa", &hash.0),
                    bytes,
                }
            }
            Kind::ActorNotSigner => {
                let (bytes, hash) = Self::change(author, n);
                Case {
                    certs: Vec::new(),
                    doc: "community",
                    // A real member's device, but not the one the actor names.
                    sig: sign_change(&c.devices[REMOVED - 1], &id, "community", &hash.0),
                    bytes,
                }
            }
            Kind::BrokenChain => {
                let outsider = key(n, 0x33);
                let stranger = key(n, 0x44);
                let device = key(n, 0x55);
                let admit = Certificate::issue(
                    &id,
                    &CertBody::Admit {
                        member: MemberId(stranger.public()),
                        name: "Stranger".into(),
                        role: Role::Facilitator,
                        by: MemberId(outsider.public()),
                        at: 8,
                    },
                    &[&outsider],
                );
                let (bytes, hash) = Self::change(&device, n);
                Case {
                    certs: vec![admit, device_cert(&id, &stranger, &device)],
                    doc: "community",
                    sig: sign_change(&device, &id, "community", &hash.0),
                    bytes,
                }
            }
            Kind::UsedInvite => {
                let stranger = key(n, 0x66);
                let device = key(n, 0x77);
                let claim = Certificate::issue(
                    &id,
                    &CertBody::Claim {
                        invite_key: DeviceId(self.invite_key.public()),
                        member: MemberId(stranger.public()),
                        name: "Second claimant".into(),
                        at: 9 + n as i64,
                    },
                    &[&self.invite_key, &stranger],
                );
                let (bytes, hash) = Self::change(&device, n);
                Case {
                    certs: vec![claim, device_cert(&id, &stranger, &device)],
                    doc: "community",
                    sig: sign_change(&device, &id, "community", &hash.0),
                    bytes,
                }
            }
            Kind::AfterRemoval => {
                let removed = &c.devices[REMOVED];
                let (bytes, hash) = Self::change(removed, n);
                Case {
                    certs: Vec::new(),
                    doc: "community",
                    sig: sign_change(removed, &id, "community", &hash.0),
                    bytes,
                }
            }
        }
    }

    /// Offer `case` to a victim over a sync session from the author's
    /// device; true if the change ended up applied.
    fn through_sync(&self, case: &Case) -> bool {
        let certs = self
            .victim_certs
            .iter()
            .map(|c| c.verify(&self.c.id).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let device = SecretKey::from_bytes(self.c.devices[VICTIM].to_bytes());
        let mut victim = MemoryReplica::new(self.c.id, certs, device, [VICTIM as u8; 8])
            .unwrap_or_else(|e| panic!("{e}"));
        let hash = Change::try_from(&case.bytes[..])
            .map(|c| c.hash())
            .unwrap_or(ChangeHash([0xee; 32]));
        let mut session = Session::new(self.c.device(AUTHOR));
        session.start(&mut victim);
        let ids = victim
            .certificates()
            .iter()
            .map(|c| crate::trust::sha256(c))
            .collect();
        let message = automerge::sync::Message {
            heads: vec![hash],
            need: Vec::new(),
            have: Vec::new(),
            changes: ChunkList::from(vec![case.bytes.clone()]),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        };
        let frames = [
            Frame::Hello {
                version: crate::sync::PROTOCOL_VERSION,
                community: self.c.id.0,
                certificates: ids,
            },
            Frame::Certificates {
                certificates: case.certs.iter().map(|c| c.to_bytes()).collect(),
            },
            Frame::Heads {
                docs: vec![(case.doc.to_string(), vec![hash.0])],
            },
            Frame::Sync {
                doc: case.doc.to_string(),
                message: message.encode(),
                signatures: vec![(hash.0, case.sig.0.to_vec())],
            },
        ];
        for frame in frames {
            match session.handle(&mut victim, frame) {
                Ok(_) => {}
                Err(SyncError::Refused(_) | SyncError::Protocol(_)) => break,
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        victim
            .doc(case.doc)
            .map(|d| d.get_change_by_hash(&hash).is_some())
            .unwrap_or(false)
    }

    /// Offer `case` in a bundle to a victim's store; true if applied.
    fn through_bundle(&self, case: &Case) -> bool {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store = CommunityStore::create_joined(dir.path(), self.c.id, &self.victim_certs)
            .unwrap_or_else(|e| panic!("{e}"));
        let bundle = Bundle {
            certificates: case.certs.iter().map(|c| c.to_bytes()).collect(),
            changes: vec![(case.doc.to_string(), case.sig, case.bytes.clone())],
            from: None,
        };
        // Through the bytes, as from a file.
        let bytes = crate::bundle::encode(&self.c.id, &bundle);
        let decoded = crate::bundle::decode(&bytes, &self.c.id).unwrap_or_else(|e| panic!("{e}"));
        match crate::store::bundle::import(&mut store, &decoded, 2_000) {
            Ok(report) => report.applied_changes > 0,
            Err(_) => false,
        }
    }
}

#[test]
fn every_forgery_is_refused_and_every_control_accepted() {
    let setting = Setting::new();
    let mut outcome: BTreeMap<(Kind, &str), (u64, u64)> = BTreeMap::new();
    let mut cases = Vec::new();
    for n in 0..CONTROLS {
        cases.push((Kind::Control, n));
    }
    for kind in FORGERIES {
        for n in 0..PER_KIND {
            cases.push((kind, n));
        }
    }
    for (kind, n) in cases {
        let case = setting.case(kind, n);
        for (door, applied) in [
            (
                "sync",
                catch_unwind(AssertUnwindSafe(|| setting.through_sync(&case))),
            ),
            (
                "bundle",
                catch_unwind(AssertUnwindSafe(|| setting.through_bundle(&case))),
            ),
        ] {
            let applied =
                applied.unwrap_or_else(|_| panic!("{kind:?} #{n} through {door}: a panic"));
            let entry = outcome.entry((kind, door)).or_default();
            entry.0 += 1;
            entry.1 += u64::from(applied);
        }
    }
    let forged: u64 = outcome
        .iter()
        .filter(|((k, _), _)| *k != Kind::Control)
        .map(|(_, (n, _))| n)
        .sum();
    eprintln!("forgery corpus: {forged} forgeries offered (both doors), by kind:");
    for ((kind, door), (offered, applied)) in &outcome {
        eprintln!("  {kind:?} via {door}: {offered} offered, {applied} applied");
        match kind {
            Kind::Control => assert_eq!(applied, offered, "{kind:?} via {door}"),
            _ => assert_eq!(*applied, 0, "{kind:?} via {door}"),
        }
    }
    assert!(forged >= 2_000, "{forged}");
}
