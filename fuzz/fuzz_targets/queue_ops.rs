//! Fuzzes `Queue<T>` with arbitrary sequences of operations (push, push_many, push_keyed,
//! flush, update_options with valid and invalid values, stop) against a sequential model,
//! asserting exactly what the processor received.
//!
//! The buffer ticks once an hour, so only `flush` and `stop` start processing cycles: each
//! *round* must deliver exactly what was pushed since the previous one. With one partition
//! the model is exact: the round's items in push order (or stably sorted by rank, with
//! `sort_by_key`), cut into batches of `processing_batch_size`. With several partitions the
//! processor cannot tell them apart, so the target checks the multiset, the order of the
//! unkeyed items and of each key's items, the batch sizes against telemetry's per-partition
//! cycle sizes, and that which routing groups share a partition never changes.
//!
//! Run: `cargo +nightly fuzz run queue_ops` from the crate root.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tidefall::{BatchSize, Error, Event, OptionsUpdate, PushError, Queue};

const HOUR: Duration = Duration::from_secs(3600);
const MAX_OPS: usize = 256;
const MAX_MANY: usize = 64;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Modulo 5: 0 is invalid.
    partitions: u8,
    batch: Batch,
    /// Only with one partition (0 is invalid).
    capacity: Option<u8>,
    /// Only with one partition.
    sort: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Batch {
    /// `Items(0)` is invalid.
    Items(u8),
    Table,
}

impl Batch {
    fn size(self) -> BatchSize {
        match self {
            Batch::Items(n) => BatchSize::Items(usize::from(n % 70)),
            Batch::Table => BatchSize::Table,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Push { rank: u8, poison: bool },
    PushMany(Vec<u8>),
    PushKeyed { key: u8, rank: u8 },
    Flush,
    Update(Update),
    Stop,
    Check,
}

#[derive(Arbitrary, Debug)]
enum Threshold {
    Off,
    Zero,
    /// Far above anything a run pushes: early drains would add rounds.
    Huge,
}

/// Durations are in hours, so that no timer fires during a run; 0 is invalid.
#[derive(Arbitrary, Debug)]
struct Update {
    interval: Option<u8>,
    timeout: Option<u8>,
    batch: Option<Batch>,
    threshold: Option<Threshold>,
    check: Option<u8>,
}

fn hours(n: u8) -> Duration {
    HOUR * u32::from(n)
}

impl Update {
    fn to_options(&self) -> OptionsUpdate {
        let mut update = OptionsUpdate::default();
        if let Some(h) = self.interval {
            update = update.processing_interval(hours(h));
        }
        if let Some(h) = self.timeout {
            update = update.processing_timeout(hours(h));
        }
        if let Some(batch) = self.batch {
            update = update.processing_batch_size(batch.size());
        }
        if let Some(threshold) = &self.threshold {
            update = update.drain_threshold(match threshold {
                Threshold::Off => None,
                Threshold::Zero => Some(0),
                Threshold::Huge => Some(1 << 40),
            });
        }
        if let Some(h) = self.check {
            update = update.drain_check_interval(hours(h));
        }
        update
    }

    fn invalid(&self) -> Vec<&'static str> {
        let mut invalid = Vec::new();
        if self.interval == Some(0) {
            invalid.push("processing_interval");
        }
        if self.timeout == Some(0) {
            invalid.push("processing_timeout");
        }
        if self.batch.map(Batch::size) == Some(BatchSize::Items(0)) {
            invalid.push("processing_batch_size");
        }
        if matches!(self.threshold, Some(Threshold::Zero)) {
            invalid.push("drain_threshold");
        }
        if self.check == Some(0) {
            invalid.push("drain_check_interval");
        }
        invalid
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    id: u64,
    /// The routing key it was pushed with; `None`: routed by the producer thread.
    key: Option<u8>,
    rank: u8,
    /// The processor fails the batch holding it.
    poison: bool,
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

struct Model {
    partitions: usize,
    batch_size: BatchSize,
    capacity: Option<usize>,
    sort: bool,
    next_id: u64,
    pending: Vec<Item>,
    accepted: u64,
    full: u64,
    failed: u64,
    failed_batches: u64,
    calls: u64,
    stopped: bool,
    /// Which routing groups share a partition, as learnt so far.
    together: BTreeMap<(Option<u8>, Option<u8>), bool>,
}

impl Model {
    fn item(&mut self, key: Option<u8>, rank: u8, poison: bool) -> Item {
        self.next_id += 1;
        Item {
            id: self.next_id,
            key,
            rank,
            poison,
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

    fn learn(&mut self, a: Option<u8>, b: Option<u8>, together: bool) {
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

fn chunk_lengths(len: usize, batch_size: BatchSize) -> Vec<usize> {
    match batch_size {
        BatchSize::Table if len == 0 => vec![],
        BatchSize::Table => vec![len],
        BatchSize::Items(n) => {
            let mut out = vec![n; len / n];
            let rest = len % n;
            if rest > 0 {
                out.push(rest);
            }
            out
        }
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
            if batch.iter().any(|item| item.poison) {
                model.failed += batch.len() as u64;
                model.failed_batches += 1;
            }
        }
        let delivered: Vec<Item> = batches.iter().flatten().cloned().collect();

        if model.partitions == 1 {
            let mut want = pending.clone();
            if model.sort {
                want.sort_by_key(|item| item.rank);
            }
            assert_eq!(delivered, want, "one partition: exact delivery");
            let lengths: Vec<usize> = batches.iter().map(Vec::len).collect();
            assert_eq!(lengths, chunk_lengths(pending.len(), batch_size));
        }

        let mut want: Vec<u64> = pending.iter().map(|i| i.id).collect();
        let mut got: Vec<u64> = delivered.iter().map(|i| i.id).collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "delivered multiset");
        for item in &delivered {
            let original = &pending[pending.binary_search_by_key(&item.id, |i| i.id).unwrap()];
            assert_eq!(item, original, "item changed on the way");
        }

        let groups: BTreeSet<Option<u8>> = pending.iter().map(|i| i.key).collect();
        if !model.sort {
            for &group in &groups {
                let want: Vec<u64> = pending
                    .iter()
                    .filter(|i| i.key == group)
                    .map(|i| i.id)
                    .collect();
                let got: Vec<u64> = delivered
                    .iter()
                    .filter(|i| i.key == group)
                    .map(|i| i.id)
                    .collect();
                assert_eq!(got, want, "order of group {group:?}");
            }
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
            let in_batch: BTreeSet<Option<u8>> = batch.iter().map(|i| i.key).collect();
            for &a in &in_batch {
                for &b in &in_batch {
                    model.learn(a, b, true);
                }
            }
        }
        if batch_size == BatchSize::Table {
            assert!(batches.len() <= model.partitions);
            let batch_of = |group: Option<u8>| -> Vec<usize> {
                (0..batches.len())
                    .filter(|&b| batches[b].iter().any(|i| i.key == group))
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
    let (capacity, sort) = if partitions == 1 {
        (input.capacity.map(|c| usize::from(c % 48)), input.sort)
    } else {
        (None, false)
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
            let poisoned = batch.iter().any(|item| item.poison);
            lock(&sink).push(batch);
            if poisoned {
                Err("poisoned".to_owned())
            } else {
                Ok(())
            }
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
    if sort {
        builder = builder.sort_by_key(|item: &Item| item.rank);
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
    let queue = match builder.start() {
        Ok(queue) => {
            assert!(invalid.is_empty(), "start() accepted invalid {invalid:?}");
            queue
        }
        Err(Error::InvalidOption { option, .. }) => {
            assert!(
                invalid.contains(&option),
                "start() refused {option}, invalid: {invalid:?}"
            );
            return;
        }
        Err(other) => panic!("start() failed: {other}"),
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
        sort,
        next_id: 0,
        pending: Vec::new(),
        accepted: 0,
        full: 0,
        failed: 0,
        failed_batches: 0,
        calls: 0,
        stopped: false,
        together: BTreeMap::new(),
    };

    for op in input.ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Push { rank, poison } => {
                let item = model.item(None, rank, poison);
                let result = h.queue.push(item.clone());
                model.push_result(item, result);
            }
            Op::PushMany(ranks) => {
                let items: Vec<Item> = ranks
                    .into_iter()
                    .take(MAX_MANY)
                    .map(|rank| model.item(None, rank, false))
                    .collect();
                let result = h.queue.push_many(items.clone());
                model.push_many_result(items, result);
            }
            Op::PushKeyed { key, rank } => {
                let key = key % 4;
                let item = model.item(Some(key), rank, false);
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
                let invalid = update.invalid();
                if invalid.is_empty() {
                    assert_eq!(result, Ok(()), "valid update refused: {update:?}");
                    if let Some(batch) = update.batch {
                        model.batch_size = batch.size();
                    }
                } else {
                    match result {
                        Err(Error::InvalidOption { option, .. }) => assert!(
                            invalid.contains(&option),
                            "InvalidOption names {option}, invalid: {invalid:?}"
                        ),
                        other => panic!("invalid update {update:?} returned {other:?}"),
                    }
                }
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
    assert_eq!(seen.exceptions, 0);
    assert_eq!(
        seen.failed, model.failed_batches,
        "ProcessingFailed per failed batch"
    );
    assert_eq!(stats.ticks, seen.starts, "{stats:?}");
    assert_eq!(seen.rejected, model.full, "sum of Rejected.count");
    assert_eq!(seen.partition_stops, partitions as u64);
}

fuzz_target!(|input: Input| run(input));
