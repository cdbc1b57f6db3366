//! Routing measurements: how many record × subscription evaluations one core makes, with and without the route
//! index.
//!
//! - **Throughput** drives [`RoutingTable::route`] — filter, view plan, view encode, framing — over decoded
//!   `grid_event` records with 1, 10 and 100 active subscriptions (a realistic mix of filters and 5–9 field rules
//!   with every treatment), single-threaded. Baseline: one `apache_avro::to_avro_datum` of the full record (the
//!   least any router must do to copy a record out). Also the filters alone, per evaluation.
//! - **Indexed routing** ([`indexed`]): 1 to 1,000 subscriptions each on its own county and two event types,
//!   routed with the route index and, as the baseline, with every filter evaluated.

use std::time::Instant;

use apache_avro::types::Value;

use super::BenchError;
use unsilo_hub::control::ControlState;
use unsilo_hub::router::{Release, RoutingTable};
use unsilo_policy::model::{
    Channel, FieldRule, Subscription, SubscriptionSpec, SubscriptionStatus, Treatment,
};
use unsilo_policy::treat::PseudonymKey;

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

const FILTERS: [&str; 5] = [
    "true",
    "region_code.startsWith(\"610921\")",
    "urgency != \"NORMAL\" || attachment_count > 2",
    "category in [\"DISPUTE\", \"SAFETY_HAZARD\", \"PUBLIC_SECURITY\"] && region_code.startsWith(\"6109\")",
    "parties.exists(p, p.role == \"RESPONDENT\")",
];

/// Field rules of benchmark subscription `i`: five common fields and, by `i % 4`, up to four more with every
/// treatment.
pub(super) fn rules(i: usize) -> Vec<FieldRule> {
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

/// A pull subscription on `grid_event` for benchmarks: `filter`, and [`rules`]`(rules_no)`.
pub(super) fn spec(filter: String, rules_no: usize) -> SubscriptionSpec {
    SubscriptionSpec {
        schema: "grid_event".into(),
        filter,
        fields: rules(rules_no),
        purpose: "benchmark".into(),
        // The items a request states (政务数据共享条例 Art. 20).
        legal_basis: Some("unsilo bench".into()),
        scenario: Some("measuring the router".into()),
        scope: Some("the benchmark's generated grid events".into()),
        expires_at_ms: Some(unsilo_bus::now_ms() + 365 * 86_400_000),
        backfill_from_ms: None,
        retain_days: None,
        channel: Channel::Pull,
    }
}

/// The six-digit code of benchmark county `i` (`6101 01`, `6101 02`, …: thirty per prefecture).
pub(super) fn county(i: usize) -> String {
    format!("61{:02}{:02}", 1 + i / 30, 1 + i % 30)
}

/// `n` active subscriptions on `grid_event`, subscription `i` with the filter `filter(i)` and [`rules`]`(i)`.
pub(super) fn state_with(n: usize, filter: impl Fn(usize) -> String) -> ControlState {
    let mut state = ControlState::default();
    for i in 0..n {
        let spec = spec(filter(i), i);
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
pub(super) fn route_all(
    table: &RoutingTable,
    records: &[Value],
) -> Result<(f64, usize), BenchError> {
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
        &state_with(subscriptions, |i| FILTERS[i % FILTERS.len()].into()),
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
        let mut state = state_with(subscriptions, |_| "true".into());
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

/// Full evaluations — filter, view plan, view encode and framing — per second on one core when every one of
/// `subscriptions` subscriptions matches every record (filter `true`; the view rules vary as in [`rules`]).
pub fn every_match(n: usize, subscriptions: usize) -> Result<f64, BenchError> {
    let records = records(n)?;
    let table = RoutingTable::build(
        &state_with(subscriptions, |_| "true".into()),
        "grid_event",
        &RoutingTable::default(),
    );
    let (elapsed, released) = route_all(&table, &records)?;
    if released != n * subscriptions {
        return Err(BenchError::Avro(format!(
            "{released} of {} evaluations released with every filter true",
            n * subscriptions
        )));
    }
    Ok(released as f64 / elapsed)
}
