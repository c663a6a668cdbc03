//! Layered configuration: a buffer's options from a config file and the environment, under
//! the builder's explicit calls.
//!
//! Run with `cargo run --features serde --example layered_config`.
//!
//! The precedence, lowest to highest: code defaults < config file < environment variables
//! (`TIDEFALL_<NAME>_<OPTION>`) < explicit builder calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidefall::config::{env_var, Config};
use tidefall::Queue;

/// The options the example reports.
const OPTIONS: [&str; 4] = [
    "processing_interval",
    "processing_batch_size",
    "capacity",
    "partitions",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A service's config file: one table per buffer, durations as humantime strings.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tidefall.toml");
    std::fs::write(
        &path,
        r#"
[spans]
processing_interval = "1s"
processing_batch_size = 256
capacity = 50_000
partitions = 2

[logs]
processing_batch_size = "table"
"#,
    )?;

    // The operator overrides one option for this run, as with OTEL_BSP_SCHEDULE_DELAY.
    let variable = env_var("spans", "processing_interval");
    std::env::set_var(&variable, "250ms");
    println!("{variable}=250ms");

    let config = Config::new().file(&path).env();

    // What the file and the environment give the buffer `spans`, and from where.
    let loaded = config.load("spans")?;
    println!("\nfrom the config layers:");
    for option in OPTIONS {
        let value = match option {
            "processing_interval" => format!("{:?}", loaded.options().processing_interval),
            "processing_batch_size" => format!("{:?}", loaded.options().processing_batch_size),
            "capacity" => format!("{:?}", loaded.options().capacity),
            _ => format!("{:?}", loaded.options().partitions),
        };
        let source = loaded.source(option).unwrap_or("code default");
        println!("  {option:<22} {value:<22} from {source}");
    }

    // The code pins the capacity: an explicit call wins over every layer, wherever it sits
    // in the chain.
    let processed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&processed);
    let queue = Queue::<String>::builder()
        .name("spans")
        .config(config)
        .capacity(1_000)
        .processor(move |batch: Vec<String>| {
            counter.fetch_add(batch.len(), Ordering::Relaxed);
        })
        .start()?;
    println!("\nin effect: capacity 1000 per partition (from code), the rest as above");

    let mut refused = 0;
    for i in 0..2_500 {
        if queue.push(format!("span {i}")).is_err() {
            refused += 1;
        }
    }
    // Ticks every 250 ms (the environment's value, not the file's 1 s).
    std::thread::sleep(Duration::from_millis(600));
    println!(
        "pushed 2500, refused {refused} at capacity, processed {} by ticks alone",
        processed.load(Ordering::Relaxed)
    );
    queue.stop()?;
    println!(
        "after stop: processed {}",
        processed.load(Ordering::Relaxed)
    );
    Ok(())
}
