//! Crash recovery and corruption: a torn tail is cut cleanly (and kept
//! aside), damage elsewhere and refused signatures exit 4 with a clear
//! message, never a panic.

use std::path::{Path, PathBuf};

use automerge::transaction::Transactable;
use convene::store::frame;
use convene::trust::signed_change::{actor_bytes, sign_change};
use convene::trust::{CommunityId, DeviceId, SecretKey};

use crate::common::{TestHome, joined_offline};

fn doc_log(home: &TestHome, prefix: &str) -> PathBuf {
    let docs = home.community_dir().join("docs");
    std::fs::read_dir(&docs)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with(prefix) && name.ends_with(".log")
        })
        .unwrap_or_else(|| panic!("no {prefix} log"))
}

fn with_thread() -> (TestHome, String) {
    let home = TestHome::founded("Ana");
    let rid = home
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    home.ok(&["thread", &rid, "One", "-m", "first"]);
    home.ok(&["thread", &rid, "Two", "-m", "second"]);
    (home, rid)
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{e}"));
    f.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
}

fn thread_count(home: &TestHome, rid: &str) -> usize {
    home.ok(&["--json", "show", rid]).json()["threads"]
        .as_array()
        .map(|t| t.len())
        .unwrap_or(0)
}

#[test]
fn a_torn_tail_is_skipped_by_readers_and_cut_by_the_next_writer() {
    let (home, rid) = with_thread();
    let log = doc_log(&home, "response-");
    let intact = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    // Half a record, as a crash during an append leaves it: the header of a
    // 200-byte record, then only 10 bytes of its payload.
    let torn = frame::encode(&[7u8; 200])[..frame::HEADER_LEN + 10].to_vec();
    append(&log, &torn);

    let read = home.ok(&["--json", "show", &rid]);
    assert_eq!(read.json()["threads"].as_array().map(|t| t.len()), Some(2));
    assert!(read.stderr.contains("torn tail"), "{}", read.stderr);

    home.ok(&["thread", &rid, "Three", "-m", "third"]);
    assert_eq!(thread_count(&home, &rid), 3);
    let aside: Vec<_> = std::fs::read_dir(log.parent().unwrap_or(Path::new(".")))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".torn-"))
        .collect();
    assert_eq!(aside.len(), 1, "the cut bytes are kept aside");
    assert_eq!(std::fs::read(aside[0].path()).unwrap_or_default(), torn);
    assert!(std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) > intact);
}

#[test]
fn every_truncation_of_a_log_opens_cleanly() {
    let (home, rid) = with_thread();
    let log = doc_log(&home, "response-");
    let original = std::fs::read(&log).unwrap_or_default();
    let mut seen_counts = std::collections::BTreeSet::new();
    for cut in (0..original.len()).step_by(37) {
        std::fs::write(&log, &original[..cut]).unwrap_or_else(|e| panic!("{e}"));
        let r = home.run(&["--json", "show", &rid]);
        // Cut before the document was created: it is missing (exit 1);
        // otherwise a prefix of the history loads.
        assert!(
            r.code == 0 || r.code == 1,
            "cut {cut}: {} {}",
            r.code,
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"));
        if r.code == 0 {
            seen_counts.insert(r.json()["threads"].as_array().map(|t| t.len()).unwrap_or(0));
        }
    }
    assert!(
        seen_counts.contains(&0) && seen_counts.contains(&1),
        "{seen_counts:?}"
    );
    std::fs::write(&log, &original).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(thread_count(&home, &rid), 2);
}

#[test]
fn a_flipped_byte_in_the_middle_exits_4() {
    let (home, rid) = with_thread();
    let log = doc_log(&home, "response-");
    let mut bytes = std::fs::read(&log).unwrap_or_default();
    bytes[frame::MAGIC_LEN + frame::HEADER_LEN + 70] ^= 0x20;
    std::fs::write(&log, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let r = home.fails(4, &["show", &rid]);
    assert!(
        r.stderr.contains("is corrupt") && r.stderr.contains("record 0"),
        "{}",
        r.stderr
    );
    home.fails(4, &["thread", &rid, "x", "-m", "y"]);
    // Nothing was changed by the refused commands.
    assert_eq!(std::fs::read(&log).unwrap_or_default(), bytes);
}

#[test]
fn a_damaged_length_field_exits_4_and_is_never_cut() {
    let (home, rid) = with_thread();
    let log = doc_log(&home, "response-");
    let mut bytes = std::fs::read(&log).unwrap_or_default();
    // The length of the first record now points past the end of the file.
    bytes[frame::MAGIC_LEN + 2] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let r = home.fails(4, &["show", &rid]);
    assert!(r.stderr.contains("length checksum"), "{}", r.stderr);
    home.fails(4, &["thread", &rid, "x", "-m", "y"]);
    assert_eq!(
        std::fs::read(&log).unwrap_or_default(),
        bytes,
        "nothing was cut"
    );
}

#[test]
fn a_forged_signature_with_a_valid_checksum_exits_4() {
    let (home, rid) = with_thread();
    let log = doc_log(&home, "response-");
    let bytes = std::fs::read(&log).unwrap_or_default();
    let parsed = frame::parse(&bytes, frame::CHANGES_MAGIC).unwrap_or_else(|e| panic!("{e}"));
    let mut rebuilt = frame::CHANGES_MAGIC.to_vec();
    for (i, record) in parsed.records.iter().enumerate() {
        let mut payload = record.to_vec();
        if i == 1 {
            payload[5] ^= 0x01; // inside the signature
        }
        rebuilt.extend(frame::encode(&payload));
    }
    std::fs::write(&log, &rebuilt).unwrap_or_else(|e| panic!("{e}"));
    let r = home.fails(4, &["show", &rid]);
    assert!(r.stderr.contains("bad signature"), "{}", r.stderr);
}

#[test]
fn a_change_from_an_unknown_device_exits_4() {
    let (home, rid) = with_thread();
    let log = doc_log(&home, "response-");
    let community = CommunityId::from_hex(
        &home
            .community_dir()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
    .unwrap_or_else(|| panic!("community id"));
    let stranger = SecretKey::generate();
    let mut doc = automerge::AutoCommit::new().with_actor(automerge::ActorId::from(actor_bytes(
        &DeviceId(stranger.public()),
        &[1; 8],
    )));
    doc.put(automerge::ROOT, "summary", "forged")
        .unwrap_or_else(|e| panic!("{e}"));
    let hash = doc.commit().unwrap_or_else(|| panic!("no change"));
    let change = doc
        .get_change_by_hash(&hash)
        .unwrap_or_else(|| panic!("no change"));
    let doc_name = log
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sig = sign_change(&stranger, &community, &doc_name, &hash.0);
    let mut payload = sig.0.to_vec();
    payload.extend_from_slice(change.raw_bytes());
    append(&log, &frame::encode(&payload));
    let r = home.fails(4, &["show", &rid]);
    assert!(
        r.stderr.contains("not a device of any member"),
        "{}",
        r.stderr
    );
}

#[test]
fn damaged_certificates_exit_4() {
    let (home, _) = with_thread();
    let certs = home.community_dir().join("certs.log");
    let text = std::fs::read(&certs).unwrap_or_default();
    let parsed = frame::parse(&text, frame::CERTS_MAGIC).unwrap_or_else(|e| panic!("{e}"));
    let mut rebuilt = frame::CERTS_MAGIC.to_vec();
    for record in &parsed.records {
        // Rename the founder, keeping the checksum valid: the signature fails.
        let renamed = String::from_utf8_lossy(record).replace("Ana", "Eve");
        rebuilt.extend(frame::encode(renamed.as_bytes()));
    }
    std::fs::write(&certs, &rebuilt).unwrap_or_else(|e| panic!("{e}"));
    let r = home.fails(4, &["responses"]);
    assert!(r.stderr.contains("certs.log"), "{}", r.stderr);
    std::fs::write(&certs, b"CVCERT01garbage").unwrap_or_else(|e| panic!("{e}"));
    home.fails(4, &["responses"]);
}

#[test]
fn a_damaged_snapshot_exits_4_and_compaction_keeps_everything() {
    let (home, rid) = with_thread();
    let docs = home.community_dir().join("docs");
    let log = doc_log(&home, "response-");
    let name = log
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files = convene::store::doclog::DocFiles::new(&docs, &name);
    let store = convene::store::Home::new(home.path())
        .resolve(None)
        .unwrap_or_else(|e| panic!("{e}"));
    let before = home.ok(&["--json", "show", &rid]).stdout;
    let old_log = std::fs::read(&files.log).unwrap_or_default();
    let mut loaded = store
        .load_doc(&files.name, true, 0)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("document missing"));
    store
        .compact_doc(&files.name, &mut loaded)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read(&files.log).unwrap_or_default(),
        frame::CHANGES_MAGIC
    );
    assert_eq!(home.ok(&["--json", "show", &rid]).stdout, before);

    // A crash between writing the snapshot and emptying the log: both hold
    // the same changes, which loads to the same state.
    std::fs::write(&files.log, &old_log).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(home.ok(&["--json", "show", &rid]).stdout, before);
    home.ok(&["thread", &rid, "After compaction", "-m", "still here"]);
    assert_eq!(thread_count(&home, &rid), 3);

    let mut snapshot = std::fs::read(&files.snapshot).unwrap_or_default();
    let middle = snapshot.len() / 2;
    snapshot[middle] ^= 0xff;
    std::fs::write(&files.snapshot, &snapshot).unwrap_or_else(|e| panic!("{e}"));
    let r = home.fails(4, &["show", &rid]);
    assert!(r.stderr.contains("snapshot"), "{}", r.stderr);
}

#[test]
fn doctor_reports_damage_and_how_to_recover_it() {
    let (home, rid) = with_thread();
    let healthy = home.ok(&["--json", "doctor"]).json();
    assert_eq!(healthy["ok"], true, "{healthy}");
    let checked: Vec<String> = healthy["checks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| c["file"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(checked.iter().any(|f| f == "identity"), "{checked:?}");
    assert!(
        checked.iter().any(|f| f.ends_with("certs.log")),
        "{checked:?}"
    );
    assert!(
        checked.iter().any(|f| f.contains("response-")),
        "{checked:?}"
    );

    // A log cut at a record boundary: doctor says what is missing; the next
    // write notes it and seals what is left, and doctor lists the note.
    let log = doc_log(&home, "response-");
    let bytes = std::fs::read(&log).unwrap_or_default();
    let parsed = frame::parse(&bytes, frame::CHANGES_MAGIC).unwrap_or_else(|e| panic!("{e}"));
    let first = frame::MAGIC_LEN + frame::HEADER_LEN + parsed.records[0].len();
    std::fs::write(&log, &bytes[..first]).unwrap_or_else(|e| panic!("{e}"));
    let cut = home.fails(4, &["--json", "doctor"]).json();
    assert!(cut.to_string().contains("bytes are missing"), "{cut}");
    let read = home.ok(&["--json", "show", &rid]);
    assert!(read.stderr.contains("lost its last"), "{}", read.stderr);
    home.ok(&["thread", &rid, "After the cut", "-m", "new"]);
    let noted = home.ok(&["--json", "doctor"]).json();
    assert!(
        noted["checks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .any(|c| c["status"] == "note"
                && c["file"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(".truncated-")),
        "{noted}"
    );

    // A flipped byte: damaged, exit 4, with the way back.
    let bytes = std::fs::read(&log).unwrap_or_default();
    let mut flipped = bytes.clone();
    flipped[frame::MAGIC_LEN + frame::HEADER_LEN + 70] ^= 0x20;
    std::fs::write(&log, &flipped).unwrap_or_else(|e| panic!("{e}"));
    let r = home.fails(4, &["--json", "doctor"]);
    let report = r.json();
    assert_eq!(report["ok"], false);
    let damaged: Vec<_> = report["checks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["status"] == "damaged")
        .collect();
    assert_eq!(damaged.len(), 1, "{report}");
    assert!(
        damaged[0]["file"]
            .as_str()
            .unwrap_or_default()
            .contains("response-")
    );
    assert!(
        damaged[0]["recover"]
            .as_str()
            .unwrap_or_default()
            .contains("convene sync")
    );
    // Nothing was changed.
    assert_eq!(std::fs::read(&log).unwrap_or_default(), flipped);
}

#[test]
fn a_receipt_written_after_an_import_goes_after_a_torn_tail_is_cut() {
    let ana = TestHome::founded("Ana");
    let bo = joined_offline(&ana, "Bo");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let did = ana
        .ok(&["draft", "new", &rid, "Reply", "-m", "We ask for time."])
        .id();
    let bundle = ana.path().join("a.bundle").to_string_lossy().into_owned();
    ana.ok(&["bundle", "export", "-o", &bundle]);
    bo.ok(&["bundle", "import", &bundle]);
    // A crash on Bo's device leaves half a record at the end of the
    // discussion's log.
    let torn = frame::encode(&[7u8; 200])[..frame::HEADER_LEN + 10].to_vec();
    append(&doc_log(&bo, "response-"), &torn);
    // A new version of the draft arrives: Bo's device records a receipt
    // in that discussion.
    ana.ok(&["draft", "edit", &did, "-m", "We ask for six more months."]);
    ana.ok(&["bundle", "export", "-o", &bundle]);
    bo.ok(&["bundle", "import", &bundle]);
    let shown = bo.ok(&["--json", "show", &rid]);
    assert_eq!(
        shown.json()["drafts"][0]["body"].as_str(),
        Some("We ask for six more months.")
    );
    assert!(!shown.stderr.contains("torn"), "{}", shown.stderr);
    // The receipt is there: Bo counts as having seen the new version.
    let tally = bo.ok(&["--json", "tally", &rid]);
    let json = tally.json();
    let unseen: Vec<&str> = json["could_not_have_seen"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(!unseen.contains(&"Bo"), "{}", tally.stdout);
}
