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
