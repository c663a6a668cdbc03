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
    if *step < 6 {
        for _ in 0..(1u32 << *step) {
            std::hint::spin_loop();
        }
        *step += 1;
    } else {
        std::thread::yield_now();
    }
}

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
