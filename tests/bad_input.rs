//! Bad input and misuse, one test per row of the README's "Errors and misuse" table: each
//! invalid option or misuse gets the error the table names (or the panic reaches the caller,
//! where the table says so), and the buffer stays sound: nothing it had accepted is lost or
//! duplicated, which every test checks by counting what the processor receives afterwards
//! and by balancing `stats()`.

#![cfg(not(loom))]

mod common;

use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Ev, Recorder, Sink, NEVER};
use tidefall::{
    BatchSize, Entry, Error, HashMap, HashMapBuilder, OptionsUpdate, PushError, Queue,
    QueueBuilder, Stats,
};

fn queue() -> QueueBuilder<u32> {
    Queue::<u32>::builder()
        .processing_interval(NEVER)
        .processor(|_: Vec<u32>| {})
}

fn map() -> HashMapBuilder<u32, u32> {
    HashMap::<u32, u32>::builder()
        .processing_interval(NEVER)
        .processor(|_: Vec<Entry<u32, u32>>| {})
}

/// The option an `Err(InvalidOption)` names; panics on anything else.
fn refused<B: std::fmt::Debug>(result: Result<B, Error>) -> &'static str {
    match result {
        Err(Error::InvalidOption { option, reason }) => {
            assert!(!reason.is_empty(), "{option}: a reason");
            option
        }
        other => panic!("expected InvalidOption, got {other:?}"),
    }
}

/// At rest: nothing buffered, and what was accepted was processed or failed.
fn assert_balanced(stats: Stats, accepted: u64, failed: u64) {
    assert_eq!(stats.buffered, 0, "{stats:?}");
    assert_eq!(stats.failed, failed, "{stats:?}");
    assert_eq!(stats.processed + stats.failed, accepted, "{stats:?}");
}

/// Runs `f`, which must panic; silences nothing (the panic message shows in the output).
fn must_panic<R>(f: impl FnOnce() -> R) {
    assert!(
        catch_unwind(AssertUnwindSafe(f)).is_err(),
        "expected the call to panic"
    );
}

// ---- Options ----

#[test]
fn invalid_start_options_are_refused_naming_the_option() {
    let zero = Duration::ZERO;
    let queue_cases: Vec<(&str, QueueBuilder<u32>)> = vec![
        ("partitions", queue().partitions(0)),
        ("partitions", queue().partitions(65_537)),
        ("partitions", queue().partitions(usize::MAX)),
        ("processing_interval", queue().processing_interval(zero)),
        ("processing_timeout", queue().processing_timeout(zero)),
        ("drain_check_interval", queue().drain_check_interval(zero)),
        ("processing_batch_size", queue().processing_batch_size(0)),
        ("drain_threshold", queue().drain_threshold(0)),
        ("capacity", queue().capacity(0)),
        ("name", queue().name("")),
    ];
    for (option, builder) in queue_cases {
        assert_eq!(refused(builder.start()), option, "Queue");
    }
    let map_cases: Vec<(&str, HashMapBuilder<u32, u32>)> = vec![
        ("partitions", map().partitions(0)),
        ("partitions", map().partitions(65_537)),
        ("partitions", map().partitions(usize::MAX)),
        ("processing_interval", map().processing_interval(zero)),
        ("processing_timeout", map().processing_timeout(zero)),
        ("drain_check_interval", map().drain_check_interval(zero)),
        ("processing_batch_size", map().processing_batch_size(0)),
        ("drain_threshold", map().drain_threshold(0)),
        ("capacity", map().capacity(0)),
        ("name", map().name("")),
    ];
    for (option, builder) in map_cases {
        assert_eq!(refused(builder.start()), option, "HashMap");
    }
}

#[test]
fn a_missing_processor_is_refused() {
    let q = Queue::<u32>::builder().start();
    assert!(matches!(q, Err(Error::MissingProcessor)), "{q:?}");
    let m = HashMap::<u32, u32>::builder().start();
    assert!(matches!(m, Err(Error::MissingProcessor)), "{m:?}");
    // An invalid option is reported before the missing processor.
    let q = Queue::<u32>::builder().partitions(0).start();
    assert_eq!(refused(q), "partitions");
}

/// `Duration::MAX` (and other durations no `Instant` can hold) is valid and means "never";
/// nothing overflows, and `stop` still delivers everything.
#[test]
fn huge_durations_are_accepted_and_never_overflow() {
    let sink = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(Duration::MAX)
        .processing_timeout(Duration::MAX)
        .drain_check_interval(Duration::MAX)
        .drain_threshold(1_000_000)
        .processor(sink.processor())
        .start()
        .expect("huge durations are valid");
    q.push_many(0..10).expect("running");
    q.update_options(
        OptionsUpdate::default()
            .processing_interval(Duration::MAX)
            .processing_timeout(Duration::MAX)
            .drain_check_interval(Duration::MAX),
    )
    .expect("huge durations are valid updates");
    q.flush().expect("flush");
    q.stop().expect("stop");
    assert_eq!(sink.items(), (0..10).collect::<Vec<_>>());
    assert_balanced(q.stats(), 10, 0);
}

/// Every invalid value of `update_options` is refused naming it, and the whole update is
/// dropped: a valid batch size sent along with it does not take effect either.
#[test]
fn invalid_updates_are_refused_and_change_nothing() {
    let zero = Duration::ZERO;
    let cases: Vec<(&str, OptionsUpdate)> = vec![
        (
            "processing_interval",
            OptionsUpdate::default().processing_interval(zero),
        ),
        (
            "processing_timeout",
            OptionsUpdate::default().processing_timeout(zero),
        ),
        (
            "drain_check_interval",
            OptionsUpdate::default().drain_check_interval(zero),
        ),
        (
            "processing_batch_size",
            OptionsUpdate::default().processing_batch_size(0),
        ),
        (
            "drain_threshold",
            OptionsUpdate::default().drain_threshold(0),
        ),
    ];
    let sink = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(4)
        .processor(sink.processor())
        .start()
        .expect("valid options");
    let entries = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&entries);
    let m = HashMap::<u32, u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(4)
        .processor(move |batch: Vec<Entry<u32, u32>>| into.lock().unwrap().push(batch.len()))
        .start()
        .expect("valid options");
    for (option, update) in cases {
        // Sent with a valid batch size of 1, which must not take effect.
        let update = update.processing_batch_size(1);
        let update = if option == "processing_batch_size" {
            update.processing_batch_size(0)
        } else {
            update
        };
        assert_eq!(
            refused(q.update_options(update.clone()).map(|()| "ok")),
            option
        );
        assert_eq!(refused(m.update_options(update).map(|()| "ok")), option);
    }
    q.push_many(0..10).expect("running");
    q.flush().expect("flush");
    let lengths: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    assert_eq!(lengths, [4, 4, 2], "the batch size is still 4");
    m.put_all((0..10).map(|k| (k, k))).expect("running");
    m.flush().expect("flush");
    assert_eq!(
        *entries.lock().unwrap(),
        [4, 4, 2],
        "the batch size is still 4"
    );
    q.stop().expect("stop");
    m.stop().expect("stop");
    assert_balanced(q.stats(), 10, 0);
    assert_balanced(m.stats(), 10, 0);
}

// ---- Lifecycle ----

/// After `stop`, every write comes back whole in `PushError::Stopped`; reads see nothing;
/// `flush`, a second `stop` and `update_options` return `Ok(())` and do nothing.
#[test]
fn writes_after_stop_come_back_and_nothing_else_changes() {
    let sink = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .processor(sink.processor())
        .start()
        .expect("valid options");
    q.push_many(0..5).expect("running");
    q.stop().expect("stop");
    assert_eq!(q.push(7), Err(PushError::Stopped(7)));
    assert_eq!(q.push_keyed("k", 8), Err(PushError::Stopped(8)));
    assert_eq!(q.push_many([9, 10]), Err(PushError::Stopped(vec![9, 10])));
    assert_eq!(q.flush(), Ok(()));
    assert_eq!(q.stop(), Ok(()));
    assert_eq!(
        q.update_options(OptionsUpdate::default().processing_batch_size(3)),
        Ok(())
    );
    assert_eq!((q.len(), q.is_empty()), (0, true));
    let mut got = sink.items();
    got.sort_unstable();
    assert_eq!(
        got,
        [0, 1, 2, 3, 4],
        "exactly what was accepted before stop"
    );
    assert_balanced(q.stats(), 5, 0);

    let entries = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&entries);
    let m = HashMap::<u32, u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .processor(move |batch: Vec<Entry<u32, u32>>| into.lock().unwrap().extend(batch))
        .start()
        .expect("valid options");
    m.put_all((0..5).map(|k| (k, k))).expect("running");
    m.stop().expect("stop");
    assert_eq!(m.put(1, 9), Err(PushError::Stopped((1, 9))));
    assert_eq!(m.put_newer(1, 9, 5), Err(PushError::Stopped((1, 9))));
    assert_eq!(
        m.put_all([(1, 1), (2, 2)]),
        Err(PushError::Stopped(vec![(1, 1), (2, 2)]))
    );
    assert_eq!(
        m.put_all_newer([(1, 1, 1)]),
        Err(PushError::Stopped(vec![(1, 1, 1)]))
    );
    assert_eq!((m.get(&1), m.delete(&1), m.len()), (None, false, 0));
    assert_eq!(m.flush(), Ok(()));
    assert_eq!(m.stop(), Ok(()));
    let mut keys: Vec<u32> = entries.lock().unwrap().iter().map(|e| e.key).collect();
    keys.sort_unstable();
    assert_eq!(keys, [0, 1, 2, 3, 4]);
    assert_balanced(m.stats(), 5, 0);
}

/// Past `capacity`, writes come back in `PushError::Full`; `push_many` / `put_all` keep
/// what fits and return exactly the rest; a HashMap overwrite always fits; a tick frees the
/// room.
#[test]
fn writes_past_capacity_come_back_full() {
    let sink = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .capacity(3)
        .processing_interval(NEVER)
        .processor(sink.processor())
        .start()
        .expect("valid options");
    q.push(0).expect("room");
    assert_eq!(q.push_many([1, 2, 3, 4]), Err(PushError::Full(vec![3, 4])));
    assert_eq!(q.push(5), Err(PushError::Full(5)));
    assert_eq!(q.push_keyed(&1, 6), Err(PushError::Full(6)));
    q.flush().expect("flush");
    q.push(7).expect("room again after the tick");
    q.stop().expect("stop");
    assert_eq!(sink.items(), [0, 1, 2, 7]);
    assert_eq!(q.stats().rejected, 3);
    assert_balanced(q.stats(), 4, 0);

    let entries = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&entries);
    let m = HashMap::<u32, u32>::builder()
        .partitions(1)
        .capacity(2)
        .processing_interval(NEVER)
        .processor(move |batch: Vec<Entry<u32, u32>>| into.lock().unwrap().extend(batch))
        .start()
        .expect("valid options");
    m.put(1, 1).expect("room");
    m.put(2, 2).expect("room");
    assert_eq!(m.put(3, 3), Err(PushError::Full((3, 3))));
    assert_eq!(m.put_newer(4, 4, 1), Err(PushError::Full((4, 4))));
    m.put(1, 10).expect("an overwrite always fits");
    assert_eq!(
        m.put_all([(2, 20), (5, 5)]),
        Err(PushError::Full(vec![(5, 5)]))
    );
    m.stop().expect("stop");
    let mut got: Vec<(u32, u32)> = entries
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.key, e.value))
        .collect();
    got.sort_unstable();
    assert_eq!(got, [(1, 10), (2, 20)]);
    assert_eq!(m.stats().rejected, 3);
    assert_balanced(m.stats(), 2, 0);
}

// ---- User code that panics ----

/// An item whose `Drop` panics when `armed`: dropping a batch holding one panics.
#[derive(Debug)]
struct Bomb {
    id: u32,
    armed: bool,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.armed && !std::thread::panicking() {
            panic!("bomb {} went off in Drop", self.id);
        }
    }
}

/// A processor that reads its batch and drops it at the end, so the `Drop` of an armed item
/// panics inside the call: that batch fails (reported as a panic), the others go through,
/// and the buffer keeps working.
#[test]
fn a_processor_that_panics_dropping_its_batch_fails_that_batch_only() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&seen);
    let recorder = Recorder::new();
    let q = Queue::<Bomb>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(4)
        .observer(recorder.observer())
        .processor(move |batch: Vec<Bomb>| {
            into.lock().unwrap().extend(batch.iter().map(|b| b.id));
        })
        .start()
        .expect("valid options");
    for id in 0..20 {
        q.push(Bomb { id, armed: id == 6 }).expect("running");
    }
    q.flush().expect("flush");
    q.push_many((20..24).map(|id| Bomb { id, armed: false }))
        .expect("running");
    q.stop().expect("stop");
    assert_eq!(*seen.lock().unwrap(), (0..24).collect::<Vec<_>>());
    // The batch 4..8 failed, by a panic: one ProcessingException, one ProcessingFailed.
    assert_balanced(q.stats(), 24, 4);
    let exceptions = recorder.exceptions();
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    assert!(
        matches!(&exceptions[0], Ev::ProcessingException { reason, .. } if reason.contains("bomb 6")),
        "{exceptions:?}"
    );
    assert_eq!(recorder.failed().len(), 1);

    // The same for a map whose values panic when the processor drops them.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&seen);
    let m = HashMap::<u32, Bomb>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .processor(move |batch: Vec<Entry<u32, Bomb>>| {
            into.lock().unwrap().extend(batch.iter().map(|e| e.key));
        })
        .start()
        .expect("valid options");
    for k in 0..5 {
        m.put(
            k,
            Bomb {
                id: k,
                armed: k == 3,
            },
        )
        .expect("running");
    }
    m.flush().expect("flush");
    for k in 5..8 {
        m.put(
            k,
            Bomb {
                id: k,
                armed: false,
            },
        )
        .expect("running");
    }
    m.stop().expect("stop");
    let mut keys = seen.lock().unwrap().clone();
    keys.sort_unstable();
    assert_eq!(keys, (0..8).collect::<Vec<_>>());
    assert_balanced(m.stats(), 8, 5);
}

/// A `sort_by_key` key function that panics: the cycle reports the panic and hands the
/// items over unsorted, none lost and none counted failed; later cycles sort again.
#[test]
fn a_panicking_sort_key_delivers_the_items_unsorted() {
    let sink = Sink::new();
    let recorder = Recorder::new();
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_batch_size(BatchSize::Table)
        .observer(recorder.observer())
        .sort_by_key(|&item: &u32| {
            assert!(item != 13, "the sort key refuses 13");
            std::cmp::Reverse(item)
        })
        .processor(sink.processor())
        .start()
        .expect("valid options");
    q.push_many(0..20).expect("running");
    q.flush().expect("flush");
    let mut first = sink.items();
    first.sort_unstable();
    assert_eq!(first, (0..20).collect::<Vec<_>>(), "every item, once");
    let exceptions = recorder.exceptions();
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    assert!(recorder.failed().is_empty(), "a sort panic fails no batch");

    q.push_many(20..25).expect("running");
    q.stop().expect("stop");
    let second: Vec<u32> = sink.batches()[1].clone();
    assert_eq!(second, [24, 23, 22, 21, 20], "sorted again");
    assert_balanced(q.stats(), 25, 0);
}

/// A `partition_by` key function that panics: the panic reaches the pushing thread, the item
/// it was routing is dropped (never accepted), and everything accepted before and after is
/// delivered. In `push_many`, the items before the panicking one were accepted.
#[test]
fn a_panicking_partition_key_reaches_the_caller_and_loses_nothing_accepted() {
    let sink = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(3)
        .capacity(100)
        .processing_interval(NEVER)
        .partition_by(|&item: &u32| {
            assert!(item % 100 != 13, "the partition key refuses {item}");
            item % 7
        })
        .processor(sink.processor())
        .start()
        .expect("valid options");
    q.push_many(0..10).expect("running");
    must_panic(|| q.push(13));
    must_panic(|| q.push_many([20, 21, 113, 22]));
    q.push(30).expect("running");
    q.flush().expect("flush");
    q.push(31).expect("running");
    q.stop().expect("stop");
    let mut got = sink.items();
    got.sort_unstable();
    let mut want: Vec<u32> = (0..10).collect();
    want.extend([20, 21, 30, 31]);
    assert_eq!(got, want);
    assert_balanced(q.stats(), want.len() as u64, 0);
    assert_eq!((q.stats().rejected, q.len()), (0, 0));
}

/// A key whose `Hash` or `Eq` panics, or whose value's `Clone` (in `get`) panics: the
/// panic reaches the caller, nothing changes for that write, and the map stays sound.
#[derive(Debug, Clone)]
struct Touchy {
    id: u32,
    /// `Hash` panics.
    bad_hash: bool,
    /// `Eq` panics.
    bad_eq: bool,
}

impl Touchy {
    fn good(id: u32) -> Self {
        Touchy {
            id,
            bad_hash: false,
            bad_eq: false,
        }
    }
}

impl Hash for Touchy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        assert!(!self.bad_hash, "Hash of key {} refuses", self.id);
        self.id.hash(state);
    }
}

impl PartialEq for Touchy {
    fn eq(&self, other: &Self) -> bool {
        assert!(
            !(self.bad_eq || other.bad_eq),
            "Eq of key {} refuses",
            self.id
        );
        self.id == other.id
    }
}

impl Eq for Touchy {}

/// A value whose `Clone` panics when `armed`.
#[derive(Debug, PartialEq)]
struct NoClone {
    n: u32,
    armed: bool,
}

impl Clone for NoClone {
    fn clone(&self) -> Self {
        assert!(!self.armed, "Clone of {} refuses", self.n);
        NoClone { ..*self }
    }
}

#[test]
fn panicking_key_hash_eq_and_value_clone_reach_the_caller_and_leave_the_map_sound() {
    let entries = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&entries);
    let m = HashMap::<Touchy, NoClone>::builder()
        .partitions(2)
        .capacity(10)
        .processing_interval(NEVER)
        .processor(move |batch: Vec<Entry<Touchy, NoClone>>| {
            into.lock()
                .unwrap()
                .extend(batch.into_iter().map(|e| (e.key.id, e.value.n)))
        })
        .start()
        .expect("valid options");
    let value = |n: u32| NoClone { n, armed: false };
    m.put(Touchy::good(1), value(1)).expect("running");
    m.put(Touchy::good(2), NoClone { n: 2, armed: true })
        .expect("running");

    let bad_hash = Touchy {
        bad_hash: true,
        ..Touchy::good(3)
    };
    must_panic(|| m.put(bad_hash.clone(), value(3)));
    must_panic(|| m.get(&bad_hash));
    must_panic(|| m.delete(&bad_hash));
    // Key 1 again, with an `Eq` that panics when compared with the stored key 1.
    let bad_eq = Touchy {
        bad_eq: true,
        ..Touchy::good(1)
    };
    must_panic(|| m.put(bad_eq.clone(), value(10)));
    must_panic(|| m.put_newer(bad_eq.clone(), value(10), 5));
    must_panic(|| m.delete(&bad_eq));
    must_panic(|| m.get(&bad_eq));
    // The value of key 2 refuses to be cloned.
    must_panic(|| m.get(&Touchy::good(2)));

    assert_eq!(m.len(), 2, "the panicking calls changed nothing");
    assert_eq!(m.get(&Touchy::good(1)), Some(value(1)));
    m.put(Touchy::good(1), value(11))
        .expect("the slot is not stuck");
    assert!(m.delete(&Touchy::good(2)), "the slot is not stuck");
    m.put(Touchy::good(4), value(4)).expect("running");
    m.flush().expect("flush");
    m.put(Touchy::good(5), value(5)).expect("running");
    m.stop().expect("stop");
    let mut got = entries.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, [(1, 11), (4, 4), (5, 5)]);
    assert_balanced(m.stats(), 3, 0);
}

/// Keys written before a `put_all` so that its partitions' tables are large (past 16 384
/// slots, with two partitions), where it reads eight pairs ahead of the one it writes.
const LARGE_FILL: u32 = 30_000;
/// The first of the [`LARGE_FILL`] keys, above the keys the tests write after them.
const LARGE_FROM: u32 = 1_000;

/// Entries a test's processor got, as two numbers each: `(key, value id)` for `Bomb`
/// values, `(key id, value)` for [`recording_map`].
type Recorded = Arc<Mutex<Vec<(u32, u32)>>>;

/// A map of two partitions that drains only when asked, and the entries its processor got,
/// as `(id(key), value)`.
fn recording_map<K>(id: fn(&K) -> u32) -> (HashMap<K, u32>, Recorded)
where
    K: Hash + Eq + Send + 'static,
{
    let entries = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&entries);
    let m = HashMap::<K, u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .processor(move |batch: Vec<Entry<K, u32>>| {
            into.lock()
                .unwrap()
                .extend(batch.into_iter().map(|e| (id(&e.key), e.value)))
        })
        .start()
        .expect("valid options");
    (m, entries)
}

/// When a key's `Hash` panics in `put_all`, the panic reaches the caller and the pairs
/// written before it stay: on small tables, every pair before it; on large ones, where
/// `put_all` hashes each key as it reads it, eight pairs ahead of its write, the pairs at
/// least eight places before it (the others are dropped unwritten).
#[test]
fn a_panicking_hash_in_put_all_keeps_exactly_the_pairs_written_before_it() {
    let pairs = |bad: u32| {
        (0..20).map(move |id| {
            let key = Touchy {
                bad_hash: id == bad,
                ..Touchy::good(id)
            };
            (key, id)
        })
    };
    for large in [false, true] {
        let (m, entries) = recording_map(|key: &Touchy| key.id);
        let fill = if large { LARGE_FILL } else { 0 };
        let filler = (LARGE_FROM..LARGE_FROM + fill).map(|id| (Touchy::good(id), id));
        m.put_all(filler).expect("running");
        // Stored before key 15's hash runs: 0..=14 on small tables, 0..=7 on large ones.
        let kept = if large { 8 } else { 15 };
        must_panic(|| m.put_all(pairs(15)));
        assert_eq!(m.len(), fill as usize + kept as usize, "large: {large}");
        for id in 0..20 {
            let want = (id < kept).then_some(id);
            assert_eq!(m.get(&Touchy::good(id)), want, "key {id}, large: {large}");
        }
        // Within the first eight: on a large table the panic comes before any write (on a
        // small one, keys 0..=4 are written again).
        must_panic(|| m.put_all(pairs(5)));
        assert_eq!(m.len(), fill as usize + kept as usize, "large: {large}");
        m.stop().expect("stop");
        let got = entries.lock().unwrap().len();
        assert_eq!(got, fill as usize + kept as usize, "large: {large}");
        assert_balanced(m.stats(), (fill + kept) as u64, 0);
    }
}

/// The maps that [`StopKey`]'s `Hash` stops, by index.
static STOPPED_FROM_HASH: Mutex<Vec<HashMap<StopKey, u32>>> = Mutex::new(Vec::new());

/// A key whose `Hash` stops the map `STOPPED_FROM_HASH[i]` when `stops` is `Some(i)`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StopKey {
    id: u32,
    stops: Option<usize>,
}

impl Hash for StopKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if let Some(map) = self.stops {
            let map = STOPPED_FROM_HASH.lock().unwrap()[map].clone();
            map.stop().expect("stop");
        }
        self.id.hash(state);
    }
}

/// A buffer stopped in the middle of a `put_all`: the error returns every pair not
/// written, in order (on a large table, the pairs read ahead included), and the processor
/// got the others.
#[test]
fn put_all_stopped_midway_returns_every_pair_not_written_in_order() {
    for large in [false, true] {
        let (m, entries) = recording_map(|key: &StopKey| key.id);
        let index = {
            let mut maps = STOPPED_FROM_HASH.lock().unwrap();
            maps.push(m.clone());
            maps.len() - 1
        };
        let key = |id: u32| StopKey { id, stops: None };
        let fill = if large { LARGE_FILL } else { 0 };
        m.put_all((LARGE_FROM..LARGE_FROM + fill).map(|id| (key(id), id)))
            .expect("running");
        let mut pairs: Vec<(StopKey, u32)> = (0..30).map(|id| (key(id), id)).collect();
        // Hashed as pair 20 is written (small tables), or once pair 12 is (large ones).
        pairs[20].0.stops = Some(index);
        let written = if large { 13 } else { 20 };
        let back = match m.put_all(pairs.clone()) {
            Err(PushError::Stopped(back)) => back,
            other => panic!("expected Stopped, got {other:?}"),
        };
        assert_eq!(back, pairs[written..], "large: {large}");
        let mut got = entries.lock().unwrap().clone();
        got.sort_unstable();
        let mut want: Vec<(u32, u32)> = (0..written as u32).map(|id| (id, id)).collect();
        want.extend((LARGE_FROM..LARGE_FROM + fill).map(|id| (id, id)));
        assert_eq!(got, want, "large: {large}");
        assert_balanced(m.stats(), want.len() as u64, 0);
    }
}

/// A map of one partition with `capacity` for `Bomb` values, and the entries its processor
/// got, as `(key, value id)`.
fn bomb_map(capacity: usize) -> (HashMap<u32, Bomb>, Recorded) {
    let entries: Recorded = Arc::default();
    let into = Arc::clone(&entries);
    let m = HashMap::<u32, Bomb>::builder()
        .partitions(1)
        .capacity(capacity)
        .processing_interval(NEVER)
        .processor(move |batch: Vec<Entry<u32, Bomb>>| {
            into.lock()
                .unwrap()
                .extend(batch.iter().map(|e| (e.key, e.value.id)))
        })
        .start()
        .expect("valid options");
    (m, entries)
}

fn armed(id: u32) -> Bomb {
    Bomb { id, armed: true }
}

fn safe(id: u32) -> Bomb {
    Bomb { id, armed: false }
}

/// A value whose `Drop` panics when it is replaced (`put` over it), ignored (`put_newer`
/// with an old version) or deleted: the write or delete is done, then the panic reaches the
/// caller; nothing else is lost.
#[test]
fn a_value_panicking_in_drop_on_overwrite_or_delete_reaches_the_caller_after_the_write() {
    let (m, entries) = bomb_map(10);
    m.put(1, armed(10)).expect("running");
    must_panic(|| m.put(1, safe(11)));
    assert_eq!(m.len(), 1, "the overwrite happened");
    m.put_newer(2, safe(20), 5).expect("running");
    must_panic(|| m.put_newer(2, armed(21), 5));
    m.put(3, armed(30)).expect("running");
    must_panic(|| m.delete(&3));
    assert_eq!(m.len(), 2, "the delete happened");
    m.put(4, safe(40)).expect("running");
    m.stop().expect("stop");
    let mut got = entries.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, [(1, 11), (2, 20), (4, 40)]);
    assert_balanced(m.stats(), 3, 0);
}

/// With `capacity`, a `delete` whose value panics in `Drop` still gives the key's room back.
#[test]
fn a_delete_panicking_in_drop_gives_back_its_capacity_room() {
    let (m, entries) = bomb_map(2);
    m.put(1, safe(10)).expect("room");
    m.put(2, armed(20)).expect("room");
    must_panic(|| m.delete(&2));
    m.put(3, safe(30))
        .expect("the deleted key's room is free again");
    assert!(matches!(m.put(4, safe(40)), Err(PushError::Full(_))));
    m.stop().expect("stop");
    let mut got = entries.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, [(1, 10), (3, 30)]);
    assert_balanced(m.stats(), 2, 0);
}

/// A key whose `Drop` panics when armed.
#[derive(Debug)]
struct BombKey {
    id: u32,
    armed: bool,
}

impl Hash for BombKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl PartialEq for BombKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for BombKey {}

impl Drop for BombKey {
    fn drop(&mut self) {
        if self.armed && !std::thread::panicking() {
            panic!("key {} went off in Drop", self.id);
        }
    }
}

/// A deleted key stays in its slot until the tick, which drops it: a key whose `Drop`
/// panics there must not cost the other entries of that tick.
#[test]
fn a_deleted_key_panicking_in_drop_at_the_tick_loses_no_other_entry() {
    let keys = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&keys);
    let m = HashMap::<BombKey, u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processor(move |batch: Vec<Entry<BombKey, u32>>| {
            into.lock().unwrap().extend(batch.iter().map(|e| e.key.id))
        })
        .start()
        .expect("valid options");
    for id in 0..10 {
        let key = BombKey { id, armed: id == 3 };
        m.put(key, id).expect("running");
    }
    assert!(m.delete(&BombKey {
        id: 3,
        armed: false
    }));
    m.flush().expect("flush");
    m.stop().expect("stop");
    let mut got = keys.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    assert_balanced(m.stats(), 9, 0);
}

/// `stop` runs user code when the stores close (the drop of deleted keys, above; the store
/// now catches a panic there): whatever the first `stop` returns or raises, a later `stop`
/// and the drop of the last handle return instead of waiting for ever for it to finish.
#[test]
fn a_panic_inside_stop_does_not_hang_later_stops_or_the_drop() {
    let m = HashMap::<BombKey, u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processor(|_: Vec<Entry<BombKey, u32>>| {})
        .start()
        .expect("valid options");
    m.put(BombKey { id: 3, armed: true }, 3).expect("running");
    m.put(
        BombKey {
            id: 4,
            armed: false,
        },
        4,
    )
    .expect("running");
    assert!(m.delete(&BombKey {
        id: 3,
        armed: false
    }));
    let other = m.clone();
    // The closing store drops key 3, whose `Drop` panics; either way the buffer is stopped.
    let first = catch_unwind(AssertUnwindSafe(|| m.stop()));
    assert!(matches!(first, Err(_) | Ok(Ok(()))), "{first:?}");
    let (done, returned) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let second = other.stop();
        drop(other);
        drop(m);
        let _ = done.send(second);
    });
    let second = returned
        .recv_timeout(common::GENEROUS)
        .expect("the later stop and the drop returned");
    assert_eq!(second, Ok(()));
}

/// A processor that calls `flush` or `stop` on its own buffer waits for its own cycle: it
/// cannot deadlock for good, because every wait ends at `processing_timeout`; the cycle is
/// then given up on and its items counted failed.
#[test]
fn a_processor_that_flushes_or_stops_its_own_buffer_times_out_instead_of_hanging() {
    const TIMEOUT: Duration = Duration::from_millis(200);
    let slot: Arc<Mutex<Option<Queue<u32>>>> = Arc::default();
    let inner = Arc::clone(&slot);
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&outcomes);
    let delivered = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&delivered);
    let q = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .processing_timeout(TIMEOUT)
        .thread_pool(common::pool("self-flush", 2))
        .processor(move |batch: Vec<u32>| {
            count.fetch_add(batch.len() as u64, Ordering::SeqCst);
            let me = inner.lock().unwrap().clone();
            if let Some(me) = me {
                let outcome = match batch[0] {
                    0 => me.flush(),
                    _ => me.stop(),
                };
                record.lock().unwrap().push(outcome);
            }
        })
        .start()
        .expect("valid options");
    *slot.lock().unwrap() = Some(q.clone());

    let started = Instant::now();
    q.push_many([0, 1]).expect("running");
    q.flush()
        .expect("flush returns once the cycle is given up on");
    // The inner flush returns once the cycle it asked for ran (empty): item 2 must not
    // reach that one, whose processor would then be the one to call stop.
    assert!(
        common::wait_until(common::GENEROUS, || outcomes.lock().unwrap().len() == 1),
        "the inner flush returned"
    );
    q.push(2).expect("running");
    let stop = q.stop();
    assert!(started.elapsed() < TIMEOUT * 20, "{:?}", started.elapsed());
    slot.lock().unwrap().take();
    assert!(
        common::wait_until(common::GENEROUS, || outcomes.lock().unwrap().len() == 2),
        "both calls from inside returned"
    );
    // The inner flush waited for the cycle it runs in, which was given up on at the
    // timeout (its two items failed); the outer stop's final cycle, whose processor called
    // stop and waited for the outer one, timed out the same way (one item failed).
    assert_eq!(*outcomes.lock().unwrap(), [Ok(()), Ok(())]);
    assert_eq!(stop, Err(Error::Timeout));
    assert_eq!(
        delivered.load(Ordering::SeqCst),
        3,
        "every item reached the processor"
    );
    assert_balanced(q.stats(), 3, 3);
}

/// An observer that panics on every event: the buffer goes on, nothing is lost.
#[test]
fn a_panicking_observer_is_isolated() {
    let called = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&called);
    let sink = Sink::new();
    let q = Queue::<u32>::builder()
        .partitions(2)
        .processing_interval(NEVER)
        .observer(move |_: &tidefall::Event<'_>| {
            flag.store(true, Ordering::SeqCst);
            panic!("the observer refuses");
        })
        .processor(sink.processor())
        .start()
        .expect("valid options");
    q.push_many(0..50).expect("running");
    q.flush().expect("flush");
    q.push(50).expect("running");
    q.stop().expect("stop");
    assert!(called.load(Ordering::SeqCst));
    let mut got = sink.items();
    got.sort_unstable();
    assert_eq!(got, (0..51).collect::<Vec<_>>());
    assert_balanced(q.stats(), 51, 0);
}
