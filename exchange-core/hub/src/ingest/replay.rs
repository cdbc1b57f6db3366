//! Source replay: a connector's rejected originals (`dlq.<connector>`) run again through its current
//! definition — after a mapping fix or a code-table gap is closed. What passes lands on `std.` and `raw.` with
//! its normal record id; what still fails goes back on the dead-letter topic with its new reason. Each dead
//! letter taken is marked on `_unsilo.dlq-replayed`, so a second replay does not take it again.
//!
//! Only originals that are JSON (pushed, polled and table rows) can be replayed: a CSV or XLSX line needs its
//! file's header and encoding, which the dead letter does not keep; those are counted and left in place.
//!
//! Both keep a record's time: what is published again is stamped (on the bus and as `envelope.ingest_time`)
//! with when its original first entered the hub, so a subscription approved without history does not receive
//! data that came before its approval by way of a replay.
//!
//! A crash between the re-normalised write and the marks replays those entries again: they come out with the
//! same record ids, which subscribers already use to ignore a second copy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use unsilo_bus::{Bus, ConsumedRecord, ConsumerOptions, FetchRequest, Record, TopicSpec};
use unsilo_connectors::sdk::RawInput;
use unsilo_schemas::names::{
    dlq_topic, raw_topic, DLQ_REPLAYED_TOPIC, HEADER_ORIGIN, HEADER_REASON,
};

use super::BusSink;
use crate::control::{
    DeadLetterFilter, Renormalisation, SourceControl, SourceReplay, SourceReplayError,
};

/// Dead letters re-normalised per batch.
const BATCH: usize = 500;

/// The ingest stage's side of source replay: each connector's sink.
pub struct SourceReplayer {
    bus: Arc<dyn Bus>,
    sinks: HashMap<String, Arc<BusSink>>,
    /// Seals the replay marks; only sealed marks count (a forged mark cannot hide a dead letter from replay).
    seal: unsilo_bus::seal::RecordSeal,
}

impl std::fmt::Debug for SourceReplayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceReplayer")
            .field("connectors", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

fn failed(e: impl std::fmt::Display) -> SourceReplayError {
    SourceReplayError::Failed(e.to_string())
}

impl SourceReplayer {
    /// Replays through these sinks (by connector name), sealing its marks with `seal`.
    pub fn new(
        bus: Arc<dyn Bus>,
        sinks: HashMap<String, Arc<BusSink>>,
        seal: unsilo_bus::seal::RecordSeal,
    ) -> Self {
        Self { bus, sinks, seal }
    }

    /// The offsets of `connector`'s dead letters already replayed.
    async fn marked(&self, connector: &str) -> Result<HashSet<u64>, SourceReplayError> {
        let prefix = format!("{connector}/");
        let end: u64 = self
            .bus
            .end_offsets(DLQ_REPLAYED_TOPIC)
            .await
            .map_err(failed)?
            .iter()
            .sum();
        let mut consumer = self
            .bus
            .consumer(ConsumerOptions::replay(DLQ_REPLAYED_TOPIC))
            .await
            .map_err(failed)?;
        let mut marked = HashSet::new();
        let mut seen = 0u64;
        while seen < end {
            let batch = consumer
                .poll(5_000, Duration::from_millis(200))
                .await
                .map_err(failed)?;
            if batch.is_empty() {
                break;
            }
            for r in &batch {
                seen = seen.max(r.position.offset + 1);
                if self.seal.check(DLQ_REPLAYED_TOPIC, &r.record).is_err() {
                    tracing::error!(
                        offset = r.position.offset,
                        "Replay mark refused: only the hubs of this deployment write replay marks."
                    );
                    continue;
                }
                let key = r.record.key.as_deref().map(String::from_utf8_lossy);
                if let Some(offset) = key
                    .as_deref()
                    .and_then(|k| k.strip_prefix(&prefix))
                    .and_then(|o| o.parse().ok())
                {
                    marked.insert(offset);
                }
            }
        }
        Ok(marked)
    }
}

/// The original of a dead letter or raw record as input again, when it is JSON; its origin says where it was
/// taken from.
fn input_again(record: &ConsumedRecord, taken_from: &str) -> Option<RawInput> {
    let original = record.record.value.clone().unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(&original).ok()?;
    let origin = record
        .record
        .header(HEADER_ORIGIN)
        .map(|o| String::from_utf8_lossy(o).into_owned())
        .unwrap_or_default();
    let at = &record.position;
    Some(RawInput::from_json_bytes(
        original,
        format!(
            "{origin} ({taken_from} {}/{}@{})",
            at.topic, at.partition, at.offset
        ),
    ))
}

/// A dead letter's reason code, if its reason header has one.
fn code_of(record: &ConsumedRecord) -> Option<String> {
    let reason: serde_json::Value =
        serde_json::from_slice(record.record.header(HEADER_REASON)?).ok()?;
    reason.get("code")?.as_str().map(str::to_owned)
}

#[async_trait::async_trait]
impl SourceControl for SourceReplayer {
    async fn replay_source_dead_letters(
        &self,
        connector: &str,
        filter: &DeadLetterFilter,
    ) -> Result<SourceReplay, SourceReplayError> {
        let sink = self
            .sinks
            .get(connector)
            .ok_or_else(|| SourceReplayError::UnknownConnector(connector.to_owned()))?;
        self.bus
            .create_topic(&TopicSpec::compacted(DLQ_REPLAYED_TOPIC))
            .await
            .map_err(failed)?;
        let marked = self.marked(connector).await?;
        let topic = dlq_topic(connector);
        // Only what is there now: what this replay rejects again lands after `end` and waits for the next one.
        let end = self
            .bus
            .end_offsets(&topic)
            .await
            .map_err(failed)?
            .first()
            .copied()
            .unwrap_or(0);
        let mut outcome = SourceReplay::default();
        let mut offset = 0;
        while offset < end {
            let read = FetchRequest::new(
                &topic,
                0,
                offset,
                BATCH.min((end - offset) as usize),
                Duration::ZERO,
            );
            let batch = self.bus.fetch(&read).await.map_err(failed)?;
            let Some(last) = batch.last() else { break };
            offset = last.position.offset + 1;
            let mut inputs = Vec::new();
            let mut taken = Vec::new();
            for r in batch.iter().filter(|r| r.position.offset < end) {
                let matches = filter
                    .code
                    .as_deref()
                    .is_none_or(|c| code_of(r).as_deref() == Some(c))
                    && filter
                        .since_ms
                        .is_none_or(|since| r.record.timestamp_ms >= since);
                if !matches {
                    continue;
                }
                if marked.contains(&r.position.offset) {
                    outcome.already_replayed += 1;
                    continue;
                }
                let Some(input) = input_again(r, "replayed from") else {
                    outcome.not_replayable += 1;
                    continue;
                };
                // Stamped with when the dead letter first came in, not now: a grant's window holds.
                inputs.push((input, r.record.timestamp_ms));
                taken.push(r.position.offset);
            }
            if inputs.is_empty() {
                continue;
            }
            let report = sink.submit_stamped(inputs).await.map_err(failed)?;
            outcome.taken += taken.len();
            outcome.accepted += report.accepted.len();
            outcome.rejected += report.rejected.len();
            let now = unsilo_bus::now_ms().to_string();
            let marks = taken
                .iter()
                .map(|o| {
                    self.seal.seal(
                        DLQ_REPLAYED_TOPIC,
                        Record::new(format!("{connector}/{o}"), now.clone()),
                    )
                })
                .collect();
            self.bus
                .publish(DLQ_REPLAYED_TOPIC, marks)
                .await
                .map_err(failed)?;
        }
        Ok(outcome)
    }

    async fn renormalise(
        &self,
        connector: &str,
        from_ms: i64,
        to_ms: Option<i64>,
    ) -> Result<Renormalisation, SourceReplayError> {
        let sink = self
            .sinks
            .get(connector)
            .ok_or_else(|| SourceReplayError::UnknownConnector(connector.to_owned()))?;
        let topic = raw_topic(connector);
        let ends = self.bus.end_offsets(&topic).await.map_err(failed)?;
        let in_range = |t: i64| t >= from_ms && to_ms.is_none_or(|to| t < to);
        let mut outcome = Renormalisation::default();
        for (partition, end) in ends.iter().enumerate() {
            let mut offset = 0;
            while offset < *end {
                let want = BATCH.min((end - offset) as usize);
                let read =
                    FetchRequest::new(&topic, partition as u32, offset, want, Duration::ZERO);
                let batch = self.bus.fetch(&read).await.map_err(failed)?;
                let Some(last) = batch.last() else { break };
                offset = last.position.offset + 1;
                let mut inputs = Vec::new();
                for r in batch.iter().filter(|r| in_range(r.record.timestamp_ms)) {
                    match input_again(r, "renormalised from") {
                        Some(input) => inputs.push((input, r.record.timestamp_ms)),
                        None => outcome.not_replayable += 1,
                    }
                }
                if inputs.is_empty() {
                    continue;
                }
                outcome.taken += inputs.len();
                let report = sink.renormalise(inputs).await.map_err(failed)?;
                outcome.accepted += report.accepted.len();
                outcome.rejected += report.rejected.len();
            }
        }
        Ok(outcome)
    }
}
