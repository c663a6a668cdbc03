//! Which partition a write goes to.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The calling thread's partition: threads are numbered in order of their first write, so
/// producers spread evenly and each keeps to one partition (its items stay in push order and
/// threads on different partitions do not contend).
#[inline]
pub(crate) fn by_thread(partitions: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Relaxed: only uniqueness of the numbers matters, which the RMW gives.
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    if partitions == 1 {
        return 0;
    }
    SLOT.with(|slot| *slot) % partitions
}

/// The partition of a hash: the high bits, scaled (no modulo bias, no division).
#[inline]
pub(crate) fn by_hash(hash: u64, partitions: usize) -> usize {
    ((u128::from(hash) * partitions as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hash_stays_in_range_and_spreads() {
        let mut seen = [0usize; 7];
        for i in 0..7000u64 {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            seen[by_hash(h, 7)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
        assert_eq!(by_hash(u64::MAX, 3), 2);
        assert_eq!(by_hash(0, 3), 0);
    }

    #[test]
    fn by_thread_is_stable_per_thread() {
        let first = by_thread(5);
        assert!((0..100).all(|_| by_thread(5) == first));
        assert_eq!(by_thread(1), 0);
    }
}
