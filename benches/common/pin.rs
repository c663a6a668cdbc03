//! Pins a bench's writer threads to CPUs of their own. Shared by `benches/queue_push.rs` and
//! `benches/map_put.rs` (a module of each, not a bench target).
//!
//! Why: left to the scheduler, the two writers of a chunk sometimes start on the same CPU
//! and share it for the whole chunk, which then measures one CPU's throughput, not two. On
//! the 2-vCPU Intel guest of PERFORMANCE.md's run V, in a loop that alternated tidefall's
//! two producers with SegQueue's (as the interleaved rounds do), that happened to about one
//! chunk in three, at 1.85 ns per item against 1.0 for the chunks on separate CPUs
//! ("Q2 and the scheduler"). Every contestant's writers are pinned alike.

/// Pins the calling thread, writer number `writer` of a chunk, to the `writer`-th CPU it may
/// run on; leaves it unpinned where there are not that many CPUs, or where the platform
/// does not say which there are.
pub fn writer_to_own_cpu(writer: usize) {
    let Some(cpus) = core_affinity::get_core_ids() else {
        return;
    };
    if let Some(&cpu) = cpus.get(writer) {
        core_affinity::set_for_current(cpu);
    }
}
