//! Publishing a response and endorsing it.
//!
//! Publishing freezes the adopted draft's text, its SHA-256, the tally and a
//! dissent annex (every reservation, stand-aside and objection with its
//! reason, and the other drafts with their supporters) into a statement that
//! the facilitator signs with their member key. Members then endorse the
//! published text by signing its hash together with their stance. Both
//! signatures verify offline from an export (see `export`).

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT};
use serde::{Deserialize, Serialize};

use super::doc::{self, DocId};
use super::views::{
    DissentEntry, EndorsementView, MemberRef, MinorityDraft, OutcomeView, ResponseKind, Stance,
    TallyView,
};
use super::{ModelError, Result, Workspace};
use crate::ids::ObjectId;
use crate::trust::keys::signature_from_hex;
use crate::trust::statement::{sign_endorsement, sign_publication, verify_endorsement};
use crate::trust::{CommunityId, MemberId, SecretKey};

/// The format tag of a publication statement.
pub const STATEMENT_FORMAT: &str = "convene/publication/v1";

/// What the facilitator signs when publishing. Its JSON text is stored and
/// exported byte for byte, and the signature covers exactly those bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// Always [`STATEMENT_FORMAT`].
    pub format: String,
    /// The community.
    pub community: CommunityId,
    /// The response.
    pub response: String,
    /// development | request.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Summary.
    pub summary: String,
    /// Who asked (requests).
    pub requester: Option<String>,
    /// Their questions (requests).
    pub questions: Vec<String>,
    /// Reply-by date (requests).
    pub due: Option<String>,
    /// The adopted draft.
    pub draft: String,
    /// SHA-256 of the adopted text, hex.
    pub text_hash: String,
    /// The tally at publication.
    pub tally: TallyView,
    /// The dissent annex.
    pub dissent: Vec<DissentEntry>,
    /// The other drafts with their supporters.
    pub minority_drafts: Vec<MinorityDraft>,
    /// The publishing facilitator.
    pub published_by: MemberId,
    /// When, Unix seconds.
    pub published_at: i64,
}

/// SHA-256 of a text, hex.
pub fn text_hash(text: &str) -> String {
    hex::encode(crate::trust::sha256(text.as_bytes()))
}

impl Workspace {
    fn outcome_obj(&mut self, response: &ObjectId) -> Result<Option<(automerge::ObjId, MemberId)>> {
        let community = self.membership.community;
        let (doc, m) = self.discussion(response)?;
        // Under `outcome:<nonce>` (`doc::fresh_key`; `outcome` in earlier
        // builds): the first complete publication a facilitator signed. A
        // later one (or one made at the same time elsewhere) never replaces
        // the text members may already have endorsed, and an incomplete map
        // cannot freeze the response.
        Ok(doc::fresh_maps(doc, m, &ROOT, "outcome", |obj, author| {
            m.member(author).is_some_and(|x| x.role.can_facilitate())
                && complete_publication(doc, m, obj, author, &community)
        })
        .into_iter()
        .next())
    }

    /// Has a facilitator published this response?
    pub fn outcome_exists(&mut self, response: &ObjectId) -> Result<bool> {
        Ok(self.outcome_obj(response)?.is_some())
    }

    /// Publish a response with `draft` as the adopted text; facilitators only.
    /// `key` is the acting member's member key, which signs the statement.
    pub fn publish(
        &mut self,
        response: &ObjectId,
        draft: &ObjectId,
        key: &SecretKey,
    ) -> Result<OutcomeView> {
        let me = self.facilitator("publish")?.id;
        if MemberId(key.public()) != me {
            return Err(ModelError::NotAllowed(
                "the member key does not match the acting member".into(),
            ));
        }
        if self.outcome_exists(response)? {
            return Err(ModelError::Invalid(format!(
                "response {} is already published",
                response.short()
            )));
        }
        let drafts = self.draft_entries(response)?;
        let adopted = drafts.iter().find(|d| d.id == *draft).ok_or_else(|| {
            ModelError::Invalid(format!(
                "draft {} is not a draft of response {}",
                draft.short(),
                response.short()
            ))
        })?;
        let text = self.draft_text(draft)?;
        if text.trim().is_empty() {
            return Err(ModelError::Invalid(format!(
                "draft {} is empty",
                draft.short()
            )));
        }
        let view = self.show(response)?;
        let tally = self.tally(response)?;
        let stances = self.all_stances(response)?;
        // Every dissenting stance, on the adopted draft first, then on the others.
        let mut dissenting: Vec<_> = stances
            .iter()
            .filter(|s| s.view.stance.is_dissent())
            .collect();
        dissenting.sort_by_key(|s| s.draft != *draft);
        let title_of = |id: &ObjectId| {
            drafts
                .iter()
                .find(|d| d.id == *id)
                .map(|d| d.title.clone())
                .unwrap_or_default()
        };
        let dissent = dissenting
            .into_iter()
            .map(|s| DissentEntry {
                draft: s.draft.to_string(),
                draft_title: title_of(&s.draft),
                member: s.view.member,
                name: s.view.name.clone(),
                stance: s.view.stance.as_str().to_string(),
                reason: s.view.reason.clone().unwrap_or_default(),
                stale: s.view.stale,
                recorded_by: s.view.recorded_by.as_ref().map(|f| f.name.clone()),
            })
            .collect();
        let mut minority_drafts = Vec::new();
        for d in drafts.iter().filter(|d| d.id != *draft) {
            let supporters: Vec<String> = stances
                .iter()
                .filter(|s| s.draft == d.id && s.view.stance == Stance::Support)
                .map(|s| s.view.name.clone())
                .collect();
            if !supporters.is_empty() {
                minority_drafts.push(MinorityDraft {
                    id: d.id.to_string(),
                    title: d.title.clone(),
                    text: self.draft_text(&d.id)?,
                    supporters,
                });
            }
        }
        let now = self.now;
        let hash = text_hash(&text);
        let statement = Statement {
            format: STATEMENT_FORMAT.into(),
            community: self.membership.community,
            response: response.to_string(),
            kind: view.kind.as_str().into(),
            title: view.title,
            summary: view.summary,
            requester: view.requester,
            questions: view.questions,
            due: view.due,
            draft: adopted.id.to_string(),
            text_hash: hash.clone(),
            tally,
            dissent,
            minority_drafts,
            published_by: me,
            published_at: now,
        };
        let statement_text = serde_json::to_string(&statement)
            .map_err(|e| ModelError::Invalid(format!("cannot encode the statement: {e}")))?;
        let signature =
            sign_publication(key, &self.membership.community, statement_text.as_bytes());

        let doc = self.write(&DocId::Response(response.clone()))?;
        let o = doc.put_object(ROOT, doc::fresh_key("outcome"), ObjType::Map)?;
        doc.put(&o, "draft", draft.as_str())?;
        doc.put(&o, "text", text.as_str())?;
        doc.put(&o, "text_hash", hash.as_str())?;
        doc.put(&o, "statement", statement_text.as_str())?;
        doc.put(&o, "signature", hex::encode(signature))?;
        doc.put(&o, "at", now)?;
        doc::commit(
            doc,
            format!("publish response {response} with draft {draft}"),
            now,
        );
        self.outcome(response)?
            .ok_or_else(|| ModelError::Invalid("the outcome just written cannot be read".into()))
    }

    /// The published outcome with its valid endorsements, if published.
    pub fn outcome(&mut self, response: &ObjectId) -> Result<Option<OutcomeView>> {
        let Some((obj, publisher)) = self.outcome_obj(response)? else {
            return Ok(None);
        };
        let endorsements_map = self.discussion_map(response, "endorsements")?;
        // Only the fixed keys of earlier builds need the history (see
        // `endorsement_obj`), which rebuilds every change's metadata.
        let fixed_keys = doc::keys(self.discussion(response)?.0, &endorsements_map)
            .iter()
            .any(|key| !key.contains(':'));
        let history = match fixed_keys {
            true => self.history_of(&DocId::Response(response.clone()))?,
            false => Vec::new(),
        };
        let community = self.membership.community;
        let (doc, m) = self.discussion(response)?;
        let Some(Publication {
            draft,
            text,
            text_hash: hash,
            statement: statement_text,
            signature,
        }) = Publication::read(doc, m, &obj, &publisher)
        else {
            return Ok(None);
        };
        let Ok(statement) = serde_json::from_str::<Statement>(&statement_text) else {
            return Ok(None);
        };
        // Each member's endorsement objects, under `<member>:<nonce>` (or
        // `<member>`, written by earlier builds), oldest first.
        let mut candidates: Vec<(MemberId, u64, String, automerge::ObjId)> =
            doc::keys(doc, &endorsements_map)
                .into_iter()
                .filter_map(|key| {
                    let member = endorsement_key_member(&key)?;
                    let obj = endorsement_obj(doc, m, &history, &endorsements_map, &key, &member)?;
                    Some((member, doc::op_counter(&obj), key, obj))
                })
                .collect();
        candidates.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        let mut endorsements: Vec<EndorsementView> = Vec::new();
        for (member_id, _, _, e) in candidates {
            let Some(member) = m.member(&member_id) else {
                continue;
            };
            if endorsements.iter().any(|e| e.member == member_id) {
                continue;
            }
            let (Some(stance), Some(sig)) = (
                doc::authored_string(doc, m, &e, "stance", &member.id),
                doc::authored_string(doc, m, &e, "signature", &member.id),
            ) else {
                continue;
            };
            let valid = signature_from_hex(&sig).is_some_and(|s| {
                verify_endorsement(
                    &member.id,
                    &community,
                    response.as_str(),
                    &hash,
                    &stance,
                    &s,
                )
                .is_ok()
            });
            if valid {
                endorsements.push(EndorsementView {
                    member: member.id,
                    name: member.name.clone(),
                    stance,
                    signature: sig,
                });
            }
        }
        endorsements.sort_by(|a, b| (&a.name, a.member).cmp(&(&b.name, b.member)));
        Ok(Some(OutcomeView {
            draft,
            text,
            text_hash: hash,
            published_by: MemberRef {
                member: publisher,
                name: m.name_of(&publisher),
            },
            published_at: statement.published_at,
            tally: serde_json::to_value(&statement.tally).unwrap_or_default(),
            dissent: statement.dissent,
            minority_drafts: statement.minority_drafts,
            statement: statement_text,
            statement_signature: signature,
            endorsements,
        }))
    }

    /// Endorse a published response with the acting member's stance on the
    /// adopted draft, or with `explicit` (required when their stance is
    /// missing or was given on an earlier version). `key` is their member key.
    pub fn endorse(
        &mut self,
        response: &ObjectId,
        key: &SecretKey,
        explicit: Option<Stance>,
    ) -> Result<EndorsementView> {
        let me = self.writer()?.clone();
        if MemberId(key.public()) != me.id {
            return Err(ModelError::NotAllowed(
                "the member key does not match the acting member".into(),
            ));
        }
        let outcome = self.outcome(response)?.ok_or_else(|| {
            ModelError::Invalid(format!(
                "response {} is not published yet",
                response.short()
            ))
        })?;
        if outcome.endorsements.iter().any(|e| e.member == me.id) {
            return Err(ModelError::Invalid(format!(
                "{} already endorsed this response",
                me.name
            )));
        }
        let adopted = ObjectId::parse(&outcome.draft)
            .ok_or_else(|| ModelError::Invalid("the outcome names no draft".into()))?;
        let taken = self
            .stances_on(response, &adopted)?
            .into_iter()
            .find(|s| s.member == me.id);
        let stance = match (explicit, taken) {
            (Some(stance), _) => stance,
            (None, Some(s)) if !s.stale => s.stance,
            (None, Some(_)) => {
                return Err(ModelError::Invalid(format!(
                    "{}'s stance was given on an earlier version of the adopted text; endorse with an explicit stance",
                    me.name
                )));
            }
            (None, None) => {
                return Err(ModelError::Invalid(format!(
                    "{} took no stance on the adopted draft {}; endorse with an explicit stance",
                    me.name,
                    adopted.short()
                )));
            }
        };
        let community = self.membership.community;
        let signature = sign_endorsement(
            key,
            &community,
            response.as_str(),
            &outcome.text_hash,
            stance.as_str(),
        );
        let endorsements = self.discussion_map(response, "endorsements")?;
        let now = self.now;
        let doc = self.write(&DocId::Response(response.clone()))?;
        // A fresh key: it replaces nothing, so nobody can block it by
        // writing there first (see `stance.rs`).
        let key = doc::fresh_key(&me.id.to_hex());
        let e = doc.put_object(&endorsements, key, ObjType::Map)?;
        doc.put(&e, "stance", stance.as_str())?;
        doc.put(&e, "signature", hex::encode(signature))?;
        doc.put(&e, "at", now)?;
        doc::commit(
            doc,
            format!("endorse response {response} ({})", stance.as_str()),
            now,
        );
        Ok(EndorsementView {
            member: me.id,
            name: me.name,
            stance: stance.as_str().into(),
            signature: hex::encode(signature),
        })
    }
}

/// Does the outcome map `obj` hold every field `publish` writes, by
/// `publisher`, with a publication signature that verifies and a text that
/// matches its hash?
fn complete_publication(
    doc: &automerge::AutoCommit,
    m: &crate::trust::Membership,
    obj: &automerge::ObjId,
    publisher: &MemberId,
    community: &CommunityId,
) -> bool {
    let Some(p) = Publication::read(doc, m, obj, publisher) else {
        return false;
    };
    text_hash(&p.text) == p.text_hash
        && signature_from_hex(&p.signature).is_some_and(|s| {
            crate::trust::statement::verify_publication(
                publisher,
                community,
                p.statement.as_bytes(),
                &s,
            )
            .is_ok()
        })
}

/// The fields `publish` writes into an outcome map, each by the publisher.
struct Publication {
    draft: String,
    text: String,
    text_hash: String,
    statement: String,
    signature: String,
}

impl Publication {
    /// The outcome map `obj`'s fields written by `publisher`, if all are there.
    fn read(
        doc: &automerge::AutoCommit,
        m: &crate::trust::Membership,
        obj: &automerge::ObjId,
        publisher: &MemberId,
    ) -> Option<Self> {
        let get = |k: &str| doc::authored_string(doc, m, obj, k, publisher);
        Some(Publication {
            draft: get("draft")?,
            text: get("text")?,
            text_hash: get("text_hash")?,
            statement: get("statement")?,
            signature: get("signature")?,
        })
    }
}

/// `member`'s endorsement map under `key`. Under a fresh key nobody else can
/// have written (the ownership rule refuses it), so only the fixed key of
/// earlier builds needs the search through history.
fn endorsement_obj(
    doc: &automerge::AutoCommit,
    m: &crate::trust::Membership,
    history: &[(automerge::ChangeHash, MemberId)],
    map: &automerge::ObjId,
    key: &str,
    member: &MemberId,
) -> Option<automerge::ObjId> {
    if key.contains(':') {
        doc::owned_map(doc, m, map, key, member)
    } else {
        doc::owned_map_or_history(doc, m, history, map, key, member)
    }
}

/// The member whose endorsement key this is: `<member>:<nonce>`, or the
/// `<member>` of earlier builds, in the one spelling `endorse` writes.
fn endorsement_key_member(key: &str) -> Option<MemberId> {
    let (member_text, nonce) = match key.split_once(':') {
        Some((member, nonce)) => (member, Some(nonce)),
        None => (key, None),
    };
    let member = MemberId::from_hex(member_text)?;
    let spelled = member.to_hex() == member_text && nonce.is_none_or(doc::is_nonce);
    spelled.then_some(member)
}

/// The kind word of a statement, checked.
pub fn statement_kind(statement: &Statement) -> Option<ResponseKind> {
    ResponseKind::parse(&statement.kind)
}
