//! Loom models of the lock-free segmented store behind a `Queue` partition
//! (`src/raw/queue.rs`, exposed under `--cfg loom` as `tidefall::loom_api::Segments`).
//!
//! Run with (release: loom is slow in debug):
//!
//! ```text
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --test 'loom*'
//! ```
//!
//! Under loom a block holds 2 slots, so a third item crosses a block boundary.
//!
//! Every model checks real outcomes, not just the absence of a crash:
//!
//! * the items drained (across all takes, in take order) are exactly the items pushed, each
//!   once, and each writer's items come out in the order it pushed them;
//! * every item is dropped exactly once (an [`Item`] records its drops in a [`Ledger`]), after
//!   the drained items and the store itself are dropped;
//! * no block leaks or is freed twice: a counting global allocator follows the allocation of
//!   each block's slot array (see [`BLOCKS_LIVE`]) and the count must be back to zero once
//!   loom has finished every execution. Loom itself reports a leaked `loom::sync::Arc`: the
//!   block pool is shared with the epoch's deferred functions through one, so a retired block
//!   whose deferred function never ran is reported too;
//! * slot reads and writes go through `loom::cell::UnsafeCell`, so loom reports a taker that
//!   reads a slot not yet published by its writer.
#![cfg(loom)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::Mutex as StdMutex;
use std::time::Instant;

use loom::sync::Arc;
use loom::thread;
use tidefall::loom_api::Segments;

// ---------------------------------------------------------------------------------------------
// Block accounting through the global allocator.
// ---------------------------------------------------------------------------------------------

/// Slots per block under loom (`Block::CAP`).
const CAP: usize = 2;

/// The layout of one block's slot array, `Box<[loom::cell::UnsafeCell<MaybeUninit<Item>>]>`
/// of `CAP` slots: one such allocation per block (the tombstone has no slots).
fn block_slots_layout() -> Layout {
    Layout::array::<loom::cell::UnsafeCell<MaybeUninit<Item>>>(CAP).expect("small layout")
}

thread_local! {
    /// Block slot arrays allocated minus freed on this OS thread. Loom runs all the threads
    /// of a model as coroutines on the test's OS thread, so this counts exactly one model even
    /// when the test harness runs several tests at once.
    static BLOCKS_LIVE: Cell<isize> = const { Cell::new(0) };
    /// Block slot arrays ever allocated on this OS thread (to show the accounting sees them).
    static BLOCKS_MADE: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting the allocations that have a block's slot-array layout.
struct CountingAlloc;

impl CountingAlloc {
    fn note(layout: Layout, delta: isize) {
        if layout == block_slots_layout() {
            // `try_with`: the allocator may run while thread locals are being torn down.
            let _ = BLOCKS_LIVE.try_with(|live| live.set(live.get() + delta));
            if delta > 0 {
                let _ = BLOCKS_MADE.try_with(|made| made.set(made.get() + 1));
            }
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping allocates nothing.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Self::note(layout, 1);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Self::note(layout, 1);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::note(layout, -1);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            Self::note(layout, -1);
            // `new_size` with the old alignment is a valid layout: the caller guarantees it.
            if let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) {
                Self::note(new_layout, 1);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

// ---------------------------------------------------------------------------------------------
// Items that record their drops.
// ---------------------------------------------------------------------------------------------

/// Drop counts per item id (below 64; writer `w`'s `s`-th item is `w * 10 + s`), for one
/// execution of a model. Plain `std` (not loom) on purpose:
/// it observes the model without adding scheduling points, and loom runs one thread at a time.
struct Ledger {
    drops: StdMutex<Vec<u8>>,
}

impl Ledger {
    fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Ledger {
            drops: StdMutex::new(vec![0; 64]),
        })
    }

    /// Asserts that exactly the items `ids` were dropped, each exactly once.
    fn assert_dropped_once(&self, ids: &[u32]) {
        let drops = self.drops.lock().expect("ledger lock");
        for (i, &n) in drops.iter().enumerate() {
            let expected = u8::from(ids.contains(&(i as u32)));
            assert_eq!(
                n, expected,
                "item {i} dropped {n} times, expected {expected} (pushed: {ids:?})"
            );
        }
    }
}

/// A queue item that records its drop in a [`Ledger`]. Over-aligned and padded so that no
/// `Vec<Item>` buffer has the layout of a block's slot array (see [`block_slots_layout`]).
#[repr(align(64))]
struct Item {
    id: u32,
    ledger: std::sync::Arc<Ledger>,
    _pad: [u8; 160],
}

impl Item {
    fn new(id: u32, ledger: &std::sync::Arc<Ledger>) -> Self {
        Item {
            id,
            ledger: std::sync::Arc::clone(ledger),
            _pad: [0; 160],
        }
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        self.ledger.drops.lock().expect("ledger lock")[self.id as usize] += 1;
    }
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Item({})", self.id)
    }
}

// ---------------------------------------------------------------------------------------------
// Harness.
// ---------------------------------------------------------------------------------------------

/// Runs `f` under loom with the given preemption bound, then checks that every block
/// allocated over all executions was freed exactly once.
fn model<F>(preemption_bound: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    // The accounting relies on no `Vec<Item>` sharing the slot arrays' layout.
    assert_ne!(
        block_slots_layout().size() % std::mem::size_of::<Item>(),
        0,
        "a Vec<Item> buffer could be mistaken for a block"
    );
    BLOCKS_LIVE.with(|live| live.set(0));
    BLOCKS_MADE.with(|made| made.set(0));
    let start = Instant::now();
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(
        std::env::var("TIDEFALL_LOOM_BOUND")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(preemption_bound),
    );
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&runs);
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        register_quietly();
        f()
    });
    let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
    let made = BLOCKS_MADE.with(Cell::get);
    let live = BLOCKS_LIVE.with(Cell::get);
    eprintln!(
        "model done in {:.2?}: {runs} executions, {made} blocks allocated",
        start.elapsed()
    );
    assert!(made > 0, "the block accounting saw no block at all");
    assert_eq!(
        live, 0,
        "blocks allocated minus blocks freed over all executions: {live} (leak if > 0, double \
         free if < 0)"
    );
}

/// Checks the drained output: `outs` are the outputs of successive takes, in the order the
/// takes ran; `writers[w]` are the ids writer `w` pushed successfully, in push order. Every
/// pushed id must appear exactly once, nothing else may appear, and each writer's ids must
/// appear in push order.
fn check_drained(outs: &[&[Item]], writers: &[&[u32]]) {
    let drained: Vec<u32> = outs
        .iter()
        .flat_map(|out| out.iter().map(|i| i.id))
        .collect();
    let mut pushed: Vec<u32> = writers.iter().flat_map(|w| w.iter().copied()).collect();
    let mut sorted = drained.clone();
    sorted.sort_unstable();
    pushed.sort_unstable();
    assert_eq!(
        sorted, pushed,
        "drained {drained:?} is not exactly the pushed items (takes: {outs:?})"
    );
    for w in writers {
        let order: Vec<u32> = drained.iter().copied().filter(|i| w.contains(i)).collect();
        assert_eq!(
            &order[..],
            *w,
            "a writer's items came out of order (drained {drained:?}, takes: {outs:?})"
        );
    }
}

/// Takes once into a fresh vector, checking the returned count.
fn take(seg: &Segments<Item>) -> Vec<Item> {
    let mut out = Vec::new();
    let n = seg.take(&mut out);
    assert_eq!(n, out.len(), "take's count differs from what it appended");
    out
}

/// Closes for good into a fresh vector, checking the returned count.
fn close(seg: &Segments<Item>) -> Vec<Item> {
    let mut out = Vec::new();
    let n = seg.close_for_good(&mut out);
    assert_eq!(
        n,
        out.len(),
        "close_for_good's count differs from what it appended"
    );
    out
}

/// Spawns a writer that pushes `ids` in order, each expected to succeed.
fn spawn_writer(
    seg: &Arc<Segments<Item>>,
    ledger: &std::sync::Arc<Ledger>,
    ids: &'static [u32],
) -> thread::JoinHandle<()> {
    let seg = Arc::clone(seg);
    let ledger = std::sync::Arc::clone(ledger);
    thread::spawn(move || {
        register_quietly();
        for &i in ids {
            if let Err(item) = seg.push(Item::new(i, &ledger)) {
                panic!("push of {item:?} failed on an open store");
            }
        }
    })
}

/// Registers the calling loom thread with crossbeam-epoch's default collector (its first
/// `pin`, which also runs a collection) without exploring interleavings, then turns
/// exploration back on. Every model thread calls it first.
///
/// Why: a thread's registration and first collection are a few dozen atomic operations inside
/// crossbeam-epoch, and exploring them against each other multiplies a model's executions by
/// about twenty per thread without touching the queue's protocol (two threads that only pin
/// once: 352 executions at preemption bound 1, 20 with this). Registration is crossbeam's own
/// concern, checked by its own loom tests. Everything after it stays explored: every `pin`
/// and unpin inside `push`, `extend` and `take`, the taker's `defer` and `flush` (which try to
/// advance the epoch and run deferred functions while writers are pinned), and the thread's
/// unregistration when it exits.
///
/// `stop_exploring` is a flag of the whole execution, not of the thread: this is sound
/// because the registration never blocks, so no other thread runs before `explore`.
fn register_quietly() {
    loom::stop_exploring();
    drop(crossbeam_epoch::pin());
    loom::explore();
}

/// Spawns a taker that takes once.
fn spawn_taker(seg: &Arc<Segments<Item>>) -> thread::JoinHandle<Vec<Item>> {
    let seg = Arc::clone(seg);
    thread::spawn(move || {
        register_quietly();
        take(&seg)
    })
}

/// Drops the store (it must be the last handle) and the drained items, then checks that every
/// id in `ids` was dropped exactly once and nothing else was dropped.
fn finish(seg: Arc<Segments<Item>>, outs: Vec<Vec<Item>>, ledger: &Ledger, ids: &[u32]) {
    drop(seg);
    drop(outs);
    ledger.assert_dropped_once(ids);
}

// ---------------------------------------------------------------------------------------------
// Models.
// ---------------------------------------------------------------------------------------------

const W0_ONE: &[u32] = &[0];
const W0_TWO: &[u32] = &[0, 1];
const W1_ONE: &[u32] = &[10];
const W1_TWO: &[u32] = &[10, 11];

/// Model 1, slot claim / write / ready vs drain: one writer pushes two items (the first claims
/// slot 0, the second slot 1 of the same block) while another thread takes. The take's swap
/// and close can land before either claim, between the claims, or between a claim and its
/// `ready` store, where the taker must wait for the value (loom's `UnsafeCell` tracking flags a
/// read of an unpublished slot). A final take gets the rest: each item is taken exactly once,
/// in push order.
#[test]
fn push_vs_take() {
    model(3, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let writer = spawn_writer(&seg, &ledger, W0_TWO);
        let taker = spawn_taker(&seg);
        writer.join().expect("writer");
        let first = taker.join().expect("taker");
        let last = take(&seg);
        check_drained(&[&first[..], &last[..]], &[W0_TWO]);
        assert!(seg.is_empty(), "the final take left items behind");
        finish(seg, vec![first, last], &ledger, W0_TWO);
    });
}

/// Model 1b, slot claim vs drain, then `Drop` with items still stored: one writer pushes two
/// items racing a take, and the store is dropped without a final take. Whatever the take did
/// not get must be dropped by `Segments::drop`, exactly once (no leak, no double drop of a
/// value the taker already moved out).
#[test]
fn push_vs_take_then_drop() {
    model(3, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let writer = spawn_writer(&seg, &ledger, W0_TWO);
        let taker = spawn_taker(&seg);
        writer.join().expect("writer");
        let first = taker.join().expect("taker");
        // What the take got is a prefix of the writer's items, in order.
        let got: Vec<u32> = first.iter().map(|i| i.id).collect();
        assert_eq!(&got[..], &W0_TWO[..got.len()], "take got {got:?}");
        assert_eq!(seg.len(), W0_TWO.len() - got.len());
        finish(seg, vec![first], &ledger, W0_TWO);
    });
}

/// Model 2a, block linking from two writers: writer 0 pushes two items and writer 1 one item,
/// three items for two-slot blocks, so some push overflows the first block and links the next
/// one, while a third thread takes. The take can close the first block before, during or after
/// the overflow; when it saw an overflowing claim it must wait for the link and drain the next
/// block too. `close_for_good` then drains the rest. Checks the exact multiset, each writer's
/// order, that pushes after the close give their item back, and that every block (drained ones
/// retired through the epoch to the pool, the pool itself, the last chain) is freed once.
#[test]
fn cross_block_two_writers_vs_take() {
    model(2, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let w0 = spawn_writer(&seg, &ledger, W0_TWO);
        let w1 = spawn_writer(&seg, &ledger, W1_ONE);
        let first = take(&seg);
        w0.join().expect("writer 0");
        w1.join().expect("writer 1");
        let last = close(&seg);
        check_drained(&[&first[..], &last[..]], &[W0_TWO, W1_ONE]);
        // Closed for good: the item comes back, and a second close takes nothing.
        let back = seg
            .push(Item::new(40, &ledger))
            .expect_err("push after close");
        assert_eq!(back.id, 40);
        assert!(close(&seg).is_empty());
        drop(back);
        finish(seg, vec![first, last], &ledger, &[0, 1, 10, 40]);
    });
}

/// Model 2b, two writers overflow a full block at once: the block is filled first, then two
/// writers push one item each, so both claims overflow and both race to link the next block
/// (one CAS wins, the loser returns its block to the pool and uses the winner's), while a third
/// thread takes. Then `close_for_good`. Checks the exact multiset, and that the loser's block,
/// the retired blocks and the linked block are each freed exactly once.
#[test]
fn link_race_two_writers_vs_take() {
    model(2, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        for &i in &[20, 21] {
            seg.push(Item::new(i, &ledger)).expect("open");
        }
        let w0 = spawn_writer(&seg, &ledger, W0_ONE);
        let w1 = spawn_writer(&seg, &ledger, W1_ONE);
        let first = take(&seg);
        w0.join().expect("writer 0");
        w1.join().expect("writer 1");
        let last = close(&seg);
        check_drained(&[&first[..], &last[..]], &[&[20, 21], W0_ONE, W1_ONE]);
        finish(seg, vec![first, last], &ledger, &[0, 10, 20, 21]);
    });
}

/// Model 3, swap + grace period with two writers racing a tick: writers 0 and 1 push two items
/// each (four items: the first storage fills a block and overflows into a second one, or the
/// swap splits them across two storages) while a third thread takes. A writer that loaded the
/// old storage before the swap either claims before the close (and the taker waits for its
/// value) or sees `CLOSED` and retries on the new storage. After the joins, `close_for_good`
/// drains the rest: the union is exactly what was pushed, each writer's items in push order,
/// and a push after the close returns its item.
#[test]
fn swap_grace_two_writers_vs_take() {
    model(2, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let w0 = spawn_writer(&seg, &ledger, W0_TWO);
        let w1 = spawn_writer(&seg, &ledger, W1_TWO);
        let first = take(&seg);
        w0.join().expect("writer 0");
        w1.join().expect("writer 1");
        let last = close(&seg);
        check_drained(&[&first[..], &last[..]], &[W0_TWO, W1_TWO]);
        let back = seg
            .push(Item::new(40, &ledger))
            .expect_err("push after close");
        assert_eq!(back.id, 40);
        drop(back);
        finish(seg, vec![first, last], &ledger, &[0, 1, 10, 11, 40]);
    });
}

/// Model 3b, pushes racing `close_for_good`: one writer pushes two items while another thread
/// closes the store for good. Every push that returned `Ok` must be in the close's output (the
/// close is the last take, so an `Ok` item it missed would be lost), every push that returned
/// `Err` gives its item back, and once a push fails the next one fails too.
#[test]
fn push_vs_close_for_good() {
    model(3, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let writer = {
            let seg = Arc::clone(&seg);
            let ledger = std::sync::Arc::clone(&ledger);
            thread::spawn(move || {
                register_quietly();
                let mut accepted = Vec::new();
                let mut refused = Vec::new();
                for &i in W0_TWO {
                    match seg.push(Item::new(i, &ledger)) {
                        Ok(_) => {
                            assert!(refused.is_empty(), "a push succeeded after one failed");
                            accepted.push(i);
                        }
                        Err(item) => {
                            assert_eq!(item.id, i, "push gave back another item");
                            refused.push(item);
                        }
                    }
                }
                (accepted, refused)
            })
        };
        let closer = {
            let seg = Arc::clone(&seg);
            thread::spawn(move || {
                register_quietly();
                close(&seg)
            })
        };
        let (accepted, refused) = writer.join().expect("writer");
        let closed = closer.join().expect("closer");
        check_drained(&[&closed[..]], &[&accepted[..]]);
        assert_eq!(seg.len(), 0);
        assert!(close(&seg).is_empty(), "a second close found items");
        finish(seg, vec![closed, refused], &ledger, W0_TWO);
    });
}

/// Model 4, batch push (`extend`) vs drain: one writer appends three items with one `extend`
/// (one `fetch_add` claims slots 0..3 of a two-slot block, so the batch overflows and links
/// the next block) while another thread takes. The take may close the first block before the
/// claim (the batch retries on the new storage), after it (the taker must wait for both values
/// and for the link, then drain the next block), or close the second block in between. A
/// final take gets the rest: each item exactly once, in order. Then `extend` after
/// `close_for_good` fails and leaves the items in the iterator.
#[test]
fn extend_vs_take() {
    model(3, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let batch: &[u32] = &[0, 1, 2];
        let writer = {
            let seg = Arc::clone(&seg);
            let ledger = std::sync::Arc::clone(&ledger);
            thread::spawn(move || {
                register_quietly();
                let items: Vec<Item> = batch.iter().map(|&i| Item::new(i, &ledger)).collect();
                let mut items = items.into_iter();
                seg.extend(&mut items).expect("extend on an open store");
                assert_eq!(items.len(), 0, "extend left items behind");
            })
        };
        let taker = spawn_taker(&seg);
        writer.join().expect("writer");
        let first = taker.join().expect("taker");
        let last = close(&seg);
        check_drained(&[&first[..], &last[..]], &[batch]);
        let mut late = vec![Item::new(40, &ledger), Item::new(41, &ledger)].into_iter();
        assert!(seg.extend(&mut late).is_err(), "extend after close");
        let late: Vec<u32> = late.map(|i| i.id).collect();
        assert_eq!(late, [40, 41], "extend after close consumed items");
        finish(seg, vec![first, last], &ledger, &[0, 1, 2, 40, 41]);
    });
}

/// Model 4b, `extend` vs `push` vs drain: one writer appends two items with `extend` while
/// another pushes one, racing a take. The batch's single claim and the push's claim interleave
/// on the same block counter, so the batch may get slots 0..2, 1..3 (overflowing and linking)
/// or land in the new storage. Checks the multiset and both writers' orders over the take and
/// a final `close_for_good`.
#[test]
fn extend_vs_push_vs_take() {
    model(2, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let w0 = {
            let seg = Arc::clone(&seg);
            let ledger = std::sync::Arc::clone(&ledger);
            thread::spawn(move || {
                register_quietly();
                let items: Vec<Item> = W0_TWO.iter().map(|&i| Item::new(i, &ledger)).collect();
                let mut items = items.into_iter();
                seg.extend(&mut items).expect("extend on an open store");
                assert_eq!(items.len(), 0, "extend left items behind");
            })
        };
        let w1 = spawn_writer(&seg, &ledger, W1_ONE);
        let first = take(&seg);
        w0.join().expect("writer 0");
        w1.join().expect("writer 1");
        let last = close(&seg);
        check_drained(&[&first[..], &last[..]], &[W0_TWO, W1_ONE]);
        finish(seg, vec![first, last], &ledger, &[0, 1, 10]);
    });
}
