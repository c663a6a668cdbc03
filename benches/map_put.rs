//! The write path of `tidefall::HashMap<u64, u64>` beside concurrent maps, in one run:
//! `dashmap::DashMap` (sharded locks), `papaya::HashMap` (lock-free, epoch-reclaimed),
//! `scc::HashMap` (fine-grained locking) and `std::sync::Mutex<std::collections::HashMap>`
//! (the obvious baseline). Every map uses the same hasher, [`tidefall::DefaultHashBuilder`]
//! (foldhash), so the comparison is of the maps, not of their hash functions.
//!
//! Every group measures puts only (an insert-or-overwrite: `put`, `insert`, `upsert_sync`);
//! each timed chunk writes a fixed number of entries, and whatever must happen between chunks
//! (draining tidefall, clearing or dropping the peers) is outside the timed region.
//! `cargo bench --bench map_put` runs the six groups in about three minutes.
//!
//! * `put_hot_1thread`: one thread writes `HOT_PUTS` values over `HOT_KEYS` keys per chunk:
//!   mostly overwrites, the coalescing case. The maps are emptied between chunks (tidefall by
//!   `flush`, the peers by `clear`), so each chunk starts from an empty map whose table
//!   already has room. Two floors, not peers, close the group: `floor_std_unlocked`, std's
//!   `HashMap` with no lock, and `floor_slots`, tidefall's slot layout with none of its
//!   protocol ([`PlainSlots`]).
//! * `put_hot_2threads`: two threads write `HOT_PER_THREAD` values each over the same
//!   `HOT_KEYS` keys, concurrently: contention on the same entries.
//! * `put_distinct_1thread`: one thread inserts `DISTINCT` new keys per chunk into a fresh
//!   map: growth. `tidefall_flushed` reuses one map drained by `flush` between chunks
//!   instead, tidefall's steady state (its tables keep the size of the busiest tick). The
//!   same keys in one batch write: `tidefall_put_all` and `tidefall_put_all_flushed`
//!   (`put_all`), and `mutex_std_extend` (`extend` under one lock). The peers' own steady
//!   state as buffers, a map emptied by `clear` (which keeps its table), is there too:
//!   `mutex_std_drained`, `mutex_std_extend_drained`, `dashmap_drained`. So are two floors
//!   of the drained insert, as in `put_hot_1thread`: `floor_slots_drained` and
//!   `floor_std_unlocked_drained`; and the same two with two tables written in turn, as
//!   tidefall's two sides are, `floor_slots_two_tables_drained` and
//!   `floor_std_two_tables_drained`, with `floor_hashed_slots_two_tables_drained` beside them
//!   (tidefall's slot with the key's hash stored in it, as it was before `6c37d73`) and
//!   `floor_entry_slots_two_tables_drained` (a slot of an `Entry`'s four words and a state
//!   word). So are three floors of a fresh map's growth, `floor_slots_fresh`,
//!   `floor_hashed_slots_fresh` and `floor_entry_slots_fresh` ([`PlainSlots::growing`]).
//! * `put_distinct_2threads`: two threads insert `DISTINCT / 2` new keys each (interleaved)
//!   into a fresh map.
//! * `put_hot_1thread_interleaved` and `put_hot_2threads_interleaved`: the peers of the two
//!   hot groups in interleaved rounds, a few chunks each per round, so that every ratio
//!   compares chunks taken within milliseconds of each other (`benches/common/interleaved.rs`).
//!
//! After tidefall's `flush` the next chunk waits 200 µs, untimed, for the pool's workers to
//! go back to sleep (`benches/common/settle.rs`).
//!
//! papaya is driven through one `pin()` guard per thread per chunk, its fastest use; tidefall
//! and the others have no guard to hold.

use std::collections::HashMap as StdMap;
use std::hash::BuildHasher;
use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use dashmap::DashMap;
use interleaved::{interleaved, Contestant};
use tidefall::{BatchSize, DefaultHashBuilder, Entry, HashMap};

#[path = "common/interleaved.rs"]
mod interleaved;
#[path = "common/pin.rs"]
mod pin;
#[path = "common/settle.rs"]
mod settle;

const GROUP_HOT_1: &str = "put_hot_1thread";
const GROUP_HOT_2: &str = "put_hot_2threads";
const GROUP_DISTINCT_1: &str = "put_distinct_1thread";
const GROUP_DISTINCT_2: &str = "put_distinct_2threads";

/// Hot keys in the `put_hot_*` groups.
const HOT_KEYS: u64 = 1_000;
/// Puts per timed chunk in `put_hot_1thread`.
const HOT_PUTS: u64 = 20_000;
/// Puts per producer per timed chunk in `put_hot_2threads`.
const HOT_PER_THREAD: u64 = 100_000;
/// Distinct keys per timed chunk in the `put_distinct_*` groups.
const DISTINCT: u64 = 1_000_000;

const HOUR: Duration = Duration::from_secs(3600);

type Std = Mutex<StdMap<u64, u64, DefaultHashBuilder>>;

/// A tidefall map that only drains when asked (`flush`, `stop`): one tick an hour, a no-op
/// processor that takes a partition's whole tick in one call.
fn tidefall_map(partitions: usize) -> HashMap<u64, u64> {
    HashMap::<u64, u64>::builder()
        .name(format!("bench-map-{partitions}p"))
        .partitions(partitions)
        .processing_interval(HOUR)
        .processing_batch_size(BatchSize::Table)
        .processor(|entries: Vec<Entry<u64, u64>>| {
            black_box(entries);
        })
        .start()
        .expect("valid options")
}

fn dashmap() -> DashMap<u64, u64, DefaultHashBuilder> {
    DashMap::with_hasher(DefaultHashBuilder::default())
}

fn papaya() -> papaya::HashMap<u64, u64, DefaultHashBuilder> {
    papaya::HashMap::with_hasher(DefaultHashBuilder::default())
}

fn scc() -> scc::HashMap<u64, u64, DefaultHashBuilder> {
    scc::HashMap::with_hasher(DefaultHashBuilder::default())
}

fn std_map() -> Std {
    Mutex::new(StdMap::with_hasher(DefaultHashBuilder::default()))
}

/// Benchmarks `chunk`, which runs one timed chunk of `items` puts (plus any untimed work)
/// and returns the timed part.
///
/// Criterion's estimate is the honest one (the sum of the timed chunks over the iteration
/// count). Beside it, every chunk's time is kept (warm-up included) and a per-chunk median
/// is printed: on a shared, oversubscribed machine a writer that is preempted mid-chunk
/// inflates sums and means, but rarely the median.
fn bench_chunks(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    id: &str,
    items: u64,
    mut chunk: impl FnMut() -> Duration,
) {
    let mut times = Vec::new();
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let timed = chunk();
                    times.push(timed);
                    timed
                })
                .sum()
        })
    });
    if times.is_empty() {
        return; // filtered out
    }
    times.sort_unstable();
    let per_item = |d: Duration| d.as_secs_f64() * 1e9 / items as f64;
    let median = per_item(times[times.len() / 2]);
    println!(
        "{group_name}/{id}: chunk median {median:.2} ns/put = {:.1} Melem/s \
         (p10 {:.2}, p90 {:.2} ns/put; {} chunks)",
        1e3 / median,
        per_item(times[times.len() / 10]),
        per_item(times[times.len() * 9 / 10]),
        times.len(),
    );
}

/// Runs `put(t, i)` for `i in 0..per_thread` on two scoped threads `t = 0, 1`, each pinned to
/// a CPU of its own (`benches/common/pin.rs`) and released together by a barrier; returns the
/// span from the first thread's start to the last one's end (spawning and joining are not
/// timed; see `benches/queue_push.rs`).
fn two_writers(per_thread: u64, put: impl Fn(u64, u64) + Sync) -> Duration {
    two_writers_with(per_thread, || (), |(), t, i| put(t, i))
}

/// [`two_writers`], where each thread first makes its state with `state` (untimed) and
/// passes it to every `put`: papaya's guard.
fn two_writers_with<G>(
    per_thread: u64,
    state: impl Fn() -> G + Sync,
    put: impl Fn(&G, u64, u64) + Sync,
) -> Duration {
    let barrier = Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|t| {
                let (barrier, state, put) = (&barrier, &state, &put);
                s.spawn(move || {
                    pin::writer_to_own_cpu(t as usize);
                    let state = state();
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..per_thread {
                        put(&state, t, black_box(i));
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    end - start
}

/// One thread's timed loop of `puts` writes.
fn one_writer(puts: u64, mut put: impl FnMut(u64)) -> Duration {
    let start = Instant::now();
    for i in 0..puts {
        put(black_box(i));
    }
    start.elapsed()
}

/// The pairs `(i, i)` for `i` in a range, each key passed through `black_box` as in
/// [`one_writer`]; its length is exact, for `extend` to size the table.
struct Pairs(std::ops::Range<u64>);

impl Iterator for Pairs {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        self.0.next().map(|i| (black_box(i), i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// Times one batch write of the pairs `(i, i)` for `i in 0..puts`.
fn batch_writer(puts: u64, write: impl FnOnce(Pairs)) -> Duration {
    let start = Instant::now();
    write(Pairs(0..puts));
    start.elapsed()
}

fn put_hot_1thread(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP_HOT_1);
    group
        .throughput(Throughput::Elements(HOT_PUTS))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    let g = &mut group;
    let hot = |i: u64| i % HOT_KEYS;

    let map = tidefall_map(1);
    bench_chunks(g, GROUP_HOT_1, "tidefall", HOT_PUTS, || {
        let timed = one_writer(HOT_PUTS, |i| map.put(hot(i), i).unwrap());
        map.flush().unwrap();
        settle::after_flush();
        timed
    });
    map.stop().unwrap();

    let map = dashmap();
    bench_chunks(g, GROUP_HOT_1, "dashmap", HOT_PUTS, || {
        let timed = one_writer(HOT_PUTS, |i| {
            map.insert(hot(i), i);
        });
        map.clear();
        timed
    });

    let map = papaya();
    bench_chunks(g, GROUP_HOT_1, "papaya", HOT_PUTS, || {
        let pinned = map.pin();
        let timed = one_writer(HOT_PUTS, |i| {
            pinned.insert(hot(i), i);
        });
        pinned.clear();
        timed
    });

    let map = scc();
    bench_chunks(g, GROUP_HOT_1, "scc", HOT_PUTS, || {
        let timed = one_writer(HOT_PUTS, |i| {
            map.upsert_sync(hot(i), i);
        });
        map.clear_sync();
        timed
    });

    let map = std_map();
    bench_chunks(g, GROUP_HOT_1, "mutex_std", HOT_PUTS, || {
        let timed = one_writer(HOT_PUTS, |i| {
            map.lock().unwrap().insert(hot(i), i);
        });
        map.lock().unwrap().clear();
        timed
    });

    // The floors: no concurrency at all.
    let mut map = StdMap::with_hasher(DefaultHashBuilder::default());
    bench_chunks(g, GROUP_HOT_1, "floor_std_unlocked", HOT_PUTS, || {
        let timed = one_writer(HOT_PUTS, |i| {
            map.insert(hot(i), i);
        });
        map.clear();
        timed
    });

    let mut slots = PlainSlots::<2>::sized(HOT_KEYS);
    bench_chunks(g, GROUP_HOT_1, "floor_slots", HOT_PUTS, || {
        let timed = one_writer(HOT_PUTS, |i| slots.put(hot(i), i));
        slots.clear();
        timed
    });
    group.finish();
}

/// The floors of tidefall's table: its slot layout with none of its protocol. One thread's
/// open-addressing table, each slot an 8-byte state word (a flag and the hash's top 16 bits)
/// in one array and `CELLS` words of cells in another: with 2, the key and the value, as
/// tidefall's slot of a `put` (24 bytes a slot: the least a slot of this design holds; its
/// versions cell, apart, is written only by `put_newer`, and a key's hash is computed again
/// when its table grows); with 3, the key, the value and the hash (32 bytes a slot, as
/// tidefall's before `6c37d73`); with 4, an [`Entry`]'s four words (the key, the value, the
/// version and the `updates` count) and no hash (40 bytes a slot). Linear probing, as
/// `tidefall::raw::table`; plain loads and stores: no generation word, no owner check, no
/// partition routing, and the table in a local, not behind the map's pointers. Arrays of 4
/// MiB or more are advised as wanting huge pages, as tidefall's tables are.
///
/// * [`PlainSlots::sized`]: as many slots as a tidefall partition holding `keys` keys (a
///   power of two past `keys` / 0.75), never growing. M1's second floor: what tidefall's put
///   costs beyond it is its protocol and the loads that reach its table, not the table's
///   layout (PERFORMANCE.md, "Where M1's time goes"); sized for a million keys, M3's drained
///   floors.
/// * [`PlainSlots::growing`]: 16 slots, doubled past three quarters full as a fresh tidefall
///   table is, by a migration that moves every key to a table twice the size (placed by its
///   stored hash, or hashed again where the slot has none). M3's growth floors.
struct PlainSlots<const CELLS: usize> {
    hasher: DefaultHashBuilder,
    states: Vec<u64>,
    cells: Vec<[u64; CELLS]>,
    live: usize,
    grows: bool,
}

impl<const CELLS: usize> PlainSlots<CELLS> {
    /// The state word of a slot holding a key.
    const KEYED: u64 = 1 << 17;
    /// The cell that holds the hash, in tidefall's layout; the others hash a key again to
    /// move it.
    const HASH_CELL: Option<usize> = if CELLS == 3 { Some(2) } else { None };

    fn sized(keys: u64) -> Self {
        let len = ((keys * 4).div_ceil(3) + 1).next_power_of_two() as usize;
        Self::with_len(DefaultHashBuilder::default(), len, false)
    }

    fn growing() -> Self {
        Self::with_len(DefaultHashBuilder::default(), 16, true)
    }

    fn with_len(hasher: DefaultHashBuilder, len: usize, grows: bool) -> Self {
        PlainSlots {
            hasher,
            states: huge_array(len, 0),
            cells: huge_array(len, [0; CELLS]),
            live: 0,
            grows,
        }
    }

    #[inline]
    fn put(&mut self, key: u64, value: u64) {
        let hash = self.hasher.hash_one(key);
        let stored = Self::KEYED | hash >> 48;
        let mask = self.states.len() - 1;
        let mut index = hash as usize & mask;
        loop {
            let state = self.states[index];
            if state == stored && self.cells[index][0] == key {
                let cells = &mut self.cells[index];
                cells[1] = value;
                // The version and the `updates` count, in the `Entry` layout.
                if CELLS == 4 {
                    cells[2] = 0;
                    cells[3] = 0;
                }
                return;
            }
            if state == 0 {
                self.states[index] = stored;
                let mut cells = [0; CELLS];
                cells[0] = key;
                cells[1] = value;
                if let Some(cell) = Self::HASH_CELL {
                    cells[cell] = hash;
                }
                self.cells[index] = cells;
                if self.grows {
                    self.live += 1;
                    if self.live * 4 > self.states.len() * 3 {
                        self.grow();
                    }
                }
                return;
            }
            index = (index + 1) & mask;
        }
    }

    #[inline(never)]
    fn grow(&mut self) {
        let mut next = Self::with_len(self.hasher.clone(), self.states.len() * 2, true);
        let mask = next.states.len() - 1;
        for (&state, cells) in self.states.iter().zip(&self.cells) {
            if state != 0 {
                let hash = match Self::HASH_CELL {
                    Some(cell) => cells[cell],
                    None => self.hasher.hash_one(cells[0]),
                };
                let mut index = hash as usize & mask;
                while next.states[index] != 0 {
                    index = (index + 1) & mask;
                }
                next.states[index] = state;
                next.cells[index] = *cells;
            }
        }
        next.live = self.live;
        *self = next;
    }

    fn clear(&mut self) {
        self.states.fill(0);
    }

    /// Reads the value of every keyed slot, as a drain would, and empties the table; returns
    /// their sum, for `black_box`.
    fn drain(&mut self) -> u64 {
        let mut sum = 0u64;
        for (state, cells) in self.states.iter_mut().zip(&self.cells) {
            if *state != 0 {
                sum = sum.wrapping_add(cells[1]);
            }
            *state = 0;
        }
        sum
    }
}

/// An array of `len` copies of `zero`, advised (on Linux, 4 MiB or more, before it is
/// touched) as wanting transparent huge pages, as tidefall's tables are.
fn huge_array<T: Copy>(len: usize, zero: T) -> Vec<T> {
    let mut array: Vec<T> = Vec::with_capacity(len);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = array.as_ptr() as usize;
        let bytes = len * std::mem::size_of::<T>();
        let first = start.next_multiple_of(HUGE);
        let end = (start + bytes) / HUGE * HUGE;
        if bytes >= 2 * HUGE && end > first {
            // SAFETY: `[first, end)` lies within the array's allocation, rounded inwards to
            // whole huge pages; the advice changes how the kernel backs them, not their
            // contents.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    array.resize(len, zero);
    array
}

/// M3's growth floor of a [`PlainSlots`] layout: a table grown from 16 slots per chunk, as a
/// fresh tidefall map's is.
fn slots_fresh<const CELLS: usize>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str) {
    bench_chunks(g, GROUP_DISTINCT_1, id, DISTINCT, || {
        let mut slots = PlainSlots::<CELLS>::growing();
        one_writer(DISTINCT, |i| slots.put(i, i))
    });
}

/// M3's double-buffered floor of a [`PlainSlots`] layout: two tables sized for `DISTINCT`
/// keys written in turn, the one just written drained after each chunk (untimed).
fn slots_two_tables_drained<const CELLS: usize>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str) {
    let mut sides = [(); 2].map(|()| PlainSlots::<CELLS>::sized(DISTINCT));
    let mut turn = 0;
    bench_chunks(g, GROUP_DISTINCT_1, id, DISTINCT, || {
        let slots = &mut sides[turn % 2];
        turn += 1;
        let timed = one_writer(DISTINCT, |i| slots.put(i, i));
        black_box(slots.drain());
        timed
    });
}

fn put_hot_2threads(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP_HOT_2);
    let items = 2 * HOT_PER_THREAD;
    group
        .throughput(Throughput::Elements(items))
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    let g = &mut group;
    // Both threads write the same keys.
    let hot = |i: u64| i % HOT_KEYS;

    for partitions in [2, 1] {
        let map = tidefall_map(partitions);
        let id = format!("tidefall_{partitions}p");
        bench_chunks(g, GROUP_HOT_2, &id, items, || {
            let timed = two_writers(HOT_PER_THREAD, |_, i| map.put(hot(i), i).unwrap());
            map.flush().unwrap();
            settle::after_flush_of_two();
            timed
        });
        map.stop().unwrap();
    }

    let map = dashmap();
    bench_chunks(g, GROUP_HOT_2, "dashmap", items, || {
        let timed = two_writers(HOT_PER_THREAD, |_, i| {
            map.insert(hot(i), i);
        });
        map.clear();
        timed
    });

    let map = papaya();
    bench_chunks(g, GROUP_HOT_2, "papaya", items, || {
        let timed = two_writers_with(
            HOT_PER_THREAD,
            || map.guard(),
            |guard, _, i| {
                map.insert(hot(i), i, guard);
            },
        );
        map.pin().clear();
        timed
    });

    let map = scc();
    bench_chunks(g, GROUP_HOT_2, "scc", items, || {
        let timed = two_writers(HOT_PER_THREAD, |_, i| {
            map.upsert_sync(hot(i), i);
        });
        map.clear_sync();
        timed
    });

    let map = std_map();
    bench_chunks(g, GROUP_HOT_2, "mutex_std", items, || {
        let timed = two_writers(HOT_PER_THREAD, |_, i| {
            map.lock().unwrap().insert(hot(i), i);
        });
        map.lock().unwrap().clear();
        timed
    });
    group.finish();
}

fn put_distinct_1thread(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP_DISTINCT_1);
    group
        .throughput(Throughput::Elements(DISTINCT))
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    let g = &mut group;

    bench_chunks(g, GROUP_DISTINCT_1, "tidefall", DISTINCT, || {
        let map = tidefall_map(1);
        let timed = one_writer(DISTINCT, |i| map.put(i, i).unwrap());
        map.stop().unwrap();
        timed
    });

    let map = tidefall_map(1);
    bench_chunks(g, GROUP_DISTINCT_1, "tidefall_flushed", DISTINCT, || {
        let timed = one_writer(DISTINCT, |i| map.put(i, i).unwrap());
        map.flush().unwrap();
        settle::after_flush();
        timed
    });
    map.stop().unwrap();

    // The batch writes: tidefall's `put_all` (which reads ahead and fetches the slots of the
    // keys to come) into a fresh map and into one drained by `flush`, and std's `extend`
    // under one lock (which sizes the table for the iterator's length first). The
    // concurrent peers have no batch insert.
    bench_chunks(g, GROUP_DISTINCT_1, "tidefall_put_all", DISTINCT, || {
        let map = tidefall_map(1);
        let timed = batch_writer(DISTINCT, |keys| map.put_all(keys).unwrap());
        map.stop().unwrap();
        timed
    });

    let map = tidefall_map(1);
    bench_chunks(
        g,
        GROUP_DISTINCT_1,
        "tidefall_put_all_flushed",
        DISTINCT,
        || {
            let timed = batch_writer(DISTINCT, |keys| map.put_all(keys).unwrap());
            map.flush().unwrap();
            settle::after_flush();
            timed
        },
    );
    map.stop().unwrap();

    // The growth floors, each a fresh table per chunk, as `tidefall` above.
    slots_fresh::<2>(g, "floor_slots_fresh");
    slots_fresh::<3>(g, "floor_hashed_slots_fresh");
    slots_fresh::<4>(g, "floor_entry_slots_fresh");

    bench_chunks(g, GROUP_DISTINCT_1, "mutex_std_extend", DISTINCT, || {
        let map = std_map();
        batch_writer(DISTINCT, |keys| map.lock().unwrap().extend(keys))
    });

    // The peers' steady state as buffers, beside `tidefall_flushed`: one map emptied by
    // `clear` between chunks (untimed), which keeps its table's size.
    let map = std_map();
    bench_chunks(g, GROUP_DISTINCT_1, "mutex_std_drained", DISTINCT, || {
        let timed = one_writer(DISTINCT, |i| {
            map.lock().unwrap().insert(i, i);
        });
        map.lock().unwrap().clear();
        timed
    });
    bench_chunks(
        g,
        GROUP_DISTINCT_1,
        "mutex_std_extend_drained",
        DISTINCT,
        || {
            let timed = batch_writer(DISTINCT, |keys| map.lock().unwrap().extend(keys));
            map.lock().unwrap().clear();
            timed
        },
    );
    drop(map);

    // The drained floors: no concurrency at all, into a table kept from the chunk before.
    // tidefall's slot layout with none of its protocol (24 bytes a slot), and hashbrown's
    // (a control byte and a 16-byte bucket): what the slot's size costs, apart from the
    // protocol (PERFORMANCE.md, "M3 against its floor").
    let mut slots = PlainSlots::<2>::sized(DISTINCT);
    bench_chunks(g, GROUP_DISTINCT_1, "floor_slots_drained", DISTINCT, || {
        let timed = one_writer(DISTINCT, |i| slots.put(i, i));
        slots.clear();
        timed
    });
    drop(slots);
    let mut map = StdMap::with_hasher(DefaultHashBuilder::default());
    bench_chunks(
        g,
        GROUP_DISTINCT_1,
        "floor_std_unlocked_drained",
        DISTINCT,
        || {
            let timed = one_writer(DISTINCT, |i| {
                map.insert(i, i);
            });
            map.clear();
            timed
        },
    );
    drop(map);

    // The same two floors double-buffered, as tidefall's two sides are: two tables in turn,
    // and after each chunk (untimed) the table just written is drained, its values read and
    // its slots emptied, while the other one waits for the next chunk. What a second table
    // costs each layout, apart from any protocol (PERFORMANCE.md, "M3 against the floors of
    // its design"); tidefall's slot with its key's hash stored in it, besides, and an
    // `Entry`'s four words and a state word.
    slots_two_tables_drained::<2>(g, "floor_slots_two_tables_drained");
    slots_two_tables_drained::<3>(g, "floor_hashed_slots_two_tables_drained");
    slots_two_tables_drained::<4>(g, "floor_entry_slots_two_tables_drained");
    let mut sides = [(); 2].map(|()| StdMap::with_hasher(DefaultHashBuilder::default()));
    let mut turn = 0;
    bench_chunks(
        g,
        GROUP_DISTINCT_1,
        "floor_std_two_tables_drained",
        DISTINCT,
        || {
            let map = &mut sides[turn % 2];
            turn += 1;
            let timed = one_writer(DISTINCT, |i| {
                map.insert(i, i);
            });
            black_box(map.drain().map(|(_, value)| value).sum::<u64>());
            timed
        },
    );
    drop(sides);

    let map = dashmap();
    bench_chunks(g, GROUP_DISTINCT_1, "dashmap_drained", DISTINCT, || {
        let timed = one_writer(DISTINCT, |i| {
            map.insert(i, i);
        });
        map.clear();
        timed
    });
    drop(map);

    bench_chunks(g, GROUP_DISTINCT_1, "dashmap", DISTINCT, || {
        let map = dashmap();
        one_writer(DISTINCT, |i| {
            map.insert(i, i);
        })
    });

    bench_chunks(g, GROUP_DISTINCT_1, "papaya", DISTINCT, || {
        let map = papaya();
        let pinned = map.pin();
        one_writer(DISTINCT, |i| {
            pinned.insert(i, i);
        })
    });

    bench_chunks(g, GROUP_DISTINCT_1, "scc", DISTINCT, || {
        let map = scc();
        one_writer(DISTINCT, |i| {
            map.upsert_sync(i, i);
        })
    });

    bench_chunks(g, GROUP_DISTINCT_1, "mutex_std", DISTINCT, || {
        let map = std_map();
        one_writer(DISTINCT, |i| {
            map.lock().unwrap().insert(i, i);
        })
    });
    group.finish();
}

fn put_distinct_2threads(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP_DISTINCT_2);
    let per_thread = DISTINCT / 2;
    group
        .throughput(Throughput::Elements(DISTINCT))
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    let g = &mut group;
    // Interleaved: thread t writes the keys ≡ t (mod 2).
    let key = |t: u64, i: u64| i * 2 + t;

    for partitions in [2, 1] {
        let id = format!("tidefall_{partitions}p");
        bench_chunks(g, GROUP_DISTINCT_2, &id, DISTINCT, || {
            let map = tidefall_map(partitions);
            let timed = two_writers(per_thread, |t, i| map.put(key(t, i), i).unwrap());
            map.stop().unwrap();
            timed
        });
    }

    bench_chunks(g, GROUP_DISTINCT_2, "dashmap", DISTINCT, || {
        let map = dashmap();
        two_writers(per_thread, |t, i| {
            map.insert(key(t, i), i);
        })
    });

    bench_chunks(g, GROUP_DISTINCT_2, "papaya", DISTINCT, || {
        let map = papaya();
        two_writers_with(
            per_thread,
            || map.guard(),
            |guard, t, i| {
                map.insert(key(t, i), i, guard);
            },
        )
    });

    bench_chunks(g, GROUP_DISTINCT_2, "scc", DISTINCT, || {
        let map = scc();
        two_writers(per_thread, |t, i| {
            map.upsert_sync(key(t, i), i);
        })
    });

    bench_chunks(g, GROUP_DISTINCT_2, "mutex_std", DISTINCT, || {
        let map = std_map();
        two_writers(per_thread, |t, i| {
            map.lock().unwrap().insert(key(t, i), i);
        })
    });
    group.finish();
}

/// M1 in interleaved rounds (see [`interleaved`]): tidefall and the peers, a few chunks
/// each per round.
fn put_hot_1thread_interleaved(c: &mut Criterion) {
    let hot = |i: u64| i % HOT_KEYS;
    let (ours, dash, pap, sc, std) = (tidefall_map(1), dashmap(), papaya(), scc(), std_map());
    let contestants: Vec<Contestant<'_>> = vec![
        Contestant::new("tidefall", HOT_PUTS, || {
            let timed = one_writer(HOT_PUTS, |i| ours.put(hot(i), i).unwrap());
            ours.flush().unwrap();
            settle::after_flush();
            timed
        }),
        Contestant::new("dashmap", HOT_PUTS, || {
            let timed = one_writer(HOT_PUTS, |i| {
                dash.insert(hot(i), i);
            });
            dash.clear();
            timed
        }),
        Contestant::new("papaya", HOT_PUTS, || {
            let pinned = pap.pin();
            let timed = one_writer(HOT_PUTS, |i| {
                pinned.insert(hot(i), i);
            });
            pinned.clear();
            timed
        }),
        Contestant::new("scc", HOT_PUTS, || {
            let timed = one_writer(HOT_PUTS, |i| {
                sc.upsert_sync(hot(i), i);
            });
            sc.clear_sync();
            timed
        }),
        Contestant::new("mutex_std", HOT_PUTS, || {
            let timed = one_writer(HOT_PUTS, |i| {
                std.lock().unwrap().insert(hot(i), i);
            });
            std.lock().unwrap().clear();
            timed
        }),
    ];
    interleaved(c, "put_hot_1thread_interleaved", "put", contestants);
    ours.stop().unwrap();
}

/// M2 in interleaved rounds (see [`interleaved`]): tidefall with two partitions and with one,
/// and the peers, a few chunks each per round.
fn put_hot_2threads_interleaved(c: &mut Criterion) {
    let hot = |i: u64| i % HOT_KEYS;
    let (two, one) = (tidefall_map(2), tidefall_map(1));
    let (dash, pap, sc, std) = (dashmap(), papaya(), scc(), std_map());
    let tidefall = |map: &HashMap<u64, u64>| {
        let timed = two_writers(HOT_PER_THREAD, |_, i| map.put(hot(i), i).unwrap());
        map.flush().unwrap();
        settle::after_flush_of_two();
        timed
    };
    let contestants: Vec<Contestant<'_>> = vec![
        Contestant::new("tidefall_2p", 2 * HOT_PER_THREAD, || tidefall(&two)),
        Contestant::new("tidefall_1p", 2 * HOT_PER_THREAD, || tidefall(&one)),
        Contestant::new("dashmap", 2 * HOT_PER_THREAD, || {
            let timed = two_writers(HOT_PER_THREAD, |_, i| {
                dash.insert(hot(i), i);
            });
            dash.clear();
            timed
        }),
        Contestant::new("papaya", 2 * HOT_PER_THREAD, || {
            let timed = two_writers_with(
                HOT_PER_THREAD,
                || pap.guard(),
                |guard, _, i| {
                    pap.insert(hot(i), i, guard);
                },
            );
            pap.pin().clear();
            timed
        }),
        Contestant::new("scc", 2 * HOT_PER_THREAD, || {
            let timed = two_writers(HOT_PER_THREAD, |_, i| {
                sc.upsert_sync(hot(i), i);
            });
            sc.clear_sync();
            timed
        }),
        Contestant::new("mutex_std", 2 * HOT_PER_THREAD, || {
            let timed = two_writers(HOT_PER_THREAD, |_, i| {
                std.lock().unwrap().insert(hot(i), i);
            });
            std.lock().unwrap().clear();
            timed
        }),
    ];
    interleaved(c, "put_hot_2threads_interleaved", "put", contestants);
    two.stop().unwrap();
    one.stop().unwrap();
}

criterion_group!(
    benches,
    put_hot_1thread,
    put_hot_2threads,
    put_distinct_1thread,
    put_distinct_2threads,
    put_hot_1thread_interleaved,
    put_hot_2threads_interleaved
);
criterion_main!(benches);
