//! The [`Processor`] trait: what a buffer hands its batches to.

use std::fmt::Display;
use std::time::Instant;

/// Receives the batches of a buffer: `Vec<T>` for a `Queue<T>`.
///
/// Implemented for closures `Fn(B) -> R` where `R` is `()` or `Result<(), E>` with
/// `E: Display`; an `Err` counts as a failure of that batch (its items are counted in
/// `Stats::failed` and reported as `ProcessingFailed`), and so does a panic.
///
/// ```
/// use tidefall::Queue;
/// let queue = Queue::<String>::builder()
///     .processor(|batch: Vec<String>| -> Result<(), std::io::Error> {
///         for line in batch {
///             println!("{line}");
///         }
///         Ok(())
///     })
///     .start()?;
/// queue.push("hello".to_string()).unwrap();
/// queue.stop()?;
/// # Ok::<(), tidefall::Error>(())
/// ```
pub trait Processor<B>: Send + Sync + 'static {
    /// Processes one batch. `Err` carries the failure's description.
    fn process(&self, batch: B) -> Result<(), String>;

    /// Processes one batch of a cycle that must end by `deadline`: the cycle's start plus
    /// `processing_timeout`. This is what the engine calls.
    ///
    /// The default calls [`process`](Self::process) and ignores the deadline: a
    /// synchronous call cannot be pre-empted, so the engine's watchdog gives up on it
    /// instead (see the crate docs). A processor that can stop early (an async one, which
    /// the `tokio` feature cancels at the deadline; an exporter with a request timeout)
    /// gives up at `deadline` and returns `Err`: a call that returns `Err` at or after its
    /// deadline fails the cycle as a timeout, exactly as if the watchdog had fired.
    fn process_until(&self, batch: B, deadline: Instant) -> Result<(), String> {
        let _ = deadline;
        self.process(batch)
    }
}

/// What a processor closure may return: `()` or `Result<(), E: Display>`.
pub trait ProcessOutcome {
    /// The outcome as a result with the error's text.
    fn into_result(self) -> Result<(), String>;
}

impl ProcessOutcome for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> ProcessOutcome for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

impl<B, F, R> Processor<B> for F
where
    F: Fn(B) -> R + Send + Sync + 'static,
    R: ProcessOutcome,
{
    fn process(&self, batch: B) -> Result<(), String> {
        self(batch).into_result()
    }
}
