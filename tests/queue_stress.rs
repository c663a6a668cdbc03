//! Many producers on one queue (SPEC §1, §3): 4 threads × 100k items under a short interval;
//! every item is delivered exactly once, and each thread's items in its push order (a thread
//! keeps to one partition, whose batches reach the processor one after another, in order).

#![cfg(not(loom))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidefall::Queue;

const THREADS: u32 = 4;
const PER_THREAD: u32 = 100_000;

#[test]
fn four_producers_every_item_exactly_once_in_per_thread_order() {
    let seen: Arc<Mutex<Vec<(u32, u32)>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let q = Queue::<(u32, u32)>::builder()
        .partitions(4)
        .processing_interval(Duration::from_millis(10))
        .processing_batch_size(256)
        .processor(move |batch: Vec<(u32, u32)>| sink.lock().unwrap().extend(batch))
        .start()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let q = q.clone();
            s.spawn(move || {
                let mut i = 0;
                while i < PER_THREAD {
                    if i % 1000 == 0 {
                        // Some batches of pushes too.
                        q.push_many((i..i + 100).map(|j| (t, j))).unwrap();
                        i += 100;
                    } else {
                        q.push((t, i)).unwrap();
                        i += 1;
                    }
                }
            });
        }
    });
    q.stop().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), (THREADS * PER_THREAD) as usize);
    // Per thread: exactly 0..PER_THREAD, in order (so each exactly once).
    let mut next = vec![0u32; THREADS as usize];
    for &(t, i) in seen.iter() {
        assert_eq!(i, next[t as usize], "thread {t}: {i} out of order");
        next[t as usize] += 1;
    }
    assert!(next.iter().all(|&n| n == PER_THREAD));
    let stats = q.stats();
    assert_eq!(stats.processed, u64::from(THREADS * PER_THREAD));
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.buffered, 0);
    assert!(stats.ticks >= 1);
}
