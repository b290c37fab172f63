//! Sync frames and store records from arbitrary bytes: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = convene::sync::frame::decode(data);
    let _ = convene::store::frame::parse(data, convene::store::frame::CHANGES_MAGIC);
    let mut framed = convene::store::frame::CHANGES_MAGIC.to_vec();
    framed.extend_from_slice(data);
    let _ = convene::store::frame::parse(&framed, convene::store::frame::CHANGES_MAGIC);
});
