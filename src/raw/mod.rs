//! The crate's only `unsafe` code: the lock-free storage behind each partition. Everything
//! here is reached through safe types whose invariants the modules document, and every
//! primitive comes from [`crate::sync`] so loom can check it.

pub(crate) mod queue;
pub(crate) mod table;
