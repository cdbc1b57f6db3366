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
//! What a hash chain cannot show by itself is the loss of the newest entries; `unsilo audit verify` prints
//! each chain's head (seq and hash) so an operator can anchor it elsewhere and compare later.
//!
//! A release entry records what left the hub's shared data for an agency: the record id, the subscription and
//! agency, the fields released with their treatment, the purpose, and the pseudonymous keys of the persons the
//! record is about — so [`query`] can answer "who received data about this person" without the audit log
//! holding ID numbers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::bus::{self, Bus, ConsumedRecord, Record, TopicSpec};
use crate::policy::model::FieldRule;

/// The topic of the audit log (append-only: never compacted).
pub const AUDIT_TOPIC: &str = "_unsilo.audit";

/// The header carrying an entry's hash.
pub const HASH_HEADER: &str = "unsilo.audit.hash";

/// The `prev` of a chain's first entry.
pub const GENESIS: &str = "genesis";

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] bus::Error),
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
    /// Opens the log on `topic` for hub `hub`: creates the topic (one partition, so one total order) and finds
    /// the head of this hub's chain, reading backwards from the end in windows.
    pub async fn open(bus: Arc<dyn Bus>, topic: &str, hub: &str) -> Result<Self, AuditError> {
        bus.create_topic(&TopicSpec::new(topic, 1)).await?;
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
        info!(topic, hub, seq = head.seq, "Audit log ready.");
        Ok(Self {
            bus,
            topic: topic.to_owned(),
            hub: hub.to_owned(),
            head: tokio::sync::Mutex::new(head),
        })
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
        self.append_with(events, Vec::new()).await
    }

    /// Appends events together with the records they are evidence of (`(topic, records)` parts), evidence first:
    /// on the embedded bus in one atomic write, on Kafka the audit entries durable before the records are sent
    /// (see [`Bus::publish_all`]). Returns once everything is durable.
    pub async fn append_with(
        &self,
        events: Vec<AuditEvent>,
        evidenced: Vec<(String, Vec<Record>)>,
    ) -> Result<(), AuditError> {
        if events.is_empty() {
            if !evidenced.is_empty() {
                self.bus.publish_all(evidenced).await?;
            }
            return Ok(());
        }
        let mut head = self.head.lock().await;
        let now = bus::now_ms();
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
            records.push(record.with_header(HASH_HEADER, hash.as_bytes().to_vec()));
            next = ChainHead {
                seq: body.seq,
                hash,
            };
        }
        let mut parts = Vec::with_capacity(1 + evidenced.len());
        parts.push((self.topic.clone(), records));
        parts.extend(evidenced);
        self.bus.publish_all(parts).await?;
        *head = next;
        Ok(())
    }
}

/// Decodes one audit record; `None` if it is not a readable entry.
pub fn decode(record: &ConsumedRecord) -> Option<AuditEntry> {
    let value = record.record.value.as_deref()?;
    let hash = String::from_utf8(record.record.header(HASH_HEADER)?.to_vec()).ok()?;
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

/// The result of [`verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries read.
    pub entries: u64,
    /// The head of each hub's chain.
    pub chains: BTreeMap<String, ChainHead>,
    /// Every break found; empty when the log is intact.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether no break was found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks a sequence of audit records (in log order) and reports every break: an entry whose bytes do not match
/// its hash (edited), whose `seq` skips or repeats (removed, duplicated or reordered), or whose `prev` is not the
/// hash of its chain's previous entry.
pub fn verify_records<'a>(records: impl IntoIterator<Item = &'a ConsumedRecord>) -> VerifyReport {
    let mut report = VerifyReport::default();
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
            .header(HASH_HEADER)
            .and_then(|h| String::from_utf8(h.to_vec()).ok())
        else {
            report.problems.push(Problem {
                offset,
                message: format!("entry has no {HASH_HEADER} header"),
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
        let head = report
            .chains
            .entry(body.hub.clone())
            .or_insert_with(|| ChainHead {
                seq: 0,
                hash: GENESIS.to_owned(),
            });
        if body.seq != head.seq + 1 {
            report.problems.push(Problem {
                offset,
                message: format!(
                    "hub `{}`: seq {} follows seq {}: entries were removed, duplicated or reordered",
                    body.hub, body.seq, head.seq
                ),
            });
        }
        if body.prev != head.hash {
            report.problems.push(Problem {
                offset,
                message: format!(
                    "hub `{}` seq {}: prev does not match the hash of the chain's previous entry",
                    body.hub, body.seq
                ),
            });
        }
        *head = ChainHead {
            seq: body.seq,
            hash: stored,
        };
    }
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
            .fetch(topic, 0, offset, 5000, Duration::from_millis(300))
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
                    return Err(AuditError::Bus(bus::Error::Store(format!(
                        "{topic}: no records readable at offset {offset} although the topic ends at {end}"
                    ))));
                }
            }
        }
    }
    Ok(out)
}

/// Replays the audit topic and checks every chain in it.
pub async fn verify(bus: &dyn Bus, topic: &str) -> Result<VerifyReport, AuditError> {
    let records = read_all(bus, topic).await?;
    Ok(verify_records(&records))
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
mod tests {
    use super::*;
    use crate::bus::embedded::EmbeddedBus;
    use crate::policy::model::Treatment;

    fn release(n: u32) -> AuditEvent {
        AuditEvent::Release {
            record_id: format!("r{n}"),
            schema: "grid_event".into(),
            subscription: "civil-affairs.red".into(),
            agency: "civil-affairs".into(),
            fields: vec![FieldRule {
                field: "care_level".into(),
                treatment: Treatment::Clear,
            }],
            purpose: "care".into(),
            view_schema_id: 7,
            channel: "pull".into(),
            person_keys: vec![format!("p1_{n:032x}")],
        }
    }

    async fn written(n: u32) -> (tempfile::TempDir, Arc<dyn Bus>, Vec<ConsumedRecord>) {
        let dir = tempfile::tempdir().unwrap();
        let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(dir.path()).unwrap());
        let log = AuditLog::open(bus.clone(), AUDIT_TOPIC, "hub-a")
            .await
            .unwrap();
        for i in 0..n {
            log.append(vec![release(i)]).await.unwrap();
        }
        let records = read_all(bus.as_ref(), AUDIT_TOPIC).await.unwrap();
        (dir, bus, records)
    }

    #[tokio::test]
    async fn an_intact_log_verifies_and_a_reopened_writer_continues_the_chain() {
        let (dir, bus, records) = written(5).await;
        let report = verify_records(&records);
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!(report.entries, 5);
        assert_eq!(report.chains["hub-a"].seq, 5);
        drop(records);
        let log = AuditLog::open(bus.clone(), AUDIT_TOPIC, "hub-a")
            .await
            .unwrap();
        assert_eq!(log.head().await.seq, 5);
        log.append(vec![release(9)]).await.unwrap();
        let report = verify(bus.as_ref(), AUDIT_TOPIC).await.unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!(report.chains["hub-a"].seq, 6);
        drop(dir);
    }

    #[tokio::test]
    async fn edits_removals_and_reorderings_are_detected() {
        let (_dir, _bus, records) = written(6).await;
        // Edited: the record id of entry 2 changed, hash header left alone.
        let mut edited = records.clone();
        let body = String::from_utf8(edited[2].record.value.clone().unwrap()).unwrap();
        edited[2].record.value = Some(body.replace("\"r2\"", "\"r9\"").into_bytes());
        let report = verify_records(&edited);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].message.contains("edited"));
        assert_eq!(report.problems[0].offset, 2);

        // Removed: entry 3 gone.
        let mut removed = records.clone();
        removed.remove(3);
        let report = verify_records(&removed);
        assert!(!report.is_intact());
        assert!(report
            .problems
            .iter()
            .any(|p| p.message.contains("removed")));

        // Reordered: entries 1 and 2 swapped.
        let mut swapped = records.clone();
        swapped.swap(1, 2);
        assert!(!verify_records(&swapped).is_intact());

        // Edited and re-hashed: the next entry's prev no longer matches.
        let mut rehashed = records.clone();
        let body = String::from_utf8(rehashed[2].record.value.clone().unwrap()).unwrap();
        let forged = body.replace("\"r2\"", "\"r9\"").into_bytes();
        let hash = sha256_hex(&forged);
        rehashed[2].record.value = Some(forged);
        rehashed[2].record.headers = vec![crate::bus::Header {
            name: HASH_HEADER.into(),
            value: hash.into_bytes(),
        }];
        let report = verify_records(&rehashed);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].message.contains("prev"));
        assert_eq!(report.problems[0].offset, 3);
    }

    #[tokio::test]
    async fn queries_find_releases_by_record_and_person() {
        let (_dir, bus, _) = written(4).await;
        let by_record = query(
            bus.as_ref(),
            AUDIT_TOPIC,
            &AuditQuery {
                record_id: Some("r1".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(by_record.len(), 1);
        let by_person = query(
            bus.as_ref(),
            AUDIT_TOPIC,
            &AuditQuery {
                person_key: Some(format!("p1_{:032x}", 3)),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(by_person.len(), 1);
        assert!(
            matches!(&by_person[0].body.event, AuditEvent::Release { record_id, .. } if record_id == "r3")
        );
        let none = query(
            bus.as_ref(),
            AUDIT_TOPIC,
            &AuditQuery {
                agency: Some("public-security".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
        assert!(none.is_empty());
    }
}
