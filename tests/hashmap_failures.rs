//! Failure isolation, timeouts and the life cycle of `HashMap<K, V, S>` (SPEC §3, §4, §7):
//! processor panics, `Err`s and timeouts lose their batch only and keep the stats balanced
//! (`processed + failed + buffered` = entries accepted); flush, stop and the drop of the
//! last handle drain every entry; writes racing `stop` are either delivered or returned.

#![cfg(not(loom))]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{pool, wait_until, Ev, Recorder, Sink, GENEROUS, NEVER};
use tidefall::{BatchSize, Entry, Error, HashMap, PushError, Stats};

type E = Entry<u32, u32>;

fn assert_balanced(stats: Stats, accepted: u64) {
    assert_eq!(
        stats.processed + stats.failed + stats.buffered,
        accepted,
        "unbalanced {stats:?}"
    );
}

fn keys(entries: &[E]) -> Vec<u32> {
    let mut keys: Vec<u32> = entries.iter().map(|e| e.key).collect();
    keys.sort_unstable();
    keys
}

#[test]
fn a_panicking_call_loses_its_batch_only_and_is_reported() {
    let sink: Sink<E> = Sink::new();
    let recorder = Recorder::new();
    let record = sink.processor();
    let m = HashMap::<u32, u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(1)
        .observer(recorder.observer())
        .processor(move |batch: Vec<E>| {
            if batch[0].key == 3 {
                panic!("boom {}", batch[0].value);
            }
            record(batch)
        })
        .start()
        .unwrap();
    for round in 0..3 {
        m.put_all((0..6).map(|k| (k, round))).unwrap();
    }
    m.flush().unwrap();
    assert_eq!(keys(&sink.items()), vec![0, 1, 2, 4, 5]);
    assert!(sink.items().iter().all(|e| e.value == 2), "the last round");
    let exceptions = recorder.exceptions();
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    match &exceptions[0] {
        Ev::ProcessingException { reason, kind, .. } => {
            assert_eq!(kind, "panic");
            assert!(reason.contains("boom 2"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match recorder.failed().as_slice() {
        [Ev::ProcessingFailed { reason, .. }] => assert!(reason.contains("boom 2"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let stats = m.stats();
    assert_eq!((stats.processed, stats.failed, stats.batches), (5, 1, 6));
    assert_balanced(stats, 6);
    // The map keeps working.
    m.put(3, 9).unwrap();
    m.put(7, 9).unwrap();
    m.stop().unwrap();
    let stats = m.stats();
    assert_eq!((stats.processed, stats.failed), (6, 2));
    assert_balanced(stats, 8);
}

#[test]
fn an_err_fails_its_batch_with_its_text() {
    let sink: Sink<E> = Sink::new();
    let recorder = Recorder::new();
    let record = sink.processor();
    let m = HashMap::<u32, u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .observer(recorder.observer())
        .processor(move |batch: Vec<E>| -> Result<(), String> {
            if batch.iter().any(|e| e.key == 0) {
                return Err(format!("refused {} entries", batch.len()));
            }
            record(batch);
            Ok(())
        })
        .start()
        .unwrap();
    m.put_all((0..100).map(|k| (k, k))).unwrap();
    m.flush().unwrap();
    assert!(recorder.exceptions().is_empty(), "an Err is no exception");
    let failed = recorder.failed();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let lost = 100 - sink.count();
    match &failed[0] {
        Ev::ProcessingFailed { reason, .. } => {
            assert_eq!(reason, &format!("refused {lost} entries"))
        }
        other => panic!("{other:?}"),
    }
    assert!(!keys(&sink.items()).contains(&0));
    let stats = m.stats();
    assert_eq!(stats.failed, lost as u64);
    assert_eq!(stats.processed, sink.count() as u64);
    assert_balanced(stats, 100);
    m.stop().unwrap();
}

/// The test's side of a processor that blocks on key 0 until released.
struct Blocking {
    /// A message when the call holding key 0 has started.
    entered: mpsc::Receiver<()>,
    /// Lets that call return.
    release: mpsc::Sender<()>,
    /// Every other batch.
    sink: Sink<E>,
}

/// A processor that blocks on key 0 until released, and records every other batch.
fn blocking() -> (Blocking, impl Fn(Vec<E>) + Send + Sync + 'static) {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let sink = Sink::new();
    let record = sink.processor();
    let entered_tx = Mutex::new(entered_tx);
    let release_rx = Mutex::new(release_rx);
    let processor = move |batch: Vec<E>| {
        if batch.iter().any(|e| e.key == 0) {
            let _ = entered_tx.lock().unwrap().send(());
            // Bounded, so that a failing test cannot hang forever.
            let _ = release_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(30));
            return;
        }
        record(batch)
    };
    (
        Blocking {
            entered,
            release,
            sink,
        },
        processor,
    )
}

#[test]
fn a_timed_out_cycle_is_failed_and_the_partition_moves_on() {
    let (
        Blocking {
            entered,
            release,
            sink,
        },
        processor,
    ) = blocking();
    let recorder = Recorder::new();
    let m = HashMap::<u32, u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(1)
        .processing_timeout(Duration::from_millis(200))
        .thread_pool(pool("map-timeout-pool", 4))
        .observer(recorder.observer())
        .processor(processor)
        .start()
        .unwrap();
    m.put(0, 0).unwrap();
    m.put(1, 1).unwrap();
    m.put(2, 2).unwrap();
    let started = Instant::now();
    let flushed = m.flush();
    assert!(
        matches!(flushed, Ok(()) | Err(Error::Timeout)),
        "{flushed:?}"
    );
    assert!(started.elapsed() < GENEROUS);
    entered.recv_timeout(GENEROUS).unwrap();
    assert!(wait_until(GENEROUS, || recorder.failed().iter().any(
        |e| matches!(e, Ev::ProcessingFailed { reason, .. } if reason == "timeout")
    )));
    // Whatever of the three entries the cycle had not settled is failed: here, all of
    // those not yet processed.
    let stats = m.stats();
    assert_eq!(stats.processed + stats.failed, 3, "{stats:?}");
    assert_balanced(stats, 3);
    // The next tick runs while the stuck call still blocks.
    m.put(1, 10).unwrap();
    m.flush().unwrap();
    assert!(sink.items().contains(&Entry {
        key: 1,
        value: 10,
        version: 0,
        updates: 0
    }));
    release.send(()).unwrap();
    m.stop().unwrap();
    let stats = m.stats();
    assert_balanced(stats, 4);
    assert_eq!(stats.processed, sink.count() as u64);
}

#[test]
fn stop_returns_timeout_when_its_last_cycle_outlives_the_timeout() {
    let (
        Blocking {
            entered, release, ..
        },
        processor,
    ) = blocking();
    let m = HashMap::<u32, u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_timeout(Duration::from_millis(200))
        .thread_pool(pool("map-stop-timeout-pool", 2))
        .processor(processor)
        .start()
        .unwrap();
    m.put_all([(0, 0), (1, 1)]).unwrap();
    assert_eq!(m.stop(), Err(Error::Timeout));
    entered.recv_timeout(GENEROUS).unwrap();
    let stats = m.stats();
    assert_eq!((stats.processed, stats.failed), (0, 2), "{stats:?}");
    assert_balanced(stats, 2);
    assert_eq!(m.stop(), Ok(()));
    assert_eq!(m.flush(), Ok(()));
    assert_eq!(m.put(5, 5), Err(PushError::Stopped((5, 5))));
    release.send(()).unwrap();
}

#[test]
fn flush_delivers_everything_buffered_at_the_call() {
    let sink: Sink<E> = Sink::new();
    let m = HashMap::<u32, u32>::builder()
        .partitions(4)
        .processing_interval(NEVER)
        .processing_batch_size(16)
        .processor(sink.processor())
        .start()
        .unwrap();
    for tick in 0..5u32 {
        m.put_all((0..500).map(|k| (k, tick))).unwrap();
        m.flush().unwrap();
        assert_eq!(sink.count(), 500 * (tick as usize + 1));
        assert!(m.is_empty());
    }
    // Empty flushes call nothing.
    let calls = sink.calls();
    m.flush().unwrap();
    assert_eq!(sink.calls(), calls);
    m.stop().unwrap();
    assert_eq!(m.stats().processed, 2500);
}

#[test]
fn stop_drains_every_partition_and_emits_partition_stop() {
    let sink: Sink<E> = Sink::new();
    let recorder = Recorder::new();
    let m = HashMap::<u32, u32>::builder()
        .name("map-stop")
        .partitions(3)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    let starts = recorder.partitions_of(|e| matches!(e, Ev::PartitionStart { .. }));
    assert_eq!(starts, vec![0, 1, 2], "emitted before start returns");
    m.put_all((0..300).map(|k| (k, k))).unwrap();
    m.stop().unwrap();
    assert_eq!(keys(&sink.items()), (0..300).collect::<Vec<_>>());
    let stops = recorder.partitions_of(|e| matches!(e, Ev::PartitionStop { .. }));
    assert_eq!(stops, vec![0, 1, 2]);
    assert!(recorder.recorded().iter().all(|r| r.buffer == "map-stop"));
    assert_eq!(m.stop(), Ok(()));
    let stats = m.stats();
    assert_eq!((stats.processed, stats.buffered), (300, 0));
}

#[test]
fn dropping_the_last_handle_stops_and_drains() {
    let sink: Sink<E> = Sink::new();
    let recorder = Recorder::new();
    let m = HashMap::<u32, u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    let m2 = m.clone();
    m.put_all((0..50).map(|k| (k, k))).unwrap();
    drop(m);
    assert!(recorder
        .partitions_of(|e| matches!(e, Ev::PartitionStop { .. }))
        .is_empty());
    std::thread::spawn(move || m2.put_all((50..100).map(|k| (k, k))).unwrap())
        .join()
        .unwrap();
    assert_eq!(keys(&sink.items()), (0..100).collect::<Vec<_>>());
    let stops = recorder.partitions_of(|e| matches!(e, Ev::PartitionStop { .. }));
    assert_eq!(stops, vec![0, 1]);
}

#[test]
fn processors_run_only_on_the_given_pool() {
    let on_pool = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&on_pool);
    let m = HashMap::<u32, u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .thread_pool(pool("map-own-pool", 2))
        .processor(move |_: Vec<E>| {
            let name = std::thread::current().name().map(str::to_owned);
            if !name.is_some_and(|n| n.starts_with("map-own-pool-")) {
                flag.store(false, Ordering::SeqCst);
            }
        })
        .start()
        .unwrap();
    m.put_all((0..100).map(|k| (k, k))).unwrap();
    m.flush().unwrap();
    m.put(1, 1).unwrap();
    m.stop().unwrap();
    assert!(on_pool.load(Ordering::SeqCst));
}

/// Producers write (`put`, `put_newer`, `put_all`) until `stop` refuses them; every key
/// accepted must be delivered exactly once, with its last accepted value.
fn race_stop(capacity: Option<usize>) {
    let sink: Sink<E> = Sink::new();
    let mut builder = HashMap::<u32, u32>::builder()
        .partitions(4)
        .processing_interval(Duration::from_millis(10))
        .processing_batch_size(64)
        .processor(sink.processor());
    if let Some(capacity) = capacity {
        builder = builder.capacity(capacity);
    }
    let m = builder.start().unwrap();
    let go = AtomicBool::new(false);
    let stopped = AtomicUsize::new(0);
    // Every key is written by one thread only, with increasing values: what each thread
    // last had accepted per key.
    let accepted: Vec<BTreeMap<u32, u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u32)
            .map(|t| {
                let m = m.clone();
                let (go, stopped) = (&go, &stopped);
                s.spawn(move || {
                    let mut mine = BTreeMap::new();
                    while !go.load(Ordering::SeqCst) {
                        std::hint::spin_loop();
                    }
                    for i in 0u32.. {
                        if i >= 30_000 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        let key = t * 1_000_000 + i % 5000;
                        let result = match i % 3 {
                            0 => m.put(key, i).map_err(MapInner::map_inner),
                            1 => m
                                .put_newer(key, i, u64::from(i))
                                .map(drop)
                                .map_err(MapInner::map_inner),
                            _ => m.put_all([(key, i)]).map_err(MapInner::map_inner),
                        };
                        match result {
                            Ok(()) => {
                                mine.insert(key, i);
                            }
                            Err(PushError::Stopped(())) => {
                                stopped.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            Err(PushError::Full(())) => std::thread::yield_now(),
                        }
                    }
                    mine
                })
            })
            .collect();
        go.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(40));
        m.stop().unwrap();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(stopped.load(Ordering::SeqCst), 4);
    // The latest delivered value per key is the last accepted one.
    let mut latest = BTreeMap::new();
    for e in sink.items() {
        let previous = latest.insert(e.key, e.value);
        assert!(
            previous.is_none_or(|p| p < e.value),
            "older value after newer"
        );
    }
    let expected: BTreeMap<u32, u32> = accepted.into_iter().flatten().collect();
    assert_eq!(latest, expected);
    let stats = m.stats();
    assert_eq!(stats.processed, sink.count() as u64);
    assert_eq!(stats.buffered, 0);
}

/// `PushError<T>` → `PushError<()>`, for matching on the kind only.
trait MapInner {
    fn map_inner(self) -> PushError<()>;
}

impl<T> MapInner for PushError<T> {
    fn map_inner(self) -> PushError<()> {
        match self {
            PushError::Full(_) => PushError::Full(()),
            PushError::Stopped(_) => PushError::Stopped(()),
        }
    }
}

#[test]
fn writes_racing_stop_are_either_delivered_or_returned() {
    race_stop(None);
}

#[test]
fn writes_racing_stop_with_capacity_are_either_delivered_or_returned() {
    race_stop(Some(100));
}
