//! OpenTelemetry batch processors built on [`Queue`]: drop-ins for the SDK's
//! `BatchSpanProcessor` and `BatchLogProcessor` (feature `opentelemetry`).
//!
//! [`BatchSpanProcessor`] implements `opentelemetry_sdk::trace::SpanProcessor` and exports
//! through any `SpanExporter`; [`BatchLogProcessor`] implements
//! `opentelemetry_sdk::logs::LogProcessor` and exports through any `LogExporter`. Ending a
//! span (emitting a record) is one `push` onto a [`Queue`]: it never blocks, and a span the
//! queue refuses (full, or after shutdown) is dropped and counted.
//!
//! ```
//! use opentelemetry::trace::{Tracer, TracerProvider as _};
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
//! use std::time::Duration;
//! use tidefall::otel::BatchSpanProcessor;
//!
//! let exporter = InMemorySpanExporter::default();
//! let processor = BatchSpanProcessor::builder(exporter.clone())
//!     .with_max_queue_size(8192)
//!     .with_scheduled_delay(Duration::from_millis(500))
//!     .with_max_export_batch_size(512)
//!     .build()?;
//! // The provider takes the processor; a clone (a handle to the same one) keeps its counters.
//! let provider = SdkTracerProvider::builder()
//!     .with_span_processor(processor.clone())
//!     .build();
//!
//! let tracer = provider.tracer("example");
//! tracer.in_span("checkout", |_cx| {});
//! provider.force_flush()?; // exports now, without waiting for the scheduled delay
//! assert_eq!(exporter.get_finished_spans()?.len(), 1);
//! provider.shutdown()?;
//! assert_eq!(processor.dropped_spans(), 0);
//! assert_eq!(processor.stats().processed, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The SDK's knobs
//!
//! The builders take the SDK's `BatchConfigBuilder` knobs under the same names, with the
//! same defaults and environment variables, and map them onto [`Queue`] options:
//!
//! | builder method | spans: default, variable | logs: default, variable | tidefall option |
//! |---|---|---|---|
//! | `with_max_queue_size` | 2048, `OTEL_BSP_MAX_QUEUE_SIZE` | 2048, `OTEL_BLRP_MAX_QUEUE_SIZE` | `capacity`: split evenly over the partitions, rounded up |
//! | `with_scheduled_delay` | 5 s, `OTEL_BSP_SCHEDULE_DELAY` (ms) | 1 s, `OTEL_BLRP_SCHEDULE_DELAY` (ms) | `processing_interval` |
//! | `with_max_export_batch_size` | 512, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | 512, `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE` | `processing_batch_size` (at most the max queue size, as in the SDK) |
//! | `with_max_export_timeout` | 30 s, `OTEL_BSP_EXPORT_TIMEOUT` (ms) | 30 s, `OTEL_BLRP_EXPORT_TIMEOUT` (ms) | `processing_timeout` |
//!
//! The environment is read when the builder is created, and the builder's methods override
//! it, as in the SDK. A variable that does not parse is ignored, as the SDK ignores it, and
//! so is a zero, which these processors could not honour. Programmatic values must be at
//! least 1 (sizes) or non-zero (durations): `build()` refuses others with
//! [`Error::InvalidOption`] naming the method.
//!
//! tidefall's own options come as `with_name`, `with_partitions` (default: the number of
//! cores), `with_observer` and `with_thread_pool`.
//!
//! # Where they differ from the SDK's processors
//!
//! * **Partitions.** The max queue size is a total: each of `p` partitions holds
//!   `ceil(max_queue_size / p)`. The SDK exports early once a batch's worth is queued; here a
//!   partition exports early once it holds the same fraction of its share
//!   (`ceil(max_export_batch_size × share / max_queue_size)`, 512 of 2048 with one
//!   partition), so under even load the queue drains at the same fill. A partition's export
//!   carries only its own spans, so with many partitions early exports are smaller. A
//!   thread's spans go to one partition, which can be full while others have room: size the
//!   queue for the busiest threads.
//! * **One export at a time.** The exporter traits promise that `export` is never called
//!   concurrently on one exporter, so the partitions' exports, which run on tidefall's rayon
//!   pool, take turns on the exporter. A call that waits longer than the export timeout for
//!   its turn fails its batch, so a hung exporter cannot hold every pool thread for ever.
//!   Exports block their pool thread: give the processor its own pool (`with_thread_pool`)
//!   when the exporter does slow network calls and other tidefall buffers share the default
//!   pool.
//! * **The export timeout is honoured**: an export past it fails its batch, counted in
//!   [`Stats::failed`](crate::Stats::failed); the call itself cannot be pre-empted. The
//!   SDK's thread-based processors ignore it, and offer `with_max_export_timeout` (and, for
//!   logs, read `OTEL_BLRP_EXPORT_TIMEOUT`) only under an experimental feature, for their
//!   async-runtime variants; these processors take both always.
//! * **Only sampled spans are exported**, as the specification asks and the SDK's
//!   `SimpleSpanProcessor` does; spans that are recorded but not sampled are skipped, not
//!   counted as dropped.
//! * **`shutdown_with_timeout` returns by its timeout** (`Timeout` if the final export is
//!   still running; it finishes in the background). `force_flush` and `shutdown` report
//!   exports that failed while they waited.
//! * **Counters instead of internal logs.** The SDK reports dropped spans with
//!   `opentelemetry::otel_warn!`, whose expansion is gated by
//!   `#[cfg(feature = "internal-logs")]`; a `cfg` in a macro's expansion is evaluated against
//!   the crate that expands it, so in this crate it would never log. The processors count
//!   instead: `dropped_spans()` / `dropped_logs()`, and [`stats()`](crate::Stats) for the
//!   exports. An [`Observer`] hears about failed exports as `ProcessingFailed`.
//!
//! Processors are cheap clones of one processor (like [`Queue`] handles): register one with
//! the provider and keep another to read the counters. Register only one clone per
//! provider; two would each receive, and export, every span.

/// The knob setters and `Debug` of both builders, which differ only in their words: the
/// builder's type, what it queues, the SDK's variable prefix and the default delay.
macro_rules! knob_setters {
    ($builder:ident, $items:literal, $prefix:literal, $delay:literal, $writers:literal) => {
        impl<E> std::fmt::Debug for $builder<E> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($builder))
                    .field("max_queue_size", &self.knobs.max_queue_size)
                    .field("scheduled_delay", &self.knobs.scheduled_delay)
                    .field("max_export_batch_size", &self.knobs.max_export_batch_size)
                    .field("max_export_timeout", &self.knobs.max_export_timeout)
                    .field("partitions", &self.knobs.partitions)
                    .finish_non_exhaustive()
            }
        }

        impl<E> $builder<E> {
            #[doc = concat!("The most ", $items, " queued (≥ 1), over all partitions: each holds")]
            #[doc = concat!("`ceil(max_queue_size / partitions)`. Default: 2048, or `", $prefix, "_MAX_QUEUE_SIZE`.")]
            pub fn with_max_queue_size(mut self, max_queue_size: usize) -> Self {
                self.knobs.max_queue_size = max_queue_size;
                self
            }

            #[doc = concat!("Time between exports (> 0). Default: ", $delay, ", or `", $prefix, "_SCHEDULE_DELAY` (ms).")]
            pub fn with_scheduled_delay(mut self, scheduled_delay: std::time::Duration) -> Self {
                self.knobs.scheduled_delay = scheduled_delay;
                self
            }

            #[doc = concat!("The most ", $items, " per export (≥ 1; at most the max queue size). Default: 512, or")]
            #[doc = concat!("`", $prefix, "_MAX_EXPORT_BATCH_SIZE`.")]
            pub fn with_max_export_batch_size(mut self, max_export_batch_size: usize) -> Self {
                self.knobs.max_export_batch_size = max_export_batch_size;
                self
            }

            /// The longest an export may run (> 0) before its batch counts as failed, and the
            #[doc = concat!("longest an export waits for the exporter. Default: 30 s, or `", $prefix, "_EXPORT_TIMEOUT` (ms).")]
            pub fn with_max_export_timeout(mut self, max_export_timeout: std::time::Duration) -> Self {
                self.knobs.max_export_timeout = max_export_timeout;
                self
            }

            /// The queue's name, in telemetry and thread names (not empty). Default:
            /// `tidefall-<n>`.
            pub fn with_name(mut self, name: impl Into<String>) -> Self {
                self.knobs.name = Some(name.into());
                self
            }

            #[doc = concat!("How many partitions ", $writers, " spread over (1 to 65 536). Default: the number of")]
            /// cores.
            pub fn with_partitions(mut self, partitions: usize) -> Self {
                self.knobs.partitions = Some(partitions);
                self
            }

            /// Adds a handler of the queue's telemetry (a failed export is a `ProcessingFailed`).
            pub fn with_observer(mut self, observer: impl $crate::Observer) -> Self {
                self.knobs.observers.push(std::sync::Arc::new(observer));
                self
            }

            /// The rayon pool exports run on. Default: the pool all tidefall buffers share.
            pub fn with_thread_pool(mut self, pool: std::sync::Arc<rayon::ThreadPool>) -> Self {
                self.knobs.thread_pool = Some(pool);
                self
            }
        }
    };
}

mod log;
mod span;

pub use log::{BatchLogProcessor, BatchLogProcessorBuilder};
pub use span::{BatchSpanProcessor, BatchSpanProcessorBuilder};

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::Resource;

use crate::options::MAX_PARTITIONS;
use crate::{BatchSize, Error, Observer, PushError, Queue, QueueBuilder, Stats};

/// One signal's defaults and environment variables (the SDK's constants).
pub(crate) struct Signal {
    pub(crate) queue_size: (&'static str, usize),
    pub(crate) scheduled_delay: (&'static str, Duration),
    pub(crate) batch_size: (&'static str, usize),
    pub(crate) export_timeout: (&'static str, Duration),
    /// What the queue holds, for messages: "spans", "log records".
    pub(crate) items: &'static str,
}

/// The options both builders take: the SDK's four knobs and tidefall's own.
#[derive(Clone)]
pub(crate) struct Knobs {
    pub(crate) max_queue_size: usize,
    pub(crate) scheduled_delay: Duration,
    pub(crate) max_export_batch_size: usize,
    pub(crate) max_export_timeout: Duration,
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<usize>,
    pub(crate) observers: Vec<Arc<dyn Observer>>,
    pub(crate) thread_pool: Option<Arc<rayon::ThreadPool>>,
}

impl Knobs {
    /// The signal's defaults, overridden by its environment variables as the SDK's
    /// `BatchConfigBuilder::default()` does; a value that does not parse, or is zero, is
    /// ignored.
    pub(crate) fn from_env(signal: &Signal) -> Self {
        fn var<T: std::str::FromStr + PartialEq + Default>(name: &str) -> Option<T> {
            std::env::var(name)
                .ok()
                .and_then(|value| value.parse::<T>().ok())
                .filter(|value| *value != T::default())
        }
        let millis = |(name, default): (&str, Duration)| {
            var::<u64>(name).map_or(default, Duration::from_millis)
        };
        Knobs {
            max_queue_size: var(signal.queue_size.0).unwrap_or(signal.queue_size.1),
            scheduled_delay: millis(signal.scheduled_delay),
            max_export_batch_size: var(signal.batch_size.0).unwrap_or(signal.batch_size.1),
            max_export_timeout: millis(signal.export_timeout),
            name: None,
            partitions: None,
            observers: Vec::new(),
            thread_pool: None,
        }
    }

    /// Validates the knobs and derives the queue's options from them.
    fn plan(&self) -> Result<Plan, Error> {
        let invalid = |option: &'static str, reason: &str| Error::InvalidOption {
            option,
            reason: reason.to_owned(),
        };
        if self.max_queue_size == 0 {
            return Err(invalid("with_max_queue_size", "must be at least 1"));
        }
        if self.max_export_batch_size == 0 {
            return Err(invalid("with_max_export_batch_size", "must be at least 1"));
        }
        if self.scheduled_delay.is_zero() {
            return Err(invalid("with_scheduled_delay", "must be greater than zero"));
        }
        if self.max_export_timeout.is_zero() {
            return Err(invalid(
                "with_max_export_timeout",
                "must be greater than zero",
            ));
        }
        if self.name.as_deref() == Some("") {
            return Err(invalid("with_name", "must not be empty"));
        }
        let partitions = match self.partitions {
            Some(0) => return Err(invalid("with_partitions", "must be at least 1")),
            Some(n) if n > MAX_PARTITIONS => {
                return Err(invalid(
                    "with_partitions",
                    &format!("must be at most {MAX_PARTITIONS}"),
                ))
            }
            Some(n) => n,
            // The queue's own default, fixed here because the capacity depends on it.
            None => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_PARTITIONS),
        };
        // As the SDK's `BatchConfigBuilder::build`: a batch is never larger than the queue.
        let batch = self.max_export_batch_size.min(self.max_queue_size);
        let capacity = self.max_queue_size.div_ceil(partitions);
        // The SDK exports early when `batch` of `max_queue_size` are queued: the same
        // fraction of each partition's share. u128: the product of two usizes fits.
        let fill = (capacity as u128 * batch as u128).div_ceil(self.max_queue_size as u128);
        let threshold = usize::try_from(fill).map_or(capacity, |t| t.clamp(1, capacity));
        Ok(Plan {
            partitions,
            capacity,
            batch,
            threshold,
        })
    }

    /// Starts the queue behind a processor, with `export` as its processor.
    pub(crate) fn start<T, F>(self, export: F) -> Result<(Queue<T>, Plan), Error>
    where
        T: Send + 'static,
        F: Fn(Vec<T>) -> Result<(), String> + Send + Sync + 'static,
    {
        let plan = self.plan()?;
        let mut builder: QueueBuilder<T> = Queue::builder()
            .partitions(plan.partitions)
            .capacity(plan.capacity)
            .processing_interval(self.scheduled_delay)
            .processing_batch_size(BatchSize::Items(plan.batch))
            .processing_timeout(self.max_export_timeout)
            .drain_threshold(plan.threshold)
            .processor(export);
        if let Some(name) = self.name {
            builder = builder.name(name);
        }
        if let Some(pool) = self.thread_pool {
            builder = builder.thread_pool(pool);
        }
        for observer in self.observers {
            builder = builder.observer(move |event: &crate::Event<'_>| observer.on_event(event));
        }
        Ok((builder.start()?, plan))
    }
}

/// The queue options derived from the knobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) partitions: usize,
    /// Per partition.
    pub(crate) capacity: usize,
    pub(crate) batch: usize,
    /// The per-partition early-export trigger.
    pub(crate) threshold: usize,
}

/// An exporter that one call at a time may use, as the exporter traits promise their
/// implementations, with a bounded wait for the turn.
///
/// Partitions' processor calls run in parallel on the pool, so they must take turns. A plain
/// `Mutex` would make every waiting call block for as long as a hung export, which could
/// hold every pool thread; here a wait gives up after a deadline and fails its batch. The
/// inner `Mutex` is never contended (only the holder of the turn locks it): it gives the
/// holder `&mut` access (`set_resource` takes `&mut self`) without `unsafe`.
pub(crate) struct Exclusive<E> {
    exporter: Mutex<E>,
    busy: Mutex<bool>,
    freed: Condvar,
}

/// Another call held the exporter past the wait.
#[derive(Debug)]
pub(crate) struct Busy;

impl<E> Exclusive<E> {
    pub(crate) fn new(exporter: E) -> Self {
        Exclusive {
            exporter: Mutex::new(exporter),
            busy: Mutex::new(false),
            freed: Condvar::new(),
        }
    }

    /// Runs `f` with the exporter once no other call has it, waiting at most `wait`.
    pub(crate) fn with<R>(&self, wait: Duration, f: impl FnOnce(&mut E) -> R) -> Result<R, Busy> {
        // A deadline too far to represent means waiting without one.
        let deadline = Instant::now().checked_add(wait);
        let mut busy = lock(&self.busy);
        while *busy {
            busy = match deadline {
                None => self
                    .freed
                    .wait(busy)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Busy);
                    }
                    self.freed
                        .wait_timeout(busy, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        *busy = true;
        drop(busy);
        // Hands the turn on however `f` ends: an exporter that panics fails its batch (the
        // queue catches the panic), not the exporter's later calls.
        let _turn = Turn(self);
        // As on the SDK's worker threads: the exporter's own telemetry (an HTTP client's
        // spans, say) must not feed back into the pipeline it is exporting.
        let _suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
        let mut exporter = lock(&self.exporter);
        Ok(f(&mut exporter))
    }
}

/// The turn on an [`Exclusive`] exporter, handed on when dropped.
struct Turn<'a, E>(&'a Exclusive<E>);

impl<E> Drop for Turn<'_, E> {
    fn drop(&mut self) {
        *lock(&self.0.busy) = false;
        self.0.freed.notify_one();
    }
}

/// Locks a mutex whose data stays usable after a panic: a flag, or an exporter whose state
/// after a panicking call is the exporter's concern (the call's batch is failed).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An exporter's calls other than `export`, without its type: what the processor's own
/// `force_flush`, `shutdown` and `set_resource` forward to.
pub(crate) trait Control: Send + Sync + 'static {
    /// The exporter's `force_flush`, if its trait has one.
    fn force_flush(&self, wait: Duration) -> OTelSdkResult;
    /// The exporter's `shutdown_with_timeout`.
    fn shutdown(&self, timeout: Duration) -> OTelSdkResult;
    /// The exporter's `set_resource`.
    fn set_resource(&self, resource: &Resource, wait: Duration);
}

/// A `Busy` exporter as the SDK's error.
pub(crate) fn busy_error(wait: Duration) -> OTelSdkError {
    OTelSdkError::Timeout(wait)
}

/// What a processor is: its queue, its exporter, its counters. Shared by its clones.
pub(crate) struct Pipeline<T: Send + 'static> {
    queue: Queue<T>,
    exporter: Arc<dyn Control>,
    plan: Plan,
    export_timeout: Duration,
    items: &'static str,
    /// Items refused: the partition was full, or the processor was shut down.
    dropped: AtomicU64,
    shut_down: AtomicBool,
}

impl<T: Send + 'static> Pipeline<T> {
    pub(crate) fn new(
        queue: Queue<T>,
        exporter: Arc<dyn Control>,
        plan: Plan,
        export_timeout: Duration,
        items: &'static str,
    ) -> Self {
        Pipeline {
            queue,
            exporter,
            plan,
            export_timeout,
            items,
            dropped: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
        }
    }

    /// Queues an item; never blocks. A refused item is dropped and counted.
    #[inline]
    pub(crate) fn push(&self, item: T) {
        if let Err(refused) = self.queue.push(item) {
            self.refused(refused);
        }
    }

    #[cold]
    fn refused(&self, refused: PushError<T>) {
        // Relaxed: a statistic.
        self.dropped.fetch_add(1, Ordering::Relaxed);
        drop(refused);
    }

    pub(crate) fn dropped(&self) -> u64 {
        // Relaxed: a statistic, exact once the pushes it counts have returned.
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> Stats {
        self.queue.stats()
    }

    /// Exports everything queued now, then flushes the exporter.
    pub(crate) fn force_flush(&self) -> OTelSdkResult {
        // Acquire: pairs with the swap in `shutdown`; a flag.
        if self.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let failed_before = self.queue.stats().failed;
        self.queue
            .flush()
            .map_err(|e| sdk_error(e, self.export_timeout))?;
        let flushed = self.exporter.force_flush(self.export_timeout);
        failures(
            self.queue.stats().failed.saturating_sub(failed_before),
            self.items,
        )?;
        flushed
    }

    /// Stops the queue (a final export of everything accepted), then shuts the exporter
    /// down; returns by `timeout`, leaving the rest to finish in the background.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        // AcqRel: one caller wins; a flag read by `force_flush`.
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let queue = self.queue.clone();
        let exporter = Arc::clone(&self.exporter);
        let (export_timeout, items) = (self.export_timeout, self.items);
        let work = move || {
            let failed_before = queue.stats().failed;
            let stopped = queue.stop();
            // As the SDK does after its final export, even when that failed.
            let exporter_shut = exporter.shutdown(timeout);
            stopped.map_err(|e| sdk_error(e, export_timeout))?;
            failures(queue.stats().failed.saturating_sub(failed_before), items)?;
            exporter_shut
        };
        within(timeout, work)
    }

    pub(crate) fn set_resource(&self, resource: &Resource) {
        // Called when the provider is built, before any export; an exporter still busy after
        // the export timeout keeps its resource, as the SDK's processors drop the request
        // when their worker cannot take it.
        self.exporter.set_resource(resource, self.export_timeout);
    }

    pub(crate) fn debug(&self, f: &mut fmt::Formatter<'_>, type_name: &str) -> fmt::Result {
        f.debug_struct(type_name)
            .field("name", &self.queue.name())
            .field("partitions", &self.plan.partitions)
            .field("capacity_per_partition", &self.plan.capacity)
            .field("max_export_batch_size", &self.plan.batch)
            .field("early_export_at", &self.plan.threshold)
            .field("export_timeout", &self.export_timeout)
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// `Err` when `failed` items failed to export while the caller waited.
fn failures(failed: u64, items: &str) -> OTelSdkResult {
    if failed == 0 {
        Ok(())
    } else {
        Err(OTelSdkError::InternalFailure(format!(
            "{failed} {items} failed to export"
        )))
    }
}

/// A tidefall error as the SDK's.
fn sdk_error(error: Error, export_timeout: Duration) -> OTelSdkError {
    match error {
        Error::Timeout => OTelSdkError::Timeout(export_timeout),
        other => OTelSdkError::InternalFailure(other.to_string()),
    }
}

/// Runs `work` on a thread of its own and waits for it at most `timeout`: `Timeout` after
/// that, the work going on. Runs it here if no thread can be started.
fn within<F>(timeout: Duration, work: F) -> OTelSdkResult
where
    F: FnOnce() -> OTelSdkResult + Send + 'static,
{
    let (done, result) = mpsc::sync_channel(1);
    // The work is shared with the spawn attempt so that a failed spawn can still run it.
    let work = Arc::new(Mutex::new(Some(work)));
    let remote = Arc::clone(&work);
    let spawned = std::thread::Builder::new()
        .name("tidefall-otel-shutdown".into())
        .spawn(move || {
            let work = lock(&remote).take();
            if let Some(work) = work {
                // The receiver may have given up: nothing to tell.
                let _ = done.send(work());
            }
        });
    if spawned.is_err() {
        return match lock(&work).take() {
            Some(work) => work(),
            None => Err(OTelSdkError::InternalFailure(
                "the shutdown thread failed".into(),
            )),
        };
    }
    match result.recv_timeout(timeout) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(OTelSdkError::InternalFailure(
            "the shutdown thread panicked".into(),
        )),
    }
}
