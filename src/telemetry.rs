//! Telemetry: the [`Observer`] trait, the [`Event`]s it receives, and [`Stats`] counters.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Receives the buffer's [`Event`]s. Runs on engine and pool threads (and on the thread that
/// calls `stop`), never on the write path. Implemented for `Fn(&Event<'_>)` closures.
///
/// ```
/// use tidefall::{Event, Queue};
/// let queue = Queue::<u32>::builder()
///     .processor(|_batch: Vec<u32>| {})
///     .observer(|event: &Event<'_>| {
///         if let Event::ProcessingFailed(failed) = event {
///             eprintln!("{} lost a batch: {}", failed.buffer, failed.reason);
///         }
///     })
///     .start()?;
/// # queue.stop()?;
/// # Ok::<(), tidefall::Error>(())
/// ```
pub trait Observer: Send + Sync + 'static {
    /// Called once per event.
    fn on_event(&self, event: &Event<'_>);
}

impl<F> Observer for F
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    fn on_event(&self, event: &Event<'_>) {
        self(event)
    }
}

/// Why a batch or cycle failed. `Display` gives the panic message, the processor's error
/// text, or the word "timeout".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// The processor panicked with this message.
    Panic(String),
    /// The processor returned `Err` with this text.
    Error(String),
    /// The cycle ran past `processing_timeout`.
    Timeout,
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Panic(message) => write!(f, "panic: {message}"),
            FailureReason::Error(text) => f.write_str(text),
            FailureReason::Timeout => f.write_str("timeout"),
        }
    }
}

/// Why a partition stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `stop()` was called.
    Stopped,
    /// The last handle was dropped.
    Dropped,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Stopped => "stopped",
            StopReason::Dropped => "dropped",
        })
    }
}

/// A partition started.
#[derive(Debug, Clone)]
pub struct PartitionStart<'a> {
    /// The buffer's name.
    pub buffer: &'a str,
    /// The partition's index.
    pub partition: usize,
    /// When it started.
    pub system_time: SystemTime,
}

/// A partition ended.
#[derive(Debug, Clone)]
pub struct PartitionStop<'a> {
    /// The buffer's name.
    pub buffer: &'a str,
    /// The partition's index.
    pub partition: usize,
    /// How long the partition ran.
    pub duration: Duration,
    /// Why it ended.
    pub reason: StopReason,
}

/// A partition's processing cycle began.
#[derive(Debug, Clone)]
pub struct ProcessingStart<'a> {
    /// The buffer's name.
    pub buffer: &'a str,
    /// The partition's index.
    pub partition: usize,
    /// Wall-clock time of the start.
    pub system_time: SystemTime,
    /// Monotonic time of the start.
    pub monotonic_time: Instant,
}

/// A partition's processing cycle ended.
#[derive(Debug, Clone)]
pub struct ProcessingStop<'a> {
    /// The buffer's name.
    pub buffer: &'a str,
    /// The partition's index.
    pub partition: usize,
    /// How long the cycle ran.
    pub duration: Duration,
    /// Monotonic time of the end.
    pub monotonic_time: Instant,
    /// Items the cycle took from the partition.
    pub size: usize,
}

/// A processor call panicked.
#[derive(Debug, Clone)]
pub struct ProcessingException<'a> {
    /// The buffer's name.
    pub buffer: &'a str,
    /// The partition's index.
    pub partition: usize,
    /// How long the call ran.
    pub duration: Duration,
    /// Monotonic time of the panic's catch.
    pub monotonic_time: Instant,
    /// The kind of failure: always `"panic"` in Rust (the Elixir `:error`/`:exit`/`:throw`).
    pub kind: &'static str,
    /// The panic message.
    pub reason: &'a FailureReason,
    /// The backtrace of the panic, when `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) enables
    /// capturing one and the application has not replaced the panic hook since the buffer
    /// started (see the crate docs).
    pub backtrace: Option<&'a str>,
}

/// A batch or a cycle failed; its items are counted in [`Stats::failed`].
#[derive(Debug, Clone)]
pub struct ProcessingFailed<'a> {
    /// The buffer's name.
    pub buffer: &'a str,
    /// The partition's index.
    pub partition: usize,
    /// When the failure was seen.
    pub system_time: SystemTime,
    /// What went wrong.
    pub reason: &'a FailureReason,
    /// How many items were lost: the batch's for a panic or an `Err`, the cycle's items not
    /// yet settled for a timeout (0 when the cycle was given up on before it took anything,
    /// its pool being busy: the items stay for the next cycle). The counts of all
    /// `ProcessingFailed` events sum to [`Stats::failed`].
    pub count: u64,
}

/// A processor call returned (or was given up on): one per call, so their count is
/// [`Stats::batches`].
#[derive(Debug, Clone)]
pub struct BatchStop<'a> {
    /// The buffer's name.
    pub buffer: &'a str,
    /// The partition's index.
    pub partition: usize,
    /// Items in the batch.
    pub size: usize,
    /// How long the call ran.
    pub duration: Duration,
    /// The call returned normally and its items count as processed; `false` when it
    /// panicked, returned `Err`, or returned after its cycle timed out (the items are then
    /// counted in a `ProcessingFailed`). The sizes of the processed batches sum to
    /// [`Stats::processed`].
    pub processed: bool,
}

/// Writes refused with `PushError::Full` since the partition's previous report: one per
/// error returned, so the counts of all `Rejected` events sum to the `Full` errors returned.
#[derive(Debug, Clone)]
pub struct Rejected<'a> {
    /// The buffer's name.
    pub buffer: &'a str,
    /// The partition's index.
    pub partition: usize,
    /// How many writes were refused.
    pub count: u64,
}

/// Everything an [`Observer`] hears about.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A partition started.
    PartitionStart(PartitionStart<'a>),
    /// A partition ended.
    PartitionStop(PartitionStop<'a>),
    /// A processing cycle began.
    ProcessingStart(ProcessingStart<'a>),
    /// A processing cycle ended.
    ProcessingStop(ProcessingStop<'a>),
    /// A processor call panicked.
    ProcessingException(ProcessingException<'a>),
    /// A batch or cycle failed.
    ProcessingFailed(ProcessingFailed<'a>),
    /// A processor call returned.
    BatchStop(BatchStop<'a>),
    /// Writes were refused for capacity.
    Rejected(Rejected<'a>),
}

/// Counters of a buffer, exact when no write or cycle is in flight:
/// `processed + failed + buffered` equals the number of accepted items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Items (HashMap: keys) accepted and not yet processed or failed.
    pub buffered: u64,
    /// Items handed to a processor call that returned normally.
    pub processed: u64,
    /// Items lost in a failed batch: a panic, an `Err`, or a timeout.
    pub failed: u64,
    /// Writes refused with `PushError::Full`: one per error returned (a `push_many` refused
    /// in part counts once).
    pub rejected: u64,
    /// Partition processing cycles started.
    pub ticks: u64,
    /// Processor calls, failed ones too.
    pub batches: u64,
}

/// The buffer's live counters and observers.
pub(crate) struct Telemetry {
    pub(crate) name: String,
    observers: Vec<Arc<dyn Observer>>,
    pub(crate) processed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) ticks: AtomicU64,
    pub(crate) batches: AtomicU64,
    /// Items taken from partitions whose cycle has not yet accounted for them.
    pub(crate) in_flight: AtomicU64,
}

impl Telemetry {
    pub(crate) fn new(name: String, observers: Vec<Arc<dyn Observer>>) -> Self {
        Telemetry {
            name,
            observers,
            processed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }

    pub(crate) fn emit(&self, event: Event<'_>) {
        for observer in &self.observers {
            // An observer that panics must not take the engine or a pool thread down.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                observer.on_event(&event)
            }));
        }
    }

    /// `n` items taken by a cycle: now in flight.
    pub(crate) fn taken(&self, n: usize) {
        // Relaxed (all counters): statistics, exact once the writes and cycles they count are
        // finished, which callers order by joining or flushing.
        self.in_flight.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` in-flight items reached an end: processed or failed.
    pub(crate) fn settled(&self, n: usize, processed: bool) {
        let counter = if processed {
            &self.processed
        } else {
            &self.failed
        };
        // Relaxed: see `taken`. The outcome is counted before the item leaves `in_flight`,
        // so a concurrent reader never sees it vanish.
        counter.fetch_add(n as u64, Ordering::Relaxed);
        self.in_flight.fetch_sub(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self, buffered: usize) -> Stats {
        // Relaxed: see `taken`.
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            buffered: buffered as u64 + load(&self.in_flight),
            processed: load(&self.processed),
            failed: load(&self.failed),
            rejected: load(&self.rejected),
            ticks: load(&self.ticks),
            batches: load(&self.batches),
        }
    }
}
