//! The store behind one `Queue` partition: the owner's lane in front of the shared segments.
//!
//! # Why two paths
//!
//! A push into [`Segments`] is one CAS on the partition's claim word: a locked
//! read-modify-write, the bulk of its cost even without contention. With the default routing
//! (by producer thread) most partitions are written by one thread only, so the first thread
//! that writes a partition becomes its *owner* and appends to its own [`Lane`] with plain
//! stores. As soon as a second thread writes, the partition is *shared* for good: the
//! newcomer sets `SHARED` in `mode` and from then on every writer, the owner included, claims
//! slots in the segments.
//!
//! # Order
//!
//! Items reach the processor in push order within the partition, across threads too: if push
//! `x` happens before push `y`, `x` is delivered first. The lane never receives an item pushed
//! after a shared one it could be ordered after:
//!
//! 1. A thread sets `SHARED` before its first shared push, and the owner checks `mode` before
//!    each lane write; so a lane write that happens after a shared push sees `SHARED` and goes
//!    to the segments instead.
//! 2. A take drains the segments first, then the lane, and delivers the lane's items first.
//!    Reading the segments acquires every shared item's `ready` flag, so a lane item that
//!    happened before a shared item the take sees is visible to the lane read that follows.
//!
//! # Closing for good
//!
//! `stop` must drain every accepted item and refuse every later one; the owner's path has no
//! read-modify-write to order it against the closer, so the two sides use an asymmetric
//! fence pair ([`barrier::Light::light`] / [`barrier::heavy`], after `sys_membarrier`): the
//! owner publishes its item, fences lightly, then reads `mode`; the closer sets `CLOSED`, fences
//! heavily, then drains. Either the closer's drain sees the item, or the owner sees `CLOSED`
//! and *settles*: it waits for the closer to finish (by taking the takers' lock, which the
//! closer holds from before setting `CLOSED` to the end of its drain), keeps what was drained
//! and takes the rest back, returned to the caller.

use core::{ptr, slice};

use arrayvec::ArrayVec;
use crossbeam_utils::CachePadded;

use crate::raw::barrier;
use crate::raw::lane::Lane;
use crate::raw::queue::{Closed, Pushed, Segments};
use crate::sync::{AtomicPtr, AtomicU64, Mutex, Ordering};

/// `mode`: a second thread wrote the partition; every push goes to the segments.
const SHARED: u64 = 1;
/// `mode`: the store is closed for good.
const CLOSED: u64 = 2;

/// A partition's queue store: any number of writers, one taker at a time.
pub struct Staged<T> {
    shared: Segments<T>,
    /// What every write reads, on a cache line of its own (nothing else writes it).
    hot: CachePadded<Hot<T>>,
    /// Serializes takers; holds the scratch vector the segments are drained into.
    taker: Mutex<Vec<T>>,
}

/// The read-mostly words of a [`Staged`] store.
struct Hot<T> {
    /// The owner's lane: null until the first write, then fixed for the store's life.
    owner: AtomicPtr<Lane<T>>,
    /// `SHARED` and `CLOSED` bits; each is set once and never cleared.
    mode: AtomicU64,
    /// The drain threshold (0: off): a write that brings the store from below it to it or
    /// above reports the crossing.
    drain_at: AtomicU64,
    /// The owner's side of the fence pair with `close_for_good`.
    fence: barrier::Light,
}

impl<T: Send> Default for Staged<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send> Staged<T> {
    /// An open, empty store with no owner yet.
    pub fn new() -> Self {
        Staged {
            shared: Segments::new(),
            hot: CachePadded::new(Hot {
                owner: AtomicPtr::new(ptr::null_mut()),
                mode: AtomicU64::new(0),
                drain_at: AtomicU64::new(0),
                fence: barrier::init(),
            }),
            taker: Mutex::new(Vec::new()),
        }
    }

    /// Sets the drain threshold (0: off): see [`Staged::push`].
    pub fn set_drain_threshold(&self, threshold: u64) {
        // Relaxed: a trigger; a write that misses a change leaves the drain to the periodic
        // check.
        self.hot.drain_at.store(threshold, Ordering::Relaxed);
    }

    /// Appends one item pushed by thread `thread` (a number unique to the calling thread,
    /// never 0). `Ok(true)` when this write brought the store to the drain threshold. `Err`
    /// gives the item back once the store is closed for good.
    #[inline]
    pub fn push(&self, thread: usize, item: T) -> Result<bool, T> {
        let Some(lane) = self.own_lane(thread) else {
            return self.push_slow(thread, item);
        };
        // SAFETY: `own_lane` returned the lane of the calling thread.
        unsafe { self.write_own(lane, item) }
    }

    /// [`Staged::push`] by the owner of `lane`, which it got from [`Staged::own_lane`]
    /// earlier: the owner's checks without the lookup. `None` gives the item back untouched
    /// when the store has been shared or closed since: the caller then takes the general
    /// path, [`Staged::push`].
    ///
    /// # Safety
    ///
    /// `lane` is the lane of this store that [`Staged::own_lane`] returned to the calling
    /// thread.
    #[inline(always)]
    pub(crate) unsafe fn push_own(&self, lane: &Lane<T>, item: T) -> Result<Result<bool, T>, T> {
        if !self.still_owned() {
            return Err(item);
        }
        // SAFETY: the calling thread owns `lane` (this function's contract).
        Ok(unsafe { self.write_own(lane, item) })
    }

    /// [`Staged::extend_from_slice`] by the owner of `lane`, as [`Staged::push_own`] is to
    /// [`Staged::push`]; `None` when nothing was written.
    ///
    /// # Safety
    ///
    /// As for [`Staged::push_own`].
    #[inline(always)]
    pub(crate) unsafe fn extend_own_slice(
        &self,
        lane: &Lane<T>,
        items: &[T],
    ) -> Option<Result<bool, Vec<T>>>
    where
        T: Copy,
    {
        if !self.still_owned() {
            return None;
        }
        // SAFETY: the calling thread owns `lane` (this function's contract); copying runs no
        // user code, and `T: Copy` leaves the caller's values valid.
        let (first, count) = unsafe { lane.write_slice(items) };
        Some(self.after_lane_write(lane, first, count))
    }

    /// Moves every item of `chunk` into the calling thread's own `lane`, leaving `chunk`
    /// empty; `None` (and `chunk` untouched) when the store was shared or closed since, as
    /// for [`Staged::push_own`].
    ///
    /// # Safety
    ///
    /// As for [`Staged::push_own`].
    #[inline(always)]
    pub(crate) unsafe fn extend_own_moved<const N: usize>(
        &self,
        lane: &Lane<T>,
        chunk: &mut ArrayVec<T, N>,
    ) -> Option<Result<bool, Vec<T>>> {
        if !self.still_owned() {
            return None;
        }
        let len = chunk.len();
        // SAFETY: 0 is within capacity; the values stay in the buffer, which `chunk` no
        // longer drops: from here on the lane owns them (first), so a panic cannot drop them
        // twice.
        unsafe { chunk.set_len(0) };
        // SAFETY: the first `len` values of the buffer are initialized (they were `chunk`'s),
        // and nothing else reads or writes the buffer while `items` lives.
        let items = unsafe { slice::from_raw_parts(chunk.as_ptr(), len) };
        // SAFETY: the calling thread owns `lane` (this function's contract); copying runs no
        // user code; the values were forgotten by `chunk` above.
        let (first, count) = unsafe { lane.write_slice(items) };
        Some(self.after_lane_write(lane, first, count))
    }

    /// Whether the store is neither shared nor closed: an owner that got its lane from
    /// [`Staged::own_lane`] earlier may still write to it.
    #[inline(always)]
    fn still_owned(&self) -> bool {
        // Relaxed: as in `own_lane` (the lane itself was acquired when `own_lane` returned it).
        self.hot.mode.load(Ordering::Relaxed) == 0
    }

    /// Appends `item` to the calling thread's own `lane` and checks for a close and the
    /// drain threshold: `Ok` and `Err` as for [`Staged::push`].
    ///
    /// # Safety
    ///
    /// The calling thread owns `lane`, a lane of this store.
    #[inline(always)]
    unsafe fn write_own(&self, lane: &Lane<T>, item: T) -> Result<bool, T> {
        // SAFETY: the calling thread is the lane's owner, its only writer (the contract).
        let n = unsafe { lane.write(item) };
        self.hot.fence.light();
        // Relaxed: ordered after the lane write by the fence pair with `close_for_good`.
        if self.hot.mode.load(Ordering::Relaxed) & CLOSED != 0 {
            return self.settle(lane, n, 1).map_err(the_one);
        }
        // Relaxed: see `set_drain_threshold`.
        if self.hot.drain_at.load(Ordering::Relaxed) == 0 {
            return Ok(false);
        }
        Ok(self.lane_crossed(lane, n, 1))
    }

    /// [`Staged::extend`] without a `Vec`: a lane owner writes the items straight from the
    /// iterator; a writer to the shared segments collects them first. `items` must not
    /// panic, nor push to this store: the owner's write publishes them once, after the last
    /// one.
    pub fn extend_from(
        &self,
        thread: usize,
        items: impl Iterator<Item = T>,
    ) -> Result<bool, Vec<T>> {
        if let Some(lane) = self.own_lane(thread) {
            // SAFETY: as in `push`; the iterator neither panics nor writes to this store (this
            // function's contract), so the owner's write is not interleaved with another.
            let (first, count) = unsafe { lane.write_all(items) };
            return self.after_lane_write(lane, first, count);
        }
        self.extend(thread, items.collect())
    }

    /// [`Staged::extend_from`] for a slice of `Copy` items: the owner copies it into its lane
    /// block run by block run.
    pub fn extend_from_slice(&self, thread: usize, items: &[T]) -> Result<bool, Vec<T>>
    where
        T: Copy,
    {
        if let Some(lane) = self.own_lane(thread) {
            // SAFETY: as in `push`; copying runs no user code, and `T: Copy` leaves the
            // caller's values valid.
            let (first, count) = unsafe { lane.write_slice(items) };
            return self.after_lane_write(lane, first, count);
        }
        self.extend(thread, items.to_vec())
    }

    /// Appends every item of `items` in order; `Ok` as for [`Staged::push`]. On `Err`, the
    /// items given back were not accepted; the others were (a close for good can cut a batch
    /// in two).
    pub fn extend(&self, thread: usize, items: Vec<T>) -> Result<bool, Vec<T>> {
        if let Some(lane) = self.own_lane(thread) {
            // SAFETY: as in `push`.
            let (first, count) = unsafe { lane.write_all(items.into_iter()) };
            return self.after_lane_write(lane, first, count);
        }
        if let Some(lane) = self.install(thread) {
            // SAFETY: `install` made the calling thread the lane's owner.
            let (first, count) = unsafe { lane.write_all(items.into_iter()) };
            return self.after_lane_write(lane, first, count);
        }
        let mut rest = items.into_iter();
        match self.shared.extend(&mut rest) {
            Ok(pushed) => Ok(self.crossed(pushed)),
            Err(Closed) => Err(rest.collect()),
        }
    }

    /// The lane of `thread` if it owns this store and the store is neither shared nor closed.
    #[inline]
    pub(crate) fn own_lane(&self, thread: usize) -> Option<&Lane<T>> {
        // Acquire: pairs with the AcqRel CAS in `install` that published the lane.
        let lane = self.hot.owner.load(Ordering::Acquire);
        // Relaxed: `SHARED` needs coherence only: a write that happens after a thread set it
        // reads it here (rule 1 of the module docs); `CLOSED` is checked again after the
        // write, behind the fence.
        if lane.is_null() || self.hot.mode.load(Ordering::Relaxed) != 0 {
            return None;
        }
        // SAFETY: a published lane lives as long as the store.
        let lane = unsafe { &*lane };
        (lane.thread() == thread).then_some(lane)
    }

    /// Checks for a close after the owner wrote `count` items from position `first`.
    #[inline]
    fn after_lane_write(&self, lane: &Lane<T>, first: u64, count: u64) -> Result<bool, Vec<T>> {
        self.hot.fence.light();
        // Relaxed: ordered after the lane write by the fence pair with `close_for_good`.
        if self.hot.mode.load(Ordering::Relaxed) & CLOSED != 0 {
            return self.settle(lane, first, count);
        }
        // Relaxed: see `set_drain_threshold`.
        if self.hot.drain_at.load(Ordering::Relaxed) == 0 {
            return Ok(false);
        }
        Ok(self.lane_crossed(lane, first, count))
    }

    /// Whether the owner's write of `count` items from position `first` crossed the drain
    /// threshold. The segments are empty: nothing goes there while `mode` is 0.
    #[inline]
    fn lane_crossed(&self, lane: &Lane<T>, first: u64, count: u64) -> bool {
        let after = lane.pending_after(first + count);
        self.crossed(Pushed {
            before: after.saturating_sub(count),
            after,
        })
    }

    /// Whether a write that took the store from `before` to `after` items crossed the drain
    /// threshold.
    #[inline]
    fn crossed(&self, Pushed { before, after }: Pushed) -> bool {
        // Relaxed: see `set_drain_threshold`.
        let at = self.hot.drain_at.load(Ordering::Relaxed);
        at != 0 && before < at && after >= at
    }

    /// The owner met `CLOSED` after writing items `first..first + count`: keeps the ones the
    /// final take drained and gives back the rest.
    #[cold]
    #[inline(never)]
    fn settle(&self, lane: &Lane<T>, first: u64, count: u64) -> Result<bool, Vec<T>> {
        // The closer set `CLOSED` while holding `taker`, and releases it once the final take
        // is done: taking the lock waits for it (a rare race, never a spin) and orders its
        // `mark_final` before the read below.
        drop(
            self.taker
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()),
        );
        let drained = lane
            .final_count()
            .unwrap_or(first)
            .clamp(first, first + count);
        if drained == first + count {
            return Ok(false);
        }
        let mut back = Vec::with_capacity((first + count - drained) as usize);
        // SAFETY: the caller owns the lane; the final take is finished (its lock was released), it
        // drained values below `drained` only, and no take follows a final one.
        unsafe { lane.retract(drained, &mut back) };
        Err(back)
    }

    #[cold]
    #[inline(never)]
    fn push_slow(&self, thread: usize, item: T) -> Result<bool, T> {
        if let Some(lane) = self.install(thread) {
            // SAFETY: `install` made the calling thread the lane's owner.
            let n = unsafe { lane.write(item) };
            return self.after_lane_write(lane, n, 1).map_err(the_one);
        }
        self.shared.push(item).map(|pushed| self.crossed(pushed))
    }

    /// Makes `thread` the owner if nobody is yet and the store is still open, returning its
    /// lane; otherwise marks the store shared (unless `thread` owns it already) and returns
    /// `None`: the caller writes to the segments.
    #[cold]
    fn install(&self, thread: usize) -> Option<&Lane<T>> {
        // Relaxed: see `own_lane`.
        let mode = self.hot.mode.load(Ordering::Relaxed);
        if mode == 0 {
            // Acquire: as in `own_lane`.
            let mut lane = self.hot.owner.load(Ordering::Acquire);
            if lane.is_null() {
                let fresh = Box::into_raw(Box::new(Lane::new(thread)));
                // AcqRel: Release publishes the lane to writers and takers (their Acquire
                // loads of `owner`); Acquire on failure reads the winner's lane.
                match self.hot.owner.compare_exchange(
                    ptr::null_mut(),
                    fresh,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    // SAFETY: published lanes live as long as the store.
                    Ok(_) => return Some(unsafe { &*fresh }),
                    Err(winner) => {
                        // SAFETY: `fresh` came from `Box::into_raw` and was never published.
                        drop(unsafe { Box::from_raw(fresh) });
                        lane = winner;
                    }
                }
            }
            // SAFETY: as above.
            if unsafe { &*lane }.thread() == thread {
                // `mode` was open a moment ago; the write's own checks decide the rest.
                // SAFETY: as above.
                return Some(unsafe { &*lane });
            }
        }
        if mode & SHARED == 0 {
            // Relaxed: the bit needs coherence only (rule 1 of the module docs): it is set
            // before this thread's shared push, which follows in program order.
            self.hot.mode.fetch_or(SHARED, Ordering::Relaxed);
        }
        None
    }

    /// Items in the store: exact when no push is in flight.
    pub fn len(&self) -> usize {
        self.shared.len() + self.lane().map_or(0, |lane| lane.pending() as usize)
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lane(&self) -> Option<&Lane<T>> {
        // Acquire: as in `own_lane`.
        let lane = self.hot.owner.load(Ordering::Acquire);
        // SAFETY: a published lane lives as long as the store.
        (!lane.is_null()).then(|| unsafe { &*lane })
    }

    /// Appends everything accepted so far to `out`, in push order (lane first, then the
    /// segments: see the module docs). Returns how many items were taken.
    pub fn take(&self, out: &mut Vec<T>) -> usize {
        self.take_with(out, false)
    }

    /// Takes everything, like [`Staged::take`], and closes the store: later pushes return
    /// their items. Idempotent.
    pub fn close_for_good(&self, out: &mut Vec<T>) -> usize {
        self.take_with(out, true)
    }

    fn take_with(&self, out: &mut Vec<T>, for_good: bool) -> usize {
        let mut scratch = self
            .taker
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Relaxed: only takers set `CLOSED`, serialized by `taker`.
        if self.hot.mode.load(Ordering::Relaxed) & CLOSED != 0 {
            return 0;
        }
        if for_good {
            // Relaxed: ordered before the drain below by the heavy fence.
            self.hot.mode.fetch_or(CLOSED, Ordering::Relaxed);
            barrier::heavy();
        }
        scratch.clear();
        if for_good {
            self.shared.close_for_good(&mut scratch);
        } else {
            self.shared.take(&mut scratch);
        }
        let before = out.len();
        if let Some(lane) = self.lane() {
            // SAFETY: takers are serialized by `taker`, and a lane is retracted only after
            // the final take, after which no take drains (`CLOSED` above).
            unsafe { lane.drain(out) };
            if for_good {
                lane.mark_final();
            }
        }
        out.append(&mut scratch);
        out.len() - before
    }
}

/// The item a settled single push gets back.
fn the_one<T>(mut back: Vec<T>) -> T {
    back.pop()
        .expect("settling a single push gives back exactly its item")
}

impl<T> Drop for Staged<T> {
    fn drop(&mut self) {
        // Relaxed: `&mut self` orders everything before this drop.
        let lane = self.hot.owner.load(Ordering::Relaxed);
        if !lane.is_null() {
            // SAFETY: the lane came from `Box::into_raw` in `install`, published once.
            drop(unsafe { Box::from_raw(lane) });
        }
    }
}

#[cfg(all(test, not(loom)))]
pub(super) mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;

    /// Items per test thread: small under Miri, which runs ~1000× slower.
    const N: usize = if cfg!(miri) { 30 } else { 20_000 };

    /// Everything a take moves out of `store` (the shortcut's tests use it too).
    pub(in crate::raw) fn take_all<T: Send>(store: &Staged<T>) -> Vec<T> {
        let mut out = Vec::new();
        store.take(&mut out);
        out
    }

    #[test]
    fn the_first_writer_owns_the_lane_and_keeps_order_across_blocks() {
        let store = Staged::new();
        let n = crate::raw::block_capacity::<usize>() * 3 + 1;
        for i in 0..n {
            store.push(1, i).expect("open");
        }
        assert!(store.lane().is_some_and(|lane| lane.thread() == 1));
        assert_eq!(store.len(), n);
        assert_eq!(take_all(&store), (0..n).collect::<Vec<_>>());
        assert!(store.is_empty());
        store.extend(1, vec![7, 8]).expect("open");
        store.push(1, 9).expect("open");
        assert_eq!(take_all(&store), vec![7, 8, 9]);
        assert!(take_all(&store).is_empty());
    }

    /// The end of an `extend` test on an owned lane (thread 1 owns it, nothing buffered):
    /// thread 2's batch shares the store and is collected beside the owner's, and after a
    /// close for good a batch comes back whole.
    fn a_second_writer_then_a_close(
        store: &Staged<usize>,
        extend: impl Fn(&Staged<usize>, usize, &[usize]) -> Result<bool, Vec<usize>>,
    ) {
        extend(store, 2, &[100, 101]).expect("open");
        extend(store, 1, &[102]).expect("open");
        let mut out = take_all(store);
        out.sort_unstable();
        assert_eq!(out, vec![100, 101, 102]);
        let mut closed = Vec::new();
        store.close_for_good(&mut closed);
        assert_eq!(extend(store, 1, &[7, 8]).map(|_| ()), Err(vec![7, 8]));
    }

    #[test]
    fn extend_from_writes_runs_across_blocks_on_the_lane_and_collects_when_shared() {
        let store = Staged::new();
        let cap = crate::raw::block_capacity::<usize>();
        // The first call installs the lane through `extend`; the next ones write from the
        // iterator, each crossing a block boundary.
        store.extend_from(1, 0..3).expect("open");
        for start in (3..4 * cap).step_by(cap - 1) {
            store
                .extend_from(1, start..(start + cap - 1).min(4 * cap))
                .expect("open");
        }
        assert_eq!(take_all(&store), (0..4 * cap).collect::<Vec<_>>());
        a_second_writer_then_a_close(&store, |store, thread, items| {
            store.extend_from(thread, items.iter().copied())
        });
    }

    #[test]
    fn extend_from_slice_copies_runs_across_blocks_and_collects_when_shared() {
        let store = Staged::new();
        let cap = crate::raw::block_capacity::<usize>();
        let items: Vec<usize> = (0..4 * cap + 3).collect();
        // The first call installs the lane; the next ones copy slices that start and end
        // mid-block and span whole blocks.
        store.extend_from_slice(1, &items[..1]).expect("open");
        store
            .extend_from_slice(1, &items[1..cap + 1])
            .expect("open");
        store.extend_from_slice(1, &items[cap + 1..]).expect("open");
        store.extend_from_slice(1, &[]).expect("open");
        assert_eq!(store.len(), items.len());
        assert_eq!(take_all(&store), items);
        a_second_writer_then_a_close(&store, Staged::extend_from_slice);
    }

    #[test]
    fn a_second_writer_shares_the_store_and_order_follows_happens_before() {
        let store = Staged::new();
        store.push(1, 0).expect("open");
        store.push(1, 1).expect("open");
        store.push(2, 2).expect("open");
        store.push(1, 3).expect("open");
        store.extend(1, vec![4, 5]).expect("open");
        assert_eq!(store.len(), 6);
        assert_eq!(take_all(&store), vec![0, 1, 2, 3, 4, 5]);
        store.push(1, 6).expect("open");
        assert_eq!(take_all(&store), vec![6]);
    }

    #[test]
    fn the_write_that_reaches_the_threshold_reports_it_on_both_paths() {
        let store = Staged::new();
        store.set_drain_threshold(3);
        assert_eq!(store.push(1, 0), Ok(false));
        assert_eq!(store.push(1, 1), Ok(false));
        assert_eq!(store.push(1, 2), Ok(true));
        assert_eq!(store.push(1, 3), Ok(false));
        take_all(&store);
        assert_eq!(store.extend(1, vec![0, 1, 2, 3]), Ok(true));
        take_all(&store);
        assert_eq!(
            store.push(2, 0),
            Ok(false),
            "the segments count for themselves"
        );
        assert_eq!(store.extend(1, vec![1, 2]), Ok(true));
        assert_eq!(store.push(2, 3), Ok(false));
        store.set_drain_threshold(0);
        take_all(&store);
        assert_eq!(store.extend(2, vec![0, 1, 2]), Ok(false), "off");
    }

    #[test]
    fn close_for_good_drains_then_refuses_everyone() {
        let store = Staged::new();
        store.push(1, 1).expect("open");
        let mut out = Vec::new();
        assert_eq!(store.close_for_good(&mut out), 1);
        assert_eq!(out, vec![1]);
        assert_eq!(store.push(1, 2).map(|_| ()), Err(2));
        assert_eq!(store.push(2, 3).map(|_| ()), Err(3));
        assert_eq!(store.extend(1, vec![4, 5]).map(|_| ()), Err(vec![4, 5]));
        assert_eq!(store.close_for_good(&mut out), 0);
        assert_eq!(store.take(&mut out), 0);
        assert_eq!((out.len(), store.len()), (1, 0));
    }

    #[test]
    fn a_store_closed_before_any_write_refuses_the_would_be_owner() {
        let store = Staged::new();
        let mut out: Vec<usize> = Vec::new();
        store.close_for_good(&mut out);
        assert_eq!(store.push(1, 1).map(|_| ()), Err(1));
        assert_eq!(store.extend(2, vec![2]).map(|_| ()), Err(vec![2]));
    }

    /// Owner and sharer racing takes and a final close: every accepted item is taken once,
    /// every refused one comes back, and each thread's items stay in order.
    #[test]
    fn racing_writers_takes_and_close_lose_nothing() {
        let store = Staged::new();
        let mut taken = Vec::new();
        let mut refused = Vec::new();
        std::thread::scope(|s| {
            let writers: Vec<_> = (1..=2)
                .map(|t| {
                    let store = &store;
                    s.spawn(move || {
                        let mut back = Vec::new();
                        for i in 0..N {
                            let item = t * N * 10 + i;
                            if i % 7 == 0 {
                                if let Err(items) = store.extend(t, vec![item]) {
                                    back.extend(items);
                                }
                            } else if let Err(item) = store.push(t, item) {
                                back.push(item);
                            }
                        }
                        back
                    })
                })
                .collect();
            for _ in 0..(if cfg!(miri) { 2 } else { 30 }) {
                store.take(&mut taken);
                std::thread::yield_now();
            }
            store.close_for_good(&mut taken);
            for writer in writers {
                refused.extend(writer.join().expect("writer"));
            }
        });
        assert_eq!(taken.len() + refused.len(), 2 * N);
        let mut all: Vec<usize> = taken.iter().chain(&refused).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 2 * N, "an item was taken twice or lost");
        for t in 1..=2 {
            let mine: Vec<usize> = taken
                .iter()
                .copied()
                .filter(|v| v / (N * 10) == t)
                .collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "thread {t} out of order"
            );
        }
    }

    #[test]
    fn drop_releases_untaken_values_in_lane_and_segments() {
        static DROPS: StdAtomicUsize = StdAtomicUsize::new(0);
        #[derive(Debug)]
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let store = Staged::new();
        let cap = crate::raw::block_capacity::<Counted>();
        for _ in 0..cap + 2 {
            store.push(1, Counted).map_err(drop).expect("open");
        }
        let mut out = Vec::new();
        store.take(&mut out);
        for _ in 0..cap + 1 {
            store.push(1, Counted).map_err(drop).expect("open");
        }
        store.push(2, Counted).map_err(drop).expect("open");
        drop(out);
        assert_eq!(DROPS.load(std::sync::atomic::Ordering::Relaxed), cap + 2);
        drop(store);
        assert_eq!(
            DROPS.load(std::sync::atomic::Ordering::Relaxed),
            2 * cap + 4
        );
    }
}
