//! Certificates: small signed records that say who belongs to a community.
//!
//! A certificate is the exact JSON text of its body plus the signatures over
//! `"convene/cert/v1" ‖ community id ‖ body`. We sign and store the body's
//! bytes as they are, so no canonical re-encoding is ever needed. Parsing a
//! certificate never trusts it: only [`Certificate::verify`] makes a
//! [`VerifiedCert`], and only verified certificates reach the membership view.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::keys::{self, CommunityId, DeviceId, MemberId, SecretKey};
use super::membership::Role;
use super::{CERT_DOMAIN, COMMUNITY_DOMAIN, TrustError, sha256};

/// The community id used when signing a genesis certificate (the real id is
/// derived from the genesis body, so it cannot be inside the signature).
pub const GENESIS_SIGNING_COMMUNITY: CommunityId = CommunityId([0; 32]);

/// What a certificate says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CertBody {
    /// The founding of a community; signed by the founder's member key.
    Genesis {
        /// The community's name.
        name: String,
        /// What the community is for.
        purpose: String,
        /// The founder's member key.
        founder: MemberId,
        /// The founder's display name.
        founder_name: String,
        /// When, in Unix seconds.
        at: i64,
        /// Random bytes (hex) so two communities with the same name differ.
        nonce: String,
    },
    /// A facilitator admits a member directly; signed by the facilitator.
    Admit {
        /// The new member's key.
        member: MemberId,
        /// Their display name.
        name: String,
        /// Their role.
        role: Role,
        /// The admitting facilitator.
        by: MemberId,
        /// When.
        at: i64,
    },
    /// A member's device; signed by the member key and by the device key
    /// (proof that the device holds its key).
    Device {
        /// The owning member.
        member: MemberId,
        /// The device key.
        device: DeviceId,
        /// A label such as the host name.
        label: String,
        /// When.
        at: i64,
    },
    /// A facilitator creates a one-time invitation; the ticket carries the
    /// secret half of `invite_key`. Signed by the facilitator.
    Invite {
        /// Public half of the one-time invite key.
        invite_key: DeviceId,
        /// The role the invitee will have.
        role: Role,
        /// Unix seconds after which the invite may not be used.
        expires_at: i64,
        /// The inviting facilitator.
        by: MemberId,
        /// When.
        at: i64,
    },
    /// The invitee claims an invitation with their own member key. Signed by
    /// the invite key (proof of holding the ticket) and the member key.
    Claim {
        /// The invite being used.
        invite_key: DeviceId,
        /// The new member's key.
        member: MemberId,
        /// Their display name.
        name: String,
        /// When.
        at: i64,
    },
    /// A facilitator removes a member. Of that member's changes, only those
    /// listed in `cutoff` (per document name, the change hashes, hex, that the
    /// facilitator held) stay accepted. Signed by the facilitator.
    Revoke {
        /// The removed member.
        member: MemberId,
        /// Why, for the record.
        reason: String,
        /// The removing facilitator.
        by: MemberId,
        /// When.
        at: i64,
        /// Document name → hashes (hex) of the member's accepted changes.
        cutoff: BTreeMap<String, Vec<String>>,
    },
}

impl CertBody {
    /// The keys whose signatures this body needs.
    fn required_signers(&self) -> Vec<[u8; 32]> {
        match self {
            CertBody::Genesis { founder, .. } => vec![founder.0],
            CertBody::Admit { by, .. } => vec![by.0],
            CertBody::Device { member, device, .. } => vec![member.0, device.0],
            CertBody::Invite { by, .. } | CertBody::Revoke { by, .. } => vec![by.0],
            CertBody::Claim {
                invite_key, member, ..
            } => vec![invite_key.0, member.0],
        }
    }

    /// A short word for the kind of certificate.
    pub fn kind(&self) -> &'static str {
        match self {
            CertBody::Genesis { .. } => "genesis",
            CertBody::Admit { .. } => "admit",
            CertBody::Device { .. } => "device",
            CertBody::Invite { .. } => "invite",
            CertBody::Claim { .. } => "claim",
            CertBody::Revoke { .. } => "revoke",
        }
    }
}

/// One signature on a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSignature {
    /// The signing public key, hex.
    pub signer: String,
    /// The signature, hex.
    pub signature: String,
}

/// A certificate as stored and sent: body text plus signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The body's JSON text, exactly as signed.
    pub body: String,
    /// Signatures over `CERT_DOMAIN ‖ community ‖ body`.
    pub signatures: Vec<CertSignature>,
}

/// A certificate whose signatures hold; only [`Certificate::verify`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCert {
    id: [u8; 32],
    body: CertBody,
    bytes: Vec<u8>,
}

impl VerifiedCert {
    /// SHA-256 of the certificate's bytes.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }
    /// What it says.
    pub fn body(&self) -> &CertBody {
        &self.body
    }
    /// The bytes as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Certificate {
    /// Make a certificate: serialise the body once and sign it with each key.
    pub fn issue(community: &CommunityId, body: &CertBody, signers: &[&SecretKey]) -> Self {
        let body_text = serde_json::to_string(body).unwrap_or_default();
        let signatures = signers
            .iter()
            .map(|key| CertSignature {
                signer: hex::encode(key.public()),
                signature: hex::encode(key.sign(CERT_DOMAIN, community, body_text.as_bytes())),
            })
            .collect();
        Certificate {
            body: body_text,
            signatures,
        }
    }

    /// Found a community: its genesis certificate and the id derived from it.
    pub fn genesis(founder: &SecretKey, body: &CertBody) -> (CommunityId, Self) {
        let cert = Self::issue(&GENESIS_SIGNING_COMMUNITY, body, &[founder]);
        (community_id_of(&cert.body), cert)
    }

    /// The bytes as stored and sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parse stored bytes (nothing is trusted yet).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TrustError> {
        serde_json::from_slice(bytes).map_err(|e| TrustError::MalformedCert(e.to_string()))
    }

    /// Check every required signature for `community` and return the verified
    /// certificate. A genesis certificate must also hash to `community`.
    pub fn verify(&self, community: &CommunityId) -> Result<VerifiedCert, TrustError> {
        self.check(community, true)
    }

    /// Accept a certificate this device verified before and attested
    /// (`store::attestation`): everything [`Certificate::verify`] checks
    /// except the signatures.
    pub fn accept_attested(&self, community: &CommunityId) -> Result<VerifiedCert, TrustError> {
        self.check(community, false)
    }

    fn check(&self, community: &CommunityId, signatures: bool) -> Result<VerifiedCert, TrustError> {
        let body: CertBody = serde_json::from_str(&self.body)
            .map_err(|e| TrustError::MalformedCert(e.to_string()))?;
        let signing_community = match body {
            CertBody::Genesis { .. } => {
                if community_id_of(&self.body) != *community {
                    return Err(TrustError::CertRefused(format!(
                        "genesis does not belong to community {}",
                        community.short()
                    )));
                }
                GENESIS_SIGNING_COMMUNITY
            }
            _ => *community,
        };
        let signers = if signatures {
            body.required_signers()
        } else {
            Vec::new()
        };
        for signer in signers {
            let signer_hex = hex::encode(signer);
            let sig = self
                .signatures
                .iter()
                .find(|s| s.signer == signer_hex)
                .and_then(|s| keys::signature_from_hex(&s.signature))
                .ok_or_else(|| {
                    TrustError::CertRefused(format!(
                        "{} certificate lacks a signature by {}",
                        body.kind(),
                        crate::ids::short(&signer_hex)
                    ))
                })?;
            keys::verify(
                &signer,
                CERT_DOMAIN,
                &signing_community,
                self.body.as_bytes(),
                &sig,
                &format!("{} certificate", body.kind()),
            )?;
        }
        let bytes = self.to_bytes();
        Ok(VerifiedCert {
            id: sha256(&bytes),
            body,
            bytes,
        })
    }
}

/// The community id of a genesis body: `sha256(COMMUNITY_DOMAIN ‖ body)`.
pub fn community_id_of(genesis_body: &str) -> CommunityId {
    let mut input = COMMUNITY_DOMAIN.to_vec();
    input.extend_from_slice(genesis_body.as_bytes());
    CommunityId(sha256(&input))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genesis(founder: &SecretKey) -> (CommunityId, Certificate) {
        Certificate::genesis(
            founder,
            &CertBody::Genesis {
                name: "Water".into(),
                purpose: "p".into(),
                founder: MemberId(founder.public()),
                founder_name: "Ana".into(),
                at: 1,
                nonce: "00".into(),
            },
        )
    }

    #[test]
    fn genesis_verifies_for_its_own_id_only() {
        let founder = SecretKey::generate();
        let (id, cert) = genesis(&founder);
        assert!(cert.verify(&id).is_ok());
        assert!(cert.verify(&CommunityId([1; 32])).is_err());
    }

    #[test]
    fn tampered_body_is_refused() {
        let founder = SecretKey::generate();
        let (id, cert) = genesis(&founder);
        let member = SecretKey::generate();
        let admit = Certificate::issue(
            &id,
            &CertBody::Admit {
                member: MemberId(member.public()),
                name: "Bo".into(),
                role: Role::Member,
                by: MemberId(founder.public()),
                at: 2,
            },
            &[&founder],
        );
        assert!(admit.verify(&id).is_ok());
        let mut forged = admit.clone();
        forged.body = forged.body.replace("\"member\",", "\"facilitator\",");
        assert_ne!(forged.body, admit.body);
        assert!(matches!(
            forged.verify(&id),
            Err(TrustError::BadSignature(_))
        ));
        let mut tampered_genesis = cert;
        tampered_genesis.body = tampered_genesis.body.replace("Water", "Fire");
        assert!(tampered_genesis.verify(&id).is_err());
    }

    #[test]
    fn device_cert_needs_both_member_and_device_signatures() {
        let founder = SecretKey::generate();
        let (id, _) = genesis(&founder);
        let device = SecretKey::generate();
        let body = CertBody::Device {
            member: MemberId(founder.public()),
            device: DeviceId(device.public()),
            label: "laptop".into(),
            at: 3,
        };
        assert!(
            Certificate::issue(&id, &body, &[&founder, &device])
                .verify(&id)
                .is_ok()
        );
        assert!(
            Certificate::issue(&id, &body, &[&founder])
                .verify(&id)
                .is_err()
        );
        let wrong = SecretKey::generate();
        assert!(
            Certificate::issue(&id, &body, &[&founder, &wrong])
                .verify(&id)
                .is_err()
        );
    }

    #[test]
    fn certificate_signed_for_another_community_is_refused() {
        let founder = SecretKey::generate();
        let (id, _) = genesis(&founder);
        let device = SecretKey::generate();
        let body = CertBody::Device {
            member: MemberId(founder.public()),
            device: DeviceId(device.public()),
            label: "x".into(),
            at: 3,
        };
        let cert = Certificate::issue(&CommunityId([9; 32]), &body, &[&founder, &device]);
        assert!(cert.verify(&id).is_err());
    }

    #[test]
    fn garbage_bytes_are_malformed_not_panics() {
        for bytes in [&b""[..], b"{", b"{\"body\":1}", b"\xff\xfe"] {
            assert!(Certificate::from_bytes(bytes).is_err());
        }
        let c = Certificate {
            body: "not json".into(),
            signatures: vec![],
        };
        assert!(matches!(
            c.verify(&CommunityId([0; 32])),
            Err(TrustError::MalformedCert(_))
        ));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(10_000))]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                if let Ok(cert) = Certificate::from_bytes(&bytes) {
                    let _ = cert.verify(&CommunityId([0; 32]));
                }
            }

            /// A certificate changed anywhere never verifies with other
            /// content than what was signed.
            #[test]
            fn a_mutated_certificate_never_verifies_with_other_content(
                seed in any::<[u8; 32]>(),
                label in "[a-z]{0,12}",
                pos in any::<prop::sample::Index>(),
                byte in any::<u8>(),
            ) {
                let founder = SecretKey::from_bytes(seed);
                let (id, _) = genesis(&founder);
                let device = SecretKey::from_bytes([seed[0] ^ 0x55; 32]);
                let body = CertBody::Device {
                    member: MemberId(founder.public()),
                    device: DeviceId(device.public()),
                    label,
                    at: 3,
                };
                let mut bytes = Certificate::issue(&id, &body, &[&founder, &device]).to_bytes();
                let i = pos.index(bytes.len());
                bytes[i] = byte;
                if let Ok(verified) = Certificate::from_bytes(&bytes).and_then(|c| c.verify(&id)) {
                    prop_assert_eq!(verified.body(), &body);
                }
            }
        }
    }
}
