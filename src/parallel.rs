//! Independent work on every core, with results in order.
//!
//! What a peer sends is checked item by item (each change's verdict, each
//! whole document), and each check is a pure function of its item; so are
//! loading, applying to and folding distinct documents. Running the items
//! on one thread per core therefore gives exactly what one thread would, in
//! the same order, in a fraction of the time. Each thread takes the next
//! item left as soon as it is free, so one large document does not leave
//! the other cores idle behind it. The news of a sync is read the same way,
//! a response per item, each thread with its own workspaces.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The cores this process may use, asked once: the standard library reads
/// the cgroup files at every call (32 calls in a catch-up command).
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// `work` on each of `items`, in order. From `from` items on, and with more
/// than one core, this thread and one more per other core take the items
/// left one at a time. An item whose work fails (panics) gives `failed(i)`;
/// the others are not affected. A thread that cannot be started leaves the
/// items to the others.
pub fn in_order<T: Send, R: Send>(
    items: Vec<T>,
    from: usize,
    work: impl Fn(T) -> R + Sync,
    failed: impl Fn(usize) -> R,
) -> Vec<R> {
    in_order_with(items, from, || (), |_, item| work(item), failed)
}

/// [`in_order`] where each thread works with its own `S`, made by `state`
/// when the thread takes its first item and kept for the next ones (what
/// cannot be shared between threads, such as a workspace that caches what
/// it read). After a panic the thread makes a fresh one: the old one may be
/// half-way through a change.
pub fn in_order_with<T: Send, R: Send, S>(
    items: Vec<T>,
    from: usize,
    state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, T) -> R + Sync,
    failed: impl Fn(usize) -> R,
) -> Vec<R> {
    let threads = cores();
    if items.len() < from.max(2) || threads < 2 {
        let mut mine = None;
        return items
            .into_iter()
            .map(|item| work(mine.get_or_insert_with(&state), item))
            .collect();
    }
    let count = items.len();
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let run = || {
        let mut mine = None;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(i) else {
                break;
            };
            let item = match slot.lock() {
                Ok(mut slot) => slot.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            };
            let Some(item) = item else {
                continue;
            };
            let done = catch_unwind(AssertUnwindSafe(|| {
                work(mine.get_or_insert_with(&state), item)
            }));
            // An item whose work panics is left without a result.
            let Ok(result) = done else {
                mine = None;
                continue;
            };
            match results[i].lock() {
                Ok(mut r) => *r = Some(result),
                Err(poisoned) => *poisoned.into_inner() = Some(result),
            }
        }
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads.min(count))
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, run).ok())
            .collect();
        // This thread works too.
        run();
        for helper in helpers {
            let _ = helper.join();
        }
    });
    results
        .into_iter()
        .enumerate()
        .map(|(i, result)| {
            let result = match result.into_inner() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            result.unwrap_or_else(|| failed(i))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_order_as_one_thread_gives_them() {
        for n in [0, 1, 2, 3, 63, 64, 65, 1000] {
            let items: Vec<u64> = (0..n).collect();
            let expected: Vec<u64> = items.iter().map(|i| i * i + 1).collect();
            assert_eq!(in_order(items.clone(), 2, |i| i * i + 1, |_| 0), expected);
            assert_eq!(in_order(items, 64, |i| i * i + 1, |_| 0), expected);
        }
    }

    #[test]
    fn each_thread_keeps_its_own_state_from_one_item_to_the_next() {
        let threads = cores();
        let made = AtomicUsize::new(0);
        let items: Vec<u64> = (0..200).collect();
        // A state is (its number, items its thread took so far).
        let out = in_order_with(
            items,
            2,
            || (made.fetch_add(1, Ordering::Relaxed), 0_usize),
            |(state, taken), i| {
                *taken += 1;
                (i * 2, *state, *taken)
            },
            |_| (0, usize::MAX, 0),
        );
        let made = made.into_inner();
        assert!(
            (1..=threads).contains(&made),
            "{made} states, {threads} threads"
        );
        let values: Vec<u64> = out.iter().map(|(v, _, _)| *v).collect();
        assert_eq!(values, (0..200).map(|i| i * 2).collect::<Vec<_>>());
        // It was kept, and never shared.
        let counted = counted_in_turn(out.iter().map(|(_, state, taken)| (*state, *taken)));
        assert_eq!(counted, 200);
    }

    /// Check that each state (its number, items its thread took so far when
    /// it gave a result) counted 1, 2, 3... with no gap; returns how many
    /// results there were.
    fn counted_in_turn(results: impl Iterator<Item = (usize, usize)>) -> usize {
        let mut counts: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (state, taken) in results {
            counts.entry(state).or_default().push(taken);
        }
        let mut total = 0;
        for taken in counts.values_mut() {
            taken.sort();
            assert_eq!(*taken, (1..=taken.len()).collect::<Vec<_>>());
            total += taken.len();
        }
        total
    }

    #[test]
    fn a_thread_whose_work_failed_starts_again_with_a_fresh_state() {
        if cores() < 2 {
            // One core: the work runs here, and its panic is the caller's.
            return;
        }
        let made = AtomicUsize::new(0);
        let failing = [3, 10, 11, 40];
        // A state is (its number, items its thread took so far); a failing
        // item counts itself, then panics.
        let out = in_order_with(
            (0..60).collect::<Vec<u64>>(),
            2,
            || (made.fetch_add(1, Ordering::Relaxed), 0_usize),
            |(state, taken), i| {
                *taken += 1;
                if failing.contains(&i) {
                    panic!("{i}");
                }
                Some((*state, *taken))
            },
            |_| None,
        );
        for (i, result) in out.iter().enumerate() {
            assert_eq!(result.is_none(), failing.contains(&(i as u64)), "item {i}");
        }
        // A state kept after its item failed would count on from the failed
        // item, and leave a gap.
        let counted = counted_in_turn(out.iter().flatten().copied());
        assert_eq!(counted, 60 - failing.len());
        assert!(made.into_inner() > failing.len());
    }

    #[test]
    fn an_item_whose_work_fails_gives_its_failure_and_the_others_their_results() {
        if cores() < 2 {
            // One core: the work runs here, and its panic is the caller's.
            return;
        }
        let items: Vec<u64> = (0..100).collect();
        // More failures than threads: none stops the work on the others.
        let failing = [7, 8, 9, 50, 99];
        let out = in_order(
            items,
            2,
            |i| {
                if failing.contains(&i) {
                    panic!("{i}")
                } else {
                    i as i64
                }
            },
            |i| -(i as i64) - 1,
        );
        assert_eq!(out.len(), 100);
        for (i, v) in out.iter().enumerate() {
            let expected = if failing.contains(&(i as u64)) {
                -(i as i64) - 1
            } else {
                i as i64
            };
            assert_eq!(*v, expected, "item {i}");
        }
    }
}
