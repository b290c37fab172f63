//! Signed statements about a published response: the facilitator's
//! publication and each member's endorsement.
//!
//! Both verify on their own, from an exported file, with nothing but the
//! community's certificates: anyone can check that the text, the tally and
//! the dissent annex are what the facilitator published, and that every
//! endorsement was signed by the member it names.

use super::keys::{self, CommunityId, MemberId, SecretKey};
use super::{ENDORSE_DOMAIN, PUBLISH_DOMAIN, TrustError};

/// Sign a publication statement (its exact bytes) with the publisher's member key.
pub fn sign_publication(key: &SecretKey, community: &CommunityId, statement: &[u8]) -> [u8; 64] {
    key.sign(PUBLISH_DOMAIN, community, statement)
}

/// Check a publication statement's signature by `publisher`.
pub fn verify_publication(
    publisher: &MemberId,
    community: &CommunityId,
    statement: &[u8],
    signature: &[u8; 64],
) -> Result<(), TrustError> {
    keys::verify(
        &publisher.0,
        PUBLISH_DOMAIN,
        community,
        statement,
        signature,
        "publication statement",
    )
}

/// What a member signs when endorsing: response id, text hash, member, stance,
/// separated by NUL bytes (none of them can contain one).
pub fn endorsement_message(
    response: &str,
    text_hash: &str,
    member: &MemberId,
    stance: &str,
) -> Vec<u8> {
    [response, text_hash, &member.to_hex(), stance]
        .join("\0")
        .into_bytes()
}

/// Sign an endorsement with the member key.
pub fn sign_endorsement(
    key: &SecretKey,
    community: &CommunityId,
    response: &str,
    text_hash: &str,
    stance: &str,
) -> [u8; 64] {
    let member = MemberId(key.public());
    key.sign(
        ENDORSE_DOMAIN,
        community,
        &endorsement_message(response, text_hash, &member, stance),
    )
}

/// Check an endorsement.
pub fn verify_endorsement(
    member: &MemberId,
    community: &CommunityId,
    response: &str,
    text_hash: &str,
    stance: &str,
    signature: &[u8; 64],
) -> Result<(), TrustError> {
    keys::verify(
        &member.0,
        ENDORSE_DOMAIN,
        community,
        &endorsement_message(response, text_hash, member, stance),
        signature,
        &format!("endorsement by {}", member.short()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endorsement_binds_response_text_and_stance() {
        let key = SecretKey::generate();
        let me = MemberId(key.public());
        let c = CommunityId([1; 32]);
        let sig = sign_endorsement(&key, &c, "r1", "h1", "support");
        assert!(verify_endorsement(&me, &c, "r1", "h1", "support", &sig).is_ok());
        assert!(verify_endorsement(&me, &c, "r2", "h1", "support", &sig).is_err());
        assert!(verify_endorsement(&me, &c, "r1", "h2", "support", &sig).is_err());
        assert!(verify_endorsement(&me, &c, "r1", "h1", "object", &sig).is_err());
        let other = MemberId(SecretKey::generate().public());
        assert!(verify_endorsement(&other, &c, "r1", "h1", "support", &sig).is_err());
    }

    #[test]
    fn publication_signature_covers_every_byte() {
        let key = SecretKey::generate();
        let c = CommunityId([1; 32]);
        let sig = sign_publication(&key, &c, b"{\"dissent\":[1]}");
        let me = MemberId(key.public());
        assert!(verify_publication(&me, &c, b"{\"dissent\":[1]}", &sig).is_ok());
        assert!(verify_publication(&me, &c, b"{\"dissent\":[]}", &sig).is_err());
    }
}
