//! The pause after tidefall drains between two timed chunks. Shared by
//! `benches/queue_push.rs` and `benches/map_put.rs` (a module of each, not a bench target).

use std::thread;
use std::time::Duration;

/// How long [`after_flush`] waits: twice what the processing pool's workers were measured to
/// need to go back to sleep after a cycle on this guest (PERFORMANCE.md, "After a flush: the
/// pool's idle spin").
const SETTLE: Duration = Duration::from_micros(200);

/// Waits, untimed, after a tidefall `flush` and before the next timed chunk, for the rayon
/// workers that ran the flush's cycle to go back to sleep.
///
/// A rayon worker that finishes a job looks for more for a while (32 rounds of
/// `sched_yield`) before it sleeps. On this guest a chunk that starts right after a flush
/// runs slower than one that starts later (Q1: p10 3.5–3.9 against 2.3 ns per push), and a
/// pause of 100 µs or more removes the difference. With a flush after every chunk, every
/// chunk would start in that window, whereas in use a tick comes once per interval. The
/// peers' drains run on the benchmark's own thread and leave nothing running, so they need
/// no pause.
pub fn after_flush() {
    thread::sleep(SETTLE);
}

/// How long [`after_flush_of_two`] waits: four times the longest burst of the pool's
/// activity after a flush that `perf sched timehist` showed in the Q2 rounds on this guest,
/// and the shortest wait after which those rounds' two-producer chunks ran as fast as the
/// ones after the peers' in every run (PERFORMANCE.md, "The settle before a two-writer
/// chunk").
const SETTLE_TWO: Duration = Duration::from_millis(2);

/// [`after_flush`] before a chunk of two writer threads.
///
/// One writer leaves the pool a vCPU of this 2-vCPU guest; two writers take both, so
/// whatever the pool still runs after the flush runs on their time. And the pool's two
/// workers then alternate their idle spins on one vCPU, each `sched_yield` handing it to the
/// other, which stretches the spin: in a `perf sched timehist` of the Q2 rounds the pool's
/// bursts of activity around a flush lasted 71 µs at the median, 261 µs at p90 and 496 µs at
/// most. With [`after_flush`]'s 200 µs, Q2's warm two-producer chunks ran at 2.77–2.96 ns
/// per item in the rounds; with 2 ms, at 2.15–2.26 in four runs out of four (with 1 ms,
/// in three out of five).
pub fn after_flush_of_two() {
    thread::sleep(SETTLE_TWO);
}
