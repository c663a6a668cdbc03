//! [`TracingObserver`]: every [`Event`] as a `tracing` event.

use std::time::{SystemTime, UNIX_EPOCH};

use tracing::Level;

use crate::telemetry::{Event, Observer};

/// An [`Observer`] that turns every [`Event`] into one [`tracing`] event with target
/// `tidefall`, the event's name as its message, and the event's fields as structured fields;
/// failures at `ERROR` / `WARN`, the lifecycle at `DEBUG`, processor calls at `TRACE`. The
/// [module docs](crate::observe#tracing) list the levels and fields.
///
/// The events are emitted on the engine's and the pool's threads: they reach the global
/// subscriber (`tracing::subscriber::set_global_default`), not a thread-local default.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use tidefall::observe::TracingObserver;
/// use tidefall::Queue;
/// use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
///
/// /// Counts the `WARN` events of target `tidefall`.
/// struct CountWarnings(Arc<AtomicUsize>);
///
/// impl<S: tracing::Subscriber> Layer<S> for CountWarnings {
///     fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
///         let meta = event.metadata();
///         if meta.target() == "tidefall" && *meta.level() == tracing::Level::WARN {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// let warnings = Arc::new(AtomicUsize::new(0));
/// let subscriber = tracing_subscriber::registry().with(CountWarnings(Arc::clone(&warnings)));
/// tracing::subscriber::set_global_default(subscriber).unwrap();
///
/// let queue = Queue::<u32>::builder()
///     .processor(|_batch: Vec<u32>| Err::<(), _>("the sink is down"))
///     .observer(TracingObserver::new())
///     .start()?;
/// queue.push(7).unwrap();
/// queue.stop()?;
/// // One `ProcessingFailed`, at WARN: "ProcessingFailed buffer=… reason=the sink is down count=1".
/// assert_eq!(warnings.load(Ordering::Relaxed), 1);
/// # Ok::<(), tidefall::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TracingObserver {}

impl TracingObserver {
    /// The target of every event this observer emits: `"tidefall"`, for filters such as
    /// `RUST_LOG=tidefall=debug`.
    ///
    /// ```
    /// assert_eq!(tidefall::observe::TracingObserver::TARGET, "tidefall");
    /// ```
    pub const TARGET: &'static str = "tidefall";

    /// A new observer.
    ///
    /// ```
    /// use tidefall::observe::TracingObserver;
    /// use tidefall::Queue;
    ///
    /// let queue = Queue::<u32>::builder()
    ///     .processor(|_batch: Vec<u32>| {})
    ///     .observer(TracingObserver::new())
    ///     .start()?;
    /// # queue.stop()?;
    /// # Ok::<(), tidefall::Error>(())
    /// ```
    pub const fn new() -> Self {
        TracingObserver {}
    }
}

/// Seconds since the Unix epoch; `None` for a time before it.
fn unix_seconds(time: SystemTime) -> Option<f64> {
    time.duration_since(UNIX_EPOCH)
        .ok()
        .map(|since| since.as_secs_f64())
}

impl Observer for TracingObserver {
    /// Emits the event. A `tracing` call site needs a constant level (and target), so each
    /// variant has its own `event!`; the match is exhaustive, so that a new variant cannot be
    /// forgotten here.
    fn on_event(&self, event: &Event<'_>) {
        match event {
            Event::PartitionStart(e) => tracing::event!(
                target: "tidefall",
                Level::DEBUG,
                buffer = e.buffer,
                partition = e.partition,
                system_time = unix_seconds(e.system_time),
                "PartitionStart"
            ),
            Event::PartitionStop(e) => tracing::event!(
                target: "tidefall",
                Level::DEBUG,
                buffer = e.buffer,
                partition = e.partition,
                duration = ?e.duration,
                reason = %e.reason,
                "PartitionStop"
            ),
            Event::ProcessingStart(e) => tracing::event!(
                target: "tidefall",
                Level::DEBUG,
                buffer = e.buffer,
                partition = e.partition,
                system_time = unix_seconds(e.system_time),
                "ProcessingStart"
            ),
            Event::ProcessingStop(e) => tracing::event!(
                target: "tidefall",
                Level::DEBUG,
                buffer = e.buffer,
                partition = e.partition,
                duration = ?e.duration,
                size = e.size,
                "ProcessingStop"
            ),
            Event::BatchStop(e) => tracing::event!(
                target: "tidefall",
                Level::TRACE,
                buffer = e.buffer,
                partition = e.partition,
                size = e.size,
                duration = ?e.duration,
                processed = e.processed,
                "BatchStop"
            ),
            Event::ProcessingException(e) => tracing::event!(
                target: "tidefall",
                Level::ERROR,
                buffer = e.buffer,
                partition = e.partition,
                duration = ?e.duration,
                kind = e.kind,
                reason = %e.reason,
                backtrace = e.backtrace,
                "ProcessingException"
            ),
            Event::ProcessingFailed(e) => tracing::event!(
                target: "tidefall",
                Level::WARN,
                buffer = e.buffer,
                partition = e.partition,
                system_time = unix_seconds(e.system_time),
                reason = %e.reason,
                count = e.count,
                "ProcessingFailed"
            ),
            Event::Rejected(e) => tracing::event!(
                target: "tidefall",
                Level::WARN,
                buffer = e.buffer,
                partition = e.partition,
                count = e.count,
                "Rejected"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_of_times_around_the_epoch() {
        let later = UNIX_EPOCH + std::time::Duration::from_millis(1500);
        assert_eq!(unix_seconds(later), Some(1.5));
        assert_eq!(unix_seconds(UNIX_EPOCH), Some(0.0));
        let earlier = UNIX_EPOCH - std::time::Duration::from_secs(1);
        assert_eq!(unix_seconds(earlier), None);
    }
}
