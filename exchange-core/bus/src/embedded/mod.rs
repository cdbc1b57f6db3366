//! The embedded bus: an in-process, crash-safe log in a data directory, on the fjall LSM store.
//!
//! Layout inside the fjall keyspace (`<data_dir>/bus`):
//!
//! - fjall partition `log`: one entry per record, keyed `topic id (u32 BE) | partition (u32 BE) | offset (u64 BE)`
//!   so a range scan reads a partition in offset order; the value is the [`Record`] encoded with postcard.
//! - fjall partition `meta`: `t/<topic>` → the topic's id, partition count and compaction flag;
//!   `r/<topic>` → its [`Retention`]; `o/<group>\0<topic id><partition>` → the group's committed offset (the
//!   next offset to read).
//! - fjall partition `index`: the time and size index, one entry per partition per second of record time, keyed
//!   `topic id | partition | second` (the running maximum of the record timestamps, so keys only grow), valued
//!   `end offset | bytes written so far`: every record before *end offset* has a timestamp before the end of
//!   that second. [`Bus::offsets_for_time`] finds its start with one lookup and a short forward read;
//!   retention finds what to remove by age and by size the same way.
//!
//! **Writes** go through one writer thread that drains every pending publish request, assigns offsets, writes
//! them in one atomic batch and fsyncs the journal once for all of them (durable group commit); only then are the
//! publishers answered. **Reads** are range scans; consumers wait on a watch channel that the writer bumps after
//! each commit. **Consumer groups** live in this process: members split each topic's partitions with Kafka's range
//! assignment, and committed offsets are stored durably in `meta`. [`Consumer::publish_and_commit`] writes a
//! consumer's new offsets in the same atomic batch as the records it publishes. Compacted topics are compacted
//! when the bus opens and on each [`Bus::enforce_retention`] pass (only the latest record per key is kept;
//! offsets are never reused); topics with a [`Retention`] lose their old records on those passes too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

mod filesystem;
mod index;

pub use filesystem::FileSystem;
use index::{index_key, index_value, read_index_value, second_of};

use super::{
    highest_offsets, partition_for_key, range_assign, Bus, ConsumedRecord, Consumer,
    ConsumerOptions, Error, FetchRequest, Position, Record, Result, Retention, RetentionRemoval,
    StartFrom, StoreStats, TopicSpec,
};

/// How many records the writer puts in one batch (one fsync) at most.
const MAX_RECORDS_PER_COMMIT: usize = 65_536;
/// How many publish requests may wait for the writer before publishers wait too (back-pressure).
const WRITER_QUEUE: usize = 4_096;

/// Options of the embedded bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// fsync the journal before acknowledging a publish or a commit (default `true`). Turning it off is faster,
    /// but the last acknowledged records may be lost on a crash or power loss: keep it on in production.
    pub fsync: bool,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self { fsync: true }
    }
}

/// The embedded bus. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    keyspace: Keyspace,
    log: PartitionHandle,
    meta: PartitionHandle,
    index: PartitionHandle,
    fsync: bool,
    topics: RwLock<HashMap<String, Arc<TopicState>>>,
    groups: Mutex<HashMap<String, Group>>,
    next_member_id: AtomicU64,
    /// Bumped by the writer after each commit; consumers wait on it.
    appended: watch::Receiver<u64>,
    writer: Mutex<Option<mpsc::Sender<AppendRequest>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Whether the data directory's file system trims deleted files synchronously (see [`FileSystem`]).
    online_discard: bool,
    closed: AtomicBool,
}

/// A topic as the embedded bus keeps it in memory.
struct TopicState {
    id: u32,
    spec: TopicSpec,
    /// Next offset per partition. Written only by the writer thread, after its batch is durable.
    next_offsets: Vec<AtomicU64>,
    /// The running maximum of record timestamps per partition (the index's clock).
    max_timestamp: Vec<AtomicI64>,
    /// Bytes ever written per partition (as stored), counted since the index began.
    bytes_written: Vec<AtomicU64>,
    /// The first offset not removed by retention, per partition.
    first_kept: Vec<AtomicU64>,
    retention: RwLock<Retention>,
    round_robin: AtomicU32,
}

impl TopicState {
    fn new(id: u32, spec: TopicSpec) -> Self {
        let n = spec.partitions as usize;
        Self {
            id,
            next_offsets: (0..n).map(|_| AtomicU64::new(0)).collect(),
            max_timestamp: (0..n).map(|_| AtomicI64::new(0)).collect(),
            bytes_written: (0..n).map(|_| AtomicU64::new(0)).collect(),
            first_kept: (0..n).map(|_| AtomicU64::new(0)).collect(),
            retention: RwLock::new(spec.retention),
            spec,
            round_robin: AtomicU32::new(0),
        }
    }

    fn retention(&self) -> Retention {
        self.retention.read().map(|r| *r).unwrap_or_default()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TopicMeta {
    id: u32,
    partitions: u32,
    compacted: bool,
}

/// Records for one or more topics, and consumer-group offsets, committed together (one atomic batch, one fsync).
struct AppendRequest {
    parts: Vec<(Arc<TopicState>, Vec<Record>)>,
    /// Committed offsets to store with the records: `meta` key → next offset.
    offsets: Vec<(Vec<u8>, u64)>,
    reply: oneshot::Sender<Result<Vec<Vec<Position>>>>,
}

impl AppendRequest {
    fn len(&self) -> usize {
        self.parts.iter().map(|(_, r)| r.len()).sum()
    }
}

/// A consumer group: its members and a generation bumped on every join and leave.
#[derive(Default)]
struct Group {
    members: BTreeMap<u64, Vec<String>>,
    generation: u64,
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

fn log_key(topic_id: u32, partition: u32, offset: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&topic_id.to_be_bytes());
    k[4..8].copy_from_slice(&partition.to_be_bytes());
    k[8..].copy_from_slice(&offset.to_be_bytes());
    k
}

fn offset_of_log_key(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key
        .get(8..16)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| Error::Store(format!("log key of {} bytes, expected 16", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

fn topic_meta_key(name: &str) -> Vec<u8> {
    let mut k = b"t/".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn retention_meta_key(name: &str) -> Vec<u8> {
    let mut k = b"r/".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn committed_key(group: &str, topic_id: u32, partition: u32) -> Vec<u8> {
    let mut k = b"o/".to_vec();
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k.extend_from_slice(&topic_id.to_be_bytes());
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

impl EmbeddedBus {
    /// Opens (or creates) the bus in `dir` with default options (fsync on).
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// Opens (or creates) the bus in `dir`.
    pub fn open_with(dir: &Path, options: EmbeddedOptions) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Store(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let keyspace = Config::new(dir.join("bus")).open().map_err(store_err)?;
        let log = keyspace
            // Size-tiered: the log is written once and read in order, so the leveled default's rewrites of
            // overlapping segments (every flush spans every topic) cost the writer's CPU for nothing.
            .open_partition(
                "log",
                PartitionCreateOptions::default().compaction_strategy(
                    fjall::compaction::Strategy::SizeTiered(
                        fjall::compaction::SizeTiered::default(),
                    ),
                ),
            )
            .map_err(store_err)?;
        let meta = keyspace
            .open_partition("meta", PartitionCreateOptions::default())
            .map_err(store_err)?;
        let index = keyspace
            .open_partition("index", PartitionCreateOptions::default())
            .map_err(store_err)?;

        let mut topics = HashMap::new();
        for item in meta.prefix(b"t/") {
            let (key, value) = item.map_err(store_err)?;
            let name = String::from_utf8_lossy(&key[2..]).into_owned();
            let m: TopicMeta = postcard::from_bytes(&value)
                .map_err(|e| Error::Store(format!("topic `{name}` metadata unreadable: {e}")))?;
            let retention = match meta.get(retention_meta_key(&name)).map_err(store_err)? {
                Some(v) => postcard::from_bytes(&v).map_err(|e| {
                    Error::Store(format!("topic `{name}` retention unreadable: {e}"))
                })?,
                None => Retention::FOREVER,
            };
            let state = TopicState::new(
                m.id,
                TopicSpec {
                    name: name.clone(),
                    partitions: m.partitions,
                    compacted: m.compacted,
                    retention,
                },
            );
            for p in 0..m.partitions {
                let range = log_key(m.id, p, 0)..=log_key(m.id, p, u64::MAX);
                let i = p as usize;
                if let Some((k, _)) = log
                    .range(range.clone())
                    .next_back()
                    .transpose()
                    .map_err(store_err)?
                {
                    state.next_offsets[i].store(offset_of_log_key(&k)? + 1, Ordering::Relaxed);
                }
                if let Some((k, _)) = log.range(range).next().transpose().map_err(store_err)? {
                    state.first_kept[i].store(offset_of_log_key(&k)?, Ordering::Relaxed);
                }
                let last_indexed = index
                    .range(index_key(m.id, p, 0)..=index_key(m.id, p, u64::MAX))
                    .next_back()
                    .transpose()
                    .map_err(store_err)?;
                if let Some((k, v)) = last_indexed {
                    let second = offset_of_log_key(&k)?;
                    let (_, bytes) = read_index_value(&v)?;
                    let ms = i64::try_from(second.saturating_mul(1000)).unwrap_or(i64::MAX);
                    state.max_timestamp[i].store(ms, Ordering::Relaxed);
                    state.bytes_written[i].store(bytes, Ordering::Relaxed);
                }
            }
            if m.compacted {
                compact(&keyspace, &log, &state)?;
            }
            topics.insert(name, Arc::new(state));
        }

        let (appended_tx, appended_rx) = watch::channel(0u64);
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let writer = Writer {
            keyspace: keyspace.clone(),
            log: log.clone(),
            meta: meta.clone(),
            index: index.clone(),
            fsync: options.fsync,
            appended: appended_tx,
        };
        let thread = std::thread::Builder::new()
            .name("unsilo-bus-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Store(format!("cannot start the writer thread: {e}")))?;

        let discarding = FileSystem::of(dir).filter(FileSystem::online_discard);
        let online_discard = discarding.is_some();
        if let Some(fs) = &discarding {
            warn!(dir = %dir.display(), mount_point = %fs.mount_point.display(), fs_type = %fs.fs_type,
                "The data directory's file system is mounted with online discard: every file the store deletes \
                 holds up every fsync while the device trims it (p99 delivery latency 46-157 ms measured, against \
                 11-16 ms without). Remount it without `discard` and trim it periodically \
                 (systemctl enable --now fstrim.timer).");
        }
        info!(dir = %dir.display(), topics = topics.len(), fsync = options.fsync, "Embedded bus opened.");
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                keyspace,
                log,
                meta,
                index,
                fsync: options.fsync,
                topics: RwLock::new(topics),
                groups: Mutex::new(HashMap::new()),
                next_member_id: AtomicU64::new(1),
                appended: appended_rx,
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(thread)),
                online_discard,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The data directory this bus lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn topic(&self, name: &str) -> Result<Arc<TopicState>> {
        self.inner
            .topics
            .read()
            .map_err(|_| Error::Store("topic table lock poisoned".into()))?
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_owned()))
    }

    /// The offset `group` has committed on one partition of `topic`, if any.
    fn committed(&self, group: &str, topic: &TopicState, partition: u32) -> Result<Option<u64>> {
        Ok(self
            .inner
            .meta
            .get(committed_key(group, topic.id, partition))
            .map_err(store_err)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Reads up to `max` records of one partition in `[from, end)`, skipping gaps left by compaction.
    fn read_range(
        &self,
        topic: &TopicState,
        partition: u32,
        from: u64,
        end: u64,
        max: usize,
    ) -> Result<Vec<ConsumedRecord>> {
        let mut out = Vec::new();
        let range = log_key(topic.id, partition, from)..log_key(topic.id, partition, end);
        for item in self.inner.log.range(range) {
            if out.len() >= max {
                break;
            }
            let (k, v) = item.map_err(store_err)?;
            let offset = offset_of_log_key(&k)?;
            let record: Record = postcard::from_bytes(&v).map_err(|e| {
                Error::Store(format!(
                    "record {}/{partition}/{offset} unreadable: {e}",
                    topic.spec.name
                ))
            })?;
            out.push(ConsumedRecord {
                position: Position {
                    topic: topic.spec.name.clone(),
                    partition,
                    offset,
                },
                record,
            });
        }
        Ok(out)
    }

    fn persist(&self) -> Result<()> {
        if self.inner.fsync {
            self.inner
                .keyspace
                .persist(PersistMode::SyncAll)
                .map_err(store_err)?;
        }
        Ok(())
    }
}

/// Removes every record of a compacted topic that a later record with the same key supersedes.
fn compact(keyspace: &Keyspace, log: &PartitionHandle, topic: &TopicState) -> Result<()> {
    let mut removed = 0usize;
    for p in 0..topic.spec.partitions {
        let mut latest: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut superseded = Vec::new();
        for item in log.range(log_key(topic.id, p, 0)..=log_key(topic.id, p, u64::MAX)) {
            let (k, v) = item.map_err(store_err)?;
            let record: Record = postcard::from_bytes(&v).map_err(store_err)?;
            let Some(key) = record.key else { continue };
            if let Some(older) = latest.insert(key, k.to_vec()) {
                superseded.push(older);
            }
        }
        if superseded.is_empty() {
            continue;
        }
        let mut batch = keyspace.batch();
        for k in &superseded {
            batch.remove(log, k.as_slice());
        }
        batch.commit().map_err(store_err)?;
        removed += superseded.len();
    }
    if removed > 0 {
        keyspace.persist(PersistMode::SyncAll).map_err(store_err)?;
        info!(topic = %topic.spec.name, removed, "Compacted topic.");
    }
    Ok(())
}

/// The single writer: group commit of all pending publishes.
struct Writer {
    keyspace: Keyspace,
    log: PartitionHandle,
    meta: PartitionHandle,
    index: PartitionHandle,
    fsync: bool,
    appended: watch::Sender<u64>,
}

impl Writer {
    fn run(self, mut rx: mpsc::Receiver<AppendRequest>) {
        let mut commits = 0u64;
        while let Some(first) = rx.blocking_recv() {
            let mut count = first.len();
            let mut pending = vec![first];
            while count < MAX_RECORDS_PER_COMMIT {
                match rx.try_recv() {
                    Ok(req) => {
                        count += req.len();
                        pending.push(req);
                    }
                    Err(_) => break,
                }
            }
            let outcome = self.commit(&pending);
            // Offsets alone give readers nothing new: only records wake them.
            let wrote_records = pending
                .iter()
                .any(|req| req.parts.iter().any(|(_, records)| !records.is_empty()));
            match outcome {
                Ok(positions) => {
                    commits += 1;
                    for (req, pos) in pending.into_iter().zip(positions) {
                        // A publisher that gave up waiting is not an error: its records are durable anyway.
                        let _ = req.reply.send(Ok(pos));
                    }
                    if wrote_records {
                        self.appended.send_replace(commits);
                    }
                }
                Err(e) => {
                    warn!(error = %e, records = count, "Embedded bus commit failed.");
                    for req in pending {
                        let _ = req.reply.send(Err(Error::Store(e.to_string())));
                    }
                }
            }
        }
        debug!("Embedded bus writer stopped.");
    }

    /// Writes all pending requests in one batch and fsyncs once. Offsets become visible only on success.
    fn commit(&self, pending: &[AppendRequest]) -> Result<Vec<Vec<Vec<Position>>>> {
        let mut batch = self.keyspace.batch();
        // Offsets assigned in this batch, per (topic id, partition); applied to the topic state after commit.
        let mut next: HashMap<(u32, u32), u64> = HashMap::new();
        // The index's clock and byte count per (topic id, partition) touched, applied after commit too.
        let mut clock: HashMap<(u32, u32), (i64, u64)> = HashMap::new();
        let mut all_positions = Vec::with_capacity(pending.len());
        let mut buf = Vec::new();
        for req in pending {
            let mut req_positions = Vec::with_capacity(req.parts.len());
            for (topic, records) in &req.parts {
                let mut positions = Vec::with_capacity(records.len());
                for record in records {
                    let partition = match &record.key {
                        Some(k) => partition_for_key(k, topic.spec.partitions),
                        None => {
                            topic.round_robin.fetch_add(1, Ordering::Relaxed)
                                % topic.spec.partitions
                        }
                    };
                    let slot = next.entry((topic.id, partition)).or_insert_with(|| {
                        topic.next_offsets[partition as usize].load(Ordering::Acquire)
                    });
                    let offset = *slot;
                    *slot += 1;
                    buf.clear();
                    let encoded =
                        postcard::to_extend(record, std::mem::take(&mut buf)).map_err(store_err)?;
                    let (max_ts, bytes) = clock.entry((topic.id, partition)).or_insert_with(|| {
                        let p = partition as usize;
                        (
                            topic.max_timestamp[p].load(Ordering::Acquire),
                            topic.bytes_written[p].load(Ordering::Acquire),
                        )
                    });
                    *max_ts = (*max_ts).max(record.timestamp_ms);
                    *bytes += encoded.len() as u64;
                    batch.insert(
                        &self.log,
                        log_key(topic.id, partition, offset),
                        encoded.as_slice(),
                    );
                    buf = encoded;
                    positions.push(Position {
                        topic: topic.spec.name.clone(),
                        partition,
                        offset,
                    });
                }
                req_positions.push(positions);
            }
            all_positions.push(req_positions);
            for (key, offset) in &req.offsets {
                batch.insert(&self.meta, key.as_slice(), offset.to_be_bytes());
            }
        }
        for (&(topic_id, partition), &(max_ts, bytes)) in &clock {
            let end = next[&(topic_id, partition)];
            batch.insert(
                &self.index,
                index_key(topic_id, partition, second_of(max_ts)),
                index_value(end, bytes),
            );
        }
        batch.commit().map_err(store_err)?;
        if self.fsync {
            self.keyspace
                .persist(PersistMode::SyncAll)
                .map_err(store_err)?;
        }
        for (topic, _) in pending.iter().flat_map(|req| &req.parts) {
            for (p, slot) in topic.next_offsets.iter().enumerate() {
                if let Some((max_ts, bytes)) = clock.get(&(topic.id, p as u32)) {
                    topic.max_timestamp[p].fetch_max(*max_ts, Ordering::Release);
                    topic.bytes_written[p].fetch_max(*bytes, Ordering::Release);
                }
                if let Some(n) = next.get(&(topic.id, p as u32)) {
                    slot.fetch_max(*n, Ordering::Release);
                }
            }
        }
        Ok(all_positions)
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn writes_atomically(&self) -> bool {
        true
    }

    async fn create_topic(&self, spec: &TopicSpec) -> Result<()> {
        spec.validate()?;
        let mut topics = self
            .inner
            .topics
            .write()
            .map_err(|_| Error::Store("topic table lock poisoned".into()))?;
        if let Some(existing) = topics.get(&spec.name) {
            if existing.retention() != spec.retention {
                self.store_retention(&spec.name, spec.retention)?;
                if let Ok(mut r) = existing.retention.write() {
                    *r = spec.retention;
                }
                info!(topic = %spec.name, retention = ?spec.retention, "Topic retention changed.");
            }
            return Ok(());
        }
        let id = topics.values().map(|t| t.id + 1).max().unwrap_or(1);
        let meta = TopicMeta {
            id,
            partitions: spec.partitions,
            compacted: spec.compacted,
        };
        let value = postcard::to_allocvec(&meta).map_err(store_err)?;
        self.inner
            .meta
            .insert(topic_meta_key(&spec.name), value)
            .map_err(store_err)?;
        if !spec.retention.is_forever() {
            self.store_retention(&spec.name, spec.retention)?;
        }
        self.persist()?;
        topics.insert(
            spec.name.clone(),
            Arc::new(TopicState::new(id, spec.clone())),
        );
        info!(topic = %spec.name, partitions = spec.partitions, compacted = spec.compacted, "Topic created.");
        Ok(())
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<u32>> {
        match self.topic(topic) {
            Ok(t) => Ok(Some(t.spec.partitions)),
            Err(Error::UnknownTopic(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn publish(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Position>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut positions = self.publish_all(vec![(topic.to_owned(), records)]).await?;
        Ok(positions.pop().unwrap_or_default())
    }

    /// One atomic write of every part: all of it becomes durable with one fsync, or none of it.
    async fn publish_all(&self, batches: Vec<(String, Vec<Record>)>) -> Result<Vec<Vec<Position>>> {
        self.append(batches, Vec::new()).await
    }

    async fn offsets_for_time(&self, topic: &str, timestamp_ms: i64) -> Result<Vec<u64>> {
        let t = self.topic(topic)?;
        let bus = self.clone();
        tokio::task::spawn_blocking(move || {
            (0..t.spec.partitions)
                .map(|p| bus.offset_for_time(&t, p, timestamp_ms))
                .collect()
        })
        .await
        .map_err(|e| Error::Store(format!("time lookup task failed: {e}")))?
    }

    async fn enforce_retention(&self) -> Result<Vec<RetentionRemoval>> {
        let topics: Vec<Arc<TopicState>> = self
            .inner
            .topics
            .read()
            .map_err(|_| Error::Store("topic table lock poisoned".into()))?
            .values()
            .cloned()
            .collect();
        let bus = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut removed = Vec::new();
            for t in topics {
                if t.spec.compacted {
                    compact(&bus.inner.keyspace, &bus.inner.log, &t)?;
                }
                let retention = t.retention();
                if retention.is_forever() {
                    continue;
                }
                for p in 0..t.spec.partitions {
                    if let Some(r) = bus.apply_retention(&t, p, retention, super::now_ms())? {
                        removed.push(r);
                    }
                }
            }
            if !removed.is_empty() {
                bus.persist()?;
            }
            Ok(removed)
        })
        .await
        .map_err(|e| Error::Store(format!("retention task failed: {e}")))?
    }

    async fn remove_before(&self, topic: &str, partition: u32, offset: u64) -> Result<u64> {
        let t = self.topic(topic)?;
        if partition >= t.spec.partitions {
            return Err(Error::Store(format!(
                "{topic} has no partition {partition}"
            )));
        }
        let bus = self.clone();
        tokio::task::spawn_blocking(move || {
            let first = t.first_kept[partition as usize].load(Ordering::Acquire);
            let end = t.next_offsets[partition as usize].load(Ordering::Acquire);
            let cut = offset.min(end);
            if cut <= first {
                return Ok(0);
            }
            let removed = bus.remove_range(&t, partition, first, cut)?;
            bus.persist()?;
            Ok(removed)
        })
        .await
        .map_err(|e| Error::Store(format!("removal task failed: {e}")))?
    }

    async fn consumer(&self, options: ConsumerOptions) -> Result<Box<dyn Consumer>> {
        let mut topics = Vec::with_capacity(options.topics.len());
        for name in &options.topics {
            topics.push(self.topic(name)?);
        }
        let member_id = self.inner.next_member_id.fetch_add(1, Ordering::Relaxed);
        if let Some(group) = &options.group {
            let mut groups = self
                .inner
                .groups
                .lock()
                .map_err(|_| Error::Store("group table lock poisoned".into()))?;
            let g = groups.entry(group.clone()).or_default();
            g.members.insert(member_id, options.topics.clone());
            g.generation += 1;
            debug!(group = %group, member_id, members = g.members.len(), "Consumer joined group.");
        }
        let mut consumer = EmbeddedConsumer {
            bus: self.clone(),
            group: options.group,
            member_id,
            start: options.start,
            topics,
            generation: u64::MAX,
            assigned: Vec::new(),
            positions: HashMap::new(),
            cursor: 0,
            appended: self.inner.appended.clone(),
        };
        consumer.refresh_assignment()?;
        Ok(Box::new(consumer))
    }

    async fn fetch(&self, read: &FetchRequest) -> Result<Vec<ConsumedRecord>> {
        let (topic, partition, offset) = (
            read.from.topic.as_str(),
            read.from.partition,
            read.from.offset,
        );
        let (max, wait) = (read.max, read.wait);
        let t = self.topic(topic)?;
        let Some(next) = t.next_offsets.get(partition as usize) else {
            return Err(Error::Store(format!(
                "topic `{topic}` has no partition {partition}"
            )));
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut appended = self.inner.appended.clone();
        loop {
            if self.inner.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            appended.borrow_and_update();
            let end = next.load(Ordering::Acquire);
            if offset < end {
                return self.read_range(&t, partition, offset, end, max.max(1));
            }
            match tokio::time::timeout_at(deadline, appended.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) => return Ok(Vec::new()),
            }
        }
    }

    async fn committed_offsets(&self, group: &str, topic: &str) -> Result<Vec<Option<u64>>> {
        let t = self.topic(topic)?;
        (0..t.spec.partitions)
            .map(|p| self.committed(group, &t, p))
            .collect()
    }

    async fn commit_offsets(&self, group: &str, topic: &str, offsets: &[(u32, u64)]) -> Result<()> {
        let t = self.topic(topic)?;
        let mut keyed = Vec::with_capacity(offsets.len());
        for &(partition, offset) in offsets {
            if partition >= t.spec.partitions {
                return Err(Error::Store(format!(
                    "topic `{topic}` has no partition {partition}"
                )));
            }
            keyed.push((committed_key(group, t.id, partition), offset));
        }
        // Through the writer: group-committed with the publishes, one fsync for all.
        self.append(Vec::new(), keyed).await.map(drop)
    }

    async fn end_offsets(&self, topic: &str) -> Result<Vec<u64>> {
        let t = self.topic(topic)?;
        Ok(t.next_offsets
            .iter()
            .map(|o| o.load(Ordering::Acquire))
            .collect())
    }

    fn store_stats(&self) -> Option<StoreStats> {
        let inner = &self.inner;
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Some(StoreStats {
            journals: count(inner.keyspace.journal_count()),
            write_buffer_bytes: inner.keyspace.write_buffer_size(),
            online_discard: inner.online_discard,
            log_segments: count(inner.log.segment_count()),
            segment_bytes: [&inner.log, &inner.meta, &inner.index]
                .iter()
                .map(|p| p.disk_space())
                .sum(),
        })
    }

    async fn shutdown(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.stop_writer();
        self.inner
            .keyspace
            .persist(PersistMode::SyncAll)
            .map_err(store_err)?;
        info!(dir = %self.inner.dir.display(), "Embedded bus shut down.");
        Ok(())
    }
}

impl EmbeddedBus {
    /// Sends records and offsets to the writer and waits until they are durable.
    async fn append(
        &self,
        batches: Vec<(String, Vec<Record>)>,
        offsets: Vec<(Vec<u8>, u64)>,
    ) -> Result<Vec<Vec<Position>>> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let mut parts = Vec::with_capacity(batches.len());
        for (topic, records) in batches {
            parts.push((self.topic(&topic)?, records));
        }
        let sender = self
            .inner
            .writer
            .lock()
            .map_err(|_| Error::Store("writer lock poisoned".into()))?
            .clone()
            .ok_or(Error::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(AppendRequest {
                parts,
                offsets,
                reply,
            })
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    fn store_retention(&self, topic: &str, retention: Retention) -> Result<()> {
        let value = postcard::to_allocvec(&retention).map_err(store_err)?;
        self.inner
            .meta
            .insert(retention_meta_key(topic), value)
            .map_err(store_err)
    }
}

impl Inner {
    /// Closes the writer's queue and waits for it to finish what it has (nothing acknowledged is lost).
    fn stop_writer(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        let handle = self.writer_thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            if h.join().is_err() {
                warn!("Embedded bus writer thread panicked.");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_writer();
    }
}

/// A consumer on the embedded bus.
struct EmbeddedConsumer {
    bus: EmbeddedBus,
    group: Option<String>,
    member_id: u64,
    start: StartFrom,
    topics: Vec<Arc<TopicState>>,
    /// Group generation the assignment was computed for.
    generation: u64,
    assigned: Vec<(Arc<TopicState>, u32)>,
    /// Next offset to read, per (topic id, partition).
    positions: HashMap<(u32, u32), u64>,
    /// Partition to start the next scan at, so one busy partition cannot starve the others.
    cursor: usize,
    appended: watch::Receiver<u64>,
}

impl EmbeddedConsumer {
    /// Recomputes the assignment if the group changed; new partitions start at the committed offset.
    fn refresh_assignment(&mut self) -> Result<()> {
        let Some(group) = self.group.clone() else {
            if self.generation == u64::MAX {
                self.generation = 0;
                self.assigned = self
                    .topics
                    .iter()
                    .flat_map(|t| (0..t.spec.partitions).map(move |p| (t.clone(), p)))
                    .collect();
                for (t, p) in &self.assigned {
                    let start = match self.start {
                        StartFrom::Earliest => 0,
                        StartFrom::Latest => t.next_offsets[*p as usize].load(Ordering::Acquire),
                    };
                    self.positions.insert((t.id, *p), start);
                }
            }
            return Ok(());
        };
        let (generation, assigned) = {
            let groups = self
                .bus
                .inner
                .groups
                .lock()
                .map_err(|_| Error::Store("group table lock poisoned".into()))?;
            let Some(g) = groups.get(&group) else {
                return Ok(());
            };
            if g.generation == self.generation {
                return Ok(());
            }
            let mut assigned = Vec::new();
            for t in &self.topics {
                let members: Vec<u64> = g
                    .members
                    .iter()
                    .filter(|(_, topics)| topics.contains(&t.spec.name))
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(index) = members.iter().position(|m| *m == self.member_id) {
                    for p in range_assign(t.spec.partitions, members.len(), index) {
                        assigned.push((t.clone(), p));
                    }
                }
            }
            (g.generation, assigned)
        };
        let keep: HashSet<(u32, u32)> = assigned.iter().map(|(t, p)| (t.id, *p)).collect();
        self.positions.retain(|k, _| keep.contains(k));
        for (t, p) in &assigned {
            if self.positions.contains_key(&(t.id, *p)) {
                continue;
            }
            let committed = self.bus.committed(&group, t, *p)?;
            let start = committed.unwrap_or_else(|| match self.start {
                StartFrom::Earliest => 0,
                StartFrom::Latest => t.next_offsets[*p as usize].load(Ordering::Acquire),
            });
            self.positions.insert((t.id, *p), start);
        }
        debug!(group = %group, member_id = self.member_id, generation, partitions = assigned.len(), "Assignment changed.");
        self.generation = generation;
        self.assigned = assigned;
        Ok(())
    }

    /// The `meta` entries that commit `records` for this consumer's group: the offset after the highest one per
    /// partition still assigned to this member (none without a group).
    fn offsets_to_commit(&mut self, records: &[ConsumedRecord]) -> Result<Vec<(Vec<u8>, u64)>> {
        let Some(group) = self.group.clone() else {
            return Ok(Vec::new());
        };
        self.refresh_assignment()?;
        let owned: HashMap<(&str, u32), u32> = self
            .assigned
            .iter()
            .map(|(t, p)| ((t.spec.name.as_str(), *p), t.id))
            .collect();
        let mut offsets = Vec::new();
        for ((topic, partition), offset) in highest_offsets(records) {
            match owned.get(&(topic.as_str(), partition)) {
                Some(topic_id) => {
                    offsets.push((committed_key(&group, *topic_id, partition), offset + 1));
                }
                None => {
                    debug!(group = %group, topic = %topic, partition, "Skipped commit of a partition no longer assigned.");
                }
            }
        }
        Ok(offsets)
    }

    /// Reads up to `max` available records without waiting.
    fn read_available(&mut self, max: usize) -> Result<Vec<ConsumedRecord>> {
        let mut out = Vec::new();
        let n = self.assigned.len();
        for i in 0..n {
            if out.len() >= max {
                break;
            }
            let (topic, partition) = {
                let (t, p) = &self.assigned[(self.cursor + i) % n];
                (t.clone(), *p)
            };
            let Some(pos) = self.positions.get(&(topic.id, partition)).copied() else {
                continue;
            };
            let end = topic.next_offsets[partition as usize].load(Ordering::Acquire);
            if pos >= end {
                continue;
            }
            let read = self
                .bus
                .read_range(&topic, partition, pos, end, max - out.len())?;
            let last = read.last().map(|r| r.position.offset);
            out.extend(read);
            // Gaps left by compaction are skipped: the position moves past the last offset read, or to `end`
            // when the scan reached it.
            let next = match last {
                Some(o) if out.len() >= max => o + 1,
                _ => end,
            };
            self.positions.insert((topic.id, partition), next);
        }
        if n > 0 {
            self.cursor = (self.cursor + 1) % n;
        }
        Ok(out)
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<ConsumedRecord>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.bus.inner.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            // Mark the current commit count as seen *before* reading, so a commit after the read wakes us.
            self.appended.borrow_and_update();
            self.refresh_assignment()?;
            let records = self.read_available(max.max(1))?;
            if !records.is_empty() {
                return Ok(records);
            }
            // Wake on new records, or periodically to notice a group rebalance.
            let wake = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
            match tokio::time::timeout_at(wake, self.appended.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) if tokio::time::Instant::now() >= deadline => return Ok(Vec::new()),
                Err(_) => {}
            }
        }
    }

    async fn commit(&mut self, records: &[ConsumedRecord]) -> Result<()> {
        let offsets = self.offsets_to_commit(records)?;
        if offsets.is_empty() {
            return Ok(());
        }
        // Through the writer: group-committed with the publishes, one fsync for all.
        self.bus.append(Vec::new(), offsets).await.map(drop)
    }

    /// One atomic write: the records and this group's new offsets together, one fsync.
    async fn publish_and_commit(
        &mut self,
        _bus: &dyn Bus,
        parts: Vec<(String, Vec<Record>)>,
        records: &[ConsumedRecord],
    ) -> Result<Vec<Vec<Position>>> {
        let offsets = self.offsets_to_commit(records)?;
        self.bus.append(parts, offsets).await
    }

    fn assignment(&self) -> Vec<(String, u32)> {
        let mut a: Vec<(String, u32)> = self
            .assigned
            .iter()
            .map(|(t, p)| (t.spec.name.clone(), *p))
            .collect();
        a.sort();
        a
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        if let Some(group) = &self.group {
            if let Ok(mut groups) = self.bus.inner.groups.lock() {
                if let Some(g) = groups.get_mut(group) {
                    g.members.remove(&self.member_id);
                    g.generation += 1;
                }
            }
        }
    }
}
