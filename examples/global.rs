//! A process-wide buffer in a `static`: code anywhere pushes to it without a handle, it starts
//! on first use, and `main` stops it explicitly at the end (a `static` is never dropped, so
//! nothing else would drain it). Also a few named dynamic instances next to it.
//!
//! ```sh
//! cargo run --example global
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tidefall::{Global, Instances, Queue};

/// Events delivered to the processor of the global buffer.
static EXPORTED: AtomicUsize = AtomicUsize::new(0);
/// Processor calls of the global buffer.
static BATCHES: AtomicUsize = AtomicUsize::new(0);

/// The application's event buffer, started by the first `EVENTS.get()`. The init function is
/// where its name, options and processor (and a layered configuration, if any) are applied.
static EVENTS: Global<Queue<String>> = Global::new(|| {
    println!("starting the `events` buffer");
    Queue::builder()
        .name("events")
        .processing_interval(Duration::from_millis(50))
        .processing_batch_size(100)
        .processor(|batch: Vec<String>| {
            BATCHES.fetch_add(1, Ordering::Relaxed);
            EXPORTED.fetch_add(batch.len(), Ordering::Relaxed);
        })
        .start()
});

/// Per-tenant audit buffers: one named instance per tenant, each with its own processor.
static AUDIT: Instances<Queue<String>> = Instances::new(|tenant| {
    println!("starting the audit buffer of `{tenant}`");
    let tenant = tenant.to_owned();
    Queue::builder()
        .name(format!("audit-{tenant}"))
        .processor(move |batch: Vec<String>| {
            println!("audit {tenant}: {} record(s)", batch.len());
        })
        .start()
});

mod http {
    /// Records a request: no buffer handle is passed in.
    pub fn handle_request(path: &str) -> Result<(), tidefall::Error> {
        let event = format!("GET {path}");
        if let Err(refused) = super::EVENTS.get()?.push(event) {
            let reason = refused.to_string();
            eprintln!("event not recorded ({reason}): {}", refused.into_inner());
        }
        Ok(())
    }
}

mod jobs {
    /// Records job runs from worker threads.
    pub fn run_workers(workers: usize, jobs: usize) -> Result<(), tidefall::Error> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    s.spawn(move || -> Result<(), tidefall::Error> {
                        // A hot loop keeps the reference `get` returns.
                        let events = super::EVENTS.get()?;
                        for j in 0..jobs {
                            if events.push(format!("job {w}/{j} done")).is_err() {
                                eprintln!("event dropped");
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        })
    }
}

mod accounts {
    /// Writes an audit record to the tenant's own buffer.
    pub fn audit(tenant: &str, record: &str) -> Result<(), tidefall::Error> {
        if super::AUDIT.get(tenant)?.push(record.to_owned()).is_err() {
            eprintln!("audit record dropped");
        }
        Ok(())
    }
}

fn main() -> Result<(), tidefall::Error> {
    println!("started before any use: {}", EVENTS.get_started().is_some());
    http::handle_request("/")?;
    http::handle_request("/health")?;
    jobs::run_workers(4, 2500)?;
    accounts::audit("acme", "login")?;
    accounts::audit("globex", "login")?;
    accounts::audit("acme", "logout")?;

    // Shutdown: explicit. `get_started` does not start a buffer only to stop it.
    if let Some(events) = EVENTS.get_started() {
        events.stop()?; // drains what is left; returns once the processor has seen it
        let stats = events.stats();
        println!(
            "events: {} exported in {} batches (stats: {} processed, {} failed)",
            EXPORTED.load(Ordering::Relaxed),
            BATCHES.load(Ordering::Relaxed),
            stats.processed,
            stats.failed
        );
    }
    AUDIT.stop_all()?;
    println!("audit instances: {:?}", AUDIT.names());

    // After `stop`, the global stays stopped: a late write comes back with its item.
    if let Err(refused) = EVENTS.get()?.push("too late".to_owned()) {
        let reason = refused.to_string();
        println!("after stop: {reason}: {:?}", refused.into_inner());
    }
    assert_eq!(EXPORTED.load(Ordering::Relaxed), 2 + 4 * 2500);
    Ok(())
}
