//! Async processors (the `tokio` feature): a batch's future runs on a given tokio runtime,
//! and `processing_timeout` cancels it.
//!
//! The engine calls processors on its rayon pool. An async processor's call spawns the
//! batch's future on the runtime, wrapped in [`tokio::time::timeout_at`] at the cycle's
//! deadline, and the pool thread waits for the task. At the deadline the future is dropped
//! (cancelled: it stops at its current `.await`, and its destructors run), the call returns
//! `Err`, and the engine fails the cycle as a timeout: `ProcessingFailed` with reason
//! `Timeout`, the batch and the cycle's unprocessed batches counted in `Stats::failed`.
//! Unlike a synchronous call, nothing keeps running past the timeout.

use std::future::Future;
use std::time::Instant;

use tokio::runtime::Handle;

use crate::processor::{ProcessOutcome, Processor};

/// A [`Processor`] made of an async function, run on `runtime`.
pub(crate) struct AsyncProcessor<F> {
    runtime: Handle,
    process: F,
}

impl<F> AsyncProcessor<F> {
    pub(crate) fn new(runtime: Handle, process: F) -> Self {
        AsyncProcessor { runtime, process }
    }

    /// Runs the future `process` makes of `batch` on the runtime until it ends, or until
    /// `deadline`, where it is cancelled.
    fn run<B, Fut, R>(&self, batch: B, deadline: Option<Instant>) -> Result<(), String>
    where
        F: Fn(B) -> Fut,
        Fut: Future<Output = R> + Send + 'static,
        R: ProcessOutcome + Send + 'static,
    {
        let future = (self.process)(batch);
        let task = self.runtime.spawn(async move {
            match deadline {
                // `timeout_at` is built inside the task, where the runtime's timer is in
                // context (building it outside one panics).
                Some(deadline) => {
                    tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), future)
                        .await
                        .ok()
                }
                None => Some(future.await),
            }
        });
        // Waiting for a task needs no driver, so this works on any runtime that is running;
        // pool threads are outside every runtime context, where `block_on` is allowed.
        match self.runtime.block_on(task) {
            Ok(Some(outcome)) => outcome.into_result(),
            Ok(None) => Err("timeout: the future was cancelled at processing_timeout".to_owned()),
            // The engine reports it as the processor's panic, with its message.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => Err("the tokio runtime shut down before the batch was processed".to_owned()),
        }
    }
}

impl<B, F, Fut, R> Processor<B> for AsyncProcessor<F>
where
    B: 'static,
    F: Fn(B) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: ProcessOutcome + Send + 'static,
{
    fn process(&self, batch: B) -> Result<(), String> {
        self.run(batch, None)
    }

    fn process_until(&self, batch: B, deadline: Instant) -> Result<(), String> {
        self.run(batch, Some(deadline))
    }
}
