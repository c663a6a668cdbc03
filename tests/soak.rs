//! Soak and fault injection: many items through a `Queue` and a `HashMap` from several
//! producer threads, with processors that randomly panic, return `Err`, or sleep past
//! `processing_timeout`; a controller thread changes the options (`update_options`) and
//! flushes while the producers push, then calls `stop()` while they are still pushing.
//!
//! What it proves, at the end, for each buffer:
//!
//! * nothing is lost: `stats()` balances exactly, `processed + failed` = the items the test
//!   saw accepted, nothing buffered; `rejected` = the `Full` errors the producers got;
//! * nothing is duplicated: no item reaches the processor twice, and none that was refused
//!   (`Stopped`, handed back to the producer) or deleted reaches it at all; an item refused
//!   `Full` comes back too, and the producer backs off and writes it again;
//! * failures are accounted where they happen: items of calls that returned `Err` or
//!   panicked count as failed, `processed` never exceeds what calls that returned `Ok`
//!   received, and the items the processor never received (a cycle given up on at its
//!   timeout drops its batches not yet handed over) are all counted failed; without a
//!   timeout the counts match the processor's exactly;
//! * the queue keeps each producer's push order within every call. (Across calls, a call
//!   given up on at its timeout legitimately overlaps the partition's later calls; the
//!   order across calls is checked by `queue_stress` and the `concurrent` fuzz target.)
//!
//! Size: `TIDEFALL_SOAK_ITEMS` items in all (half through each buffer), default 10^6. The
//! long run: `TIDEFALL_SOAK_ITEMS=100000000 cargo test --release --test soak -- --nocapture`
//! (a summary line per buffer). Not run under Miri (the processor sleeps past timeouts).

#![cfg(not(loom))]

use std::panic::resume_unwind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidefall::{
    BatchSize, Entry, Error, Event, FailureReason, HashMap, OptionsUpdate, PushError, Queue,
};

const DEFAULT_ITEMS: u64 = 1_000_000;
const PARTITIONS: usize = 4;
/// Per partition: stalls (slow calls) make producers meet it.
const CAPACITY: usize = 20_000;
/// The processing timeouts the controller switches between; a slow call sleeps past both.
const TIMEOUTS: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(300)];
const SLOW: Duration = Duration::from_millis(400);
/// At most one slow call per this period, so that a run's length follows its size.
const SLOW_EVERY: Duration = Duration::from_millis(500);
/// One call in this many panics; as many return `Err`; as many try to be slow.
const FAULT_ONE_IN: u64 = 100;
/// Producers push this share of their items, wait for the controller to start `stop()`,
/// and push the rest while it stops the buffer.
const STOP_AT_PERCENT: u64 = 90;
/// How many short sleeps spread each producer's items over time.
const PACE_STEPS: u64 = 1000;
/// Set on item ids pushed with `push_keyed`, which keep no per-thread order.
const KEYED: u64 = 1 << 63;

fn total_items() -> u64 {
    std::env::var("TIDEFALL_SOAK_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ITEMS)
}

/// SplitMix64: small, fast, good enough to pick faults and options.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One bit per item id.
struct Bits(Vec<AtomicU64>);

impl Bits {
    fn new(n: u64) -> Self {
        Bits((0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }

    /// Sets bit `i`; whether it was set already.
    fn set(&self, i: u64) -> bool {
        let bit = 1 << (i % 64);
        // Relaxed: the bits are read after the threads that set them are joined.
        self.0[(i / 64) as usize].fetch_or(bit, Ordering::Relaxed) & bit != 0
    }

    fn words(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().map(|w| w.load(Ordering::Relaxed))
    }
}

/// Relaxed counters: read after every thread that writes them is joined or stopped.
#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the processor side saw.
struct Tracker {
    items: u64,
    /// The buffer delivers a producer's unkeyed items in push order (a queue).
    ordered: bool,
    producers: u64,
    /// Items the processor received.
    seen: Bits,
    /// Items not accepted: refused (`Stopped`) or deleted.
    not_accepted: Bits,
    duplicates: Counter,
    seen_total: Counter,
    /// Items in calls that returned `Ok`.
    seen_ok: Counter,
    /// Items in calls that returned `Err` or panicked.
    seen_failed: Counter,
    panics: Counter,
    errors: Counter,
    slow: Counter,
    order_breaks: Counter,
    /// Map entries that are not what was written.
    malformed: Counter,
    /// Milliseconds since `start` of the last slow call.
    last_slow: AtomicU64,
    start: Instant,
    calls: AtomicU64,
}

/// What a processor call does.
enum Fault {
    None,
    Panic,
    Err,
    Slow,
}

impl Tracker {
    fn new(items: u64, producers: u64, ordered: bool) -> Self {
        Tracker {
            items,
            ordered,
            producers,
            seen: Bits::new(items),
            not_accepted: Bits::new(items),
            duplicates: Counter::default(),
            seen_total: Counter::default(),
            seen_ok: Counter::default(),
            seen_failed: Counter::default(),
            panics: Counter::default(),
            errors: Counter::default(),
            slow: Counter::default(),
            order_breaks: Counter::default(),
            malformed: Counter::default(),
            last_slow: AtomicU64::new(0),
            start: Instant::now(),
            calls: AtomicU64::new(0),
        }
    }

    fn per_producer(&self) -> u64 {
        self.items / self.producers
    }

    fn fault(&self) -> Fault {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut rng = Rng(call.wrapping_mul(0xA076_1D64_78BD_642F));
        match rng.below(FAULT_ONE_IN * 3) {
            0 => Fault::Panic,
            1 => Fault::Err,
            2 => {
                let now = self.start.elapsed().as_millis() as u64;
                let last = self.last_slow.load(Ordering::Relaxed);
                let due = now >= last + SLOW_EVERY.as_millis() as u64;
                if due
                    && self
                        .last_slow
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    Fault::Slow
                } else {
                    Fault::None
                }
            }
            _ => Fault::None,
        }
    }

    /// One processor call on the items `ids` (as pushed, `KEYED` flag included).
    fn process(&self, ids: &[u64]) -> Result<(), String> {
        let fault = self.fault();
        let len = ids.len() as u64;
        self.seen_total.add(len);
        let mut last = vec![0; self.producers as usize];
        for &id in ids {
            if self.seen.set(id & !KEYED) {
                self.duplicates.add(1);
            }
            if self.ordered && id & KEYED == 0 {
                // A call's batch is a run of one partition's items in push order, and a
                // producer's unkeyed items share a partition: within a call they increase.
                let producer = ((id / self.per_producer()).min(self.producers - 1)) as usize;
                if last[producer] > id {
                    self.order_breaks.add(1);
                }
                last[producer] = id + 1;
            }
        }
        match fault {
            Fault::None => {
                self.seen_ok.add(len);
                Ok(())
            }
            Fault::Slow => {
                self.slow.add(1);
                std::thread::sleep(SLOW);
                self.seen_ok.add(len);
                Ok(())
            }
            Fault::Err => {
                self.errors.add(1);
                self.seen_failed.add(len);
                Err("injected error".to_owned())
            }
            Fault::Panic => {
                self.panics.add(1);
                self.seen_failed.add(len);
                // No panic hook (no backtrace capture per injected panic); caught the same.
                resume_unwind(Box::new("injected panic"))
            }
        }
    }
}

/// What the producers did.
#[derive(Default)]
struct Produced {
    attempted: Counter,
    accepted: Counter,
    /// `Full` errors returned (a partly refused `push_many` counts once); the producer
    /// backs off and writes the items again.
    full_errors: Counter,
    /// Items handed back by `Stopped`: refused for good.
    stopped_items: Counter,
    /// Map entries removed by `delete` (accepted, then not).
    deleted: Counter,
    /// The controller is about to call `stop()`.
    stopping: AtomicBool,
}

impl Produced {
    /// Called by a producer before each write of the item at `done` of its `per`. It
    /// sleeps 1 ms every `per / PACE_STEPS` items, so that the controller's updates land
    /// among the writes whatever the run's size; past `STOP_AT_PERCENT` it waits until the
    /// controller starts stopping the buffer.
    fn pace(&self, done: u64, per: u64) {
        if done % (per / PACE_STEPS).max(1) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        if done >= per / 100 * STOP_AT_PERCENT {
            while !self.stopping.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// How long a producer backs off after a `Full` error before it writes again.
const BACKOFF: Duration = Duration::from_micros(50);

impl Produced {
    /// Writes one item until it is accepted, retrying after each `Full`; the item comes back
    /// only when the buffer is stopped.
    fn one<T>(&self, mut item: T, write: impl Fn(T) -> Result<(), PushError<T>>) -> Option<T> {
        loop {
            match write(item) {
                Ok(()) => {
                    self.accepted.add(1);
                    return None;
                }
                Err(PushError::Full(back)) => {
                    self.full_errors.add(1);
                    item = back;
                    std::thread::sleep(BACKOFF);
                }
                Err(PushError::Stopped(back)) => return Some(back),
            }
        }
    }

    /// Writes items in order until all are accepted, retrying what comes back `Full`;
    /// returns the items refused because the buffer is stopped.
    fn many<T>(
        &self,
        mut items: Vec<T>,
        write: impl Fn(Vec<T>) -> Result<(), PushError<Vec<T>>>,
    ) -> Vec<T> {
        loop {
            let n = items.len() as u64;
            match write(items) {
                Ok(()) => {
                    self.accepted.add(n);
                    return Vec::new();
                }
                Err(PushError::Full(back)) => {
                    self.full_errors.add(1);
                    self.accepted.add(n - back.len() as u64);
                    items = back;
                    std::thread::sleep(BACKOFF);
                }
                Err(PushError::Stopped(back)) => {
                    self.accepted.add(n - back.len() as u64);
                    return back;
                }
            }
        }
    }
}

/// Counts what the observer hears.
#[derive(Default)]
struct Heard {
    timeouts: Counter,
}

fn observer(heard: &Arc<Heard>) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
    let heard = Arc::clone(heard);
    move |event: &Event<'_>| {
        if let Event::ProcessingFailed(failed) = event {
            if *failed.reason == FailureReason::Timeout {
                heard.timeouts.add(1);
            }
        }
    }
}

/// Changes options at random and flushes now and then until the producers attempted
/// `STOP_AT_PERCENT` of the items, then stops the buffer (the producers still push).
fn control(
    seed: u64,
    items: u64,
    produced: &Produced,
    update: impl Fn(OptionsUpdate) -> Result<(), Error>,
    flush: impl Fn() -> Result<(), Error>,
    stop: impl Fn() -> Result<(), Error>,
) -> (u64, Result<(), Error>) {
    let mut rng = Rng(seed);
    let mut updates = 0;
    let producers_pause_at = items / 100 * STOP_AT_PERCENT;
    while produced.attempted.get() < producers_pause_at - producers_pause_at / 20 {
        std::thread::sleep(Duration::from_millis(2 + rng.below(15)));
        let change = match rng.below(6) {
            0 => OptionsUpdate::default().processing_batch_size(match rng.below(6) {
                0 => BatchSize::Table,
                n => BatchSize::Items([3, 7, 64, 512, 4096][n as usize - 1]),
            }),
            1 => OptionsUpdate::default()
                .processing_interval(Duration::from_millis([1, 5, 20][rng.below(3) as usize])),
            2 => OptionsUpdate::default().processing_timeout(TIMEOUTS[rng.below(2) as usize]),
            3 => OptionsUpdate::default()
                .drain_threshold(1_000 + rng.below(50_000) as usize)
                .drain_check_interval(Duration::from_millis(1 + rng.below(10))),
            4 => OptionsUpdate::default().drain_threshold(None),
            _ => {
                flush().expect("flush");
                continue;
            }
        };
        update(change).expect("a valid update");
        updates += 1;
    }
    produced.stopping.store(true, Ordering::Release);
    (updates, stop())
}

/// The final checks and the summary line.
fn check(
    what: &str,
    tracker: &Tracker,
    produced: &Produced,
    heard: &Heard,
    stats: tidefall::Stats,
    stop: &Result<(), Error>,
    updates: u64,
) {
    let accepted = produced.accepted.get() - produced.deleted.get();
    let lost = accepted as i128 - i128::from(stats.processed) - i128::from(stats.failed);
    let timeouts = heard.timeouts.get();
    println!(
        "soak {what}: {} items, {} accepted, {} processed, {} failed, {} Full errors \
         (retried), {} returned Stopped, {} deleted; faults: {} panics, {} errors, {} slow calls \
         ({timeouts} timeouts); {updates} option updates; stop: {stop:?}; {} duplicates, \
         {lost} lost; {:.1} s",
        tracker.items,
        accepted,
        stats.processed,
        stats.failed,
        produced.full_errors.get(),
        produced.stopped_items.get(),
        produced.deleted.get(),
        tracker.panics.get(),
        tracker.errors.get(),
        tracker.slow.get(),
        tracker.duplicates.get(),
        tracker.start.elapsed().as_secs_f64(),
    );
    assert!(stop.is_ok() || *stop == Err(Error::Timeout), "{stop:?}");
    assert_eq!(
        produced.attempted.get(),
        tracker.items,
        "every item was tried"
    );
    let refused = produced.stopped_items.get();
    assert_eq!(produced.accepted.get() + refused, tracker.items);
    assert!(
        produced.stopped_items.get() > 0,
        "stop came while producers pushed"
    );

    assert_eq!(stats.buffered, 0, "{stats:?}");
    assert_eq!(lost, 0, "{stats:?}, accepted {accepted}");
    assert_eq!(stats.rejected, produced.full_errors.get(), "{stats:?}");
    assert_eq!(
        tracker.duplicates.get(),
        0,
        "an item reached the processor twice"
    );
    let mut seen_bits = 0;
    let mut not_accepted_bits = 0;
    for (seen, not_accepted) in tracker.seen.words().zip(tracker.not_accepted.words()) {
        assert_eq!(
            seen & not_accepted,
            0,
            "a refused or deleted item was processed"
        );
        seen_bits += u64::from(seen.count_ones());
        not_accepted_bits += u64::from(not_accepted.count_ones());
    }
    assert_eq!(seen_bits, tracker.seen_total.get());
    assert_eq!(not_accepted_bits, refused + produced.deleted.get());

    let (seen_total, seen_ok, seen_failed) = (
        tracker.seen_total.get(),
        tracker.seen_ok.get(),
        tracker.seen_failed.get(),
    );
    assert!(stats.processed <= seen_ok, "{stats:?}, seen ok {seen_ok}");
    assert!(
        stats.failed >= seen_failed,
        "{stats:?}, seen failed {seen_failed}"
    );
    assert!(
        seen_total <= accepted,
        "seen {seen_total} > accepted {accepted}"
    );
    assert!(
        accepted - seen_total <= stats.failed,
        "items never handed over must be failed: {stats:?}, seen {seen_total}"
    );
    if timeouts == 0 {
        assert_eq!(seen_total, accepted, "no timeout: every item handed over");
        assert_eq!((stats.processed, stats.failed), (seen_ok, seen_failed));
    }
    assert_eq!(
        tracker.order_breaks.get(),
        0,
        "a producer's items out of push order"
    );
    assert_eq!(tracker.malformed.get(), 0, "an entry not as written");
}

#[test]
#[cfg_attr(miri, ignore)]
fn queue_soak_with_faults_updates_and_stop_under_load() {
    const PRODUCERS: u64 = 4;
    let items = total_items() / 2 / PRODUCERS * PRODUCERS;
    let tracker = Arc::new(Tracker::new(items, PRODUCERS, true));
    let heard = Arc::new(Heard::default());
    let processor = Arc::clone(&tracker);
    let queue = Queue::<u64>::builder()
        .name("soak-queue")
        .partitions(PARTITIONS)
        .capacity(CAPACITY)
        .processing_interval(Duration::from_millis(5))
        .processing_timeout(TIMEOUTS[0])
        .processing_batch_size(512)
        .observer(observer(&heard))
        .processor(move |batch: Vec<u64>| processor.process(&batch))
        .start()
        .expect("valid options");
    let produced = Produced::default();
    let per = items / PRODUCERS;
    let (updates, stop) = std::thread::scope(|s| {
        for p in 0..PRODUCERS {
            let (queue, produced, tracker) = (&queue, &produced, &tracker);
            s.spawn(move || {
                let mut rng = Rng(p + 1);
                let mut id = p * per;
                let end = id + per;
                while id < end {
                    produced.pace(id - p * per, per);
                    let refused = |item: u64| {
                        tracker.not_accepted.set(item & !KEYED);
                        produced.stopped_items.add(1);
                    };
                    match rng.below(100) {
                        0..=2 => {
                            let n = (1 + rng.below(64)).min(end - id);
                            let items: Vec<u64> = (id..id + n).collect();
                            id += n;
                            produced.attempted.add(n);
                            let back = produced.many(items, |items| queue.push_many(items));
                            back.into_iter().for_each(refused);
                        }
                        3..=5 => {
                            let (item, key) = (id | KEYED, rng.below(16));
                            id += 1;
                            produced.attempted.add(1);
                            let back = produced.one(item, |item| queue.push_keyed(&key, item));
                            back.into_iter().for_each(refused);
                        }
                        _ => {
                            let item = id;
                            id += 1;
                            produced.attempted.add(1);
                            let back = produced.one(item, |item| queue.push(item));
                            back.into_iter().for_each(refused);
                        }
                    }
                }
            });
        }
        control(
            0x5eed,
            items,
            &produced,
            |update| queue.update_options(update),
            || queue.flush(),
            || queue.stop(),
        )
    });
    check(
        "queue",
        &tracker,
        &produced,
        &heard,
        queue.stats(),
        &stop,
        updates,
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn hashmap_soak_with_faults_updates_deletes_and_stop_under_load() {
    const PRODUCERS: u64 = 3;
    let items = total_items() / 2 / PRODUCERS * PRODUCERS;
    let tracker = Arc::new(Tracker::new(items, PRODUCERS, false));
    let heard = Arc::new(Heard::default());
    let processor = Arc::clone(&tracker);
    let map = HashMap::<u64, u64>::builder()
        .name("soak-map")
        .partitions(PARTITIONS)
        .capacity(CAPACITY)
        .processing_interval(Duration::from_millis(5))
        .processing_timeout(TIMEOUTS[0])
        .processing_batch_size(512)
        .observer(observer(&heard))
        .processor(move |batch: Vec<Entry<u64, u64>>| {
            // Every key is written once, with its own id as value, by `put` or `put_newer`.
            let odd = batch.iter().filter(|e| e.key != e.value || e.updates != 0);
            processor.malformed.add(odd.count() as u64);
            let ids: Vec<u64> = batch.iter().map(|e| e.key).collect();
            processor.process(&ids)
        })
        .start()
        .expect("valid options");
    let produced = Produced::default();
    let per = items / PRODUCERS;
    let deletes_done = AtomicBool::new(false);
    let (updates, stop) = std::thread::scope(|s| {
        for p in 0..PRODUCERS {
            let (map, produced, tracker) = (&map, &produced, &tracker);
            let deletes_done = &deletes_done;
            s.spawn(move || {
                let mut rng = Rng(p + 101);
                let mut id = p * per;
                let end = id + per;
                while id < end {
                    produced.pace(id - p * per, per);
                    let refused = |key: u64| {
                        tracker.not_accepted.set(key);
                        produced.stopped_items.add(1);
                    };
                    match rng.below(100) {
                        0..=2 => {
                            let n = (1 + rng.below(64)).min(end - id);
                            let pairs: Vec<(u64, u64)> = (id..id + n).map(|k| (k, k)).collect();
                            id += n;
                            produced.attempted.add(n);
                            let back = produced.many(pairs, |pairs| map.put_all(pairs));
                            back.into_iter().for_each(|(key, _)| refused(key));
                        }
                        3 if id > p * per => {
                            // The key written just before: deleted if no tick took it yet.
                            if map.delete(&(id - 1)) {
                                tracker.not_accepted.set(id - 1);
                                produced.deleted.add(1);
                                deletes_done.store(true, Ordering::Relaxed);
                            }
                        }
                        4..=6 => {
                            let (key, version) = (id, 1 + rng.below(9));
                            id += 1;
                            produced.attempted.add(1);
                            let back = produced.one((key, key), |(key, value)| {
                                let stored = map.put_newer(key, value, version)?;
                                assert!(stored, "a new key always stores");
                                Ok(())
                            });
                            back.into_iter().for_each(|(key, _)| refused(key));
                        }
                        _ => {
                            let key = id;
                            id += 1;
                            produced.attempted.add(1);
                            let back = produced.one((key, key), |(k, v)| map.put(k, v));
                            back.into_iter().for_each(|(key, _)| refused(key));
                        }
                    }
                }
            });
        }
        control(
            0x5eed + 1,
            items,
            &produced,
            |update| map.update_options(update),
            || map.flush(),
            || map.stop(),
        )
    });
    assert!(
        deletes_done.load(Ordering::Relaxed),
        "some deletes took effect"
    );
    check(
        "hashmap",
        &tracker,
        &produced,
        &heard,
        map.stats(),
        &stop,
        updates,
    );
}

/// The bookkeeping itself: a bit set twice is a duplicate.
#[test]
fn the_bit_sets_detect_duplicates() {
    let bits = Bits::new(130);
    assert!(!bits.set(129));
    assert!(bits.set(129));
    assert!(!bits.set(0));
    assert_eq!(bits.words().map(u64::count_ones).sum::<u32>(), 2);
}
