//! The Kafka bus: rdkafka against any Kafka-protocol broker (Apache Kafka, Redpanda, Tansu).
//!
//! - The producer is idempotent with `acks=all`, so [`Bus::publish`] returns only once every record is
//!   acknowledged by all in-sync replicas, and retries never duplicate or reorder records within a partition.
//!   Keyed records use `murmur2_random`, the Java client's partitioner, which the embedded bus also uses.
//! - Consumers disable auto-commit: offsets are committed (synchronously) only when the caller says the records'
//!   effect is durable — rdkafka's at-least-once pattern.
//! - Consumers without a group (control-plane replay) assign every partition themselves from the beginning and
//!   never commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use futures::{FutureExt, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tracing::{debug, info};

use super::{
    highest_offsets, Bus, ConsumedRecord, Consumer, ConsumerOptions, Error, FetchRequest, Header,
    Position, Record, Result, StartFrom, TopicSpec,
};

/// How long a fetch that has records waits for more before it returns them.
const FETCH_PAUSE: Duration = Duration::from_millis(100);
/// How long a fetch waits for the broker's first answer (a record or the end of the partition).
const FETCH_ANSWER: Duration = Duration::from_secs(10);

/// How long metadata, watermark and admin calls may take before they fail.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection settings of the Kafka bus.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaOptions {
    /// Comma-separated `host:port` list of brokers, e.g. `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// Replication factor for topics the hub creates (1 on a single broker; 3 in production).
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// Extra librdkafka properties passed to every client, e.g. `security.protocol = "ssl"`. Values are never
    /// logged, since they may hold credentials.
    #[serde(default)]
    pub client_properties: BTreeMap<String, String>,
}

fn default_replication() -> i32 {
    1
}

impl KafkaOptions {
    /// Options for a broker at `bootstrap_servers` with defaults for everything else.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            replication_factor: default_replication(),
            client_properties: BTreeMap::new(),
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.client_properties {
            c.set(k, v);
        }
        c
    }
}

fn kafka_err(e: KafkaError) -> Error {
    Error::Kafka(e.to_string())
}

/// The Kafka bus.
#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<KafkaInner>,
}

struct KafkaInner {
    options: KafkaOptions,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// A group-less client for metadata and watermark queries.
    metadata: Arc<BaseConsumer>,
    /// A group-less client that serves [`Bus::fetch`], re-assigned to the wanted offset on each call.
    fetcher: Arc<std::sync::Mutex<BaseConsumer>>,
    /// One client per consumer group whose offsets are read or committed from outside the group.
    group_clients: std::sync::Mutex<HashMap<String, Arc<BaseConsumer>>>,
}

impl KafkaBus {
    /// Every broker the cluster's metadata names, as `(host, port)`: where the client will connect beyond the
    /// bootstrap servers (a hub checks them before it sends a subscriber's cluster anything).
    pub async fn broker_addresses(&self) -> Result<Vec<(String, u16)>> {
        let probe = self.inner.metadata.clone();
        tokio::task::spawn_blocking(move || {
            probe.fetch_metadata(None, REQUEST_TIMEOUT).map(|m| {
                m.brokers()
                    .iter()
                    .map(|b| (b.host().to_owned(), u16::try_from(b.port()).unwrap_or(0)))
                    .collect()
            })
        })
        .await
        .map_err(|e| Error::Kafka(e.to_string()))?
        .map_err(kafka_err)
    }

    /// Connects to the brokers and checks that they answer within ten seconds.
    pub async fn connect(options: KafkaOptions) -> Result<Self> {
        let producer: FutureProducer = options
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000")
            .create()
            .map_err(kafka_err)?;
        let admin: AdminClient<DefaultClientContext> =
            options.client_config().create().map_err(kafka_err)?;
        let metadata: BaseConsumer = options
            .client_config()
            .set("group.id", "unsilo-metadata")
            .set("enable.auto.commit", "false")
            .create()
            .map_err(kafka_err)?;
        let metadata = Arc::new(metadata);
        let fetcher: BaseConsumer = options
            .client_config()
            .set("group.id", "unsilo-fetch")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .create()
            .map_err(kafka_err)?;
        let probe = metadata.clone();
        let brokers = tokio::task::spawn_blocking(move || {
            probe
                .fetch_metadata(None, REQUEST_TIMEOUT)
                .map(|m| m.brokers().len())
        })
        .await
        .map_err(|e| Error::Kafka(e.to_string()))?
        .map_err(|e| {
            Error::Kafka(format!(
                "cannot reach the brokers at {}: {e}",
                options.bootstrap_servers
            ))
        })?;
        info!(bootstrap_servers = %options.bootstrap_servers, brokers, "Connected to Kafka.");
        Ok(Self {
            inner: Arc::new(KafkaInner {
                options,
                producer,
                admin,
                metadata,
                fetcher: Arc::new(std::sync::Mutex::new(fetcher)),
                group_clients: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The client that reads and commits `group`'s offsets from outside the group.
    fn group_client(&self, group: &str) -> Result<Arc<BaseConsumer>> {
        let mut clients = self
            .inner
            .group_clients
            .lock()
            .map_err(|_| Error::Kafka("group client table lock poisoned".into()))?;
        if let Some(c) = clients.get(group) {
            return Ok(c.clone());
        }
        let client: BaseConsumer = self
            .inner
            .options
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .map_err(kafka_err)?;
        let client = Arc::new(client);
        clients.insert(group.to_owned(), client.clone());
        Ok(client)
    }

    async fn partitions_of(&self, topic: &str) -> Result<Option<u32>> {
        let client = self.inner.metadata.clone();
        let name = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let md = client
                .fetch_metadata(Some(&name), REQUEST_TIMEOUT)
                .map_err(kafka_err)?;
            let Some(t) = md.topics().iter().find(|t| t.name() == name) else {
                return Ok(None);
            };
            if t.error().is_some() || t.partitions().is_empty() {
                return Ok(None);
            }
            Ok(Some(t.partitions().len() as u32))
        })
        .await
        .map_err(|e| Error::Kafka(e.to_string()))?
    }
}

#[async_trait]
impl Bus for KafkaBus {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    async fn create_topic(&self, spec: &TopicSpec) -> Result<()> {
        spec.validate()?;
        let partitions =
            i32::try_from(spec.partitions).map_err(|_| Error::InvalidPartitionCount {
                topic: spec.name.clone(),
                partitions: spec.partitions,
            })?;
        let mut topic = NewTopic::new(
            &spec.name,
            partitions,
            TopicReplication::Fixed(self.inner.options.replication_factor),
        );
        if spec.compacted {
            topic = topic.set("cleanup.policy", "compact");
        }
        let retention_ms = spec.retention.max_age_ms.map(|ms| ms.to_string());
        let retention_bytes = spec.retention.max_bytes.map(|b| b.to_string());
        if let Some(ms) = &retention_ms {
            topic = topic.set("retention.ms", ms);
        }
        if let Some(bytes) = &retention_bytes {
            topic = topic.set("retention.bytes", bytes);
        }
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .inner
            .admin
            .create_topics([&topic], &options)
            .await
            .map_err(kafka_err)?;
        for r in results {
            match r {
                Ok(name) => {
                    info!(topic = %name, partitions, compacted = spec.compacted, "Topic created.")
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(Error::Kafka(format!(
                        "cannot create topic `{name}`: {code}"
                    )))
                }
            }
        }
        // Metadata propagates asynchronously; wait until the topic is visible so a publish right after works.
        for _ in 0..100 {
            if self.partitions_of(&spec.name).await?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Kafka(format!(
            "topic `{}` was created but is not visible in metadata after 10 s",
            spec.name
        )))
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<u32>> {
        self.partitions_of(topic).await
    }

    async fn publish(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Position>> {
        let mut deliveries = Vec::with_capacity(records.len());
        for r in &records {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for h in &r.headers {
                headers = headers.insert(KafkaHeader {
                    key: &h.name,
                    value: Some(&h.value),
                });
            }
            let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
                .headers(headers)
                .timestamp(r.timestamp_ms);
            if let Some(k) = &r.key {
                fr = fr.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                fr = fr.payload(v.as_slice());
            }
            deliveries.push(self.inner.producer.send(fr, rdkafka::util::Timeout::Never));
        }
        let results = join_all(deliveries).await;
        let mut positions = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(d) => positions.push(Position {
                    topic: topic.to_owned(),
                    partition: d.partition as u32,
                    offset: d.offset as u64,
                }),
                Err((
                    KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition),
                    _,
                )) => return Err(Error::UnknownTopic(topic.to_owned())),
                Err((e, _)) => return Err(kafka_err(e)),
            }
        }
        Ok(positions)
    }

    async fn consumer(&self, options: ConsumerOptions) -> Result<Box<dyn Consumer>> {
        let reset = match options.start {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
        };
        let mut config = self.inner.options.client_config();
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", reset)
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("partition.assignment.strategy", "range");
        let grouped = options.group.is_some();
        match &options.group {
            Some(g) => {
                config.set("group.id", g);
            }
            None => {
                config.set(
                    "group.id",
                    format!("unsilo-replay-{}", rand::random::<u64>()),
                );
            }
        }
        let consumer: StreamConsumer = config.create().map_err(kafka_err)?;
        if grouped {
            let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
            consumer.subscribe(&topics).map_err(kafka_err)?;
        } else {
            let mut tpl = TopicPartitionList::new();
            for t in &options.topics {
                let n = self
                    .partitions_of(t)
                    .await?
                    .ok_or_else(|| Error::UnknownTopic(t.clone()))?;
                for p in 0..n {
                    let start = match options.start {
                        StartFrom::Earliest => Offset::Beginning,
                        StartFrom::Latest => Offset::End,
                    };
                    tpl.add_partition_offset(t, p as i32, start)
                        .map_err(kafka_err)?;
                }
            }
            consumer.assign(&tpl).map_err(kafka_err)?;
        }
        debug!(group = ?options.group, topics = ?options.topics, "Kafka consumer started.");
        Ok(Box::new(KafkaConsumer {
            consumer: Some(Arc::new(consumer)),
            grouped,
        }))
    }

    async fn fetch(&self, read: &FetchRequest) -> Result<Vec<ConsumedRecord>> {
        let (topic, partition, offset) = (
            read.from.topic.as_str(),
            read.from.partition,
            read.from.offset,
        );
        let (max, wait) = (read.max, read.wait);
        let n = self
            .partitions_of(topic)
            .await?
            .ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
        if partition >= n {
            return Err(Error::Kafka(format!(
                "topic `{topic}` has no partition {partition}"
            )));
        }
        let fetcher = self.inner.fetcher.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let consumer = fetcher
                .lock()
                .map_err(|_| Error::Kafka("fetch client lock poisoned".into()))?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, partition as i32, Offset::Offset(offset as i64))
                .map_err(kafka_err)?;
            consumer.assign(&tpl).map_err(kafka_err)?;
            // The fetcher reports the end of the partition (`enable.partition.eof`), so an empty answer means
            // "nothing after `offset` within `wait`", not "the broker was slow to start": the first answer (a
            // record or the end) is awaited for at least FETCH_ANSWER, whatever `wait` is.
            let started = std::time::Instant::now();
            let answer_deadline = started + wait.max(FETCH_ANSWER);
            let data_deadline = started + wait;
            let mut at_end = false;
            let mut out: Vec<ConsumedRecord> = Vec::new();
            while out.len() < max.max(1) {
                let now = std::time::Instant::now();
                let until = if at_end && out.is_empty() {
                    data_deadline
                } else {
                    answer_deadline
                };
                if now >= until {
                    break;
                }
                // Once records came, a pause in them ends the fetch: a broker that reports a high watermark
                // below its last records (Tansu 0.6) never sends the end of the partition after them.
                let timeout = if out.is_empty() {
                    until - now
                } else {
                    (until - now).min(FETCH_PAUSE)
                };
                match consumer.poll(timeout) {
                    None if !out.is_empty() => break,
                    Some(Ok(m)) => {
                        let r = to_consumed(&m);
                        // Only this partition, from the offset asked for (never a message fetched for an
                        // earlier assignment of the shared client).
                        if r.position.topic == topic
                            && r.position.partition == partition
                            && r.position.offset >= offset
                        {
                            out.push(r);
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(p))) if p == partition as i32 => {
                        if !out.is_empty() {
                            break;
                        }
                        at_end = true;
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {}
                    Some(Err(e)) => return Err(kafka_err(e)),
                    None => {}
                }
            }
            consumer.unassign().map_err(kafka_err)?;
            Ok(out)
        })
        .await
        .map_err(|e| Error::Kafka(e.to_string()))?
    }

    async fn offsets_for_time(&self, topic: &str, timestamp_ms: i64) -> Result<Vec<u64>> {
        let n = self
            .partitions_of(topic)
            .await?
            .ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
        let ends = self.end_offsets(topic).await?;
        let client = self.inner.metadata.clone();
        let name = topic.to_owned();
        let limits = ends.clone();
        let answered: Vec<u64> = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for p in 0..n {
                tpl.add_partition_offset(&name, p as i32, Offset::Offset(timestamp_ms.max(0)))
                    .map_err(kafka_err)?;
            }
            let found = client
                .offsets_for_times(tpl, REQUEST_TIMEOUT)
                .map_err(kafka_err)?;
            Ok((0..n)
                .map(|p| {
                    let end = limits.get(p as usize).copied().unwrap_or(0);
                    match found.find_partition(&name, p as i32).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) if o >= 0 => (o as u64).min(end),
                        // No record at or after the time: start at the end.
                        _ => end,
                    }
                })
                .collect::<Vec<u64>>())
        })
        .await
        .map_err(|e| Error::Kafka(e.to_string()))??;
        // A broker without a time index (Tansu answers every time with the earliest offset) is refined by a
        // binary search over the offsets between its answer and the end, reading one record per step: the hub
        // stamps `std.` records when it accepts them, so their timestamps rise with their offsets.
        let mut refined = Vec::with_capacity(answered.len());
        for (p, (&from, &end)) in answered.iter().zip(&ends).enumerate() {
            let (mut low, mut high) = (from, end.max(from));
            while low < high {
                let mid = low + (high - low) / 2;
                let read = self
                    .fetch(&FetchRequest::new(topic, p as u32, mid, 1, Duration::ZERO))
                    .await?;
                match read.first() {
                    Some(r) if r.record.timestamp_ms < timestamp_ms => low = r.position.offset + 1,
                    // At or after the time, or past the end: the answer is at `mid` or before.
                    _ => high = mid,
                }
            }
            // A high watermark can lag the last batch (Tansu's does): read on from there to the first record at
            // or after the time, or the real end.
            'forward: loop {
                let read = self
                    .fetch(&FetchRequest::new(
                        topic,
                        p as u32,
                        low,
                        500,
                        Duration::ZERO,
                    ))
                    .await?;
                if read.is_empty() {
                    break;
                }
                for r in read {
                    if r.record.timestamp_ms >= timestamp_ms {
                        low = r.position.offset;
                        break 'forward;
                    }
                    low = r.position.offset + 1;
                }
            }
            refined.push(low);
        }
        Ok(refined)
    }

    async fn committed_offsets(&self, group: &str, topic: &str) -> Result<Vec<Option<u64>>> {
        let n = self
            .partitions_of(topic)
            .await?
            .ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
        let client = self.group_client(group)?;
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for p in 0..n {
                tpl.add_partition(&topic, p as i32);
            }
            let committed = client
                .committed_offsets(tpl, REQUEST_TIMEOUT)
                .map_err(kafka_err)?;
            Ok((0..n)
                .map(|p| {
                    match committed
                        .find_partition(&topic, p as i32)
                        .map(|e| e.offset())
                    {
                        Some(Offset::Offset(o)) if o >= 0 => Some(o as u64),
                        _ => None,
                    }
                })
                .collect())
        })
        .await
        .map_err(|e| Error::Kafka(e.to_string()))?
    }

    async fn commit_offsets(&self, group: &str, topic: &str, offsets: &[(u32, u64)]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let client = self.group_client(group)?;
        let mut tpl = TopicPartitionList::new();
        for &(p, o) in offsets {
            tpl.add_partition_offset(topic, p as i32, Offset::Offset(o as i64))
                .map_err(kafka_err)?;
        }
        tokio::task::spawn_blocking(move || client.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| Error::Kafka(e.to_string()))?
            .map_err(kafka_err)
    }

    async fn end_offsets(&self, topic: &str) -> Result<Vec<u64>> {
        let n = self
            .partitions_of(topic)
            .await?
            .ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
        let client = self.inner.metadata.clone();
        let name = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            (0..n)
                .map(|p| {
                    client
                        .fetch_watermarks(&name, p as i32, REQUEST_TIMEOUT)
                        .map(|(_, high)| high.max(0) as u64)
                        .map_err(kafka_err)
                })
                .collect()
        })
        .await
        .map_err(|e| Error::Kafka(e.to_string()))?
    }

    async fn shutdown(&self) -> Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|e| Error::Kafka(e.to_string()))?
            .map_err(kafka_err)?;
        info!("Kafka bus shut down.");
        Ok(())
    }
}

/// A consumer on the Kafka bus.
struct KafkaConsumer {
    /// `None` only while it is being dropped.
    consumer: Option<Arc<StreamConsumer>>,
    grouped: bool,
}

impl KafkaConsumer {
    fn client(&self) -> Result<&Arc<StreamConsumer>> {
        self.consumer
            .as_ref()
            .ok_or_else(|| Error::Kafka("the consumer is closed".into()))
    }
}

impl Drop for KafkaConsumer {
    /// Closing a group consumer leaves the group, which blocks until the coordinator answers (and longer when
    /// the broker is slow). Done on a runtime thread it would stall every task on that thread — many routers
    /// stopping at once could stall the whole runtime — so the consumer is dropped on a blocking thread.
    fn drop(&mut self) {
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || drop(consumer));
            }
            Err(_) => drop(consumer),
        }
    }
}

fn to_consumed(m: &rdkafka::message::BorrowedMessage<'_>) -> ConsumedRecord {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| Header {
                    name: h.key.to_owned(),
                    value: h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    ConsumedRecord {
        position: Position {
            topic: m.topic().to_owned(),
            partition: m.partition() as u32,
            offset: m.offset() as u64,
        },
        record: Record {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
        },
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<ConsumedRecord>> {
        let mut out = Vec::new();
        let mut stream = self.client()?.stream();
        match tokio::time::timeout(timeout, stream.next()).await {
            Err(_) | Ok(None) => return Ok(out),
            Ok(Some(Err(e))) => return Err(kafka_err(e)),
            Ok(Some(Ok(m))) => out.push(to_consumed(&m)),
        }
        while out.len() < max.max(1) {
            match stream.next().now_or_never() {
                Some(Some(Ok(m))) => out.push(to_consumed(&m)),
                Some(Some(Err(e))) => return Err(kafka_err(e)),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn commit(&mut self, records: &[ConsumedRecord]) -> Result<()> {
        if !self.grouped || records.is_empty() {
            return Ok(());
        }
        let owned: HashSet<(String, u32)> = self.assignment().into_iter().collect();
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in highest_offsets(records) {
            if !owned.contains(&(topic.clone(), partition)) {
                debug!(topic = %topic, partition, "Skipped commit of a partition no longer assigned.");
                continue;
            }
            tpl.add_partition_offset(&topic, partition as i32, Offset::Offset(offset as i64 + 1))
                .map_err(kafka_err)?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        let consumer = Arc::clone(self.client()?);
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| Error::Kafka(e.to_string()))?
            .map_err(kafka_err)
    }

    fn assignment(&self) -> Vec<(String, u32)> {
        let mut a: Vec<(String, u32)> = self
            .consumer
            .as_ref()
            .and_then(|c| c.assignment().ok())
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition() as u32))
                    .collect()
            })
            .unwrap_or_default();
        a.sort();
        a
    }
}
