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

/// The partition of a hash: the high bits of the mixed hash, scaled (no modulo bias, no
/// division).
///
/// The hash is first multiplied by an odd constant (Fibonacci hashing), which carries the
/// entropy of its low bits into its high ones. Hashers tuned for hash tables that index by
/// the low bits, foldhash among them, leave the high bits of small inputs weak: with one
/// seed in about fifty, the 16 keys `0..16` hashed by foldhash's fast hasher share their top
/// three bits, which put all of them in one of 8 partitions.
///
/// With one partition the answer is 0 without the two multiplies: they sit on the chain of
/// dependent steps that leads a map's write to its slot (the hash, the partition, its table,
/// the slot), and taking them off it took the M1 bench's single-partition put from 8.3–8.8
/// to 6.2–6.7 ns (p10 of the timed chunks; PERFORMANCE.md, run L, "What this session's
/// changes bought").
/// The branch costs a multi-partition map nothing measurable: it is always predicted.
#[inline]
pub(crate) fn by_hash(hash: u64, partitions: usize) -> usize {
    if partitions == 1 {
        return 0;
    }
    let mixed = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((u128::from(mixed) * partitions as u128) >> 64) as usize
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
        assert_eq!(by_hash(0, 3), 0);
        assert!((0..1000u64).all(|h| by_hash(h, 3) < 3));
    }

    /// Small keys hashed by the default hasher spread over the partitions whatever its
    /// seeds (without the mixing multiply, about 2% of seeds put all 16 keys in one of 8).
    #[test]
    fn small_keys_spread_for_every_seed() {
        use foldhash::fast::FoldHasher;
        use foldhash::SharedSeed;
        use std::hash::Hasher;
        let seeds: u64 = if cfg!(miri) { 20 } else { 20_000 };
        for i in 0..seeds {
            // Spread seeds (splitmix-style), as random ones would be.
            let shared = SharedSeed::from_u64(i.wrapping_mul(0xBF58_476D_1CE4_E5B9));
            let per_hasher = i.wrapping_mul(0x94D0_49BB_1331_11EB);
            let partition = |key: u32| {
                let mut hasher = FoldHasher::with_seed(per_hasher, &shared);
                hasher.write_u32(key);
                by_hash(hasher.finish(), 8)
            };
            let first = partition(0);
            assert!(
                (1..16).any(|key| partition(key) != first),
                "seed {i}: 16 keys in one partition"
            );
        }
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
