//! What the loom suites share: a model runner that reports how many interleavings it
//! explored (a model that explores one proves nothing), a ledger of drops, and a value that
//! records its drop in it, so that a model can assert that every value it made was dropped
//! exactly once.
// Each suite compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Runs `f` under loom with the given preemption bound (`None`: exhaustive;
/// `TIDEFALL_LOOM_BOUND=<n>|none` overrides it, for experiments). Prints the model's time and
/// number of executions.
pub fn model<F>(preemption_bound: Option<usize>, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let start = Instant::now();
    let mut builder = loom::model::Builder::new();
    // A take, and a store's drop, may touch every slot of a table: more atomic operations per
    // execution than loom's default limit of 1000 branches (a limit meant to catch spin loops).
    builder.max_branches = 200_000;
    builder.preemption_bound = match std::env::var("TIDEFALL_LOOM_BOUND") {
        Ok(bound) if bound == "none" => None,
        Ok(bound) => Some(
            bound
                .parse()
                .expect("TIDEFALL_LOOM_BOUND: a number or `none`"),
        ),
        Err(_) => preemption_bound,
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    eprintln!(
        "model done in {:.2?}: {} executions",
        start.elapsed(),
        runs.load(Ordering::Relaxed)
    );
}

/// Drop counts per value id (below 64), for one execution of a model. Plain `std` (not loom)
/// on purpose: it observes the model without adding scheduling points, and loom runs one
/// thread at a time.
pub struct Ledger {
    drops: Mutex<Vec<u8>>,
}

impl Ledger {
    pub fn new() -> Arc<Self> {
        Arc::new(Ledger {
            drops: Mutex::new(vec![0; 64]),
        })
    }

    /// Counts one drop of the value `id`.
    pub fn record_drop(&self, id: u32) {
        self.drops.lock().expect("ledger lock")[id as usize] += 1;
    }

    /// Asserts that exactly the values `ids` were dropped, each exactly once.
    pub fn assert_dropped_once(&self, ids: &[u32]) {
        let drops = self.drops.lock().expect("ledger lock");
        for (i, &n) in drops.iter().enumerate() {
            let expected = u8::from(ids.contains(&(i as u32)));
            assert_eq!(
                n, expected,
                "value {i} dropped {n} times, expected {expected} (made: {ids:?})"
            );
        }
    }
}

/// A value that records its drop in a [`Ledger`].
pub struct Tracked {
    pub id: u32,
    ledger: Arc<Ledger>,
}

impl Tracked {
    pub fn new(id: u32, ledger: &Arc<Ledger>) -> Self {
        Tracked {
            id,
            ledger: Arc::clone(ledger),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.ledger.record_drop(self.id);
    }
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tracked({})", self.id)
    }
}
