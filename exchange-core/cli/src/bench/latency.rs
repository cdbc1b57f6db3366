//! Latency and memory under a steady load: a whole hub on the embedded bus (fsync on) with 100 active
//! subscriptions, Confluent-framed `grid_event` records published to `std.grid_event` at a steady rate in 1 ms
//! ticks.
//!
//! Each record is timed at three points, so the tail can be placed on a hop:
//!
//! 1. **ingest write** — the publish call until it returns, durable;
//! 2. **router read** — durable until a reader of `std.grid_event` (a consumer like the router's) has it;
//! 3. **release** — readable on `std.` until a reader of the measured subscription's `sub.` topic (what every
//!    delivery channel reads) has it: the router's read, routing and its one atomic write of releases, evidence
//!    and offsets.
//!
//! For the slowest 1 % of records it also reports the median of each hop, so the tail is placed on a hop rather
//! than inferred from per-hop p99s that different records make up.
//!
//! Peak resident memory of the process (hub and load generator) is read from `/proc/self/status` (`VmHWM`),
//! reset just before the hub starts where the kernel allows it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use unsilo_bus::{wire, ConsumerOptions, Record};
use unsilo_hub::auth::Principal;
use unsilo_hub::governance::{ApproveRequest, NewAgency, SubscriptionRequest};
use unsilo_hub::server::Hub;
use unsilo_schemas::names::HEADER_RECORD_ID;

use super::routing::{county, spec};
use super::BenchError;

/// Counties the load spreads over; the other subscriptions each take one county and one event type.
const COUNTIES: usize = 33;

/// Event types of the load; the first three are subscribed to.
const KINDS: [&str; 4] = ["0302", "0101", "0201", "0401"];

/// p50, p99 and maximum of one hop, in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quantiles {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Quantiles {
    /// The quantiles of `ms`.
    pub(super) fn of(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            ms.get(((ms.len() as f64 * q) as usize).min(ms.len().saturating_sub(1)))
                .copied()
                .unwrap_or(f64::NAN)
        };
        Self {
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            max_ms: ms.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// The latency measurement.
#[derive(Clone, Debug)]
pub struct Latency {
    /// Records per second offered.
    pub rate: u32,
    /// Active subscriptions.
    pub subscriptions: usize,
    /// Records measured end to end.
    pub records: usize,
    /// Releases per record, on average, over all subscriptions.
    pub releases_per_record: f64,
    /// Publish call → readable on the subscription's topic.
    pub end_to_end: Quantiles,
    /// Publish call → publish returned (durable on `std.`).
    pub ingest_write: Quantiles,
    /// Durable on `std.` → a reader of `std.` has it.
    pub router_read: Quantiles,
    /// A reader of `std.` has it → a reader of the subscription's topic has it.
    pub release: Quantiles,
    /// Where the slowest records spent their time: the median of each hop (ingest write, router read, release),
    /// in milliseconds, over the records whose end-to-end time is at or above its p99.
    pub tail_hops_ms: [f64; 3],
    /// Records in that slowest 1 %.
    pub tail_records: usize,
    /// Peak resident memory during the run, MiB (`None` where `/proc` cannot tell).
    pub peak_rss_mib: Option<f64>,
    /// Resident memory before the hub started, MiB: the load generator's own share.
    pub rss_before_mib: Option<f64>,
}

/// A line of `/proc/self/status` in MiB (`VmHWM`, `VmRSS`).
pub(super) fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Requests subscription `name` of agency `bench` with `spec` and has two operators approve it.
pub(super) async fn active_subscription(
    hub: &Hub,
    name: &str,
    spec: unsilo_policy::model::SubscriptionSpec,
) -> Result<unsilo_policy::model::Subscription, BenchError> {
    let setup = |e: unsilo_hub::api_error::ApiError| BenchError::Avro(e.to_string());
    let request = SubscriptionRequest {
        agency: None,
        name: name.into(),
        spec,
    };
    hub.governance
        .request(&Principal::Agency("bench".into()), request)
        .await
        .map_err(setup)?;
    let id = unsilo_policy::model::Subscription::id_of("bench", name);
    crate::approve_with_review(
        hub,
        &Principal::Operator {
            name: "bench".into(),
            role: unsilo_hub::auth::Role::Security,
        },
        &Principal::Operator {
            name: "bench-reviewer".into(),
            role: unsilo_hub::auth::Role::Security,
        },
        &id,
        ApproveRequest::default(),
    )
    .await
    .map_err(setup)
}

/// Framed `grid_event` bodies spread over [`COUNTIES`] counties and [`KINDS`].
pub(super) fn bodies(schema_id: u32, n: usize) -> Result<Vec<Vec<u8>>, BenchError> {
    let shared = unsilo_schemas::shared_schema("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event schema".into()))?;
    let example = unsilo_schemas::example_record("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event example".into()))?;
    (0..n)
        .map(|i| {
            let mut json = example.clone();
            json["envelope"]["region_code"] =
                serde_json::json!(format!("{}001002", county(i % COUNTIES)));
            json["event_type_code"] = serde_json::json!(KINDS[i % KINDS.len()]);
            let value = unsilo_schemas::json_to_avro(&json, shared.avro())
                .map_err(|e| BenchError::Avro(e.to_string()))?;
            apache_avro::to_avro_datum(shared.avro(), value)
                .map(|b| wire::encode(schema_id, &b))
                .map_err(|e| BenchError::Avro(e.to_string()))
        })
        .collect()
}

/// When each record id was seen; shared between a reader and the report.
pub(super) type Seen = HashMap<String, Instant>;

/// Reads `topic` as group `group` until it has seen `total` records whose id starts with `prefix` (a target
/// another task may still raise or lower) or the deadline passes; notes when each such record id arrived.
/// Commits as a delivery worker does.
pub(super) fn spawn_reader(
    hub: &Hub,
    group: &str,
    topic: String,
    prefix: &'static str,
    total: Arc<AtomicUsize>,
    deadline: Instant,
) -> tokio::task::JoinHandle<Result<Seen, BenchError>> {
    let bus = hub.bus.clone();
    let group = group.to_owned();
    tokio::spawn(async move {
        let mut consumer = bus
            .consumer(ConsumerOptions::group(&group, &[&topic]))
            .await?;
        let mut seen = Seen::new();
        while seen.len() < total.load(Ordering::Relaxed) && Instant::now() < deadline {
            let batch = consumer.poll(1000, Duration::from_millis(100)).await?;
            let now = Instant::now();
            for r in &batch {
                if let Some(id) = r.record.header(HEADER_RECORD_ID) {
                    if id.starts_with(prefix.as_bytes()) {
                        seen.insert(String::from_utf8_lossy(id).into_owned(), now);
                    }
                }
            }
            consumer.commit(&batch).await?;
        }
        Ok(seen)
    })
}

/// What [`write_steadily`] sent: when each record was handed to the bus, and when its write returned.
pub(super) struct Sent {
    /// When each record id was handed to the bus.
    pub sent: Seen,
    /// When its write returned, durable.
    pub written: Seen,
}

/// Publishes `bodies` (round-robin) to `topic` at `rate` records/s in 1 ms ticks, ids `<prefix><n>`, each tick's
/// publish in flight on its own, until `total` records are sent or `stop` turns true.
pub(super) async fn write_steadily(
    hub: &Hub,
    topic: &str,
    bodies: &[Vec<u8>],
    rate: u32,
    prefix: &str,
    total: usize,
    stop: &AtomicBool,
) -> Result<Sent, BenchError> {
    let per_tick = (rate as usize / 1000).max(1);
    let sent: Arc<Mutex<Seen>> = Arc::default();
    let written: Arc<Mutex<Seen>> = Arc::default();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut publishes = Vec::new();
    let mut n = 0usize;
    while n < total && !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let now = Instant::now();
        let mut batch = Vec::with_capacity(per_tick);
        let mut ids = Vec::with_capacity(per_tick);
        for _ in 0..per_tick.min(total - n) {
            let id = format!("{prefix}{n}");
            batch.push(
                Record::new(id.as_bytes(), bodies[n % bodies.len()].clone())
                    .with_header(HEADER_RECORD_ID, id.as_bytes().to_vec()),
            );
            ids.push(id);
            n += 1;
        }
        {
            let mut sent = sent.lock().map_err(|_| BenchError::Avro("lock".into()))?;
            sent.extend(ids.iter().map(|id| (id.clone(), now)));
        }
        let bus = hub.bus.clone();
        let topic = topic.to_owned();
        let written = written.clone();
        publishes.push(tokio::spawn(async move {
            bus.publish(&topic, batch).await?;
            let done = Instant::now();
            if let Ok(mut w) = written.lock() {
                w.extend(ids.into_iter().map(|id| (id, done)));
            }
            Ok::<(), unsilo_bus::Error>(())
        }));
    }
    for p in publishes {
        p.await.map_err(|e| BenchError::Avro(e.to_string()))??;
    }
    let take = |m: Arc<Mutex<Seen>>| {
        m.lock()
            .map(|mut g| std::mem::take(&mut *g))
            .map_err(|_| BenchError::Avro("lock".into()))
    };
    Ok(Sent {
        sent: take(sent)?,
        written: take(written)?,
    })
}

/// A hub on the embedded bus in `dir` with the agency `bench` (cleared for S4) on its control plane.
pub(super) async fn hub_with_agency(dir: &std::path::Path) -> Result<Hub, BenchError> {
    let mut config = unsilo_hub::config::Config::default();
    config.bus.embedded.data_dir = dir.to_owned();
    let hub = Hub::start(&config)
        .await
        .map_err(|e| BenchError::Avro(e.to_string()))?;
    hub.governance
        .create_agency(
            &Principal::Operator {
                name: "bench".into(),
                role: unsilo_hub::auth::Role::Security,
            },
            NewAgency {
                id: "bench".into(),
                name: "基准测试".into(),
                uscc: "11610921016050037T".into(),
                clearance: "S4".into(),
                client_cert_sha256: None,
                token_expires_at_ms: None,
            },
        )
        .await
        .map_err(|e| BenchError::Avro(e.to_string()))?;
    Ok(hub)
}

/// Latency at `rate` records/s for `seconds` seconds with `subscriptions` active subscriptions (one on every
/// record, which is measured; the others each on one county and one event type).
pub async fn latency(
    scratch: &super::Scratch,
    rate: u32,
    seconds: u32,
    subscriptions: usize,
) -> Result<Latency, BenchError> {
    // Peak memory counts from here: clearing `VmHWM` is allowed for a process's own memory on Linux.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before_mib = proc_status_mib("VmRSS:");
    let dir = scratch.dir()?;
    let hub = hub_with_agency(dir.path()).await?;
    let measured = active_subscription(
        &hub,
        "latency",
        spec("region_code.startsWith(\"61\")".into(), 1),
    )
    .await?;
    for i in 1..subscriptions {
        let filter = format!(
            "region_code.startsWith(\"{}\") && event_type_code == \"{}\"",
            county(i % COUNTIES),
            KINDS[(i / COUNTIES) % 3]
        );
        active_subscription(&hub, &format!("county{i}"), spec(filter, i)).await?;
    }

    let shared = unsilo_schemas::shared_schema("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event schema".into()))?;
    let schema_id = hub
        .registry
        .lookup(&shared.subject(), &shared.schema_string(), false)
        .map_err(|e| BenchError::Avro(e.to_string()))?
        .id;
    let total = (rate * seconds) as usize;
    let bodies = bodies(schema_id as u32, COUNTIES * KINDS.len())?;
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds) + 60);
    let target = Arc::new(AtomicUsize::new(total));
    let on_std = spawn_reader(
        &hub,
        "bench.latency.std",
        shared.topic(),
        "lat-",
        target.clone(),
        deadline,
    );
    let on_sub = spawn_reader(
        &hub,
        "bench.latency.sub",
        measured.topic(),
        "lat-",
        target,
        deadline,
    );
    let released_before = released_total(&hub);
    let Sent { sent, written } = write_steadily(
        &hub,
        &shared.topic(),
        &bodies,
        rate,
        "lat-",
        total,
        &AtomicBool::new(false),
    )
    .await?;
    let on_std = on_std
        .await
        .map_err(|e| BenchError::Avro(e.to_string()))??;
    let on_sub = on_sub
        .await
        .map_err(|e| BenchError::Avro(e.to_string()))??;
    let peak_rss_mib = proc_status_mib("VmHWM:");
    let releases = released_total(&hub) - released_before;
    hub.shutdown().await?;

    let end_to_end = Quantiles::of(between(&sent, &on_sub));
    let (tail_hops_ms, tail_records) =
        tail_composition(&sent, &written, &on_std, &on_sub, end_to_end.p99_ms);
    Ok(Latency {
        rate,
        subscriptions,
        records: on_sub.len(),
        releases_per_record: releases as f64 / total.max(1) as f64,
        end_to_end,
        ingest_write: Quantiles::of(between(&sent, &written)),
        router_read: Quantiles::of(between(&written, &on_std)),
        release: Quantiles::of(between(&on_std, &on_sub)),
        tail_hops_ms,
        tail_records,
        peak_rss_mib,
        rss_before_mib,
    })
}

/// Milliseconds from `from` to `to`, never negative.
fn ms_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1e3
}

/// Milliseconds between two sightings of every record seen in both.
pub(super) fn between(from: &Seen, to: &Seen) -> Vec<f64> {
    to.iter()
        .filter_map(|(id, at)| from.get(id).map(|s| ms_between(*s, *at)))
        .collect()
}

/// The median of each hop over the records whose end-to-end time is at least `threshold_ms`, and how many there
/// were: the per-hop p99s alone cannot say which hop the slowest records lost their time in.
fn tail_composition(
    sent: &Seen,
    written: &Seen,
    on_std: &Seen,
    on_sub: &Seen,
    threshold_ms: f64,
) -> ([f64; 3], usize) {
    let mut hops: [Vec<f64>; 3] = Default::default();
    for (id, &seen) in on_sub {
        let (Some(&s), Some(&w), Some(&r)) = (sent.get(id), written.get(id), on_std.get(id)) else {
            continue;
        };
        if ms_between(s, seen) < threshold_ms {
            continue;
        }
        hops[0].push(ms_between(s, w));
        hops[1].push(ms_between(w, r));
        hops[2].push(ms_between(r, seen));
    }
    let count = hops[0].len();
    (hops.map(|h| Quantiles::of(h).p50_ms), count)
}

/// Records released to every subscription so far, from the hub's live figures.
pub(super) fn released_total(hub: &Hub) -> u64 {
    hub.metrics
        .flows
        .snapshot()
        .subscriptions
        .values()
        .map(|s| s.released)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_split_by_hop_over_the_slowest_records_only() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let (mut sent, mut written, mut on_std, mut on_sub) =
            (Seen::new(), Seen::new(), Seen::new(), Seen::new());
        // Fast records: 1 + 1 + 1 ms.
        for i in 0..98 {
            let id = format!("fast-{i}");
            sent.insert(id.clone(), at(0));
            written.insert(id.clone(), at(1));
            on_std.insert(id.clone(), at(2));
            on_sub.insert(id, at(3));
        }
        // Two slow ones, slow in the release hop: 2 + 1 + 40 ms.
        for id in ["slow-a", "slow-b"] {
            sent.insert(id.into(), at(0));
            written.insert(id.into(), at(2));
            on_std.insert(id.into(), at(3));
            on_sub.insert(id.into(), at(43));
        }
        // Seen on `sub.` but never written: not counted.
        sent.insert("lost".into(), at(0));
        on_sub.insert("lost".into(), at(90));
        let (hops, n) = tail_composition(&sent, &written, &on_std, &on_sub, 43.0);
        assert_eq!(n, 2);
        let rounded = hops.map(|h| h.round());
        assert_eq!(rounded, [2.0, 1.0, 40.0]);
        let (_, all) = tail_composition(&sent, &written, &on_std, &on_sub, 0.0);
        assert_eq!(all, 100);
    }
}
