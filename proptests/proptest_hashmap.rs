#![cfg(not(loom))]
//! Model-based tests of [`HashMap`]: random sequences of `put`, `put_newer`, `put_all`,
//! `put_all_newer`, `delete`, `get` and `flush` run against a `std::collections::HashMap`
//! model of the current tick, checking every return value and every delivered [`Entry`]
//! (key, value, version, updates), round by round.
//!
//! Every map here ticks once an hour, so within a test case only `flush` and the final
//! `stop` start processing cycles: each *round* must deliver exactly the model's contents,
//! one entry per key. Values are unique write ids, so an entry names the very write that
//! won.

use std::collections::{HashMap as StdMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tidefall::{BatchSize, Entry, Event, HashMap, PushError};

const HOUR: Duration = Duration::from_secs(3600);

/// Cases per property: moderate, so the file runs in a few seconds in debug builds.
/// `PROPTEST_CASES` overrides it for longer hunts.
const CASES: u32 = 128;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // No `proptest-regressions/` files in the tree: a failure prints its minimal input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Keys are few, so that writes collide all the time (12 of them, in most properties).
type Key = u8;
/// A unique write id.
type Value = u64;
type E = Entry<Key, Value>;

#[derive(Debug, Clone)]
enum Op {
    Put(Key),
    PutNewer(Key, u64),
    PutAll(Vec<Key>),
    PutAllNewer(Vec<(Key, u64)>),
    Delete(Key),
    Get(Key),
    Flush,
}

/// The few keys most properties use.
const FEW_KEYS: Key = 12;
/// Enough keys for a partition's tables to grow (a table starts with 16 slots and links a
/// larger one past 12 keys) and be reused at their grown size.
const MANY_KEYS: Key = 96;

fn key(keys: Key) -> impl Strategy<Value = Key> {
    0..keys
}

fn version() -> impl Strategy<Value = u64> {
    0..6u64
}

fn op(keys: Key) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => key(keys).prop_map(Op::Put),
        4 => (key(keys), version()).prop_map(|(k, v)| Op::PutNewer(k, v)),
        1 => prop::collection::vec(key(keys), 0..6).prop_map(Op::PutAll),
        1 => prop::collection::vec((key(keys), version()), 0..6).prop_map(Op::PutAllNewer),
        2 => key(keys).prop_map(Op::Delete),
        2 => key(keys).prop_map(Op::Get),
        1 => Just(Op::Flush),
    ]
}

fn batch_size() -> impl Strategy<Value = BatchSize> {
    prop_oneof![
        Just(BatchSize::Table),
        (1..5usize).prop_map(BatchSize::Items)
    ]
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one key holds in the model's current tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    value: Value,
    version: u64,
    updates: u64,
}

/// The sequential model: the current tick, and the counters the stats must match.
#[derive(Default)]
struct Model {
    tick: StdMap<Key, Stored>,
    next_value: Value,
    /// `None`: unbounded; with one partition, the exact key capacity.
    capacity: Option<usize>,
    /// Entries delivered so far.
    delivered: u64,
    /// `Full` errors returned.
    full: u64,
}

/// What the model says a write does.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Stored,
    Ignored,
    Full,
}

impl Model {
    fn value(&mut self) -> Value {
        self.next_value += 1;
        self.next_value
    }

    /// Applies a write (`version: None` for `put`).
    fn write(&mut self, key: Key, value: Value, version: Option<u64>) -> Outcome {
        let full = self.capacity.is_some_and(|c| self.tick.len() >= c);
        match (self.tick.get_mut(&key), version) {
            (Some(stored), None) => {
                *stored = Stored {
                    value,
                    version: 0,
                    updates: 0,
                };
                Outcome::Stored
            }
            (Some(stored), Some(v)) if v > stored.version => {
                *stored = Stored {
                    value,
                    version: v,
                    updates: stored.updates + 1,
                };
                Outcome::Stored
            }
            (Some(_), Some(_)) => Outcome::Ignored,
            (None, _) if full => Outcome::Full,
            (None, version) => {
                self.tick.insert(
                    key,
                    Stored {
                        value,
                        version: version.unwrap_or(0),
                        updates: 0,
                    },
                );
                Outcome::Stored
            }
        }
    }

    /// The entries the next round must deliver, sorted by key; the tick starts afresh.
    fn drain(&mut self) -> Vec<E> {
        let mut entries: Vec<E> = self
            .tick
            .drain()
            .map(|(key, s)| Entry {
                key,
                value: s.value,
                version: s.version,
                updates: s.updates,
            })
            .collect();
        entries.sort_by_key(|e| e.key);
        self.delivered += entries.len() as u64;
        entries
    }
}

struct Harness {
    map: HashMap<Key, Value>,
    partitions: usize,
    batch_size: BatchSize,
    batches: Arc<Mutex<Vec<Vec<E>>>>,
    /// Sum of `Rejected.count`.
    rejected: Arc<Mutex<u64>>,
}

impl Harness {
    fn start(partitions: usize, batch_size: BatchSize, capacity: Option<usize>) -> Self {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let rejected = Arc::new(Mutex::new(0));
        let sink = Arc::clone(&batches);
        let counted = Arc::clone(&rejected);
        let mut builder = HashMap::<Key, Value>::builder()
            .name("proptest-map")
            .partitions(partitions)
            .processing_interval(HOUR)
            .processing_timeout(HOUR)
            .processing_batch_size(batch_size)
            .processor(move |batch: Vec<E>| lock(&sink).push(batch))
            .observer(move |event: &Event<'_>| {
                if let Event::Rejected(r) = event {
                    *lock(&counted) += r.count;
                }
            });
        if let Some(capacity) = capacity {
            builder = builder.capacity(capacity);
        }
        Harness {
            map: builder.start().expect("valid options"),
            partitions,
            batch_size,
            batches,
            rejected,
        }
    }

    /// Checks one round: what the processor received since the last round against what
    /// the model drained.
    fn check_round(&self, model: &mut Model) -> Result<(), TestCaseError> {
        let expected = model.drain();
        let batches = std::mem::take(&mut *lock(&self.batches));
        for batch in &batches {
            prop_assert!(!batch.is_empty(), "an empty batch");
            let distinct: HashSet<Key> = batch.iter().map(|e| e.key).collect();
            prop_assert_eq!(distinct.len(), batch.len(), "a key twice in one batch");
            if let BatchSize::Items(n) = self.batch_size {
                prop_assert!(batch.len() <= n, "batch of {} > {}", batch.len(), n);
            }
        }
        if self.batch_size == BatchSize::Table {
            prop_assert!(
                batches.len() <= self.partitions,
                "{} calls for {} partitions",
                batches.len(),
                self.partitions
            );
            prop_assert_eq!(batches.is_empty(), expected.is_empty());
        }
        let mut got: Vec<E> = batches.into_iter().flatten().collect();
        got.sort_by_key(|e| e.key);
        prop_assert_eq!(got, expected, "delivered entries");
        Ok(())
    }

    fn check_at_rest(&self, model: &Model) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.map.len(), model.tick.len(), "len()");
        prop_assert_eq!(self.map.is_empty(), model.tick.is_empty(), "is_empty()");
        let stats = self.map.stats();
        prop_assert_eq!(stats.buffered, model.tick.len() as u64, "{:?}", stats);
        prop_assert_eq!(stats.processed, model.delivered, "{:?}", stats);
        prop_assert_eq!(stats.failed, 0, "{:?}", stats);
        prop_assert_eq!(stats.rejected, model.full, "{:?}", stats);
        Ok(())
    }
}

/// Checks a single write's result against the model's outcome.
fn check_one(
    outcome: Outcome,
    result: Result<bool, PushError<(Key, Value)>>,
    sent: (Key, Value),
    model: &mut Model,
) -> Result<(), TestCaseError> {
    match (outcome, result) {
        (Outcome::Stored, Ok(true)) | (Outcome::Ignored, Ok(false)) => {}
        (Outcome::Full, Err(PushError::Full(back))) => {
            prop_assert_eq!(back, sent, "Full must carry the pair back");
            model.full += 1;
        }
        (outcome, result) => prop_assert!(false, "model {:?}, map {:?}", outcome, result),
    }
    Ok(())
}

fn run(
    ops: Vec<Op>,
    partitions: usize,
    batch_size: BatchSize,
    capacity: Option<usize>,
) -> Result<(), TestCaseError> {
    let h = Harness::start(partitions, batch_size, capacity);
    let mut model = Model {
        capacity,
        ..Model::default()
    };
    for op in ops {
        match op {
            Op::Put(key) => {
                let value = model.value();
                let outcome = model.write(key, value, None);
                let result = h.map.put(key, value).map(|()| true);
                check_one(outcome, result, (key, value), &mut model)?;
            }
            Op::PutNewer(key, version) => {
                let value = model.value();
                let outcome = model.write(key, value, Some(version));
                let result = h.map.put_newer(key, value, version);
                check_one(outcome, result, (key, value), &mut model)?;
            }
            Op::PutAll(keys) => {
                let pairs: Vec<(Key, Value)> =
                    keys.into_iter().map(|k| (k, model.value())).collect();
                let refused: Vec<(Key, Value)> = pairs
                    .iter()
                    .filter(|&&(k, v)| model.write(k, v, None) == Outcome::Full)
                    .copied()
                    .collect();
                match h.map.put_all(pairs) {
                    Ok(()) => prop_assert!(refused.is_empty(), "put_all past capacity"),
                    Err(PushError::Full(back)) => {
                        prop_assert_eq!(back, refused, "put_all's refused pairs");
                        model.full += 1;
                    }
                    Err(e) => prop_assert!(false, "put_all: {:?}", e),
                }
            }
            Op::PutAllNewer(writes) => {
                let triples: Vec<(Key, Value, u64)> = writes
                    .into_iter()
                    .map(|(k, ver)| (k, model.value(), ver))
                    .collect();
                let mut stored = 0;
                let mut refused = Vec::new();
                for &(k, v, ver) in &triples {
                    match model.write(k, v, Some(ver)) {
                        Outcome::Stored => stored += 1,
                        Outcome::Ignored => {}
                        Outcome::Full => refused.push((k, v, ver)),
                    }
                }
                match h.map.put_all_newer(triples) {
                    Ok(n) => {
                        prop_assert!(refused.is_empty(), "put_all_newer past capacity");
                        prop_assert_eq!(n, stored, "put_all_newer's count");
                    }
                    Err(PushError::Full(back)) => {
                        prop_assert_eq!(back, refused, "put_all_newer's refused triples");
                        model.full += 1;
                    }
                    Err(e) => prop_assert!(false, "put_all_newer: {:?}", e),
                }
            }
            Op::Delete(key) => {
                let expected = model.tick.remove(&key).is_some();
                prop_assert_eq!(h.map.delete(&key), expected, "delete({})", key);
            }
            Op::Get(key) => {
                let expected = model.tick.get(&key).map(|s| s.value);
                prop_assert_eq!(h.map.get(&key), expected, "get({})", key);
            }
            Op::Flush => {
                h.map.flush().expect("flush");
                h.check_round(&mut model)?;
                h.check_at_rest(&model)?;
            }
        }
    }
    h.check_at_rest(&model)?;
    h.map.stop().expect("stop");
    h.check_round(&mut model)?;
    h.check_at_rest(&model)?;
    prop_assert_eq!(*lock(&h.rejected), model.full, "sum of Rejected.count");
    // Writes after stop come back.
    prop_assert_eq!(h.map.put(0, 0), Err(PushError::Stopped((0, 0))));
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Every return value and every delivered entry, unbounded, 1 to 3 partitions.
    #[test]
    fn the_map_matches_the_model(
        ops in prop::collection::vec(op(FEW_KEYS), 0..80),
        partitions in 1..=3usize,
        batch_size in batch_size(),
    ) {
        run(ops, partitions, batch_size, None)?;
    }

    /// With one partition, `capacity` is exact in distinct keys: the model knows which
    /// writes are refused.
    #[test]
    fn capacity_matches_the_model(
        ops in prop::collection::vec(op(FEW_KEYS), 0..80),
        capacity in 1..6usize,
        batch_size in batch_size(),
    ) {
        run(ops, 1, batch_size, Some(capacity))?;
    }

    /// As `the_map_matches_the_model`, over many keys: the tables grow, migrate their keys,
    /// and are reused at their grown size after each flush.
    #[test]
    fn the_map_matches_the_model_over_many_keys(
        ops in prop::collection::vec(op(MANY_KEYS), 0..300),
        partitions in 1..=2usize,
        batch_size in batch_size(),
    ) {
        run(ops, partitions, batch_size, None)?;
    }
}

/// A fixed sequence over several rounds: a check of the harness itself.
#[test]
fn a_fixed_sequence_matches_the_model() {
    let ops = vec![
        Op::Put(1),
        Op::PutNewer(2, 3),
        Op::PutNewer(2, 3),
        Op::PutNewer(2, 4),
        Op::Flush,
        Op::PutNewer(2, 1),
        Op::Delete(1),
        Op::Put(1),
        Op::Get(1),
        Op::PutAll(vec![3, 3, 4]),
        Op::PutAllNewer(vec![(3, 1), (3, 1), (5, 0)]),
    ];
    run(ops, 2, BatchSize::Items(1), None).expect("the model");
    run(
        vec![Op::Put(1), Op::Put(2), Op::Put(1)],
        1,
        BatchSize::Table,
        Some(1),
    )
    .expect("the model with capacity");
}
