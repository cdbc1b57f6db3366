//! Routing measurements: how many record × subscription evaluations one core makes, and how long a record takes
//! from the end of ingest to its subscription's topic at a steady rate.
//!
//! - **Throughput** drives [`RoutingTable::route`] — filter, view plan, view encode, framing — over decoded
//!   `grid_event` records with 1, 10 and 100 active subscriptions (a realistic mix of filters and 5–9 field rules
//!   with every treatment), single-threaded. Baseline: one `apache_avro::to_avro_datum` of the full record (the
//!   least any router must do to copy a record out). Also the filters alone, per evaluation.
//! - **Indexed routing** ([`indexed`]): 1 to 1,000 subscriptions each on its own county and two event types,
//!   routed with the route index and, as the baseline, with every filter evaluated.
//! - **Latency** runs a whole hub on the embedded bus (fsync on), one active subscription, and publishes
//!   Confluent-framed `grid_event` records to `std.grid_event` at a steady rate in 1 ms ticks; a reader on
//!   `sub.<agency>.<name>` (what every delivery channel reads) notes when each record arrives. Reported: p50, p99
//!   and max from publish to arrival.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::types::Value;

use super::BenchError;
use unsilo_bus::wire;
use unsilo_bus::{ConsumerOptions, Record};
use unsilo_hub::auth::Principal;
use unsilo_hub::control::ControlState;
use unsilo_hub::governance::{ApproveRequest, NewAgency, SubscriptionRequest};
use unsilo_hub::router::{Release, RoutingTable};
use unsilo_policy::model::{
    Channel, FieldRule, Subscription, SubscriptionSpec, SubscriptionStatus, Treatment,
};
use unsilo_policy::treat::PseudonymKey;
use unsilo_schemas::names::HEADER_RECORD_ID;

/// One throughput measurement.
#[derive(Clone, Debug)]
pub struct Throughput {
    /// Active subscriptions.
    pub subscriptions: usize,
    /// Records routed per second (one core).
    pub records_per_s: f64,
    /// Nanoseconds per record × subscription.
    pub ns_per_evaluation: f64,
    /// Record × subscription evaluations per second.
    pub evaluations_per_s: f64,
    /// Share of evaluations that released the record.
    pub released_share: f64,
}

/// The latency measurement.
#[derive(Clone, Debug)]
pub struct Latency {
    /// Records per second offered.
    pub rate: u32,
    /// Records measured.
    pub records: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
}

const FILTERS: [&str; 5] = [
    "true",
    "region_code.startsWith(\"610921\")",
    "urgency != \"NORMAL\" || attachment_count > 2",
    "category in [\"DISPUTE\", \"SAFETY_HAZARD\", \"PUBLIC_SECURITY\"] && region_code.startsWith(\"6109\")",
    "parties.exists(p, p.role == \"RESPONDENT\")",
];

fn rules(i: usize) -> Vec<FieldRule> {
    let rule = |field: &str, treatment| FieldRule {
        field: field.into(),
        treatment,
    };
    let mut r = vec![
        rule("event_no", Treatment::Clear),
        rule("event_type_code", Treatment::Clear),
        rule("envelope.region_code", Treatment::Clear),
        rule("reported_time", Treatment::Generalise),
        rule("location.address", Treatment::Generalise),
    ];
    match i % 4 {
        0 => {}
        1 => {
            r.push(rule("parties.cert_no", Treatment::Pseudonymise));
            r.push(rule("parties.name", Treatment::Mask));
        }
        2 => {
            r.push(rule("description", Treatment::Clear));
            r.push(rule("reporter.phone", Treatment::Mask));
            r.push(rule("location.lat", Treatment::Generalise));
            r.push(rule("location.lng", Treatment::Generalise));
        }
        _ => {
            r.push(rule("parties.cert_no", Treatment::Pseudonymise));
            r.push(rule("urgency", Treatment::Clear));
            r.push(rule("status", Treatment::Clear));
            r.push(rule("title", Treatment::Clear));
        }
    }
    r
}

fn state_with(n: usize) -> ControlState {
    let mut state = ControlState::default();
    for i in 0..n {
        let spec = SubscriptionSpec {
            schema: "grid_event".into(),
            filter: FILTERS[i % FILTERS.len()].into(),
            fields: rules(i),
            purpose: "benchmark".into(),
            legal_basis: None,
            expires_at_ms: None,
            backfill_from_ms: None,
            retain_days: None,
            channel: Channel::Pull,
        };
        let mut s = Subscription::new_request("bench", &format!("s{i}"), spec.clone(), 0);
        s.status = SubscriptionStatus::Active;
        s.granted = Some(spec);
        s.view_schema_id = Some(1000 + i as i32);
        s.revision = 3;
        state.subscriptions.insert(s.id.clone(), s);
    }
    state
}

/// Decoded `grid_event` records: the shipped example with region, urgency and attachments varied.
fn records(n: usize) -> Result<Vec<Value>, BenchError> {
    let shared = unsilo_schemas::shared_schema("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event schema".into()))?;
    let example = unsilo_schemas::example_record("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event example".into()))?;
    let regions = ["610921107200", "610114001002", "610502100201"];
    let urgencies = ["NORMAL", "URGENT", "NORMAL", "UNKNOWN"];
    (0..n)
        .map(|i| {
            let mut json = example.clone();
            json["envelope"]["region_code"] = serde_json::json!(regions[i % regions.len()]);
            json["envelope"]["record_id"] = serde_json::json!(format!("bench-{i}"));
            json["urgency"] = serde_json::json!(urgencies[i % urgencies.len()]);
            json["attachment_count"] = serde_json::json!((i % 5) as i32);
            unsilo_schemas::json_to_avro(&json, shared.avro())
                .map_err(|e| BenchError::Avro(e.to_string()))
        })
        .collect()
}

/// Routes every record through `table` on this thread: the seconds it took and how many releases it made.
fn route_all(table: &RoutingTable, records: &[Value]) -> Result<(f64, usize), BenchError> {
    let key = PseudonymKey::from_bytes([7; 32]);
    let now = unsilo_bus::now_ms();
    let mut out: Vec<Release> = Vec::new();
    let mut released = 0usize;
    let started = Instant::now();
    for r in records {
        out.clear();
        table
            .route(r, now, &key, &mut out)
            .map_err(|e| BenchError::Avro(e.to_string()))?;
        released += out.len();
    }
    Ok((started.elapsed().as_secs_f64().max(1e-9), released))
}

/// Routing throughput with `subscriptions` active subscriptions over `n` records; also the raw-encode baseline
/// (records/s) and the filters alone (evaluations/s).
pub fn throughput(n: usize, subscriptions: usize) -> Result<(Throughput, f64, f64), BenchError> {
    let records = records(n)?;
    let table = RoutingTable::build(
        &state_with(subscriptions),
        "grid_event",
        &RoutingTable::default(),
    );
    if table.subscriptions.len() != subscriptions {
        return Err(BenchError::Avro(format!(
            "{} of {subscriptions} benchmark subscriptions compiled",
            table.subscriptions.len()
        )));
    }
    let (elapsed, released) = route_all(&table, &records)?;
    let evaluations = (n * subscriptions) as f64;
    let result = Throughput {
        subscriptions,
        records_per_s: n as f64 / elapsed,
        ns_per_evaluation: elapsed * 1e9 / evaluations,
        evaluations_per_s: evaluations / elapsed,
        released_share: released as f64 / evaluations,
    };

    let schema = unsilo_schemas::shared_schema("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event schema".into()))?
        .avro();
    let started = Instant::now();
    for r in &records {
        let body = apache_avro::to_avro_datum(schema, r.clone())
            .map_err(|e| BenchError::Avro(e.to_string()))?;
        std::hint::black_box(body);
    }
    let baseline = n as f64 / started.elapsed().as_secs_f64().max(1e-9);

    let started = Instant::now();
    let mut matched = 0usize;
    for r in &records {
        for route in &table.subscriptions {
            matched += usize::from(route.compiled.filter.matches(r));
        }
    }
    std::hint::black_box(matched);
    let filter_rate = evaluations / started.elapsed().as_secs_f64().max(1e-9);
    Ok((result, baseline, filter_rate))
}

/// One county's routing measurement: typical filters, with and without the route index.
#[derive(Clone, Debug)]
pub struct Indexed {
    /// Active subscriptions, each on its own county.
    pub subscriptions: usize,
    /// Records routed per second with the index (one core).
    pub indexed_per_s: f64,
    /// Records routed per second evaluating every filter (the same filters, written so no guard is seen).
    pub scan_per_s: f64,
    /// Routes evaluated per record with the index, on average.
    pub candidates_per_record: f64,
    /// Records released per record, on average.
    pub releases_per_record: f64,
}

/// `subscriptions` subscriptions as a province has them: each on its own county (`region_code.startsWith`) and
/// two event types; records spread over the counties and event types (a fifth from outside them). Routed with
/// the index, then with the same filters written `(…) || false`, which hides their guards: every filter runs.
pub fn indexed(n: usize, subscriptions: usize) -> Result<Indexed, BenchError> {
    let county = |i: usize| format!("61{:02}{:02}", 1 + i / 30, 1 + i % 30);
    let kinds = ["0302", "0101", "0201", "0401"];
    let shared = unsilo_schemas::shared_schema("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event schema".into()))?;
    let example = unsilo_schemas::example_record("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event example".into()))?;
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let mut json = example.clone();
            let region = if i % 5 == 4 {
                "620102001001".to_owned()
            } else {
                format!("{}001002", county(i % subscriptions.max(1)))
            };
            json["envelope"]["region_code"] = serde_json::json!(region);
            json["envelope"]["record_id"] = serde_json::json!(format!("bench-{i}"));
            json["event_type_code"] = serde_json::json!(kinds[i % kinds.len()]);
            unsilo_schemas::json_to_avro(&json, shared.avro())
                .map_err(|e| BenchError::Avro(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let table_of = |hide_guards: bool| {
        let mut state = state_with(subscriptions);
        for (i, s) in state.subscriptions.values_mut().enumerate() {
            let filter = format!(
                "region_code.startsWith(\"{}\") && event_type_code in [\"0302\", \"0101\"]",
                county(i)
            );
            let filter = if hide_guards {
                format!("({filter}) || false")
            } else {
                filter
            };
            for spec in [&mut s.requested].into_iter().chain(s.granted.as_mut()) {
                spec.filter = filter.clone();
            }
        }
        RoutingTable::build(&state, "grid_event", &RoutingTable::default())
    };
    let run = |table: &RoutingTable| -> Result<(f64, usize), BenchError> {
        let (elapsed, released) = route_all(table, &records)?;
        Ok((n as f64 / elapsed, released))
    };
    let indexed_table = table_of(false);
    let (indexed_per_s, released) = run(&indexed_table)?;
    let (scan_per_s, released_scan) = run(&table_of(true))?;
    if released != released_scan {
        return Err(BenchError::Avro(format!(
            "the index changed what is released: {released} with it, {released_scan} without"
        )));
    }
    let candidates: usize = records.iter().map(|r| indexed_table.candidates(r)).sum();
    Ok(Indexed {
        subscriptions,
        indexed_per_s,
        scan_per_s,
        candidates_per_record: candidates as f64 / n.max(1) as f64,
        releases_per_record: released as f64 / n.max(1) as f64,
    })
}

/// Latency from publishing to `std.grid_event` to arrival on the subscription's topic, at `rate` records/s for
/// `seconds` seconds, on a whole hub on the embedded bus.
pub async fn latency(rate: u32, seconds: u32) -> Result<Latency, BenchError> {
    let dir = tempfile::tempdir()?;
    let mut config = unsilo_hub::config::Config::default();
    config.bus.embedded.data_dir = dir.path().to_owned();
    let hub = unsilo_hub::server::Hub::start(&config)
        .await
        .map_err(|e| BenchError::Avro(e.to_string()))?;
    let setup = |e: unsilo_hub::api_error::ApiError| BenchError::Avro(e.to_string());
    hub.governance
        .create_agency(
            &Principal::Operator("bench".into()),
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
        .map_err(setup)?;
    let request = SubscriptionRequest {
        agency: None,
        name: "latency".into(),
        spec: SubscriptionSpec {
            schema: "grid_event".into(),
            filter: "region_code.startsWith(\"61\")".into(),
            fields: rules(1),
            purpose: "benchmark".into(),
            legal_basis: None,
            expires_at_ms: None,
            backfill_from_ms: None,
            retain_days: None,
            channel: Channel::Pull,
        },
    };
    hub.governance
        .request(&Principal::Agency("bench".into()), request)
        .await
        .map_err(setup)?;
    let mut sub = hub
        .governance
        .approve(
            &Principal::Operator("bench".into()),
            "bench.latency",
            ApproveRequest::default(),
        )
        .await
        .map_err(setup)?;
    if sub.status == unsilo_policy::model::SubscriptionStatus::Requested {
        // 双人复核: a second operator confirms.
        sub = hub
            .governance
            .approve(
                &Principal::Operator("bench-reviewer".into()),
                "bench.latency",
                ApproveRequest::default(),
            )
            .await
            .map_err(setup)?;
    }

    let shared = unsilo_schemas::shared_schema("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event schema".into()))?;
    let schema_id = hub
        .registry
        .lookup(&shared.subject(), &shared.schema_string(), false)
        .map_err(|e| BenchError::Avro(e.to_string()))?
        .id;
    let total = (rate * seconds) as usize;
    let bodies: Vec<Vec<u8>> = records(64)?
        .into_iter()
        .map(|v| {
            apache_avro::to_avro_datum(shared.avro(), v)
                .map(|b| wire::encode(schema_id as u32, &b))
                .map_err(|e| BenchError::Avro(e.to_string()))
        })
        .collect::<Result<_, _>>()?;

    // The reader: what a delivery worker does.
    let bus = hub.bus.clone();
    let mut consumer = bus
        .consumer(ConsumerOptions::group(
            "bench.latency.reader",
            &[&sub.topic()],
        ))
        .await?;
    let reader = tokio::spawn(async move {
        let mut arrived: HashMap<String, Instant> = HashMap::with_capacity(total);
        let deadline = Instant::now() + Duration::from_secs(u64::from(seconds) + 60);
        while arrived.len() < total && Instant::now() < deadline {
            if let Ok(batch) = consumer.poll(1000, Duration::from_millis(100)).await {
                let now = Instant::now();
                for r in &batch {
                    if let Some(id) = r.record.header(HEADER_RECORD_ID) {
                        arrived.insert(String::from_utf8_lossy(id).into_owned(), now);
                    }
                }
                let _ = consumer.commit(&batch).await;
            }
        }
        arrived
    });

    // The writer: `rate` records per second in 1 ms ticks, each tick's publish in flight on its own.
    let per_tick = (rate as usize / 1000).max(1);
    let sent: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut publishes = Vec::new();
    let mut n = 0usize;
    while n < total {
        ticker.tick().await;
        let mut batch = Vec::with_capacity(per_tick);
        let now = Instant::now();
        let mut sent_now = Vec::with_capacity(per_tick);
        for _ in 0..per_tick.min(total - n) {
            let id = format!("lat-{n}");
            batch.push(
                Record::new(id.as_bytes(), bodies[n % bodies.len()].clone())
                    .with_header(HEADER_RECORD_ID, id.as_bytes().to_vec()),
            );
            sent_now.push(id);
            n += 1;
        }
        {
            let mut s = sent.lock().map_err(|_| BenchError::Avro("lock".into()))?;
            for id in sent_now {
                s.insert(id, now);
            }
        }
        let bus = hub.bus.clone();
        let topic = shared.topic();
        publishes.push(tokio::spawn(
            async move { bus.publish(&topic, batch).await },
        ));
    }
    for p in publishes {
        p.await.map_err(|e| BenchError::Avro(e.to_string()))??;
    }
    let arrived = reader.await.map_err(|e| BenchError::Avro(e.to_string()))?;
    let sent = sent
        .lock()
        .map_err(|_| BenchError::Avro("lock".into()))?
        .clone();
    let mut latencies: Vec<f64> = arrived
        .iter()
        .filter_map(|(id, at)| {
            sent.get(id)
                .map(|s| at.duration_since(*s).as_secs_f64() * 1e3)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let result = Latency {
        rate,
        records: latencies.len(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
    };
    hub.shutdown().await?;
    Ok(result)
}
