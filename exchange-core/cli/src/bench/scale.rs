//! The province's shape (`unsilo bench --only scale`): what a Shaanxi-sized deployment asks of one hub, measured
//! as the hub is today — the figures the province-scale work is judged against.
//!
//! - **Routing with 10,000 active subscriptions** on one core ([`province_routing`]): 107 counties of nine towns;
//!   90 % of the subscriptions scoped to a county or a town (half each, a third also to event types), the rest
//!   with mixed conditions within a prefecture; records spread over the towns. Baseline: one `to_avro_datum` of the record. Also the time to
//!   build the routing table (compile every filter and view).
//! - **Start at size** ([`start_at_size`]): a hub whose control plane holds 1,000 agencies and 10,000 active
//!   subscriptions is stopped and started again; the seconds until it serves, and the process's resident memory
//!   then.
//! - **Evidence** ([`super::evidence`]): bytes per release on the bus, and the person report over a hundred
//!   million releases.

use std::sync::Arc;
use std::time::Instant;

use apache_avro::types::Value;
use unsilo_hub::router::RoutingTable;
use unsilo_hub::server::Hub;
use unsilo_policy::model::{Agency, Subscription, SubscriptionStatus};

use super::routing::{county, route_all, spec};
use super::BenchError;

/// Counties of the benchmark province (Shaanxi has 107 county-level divisions).
const COUNTIES: usize = 107;
/// Towns per county.
const TOWNS: usize = 9;
/// Conditions of the 10 % of subscriptions not scoped to a county or town (scoped to a prefecture instead).
const MIXED: [&str; 4] = [
    "urgency != \"NORMAL\" || attachment_count > 2",
    "category in [\"DISPUTE\", \"SAFETY_HAZARD\", \"PUBLIC_SECURITY\"] && region_code.startsWith(\"6109\")",
    "parties.exists(p, p.role == \"RESPONDENT\")",
    "event_type_code == \"0302\"",
];

/// The filter of province subscription `i` of `total`.
fn province_filter(i: usize, total: usize) -> String {
    if i >= total * 9 / 10 {
        // Province-wide departments still ask by prefecture (市): the first four digits.
        return format!(
            "region_code.startsWith(\"{}\") && ({})",
            &county(i % COUNTIES)[..4],
            MIXED[i % MIXED.len()]
        );
    }
    let county = county(i % COUNTIES);
    let place = if i.is_multiple_of(2) {
        county
    } else {
        format!("{county}{:03}", 1 + (i / COUNTIES) % TOWNS)
    };
    if i.is_multiple_of(3) {
        format!("region_code.startsWith(\"{place}\") && event_type_code in [\"0302\", \"0101\"]")
    } else {
        format!("region_code.startsWith(\"{place}\")")
    }
}

/// How the benchmark's subscriptions are scoped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The province's: 90 % county or town scoped, the rest prefecture-wide with mixed conditions (a record
    /// goes to about 190 subscriptions).
    Province,
    /// Every subscription scoped to one town (a record goes to about ten): what matching costs when releases
    /// are few.
    TownsOnly,
}

impl Shape {
    /// The filter of subscription `i` of `total`.
    fn filter(self, i: usize, total: usize) -> String {
        match self {
            Shape::Province => province_filter(i, total),
            Shape::TownsOnly => format!(
                "region_code.startsWith(\"{}{:03}\")",
                county(i % COUNTIES),
                1 + (i / COUNTIES) % TOWNS
            ),
        }
    }
}

/// Routing at the province's shape.
#[derive(Clone, Debug)]
pub struct ProvinceRouting {
    /// Active subscriptions.
    pub subscriptions: usize,
    /// Records routed per second on one core.
    pub records_per_s: f64,
    /// The baseline: `to_avro_datum` of the record, per second.
    pub baseline_per_s: f64,
    /// Seconds to build the routing table (compile every filter and view).
    pub build_s: f64,
    /// Routes evaluated per record, on average.
    pub candidates_per_record: f64,
    /// Releases per record, on average.
    pub releases_per_record: f64,
    /// Bytes of a released view's value (framed Avro), on average.
    pub bytes_per_release: f64,
}

/// Routes `n` grid events spread over the province's towns through `subscriptions` subscriptions of `shape`, on
/// this thread.
pub fn province_routing(
    n: usize,
    subscriptions: usize,
    shape: Shape,
) -> Result<ProvinceRouting, BenchError> {
    let shared = unsilo_schemas::shared_schema("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event schema".into()))?;
    let records = province_records(n)?;
    let state = super::routing::state_with(subscriptions, |i| shape.filter(i, subscriptions));
    let started = Instant::now();
    let table = RoutingTable::build(&state, "grid_event", &RoutingTable::default());
    let build_s = started.elapsed().as_secs_f64();
    if table.subscriptions.len() != subscriptions {
        return Err(BenchError::Avro(format!(
            "{} of {subscriptions} benchmark subscriptions compiled",
            table.subscriptions.len()
        )));
    }
    let (elapsed, released) = route_all(&table, &records)?;
    let bytes_per_release = release_bytes(&table, &records[..records.len().min(1_000)])?;
    let candidates: usize = records.iter().map(|r| table.candidates(r)).sum();
    let started = Instant::now();
    for r in &records {
        let body = apache_avro::to_avro_datum(shared.avro(), r.clone())
            .map_err(|e| BenchError::Avro(e.to_string()))?;
        std::hint::black_box(body);
    }
    let baseline_per_s = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok(ProvinceRouting {
        subscriptions,
        records_per_s: n as f64 / elapsed,
        baseline_per_s,
        build_s,
        candidates_per_record: candidates as f64 / n.max(1) as f64,
        releases_per_record: released as f64 / n.max(1) as f64,
        bytes_per_release,
    })
}

/// `n` grid events spread over the province's towns (county `i % 107`, town by `i / 107`), of four event types.
fn province_records(n: usize) -> Result<Vec<Value>, BenchError> {
    let shared = unsilo_schemas::shared_schema("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event schema".into()))?;
    let example = unsilo_schemas::example_record("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event example".into()))?;
    let kinds = ["0302", "0101", "0201", "0401"];
    (0..n)
        .map(|i| {
            let mut json = example.clone();
            let town = 1 + (i / COUNTIES) % TOWNS;
            json["envelope"]["region_code"] =
                serde_json::json!(format!("{}{town:03}{:03}", county(i % COUNTIES), i % 200));
            json["envelope"]["record_id"] = serde_json::json!(format!("bench-{i}"));
            json["event_type_code"] = serde_json::json!(kinds[i % kinds.len()]);
            unsilo_schemas::json_to_avro(&json, shared.avro())
                .map_err(|e| BenchError::Avro(e.to_string()))
        })
        .collect()
}

/// The average size of the views `table` releases for `records` (framed values, without the bus record's key and
/// headers).
fn release_bytes(table: &RoutingTable, records: &[Value]) -> Result<f64, BenchError> {
    let key = unsilo_policy::treat::PseudonymKey::from_bytes([7; 32]);
    let now = unsilo_bus::now_ms();
    let mut out = Vec::new();
    let (mut bytes, mut releases) = (0usize, 0usize);
    for r in records {
        out.clear();
        table
            .route(r, now, &key, &mut out)
            .map_err(|e| BenchError::Avro(e.to_string()))?;
        bytes += out.iter().map(|release| release.value.len()).sum::<usize>();
        releases += out.len();
    }
    Ok(bytes as f64 / releases.max(1) as f64)
}

/// A hub started again with a province-sized control plane.
#[derive(Clone, Debug)]
pub struct StartAtSize {
    /// Agencies on the control plane.
    pub agencies: usize,
    /// Active subscriptions on it.
    pub subscriptions: usize,
    /// Seconds to write them (in bulk) and create their topics.
    pub seed_s: f64,
    /// Seconds from `Hub::start` to a hub that serves.
    pub start_s: f64,
    /// The process's resident memory once it serves (MiB; Linux only).
    pub rss_mib: Option<f64>,
    /// Records published to `std.grid_event` of the restarted hub, then routed by it.
    pub load_records: usize,
    /// Records routed per second, the whole path: decode, match, views, evidence, the write and its fsync.
    pub routed_per_s: f64,
    /// Releases per record under that load.
    pub releases_per_record: f64,
    /// The highest resident memory sampled while it routed them (MiB; Linux only).
    pub peak_rss_mib: Option<f64>,
}

/// Publishes `n` province records to `hub`'s `std.grid_event` in batches of 500 and waits until its router has
/// committed them all: records/s over the whole path, releases per record, and the highest resident memory sampled
/// every 100 ms meanwhile.
async fn route_under_load(
    hub: &Hub,
    cluster: &str,
    n: usize,
) -> Result<(f64, f64, Option<f64>), BenchError> {
    let shared = unsilo_schemas::shared_schema("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event schema".into()))?;
    let schema_id = hub
        .registry
        .lookup(&shared.subject(), &shared.schema_string(), false)
        .map_err(setup)?
        .id;
    let bodies: Vec<Vec<u8>> = province_records(n)?
        .into_iter()
        .map(|v| {
            apache_avro::to_avro_datum(shared.avro(), v)
                .map(|b| unsilo_bus::wire::encode(schema_id as u32, &b))
                .map_err(setup)
        })
        .collect::<Result<_, _>>()?;
    let released_before = super::latency::released_total(hub);
    let topic = shared.topic();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak: Option<f64> = None;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(now) = super::latency::proc_status_mib("VmRSS:") {
                    peak = Some(peak.map_or(now, |p: f64| p.max(now)));
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            peak
        })
    };
    let started = Instant::now();
    for (chunk_no, chunk) in bodies.chunks(500).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let id = format!("load-{}", chunk_no * 500 + i);
                unsilo_bus::Record::new(id.as_bytes(), body.clone()).with_header(
                    unsilo_schemas::names::HEADER_RECORD_ID,
                    id.as_bytes().to_vec(),
                )
            })
            .collect();
        hub.bus.publish(&topic, batch).await?;
    }
    let caught_up = router_caught_up(hub, cluster).await;
    if caught_up.is_err() {
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    }
    caught_up?;
    let elapsed = started.elapsed().as_secs_f64();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.map_err(setup)?;
    let released = super::latency::released_total(hub) - released_before;
    Ok((
        n as f64 / elapsed.max(1e-9),
        released as f64 / n.max(1) as f64,
        peak,
    ))
}

/// Waits (ten minutes at most) until `hub`'s `grid_event` router has committed everything on `std.grid_event`.
pub(super) async fn router_caught_up(hub: &Hub, cluster: &str) -> Result<(), BenchError> {
    let topic = "std.grid_event";
    let group = unsilo_schemas::names::router_group(cluster, "grid_event");
    let end: u64 = hub.bus.end_offsets(topic).await?.iter().sum();
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let committed: u64 = hub
            .bus
            .committed_offsets(&group, topic)
            .await?
            .iter()
            .map(|c| c.unwrap_or(0))
            .sum();
        if committed >= end {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Avro(format!(
                "the router committed {committed} of {end} records in ten minutes"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A setup step that failed, as a benchmark error.
pub(super) fn setup(e: impl std::fmt::Display) -> BenchError {
    BenchError::Avro(e.to_string())
}

/// Seeds a hub with `agencies` agencies and `subscriptions` active subscriptions on `grid_event`, stops it and
/// times its next start.
pub async fn start_at_size(
    scratch: &super::Scratch,
    agencies: usize,
    subscriptions: usize,
    load_records: usize,
) -> Result<StartAtSize, BenchError> {
    let dir = scratch.dir()?;
    let mut config = unsilo_hub::config::Config::default();
    config.bus.embedded.data_dir = dir.path().to_owned();
    let hub = Hub::start(&config).await.map_err(setup)?;
    let now = unsilo_bus::now_ms();
    let agency_list: Vec<Agency> = (0..agencies)
        .map(|i| Agency {
            id: format!("agency-{i}"),
            name: format!("基准部门 {i}"),
            uscc: "11610921016050037T".into(),
            clearance: unsilo_schemas::Sensitivity::S3,
            tokens: Vec::new(),
            client_cert_sha256: None,
            created_at_ms: now,
            created_by: "bench".into(),
            suspended: None,
            linked: None,
            revision: 1,
        })
        .collect();
    let subscription_list: Vec<Subscription> = (0..subscriptions)
        .map(|i| {
            let spec = spec(province_filter(i, subscriptions), i);
            let mut s = Subscription::new_request(
                &format!("agency-{}", i % agencies.max(1)),
                &format!("s{i}"),
                spec.clone(),
                now,
            );
            s.status = SubscriptionStatus::Active;
            s.granted = Some(spec);
            s.view_schema_id = Some(1000 + i as i32);
            s
        })
        .collect();
    let started = Instant::now();
    hub.control
        .put_new_in_bulk(&agency_list, &subscription_list)
        .await
        .map_err(setup)?;
    // What approval does besides the control plane: each subscription's topic, for the load below.
    let plan = config.bus.topic_plan();
    for subscription in &subscription_list {
        hub.bus
            .create_topic(&plan.topic(subscription.topic()))
            .await?;
    }
    let seed_s = started.elapsed().as_secs_f64();
    hub.shutdown().await.map_err(setup)?;
    drop(hub);
    let started = Instant::now();
    let hub = Hub::start(&config).await.map_err(setup)?;
    let start_s = started.elapsed().as_secs_f64();
    let rss_mib = super::latency::proc_status_mib("VmRSS:");
    let held = hub.control.read().subscriptions.len();
    if held != subscriptions {
        hub.shutdown().await.map_err(setup)?;
        return Err(BenchError::Avro(format!(
            "the restarted hub holds {held} of {subscriptions} subscriptions"
        )));
    }
    let load = route_under_load(&hub, &config.hub.cluster, load_records).await;
    hub.shutdown().await.map_err(setup)?;
    let load = load?;
    Ok(StartAtSize {
        agencies,
        subscriptions,
        seed_s,
        start_s,
        rss_mib,
        load_records,
        routed_per_s: load.0,
        releases_per_record: load.1,
        peak_rss_mib: load.2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nine_in_ten_province_subscriptions_are_scoped_to_a_county_or_a_town() {
        let filters: Vec<String> = (0..1000).map(|i| province_filter(i, 1000)).collect();
        let scoped = filters
            .iter()
            .filter(|f| f.starts_with("region_code.startsWith") && !f.contains("&& ("))
            .count();
        assert_eq!(scoped, 900);
        let towns = filters
            .iter()
            .filter(|f| f.starts_with("region_code.startsWith(\"") && f[24..].find('"') == Some(9))
            .count();
        assert!(towns > 400, "{towns} town-scoped");
    }

    #[test]
    fn province_routing_compiles_every_subscription_and_releases_by_place() {
        let r = province_routing(500, 300, Shape::Province).expect("routes");
        assert_eq!(r.subscriptions, 300);
        assert!(
            r.releases_per_record > 0.0 && r.candidates_per_record < 300.0,
            "{r:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_seeded_hub_starts_again_holding_everything() {
        let scratch = super::super::Scratch::under(None).expect("scratch");
        let s = start_at_size(&scratch, 20, 200, 1_000)
            .await
            .expect("starts");
        assert_eq!((s.agencies, s.subscriptions), (20, 200));
        assert!(s.routed_per_s > 0.0, "{s:?}");
        assert!(s.releases_per_record > 0.5, "{s:?}");
    }
}
