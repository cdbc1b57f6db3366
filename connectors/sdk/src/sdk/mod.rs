//! The connector SDK: what a source connector is, and what the runtime gives it.
//!
//! A connector is *config → build → run*: a typed configuration builds a [`Source`], and the runtime calls
//! [`Source::run`] with a [`SourceContext`] holding
//!
//! - a [`RecordSink`]: hand it a batch of [`RawInput`]s exactly as the source sent them; it normalises them
//!   (raw contract → mapping → validators → Avro) and answers only once the accepted records (`std.<schema>`), the
//!   originals (`raw.<connector>`) and the rejects (`dlq.<connector>`) are all durable on the bus;
//! - a [`CheckpointStore`] on the bus, where a polling source keeps its cursor *after* the sink has answered, so a
//!   restart resumes from the last durable point (at-least-once, duplicates carry the same `record_id`);
//! - a [`Shutdown`] signal.
//!
//! Errors carry a [`RetryHint`], so the runtime — not each connector — decides about retries and backoff.

mod checkpoint;
mod error;
mod input;
mod recording;

pub use checkpoint::{CheckpointStore, MemoryCheckpointStore};
pub use error::{RetryHint, SinkError, SourceError};
pub use input::{Accepted, BatchReport, JsonText, RawInput, RejectReason, Rejected};
pub use recording::RecordingSink;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

/// Takes raw input from a connector and makes it durable: normalised records, originals and rejects.
#[async_trait]
pub trait RecordSink: Send + Sync {
    /// Normalises and publishes a batch. Returns once every outcome is durable; the report says, per input
    /// (by index), whether it was accepted (with its `record_id`) or rejected (with the reason). A rejected
    /// input is not an error: it is on the dead-letter topic with its original bytes.
    async fn submit(&self, batch: Vec<RawInput>) -> Result<BatchReport, SinkError>;

    /// As [`Self::submit`], for records that arrived as JSON text: a sink may parse each one where it normalises
    /// it (the hub's does, on the thread that normalises it). By default, each is parsed here first.
    async fn submit_json(&self, batch: Vec<JsonText>) -> Result<BatchReport, SinkError> {
        self.submit(batch.into_iter().map(RawInput::from).collect())
            .await
    }
}

/// A shutdown signal that many tasks can wait on.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    /// For [`Shutdown::never`]: the sender, kept alive so the signal never fires.
    _never: Option<Arc<watch::Sender<bool>>>,
}

/// The side that triggers a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx, _never: None })
    }

    /// A signal that never fires (for tests and one-shot tools).
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        Shutdown {
            rx,
            _never: Some(Arc::new(tx)),
        }
    }

    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes when shutdown is requested (or the trigger is dropped).
    pub async fn wait(&mut self) {
        while !*self.rx.borrow_and_update() {
            if self.rx.changed().await.is_err() {
                return;
            }
        }
    }
}

impl ShutdownTrigger {
    /// Requests shutdown.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

/// What the runtime hands a running source.
#[derive(Clone)]
pub struct SourceContext {
    /// The connector's name, e.g. `grid` (also the suffix of its `raw.` and `dlq.` topics).
    pub connector: String,
    /// Where raw input goes.
    pub sink: Arc<dyn RecordSink>,
    /// Where the source keeps its cursor.
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// Fires when the hub shuts down.
    pub shutdown: Shutdown,
}

impl std::fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceContext")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

/// A running source: pulls or receives records from one source system and submits them to the sink.
#[async_trait]
pub trait Source: Send {
    /// Runs until `ctx.shutdown` fires (then returns `Ok`) or a failure (then returns an error whose hint tells
    /// the runtime whether to restart it after a backoff). Must checkpoint only after the sink has answered.
    async fn run(&mut self, ctx: SourceContext) -> Result<(), SourceError>;
}
