//! Fuzzes `HashMap<K, V>` with arbitrary sequences of operations (put, put_newer, put_all,
//! put_all_newer, delete, get, flush, update_options with valid and invalid values, stop)
//! and arbitrary options (valid and invalid partitions, capacity and batch size) against a
//! sequential model: a `BTreeMap` of the current tick. Some values make the processor fail
//! their batch, by `Err` or by a panic.
//!
//! The map ticks once an hour, so only `flush` and `stop` start processing cycles: each
//! *round* must deliver exactly the model's tick, one `Entry { key, value, version, updates }`
//! per key (values are unique write ids, so an entry names the very write that won), no key
//! twice in a batch, and batches cut at `processing_batch_size` (exactly, with one
//! partition; against telemetry's per-partition cycle sizes otherwise). Every return value
//! (`put_newer`'s stored flag, `put_all_newer`'s count, `get`, `delete`, the pairs a refusal
//! carries back), `len()`, `stats()` and the `Rejected`, `ProcessingFailed` and
//! `ProcessingException` events must match the model exactly.
//!
//! Run: `cargo +nightly fuzz run hashmap_ops` from the crate root.

#![no_main]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tidefall::{BatchSize, Entry, Event, HashMap, PushError};

use common::{chunk_lengths, lock, outcome, started, Batch, Fault, Update, HOUR};

const MAX_OPS: usize = 256;
const MAX_MANY: usize = 32;
/// Keys are few, so that writes collide all the time.
const KEYS: u8 = 16;
/// Versions are few, so that equal and older versions are common.
const VERSIONS: u8 = 8;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Modulo 5: 0 is invalid.
    partitions: u8,
    batch: Batch,
    /// Only with one partition (0 is invalid).
    capacity: Option<u8>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Put(u8, Fault),
    PutNewer(u8, u8, Fault),
    PutAll(Vec<u8>),
    PutAllNewer(Vec<(u8, u8)>),
    Delete(u8),
    Get(u8),
    Flush,
    Update(Update),
    Stop,
    Check,
}

type Key = u8;

/// A value: the unique id of the write that stored it, and what it does to its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Value {
    id: u64,
    fault: Fault,
}

type E = Entry<Key, Value>;

/// What one key holds in the model's current tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    value: Value,
    version: u64,
    updates: u64,
}

/// What the model says a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Stored,
    Ignored,
    Full,
    Stopped,
}

#[derive(Default)]
struct Seen {
    starts: u64,
    stops: Vec<(usize, usize)>,
    rejected: u64,
    failed: u64,
    exceptions: u64,
    partition_stops: u64,
}

struct Model {
    partitions: usize,
    batch_size: BatchSize,
    capacity: Option<usize>,
    tick: BTreeMap<Key, Stored>,
    next_id: u64,
    /// Entries accepted: keys that held a value when a round drained them.
    accepted: u64,
    full: u64,
    failed: u64,
    failed_batches: u64,
    panicked_batches: u64,
    calls: u64,
    stopped: bool,
}

impl Model {
    fn value(&mut self, fault: Fault) -> Value {
        self.next_id += 1;
        Value {
            id: self.next_id,
            fault,
        }
    }

    /// Applies a write (`version: None` for `put`).
    fn write(&mut self, key: Key, value: Value, version: Option<u64>) -> Outcome {
        if self.stopped {
            return Outcome::Stopped;
        }
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

    /// Checks a single write's result against the model's outcome.
    fn check_one(&mut self, outcome: Outcome, result: Result<bool, PushError<(Key, Value)>>) {
        match (outcome, result) {
            (Outcome::Stored, Ok(true)) | (Outcome::Ignored, Ok(false)) => {}
            (Outcome::Full, Err(PushError::Full(_))) => self.full += 1,
            (Outcome::Stopped, Err(PushError::Stopped(_))) => {}
            (outcome, result) => panic!("model {outcome:?}, map {result:?}"),
        }
    }

    /// The entries the next round must deliver, by key; the tick starts afresh.
    fn drain(&mut self) -> Vec<E> {
        let entries: Vec<E> = std::mem::take(&mut self.tick)
            .into_iter()
            .map(|(key, s)| Entry {
                key,
                value: s.value,
                version: s.version,
                updates: s.updates,
            })
            .collect();
        self.accepted += entries.len() as u64;
        entries
    }
}

/// Checks what a `put_all` or `put_all_newer` returned: `refused` holds what the model
/// refused, in order, and whether it refused it for being stopped.
fn check_many<T: PartialEq + std::fmt::Debug>(
    model: &mut Model,
    refused: Vec<(T, Outcome)>,
    result: Result<(), PushError<Vec<T>>>,
) {
    let stopped = refused.iter().any(|(_, o)| *o == Outcome::Stopped);
    let refused: Vec<T> = refused.into_iter().map(|(t, _)| t).collect();
    match result {
        Ok(()) => assert!(refused.is_empty(), "accepted what the model refused"),
        Err(PushError::Full(back)) => {
            assert!(!stopped, "Full after stop");
            assert_eq!(back, refused, "the refused, in order");
            model.full += 1;
        }
        Err(PushError::Stopped(back)) => {
            assert!(stopped, "Stopped before stop");
            assert_eq!(back, refused, "the refused, in order");
        }
    }
}

struct Harness {
    map: HashMap<Key, Value>,
    batches: Arc<Mutex<Vec<Vec<E>>>>,
    seen: Arc<Mutex<Seen>>,
}

impl Harness {
    fn check_at_rest(&self, model: &Model) {
        let buffered = model.tick.len();
        assert_eq!(self.map.len(), buffered, "len()");
        assert_eq!(self.map.is_empty(), buffered == 0, "is_empty()");
        let stats = self.map.stats();
        assert_eq!(stats.buffered, buffered as u64, "{stats:?}");
        assert_eq!(stats.processed, model.accepted - model.failed, "{stats:?}");
        assert_eq!(stats.failed, model.failed, "{stats:?}");
        assert_eq!(stats.rejected, model.full, "{stats:?}");
        assert_eq!(stats.batches, model.calls, "{stats:?}");
    }

    /// One round (a flush or the stop): exactly the model's tick, in the right batches.
    fn check_round(&self, model: &mut Model) {
        let expected = model.drain();
        let batches = std::mem::take(&mut *lock(&self.batches));
        let stops = std::mem::take(&mut lock(&self.seen).stops);
        let batch_size = model.batch_size;
        model.calls += batches.len() as u64;
        for batch in &batches {
            assert!(!batch.is_empty(), "empty batch");
            let distinct: BTreeSet<Key> = batch.iter().map(|e| e.key).collect();
            assert_eq!(distinct.len(), batch.len(), "a key twice in one batch");
            if let BatchSize::Items(n) = batch_size {
                assert!(batch.len() <= n, "batch of {} > {n}", batch.len());
            }
            match batch.iter().map(|e| e.value.fault).max() {
                Some(Fault::None) | None => {}
                Some(fault) => {
                    model.failed += batch.len() as u64;
                    model.failed_batches += 1;
                    model.panicked_batches += u64::from(fault == Fault::Panic);
                }
            }
        }
        let mut got: Vec<E> = batches.iter().flatten().cloned().collect();
        got.sort_by_key(|e| e.key);
        assert_eq!(got, expected, "delivered entries");

        if model.partitions == 1 {
            let lengths: Vec<usize> = batches.iter().map(Vec::len).collect();
            assert_eq!(lengths, chunk_lengths(expected.len(), batch_size));
        }
        let partitions: BTreeSet<usize> = stops.iter().map(|&(p, _)| p).collect();
        assert_eq!(partitions.len(), stops.len(), "two cycles of a partition");
        assert!(partitions.iter().all(|&p| p < model.partitions));
        assert!(stops.iter().all(|&(_, size)| size > 0), "empty cycle");
        let mut want_lengths: Vec<usize> = stops
            .iter()
            .flat_map(|&(_, size)| chunk_lengths(size, batch_size))
            .collect();
        let mut got_lengths: Vec<usize> = batches.iter().map(Vec::len).collect();
        want_lengths.sort_unstable();
        got_lengths.sort_unstable();
        assert_eq!(
            got_lengths, want_lengths,
            "batches are the cycles cut at size"
        );
    }

    fn round_after_stop(&self) {
        assert!(lock(&self.batches).is_empty(), "delivery after stop");
        assert!(lock(&self.seen).stops.is_empty(), "cycle after stop");
    }
}

fn run(input: Input) {
    let partitions = usize::from(input.partitions % 5);
    let batch_size = input.batch.size();
    let capacity = if partitions == 1 {
        input.capacity.map(|c| usize::from(c % 24))
    } else {
        None
    };

    let batches = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = Arc::clone(&batches);
    let events = Arc::clone(&seen);
    let mut builder = HashMap::<Key, Value>::builder()
        .partitions(partitions)
        .processing_interval(HOUR)
        .processing_timeout(HOUR)
        .processing_batch_size(batch_size)
        .processor(move |batch: Vec<E>| -> Result<(), String> {
            let faults: Vec<Fault> = batch.iter().map(|e| e.value.fault).collect();
            lock(&sink).push(batch);
            outcome(faults)
        })
        .observer(move |event: &Event<'_>| {
            let mut seen = lock(&events);
            match event {
                Event::ProcessingStart(_) => seen.starts += 1,
                Event::ProcessingStop(stop) => seen.stops.push((stop.partition, stop.size)),
                Event::Rejected(rejected) => seen.rejected += rejected.count,
                Event::ProcessingFailed(_) => seen.failed += 1,
                Event::ProcessingException(_) => seen.exceptions += 1,
                Event::PartitionStop(_) => seen.partition_stops += 1,
                _ => {}
            }
        });
    if let Some(capacity) = capacity {
        builder = builder.capacity(capacity);
    }

    let mut invalid = Vec::new();
    if partitions == 0 {
        invalid.push("partitions");
    }
    if capacity == Some(0) {
        invalid.push("capacity");
    }
    if batch_size == BatchSize::Items(0) {
        invalid.push("processing_batch_size");
    }
    let Some(map) = started(builder.start(), &invalid) else {
        return;
    };

    let h = Harness { map, batches, seen };
    let mut model = Model {
        partitions,
        batch_size,
        capacity,
        tick: BTreeMap::new(),
        next_id: 0,
        accepted: 0,
        full: 0,
        failed: 0,
        failed_batches: 0,
        panicked_batches: 0,
        calls: 0,
        stopped: false,
    };

    for op in input.ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Put(key, fault) => {
                let (key, value) = (key % KEYS, model.value(fault));
                let outcome = model.write(key, value, None);
                let result = h.map.put(key, value);
                if let Err(error) = &result {
                    assert_eq!(error.clone().into_inner(), (key, value), "the pair back");
                }
                model.check_one(outcome, result.map(|()| true));
            }
            Op::PutNewer(key, version, fault) => {
                let (key, value) = (key % KEYS, model.value(fault));
                let version = u64::from(version % VERSIONS);
                let outcome = model.write(key, value, Some(version));
                let result = h.map.put_newer(key, value, version);
                if let Err(error) = &result {
                    assert_eq!(error.clone().into_inner(), (key, value), "the pair back");
                }
                model.check_one(outcome, result);
            }
            Op::PutAll(keys) => {
                let pairs: Vec<(Key, Value)> = keys
                    .into_iter()
                    .take(MAX_MANY)
                    .map(|k| (k % KEYS, model.value(Fault::None)))
                    .collect();
                let refused: Vec<((Key, Value), Outcome)> = pairs
                    .iter()
                    .map(|&(k, v)| ((k, v), model.write(k, v, None)))
                    .filter(|(_, o)| matches!(o, Outcome::Full | Outcome::Stopped))
                    .collect();
                let result = h.map.put_all(pairs);
                check_many(&mut model, refused, result);
            }
            Op::PutAllNewer(writes) => {
                let triples: Vec<(Key, Value, u64)> = writes
                    .into_iter()
                    .take(MAX_MANY)
                    .map(|(k, ver)| {
                        let version = u64::from(ver % VERSIONS);
                        (k % KEYS, model.value(Fault::None), version)
                    })
                    .collect();
                let mut stored = 0;
                let mut refused = Vec::new();
                for &(k, v, ver) in &triples {
                    match model.write(k, v, Some(ver)) {
                        Outcome::Stored => stored += 1,
                        Outcome::Ignored => {}
                        outcome => refused.push(((k, v, ver), outcome)),
                    }
                }
                let result = h.map.put_all_newer(triples);
                if let Ok(n) = result {
                    assert_eq!(n, stored, "put_all_newer's count");
                }
                check_many(&mut model, refused, result.map(drop));
            }
            Op::Delete(key) => {
                let key = key % KEYS;
                let want = model.tick.remove(&key).is_some();
                assert_eq!(h.map.delete(&key), want, "delete({key})");
            }
            Op::Get(key) => {
                let key = key % KEYS;
                let want = model.tick.get(&key).map(|s| s.value);
                assert_eq!(h.map.get(&key), want, "get({key})");
            }
            Op::Flush => {
                h.check_at_rest(&model);
                assert_eq!(h.map.flush(), Ok(()));
                if model.stopped {
                    h.round_after_stop();
                } else {
                    h.check_round(&mut model);
                }
                h.check_at_rest(&model);
            }
            Op::Update(update) => {
                let result = h.map.update_options(update.to_options());
                model.batch_size = update.check(result, model.batch_size);
            }
            Op::Stop => {
                h.check_at_rest(&model);
                assert_eq!(h.map.stop(), Ok(()));
                if model.stopped {
                    h.round_after_stop();
                } else {
                    h.check_round(&mut model);
                    model.stopped = true;
                }
                h.check_at_rest(&model);
            }
            Op::Check => h.check_at_rest(&model),
        }
    }

    if !model.stopped {
        h.check_at_rest(&model);
        assert_eq!(h.map.stop(), Ok(()));
        h.check_round(&mut model);
        model.stopped = true;
    }
    h.check_at_rest(&model);
    let stats = h.map.stats();
    let seen = lock(&h.seen);
    assert_eq!(
        seen.exceptions, model.panicked_batches,
        "ProcessingException per panicked batch"
    );
    assert_eq!(
        seen.failed, model.failed_batches,
        "ProcessingFailed per failed batch"
    );
    assert_eq!(stats.ticks, seen.starts, "{stats:?}");
    assert_eq!(seen.rejected, model.full, "sum of Rejected.count");
    assert_eq!(seen.partition_stops, partitions as u64);
}

fuzz_target!(|input: Input| run(input));
