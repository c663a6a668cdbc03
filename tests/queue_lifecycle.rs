//! Start, flush, stop and drop of `Queue<T>`, and where and how cycles run (SPEC §3, §4,
//! §7): the shutdown drain, idempotent and concurrent stops, drop of the last handle,
//! partition start/stop events, `BatchSize::Table`, no empty batches, the thread pool, one
//! cycle in flight per partition, partitions in parallel.

#![cfg(not(loom))]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{pool, Ev, Recorder, Sink, GENEROUS, NEVER};
use tidefall::{BatchSize, Event, PushError, Queue};

#[test]
fn stop_drains_every_partition() {
    let sink: Sink<(u32, u32)> = Sink::new();
    let q = Queue::<(u32, u32)>::builder()
        .partitions(4)
        .processing_interval(NEVER)
        .processor(sink.processor())
        .start()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let q = q.clone();
            s.spawn(move || {
                for i in 0..1000u32 {
                    q.push((t, i)).unwrap();
                }
            });
        }
    });
    assert_eq!(q.len(), 4000);
    q.stop().unwrap();
    let mut items = sink.items();
    assert_eq!(items.len(), 4000);
    items.sort_unstable();
    items.dedup();
    assert_eq!(items.len(), 4000);
    let stats = q.stats();
    assert_eq!(stats.processed, 4000);
    assert_eq!(stats.buffered, 0);
    assert_eq!(stats.failed, 0);
    assert!(q.is_empty());
}

#[test]
fn stop_is_idempotent_refuses_writes_and_flush_after_it_returns_at_once() {
    let sink: Sink<u32> = Sink::new();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(3)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    q.push_many(0..10).unwrap();
    assert_eq!(q.stop(), Ok(()));
    assert_eq!(q.stop(), Ok(()));
    assert_eq!(q.clone().stop(), Ok(()));
    assert_eq!(sink.count(), 10);
    match q.push(11) {
        Err(PushError::Stopped(item)) => assert_eq!(item, 11),
        other => panic!("expected Stopped, got {other:?}"),
    }
    match q.push_many([12, 13]) {
        Err(PushError::Stopped(items)) => assert_eq!(items, vec![12, 13]),
        other => panic!("expected Stopped, got {other:?}"),
    }
    let started = Instant::now();
    assert_eq!(q.flush(), Ok(()));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(sink.count(), 10);
    // Every partition stopped exactly once.
    let stops = recorder.partitions_of(|e| matches!(e, Ev::PartitionStop { .. }));
    assert_eq!(stops, vec![0, 1, 2]);
    assert_eq!(q.stats().processed, 10);
}

#[test]
fn concurrent_stops_all_return_once_the_buffer_is_drained() {
    let sink: Sink<u32> = Sink::new();
    let recorder = Recorder::new();
    let record = sink.processor();
    let q = Queue::<u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .processing_batch_size(10)
        .observer(recorder.observer())
        .processor(move |batch: Vec<u32>| {
            std::thread::sleep(Duration::from_millis(2));
            record(batch)
        })
        .start()
        .unwrap();
    q.push_many(0..300).unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let q = q.clone();
            let sink = sink.clone();
            s.spawn(move || {
                assert_eq!(q.stop(), Ok(()));
                // Whichever stop returns, the buffer is drained by then.
                assert_eq!(sink.count(), 300);
                assert!(matches!(q.push(1), Err(PushError::Stopped(1))));
            });
        }
    });
    assert_eq!(sink.items(), (0..300).collect::<Vec<_>>());
    let stops = recorder.partitions_of(|e| matches!(e, Ev::PartitionStop { .. }));
    assert_eq!(stops, vec![0, 1]);
}

/// Producers push (`push` and `push_many` of up to `many` items) until `stop` refuses them;
/// every accepted item must be delivered exactly once.
fn race_stop(capacity: Option<usize>, many: u32) {
    let sink: Sink<(u32, u32)> = Sink::new();
    let mut builder = Queue::<(u32, u32)>::builder()
        .partitions(4)
        .processing_interval(Duration::from_millis(10))
        .processing_batch_size(64)
        .processor(sink.processor());
    if let Some(capacity) = capacity {
        builder = builder.capacity(capacity);
    }
    let q = builder.start().unwrap();
    let accepted = AtomicUsize::new(0);
    let stopped_back = AtomicUsize::new(0);
    let go = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let q = q.clone();
            let (accepted, stopped_back, go) = (&accepted, &stopped_back, &go);
            s.spawn(move || {
                while !go.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                let mut i = 0u32;
                loop {
                    if i >= 30_000 {
                        // Enough volume: keep writing, slowly, until stopped.
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let n = if i % 3 == 0 { 1 + (i / 3) % many } else { 1 };
                    let result = if n > 1 || i % 2 == 0 {
                        q.push_many((i..i + n).map(|j| (t, j)))
                            .map_err(|e| match e {
                                PushError::Stopped(v) => (true, v.len()),
                                PushError::Full(v) => (false, v.len()),
                            })
                    } else {
                        q.push((t, i)).map_err(|e| match e {
                            PushError::Stopped(_) => (true, 1),
                            PushError::Full(_) => (false, 1),
                        })
                    };
                    i += n;
                    match result {
                        Ok(()) => {
                            accepted.fetch_add(n as usize, Ordering::SeqCst);
                        }
                        Err((stopped, back)) => {
                            accepted.fetch_add(n as usize - back, Ordering::SeqCst);
                            if stopped {
                                stopped_back.fetch_add(back, Ordering::SeqCst);
                                break;
                            }
                            std::thread::yield_now();
                        }
                    }
                }
            });
        }
        go.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(40));
        q.stop().unwrap();
    });
    let accepted = accepted.load(Ordering::SeqCst);
    assert!(accepted > 0);
    assert!(stopped_back.load(Ordering::SeqCst) >= 4);
    assert_eq!(sink.count(), accepted, "accepted items lost or duplicated");
    let mut items = sink.items();
    items.sort_unstable();
    items.dedup();
    assert_eq!(items.len(), accepted, "duplicates");
    let stats = q.stats();
    assert_eq!(stats.processed, accepted as u64);
    assert_eq!(stats.buffered, 0);
}

#[test]
fn writes_racing_stop_are_either_delivered_or_returned() {
    race_stop(None, 2);
    race_stop(None, 200);
}

#[test]
fn writes_racing_stop_with_capacity_are_either_delivered_or_returned() {
    race_stop(Some(1000), 3);
    race_stop(Some(100), 300);
}

#[test]
fn dropping_the_last_handle_stops_and_drains() {
    let sink: Sink<u32> = Sink::new();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .name("dropped")
        .partitions(3)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    let q2 = q.clone();
    q.push_many(0..50).unwrap();
    drop(q);
    // A clone remains: still running.
    assert!(recorder
        .partitions_of(|e| matches!(e, Ev::PartitionStop { .. }))
        .is_empty());
    q2.push_many(50..100).unwrap();
    std::thread::spawn(move || q2.push_many(100..150).unwrap())
        .join()
        .unwrap();
    // The spawned thread held the last handle: its drop drained everything.
    let mut items = sink.items();
    items.sort_unstable();
    assert_eq!(items, (0..150).collect::<Vec<_>>());
    let stops = recorder.partitions_of(|e| matches!(e, Ev::PartitionStop { .. }));
    assert_eq!(stops, vec![0, 1, 2]);
    assert!(recorder.recorded().iter().all(|r| r.buffer == "dropped"));
}

#[test]
fn drop_after_stop_does_not_stop_again() {
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(|_: Vec<u32>| {})
        .start()
        .unwrap();
    q.push(1).unwrap();
    q.stop().unwrap();
    drop(q);
    let stops = recorder.partitions_of(|e| matches!(e, Ev::PartitionStop { .. }));
    assert_eq!(stops, vec![0, 1]);
}

#[test]
fn partition_start_is_emitted_for_every_partition_before_start_returns() {
    for partitions in [1, 5, 16] {
        let recorder = Recorder::new();
        let q = Queue::<u32>::builder()
            .name(format!("starting-{partitions}"))
            .partitions(partitions)
            .processing_interval(NEVER)
            .observer(recorder.observer())
            .processor(|_: Vec<u32>| {})
            .start()
            .unwrap();
        let events = recorder.events();
        let expected: Vec<Ev> = (0..partitions)
            .map(|partition| Ev::PartitionStart {
                buffer: format!("starting-{partitions}"),
                partition,
            })
            .collect();
        let mut started: Vec<Ev> = events
            .into_iter()
            .filter(|e| matches!(e, Ev::PartitionStart { .. }))
            .collect();
        started.sort_by_key(|e| e.partition());
        assert_eq!(started, expected);
        q.stop().unwrap();
        // Start before stop, per partition.
        let events = recorder.events();
        for p in 0..partitions {
            let start = events
                .iter()
                .position(|e| matches!(e, Ev::PartitionStart { partition, .. } if *partition == p));
            let stop = events
                .iter()
                .position(|e| matches!(e, Ev::PartitionStop { partition, .. } if *partition == p));
            assert!(start.unwrap() < stop.unwrap());
        }
    }
}

#[test]
fn table_batch_size_makes_one_call_per_non_empty_partition() {
    let sink: Sink<(u32, u32)> = Sink::new();
    let recorder = Recorder::new();
    let q = Queue::<(u32, u32)>::builder()
        .partitions(4)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    // One thread: one partition, one call with all 1000 items.
    q.push_many((0..1000).map(|i| (0, i))).unwrap();
    q.flush().unwrap();
    assert_eq!(sink.calls(), 1);
    assert_eq!(sink.batches()[0].len(), 1000);

    // Several threads: one call per partition they used.
    std::thread::scope(|s| {
        for t in 1..7u32 {
            let q = q.clone();
            s.spawn(move || {
                for i in 0..500u32 {
                    q.push((t, i)).unwrap();
                }
            });
        }
    });
    let before = recorder.events().len();
    q.flush().unwrap();
    let cycles: Vec<(usize, usize)> = recorder.events()[before..]
        .iter()
        .filter_map(|e| match e {
            Ev::ProcessingStop { partition, size } => Some((*partition, *size)),
            _ => None,
        })
        .collect();
    let used: HashSet<usize> = cycles.iter().map(|&(p, _)| p).collect();
    assert_eq!(
        used.len(),
        cycles.len(),
        "a partition cycled twice: {cycles:?}"
    );
    let batches = sink.batches()[1..].to_vec();
    assert_eq!(
        batches.len(),
        used.len(),
        "one call per non-empty partition"
    );
    let mut sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    let mut cycle_sizes: Vec<usize> = cycles.iter().map(|&(_, n)| n).collect();
    sizes.sort_unstable();
    cycle_sizes.sort_unstable();
    assert_eq!(sizes, cycle_sizes);
    assert_eq!(sizes.iter().sum::<usize>(), 3000);
    q.stop().unwrap();
    assert_eq!(
        sink.calls(),
        1 + used.len(),
        "stop on empty partitions called"
    );
}

#[test]
fn no_empty_batch_is_ever_handed_over() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&calls);
    let q = Queue::<u32>::builder()
        .partitions(4)
        .processing_interval(Duration::from_millis(10))
        .processing_batch_size(3)
        .processor(move |batch: Vec<u32>| record.lock().unwrap().push(batch.len()))
        .start()
        .unwrap();
    q.flush().unwrap();
    // Idle ticks on empty partitions call nothing.
    std::thread::sleep(Duration::from_millis(100));
    assert!(calls.lock().unwrap().is_empty());
    assert_eq!(q.stats().batches, 0);
    q.push_many(0..7).unwrap();
    q.flush().unwrap();
    q.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    q.push(7).unwrap();
    q.stop().unwrap();
    let calls = calls.lock().unwrap().clone();
    assert!(calls.iter().all(|&n| n > 0), "an empty batch: {calls:?}");
    assert_eq!(calls.iter().sum::<usize>(), 8);
    assert_eq!(q.stats().batches, calls.len() as u64);
}

#[test]
fn processors_run_only_on_the_given_pool() {
    let pool = pool("custom-pool", 2);
    let in_pool = Arc::clone(&pool);
    let threads = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&threads);
    let q = Queue::<u32>::builder()
        .partitions(4)
        .processing_interval(Duration::from_millis(20))
        .processing_batch_size(5)
        .thread_pool(pool)
        .processor(move |batch: Vec<u32>| {
            let me = std::thread::current();
            record.lock().unwrap().push((
                me.id(),
                me.name().map(str::to_owned),
                in_pool.current_thread_index(),
                batch.len(),
            ));
        })
        .start()
        .unwrap();
    let mut callers = vec![std::thread::current().id()];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                s.spawn(move || {
                    for i in 0..200 {
                        q.push(i).unwrap();
                    }
                    q.flush().unwrap();
                    std::thread::current().id()
                })
            })
            .collect();
        for h in handles {
            callers.push(h.join().unwrap());
        }
    });
    q.push_many(0..50).unwrap();
    std::thread::sleep(Duration::from_millis(60)); // let the interval tick too
    q.push_many(0..50).unwrap();
    q.stop().unwrap();
    let threads = threads.lock().unwrap().clone();
    assert_eq!(threads.iter().map(|t| t.3).sum::<usize>(), 700);
    for (id, name, index, _) in threads {
        assert!(index.is_some(), "a call off the pool, on {name:?}");
        assert!(
            name.as_deref()
                .is_some_and(|n| n.starts_with("custom-pool-")),
            "{name:?}"
        );
        assert!(
            !callers.contains(&id),
            "a call on a pushing/flushing thread"
        );
    }
}

#[test]
fn processors_run_on_the_default_pool_not_on_callers_or_the_scheduler() {
    let threads = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&threads);
    let q = Queue::<u32>::builder()
        .partitions(2)
        .processing_interval(Duration::from_millis(20))
        .processor(move |_: Vec<u32>| {
            let me = std::thread::current();
            record.lock().unwrap().push((
                me.id(),
                me.name().map(str::to_owned),
                rayon::current_thread_index(),
            ));
        })
        .start()
        .unwrap();
    q.push_many(0..30).unwrap();
    q.flush().unwrap();
    q.push_many(0..30).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    q.push_many(0..30).unwrap();
    q.stop().unwrap();
    let me = std::thread::current().id();
    let threads = threads.lock().unwrap().clone();
    assert!(!threads.is_empty());
    for (id, name, index) in threads {
        assert_ne!(id, me);
        assert!(index.is_some(), "not a pool thread: {name:?}");
        assert_ne!(name.as_deref(), Some("tidefall-engine"));
    }
}

#[test]
fn one_cycle_in_flight_per_partition_and_postponed_ticks_lose_nothing() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let sink: Sink<u32> = Sink::new();
    let record = sink.processor();
    let (now, max) = (Arc::clone(&in_flight), Arc::clone(&max_in_flight));
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(Duration::from_millis(10))
        .processing_batch_size(4)
        .thread_pool(pool("one-cycle-pool", 4))
        .processor(move |batch: Vec<u32>| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(15));
            record(batch);
            now.fetch_sub(1, Ordering::SeqCst);
        })
        .start()
        .unwrap();
    // Writes keep coming while slow cycles run; ticks every 10 ms find them busy.
    for i in 0..300u32 {
        q.push(i).unwrap();
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    q.stop().unwrap();
    assert_eq!(
        max_in_flight.load(Ordering::SeqCst),
        1,
        "overlapping cycles"
    );
    assert_eq!(sink.items(), (0..300).collect::<Vec<_>>());
    let stats = q.stats();
    assert_eq!(stats.processed, 300);
    assert_eq!(stats.buffered, 0);
    assert!(stats.ticks >= 2, "{stats:?}");
}

#[test]
fn different_partitions_are_processed_in_parallel() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let (now, max) = (Arc::clone(&in_flight), Arc::clone(&max_in_flight));
    let q = Queue::<u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .thread_pool(pool("parallel-pool", 4))
        .processor(move |_: Vec<u32>| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(n, Ordering::SeqCst);
            // Wait (bounded) for the other partition's call to overlap this one.
            let deadline = Instant::now() + GENEROUS;
            while now.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            max.fetch_max(now.load(Ordering::SeqCst), Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            now.fetch_sub(1, Ordering::SeqCst);
        })
        .start()
        .unwrap();
    // 64 keys over 2 partitions: both get some.
    for key in 0..64u32 {
        q.push_keyed(&key, key).unwrap();
    }
    q.flush().unwrap();
    assert_eq!(max_in_flight.load(Ordering::SeqCst), 2);
    q.stop().unwrap();
    assert_eq!(q.stats().processed, 64);
    assert_eq!(q.stats().batches, 2);
}

#[test]
fn flushes_racing_stop_all_return_and_nothing_is_lost() {
    let sink: Sink<u32> = Sink::new();
    let record = sink.processor();
    let q = Queue::<u32>::builder()
        .partitions(3)
        .processing_interval(Duration::from_millis(10))
        .processing_batch_size(16)
        .thread_pool(pool("flush-race-pool", 2))
        .processor(move |batch: Vec<u32>| {
            std::thread::sleep(Duration::from_millis(1));
            record(batch)
        })
        .start()
        .unwrap();
    let accepted = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..3u32 {
            let q = q.clone();
            let accepted = &accepted;
            s.spawn(move || {
                for i in 0.. {
                    if q.push(t * 1_000_000 + i).is_err() {
                        break;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                    if i % 50 == 0 {
                        assert_eq!(q.flush(), Ok(()));
                    }
                }
                assert_eq!(q.flush(), Ok(()));
            });
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(q.stop(), Ok(()));
    });
    let accepted = accepted.load(Ordering::SeqCst);
    assert_eq!(sink.count(), accepted);
    assert_eq!(q.stats().processed, accepted as u64);
}

#[test]
fn event_times_and_durations_are_meaningful() {
    #[derive(Default)]
    struct Times {
        start_system: Vec<SystemTime>,
        start_mono: Vec<Instant>,
        stop_mono: Vec<Instant>,
        stop_duration: Vec<Duration>,
        partition_stop_duration: Vec<Duration>,
        partition_start_system: Vec<SystemTime>,
    }
    let times = Arc::new(Mutex::new(Times::default()));
    let record = Arc::clone(&times);
    let before = SystemTime::now();
    let started = Instant::now();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .observer(move |event: &Event<'_>| {
            let mut t = record.lock().unwrap();
            match event {
                Event::PartitionStart(e) => t.partition_start_system.push(e.system_time),
                Event::ProcessingStart(e) => {
                    t.start_system.push(e.system_time);
                    t.start_mono.push(e.monotonic_time);
                }
                Event::ProcessingStop(e) => {
                    t.stop_mono.push(e.monotonic_time);
                    t.stop_duration.push(e.duration);
                }
                Event::PartitionStop(e) => t.partition_stop_duration.push(e.duration),
                _ => {}
            }
        })
        .processor(|_: Vec<u32>| std::thread::sleep(Duration::from_millis(30)))
        .start()
        .unwrap();
    q.push(1).unwrap();
    q.flush().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    q.stop().unwrap();
    let elapsed = started.elapsed();
    let after = SystemTime::now();
    let t = times.lock().unwrap();
    assert_eq!(t.partition_start_system.len(), 1);
    assert!(before <= t.partition_start_system[0] && t.partition_start_system[0] <= after);
    assert_eq!(t.start_system.len(), 1);
    assert!(before <= t.start_system[0] && t.start_system[0] <= after);
    assert_eq!(t.stop_duration.len(), 1);
    assert!(
        t.stop_duration[0] >= Duration::from_millis(30),
        "{:?}",
        t.stop_duration
    );
    assert!(t.stop_mono[0] >= t.start_mono[0] + Duration::from_millis(30));
    assert_eq!(t.partition_stop_duration.len(), 1);
    assert!(t.partition_stop_duration[0] >= Duration::from_millis(50));
    assert!(t.partition_stop_duration[0] <= elapsed);
}
