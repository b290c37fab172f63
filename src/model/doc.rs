//! Document ids and small typed helpers over Automerge's read and write API.
//!
//! Every helper that reads an authored value takes the expected author, so a
//! value written by anyone else is ignored (see the module docs of `model`).

use automerge::transaction::Transactable;
use automerge::{
    AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, ScalarValueRef, Value, ValueRef,
};

use crate::ids::ObjectId;
use crate::trust::signed_change::device_of_actor;
use crate::trust::{MemberId, Membership};

/// Which document of a community.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DocId {
    /// The community document: settings and the index of responses.
    Community,
    /// The discussion document of one response.
    Response(ObjectId),
    /// The document of one draft.
    Draft(ObjectId),
}

impl DocId {
    /// The name used for files and logs: `community`, `response-<id>`, `draft-<id>`.
    pub fn name(&self) -> String {
        match self {
            DocId::Community => "community".to_string(),
            DocId::Response(id) => format!("response-{id}"),
            DocId::Draft(id) => format!("draft-{id}"),
        }
    }

    /// Parse [`DocId::name`].
    pub fn parse(name: &str) -> Option<Self> {
        if name == "community" {
            return Some(DocId::Community);
        }
        if let Some(id) = name.strip_prefix("response-") {
            return ObjectId::parse(id).map(DocId::Response);
        }
        name.strip_prefix("draft-")
            .and_then(ObjectId::parse)
            .map(DocId::Draft)
    }
}

/// The member who made the operation `id` (the owner of its actor's device).
pub fn author_of(membership: &Membership, id: &ObjId) -> Option<MemberId> {
    match id {
        ObjId::Root => None,
        ObjId::Id(_, actor, _) => {
            let device = device_of_actor(actor.to_bytes())?;
            membership.owner_of(&device).map(|m| m.id)
        }
    }
}

/// A fresh key for a value that must never replace anything: `<base>:<nonce>`.
///
/// A value another member will need to write (a publication, a decision, an
/// endorsement, a stance) cannot sit under a fixed key: a modified client
/// could write there first, the rightful write would then replace that
/// value, and every peer refuses a change that replaces another member's
/// value (`trust::ownership`). Nobody can guess a fresh key in advance.
pub fn fresh_key(base: &str) -> String {
    format!("{base}:{}", ObjectId::random())
}

/// Is `nonce` the nonce of a [`fresh_key`]: 16 lowercase hex digits?
pub fn is_nonce(nonce: &str) -> bool {
    nonce.len() == ObjectId::LEN && ObjectId::parse(nonce).is_some()
}

/// Is `key` exactly `base` or a [`fresh_key`] of it?
pub fn is_fresh_key_of(key: &str, base: &str) -> bool {
    key == base
        || key
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(is_nonce)
}

/// The maps under `base` or a [`fresh_key`] of it in `obj` whose creator
/// `accept`s (given the map and its author), in the order of the operations
/// that made them (Automerge's counter, then actor): the last is the value
/// Automerge itself would show if they had all been written under one key.
pub fn fresh_maps(
    doc: &AutoCommit,
    membership: &Membership,
    obj: &ObjId,
    base: &str,
    accept: impl Fn(&ObjId, &MemberId) -> bool,
) -> Vec<(ObjId, MemberId)> {
    let mut found: Vec<(ObjId, MemberId)> = keys(doc, obj)
        .into_iter()
        .filter(|key| is_fresh_key_of(key, base))
        .flat_map(|key| doc.get_all(obj, key.as_str()).unwrap_or_default())
        .filter_map(|(value, id)| {
            if !matches!(value, Value::Object(ObjType::Map)) {
                return None;
            }
            let author = author_of(membership, &id)?;
            accept(&id, &author).then_some((id, author))
        })
        .collect();
    found.sort_by_key(|(id, _)| op_order(id));
    found
}

/// The order Automerge gives operations: counter, then actor.
fn op_order(id: &ObjId) -> (u64, Vec<u8>) {
    match id {
        ObjId::Root => (0, Vec::new()),
        ObjId::Id(counter, actor, _) => (*counter, actor.to_bytes().to_vec()),
    }
}

/// The Lamport counter of the operation that made `id`: with the time stamp
/// it orders objects made within the same second in causal order.
pub fn op_counter(id: &ObjId) -> u64 {
    match id {
        ObjId::Root => 0,
        ObjId::Id(counter, _, _) => *counter,
    }
}

/// A child map object, if present.
pub fn map(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

/// The `body` text object at the root of a draft document.
pub fn map_text(doc: &AutoCommit) -> Option<ObjId> {
    match doc.get(automerge::ROOT, "body") {
        Ok(Some((Value::Object(ObjType::Text), id))) => Some(id),
        _ => None,
    }
}

/// The keys of a map object.
pub fn keys(doc: &AutoCommit, obj: &ObjId) -> Vec<String> {
    doc.keys(obj).collect()
}

/// A string value, whoever wrote it.
pub fn string(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Str(t) => Some(t.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The latest scalar under `key` written by `author` that `pick` accepts
/// (values anyone else wrote are ignored).
fn authored_scalar<T>(
    doc: &AutoCommit,
    membership: &Membership,
    obj: &ObjId,
    key: &str,
    author: &MemberId,
    pick: impl Fn(&ScalarValue) -> Option<T>,
) -> Option<T> {
    let values = doc.get_all(obj, key).ok()?;
    values
        .into_iter()
        .rev()
        .find_map(|(value, id)| match value {
            Value::Scalar(s) if author_of(membership, &id).as_ref() == Some(author) => {
                pick(s.as_ref())
            }
            _ => None,
        })
}

/// A string value written by `author`.
pub fn authored_string(
    doc: &AutoCommit,
    membership: &Membership,
    obj: &ObjId,
    key: &str,
    author: &MemberId,
) -> Option<String> {
    authored_scalar(doc, membership, obj, key, author, |s| match s {
        ScalarValue::Str(t) => Some(t.to_string()),
        _ => None,
    })
}

/// An integer value written by `author`.
pub fn authored_int(
    doc: &AutoCommit,
    membership: &Membership,
    obj: &ObjId,
    key: &str,
    author: &MemberId,
) -> Option<i64> {
    authored_scalar(doc, membership, obj, key, author, |s| match s {
        ScalarValue::Int(i) => Some(*i),
        _ => None,
    })
}

/// A list of strings written by `author`.
pub fn authored_strings(
    doc: &AutoCommit,
    membership: &Membership,
    obj: &ObjId,
    key: &str,
    author: &MemberId,
) -> Vec<String> {
    let Ok(values) = doc.get_all(obj, key) else {
        return Vec::new();
    };
    let Some(list) = values.into_iter().rev().find_map(|(value, id)| {
        (matches!(value, Value::Object(ObjType::List))
            && author_of(membership, &id).as_ref() == Some(author))
        .then_some(id)
    }) else {
        return Vec::new();
    };
    // Only the elements the author inserted: nobody can add to someone's list.
    (0..doc.length(&list))
        .filter_map(|i| match doc.get(&list, i) {
            Ok(Some((Value::Scalar(s), id)))
                if author_of(membership, &id).as_ref() == Some(author) =>
            {
                match s.as_ref() {
                    ScalarValue::Str(t) => Some(t.to_string()),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

/// Maps inside `obj` whose creator is a known member, as (key, object, author).
pub fn authored_maps(
    doc: &AutoCommit,
    membership: &Membership,
    obj: &ObjId,
) -> Vec<(String, ObjId, MemberId)> {
    // One pass over the map (what `map` reads key by key, the value that
    // wins each key), five times faster than a lookup per key.
    doc.map_range(obj, ..)
        .filter_map(|item| {
            if !matches!(item.value, ValueRef::Object(ObjType::Map)) {
                return None;
            }
            let id = item.id();
            let author = author_of(membership, &id)?;
            Some((item.key.into_owned(), id, author))
        })
        .collect()
}

/// The string and integer fields one member wrote in a map, read in one
/// pass over the map ([`ReadDoc::map_range`]): reading several fields key
/// by key seeks the document once per key, five times slower for a
/// comment. Reads exactly what [`authored_string`] and [`authored_int`]
/// read: a field whose one value someone else wrote is absent, and a field
/// with conflicting values is read the slow way, among all of them.
pub struct AuthoredFields<'a> {
    doc: &'a AutoCommit,
    membership: &'a Membership,
    obj: &'a ObjId,
    author: MemberId,
    fields: Vec<(String, Field)>,
}

/// One field of [`AuthoredFields`].
enum Field {
    Str(String),
    Int(i64),
    /// Several values: which one the author wrote is read when asked.
    Conflict,
}

impl<'a> AuthoredFields<'a> {
    /// The fields `author` wrote in map `obj`.
    pub fn read(
        doc: &'a AutoCommit,
        membership: &'a Membership,
        obj: &'a ObjId,
        author: &MemberId,
    ) -> Self {
        let mut fields = Vec::new();
        for item in doc.map_range(obj, ..) {
            let field = if item.conflict {
                Field::Conflict
            } else {
                let ValueRef::Scalar(value) = &item.value else {
                    continue;
                };
                if author_of(membership, &item.id()).as_ref() != Some(author) {
                    continue;
                }
                match value {
                    ScalarValueRef::Str(text) => Field::Str(text.to_string()),
                    ScalarValueRef::Int(i) => Field::Int(*i),
                    _ => continue,
                }
            };
            fields.push((item.key.into_owned(), field));
        }
        AuthoredFields {
            doc,
            membership,
            obj,
            author: *author,
            fields,
        }
    }

    fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, f)| f)
    }

    /// [`authored_string`] of `key`.
    pub fn string(&self, key: &str) -> Option<String> {
        match self.field(key)? {
            Field::Str(text) => Some(text.clone()),
            Field::Int(_) => None,
            Field::Conflict => {
                authored_string(self.doc, self.membership, self.obj, key, &self.author)
            }
        }
    }

    /// [`authored_int`] of `key`.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.field(key)? {
            Field::Int(i) => Some(*i),
            Field::Str(_) => None,
            Field::Conflict => authored_int(self.doc, self.membership, self.obj, key, &self.author),
        }
    }
}

/// The map under `key` created by `owner`, even when someone else wrote a
/// conflicting value there (the latest of the owner's, by operation order).
pub fn owned_map(
    doc: &AutoCommit,
    membership: &Membership,
    obj: &ObjId,
    key: &str,
    owner: &MemberId,
) -> Option<ObjId> {
    let values = doc.get_all(obj, key).ok()?;
    values.into_iter().rev().find_map(|(value, id)| {
        (matches!(value, Value::Object(ObjType::Map))
            && author_of(membership, &id).as_ref() == Some(owner))
        .then_some(id)
    })
}

/// Like [`owned_map`], but when someone else has overwritten the owner's
/// map, find the owner's latest one in the document's history (`history`:
/// every change with its author, oldest first). An overwritten object keeps
/// its fields, so the owner's words survive another member's overwrite.
pub fn owned_map_or_history(
    doc: &AutoCommit,
    membership: &Membership,
    history: &[(automerge::ChangeHash, MemberId)],
    obj: &ObjId,
    key: &str,
    owner: &MemberId,
) -> Option<ObjId> {
    if let Some(found) = owned_map(doc, membership, obj, key, owner) {
        return Some(found);
    }
    history
        .iter()
        .rev()
        .filter(|(_, author)| author == owner)
        .find_map(|(hash, _)| {
            doc.get_all_at(obj, key, &[*hash])
                .ok()?
                .into_iter()
                .rev()
                .find_map(|(value, id)| {
                    (matches!(value, Value::Object(ObjType::Map))
                        && author_of(membership, &id).as_ref() == Some(owner))
                    .then_some(id)
                })
        })
}

/// Put a list of strings under `key`.
pub fn put_strings(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    items: &[String],
) -> Result<(), automerge::AutomergeError> {
    let list = doc.put_object(obj, key, ObjType::List)?;
    for (i, item) in items.iter().enumerate() {
        doc.insert(&list, i, item.as_str())?;
    }
    Ok(())
}

/// Get the map under `key` in `obj`, creating it if absent.
pub fn ensure_map(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
) -> Result<ObjId, automerge::AutomergeError> {
    match map(doc, obj, key) {
        Some(id) => Ok(id),
        None => doc.put_object(obj, key, ObjType::Map),
    }
}

/// Commit pending operations with a message and time.
pub fn commit(doc: &mut AutoCommit, message: String, at: i64) {
    doc.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message(message)
            .with_time(at),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_names_round_trip() {
        let id = ObjectId::random();
        for doc in [
            DocId::Community,
            DocId::Response(id.clone()),
            DocId::Draft(id),
        ] {
            assert_eq!(DocId::parse(&doc.name()), Some(doc.clone()));
        }
        assert_eq!(DocId::parse("response-XYZ"), None);
        assert_eq!(DocId::parse("other"), None);
    }
}
