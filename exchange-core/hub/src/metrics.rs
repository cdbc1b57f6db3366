//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.
//!
//! - `unsilo_http_requests_total{method,route,status}` and `unsilo_http_request_duration_seconds{route}`, from a
//!   middleware on every route (the route is the template, e.g. `/subjects/{subject}/versions`, never a value,
//!   so label cardinality stays bounded);
//! - `unsilo_bus_published_records_total{topic}`, `unsilo_bus_published_bytes_total{topic}`,
//!   `unsilo_bus_publish_errors_total{topic}` and `unsilo_bus_publish_duration_seconds`, from [`InstrumentedBus`],
//!   a wrapper that counts whatever goes through any [`Bus`];
//! - `unsilo_ingest_records_total{connector,outcome}`: raw records each connector's sink made durable, accepted
//!   or rejected (to the dead-letter topic);
//! - `unsilo_bus_retention_removed_records_total{topic}`: what retention removed on the embedded bus;
//! - `unsilo_subscription_history_remaining_records{subscription}` and
//!   `unsilo_subscription_history_released_records_total{subscription}`: a backfill's or a resume's catch-up;
//! - `unsilo_audit_disowned_entries`: entries of this hub's audit chain found unverifiable at start;
//! - `unsilo_audit_index_entries_read_total`: audit entries the on-disk person index read since the hub started
//!   (after a restart, only those written since it last stood — never the whole log);
//! - `unsilo_refused_records{topic}`: records of the control plane and the registry refused (not sealed by a hub
//!   of this deployment, or replays);
//! - `unsilo_requests_overdue{deadline}`: requests past their answer or delivery deadline (政务数据共享条例
//!   Art. 21–22), `deadline` = `answer` or `delivery`;
//! - `unsilo_disposals_overdue`: ended grants whose agency has not confirmed destruction by its due time (Art. 27);
//! - `unsilo_disposal_sql_rows_removed_total`: rows past `retain_until` the hub removed from agencies' SQL tables;
//! - `unsilo_edge_buffer_bytes{edge}`, `unsilo_edge_buffer_alarm{edge}`, `unsilo_edge_lag_records{edge}`,
//!   `unsilo_edge_last_report_timestamp_seconds{edge}`: each edge node's buffer and lag as it last reported
//!   ([`crate::link`]);
//! - `unsilo_build_info{version,bus}`.
//!
//! An anonymous caller gets every series but those whose labels name a subscription, an agency, a topic or an edge
//! ([`Metrics::encode_public`]); an operator's credentials get them all.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry as MetricsRegistry;

use unsilo_bus::{Bus, Consumer, ConsumerOptions, Position, Record, StoreStats, TopicSpec};

/// Labels whose values name agencies, subscriptions or topics: series carrying them are for operators only.
const PRIVATE_LABELS: [&str; 4] = ["subscription=\"", "agency=\"", "topic=\"", "edge=\""];

/// Content type of the `/metrics` answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadlineLabels {
    deadline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdgeLabels {
    edge: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestLabels {
    connector: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabels {
    subscription: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    subscription: String,
    channel: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    surface: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateLabels {
    schema: String,
    gate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    bus: String,
}

/// The store a store gauge describes: only the embedded bus reports one, so a hub on Kafka shows no series
/// rather than zeros.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    bus: String,
}

/// All of the hub's metrics, and the registry they are encoded from.
pub struct Metrics {
    registry: MetricsRegistry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    published_records: Family<TopicLabels, Counter>,
    published_bytes: Family<TopicLabels, Counter>,
    publish_errors: Family<TopicLabels, Counter>,
    publish_duration: Histogram,
    ingest_records: Family<IngestLabels, Counter>,
    released_records: Family<SubscriptionLabels, Counter>,
    delivered_records: Family<DeliveryLabels, Counter>,
    refused_requests: Family<RefusalLabels, Counter>,
    held_records: Family<GateLabels, Counter>,
    retention_removed: Family<TopicLabels, Counter>,
    history_remaining: Family<SubscriptionLabels, Gauge>,
    history_released: Family<SubscriptionLabels, Counter>,
    build_info: Family<BuildLabels, Gauge>,
    store_journals: Family<StoreLabels, Gauge>,
    store_write_buffer_bytes: Family<StoreLabels, Gauge>,
    store_online_discard: Family<StoreLabels, Gauge>,
    store_log_segments: Family<StoreLabels, Gauge>,
    store_segment_bytes: Family<StoreLabels, Gauge>,
    audit_disowned: Gauge,
    audit_index_read: Counter,
    requests_overdue: Family<DeadlineLabels, Gauge>,
    disposals_overdue: Gauge,
    disposal_rows_removed: Counter,
    refused_records: Family<TopicLabels, Gauge>,
    edge_buffer_bytes: Family<EdgeLabels, Gauge>,
    edge_buffer_alarm: Family<EdgeLabels, Gauge>,
    edge_lag_records: Family<EdgeLabels, Gauge>,
    edge_last_report: Family<EdgeLabels, Gauge>,
    /// The same counts, live and per minute, for the console and the demo (see [`crate::flows`]).
    pub flows: crate::flows::Flows,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = MetricsRegistry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "unsilo_http_requests",
            "HTTP requests answered, by method, route template and status",
            http_requests.clone(),
        );
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "unsilo_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            http_duration.clone(),
        );
        let published_records = Family::<TopicLabels, Counter>::default();
        registry.register(
            "unsilo_bus_published_records",
            "Records durably published to the bus, by topic",
            published_records.clone(),
        );
        let published_bytes = Family::<TopicLabels, Counter>::default();
        registry.register(
            "unsilo_bus_published_bytes",
            "Key and value bytes durably published to the bus, by topic",
            published_bytes.clone(),
        );
        let publish_errors = Family::<TopicLabels, Counter>::default();
        registry.register(
            "unsilo_bus_publish_errors",
            "Publish calls that failed, by topic",
            publish_errors.clone(),
        );
        let publish_duration = latency_histogram();
        registry.register(
            "unsilo_bus_publish_duration_seconds",
            "Time from publish to durable acknowledgement, per publish call",
            publish_duration.clone(),
        );
        let ingest_records = Family::<IngestLabels, Counter>::default();
        registry.register(
            "unsilo_ingest_records",
            "Raw records ingested, by connector and outcome (accepted, rejected)",
            ingest_records.clone(),
        );
        let released_records = Family::<SubscriptionLabels, Counter>::default();
        registry.register(
            "unsilo_released_records",
            "Records the router released to a subscription's topic (each with an audit entry)",
            released_records.clone(),
        );
        let delivered_records = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "unsilo_delivered_records",
            "Records a delivery worker finished with, by subscription, channel and outcome: committed (delivered, or dead-lettered after every retry) and dead_lettered",
            delivered_records.clone(),
        );
        let refused_requests = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "unsilo_http_refused_requests",
            "Requests refused at the door, by surface and reason (unauthorized, rate_limited, timeout)",
            refused_requests.clone(),
        );
        let held_records = Family::<GateLabels, Counter>::default();
        registry.register(
            "unsilo_gate_held_records",
            "Records held back from subscriptions by a classification gate, by schema and gate (not_shared: 不予共享 records, never released; core_needs_four_eyes: CORE-grade records withheld from subscriptions not approved by two operators)",
            held_records.clone(),
        );
        let retention_removed = Family::<TopicLabels, Counter>::default();
        registry.register(
            "unsilo_bus_retention_removed_records",
            "Records the topic's retention policy removed from the embedded bus, by topic",
            retention_removed.clone(),
        );
        let history_remaining = Family::<SubscriptionLabels, Gauge>::default();
        registry.register(
            "unsilo_subscription_history_remaining_records",
            "Records of std.<schema> a subscription still has to catch up (a backfill, or a resume after a pause); 0 when live",
            history_remaining.clone(),
        );
        let history_released = Family::<SubscriptionLabels, Counter>::default();
        registry.register(
            "unsilo_subscription_history_released_records",
            "Records released to a subscription from history (backfill or catch-up after a pause)",
            history_released.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "unsilo_build_info",
            "Version and bus kind of this hub",
            build_info.clone(),
        );
        let store_gauge = |registry: &mut MetricsRegistry, name: &str, help: &str| {
            let gauge = Family::<StoreLabels, Gauge>::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let store_journals = store_gauge(
            &mut registry,
            "unsilo_bus_store_journals",
            "Journal files of the embedded bus's store; one that keeps growing means flushes lag behind writes, and at 90 % of the journal limit every write is stalled",
        );
        let store_write_buffer_bytes = store_gauge(
            &mut registry,
            "unsilo_bus_store_write_buffer_bytes",
            "Bytes written to the embedded bus and not yet flushed from memory",
        );
        let store_online_discard = store_gauge(
            &mut registry,
            "unsilo_bus_store_online_discard",
            "1 when the embedded bus's data directory is on a file system mounted with online discard, which holds up every fsync while deleted files are trimmed: remount without `discard` and run fstrim periodically",
        );
        let store_log_segments = store_gauge(
            &mut registry,
            "unsilo_bus_store_log_segments",
            "Segment files of the embedded bus's record log",
        );
        let store_segment_bytes = store_gauge(
            &mut registry,
            "unsilo_bus_store_segment_bytes",
            "Bytes of flushed data in the embedded bus's segment files (journals not counted)",
        );
        let audit_disowned = Gauge::default();
        registry.register(
            "unsilo_audit_disowned_entries",
            "Entries of this hub's audit chain found at start that no signature of its key covers (written by something other than the hub); the hub disowned them and `unsilo audit verify` reports them. Anything but 0 needs an investigation",
            audit_disowned.clone(),
        );
        let audit_index_read = Counter::default();
        registry.register(
            "unsilo_audit_index_entries_read",
            "Audit entries the person index read since the hub started: after a restart only those written since the index last stood, never the whole log",
            audit_index_read.clone(),
        );
        let requests_overdue = Family::<DeadlineLabels, Gauge>::default();
        registry.register(
            "unsilo_requests_overdue",
            "Requests past their answer deadline (1 or 10 working days, 政务数据共享条例 Art. 21) or their delivery deadline (20 working days after approval, Art. 22), by deadline",
            requests_overdue.clone(),
        );
        let edge_buffer_bytes = Family::<EdgeLabels, Gauge>::default();
        registry.register(
            "unsilo_edge_buffer_bytes",
            "Bytes waiting in each edge node's buffer for the hub, as the edge last reported",
            edge_buffer_bytes.clone(),
        );
        let edge_buffer_alarm = Family::<EdgeLabels, Gauge>::default();
        registry.register(
            "unsilo_edge_buffer_alarm",
            "1 while an edge node's buffer is past its alarm level (at its limit the edge stops taking input)",
            edge_buffer_alarm.clone(),
        );
        let edge_lag_records = Family::<EdgeLabels, Gauge>::default();
        registry.register(
            "unsilo_edge_lag_records",
            "Records waiting at each edge node for the hub's acknowledgement, as the edge last reported",
            edge_lag_records.clone(),
        );
        let edge_last_report = Family::<EdgeLabels, Gauge>::default();
        registry.register(
            "unsilo_edge_last_report_timestamp_seconds",
            "When each edge node last reported (Unix seconds): alert when it falls behind",
            edge_last_report.clone(),
        );
        let disposals_overdue = Gauge::default();
        registry.register(
            "unsilo_disposals_overdue",
            "Ended grants (expired, revoked, purpose fulfilled) whose agency has not confirmed destruction by its due time (政务数据共享条例 Art. 27)",
            disposals_overdue.clone(),
        );
        let disposal_rows_removed = Counter::default();
        registry.register(
            "unsilo_disposal_sql_rows_removed",
            "Rows past their retain_until the hub removed from agencies' SQL tables",
            disposal_rows_removed.clone(),
        );
        let refused_records = Family::<TopicLabels, Gauge>::default();
        registry.register(
            "unsilo_refused_records",
            "Records of the hub's own topics (control plane, registry) refused because no hub of this deployment sealed them, or because they replay an older record; anything but 0 means something else can write to the topic",
            refused_records.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            published_records,
            published_bytes,
            publish_errors,
            publish_duration,
            ingest_records,
            released_records,
            delivered_records,
            refused_requests,
            held_records,
            retention_removed,
            history_remaining,
            history_released,
            build_info,
            store_journals,
            store_write_buffer_bytes,
            store_online_discard,
            store_log_segments,
            store_segment_bytes,
            audit_disowned,
            audit_index_read,
            requests_overdue,
            disposals_overdue,
            disposal_rows_removed,
            refused_records,
            edge_buffer_bytes,
            edge_buffer_alarm,
            edge_lag_records,
            edge_last_report,
            flows: crate::flows::Flows::default(),
        }
    }

    /// Counts a request refused by the access layer.
    pub fn record_refusal(&self, surface: &str, reason: &str) {
        self.refused_requests
            .get_or_create(&RefusalLabels {
                surface: surface.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts records of `schema` held back by `gate`.
    pub fn record_held(&self, schema: &str, gate: &str, n: u64) {
        if n > 0 {
            self.held_records
                .get_or_create(&GateLabels {
                    schema: schema.to_owned(),
                    gate: gate.to_owned(),
                })
                .inc_by(n);
        }
    }

    /// Counts a batch a connector's sink made durable.
    pub fn record_ingest(&self, connector: &str, accepted: usize, rejected: usize) {
        self.flows.ingest(connector, accepted, rejected);
        for (outcome, n) in [("accepted", accepted), ("rejected", rejected)] {
            if n > 0 {
                self.ingest_records
                    .get_or_create(&IngestLabels {
                        connector: connector.to_owned(),
                        outcome: outcome.to_owned(),
                    })
                    .inc_by(n as u64);
            }
        }
    }

    /// Sets how many records a subscription still has to catch up, and counts those it just released from history.
    pub fn record_history(&self, subscription: &str, remaining: u64, released: usize) {
        let labels = SubscriptionLabels {
            subscription: subscription.to_owned(),
        };
        self.history_remaining
            .get_or_create(&labels)
            .set(i64::try_from(remaining).unwrap_or(i64::MAX));
        if released > 0 {
            self.history_released
                .get_or_create(&labels)
                .inc_by(released as u64);
        }
    }

    /// Counts records released to a subscription.
    pub fn record_release(&self, subscription: &str, n: usize) {
        self.flows.release(subscription, n);
        self.released_records
            .get_or_create(&SubscriptionLabels {
                subscription: subscription.to_owned(),
            })
            .inc_by(n as u64);
    }

    /// Counts records a delivery worker committed (`committed`: delivered, or dead-lettered after every retry) or
    /// sent to the delivery DLQ (`dead_lettered`).
    pub fn record_delivery(&self, subscription: &str, channel: &str, outcome: &str, n: usize) {
        self.flows.delivery(subscription, outcome, n);
        self.delivered_records
            .get_or_create(&DeliveryLabels {
                subscription: subscription.to_owned(),
                channel: channel.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc_by(n as u64);
    }

    /// Records which bus this hub runs on, in `unsilo_build_info`.
    pub fn set_build_info(&self, bus_kind: &str) {
        self.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                bus: bus_kind.to_owned(),
            })
            .set(1);
    }

    /// Sets the embedded bus's store gauges (read when metrics are scraped).
    pub fn set_store_stats(&self, stats: &StoreStats) {
        let labels = StoreLabels {
            bus: "embedded".to_owned(),
        };
        let set = |gauge: &Family<StoreLabels, Gauge>, value: u64| {
            gauge
                .get_or_create(&labels)
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(&self.store_journals, stats.journals);
        set(&self.store_write_buffer_bytes, stats.write_buffer_bytes);
        set(&self.store_online_discard, u64::from(stats.online_discard));
        set(&self.store_log_segments, stats.log_segments);
        set(&self.store_segment_bytes, stats.segment_bytes);
    }

    /// Encodes every metric in the OpenMetrics text format (for operators).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "Encoding metrics failed.");
        }
        out
    }

    /// Encodes the metrics an anonymous caller may see: every series but those naming a subscription, an
    /// agency or a topic (which name agencies and what they receive). Operators get [`Metrics::encode`].
    pub fn encode_public(&self) -> String {
        self.encode()
            .lines()
            .filter(|line| {
                line.starts_with('#') || !PRIVATE_LABELS.iter().any(|label| line.contains(label))
            })
            .fold(String::new(), |mut out, line| {
                out.push_str(line);
                out.push('\n');
                out
            })
    }

    /// Records how many records of one of the hub's own topics have been refused (read at each scrape).
    pub fn set_refused_records(&self, topic: &str, records: u64) {
        self.refused_records
            .get_or_create(&TopicLabels {
                topic: topic.to_owned(),
            })
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// Records an edge node's last report: buffer bytes, alarm, lag, and when (milliseconds since the epoch).
    pub fn set_edge_report(
        &self,
        edge: &str,
        buffer_bytes: u64,
        alarm: bool,
        lag: u64,
        at_ms: i64,
    ) {
        let labels = EdgeLabels {
            edge: edge.to_owned(),
        };
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.edge_buffer_bytes
            .get_or_create(&labels)
            .set(clamp(buffer_bytes));
        self.edge_buffer_alarm
            .get_or_create(&labels)
            .set(i64::from(alarm));
        self.edge_lag_records.get_or_create(&labels).set(clamp(lag));
        self.edge_last_report
            .get_or_create(&labels)
            .set(at_ms / 1000);
    }

    /// Records how many requests are past their answer and their delivery deadline.
    pub fn set_requests_overdue(&self, answer: u64, delivery: u64) {
        for (deadline, n) in [("answer", answer), ("delivery", delivery)] {
            self.requests_overdue
                .get_or_create(&DeadlineLabels {
                    deadline: deadline.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Records how many ended grants wait past their due time for the agency's confirmation of destruction.
    pub fn set_disposals_overdue(&self, n: u64) {
        self.disposals_overdue
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts rows the hub removed from an agency's SQL table once their `retain_until` passed.
    pub fn count_disposal_rows_removed(&self, rows: u64) {
        self.disposal_rows_removed.inc_by(rows);
    }

    /// The counter of audit entries the person index read (given to [`crate::audit::person::PersonIndex`]).
    pub fn audit_index_read(&self) -> Counter {
        self.audit_index_read.clone()
    }

    /// Records how many entries of this hub's audit chain were found unverifiable at start and disowned.
    pub fn set_audit_disowned(&self, entries: u64) {
        self.audit_disowned
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }
}

/// Axum middleware counting and timing every request by its route template.
pub async fn track_http(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    metrics
        .http_duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status: response.status().as_u16().to_string(),
        })
        .inc();
    response
}

/// A [`Bus`] that counts what is published through it. Consumers are passed through untouched.
#[derive(Clone)]
pub struct InstrumentedBus {
    inner: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
}

impl InstrumentedBus {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: Arc<dyn Bus>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

/// A consumer of an [`InstrumentedBus`]: what it publishes together with its offsets
/// ([`Consumer::publish_and_commit`], the router's writes) is counted like any other publish.
struct InstrumentedConsumer {
    inner: Box<dyn Consumer>,
    bus: InstrumentedBus,
}

#[async_trait]
impl Consumer for InstrumentedConsumer {
    async fn poll(
        &mut self,
        max: usize,
        timeout: std::time::Duration,
    ) -> unsilo_bus::Result<Vec<unsilo_bus::ConsumedRecord>> {
        self.inner.poll(max, timeout).await
    }

    async fn commit(&mut self, records: &[unsilo_bus::ConsumedRecord]) -> unsilo_bus::Result<()> {
        self.inner.commit(records).await
    }

    fn assignment(&self) -> Vec<(String, u32)> {
        self.inner.assignment()
    }

    async fn publish_and_commit(
        &mut self,
        _bus: &dyn Bus,
        parts: Vec<(String, Vec<Record>)>,
        records: &[unsilo_bus::ConsumedRecord],
    ) -> unsilo_bus::Result<Vec<Vec<Position>>> {
        let counts: Vec<PublishCounts> = parts
            .iter()
            .map(|(topic, records)| publish_counts(topic, records))
            .collect();
        let started = Instant::now();
        let result = self
            .inner
            .publish_and_commit(self.bus.inner.as_ref(), parts, records)
            .await;
        self.bus.count_publish(started, &counts, result.is_ok());
        result
    }
}

/// Records and bytes of one topic's part of a publish.
struct PublishCounts {
    labels: TopicLabels,
    records: u64,
    bytes: u64,
}

fn publish_counts(topic: &str, records: &[Record]) -> PublishCounts {
    PublishCounts {
        labels: TopicLabels {
            topic: topic.to_owned(),
        },
        records: records.len() as u64,
        bytes: records
            .iter()
            .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len))
            .sum::<usize>() as u64,
    }
}

impl InstrumentedBus {
    /// Counts a publish call that started at `started`: its duration, and per topic its records and bytes, or an
    /// error.
    fn count_publish(&self, started: Instant, counts: &[PublishCounts], ok: bool) {
        self.metrics
            .publish_duration
            .observe(started.elapsed().as_secs_f64());
        for c in counts {
            if ok {
                self.metrics
                    .published_records
                    .get_or_create(&c.labels)
                    .inc_by(c.records);
                self.metrics
                    .published_bytes
                    .get_or_create(&c.labels)
                    .inc_by(c.bytes);
            } else {
                self.metrics.publish_errors.get_or_create(&c.labels).inc();
            }
        }
    }
}

#[async_trait]
impl Bus for InstrumentedBus {
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
        let counts = [publish_counts(topic, &records)];
        let started = Instant::now();
        let result = self.inner.publish(topic, records).await;
        self.count_publish(started, &counts, result.is_ok());
        result
    }

    async fn publish_all(
        &self,
        batches: Vec<(String, Vec<Record>)>,
    ) -> unsilo_bus::Result<Vec<Vec<Position>>> {
        let counts: Vec<PublishCounts> = batches
            .iter()
            .map(|(topic, records)| publish_counts(topic, records))
            .collect();
        let started = Instant::now();
        let result = self.inner.publish_all(batches).await;
        self.count_publish(started, &counts, result.is_ok());
        result
    }

    async fn consumer(&self, options: ConsumerOptions) -> unsilo_bus::Result<Box<dyn Consumer>> {
        Ok(Box::new(InstrumentedConsumer {
            inner: self.inner.consumer(options).await?,
            bus: self.clone(),
        }))
    }

    async fn end_offsets(&self, topic: &str) -> unsilo_bus::Result<Vec<u64>> {
        self.inner.end_offsets(topic).await
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
        for r in &removed {
            self.metrics
                .retention_removed
                .get_or_create(&TopicLabels {
                    topic: r.topic.clone(),
                })
                .inc_by(r.records);
        }
        Ok(removed)
    }

    async fn fetch(
        &self,
        read: &unsilo_bus::FetchRequest,
    ) -> unsilo_bus::Result<Vec<unsilo_bus::ConsumedRecord>> {
        self.inner.fetch(read).await
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
