//! An async processor on a tokio runtime: each batch is "exported" by an async call, and a
//! call that outlives `processing_timeout` is cancelled, reported and counted failed.
//!
//!     cargo run --release --features tokio --example async_processor

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidefall::{Event, Queue};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    let exported = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&exported);
    let calls = Arc::new(AtomicU64::new(0));

    let queue = Queue::<String>::builder()
        .name("async-export")
        .partitions(2)
        .processing_interval(Duration::from_millis(50))
        .processing_batch_size(4096)
        .processing_timeout(Duration::from_millis(500))
        .observer(|event: &Event<'_>| {
            if let Event::ProcessingFailed(failed) = event {
                println!(
                    "partition {}: {} items failed: {}",
                    failed.partition, failed.count, failed.reason
                );
            }
        })
        .processor_async(runtime.handle().clone(), move |batch: Vec<String>| {
            let (exported, call) = (Arc::clone(&counter), calls.fetch_add(1, Ordering::Relaxed));
            async move {
                // The export: a network round trip, and once a hung endpoint that only the
                // timeout ends.
                let latency = if call == 3 { 3_600_000 } else { 2 };
                tokio::time::sleep(Duration::from_millis(latency)).await;
                exported.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        })
        .start()?;

    std::thread::scope(|s| {
        for producer in 0..2 {
            let queue = &queue;
            s.spawn(move || {
                for i in 0..50_000 {
                    queue
                        .push(format!("event {producer}/{i}"))
                        .expect("the queue runs");
                }
            });
        }
    });
    // The hung export's cycle is still in flight: `stop` waits for it until its timeout,
    // and says so.
    match queue.stop() {
        Ok(()) => println!("stopped"),
        Err(tidefall::Error::Timeout) => println!("stopped; a cycle timed out on the way"),
        Err(other) => return Err(other.into()),
    }

    let stats = queue.stats();
    println!(
        "pushed 100000: {} exported, {} failed, {} buffered",
        exported.load(Ordering::Relaxed),
        stats.failed,
        stats.buffered
    );
    assert_eq!(stats.processed, exported.load(Ordering::Relaxed));
    assert_eq!(
        stats.processed + stats.failed,
        100_000,
        "every item accounted for"
    );
    Ok(())
}
