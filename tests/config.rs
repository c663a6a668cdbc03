//! Layered configuration (the `serde` feature): every layer alone, their precedence (code
//! defaults < config layers < environment < explicit builder calls, wherever `.config(..)`
//! sits), the errors naming the option and the layer, the serialized form, both builders.
//!
//! Environment variables are process-wide and the tests run in parallel: every test uses
//! buffer names of its own, so no two tests read or write the same variables.

#![cfg(not(loom))]

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidefall::config::{env_var, BufferConfig, Config};
use tidefall::{BatchSize, Entry, Error, HashMap, PushError, Queue, QueueBuilder};

/// No tick during a test: items reach the processor on `flush` or `stop` only.
const NEVER: Duration = Duration::from_secs(3600);

type Batches = Arc<Mutex<Vec<usize>>>;

/// A one-partition queue named `name`, no ticks, recording the size of every batch.
fn recording(name: &str) -> (QueueBuilder<u32>, Batches) {
    let batches = Batches::default();
    let sink = Arc::clone(&batches);
    let builder = Queue::<u32>::builder()
        .name(name)
        .partitions(1)
        .processing_interval(NEVER)
        .processor(move |batch: Vec<u32>| sink.lock().unwrap().push(batch.len()));
    (builder, batches)
}

/// A queue builder with nothing set but the name and the processor.
fn bare(name: &str) -> QueueBuilder<u32> {
    Queue::<u32>::builder()
        .name(name)
        .processor(|_: Vec<u32>| {})
}

/// How many of `n` pushes the queue accepts before `Full`; the rest must all be `Full`.
fn accepted(queue: &Queue<u32>, n: u32) -> u32 {
    let mut accepted = 0;
    for i in 0..n {
        match queue.push(i) {
            Ok(()) => accepted += 1,
            Err(PushError::Full(_)) => {}
            Err(e) => panic!("push {i}: {e:?}"),
        }
    }
    accepted
}

/// Pushes `n` items, flushes, and returns the batch sizes the processor saw.
fn batch_sizes(queue: &Queue<u32>, batches: &Batches, n: u32) -> Vec<usize> {
    queue.push_many(0..n).unwrap();
    queue.flush().unwrap();
    let sizes = batches.lock().unwrap().clone();
    queue.stop().unwrap();
    sizes
}

/// The `(option, reason)` of an `InvalidOption`.
fn invalid<T: std::fmt::Debug>(result: Result<T, Error>) -> (&'static str, String) {
    match result {
        Err(Error::InvalidOption { option, reason }) => (option, reason),
        other => panic!("expected InvalidOption, got {other:?}"),
    }
}

/// A config file with `text` in a fresh temporary directory (kept alive by the guard).
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tidefall.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn set_env(buffer: &str, option: &str, value: &str) {
    std::env::set_var(env_var(buffer, option), value);
}

// ---- each layer alone ----

#[test]
fn a_config_file_sets_capacity() {
    let (_dir, path) = file("[file_capacity]\ncapacity = 3\n");
    let (builder, _) = recording("file_capacity");
    let queue = builder.config(Config::new().file(&path)).start().unwrap();
    assert_eq!(accepted(&queue, 10), 3);
    queue.stop().unwrap();
}

#[test]
fn a_config_file_sets_the_batch_size_as_a_number_or_table() {
    let (_dir, path) = file(
        "[file_batch_number]\nprocessing_batch_size = 4\n\n\
         [file_batch_table]\nprocessing_batch_size = \"table\"\n",
    );
    let config = Config::new().file(&path);
    let (builder, batches) = recording("file_batch_number");
    let queue = builder.config(config.clone()).start().unwrap();
    assert_eq!(batch_sizes(&queue, &batches, 10), [4, 4, 2]);

    let (builder, batches) = recording("file_batch_table");
    let queue = builder.config(config).start().unwrap();
    assert_eq!(batch_sizes(&queue, &batches, 25), [25]);
}

#[test]
fn the_environment_sets_the_batch_size() {
    set_env("env_batch", "processing_batch_size", "3");
    let (builder, batches) = recording("env_batch");
    let queue = builder.config(Config::new().env()).start().unwrap();
    assert_eq!(batch_sizes(&queue, &batches, 10), [3, 3, 3, 1]);

    set_env("env_batch_table", "processing_batch_size", "table");
    let (builder, batches) = recording("env_batch_table");
    let queue = builder.config(Config::new().env()).start().unwrap();
    assert_eq!(batch_sizes(&queue, &batches, 30), [30]);
}

#[test]
fn the_environment_sets_the_processing_interval_as_a_humantime_string() {
    set_env("env_interval", "processing_interval", "50ms");
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    // No explicit interval: the default (5 s) would not deliver within the wait below.
    let queue = Queue::<u32>::builder()
        .name("env_interval")
        .config(Config::new().env())
        .processor(move |batch: Vec<u32>| {
            for item in batch {
                let _ = tx.lock().unwrap().send(item);
            }
        })
        .start()
        .unwrap();
    queue.push(7).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(3)),
        Ok(7),
        "no tick within 3 s"
    );
    queue.stop().unwrap();
}

#[test]
fn toml_text_options_and_providers_are_layers() {
    let (builder, batches) = recording("text_layer");
    let config = Config::new().toml("[text_layer]\nprocessing_batch_size = 2\n");
    let queue = builder.config(config).start().unwrap();
    assert_eq!(batch_sizes(&queue, &batches, 5), [2, 2, 1]);

    // `Config::options` needs no name and no table.
    let mut options = BufferConfig::default();
    options.processing_batch_size = Some(BatchSize::Items(3));
    let batches = Batches::default();
    let sink = Arc::clone(&batches);
    let queue = Queue::<u32>::builder()
        .partitions(1)
        .processing_interval(NEVER)
        .config(Config::new().options(options))
        .processor(move |batch: Vec<u32>| sink.lock().unwrap().push(batch.len()))
        .start()
        .unwrap();
    assert_eq!(batch_sizes(&queue, &batches, 5), [3, 2]);

    // Any figment provider, read like a file: a table per buffer.
    let mut options = BufferConfig::default();
    options.capacity = Some(2);
    let provider = figment::providers::Serialized::default("provider_layer", options);
    let (builder, _) = recording("provider_layer");
    let queue = builder
        .config(Config::new().provider(provider))
        .start()
        .unwrap();
    assert_eq!(accepted(&queue, 5), 2);
    queue.stop().unwrap();

    // Its errors name it by its metadata, and the table.
    let mut options = BufferConfig::default();
    options.capacity = Some(0);
    let provider = figment::providers::Serialized::default("provider_bad", options);
    let config = Config::new().provider(provider);
    let (option, reason) = invalid(bare("provider_bad").config(config).start());
    assert_eq!(option, "capacity");
    assert!(reason.starts_with("must be at least 1 (from "), "{reason}");
    assert!(reason.ends_with(", table [provider_bad])"), "{reason}");
}

#[test]
fn a_hash_map_reads_the_same_layers() {
    let (_dir, path) = file("[map_layers]\ncapacity = 2\n");
    set_env("map_layers", "processing_batch_size", "1");
    let batches = Batches::default();
    let sink = Arc::clone(&batches);
    let map = HashMap::<u32, u32>::builder()
        .name("map_layers")
        .partitions(1)
        .processing_interval(NEVER)
        .config(Config::new().file(&path).env())
        .processor(move |entries: Vec<Entry<u32, u32>>| sink.lock().unwrap().push(entries.len()))
        .start()
        .unwrap();
    map.put(1, 10).unwrap();
    map.put(2, 20).unwrap();
    map.put(1, 11).unwrap(); // an existing key: no new room needed
    assert!(matches!(map.put(3, 30), Err(PushError::Full((3, 30)))));
    map.flush().unwrap();
    assert_eq!(*batches.lock().unwrap(), [1, 1]);
    map.stop().unwrap();
}

#[test]
fn one_config_serves_several_buffers_by_name() {
    let config = Config::new().toml(
        "[shared_a]\ncapacity = 1\n\n[shared_b]\ncapacity = 4\n\n[unrelated]\nanything = true\n",
    );
    let (a, _) = recording("shared_a");
    let (b, _) = recording("shared_b");
    let a = a.config(config.clone()).start().unwrap();
    let b = b.config(config.clone()).start().unwrap();
    assert_eq!((accepted(&a, 9), accepted(&b, 9)), (1, 4));
    a.stop().unwrap();
    b.stop().unwrap();
    // A buffer without a table runs on its defaults.
    let (c, _) = recording("shared_c");
    let c = c.config(config).start().unwrap();
    assert_eq!(accepted(&c, 9), 9);
    c.stop().unwrap();
}

// ---- precedence ----

#[test]
fn file_then_environment_then_explicit_calls() {
    let (_dir, path) = file(
        "[precedence]\ncapacity = 2\nprocessing_batch_size = 2\npartitions = 3\n\
         processing_timeout = \"7s\"\n",
    );
    set_env("precedence", "capacity", "4");
    set_env("precedence", "processing_batch_size", "3");
    let config = Config::new().env().file(&path); // `.env()` is on top wherever it sits

    let loaded = config.load("precedence").unwrap();
    let options = loaded.options();
    assert_eq!(options.capacity, Some(4));
    assert_eq!(options.processing_batch_size, Some(BatchSize::Items(3)));
    assert_eq!(options.partitions, Some(3));
    assert_eq!(options.processing_timeout, Some(Duration::from_secs(7)));
    assert_eq!(options.drain_threshold, None);
    let from_file = format!("config file {}, table [precedence]", path.display());
    assert_eq!(loaded.source("partitions"), Some(from_file.as_str()));
    assert_eq!(
        loaded.source("capacity"),
        Some("environment variable TIDEFALL_PRECEDENCE_CAPACITY")
    );
    assert_eq!(loaded.source("drain_threshold"), None);
    assert_eq!(loaded.source("no_such_option"), None);

    // The builder's calls: capacity explicitly (after `.config`), the batch size from the
    // environment, the file's partitions overridden by `queue`'s `partitions(1)` (before).
    let (builder, batches) = recording("precedence");
    let queue = builder.config(config).capacity(6).start().unwrap();
    assert_eq!(accepted(&queue, 10), 6);
    assert_eq!(batch_sizes(&queue, &batches, 0), [3, 3]);
}

#[test]
fn an_explicit_call_before_config_wins_too() {
    let (_dir, path) = file("[explicit_before]\ncapacity = 2\nprocessing_batch_size = 1\n");
    set_env("explicit_before", "processing_batch_size", "2");
    let batches = Batches::default();
    let sink = Arc::clone(&batches);
    let queue = Queue::<u32>::builder()
        .name("explicit_before")
        .capacity(5)
        .processing_batch_size(BatchSize::Table)
        .partitions(1)
        .processing_interval(NEVER)
        .processor(move |batch: Vec<u32>| sink.lock().unwrap().push(batch.len()))
        .config(Config::new().file(&path).env())
        .start()
        .unwrap();
    assert_eq!(accepted(&queue, 10), 5);
    assert_eq!(batch_sizes(&queue, &batches, 0), [5]);
}

#[test]
fn later_config_layers_override_earlier_ones() {
    let mut defaults = BufferConfig::default();
    defaults.capacity = Some(1);
    defaults.drain_threshold = Some(50);
    let (_dir, path) = file("[layer_order]\ncapacity = 2\n");
    let config = Config::new()
        .options(defaults)
        .file(&path)
        .toml("[layer_order]\ncapacity = 3\n");
    let loaded = config.load("layer_order").unwrap();
    assert_eq!(loaded.options().capacity, Some(3));
    assert_eq!(
        loaded.source("capacity"),
        Some("TOML text, table [layer_order]")
    );
    assert_eq!(loaded.options().drain_threshold, Some(50));
    assert_eq!(loaded.source("drain_threshold"), Some("Config::options"));
}

// ---- errors ----

#[test]
fn an_invalid_value_in_the_file_names_the_option_and_the_file() {
    let (_dir, path) = file(
        "[file_range]\npartitions = 0\n\n[file_parse]\nprocessing_interval = \"5 parsecs\"\n\n\
         [file_type]\ncapacity = \"lots\"\n",
    );
    let config = Config::new().file(&path);
    let (option, reason) = invalid(bare("file_range").config(config.clone()).start());
    assert_eq!(option, "partitions");
    let layer = format!("(from config file {}, table [file_range])", path.display());
    assert_eq!(reason, format!("must be at least 1 {layer}"));

    let (option, reason) = invalid(bare("file_parse").config(config.clone()).start());
    assert_eq!(option, "processing_interval");
    assert!(
        reason.starts_with("invalid duration \"5 parsecs\": unknown time unit"),
        "{reason}"
    );
    assert!(reason.ends_with("table [file_parse])"), "{reason}");

    let (option, reason) = invalid(bare("file_type").config(config).start());
    assert_eq!(option, "capacity");
    assert!(reason.contains("lots"), "{reason}");
}

#[test]
fn an_invalid_value_in_the_environment_names_the_variable() {
    set_env("env_bad_interval", "processing_interval", "5 parsecs");
    let (option, reason) = invalid(bare("env_bad_interval").config(Config::new().env()).start());
    assert_eq!(option, "processing_interval");
    assert!(reason.contains("\"5 parsecs\""), "{reason}");
    assert!(
        reason
            .ends_with("(from environment variable TIDEFALL_ENV_BAD_INTERVAL_PROCESSING_INTERVAL)"),
        "{reason}"
    );

    set_env("env_bad_capacity", "capacity", "0");
    let (option, reason) = invalid(bare("env_bad_capacity").config(Config::new().env()).start());
    assert_eq!(option, "capacity");
    assert_eq!(
        reason,
        "must be at least 1 (from environment variable TIDEFALL_ENV_BAD_CAPACITY_CAPACITY)"
    );

    // A duration needs its unit.
    set_env("env_bare_number", "drain_check_interval", "5");
    let (option, _) = invalid(bare("env_bare_number").config(Config::new().env()).start());
    assert_eq!(option, "drain_check_interval");
}

#[test]
fn an_invalid_explicit_call_is_from_code() {
    let config = Config::new().toml("[code_bad]\ncapacity = 5\n");
    let (option, reason) = invalid(
        bare("code_bad")
            .config(config)
            .processing_batch_size(0)
            .start(),
    );
    assert_eq!(option, "processing_batch_size");
    assert!(reason.ends_with("(from code)"), "{reason}");
    // Without a config, the messages are as before.
    let (_, reason) = invalid(bare("code_bad_plain").capacity(0).start());
    assert_eq!(reason, "must be at least 1");
}

#[test]
fn a_shadowed_invalid_value_still_fails() {
    let (_dir, path) = file("[shadowed]\npartitions = 0\n");
    let (option, reason) = invalid(
        bare("shadowed")
            .partitions(2)
            .config(Config::new().file(&path))
            .start(),
    );
    assert_eq!(option, "partitions");
    assert!(reason.contains("config file"), "{reason}");
}

#[test]
fn an_unknown_key_is_an_error_naming_it() {
    let (_dir, path) = file("[unknown_key]\nprocesing_interval = \"1s\"\n");
    let (option, reason) = invalid(
        bare("unknown_key")
            .config(Config::new().file(&path))
            .start(),
    );
    assert_eq!(option, "config");
    assert!(reason.contains("`procesing_interval`"), "{reason}");
    assert!(reason.contains("table [unknown_key])"), "{reason}");

    // `name` is the table's key, not an option in it.
    let config = Config::new().toml("[unknown_name]\nname = \"other\"\n");
    let (option, _) = invalid(bare("unknown_name").config(config).start());
    assert_eq!(option, "config");

    // Unknown variables are ignored: `spans` must not read `spans_export`'s.
    set_env("unknown_env", "procesing_interval", "1s");
    set_env("unknown_env_export", "capacity", "3");
    let queue = bare("unknown_env")
        .config(Config::new().env())
        .start()
        .unwrap();
    queue.stop().unwrap();
}

#[test]
fn file_problems_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    // A missing file is an empty layer...
    let queue = bare("missing_file")
        .config(Config::new().file(&missing))
        .start()
        .unwrap();
    queue.stop().unwrap();
    // ...unless it is required.
    let (option, reason) = invalid(
        bare("missing_file")
            .config(Config::new().file_required(&missing))
            .start(),
    );
    assert_eq!(option, "config");
    let layer = format!("(from config file {})", missing.display());
    assert_eq!(reason, format!("the file does not exist {layer}"));

    let (_dir, path) = file("[bad_syntax]\ncapacity = \n");
    let (option, reason) = invalid(bare("bad_syntax").config(Config::new().file(&path)).start());
    assert_eq!(option, "config");
    assert!(reason.starts_with("TOML parse error"), "{reason}");
    assert!(
        reason.ends_with(&format!("(from config file {})", path.display())),
        "{reason}"
    );

    let config = Config::new().toml("not_a_table = 3\n");
    let (option, reason) = invalid(bare("not_a_table").config(config).start());
    assert_eq!(option, "config");
    assert_eq!(
        reason,
        "`not_a_table` must be a table of options (from TOML text)"
    );
}

#[test]
fn a_keyed_layer_needs_a_name() {
    let (option, reason) = invalid(
        Queue::<u32>::builder()
            .config(Config::new().env())
            .processor(|_: Vec<u32>| {})
            .start(),
    );
    assert_eq!(option, "name");
    assert!(reason.contains("name"), "{reason}");
    let (option, _) = invalid(Config::new().load(""));
    assert_eq!(option, "name");
}

// ---- the serialized form ----

#[test]
fn buffer_config_round_trips_through_toml() {
    let mut options = BufferConfig::default();
    options.partitions = Some(4);
    options.processing_interval = Some(Duration::from_millis(250));
    options.processing_batch_size = Some(BatchSize::Table);
    options.processing_timeout = Some(Duration::from_secs(90));
    options.drain_threshold = Some(1000);
    options.drain_check_interval = Some(Duration::from_secs(1));
    options.capacity = Some(10_000);
    let text = toml::to_string(&options).unwrap();
    assert!(text.contains("processing_interval = \"250ms\""), "{text}");
    assert!(text.contains("processing_timeout = \"1m 30s\""), "{text}");
    assert!(text.contains("processing_batch_size = \"table\""), "{text}");
    assert!(text.contains("capacity = 10000"), "{text}");
    assert_eq!(toml::from_str::<BufferConfig>(&text).unwrap(), options);

    options.processing_batch_size = Some(BatchSize::Items(64));
    let text = toml::to_string(&options).unwrap();
    assert!(text.contains("processing_batch_size = 64"), "{text}");
    assert_eq!(toml::from_str::<BufferConfig>(&text).unwrap(), options);

    // Unset options are left out, and read back as unset.
    assert_eq!(toml::to_string(&BufferConfig::default()).unwrap(), "");
    assert_eq!(
        toml::from_str::<BufferConfig>("").unwrap(),
        BufferConfig::default()
    );
}

#[test]
fn values_in_their_serialized_forms() {
    let parse = |text: &str| toml::from_str::<BufferConfig>(text);
    assert_eq!(
        parse("processing_interval = \"1m 30s\"")
            .unwrap()
            .processing_interval,
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        parse("drain_check_interval = \"2h\"")
            .unwrap()
            .drain_check_interval,
        Some(Duration::from_secs(7200))
    );
    assert!(parse("processing_interval = 5").is_err()); // the unit is required
    for (text, size) in [
        ("processing_batch_size = \"TABLE\"", BatchSize::Table),
        ("processing_batch_size = \"12\"", BatchSize::Items(12)),
        ("processing_batch_size = 12", BatchSize::Items(12)),
    ] {
        assert_eq!(
            parse(text).unwrap().processing_batch_size,
            Some(size),
            "{text}"
        );
    }
    assert!(parse("processing_batch_size = -1").is_err());
    assert!(parse("processing_batch_size = \"lots\"").is_err());
    let error = parse("capacty = 3").unwrap_err().to_string();
    assert!(error.contains("capacty"), "{error}");
}

/// A `Global` declared in a `static` starts lazily with its layered config: the file's table
/// and the environment apply at the first `get`, and not before.
#[test]
fn a_global_starts_lazily_with_its_layered_config() {
    use tidefall::Global;

    static BATCHES: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    static EVENTS: Global<Queue<u32>> = Global::new(|| {
        Queue::builder()
            .name("cfg-global")
            .partitions(1)
            .processing_interval(NEVER)
            .config(
                Config::new()
                    .toml("[cfg-global]\ncapacity = 5\nprocessing_batch_size = 2\n")
                    .env(),
            )
            .processor(|batch: Vec<u32>| BATCHES.lock().unwrap().push(batch.len()))
            .start()
    });

    // Set before the first use: the environment is read when the global starts.
    std::env::set_var(env_var("cfg-global", "processing_batch_size"), "3");
    assert!(EVENTS.get_started().is_none());
    let events = EVENTS.get().unwrap();
    for i in 0..5 {
        events.push(i).unwrap();
    }
    assert!(
        matches!(events.push(5), Err(PushError::Full(5))),
        "capacity 5 from the TOML layer"
    );
    events.stop().unwrap();
    assert_eq!(
        *BATCHES.lock().unwrap(),
        vec![3, 2],
        "batch size 3 from the environment, over the TOML's 2"
    );
}
