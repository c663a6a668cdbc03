//! `MetricsObserver`: the counters equal `stats()` exactly, the histograms get one sample per
//! processor call and per cycle with the right values, every metric carries the `buffer` and
//! `partition` labels. The observer runs on engine and pool threads, so the recorder is the
//! global one, installed once for this binary. Its snapshots are destructive (counters reset,
//! histograms drained), and the tests run in parallel: every snapshot is folded into one
//! accumulated view, from which each test reads the metrics of its own buffer.

mod common;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::Gate;
use metrics::Unit;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use tidefall::observe::MetricsObserver;
use tidefall::{PushError, Queue, Stats};

/// A metric of one buffer: name and partition label.
type Series = (String, String);

#[derive(Default)]
struct Accumulated {
    /// (name, buffer, partition) → the counter's total.
    counters: HashMap<(String, String, String), u64>,
    /// (name, buffer, partition) → every sample, in order.
    histograms: HashMap<(String, String, String), Vec<f64>>,
    /// (kind, name) → unit, from the descriptions.
    units: HashMap<(MetricKind, String), Option<Unit>>,
    /// Label sets other than exactly {buffer, partition}.
    odd_labels: Vec<String>,
}

fn state() -> &'static (Snapshotter, Mutex<Accumulated>) {
    static STATE: OnceLock<(Snapshotter, Mutex<Accumulated>)> = OnceLock::new();
    STATE.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("no other global recorder");
        (snapshotter, Mutex::new(Accumulated::default()))
    })
}

/// Folds a snapshot into the accumulated view; returns the metrics of `buffer`.
fn metrics_of(buffer: &str) -> (HashMap<Series, u64>, HashMap<Series, Vec<f64>>) {
    let (snapshotter, accumulated) = state();
    let mut acc = accumulated.lock().unwrap_or_else(|e| e.into_inner());
    for (key, unit, _description, value) in snapshotter.snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        let name = key.name().to_owned();
        acc.units.insert((kind, name.clone()), unit);
        let labels: HashMap<&str, &str> = key.labels().map(|l| (l.key(), l.value())).collect();
        if labels.len() != 2 || !labels.contains_key("buffer") || !labels.contains_key("partition")
        {
            acc.odd_labels.push(format!("{key:?}"));
            continue;
        }
        let id = (
            name,
            labels["buffer"].to_owned(),
            labels["partition"].to_owned(),
        );
        match value {
            DebugValue::Counter(n) => *acc.counters.entry(id).or_default() += n,
            DebugValue::Histogram(samples) => acc
                .histograms
                .entry(id)
                .or_default()
                .extend(samples.into_iter().map(|s| s.0)),
            DebugValue::Gauge(_) => acc.odd_labels.push(format!("gauge {key:?}")),
        }
    }
    assert!(acc.odd_labels.is_empty(), "{:?}", acc.odd_labels);
    let counters = acc
        .counters
        .iter()
        .filter(|((_, b, _), _)| b == buffer)
        .map(|((n, _, p), v)| ((n.clone(), p.clone()), *v))
        .collect();
    let histograms = acc
        .histograms
        .iter()
        .filter(|((_, b, _), _)| b == buffer)
        .map(|((n, _, p), v)| ((n.clone(), p.clone()), v.clone()))
        .collect();
    (counters, histograms)
}

fn unit_of(kind: MetricKind, name: &str) -> Option<Unit> {
    let (_, accumulated) = state();
    let acc = accumulated.lock().unwrap_or_else(|e| e.into_inner());
    acc.units.get(&(kind, name.to_owned())).cloned().flatten()
}

/// A counter summed over partitions (0 when never recorded).
fn total(counters: &HashMap<Series, u64>, name: &str) -> u64 {
    counters
        .iter()
        .filter(|((n, _), _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

fn counters_match_stats(counters: &HashMap<Series, u64>, stats: Stats) {
    assert_eq!(total(counters, "tidefall_processed_total"), stats.processed);
    assert_eq!(total(counters, "tidefall_failed_total"), stats.failed);
    assert_eq!(total(counters, "tidefall_rejected_total"), stats.rejected);
    assert_eq!(total(counters, "tidefall_batches_total"), stats.batches);
}

/// For batches of two: the batch holding 2 panics, the one holding 4 returns `Err`.
fn faulty(batch: Vec<u32>) -> Result<(), String> {
    if batch.contains(&2) {
        panic!("boom");
    }
    if batch.contains(&4) {
        return Err("bad batch".to_owned());
    }
    Ok(())
}

fn series(name: &str, partition: &str) -> Series {
    (name.to_owned(), partition.to_owned())
}

#[test]
fn counters_equal_stats_and_histograms_get_a_sample_per_call() {
    state();
    let name = "metrics-one-partition";
    let queue = Queue::<u32>::builder()
        .name(name)
        .partitions(1)
        .processing_interval(Duration::from_secs(3600))
        .processing_batch_size(2)
        .capacity(9)
        .processor(faulty)
        .observer(MetricsObserver::new())
        .start()
        .unwrap();
    for i in 0..9 {
        queue.push(i).unwrap();
    }
    for i in 9..12 {
        assert!(matches!(queue.push(i), Err(PushError::Full(_))));
    }
    queue.flush().unwrap();
    // A second cycle: 3 items, batches of 2 and 1.
    queue.push_many([10, 11, 12]).unwrap();
    queue.stop().unwrap();

    let stats = queue.stats();
    // Cycle 1: [0,1] ok, [2,3] panic, [4,5] Err, [6,7] ok, [8] ok; cycle 2: [10,11], [12].
    assert_eq!(
        (stats.processed, stats.failed, stats.rejected, stats.batches),
        (8, 4, 3, 7)
    );
    let (counters, histograms) = metrics_of(name);
    counters_match_stats(&counters, stats);
    assert_eq!(counters[&series("tidefall_processed_total", "0")], 8);
    assert_eq!(counters[&series("tidefall_failed_total", "0")], 4);
    assert_eq!(counters[&series("tidefall_rejected_total", "0")], 3);
    assert_eq!(counters[&series("tidefall_batches_total", "0")], 7);

    let mut batch_sizes = histograms[&series("tidefall_batch_size", "0")].clone();
    batch_sizes.sort_by(f64::total_cmp);
    assert_eq!(batch_sizes, [1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
    let mut cycle_sizes = histograms[&series("tidefall_cycle_size", "0")].clone();
    cycle_sizes.sort_by(f64::total_cmp);
    assert_eq!(cycle_sizes, [3.0, 9.0]);

    let batch_durations = &histograms[&series("tidefall_batch_duration_seconds", "0")];
    assert_eq!(batch_durations.len(), 7);
    let cycle_durations = &histograms[&series("tidefall_cycle_duration_seconds", "0")];
    assert_eq!(cycle_durations.len(), 2);
    for seconds in batch_durations.iter().chain(cycle_durations) {
        assert!((0.0..60.0).contains(seconds), "{seconds} s");
    }
    // A cycle lasts at least as long as its processor calls.
    let longest_call = batch_durations.iter().cloned().fold(0.0, f64::max);
    let longest_cycle = cycle_durations.iter().cloned().fold(0.0, f64::max);
    assert!(longest_cycle >= longest_call);

    // Every metric was described, with its unit.
    for name in [
        "tidefall_processed_total",
        "tidefall_failed_total",
        "tidefall_rejected_total",
        "tidefall_batches_total",
    ] {
        assert_eq!(
            unit_of(MetricKind::Counter, name),
            Some(Unit::Count),
            "{name}"
        );
    }
    for (name, unit) in [
        ("tidefall_cycle_duration_seconds", Unit::Seconds),
        ("tidefall_batch_duration_seconds", Unit::Seconds),
        ("tidefall_cycle_size", Unit::Count),
        ("tidefall_batch_size", Unit::Count),
    ] {
        assert_eq!(unit_of(MetricKind::Histogram, name), Some(unit), "{name}");
    }
}

#[test]
fn durations_are_recorded_in_seconds() {
    state();
    let name = "metrics-durations";
    let queue = Queue::<u32>::builder()
        .name(name)
        .partitions(1)
        .processing_interval(Duration::from_secs(3600))
        .processing_batch_size(1)
        .processor(|_batch: Vec<u32>| std::thread::sleep(Duration::from_millis(60)))
        .observer(MetricsObserver::default())
        .start()
        .unwrap();
    queue.push_many([1, 2]).unwrap();
    queue.stop().unwrap();
    let (counters, histograms) = metrics_of(name);
    counters_match_stats(&counters, queue.stats());
    let calls = &histograms[&series("tidefall_batch_duration_seconds", "0")];
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|s| (0.06..5.0).contains(s)), "{calls:?}");
    let cycles = &histograms[&series("tidefall_cycle_duration_seconds", "0")];
    assert_eq!(cycles.len(), 1);
    assert!((0.12..5.0).contains(&cycles[0]), "{cycles:?}");
}

#[test]
fn labelled_by_partition() {
    state();
    let name = "metrics-partitions";
    let queue = Queue::<u32>::builder()
        .name(name)
        .partitions(4)
        .processing_interval(Duration::from_secs(3600))
        .processing_batch_size(3)
        .partition_by(|item: &u32| *item % 4)
        .processor(|_batch: Vec<u32>| {})
        .observer(MetricsObserver::new())
        .start()
        .unwrap();
    // 10 items on each of the 4 partitions (whichever index each key lands on).
    queue.push_many(0..40).unwrap();
    queue.stop().unwrap();

    let stats = queue.stats();
    assert_eq!(stats.processed, 40);
    let (counters, histograms) = metrics_of(name);
    counters_match_stats(&counters, stats);
    // Per partition: the processed items are the partition's cycle sizes and batch sizes
    // summed, and every batch of it is counted; each label is a partition index.
    let mut partitions = 0;
    for ((metric, partition), &items) in &counters {
        if metric != "tidefall_processed_total" {
            continue;
        }
        partitions += 1;
        assert!(
            partition.parse::<usize>().is_ok_and(|p| p < 4),
            "{partition}"
        );
        // Keys 0..4 each hold 10 items, so a partition holds a multiple of 10.
        assert!(items > 0 && items % 10 == 0, "{items}");
        let sum = |metric: &str| -> f64 { histograms[&series(metric, partition)].iter().sum() };
        assert_eq!(sum("tidefall_cycle_size") as u64, items);
        assert_eq!(sum("tidefall_batch_size") as u64, items);
        let calls = histograms[&series("tidefall_batch_size", partition)].len() as u64;
        assert_eq!(
            counters[&series("tidefall_batches_total", partition)],
            calls
        );
        assert_eq!(calls, items.div_ceil(3));
    }
    assert!((1..=4).contains(&partitions));
}

#[test]
fn a_timeout_counts_its_items_failed() {
    state();
    let name = "metrics-timeout";
    let gate = Gate::default();
    let held = gate.clone();
    let queue = Queue::<u32>::builder()
        .name(name)
        .partitions(1)
        .processing_interval(Duration::from_secs(3600))
        .processing_timeout(Duration::from_millis(100))
        .processing_batch_size(2)
        .processor(move |_batch: Vec<u32>| held.wait())
        .observer(MetricsObserver::new())
        .start()
        .unwrap();
    queue.push_many(0..6).unwrap();
    // The call is held past the timeout: its cycle fails with its six items.
    let _ = queue.flush();
    let _ = queue.stop();
    gate.open();
    // The held call returns now, and its batch is counted then.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (counters, _) = metrics_of(name);
        let stats = queue.stats();
        if total(&counters, "tidefall_batches_total") == stats.batches {
            assert_eq!((stats.processed, stats.failed), (0, 6));
            counters_match_stats(&counters, stats);
            break;
        }
        assert!(Instant::now() < deadline, "{counters:?} {stats:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
