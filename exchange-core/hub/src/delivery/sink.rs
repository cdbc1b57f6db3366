//! The push channels behind one trait: [`DeliverySink`], implemented by the webhook, SQL and Kafka channels.
//!
//! A delivery worker opens its subscription's sink with [`open_sink`] and hands it one batch at a time; the sink
//! says what became of the batch — delivered (except the records it refused for good, which the worker
//! dead-letters), stopped part-way because the subscription stopped delivering, or failed in a way worth
//! retrying (an `Err`: the worker retries the whole batch after a backoff). Approval uses the same
//! [`open_sink`] to prepare a channel (create the SQL table or the Kafka topic) before activation, so the two
//! never drift apart.

use apache_avro::Schema;
use async_trait::async_trait;
use tokio::sync::watch;
use tracing::error;

use unsilo_bus::kafka::{KafkaBus, KafkaOptions};
use unsilo_bus::{Bus, ConsumedRecord, Record, TopicSpec};
use unsilo_policy::model::{Channel, Subscription};

use super::{sql, webhook, DeliveryContext, DeliveryError, ViewDecoder};

/// What became of one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Delivered durably, except the records listed (their index in the batch, and why), which the channel
    /// refused for good and which belong on the delivery dead-letter topic.
    Delivered {
        /// Refused records: index in the batch, reason.
        refused: Vec<(usize, String)>,
    },
    /// The subscription stopped delivering part-way (revoked, expired, the worker told to stop): nothing of the
    /// batch may be committed.
    Stopped,
}

/// What a sink may ask while it delivers a batch.
pub struct BatchRun<'a> {
    /// Turns true when the worker must stop.
    pub stop: &'a watch::Receiver<bool>,
    /// Whether the subscription still delivers (checked before each record on per-record channels).
    pub still_delivering: &'a (dyn Fn() -> bool + Send + Sync),
}

/// A push channel: where a subscription's released records go.
#[async_trait]
pub trait DeliverySink: Send + Sync {
    /// The channel kind, as in the metrics (`webhook`, `sql`, `kafka`).
    fn kind(&self) -> &'static str;

    /// Delivers one batch of released records. `Err` means nothing durable can be assumed and the batch is
    /// worth trying again (connection lost, server busy); a record that can never be delivered is reported in
    /// [`BatchOutcome::Delivered::refused`] instead.
    async fn deliver(
        &self,
        batch: &[ConsumedRecord],
        run: &mut BatchRun<'_>,
    ) -> Result<BatchOutcome, DeliveryError>;

    /// Releases what the sink holds (connections).
    async fn close(&self) {}
}

/// Opens the sink of a subscription's channel with its view schema: connects to the subscriber's database and
/// creates the table, or reaches its Kafka cluster and creates the topic. `None` for channels without a push
/// worker (pull, and Kafka on the hub's own cluster).
pub async fn open_sink(
    subscription: &Subscription,
    view_schema: &Schema,
    context: &DeliveryContext,
) -> Result<Option<Box<dyn DeliverySink>>, DeliveryError> {
    // Every opening is checked against the egress policy again: the target may resolve elsewhere than it did
    // at approval (DNS rebinding), or the policy may have been narrowed since.
    context
        .egress
        .check_channel(&subscription.spec().channel)
        .await
        .map_err(|e| DeliveryError::Refused(e.to_string()))?;
    Ok(match &subscription.spec().channel {
        Channel::Sql { url, table } => {
            let writer = sql::SqlWriter::connect(
                &sql::SqlTarget {
                    url: url.clone(),
                    table: table.clone(),
                    retain_until: subscription.spec().retain_days.is_some(),
                },
                view_schema,
            )
            .await?;
            Some(Box::new(SqlChannel {
                writer,
                decoder: context.decoder.clone(),
                retain_until: subscription.spec().retain_days.is_some(),
            }))
        }
        Channel::Kafka {
            bootstrap_servers: Some(servers),
            topic,
        } => {
            let bus = KafkaBus::connect(KafkaOptions::new(servers.clone())).await?;
            // The cluster names its brokers in its metadata: each must pass the policy as the bootstrap did.
            for (host, port) in bus.broker_addresses().await? {
                context
                    .egress
                    .check_host(&host, port)
                    .await
                    .map_err(|e| DeliveryError::Refused(format!("a broker of the cluster: {e}")))?;
            }
            let topic = topic.clone().unwrap_or_else(|| subscription.topic());
            bus.create_topic(&TopicSpec::new(topic.clone(), 1)).await?;
            Some(Box::new(KafkaChannel { bus, topic }))
        }
        Channel::Webhook { url } => Some(Box::new(WebhookChannel {
            client: context.webhook.clone(),
            target: webhook::WebhookTarget {
                url: url.clone(),
                signing_key: context.secret.webhook_key(&subscription.id),
            },
            decoder: context.decoder.clone(),
            subscription: subscription.id.clone(),
        })),
        Channel::Kafka {
            bootstrap_servers: None,
            ..
        }
        | Channel::Pull => None,
    })
}

/// HTTPS POST of each record's JSON form, signed, with retries and the endpoint's circuit breaker.
struct WebhookChannel {
    client: webhook::WebhookClient,
    target: webhook::WebhookTarget,
    decoder: ViewDecoder,
    subscription: String,
}

#[async_trait]
impl DeliverySink for WebhookChannel {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn deliver(
        &self,
        batch: &[ConsumedRecord],
        run: &mut BatchRun<'_>,
    ) -> Result<BatchOutcome, DeliveryError> {
        let mut refused = Vec::new();
        for (i, consumed) in batch.iter().enumerate() {
            if !(run.still_delivering)() {
                return Ok(BatchOutcome::Stopped);
            }
            let body = match self.decoder.released(&self.subscription, consumed) {
                Ok(b) => b,
                Err(e) => {
                    refused.push((i, e.to_string()));
                    continue;
                }
            };
            let message = webhook::WebhookMessage {
                record_id: consumed.record.record_id(),
                subscription: self.subscription.clone(),
                body: serde_json::to_vec(&body).unwrap_or_default().into(),
            };
            match self
                .client
                .deliver(&self.target, &message, run.stop)
                .await?
            {
                webhook::DeliveryOutcome::Delivered { .. } => {}
                webhook::DeliveryOutcome::GaveUp { attempts, reason } => {
                    error!(subscription = %self.subscription, record_id = %message.record_id, attempts, reason = %reason, "Webhook delivery gave up; record sent to the delivery DLQ.");
                    refused.push((i, reason));
                }
            }
        }
        Ok(BatchOutcome::Delivered { refused })
    }
}

/// Until when the subscriber may keep a released record: its time plus the grant's `retain_days` (from the
/// record's header), in ms since the epoch.
pub fn retain_until_ms(record: &unsilo_bus::Record) -> Option<i64> {
    let days: i64 = std::str::from_utf8(record.header(unsilo_schemas::names::HEADER_RETAIN_DAYS)?)
        .ok()?
        .parse()
        .ok()?;
    Some(
        record
            .timestamp_ms
            .saturating_add(days.saturating_mul(86_400_000)),
    )
}

/// Upsert by record id into the subscriber's PostgreSQL or MySQL table, one transaction per batch.
struct SqlChannel {
    writer: sql::SqlWriter,
    decoder: ViewDecoder,
    /// The table has a `retain_until` column (the grant limits how long the subscriber keeps records).
    retain_until: bool,
}

#[async_trait]
impl DeliverySink for SqlChannel {
    fn kind(&self) -> &'static str {
        "sql"
    }

    async fn deliver(
        &self,
        batch: &[ConsumedRecord],
        _run: &mut BatchRun<'_>,
    ) -> Result<BatchOutcome, DeliveryError> {
        let decoder = &self.decoder;
        let mut rows = Vec::with_capacity(batch.len());
        let mut delivered = Vec::with_capacity(batch.len());
        let mut refused = Vec::new();
        for (i, consumed) in batch.iter().enumerate() {
            let record_id = consumed.record.record_id();
            let framed = consumed.record.value.as_deref().unwrap_or_default();
            match decoder.decode(&record_id, framed) {
                Ok((_, mut value)) => {
                    if self.retain_until {
                        if let apache_avro::types::Value::Record(fields) = &mut value {
                            let until = retain_until_ms(&consumed.record)
                                .map_or(apache_avro::types::Value::Null, |ms| {
                                    apache_avro::types::Value::TimestampMillis(ms)
                                });
                            fields.push((sql::RETAIN_UNTIL_COLUMN.to_owned(), until));
                        }
                    }
                    rows.push((record_id, value));
                    delivered.push(i);
                }
                Err(e) => refused.push((i, e.to_string())),
            }
        }
        match self.writer.upsert(&rows).await {
            Ok(()) => {}
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                let reason = e.to_string();
                refused.extend(delivered.into_iter().map(|i| (i, reason.clone())));
                refused.sort_by_key(|(i, _)| *i);
            }
        }
        Ok(BatchOutcome::Delivered { refused })
    }

    async fn close(&self) {
        self.writer.close().await;
    }
}

/// Produce to a topic on the subscriber's own Kafka cluster (`acks=all`).
struct KafkaChannel {
    bus: KafkaBus,
    topic: String,
}

#[async_trait]
impl DeliverySink for KafkaChannel {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    async fn deliver(
        &self,
        batch: &[ConsumedRecord],
        _run: &mut BatchRun<'_>,
    ) -> Result<BatchOutcome, DeliveryError> {
        let records: Vec<Record> = batch.iter().map(|c| c.record.clone()).collect();
        self.bus.publish(&self.topic, records).await?;
        Ok(BatchOutcome::Delivered {
            refused: Vec::new(),
        })
    }
}
