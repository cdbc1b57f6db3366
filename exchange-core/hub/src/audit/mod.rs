//! Evidence: the hash-chained `_unsilo.audit` log of every release and every control-plane change.
//!
//! Each entry is a JSON body ([`EntryBody`]) stored as the value of one bus record, with its SHA-256 in the
//! header `unsilo.audit.hash`. The body names the hash of the previous entry written by the same hub process
//! (`prev`) and a per-hub sequence number (`seq`), so:
//!
//! - an edited entry no longer matches its hash;
//! - a removed entry leaves a gap in `seq` and a `prev` that matches nothing;
//! - reordered entries break both.
//!
//! [`verify`] replays the topic and reports every such break. The hash covers the exact bytes stored, so no
//! canonical JSON form is needed. Chains are per hub (`hub` in the body, the `[hub] id` of the configuration):
//! several hub processes on one Kafka cluster each keep their own chain in one topic, without coordinating.
//! A keyless chain can be extended by anyone who can write to the topic, and cannot show that its newest
//! entries were cut off. So the hub also signs ([`signing`]): the last entry of every append carries the hub's
//! Ed25519 signature over its `(hub, seq, hash)`, which vouches for everything before it in the chain; and the
//! hub signs checkpoints of its chain ([`checkpoint`]) every N entries and every T seconds on
//! `_unsilo.audit.checkpoints`, exportable for anchoring elsewhere. [`verify`] reports entries no signature
//! covers (forged), signatures that do not verify, chains that end before a checkpoint (cut off) and
//! checkpoints the chain does not match (rewritten).
//!
//! A release entry records what left the hub's shared data for an agency: the record id, the subscription and
//! agency, the fields released with their treatment, the purpose, and the pseudonymous keys of the persons the
//! record is about — so [`query`] can answer "who received data about this person" without the audit log
//! holding ID numbers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use unsilo_schemas::names::{HEADER_AUDIT_HASH, HEADER_AUDIT_SIGNATURE};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::info;

use unsilo_bus::{Bus, ConsumedRecord, Record, TopicSpec};
use unsilo_policy::model::FieldRule;

pub mod checkpoint;
pub mod person;
pub mod signing;

pub use checkpoint::Checkpoint;
pub use signing::{KeySource, SigningKey, TrustedKeys};

/// The `prev` of a chain's first entry.
pub const GENESIS: &str = "genesis";

/// The control action by which a hub publishes its public key in its chain.
pub const KEY_ACTION: &str = "audit.key";

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] unsilo_bus::Error),
    /// An entry could not be encoded.
    #[error("audit entry: {0}")]
    Encode(String),
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A record was released to a subscription.
    Release {
        /// The record id.
        record_id: String,
        /// The shared schema.
        schema: String,
        /// The subscription id.
        subscription: String,
        /// The agency.
        agency: String,
        /// The fields released and their treatment (fields absent were not released).
        fields: Vec<FieldRule>,
        /// The subscription's stated purpose.
        purpose: String,
        /// The view schema's id the record was encoded with.
        view_schema_id: i32,
        /// The delivery channel kind.
        channel: String,
        /// Pseudonymous keys of the persons the record names (never the ID numbers).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        person_keys: Vec<String>,
        /// Released from history — a backfill, or the catch-up after a pause — rather than live.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        history: bool,
        /// How many days the agency may keep the record (the grant's `retain_days`), when the grant says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retain_days: Option<u32>,
    },
    /// A control-plane change (agency created, subscription requested, approved, rejected, revoked, expired …).
    Control {
        /// Who did it: `operator:<name>`, `agency:<id>` or `hub`.
        actor: String,
        /// What was done, e.g. `subscription.approve`.
        action: String,
        /// What it was done to, e.g. a subscription id.
        target: String,
        /// Details (the granted spec, a reason …), secrets redacted.
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        detail: serde_json::Value,
    },
}

/// The stored body of one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryBody {
    /// The hub process that wrote it (its chain).
    pub hub: String,
    /// Position in that hub's chain, from 1.
    pub seq: u64,
    /// Hash of the hub's previous entry ([`GENESIS`] for the first).
    pub prev: String,
    /// When it was written (ms since the epoch).
    pub time_ms: i64,
    /// What happened.
    pub event: AuditEvent,
}

/// An entry as read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Offset in the audit topic.
    pub offset: u64,
    /// Its stored hash.
    pub hash: String,
    /// Its body.
    #[serde(flatten)]
    pub body: EntryBody,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The head of one hub's chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    /// Sequence number of the newest entry (0 before the first).
    pub seq: u64,
    /// Hash of the newest entry ([`GENESIS`] before the first).
    pub hash: String,
}

/// The writer of this hub's chain.
pub struct AuditLog {
    bus: Arc<dyn Bus>,
    topic: String,
    hub: String,
    head: tokio::sync::Mutex<ChainHead>,
    key: Arc<SigningKey>,
    /// The chain position of the newest checkpoint written.
    checkpointed: std::sync::atomic::AtomicU64,
    /// Serialises checkpoint writes.
    checkpointing: tokio::sync::Mutex<()>,
    /// Entries after which a checkpoint is due.
    checkpoint_every: std::sync::atomic::AtomicU64,
    /// Woken when a checkpoint is due.
    checkpoint_due: tokio::sync::Notify,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("topic", &self.topic)
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens the log on `topic` for hub `hub`, signing with `key`: creates the topic and its checkpoints topic
    /// (one partition each, so one total order), finds the head of this hub's chain (reading backwards from the
    /// end in windows) and publishes the key in the chain (an `audit.key` entry).
    pub async fn open(
        bus: Arc<dyn Bus>,
        topic: &str,
        hub: &str,
        key: Arc<SigningKey>,
    ) -> Result<Self, AuditError> {
        bus.create_topic(&TopicSpec::new(topic, 1)).await?;
        bus.create_topic(&TopicSpec::new(checkpoint::topic_of(topic), 1))
            .await?;
        let end = bus.end_offsets(topic).await?.first().copied().unwrap_or(0);
        let mut head = ChainHead {
            seq: 0,
            hash: GENESIS.to_owned(),
        };
        const WINDOW: u64 = 4096;
        let mut window_end = end;
        while window_end > 0 {
            let start = window_end.saturating_sub(WINDOW);
            // Read forward to the topic's real end: a broker may report a high watermark below it.
            let found = read_from(bus.as_ref(), topic, start)
                .await?
                .iter()
                .filter_map(decode)
                .rfind(|e| e.body.hub == hub)
                .map(|e| ChainHead {
                    seq: e.body.seq,
                    hash: e.hash,
                });
            if let Some(h) = found {
                head = h;
                break;
            }
            window_end = start;
        }
        info!(topic, hub, seq = head.seq, public_key = %key.public_hex(), "Audit log ready.");
        let checkpointed = head.seq;
        let log = Self {
            bus,
            topic: topic.to_owned(),
            hub: hub.to_owned(),
            head: tokio::sync::Mutex::new(head),
            key,
            checkpointed: std::sync::atomic::AtomicU64::new(checkpointed),
            checkpointing: tokio::sync::Mutex::new(()),
            checkpoint_every: std::sync::atomic::AtomicU64::new(1000),
            checkpoint_due: tokio::sync::Notify::new(),
        };
        log.append(vec![AuditEvent::Control {
            actor: "hub".into(),
            action: KEY_ACTION.into(),
            target: log.hub.clone(),
            detail: serde_json::json!({ "public_key": log.key.public_hex() }),
        }])
        .await?;
        Ok(log)
    }

    /// This hub's public key (hex).
    pub fn public_key(&self) -> String {
        self.key.public_hex()
    }

    /// The signing key (for checkpoints).
    pub(crate) fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The bus.
    pub(crate) fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// The hub id this log writes as.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// The topic it writes to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The head of this hub's chain.
    pub async fn head(&self) -> ChainHead {
        self.head.lock().await.clone()
    }

    /// Appends events, chained, as one durable publish. Returns once they are durable.
    pub async fn append(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut chained = self.chain(events).await?;
        self.bus.publish_all(vec![chained.take_entries()]).await?;
        chained.written();
        Ok(())
    }

    /// Chains and signs events as the next entries, without writing them. The chain's head stays locked until
    /// [`ChainedEntries::written`] (or the value is dropped, when nothing was written), so entries written
    /// together with other records — the router's releases — keep the chain in order. The writer puts
    /// [`ChainedEntries::take_entries`] first in one [`Bus::publish_all`]: evidence first, in the same atomic
    /// write on the embedded bus, durable before the rest on Kafka.
    pub async fn chain(&self, events: Vec<AuditEvent>) -> Result<ChainedEntries<'_>, AuditError> {
        let head = self.head.lock().await;
        let now = unsilo_bus::now_ms();
        let mut next = head.clone();
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            let body = EntryBody {
                hub: self.hub.clone(),
                seq: next.seq + 1,
                prev: next.hash.clone(),
                time_ms: now,
                event,
            };
            let bytes = serde_json::to_vec(&body).map_err(|e| AuditError::Encode(e.to_string()))?;
            let hash = sha256_hex(&bytes);
            let mut record = Record::new(self.hub.as_bytes(), bytes);
            record.timestamp_ms = now;
            records.push(record.with_header(HEADER_AUDIT_HASH, hash.as_bytes().to_vec()));
            next = ChainHead {
                seq: body.seq,
                hash,
            };
        }
        // One signature over the last entry vouches for the whole batch: each hash covers its `prev`.
        if let Some(last) = records.pop() {
            let signature = self
                .key
                .sign_hex(&signing::entry_message(&self.hub, next.seq, &next.hash));
            records.push(last.with_header(HEADER_AUDIT_SIGNATURE, signature.into_bytes()));
        }
        Ok(ChainedEntries {
            log: self,
            head,
            next,
            records,
        })
    }
}

/// Audit entries chained and signed but not yet written (see [`AuditLog::chain`]); the chain's head is locked
/// while this lives.
pub struct ChainedEntries<'a> {
    log: &'a AuditLog,
    head: tokio::sync::MutexGuard<'a, ChainHead>,
    next: ChainHead,
    records: Vec<Record>,
}

impl ChainedEntries<'_> {
    /// The entries as a `(topic, records)` part of [`Bus::publish_all`], to be put first.
    pub fn take_entries(&mut self) -> (String, Vec<Record>) {
        (self.log.topic.clone(), std::mem::take(&mut self.records))
    }

    /// Says the entries are durable: the chain's head moves past them and the checkpoint task is told.
    pub fn written(mut self) {
        let seq = self.next.seq;
        *self.head = self.next.clone();
        drop(self.head);
        self.log.note_appended(seq);
    }
}

/// Decodes one audit record; `None` if it is not a readable entry.
pub fn decode(record: &ConsumedRecord) -> Option<AuditEntry> {
    let value = record.record.value.as_deref()?;
    let hash = String::from_utf8(record.record.header(HEADER_AUDIT_HASH)?.to_vec()).ok()?;
    let body: EntryBody = serde_json::from_slice(value).ok()?;
    Some(AuditEntry {
        offset: record.position.offset,
        hash,
        body,
    })
}

/// One break in the chain found by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Offset of the entry where the break shows.
    pub offset: u64,
    /// What is wrong.
    pub message: String,
}

/// What [`verify`] found of one hub's chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Sequence number of the newest entry.
    pub seq: u64,
    /// Hash of the newest entry.
    pub hash: String,
    /// The public key the chain was checked with (hex), if one was known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Where that key came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_source: Option<KeySource>,
    /// The newest seq covered by a valid signature.
    pub signed_through: u64,
    /// The newest checkpoint of the chain that was checked, `(seq, time_ms)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<(u64, i64)>,
}

/// The result of [`verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries read.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Each hub's chain.
    pub chains: BTreeMap<String, ChainReport>,
    /// Every break found; empty when the log is intact.
    pub problems: Vec<Problem>,
    /// What is not a break but weakens the evidence (a chain whose key is not pinned).
    pub warnings: Vec<String>,
}

impl VerifyReport {
    /// Whether no break was found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The verifier's state of one chain.
#[derive(Default)]
struct ChainState {
    report: ChainReport,
    /// `(offset, seq)` of entries no valid signature covers yet.
    unsigned: Vec<(u64, u64)>,
    /// The hashes at the seqs that checkpoints name.
    hashes_at: BTreeMap<u64, String>,
    last_offset: u64,
}

fn report_unsigned(hub: &str, state: &mut ChainState, problems: &mut Vec<Problem>) {
    if let (Some(first), Some(last)) = (state.unsigned.first(), state.unsigned.last()) {
        let which = if state.report.public_key.is_some() {
            "a valid signature of the hub's key"
        } else {
            "any signature: no public key of the hub is known (pin it in [security] audit_public_keys)"
        };
        problems.push(Problem {
            offset: first.0,
            message: format!(
                "hub `{hub}`: {} entr{} (seq {}–{}, offsets {}–{}) not covered by {which}: forged, or written by something other than the hub",
                state.unsigned.len(),
                if state.unsigned.len() == 1 { "y is" } else { "ies are" },
                first.1,
                last.1,
                first.0,
                last.0
            ),
        });
    }
    state.unsigned.clear();
}

/// Checks a sequence of audit records (in log order) against the trusted keys and the checkpoints, and reports
/// every break: an entry whose bytes do not match its hash (edited), whose `seq` skips or repeats (removed,
/// duplicated or reordered), whose `prev` is not the hash of its chain's previous entry, that no valid signature
/// of its hub covers (forged), a chain that ends before a checkpoint's seq (cut off), and a checkpoint the
/// chain does not match (rewritten) or whose signature does not verify.
pub fn verify_records<'a>(
    records: impl IntoIterator<Item = &'a ConsumedRecord>,
    keys: &TrustedKeys,
    checkpoints: &[Checkpoint],
) -> VerifyReport {
    let mut report = VerifyReport::default();
    let mut chains: BTreeMap<String, ChainState> = BTreeMap::new();
    for cp in checkpoints {
        chains
            .entry(cp.hub.clone())
            .or_default()
            .hashes_at
            .insert(cp.seq, String::new());
    }
    for r in records {
        report.entries += 1;
        let offset = r.position.offset;
        let Some(value) = r.record.value.as_deref() else {
            report.problems.push(Problem {
                offset,
                message: "entry has no body".into(),
            });
            continue;
        };
        let Some(stored) = r
            .record
            .header(HEADER_AUDIT_HASH)
            .and_then(|h| String::from_utf8(h.to_vec()).ok())
        else {
            report.problems.push(Problem {
                offset,
                message: format!("entry has no {HEADER_AUDIT_HASH} header"),
            });
            continue;
        };
        let actual = sha256_hex(value);
        if actual != stored {
            report.problems.push(Problem {
                offset,
                message: "body does not match its hash: the entry was edited".into(),
            });
        }
        let body: EntryBody = match serde_json::from_slice(value) {
            Ok(b) => b,
            Err(e) => {
                report.problems.push(Problem {
                    offset,
                    message: format!("body is not an audit entry: {e}"),
                });
                continue;
            }
        };
        let chain = chains.entry(body.hub.clone()).or_default();
        if chain.report.seq == 0 && chain.report.hash.is_empty() {
            chain.report.hash = GENESIS.to_owned();
        }
        if body.seq != chain.report.seq + 1 {
            report.problems.push(Problem {
                offset,
                message: format!(
                    "hub `{}`: seq {} follows seq {}: entries were removed, duplicated or reordered",
                    body.hub, body.seq, chain.report.seq
                ),
            });
        }
        if body.prev != chain.report.hash {
            report.problems.push(Problem {
                offset,
                message: format!(
                    "hub `{}` seq {}: prev does not match the hash of the chain's previous entry",
                    body.hub, body.seq
                ),
            });
            // What came before the break can no longer be covered by a signature after it.
            report_unsigned(&body.hub, chain, &mut report.problems);
        }
        if chain.report.public_key.is_none() {
            if let Some(pinned) = keys.keys.get(&body.hub) {
                chain.report.public_key = Some(pinned.clone());
                chain.report.key_source = Some(KeySource::Pinned);
            }
        }
        if let AuditEvent::Control { action, detail, .. } = &body.event {
            if action == KEY_ACTION {
                let published = detail["public_key"].as_str().unwrap_or_default().to_owned();
                match &chain.report.public_key {
                    None => {
                        chain.report.public_key = Some(published);
                        chain.report.key_source = Some(KeySource::PublishedInChain);
                    }
                    Some(known) if *known != published => report.problems.push(Problem {
                        offset,
                        message: format!(
                            "hub `{}` seq {}: publishes a signing key other than the one {}",
                            body.hub,
                            body.seq,
                            if chain.report.key_source == Some(KeySource::Pinned) {
                                "pinned for it"
                            } else {
                                "it published first"
                            }
                        ),
                    }),
                    Some(_) => {}
                }
            }
        }
        chain.unsigned.push((offset, body.seq));
        if let Some(signature) = r
            .record
            .header(HEADER_AUDIT_SIGNATURE)
            .and_then(|h| std::str::from_utf8(h).ok())
        {
            let message = signing::entry_message(&body.hub, body.seq, &stored);
            let valid = chain
                .report
                .public_key
                .as_deref()
                .is_some_and(|k| signing::verify_hex(k, &message, signature));
            if valid && actual == stored {
                chain.unsigned.clear();
                chain.report.signed_through = body.seq;
            } else if !valid {
                report.problems.push(Problem {
                    offset,
                    message: format!(
                        "hub `{}` seq {}: the signature does not verify with the hub's key: the entry is forged",
                        body.hub, body.seq
                    ),
                });
            }
        }
        if let Some(slot) = chain.hashes_at.get_mut(&body.seq) {
            *slot = stored.clone();
        }
        chain.last_offset = offset;
        chain.report.seq = body.seq;
        chain.report.hash = stored;
    }
    for (hub, chain) in &mut chains {
        report_unsigned(hub, chain, &mut report.problems);
        if chain.report.key_source == Some(KeySource::PublishedInChain) {
            report.warnings.push(format!(
                "hub `{hub}`: its key is only the one its chain published; pin it in [security] audit_public_keys"
            ));
        }
    }
    for cp in checkpoints {
        report.checkpoints += 1;
        let Some(chain) = chains.get_mut(&cp.hub) else {
            continue;
        };
        let at = chain.last_offset;
        let key = chain
            .report
            .public_key
            .as_deref()
            .or_else(|| keys.keys.get(&cp.hub).map(String::as_str));
        let key_ok = key.is_some_and(|k| cp.verify(k));
        if chain.report.seq == 0 && key_ok {
            report.problems.push(Problem {
                offset: at,
                message: format!(
                    "hub `{}`: its chain is missing from the log but a checkpoint signed at {} ms vouches for seq {}: the entries were removed",
                    cp.hub, cp.time_ms, cp.seq
                ),
            });
            continue;
        }
        if !key_ok {
            report.problems.push(Problem {
                offset: at,
                message: format!(
                    "hub `{}`: the checkpoint of seq {} is not signed by the hub's key",
                    cp.hub, cp.seq
                ),
            });
            continue;
        }
        if chain.report.seq < cp.seq {
            report.problems.push(Problem {
                offset: at,
                message: format!(
                    "hub `{}`: the chain ends at seq {} but a checkpoint signed at {} ms vouches for seq {}: the newest entries were cut off",
                    cp.hub, chain.report.seq, cp.time_ms, cp.seq
                ),
            });
        } else if chain.hashes_at.get(&cp.seq).map(String::as_str) != Some(cp.hash.as_str()) {
            report.problems.push(Problem {
                offset: at,
                message: format!(
                    "hub `{}`: the checkpoint of seq {} does not match the chain's entry there: the chain was rewritten",
                    cp.hub, cp.seq
                ),
            });
        }
        if chain.report.checkpoint.is_none_or(|(seq, _)| seq < cp.seq) {
            chain.report.checkpoint = Some((cp.seq, cp.time_ms));
        }
    }
    report.chains = chains
        .into_iter()
        .filter(|(_, c)| c.report.seq > 0)
        .map(|(h, c)| (h, c.report))
        .collect();
    report
}

/// Reads the whole audit topic, in order, up to its end at the time of the call.
pub async fn read_all(bus: &dyn Bus, topic: &str) -> Result<Vec<ConsumedRecord>, AuditError> {
    read_from(bus, topic, 0).await
}

/// Reads the audit topic from `offset` to its end. A fetch may come back empty before the end (a broker still
/// answering, a slow disk), so the end is taken from the topic's high watermark, and empty fetches are retried until
/// it is reached; past it, the first empty fetch ends the read (a broker may report a watermark below its last
/// records, so reading goes on while records keep coming).
async fn read_from(
    bus: &dyn Bus,
    topic: &str,
    mut offset: u64,
) -> Result<Vec<ConsumedRecord>, AuditError> {
    const MAX_EMPTY_FETCHES: u32 = 100;
    let end = bus.end_offsets(topic).await?.first().copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut empty = 0;
    loop {
        let batch = bus
            .fetch(&unsilo_bus::FetchRequest::new(
                topic,
                0,
                offset,
                5000,
                Duration::from_millis(300),
            ))
            .await?;
        match batch.last() {
            Some(last) => {
                offset = last.position.offset + 1;
                empty = 0;
                out.extend(batch);
            }
            None if offset >= end => break,
            None => {
                empty += 1;
                if empty >= MAX_EMPTY_FETCHES {
                    return Err(AuditError::Bus(unsilo_bus::Error::Store(format!(
                        "{topic}: no records readable at offset {offset} although the topic ends at {end}"
                    ))));
                }
            }
        }
    }
    Ok(out)
}

/// Replays the audit topic and checks every chain in it.
///
/// Checkpoints are those on the log's checkpoints topic plus `external` ones (an exported copy anchored
/// elsewhere, which survives the removal of both topics' tails).
pub async fn verify(
    bus: &dyn Bus,
    topic: &str,
    keys: &TrustedKeys,
    external: &[Checkpoint],
) -> Result<VerifyReport, AuditError> {
    let mut checkpoints = checkpoint::read(bus, topic).await?;
    checkpoints.extend_from_slice(external);
    let records = read_all(bus, topic).await?;
    Ok(verify_records(&records, keys, &checkpoints))
}

/// What [`query`] looks for; every given criterion must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct AuditQuery {
    /// Releases of this record.
    #[serde(default)]
    pub record_id: Option<String>,
    /// Releases about this person (a pseudonymous key, see `unsilo audit query --cert-no`).
    #[serde(default)]
    pub person_key: Option<String>,
    /// Entries about this subscription (releases and its control changes).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Entries about this agency.
    #[serde(default)]
    pub agency: Option<String>,
    /// At most this many entries (newest last); default 1000.
    #[serde(default)]
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// Whether `event` matches.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        match event {
            AuditEvent::Release {
                record_id,
                subscription,
                agency,
                person_keys,
                ..
            } => {
                self.record_id.as_ref().is_none_or(|r| r == record_id)
                    && self
                        .person_key
                        .as_ref()
                        .is_none_or(|k| person_keys.contains(k))
                    && self.subscription.as_ref().is_none_or(|s| s == subscription)
                    && self.agency.as_ref().is_none_or(|a| a == agency)
            }
            AuditEvent::Control { target, .. } => {
                self.record_id.is_none()
                    && self.person_key.is_none()
                    && self.subscription.as_ref().is_none_or(|s| s == target)
                    && self
                        .agency
                        .as_ref()
                        .is_none_or(|a| target == a || target.starts_with(&format!("{a}.")))
            }
        }
    }
}

/// Finds the entries matching `q`, oldest first (the newest `limit` of them).
pub async fn query(
    bus: &dyn Bus,
    topic: &str,
    q: &AuditQuery,
) -> Result<Vec<AuditEntry>, AuditError> {
    let records = read_all(bus, topic).await?;
    let mut found: Vec<AuditEntry> = records
        .iter()
        .filter_map(decode)
        .filter(|e| q.matches(&e.body.event))
        .collect();
    let limit = q.limit.unwrap_or(1000);
    if found.len() > limit {
        found.drain(..found.len() - limit);
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
