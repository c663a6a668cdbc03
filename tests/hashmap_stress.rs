//! `HashMap<K, V, S>` under load (SPEC §1, §5): many threads coalescing on the same keys
//! (one entry per key per tick), a million distinct keys growing one partition's table
//! (every key exactly once), and the memory bound: ten million puts over a thousand keys in
//! one tick keep about a thousand values alive, not ten million.

#![cfg(not(loom))]

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidefall::{BatchSize, Entry, HashMap};

const HOUR: Duration = Duration::from_secs(3600);

/// The batches a processor received, in call order.
type Batches = Arc<Mutex<Vec<Vec<Entry<u64, u64>>>>>;

#[test]
fn many_threads_on_the_same_keys_give_one_entry_per_key_per_tick() {
    const THREADS: u64 = 4;
    const KEYS: u64 = 500;
    const ROUNDS: u64 = 100;
    // Each delivered batch is checked on its own: no key twice within a tick.
    let ticks: Batches = Arc::default();
    let sink = Arc::clone(&ticks);
    let m = HashMap::<u64, u64>::builder()
        .partitions(4)
        .processing_interval(Duration::from_millis(5))
        .processing_batch_size(BatchSize::Table)
        .processor(move |batch: Vec<Entry<u64, u64>>| sink.lock().unwrap().push(batch))
        .start()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let m = m.clone();
            s.spawn(move || {
                for round in 0..ROUNDS {
                    for key in 0..KEYS {
                        // Value: which thread, which round; put_newer with the round as
                        // version on odd keys.
                        let value = round * THREADS + t;
                        if key % 2 == 1 {
                            m.put_newer(key, value, round + 1).unwrap();
                        } else {
                            m.put(key, value).unwrap();
                        }
                    }
                }
            });
        }
    });
    m.stop().unwrap();
    let ticks = ticks.lock().unwrap();
    let mut delivered = 0;
    let mut last = BTreeMap::new();
    for batch in ticks.iter() {
        let distinct: HashSet<u64> = batch.iter().map(|e| e.key).collect();
        assert_eq!(distinct.len(), batch.len(), "a key twice in one tick");
        for e in batch {
            assert!(e.key < KEYS);
            if e.key % 2 == 1 {
                assert!(e.version >= 1 && e.version <= ROUNDS);
                assert_eq!(e.value / THREADS, e.version - 1, "the value of its version");
            } else {
                assert_eq!((e.version, e.updates), (0, 0));
            }
            last.insert(e.key, e.value);
        }
        delivered += batch.len();
    }
    // Every key's last delivered value is from the last round.
    assert_eq!(last.len(), KEYS as usize);
    assert!(last.values().all(|v| v / THREADS == ROUNDS - 1), "{last:?}");
    assert!(delivered < (THREADS * KEYS * ROUNDS) as usize, "coalesced");
    let stats = m.stats();
    assert_eq!(stats.processed, delivered as u64);
    assert_eq!(stats.buffered, 0);
}

/// One producer owns every partition it writes (no slot locks, no CAS) while ticks every
/// millisecond race its overwrites and inserts; halfway, the main thread starts reading with
/// `get`, which makes the partitions shared, and the producer's later writes lock their
/// slots. Nothing is lost or reordered across that switch: every tick holds a key at most
/// once, each key's delivered values only grow (a value written after another is never
/// delivered before it), a `get` never sees a value older than one it saw before, and the
/// last delivered value of every key is its last write.
#[test]
fn an_owner_racing_ticks_then_shared_by_a_reader_loses_nothing() {
    const KEYS: u64 = 300;
    const ROUNDS: u64 = 10_000;
    let ticks: Batches = Arc::default();
    let sink = Arc::clone(&ticks);
    let m = HashMap::<u64, u64>::builder()
        .partitions(2)
        .processing_interval(Duration::from_millis(1))
        .processing_batch_size(BatchSize::Table)
        .processor(move |batch: Vec<Entry<u64, u64>>| sink.lock().unwrap().push(batch))
        .start()
        .unwrap();
    let halfway = std::sync::Barrier::new(2);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let (m, halfway, done) = (&m, &halfway, &done);
        s.spawn(move || {
            for round in 1..=ROUNDS {
                for key in 0..KEYS {
                    m.put(key, round).unwrap();
                }
                if round == ROUNDS / 2 {
                    halfway.wait();
                }
            }
            done.store(true, Ordering::Release);
        });
        halfway.wait();
        let mut seen = vec![0; KEYS as usize];
        while !done.load(Ordering::Acquire) {
            for key in 0..KEYS {
                if let Some(value) = m.get(&key) {
                    // The producer's rounds only grow, so a later read of a key never
                    // returns an older one (across a tick the key may be absent a while).
                    assert!(value <= ROUNDS);
                    assert!(
                        value >= seen[key as usize],
                        "key {key}: read {value} after {}",
                        seen[key as usize]
                    );
                    seen[key as usize] = value;
                }
            }
        }
    });
    m.stop().unwrap();
    let ticks = ticks.lock().unwrap();
    // The race happened: ticks delivered keys many times over, not once at the end.
    assert!(ticks.len() > 20, "only {} batches", ticks.len());
    let mut last = vec![0; KEYS as usize];
    for batch in ticks.iter() {
        let distinct: HashSet<u64> = batch.iter().map(|e| e.key).collect();
        assert_eq!(distinct.len(), batch.len(), "a key twice in one tick");
        for e in batch {
            let was = &mut last[e.key as usize];
            assert!(
                e.value > *was,
                "key {}: {} delivered after {}",
                e.key,
                e.value,
                was
            );
            *was = e.value;
        }
    }
    assert_eq!(last, vec![ROUNDS; KEYS as usize]);
    assert_eq!(m.stats().buffered, 0);
}

#[test]
fn a_million_distinct_keys_from_two_threads_grow_one_partition() {
    const PER_THREAD: u64 = 500_000;
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let m = HashMap::<u64, u64>::builder()
        .partitions(1)
        .processing_interval(HOUR)
        .processing_batch_size(BatchSize::Table)
        .processor(move |batch: Vec<Entry<u64, u64>>| {
            let mut seen = sink.lock().unwrap();
            for e in batch {
                assert_eq!(e.value, e.key * 3, "value of key {}", e.key);
                seen.push(e.key);
            }
        })
        .start()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let m = m.clone();
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    // Interleaved keys: the threads fill the same table regions.
                    let key = i * 2 + t;
                    m.put(key, key * 3).unwrap();
                }
            });
        }
    });
    assert_eq!(m.len(), 2 * PER_THREAD as usize);
    m.stop().unwrap();
    let mut keys = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(keys.len(), 2 * PER_THREAD as usize, "every key once");
    keys.sort_unstable();
    assert!(
        keys.iter().copied().eq(0..2 * PER_THREAD),
        "every key, none twice"
    );
    let stats = m.stats();
    assert_eq!(
        (stats.processed, stats.buffered, stats.batches),
        (2 * PER_THREAD, 0, 1)
    );
}

/// Live instances of [`Counted`], and the most ever seen.
static LIVE: AtomicI64 = AtomicI64::new(0);
static MAX_LIVE: AtomicI64 = AtomicI64::new(0);
/// Instances ever made.
static MADE: AtomicU64 = AtomicU64::new(0);

/// A value that counts its live instances.
struct Counted(u64);

impl Counted {
    fn new(n: u64) -> Self {
        let live = LIVE.fetch_add(1, Ordering::SeqCst) + 1;
        MAX_LIVE.fetch_max(live, Ordering::SeqCst);
        MADE.fetch_add(1, Ordering::Relaxed);
        Counted(n)
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted::new(self.0)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn ten_million_puts_over_a_thousand_keys_keep_a_thousand_values() {
    const KEYS: u64 = 1_000;
    const PUTS: u64 = 10_000_000;
    let delivered: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::default();
    let sink = Arc::clone(&delivered);
    let m = HashMap::<u64, Counted>::builder()
        .partitions(2)
        .processing_interval(HOUR)
        .processing_batch_size(BatchSize::Table)
        .processor(move |batch: Vec<Entry<u64, Counted>>| {
            let mut delivered = sink.lock().unwrap();
            for e in batch {
                assert!(
                    delivered.insert(e.key, e.value.0).is_none(),
                    "key {} twice",
                    e.key
                );
            }
        })
        .start()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let m = m.clone();
            s.spawn(move || {
                // Both threads write every key: thread t writes the values i ≡ t (mod 2),
                // to key (i / 2) mod KEYS.
                for i in (t..PUTS).step_by(2) {
                    m.put((i / 2) % KEYS, Counted::new(i)).unwrap();
                }
            });
        }
    });
    let max_live = MAX_LIVE.load(Ordering::SeqCst);
    eprintln!("{PUTS} puts over {KEYS} keys: at most {max_live} values alive at once");
    // A thousand stored values, plus the few in flight in each writer (the new value, the
    // one being replaced), plus whatever the store keeps for readers still inside its grace
    // period: bounded by the keys, nowhere near the ten million writes.
    assert!(
        max_live <= 4 * KEYS as i64,
        "{max_live} values alive at once"
    );
    assert_eq!(MADE.load(Ordering::Relaxed), PUTS);
    assert_eq!(m.len(), KEYS as usize);
    m.flush().unwrap();
    m.stop().unwrap();
    assert_eq!(
        LIVE.load(Ordering::SeqCst),
        0,
        "every value dropped after delivery"
    );
    let delivered = delivered.lock().unwrap();
    assert_eq!(delivered.len(), KEYS as usize, "exactly one entry per key");
    // Each key's value comes from the last round of puts of one of the two writers.
    for (&key, &value) in delivered.iter() {
        assert_eq!((value / 2) % KEYS, key);
        assert!(value >= PUTS - 2 * KEYS, "key {key}: stale value {value}");
    }
    assert_eq!(m.stats().processed, KEYS);
}
