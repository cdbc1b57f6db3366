//! Signed checkpoints of a hub's audit chain: `(hub, seq, hash, time)` signed with the hub's key, written to
//! `<audit topic>.checkpoints` every N entries and every T seconds while the chain grows.
//!
//! A hash chain shows edits, removals in the middle and (signed) forgeries, but not the removal of its newest
//! entries: what is left is still a valid chain. A checkpoint vouches that the chain reached `seq` with `hash`
//! at `time`; a chain that ends before it was cut off, and one whose entry at `seq` has another hash was
//! rewritten. Checkpoints kept only beside the log can be cut off with it, so they are also exportable
//! (`unsilo audit checkpoints`, JSON lines) to be anchored elsewhere — another system, a notary, paper — and
//! handed back to `unsilo audit verify --checkpoints FILE`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use unsilo_schemas::names::CHECKPOINTS_SUFFIX;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{read_from, signing, AuditError, AuditLog};
use unsilo_bus::{Bus, Record};

/// The checkpoints topic of an audit topic.
pub fn topic_of(audit_topic: &str) -> String {
    format!("{audit_topic}{CHECKPOINTS_SUFFIX}")
}

/// A signed statement that a hub's chain reached `seq` with `hash` at `time_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The hub (its chain).
    pub hub: String,
    /// The chain's seq at the checkpoint.
    pub seq: u64,
    /// The hash of the entry at `seq`.
    pub hash: String,
    /// When it was signed (ms since the epoch).
    pub time_ms: i64,
    /// The hub's signature (hex) over [`Checkpoint::message`] of the fields above: SM2 with SM3 (signer id
    /// `1234567812345678`, DER) under gm, Ed25519 under international.
    pub signature: String,
}

impl Checkpoint {
    /// What the signature covers, byte for byte: the UTF-8 of `unsilo-audit-checkpoint-v1`, NUL, the hub id,
    /// NUL, the seq in decimal, NUL, the hash as stored, NUL, the time in decimal milliseconds.
    pub fn message(hub: &str, seq: u64, hash: &str, time_ms: i64) -> Vec<u8> {
        format!("unsilo-audit-checkpoint-v1\0{hub}\0{seq}\0{hash}\0{time_ms}").into_bytes()
    }

    /// Whether the signature is `public_hex`'s.
    pub fn verify(&self, public_hex: &str) -> bool {
        signing::verify_hex(
            public_hex,
            &Self::message(&self.hub, self.seq, &self.hash, self.time_ms),
            &self.signature,
        )
    }

    /// Reads checkpoints from JSON lines (an export); errors name the line.
    pub fn parse_lines(text: &str) -> Result<Vec<Checkpoint>, NotACheckpoint> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| {
                serde_json::from_str(l).map_err(|e| NotACheckpoint {
                    line: n + 1,
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}

/// A line of a checkpoint export that is not a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: not a checkpoint: {reason}")]
pub struct NotACheckpoint {
    /// Line number, from 1.
    pub line: usize,
    /// What the JSON reader said.
    pub reason: String,
}

/// Every readable checkpoint on the checkpoints topic of `audit_topic`, in log order (none if it is missing).
pub async fn read(bus: &dyn Bus, audit_topic: &str) -> Result<Vec<Checkpoint>, AuditError> {
    let topic = topic_of(audit_topic);
    if bus.partition_count(&topic).await?.is_none() {
        return Ok(Vec::new());
    }
    Ok(read_from(bus, &topic, 0)
        .await?
        .iter()
        .filter_map(|r| serde_json::from_slice(r.record.value.as_deref()?).ok())
        .collect())
}

/// The newest checkpoint of `hub` signed by `public_hex` on the checkpoints topic of `audit_topic`, read
/// backwards from the end (a hub's checkpoints only move forward, so the first found is the newest): what a hub
/// starts verifying its chain from, without reading every checkpoint it ever wrote.
pub async fn newest_of(
    bus: &dyn Bus,
    audit_topic: &str,
    hub: &str,
    public_hex: &str,
) -> Result<Option<Checkpoint>, AuditError> {
    let topic = topic_of(audit_topic);
    if bus.partition_count(&topic).await?.is_none() {
        return Ok(None);
    }
    super::scan_back(bus, &topic, |window| {
        let newest = window
            .iter()
            .rev()
            .filter_map(|r| serde_json::from_slice::<Checkpoint>(r.record.value.as_deref()?).ok())
            .find(|c| c.hub == hub && c.verify(public_hex));
        match newest {
            Some(c) => std::ops::ControlFlow::Break(Some(c)),
            None => std::ops::ControlFlow::Continue(()),
        }
    })
    .await
}

impl AuditLog {
    /// Notes an append up to `seq`: wakes the checkpoint task only once `checkpoint_every_entries` have passed
    /// since the last checkpoint (two atomic loads on the append path, nothing more).
    pub(super) fn note_appended(&self, seq: u64) {
        let since = seq.saturating_sub(self.checkpointed.load(Ordering::Relaxed));
        if since >= self.checkpoint_every.load(Ordering::Relaxed) {
            self.checkpoint_due.notify_one();
        }
    }

    /// Signs a checkpoint of the chain's head and writes it, if the chain moved since the last one.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let _writing = self.checkpointing.lock().await;
        let head = self.head().await;
        if head.seq <= self.checkpointed.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let time_ms = unsilo_bus::now_ms();
        let hub = self.hub().to_owned();
        let signature = self
            .key()
            .sign_hex(&Checkpoint::message(&hub, head.seq, &head.hash, time_ms));
        let checkpoint = Checkpoint {
            hub,
            seq: head.seq,
            hash: head.hash,
            time_ms,
            signature,
        };
        let value =
            serde_json::to_vec(&checkpoint).map_err(|e| AuditError::Encode(e.to_string()))?;
        let mut record = Record::new(checkpoint.hub.as_bytes(), value);
        record.timestamp_ms = time_ms;
        self.bus()
            .publish(&topic_of(self.topic()), vec![record])
            .await?;
        self.checkpointed.store(checkpoint.seq, Ordering::Relaxed);
        debug!(seq = checkpoint.seq, "Audit checkpoint signed.");
        Ok(Some(checkpoint))
    }

    /// Writes checkpoints every `every_entries` entries and every `interval` while the chain grows, until `stop`
    /// turns true; then writes a last one.
    pub async fn run_checkpoints(
        self: Arc<Self>,
        every_entries: u64,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        self.checkpoint_every
            .store(every_entries, Ordering::Relaxed);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = ticker.tick() => {}
                () = self.checkpoint_due.notified() => {}
            }
            if let Err(e) = self.checkpoint().await {
                warn!(error = %e, "Writing an audit checkpoint failed; retrying at the next one.");
            }
        }
        if let Err(e) = self.checkpoint().await {
            warn!(error = %e, "Writing the last audit checkpoint failed.");
        }
    }
}
