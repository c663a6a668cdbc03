//! [`Queue<T>`]: every pushed item reaches the processor once, in push order per partition.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;

use arrayvec::ArrayVec;

use crate::engine::{Core, Sorter};
use crate::options::{option_setters, Error, Options, OptionsUpdate};
use crate::partition::Store;
use crate::processor::Processor;
use crate::raw::shortcut::QueueKey;
use crate::raw::staging::Staged;
use crate::routing;
use crate::telemetry::{Stats, StopReason};
use crate::DefaultHashBuilder;
#[cfg(all(test, not(loom)))]
use crate::PushError;

/// Routes an item to a partition by a hash of a key derived from it.
type Router<T> = Box<dyn Fn(&T) -> u64 + Send + Sync>;

impl<T: Send + 'static> Store for Staged<T> {
    type Out = T;

    fn take(&self, out: &mut Vec<T>) -> usize {
        Staged::take(self, out)
    }

    fn close_for_good(&self, out: &mut Vec<T>) -> usize {
        Staged::close_for_good(self, out)
    }

    fn len(&self) -> usize {
        Staged::len(self)
    }

    fn is_empty(&self) -> bool {
        Staged::is_empty(self)
    }

    fn set_drain_threshold(&self, threshold: usize) {
        Staged::set_drain_threshold(self, threshold as u64);
    }
}

/// A buffer that delivers every pushed item to the processor exactly once, in push order
/// within each partition.
///
/// Writes never block. A partition written by one thread only (the default routing gives
/// each producer thread its own partition when there are enough) takes a push with two plain
/// stores, into that thread's own lane; once a second thread writes to it, a push is one
/// compare-and-swap and two stores. On each tick
/// (every `processing_interval`), each partition's storage is swapped for a fresh one and the
/// old contents go to the processor, on the thread pool, in batches of
/// `processing_batch_size`.
///
/// Handles are cheap clones of one buffer; dropping the last one stops the buffer, draining
/// it.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tidefall::Queue;
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&seen);
/// let queue = Queue::<u64>::builder()
///     .partitions(1)
///     .processor(move |batch: Vec<u64>| sink.lock().unwrap().extend(batch))
///     .start()?;
///
/// for i in 0..100 {
///     queue.push(i).unwrap();
/// }
/// queue.push_many(100..110).unwrap();
/// queue.flush()?;
/// assert_eq!(*seen.lock().unwrap(), (0..110).collect::<Vec<_>>());
/// queue.stop()?;
/// assert!(queue.push(7).is_err());
/// # Ok::<(), tidefall::Error>(())
/// ```
pub struct Queue<T: Send + 'static> {
    handle: Arc<Handle<T>>,
}

/// The part of a queue its handles share; dropping it stops the buffer.
struct Handle<T: Send + 'static> {
    core: Arc<Core<Staged<T>>>,
    router: Option<Router<T>>,
    keys: DefaultHashBuilder,
    /// Neither a router nor a capacity: `push` takes its shortest path.
    plain: bool,
    /// The key under which a producer remembers its own lane (plain queues only).
    shortcut: QueueKey,
}

impl<T: Send + 'static> Drop for Handle<T> {
    fn drop(&mut self) {
        // A timeout is reported through telemetry and counted in the stats; a drop cannot
        // return it.
        let _ = self.core.stop(StopReason::Dropped);
    }
}

impl<T: Send + 'static> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<T: Send + 'static> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("partitions", &self.handle.core.partitions.len())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Send + 'static> Queue<T> {
    /// A builder with the default options; a processor is required.
    pub fn builder() -> QueueBuilder<T> {
        QueueBuilder {
            options: Options::default(),
            processor: None,
            router: None,
            sorter: None,
            _items: PhantomData,
        }
    }

    /// The buffer's name.
    pub fn name(&self) -> &str {
        self.handle.core.name()
    }

    /// Appends an item to the calling thread's partition (or the one `partition_by` picks).
    ///
    /// Fails with [`PushError::Full`](crate::PushError::Full) when the partition holds
    /// `capacity` items, and [`PushError::Stopped`](crate::PushError::Stopped) once the
    /// buffer is stopped; either way the item comes back.
    // Always inlined: it is a few loads and two stores on the owner's path, and where a caller
    // has several call sites the compiler otherwise made it a call (the Q1 bench, once it
    // pushed from three places: 4.5 ns per push against 3.1).
    #[inline(always)]
    pub fn push(&self, item: T) -> Result<(), crate::PushError<T>> {
        let handle = &*self.handle;
        // SAFETY: `handle` owns the key and the core whose stores are remembered under it
        // (only the plain paths, `push_plain` and `extend_plain`, remember, and with this
        // handle's stores), alive while `self` is.
        let item = match unsafe { handle.shortcut.own::<T>() } {
            Some(own) => match own.push(item) {
                Ok(outcome) => return self.pushed(own.partition, outcome),
                // Shared or closed since: the general path.
                Err(item) => item,
            },
            None => item,
        };
        if !handle.plain {
            return self.push_routed(item);
        }
        self.push_plain(item)
    }

    /// `push` without a router or a capacity, by a thread the shortcut did not know:
    /// remembers the thread's lane for the next push.
    #[inline(never)]
    fn push_plain(&self, item: T) -> Result<(), crate::PushError<T>> {
        let handle = &*self.handle;
        let thread = routing::this_thread();
        let core = &*handle.core;
        let partition = routing::by_thread(thread, core.partitions.len());
        let store = &core.partitions[partition].store;
        let outcome = store.push(thread, item);
        if outcome.is_ok() {
            handle.shortcut.remember(store, thread, partition);
        }
        self.pushed(partition, outcome)
    }

    /// The result of a plain push to `partition`: requests the drain when it crossed the
    /// threshold; gives the item back once the store is closed.
    #[inline(always)]
    fn pushed(
        &self,
        partition: usize,
        outcome: Result<bool, T>,
    ) -> Result<(), crate::PushError<T>> {
        match outcome {
            Ok(false) => Ok(()),
            Ok(true) => {
                self.handle.core.request_drain(partition);
                Ok(())
            }
            Err(item) => Err(crate::PushError::Stopped(item)),
        }
    }

    /// `push` with a router or a capacity.
    #[inline(never)]
    fn push_routed(&self, item: T) -> Result<(), crate::PushError<T>> {
        let thread = routing::this_thread();
        let partition = self.route(thread, &item);
        self.push_to(thread, partition, item)
            .map_err(|e| self.count_full(partition, e))
    }

    /// Appends an item to the partition of `key`: equal keys share a partition, so their
    /// items keep their push order.
    pub fn push_keyed<K: Hash + ?Sized>(
        &self,
        key: &K,
        item: T,
    ) -> Result<(), crate::PushError<T>> {
        let partition = routing::by_hash(
            self.handle.keys.hash_one(key),
            self.handle.core.partitions.len(),
        );
        self.push_to(routing::this_thread(), partition, item)
            .map_err(|e| self.count_full(partition, e))
    }

    /// Appends items in order. Past `capacity`, the items that fit are accepted and the error
    /// carries back exactly the ones that were not. Without a router or a capacity the items
    /// are written in chunks pulled from the iterator: if the iterator panics, the chunks
    /// written before the panic stay accepted, and the queue is unharmed.
    // Always inlined, with the plain path: as a call it first copied the caller's items into
    // its argument, with wide loads of the caller's narrower stores that stalled on store
    // forwarding; inlined, one copy fewer (2.98 ns per item against 2.61 in the Q3 bench).
    #[inline(always)]
    pub fn push_many(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<(), crate::PushError<Vec<T>>> {
        if self.handle.plain {
            return self.push_many_plain(items.into_iter());
        }
        self.push_many_general(items.into_iter())
    }

    /// `push_many` with a router or a capacity.
    #[inline(never)]
    fn push_many_general(
        &self,
        items: impl Iterator<Item = T>,
    ) -> Result<(), crate::PushError<Vec<T>>> {
        let items: Vec<T> = items.collect();
        if self.handle.router.is_some() {
            return self.push_each(items);
        }
        let thread = routing::this_thread();
        let partition = routing::by_thread(thread, self.handle.core.partitions.len());
        self.push_vec_to(thread, partition, items)
            .map_err(|e| self.count_full(partition, e))
    }

    /// Appends a slice of `Copy` items, in order: what `push_many(items.iter().copied())`
    /// does, without the chunk on the stack. Copying an item runs no user code, so a
    /// partition's owner copies them straight from the slice into its lane.
    ///
    /// ```
    /// use tidefall::Queue;
    ///
    /// let queue = Queue::<u64>::builder()
    ///     .processor(|batch: Vec<u64>| assert!(batch.windows(2).all(|w| w[0] < w[1])))
    ///     .start()?;
    /// queue.push_slice(&[1, 2, 3]).unwrap();
    /// queue.stop()?;
    /// assert_eq!(queue.stats().processed, 3);
    /// # Ok::<(), tidefall::Error>(())
    /// ```
    pub fn push_slice(&self, items: &[T]) -> Result<(), crate::PushError<Vec<T>>>
    where
        T: Copy,
    {
        // SAFETY: as in `push`.
        if let Some(own) = unsafe { self.handle.shortcut.own::<T>() } {
            if let Some(outcome) = own.extend_from_slice(items) {
                return self
                    .extended(own.partition, outcome)
                    .map_err(crate::PushError::Stopped);
            }
        }
        if !self.handle.plain {
            return self.push_many(items.iter().copied());
        }
        let thread = routing::this_thread();
        self.extend_plain(thread, |store| store.extend_from_slice(thread, items))
            .map_err(crate::PushError::Stopped)
    }

    /// Runs `write` (an `extend` of some kind) on the calling thread's partition (the plain
    /// path: no router, no capacity), remembers the thread's lane for the shortcut, and
    /// requests the drain when it crossed the threshold; the items come back once the store
    /// is closed.
    #[inline]
    fn extend_plain(
        &self,
        thread: usize,
        write: impl FnOnce(&Staged<T>) -> Result<bool, Vec<T>>,
    ) -> Result<(), Vec<T>> {
        let core = &*self.handle.core;
        let partition = routing::by_thread(thread, core.partitions.len());
        let store = &core.partitions[partition].store;
        let outcome = write(store);
        if outcome.is_ok() {
            self.handle.shortcut.remember(store, thread, partition);
        }
        self.extended(partition, outcome)
    }

    /// The result of a plain extend of `partition`, as [`Queue::pushed`] for one item.
    #[inline(always)]
    fn extended(&self, partition: usize, outcome: Result<bool, Vec<T>>) -> Result<(), Vec<T>> {
        if outcome? {
            self.handle.core.request_drain(partition);
        }
        Ok(())
    }

    /// Items buffered and not yet taken by a tick.
    pub fn len(&self) -> usize {
        self.handle.core.len()
    }

    /// Nothing buffered.
    pub fn is_empty(&self) -> bool {
        self.handle.core.is_empty()
    }

    /// The buffer's counters.
    pub fn stats(&self) -> Stats {
        self.handle.core.stats()
    }

    /// Runs a tick on every partition now and returns once the processor has returned for
    /// everything buffered at the call (a stuck call is waited for at most
    /// `processing_timeout`). Runs no processor on the calling thread. After `stop`, returns
    /// at once.
    ///
    /// Do not call it from inside a processor: the cycle it waits for may need that thread.
    pub fn flush(&self) -> Result<(), Error> {
        self.handle.core.flush()
    }

    /// Stops the buffer: later writes return `PushError::Stopped`; a last tick drains every
    /// partition, and the call returns once the processor has seen every accepted item.
    /// Idempotent; `Err(Error::Timeout)` when cycles outlived `processing_timeout`.
    pub fn stop(&self) -> Result<(), Error> {
        self.handle.core.stop(StopReason::Stopped)
    }

    /// Changes run-time options on every partition; an invalid value changes nothing.
    pub fn update_options(&self, update: OptionsUpdate) -> Result<(), Error> {
        self.handle.core.update_options(&update)
    }

    #[inline]
    fn route(&self, thread: usize, item: &T) -> usize {
        let partitions = self.handle.core.partitions.len();
        match &self.handle.router {
            None => routing::by_thread(thread, partitions),
            Some(router) => routing::by_hash(router(item), partitions),
        }
    }

    #[inline]
    fn push_to(&self, thread: usize, partition: usize, item: T) -> Result<(), crate::PushError<T>> {
        let core = &*self.handle.core;
        let part = &core.partitions[partition];
        if let Some(capacity) = core.capacity {
            if part.reserve(capacity, 1) == 0 {
                return Err(self.refuse(item));
            }
        }
        match part.store.push(thread, item) {
            Ok(crossed) => {
                if crossed {
                    core.request_drain(partition);
                }
                Ok(())
            }
            Err(item) => {
                if core.capacity.is_some() {
                    part.release(1);
                }
                Err(crate::PushError::Stopped(item))
            }
        }
    }

    fn push_vec_to(
        &self,
        thread: usize,
        partition: usize,
        mut items: Vec<T>,
    ) -> Result<(), crate::PushError<Vec<T>>> {
        let core = &*self.handle.core;
        let part = &core.partitions[partition];
        let mut refused = Vec::new();
        if let Some(capacity) = core.capacity {
            let granted = part.reserve(capacity, items.len());
            refused = items.split_off(granted);
        }
        match part.store.extend(thread, items) {
            Ok(crossed) => {
                if crossed {
                    core.request_drain(partition);
                }
                if refused.is_empty() {
                    Ok(())
                } else {
                    Err(self.refuse(refused))
                }
            }
            Err(mut unaccepted) => {
                if core.capacity.is_some() {
                    part.release(unaccepted.len());
                }
                unaccepted.append(&mut refused);
                Err(crate::PushError::Stopped(unaccepted))
            }
        }
    }

    /// `push_many` with neither a router nor a capacity: the items go to the thread's
    /// partition in chunks pulled from the caller's iterator onto the stack, so a lane owner
    /// writes them without allocating. A chunk is pulled whole before any of it is written:
    /// an iterator that panics leaves the partition as it was (the pulled items are dropped
    /// with the panic), and the store's write never runs user code.
    #[inline(always)]
    fn push_many_plain(
        &self,
        mut items: impl Iterator<Item = T>,
    ) -> Result<(), crate::PushError<Vec<T>>> {
        /// Items per chunk: enough to amortize the owner and close checks of a write.
        const CHUNK: usize = 16;
        // An `ArrayVec`, not `[Option<T>; CHUNK]`: no tag to write and test per item, and no
        // 16 `None`s to store per chunk.
        let mut chunk = ArrayVec::<T, CHUNK>::new();
        loop {
            chunk.extend(items.by_ref().take(CHUNK));
            if chunk.is_empty() {
                return Ok(());
            }
            // The owner's outcome is matched where it is made: passed on as a value, the
            // `Option<Result<bool, Vec<T>>>` went through the stack in overlapping 8-byte
            // moves that stalled on store forwarding (the Q3 bench: 2.11–2.34 ns per item
            // with it, 1.74–2.00 without; PERFORMANCE.md, "`push_many`'s outcome in place").
            // SAFETY: as in `push`.
            if let Some(own) = unsafe { self.handle.shortcut.own::<T>() } {
                match own.extend_moved(&mut chunk) {
                    Some(Ok(false)) => continue,
                    Some(Ok(true)) => {
                        self.handle.core.request_drain(own.partition);
                        continue;
                    }
                    Some(Err(back)) => return Err(Self::stopped_with(back, items)),
                    None => {}
                }
            }
            let thread = routing::this_thread();
            // `drain` runs no user code: the store's write contract holds.
            let written =
                self.extend_plain(thread, |store| store.extend_from(thread, chunk.drain(..)));
            if let Err(back) = written {
                return Err(Self::stopped_with(back, items));
            }
        }
    }

    /// The error of a `push_many` that met a stopped queue: the items given back, then the
    /// ones the iterator had not yielded yet.
    #[cold]
    #[inline(never)]
    fn stopped_with(mut back: Vec<T>, rest: impl Iterator<Item = T>) -> crate::PushError<Vec<T>> {
        back.extend(rest);
        crate::PushError::Stopped(back)
    }

    /// `push_many` with a `partition_by` router: item by item, keeping the refused in order.
    /// A `Full` outcome counts as one refused write, on the partition that refused first.
    fn push_each(&self, items: Vec<T>) -> Result<(), crate::PushError<Vec<T>>> {
        let mut refused = Vec::new();
        let mut stopped = false;
        let mut first_full = None;
        let thread = routing::this_thread();
        for item in items {
            let partition = self.route(thread, &item);
            match self.push_to(thread, partition, item) {
                Ok(()) => {}
                Err(crate::PushError::Full(item)) => {
                    first_full.get_or_insert(partition);
                    refused.push(item);
                }
                Err(crate::PushError::Stopped(item)) => {
                    stopped = true;
                    refused.push(item);
                }
            }
        }
        match (refused.is_empty(), stopped, first_full) {
            (true, _, _) => Ok(()),
            (false, true, _) | (false, false, None) => Err(crate::PushError::Stopped(refused)),
            (false, false, Some(partition)) => {
                Err(self.count_full(partition, crate::PushError::Full(refused)))
            }
        }
    }

    /// The error for a write refused for capacity: `Stopped` once the buffer is stopped,
    /// `Full` otherwise.
    #[cold]
    fn refuse<V>(&self, value: V) -> crate::PushError<V> {
        if self.handle.core.is_stopped() {
            crate::PushError::Stopped(value)
        } else {
            crate::PushError::Full(value)
        }
    }

    /// Counts a `Full` error about to be returned: one refused write, reported in the
    /// partition's next `Rejected` event, so their counts sum to the `Full` errors returned.
    #[cold]
    fn count_full<V>(&self, partition: usize, error: crate::PushError<V>) -> crate::PushError<V> {
        if let crate::PushError::Full(_) = &error {
            self.handle.core.rejected(partition);
        }
        error
    }
}

/// Configures and starts a [`Queue`]. See the option table in the crate docs.
///
/// ```
/// use std::time::Duration;
/// use tidefall::{BatchSize, Queue};
///
/// let queue = Queue::<(u32, String)>::builder()
///     .name("events")
///     .partitions(4)
///     .processing_interval(Duration::from_millis(200))
///     .processing_batch_size(BatchSize::Table)
///     .partition_by(|(user, _)| *user)
///     .sort_by_key(|(user, _)| *user)
///     .processor(|batch: Vec<(u32, String)>| {
///         assert!(batch.windows(2).all(|w| w[0].0 <= w[1].0));
///     })
///     .start()?;
/// queue.push((7, "login".into())).unwrap();
/// queue.stop()?;
/// # Ok::<(), tidefall::Error>(())
/// ```
pub struct QueueBuilder<T: Send + 'static> {
    options: Options,
    processor: Option<Box<dyn Processor<Vec<T>>>>,
    router: Option<Router<T>>,
    sorter: Option<Sorter<T>>,
    _items: PhantomData<fn(T)>,
}

impl<T: Send + 'static> QueueBuilder<T> {
    option_setters!();

    /// The function that receives each batch (required).
    pub fn processor(mut self, processor: impl Processor<Vec<T>>) -> Self {
        self.processor = Some(Box::new(processor));
        self
    }

    /// An async function as the processor (required, instead of `processor`): each batch's
    /// future runs on `runtime`, and `processing_timeout` cancels it. The future may return
    /// `()` or `Result<(), E: Display>`, as a [`Processor`] closure does. A panic, an `Err`
    /// or a cancellation fails the batch as for a synchronous processor; a cancelled cycle
    /// is reported with reason `Timeout`.
    ///
    /// The runtime must be running while the buffer works: a multi-thread runtime, or a
    /// current-thread one while its `block_on` runs; it needs its time driver
    /// (`enable_time`) for the timeout. Call `flush` and `stop` from outside async code (or
    /// in `spawn_blocking`): they wait for the processor.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidefall::Queue;
    ///
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let queue = Queue::<String>::builder()
    ///     .processing_timeout(Duration::from_secs(5))
    ///     .processor_async(runtime.handle().clone(), |batch: Vec<String>| async move {
    ///         tokio::time::sleep(Duration::from_millis(1)).await; // an async export
    ///         println!("exported {} spans", batch.len());
    ///     })
    ///     .start()?;
    /// queue.push("span".to_owned()).unwrap();
    /// queue.stop()?;
    /// assert_eq!(queue.stats().processed, 1);
    /// # Ok::<(), tidefall::Error>(())
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn processor_async<F, Fut, R>(self, runtime: tokio::runtime::Handle, process: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = R> + Send + 'static,
        R: crate::ProcessOutcome + Send + 'static,
    {
        self.processor(crate::async_processor::AsyncProcessor::new(
            runtime, process,
        ))
    }

    /// Routes each item by a key derived from it instead of by producer thread: items with
    /// equal keys share a partition and keep their push order.
    pub fn partition_by<K, F>(mut self, key: F) -> Self
    where
        K: Hash,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let hasher = DefaultHashBuilder::default();
        self.router = Some(Box::new(move |item: &T| hasher.hash_one(key(item))));
        self
    }

    /// Stably sorts each partition's drained items by this key before batching; ties keep
    /// push order. A key function that panics is reported as `ProcessingException` and the
    /// items are processed unsorted, none lost.
    pub fn sort_by_key<K, F>(mut self, key: F) -> Self
    where
        K: Ord,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        self.sorter = Some(Box::new(move |items: &mut Vec<T>| {
            items.sort_by_key(|item| key(item))
        }));
        self
    }

    /// Validates the options and starts the buffer. `PartitionStart` has been emitted for
    /// every partition when it returns.
    pub fn start(self) -> Result<Queue<T>, Error> {
        let options = self.options.resolve()?;
        let processor = self.processor.ok_or(Error::MissingProcessor)?;
        let core = Core::start(options, |_| Staged::new(), processor, self.sorter)?;
        Ok(Queue {
            handle: Arc::new(Handle {
                plain: self.router.is_none() && core.capacity.is_none(),
                core,
                router: self.router,
                keys: DefaultHashBuilder::default(),
                shortcut: QueueKey::new(),
            }),
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The whole path once, small enough for Miri: push, push_many, push_slice, flush, stop,
    /// refusal.
    #[test]
    fn push_flush_stop_round_trip() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let queue = Queue::<u32>::builder()
            .partitions(2)
            .processing_batch_size(3)
            .processor(move |batch: Vec<u32>| {
                assert!(!batch.is_empty() && batch.len() <= 3);
                sink.lock().expect("sink lock").extend(batch);
            })
            .start()
            .expect("valid options");
        for i in 0..5 {
            queue.push(i).expect("running");
        }
        queue.push_many(5..7).expect("running");
        queue.push_slice(&[7, 8]).expect("running");
        queue.flush().expect("flush");
        assert_eq!(*seen.lock().expect("sink lock"), (0..9).collect::<Vec<_>>());
        queue.push(9).expect("running");
        queue.stop().expect("stop");
        assert_eq!(queue.push(10).map_err(PushError::into_inner), Err(10));
        assert_eq!(seen.lock().expect("sink lock").len(), 10);
        let stats = queue.stats();
        assert_eq!((stats.processed, stats.buffered, stats.failed), (10, 0, 0));
    }

    /// Capacity and its refusals, and an item returned by `push_many` past capacity.
    #[test]
    fn capacity_refuses_and_returns_items() {
        let queue = Queue::<u32>::builder()
            .partitions(1)
            .capacity(2)
            .processor(|_: Vec<u32>| {})
            .start()
            .expect("valid options");
        queue.push(1).expect("room");
        match queue.push_many([2, 3, 4]) {
            Err(PushError::Full(rest)) => assert_eq!(rest, vec![3, 4]),
            other => panic!("expected Full, got {other:?}"),
        }
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.stats().rejected, 1);
        queue.flush().expect("flush");
        queue.push(5).expect("room again after the tick");
        queue.stop().expect("stop");
    }
}
