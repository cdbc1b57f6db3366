//! Ingest: the runtime side of the connector SDK.
//!
//! - [`BusSink`] is the [`RecordSink`] every connector submits to: it normalises each raw input with the
//!   connector's definition and publishes, in one go, the accepted records to `std.<schema>` (Confluent wire
//!   format, keyed by the source record id, with a `unsilo.record_id` header), their originals to
//!   `raw.<connector>`, and the rejects — original bytes and a machine-readable reason — to `dlq.<connector>`.
//!   It answers only when all three are durable — one atomic write on the embedded bus — and skips records whose
//!   id it accepted lately ([`recent`]), so a batch a source sends again after a lost answer is ingested once.
//! - [`BusCheckpoints`] keeps a connector's cursor on the compacted `_unsilo.offsets` topic.
//! - [`http_push`] is the HTTP ingest endpoint (`POST /ingest/{connector}`).
//! - [`start`](mod@start) starts the connectors a configuration names ([`start_connectors`]).

pub mod http_push;
pub mod recent;
pub mod replay;
pub mod runtime;
pub mod start;

pub use start::{load_definition, start_connectors, StartError, StartedConnectors};

use std::collections::HashMap;
use std::sync::Arc;
use unsilo_schemas::names::{
    dlq_topic, raw_topic, std_topic, HEADER_CONNECTOR, HEADER_ORIGIN, HEADER_REASON,
    HEADER_RECORD_ID, HEADER_SCHEMA, OFFSETS_TOPIC,
};

use async_trait::async_trait;
use futures::future::try_join_all;
use tokio::sync::Mutex;
use unsilo_connectors::definition::ConnectorDefinition;
use unsilo_connectors::sdk::{
    Accepted, BatchReport, CheckpointStore, JsonText, RawInput, RecordSink, Rejected, SinkError,
};

use unsilo_bus::wire;
use unsilo_bus::{Bus, ConsumerOptions, Header, Record, TopicSpec};
use unsilo_registry::Registry;

/// The sink connectors submit to: normalise, then publish to `std.`, `raw.` and `dlq.` topics durably.
pub struct BusSink {
    /// What turns a raw input into a record for `std.`, `raw.` or `dlq.`; shared with the blocking threads that
    /// normalise a batch's slices in parallel.
    normaliser: Arc<Normaliser>,
    bus: Arc<dyn Bus>,
    /// Where accepted / rejected counts go, if anywhere.
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The record ids accepted lately.
    recent: recent::RecentIds,
    /// How many slices a large batch is normalised in: the cores this process may use, asked once at open
    /// (on Linux the answer reads the cgroup's CPU quota from files).
    cores: usize,
}

impl std::fmt::Debug for BusSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusSink")
            .field("connector", &self.normaliser.connector)
            .finish_non_exhaustive()
    }
}

impl BusSink {
    /// Prepares a sink for one connector instance: registers its target schemas (idempotent) and creates its
    /// `std.`, `raw.` and `dlq.` topics.
    pub async fn open(
        connector: &str,
        definition: Arc<ConnectorDefinition>,
        bus: Arc<dyn Bus>,
        registry: &Registry,
        topics: &crate::config::TopicPlan,
    ) -> Result<Self, SinkError> {
        let mut schema_ids = HashMap::new();
        for schema in definition.target_schemas() {
            let id = registry
                .register(&schema.subject(), &schema.schema_string())
                .await
                .map_err(|e| SinkError(format!("registering {}: {e}", schema.subject())))?;
            let id = u32::try_from(id)
                .map_err(|_| SinkError(format!("registry gave a negative id {id}")))?;
            schema_ids.insert(schema.name().to_owned(), id);
            create(&*bus, &topics.topic(schema.topic())).await?;
        }
        create(&*bus, &topics.topic(raw_topic(connector))).await?;
        create(&*bus, &topics.single(dlq_topic(connector))).await?;
        let recent = recent::RecentIds::load(bus.as_ref(), connector)
            .await
            .map_err(|e| SinkError(format!("reading the recent record ids of {connector}: {e}")))?;
        Ok(Self {
            recent,
            normaliser: Arc::new(Normaliser {
                connector: connector.to_owned(),
                definition,
                schema_ids,
            }),
            bus,
            metrics: None,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        })
    }

    /// Counts accepted and rejected records in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The connector this sink serves.
    pub fn connector(&self) -> &str {
        &self.normaliser.connector
    }

    /// The names of the shared schemas its definition writes.
    pub fn target_schemas(&self) -> Vec<String> {
        self.normaliser
            .definition
            .target_schemas()
            .iter()
            .map(|s| s.name().to_owned())
            .collect()
    }
}

async fn create(bus: &dyn Bus, spec: &TopicSpec) -> Result<(), SinkError> {
    bus.create_topic(spec)
        .await
        .map_err(|e| SinkError(format!("creating topic {}: {e}", spec.name)))
}

/// A batch normalised, ready to publish: records per shared schema (for its `std.` topic), originals for `raw.`
/// and `dlq.`, and what became of each input.
#[derive(Default)]
struct Normalised {
    by_schema: HashMap<&'static str, Vec<Record>>,
    raw: Vec<Record>,
    dlq: Vec<Record>,
    report: BatchReport,
}

impl Normalised {
    /// Appends `later`, the normalisation of the inputs that followed this one's in the batch.
    fn append(&mut self, later: Normalised) {
        for (schema, records) in later.by_schema {
            self.by_schema.entry(schema).or_default().extend(records);
        }
        self.raw.extend(later.raw);
        self.dlq.extend(later.dlq);
        self.report.accepted.extend(later.report.accepted);
        self.report.rejected.extend(later.report.rejected);
    }
}

/// Inputs per slice below which a batch is normalised on the calling task: handing a slice to another thread
/// costs more than normalising a few records.
const PARALLEL_SLICE_MIN: usize = 64;

/// A connector's normalisation, without its bus: the definition and the registry ids of its target schemas.
struct Normaliser {
    connector: String,
    definition: Arc<ConnectorDefinition>,
    /// Registry id of each target schema, by schema name.
    schema_ids: HashMap<String, u32>,
}

impl Normaliser {
    /// Normalises `batch`, whose first input is number `first` of the submitted batch, without writing anything.
    /// Each input becomes a [`RawInput`] (JSON text is parsed) just before it is normalised, on this thread.
    fn normalise<I: Into<RawInput>>(
        &self,
        batch: Vec<I>,
        first: usize,
        now: i64,
    ) -> Result<Normalised, SinkError> {
        let mut out = Normalised {
            raw: Vec::with_capacity(batch.len()),
            ..Normalised::default()
        };
        let mut body = Vec::with_capacity(1024);
        for (index, input) in (first..).zip(batch) {
            let input: RawInput = input.into();
            body.clear();
            match self.definition.normalise_at(&input, now, &mut body) {
                Ok(n) => {
                    let Some(id) = self.schema_ids.get(n.schema.name()) else {
                        return Err(SinkError(format!(
                            "schema {} was not registered",
                            n.schema.name()
                        )));
                    };
                    let mut value = Vec::with_capacity(body.len() + wire::HEADER_LEN);
                    wire::encode_into(&mut value, *id, &body);
                    let headers = vec![
                        Header::new(HEADER_RECORD_ID, n.record_id.as_bytes()),
                        Header::new(HEADER_CONNECTOR, self.connector.as_bytes()),
                        Header::new(HEADER_SCHEMA, n.schema.name().as_bytes()),
                    ];
                    let mut raw_headers = Vec::with_capacity(headers.len() + 1);
                    raw_headers.extend_from_slice(&headers);
                    raw_headers.push(Header::new(HEADER_ORIGIN, input.origin.as_bytes()));
                    let key = n.key.into_bytes();
                    out.raw.push(Record {
                        key: Some(key.clone()),
                        value: Some(input.original),
                        headers: raw_headers,
                        timestamp_ms: now,
                    });
                    out.by_schema
                        .entry(n.schema.name())
                        .or_insert_with(|| Vec::with_capacity(out.raw.capacity()))
                        .push(Record {
                            key: Some(key),
                            value: Some(value),
                            headers,
                            timestamp_ms: now,
                        });
                    out.report.accepted.push(Accepted {
                        index,
                        record_id: n.record_id,
                        schema: n.schema.name().to_owned(),
                    });
                }
                Err(reason) => {
                    let reason_json = serde_json::to_vec(&reason).unwrap_or_default();
                    out.dlq.push(Record {
                        key: None,
                        value: Some(input.original),
                        headers: vec![
                            Header::new(HEADER_REASON, reason_json),
                            Header::new(HEADER_CONNECTOR, self.connector.as_bytes()),
                            Header::new(HEADER_ORIGIN, input.origin.as_bytes()),
                        ],
                        timestamp_ms: now,
                    });
                    out.report.rejected.push(Rejected { index, reason });
                }
            }
        }
        Ok(out)
    }
}

impl BusSink {
    /// Normalises a batch with the connector's definition, without writing anything: in slices on the blocking
    /// threads, one per core, so a large batch uses every core and the async workers stay free for I/O.
    async fn normalise<I>(&self, mut batch: Vec<I>) -> Result<Normalised, SinkError>
    where
        I: Into<RawInput> + Send + 'static,
    {
        let now = unsilo_bus::now_ms();
        let slices = self.cores.min(batch.len() / PARALLEL_SLICE_MIN);
        if slices <= 1 {
            return self.normaliser.normalise(batch, 0, now);
        }
        let per_slice = batch.len().div_ceil(slices);
        let mut tasks = Vec::with_capacity(slices);
        let mut first = 0;
        while !batch.is_empty() {
            let rest = batch.split_off(per_slice.min(batch.len()));
            let slice = std::mem::replace(&mut batch, rest);
            let normaliser = self.normaliser.clone();
            let start = first;
            first += slice.len();
            tasks.push(tokio::task::spawn_blocking(move || {
                normaliser.normalise(slice, start, now)
            }));
        }
        let mut out = Normalised::default();
        for task in tasks {
            let slice = task.await.map_err(|e| {
                SinkError(format!("normalising a slice of the batch failed: {e}"))
            })??;
            out.append(slice);
        }
        Ok(out)
    }

    /// Publishes each topic's records (in parallel).
    async fn publish(&self, publishes: Vec<(String, Vec<Record>)>) -> Result<(), SinkError> {
        let bus = &self.bus;
        try_join_all(publishes.into_iter().map(|(topic, records)| async move {
            bus.publish(&topic, records)
                .await
                .map_err(|e| SinkError(format!("publishing to {topic}: {e}")))
        }))
        .await?;
        Ok(())
    }

    /// Normalises inputs that entered the hub before, each at the time it first did (`(input, first_seen_ms)`):
    /// a record keeps that time — on the bus and as `envelope.ingest_time` — through re-normalisation and
    /// replay, so a grant's window (approval, `backfill_from`) is checked against when the data really came.
    async fn normalise_stamped(
        &self,
        batch: Vec<(RawInput, i64)>,
    ) -> Result<Normalised, SinkError> {
        let normaliser = self.normaliser.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Normalised::default();
            for (index, (input, first_seen_ms)) in batch.into_iter().enumerate() {
                out.append(normaliser.normalise(vec![input], index, first_seen_ms)?);
            }
            Ok(out)
        })
        .await
        .map_err(|e| SinkError(format!("normalising the batch failed: {e}")))?
    }

    /// Runs originals already on `raw.` through the current definition again, each stamped with the time it
    /// first entered the hub, and publishes only the normalised records to `std.` (with the same record ids as
    /// before for unchanged keys); originals that no longer pass are reported, not dead-lettered (their earlier
    /// record stays).
    pub async fn renormalise(&self, batch: Vec<(RawInput, i64)>) -> Result<BatchReport, SinkError> {
        let normalised = self.normalise_stamped(batch).await?;
        self.publish(
            normalised
                .by_schema
                .into_iter()
                .map(|(schema, records)| (std_topic(schema), records))
                .collect(),
        )
        .await?;
        Ok(normalised.report)
    }
}

#[async_trait]
impl RecordSink for BusSink {
    async fn submit(&self, batch: Vec<RawInput>) -> Result<BatchReport, SinkError> {
        self.ingest(batch).await
    }

    async fn submit_json(&self, batch: Vec<JsonText>) -> Result<BatchReport, SinkError> {
        self.ingest(batch).await
    }
}

impl BusSink {
    /// Normalises a batch and makes all of it durable in one write (see [`RecordSink::submit`]).
    async fn ingest<I>(&self, batch: Vec<I>) -> Result<BatchReport, SinkError>
    where
        I: Into<RawInput> + Send + 'static,
    {
        let normalised = self.normalise(batch).await?;
        self.write(normalised, Vec::new()).await
    }

    /// Ingests originals that entered the hub before (dead letters replayed), each stamped with the time it
    /// first did, as [`BusSink::submit`] does new ones.
    pub async fn submit_stamped(
        &self,
        batch: Vec<(RawInput, i64)>,
    ) -> Result<BatchReport, SinkError> {
        let normalised = self.normalise_stamped(batch).await?;
        self.write(normalised, Vec::new()).await
    }

    /// Ingests originals read elsewhere (an edge node's connector), each stamped with when it was read, and
    /// writes `with` — the link's acknowledged position — in the same write: on the embedded bus the records and
    /// the position are durable together or not at all, so a batch is never acknowledged without its records
    /// nor written twice because its acknowledgement was lost.
    pub async fn submit_linked(
        &self,
        batch: Vec<(RawInput, i64)>,
        with: Vec<(String, Vec<Record>)>,
    ) -> Result<BatchReport, SinkError> {
        let normalised = self.normalise_stamped(batch).await?;
        self.write(normalised, with).await
    }

    /// Makes a normalised batch — and `with`, written in the same write — durable in one write.
    async fn write(
        &self,
        normalised: Normalised,
        with: Vec<(String, Vec<Record>)>,
    ) -> Result<BatchReport, SinkError> {
        let Normalised {
            by_schema,
            raw,
            dlq,
            report,
        } = normalised;
        // Records accepted lately (a batch sent again after a lost answer) are answered, not written again.
        let fresh: Vec<bool> = self
            .recent
            .claim(report.accepted.iter().map(|a| a.record_id.as_str()));
        let mut publishes: Vec<(String, Vec<Record>)> = Vec::with_capacity(by_schema.len() + 2);
        for (schema, records) in by_schema {
            // A schema's records are its accepted inputs, in the order accepted.
            let of_schema = report
                .accepted
                .iter()
                .zip(&fresh)
                .filter(|(a, _)| a.schema == schema)
                .map(|(_, new)| *new);
            let records = keep_fresh(records, of_schema);
            if !records.is_empty() {
                publishes.push((std_topic(schema), records));
            }
        }
        // `raw` holds one original per accepted input, in the order accepted.
        let raw = keep_fresh(raw, fresh.iter().copied());
        if !raw.is_empty() {
            publishes.push((raw_topic(self.connector()), raw));
        }
        if !dlq.is_empty() {
            publishes.push((dlq_topic(self.connector()), dlq));
        }
        publishes.extend(with);
        if !publishes.is_empty() {
            // One write for the batch: on the embedded bus all of it is durable with one fsync, or none.
            if let Err(e) = self.bus.publish_all(publishes).await {
                self.recent.release(
                    report
                        .accepted
                        .iter()
                        .zip(&fresh)
                        .filter(|(_, new)| **new)
                        .map(|(a, _)| a.record_id.as_str()),
                );
                return Err(SinkError(format!("publishing the batch: {e}")));
            }
        }
        if let Some(m) = &self.metrics {
            m.record_ingest(
                self.connector(),
                report.accepted.len(),
                report.rejected.len(),
            );
        }
        Ok(report)
    }
}

/// The records whose flag in `fresh` (one per record, in the same order) is set. A record without a flag is
/// kept: at worst written twice, never lost.
fn keep_fresh(records: Vec<Record>, fresh: impl Iterator<Item = bool>) -> Vec<Record> {
    records
        .into_iter()
        .zip(fresh.chain(std::iter::repeat(true)))
        .filter_map(|(record, new)| new.then_some(record))
        .collect()
}

/// A connector's checkpoint on the compacted `_unsilo.offsets` topic.
pub struct BusCheckpoints {
    connector: String,
    bus: Arc<dyn Bus>,
    /// The last value this process saved or loaded (a connector instance runs in one process at a time).
    cached: Mutex<Option<Option<serde_json::Value>>>,
    /// Where saved checkpoints are shown (the console).
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Seals what is saved; only sealed checkpoints are loaded.
    seal: unsilo_bus::seal::RecordSeal,
}

impl std::fmt::Debug for BusCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusCheckpoints")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

impl BusCheckpoints {
    /// The checkpoint store of `connector`; creates the offsets topic if needed. Checkpoints are sealed with
    /// `seal`, and only sealed ones are loaded: a checkpoint someone else appended (to make a source skip
    /// records) is refused and logged, and the source resumes from its newest sealed one.
    pub async fn open(
        connector: &str,
        bus: Arc<dyn Bus>,
        seal: unsilo_bus::seal::RecordSeal,
    ) -> Result<Self, SinkError> {
        create(&*bus, &TopicSpec::compacted(OFFSETS_TOPIC)).await?;
        Ok(Self {
            connector: connector.to_owned(),
            bus,
            cached: Mutex::new(None),
            metrics: None,
            seal,
        })
    }

    /// Shows each saved checkpoint in `metrics`' live flows.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Replays the offsets topic for the latest checkpoint of this connector.
    async fn replay(&self) -> Result<Option<serde_json::Value>, unsilo_bus::Error> {
        let end: u64 = self.bus.end_offsets(OFFSETS_TOPIC).await?.iter().sum();
        let mut latest = None;
        if end == 0 {
            return Ok(None);
        }
        let mut consumer = self
            .bus
            .consumer(ConsumerOptions::replay(OFFSETS_TOPIC))
            .await?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let batch = consumer
                .poll(1_000, std::time::Duration::from_millis(200))
                .await?;
            let mut reached = false;
            for r in &batch {
                reached |= r.position.offset + 1 >= end;
                if r.record.key.as_deref() == Some(self.connector.as_bytes()) {
                    if let Err(why) = self.seal.check(OFFSETS_TOPIC, &r.record) {
                        tracing::error!(connector = %self.connector, offset = r.position.offset, why, "Checkpoint refused: only the hubs of this deployment write checkpoints.");
                        continue;
                    }
                    latest = match &r.record.value {
                        Some(v) => serde_json::from_slice(v).ok(),
                        None => None,
                    };
                }
            }
            if reached || (batch.is_empty() && tokio::time::Instant::now() >= deadline) {
                return Ok(latest);
            }
        }
    }
}

#[async_trait]
impl CheckpointStore for BusCheckpoints {
    async fn load(&self) -> Result<Option<serde_json::Value>, SinkError> {
        let mut cached = self.cached.lock().await;
        if let Some(v) = cached.as_ref() {
            return Ok(v.clone());
        }
        let v = self
            .replay()
            .await
            .map_err(|e| SinkError(format!("reading checkpoints: {e}")))?;
        *cached = Some(v.clone());
        Ok(v)
    }

    async fn save(&self, cursor: &serde_json::Value) -> Result<(), SinkError> {
        let value = serde_json::to_vec(cursor).map_err(|e| SinkError(e.to_string()))?;
        self.bus
            .publish(
                OFFSETS_TOPIC,
                vec![self
                    .seal
                    .seal(OFFSETS_TOPIC, Record::new(self.connector.as_bytes(), value))],
            )
            .await
            .map_err(|e| SinkError(format!("saving checkpoint: {e}")))?;
        *self.cached.lock().await = Some(Some(cursor.clone()));
        if let Some(m) = &self.metrics {
            m.flows.checkpoint(&self.connector, cursor);
        }
        Ok(())
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;
    use unsilo_bus::seal::RecordSeal;

    #[tokio::test]
    async fn a_checkpoint_no_hub_sealed_is_refused_and_the_sealed_one_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let bus: Arc<dyn Bus> =
            Arc::new(unsilo_bus::embedded::EmbeddedBus::open(dir.path()).unwrap());
        let seal = RecordSeal::new("hub", [5; 32]);
        let store = BusCheckpoints::open("grid", bus.clone(), seal.clone())
            .await
            .unwrap();
        store
            .save(&serde_json::json!({ "cursor": 42 }))
            .await
            .unwrap();
        // Someone appends a checkpoint far ahead, to make the source skip records.
        bus.publish(
            OFFSETS_TOPIC,
            vec![Record::new("grid", br#"{"cursor":999999}"#.to_vec())],
        )
        .await
        .unwrap();
        let fresh = BusCheckpoints::open("grid", bus, seal).await.unwrap();
        assert_eq!(
            fresh.load().await.unwrap(),
            Some(serde_json::json!({ "cursor": 42 }))
        );
    }
}
