//! Trust: keys, certificates, the membership view, and signatures over
//! changes and statements.
//!
//! This module does no I/O. It decides, from signed bytes alone, who belongs
//! to a community, with which role, from which devices, and whether a change
//! or a published statement really comes from who it claims. The rules are
//! written out in `docs/trust.md`.

pub mod cert;
#[cfg(test)]
pub mod fixture;
pub mod keys;
#[cfg(test)]
mod keys_tests;
pub mod membership;
pub mod ownership;
pub mod removal;
pub mod signed_change;
pub mod statement;

pub use cert::{CertBody, Certificate, VerifiedCert};
pub use keys::{CommunityId, DeviceId, MemberId, SecretKey};
pub use membership::{Member, Membership, Role};
pub use signed_change::{ChangeSignature, VerifiedChange};

/// Domain tag for certificates.
pub const CERT_DOMAIN: &[u8] = b"convene/cert/v1";
/// Domain tag for Automerge changes.
pub const CHANGE_DOMAIN: &[u8] = b"convene/change/v1";
/// Domain tag for a published response's statement.
pub const PUBLISH_DOMAIN: &[u8] = b"convene/publish/v1";
/// Domain tag for a member's endorsement of a published response.
pub const ENDORSE_DOMAIN: &[u8] = b"convene/endorse/v1";
/// Domain tag from which a community id is derived.
pub const COMMUNITY_DOMAIN: &[u8] = b"convene/community/v1";
/// Domain tag for a device's attestation on a snapshot it wrote (`store::attestation`).
pub const SNAPSHOT_ATTESTATION_DOMAIN: &[u8] = b"convene/snapshot-attestation/v1";

/// Why signed bytes were refused. Every variant is an integrity or security
/// rejection (exit code 4 at the command line).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    /// A key's bytes are not a valid ed25519 public key.
    #[error("invalid public key {0}")]
    BadKey(String),
    /// A signature does not verify.
    #[error("bad signature on {0}")]
    BadSignature(String),
    /// Bytes that should be a certificate do not parse.
    #[error("malformed certificate: {0}")]
    MalformedCert(String),
    /// A certificate is well-formed but breaks a rule.
    #[error("certificate refused: {0}")]
    CertRefused(String),
    /// A change's author device is not a current device of a member with write rights.
    #[error("change {change} by device {device} refused: {reason}")]
    ChangeRefused {
        /// Short hash of the change.
        change: String,
        /// Short id of the device.
        device: String,
        /// Why.
        reason: String,
    },
}

/// The SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(bytes);
    h.finalize().into()
}
