//! Memory (scenario Mem of PERFORMANCE.md): what buffered items cost.
//!
//! * **Bytes per buffered item** of a `Queue<u64>` holding 1 000 000 items (no tick runs
//!   meanwhile), beside the same million in a `Vec<u64>` (grown by `push`, and exactly sized),
//!   `crossbeam_queue::SegQueue`, `crossbeam_channel::unbounded`, `flume::unbounded` and
//!   `std::sync::mpsc` (the receiver alive). tidefall twice: one producer (it owns the
//!   partition's lane) and two producers on one partition (shared segments). The figure is the
//!   growth of the bytes live on the heap from the empty structure (made, and for tidefall
//!   started) to the structure holding the million, divided by a million; the structure's
//!   fixed cost is left out.
//! * **Growth for 5 000 000 puts over 1 000 keys** in a `tidefall::HashMap<u64, u64>` (default
//!   options but the interval), once with a one-hour interval (no tick drains it meanwhile:
//!   every put after the first per key coalesces) and once ticking every 10 ms (each tick
//!   hands the processor the thousand entries): after one put per key, the growth of the
//!   bytes live, their peak, and the growth of the process's resident set (`VmRSS` of
//!   `/proc/self/status`, Linux only) over the 5 M puts.
//!
//! Bytes live are counted by this bench's global allocator, which wraps the system allocator
//! and keeps the sum of the sizes of the live allocations (and, when asked, their peak), over
//! every thread of the process. Counts start at rest: once the count has stopped moving.
//!
//! A `harness = false` bench: `cargo bench --bench memory` takes a few seconds and prints the
//! figures, against the targets (≤ 12 bytes per `u64` item, map RSS growth < 1 MiB).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crossbeam_queue::SegQueue;
use tidefall::{BatchSize, Entry, HashMap, Queue};

/// Items buffered in the per-item measurements.
const ITEMS: u64 = 1_000_000;
/// Keys and puts of the map measurement.
const KEYS: u64 = 1_000;
const PUTS: u64 = 5_000_000;
const HOUR: Duration = Duration::from_secs(3600);

/// Bytes in live allocations.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most bytes live since the last [`reset_peak`].
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes live.
struct Counting;

impl Counting {
    fn grew(by: usize) {
        // Relaxed: counters only, read at rest.
        let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }

    fn shrank(by: usize) {
        // Relaxed: as in `grew`.
        LIVE.fetch_sub(by, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments, so it keeps
// `System`'s guarantees; the counting touches atomics only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded; the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) };
        Self::shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            Self::shrank(layout.size());
            Self::grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes live now.
fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Bytes live once the count has stopped moving (unchanged over three polls 10 ms apart, or
/// after a second): a stopped tidefall buffer's pool threads may still be freeing its storage
/// after `stop` returns.
fn settled() -> usize {
    let mut last = live();
    let mut still = 0;
    for _ in 0..100 {
        thread::sleep(Duration::from_millis(10));
        let now = live();
        still = if now == last { still + 1 } else { 0 };
        last = now;
        if still == 3 {
            break;
        }
    }
    last
}

/// Starts tracking the peak from the bytes live now.
fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

/// The process's resident set in bytes, where `/proc/self/status` has it.
fn rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes live per item grown by `fill` putting `ITEMS` items into `structure`, which is
/// made (and its fixed cost paid) beforehand and dropped afterwards.
fn growth<S>(mut structure: S, fill: impl FnOnce(&mut S)) -> f64 {
    let before = settled();
    fill(&mut structure);
    let grown = live() as f64 - before as f64;
    drop(structure);
    grown / ITEMS as f64
}

/// A started queue that never ticks on its own, with a processor that drops its batches.
fn tidefall_queue() -> Queue<u64> {
    Queue::<u64>::builder()
        .name("bench-memory")
        .partitions(1)
        .processing_interval(HOUR)
        .processing_batch_size(BatchSize::Table)
        .processor(|batch: Vec<u64>| drop(black_box(batch)))
        .start()
        .expect("valid options")
}

fn print_per_item(name: &str, bytes: f64) {
    println!(
        "  {name:<40} {bytes:>7.2} bytes/item  ({:.2}× Vec's 8)",
        bytes / 8.0
    );
}

fn per_item() {
    println!("memory: bytes live per buffered u64, {ITEMS} items");
    let owner = growth(tidefall_queue(), |queue| {
        (0..ITEMS).for_each(|i| queue.push(i).unwrap());
    });
    print_per_item("tidefall Queue, one producer (lane)", owner);
    let shared = growth(tidefall_queue(), |queue| {
        thread::scope(|s| {
            for t in 0..2 {
                let queue = &*queue;
                s.spawn(move || (t..ITEMS).step_by(2).for_each(|i| queue.push(i).unwrap()));
            }
        });
    });
    print_per_item("tidefall Queue, two producers (shared)", shared);

    let bytes = growth(Vec::new(), |vec| (0..ITEMS).for_each(|i| vec.push(i)));
    print_per_item("Vec::push", bytes);
    let bytes = growth(Vec::<u64>::new(), |vec| {
        vec.reserve_exact(ITEMS as usize);
        vec.extend(0..ITEMS);
    });
    print_per_item("Vec, exactly sized", bytes);
    let bytes = growth(SegQueue::new(), |seg| (0..ITEMS).for_each(|i| seg.push(i)));
    print_per_item("SegQueue", bytes);
    let bytes = growth(crossbeam_channel::unbounded(), |(tx, _)| {
        (0..ITEMS).for_each(|i| tx.send(i).unwrap());
    });
    print_per_item("crossbeam_channel::unbounded", bytes);
    let bytes = growth(flume::unbounded(), |(tx, _)| {
        (0..ITEMS).for_each(|i| tx.send(i).unwrap());
    });
    print_per_item("flume::unbounded", bytes);
    let bytes = growth(mpsc::channel(), |(tx, _)| {
        (0..ITEMS).for_each(|i| tx.send(i).unwrap());
    });
    print_per_item("std::sync::mpsc::channel", bytes);

    println!(
        "memory: tidefall Queue {owner:.2} bytes/item (one producer): target ≤ 12, {}",
        if owner <= 12.0 { "met" } else { "NOT met" }
    );
}

/// Puts `PUTS` values over `KEYS` keys into a map ticking every `interval`, after one put
/// per key; prints the growth of the bytes live and of the RSS. Returns the RSS growth.
fn map_growth(interval: Duration, label: &str) -> Option<f64> {
    let map = HashMap::<u64, u64>::builder()
        .name("bench-memory-map")
        .processing_interval(interval)
        .processor(|entries: Vec<Entry<u64, u64>>| drop(black_box(entries)))
        .start()
        .expect("valid options");
    (0..KEYS).for_each(|key| map.put(key, key).unwrap());
    let (live_before, rss_before) = (settled(), rss());
    reset_peak();
    for i in 0..PUTS {
        map.put(i % KEYS, i).unwrap();
    }
    let (live_after, rss_after) = (live(), rss());
    let peak = PEAK.load(Ordering::Relaxed);
    let ticks = map.stats().ticks;
    map.stop().unwrap();

    let kib = |bytes: f64| bytes / 1024.0;
    let rss_grown = rss_before
        .zip(rss_after)
        .map(|(before, after)| after as f64 - before as f64);
    println!(
        "  {label:<20} {:>10.1} {:>10.1} {:>10} {:>6}",
        kib(live_after as f64 - live_before as f64),
        kib(peak as f64 - live_before as f64),
        rss_grown.map_or("n/a".into(), |grown| format!("{:.1}", kib(grown))),
        ticks,
    );
    rss_grown
}

fn maps() {
    println!(
        "memory: tidefall HashMap<u64, u64>, {PUTS} puts over {KEYS} keys; growth over the \
         puts in KiB"
    );
    println!(
        "  {:<20} {:>10} {:>10} {:>10} {:>6}",
        "interval", "live", "peak live", "RSS", "ticks"
    );
    let quiet = map_growth(HOUR, "1 h (no tick)");
    let ticking = map_growth(Duration::from_millis(10), "10 ms");
    for (label, grown) in [("no tick", quiet), ("ticks every 10 ms", ticking)] {
        match grown {
            Some(grown) => println!(
                "memory: map RSS growth, {label}: {:.1} KiB: target < 1024 KiB, {}",
                grown / 1024.0,
                if grown < 1024.0 * 1024.0 {
                    "met"
                } else {
                    "NOT met"
                }
            ),
            None => println!("memory: map RSS growth, {label}: not available on this platform"),
        }
    }
}

fn main() {
    // The maps first: the resident set only grows and shrinks cleanly before the per-item
    // measurements have allocated and freed their millions of items (the allocator may give
    // that memory back to the system in the middle of a later measurement).
    maps();
    per_item();
}
