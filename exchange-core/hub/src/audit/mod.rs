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
//! [`verify()`] replays the topic and reports every such break. The hash covers the exact bytes stored, so no
//! canonical JSON form is needed. Chains are per hub (`hub` in the body, the `[hub] id` of the configuration):
//! several hub processes on one Kafka cluster each keep their own chain in one topic, without coordinating.
//! A keyless chain can be extended by anyone who can write to the topic, and cannot show that its newest
//! entries were cut off. So the hub also signs ([`signing`]): the last entry of every append carries the hub's
//! Ed25519 signature over the append's range `(hub, from_seq, seq, hash)`, which vouches for the entries of that
//! append and nothing before them; and the hub signs checkpoints of its chain ([`checkpoint`]) every N entries
//! and every T seconds on `_unsilo.audit.checkpoints`, exportable for anchoring elsewhere. Every reader goes
//! through one [`verify::Verifier`]: [`verify()`] reports entries no signature covers (forged), signatures that do
//! not verify, chains that end before a checkpoint (cut off) and checkpoints the chain does not match
//! (rewritten); [`query`] and the person index answer only from verified entries and count the rest.
//!
//! A hub never adopts what it did not write: [`AuditLog::open`] verifies its own chain from its newest signed
//! checkpoint to the end before it appends. Entries there that no signature of its key covers — written by a
//! rogue writer with produce access, or cut short by a crash — are never signed over: the hub continues its
//! chain from its newest verified entry with an `audit.disown` entry naming the range, says so in its log, on
//! `/metrics` (`unsilo_audit_disowned_entries`) and in the console, and `audit verify` keeps reporting them.
//!
//! Release evidence records what left the hub's shared data for an agency: the record id, the subscription and
//! agency, the fields released with their treatment, the purpose, and the pseudonymous keys of the persons the
//! record is about — so [`query`] and the person index ([`person`]) can answer "who received data about this
//! person" without the audit log holding ID numbers. The router writes it in batches ([`batch`]): the terms of a
//! subscription once, then per record the terms it went out under, so evidence stays a few bytes per release.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use unsilo_schemas::names::{HEADER_AUDIT_HASH, HEADER_AUDIT_SIGNATURE, HEADER_AUDIT_SIGNED_FROM};

use serde::{Deserialize, Serialize};
use tracing::{error, info};

use unsilo_bus::{Bus, ConsumedRecord, Record, TopicSpec};
use unsilo_policy::model::FieldRule;

pub mod batch;
pub mod checkpoint;
pub mod export;
pub mod person;
pub mod signing;
pub mod verify;

pub use batch::{Release, ReleaseTerms, ReleasedRecord, SharedTerms, TermsBook};
pub use checkpoint::Checkpoint;
pub use signing::{KeySource, SigningKey, TrustedKeys};
pub use verify::{verify_records, ChainReport, Problem, UnverifiedTail, Verifier, VerifyReport};

/// The `prev` of a chain's first entry.
pub const GENESIS: &str = "genesis";

/// The control action by which a hub publishes its public key in its chain.
pub const KEY_ACTION: &str = "audit.key";

/// The control action by which a hub, at open, records a tail of its chain that no signature of its key covers
/// as not its own (see [`AuditLog::open`]); its `prev` is the hub's newest verified entry.
pub const DISOWN_ACTION: &str = "audit.disown";

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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Records released in a batch (see [`batch`]): per record, its id, person keys and the `seq`s of the
    /// `release_terms` entries it was released under. Readers expand it to one [`AuditEvent::Release`] each.
    Releases {
        /// The records, in the order released.
        records: Vec<ReleasedRecord>,
    },
    /// The terms a subscription's records are released under, named by this entry's `seq` in `releases` entries.
    ReleaseTerms(ReleaseTerms),
    /// A control-plane change (agency created, subscription requested, approved, rejected, revoked, expired …).
    Control {
        /// Who did it: `operator:<name>`, `agency:<id>` or `hub`.
        actor: String,
        /// The operator's role when an operator did it (`system`, `security`, `audit`: 三员分立).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Offset in the audit topic.
    pub offset: u64,
    /// Its stored hash.
    pub hash: String,
    /// Its body.
    #[serde(flatten)]
    pub body: EntryBody,
}

/// The head of one hub's chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    /// Sequence number of the newest entry (0 before the first).
    pub seq: u64,
    /// Hash of the newest entry ([`GENESIS`] before the first).
    pub hash: String,
}

/// One entry of one hub's chain, named so that another hub's evidence can refer to it (级联: a release on the
/// holding hub's chain and its receipt on the requesting hub's name each other).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryRef {
    /// The hub whose chain holds it.
    pub hub: String,
    /// Its position in that chain.
    pub seq: u64,
    /// Its chain hash.
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
    /// The tail of this hub's chain found unverifiable at open and disowned, if there was one.
    disowned: Option<UnverifiedTail>,
    /// The release terms this process has written, by fingerprint, with their `seq`.
    terms_written: std::sync::Mutex<std::collections::HashMap<[u8; 16], u64>>,
    /// The newest router write intent per schema in this hub's verified chain (found at open, then noted as
    /// routers write): what a router restarted over Kafka checks its interrupted write against.
    router_intents: std::sync::Mutex<std::collections::HashMap<String, RouterIntentEntry>>,
}

/// A router write's intent as found on its signed audit entry ([`unsilo_schemas::names::HEADER_ROUTER_INTENT`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterIntentEntry {
    /// The audit topic's offset of the entry carrying it.
    pub offset: u64,
    /// The intent, as the router wrote it (JSON).
    pub intent: Vec<u8>,
}

/// What [`AuditLog`] reads of a router intent: the schema it is for and the last `seq` of its evidence.
#[derive(Deserialize)]
struct IntentHead {
    schema: String,
    to_seq: u64,
}

/// How many audit records before the newest checkpoint the open looks back for router intents: a write whose
/// evidence a checkpoint overtook before the crash is still found.
const INTENT_LOOKBACK: u64 = 1024;

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
    /// (one partition each, so one total order), verifies this hub's chain from its newest checkpoint signed by
    /// `key` to the end (see [`AuditLog::verified_head`]), disowns a tail no signature of `key` covers, and
    /// publishes the key in the chain (an `audit.key` entry).
    pub async fn open(
        bus: Arc<dyn Bus>,
        topic: &str,
        hub: &str,
        key: Arc<SigningKey>,
    ) -> Result<Self, AuditError> {
        bus.create_topic(&TopicSpec::new(topic, 1)).await?;
        bus.create_topic(&TopicSpec::new(checkpoint::topic_of(topic), 1))
            .await?;
        let (head, disowned, router_intents) =
            Self::verified_head(bus.as_ref(), topic, hub, &key).await?;
        info!(topic, hub, seq = head.seq, public_key = %key.public_hex(), "Audit log ready.");
        let checkpointed = head.seq;
        let mut events = Vec::new();
        if let Some(tail) = &disowned {
            error!(
                topic,
                hub,
                from_seq = tail.verified_seq + 1,
                to_seq = tail.last_seq,
                first_offset = tail.offsets.0,
                last_offset = tail.offsets.1,
                entries = tail.entries,
                "The audit chain's tail is not covered by this hub's signature: it was written by something other than this hub (or cut short by a crash). The hub does not sign over it and disowns it; `unsilo audit verify` reports it."
            );
            events.push(AuditEvent::Control {
                actor: "hub".into(),
                role: None,
                action: DISOWN_ACTION.into(),
                target: hub.to_owned(),
                detail: serde_json::json!({
                    "from_seq": tail.verified_seq + 1,
                    "to_seq": tail.last_seq,
                    "first_offset": tail.offsets.0,
                    "last_offset": tail.offsets.1,
                    "entries": tail.entries,
                    "reason": "not covered by a signature of this hub's key",
                }),
            });
        }
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
            disowned,
            terms_written: std::sync::Mutex::new(std::collections::HashMap::new()),
            router_intents: std::sync::Mutex::new(router_intents),
        };
        events.push(AuditEvent::Control {
            actor: "hub".into(),
            role: None,
            action: KEY_ACTION.into(),
            target: log.hub.clone(),
            detail: serde_json::json!({ "public_key": log.key.public_hex() }),
        });
        log.append(events).await?;
        Ok(log)
    }

    /// Where this hub's next entry goes: verifies `hub`'s chain with `key` from the newest checkpoint `key`
    /// signed (found in the log) to the end, and returns the head to append after — the chain's newest seq with
    /// the hash of its newest *verified* entry — the unverifiable tail, if any, that the hub must disown, and the
    /// newest router write intent per schema among the verified entries (on a bus without atomic writes, looking
    /// [`INTENT_LOOKBACK`] records before the checkpoint too).
    async fn verified_head(
        bus: &dyn Bus,
        topic: &str,
        hub: &str,
        key: &SigningKey,
    ) -> Result<
        (
            ChainHead,
            Option<UnverifiedTail>,
            std::collections::HashMap<String, RouterIntentEntry>,
        ),
        AuditError,
    > {
        let own = TrustedKeys::new(Some((hub, key)), &BTreeMap::new());
        let mut verifier = Verifier::new(&own);
        let public = key.public_hex();
        let newest_checkpoint = checkpoint::newest_of(bus, topic, hub, &public).await?;
        let mut start = 0;
        if let Some(cp) = newest_checkpoint {
            if let Some(offset) = find_entry(bus, topic, hub, cp.seq, &cp.hash).await? {
                verifier.resume(hub, cp.seq, &cp.hash);
                start = offset + 1;
            }
        }
        let mut intents: std::collections::HashMap<String, (u64, RouterIntentEntry)> =
            std::collections::HashMap::new();
        // Router intents exist only where writes are not atomic (Kafka): only there is anything read before `start`.
        let lookback = if bus.writes_atomically() {
            0
        } else {
            INTENT_LOOKBACK
        };
        for record in read_from(bus, topic, start.saturating_sub(lookback)).await? {
            if let Some((head, entry)) = router_intent_of(&record, hub) {
                intents.insert(head.schema, (head.to_seq, entry));
            }
            if record.position.offset >= start {
                verifier.push(&record);
            }
        }
        let (head, tail) = match verifier.unverified_tail(hub) {
            Some(tail) => (
                ChainHead {
                    seq: tail.last_seq,
                    hash: tail.verified_hash.clone(),
                },
                Some(tail),
            ),
            None => {
                let (seq, hash) = verifier.head(hub);
                (ChainHead { seq, hash }, None)
            }
        };
        let verified = tail.as_ref().map_or(head.seq, |t| t.verified_seq);
        let intents = intents
            .into_iter()
            .filter(|(_, (to_seq, _))| *to_seq <= verified)
            .map(|(schema, (_, entry))| (schema, entry))
            .collect();
        Ok((head, tail, intents))
    }

    /// The newest router write intent of `schema` in this hub's chain, if any (see [`RouterIntentEntry`]).
    pub fn router_intent(&self, schema: &str) -> Option<RouterIntentEntry> {
        self.router_intents.lock().ok()?.get(schema).cloned()
    }

    /// Notes a router write intent of `schema` whose evidence is now durable at `offset`.
    pub fn note_router_intent(&self, schema: &str, entry: RouterIntentEntry) {
        if let Ok(mut intents) = self.router_intents.lock() {
            intents.insert(schema.to_owned(), entry);
        }
    }

    /// The tail of this hub's chain that was found unverifiable at open and disowned, if any.
    pub fn disowned_tail(&self) -> Option<&UnverifiedTail> {
        self.disowned.as_ref()
    }

    /// This hub's public key (hex).
    pub fn public_key(&self) -> String {
        self.key.public_hex()
    }

    /// This hub's public key as a SubjectPublicKeyInfo PEM with the SM2 OIDs (gm); `None` for Ed25519.
    pub fn public_key_pem(&self) -> Option<String> {
        self.key.public_pem()
    }

    /// This hub's signature algorithm: `SM2` or `Ed25519`.
    pub fn key_algorithm(&self) -> &'static str {
        self.key.algorithm()
    }

    /// The suite this hub's chain is hashed and signed with.
    pub fn suite(&self) -> unsilo_schemas::crypto::Suite {
        self.key.suite()
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

    /// Appends one event and names the entry it became.
    pub async fn append_entry(&self, event: AuditEvent) -> Result<EntryRef, AuditError> {
        let mut chained = self.chain(vec![event]).await?;
        let entry = chained.last_entry();
        self.bus.publish_all(vec![chained.take_entries()]).await?;
        chained.written();
        Ok(entry)
    }

    /// Chains and signs events as the next entries, without writing them. The chain's head stays locked until
    /// [`ChainedEntries::written`] (or the value is dropped, when nothing was written), so entries written
    /// together with other records — the router's releases — keep the chain in order. The writer puts
    /// [`ChainedEntries::take_entries`] first in one [`Bus::publish_all`]: evidence first, in the same atomic
    /// write on the embedded bus, durable before the rest on Kafka.
    pub async fn chain(&self, events: Vec<AuditEvent>) -> Result<ChainedEntries<'_>, AuditError> {
        let head = self.head.lock().await;
        self.seal(head, events, Vec::new())
    }

    /// Chains and signs releases as batches ([`batch`]), like [`AuditLog::chain`]: a `release_terms` entry first
    /// for each of their terms this process has not written yet, then `releases` entries naming them.
    pub async fn chain_releases(
        &self,
        releases: &[Release],
    ) -> Result<ChainedEntries<'_>, AuditError> {
        let head = self.head.lock().await;
        let mut events = Vec::new();
        let mut fresh: std::collections::HashMap<[u8; 16], u64> = std::collections::HashMap::new();
        {
            let written = self
                .terms_written
                .lock()
                .map_err(|_| AuditError::Encode("the release terms table is poisoned".into()))?;
            for release in releases {
                let fingerprint = release.terms.fingerprint();
                if !written.contains_key(&fingerprint) && !fresh.contains_key(&fingerprint) {
                    fresh.insert(fingerprint, head.seq + 1 + events.len() as u64);
                    events.push(AuditEvent::ReleaseTerms(release.terms.terms().clone()));
                }
            }
            events.extend(batch::batch_events(releases, |terms| {
                let fingerprint = terms.fingerprint();
                written
                    .get(&fingerprint)
                    .or_else(|| fresh.get(&fingerprint))
                    .copied()
                    .unwrap_or_default()
            }));
        }
        self.seal(head, events, fresh.into_iter().collect())
    }

    /// Chains and signs `events` after `head` (see [`AuditLog::chain`]); `new_terms` are the release terms among
    /// them, remembered once the entries are written.
    fn seal<'a>(
        &'a self,
        head: tokio::sync::MutexGuard<'a, ChainHead>,
        events: Vec<AuditEvent>,
        new_terms: Vec<([u8; 16], u64)>,
    ) -> Result<ChainedEntries<'a>, AuditError> {
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
            let json = serde_json::to_vec(&body).map_err(|e| AuditError::Encode(e.to_string()))?;
            let deflated = batch::stored_deflated(&body.event);
            let bytes = if deflated {
                batch::deflate(&json).map_err(|e| AuditError::Encode(e.to_string()))?
            } else {
                json
            };
            // The chain hash of this hub's suite: `sm3:<hex>` under gm, SHA-256 hex under international.
            let hash = self.key.suite().chain_hash(&bytes);
            let mut record = Record::new(self.hub.as_bytes(), bytes);
            record.timestamp_ms = now;
            if deflated {
                record = record.with_header(
                    unsilo_schemas::names::HEADER_AUDIT_ENCODING,
                    batch::DEFLATE.as_bytes().to_vec(),
                );
            }
            records.push(record.with_header(HEADER_AUDIT_HASH, hash.as_bytes().to_vec()));
            next = ChainHead {
                seq: body.seq,
                hash,
            };
        }
        // One signature over the last entry vouches for the append, `head.seq + 1 ..= next.seq`: each hash
        // covers its `prev`, and the range keeps the signature from vouching for anything before it.
        if let Some(last) = records.pop() {
            let from_seq = head.seq + 1;
            let signature = self.key.sign_hex(&signing::entry_message(
                &self.hub, from_seq, next.seq, &next.hash,
            ));
            records.push(
                last.with_header(HEADER_AUDIT_SIGNED_FROM, from_seq.to_string().into_bytes())
                    .with_header(HEADER_AUDIT_SIGNATURE, signature.into_bytes()),
            );
        }
        Ok(ChainedEntries {
            log: self,
            head,
            next,
            records,
            new_terms,
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
    /// Release terms among the entries, remembered as written once they are.
    new_terms: Vec<([u8; 16], u64)>,
}

impl ChainedEntries<'_> {
    /// The entries as a `(topic, records)` part of [`Bus::publish_all`], to be put first.
    pub fn take_entries(&mut self) -> (String, Vec<Record>) {
        (self.log.topic.clone(), std::mem::take(&mut self.records))
    }

    /// The first `seq` of the entries.
    pub fn first_seq(&self) -> u64 {
        self.head.seq + 1
    }

    /// The subscription of each release terms `seq` that `releases` — the ones these entries were chained from
    /// ([`AuditLog::chain_releases`]) — name.
    pub fn terms_seqs(&self, releases: &[Release]) -> BTreeMap<u64, String> {
        let written = self.log.terms_written.lock().ok();
        let mut seen = std::collections::HashSet::new();
        let mut seqs = BTreeMap::new();
        for release in releases {
            if !seen.insert(Arc::as_ptr(&release.terms)) {
                continue;
            }
            let fingerprint = release.terms.fingerprint();
            let seq = written
                .as_ref()
                .and_then(|w| w.get(&fingerprint).copied())
                .or_else(|| {
                    self.new_terms
                        .iter()
                        .find(|(f, _)| *f == fingerprint)
                        .map(|(_, seq)| *seq)
                });
            if let Some(seq) = seq {
                seqs.insert(seq, release.terms.terms().subscription.clone());
            }
        }
        seqs
    }

    /// Adds a header to the last entry (the signed one); headers are not covered by hash or signature.
    pub fn mark_last(&mut self, name: &str, value: Vec<u8>) {
        if let Some(last) = self.records.last_mut() {
            last.headers.push(unsilo_bus::Header::new(name, value));
        }
    }

    /// The last of the entries, by name.
    pub fn last_entry(&self) -> EntryRef {
        EntryRef {
            hub: self.log.hub.clone(),
            seq: self.next.seq,
            hash: self.next.hash.clone(),
        }
    }

    /// Says the entries are durable: the chain's head moves past them and the checkpoint task is told.
    pub fn written(mut self) {
        let seq = self.next.seq;
        *self.head = self.next.clone();
        if !self.new_terms.is_empty() {
            if let Ok(mut written) = self.log.terms_written.lock() {
                written.extend(self.new_terms.drain(..));
            }
        }
        drop(self.head);
        self.log.note_appended(seq);
    }
}

/// Decodes one audit record (inflating a deflated one, see [`batch::entry_json`]); `None` if it is not a
/// readable entry.
pub fn decode(record: &ConsumedRecord) -> Option<AuditEntry> {
    let json = batch::entry_json(&record.record).ok()?;
    let hash = String::from_utf8(record.record.header(HEADER_AUDIT_HASH)?.to_vec()).ok()?;
    let body: EntryBody = serde_json::from_slice(&json).ok()?;
    Some(AuditEntry {
        offset: record.position.offset,
        hash,
        body,
    })
}

/// Reads `topic` (one partition) backwards from its end in windows, handing each window's records, oldest
/// first, to `visit` until it breaks with its answer; `None` when the topic's start is reached first. Each window
/// is one bounded read of its own offsets, never the rest of the topic.
pub(crate) async fn scan_back<T>(
    bus: &dyn Bus,
    topic: &str,
    mut visit: impl FnMut(&[ConsumedRecord]) -> std::ops::ControlFlow<Option<T>>,
) -> Result<Option<T>, AuditError> {
    const WINDOW: u64 = 4096;
    let mut window_end = bus.end_offsets(topic).await?.first().copied().unwrap_or(0);
    while window_end > 0 {
        let start = window_end.saturating_sub(WINDOW);
        let mut window = Vec::with_capacity((window_end - start) as usize);
        let mut offset = start;
        while offset < window_end {
            let want = ((window_end - offset) as usize).min(5000);
            let read =
                unsilo_bus::FetchRequest::new(topic, 0, offset, want, Duration::from_millis(300));
            let batch = bus.fetch(&read).await?;
            let Some(last) = batch.last() else { break };
            offset = last.position.offset + 1;
            window.extend(batch.into_iter().filter(|r| r.position.offset < window_end));
        }
        if let std::ops::ControlFlow::Break(found) = visit(&window) {
            return Ok(found);
        }
        window_end = start;
    }
    Ok(None)
}

/// The offset of `hub`'s entry `seq` with `hash`, reading backwards from the end; `None` if the log does not
/// hold it.
async fn find_entry(
    bus: &dyn Bus,
    topic: &str,
    hub: &str,
    seq: u64,
    hash: &str,
) -> Result<Option<u64>, AuditError> {
    use std::ops::ControlFlow::{Break, Continue};
    scan_back(bus, topic, |window| {
        let mut past_it = false;
        for e in window
            .iter()
            .filter_map(decode)
            .filter(|e| e.body.hub == hub)
        {
            if e.body.seq == seq && e.hash == hash {
                return Break(Some(e.offset));
            }
            past_it |= e.body.seq < seq;
        }
        // A window with older entries of the chain but not `seq` itself: the log does not hold it.
        if past_it {
            Break(None)
        } else {
            Continue(())
        }
    })
    .await
}

/// Reads the whole audit topic, in order, up to its end at the time of the call.
pub async fn read_all(bus: &dyn Bus, topic: &str) -> Result<Vec<ConsumedRecord>, AuditError> {
    read_from(bus, topic, 0).await
}

/// The router write intent an audit record of `hub` carries, if it carries one.
fn router_intent_of(record: &ConsumedRecord, hub: &str) -> Option<(IntentHead, RouterIntentEntry)> {
    let intent = record
        .record
        .header(unsilo_schemas::names::HEADER_ROUTER_INTENT)?;
    if record.record.key.as_deref() != Some(hub.as_bytes()) {
        return None;
    }
    let head: IntentHead = serde_json::from_slice(intent).ok()?;
    Some((
        head,
        RouterIntentEntry {
            offset: record.position.offset,
            intent: intent.to_vec(),
        },
    ))
}

/// Reads the (one-partition) audit topic from `offset` to its end ([`unsilo_bus::read::read_partition`]).
async fn read_from(
    bus: &dyn Bus,
    topic: &str,
    offset: u64,
) -> Result<Vec<ConsumedRecord>, AuditError> {
    let mut out = Vec::new();
    unsilo_bus::read::read_partition(bus, topic, 0, offset, None, |r| {
        out.push(r);
        true
    })
    .await?;
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
    /// Whether the release of `record` under `terms` (one release of a batch) matches.
    pub fn matches_release(&self, record: &ReleasedRecord, terms: &ReleaseTerms) -> bool {
        self.matches_parts(
            &record.id,
            &record.persons,
            &terms.subscription,
            &terms.agency,
        )
    }

    /// Whether a release of `record_id`, naming `persons`, to `subscription` of `agency` matches.
    fn matches_parts(
        &self,
        record_id: &str,
        persons: &[String],
        subscription: &str,
        agency: &str,
    ) -> bool {
        self.record_id.as_deref().is_none_or(|id| id == record_id)
            && self.person_key.as_ref().is_none_or(|k| persons.contains(k))
            && self
                .subscription
                .as_deref()
                .is_none_or(|s| s == subscription)
            && self.agency.as_deref().is_none_or(|a| a == agency)
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        match event {
            AuditEvent::Release {
                record_id,
                subscription,
                agency,
                person_keys,
                ..
            } => self.matches_parts(record_id, person_keys, subscription, agency),
            // Batches are expanded to releases before they are matched; terms are matched through those.
            AuditEvent::Releases { .. } | AuditEvent::ReleaseTerms(_) => false,
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

/// What [`query`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditAnswer {
    /// The matching entries verified against a pinned key (the hub's own or `[security] audit_public_keys`),
    /// oldest first (the newest `limit` of them).
    pub entries: Vec<AuditEntry>,
    /// Entries that match but could not be verified (no valid signature of a pinned key covers them): left out.
    pub unverified_matches: u64,
    /// Entries of the whole log that could not be verified; when not 0, run `unsilo audit verify`.
    pub unverified_in_log: u64,
}

/// Finds the entries matching `q` among those verified against `keys` (see [`AuditAnswer`]).
pub async fn query(
    bus: &dyn Bus,
    topic: &str,
    keys: &TrustedKeys,
    q: &AuditQuery,
) -> Result<AuditAnswer, AuditError> {
    let records = read_all(bus, topic).await?;
    let verified = verified_offsets(&records, keys);
    let mut answer = AuditAnswer::default();
    let mut book = TermsBook::default();
    for r in &records {
        let is_verified = verified.contains(&r.position.offset);
        if !is_verified {
            answer.unverified_in_log += 1;
        }
        let Some(entry) = decode(r) else {
            continue;
        };
        if is_verified {
            book.note(&entry);
        }
        // A batch is expanded only into the releases the query matches.
        let expanded = batch::expand_with(
            entry,
            |hub, seq| book.get(hub, seq),
            |record, terms| q.matches_release(record, terms),
        );
        for entry in expanded
            .entries
            .into_iter()
            .filter(|e| q.matches(&e.body.event))
        {
            if is_verified {
                answer.entries.push(entry);
            } else {
                answer.unverified_matches += 1;
            }
        }
    }
    let limit = q.limit.unwrap_or(1000);
    if answer.entries.len() > limit {
        answer.entries.drain(..answer.entries.len() - limit);
    }
    Ok(answer)
}

/// The offsets of `records` (the audit topic, read whole) that a signature of a key in `keys` covers.
fn verified_offsets(records: &[ConsumedRecord], keys: &TrustedKeys) -> BTreeSet<u64> {
    let mut verifier = Verifier::new(keys);
    let mut verified = BTreeSet::new();
    for r in records {
        verified.extend(verifier.push(r));
    }
    verified
}

/// Hands `visit` each entry written in `[from_ms, to_ms)` that verifies against `keys`, oldest first — a batch as
/// its releases, one at a time, so a month of releases is never held at once — and returns how many entries of
/// that period did not verify (left out): what a report over a period counts.
pub async fn verified_between(
    bus: &dyn Bus,
    topic: &str,
    keys: &TrustedKeys,
    from_ms: i64,
    to_ms: i64,
    mut visit: impl FnMut(AuditEntry),
) -> Result<u64, AuditError> {
    let records = read_all(bus, topic).await?;
    let verified = verified_offsets(&records, keys);
    let mut unverified = 0;
    let mut book = TermsBook::default();
    for r in &records {
        let is_verified = verified.contains(&r.position.offset);
        let Some(entry) = decode(r) else {
            continue;
        };
        // Terms written before the period still name releases in it.
        if is_verified {
            book.note(&entry);
        }
        if !(from_ms..to_ms).contains(&entry.body.time_ms) {
            continue;
        }
        if is_verified {
            book.expand(entry).entries.into_iter().for_each(&mut visit);
        } else {
            unverified += 1;
        }
    }
    Ok(unverified)
}

#[cfg(test)]
mod tests;
