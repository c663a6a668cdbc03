//! An owner's lane: the staging area of the one thread that owns a `Queue` partition.
//!
//! A lane is a single-producer, single-consumer chain of blocks. Its owner appends with a
//! plain store of the value and a Release store of `written` (no read-modify-write, no
//! fence); the partition's taker moves `taken..written` out at every tick with plain reads,
//! and recycles each block once it has read past it. Only [`super::staging`] uses it: that
//! module decides who owns a lane and how a lane and the shared segments are ordered.
//!
//! # Protocol
//!
//! * **Owner** (one thread; the caller of the `unsafe` write methods vouches for it): writes
//!   value `n` into the block at `tail`, then stores `written = n + 1` (Release). At a block
//!   boundary it links a fresh block to `tail.next` before writing into it, so a reader that
//!   sees `written > n` also sees the link.
//! * **Taker** (one at a time): loads `written` (Acquire), reads `taken..written` block by block
//!   from `head`, then stores `taken` (Release). It frees a block when it moves past it: the
//!   owner had linked the next block, so it never touches the old one again.
//! * **Settling after the final take** (owner, once the taker has published `final_count`):
//!   the owner takes back its own values past `final_count` with [`Lane::retract`].

use core::mem::MaybeUninit;
use core::ptr;

use crossbeam_utils::CachePadded;

use super::cache_hint;
use crate::sync::{AtomicPtr, AtomicU64, Mutex, Ordering, UnsafeCell};

/// `final_count` before the final take has drained the lane.
const NOT_DRAINED: u64 = u64::MAX;

/// Blocks kept for reuse per lane; more than this are freed.
const POOL_LIMIT: usize = 16;

/// A run of [`LaneBlock::CAP`] value cells.
struct LaneBlock<T> {
    /// Position of the block in the lane: it holds values `index * CAP ..`.
    index: u64,
    /// The next block, linked by the owner before it writes into it.
    next: AtomicPtr<LaneBlock<T>>,
    values: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

impl<T> LaneBlock<T> {
    const CAP: usize = super::block_capacity::<T>();
    const SHIFT: u32 = Self::CAP.trailing_zeros();

    fn new(index: u64) -> Box<Self> {
        Box::new(LaneBlock {
            index,
            next: AtomicPtr::new(ptr::null_mut()),
            values: (0..Self::CAP)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
        })
    }
}

/// One owner thread's staging chain for one partition.
///
/// The owner's words and the taker's are on cache lines of their own, and the pool on a
/// third: a push reads `thread`, `written` and `tail`, and a taker stores `head` once per
/// block it reads past and locks the pool once per block it recycles, so on one line each
/// of those stores took the line from the owner in the middle of its pushes (L1's loop with
/// ticks every 10 ms, timed push by push: 0.1% of the pushes that link no block took about
/// 100 ns, against 28 without ticks; PERFORMANCE.md, "The lane's words on lines of their
/// own").
pub(crate) struct Lane<T> {
    /// What the owner reads and writes on every push.
    own: CachePadded<Own<T>>,
    /// What the taker reads and writes on every take.
    take: CachePadded<Take<T>>,
    /// Drained blocks, from the taker back to the owner. Boxed: blocks are linked as raw
    /// `Box` pointers; moving them out of their allocation would cost one per reuse.
    #[allow(clippy::vec_box)]
    pool: CachePadded<Mutex<Vec<Box<LaneBlock<T>>>>>,
}

/// The owner's words of a [`Lane`].
struct Own<T> {
    /// The owner's thread number (see `routing::this_thread`): never 0.
    thread: usize,
    /// Values written by the owner, ever: the owner's Release store publishes each value.
    written: AtomicU64,
    /// The owner's block: where value `written` goes (owner only).
    tail: UnsafeCell<*mut LaneBlock<T>>,
}

/// The taker's words of a [`Lane`].
struct Take<T> {
    /// Values moved out by takers, ever.
    taken: AtomicU64,
    /// How many values the final take drained, once it has; [`NOT_DRAINED`] before.
    final_count: AtomicU64,
    /// The taker's block: the one holding value `taken`, or the one before it when `taken`
    /// starts a block that may not be linked yet (taker only, and the owner once settled).
    head: UnsafeCell<*mut LaneBlock<T>>,
}

// SAFETY: values of `T` move from the owner thread to the taker, so `T: Send` is required and
// sufficient; shared fields are atomics or a mutex, and `tail`, `head` and the value cells
// are each touched by one side only under the protocol of the module docs.
unsafe impl<T: Send> Send for Lane<T> {}
// SAFETY: as for `Send`: no `&T` is ever handed out; the `unsafe` methods state which side
// may call them.
unsafe impl<T: Send> Sync for Lane<T> {}

impl<T> Lane<T> {
    /// An empty lane owned by thread `thread`.
    pub(crate) fn new(thread: usize) -> Self {
        let first = Box::into_raw(LaneBlock::new(0));
        Lane {
            own: CachePadded::new(Own {
                thread,
                written: AtomicU64::new(0),
                tail: UnsafeCell::new(first),
            }),
            take: CachePadded::new(Take {
                taken: AtomicU64::new(0),
                final_count: AtomicU64::new(NOT_DRAINED),
                head: UnsafeCell::new(first),
            }),
            pool: CachePadded::new(Mutex::new(Vec::new())),
        }
    }

    /// The owner's thread number.
    #[inline]
    pub(crate) fn thread(&self) -> usize {
        self.own.thread
    }

    /// Values written and not yet taken: exact when neither side is mid-operation.
    #[inline]
    pub(crate) fn pending(&self) -> u64 {
        // Relaxed (both): a count for `len` and the drain trigger; it promises nothing about
        // operations in flight.
        let written = self.own.written.load(Ordering::Relaxed);
        let taken = self.take.taken.load(Ordering::Relaxed);
        written.saturating_sub(taken)
    }

    /// Values pending once the owner has written `written` values: exact for the owner.
    #[inline]
    pub(crate) fn pending_after(&self, written: u64) -> u64 {
        // Relaxed: a count for the drain trigger, like `pending`.
        written.saturating_sub(self.take.taken.load(Ordering::Relaxed))
    }

    /// Appends one value; returns its position in the lane.
    ///
    /// # Safety
    ///
    /// Only the owner thread calls the write methods, never two at once, and never after
    /// [`Lane::retract`].
    // Always inlined, as every step of `Queue::push` above it: with `#[inline]` alone, LLVM
    // kept it out of line in a user's crate (a push loop in a closure), where the call and
    // its saved registers took one push from 1.57 to 2.26 ns per item.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, item: T) -> u64 {
        // Relaxed: the owner's own counter; only this thread stores it.
        let n = self.own.written.load(Ordering::Relaxed);
        // SAFETY: the caller is the owner (this function's contract), the only user of
        // `tail` and of the cell of value `n`, which no taker reads before `written > n`.
        // `idx < CAP`, the length of `values`.
        unsafe {
            let block = self.block_for(n);
            let idx = (n as usize) & (LaneBlock::<T>::CAP - 1);
            let values = &(*block).values;
            values
                .get_unchecked(idx)
                .with_mut(|cell| (*cell).write(item));
        }
        // Release: pairs with the taker's Acquire load of `written`, publishing the value
        // (and any block linked for it).
        self.own.written.store(n + 1, Ordering::Release);
        n
    }

    /// Appends every item, in order, with one publication; returns the position of the first
    /// and how many were written (counted here, so an iterator's length hint is never
    /// trusted).
    ///
    /// # Safety
    ///
    /// As for [`Lane::write`], and `items` does not panic: the values written before a panic
    /// would stay unpublished, and the owner's block pointer could be past them.
    pub(crate) unsafe fn write_all(&self, items: impl Iterator<Item = T>) -> (u64, u64) {
        // Relaxed: as in `write`.
        let first = self.own.written.load(Ordering::Relaxed);
        let mut n = first;
        // SAFETY: the owner alone uses `tail` (the caller's contract); kept in a local across
        // the loop, and updated with it when a block is linked.
        let mut block = unsafe { self.own.tail.with_mut(|tail| *tail) };
        for item in items {
            let idx = (n as usize) & (LaneBlock::<T>::CAP - 1);
            if idx == 0 {
                // SAFETY: as above; `block` is the owner's current block.
                block = unsafe { self.link_block(block, n >> LaneBlock::<T>::SHIFT) };
            }
            // SAFETY: as in `write`: the owner alone writes values at and past `written`;
            // `idx < CAP`, the length of `values`.
            unsafe {
                let values = &(*block).values;
                values
                    .get_unchecked(idx)
                    .with_mut(|cell| (*cell).write(item));
            }
            n += 1;
        }
        // Release: as in `write`, for all of them at once.
        self.own.written.store(n, Ordering::Release);
        (first, n - first)
    }

    /// [`Lane::write_all`] for the values of a slice, moved bitwise: one tight copy loop per
    /// block run, instead of a block-boundary test and a reload of the block's cell pointer
    /// per value.
    ///
    /// # Safety
    ///
    /// As for [`Lane::write`] (copying runs no user code and cannot panic), and the lane
    /// owns the values once they are written: unless `T` is `Copy`, the caller neither uses
    /// nor drops the slice's values after the call.
    pub(crate) unsafe fn write_slice(&self, items: &[T]) -> (u64, u64) {
        // Relaxed: as in `write`.
        let first = self.own.written.load(Ordering::Relaxed);
        let mut n = first;
        // SAFETY: the owner alone uses `tail` (the caller's contract), as in `write_all`.
        let mut block = unsafe { self.own.tail.with_mut(|tail| *tail) };
        let mut rest = items;
        while !rest.is_empty() {
            let idx = (n as usize) & (LaneBlock::<T>::CAP - 1);
            if idx == 0 {
                // SAFETY: as in `write_all`.
                block = unsafe { self.link_block(block, n >> LaneBlock::<T>::SHIFT) };
            }
            let run = (LaneBlock::<T>::CAP - idx).min(rest.len());
            let (now, later) = rest.split_at(run);
            // SAFETY: `block` is the owner's current block, alive until the taker has read
            // past it; `idx + run <= CAP`, the length of `values`.
            let cells = unsafe {
                let values = &(*block).values;
                values.get_unchecked(idx..idx + run)
            };
            for (cell, item) in cells.iter().zip(now) {
                // SAFETY: `item` is a valid value of the slice; the lane takes it over (a
                // bitwise move: the caller forgets the original, this function's contract).
                let item = unsafe { ptr::read(item) };
                // Volatile, so that the compiler keeps one store per value instead of calling
                // `memcpy`: for the short runs of a batch (ten values in the Q3 bench), the
                // call and its 64-byte loads, which cannot forward from the caller's narrower
                // stores of the items, cost more than the copy (2.23 ns per item against
                // 2.02; see PERFORMANCE.md).
                // SAFETY: as in `write`: the owner alone writes values at and past `written`;
                // `cell` comes from a live `UnsafeCell`, valid and aligned for a write.
                cell.with_mut(|cell| unsafe { ptr::write_volatile(cell, MaybeUninit::new(item)) });
            }
            n += run as u64;
            rest = later;
        }
        // Release: as in `write`, for all of them at once.
        self.own.written.store(n, Ordering::Release);
        (first, n - first)
    }

    /// The owner's block for value `n`, linking a fresh one at a block boundary.
    ///
    /// # Safety
    ///
    /// Only the owner calls it, with `n` its next value.
    #[inline(always)]
    unsafe fn block_for(&self, n: u64) -> *mut LaneBlock<T> {
        // SAFETY: the owner alone uses `tail` (the caller's contract).
        let tail = unsafe { self.own.tail.with_mut(|tail| *tail) };
        if n & (LaneBlock::<T>::CAP as u64 - 1) == 0 {
            // SAFETY: as above.
            return unsafe { self.link_block(tail, n >> LaneBlock::<T>::SHIFT) };
        }
        tail
    }

    /// Links a fresh block `index` after `tail` and makes it the owner's block; for index 0,
    /// returns `tail`, the lane's first block, made with the lane. The writers call it at
    /// every block boundary, value 0 included: one test of the value's offset in its block
    /// on their path instead of two.
    ///
    /// # Safety
    ///
    /// Only the owner calls it, with `tail` its current block.
    #[cold]
    unsafe fn link_block(&self, tail: *mut LaneBlock<T>, index: u64) -> *mut LaneBlock<T> {
        if index == 0 {
            return tail;
        }
        let recycled = self.pool.lock().ok().and_then(|mut pool| pool.pop());
        let mut fresh = recycled.unwrap_or_else(|| LaneBlock::new(index));
        fresh.index = index;
        let fresh = Box::into_raw(fresh);
        // SAFETY: `tail` is the owner's block, alive until the taker has read past it, which
        // needs `written` beyond this block, not yet published.
        let tail_block = unsafe { &*tail };
        // Relaxed: published to the taker by the owner's next Release store of `written`,
        // which counts a value in the fresh block.
        tail_block.next.store(fresh, Ordering::Relaxed);
        // SAFETY: the owner alone uses `tail`.
        unsafe { self.own.tail.with_mut(|tail| *tail = fresh) };
        fresh
    }

    /// Moves every published value not taken yet into `out`, in order; returns how many.
    ///
    /// # Safety
    ///
    /// One taker at a time (the caller serializes takers), never after [`Lane::retract`].
    pub(crate) unsafe fn drain(&self, out: &mut Vec<T>) -> u64 {
        // Acquire: pairs with the owner's Release store of `written`: every value below it,
        // and every block link it needs, is visible.
        let end = self.own.written.load(Ordering::Acquire);
        // Relaxed: the takers' own counter, ordered between takers by their lock.
        let start = self.take.taken.load(Ordering::Relaxed);
        out.reserve((end - start) as usize);
        // SAFETY: takers alone use `head` (the caller's contract).
        let mut block = unsafe { self.take.head.with_mut(|head| *head) };
        // Block by block: one run of values per block, moved out without a per-value
        // capacity check or block test (`extend` from a slice iterator knows its length).
        let mut n = start;
        while n < end {
            let idx = (n as usize) & (LaneBlock::<T>::CAP - 1);
            if idx == 0 && n != 0 {
                // SAFETY: `block` is the taker's head block, alive (only takers free blocks).
                let done = unsafe { &*block };
                if done.index != n >> LaneBlock::<T>::SHIFT {
                    // Relaxed: the link was published with `written` (Acquire above).
                    let next = done.next.load(Ordering::Relaxed);
                    // SAFETY: the owner linked `next` before writing value `n`, so it never
                    // touches `done` again; every value of `done` was read; it came from
                    // `Box::into_raw`.
                    self.recycle(unsafe { Box::from_raw(block) });
                    block = next;
                }
            }
            let run = (LaneBlock::<T>::CAP - idx).min((end - n) as usize);
            // SAFETY: `block` is alive (only takers free blocks) and holds values `n..n + run`
            // (`idx + run <= CAP`).
            let cells = unsafe { &(&(*block).values)[idx..idx + run] };
            out.extend(cells.iter().map(|cell| {
                // SAFETY: every value of the run was written and published (`n + run <=
                // end`), and is read once: `taken` passes it below.
                unsafe { cell.with_mut(|value| (*value).assume_init_read()) }
            }));
            n += run as u64;
        }
        // SAFETY: as above.
        unsafe { self.take.head.with_mut(|head| *head = block) };
        // Relaxed: the takers' own counter (their lock orders it between them, and before a
        // settling owner); `pending` only needs a value.
        self.take.taken.store(end, Ordering::Relaxed);
        end - start
    }

    /// Records that the final take drained the lane up to `taken`.
    pub(crate) fn mark_final(&self) {
        // Relaxed: the takers' own counter.
        let taken = self.take.taken.load(Ordering::Relaxed);
        // Relaxed: published by the caller's unlock of the takers' lock.
        self.take.final_count.store(taken, Ordering::Relaxed);
    }

    /// How many values the final take drained, or `None` if it never saw this lane.
    pub(crate) fn final_count(&self) -> Option<u64> {
        // Relaxed: read after the caller took the takers' lock, which the final take held.
        match self.take.final_count.load(Ordering::Relaxed) {
            NOT_DRAINED => None,
            n => Some(n),
        }
    }

    /// Takes back values `from..written` into `out`, in order; the lane ends at `from`.
    ///
    /// # Safety
    ///
    /// Only the owner calls it, after the final take has finished with this lane (or when no
    /// taker can ever see it), with `from` at or past every value a taker drained.
    pub(crate) unsafe fn retract(&self, from: u64, out: &mut Vec<T>) {
        // Relaxed: the owner's own counter.
        let end = self.own.written.load(Ordering::Relaxed);
        // SAFETY: no taker uses `head` any more (the caller's contract).
        let mut block = unsafe { self.take.head.with_mut(|head| *head) };
        for n in from..end {
            let index = n >> LaneBlock::<T>::SHIFT;
            // SAFETY: blocks from `head` on are alive (only takers free blocks, and they are
            // done); the owner linked every block up to the one of value `end - 1`.
            while unsafe { (*block).index } != index {
                // SAFETY: as above; Relaxed: the owner's own link.
                block = unsafe { (*block).next.load(Ordering::Relaxed) };
            }
            let idx = (n as usize) & (LaneBlock::<T>::CAP - 1);
            // SAFETY: value `n` was written by this owner and not drained (`n >= from`).
            out.push(unsafe { (*block).values[idx].with_mut(|cell| (*cell).assume_init_read()) });
        }
        // Relaxed: the owner's own counter; no taker reads it any more.
        self.own.written.store(from, Ordering::Relaxed);
    }

    /// Keeps a drained block for reuse.
    ///
    /// A kept block goes back to the owner, whose next writes fill it again: its lines are
    /// demoted out of the taker's caches first, so that each of those writes takes its line
    /// from the shared cache instead of from the taker's core (on the Q1 loop, 2.3–2.6 to
    /// 1.7–1.9 ns per push; on Q3's `push_slice` loop, 2.2–2.3 to 1.0–1.2 ns per item:
    /// PERFORMANCE.md, "Blocks demoted on their way back"). A freed block's memory goes to
    /// the allocator, whose next user is unknown, so it is left where it is.
    fn recycle(&self, block: Box<LaneBlock<T>>) {
        // Relaxed: the block is private to the taker; the owner's Mutex acquire publishes it.
        block.next.store(ptr::null_mut(), Ordering::Relaxed);
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() < POOL_LIMIT {
                cache_hint::demote(block.values.as_ptr(), block.values.len());
                pool.push(block);
            }
        }
    }
}

impl<T> Drop for Lane<T> {
    fn drop(&mut self) {
        // `&mut self`: neither side is left. Relaxed (all): `&mut` orders everything before.
        let end = self.own.written.load(Ordering::Relaxed);
        let start = self.take.taken.load(Ordering::Relaxed);
        // SAFETY: `&mut self`: nobody else uses `head`.
        let mut block = unsafe { self.take.head.with_mut(|head| *head) };
        let mut n = start;
        while !block.is_null() {
            // SAFETY: the chain from `head` holds every live block, each from `Box::into_raw`
            // and linked once.
            let current = unsafe { Box::from_raw(block) };
            let block_end = (current.index + 1) << LaneBlock::<T>::SHIFT;
            // `n` starts in the head block, or just past it.
            while n < end && n < block_end {
                let idx = (n as usize) & (LaneBlock::<T>::CAP - 1);
                // SAFETY: values `taken..written` are initialized and not moved out.
                unsafe { current.values[idx].with_mut(|cell| (*cell).assume_init_drop()) };
                n += 1;
            }
            block = current.next.load(Ordering::Relaxed);
        }
    }
}
