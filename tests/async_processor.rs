//! Async processors (the `tokio` feature): batches reach the future exactly once, in order;
//! `processing_timeout` cancels the future; a panic, an `Err` and a runtime that shut down
//! fail the batch and are reported and counted as for a synchronous processor.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{wait_until, Ev, Recorder, GENEROUS, NEVER};
use tidefall::{Entry, HashMap, Queue, Stats};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

fn assert_balanced(stats: Stats, accepted: u64) {
    assert_eq!(
        stats.processed + stats.failed + stats.buffered,
        accepted,
        "unbalanced {stats:?}"
    );
}

#[test]
fn every_item_reaches_the_future_once_in_order() {
    let runtime = runtime();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(7)
        .processor_async(runtime.handle().clone(), move |batch: Vec<u32>| {
            let sink = Arc::clone(&sink);
            async move {
                // A real await point: the batch crosses it.
                tokio::time::sleep(Duration::from_millis(1)).await;
                sink.lock().unwrap().push(batch);
            }
        })
        .start()
        .unwrap();
    q.push_many(0..100).unwrap();
    q.flush().unwrap();
    let batches = seen.lock().unwrap().clone();
    assert_eq!(batches.len(), 15, "100 items in batches of 7");
    assert!(batches[..14].iter().all(|b| b.len() == 7));
    assert_eq!(
        batches.concat(),
        (0..100).collect::<Vec<_>>(),
        "once each, in push order"
    );
    q.push_many(100..110).unwrap();
    q.stop().unwrap();
    let stats = q.stats();
    assert_eq!(stats.processed, 110);
    assert_eq!(stats.failed, 0);
    assert_balanced(stats, 110);
}

/// Sets its flag when dropped: shows that a future was dropped, i.e. cancelled.
struct DropFlag(Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn processing_timeout_cancels_the_future_and_fails_the_cycle() {
    let runtime = runtime();
    let dropped = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let recorder = Recorder::new();
    let (d, f, s) = (
        Arc::clone(&dropped),
        Arc::clone(&finished),
        Arc::clone(&started),
    );
    let q = Queue::<u32>::builder()
        .name("async-timeout")
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(2)
        .processing_timeout(Duration::from_millis(200))
        .observer(recorder.observer())
        .processor_async(runtime.handle().clone(), move |batch: Vec<u32>| {
            let (guard, finished, started) =
                (DropFlag(Arc::clone(&d)), Arc::clone(&f), Arc::clone(&s));
            async move {
                let _guard = guard;
                started.fetch_add(1, Ordering::SeqCst);
                if batch[0] == 0 {
                    // Far longer than the timeout: only cancellation ends it.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                finished.fetch_add(1, Ordering::SeqCst);
            }
        })
        .start()
        .unwrap();
    q.push_many(0..6).unwrap();
    let begun = Instant::now();
    q.flush().unwrap();
    let waited = begun.elapsed();
    assert!(
        waited >= Duration::from_millis(190) && waited < GENEROUS,
        "flush returned after {waited:?}"
    );
    // The first batch's future was dropped at the deadline, not left running.
    assert!(wait_until(GENEROUS, || dropped.load(Ordering::SeqCst) >= 1));
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "the cancelled future went on"
    );
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "the batches behind it were not run"
    );
    let failed = recorder.failed();
    assert_eq!(failed.len(), 1, "{failed:?}");
    match &failed[0] {
        Ev::ProcessingFailed {
            partition: 0,
            reason,
            count,
            ..
        } => {
            assert_eq!(reason, "timeout");
            assert_eq!(*count, 6, "the batch and the two behind it");
        }
        other => panic!("{other:?}"),
    }
    // The pool thread reports the cancelled call just after the cycle failed.
    assert!(
        wait_until(GENEROUS, || !recorder.batch_stops().is_empty()),
        "no BatchStop"
    );
    assert_eq!(recorder.batch_stops(), vec![(2, false)]);
    let stats = q.stats();
    assert_eq!(stats.failed, 6, "{stats:?}");
    assert_eq!(stats.processed, 0, "{stats:?}");
    assert_balanced(stats, 6);

    // The partition goes on: the pool thread was freed by the cancellation.
    q.push_many([10, 11]).unwrap();
    q.flush().unwrap();
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    q.stop().unwrap();
    let stats = q.stats();
    assert_eq!(stats.processed, 2);
    assert_balanced(stats, 8);
}

#[test]
fn an_err_or_a_panic_in_the_future_fails_its_batch_only() {
    let runtime = runtime();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(2)
        .observer(recorder.observer())
        .processor_async(runtime.handle().clone(), |batch: Vec<u32>| async move {
            tokio::task::yield_now().await;
            match batch[0] {
                2 => Err(format!("export of {batch:?} refused")),
                4 => panic!("exporter bug at {}", batch[0]),
                _ => Ok(()),
            }
        })
        .start()
        .unwrap();
    q.push_many(0..8).unwrap();
    q.flush().unwrap();
    assert_eq!(
        recorder.batch_stops(),
        vec![(2, true), (2, false), (2, false), (2, true)]
    );
    let exceptions = recorder.exceptions();
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    match &exceptions[0] {
        Ev::ProcessingException { kind, reason, .. } => {
            assert_eq!(kind, "panic");
            assert!(reason.contains("exporter bug at 4"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let failed = recorder.failed();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        matches!(&failed[0], Ev::ProcessingFailed { reason, count: 2, .. }
            if reason.contains("export of [2, 3] refused")),
        "{failed:?}"
    );
    let stats = q.stats();
    assert_eq!((stats.processed, stats.failed, stats.batches), (4, 4, 4));
    assert_balanced(stats, 8);
    q.stop().unwrap();
}

#[test]
fn a_runtime_that_shut_down_fails_the_batches_without_hanging() {
    let runtime = runtime();
    let handle = runtime.handle().clone();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor_async(handle, |_batch: Vec<u32>| async {})
        .start()
        .unwrap();
    runtime.shutdown_timeout(Duration::from_secs(1));
    q.push_many(0..3).unwrap();
    q.stop().unwrap();
    let stats = q.stats();
    assert_eq!((stats.processed, stats.failed), (0, 3), "{stats:?}");
    let failed = recorder.failed();
    assert!(
        matches!(&failed[..], [Ev::ProcessingFailed { reason, count: 3, .. }]
            if reason.contains("runtime shut down")),
        "{failed:?}"
    );
}

#[test]
fn a_hash_map_takes_an_async_processor_too() {
    let runtime = runtime();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let map = HashMap::<u32, String>::builder()
        .processing_interval(NEVER)
        .processor_async(
            runtime.handle().clone(),
            move |entries: Vec<Entry<u32, String>>| {
                let sink = Arc::clone(&sink);
                async move {
                    tokio::task::yield_now().await;
                    sink.lock().unwrap().extend(entries);
                }
            },
        )
        .start()
        .unwrap();
    for i in 0..100 {
        map.put(i % 10, format!("v{i}")).unwrap();
    }
    map.stop().unwrap();
    let mut entries: Vec<(u32, String)> = seen
        .lock()
        .unwrap()
        .drain(..)
        .map(|e| (e.key, e.value))
        .collect();
    entries.sort();
    let expected: Vec<(u32, String)> = (0..10).map(|k| (k, format!("v{}", 90 + k))).collect();
    assert_eq!(entries, expected, "one entry per key, the last write");
    assert_eq!(map.stats().processed, 10);
}
