//! One processing cycle of one partition, on the pool: take the partition's contents, sort,
//! cut into batches, call the processor on each in order, isolate failures, account for
//! every item.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Once};
use std::time::{Instant, SystemTime};

use super::Core;
use crate::options::{BatchSize, RuntimeOptions};
use crate::partition::{Cycle, Store};
use crate::telemetry::{self, Event, FailureReason};

/// Runs `cycle` on `partition`, then frees the partition for the next one. `last` holds the
/// partition's final contents, already taken by `stop`.
pub(super) fn run<S: Store>(
    core: &Arc<Core<S>>,
    partition: usize,
    cycle: &Arc<Cycle>,
    runtime: RuntimeOptions,
    last: Option<Vec<S::Out>>,
) {
    // Everything user code can panic in (processor, sort key, an item's `Drop`) is caught
    // closer to the call; this outer catch keeps a bug of ours from aborting the process
    // through rayon, and the partition is freed either way.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        process(core, partition, cycle, runtime, last)
    }));
    core.finish(partition, cycle);
}

fn process<S: Store>(
    core: &Arc<Core<S>>,
    partition: usize,
    cycle: &Arc<Cycle>,
    runtime: RuntimeOptions,
    last: Option<Vec<S::Out>>,
) {
    let part = &core.partitions[partition];
    let telemetry = &core.telemetry;
    // `stop` counted its final contents in flight and in `remaining` when it took them, so
    // that a watchdog giving up on this cycle before it runs fails them at once.
    let preloaded = last.is_some();
    let mut items = match last {
        Some(items) => items,
        // Given up on before it started (the pool was busy): the partition moved on, so this
        // cycle must not take anything; the items stay for the cycles after it.
        None if cycle.lock().timed_out => return,
        None if part.store.is_empty() => Vec::new(),
        None => {
            let mut items = Vec::new();
            let taken = part.store.take(&mut items);
            if core.capacity.is_some() {
                part.release(taken);
            }
            let mut state = cycle.lock();
            telemetry.taken(taken);
            if state.timed_out {
                // Given up on between the check above and the take: these items are this
                // cycle's, and failed now, under the lock, so they are counted exactly once.
                drop(state);
                telemetry.settled(taken, false);
                drop_quietly(items);
                failed(core, partition, &FailureReason::Timeout, taken);
                core.report_rejected(partition);
                return;
            }
            state.remaining = taken;
            items
        }
    };
    let taken = items.len();
    core.report_rejected(partition);
    if taken == 0 {
        return;
    }
    if preloaded && cycle.lock().timed_out {
        // The watchdog failed them already (they were this cycle's `remaining`).
        drop_quietly(items);
        return;
    }
    // Relaxed: a statistic.
    telemetry
        .ticks
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    telemetry.emit(Event::ProcessingStart(telemetry::ProcessingStart {
        buffer: core.name(),
        partition,
        system_time: SystemTime::now(),
        monotonic_time: cycle.started,
    }));

    if let Some(sort) = &core.sorter {
        if let Err(panic) = call_capturing(|| sort(&mut items)) {
            // `sort_by_key` leaves the vector a permutation of its items even when the key
            // panics, so nothing is lost: they are processed unsorted, and the panic reported.
            report_panic(core, partition, cycle.started, &panic);
        }
    }

    let batch_size = match runtime.processing_batch_size {
        BatchSize::Items(n) => n,
        BatchSize::Table => usize::MAX,
    };
    let mut rest = items.into_iter();
    while rest.len() > 0 {
        let len = batch_size.min(rest.len());
        let batch: Vec<S::Out> = if len == rest.len() {
            // The rest by value: collecting a whole `vec::IntoIter` reuses its buffer (moving
            // the items to its front if earlier batches took some), where collecting through
            // `by_ref` allocated a second buffer and copied every item into it. With
            // `BatchSize::Table` that was the whole cycle, in fresh pages the kernel had to
            // clear: one producer pushing flat out (PERFORMANCE.md, "The drain's copy"),
            // 10-12 ns per item drained, more than the push.
            std::mem::take(&mut rest).collect()
        } else {
            rest.by_ref().take(len).collect()
        };
        if cycle.lock().timed_out {
            // Counted failed by the watchdog already; dropped below with the rest.
            drop_quietly(batch);
            break;
        }
        // Relaxed: a statistic.
        telemetry
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let call_started = Instant::now();
        let outcome = call_capturing(|| core.processor.process_until(batch, cycle.deadline));
        let duration = call_started.elapsed();
        if matches!(outcome, Ok(Err(_))) && Instant::now() >= cycle.deadline {
            // A processor that gives up at its deadline (an async one is cancelled there)
            // failed the cycle by timing out: fail it as the watchdog would, at once.
            core.check_timeout(partition, Instant::now());
        }
        let mut state = cycle.lock();
        if state.timed_out {
            // The watchdog counted this batch failed with the rest of the cycle.
            drop(state);
            batch_stop(core, partition, len, duration, false);
            drop_quietly(outcome);
            break;
        }
        state.remaining -= len;
        drop(state);
        match outcome {
            Ok(Ok(())) => {
                telemetry.settled(len, true);
                batch_stop(core, partition, len, duration, true);
            }
            Ok(Err(text)) => {
                telemetry.settled(len, false);
                batch_stop(core, partition, len, duration, false);
                failed(core, partition, &FailureReason::Error(text), len);
            }
            Err(panic) => {
                telemetry.settled(len, false);
                batch_stop(core, partition, len, duration, false);
                let reason = report_panic(core, partition, call_started, &panic);
                failed(core, partition, &reason, len);
                drop_quietly(panic);
            }
        }
    }
    drop_quietly(rest);
    telemetry.emit(Event::ProcessingStop(telemetry::ProcessingStop {
        buffer: core.name(),
        partition,
        duration: cycle.started.elapsed(),
        monotonic_time: Instant::now(),
        size: taken,
    }));
}

/// Emits `ProcessingException` for a caught panic; returns its reason.
fn report_panic<S: Store>(
    core: &Core<S>,
    partition: usize,
    since: Instant,
    panic: &Box<dyn Any + Send>,
) -> FailureReason {
    let reason = FailureReason::Panic(panic_message(panic));
    let backtrace = CAPTURED.with(|captured| captured.borrow_mut().take());
    core.telemetry
        .emit(Event::ProcessingException(telemetry::ProcessingException {
            buffer: core.name(),
            partition,
            duration: since.elapsed(),
            monotonic_time: Instant::now(),
            kind: "panic",
            reason: &reason,
            backtrace: backtrace.as_deref(),
        }));
    reason
}

/// Emits `ProcessingFailed` for `count` items lost.
fn failed<S: Store>(core: &Core<S>, partition: usize, reason: &FailureReason, count: usize) {
    core.telemetry
        .emit(Event::ProcessingFailed(telemetry::ProcessingFailed {
            buffer: core.name(),
            partition,
            system_time: SystemTime::now(),
            reason,
            count: count as u64,
        }));
}

/// Emits `BatchStop` for a processor call of `size` items.
fn batch_stop<S: Store>(
    core: &Core<S>,
    partition: usize,
    size: usize,
    duration: std::time::Duration,
    processed: bool,
) {
    core.telemetry.emit(Event::BatchStop(telemetry::BatchStop {
        buffer: core.name(),
        partition,
        size,
        duration,
        processed,
    }));
}

/// The text of a panic payload: `panic!` gives a `&str` or a `String`.
fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Drops user values (items, a panic payload) whose `Drop` may itself panic.
fn drop_quietly<V>(value: V) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
}

thread_local! {
    /// Set while this thread runs a processor call: the panic hook captures a backtrace.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    /// The backtrace of the last processor panic on this thread, for its event.
    static CAPTURED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once, a panic hook that records a backtrace (when `RUST_BACKTRACE` enables them)
/// for panics inside processor calls, then runs the hook that was installed before it. A
/// panic carries no backtrace of its own; the hook is the only place one can be taken. A hook
/// set later by the application replaces this one, and events then carry no backtrace.
pub(crate) fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                let backtrace = Backtrace::capture();
                if backtrace.status() == BacktraceStatus::Captured {
                    let text = backtrace.to_string();
                    CAPTURED.with(|captured| *captured.borrow_mut() = Some(text));
                }
            }
            previous(info);
        }));
    });
}

/// Runs a processor call, catching its panic, with backtrace capture on.
fn call_capturing<R>(call: impl FnOnce() -> R) -> std::thread::Result<R> {
    CAPTURING.with(|capturing| capturing.set(true));
    CAPTURED.with(|captured| captured.borrow_mut().take());
    let outcome = catch_unwind(AssertUnwindSafe(call));
    CAPTURING.with(|capturing| capturing.set(false));
    outcome
}
