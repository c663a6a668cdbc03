//! A hint to the cache: start fetching a line that a write will need soon.
//!
//! [`for_write`] is how `HashMap::put_all` overlaps the cache misses of the entries it is
//! about to write (PERFORMANCE.md, "`put_all` with a look-ahead"). A prefetch is only a
//! hint: it reads nothing the program sees, cannot fault, and changes no value, so it
//! needs no model under loom or Miri, where it compiles to nothing. On targets without a
//! stable prefetch intrinsic (everything but x86-64 on stable Rust) it does nothing.

/// Asks the core to fetch the cache line holding `at` for a coming write; any address may
/// be given, valid or not.
#[inline(always)]
pub(crate) fn for_write<T>(at: *const T) {
    #[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86-64 core has; a prefetch of any
    // address is defined (it neither faults nor reads the line into the program's view).
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
        // `ET0`: for writing, into every level. It becomes `prefetchw` where the build
        // enables `prfchw` (`-C target-cpu=native` on most cores of the last ten years) and
        // `prefetcht0` otherwise; on the M3 loop the two measured the same.
        _mm_prefetch::<_MM_HINT_ET0>(at.cast());
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(loom))))]
    let _ = at;
}
