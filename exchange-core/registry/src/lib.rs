//! # unsilo-registry
//!
//! The schema registry: subjects, versions, global schema ids and compatibility levels, kept on the bus and
//! served over HTTP in the Confluent Schema Registry dialect.
//!
//! # Layout
//!
//! - [`Registry`] (this file): the operations — register, look up, delete, configure — and the background task
//!   that tails the registry topic into an in-memory view.
//! - `state`: the records on `_unsilo.schemas` and the view materialised from them (and why it survives
//!   compaction and concurrent writers).
//! - `compat`: [`Compatibility`] levels and the check that decides them with the Avro resolution rules.
//! - `avro`: parsing schema text and the identity form that says when two texts are the same schema.
//! - [`api`]: the HTTP API ([`router`]).
//! - [`decode`]: the one decoder of framed records (wire frame → registry schema → Avro datum).
//! - [`error`](mod@error): [`Error`], with the Confluent error code of each case.
//!
//! # Concurrency
//!
//! Several hub processes on one Kafka share one registry topic. Each keeps its own view; a write appends a
//! record, waits until its own tailing task has applied that offset (read-your-writes), then asks the view
//! whether the claim won. Ids and versions are allocated optimistically from the view; a claim that lost a race
//! (another process took the same version or id first in log order) is tombstoned and retried with fresh
//! numbers, a bounded number of times.

pub mod api;
pub(crate) mod avro;
pub(crate) mod compat;
pub mod decode;
pub mod error;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;
pub use unsilo_bus::seal::RecordSeal;
use unsilo_schemas::names::SCHEMAS_TOPIC;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use state::View;
use unsilo_bus::{Bus, ConsumerOptions, Record, TopicSpec};

pub use api::router;
pub use compat::Compatibility;
pub use error::{Error, Result};

/// How many times a registration is retried after losing a race to another process.
const MAX_ATTEMPTS: u32 = 16;

/// How long a write waits for the view to apply it.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the initial replay may go without progress before the end of the log is assumed reached (its last
/// records may have been removed by compaction).
const REPLAY_STALL: Duration = Duration::from_secs(30);

/// How the registry is opened.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// The topic holding the state; [`SCHEMAS_TOPIC`] in production, a unique name in tests that share a broker.
    pub topic: String,
    /// The global compatibility level used until one is set (`PUT /config`); not written to the topic.
    pub default_compatibility: Compatibility,
    /// The deployment's seal ([`unsilo_bus::seal`]): the registry seals what it writes and applies only sealed
    /// records. The hub always gives one; `None` (the default) accepts any record, for the registry on its own.
    pub seal: Option<RecordSeal>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            topic: SCHEMAS_TOPIC.to_owned(),
            default_compatibility: Compatibility::Backward,
            seal: None,
        }
    }
}

/// A registered schema in parsed form, shared with the registry's view (cheap to clone).
#[derive(Clone, Debug)]
pub struct AvroSchema(Arc<avro::ParsedSchema>);

impl AvroSchema {
    /// The parsed Avro schema.
    pub fn schema(&self) -> &apache_avro::Schema {
        &self.0.schema
    }
}

/// A schema as a version of a subject, in Confluent's JSON shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SchemaVersion {
    /// The subject, e.g. `std.grid_event-value`.
    pub subject: String,
    /// The version within the subject, from 1.
    pub version: u32,
    /// The global schema id.
    pub id: i32,
    /// The schema text as registered.
    pub schema: String,
}

/// A version selector in a path: a number or `latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSpec {
    /// The newest version that is not soft-deleted (`latest` or `-1`).
    Latest,
    /// A version number from 1 to 2^31-1.
    Number(u32),
}

impl std::str::FromStr for VersionSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("latest") || s == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match s.parse::<i64>() {
            Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => Ok(VersionSpec::Number(
                u32::try_from(n).map_err(|_| Error::InvalidVersion(s.to_owned()))?,
            )),
            _ => Err(Error::InvalidVersion(s.to_owned())),
        }
    }
}

/// The result of a compatibility check: empty `messages` means compatible.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompatibilityReport {
    /// One sentence per problem, naming the field and the version involved.
    pub messages: Vec<String>,
}

impl CompatibilityReport {
    /// Whether the schema passed.
    pub fn is_compatible(&self) -> bool {
        self.messages.is_empty()
    }
}

/// The schema registry of one hub process; see the module docs.
pub struct Registry {
    bus: Arc<dyn Bus>,
    topic: String,
    default_compatibility: Compatibility,
    view: Arc<RwLock<View>>,
    applied: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    tail: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Serialises this process's writes: races are then only between processes, which the claim protocol
    /// settles.
    writes: tokio::sync::Mutex<()>,
    lost_races: AtomicU64,
    seal: Option<RecordSeal>,
    /// Records of the topic refused for want of a valid seal.
    refused: Arc<AtomicU64>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("topic", &self.topic)
            .field("default_compatibility", &self.default_compatibility)
            .field("applied", &*self.applied.borrow())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens the registry on [`SCHEMAS_TOPIC`]: creates the topic if needed, replays it to its end, and keeps tailing it.
    /// Lookups are served from a complete view as soon as this returns.
    pub async fn open(
        bus: Arc<dyn Bus>,
        default_compatibility: Compatibility,
    ) -> Result<Arc<Registry>> {
        Self::open_with(
            bus,
            RegistryOptions {
                default_compatibility,
                ..RegistryOptions::default()
            },
        )
        .await
    }

    /// Opens the registry with explicit options.
    pub async fn open_with(bus: Arc<dyn Bus>, options: RegistryOptions) -> Result<Arc<Registry>> {
        let topic = options.topic;
        bus.create_topic(&TopicSpec::compacted(topic.clone()))
            .await?;
        let consumer = bus.consumer(ConsumerOptions::replay(&topic)).await?;
        let end = bus.end_offsets(&topic).await?.first().copied().unwrap_or(0);

        let view = Arc::new(RwLock::new(View::default()));
        let (applied_tx, applied_rx) = watch::channel(0u64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let refused = Arc::new(AtomicU64::new(0));
        let tail = tokio::spawn(tail(
            consumer,
            view.clone(),
            applied_tx,
            stop_rx,
            topic.clone(),
            (options.seal.clone(), refused.clone()),
        ));

        let registry = Arc::new(Registry {
            bus,
            topic,
            default_compatibility: options.default_compatibility,
            view,
            applied: applied_rx,
            stop: stop_tx,
            tail: tokio::sync::Mutex::new(Some(tail)),
            writes: tokio::sync::Mutex::new(()),
            lost_races: AtomicU64::new(0),
            seal: options.seal,
            refused,
        });
        registry.catch_up(end).await?;
        let view = registry.read_view();
        info!(
            topic = %registry.topic,
            subjects = view.subjects(false).len(),
            offset = view.next_offset(),
            "Schema registry ready."
        );
        drop(view);
        Ok(registry)
    }

    /// Waits until the view has applied everything before `end`.
    async fn catch_up(&self, end: u64) -> Result<()> {
        let mut rx = self.applied.clone();
        let mut last = *rx.borrow();
        loop {
            let reached = tokio::time::timeout(REPLAY_STALL, rx.wait_for(|&n| n >= end))
                .await
                .map(|r| r.is_ok());
            match reached {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(Error::NotReady),
                Err(_) => {
                    let now = *rx.borrow();
                    if now == last {
                        warn!(topic = %self.topic, applied = now, end, "Schema topic replay stalled; assuming its end was compacted away.");
                        return Ok(());
                    }
                    last = now;
                }
            }
        }
    }

    /// Whether the registry serves requests: its tailing task runs and has replayed the topic.
    pub fn is_ready(&self) -> bool {
        !*self.stop.borrow() && self.applied.has_changed().is_ok()
    }

    /// Waits until the view reflects everything on the topic now, including other processes' writes.
    pub async fn sync(&self) -> Result<()> {
        self.ensure_ready()?;
        let end = self
            .bus
            .end_offsets(&self.topic)
            .await?
            .first()
            .copied()
            .unwrap_or(0);
        self.wait_applied(end).await
    }

    /// How many registrations of this process lost a race to another process and were retried (for metrics).
    pub fn lost_races(&self) -> u64 {
        self.lost_races.load(Ordering::Relaxed)
    }

    /// Stops the tailing task. Later calls answer [`Error::NotReady`].
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        if let Some(handle) = self.tail.lock().await.take() {
            if let Err(e) = handle.await {
                error!(error = %e, "Schema registry tail task failed.");
            }
        }
        info!(topic = %self.topic, "Schema registry stopped.");
    }

    fn read_view(&self) -> RwLockReadGuard<'_, View> {
        // The view is only written by whole-record applies; a panic mid-apply cannot happen without a bug, and
        // the data is still the best there is, so a poisoned lock is used as is.
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    fn ensure_ready(&self) -> Result<()> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(Error::NotReady)
        }
    }

    /// Records of the topic refused for want of a valid seal (see [`RegistryOptions::seal`]).
    pub fn refused_records(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The records sealed for the topic, when the registry has a seal.
    fn sealed(&self, records: Vec<Record>) -> Vec<Record> {
        match &self.seal {
            Some(seal) => records
                .into_iter()
                .map(|r| seal.seal(&self.topic, r))
                .collect(),
            None => records,
        }
    }

    /// Appends records and waits until the view has applied them; returns the offset of the last one.
    async fn append(&self, records: Vec<Record>) -> Result<u64> {
        let positions = self.bus.publish(&self.topic, self.sealed(records)).await?;
        let offset = positions
            .iter()
            .map(|p| p.offset)
            .max()
            .ok_or_else(|| Error::Internal("publish returned no positions".to_owned()))?;
        self.wait_applied(offset + 1).await?;
        Ok(offset)
    }

    /// Waits until every offset before `next` is applied to the view.
    async fn wait_applied(&self, next: u64) -> Result<()> {
        let mut rx = self.applied.clone();
        let reached = tokio::time::timeout(APPLY_TIMEOUT, rx.wait_for(|&n| n >= next))
            .await
            .map(|r| r.is_ok());
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::NotReady),
            Err(_) => Err(Error::Timeout),
        }
    }

    fn level_in(&self, view: &View, subject: &str) -> Compatibility {
        view.config(Some(subject))
            .or_else(|| view.config(None))
            .unwrap_or(self.default_compatibility)
    }

    /// Registers `schema_text` (Avro) under `subject` and returns its global id. Registering a schema that the
    /// subject already has returns its id and adds no version; a schema known under another subject keeps its
    /// id. Fails with [`Error::Incompatible`] if the subject's compatibility level forbids it.
    pub async fn register(&self, subject: &str, schema_text: &str) -> Result<i32> {
        self.ensure_ready()?;
        check_subject(subject)?;
        let parsed = avro::parse(schema_text).map_err(Error::InvalidSchema)?;
        let _writing = self.writes.lock().await;
        for attempt in 1..=MAX_ATTEMPTS {
            let (id, version) = {
                let view = self.read_view();
                if let Some(existing) = view
                    .versions(subject, false)
                    .into_iter()
                    .find(|e| e.claim.schema.identity == parsed.identity)
                {
                    return Ok(existing.claim.id);
                }
                let messages = self
                    .check_in(&view, subject, &parsed.schema, None)?
                    .messages;
                if !messages.is_empty() {
                    info!(subject = %subject, problems = messages.len(), "Schema rejected as incompatible.");
                    return Err(Error::Incompatible {
                        subject: subject.to_owned(),
                        messages,
                    });
                }
                let id = match view.id_for_identity(&parsed.identity) {
                    Some(id) => id,
                    None => view
                        .next_id()
                        .ok_or_else(|| Error::Internal("schema ids exhausted".to_owned()))?,
                };
                let version = view.next_version(subject).ok_or_else(|| {
                    Error::Internal(format!("versions of subject {subject} exhausted"))
                })?;
                (id, version)
            };
            let token = state::new_claim_token();
            let (key, record) = state::claim_record(subject, version, id, &token, &parsed.text);
            let offset = self.append(vec![record]).await?;
            if self.read_view().claim_won(offset) {
                info!(subject = %subject, id, version, "Schema registered.");
                return Ok(id);
            }
            self.lost_races.fetch_add(1, Ordering::Relaxed);
            debug!(subject = %subject, id, version, attempt, "Lost a registration race; retrying.");
            // Remove the losing claim at once, so that no later compaction can make it win.
            self.bus
                .publish(&self.topic, self.sealed(vec![state::tombstone(key)]))
                .await?;
            // A short random pause, not a growing one: a growing pause would hand every round to the other
            // process.
            let jitter = rand::random::<u64>() % 5;
            tokio::time::sleep(Duration::from_millis(jitter)).await;
        }
        warn!(subject = %subject, attempts = MAX_ATTEMPTS, "Registration kept losing races.");
        Err(Error::Contention(MAX_ATTEMPTS))
    }

    /// Finds `schema_text` among the versions of `subject` (soft-deleted ones too if `include_deleted`).
    pub fn lookup(
        &self,
        subject: &str,
        schema_text: &str,
        include_deleted: bool,
    ) -> Result<SchemaVersion> {
        self.ensure_ready()?;
        let parsed = avro::parse(schema_text).map_err(Error::InvalidSchema)?;
        let view = self.read_view();
        let versions = view.versions(subject, include_deleted);
        if versions.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        }
        versions
            .into_iter()
            .rev()
            .find(|e| e.claim.schema.identity == parsed.identity)
            .map(|e| to_version(&e))
            .ok_or(Error::SchemaNotFound)
    }

    /// The schema text that global id `id` stands for.
    pub fn schema_by_id(&self, id: i32) -> Result<String> {
        self.ensure_ready()?;
        self.read_view()
            .schema_by_id(id)
            .map(|s| s.text.clone())
            .ok_or(Error::SchemaIdNotFound(id))
    }

    /// The parsed schema with global id `id`, as the registry already holds it (no re-parsing): what the router
    /// and the delivery channels decode records with.
    pub fn avro_schema_by_id(&self, id: i32) -> Result<AvroSchema> {
        self.ensure_ready()?;
        self.read_view()
            .schema_by_id(id)
            .map(AvroSchema)
            .ok_or(Error::SchemaIdNotFound(id))
    }

    /// The `(subject, version)` pairs holding schema `id`.
    pub fn versions_of_id(&self, id: i32, include_deleted: bool) -> Result<Vec<(String, u32)>> {
        self.ensure_ready()?;
        let view = self.read_view();
        if view.schema_by_id(id).is_none() {
            return Err(Error::SchemaIdNotFound(id));
        }
        Ok(view.versions_of_id(id, include_deleted))
    }

    /// The subjects, sorted; soft-deleted ones only if `include_deleted`.
    pub fn subjects(&self, include_deleted: bool) -> Result<Vec<String>> {
        self.ensure_ready()?;
        Ok(self.read_view().subjects(include_deleted))
    }

    /// The version numbers of `subject`, ascending.
    pub fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<u32>> {
        self.ensure_ready()?;
        let versions = self.read_view().versions(subject, include_deleted);
        if versions.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions.iter().map(|e| e.version).collect())
    }

    /// One version of `subject`; `latest` is the newest version that is not soft-deleted.
    pub fn version(
        &self,
        subject: &str,
        version: VersionSpec,
        include_deleted: bool,
    ) -> Result<SchemaVersion> {
        self.ensure_ready()?;
        let view = self.read_view();
        resolve_version(&view, subject, version, include_deleted).map(|e| to_version(&e))
    }

    /// The newest version of `subject` that is not soft-deleted.
    pub fn latest(&self, subject: &str) -> Result<SchemaVersion> {
        self.version(subject, VersionSpec::Latest, false)
    }

    /// Checks `schema_text` against `subject` at its compatibility level: against one version if `version` is
    /// given, else against the latest (or, for a transitive level, every) version that is not soft-deleted.
    pub fn check_compatibility(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        schema_text: &str,
    ) -> Result<CompatibilityReport> {
        self.ensure_ready()?;
        let parsed = avro::parse(schema_text).map_err(Error::InvalidSchema)?;
        let view = self.read_view();
        self.check_in(&view, subject, &parsed.schema, version)
    }

    fn check_in(
        &self,
        view: &View,
        subject: &str,
        schema: &apache_avro::Schema,
        version: Option<VersionSpec>,
    ) -> Result<CompatibilityReport> {
        let level = self.level_in(view, subject);
        let earlier: Vec<state::VersionEntry> = match version {
            None => view.versions(subject, false),
            Some(spec) => vec![resolve_version(view, subject, spec, false)?],
        };
        let earlier: Vec<compat::Earlier<'_>> = earlier
            .iter()
            .map(|e| compat::Earlier {
                version: e.version,
                schema: &e.claim.schema.schema,
            })
            .collect();
        Ok(CompatibilityReport {
            messages: compat::check(level, schema, &earlier),
        })
    }

    /// Deletes one version. Soft by default (hidden from lists and lookups, its id stays resolvable); with
    /// `permanent`, removes a version that was soft-deleted before. Returns the version number.
    pub async fn delete_version(
        &self,
        subject: &str,
        version: VersionSpec,
        permanent: bool,
    ) -> Result<u32> {
        self.ensure_ready()?;
        let _writing = self.writes.lock().await;
        let (entry, records) = {
            let view = self.read_view();
            if view.versions(subject, true).is_empty() {
                return Err(Error::SubjectNotFound(subject.to_owned()));
            }
            let entry = resolve_version(&view, subject, version, true)?;
            let records = if permanent {
                if !entry.deleted {
                    return Err(Error::VersionNotSoftDeleted {
                        subject: subject.to_owned(),
                        version: entry.version,
                    });
                }
                permanent_delete_records(&view, std::slice::from_ref(&entry))
            } else {
                if entry.deleted {
                    return Err(Error::VersionSoftDeleted {
                        subject: subject.to_owned(),
                        version: entry.version,
                    });
                }
                vec![state::delete_marker_record(
                    subject,
                    entry.version,
                    &entry.claim.token,
                )]
            };
            (entry, records)
        };
        self.append(records).await?;
        info!(subject = %subject, version = entry.version, permanent, "Schema version deleted.");
        Ok(entry.version)
    }

    /// Deletes a subject: soft by default (every version soft-deleted; the subject can be registered again), or
    /// permanently once it was soft-deleted. Returns the versions deleted.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>> {
        self.ensure_ready()?;
        let _writing = self.writes.lock().await;
        let (versions, records) = {
            let view = self.read_view();
            let all = view.versions(subject, true);
            if all.is_empty() {
                return Err(Error::SubjectNotFound(subject.to_owned()));
            }
            if permanent {
                if all.iter().any(|e| !e.deleted) {
                    return Err(Error::SubjectNotSoftDeleted(subject.to_owned()));
                }
                let versions = all.iter().map(|e| e.version).collect::<Vec<_>>();
                (versions, permanent_delete_records(&view, &all))
            } else {
                let live: Vec<_> = all.into_iter().filter(|e| !e.deleted).collect();
                if live.is_empty() {
                    return Err(Error::SubjectSoftDeleted(subject.to_owned()));
                }
                let records = live
                    .iter()
                    .map(|e| state::delete_marker_record(subject, e.version, &e.claim.token))
                    .collect();
                (live.iter().map(|e| e.version).collect(), records)
            }
        };
        self.append(records).await?;
        info!(subject = %subject, versions = versions.len(), permanent, "Subject deleted.");
        Ok(versions)
    }

    /// The global compatibility level (the configured one, or the default given at open).
    pub fn global_compatibility(&self) -> Compatibility {
        self.read_view()
            .config(None)
            .unwrap_or(self.default_compatibility)
    }

    /// Sets the global compatibility level.
    pub async fn set_global_compatibility(&self, level: Compatibility) -> Result<()> {
        self.ensure_ready()?;
        self.append(vec![state::config_record(None, Some(level))])
            .await?;
        info!(level = %level, "Global compatibility level set.");
        Ok(())
    }

    /// Removes the configured global level (back to the default given at open); returns the level it had.
    pub async fn reset_global_compatibility(&self) -> Result<Compatibility> {
        self.ensure_ready()?;
        let before = self.global_compatibility();
        self.append(vec![state::config_record(None, None)]).await?;
        info!(level = %self.default_compatibility, "Global compatibility level reset to the default.");
        Ok(before)
    }

    /// The compatibility level set for `subject` itself, if any.
    pub fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.read_view().config(Some(subject))
    }

    /// The level that applies to `subject`: its own, else the global one.
    pub fn effective_compatibility(&self, subject: &str) -> Compatibility {
        let view = self.read_view();
        self.level_in(&view, subject)
    }

    /// Sets the compatibility level of `subject` (the subject need not exist yet).
    pub async fn set_subject_compatibility(
        &self,
        subject: &str,
        level: Compatibility,
    ) -> Result<()> {
        self.ensure_ready()?;
        check_subject(subject)?;
        self.append(vec![state::config_record(Some(subject), Some(level))])
            .await?;
        info!(subject = %subject, level = %level, "Subject compatibility level set.");
        Ok(())
    }

    /// Removes the level of `subject` (the global one applies again); returns the level it had.
    pub async fn delete_subject_compatibility(&self, subject: &str) -> Result<Compatibility> {
        self.ensure_ready()?;
        let before = self
            .subject_compatibility(subject)
            .ok_or_else(|| Error::SubjectNotFound(subject.to_owned()))?;
        self.append(vec![state::config_record(Some(subject), None)])
            .await?;
        info!(subject = %subject, "Subject compatibility level removed.");
        Ok(before)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Stops the tail task if shutdown() was not called.
        self.stop.send_replace(true);
    }
}

fn check_subject(subject: &str) -> Result<()> {
    if subject.is_empty() || subject.chars().any(char::is_control) {
        return Err(Error::InvalidRequest(format!(
            "Invalid subject {subject:?}: a subject is a non-empty name without control characters"
        )));
    }
    Ok(())
}

fn to_version(entry: &state::VersionEntry) -> SchemaVersion {
    SchemaVersion {
        subject: entry.claim.subject.clone(),
        version: entry.version,
        id: entry.claim.id,
        schema: entry.claim.schema.text.clone(),
    }
}

fn resolve_version(
    view: &View,
    subject: &str,
    version: VersionSpec,
    include_deleted: bool,
) -> Result<state::VersionEntry> {
    let visible = view.versions(subject, include_deleted);
    if visible.is_empty() {
        return Err(Error::SubjectNotFound(subject.to_owned()));
    }
    match version {
        VersionSpec::Latest => view
            .versions(subject, false)
            .pop()
            .or_else(|| visible.last().cloned())
            .ok_or_else(|| Error::SubjectNotFound(subject.to_owned())),
        VersionSpec::Number(n) => visible
            .into_iter()
            .find(|e| e.version == n)
            .ok_or(Error::VersionNotFound(n)),
    }
}

/// The records of a permanent delete: raise the id floor (so no id that data may carry is ever reused), remove
/// losing claims that linger (so none can win once the version is gone), then the markers and the claims.
fn permanent_delete_records(view: &View, entries: &[state::VersionEntry]) -> Vec<Record> {
    let mut records = vec![state::floor_record(view.highest_id())];
    records.extend(view.losing_claim_keys().into_iter().map(state::tombstone));
    for e in entries {
        records.push(state::tombstone(e.marker_key.clone()));
        records.push(state::tombstone(e.key.clone()));
    }
    records
}

/// Tails the registry topic into the view until told to stop.
async fn tail(
    consumer: Box<dyn unsilo_bus::Consumer>,
    view: Arc<RwLock<View>>,
    applied: watch::Sender<u64>,
    stop: watch::Receiver<bool>,
    topic: String,
    (seal, refused): (Option<RecordSeal>, Arc<AtomicU64>),
) {
    let followed = topic.clone();
    let apply = move |batch: Vec<unsilo_bus::ConsumedRecord>| {
        // Decode (and parse schemas) before taking the lock; a record without a valid seal is skipped.
        let decoded: Vec<_> = batch
            .iter()
            .map(|r| {
                let offset = r.position.offset;
                if let Some(Err(why)) = seal.as_ref().map(|s| s.check(&followed, &r.record)) {
                    refused.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(topic = %followed, offset, why, "Registry record refused: only the hubs of this deployment write the registry. Find who can produce to this topic.");
                    return (offset, (None, state::Decoded::Skip));
                }
                (offset, state::decode(offset, &r.record))
            })
            .collect();
        let mut view = view.write().unwrap_or_else(|p| p.into_inner());
        for (offset, (key, d)) in decoded {
            view.apply(offset, key, d);
        }
        view.next_offset()
    };
    unsilo_bus::follow::follow(consumer, apply, applied, stop, topic).await;
}

/// The fuzz entry point of the registry's schema handling (`tests/fuzz`, target `registry_schema`): schema
/// text as the registry parses it, its identity form, then compatibility with shared schemas both ways at
/// every level. Bytes in; it must not panic, hang or allocate without bound.
pub fn check_schema_text_for_fuzzing(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = avro::parse(text) else {
        return;
    };
    let _ = avro::identity_form(&parsed.schema);
    for shared in unsilo_schemas::shared_schemas().iter().take(3) {
        let earlier = [compat::Earlier {
            version: 1,
            schema: shared.avro(),
        }];
        let _ = compat::check(Compatibility::Full, &parsed.schema, &earlier);
        let _ = compat::can_read(shared.avro(), &parsed.schema);
    }
    let earlier = [compat::Earlier {
        version: 1,
        schema: &parsed.schema,
    }];
    let _ = compat::check(Compatibility::Full, &parsed.schema, &earlier);
}
