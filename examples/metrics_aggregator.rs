//! A metrics aggregator on a tidefall [`HashMap`]: reporter threads write gauge readings for
//! a few thousand series as fast as they can; the map coalesces them, and on every tick the
//! processor receives only the latest reading per series. At the end the map is stopped and
//! the example checks that, for every series, the reading delivered last is the last one
//! written.
//!
//! ```text
//! cargo run --release --example metrics_aggregator              # 3 s, 4 reporters, 5 000 series
//! cargo run --release --example metrics_aggregator -- 10 8      # 10 s, 8 reporters
//! ```
//!
//! "Last" across threads is defined by [`tidefall::monotonic_version`]: each reading takes a
//! fresh version right before `put_newer`, so within a tick a slower thread's older reading
//! never replaces a newer one, and the processor keeps, per series, the reading with the
//! highest version (a reading may reach a later tick than a newer one when its thread was
//! preempted between taking its version and writing).
//!
//! One progress line is rewritten in place (`\r`) about ten times a second. The process
//! exits with status 1 if the final check fails, 2 on a bad command line.

use std::collections::HashMap as StdMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tidefall::{monotonic_version, BatchSize, Entry, HashMap};

/// Gauge series, keyed by their index.
const SERIES: u32 = 5_000;
/// How often the processor receives the latest readings.
const INTERVAL: Duration = Duration::from_millis(100);
/// How often the progress line is redrawn.
const REFRESH: Duration = Duration::from_millis(100);

/// One reading as the processor keeps it: the value and the version it was written with.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    value: f64,
    version: u64,
}

/// What the processor has seen.
#[derive(Default)]
struct Aggregate {
    /// Per series, the delivered reading with the highest version.
    latest: StdMap<u32, Reading>,
    /// Entries delivered, ever.
    entries: u64,
    /// Entries in the last processor call.
    last_batch: u64,
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = match args.next().map(|s| s.parse()) {
        None => 3.0,
        Some(Ok(s)) if s > 0.0 => s,
        _ => return usage(),
    };
    let reporters: u32 = match args.next().map(|s| s.parse()) {
        None => 4,
        Some(Ok(n)) if n > 0 => n,
        _ => return usage(),
    };

    let aggregate = Arc::new(Mutex::new(Aggregate::default()));
    let sink = Arc::clone(&aggregate);
    let started = HashMap::<u32, f64>::builder()
        .name("gauges")
        .processing_interval(INTERVAL)
        .processing_batch_size(BatchSize::Table)
        .processor(move |entries: Vec<Entry<u32, f64>>| {
            let mut aggregate = sink.lock().unwrap_or_else(|p| p.into_inner());
            aggregate.entries += entries.len() as u64;
            aggregate.last_batch = entries.len() as u64;
            for entry in entries {
                let reading = Reading {
                    value: entry.value,
                    version: entry.version,
                };
                let kept = aggregate.latest.entry(entry.key).or_insert(reading);
                if reading.version > kept.version {
                    *kept = reading;
                }
            }
        })
        .start();
    let gauges = match started {
        Ok(gauges) => gauges,
        Err(error) => {
            eprintln!("could not start the map: {error}");
            return ExitCode::FAILURE;
        }
    };

    let puts = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let run_for = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    // Per reporter, the last reading it wrote per series.
    let written: Vec<StdMap<u32, Reading>> = thread::scope(|s| {
        let handles: Vec<_> = (0..reporters)
            .map(|r| {
                let (gauges, puts, done) = (gauges.clone(), &puts, &done);
                s.spawn(move || report(r, &gauges, puts, done))
            })
            .collect();
        while start.elapsed() < run_for {
            thread::sleep(REFRESH);
            progress(&gauges, &aggregate, puts.load(Ordering::Relaxed), start);
        }
        done.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    if let Err(error) = gauges.stop() {
        eprintln!("\nstop: {error}");
    }
    progress(&gauges, &aggregate, puts.load(Ordering::Relaxed), start);
    println!();
    let aggregate = aggregate.lock().unwrap_or_else(|p| p.into_inner());
    check(&written, &aggregate, &gauges)
}

/// A reporter: writes readings to pseudo-random series until `done`; returns, per series,
/// the last of its readings that the map stored.
fn report(
    reporter: u32,
    gauges: &HashMap<u32, f64>,
    puts: &AtomicU64,
    done: &AtomicBool,
) -> StdMap<u32, Reading> {
    let mut last = StdMap::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(reporter + 1).wrapping_mul(0xA24B_AED4);
    while !done.load(Ordering::Relaxed) {
        for _ in 0..256 {
            // xorshift64: cheap and good enough to spread writes over the series.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let series = (rng % u64::from(SERIES)) as u32;
            let value = (rng >> 11) as f64 / (1u64 << 53) as f64 * 100.0;
            let version = monotonic_version();
            match gauges.put_newer(series, value, version) {
                Ok(true) => {
                    last.insert(series, Reading { value, version });
                }
                // A newer reading of another reporter is stored already.
                Ok(false) => {}
                Err(error) => {
                    eprintln!("\nreporter {reporter}: {error}");
                    return last;
                }
            }
        }
        puts.fetch_add(256, Ordering::Relaxed);
    }
    last
}

/// Redraws the progress line.
fn progress(gauges: &HashMap<u32, f64>, aggregate: &Mutex<Aggregate>, puts: u64, start: Instant) {
    let elapsed = start.elapsed().as_secs_f64();
    let stats = gauges.stats();
    let (entries, last_batch) = {
        let aggregate = aggregate.lock().unwrap_or_else(|p| p.into_inner());
        (aggregate.entries, aggregate.last_batch)
    };
    print!(
        "\r{elapsed:5.1} s | puts {puts:>12} ({:>6.2} M/s) | ticks {:>6} | entries {entries:>10} \
         (last batch {last_batch:>5}) | buffered {:>5}",
        puts as f64 / elapsed / 1e6,
        stats.ticks,
        stats.buffered,
    );
    // A closed stdout only loses the progress display; the check decides the exit code.
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// Compares, per series, the reading with the highest version any reporter wrote with the
/// one the processor kept.
fn check(
    written: &[StdMap<u32, Reading>],
    aggregate: &Aggregate,
    gauges: &HashMap<u32, f64>,
) -> ExitCode {
    let mut expected: StdMap<u32, Reading> = StdMap::new();
    for reading in written.iter().flatten() {
        let kept = expected.entry(*reading.0).or_insert(*reading.1);
        if reading.1.version > kept.version {
            *kept = *reading.1;
        }
    }
    let wrong = expected
        .iter()
        .filter(|(series, reading)| aggregate.latest.get(series) != Some(reading))
        .count();
    let extra = aggregate
        .latest
        .keys()
        .filter(|series| !expected.contains_key(series))
        .count();
    let stats = gauges.stats();
    println!(
        "{} series written, {} delivered; {} entries in {} ticks; processed {}, failed {}",
        expected.len(),
        aggregate.latest.len(),
        aggregate.entries,
        stats.ticks,
        stats.processed,
        stats.failed,
    );
    if wrong == 0 && extra == 0 && stats.failed == 0 && stats.processed == aggregate.entries {
        println!("OK: the last reading of every series was delivered");
        ExitCode::SUCCESS
    } else {
        println!("FAILED: {wrong} series with a wrong last reading, {extra} never written");
        ExitCode::FAILURE
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: metrics_aggregator [SECONDS > 0] [REPORTERS > 0]");
    ExitCode::from(2)
}
