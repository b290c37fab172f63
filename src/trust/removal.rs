//! Which of a removed member's later changes stay after all.
//!
//! A removal keeps the changes its Revoke lists and refuses the member's
//! others. But news of a removal travels as slowly as everything else: a
//! device that has not heard of it yet accepts the member's later change, and
//! its own member may answer it. That answer depends on the refused change.
//! Refusing both would lose an honest member's words; refusing only the first
//! would leave the answer unappliable everywhere, so peers would never agree.
//!
//! The rule: a removed member's later change stays if, and only if, a change
//! that stays builds on it (is among its descendants). Everything else of
//! theirs is dropped, also by a device that applied it before it learnt of
//! the removal (on its next load). Every device computes the same set from the
//! same changes, so all converge. The removed member cannot use this to come
//! back: their devices are refused on the wire, and only a change by someone
//! who stays can carry theirs in, which a device that knows of the removal
//! never makes.

use std::collections::{BTreeMap, BTreeSet};

use super::signed_change::Standing;

/// A change hash.
pub type Hash = [u8; 32];

/// The changes of one document, gathered with their standing, to find the
/// late ones to drop.
#[derive(Debug, Default)]
pub struct LateChanges {
    /// Dependencies of every change that stays on its own.
    kept_deps: Vec<Hash>,
    /// Removed members' later changes: hash → dependencies.
    late: BTreeMap<Hash, Vec<Hash>>,
}

impl LateChanges {
    /// Note one verified change.
    pub fn add(&mut self, hash: Hash, deps: impl IntoIterator<Item = Hash>, standing: Standing) {
        match standing {
            Standing::Current => self.kept_deps.extend(deps),
            Standing::AfterRemoval => {
                self.late.insert(hash, deps.into_iter().collect());
            }
        }
    }

    /// Note one verified change, with its hash and dependencies.
    pub fn add_change(&mut self, change: &automerge::Change, standing: Standing) {
        let deps = change.deps().iter().map(|d| d.0);
        self.add(change.hash().0, deps, standing);
    }

    /// The late changes that no change that stays builds on.
    pub fn dropped(&self) -> BTreeSet<Hash> {
        let kept = reachable(&self.late, &self.kept_deps);
        self.late
            .keys()
            .filter(|h| !kept.contains(*h))
            .copied()
            .collect()
    }
}

/// Of the `late` changes, those that none of the `kept` changes builds on.
pub fn unanswered<'a>(
    late: impl IntoIterator<Item = &'a automerge::Change>,
    kept: impl IntoIterator<Item = &'a automerge::Change>,
) -> BTreeSet<Hash> {
    let mut changes = LateChanges::default();
    for change in late {
        changes.add_change(change, Standing::AfterRemoval);
    }
    for change in kept {
        changes.add_change(change, Standing::Current);
    }
    changes.dropped()
}

/// The changes of `graph` (hash → its dependencies) reachable from `from`
/// through `graph`'s changes, `from`'s own included. With the late changes
/// as the graph and the dependencies of every change that stays on its own
/// as `from`: the late changes that stay. With a document's changes and
/// its heads: the history up to those heads.
pub fn reachable<'a>(
    graph: &BTreeMap<Hash, Vec<Hash>>,
    from: impl IntoIterator<Item = &'a Hash>,
) -> BTreeSet<Hash> {
    let mut found = BTreeSet::new();
    let mut todo: Vec<Hash> = from.into_iter().copied().collect();
    while let Some(hash) = todo.pop() {
        if let Some(deps) = graph.get(&hash)
            && found.insert(hash)
        {
            todo.extend(deps.iter().copied());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn h(n: u8) -> Hash {
        [n; 32]
    }

    #[test]
    fn a_late_change_stays_only_under_a_change_that_stays() {
        // 1 ← 2 ← 3 are late; 4 (stays) builds on 2; 5 is late and alone.
        let late: BTreeMap<Hash, Vec<Hash>> = [
            (h(1), vec![h(0)]),
            (h(2), vec![h(1)]),
            (h(3), vec![h(2)]),
            (h(5), vec![h(0)]),
        ]
        .into();
        let kept = reachable(&late, &[h(2), h(0)]);
        assert_eq!(kept, [h(1), h(2)].into());
        assert!(reachable(&late, &[h(0)]).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Over random graphs: what stays is late, every dependency of what
        /// stays that is late stays too, and each kept change is reachable.
        #[test]
        fn what_stays_is_closed_under_dependencies(
            edges in proptest::collection::vec((0u8..40, 0u8..40), 0..80),
            late_ids in proptest::collection::btree_set(0u8..40, 0..30),
            roots in proptest::collection::vec(0u8..40, 0..6),
        ) {
            // Dependencies point to smaller numbers: a causal graph.
            let mut deps: BTreeMap<Hash, Vec<Hash>> = BTreeMap::new();
            for (a, b) in edges {
                if a > b {
                    deps.entry(h(a)).or_default().push(h(b));
                }
            }
            let late: BTreeMap<Hash, Vec<Hash>> = late_ids
                .iter()
                .map(|n| (h(*n), deps.get(&h(*n)).cloned().unwrap_or_default()))
                .collect();
            let roots: Vec<Hash> = roots.into_iter().map(h).collect();
            let kept = reachable(&late, &roots);
            for k in &kept {
                prop_assert!(late.contains_key(k));
                for d in &late[k] {
                    prop_assert!(!late.contains_key(d) || kept.contains(d));
                }
            }
            for r in &roots {
                prop_assert!(!late.contains_key(r) || kept.contains(r));
            }
            // Nothing more: every kept change is a root or a dependency of one kept.
            for k in &kept {
                let reached = roots.contains(k) || kept.iter().any(|o| late[o].contains(k));
                prop_assert!(reached);
            }
        }
    }
}
