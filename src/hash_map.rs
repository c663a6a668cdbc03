//! [`HashMap<K, V, S>`]: the latest value per key, handed to the processor once per tick.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::engine::Core;
use crate::entry::Entry;
use crate::options::{option_setters, Error, Options, OptionsUpdate};
use crate::partition::{Partition, Store};
use crate::processor::Processor;
use crate::raw::table::{Refused, Tables, Write, Written};
use crate::routing;
use crate::telemetry::{Stats, StopReason};
use crate::{DefaultHashBuilder, PushError};

/// How many entries `put_all` and `put_all_newer` read ahead of the one they write, to
/// fetch their slots early (see `HashMap::write_all`). Eight took M3's drained insert from
/// 89 to 45 ns in a standalone loop; sixteen and thirty-two did no better (PERFORMANCE.md,
/// "`put_all` with a look-ahead").
const LOOK_AHEAD: usize = 8;

/// How often (in items) `put_all` without a look-ahead checks whether a table has grown
/// large enough to start one: a fresh map's table grows during a long `put_all`.
const LOOK_AHEAD_CHECK: usize = 64;

/// What a write of one item of `put_all` or `put_all_newer` did, or the item back.
type WriteOutcome<T> = Result<Written, (Refusal, T)>;

/// An item of `put_all` (a pair) or `put_all_newer` (a triple with its version): the write
/// it makes, and the item back from a refused one (`HashMap::write_item`).
///
/// A trait, rather than a closure per call: `write_all` writes in two loops, and a closure
/// called from two places stayed out of line (M1's loop over `put_all` took 10-13 ns per
/// put against 8-9); `write_item` is always inlined into both.
trait BatchItem<K, V>: Sized {
    /// The item's key.
    fn key(&self) -> &K;

    /// The item as the write of its key.
    fn into_write(self) -> (K, Write<V>);

    /// The item again, from the key and value of its refused write and the write's version.
    fn back(key: K, value: V, version: u64) -> Self;
}

impl<K, V> BatchItem<K, V> for (K, V) {
    #[inline(always)]
    fn key(&self) -> &K {
        &self.0
    }

    #[inline(always)]
    fn into_write(self) -> (K, Write<V>) {
        (self.0, Write::Put(self.1))
    }

    #[inline(always)]
    fn back(key: K, value: V, _: u64) -> Self {
        (key, value)
    }
}

impl<K, V> BatchItem<K, V> for (K, V, u64) {
    #[inline(always)]
    fn key(&self) -> &K {
        &self.0
    }

    #[inline(always)]
    fn into_write(self) -> (K, Write<V>) {
        (self.0, Write::Newer(self.1, self.2))
    }

    #[inline(always)]
    fn back(key: K, value: V, version: u64) -> Self {
        (key, value, version)
    }
}

/// What `put_all` and `put_all_newer` have done so far: how many stored, and the items
/// refused for capacity, in order, with the partition that refused first.
struct Tally<T> {
    stored: usize,
    refused: Vec<T>,
    first_full: Option<usize>,
}

impl<T> Default for Tally<T> {
    fn default() -> Self {
        Tally {
            stored: 0,
            refused: Vec::new(),
            first_full: None,
        }
    }
}

impl<T> Tally<T> {
    /// Counts one write's outcome; gives the item back when the buffer is stopped.
    #[inline(always)]
    fn count(&mut self, outcome: WriteOutcome<T>) -> Option<T> {
        match outcome {
            Ok(Written::Ignored) => None,
            Ok(Written::Inserted | Written::Replaced) => {
                self.stored += 1;
                None
            }
            Err((Refusal::Full(partition), item)) => {
                self.first_full.get_or_insert(partition);
                self.refused.push(item);
                None
            }
            Err((Refusal::Stopped, item)) => Some(item),
        }
    }

    /// The error once the buffer is stopped: the items refused so far, then `item`, then
    /// `rest`, in order.
    fn stopped(mut self, item: T, rest: impl Iterator<Item = T>) -> PushError<Vec<T>> {
        self.refused.push(item);
        self.refused.extend(rest);
        PushError::Stopped(self.refused)
    }

    /// The result once every item was written or refused.
    fn finish<K, V, S>(self, map: &HashMap<K, V, S>) -> Result<usize, PushError<Vec<T>>>
    where
        K: Hash + Eq + Send + 'static,
        V: Send + 'static,
        S: BuildHasher + Send + Sync + 'static,
    {
        match self.first_full {
            None => Ok(self.stored),
            Some(partition) => Err(map.error(Refusal::Full(partition), self.refused)),
        }
    }
}

impl<K, V> Store for Tables<K, V>
where
    K: Eq + Send + 'static,
    V: Send + 'static,
{
    type Out = Entry<K, V>;

    fn take(&self, out: &mut Vec<Entry<K, V>>) -> usize {
        Tables::take(self, out)
    }

    fn close_for_good(&self, out: &mut Vec<Entry<K, V>>) -> usize {
        Tables::close_for_good(self, out)
    }

    fn len(&self) -> usize {
        Tables::len(self)
    }

    fn is_empty(&self) -> bool {
        Tables::is_empty(self)
    }
}

/// A process-wide, strictly increasing version for [`HashMap::put_newer`]: every call returns
/// a number greater than every number any earlier call returned, on any thread (the first is
/// 1). It is a counter, not a clock: versions from different processes do not compare.
///
/// Two `put_newer` calls on different threads are ordered by the versions they carry, so
/// taking the version just before writing makes "the last write" well defined even when the
/// writes race.
///
/// ```
/// let a = tidefall::monotonic_version();
/// let b = tidefall::monotonic_version();
/// assert!(0 < a && a < b);
/// ```
pub fn monotonic_version() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // Relaxed: the RMWs on one atomic are totally ordered, so each call gets a distinct
    // number greater than those of every call before it in that order, which is all the
    // guarantee says.
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A buffer that keeps the latest value per key and hands the processor one [`Entry`] per
/// key on each tick: writes to a key within one tick coalesce, and memory is bounded by the
/// number of live keys, not by the number of writes.
///
/// Every write goes to the partition of its key's hash (computed once with the map's
/// [`BuildHasher`]), so coalescing holds across partitions and threads. An overwrite replaces
/// the stored value in place and drops the old one; on each tick (every
/// `processing_interval`) each partition's table is swapped for a fresh one and its entries
/// go to the processor, on the thread pool, in batches of `processing_batch_size`.
///
/// * [`put`](Self::put): last write wins; the entry's `version` and `updates` become 0.
/// * [`put_newer`](Self::put_newer): stores only when the key is absent from the current
///   tick or the version is strictly newer; each newer replacement adds 1 to `updates`.
/// * [`get`](Self::get), [`delete`](Self::delete), [`len`](Self::len) see the current tick
///   only: entries already handed to the processor are gone from the map.
///
/// # Writers and partitions
///
/// A partition that only one thread has ever touched (written, read or deleted from) is
/// *owned* by it: its overwrites and inserts take no lock and no atomic read-modify-write
/// (about 9 ns per overwrite on the 2-vCPU machine of PERFORMANCE.md, where a put that takes
/// the slot's lock costs about 17). The first access from a second thread makes the partition *shared* for
/// good (once, with one process-wide memory barrier), and every access then locks the key's
/// slot. So a producer that writes keys of its own, or a single producer, gets the owner's
/// speed, and several producers writing the same partitions get the shared path: a lock on
/// the key's slot, never on the partition, and never a wait for a tick.
///
/// A key's `Eq` runs inside a write, a `get` or a `delete`, while the key's slot is held, and
/// must not access the same map: from it, an access to the partition being searched panics
/// when the partition is owned (the owner's write holds no lock, and going on would break
/// its exclusivity), and waits forever when it is shared and reaches the held slot, as a
/// `Mutex` locked twice does. A key's `Hash` runs before its own write, and again, with the
/// key's slot held, whenever a write grows the key's table and moves it into the new one
/// (as a hash table that rehashes when it grows does): the same rule holds for it. It must
/// be a function of the key, as for any hash map; a panic from it while a table grows stops
/// that growth where it is, loses nothing, and reaches the write that grew the table.
///
/// # Options, for a map
///
/// `capacity` is exact per partition and counts *distinct keys in the current tick*: a write
/// that would give a value to one more key is refused with [`PushError::Full`] when the
/// partition holds `capacity` keys, an overwrite of a buffered key is always accepted, a
/// successful `delete` frees its room, and keys already handed to the processor do not
/// count. `drain_threshold` counts distinct keys too. The write that takes a partition to
/// the threshold asks for the early drain itself; when several new keys land at the same
/// instant that write may not see the crossing, and the periodic check (every
/// `drain_check_interval`) drains the partition instead.
///
/// # Statistics, for a map
///
/// An *item* of [`Stats`] is an entry: a key holding a value when its partition is drained.
/// `buffered` counts the keys holding a value now plus the entries taken by a cycle and not
/// yet settled; `processed` and `failed` count entries. So at rest
/// `processed + failed + buffered` equals the number of entries ever accepted, where writes
/// that coalesced into one entry count once and a deleted key counts for nothing. `rejected`
/// counts `Full` errors returned (a `put_all` refused in part counts once).
///
/// Handles are cheap clones of one buffer; dropping the last one stops the buffer, draining
/// it.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
/// use tidefall::{Entry, HashMap};
///
/// let latest = Arc::new(Mutex::new(BTreeMap::new()));
/// let sink = Arc::clone(&latest);
/// let gauges = HashMap::<String, f64>::builder()
///     .partitions(2)
///     .processor(move |entries: Vec<Entry<String, f64>>| {
///         let mut latest = sink.lock().unwrap();
///         for entry in entries {
///             latest.insert(entry.key, entry.value);
///         }
///     })
///     .start()?;
///
/// gauges.put("cpu".to_owned(), 0.5).unwrap();
/// gauges.put("cpu".to_owned(), 0.7).unwrap(); // coalesces: one entry for "cpu"
/// gauges.put("mem".to_owned(), 0.2).unwrap();
/// assert_eq!(gauges.get("cpu"), Some(0.7));
/// assert_eq!(gauges.len(), 2);
/// assert!(gauges.delete("mem"));
///
/// gauges.flush()?; // one tick now: the processor gets one entry per key
/// assert_eq!(*latest.lock().unwrap(), BTreeMap::from([("cpu".to_owned(), 0.7)]));
/// assert!(gauges.is_empty());
/// gauges.stop()?;
/// assert!(gauges.put("cpu".to_owned(), 1.0).is_err());
/// # Ok::<(), tidefall::Error>(())
/// ```
pub struct HashMap<K, V, S = DefaultHashBuilder>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    handle: Arc<Handle<K, V>>,
    /// The core's partitions, held here as well: a write reaches its partition with one
    /// load from the map rather than three (the handle, the core, the partitions), and each
    /// load on that chain costs the M1 bench its latency (PERFORMANCE.md, "Where M1's time
    /// goes").
    partitions: Arc<[Partition<Tables<K, V>>]>,
    /// The hasher, held here rather than in the handle for the same reason, and shared with
    /// every partition's store, which hashes the keys it moves when its table grows.
    hasher: Arc<S>,
}

/// The part of a map its handles share; dropping it stops the buffer.
struct Handle<K, V>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
{
    core: Arc<Core<Tables<K, V>>>,
}

impl<K, V> Drop for Handle<K, V>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
{
    fn drop(&mut self) {
        // A timeout is reported through telemetry and counted in the stats; a drop cannot
        // return it.
        let _ = self.core.stop(StopReason::Dropped);
    }
}

impl<K, V, S> Clone for HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    fn clone(&self) -> Self {
        HashMap {
            handle: Arc::clone(&self.handle),
            partitions: Arc::clone(&self.partitions),
            hasher: Arc::clone(&self.hasher),
        }
    }
}

impl<K, V, S> fmt::Debug for HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashMap")
            .field("name", &self.name())
            .field("partitions", &self.partitions.len())
            .field("len", &self.len())
            .finish()
    }
}

/// Why the store refused a write, as the handle reports it.
#[derive(Clone, Copy)]
enum Refusal {
    /// The key's partition, at capacity.
    Full(usize),
    /// The buffer is stopped.
    Stopped,
}

impl<K, V> HashMap<K, V, DefaultHashBuilder>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
{
    /// A builder with the default options and [`DefaultHashBuilder`]; a processor is
    /// required.
    pub fn builder() -> HashMapBuilder<K, V, DefaultHashBuilder> {
        HashMapBuilder {
            options: Options::default(),
            processor: None,
            hasher: DefaultHashBuilder::default(),
            _entries: PhantomData,
        }
    }
}

impl<K, V, S> HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// The buffer's name.
    pub fn name(&self) -> &str {
        self.handle.core.name()
    }

    /// Stores `value` for `key` in the current tick: the last write wins, and the entry's
    /// version and `updates` become 0. The value it replaces, if any, is dropped.
    ///
    /// Fails with [`PushError::Full`] when the key is new to its partition's current tick
    /// and the partition holds `capacity` keys, and with [`PushError::Stopped`] once the
    /// buffer is stopped; either way the key and value come back.
    #[inline]
    pub fn put(&self, key: K, value: V) -> Result<(), PushError<(K, V)>> {
        match self.write(key, Write::Put(value)) {
            Ok(_) => Ok(()),
            Err((refusal, key, value)) => Err(self.error(refusal, (key, value))),
        }
    }

    /// Stores every pair, in order, like [`put`](Self::put). Past `capacity`, what fits is
    /// accepted (overwrites always fit) and the error carries back exactly the pairs that
    /// were not, in order; once the buffer is stopped, every pair not accepted comes back in
    /// [`PushError::Stopped`].
    ///
    /// Where many of the keys are new, or their slots are out of the cache, it is faster
    /// than a loop of `put`s: once a partition's table is large (past 16 384 slots), it
    /// reads eight pairs ahead of the one it writes and starts fetching their slots, so
    /// that their cache misses overlap (a million new keys into a drained map: 0.6 of the
    /// time per key; PERFORMANCE.md, M3). A key's `Hash` runs when its pair is read. If it
    /// panics, the panic reaches the caller, and the pairs before it are stored, except,
    /// on a large table, the seven (or fewer) read ahead of their write, which are dropped
    /// with the rest.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidefall::{Entry, HashMap};
    ///
    /// let map = HashMap::<u64, u64>::builder()
    ///     .processing_interval(Duration::from_secs(3600))
    ///     .processor(|entries: Vec<Entry<u64, u64>>| println!("{} keys", entries.len()))
    ///     .start()?;
    /// map.put_all((0..10_000).map(|i| (i % 1_000, i)))?;
    /// assert_eq!(map.len(), 1_000);
    /// assert_eq!(map.get(&7), Some(9_007));
    /// map.stop()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_all(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), PushError<Vec<(K, V)>>> {
        self.write_all(entries).map(drop)
    }

    /// Stores `value` for `key` iff the key holds no value in the current tick or `version`
    /// is strictly greater than the stored version; returns whether it stored. An equal or
    /// older version is ignored (its value dropped). Each replacement by a newer version adds
    /// 1 to the entry's `updates`; a first store starts it at 0.
    ///
    /// Versions compare within the current tick only: after [`delete`](Self::delete), or
    /// once the key was handed to the processor, any version stores again. See
    /// [`monotonic_version`] for versions that order writes across threads.
    ///
    /// Fails like [`put`](Self::put); a write that would only be ignored never fails for
    /// capacity.
    #[inline]
    pub fn put_newer(&self, key: K, value: V, version: u64) -> Result<bool, PushError<(K, V)>> {
        match self.write(key, Write::Newer(value, version)) {
            Ok(written) => Ok(written != Written::Ignored),
            Err((refusal, key, value)) => Err(self.error(refusal, (key, value))),
        }
    }

    /// Writes every triple `(key, value, version)`, in order, like
    /// [`put_newer`](Self::put_newer); returns how many stored. Refusals are returned like
    /// [`put_all`](Self::put_all)'s, with their versions; on a large table it reads ahead,
    /// and a key whose `Hash` panics leaves the triples before it stored, as `put_all` does.
    // The signature is the contract's (SPEC §1); an alias would only hide it in the docs.
    #[allow(clippy::type_complexity)]
    pub fn put_all_newer(
        &self,
        entries: impl IntoIterator<Item = (K, V, u64)>,
    ) -> Result<usize, PushError<Vec<(K, V, u64)>>> {
        self.write_all(entries)
    }

    /// A clone of the value `key` holds in the current tick; entries already handed to the
    /// processor are not visible.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let (hash, partition) = self.locate(key);
        self.partitions[partition]
            .store
            .get(routing::this_thread(), hash, key)
    }

    /// Removes `key`'s value from the current tick (dropping it); true if it had one. The
    /// key frees its room under `capacity`, and a later `put_newer` of it stores whatever
    /// its version.
    pub fn delete<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, partition) = self.locate(key);
        let core = &*self.handle.core;
        let part = &self.partitions[partition];
        let Some(value) = part.store.delete(routing::this_thread(), hash, key) else {
            return false;
        };
        if core.capacity.is_some() {
            part.release(1);
        }
        // Dropped last: a `Drop` that panics finds the room already given back.
        drop(value);
        true
    }

    /// Distinct keys holding a value in the current tick (not yet taken by a tick).
    pub fn len(&self) -> usize {
        self.handle.core.len()
    }

    /// No key holds a value in the current tick.
    pub fn is_empty(&self) -> bool {
        self.handle.core.is_empty()
    }

    /// The buffer's counters; for a map, an item is an entry (see the type's docs).
    pub fn stats(&self) -> Stats {
        self.handle.core.stats()
    }

    /// Runs a tick on every partition now and returns once the processor has returned for
    /// every entry buffered at the call (a stuck call is waited for at most
    /// `processing_timeout`). Runs no processor on the calling thread. After `stop`, returns
    /// at once.
    ///
    /// Do not call it from inside a processor: the cycle it waits for may need that thread.
    pub fn flush(&self) -> Result<(), Error> {
        self.handle.core.flush()
    }

    /// Stops the buffer: later writes return [`PushError::Stopped`]; a last tick drains every
    /// partition, and the call returns once the processor has seen every accepted entry.
    /// Idempotent; `Err(Error::Timeout)` when cycles outlived `processing_timeout`.
    pub fn stop(&self) -> Result<(), Error> {
        self.handle.core.stop(StopReason::Stopped)
    }

    /// Changes run-time options on every partition; an invalid value changes nothing.
    pub fn update_options(&self, update: OptionsUpdate) -> Result<(), Error> {
        self.handle.core.update_options(&update)
    }

    /// The hash of `key` and the partition it routes to.
    #[inline]
    fn locate<Q: Hash + ?Sized>(&self, key: &Q) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        (hash, routing::by_hash(hash, self.partitions.len()))
    }

    /// Writes to `key`'s partition, keeping its capacity and drain accounting.
    // Always inlined into `put` and `put_newer`: the store's general path is out of line
    // (`Tables::write_found`), what is left is the overwrite, and a call around it cost the M1
    // bench about 0.5 ns per put (12.1 against 11.6).
    #[inline(always)]
    fn write(&self, key: K, write: Write<V>) -> Result<Written, (Refusal, K, V)> {
        self.write_at(self.locate(&key), key, write)
    }

    /// [`write`](Self::write) of a key already located: `(hash, partition)` from
    /// [`locate`](Self::locate).
    #[inline(always)]
    fn write_at(
        &self,
        (hash, partition): (u64, usize),
        key: K,
        write: Write<V>,
    ) -> Result<Written, (Refusal, K, V)> {
        let part = &self.partitions[partition];
        let thread = routing::this_thread();
        // The partition's number is found again from the hash where it is needed after the
        // write, rather than kept across it: one value fewer for the write to keep on the
        // stack (the M3 bench: PERFORMANCE.md, run R, "The owner's view and the put's
        // stores").
        let partition_of = |hash| routing::by_hash(hash, self.partitions.len());
        // The room a new key takes is reserved in `admit`, which the store calls only for a
        // write that then inserts: a granted reservation always ends in `Inserted`, so no
        // outcome has room to give back. (Tracking whether `admit` ran, in a `Cell` the
        // closure set, cost the M1 bench's overwrite about 0.8 ns per put: 6.2-6.9 against
        // 5.3-5.4, p10 of the timed chunks.)
        let outcome = part.store.write(thread, hash, key, write, || {
            match self.handle.core.capacity {
                None => true,
                Some(capacity) => part.reserve(capacity, 1) == 1,
            }
        });
        match outcome {
            Ok(Written::Inserted) => {
                let core = &*self.handle.core;
                if core.watches_fill() {
                    let len = part.store.len() as u64;
                    core.filled(partition_of(hash), len.saturating_sub(1), len);
                }
                Ok(Written::Inserted)
            }
            Ok(written) => Ok(written),
            Err((Refused::Full, key, value)) if !self.handle.core.is_stopped() => {
                Err((Refusal::Full(partition_of(hash)), key, value))
            }
            Err((Refused::Full | Refused::Closed, key, value)) => {
                Err((Refusal::Stopped, key, value))
            }
        }
    }

    /// `put_all`'s write of one item, its key located at `at`: the item comes back with a
    /// refusal.
    #[inline(always)]
    fn write_item<T: BatchItem<K, V>>(&self, at: (u64, usize), item: T) -> WriteOutcome<T> {
        let (key, write) = item.into_write();
        let version = match write {
            Write::Put(_) => 0,
            Write::Newer(_, version) => version,
        };
        self.write_at(at, key, write)
            .map_err(|(refusal, key, value)| (refusal, T::back(key, value, version)))
    }

    /// Writes each item ([`HashMap::write_item`]); returns how many stored, or the items not
    /// accepted, in order. Once the buffer is stopped, the rest are returned without trying
    /// them. A `Full` outcome counts as one refused write, on the partition that refused
    /// first.
    ///
    /// Once a partition's table is large ([`Tables::is_large`], checked at the start and
    /// every [`LOOK_AHEAD_CHECK`] items: a fresh map's table grows during a long call), the
    /// rest is written with a look-ahead ([`HashMap::write_ahead`]).
    fn write_all<T: BatchItem<K, V>>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<usize, PushError<Vec<T>>> {
        let mut tally = Tally::default();
        // Fused: the look-ahead's window takes the first `None` for the end of the items.
        let mut items = items.into_iter().fuse();
        let mut count = 0usize;
        loop {
            if count % LOOK_AHEAD_CHECK == 0
                && self.partitions.iter().any(|part| part.store.is_large())
            {
                return self.write_ahead(items, tally);
            }
            let Some(item) = items.next() else {
                return tally.finish(self);
            };
            count += 1;
            let at = self.locate(item.key());
            if let Some(item) = tally.count(self.write_item(at, item)) {
                return Err(tally.stopped(item, items));
            }
        }
    }

    /// The rest of [`write_all`](Self::write_all), with a look-ahead: it reads
    /// [`LOOK_AHEAD`] items ahead of the one it writes, and each item is located, and its
    /// slot's lines fetched ([`Tables::prefetch`]), when it enters that window, so that the
    /// cache misses of the writes to come overlap the writes before them, where a loop of
    /// `put`s takes them one after the other. A key's `Hash` therefore runs up to
    /// `LOOK_AHEAD` items before its write; if it panics, the items read and not written
    /// are dropped with the rest.
    #[inline(never)]
    fn write_ahead<T: BatchItem<K, V>, I: Iterator<Item = T>>(
        &self,
        mut items: std::iter::Fuse<I>,
        mut tally: Tally<T>,
    ) -> Result<usize, PushError<Vec<T>>> {
        let mut read = || {
            items.next().map(|item| {
                let (hash, partition) = self.locate(item.key());
                self.partitions[partition].store.prefetch(hash);
                (hash, item)
            })
        };
        // The window, a ring of the items read and not written yet, with their hashes (the
        // partition is found again from the hash: one word fewer to store per item), the
        // oldest at `next`. Once the items run out it fills with `None`s behind the last
        // one, so the oldest is `None` only when every item was written.
        let mut window: [Option<(u64, T)>; LOOK_AHEAD] = std::array::from_fn(|_| read());
        let mut next = 0;
        while let Some((hash, item)) = window[next].take() {
            let partition = routing::by_hash(hash, self.partitions.len());
            if let Some(item) = tally.count(self.write_item((hash, partition), item)) {
                let later = (1..LOOK_AHEAD).map(|i| (next + i) % LOOK_AHEAD);
                let unwritten = later.filter_map(|i| window[i].take().map(|(_, item)| item));
                return Err(tally.stopped(item, unwritten.chain(items)));
            }
            window[next] = read();
            next = (next + 1) % LOOK_AHEAD;
        }
        tally.finish(self)
    }

    /// The error for a refused write; a `Full` one is counted, reported in the partition's
    /// next `Rejected` event, so their counts sum to the `Full` errors returned.
    fn error<T>(&self, refusal: Refusal, item: T) -> PushError<T> {
        match refusal {
            Refusal::Full(partition) => {
                self.handle.core.rejected(partition);
                PushError::Full(item)
            }
            Refusal::Stopped => PushError::Stopped(item),
        }
    }
}

/// A processor of entry batches, boxed.
type EntryProcessor<K, V> = Box<dyn Processor<Vec<Entry<K, V>>>>;

/// Configures and starts a [`HashMap`]. See the option table in the crate docs; for a map,
/// `capacity` and `drain_threshold` count distinct keys.
///
/// ```
/// use std::time::Duration;
/// use tidefall::{BatchSize, Entry, HashMap};
///
/// let map = HashMap::<u64, String>::builder()
///     .name("sessions")
///     .partitions(4)
///     .processing_interval(Duration::from_millis(200))
///     .processing_batch_size(BatchSize::Table)
///     .capacity(10_000)
///     .hasher(std::hash::RandomState::new())
///     .processor(|entries: Vec<Entry<u64, String>>| -> Result<(), String> {
///         for entry in &entries {
///             assert!(!entry.value.is_empty());
///         }
///         Ok(())
///     })
///     .start()?;
/// assert!(map.put_newer(7, "login".into(), tidefall::monotonic_version()).unwrap());
/// map.stop()?;
/// # Ok::<(), tidefall::Error>(())
/// ```
pub struct HashMapBuilder<K, V, S = DefaultHashBuilder> {
    options: Options,
    processor: Option<EntryProcessor<K, V>>,
    hasher: S,
    _entries: PhantomData<fn(K, V)>,
}

impl<K, V, S> HashMapBuilder<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    option_setters!();

    /// The function that receives each batch of entries (required).
    pub fn processor(mut self, processor: impl Processor<Vec<Entry<K, V>>>) -> Self {
        self.processor = Some(Box::new(processor));
        self
    }

    /// An async function as the processor (required, instead of `processor`): each batch's
    /// future runs on `runtime`, and `processing_timeout` cancels it. See
    /// [`QueueBuilder::processor_async`](crate::QueueBuilder::processor_async).
    ///
    /// ```
    /// use tidefall::{Entry, HashMap};
    ///
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let map = HashMap::<u32, f64>::builder()
    ///     .processor_async(runtime.handle().clone(), |entries: Vec<Entry<u32, f64>>| async move {
    ///         assert_eq!(entries.len(), 1);
    ///     })
    ///     .start()?;
    /// map.put(1, 0.5).unwrap();
    /// map.put(1, 0.7).unwrap();
    /// map.stop()?;
    /// assert_eq!(map.stats().processed, 1);
    /// # Ok::<(), tidefall::Error>(())
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn processor_async<F, Fut, R>(self, runtime: tokio::runtime::Handle, process: F) -> Self
    where
        F: Fn(Vec<Entry<K, V>>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = R> + Send + 'static,
        R: crate::ProcessOutcome + Send + 'static,
    {
        self.processor(crate::async_processor::AsyncProcessor::new(
            runtime, process,
        ))
    }

    /// The hasher for keys: it picks a key's partition and its place in the partition's
    /// table. Default: [`DefaultHashBuilder`].
    pub fn hasher<S2>(self, hasher: S2) -> HashMapBuilder<K, V, S2>
    where
        S2: BuildHasher + Send + Sync + 'static,
    {
        HashMapBuilder {
            options: self.options,
            processor: self.processor,
            hasher,
            _entries: PhantomData,
        }
    }

    /// Validates the options and starts the buffer. `PartitionStart` has been emitted for
    /// every partition when it returns.
    pub fn start(self) -> Result<HashMap<K, V, S>, Error> {
        let options = self.options.resolve()?;
        let processor = self.processor.ok_or(Error::MissingProcessor)?;
        let hasher = Arc::new(self.hasher);
        let store = |_| {
            let hasher = Arc::clone(&hasher);
            Tables::new(Box::new(move |key: &K| hasher.hash_one(key)))
        };
        let core = Core::start(options, store, processor, None)?;
        let partitions = Arc::clone(&core.partitions);
        Ok(HashMap {
            handle: Arc::new(Handle { core }),
            partitions,
            hasher,
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::BatchSize;
    use std::sync::Mutex;

    type Seen = Arc<Mutex<Vec<Entry<u32, u32>>>>;

    fn map(partitions: usize, capacity: Option<usize>) -> (HashMap<u32, u32>, Seen) {
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let mut builder = HashMap::<u32, u32>::builder()
            .partitions(partitions)
            .processing_interval(std::time::Duration::from_secs(3600))
            .processing_batch_size(BatchSize::Table)
            .processor(move |batch: Vec<Entry<u32, u32>>| {
                assert!(!batch.is_empty());
                sink.lock().expect("sink lock").extend(batch);
            });
        if let Some(capacity) = capacity {
            builder = builder.capacity(capacity);
        }
        (builder.start().expect("valid options"), seen)
    }

    fn drained(seen: &Seen) -> Vec<Entry<u32, u32>> {
        let mut entries = std::mem::take(&mut *seen.lock().expect("sink lock"));
        entries.sort_by_key(|e| e.key);
        entries
    }

    fn entry(key: u32, value: u32, version: u64, updates: u64) -> Entry<u32, u32> {
        Entry {
            key,
            value,
            version,
            updates,
        }
    }

    /// The whole path once, small enough for Miri: put, coalescing, get, delete, put_newer,
    /// flush, stop, refusal, stats.
    #[test]
    fn put_coalesce_flush_stop_round_trip() {
        let keys: u32 = if cfg!(miri) { 8 } else { 200 };
        let (map, seen) = map(2, None);
        for round in 0..3 {
            for k in 0..keys {
                map.put(k, k * 10 + round).expect("running");
            }
        }
        assert_eq!(map.len(), keys as usize);
        assert_eq!(map.get(&1), Some(12));
        assert!(map.delete(&0));
        assert!(!map.delete(&0));
        assert_eq!(map.get(&0), None);
        assert_eq!(map.put_newer(1, 99, 5), Ok(true));
        assert_eq!(map.put_newer(1, 98, 5), Ok(false));
        assert_eq!(map.put_newer(1, 97, 6), Ok(true));
        map.flush().expect("flush");
        assert!(map.is_empty());
        let mut expected: Vec<_> = (2..keys).map(|k| entry(k, k * 10 + 2, 0, 0)).collect();
        expected.insert(0, entry(1, 97, 6, 2));
        assert_eq!(drained(&seen), expected);
        // After the drain, an older version stores again, from scratch.
        assert_eq!(map.put_newer(1, 1, 1), Ok(true));
        map.stop().expect("stop");
        assert_eq!(drained(&seen), vec![entry(1, 1, 1, 0)]);
        assert_eq!(map.put(3, 3).map_err(PushError::into_inner), Err((3, 3)));
        let stats = map.stats();
        assert_eq!(
            (stats.processed, stats.failed, stats.buffered),
            (keys as u64, 0, 0)
        );
    }

    /// Capacity counts distinct keys; overwrites and deletes keep it exact.
    /// A key whose `Eq` runs its thread's pending reentry, once.
    #[derive(Debug)]
    struct Reentrant(u32);

    type ReentrantMap = HashMap<Reentrant, String>;

    /// A map and what to do to it from inside a key's `Eq`.
    type Reentry = (ReentrantMap, fn(&ReentrantMap));

    thread_local! {
        static REENTRY: std::cell::RefCell<Option<Reentry>> =
            const { std::cell::RefCell::new(None) };
    }

    impl std::hash::Hash for Reentrant {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }

    impl PartialEq for Reentrant {
        fn eq(&self, other: &Self) -> bool {
            if let Some((map, reenter)) = REENTRY.with(|r| r.borrow_mut().take()) {
                reenter(&map);
            }
            self.0 == other.0
        }
    }

    impl Eq for Reentrant {}

    /// The owner's overwrite runs the key's `Eq` without a lock; an access to the same
    /// partition from inside it would break the write's exclusivity (a double drop for a
    /// nested delete), so it panics, and the map stays whole.
    #[test]
    fn a_key_whose_eq_reenters_its_partition_panics_and_the_map_stays_whole() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let map: ReentrantMap = HashMap::builder()
            .partitions(1)
            .processing_interval(std::time::Duration::from_secs(3600))
            .processing_batch_size(BatchSize::Table)
            .processor(move |batch: Vec<Entry<Reentrant, String>>| {
                let mut seen = sink.lock().expect("sink lock");
                seen.extend(batch.into_iter().map(|e| (e.key.0, e.value)));
            })
            .start()
            .expect("valid options");
        // An insert compares no key: this thread now owns the partition.
        map.put(Reentrant(1), "one".into()).expect("accepted");
        let reentries: [fn(&ReentrantMap); 4] = [
            |map| {
                let _ = map.put(Reentrant(2), "nested".into());
            },
            |map| {
                let _ = map.put_newer(Reentrant(1), "nested".into(), 9);
            },
            |map| {
                map.delete(&Reentrant(1));
            },
            |map| {
                map.get(&Reentrant(1));
            },
        ];
        for reenter in reentries {
            REENTRY.with(|r| *r.borrow_mut() = Some((map.clone(), reenter)));
            let overwrite = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                map.put(Reentrant(1), "outer".into())
            }));
            let panic = overwrite.expect_err("the nested access panics");
            let message = panic.downcast_ref::<&str>().expect("a message");
            assert!(message.contains("`Eq`"), "{message}");
        }
        // Neither the outer writes nor the nested ones changed anything.
        assert_eq!(map.get(&Reentrant(1)).as_deref(), Some("one"));
        assert_eq!(map.len(), 1);
        map.put(Reentrant(1), "last".into()).expect("accepted");
        map.flush().expect("flushed");
        assert_eq!(*seen.lock().expect("sink lock"), [(1, "last".to_owned())]);
        map.stop().expect("stopped");
        assert_eq!(map.stats().processed, 1);
    }

    #[test]
    fn capacity_counts_distinct_keys() {
        let (map, seen) = map(1, Some(2));
        map.put(1, 1).expect("room");
        map.put(1, 2).expect("an overwrite always fits");
        map.put(2, 2).expect("room");
        assert_eq!(map.put(3, 3), Err(PushError::Full((3, 3))));
        match map.put_all([(1, 5), (4, 4), (2, 6), (5, 5)]) {
            Err(PushError::Full(rest)) => assert_eq!(rest, vec![(4, 4), (5, 5)]),
            other => panic!("expected Full, got {other:?}"),
        }
        assert!(map.delete(&2));
        assert_eq!(map.put_newer(3, 3, 7), Ok(true));
        assert_eq!(
            map.put_all_newer([(3, 0, 7), (4, 4, 1)])
                .map_err(PushError::into_inner),
            Err(vec![(4, 4, 1)])
        );
        assert_eq!(map.stats().rejected, 3);
        map.flush().expect("flush");
        assert_eq!(drained(&seen), vec![entry(1, 5, 0, 0), entry(3, 3, 7, 0)]);
        map.put_all([(4, 4), (5, 5)])
            .expect("room again after the tick");
        map.stop().expect("stop");
    }

    #[test]
    fn monotonic_version_strictly_increases() {
        let mut last = monotonic_version();
        for _ in 0..100 {
            let next = monotonic_version();
            assert!(next > last);
            last = next;
        }
    }
}
