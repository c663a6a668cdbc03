//! The [`Processor`] trait: what a buffer hands its batches to.

use std::fmt::Display;

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
