//! A test community shared by the unit tests of `trust`, `sync` and `model`:
//! a founder and members, each with one device, as verified certificates.

use super::{
    CertBody, Certificate, CommunityId, DeviceId, MemberId, Membership, Role, SecretKey,
    VerifiedCert,
};

/// The keys and certificates of a test community.
pub struct TestCommunity {
    /// The community id.
    pub id: CommunityId,
    /// Every certificate, verified.
    pub certs: Vec<VerifiedCert>,
    /// The founder's member key (also `members[0]`).
    pub founder: SecretKey,
    /// One device key per member, founder first.
    pub devices: Vec<SecretKey>,
    /// The member keys, founder first.
    pub members: Vec<SecretKey>,
}

impl TestCommunity {
    /// The membership view of the certificates.
    pub fn membership(&self) -> Membership {
        Membership::build(self.id, &self.certs).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The device id of member `i`.
    pub fn device(&self, i: usize) -> DeviceId {
        DeviceId(self.devices[i].public())
    }

    /// The founder's removal of member `i`, keeping of its changes to
    /// document `doc` those with the hex hashes `kept`.
    pub fn removal(&self, i: usize, doc: &str, kept: Vec<String>) -> Certificate {
        Certificate::issue(
            &self.id,
            &CertBody::Revoke {
                member: MemberId(self.members[i].public()),
                reason: "left".into(),
                by: MemberId(self.founder.public()),
                at: 5,
                cutoff: std::collections::BTreeMap::from([(doc.to_string(), kept)]),
            },
            &[&self.founder],
        )
    }

    /// The membership after [`Self::removal`] of member `i`.
    pub fn membership_without(&self, i: usize, doc: &str, kept: Vec<String>) -> Membership {
        let revoke = self.removal(i, doc, kept);
        let mut certs = self.certs.clone();
        certs.push(revoke.verify(&self.id).unwrap_or_else(|e| panic!("{e}")));
        Membership::build(self.id, &certs).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A founder and `n - 1` members, each with one device.
pub fn community(n: usize) -> TestCommunity {
    let founder = SecretKey::generate();
    let (id, genesis) = Certificate::genesis(
        &founder,
        &CertBody::Genesis {
            name: "c".into(),
            purpose: "".into(),
            founder: MemberId(founder.public()),
            founder_name: "F".into(),
            at: 0,
            nonce: "n".into(),
        },
    );
    let mut certs = vec![genesis];
    let mut members = Vec::new();
    let mut devices = Vec::new();
    for i in 0..n {
        let member = if i == 0 {
            SecretKey::from_bytes(founder.to_bytes())
        } else {
            SecretKey::generate()
        };
        if i > 0 {
            certs.push(Certificate::issue(
                &id,
                &CertBody::Admit {
                    member: MemberId(member.public()),
                    name: format!("M{i}"),
                    role: Role::Member,
                    by: MemberId(founder.public()),
                    at: 1,
                },
                &[&founder],
            ));
        }
        let device = SecretKey::generate();
        certs.push(Certificate::issue(
            &id,
            &CertBody::Device {
                member: MemberId(member.public()),
                device: DeviceId(device.public()),
                label: "d".into(),
                at: 1,
            },
            &[&member, &device],
        ));
        members.push(member);
        devices.push(device);
    }
    let certs = certs.iter().filter_map(|c| c.verify(&id).ok()).collect();
    TestCommunity {
        id,
        certs,
        founder,
        devices,
        members,
    }
}
