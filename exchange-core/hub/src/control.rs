//! The control plane: agencies, subscriptions, the resource catalogue's entries and corrections, kept on the
//! compacted `_unsilo.config` topic.
//!
//! Every hub process follows the topic into an in-memory [`ControlState`] (see [`unsilo_bus::follow`]), so a
//! change made by one process is seen by all of them as soon as their follower polls it (within a fraction of a
//! second). A write appends the new value of one entity and waits until this process's follower has applied it
//! (read-your-writes), so when an API call that revoked a subscription returns, the router of this process
//! already refuses its next record.
//!
//! Records: key `agency/<id>`, `subscription/<agency>.<name>`, `catalogue/<id>`, `correction/<id>` or
//! `usage/<id>` (the usage register, never rewritten), value the entity as JSON. Each entity carries a
//! `revision`; a write states the revision it replaces and is refused if the view holds another one — the
//! optimistic check that keeps two operators from silently overwriting each other. (Two processes racing within
//! one follower poll can still both pass the check; the later record then wins in log order. Control-plane writes
//! are rare, human-paced operations, so this is accepted and documented in docs/decisions.md.)
//!
//! Subscribers to [`ControlPlane::changes`] (the router, the delivery workers) are woken on every applied
//! change.
//!
//! **Only the hubs write it.** Anyone with produce access to the topic could otherwise add a token digest to an
//! agency or approvals to a subscription. So every record carries the deployment's seal ([`RecordSeal`], see
//! [`unsilo_bus::seal`]). A record whose seal does not verify is never applied: it is counted
//! (`unsilo_refused_records{topic}` on `/metrics`) and logged as an error naming its offset and key. A sealed
//! record is applied only if it is newer than what is applied for its entity (its `revision` is higher), so a
//! copy of an old, validly sealed record appended again — a revoked token brought back — is refused the same way.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use apache_avro::Schema;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::auth::Principal;
pub use unsilo_bus::seal::RecordSeal;
use unsilo_bus::{Bus, ConsumedRecord, ConsumerOptions, Record, TopicSpec};
use unsilo_policy::catalogue::CatalogueEntry;
use unsilo_policy::correction::Correction;
use unsilo_policy::model::{Agency, Subscription, TokenDigest};
use unsilo_policy::usage::UsageRecord;

/// How long a write waits for the follower to apply it.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] unsilo_bus::Error),
    /// Someone else changed the entity since it was read.
    #[error("{0} was changed by someone else meanwhile; read it again and retry")]
    Conflict(String),
    /// The follower did not apply a write in time, or has stopped.
    #[error("the control plane is not following its topic")]
    NotReady,
}

/// One control-plane value, as stored on the topic.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Entry {
    Agency(Box<Agency>),
    Subscription(Box<Subscription>),
    Catalogue(Box<CatalogueEntry>),
    Correction(Box<Correction>),
    Usage(Box<UsageRecord>),
}

/// What the control plane knows: every agency and subscription, by id.
#[derive(Clone, Debug, Default)]
pub struct ControlState {
    /// Agencies by id.
    pub agencies: BTreeMap<String, Agency>,
    /// Subscriptions by id (`<agency>.<name>`).
    pub subscriptions: BTreeMap<String, Subscription>,
    /// The resource catalogue's entries by id.
    pub catalogue: BTreeMap<String, CatalogueEntry>,
    /// Corrections by id.
    pub corrections: BTreeMap<String, Correction>,
    /// The usage register's entries by id.
    pub usage: BTreeMap<String, UsageRecord>,
    /// The next offset of the topic to apply.
    next_offset: u64,
    /// The offset of the record applied last for each key (a writer checks its own record was the one).
    applied_at: std::collections::HashMap<String, u64>,
    /// Records refused: unsealed, badly sealed, or older than what was applied for their entity.
    refused: u64,
}

impl ControlState {
    /// The agency holding a token with this SHA-256 digest (hex), and that token, if any (usable or not).
    pub fn agency_token(&self, digest: &str) -> Option<(&Agency, &TokenDigest)> {
        self.agencies.values().find_map(|a| {
            a.tokens
                .iter()
                .find(|t| crate::auth::digests_equal(t.sha256.as_bytes(), digest.as_bytes()))
                .map(|t| (a, t))
        })
    }

    /// Records of the topic refused so far (unsealed, badly sealed, or replays of older ones).
    pub fn refused_records(&self) -> u64 {
        self.refused
    }

    fn apply(&mut self, record: &ConsumedRecord, seal: &RecordSeal, topic: &str) {
        self.next_offset = record.position.offset + 1;
        let key = record
            .record
            .key
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned();
        let offset = record.position.offset;
        let mut refuse = |why: &str| {
            self.refused += 1;
            error!(topic, offset, key = %key, why, "Control-plane record refused: only the hubs of this deployment write the control plane. Find who can produce to this topic.");
        };
        if let Err(why) = seal.check(topic, &record.record) {
            refuse(why);
            return;
        }
        let Some(value) = &record.record.value else {
            if let Some(id) = key.strip_prefix("agency/") {
                self.agencies.remove(id);
            } else if let Some(id) = key.strip_prefix("subscription/") {
                self.subscriptions.remove(id);
            } else if let Some(id) = key.strip_prefix("catalogue/") {
                self.catalogue.remove(id);
            } else if let Some(id) = key.strip_prefix("correction/") {
                self.corrections.remove(id);
            } else if key.starts_with("usage/") {
                // The register is kept whatever is asked: a tombstone is refused like an unsealed record.
                refuse("the usage register is never deleted");
                return;
            }
            self.applied_at.insert(key, offset);
            return;
        };
        let applied = match serde_json::from_slice::<Entry>(value) {
            Ok(Entry::Agency(a)) => newer(&mut self.agencies, a.id.clone(), a.revision, *a),
            Ok(Entry::Subscription(s)) => {
                newer(&mut self.subscriptions, s.id.clone(), s.revision, *s)
            }
            Ok(Entry::Catalogue(e)) => newer(&mut self.catalogue, e.id.clone(), e.revision, *e),
            Ok(Entry::Correction(c)) => newer(&mut self.corrections, c.id.clone(), c.revision, *c),
            Ok(Entry::Usage(u)) => newer(&mut self.usage, u.id.clone(), u.revision, *u),
            Err(e) => {
                warn!(key = %key, offset, error = %e, "Unreadable control-plane record skipped.");
                return;
            }
        };
        if !applied {
            refuse("it is older than the entity's record applied (a sealed record appended again)");
            return;
        }
        self.applied_at.insert(key, offset);
    }
}

/// Puts `value` under `id` if its `revision` is newer than the one held; whether it did.
fn newer<T: Revisioned>(
    map: &mut BTreeMap<String, T>,
    id: String,
    revision: u64,
    value: T,
) -> bool {
    if map.get(&id).is_some_and(|c| c.revision() >= revision) {
        return false;
    }
    map.insert(id, value);
    true
}

/// A control-plane entity with a revision.
trait Revisioned {
    fn revision(&self) -> u64;
}

macro_rules! revisioned {
    ($($t:ty),*) => {$(
        impl Revisioned for $t {
            fn revision(&self) -> u64 {
                self.revision
            }
        }
    )*};
}
revisioned!(
    Agency,
    Subscription,
    CatalogueEntry,
    Correction,
    UsageRecord
);

/// The control plane of one hub process.
pub struct ControlPlane {
    bus: Arc<dyn Bus>,
    topic: String,
    state: Arc<RwLock<ControlState>>,
    applied: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    follower: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Serialises this process's writes, so its revision checks cannot race each other.
    writes: tokio::sync::Mutex<()>,
    /// Seals what this process writes, and checks what it reads.
    seal: RecordSeal,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Opens the control plane on `topic` (normally [`CONFIG_TOPIC`](unsilo_schemas::names::CONFIG_TOPIC)):
    /// creates it if needed, replays it and keeps following it, applying only records `seal` verifies.
    pub async fn open(
        bus: Arc<dyn Bus>,
        topic: &str,
        seal: RecordSeal,
    ) -> Result<Arc<Self>, ControlError> {
        bus.create_topic(&TopicSpec::compacted(topic)).await?;
        let consumer = bus.consumer(ConsumerOptions::replay(topic)).await?;
        let end = bus.end_offsets(topic).await?.first().copied().unwrap_or(0);
        let state = Arc::new(RwLock::new(ControlState::default()));
        let (applied_tx, applied_rx) = watch::channel(0u64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let view = state.clone();
        let (checker, followed) = (seal.clone(), topic.to_owned());
        let apply = move |batch: Vec<ConsumedRecord>| {
            let mut s = view.write().unwrap_or_else(|p| p.into_inner());
            for r in &batch {
                s.apply(r, &checker, &followed);
            }
            s.next_offset
        };
        let follower = tokio::spawn(unsilo_bus::follow::follow(
            consumer,
            apply,
            applied_tx,
            stop_rx,
            topic.to_owned(),
        ));
        let plane = Arc::new(Self {
            bus,
            topic: topic.to_owned(),
            state,
            applied: applied_rx,
            stop: stop_tx,
            follower: tokio::sync::Mutex::new(Some(follower)),
            writes: tokio::sync::Mutex::new(()),
            seal,
        });
        // Replay what is there. A compacted tail may end before `end`; give up waiting after a quiet spell.
        let mut rx = plane.applied.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|&n| n >= end)).await;
        {
            let s = plane.read();
            info!(topic = %plane.topic, agencies = s.agencies.len(), subscriptions = s.subscriptions.len(), "Control plane ready.");
        }
        Ok(plane)
    }

    /// A read guard on the current state. Hold it briefly.
    pub fn read(&self) -> RwLockReadGuard<'_, ControlState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that changes whenever a control-plane record is applied (its value is the next offset).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// One agency.
    pub fn agency(&self, id: &str) -> Option<Agency> {
        self.read().agencies.get(id).cloned()
    }

    /// One subscription.
    pub fn subscription(&self, id: &str) -> Option<Subscription> {
        self.read().subscriptions.get(id).cloned()
    }

    /// One subscription, if `who` may see it: `None` both when it does not exist and when it belongs to another
    /// agency, so an API answers 404 in both cases and ids cannot be probed.
    pub fn subscription_visible_to(&self, who: &Principal, id: &str) -> Option<Subscription> {
        self.subscription(id)
            .filter(|s| who.may_see_agency(&s.agency))
    }

    /// Creates or replaces an agency. `expected` is the agency as read before the change (`None` to create);
    /// the write is refused if the view holds something else.
    pub async fn put_agency(
        &self,
        agency: &Agency,
        expected: Option<&Agency>,
    ) -> Result<(), ControlError> {
        let _guard = self.writes.lock().await;
        if self.read().agencies.get(&agency.id) != expected {
            return Err(ControlError::Conflict(format!("agency `{}`", agency.id)));
        }
        let mut agency = agency.clone();
        agency.revision = expected.map_or(1, |e| e.revision + 1);
        let value = serde_json::to_vec(&Entry::Agency(Box::new(agency.clone())))
            .map_err(|e| unsilo_bus::Error::Store(e.to_string()))?;
        self.append(Record::new(format!("agency/{}", agency.id), value))
            .await
    }

    /// Creates many new agencies and subscriptions in few writes (a deployment's control plane moved in from
    /// another platform, or a province-sized one seeded for `unsilo bench`): each must not exist yet (the
    /// first that does is named and nothing is written); they are written in chunks of at most 1,000 records,
    /// agencies first, each chunk waited for until the view holds it.
    pub async fn put_new_in_bulk(
        &self,
        agencies: &[Agency],
        subscriptions: &[Subscription],
    ) -> Result<(), ControlError> {
        let _guard = self.writes.lock().await;
        {
            let state = self.read();
            if let Some(a) = agencies.iter().find(|a| state.agencies.contains_key(&a.id)) {
                return Err(ControlError::Conflict(format!("agency `{}`", a.id)));
            }
            if let Some(s) = subscriptions
                .iter()
                .find(|s| state.subscriptions.contains_key(&s.id))
            {
                return Err(ControlError::Conflict(format!("subscription `{}`", s.id)));
            }
        }
        let encode = |key: String, entry: &Entry| -> Result<Record, ControlError> {
            let value =
                serde_json::to_vec(entry).map_err(|e| unsilo_bus::Error::Store(e.to_string()))?;
            Ok(self.seal.seal(&self.topic, Record::new(key, value)))
        };
        let mut records = Vec::with_capacity(agencies.len() + subscriptions.len());
        for a in agencies {
            let mut a = a.clone();
            a.revision = 1;
            records.push(encode(
                format!("agency/{}", a.id),
                &Entry::Agency(Box::new(a)),
            )?);
        }
        for s in subscriptions {
            let mut s = s.clone();
            s.revision = 1;
            records.push(encode(
                format!("subscription/{}", s.id),
                &Entry::Subscription(Box::new(s)),
            )?);
        }
        for chunk in records.chunks(1000) {
            let positions = self.bus.publish(&self.topic, chunk.to_vec()).await?;
            self.until_applied(&positions).await?;
        }
        Ok(())
    }

    /// Creates or replaces a subscription, checking that the view still holds revision `revision - 1` (or
    /// nothing, for revision 1).
    pub async fn put_subscription(&self, subscription: &Subscription) -> Result<(), ControlError> {
        self.put_next(
            "subscription",
            &subscription.id,
            subscription.revision,
            |s| s.subscriptions.get(&subscription.id).map(|c| c.revision),
            Entry::Subscription(Box::new(subscription.clone())),
        )
        .await
    }

    /// Writes `entry` of kind `kind` (the key's prefix: `subscription`, `catalogue` …) and id `id` as revision
    /// `revision`, if the view holds revision `revision - 1` of it (or nothing, for revision 1) — `held` reads
    /// the revision held.
    async fn put_next(
        &self,
        kind: &str,
        id: &str,
        revision: u64,
        held: impl FnOnce(&ControlState) -> Option<u64>,
        entry: Entry,
    ) -> Result<(), ControlError> {
        let _guard = self.writes.lock().await;
        let current = held(&self.read());
        let expected = revision.checked_sub(1).filter(|r| *r > 0);
        if current != expected {
            return Err(ControlError::Conflict(format!("{kind} `{id}`")));
        }
        let key = format!("{kind}/{id}");
        let value =
            serde_json::to_vec(&entry).map_err(|e| unsilo_bus::Error::Store(e.to_string()))?;
        self.append(Record::new(key, value)).await
    }

    /// One catalogue entry.
    pub fn catalogue_entry(&self, id: &str) -> Option<CatalogueEntry> {
        self.read().catalogue.get(id).cloned()
    }

    /// Creates or replaces a catalogue entry, checking that the view still holds revision `revision - 1` (or
    /// nothing, for revision 1).
    pub async fn put_catalogue_entry(&self, entry: &CatalogueEntry) -> Result<(), ControlError> {
        self.put_next(
            "catalogue",
            &entry.id,
            entry.revision,
            |s| s.catalogue.get(&entry.id).map(|c| c.revision),
            Entry::Catalogue(Box::new(entry.clone())),
        )
        .await
    }

    /// One correction.
    pub fn correction(&self, id: &str) -> Option<Correction> {
        self.read().corrections.get(id).cloned()
    }

    /// Creates or replaces a correction, checking that the view still holds revision `revision - 1` (or
    /// nothing, for revision 1).
    pub async fn put_correction(&self, correction: &Correction) -> Result<(), ControlError> {
        self.put_next(
            "correction",
            &correction.id,
            correction.revision,
            |s| s.corrections.get(&correction.id).map(|c| c.revision),
            Entry::Correction(Box::new(correction.clone())),
        )
        .await
    }

    /// Adds an entry to the usage register (written once, never replaced).
    pub async fn put_usage(&self, usage: &UsageRecord) -> Result<(), ControlError> {
        self.put_next(
            "usage",
            &usage.id,
            1,
            |s| s.usage.get(&usage.id).map(|u| u.revision),
            Entry::Usage(Box::new(usage.clone())),
        )
        .await
    }

    /// Seals and writes `record`, then waits until this process's follower has applied it — and checks that it
    /// was applied, not refused as older than a record another hub wrote meanwhile (then: a conflict).
    async fn append(&self, record: Record) -> Result<(), ControlError> {
        let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
        let sealed = self.seal.seal(&self.topic, record);
        let positions = self.bus.publish(&self.topic, vec![sealed]).await?;
        let written = self.until_applied(&positions).await?;
        if self.read().applied_at.get(&key) == Some(&written) {
            Ok(())
        } else {
            Err(ControlError::Conflict(key))
        }
    }

    /// Waits until the view has applied the records written at `positions` (at most [`APPLY_TIMEOUT`]);
    /// returns the last offset written.
    async fn until_applied(&self, positions: &[unsilo_bus::Position]) -> Result<u64, ControlError> {
        let written = positions.iter().map(|p| p.offset).max().unwrap_or(0);
        let mut rx = self.applied.clone();
        let applied = tokio::time::timeout(APPLY_TIMEOUT, rx.wait_for(|&n| n > written))
            .await
            .map(|r| r.is_ok());
        if applied == Ok(true) {
            Ok(written)
        } else {
            Err(ControlError::NotReady)
        }
    }

    /// Records of the topic refused so far: unsealed, badly sealed, or older than what was applied.
    pub fn refused_records(&self) -> u64 {
        self.read().refused
    }

    /// Stops following the topic.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        if let Some(handle) = self.follower.lock().await.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// What the control surfaces (admin API, console) ask of the delivery stage. The delivery stage implements it
/// and the server hands it to the admin API, so neither imports the other.
#[async_trait]
pub trait DeliveryControl: Send + Sync {
    /// Prepares a subscription's channel before activation: reaches the subscriber's database and creates its
    /// table, or reaches its Kafka cluster and creates the topic. The error names what the peer answered.
    async fn prepare_channel(
        &self,
        subscription: &Subscription,
        view_schema: &Schema,
    ) -> Result<(), ChannelUnavailable>;

    /// Puts every record of a subscription's delivery dead-letter topic back on its topic, for the channel to
    /// try again; returns how many.
    async fn replay_dead_letters(
        &self,
        subscription: &Subscription,
    ) -> Result<usize, unsilo_bus::Error>;

    /// The health of a subscription's channel where the hub tracks one: a webhook's circuit breaker
    /// (`closed`, `open`, `half-open`); `None` for channels without.
    fn channel_health(&self, subscription: &Subscription) -> Option<&'static str>;
}

/// What the governance operations may ask of the stages below them: delivery (prepare a channel, replay a
/// subscription's dead letters, channel health) and ingest (replay a source's dead letters).
#[derive(Clone)]
pub struct StageControls {
    /// The delivery stage.
    pub delivery: Arc<dyn DeliveryControl>,
    /// The ingest stage.
    pub sources: Arc<dyn SourceControl>,
}

/// What the admin surfaces may ask of the ingest stage: running a connector's rejected originals through its
/// current definition again. Implemented by the ingest stage, wired by the server.
#[async_trait::async_trait]
pub trait SourceControl: Send + Sync {
    /// Re-normalises the originals on `dlq.<connector>` (those matching `filter`, not replayed before) with the
    /// connector's current definition: what passes goes to `std.` and `raw.` with its normal record id, what still
    /// fails goes back on the dead-letter topic with its new reason. Every entry taken is marked, so a second
    /// replay does not take it again.
    async fn replay_source_dead_letters(
        &self,
        connector: &str,
        filter: &DeadLetterFilter,
    ) -> Result<SourceReplay, SourceReplayError>;

    /// Runs the originals on `raw.<connector>` stored in `[from_ms, to_ms)` through the connector's current
    /// definition again and publishes the results to `std.` only, with the same record ids, so idempotent
    /// subscribers converge after a mapping fix or a new schema version.
    async fn renormalise(
        &self,
        connector: &str,
        from_ms: i64,
        to_ms: Option<i64>,
    ) -> Result<Renormalisation, SourceReplayError>;
}

/// What a re-normalisation from `raw.` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Renormalisation {
    /// Originals read in the time range.
    pub taken: usize,
    /// Of those, normalised and published to `std.` again.
    pub accepted: usize,
    /// Of those, rejected by the current definition (reported only: their earlier records stay).
    pub rejected: usize,
    /// Originals left alone because they are not JSON (CSV or XLSX lines).
    pub not_replayable: usize,
}

/// Which dead letters a source replay takes.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterFilter {
    /// Only those rejected with this reason code, e.g. `unknown_code`.
    #[serde(default)]
    pub code: Option<String>,
    /// Only those rejected at or after this time (ms since the epoch).
    #[serde(default)]
    pub since_ms: Option<i64>,
}

/// What a source replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SourceReplay {
    /// Dead letters taken (matching the filter and not replayed before).
    pub taken: usize,
    /// Of those, now accepted (on `std.` and `raw.`).
    pub accepted: usize,
    /// Of those, rejected again (back on the dead-letter topic with the new reason).
    pub rejected: usize,
    /// Dead letters passed over because an earlier replay took them.
    pub already_replayed: usize,
    /// Dead letters left in place because their original is not JSON (a CSV or XLSX line).
    pub not_replayable: usize,
}

/// Why a source replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum SourceReplayError {
    /// No such connector on this hub.
    #[error("no connector `{0}` on this hub")]
    UnknownConnector(String),
    /// The bus or the sink failed.
    #[error("{0}")]
    Failed(String),
}

/// A subscriber's channel could not be prepared (its database or cluster refused or did not answer).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChannelUnavailable(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use unsilo_bus::embedded::EmbeddedBus;
    use unsilo_policy::model::{
        Channel, FieldRule, SubscriptionSpec, SubscriptionStatus, Treatment,
    };
    use unsilo_schemas::names::CONFIG_TOPIC;

    fn subscription(revision: u64, status: SubscriptionStatus) -> Subscription {
        let spec = SubscriptionSpec {
            schema: "household".into(),
            filter: "true".into(),
            fields: vec![FieldRule {
                field: "care_level".into(),
                treatment: Treatment::Clear,
            }],
            purpose: "p".into(),
            legal_basis: None,
            scenario: None,
            scope: None,
            expires_at_ms: None,
            backfill_from_ms: None,
            retain_days: None,
            channel: Channel::Pull,
        };
        let mut s = Subscription::new_request("civil", "red", spec, 0);
        s.status = status;
        s.revision = revision;
        s
    }

    #[tokio::test]
    async fn a_second_follower_sees_writes_and_stale_writes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(dir.path()).unwrap());
        let a = ControlPlane::open(bus.clone(), CONFIG_TOPIC, seal("a"))
            .await
            .unwrap();
        let b = ControlPlane::open(bus.clone(), CONFIG_TOPIC, seal("b"))
            .await
            .unwrap();
        a.put_subscription(&subscription(1, SubscriptionStatus::Requested))
            .await
            .unwrap();
        let mut changes = b.changes();
        tokio::time::timeout(
            Duration::from_secs(30),
            changes.wait_for(|_| b.subscription("civil.red").is_some()),
        )
        .await
        .expect("b follows a")
        .unwrap();
        // A write based on a stale revision loses.
        let err = a
            .put_subscription(&subscription(1, SubscriptionStatus::Active))
            .await
            .unwrap_err();
        assert!(matches!(err, ControlError::Conflict(_)), "{err}");
        a.put_subscription(&subscription(2, SubscriptionStatus::Revoked))
            .await
            .unwrap();
        assert_eq!(
            a.subscription("civil.red").unwrap().status,
            SubscriptionStatus::Revoked,
            "read-your-writes"
        );
        // A restarted process replays the latest state.
        a.shutdown().await;
        b.shutdown().await;
        let c = ControlPlane::open(bus, CONFIG_TOPIC, seal("c"))
            .await
            .unwrap();
        assert_eq!(
            c.subscription("civil.red").unwrap().status,
            SubscriptionStatus::Revoked
        );
        assert_eq!(c.refused_records(), 0);
    }

    fn seal(hub: &str) -> RecordSeal {
        RecordSeal::new(hub, [7; 32])
    }

    #[tokio::test]
    async fn a_bulk_write_lands_whole_or_names_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(dir.path()).unwrap());
        let plane = ControlPlane::open(bus.clone(), CONFIG_TOPIC, seal("a"))
            .await
            .unwrap();
        let many: Vec<Subscription> = (0..2500)
            .map(|i| {
                let mut s = subscription(7, SubscriptionStatus::Active);
                s.name = format!("s{i}");
                s.id = Subscription::id_of("civil", &s.name);
                s
            })
            .collect();
        plane.put_new_in_bulk(&[], &many).await.unwrap();
        assert_eq!(plane.read().subscriptions.len(), 2500);
        assert_eq!(
            plane.subscription("civil.s2499").unwrap().revision,
            1,
            "each created at revision 1"
        );
        let err = plane.put_new_in_bulk(&[], &many[10..11]).await.unwrap_err();
        assert!(err.to_string().contains("civil.s10"), "{err}");
        plane.shutdown().await;
        let again = ControlPlane::open(bus, CONFIG_TOPIC, seal("b"))
            .await
            .unwrap();
        assert_eq!(again.read().subscriptions.len(), 2500, "replayed whole");
    }

    #[tokio::test]
    async fn records_no_hub_sealed_and_old_sealed_records_appended_again_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(dir.path()).unwrap());
        let plane = ControlPlane::open(bus.clone(), CONFIG_TOPIC, seal("a"))
            .await
            .unwrap();
        plane
            .put_subscription(&subscription(1, SubscriptionStatus::Requested))
            .await
            .unwrap();
        plane
            .put_subscription(&subscription(2, SubscriptionStatus::Revoked))
            .await
            .unwrap();
        let written = bus
            .fetch(&unsilo_bus::FetchRequest::new(
                CONFIG_TOPIC,
                0,
                0,
                10,
                Duration::ZERO,
            ))
            .await
            .unwrap();
        // What an ordinary producer could append: an active subscription with invented approvals, unsealed;
        // the same sealed with another deployment's key; and the first, validly sealed record again (a replay).
        let forged = serde_json::to_vec(&Entry::Subscription(Box::new(subscription(
            9,
            SubscriptionStatus::Active,
        ))))
        .unwrap();
        let other = RecordSeal::new("a", [8; 32]);
        let records = vec![
            Record::new("subscription/civil.red", forged.clone()),
            other.seal(CONFIG_TOPIC, Record::new("subscription/civil.red", forged)),
            written[0].record.clone(),
        ];
        bus.publish(CONFIG_TOPIC, records).await.unwrap();
        let mut changes = plane.changes();
        tokio::time::timeout(
            Duration::from_secs(30),
            changes.wait_for(|_| plane.refused_records() == 3),
        )
        .await
        .expect("all three refused")
        .unwrap();
        assert_eq!(
            plane.subscription("civil.red").unwrap().status,
            SubscriptionStatus::Revoked
        );
        // A restart replays the topic and refuses them again.
        plane.shutdown().await;
        let again = ControlPlane::open(bus, CONFIG_TOPIC, seal("b"))
            .await
            .unwrap();
        assert_eq!(again.refused_records(), 3);
        assert_eq!(
            again.subscription("civil.red").unwrap().status,
            SubscriptionStatus::Revoked
        );
    }
}
