//! `tidefall::otel::BatchSpanProcessor` beside the SDK's own `BatchSpanProcessor`: two
//! threads create and end spans through an `SdkTracerProvider`, and each processor exports
//! them to the same exporter, which only counts them.
//!
//! Both processors get the same configuration: the SDK's defaults (batches of 512, a 5 s
//! delay, early export once a batch's worth is queued) but a max queue size of 2^17, larger
//! than one run, so that neither needs to drop. One run: both threads end `PER_THREAD`
//! spans each, then `force_flush` exports the rest; criterion times the whole run (spans
//! exported per second), and the bench also records the producers' part alone (what the
//! application threads pay). The producer threads live for the whole group, as an
//! application's would.
//!
//! A third contestant, `floor_discard`, is a processor that drops every span: what span
//! creation alone costs, the ceiling for both.
//!
//! At the end it prints, per processor, the median of both rates, how many spans were created,
//! exported and dropped (a processor that drops spans under load looks faster than it is),
//! and the ratios tidefall ÷ SDK. `cargo bench --features opentelemetry --bench otel_spans`
//! takes about half a minute.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor as SdkBatchSpanProcessor, SdkTracerProvider, Span,
    SpanData, SpanExporter, SpanProcessor,
};
use tidefall::otel::BatchSpanProcessor;

const GROUP: &str = "otel_spans";
/// Spans each of the two threads ends per run.
const PER_THREAD: u64 = 20_000;
/// Spans per run.
const SPANS: u64 = 2 * PER_THREAD;
/// Both processors' max queue size: more than a run.
const QUEUE: usize = 1 << 17;

/// Counts the spans exported, and drops them.
#[derive(Debug, Clone, Default)]
struct Count(Arc<AtomicU64>);

impl SpanExporter for Count {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The floor: a processor that drops every span it is given, so a run costs the SDK's span
/// creation and nothing else.
#[derive(Debug)]
struct Discard;

impl SpanProcessor for Discard {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        drop(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The durations of one run: the producers' part, and the whole run with the flush.
type Run = (Duration, Duration);

/// Benchmarks one processor behind `provider`; returns its runs (none when filtered out).
fn bench(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    provider: &SdkTracerProvider,
) -> Vec<Run> {
    let runs = Mutex::new(Vec::new());
    let go = Barrier::new(3);
    let done = Barrier::new(3);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        for _ in 0..2 {
            let tracer = provider.tracer("bench");
            let (go, done, stop) = (&go, &done, &stop);
            s.spawn(move || loop {
                go.wait();
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                for _ in 0..PER_THREAD {
                    tracer.start("bench-span").end();
                }
                done.wait();
            });
        }
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    go.wait();
                    done.wait();
                    let produced = started.elapsed();
                    provider.force_flush().expect("flush");
                    let run = started.elapsed();
                    runs.lock().unwrap().push((produced, run));
                    total += run;
                }
                total
            })
        });
        stop.store(true, Ordering::Relaxed);
        go.wait();
    });
    runs.into_inner().unwrap()
}

/// Median spans per second of the runs, by `part` of each run.
fn median_rate(runs: &[Run], part: impl Fn(&Run) -> Duration) -> f64 {
    let mut times: Vec<Duration> = runs.iter().map(part).collect();
    times.sort_unstable();
    SPANS as f64 / times[times.len() / 2].as_secs_f64()
}

/// Prints one processor's medians and its counts (exported, dropped), if it exports;
/// returns (whole run, producers) spans/s.
fn report(id: &str, runs: &[Run], counts: Option<(u64, u64)>) -> Option<(f64, f64)> {
    if runs.is_empty() {
        return None;
    }
    let run = median_rate(runs, |r| r.1);
    let produce = median_rate(runs, |r| r.0);
    let counts = counts.map_or(String::new(), |(exported, dropped)| {
        format!(", {exported} exported, {dropped} dropped")
    });
    println!(
        "{GROUP}/{id}: median {run:.0} spans/s (run with flush), {produce:.0} spans/s ended \
         (producers alone); {} runs: {} spans created{counts}",
        runs.len(),
        runs.len() as u64 * SPANS,
    );
    Some((run, produce))
}

fn otel_spans(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    group
        .throughput(Throughput::Elements(SPANS))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);

    let exported = Count::default();
    let processor = BatchSpanProcessor::builder(exported.clone())
        .with_name("bench-otel")
        .with_max_queue_size(QUEUE)
        .build()
        .expect("valid options");
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor.clone())
        .build();
    let runs = bench(&mut group, "tidefall", &provider);
    provider.shutdown().expect("shutdown");
    let tidefall = report(
        "tidefall",
        &runs,
        Some((
            exported.0.load(Ordering::Relaxed),
            processor.dropped_spans(),
        )),
    );

    let exported = Count::default();
    let processor = SdkBatchSpanProcessor::builder(exported.clone())
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let runs = bench(&mut group, "sdk_batch", &provider);
    provider.shutdown().expect("shutdown");
    let created = runs.len() as u64 * SPANS;
    let sdk_exported = exported.0.load(Ordering::Relaxed);
    // The SDK's processor counts its drops privately: whatever was not exported was dropped.
    let sdk = report(
        "sdk_batch",
        &runs,
        Some((sdk_exported, created.saturating_sub(sdk_exported))),
    );

    let provider = SdkTracerProvider::builder()
        .with_span_processor(Discard)
        .build();
    let runs = bench(&mut group, "floor_discard", &provider);
    provider.shutdown().expect("shutdown");
    report("floor_discard", &runs, None);
    group.finish();

    if let (Some(tidefall), Some(sdk)) = (tidefall, sdk) {
        println!(
            "{GROUP}: tidefall ÷ SDK = {:.2} (run with flush), {:.2} (producers alone); above 1: \
             tidefall is faster",
            tidefall.0 / sdk.0,
            tidefall.1 / sdk.1
        );
    }
}

criterion_group!(benches, otel_spans);
criterion_main!(benches);
