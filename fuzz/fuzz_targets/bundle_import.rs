//! Bundle files with arbitrary content, decoded and imported into a
//! community: refused or imported, never a panic.
#![no_main]

use std::sync::{Mutex, OnceLock};

use convene::store::{CommunityStore, Home};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Mutex<CommunityStore>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let home = Home::new(dir.path().to_path_buf());
        let identity = home.init("Fuzz").expect("an identity");
        let store = home
            .create_community(&identity, "Fuzz", "fuzzing", 0)
            .expect("a community");
        Fixture {
            _dir: dir,
            store: Mutex::new(store),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Ok(mut store) = f.store.lock() else {
        return;
    };
    let id = store.id();
    // As found in a file, and with a valid header around the same bytes.
    let _ = convene::bundle::decode(data, &id);
    let mut framed = convene::bundle::MAGIC.to_vec();
    framed.extend_from_slice(&id.0);
    framed.extend_from_slice(&convene::trust::sha256(data));
    framed.extend_from_slice(data);
    if let Ok(bundle) = convene::bundle::decode(&framed, &id) {
        let _ = convene::store::bundle::import(&mut store, &bundle, 0);
    }
});
