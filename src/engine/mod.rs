//! The engine: the [`Core`] every buffer handle wraps (partitions, options, processor,
//! telemetry), the scheduler that ticks all buffers, and the processing cycle.

mod cycle;
pub(crate) mod scheduler;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::options::{Error, OptionsUpdate, Resolved, RuntimeOptions};
use crate::partition::{Cycle, CycleState, Partition, Store};
use crate::processor::Processor;
use crate::telemetry::{self, Event, FailureReason, Stats, StopReason, Telemetry};
use scheduler::{Engine, Scheduled, TimerKind};

/// `at + duration`, saturating: any duration is a valid option (`Duration::MAX` means
/// "practically never"), but an `Instant` cannot hold every sum.
fn after(at: Instant, duration: Duration) -> Instant {
    /// About 136 years: far enough to mean never, near enough for any clock to hold.
    const NEVER: Duration = Duration::from_secs(u32::MAX as u64);
    at.checked_add(duration.min(NEVER))
        .or_else(|| at.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(at)
}

/// Sorts a partition's drained items before batching.
pub(crate) type Sorter<O> = Box<dyn Fn(&mut Vec<O>) + Send + Sync>;

/// Everything a buffer is, shared by its handles, the scheduler (weakly) and running cycles.
pub(crate) struct Core<S: Store> {
    /// Shared with the handles that write: a `HashMap` holds its own `Arc` of them (see
    /// `HashMap`'s `partitions`).
    pub(crate) partitions: Arc<[Partition<S>]>,
    pub(crate) telemetry: Telemetry,
    pub(crate) capacity: Option<usize>,
    /// `drain_threshold`, 0 when off; read by writers when their partition grows.
    drain_threshold: AtomicUsize,
    runtime: Mutex<RuntimeOptions>,
    processor: Box<dyn Processor<Vec<S::Out>>>,
    sorter: Option<Sorter<S::Out>>,
    pool: Arc<rayon::ThreadPool>,
    engine: &'static Engine,
    /// The scheduler's id for this buffer.
    engine_id: u64,
    stopped: AtomicBool,
    stop_done: Mutex<bool>,
    stop_finished: Condvar,
    /// Cycles given up on for `processing_timeout`, ever.
    timeouts: AtomicU64,
    started: Instant,
}

impl<S: Store> Core<S> {
    /// Builds the core, emits `PartitionStart` for every partition and registers it with the
    /// scheduler.
    pub(crate) fn start(
        options: Resolved,
        stores: impl FnMut(usize) -> S,
        processor: Box<dyn Processor<Vec<S::Out>>>,
        sorter: Option<Sorter<S::Out>>,
    ) -> Result<Arc<Self>, Error> {
        let pool = match options.thread_pool {
            Some(pool) => pool,
            None => scheduler::default_pool()?,
        };
        let engine = Engine::global()?;
        cycle::install_panic_hook();
        let runtime = options.runtime;
        let core = Arc::new(Core {
            partitions: (0..options.partitions)
                .map(stores)
                .map(Partition::new)
                .collect(),
            telemetry: Telemetry::new(options.name, options.observers),
            capacity: options.capacity,
            drain_threshold: AtomicUsize::new(runtime.drain_threshold.unwrap_or(0)),
            runtime: Mutex::new(runtime),
            processor,
            sorter,
            pool,
            engine,
            engine_id: engine.new_id(),
            stopped: AtomicBool::new(false),
            stop_done: Mutex::new(false),
            stop_finished: Condvar::new(),
            timeouts: AtomicU64::new(0),
            started: Instant::now(),
        });
        core.set_drain_threshold(runtime.drain_threshold.unwrap_or(0));
        for partition in 0..core.partitions.len() {
            core.telemetry
                .emit(Event::PartitionStart(telemetry::PartitionStart {
                    buffer: core.name(),
                    partition,
                    system_time: SystemTime::now(),
                }));
        }
        let now = Instant::now();
        let weak: Weak<dyn Scheduled> = Arc::downgrade(&core) as Weak<dyn Scheduled>;
        engine.register(
            core.engine_id,
            weak,
            after(now, runtime.processing_interval),
            runtime
                .drain_threshold
                .map(|_| after(now, runtime.drain_check_interval)),
        );
        Ok(core)
    }

    pub(crate) fn name(&self) -> &str {
        &self.telemetry.name
    }

    fn id(&self) -> u64 {
        self.engine_id
    }

    fn runtime(&self) -> RuntimeOptions {
        *self.runtime.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_stopped(&self) -> bool {
        // Acquire: pairs with the SeqCst swap in `stop`; only consulted on refusal paths.
        self.stopped.load(Ordering::Acquire)
    }

    /// Items (or keys) buffered and not yet taken by a tick.
    pub(crate) fn len(&self) -> usize {
        self.partitions.iter().map(|p| p.store.len()).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.partitions.iter().all(|p| p.store.is_empty())
    }

    pub(crate) fn stats(&self) -> Stats {
        self.telemetry.stats(self.len())
    }

    /// A write was refused for capacity (one `PushError::Full` returned).
    pub(crate) fn rejected(&self, partition: usize) {
        // Relaxed: a statistic.
        self.telemetry.rejected.fetch_add(1, Ordering::Relaxed);
        self.partitions[partition].count_rejected();
    }

    /// A write took `partition` from `before` to `after` items: the write that crosses
    /// `drain_threshold` asks the scheduler for an early drain, so a reached threshold waits
    /// for no periodic check. One relaxed load and a compare per write when no threshold is
    /// crossed.
    #[inline]
    pub(crate) fn filled(&self, partition: usize, before: u64, after: u64) {
        // Relaxed: a trigger; a stale value leaves the drain to the periodic check.
        let threshold = self.drain_threshold.load(Ordering::Relaxed) as u64;
        if threshold > 0 && before < threshold && after >= threshold {
            self.request_drain(partition);
        }
    }

    /// Whether `drain_threshold` is on: writers whose store has no cheap claim count (the
    /// HashMap's) read their partition's length for `filled` only then.
    #[inline]
    pub(crate) fn watches_fill(&self) -> bool {
        // Relaxed: see `filled`.
        self.drain_threshold.load(Ordering::Relaxed) > 0
    }

    fn set_drain_threshold(&self, threshold: usize) {
        // Relaxed: see `filled`.
        self.drain_threshold.store(threshold, Ordering::Relaxed);
        for partition in self.partitions.iter() {
            partition.store.set_drain_threshold(threshold);
        }
    }

    /// Asks for an early drain of `partition`: its writer saw it reach `drain_threshold`.
    #[cold]
    pub(crate) fn request_drain(&self, partition: usize) {
        if self.partitions[partition].request_drain() {
            self.engine
                .at(self.id(), Instant::now(), TimerKind::Drain(partition));
        }
    }

    pub(crate) fn update_options(&self, update: &OptionsUpdate) -> Result<(), Error> {
        let mut runtime = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
        let new = runtime.updated(update)?;
        *runtime = new;
        drop(runtime);
        self.set_drain_threshold(new.drain_threshold.unwrap_or(0));
        if update.processing_interval.is_some()
            || update.drain_check_interval.is_some()
            || update.drain_threshold.is_some()
        {
            let now = Instant::now();
            self.engine.reschedule(
                self.id(),
                after(now, new.processing_interval),
                new.drain_threshold
                    .map(|_| after(now, new.drain_check_interval)),
            );
        }
        Ok(())
    }

    /// Starts a cycle on `partition` now, or right after the one in flight. Returns the `seq`
    /// of the cycle that will take what the partition holds now, or `None` when there is
    /// nothing to take (an idle, empty partition; or a closed one).
    fn request_cycle(self: &Arc<Self>, partition: usize, even_if_empty: bool) -> Option<u64> {
        let part = &self.partitions[partition];
        let mut control = part.control();
        if control.closed {
            return None;
        }
        if control.running.is_some() {
            control.pending = true;
            return Some(control.started + 1);
        }
        if !even_if_empty && part.store.is_empty() {
            return None;
        }
        Some(self.spawn_cycle(partition, &mut control, None))
    }

    /// Starts a cycle; the caller holds the partition's control and checked nothing runs.
    /// `last` carries the partition's final contents, taken by `stop`: the cycle processes
    /// them instead of taking from the store, and no cycle follows it.
    fn spawn_cycle(
        self: &Arc<Self>,
        partition: usize,
        control: &mut crate::partition::Control,
        last: Option<Vec<S::Out>>,
    ) -> u64 {
        control.started += 1;
        control.pending = false;
        control.closed |= last.is_some();
        let runtime = self.runtime();
        let started = Instant::now();
        let deadline = after(started, runtime.processing_timeout);
        let cycle = Arc::new(Cycle {
            seq: control.started,
            started,
            deadline,
            state: Mutex::new(CycleState {
                timed_out: false,
                // Final contents are this cycle's from the start (see `cycle::process`).
                remaining: last.as_ref().map_or(0, Vec::len),
            }),
        });
        control.running = Some(Arc::clone(&cycle));
        self.partitions[partition].clear_drain_request();
        self.arm_watchdog(partition, control, deadline);
        let core = Arc::clone(self);
        let seq = cycle.seq;
        self.pool
            .spawn(move || cycle::run(&core, partition, &cycle, runtime, last));
        seq
    }

    /// Makes sure a watchdog timer fires for `partition` by `deadline`: at most one timer per
    /// partition is pending (plus one more when a shortened timeout needs an earlier check),
    /// so short intervals do not fill the scheduler with timers.
    fn arm_watchdog(
        &self,
        partition: usize,
        control: &mut crate::partition::Control,
        deadline: Instant,
    ) {
        if control.watchdog.is_none_or(|armed| deadline < armed) {
            control.watchdog = Some(deadline);
            self.engine
                .at(self.id(), deadline, TimerKind::Watchdog(partition));
        }
    }

    /// The watchdog timer of `partition` fired: enforce the timeout, re-arm for the cycle
    /// running then.
    fn watchdog(self: &Arc<Self>, partition: usize, now: Instant) {
        self.check_timeout(partition, now);
        let mut control = self.partitions[partition].control();
        if control.watchdog.is_some_and(|armed| armed <= now) {
            control.watchdog = None;
        }
        if let Some(deadline) = control.running.as_ref().map(|c| c.deadline) {
            self.arm_watchdog(partition, &mut control, deadline);
        }
    }

    /// A cycle ended: free the partition, start the postponed one if any.
    fn finish(self: &Arc<Self>, partition: usize, cycle: &Arc<Cycle>) {
        let part = &self.partitions[partition];
        let mut control = part.control();
        let ours = control
            .running
            .as_ref()
            .is_some_and(|running| Arc::ptr_eq(running, cycle));
        if ours {
            self.move_on(partition, &mut control, cycle.seq);
        }
        drop(control);
        part.notify();
    }

    /// The running cycle `seq` ended or was given up on: the partition is free, and the
    /// cycle a tick postponed meanwhile starts now.
    fn move_on(
        self: &Arc<Self>,
        partition: usize,
        control: &mut crate::partition::Control,
        seq: u64,
    ) {
        control.running = None;
        control.completed = control.completed.max(seq);
        if control.pending && !control.closed {
            self.spawn_cycle(partition, control, None);
        }
    }

    /// Gives up on a partition's cycle that outlived `processing_timeout`: its unsettled
    /// items are counted failed, and the partition moves on without it.
    fn check_timeout(self: &Arc<Self>, partition: usize, now: Instant) {
        let part = &self.partitions[partition];
        let mut control = part.control();
        let Some(cycle) = control.running.clone() else {
            return;
        };
        if now < cycle.deadline {
            return;
        }
        let mut state = cycle.lock();
        if state.timed_out {
            return;
        }
        state.timed_out = true;
        let lost = std::mem::take(&mut state.remaining);
        drop(state);
        self.telemetry.settled(lost, false);
        // Relaxed: a counter read by `stop` on the same thread or after the partition's
        // mutex, which orders it.
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        self.move_on(partition, &mut control, cycle.seq);
        drop(control);
        part.notify();
        self.telemetry
            .emit(Event::ProcessingFailed(telemetry::ProcessingFailed {
                buffer: self.name(),
                partition,
                system_time: SystemTime::now(),
                reason: &FailureReason::Timeout,
                count: lost as u64,
            }));
    }

    /// Waits until `partition` completed cycle `seq` (or closed without it), enforcing
    /// timeouts while waiting.
    fn wait_completed(self: &Arc<Self>, partition: usize, seq: u64) {
        drop(self.wait_while(partition, |control| control.completed < seq));
    }

    /// Waits while `busy` holds and a cycle is running on `partition`, giving up on that
    /// cycle at its deadline (so no wait outlives `processing_timeout`); returns the
    /// partition's control, locked.
    fn wait_while(
        self: &Arc<Self>,
        partition: usize,
        busy: impl Fn(&crate::partition::Control) -> bool,
    ) -> std::sync::MutexGuard<'_, crate::partition::Control> {
        let part = &self.partitions[partition];
        let mut control = part.control();
        while busy(&control) {
            let Some(deadline) = control.running.as_ref().map(|c| c.deadline) else {
                break;
            };
            if Instant::now() >= deadline {
                drop(control);
                self.check_timeout(partition, Instant::now());
                control = part.control();
                continue;
            }
            control = part.wait(control, deadline);
        }
        control
    }

    /// Runs a cycle on every partition now and waits until the processor returned for
    /// everything buffered at the call.
    pub(crate) fn flush(self: &Arc<Self>) -> Result<(), Error> {
        if self.is_stopped() {
            return Ok(());
        }
        let waits: Vec<(usize, u64)> = (0..self.partitions.len())
            .filter_map(|p| self.request_cycle(p, false).map(|seq| (p, seq)))
            .collect();
        for (partition, seq) in waits {
            self.wait_completed(partition, seq);
        }
        Ok(())
    }

    /// Refuses new writes, drains every partition and waits for the processor.
    pub(crate) fn stop(self: &Arc<Self>, reason: StopReason) -> Result<(), Error> {
        // SeqCst: one stopper wins; the others wait for it below.
        if self.stopped.swap(true, Ordering::SeqCst) {
            let mut done = self.stop_done.lock().unwrap_or_else(|p| p.into_inner());
            while !*done {
                done = self
                    .stop_finished
                    .wait(done)
                    .unwrap_or_else(|p| p.into_inner());
            }
            return Ok(());
        }
        // From here on, however this call ends (a user value's `Drop` may panic while a
        // store closes), the stoppers waiting above and the drop of the last handle return.
        let _finished = StopFinished(self);
        // Relaxed: see `check_timeout`.
        let timeouts_before = self.timeouts.load(Ordering::Relaxed);
        // Close every partition first, so writes are refused from here on; each partition's
        // final contents are processed after the cycle it may have in flight.
        let finals: Vec<Vec<S::Out>> = self
            .partitions
            .iter()
            .map(|part| {
                let mut items = Vec::new();
                let taken = part.store.close_for_good(&mut items);
                if self.capacity.is_some() {
                    part.release(taken);
                }
                // In flight from now on: counted in `buffered` until processed or failed.
                self.telemetry.taken(taken);
                items
            })
            .collect();
        let mut last = Vec::with_capacity(self.partitions.len());
        for (partition, items) in finals.into_iter().enumerate() {
            let mut control = self.wait_while(partition, |control| control.running.is_some());
            last.push(self.spawn_cycle(partition, &mut control, Some(items)));
        }
        for (partition, seq) in last.into_iter().enumerate() {
            self.wait_completed(partition, seq);
        }
        self.engine.unregister(self.id());
        for partition in 0..self.partitions.len() {
            // Refusals that raced the last cycle's report.
            self.report_rejected(partition);
            self.telemetry
                .emit(Event::PartitionStop(telemetry::PartitionStop {
                    buffer: self.name(),
                    partition,
                    duration: self.started.elapsed(),
                    reason,
                }));
        }
        // Relaxed: see `check_timeout`.
        if self.timeouts.load(Ordering::Relaxed) > timeouts_before {
            Err(Error::Timeout)
        } else {
            Ok(())
        }
    }

    /// Emits `Rejected` for the refusals since the partition's last report.
    fn report_rejected(&self, partition: usize) {
        let count = self.partitions[partition].take_rejected();
        if count > 0 {
            self.telemetry.emit(Event::Rejected(telemetry::Rejected {
                buffer: self.name(),
                partition,
                count,
            }));
        }
    }
}

/// Marks a buffer's stop finished when dropped: at the end of the `stop` call that won, or
/// when it unwinds, so that no other stopper waits for ever.
struct StopFinished<'a, S: Store>(&'a Core<S>);

impl<S: Store> Drop for StopFinished<'_, S> {
    fn drop(&mut self) {
        let core = self.0;
        *core.stop_done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        core.stop_finished.notify_all();
    }
}

impl<S: Store> Scheduled for Core<S> {
    fn on_timer(self: Arc<Self>, kind: TimerKind, now: Instant) -> Option<Instant> {
        match kind {
            TimerKind::Tick => {
                for partition in 0..self.partitions.len() {
                    self.request_cycle(partition, false);
                }
                Some(after(now, self.runtime().processing_interval))
            }
            TimerKind::DrainCheck => {
                let runtime = self.runtime();
                let threshold = runtime.drain_threshold?;
                for (partition, part) in self.partitions.iter().enumerate() {
                    if part.store.len() >= threshold {
                        self.request_cycle(partition, false);
                    }
                }
                Some(after(now, runtime.drain_check_interval))
            }
            TimerKind::Drain(partition) => {
                self.request_cycle(partition, false);
                None
            }
            TimerKind::Watchdog(partition) => {
                self.watchdog(partition, now);
                None
            }
        }
    }
}
