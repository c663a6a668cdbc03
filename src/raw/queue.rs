//! The lock-free segmented store behind one `Queue` partition, and its swap at tick time.
//!
//! # Shape
//!
//! A *storage* is a chain of [`Block`]s; its first block (the *head*) also carries the chain's
//! `tail` hint. The partition holds one atomic pointer, `current`, to the head of the storage
//! writers fill now.
//!
//! * **Push** (any number of writers): pin the epoch, load `current`, load its `tail`, claim a
//!   slot with one `fetch_add` on the block's `claimed` counter, write the value, set the
//!   slot's `ready` flag. No lock, no CAS retry loop: the only CAS is the rare link of a new
//!   block when one fills (once per [`Block::CAP`] items).
//! * **Take** (one taker at a time, the partition's processing cycle): swap a fresh storage
//!   into `current`, then *close* every block of the old one with `fetch_or(CLOSED)`. A claim
//!   ordered before the close is counted in the value the close returns, so the taker knows
//!   exactly which slots were claimed; it waits for each one's `ready` flag (the grace period:
//!   a writer that loaded the old pointer finishes its one slot write) and reads it. A claim
//!   ordered after the close sees `CLOSED` and goes to the new storage. Writers never wait
//!   for a tick; the taker waits at most for writers already inside their push.
//! * **Reclamation**: a writer that loaded the old storage may still touch its blocks (a
//!   `fetch_add` that will see `CLOSED`) after the taker is done, so drained blocks are
//!   retired through crossbeam-epoch and only return to the partition's block pool once no
//!   pinned writer can hold them. Recycled blocks make a steady state allocate nothing.
//!
//! Why crossbeam-epoch rather than seize: we retire whole blocks, rarely (a few per tick),
//! so seize's per-object reference counting buys nothing, while crossbeam-epoch's `pin` is a
//! thread-local counter and one fence, and it runs under loom (`--cfg crossbeam_loom`), which
//! the models in `loom-tests/` need.

use core::mem::MaybeUninit;
use core::ptr;

use crate::sync::epoch::{self, Guard};
use crate::sync::{
    spin_wait, Arc, AtomicBool, AtomicPtr, AtomicUsize, Mutex, Ordering, UnsafeCell,
};

/// Set in `Block::claimed` once the taker closed the block: claims that see it go elsewhere.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// Blocks kept for reuse per partition; more than this are freed.
const POOL_LIMIT: usize = 64;

/// A run of slots. Lives in a storage chain, then in the pool, then in a chain again.
struct Block<T> {
    /// Slots claimed so far (may exceed `CAP` when writers overflow), plus `CLOSED`.
    claimed: AtomicUsize,
    /// The next block of the chain; linked once by a writer that overflowed this one.
    next: AtomicPtr<Block<T>>,
    /// In a head block: the last block known to be linked (a hint, only ever moves forward).
    tail: AtomicPtr<Block<T>>,
    /// `ready[i]` is set once `values[i]` is written.
    ready: Box<[AtomicBool]>,
    values: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

impl<T> Block<T> {
    /// Slots per block: about 16 KiB of values, between 16 and 1024 slots. Small under loom
    /// and Miri so that the models cross block boundaries.
    const CAP: usize = if cfg!(loom) {
        2
    } else if cfg!(miri) {
        4
    } else {
        let size = if core::mem::size_of::<T>() == 0 {
            1
        } else {
            core::mem::size_of::<T>()
        };
        let n = 16 * 1024 / size;
        if n < 16 {
            16
        } else if n > 1024 {
            1024
        } else {
            n
        }
    };

    fn new(cap: usize, claimed: usize) -> Box<Self> {
        Box::new(Block {
            claimed: AtomicUsize::new(claimed),
            next: AtomicPtr::new(ptr::null_mut()),
            tail: AtomicPtr::new(ptr::null_mut()),
            ready: (0..cap).map(|_| AtomicBool::new(false)).collect(),
            values: (0..cap)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
        })
    }
}

/// Drained blocks waiting for reuse. Shared with the epoch's deferred functions, which may run
/// after the storage itself is gone.
struct Pool<T> {
    // Boxed: blocks go in and out of the pool as `Box::into_raw` pointers; moving them out of
    // their allocation and back would cost an allocation per reuse.
    #[allow(clippy::vec_box)]
    blocks: Mutex<Vec<Box<Block<T>>>>,
}

impl<T> Pool<T> {
    /// A block ready to be the head or the next block of a storage: open, empty, unlinked.
    /// The caller publishes it with a release operation.
    fn take(&self) -> *mut Block<T> {
        let recycled = self.blocks.lock().ok().and_then(|mut blocks| blocks.pop());
        let block = match recycled {
            Some(block) => {
                // Relaxed: the block is private to this thread until published (Release).
                block.claimed.store(0, Ordering::Relaxed);
                block.next.store(ptr::null_mut(), Ordering::Relaxed);
                block.tail.store(ptr::null_mut(), Ordering::Relaxed);
                block
            }
            None => Block::new(Block::<T>::CAP, 0),
        };
        let raw = Box::into_raw(block);
        // Relaxed: same as above, the block is still private.
        // SAFETY: `raw` comes from `Box::into_raw` just above and is not shared yet.
        unsafe { (*raw).tail.store(raw, Ordering::Relaxed) };
        raw
    }

    /// Keeps a drained block (all `ready` flags clear, no live value) for reuse.
    fn put(&self, block: Box<Block<T>>) {
        if let Ok(mut blocks) = self.blocks.lock() {
            if blocks.len() < POOL_LIMIT {
                blocks.push(block);
            }
        }
    }
}

/// Moves a raw block pointer into an epoch-deferred function.
struct Retired<T>(*mut Block<T>);

// SAFETY: a retired block is owned by the deferred function alone (no thread reads its values
// any more), and the values it held were moved out; sending it sends nothing shared but the
// atomics, which are `Send`.
unsafe impl<T: Send> Send for Retired<T> {}

/// A partition's lock-free store: many concurrent writers, one taker at a time.
pub struct Segments<T> {
    /// Head block of the storage writers fill now, or `tombstone` once closed for good.
    current: AtomicPtr<Block<T>>,
    /// A block that is always closed: installed by [`Segments::close_for_good`].
    tombstone: *mut Block<T>,
    /// Serializes takers: each storage is drained by exactly one of them.
    taker: Mutex<()>,
    pool: Arc<Pool<T>>,
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
    /// The push linked a new block to the storage.
    pub grew: bool,
}

impl<T: Send + 'static> Segments<T> {
    pub fn new() -> Self {
        let pool = Arc::new(Pool {
            blocks: Mutex::new(Vec::new()),
        });
        Segments {
            current: AtomicPtr::new(pool.take()),
            tombstone: Box::into_raw(Block::new(0, CLOSED)),
            taker: Mutex::new(()),
            pool,
        }
    }

    /// Appends one item. `Err` gives it back once the store is closed for good.
    pub fn push(&self, item: T) -> Result<Pushed, T> {
        let mut item = Some(item);
        let mut grew = false;
        let guard = epoch::pin();
        loop {
            let (head, block) = self.tail(&guard);
            // Acquire: pairs with the taker's AcqRel `fetch_or(CLOSED)`, so a writer that sees
            // CLOSED also sees the swapped `current` on its next load.
            let idx = block.claimed.fetch_add(1, Ordering::Acquire);
            if idx & CLOSED != 0 {
                if ptr::eq(block, self.tombstone) {
                    return Err(item.take().expect("item is present until written"));
                }
                continue;
            }
            if idx < Block::<T>::CAP {
                let item = item.take().expect("item is present until written");
                // SAFETY: (1) `idx` was handed to this thread alone by the `fetch_add`;
                // (2) the block was open at the claim, so the taker counts this slot and waits
                // for `ready[idx]` before reading, and nobody else reads or writes it;
                // (3) the block is not recycled while `guard` is pinned.
                unsafe { block.values[idx].with_mut(|cell| (*cell).write(item)) };
                // Release: pairs with the taker's Acquire load of `ready[idx]`, publishing the
                // value written just above.
                block.ready[idx].store(true, Ordering::Release);
                return Ok(Pushed { grew });
            }
            grew |= self.link_next(head, block);
        }
    }

    /// Appends every item of `items`, in order, claiming as many slots as fit in one
    /// `fetch_add` per block. On `Err`, the items not appended are still in `items`.
    pub fn extend(&self, items: &mut std::vec::IntoIter<T>) -> Result<Pushed, ()> {
        let mut grew = false;
        let guard = epoch::pin();
        while items.len() > 0 {
            let (head, block) = self.tail(&guard);
            let want = items.len();
            // Acquire: as in `push`.
            let first = block.claimed.fetch_add(want, Ordering::Acquire);
            if first & CLOSED != 0 {
                if ptr::eq(block, self.tombstone) {
                    return Err(());
                }
                continue;
            }
            let end = Block::<T>::CAP.min(first.saturating_add(want));
            for idx in first..end {
                let Some(item) = items.next() else { break };
                // SAFETY: as in `push`: `first..end` was claimed by this thread alone on an
                // open block, which stays allocated while `guard` is pinned.
                unsafe { block.values[idx].with_mut(|cell| (*cell).write(item)) };
                // Release: pairs with the taker's Acquire load of `ready[idx]`.
                block.ready[idx].store(true, Ordering::Release);
            }
            if items.len() > 0 {
                // The claim ran past the block's end: it is full and the next one must exist
                // (the taker waits for it, having seen `claimed > CAP`).
                grew |= self.link_next(head, block);
            }
        }
        Ok(Pushed { grew })
    }

    /// Items claimed in the current storage: exact when no push is in flight.
    pub fn len(&self) -> usize {
        let guard = epoch::pin();
        // Acquire: pairs with the Release swap that published this head.
        let mut block = self.current.load(Ordering::Acquire);
        let mut len = 0;
        while !block.is_null() {
            // SAFETY: blocks reachable from `current` are not recycled while `guard` is pinned
            // (they are retired only after being unlinked by a take, through this epoch).
            let b = unsafe { &*block };
            // Relaxed: a count; `len` promises nothing about items in flight.
            let claimed = b.claimed.load(Ordering::Relaxed) & !CLOSED;
            len += claimed.min(b.values.len());
            // Acquire: pairs with the AcqRel CAS that linked the next block.
            block = b.next.load(Ordering::Acquire);
        }
        drop(guard);
        len
    }

    /// True when nothing was claimed in the current storage.
    pub fn is_empty(&self) -> bool {
        let _guard = epoch::pin();
        // Acquire: pairs with the Release swap that published this head.
        let head = self.current.load(Ordering::Acquire);
        if ptr::eq(head, self.tombstone) {
            // Refused pushes count on the tombstone's claims, but it never holds an item.
            return true;
        }
        // SAFETY: as in `len`.
        let claimed = unsafe { &*head }.claimed.load(Ordering::Relaxed);
        claimed & !CLOSED == 0
    }

    /// Swaps a fresh storage in and appends everything of the old one to `out`, in claim
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
        // Relaxed: only takers store `current`, and they are serialized by `taker`.
        if ptr::eq(self.current.load(Ordering::Relaxed), self.tombstone) {
            return 0;
        }
        let fresh = if for_good {
            self.tombstone
        } else {
            self.pool.take()
        };
        // AcqRel: Release publishes the fresh block's initialization to writers' Acquire
        // loads of `current`; Acquire pairs with the previous swap's Release.
        let old = self.current.swap(fresh, Ordering::AcqRel);
        let guard = epoch::pin();
        // SAFETY: `old` was swapped out under `taker`, so this thread is the only taker of it;
        // it is not the tombstone (checked above).
        unsafe { self.drain(old, out, &guard) }
    }

    /// Loads the current head and its tail block.
    fn tail<'g>(&self, _guard: &'g Guard) -> (&'g Block<T>, &'g Block<T>) {
        // Acquire: pairs with the taker's Release swap, so the head's initialization is seen.
        let head = self.current.load(Ordering::Acquire);
        // SAFETY: `current` always points to a live head block (or the tombstone, freed only in
        // `Drop`); a head swapped out meanwhile is retired through the epoch that `_guard`
        // pins, so it stays allocated for `'g`.
        let head = unsafe { &*head };
        // Acquire: pairs with the Release CAS in `link_next` that moved the tail.
        let tail = head.tail.load(Ordering::Acquire);
        if tail.is_null() {
            // Only the tombstone has no tail: it is its own (always closed) tail block.
            return (head, head);
        }
        // SAFETY: a non-null tail is a block of the same chain, linked before the head was
        // published or by `link_next`, and protected by the same guard.
        let block = unsafe { &*tail };
        (head, block)
    }

    /// Links a next block after the full `block` (or finds the one another writer linked) and
    /// moves the head's tail hint to it. Returns whether this call linked a new block.
    fn link_next(&self, head: &Block<T>, block: &Block<T>) -> bool {
        // Acquire: pairs with the AcqRel CAS that linked it, so its initialization is seen.
        let mut next = block.next.load(Ordering::Acquire);
        let mut linked = false;
        if next.is_null() {
            let fresh = self.pool.take();
            // AcqRel: Release publishes the fresh block to writers and to the taker (which
            // Acquire-loads `next`); Acquire on failure sees the winner's block.
            match block.next.compare_exchange(
                ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    next = fresh;
                    linked = true;
                }
                Err(winner) => {
                    // SAFETY: `fresh` came from `Pool::take` and was never published.
                    self.pool.put(unsafe { Box::from_raw(fresh) });
                    next = winner;
                }
            }
        }
        // Release: pairs with the Acquire load of `tail` in `Segments::tail`. A failure means
        // another writer moved it already, which is as good.
        let _ = head.tail.compare_exchange(
            block as *const Block<T> as *mut Block<T>,
            next,
            Ordering::Release,
            Ordering::Relaxed,
        );
        linked
    }

    /// Closes every block of a swapped-out storage, waits for its claimed slots, moves their
    /// values into `out` and retires the blocks.
    ///
    /// # Safety
    ///
    /// `head` is the head of a storage that was swapped out of `current` by the caller, who is
    /// its only taker; it is not the tombstone.
    unsafe fn drain(&self, head: *mut Block<T>, out: &mut Vec<T>, guard: &Guard) -> usize {
        let mut taken = 0;
        let mut block = head;
        loop {
            // SAFETY: `block` is `head` or a block linked after it; the caller owns the chain's
            // draining, and writers never free blocks.
            let b = unsafe { &*block };
            // AcqRel: the read-modify-write orders every claim of this block before or after
            // the close; Release pairs with writers' Acquire claims that see CLOSED.
            let claimed = b.claimed.fetch_or(CLOSED, Ordering::AcqRel) & !CLOSED;
            let cap = b.values.len();
            let filled = claimed.min(cap);
            out.reserve(filled);
            for idx in 0..filled {
                let mut step = 0;
                // Acquire: pairs with the writer's Release store after writing the value.
                while !b.ready[idx].load(Ordering::Acquire) {
                    spin_wait(&mut step);
                }
                // SAFETY: slot `idx` was claimed before the close and its writer set `ready`,
                // so the value is initialized; the close stops any other claim of it, and the
                // flag is cleared below, so it is read exactly once.
                out.push(unsafe { b.values[idx].with_mut(|cell| (*cell).assume_init_read()) });
                // Relaxed: nobody else touches the flag of a closed block; the block's reuse is
                // published through the pool's mutex and a Release link.
                b.ready[idx].store(false, Ordering::Relaxed);
            }
            taken += filled;
            let mut next = ptr::null_mut();
            if claimed > cap {
                // A writer overflowed this block before the close: it links the next block.
                let mut step = 0;
                loop {
                    // Acquire: pairs with the AcqRel CAS that linked it.
                    next = b.next.load(Ordering::Acquire);
                    if !next.is_null() {
                        break;
                    }
                    spin_wait(&mut step);
                }
            }
            let pool = Arc::clone(&self.pool);
            let retired = Retired(block);
            // The block may still be read by writers that loaded it before the close (their
            // claims see CLOSED): reuse it only after every such writer unpinned.
            guard.defer(move || {
                let retired = retired;
                // SAFETY: the epoch guarantees no thread holds a reference any more, and the
                // block was allocated by `Box` (in `Pool::take`).
                pool.put(unsafe { Box::from_raw(retired.0) });
            });
            if next.is_null() {
                break;
            }
            block = next;
        }
        guard.flush();
        taken
    }
}

impl<T> Drop for Segments<T> {
    fn drop(&mut self) {
        // `&mut self`: no writer or taker is left, so the chain is ours without a grace period.
        // Relaxed (here and below): `&mut self` orders everything before this drop.
        let mut block = self.current.load(Ordering::Relaxed);
        // SAFETY: the tombstone was allocated by `Box` in `new` and is referenced only here.
        drop(unsafe { Box::from_raw(self.tombstone) });
        if ptr::eq(block, self.tombstone) {
            return;
        }
        while !block.is_null() {
            // SAFETY: blocks of the current chain were allocated by `Box` (`Pool::take`); with
            // `&mut self` nobody else can reach them.
            let b = unsafe { Box::from_raw(block) };
            let cap = b.values.len();
            let filled = (b.claimed.load(Ordering::Relaxed) & !CLOSED).min(cap);
            for idx in 0..filled {
                if b.ready[idx].load(Ordering::Relaxed) {
                    // SAFETY: a set `ready` flag marks an initialized value not yet taken.
                    unsafe { b.values[idx].with_mut(|cell| (*cell).assume_init_drop()) };
                }
            }
            block = b.next.load(Ordering::Relaxed);
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
        assert!(segments.extend(&mut items).unwrap().grew);
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
