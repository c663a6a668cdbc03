//! What the fuzz targets share: the arbitrary options and updates, and the faults a
//! processor injects on purpose.

// Each target uses what it needs of this module.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use arbitrary::Arbitrary;
use tidefall::{BatchSize, Error, OptionsUpdate};

/// Every interval in the targets is at least an hour, so that no timer fires during a run:
/// only `flush` and `stop` start processing cycles.
pub const HOUR: Duration = Duration::from_secs(3600);

/// The payload of every panic a processor injects on purpose. It is raised with
/// `resume_unwind`, which skips the panic hook: libFuzzer's hook aborts on every panic,
/// caught or not, and these are meant to be caught by the buffer (that is what the targets
/// check). Every other panic still reaches libFuzzer's hook and is recorded as a crash.
pub const INJECTED: &str = "tidefall-fuzz: injected processor panic";

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the processor does with a batch holding an item (or entry) that carries it.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    None,
    /// The processor returns `Err`.
    Err,
    /// The processor panics (with [`INJECTED`]); wins over `Err` in the same batch.
    Panic,
}

/// What a processor call does after it recorded its batch, given the faults of its items.
pub fn outcome(faults: impl IntoIterator<Item = Fault>) -> Result<(), String> {
    match faults.into_iter().max() {
        Some(Fault::Panic) => std::panic::resume_unwind(Box::new(INJECTED)),
        Some(Fault::Err) => Err("injected error".to_owned()),
        Some(Fault::None) | None => Ok(()),
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Batch {
    /// Modulo 70; `Items(0)` is invalid.
    Items(u8),
    Table,
}

impl Batch {
    pub fn size(self) -> BatchSize {
        match self {
            Batch::Items(n) => BatchSize::Items(usize::from(n % 70)),
            Batch::Table => BatchSize::Table,
        }
    }
}

/// The lengths `len` items are cut into by `batch_size`.
pub fn chunk_lengths(len: usize, batch_size: BatchSize) -> Vec<usize> {
    match batch_size {
        BatchSize::Table if len == 0 => vec![],
        BatchSize::Table => vec![len],
        BatchSize::Items(n) => {
            let mut out = vec![n; len / n];
            let rest = len % n;
            if rest > 0 {
                out.push(rest);
            }
            out
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum Threshold {
    Off,
    Zero,
    /// Far above anything a run pushes: early drains would add rounds.
    Huge,
}

/// An `update_options` call. Durations are in hours; 0 is invalid.
#[derive(Arbitrary, Debug)]
pub struct Update {
    interval: Option<u8>,
    timeout: Option<u8>,
    pub batch: Option<Batch>,
    threshold: Option<Threshold>,
    check: Option<u8>,
}

fn hours(n: u8) -> Duration {
    HOUR * u32::from(n)
}

impl Update {
    pub fn to_options(&self) -> OptionsUpdate {
        let mut update = OptionsUpdate::default();
        if let Some(h) = self.interval {
            update = update.processing_interval(hours(h));
        }
        if let Some(h) = self.timeout {
            update = update.processing_timeout(hours(h));
        }
        if let Some(batch) = self.batch {
            update = update.processing_batch_size(batch.size());
        }
        if let Some(threshold) = &self.threshold {
            update = update.drain_threshold(match threshold {
                Threshold::Off => None,
                Threshold::Zero => Some(0),
                Threshold::Huge => Some(1 << 40),
            });
        }
        if let Some(h) = self.check {
            update = update.drain_check_interval(hours(h));
        }
        update
    }

    /// The options of this update that are out of range.
    pub fn invalid(&self) -> Vec<&'static str> {
        let mut invalid = Vec::new();
        if self.interval == Some(0) {
            invalid.push("processing_interval");
        }
        if self.timeout == Some(0) {
            invalid.push("processing_timeout");
        }
        if self.batch.map(Batch::size) == Some(BatchSize::Items(0)) {
            invalid.push("processing_batch_size");
        }
        if matches!(self.threshold, Some(Threshold::Zero)) {
            invalid.push("drain_threshold");
        }
        if self.check == Some(0) {
            invalid.push("drain_check_interval");
        }
        invalid
    }

    /// Checks what `update_options` returned; the batch size in force afterwards.
    pub fn check(&self, result: Result<(), Error>, batch_size: BatchSize) -> BatchSize {
        let invalid = self.invalid();
        if invalid.is_empty() {
            assert_eq!(result, Ok(()), "valid update refused: {self:?}");
            return self.batch.map_or(batch_size, Batch::size);
        }
        match result {
            Err(Error::InvalidOption { option, .. }) => assert!(
                invalid.contains(&option),
                "InvalidOption names {option}, invalid: {invalid:?}"
            ),
            other => panic!("invalid update {self:?} returned {other:?}"),
        }
        batch_size
    }
}

/// Checks what `start()` returned against the options known to be invalid; `None` when it
/// rightly refused them.
pub fn started<B>(result: Result<B, Error>, invalid: &[&'static str]) -> Option<B> {
    match result {
        Ok(buffer) => {
            assert!(invalid.is_empty(), "start() accepted invalid {invalid:?}");
            Some(buffer)
        }
        Err(Error::InvalidOption { option, .. }) => {
            assert!(
                invalid.contains(&option),
                "start() refused {option}, invalid: {invalid:?}"
            );
            None
        }
        Err(other) => panic!("start() failed: {other}"),
    }
}
