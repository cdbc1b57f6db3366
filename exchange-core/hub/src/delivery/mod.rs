//! Delivery: from a subscription's topic (`sub.<agency>.<subscription>`) to the agency, over its channel.
//!
//! # Layout
//!
//! - this file: [`start`] and the [`DeliveryStage`], which run one worker per active subscription whose channel needs one
//!   (webhook, SQL, Kafka to another cluster) and stops it when the subscription stops delivering; the worker
//!   loop over a [`DeliverySink`]; channel preparation at activation; delivery-DLQ replay; the decoder of
//!   released records and their JSON form.
//! - [`sink`]: the [`DeliverySink`] trait every push channel implements, and [`open_sink`].
//! - [`webhook`]: HTTPS POST with HMAC signature, idempotency key, backoff with jitter and a circuit breaker.
//! - [`sql`]: upsert by record id into the subscriber's PostgreSQL or MySQL table.
//! - [`pull`]: the pull API — cursor batches, server-sent events, acknowledgements.
//!
//! Every channel is at-least-once: a worker commits its consumer group's offsets only after the batch is
//! delivered durably (2xx from the webhook, committed SQL transaction, acknowledged Kafka produce), or — for a
//! record that cannot be delivered after every retry — durably written to the subscription's delivery DLQ
//! (`dlq.sub.<agency>.<subscription>`), from where `unsilo dlq replay` puts it back on the subscription's topic.
//!
//! Before each batch and each record a worker checks that the subscription is still delivering (active, not
//! expired): a revocation stops delivery before the next record, even of records already on the topic.
//!
//! A Kafka channel without `bootstrap_servers` needs no worker: on a Kafka bus the subscription's topic is itself
//! the delivery, read by the agency with its own consumer group.

pub mod pull;
pub mod sink;
pub mod sql;
pub mod webhook;

pub use sink::{open_sink, BatchOutcome, BatchRun, DeliverySink};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use unsilo_schemas::names::{HEADER_BACKFILL, HEADER_REASON, HEADER_RETAIN_DAYS};

use apache_avro::types::Value;
use apache_avro::Schema;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::control::{ChannelUnavailable, ControlPlane, DeliveryControl};
use crate::secrets::HubSecret;
use async_trait::async_trait;
use unsilo_bus::{Bus, ConsumedRecord, ConsumerOptions, Record};
use unsilo_policy::model::{Channel, Subscription};
use unsilo_registry::decode::FrameDecoder;
use unsilo_registry::Registry;

/// Errors of delivery.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] unsilo_bus::Error),
    /// The subscriber's database failed.
    #[error("sql: {0}")]
    Sql(#[from] sql::SqlError),
    /// The webhook client could not be used.
    #[error("webhook: {0}")]
    Webhook(#[from] webhook::WebhookError),
    /// A released record could not be decoded with its view schema.
    #[error("record {record_id}: {message}")]
    Decode {
        /// The record.
        record_id: String,
        /// What failed.
        message: String,
    },
    /// The view schema is unknown to the registry.
    #[error("view schema: {0}")]
    Schema(String),
    /// The egress policy refuses the channel's target.
    #[error("egress: {0}")]
    Refused(String),
    /// The worker was told to stop.
    #[error("stopped")]
    Stopped,
}

/// Decodes released records (Confluent frames with a view schema id) with the registry's parsed schemas.
#[derive(Clone)]
pub struct ViewDecoder {
    frames: FrameDecoder,
}

impl std::fmt::Debug for ViewDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewDecoder").finish_non_exhaustive()
    }
}

impl ViewDecoder {
    /// A decoder over `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            frames: FrameDecoder::new(registry),
        }
    }

    /// The schema with registry id `id`.
    pub fn schema(&self, id: u32) -> Result<unsilo_registry::AvroSchema, DeliveryError> {
        self.frames
            .schema(id)
            .map_err(|e| DeliveryError::Schema(e.to_string()))
    }

    /// Decodes a framed view record into its schema id and Avro value.
    pub fn decode(&self, record_id: &str, framed: &[u8]) -> Result<(u32, Value), DeliveryError> {
        self.frames
            .decode(framed, None)
            .map_err(|e| DeliveryError::Decode {
                record_id: record_id.to_owned(),
                message: e.to_string(),
            })
    }

    /// The JSON form of a released record, as the webhook posts it and the pull API returns it:
    /// `{"subscription", "record_id", "schema_id", "record"}` — plus `retain_days` and `retain_until` (RFC 3339)
    /// when the grant limits how long the agency may keep it, and `history: true` for a record released from
    /// history (a backfill, or the catch-up after a pause) — the record rendered by the one
    /// [`unsilo_schemas::avro::to_json`] (timestamps as RFC 3339 UTC text, dates as `YYYY-MM-DD`, bytes as hex).
    pub fn released(
        &self,
        subscription: &str,
        consumed: &ConsumedRecord,
    ) -> Result<ReleasedRecord, DeliveryError> {
        let record_id = consumed.record.record_id();
        let framed = consumed.record.value.as_deref().unwrap_or_default();
        let (schema_id, value) = self.decode(&record_id, framed)?;
        let record = unsilo_schemas::avro::to_json(&value).map_err(|e| DeliveryError::Decode {
            record_id: record_id.clone(),
            message: e.to_string(),
        })?;
        // Data life: how long the agency may keep it, and until when.
        let retain_days = consumed
            .record
            .header(HEADER_RETAIN_DAYS)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|d| d.parse::<u64>().ok());
        let retain_until = retain_days
            .and(sink::retain_until_ms(&consumed.record))
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        Ok(ReleasedRecord {
            subscription: subscription.to_owned(),
            record_id,
            schema_id,
            record,
            retain_days,
            retain_until,
            history: consumed.record.header(HEADER_BACKFILL).is_some(),
        })
    }
}

/// A released record's JSON form, as the webhook posts it and the pull API and its event stream give it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ReleasedRecord {
    /// The subscription.
    pub subscription: String,
    /// The record's id.
    pub record_id: String,
    /// The view schema's id in the registry.
    pub schema_id: u32,
    /// The record in the subscription's view schema.
    pub record: serde_json::Value,
    /// How many days the agency may keep it, when the grant says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_days: Option<u64>,
    /// Until when (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<String>,
    /// Released from history (a backfill, or the catch-up after a pause) rather than live.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub history: bool,
}

/// Whether a channel needs a delivery worker (pull and in-place Kafka do not).
pub fn needs_worker(channel: &Channel) -> bool {
    match channel {
        Channel::Webhook { .. } | Channel::Sql { .. } => true,
        Channel::Kafka {
            bootstrap_servers, ..
        } => bootstrap_servers.is_some(),
        Channel::Pull => false,
    }
}

/// Puts every record of a subscription's delivery DLQ back on its topic, for the channel to try again. Returns
/// how many. Replayed records are committed for group `unsilo.dlq-replay.<subscription>`, so each is replayed once.
pub async fn replay_dlq(
    bus: &dyn Bus,
    subscription: &Subscription,
) -> Result<usize, unsilo_bus::Error> {
    let group = unsilo_schemas::names::dlq_replay_group(&subscription.id);
    let mut consumer = bus
        .consumer(ConsumerOptions::group(&group, &[&subscription.dlq_topic()]))
        .await?;
    let mut replayed = 0;
    loop {
        let batch = consumer.poll(500, Duration::from_millis(500)).await?;
        if batch.is_empty() {
            break;
        }
        let records: Vec<Record> = batch
            .iter()
            .map(|c| {
                let mut r = c.record.clone();
                r.headers.retain(|h| h.name != HEADER_REASON);
                r
            })
            .collect();
        replayed += records.len();
        bus.publish(&subscription.topic(), records).await?;
        consumer.commit(&batch).await?;
    }
    info!(subscription = %subscription.id, replayed, "Delivery DLQ replayed.");
    Ok(replayed)
}

/// The delivery stage as the control surfaces see it ([`DeliveryControl`]): channel preparation at approval and
/// dead-letter replay, with the same context the workers deliver with.
pub struct DeliveryStage {
    context: DeliveryContext,
}

impl DeliveryStage {
    /// The stage over `context`.
    pub fn new(context: DeliveryContext) -> Self {
        Self { context }
    }
}

#[async_trait]
impl DeliveryControl for DeliveryStage {
    async fn prepare_channel(
        &self,
        subscription: &Subscription,
        view_schema: &Schema,
    ) -> Result<(), ChannelUnavailable> {
        prepare_channel(subscription, view_schema, &self.context)
            .await
            .map_err(|e| ChannelUnavailable(e.to_string()))
    }

    async fn replay_dead_letters(
        &self,
        subscription: &Subscription,
    ) -> Result<usize, unsilo_bus::Error> {
        replay_dlq(self.context.bus.as_ref(), subscription).await
    }

    fn channel_health(&self, subscription: &Subscription) -> Option<&'static str> {
        match &subscription.spec().channel {
            Channel::Webhook { url } => Some(match self.context.webhook.breaker_state(url) {
                webhook::BreakerState::Closed => "closed",
                webhook::BreakerState::Open => "open",
                webhook::BreakerState::HalfOpen => "half-open",
            }),
            _ => None,
        }
    }
}

/// Prepares a channel at activation: creates the SQL table, or reaches the Kafka cluster and creates the topic
/// (the same [`open_sink`] a worker starts with).
async fn prepare_channel(
    subscription: &Subscription,
    view_schema: &Schema,
    context: &DeliveryContext,
) -> Result<(), DeliveryError> {
    if let Some(sink) = open_sink(subscription, view_schema, context).await? {
        sink.close().await;
    }
    Ok(())
}

/// What delivery workers need.
#[derive(Clone)]
pub struct DeliveryContext {
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// The control plane.
    pub control: Arc<ControlPlane>,
    /// Decodes released records.
    pub decoder: ViewDecoder,
    /// The webhook client (one per hub: one circuit breaker per endpoint).
    pub webhook: webhook::WebhookClient,
    /// Derives webhook signing keys.
    pub secret: Arc<HubSecret>,
    /// Delivery counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where deliveries may connect (checked whenever a sink is opened).
    pub egress: Arc<crate::egress::EgressPolicy>,
}

struct Worker {
    revision: u64,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Starts the delivery stage: a manager that runs a worker per active subscription with a push channel, until
/// `stop` turns true.
pub fn start(context: DeliveryContext, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(run_manager(context, stop))
}

/// Runs delivery workers for the active subscriptions until `stop` turns true.
pub async fn run_manager(context: DeliveryContext, mut stop: watch::Receiver<bool>) {
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut changes = context.control.changes();
    loop {
        let now = unsilo_bus::now_ms();
        let wanted: Vec<Subscription> = context
            .control
            .read()
            .subscriptions
            .values()
            .filter(|s| s.is_delivering(now) && needs_worker(&s.spec().channel))
            .cloned()
            .collect();
        workers.retain(|id, w| {
            let keep = wanted
                .iter()
                .any(|s| &s.id == id && s.revision == w.revision)
                && !w.handle.is_finished();
            if !keep {
                w.stop.send_replace(true);
            }
            keep
        });
        for s in wanted {
            if workers.contains_key(&s.id) {
                continue;
            }
            let (tx, rx) = watch::channel(false);
            let revision = s.revision;
            let id = s.id.clone();
            let handle = tokio::spawn(run_worker(context.clone(), s, rx));
            workers.insert(
                id,
                Worker {
                    revision,
                    stop: tx,
                    handle,
                },
            );
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    for (_, w) in workers.drain() {
        w.stop.send_replace(true);
        let _ = w.handle.await;
    }
}

/// Delivers one subscription's records until it stops delivering or `stop` turns true.
async fn run_worker(
    context: DeliveryContext,
    subscription: Subscription,
    mut stop: watch::Receiver<bool>,
) {
    let id = subscription.id.clone();
    let group = unsilo_schemas::names::delivery_group(&id);
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let result = deliver_until_stopped(&context, &subscription, &group, &mut stop).await;
        match result {
            Ok(()) | Err(DeliveryError::Stopped) => return,
            Err(e) => {
                failures = failures.saturating_add(1);
                let backoff = Duration::from_millis(200u64.saturating_mul(1 << failures.min(7)));
                warn!(subscription = %id, error = %e, failures, "Delivery failed; retrying the batch.");
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

fn still_delivering(context: &DeliveryContext, id: &str) -> bool {
    context
        .control
        .read()
        .subscriptions
        .get(id)
        .is_some_and(|s| s.is_delivering(unsilo_bus::now_ms()))
}

async fn deliver_until_stopped(
    context: &DeliveryContext,
    subscription: &Subscription,
    group: &str,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), DeliveryError> {
    let view_schema_id = subscription
        .view_schema_id
        .ok_or_else(|| DeliveryError::Schema("subscription has no view schema".into()))?;
    let view_schema = context.decoder.schema(view_schema_id as u32)?;
    let sink = open_sink(subscription, view_schema.schema(), context)
        .await?
        .ok_or_else(|| {
            DeliveryError::Schema(format!(
                "channel {} has no worker",
                subscription.spec().channel.kind()
            ))
        })?;
    let result = deliver_batches(context, subscription, group, sink.as_ref(), stop).await;
    sink.close().await;
    result
}

async fn deliver_batches(
    context: &DeliveryContext,
    subscription: &Subscription,
    group: &str,
    sink: &dyn DeliverySink,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), DeliveryError> {
    let id = &subscription.id;
    let mut consumer = context
        .bus
        .consumer(ConsumerOptions::group(group, &[&subscription.topic()]))
        .await?;
    info!(subscription = %id, channel = sink.kind(), "Delivery worker started.");
    let still_delivering = || still_delivering(context, id);
    loop {
        let batch = tokio::select! {
            _ = stop.changed() => return Err(DeliveryError::Stopped),
            b = consumer.poll(200, Duration::from_millis(200)) => b?,
        };
        if batch.is_empty() {
            continue;
        }
        if !still_delivering() {
            info!(subscription = %id, "Subscription no longer delivering; worker stops.");
            return Ok(());
        }
        let mut run = BatchRun {
            stop: &*stop,
            still_delivering: &still_delivering,
        };
        match sink.deliver(&batch, &mut run).await? {
            BatchOutcome::Stopped => return Ok(()),
            BatchOutcome::Delivered { refused } => {
                to_dlq(context, subscription, &batch, &refused).await?;
            }
        }
        consumer.commit(&batch).await?;
        context
            .metrics
            .record_delivery(id, sink.kind(), "committed", batch.len());
    }
}

/// Writes the records of `batch` the channel refused for good (index, reason) to the subscription's delivery
/// dead-letter topic, the reason in a header, in one durable publish.
async fn to_dlq(
    context: &DeliveryContext,
    subscription: &Subscription,
    batch: &[ConsumedRecord],
    refused: &[(usize, String)],
) -> Result<(), DeliveryError> {
    let records: Vec<Record> = refused
        .iter()
        .filter_map(|(i, reason)| {
            let consumed = batch.get(*i)?;
            Some(
                consumed
                    .record
                    .clone()
                    .with_header(HEADER_REASON, reason.as_bytes().to_vec()),
            )
        })
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    let count = records.len();
    context
        .bus
        .publish(&subscription.dlq_topic(), records)
        .await?;
    context.metrics.record_delivery(
        &subscription.id,
        subscription.spec().channel.kind(),
        "dead_lettered",
        count,
    );
    Ok(())
}
