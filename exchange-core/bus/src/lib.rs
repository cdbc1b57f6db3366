//! # unsilo-bus
//!
//! The message bus: one [`Bus`] trait, two implementations.
//!
//! Everything durable in unsilo is a topic on the bus — normalised records (`std.<schema>`), raw input
//! (`raw.<connector>`), rejected input (`dlq.<connector>`) and the control plane (`_unsilo.schemas`, …).
//!
//! - [`embedded::EmbeddedBus`] (the default): an in-process, crash-safe log kept in a data directory on the
//!   fjall LSM store, with durable group commit.
//! - [`kafka::KafkaBus`]: rdkafka against any Kafka-protocol broker, with an idempotent `acks=all` producer and
//!   consumer offsets committed only when the caller says the records' effect is durable.
//!
//! Both give topics with partitions, keys and headers, consumer groups with committed offsets, and
//! at-least-once delivery. [`testkit`] holds the one test body that both implementations must pass.
//!
//! # Layout
//!
//! - this file: the [`Bus`] trait, [`Record`], [`TopicSpec`], [`ConsumerOptions`] and errors;
//! - [`embedded`] and [`kafka`]: the two implementations; [`follow`]: tailing a topic from its end; [`read`]:
//!   reading a partition to its end outside any group;
//! - [`wire`]: the Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro binary);
//! - [`seal`]: the seal of the hub's own `_unsilo.*` records, which readers check before applying them;
//! - [`testkit`]: the conformance checks both implementations pass.
//!
//! Topic, subject, group and header names come from [`unsilo_schemas::names`], the vocabulary every layer
//! shares.

pub mod embedded;
pub mod follow;
pub mod kafka;
mod partitioner;
pub mod read;
pub mod seal;
pub mod testkit;
pub mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

pub use partitioner::partition_for_key;

/// Errors from the bus.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The topic does not exist (create it with [`Bus::create_topic`] first).
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    /// A topic name that Kafka would refuse (empty, too long, or characters outside `[a-zA-Z0-9._-]`).
    #[error("invalid topic name `{0}`: use 1–249 characters from a-z, A-Z, 0-9, '.', '_' and '-'")]
    InvalidTopicName(String),
    /// A topic was asked for with an impossible partition count.
    #[error("topic `{topic}`: partition count must be between 1 and 10000, got {partitions}")]
    InvalidPartitionCount {
        /// The topic.
        topic: String,
        /// The partition count asked for.
        partitions: u32,
    },
    /// The embedded store failed (disk full, corruption, I/O error).
    #[error("embedded store: {0}")]
    Store(String),
    /// The Kafka client or broker failed.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The bus has been shut down.
    #[error("the bus is shut down")]
    Closed,
}

/// Result type of bus operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One header of a record: a name and opaque bytes, as in Kafka.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// Header name, e.g. `unsilo.reason`.
    pub name: String,
    /// Header value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

impl Header {
    /// A header `name` with `value`.
    pub fn new(name: &str, value: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.to_owned(),
            value: value.into(),
        }
    }
}

/// A record as published to the bus.
///
/// Byte fields are serialised as byte strings (`serde_bytes`): in the embedded bus's postcard encoding that is the
/// same bytes on disk as a sequence of `u8`, written and read in one copy instead of one call per byte.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Partitioning key; records with the same key land in the same partition, in order.
    #[serde(with = "serde_bytes")]
    pub key: Option<Vec<u8>>,
    /// Payload; `None` is a tombstone, which deletes the key from a compacted topic.
    #[serde(with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Creation time in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

impl Record {
    /// A record with a key and a value, stamped with the current time.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: Some(key.into()),
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp_ms: now_ms(),
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// The value of the first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.as_slice())
    }

    /// The record id its `unsilo.record_id` header carries ([`unsilo_schemas::names::HEADER_RECORD_ID`]), or
    /// empty when it has none.
    pub fn record_id(&self) -> String {
        self.header(unsilo_schemas::names::HEADER_RECORD_ID)
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .unwrap_or_default()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What a topic should look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions (fixed at creation).
    pub partitions: u32,
    /// Whether the topic is compacted (only the latest record per key is kept), as control-plane topics are.
    pub compacted: bool,
    /// How long and how much the topic keeps (default: everything, forever).
    pub retention: Retention,
}

/// How much of a topic is kept: records older than `max_age_ms`, and the oldest records beyond `max_bytes` per
/// partition, are removed. Kafka brokers enforce it from the topic's `retention.ms` and `retention.bytes`; the
/// embedded bus enforces it in [`Bus::enforce_retention`], which the hub calls periodically.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retention {
    /// Records older than this (by their timestamp, in milliseconds) are removed; `None` keeps them.
    pub max_age_ms: Option<u64>,
    /// Each partition keeps at most about this many bytes, removing its oldest records; `None` = no limit.
    pub max_bytes: Option<u64>,
}

impl Retention {
    /// Keeps everything.
    pub const FOREVER: Retention = Retention {
        max_age_ms: None,
        max_bytes: None,
    };

    /// Whether anything is ever removed.
    pub fn is_forever(&self) -> bool {
        self.max_age_ms.is_none() && self.max_bytes.is_none()
    }
}

/// What one retention pass removed from one partition ([`Bus::enforce_retention`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionRemoval {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// Records removed.
    pub records: u64,
    /// The first offset still kept.
    pub first_kept: u64,
}

impl TopicSpec {
    /// A normal (retained, not compacted) topic.
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        Self {
            name: name.into(),
            partitions,
            compacted: false,
            retention: Retention::FOREVER,
        }
    }

    /// The same topic with a retention policy.
    #[must_use]
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// A compacted topic with one partition, for control-plane state that must be read in one total order.
    pub fn compacted(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            partitions: 1,
            compacted: true,
            retention: Retention::FOREVER,
        }
    }

    /// Checks the name and partition count the way a Kafka broker would.
    pub fn validate(&self) -> Result<()> {
        if unsilo_schemas::names::check_topic_name(&self.name).is_err() {
            return Err(Error::InvalidTopicName(self.name.clone()));
        }
        if self.partitions == 0 || self.partitions > 10_000 {
            return Err(Error::InvalidPartitionCount {
                topic: self.name.clone(),
                partitions: self.partitions,
            });
        }
        Ok(())
    }
}

/// A read of one partition outside any consumer group ([`Bus::fetch`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    /// Where to start: topic, partition and the first offset wanted.
    pub from: Position,
    /// Most records returned.
    pub max: usize,
    /// How long to wait for the first record when there is none yet.
    pub wait: Duration,
}

impl FetchRequest {
    /// Up to `max` records of `topic`'s `partition` from `offset` on, waiting up to `wait` for the first.
    pub fn new(topic: &str, partition: u32, offset: u64, max: usize, wait: Duration) -> Self {
        Self {
            from: Position {
                topic: topic.to_owned(),
                partition,
                offset,
            },
            max,
            wait,
        }
    }
}

/// Where a record sits: topic, partition and offset.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Topic name.
    pub topic: String,
    /// Partition number, from 0.
    pub partition: u32,
    /// Offset within the partition, from 0.
    pub offset: u64,
}

/// A record read from the bus, with where it sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Where the record sits.
    pub position: Position,
    /// The record.
    pub record: Record,
}

/// Where a consumer without a committed offset starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartFrom {
    /// From the oldest retained record (the default: nothing is skipped).
    #[default]
    Earliest,
    /// From records published after the consumer started.
    Latest,
}

/// How to consume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerOptions {
    /// Consumer group. Members of one group split the partitions between them and share committed offsets.
    /// `None` reads every partition by itself and commits nothing (for replaying control-plane state).
    pub group: Option<String>,
    /// Topics to read.
    pub topics: Vec<String>,
    /// Where to start where the group has no committed offset.
    pub start: StartFrom,
}

impl ConsumerOptions {
    /// Options for a member of `group` reading `topics` from the earliest uncommitted record.
    pub fn group(group: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            group: Some(group.into()),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            start: StartFrom::Earliest,
        }
    }

    /// Options for reading all of `topic` from its beginning, outside any group.
    pub fn replay(topic: &str) -> Self {
        Self {
            group: None,
            topics: vec![topic.to_owned()],
            start: StartFrom::Earliest,
        }
    }
}

/// How the embedded bus's store stands, for operators: the figures that show it falling behind its own background
/// work (journals piling up because memtables are not flushed, flushes lagging behind writes). Kafka brokers report
/// their own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Journal files on disk. fjall deletes one once every partition has flushed what it holds; a count that keeps
    /// growing means flushes lag, and at 90 % of the journal limit every write is stalled.
    pub journals: u64,
    /// Bytes written but not yet flushed from memory (the write buffer, shared by all partitions).
    pub write_buffer_bytes: u64,
    /// Whether the data directory's file system trims deleted files synchronously (the `discard` mount option),
    /// which holds up every fsync while it does: see [`embedded::FileSystem`].
    pub online_discard: bool,
    /// Segment files of the log partition (where records live).
    pub log_segments: u64,
    /// Bytes of flushed data on disk, in the segment files of every partition (journals, which fjall preallocates
    /// at a fixed size, are not counted).
    pub segment_bytes: u64,
}

/// The message bus.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// A short name of the implementation (`embedded` or `kafka`), for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Creates a topic if it does not exist. Creating an existing topic is not an error.
    async fn create_topic(&self, spec: &TopicSpec) -> Result<()>;

    /// The number of partitions of a topic, or `None` if it does not exist.
    async fn partition_count(&self, topic: &str) -> Result<Option<u32>>;

    /// Appends records to a topic and returns their positions, in order. When this returns `Ok`, every record
    /// is durable (fsynced, or acknowledged by all in-sync replicas): an acknowledged record is never lost.
    ///
    /// Records with a key go to the partition [`partition_for_key`] chooses (Kafka's murmur2 partitioner), so the
    /// same key lands in the same partition on both implementations; keyless records are spread round-robin.
    async fn publish(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Position>>;

    /// Appends records to several topics, in the order given, and returns their positions per part. When this
    /// returns `Ok`, everything is durable. The embedded bus writes all parts atomically (one batch, one fsync):
    /// all or nothing. Kafka has no atomic write across topics without transactions, so there each part is made
    /// durable before the next is sent: a failure can leave earlier parts written, never a later part without
    /// the earlier ones — which is what evidence-first writers (the audit log) rely on.
    async fn publish_all(&self, batches: Vec<(String, Vec<Record>)>) -> Result<Vec<Vec<Position>>> {
        let mut out = Vec::with_capacity(batches.len());
        for (topic, records) in batches {
            out.push(self.publish(&topic, records).await?);
        }
        Ok(out)
    }

    /// Whether [`Bus::publish_all`] and [`Consumer::publish_and_commit`] are all-or-nothing (the embedded bus:
    /// one atomic batch). Where they are not (Kafka), a writer that must not repeat itself after a crash records
    /// what it is about to write first (the router's write intent).
    fn writes_atomically(&self) -> bool {
        false
    }

    /// Starts a consumer.
    async fn consumer(&self, options: ConsumerOptions) -> Result<Box<dyn Consumer>>;

    /// The next offset to be written in each partition of a topic (the high watermarks), by partition number.
    async fn end_offsets(&self, topic: &str) -> Result<Vec<u64>>;

    /// Reads up to `max` records of one partition from `offset` on, outside any consumer group, waiting up to
    /// `wait` for the first one. This is how a cursor is served (the pull API): the caller keeps the position.
    /// Offsets removed by compaction are skipped; an offset past the end returns an empty batch.
    async fn fetch(&self, read: &FetchRequest) -> Result<Vec<ConsumedRecord>>;

    /// Per partition of `topic`, the first offset whose record's timestamp is at or after `timestamp_ms` (the
    /// end offset where there is none): where a reader that wants everything since that time starts. Kafka
    /// answers from its time index (`offsetsForTimes`); the embedded bus from its own per-second index, so
    /// neither scans the topic.
    async fn offsets_for_time(&self, topic: &str, timestamp_ms: i64) -> Result<Vec<u64>>;

    /// Removes what the retention policies of the topics allow to go, and says what went. Kafka brokers enforce
    /// retention themselves, so there this does nothing; the embedded bus does it here (and compacts its
    /// compacted topics). Topics without a policy — the audit log among them — are never touched.
    async fn enforce_retention(&self) -> Result<Vec<RetentionRemoval>> {
        Ok(Vec::new())
    }

    /// Removes the records of one partition before `offset` — what a store-and-forward buffer no longer needs
    /// once the far side has acknowledged it — and says how many went. Only the embedded bus removes anything;
    /// on Kafka the broker's retention decides, so there this removes nothing.
    async fn remove_before(&self, topic: &str, partition: u32, offset: u64) -> Result<u64> {
        let _ = (topic, partition, offset);
        Ok(0)
    }

    /// The offsets `group` has committed on `topic`, by partition (`None` where it has committed nothing).
    async fn committed_offsets(&self, group: &str, topic: &str) -> Result<Vec<Option<u64>>>;

    /// Commits, for `group` on `topic`, the next offset to read per partition — as `(partition, offset)` — without
    /// being a member of the group (a pull client's acknowledgement). Durable when it returns `Ok`.
    async fn commit_offsets(&self, group: &str, topic: &str, offsets: &[(u32, u64)]) -> Result<()>;

    /// How the bus's own store stands (the embedded bus), or `None` where the store is someone else's (Kafka).
    /// It may wait on the store's locks (fjall holds one while it deletes journals), so call it off the async
    /// workers.
    fn store_stats(&self) -> Option<StoreStats> {
        None
    }

    /// Flushes anything in flight and releases resources. Records acknowledged by [`Bus::publish`] are already
    /// durable; this only makes shutdown tidy.
    async fn shutdown(&self) -> Result<()>;
}

/// A consumer: reads records from its assigned partitions and commits offsets when their effect is durable.
#[async_trait]
pub trait Consumer: Send {
    /// Waits up to `timeout` for records and returns at most `max` of them (an empty batch on time-out).
    /// Within a partition records come in offset order.
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<ConsumedRecord>>;

    /// Commits, for each partition among `records`, the offset after the highest one given: the group will resume
    /// after them. Call this only once the records' effect is durable (at-least-once). Partitions no longer
    /// assigned to this member are skipped, since another member now owns them. A consumer without a group
    /// commits nothing.
    async fn commit(&mut self, records: &[ConsumedRecord]) -> Result<()>;

    /// The partitions currently assigned to this member, as `(topic, partition)`, sorted.
    fn assignment(&self) -> Vec<(String, u32)>;

    /// Publishes `parts` (as [`Bus::publish_all`]) and commits `records` (as [`Consumer::commit`]) as one unit
    /// where the bus can: the embedded bus writes the records and the group's new offsets in one atomic batch
    /// with one fsync, so a crash either keeps both or neither — a consume-transform-produce step that is
    /// neither lost nor repeated. Elsewhere (Kafka here) the parts are made durable first and the offsets
    /// committed after: a crash in between repeats the step (at-least-once; record ids stay the idempotency key).
    async fn publish_and_commit(
        &mut self,
        bus: &dyn Bus,
        parts: Vec<(String, Vec<Record>)>,
        records: &[ConsumedRecord],
    ) -> Result<Vec<Vec<Position>>> {
        let positions = bus.publish_all(parts).await?;
        self.commit(records).await?;
        Ok(positions)
    }
}

/// The highest offset per `(topic, partition)` among `records`: what [`Consumer::commit`] commits (plus one).
pub fn highest_offsets(records: &[ConsumedRecord]) -> BTreeMap<(String, u32), u64> {
    let mut highest: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for r in records {
        let entry = highest
            .entry((r.position.topic.clone(), r.position.partition))
            .or_insert(r.position.offset);
        *entry = (*entry).max(r.position.offset);
    }
    highest
}

/// Range assignment of `partitions` partitions among `members` (sorted), as Kafka's range assignor does:
/// member `i` gets a contiguous block, the first `partitions % members` members one extra.
pub(crate) fn range_assign(partitions: u32, members: usize, member_index: usize) -> Vec<u32> {
    if members == 0 || member_index >= members {
        return Vec::new();
    }
    let members = members as u32;
    let index = member_index as u32;
    let per = partitions / members;
    let extra = partitions % members;
    let start = index * per + index.min(extra);
    let count = per + u32::from(index < extra);
    (start..start + count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records as the embedded bus stored them before their byte fields were `serde_bytes`.
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct StoredBefore {
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(String, Vec<u8>)>,
        timestamp_ms: i64,
    }

    #[test]
    fn byte_fields_keep_the_stored_encoding() {
        let record = Record::new(b"k-1".as_slice(), vec![0u8, 1, 200, 255, 7])
            .with_header("unsilo.record_id", b"r-1".to_vec());
        let before = StoredBefore {
            key: record.key.clone(),
            value: record.value.clone(),
            headers: vec![("unsilo.record_id".into(), b"r-1".to_vec())],
            timestamp_ms: record.timestamp_ms,
        };
        let stored = postcard::to_allocvec(&before).unwrap();
        assert_eq!(postcard::to_allocvec(&record).unwrap(), stored);
        assert_eq!(postcard::from_bytes::<Record>(&stored).unwrap(), record);
        let tombstone = Record {
            value: None,
            ..record
        };
        let read: Record =
            postcard::from_bytes(&postcard::to_allocvec(&tombstone).unwrap()).unwrap();
        assert_eq!(read, tombstone);
    }

    #[test]
    fn range_assign_covers_every_partition_once() {
        for partitions in 1..12 {
            for members in 1..5 {
                let mut all: Vec<u32> = (0..members)
                    .flat_map(|i| range_assign(partitions, members, i))
                    .collect();
                all.sort_unstable();
                assert_eq!(all, (0..partitions).collect::<Vec<_>>());
            }
        }
        assert!(range_assign(2, 3, 2).is_empty());
    }

    #[test]
    fn topic_names_are_checked_like_kafka() {
        assert!(TopicSpec::new("std.grid_event", 4).validate().is_ok());
        assert!(TopicSpec::compacted("_unsilo.schemas").validate().is_ok());
        assert!(matches!(
            TopicSpec::new("bad topic", 1).validate(),
            Err(Error::InvalidTopicName(_))
        ));
        assert!(matches!(
            TopicSpec::new("网格", 1).validate(),
            Err(Error::InvalidTopicName(_))
        ));
        assert!(matches!(
            TopicSpec::new("t", 0).validate(),
            Err(Error::InvalidPartitionCount { .. })
        ));
    }

    #[test]
    fn highest_offsets_takes_the_maximum_per_partition() {
        let rec = |p: u32, o: u64| ConsumedRecord {
            position: Position {
                topic: "t".into(),
                partition: p,
                offset: o,
            },
            record: Record::default(),
        };
        let h = highest_offsets(&[rec(0, 3), rec(0, 1), rec(1, 7)]);
        assert_eq!(h[&("t".to_owned(), 0)], 3);
        assert_eq!(h[&("t".to_owned(), 1)], 7);
    }
}
