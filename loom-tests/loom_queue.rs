//! Loom models of the lock-free segmented store behind a `Queue` partition
//! (`src/raw/queue.rs`, exposed under `--cfg loom` as `tidefall::loom_api::Segments`).
//!
//! Run with (release: loom is slow in debug):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test 'loom*'
//! ```
//!
//! (No `--cfg crossbeam_loom`: the store no longer uses crossbeam-epoch, and that flag would
//! switch crossbeam-utils to loom, which then fails to build.)
//!
//! Under loom a block holds 2 slots, so a third item crosses a block boundary.
//!
//! The protocol under test: one `fetch_add` on the claim word picks the generation (which of
//! the two storages) and the slot; the writer finds or links the slot's block, writes the
//! value, sets `ready`. A take swaps the claim word to the next generation (after giving the
//! next storage a fresh head block), which returns exactly how many slots the old generation
//! got; it waits for each one's `ready` flag (the grace period), moves the values out, then
//! recycles the old chain's blocks into the pool at once (no deferred reclamation).
//!
//! Every model checks real outcomes, not just the absence of a crash:
//!
//! * the items drained (across all takes, in take order) are exactly the items pushed, each
//!   once, and each writer's items come out in the order it pushed them;
//! * every item is dropped exactly once (an [`Item`] records its drops in a [`Ledger`]), after
//!   the drained items and the store itself are dropped;
//! * each successful `push`/`extend` reports its exact claim (`Pushed { before, after }`, which
//!   the engine uses to request a drain at the threshold): its items are at those positions of
//!   the take that drained them;
//! * no block leaks or is freed twice: a counting global allocator follows the allocation of
//!   each block's slot array (see [`BLOCKS_LIVE`]) and the count must be back where it was at
//!   the end of every execution;
//! * slot reads and writes go through `loom::cell::UnsafeCell`, so loom reports a taker that
//!   reads a slot its writer has not published (or a writer writing a slot the taker reads).
//!
//! In each model the main thread is one of the racing parties (the taker): one loom thread
//! fewer than a spawned taker, with the same interleavings of the race. Models with one writer
//! are explored exhaustively (no preemption bound); those with two writers use a bound of 4
//! or 5, keeping the whole run near a minute on two cores.
//!
//! The models were checked against mutants of `src/raw/queue.rs`: each of these is caught by
//! at least one model (a loom panic, a failed assertion, or a crash): `Relaxed` instead of
//! Release/Acquire on `ready`, on the claim `fetch_add`, on the link CAS or on the tail-hint
//! CAS; a drain that does not wait for `ready`; a drain that recycles each block as soon as
//! it has read it (before writers of later blocks stopped walking the chain); a recycled block
//! that keeps its `ready` flags or its `next`; a losing link CAS that leaks its block;
//! `close_for_good` that does not set `CLOSED`; `extend` that never moves to the next block.
#![cfg(loom)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::time::Instant;

use loom::sync::Arc;
use loom::thread;
use tidefall::loom_api::{Pushed, Segments};

mod common;

use common::Ledger;

// ---------------------------------------------------------------------------------------------
// Block accounting through the global allocator.
// ---------------------------------------------------------------------------------------------

/// Slots per block under loom (`Block::CAP`).
const CAP: usize = 2;

/// The layout of one block's slot array, `Box<[loom::cell::UnsafeCell<MaybeUninit<Item>>]>`
/// of `CAP` slots: exactly one such allocation per block.
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

/// A queue item that records its drop in a [`Ledger`] (writer `w`'s `s`-th item has id
/// `w * 10 + s`, below the ledger's 64). Over-aligned and padded so that no
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
        self.ledger.record_drop(self.id);
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

/// Runs `f` under loom with the given preemption bound (`None`: exhaustive;
/// `TIDEFALL_LOOM_BOUND=<n>|none` overrides it, for experiments). After each execution, every
/// block it allocated must have been freed exactly once: the store recycles blocks into its
/// pool at once (no deferred reclamation) and the pool is freed with the store, so no block
/// may outlive the execution. Prints the model's time and number of executions.
fn model<F>(preemption_bound: Option<usize>, f: F)
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
    builder.preemption_bound = match std::env::var("TIDEFALL_LOOM_BOUND") {
        Ok(bound) if bound == "none" => None,
        Ok(bound) => Some(
            bound
                .parse()
                .expect("TIDEFALL_LOOM_BOUND: a number or `none`"),
        ),
        Err(_) => preemption_bound,
    };
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&runs);
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let before = BLOCKS_LIVE.with(Cell::get);
        f();
        let after = BLOCKS_LIVE.with(Cell::get);
        assert_eq!(
            after,
            before,
            "blocks allocated minus blocks freed in this execution: {} (leak if > 0, double \
             free if < 0)",
            after - before
        );
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

/// The claims one writer made: the ids of each successful `push` (one id) or `extend` (the
/// batch), with the `Pushed` it returned.
type Claims = Vec<(Vec<u32>, Pushed)>;

/// Pushes `ids` in order, each expected to succeed, and returns the claims.
fn push_all(seg: &Segments<Item>, ledger: &std::sync::Arc<Ledger>, ids: &[u32]) -> Claims {
    ids.iter()
        .map(|&i| match seg.push(Item::new(i, ledger)) {
            Ok(pushed) => (vec![i], pushed),
            Err(item) => panic!("push of {item:?} failed on an open store"),
        })
        .collect()
}

/// Spawns a writer that pushes `ids` in order, each expected to succeed.
fn spawn_writer(
    seg: &Arc<Segments<Item>>,
    ledger: &std::sync::Arc<Ledger>,
    ids: &'static [u32],
) -> thread::JoinHandle<Claims> {
    let seg = Arc::clone(seg);
    let ledger = std::sync::Arc::clone(ledger);
    thread::spawn(move || push_all(&seg, &ledger, ids))
}

/// Spawns a writer that appends `ids` with one `extend`, expected to succeed.
fn spawn_extender(
    seg: &Arc<Segments<Item>>,
    ledger: &std::sync::Arc<Ledger>,
    ids: &'static [u32],
) -> thread::JoinHandle<Claims> {
    let seg = Arc::clone(seg);
    let ledger = std::sync::Arc::clone(ledger);
    thread::spawn(move || {
        let items: Vec<Item> = ids.iter().map(|&i| Item::new(i, &ledger)).collect();
        let mut items = items.into_iter();
        let pushed = seg.extend(&mut items).expect("extend on an open store");
        assert_eq!(items.len(), 0, "extend left items behind");
        vec![(ids.to_vec(), pushed)]
    })
}

/// Checks that each claim's `Pushed` is exact: the claim's items sit in one take's output
/// (one generation: a batch is never split), at positions `before..after` (slots are drained
/// in slot order, so a take's output index is the slot). The engine relies on these counts to
/// request a drain from the write that crosses the threshold.
fn check_claims(outs: &[&[Item]], claims: &[&Claims]) {
    for (ids, pushed) in claims.iter().flat_map(|c| c.iter()) {
        assert_eq!(
            pushed.after - pushed.before,
            ids.len() as u64,
            "{pushed:?} for {ids:?}"
        );
        let out = outs
            .iter()
            .find(|out| out.iter().any(|i| i.id == ids[0]))
            .unwrap_or_else(|| panic!("{ids:?} not drained (takes: {outs:?})"));
        let got: Vec<u32> = out
            .iter()
            .skip(pushed.before as usize)
            .take(ids.len())
            .map(|i| i.id)
            .collect();
        assert_eq!(
            &got, ids,
            "{pushed:?} for {ids:?}: not at those slots of its take {out:?}"
        );
    }
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
const W0_THREE: &[u32] = &[0, 1, 2];
const W1_ONE: &[u32] = &[10];
const W1_TWO: &[u32] = &[10, 11];

/// Checks that the store is closed for good: `push` gives its item back, `extend` leaves its
/// items in the iterator, and a second close takes nothing. Uses ids 40 and 41.
fn check_closed(seg: &Segments<Item>, ledger: &std::sync::Arc<Ledger>) {
    let back = seg
        .push(Item::new(40, ledger))
        .expect_err("push after close");
    assert_eq!(back.id, 40, "push after close gave back another item");
    let mut late = vec![Item::new(41, ledger)].into_iter();
    assert!(seg.extend(&mut late).is_err(), "extend after close");
    assert_eq!(late.len(), 1, "extend after close consumed its item");
    assert_eq!(seg.len(), 0);
    assert!(seg.is_empty());
    assert!(close(seg).is_empty(), "a second close found items");
}

/// Model 1, slot claim / write / ready vs drain: a writer pushes two items (slots 0 and 1 of
/// the head block) while the main thread takes. The take's swap of the claim word can land
/// before either claim, between them, or between a claim and its `ready` store, where the
/// taker must wait for the value (loom's `UnsafeCell` tracking flags a read of an unpublished
/// slot). A final take, after the join, gets the rest: each item is taken exactly once, in
/// push order, and the store is empty afterwards.
#[test]
fn push_vs_take() {
    model(None, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let writer = spawn_writer(&seg, &ledger, W0_TWO);
        let first = take(&seg);
        let c0 = writer.join().expect("writer");
        let last = take(&seg);
        check_drained(&[&first[..], &last[..]], &[W0_TWO]);
        check_claims(&[&first[..], &last[..]], &[&c0]);
        assert!(seg.is_empty(), "the final take left items behind");
        finish(seg, vec![first, last], &ledger, W0_TWO);
    });
}

/// Model 1b, slot claim vs drain, then `Drop` with items still stored: a writer pushes two
/// items racing a take, and the store is dropped without a final take. What the take got is a
/// prefix of the writer's items; the rest must be dropped by `Segments::drop`, exactly once (no
/// leak, no double drop of a value the taker already moved out), along with every block.
#[test]
fn push_vs_take_then_drop() {
    model(None, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let writer = spawn_writer(&seg, &ledger, W0_TWO);
        let first = take(&seg);
        let c0 = writer.join().expect("writer");
        let got: Vec<u32> = first.iter().map(|i| i.id).collect();
        assert_eq!(&got[..], &W0_TWO[..got.len()], "take got {got:?}");
        let taken: Claims = c0.into_iter().take(got.len()).collect();
        check_claims(&[&first[..]], &[&taken]);
        assert_eq!(seg.len(), W0_TWO.len() - got.len());
        finish(seg, vec![first], &ledger, W0_TWO);
    });
}

/// Model 2, block linking and recycling with two writers: writer 0 pushes two items and
/// writer 1 one item, three items for two-slot blocks, so whoever claims slot 2 links the
/// second block (walking from the tail hint) while the main thread takes. The take can end
/// the generation before, between or after the claims; when it counted slot 2 it must wait for
/// the link and drain the second block, and it recycles the chain only after every counted
/// slot is ready, so a writer still walking the chain to its block never touches a recycled
/// block. `close_for_good` then drains the rest. Checks the exact multiset, each writer's
/// order, the closed store's refusals, and that every block is freed exactly once.
#[test]
fn cross_block_two_writers_vs_take() {
    model(Some(5), || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let w0 = spawn_writer(&seg, &ledger, W0_TWO);
        let w1 = spawn_writer(&seg, &ledger, W1_ONE);
        let first = take(&seg);
        let c0 = w0.join().expect("writer 0");
        let c1 = w1.join().expect("writer 1");
        let last = close(&seg);
        check_drained(&[&first[..], &last[..]], &[W0_TWO, W1_ONE]);
        check_claims(&[&first[..], &last[..]], &[&c0, &c1]);
        check_closed(&seg, &ledger);
        finish(seg, vec![first, last], &ledger, &[0, 1, 10, 40, 41]);
    });
}

/// Model 2b, two writers race to link the same block: the head block is filled first, then two
/// writers push one item each (slots 2 and 3, both in the second block), so both find no next
/// block and race the linking CAS (the loser recycles its fresh block into the pool and uses
/// the winner's, and the tail-hint CAS may fail), while the main thread takes. Then
/// `close_for_good`. Checks the exact multiset and that the loser's block, the recycled chain
/// and the pool are each freed exactly once.
#[test]
fn link_race_two_writers_vs_take() {
    model(Some(4), || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let pre = push_all(&seg, &ledger, &[20, 21]);
        let w0 = spawn_writer(&seg, &ledger, W0_ONE);
        let w1 = spawn_writer(&seg, &ledger, W1_ONE);
        let first = take(&seg);
        let c0 = w0.join().expect("writer 0");
        let c1 = w1.join().expect("writer 1");
        let last = close(&seg);
        check_drained(&[&first[..], &last[..]], &[&[20, 21], W0_ONE, W1_ONE]);
        check_claims(&[&first[..], &last[..]], &[&pre, &c0, &c1]);
        finish(seg, vec![first, last], &ledger, &[0, 10, 20, 21]);
    });
}

/// Model 2c, two ticks under one writer: a writer pushes three items (crossing into a second
/// block) while the main thread takes twice. The first take ends generation 0 and recycles
/// its chain into the pool; the second ends generation 1 and hands storage 0 back to
/// generation 2 with a head block from the pool (each storage is reused every other tick), and
/// the writer may link a recycled block too. The writer's claims land in any of the three
/// generations, each drained by its own take. `close_for_good` gets the rest: exact multiset,
/// push order across the three drains, exact claims, every block freed once. (Blocks that come
/// back from the pool dirty are model 2d's subject.)
#[test]
fn recycled_blocks_vs_writer_two_takes() {
    model(None, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let writer = spawn_writer(&seg, &ledger, W0_THREE);
        let first = take(&seg);
        let second = take(&seg);
        let c0 = writer.join().expect("writer");
        let last = close(&seg);
        check_drained(&[&first[..], &second[..], &last[..]], &[W0_THREE]);
        check_claims(&[&first[..], &second[..], &last[..]], &[&c0]);
        finish(seg, vec![first, second, last], &ledger, W0_THREE);
    });
}

/// Model 2d, dirty recycled blocks from the pool under a racing writer and taker: a
/// sequential prelude pushes three items and takes them, so the pool holds the two blocks of
/// that chain (in use, the first had a `next` and both had `ready` flags set: recycling must
/// clear them). Then a writer pushes
/// three items (its third links a block from the pool) while the main thread takes (its fresh
/// head for the next generation also comes from the pool, before or after the writer's link).
/// A block must come back from the pool clean: a stale `ready` flag would let the taker read
/// a slot before its writer wrote it, a stale `next` would make the drain recycle a block of
/// another chain (freed twice later). `close_for_good` gets the rest.
#[test]
fn dirty_pool_blocks_vs_writer_take() {
    model(None, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let pre = push_all(&seg, &ledger, &[20, 21, 22]);
        let prelude = take(&seg);
        let writer = spawn_writer(&seg, &ledger, W0_THREE);
        let first = take(&seg);
        let c0 = writer.join().expect("writer");
        let last = close(&seg);
        check_drained(
            &[&prelude[..], &first[..], &last[..]],
            &[&[20, 21, 22], W0_THREE],
        );
        check_claims(&[&prelude[..], &first[..], &last[..]], &[&pre, &c0]);
        finish(
            seg,
            vec![prelude, first, last],
            &ledger,
            &[0, 1, 2, 20, 21, 22],
        );
    });
}

/// Model 3, swap + grace period with two writers racing a tick: writers 0 and 1 push two items
/// each (four items: two full blocks in one generation, or split across two) while the main
/// thread takes. Every claim is ordered before the swap of the claim word (counted: the taker
/// waits for its value) or after it (in the new generation's storage, which the taker set up
/// before the swap). After the joins, `close_for_good` drains the rest: the union is exactly
/// what was pushed, each writer's items in push order, and pushes after the close are refused.
#[test]
fn swap_grace_two_writers_vs_take() {
    model(Some(4), || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let w0 = spawn_writer(&seg, &ledger, W0_TWO);
        let w1 = spawn_writer(&seg, &ledger, W1_TWO);
        let first = take(&seg);
        let c0 = w0.join().expect("writer 0");
        let c1 = w1.join().expect("writer 1");
        let last = close(&seg);
        check_drained(&[&first[..], &last[..]], &[W0_TWO, W1_TWO]);
        check_claims(&[&first[..], &last[..]], &[&c0, &c1]);
        check_closed(&seg, &ledger);
        finish(seg, vec![first, last], &ledger, &[0, 1, 10, 11, 40, 41]);
    });
}

/// Model 3b, pushes racing `close_for_good`: a writer pushes two items while the main thread
/// closes the store for good. Every push that returned `Ok` must be in the close's output (the
/// close is the last take: an `Ok` item it missed would be lost), every push that returned
/// `Err` gives its own item back, and once a push fails the next one fails too.
#[test]
fn push_vs_close_for_good() {
    model(None, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let writer = {
            let seg = Arc::clone(&seg);
            let ledger = std::sync::Arc::clone(&ledger);
            thread::spawn(move || {
                let mut accepted: Claims = Vec::new();
                let mut refused = Vec::new();
                for &i in W0_TWO {
                    match seg.push(Item::new(i, &ledger)) {
                        Ok(pushed) => {
                            assert!(refused.is_empty(), "a push succeeded after one failed");
                            accepted.push((vec![i], pushed));
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
        let closed = close(&seg);
        let (accepted, refused) = writer.join().expect("writer");
        let accepted_ids: Vec<u32> = accepted.iter().map(|(ids, _)| ids[0]).collect();
        check_drained(&[&closed[..]], &[&accepted_ids[..]]);
        check_claims(&[&closed[..]], &[&accepted]);
        check_closed(&seg, &ledger);
        finish(seg, vec![closed, refused], &ledger, &[0, 1, 40, 41]);
    });
}

/// Model 4, batch push (`extend`) vs drain: a writer appends three items with one `extend`
/// (one `fetch_add` claims slots 0..3, so the batch fills the head block, then links and
/// fills the second) while the main thread takes. The take may end the generation before the
/// claim (the whole batch lands in the next storage) or after it (the taker waits for all
/// three values, and for the link). `close_for_good` gets the rest: each item exactly once,
/// in order; then the closed store refuses `push` and `extend`.
#[test]
fn extend_vs_take() {
    model(None, || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let writer = spawn_extender(&seg, &ledger, W0_THREE);
        let first = take(&seg);
        let c0 = writer.join().expect("writer");
        // One claim: the batch is never split between two takes.
        assert!(
            first.is_empty() || first.len() == 3,
            "batch split: {first:?}"
        );
        let last = close(&seg);
        check_drained(&[&first[..], &last[..]], &[W0_THREE]);
        check_claims(&[&first[..], &last[..]], &[&c0]);
        check_closed(&seg, &ledger);
        finish(seg, vec![first, last], &ledger, &[0, 1, 2, 40, 41]);
    });
}

/// Model 4b, `extend` vs `push` vs drain: writer 0 appends two items with one `extend` while
/// writer 1 pushes one, racing the main thread's take. The two claims interleave on the claim
/// word, so the batch gets slots 0..2 (the head block) or 1..3 (straddling the boundary, one
/// of the two writers linking the second block), or lands in the next generation. Checks the
/// multiset, that the batch is never split between takes, and both writers' orders.
#[test]
fn extend_vs_push_vs_take() {
    model(Some(5), || {
        let ledger = Ledger::new();
        let seg = Arc::new(Segments::new());
        let w0 = spawn_extender(&seg, &ledger, W0_TWO);
        let w1 = spawn_writer(&seg, &ledger, W1_ONE);
        let first = take(&seg);
        let c0 = w0.join().expect("writer 0");
        let c1 = w1.join().expect("writer 1");
        let last = close(&seg);
        let batch_in_first = first.iter().filter(|i| i.id < 10).count();
        assert!(batch_in_first % 2 == 0, "batch split: {first:?} / {last:?}");
        check_drained(&[&first[..], &last[..]], &[W0_TWO, W1_ONE]);
        check_claims(&[&first[..], &last[..]], &[&c0, &c1]);
        finish(seg, vec![first, last], &ledger, &[0, 1, 10]);
    });
}
