//! The router: reads normalised records from `std.<schema>` and releases each one to every active subscription
//! whose filter it matches, shaped by the subscription's view, onto `sub.<agency>.<subscription>`.
//!
//! One task per shared schema ([`task`]), each a member of consumer group `<cluster>.router.<schema>` (several hub
//! processes of one cluster on Kafka share the partitions). Per batch of records:
//!
//! 1. decode each record once (Confluent frame → writer schema from the registry → the shared schema);
//! 2. for each route of that schema — checked, before every record, against the control plane's latest state, so a
//!    pause, revocation or expiry stops releases before the next record — evaluate the CEL filter, apply the view
//!    plan (field treatments), encode with the view schema and frame it with the view schema's id;
//! 3. have the audit log chain one entry per release ([`AuditLog::chain`]) and write those entries, the released
//!    records, the changed [`standing`]s and the router's offsets together: on the embedded bus one atomic write
//!    (one fsync), so a crash neither loses nor repeats a release; on Kafka each part durable before the next —
//!    evidence first — and the offsets committed last (at-least-once).
//!
//! A subscription granted history (`backfill_from`), or resumed after a pause, stands *behind* the live loop on
//! each partition; the same task releases its history from `std.<schema>` through the same route, marked as
//! history in the audit log, until it reaches the live position and joins the live loop: no gap, nothing twice.
//!
//! - this file: the routes ([`RoutingTable`], [`ActiveSubscription`]), the classification gates and the decoder;
//! - [`task`]: the per-schema loop, live and history;
//! - [`standing`]: where each subscription stands, per partition, kept on `_unsilo.router-progress`;
//! - `index`: the routes by their filters' guards (region prefix, value sets), so a record is evaluated only
//!   against the subscriptions it can match.
//!
//! The pure part — one record against a table of routes — is [`RoutingTable::route`], which the benchmark and the
//! leak property test drive directly.

mod index;
mod recovery;
pub mod standing;
mod task;

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{ReleaseTerms, SharedTerms};
use apache_avro::types::Value;
use apache_avro::Schema;
use tokio::sync::watch;
use tracing::error;

use crate::audit::AuditLog;
use crate::control::{ControlPlane, ControlState};
use unsilo_bus::wire;
use unsilo_bus::Bus;
use unsilo_policy::check::{self, CompiledSpec};
use unsilo_policy::model::{FieldRule, Subscription};
use unsilo_policy::treat::PseudonymKey;
use unsilo_registry::decode::FrameDecoder;
use unsilo_registry::Registry;

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
    /// How many days the agency may keep what it receives, as granted (sent with every record).
    pub retain_days: Option<u32>,
    /// The granted history: records of `std.<schema>` stamped from this time on are released first.
    pub backfill_from_ms: Option<i64>,
    /// When it was approved: a backfill's records stamped before this are history.
    pub approved_at_ms: Option<i64>,
    /// What its releases are recorded under in the audit log (see [`crate::audit::batch`]).
    pub terms: Arc<SharedTerms>,
}

impl ActiveSubscription {
    /// The earliest record time the grant covers: its history's start, or else its approval — records stamped
    /// before it are never released to it, however far behind the router runs.
    pub fn not_before_ms(&self) -> Option<i64> {
        self.backfill_from_ms.or(self.approved_at_ms)
    }

    /// Whether it may receive a record stamped at `stamped`: not before what its grant covers.
    pub fn covers(&self, stamped: i64) -> bool {
        self.not_before_ms().is_none_or(|from| stamped >= from)
    }

    /// Whether a record stamped at `stamped`, released to it now, is history: a record of its granted backfill
    /// (stamped before its approval), or one it receives late, catching up after a pause (`caught_up_late`) —
    /// whichever loop, live or history, releases it.
    pub fn is_history(&self, stamped: i64, caught_up_late: bool) -> bool {
        caught_up_late
            || (self.backfill_from_ms.is_some()
                && self
                    .approved_at_ms
                    .is_some_and(|approved| stamped < approved))
    }

    /// The route of an active subscription (`None` if it is not active, does not compile, which is logged, or
    /// its data is held at a linked hub, whose records arrive over the link and are never routed here).
    pub fn of(subscription: &Subscription) -> Option<ActiveSubscription> {
        if subscription.held_at.is_some() {
            return None;
        }
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
        let fields = compiled.plan.rules().to_vec();
        let channel = spec.channel.kind().to_owned();
        let terms = SharedTerms::new(ReleaseTerms {
            schema: compiled.shared.name().to_owned(),
            subscription: subscription.id.clone(),
            agency: subscription.agency.clone(),
            fields: fields.clone(),
            purpose: spec.purpose.clone(),
            view_schema_id,
            channel: channel.clone(),
            retain_days: spec.retain_days,
        });
        Some(ActiveSubscription {
            subscription: subscription.id.clone(),
            agency: subscription.agency.clone(),
            topic: subscription.topic(),
            fields,
            compiled,
            view_schema_id,
            purpose: spec.purpose.clone(),
            channel,
            expires_at_ms: spec.expires_at_ms,
            core_allowed: subscription.four_eyes_approved(),
            retain_days: spec.retain_days,
            backfill_from_ms: spec.backfill_from_ms,
            // The grant's own approval — not the last decision, which a pause or a resume moves.
            approved_at_ms: subscription.approvals.iter().map(|a| a.at_ms).max(),
            terms,
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
    /// The routes by their filters' guards, built on first use (so build the table, then route).
    index: std::sync::OnceLock<index::RouteIndex>,
    /// Per route, the group of routes that release the same view (the same fields with the same treatments),
    /// when more than one does: a record matched by several of them has its view encoded once.
    view_groups: Vec<Option<usize>>,
}

thread_local! {
    /// The candidate routes of the record being routed, reused from record to record.
    static CANDIDATES: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl RoutingTable {
    /// The routes of `schema` among the active subscriptions in `state`.
    pub fn build(state: &ControlState, schema: &str, previous: &RoutingTable) -> RoutingTable {
        let earlier: std::collections::HashMap<&str, &ActiveSubscription> = previous
            .subscriptions
            .iter()
            .map(|r| (r.subscription.as_str(), r))
            .collect();
        let routes = state
            .subscriptions
            .values()
            .filter(|s| s.spec().schema == schema)
            .filter_map(|s| {
                // Reuse the compiled route when the subscription did not change.
                earlier
                    .get(s.id.as_str())
                    .filter(|r| {
                        Some(r.view_schema_id) == s.view_schema_id
                            && s.status == unsilo_policy::model::SubscriptionStatus::Active
                            && r.expires_at_ms == s.spec().expires_at_ms
                            && r.core_allowed == s.four_eyes_approved()
                            && r.compiled.filter.source() == s.spec().filter
                            && same_rules(&r.fields, &s.spec().fields)
                            && r.purpose == s.spec().purpose
                            && r.channel == s.spec().channel.kind()
                            && r.retain_days == s.spec().retain_days
                    })
                    .map(|r| (*r).clone())
                    .or_else(|| ActiveSubscription::of(s))
            })
            .collect();
        RoutingTable::of(routes)
    }

    /// A table of these routes.
    pub fn of(subscriptions: Vec<ActiveSubscription>) -> RoutingTable {
        // A compiled plan keeps its rules sorted by path: equal rule lists are equal views.
        let mut groups: std::collections::HashMap<&[FieldRule], (usize, usize)> =
            std::collections::HashMap::new();
        for r in &subscriptions {
            let next = groups.len();
            groups.entry(r.fields.as_slice()).or_insert((next, 0)).1 += 1;
        }
        let view_groups = subscriptions
            .iter()
            .map(|r| {
                groups
                    .get(r.fields.as_slice())
                    .and_then(|&(group, members)| (members > 1).then_some(group))
            })
            .collect();
        RoutingTable {
            subscriptions,
            index: std::sync::OnceLock::new(),
            view_groups,
        }
    }

    /// How many routes a record is evaluated against, at most: the candidates the index gives it.
    pub fn candidates(&self, record: &Value) -> usize {
        let mut out = Vec::new();
        self.index().candidates(record, &mut out);
        out.len()
    }

    fn index(&self) -> &index::RouteIndex {
        self.index
            .get_or_init(|| index::RouteIndex::build(&self.subscriptions))
    }

    /// Routes one decoded record (of the table's shared schema) at time `now_ms`: the releases it makes, and
    /// what the classification gates held back.
    ///
    /// The gates come before any subscription's filter: a `NOT_SHARED` (不予共享) record is never released,
    /// whatever a subscription says; a `CORE`-grade record (核心数据) is released only to subscriptions two
    /// different operators approved. They fail closed: a grade outside [`unsilo_schemas::classification::GRADES_BELOW_CORE`] — `UNKNOWN`,
    /// missing, a symbol this hub does not know — is gated as `CORE`. (A sharing class other than
    /// `UNCONDITIONAL` is conditional: only grants an operator approved release it, never an automatic one,
    /// whose filter asks for `share_attribute == "UNCONDITIONAL"`.)
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
        let core = !unsilo_schemas::classification::is_below_core(grade);
        let index = self.index();
        CANDIDATES.with_borrow_mut(|candidates| {
            index.candidates(record, candidates);
            self.route_candidates(record, candidates, now_ms, key, core, out, &mut gated)
        })?;
        Ok(gated)
    }

    /// Evaluates the candidate routes of one record, in route order.
    #[allow(clippy::too_many_arguments)]
    fn route_candidates(
        &self,
        record: &Value,
        candidates: &[usize],
        now_ms: i64,
        key: &PseudonymKey,
        core: bool,
        out: &mut Vec<Release>,
        gated: &mut Gated,
    ) -> Result<(), RouteError> {
        // The views encoded for this record, by view group: routes releasing the same view share one encoding.
        let mut encoded: Vec<(usize, Vec<u8>)> = Vec::new();
        for &i in candidates {
            let route = &self.subscriptions[i];
            if route.expires_at_ms.is_some_and(|e| now_ms >= e) {
                continue;
            }
            let matched = match route.compiled.filter.evaluate(record) {
                Ok(m) => m,
                Err(e) if e.kind() == unsilo_policy::filter::EvalErrorKind::Budget => {
                    // Default deny for this record; the router pauses the subscription with the reason.
                    gated.over_budget.get_or_insert(i);
                    false
                }
                Err(_) => false,
            };
            if core && !route.core_allowed {
                gated.core_held = gated.core_held || matched;
                continue;
            }
            if !matched {
                continue;
            }
            let mut value = Vec::with_capacity(256);
            wire::write_header(&mut value, route.view_schema_id as u32);
            let group = self.view_groups.get(i).copied().flatten();
            match group.and_then(|g| encoded.iter().find(|(h, _)| *h == g)) {
                Some((_, datum)) => value.extend_from_slice(datum),
                None => {
                    let start = value.len();
                    // The view is encoded straight from the decoded record, in the view schema's field order.
                    route
                        .compiled
                        .plan
                        .encode(record, key, &mut value)
                        .map_err(|e| RouteError::View {
                            subscription: route.subscription.clone(),
                            message: e.to_string(),
                        })?;
                    if let Some(g) = group {
                        encoded.push((g, value[start..].to_vec()));
                    }
                }
            }
            out.push(Release { route: i, value });
        }
        Ok(())
    }
}

pub use unsilo_schemas::classification::{CORE, NOT_SHARED};

/// What the classification gates held back of one record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gated {
    /// The record is NOT_SHARED and was released to no one.
    pub not_shared: bool,
    /// The record is CORE-grade and matched a subscription that was not approved by two operators.
    pub core_held: bool,
    /// A route (its index) whose filter cost more than one record may: it is paused with the reason.
    pub over_budget: Option<usize>,
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
            .decode_to(framed, self.reader)
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
    let router = loop {
        match task::SchemaRouter::open(context.clone(), schema).await {
            Ok(r) => break r,
            Err(e) => {
                error!(schema = schema.name(), error = %e, "Router cannot read its position; retrying.");
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    router.run(stop).await;
}
