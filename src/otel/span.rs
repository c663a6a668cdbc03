//! [`BatchSpanProcessor`]: the SDK's batch span processor, on a [`Queue`](crate::Queue).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Span, SpanData, SpanExporter, SpanProcessor, OTEL_BSP_EXPORT_TIMEOUT,
    OTEL_BSP_EXPORT_TIMEOUT_DEFAULT, OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE_DEFAULT, OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE_DEFAULT, OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_SCHEDULE_DELAY_DEFAULT,
};
use opentelemetry_sdk::Resource;

use super::{busy_error, Control, Exclusive, Knobs, Pipeline, Signal};
use crate::{Error, Stats};

/// The span processor's defaults and variables: the SDK's.
const SPANS: Signal = Signal {
    queue_size: (OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_QUEUE_SIZE_DEFAULT),
    scheduled_delay: (OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_SCHEDULE_DELAY_DEFAULT),
    batch_size: (
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE_DEFAULT,
    ),
    export_timeout: (OTEL_BSP_EXPORT_TIMEOUT, OTEL_BSP_EXPORT_TIMEOUT_DEFAULT),
    items: "spans",
};

/// A span processor that queues ended, sampled spans on a tidefall [`Queue`](crate::Queue)
/// and exports them in batches through a `SpanExporter`: a drop-in for the SDK's
/// `BatchSpanProcessor` (see the [module docs](crate::otel) for the mapping of its knobs).
///
/// `on_end` never blocks: a span refused because its partition is full, or because the
/// processor was shut down, is dropped and counted in [`dropped_spans`](Self::dropped_spans).
/// Clones are handles to one processor.
///
/// ```
/// use opentelemetry::trace::{Tracer, TracerProvider as _};
/// use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
/// use tidefall::otel::BatchSpanProcessor;
///
/// let exporter = InMemorySpanExporter::default();
/// let processor = BatchSpanProcessor::builder(exporter.clone())
///     .with_name("spans")
///     .with_partitions(2)
///     .build()?;
/// let provider = SdkTracerProvider::builder()
///     .with_span_processor(processor.clone())
///     .build();
/// provider.tracer("example").in_span("work", |_cx| {});
/// provider.force_flush()?;
/// assert_eq!(exporter.get_finished_spans()?[0].name, "work");
/// # provider.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BatchSpanProcessor {
    pipeline: Arc<Pipeline<SpanData>>,
}

impl BatchSpanProcessor {
    /// A builder with the SDK's defaults, overridden by the `OTEL_BSP_*` environment
    /// variables (read now), exporting through `exporter`.
    pub fn builder<E: SpanExporter + 'static>(exporter: E) -> BatchSpanProcessorBuilder<E> {
        BatchSpanProcessorBuilder {
            exporter,
            knobs: Knobs::from_env(&SPANS),
        }
    }

    /// Sampled spans dropped: refused because their partition was full (also counted in
    /// [`Stats::rejected`]) or because the processor was shut down.
    pub fn dropped_spans(&self) -> u64 {
        self.pipeline.dropped()
    }

    /// The queue's counters, in spans: `processed` were exported, `failed` were in a batch
    /// whose export failed (an error, a panic, or the export timeout), `buffered` wait.
    pub fn stats(&self) -> Stats {
        self.pipeline.stats()
    }
}

impl fmt::Debug for BatchSpanProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.pipeline.debug(f, "BatchSpanProcessor")
    }
}

impl SpanProcessor for BatchSpanProcessor {
    /// Does nothing: spans are queued when they end.
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    /// Queues the span if it is sampled; never blocks. A refused span is dropped and counted.
    fn on_end(&self, span: SpanData) {
        // Recorded but not sampled: for local processors only, never exported.
        if span.span_context.is_sampled() {
            self.pipeline.push(span);
        }
    }

    /// Exports every span queued now (waiting at most the export timeout for a stuck
    /// export), then calls the exporter's `force_flush`. `Err` if an export failed
    /// meanwhile; `AlreadyShutdown` after a shutdown.
    fn force_flush(&self) -> OTelSdkResult {
        self.pipeline.force_flush()
    }

    /// Refuses further spans, exports every queued span, then shuts the exporter down.
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

/// Configures a [`BatchSpanProcessor`]: the SDK's `BatchConfigBuilder` knobs, under their
/// names, and tidefall's options. See the [module docs](crate::otel) for the mapping.
///
/// ```
/// use std::time::Duration;
/// use opentelemetry_sdk::trace::InMemorySpanExporter;
/// use tidefall::otel::BatchSpanProcessor;
///
/// let processor = BatchSpanProcessor::builder(InMemorySpanExporter::default())
///     .with_max_queue_size(65_536)
///     .with_scheduled_delay(Duration::from_secs(1))
///     .with_max_export_batch_size(1024)
///     .with_max_export_timeout(Duration::from_secs(10))
///     .with_partitions(4)
///     .build()?;
/// # drop(processor);
/// let invalid = BatchSpanProcessor::builder(InMemorySpanExporter::default())
///     .with_max_export_batch_size(0)
///     .build();
/// assert!(matches!(
///     invalid,
///     Err(tidefall::Error::InvalidOption { option: "with_max_export_batch_size", .. })
/// ));
/// # Ok::<(), tidefall::Error>(())
/// ```
pub struct BatchSpanProcessorBuilder<E> {
    exporter: E,
    knobs: Knobs,
}

knob_setters!(
    BatchSpanProcessorBuilder,
    "spans",
    "OTEL_BSP",
    "5 s",
    "ending spans"
);

impl<E: SpanExporter + 'static> BatchSpanProcessorBuilder<E> {
    /// Validates the options and starts the processor. An invalid value is
    /// [`Error::InvalidOption`] naming its method.
    pub fn build(self) -> Result<BatchSpanProcessor, Error> {
        let export_timeout = self.knobs.max_export_timeout;
        let exporter = Arc::new(Exporter(Exclusive::new(self.exporter)));
        let exporting = Arc::clone(&exporter);
        let (queue, plan) = self.knobs.start(move |batch: Vec<SpanData>| {
            match exporting.0.with(export_timeout, |e| {
                futures_executor::block_on(e.export(batch))
            }) {
                Ok(exported) => exported.map_err(|e| e.to_string()),
                Err(_busy) => Err(format!(
                    "the exporter was busy with another export for longer than the export \
                     timeout ({export_timeout:?})"
                )),
            }
        })?;
        Ok(BatchSpanProcessor {
            pipeline: Arc::new(Pipeline::new(
                queue,
                exporter,
                plan,
                export_timeout,
                SPANS.items,
            )),
        })
    }
}

/// A span exporter, taking turns.
struct Exporter<E>(Exclusive<E>);

impl<E: SpanExporter + 'static> Control for Exporter<E> {
    fn force_flush(&self, wait: Duration) -> OTelSdkResult {
        self.0
            .with(wait, |e| e.force_flush())
            .unwrap_or(Err(busy_error(wait)))
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
