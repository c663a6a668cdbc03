#![cfg(not(loom))]
//! Model-based tests of [`Queue`]: random sequences of operations run against a simple
//! sequential model, checking exactly what the processor received, in what order and in
//! which batches.
//!
//! Every buffer here ticks once an hour, so within a test case only `flush` and `stop` start
//! processing cycles: each *round* (one `flush` or the `stop`) must deliver exactly the items
//! pushed since the previous round.
//!
//! The processor cannot see partitions, so where several partitions are in play the tests
//! learn what they can from the outside: telemetry's `ProcessingStop` gives each partition's
//! cycle size, and which routing groups (the producer thread's unkeyed items, each key)
//! share a batch says which share a partition, a relation that must never change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tidefall::{BatchSize, Error, Event, OptionsUpdate, PushError, Queue, Stats};

const HOUR: Duration = Duration::from_secs(3600);

/// Cases per property: moderate, so the whole file runs in a few seconds in debug builds.
/// `PROPTEST_CASES` overrides it for longer hunts.
const CASES: u32 = 96;

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

// ---------------------------------------------------------------------------------------
// Items
// ---------------------------------------------------------------------------------------

/// Padding that makes an item 1 KiB, so the storage's blocks hold only 16 items and the
/// tests cross block boundaries all the time.
#[derive(Clone, PartialEq, Eq)]
struct Pad([u8; 1000]);

impl Pad {
    fn of(id: u64) -> Self {
        let mut pad = [0u8; 1000];
        for (i, byte) in pad.iter_mut().enumerate() {
            *byte = (id as u8).wrapping_add(i as u8);
        }
        Pad(pad)
    }
}

/// One pushed item: a unique id, the routing key it was pushed with (`None`: routed by the
/// producer thread), a sort rank (used by the `sort_by_key` property only), and whether the
/// processor fails the batch that holds it.
#[derive(Clone, PartialEq, Eq)]
struct Item {
    id: u64,
    key: Option<u8>,
    rank: u8,
    poison: bool,
    pad: Pad,
}

impl Item {
    fn new(id: u64, key: Option<u8>, rank: u8, poison: bool) -> Self {
        Item {
            id,
            key,
            rank,
            poison,
            pad: Pad::of(id),
        }
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let intact = self.pad == Pad::of(self.id);
        write!(f, "#{}", self.id)?;
        if let Some(key) = self.key {
            write!(f, "k{key}")?;
        }
        write!(f, "r{}", self.rank)?;
        if self.poison {
            f.write_str("!")?;
        }
        if !intact {
            f.write_str("(CORRUPT)")?;
        }
        Ok(())
    }
}

fn ids(items: &[Item]) -> Vec<u64> {
    items.iter().map(|item| item.id).collect()
}

// ---------------------------------------------------------------------------------------
// The recording harness
// ---------------------------------------------------------------------------------------

/// What the observer saw.
#[derive(Default)]
struct Seen {
    /// `ProcessingStart` events.
    starts: u64,
    /// `(partition, size)` of each `ProcessingStop` not yet checked.
    stops: Vec<(usize, usize)>,
    /// `ProcessingStop` events ever.
    all_stops: u64,
    /// Sum of `Rejected.count`.
    rejected: u64,
    /// `PartitionStop` events.
    partition_stops: u64,
    /// `ProcessingFailed` events (one per poisoned batch).
    failed: u64,
    /// `ProcessingException` events (there must be none: no processor panics).
    exceptions: u64,
}

struct Harness {
    queue: Queue<Item>,
    partitions: usize,
    /// Batches received and not yet checked.
    batches: Arc<Mutex<Vec<Vec<Item>>>>,
    seen: Arc<Mutex<Seen>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

struct Config {
    partitions: usize,
    batch_size: BatchSize,
    capacity: Option<usize>,
    sort: bool,
}

impl Harness {
    fn start(config: &Config) -> Self {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sink = Arc::clone(&batches);
        let events = Arc::clone(&seen);
        let mut builder = Queue::<Item>::builder()
            .name("proptest")
            .partitions(config.partitions)
            .processing_interval(HOUR)
            .processing_timeout(HOUR)
            .processing_batch_size(config.batch_size)
            .processor(move |batch: Vec<Item>| -> Result<(), String> {
                let poisoned = batch.iter().any(|item| item.poison);
                lock(&sink).push(batch);
                if poisoned {
                    Err("poisoned batch".to_owned())
                } else {
                    Ok(())
                }
            })
            .observer(move |event: &Event<'_>| {
                let mut seen = lock(&events);
                match event {
                    Event::ProcessingStart(_) => seen.starts += 1,
                    Event::ProcessingStop(stop) => {
                        seen.all_stops += 1;
                        seen.stops.push((stop.partition, stop.size));
                    }
                    Event::Rejected(rejected) => seen.rejected += rejected.count,
                    Event::PartitionStop(_) => seen.partition_stops += 1,
                    Event::ProcessingFailed(_) => seen.failed += 1,
                    Event::ProcessingException(_) => seen.exceptions += 1,
                    _ => {}
                }
            });
        if let Some(capacity) = config.capacity {
            builder = builder.capacity(capacity);
        }
        if config.sort {
            builder = builder.sort_by_key(|item: &Item| item.rank);
        }
        let queue = builder.start().expect("valid options");
        Harness {
            queue,
            partitions: config.partitions,
            batches,
            seen,
        }
    }

    /// Batches and `ProcessingStop`s since the last call.
    fn take_round(&self) -> (Vec<Vec<Item>>, Vec<(usize, usize)>) {
        let batches = std::mem::take(&mut *lock(&self.batches));
        let stops = std::mem::take(&mut lock(&self.seen).stops);
        (batches, stops)
    }
}

/// The sequential model shared by the properties.
#[derive(Default)]
struct Model {
    next_id: u64,
    /// Items accepted since the last round, in push order.
    pending: Vec<Item>,
    accepted: u64,
    stopped: bool,
    /// Processor calls so far.
    calls: u64,
    /// `Full` errors returned (a `push_many` refused in part is one).
    full: u64,
    /// Items in poisoned batches, and those batches.
    failed: u64,
    failed_batches: u64,
}

impl Model {
    fn item(&mut self, key: Option<u8>, rank: u8) -> Item {
        self.next_id += 1;
        Item::new(self.next_id, key, rank, false)
    }

    fn poisoned(&mut self) -> Item {
        self.next_id += 1;
        Item::new(self.next_id, None, 0, true)
    }
}

/// Checks a `push` result against the model; returns whether the item was accepted.
fn check_push(
    model: &mut Model,
    item: Item,
    result: Result<(), PushError<Item>>,
    room: bool,
) -> Result<(), TestCaseError> {
    match result {
        Ok(()) => {
            prop_assert!(!model.stopped, "push accepted after stop: {item:?}");
            prop_assert!(room, "push accepted past capacity: {item:?}");
            model.accepted += 1;
            model.pending.push(item);
        }
        Err(PushError::Stopped(back)) => {
            prop_assert!(model.stopped, "Stopped before stop for {item:?}");
            prop_assert_eq!(back, item, "Stopped must carry the item back");
        }
        Err(PushError::Full(back)) => {
            prop_assert!(!model.stopped, "Full after stop (must be Stopped)");
            prop_assert!(!room, "Full with room left, item {item:?}");
            prop_assert_eq!(back, item, "Full must carry the item back");
            model.full += 1;
        }
    }
    Ok(())
}

/// Checks a `push_many` result against the model: `room` items fit.
fn check_push_many(
    model: &mut Model,
    items: Vec<Item>,
    result: Result<(), PushError<Vec<Item>>>,
    room: usize,
) -> Result<(), TestCaseError> {
    if model.stopped {
        match result {
            Err(PushError::Stopped(back)) => prop_assert_eq!(back, items),
            Ok(()) => prop_assert!(items.is_empty(), "push_many accepted after stop"),
            Err(PushError::Full(_)) => prop_assert!(false, "Full after stop"),
        }
        return Ok(());
    }
    let fit = room.min(items.len());
    let mut items = items;
    let rest = items.split_off(fit);
    match result {
        Ok(()) => prop_assert!(rest.is_empty(), "push_many accepted past capacity"),
        Err(PushError::Full(back)) => {
            prop_assert!(!rest.is_empty(), "Full although everything fits");
            prop_assert_eq!(&back, &rest, "Full must carry back exactly the rest");
            // One refused write: `stats.rejected` counts `Full` errors, not items.
            model.full += 1;
        }
        Err(PushError::Stopped(_)) => prop_assert!(false, "Stopped before stop"),
    }
    model.accepted += items.len() as u64;
    model.pending.extend(items);
    Ok(())
}

/// `len`, `is_empty` and `stats` against the model, at rest between rounds.
fn check_at_rest(h: &Harness, model: &Model) -> Result<(), TestCaseError> {
    let pending = if model.stopped {
        0
    } else {
        model.pending.len()
    };
    prop_assert_eq!(h.queue.len(), pending, "len()");
    prop_assert_eq!(h.queue.is_empty(), pending == 0, "is_empty()");
    let stats = h.queue.stats();
    prop_assert_eq!(
        stats.buffered,
        pending as u64,
        "stats.buffered: {:?}",
        stats
    );
    prop_assert_eq!(stats.failed, model.failed, "stats.failed: {:?}", stats);
    prop_assert_eq!(
        stats.processed + stats.failed + stats.buffered,
        model.accepted,
        "stats do not balance: {:?}",
        stats
    );
    prop_assert_eq!(stats.batches, model.calls, "stats.batches: {:?}", stats);
    prop_assert_eq!(stats.rejected, model.full, "stats.rejected: {:?}", stats);
    Ok(())
}

/// Lengths of `len` items cut into batches of `batch_size`.
fn chunk_lengths(len: usize, batch_size: BatchSize) -> Vec<usize> {
    match batch_size {
        BatchSize::Table if len == 0 => vec![],
        BatchSize::Table => vec![len],
        BatchSize::Items(n) => {
            let mut out = vec![n; len / n];
            if len % n != 0 {
                out.push(len % n);
            }
            out
        }
    }
}

/// A routing group: the items pushed with one key, or (`None`) those routed by the thread.
type Group = Option<u8>;

/// What is known about which routing groups share a partition: learnt from batches (a batch
/// comes from one partition) and never allowed to change.
#[derive(Default)]
struct Colocation(BTreeMap<(Group, Group), bool>);

impl Colocation {
    fn learn(&mut self, a: Group, b: Group, together: bool) -> Result<(), TestCaseError> {
        if a == b {
            prop_assert!(together, "group {a:?} split over two partitions");
            return Ok(());
        }
        let pair = if a < b { (a, b) } else { (b, a) };
        match self.0.get(&pair) {
            Some(&known) => prop_assert_eq!(
                known,
                together,
                "groups {:?} and {:?} changed partition relation",
                a,
                b
            ),
            None => {
                self.0.insert(pair, together);
            }
        }
        Ok(())
    }
}

/// Checks one round (a `flush` or the `stop`): what the processor received against what was
/// pending.
fn check_round(
    h: &Harness,
    model: &mut Model,
    batch_size: BatchSize,
    colocation: &mut Colocation,
) -> Result<(), TestCaseError> {
    let pending = std::mem::take(&mut model.pending);
    let (batches, stops) = h.take_round();
    model.calls += batches.len() as u64;
    for batch in batches.iter().filter(|b| b.iter().any(|item| item.poison)) {
        model.failed += batch.len() as u64;
        model.failed_batches += 1;
    }
    let delivered: Vec<Item> = batches.iter().flatten().cloned().collect();

    // Batches are never empty, never over `processing_batch_size`.
    for batch in &batches {
        prop_assert!(!batch.is_empty(), "an empty batch was delivered");
        if let BatchSize::Items(n) = batch_size {
            prop_assert!(batch.len() <= n, "batch of {} > {n}", batch.len());
        }
    }
    // Nothing corrupt, lost, duplicated or invented.
    for item in &delivered {
        prop_assert!(item.pad == Pad::of(item.id), "corrupt item {item:?}");
    }
    let mut want = ids(&pending);
    let mut got = ids(&delivered);
    want.sort_unstable();
    got.sort_unstable();
    prop_assert_eq!(got, want, "delivered multiset differs from what was pushed");

    // Order: the unkeyed items (one producer thread, so one partition) in push order, and
    // each key's items in push order.
    let groups: BTreeSet<Group> = pending.iter().map(|item| item.key).collect();
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
        prop_assert_eq!(got, want, "order of group {:?} not kept", group);
    }

    // Telemetry: at most one cycle per partition per round, sizes adding up; the batches
    // are the cycles cut at `batch_size`.
    let partitions: BTreeSet<usize> = stops.iter().map(|&(p, _)| p).collect();
    prop_assert_eq!(
        partitions.len(),
        stops.len(),
        "two cycles of a partition: {:?}",
        stops
    );
    prop_assert!(partitions.iter().all(|&p| p < h.partitions));
    prop_assert!(
        stops.iter().all(|&(_, size)| size > 0),
        "empty cycle: {stops:?}"
    );
    prop_assert_eq!(
        stops.iter().map(|&(_, size)| size).sum::<usize>(),
        pending.len()
    );
    let mut want_lengths: Vec<usize> = stops
        .iter()
        .flat_map(|&(_, size)| chunk_lengths(size, batch_size))
        .collect();
    let mut got_lengths: Vec<usize> = batches.iter().map(Vec::len).collect();
    want_lengths.sort_unstable();
    got_lengths.sort_unstable();
    prop_assert_eq!(
        got_lengths,
        want_lengths,
        "batches are not the cycles cut at size"
    );

    if h.partitions == 1 {
        // Everything in one partition: the exact push order, cut at the batch size.
        prop_assert_eq!(ids(&delivered), ids(&pending), "order in one partition");
        let lengths: Vec<usize> = batches.iter().map(Vec::len).collect();
        prop_assert_eq!(lengths, chunk_lengths(pending.len(), batch_size));
    }

    // Routing groups: a batch holds one partition's items only; with `Table`, a flush makes
    // exactly one call per non-empty partition, so each group lies in exactly one batch.
    for batch in &batches {
        let in_batch: BTreeSet<Group> = batch.iter().map(|i| i.key).collect();
        for &a in &in_batch {
            for &b in &in_batch {
                colocation.learn(a, b, true)?;
            }
        }
    }
    if batch_size == BatchSize::Table {
        prop_assert!(batches.len() <= h.partitions);
        let batch_of = |group: Group| -> Vec<usize> {
            (0..batches.len())
                .filter(|&b| batches[b].iter().any(|i| i.key == group))
                .collect()
        };
        for &a in &groups {
            let of_a = batch_of(a);
            prop_assert_eq!(of_a.len(), 1, "group {:?} in several Table batches", a);
            for &b in &groups {
                colocation.learn(a, b, of_a == batch_of(b))?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Property 1: operations of every kind against the model
// ---------------------------------------------------------------------------------------

/// An `OptionsUpdate` in model form, each field unset, valid or invalid.
#[derive(Debug, Clone, Default)]
struct Update {
    processing_interval: Option<Duration>,
    processing_timeout: Option<Duration>,
    processing_batch_size: Option<BatchSize>,
    drain_threshold: Option<Option<usize>>,
    drain_check_interval: Option<Duration>,
}

impl Update {
    fn to_options(&self) -> OptionsUpdate {
        let mut update = OptionsUpdate::default();
        if let Some(v) = self.processing_interval {
            update = update.processing_interval(v);
        }
        if let Some(v) = self.processing_timeout {
            update = update.processing_timeout(v);
        }
        if let Some(v) = self.processing_batch_size {
            update = update.processing_batch_size(v);
        }
        if let Some(v) = self.drain_threshold {
            update = update.drain_threshold(v);
        }
        if let Some(v) = self.drain_check_interval {
            update = update.drain_check_interval(v);
        }
        update
    }

    /// The options set to invalid values.
    fn invalid(&self) -> Vec<&'static str> {
        let mut invalid = Vec::new();
        if self.processing_interval == Some(Duration::ZERO) {
            invalid.push("processing_interval");
        }
        if self.processing_timeout == Some(Duration::ZERO) {
            invalid.push("processing_timeout");
        }
        if self.processing_batch_size == Some(BatchSize::Items(0)) {
            invalid.push("processing_batch_size");
        }
        if self.drain_threshold == Some(Some(0)) {
            invalid.push("drain_threshold");
        }
        if self.drain_check_interval == Some(Duration::ZERO) {
            invalid.push("drain_check_interval");
        }
        invalid
    }
}

/// Unset, a long valid duration (no timer may fire during a case), or zero (invalid).
fn long_duration() -> impl Strategy<Value = Option<Duration>> {
    prop_oneof![
        4 => Just(None),
        3 => (1u64..=48).prop_map(|h| Some(HOUR * h as u32)),
        1 => Just(Some(Duration::ZERO)),
    ]
}

fn batch_size() -> impl Strategy<Value = BatchSize> {
    prop_oneof![
        4 => (1usize..=8).prop_map(BatchSize::Items),
        1 => (9usize..=64).prop_map(BatchSize::Items),
        2 => Just(BatchSize::Table),
    ]
}

fn update() -> impl Strategy<Value = Update> {
    let batch = prop_oneof![
        3 => Just(None),
        3 => batch_size().prop_map(Some),
        1 => Just(Some(BatchSize::Items(0))),
    ];
    // A valid threshold is far above anything a case pushes: early drains would add rounds.
    let threshold = prop_oneof![
        4 => Just(None),
        1 => Just(Some(None)),
        1 => (1_000_000usize..=2_000_000).prop_map(|n| Some(Some(n))),
        1 => Just(Some(Some(0))),
    ];
    (
        long_duration(),
        long_duration(),
        batch,
        threshold,
        long_duration(),
    )
        .prop_map(|(interval, timeout, batch, threshold, check)| Update {
            processing_interval: interval,
            processing_timeout: timeout,
            processing_batch_size: batch,
            drain_threshold: threshold,
            drain_check_interval: check,
        })
}

#[derive(Debug, Clone)]
enum Op {
    Push,
    /// An unkeyed item that makes the processor return `Err` for its batch.
    PushPoison,
    PushMany(usize),
    PushKeyed(u8),
    Flush,
    Update(Update),
    Stop,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Push),
        1 => Just(Op::PushPoison),
        3 => (0usize..=20).prop_map(Op::PushMany),
        5 => (0u8..4).prop_map(Op::PushKeyed),
        2 => Just(Op::Flush),
        2 => update().prop_map(Op::Update),
        1 => Just(Op::Stop),
    ]
}

fn run_ops(config: &Config, ops: &[Op]) -> Result<(), TestCaseError> {
    let h = Harness::start(config);
    let mut model = Model::default();
    let mut batch_size = config.batch_size;
    let mut colocation = Colocation::default();
    for op in ops {
        match op {
            Op::Push => {
                let item = model.item(None, 0);
                let result = h.queue.push(item.clone());
                check_push(&mut model, item, result, true)?;
            }
            Op::PushPoison => {
                let item = model.poisoned();
                let result = h.queue.push(item.clone());
                check_push(&mut model, item, result, true)?;
            }
            Op::PushMany(n) => {
                let items: Vec<Item> = (0..*n).map(|_| model.item(None, 0)).collect();
                let result = h.queue.push_many(items.clone());
                check_push_many(&mut model, items, result, usize::MAX)?;
            }
            Op::PushKeyed(key) => {
                let item = model.item(Some(*key), 0);
                let result = h.queue.push_keyed(key, item.clone());
                check_push(&mut model, item, result, true)?;
            }
            Op::Flush => {
                check_at_rest(&h, &model)?;
                prop_assert_eq!(h.queue.flush(), Ok(()));
                if model.stopped {
                    let (batches, stops) = h.take_round();
                    prop_assert!(batches.is_empty() && stops.is_empty(), "flush after stop");
                } else {
                    check_round(&h, &mut model, batch_size, &mut colocation)?;
                }
                check_at_rest(&h, &model)?;
            }
            Op::Update(update) => {
                let result = h.queue.update_options(update.to_options());
                let invalid = update.invalid();
                if invalid.is_empty() {
                    prop_assert_eq!(result, Ok(()), "valid update refused: {:?}", update);
                    if let Some(size) = update.processing_batch_size {
                        batch_size = size;
                    }
                } else {
                    match result {
                        Err(Error::InvalidOption { option, .. }) => prop_assert!(
                            invalid.contains(&option),
                            "InvalidOption names {option}, the invalid ones are {invalid:?}"
                        ),
                        other => prop_assert!(
                            false,
                            "invalid update {update:?} returned {other:?}, not InvalidOption"
                        ),
                    }
                }
            }
            Op::Stop => {
                check_at_rest(&h, &model)?;
                prop_assert_eq!(h.queue.stop(), Ok(()));
                if model.stopped {
                    let (batches, stops) = h.take_round();
                    prop_assert!(batches.is_empty() && stops.is_empty(), "second stop");
                } else {
                    check_round(&h, &mut model, batch_size, &mut colocation)?;
                    model.stopped = true;
                }
                check_at_rest(&h, &model)?;
            }
        }
    }
    finish(h, model, batch_size, &mut colocation)
}

/// Stops the buffer (if the ops did not), checks the last round and the final counters.
fn finish(
    h: Harness,
    mut model: Model,
    batch_size: BatchSize,
    colocation: &mut Colocation,
) -> Result<(), TestCaseError> {
    if !model.stopped {
        check_at_rest(&h, &model)?;
        prop_assert_eq!(h.queue.stop(), Ok(()));
        check_round(&h, &mut model, batch_size, colocation)?;
        model.stopped = true;
    }
    check_at_rest(&h, &model)?;
    let stats: Stats = h.queue.stats();
    prop_assert_eq!(
        stats.processed,
        model.accepted - model.failed,
        "{:?}",
        stats
    );
    prop_assert_eq!(stats.buffered, 0);
    prop_assert_eq!(stats.failed, model.failed);
    let seen = lock(&h.seen);
    prop_assert_eq!(seen.exceptions, 0, "a panic was reported");
    prop_assert_eq!(
        seen.failed,
        model.failed_batches,
        "ProcessingFailed per failed batch"
    );
    prop_assert_eq!(
        stats.ticks,
        seen.starts,
        "ticks vs ProcessingStart: {:?}",
        stats
    );
    prop_assert_eq!(
        seen.starts,
        seen.all_stops,
        "ProcessingStart vs ProcessingStop"
    );
    prop_assert_eq!(
        seen.partition_stops,
        h.partitions as u64,
        "PartitionStop events"
    );
    prop_assert_eq!(
        seen.rejected,
        model.full,
        "sum of Rejected.count vs Full refusals"
    );
    prop_assert_eq!(stats.rejected, model.full);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Pushes (plain, many, keyed), flushes, option updates (valid and invalid) and stops,
    /// on 1 to 4 partitions.
    #[test]
    fn queue_matches_model(
        partitions in 1usize..=4,
        batch_size in batch_size(),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let config = Config { partitions, batch_size, capacity: None, sort: false };
        run_ops(&config, &ops)?;
    }
}

// ---------------------------------------------------------------------------------------
// Property 2: capacity
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum CapOp {
    Push,
    PushMany(usize),
    PushKeyed(u8),
    Flush,
    Stop,
}

fn cap_op() -> impl Strategy<Value = CapOp> {
    prop_oneof![
        6 => Just(CapOp::Push),
        4 => (0usize..=20).prop_map(CapOp::PushMany),
        3 => (0u8..4).prop_map(CapOp::PushKeyed),
        2 => Just(CapOp::Flush),
        1 => Just(CapOp::Stop),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// `capacity(n)` on one partition: exactly `n` items accepted per round before `Full`;
    /// `push_many` accepts what fits and returns exactly the rest; refusals are counted.
    #[test]
    fn capacity_is_exact(
        capacity in 1usize..=40,
        batch_size in batch_size(),
        ops in prop::collection::vec(cap_op(), 0..60),
    ) {
        let config = Config { partitions: 1, batch_size, capacity: Some(capacity), sort: false };
        let h = Harness::start(&config);
        let mut model = Model::default();
        let mut colocation = Colocation::default();
        for op in &ops {
            let room = capacity - model.pending.len();
            match op {
                CapOp::Push => {
                    let item = model.item(None, 0);
                    let result = h.queue.push(item.clone());
                    check_push(&mut model, item, result, room > 0)?;
                }
                CapOp::PushMany(n) => {
                    let items: Vec<Item> = (0..*n).map(|_| model.item(None, 0)).collect();
                    let result = h.queue.push_many(items.clone());
                    check_push_many(&mut model, items, result, room)?;
                }
                CapOp::PushKeyed(key) => {
                    let item = model.item(Some(*key), 0);
                    let result = h.queue.push_keyed(key, item.clone());
                    check_push(&mut model, item, result, room > 0)?;
                }
                CapOp::Flush => {
                    check_at_rest(&h, &model)?;
                    prop_assert_eq!(h.queue.flush(), Ok(()));
                    if !model.stopped {
                        check_round(&h, &mut model, batch_size, &mut colocation)?;
                    }
                    check_at_rest(&h, &model)?;
                }
                CapOp::Stop => {
                    check_at_rest(&h, &model)?;
                    prop_assert_eq!(h.queue.stop(), Ok(()));
                    if !model.stopped {
                        check_round(&h, &mut model, batch_size, &mut colocation)?;
                        model.stopped = true;
                    }
                    check_at_rest(&h, &model)?;
                }
            }
            prop_assert!(model.pending.len() <= capacity);
        }
        finish(h, model, batch_size, &mut colocation)?;
    }
}

// ---------------------------------------------------------------------------------------
// Property 3: sort_by_key
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum SortOp {
    Push(u8),
    PushMany(Vec<u8>),
    PushKeyed(u8, u8),
    Flush,
}

fn sort_op() -> impl Strategy<Value = SortOp> {
    // Few ranks, so that ties (which must keep push order) are common.
    let rank = 0u8..4;
    prop_oneof![
        5 => rank.clone().prop_map(SortOp::Push),
        3 => prop::collection::vec(rank.clone(), 0..=20).prop_map(SortOp::PushMany),
        3 => (0u8..4, rank).prop_map(|(key, rank)| SortOp::PushKeyed(key, rank)),
        2 => Just(SortOp::Flush),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// `sort_by_key` with `BatchSize::Table` on one partition: each flush delivers one batch,
    /// the stable sort of what was pushed since the previous flush.
    #[test]
    fn sort_by_key_is_a_stable_sort_per_flush(
        ops in prop::collection::vec(sort_op(), 0..60),
    ) {
        let config = Config {
            partitions: 1,
            batch_size: BatchSize::Table,
            capacity: None,
            sort: true,
        };
        let h = Harness::start(&config);
        let mut model = Model::default();
        let round = |h: &Harness, model: &mut Model| -> Result<(), TestCaseError> {
            let mut want = std::mem::take(&mut model.pending);
            want.sort_by_key(|item| item.rank);
            let (batches, _) = h.take_round();
            model.calls += batches.len() as u64;
            if want.is_empty() {
                prop_assert!(batches.is_empty(), "a call for an empty flush");
            } else {
                prop_assert_eq!(batches.len(), 1, "Table: one call per flush");
                prop_assert_eq!(ids(&batches[0]), ids(&want), "not the stable sort");
            }
            Ok(())
        };
        for op in &ops {
            match op {
                SortOp::Push(rank) => {
                    let item = model.item(None, *rank);
                    let result = h.queue.push(item.clone());
                    check_push(&mut model, item, result, true)?;
                }
                SortOp::PushMany(ranks) => {
                    let items: Vec<Item> = ranks.iter().map(|&r| model.item(None, r)).collect();
                    let result = h.queue.push_many(items.clone());
                    check_push_many(&mut model, items, result, usize::MAX)?;
                }
                SortOp::PushKeyed(key, rank) => {
                    let item = model.item(Some(*key), *rank);
                    let result = h.queue.push_keyed(key, item.clone());
                    check_push(&mut model, item, result, true)?;
                }
                SortOp::Flush => {
                    check_at_rest(&h, &model)?;
                    prop_assert_eq!(h.queue.flush(), Ok(()));
                    round(&h, &mut model)?;
                    check_at_rest(&h, &model)?;
                }
            }
        }
        prop_assert_eq!(h.queue.stop(), Ok(()));
        round(&h, &mut model)?;
        model.stopped = true;
        check_at_rest(&h, &model)?;
        let stats = h.queue.stats();
        prop_assert_eq!(stats.processed, model.accepted);
    }
}
