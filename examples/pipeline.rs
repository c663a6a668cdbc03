//! The tidefall demo: several producer threads push small events into one [`Queue`] for a few
//! seconds while the processor aggregates the batches; then the buffer is stopped and the
//! demo checks that every pushed event arrived exactly once, in order per producer.
//!
//! ```text
//! cargo run --release --example pipeline                # 3 s, one producer per core (2 to 8)
//! cargo run --release --example pipeline -- 10 8        # 10 s, 8 producers
//! ```
//!
//! While it runs, one progress line is rewritten in place (`\r`) about ten times a second.
//! When stdout is not a terminal (CI logs) the same lines are simply `\r`-separated. The
//! process exits with status 1 if the final check fails, 2 on a bad command line.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tidefall::{Event, PushError, Queue};

/// One event: who pushed it and its place in that producer's sequence (0, 1, 2, …).
#[derive(Debug, Clone, Copy)]
struct Sample {
    producer: u32,
    seq: u64,
}

/// Items per processor call.
const BATCH_SIZE: usize = 1024;
/// How often every partition is drained.
const INTERVAL: Duration = Duration::from_millis(50);
/// A partition holding this many items drains before its tick is due, so fast producers do
/// not pile up memory between ticks.
const DRAIN_THRESHOLD: usize = 256 * 1024;
/// A hard cap per partition: beyond it pushes return `PushError::Full` and the producer backs
/// off and retries (back-pressure), which bounds the demo's memory on any machine.
const CAPACITY: usize = 4 * 1024 * 1024;
/// A processor call here takes microseconds; a cycle still running after this long is
/// reported as failed (and the check below fails) rather than stalling `stop()` for the
/// default 60 s.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the progress line is redrawn.
const REFRESH: Duration = Duration::from_millis(100);

/// What the processor has seen of one producer.
#[derive(Debug, Default)]
struct Tally {
    /// Events received.
    received: u64,
    /// The sequence number the next event must carry: events arrive in order, so this is
    /// also "how many of the sequence arrived contiguously".
    expected: u64,
    /// Events that did not carry `expected`: a duplicate, a reordering or a gap.
    anomalies: u64,
    /// The first anomaly, for the report: (expected, got).
    first_anomaly: Option<(u64, u64)>,
}

impl Tally {
    fn record(&mut self, seq: u64) {
        self.received += 1;
        if seq == self.expected {
            self.expected += 1;
        } else {
            self.anomalies += 1;
            self.first_anomaly.get_or_insert((self.expected, seq));
            // Resynchronise so that one gap is reported once, not for every later event.
            self.expected = self.expected.max(seq + 1);
        }
    }
}

/// A counter on its own cache line, written by one producer and read by the reporter, so the
/// producers do not slow each other down by sharing a line.
#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// Command-line settings.
struct Config {
    duration: Duration,
    producers: usize,
}

/// How to call the demo.
const USAGE: &str = "usage: pipeline [SECONDS (default 3)] [PRODUCERS (default: cores, 2 to 8)]";

/// Reads `[SECONDS] [PRODUCERS]`; `Ok(None)` when help was asked for.
fn parse_args() -> Result<Option<Config>, String> {
    let cores = thread::available_parallelism().map_or(4, |n| n.get());
    let mut config = Config {
        duration: Duration::from_secs(3),
        producers: cores.clamp(2, 8),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(None);
    }
    if args.len() > 2 {
        return Err(format!("expected at most 2 arguments, got {}", args.len()));
    }
    if let Some(secs) = args.first() {
        let secs: f64 = secs
            .parse()
            .map_err(|_| format!("SECONDS must be a number, got `{secs}`"))?;
        config.duration = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("SECONDS must be positive, got `{secs}`"))?;
    }
    if let Some(producers) = args.get(1) {
        config.producers = producers
            .parse()
            .ok()
            .filter(|&n: &usize| (1..=u32::MAX as usize).contains(&n))
            .ok_or_else(|| format!("PRODUCERS must be a positive integer, got `{producers}`"))?;
    }
    Ok(Some(config))
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let partitions = thread::available_parallelism().map_or(4, |n| n.get());

    // The processor's view: one tally per producer. Each producer thread keeps to one
    // partition, and a partition's batches are processed one after another, so a tally's
    // lock is uncontended; different partitions are processed in parallel on the pool.
    let tallies: Arc<Vec<Mutex<Tally>>> =
        Arc::new((0..config.producers).map(|_| Mutex::default()).collect());
    // Failed batches, heard through telemetry (there should be none).
    let failures = Arc::new(AtomicU64::new(0));

    let queue = {
        let tallies = Arc::clone(&tallies);
        let failures = Arc::clone(&failures);
        Queue::<Sample>::builder()
            .name("pipeline")
            .partitions(partitions)
            .processing_interval(INTERVAL)
            .processing_batch_size(BATCH_SIZE)
            .processing_timeout(TIMEOUT)
            .drain_threshold(DRAIN_THRESHOLD)
            .drain_check_interval(Duration::from_millis(5))
            .capacity(CAPACITY)
            .processor(move |batch: Vec<Sample>| {
                // Lock once per run of events from the same producer, not once per event.
                let mut events = batch.iter().peekable();
                while let Some(first) = events.next() {
                    let mut tally = tallies[first.producer as usize]
                        .lock()
                        .expect("a tally lock was poisoned");
                    tally.record(first.seq);
                    while let Some(next) = events.next_if(|e| e.producer == first.producer) {
                        tally.record(next.seq);
                    }
                }
            })
            .observer(move |event: &Event<'_>| {
                if let Event::ProcessingFailed(failed) = event {
                    // Report the first few; the summary gives the count.
                    if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!(
                            "\n{} partition {}: a batch failed: {}",
                            failed.buffer, failed.partition, failed.reason
                        );
                    }
                }
            })
            .start()
            .expect("the queue's options are valid")
    };

    println!(
        "tidefall pipeline: {} producers, {} partitions, {:.1} s, batches of {BATCH_SIZE}, \
         ticks every {} ms",
        config.producers,
        partitions,
        config.duration.as_secs_f64(),
        INTERVAL.as_millis(),
    );

    // Producers: each pushes `Sample { producer, seq }` with seq = 0, 1, 2, … until told to
    // stop, and publishes how many it pushed (accepted) after every push.
    let running = Arc::new(AtomicBool::new(true));
    let pushed: Arc<Vec<Padded>> =
        Arc::new((0..config.producers).map(|_| Padded::default()).collect());
    let producers: Vec<_> = (0..config.producers)
        .map(|id| {
            let queue = queue.clone();
            let running = Arc::clone(&running);
            let pushed = Arc::clone(&pushed);
            thread::Builder::new()
                .name(format!("producer-{id}"))
                .spawn(move || {
                    let counter = &pushed[id].0;
                    let mut seq = 0u64;
                    while running.load(Ordering::Relaxed) {
                        let mut sample = Sample {
                            producer: id as u32,
                            seq,
                        };
                        // On `Full`, the partition is at capacity: back off and retry the
                        // same event, so the sequence stays contiguous.
                        loop {
                            match queue.push(sample) {
                                Ok(()) => break,
                                Err(PushError::Full(back)) => {
                                    sample = back;
                                    thread::yield_now();
                                }
                                Err(PushError::Stopped(_)) => {
                                    unreachable!("the queue is stopped only after the producers")
                                }
                            }
                        }
                        seq += 1;
                        // Relaxed: a progress figure; the final count comes from `join`.
                        counter.store(seq, Ordering::Relaxed);
                    }
                    seq
                })
                .expect("could not spawn a producer thread")
        })
        .collect();

    // Progress: one line, redrawn in place, until the duration is over.
    let started = Instant::now();
    let total_pushed = || {
        pushed
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let mut last = (started, 0u64);
    while started.elapsed() < config.duration {
        thread::sleep(REFRESH.min(config.duration.saturating_sub(started.elapsed())));
        let now = Instant::now();
        let total = total_pushed();
        let rate = (total - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, total);
        progress(&queue, now.duration_since(started), total, rate);
    }

    // Shut down: stop the producers, then the queue, which drains what is left.
    running.store(false, Ordering::Relaxed);
    let counts: Vec<u64> = producers
        .into_iter()
        .map(|p| p.join().expect("a producer thread panicked"))
        .collect();
    let push_time = started.elapsed();
    let stop_started = Instant::now();
    let stopped = queue.stop();
    let stop_time = stop_started.elapsed();
    let total: u64 = counts.iter().sum();
    progress(
        &queue,
        push_time,
        total,
        total as f64 / push_time.as_secs_f64(),
    );
    println!();

    report(
        &queue, &config, &counts, &tallies, &failures, stopped, push_time, stop_time,
    )
}

/// Redraws the progress line: `\r`, then fixed-width fields so a shorter line fully covers
/// a longer one.
fn progress(queue: &Queue<Sample>, elapsed: Duration, pushed: u64, rate: f64) {
    use std::io::Write;
    let stats = queue.stats();
    let mut out = std::io::stdout().lock();
    // A closed stdout only loses the progress display; the summary decides the exit code.
    let _ = write!(
        out,
        "\r{:5.1} s | pushed {:>13} ({:>7.2} M/s) | processed {:>13} | batches {:>10} | buffered {:>10}",
        elapsed.as_secs_f64(),
        group(pushed),
        rate / 1e6,
        group(stats.processed),
        group(stats.batches),
        group(queue.len() as u64),
    );
    let _ = out.flush();
}

/// Checks that every pushed event arrived exactly once and in order, prints the summary, and
/// turns the verdict into the exit code.
#[allow(clippy::too_many_arguments)]
fn report(
    queue: &Queue<Sample>,
    config: &Config,
    counts: &[u64],
    tallies: &[Mutex<Tally>],
    failures: &AtomicU64,
    stopped: Result<(), tidefall::Error>,
    push_time: Duration,
    stop_time: Duration,
) -> ExitCode {
    let mut ok = true;
    if let Err(error) = &stopped {
        println!("stop() failed: {error}");
        ok = false;
    }

    for (id, (&pushed, tally)) in counts.iter().zip(tallies).enumerate() {
        let tally = tally.lock().expect("a tally lock was poisoned");
        // Exactly once and in order: every event carried the next expected number (no
        // anomaly), and as many arrived as were pushed, so they were exactly 0..pushed.
        let fine = tally.anomalies == 0 && tally.received == pushed && tally.expected == pushed;
        ok &= fine;
        print!(
            "producer {id:>2}: pushed {:>13}, received {:>13}, seq 0..{:<13}",
            group(pushed),
            group(tally.received),
            group(tally.expected),
        );
        match (fine, tally.first_anomaly) {
            (true, _) => println!(" in order, exactly once"),
            (false, Some((expected, got))) => println!(
                " FAIL: {} anomalies, first: expected seq {expected}, got {got}",
                tally.anomalies
            ),
            (false, None) => println!(" FAIL: {} events missing", pushed - tally.received),
        }
    }

    let total: u64 = counts.iter().sum();
    let stats = queue.stats();
    println!(
        "stats: processed {}, failed {}, buffered {}, rejected (back-pressure retries) {}, \
         ticks {}, batches {}",
        group(stats.processed),
        group(stats.failed),
        group(stats.buffered),
        group(stats.rejected),
        group(stats.ticks),
        group(stats.batches),
    );
    let failed_batches = failures.load(Ordering::Relaxed);
    if stats.processed != total || stats.failed != 0 || stats.buffered != 0 || failed_batches != 0 {
        println!(
            "FAIL: stats disagree: {} pushed, {} processed, {} failed, {} buffered, {} failed batches",
            total, stats.processed, stats.failed, stats.buffered, failed_batches
        );
        ok = false;
    }
    println!(
        "{} events from {} producer(s) in {:.2} s: {:.2} M events/s; stop() drained the rest in {:.1} ms",
        group(total),
        config.producers,
        push_time.as_secs_f64(),
        total as f64 / push_time.as_secs_f64() / 1e6,
        stop_time.as_secs_f64() * 1e3,
    );

    if ok {
        println!("PASS");
        ExitCode::SUCCESS
    } else {
        println!("FAIL");
        ExitCode::FAILURE
    }
}

/// `12345678` → `12_345_678`, for readable counters.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('_');
        }
        out.push(c);
    }
    out
}
