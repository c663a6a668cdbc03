//! Fuzzes a `Queue` or a `HashMap` driven by two or three threads at once, each running a
//! fuzzer-chosen list of steps (pushes and puts, flushes, deletes, `update_options` with
//! valid and invalid values, a short interval or a drain threshold so that real ticks and
//! early drains race the writers, and `stop` while the others still write), then checks
//! exact delivery:
//!
//! * Queue: every accepted item reaches the processor exactly once, every refused item came
//!   back in `PushError::Stopped` (accepted + returned = pushed), and each thread's items of
//!   one routing group (unkeyed, or one key) arrive in its push order.
//! * HashMap: each thread owns some keys and writes them with `put` / `put_all`; all threads
//!   share a few keys written with `put_newer` and `monotonic_version()`. No write is
//!   delivered twice, none that was refused or deleted is delivered, each owned key's
//!   deliveries come in write order and its last accepted write is delivered (nothing lost),
//!   and every entry's version and updates are consistent with the writes.
//! * Both: `stats()` balances exactly (processed + failed = delivered = what the processor
//!   saw, failed = the items of the batches it failed, nothing buffered at the end).
//!
//! Run: `cargo +nightly fuzz run concurrent` from the crate root.

#![no_main]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tidefall::{
    monotonic_version, BatchSize, Entry, Error, HashMap, OptionsUpdate, PushError, Queue,
};

use common::{lock, outcome, Fault, HOUR};

const MAX_STEPS: usize = 48;
/// Keys each thread owns, in the map.
const OWN_KEYS: u32 = 8;
/// Keys every thread writes with `put_newer`; numbered from `SHARED_BASE`.
const SHARED_KEYS: u32 = 4;
const SHARED_BASE: u32 = 1000;

#[derive(Arbitrary, Debug)]
struct Input {
    map: bool,
    /// 1 + (modulo 4).
    partitions: u8,
    /// Modulo 17; 0 is `Table`.
    batch: u8,
    /// A third thread.
    third: bool,
    threads: [Vec<Step>; 3],
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Step {
    /// Queue: pushes, unkeyed. Map: puts on the thread's own keys. 1 + (modulo 32) writes;
    /// the last one carries the fault.
    Push(u8, Fault),
    /// Queue: one `push_many`. Map: one `put_all` on own keys.
    PushMany(u8),
    /// Queue: `push_keyed` on one of four keys all threads share. Map: `put_newer` on the
    /// shared keys.
    Keyed(u8),
    /// Map: `delete` of an own key. Queue: `is_empty` and `len`, which must not disturb.
    Delete(u8),
    Flush,
    Update(Change),
    Stop,
    Yield,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Change {
    /// 1 + (modulo 8) items; 0: `Table`.
    Batch(u8),
    /// Invalid: `Items(0)`.
    ZeroBatch,
    /// Ticks every 1 + (modulo 3) ms.
    ShortInterval(u8),
    /// Drains early at 1 + (modulo 16) items.
    Threshold(u8),
    /// Back to quiet: hourly ticks, no threshold.
    Quiet,
}

impl Change {
    fn apply(self, update: impl Fn(OptionsUpdate) -> Result<(), Error>) {
        let result = update(match self {
            Change::Batch(0) => OptionsUpdate::default().processing_batch_size(BatchSize::Table),
            Change::Batch(n) => {
                OptionsUpdate::default().processing_batch_size(usize::from(n % 8) + 1)
            }
            Change::ZeroBatch => OptionsUpdate::default().processing_batch_size(0),
            Change::ShortInterval(ms) => OptionsUpdate::default()
                .processing_interval(Duration::from_millis(1 + u64::from(ms % 3))),
            Change::Threshold(n) => OptionsUpdate::default()
                .drain_threshold(usize::from(n % 16) + 1)
                .drain_check_interval(Duration::from_millis(1)),
            Change::Quiet => OptionsUpdate::default()
                .processing_interval(HOUR)
                .drain_threshold(None),
        });
        match self {
            Change::ZeroBatch => assert!(
                matches!(
                    result,
                    Err(Error::InvalidOption {
                        option: "processing_batch_size",
                        ..
                    })
                ),
                "{result:?}"
            ),
            _ => assert_eq!(result, Ok(()), "{self:?}"),
        }
    }
}

fn count(n: u8) -> u32 {
    u32::from(n % 32) + 1
}

fn batch_size(batch: u8) -> BatchSize {
    match batch % 17 {
        0 => BatchSize::Table,
        n => BatchSize::Items(usize::from(n)),
    }
}

/// What the processor saw: every batch, and which of them it failed.
struct Sink<T> {
    batches: Vec<(Vec<T>, bool)>,
}

impl<T> Sink<T> {
    fn failed_items(&self) -> u64 {
        let failed = self.batches.iter().filter(|(_, failed)| *failed);
        failed.map(|(batch, _)| batch.len() as u64).sum()
    }
}

/// Processes a batch: records it, then fails it as its faults say.
fn record<T>(sink: &Mutex<Sink<T>>, batch: Vec<T>, faults: Vec<Fault>) -> Result<(), String> {
    let fails = faults.iter().any(|&f| f != Fault::None);
    lock(sink).batches.push((batch, fails));
    outcome(faults)
}

fn check_stats(stats: tidefall::Stats, delivered: usize, failed: u64) {
    assert_eq!(stats.buffered, 0, "{stats:?}");
    assert_eq!(
        stats.processed + stats.failed,
        delivered as u64,
        "{stats:?}"
    );
    assert_eq!(stats.failed, failed, "{stats:?}");
}

// ---- Queue ----

/// A queue item: which thread pushed it, its number in that thread, and its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Item {
    thread: usize,
    seq: u32,
    /// `None`: unkeyed; `Some(k)`: pushed with key `k`.
    key: Option<u8>,
    fault: Fault,
}

/// What one thread did to the queue.
#[derive(Default)]
struct Pushed {
    accepted: Vec<Item>,
    returned: Vec<Item>,
    attempted: u64,
}

impl Pushed {
    fn one(&mut self, item: Item, result: Result<(), PushError<Item>>) {
        self.attempted += 1;
        match result {
            Ok(()) => self.accepted.push(item),
            Err(PushError::Stopped(back)) => {
                assert_eq!(back, item, "the item comes back");
                self.returned.push(back);
            }
            Err(PushError::Full(_)) => panic!("Full without a capacity"),
        }
    }
}

/// Runs the first `threads` step lists of `input` at once, thread `t` on its steps (at most
/// `MAX_STEPS`), and returns what each thread reports, in thread order.
fn on_threads<R: Send>(
    input: &Input,
    threads: usize,
    work: impl Fn(usize, &[Step]) -> R + Sync,
) -> Vec<R> {
    std::thread::scope(|s| {
        let work = &work;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let steps = &input.threads[t][..];
                s.spawn(move || work(t, &steps[..steps.len().min(MAX_STEPS)]))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a writer thread panicked"))
            .collect()
    })
}

fn queue_thread(queue: &Queue<Item>, thread: usize, steps: &[Step]) -> Pushed {
    let mut pushed = Pushed::default();
    let mut seq = 0;
    let mut item = |key: Option<u8>, fault: Fault| {
        seq += 1;
        Item {
            thread,
            seq,
            key,
            fault,
        }
    };
    for &step in steps {
        match step {
            Step::Push(n, fault) => {
                let n = count(n);
                for i in 1..=n {
                    let item = item(None, if i == n { fault } else { Fault::None });
                    pushed.one(item, queue.push(item));
                }
            }
            Step::PushMany(n) => {
                let items: Vec<Item> = (0..count(n)).map(|_| item(None, Fault::None)).collect();
                pushed.attempted += items.len() as u64;
                match queue.push_many(items.clone()) {
                    Ok(()) => pushed.accepted.extend(items),
                    Err(PushError::Stopped(back)) => {
                        // A close can cut a batch in two: a prefix accepted, the rest back.
                        let cut = items.len() - back.len();
                        assert_eq!(back, items[cut..], "the rest comes back, in order");
                        pushed.accepted.extend_from_slice(&items[..cut]);
                        pushed.returned.extend(back);
                    }
                    Err(PushError::Full(_)) => panic!("Full without a capacity"),
                }
            }
            Step::Keyed(n) => {
                for i in 0..count(n) {
                    let key = (i % 4) as u8;
                    let item = item(Some(key), Fault::None);
                    pushed.one(item, queue.push_keyed(&key, item));
                }
            }
            Step::Delete(_) => {
                let _ = (queue.len(), queue.is_empty());
            }
            Step::Flush => assert_eq!(queue.flush(), Ok(())),
            Step::Update(change) => change.apply(|u| queue.update_options(u)),
            Step::Stop => assert_eq!(queue.stop(), Ok(())),
            Step::Yield => std::thread::yield_now(),
        }
    }
    pushed
}

fn run_queue(input: &Input, threads: usize) {
    let sink = Arc::new(Mutex::new(Sink {
        batches: Vec::new(),
    }));
    let recorder = Arc::clone(&sink);
    let queue = Queue::<Item>::builder()
        .partitions(usize::from(input.partitions % 4) + 1)
        .processing_interval(HOUR)
        .processing_timeout(HOUR)
        .processing_batch_size(batch_size(input.batch))
        .processor(move |batch: Vec<Item>| {
            let faults = batch.iter().map(|item| item.fault).collect();
            record(&recorder, batch, faults)
        })
        .start()
        .expect("valid options");
    let pushed: Vec<Pushed> = on_threads(input, threads, |t, steps| queue_thread(&queue, t, steps));
    assert_eq!(queue.stop(), Ok(()));

    let sink = lock(&sink);
    let delivered: Vec<Item> = sink.batches.iter().flat_map(|(b, _)| b.clone()).collect();
    let mut got = delivered.clone();
    got.sort_unstable();
    let mut want: Vec<Item> = pushed.iter().flat_map(|p| p.accepted.clone()).collect();
    want.sort_unstable();
    assert_eq!(got, want, "every accepted item exactly once, nothing else");
    for p in &pushed {
        let sent = p.accepted.len() + p.returned.len();
        assert_eq!(sent as u64, p.attempted, "accepted + returned = pushed");
    }
    let groups: BTreeSet<(usize, Option<u8>)> =
        delivered.iter().map(|i| (i.thread, i.key)).collect();
    for (thread, key) in groups {
        let seqs: Vec<u32> = delivered
            .iter()
            .filter(|i| (i.thread, i.key) == (thread, key))
            .map(|i| i.seq)
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "thread {thread}, key {key:?}: out of push order {seqs:?}"
        );
    }
    check_stats(queue.stats(), delivered.len(), sink.failed_items());
}

// ---- HashMap ----

/// A map value: the write that stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Value {
    thread: usize,
    seq: u32,
    /// The version it was written with (0 for `put`).
    version: u64,
    fault: Fault,
}

type E = Entry<u32, Value>;

/// What one thread did to the map.
#[derive(Default)]
struct Written {
    /// Writes accepted (stored), by key.
    stored: BTreeMap<u32, Vec<Value>>,
    /// Writes refused (returned) or ignored (an older version): never delivered.
    not_stored: Vec<Value>,
    /// Values a successful `delete` removed: never delivered.
    deleted: Vec<Value>,
    /// Per own key, the value it holds after the thread's last operation on it.
    last: BTreeMap<u32, Option<Value>>,
}

fn own_key(thread: usize, i: u32) -> u32 {
    thread as u32 * OWN_KEYS + i % OWN_KEYS
}

fn map_thread(map: &HashMap<u32, Value>, thread: usize, steps: &[Step]) -> Written {
    let mut written = Written::default();
    let mut seq = 0;
    let mut next = 0;
    let mut value = |version: u64, fault: Fault| {
        seq += 1;
        Value {
            thread,
            seq,
            version,
            fault,
        }
    };
    for &step in steps {
        match step {
            Step::Push(n, fault) => {
                let n = count(n);
                for i in 1..=n {
                    let (key, v) = (own_key(thread, next), value(0, Fault::None));
                    let v = if i == n { Value { fault, ..v } } else { v };
                    next += 1;
                    match map.put(key, v) {
                        Ok(()) => {
                            written.stored.entry(key).or_default().push(v);
                            written.last.insert(key, Some(v));
                        }
                        Err(PushError::Stopped(back)) => {
                            assert_eq!(back, (key, v));
                            written.not_stored.push(v);
                        }
                        Err(PushError::Full(_)) => panic!("Full without a capacity"),
                    }
                }
            }
            Step::PushMany(n) => {
                let pairs: Vec<(u32, Value)> = (0..count(n))
                    .map(|_| {
                        next += 1;
                        (own_key(thread, next - 1), value(0, Fault::None))
                    })
                    .collect();
                let cut = match map.put_all(pairs.clone()) {
                    Ok(()) => pairs.len(),
                    Err(PushError::Stopped(back)) => {
                        let cut = pairs.len() - back.len();
                        assert_eq!(back, pairs[cut..], "the rest comes back, in order");
                        cut
                    }
                    Err(PushError::Full(_)) => panic!("Full without a capacity"),
                };
                for &(key, v) in &pairs[..cut] {
                    written.stored.entry(key).or_default().push(v);
                    written.last.insert(key, Some(v));
                }
                written
                    .not_stored
                    .extend(pairs[cut..].iter().map(|&(_, v)| v));
            }
            Step::Keyed(n) => {
                for i in 0..count(n) {
                    let key = SHARED_BASE + i % SHARED_KEYS;
                    let v = value(monotonic_version(), Fault::None);
                    match map.put_newer(key, v, v.version) {
                        Ok(true) => written.stored.entry(key).or_default().push(v),
                        Ok(false) => written.not_stored.push(v),
                        Err(PushError::Stopped(back)) => {
                            assert_eq!(back, (key, v));
                            written.not_stored.push(v);
                        }
                        Err(PushError::Full(_)) => panic!("Full without a capacity"),
                    }
                }
            }
            Step::Delete(k) => {
                let key = own_key(thread, u32::from(k));
                let held = written.last.get(&key).copied().flatten();
                if map.delete(&key) {
                    // Only this thread writes the key: what it held was its last write.
                    let held = held.expect("delete found a value this thread never wrote");
                    written.deleted.push(held);
                    written.last.insert(key, None);
                }
            }
            Step::Flush => assert_eq!(map.flush(), Ok(())),
            Step::Update(change) => change.apply(|u| map.update_options(u)),
            Step::Stop => assert_eq!(map.stop(), Ok(())),
            Step::Yield => std::thread::yield_now(),
        }
    }
    written
}

fn run_map(input: &Input, threads: usize) {
    let sink = Arc::new(Mutex::new(Sink {
        batches: Vec::new(),
    }));
    let recorder = Arc::clone(&sink);
    let map = HashMap::<u32, Value>::builder()
        .partitions(usize::from(input.partitions % 4) + 1)
        .processing_interval(HOUR)
        .processing_timeout(HOUR)
        .processing_batch_size(batch_size(input.batch))
        .processor(move |batch: Vec<E>| {
            let faults = batch.iter().map(|e| e.value.fault).collect();
            record(&recorder, batch, faults)
        })
        .start()
        .expect("valid options");
    let written: Vec<Written> = on_threads(input, threads, |t, steps| map_thread(&map, t, steps));
    assert_eq!(map.stop(), Ok(()));

    let sink = lock(&sink);
    let mut stored_to: BTreeMap<Value, u32> = BTreeMap::new();
    for w in &written {
        for (&key, values) in &w.stored {
            for &v in values {
                assert!(stored_to.insert(v, key).is_none(), "a value written twice");
            }
        }
    }
    let never: BTreeSet<Value> = written
        .iter()
        .flat_map(|w| w.not_stored.iter().chain(&w.deleted).copied())
        .collect();
    let mut delivered: BTreeSet<Value> = BTreeSet::new();
    let mut by_key: BTreeMap<u32, Vec<E>> = BTreeMap::new();
    for (batch, _) in &sink.batches {
        let keys: BTreeSet<u32> = batch.iter().map(|e| e.key).collect();
        assert_eq!(keys.len(), batch.len(), "a key twice in one batch");
        for e in batch {
            assert_eq!(
                stored_to.get(&e.value),
                Some(&e.key),
                "{e:?}: not a stored write"
            );
            assert!(
                !never.contains(&e.value),
                "{e:?}: refused, ignored or deleted"
            );
            assert!(delivered.insert(e.value), "{e:?}: delivered twice");
            assert_eq!(
                e.version, e.value.version,
                "{e:?}: the version of its write"
            );
            if e.key < SHARED_BASE {
                assert_eq!(e.updates, 0, "{e:?}: put resets updates");
            } else {
                let stores = stored_to.iter().filter(|&(_, &k)| k == e.key).count();
                assert!(
                    (e.updates as usize) < stores,
                    "{e:?}: more updates than stores"
                );
            }
            by_key.entry(e.key).or_default().push(e.clone());
        }
    }
    for w in &written {
        for (&key, last) in &w.last {
            let seqs: Vec<u32> = by_key
                .get(&key)
                .map_or(Vec::new(), |es| es.iter().map(|e| e.value.seq).collect());
            assert!(
                seqs.windows(2).all(|p| p[0] < p[1]),
                "key {key}: deliveries out of write order {seqs:?}"
            );
            if let Some(last) = last {
                assert_eq!(
                    seqs.last(),
                    Some(&last.seq),
                    "key {key}: the last write lost"
                );
            }
        }
    }
    check_stats(map.stats(), delivered.len(), sink.failed_items());
}

fn run(input: Input) {
    let threads = if input.third { 3 } else { 2 };
    if input.map {
        run_map(&input, threads);
    } else {
        run_queue(&input, threads);
    }
}

fuzz_target!(|input: Input| run(input));
