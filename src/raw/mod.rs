//! The crate's only `unsafe` code: the lock-free storage behind each partition. Everything
//! here is reached through safe types whose invariants the modules document, and every
//! primitive comes from [`crate::sync`] so loom can check it.

pub(crate) mod barrier;
pub(crate) mod cache_hint;
pub(crate) mod lane;
pub(crate) mod queue;
pub(crate) mod shortcut;
pub(crate) mod staging;
pub(crate) mod striped;
pub(crate) mod table;

/// Values per block, for the queue's segments and lanes: a power of two, about 16 KiB of
/// values, between 16 and 1024. Small under loom and Miri so that the models cross block
/// boundaries.
pub(crate) const fn block_capacity<T>() -> usize {
    if cfg!(loom) {
        2
    } else if cfg!(miri) {
        4
    } else {
        let size = if core::mem::size_of::<T>() == 0 {
            1
        } else {
            core::mem::size_of::<T>()
        };
        let fit = 16 * 1024 / size;
        if fit >= 1024 {
            1024
        } else if fit < 16 {
            16
        } else {
            // The largest power of two not above `fit`.
            1 << (usize::BITS - 1 - fit.leading_zeros())
        }
    }
}
