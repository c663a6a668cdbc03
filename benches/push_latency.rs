//! Push latency with and without ticks (scenario L1 of PERFORMANCE.md): the p50, p90, p99,
//! p99.9, p99.99 and maximum time of `Queue<u64>::push` while the buffer drains every 10 ms,
//! beside the same loop with no tick during the pushes.
//!
//! One producer thread (the main one) pushes into a `partitions(1)` queue (it owns the
//! partition's lane) whose processor sums each tick's items (`BatchSize::Table`), for
//! `PUSHING` of pushing time per row:
//!
//! * `no ticks`: `processing_interval(1 h)`; the loop pushes for `ROUND` (10 ms, one tick's
//!   worth), then calls `flush()`, untimed, and starts the next round: the same buffer sizes
//!   and block recycling as with ticks, but the drain never runs during a push.
//! * `ticks every 10 ms`: `processing_interval(10 ms)`; the loop pushes for the whole
//!   `PUSHING`, and the ticks drain the partition on the pool meanwhile.
//!
//! Each mode runs twice: timing every push on its own (`1 push` rows: the latency of one push,
//! but the clock reads slow the loop to a few tens of millions of pushes a second), and timing
//! every `BATCH` pushes together (`16 pushes` rows: the loop runs near full speed, so the ticks
//! drain as much as they would under a busy producer; a slow push shows as a slow batch).
//!
//! The clock: on x86_64, the time-stamp counter read by `rdtsc` between `lfence`s (so the
//! pushes' instructions are not reordered across the reads; their stores may still drain from
//! the store buffer after the second one), converted to nanoseconds by a calibration against
//! `Instant` over 200 ms; elsewhere `Instant` itself. The counter ticks at the base frequency
//! (a resolution under a nanosecond), but reading it has a cost: the bench first times an empty
//! interval the same way and prints its percentiles (`timer alone`), which every figure
//! includes (none is corrected for it). The histogram has one exact bucket per counter tick
//! below 2^16 ticks; longer intervals are kept exactly in a list.
//!
//! A `harness = false` bench: criterion has no percentiles. `cargo bench --bench push_latency`
//! takes about 10 s and prints one table, with the ratios of the p99.9s (target ≤ 2).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidefall::{BatchSize, Queue};

/// Pushing time per row.
const PUSHING: Duration = Duration::from_secs(2);
/// The tick interval, and the length of a round without ticks.
const ROUND: Duration = Duration::from_millis(10);
/// Pushes between two checks of the clock against the end of a round.
const STRIDE: u64 = 1024;
/// Pushes timed together in the batched rows.
const BATCH: u64 = 16;
const HOUR: Duration = Duration::from_secs(3600);
/// Counter ticks with an exact histogram bucket; longer samples go to a list.
const BUCKETS: usize = 1 << 16;

/// The cheap clock: counter ticks.
mod clock {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn now() -> u64 {
        use core::arch::x86_64::{_mm_lfence, _rdtsc};
        // SAFETY: `lfence` (SSE2, part of the x86_64 baseline) and `rdtsc` read no memory and
        // have no preconditions.
        unsafe {
            _mm_lfence();
            let t = _rdtsc();
            _mm_lfence();
            t
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn now() -> u64 {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        EPOCH
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }

    /// The clock's name, for the report.
    pub const NAME: &str = if cfg!(target_arch = "x86_64") {
        "rdtsc between lfences"
    } else {
        "Instant"
    };
}

/// Nanoseconds per counter tick, measured against `Instant` over 200 ms of spinning.
fn calibrate() -> f64 {
    let (start, ticks) = (Instant::now(), clock::now());
    while start.elapsed() < Duration::from_millis(200) {
        std::hint::spin_loop();
    }
    let (elapsed, ticks) = (start.elapsed(), clock::now() - ticks);
    elapsed.as_nanos() as f64 / ticks as f64
}

/// Samples in counter ticks: exact counts below `BUCKETS`, the longer ones listed.
struct Histogram {
    counts: Vec<u64>,
    long: Vec<u64>,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            long: Vec::new(),
        }
    }

    #[inline(always)]
    fn record(&mut self, ticks: u64) {
        match self.counts.get_mut(ticks as usize) {
            Some(count) => *count += 1,
            None => self.long.push(ticks),
        }
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.long.len() as u64
    }

    /// The smallest sample with at least a fraction `q` of the samples at or below it.
    fn quantile(&mut self, q: f64) -> u64 {
        let rank = ((self.total() as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (ticks, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return ticks as u64;
            }
        }
        self.long.sort_unstable();
        self.long[(rank - seen - 1) as usize]
    }
}

/// The percentiles printed, with their labels.
const QUANTILES: [(&str, f64); 6] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
    ("max", 1.0),
];

/// Prints one row of the table; returns the p99.9 in nanoseconds.
fn print_row(
    mode: &str,
    timed: &str,
    histogram: &mut Histogram,
    ns_per_tick: f64,
    drains: u64,
) -> f64 {
    print!("{mode:<18} {timed:<10} {:>10}", histogram.total());
    let mut p999 = 0.0;
    for (label, q) in QUANTILES {
        let ns = histogram.quantile(q) as f64 * ns_per_tick;
        if label == "p99.9" {
            p999 = ns;
        }
        print!(" {:>9}", format_ns(ns));
    }
    println!(" {drains:>6}");
    p999
}

fn format_ns(ns: f64) -> String {
    if ns < 1e4 {
        format!("{ns:.1}")
    } else {
        format!("{:.0}", ns)
    }
}

/// A started `partitions(1)` queue with a processor that sums each tick's items.
fn queue(interval: Duration) -> (Queue<u64>, Arc<AtomicU64>) {
    let seen = Arc::new(AtomicU64::new(0));
    let sink = Arc::clone(&seen);
    let queue = Queue::<u64>::builder()
        .name("bench-latency")
        .partitions(1)
        .processing_interval(interval)
        .processing_batch_size(BatchSize::Table)
        .processor(move |batch: Vec<u64>| {
            sink.fetch_add(black_box(batch.iter().sum::<u64>()), Ordering::Relaxed);
        })
        .start()
        .expect("valid options");
    (queue, seen)
}

/// Pushes for `round_ticks` of counter time, timing every `B` pushes together; returns the
/// pushes made.
fn push_round<const B: u64>(
    queue: &Queue<u64>,
    histogram: &mut Histogram,
    round_ticks: u64,
) -> u64 {
    let end = clock::now() + round_ticks;
    let mut pushed = 0;
    loop {
        for batch in (pushed..pushed + STRIDE).step_by(B as usize) {
            let start = clock::now();
            for i in batch..batch + B {
                queue.push(black_box(i)).unwrap();
            }
            let took = clock::now() - start;
            histogram.record(took);
        }
        pushed += STRIDE;
        if clock::now() >= end {
            return pushed;
        }
    }
}

/// One measured run: pushes timed `B` at a time, with ticks or without.
struct Mode {
    ticks: bool,
    histogram: Histogram,
    /// The partition's drains: its ticks, or the flushes between rounds.
    drains: u64,
}

impl Mode {
    /// Runs the mode: with `ticks`, a 10 ms interval and no flush; without, a one-hour
    /// interval and a flush after every round.
    fn run<const B: u64>(ticks: bool, ns_per_tick: f64) -> Mode {
        let (queue, seen) = queue(if ticks { ROUND } else { HOUR });
        let round_ticks = (ROUND.as_nanos() as f64 / ns_per_tick) as u64;
        let rounds = (PUSHING.as_nanos() / ROUND.as_nanos()) as u64;
        let mut histogram = Histogram::new();
        let mut expected = 0u64;
        for _ in 0..rounds {
            let pushed = push_round::<B>(&queue, &mut histogram, round_ticks);
            expected += pushed * (pushed - 1) / 2;
            if !ticks {
                queue.flush().unwrap();
            }
        }
        queue.stop().unwrap();
        assert_eq!(
            seen.load(Ordering::Relaxed),
            expected,
            "every push processed"
        );
        Mode {
            ticks,
            histogram,
            drains: queue.stats().ticks,
        }
    }

    /// Prints the mode's row; returns its p99.9 in nanoseconds.
    fn print(&mut self, timed: &str, ns_per_tick: f64) -> f64 {
        let mode = if self.ticks {
            "ticks every 10 ms"
        } else {
            "no ticks"
        };
        print_row(mode, timed, &mut self.histogram, ns_per_tick, self.drains)
    }
}

fn main() {
    let ns_per_tick = calibrate();
    println!(
        "push_latency: clock {} ({:.3} ns per counter tick, {:.2} GHz)",
        clock::NAME,
        ns_per_tick,
        1.0 / ns_per_tick
    );

    let mut empty = Histogram::new();
    for _ in 0..1_000_000 {
        let start = clock::now();
        let took = clock::now() - start;
        empty.record(took);
    }
    let mut single = [false, true].map(|ticks| Mode::run::<1>(ticks, ns_per_tick));
    let mut batched = [false, true].map(|ticks| Mode::run::<BATCH>(ticks, ns_per_tick));

    println!(
        "push_latency: one producer, partitions(1), {} s of pushing per row; nanoseconds per \
         timed interval; drains: the partition's drains (ticks, or flushes between rounds)",
        PUSHING.as_secs()
    );
    print!("{:<18} {:<10} {:>10}", "mode", "timed", "samples");
    for (label, _) in QUANTILES {
        print!(" {label:>9}");
    }
    println!(" {:>6}", "drains");
    print_row("timer alone", "nothing", &mut empty, ns_per_tick, 0);
    let [quiet, ticking] = single
        .each_mut()
        .map(|mode| mode.print("1 push", ns_per_tick));
    let timed = format!("{BATCH} pushes");
    let [quiet_batch, ticking_batch] = batched
        .each_mut()
        .map(|mode| mode.print(&timed, ns_per_tick));
    let verdict = |ratio: f64| if ratio <= 2.0 { "met" } else { "NOT met" };
    let (single, batched) = (ticking / quiet, ticking_batch / quiet_batch);
    println!(
        "push_latency: p99.9 with ticks ÷ without (target ≤ 2): per push {single:.2}, {}; \
         per {BATCH} pushes {batched:.2}, {}",
        verdict(single),
        verdict(batched),
    );
}
