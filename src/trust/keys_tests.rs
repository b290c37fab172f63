//! Tests of the signature rule: checking together gives the answers of
//! checking alone, on every kind of bad signature and key, including those
//! on which `verify_strict` and the cofactored rule disagree.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

use super::TrustError;
use super::keys::{CommunityId, SecretKey, Signed, all_hold_together, verify, verify_all};

const C: CommunityId = CommunityId([7; 32]);
const DOMAIN: &[u8] = b"convene/test/v1";

/// What [`SecretKey::sign`] signs.
fn input(message: &[u8]) -> Vec<u8> {
    [DOMAIN, &C.0[..], message].concat()
}

/// A signature by the secret scalar `a` whose `R` carries a component of
/// order 8: its key holder made it on purpose. It holds under the
/// cofactored rule and not under `verify_strict`.
fn mixed_order_signature(a: &Scalar, message: &[u8]) -> ([u8; 32], [u8; 64]) {
    let public = EdwardsPoint::mul_base(a).compress().to_bytes();
    let r = Scalar::from_bytes_mod_order([42; 32]);
    let big_r = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[1])
        .compress()
        .to_bytes();
    let hash: [u8; 64] = Sha512::new()
        .chain_update(big_r)
        .chain_update(public)
        .chain_update(input(message))
        .finalize()
        .into();
    let k = Scalar::from_bytes_mod_order_wide(&hash);
    let s = r + k * a;
    let mut signature = [0; 64];
    signature[..32].copy_from_slice(&big_r);
    signature[32..].copy_from_slice(s.as_bytes());
    (public, signature)
}

fn as_signed(items: &[([u8; 32], Vec<u8>, [u8; 64])]) -> Vec<Signed<'_>> {
    items
        .iter()
        .map(|(public, message, signature)| Signed {
            public,
            message,
            signature,
        })
        .collect()
}

/// Each verdict of `verify_all` equals `verify`'s on the same item.
fn agree(items: &[([u8; 32], Vec<u8>, [u8; 64])]) -> Vec<Result<(), TrustError>> {
    let signed = as_signed(items);
    let together = verify_all(DOMAIN, &C, &signed, "x");
    let alone: Vec<_> = items
        .iter()
        .map(|(public, message, signature)| verify(public, DOMAIN, &C, message, signature, "x"))
        .collect();
    assert_eq!(together, alone);
    together
}

#[test]
fn checking_together_gives_the_answers_of_checking_alone() {
    let keys: Vec<SecretKey> = (0..5).map(|_| SecretKey::generate()).collect();
    for n in [1usize, 2, 3, 64, 300] {
        // Every kind of fault, at places that vary with n: none, one, many.
        for fault_every in [0usize, n, 7, 2] {
            let items: Vec<([u8; 32], Vec<u8>, [u8; 64])> = (0..n)
                .map(|i| {
                    let key = &keys[i % keys.len()];
                    let message = format!("change {i}").into_bytes();
                    let mut signature = key.sign(DOMAIN, &C, &message);
                    let mut public = key.public();
                    let faulty = fault_every > 0 && i % fault_every == fault_every - 1;
                    if faulty {
                        match i % 4 {
                            0 => signature[5] ^= 1,  // R damaged
                            1 => signature[40] ^= 1, // s damaged
                            2 => public = keys[(i + 1) % keys.len()].public(),
                            _ => signature[63] |= 0xf0, // s not canonical
                        }
                    }
                    (public, message, signature)
                })
                .collect();
            let verdicts = agree(&items);
            let refused = verdicts.iter().filter(|v| v.is_err()).count();
            let expected = n.checked_div(fault_every).unwrap_or(0);
            assert_eq!(refused, expected, "n {n}, a fault every {fault_every}");
            // The equation alone holds exactly when no signature is bad.
            assert_eq!(
                all_hold_together(DOMAIN, &C, &as_signed(&items)),
                expected == 0
            );
        }
    }
}

#[test]
fn a_signature_with_a_mixed_order_r_holds_alone_and_together() {
    let a = Scalar::from_bytes_mod_order([9; 32]);
    let (public, signature) = mixed_order_signature(&a, b"hello");
    // `verify_strict` refuses it: this is where the two rules differ.
    let strict = ed25519_dalek::VerifyingKey::from_bytes(&public)
        .map(|key| key.verify_strict(&input(b"hello"), &signature.into()));
    assert!(matches!(strict, Ok(Err(_))));
    // Under convene's rule it holds, alone and among others, honest or not.
    let honest = SecretKey::generate();
    let mut items = vec![(public, b"hello".to_vec(), signature)];
    assert!(agree(&items)[0].is_ok());
    for i in 0..100u32 {
        let message = i.to_le_bytes().to_vec();
        let mut sig = honest.sign(DOMAIN, &C, &message);
        if i == 50 {
            sig[7] ^= 1;
        }
        items.push((honest.public(), message, sig));
    }
    let verdicts = agree(&items);
    assert_eq!(verdicts[0], Ok(()));
    assert_eq!(verdicts.iter().filter(|v| v.is_err()).count(), 1);
    assert!(verdicts[51].is_err());
    // Without the forgery, the equation alone holds, whatever the weights
    // drawn (a cofactorless one fails 7 times in 8 with such an `R`).
    items.remove(51);
    let signed = as_signed(&items);
    for _ in 0..24 {
        assert!(all_hold_together(DOMAIN, &C, &signed));
    }
    assert!(agree(&items).iter().all(Result::is_ok));
    // Anything else under that R is refused.
    assert!(verify(&public, DOMAIN, &C, b"hellO", &signature, "x").is_err());
}

#[test]
fn a_small_order_key_signs_nothing() {
    // Under the cofactored equation a key of small order A accepts R = sB
    // for any message: such keys are refused outright.
    for point in EIGHT_TORSION {
        let public = point.compress().to_bytes();
        let s = Scalar::from_bytes_mod_order([3; 32]);
        let mut signature = [0; 64];
        signature[..32].copy_from_slice((ED25519_BASEPOINT_POINT * s).compress().as_bytes());
        signature[32..].copy_from_slice(s.as_bytes());
        let items = vec![(public, b"anything".to_vec(), signature)];
        assert!(matches!(agree(&items)[0], Err(TrustError::BadKey(_))));
    }
}

#[test]
fn a_key_in_a_non_canonical_encoding_is_refused() {
    // y = p + y0 for small y0: the same point as y0, encoded otherwise.
    // Some are points of large order: only the encoding refuses them.
    let mut large_order = 0;
    for y0 in 0u8..19 {
        let mut bytes = [0xff; 32];
        bytes[0] = 0xed + y0;
        bytes[31] = 0x7f;
        let Some(point) = CompressedEdwardsY(bytes).decompress() else {
            continue;
        };
        if !point.is_small_order() {
            large_order += 1;
        }
        let signature = SecretKey::generate().sign(DOMAIN, &C, b"m");
        let items = vec![(bytes, b"m".to_vec(), signature)];
        assert!(matches!(agree(&items)[0], Err(TrustError::BadKey(_))));
    }
    assert!(large_order > 0);
}
