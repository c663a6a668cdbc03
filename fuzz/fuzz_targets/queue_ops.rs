//! Fuzzes `Queue<T>` with arbitrary sequences of operations (push, push_many, push_keyed,
//! flush, update_options with valid and invalid values, stop) and arbitrary options (valid
//! and invalid partitions, capacity and batch size; `sort_by_key`; `partition_by`) against a
//! sequential model, asserting exactly what the processor received. Some items make the
//! processor fail their batch, by `Err` or by a panic.
//!
//! The buffer ticks once an hour, so only `flush` and `stop` start processing cycles: each
//! *round* must deliver exactly what was pushed since the previous one. With one partition
//! the model is exact: the round's items in push order (or stably sorted by rank, with
//! `sort_by_key`), cut into batches of `processing_batch_size`. With several partitions the
//! processor cannot tell them apart, so the target checks the multiset, the order of each
//! routing group's items (the items pushed without a key, or with one key, or with one
//! `partition_by` key: a group keeps to one partition, and a stable sort keeps the group's
//! order among equal ranks), the batch sizes against telemetry's per-partition cycle sizes,
//! and that which routing groups share a partition never changes. The counters (`stats()`,
//! the `Rejected`, `ProcessingFailed` and `ProcessingException` events) must match the model
//! exactly.
//!
//! Run: `cargo +nightly fuzz run queue_ops` from the crate root.

#![no_main]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tidefall::{BatchSize, Event, PushError, Queue};

use common::{chunk_lengths, lock, outcome, started, Batch, Fault, Update, HOUR};

const MAX_OPS: usize = 256;
const MAX_MANY: usize = 64;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Modulo 5: 0 is invalid.
    partitions: u8,
    batch: Batch,
    /// Only with one partition (0 is invalid).
    capacity: Option<u8>,
    sort: bool,
    /// Route `push` and `push_many` with `partition_by` (by the item's `Route`).
    partition_by: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// `key` is the item's `partition_by` key when the queue routes by field.
    Push {
        key: u8,
        rank: u8,
        fault: Fault,
    },
    PushMany(Vec<(u8, u8)>),
    PushKeyed {
        key: u8,
        rank: u8,
    },
    Flush,
    Update(Update),
    Stop,
    Check,
}

/// An item's routing group: the items of a group always share a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Route {
    /// Pushed without a key, no `partition_by`: the producer thread's partition.
    Thread,
    /// `push_keyed` with this key.
    Keyed(u8),
    /// Pushed without a key, routed by `partition_by` on this field.
    Field(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    id: u64,
    route: Route,
    rank: u8,
    fault: Fault,
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
    sort: bool,
    partition_by: bool,
    next_id: u64,
    pending: Vec<Item>,
    accepted: u64,
    full: u64,
    failed: u64,
    failed_batches: u64,
    panicked_batches: u64,
    calls: u64,
    stopped: bool,
    /// Which routing groups share a partition, as learnt so far.
    together: BTreeMap<(Route, Route), bool>,
}

impl Model {
    fn item(&mut self, route: Route, rank: u8, fault: Fault) -> Item {
        self.next_id += 1;
        Item {
            id: self.next_id,
            route,
            rank,
            fault,
        }
    }

    /// The route of an item pushed without a key.
    fn unkeyed(&self, key: u8) -> Route {
        if self.partition_by {
            Route::Field(key % 4)
        } else {
            Route::Thread
        }
    }

    fn room(&self) -> usize {
        match self.capacity {
            Some(capacity) => capacity - self.pending.len(),
            None => usize::MAX,
        }
    }

    fn push_result(&mut self, item: Item, result: Result<(), PushError<Item>>) {
        let room = self.room() > 0;
        match result {
            Ok(()) => {
                assert!(!self.stopped, "accepted after stop: {item:?}");
                assert!(room, "accepted past capacity: {item:?}");
                self.accepted += 1;
                self.pending.push(item);
            }
            Err(PushError::Stopped(back)) => {
                assert!(self.stopped, "Stopped before stop");
                assert_eq!(back, item);
            }
            Err(PushError::Full(back)) => {
                assert!(!self.stopped, "Full after stop");
                assert!(!room, "Full with room left");
                assert_eq!(back, item);
                self.full += 1;
            }
        }
    }

    fn push_many_result(&mut self, mut items: Vec<Item>, result: Result<(), PushError<Vec<Item>>>) {
        if self.stopped {
            match result {
                Err(PushError::Stopped(back)) => assert_eq!(back, items),
                Ok(()) => assert!(items.is_empty(), "push_many accepted after stop"),
                Err(PushError::Full(_)) => panic!("Full after stop"),
            }
            return;
        }
        let fit = self.room().min(items.len());
        let rest = items.split_off(fit);
        match result {
            Ok(()) => assert!(rest.is_empty(), "push_many accepted past capacity"),
            Err(PushError::Full(back)) => {
                assert!(!rest.is_empty(), "Full although everything fits");
                assert_eq!(back, rest, "Full must carry back exactly the rest");
                // One refused write: `stats.rejected` counts `Full` errors, not items.
                self.full += 1;
            }
            Err(PushError::Stopped(_)) => panic!("Stopped before stop"),
        }
        self.accepted += items.len() as u64;
        self.pending.extend(items);
    }

    fn learn(&mut self, a: Route, b: Route, together: bool) {
        if a == b {
            assert!(together, "group {a:?} split over two partitions");
            return;
        }
        let pair = if a < b { (a, b) } else { (b, a) };
        let known = *self.together.entry(pair).or_insert(together);
        assert_eq!(
            known, together,
            "groups {a:?}, {b:?} changed partition relation"
        );
    }
}

struct Harness {
    queue: Queue<Item>,
    batches: Arc<Mutex<Vec<Vec<Item>>>>,
    seen: Arc<Mutex<Seen>>,
}

impl Harness {
    fn check_at_rest(&self, model: &Model) {
        let pending = model.pending.len();
        assert_eq!(self.queue.len(), pending, "len()");
        assert_eq!(self.queue.is_empty(), pending == 0, "is_empty()");
        let stats = self.queue.stats();
        assert_eq!(stats.buffered, pending as u64, "{stats:?}");
        assert_eq!(stats.failed, model.failed, "{stats:?}");
        assert_eq!(
            stats.processed + stats.failed + stats.buffered,
            model.accepted,
            "{stats:?}"
        );
        assert_eq!(stats.batches, model.calls, "{stats:?}");
        assert_eq!(stats.rejected, model.full, "{stats:?}");
    }

    /// One round (a flush or the stop): exactly what was pending, in the right batches.
    fn check_round(&self, model: &mut Model) {
        let pending = std::mem::take(&mut model.pending);
        let batches = std::mem::take(&mut *lock(&self.batches));
        let stops = std::mem::take(&mut lock(&self.seen).stops);
        let batch_size = model.batch_size;
        model.calls += batches.len() as u64;
        for batch in &batches {
            assert!(!batch.is_empty(), "empty batch");
            if let BatchSize::Items(n) = batch_size {
                assert!(batch.len() <= n, "batch of {} > {n}", batch.len());
            }
            match batch.iter().map(|item| item.fault).max() {
                Some(Fault::None) | None => {}
                Some(fault) => {
                    model.failed += batch.len() as u64;
                    model.failed_batches += 1;
                    model.panicked_batches += u64::from(fault == Fault::Panic);
                }
            }
        }
        let delivered: Vec<Item> = batches.iter().flatten().cloned().collect();
        let in_order = |mut items: Vec<Item>| {
            if model.sort {
                items.sort_by_key(|item| item.rank);
            }
            items
        };

        if model.partitions == 1 {
            assert_eq!(
                delivered,
                in_order(pending.clone()),
                "one partition: exact delivery"
            );
            let lengths: Vec<usize> = batches.iter().map(Vec::len).collect();
            assert_eq!(lengths, chunk_lengths(pending.len(), batch_size));
        }

        let mut want: Vec<u64> = pending.iter().map(|i| i.id).collect();
        let mut got: Vec<u64> = delivered.iter().map(|i| i.id).collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "delivered multiset");
        for item in &delivered {
            let at = pending
                .binary_search_by_key(&item.id, |i| i.id)
                .expect("a delivered id was pushed");
            assert_eq!(item, &pending[at], "item changed on the way");
        }

        let groups: BTreeSet<Route> = pending.iter().map(|i| i.route).collect();
        for &group in &groups {
            let of_group = |items: &[Item]| -> Vec<Item> {
                items.iter().filter(|i| i.route == group).cloned().collect()
            };
            assert_eq!(
                of_group(&delivered),
                in_order(of_group(&pending)),
                "order of group {group:?}"
            );
        }

        let partitions: BTreeSet<usize> = stops.iter().map(|&(p, _)| p).collect();
        assert_eq!(
            partitions.len(),
            stops.len(),
            "two cycles of a partition: {stops:?}"
        );
        assert!(partitions.iter().all(|&p| p < model.partitions));
        assert!(
            stops.iter().all(|&(_, size)| size > 0),
            "empty cycle {stops:?}"
        );
        assert_eq!(stops.iter().map(|&(_, s)| s).sum::<usize>(), pending.len());
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

        for batch in &batches {
            let in_batch: BTreeSet<Route> = batch.iter().map(|i| i.route).collect();
            for &a in &in_batch {
                for &b in &in_batch {
                    model.learn(a, b, true);
                }
            }
        }
        if batch_size == BatchSize::Table {
            assert!(batches.len() <= model.partitions);
            let batch_of = |group: Route| -> Vec<usize> {
                (0..batches.len())
                    .filter(|&b| batches[b].iter().any(|i| i.route == group))
                    .collect()
            };
            for &a in &groups {
                let of_a = batch_of(a);
                assert_eq!(of_a.len(), 1, "group {a:?} in several Table batches");
                for &b in &groups {
                    model.learn(a, b, of_a == batch_of(b));
                }
            }
        }
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
        input.capacity.map(|c| usize::from(c % 48))
    } else {
        None
    };

    let batches = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = Arc::clone(&batches);
    let events = Arc::clone(&seen);
    let mut builder = Queue::<Item>::builder()
        .partitions(partitions)
        .processing_interval(HOUR)
        .processing_timeout(HOUR)
        .processing_batch_size(batch_size)
        .processor(move |batch: Vec<Item>| -> Result<(), String> {
            let faults: Vec<Fault> = batch.iter().map(|item| item.fault).collect();
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
    if input.sort {
        builder = builder.sort_by_key(|item: &Item| item.rank);
    }
    if input.partition_by {
        builder = builder.partition_by(|item: &Item| item.route);
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
    let Some(queue) = started(builder.start(), &invalid) else {
        return;
    };

    let h = Harness {
        queue,
        batches,
        seen,
    };
    let mut model = Model {
        partitions,
        batch_size,
        capacity,
        sort: input.sort,
        partition_by: input.partition_by,
        next_id: 0,
        pending: Vec::new(),
        accepted: 0,
        full: 0,
        failed: 0,
        failed_batches: 0,
        panicked_batches: 0,
        calls: 0,
        stopped: false,
        together: BTreeMap::new(),
    };

    for op in input.ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Push { key, rank, fault } => {
                let route = model.unkeyed(key);
                let item = model.item(route, rank, fault);
                let result = h.queue.push(item.clone());
                model.push_result(item, result);
            }
            Op::PushMany(items) => {
                let items: Vec<Item> = items
                    .into_iter()
                    .take(MAX_MANY)
                    .map(|(key, rank)| {
                        let route = model.unkeyed(key);
                        model.item(route, rank, Fault::None)
                    })
                    .collect();
                let result = h.queue.push_many(items.clone());
                model.push_many_result(items, result);
            }
            Op::PushKeyed { key, rank } => {
                let key = key % 4;
                let item = model.item(Route::Keyed(key), rank, Fault::None);
                let result = h.queue.push_keyed(&key, item.clone());
                model.push_result(item, result);
            }
            Op::Flush => {
                h.check_at_rest(&model);
                assert_eq!(h.queue.flush(), Ok(()));
                if model.stopped {
                    h.round_after_stop();
                } else {
                    h.check_round(&mut model);
                }
                h.check_at_rest(&model);
            }
            Op::Update(update) => {
                let result = h.queue.update_options(update.to_options());
                model.batch_size = update.check(result, model.batch_size);
            }
            Op::Stop => {
                h.check_at_rest(&model);
                assert_eq!(h.queue.stop(), Ok(()));
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
        assert_eq!(h.queue.stop(), Ok(()));
        h.check_round(&mut model);
        model.stopped = true;
    }
    h.check_at_rest(&model);
    let stats = h.queue.stats();
    assert_eq!(stats.processed, model.accepted - model.failed, "{stats:?}");
    assert_eq!(stats.failed, model.failed, "{stats:?}");
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
