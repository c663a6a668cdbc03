//! Builder options and run-time updates of `Queue<T>` (SPEC §2, §7): validation, the missing
//! processor, `update_options`, `processing_interval`, `drain_threshold` /
//! `drain_check_interval`, `capacity` and `Rejected`, several observers, defaults.

#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{wait_until, Ev, Recorder, Sink, GENEROUS, NEVER};
use tidefall::{BatchSize, Error, OptionsUpdate, PushError, Queue, QueueBuilder};

fn builder() -> QueueBuilder<u32> {
    Queue::<u32>::builder()
        .processing_interval(NEVER)
        .processor(|_: Vec<u32>| {})
}

fn invalid_option(result: Result<Queue<u32>, Error>) -> &'static str {
    match result {
        Err(Error::InvalidOption { option, reason }) => {
            assert!(!reason.is_empty(), "{option}: empty reason");
            option
        }
        Err(other) => panic!("expected InvalidOption, got {other:?}"),
        Ok(q) => panic!("expected InvalidOption, started {:?}", q.name()),
    }
}

#[test]
fn every_invalid_option_is_named() {
    assert_eq!(
        invalid_option(builder().partitions(0).start()),
        "partitions"
    );
    assert_eq!(
        invalid_option(builder().processing_interval(Duration::ZERO).start()),
        "processing_interval"
    );
    assert_eq!(
        invalid_option(builder().processing_batch_size(0).start()),
        "processing_batch_size"
    );
    assert_eq!(
        invalid_option(builder().processing_batch_size(BatchSize::Items(0)).start()),
        "processing_batch_size"
    );
    assert_eq!(
        invalid_option(builder().processing_timeout(Duration::ZERO).start()),
        "processing_timeout"
    );
    assert_eq!(
        invalid_option(builder().drain_threshold(0).start()),
        "drain_threshold"
    );
    assert_eq!(
        invalid_option(builder().drain_check_interval(Duration::ZERO).start()),
        "drain_check_interval"
    );
    assert_eq!(invalid_option(builder().capacity(0).start()), "capacity");
}

#[test]
fn invalid_option_display_names_the_option() {
    let err = builder().partitions(0).start().unwrap_err();
    assert!(err.to_string().contains("partitions"), "{err}");
}

#[test]
fn valid_edge_values_start() {
    let q = builder()
        .partitions(1)
        .processing_batch_size(1)
        .processing_interval(Duration::from_nanos(1_000_000_000))
        .processing_timeout(Duration::from_secs(1))
        .drain_threshold(1)
        .drain_check_interval(Duration::from_secs(1))
        .capacity(1)
        .start()
        .unwrap();
    q.stop().unwrap();
    let q = builder()
        .processing_batch_size(BatchSize::Table)
        .start()
        .unwrap();
    q.stop().unwrap();
}

#[test]
fn missing_processor_is_an_error() {
    let result = Queue::<u32>::builder().partitions(2).start();
    assert!(matches!(result, Err(Error::MissingProcessor)), "{result:?}");
    let result = Queue::<String>::builder().name("nothing").start();
    assert!(matches!(result, Err(Error::MissingProcessor)), "{result:?}");
}

#[test]
fn default_partitions_follow_available_parallelism() {
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(|_: Vec<u32>| {})
        .start()
        .unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = recorder.partitions_of(|e| matches!(e, Ev::PartitionStart { .. }));
    assert_eq!(started, (0..cores).collect::<Vec<_>>());
    q.stop().unwrap();
}

#[test]
fn several_observers_each_hear_every_event() {
    let a = Recorder::new();
    let b = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .observer(a.observer())
        .observer(b.observer())
        .processor(|_: Vec<u32>| {})
        .start()
        .unwrap();
    q.push_many(0..5).unwrap();
    q.stop().unwrap();
    assert!(!a.events().is_empty());
    assert_eq!(a.events(), b.events());
}

#[test]
fn an_invalid_update_changes_nothing() {
    let sink: Sink<u32> = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(5)
        .processor(sink.processor())
        .start()
        .unwrap();
    let cases: [(OptionsUpdate, &str); 5] = [
        (
            OptionsUpdate::default()
                .processing_batch_size(3)
                .processing_interval(Duration::ZERO),
            "processing_interval",
        ),
        (
            OptionsUpdate::default()
                .processing_batch_size(3)
                .processing_timeout(Duration::ZERO),
            "processing_timeout",
        ),
        (
            OptionsUpdate::default()
                .processing_interval(Duration::from_millis(10))
                .processing_batch_size(0),
            "processing_batch_size",
        ),
        (
            OptionsUpdate::default()
                .processing_batch_size(3)
                .processing_interval(Duration::from_millis(10))
                .drain_threshold(0),
            "drain_threshold",
        ),
        (
            OptionsUpdate::default()
                .processing_batch_size(3)
                .drain_threshold(1)
                .drain_check_interval(Duration::ZERO),
            "drain_check_interval",
        ),
    ];
    for (update, name) in cases {
        match q.update_options(update) {
            Err(Error::InvalidOption { option, .. }) => assert_eq!(option, name),
            other => panic!("{name}: expected InvalidOption, got {other:?}"),
        }
    }
    // Still batches of 5, still no interval tick, no early drain.
    q.push_many(0..12).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        sink.calls(),
        0,
        "an invalid update changed the interval or threshold"
    );
    assert_eq!(q.len(), 12);
    q.flush().unwrap();
    let sizes: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![5, 5, 2]);
    q.stop().unwrap();
}

#[test]
fn a_partial_update_keeps_the_other_options() {
    let sink: Sink<u32> = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(5)
        .processor(sink.processor())
        .start()
        .unwrap();
    q.update_options(OptionsUpdate::default().processing_batch_size(4))
        .unwrap();
    q.push_many(0..10).unwrap();
    // The interval is kept (an hour): nothing drains by itself.
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(sink.calls(), 0);
    q.flush().unwrap();
    let sizes: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 4, 2]);

    // Table, then the timeout alone: the batch size stays Table.
    q.update_options(OptionsUpdate::default().processing_batch_size(BatchSize::Table))
        .unwrap();
    q.update_options(OptionsUpdate::default().processing_timeout(Duration::from_secs(30)))
        .unwrap();
    q.push_many(0..25).unwrap();
    q.flush().unwrap();
    let sizes: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 4, 2, 25]);
    // An empty update is valid and changes nothing.
    q.update_options(OptionsUpdate::default()).unwrap();
    q.push_many(0..3).unwrap();
    q.stop().unwrap();
    let sizes: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 4, 2, 25, 3]);
}

#[test]
fn the_interval_ticks_without_flush() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(Duration::from_millis(20))
        .processor(move |batch: Vec<u32>| {
            for x in batch {
                tx.lock().unwrap().send(x).unwrap();
            }
        })
        .start()
        .unwrap();
    for round in 0..3u32 {
        q.push(round).unwrap();
        assert_eq!(rx.recv_timeout(GENEROUS), Ok(round), "round {round}");
    }
    q.stop().unwrap();
}

#[test]
fn a_new_processing_interval_takes_effect_at_once() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let q = Queue::<u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .processor(move |batch: Vec<u32>| {
            for x in batch {
                tx.lock().unwrap().send(x).unwrap();
            }
        })
        .start()
        .unwrap();
    q.push(1).unwrap();
    let before = Instant::now();
    q.update_options(OptionsUpdate::default().processing_interval(Duration::from_millis(20)))
        .unwrap();
    // Not after the hour left of the old interval.
    assert_eq!(rx.recv_timeout(GENEROUS), Ok(1));
    assert!(before.elapsed() < GENEROUS);
    // It keeps ticking at the new interval.
    q.push(2).unwrap();
    assert_eq!(rx.recv_timeout(GENEROUS), Ok(2));

    // Back to an hour: the next tick is an hour from the update.
    q.update_options(OptionsUpdate::default().processing_interval(NEVER))
        .unwrap();
    // Let a tick that was already firing during the update finish.
    std::thread::sleep(Duration::from_millis(30));
    q.flush().unwrap();
    q.push(3).unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "ticked at the old, short interval"
    );
    assert_eq!(q.len(), 1);
    q.flush().unwrap();
    assert_eq!(rx.recv_timeout(GENEROUS), Ok(3));
    q.stop().unwrap();
}

#[test]
fn drain_threshold_drains_early_and_losslessly() {
    let sink: Sink<u32> = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .drain_threshold(100)
        .drain_check_interval(Duration::from_millis(20))
        .processor(sink.processor())
        .start()
        .unwrap();
    // Below the threshold: nothing drains.
    q.push_many(0..99).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(sink.calls(), 0, "drained below the threshold");
    // Reaching it drains, without flush, within the check interval (generously).
    q.push(99).unwrap();
    assert!(
        wait_until(GENEROUS, || sink.count() == 100),
        "no early drain"
    );
    assert_eq!(sink.items(), (0..100).collect::<Vec<_>>());
    // A trigger, not a cap: far past it, every write is accepted and delivered.
    for i in 100..2600 {
        q.push(i).unwrap();
    }
    // Each crossing drains; what is left below the threshold waits for a tick (or stop).
    assert!(wait_until(GENEROUS, || sink.count() > 2600 - 100));
    q.stop().unwrap();
    assert_eq!(sink.items(), (0..2600).collect::<Vec<_>>());
    let stats = q.stats();
    assert_eq!(stats.processed, 2600);
    assert_eq!(stats.rejected, 0);
}

#[test]
fn the_write_that_reaches_the_threshold_triggers_the_drain() {
    // With no periodic check for an hour, only the crossing write can start the drain.
    let sink: Sink<u32> = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .drain_threshold(50)
        .drain_check_interval(NEVER)
        .processor(sink.processor())
        .start()
        .unwrap();
    q.push_many(0..30).unwrap();
    q.push_many(30..49).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(sink.calls(), 0, "drained below the threshold");
    // A push_many that jumps past the threshold crosses it too.
    q.push_many(49..60).unwrap();
    assert!(
        wait_until(GENEROUS, || sink.count() == 60),
        "the crossing write did not trigger a drain"
    );
    assert_eq!(sink.batches(), vec![(0..60).collect::<Vec<_>>()]);
    // The next generation starts from zero: crossing again drains again.
    for i in 60..110 {
        q.push(i).unwrap();
    }
    assert!(wait_until(GENEROUS, || sink.count() == 110));
    q.stop().unwrap();
    assert_eq!(sink.items(), (0..110).collect::<Vec<_>>());
}

#[test]
fn drain_threshold_can_be_turned_on_and_off() {
    let sink: Sink<u32> = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .processor(sink.processor())
        .start()
        .unwrap();
    q.push_many(0..50).unwrap();
    // On: the 50 buffered items are over the new threshold.
    q.update_options(
        OptionsUpdate::default()
            .drain_threshold(10)
            .drain_check_interval(Duration::from_millis(20)),
    )
    .unwrap();
    assert!(
        wait_until(GENEROUS, || sink.count() == 50),
        "threshold not on"
    );
    q.push_many(50..70).unwrap();
    // A trigger, not a cap: the drain that the crossing requests takes what is there when it
    // runs, which may be before the last of the 20 writes; fewer than the threshold may then
    // stay for a later crossing or tick.
    assert!(
        wait_until(GENEROUS, || sink.count() >= 60 && q.len() < 10),
        "threshold not on"
    );
    q.flush().unwrap();
    assert_eq!(sink.count(), 70);

    // Off.
    q.update_options(OptionsUpdate::default().drain_threshold(None))
        .unwrap();
    q.push_many(70..170).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(sink.count(), 70, "drained with the threshold off");
    assert_eq!(q.len(), 100);
    q.flush().unwrap();
    assert_eq!(sink.items(), (0..170).collect::<Vec<_>>());

    // On again with `Some`.
    q.update_options(OptionsUpdate::default().drain_threshold(Some(5)))
        .unwrap();
    q.push_many(170..180).unwrap();
    assert!(
        wait_until(GENEROUS, || sink.count() == 180),
        "threshold not on"
    );
    q.stop().unwrap();
    assert_eq!(sink.items(), (0..180).collect::<Vec<_>>());
}

#[test]
fn a_new_drain_check_interval_takes_effect_at_once() {
    let sink: Sink<u32> = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processor(sink.processor())
        .start()
        .unwrap();
    // Written with the threshold off, so no write's crossing requests a drain: only the
    // periodic check can see that the partition holds more than the threshold.
    q.push_many(0..20).unwrap();
    q.update_options(
        OptionsUpdate::default()
            .drain_threshold(10)
            .drain_check_interval(NEVER),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(sink.count(), 0, "drained before the check interval");
    q.update_options(OptionsUpdate::default().drain_check_interval(Duration::from_millis(20)))
        .unwrap();
    assert!(
        wait_until(GENEROUS, || sink.count() == 20),
        "the reached threshold waited for the old check interval"
    );
    q.stop().unwrap();
    assert_eq!(sink.items(), (0..20).collect::<Vec<_>>());
}

#[test]
fn capacity_is_exact_per_partition_and_full_returns_the_item() {
    let sink: Sink<u32> = Sink::new();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .capacity(10)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    for i in 0..10 {
        q.push(i).unwrap();
    }
    let mut fulls = 0u64;
    for i in 10..15 {
        match q.push(i) {
            Err(PushError::Full(item)) => assert_eq!(item, i),
            other => panic!("expected Full({i}), got {other:?}"),
        }
        fulls += 1;
    }
    match q.push_keyed(&1u8, 99) {
        Err(PushError::Full(item)) => assert_eq!(item, 99),
        other => panic!("expected Full(99), got {other:?}"),
    }
    fulls += 1;
    assert_eq!(q.len(), 10);
    q.flush().unwrap();
    assert_eq!(sink.items(), (0..10).collect::<Vec<_>>());
    // Rejections since the last tick were reported with it.
    assert_eq!(recorder.rejected_sum(), fulls);
    assert_eq!(q.stats().rejected, fulls);
    // The tick freed the room: exactly 10 again.
    for i in 100..110 {
        q.push(i).unwrap();
    }
    assert!(matches!(q.push(110), Err(PushError::Full(110))));
    fulls += 1;
    q.stop().unwrap();
    assert_eq!(sink.count(), 20);
    assert_eq!(recorder.rejected_sum(), fulls);
    let stats = q.stats();
    assert_eq!(stats.rejected, fulls);
    assert_eq!(stats.processed, 20);
    assert_eq!(stats.buffered, 0);
    // A push after stop is Stopped, not Full, and not counted as rejected.
    assert!(matches!(q.push(1), Err(PushError::Stopped(1))));
    assert_eq!(q.stats().rejected, fulls);
}

#[test]
fn capacity_is_per_partition_not_split() {
    // One thread writes to one partition, which holds `capacity` items on its own.
    let q = Queue::<u32>::builder()
        .partitions(3)
        .capacity(5)
        .processing_interval(NEVER)
        .processor(|_: Vec<u32>| {})
        .start()
        .unwrap();
    let accepted = (0..20).take_while(|&i| q.push(i).is_ok()).count();
    assert_eq!(accepted, 5);
    q.stop().unwrap();
}

#[test]
fn capacity_under_contention_accepts_exactly_capacity() {
    let sink: Sink<u32> = Sink::new();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .capacity(1000)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    let fulls = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let q = q.clone();
            let fulls = Arc::clone(&fulls);
            s.spawn(move || {
                for i in 0..500u32 {
                    match q.push(t * 1000 + i) {
                        Ok(()) => {}
                        Err(PushError::Full(item)) => {
                            assert_eq!(item, t * 1000 + i);
                            fulls.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
            });
        }
    });
    let fulls = fulls.load(Ordering::SeqCst) as u64;
    assert_eq!(fulls, 1000);
    assert_eq!(q.len(), 1000);
    q.stop().unwrap();
    assert_eq!(sink.count(), 1000);
    assert_eq!(recorder.rejected_sum(), fulls);
    let stats = q.stats();
    assert_eq!(stats.rejected, fulls);
    assert_eq!(stats.processed, 1000);
}

#[test]
fn observers_never_run_on_the_write_path() {
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .capacity(3)
        .processing_interval(Duration::from_millis(10))
        .drain_threshold(2)
        .drain_check_interval(Duration::from_millis(10))
        .observer(recorder.observer())
        .processor(|_: Vec<u32>| {})
        .start()
        .unwrap();
    let me = std::thread::current().id();
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut i = 0;
    while Instant::now() < deadline {
        let _ = q.push(i);
        let _ = q.push_many([i, i + 1]);
        i += 2;
    }
    q.flush().unwrap();
    let recorded = recorder.recorded();
    assert!(recorded
        .iter()
        .any(|r| matches!(r.event, Ev::ProcessingStop { .. })));
    for r in recorded {
        if !matches!(r.event, Ev::PartitionStart { .. }) {
            assert_ne!(r.thread, me, "{:?} on the writing thread", r.event);
        }
    }
    q.stop().unwrap();
}

/// Runs `f` on `q`; if it panics, leaks `q` (dropping it would stop the buffer, which may
/// panic again during the unwind and abort the whole test binary) and fails with `what`.
fn run_or_leak(q: Queue<u32>, what: &str, f: impl FnOnce(&Queue<u32>)) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&q)));
    if outcome.is_err() {
        std::mem::forget(q);
        panic!("{what} panicked");
    }
}

/// A huge (but positive, so valid by the option table) duration either works or is refused
/// with `InvalidOption` naming the option; it must never panic.
fn huge_duration_starts_or_is_refused(option: &'static str, builder: QueueBuilder<u32>) {
    let sink: Sink<u32> = Sink::new();
    let builder = builder.partitions(1).processor(sink.processor());
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.start()));
    let q = match started {
        Err(_) => panic!("start() panicked with {option}(Duration::MAX)"),
        Ok(Err(Error::InvalidOption { option: named, .. })) => {
            assert_eq!(named, option);
            return;
        }
        Ok(Err(e)) => panic!("{option}(Duration::MAX): {e:?}"),
        Ok(Ok(q)) => q,
    };
    run_or_leak(q, &format!("a queue with {option}(Duration::MAX)"), |q| {
        q.push_many(0..3).unwrap();
        q.flush().unwrap();
        q.push(3).unwrap();
        q.stop().unwrap();
    });
    assert_eq!(sink.items(), vec![0, 1, 2, 3]);
}

#[test]
fn a_huge_processing_interval_never_panics() {
    huge_duration_starts_or_is_refused(
        "processing_interval",
        Queue::<u32>::builder().processing_interval(Duration::MAX),
    );
}

#[test]
fn a_huge_processing_timeout_never_panics() {
    huge_duration_starts_or_is_refused(
        "processing_timeout",
        Queue::<u32>::builder()
            .processing_interval(NEVER)
            .processing_timeout(Duration::MAX),
    );
}

#[test]
fn a_huge_drain_check_interval_never_panics() {
    huge_duration_starts_or_is_refused(
        "drain_check_interval",
        Queue::<u32>::builder()
            .processing_interval(NEVER)
            .drain_threshold(1)
            .drain_check_interval(Duration::MAX),
    );
}

#[test]
fn a_huge_duration_update_never_panics() {
    let updates: [(&str, OptionsUpdate); 3] = [
        (
            "processing_interval",
            OptionsUpdate::default().processing_interval(Duration::MAX),
        ),
        (
            "processing_timeout",
            OptionsUpdate::default().processing_timeout(Duration::MAX),
        ),
        (
            "drain_check_interval",
            OptionsUpdate::default()
                .drain_threshold(1)
                .drain_check_interval(Duration::MAX),
        ),
    ];
    let mut panicked = Vec::new();
    for (option, update) in updates {
        let sink: Sink<u32> = Sink::new();
        let q = Queue::<u32>::builder()
            .partitions(1)
            .processing_interval(NEVER)
            .processor(sink.processor())
            .start()
            .unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match q.update_options(update) {
                Ok(()) => {}
                Err(Error::InvalidOption { option: named, .. }) => assert_eq!(named, option),
                Err(e) => panic!("{option}: {e:?}"),
            }
            q.push_many(0..3).unwrap();
            q.flush().unwrap();
            q.stop().unwrap();
            assert_eq!(sink.items(), vec![0, 1, 2]);
        }));
        if outcome.is_err() {
            std::mem::forget(q);
            panicked.push(option);
        }
    }
    assert!(
        panicked.is_empty(),
        "update_options with Duration::MAX panicked for {panicked:?}"
    );
}
