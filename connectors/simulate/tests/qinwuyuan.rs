//! The built-in `qinwuyuan` connector and its simulator.
//!
//! - the fixtures: every valid one normalises into the schema its `dataType` names, every invalid one is rejected
//!   at the stage and with the code it expects;
//! - the generator: thousands of records all normalise when none is malformed and are all rejected when all are;
//!   record ids are stable for a seed;
//! - a hand-checked rating and service case decoded from their Avro bytes;
//! - the simulator pushing over real HTTP to a stand-in hub that answers as the hub's ingest endpoint does
//!   (200 / 207 / 422 with per-record results, 503 once, 401 for a wrong token).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use apache_avro::types::Value as Avro;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use unsilo_connectors::builtin;
use unsilo_connectors::conformance::{check_fixtures, check_sink, read_fixtures};
use unsilo_connectors::definition::{ConnectorDefinition, NormalisedRecord};
use unsilo_connectors::sdk::{
    Accepted, BatchReport, RawInput, RecordSink, RejectReason, Rejected, Shutdown, SinkError,
};
use unsilo_simulate::qinwuyuan::{self, generate, Error, PushRecord, QinwuyuanOptions};

const CONNECTOR: &str = "qinwuyuan";

fn definition() -> ConnectorDefinition {
    builtin::definition(CONNECTOR).unwrap_or_else(|e| panic!("{e}"))
}

fn start() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2024-09-14T08:00:00+08:00").expect("a valid time")
}

fn normalise(
    definition: &ConnectorDefinition,
    raw: &Value,
) -> (Result<NormalisedRecord, RejectReason>, Vec<u8>) {
    let input = RawInput::from_json_bytes(serde_json::to_vec(raw).expect("JSON"), "test");
    let mut out = Vec::new();
    let result = definition.normalise(&input, &mut out);
    (result, out)
}

fn text<'a>(raw: &'a Value, key: &str) -> &'a str {
    raw.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The schema and source record id a raw record's `dataType` calls for.
fn expected_identity(raw: &Value) -> (&'static str, &str) {
    match text(raw, "dataType") {
        "BJ" => ("service_case", text(raw, "projectNo")),
        "PJ" => ("rating", text(raw, "evaluateNo")),
        "SQ" => ("appeal", text(raw, "appealNo")),
        other => panic!("unexpected dataType {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn every_valid_fixture_normalises_into_the_schema_its_type_names() {
    let d = definition();
    let valid: Vec<_> = builtin::fixtures(CONNECTOR)
        .into_iter()
        .filter(|(p, _)| p.starts_with("fixtures/valid/"))
        .collect();
    assert!(valid.len() >= 8, "{valid:?}");
    let mut schemas = BTreeSet::new();
    for (path, text_) in valid {
        let raw: Value = serde_json::from_str(text_).unwrap_or_else(|e| panic!("{path}: {e}"));
        let n = normalise(&d, &raw)
            .0
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        let (schema, id) = expected_identity(&raw);
        assert_eq!(n.schema.name(), schema, "{path}");
        let version = raw["dataVersion"].as_i64().expect("a version").to_string();
        assert_eq!(
            n.record_id,
            unsilo_schemas::record_id("qinwuyuan", id, &version),
            "{path}"
        );
        assert_eq!(n.key, id, "{path}");
        schemas.insert(schema);
    }
    assert_eq!(
        schemas,
        BTreeSet::from(["appeal", "rating", "service_case"])
    );
}

#[test]
fn every_invalid_fixture_is_rejected_at_its_stage_with_its_code() {
    let d = definition();
    let invalid: Vec<_> = builtin::fixtures(CONNECTOR)
        .into_iter()
        .filter(|(p, _)| p.starts_with("fixtures/invalid/"))
        .collect();
    assert!(invalid.len() >= 8, "{invalid:?}");
    let mut stages = BTreeSet::new();
    for (path, text_) in invalid {
        let fixture: Value = serde_json::from_str(text_).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (result, bytes) = normalise(&d, &fixture["record"]);
        let reason = match result {
            Ok(n) => panic!("{path} normalised as {}", n.record_id),
            Err(r) => r,
        };
        assert_eq!(
            reason.stage,
            text(&fixture["expect"], "stage"),
            "{path}: {reason:?}"
        );
        assert_eq!(
            reason.code,
            text(&fixture["expect"], "code"),
            "{path}: {reason:?}"
        );
        assert!(bytes.is_empty());
        // Reasons never repeat an ID number or a mobile number in full.
        for secret in ["610921195209180038", "61092119760312402X", "12091756632"] {
            assert!(
                !reason.message.contains(secret),
                "{path}: {}",
                reason.message
            );
        }
        stages.insert(reason.stage);
    }
    assert_eq!(
        stages,
        BTreeSet::from(["contract", "mapping", "validation"])
    );
}

/// A sink that normalises with the definition, as the hub's sink does.
struct NormalisingSink(ConnectorDefinition);

#[async_trait]
impl RecordSink for NormalisingSink {
    async fn submit(&self, batch: Vec<RawInput>) -> Result<BatchReport, SinkError> {
        let mut report = BatchReport::default();
        for (index, input) in batch.iter().enumerate() {
            let mut out = Vec::new();
            match self.0.normalise(input, &mut out) {
                Ok(n) => report.accepted.push(Accepted {
                    index,
                    record_id: n.record_id,
                    schema: n.schema.name().to_owned(),
                }),
                Err(reason) => report.rejected.push(Rejected { index, reason }),
            }
        }
        Ok(report)
    }
}

#[tokio::test]
async fn the_fixtures_pass_the_conformance_kit() {
    let d = definition();
    let fixtures = read_fixtures(builtin::fixtures(CONNECTOR)).expect("readable fixtures");
    let report = check_fixtures(&d, &fixtures);
    report.assert_passed(CONNECTOR);
    assert!(report.checked >= 20, "{report:?}");
    check_sink(&d, &NormalisingSink(definition()), &fixtures)
        .await
        .expect("the sink answers")
        .assert_passed(CONNECTOR);
}

#[test]
fn the_readme_names_every_field_of_the_contract() {
    let connector = builtin::builtin(CONNECTOR).expect("built in");
    let readme = connector.file("README.md").expect("a README");
    let names = connector
        .contract_properties(&["serviceCase", "rating", "appeal"])
        .expect("contract");
    for name in names {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README does not document `{name}`"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn thousands_of_generated_records_all_normalise_when_none_is_malformed() {
    let d = definition();
    // A slow arrival rate, so the records cover weeks: completions, ratings, rectifications, replies.
    let options = QinwuyuanOptions {
        malformed_share: 0.0,
        seed: 2024,
        time_scale: 20_000.0,
        ..QinwuyuanOptions::default()
    };
    let records = generate(&options, start(), 6_000);
    let mut states = BTreeSet::new();
    for r in &records {
        assert!(!r.malformed);
        let n = normalise(&d, &r.record)
            .0
            .unwrap_or_else(|e| panic!("{e:?}\n{}", r.record));
        assert_eq!(n.schema.name(), r.kind.schema());
        assert_eq!(n.schema.name(), expected_identity(&r.record).0);
        for key in ["caseStatus", "rectifyStatus", "appealStatus"] {
            if let Some(s) = r.record.get(key).and_then(Value::as_str) {
                states.insert(format!("{key}={s}"));
            }
        }
    }
    for state in [
        "caseStatus=1",
        "caseStatus=2",
        "caseStatus=3",
        "caseStatus=6",
        "rectifyStatus=2",
        "rectifyStatus=3",
        "rectifyStatus=4",
        "appealStatus=1",
        "appealStatus=2",
        "appealStatus=5",
        "appealStatus=6",
    ] {
        assert!(states.contains(state), "{state} never occurs: {states:?}");
    }
}

#[test]
fn generated_records_are_all_rejected_when_all_are_malformed() {
    let d = definition();
    let options = QinwuyuanOptions {
        malformed_share: 1.0,
        seed: 2024,
        time_scale: 20_000.0,
        ..QinwuyuanOptions::default()
    };
    let mut codes: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for r in generate(&options, start(), 3_000) {
        assert!(r.malformed);
        match normalise(&d, &r.record).0 {
            Ok(n) => panic!(
                "a malformed record normalised as {}: {}",
                n.record_id, r.record
            ),
            Err(reason) => *codes.entry((reason.stage, reason.code)).or_insert(0) += 1,
        }
    }
    let stages: BTreeSet<&str> = codes.keys().map(|(s, _)| *s).collect();
    assert_eq!(
        stages,
        BTreeSet::from(["contract", "mapping", "validation"]),
        "{codes:?}"
    );
    for code in [
        "validator(cert_no)",
        "validator(uscc)",
        "validator(phone)",
        "validator(region_code)",
    ] {
        assert!(
            codes.keys().any(|(_, c)| c == code),
            "{code} never occurs: {codes:?}"
        );
    }
}

fn record_ids(records: &[PushRecord]) -> Vec<String> {
    let d = definition();
    records
        .iter()
        .map(|r| match normalise(&d, &r.record).0 {
            Ok(n) => n.record_id,
            Err(e) => panic!("{e:?}"),
        })
        .collect()
}

#[test]
fn record_ids_are_stable_for_a_seed() {
    let options = QinwuyuanOptions {
        malformed_share: 0.0,
        seed: 99,
        ..QinwuyuanOptions::default()
    };
    let first = record_ids(&generate(&options, start(), 2_000));
    let second = record_ids(&generate(&options, start(), 2_000));
    assert_eq!(first, second);
    let unique: BTreeSet<&String> = first.iter().collect();
    assert_eq!(unique.len(), first.len(), "every version has its own id");
    let other = record_ids(&generate(
        &QinwuyuanOptions {
            seed: 100,
            ..options
        },
        start(),
        2_000,
    ));
    assert_ne!(first, other);
}

// ---------------------------------------------------------------------------------------------------------------
// Records checked by hand
// ---------------------------------------------------------------------------------------------------------------

fn unwrap_union(value: &Avro) -> &Avro {
    match value {
        Avro::Union(_, inner) => inner,
        v => v,
    }
}

fn field<'a>(value: &'a Avro, name: &str) -> &'a Avro {
    match unwrap_union(value) {
        Avro::Record(fields) => fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| unwrap_union(v))
            .unwrap_or_else(|| panic!("no field {name}")),
        other => panic!("not a record: {other:?}"),
    }
}

fn string(value: &Avro) -> &str {
    match value {
        Avro::String(s) => s,
        other => panic!("not a string: {other:?}"),
    }
}

fn symbol(value: &Avro) -> &str {
    match value {
        Avro::Enum(_, s) => s,
        other => panic!("not an enum: {other:?}"),
    }
}

fn millis(value: &Avro) -> i64 {
    match value {
        Avro::TimestampMillis(t) | Avro::Long(t) => *t,
        other => panic!("not a timestamp: {other:?}"),
    }
}

fn decode(fixture_name: &str) -> (Avro, NormalisedRecord) {
    let d = definition();
    let fixture = builtin::fixtures(CONNECTOR)
        .into_iter()
        .find(|(p, _)| p.ends_with(fixture_name))
        .expect("the fixture")
        .1;
    let raw: Value = serde_json::from_str(fixture).expect("JSON");
    let (result, bytes) = normalise(&d, &raw);
    let n = result.expect("normalises");
    let value = apache_avro::from_avro_datum(n.schema.avro(), &mut bytes.as_slice(), None)
        .expect("decodes with the shared schema");
    (value, n)
}

#[test]
fn a_rectified_bad_rating_decodes_as_checked_by_hand() {
    let (record, n) = decode("rating_bad_rectified_and_verified.json");
    assert_eq!(n.schema.name(), "rating");
    let envelope = field(&record, "envelope");
    assert_eq!(string(field(envelope, "source_system")), "qinwuyuan");
    assert_eq!(
        string(field(envelope, "source_record_id")),
        "PJ20240926000788"
    );
    assert_eq!(string(field(envelope, "source_version")), "3");
    assert_eq!(
        string(field(envelope, "provider_org_code")),
        "12610000MB2960F19E"
    );
    assert_eq!(string(field(envelope, "region_code")), "610921107201");
    // 2024-09-26 08:15:42 in Beijing is 00:15:42 UTC.
    assert_eq!(millis(field(envelope, "event_time")), 1_727_309_742_000);
    assert_eq!(string(field(&record, "case_no")), "6109211240903000042");
    assert_eq!(string(field(&record, "org_code")), "11610921MB0F33025E");
    assert_eq!(field(&record, "score"), &Avro::Int(2));
    assert_eq!(symbol(field(&record, "level")), "DISSATISFIED");
    assert_eq!(
        field(&record, "reason_tags"),
        &Avro::Array(vec![
            Avro::String("多次跑动".into()),
            Avro::String("材料要求不一致".into())
        ])
    );
    // Trimmed.
    assert_eq!(
        string(field(&record, "comment")),
        "网上提交后又让去镇上补交纸质材料，跑了两趟。"
    );
    assert_eq!(string(field(&record, "rater_phone")), "13379152208");
    assert_eq!(symbol(field(&record, "channel")), "APP");
    let rectification = field(&record, "rectification");
    assert_eq!(symbol(field(rectification, "status")), "VERIFIED");
    // 2024-10-08 18:00:00 Beijing.
    assert_eq!(millis(field(rectification, "deadline")), 1_728_381_600_000);
    assert_eq!(
        millis(field(rectification, "rectified_time")),
        1_727_598_600_000
    );
    assert_eq!(
        field(rectification, "revisit_satisfied"),
        &Avro::Boolean(true)
    );
}

#[test]
fn an_enterprise_case_puts_its_credit_code_in_uscc_and_no_id_number() {
    let (record, n) = decode("case_completed_with_licence.json");
    assert_eq!(n.schema.name(), "service_case");
    let envelope = field(&record, "envelope");
    assert_eq!(string(field(envelope, "source_version")), "3");
    // The accepting organisation provides the case.
    assert_eq!(
        string(field(envelope, "provider_org_code")),
        "11610114MB1D09385D"
    );
    assert_eq!(symbol(field(&record, "item_type")), "LICENSE");
    let applicant = field(&record, "applicant");
    assert_eq!(symbol(field(applicant, "applicant_type")), "ENTERPRISE");
    assert_eq!(field(applicant, "cert_no"), &Avro::Null);
    assert_eq!(string(field(applicant, "uscc")), "91610114MA6W8R2K50");
    assert_eq!(string(field(applicant, "contact_name")), "赵磊");
    assert_eq!(symbol(field(&record, "channel")), "WINDOW");
    assert_eq!(symbol(field(&record, "status")), "COMPLETED");
    assert_eq!(symbol(field(&record, "result")), "APPROVED");
    assert_eq!(field(&record, "promise_days"), &Avro::Int(10));
    assert_eq!(field(&record, "cross_region"), &Avro::Boolean(false));
    // 2024-09-13 16:05:30 Beijing.
    assert_eq!(millis(field(&record, "finish_time")), 1_726_214_730_000);
    assert_eq!(
        string(field(&record, "result_certificate_no")),
        "JY16101140012345"
    );

    let (person, _) = decode("case_submitted_mobile.json");
    let applicant = field(&person, "applicant");
    assert_eq!(string(field(applicant, "cert_no")), "610921195209180039");
    assert_eq!(field(applicant, "uscc"), &Avro::Null);
    assert_eq!(symbol(field(&person, "result")), "UNKNOWN");
    assert_eq!(field(&person, "accept_time"), &Avro::Null);
}

// ---------------------------------------------------------------------------------------------------------------
// Pushing to a hub
// ---------------------------------------------------------------------------------------------------------------

/// A stand-in for the hub's `POST /ingest/{connector}`: bearer token, one object or an array, normalisation with
/// the connector definition, and the hub's answers.
struct Hub {
    definition: ConnectorDefinition,
    token: String,
    /// How many of the next requests get a 503.
    failures: AtomicUsize,
    /// Records taken (accepted or rejected), and how many requests carried a single object.
    records: Mutex<Vec<Value>>,
    single_objects: AtomicUsize,
}

async fn ingest(State(hub): State<Arc<Hub>>, headers: HeaderMap, body: Bytes) -> Response {
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        == Some(hub.token.as_str());
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error_code": "unauthorized", "message": "a valid connector token is required"})),
        )
            .into_response();
    }
    if hub
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error_code": "unavailable", "message": "retry later"})),
        )
            .into_response();
    }
    let items = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        Ok(one) => {
            hub.single_objects.fetch_add(1, Ordering::SeqCst);
            vec![one]
        }
        Err(_) => return (StatusCode::BAD_REQUEST, "not JSON").into_response(),
    };
    let mut results = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for (index, item) in items.iter().enumerate() {
        match normalise(&hub.definition, item).0 {
            Ok(n) => {
                accepted += 1;
                results.push(json!({"index": index, "status": "accepted", "record_id": n.record_id, "schema": n.schema.name()}));
            }
            Err(reason) => {
                rejected += 1;
                results.push(json!({"index": index, "status": "rejected", "error": reason}));
            }
        }
    }
    hub.records.lock().expect("not poisoned").extend(items);
    let status = match (accepted, rejected) {
        (_, 0) => StatusCode::OK,
        (0, _) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::MULTI_STATUS,
    };
    (
        status,
        Json(json!({"accepted": accepted, "rejected": rejected, "results": results})),
    )
        .into_response()
}

async fn start_hub(
    token: &str,
    failures: usize,
) -> (Arc<Hub>, String, Shutdown, tokio::task::JoinHandle<()>) {
    let hub = Arc::new(Hub {
        definition: definition(),
        token: token.to_owned(),
        failures: AtomicUsize::new(failures),
        records: Mutex::new(Vec::new()),
        single_objects: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/ingest/qinwuyuan", post(ingest))
        .with_state(hub.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!(
        "http://{}/ingest/qinwuyuan",
        listener.local_addr().expect("an address")
    );
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serves");
    });
    (hub, url, Shutdown::never(), server)
}

#[tokio::test]
async fn the_simulator_pushes_batches_retries_a_503_and_counts_the_answers() {
    let (hub, url, shutdown, server) = start_hub("tok-qwy-3c9e", 1).await;
    let options = QinwuyuanOptions {
        url,
        token: "tok-qwy-3c9e".into(),
        rate: 4_000.0,
        malformed_share: 0.2,
        seed: 5,
        limit: Some(200),
        batch_size: 7,
        start: Some(start()),
        ..QinwuyuanOptions::default()
    };
    let stats = qinwuyuan::run(options.clone(), shutdown)
        .await
        .expect("runs");
    assert_eq!(stats.sent, 200);
    assert_eq!(stats.accepted + stats.rejected, 200);
    assert!(stats.malformed_sent > 10, "{stats:?}");
    assert_eq!(stats.rejected, stats.malformed_sent, "{stats:?}");
    assert_eq!(stats.unexpected, 0, "{stats:?}");
    assert_eq!(stats.retries, 1, "one 503, retried");
    // 200 records in batches of 7: 29 requests, plus the retry.
    assert_eq!(stats.requests, 30);
    let pushed = hub.records.lock().expect("not poisoned").clone();
    let generated: Vec<Value> = generate(&options, start(), 200)
        .into_iter()
        .map(|r| r.record)
        .collect();
    assert_eq!(
        pushed, generated,
        "the hub got exactly the generated records, in order, once"
    );
    assert_eq!(hub.single_objects.load(Ordering::SeqCst), 0);
    server.abort();
}

#[tokio::test]
async fn one_record_per_request_is_sent_as_an_object() {
    let (hub, url, shutdown, server) = start_hub("tok-single", 0).await;
    let options = QinwuyuanOptions {
        url,
        token: "tok-single".into(),
        rate: 2_000.0,
        malformed_share: 0.0,
        limit: Some(12),
        batch_size: 1,
        start: Some(start()),
        ..QinwuyuanOptions::default()
    };
    let stats = qinwuyuan::run(options, shutdown).await.expect("runs");
    assert_eq!(
        (stats.sent, stats.accepted, stats.rejected, stats.requests),
        (12, 12, 0, 12)
    );
    assert_eq!(hub.single_objects.load(Ordering::SeqCst), 12);
    server.abort();
}

#[tokio::test]
async fn a_wrong_token_stops_the_simulator_without_retrying() {
    let (hub, url, shutdown, server) = start_hub("the-right-token", 0).await;
    let options = QinwuyuanOptions {
        url,
        token: "a-wrong-token".into(),
        rate: 1_000.0,
        limit: Some(5),
        start: Some(start()),
        ..QinwuyuanOptions::default()
    };
    match qinwuyuan::run(options, shutdown).await {
        Err(Error::Refused { status, message }) => {
            assert_eq!(status, 401);
            assert!(!message.contains("a-wrong-token"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(hub.records.lock().expect("not poisoned").is_empty());
    server.abort();
}

#[tokio::test]
async fn a_hub_that_keeps_failing_makes_the_simulator_give_up_after_its_retries() {
    let (_hub, url, shutdown, server) = start_hub("tok", usize::MAX).await;
    let options = QinwuyuanOptions {
        url,
        token: "tok".into(),
        rate: 1_000.0,
        limit: Some(5),
        max_retries: 2,
        start: Some(start()),
        ..QinwuyuanOptions::default()
    };
    match qinwuyuan::run(options, shutdown).await {
        Err(Error::GaveUp { attempts, last }) => {
            assert_eq!(attempts, 3);
            assert!(last.contains("503"), "{last}");
        }
        other => panic!("expected to give up, got {other:?}"),
    }
    server.abort();
}

#[tokio::test]
async fn shutdown_stops_the_simulator_with_what_it_did() {
    let (hub, url, _, server) = start_hub("tok", 0).await;
    let options = QinwuyuanOptions {
        url,
        token: "tok".into(),
        rate: 50.0,
        limit: None,
        start: Some(start()),
        ..QinwuyuanOptions::default()
    };
    let (trigger, shutdown) = Shutdown::new();
    let run = tokio::spawn(qinwuyuan::run(options, shutdown));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while hub.records.lock().expect("not poisoned").len() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "no pushes arrived");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    trigger.trigger();
    let stats = run.await.expect("joins").expect("stops cleanly");
    assert!(stats.sent >= 5);
    // A request cut short by the shutdown may still have reached the hub.
    let got = hub.records.lock().expect("not poisoned").len() as u64;
    assert!(
        got == stats.sent || got == stats.sent + 1,
        "{got} at the hub, {stats:?}"
    );
    server.abort();
}
