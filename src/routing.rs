//! Which partition a write goes to.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The calling thread's number: threads are numbered from 1 in order of their first write.
#[inline]
pub(crate) fn this_thread() -> usize {
    thread_local! {
        /// 0 until the thread's first write. Const-initialized: reading it is one load.
        static NUMBER: Cell<usize> = const { Cell::new(0) };
    }
    let number = NUMBER.with(Cell::get);
    if number != 0 {
        return number;
    }
    number_this_thread(&NUMBER)
}

#[cold]
fn number_this_thread(slot: &'static std::thread::LocalKey<Cell<usize>>) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    // Relaxed: only uniqueness of the numbers matters, which the RMW gives.
    let number = NEXT.fetch_add(1, Ordering::Relaxed);
    slot.with(|cell| cell.set(number));
    number
}

/// The partition of thread number `thread`: consecutive numbers take consecutive
/// partitions, so producers spread evenly and each keeps to one partition (its items stay in
/// push order and threads on different partitions do not contend).
#[inline]
pub(crate) fn by_thread(thread: usize, partitions: usize) -> usize {
    let slot = thread - 1;
    if slot < partitions {
        slot
    } else {
        slot % partitions
    }
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
    fn threads_are_numbered_once_and_spread() {
        let me = this_thread();
        assert!(me >= 1 && (0..100).all(|_| this_thread() == me));
        let other = std::thread::spawn(this_thread).join().expect("thread");
        assert_ne!(other, me);
        assert_eq!(by_thread(me, 1), 0);
        assert_eq!(
            (1..=6).map(|t| by_thread(t, 4)).collect::<Vec<_>>(),
            [0, 1, 2, 3, 0, 1]
        );
    }
}
