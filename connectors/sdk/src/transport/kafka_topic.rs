//! The Kafka-topic transport: consume an existing topic of a departmental system (JSON records, one per
//! message) from that system's own Kafka cluster.
//!
//! The checkpoint is the consumer group's committed offsets in the *source* cluster: offsets are committed only
//! after the hub's sink acknowledged the batch, so a restart resumes after the last acknowledged record
//! (at-least-once; a resubmitted record keeps its `record_id`). Each message's value is the raw input; its
//! origin is `topic/partition/offset`. A message without a value, or whose value is not JSON, is rejected to the
//! dead-letter topic like any other bad input.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Deserialize;
use tracing::info;

use super::poll::deserialize_duration;
use crate::sdk::{RawInput, Source, SourceContext, SourceError};

/// Configuration of a Kafka-topic source.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaTopicConfig {
    /// The source cluster's brokers, `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// The topic to consume.
    pub topic: String,
    /// Consumer group in the source cluster; its committed offsets are this connector's checkpoint.
    /// Default: `unsilo-<connector>`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Where to start when the group has no committed offset: `earliest` (default) or `latest`.
    #[serde(default)]
    pub start: KafkaStart,
    /// Most messages per batch handed to the hub (default 500).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long to wait for the first message of a batch before checking for shutdown (default `"1s"`).
    #[serde(default = "default_wait", deserialize_with = "deserialize_duration")]
    pub max_wait: Duration,
    /// Extra librdkafka properties (e.g. `security.protocol`, SASL settings). Never logged.
    #[serde(default)]
    pub client_properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaTopicConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTopicConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic", &self.topic)
            .field("group_id", &self.group_id)
            .field("start", &self.start)
            .field("batch_size", &self.batch_size)
            .field(
                "client_properties",
                &self.client_properties.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Where a new consumer group starts.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KafkaStart {
    /// The oldest retained message.
    #[default]
    Earliest,
    /// Only messages produced after the first start.
    Latest,
}

fn default_batch_size() -> usize {
    500
}

fn default_wait() -> Duration {
    Duration::from_secs(1)
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum KafkaTopicConfigError {
    /// A setting is out of range or empty.
    #[error("invalid kafka_topic setting: {0}")]
    Invalid(String),
}

impl From<KafkaTopicConfigError> for SourceError {
    fn from(e: KafkaTopicConfigError) -> Self {
        SourceError::fatal(e.to_string())
    }
}

impl KafkaTopicConfig {
    /// A config for `topic` on `bootstrap_servers` with defaults for the rest.
    pub fn new(bootstrap_servers: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            topic: topic.into(),
            group_id: None,
            start: KafkaStart::Earliest,
            batch_size: default_batch_size(),
            max_wait: default_wait(),
            client_properties: BTreeMap::new(),
        }
    }

    /// Checks the settings and builds the source.
    pub fn build(&self) -> Result<KafkaTopicSource, KafkaTopicConfigError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(KafkaTopicConfigError::Invalid(
                "bootstrap_servers is empty".into(),
            ));
        }
        if self.topic.trim().is_empty() {
            return Err(KafkaTopicConfigError::Invalid("topic is empty".into()));
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            return Err(KafkaTopicConfigError::Invalid(format!(
                "batch_size must be between 1 and 100000, got {}",
                self.batch_size
            )));
        }
        Ok(KafkaTopicSource {
            config: self.clone(),
        })
    }
}

/// A running Kafka-topic source.
#[derive(Debug)]
pub struct KafkaTopicSource {
    config: KafkaTopicConfig,
}

impl KafkaTopicSource {
    fn consumer(&self, connector: &str) -> Result<StreamConsumer, SourceError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.config.bootstrap_servers)
            .set(
                "group.id",
                self.config
                    .group_id
                    .clone()
                    .unwrap_or_else(|| format!("unsilo-{connector}")),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                match self.config.start {
                    KafkaStart::Earliest => "earliest",
                    KafkaStart::Latest => "latest",
                },
            );
        for (k, v) in &self.config.client_properties {
            c.set(k, v);
        }
        let consumer: StreamConsumer = c
            .create()
            .map_err(|e| SourceError::fatal(format!("cannot create the Kafka consumer: {e}")))?;
        consumer.subscribe(&[&self.config.topic]).map_err(|e| {
            SourceError::fatal(format!("cannot subscribe to `{}`: {e}", self.config.topic))
        })?;
        Ok(consumer)
    }
}

#[async_trait]
impl Source for KafkaTopicSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), SourceError> {
        let consumer = self.consumer(&ctx.connector)?;
        let mut shutdown = ctx.shutdown.clone();
        info!(connector = %ctx.connector, topic = %self.config.topic, "Consuming Kafka topic.");
        loop {
            if shutdown.is_requested() {
                return Ok(());
            }
            let mut batch = Vec::new();
            let mut offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
            {
                let mut stream = consumer.stream();
                let first = tokio::select! {
                    m = tokio::time::timeout(self.config.max_wait, stream.next()) => m,
                    () = shutdown.wait() => return Ok(()),
                };
                let mut next = match first {
                    Err(_) | Ok(None) => None,
                    Ok(Some(m)) => Some(m),
                };
                while let Some(message) = next.take() {
                    let m = message.map_err(|e| {
                        SourceError::transient(format!("Kafka consume failed: {e}"))
                    })?;
                    let origin = format!("{}/{}/{}", m.topic(), m.partition(), m.offset());
                    let input = match m.payload() {
                        Some(bytes) => RawInput::from_json_bytes(bytes.to_vec(), origin),
                        None => RawInput {
                            original: Vec::new(),
                            parsed: Err("the message has no value".into()),
                            origin,
                        },
                    };
                    batch.push(input);
                    offsets.insert((m.topic().to_owned(), m.partition()), m.offset());
                    if batch.len() >= self.config.batch_size {
                        break;
                    }
                    next = stream.next().now_or_never().flatten();
                }
            }
            if batch.is_empty() {
                continue;
            }
            let count = batch.len();
            let report = ctx.sink.submit(batch).await?;
            let mut tpl = TopicPartitionList::new();
            for ((topic, partition), offset) in &offsets {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))
                    .map_err(|e| SourceError::transient(format!("cannot build the commit: {e}")))?;
            }
            consumer
                .commit(&tpl, CommitMode::Sync)
                .map_err(|e| SourceError::transient(format!("Kafka offset commit failed: {e}")))?;
            report.log_acknowledged(&ctx.connector, count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(KafkaTopicConfig::new("127.0.0.1:9092", "ga.jqxx")
            .build()
            .is_ok());
        let err = KafkaTopicConfig::new("", "t")
            .build()
            .expect_err("empty brokers");
        assert!(err.to_string().contains("bootstrap_servers"), "{err}");
        let mut c = KafkaTopicConfig::new("b:1", "t");
        c.batch_size = 0;
        assert!(c
            .build()
            .expect_err("zero batch")
            .to_string()
            .contains("batch_size"));
        let parsed: KafkaTopicConfig = toml::from_str(
            "bootstrap_servers = \"b:1\"\ntopic = \"t\"\nmax_wait = \"250ms\"\nclient_properties = { \"sasl.password\" = \"s3cret\" }\n",
        )
        .expect("parse");
        assert_eq!(parsed.max_wait, Duration::from_millis(250));
        assert!(
            !format!("{parsed:?}").contains("s3cret"),
            "secrets must not be printed"
        );
        let err = toml::from_str::<KafkaTopicConfig>(
            "bootstrap_servers = \"b\"\ntopic = \"t\"\ntopik = 1\n",
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("topik"), "{err}");
    }
}
