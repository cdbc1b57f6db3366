//! The edge's buffer: what its connectors read waits here, on the edge's own embedded bus, until the hub has
//! acknowledged it (store-and-forward, 断点续传).
//!
//! Each connector's originals go to `raw.<connector>` on the edge's bus — encrypted at rest like the hub's
//! `raw.` topics — one partition, so a connector's offsets are one sequence the hub acknowledges. The sources
//! hand their batches to a [`BufferSink`]: it answers once the batch is durable on the edge's disk, so a source
//! that has its answer may move its cursor on, and nothing read is lost if the edge stops.
//!
//! The buffer has a limit ([`BufferLimits`]): past the alarm level the edge warns (its log, its status on the
//! hub's console); at the limit [`BufferSink`] refuses new batches, so sources wait and retry — the department's
//! systems keep their data, nothing is dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::Notify;
use tracing::warn;
use unsilo_bus::{Bus, FetchRequest, Record, TopicSpec};
use unsilo_connectors::sdk::{BatchReport, RawInput, RecordSink, SinkError};
use unsilo_schemas::names::{raw_topic, HEADER_ORIGIN};

use crate::link::protocol::LinkRecord;

/// The header holding how the edge's transport decoded an original (its JSON), when it could.
pub const HEADER_PARSED: &str = "unsilo.edge.parsed";
/// The header holding why the edge's transport could not decode an original.
pub const HEADER_PARSE_ERROR: &str = "unsilo.edge.parse_error";

/// How much the buffer may hold.
#[derive(Clone, Copy, Debug)]
pub struct BufferLimits {
    /// Bytes waiting (not yet acknowledged) at which new input is refused.
    pub max_bytes: u64,
    /// The percentage of `max_bytes` at which the alarm is raised.
    pub alarm_percent: u8,
}

/// Per connector: what was read, forwarded and is waiting.
#[derive(Debug, Default)]
pub struct ConnectorCounts {
    /// Originals read since start.
    pub read: AtomicU64,
    /// Originals the hub acknowledged since start.
    pub forwarded: AtomicU64,
    /// Errors since start.
    pub errors: AtomicU64,
    /// The last error.
    pub last_error: Mutex<Option<String>>,
}

impl ConnectorCounts {
    /// Counts an error and keeps its message.
    pub fn error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(message);
        }
    }
}

/// The buffer shared by the sinks (which append) and the forwarder (which drops what the hub acknowledged).
pub struct Buffer {
    bus: Arc<dyn Bus>,
    limits: BufferLimits,
    /// Bytes waiting, all connectors.
    waiting_bytes: AtomicU64,
    /// Per connector: next offset the hub has not acknowledged, as the edge knows it.
    acknowledged: Mutex<BTreeMap<String, u64>>,
    counts: BTreeMap<String, Arc<ConnectorCounts>>,
    alarm: AtomicBool,
    /// Wakes the forwarder when something was appended.
    pub appended: Notify,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("waiting_bytes", &self.waiting_bytes)
            .finish_non_exhaustive()
    }
}

/// The group name under which the edge keeps, on its own bus, where the hub's acknowledgement stands.
const ACK_GROUP: &str = "edge.link";

/// What one buffered original weighs against the limit: its bytes and its decoded form.
fn weight(record: &Record) -> u64 {
    (record.value.as_ref().map_or(0, Vec::len)
        + record.headers.iter().map(|h| h.value.len()).sum::<usize>()) as u64
}

impl Buffer {
    /// Opens the buffer of `connectors` on `bus`: creates their topics and counts what is still waiting
    /// (after the position last acknowledged).
    pub async fn open(
        bus: Arc<dyn Bus>,
        connectors: &[String],
        limits: BufferLimits,
    ) -> Result<Arc<Self>, unsilo_bus::Error> {
        let mut acknowledged = BTreeMap::new();
        let mut waiting = 0u64;
        for c in connectors {
            let topic = raw_topic(c);
            bus.create_topic(&TopicSpec::new(&topic, 1)).await?;
            let acked = bus
                .committed_offsets(ACK_GROUP, &topic)
                .await?
                .first()
                .copied()
                .flatten()
                .unwrap_or(0);
            let end = bus.end_offsets(&topic).await?.first().copied().unwrap_or(0);
            let mut next = acked;
            while next < end {
                let read = bus
                    .fetch(&FetchRequest::new(
                        &topic,
                        0,
                        next,
                        1000,
                        std::time::Duration::ZERO,
                    ))
                    .await?;
                let Some(last) = read.last() else { break };
                next = last.position.offset + 1;
                waiting += read.iter().map(|r| weight(&r.record)).sum::<u64>();
            }
            acknowledged.insert(c.clone(), acked);
        }
        let buffer = Arc::new(Self {
            bus,
            limits,
            waiting_bytes: AtomicU64::new(waiting),
            acknowledged: Mutex::new(acknowledged),
            counts: connectors
                .iter()
                .map(|c| (c.clone(), Arc::default()))
                .collect(),
            alarm: AtomicBool::new(false),
            appended: Notify::new(),
        });
        buffer.check_alarm();
        Ok(buffer)
    }

    /// The counts of a connector.
    pub fn counts(&self, connector: &str) -> Option<Arc<ConnectorCounts>> {
        self.counts.get(connector).cloned()
    }

    /// Bytes waiting.
    pub fn waiting_bytes(&self) -> u64 {
        self.waiting_bytes.load(Ordering::Relaxed)
    }

    /// The limits.
    pub fn limits(&self) -> BufferLimits {
        self.limits
    }

    /// Whether the alarm level is passed.
    pub fn alarm(&self) -> bool {
        self.alarm.load(Ordering::Relaxed)
    }

    fn alarm_bytes(&self) -> u64 {
        self.limits.max_bytes / 100 * u64::from(self.limits.alarm_percent)
    }

    fn check_alarm(&self) {
        let waiting = self.waiting_bytes();
        let raised = waiting >= self.alarm_bytes();
        if raised && !self.alarm.swap(true, Ordering::Relaxed) {
            warn!(
                waiting_bytes = waiting,
                limit_bytes = self.limits.max_bytes,
                "The edge's buffer passed {}% of its limit: the link to the hub is down or too slow. At the limit the edge stops taking input.",
                self.limits.alarm_percent
            );
        } else if !raised && self.alarm.swap(false, Ordering::Relaxed) {
            tracing::info!(
                waiting_bytes = waiting,
                "The edge's buffer is below its alarm level again."
            );
        }
    }

    /// The next offset the hub has not acknowledged, for `connector`.
    pub fn acknowledged(&self, connector: &str) -> u64 {
        self.acknowledged
            .lock()
            .ok()
            .and_then(|a| a.get(connector).copied())
            .unwrap_or(0)
    }

    /// The end of `connector`'s buffer (the next offset to be written).
    pub async fn end(&self, connector: &str) -> Result<u64, unsilo_bus::Error> {
        Ok(self
            .bus
            .end_offsets(&raw_topic(connector))
            .await?
            .first()
            .copied()
            .unwrap_or(0))
    }

    /// Up to `max` waiting originals of `connector` from `from` on, as link records, and their weight.
    pub async fn waiting(
        &self,
        connector: &str,
        from: u64,
        max: usize,
    ) -> Result<(Vec<LinkRecord>, u64), unsilo_bus::Error> {
        let read = self
            .bus
            .fetch(&FetchRequest::new(
                &raw_topic(connector),
                0,
                from,
                max,
                std::time::Duration::ZERO,
            ))
            .await?;
        let mut weight_sum = 0;
        let mut out = Vec::with_capacity(read.len());
        for r in read {
            weight_sum += weight(&r.record);
            let header = |name: &str| {
                r.record
                    .header(name)
                    .map(|h| String::from_utf8_lossy(h).into_owned())
            };
            let (parsed, parse_error) = match header(HEADER_PARSED) {
                Some(json) => match serde_json::from_str(&json) {
                    Ok(v) => (Some(v), None),
                    Err(e) => (
                        None,
                        Some(format!("the edge could not read back its decoding: {e}")),
                    ),
                },
                None => (
                    None,
                    Some(header(HEADER_PARSE_ERROR).unwrap_or_else(|| "not decoded".into())),
                ),
            };
            out.push(LinkRecord {
                offset: r.position.offset,
                original_base64: base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    r.record.value.as_deref().unwrap_or_default(),
                ),
                parsed,
                parse_error,
                origin: header(HEADER_ORIGIN).unwrap_or_default(),
                read_at_ms: r.record.timestamp_ms,
            });
        }
        Ok((out, weight_sum))
    }

    /// The read time of `connector`'s oldest waiting original, if one waits.
    pub async fn oldest_waiting_ms(&self, connector: &str) -> Option<i64> {
        let from = self.acknowledged(connector);
        self.bus
            .fetch(&FetchRequest::new(
                &raw_topic(connector),
                0,
                from,
                1,
                std::time::Duration::ZERO,
            ))
            .await
            .ok()?
            .first()
            .map(|r| r.record.timestamp_ms)
    }

    /// Records that the hub acknowledged `connector` up to `next_offset` (`weight` bytes newly acknowledged,
    /// `records` originals): keeps the position on the edge's bus and drops what is no longer needed.
    pub async fn acknowledge(
        &self,
        connector: &str,
        next_offset: u64,
        records: u64,
        weight: u64,
    ) -> Result<(), unsilo_bus::Error> {
        let topic = raw_topic(connector);
        self.bus
            .commit_offsets(ACK_GROUP, &topic, &[(0, next_offset)])
            .await?;
        if let Ok(mut a) = self.acknowledged.lock() {
            a.insert(connector.to_owned(), next_offset);
        }
        self.waiting_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                Some(w.saturating_sub(weight))
            })
            .ok();
        if let Some(c) = self.counts.get(connector) {
            c.forwarded.fetch_add(records, Ordering::Relaxed);
        }
        self.check_alarm();
        self.bus.remove_before(&topic, 0, next_offset).await?;
        Ok(())
    }

    /// Starts `connector` over from offset `from` (the hub knows another buffer: this one replaced a lost
    /// data directory, so everything in it is sent, and record ids keep the hub from taking any twice).
    pub fn restart_from(&self, connector: &str, from: u64) {
        if let Ok(mut a) = self.acknowledged.lock() {
            a.insert(connector.to_owned(), from);
        }
    }
}

/// The sink an edge's sources submit to: their originals go into the buffer, durably.
pub struct BufferSink {
    connector: String,
    buffer: Arc<Buffer>,
}

impl BufferSink {
    /// The sink of `connector`.
    pub fn new(connector: &str, buffer: Arc<Buffer>) -> Self {
        Self {
            connector: connector.to_owned(),
            buffer,
        }
    }
}

#[async_trait]
impl RecordSink for BufferSink {
    async fn submit(&self, batch: Vec<RawInput>) -> Result<BatchReport, SinkError> {
        let counts = self.buffer.counts(&self.connector);
        if self.buffer.waiting_bytes() >= self.buffer.limits.max_bytes {
            let message = format!(
                "the edge's buffer is full ({} bytes wait for the hub): the batch is refused, the source keeps it and tries again",
                self.buffer.waiting_bytes()
            );
            if let Some(c) = &counts {
                c.error(message.clone());
            }
            return Err(SinkError(message));
        }
        let now = unsilo_bus::now_ms();
        let n = batch.len() as u64;
        let records: Vec<Record> = batch
            .into_iter()
            .map(|input| {
                let mut record = Record {
                    key: None,
                    value: Some(input.original),
                    headers: Vec::new(),
                    timestamp_ms: now,
                };
                record = record.with_header(HEADER_ORIGIN, input.origin.into_bytes());
                match input.parsed {
                    Ok(value) => record.with_header(HEADER_PARSED, value.to_string().into_bytes()),
                    Err(why) => record.with_header(HEADER_PARSE_ERROR, why.into_bytes()),
                }
            })
            .collect();
        let added: u64 = records.iter().map(weight).sum();
        self.buffer
            .bus
            .publish(&raw_topic(&self.connector), records)
            .await
            .map_err(|e| SinkError(format!("writing to the edge's buffer: {e}")))?;
        self.buffer
            .waiting_bytes
            .fetch_add(added, Ordering::Relaxed);
        if let Some(c) = &counts {
            c.read.fetch_add(n, Ordering::Relaxed);
        }
        self.buffer.check_alarm();
        self.buffer.appended.notify_one();
        // Nothing is normalised here: the hub does that, with the definition it signed.
        Ok(BatchReport::default())
    }
}
