//! The one place the lock-free code gets its synchronization primitives from.
//!
//! Under `--cfg loom` every atomic, mutex, spin-wait and `UnsafeCell` used by
//! [`crate::raw`] comes from [loom](https://docs.rs/loom), so the loom models in
//! `loom-tests/` explore every interleaving of the real algorithm; otherwise they are the
//! standard library's. The rest of the crate (engine, handles) uses `std` directly: it is
//! ordinary lock-based code and is not model-checked.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering},
    Mutex,
};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::fence;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::fence;

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering},
    Mutex,
};

/// Gives up the processor while waiting for another thread to finish a short step (a writer
/// finishing its slot, a block being linked). Loom needs to see the yield to schedule the
/// thread being waited for.
#[cfg(loom)]
pub(crate) fn spin_wait(_step: &mut u32) {
    loom::thread::yield_now();
}

/// Gives up the processor while waiting for another thread to finish a short step (a writer
/// finishing its slot, a block being linked): spins briefly, then yields.
#[cfg(not(loom))]
pub(crate) fn spin_wait(step: &mut u32) {
    if *step < SPIN_STEPS {
        for _ in 0..(1u32 << *step) {
            std::hint::spin_loop();
        }
        *step += 1;
    } else {
        std::thread::yield_now();
    }
}

/// The steps of [`spin_wait`] that spin (1, 2, 4 ... 32 pauses) before it yields.
#[cfg(not(loom))]
const SPIN_STEPS: u32 = 6;

/// Waits for another thread's hold on a slot of the key this thread is writing too: as
/// [`spin_wait`], with `step` starting at 0, except that the first wait is long.
#[cfg(loom)]
pub(crate) fn wait_for_holder(step: &mut u32) {
    spin_wait(step);
}

/// Waits for another thread's hold on a slot of the key this thread is writing too: as
/// [`spin_wait`], with `step` starting at 0, except that the first wait is long:
/// [`HOLDER_FIRST_WAIT`] pauses before `spin_wait`'s last spinning step.
///
/// Two threads that write the same keys in the same order otherwise stay in step: each
/// finds the other holding nearly every key's slot, waits a few nanoseconds, and takes the
/// slot's cache lines back from the other core. A long first wait lets the holder get ahead
/// to other keys, after which the two rarely meet on a slot. Measured with two threads
/// putting the same 1 000 keys in the same order (PERFORMANCE.md, "The wait for a held
/// slot"): 13.8–16.0 ns per put against 23.0–23.6; two threads putting one key, 8.0
/// against 15.6.
#[cfg(not(loom))]
pub(crate) fn wait_for_holder(step: &mut u32) {
    if *step == 0 {
        for _ in 0..HOLDER_FIRST_WAIT {
            std::hint::spin_loop();
        }
        *step = SPIN_STEPS - 1;
    }
    spin_wait(step);
}

/// Pauses of [`wait_for_holder`]'s first wait: about 3.4 µs on the AMD EPYC guest of
/// PERFORMANCE.md (a pause takes 26 ns there), against a hold of tens of nanoseconds.
#[cfg(not(loom))]
const HOLDER_FIRST_WAIT: u32 = 128;

/// `UnsafeCell` with loom's closure-based API, so loom can track every access to a slot.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `UnsafeCell` with loom's closure-based API (see the `cfg(loom)` twin), over std's cell.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// `wait_for_holder` makes its long wait once, then continues where `spin_wait` makes its
    /// last spin, and yields from then on, as `spin_wait` does after its spins.
    #[test]
    fn the_wait_for_a_holder_is_long_once_then_a_spin_wait() {
        let mut step = 0;
        wait_for_holder(&mut step);
        assert_eq!(step, SPIN_STEPS);
        wait_for_holder(&mut step);
        assert_eq!(step, SPIN_STEPS);
        let mut spun = 0;
        while spun < SPIN_STEPS {
            spin_wait(&mut spun);
        }
        assert_eq!(spun, step);
    }
}
