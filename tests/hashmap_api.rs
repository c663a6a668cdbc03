//! The `HashMap<K, V, S>` write and read API (SPEC §1, §7): put, put_all, put_newer,
//! put_all_newer, get, delete, len/is_empty, routing by key hash, the hasher, handle traits,
//! names, errors after stop.

#![cfg(not(loom))]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{Ev, Recorder, Sink, NEVER};
use tidefall::{monotonic_version, BatchSize, Entry, HashMap, HashMapBuilder, PushError};

type E = Entry<u32, String>;

fn entry(key: u32, value: &str, version: u64, updates: u64) -> E {
    Entry {
        key,
        value: value.to_owned(),
        version,
        updates,
    }
}

fn builder(sink: &Sink<E>) -> HashMapBuilder<u32, String, tidefall::DefaultHashBuilder> {
    HashMap::<u32, String>::builder()
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .processor(sink.processor())
}

/// A map that drains only on flush/stop.
fn map(sink: &Sink<E>, partitions: usize) -> HashMap<u32, String> {
    builder(sink).partitions(partitions).start().unwrap()
}

/// The entries delivered so far, sorted by key.
fn sorted(sink: &Sink<E>) -> Vec<E> {
    let mut entries = sink.items();
    entries.sort_by_key(|e| e.key);
    entries
}

#[test]
fn last_put_wins_and_each_key_is_delivered_once() {
    let sink = Sink::new();
    let m = map(&sink, 3);
    for round in 0..5 {
        for k in 0..100u32 {
            m.put(k, format!("{k}/{round}")).unwrap();
        }
    }
    assert_eq!(m.len(), 100);
    m.flush().unwrap();
    let expected: Vec<E> = (0..100)
        .map(|k| entry(k, &format!("{k}/4"), 0, 0))
        .collect();
    assert_eq!(sorted(&sink), expected);
    let stats = m.stats();
    assert_eq!(stats.processed, 100, "an entry per key, not per write");
    assert_eq!(stats.buffered, 0);
    m.stop().unwrap();
}

#[test]
fn put_resets_version_and_updates() {
    let sink = Sink::new();
    let m = map(&sink, 1);
    assert_eq!(m.put_newer(1, "a".into(), 5), Ok(true));
    assert_eq!(m.put_newer(1, "b".into(), 6), Ok(true));
    m.put(1, "c".into()).unwrap();
    // After a put the stored version is 0: any positive version is newer.
    assert_eq!(m.put_newer(2, "x".into(), 9), Ok(true));
    m.put(2, "y".into()).unwrap();
    assert_eq!(m.put_newer(2, "z".into(), 1), Ok(true));
    m.flush().unwrap();
    assert_eq!(
        sorted(&sink),
        vec![entry(1, "c", 0, 0), entry(2, "z", 1, 1)]
    );
    m.stop().unwrap();
}

#[test]
fn put_newer_stores_only_strictly_newer_versions() {
    let sink = Sink::new();
    let m = map(&sink, 2);
    // Absent: stores, whatever the version (0 included), updates 0.
    assert_eq!(m.put_newer(1, "v10".into(), 10), Ok(true));
    assert_eq!(m.put_newer(2, "v0".into(), 0), Ok(true));
    // Equal or older: ignored.
    assert_eq!(m.put_newer(1, "v10 again".into(), 10), Ok(false));
    assert_eq!(m.put_newer(1, "v3".into(), 3), Ok(false));
    assert_eq!(m.put_newer(2, "v0 again".into(), 0), Ok(false));
    assert_eq!(m.get(&1), Some("v10".to_owned()));
    // Newer: replaces, updates + 1 each time.
    assert_eq!(m.put_newer(1, "v11".into(), 11), Ok(true));
    assert_eq!(m.put_newer(1, "v20".into(), 20), Ok(true));
    assert_eq!(m.put_newer(1, "v15".into(), 15), Ok(false));
    assert_eq!(m.put_newer(2, "v1".into(), 1), Ok(true));
    assert_eq!(m.get(&1), Some("v20".to_owned()));
    m.flush().unwrap();
    assert_eq!(
        sorted(&sink),
        vec![entry(1, "v20", 20, 2), entry(2, "v1", 1, 1)]
    );
    m.stop().unwrap();
}

#[test]
fn put_newer_compares_with_the_current_tick_only() {
    let sink = Sink::new();
    let m = map(&sink, 1);
    assert_eq!(m.put_newer(1, "a".into(), 100), Ok(true));
    assert_eq!(m.put_newer(1, "b".into(), 200), Ok(true));
    // After a delete, an older version stores, with updates 0.
    assert!(m.delete(&1));
    assert_eq!(m.put_newer(1, "c".into(), 5), Ok(true));
    assert_eq!(m.put_newer(2, "d".into(), 100), Ok(true));
    m.flush().unwrap();
    assert_eq!(
        sorted(&sink),
        vec![entry(1, "c", 5, 0), entry(2, "d", 100, 0)]
    );
    // After a drain, too.
    assert_eq!(m.put_newer(2, "e".into(), 1), Ok(true));
    m.stop().unwrap();
    assert_eq!(sink.items().last(), Some(&entry(2, "e", 1, 0)));
    assert_eq!(sink.count(), 3);
}

#[test]
fn get_sees_only_the_current_tick() {
    let sink = Sink::new();
    let m = map(&sink, 2);
    assert_eq!(m.get(&1), None);
    m.put(1, "one".into()).unwrap();
    assert_eq!(m.get(&1), Some("one".to_owned()));
    m.put(1, "uno".into()).unwrap();
    assert_eq!(m.get(&1), Some("uno".to_owned()));
    m.flush().unwrap();
    assert_eq!(m.get(&1), None, "handed to the processor: gone");
    assert_eq!(sorted(&sink), vec![entry(1, "uno", 0, 0)]);
    m.stop().unwrap();
}

#[test]
fn get_and_delete_take_borrowed_keys() {
    let sink: Sink<Entry<String, u32>> = Sink::new();
    let m = HashMap::<String, u32>::builder()
        .processing_interval(NEVER)
        .processor(sink.processor())
        .start()
        .unwrap();
    m.put("alpha".to_owned(), 1).unwrap();
    m.put("beta".to_owned(), 2).unwrap();
    assert_eq!(m.get("alpha"), Some(1));
    assert_eq!(m.get("gamma"), None);
    assert!(m.delete("beta"));
    assert!(!m.delete("beta"));
    m.stop().unwrap();
    let keys: Vec<String> = sink.items().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, vec!["alpha".to_owned()]);
}

#[test]
fn delete_removes_the_key_from_the_tick() {
    let sink = Sink::new();
    let m = map(&sink, 2);
    for k in 0..10u32 {
        m.put(k, k.to_string()).unwrap();
    }
    for k in (0..10u32).step_by(2) {
        assert!(m.delete(&k), "key {k}");
    }
    assert!(!m.delete(&0), "already deleted");
    assert!(!m.delete(&42), "never written");
    assert_eq!(m.len(), 5);
    assert_eq!(m.get(&2), None);
    // A deleted key can be written again in the same tick.
    m.put(4, "four".into()).unwrap();
    m.flush().unwrap();
    let keys: Vec<u32> = sorted(&sink).iter().map(|e| e.key).collect();
    assert_eq!(keys, vec![1, 3, 4, 5, 7, 9]);
    assert!(!m.delete(&1), "handed to the processor");
    let stats = m.stats();
    assert_eq!(stats.processed, 6, "deleted keys count for nothing");
    assert_eq!(stats.buffered, 0);
    m.stop().unwrap();
}

#[test]
fn len_counts_distinct_keys_in_the_current_tick() {
    let sink = Sink::new();
    let m = map(&sink, 4);
    assert!(m.is_empty());
    assert_eq!(m.len(), 0);
    for i in 0..1000u32 {
        m.put(i % 37, i.to_string()).unwrap();
    }
    assert_eq!(m.len(), 37);
    assert!(!m.is_empty());
    assert_eq!(m.stats().buffered, 37);
    m.delete(&0);
    assert_eq!(m.len(), 36);
    m.flush().unwrap();
    assert_eq!(m.len(), 0);
    assert!(m.is_empty());
    m.stop().unwrap();
}

#[test]
fn put_all_and_put_all_newer_write_in_order() {
    let sink = Sink::new();
    let m = map(&sink, 3);
    m.put_all((0..20u32).map(|k| (k % 10, format!("p{k}"))))
        .unwrap();
    assert_eq!(m.len(), 10);
    let stored = m
        .put_all_newer([
            (0, "n5".to_owned(), 5),
            (0, "n4".to_owned(), 4), // older than 5: ignored
            (0, "n6".to_owned(), 6),
            (1, "n0".to_owned(), 0), // equal to put's 0: ignored
            (100, "fresh".to_owned(), 0),
        ])
        .unwrap();
    assert_eq!(stored, 3);
    assert_eq!(m.put_all_newer(Vec::new()), Ok(0));
    m.put_all(Vec::new()).unwrap();
    m.flush().unwrap();
    let mut expected: Vec<E> = (2..10)
        .map(|k| entry(k, &format!("p{}", k + 10), 0, 0))
        .collect();
    expected.insert(0, entry(1, "p11", 0, 0));
    expected.insert(0, entry(0, "n6", 6, 2));
    expected.push(entry(100, "fresh", 0, 0));
    assert_eq!(sorted(&sink), expected);
    m.stop().unwrap();
}

#[test]
fn writes_after_stop_return_their_items() {
    let sink = Sink::new();
    let m = map(&sink, 2);
    m.put(1, "kept".into()).unwrap();
    m.stop().unwrap();
    assert_eq!(sorted(&sink), vec![entry(1, "kept", 0, 0)]);
    assert_eq!(
        m.put(2, "late".into()),
        Err(PushError::Stopped((2, "late".to_owned())))
    );
    assert_eq!(
        m.put_newer(2, "late".into(), 9),
        Err(PushError::Stopped((2, "late".to_owned())))
    );
    let all = vec![(3, "a".to_owned()), (4, "b".to_owned())];
    assert_eq!(m.put_all(all.clone()), Err(PushError::Stopped(all)));
    let all_newer = vec![(3, "a".to_owned(), 1), (4, "b".to_owned(), 2)];
    assert_eq!(
        m.put_all_newer(all_newer.clone()),
        Err(PushError::Stopped(all_newer))
    );
    assert_eq!(m.get(&1), None);
    assert!(!m.delete(&1));
    assert_eq!(m.stats().rejected, 0, "Stopped is no capacity refusal");
    assert_eq!(sink.count(), 1);
    let error = m.put(5, "x".into()).unwrap_err();
    assert_eq!(error.to_string(), "the buffer is stopped");
    assert_eq!(error.into_inner(), (5, "x".to_owned()));
}

#[test]
fn routing_by_key_hash_coalesces_across_threads_and_partitions() {
    let sink = Sink::new();
    let m = map(&sink, 4);
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let m = m.clone();
            s.spawn(move || {
                for i in 0..2000u32 {
                    m.put(i % 50, format!("t{t}")).unwrap();
                }
            });
        }
    });
    assert_eq!(m.len(), 50);
    m.flush().unwrap();
    let entries = sorted(&sink);
    assert_eq!(
        entries.iter().map(|e| e.key).collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    assert!(entries.iter().all(|e| e.value.starts_with('t')));
    m.stop().unwrap();
}

#[test]
fn table_batch_size_makes_one_call_per_non_empty_partition() {
    let sink = Sink::new();
    let recorder = Recorder::new();
    let m = builder(&sink)
        .partitions(4)
        .observer(recorder.observer())
        .start()
        .unwrap();
    m.put_all((0..400u32).map(|k| (k, k.to_string()))).unwrap();
    m.flush().unwrap();
    let sizes: Vec<usize> = recorder
        .events()
        .iter()
        .filter_map(|e| match e {
            Ev::ProcessingStop { size, .. } => Some(*size),
            _ => None,
        })
        .collect();
    assert_eq!(sink.calls(), sizes.len(), "one call per cycle");
    assert!(
        sizes.len() >= 2,
        "400 keys spread over partitions: {sizes:?}"
    );
    let mut batch_lens: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    let mut sizes = sizes;
    batch_lens.sort_unstable();
    sizes.sort_unstable();
    assert_eq!(batch_lens, sizes);
    assert_eq!(sink.count(), 400);
    // One key: one call.
    m.put(7, "x".into()).unwrap();
    m.flush().unwrap();
    assert_eq!(sink.batches().last().map(Vec::len), Some(1));
    m.stop().unwrap();
}

#[test]
fn items_batch_size_cuts_batches() {
    let sink = Sink::new();
    let m = HashMap::<u32, String>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(7)
        .processor(sink.processor())
        .start()
        .unwrap();
    m.put_all((0..50u32).map(|k| (k, String::new()))).unwrap();
    m.flush().unwrap();
    let lens: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    assert_eq!(lens, vec![7, 7, 7, 7, 7, 7, 7, 1]);
    assert_eq!(m.stats().batches, 8);
    m.stop().unwrap();
}

/// Counts the hashers it builds (one per hash computed) and hashes like std's SipHash.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>, std::hash::RandomState);

impl BuildHasher for Counting {
    type Hasher = std::hash::DefaultHasher;
    fn build_hasher(&self) -> Self::Hasher {
        self.0.fetch_add(1, Ordering::Relaxed);
        self.1.build_hasher()
    }
}

#[test]
fn a_custom_hasher_is_used_once_per_operation_and_once_per_moved_key() {
    let sink = Sink::new();
    let hasher = Counting::default();
    let calls = Arc::clone(&hasher.0);
    let m: HashMap<u32, String, Counting> =
        builder(&sink).partitions(3).hasher(hasher).start().unwrap();
    for k in 0..100u32 {
        m.put(k, k.to_string()).unwrap();
    }
    // A hash per put, and one per key a growing table moved: a partition's table of 16 slots
    // grows past 12 keys, 24 and 48, moving the keys it holds each time, so that 100 keys
    // take fewer than 200 moves however the three partitions share them.
    let puts = calls.load(Ordering::Relaxed);
    assert!(
        (100..=300).contains(&puts),
        "{puts} hashes for 100 new keys"
    );
    assert_eq!(m.put_newer(5, "new".into(), 1), Ok(true));
    assert_eq!(m.get(&5), Some("new".to_owned()));
    assert!(m.delete(&6));
    assert_eq!(
        calls.load(Ordering::Relaxed) - puts,
        3,
        "one hash per operation on a stored key"
    );
    m.stop().unwrap();
    assert_eq!(sink.count(), 99);
}

/// Hashes every key to the same value: a hasher is the user's to pick, and a bad one costs
/// speed, never correctness.
#[derive(Clone, Default)]
struct Constant;

impl Hasher for Constant {
    fn finish(&self) -> u64 {
        0x9E37_79B9_7F4A_7C15
    }
    fn write(&mut self, _: &[u8]) {}
}

impl BuildHasher for Constant {
    type Hasher = Constant;
    fn build_hasher(&self) -> Constant {
        Constant
    }
}

#[test]
fn colliding_keys_stay_distinct() {
    let sink = Sink::new();
    let m: HashMap<u32, String, Constant> = builder(&sink)
        .partitions(3)
        .hasher(Constant)
        .start()
        .unwrap();
    for round in 0..3 {
        for k in 0..8u32 {
            m.put(k, format!("{k}/{round}")).unwrap();
        }
    }
    assert_eq!(m.len(), 8);
    assert_eq!(m.get(&3), Some("3/2".to_owned()));
    assert!(m.delete(&3));
    assert_eq!(m.get(&3), None);
    assert_eq!(m.get(&4), Some("4/2".to_owned()));
    m.stop().unwrap();
    let expected: Vec<E> = (0..8)
        .filter(|&k| k != 3)
        .map(|k| entry(k, &format!("{k}/2"), 0, 0))
        .collect();
    assert_eq!(sorted(&sink), expected);
    assert_eq!(sink.calls(), 1, "keys hashed alike share a partition");
}

#[test]
fn handles_are_clone_send_sync_and_share_one_buffer() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug>() {}
    assert_traits::<HashMap<u32, String>>();
    assert_traits::<HashMap<String, Vec<u8>, std::hash::RandomState>>();
    // Values need only be `Send`.
    assert_traits::<HashMap<u32, std::cell::Cell<u32>>>();

    let sink = Sink::new();
    let m = builder(&sink)
        .name("shared-map")
        .partitions(2)
        .start()
        .unwrap();
    let other = m.clone();
    assert_eq!(other.name(), "shared-map");
    other.put(1, "via clone".into()).unwrap();
    assert_eq!(m.get(&1), Some("via clone".to_owned()));
    let debug = format!("{m:?}");
    assert!(
        debug.contains("shared-map") && debug.contains("len: 1"),
        "{debug}"
    );
    other.stop().unwrap();
    assert_eq!(m.stop(), Ok(()), "a second stop is Ok");
    assert!(m.put(2, String::new()).is_err(), "stopped for all handles");
}

#[test]
fn generated_names_are_unique() {
    let sink = Sink::new();
    let a = map(&sink, 1);
    let b = map(&sink, 1);
    assert!(a.name().starts_with("tidefall-"), "{}", a.name());
    assert_ne!(a.name(), b.name());
}

#[test]
fn monotonic_version_is_strictly_increasing_across_threads() {
    let per_thread: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..10_000).map(|_| monotonic_version()).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all = HashSet::new();
    for versions in &per_thread {
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "increasing per thread"
        );
        assert!(versions.iter().all(|&v| v > 0));
        all.extend(versions.iter().copied());
    }
    assert_eq!(all.len(), 40_000, "never repeated");
    let after = monotonic_version();
    assert!(all.iter().all(|&v| v < after));
}

#[test]
fn put_newer_with_monotonic_versions_keeps_the_latest_across_threads() {
    let sink: Sink<Entry<u32, u64>> = Sink::new();
    let m = HashMap::<u32, u64>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .processor(sink.processor())
        .start()
        .unwrap();
    let maxima: Vec<BTreeMap<u32, u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                s.spawn(move || {
                    let mut mine = BTreeMap::new();
                    for i in 0..5000u32 {
                        let version = monotonic_version();
                        m.put_newer(i % 20, version, version).unwrap();
                        mine.insert(i % 20, version);
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    m.stop().unwrap();
    let entries = sink.items();
    assert_eq!(entries.len(), 20);
    for e in entries {
        let highest = maxima.iter().map(|mine| mine[&e.key]).max().unwrap();
        assert_eq!(e.version, highest, "key {}", e.key);
        assert_eq!(e.value, highest);
    }
}
