//! Both ready-made observers on one queue: `TracingObserver` logs every event through a
//! `tracing` fmt subscriber (stdout), `MetricsObserver` records counters and histograms into a
//! `metrics` debugging recorder, whose contents are printed at the end. Two batches fail on
//! purpose (a panic and an `Err`), and two writes are refused for capacity, so the ERROR and
//! WARN lines show.
//!
//! ```sh
//! cargo run --features tracing,metrics --example observers
//! ```

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tidefall::observe::{MetricsObserver, TracingObserver};
use tidefall::Queue;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Global, both: the observers run on the engine's and the pool's threads.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_thread_names(true)
        .finish();
    tracing::subscriber::set_global_default(subscriber)?;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install()?;

    // The panic is reported by the ERROR line; keep the default hook from printing it too.
    std::panic::set_hook(Box::new(|_| {}));

    let queue = Queue::<u32>::builder()
        .name("orders")
        .partitions(1)
        .processing_interval(Duration::from_millis(200))
        .processing_batch_size(4)
        .capacity(16)
        .processor(|batch: Vec<u32>| {
            if batch.contains(&5) {
                panic!("order 5 is malformed");
            }
            if batch.contains(&9) {
                return Err(format!("the sink refused {} orders", batch.len()));
            }
            Ok(())
        })
        .observer(TracingObserver::new())
        // Built after the recorder is installed: the metrics are described (units, help).
        .observer(MetricsObserver::new())
        .start()?;

    // 18 writes, 16 accepted: two are refused for capacity.
    let refused = (0..18).filter(|&i| queue.push(i).is_err()).count();
    println!("-- {refused} writes refused; flushing");
    queue.flush()?;
    println!("-- a second cycle, on the interval");
    queue.push_many(100..103).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(400));
    queue.stop()?;

    println!("\n-- stats: {:?}", queue.stats());
    println!("-- metrics:");
    let mut lines = Vec::new();
    for (key, unit, _description, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let unit = unit
            .map(|u| format!(" ({})", u.as_str()))
            .unwrap_or_default();
        let value = match value {
            DebugValue::Counter(n) => format!("{n}"),
            DebugValue::Gauge(x) => format!("{}", x.0),
            DebugValue::Histogram(samples) => {
                let samples: Vec<f64> = samples.into_iter().map(|s| s.0).collect();
                let max = samples.iter().cloned().fold(f64::NAN, f64::max);
                format!(
                    "{} samples, sum {:.6}, max {:.6}",
                    samples.len(),
                    samples.iter().sum::<f64>(),
                    max
                )
            }
        };
        lines.push(format!(
            "{}{{{}}}{unit} = {value}",
            key.name(),
            labels.join(",")
        ));
    }
    lines.sort();
    for line in lines {
        println!("   {line}");
    }
    Ok(())
}
