//! A count striped over cache lines: threads that count at once each change a line of
//! their own, and a reader sums the lines.
//!
//! A table's count of keys (see [`super::table`]) is changed by every insert. As one
//! atomic word, it made every insert of two threads writing new keys into one table take
//! the word's line from the other core: with two pinned threads inserting a million new
//! keys into a drained map, half of all samples sat on its `lock xadd` (PERFORMANCE.md, "The
//! table's striped count"). Striped, a thread's insert changes its own stripe, and the
//! growth trigger reads every stripe only once per [`Striped::past`]'s interval.
//!
//! By hand rather than from a crate: the stripes are picked by the crate's own thread
//! numbers (which loom models pass explicitly), the owner of a store changes its stripe with
//! plain stores, and the growth check reads the sum on an interval of its own; the sharded
//! counters on crates.io pick stripes by their own thread ids and only add.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering};

/// Stripes per count: a power of two. A pair under loom, so that its models cover two
/// threads on one stripe and on two.
const STRIPES: usize = if cfg!(loom) { 2 } else { 16 };

/// Growth checks per stripe as a count fills towards its limit: [`Striped::past`] sums the
/// stripes when a stripe's value is a multiple of `limit / (STRIPES * CHECKS)`, so the
/// count passes its limit by at most a `CHECKS`th of it before some thread sees it.
const CHECKS: u64 = 16;

/// A count, wrapping: each stripe wraps on its own (a key inserted by one thread and deleted
/// by another takes one stripe up and another down), and their sum is the count.
pub(crate) struct Striped {
    stripes: [CachePadded<AtomicU64>; STRIPES],
}

impl Striped {
    /// The stripe that the owner of a store counts its inserts on (with
    /// [`Striped::add_owned`] in an owner write, with [`Striped::add`] on the general
    /// path), and migrations: while a store is owned, it holds every key counted but the
    /// owner's own deletes, which count on its thread's stripe.
    pub(crate) const OWNER: usize = 0;

    /// A count of 0.
    pub(crate) fn new() -> Self {
        Striped {
            stripes: core::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
        }
    }

    /// The stripe of thread number `thread`.
    #[inline(always)]
    fn stripe(&self, thread: usize) -> &AtomicU64 {
        &self.stripes[thread & (STRIPES - 1)]
    }

    /// Adds `n` on the stripe of thread number (or stripe) `thread`; returns the stripe's new
    /// value.
    #[inline(always)]
    pub(crate) fn add(&self, thread: usize, n: u64) -> u64 {
        // Relaxed: a count; what orders it with other changes of the same key (the slot
        // lock) is the caller's.
        self.stripe(thread)
            .fetch_add(n, Ordering::Relaxed)
            .wrapping_add(n)
    }

    /// [`Striped::add`] on the stripe [`Striped::OWNER`], with a plain load and store: for
    /// the owner of a store, in an owner write, while no other thread changes this count.
    #[inline(always)]
    pub(crate) fn add_owned(&self, n: u64) -> u64 {
        let stripe = self.stripe(Self::OWNER);
        // Relaxed (both): a count, changed by this thread alone while it runs (the caller's
        // contract); whoever changes it next is ordered after by the caller's protocol.
        let value = stripe.load(Ordering::Relaxed).wrapping_add(n);
        stripe.store(value, Ordering::Relaxed);
        value
    }

    /// Takes `n` off the stripe of thread `thread`.
    #[inline]
    pub(crate) fn sub(&self, thread: usize, n: u64) {
        // Relaxed: as in `add`.
        self.stripe(thread).fetch_sub(n, Ordering::Relaxed);
    }

    /// The count: exact when no change is in flight. Out of line: the callers that sum
    /// are off the write's common path.
    #[inline(never)]
    pub(crate) fn sum(&self) -> u64 {
        self.stripes
            .iter()
            // Relaxed: a count; the sum promises nothing about changes in flight.
            .fold(0u64, |sum, stripe| {
                sum.wrapping_add(stripe.load(Ordering::Relaxed))
            })
    }

    /// Whether the count is past `limit`, asked by a thread whose stripe just became
    /// `mine`: the stripes are summed only when `mine` is a multiple of the interval
    /// (every time for a limit under `STRIPES * CHECKS`), so the answer may come late by up
    /// to a [`CHECKS`]th of `limit`, never early.
    #[inline(always)]
    pub(crate) fn past(&self, mine: u64, limit: u64) -> bool {
        let interval = limit / (STRIPES as u64 * CHECKS);
        // A power of two, so that the test is a mask.
        let mask = if interval <= 1 {
            0
        } else {
            (1u64 << (u64::BITS - 1 - interval.leading_zeros())) - 1
        };
        mine & mask == 0 && self.sum() > limit
    }

    /// Sets the count to 0; by a thread no other changes it beside.
    pub(crate) fn reset(&self) {
        for stripe in &self.stripes {
            // Relaxed: as in `add_alone`.
            stripe.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn stripes_sum_to_the_count() {
        let count = Striped::new();
        assert_eq!(count.add(1, 5), 5);
        assert_eq!(count.add(2, 3), 3);
        assert_eq!(count.add_owned(1), 1);
        assert_eq!(count.add(16, 1), 2);
        // A key inserted on one stripe and deleted on another: the stripe wraps.
        count.sub(3, 4);
        assert_eq!(count.sum(), 6);
        count.reset();
        assert_eq!(count.sum(), 0);
    }

    #[test]
    fn past_is_late_by_at_most_a_checks_th_and_never_early() {
        let limit = 12_288;
        for threads in [1usize, 2, 16, 64] {
            let count = Striped::new();
            let mut seen = None;
            for n in 1..=2 * limit {
                let thread = 1 + (n as usize % threads);
                let mine = count.add(thread, 1);
                if count.past(mine, limit) {
                    seen = Some(n);
                    break;
                }
            }
            let seen = seen.expect("the count passed its limit unseen");
            assert!(seen > limit, "{threads} threads: seen early, at {seen}");
            assert!(
                seen <= limit + limit / CHECKS + 1,
                "{threads} threads: seen late, at {seen}"
            );
        }
    }

    #[test]
    fn small_limits_are_checked_on_every_change() {
        let count = Striped::new();
        for n in 1..=48 {
            let mine = count.add(n as usize, 1);
            assert!(!count.past(mine, 48));
        }
        let mine = count.add(7, 1);
        assert!(count.past(mine, 48));
    }
}
