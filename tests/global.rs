//! `Global` and `Instances`: lazy start, exactly-once start under a race, retries after a
//! failed or panicking start, explicit stop, and independence of the instances.

use std::collections::BTreeMap;
use std::panic;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

use tidefall::{Entry, Error, Global, HashMap, Instances, PushError, Queue};

/// A tick far enough away that only `flush` and `stop` drain.
const LONG: Duration = Duration::from_secs(3600);

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn starts_lazily_on_first_get_only() {
    static INITS: AtomicUsize = AtomicUsize::new(0);
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    static LAZY: Global<Queue<u32>> = Global::new(|| {
        INITS.fetch_add(1, Ordering::SeqCst);
        Queue::builder()
            .name("lazy")
            .processing_interval(LONG)
            .processor(|batch: Vec<u32>| {
                SEEN.fetch_add(batch.len(), Ordering::SeqCst);
            })
            .start()
    });

    assert_eq!(INITS.load(Ordering::SeqCst), 0);
    assert!(LAZY.get_started().is_none());
    assert_eq!(
        INITS.load(Ordering::SeqCst),
        0,
        "get_started starts nothing"
    );

    let first = LAZY.get().expect("starts");
    assert_eq!(INITS.load(Ordering::SeqCst), 1);
    assert_eq!(first.name(), "lazy");
    let again = LAZY.get().expect("started");
    assert!(std::ptr::eq(first, again));
    let started = LAZY.get_started().expect("started");
    assert!(std::ptr::eq(first, started));
    assert_eq!(INITS.load(Ordering::SeqCst), 1);

    first.push(1).expect("running");
    again.push(2).expect("running");
    LAZY.get_started()
        .map(Queue::stop)
        .transpose()
        .expect("stop");
    assert_eq!(SEEN.load(Ordering::SeqCst), 2);
    assert!(format!("{LAZY:?}").contains("lazy"));
}

#[test]
fn racing_first_gets_start_one_buffer() {
    const THREADS: u32 = 8;
    const PER_THREAD: u32 = 2000;
    static INITS: AtomicUsize = AtomicUsize::new(0);
    static RECEIVED: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    static RACED: Global<Queue<u32>> = Global::new(|| {
        INITS.fetch_add(1, Ordering::SeqCst);
        // Widen the window in which the other threads find the global unstarted.
        std::thread::sleep(Duration::from_millis(50));
        Queue::builder()
            .name("raced")
            .partitions(4)
            .processing_interval(Duration::from_millis(5))
            .processor(|batch: Vec<u32>| locked(&RECEIVED).extend(batch))
            .start()
    });

    let barrier = Barrier::new(THREADS as usize);
    let addresses: Vec<usize> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let queue = RACED.get().expect("starts");
                    assert_eq!(queue.name(), "raced");
                    for i in 0..PER_THREAD {
                        queue.push(t * PER_THREAD + i).expect("running");
                    }
                    queue as *const Queue<u32> as usize
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });

    assert_eq!(
        INITS.load(Ordering::SeqCst),
        1,
        "the init function ran once"
    );
    assert!(addresses.windows(2).all(|w| w[0] == w[1]), "one buffer");
    let queue = RACED.get().expect("started");
    queue.flush().expect("flush");
    queue.stop().expect("stop");
    let mut received = std::mem::take(&mut *locked(&RECEIVED));
    received.sort_unstable();
    assert_eq!(received, (0..THREADS * PER_THREAD).collect::<Vec<_>>());
    assert_eq!(INITS.load(Ordering::SeqCst), 1);
}

#[test]
fn failed_start_is_returned_and_retried() {
    static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);
    static FLAKY: Global<Queue<u8>> = Global::new(|| {
        let builder = Queue::builder().name("flaky").processing_interval(LONG);
        if ATTEMPTS.fetch_add(1, Ordering::SeqCst) == 0 {
            builder.start() // no processor: Error::MissingProcessor
        } else {
            builder.processor(|_: Vec<u8>| {}).start()
        }
    });

    assert_eq!(FLAKY.get().map(|_| ()), Err(Error::MissingProcessor));
    assert!(FLAKY.get_started().is_none(), "a failure is not stored");
    let queue = FLAKY.get().expect("the second attempt starts");
    assert_eq!(queue.name(), "flaky");
    assert_eq!(ATTEMPTS.load(Ordering::SeqCst), 2);
    FLAKY.get().expect("started");
    assert_eq!(
        ATTEMPTS.load(Ordering::SeqCst),
        2,
        "no attempt once started"
    );
    queue.stop().expect("stop");
}

#[test]
fn custom_error_type() {
    static ONCE_FAILED: AtomicBool = AtomicBool::new(false);
    static CONFIGURED: Global<Queue<u8>, String> = Global::new(|| {
        if !ONCE_FAILED.swap(true, Ordering::SeqCst) {
            return Err("config file missing".to_owned());
        }
        Queue::builder()
            .processor(|_: Vec<u8>| {})
            .start()
            .map_err(|e| e.to_string())
    });

    assert_eq!(
        CONFIGURED.get().map(|_| ()),
        Err("config file missing".to_owned())
    );
    CONFIGURED.get().expect("retried").stop().expect("stop");
}

#[test]
fn panicking_start_poisons_nothing() {
    static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);
    static PANICKY: Global<Queue<u8>> = Global::new(|| {
        if ATTEMPTS.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("init failed loudly");
        }
        Queue::builder().processor(|_: Vec<u8>| {}).start()
    });

    let caught = panic::catch_unwind(|| PANICKY.get().map(|_| ()));
    assert!(caught.is_err(), "the init's panic propagates");
    assert!(PANICKY.get_started().is_none());
    let queue = PANICKY.get().expect("the next get retries");
    assert_eq!(ATTEMPTS.load(Ordering::SeqCst), 2);
    queue.stop().expect("stop");
}

#[test]
fn reentrant_start_panics_instead_of_deadlocking() {
    static SELF_REFERENTIAL: Global<Queue<u8>> = Global::new(|| {
        let _ = SELF_REFERENTIAL.get();
        Queue::builder().processor(|_: Vec<u8>| {}).start()
    });
    static SETS: Instances<Queue<u8>> = Instances::new(|name| {
        let _ = SETS.get("other");
        Queue::builder()
            .name(name)
            .processor(|_: Vec<u8>| {})
            .start()
    });
    static LISTING: Instances<Queue<u8>> = Instances::new(|name| {
        // Formatting the set from its own start does not lock it.
        assert!(format!("{LISTING:?}").contains("starting"));
        let _ = LISTING.names();
        Queue::builder()
            .name(name)
            .processor(|_: Vec<u8>| {})
            .start()
    });
    // A cycle through two globals, started from one thread.
    static PING: Global<Queue<u8>> = Global::new(|| {
        let _ = PONG.get();
        Queue::builder().processor(|_: Vec<u8>| {}).start()
    });
    static PONG: Global<Queue<u8>> = Global::new(|| {
        let _ = PING.get();
        Queue::builder().processor(|_: Vec<u8>| {}).start()
    });

    let caught = panic::catch_unwind(|| SELF_REFERENTIAL.get().map(|_| ()));
    let message = caught.expect_err("re-entrant start panics");
    let message = message
        .downcast_ref::<String>()
        .expect("a formatted message");
    assert!(message.contains("re-entrant"), "{message}");
    assert!(SELF_REFERENTIAL.get_started().is_none());

    let caught = panic::catch_unwind(|| SETS.get("a").map(|_| ()));
    assert!(caught.is_err());
    assert!(SETS.names().is_empty());

    let caught = panic::catch_unwind(|| LISTING.get("a").map(|_| ()));
    let message = caught.expect_err("names from the init function panics");
    let message = message
        .downcast_ref::<String>()
        .expect("a formatted message");
    assert!(message.contains("`names`"), "{message}");
    assert!(LISTING.names().is_empty());

    let caught = panic::catch_unwind(|| PING.get().map(|_| ()));
    assert!(caught.is_err());
    assert!(PING.get_started().is_none() && PONG.get_started().is_none());
}

#[test]
fn stop_is_final_and_refuses_writes() {
    static INITS: AtomicUsize = AtomicUsize::new(0);
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static STOPPED: Global<Queue<String>> = Global::new(|| {
        INITS.fetch_add(1, Ordering::SeqCst);
        Queue::builder()
            .processing_interval(LONG)
            .processor(|batch: Vec<String>| locked(&SEEN).extend(batch))
            .start()
    });

    STOPPED
        .get()
        .expect("starts")
        .push("kept".into())
        .expect("running");
    // Stopping drains: the item pushed before `stop` reaches the processor.
    if let Some(queue) = STOPPED.get_started() {
        queue.stop().expect("stop");
    }
    assert_eq!(*locked(&SEEN), ["kept"]);

    let queue = STOPPED.get().expect("the stopped buffer, not a new one");
    assert_eq!(INITS.load(Ordering::SeqCst), 1, "get does not restart it");
    match queue.push("late".into()) {
        Err(PushError::Stopped(item)) => assert_eq!(item, "late"),
        other => panic!("expected Stopped, got {other:?}"),
    }
    queue.stop().expect("stop is idempotent");
    assert_eq!(*locked(&SEEN), ["kept"]);
}

/// Per-instance sinks, filled by the processors of `TENANTS`.
static TENANT_SINKS: Mutex<BTreeMap<String, Vec<u32>>> = Mutex::new(BTreeMap::new());
static TENANT_INITS: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
static TENANTS: Instances<Queue<u32>> = Instances::new(|name| {
    *locked(&TENANT_INITS).entry(name.to_owned()).or_default() += 1;
    let sink = name.to_owned();
    Queue::builder()
        .name(format!("tenant-{name}"))
        .processing_interval(LONG)
        .processor(move |batch: Vec<u32>| {
            locked(&TENANT_SINKS)
                .entry(sink.clone())
                .or_default()
                .extend(batch)
        })
        .start()
});

#[test]
fn instances_are_independent_and_started_once() {
    // This test alone uses TENANTS: the instance names below are its own.
    assert!(TENANTS.get_started("a").is_none());
    assert!(TENANTS.names().is_empty());

    let a = TENANTS.get("a").expect("starts a");
    let b = TENANTS.get("b").expect("starts b");
    assert_eq!((a.name(), b.name()), ("tenant-a", "tenant-b"));
    assert_eq!(TENANTS.names(), ["a", "b"]);
    let a_again = TENANTS.get("a").expect("started");
    assert_eq!(locked(&TENANT_INITS).get("a"), Some(&1));

    // The same buffer: a write through one handle is buffered in the other.
    a.push(1).expect("running");
    a_again.push(2).expect("running");
    assert_eq!(a_again.len(), 2);
    b.push(100).expect("running");
    assert_eq!(b.len(), 1);
    a_again.flush().expect("flush");
    b.flush().expect("flush");
    assert_eq!(locked(&TENANT_SINKS).get("a"), Some(&vec![1, 2]));
    assert_eq!(locked(&TENANT_SINKS).get("b"), Some(&vec![100]));

    // `remove` takes "a" out; the caller stops it; a later get starts a new "a".
    let removed = TENANTS.remove("a").expect("a is started");
    removed.push(3).expect("running until stopped");
    removed.stop().expect("stop");
    assert_eq!(locked(&TENANT_SINKS).get("a"), Some(&vec![1, 2, 3]));
    assert!(matches!(a.push(4), Err(PushError::Stopped(4))));
    assert!(TENANTS.get_started("a").is_none());
    assert_eq!(TENANTS.names(), ["b"]);
    assert!(TENANTS.remove("a").is_none());

    let fresh = TENANTS.get("a").expect("a new a");
    assert_eq!(locked(&TENANT_INITS).get("a"), Some(&2));
    fresh.push(5).expect("the new buffer runs");

    // `stop_all` stops every instance, draining it, and keeps them registered.
    b.push(101).expect("running");
    TENANTS.stop_all().expect("stop all");
    assert_eq!(locked(&TENANT_SINKS).get("a"), Some(&vec![1, 2, 3, 5]));
    assert_eq!(locked(&TENANT_SINKS).get("b"), Some(&vec![100, 101]));
    assert_eq!(TENANTS.names(), ["a", "b"]);
    let b_after = TENANTS.get("b").expect("the stopped b");
    assert!(matches!(b_after.push(102), Err(PushError::Stopped(102))));
    assert_eq!(locked(&TENANT_INITS).get("b"), Some(&1), "not restarted");
    assert!(format!("{TENANTS:?}").contains("\"b\""));
}

#[test]
fn instance_start_failure_is_retried() {
    static FAILED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static PICKY: Instances<Queue<u8>> = Instances::new(|name| {
        let builder = Queue::builder().name(name).processing_interval(LONG);
        let mut failed = locked(&FAILED);
        if !failed.iter().any(|n| n == name) {
            failed.push(name.to_owned());
            return builder.partitions(0).processor(|_: Vec<u8>| {}).start();
        }
        builder.processor(|_: Vec<u8>| {}).start()
    });

    match PICKY.get("x") {
        Err(Error::InvalidOption { option, .. }) => assert_eq!(option, "partitions"),
        other => panic!("expected InvalidOption, got {other:?}"),
    }
    assert!(PICKY.names().is_empty(), "a failure is not stored");
    let x = PICKY.get("x").expect("retried");
    assert_eq!(x.name(), "x");
    // An empty name is refused by the builder, and reported as such (once the init
    // function's own first failure for that name is past).
    assert!(PICKY.get("").is_err());
    assert!(matches!(
        PICKY.get(""),
        Err(Error::InvalidOption { option: "name", .. })
    ));
    assert_eq!(PICKY.names(), ["x"]);
    PICKY.stop_all().expect("stop all");
}

#[test]
fn global_instances_and_ad_hoc_buffers_share_nothing() {
    static GLOBAL_SEEN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    static INSTANCE_SEEN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    static SHARED_TYPE: Global<Queue<u32>> = Global::new(|| {
        Queue::builder()
            .name("same")
            .processing_interval(LONG)
            .processor(|batch: Vec<u32>| locked(&GLOBAL_SEEN).extend(batch))
            .start()
    });
    static SAME_TYPE: Instances<Queue<u32>> = Instances::new(|_| {
        Queue::builder()
            .name("same") // even the same buffer name: a name is only a label
            .processing_interval(LONG)
            .processor(|batch: Vec<u32>| locked(&INSTANCE_SEEN).extend(batch))
            .start()
    });

    let ad_hoc_seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&ad_hoc_seen);
    let ad_hoc = Queue::<u32>::builder()
        .name("same-ad-hoc")
        .processing_interval(LONG)
        .processor(move |batch: Vec<u32>| locked(&sink).extend(batch))
        .start()
        .expect("starts");

    SHARED_TYPE.get().expect("starts").push(1).expect("running");
    SAME_TYPE
        .get("same")
        .expect("starts")
        .push(2)
        .expect("running");
    ad_hoc.push(3).expect("running");
    SHARED_TYPE
        .get()
        .expect("started")
        .push(1)
        .expect("running");

    ad_hoc.stop().expect("stop");
    SAME_TYPE.stop_all().expect("stop");
    SHARED_TYPE
        .get_started()
        .map(Queue::stop)
        .transpose()
        .expect("stop");
    assert_eq!(*locked(&GLOBAL_SEEN), [1, 1]);
    assert_eq!(*locked(&INSTANCE_SEEN), [2]);
    assert_eq!(*locked(&ad_hoc_seen), [3]);
}

#[test]
fn hash_map_globals_and_instances() {
    static LATEST: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    static GAUGES: Global<HashMap<String, u64>> = Global::new(|| {
        HashMap::builder()
            .name("gauges")
            .processing_interval(LONG)
            .processor(|entries: Vec<Entry<String, u64>>| {
                let mut latest = locked(&LATEST);
                for entry in entries {
                    latest.insert(entry.key, entry.value);
                }
            })
            .start()
    });
    static PER_HOST: Mutex<Vec<(String, String, u64)>> = Mutex::new(Vec::new());
    static HOSTS: Instances<HashMap<String, u64>> = Instances::new(|name| {
        let host = name.to_owned();
        HashMap::builder()
            .name(name)
            .processing_interval(LONG)
            .processor(move |entries: Vec<Entry<String, u64>>| {
                let mut seen = locked(&PER_HOST);
                seen.extend(entries.into_iter().map(|e| (host.clone(), e.key, e.value)));
            })
            .start()
    });

    let gauges = GAUGES.get().expect("starts");
    for value in 0..10 {
        gauges.put("cpu".to_owned(), value).expect("running");
    }
    gauges.put("mem".to_owned(), 7).expect("running");
    assert_eq!(GAUGES.get().expect("started").len(), 2);
    HOSTS
        .get("h1")
        .expect("starts")
        .put("cpu".to_owned(), 1)
        .expect("running");
    HOSTS
        .get("h2")
        .expect("starts")
        .put("cpu".to_owned(), 2)
        .expect("running");

    GAUGES
        .get_started()
        .map(HashMap::stop)
        .transpose()
        .expect("stop");
    HOSTS.stop_all().expect("stop all");
    assert_eq!(
        *locked(&LATEST),
        BTreeMap::from([("cpu".to_owned(), 9), ("mem".to_owned(), 7)])
    );
    let mut per_host = locked(&PER_HOST).clone();
    per_host.sort();
    assert_eq!(
        per_host,
        [
            ("h1".to_owned(), "cpu".to_owned(), 1),
            ("h2".to_owned(), "cpu".to_owned(), 2)
        ]
    );
    assert!(matches!(
        GAUGES.get().expect("stopped").put("cpu".to_owned(), 10),
        Err(PushError::Stopped(_))
    ));
}

#[test]
fn globals_work_in_non_static_values_too() {
    // A `Global` needs no `static`: a value shared by reference behaves the same.
    let local: Global<Queue<u8>> = Global::new(|| {
        Queue::builder()
            .processing_interval(LONG)
            .processor(|_: Vec<u8>| {})
            .start()
    });
    let queue = local.get().expect("starts");
    queue.push(1).expect("running");
    queue.stop().expect("stop");
    let set: Instances<Queue<u8>> = Instances::new(|name| {
        Queue::builder()
            .name(name)
            .processor(|_: Vec<u8>| {})
            .start()
    });
    set.get("one").expect("starts");
    set.stop_all().expect("stop");
    // Dropping the set drops its handles; the stopped buffers are released.
    drop(set);
}
