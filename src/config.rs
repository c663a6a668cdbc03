//! Layered configuration (the `serde` feature): a buffer's options from config files,
//! environment variables and any [figment](https://docs.rs/figment) provider, under the
//! builder's explicit calls.
//!
//! A [`Config`] lists the layers; the builders' `config(..)` method attaches it, and `start()`
//! loads it. Every option of the crate's option table that is plain data has a serializable
//! form in [`BufferConfig`]; `processor`, `observer` and `thread_pool` are code, so they are
//! set by builder calls only, and `name` is what selects a buffer's layers, so it is set by a
//! builder call too.
//!
//! # Precedence
//!
//! | layer, lowest to highest | example | set with |
//! |---|---|---|
//! | code defaults | the crate's option table | |
//! | config layers, in the order added (later wins) | `[spans]`<br>`processing_interval = "1s"` | [`Config::options`], [`Config::toml`], [`Config::file`], [`Config::file_required`], [`Config::provider`] |
//! | environment variables | `TIDEFALL_SPANS_PROCESSING_INTERVAL=250ms` | [`Config::env`] (on top of all config layers, wherever it sits in the chain) |
//! | explicit builder calls | `.processing_interval(Duration::from_millis(100))` | the builder, before or after `.config(..)` |
//!
//! Config files, TOML text and providers hold one table per buffer, selected by the buffer's
//! `name` (a `.` in the name separates nested tables: `a.b` is `[a.b]`); other tables and keys
//! are left alone, so the tables may sit in a service's own config file. Environment
//! variables are named `TIDEFALL_<NAME>_<OPTION>`, like the OpenTelemetry SDK's `OTEL_BSP_*`:
//! `<NAME>` is the buffer's name upper-cased with every character other than an ASCII letter
//! or digit turned into `_` (see [`env_var`]), `<OPTION>` the option upper-cased. A config
//! with a keyed layer (a file, TOML text, a provider or the environment) needs the buffer's
//! `name`: without one, `start()` fails with `Error::InvalidOption { option: "name", .. }`.
//!
//! # Values
//!
//! Durations are [humantime](https://docs.rs/humantime) strings: `"5s"`, `"250ms"`,
//! `"1m 30s"` (a bare number is refused: the unit is required). `processing_batch_size` is a
//! number of items or the string `"table"` (for [`BatchSize::Table`]). The other options are
//! integers.
//!
//! # Errors
//!
//! Every layer is read and checked in full, whether or not a higher layer overrides its
//! values: a mistake in the config file fails `start()` even while an environment variable
//! or a builder call sets the same option, rather than waiting for the day that override is
//! removed. Any invalid value makes `start()` (and [`Config::load`]) return
//! [`Error::InvalidOption`] whose `option` is the option's builder-method name and whose
//! `reason` ends with the layer it came from: `(from config file tidefall.toml, table
//! [spans])`, `(from environment variable TIDEFALL_SPANS_CAPACITY)`, `(from code)`. Problems
//! that belong to no single option (an unknown key, a file that cannot be read or parsed, a
//! buffer's entry that is not a table) are reported with `option: "config"`, the key (if
//! any) and the layer in the reason. Unknown keys in files, TOML text and providers are
//! errors; unknown `TIDEFALL_<NAME>_*` variables are ignored, since the variables of a buffer
//! named `spans` share their prefix with those of one named `spans_export`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tidefall::config::Config;
//! use tidefall::{BatchSize, Queue};
//!
//! // One table per buffer; `Config::file("tidefall.toml")` reads the same from a file.
//! let config = Config::new()
//!     .toml(
//!         r#"
//!         [spans]
//!         processing_interval = "1s"
//!         processing_batch_size = "table"
//!         capacity = 10_000
//!         "#,
//!     )
//!     .env();
//! std::env::set_var("TIDEFALL_SPANS_PROCESSING_INTERVAL", "250ms");
//!
//! // What the layers give, and where each value came from.
//! let loaded = config.load("spans")?;
//! assert_eq!(loaded.options().processing_interval, Some(Duration::from_millis(250)));
//! assert_eq!(loaded.options().processing_batch_size, Some(BatchSize::Table));
//! assert_eq!(
//!     loaded.source("processing_interval"),
//!     Some("environment variable TIDEFALL_SPANS_PROCESSING_INTERVAL")
//! );
//! assert_eq!(loaded.source("capacity"), Some("TOML text, table [spans]"));
//!
//! let queue = Queue::<u64>::builder()
//!     .name("spans")
//!     .capacity(100) // an explicit call: it wins over the TOML text
//!     .config(config)
//!     .partitions(1) // before or after `.config(..)`
//!     .processor(|batch: Vec<u64>| assert!(batch.len() <= 100))
//!     .start()?;
//! queue.push_many(0..100).unwrap();
//! assert!(queue.push(100).is_err()); // the capacity of 100, from code
//! queue.stop()?;
//!
//! // A bad value names the option and its layer.
//! std::env::set_var("TIDEFALL_SPANS_PROCESSING_INTERVAL", "5 parsecs");
//! let error = Queue::<u64>::builder()
//!     .name("spans")
//!     .config(Config::new().env())
//!     .processor(|_: Vec<u64>| {})
//!     .start()
//!     .unwrap_err();
//! let tidefall::Error::InvalidOption { option, reason } = error else { unreachable!() };
//! assert_eq!(option, "processing_interval");
//! assert!(reason.contains("5 parsecs"));
//! assert!(reason.ends_with("(from environment variable TIDEFALL_SPANS_PROCESSING_INTERVAL)"));
//! # Ok::<(), tidefall::Error>(())
//! ```

// figment does the reading: files and TOML text, the environment (prefix, key filter, value
// parsing), the choice of a buffer's table, and the `Provider` trait that lets users plug in
// JSON, YAML or their own sources. The merge of the layers is done here rather than by
// figment's own `merge`, for two reasons: figment merges before it deserializes, so a bad
// value shadowed by a higher layer would never be seen (we check every layer in full), and
// attributing a value to its layer through figment's metadata would mean matching provider
// names; reading each layer on its own gives the layer of every value and every error for
// free. The merge itself is a field-by-field `Option::or`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::error::Kind;
use figment::providers::{Env, Format, Toml};
use figment::value::Value;
use figment::{Figment, Provider};
use serde::{Deserialize, Serialize};

use crate::options::{Error, Options, Resolved};
use crate::BatchSize;

/// A buffer's options in serializable form: every option of the crate's option table that
/// is plain data, each `None` when not set.
///
/// Durations (de)serialize as humantime strings (`"5s"`, `"250ms"`), `processing_batch_size`
/// as a number of items or `"table"`. Unknown keys are refused (`deny_unknown_fields`), so a
/// misspelt option is an error that names it.
///
/// ```
/// use std::time::Duration;
/// use tidefall::config::BufferConfig;
///
/// let mut options = BufferConfig::default();
/// options.processing_interval = Some(Duration::from_millis(250));
/// options.capacity = Some(10_000);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BufferConfig {
    /// How many partitions writes spread over (1 to 65 536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<usize>,
    /// Time between ticks (> 0), e.g. `"5s"`.
    #[serde(default, with = "duration", skip_serializing_if = "Option::is_none")]
    pub processing_interval: Option<Duration>,
    /// Items per processor call: a number (≥ 1) or `"table"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_batch_size: Option<BatchSize>,
    /// The longest a processing cycle may run (> 0), e.g. `"60s"`.
    #[serde(default, with = "duration", skip_serializing_if = "Option::is_none")]
    pub processing_timeout: Option<Duration>,
    /// A partition holding this many items (≥ 1) drains before its tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_threshold: Option<usize>,
    /// The longest a reached `drain_threshold` waits for its drain (> 0), e.g. `"1s"`.
    #[serde(default, with = "duration", skip_serializing_if = "Option::is_none")]
    pub drain_check_interval: Option<Duration>,
    /// The most items (or keys) each partition holds (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<usize>,
}

/// The options a layer may set; the discriminant is the bit in [`Explicit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opt {
    Partitions,
    ProcessingInterval,
    ProcessingBatchSize,
    ProcessingTimeout,
    DrainThreshold,
    DrainCheckInterval,
    Capacity,
}

impl Opt {
    const ALL: [Opt; 7] = [
        Opt::Partitions,
        Opt::ProcessingInterval,
        Opt::ProcessingBatchSize,
        Opt::ProcessingTimeout,
        Opt::DrainThreshold,
        Opt::DrainCheckInterval,
        Opt::Capacity,
    ];

    /// The option's keys, which are its builder methods' names.
    const NAMES: [&'static str; 7] = [
        "partitions",
        "processing_interval",
        "processing_batch_size",
        "processing_timeout",
        "drain_threshold",
        "drain_check_interval",
        "capacity",
    ];

    fn name(self) -> &'static str {
        Opt::NAMES[self as usize]
    }

    fn named(name: &str) -> Option<Opt> {
        Opt::ALL.into_iter().find(|opt| opt.name() == name)
    }
}

/// The options set by explicit builder calls, which config layers never override.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Explicit(u8);

impl Explicit {
    /// Marks `opt` as set by a builder call.
    pub(crate) fn insert(&mut self, opt: Opt) {
        self.0 |= 1 << opt as u8;
    }

    fn contains(self, opt: Opt) -> bool {
        self.0 & (1 << opt as u8) != 0
    }
}

/// `to = from` where `from` is set; whether it was.
fn overlay<T: Copy>(to: &mut Option<T>, from: Option<T>) -> bool {
    if from.is_some() {
        *to = from;
    }
    from.is_some()
}

impl BufferConfig {
    /// Copies `opt` from `upper` where `upper` sets it; whether it did.
    fn overlay(&mut self, upper: &BufferConfig, opt: Opt) -> bool {
        match opt {
            Opt::Partitions => overlay(&mut self.partitions, upper.partitions),
            Opt::ProcessingInterval => {
                overlay(&mut self.processing_interval, upper.processing_interval)
            }
            Opt::ProcessingBatchSize => {
                overlay(&mut self.processing_batch_size, upper.processing_batch_size)
            }
            Opt::ProcessingTimeout => {
                overlay(&mut self.processing_timeout, upper.processing_timeout)
            }
            Opt::DrainThreshold => overlay(&mut self.drain_threshold, upper.drain_threshold),
            Opt::DrainCheckInterval => {
                overlay(&mut self.drain_check_interval, upper.drain_check_interval)
            }
            Opt::Capacity => overlay(&mut self.capacity, upper.capacity),
        }
    }

    /// Sets the options this sets on `options`, except those in `explicit`.
    fn apply_to(&self, options: &mut Options, explicit: Explicit) {
        let keep = |opt| !explicit.contains(opt);
        let runtime = &mut options.runtime;
        if let (Some(v), true) = (self.partitions, keep(Opt::Partitions)) {
            options.partitions = Some(v);
        }
        if let (Some(v), true) = (self.processing_interval, keep(Opt::ProcessingInterval)) {
            runtime.processing_interval = v;
        }
        if let (Some(v), true) = (self.processing_batch_size, keep(Opt::ProcessingBatchSize)) {
            runtime.processing_batch_size = v;
        }
        if let (Some(v), true) = (self.processing_timeout, keep(Opt::ProcessingTimeout)) {
            runtime.processing_timeout = v;
        }
        if let (Some(v), true) = (self.drain_threshold, keep(Opt::DrainThreshold)) {
            runtime.drain_threshold = Some(v);
        }
        if let (Some(v), true) = (self.drain_check_interval, keep(Opt::DrainCheckInterval)) {
            runtime.drain_check_interval = v;
        }
        if let (Some(v), true) = (self.capacity, keep(Opt::Capacity)) {
            options.capacity = Some(v);
        }
    }
}

/// An optional duration as a humantime string (`"5s"`, `"1m 30s"`). humantime-serde writes
/// it; the reading is ours only to keep humantime's reason in the error (humantime-serde
/// drops it): `invalid duration "5 parsecs": unknown time unit "parsecs", ..`.
mod duration {
    use std::fmt;
    use std::time::Duration;

    use humantime_serde::re::humantime;
    use serde::de::{Deserializer, Error, Visitor};
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(duration, serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        deserializer.deserialize_option(Humantime)
    }

    struct Humantime;

    impl<'de> Visitor<'de> for Humantime {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration with its unit, such as \"5s\" or \"250ms\"")
        }

        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<Self::Value, E> {
            humantime::parse_duration(text)
                .map(Some)
                .map_err(|e| E::custom(format_args!("invalid duration {text:?}: {e}")))
        }
    }
}

impl Serialize for BatchSize {
    /// `Items(n)` as the number `n`, `Table` as the string `"table"`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            BatchSize::Items(n) => serializer.serialize_u64(n as u64),
            BatchSize::Table => serializer.serialize_str("table"),
        }
    }
}

impl<'de> Deserialize<'de> for BatchSize {
    /// A number of items (also as a string of digits) or `"table"` (in any case); the
    /// format must be self-describing.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BatchSizeVisitor)
    }
}

struct BatchSizeVisitor;

impl serde::de::Visitor<'_> for BatchSizeVisitor {
    type Value = BatchSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of items or \"table\"")
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<BatchSize, E> {
        usize::try_from(n)
            .map(BatchSize::Items)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(n), &self))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<BatchSize, E> {
        u64::try_from(n)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
            .and_then(|n| self.visit_u64(n))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<BatchSize, E> {
        if s.eq_ignore_ascii_case("table") {
            return Ok(BatchSize::Table);
        }
        s.trim()
            .parse()
            .map(BatchSize::Items)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(s), &self))
    }
}

/// The layers of a buffer's configuration; attach it with the builders' `config(..)`.
///
/// Cheap to clone (providers are shared), and one `Config` may serve several buffers: each
/// reads its own table and variables, by its name. The layers are read when the buffer
/// starts (or by [`load`](Config::load)), not when they are added. See the [module
/// docs](self) for the precedence and the error rules.
///
/// ```
/// use tidefall::config::Config;
/// use tidefall::HashMap;
///
/// fn start_gauges() -> Result<HashMap<String, f64>, tidefall::Error> {
///     HashMap::builder()
///         .name("gauges")
///         .config(Config::new().file("tidefall.toml").env()) // a missing file is no error
///         .processor(|_: Vec<tidefall::Entry<String, f64>>| {})
///         .start()
/// }
/// start_gauges()?.stop()?;
/// # Ok::<(), tidefall::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Config {
    layers: Vec<Layer>,
    env: bool,
}

/// One config layer, below the environment.
#[derive(Clone)]
enum Layer {
    Options(BufferConfig),
    Toml(Arc<str>),
    File { path: PathBuf, required: bool },
    Provider(Arc<dyn Provider + Send + Sync>),
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for layer in &self.layers {
            match layer {
                Layer::Options(options) => list.entry(options),
                Layer::Toml(_) => list.entry(&"TOML text"),
                Layer::File { path, required } => {
                    list.entry(&format_args!("file {path:?} (required: {required})"))
                }
                Layer::Provider(provider) => {
                    list.entry(&format_args!("provider {}", describe(&provider.metadata())))
                }
            };
        }
        if self.env {
            list.entry(&"TIDEFALL_<NAME>_* environment variables");
        }
        list.finish()
    }
}

impl Config {
    /// No layers: the code defaults and the builder's calls only.
    pub const fn new() -> Self {
        Config {
            layers: Vec::new(),
            env: false,
        }
    }

    /// A layer of options given as a value, for whichever buffer the config is attached to
    /// (no table, no name needed): a service's own defaults (add it first, so that files and
    /// the environment override it), or a [`BufferConfig`] that the service deserialized
    /// from its own configuration.
    pub fn options(mut self, options: BufferConfig) -> Self {
        self.layers.push(Layer::Options(options));
        self
    }

    /// A layer of TOML text holding a table per buffer name, e.g. a config embedded with
    /// `include_str!`.
    pub fn toml(mut self, text: impl Into<String>) -> Self {
        self.layers.push(Layer::Toml(text.into().into()));
        self
    }

    /// A layer read from a TOML file holding a table per buffer name. A relative path is
    /// taken from the working directory when the buffer starts (no parent directories are
    /// searched). A missing file is an empty layer, so that a service runs on its defaults
    /// without one; use [`file_required`](Config::file_required) to refuse that. A file that
    /// exists but cannot be read or parsed is an error.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.layers.push(Layer::File {
            path: path.into(),
            required: false,
        });
        self
    }

    /// As [`file`](Config::file), but a missing file fails `start()` with
    /// `Error::InvalidOption { option: "config", .. }`.
    pub fn file_required(mut self, path: impl Into<PathBuf>) -> Self {
        self.layers.push(Layer::File {
            path: path.into(),
            required: true,
        });
        self
    }

    /// A layer from any [figment](https://docs.rs/figment) (0.10) provider, read like a
    /// config file: a table per buffer name. This is how JSON, YAML or a custom source plug
    /// in, e.g. `.provider(figment::providers::Json::file("tidefall.json"))` with figment's
    /// `json` feature. Errors name the provider by its metadata.
    pub fn provider(mut self, provider: impl Provider + Send + Sync + 'static) -> Self {
        self.layers.push(Layer::Provider(Arc::new(provider)));
        self
    }

    /// Reads the buffer's `TIDEFALL_<NAME>_<OPTION>` environment variables (see [`env_var`])
    /// on top of every other layer, wherever this call sits in the chain. Values are parsed
    /// as in a file: `TIDEFALL_SPANS_CAPACITY=10000`, `TIDEFALL_SPANS_PROCESSING_INTERVAL=1s`,
    /// `TIDEFALL_SPANS_PROCESSING_BATCH_SIZE=table`. Variables for other keys are ignored.
    pub fn env(mut self) -> Self {
        self.env = true;
        self
    }

    /// The options these layers give the buffer named `name`, each with the layer it came
    /// from: what `start()` applies under the builder's explicit calls. Every layer is
    /// checked as `start()` checks it, so this fails where `start()` would fail on a layer.
    pub fn load(&self, name: &str) -> Result<Loaded, Error> {
        if name.is_empty() {
            return Err(invalid("name", "must not be empty".to_owned()));
        }
        self.load_for(Some(name))
    }

    /// Whether a layer is chosen by the buffer's name.
    fn needs_name(&self) -> bool {
        self.env
            || self
                .layers
                .iter()
                .any(|layer| !matches!(layer, Layer::Options(_)))
    }

    fn load_for(&self, name: Option<&str>) -> Result<Loaded, Error> {
        let name = match name {
            Some(name) => name,
            None if self.needs_name() => {
                return Err(invalid(
                    "name",
                    "a config with a file, TOML text, a provider or the environment needs the \
                     buffer's name: it selects the buffer's table and its TIDEFALL_<NAME>_* \
                     variables"
                        .to_owned(),
                ))
            }
            None => "",
        };
        let mut loaded = Loaded::default();
        for layer in &self.layers {
            let (options, origin) = match layer {
                Layer::Options(options) => {
                    (options.clone(), Origin::Fixed("Config::options".into()))
                }
                Layer::Toml(text) => {
                    let figment = Figment::from(Toml::string(text));
                    read_table(figment, "TOML text".to_owned(), name)?
                }
                Layer::File { path, required } => read_file(path, *required, name)?,
                Layer::Provider(provider) => {
                    let figment = Figment::from(Shared(Arc::clone(provider)));
                    read_table(figment, describe(&provider.metadata()), name)?
                }
            };
            loaded.overlay(options, &origin, name)?;
        }
        if self.env {
            let origin = Origin::Env {
                prefix: env_prefix(name),
            };
            let env = Env::prefixed(&env_prefix(name)).only(&Opt::NAMES);
            let options = Figment::from(env)
                .extract::<BufferConfig>()
                .map_err(|e| origin.figment_error(e))?;
            loaded.overlay(options, &origin, name)?;
        }
        Ok(loaded)
    }
}

/// An `Arc`'d provider, as a provider.
struct Shared(Arc<dyn Provider + Send + Sync>);

impl Provider for Shared {
    fn metadata(&self) -> figment::Metadata {
        self.0.metadata()
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        self.0.data()
    }

    fn profile(&self) -> Option<figment::Profile> {
        self.0.profile()
    }
}

/// A provider as named in errors: `JSON file tidefall.json`.
fn describe(metadata: &figment::Metadata) -> String {
    match &metadata.source {
        Some(source) => format!("{} {source}", metadata.name),
        None => metadata.name.to_string(),
    }
}

/// The options of the buffer `name` in a TOML file, and their layer; an empty layer for a
/// missing file, unless it is required.
fn read_file(path: &Path, required: bool, name: &str) -> Result<(BufferConfig, Origin), Error> {
    let what = format!("config file {}", path.display());
    match std::fs::read_to_string(path) {
        Ok(text) => read_table(Figment::from(Toml::string(&text)), what, name),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok((BufferConfig::default(), Origin::table(what, name)))
        }
        Err(e) => {
            let reason = match e.kind() {
                std::io::ErrorKind::NotFound => "the file does not exist".to_owned(),
                _ => format!("cannot read the file: {e}"),
            };
            Err(Origin::Fixed(what).error("config", reason))
        }
    }
}

/// The options in the table `name` of `figment` (a source named `what`), and their layer;
/// an empty layer when it has no such table.
fn read_table(figment: Figment, what: String, name: &str) -> Result<(BufferConfig, Origin), Error> {
    match figment.find_value(name) {
        Ok(Value::Dict(..)) => {
            let origin = Origin::table(what, name);
            match figment.focus(name).extract::<BufferConfig>() {
                Ok(options) => Ok((options, origin)),
                Err(e) => Err(origin.figment_error(e)),
            }
        }
        Ok(_) => {
            Err(Origin::Fixed(what).error("config", format!("`{name}` must be a table of options")))
        }
        Err(e) if e.missing() => Ok((BufferConfig::default(), Origin::table(what, name))),
        // The source itself is unreadable: a parse error, say.
        Err(e) => Err(Origin::Fixed(what).figment_error(e)),
    }
}

/// Where a layer's values come from, as errors and [`Loaded::source`] name it.
enum Origin {
    Fixed(String),
    Env { prefix: String },
}

impl Origin {
    /// A keyed layer: `config file tidefall.toml, table [spans]`.
    fn table(what: String, name: &str) -> Origin {
        Origin::Fixed(format!("{what}, table [{name}]"))
    }

    /// The layer of `option` (a builder-method name or `"config"`).
    fn describe(&self, option: &str) -> String {
        match self {
            Origin::Fixed(what) => what.clone(),
            Origin::Env { prefix } => match Opt::named(option) {
                Some(opt) => format!(
                    "environment variable {prefix}{}",
                    opt.name().to_ascii_uppercase()
                ),
                None => format!("environment variables {prefix}*"),
            },
        }
    }

    fn error(&self, option: &'static str, reason: String) -> Error {
        invalid(option, format!("{reason} (from {})", self.describe(option)))
    }

    /// `error` with this layer added to its reason.
    fn annotate(&self, error: Error) -> Error {
        match error {
            Error::InvalidOption { option, reason } => self.error(option, reason),
            other => other,
        }
    }

    /// A figment error (a parse error, an unknown key, a value of the wrong type) as an
    /// `InvalidOption`: the option when the error names one, `"config"` otherwise.
    fn figment_error(&self, error: figment::Error) -> Error {
        if let Kind::UnknownField(key, _) = &error.kind {
            return self.error(
                "config",
                format!(
                    "unknown option `{key}`; the options are {}",
                    Opt::NAMES.join(", ")
                ),
            );
        }
        let option = error
            .path
            .last()
            .and_then(|key| Opt::named(key))
            .map_or("config", Opt::name);
        self.error(option, error.kind.to_string().trim_end().to_owned())
    }
}

fn invalid(option: &'static str, reason: String) -> Error {
    Error::InvalidOption { option, reason }
}

/// `TIDEFALL_<NAME>_`.
fn env_prefix(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("TIDEFALL_{name}_")
}

/// The environment variable that sets `option` of the buffer named `buffer`, as
/// [`Config::env`] reads it: `TIDEFALL_<NAME>_<OPTION>`, where `<NAME>` is the name
/// upper-cased with every character other than an ASCII letter or digit turned into `_`.
///
/// ```
/// use tidefall::config::env_var;
/// assert_eq!(env_var("spans", "processing_interval"), "TIDEFALL_SPANS_PROCESSING_INTERVAL");
/// assert_eq!(env_var("billing-events.v2", "capacity"), "TIDEFALL_BILLING_EVENTS_V2_CAPACITY");
/// ```
pub fn env_var(buffer: &str, option: &str) -> String {
    format!("{}{}", env_prefix(buffer), option.to_ascii_uppercase())
}

/// The options a [`Config`] gives one buffer, merged over its layers, with the layer each
/// came from; see [`Config::load`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    options: BufferConfig,
    sources: [Option<String>; 7],
}

impl Loaded {
    /// The merged options; `None` where no layer sets an option.
    pub fn options(&self) -> &BufferConfig {
        &self.options
    }

    /// The merged options, by value.
    pub fn into_options(self) -> BufferConfig {
        self.options
    }

    /// The layer that set `option` (a builder-method name such as `"capacity"`), e.g.
    /// `"config file tidefall.toml, table [spans]"` or `"environment variable
    /// TIDEFALL_SPANS_CAPACITY"`; `None` where no layer sets it, or for an unknown option.
    pub fn source(&self, option: &str) -> Option<&str> {
        self.sources[Opt::named(option)? as usize].as_deref()
    }

    /// Checks `upper`, a layer's options, and lays it over these.
    fn overlay(&mut self, upper: BufferConfig, origin: &Origin, name: &str) -> Result<(), Error> {
        check(&upper, name, origin)?;
        for opt in Opt::ALL {
            if self.options.overlay(&upper, opt) {
                self.sources[opt as usize] = Some(origin.describe(opt.name()));
            }
        }
        Ok(())
    }
}

/// The ranges of a layer's options, checked as `start()` checks the builder's.
fn check(options: &BufferConfig, name: &str, origin: &Origin) -> Result<(), Error> {
    let mut probe = Options {
        name: Some(if name.is_empty() { "unnamed" } else { name }.to_owned()),
        ..Options::default()
    };
    options.apply_to(&mut probe, Explicit::default());
    probe.checked().map(drop).map_err(|e| origin.annotate(e))
}

/// `Options::resolve` with a config attached: the config's layers under the explicit calls,
/// then the usual checks, whose errors now name the layer (`from code`).
pub(crate) fn resolve(mut options: Options) -> Result<Resolved, Error> {
    let code = Origin::Fixed("code".to_owned());
    let Some(config) = options.config.take() else {
        return options.checked();
    };
    if options.name.as_deref() == Some("") {
        return options.checked().map_err(|e| code.annotate(e));
    }
    let loaded = config.load_for(options.name.as_deref())?;
    let explicit = options.explicit;
    loaded.options.apply_to(&mut options, explicit);
    options.checked().map_err(|e| code.annotate(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_prefix_maps_the_name() {
        assert_eq!(env_prefix("spans"), "TIDEFALL_SPANS_");
        assert_eq!(env_prefix("a-b.c d9"), "TIDEFALL_A_B_C_D9_");
        assert_eq!(env_prefix("é"), "TIDEFALL___");
    }

    #[test]
    fn option_names_match_their_keys() {
        for (i, opt) in Opt::ALL.into_iter().enumerate() {
            assert_eq!(opt as usize, i);
            assert_eq!(Opt::named(opt.name()), Some(opt));
        }
        assert_eq!(Opt::named("name"), None);
    }

    /// A config may live in a `static` and travel into a lazily run init function.
    #[test]
    fn config_is_send_and_sync() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Config>();
        send_sync::<Loaded>();
    }

    #[test]
    fn explicit_tracks_each_option() {
        let mut explicit = Explicit::default();
        explicit.insert(Opt::Capacity);
        assert!(explicit.contains(Opt::Capacity));
        assert!(!explicit.contains(Opt::Partitions));
    }
}
