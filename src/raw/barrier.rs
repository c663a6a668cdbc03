//! An asymmetric fence pair: [`Light::light`] on a hot path, [`heavy`] on a rare one.
//!
//! Together they order like a `SeqCst` fence on each side: of "A: store x; light; load y" and
//! "B: store y; heavy; load x", at least one load sees the other's store. The flag that says
//! which kind of light side to use is fixed by the first [`init`] and never changes, so a
//! light side copied from any [`init`] pairs with every later [`heavy`]. On Linux, [`heavy`]
//! is the `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` system call, which runs a full
//! barrier on every CPU running a thread of this process, so [`Light::light`] only has to stop
//! the compiler from reordering (folly's `asymmetricLightBarrier`, the C++ proposal P1202). Where
//! the system call is missing or refused (old kernels, seccomp), and under loom and Miri
//! (which model fences, not system calls), both sides are `SeqCst` fences.
//!
//! Why by hand: the `membarrier` crate (0.2.3) depends on `windows-sys` on every target and
//! no longer links on Linux, and `swmr-barrier` (0.1) keeps a compiler-only light side even
//! when the heavy system call fails, which breaks the pairing. What we need is one system
//! call and one flag.

use crate::sync::{fence, Ordering};

/// The hot side of the pair, as [`init`] found it: kept beside the data it guards, so that
/// the hot path reads no global.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Light {
    /// [`heavy`] interrupts every thread: a compiler fence is enough here.
    compiler_only: bool,
}

impl Light {
    /// The hot side: a compiler fence where [`heavy`] interrupts every thread, a `SeqCst`
    /// fence otherwise.
    #[inline(always)]
    pub(crate) fn light(self) {
        if self.compiler_only {
            core::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }
}

/// Prepares the pair and returns its hot side: call before any thread can fence for the data
/// it guards (a store calls it when it is created). Cheap after the first call.
pub(crate) fn init() -> Light {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    os::init();
    Light {
        compiler_only: expedited(),
    }
}

/// Whether [`heavy`] is the system call.
#[inline(always)]
fn expedited() -> bool {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    return os::expedited();
    #[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
    return false;
}

/// The rare side: a barrier on every running thread of the process, or a `SeqCst` fence.
pub(crate) fn heavy() {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    if expedited() {
        os::barrier_everywhere();
        return;
    }
    fence(Ordering::SeqCst);
}

#[cfg(all(target_os = "linux", not(loom), not(miri)))]
mod os {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Once;

    /// From `linux/membarrier.h` (stable kernel ABI; libc does not export them).
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    /// The process is registered for expedited barriers; fixed once `INIT` has run.
    static EXPEDITED: AtomicBool = AtomicBool::new(false);
    static INIT: Once = Once::new();

    pub(super) fn init() {
        INIT.call_once(|| {
            let registered = membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
            // Relaxed: `call_once` makes this store visible to every caller of `init`, and
            // the threads that use the pair reach its data through their callers.
            EXPEDITED.store(registered, Ordering::Relaxed);
        });
    }

    #[inline(always)]
    pub(super) fn expedited() -> bool {
        // Relaxed: see `init`; the flag never changes after it.
        EXPEDITED.load(Ordering::Relaxed)
    }

    /// A full barrier on every CPU running a thread of this process.
    pub(super) fn barrier_everywhere() {
        let result = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
        // The kernel refuses this command only for an unregistered process, and the light
        // sides already rely on it: no fallback could restore the pairing.
        assert_eq!(
            result, 0,
            "membarrier failed after a successful registration"
        );
    }

    fn membarrier(command: libc::c_int) -> libc::c_long {
        // SAFETY: `membarrier(cmd, flags, cpu_id)` reads only its integer arguments and has no
        // effect on memory; flags 0 selects the plain command (and leaves `cpu_id` unused).
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                command,
                0 as libc::c_uint,
                0 as libc::c_int,
            )
        }
    }
}
