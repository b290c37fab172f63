//! Independent work on every core, with results in order.
//!
//! What a peer sends is checked item by item (each change's verdict, each
//! whole document), and each check is a pure function of its item. Running
//! consecutive shares on one thread per core therefore gives exactly what
//! one thread would, in the same order, in a fraction of the time.

use std::sync::Mutex;

/// `work` on each of `items`, in order. From `from` items on, and with more
/// than one core, each core's thread takes a consecutive share. A thread
/// that cannot be started leaves its share to this one; a thread that fails
/// gives `failed(i)` for each item `i` of its share.
pub fn in_order<T: Send, R: Send>(
    items: Vec<T>,
    from: usize,
    work: impl Fn(T) -> R + Sync,
    failed: impl Fn(usize) -> R,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if items.len() < from.max(2) || threads < 2 {
        return items.into_iter().map(work).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    // (index of its first item, its length, the share until a thread takes it)
    let mut shares: Vec<(usize, usize, Mutex<Vec<T>>)> = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let share: Vec<T> = items.by_ref().take(per_thread).collect();
        let start = shares.last().map_or(0, |(start, len, _)| start + len);
        shares.push((start, share.len(), Mutex::new(share)));
    }
    let take = |share: &Mutex<Vec<T>>| match share.lock() {
        Ok(mut share) => std::mem::take(&mut *share),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    let work = &work;
    std::thread::scope(|scope| {
        let running: Vec<_> = shares
            .iter()
            .map(|(start, len, share)| {
                let run = move || take(share).into_iter().map(work).collect::<Vec<R>>();
                let started = std::thread::Builder::new().spawn_scoped(scope, run);
                (*start, *len, share, started)
            })
            .collect();
        running
            .into_iter()
            .flat_map(|(start, len, share, started)| match started {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|_| (start..start + len).map(&failed).collect()),
                Err(_) => take(share).into_iter().map(work).collect(),
            })
            .collect()
    })
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
    fn a_failing_thread_gives_the_failure_for_each_item_of_its_share() {
        if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
            // One core: the work runs here, and its panic is the caller's.
            return;
        }
        let items: Vec<u64> = (0..100).collect();
        let out = in_order(
            items,
            2,
            |i| if i == 7 { panic!("seven") } else { i as i64 },
            |i| -(i as i64) - 1,
        );
        assert_eq!(out.len(), 100);
        // Item 7's share failed as a whole; the others are what work gave.
        assert_eq!(out[7], -8);
        assert_eq!(out[0], -1);
        assert!(out.iter().enumerate().skip(60).all(|(i, v)| *v == i as i64));
    }
}
