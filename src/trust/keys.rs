//! Ed25519 keys and the ids derived from them.
//!
//! A member is known by their member public key, a device by its device
//! public key (later also its iroh endpoint id), a community by the hash of
//! its genesis certificate. Every signature is over
//! `domain tag ‖ community id ‖ message`, so a signature made for one purpose
//! or one community can never be replayed for another.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use ed25519_zebra::VerificationKey;

use super::TrustError;
use crate::ids::short;

macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Lowercase hex of the 32 bytes (the canonical text form).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parse the canonical text form.
            pub fn from_hex(text: &str) -> Option<Self> {
                let bytes = hex::decode(text.trim()).ok()?;
                Some($name(bytes.try_into().ok()?))
            }

            /// The short form people see.
            pub fn short(&self) -> String {
                short(&self.to_hex()).to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                $name::from_hex(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("expected 64 hex digits, got '{text}'"))
                })
            }
        }
    };
}

id32!(
    /// A member: the public half of their member key.
    MemberId
);
id32!(
    /// A device: the public half of its device key.
    DeviceId
);
id32!(
    /// A community: the hash of its genesis certificate.
    CommunityId
);

/// A secret ed25519 key (a member key or a device key). Never printed.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        SecretKey(SigningKey::from_bytes(&crate::ids::random_bytes::<32>()))
    }

    /// Rebuild a key from its 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(&bytes))
    }

    /// The 32 secret bytes, for the identity files only.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half.
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Sign `domain ‖ community ‖ message`.
    pub fn sign(&self, domain: &[u8], community: &CommunityId, message: &[u8]) -> [u8; 64] {
        self.0
            .sign(&signing_input(domain, community, message))
            .to_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretKey(public {})",
            short(&hex::encode(self.public()))
        )
    }
}

/// Check a signature made by [`SecretKey::sign`]; `what` names the signed
/// thing in the error.
///
/// The rule is ZIP 215's (cofactored verification, `s` canonical), with
/// keys held to more than it asks: a key must be the canonical encoding of
/// a point outside the small subgroup, or nothing it signs holds. Under
/// this rule, checking many signatures at once ([`verify_all`]) gives the
/// same answers as checking them one by one, which `verify_strict` does
/// not (docs/trust.md).
pub fn verify(
    public: &[u8; 32],
    domain: &[u8],
    community: &CommunityId,
    message: &[u8],
    signature: &[u8; 64],
    what: &str,
) -> Result<(), TrustError> {
    let key = verifying_key(public).ok_or_else(|| bad_key(public))?;
    key.verify(
        &Signature::from_bytes(signature),
        &signing_input(domain, community, message),
    )
    .map_err(|_| TrustError::BadSignature(what.to_string()))
}

/// One signature for [`verify_all`]: made by `public` over `message`.
pub struct Signed<'a> {
    /// The signer's public key.
    pub public: &'a [u8; 32],
    /// The message, without the domain tag and community id.
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a [u8; 64],
}

/// [`verify`] on each of `items`, all made for `domain` in `community`:
/// the same answers, in order, in a third to a quarter of the time when
/// all hold.
///
/// All are checked in one equation, each term weighted by a fresh random
/// 128-bit scalar, with the terms of one key added up first (a community
/// has a few hundred keys, and a sync brings thousands of changes). Under
/// the cofactored rule the equation holds if and only if every signature
/// does (but for a chance of 2^-128 that nobody can steer); if it does
/// not, each is checked alone to find which.
pub fn verify_all(
    domain: &[u8],
    community: &CommunityId,
    items: &[Signed<'_>],
    what: &str,
) -> Vec<Result<(), TrustError>> {
    let (inputs, keys) = inputs_and_keys(domain, community, items);
    let mut verdicts: Vec<Result<(), TrustError>> = items
        .iter()
        .zip(&keys)
        .map(|(item, key)| match key {
            Some(_) => Ok(()),
            None => Err(bad_key(item.public)),
        })
        .collect();
    let all_hold = hold_together(items, &inputs, &keys);
    if !all_hold {
        // A run with a bad signature costs its batch and then each alone:
        // 46 µs a signature, against 39 for `verify_strict` alone.
        for (((item, input), key), verdict) in items
            .iter()
            .zip(&inputs)
            .zip(&keys)
            .zip(verdicts.iter_mut())
        {
            if let Some(key) = key {
                *verdict = key
                    .verify(&Signature::from_bytes(item.signature), input)
                    .map_err(|_| TrustError::BadSignature(what.to_string()));
            }
        }
    }
    verdicts
}

/// What each of `items` signed (with the domain tag and community id), and
/// its key if fit to verify with.
fn inputs_and_keys(
    domain: &[u8],
    community: &CommunityId,
    items: &[Signed<'_>],
) -> (Vec<Vec<u8>>, Vec<Option<VerificationKey>>) {
    items
        .iter()
        .map(|item| {
            (
                signing_input(domain, community, item.message),
                verifying_key(item.public),
            )
        })
        .unzip()
}

/// Whether the signatures of `items` whose key is fit to verify with all
/// hold, checked in one equation ([`verify_all`]).
fn hold_together(
    items: &[Signed<'_>],
    inputs: &[Vec<u8>],
    keys: &[Option<VerificationKey>],
) -> bool {
    let mut batch = ed25519_zebra::batch::Verifier::new();
    let mut queued = 0;
    for ((item, input), key) in items.iter().zip(inputs).zip(keys) {
        if key.is_some() {
            batch.queue((
                ed25519_zebra::VerificationKeyBytes::from(*item.public),
                Signature::from_bytes(item.signature),
                input.as_slice(),
            ));
            queued += 1;
        }
    }
    // The weights come from the operating system's random source, which
    // panics in the rare case it fails: then each is checked alone.
    queued == 0
        || catch_unwind(AssertUnwindSafe(|| {
            batch
                .verify(rand_core::UnwrapErr(getrandom::SysRng))
                .is_ok()
        }))
        .unwrap_or(false)
}

/// Whether all of `items` hold, checked in one equation and nothing else:
/// for tests of the equation itself, which [`verify_all`]'s check of each
/// alone after a failure would hide.
#[cfg(test)]
pub(crate) fn all_hold_together(
    domain: &[u8],
    community: &CommunityId,
    items: &[Signed<'_>],
) -> bool {
    let (inputs, keys) = inputs_and_keys(domain, community, items);
    keys.iter().all(Option::is_some) && hold_together(items, &inputs, &keys)
}

fn bad_key(public: &[u8; 32]) -> TrustError {
    TrustError::BadKey(short(&hex::encode(public)).to_string())
}

/// A public key fit to verify with: the canonical encoding of a point
/// outside the small subgroup (a small-order key would let anyone make
/// signatures that hold under the cofactored rule). Decompressing is a
/// fifth of a verification, and a community has a few hundred keys at
/// most, each verifying thousands of changes: the process keeps the keys
/// it checked (a pure function of the bytes, so the cache changes no
/// outcome). One cache for all threads: checking runs on threads started
/// for each batch (`crate::parallel`), which a cache per thread would
/// start empty.
fn verifying_key(public: &[u8; 32]) -> Option<VerificationKey> {
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};
    /// Past this many keys the cache starts again (bounded memory).
    const KEPT: usize = 4096;
    static KEYS: OnceLock<RwLock<HashMap<[u8; 32], VerificationKey>>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| RwLock::new(HashMap::new()));
    if let Some(key) = keys.read().ok().and_then(|k| k.get(public).copied()) {
        return Some(key);
    }
    let point = VerifyingKey::from_bytes(public).ok()?;
    if point.is_weak() || point.to_edwards().compress().to_bytes() != *public {
        return None;
    }
    let key = VerificationKey::try_from(*public).ok()?;
    if let Ok(mut keys) = keys.write() {
        if keys.len() >= KEPT {
            keys.clear();
        }
        keys.insert(*public, key);
    }
    Some(key)
}

fn signing_input(domain: &[u8], community: &CommunityId, message: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(domain.len() + 32 + message.len());
    input.extend_from_slice(domain);
    input.extend_from_slice(&community.0);
    input.extend_from_slice(message);
    input
}

/// Parse 128 hex digits into a signature.
pub fn signature_from_hex(text: &str) -> Option<[u8; 64]> {
    hex::decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: CommunityId = CommunityId([7; 32]);

    #[test]
    fn sign_then_verify() {
        let key = SecretKey::generate();
        let sig = key.sign(b"d", &C, b"hello");
        assert!(verify(&key.public(), b"d", &C, b"hello", &sig, "x").is_ok());
    }

    #[test]
    fn tampered_message_domain_community_or_key_fail() {
        let key = SecretKey::generate();
        let other = SecretKey::generate();
        let sig = key.sign(b"d", &C, b"hello");
        assert!(verify(&key.public(), b"d", &C, b"hellO", &sig, "x").is_err());
        assert!(verify(&key.public(), b"e", &C, b"hello", &sig, "x").is_err());
        assert!(
            verify(
                &key.public(),
                b"d",
                &CommunityId([8; 32]),
                b"hello",
                &sig,
                "x"
            )
            .is_err()
        );
        assert!(verify(&other.public(), b"d", &C, b"hello", &sig, "x").is_err());
        let mut flipped = sig;
        flipped[10] ^= 1;
        assert!(verify(&key.public(), b"d", &C, b"hello", &flipped, "x").is_err());
    }

    #[test]
    fn ids_roundtrip_hex_and_serde() {
        let id = MemberId(SecretKey::generate().public());
        assert_eq!(MemberId::from_hex(&id.to_hex()), Some(id));
        let json = serde_json::to_string(&id).unwrap_or_default();
        assert_eq!(serde_json::from_str::<MemberId>(&json).ok(), Some(id));
        assert!(serde_json::from_str::<MemberId>("\"abc\"").is_err());
        assert_eq!(id.short().len(), 8);
    }

    #[test]
    fn secret_round_trips_and_debug_hides_it() {
        let key = SecretKey::generate();
        let again = SecretKey::from_bytes(key.to_bytes());
        assert_eq!(key.public(), again.public());
        assert!(!format!("{key:?}").contains(&hex::encode(key.to_bytes())));
    }
}
