//! The lock-free segmented store behind one `Queue` partition, and its swap at tick time.
//!
//! # Shape
//!
//! A partition has two *storages* and one atomic *claim word*. The word holds the current
//! storage's generation and the number of slots claimed in it; generation `g` fills storage
//! `g % 2`. A storage is a chain of [`Block`]s of [`Block::CAP`] slots.
//!
//! * **Push** (any number of writers): one successful CAS on the claim word both picks the
//!   storage (the generation) and claims slot `n` in it (retried after a backoff when
//!   another claim got in first: see [`Segments::claim`]). The writer finds block `n / CAP`
//!   through the storage's tail hint (linking it first if nobody has yet, with one CAS, once
//!   per block), writes the value and sets the slot's `ready` flag. No lock, no epoch pin.
//! * **Take** (one taker at a time, the partition's processing cycle): prepare the other
//!   storage (an empty head block), then *swap* the claim word to the next generation with
//!   zero claims. The swap returns exactly how many slots were claimed in the old
//!   generation: every claim is ordered before the swap (counted, in the old storage) or
//!   after it (in the new one). The taker then waits for each counted slot's `ready` flag:
//!   that is the grace period, bounded by writers finishing the one slot write they are in
//!   the middle of. Writers never wait for a tick.
//! * **Reclamation**: a writer touches a storage only between its claim and its `ready`
//!   store, and the taker waits for every claim of the old generation, so once the last
//!   `ready` flag is seen the old storage belongs to the taker alone: it recycles the blocks
//!   at once, with no deferred reclamation. A stale writer cannot exist: the claim that
//!   names a storage is the same atomic operation that the swap orders.
//!
//! Why not crossbeam-epoch or seize: an earlier version claimed slots on the block and kept
//! blocks alive for stale writers with a crossbeam-epoch pin per push. The pin cost about
//! 4 ns of a 9 ns push (see PERFORMANCE.md) and the design above needs no reclamation
//! scheme at all: the generation in the claim word is a two-epoch scheme specialised to a
//! single taker, whose grace period is the wait for claimed slots.

use core::mem::MaybeUninit;
use core::ptr;

use crossbeam_utils::{Backoff, CachePadded};

use crate::sync::{spin_wait, AtomicBool, AtomicPtr, AtomicU64, Mutex, Ordering, UnsafeCell};

/// Bits of the claim word that count claimed slots (up to 2^40 items per tick).
const CLAIMS: u64 = (1 << 40) - 1;
/// The first bit of the generation in the claim word.
const GENERATION_SHIFT: u32 = 40;
/// One generation step in the claim word.
const GENERATION: u64 = 1 << GENERATION_SHIFT;
/// Set once the store is closed for good: claims that see it are refused.
const CLOSED: u64 = 1 << 63;

/// Blocks kept for reuse per partition; more than this are freed.
const POOL_LIMIT: usize = 64;

/// A run of slots in a storage's chain; recycled through the pool.
struct Block<T> {
    /// Position of the block in its chain: it holds slots `index * CAP ..`.
    index: u64,
    /// The next block of the chain, linked by the first writer that needs it.
    next: AtomicPtr<Block<T>>,
    /// `ready[i]` is set once `values[i]` is written.
    ready: Box<[AtomicBool]>,
    values: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

impl<T> Block<T> {
    /// Slots per block (see [`super::block_capacity`]).
    const CAP: usize = super::block_capacity::<T>();

    /// `log2(CAP)`: slot `n` is in block `n >> SHIFT`.
    const SHIFT: u32 = Self::CAP.trailing_zeros();

    fn new() -> Box<Self> {
        Box::new(Block {
            index: 0,
            next: AtomicPtr::new(ptr::null_mut()),
            ready: (0..Self::CAP).map(|_| AtomicBool::new(false)).collect(),
            values: (0..Self::CAP)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
        })
    }
}

/// One of a partition's two storages: a chain of blocks.
struct Storage<T> {
    /// The first block; set by the taker before the generation that uses it is published.
    head: AtomicPtr<Block<T>>,
    /// The last block known to be linked (a hint that only moves forward).
    tail: AtomicPtr<Block<T>>,
}

/// A partition's lock-free store: many concurrent writers, one taker at a time.
pub struct Segments<T> {
    /// Generation (bits 40..63) | `CLOSED` | slots claimed in the current generation.
    claims: CachePadded<AtomicU64>,
    storages: [Storage<T>; 2],
    /// Serializes takers: each generation is drained by exactly one of them.
    taker: Mutex<()>,
    /// Drained blocks waiting for reuse. Boxed: blocks are linked as `Box::into_raw`
    /// pointers; moving them out of their allocation would cost an allocation per reuse.
    #[allow(clippy::vec_box)]
    pool: Mutex<Vec<Box<Block<T>>>>,
}

// SAFETY: values of `T` move between threads (written by a producer, read by the taker), so
// `T: Send` is required and sufficient; every shared field is an atomic or a mutex, and the
// value cells are accessed only under the claim/ready protocol described in the module docs.
unsafe impl<T: Send> Send for Segments<T> {}
// SAFETY: as for `Send`: `&Segments` only allows pushes (each slot written by the one thread
// that claimed it) and takes (serialized by `taker`); no `&T` is ever shared.
unsafe impl<T: Send> Sync for Segments<T> {}

/// What a successful push observed, for the caller's cheap follow-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// Slots claimed in the storage before this push.
    pub before: u64,
    /// Slots claimed in the storage once this push claimed its own.
    pub after: u64,
}

/// The store was closed for good: nothing was appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl<T: Send> Default for Segments<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send> Segments<T> {
    /// An open store: generation 0, storage 0 ready with an empty head block.
    pub fn new() -> Self {
        let head = Box::into_raw(Block::new());
        Segments {
            claims: CachePadded::new(AtomicU64::new(0)),
            storages: [
                Storage {
                    head: AtomicPtr::new(head),
                    tail: AtomicPtr::new(head),
                },
                Storage {
                    head: AtomicPtr::new(ptr::null_mut()),
                    tail: AtomicPtr::new(ptr::null_mut()),
                },
            ],
            taker: Mutex::new(()),
            pool: Mutex::new(Vec::new()),
        }
    }

    /// Appends one item. `Err` gives it back once the store is closed for good.
    #[inline]
    pub fn push(&self, item: T) -> Result<Pushed, T> {
        let Ok(word) = self.claim(1) else {
            return Err(item);
        };
        let slot = word & CLAIMS;
        let storage = &self.storages[storage_of(word)];
        let block = self.block(storage, slot >> Block::<T>::SHIFT);
        let idx = (slot as usize) & (Block::<T>::CAP - 1);
        // SAFETY: (1) slot `slot` of this generation was handed to this thread alone by its
        // claim; (2) the taker of the generation counted it and waits for its `ready`
        // flag before reading it or recycling the block, so the block is alive and nobody
        // else accesses the cell; (3) `idx < CAP`, the length of `values`.
        unsafe { block.values[idx].with_mut(|cell| (*cell).write(item)) };
        // Release: pairs with the taker's Acquire load of `ready[idx]`, publishing the value
        // written just above. It is this writer's last access to the storage.
        block.ready[idx].store(true, Ordering::Release);
        Ok(Pushed {
            before: slot,
            after: slot + 1,
        })
    }

    /// Appends every item of `items`, in order, with one claim for all of them. On `Err`
    /// (closed for good) nothing was appended and the items are still in `items`.
    #[inline]
    pub fn extend(&self, items: &mut std::vec::IntoIter<T>) -> Result<Pushed, Closed> {
        let count = items.len() as u64;
        if count == 0 {
            let claimed = self.len() as u64;
            return Ok(Pushed {
                before: claimed,
                after: claimed,
            });
        }
        let word = self.claim(count)?;
        let first = word & CLAIMS;
        let storage = &self.storages[storage_of(word)];
        let mut block = self.block(storage, first >> Block::<T>::SHIFT);
        for (slot, item) in (first..).zip(items.by_ref()) {
            let idx = (slot as usize) & (Block::<T>::CAP - 1);
            if idx == 0 && slot != first {
                block = self.block(storage, slot >> Block::<T>::SHIFT);
            }
            // SAFETY: as in `push`: slots `first..first + count` were claimed by this thread
            // alone, and the taker waits for each of them; `idx < CAP`.
            unsafe { block.values[idx].with_mut(|cell| (*cell).write(item)) };
            // Release: pairs with the taker's Acquire load of `ready[idx]`.
            block.ready[idx].store(true, Ordering::Release);
        }
        Ok(Pushed {
            before: first,
            after: first + count,
        })
    }

    /// Claims the next `count` slots of the current generation: the claim word just before
    /// them, or `Closed` once the store is closed for good (nothing claimed).
    ///
    /// A CAS retried after a backoff, not a `fetch_add`: the same one atomic step when it
    /// succeeds, but under contention the thread that lost backs off and leaves the word's
    /// line, and the slots' lines after it, to the winner for a run of pushes, as
    /// crossbeam's `SegQueue` does. A `fetch_add` always succeeds, so two producers of one
    /// partition alternate claims and every push moves three lines between their cores
    /// (the word, the value's, the `ready` flag's): 90–92 ns per item against 12 with the
    /// backoff (two pinned producers, 200 000 pushes each; PERFORMANCE.md, "The shared
    /// claim's backoff"). A failed CAS means another claim succeeded, so the loop is
    /// lock-free.
    #[inline(always)]
    fn claim(&self, count: u64) -> Result<u64, Closed> {
        // Relaxed: only a guess at the word; the CAS below reads it again.
        let mut word = self.claims.load(Ordering::Relaxed);
        let backoff = Backoff::new();
        loop {
            if word & CLOSED != 0 {
                return Err(Closed);
            }
            // Acquire on success: pairs with the taker's Release swap of the word (the head of
            // the release sequence that other writers' claims continue), so the storage of
            // the generation read here (its head and tail) is initialized for this thread.
            // Relaxed on failure: the word read is only the next guess.
            match self.claims.compare_exchange_weak(
                word,
                word + count,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(word),
                Err(now) => {
                    word = now;
                    backoff.spin();
                }
            }
        }
    }

    /// Items claimed in the current generation: exact when no push is in flight.
    pub fn len(&self) -> usize {
        // Relaxed: a count; `len` promises nothing about pushes in flight.
        let word = self.claims.load(Ordering::Relaxed);
        if word & CLOSED != 0 {
            0
        } else {
            (word & CLAIMS) as usize
        }
    }

    /// True when nothing was claimed in the current generation (for tests and models: the
    /// partition asks [`super::staging::Staged`]).
    #[cfg(any(test, loom))]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Swaps the next generation in and appends everything of the old one to `out`, in claim
    /// order. Returns how many items were taken. After [`Segments::close_for_good`], takes
    /// nothing.
    pub fn take(&self, out: &mut Vec<T>) -> usize {
        self.take_with(out, false)
    }

    /// Takes everything, like [`Segments::take`], and closes the store: later pushes return
    /// their item. Idempotent.
    pub fn close_for_good(&self, out: &mut Vec<T>) -> usize {
        self.take_with(out, true)
    }

    fn take_with(&self, out: &mut Vec<T>, for_good: bool) -> usize {
        let _taker = self
            .taker
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Relaxed: only takers change the generation and `CLOSED`, and they are serialized
        // by `taker`; the claim count read here is not used.
        let word = self.claims.load(Ordering::Relaxed);
        if word & CLOSED != 0 {
            return 0;
        }
        let next = (word & !CLAIMS).wrapping_add(GENERATION) & !CLOSED;
        let next = if for_good {
            next | CLOSED
        } else {
            // The next generation's storage was drained by the previous take (or never used):
            // give it an empty head block before publishing it.
            let head = self.fresh_block(0);
            let storage = &self.storages[storage_of(next)];
            // Relaxed: published to writers by the Release swap below.
            storage.head.store(head, Ordering::Relaxed);
            storage.tail.store(head, Ordering::Relaxed);
            next
        };
        // Release: publishes the fresh storage to writers whose Acquire claim reads the new
        // word. No Acquire is needed: the drain reads a slot only after an Acquire load of
        // its `ready` flag, and a block only after an Acquire load of the link to it.
        let old = self.claims.swap(next, Ordering::Release);
        let claimed = old & CLAIMS;
        // SAFETY: the swap ended generation `old`: its storage receives no new claim, this
        // thread is its only taker (`taker` is held), and `claimed` counts its claims.
        unsafe { self.drain(&self.storages[storage_of(old)], claimed, out) }
    }

    /// The block of `storage` holding slots `index * CAP ..`: the tail, almost always.
    #[inline]
    fn block(&self, storage: &Storage<T>, index: u64) -> &Block<T> {
        // Acquire: pairs with the Release that published the tail (the taker's swap of the
        // claim word for the head, the CAS in `find_block` for later blocks).
        let tail = storage.tail.load(Ordering::Acquire);
        // SAFETY: the caller holds an unwritten claim in this storage's generation, so the
        // taker has not recycled any of its blocks, and the tail hint points to a linked block.
        let block = unsafe { &*tail };
        if block.index == index {
            block
        } else {
            self.find_block(storage, tail, index)
        }
    }

    /// The block `index` of `storage`, linking blocks up to it if nobody has yet, from the
    /// tail hint `block`.
    #[cold]
    fn find_block(&self, storage: &Storage<T>, mut block: *mut Block<T>, index: u64) -> &Block<T> {
        loop {
            // SAFETY: as in `block`: the caller's claim keeps the chain alive; the tail hint and
            // every `next` point to linked blocks of the chain.
            let current = unsafe { &*block };
            if current.index == index {
                return current;
            }
            if current.index > index {
                return self.walk(storage, index);
            }
            // Acquire: pairs with the AcqRel CAS that linked it.
            let mut next = current.next.load(Ordering::Acquire);
            if next.is_null() {
                let fresh = self.fresh_block(current.index + 1);
                // AcqRel: Release publishes the fresh block to other writers and to the taker
                // (which Acquire-load `next`); Acquire on failure sees the winner's block.
                match current.next.compare_exchange(
                    ptr::null_mut(),
                    fresh,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => next = fresh,
                    Err(winner) => {
                        // SAFETY: `fresh` came from `fresh_block` and was never published.
                        self.recycle(unsafe { Box::from_raw(fresh) });
                        next = winner;
                    }
                }
            }
            // Release: pairs with the Acquire load of `tail` above. Failure means another
            // writer moved the hint already, which is as good.
            let _ =
                storage
                    .tail
                    .compare_exchange(block, next, Ordering::Release, Ordering::Relaxed);
            block = next;
        }
    }

    /// The block `index` of `storage`, found from the head: for a writer whose claim is older
    /// than the tail hint (it was preempted between its claim and its write).
    #[cold]
    fn walk(&self, storage: &Storage<T>, index: u64) -> &Block<T> {
        // Acquire: pairs with the taker's Release swap that published the head.
        let mut block = storage.head.load(Ordering::Acquire);
        loop {
            // SAFETY: as in `block`: the caller's claim keeps the chain alive, and blocks
            // before the tail are all linked.
            let current = unsafe { &*block };
            if current.index == index {
                return current;
            }
            // Acquire: pairs with the AcqRel CAS that linked it.
            block = current.next.load(Ordering::Acquire);
        }
    }

    /// A block ready to be linked at `index`: empty, unlinked, private to the caller until it
    /// publishes it with a release operation.
    fn fresh_block(&self, index: u64) -> *mut Block<T> {
        let recycled = self.pool.lock().ok().and_then(|mut pool| pool.pop());
        let mut block = recycled.unwrap_or_else(Block::new);
        block.index = index;
        Box::into_raw(block)
    }

    /// Keeps an empty block (every `ready` flag clear, no live value) for reuse.
    fn recycle(&self, block: Box<Block<T>>) {
        // Relaxed: the block is private to this thread; its next user publishes it.
        block.next.store(ptr::null_mut(), Ordering::Relaxed);
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() < POOL_LIMIT {
                pool.push(block);
            }
        }
    }

    /// Waits for the `claimed` slots of an ended generation, moves their values into `out`
    /// in slot order, and recycles the storage's blocks.
    ///
    /// # Safety
    ///
    /// `storage` belongs to a generation that the caller ended with the claim-word swap that
    /// returned `claimed`, and the caller is its only taker.
    unsafe fn drain(&self, storage: &Storage<T>, claimed: u64, out: &mut Vec<T>) -> usize {
        // Relaxed: the head was stored by this taker (or an earlier one, ordered by `taker`).
        let head = storage.head.load(Ordering::Relaxed);
        out.reserve(claimed as usize);
        // First every value, through shared references: writers of this generation may still
        // be reading any block of the chain (its `index` and `next`, to find theirs) until
        // the last of them has set its `ready` flag.
        let mut block = head;
        let mut slot = 0;
        while slot < claimed {
            // SAFETY: `block` is the head or was linked after it, and blocks of an unfinished
            // generation are not recycled (phase two below runs after every claim is ready).
            let current = unsafe { &*block };
            let filled = (claimed - slot).min(Block::<T>::CAP as u64) as usize;
            // The block's run of values in three passes (wait for every flag, move the values
            // out, clear the flags) rather than one push per value behind its flag: the move
            // is then one `extend` of a run of known length, with no capacity check or length
            // store per value (two producers sharing a partition, a flush of 400 000 items:
            // PERFORMANCE.md, "The shared drain by runs").
            for flag in &current.ready[..filled] {
                let mut step = 0;
                // Acquire: pairs with the writer's Release store after writing the value.
                while !flag.load(Ordering::Acquire) {
                    spin_wait(&mut step);
                }
            }
            out.extend(current.values[..filled].iter().map(|cell| {
                // SAFETY: the slot was claimed in this generation and its writer set `ready`
                // (seen above), so the value is initialized; the flag is cleared below, so it
                // is read once.
                unsafe { cell.with_mut(|cell| (*cell).assume_init_read()) }
            }));
            for flag in &current.ready[..filled] {
                // Relaxed: nobody else reads the flag until the block is reused, which a later
                // Release (the swap of the claim word, or the CAS that links it) publishes.
                flag.store(false, Ordering::Relaxed);
            }
            slot += filled as u64;
            if slot < claimed {
                // The next block holds claimed slots, so a writer links it (or did).
                let mut step = 0;
                loop {
                    // Acquire: pairs with the AcqRel CAS that linked it.
                    block = current.next.load(Ordering::Acquire);
                    if !block.is_null() {
                        break;
                    }
                    spin_wait(&mut step);
                }
            }
        }
        // Then the blocks: every writer of the generation has set its last `ready` flag (seen
        // with Acquire above), so none of them reads the chain any more.
        // Relaxed: the taker's own stores; the chain is complete (seen above).
        storage.head.store(ptr::null_mut(), Ordering::Relaxed);
        storage.tail.store(ptr::null_mut(), Ordering::Relaxed);
        let mut block = head;
        while !block.is_null() {
            // SAFETY: the chain is this taker's alone now (see above); its blocks were
            // allocated by `Box` in `Block::new` and are recycled once each.
            let current = unsafe { Box::from_raw(block) };
            // Relaxed: as above, the chain is complete and ours.
            block = current.next.load(Ordering::Relaxed);
            self.recycle(current);
        }
        claimed as usize
    }
}

/// Which storage a claim word's generation fills.
#[inline]
fn storage_of(word: u64) -> usize {
    ((word >> GENERATION_SHIFT) & 1) as usize
}

impl<T> Drop for Segments<T> {
    fn drop(&mut self) {
        // `&mut self`: no writer or taker is left, so every storage is ours.
        // Relaxed (here and below): `&mut self` orders everything before this drop.
        let word = self.claims.load(Ordering::Relaxed);
        let current = ((word >> GENERATION_SHIFT) & 1) as usize;
        for (which, storage) in self.storages.iter().enumerate() {
            let mut left = if which == current && word & CLOSED == 0 {
                word & CLAIMS
            } else {
                0
            };
            let mut block = storage.head.load(Ordering::Relaxed);
            while !block.is_null() {
                // SAFETY: blocks of a chain were allocated by `Box` (`Block::new`) and are
                // reachable from one chain only; nobody else can reach them now.
                let current = unsafe { Box::from_raw(block) };
                let filled = left.min(Block::<T>::CAP as u64) as usize;
                for idx in 0..filled {
                    if current.ready[idx].load(Ordering::Relaxed) {
                        // SAFETY: a set `ready` flag marks an initialized value not yet taken.
                        unsafe { current.values[idx].with_mut(|cell| (*cell).assume_init_drop()) };
                    }
                }
                left -= filled as u64;
                block = current.next.load(Ordering::Relaxed);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;

    /// Items per test thread: small under Miri, which runs ~1000× slower.
    const N: usize = if cfg!(miri) { 40 } else { 20_000 };

    fn take_all(segments: &Segments<usize>) -> Vec<usize> {
        let mut out = Vec::new();
        segments.take(&mut out);
        out
    }

    #[test]
    fn push_take_keeps_order_across_blocks() {
        let segments = Segments::new();
        let n = Block::<usize>::CAP * 3 + 1;
        for i in 0..n {
            segments.push(i).unwrap();
        }
        assert_eq!(segments.len(), n);
        assert_eq!(take_all(&segments), (0..n).collect::<Vec<_>>());
        assert!(segments.is_empty());
        assert_eq!(segments.len(), 0);
        segments.push(7).unwrap();
        assert_eq!(take_all(&segments), vec![7]);
        assert!(take_all(&segments).is_empty());
    }

    #[test]
    fn extend_claims_ranges_across_blocks() {
        let segments = Segments::new();
        let cap = Block::<usize>::CAP;
        segments.push(0).unwrap();
        let mut items = (1..cap * 2 + 3).collect::<Vec<_>>().into_iter();
        let pushed = segments.extend(&mut items).unwrap();
        assert_eq!((pushed.before, pushed.after), (1, cap as u64 * 2 + 3));
        assert_eq!(items.len(), 0);
        assert_eq!(take_all(&segments), (0..cap * 2 + 3).collect::<Vec<_>>());
    }

    #[test]
    fn close_for_good_refuses_later_pushes() {
        let segments = Segments::new();
        segments.push(1).unwrap();
        let mut out = Vec::new();
        assert_eq!(segments.close_for_good(&mut out), 1);
        assert_eq!(out, vec![1]);
        assert_eq!(segments.push(2), Err(2));
        assert!(segments.is_empty());
        let mut rest = vec![3, 4].into_iter();
        assert!(segments.extend(&mut rest).is_err());
        assert_eq!(rest.collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(segments.close_for_good(&mut out), 0);
        assert_eq!(segments.take(&mut out), 0);
        assert_eq!(segments.len(), 0);
    }

    #[test]
    fn concurrent_pushes_and_takes_lose_nothing() {
        let segments = Segments::new();
        let mut taken = Vec::new();
        std::thread::scope(|s| {
            for t in 0..2 {
                let segments = &segments;
                s.spawn(move || {
                    for i in 0..N {
                        segments.push(t * N + i).unwrap();
                    }
                });
            }
            for _ in 0..(if cfg!(miri) { 3 } else { 50 }) {
                segments.take(&mut taken);
                std::thread::yield_now();
            }
        });
        segments.close_for_good(&mut taken);
        assert_eq!(taken.len(), 2 * N);
        for t in 0..2 {
            let mine: Vec<usize> = taken.iter().copied().filter(|v| v / N == t).collect();
            assert_eq!(mine, (t * N..(t + 1) * N).collect::<Vec<_>>());
        }
    }

    #[test]
    fn drop_releases_untaken_values() {
        static DROPS: StdAtomicUsize = StdAtomicUsize::new(0);
        #[derive(Debug)]
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::Relaxed);
            }
        }
        let segments = Segments::new();
        for _ in 0..Block::<Counted>::CAP + 2 {
            segments.push(Counted).unwrap();
        }
        let mut out = Vec::new();
        segments.take(&mut out);
        segments.push(Counted).unwrap();
        segments.push(Counted).unwrap();
        drop(out);
        assert_eq!(DROPS.load(Ordering::Relaxed), Block::<Counted>::CAP + 2);
        drop(segments);
        assert_eq!(DROPS.load(Ordering::Relaxed), Block::<Counted>::CAP + 4);
    }
}
