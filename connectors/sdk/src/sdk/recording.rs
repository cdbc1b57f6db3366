//! A sink for testing sources: it keeps every input it is given, accepts what parsed and rejects what did not,
//! and can fail one chosen submission the way an unavailable bus would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{Accepted, BatchReport, RawInput, RecordSink, RejectReason, Rejected, SinkError};

/// A [`RecordSink`] that records what it gets. Use it to test a transport without a hub.
#[derive(Debug, Default)]
pub struct RecordingSink {
    inputs: Mutex<Vec<RawInput>>,
    submits: AtomicUsize,
    /// The submission (1-based) that fails with a [`SinkError`], if any.
    fail_on_submit: Option<usize>,
}

impl RecordingSink {
    /// A sink that accepts every parsed input.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink whose `submit`-th submission (counting from 1) fails, recording nothing.
    pub fn failing_on(submit: usize) -> Self {
        Self {
            fail_on_submit: Some(submit),
            ..Self::default()
        }
    }

    /// Every input received so far, in order.
    pub fn inputs(&self) -> Vec<RawInput> {
        self.inputs.lock().map(|i| i.clone()).unwrap_or_default()
    }

    /// The parsed JSON of every input that parsed, in order.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.inputs()
            .into_iter()
            .filter_map(|i| i.parsed.ok())
            .collect()
    }

    /// How many submissions there were (the failed one included).
    pub fn submits(&self) -> usize {
        self.submits.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` inputs arrived; panics (for tests) after `patience`, listing what did.
    pub async fn wait_for(&self, count: usize, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let inputs = self.inputs();
            if inputs.len() >= count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {patience:?} for {count} inputs, got {:?}",
                inputs
                    .iter()
                    .map(|i| format!("{}: {:?}", i.origin, i.parsed))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[async_trait]
impl RecordSink for RecordingSink {
    async fn submit(&self, batch: Vec<RawInput>) -> Result<BatchReport, SinkError> {
        let n = self.submits.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_on_submit == Some(n) {
            return Err(SinkError(format!("injected failure of submission {n}")));
        }
        let mut report = BatchReport::default();
        for (index, input) in batch.iter().enumerate() {
            match &input.parsed {
                Ok(_) => report.accepted.push(Accepted {
                    index,
                    record_id: input.origin.clone(),
                    schema: "test".into(),
                }),
                Err(message) => report.rejected.push(Rejected {
                    index,
                    reason: RejectReason {
                        stage: "parse",
                        code: "unreadable_input".into(),
                        field: None,
                        message: message.clone(),
                    },
                }),
            }
        }
        if let Ok(mut inputs) = self.inputs.lock() {
            inputs.extend(batch);
        }
        Ok(report)
    }
}
