//! Loom models of the lock-free open-addressing store behind a `HashMap` partition
//! (`src/raw/table.rs`, exposed under `--cfg loom` as `tidefall::loom_api::Tables`).
//!
//! Run with (release: loom is slow in debug):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom_table
//! ```
//!
//! Under loom a side's first table has 2 slots and grows past one key with a value, so the
//! second insert links the next table (4 slots) and migrates the first one into it. The
//! models pick the hashes (the store takes the caller's hash as is): `hash(index, tag)`; a
//! model's [`Key`] carries the hash it was written with, which the store's migrations
//! compute again.
//!
//! The protocol under test: a writer loads the generation word, probes the side's tables from
//! its `current` one; it claims an empty slot with one CAS (then asks `admit`), or locks the
//! key's slot (tag match, then key compare under the lock) and replaces the value in place,
//! or, in a linked table, moves an empty slot and goes on to the next table. An insert that
//! takes a table past its threshold links a table twice as big and migrates every slot into
//! it (lock, hash the key again, place it by that hash, copy, release the new slot keyed and
//! the old one moved). A take prepares the other side, stores the next generation, then seals every slot
//! and link of the old side (waiting for holders) and moves the entries out.
//!
//! Each model thread passes its own number (see [`me`]), so a model's first writer *owns*
//! the store: its overwrites and inserts take no slot lock, bracketed by its write counter
//! and the light side of the fence pair; the taker (heavy fence, then a wait for the owner's
//! write in progress) and a second writer (which shares the store for good the same way)
//! must not overlap them. Models 7 and 8 race an owner write with a sharer and with the
//! tick, model 9 with the tick after the owner's own growth (its view of the side's current
//! table), model 10 with the tick that resets a side for reuse, models 11 and 12 the owner's
//! migration (its slots moved as owner writes) with the tick and with a sharer, model 13 two
//! inserts counted on two stripes of a table's count with growth and a delete; the other
//! models' first writers own their stores too, so their inserts and growth run as owner
//! writes where the model has one writer.
//!
//! Every model checks real outcomes: the write results (`Inserted` / `Replaced` / `Ignored`),
//! the exact drained entries (key, value, version, `updates`), that a key is drained once
//! per generation, and that every value is dropped exactly once (a [`Val`] records its drops
//! in a [`Ledger`]) after the drained entries and the store are dropped: a value replaced in
//! place is dropped at once by the replacing writer, never leaked, never dropped twice. Key
//! and value cells are `loom::cell::UnsafeCell`s, so loom also reports a cell touched by two
//! threads without a happens-before edge (a slot lock or seal with a wrong ordering).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use tidefall::loom_api::{Refused, Tables, Write, Written};
use tidefall::Entry;

mod common;

use common::{model, Ledger, Tracked as Val};

// ---------------------------------------------------------------------------------------------
// Harness.
// ---------------------------------------------------------------------------------------------

type Store = Tables<Key, Val>;
type Out = Vec<Entry<Key, Val>>;
type Outcome = Result<Written, Refused>;

/// A model's key: its number, and the hash the model gave it, which the store computes
/// again for every key it moves into a new table. Equal by number alone; borrowed as its
/// number, for `get` and `delete`.
#[derive(Debug, Clone, Copy)]
struct Key {
    id: u32,
    hash: u64,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Key {}

impl std::borrow::Borrow<u32> for Key {
    fn borrow(&self) -> &u32 {
        &self.id
    }
}

/// An empty store that hashes a key as the model did when it wrote it.
fn store() -> Store {
    Tables::new(Box::new(|key: &Key| key.hash))
}

/// A hash for slot `index` (in every table) with tag `tag`.
fn hash(index: u64, tag: u64) -> u64 {
    (tag << 48) | index
}

/// The calling model thread's number, as `routing::this_thread` gives the handles: unique per
/// thread, never 0. The first thread to write a store owns it, the next one shares it.
fn me() -> usize {
    loom::lazy_static! {
        /// Numbers handed out so far in this execution. Loom makes it anew for each one, so
        /// that every execution numbers its threads alike: a thread's number picks its stripe
        /// of a table's count, and an execution must replay the branches of the one before.
        static ref NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    }
    loom::thread_local! {
        static ME: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    ME.with(|me| *me)
}

/// `put`, with `admit` always granting room; the value comes back on refusal.
fn put(store: &Store, h: u64, key: u32, value: Val) -> Outcome {
    store
        .write(me(), h, Key { id: key, hash: h }, Write::Put(value), || {
            true
        })
        .map_err(|(refused, back_key, back)| {
            assert_eq!(back_key.id, key, "a refused write gave back another key");
            drop(back);
            refused
        })
}

/// `put_newer`, with `admit` always granting room.
fn put_newer(store: &Store, h: u64, key: u32, value: Val, version: u64) -> Outcome {
    store
        .write(
            me(),
            h,
            Key { id: key, hash: h },
            Write::Newer(value, version),
            || true,
        )
        .map_err(|(refused, _, back)| {
            drop(back);
            refused
        })
}

/// Spawns a thread that runs `f` on the store and returns its result.
fn spawn<T, F>(store: &Arc<Store>, f: F) -> thread::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> T + Send + 'static,
{
    let store = Arc::clone(store);
    thread::spawn(move || f(&store))
}

/// Spawns a writer that puts `key` with the value `id` (hash `h`) and returns the outcome.
fn spawn_put(
    store: &Arc<Store>,
    ledger: &std::sync::Arc<Ledger>,
    h: u64,
    key: u32,
    id: u32,
) -> thread::JoinHandle<Outcome> {
    let ledger = std::sync::Arc::clone(ledger);
    spawn(store, move |s| put(s, h, key, Val::new(id, &ledger)))
}

/// Spawns a writer that puts `key` with the value `id` at `version`, with `put_newer`.
fn spawn_put_newer(
    store: &Arc<Store>,
    ledger: &std::sync::Arc<Ledger>,
    h: u64,
    key: u32,
    id: u32,
    version: u64,
) -> thread::JoinHandle<Outcome> {
    let ledger = std::sync::Arc::clone(ledger);
    spawn(store, move |s| {
        put_newer(s, h, key, Val::new(id, &ledger), version)
    })
}

/// Two writers of one key: exactly one inserted and the other replaced. Returns the value id
/// that must be drained: the replacing writer's (writer `n` writes value `n`).
fn one_insert_one_replace(r1: Outcome, r2: Outcome) -> u32 {
    match (r1, r2) {
        (Ok(Written::Inserted), Ok(Written::Replaced)) => 2,
        (Ok(Written::Replaced), Ok(Written::Inserted)) => 1,
        other => panic!("expected one insert and one replace, got {other:?}"),
    }
}

/// Stores key 10 (value 10) in the first table, on index 0: the first table (2 slots) then
/// holds one key, and the next insert takes it past its growth threshold (one key).
fn store_key_10(store: &Store, ledger: &std::sync::Arc<Ledger>) {
    insert(store, ledger, hash(0, 1), 10, 10);
}

/// Puts `key` (hash `h`) with the value `id` into a store that does not hold the key yet, on
/// the calling thread, which then owns the store if it is its first writer.
fn insert(store: &Store, ledger: &std::sync::Arc<Ledger>, h: u64, key: u32, id: u32) {
    assert_eq!(
        put(store, h, key, Val::new(id, ledger)),
        Ok(Written::Inserted)
    );
}

/// Takes once into a fresh vector, checking the returned count.
fn take(store: &Store) -> Out {
    let mut out = Vec::new();
    let n = store.take(&mut out);
    assert_eq!(n, out.len(), "take's count differs from what it appended");
    out
}

/// `(key, value id, version, updates)` of each entry, sorted by key.
fn summary(out: &Out) -> Vec<Row> {
    let mut s: Vec<_> = out
        .iter()
        .map(|e| (e.key.id, e.value.id, e.version, e.updates))
        .collect();
    s.sort_unstable();
    s
}

/// One drained entry as [`summary`] gives it.
type Row = (u32, u32, u64, u64);

/// Takes on a second thread while the calling thread, the store's owner, puts `put` (hash,
/// key, value id), then takes again. Checks the two drains' summaries: `replaced` if the put
/// replaced the key's value in the taken generation, `inserted` if it landed in the next
/// one as an insert. Returns both drains.
fn owner_put_racing_a_take(
    store: &Arc<Store>,
    ledger: &std::sync::Arc<Ledger>,
    (h, key, id): (u64, u32, u32),
    replaced: [&[Row]; 2],
    inserted: [&[Row]; 2],
) -> Vec<Out> {
    let taker = spawn(store, take);
    let written = put(store, h, key, Val::new(id, ledger));
    let first = taker.join().expect("taker");
    let second = take(store);
    let drained = [summary(&first), summary(&second)];
    let expected = match written {
        Ok(Written::Replaced) => replaced,
        Ok(Written::Inserted) => inserted,
        other => panic!("unexpected outcome {other:?}"),
    };
    assert_eq!([drained[0].as_slice(), drained[1].as_slice()], expected);
    vec![first, second]
}

/// After an insert of key 1 (value 1) raced the take that drained `first`, with key 10
/// (value 10) stored before it: takes again, and checks that key 10 was drained by the first
/// take and key 1 exactly once, by either, then finishes the store.
fn key_1_once_beside_key_10(store: Arc<Store>, first: Out, ledger: &Ledger) {
    let second = take(&store);
    let (a, b) = (summary(&first), summary(&second));
    assert!(a.contains(&(10, 10, 0, 0)), "{a:?} / {b:?}");
    let mut all: Vec<_> = a.iter().chain(b.iter()).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        vec![(1, 1, 0, 0), (10, 10, 0, 0)],
        "drains {a:?} / {b:?}"
    );
    finish(store, vec![first, second], ledger, &[1, 10]);
}

/// Drops the store (it must be the last handle) and the drained entries, then checks that
/// every value id in `ids` was dropped exactly once and nothing else was dropped.
fn finish(store: Arc<Store>, outs: Vec<Out>, ledger: &Ledger, ids: &[u32]) {
    drop(store);
    drop(outs);
    ledger.assert_dropped_once(ids);
}

// ---------------------------------------------------------------------------------------------
// Models.
// ---------------------------------------------------------------------------------------------

/// Model 1, two writers claim the same empty slot: both write key 1 into an empty store (same
/// hash, so the same first empty slot). Exactly one claim CAS wins (`Inserted`); the other
/// writer fails its CAS or finds the claim, waits for the key, compares it and replaces the
/// value (`Replaced`). The drain has one entry, holding the replacing writer's value; the
/// winner's value was dropped by the replacement, exactly once.
#[test]
fn same_key_claims_one_slot() {
    model(None, || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        let h = hash(1, 7);
        let w1 = spawn_put(&store, &ledger, h, 1, 1);
        let w2 = spawn_put(&store, &ledger, h, 1, 2);
        let r1 = w1.join().expect("writer 1");
        let r2 = w2.join().expect("writer 2");
        let last = one_insert_one_replace(r1, r2);
        assert_eq!(store.len(), 1);
        let out = take(&store);
        assert_eq!(summary(&out), vec![(1, last, 0, 0)]);
        assert!(store.is_empty());
        finish(store, vec![out], &ledger, &[1, 2]);
    });
}

/// Model 2, put vs put on one stored key: key 1 holds value 0; two writers replace it at
/// once. Both lock the slot in turn and replace in place (`Replaced`, `Replaced`); exactly one
/// of the two values is drained (the one written last), and the value it replaced, and value
/// 0, were dropped exactly once by the replacing writers: nothing leaked, nothing freed twice.
#[test]
fn put_put_on_a_stored_key() {
    model(None, || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        let h = hash(2, 9);
        insert(&store, &ledger, h, 1, 0);
        let w1 = spawn_put(&store, &ledger, h, 1, 1);
        let w2 = spawn_put(&store, &ledger, h, 1, 2);
        assert_eq!(w1.join().expect("writer 1"), Ok(Written::Replaced));
        assert_eq!(w2.join().expect("writer 2"), Ok(Written::Replaced));
        assert_eq!(store.len(), 1);
        let out = take(&store);
        let got = summary(&out);
        assert!(
            got == vec![(1, 1, 0, 0)] || got == vec![(1, 2, 0, 0)],
            "{got:?}"
        );
        finish(store, vec![out], &ledger, &[0, 1, 2]);
    });
}

/// Model 2b, put vs delete on one stored key: key 1 holds value 0; a writer replaces it while
/// the main thread deletes it. The delete always finds a value (true) and drops it; the put
/// either replaced value 0 first (then its own value is the one deleted: the drain is empty)
/// or came after the delete and inserted again (the drain holds it). Every value is dropped
/// exactly once.
#[test]
fn put_vs_delete_one_key() {
    model(None, || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        let h = hash(2, 9);
        insert(&store, &ledger, h, 1, 0);
        let w1 = spawn_put(&store, &ledger, h, 1, 1);
        drop(
            store
                .delete(me(), h, &1)
                .expect("the key always has a value here"),
        );
        let result = w1.join().expect("writer");
        let out = take(&store);
        let got = summary(&out);
        match result {
            Ok(Written::Replaced) => assert!(got.is_empty(), "{got:?}"),
            Ok(Written::Inserted) => assert_eq!(got, vec![(1, 1, 0, 0)]),
            other => panic!("writer: {other:?}"),
        }
        finish(store, vec![out], &ledger, &[0, 1]);
    });
}

/// Model 3, `put_newer` races: key 1 holds value 0 at version 1; writer 1 writes version 2,
/// writer 2 version 3. The highest version always wins (value 2, version 3); writer 2 always
/// replaces; writer 1 replaces (before writer 2) or is ignored (after). `updates` counts the
/// replacements exactly: 2 or 1. The ignored value is dropped by its writer.
#[test]
fn put_newer_highest_version_wins() {
    model(None, || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        let h = hash(3, 5);
        assert_eq!(
            put_newer(&store, h, 1, Val::new(0, &ledger), 1),
            Ok(Written::Inserted)
        );
        let w1 = spawn_put_newer(&store, &ledger, h, 1, 1, 2);
        let w2 = spawn_put_newer(&store, &ledger, h, 1, 2, 3);
        let r1 = w1.join().expect("writer 1");
        let r2 = w2.join().expect("writer 2");
        assert_eq!(r2, Ok(Written::Replaced));
        let updates = match r1 {
            Ok(Written::Replaced) => 2,
            Ok(Written::Ignored) => 1,
            other => panic!("writer 1: {other:?}"),
        };
        let out = take(&store);
        assert_eq!(summary(&out), vec![(1, 2, 3, updates)]);
        finish(store, vec![out], &ledger, &[0, 1, 2]);
    });
}

/// Model 4, writes racing the tick: a writer puts key 1 then key 2 (both on index 0; the
/// second grows the table and migrates it) while the main thread takes; after the join a second take gets the rest. The take
/// prepares the other side, stores the next generation and seals the old side, possibly while
/// the writer holds a claim (it waits for it) or between its two writes. Each write is in
/// exactly one of the two drains, both are `Inserted`, and the writer's order is kept: if key
/// 2 is in the first drain, so is key 1.
#[test]
fn writes_racing_the_tick() {
    model(Some(4), || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        let l = std::sync::Arc::clone(&ledger);
        let writer = spawn(&store, move |s| {
            [
                put(s, hash(0, 1), 1, Val::new(1, &l)),
                put(s, hash(0, 2), 2, Val::new(2, &l)),
            ]
        });
        let first = take(&store);
        let results = writer.join().expect("writer");
        assert_eq!(results, [Ok(Written::Inserted), Ok(Written::Inserted)]);
        let second = take(&store);
        let (a, b) = (summary(&first), summary(&second));
        let mut all: Vec<_> = a.iter().chain(b.iter()).copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            vec![(1, 1, 0, 0), (2, 2, 0, 0)],
            "drains {a:?} / {b:?}"
        );
        assert!(
            !a.iter().any(|e| e.0 == 2) || a.iter().any(|e| e.0 == 1),
            "key 2 drained before key 1: {a:?} / {b:?}"
        );
        assert!(store.is_empty());
        finish(store, vec![first, second], &ledger, &[1, 2]);
    });
}

/// Model 4b, a write racing `close_for_good`: the writer puts key 1 while the main thread
/// closes the store. An accepted write is in the close's drain (the last one: a write it
/// missed would be lost); a refused one is `Closed` and gives its key and value back (the
/// helper drops the value). Afterwards every write is refused.
#[test]
fn write_racing_close_for_good() {
    model(None, || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        let writer = spawn_put(&store, &ledger, hash(1, 1), 1, 1);
        let mut closed = Vec::new();
        let n = store.close_for_good(&mut closed);
        assert_eq!(n, closed.len());
        match writer.join().expect("writer") {
            Ok(Written::Inserted) => assert_eq!(summary(&closed), vec![(1, 1, 0, 0)]),
            Err(Refused::Closed) => assert!(closed.is_empty(), "{:?}", summary(&closed)),
            other => panic!("writer: {other:?}"),
        }
        assert_eq!(
            put(&store, hash(1, 1), 1, Val::new(2, &ledger)),
            Err(Refused::Closed)
        );
        assert!(store.is_empty());
        assert_eq!(take(&store).len(), 0);
        finish(store, vec![closed], &ledger, &[1, 2]);
    });
}

/// Model 5, growth racing a put of the same key: key 10 is stored; two writers put key 1 at
/// once. The one that inserts takes the first table past its threshold, links the 4-slot
/// table and migrates both keys into it, while the other writer finds key 1 in the first
/// table (locked by the migrator: it waits), moved (it follows to the new table), or, having
/// found the old table linked, claims in the new one and races the migrator for it. Exactly
/// one `Inserted` and one `Replaced`; key 1 is drained once, with the replacing writer's
/// value, beside key 10.
#[test]
fn growth_racing_a_put_of_the_same_key() {
    model(Some(3), || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        store_key_10(&store, &ledger);
        let h = hash(1, 3);
        let w1 = spawn_put(&store, &ledger, h, 1, 1);
        let w2 = spawn_put(&store, &ledger, h, 1, 2);
        let r1 = w1.join().expect("writer 1");
        let r2 = w2.join().expect("writer 2");
        let last = one_insert_one_replace(r1, r2);
        assert_eq!(store.len(), 2);
        let out = take(&store);
        assert_eq!(summary(&out), vec![(1, last, 0, 0), (10, 10, 0, 0)]);
        finish(store, vec![out], &ledger, &[1, 2, 10]);
    });
}

/// Model 5b, growth racing the tick: key 10 is stored; a writer puts key 1, which links the
/// next table and migrates the first one, while the main thread takes. The take may seal the
/// first table before the writer claims (the writer starts over in the next generation),
/// while it migrates (the migrator finds a slot or the new table sealed and stops, leaving
/// the rest where it is: the take drains both tables), or after. Key 1 is drained exactly
/// once, in either take; key 10, stored before the take, in the first.
#[test]
fn growth_racing_the_tick() {
    model(Some(3), || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        store_key_10(&store, &ledger);
        let writer = spawn_put(&store, &ledger, hash(1, 3), 1, 1);
        let first = take(&store);
        assert_eq!(writer.join().expect("writer"), Ok(Written::Inserted));
        key_1_once_beside_key_10(store, first, &ledger);
    });
}

/// Model 6, a migration racing writes of the key it moves: key 10 is stored; one writer
/// inserts key 1 (which grows the table and migrates key 10) while another replaces key 10
/// with `put_newer`. The replacement lands whether it
/// locks key 10 before the move (in the first table: the migrator then moves the new value)
/// or after (it follows the moved slot to the new table): key 10 is drained once, with the
/// new value and `updates` 1, and its old value was dropped once.
#[test]
fn migration_racing_writes_of_the_moved_key() {
    model(Some(2), || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        assert_eq!(
            put_newer(&store, hash(0, 1), 10, Val::new(10, &ledger), 1),
            Ok(Written::Inserted)
        );
        let grower = spawn_put(&store, &ledger, hash(1, 3), 1, 1);
        let l = std::sync::Arc::clone(&ledger);
        let replacer = spawn(&store, move |s| {
            put_newer(s, hash(0, 1), 10, Val::new(11, &l), 2)
        });
        assert_eq!(grower.join().expect("grower"), Ok(Written::Inserted));
        assert_eq!(replacer.join().expect("replacer"), Ok(Written::Replaced));
        assert_eq!(store.len(), 2);
        let out = take(&store);
        assert_eq!(summary(&out), vec![(1, 1, 0, 0), (10, 11, 2, 1)]);
        finish(store, vec![out], &ledger, &[1, 10, 11]);
    });
}

/// Model 7, an owner write racing a second writer of the same key: the main thread stores key
/// 1 (value 1), which makes it the store's owner, then overwrites it (value 2) without a slot
/// lock while a second thread puts it (value 3), which shares the store: it stores
/// `SHARING`, runs the heavy fence and waits for the owner's write in progress, if any. Both
/// writes replace, the drain holds whichever came last, and the value it replaced and the
/// first one are dropped once each. Loom's cell tracking reports the owner's unlocked write
/// and the sharer's locked one touching the value cell without a happens-before edge, were
/// the fence pair or the wait wrong.
#[test]
fn owner_write_racing_a_sharer() {
    model(None, || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        let h = hash(0, 1);
        insert(&store, &ledger, h, 1, 1);
        let sharer = spawn_put(&store, &ledger, h, 1, 3);
        let owner = put(&store, h, 1, Val::new(2, &ledger));
        let shared = sharer.join().expect("sharer");
        assert_eq!(
            (owner, shared),
            (Ok(Written::Replaced), Ok(Written::Replaced))
        );
        let out = take(&store);
        let drained = summary(&out);
        assert!(
            drained == [(1, 2, 0, 0)] || drained == [(1, 3, 0, 0)],
            "drained {drained:?}"
        );
        finish(store, vec![out], &ledger, &[1, 2, 3]);
    });
}

/// Model 8, an owner write racing the tick: the main thread owns the store (it stored key 1,
/// value 1) and a second thread takes while the owner overwrites the key (value 2) without a
/// slot lock. The taker stores the next generation, then waits for the owner's write in
/// progress behind the heavy fence before it seals: the overwrite lands either in the taken
/// generation (the take drains value 2) or, having loaded the new generation word, in the
/// next one as an insert (the take drains value 1, the next take value 2). Never both values
/// in one drain, never a value lost, and loom checks the taker's reads of the cells against
/// the owner's unlocked write.
#[test]
fn owner_write_racing_the_tick() {
    model(None, || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        let h = hash(0, 1);
        insert(&store, &ledger, h, 1, 1);
        let drains = owner_put_racing_a_take(
            &store,
            &ledger,
            (h, 1, 2),
            [&[(1, 2, 0, 0)], &[]],
            [&[(1, 1, 0, 0)], &[(1, 2, 0, 0)]],
        );
        finish(store, drains, &ledger, &[1, 2]);
    });
}

/// Model 9, the owner's view across its own growth and a tick: the main thread owns the
/// store and inserts keys 1 and 2 (values 1 and 2); the second insert takes the 2-slot table
/// past its threshold, so the owner links a 4-slot table and migrates both keys into it,
/// forgetting its view of the first table. Then a second thread takes while the owner
/// overwrites key 1 (value 3): the owner's write starts from the table its view now loads,
/// the newest one, and lands either in the taken generation (the take drains values 3 and 2)
/// or in the next one as an insert (the take drains 1 and 2, the next take 3). Never a value
/// in the table whose keys moved, never one lost or drained twice.
#[test]
fn owner_view_across_growth_and_the_tick() {
    model(None, || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        let (h1, h2) = (hash(0, 1), hash(1, 2));
        insert(&store, &ledger, h1, 1, 1);
        insert(&store, &ledger, h2, 2, 2);
        let drains = owner_put_racing_a_take(
            &store,
            &ledger,
            (h1, 1, 3),
            [&[(1, 3, 0, 0), (2, 2, 0, 0)], &[]],
            [&[(1, 1, 0, 0), (2, 2, 0, 0)], &[(1, 3, 0, 0)]],
        );
        finish(store, drains, &ledger, &[1, 2, 3]);
    });
}

/// Model 10, an owner insert racing the reuse of a side: the main thread owns the store and
/// inserts keys 1 and 2 on indexes 0 and 1, so side 0 grows to a 4-slot table. A take drains
/// them (generation 1, side 1). Then a second thread takes again, resetting side 0's table
/// (kept at its size) for generation 2, while the owner inserts key 3 on index 0 (another
/// tag): into generation 1's table, or into the reset table, on the slot key 1 held two
/// generations before. A third thread then puts key 3 through the general path: it must
/// replace the owner's value in the same generation, not insert a second copy of the key,
/// and every value is drained or dropped once.
#[test]
fn owner_insert_racing_the_reuse_of_a_side() {
    model(None, || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        insert(&store, &ledger, hash(0, 1), 1, 1);
        insert(&store, &ledger, hash(1, 2), 2, 2);
        let first = take(&store);
        assert_eq!(summary(&first), [(1, 1, 0, 0), (2, 2, 0, 0)]);
        let taker = spawn(&store, take);
        insert(&store, &ledger, hash(0, 3), 3, 3);
        let second = taker.join().expect("taker");
        let sharer = spawn_put(&store, &ledger, hash(0, 3), 3, 4);
        let shared = sharer.join().expect("sharer");
        let third = take(&store);
        let drained = [summary(&second), summary(&third)];
        if drained[0].is_empty() {
            // The owner's insert landed in generation 2, as did the sharer's replacement.
            assert_eq!(shared, Ok(Written::Replaced));
            assert_eq!(drained[1], [(3, 4, 0, 0)]);
        } else {
            // In generation 1: drained by the racing take; the sharer inserts in generation 2.
            assert_eq!(drained[0], [(3, 3, 0, 0)]);
            assert_eq!(shared, Ok(Written::Inserted));
            assert_eq!(drained[1], [(3, 4, 0, 0)]);
        }
        finish(store, vec![first, second, third], &ledger, &[1, 2, 3, 4]);
    });
}

/// Model 11, the owner's migration racing the tick: the main thread owns the store (it
/// stored key 10) and inserts key 1, which takes the first table past its threshold, so the
/// owner links the next table and moves the slots as owner writes, one slot per write under
/// loom, while a second thread takes. The taker waits for the owner write in progress; the
/// owner stops at the next run once it loads the new generation word, leaving what has not
/// moved for the taker, or inserts key 1 in the next generation. Key 10 is drained in the
/// first take, key 1 exactly once in either, and loom checks the taker's reads of the
/// moved cells against the owner's unlocked copies.
#[test]
fn owner_migration_racing_the_tick() {
    model(Some(3), || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        store_key_10(&store, &ledger);
        let taker = spawn(&store, take);
        insert(&store, &ledger, hash(1, 3), 1, 1);
        let first = taker.join().expect("taker");
        key_1_once_beside_key_10(store, first, &ledger);
    });
}

/// Model 12, the owner's migration racing a sharer: the main thread owns the store (it
/// stored key 10) and inserts key 1, which grows the table and moves its slots as owner
/// writes, while a second thread replaces key 10, which shares the store. The sharer waits
/// for the owner write in progress; the owner's next run then finds the store shared and
/// moves the remaining slots with locks, as any migrator does. The replacement finds key 10
/// where it is, moved or not: key 10 is drained once with the sharer's value, key 1 once,
/// and loom checks the owner's unlocked copies against the sharer's locked accesses.
#[test]
fn owner_migration_racing_a_sharer() {
    model(Some(3), || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        store_key_10(&store, &ledger);
        let sharer = spawn_put(&store, &ledger, hash(0, 1), 10, 11);
        insert(&store, &ledger, hash(1, 3), 1, 1);
        assert_eq!(sharer.join().expect("sharer"), Ok(Written::Replaced));
        assert_eq!(store.len(), 2);
        let out = take(&store);
        assert_eq!(summary(&out), vec![(1, 1, 0, 0), (10, 11, 0, 0)]);
        finish(store, vec![out], &ledger, &[1, 10, 11]);
    });
}

/// Model 13, new keys counted on two stripes: the main thread owns the store (it stored key
/// 10, on the owner's stripe) and inserts key 2 while a second thread inserts key 1, which
/// shares the store. Under loom a count has two stripes: the second thread counts on stripe
/// 0 (the owner's), the main thread on stripe 0 while it still owns the store and on its own,
/// stripe 1, once it is shared. Each insert may or may not see the other's count when it
/// checks for growth; whichever grows the table, every key lands once. Then the main thread
/// deletes key 1 on stripe 1, which may take that stripe below zero, and `len` still sums to
/// the keys left. The drain holds keys 2 and 10.
#[test]
fn new_keys_counted_on_two_stripes() {
    model(Some(3), || {
        let ledger = Ledger::new();
        let store = Arc::new(store());
        store_key_10(&store, &ledger);
        let writer = spawn_put(&store, &ledger, hash(1, 3), 1, 1);
        insert(&store, &ledger, hash(1, 5), 2, 2);
        assert_eq!(writer.join().expect("writer"), Ok(Written::Inserted));
        assert_eq!(store.len(), 3);
        drop(
            store
                .delete(me(), hash(1, 3), &1)
                .expect("key 1 has a value"),
        );
        assert_eq!(store.len(), 2);
        let out = take(&store);
        assert_eq!(summary(&out), vec![(2, 2, 0, 0), (10, 10, 0, 0)]);
        finish(store, vec![out], &ledger, &[1, 2, 10]);
    });
}
