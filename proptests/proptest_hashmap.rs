#![cfg(not(loom))]
//! Model-based tests of [`HashMap`]: random sequences of `put`, `put_newer`, `put_all`,
//! `put_all_newer`, `delete`, `get` and `flush` run against a `std::collections::HashMap`
//! model of the current tick, checking every return value and every delivered [`Entry`]
//! (key, value, version, updates), round by round.
//!
//! Every map here ticks once an hour, so within a test case only `flush` and the final
//! `stop` start processing cycles: each *round* must deliver exactly the model's contents,
//! one entry per key. Values are unique write ids, so an entry names the very write that
//! won. They are `u64`s, whose slots the map's small tables lay out one to a cache line, or
//! [`Wide`] ones, too wide for that, whose tables keep an array of states and one of cells:
//! the model runs on both layouts.

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

/// Keys are few, so that writes collide all the time (12 of them, in most properties);
/// wide enough for the [`LARGE_FILL`] keys that make a table large.
type Key = u16;
type E<V> = Entry<Key, V>;

/// A map value: a unique write id.
trait Value: Copy + Eq + Send + Sync + std::fmt::Debug + 'static {
    /// The value of write number `id`.
    fn id(id: u64) -> Self;
}

impl Value for u64 {
    fn id(id: u64) -> Self {
        id
    }
}

/// A write id in a value too wide for a slot's cells to fit one cache line beside its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wide([u64; 4]);

impl Value for Wide {
    fn id(id: u64) -> Self {
        Wide([id; 4])
    }
}

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

/// Keys written before the ops of `the_map_matches_the_model_reading_ahead`, from
/// [`LARGE_FROM`] on: enough for each of two partitions' tables to grow past 16 384 slots,
/// where `put_all` starts reading ahead of its writes.
const LARGE_FILL: Key = 30_000;
/// The first of the [`LARGE_FILL`] keys, above every key of the ops.
const LARGE_FROM: Key = 1_000;

fn op(keys: Key) -> impl Strategy<Value = Op> {
    op_with_batches(keys, 6)
}

/// [`op`], with batches of `put_all` and `put_all_newer` of up to `longest - 1` writes.
fn op_with_batches(keys: Key, longest: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => key(keys).prop_map(Op::Put),
        4 => (key(keys), version()).prop_map(|(k, v)| Op::PutNewer(k, v)),
        1 => prop::collection::vec(key(keys), 0..longest).prop_map(Op::PutAll),
        1 => prop::collection::vec((key(keys), version()), 0..longest).prop_map(Op::PutAllNewer),
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
struct Stored<V> {
    value: V,
    version: u64,
    updates: u64,
}

/// The sequential model: the current tick, and the counters the stats must match.
struct Model<V> {
    tick: StdMap<Key, Stored<V>>,
    /// The last write id given out.
    last_id: u64,
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

impl<V: Value> Model<V> {
    fn new(capacity: Option<usize>) -> Self {
        Model {
            tick: StdMap::new(),
            last_id: 0,
            capacity,
            delivered: 0,
            full: 0,
        }
    }

    fn value(&mut self) -> V {
        self.last_id += 1;
        V::id(self.last_id)
    }

    /// Applies a write (`version: None` for `put`).
    fn write(&mut self, key: Key, value: V, version: Option<u64>) -> Outcome {
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
    fn drain(&mut self) -> Vec<E<V>> {
        let mut entries: Vec<E<V>> = self
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

struct Harness<V: Value> {
    map: HashMap<Key, V>,
    partitions: usize,
    batch_size: BatchSize,
    batches: Arc<Mutex<Vec<Vec<E<V>>>>>,
    /// Sum of `Rejected.count`.
    rejected: Arc<Mutex<u64>>,
}

impl<V: Value> Harness<V> {
    fn start(partitions: usize, batch_size: BatchSize, capacity: Option<usize>) -> Self {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let rejected = Arc::new(Mutex::new(0));
        let sink = Arc::clone(&batches);
        let counted = Arc::clone(&rejected);
        let mut builder = HashMap::<Key, V>::builder()
            .name("proptest-map")
            .partitions(partitions)
            .processing_interval(HOUR)
            .processing_timeout(HOUR)
            .processing_batch_size(batch_size)
            .processor(move |batch: Vec<E<V>>| lock(&sink).push(batch))
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
    fn check_round(&self, model: &mut Model<V>) -> Result<(), TestCaseError> {
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
        let mut got: Vec<E<V>> = batches.into_iter().flatten().collect();
        got.sort_by_key(|e| e.key);
        prop_assert_eq!(got, expected, "delivered entries");
        Ok(())
    }

    fn check_at_rest(&self, model: &Model<V>) -> Result<(), TestCaseError> {
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
fn check_one<V: Value>(
    outcome: Outcome,
    result: Result<bool, PushError<(Key, V)>>,
    sent: (Key, V),
    model: &mut Model<V>,
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

/// Runs `ops` on a map of `V` values and on the model, checking every result and round.
fn run<V: Value>(
    ops: Vec<Op>,
    partitions: usize,
    batch_size: BatchSize,
    capacity: Option<usize>,
) -> Result<(), TestCaseError> {
    let h = Harness::<V>::start(partitions, batch_size, capacity);
    let mut model = Model::new(capacity);
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
                let pairs: Vec<(Key, V)> = keys.into_iter().map(|k| (k, model.value())).collect();
                let refused: Vec<(Key, V)> = pairs
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
                let triples: Vec<(Key, V, u64)> = writes
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
    let late = V::id(0);
    prop_assert_eq!(h.map.put(0, late), Err(PushError::Stopped((0, late))));
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
        run::<u64>(ops, partitions, batch_size, None)?;
    }

    /// With one partition, `capacity` is exact in distinct keys: the model knows which
    /// writes are refused.
    #[test]
    fn capacity_matches_the_model(
        ops in prop::collection::vec(op(FEW_KEYS), 0..80),
        capacity in 1..6usize,
        batch_size in batch_size(),
    ) {
        run::<u64>(ops, 1, batch_size, Some(capacity))?;
    }

    /// As `the_map_matches_the_model`, over many keys: the tables grow, migrate their keys,
    /// and are reused at their grown size after each flush. Each sequence runs twice: on
    /// `u64` values, whose small tables are laid out in lines, and on `Wide` ones, whose
    /// tables keep their states and cells in two arrays.
    #[test]
    fn the_map_matches_the_model_over_many_keys(
        ops in prop::collection::vec(op(MANY_KEYS), 0..300),
        partitions in 1..=2usize,
        batch_size in batch_size(),
    ) {
        run::<u64>(ops.clone(), partitions, batch_size, None)?;
        run::<Wide>(ops, partitions, batch_size, None)?;
    }
}

proptest! {
    // Fewer cases: each one writes the 30 000 keys of `LARGE_FILL` first.
    #![proptest_config(ProptestConfig { cases: config().cases / 4, ..config() })]

    /// As `the_map_matches_the_model`, on large tables, where `put_all` and
    /// `put_all_newer` read eight writes ahead of the one they write: a `put_all` of
    /// [`LARGE_FILL`] other keys comes first (its tables grow past 16 384 slots midway, so it
    /// switches to reading ahead), and the batches run up to 39 writes, across the window's
    /// wrap. The table stays large for the generation after the first flush too, sized for
    /// the keys of the one before.
    #[test]
    fn the_map_matches_the_model_reading_ahead(
        ops in prop::collection::vec(op_with_batches(FEW_KEYS, 40), 0..60),
        partitions in 1..=2usize,
        batch_size in batch_size(),
    ) {
        let fill = Op::PutAll((LARGE_FROM..LARGE_FROM + LARGE_FILL).collect());
        let ops = std::iter::once(fill).chain(ops).collect();
        run::<u64>(ops, partitions, batch_size, None)?;
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
    run::<u64>(ops.clone(), 2, BatchSize::Items(1), None).expect("the model");
    run::<Wide>(ops, 2, BatchSize::Items(1), None).expect("the model, wide values");
    run::<u64>(
        vec![Op::Put(1), Op::Put(2), Op::Put(1)],
        1,
        BatchSize::Table,
        Some(1),
    )
    .expect("the model with capacity");
}
