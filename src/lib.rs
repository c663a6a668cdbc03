//! Lock-free, partitioned buffers that accumulate writes and drain them to a processor in
//! periodic batches: the OpenTelemetry batch processor, generalised into a library.
//!
//! * [`Queue<T>`]: every pushed item reaches the processor exactly once, in push order within
//!   a partition.
//! * [`HashMap<K, V, S>`]: the latest value per key; writes to a key within a tick coalesce,
//!   and the processor receives one [`Entry`] per key.
//!
//! Producers write; each partition accumulates into lock-free storage behind one atomic
//! pointer; on every tick the engine swaps in fresh storage, waits out the writers that were
//! inside the old one, and hands its contents to the processor, in batches, on a rayon pool.
//! Writers never wait for a tick.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tidefall::Queue;
//!
//! let received = Arc::new(AtomicUsize::new(0));
//! let counter = Arc::clone(&received);
//! let queue = Queue::<String>::builder()
//!     .processing_interval(Duration::from_millis(100))
//!     .processing_batch_size(512)
//!     .processor(move |batch: Vec<String>| {
//!         counter.fetch_add(batch.len(), Ordering::Relaxed);
//!     })
//!     .start()?;
//!
//! std::thread::scope(|s| {
//!     for t in 0..4 {
//!         let queue = queue.clone();
//!         s.spawn(move || {
//!             for i in 0..1000 {
//!                 queue.push(format!("event {t}/{i}")).unwrap();
//!             }
//!         });
//!     }
//! });
//! queue.stop()?; // drains everything
//! assert_eq!(received.load(Ordering::Relaxed), 4000);
//! assert_eq!(queue.stats().processed, 4000);
//! # Ok::<(), tidefall::Error>(())
//! ```
//!
//! # HashMap
//!
//! A [`HashMap`] routes every write by its key's hash, so all writes of a key meet in one
//! partition's table: `put` overwrites in place (last write wins), `put_newer` stores only a
//! strictly newer version, `get`, `delete` and `len` see the current tick. Memory is bounded
//! by the live keys, not by the writes. For the map, `capacity` and `drain_threshold` count
//! distinct keys, and [`Stats`] counts entries.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use tidefall::{monotonic_version, Entry, HashMap};
//!
//! let latest = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&latest);
//! let map = HashMap::<u32, String>::builder()
//!     .processing_interval(std::time::Duration::from_secs(60))
//!     .processor(move |entries: Vec<Entry<u32, String>>| sink.lock().unwrap().extend(entries))
//!     .start()?;
//!
//! std::thread::scope(|s| {
//!     for t in 0..4 {
//!         let map = map.clone();
//!         s.spawn(move || {
//!             for i in 0..1000 {
//!                 let version = monotonic_version();
//!                 map.put_newer(i % 10, format!("{t}/{i}"), version).unwrap();
//!             }
//!         });
//!     }
//! });
//! assert_eq!(map.len(), 10); // 4000 writes, 10 keys
//! map.stop()?;
//! let entries = latest.lock().unwrap();
//! assert_eq!(entries.len(), 10); // one entry per key
//! assert!(entries.iter().all(|e| e.value.ends_with(&format!("/{}", 990 + e.key))));
//! # Ok::<(), tidefall::Error>(())
//! ```
//!
//! # Options
//!
//! | builder method | default | rule |
//! |---|---|---|
//! | `name` | `tidefall-<n>` | not empty |
//! | `processor` | required | missing → [`Error::MissingProcessor`] |
//! | `partitions` | available parallelism | 1 to 65 536 |
//! | `processing_interval` | 5 s | > 0 |
//! | `processing_batch_size` | `BatchSize::Items(10)` | `Items(n ≥ 1)` or `Table` |
//! | `processing_timeout` | 60 s | > 0 |
//! | `drain_threshold` | off | ≥ 1; a trigger, not a cap |
//! | `drain_check_interval` | 1 s | > 0 |
//! | `capacity` | unbounded | ≥ 1, per partition (exact) |
//! | `observer` | none | several allowed |
//! | `thread_pool` | one shared pool, one thread per core | |
//!
//! An invalid option makes `start()` fail with [`Error::InvalidOption`] naming it. With the
//! `serde` feature, `config(..)` layers the same options from config files and environment
//! variables under the explicit calls (see `config`).
//!
//! # Failure isolation and timeouts
//!
//! Processor calls run on the pool inside `catch_unwind`. A panic or an `Err` loses that
//! batch only: it is reported (`ProcessingException` for a panic, then `ProcessingFailed`)
//! and its items are counted in [`Stats::failed`]. A cycle still running at
//! `processing_timeout` is reported `ProcessingFailed` with reason timeout; the call in
//! progress cannot be pre-empted, so it keeps its pool thread until it returns, and its items
//! plus the cycle's batches not yet handed over are counted failed (the latter are dropped,
//! never processed). The partition's next cycles run without waiting for it, so the stuck
//! call's items may reach an external system after later ones: the order guarantee covers
//! the items counted as processed.
//!
//! # Features
//!
//! None is on by default; each adds one integration with the ecosystem:
//!
//! | feature | adds |
//! |---|---|
//! | `opentelemetry` | `otel`: span and log processors for `opentelemetry_sdk`, built on [`Queue`] |
//! | `tracing` | `observe::TracingObserver`: events as `tracing` events |
//! | `metrics` | `observe::MetricsObserver`: counters and histograms through `metrics` |
//! | `tokio` | `processor_async` on both builders: async processors, cancelled at `processing_timeout` |
//! | `serde` | `config`: serializable options, layered from files and the environment |
//!
//! Without a feature, [`Global`] and [`Instances`] declare process-wide buffers in a
//! `static`, started on first use.
//!
//! # Checking
//!
//! The lock-free core lives in `raw/`, its primitives behind the `sync` shim: the loom models
//! (`loom-tests/`), the proptest models (`proptests/`), the fuzz targets (`fuzz/`) and Miri
//! check it; see the README for the commands.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "tokio")]
mod async_processor;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod config;
mod engine;
mod entry;
mod global;
mod hash_map;
#[cfg(any(feature = "tracing", feature = "metrics"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "tracing", feature = "metrics"))))]
pub mod observe;
mod options;
#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
pub mod otel;
mod partition;
mod processor;
mod queue;
mod raw;
mod routing;
mod sync;
mod telemetry;

pub use entry::Entry;
pub use global::{Global, Instances};
pub use hash_map::{monotonic_version, HashMap, HashMapBuilder};
pub use options::{BatchSize, Error, OptionsUpdate, PushError};
pub use processor::{ProcessOutcome, Processor};
pub use queue::{Queue, QueueBuilder};
pub use telemetry::{
    BatchStop, Event, FailureReason, Observer, PartitionStart, PartitionStop, ProcessingException,
    ProcessingFailed, ProcessingStart, ProcessingStop, Rejected, Stats, StopReason,
};

/// The default hasher for routing keys (and the `HashMap`'s keys): foldhash, fast and
/// well kept (SipHash is too slow for a write path), randomly seeded per instance.
pub type DefaultHashBuilder = foldhash::fast::RandomState;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The lock-free storage, exposed for the loom models in `loom-tests/` only.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api {
    pub use crate::raw::queue::{Closed, Pushed, Segments};
    pub use crate::raw::shortcut::Own;
    pub use crate::raw::staging::Staged;
    pub use crate::raw::table::{Refused, Tables, Write, Written};
}
