//! Following a control-plane topic: the loop that tails a one-partition topic into an in-memory view.
//!
//! The schema registry (`_unsilo.schemas`) and the control plane (`_unsilo.config`) both keep their state as a
//! compacted topic and a view materialised from it. [`follow`] is their shared tailing task: it polls, hands each
//! batch to the caller's `apply`, publishes the next offset to apply on a watch channel (writers wait on it for
//! read-your-writes), retries read errors with backoff, and ends when told to stop or when the bus closes.

use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, error, warn};

use super::{ConsumedRecord, Consumer, Error};

/// Tails `consumer` until `stop` turns true. `apply` receives every non-empty batch in order and returns the next
/// offset of the topic it has applied; that offset is published on `applied`. `what` names the topic in logs.
pub async fn follow<F>(
    mut consumer: Box<dyn Consumer>,
    mut apply: F,
    applied: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
    what: String,
) where
    F: FnMut(Vec<ConsumedRecord>) -> u64 + Send,
{
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            break;
        }
        let polled = tokio::select! {
            _ = stop.changed() => break,
            polled = consumer.poll(1000, Duration::from_millis(200)) => polled,
        };
        match polled {
            Ok(batch) => {
                failures = 0;
                if batch.is_empty() {
                    continue;
                }
                let next = apply(batch);
                applied.send_replace(next);
            }
            Err(Error::Closed) => {
                warn!(topic = %what, "Bus closed; stopped following the topic.");
                break;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                error!(topic = %what, error = %e, failures, "Reading the topic failed; retrying.");
                let backoff = Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)));
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
    // Dropping `applied` tells writers still waiting that no more records will be applied.
    debug!(topic = %what, "Stopped following the topic.");
}
