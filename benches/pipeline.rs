//! End to end (scenario Q4 of PERFORMANCE.md): two producer threads push `ITEMS` `u64`s in
//! all (`ITEMS / 2` each); the time measured runs from the producers' release until the
//! processor has returned for every item.
//!
//! * `tidefall`: a `Queue<u64>` with `partitions(2)` (each producer owns one),
//!   `processing_batch_size(512)` and the default 5 s interval; the producers push, then the
//!   main thread calls `flush()`, which drains both partitions on the pool and returns once the
//!   processor has seen everything.
//! * `channel_batcher`: the hand-written pipeline tidefall replaces, shaped like
//!   OpenTelemetry's batch processor: an unbounded `crossbeam_channel` of messages (an item or
//!   a flush request) and one collector thread that gathers items into batches of 512, calls
//!   the processor on each full batch, and on a flush request processes the partial batch and
//!   acknowledges. The producers send, then the main thread sends the flush request and waits
//!   for the acknowledgement.
//!
//! Both call the same processor on owned `Vec<u64>` batches: it sums the batch and adds the
//! sum and the count to two atomics, which the bench checks after every run (untimed). The
//! producers are two threads that live for a contestant's whole run (a tidefall partition's
//! first writer owns it for good); the main thread releases them through a barrier and waits
//! for them on another, and its clock starts before the release, so the wake-up (microseconds)
//! is included in runs of tens of milliseconds.
//!
//! Besides criterion's estimate the bench prints each contestant's per-run median and the
//! ratio channel ÷ tidefall of the medians (the target is ≥ 1.5: tidefall at least 1.5× as
//! fast). `cargo bench --bench pipeline` takes about 25 s.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use crossbeam_channel::{Receiver, Sender};
use tidefall::Queue;

const GROUP: &str = "pipeline_2_producers";
/// Items pushed per run, by both producers together.
const ITEMS: u64 = 2_000_000;
/// Items each producer pushes per run.
const PER_PRODUCER: u64 = ITEMS / 2;
/// Items per processor call, in both pipelines.
const BATCH: usize = 512;

/// What the processor has seen.
#[derive(Default)]
struct Sink {
    items: AtomicU64,
    sum: AtomicU64,
}

impl Sink {
    /// The processor both pipelines call.
    fn process(&self, batch: Vec<u64>) {
        let sum: u64 = batch.iter().sum();
        self.sum.fetch_add(sum, Ordering::Relaxed);
        self.items.fetch_add(batch.len() as u64, Ordering::Relaxed);
    }

    /// Checks that the processor has seen exactly `runs` runs' items, and resets.
    fn check(&self, runs: u64) {
        let per_producer_sum = PER_PRODUCER * (PER_PRODUCER - 1) / 2;
        assert_eq!(self.items.swap(0, Ordering::Relaxed), runs * ITEMS);
        assert_eq!(
            self.sum.swap(0, Ordering::Relaxed),
            runs * 2 * per_producer_sum
        );
    }
}

/// A message of the hand-written pipeline.
enum Msg {
    Item(u64),
    /// Process what is buffered, then acknowledge.
    Flush,
}

/// The collector thread of the hand-written pipeline: batches of `BATCH` to the processor,
/// the partial batch on a flush request.
fn collector(messages: Receiver<Msg>, acks: Sender<()>, sink: &Sink) {
    let mut batch = Vec::with_capacity(BATCH);
    for message in messages {
        match message {
            Msg::Item(item) => {
                batch.push(item);
                if batch.len() == BATCH {
                    sink.process(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                }
            }
            Msg::Flush => {
                if !batch.is_empty() {
                    sink.process(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                }
                acks.send(()).unwrap();
            }
        }
    }
}

/// Runs `run` with two producer threads that live as long as it does; the function `run` is
/// given releases both, each pushes items `0..PER_PRODUCER` with `push`, and returns once
/// both are done.
fn with_producers<R>(push: impl Fn(u64) + Sync, run: impl FnOnce(&mut dyn FnMut()) -> R) -> R {
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

    let go = Barrier::new(3);
    let done = Barrier::new(3);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        for _ in 0..2 {
            let (go, done, stop, push) = (&go, &done, &stop, &push);
            s.spawn(move || loop {
                go.wait();
                // Relaxed: the barrier orders it.
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                for i in 0..PER_PRODUCER {
                    push(black_box(i));
                }
                done.wait();
            });
        }
        let _release = Release {
            stop: &stop,
            go: &go,
        };
        run(&mut || {
            go.wait();
            done.wait();
        })
    })
}

/// Benchmarks `id`: each run releases the producers (`produce`), then `finish` returns once
/// the processor has seen everything. Prints and returns the per-run median.
fn bench_runs(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    produce: &mut dyn FnMut(),
    finish: impl Fn(),
    sink: &Sink,
) -> Option<f64> {
    let mut times = Vec::new();
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                produce();
                finish();
                let took = start.elapsed();
                times.push(took);
                total += took;
            }
            sink.check(iters);
            total
        })
    });
    if times.is_empty() {
        return None; // filtered out
    }
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = ms(times[times.len() / 2]);
    println!(
        "{GROUP}/{id}: run median {median:.2} ms = {:.2} ns/item = {:.1} Melem/s \
         (p10 {:.2}, p90 {:.2} ms; {} runs)",
        median * 1e6 / ITEMS as f64,
        ITEMS as f64 / median / 1e3,
        ms(times[times.len() / 10]),
        ms(times[times.len() * 9 / 10]),
        times.len(),
    );
    Some(median)
}

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    group
        .throughput(Throughput::Elements(ITEMS))
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .sample_size(10);

    let sink = Arc::new(Sink::default());
    let processor = Arc::clone(&sink);
    let queue = Queue::<u64>::builder()
        .name("bench-pipeline")
        .partitions(2)
        .processing_batch_size(BATCH)
        .processor(move |batch: Vec<u64>| processor.process(batch))
        .start()
        .expect("valid options");
    let tidefall = with_producers(
        |i| queue.push(i).unwrap(),
        |produce| {
            bench_runs(
                &mut group,
                "tidefall",
                produce,
                || queue.flush().unwrap(),
                &sink,
            )
        },
    );
    queue.stop().unwrap();

    let channel = thread::scope(|s| {
        // Made inside the scope: `messages` is dropped when this closure returns (or
        // unwinds), which ends the collector before the scope joins it.
        let (messages, inbox) = crossbeam_channel::unbounded();
        let (acks, acked) = crossbeam_channel::bounded(1);
        s.spawn(|| collector(inbox, acks, &sink));
        with_producers(
            |i| messages.send(Msg::Item(i)).unwrap(),
            |produce| {
                let finish = || {
                    messages.send(Msg::Flush).unwrap();
                    acked.recv().unwrap();
                };
                bench_runs(&mut group, "channel_batcher", produce, finish, &sink)
            },
        )
    });
    group.finish();

    if let (Some(tidefall), Some(channel)) = (tidefall, channel) {
        let ratio = channel / tidefall;
        println!(
            "{GROUP}: channel_batcher ÷ tidefall (run medians) = {ratio:.2}: target ≥ 1.5, {}",
            if ratio >= 1.5 { "met" } else { "NOT met" }
        );
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
