//! Loom models of a `Queue` partition's store: the owner's lane in front of the shared
//! segments (`src/raw/staging.rs` and `src/raw/lane.rs`, exposed under `--cfg loom` as
//! `tidefall::loom_api::Staged`).
//!
//! Run with (release: loom is slow in debug):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test 'loom*'
//! ```
//!
//! Under loom a lane block holds 2 values, so a third item crosses a block boundary, and the
//! asymmetric fence pair is a `SeqCst` fence on both sides (loom models fences, not
//! `sys_membarrier`; a store-buffering litmus test with and without the fences confirms that
//! loom tells them apart).
//!
//! What the models check, in every execution:
//!
//! * every item whose push returned `Ok` is taken exactly once, and nothing else is taken;
//! * every item whose push returned `Err` comes back in the error, and is not taken;
//! * each item is dropped exactly once (an [`Item`] records its drops in a [`Ledger`]);
//! * each thread's items are taken in the order it pushed them, and an item pushed after
//!   (happens-before) another thread's item is taken after it, across the lane and the
//!   segments;
//! * cells are read and written through `loom::cell::UnsafeCell`, so loom reports a taker
//!   that reads a value its owner has not published.
#![cfg(loom)]

use arrayvec::ArrayVec;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use tidefall::loom_api::{Own, Staged};

mod common;

use common::{model, Ledger, Tracked as Item};

/// What one writer thread saw: ids accepted and ids given back, in push order.
#[derive(Default)]
struct Outcome {
    accepted: Vec<u32>,
    refused: Vec<u32>,
}

impl Outcome {
    fn push(
        &mut self,
        store: &Staged<Item>,
        thread: usize,
        id: u32,
        ledger: &std::sync::Arc<Ledger>,
    ) {
        self.push_item(store, thread, Item::new(id, ledger));
    }

    fn push_item(&mut self, store: &Staged<Item>, thread: usize, item: Item) {
        let id = item.id;
        match store.push(thread, item) {
            Ok(_) => self.accepted.push(id),
            Err(item) => self.refused.push(item.id),
        }
    }

    fn extend(
        &mut self,
        store: &Staged<Item>,
        thread: usize,
        ids: &[u32],
        ledger: &std::sync::Arc<Ledger>,
    ) {
        let items = ids.iter().map(|&id| Item::new(id, ledger)).collect();
        self.extended(ids, store.extend(thread, items));
    }

    /// Records the outcome of an extend of the items `ids`.
    fn extended<C>(&mut self, ids: &[u32], outcome: Result<C, Vec<Item>>) {
        match outcome {
            Ok(_) => self.accepted.extend_from_slice(ids),
            Err(back) => {
                let back: Vec<u32> = back.iter().map(|item| item.id).collect();
                let kept = ids.len() - back.len();
                assert_eq!(back, ids[kept..], "extend gave back a non-suffix");
                self.accepted.extend_from_slice(&ids[..kept]);
                self.refused.extend(back);
            }
        }
    }
}

fn take(store: &Staged<Item>) -> Vec<Item> {
    let mut out = Vec::new();
    store.take(&mut out);
    out
}

fn close(store: &Staged<Item>) -> Vec<Item> {
    let mut out = Vec::new();
    store.close_for_good(&mut out);
    out
}

/// Checks that the taken items (in take order) are exactly the accepted ones, each once,
/// with each writer's accepted ids in push order; returns the taken ids.
fn check_taken(taken: &[Item], writers: &[&Outcome]) -> Vec<u32> {
    let ids: Vec<u32> = taken.iter().map(|item| item.id).collect();
    let mut expected: Vec<u32> = writers.iter().flat_map(|w| w.accepted.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "taken {ids:?}");
    for writer in writers {
        let mine: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| writer.accepted.contains(id))
            .collect();
        assert_eq!(
            mine, writer.accepted,
            "a writer's items out of order: {ids:?}"
        );
    }
    ids
}

/// The owner pushes across a block boundary while the main thread takes: each item is taken
/// once, in order, by this take or the next.
#[test]
fn owner_push_vs_take() {
    model(None, || {
        let ledger = Ledger::new();
        let store = Arc::new(Staged::new());
        let writer = {
            let (store, ledger) = (Arc::clone(&store), std::sync::Arc::clone(&ledger));
            thread::spawn(move || {
                let mut outcome = Outcome::default();
                for id in 0..3 {
                    outcome.push(&store, 1, id, &ledger);
                }
                outcome
            })
        };
        // The take runs on a thread of its own: with the take on the main thread, loom 0.7
        // explores a single interleaving of this model (the take entirely first), so the
        // race would go unchecked.
        let taker = {
            let store = Arc::clone(&store);
            thread::spawn(move || take(&store))
        };
        let outcome = writer.join().expect("writer");
        let mut taken = taker.join().expect("taker");
        taken.extend(take(&store));
        assert!(outcome.refused.is_empty());
        check_taken(&taken, &[&outcome]);
        drop(taken);
        drop(store);
        ledger.assert_dropped_once(&[0, 1, 2]);
    });
}

/// The owner pushes and extends while the main thread closes the store for good: the
/// asymmetric fence pair and settling. An accepted item is in the final take, a refused one
/// comes back, never both, never neither.
#[test]
fn owner_push_and_extend_vs_close_for_good() {
    model(None, || {
        let ledger = Ledger::new();
        let store = Arc::new(Staged::new());
        let writer = {
            let (store, ledger) = (Arc::clone(&store), std::sync::Arc::clone(&ledger));
            thread::spawn(move || {
                let mut outcome = Outcome::default();
                outcome.push(&store, 1, 0, &ledger);
                outcome.extend(&store, 1, &[1, 2], &ledger);
                outcome
            })
        };
        let taken = close(&store);
        let outcome = writer.join().expect("writer");
        check_taken(&taken, &[&outcome]);
        assert!(take(&store).is_empty() && close(&store).is_empty());
        assert_eq!(store.len(), 0);
        drop(taken);
        drop(store);
        ledger.assert_dropped_once(&[0, 1, 2]);
    });
}

/// Two threads write a fresh store at once while the main thread takes: one becomes the
/// owner, the other shares the store; nothing is lost or taken twice.
#[test]
fn install_race_vs_take() {
    model(Some(3), || {
        let ledger = Ledger::new();
        let store = Arc::new(Staged::new());
        let writers: Vec<_> = (1..=2)
            .map(|thread_number| {
                let (store, ledger) = (Arc::clone(&store), std::sync::Arc::clone(&ledger));
                thread::spawn(move || {
                    let mut outcome = Outcome::default();
                    let base = thread_number as u32 * 10;
                    outcome.push(&store, thread_number, base, &ledger);
                    outcome.push(&store, thread_number, base + 1, &ledger);
                    outcome
                })
            })
            .collect();
        let mut taken = take(&store);
        let outcomes: Vec<Outcome> = writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect();
        taken.extend(close(&store));
        check_taken(&taken, &[&outcomes[0], &outcomes[1]]);
        drop(taken);
        drop(store);
        ledger.assert_dropped_once(&[10, 11, 20, 21]);
    });
}

/// Order across the lane and the segments: the owner pushes 0, then signals; a second thread
/// that saw the signal pushes 2 (which makes the store shared); the owner goes on with 1.
/// Whatever the interleaving with the takes, 0 is taken before 2.
#[test]
fn happens_before_orders_owner_and_sharer() {
    model(Some(3), || {
        let ledger = Ledger::new();
        let store = Arc::new(Staged::new());
        let signal = Arc::new(AtomicBool::new(false));
        let owner = {
            let (store, ledger, signal) = (
                Arc::clone(&store),
                std::sync::Arc::clone(&ledger),
                Arc::clone(&signal),
            );
            thread::spawn(move || {
                let mut outcome = Outcome::default();
                outcome.push(&store, 1, 0, &ledger);
                signal.store(true, Ordering::Release);
                outcome.push(&store, 1, 1, &ledger);
                outcome
            })
        };
        let sharer = {
            let (store, ledger, signal) = (
                Arc::clone(&store),
                std::sync::Arc::clone(&ledger),
                Arc::clone(&signal),
            );
            thread::spawn(move || {
                while !signal.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                let mut outcome = Outcome::default();
                outcome.push(&store, 2, 2, &ledger);
                outcome
            })
        };
        let mut taken = take(&store);
        let owner = owner.join().expect("owner");
        let sharer = sharer.join().expect("sharer");
        taken.extend(take(&store));
        let ids = check_taken(&taken, &[&owner, &sharer]);
        let position = |id| ids.iter().position(|&x| x == id).expect("taken");
        assert!(position(0) < position(2), "happens-before broken: {ids:?}");
        drop(taken);
        drop(store);
        ledger.assert_dropped_once(&[0, 1, 2]);
    });
}

/// Two threads write a fresh store (one becomes the owner, the other shares it) while the
/// main thread closes it for good: both paths' refusals and the final take account for
/// every item.
#[test]
fn owner_and_sharer_vs_close_for_good() {
    model(Some(3), || {
        let ledger = Ledger::new();
        let store = Arc::new(Staged::new());
        let writers: Vec<_> = (1..=2)
            .map(|thread_number| {
                let (store, ledger) = (Arc::clone(&store), std::sync::Arc::clone(&ledger));
                thread::spawn(move || {
                    let mut outcome = Outcome::default();
                    outcome.push(&store, thread_number, thread_number as u32 * 10, &ledger);
                    outcome
                })
            })
            .collect();
        let taken = close(&store);
        let outcomes: Vec<Outcome> = writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect();
        check_taken(&taken, &[&outcomes[0], &outcomes[1]]);
        drop(taken);
        drop(store);
        ledger.assert_dropped_once(&[10, 20]);
    });
}

/// Writes 1 (pushed) and 2 (moved in a chunk) through the owner's remembered lane (the
/// shortcut of `Queue::push`, `src/raw/shortcut.rs`, which skips the owner lookup), taking
/// the general path where the lane says the store was shared or closed since it was
/// remembered, as `Queue` does.
fn write_through(
    own: &Own<'_, Item>,
    store: &Staged<Item>,
    outcome: &mut Outcome,
    ledger: &std::sync::Arc<Ledger>,
) {
    match own.push(Item::new(1, ledger)) {
        Ok(Ok(_)) => outcome.accepted.push(1),
        Ok(Err(item)) => outcome.refused.push(item.id),
        Err(item) => outcome.push_item(store, 1, item),
    }
    let mut chunk: ArrayVec<Item, 4> = [Item::new(2, ledger)].into_iter().collect();
    match own.extend_moved(&mut chunk) {
        Some(moved) => {
            assert!(chunk.is_empty(), "a moved chunk is left empty");
            outcome.extended(&[2], moved);
        }
        None => {
            assert_eq!(chunk.len(), 1, "a refused chunk is left untouched");
            outcome.extended(&[2], store.extend(1, chunk.into_iter().collect()));
        }
    }
}

/// The owner pushes 0 and remembers its lane, then waits for a second thread to push 3
/// (which shares the store) before it writes 1 and 2 through the remembered lane. 1 and 2
/// happen after 3, so the lane must refuse them (the store is shared now) and they must be
/// taken after 3, whatever the interleaving with the take.
#[test]
fn remembered_lane_vs_sharer() {
    model(Some(2), || {
        let ledger = Ledger::new();
        let store = Arc::new(Staged::new());
        // 1: the owner has remembered its lane; 2: the sharer has pushed.
        let step = Arc::new(AtomicUsize::new(0));
        let wait_for = |step: &AtomicUsize, at: usize| {
            while step.load(Ordering::Acquire) < at {
                thread::yield_now();
            }
        };
        let owner = {
            let (store, ledger, step) = (
                Arc::clone(&store),
                std::sync::Arc::clone(&ledger),
                Arc::clone(&step),
            );
            thread::spawn(move || {
                let mut outcome = Outcome::default();
                outcome.push(&store, 1, 0, &ledger);
                let own = Own::of(&store, 1, 0).expect("the first writer owns the lane");
                step.store(1, Ordering::Release);
                wait_for(&step, 2);
                write_through(&own, &store, &mut outcome, &ledger);
                outcome
            })
        };
        let sharer = {
            let (store, ledger, step) = (
                Arc::clone(&store),
                std::sync::Arc::clone(&ledger),
                Arc::clone(&step),
            );
            thread::spawn(move || {
                wait_for(&step, 1);
                let mut outcome = Outcome::default();
                outcome.push(&store, 2, 3, &ledger);
                step.store(2, Ordering::Release);
                outcome
            })
        };
        let mut taken = take(&store);
        let owner = owner.join().expect("owner");
        let sharer = sharer.join().expect("sharer");
        taken.extend(take(&store));
        let ids = check_taken(&taken, &[&owner, &sharer]);
        let position = |id| ids.iter().position(|&x| x == id).expect("taken");
        assert!(
            position(0) < position(3) && position(3) < position(1) && position(1) < position(2),
            "happens-before broken: {ids:?}"
        );
        drop(taken);
        drop(store);
        ledger.assert_dropped_once(&[0, 1, 2, 3]);
    });
}

/// The owner pushes 0, remembers its lane and writes 1 and 2 through it while the main
/// thread closes the store for good: each item is taken by the close or given back.
#[test]
fn remembered_lane_vs_close_for_good() {
    model(Some(3), || {
        let ledger = Ledger::new();
        let store = Arc::new(Staged::new());
        let owner = {
            let (store, ledger) = (Arc::clone(&store), std::sync::Arc::clone(&ledger));
            thread::spawn(move || {
                let mut outcome = Outcome::default();
                outcome.push(&store, 1, 0, &ledger);
                match Own::of(&store, 1, 0) {
                    Some(own) => write_through(&own, &store, &mut outcome, &ledger),
                    // Closed before the owner looked: the general path refuses.
                    None => {
                        outcome.push(&store, 1, 1, &ledger);
                        outcome.extend(&store, 1, &[2], &ledger);
                    }
                }
                outcome
            })
        };
        let taken = close(&store);
        let owner = owner.join().expect("owner");
        check_taken(&taken, &[&owner]);
        drop(taken);
        drop(store);
        ledger.assert_dropped_once(&[0, 1, 2]);
    });
}
