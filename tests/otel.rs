//! The `opentelemetry` feature: `tidefall::otel::{BatchSpanProcessor, BatchLogProcessor}`
//! behind the SDK's providers, exporting to the SDK's in-memory exporters or to a recording
//! exporter that can fail, hang, and report its shutdown and resource.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{Link, SpanKind, TraceId, TraceState, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{
    InMemoryLogExporter, LogBatch, LogExporter, LogProcessor as _, SdkLoggerProvider,
};
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
    SpanData, SpanExporter, SpanProcessor as _,
};
use opentelemetry_sdk::Resource;
use tidefall::otel::{
    BatchLogProcessor, BatchLogProcessorBuilder, BatchSpanProcessor, BatchSpanProcessorBuilder,
};
use tidefall::{Error, Event};

/// Builders read the `OTEL_BSP_*` / `OTEL_BLRP_*` variables when created; the test that sets
/// them holds this lock, and every builder is created under it.
static ENV: Mutex<()> = Mutex::new(());

fn env_lock() -> MutexGuard<'static, ()> {
    ENV.lock().unwrap_or_else(|p| p.into_inner())
}

/// A span processor builder that exports at least hourly: only flushes, early exports and
/// shutdowns export.
fn spans<E: SpanExporter + 'static>(exporter: E) -> BatchSpanProcessorBuilder<E> {
    let _env = env_lock();
    BatchSpanProcessor::builder(exporter).with_scheduled_delay(Duration::from_secs(3600))
}

/// A log processor builder that exports at least hourly.
fn logs<E: LogExporter + 'static>(exporter: E) -> BatchLogProcessorBuilder<E> {
    let _env = env_lock();
    BatchLogProcessor::builder(exporter).with_scheduled_delay(Duration::from_secs(3600))
}

fn tracer_provider(processor: &BatchSpanProcessor) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_span_processor(processor.clone())
        .build()
}

fn logger_provider(processor: &BatchLogProcessor) -> SdkLoggerProvider {
    SdkLoggerProvider::builder()
        .with_log_processor(processor.clone())
        .build()
}

/// Ends a span named `name`.
fn span(provider: &SdkTracerProvider, name: String) {
    provider.tracer("test").in_span(name, |_cx| {});
}

/// Emits a record whose body is `body`.
fn log(provider: &SdkLoggerProvider, body: String) {
    let logger = provider.logger("test");
    let mut record = logger.create_log_record();
    record.set_body(body.into());
    logger.emit(record);
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// Blocks exports while closed; counts the exports that reached it.
#[derive(Debug, Default)]
struct Gate {
    closed: Mutex<bool>,
    changed: Condvar,
    entered: AtomicUsize,
}

impl Gate {
    fn set(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.changed.notify_all();
    }

    fn pass(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.changed.wait(closed).unwrap();
        }
    }

    /// Waits until `n` exports have reached the gate.
    fn wait_entered(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.entered.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "no export reached the gate");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// An exporter of both signals that records span names and log bodies, and can fail, hang
/// (behind its gate), and report its shutdown and resource.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Recorded>);

#[derive(Debug, Default)]
struct Recorded {
    names: Mutex<Vec<String>>,
    exports: AtomicUsize,
    fail: AtomicBool,
    shut_down: AtomicBool,
    resource: Mutex<Option<Resource>>,
    gate: Gate,
}

impl Recorder {
    fn failing() -> Self {
        let recorder = Recorder::default();
        recorder.0.fail.store(true, Ordering::SeqCst);
        recorder
    }

    fn gated() -> Self {
        let recorder = Recorder::default();
        recorder.0.gate.set(true);
        recorder
    }

    fn names(&self) -> Vec<String> {
        sorted(self.0.names.lock().unwrap().clone())
    }

    fn record(&self, names: impl Iterator<Item = String>) -> OTelSdkResult {
        self.0.gate.pass();
        self.0.exports.fetch_add(1, Ordering::SeqCst);
        if self.0.fail.load(Ordering::SeqCst) {
            return Err(OTelSdkError::InternalFailure("the backend refused".into()));
        }
        self.0.names.lock().unwrap().extend(names);
        Ok(())
    }
}

impl SpanExporter for Recorder {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.record(batch.into_iter().map(|span| span.name.into_owned()))
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.0.shut_down.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self.0.resource.lock().unwrap() = Some(resource.clone());
    }
}

impl LogExporter for Recorder {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.record(batch.iter().map(|(record, _scope)| match record.body() {
            Some(AnyValue::String(body)) => body.as_str().to_owned(),
            other => format!("{other:?}"),
        }))
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.0.shut_down.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self.0.resource.lock().unwrap() = Some(resource.clone());
    }
}

/// Records every span, but samples only those whose name does not start with "quiet".
#[derive(Debug, Clone)]
struct QuietNotSampled;

impl ShouldSample for QuietNotSampled {
    fn should_sample(
        &self,
        _parent: Option<&Context>,
        _trace_id: TraceId,
        name: &str,
        _kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        SamplingResult {
            decision: if name.starts_with("quiet") {
                SamplingDecision::RecordOnly
            } else {
                SamplingDecision::RecordAndSample
            },
            attributes: Vec::new(),
            trace_state: TraceState::default(),
        }
    }
}

#[test]
fn spans_from_threads_are_exported_exactly_once() {
    let exporter = InMemorySpanExporter::default();
    let processor = spans(exporter.clone())
        .with_partitions(4)
        .with_max_queue_size(100_000)
        .build()
        .unwrap();
    let provider = tracer_provider(&processor);
    std::thread::scope(|s| {
        for t in 0..4 {
            let provider = &provider;
            s.spawn(move || {
                for i in 0..500 {
                    span(provider, format!("t{t}/{i}"));
                }
            });
        }
    });
    provider.force_flush().unwrap();
    let exported = sorted(
        exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .map(|span| span.name.into_owned())
            .collect(),
    );
    let expected = sorted(
        (0..4)
            .flat_map(|t| (0..500).map(move |i| format!("t{t}/{i}")))
            .collect(),
    );
    assert_eq!(exported, expected);
    assert_eq!(processor.dropped_spans(), 0);
    let stats = processor.stats();
    assert_eq!(
        (stats.processed, stats.failed, stats.buffered),
        (2000, 0, 0)
    );
    provider.shutdown().unwrap();
}

#[test]
fn unsampled_spans_are_not_exported() {
    let exporter = InMemorySpanExporter::default();
    let processor = spans(exporter.clone()).build().unwrap();
    let provider = SdkTracerProvider::builder()
        .with_sampler(QuietNotSampled)
        .with_span_processor(processor.clone())
        .build();
    for name in ["quiet-1", "loud-1", "quiet-2", "loud-2", "quiet-3"] {
        span(&provider, name.to_owned());
    }
    provider.force_flush().unwrap();
    let exported: Vec<String> = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .map(|span| span.name.into_owned())
        .collect();
    assert_eq!(sorted(exported), ["loud-1", "loud-2"]);
    assert_eq!(processor.dropped_spans(), 0);
    assert_eq!(processor.stats().processed, 2);
    provider.shutdown().unwrap();
}

#[test]
fn force_flush_exports_without_waiting_for_the_delay() {
    let exporter = InMemorySpanExporter::default();
    let processor = spans(exporter.clone()).with_partitions(2).build().unwrap();
    let provider = tracer_provider(&processor);
    for i in 0..10 {
        span(&provider, format!("span {i}"));
    }
    // Far below the early-export fill, an hour before the next scheduled export.
    std::thread::sleep(Duration::from_millis(50));
    assert!(exporter.get_finished_spans().unwrap().is_empty());
    let started = Instant::now();
    provider.force_flush().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(exporter.get_finished_spans().unwrap().len(), 10);
    provider.shutdown().unwrap();
}

#[test]
fn scheduled_delay_exports_on_its_own() {
    let exporter = InMemorySpanExporter::default();
    let processor = spans(exporter.clone())
        .with_scheduled_delay(Duration::from_millis(20))
        .build()
        .unwrap();
    let provider = tracer_provider(&processor);
    span(&provider, "timed".to_owned());
    let deadline = Instant::now() + Duration::from_secs(10);
    while exporter.get_finished_spans().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the scheduled export never came");
        std::thread::sleep(Duration::from_millis(5));
    }
    provider.shutdown().unwrap();
}

#[test]
fn a_batch_worth_of_spans_exports_early() {
    let exporter = InMemorySpanExporter::default();
    // One partition: early export at 10 of 100 queued, as the SDK's at a batch's worth.
    let processor = spans(exporter.clone())
        .with_partitions(1)
        .with_max_queue_size(100)
        .with_max_export_batch_size(10)
        .build()
        .unwrap();
    let provider = tracer_provider(&processor);
    for i in 0..9 {
        span(&provider, format!("span {i}"));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(exporter.get_finished_spans().unwrap().is_empty());
    span(&provider, "span 9".to_owned());
    let deadline = Instant::now() + Duration::from_secs(10);
    while exporter.get_finished_spans().unwrap().len() < 10 {
        assert!(Instant::now() < deadline, "no early export");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(exporter.get_finished_spans().unwrap().len(), 10);
    provider.shutdown().unwrap();
}

#[test]
fn shutdown_drains_then_later_spans_are_dropped_and_counted() {
    let recorder = Recorder::default();
    let processor = spans(recorder.clone()).with_partitions(2).build().unwrap();
    let provider = tracer_provider(&processor);
    for i in 0..20 {
        span(&provider, format!("before {i:02}"));
    }
    processor.shutdown().unwrap();
    let expected = sorted((0..20).map(|i| format!("before {i:02}")).collect());
    assert_eq!(recorder.names(), expected);
    assert!(recorder.0.shut_down.load(Ordering::SeqCst));

    // The provider still runs, so its spans still reach the processor, which refuses them.
    for i in 0..5 {
        span(&provider, format!("after {i}"));
    }
    assert_eq!(processor.dropped_spans(), 5);
    assert_eq!(recorder.names(), expected);
    let stats = processor.stats();
    assert_eq!((stats.processed, stats.rejected), (20, 0)); // stopped, not full
    assert!(matches!(
        processor.shutdown(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert!(matches!(
        processor.force_flush(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
}

#[test]
fn a_tiny_queue_drops_the_excess_exactly() {
    let recorder = Recorder::gated();
    // One partition of 4; a batch of 1 makes every span trigger an early export.
    let processor = spans(recorder.clone())
        .with_partitions(1)
        .with_max_queue_size(4)
        .with_max_export_batch_size(1)
        .build()
        .unwrap();
    let provider = tracer_provider(&processor);
    span(&provider, "first".to_owned());
    // The first span's export holds the exporter; the partition is empty again, and no other
    // export of it starts until this one returns.
    recorder.0.gate.wait_entered(1);
    for i in 0..6 {
        span(&provider, format!("next {i}"));
    }
    assert_eq!(processor.dropped_spans(), 2);
    assert_eq!(processor.stats().rejected, 2);
    recorder.0.gate.set(false);
    provider.shutdown().unwrap();
    assert_eq!(
        recorder.names(),
        ["first", "next 0", "next 1", "next 2", "next 3"]
    );
    let stats = processor.stats();
    assert_eq!((stats.processed, stats.failed, stats.rejected), (5, 0, 2));
    assert_eq!(recorder.0.exports.load(Ordering::SeqCst), 5); // batches of 1
}

#[test]
fn a_failing_exporter_fails_its_batches() {
    let failures = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&failures);
    let recorder = Recorder::failing();
    let processor = spans(recorder.clone())
        .with_partitions(1)
        .with_observer(move |event: &Event<'_>| {
            if let Event::ProcessingFailed(_) = event {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    let provider = tracer_provider(&processor);
    for i in 0..7 {
        span(&provider, format!("lost {i}"));
    }
    match provider.force_flush() {
        Err(OTelSdkError::InternalFailure(reason)) => {
            assert!(reason.contains("7 spans failed"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let stats = processor.stats();
    assert_eq!((stats.processed, stats.failed), (0, 7));
    assert_eq!(failures.load(Ordering::SeqCst), 1);
    assert_eq!(processor.dropped_spans(), 0); // accepted, then failed: not dropped
    drop(provider);
}

#[test]
fn an_export_past_the_timeout_fails_its_batch() {
    let recorder = Recorder::gated();
    // A pool of its own: the hung export holds one of its threads until the gate opens.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let processor = spans(recorder.clone())
        .with_partitions(1)
        .with_max_export_timeout(Duration::from_millis(200))
        .with_thread_pool(Arc::new(pool))
        .build()
        .unwrap();
    let provider = tracer_provider(&processor);
    span(&provider, "stuck".to_owned());
    let started = Instant::now();
    assert!(provider.force_flush().is_err());
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(processor.stats().failed, 1);

    // The next export waits for the hung one, at most the export timeout, and fails too.
    span(&provider, "waiting".to_owned());
    let started = Instant::now();
    assert!(provider.force_flush().is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(processor.stats().failed, 2);

    recorder.0.gate.set(false);
    provider.shutdown().unwrap();
    // The hung call could not be pre-empted: it delivered its span, counted failed; the
    // batch that gave up waiting never reached the exporter.
    assert_eq!(recorder.names(), ["stuck"]);
    assert_eq!(processor.stats().processed, 0);
}

#[test]
fn the_resource_reaches_the_exporter() {
    let recorder = Recorder::default();
    let processor = spans(recorder.clone()).build().unwrap();
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name("checkout").build())
        .with_span_processor(processor)
        .build();
    let resource = recorder.0.resource.lock().unwrap().clone().unwrap();
    let service = resource.get(&opentelemetry::Key::from_static_str("service.name"));
    assert_eq!(service, Some("checkout".into()));
    provider.shutdown().unwrap();
}

#[test]
fn invalid_options_are_refused_by_name() {
    fn refused<T: std::fmt::Debug>(result: Result<T, Error>) -> &'static str {
        match result {
            Err(Error::InvalidOption { option, .. }) => option,
            other => panic!("expected InvalidOption, got {other:?}"),
        }
    }
    let exporter = InMemorySpanExporter::default;
    assert_eq!(
        refused(spans(exporter()).with_max_export_batch_size(0).build()),
        "with_max_export_batch_size"
    );
    assert_eq!(
        refused(spans(exporter()).with_max_queue_size(0).build()),
        "with_max_queue_size"
    );
    assert_eq!(
        refused(
            spans(exporter())
                .with_scheduled_delay(Duration::ZERO)
                .build()
        ),
        "with_scheduled_delay"
    );
    assert_eq!(
        refused(
            spans(exporter())
                .with_max_export_timeout(Duration::ZERO)
                .build()
        ),
        "with_max_export_timeout"
    );
    assert_eq!(
        refused(spans(exporter()).with_partitions(0).build()),
        "with_partitions"
    );
    assert_eq!(
        refused(spans(exporter()).with_partitions(1 << 17).build()),
        "with_partitions"
    );
    assert_eq!(
        refused(spans(exporter()).with_name("").build()),
        "with_name"
    );
    assert_eq!(
        refused(
            logs(InMemoryLogExporter::default())
                .with_max_export_batch_size(0)
                .build()
        ),
        "with_max_export_batch_size"
    );
}

#[test]
fn the_sdk_environment_variables_are_honoured() {
    let from_env = |vars: &[(&str, &str)], build: &dyn Fn() -> String| {
        let _env = env_lock();
        for (name, value) in vars {
            std::env::set_var(name, value);
        }
        let debug = build();
        for (name, _) in vars {
            std::env::remove_var(name);
        }
        debug
    };
    let span_processor = || {
        let processor = BatchSpanProcessor::builder(InMemorySpanExporter::default())
            .with_partitions(2)
            .build()
            .unwrap();
        format!("{processor:?}")
    };
    let debug = from_env(
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "1500"),
        ],
        &span_processor,
    );
    assert!(debug.contains("capacity_per_partition: 5"), "{debug}");
    assert!(debug.contains("max_export_batch_size: 4"), "{debug}");
    assert!(debug.contains("early_export_at: 2"), "{debug}"); // 4 of 10: 2 of 5
    assert!(debug.contains("export_timeout: 1.5s"), "{debug}");

    // Unparsable and zero values are ignored; the batch never exceeds the queue.
    let debug = from_env(
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "many"),
        ],
        &span_processor,
    );
    assert!(debug.contains("capacity_per_partition: 1024"), "{debug}");
    assert!(debug.contains("max_export_batch_size: 512"), "{debug}");
    let debug = from_env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")], &span_processor);
    assert!(debug.contains("max_export_batch_size: 100"), "{debug}");

    // The builder's methods override the environment.
    let debug = from_env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "10")], &|| {
        let processor = BatchSpanProcessor::builder(InMemorySpanExporter::default())
            .with_partitions(1)
            .with_max_queue_size(64)
            .build()
            .unwrap();
        format!("{processor:?}")
    });
    assert!(debug.contains("capacity_per_partition: 64"), "{debug}");

    // A schedule delay from the environment exports on its own.
    let exporter = InMemorySpanExporter::default();
    let processor = {
        let _env = env_lock();
        std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "20");
        let processor = BatchSpanProcessor::builder(exporter.clone()).build();
        std::env::remove_var("OTEL_BSP_SCHEDULE_DELAY");
        processor.unwrap()
    };
    let provider = tracer_provider(&processor);
    span(&provider, "timed".to_owned());
    let deadline = Instant::now() + Duration::from_secs(10);
    while exporter.get_finished_spans().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the scheduled export never came");
        std::thread::sleep(Duration::from_millis(5));
    }
    provider.shutdown().unwrap();

    // The log processor reads its own variables, with its own defaults (1 s delay).
    let debug = from_env(&[("OTEL_BLRP_MAX_QUEUE_SIZE", "6")], &|| {
        let processor = BatchLogProcessor::builder(InMemoryLogExporter::default())
            .with_partitions(3)
            .build()
            .unwrap();
        format!("{processor:?}")
    });
    assert!(debug.contains("capacity_per_partition: 2"), "{debug}");
}

#[test]
fn logs_from_threads_are_exported_exactly_once() {
    let exporter = InMemoryLogExporter::default();
    let processor = logs(exporter.clone())
        .with_partitions(3)
        .with_max_queue_size(100_000)
        .build()
        .unwrap();
    let provider = SdkLoggerProvider::builder()
        .with_resource(Resource::builder().with_service_name("ledger").build())
        .with_log_processor(processor.clone())
        .build();
    std::thread::scope(|s| {
        for t in 0..3 {
            let provider = &provider;
            s.spawn(move || {
                for i in 0..400 {
                    log(provider, format!("t{t}/{i}"));
                }
            });
        }
    });
    provider.force_flush().unwrap();
    let emitted = exporter.get_emitted_logs().unwrap();
    let bodies = sorted(
        emitted
            .iter()
            .map(|log| match log.record.body() {
                Some(AnyValue::String(body)) => body.as_str().to_owned(),
                other => panic!("unexpected body {other:?}"),
            })
            .collect(),
    );
    let expected = sorted(
        (0..3)
            .flat_map(|t| (0..400).map(move |i| format!("t{t}/{i}")))
            .collect(),
    );
    assert_eq!(bodies, expected);
    let service = emitted[0]
        .resource
        .get(&opentelemetry::Key::from_static_str("service.name"));
    assert_eq!(service, Some("ledger".into()));
    assert_eq!(emitted[0].instrumentation.name(), "test");
    assert_eq!(processor.dropped_logs(), 0);
    assert_eq!(processor.stats().processed, 1200);
    provider.shutdown().unwrap();
}

#[test]
fn log_shutdown_drains_then_later_records_are_dropped_and_counted() {
    let recorder = Recorder::default();
    let processor = logs(recorder.clone()).with_partitions(2).build().unwrap();
    let provider = logger_provider(&processor);
    for i in 0..12 {
        log(&provider, format!("before {i:02}"));
    }
    processor.shutdown().unwrap();
    let expected = sorted((0..12).map(|i| format!("before {i:02}")).collect());
    assert_eq!(recorder.names(), expected);
    assert!(recorder.0.shut_down.load(Ordering::SeqCst));
    for i in 0..3 {
        log(&provider, format!("after {i}"));
    }
    assert_eq!(processor.dropped_logs(), 3);
    assert_eq!(recorder.names(), expected);
    assert!(matches!(
        processor.shutdown(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert!(matches!(
        processor.force_flush(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
}

#[test]
fn a_tiny_log_queue_drops_the_excess_exactly() {
    let recorder = Recorder::gated();
    let processor = logs(recorder.clone())
        .with_partitions(1)
        .with_max_queue_size(3)
        .with_max_export_batch_size(1)
        .build()
        .unwrap();
    let provider = logger_provider(&processor);
    log(&provider, "first".to_owned());
    recorder.0.gate.wait_entered(1);
    for i in 0..8 {
        log(&provider, format!("next {i}"));
    }
    assert_eq!(processor.dropped_logs(), 5);
    assert_eq!(processor.stats().rejected, 5);
    recorder.0.gate.set(false);
    provider.shutdown().unwrap();
    assert_eq!(recorder.names(), ["first", "next 0", "next 1", "next 2"]);
    assert_eq!(processor.stats().processed, 4);
}

#[test]
fn a_failing_log_exporter_fails_its_batches() {
    let recorder = Recorder::failing();
    let processor = logs(recorder.clone()).with_partitions(1).build().unwrap();
    let provider = logger_provider(&processor);
    for i in 0..5 {
        log(&provider, format!("lost {i}"));
    }
    match provider.force_flush() {
        Err(OTelSdkError::InternalFailure(reason)) => {
            assert!(reason.contains("5 log records failed"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let stats = processor.stats();
    assert_eq!((stats.processed, stats.failed), (0, 5));
    assert_eq!(recorder.0.exports.load(Ordering::SeqCst), 1);
    drop(provider);
}
