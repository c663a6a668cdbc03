//! The write path of `tidefall::Queue<u64>` beside its peers, in one run (scenarios Q1–Q3 of
//! PERFORMANCE.md):
//!
//! * `crossbeam_queue::SegQueue<u64>`: a lock-free segmented queue, the closest design;
//! * `crossbeam_channel::unbounded`, `flume::unbounded` and `std::sync::mpsc::channel`: the
//!   channels a hand-written batching pipeline is built on (the receiver stays alive);
//! * `parking_lot::Mutex<Vec<u64>>` and `std::sync::Mutex<Vec<u64>>`: the obvious baselines;
//! * a bare `Vec<u64>` (one per producer thread): the physical floor, no synchronization.
//!
//! Every group measures pushes only: each timed chunk pushes a fixed number of items, and the
//! buffers are drained between chunks, outside the timed region (tidefall by `flush`, SegQueue
//! by `pop`, the channels by `try_recv`, the Vecs by `clear`, which keeps their capacity: the
//! best case for them), so they never grow without bound and the drain's cost is not charged
//! to the push. After tidefall's `flush` the next chunk waits 200 µs, untimed, for the pool's
//! workers to go back to sleep (`benches/common/settle.rs`). `cargo bench --bench
//! queue_push` runs the five groups in about three minutes.
//!
//! * `push_1thread` (Q1): one thread pushes `BATCH` items per timed chunk.
//! * `push_2threads` (Q2): two producer threads push `PER_THREAD` items each, concurrently;
//!   tidefall with `partitions(2)` (each thread owns its partition) and `partitions(1)` (both
//!   threads contend on one shared partition). `tidefall_1thread` is the scaling baseline:
//!   one producer thread pushing `PER_THREAD` items per chunk, the same chunk as each
//!   producer's, pinned and started as they are ([`with_producers`]); `vec_1thread` is the
//!   floor's, one producer pushing as many into a `Vec`, beside `vec_per_thread` (a `Vec` per
//!   producer), so that the run shows how far two plain `Vec`s scale on the machine.
//! * `push_many_10` (Q3): tidefall's `push_many` of 10 items against each peer's best batch
//!   insert: `extend` under one lock (the mutexes) or bare (the Vec); for the channels both
//!   ten `send`s of an item (`*_loop`) and one `send` of a `Vec` of ten (`*_vec`, the receiver
//!   gets batches); SegQueue has no batch insert and pushes ten times.
//! * `push_1thread_interleaved` (Q1 again): the contestants of `push_1thread` in interleaved
//!   rounds, a few chunks each per round, so that every ratio compares chunks taken within
//!   milliseconds of each other (`benches/common/interleaved.rs`).
//! * `push_2threads_interleaved` (Q2 again): tidefall's two producers and one thread,
//!   SegQueue and `parking_lot::Mutex<Vec>` in interleaved rounds: Q2's scaling and its
//!   4× SegQueue measured within each round.
//!
//! After each group the bench prints every contestant's per-chunk median and the ratios
//! tidefall ÷ peer (below 1: tidefall is faster); at the end, the targets for Q1–Q3
//! against those medians.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use crossbeam_queue::SegQueue;
use interleaved::{interleaved, Contestant};
use tidefall::{BatchSize, Queue};

#[path = "common/interleaved.rs"]
mod interleaved;
#[path = "common/pin.rs"]
mod pin;
#[path = "common/settle.rs"]
mod settle;

const GROUP_1THREAD: &str = "push_1thread";
const GROUP_2THREADS: &str = "push_2threads";
const GROUP_MANY: &str = "push_many_10";

/// Items per timed chunk in `push_1thread`.
const BATCH: u64 = 10_000;
/// Items each producer pushes per timed chunk in `push_2threads`.
const PER_THREAD: u64 = 200_000;
/// `push_many` calls of 10 items per timed chunk in `push_many_10`.
const MANY_CALLS: u64 = 1_000;

/// The contestant ids that are not peers but the physical floor: reported, never a target.
const FLOOR: &[&str] = &["vec", "vec_per_thread", "vec_1thread"];

/// Per-chunk medians (ns/item) of the contestants run so far, as `(group, id, median)`, for
/// the ratio tables and the targets.
static MEDIANS: Mutex<Vec<(&str, String, f64)>> = Mutex::new(Vec::new());

/// A tidefall queue that only drains when asked (`flush`): one tick an hour, a no-op
/// processor that takes a partition's whole tick in one call and counts its calls.
fn tidefall_queue(partitions: usize) -> (Queue<u64>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let queue = Queue::<u64>::builder()
        .name(format!("bench-{partitions}p"))
        .partitions(partitions)
        .processing_interval(Duration::from_secs(3600))
        .processing_batch_size(BatchSize::Table)
        .processor(move |batch: Vec<u64>| {
            counter.fetch_add(1, Ordering::Relaxed);
            black_box(batch);
        })
        .start()
        .expect("valid options");
    (queue, calls)
}

fn drain_segqueue(queue: &SegQueue<u64>) {
    while queue.pop().is_some() {}
}

/// Benchmarks `chunk`, which runs one timed chunk of `items` pushes (plus any untimed
/// draining) and returns the timed part.
///
/// Criterion's estimate is the honest one (the sum of the timed chunks over the iteration
/// count). Beside it, every chunk's time is kept (warm-up included) and a per-chunk median
/// is printed and recorded in [`MEDIANS`]: on a shared, oversubscribed machine a pushing
/// thread that is preempted mid-chunk inflates sums and means, but rarely the median. A busy
/// producer gets preempted more than one that sleeps in `flush` between chunks, so comparing
/// means alone can favour the contestant whose drain sleeps.
fn bench_chunks(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &'static str,
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
        "{}/{id}: chunk median {median:.2} ns/item = {:.1} Melem/s \
         (p10 {:.2}, p90 {:.2} ns/item; {} chunks)",
        group_name,
        1e3 / median,
        per_item(times[times.len() / 10]),
        per_item(times[times.len() * 9 / 10]),
        times.len(),
    );
    MEDIANS
        .lock()
        .unwrap()
        .push((group_name, id.to_owned(), median));
}

/// The recorded median of `id` in `group`, if it ran.
fn median(group: &str, id: &str) -> Option<f64> {
    MEDIANS
        .lock()
        .unwrap()
        .iter()
        .find(|(g, i, _)| *g == group && i == id)
        .map(|m| m.2)
}

/// The recorded medians of `group`'s peers: every contestant but tidefall's and the floor.
fn peers(group: &str) -> Vec<(String, f64)> {
    MEDIANS
        .lock()
        .unwrap()
        .iter()
        .filter(|(g, id, _)| {
            *g == group && !id.starts_with("tidefall") && !FLOOR.contains(&id.as_str())
        })
        .map(|(_, id, m)| (id.clone(), *m))
        .collect()
}

/// Prints, for each tidefall contestant of `group`, its per-chunk median divided by every
/// other contestant's (below 1: tidefall is faster).
fn print_ratios(group: &str) {
    let medians: Vec<(String, f64)> = MEDIANS
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.0 == group)
        .map(|(_, id, m)| (id.clone(), *m))
        .collect();
    // The scaling baseline of `push_2threads` is one thread: no ratio to two-thread peers.
    let ours = |id: &str| id.starts_with("tidefall") && id != "tidefall_1thread";
    for (ours, mine) in medians.iter().filter(|m| ours(&m.0)) {
        println!("{group}: ratios {ours} ÷ peer (per-chunk medians; below 1: {ours} is faster)");
        for (peer, theirs) in medians.iter().filter(|m| !m.0.starts_with("tidefall")) {
            println!(
                "  {ours} / {peer:<24} {:>6.3}   ({theirs:.2} ns/item; {ours} is {:.2}× as fast)",
                mine / theirs,
                theirs / mine,
            );
        }
    }
}

fn push_1thread(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP_1THREAD);
    group
        .throughput(Throughput::Elements(BATCH))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);

    let (queue, _) = tidefall_queue(1);
    bench_chunks(&mut group, GROUP_1THREAD, "tidefall", BATCH, || {
        let start = Instant::now();
        for i in 0..BATCH {
            queue.push(black_box(i)).unwrap();
        }
        let timed = start.elapsed();
        queue.flush().unwrap();
        settle::after_flush();
        timed
    });
    queue.stop().unwrap();

    let seg = SegQueue::new();
    bench_chunks(&mut group, GROUP_1THREAD, "segqueue", BATCH, || {
        let start = Instant::now();
        for i in 0..BATCH {
            seg.push(black_box(i));
        }
        let timed = start.elapsed();
        drain_segqueue(&seg);
        timed
    });

    let (tx, rx) = crossbeam_channel::unbounded();
    bench_chunks(
        &mut group,
        GROUP_1THREAD,
        "crossbeam_channel",
        BATCH,
        || {
            let start = Instant::now();
            for i in 0..BATCH {
                tx.send(black_box(i)).unwrap();
            }
            let timed = start.elapsed();
            while rx.try_recv().is_ok() {}
            timed
        },
    );

    let (tx, rx) = flume::unbounded();
    bench_chunks(&mut group, GROUP_1THREAD, "flume", BATCH, || {
        let start = Instant::now();
        for i in 0..BATCH {
            tx.send(black_box(i)).unwrap();
        }
        let timed = start.elapsed();
        while rx.try_recv().is_ok() {}
        timed
    });

    let (tx, rx) = mpsc::channel();
    bench_chunks(&mut group, GROUP_1THREAD, "std_mpsc", BATCH, || {
        let start = Instant::now();
        for i in 0..BATCH {
            tx.send(black_box(i)).unwrap();
        }
        let timed = start.elapsed();
        while rx.try_recv().is_ok() {}
        timed
    });

    let vec = parking_lot::Mutex::new(Vec::new());
    bench_chunks(&mut group, GROUP_1THREAD, "parking_lot_vec", BATCH, || {
        let start = Instant::now();
        for i in 0..BATCH {
            vec.lock().push(black_box(i));
        }
        let timed = start.elapsed();
        vec.lock().clear();
        timed
    });

    let vec = Mutex::new(Vec::new());
    bench_chunks(&mut group, GROUP_1THREAD, "mutex_vec", BATCH, || {
        let start = Instant::now();
        for i in 0..BATCH {
            vec.lock().unwrap().push(black_box(i));
        }
        let timed = start.elapsed();
        vec.lock().unwrap().clear();
        timed
    });

    let mut vec = Vec::new();
    bench_chunks(&mut group, GROUP_1THREAD, "vec", BATCH, || {
        let start = Instant::now();
        for i in 0..BATCH {
            vec.push(black_box(i));
        }
        let timed = start.elapsed();
        vec.clear();
        timed
    });
    group.finish();
    print_ratios(GROUP_1THREAD);
}

/// Runs `run` with `N` producer threads (one or two) that live as long as it does, each
/// pinned to a CPU of its own (`benches/common/pin.rs`). Each one makes its own state with
/// `state`, then, for every call of the chunk function `run` is given: calls `reset` on its
/// state (untimed), pushes items `0..PER_THREAD` with `push` (timed), and waits for the next
/// chunk. The chunk function releases the threads through a barrier and returns the span
/// from the first thread's start to the last one's end, timestamps taken inside the threads.
/// Q2's one-thread baselines run on one such thread, so that both sides of the scaling
/// ratio start the same way: a pinned thread woken by the barrier.
///
/// Why persistent threads: a tidefall partition's first writer owns it for the store's life,
/// and a second writer makes it shared for good; fresh threads every chunk would turn every
/// partition shared after the first chunk, which is not how long-lived producers use it.
/// The barrier wakes two threads one after the other (a futex wake each): alone, it left
/// their starts 20–22 µs apart on the 2-vCPU guest of PERFORMANCE.md, 5–7% of a tidefall
/// chunk, which the span counted as if a producer were slow ("Q2's start", PERFORMANCE.md).
/// So after the barrier the first thread spins until the others are awake and spinning
/// too, then releases them, and all take their start timestamps within a cache line's
/// transfer of each other (about 1 µs apart in the same standalone loop). The spin is
/// untimed. The threads take their thread numbers at
/// their first push, consecutively, so with two partitions they land on different ones
/// (checked once in `push_2threads`).
fn with_producers<const N: usize, S, R>(
    state: impl Fn() -> S + Sync,
    reset: impl Fn(&mut S) + Sync,
    push: impl Fn(&mut S, u64) + Sync,
    run: impl FnOnce(&mut dyn FnMut() -> Duration) -> R,
) -> R {
    /// Releases the producers for good when `run` returns or panics.
    struct Release<'a> {
        stop: &'a AtomicBool,
        go: &'a Barrier,
    }
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            self.go.wait();
        }
    }

    const { assert!(N == 1 || N == 2, "one or two producers: one per vCPU") };
    let go = Barrier::new(N + 1);
    let done = Barrier::new(N + 1);
    let stop = AtomicBool::new(false);
    // How many chunks the other threads have been awake for, all told, and the last chunk
    // the first thread released.
    let (ready, started) = (AtomicU64::new(0), AtomicU64::new(0));
    let spans: [Mutex<Option<(Instant, Instant)>>; N] = std::array::from_fn(|_| Mutex::new(None));
    thread::scope(|s| {
        for (writer, span) in spans.iter().enumerate() {
            let (go, done, stop) = (&go, &done, &stop);
            let (ready, started) = (&ready, &started);
            let (state, reset, push) = (&state, &reset, &push);
            s.spawn(move || {
                pin::writer_to_own_cpu(writer);
                let mut mine = state();
                let mut chunk = 0;
                loop {
                    reset(&mut mine);
                    go.wait();
                    // Relaxed: the barrier orders it.
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    chunk += 1;
                    // Relaxed (all four): the two words only time the start; the barriers
                    // order everything else.
                    if writer == 0 {
                        while ready.load(Ordering::Relaxed) < chunk * (N as u64 - 1) {
                            std::hint::spin_loop();
                        }
                        started.store(chunk, Ordering::Relaxed);
                    } else {
                        ready.fetch_add(1, Ordering::Relaxed);
                        while started.load(Ordering::Relaxed) < chunk {
                            std::hint::spin_loop();
                        }
                    }
                    let start = Instant::now();
                    for i in 0..PER_THREAD {
                        push(&mut mine, black_box(i));
                    }
                    *span.lock().unwrap() = Some((start, Instant::now()));
                    done.wait();
                }
            });
        }
        let _release = Release {
            stop: &stop,
            go: &go,
        };
        run(&mut || {
            go.wait();
            done.wait();
            let ran = spans
                .each_ref()
                .map(|span| span.lock().unwrap().take().expect("the producer ran"));
            let first = ran.iter().map(|&(start, _)| start).min();
            let last = ran.iter().map(|&(_, end)| end).max();
            last.zip(first)
                .map_or(Duration::ZERO, |(last, first)| last - first)
        })
    })
}

/// [`with_producers`] for a structure both threads push into.
fn with_two_pushing<R>(
    push: impl Fn(u64) + Sync,
    run: impl FnOnce(&mut dyn FnMut() -> Duration) -> R,
) -> R {
    with_producers::<2, _, _>(|| (), |_| {}, |_, i| push(i), run)
}

/// Q2's scaling baseline: one producer thread, as [`with_producers`] runs it, pushing one
/// producer's share into `queue`, which is flushed after each chunk (untimed).
fn with_one_producer<R>(
    queue: &Queue<u64>,
    run: impl FnOnce(&mut dyn FnMut() -> Duration) -> R,
) -> R {
    with_producers::<1, _, _>(
        || (),
        |_| {},
        |_, i| queue.push(i).unwrap(),
        |chunk| {
            run(&mut || {
                let timed = chunk();
                queue.flush().unwrap();
                settle::after_flush();
                timed
            })
        },
    )
}

/// Benchmarks two producers pushing with `push` into a structure `drain` empties between
/// chunks.
fn bench_two(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    push: impl Fn(u64) + Sync,
    drain: impl Fn(),
) {
    with_two_pushing(push, |chunk| {
        bench_chunks(group, GROUP_2THREADS, id, 2 * PER_THREAD, || {
            let timed = chunk();
            drain();
            timed
        });
    });
}

fn push_2threads(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP_2THREADS);
    group
        .throughput(Throughput::Elements(2 * PER_THREAD))
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);

    // The scaling baseline: one thread pushing one producer's share per chunk. Q1's chunk is
    // 20 times smaller, and fits the blocks a lane recycles between ticks; a chunk of
    // `PER_THREAD` items does not (it allocates most of its blocks), so the 2-thread total is
    // compared with this, not with Q1.
    group.throughput(Throughput::Elements(PER_THREAD));
    let (queue, _) = tidefall_queue(1);
    with_one_producer(&queue, |chunk| {
        bench_chunks(
            &mut group,
            GROUP_2THREADS,
            "tidefall_1thread",
            PER_THREAD,
            chunk,
        );
    });
    queue.stop().unwrap();
    // The floor's own scaling baseline: one thread pushing one producer's share into a `Vec`
    // (cleared between chunks, its capacity kept), against `vec_per_thread` below.
    with_producers::<1, _, _>(
        Vec::new,
        Vec::clear,
        |vec, i| vec.push(i),
        |chunk| bench_chunks(&mut group, GROUP_2THREADS, "vec_1thread", PER_THREAD, chunk),
    );
    group.throughput(Throughput::Elements(2 * PER_THREAD));

    for partitions in [2, 1] {
        let (queue, calls) = tidefall_queue(partitions);
        let id = format!("tidefall_{partitions}p");
        with_two_pushing(
            |i| queue.push(i).unwrap(),
            |chunk| {
                // With `BatchSize::Table`, a flush makes one call per non-empty partition: as
                // many calls as partitions proves where the two producers landed.
                chunk();
                calls.store(0, Ordering::Relaxed);
                queue.flush().unwrap();
                assert_eq!(calls.load(Ordering::Relaxed), partitions, "thread routing");
                bench_chunks(&mut group, GROUP_2THREADS, &id, 2 * PER_THREAD, || {
                    let timed = chunk();
                    queue.flush().unwrap();
                    settle::after_flush_of_two();
                    timed
                });
            },
        );
        queue.stop().unwrap();
    }

    let seg = SegQueue::new();
    bench_two(
        &mut group,
        "segqueue",
        |i| seg.push(i),
        || drain_segqueue(&seg),
    );

    let (tx, rx) = crossbeam_channel::unbounded();
    bench_two(
        &mut group,
        "crossbeam_channel",
        |i| tx.send(i).unwrap(),
        || while rx.try_recv().is_ok() {},
    );

    let (tx, rx) = flume::unbounded();
    bench_two(
        &mut group,
        "flume",
        |i| tx.send(i).unwrap(),
        || while rx.try_recv().is_ok() {},
    );

    let (tx, rx) = mpsc::channel();
    bench_two(
        &mut group,
        "std_mpsc",
        |i| tx.send(i).unwrap(),
        || while rx.try_recv().is_ok() {},
    );

    let vec = parking_lot::Mutex::new(Vec::new());
    bench_two(
        &mut group,
        "parking_lot_vec",
        |i| vec.lock().push(i),
        || vec.lock().clear(),
    );

    let vec = Mutex::new(Vec::new());
    bench_two(
        &mut group,
        "mutex_vec",
        |i| vec.lock().unwrap().push(i),
        || vec.lock().unwrap().clear(),
    );

    with_producers::<2, _, _>(
        Vec::new,
        Vec::clear,
        |vec, i| vec.push(i),
        |chunk| {
            bench_chunks(
                &mut group,
                GROUP_2THREADS,
                "vec_per_thread",
                2 * PER_THREAD,
                chunk,
            );
        },
    );
    group.finish();
    print_ratios(GROUP_2THREADS);
}

/// Ten items for `push_many` call number `call`, opaque to the optimizer.
fn ten(call: u64) -> [u64; 10] {
    let base = call * 10;
    black_box(std::array::from_fn(|j| base + j as u64))
}

/// Benchmarks one thread making `MANY_CALLS` batch inserts of ten items with `insert` per
/// timed chunk, and `drain` between chunks.
fn bench_many(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    mut insert: impl FnMut([u64; 10]),
    mut drain: impl FnMut(),
) {
    bench_chunks(group, GROUP_MANY, id, 10 * MANY_CALLS, || {
        let start = Instant::now();
        for call in 0..MANY_CALLS {
            insert(ten(call));
        }
        let timed = start.elapsed();
        drain();
        timed
    });
}

fn push_many_10(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP_MANY);
    group
        .throughput(Throughput::Elements(10 * MANY_CALLS))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);

    let (queue, _) = tidefall_queue(1);
    bench_many(
        &mut group,
        "tidefall",
        |items| queue.push_many(items).unwrap(),
        || {
            queue.flush().unwrap();
            settle::after_flush();
        },
    );
    queue.stop().unwrap();

    let (queue, _) = tidefall_queue(1);
    bench_many(
        &mut group,
        "tidefall_slice",
        |items| queue.push_slice(&items).unwrap(),
        || {
            queue.flush().unwrap();
            settle::after_flush();
        },
    );
    queue.stop().unwrap();

    let seg = SegQueue::new();
    bench_many(
        &mut group,
        "segqueue",
        |items| items.into_iter().for_each(|i| seg.push(i)),
        || drain_segqueue(&seg),
    );

    let (tx, rx) = crossbeam_channel::unbounded();
    bench_many(
        &mut group,
        "crossbeam_channel_loop",
        |items| items.into_iter().for_each(|i| tx.send(i).unwrap()),
        || while rx.try_recv().is_ok() {},
    );
    let (tx, rx) = crossbeam_channel::unbounded();
    bench_many(
        &mut group,
        "crossbeam_channel_vec",
        |items| tx.send(items.to_vec()).unwrap(),
        || while rx.try_recv().is_ok() {},
    );

    let (tx, rx) = flume::unbounded();
    bench_many(
        &mut group,
        "flume_loop",
        |items| items.into_iter().for_each(|i| tx.send(i).unwrap()),
        || while rx.try_recv().is_ok() {},
    );
    let (tx, rx) = flume::unbounded();
    bench_many(
        &mut group,
        "flume_vec",
        |items| tx.send(items.to_vec()).unwrap(),
        || while rx.try_recv().is_ok() {},
    );

    let (tx, rx) = mpsc::channel();
    bench_many(
        &mut group,
        "std_mpsc_loop",
        |items| items.into_iter().for_each(|i| tx.send(i).unwrap()),
        || while rx.try_recv().is_ok() {},
    );
    let (tx, rx) = mpsc::channel();
    bench_many(
        &mut group,
        "std_mpsc_vec",
        |items| tx.send(items.to_vec()).unwrap(),
        || while rx.try_recv().is_ok() {},
    );

    let vec = parking_lot::Mutex::new(Vec::new());
    bench_many(
        &mut group,
        "parking_lot_vec",
        |items| vec.lock().extend(items),
        || vec.lock().clear(),
    );

    let vec = Mutex::new(Vec::new());
    bench_many(
        &mut group,
        "mutex_vec",
        |items| vec.lock().unwrap().extend(items),
        || vec.lock().unwrap().clear(),
    );

    let mut vec = Vec::new();
    bench_chunks(&mut group, GROUP_MANY, "vec", 10 * MANY_CALLS, || {
        let start = Instant::now();
        for call in 0..MANY_CALLS {
            vec.extend(ten(call));
        }
        let timed = start.elapsed();
        vec.clear();
        timed
    });
    group.finish();
    print_ratios(GROUP_MANY);
}

/// One line of the targets table: `met` is `None` when a contestant it needs did not run.
fn target_line(scenario: &str, target: &str, measured: String, met: Option<bool>) {
    let met = match met {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "not run",
    };
    println!("  {scenario:<3} {target:<44} {measured:<40} {met}");
}

/// The worst ratio tidefall ÷ peer over `group`'s peers (the largest), with that peer.
fn worst_peer(group: &str, ours: f64) -> Option<(String, f64)> {
    peers(group)
        .into_iter()
        .map(|(id, theirs)| (id, ours / theirs))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Prints the targets for Q1–Q3 against the per-chunk medians of this run.
fn targets(_: &mut Criterion) {
    println!("targets (per-chunk medians of this run; ratios are tidefall ÷ peer ns/item):");
    let q1 = median(GROUP_1THREAD, "tidefall");
    let q2 = median(GROUP_2THREADS, "tidefall_2p");
    let q3 = median(GROUP_MANY, "tidefall");
    let show = |x: Option<f64>, unit: &str| x.map_or("-".into(), |x| format!("{x:.2}{unit}"));

    target_line(
        "Q1",
        "push ≤ 5 ns/item",
        show(q1, " ns/item"),
        q1.map(|x| x <= 5.0),
    );
    for (group, ours, scenario) in [(GROUP_1THREAD, q1, "Q1"), (GROUP_2THREADS, q2, "Q2")] {
        let seg = ours.zip(median(group, "segqueue")).map(|(a, b)| a / b);
        target_line(
            scenario,
            "≥ 4× SegQueue (ratio ≤ 0.25)",
            show(seg, ""),
            seg.map(|r| r <= 0.25),
        );
        let worst = ours.and_then(|ours| worst_peer(group, ours));
        target_line(
            scenario,
            "≥ 2× every other peer (worst ratio ≤ 0.5)",
            worst
                .as_ref()
                .map_or("-".into(), |(id, r)| format!("{r:.2} (vs {id})")),
            worst.map(|w| w.1 <= 0.5),
        );
    }
    // Against one thread pushing the same chunk (see `push_2threads`); beside it, against Q1.
    let alone = median(GROUP_2THREADS, "tidefall_1thread");
    let scaling = alone.zip(q2).map(|(one, two)| one / two);
    target_line(
        "Q2",
        "2-thread total ≥ 1.8× one thread's throughput (same chunk)",
        show(scaling, "×"),
        scaling.map(|s| s >= 1.8),
    );
    let against_q1 = q1.zip(q2).map(|(one, two)| one / two);
    println!(
        "  Q2  (the same against Q1's smaller chunk: {})",
        show(against_q1, "×")
    );
    let floor = median(GROUP_2THREADS, "vec_1thread")
        .zip(median(GROUP_2THREADS, "vec_per_thread"))
        .map(|(one, two)| one / two);
    println!(
        "  Q2  (the floor's own scaling, a Vec per thread against one thread's Vec, same chunk: {})",
        show(floor, "×")
    );
    target_line(
        "Q3",
        "push_many ≤ 2 ns/item",
        show(q3, " ns/item"),
        q3.map(|x| x <= 2.0),
    );
    let q3_slice = median(GROUP_MANY, "tidefall_slice");
    target_line(
        "Q3",
        "push_slice ≤ 2 ns/item",
        show(q3_slice, " ns/item"),
        q3_slice.map(|x| x <= 2.0),
    );
}

/// One thread's timed loop of `items` pushes with `push`.
fn pushes(items: u64, mut push: impl FnMut(u64)) -> Duration {
    let start = Instant::now();
    for i in 0..items {
        push(black_box(i));
    }
    start.elapsed()
}

/// Q1 in interleaved rounds (see `benches/common/interleaved.rs`): tidefall and the peers,
/// and `Vec::push` as the floor, a few chunks each per round.
fn push_1thread_interleaved(c: &mut Criterion) {
    let (queue, _) = tidefall_queue(1);
    let seg = SegQueue::new();
    let (cb_tx, cb_rx) = crossbeam_channel::unbounded();
    let (fl_tx, fl_rx) = flume::unbounded();
    let (std_tx, std_rx) = mpsc::channel();
    let pl_vec = parking_lot::Mutex::new(Vec::new());
    let std_vec = Mutex::new(Vec::new());
    let mut vec = Vec::new();
    let contestants: Vec<Contestant<'_>> = vec![
        Contestant::new("tidefall", BATCH, || {
            let timed = pushes(BATCH, |i| queue.push(i).unwrap());
            queue.flush().unwrap();
            settle::after_flush();
            timed
        }),
        Contestant::new("segqueue", BATCH, || {
            let timed = pushes(BATCH, |i| seg.push(i));
            drain_segqueue(&seg);
            timed
        }),
        Contestant::new("crossbeam_channel", BATCH, || {
            let timed = pushes(BATCH, |i| cb_tx.send(i).unwrap());
            while cb_rx.try_recv().is_ok() {}
            timed
        }),
        Contestant::new("flume", BATCH, || {
            let timed = pushes(BATCH, |i| fl_tx.send(i).unwrap());
            while fl_rx.try_recv().is_ok() {}
            timed
        }),
        Contestant::new("std_mpsc", BATCH, || {
            let timed = pushes(BATCH, |i| std_tx.send(i).unwrap());
            while std_rx.try_recv().is_ok() {}
            timed
        }),
        Contestant::new("parking_lot_vec", BATCH, || {
            let timed = pushes(BATCH, |i| pl_vec.lock().push(i));
            pl_vec.lock().clear();
            timed
        }),
        Contestant::new("mutex_vec", BATCH, || {
            let timed = pushes(BATCH, |i| std_vec.lock().unwrap().push(i));
            std_vec.lock().unwrap().clear();
            timed
        }),
        Contestant::new("vec", BATCH, || {
            let timed = pushes(BATCH, |i| vec.push(i));
            vec.clear();
            timed
        }),
    ];
    interleaved(c, "push_1thread_interleaved", "item", contestants);
    queue.stop().unwrap();
}

/// Q2 in interleaved rounds (see `benches/common/interleaved.rs`): two producers pushing
/// into tidefall with two partitions, into SegQueue and into a `parking_lot::Mutex<Vec>`
/// (Q2's worst peer in the runs so far), and one thread pushing one producer's share into
/// tidefall. Per item, the one thread's time over the two producers' is Q2's scaling: the
/// two-thread total throughput over one thread's, measured in the same round.
fn push_2threads_interleaved(c: &mut Criterion) {
    let (two, calls) = tidefall_queue(2);
    let (one, _) = tidefall_queue(1);
    let seg = SegQueue::new();
    let vec = parking_lot::Mutex::new(Vec::new());
    with_two_pushing(
        |i| two.push(i).unwrap(),
        |two_chunk| {
            // As in `push_2threads`: one processor call per partition proves that the
            // producers landed on different partitions.
            two_chunk();
            calls.store(0, Ordering::Relaxed);
            two.flush().unwrap();
            assert_eq!(calls.load(Ordering::Relaxed), 2, "thread routing");
            with_two_pushing(
                |i| seg.push(i),
                |seg_chunk| {
                    with_two_pushing(
                        |i| vec.lock().push(i),
                        |vec_chunk| {
                            with_one_producer(&one, |one_chunk| {
                                let contestants = vec![
                                    Contestant::new("tidefall_2p", 2 * PER_THREAD, || {
                                        let timed = two_chunk();
                                        two.flush().unwrap();
                                        settle::after_flush_of_two();
                                        timed
                                    }),
                                    Contestant::new("tidefall_1thread", PER_THREAD, one_chunk),
                                    Contestant::new("segqueue", 2 * PER_THREAD, || {
                                        let timed = seg_chunk();
                                        drain_segqueue(&seg);
                                        timed
                                    }),
                                    Contestant::new("parking_lot_vec", 2 * PER_THREAD, || {
                                        let timed = vec_chunk();
                                        vec.lock().clear();
                                        timed
                                    }),
                                ];
                                interleaved(c, "push_2threads_interleaved", "item", contestants);
                            })
                        },
                    );
                },
            );
        },
    );
    two.stop().unwrap();
    one.stop().unwrap();
}

criterion_group!(
    benches,
    push_1thread,
    push_2threads,
    push_many_10,
    targets,
    push_1thread_interleaved,
    push_2threads_interleaved
);
criterion_main!(benches);
