//! Builder options and run-time updates of `HashMap<K, V, S>` (SPEC §2, §7): validation,
//! the missing processor, `capacity` counting distinct keys (exact, `Full`, `Rejected`),
//! partial acceptance of `put_all` / `put_all_newer`, `drain_threshold` counting keys,
//! `update_options`.

#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{wait_until, Recorder, Sink, GENEROUS, NEVER};
use tidefall::{BatchSize, Entry, Error, HashMap, HashMapBuilder, OptionsUpdate, PushError};

type E = Entry<u32, u32>;

fn builder() -> HashMapBuilder<u32, u32> {
    HashMap::<u32, u32>::builder()
        .processing_interval(NEVER)
        .processor(|_: Vec<E>| {})
}

fn invalid_option(result: Result<HashMap<u32, u32>, Error>) -> &'static str {
    match result {
        Err(Error::InvalidOption { option, reason }) => {
            assert!(!reason.is_empty(), "{option}: empty reason");
            option
        }
        Err(other) => panic!("expected InvalidOption, got {other:?}"),
        Ok(m) => panic!("expected InvalidOption, started {:?}", m.name()),
    }
}

#[test]
fn every_invalid_option_is_named() {
    type Started = Result<HashMap<u32, u32>, Error>;
    let cases: Vec<(&str, Started)> = vec![
        ("partitions", builder().partitions(0).start()),
        (
            "processing_interval",
            builder().processing_interval(Duration::ZERO).start(),
        ),
        (
            "processing_batch_size",
            builder().processing_batch_size(0).start(),
        ),
        (
            "processing_timeout",
            builder().processing_timeout(Duration::ZERO).start(),
        ),
        ("drain_threshold", builder().drain_threshold(0).start()),
        (
            "drain_check_interval",
            builder().drain_check_interval(Duration::ZERO).start(),
        ),
        ("capacity", builder().capacity(0).start()),
        ("name", builder().name("").start()),
    ];
    for (option, result) in cases {
        assert_eq!(invalid_option(result), option);
    }
    let error = builder().capacity(0).start().unwrap_err();
    assert!(error.to_string().contains("capacity"), "{error}");
}

#[test]
fn missing_processor_is_an_error() {
    let result = HashMap::<u32, u32>::builder().partitions(1).start();
    assert_eq!(result.unwrap_err(), Error::MissingProcessor);
}

#[test]
fn an_invalid_update_changes_nothing() {
    let sink: Sink<E> = Sink::new();
    let m = HashMap::<u32, u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(2)
        .processor(sink.processor())
        .start()
        .unwrap();
    let refused = m.update_options(
        OptionsUpdate::default()
            .processing_batch_size(BatchSize::Table)
            .drain_threshold(0),
    );
    assert!(
        matches!(
            refused,
            Err(Error::InvalidOption {
                option: "drain_threshold",
                ..
            })
        ),
        "{refused:?}"
    );
    m.put_all((0..5).map(|k| (k, k))).unwrap();
    m.flush().unwrap();
    assert_eq!(sink.calls(), 3, "batch size still 2");
    m.update_options(OptionsUpdate::default().processing_batch_size(BatchSize::Table))
        .unwrap();
    m.put_all((0..5).map(|k| (k, k))).unwrap();
    m.flush().unwrap();
    assert_eq!(sink.calls(), 4, "the whole table in one call");
    m.stop().unwrap();
}

#[test]
fn the_interval_ticks_without_flush() {
    let sink: Sink<E> = Sink::new();
    let m = HashMap::<u32, u32>::builder()
        .partitions(2)
        .processing_interval(Duration::from_millis(20))
        .processor(sink.processor())
        .start()
        .unwrap();
    m.put(1, 1).unwrap();
    assert!(wait_until(GENEROUS, || sink.count() == 1), "no tick");
    m.put(1, 2).unwrap();
    assert!(wait_until(GENEROUS, || sink.count() == 2), "no second tick");
    assert_eq!(sink.items().last().map(|e| e.value), Some(2));
    m.stop().unwrap();
}

#[test]
fn capacity_counts_distinct_keys_exactly_with_one_partition() {
    let sink: Sink<E> = Sink::new();
    let recorder = Recorder::new();
    let m = HashMap::<u32, u32>::builder()
        .partitions(1)
        .capacity(10)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    for k in 0..10 {
        m.put(k, k).unwrap();
    }
    let mut fulls = 0u64;
    for k in 10..15 {
        assert_eq!(m.put(k, k), Err(PushError::Full((k, k))));
        fulls += 1;
    }
    assert_eq!(m.put_newer(20, 1, 1), Err(PushError::Full((20, 1))));
    fulls += 1;
    // Overwrites of buffered keys always fit, ignored put_newers too.
    for k in 0..10 {
        m.put(k, k + 100).unwrap();
        assert_eq!(m.put_newer(k, 0, 0), Ok(false));
        assert_eq!(m.put_newer(k, k + 200, 5), Ok(true));
    }
    assert_eq!(m.len(), 10);
    // A delete frees one key's room, exactly.
    assert!(m.delete(&0));
    assert!(!m.delete(&0), "a failed delete frees nothing");
    m.put(30, 30).unwrap();
    assert_eq!(m.put(31, 31), Err(PushError::Full((31, 31))));
    fulls += 1;
    m.flush().unwrap();
    assert_eq!(sink.count(), 10);
    assert_eq!(recorder.rejected_sum(), fulls, "reported with the tick");
    assert_eq!(m.stats().rejected, fulls);
    // Keys handed to the processor do not count: exactly 10 again.
    for k in 100..110 {
        m.put(k, k).unwrap();
    }
    assert!(matches!(m.put(110, 0), Err(PushError::Full(_))));
    fulls += 1;
    m.stop().unwrap();
    assert_eq!(sink.count(), 20);
    assert_eq!(recorder.rejected_sum(), fulls);
    let stats = m.stats();
    assert_eq!(stats.rejected, fulls);
    assert_eq!((stats.processed, stats.failed, stats.buffered), (20, 0, 0));
    // After stop: Stopped, not Full, and not counted.
    assert_eq!(m.put(1, 1), Err(PushError::Stopped((1, 1))));
    assert_eq!(m.stats().rejected, fulls);
}

#[test]
fn put_all_past_capacity_accepts_what_fits_and_returns_the_rest_in_order() {
    let sink: Sink<E> = Sink::new();
    let recorder = Recorder::new();
    let m = HashMap::<u32, u32>::builder()
        .partitions(1)
        .capacity(4)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    m.put_all([(1, 1), (2, 2)]).unwrap();
    // Keys 3 and 5 fill it; 4 and 6 are refused; overwrites of 1 and 3 still fit.
    let result = m.put_all([(3, 3), (5, 5), (1, 10), (4, 4), (6, 6), (3, 30)]);
    assert_eq!(result, Err(PushError::Full(vec![(4, 4), (6, 6)])));
    assert_eq!(m.len(), 4);
    let result = m.put_all_newer([(7, 7, 1), (2, 20, 1), (8, 8, 1), (2, 21, 1)]);
    assert_eq!(result, Err(PushError::Full(vec![(7, 7, 1), (8, 8, 1)])));
    // Everything fits: Ok with the number stored (an ignored one is accepted, not stored).
    assert_eq!(m.put_all_newer([(2, 22, 2), (2, 0, 1), (5, 50, 9)]), Ok(2));
    assert_eq!(recorder.rejected_sum(), 0, "not reported before the tick");
    m.flush().unwrap();
    let mut entries = sink.items();
    entries.sort_by_key(|e| e.key);
    let expected = vec![
        Entry {
            key: 1,
            value: 10,
            version: 0,
            updates: 0,
        },
        Entry {
            key: 2,
            value: 22,
            version: 2,
            updates: 2,
        },
        Entry {
            key: 3,
            value: 30,
            version: 0,
            updates: 0,
        },
        Entry {
            key: 5,
            value: 50,
            version: 9,
            updates: 1,
        },
    ];
    assert_eq!(entries, expected);
    // One Full error each, one refused write each.
    assert_eq!(m.stats().rejected, 2);
    assert_eq!(recorder.rejected_sum(), 2);
    m.stop().unwrap();
}

/// Longer than `put_all`'s look-ahead (it reads eight pairs ahead of the one it writes),
/// over several partitions: the pairs that fit are stored in order (the last write of a key
/// wins), and the error returns exactly the others, in order.
#[test]
fn a_long_put_all_past_capacity_returns_exactly_the_refused_pairs_in_order() {
    let sink: Sink<E> = Sink::new();
    let m = HashMap::<u32, u32>::builder()
        .partitions(3)
        .capacity(10)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .processor(sink.processor())
        .start()
        .unwrap();
    // Keys 0..60, each written twice in a row (a new key, then its overwrite).
    let pairs: Vec<(u32, u32)> = (0..60).flat_map(|k| [(k, k), (k, k + 1000)]).collect();
    let refused = match m.put_all(pairs.clone()) {
        Err(PushError::Full(refused)) => refused,
        other => panic!("expected Full, got {other:?}"),
    };
    // A pair is refused exactly when its key found its partition full: both of its
    // writes, then. What was stored is the rest, the overwrite winning.
    let stored: Vec<(u32, u32)> = pairs
        .iter()
        .filter(|pair| !refused.contains(pair))
        .copied()
        .collect();
    assert_eq!(stored.len() + refused.len(), pairs.len());
    let kept: Vec<u32> = stored.iter().step_by(2).map(|&(k, _)| k).collect();
    assert!(
        stored.chunks(2).all(|two| two[0].0 == two[1].0),
        "a key is stored with both of its writes or refused with both: {stored:?}"
    );
    assert_eq!(kept.len(), m.len());
    assert!(
        kept.len() <= 30,
        "at most 10 keys per partition: {}",
        kept.len()
    );
    // The refused pairs come back in the order they were given.
    let positions: Vec<usize> = refused
        .iter()
        .map(|pair| pairs.iter().position(|p| p == pair).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    m.flush().unwrap();
    let mut entries: Vec<(u32, u32)> = sink.items().iter().map(|e| (e.key, e.value)).collect();
    entries.sort_unstable();
    let want: Vec<(u32, u32)> = kept.iter().map(|&k| (k, k + 1000)).collect();
    assert_eq!(entries, want);
    assert_eq!(m.stats().rejected, 1, "one Full error, one refused write");
    m.stop().unwrap();
}

#[test]
fn capacity_is_per_partition_not_split() {
    let m = HashMap::<u32, u32>::builder()
        .partitions(3)
        .capacity(5)
        .processing_interval(NEVER)
        .processor(|_: Vec<E>| {})
        .start()
        .unwrap();
    let accepted = (0..100).filter(|&k| m.put(k, k).is_ok()).count();
    assert_eq!(accepted, 15, "5 keys in each of 3 partitions");
    assert_eq!(m.len(), 15);
    assert_eq!(m.stats().rejected, 85);
    m.stop().unwrap();
}

#[test]
fn capacity_under_contention_accepts_exactly_capacity_keys() {
    let sink: Sink<E> = Sink::new();
    let recorder = Recorder::new();
    let m = HashMap::<u32, u32>::builder()
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
            let m = m.clone();
            let fulls = Arc::clone(&fulls);
            s.spawn(move || {
                // Threads overlap on half of their keys: 3000 distinct keys in all.
                for i in 0..1000u32 {
                    let key = t * 500 + i;
                    match m.put(key, t) {
                        Ok(()) => {}
                        Err(PushError::Full(item)) => {
                            assert_eq!(item, (key, t));
                            fulls.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
            });
        }
    });
    assert_eq!(m.len(), 1000);
    m.stop().unwrap();
    assert_eq!(sink.count(), 1000);
    let fulls = fulls.load(Ordering::SeqCst) as u64;
    assert!(fulls >= 2000, "3000 distinct keys, room for 1000: {fulls}");
    assert_eq!(recorder.rejected_sum(), fulls);
    let stats = m.stats();
    assert_eq!(stats.rejected, fulls);
    assert_eq!(stats.processed, 1000);
}

#[test]
fn drain_threshold_counts_distinct_keys() {
    let sink: Sink<E> = Sink::new();
    let m = HashMap::<u32, u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .drain_threshold(50)
        // With no periodic check for an hour, only the crossing write can start the drain.
        .drain_check_interval(NEVER)
        .processor(sink.processor())
        .start()
        .unwrap();
    // Many writes over 49 keys: below the threshold, nothing drains.
    for i in 0..5000u32 {
        m.put(i % 49, i).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(sink.calls(), 0, "drained below the threshold");
    assert_eq!(m.len(), 49);
    // The 50th key drains, early, everything.
    m.put(49, 49).unwrap();
    assert!(
        wait_until(GENEROUS, || sink.count() == 50),
        "the crossing write did not trigger a drain"
    );
    assert_eq!(sink.calls(), 1);
    let mut keys: Vec<u32> = sink.items().iter().map(|e| e.key).collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..50).collect::<Vec<_>>());
    // A delete and a re-insert cross again only at the 50th live key; a trigger, not a cap.
    m.put_all((100..149).map(|k| (k, k))).unwrap();
    assert!(m.delete(&100));
    m.put(149, 149).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(sink.count(), 50, "49 live keys: no drain");
    m.put_all((150..400).map(|k| (k, k))).unwrap();
    assert!(wait_until(GENEROUS, || sink.count() > 50));
    m.stop().unwrap();
    assert_eq!(sink.count(), 50 + 299);
    assert_eq!(m.stats().processed, 50 + 299);
}

#[test]
fn drain_threshold_can_be_turned_on_by_update() {
    let sink: Sink<E> = Sink::new();
    let m = HashMap::<u32, u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processor(sink.processor())
        .start()
        .unwrap();
    m.put_all((0..20).map(|k| (k, k))).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(sink.count(), 0);
    m.update_options(
        OptionsUpdate::default()
            .drain_threshold(10)
            .drain_check_interval(Duration::from_millis(20)),
    )
    .unwrap();
    assert!(
        wait_until(GENEROUS, || sink.count() == 20),
        "the periodic check drains a partition past the new threshold"
    );
    m.update_options(OptionsUpdate::default().drain_threshold(None))
        .unwrap();
    m.put_all((0..20).map(|k| (k, k))).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(sink.count(), 20, "turned off");
    m.stop().unwrap();
    assert_eq!(sink.count(), 40);
}
