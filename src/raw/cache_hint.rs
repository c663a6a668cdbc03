//! Hints to the cache: fetch a line that a write will need soon, or push lines that another
//! core will write next out of this core's private caches.
//!
//! [`for_write`] is how `HashMap::put_all` overlaps the cache misses of the entries it is
//! about to write (PERFORMANCE.md, "`put_all` with a look-ahead"). [`demote`] is how a
//! queue's taker hands the blocks it has read back to their owner (PERFORMANCE.md, "Blocks
//! demoted on their way back"). A hint reads nothing the program sees, cannot fault, and
//! changes no value, so it needs no model under loom or Miri, where it compiles to nothing.
//! Elsewhere than x86-64 it does nothing.

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

/// Asks the core to move every cache line of the `len` values from `start` out of its own
/// caches into the cache all cores share (`cldemote`), so that the next core to write them
/// takes them from there instead of from this core. Call it on memory this thread has
/// finished reading and another thread is about to write.
#[inline]
pub(crate) fn demote<T>(start: *const T, len: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
    {
        const LINE: usize = 64;
        let first = start.cast::<u8>();
        let end = first.wrapping_add(len * core::mem::size_of::<T>());
        // From the start of the line holding the first byte: a range that starts inside a
        // line (a block's values are aligned to 16 bytes, not 64) ends inside one too.
        let mut line = first.wrapping_sub(first as usize % LINE);
        while line < end {
            // SAFETY: `cldemote` is a hint that reads nothing, cannot fault, and changes no
            // value the program sees; a core without it (before Tremont and Sapphire
            // Rapids, and every AMD core) decodes it as a no-operation (the `0F 1C`
            // hint space), so it needs no CPU feature check. The wrapping arithmetic makes no
            // claim about the address, which the hint does not dereference either.
            unsafe {
                core::arch::asm!(
                    "cldemote byte ptr [{line}]",
                    line = in(reg) line,
                    options(nostack, preserves_flags, readonly),
                );
            }
            line = line.wrapping_add(LINE);
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(loom))))]
    let _ = (start, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both hints leave every value as it was, on any length and on a buffer's edges.
    #[test]
    fn hints_change_no_value() {
        let values: Vec<u64> = (0..1000).collect();
        for len in [0, 1, 7, 8, 9, 1000] {
            demote(values.as_ptr(), len);
        }
        demote(values[999..].as_ptr(), 1);
        for value in &values {
            for_write(value);
        }
        assert!(values.iter().copied().eq(0..1000));
    }
}
