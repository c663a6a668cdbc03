//! Failure isolation and timeouts of `Queue<T>` (SPEC §3, §4, §7): panics, `Err`s, cycles
//! outliving `processing_timeout`, `stop()` returning `Error::Timeout`, and the stats
//! balance `processed + failed + buffered == accepted` through all of them.

#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{pool, wait_until, Ev, Recorder, Sink, GENEROUS, NEVER};
use tidefall::{Error, OptionsUpdate, PushError, Queue, Stats};

fn assert_balanced(stats: Stats, accepted: u64) {
    assert_eq!(
        stats.processed + stats.failed + stats.buffered,
        accepted,
        "unbalanced {stats:?}"
    );
}

/// The processing events of `recorder`, without partition start/stop.
fn processing_events(recorder: &Recorder) -> Vec<Ev> {
    recorder
        .events()
        .into_iter()
        .filter(|e| {
            !matches!(
                e,
                Ev::PartitionStart { .. } | Ev::PartitionStop { .. } | Ev::BatchStop { .. }
            )
        })
        .collect()
}

#[test]
fn a_panicking_call_loses_its_batch_only_and_is_reported_twice() {
    let sink: Sink<u32> = Sink::new();
    let recorder = Recorder::new();
    let record = sink.processor();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(1)
        .observer(recorder.observer())
        .processor(move |batch: Vec<u32>| {
            if batch[0] == 3 {
                panic!("boom {}", batch[0]);
            }
            record(batch)
        })
        .start()
        .unwrap();
    q.push_many(0..6).unwrap();
    q.flush().unwrap();
    assert_eq!(sink.items(), vec![0, 1, 2, 4, 5]);
    let events = processing_events(&recorder);
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0], Ev::ProcessingStart { partition: 0 });
    match &events[1] {
        Ev::ProcessingException {
            partition: 0,
            kind,
            reason,
            reason_debug,
        } => {
            assert_eq!(kind, "panic");
            assert!(reason.contains("boom 3"), "{reason}");
            assert!(reason_debug.contains("boom 3"), "{reason_debug}");
        }
        other => panic!("expected ProcessingException, got {other:?}"),
    }
    match &events[2] {
        Ev::ProcessingFailed {
            partition: 0,
            reason,
            reason_debug,
            count: 1,
        } => {
            assert!(reason.contains("boom 3"), "{reason}");
            assert!(reason_debug.contains("boom 3"), "{reason_debug}");
        }
        other => panic!("expected ProcessingFailed, got {other:?}"),
    }
    assert_eq!(
        events[3],
        Ev::ProcessingStop {
            partition: 0,
            size: 6
        }
    );
    assert_eq!(
        recorder.batch_stops(),
        vec![
            (1, true),
            (1, true),
            (1, true),
            (1, false),
            (1, true),
            (1, true)
        ],
        "one BatchStop per call, the panicking one not processed"
    );
    let stats = q.stats();
    assert_eq!(stats.processed, 5);
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.batches, 6, "failed calls count as batches");
    assert_eq!(stats.ticks, 1);
    assert_balanced(stats, 6);

    // The buffer keeps working.
    q.push_many(10..13).unwrap();
    q.stop().unwrap();
    assert_eq!(sink.items(), vec![0, 1, 2, 4, 5, 10, 11, 12]);
    assert_balanced(q.stats(), 9);
    assert_eq!(q.stats().processed, 8);
}

#[test]
fn panics_with_str_and_other_payloads_are_reported() {
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(2)
        .observer(recorder.observer())
        .processor(|batch: Vec<u32>| match batch[0] {
            0 => panic!("a static message"),
            2 => std::panic::panic_any(42u32),
            _ => {}
        })
        .start()
        .unwrap();
    q.push_many(0..6).unwrap();
    q.flush().unwrap();
    let exceptions = recorder.exceptions();
    let failed = recorder.failed();
    assert_eq!(exceptions.len(), 2, "{exceptions:?}");
    assert_eq!(failed.len(), 2, "{failed:?}");
    match &exceptions[0] {
        Ev::ProcessingException { reason, .. } => {
            assert!(reason.contains("a static message"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    match &failed[0] {
        Ev::ProcessingFailed { reason, .. } => {
            assert!(reason.contains("a static message"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let stats = q.stats();
    assert_eq!(stats.failed, 4, "items of failed batches, not batches");
    assert_eq!(stats.processed, 2);
    assert_balanced(stats, 6);
    q.stop().unwrap();
}

#[test]
fn an_err_is_reported_as_processing_failed_only_with_its_text() {
    let sink: Sink<u32> = Sink::new();
    let recorder = Recorder::new();
    let record = sink.processor();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(3)
        .observer(recorder.observer())
        .processor(move |batch: Vec<u32>| -> Result<(), String> {
            if batch.contains(&4) {
                return Err(format!("bad batch starting at {}", batch[0]));
            }
            record(batch);
            Ok(())
        })
        .start()
        .unwrap();
    q.push_many(0..10).unwrap();
    q.flush().unwrap();
    assert_eq!(sink.items(), vec![0, 1, 2, 6, 7, 8, 9]);
    assert!(recorder.exceptions().is_empty(), "an Err is no exception");
    let events = processing_events(&recorder);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], Ev::ProcessingStart { partition: 0 });
    match &events[1] {
        Ev::ProcessingFailed {
            partition: 0,
            reason,
            reason_debug,
            count: 3,
        } => {
            assert!(reason.contains("bad batch starting at 3"), "{reason}");
            assert!(
                reason_debug.contains("bad batch starting at 3"),
                "{reason_debug}"
            );
        }
        other => panic!("expected ProcessingFailed, got {other:?}"),
    }
    assert_eq!(
        events[2],
        Ev::ProcessingStop {
            partition: 0,
            size: 10
        }
    );
    assert_eq!(
        recorder.batch_stops(),
        vec![(3, true), (3, false), (3, true), (1, true)]
    );
    let stats = q.stats();
    assert_eq!(stats.failed, 3);
    assert_eq!(stats.processed, 7);
    assert_eq!(stats.batches, 4);
    assert_balanced(stats, 10);
    q.stop().unwrap();
}

#[test]
fn a_failing_partition_does_not_stop_the_others() {
    let processed = Arc::new(Mutex::new(Vec::new()));
    let lost = Arc::new(AtomicUsize::new(0));
    let (sink, lost_in) = (Arc::clone(&processed), Arc::clone(&lost));
    let q = Queue::<u32>::builder()
        .partitions(4)
        .processing_interval(NEVER)
        .processing_batch_size(tidefall::BatchSize::Table)
        .partition_by(|x: &u32| *x % 16)
        .processor(move |batch: Vec<u32>| {
            if batch.contains(&0) {
                lost_in.fetch_add(batch.len(), Ordering::SeqCst);
                panic!("partition of 0 fails");
            }
            sink.lock().unwrap().extend(batch);
        })
        .start()
        .unwrap();
    q.push_many(0..1600).unwrap();
    q.flush().unwrap();
    let lost = lost.load(Ordering::SeqCst);
    let processed = processed.lock().unwrap().len();
    assert!(lost >= 100, "the failing partition holds key 0's 100 items");
    assert_eq!(lost + processed, 1600);
    let stats = q.stats();
    assert_eq!(stats.failed, lost as u64);
    assert_eq!(stats.processed, processed as u64);
    assert_balanced(stats, 1600);
    q.stop().unwrap();
}

/// A processor that blocks on item 0 until released, and records everything else.
struct Blocking {
    entered: Receiver<()>,
    returned: Receiver<()>,
    release: Sender<()>,
    sink: Sink<u32>,
}

fn blocking_processor() -> (Blocking, impl Fn(Vec<u32>) + Send + Sync + 'static) {
    let (entered_tx, entered) = mpsc::channel();
    let (returned_tx, returned) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let sink = Sink::new();
    let record = sink.processor();
    let entered_tx = Mutex::new(entered_tx);
    let returned_tx = Mutex::new(returned_tx);
    let release_rx = Mutex::new(release_rx);
    let processor = move |batch: Vec<u32>| {
        if batch.contains(&0) {
            entered_tx.lock().unwrap().send(()).unwrap();
            // Blocks this pool thread until released (bounded, so that a failing test
            // cannot hang forever).
            let _ = release_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(30));
            let _ = returned_tx.lock().unwrap().send(());
            return;
        }
        record(batch)
    };
    (
        Blocking {
            entered,
            returned,
            release,
            sink,
        },
        processor,
    )
}

#[test]
fn a_timed_out_cycle_is_failed_and_the_partition_moves_on() {
    let (blocking, processor) = blocking_processor();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(1)
        .processing_timeout(Duration::from_millis(200))
        .thread_pool(pool("timeout-pool", 4))
        .observer(recorder.observer())
        .processor(processor)
        .start()
        .unwrap();
    q.push_many(0..3).unwrap();
    let started = Instant::now();
    let flushed = q.flush();
    assert!(
        matches!(flushed, Ok(()) | Err(Error::Timeout)),
        "flush: {flushed:?}"
    );
    assert!(
        started.elapsed() < GENEROUS,
        "flush waited past the timeout"
    );
    blocking.entered.recv_timeout(GENEROUS).unwrap();
    assert!(
        wait_until(GENEROUS, || !recorder.failed().is_empty()),
        "no timeout reported"
    );
    let failed = recorder.failed();
    assert_eq!(failed.len(), 1, "{failed:?}");
    match &failed[0] {
        Ev::ProcessingFailed {
            partition: 0,
            reason,
            reason_debug,
            count: 3,
        } => {
            assert_eq!(reason, "timeout");
            assert!(
                reason_debug.to_lowercase().contains("timeout"),
                "{reason_debug}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The stuck call's item and the batches queued behind it are failed.
    let stats = q.stats();
    assert_eq!(stats.failed, 3, "{stats:?}");
    assert_eq!(stats.processed, 0, "{stats:?}");
    assert_balanced(stats, 3);

    // The next tick runs while the stuck call still blocks.
    q.push_many([3, 4]).unwrap();
    q.flush().unwrap();
    assert_eq!(blocking.sink.items(), vec![3, 4]);
    assert!(
        blocking.returned.try_recv().is_err(),
        "the stuck call should still block"
    );
    let stats = q.stats();
    assert_eq!(stats.processed, 2, "{stats:?}");
    assert_eq!(stats.failed, 3, "{stats:?}");
    assert_balanced(stats, 5);

    // When the stuck call returns at last, nothing is counted again.
    blocking.release.send(()).unwrap();
    blocking.returned.recv_timeout(GENEROUS).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let stats = q.stats();
    assert_eq!(stats.processed, 2, "{stats:?}");
    assert_eq!(stats.failed, 3, "{stats:?}");
    assert_balanced(stats, 5);
    // The batches that were never handed over stay unprocessed.
    assert_eq!(blocking.sink.items(), vec![3, 4]);

    // The buffer keeps working; no cycle is in flight, so stop is Ok.
    q.push(5).unwrap();
    assert_eq!(q.stop(), Ok(()));
    assert_eq!(blocking.sink.items(), vec![3, 4, 5]);
    let stats = q.stats();
    assert_eq!(stats.processed, 3);
    assert_eq!(stats.failed, 3);
    assert_balanced(stats, 6);
    assert_eq!(recorder.failed().len(), 1);
}

#[test]
fn stop_returns_timeout_when_its_last_cycle_outlives_the_timeout() {
    let (blocking, processor) = blocking_processor();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_timeout(Duration::from_millis(200))
        .thread_pool(pool("stop-timeout-pool", 2))
        .observer(recorder.observer())
        .processor(processor)
        .start()
        .unwrap();
    q.push_many([0, 1]).unwrap();
    let started = Instant::now();
    assert_eq!(q.stop(), Err(Error::Timeout));
    assert!(started.elapsed() < GENEROUS);
    blocking.entered.recv_timeout(GENEROUS).unwrap();
    let stats = q.stats();
    assert_eq!(stats.failed, 2, "{stats:?}");
    assert_eq!(stats.processed, 0, "{stats:?}");
    assert_balanced(stats, 2);
    assert!(recorder.events().contains(&Ev::PartitionStop {
        buffer: q.name().to_owned(),
        partition: 0
    }));
    assert!(wait_until(GENEROUS, || recorder.failed().iter().any(
        |e| matches!(e, Ev::ProcessingFailed { reason, .. } if reason == "timeout")
    )));

    // Stopped for good.
    assert_eq!(q.stop(), Ok(()));
    assert_eq!(q.flush(), Ok(()));
    assert!(matches!(q.push(9), Err(PushError::Stopped(9))));

    blocking.release.send(()).unwrap();
    blocking.returned.recv_timeout(GENEROUS).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let stats = q.stats();
    assert_eq!(stats.failed, 2, "{stats:?}");
    assert_eq!(stats.processed, 0, "{stats:?}");
    assert_balanced(stats, 2);
}

#[test]
fn stop_returns_timeout_when_an_in_flight_cycle_outlives_the_timeout() {
    let (blocking, processor) = blocking_processor();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_timeout(Duration::from_millis(300))
        .thread_pool(pool("inflight-timeout-pool", 4))
        .processor(processor)
        .start()
        .unwrap();
    q.push(0).unwrap();
    let flusher = std::thread::spawn({
        let q = q.clone();
        move || q.flush()
    });
    blocking.entered.recv_timeout(GENEROUS).unwrap();
    // Accepted while the stuck cycle runs: the final cycle delivers it.
    q.push(1).unwrap();
    assert_eq!(q.stop(), Err(Error::Timeout));
    assert_eq!(blocking.sink.items(), vec![1]);
    let stats = q.stats();
    assert_eq!(stats.processed, 1, "{stats:?}");
    assert_eq!(stats.failed, 1, "{stats:?}");
    assert_balanced(stats, 2);
    let flushed = flusher.join().unwrap();
    assert!(
        matches!(flushed, Ok(()) | Err(Error::Timeout)),
        "{flushed:?}"
    );
    blocking.release.send(()).unwrap();
    blocking.returned.recv_timeout(GENEROUS).unwrap();
}

#[test]
fn a_slow_but_timely_cycle_is_not_a_timeout() {
    let sink: Sink<u32> = Sink::new();
    let recorder = Recorder::new();
    let record = sink.processor();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(1)
        .processing_timeout(Duration::from_secs(30))
        .observer(recorder.observer())
        .processor(move |batch: Vec<u32>| {
            std::thread::sleep(Duration::from_millis(20));
            record(batch)
        })
        .start()
        .unwrap();
    q.push_many(0..5).unwrap();
    assert_eq!(q.stop(), Ok(()));
    assert_eq!(sink.items(), (0..5).collect::<Vec<_>>());
    assert!(recorder.failed().is_empty());
    assert_eq!(q.stats().processed, 5);
}

/// Two queues on one shared one-thread pool, with A's processor holding that thread: B's
/// cycles wait in the pool's queue, past B's 200 ms processing_timeout, until `release`.
struct StuckPool {
    shared: Arc<rayon::ThreadPool>,
    blocking: Blocking,
    a: Queue<u32>,
    flusher: std::thread::JoinHandle<Result<(), Error>>,
    b: Queue<u32>,
    sink: Sink<u32>,
}

impl StuckPool {
    fn new(name: &'static str) -> Self {
        let shared = pool(name, 1);
        let (blocking, processor) = blocking_processor();
        let a = Queue::<u32>::builder()
            .partitions(1)
            .processing_interval(NEVER)
            .thread_pool(Arc::clone(&shared))
            .processor(processor)
            .start()
            .unwrap();
        let sink: Sink<u32> = Sink::new();
        let b = Queue::<u32>::builder()
            .partitions(1)
            .processing_interval(NEVER)
            .processing_timeout(Duration::from_millis(200))
            .thread_pool(Arc::clone(&shared))
            .processor(sink.processor())
            .start()
            .unwrap();
        a.push(0).unwrap();
        let flusher = std::thread::spawn({
            let a = a.clone();
            move || a.flush()
        });
        blocking.entered.recv_timeout(GENEROUS).unwrap();
        StuckPool {
            shared,
            blocking,
            a,
            flusher,
            b,
            sink,
        }
    }

    /// Frees the pool thread and waits until everything queued on the pool has run.
    fn release(self) -> (Queue<u32>, Queue<u32>, Sink<u32>) {
        self.blocking.release.send(()).unwrap();
        self.blocking.returned.recv_timeout(GENEROUS).unwrap();
        self.flusher.join().unwrap().unwrap();
        self.shared.install(|| ());
        (self.a, self.b, self.sink)
    }
}

#[test]
fn a_cycle_queued_behind_a_stuck_call_on_a_shared_pool_loses_no_item() {
    let stuck = StuckPool::new("shared-one");
    stuck.b.push_many(0..10).unwrap();
    let _ = stuck.b.flush(); // gives up after B's processing_timeout
    let (a, b, sink) = stuck.release();
    let _ = b.stop();
    let stats = b.stats();
    assert_eq!(stats.buffered, 0, "{stats:?}");
    // The cycle given up on had not started: it took nothing, so the items waited for the
    // next cycle (stop's) instead of failing.
    assert_eq!((stats.processed, stats.failed), (10, 0), "{stats:?}");
    assert_eq!(sink.items(), (0..10).collect::<Vec<_>>());
    a.stop().unwrap();
}

#[test]
fn a_final_cycle_stuck_behind_a_busy_pool_is_failed_when_stop_gives_up() {
    // `stop` gives up on B's final cycle after B's timeout, and B's items are counted
    // failed at once, not left in limbo until the pool frees.
    let stuck = StuckPool::new("shared-final");
    stuck.b.push_many(0..10).unwrap();
    assert_eq!(stuck.b.stop(), Err(Error::Timeout));
    assert_eq!(stuck.b.push(10).map_err(PushError::into_inner), Err(10));
    let stats = stuck.b.stats();
    assert_eq!(
        (stats.failed, stats.processed, stats.buffered),
        (10, 0, 0),
        "{stats:?}"
    );
    let (a, b, sink) = stuck.release(); // B's stale final cycle runs here
    assert_eq!(b.stats(), stats, "counted again after the pool freed");
    assert_eq!(sink.count(), 0);
    a.stop().unwrap();
}

#[test]
fn a_shorter_processing_timeout_applies_to_later_cycles() {
    let (blocking, processor) = blocking_processor();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .thread_pool(pool("update-timeout-pool", 2))
        .observer(recorder.observer())
        .processor(processor)
        .start()
        .unwrap();
    q.update_options(OptionsUpdate::default().processing_timeout(Duration::from_millis(200)))
        .unwrap();
    q.push(0).unwrap();
    let started = Instant::now();
    let _ = q.flush();
    assert!(
        started.elapsed() < GENEROUS,
        "flush waited for the old 60 s timeout"
    );
    blocking.entered.recv_timeout(GENEROUS).unwrap();
    assert!(wait_until(GENEROUS, || recorder.failed().iter().any(
        |e| matches!(e, Ev::ProcessingFailed { reason, .. } if reason == "timeout")
    )));
    assert_eq!(q.stats().failed, 1);
    blocking.release.send(()).unwrap();
    blocking.returned.recv_timeout(GENEROUS).unwrap();
    q.push(1).unwrap();
    assert_eq!(q.stop(), Ok(()));
    assert_eq!(blocking.sink.items(), vec![1]);
    assert_balanced(q.stats(), 2);
}

#[test]
fn the_watchdog_times_out_a_stuck_cycle_and_ticks_go_on_without_flush() {
    let (blocking, processor) = blocking_processor();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(Duration::from_millis(20))
        .processing_timeout(Duration::from_millis(150))
        .thread_pool(pool("watchdog-pool", 3))
        .observer(recorder.observer())
        .processor(processor)
        .start()
        .unwrap();
    q.push(0).unwrap();
    blocking.entered.recv_timeout(GENEROUS).unwrap();
    // Items accepted while the stuck cycle runs: postponed until the timeout, then ticked.
    q.push_many(1..4).unwrap();
    assert!(
        wait_until(GENEROUS, || blocking.sink.count() == 3),
        "ticks did not go on after the timeout: {:?}",
        q.stats()
    );
    assert_eq!(blocking.sink.items(), vec![1, 2, 3]);
    assert!(blocking.returned.try_recv().is_err(), "should still block");
    let failed = recorder.failed();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(matches!(&failed[0], Ev::ProcessingFailed { reason, .. } if reason == "timeout"));
    let stats = q.stats();
    assert_eq!((stats.processed, stats.failed), (3, 1), "{stats:?}");
    assert_balanced(stats, 4);
    blocking.release.send(()).unwrap();
    blocking.returned.recv_timeout(GENEROUS).unwrap();
    assert_eq!(q.stop(), Ok(()));
    assert_balanced(q.stats(), 4);
}

#[test]
fn a_panicking_observer_does_not_break_the_buffer() {
    let sink: Sink<u32> = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(2)
        .processing_interval(Duration::from_millis(10))
        .observer(|_: &tidefall::Event<'_>| panic!("observer bug"))
        .processor(sink.processor())
        .start()
        .unwrap();
    q.push_many(0..20).unwrap();
    q.flush().unwrap();
    assert_eq!(sink.count(), 20);
    q.push_many(20..40).unwrap();
    assert_eq!(q.stop(), Ok(()));
    assert_eq!(sink.count(), 40);
    assert_eq!(q.stats().processed, 40);
}

#[test]
fn dropping_the_last_handle_with_a_stuck_call_gives_up_after_the_timeout() {
    let (blocking, processor) = blocking_processor();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .processing_timeout(Duration::from_millis(200))
        .thread_pool(pool("drop-timeout-pool", 2))
        .observer(recorder.observer())
        .processor(processor)
        .start()
        .unwrap();
    q.push_many([0, 1, 2]).unwrap();
    let started = Instant::now();
    drop(q);
    assert!(started.elapsed() < GENEROUS, "drop waited past the timeout");
    blocking.entered.recv_timeout(GENEROUS).unwrap();
    let stops = recorder.partitions_of(|e| matches!(e, Ev::PartitionStop { .. }));
    assert_eq!(stops, vec![0, 1]);
    assert!(wait_until(GENEROUS, || recorder.failed().iter().any(
        |e| matches!(e, Ev::ProcessingFailed { reason, .. } if reason == "timeout")
    )));
    blocking.release.send(()).unwrap();
    blocking.returned.recv_timeout(GENEROUS).unwrap();
}

/// An item that counts its drops.
struct Tracked {
    id: u32,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn every_item_is_dropped_exactly_once_through_failures_and_timeouts() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let (entered_tx, release_rx) = (Mutex::new(entered_tx), Mutex::new(release_rx));
    let q = Queue::<Tracked>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(2)
        .processing_timeout(Duration::from_millis(200))
        .thread_pool(pool("drop-count-pool", 3))
        .processor(move |batch: Vec<Tracked>| -> Result<(), String> {
            match batch[0].id {
                0 => {
                    entered_tx.lock().unwrap().send(()).unwrap();
                    let _ = release_rx
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(30));
                    Ok(())
                }
                id if id % 3 == 0 => panic!("panics on {id}"),
                id if id % 3 == 1 => Err(format!("fails on {id}")),
                _ => Ok(()),
            }
        })
        .start()
        .unwrap();
    let item = |id| Tracked {
        id,
        drops: Arc::clone(&drops),
    };
    // The first cycle gets stuck on [0, 1]; [2, 3] and [4, 5] queue behind it.
    q.push_many((0..6).map(item)).unwrap();
    let _ = q.flush();
    entered.recv_timeout(GENEROUS).unwrap();
    // Later cycles: panics, errors, successes.
    q.push_many((6..40).map(item)).unwrap();
    q.flush().unwrap();
    // Returned items are the caller's again.
    let back = q.push(item(1000));
    assert!(back.is_ok());
    release.send(()).unwrap();
    let _ = q.stop();
    let refused = match q.push(item(2000)) {
        Err(PushError::Stopped(item)) => item,
        other => panic!(
            "expected Stopped, got {:?}",
            other.map_err(|e| e.to_string())
        ),
    };
    assert_eq!(refused.id, 2000);
    drop(refused);
    drop(q);
    // The stuck call returns on release: wait until every item is dropped.
    assert!(
        wait_until(GENEROUS, || drops.load(Ordering::SeqCst) >= 42),
        "only {} of 42 items dropped",
        drops.load(Ordering::SeqCst)
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(drops.load(Ordering::SeqCst), 42, "an item dropped twice");
}
