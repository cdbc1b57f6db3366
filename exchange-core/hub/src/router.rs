//! The router: reads normalised records from `std.<schema>` and releases each one to every active subscription
//! whose filter it matches, shaped by the subscription's view, onto `sub.<agency>.<subscription>`.
//!
//! One task per shared schema, each a member of consumer group `<cluster>.router.<schema>` (several hub processes
//! of one cluster on Kafka share the partitions). Per batch of records:
//!
//! 1. decode each record once (Confluent frame → writer schema from the registry → the shared schema);
//! 2. for each route of that schema — checked, before every record, against the control plane's latest state, so a
//!    revocation or expiry stops releases before the next record — evaluate the CEL filter, apply the view plan
//!    (field treatments), encode with the view schema and frame it with the view schema's id;
//! 3. have the audit log chain one entry per release ([`AuditLog::chain`]) and publish those entries and the
//!    released records to `sub.*` together: on the embedded bus one atomic write (one fsync), on Kafka the
//!    entries durable before the records are sent — evidence first: a crash in between re-releases, which the
//!    audit shows twice, rather than releasing without evidence;
//! 4. commit the offsets of what was routed, at most every 100 ms (at-least-once).
//!
//! The pure part — one record against a table of routes — is [`RoutingTable::route`], which the benchmark and the
//! leak property test drive directly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::Schema;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::audit::{AuditEvent, AuditLog};
use crate::control::{ControlPlane, ControlState};
use unsilo_bus::wire;
use unsilo_bus::{Bus, ConsumedRecord, ConsumerOptions, Record};
use unsilo_policy::check::{self, CompiledSpec};
use unsilo_policy::model::{FieldRule, Subscription};
use unsilo_policy::treat::PseudonymKey;
use unsilo_policy::view::person_keys;
use unsilo_registry::decode::FrameDecoder;
use unsilo_registry::Registry;
use unsilo_schemas::names::{HEADER_RECORD_ID, HEADER_SUBSCRIPTION};

/// Errors of the router.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The record is not a Confluent-framed Avro record of a known schema.
    #[error("undecodable record: {0}")]
    Decode(String),
    /// Applying a view or encoding its output failed (a bug or a schema mismatch; the record is skipped).
    #[error("view of subscription `{subscription}`: {message}")]
    View {
        /// The subscription.
        subscription: String,
        /// What failed.
        message: String,
    },
}

/// One active subscription as the router runs it.
#[derive(Clone, Debug)]
pub struct ActiveSubscription {
    /// The subscription id.
    pub subscription: String,
    /// The agency.
    pub agency: String,
    /// Its topic.
    pub topic: String,
    /// Compiled filter and view.
    pub compiled: CompiledSpec,
    /// The view schema's registry id.
    pub view_schema_id: i32,
    /// The fields released, as audited.
    pub fields: Vec<FieldRule>,
    /// The purpose, as audited.
    pub purpose: String,
    /// The channel kind, as audited.
    pub channel: String,
    /// Deliver nothing at or after this time (ms since the epoch).
    pub expires_at_ms: Option<i64>,
    /// Whether CORE-grade records may be released to it (two different operators approved it: 双人复核).
    pub core_allowed: bool,
}

impl ActiveSubscription {
    /// The route of an active subscription (`None` if it is not active or does not compile, which is logged).
    pub fn of(subscription: &Subscription) -> Option<ActiveSubscription> {
        let view_schema_id = subscription.view_schema_id?;
        if subscription.status != unsilo_policy::model::SubscriptionStatus::Active {
            return None;
        }
        let spec = subscription.spec();
        let compiled = match check::compile(spec, &subscription.id) {
            Ok(c) => c,
            Err(e) => {
                error!(subscription = %subscription.id, error = %e, "Active subscription does not compile; not routing it.");
                return None;
            }
        };
        Some(ActiveSubscription {
            subscription: subscription.id.clone(),
            agency: subscription.agency.clone(),
            topic: subscription.topic(),
            fields: compiled.plan.rules().to_vec(),
            compiled,
            view_schema_id,
            purpose: spec.purpose.clone(),
            channel: spec.channel.kind().to_owned(),
            expires_at_ms: spec.expires_at_ms,
            core_allowed: subscription.four_eyes_approved(),
        })
    }
}

/// Whether two rule lists are the same set (a compiled plan keeps its rules sorted by path).
fn same_rules(a: &[FieldRule], b: &[FieldRule]) -> bool {
    let sorted = |rules: &[FieldRule]| {
        let mut v: Vec<(String, unsilo_policy::model::Treatment)> = rules
            .iter()
            .map(|r| (r.field.clone(), r.treatment))
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    sorted(a) == sorted(b)
}

/// A record released to one subscription.
#[derive(Clone, Debug)]
pub struct Release {
    /// Index of the route in the table.
    pub route: usize,
    /// The framed view record (Confluent wire format with the view schema id).
    pub value: Vec<u8>,
}

/// The routes of one schema.
#[derive(Clone, Debug, Default)]
pub struct RoutingTable {
    /// The routes.
    pub subscriptions: Vec<ActiveSubscription>,
}

impl RoutingTable {
    /// The routes of `schema` among the active subscriptions in `state`.
    pub fn build(state: &ControlState, schema: &str, previous: &RoutingTable) -> RoutingTable {
        let routes = state
            .subscriptions
            .values()
            .filter(|s| s.spec().schema == schema)
            .filter_map(|s| {
                // Reuse the compiled route when the subscription did not change.
                previous
                    .subscriptions
                    .iter()
                    .find(|r| {
                        r.subscription == s.id
                            && Some(r.view_schema_id) == s.view_schema_id
                            && s.status == unsilo_policy::model::SubscriptionStatus::Active
                            && r.expires_at_ms == s.spec().expires_at_ms
                            && r.core_allowed == s.four_eyes_approved()
                            && r.compiled.filter.source() == s.spec().filter
                            && same_rules(&r.fields, &s.spec().fields)
                    })
                    .cloned()
                    .or_else(|| ActiveSubscription::of(s))
            })
            .collect();
        RoutingTable {
            subscriptions: routes,
        }
    }

    /// Routes one decoded record (of the table's shared schema) at time `now_ms`: the releases it makes, and
    /// what the classification gates held back.
    ///
    /// The gates come before any subscription's filter: a `NOT_SHARED` (不予共享) record is never released,
    /// whatever a subscription says; a `CORE`-grade record (核心数据) is released only to subscriptions two
    /// different operators approved.
    pub fn route(
        &self,
        record: &Value,
        now_ms: i64,
        key: &PseudonymKey,
        out: &mut Vec<Release>,
    ) -> Result<Gated, RouteError> {
        let mut gated = Gated::default();
        let (share, grade) = classification(record);
        if share == Some(NOT_SHARED) {
            gated.not_shared = !self.subscriptions.is_empty();
            return Ok(gated);
        }
        let core = grade == Some(CORE);
        for (i, route) in self.subscriptions.iter().enumerate() {
            if route.expires_at_ms.is_some_and(|e| now_ms >= e) {
                continue;
            }
            if core && !route.core_allowed {
                gated.core_held = gated.core_held || route.compiled.filter.matches(record);
                continue;
            }
            if !route.compiled.filter.matches(record) {
                continue;
            }
            let view = route
                .compiled
                .plan
                .apply(record, key)
                .map_err(|e| RouteError::View {
                    subscription: route.subscription.clone(),
                    message: e.to_string(),
                })?;
            let mut value = Vec::with_capacity(256);
            wire::write_header(&mut value, route.view_schema_id as u32);
            // The plan builds view values in the view schema's field order, so they encode without a schema walk.
            unsilo_schemas::avro::encode_value(&view, &mut value).map_err(|e| {
                RouteError::View {
                    subscription: route.subscription.clone(),
                    message: e.to_string(),
                }
            })?;
            out.push(Release { route: i, value });
        }
        Ok(gated)
    }
}

/// The `share_attribute` symbol of records never released (不予共享).
pub const NOT_SHARED: &str = "NOT_SHARED";
/// The `data_grade` symbol of core data (核心数据), released only under a two-operator approval.
pub const CORE: &str = "CORE";

/// What the classification gates held back of one record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gated {
    /// The record is NOT_SHARED and was released to no one.
    pub not_shared: bool,
    /// The record is CORE-grade and matched a subscription that was not approved by two operators.
    pub core_held: bool,
}

/// The envelope's `share_attribute` and `data_grade` symbols of a decoded shared record.
pub fn classification(record: &Value) -> (Option<&str>, Option<&str>) {
    let field = |fields: &'_ [(String, Value)], name: &str| -> Option<usize> {
        fields.iter().position(|(n, _)| n == name)
    };
    let Value::Record(fields) = record else {
        return (None, None);
    };
    let Some(Value::Record(envelope)) = field(fields, "envelope").map(|i| &fields[i].1) else {
        return (None, None);
    };
    let symbol = |name: &str| match field(envelope, name).map(|i| &envelope[i].1) {
        Some(Value::Enum(_, s)) => Some(s.as_str()),
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    (symbol("share_attribute"), symbol("data_grade"))
}

/// Decodes `std.` records ([`FrameDecoder`]) resolved to the shared schema the router routes.
pub struct Decoder {
    frames: FrameDecoder,
    reader: &'static Schema,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder to `reader` (a shared schema).
    pub fn new(registry: Arc<Registry>, reader: &'static Schema) -> Self {
        Self {
            frames: FrameDecoder::new(registry),
            reader,
        }
    }

    /// Decodes one framed record.
    pub fn decode(&mut self, framed: &[u8]) -> Result<Value, RouteError> {
        self.frames
            .decode(framed, Some(self.reader))
            .map(|(_, value)| value)
            .map_err(|e| RouteError::Decode(e.to_string()))
    }
}

/// What a router task needs.
#[derive(Clone)]
pub struct RouterContext {
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// The registry (writer schemas).
    pub registry: Arc<Registry>,
    /// The control plane (subscriptions).
    pub control: Arc<ControlPlane>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// The deployment's pseudonymisation key.
    pub key: Arc<PseudonymKey>,
    /// Release counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Prefix of the routers' consumer groups (`[hub] cluster`): `<prefix>.router.<schema>`.
    pub group_prefix: String,
}

/// Starts one router task per shared schema; each stops when `stop` turns true.
pub fn start(
    context: RouterContext,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    unsilo_schemas::shared_schemas()
        .iter()
        .map(|schema| tokio::spawn(run(context.clone(), schema, stop.clone())))
        .collect()
}

/// Runs the router of one shared schema until `stop` turns true.
pub async fn run(
    context: RouterContext,
    schema: &'static unsilo_schemas::SharedSchema,
    mut stop: watch::Receiver<bool>,
) {
    let topic = schema.topic();
    let group = unsilo_schemas::names::router_group(&context.group_prefix, schema.name());
    let mut consumer = loop {
        match context
            .bus
            .consumer(ConsumerOptions::group(&group, &[&topic]))
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                error!(topic = %topic, error = %e, "Router cannot consume; retrying.");
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let mut changes = context.control.changes();
    let mut table = RoutingTable::build(
        &context.control.read(),
        schema.name(),
        &RoutingTable::default(),
    );
    changes.borrow_and_update();
    let mut decoder = Decoder::new(context.registry.clone(), schema.avro());
    info!(topic = %topic, subscriptions = table.subscriptions.len(), "Router started.");
    let mut failures = 0u32;
    // The last routed record of each partition, not yet committed.
    let mut routed: BTreeMap<(String, u32), ConsumedRecord> = BTreeMap::new();
    let mut last_commit = std::time::Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        let batch = tokio::select! {
            _ = stop.changed() => break,
            b = consumer.poll(500, Duration::from_millis(200)) => b,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(unsilo_bus::Error::Closed) => break,
            Err(e) => {
                error!(topic = %topic, error = %e, "Router poll failed; retrying.");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if batch.is_empty() {
            commit_routed(&mut *consumer, &mut routed, &topic).await;
            if changes.has_changed().unwrap_or(false) {
                changes.borrow_and_update();
                table = RoutingTable::build(&context.control.read(), schema.name(), &table);
                debug!(topic = %topic, routes = table.subscriptions.len(), "Routes updated.");
            }
            continue;
        }
        match route_batch(
            &context,
            schema,
            &mut table,
            &mut changes,
            &mut decoder,
            &batch,
        )
        .await
        {
            Ok(()) => {
                failures = 0;
                // Offsets are committed at most every COMMIT_INTERVAL, off the path of the next record: a crash
                // re-routes at most that much (at-least-once), and latency does not pay an fsync per batch.
                remember_routed(&mut routed, &batch);
                if last_commit.elapsed() >= COMMIT_INTERVAL {
                    commit_routed(&mut *consumer, &mut routed, &topic).await;
                    last_commit = std::time::Instant::now();
                }
            }
            Err(e) => {
                // Nothing committed: the batch is routed again after a fresh consumer rejoins.
                failures = failures.saturating_add(1);
                error!(topic = %topic, error = %e, failures, "Routing a batch failed; retrying it.");
                let backoff = Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)));
                tokio::time::sleep(backoff).await;
                commit_routed(&mut *consumer, &mut routed, &topic).await;
                drop(consumer);
                consumer = match context
                    .bus
                    .consumer(ConsumerOptions::group(&group, &[&topic]))
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        error!(topic = %topic, error = %e, "Router cannot consume; stopping.");
                        return;
                    }
                };
            }
        }
    }
    commit_routed(&mut *consumer, &mut routed, &topic).await;
    info!(topic = %topic, "Router stopped.");
}

/// How often a router commits the offsets of what it has routed.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// Notes the last record of each partition in `batch` as routed.
fn remember_routed(routed: &mut BTreeMap<(String, u32), ConsumedRecord>, batch: &[ConsumedRecord]) {
    for r in batch {
        routed.insert((r.position.topic.clone(), r.position.partition), r.clone());
    }
}

/// Commits what has been routed (a failed commit only means those records may be routed again).
async fn commit_routed(
    consumer: &mut dyn unsilo_bus::Consumer,
    routed: &mut BTreeMap<(String, u32), ConsumedRecord>,
    topic: &str,
) {
    if routed.is_empty() {
        return;
    }
    let last: Vec<ConsumedRecord> = std::mem::take(routed).into_values().collect();
    if let Err(e) = consumer.commit(&last).await {
        warn!(topic = %topic, error = %e, "Router commit failed; the records may be routed again.");
    }
}

/// Routes one batch: releases, audit, publish. Errors mean nothing was committed.
async fn route_batch(
    context: &RouterContext,
    schema: &'static unsilo_schemas::SharedSchema,
    table: &mut RoutingTable,
    changes: &mut watch::Receiver<u64>,
    decoder: &mut Decoder,
    batch: &[ConsumedRecord],
) -> Result<(), unsilo_bus::Error> {
    // (subscription, topic, record, evidence) of each release, in order.
    let mut released: Vec<(String, String, Record, AuditEvent)> = Vec::new();
    let mut releases = Vec::new();
    for consumed in batch {
        // Revocations and expiries take effect before the next record.
        if changes.has_changed().unwrap_or(false) {
            changes.borrow_and_update();
            *table = RoutingTable::build(&context.control.read(), schema.name(), table);
        }
        if table.subscriptions.is_empty() {
            continue;
        }
        let Some(framed) = consumed.record.value.as_deref() else {
            continue;
        };
        let record = match decoder.decode(framed) {
            Ok(r) => r,
            Err(e) => {
                warn!(topic = %consumed.position.topic, offset = consumed.position.offset, error = %e, "Record not routable; skipped.");
                continue;
            }
        };
        releases.clear();
        match table.route(&record, unsilo_bus::now_ms(), &context.key, &mut releases) {
            Ok(gated) => {
                context.metrics.record_held(
                    schema.name(),
                    "not_shared",
                    u64::from(gated.not_shared),
                );
                context.metrics.record_held(
                    schema.name(),
                    "core_needs_four_eyes",
                    u64::from(gated.core_held),
                );
            }
            Err(e) => {
                error!(offset = consumed.position.offset, error = %e, "Record not routed.");
                continue;
            }
        }
        if releases.is_empty() {
            continue;
        }
        let record_id = consumed.record.record_id();
        let persons = person_keys(schema, &record, &context.key);
        for release in releases.drain(..) {
            let route = &table.subscriptions[release.route];
            let event = AuditEvent::Release {
                record_id: record_id.clone(),
                schema: schema.name().to_owned(),
                subscription: route.subscription.clone(),
                agency: route.agency.clone(),
                fields: route.fields.clone(),
                purpose: route.purpose.clone(),
                view_schema_id: route.view_schema_id,
                channel: route.channel.clone(),
                person_keys: persons.clone(),
            };
            let mut out = Record::new(record_id.as_bytes(), release.value)
                .with_header(HEADER_RECORD_ID, record_id.as_bytes().to_vec())
                .with_header(HEADER_SUBSCRIPTION, route.subscription.as_bytes().to_vec());
            out.timestamp_ms = consumed.record.timestamp_ms;
            released.push((route.subscription.clone(), route.topic.clone(), out, event));
        }
    }
    // A subscription revoked while the batch was being routed releases nothing from it.
    if changes.has_changed().unwrap_or(false) {
        changes.borrow_and_update();
        *table = RoutingTable::build(&context.control.read(), schema.name(), table);
        released.retain(|(subscription, ..)| {
            table
                .subscriptions
                .iter()
                .any(|r| &r.subscription == subscription)
        });
    }
    let mut per_topic: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    let mut per_subscription: BTreeMap<String, usize> = BTreeMap::new();
    let mut evidence = Vec::with_capacity(released.len());
    for (subscription, topic, record, event) in released {
        per_topic.entry(topic).or_default().push(record);
        *per_subscription.entry(subscription).or_default() += 1;
        evidence.push(event);
    }
    if evidence.is_empty() {
        return Ok(());
    }
    // Evidence first: the audit log chains the entries; the router writes them and the released records in one
    // atomic write on the embedded bus (on Kafka the entries are durable before the records are sent).
    let mut chained = context
        .audit
        .chain(evidence)
        .await
        .map_err(|e| unsilo_bus::Error::Store(e.to_string()))?;
    let mut parts = Vec::with_capacity(1 + per_topic.len());
    parts.push(chained.take_entries());
    parts.extend(per_topic);
    context.bus.publish_all(parts).await?;
    chained.written();
    for (subscription, n) in per_subscription {
        context.metrics.record_release(&subscription, n);
    }
    Ok(())
}
