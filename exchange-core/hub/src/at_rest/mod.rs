//! Sensitive data encrypted at rest (等保 8.1.4.8; 密评 GB/T 39786-2021 8.4 d/e): every record the hub writes to
//! `std.*` (normalised records, with their S3/S4 fields), `raw.*` (source originals) and `dlq.*` (rejected
//! originals) is encrypted before it reaches the bus, and decrypted only where the hub reads it back.
//!
//! [`EncryptedBus`] wraps the hub's bus. On publish it seals each value of those topics with the data key of the
//! topic and the record's day ([`keys::DataKeys`]; SM4-GCM under `[security] crypto = "gm"`, AES-256-GCM under
//! `"international"`), bound to the topic, the day and the record's key, and marks it with the header
//! `unsilo.enc` = `<algorithm>:<day>`. Keys, timestamps, partitions and other headers stay as they were, so
//! ordering, retention and offsets are untouched. Readers through it — the router, history and backfills,
//! re-normalisation, source replay, the console's dead-letter page — get the plaintext; anyone holding the bus's
//! files or the Kafka topics but not the key-encryption key reads no ID number, name, phone or address.
//!
//! Subscription topics (`sub.*`) are not encrypted here: they hold only what a grant releases, already
//! treated, and are the agencies' delivery channel.
//!
//! A value that does not decrypt (its day's key shredded by retention, or the bytes altered) is handed on as a
//! tombstone-like record without a value and with the header `unsilo.enc.refused` saying why — never as
//! ciphertext and never as a panic; the original stays on the bus. Retention ([`Bus::enforce_retention`]) also
//! shreds the data keys of days every record of which retention has removed.

pub mod cipher;
pub mod keys;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tracing::{info, warn};
use unsilo_bus::{
    Bus, ConsumedRecord, Consumer, ConsumerOptions, FetchRequest, Position, Record, StoreStats,
    TopicSpec,
};
use unsilo_schemas::names::{DLQ_PREFIX, RAW_PREFIX, STD_PREFIX};

use cipher::Algorithm;
use keys::{DataKeys, FileKeyring, KeyStoreError};

/// The header that marks an encrypted value: `<algorithm>:<YYYY-MM-DD>`.
pub const HEADER_ENCRYPTED: &str = "unsilo.enc";
/// The header on a record whose value could not be decrypted, saying why.
pub const HEADER_REFUSED: &str = "unsilo.enc.refused";

/// `[security.keys]`: encryption at rest and where its keys live.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Encrypt `std.*`, `raw.*` and `dlq.*` records at rest (default true).
    #[serde(default = "crate::config::default_true")]
    pub encrypt_at_rest: bool,
    /// The key-encryption keys (JSON, mode 0600; created if missing). Default: `kek.json` beside the deployment
    /// secret. Every hub process of a deployment must use the same file (or the same crypto module).
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
    /// The wrapped data keys, per topic and day. Default: `data-keys/` beside the deployment secret. Keep it
    /// off the bus's volume and out of the bus's backups: that is what makes crypto-shredding reach them.
    #[serde(default)]
    pub data_key_dir: Option<PathBuf>,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            encrypt_at_rest: true,
            kek_file: None,
            data_key_dir: None,
        }
    }
}

impl KeysConfig {
    /// The KEK file, defaulting beside `secret_file`.
    pub fn kek_file(&self, secret_file: &Path) -> PathBuf {
        self.kek_file
            .clone()
            .unwrap_or_else(|| beside(secret_file, "kek.json"))
    }

    /// The data key directory, defaulting beside `secret_file`.
    pub fn data_key_dir(&self, secret_file: &Path) -> PathBuf {
        self.data_key_dir
            .clone()
            .unwrap_or_else(|| beside(secret_file, "data-keys"))
    }
}

fn beside(file: &Path, name: &str) -> PathBuf {
    file.parent()
        .map(|p| p.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Whether the records of `topic` are encrypted at rest.
pub fn is_encrypted_topic(topic: &str) -> bool {
    topic.starts_with(STD_PREFIX) || topic.starts_with(RAW_PREFIX) || topic.starts_with(DLQ_PREFIX)
}

/// The Beijing date (UTC+8) of a timestamp in milliseconds, `YYYY-MM-DD`: the day whose data key seals it.
pub fn day_of(timestamp_ms: i64) -> String {
    crate::calendar::beijing_day(timestamp_ms)
        .format("%Y-%m-%d")
        .to_string()
}

/// What a record's ciphertext is bound to: the topic, the day and the record's key.
fn record_aad(topic: &str, day: &str, key: Option<&[u8]>) -> Vec<u8> {
    let key = key.unwrap_or_default();
    let mut aad = Vec::with_capacity(32 + topic.len() + key.len());
    aad.extend_from_slice(b"unsilo-record-v1\0");
    aad.extend_from_slice(topic.as_bytes());
    aad.push(0);
    aad.extend_from_slice(day.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&(key.len() as u64).to_be_bytes());
    aad.extend_from_slice(key);
    aad
}

/// Seals and opens the records of encrypted topics.
#[derive(Debug)]
pub struct RecordCipher {
    keys: DataKeys,
    retention: crate::config::RetentionConfig,
}

impl RecordCipher {
    /// The cipher of a deployment: its keyring and data keys (created if missing) under `config`'s paths, new
    /// keys of `suite`'s algorithm; `retention` says which days may be shredded.
    pub fn open(
        config: &KeysConfig,
        secret_file: &Path,
        suite: unsilo_schemas::crypto::Suite,
        retention: crate::config::RetentionConfig,
    ) -> Result<Self, KeyStoreError> {
        let algorithm = Algorithm::of(suite);
        let ring = FileKeyring::open(&config.kek_file(secret_file), algorithm)?;
        Ok(Self {
            keys: DataKeys::new(&config.data_key_dir(secret_file), algorithm, Arc::new(ring)),
            retention,
        })
    }

    /// The data keys.
    pub fn keys(&self) -> &DataKeys {
        &self.keys
    }

    /// `record` as it is stored on `topic`: its value sealed, if the topic is encrypted.
    pub fn seal(&self, topic: &str, mut record: Record) -> Result<Record, KeyStoreError> {
        record
            .headers
            .retain(|h| h.name != HEADER_ENCRYPTED && h.name != HEADER_REFUSED);
        if !is_encrypted_topic(topic) {
            return Ok(record);
        }
        let Some(value) = record.value.take() else {
            return Ok(record);
        };
        let when = if record.timestamp_ms > 0 {
            record.timestamp_ms
        } else {
            unsilo_bus::now_ms()
        };
        let day = day_of(when);
        let key = self.keys.for_writing(topic, &day)?;
        record.value = Some(key.seal(&value, &record_aad(topic, &day, record.key.as_deref())));
        let mark = format!("{}:{day}", key.algorithm().as_str());
        Ok(record.with_header(HEADER_ENCRYPTED, mark.into_bytes()))
    }

    /// `record` as read from `topic`: its value opened if it is sealed. One that does not open loses its value
    /// and says why in [`HEADER_REFUSED`].
    pub fn open_record(&self, topic: &str, mut record: Record) -> Record {
        let Some(mark) = record
            .header(HEADER_ENCRYPTED)
            .map(|m| String::from_utf8_lossy(m).into_owned())
        else {
            return record;
        };
        record.headers.retain(|h| h.name != HEADER_ENCRYPTED);
        let opened = match (mark.split_once(':'), record.value.as_deref()) {
            (Some((alg, day)), Some(sealed)) if Algorithm::parse(alg).is_some() => self
                .keys
                .for_reading(topic, day)
                .map_err(|e| e.to_string())
                .and_then(|key| {
                    key.open(sealed, &record_aad(topic, day, record.key.as_deref()))
                        .map_err(|e| e.to_string())
                }),
            _ => Err(format!("unreadable encryption mark `{mark}`")),
        };
        match opened {
            Ok(plain) => record.value = Some(plain),
            Err(reason) => {
                warn!(topic, reason = %reason, "A record on the bus could not be decrypted; it is passed on without its value.");
                record.value = None;
                record = record.with_header(HEADER_REFUSED, reason.into_bytes());
            }
        }
        record
    }

    fn seal_all(&self, topic: &str, records: Vec<Record>) -> unsilo_bus::Result<Vec<Record>> {
        records
            .into_iter()
            .map(|r| self.seal(topic, r))
            .collect::<Result<_, _>>()
            .map_err(|e| unsilo_bus::Error::Store(format!("encryption at rest: {e}")))
    }

    /// Every part of a multi-topic write, sealed for its topic.
    fn seal_parts(
        &self,
        parts: Vec<(String, Vec<Record>)>,
    ) -> unsilo_bus::Result<Vec<(String, Vec<Record>)>> {
        parts
            .into_iter()
            .map(|(topic, rs)| {
                let rs = self.seal_all(&topic, rs)?;
                Ok((topic, rs))
            })
            .collect()
    }

    fn open_all(&self, records: Vec<ConsumedRecord>) -> Vec<ConsumedRecord> {
        records
            .into_iter()
            .map(|c| ConsumedRecord {
                record: self.open_record(&c.position.topic, c.record),
                position: c.position,
            })
            .collect()
    }

    /// Removes the data keys of days that retention has emptied: for each encrypted topic with an age limit,
    /// every day that ended before `now_ms - max_age`. Returns `(topic, day)` per key removed.
    pub fn shred_expired(&self, now_ms: i64) -> Vec<(String, String)> {
        let mut removed = Vec::new();
        for topic in self.keys.topics() {
            let Some(max_age) = self.retention.for_topic(&topic).max_age_ms else {
                continue;
            };
            let cutoff = now_ms.saturating_sub(i64::try_from(max_age).unwrap_or(i64::MAX));
            // The day of the cutoff still holds records retention keeps; every day before it is gone.
            let first_kept = day_of(cutoff);
            for day in self.keys.shred_before(&topic, &first_kept) {
                removed.push((topic.clone(), day));
            }
        }
        removed
    }
}

/// The hub's bus with encryption at rest: see the module's documentation.
pub struct EncryptedBus {
    inner: Arc<dyn Bus>,
    cipher: Arc<RecordCipher>,
}

impl std::fmt::Debug for EncryptedBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedBus").finish_non_exhaustive()
    }
}

impl EncryptedBus {
    /// `inner` with `cipher`.
    pub fn new(inner: Arc<dyn Bus>, cipher: Arc<RecordCipher>) -> Self {
        Self { inner, cipher }
    }
}

/// A consumer of an [`EncryptedBus`]: opens what it polls, seals what it publishes with its offsets.
struct EncryptedConsumer {
    inner: Box<dyn Consumer>,
    bus: Arc<dyn Bus>,
    cipher: Arc<RecordCipher>,
}

#[async_trait]
impl Consumer for EncryptedConsumer {
    async fn poll(
        &mut self,
        max: usize,
        timeout: std::time::Duration,
    ) -> unsilo_bus::Result<Vec<ConsumedRecord>> {
        let polled = self.inner.poll(max, timeout).await?;
        Ok(self.cipher.open_all(polled))
    }

    async fn commit(&mut self, records: &[ConsumedRecord]) -> unsilo_bus::Result<()> {
        self.inner.commit(records).await
    }

    fn assignment(&self) -> Vec<(String, u32)> {
        self.inner.assignment()
    }

    async fn publish_and_commit(
        &mut self,
        _bus: &dyn Bus,
        parts: Vec<(String, Vec<Record>)>,
        records: &[ConsumedRecord],
    ) -> unsilo_bus::Result<Vec<Vec<Position>>> {
        let sealed = self.cipher.seal_parts(parts)?;
        self.inner
            .publish_and_commit(self.bus.as_ref(), sealed, records)
            .await
    }
}

#[async_trait]
impl Bus for EncryptedBus {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn writes_atomically(&self) -> bool {
        self.inner.writes_atomically()
    }

    async fn create_topic(&self, spec: &TopicSpec) -> unsilo_bus::Result<()> {
        self.inner.create_topic(spec).await
    }

    async fn partition_count(&self, topic: &str) -> unsilo_bus::Result<Option<u32>> {
        self.inner.partition_count(topic).await
    }

    async fn publish(
        &self,
        topic: &str,
        records: Vec<Record>,
    ) -> unsilo_bus::Result<Vec<Position>> {
        let sealed = self.cipher.seal_all(topic, records)?;
        self.inner.publish(topic, sealed).await
    }

    async fn publish_all(
        &self,
        batches: Vec<(String, Vec<Record>)>,
    ) -> unsilo_bus::Result<Vec<Vec<Position>>> {
        let sealed = self.cipher.seal_parts(batches)?;
        self.inner.publish_all(sealed).await
    }

    async fn consumer(&self, options: ConsumerOptions) -> unsilo_bus::Result<Box<dyn Consumer>> {
        Ok(Box::new(EncryptedConsumer {
            inner: self.inner.consumer(options).await?,
            bus: self.inner.clone(),
            cipher: self.cipher.clone(),
        }))
    }

    async fn end_offsets(&self, topic: &str) -> unsilo_bus::Result<Vec<u64>> {
        self.inner.end_offsets(topic).await
    }

    async fn fetch(&self, read: &FetchRequest) -> unsilo_bus::Result<Vec<ConsumedRecord>> {
        let fetched = self.inner.fetch(read).await?;
        Ok(self.cipher.open_all(fetched))
    }

    async fn offsets_for_time(
        &self,
        topic: &str,
        timestamp_ms: i64,
    ) -> unsilo_bus::Result<Vec<u64>> {
        self.inner.offsets_for_time(topic, timestamp_ms).await
    }

    async fn remove_before(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> unsilo_bus::Result<u64> {
        self.inner.remove_before(topic, partition, offset).await
    }

    async fn enforce_retention(&self) -> unsilo_bus::Result<Vec<unsilo_bus::RetentionRemoval>> {
        let removed = self.inner.enforce_retention().await?;
        // Crypto-shredding: a day retention has emptied loses its key, wherever its records may still lie.
        let cipher = self.cipher.clone();
        let shredded =
            tokio::task::spawn_blocking(move || cipher.shred_expired(unsilo_bus::now_ms()))
                .await
                .unwrap_or_default();
        for (topic, day) in shredded {
            info!(topic = %topic, day = %day, "Data key of a day past retention removed (crypto-shredding).");
        }
        Ok(removed)
    }

    async fn committed_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> unsilo_bus::Result<Vec<Option<u64>>> {
        self.inner.committed_offsets(group, topic).await
    }

    async fn commit_offsets(
        &self,
        group: &str,
        topic: &str,
        offsets: &[(u32, u64)],
    ) -> unsilo_bus::Result<()> {
        self.inner.commit_offsets(group, topic, offsets).await
    }

    fn store_stats(&self) -> Option<StoreStats> {
        self.inner.store_stats()
    }

    async fn shutdown(&self) -> unsilo_bus::Result<()> {
        self.inner.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_beijing_dates() {
        // 2026-12-06T16:00:00Z is midnight in Beijing.
        let midnight = 1_796_572_800_000;
        assert_eq!(day_of(midnight - 1), "2026-12-06");
        assert_eq!(day_of(midnight), "2026-12-07");
        assert!(is_encrypted_topic("std.grid_event"));
        assert!(is_encrypted_topic("raw.grid") && is_encrypted_topic("dlq.grid"));
        assert!(!is_encrypted_topic("sub.a.b") && !is_encrypted_topic("_unsilo.config"));
    }
}
