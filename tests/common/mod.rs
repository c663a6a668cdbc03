//! Helpers shared by the integration tests: an event recorder, a batch sink, and a poller
//! for the few tests whose subject is timing itself.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use tidefall::Event;

/// An owned copy of an [`Event`], with the fields the tests check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    PartitionStart {
        buffer: String,
        partition: usize,
    },
    PartitionStop {
        buffer: String,
        partition: usize,
    },
    ProcessingStart {
        partition: usize,
    },
    ProcessingStop {
        partition: usize,
        size: usize,
    },
    ProcessingException {
        partition: usize,
        kind: String,
        /// The reason's `Display`.
        reason: String,
        /// The reason's `Debug`.
        reason_debug: String,
    },
    ProcessingFailed {
        partition: usize,
        /// The reason's `Display`.
        reason: String,
        /// The reason's `Debug`.
        reason_debug: String,
        /// Items lost.
        count: u64,
    },
    BatchStop {
        partition: usize,
        size: usize,
        processed: bool,
    },
    Rejected {
        partition: usize,
        count: u64,
    },
    Other,
}

impl Ev {
    fn from_event(event: &Event<'_>) -> (String, Ev) {
        match event {
            Event::PartitionStart(e) => (
                e.buffer.to_owned(),
                Ev::PartitionStart {
                    buffer: e.buffer.to_owned(),
                    partition: e.partition,
                },
            ),
            Event::PartitionStop(e) => (
                e.buffer.to_owned(),
                Ev::PartitionStop {
                    buffer: e.buffer.to_owned(),
                    partition: e.partition,
                },
            ),
            Event::ProcessingStart(e) => (
                e.buffer.to_owned(),
                Ev::ProcessingStart {
                    partition: e.partition,
                },
            ),
            Event::ProcessingStop(e) => (
                e.buffer.to_owned(),
                Ev::ProcessingStop {
                    partition: e.partition,
                    size: e.size,
                },
            ),
            Event::ProcessingException(e) => (
                e.buffer.to_owned(),
                Ev::ProcessingException {
                    partition: e.partition,
                    kind: e.kind.to_owned(),
                    reason: e.reason.to_string(),
                    reason_debug: format!("{:?}", e.reason),
                },
            ),
            Event::ProcessingFailed(e) => (
                e.buffer.to_owned(),
                Ev::ProcessingFailed {
                    partition: e.partition,
                    reason: e.reason.to_string(),
                    reason_debug: format!("{:?}", e.reason),
                    count: e.count,
                },
            ),
            Event::BatchStop(e) => (
                e.buffer.to_owned(),
                Ev::BatchStop {
                    partition: e.partition,
                    size: e.size,
                    processed: e.processed,
                },
            ),
            Event::Rejected(e) => (
                e.buffer.to_owned(),
                Ev::Rejected {
                    partition: e.partition,
                    count: e.count,
                },
            ),
            _ => (String::new(), Ev::Other),
        }
    }

    pub fn partition(&self) -> Option<usize> {
        match self {
            Ev::PartitionStart { partition, .. }
            | Ev::PartitionStop { partition, .. }
            | Ev::ProcessingStart { partition }
            | Ev::ProcessingStop { partition, .. }
            | Ev::ProcessingException { partition, .. }
            | Ev::ProcessingFailed { partition, .. }
            | Ev::BatchStop { partition, .. }
            | Ev::Rejected { partition, .. } => Some(*partition),
            Ev::Other => None,
        }
    }
}

/// One observed event: which buffer, on which thread.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub buffer: String,
    pub thread: ThreadId,
    pub event: Ev,
}

/// Records every event an observer receives.
#[derive(Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// An observer feeding this recorder.
    pub fn observer(&self) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
        let events = Arc::clone(&self.events);
        move |event: &Event<'_>| {
            let (buffer, event) = Ev::from_event(event);
            events.lock().unwrap().push(Recorded {
                buffer,
                thread: std::thread::current().id(),
                event,
            });
        }
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.events.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<Ev> {
        self.recorded().into_iter().map(|r| r.event).collect()
    }

    pub fn failed(&self) -> Vec<Ev> {
        self.events()
            .into_iter()
            .filter(|e| matches!(e, Ev::ProcessingFailed { .. }))
            .collect()
    }

    /// `(size, processed)` of every processor call, in the order reported.
    pub fn batch_stops(&self) -> Vec<(usize, bool)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Ev::BatchStop {
                    size, processed, ..
                } => Some((size, processed)),
                _ => None,
            })
            .collect()
    }

    /// The sum of the `count`s of the `ProcessingFailed` events.
    pub fn failed_sum(&self) -> u64 {
        self.events()
            .iter()
            .map(|e| match e {
                Ev::ProcessingFailed { count, .. } => *count,
                _ => 0,
            })
            .sum()
    }

    pub fn exceptions(&self) -> Vec<Ev> {
        self.events()
            .into_iter()
            .filter(|e| matches!(e, Ev::ProcessingException { .. }))
            .collect()
    }

    pub fn rejected_sum(&self) -> u64 {
        self.events()
            .iter()
            .map(|e| match e {
                Ev::Rejected { count, .. } => *count,
                _ => 0,
            })
            .sum()
    }

    /// Partitions named by events of the kind `pick` selects, sorted (duplicates kept).
    pub fn partitions_of(&self, pick: impl Fn(&Ev) -> bool) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .events()
            .iter()
            .filter(|e| pick(e))
            .filter_map(Ev::partition)
            .collect();
        v.sort_unstable();
        v
    }
}

/// Collects the batches a processor receives, in call order.
pub struct Sink<T> {
    batches: Arc<Mutex<Vec<Vec<T>>>>,
}

impl<T> Clone for Sink<T> {
    fn clone(&self) -> Self {
        Sink {
            batches: Arc::clone(&self.batches),
        }
    }
}

impl<T: Clone + Send + 'static> Sink<T> {
    pub fn new() -> Self {
        Sink {
            batches: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A processor that records each batch.
    pub fn processor(&self) -> impl Fn(Vec<T>) + Send + Sync + 'static {
        let batches = Arc::clone(&self.batches);
        move |batch: Vec<T>| batches.lock().unwrap().push(batch)
    }

    pub fn batches(&self) -> Vec<Vec<T>> {
        self.batches.lock().unwrap().clone()
    }

    pub fn items(&self) -> Vec<T> {
        self.batches().into_iter().flatten().collect()
    }

    pub fn count(&self) -> usize {
        self.batches.lock().unwrap().iter().map(Vec::len).sum()
    }

    pub fn calls(&self) -> usize {
        self.batches.lock().unwrap().len()
    }
}

impl<T: Clone + Send + 'static> Default for Sink<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Polls `cond` every 2 ms until it holds or `timeout` passes; returns whether it held.
/// Only for tests whose subject is timing (intervals, thresholds, timeouts).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A long interval, so that only `flush`/`stop` (or the behaviour under test) drain.
pub const NEVER: Duration = Duration::from_secs(3600);

/// A generous bound for things that should happen within milliseconds, on a loaded machine.
pub const GENEROUS: Duration = Duration::from_secs(10);

/// A dedicated rayon pool with `n` threads named `<prefix>-<i>`.
pub fn pool(prefix: &'static str, n: usize) -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(move |i| format!("{prefix}-{i}"))
            .build()
            .expect("a test pool"),
    )
}

/// Holds processor calls until opened (or for 10 s at most).
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    pub fn wait(&self) {
        let (open, opened) = &*self.0;
        let open = open.lock().unwrap();
        let _ = opened
            .wait_timeout_while(open, Duration::from_secs(10), |open| !*open)
            .unwrap();
    }

    pub fn open(&self) {
        let (open, opened) = &*self.0;
        *open.lock().unwrap() = true;
        opened.notify_all();
    }
}
