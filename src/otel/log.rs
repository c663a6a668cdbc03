//! [`BatchLogProcessor`]: the SDK's batch log processor, on a [`Queue`](crate::Queue).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    LogBatch, LogExporter, LogProcessor, SdkLogRecord, OTEL_BLRP_EXPORT_TIMEOUT,
    OTEL_BLRP_EXPORT_TIMEOUT_DEFAULT, OTEL_BLRP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BLRP_MAX_EXPORT_BATCH_SIZE_DEFAULT, OTEL_BLRP_MAX_QUEUE_SIZE,
    OTEL_BLRP_MAX_QUEUE_SIZE_DEFAULT, OTEL_BLRP_SCHEDULE_DELAY, OTEL_BLRP_SCHEDULE_DELAY_DEFAULT,
};
use opentelemetry_sdk::Resource;

use super::{busy_error, Control, Exclusive, Knobs, Pipeline, Signal};
use crate::{Error, Stats};

/// The log processor's defaults and variables: the SDK's.
const LOGS: Signal = Signal {
    queue_size: (OTEL_BLRP_MAX_QUEUE_SIZE, OTEL_BLRP_MAX_QUEUE_SIZE_DEFAULT),
    scheduled_delay: (OTEL_BLRP_SCHEDULE_DELAY, OTEL_BLRP_SCHEDULE_DELAY_DEFAULT),
    batch_size: (
        OTEL_BLRP_MAX_EXPORT_BATCH_SIZE,
        OTEL_BLRP_MAX_EXPORT_BATCH_SIZE_DEFAULT,
    ),
    export_timeout: (OTEL_BLRP_EXPORT_TIMEOUT, OTEL_BLRP_EXPORT_TIMEOUT_DEFAULT),
    items: "log records",
};

/// A queued log record: the record and its logger's scope, owned (the SDK lends both to
/// `emit` only for the call).
type Record = (SdkLogRecord, InstrumentationScope);

/// A log processor that queues emitted records on a tidefall [`Queue`](crate::Queue) and
/// exports them in batches through a `LogExporter`: a drop-in for the SDK's
/// `BatchLogProcessor` (see the [module docs](crate::otel) for the mapping of its knobs).
///
/// `emit` clones the record and its scope (as the SDK's does) and never blocks: a record
/// refused because its partition is full, or because the processor was shut down, is dropped
/// and counted in [`dropped_logs`](Self::dropped_logs). Clones are handles to one processor.
///
/// ```
/// use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
/// use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
/// use tidefall::otel::BatchLogProcessor;
///
/// let exporter = InMemoryLogExporter::default();
/// let processor = BatchLogProcessor::builder(exporter.clone()).build()?;
/// let provider = SdkLoggerProvider::builder()
///     .with_log_processor(processor.clone())
///     .build();
/// let logger = provider.logger("example");
/// let mut record = logger.create_log_record();
/// record.set_body("hello".into());
/// logger.emit(record);
/// provider.force_flush()?;
/// assert_eq!(exporter.get_emitted_logs()?.len(), 1);
/// provider.shutdown()?;
/// assert_eq!(processor.dropped_logs(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BatchLogProcessor {
    pipeline: Arc<Pipeline<Record>>,
}

impl BatchLogProcessor {
    /// A builder with the SDK's defaults, overridden by the `OTEL_BLRP_*` environment
    /// variables (read now), exporting through `exporter`.
    pub fn builder<E: LogExporter + 'static>(exporter: E) -> BatchLogProcessorBuilder<E> {
        BatchLogProcessorBuilder {
            exporter,
            knobs: Knobs::from_env(&LOGS),
        }
    }

    /// Log records dropped: refused because their partition was full (also counted in
    /// [`Stats::rejected`]) or because the processor was shut down.
    pub fn dropped_logs(&self) -> u64 {
        self.pipeline.dropped()
    }

    /// The queue's counters, in log records: `processed` were exported, `failed` were in a
    /// batch whose export failed (an error, a panic, or the export timeout), `buffered` wait.
    pub fn stats(&self) -> Stats {
        self.pipeline.stats()
    }
}

impl fmt::Debug for BatchLogProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.pipeline.debug(f, "BatchLogProcessor")
    }
}

impl LogProcessor for BatchLogProcessor {
    /// Queues a copy of the record and its scope; never blocks. A refused record is dropped
    /// and counted.
    fn emit(&self, record: &mut SdkLogRecord, instrumentation: &InstrumentationScope) {
        self.pipeline
            .push((record.clone(), instrumentation.clone()));
    }

    /// Exports every record queued now (waiting at most the export timeout for a stuck
    /// export). `Err` if an export failed meanwhile; `AlreadyShutdown` after a shutdown.
    fn force_flush(&self) -> OTelSdkResult {
        self.pipeline.force_flush()
    }

    /// Refuses further records, exports every queued record, then shuts the exporter down.
    /// Returns by `timeout` (`Timeout` if the work is still running; it goes on in the
    /// background). `AlreadyShutdown` on a second call.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.pipeline.shutdown(timeout)
    }

    /// Passes the resource on to the exporter.
    fn set_resource(&mut self, resource: &Resource) {
        self.pipeline.set_resource(resource);
    }
}

/// Configures a [`BatchLogProcessor`]: the SDK's `BatchConfigBuilder` knobs, under their
/// names, and tidefall's options. See the [module docs](crate::otel) for the mapping.
///
/// ```
/// use std::time::Duration;
/// use opentelemetry_sdk::logs::InMemoryLogExporter;
/// use tidefall::otel::BatchLogProcessor;
///
/// let processor = BatchLogProcessor::builder(InMemoryLogExporter::default())
///     .with_max_queue_size(65_536)
///     .with_scheduled_delay(Duration::from_millis(200))
///     .with_partitions(2)
///     .build()?;
/// # drop(processor);
/// # Ok::<(), tidefall::Error>(())
/// ```
pub struct BatchLogProcessorBuilder<E> {
    exporter: E,
    knobs: Knobs,
}

knob_setters!(
    BatchLogProcessorBuilder,
    "records",
    "OTEL_BLRP",
    "1 s",
    "emitting threads"
);

impl<E: LogExporter + 'static> BatchLogProcessorBuilder<E> {
    /// Validates the options and starts the processor. An invalid value is
    /// [`Error::InvalidOption`] naming its method.
    pub fn build(self) -> Result<BatchLogProcessor, Error> {
        let export_timeout = self.knobs.max_export_timeout;
        let exporter = Arc::new(Exporter(Exclusive::new(self.exporter)));
        let exporting = Arc::clone(&exporter);
        let (queue, plan) = self.knobs.start(move |batch: Vec<Record>| {
            // `LogBatch` borrows: the SDK's constructor for owned records is crate-private,
            // so the batch is lent as a slice of reference pairs.
            let lent: Vec<(&SdkLogRecord, &InstrumentationScope)> = batch
                .iter()
                .map(|(record, scope)| (record, scope))
                .collect();
            match exporting.0.with(export_timeout, |e| {
                futures_executor::block_on(e.export(LogBatch::new(&lent)))
            }) {
                Ok(exported) => exported.map_err(|e| e.to_string()),
                Err(_busy) => Err(format!(
                    "the exporter was busy with another export for longer than the export \
                     timeout ({export_timeout:?})"
                )),
            }
        })?;
        Ok(BatchLogProcessor {
            pipeline: Arc::new(Pipeline::new(
                queue,
                exporter,
                plan,
                export_timeout,
                LOGS.items,
            )),
        })
    }
}

/// A log exporter, taking turns.
struct Exporter<E>(Exclusive<E>);

impl<E: LogExporter + 'static> Control for Exporter<E> {
    /// `LogExporter` has no `force_flush`: the queue's flush is all there is.
    fn force_flush(&self, _wait: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.0
            .with(timeout, |e| e.shutdown_with_timeout(timeout))
            .unwrap_or(Err(busy_error(timeout)))
    }

    fn set_resource(&self, resource: &Resource, wait: Duration) {
        // Busy past the wait: see `Pipeline::set_resource`.
        let _ = self.0.with(wait, |e| e.set_resource(resource));
    }
}
