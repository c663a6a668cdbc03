//! `TracingObserver`: every event becomes one `tracing` event of target `tidefall`, at the
//! documented level, with the event's fields. The observer runs on engine and pool threads,
//! so the capturing subscriber is the global default, installed once for this binary; each
//! test reads back the events of its own buffer (named after the test).

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{wait_until, Gate};
use tidefall::observe::TracingObserver;
use tidefall::{PushError, Queue};
use tracing::field::{Field, Visit};
use tracing::Level;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One captured `tracing` event.
#[derive(Debug, Clone)]
struct Captured {
    target: String,
    level: Level,
    /// Field name → value: strings as they are, numbers and bools in decimal, the rest in
    /// `Debug`. The message is the field `message`.
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    fn message(&self) -> &str {
        self.field("message").unwrap_or("")
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

struct Capture;

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let captured = Captured {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields: fields.0,
        };
        captured_events()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(captured);
    }
}

fn captured_events() -> &'static Mutex<Vec<Captured>> {
    static EVENTS: OnceLock<Mutex<Vec<Captured>>> = OnceLock::new();
    EVENTS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Installs the capturing subscriber as the global default, once for this binary.
fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
}

/// The captured events of `buffer`, in the order they were emitted.
fn events_of(buffer: &str) -> Vec<Captured> {
    captured_events()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|event| event.field("buffer") == Some(buffer))
        .cloned()
        .collect()
}

fn named<'a>(events: &'a [Captured], message: &str) -> Vec<&'a Captured> {
    events.iter().filter(|e| e.message() == message).collect()
}

/// The processor of the failure tests, for batches of two: the batch holding 2 panics, the
/// one holding 4 returns `Err`, the others succeed.
fn faulty(batch: Vec<u32>) -> Result<(), String> {
    if batch.contains(&2) {
        panic!("boom at {batch:?}");
    }
    if batch.contains(&4) {
        return Err(format!("bad batch {batch:?}"));
    }
    Ok(())
}

#[test]
fn every_event_at_its_level_with_its_fields() {
    install();
    let name = "tracing-every-event";
    let queue = Queue::<u32>::builder()
        .name(name)
        .partitions(1)
        .processing_interval(Duration::from_secs(3600))
        .processing_batch_size(2)
        .capacity(8)
        .processor(faulty)
        .observer(TracingObserver::new())
        .start()
        .unwrap();
    for i in 0..8 {
        queue.push(i).unwrap();
    }
    // Two writes past capacity: one `Rejected` with count 2 at the next cycle.
    assert!(matches!(queue.push(8), Err(PushError::Full(8))));
    assert!(matches!(queue.push(9), Err(PushError::Full(9))));
    queue.flush().unwrap();
    queue.stop().unwrap();

    let stats = queue.stats();
    assert_eq!(
        (stats.processed, stats.failed, stats.rejected, stats.batches),
        (4, 4, 2, 4)
    );

    let events = events_of(name);
    assert!(events.iter().all(|e| e.target == "tidefall"), "{events:#?}");
    assert!(
        events.iter().all(|e| e.field("partition") == Some("0")),
        "{events:#?}"
    );
    let messages: Vec<&str> = events.iter().map(Captured::message).collect();
    assert_eq!(
        messages,
        [
            "PartitionStart",
            "Rejected",
            "ProcessingStart",
            "BatchStop",
            "BatchStop",
            "ProcessingException",
            "ProcessingFailed",
            "BatchStop",
            "ProcessingFailed",
            "BatchStop",
            "ProcessingStop",
            "PartitionStop",
        ],
        "{events:#?}"
    );

    for (message, level) in [
        ("PartitionStart", Level::DEBUG),
        ("PartitionStop", Level::DEBUG),
        ("ProcessingStart", Level::DEBUG),
        ("ProcessingStop", Level::DEBUG),
        ("BatchStop", Level::TRACE),
        ("ProcessingException", Level::ERROR),
        ("ProcessingFailed", Level::WARN),
        ("Rejected", Level::WARN),
    ] {
        for event in named(&events, message) {
            assert_eq!(event.level, level, "{event:#?}");
        }
    }

    let start = &named(&events, "PartitionStart")[0];
    let started_at: f64 = start.field("system_time").unwrap().parse().unwrap();
    assert!(started_at > 1.6e9, "seconds since the epoch: {started_at}");

    let stop = &named(&events, "PartitionStop")[0];
    assert_eq!(stop.field("reason"), Some("stopped"));
    assert!(stop.field("duration").is_some());

    let rejected = &named(&events, "Rejected")[0];
    assert_eq!(rejected.field("count"), Some("2"));

    assert!(named(&events, "ProcessingStart")[0]
        .field("system_time")
        .is_some());
    let cycle = &named(&events, "ProcessingStop")[0];
    assert_eq!(cycle.field("size"), Some("8"));
    assert!(cycle.field("duration").is_some());

    let batches: Vec<(&str, &str)> = named(&events, "BatchStop")
        .iter()
        .map(|e| (e.field("size").unwrap(), e.field("processed").unwrap()))
        .collect();
    assert_eq!(
        batches,
        [("2", "true"), ("2", "false"), ("2", "false"), ("2", "true")]
    );
    assert!(named(&events, "BatchStop")
        .iter()
        .all(|e| e.field("duration").is_some()));

    let exception = &named(&events, "ProcessingException")[0];
    assert_eq!(exception.field("kind"), Some("panic"));
    assert_eq!(exception.field("reason"), Some("panic: boom at [2, 3]"));
    assert!(exception.field("duration").is_some());

    let failed = named(&events, "ProcessingFailed");
    let failures: Vec<(&str, &str)> = failed
        .iter()
        .map(|e| (e.field("reason").unwrap(), e.field("count").unwrap()))
        .collect();
    assert_eq!(
        failures,
        [("panic: boom at [2, 3]", "2"), ("bad batch [4, 5]", "2")]
    );
    assert!(failed.iter().all(|e| e.field("system_time").is_some()));
}

#[test]
fn a_timeout_is_a_warning_with_the_items_lost() {
    install();
    let name = "tracing-timeout";
    let gate = Gate::default();
    let held = gate.clone();
    let queue = Queue::<u32>::builder()
        .name(name)
        .partitions(1)
        .processing_interval(Duration::from_secs(3600))
        .processing_timeout(Duration::from_millis(100))
        .processing_batch_size(2)
        .processor(move |_batch: Vec<u32>| held.wait())
        .observer(TracingObserver::new())
        .start()
        .unwrap();
    queue.push_many(0..6).unwrap();
    // The first call is held past the timeout: the cycle fails, its six items with it. (On a
    // loaded machine the flush's cycle may be given up before it starts, reported with a
    // count of 0; then the final cycle of `stop` takes the items and times out.)
    let _ = queue.flush();
    let _ = queue.stop();
    gate.open();
    // The held call returns now; its `BatchStop` follows.
    assert!(wait_until(Duration::from_secs(10), || {
        named(&events_of(name), "BatchStop").len() as u64 == queue.stats().batches
    }));

    let stats = queue.stats();
    assert_eq!((stats.processed, stats.failed), (0, 6));
    let events = events_of(name);
    let failed = named(&events, "ProcessingFailed");
    assert!(!failed.is_empty(), "{events:#?}");
    let mut lost = 0;
    for event in &failed {
        assert_eq!(event.level, Level::WARN);
        assert_eq!(event.field("reason"), Some("timeout"));
        lost += event.field("count").unwrap().parse::<u64>().unwrap();
    }
    assert_eq!(lost, 6, "{events:#?}");
    let batches = named(&events, "BatchStop");
    assert!(!batches.is_empty());
    assert!(batches
        .iter()
        .all(|e| e.field("processed") == Some("false") && e.level == Level::TRACE));
}

#[test]
fn quiet_when_nothing_happens_but_the_lifecycle() {
    install();
    let name = "tracing-quiet";
    let queue = Queue::<u32>::builder()
        .name(name)
        .partitions(3)
        .processor(|_batch: Vec<u32>| {})
        .observer(TracingObserver::default())
        .start()
        .unwrap();
    queue.stop().unwrap();
    let events = events_of(name);
    let mut seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            assert_eq!(e.level, Level::DEBUG, "{e:#?}");
            (
                e.message().to_owned(),
                e.field("partition").unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let expected: Vec<(String, String)> = ["PartitionStart", "PartitionStop"]
        .iter()
        .flat_map(|m| (0..3).map(move |p| (m.to_string(), p.to_string())))
        .collect();
    assert_eq!(seen, expected);
}
