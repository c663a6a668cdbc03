//! Spans from four threads through `tidefall::otel::BatchSpanProcessor` to an exporter that
//! only counts them.
//!
//! ```sh
//! cargo run --release --features opentelemetry --example otel_spans
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tidefall::otel::BatchSpanProcessor;

const THREADS: u64 = 4;
const SPANS_PER_THREAD: u64 = 50_000;

/// Counts what it is given, where a real exporter would send it.
#[derive(Debug, Clone, Default)]
struct Summary {
    spans: Arc<AtomicU64>,
    exports: Arc<AtomicU64>,
}

impl SpanExporter for Summary {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.exports.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        println!(
            "exporter shut down after {} spans in {} exports",
            self.spans.load(Ordering::Relaxed),
            self.exports.load(Ordering::Relaxed)
        );
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exporter = Summary::default();
    let processor = BatchSpanProcessor::builder(exporter.clone())
        .with_name("otel-spans")
        .with_max_queue_size(1 << 20)
        .with_scheduled_delay(Duration::from_millis(200))
        .with_max_export_batch_size(4096)
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor.clone()) // keeps a handle for the counters
        .build();

    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let tracer = provider.tracer("example");
            s.spawn(move || {
                for i in 0..SPANS_PER_THREAD {
                    tracer.in_span("request", |cx| {
                        use opentelemetry::trace::TraceContextExt as _;
                        cx.span()
                            .set_attribute(KeyValue::new("request.id", (t * 1_000_000 + i) as i64));
                    });
                }
            });
        }
    });
    let elapsed = started.elapsed();
    provider.shutdown()?; // exports what is left, then shuts the exporter down

    let created = THREADS * SPANS_PER_THREAD;
    let stats = processor.stats();
    println!(
        "{created} spans from {THREADS} threads in {elapsed:.2?} ({:.0} spans/s)",
        created as f64 / elapsed.as_secs_f64()
    );
    println!(
        "exported {}, dropped {}, failed {}",
        stats.processed,
        processor.dropped_spans(),
        stats.failed
    );
    assert_eq!(stats.processed + processor.dropped_spans(), created);
    assert_eq!(exporter.spans.load(Ordering::Relaxed), stats.processed);
    Ok(())
}
