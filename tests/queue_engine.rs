//! One engine for every buffer (SPEC §5, §2 `thread_pool` default): a thousand queues on the
//! default pool add a bounded number of threads, not one per queue.
//!
//! Alone in its own test binary: it counts the threads of the whole process.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidefall::Queue;

/// The process's thread count, from /proc/self/status (None off Linux).
fn threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn a_thousand_queues_share_one_engine_and_one_pool() {
    let Some(before) = threads() else {
        eprintln!("no /proc/self/status: thread count not checked");
        return;
    };
    let delivered = Arc::new(AtomicUsize::new(0));
    let queues: Vec<Queue<u64>> = (0..1000)
        .map(|_| {
            let delivered = Arc::clone(&delivered);
            Queue::<u64>::builder()
                .partitions(2)
                .processing_interval(Duration::from_millis(20))
                .processor(move |batch: Vec<u64>| {
                    delivered.fetch_add(batch.len(), Ordering::SeqCst);
                })
                .start()
                .unwrap()
        })
        .collect();
    for (i, q) in queues.iter().enumerate() {
        q.push(i as u64).unwrap();
    }
    // Let the periodic ticks of all of them run a few times.
    std::thread::sleep(Duration::from_millis(100));
    let during = threads().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The scheduler and the default pool (one thread per core), with a little slack.
    let bound = before + cores + 4;
    assert!(
        during <= bound,
        "{during} threads with 1000 queues running, from {before} (bound {bound})"
    );
    for q in &queues {
        q.push(7).unwrap();
        q.flush().unwrap();
    }
    for q in &queues {
        q.stop().unwrap();
    }
    assert_eq!(delivered.load(Ordering::SeqCst), 2000);
    let total: u64 = queues.iter().map(|q| q.stats().processed).sum();
    assert_eq!(total, 2000);
    assert!(threads().unwrap() <= bound);
}
