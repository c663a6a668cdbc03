//! Options shared by both builders, their validation, run-time updates, and the crate's
//! error types.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::telemetry::Observer;

/// How many items one processor call receives.
///
/// ```
/// use tidefall::BatchSize;
/// assert_eq!(BatchSize::from(100), BatchSize::Items(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchSize {
    /// Up to this many items per call (the last call of a tick may get fewer). Must be ≥ 1.
    Items(usize),
    /// A partition's whole tick in one call.
    Table,
}

impl From<usize> for BatchSize {
    fn from(n: usize) -> Self {
        BatchSize::Items(n)
    }
}

impl Default for BatchSize {
    fn default() -> Self {
        BatchSize::Items(10)
    }
}

/// Errors of `start`, `update_options`, `flush` and `stop`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `start()` was called without a `processor(..)`.
    MissingProcessor,
    /// An option is out of range; `option` is the builder method's name.
    InvalidOption {
        /// The builder method's name, e.g. `"partitions"`.
        option: &'static str,
        /// Why the value was refused.
        reason: String,
    },
    /// `stop()` gave up waiting for processing cycles that outlived `processing_timeout`;
    /// their items are counted as failed.
    Timeout,
    /// The engine could not start a thread (the scheduler or the default pool).
    Spawn(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingProcessor => f.write_str("no processor was given: call `processor(..)`"),
            Error::InvalidOption { option, reason } => {
                write!(f, "invalid option `{option}`: {reason}")
            }
            Error::Timeout => f.write_str("processing cycles outlived `processing_timeout`"),
            Error::Spawn(reason) => write!(f, "could not start an engine thread: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// A write that was not accepted; the item comes back inside.
#[derive(Clone, PartialEq, Eq)]
pub enum PushError<T> {
    /// The partition holds `capacity` items (or keys) already.
    Full(T),
    /// The buffer was stopped.
    Stopped(T),
}

impl<T> PushError<T> {
    /// The item (or items) that were not accepted.
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(item) | PushError::Stopped(item) => item,
        }
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("Full(..)"),
            PushError::Stopped(_) => f.write_str("Stopped(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("the buffer partition is at capacity"),
            PushError::Stopped(_) => f.write_str("the buffer is stopped"),
        }
    }
}

impl<T> std::error::Error for PushError<T> {}

/// A partial change of the run-time options, for `update_options`. Options left unset keep
/// their values.
///
/// ```
/// use std::time::Duration;
/// use tidefall::{BatchSize, OptionsUpdate};
/// let update = OptionsUpdate::default()
///     .processing_interval(Duration::from_millis(100))
///     .processing_batch_size(BatchSize::Table)
///     .drain_threshold(None);
/// # let _ = update;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionsUpdate {
    pub(crate) processing_interval: Option<Duration>,
    pub(crate) processing_timeout: Option<Duration>,
    pub(crate) processing_batch_size: Option<BatchSize>,
    pub(crate) drain_threshold: Option<Option<usize>>,
    pub(crate) drain_check_interval: Option<Duration>,
}

impl OptionsUpdate {
    /// A new tick interval; the next tick is scheduled from the update.
    pub fn processing_interval(mut self, interval: Duration) -> Self {
        self.processing_interval = Some(interval);
        self
    }

    /// A new processing timeout, for cycles started after the update.
    pub fn processing_timeout(mut self, timeout: Duration) -> Self {
        self.processing_timeout = Some(timeout);
        self
    }

    /// A new batch size, for cycles started after the update.
    pub fn processing_batch_size(mut self, size: impl Into<BatchSize>) -> Self {
        self.processing_batch_size = Some(size.into());
        self
    }

    /// A new drain threshold; `None` turns early drains off.
    pub fn drain_threshold(mut self, threshold: impl Into<Option<usize>>) -> Self {
        self.drain_threshold = Some(threshold.into());
        self
    }

    /// A new drain check interval; takes effect at once.
    pub fn drain_check_interval(mut self, interval: Duration) -> Self {
        self.drain_check_interval = Some(interval);
        self
    }
}

/// The options that `update_options` may change, as one validated value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RuntimeOptions {
    pub(crate) processing_interval: Duration,
    pub(crate) processing_timeout: Duration,
    pub(crate) processing_batch_size: BatchSize,
    pub(crate) drain_threshold: Option<usize>,
    pub(crate) drain_check_interval: Duration,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            processing_interval: Duration::from_secs(5),
            processing_timeout: Duration::from_secs(60),
            processing_batch_size: BatchSize::default(),
            drain_threshold: None,
            drain_check_interval: Duration::from_secs(1),
        }
    }
}

impl RuntimeOptions {
    /// These options with `update` applied, or the error naming the first invalid option.
    pub(crate) fn updated(mut self, update: &OptionsUpdate) -> Result<Self, Error> {
        if let Some(v) = update.processing_interval {
            self.processing_interval = v;
        }
        if let Some(v) = update.processing_timeout {
            self.processing_timeout = v;
        }
        if let Some(v) = update.processing_batch_size {
            self.processing_batch_size = v;
        }
        if let Some(v) = update.drain_threshold {
            self.drain_threshold = v;
        }
        if let Some(v) = update.drain_check_interval {
            self.drain_check_interval = v;
        }
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> Result<(), Error> {
        positive("processing_interval", self.processing_interval)?;
        positive("processing_timeout", self.processing_timeout)?;
        positive("drain_check_interval", self.drain_check_interval)?;
        if self.processing_batch_size == BatchSize::Items(0) {
            return Err(invalid(
                "processing_batch_size",
                "must be at least 1 item, or BatchSize::Table",
            ));
        }
        if self.drain_threshold == Some(0) {
            return Err(invalid(
                "drain_threshold",
                "must be at least 1 (use None to turn it off)",
            ));
        }
        Ok(())
    }
}

fn positive(option: &'static str, value: Duration) -> Result<(), Error> {
    if value.is_zero() {
        Err(invalid(option, "must be greater than zero"))
    } else {
        Ok(())
    }
}

fn invalid(option: &'static str, reason: &str) -> Error {
    Error::InvalidOption {
        option,
        reason: reason.to_owned(),
    }
}

/// The start-time options both builders share.
#[derive(Clone, Default)]
pub(crate) struct Options {
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<usize>,
    pub(crate) runtime: RuntimeOptions,
    pub(crate) capacity: Option<usize>,
    pub(crate) observers: Vec<Arc<dyn Observer>>,
    pub(crate) thread_pool: Option<Arc<rayon::ThreadPool>>,
    /// The config layers, applied under the explicit calls by `resolve`.
    #[cfg(feature = "serde")]
    pub(crate) config: Option<crate::config::Config>,
    /// The options set by builder calls, which config layers never override.
    #[cfg(feature = "serde")]
    pub(crate) explicit: crate::config::Explicit,
}

/// Options after validation, with defaults filled in.
pub(crate) struct Resolved {
    pub(crate) name: String,
    pub(crate) partitions: usize,
    pub(crate) runtime: RuntimeOptions,
    pub(crate) capacity: Option<usize>,
    pub(crate) observers: Vec<Arc<dyn Observer>>,
    pub(crate) thread_pool: Option<Arc<rayon::ThreadPool>>,
}

/// The most partitions a buffer may have. Each costs a few kilobytes when the buffer starts,
/// so a count far beyond any core count is a mistake, which would otherwise exhaust memory
/// (an abort) or overflow (a panic) inside `start`.
pub(crate) const MAX_PARTITIONS: usize = 1 << 16;

impl Options {
    /// Validates the options, after laying them over the config's layers (the `serde`
    /// feature), and fills in the defaults.
    pub(crate) fn resolve(self) -> Result<Resolved, Error> {
        #[cfg(feature = "serde")]
        if self.config.is_some() {
            return crate::config::resolve(self);
        }
        self.checked()
    }

    /// Validates the options as they stand and fills in the defaults.
    pub(crate) fn checked(self) -> Result<Resolved, Error> {
        let partitions = match self.partitions {
            Some(0) => return Err(invalid("partitions", "must be at least 1")),
            Some(n) if n > MAX_PARTITIONS => {
                return Err(invalid(
                    "partitions",
                    &format!("must be at most {MAX_PARTITIONS}"),
                ))
            }
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_PARTITIONS),
        };
        if self.capacity == Some(0) {
            return Err(invalid("capacity", "must be at least 1"));
        }
        if let Some(name) = &self.name {
            if name.is_empty() {
                return Err(invalid("name", "must not be empty"));
            }
        }
        self.runtime.validate()?;
        Ok(Resolved {
            name: self.name.unwrap_or_else(generated_name),
            partitions,
            runtime: self.runtime,
            capacity: self.capacity,
            observers: self.observers,
            thread_pool: self.thread_pool,
        })
    }
}

/// `tidefall-<n>`, unique within the process.
fn generated_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Relaxed: only uniqueness is needed, which the RMW gives.
    format!("tidefall-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The option-setting methods both builders share; `$field` is the builder's `Options`.
macro_rules! option_setters {
    () => {
        /// The buffer's name, used in telemetry and thread names. Default: `tidefall-<n>`.
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.options.name = Some(name.into());
            self
        }

        /// How many partitions writes spread over (1 to 65 536). Default: the number of
        /// cores.
        pub fn partitions(mut self, partitions: usize) -> Self {
            self.options.partitions = Some(partitions);
            #[cfg(feature = "serde")]
            self.options
                .explicit
                .insert($crate::config::Opt::Partitions);
            self
        }

        /// Time between ticks (> 0). Default: 5 s.
        pub fn processing_interval(mut self, interval: std::time::Duration) -> Self {
            self.options.runtime.processing_interval = interval;
            #[cfg(feature = "serde")]
            self.options
                .explicit
                .insert($crate::config::Opt::ProcessingInterval);
            self
        }

        /// Items per processor call (`Items(n)`, n ≥ 1, or `Table`). Default: `Items(10)`.
        pub fn processing_batch_size(mut self, size: impl Into<$crate::BatchSize>) -> Self {
            self.options.runtime.processing_batch_size = size.into();
            #[cfg(feature = "serde")]
            self.options
                .explicit
                .insert($crate::config::Opt::ProcessingBatchSize);
            self
        }

        /// The longest a processing cycle may run before it is reported failed (> 0).
        /// Default: 60 s.
        pub fn processing_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.options.runtime.processing_timeout = timeout;
            #[cfg(feature = "serde")]
            self.options
                .explicit
                .insert($crate::config::Opt::ProcessingTimeout);
            self
        }

        /// A partition holding this many items (≥ 1) drains before its tick, losslessly: a
        /// trigger, not a cap. Default: off.
        pub fn drain_threshold(mut self, threshold: usize) -> Self {
            self.options.runtime.drain_threshold = Some(threshold);
            #[cfg(feature = "serde")]
            self.options
                .explicit
                .insert($crate::config::Opt::DrainThreshold);
            self
        }

        /// The longest a reached `drain_threshold` waits for its drain (> 0). Default: 1 s.
        pub fn drain_check_interval(mut self, interval: std::time::Duration) -> Self {
            self.options.runtime.drain_check_interval = interval;
            #[cfg(feature = "serde")]
            self.options
                .explicit
                .insert($crate::config::Opt::DrainCheckInterval);
            self
        }

        /// The most items each partition holds (≥ 1); writes beyond it return
        /// [`PushError::Full`](crate::PushError::Full) with the item. Default: unbounded.
        pub fn capacity(mut self, capacity: usize) -> Self {
            self.options.capacity = Some(capacity);
            #[cfg(feature = "serde")]
            self.options.explicit.insert($crate::config::Opt::Capacity);
            self
        }

        /// Layers options from config files, TOML text, providers and environment variables
        /// under this builder's explicit calls, which win wherever they sit in the chain;
        /// see [`config`](crate::config) for the precedence and the errors. A second call
        /// replaces the first. Needs the `serde` feature.
        #[cfg(feature = "serde")]
        #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
        pub fn config(mut self, config: $crate::config::Config) -> Self {
            self.options.config = Some(config);
            self
        }

        /// Adds a telemetry handler; several may be added.
        pub fn observer(mut self, observer: impl $crate::Observer) -> Self {
            self.options.observers.push(std::sync::Arc::new(observer));
            self
        }

        /// The rayon pool processors run on. Default: one pool shared by all buffers.
        pub fn thread_pool(mut self, pool: std::sync::Arc<rayon::ThreadPool>) -> Self {
            self.options.thread_pool = Some(pool);
            self
        }
    };
}

pub(crate) use option_setters;
