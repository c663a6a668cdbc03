//! One partition: its lock-free storage, its capacity accounting, and the bookkeeping of its
//! processing cycles (at most one in flight).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a partition's storage offers the engine; the write side is the handle's own.
pub(crate) trait Store: Send + Sync + 'static {
    /// What the processor receives, one per item (or key).
    type Out: Send + 'static;
    /// Swaps fresh storage in and moves everything of the old one into `out`.
    fn take(&self, out: &mut Vec<Self::Out>) -> usize;
    /// Like `take`, and every later write is refused.
    fn close_for_good(&self, out: &mut Vec<Self::Out>) -> usize;
    /// Items (or keys) in the current storage.
    fn len(&self) -> usize;
    /// Nothing in the current storage.
    fn is_empty(&self) -> bool;
    /// `drain_threshold` changed (0: off). A store that checks the threshold on its own write
    /// path keeps a copy; the others leave the check to the handle (`Core::filled`).
    fn set_drain_threshold(&self, _threshold: usize) {}
}

/// One processing cycle of a partition.
pub(crate) struct Cycle {
    /// The partition's count of cycles started, this one included.
    pub(crate) seq: u64,
    pub(crate) started: Instant,
    pub(crate) deadline: Instant,
    pub(crate) state: Mutex<CycleState>,
}

/// What the cycle and the watchdog share.
#[derive(Default)]
pub(crate) struct CycleState {
    /// The watchdog gave up on the cycle and counted `remaining` as failed.
    pub(crate) timed_out: bool,
    /// Items taken and not yet settled (processed or failed).
    pub(crate) remaining: usize,
}

impl Cycle {
    pub(crate) fn lock(&self) -> MutexGuard<'_, CycleState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The cycle bookkeeping of a partition, under its mutex.
#[derive(Default)]
pub(crate) struct Control {
    /// The cycle in flight.
    pub(crate) running: Option<Arc<Cycle>>,
    /// A tick found a cycle in flight: start another as soon as it ends.
    pub(crate) pending: bool,
    /// Cycles started.
    pub(crate) started: u64,
    /// The highest `seq` of a cycle that ended (or was given up on).
    pub(crate) completed: u64,
    /// The last cycle was started: no more.
    pub(crate) closed: bool,
    /// When the pending watchdog timer fires, if one is pending.
    pub(crate) watchdog: Option<Instant>,
}

pub(crate) struct Partition<S> {
    pub(crate) store: S,
    /// Items accepted into the current storage, kept only when a capacity is set.
    reserved: AtomicUsize,
    /// Writes refused for capacity since the last `Rejected` report.
    rejected: AtomicU64,
    /// A writer asked the engine for an early drain that has not started yet.
    drain_requested: AtomicBool,
    control: Mutex<Control>,
    changed: Condvar,
}

impl<S: Store> Partition<S> {
    pub(crate) fn new(store: S) -> Self {
        Partition {
            store,
            reserved: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            drain_requested: AtomicBool::new(false),
            control: Mutex::new(Control::default()),
            changed: Condvar::new(),
        }
    }

    pub(crate) fn control(&self) -> MutexGuard<'_, Control> {
        // Control is updated field by field under the lock and stays consistent across a
        // panic, so a poisoned lock is still usable.
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes everything waiting for this partition's cycles.
    pub(crate) fn notify(&self) {
        self.changed.notify_all();
    }

    /// Waits for a change of `Control`, at most until `until`.
    pub(crate) fn wait<'a>(
        &'a self,
        control: MutexGuard<'a, Control>,
        until: Instant,
    ) -> MutexGuard<'a, Control> {
        let wait = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        self.changed
            .wait_timeout(control, wait)
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    /// Reserves room for up to `wanted` items under `capacity`; returns how many fit.
    pub(crate) fn reserve(&self, capacity: usize, wanted: usize) -> usize {
        // Relaxed: the counter is only a bound; its RMWs are totally ordered, so no two
        // writers get the same room.
        let mut current = self.reserved.load(Ordering::Relaxed);
        loop {
            let granted = wanted.min(capacity.saturating_sub(current));
            if granted == 0 {
                return 0;
            }
            match self.reserved.compare_exchange_weak(
                current,
                current + granted,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return granted,
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back room: items refused after all, or taken by a cycle.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            // Relaxed: see `reserve`.
            self.reserved.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Counts a write refused for capacity.
    pub(crate) fn count_rejected(&self) {
        // Relaxed: a counter, reported and reset by `take_rejected`.
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals since the last call.
    pub(crate) fn take_rejected(&self) -> u64 {
        // Relaxed: see `count_rejected`; the swap hands each refusal to one report.
        self.rejected.swap(0, Ordering::Relaxed)
    }

    /// Marks an early drain as requested; true for the first request since the last cycle.
    pub(crate) fn request_drain(&self) -> bool {
        // Relaxed: a flag that only limits duplicate requests.
        !self.drain_requested.swap(true, Ordering::Relaxed)
    }

    /// A cycle starts: later threshold crossings may request a drain again.
    pub(crate) fn clear_drain_request(&self) {
        // Relaxed: see `request_drain`.
        self.drain_requested.store(false, Ordering::Relaxed);
    }
}
