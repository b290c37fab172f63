//! Certificates from arbitrary bytes: parse, verify, and build a membership
//! view from them: errors, never panics.
#![no_main]

use convene::trust::{Certificate, CommunityId, Membership};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let community = CommunityId([7; 32]);
    let mut verified = Vec::new();
    for part in data.split(|b| *b == 0) {
        if let Ok(cert) = Certificate::from_bytes(part)
            && let Ok(v) = cert.verify(&community)
        {
            verified.push(v);
        }
    }
    let _ = Membership::build(community, &verified);
});
