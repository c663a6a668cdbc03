//! [`MetricsObserver`]: counters and histograms through the `metrics` facade.

use std::sync::{Arc, PoisonError, RwLock};

use metrics::{Label, SharedString, Unit};

use crate::telemetry::{Event, Observer};

/// An [`Observer`] that records a buffer's counters (items processed, failed, rejected,
/// processor calls) and histograms (cycle and batch durations and sizes) through the
/// [`metrics`] facade, labelled `buffer` and `partition`. The
/// [module docs](crate::observe#metrics) list every metric.
///
/// The metrics are recorded on the engine's and the pool's threads: they reach the global
/// recorder (`metrics::set_global_recorder`), not a thread-local one. At rest, each counter
/// summed over a buffer's partitions equals the matching [`Stats`](crate::Stats) field.
///
/// ```
/// use metrics_util::debugging::{DebugValue, DebuggingRecorder};
/// use tidefall::observe::MetricsObserver;
/// use tidefall::Queue;
///
/// let recorder = DebuggingRecorder::new();
/// let snapshotter = recorder.snapshotter();
/// recorder.install().unwrap();
///
/// let queue = Queue::<u32>::builder()
///     .name("orders")
///     .partitions(1)
///     .processor(|_batch: Vec<u32>| {})
///     .observer(MetricsObserver::new())
///     .start()?;
/// queue.push_many(0..25).unwrap();
/// queue.stop()?;
///
/// let processed: u64 = snapshotter
///     .snapshot()
///     .into_vec()
///     .into_iter()
///     .filter(|(key, ..)| key.key().name() == "tidefall_processed_total")
///     .map(|(.., value)| match value {
///         DebugValue::Counter(n) => n,
///         _ => 0,
///     })
///     .sum();
/// assert_eq!(processed, 25);
/// assert_eq!(queue.stats().processed, 25);
/// # Ok::<(), tidefall::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MetricsObserver {
    names: Arc<Names>,
    buffers: Arc<BufferLabels>,
}

/// The metrics' names, built once: cloning a static or shared `SharedString` allocates nothing.
#[derive(Debug)]
struct Names {
    processed: SharedString,
    failed: SharedString,
    rejected: SharedString,
    batches: SharedString,
    cycle_duration: SharedString,
    cycle_size: SharedString,
    batch_duration: SharedString,
    batch_size: SharedString,
}

impl Names {
    const DEFAULT: Names = Names {
        processed: SharedString::const_str("tidefall_processed_total"),
        failed: SharedString::const_str("tidefall_failed_total"),
        rejected: SharedString::const_str("tidefall_rejected_total"),
        batches: SharedString::const_str("tidefall_batches_total"),
        cycle_duration: SharedString::const_str("tidefall_cycle_duration_seconds"),
        cycle_size: SharedString::const_str("tidefall_cycle_size"),
        batch_duration: SharedString::const_str("tidefall_batch_duration_seconds"),
        batch_size: SharedString::const_str("tidefall_batch_size"),
    };

    fn with_prefix(prefix: &str) -> Names {
        let name = |suffix: &str| shared(&format!("{prefix}_{suffix}"));
        Names {
            processed: name("processed_total"),
            failed: name("failed_total"),
            rejected: name("rejected_total"),
            batches: name("batches_total"),
            cycle_duration: name("cycle_duration_seconds"),
            cycle_size: name("cycle_size"),
            batch_duration: name("batch_duration_seconds"),
            batch_size: name("batch_size"),
        }
    }
}

/// A `SharedString` whose clones share one allocation.
fn shared(text: &str) -> SharedString {
    SharedString::from_shared(Arc::from(text))
}

/// The `buffer` label values seen so far, so that an event costs no allocation for its
/// buffer's name: a buffer's name never changes, and an observer serves a few buffers. Past
/// [`BufferLabels::MAX`] names (buffers created and dropped by the thousand), new names are
/// allocated per event instead of growing the cache.
#[derive(Debug, Default)]
struct BufferLabels {
    seen: RwLock<Vec<SharedString>>,
}

impl BufferLabels {
    const MAX: usize = 64;

    fn get(&self, buffer: &str) -> SharedString {
        // A poisoned lock only means a panic elsewhere while it was held; the names in it
        // are whole either way.
        let seen = self.seen.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(name) = seen.iter().find(|name| &***name == buffer) {
            return name.clone();
        }
        drop(seen);
        let name = shared(buffer);
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        if seen.len() < Self::MAX && !seen.iter().any(|seen| &**seen == buffer) {
            seen.push(name.clone());
        }
        name
    }
}

/// The `partition` label values of the first partitions, static: no allocation per event.
const PARTITIONS: [&str; 64] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48",
    "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63",
];

fn partition_label(partition: usize) -> SharedString {
    match PARTITIONS.get(partition) {
        Some(label) => SharedString::const_str(label),
        None => SharedString::from(partition.to_string()),
    }
}

impl MetricsObserver {
    /// A new observer, its metrics named `tidefall_*`. It describes them (unit and text) to
    /// the recorder installed now, if any: see [`describe`](Self::describe).
    ///
    /// ```
    /// use tidefall::observe::MetricsObserver;
    /// use tidefall::Queue;
    ///
    /// let queue = Queue::<u32>::builder()
    ///     .processor(|_batch: Vec<u32>| {})
    ///     .observer(MetricsObserver::new())
    ///     .start()?;
    /// # queue.stop()?;
    /// # Ok::<(), tidefall::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::named(Names::DEFAULT)
    }

    /// A new observer whose metrics are named `<prefix>_*` instead of `tidefall_*`
    /// (`with_prefix("myapp")` records `myapp_processed_total`, …). It describes them to the
    /// recorder installed now, if any.
    ///
    /// ```
    /// use metrics_util::debugging::DebuggingRecorder;
    /// use tidefall::observe::MetricsObserver;
    /// use tidefall::Queue;
    ///
    /// let recorder = DebuggingRecorder::new();
    /// let snapshotter = recorder.snapshotter();
    /// recorder.install().unwrap();
    ///
    /// let queue = Queue::<u32>::builder()
    ///     .processor(|_batch: Vec<u32>| {})
    ///     .observer(MetricsObserver::with_prefix("myapp"))
    ///     .start()?;
    /// queue.push(1).unwrap();
    /// queue.stop()?;
    /// let snapshot = snapshotter.snapshot().into_vec();
    /// assert!(snapshot.iter().any(|(key, ..)| key.key().name() == "myapp_processed_total"));
    /// assert!(snapshot.iter().all(|(key, ..)| key.key().name().starts_with("myapp_")));
    /// # Ok::<(), tidefall::Error>(())
    /// ```
    pub fn with_prefix(prefix: &str) -> Self {
        Self::named(Names::with_prefix(prefix))
    }

    fn named(names: Names) -> Self {
        let observer = MetricsObserver {
            names: Arc::new(names),
            buffers: Arc::default(),
        };
        observer.describe();
        observer
    }

    /// Describes the metrics (unit and text) to the global recorder. Building the observer
    /// does it; call this again when the recorder is installed after the observer was built
    /// (recorders keep no description given before they were installed). The metrics are
    /// recorded either way.
    ///
    /// ```
    /// use metrics_util::debugging::DebuggingRecorder;
    /// use tidefall::observe::MetricsObserver;
    ///
    /// use tidefall::Queue;
    ///
    /// let observer = MetricsObserver::new(); // no recorder yet: the descriptions are lost
    /// let recorder = DebuggingRecorder::new();
    /// let snapshotter = recorder.snapshotter();
    /// recorder.install().unwrap();
    /// observer.describe(); // now the recorder has them
    ///
    /// let queue = Queue::<u32>::builder()
    ///     .processor(|_batch: Vec<u32>| {})
    ///     .observer(observer)
    ///     .start()?;
    /// queue.push(1).unwrap();
    /// queue.stop()?;
    /// let (_, unit, description, _) = snapshotter
    ///     .snapshot()
    ///     .into_vec()
    ///     .into_iter()
    ///     .find(|(key, ..)| key.key().name() == "tidefall_cycle_duration_seconds")
    ///     .unwrap();
    /// assert_eq!(unit.map(|unit| unit.as_str()), Some("seconds"));
    /// assert!(description.is_some());
    /// # Ok::<(), tidefall::Error>(())
    /// ```
    pub fn describe(&self) {
        let names = &self.names;
        metrics::describe_counter!(
            names.processed.clone(),
            Unit::Count,
            "Items handed to a processor call that returned normally."
        );
        metrics::describe_counter!(
            names.failed.clone(),
            Unit::Count,
            "Items lost to a processor panic, an Err or a timeout."
        );
        metrics::describe_counter!(
            names.rejected.clone(),
            Unit::Count,
            "Writes refused for capacity (PushError::Full)."
        );
        metrics::describe_counter!(
            names.batches.clone(),
            Unit::Count,
            "Processor calls, failed ones too."
        );
        metrics::describe_histogram!(
            names.cycle_duration.clone(),
            Unit::Seconds,
            "How long a partition's processing cycle ran."
        );
        metrics::describe_histogram!(
            names.cycle_size.clone(),
            Unit::Count,
            "Items a processing cycle took from its partition."
        );
        metrics::describe_histogram!(
            names.batch_duration.clone(),
            Unit::Seconds,
            "How long a processor call ran."
        );
        metrics::describe_histogram!(
            names.batch_size.clone(),
            Unit::Count,
            "Items per processor call."
        );
    }

    fn labels(&self, buffer: &str, partition: usize) -> [Label; 2] {
        [
            Label::new("buffer", self.buffers.get(buffer)),
            Label::new("partition", partition_label(partition)),
        ]
    }
}

impl Default for MetricsObserver {
    /// [`MetricsObserver::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl Observer for MetricsObserver {
    /// Records the event's metrics; the events that have none (partition and cycle starts,
    /// exceptions, whose failures the `ProcessingFailed` after them counts) are ignored.
    fn on_event(&self, event: &Event<'_>) {
        let names = &self.names;
        match event {
            Event::BatchStop(e) => {
                let labels = self.labels(e.buffer, e.partition);
                metrics::counter!(target: "tidefall", names.batches.clone(), labels.iter())
                    .increment(1);
                if e.processed {
                    metrics::counter!(target: "tidefall", names.processed.clone(), labels.iter())
                        .increment(e.size as u64);
                }
                metrics::histogram!(target: "tidefall", names.batch_size.clone(), labels.iter())
                    .record(e.size as f64);
                metrics::histogram!(target: "tidefall", names.batch_duration.clone(), labels.iter())
                    .record(e.duration.as_secs_f64());
            }
            Event::ProcessingStop(e) => {
                let labels = self.labels(e.buffer, e.partition);
                metrics::histogram!(target: "tidefall", names.cycle_duration.clone(), labels.iter())
                    .record(e.duration.as_secs_f64());
                metrics::histogram!(target: "tidefall", names.cycle_size.clone(), labels.iter())
                    .record(e.size as f64);
            }
            Event::ProcessingFailed(e) => {
                let labels = self.labels(e.buffer, e.partition);
                metrics::counter!(target: "tidefall", names.failed.clone(), labels.iter())
                    .increment(e.count);
            }
            Event::Rejected(e) => {
                let labels = self.labels(e.buffer, e.partition);
                metrics::counter!(target: "tidefall", names.rejected.clone(), labels.iter())
                    .increment(e.count);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_labels_are_the_decimal_index() {
        for partition in [0, 1, 9, 10, 63, 64, 65, 1000, usize::MAX] {
            assert_eq!(&*partition_label(partition), partition.to_string());
        }
    }

    #[test]
    fn buffer_labels_are_cached_up_to_the_bound() {
        let labels = BufferLabels::default();
        for round in 0..2 {
            for i in 0..2 * BufferLabels::MAX {
                let name = format!("buffer-{i}");
                assert_eq!(&*labels.get(&name), name, "round {round}");
            }
        }
        assert_eq!(labels.seen.read().unwrap().len(), BufferLabels::MAX);
    }

    #[test]
    fn prefixed_names() {
        let names = Names::with_prefix("myapp");
        assert_eq!(&*names.processed, "myapp_processed_total");
        assert_eq!(&*names.cycle_duration, "myapp_cycle_duration_seconds");
        assert_eq!(&*Names::DEFAULT.batch_size, "tidefall_batch_size");
    }
}
