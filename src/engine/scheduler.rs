//! The one scheduler thread that drives the timers of every buffer in the process.
//!
//! Buffers register a [`Scheduled`] target and get timers in one binary heap; the thread sleeps
//! until the earliest one is due. Ten thousand buffers cost ten thousand heap entries, not
//! ten thousand threads. Targets are held weakly, and a stopped buffer's timers leave the
//! heap when it unregisters.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::options::Error;

/// What a timer asks its target to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// The periodic tick of every partition.
    Tick,
    /// The periodic check of `drain_threshold`.
    DrainCheck,
    /// A partition reached its drain threshold: drain it now.
    Drain(usize),
    /// A partition's cycle reaches its `processing_timeout` now.
    Watchdog(usize),
}

impl TimerKind {
    /// Periodic timers are replaced on `reschedule`; one-shot timers always fire.
    fn periodic(self) -> bool {
        matches!(self, TimerKind::Tick | TimerKind::DrainCheck)
    }
}

/// A buffer as the scheduler sees it.
pub(crate) trait Scheduled: Send + Sync {
    /// Runs the timer's work; for a periodic timer, returns its next deadline (`None` ends it).
    fn on_timer(self: Arc<Self>, kind: TimerKind, now: Instant) -> Option<Instant>;
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    id: u64,
    generation: u64,
    kind: TimerKind,
}

struct Registration {
    target: Weak<dyn Scheduled>,
    /// Bumped by `reschedule`: periodic timers of older generations are dropped when due.
    generation: u64,
}

#[derive(Default)]
struct State {
    timers: BinaryHeap<Reverse<Timer>>,
    buffers: HashMap<u64, Registration>,
    next_id: u64,
}

/// The process-wide scheduler.
pub(crate) struct Engine {
    state: Mutex<State>,
    wake: Condvar,
}

impl Engine {
    /// The scheduler, its thread started on first use.
    pub(crate) fn global() -> Result<&'static Engine, Error> {
        static ENGINE: OnceLock<Result<&'static Engine, String>> = OnceLock::new();
        ENGINE
            .get_or_init(|| {
                let engine: &'static Engine = Box::leak(Box::new(Engine {
                    state: Mutex::new(State::default()),
                    wake: Condvar::new(),
                }));
                std::thread::Builder::new()
                    .name("tidefall-engine".into())
                    .spawn(move || engine.run())
                    .map(|_| engine)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(Error::Spawn)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (every update is a single push or
        // insert), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh buffer id, for `register`.
    pub(crate) fn new_id(&self) -> u64 {
        let mut state = self.lock();
        state.next_id += 1;
        state.next_id
    }

    /// Registers a buffer whose periodic timers first fire at the given deadlines.
    pub(crate) fn register(
        &self,
        id: u64,
        target: Weak<dyn Scheduled>,
        tick: Instant,
        drain_check: Option<Instant>,
    ) {
        let mut state = self.lock();
        state.buffers.insert(
            id,
            Registration {
                target,
                generation: 0,
            },
        );
        Self::push_periodic(&mut state, id, 0, tick, drain_check);
        drop(state);
        self.wake.notify_one();
    }

    /// Replaces a buffer's periodic timers with ones at the given deadlines. The replaced
    /// ones leave the heap now: with a long interval they would otherwise stay until due, one
    /// more per update. (One being run right now comes back with the old generation and is
    /// dropped then.)
    pub(crate) fn reschedule(&self, id: u64, tick: Instant, drain_check: Option<Instant>) {
        let mut state = self.lock();
        let Some(registration) = state.buffers.get_mut(&id) else {
            return;
        };
        registration.generation += 1;
        let generation = registration.generation;
        state
            .timers
            .retain(|Reverse(timer)| timer.id != id || !timer.kind.periodic());
        Self::push_periodic(&mut state, id, generation, tick, drain_check);
        drop(state);
        self.wake.notify_one();
    }

    /// A one-shot timer.
    pub(crate) fn at(&self, id: u64, at: Instant, kind: TimerKind) {
        let mut state = self.lock();
        let wake = state
            .timers
            .peek()
            .is_none_or(|Reverse(first)| at < first.at);
        state.timers.push(Reverse(Timer {
            at,
            id,
            generation: 0,
            kind,
        }));
        drop(state);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Forgets a buffer and drops its pending timers: a stopped buffer leaves nothing in the
    /// heap (with a long interval, or `Duration::MAX`, its timers would otherwise stay that
    /// long, one heap entry or more per buffer ever started). A timer being run right now
    /// finds the buffer gone and is dropped.
    pub(crate) fn unregister(&self, id: u64) {
        let mut state = self.lock();
        state.buffers.remove(&id);
        state.timers.retain(|Reverse(timer)| timer.id != id);
    }

    fn push_periodic(
        state: &mut State,
        id: u64,
        generation: u64,
        tick: Instant,
        drain_check: Option<Instant>,
    ) {
        state.timers.push(Reverse(Timer {
            at: tick,
            id,
            generation,
            kind: TimerKind::Tick,
        }));
        if let Some(at) = drain_check {
            state.timers.push(Reverse(Timer {
                at,
                id,
                generation,
                kind: TimerKind::DrainCheck,
            }));
        }
    }

    fn run(&self) {
        let mut due = Vec::new();
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            while state
                .timers
                .peek()
                .is_some_and(|Reverse(first)| first.at <= now)
            {
                let Some(Reverse(timer)) = state.timers.pop() else {
                    break;
                };
                let Some(registration) = state.buffers.get(&timer.id) else {
                    continue;
                };
                if timer.kind.periodic() && timer.generation != registration.generation {
                    continue;
                }
                due.push((timer, registration.target.clone()));
            }
            if !due.is_empty() {
                drop(state);
                let mut next = Vec::new();
                for (timer, target) in due.drain(..) {
                    let Some(target) = target.upgrade() else {
                        continue;
                    };
                    // A panic here would be a bug of ours; the scheduler must outlive it.
                    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        target.on_timer(timer.kind, now)
                    }));
                    if let Ok(Some(at)) = again {
                        if timer.kind.periodic() {
                            next.push(Timer { at, ..timer });
                        }
                    }
                }
                state = self.lock();
                for timer in next {
                    let current = state.buffers.get(&timer.id).map(|r| r.generation);
                    if current == Some(timer.generation) {
                        state.timers.push(Reverse(timer));
                    }
                }
                continue;
            }
            let wait = state
                .timers
                .peek()
                .map(|Reverse(first)| first.at.saturating_duration_since(now));
            state = match wait {
                Some(wait) => {
                    self.wake
                        .wait_timeout(state, wait.max(Duration::from_micros(50)))
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.wake.wait(state).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

/// The pool processors run on when the builder names none: one for the whole process, one
/// thread per core.
pub(crate) fn default_pool() -> Result<Arc<rayon::ThreadPool>, Error> {
    static POOL: OnceLock<Result<Arc<rayon::ThreadPool>, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("tidefall-pool-{i}"))
            .build()
            .map(Arc::new)
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(Error::Spawn)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A target that is never due during the test.
    struct Idle;

    impl Scheduled for Idle {
        fn on_timer(self: Arc<Self>, _: TimerKind, _: Instant) -> Option<Instant> {
            None
        }
    }

    /// Neither `reschedule` nor `unregister` leaves the timers they replace in the heap, so
    /// buffers started and stopped (or updated) with long intervals do not make it grow.
    #[test]
    fn replaced_and_unregistered_timers_leave_the_heap() {
        // Not `global()`: no scheduler thread pops timers behind the test's back.
        let engine = Engine {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        };
        let target: Arc<dyn Scheduled> = Arc::new(Idle);
        let far = Instant::now() + Duration::from_secs(3600);
        let (a, b) = (engine.new_id(), engine.new_id());
        engine.register(a, Arc::downgrade(&target), far, Some(far));
        engine.register(b, Arc::downgrade(&target), far, None);
        engine.at(a, far, TimerKind::Watchdog(0));
        assert_eq!(engine.lock().timers.len(), 4);
        for _ in 0..10 {
            engine.reschedule(a, far, Some(far));
        }
        assert_eq!(
            engine.lock().timers.len(),
            4,
            "periodic timers replaced, the one-shot kept"
        );
        engine.reschedule(a, far, None);
        assert_eq!(engine.lock().timers.len(), 3, "the drain check turned off");
        engine.unregister(a);
        let left: Vec<(u64, TimerKind)> = engine
            .lock()
            .timers
            .iter()
            .map(|Reverse(timer)| (timer.id, timer.kind))
            .collect();
        assert_eq!(left, [(b, TimerKind::Tick)]);
    }
}
