//! Ready-made [`Observer`](crate::Observer)s that forward a buffer's [`Event`](crate::Event)s
//! to the ecosystem's facades: [`TracingObserver`] to [`tracing`] (feature `tracing`) and
//! [`MetricsObserver`] to [`metrics`] (feature `metrics`).
//!
//! Both are plain observers: add them with `.observer(..)` on a builder, as many buffers as
//! you like may share one (clone it, or build one per buffer: they hold no per-buffer state
//! that matters), and they cost nothing on the write path. They run on the engine's and the
//! pool's threads, so the `tracing` subscriber and the `metrics` recorder they reach are the
//! *global* ones (`tracing::subscriber::set_global_default`, `metrics::set_global_recorder`):
//! a thread-local default set with `with_default` or `with_local_recorder` does not see them.
//!
//! ```
//! # #[cfg(all(feature = "tracing", feature = "metrics"))] {
//! use tidefall::observe::{MetricsObserver, TracingObserver};
//! use tidefall::Queue;
//!
//! let queue = Queue::<u32>::builder()
//!     .name("orders")
//!     .processor(|_batch: Vec<u32>| {})
//!     .observer(TracingObserver::new())
//!     .observer(MetricsObserver::new())
//!     .start()?;
//! queue.push(1).unwrap();
//! queue.stop()?;
//! # }
//! # Ok::<(), tidefall::Error>(())
//! ```
//!
//! # `tracing`
//!
//! [`TracingObserver`] turns every event into one `tracing` event with target `tidefall`,
//! the event's name as its message (`"ProcessingFailed"`, …) and its fields as structured
//! fields: `buffer` and `partition` always, then those of the event.
//!
//! | event | level | fields besides `buffer`, `partition` |
//! |---|---|---|
//! | `PartitionStart` | `DEBUG` | `system_time` |
//! | `PartitionStop` | `DEBUG` | `duration`, `reason` (`stopped` / `dropped`) |
//! | `ProcessingStart` | `DEBUG` | `system_time` |
//! | `ProcessingStop` | `DEBUG` | `duration`, `size` |
//! | `BatchStop` | `TRACE` | `size`, `duration`, `processed` |
//! | `ProcessingException` | `ERROR` | `duration`, `kind`, `reason`, `backtrace` (when captured) |
//! | `ProcessingFailed` | `WARN` (timeouts too) | `system_time`, `reason`, `count` |
//! | `Rejected` | `WARN` | `count` |
//!
//! Failures are the levels an operator watches: a panic is an `ERROR` (a bug in the
//! processor), a lost batch or a timeout a `WARN` (the `ProcessingFailed` that follows a
//! panic repeats it at `WARN` with the number of items lost), and refused writes a `WARN`
//! (back-pressure). The lifecycle events are `DEBUG`: a cycle is two events (start, stop)
//! per partition that has items at a tick, few enough to follow. `BatchStop` is `TRACE`: one
//! per processor call, as many per cycle as the cycle has batches (with the default
//! `processing_batch_size` of 10, one per ten items), too many for `DEBUG`; a failed batch
//! is reported at `WARN` anyway.
//!
//! Field values: `partition`, `size` and `count` are integers; `processed` a bool;
//! `duration` the `Duration`'s `Debug` (`1.25ms`); `system_time` seconds since the Unix epoch,
//! as an `f64`; `reason` the reason's `Display` (the panic message prefixed by `panic: `, the
//! processor's `Err` text, or `timeout`); `kind` is `panic`; `backtrace` the text of the
//! captured backtrace. The events' `monotonic_time` (an `Instant`) is left out: it means
//! nothing outside the process, and the durations it serves to compute are given.
//!
//! # `metrics`
//!
//! [`MetricsObserver`] records these metrics, every one labelled `buffer` (the buffer's name)
//! and `partition` (the partition's index, as a string):
//!
//! | name | kind | unit (as described) | recorded from | meaning |
//! |---|---|---|---|---|
//! | `tidefall_processed_total` | counter | count (items) | `BatchStop` with `processed` | items handed to a processor call that returned normally ([`Stats::processed`]) |
//! | `tidefall_failed_total` | counter | count (items) | `ProcessingFailed.count` | items lost to a panic, an `Err` or a timeout ([`Stats::failed`]) |
//! | `tidefall_rejected_total` | counter | count (writes) | `Rejected.count` | writes refused with `PushError::Full` ([`Stats::rejected`]) |
//! | `tidefall_batches_total` | counter | count (calls) | `BatchStop` | processor calls, failed ones too ([`Stats::batches`]) |
//! | `tidefall_cycle_duration_seconds` | histogram | seconds | `ProcessingStop.duration` | how long a partition's processing cycle ran |
//! | `tidefall_cycle_size` | histogram | count (items) | `ProcessingStop.size` | items a cycle took from its partition |
//! | `tidefall_batch_duration_seconds` | histogram | seconds | `BatchStop.duration` | how long a processor call ran |
//! | `tidefall_batch_size` | histogram | count (items) | `BatchStop.size` | items per processor call |
//!
//! At rest (after `flush` or `stop`), each counter summed over a buffer's partitions equals
//! the [`Stats`] field named beside it. [`MetricsObserver::with_prefix`] replaces the
//! `tidefall` prefix of every name. The observer describes its metrics (unit and text) to the
//! recorder installed when it is built; [`MetricsObserver::describe`] does it again, for a
//! recorder installed later.
//!
//! [`Stats`]: crate::Stats
//! [`Stats::processed`]: crate::Stats::processed
//! [`Stats::failed`]: crate::Stats::failed
//! [`Stats::rejected`]: crate::Stats::rejected
//! [`Stats::batches`]: crate::Stats::batches
//! [`tracing`]: https://docs.rs/tracing/0.1
//! [`metrics`]: https://docs.rs/metrics/0.24
#![cfg_attr(feature = "tracing", doc = "[`TracingObserver`]: TracingObserver")]
#![cfg_attr(not(feature = "tracing"), doc = "[`TracingObserver`]: #tracing")]
#![cfg_attr(feature = "metrics", doc = "[`MetricsObserver`]: MetricsObserver")]
#![cfg_attr(not(feature = "metrics"), doc = "[`MetricsObserver`]: #metrics")]
#![cfg_attr(
    feature = "metrics",
    doc = "[`MetricsObserver::with_prefix`]: MetricsObserver::with_prefix"
)]
#![cfg_attr(
    not(feature = "metrics"),
    doc = "[`MetricsObserver::with_prefix`]: #metrics"
)]
#![cfg_attr(
    feature = "metrics",
    doc = "[`MetricsObserver::describe`]: MetricsObserver::describe"
)]
#![cfg_attr(
    not(feature = "metrics"),
    doc = "[`MetricsObserver::describe`]: #metrics"
)]

#[cfg(feature = "metrics")]
mod metrics_observer;
#[cfg(feature = "tracing")]
mod tracing_observer;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics_observer::MetricsObserver;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use tracing_observer::TracingObserver;
