//! A thread's shortcut to its own lane: the lane, store and partition of the last plain
//! `Queue` it pushed to through its lane, kept in a thread-local.
//!
//! Without it, a push finds its lane in five dependent steps: the thread's number (a
//! thread-local), the partition (the number, reduced by the partition count), the partition's
//! store, the store's owner lane, and a check that the lane's owner is this thread. With it,
//! the push reads the thread-local, compares one key, and writes. On a 2-core AMD EPYC guest
//! that took the Q1 bench's `Queue::push` from 4.9–5.1 to 3.9 ns per push (per-chunk
//! medians; p10 4.1 → 2.4), and `push_many` of ten items from 4.1 to 3.0 ns per item (see
//! PERFORMANCE.md, run J).
//!
//! The thread-local holds raw pointers. A key is never reused (a process-wide counter hands
//! them out), and a queue only ever remembers its own stores under its key: so a thread that
//! finds its key remembered is pushing to the queue that remembered it, whose stores (and
//! their lanes, which live as long as their store) are alive as long as the caller holds the
//! queue. One entry per thread: a thread that pushes to two queues in turn takes the general
//! path on each change, as it would without the shortcut.

use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use arrayvec::ArrayVec;

use crate::raw::lane::Lane;
use crate::raw::staging::Staged;

/// One queue's key to the shortcut: unique in the process, never 0.
#[derive(Debug)]
pub(crate) struct QueueKey(u64);

/// What a thread remembered: `key` 0 when nothing.
#[derive(Clone, Copy)]
struct Remembered {
    key: u64,
    store: *const (),
    lane: *const (),
    partition: usize,
}

thread_local! {
    /// Const-initialized and without a destructor: reading it is one thread-local load.
    static LAST: Cell<Remembered> = const {
        Cell::new(Remembered {
            key: 0,
            store: ptr::null(),
            lane: ptr::null(),
            partition: 0,
        })
    };
}

/// The calling thread's own lane in one store of a queue, and that store's partition.
/// Neither `Send` nor `Sync`: only the thread that got it may write through it.
pub struct Own<'a, T> {
    store: &'a Staged<T>,
    lane: &'a Lane<T>,
    /// The partition whose store this is.
    pub(crate) partition: usize,
    _this_thread: PhantomData<*const ()>,
}

impl QueueKey {
    /// A key no other queue has had.
    pub(crate) fn new() -> Self {
        // From `std`, not the loom shim: a counter for unique numbers, which orders nothing
        // (as the thread numbers of `routing`).
        static NEXT: AtomicU64 = AtomicU64::new(1);
        // Relaxed: only uniqueness matters, which the read-modify-write gives.
        QueueKey(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The calling thread's own lane in a store of this key's queue, if it was the last
    /// thing the thread remembered.
    ///
    /// # Safety
    ///
    /// Every store remembered under this key, with its lanes, is alive for `'a`: the caller
    /// holds the queue that owns the key and the stores, and remembers only that queue's
    /// stores under it, each a `Staged<T>` of this `T`.
    #[inline(always)]
    pub(crate) unsafe fn own<'a, T>(&'a self) -> Option<Own<'a, T>> {
        let last = LAST.with(Cell::get);
        if last.key != self.0 {
            return None;
        }
        // SAFETY: the key matched, so `remember` stored these pointers for this key's queue:
        // a `Staged<T>` of it and the lane the calling thread owns in it, both alive for `'a`
        // (this function's contract).
        Some(unsafe {
            Own {
                store: &*last.store.cast::<Staged<T>>(),
                lane: &*last.lane.cast::<Lane<T>>(),
                partition: last.partition,
                _this_thread: PhantomData,
            }
        })
    }

    /// Remembers the calling thread's lane in `store` (partition `partition` of this key's
    /// queue) if thread `thread`, the calling thread, owns it; otherwise leaves the
    /// shortcut as it is.
    pub(crate) fn remember<T: Send>(&self, store: &Staged<T>, thread: usize, partition: usize) {
        if let Some(own) = Own::of(store, thread, partition) {
            LAST.with(|last| {
                last.set(Remembered {
                    key: self.0,
                    store: ptr::from_ref(own.store).cast(),
                    lane: ptr::from_ref(own.lane).cast(),
                    partition,
                });
            });
        }
    }
}

impl<'a, T: Send> Own<'a, T> {
    /// The lane that thread `thread`, the calling thread, owns in `store` (partition
    /// `partition`), if it owns it and the store is neither shared nor closed: what a
    /// thread remembers.
    pub fn of(store: &'a Staged<T>, thread: usize, partition: usize) -> Option<Self> {
        let lane = store.own_lane(thread)?;
        Some(Own {
            store,
            lane,
            partition,
            _this_thread: PhantomData,
        })
    }

    /// Appends `item` to the lane: `Ok` as for [`Staged::push`]; `Err` gives the item back
    /// untouched when the store was shared or closed since it was remembered, for the
    /// general path.
    #[inline(always)]
    pub fn push(&self, item: T) -> Result<Result<bool, T>, T> {
        // SAFETY: the lane is the one `own_lane` returned for this store to the thread that
        // made this `Own` (in `of`, or in `remember` through `of`, for `QueueKey::own`, on
        // the same thread: the thread-local is per thread), and an `Own` does not leave its
        // thread.
        unsafe { self.store.push_own(self.lane, item) }
    }

    /// Moves the items of `chunk` in order, leaving it empty; `None`, with `chunk`
    /// untouched, when the store was shared or closed since.
    #[inline(always)]
    pub fn extend_moved<const N: usize>(
        &self,
        chunk: &mut ArrayVec<T, N>,
    ) -> Option<Result<bool, Vec<T>>> {
        // SAFETY: as in `push`.
        unsafe { self.store.extend_own_moved(self.lane, chunk) }
    }

    /// Copies the items in order, as [`Staged::extend_from_slice`]; `None` when the store
    /// was shared or closed since, and nothing was written.
    #[inline(always)]
    pub fn extend_from_slice(&self, items: &[T]) -> Option<Result<bool, Vec<T>>>
    where
        T: Copy,
    {
        // SAFETY: as in `push`.
        unsafe { self.store.extend_own_slice(self.lane, items) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::raw::staging::tests::take_all;

    /// A remembered lane takes pushes and moved chunks of owned values (each moved once:
    /// Miri checks the drops), is found only under its own key, and stops taking writes
    /// once the store is shared, handing them back for the general path.
    #[test]
    fn remembered_lanes_are_found_by_key_and_refuse_once_shared() {
        let (a, b) = (QueueKey::new(), QueueKey::new());
        let store = Staged::new();
        assert!(store.push(1, "a".to_string()).is_ok());
        // SAFETY: nothing is remembered under `a` yet, and `store` outlives every use below.
        assert!(unsafe { a.own::<String>() }.is_none());
        a.remember(&store, 1, 3);
        // SAFETY: `a` remembers only `store`, alive for the rest of the test.
        let own = unsafe { a.own::<String>() }.expect("remembered");
        assert_eq!(own.partition, 3);
        // SAFETY: as above; `b` remembers nothing.
        assert!(unsafe { b.own::<String>() }.is_none());
        assert!(matches!(own.push("b".to_string()), Ok(Ok(false))));
        let mut chunk: ArrayVec<String, 4> = ["c", "d"].map(String::from).into_iter().collect();
        assert!(matches!(own.extend_moved(&mut chunk), Some(Ok(false))));
        assert!(chunk.is_empty());
        assert_eq!(take_all(&store), ["a", "b", "c", "d"]);

        // A second writer shares the store: the remembered lane hands writes back.
        assert!(store.push(2, "e".to_string()).is_ok());
        match own.push("f".to_string()) {
            Err(item) => assert_eq!(item, "f"),
            _ => panic!("a shared store's lane took a write"),
        }
        let mut chunk: ArrayVec<String, 4> = ["g"].map(String::from).into_iter().collect();
        assert!(own.extend_moved(&mut chunk).is_none());
        assert_eq!(chunk.as_slice(), ["g"]);
        assert_eq!(take_all(&store), ["e"]);
        // A thread that does not own a lane is not remembered: `b` stays empty.
        b.remember(&store, 2, 0);
        // SAFETY: as above.
        assert!(unsafe { b.own::<String>() }.is_none());
    }
}
