//! The `Queue<T>` write API and routing (SPEC §1, §7): push, push_many, push_keyed,
//! partition_by, sort_by_key, len/is_empty, routing by thread, handle traits, names, errors.

#![cfg(not(loom))]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{Ev, Recorder, Sink, NEVER};
use tidefall::{BatchSize, Error, PushError, Queue};

/// A one-partition queue that drains only on flush/stop.
fn one_partition<T: Clone + Send + 'static>(sink: &Sink<T>) -> Queue<T> {
    Queue::<T>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processor(sink.processor())
        .start()
        .unwrap()
}

#[test]
fn push_then_flush_delivers_every_item_in_push_order() {
    let sink = Sink::new();
    let q = one_partition(&sink);
    for i in 0..1000u32 {
        q.push(i).unwrap();
    }
    q.flush().unwrap();
    assert_eq!(sink.items(), (0..1000).collect::<Vec<_>>());
    // Order holds across ticks too.
    for i in 1000..1500u32 {
        q.push(i).unwrap();
    }
    q.flush().unwrap();
    for i in 1500..1600u32 {
        q.push(i).unwrap();
    }
    q.stop().unwrap();
    assert_eq!(sink.items(), (0..1600).collect::<Vec<_>>());
    let stats = q.stats();
    assert_eq!(stats.processed, 1600);
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.buffered, 0);
}

/// Push order across threads (SPEC §1): within a partition, an item pushed after another
/// thread's push (happens-before, here through a channel) is delivered after it, whichever
/// thread owns the partition's fast path.
#[test]
fn pushes_ordered_across_threads_reach_one_partition_in_that_order() {
    let sink = Sink::new();
    let q = one_partition(&sink);
    let mut next = 0u32;
    for round in 0..6 {
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        let first = q.clone();
        let second = q.clone();
        let start = next;
        let a = std::thread::spawn(move || {
            for i in start..start + 100 {
                first.push(i).unwrap();
            }
            tx.send(start + 100).unwrap();
        });
        let b = std::thread::spawn(move || {
            let from = rx.recv().unwrap();
            second.push_many(from..from + 50).unwrap();
            for i in from + 50..from + 100 {
                second.push(i).unwrap();
            }
        });
        a.join().unwrap();
        b.join().unwrap();
        q.push(start + 200).unwrap();
        next = start + 201;
        if round % 2 == 1 {
            q.flush().unwrap();
        }
    }
    q.stop().unwrap();
    let got = sink.items();
    let expected: Vec<u32> = (0..6)
        .flat_map(|round| round * 201..round * 201 + 201)
        .collect();
    assert_eq!(got, expected);
}

/// Pushes `from..from + 30` on the calling thread, ten each through `push`, `push_many`
/// and `push_slice`.
fn push_thirty(q: &Queue<u32>, from: u32) {
    for i in from..from + 10 {
        q.push(i).unwrap();
    }
    q.push_many(from + 10..from + 20).unwrap();
    let slice: Vec<u32> = (from + 20..from + 30).collect();
    q.push_slice(&slice).unwrap();
}

/// The owner's shortcut to its lane (`src/raw/shortcut.rs`) stops taking writes once a
/// second thread shares the partition: the owner's later pushes go after the other thread's.
#[test]
fn an_owner_whose_partition_was_shared_since_keeps_push_order() {
    let sink = Sink::new();
    let q = one_partition(&sink);
    push_thirty(&q, 0);
    let other = q.clone();
    std::thread::spawn(move || push_thirty(&other, 30))
        .join()
        .unwrap();
    push_thirty(&q, 60);
    q.flush().unwrap();
    push_thirty(&q, 90);
    q.stop().unwrap();
    assert_eq!(sink.items(), (0..120).collect::<Vec<_>>());
}

/// One thread pushing to two queues in turn: each delivers exactly its own items, in order.
#[test]
fn a_thread_alternating_between_queues_gives_each_only_its_own_items() {
    let (sink_a, sink_b) = (Sink::new(), Sink::new());
    let (a, b) = (one_partition(&sink_a), one_partition(&sink_b));
    for round in 0..40 {
        push_thirty(&a, round * 30);
        b.push(round).unwrap();
        push_thirty(&b, 10_000 + round * 30);
        a.push_slice(&[100_000 + round]).unwrap();
    }
    a.stop().unwrap();
    b.stop().unwrap();
    let expected_a: Vec<u32> = (0..40)
        .flat_map(|round| (round * 30..round * 30 + 30).chain([100_000 + round]))
        .collect();
    let expected_b: Vec<u32> = (0..40)
        .flat_map(|round| {
            [round]
                .into_iter()
                .chain(10_000 + round * 30..10_000 + round * 30 + 30)
        })
        .collect();
    assert_eq!(sink_a.items(), expected_a);
    assert_eq!(sink_b.items(), expected_b);
}

/// A queue started after another one was dropped (perhaps at the same address) is not
/// mistaken for it by a thread that pushed to the old one.
#[test]
fn a_queue_started_after_another_was_dropped_gets_only_its_own_items() {
    for round in 0..50 {
        let sink = Sink::new();
        let q = one_partition(&sink);
        push_thirty(&q, round * 30);
        q.stop().unwrap();
        drop(q);
        assert_eq!(
            sink.items(),
            (round * 30..round * 30 + 30).collect::<Vec<_>>()
        );
    }
}

#[test]
fn batches_are_cut_to_processing_batch_size_in_order() {
    let sink = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(10)
        .processor(sink.processor())
        .start()
        .unwrap();
    q.push_many(0..25).unwrap();
    q.flush().unwrap();
    let sizes: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(sink.items(), (0..25).collect::<Vec<_>>());
    let stats = q.stats();
    assert_eq!(stats.ticks, 1, "{stats:?}");
    assert_eq!(stats.batches, 3, "{stats:?}");
    assert_eq!(stats.processed, 25);
    q.stop().unwrap();
}

#[test]
fn default_batch_size_is_ten_items() {
    let sink = Sink::new();
    let q = one_partition(&sink);
    q.push_many(0..31u32).unwrap();
    q.flush().unwrap();
    let sizes: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 10, 1]);
    q.stop().unwrap();
}

#[test]
fn batch_size_from_usize() {
    assert_eq!(BatchSize::from(7), BatchSize::Items(7));
    let size: BatchSize = 3usize.into();
    assert_eq!(size, BatchSize::Items(3));
}

#[test]
fn push_many_accepts_everything_in_order_with_pushes_interleaved() {
    let sink = Sink::new();
    let q = one_partition(&sink);
    q.push(0u32).unwrap();
    q.push_many(1..100).unwrap();
    q.push(100).unwrap();
    q.push_many(Vec::new()).unwrap();
    q.push_many([101, 102, 103]).unwrap();
    assert_eq!(q.len(), 104);
    q.flush().unwrap();
    assert_eq!(sink.items(), (0..104).collect::<Vec<_>>());
    q.stop().unwrap();
}

/// `push_slice` (for `Copy` items) keeps order with the other writes, on the owner's lane,
/// on a shared partition, past `capacity` (the items not accepted come back, in order) and
/// after `stop` (all of them come back).
#[test]
fn push_slice_appends_in_order_and_returns_what_it_cannot_accept() {
    let sink = Sink::new();
    let q = one_partition(&sink);
    q.push(0u32).unwrap();
    q.push_slice(&(1..40).collect::<Vec<_>>()).unwrap();
    q.push_slice(&[]).unwrap();
    q.push_many([40, 41]).unwrap();
    // A second thread makes the partition shared: its slice goes through the segments.
    std::thread::scope(|s| {
        s.spawn(|| q.push_slice(&[42, 43, 44]).unwrap());
    });
    q.push_slice(&[45]).unwrap();
    q.flush().unwrap();
    assert_eq!(sink.items(), (0..46).collect::<Vec<_>>());
    q.stop().unwrap();
    match q.push_slice(&[7, 8, 9]) {
        Err(PushError::Stopped(back)) => assert_eq!(back, vec![7, 8, 9]),
        other => panic!("expected Stopped with every item, got {other:?}"),
    }
    assert_eq!(q.stats().processed, 46);

    let capped = Queue::<u32>::builder()
        .partitions(1)
        .capacity(4)
        .processing_interval(NEVER)
        .processor(|_: Vec<u32>| {})
        .start()
        .unwrap();
    match capped.push_slice(&[1, 2, 3, 4, 5, 6]) {
        Err(PushError::Full(rest)) => assert_eq!(rest, vec![5, 6]),
        other => panic!("expected Full with the rest, got {other:?}"),
    }
    assert_eq!(capped.len(), 4);
    capped.stop().unwrap();
    assert_eq!(capped.stats().processed, 4);
}

/// `push_many` pulls the caller's iterator a chunk at a time: an iterator that panics part
/// way leaves the items of the chunks before the panic accepted, drops the rest with the
/// panic, and the queue keeps its order and keeps working.
#[test]
fn push_many_with_a_panicking_iterator_keeps_a_prefix_and_the_queue_working() {
    let sink = Sink::new();
    let q = one_partition(&sink);
    q.push(0u32).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        q.push_many((1..200u32).inspect(|&i| {
            assert!(i != 150, "the caller's iterator fails at 150");
        }))
    }));
    assert!(panicked.is_err());
    let accepted = q.len();
    assert!(
        (1..=150).contains(&accepted),
        "{accepted} items buffered: a prefix of 1..150 and the first push"
    );
    q.push_many([1000, 1001]).unwrap();
    q.flush().unwrap();
    let mut expected: Vec<u32> = (0..accepted as u32).collect();
    expected.extend([1000, 1001]);
    assert_eq!(sink.items(), expected);
    q.stop().unwrap();
}

/// `push_many` racing `stop` from another thread: every item of every call is processed or
/// given back in the error, exactly once, and a call's given-back items are a suffix of it.
#[test]
fn push_many_racing_stop_processes_or_returns_every_item_once() {
    for round in 0..20u32 {
        let sink = Sink::new();
        let q = Queue::<u32>::builder()
            .partitions(1)
            .processing_interval(std::time::Duration::from_millis(1))
            .processor(sink.processor())
            .start()
            .unwrap();
        let returned = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let mut returned = Vec::new();
                // Calls go on until three have been refused: the stop lands mid-stream.
                let mut refusals = 0;
                let mut call = 0u32;
                while refusals < 3 {
                    let items: Vec<u32> = (call * 100..call * 100 + 100).collect();
                    call += 1;
                    if let Err(PushError::Stopped(back)) = q.push_many(items.clone()) {
                        assert_eq!(back[..], items[items.len() - back.len()..], "not a suffix");
                        returned.extend(back);
                        refusals += 1;
                    }
                }
                (call, returned)
            });
            std::thread::sleep(std::time::Duration::from_micros(u64::from(round) * 50));
            q.stop().unwrap();
            writer.join().unwrap()
        });
        let (calls, returned) = returned;
        let processed = sink.items();
        let mut all: Vec<u32> = processed.iter().chain(returned.iter()).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..calls * 100).collect::<Vec<_>>(), "round {round}");
        assert!(
            processed.windows(2).all(|w| w[0] < w[1]),
            "round {round}: out of order"
        );
    }
}

#[test]
fn push_many_past_capacity_returns_exactly_the_unaccepted_items() {
    let sink = Sink::new();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .capacity(5)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    q.push(100).unwrap();
    q.push(101).unwrap();
    match q.push_many(0..10) {
        Err(PushError::Full(rest)) => assert_eq!(rest, (3..10).collect::<Vec<_>>()),
        other => panic!("expected Full with the rest, got {other:?}"),
    }
    assert_eq!(q.len(), 5);
    // Completely full: the whole input comes back.
    match q.push_many([7, 8]) {
        Err(PushError::Full(rest)) => assert_eq!(rest, vec![7, 8]),
        other => panic!("expected Full, got {other:?}"),
    }
    q.flush().unwrap();
    assert_eq!(sink.items(), vec![100, 101, 0, 1, 2]);
    // The tick made room again.
    q.push_many(20..25).unwrap();
    assert_eq!(q.push(25).unwrap_err().into_inner(), 25);
    q.stop().unwrap();
    assert_eq!(sink.items(), vec![100, 101, 0, 1, 2, 20, 21, 22, 23, 24]);
    let stats = q.stats();
    assert_eq!(stats.processed, 10);
    assert_eq!(stats.buffered, 0);
    // Telemetry and stats agree on the refusals.
    assert!(stats.rejected > 0);
    assert_eq!(recorder.rejected_sum(), stats.rejected);
}

#[test]
fn push_many_with_partition_by_past_capacity_returns_the_unaccepted_in_order() {
    let sink = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .capacity(4)
        .partition_by(|x: &u32| *x % 3)
        .processing_interval(NEVER)
        .processor(sink.processor())
        .start()
        .unwrap();
    match q.push_many(10..20) {
        Err(PushError::Full(rest)) => assert_eq!(rest, (14..20).collect::<Vec<_>>()),
        other => panic!("expected Full with the rest, got {other:?}"),
    }
    q.stop().unwrap();
    assert_eq!(sink.items(), vec![10, 11, 12, 13]);
}

#[test]
fn push_errors_after_stop_carry_the_items_back() {
    let sink = Sink::new();
    let q = one_partition(&sink);
    q.push(1u32).unwrap();
    q.stop().unwrap();
    match q.push(2) {
        Err(PushError::Stopped(item)) => assert_eq!(item, 2),
        other => panic!("expected Stopped, got {other:?}"),
    }
    match q.push_many(vec![3, 4, 5]) {
        Err(PushError::Stopped(items)) => assert_eq!(items, vec![3, 4, 5]),
        other => panic!("expected Stopped, got {other:?}"),
    }
    match q.push_keyed("k", 6) {
        Err(PushError::Stopped(item)) => assert_eq!(item, 6),
        other => panic!("expected Stopped, got {other:?}"),
    }
    match q.push_slice(&[7, 8]) {
        Err(PushError::Stopped(items)) => assert_eq!(items, vec![7, 8]),
        other => panic!("expected Stopped, got {other:?}"),
    }
    assert_eq!(sink.items(), vec![1]);
}

#[test]
fn push_keyed_equal_keys_share_a_partition_and_keep_order() {
    let sink: Sink<(u32, u32)> = Sink::new();
    let q = Queue::<(u32, u32)>::builder()
        .partitions(8)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .processor(sink.processor())
        .start()
        .unwrap();
    // Keys pushed from several threads: routing by thread would scatter them.
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let q = q.clone();
            s.spawn(move || {
                for i in 0..200u32 {
                    let key = i % 20;
                    // `push_keyed` takes unsized keys too.
                    let name = format!("key-{key}");
                    q.push_keyed(name.as_str(), (key, t * 1000 + i)).unwrap();
                }
            });
        }
    });
    q.flush().unwrap();
    // BatchSize::Table: one batch per non-empty partition.
    let batches = sink.batches();
    assert!(batches.len() > 1, "20 keys over 8 partitions used one");
    let mut home: HashMap<u32, usize> = HashMap::new();
    for (b, batch) in batches.iter().enumerate() {
        for &(key, _) in batch {
            assert_eq!(
                *home.entry(key).or_insert(b),
                b,
                "key {key} in two partitions"
            );
        }
        // Per key and producer thread: push order.
        let mut last: HashMap<(u32, u32), u32> = HashMap::new();
        for &(key, v) in batch {
            let (t, i) = (v / 1000, v % 1000);
            if let Some(prev) = last.insert((key, t), i) {
                assert!(prev < i, "key {key} thread {t}: {prev} before {i}");
            }
        }
    }
    assert_eq!(home.len(), 20);
    assert_eq!(sink.count(), 800);
    q.stop().unwrap();
}

#[test]
fn partition_by_routes_by_the_items_key() {
    let sink: Sink<(u32, u32, u32)> = Sink::new();
    let q = Queue::<(u32, u32, u32)>::builder()
        .partitions(8)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .partition_by(|&(key, _, _): &(u32, u32, u32)| key)
        .processor(sink.processor())
        .start()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let q = q.clone();
            s.spawn(move || {
                for i in 0..300u32 {
                    if i % 2 == 0 {
                        q.push((i % 16, t, i)).unwrap();
                    } else {
                        q.push_many([(i % 16, t, i)]).unwrap();
                    }
                }
            });
        }
    });
    q.flush().unwrap();
    let batches = sink.batches();
    assert!(batches.len() > 1, "16 keys over 8 partitions used one");
    let mut home: HashMap<u32, usize> = HashMap::new();
    for (b, batch) in batches.iter().enumerate() {
        let mut last: HashMap<(u32, u32), u32> = HashMap::new();
        for &(key, t, i) in batch {
            assert_eq!(
                *home.entry(key).or_insert(b),
                b,
                "key {key} in two partitions"
            );
            if let Some(prev) = last.insert((key, t), i) {
                assert!(prev < i, "key {key} thread {t}: {prev} before {i}");
            }
        }
    }
    assert_eq!(home.len(), 16);
    assert_eq!(sink.count(), 1200);
    q.stop().unwrap();
}

#[test]
fn sort_by_key_sorts_each_tick_stably_before_batching() {
    let sink: Sink<(u32, u32)> = Sink::new();
    let q = Queue::<(u32, u32)>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(7)
        .sort_by_key(|&(key, _): &(u32, u32)| std::cmp::Reverse(key))
        .processor(sink.processor())
        .start()
        .unwrap();
    let items: Vec<(u32, u32)> = (0..100).map(|i| ((i * 7) % 5, i)).collect();
    q.push_many(items.clone()).unwrap();
    q.flush().unwrap();
    let mut expected = items.clone();
    expected.sort_by_key(|&(key, _)| std::cmp::Reverse(key)); // stable
    assert_eq!(sink.items(), expected);
    // Sorted before batching: the batches are consecutive runs of the sorted tick.
    let sizes: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2]);

    // A second tick is sorted on its own, after the first.
    let more: Vec<(u32, u32)> = (100..110).map(|i| (i % 2, i)).collect();
    q.push_many(more.clone()).unwrap();
    q.stop().unwrap();
    let mut expected_more = more;
    expected_more.sort_by_key(|&(key, _)| std::cmp::Reverse(key));
    expected.extend(expected_more);
    assert_eq!(sink.items(), expected);
}

#[test]
fn sort_by_key_that_panics_loses_nothing() {
    let sink: Sink<u32> = Sink::new();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .sort_by_key(|&x: &u32| {
            if x == 37 {
                panic!("no key for 37");
            }
            x
        })
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    let items: Vec<u32> = (0..100).rev().collect();
    q.push_many(items).unwrap();
    q.flush().unwrap();
    let mut got = sink.items();
    assert_eq!(got.len(), 100, "sorting dropped or duplicated items");
    got.sort_unstable();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    // The buffer keeps working, and keeps sorting.
    q.push_many([5, 3, 4]).unwrap();
    q.stop().unwrap();
    assert_eq!(sink.batches().last().unwrap(), &vec![3, 4, 5]);
    let stats = q.stats();
    assert_eq!(stats.processed + stats.failed, 103, "{stats:?}");
    assert_eq!(stats.buffered, 0);
}

#[test]
fn len_and_is_empty_count_items_not_yet_taken() {
    let sink: Sink<u32> = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(4)
        .processing_interval(NEVER)
        .processor(sink.processor())
        .start()
        .unwrap();
    assert!(q.is_empty());
    assert_eq!(q.len(), 0);
    for i in 0..10 {
        q.push(i).unwrap();
    }
    assert_eq!(q.len(), 10);
    assert!(!q.is_empty());
    std::thread::scope(|s| {
        for _ in 0..3 {
            let q = q.clone();
            s.spawn(move || q.push_many(0..5).unwrap());
        }
    });
    assert_eq!(q.len(), 25);
    assert_eq!(q.stats().buffered, 25);
    q.flush().unwrap();
    assert_eq!(q.len(), 0);
    assert!(q.is_empty());
    assert_eq!(sink.count(), 25);
    q.stop().unwrap();
}

#[test]
fn one_thread_with_many_partitions_keeps_its_push_order() {
    let sink: Sink<u32> = Sink::new();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(8)
        .processing_interval(NEVER)
        .processing_batch_size(7)
        .observer(recorder.observer())
        .processor(sink.processor())
        .start()
        .unwrap();
    let mut next = 0u32;
    for round in 0..5 {
        for _ in 0..1000 {
            q.push(next).unwrap();
            next += 1;
        }
        q.push_many(next..next + 100).unwrap();
        next += 100;
        if round % 2 == 0 {
            q.flush().unwrap();
        }
    }
    q.stop().unwrap();
    assert_eq!(sink.items(), (0..next).collect::<Vec<_>>());
    // Everything went through one partition.
    let used: HashSet<usize> = recorder
        .partitions_of(|e| matches!(e, Ev::ProcessingStop { size, .. } if *size > 0))
        .into_iter()
        .collect();
    assert_eq!(used.len(), 1, "one thread used partitions {used:?}");
}

#[test]
fn each_producer_thread_keeps_to_one_partition() {
    let sink: Sink<(u32, u32)> = Sink::new();
    let q = Queue::<(u32, u32)>::builder()
        .partitions(4)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .processor(sink.processor())
        .start()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..6u32 {
            let q = q.clone();
            s.spawn(move || {
                for i in 0..500u32 {
                    q.push((t, i)).unwrap();
                }
            });
        }
    });
    q.flush().unwrap();
    let batches = sink.batches();
    assert!(batches.len() <= 4);
    for t in 0..6u32 {
        let holding: Vec<&Vec<(u32, u32)>> = batches
            .iter()
            .filter(|b| b.iter().any(|&(bt, _)| bt == t))
            .collect();
        assert_eq!(holding.len(), 1, "thread {t} spread over partitions");
        let mine: Vec<u32> = holding[0]
            .iter()
            .filter(|&&(bt, _)| bt == t)
            .map(|&(_, i)| i)
            .collect();
        assert_eq!(mine, (0..500).collect::<Vec<_>>(), "thread {t}");
    }
    q.stop().unwrap();
}

#[test]
fn handles_are_clone_send_sync_and_share_one_buffer() {
    fn assert_handle<H: Clone + Send + Sync + 'static>() {}
    assert_handle::<Queue<u32>>();
    assert_handle::<Queue<String>>();
    // Items need only be Send.
    assert_handle::<Queue<std::cell::Cell<u32>>>();
    assert_handle::<Queue<std::sync::mpsc::Sender<u32>>>();

    let sink: Sink<u32> = Sink::new();
    let q = one_partition(&sink);
    let q2 = q.clone();
    assert_eq!(q.name(), q2.name());
    q2.push(1).unwrap();
    assert_eq!(q.len(), 1);
    std::thread::spawn({
        let q = q.clone();
        move || q.push(2).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(q2.len(), 2);
    // stop on one clone stops the buffer for all.
    q2.stop().unwrap();
    assert_eq!(sink.count(), 2);
    assert!(matches!(q.push(3), Err(PushError::Stopped(3))));
    assert_eq!(q.stop(), Ok(()));
}

#[test]
fn names_are_given_or_generated_and_reach_telemetry() {
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .name("events")
        .partitions(2)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(|_: Vec<u32>| {})
        .start()
        .unwrap();
    assert_eq!(q.name(), "events");
    q.push(1).unwrap();
    q.stop().unwrap();
    let recorded = recorder.recorded();
    assert!(!recorded.is_empty());
    assert!(
        recorded.iter().all(|r| r.buffer == "events"),
        "{recorded:?}"
    );

    let a = Queue::<u32>::builder()
        .processing_interval(NEVER)
        .processor(|_: Vec<u32>| {})
        .start()
        .unwrap();
    let b = Queue::<u32>::builder()
        .processing_interval(NEVER)
        .processor(|_: Vec<u32>| {})
        .start()
        .unwrap();
    for name in [a.name(), b.name()] {
        let n = name
            .strip_prefix("tidefall-")
            .unwrap_or_else(|| panic!("generated name {name:?}"));
        assert!(
            !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()),
            "generated name {name:?}"
        );
    }
    assert_ne!(a.name(), b.name());
    a.stop().unwrap();
    b.stop().unwrap();
}

#[test]
fn processors_may_return_unit_or_result() {
    let ok = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ok);
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processor(move |batch: Vec<u32>| -> Result<(), std::io::Error> {
            counter.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        })
        .start()
        .unwrap();
    q.push_many(0..15).unwrap();
    q.stop().unwrap();
    assert_eq!(ok.load(Ordering::SeqCst), 15);
    assert_eq!(q.stats().processed, 15);

    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let sink = Arc::clone(&seen);
    let q = Queue::<(String, u32)>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processor(move |batch: Vec<(String, u32)>| -> Result<(), String> {
            sink.lock().unwrap().extend(batch);
            Ok(())
        })
        .start()
        .unwrap();
    q.push(("a".into(), 1)).unwrap();
    q.stop().unwrap();
    assert_eq!(seen.lock().unwrap().get("a"), Some(&1));
}

#[test]
fn errors_implement_debug_display_and_error() {
    fn is_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}

    let full: PushError<u32> = PushError::Full(7);
    let stopped: PushError<u32> = PushError::Stopped(8);
    is_error(&full);
    assert!(!full.to_string().is_empty());
    assert!(!format!("{stopped:?}").is_empty());
    assert_ne!(full.to_string(), stopped.to_string());
    assert_eq!(full.into_inner(), 7);
    assert_eq!(stopped.into_inner(), 8);
    let many: PushError<Vec<u32>> = PushError::Full(vec![1, 2]);
    assert_eq!(many.into_inner(), vec![1, 2]);
    let boxed: Box<dyn std::error::Error> = Box::new(PushError::Stopped(1u8));
    assert!(!boxed.to_string().is_empty());

    for e in [
        Error::MissingProcessor,
        Error::Timeout,
        Error::InvalidOption {
            option: "partitions",
            reason: "must be at least 1".into(),
        },
    ] {
        is_error(&e);
        assert!(!e.to_string().is_empty());
        assert!(!format!("{e:?}").is_empty());
    }
    let invalid = Error::InvalidOption {
        option: "partitions",
        reason: "r".into(),
    };
    assert!(invalid.to_string().contains("partitions"));
}

#[test]
fn a_successful_tick_reports_start_then_stop_with_its_size() {
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .name("seq")
        .partitions(1)
        .processing_interval(NEVER)
        .observer(recorder.observer())
        .processor(|_: Vec<u32>| {})
        .start()
        .unwrap();
    q.push_many(0..25).unwrap();
    q.flush().unwrap();
    assert_eq!(
        recorder.events(),
        vec![
            Ev::PartitionStart {
                buffer: "seq".into(),
                partition: 0
            },
            Ev::ProcessingStart { partition: 0 },
            Ev::BatchStop {
                partition: 0,
                size: 10,
                processed: true
            },
            Ev::BatchStop {
                partition: 0,
                size: 10,
                processed: true
            },
            Ev::BatchStop {
                partition: 0,
                size: 5,
                processed: true
            },
            Ev::ProcessingStop {
                partition: 0,
                size: 25
            },
        ]
    );
    q.stop().unwrap();
    let events = recorder.events();
    assert_eq!(
        events.last(),
        Some(&Ev::PartitionStop {
            buffer: "seq".into(),
            partition: 0
        })
    );
    // No failure, no rejection, and no cycle of size 0 handed anything.
    assert!(events.iter().all(|e| !matches!(
        e,
        Ev::ProcessingFailed { .. } | Ev::ProcessingException { .. } | Ev::Rejected { .. }
    )));
}
