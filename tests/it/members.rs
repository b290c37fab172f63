//! Several members in one community (admitted by certificate, each writing
//! with their own device key): roles are enforced, authorship cannot be
//! forged, concurrent draft edits merge, and silent members are seen.

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use convene::model::response::NewResponse;
use convene::model::views::{ResponseKind, Stance};
use convene::model::{DocId, ModelError, Workspace};
use convene::store::{CommunityStore, Home, Identity};
use convene::trust::{CertBody, Certificate, Role, SecretKey};

const NOW: i64 = 1_795_946_400;

struct World {
    _dir: tempfile::TempDir,
    store: CommunityStore,
    ana: Identity,
    bo: Identity,
    chen: Identity,
    olga: Identity,
}

fn admit(store: &mut CommunityStore, by: &Identity, name: &str, role: Role) -> Identity {
    let key = SecretKey::generate();
    let member = Identity {
        name: name.into(),
        member_public: convene::trust::MemberId(key.public()),
        member: Some(key),
        device: std::sync::Arc::new(SecretKey::generate()),
    };
    let id = store.id();
    store
        .add_certificates(&[
            Certificate::issue(
                &id,
                &CertBody::Admit {
                    member: member.member_id(),
                    name: name.into(),
                    role,
                    by: by.member_id(),
                    at: NOW,
                },
                &[by.member_key().unwrap_or_else(|e| panic!("{e}"))],
            ),
            Certificate::issue(
                &id,
                &CertBody::Device {
                    member: member.member_id(),
                    device: member.device_id(),
                    label: "laptop".into(),
                    at: NOW,
                },
                &[
                    member.member_key().unwrap_or_else(|e| panic!("{e}")),
                    &member.device,
                ],
            ),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    member
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = Home::new(dir.path());
    let ana = home.init("Ana").unwrap_or_else(|e| panic!("{e}"));
    let mut store = home
        .create_community(&ana, "Net", "", NOW)
        .unwrap_or_else(|e| panic!("{e}"));
    let bo = admit(&mut store, &ana, "Bo", Role::Member);
    let chen = admit(&mut store, &ana, "Chen", Role::Member);
    let olga = admit(&mut store, &ana, "Olga", Role::Observer);
    World {
        _dir: dir,
        store,
        ana,
        bo,
        chen,
        olga,
    }
}

impl World {
    fn act<T>(
        &self,
        who: &Identity,
        work: impl FnOnce(&mut Workspace) -> convene::model::Result<T>,
    ) -> convene::model::Result<T> {
        let mut ws = self.store.workspace(who, NOW, true);
        let out = work(&mut ws)?;
        self.store
            .persist(&mut ws, who)
            .unwrap_or_else(|e| panic!("{e}"));
        Ok(out)
    }

    fn ok<T>(
        &self,
        who: &Identity,
        work: impl FnOnce(&mut Workspace) -> convene::model::Result<T>,
    ) -> T {
        self.act(who, work).unwrap_or_else(|e| panic!("{e}"))
    }

    fn reopen(&self) -> Workspace {
        // Reopen from disk, as a new process would.
        let store = Home::new(self._dir.path())
            .resolve(None)
            .unwrap_or_else(|e| panic!("{e}"));
        store.workspace(&self.ana, NOW, false)
    }
}

fn development() -> NewResponse {
    NewResponse {
        kind: ResponseKind::Development,
        title: "New management".into(),
        summary: "A new director arrives.".into(),
        source: Some("https://example.org/news".into()),
        requester: None,
        questions: vec![],
        due: None,
    }
}

#[test]
fn roles_are_enforced() {
    let w = world();
    assert!(matches!(
        w.act(&w.bo, |ws| ws.open_response(development())),
        Err(ModelError::NotAllowed(_))
    ));
    let rid = w.ok(&w.ana, |ws| ws.open_response(development()));
    let did = w.ok(&w.bo, |ws| ws.new_draft(&rid, "Draft", "Text."));
    let entry = w.ok(&w.bo, |ws| ws.resolve_draft(did.as_str()));
    assert!(matches!(
        w.act(&w.olga, |ws| ws.take_stance(&entry, Stance::Support, None)),
        Err(ModelError::NotAllowed(_))
    ));
    assert!(matches!(
        w.act(&w.olga, |ws| ws.start_thread(&rid, "t", None)),
        Err(ModelError::NotAllowed(_))
    ));
    assert!(matches!(
        w.act(&w.bo, |ws| ws.publish(
            &rid,
            &did,
            w.bo.member_key().unwrap_or_else(|e| panic!("{e}"))
        )),
        Err(ModelError::NotAllowed(_))
    ));
    // Chen may not decide on an amendment to Bo's draft; Bo (its creator) may.
    let aid = w.ok(&w.chen, |ws| {
        ws.propose_amendment(&entry, "Text", "Words", "Better.")
    });
    assert!(matches!(
        w.act(&w.chen, |ws| ws.decide_amendment(aid.as_str(), true)),
        Err(ModelError::NotAllowed(_))
    ));
    w.ok(&w.bo, |ws| ws.decide_amendment(aid.as_str(), true));
    assert_eq!(w.reopen().draft_text(&did).unwrap_or_default(), "Words.");
}

#[test]
fn not_yet_heard_and_share_of_voice() {
    let w = world();
    let rid = w.ok(&w.ana, |ws| ws.open_response(development()));
    let (tid, _) = w.ok(&w.bo, |ws| {
        ws.start_thread(&rid, "Views", Some("one two three"))
    });
    w.ok(&w.ana, |ws| ws.post(&rid, &tid, "four five", None));
    let tally = w.reopen().tally(&rid).unwrap_or_else(|e| panic!("{e}"));
    let unheard: Vec<&str> = tally
        .not_yet_heard
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(unheard, vec!["Chen"], "observers are not expected to speak");
    assert_eq!(tally.participation[0].name, "Bo");
    assert_eq!(tally.participation[0].words, 3);
    assert_eq!(tally.participation.len(), 4);
}

#[test]
fn a_stance_written_under_another_members_key_is_ignored() {
    let w = world();
    let rid = w.ok(&w.ana, |ws| ws.open_response(development()));
    let did = w.ok(&w.bo, |ws| ws.new_draft(&rid, "Draft", "Text."));
    let entry = w.ok(&w.bo, |ws| ws.resolve_draft(did.as_str()));
    w.ok(&w.bo, |ws| {
        ws.take_stance(&entry, Stance::Object, Some("No."))
    });
    // Chen, a member, writes straight into the document a "support" for Bo.
    let bo_key = format!("{}:{}", did, w.bo.member_id());
    w.ok(&w.chen, |ws| {
        let doc = ws.write(&DocId::Response(rid.clone()))?;
        let stances = match doc.get(automerge::ROOT, "stances")? {
            Some((_, id)) => id,
            None => panic!("no stances map"),
        };
        let forged = doc.put_object(&stances, bo_key.as_str(), automerge::ObjType::Map)?;
        doc.put(&forged, "stance", "support")?;
        doc.commit();
        Ok(())
    });
    let stances = w
        .reopen()
        .stances_on(&rid, &did)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stances.len(), 1);
    assert_eq!(stances[0].name, "Bo");
    assert_eq!(stances[0].stance, Stance::Object, "Bo's own stance stands");
}

#[test]
fn concurrent_edits_of_a_draft_merge() {
    let w = world();
    let rid = w.ok(&w.ana, |ws| ws.open_response(development()));
    let did = w.ok(&w.bo, |ws| {
        ws.new_draft(
            &rid,
            "Draft",
            "The board should consult staff. Decisions follow.",
        )
    });
    // Bo and Chen both load the same version and edit different sentences.
    let mut bo_ws = w.store.workspace(&w.bo, NOW, true);
    let mut chen_ws = w.store.workspace(&w.chen, NOW, true);
    let entry = bo_ws
        .resolve_draft(did.as_str())
        .unwrap_or_else(|e| panic!("{e}"));
    chen_ws
        .resolve_draft(did.as_str())
        .unwrap_or_else(|e| panic!("{e}"));
    bo_ws
        .edit_draft(
            &entry,
            "The board must consult all staff. Decisions follow.",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    chen_ws
        .edit_draft(
            &entry,
            "The board should consult staff. Decisions follow within a month.",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    w.store
        .persist(&mut bo_ws, &w.bo)
        .unwrap_or_else(|e| panic!("{e}"));
    w.store
        .persist(&mut chen_ws, &w.chen)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut merged = w.reopen();
    assert_eq!(
        merged.draft_text(&did).unwrap_or_default(),
        "The board must consult all staff. Decisions follow within a month."
    );
    let authors: Vec<String> = merged
        .draft_authors(&did)
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(authors.len(), 2);
    assert!(authors.contains(&"Bo".to_string()) && authors.contains(&"Chen".to_string()));
}

#[test]
fn publication_keeps_every_dissent_and_minority_draft() {
    let w = world();
    let rid = w.ok(&w.ana, |ws| ws.open_response(development()));
    let a = w.ok(&w.bo, |ws| ws.new_draft(&rid, "A", "Text A."));
    let b = w.ok(&w.chen, |ws| ws.new_draft(&rid, "B", "Text B."));
    let ea = w.ok(&w.ana, |ws| ws.resolve_draft(a.as_str()));
    let eb = w.ok(&w.ana, |ws| ws.resolve_draft(b.as_str()));
    w.ok(&w.ana, |ws| ws.take_stance(&ea, Stance::Support, None));
    w.ok(&w.bo, |ws| {
        ws.take_stance(&ea, Stance::StandAside, Some("Not my fight."))
    });
    w.ok(&w.chen, |ws| {
        ws.take_stance(&ea, Stance::Object, Some("Too vague."))
    });
    w.ok(&w.chen, |ws| ws.take_stance(&eb, Stance::Support, None));
    assert!(matches!(
        w.act(&w.chen, |ws| ws.take_stance(&ea, Stance::Object, None)),
        Err(ModelError::Invalid(_))
    ));
    let outcome = w.ok(&w.ana, |ws| {
        ws.publish(
            &rid,
            &a,
            w.ana.member_key().unwrap_or_else(|e| panic!("{e}")),
        )
    });
    let dissent: Vec<(&str, &str)> = outcome
        .dissent
        .iter()
        .map(|d| (d.name.as_str(), d.stance.as_str()))
        .collect();
    assert_eq!(dissent, vec![("Bo", "stand-aside"), ("Chen", "object")]);
    assert_eq!(outcome.minority_drafts.len(), 1);
    assert_eq!(
        outcome.minority_drafts[0].supporters,
        vec!["Chen".to_string()]
    );
    for who in [&w.ana, &w.bo, &w.chen] {
        w.ok(who, |ws| {
            ws.endorse(
                &rid,
                who.member_key().unwrap_or_else(|e| panic!("{e}")),
                None,
            )
        });
    }
    // Someone else's member key cannot endorse for them.
    assert!(matches!(
        w.act(&w.bo, |ws| ws.endorse(
            &rid,
            w.chen.member_key().unwrap_or_else(|e| panic!("{e}")),
            None
        )),
        Err(ModelError::NotAllowed(_))
    ));
    let mut ws = w.reopen();
    let exported = ws
        .export(&rid, &w.store.certificate_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exported.endorsements.len(), 3);
    let report = convene::model::export::verify_export(
        &serde_json::to_string(&exported).unwrap_or_default(),
    );
    assert!(report.ok, "{:?}", report.checks);

    // Dropping a dissent from the export breaks the publisher's signature.
    let mut without = exported.clone();
    without.dissent.retain(|d| d.name != "Chen");
    let report =
        convene::model::export::verify_export(&serde_json::to_string(&without).unwrap_or_default());
    assert!(!report.ok);
}

#[test]
fn a_long_log_is_compacted_and_nothing_is_lost() {
    let w = world();
    let rid = w.ok(&w.ana, |ws| ws.open_response(development()));
    let (tid, _) = w.ok(&w.bo, |ws| ws.start_thread(&rid, "Long", None));
    let body = "word ".repeat(2_000);
    for i in 0..40 {
        w.ok(&w.bo, |ws| {
            ws.post(&rid, &tid, &format!("{i} {body}"), None)
        });
    }
    let docs = w
        ._dir
        .path()
        .join("communities")
        .join(w.store.id().to_hex())
        .join("docs");
    let log = docs.join(format!("response-{rid}.log"));
    let snapshot = docs.join(format!("response-{rid}.snapshot"));
    assert!(
        snapshot.exists(),
        "the log passed 256 KiB and was compacted"
    );
    let log_size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(u64::MAX);
    assert!(
        log_size < convene::store::community::COMPACT_AT_BYTES,
        "{log_size}"
    );
    let threads = w.reopen().threads(&rid).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(threads[0].comments.len(), 40);
    assert!(threads[0].comments.iter().all(|c| c.author_name == "Bo"));
}
