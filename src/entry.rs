//! What a `HashMap` processor receives: one [`Entry`] per key and tick.

/// The latest write of one key within a tick, as handed to a `HashMap`'s processor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry<K, V> {
    /// The key.
    pub key: K,
    /// The value of the last write that won (last `put`, or highest `put_newer` version).
    pub value: V,
    /// The stored version: 0 for a plain `put`.
    pub version: u64,
    /// How many times a newer `put_newer` replaced the entry within the tick.
    pub updates: u64,
}
