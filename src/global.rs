//! Process-wide buffers: [`Global`], one lazily started buffer in a `static`, and
//! [`Instances`], named buffers started on demand, each independent of the other and of the
//! global one.
//!
//! Both hold a plain `fn` pointer that starts the buffer, so both are built by a `const fn`
//! and live in a `static`; the standard library's `OnceLock` and `Mutex` (whose `new` are
//! `const`) are all they need: no `once_cell` or `lazy_static` dependency.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use crate::hash_map::HashMap;
use crate::options::Error;
use crate::queue::Queue;

/// A process-wide buffer in a `static`, started on first use and reachable from anywhere
/// without passing a handle: Rust's counterpart of a module defined with `use Tidefall.Queue`.
///
/// [`Global::new`] takes the function that builds and starts the buffer; [`get`](Global::get)
/// runs it on the first call, exactly once even when many threads race on that call (the
/// others wait for it and get the same buffer), and returns the running buffer afterwards.
/// The init function is ordinary code: it is where the buffer's name, options, processor and
/// any layered configuration (a config file, the environment) are applied, when the buffer
/// is first needed rather than at program start.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use tidefall::{Global, Queue};
///
/// static EXPORTED: AtomicUsize = AtomicUsize::new(0);
///
/// static EVENTS: Global<Queue<String>> = Global::new(|| {
///     Queue::builder()
///         .name("events")
///         .processor(|batch: Vec<String>| {
///             EXPORTED.fetch_add(batch.len(), Ordering::Relaxed);
///         })
///         .start()
/// });
///
/// /// Anywhere in the program: no handle to pass around.
/// fn record(event: &str) -> Result<(), tidefall::Error> {
///     if let Err(refused) = EVENTS.get()?.push(event.to_owned()) {
///         eprintln!("event dropped: {refused}");
///     }
///     Ok(())
/// }
///
/// assert!(EVENTS.get_started().is_none()); // nothing started yet
/// record("login")?;
/// record("logout")?;
/// assert_eq!(EVENTS.get()?.name(), "events");
///
/// // At shutdown: a `static` is never dropped, so only `stop` drains the buffer.
/// EVENTS.get_started().map(Queue::stop).transpose()?;
/// assert_eq!(EXPORTED.load(Ordering::Relaxed), 2);
/// # Ok::<(), tidefall::Error>(())
/// ```
///
/// # Stopping and flushing are explicit
///
/// **A `static` is never dropped**, so a global buffer is never drained by a drop the way
/// the last handle of a local buffer is: whatever it holds when the process exits is lost
/// unless the program calls `stop` (or `flush`) first, typically at the end of `main` or in
/// its shutdown path:
///
/// ```
/// # use tidefall::{Global, Queue};
/// # static EVENTS: Global<Queue<String>> =
/// #     Global::new(|| Queue::builder().processor(|_: Vec<String>| {}).start());
/// if let Some(events) = EVENTS.get_started() {
///     events.stop()?; // drains what is buffered; returns once the processor has seen it
/// }
/// # Ok::<(), tidefall::Error>(())
/// ```
///
/// [`get_started`](Global::get_started) never starts the buffer, so a shutdown path does not
/// start a buffer only to stop it. Stopping is final: after `stop`, `get` keeps returning the
/// same, stopped buffer (it does not start a new one), and writes to it are refused with
/// [`PushError::Stopped`](crate::PushError::Stopped), which carries the item back. A buffer
/// that must be stopped and started again belongs in [`Instances`] (`remove`, stop, `get`
/// starts a fresh one) or in a handle of its own.
///
/// # Failure
///
/// When the init function returns an error, `get` returns it and stores nothing: the next
/// `get` runs the init function again (a config file may have been fixed, a thread may now
/// spawn). Threads that were waiting on the failed attempt try in turn. A panicking init
/// function unwinds out of `get` and likewise leaves the global unstarted, never poisoned.
///
/// The error type is [`Error`] by default, what `start()` returns; an init function with
/// steps of its own (reading a configuration) may return any error type `E` instead.
///
/// # Writing through the global
///
/// There is no forwarding `push` on `Global`: write with `EVENTS.get()?.push(item)`. The two
/// steps keep both errors intact: a start failure comes back from `get` before the item is
/// moved, so the caller still owns it, and a refused write comes back from `push` with the
/// item inside, as with any handle. `get` after the first call is one atomic load; a hot
/// loop may still keep the `&Queue` it returns.
///
/// # Other instances of the same type
///
/// The global is one buffer. Other buffers of the same type, started with a builder and a
/// different `name`, or kept in [`Instances`], share nothing with it:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use tidefall::{Global, Queue};
///
/// static GLOBAL_SEEN: AtomicUsize = AtomicUsize::new(0);
/// static SPANS: Global<Queue<u64>> = Global::new(|| {
///     Queue::builder()
///         .name("spans")
///         .processor(|batch: Vec<u64>| {
///             GLOBAL_SEEN.fetch_add(batch.len(), Ordering::Relaxed);
///         })
///         .start()
/// });
///
/// let local_seen = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&local_seen);
/// let local = Queue::<u64>::builder()
///     .name("spans-for-this-test")
///     .processor(move |batch: Vec<u64>| {
///         counter.fetch_add(batch.len(), Ordering::Relaxed);
///     })
///     .start()?;
/// local.push_many([100, 101]).unwrap();
/// SPANS.get()?.push(1).unwrap();
/// local.stop()?;
/// SPANS.get()?.stop()?;
/// assert_eq!(local_seen.load(Ordering::Relaxed), 2);
/// assert_eq!(GLOBAL_SEEN.load(Ordering::Relaxed), 1);
/// # Ok::<(), tidefall::Error>(())
/// ```
///
/// # Panics
///
/// `get` panics, rather than deadlocking, when the init function calls `get` on the same
/// global (a re-entrant start), directly or through other globals' init functions. Init
/// functions of different globals may use each other, but not in a cycle: a cycle panics
/// when one thread starts it, and may deadlock when two threads start it from both ends.
pub struct Global<B, E = Error> {
    /// Starts the buffer.
    init: fn() -> Result<B, E>,
    /// The started buffer; set once, never cleared.
    cell: OnceLock<B>,
    /// Serialises the attempts to start the buffer. `OnceLock::get_or_init` would do it
    /// alone, but it cannot fail, and `get_or_try_init` is unstable: a failed attempt must
    /// leave the cell empty for the next `get` to retry.
    starting: Mutex<()>,
}

impl<B, E> Global<B, E> {
    /// A global that runs `init` on the first [`get`](Global::get). A `const fn`, for a
    /// `static`; a closure that captures nothing coerces to the `fn` pointer:
    ///
    /// ```
    /// use tidefall::{Global, HashMap};
    ///
    /// static GAUGES: Global<HashMap<String, f64>> = Global::new(|| {
    ///     HashMap::builder().name("gauges").processor(|_| {}).start()
    /// });
    /// GAUGES.get()?.put("cpu".to_owned(), 0.5).unwrap();
    /// GAUGES.get()?.stop()?;
    /// # Ok::<(), tidefall::Error>(())
    /// ```
    pub const fn new(init: fn() -> Result<B, E>) -> Self {
        Global {
            init,
            cell: OnceLock::new(),
            starting: Mutex::new(()),
        }
    }

    /// The buffer, started by the init function if this is the first successful call.
    ///
    /// Runs the init function at most once at a time, and never again after it succeeded:
    /// callers that race on the first use wait for the one running it and get the same
    /// buffer. Its error, if it fails, is returned to the caller that ran it, and the next
    /// call tries again. Returns the buffer even once it is stopped, without restarting it.
    ///
    /// # Panics
    ///
    /// If the init function calls `get` on this same global (see the [type's
    /// docs](Global#panics)); a panic of the init function itself propagates.
    pub fn get(&self) -> Result<&B, E> {
        if let Some(buffer) = self.cell.get() {
            return Ok(buffer);
        }
        self.start()
    }

    /// The slow path of `get`: start the buffer under the lock, unless a racing caller did.
    #[cold]
    fn start(&self) -> Result<&B, E> {
        let _starting = Starting::enter(self as *const Self as usize, "Global", "get");
        let _lock = lock(&self.starting);
        if let Some(buffer) = self.cell.get() {
            return Ok(buffer);
        }
        let buffer = (self.init)()?;
        // Only this thread, holding the lock, sets the cell: the closure always runs.
        Ok(self.cell.get_or_init(move || buffer))
    }

    /// The buffer if it was started, without starting it: for shutdown paths, which should
    /// not start a buffer only to stop it.
    ///
    /// ```
    /// # use tidefall::{Global, Queue};
    /// static SPANS: Global<Queue<u64>> =
    ///     Global::new(|| Queue::builder().processor(|_: Vec<u64>| {}).start());
    /// assert!(SPANS.get_started().is_none());
    /// SPANS.get()?.push(1).unwrap();
    /// SPANS.get_started().map(Queue::stop).transpose()?; // Some(Ok(())) → Ok(())
    /// # Ok::<(), tidefall::Error>(())
    /// ```
    pub fn get_started(&self) -> Option<&B> {
        self.cell.get()
    }
}

impl<B: fmt::Debug, E> fmt::Debug for Global<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Global")
            .field("started", &self.cell.get())
            .finish()
    }
}

/// Named buffers of one type, started on first use of each name: the dynamic instances of a
/// definition module (`MyApp.EventQueue.start_link(name: :tenant_a)`), in a `static` or a
/// value of their own.
///
/// The init function receives the instance's name, to give the buffer (`.name(name)`) and to
/// pick its options or destination by. Instances are independent of each other and of any
/// [`Global`] of the same buffer type: writes to one never reach another's processor. A set
/// and a global are different values, so a call meant for an instance cannot reach the
/// global one by mistake.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::Mutex;
/// use tidefall::{Instances, Queue};
///
/// static PER_TENANT: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
///
/// static TENANTS: Instances<Queue<String>> = Instances::new(|name| {
///     let tenant = name.to_owned();
///     Queue::builder()
///         .name(format!("tenant-{name}"))
///         .processor(move |batch: Vec<String>| {
///             *PER_TENANT.lock().unwrap().entry(tenant.clone()).or_default() += batch.len();
///         })
///         .start()
/// });
///
/// let a = TENANTS.get("a")?; // starts "a"
/// a.push("a1".to_owned()).unwrap();
/// TENANTS.get("b")?.push("b1".to_owned()).unwrap(); // starts "b"
/// TENANTS.get("a")?.push("a2".to_owned()).unwrap(); // the same "a"
/// assert_eq!(a.name(), "tenant-a");
/// assert_eq!(TENANTS.names(), ["a", "b"]);
///
/// TENANTS.stop_all()?; // explicit, as for a `Global`
/// let seen = PER_TENANT.lock().unwrap().clone();
/// assert_eq!(seen, BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)]));
/// # Ok::<(), tidefall::Error>(())
/// ```
///
/// `get` returns a handle, a cheap clone (`Queue` and `HashMap` are shared pointers), after
/// a lookup under a lock: keep the handle where writes are frequent.
///
/// # Lifecycle
///
/// An instance lives in the set from its first successful `get` until
/// [`remove`](Instances::remove) takes it out; the set never stops a buffer on its own.
/// `remove` returns the handle for the caller to stop (dropping the last handle stops it too),
/// and a later `get` of that name starts a new buffer. [`stop_all`](Instances::stop_all)
/// stops every instance and keeps them in the set, so late writes are refused with
/// `PushError::Stopped` rather than landing in a new buffer that nothing will drain. As for
/// a `Global`, a `static` set is never dropped: stop its instances explicitly at shutdown.
///
/// A failed init function stores nothing (the next `get` of the name tries again); a
/// panicking one unwinds out of `get` and poisons nothing.
///
/// # Panics
///
/// Instances start one at a time, under the set's lock: when an init function calls a method
/// of its own set (`get`, `get_started`, `remove`, `names`, `stop_all`), that method panics
/// rather than deadlocking. Init functions may use other sets and globals (not in a cycle).
pub struct Instances<B, E = Error> {
    /// Starts the named instance.
    init: fn(&str) -> Result<B, E>,
    /// The started instances, by name.
    map: Mutex<BTreeMap<String, B>>,
}

impl<B, E> Instances<B, E> {
    /// An empty set whose instances are started by `init`, given the name. A `const fn`, for a
    /// `static`.
    pub const fn new(init: fn(&str) -> Result<B, E>) -> Self {
        Instances {
            init,
            map: Mutex::new(BTreeMap::new()),
        }
    }

    /// This set's identity, for the re-entrancy check.
    fn address(&self) -> usize {
        self as *const Self as usize
    }

    /// The instances, locked; `op` names the method, for the re-entrancy panic.
    fn map(&self, op: &str) -> MutexGuard<'_, BTreeMap<String, B>> {
        if Starting::is_entered(self.address()) {
            Starting::reentered("Instances", op);
        }
        lock(&self.map)
    }

    /// The names of the started instances, in order.
    pub fn names(&self) -> Vec<String> {
        self.map("names").keys().cloned().collect()
    }

    /// Takes the instance out of the set and returns it, for the caller to stop; `None` if
    /// no instance of that name is started. A later `get` of the name starts a new buffer.
    ///
    /// ```
    /// # use tidefall::{Instances, Queue};
    /// static SHARDS: Instances<Queue<u64>> =
    ///     Instances::new(|name| Queue::builder().name(name).processor(|_: Vec<u64>| {}).start());
    /// SHARDS.get("s1")?.push(1).unwrap();
    /// if let Some(shard) = SHARDS.remove("s1") {
    ///     shard.stop()?; // drains it
    /// }
    /// assert!(SHARDS.names().is_empty());
    /// # Ok::<(), tidefall::Error>(())
    /// ```
    pub fn remove(&self, name: &str) -> Option<B> {
        self.map("remove").remove(name)
    }
}

impl<B: Clone, E> Instances<B, E> {
    /// The instance named `name`, started by the init function on the first successful call
    /// for that name; every call for a name returns a handle to the same buffer (until
    /// [`remove`](Instances::remove)). The init function's error is returned, and the next
    /// call tries again.
    ///
    /// Instances start one at a time: a start holds the set's lock, so lookups of other
    /// names wait for it.
    ///
    /// # Panics
    ///
    /// If called by the init function of this same set (see the [type's
    /// docs](Instances#panics)); a panic of the init function itself propagates.
    pub fn get(&self, name: &str) -> Result<B, E> {
        let _starting = Starting::enter(self.address(), "Instances", "get");
        let mut map = lock(&self.map);
        if let Some(buffer) = map.get(name) {
            return Ok(buffer.clone());
        }
        let buffer = (self.init)(name)?;
        map.insert(name.to_owned(), buffer.clone());
        Ok(buffer)
    }

    /// The instance named `name` if it is started, without starting it.
    pub fn get_started(&self, name: &str) -> Option<B> {
        self.map("get_started").get(name).cloned()
    }

    /// A snapshot of the instances, taken under the lock and used outside it.
    fn all(&self) -> Vec<B> {
        self.map("stop_all").values().cloned().collect()
    }
}

/// Stops every buffer of `buffers`; the first error, after trying all.
fn stop_each<B>(buffers: Vec<B>, stop: impl Fn(&B) -> Result<(), Error>) -> Result<(), Error> {
    let mut first = Ok(());
    for buffer in &buffers {
        if let Err(error) = stop(buffer) {
            if first.is_ok() {
                first = Err(error);
            }
        }
    }
    first
}

impl<T: Send + 'static, E> Instances<Queue<T>, E> {
    /// Stops every started instance ([`Queue::stop`], draining each), one after another,
    /// outside the set's lock. The instances stay in the set, stopped: a later `get` returns
    /// the stopped buffer, whose writes are refused. Tries every instance and returns the
    /// first error.
    pub fn stop_all(&self) -> Result<(), Error> {
        stop_each(self.all(), Queue::stop)
    }
}

impl<K, V, S, E> Instances<HashMap<K, V, S>, E>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Stops every started instance ([`HashMap::stop`], draining each), one after another,
    /// outside the set's lock. The instances stay in the set, stopped: a later `get` returns
    /// the stopped buffer, whose writes are refused. Tries every instance and returns the
    /// first error.
    pub fn stop_all(&self) -> Result<(), Error> {
        stop_each(self.all(), HashMap::stop)
    }
}

impl<B, E> fmt::Debug for Instances<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Instances");
        if Starting::is_entered(self.address()) {
            // Formatted by its own init function, which holds the lock.
            out.field("names", &format_args!("<starting an instance>"));
        } else {
            out.field("names", &lock(&self.map).keys().collect::<Vec<_>>());
        }
        out.finish()
    }
}

/// Locks `mutex`, ignoring poison: a panicking init function leaves the guarded state as it
/// was (nothing is stored before the init function returns).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// The addresses of the globals and sets whose init function runs on this thread.
    static STARTING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks a global or set as starting on this thread, until dropped; entering one that is
/// already starting here panics: its lock is held by this very thread, and waiting on it
/// would never end.
struct Starting(usize);

impl Starting {
    /// Marks `address` as starting on this thread; `op` and `kind` name the call, for the
    /// panic if it already is.
    fn enter(address: usize, kind: &str, op: &str) -> Starting {
        let entered = STARTING
            .try_with(|starting| {
                let mut starting = starting.borrow_mut();
                let entered = starting.contains(&address);
                if !entered {
                    starting.push(address);
                }
                entered
            })
            .unwrap_or(false);
        if entered {
            Starting::reentered(kind, op);
        }
        Starting(address)
    }

    /// Whether `address` is starting on this thread.
    fn is_entered(address: usize) -> bool {
        STARTING
            .try_with(|starting| starting.borrow().contains(&address))
            .unwrap_or(false)
    }

    #[cold]
    #[track_caller]
    fn reentered(kind: &str, op: &str) -> ! {
        panic!(
            "tidefall::{kind}: its init function called `{op}` on the {kind} it is starting \
             (a re-entrant call would deadlock)"
        );
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        let _ = STARTING.try_with(|starting| {
            let mut starting = starting.borrow_mut();
            if let Some(at) = starting.iter().rposition(|&a| a == self.0) {
                starting.remove(at);
            }
        });
    }
}
