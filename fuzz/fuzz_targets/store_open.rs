//! A document log and snapshot with arbitrary content, loaded as a command
//! would: refused or loaded, never a panic.
#![no_main]

use std::sync::OnceLock;

use convene::store::doclog::{self, DocFiles};
use convene::store::{CommunityStore, Home};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    _dir: tempfile::TempDir,
    store: CommunityStore,
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
        Fixture { _dir: dir, store }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let files = DocFiles::new(&f.store.docs_dir(), "response-00aa");
    let (log, snapshot) = data.split_at(data.len() / 2);
    let mut log_bytes = convene::store::frame::CHANGES_MAGIC.to_vec();
    log_bytes.extend_from_slice(log);
    let _ = std::fs::write(&files.log, &log_bytes);
    let _ = std::fs::write(&files.snapshot, snapshot);
    let _ = doclog::load(&files, f.store.membership(), false, 0);
});
