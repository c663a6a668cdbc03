//! The write path of `tidefall::Queue<u64>` beside its peers, in one run:
//! `crossbeam_queue::SegQueue<u64>` (a lock-free segmented queue, the closest design) and
//! `std::sync::Mutex<Vec<u64>>` (the obvious baseline).
//!
//! Every group measures pushes only: each timed chunk pushes a fixed number of items, and the
//! buffers are drained between chunks, outside the timed region, so they never grow without
//! bound and the drain's cost is not charged to the push. `cargo bench --bench queue_push`
//! runs all three groups in about 70 s (well under three minutes).
//!
//! tidefall's drain runs on its thread pool, so its single-thread figure depends on whether
//! the pool thread ran on the producer's core (recycled blocks come back warm) or another
//! one; PERFORMANCE.md has the numbers and the analysis.
//!
//! * `push_1thread`: one thread pushes `BATCH` items per timed chunk.
//! * `push_2threads`: two producer threads push `PER_THREAD` items each, concurrently;
//!   tidefall with `partitions(2)` (each thread on its own partition) and `partitions(1)`
//!   (both threads contend on one partition).
//! * `push_many_10`: `push_many` of 10 items, against SegQueue pushing 10 in a loop and
//!   `Mutex<Vec>` extending by 10 under one lock.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use crossbeam_queue::SegQueue;
use tidefall::{BatchSize, Queue};

const GROUP_1THREAD: &str = "push_1thread";
const GROUP_2THREADS: &str = "push_2threads";
const GROUP_MANY: &str = "push_many_10";

/// Items per timed chunk in `push_1thread`.
const BATCH: u64 = 10_000;
/// Items each producer pushes per iteration in `push_2threads`.
const PER_THREAD: u64 = 200_000;
/// `push_many` calls of 10 items per timed chunk in `push_many_10`.
const MANY_CALLS: u64 = 1_000;

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
/// is printed: on a shared, oversubscribed machine a pushing thread that is preempted
/// mid-chunk inflates sums and means, but rarely the median. A busy producer gets preempted
/// more than one that sleeps in `flush` between chunks, so comparing means alone can favour
/// the contestant whose drain sleeps.
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
        "{}/{id}: chunk median {median:.2} ns/item = {:.1} Melem/s \
         (p10 {:.2}, p90 {:.2} ns/item; {} chunks)",
        group_name,
        1e3 / median,
        per_item(times[times.len() / 10]),
        per_item(times[times.len() * 9 / 10]),
        times.len(),
    );
}

fn push_1thread(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP_1THREAD);
    group
        .throughput(Throughput::Elements(BATCH))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(50);

    let (queue, _) = tidefall_queue(1);
    bench_chunks(&mut group, GROUP_1THREAD, "tidefall", BATCH, || {
        let start = Instant::now();
        for i in 0..BATCH {
            queue.push(black_box(i)).unwrap();
        }
        let timed = start.elapsed();
        queue.flush().unwrap();
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

    // The Vec keeps its capacity across `clear`, so in steady state it never reallocates:
    // the most favourable case for the baseline.
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
    group.finish();
}

/// Runs `push(i)` for `PER_THREAD` items on each of two scoped threads, released together by
/// a barrier, and returns the span from the first thread's start to the last one's end.
///
/// Why scoped threads started per iteration rather than persistent ones: the timestamps are
/// taken inside the threads, after the barrier, so spawning and joining are not timed; what is
/// left is the barrier's wake-up skew (microseconds) against `2 * PER_THREAD` pushes
/// (milliseconds), and persistent threads would need a hand-off with the same wake-up cost.
/// Fresh threads also give tidefall's thread routing fresh, consecutive thread numbers, so
/// with two partitions the two producers always land on different partitions (checked once
/// in `push_2threads`).
fn two_producers(push: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..PER_THREAD {
                        push(black_box(i));
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

fn push_2threads(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP_2THREADS);
    group
        .throughput(Throughput::Elements(2 * PER_THREAD))
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(20);

    for partitions in [2, 1] {
        let (queue, calls) = tidefall_queue(partitions);
        // With `BatchSize::Table`, a flush makes one call per non-empty partition: as many
        // calls as partitions proves where the two producers landed.
        two_producers(|i| queue.push(i).unwrap());
        calls.store(0, Ordering::Relaxed);
        queue.flush().unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), partitions, "thread routing");

        let id = format!("tidefall_{partitions}p");
        bench_chunks(&mut group, GROUP_2THREADS, &id, 2 * PER_THREAD, || {
            let timed = two_producers(|i| queue.push(i).unwrap());
            queue.flush().unwrap();
            timed
        });
        queue.stop().unwrap();
    }

    let seg = SegQueue::new();
    bench_chunks(
        &mut group,
        GROUP_2THREADS,
        "segqueue",
        2 * PER_THREAD,
        || {
            let timed = two_producers(|i| seg.push(i));
            drain_segqueue(&seg);
            timed
        },
    );

    let vec = Mutex::new(Vec::new());
    bench_chunks(
        &mut group,
        GROUP_2THREADS,
        "mutex_vec",
        2 * PER_THREAD,
        || {
            let timed = two_producers(|i| vec.lock().unwrap().push(i));
            vec.lock().unwrap().clear();
            timed
        },
    );
    group.finish();
}

/// Ten items for `push_many` call number `call`, opaque to the optimizer.
fn ten(call: u64) -> [u64; 10] {
    let base = call * 10;
    black_box(std::array::from_fn(|j| base + j as u64))
}

fn push_many_10(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP_MANY);
    let items = 10 * MANY_CALLS;
    group
        .throughput(Throughput::Elements(items))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(50);

    let (queue, _) = tidefall_queue(1);
    bench_chunks(&mut group, GROUP_MANY, "tidefall", items, || {
        let start = Instant::now();
        for call in 0..MANY_CALLS {
            queue.push_many(ten(call)).unwrap();
        }
        let timed = start.elapsed();
        queue.flush().unwrap();
        timed
    });
    queue.stop().unwrap();

    let seg = SegQueue::new();
    bench_chunks(&mut group, GROUP_MANY, "segqueue", items, || {
        let start = Instant::now();
        for call in 0..MANY_CALLS {
            for item in ten(call) {
                seg.push(item);
            }
        }
        let timed = start.elapsed();
        drain_segqueue(&seg);
        timed
    });

    let vec = Mutex::new(Vec::new());
    bench_chunks(&mut group, GROUP_MANY, "mutex_vec", items, || {
        let start = Instant::now();
        for call in 0..MANY_CALLS {
            vec.lock().unwrap().extend(ten(call));
        }
        let timed = start.elapsed();
        vec.lock().unwrap().clear();
        timed
    });
    group.finish();
}

criterion_group!(benches, push_1thread, push_2threads, push_many_10);
criterion_main!(benches);
