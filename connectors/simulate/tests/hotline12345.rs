//! The built-in `hotline12345` connector and its simulator.
//!
//! - the fixtures: every valid one normalises, every invalid one is rejected at the stage and with the code it
//!   expects;
//! - the generator: thousands of ticket versions all normalise when none is malformed and are all rejected when all
//!   are; record ids are stable for a seed;
//! - one hand-checked ticket decoded from its Avro bytes;
//! - the real `HttpPollSource`, configured with the README's block, polling the real simulator over loopback:
//!   a ticket's later states arrive as new versions, and nothing is lost or read twice across a restart with the
//!   same checkpoint store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::types::Value as Avro;
use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use tokio::net::TcpListener;
use unsilo_connectors::builtin;
use unsilo_connectors::conformance::{check_fixtures, check_resume, check_sink, read_fixtures};
use unsilo_connectors::definition::{ConnectorDefinition, NormalisedRecord};
use unsilo_connectors::sdk::{
    Accepted, BatchReport, CheckpointStore, MemoryCheckpointStore, RawInput, RecordSink,
    RejectReason, Rejected, Shutdown, SinkError, Source, SourceContext,
};
use unsilo_connectors::transport::http_poll::HttpPollConfig;
use unsilo_simulate::hotline12345::{self, generate, Hotline12345Options, Ticket};

const CONNECTOR: &str = "hotline12345";
const SOURCE_SYSTEM: &str = "hotline.12345";
const PATIENCE: Duration = Duration::from_secs(60);

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

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn every_valid_fixture_normalises_with_ticket_number_and_update_time_as_identity() {
    let d = definition();
    let valid: Vec<_> = builtin::fixtures(CONNECTOR)
        .into_iter()
        .filter(|(p, _)| p.starts_with("fixtures/valid/"))
        .collect();
    assert!(valid.len() >= 8, "{valid:?}");
    for (path, text_) in valid {
        let raw: Value = serde_json::from_str(text_).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (result, bytes) = normalise(&d, &raw);
        let n = result.unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(n.schema.name(), "hotline_ticket", "{path}");
        assert_eq!(
            n.record_id,
            unsilo_schemas::record_id(SOURCE_SYSTEM, text(&raw, "gdbh"), text(&raw, "gxsj")),
            "{path}"
        );
        assert_eq!(n.key, text(&raw, "gdbh"), "{path}");
        assert!(!bytes.is_empty(), "{path}");
    }
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
        assert!(
            bytes.is_empty(),
            "{path}: a rejected record leaves no bytes"
        );
        stages.insert(reason.stage);
    }
    assert_eq!(
        stages,
        BTreeSet::from(["contract", "mapping", "validation"]),
        "the fixtures cover every stage"
    );
}

#[tokio::test]
async fn the_fixtures_pass_the_conformance_kit() {
    let d = definition();
    let fixtures = read_fixtures(builtin::fixtures(CONNECTOR)).expect("readable fixtures");
    let report = check_fixtures(&d, &fixtures);
    report.assert_passed(CONNECTOR);
    assert!(report.checked >= 16, "{report:?}");
    let sink = CollectingSink {
        definition: definition(),
        seen: Mutex::new(Vec::new()),
    };
    check_sink(&d, &sink, &fixtures)
        .await
        .expect("the sink answers")
        .assert_passed(CONNECTOR);
}

#[test]
fn the_readme_names_every_field_of_the_contract() {
    let connector = builtin::builtin(CONNECTOR).expect("built in");
    let readme = connector.file("README.md").expect("a README");
    let names = connector
        .contract_properties(&["dispatch", "returnRequest", "extension"])
        .expect("contract");
    let documented = |name: &str| {
        readme.match_indices(name).any(|(at, _)| {
            let before = readme[..at].chars().next_back();
            let after = readme[at + name.len()..].chars().next();
            matches!(before, Some('`' | '.')) && matches!(after, Some('`' | '['))
        })
    };
    for name in names {
        assert!(documented(&name), "README does not document `{name}`");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn thousands_of_generated_versions_all_normalise_when_none_is_malformed() {
    let d = definition();
    let options = Hotline12345Options {
        malformed_share: 0.0,
        seed: 2024,
        ..Hotline12345Options::default()
    };
    let tickets = generate(&options, start(), 1_000);
    let mut statuses = BTreeSet::new();
    let (mut versions, mut returned, mut extended, mut called_back, mut redispatched) =
        (0, 0, 0, 0, 0);
    for ticket in &tickets {
        assert!(!ticket.malformed);
        for v in &ticket.versions {
            versions += 1;
            let (result, _) = normalise(&d, &v.record);
            if let Err(e) = result {
                panic!("{e:?}\n{}", v.record);
            }
            statuses.insert(text(&v.record, "gdzt").to_owned());
        }
        let last = &ticket.versions.last().expect("a version").record;
        returned += usize::from(last.get("tdjl").is_some());
        extended += usize::from(last.get("yqsq").is_some());
        called_back += usize::from(last.get("myd").is_some());
        redispatched += usize::from(
            last["pdjl"]
                .as_array()
                .is_some_and(|d| d.iter().any(|e| e["sfth"] == "1")),
        );
    }
    assert!(versions >= 5_000, "{versions} versions");
    let all: BTreeSet<String> = (1..=8).map(|s| format!("{s:02}")).collect();
    assert_eq!(statuses, all, "every status occurs");
    assert!(returned > 0 && extended > 0 && called_back > 0 && redispatched > 0);
}

#[test]
fn generated_versions_are_all_rejected_when_all_are_malformed() {
    let d = definition();
    let options = Hotline12345Options {
        malformed_share: 1.0,
        seed: 2024,
        ..Hotline12345Options::default()
    };
    let mut stages = BTreeMap::new();
    let mut versions = 0;
    for ticket in generate(&options, start(), 500) {
        assert!(ticket.malformed);
        for v in &ticket.versions {
            versions += 1;
            match normalise(&d, &v.record).0 {
                Ok(n) => panic!(
                    "a malformed version normalised as {}: {}",
                    n.record_id, v.record
                ),
                Err(reason) => *stages.entry((reason.stage, reason.code)).or_insert(0) += 1,
            }
            // The defect never touches what the poll cursor needs.
            assert!(text(&v.record, "gdbh").starts_with("GD"));
            assert_eq!(text(&v.record, "gxsj").len(), 14);
        }
    }
    assert!(versions >= 2_500, "{versions} versions");
    let kinds: BTreeSet<&str> = stages.keys().map(|(stage, _)| *stage).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["contract", "mapping", "validation"]),
        "{stages:?}"
    );
}

fn record_ids(tickets: &[Ticket]) -> Vec<String> {
    let d = definition();
    tickets
        .iter()
        .flat_map(|t| &t.versions)
        .map(|v| match normalise(&d, &v.record).0 {
            Ok(n) => n.record_id,
            Err(e) => panic!("{e:?}"),
        })
        .collect()
}

#[test]
fn record_ids_are_stable_for_a_seed() {
    let options = Hotline12345Options {
        malformed_share: 0.0,
        seed: 99,
        ..Hotline12345Options::default()
    };
    let first = record_ids(&generate(&options, start(), 300));
    let second = record_ids(&generate(&options, start(), 300));
    assert_eq!(first, second);
    let unique: BTreeSet<&String> = first.iter().collect();
    assert_eq!(unique.len(), first.len(), "every version has its own id");
    let other = record_ids(&generate(
        &Hotline12345Options {
            seed: 100,
            ..options
        },
        start(),
        300,
    ));
    assert_ne!(first, other, "another seed gives other tickets");
}

// ---------------------------------------------------------------------------------------------------------------
// One ticket, checked by hand
// ---------------------------------------------------------------------------------------------------------------

/// A field of a decoded Avro record, unwrapping unions.
fn field<'a>(value: &'a Avro, name: &str) -> &'a Avro {
    let value = match value {
        Avro::Union(_, inner) => inner.as_ref(),
        v => v,
    };
    match value {
        Avro::Record(fields) => fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| match v {
                Avro::Union(_, inner) => inner.as_ref(),
                v => v,
            })
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

fn items(value: &Avro) -> &[Avro] {
    match value {
        Avro::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn a_returned_and_redispatched_ticket_decodes_as_checked_by_hand() {
    let d = definition();
    let fixture = builtin::fixtures(CONNECTOR)
        .into_iter()
        .find(|(p, _)| p.ends_with("03_returned_and_redispatched.json"))
        .expect("the fixture")
        .1;
    let raw: Value = serde_json::from_str(fixture).expect("JSON");
    let (result, bytes) = normalise(&d, &raw);
    let n = result.expect("normalises");
    let record = apache_avro::from_avro_datum(n.schema.avro(), &mut bytes.as_slice(), None)
        .expect("decodes with the shared schema");

    let envelope = field(&record, "envelope");
    assert_eq!(string(field(envelope, "source_system")), "hotline.12345");
    assert_eq!(
        string(field(envelope, "source_record_id")),
        "GD20240910000256"
    );
    assert_eq!(string(field(envelope, "source_version")), "20240911090211");
    assert_eq!(string(field(envelope, "record_id")), n.record_id);
    assert_eq!(string(field(envelope, "region_code")), "610921101001");
    assert_eq!(
        string(field(envelope, "provider_org_code")),
        "12610000MB1A2345X5"
    );
    // 2024-09-10 10:18:22 in Beijing is 02:18:22 UTC.
    assert_eq!(millis(field(envelope, "event_time")), 1_725_934_702_000);

    assert_eq!(string(field(&record, "ticket_no")), "GD20240910000256");
    assert_eq!(symbol(field(&record, "channel")), "PHONE");
    assert_eq!(symbol(field(&record, "appeal_type")), "COMPLAINT");
    assert_eq!(string(field(&record, "caller_name")), "陈志强");
    assert_eq!(string(field(&record, "caller_phone")), "15129874410");
    assert_eq!(field(&record, "confidential"), &Avro::Boolean(true));
    assert_eq!(string(field(&record, "category_name")), "劳动保障/拖欠工资");
    assert_eq!(symbol(field(&record, "urgency")), "URGENT");
    assert_eq!(symbol(field(&record, "status")), "HANDLING");
    let location = field(&record, "location");
    assert_eq!(
        string(field(location, "address")),
        "陕西省安康市汉阴县涧池镇"
    );
    assert_eq!(field(location, "lng"), &Avro::Null);

    let assignments = items(field(&record, "assignments"));
    assert_eq!(assignments.len(), 3);
    let first = &assignments[0];
    assert_eq!(string(field(first, "unit_name")), "汉阴县涧池镇人民政府");
    assert_eq!(symbol(field(first, "role")), "LEAD");
    assert_eq!(field(first, "returned"), &Avro::Boolean(true));
    // 2024-09-10 16:30:00 Beijing.
    assert_eq!(millis(field(first, "returned_time")), 1_725_957_000_000);
    assert_eq!(
        string(field(first, "return_reason")),
        "欠薪问题属劳动保障监察职责，申请改派县人社局。"
    );
    let lead = &assignments[1];
    assert_eq!(
        string(field(lead, "unit_name")),
        "汉阴县人力资源和社会保障局"
    );
    assert_eq!(string(field(lead, "unit_org_code")), "11610921MB0C44518A");
    assert_eq!(symbol(field(lead, "role")), "LEAD");
    assert_eq!(field(lead, "returned"), &Avro::Boolean(false));
    assert_eq!(field(lead, "returned_time"), &Avro::Null);
    // 2024-09-13 18:00:00 Beijing.
    assert_eq!(millis(field(lead, "due_time")), 1_726_221_600_000);
    assert_eq!(symbol(field(&assignments[2], "role")), "ASSIST");
    assert!(items(field(&record, "extensions")).is_empty());
    assert_eq!(field(&record, "completion"), &Avro::Null);
    assert_eq!(field(&record, "callback"), &Avro::Null);
}

// ---------------------------------------------------------------------------------------------------------------
// The real HTTP poll transport against the real simulator
// ---------------------------------------------------------------------------------------------------------------

/// What the sink saw of one input.
#[derive(Clone, Debug)]
struct Seen {
    ticket_no: String,
    updated: String,
    raw: Value,
    outcome: Result<String, RejectReason>,
}

/// A sink that normalises with the connector definition, as the hub's sink does, and remembers everything.
struct CollectingSink {
    definition: ConnectorDefinition,
    seen: Mutex<Vec<Seen>>,
}

impl CollectingSink {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl RecordSink for CollectingSink {
    async fn submit(&self, batch: Vec<RawInput>) -> Result<BatchReport, SinkError> {
        let mut report = BatchReport::default();
        let mut seen = self.seen.lock().expect("not poisoned");
        for (index, input) in batch.into_iter().enumerate() {
            let mut out = Vec::new();
            let outcome = self.definition.normalise(&input, &mut out);
            let raw = input.parsed.clone().unwrap_or(Value::Null);
            match &outcome {
                Ok(n) => report.accepted.push(Accepted {
                    index,
                    record_id: n.record_id.clone(),
                    schema: n.schema.name().to_owned(),
                }),
                Err(reason) => report.rejected.push(Rejected {
                    index,
                    reason: reason.clone(),
                }),
            }
            seen.push(Seen {
                ticket_no: text(&raw, "gdbh").to_owned(),
                updated: text(&raw, "gxsj").to_owned(),
                outcome: outcome.map(|n| n.record_id),
                raw,
            });
        }
        Ok(report)
    }
}

/// The `http_poll` block of the README.
fn readme_config() -> HttpPollConfig {
    let readme = builtin::builtin(CONNECTOR)
        .expect("built in")
        .files
        .iter()
        .find(|(p, _)| *p == "README.md")
        .expect("a README")
        .1;
    let block = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|b| b.contains("records_pointer"))
        .expect("the README has an http_poll block");
    toml::from_str(block).unwrap_or_else(|e| panic!("the README's block: {e}"))
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_poll_reads_every_version_and_loses_nothing_across_a_restart() {
    const KEY: &str = "k-12345-7f3a9c";
    const TICKETS: usize = 60;
    // 200 000 simulated seconds per real second: the 60 tickets are called in within 0.3 s and live through
    // their days of dispatch, handling, completion and callback in a few seconds.
    let options = Hotline12345Options {
        rate: 200.0,
        malformed_share: 0.1,
        seed: 7,
        limit: Some(TICKETS as u64),
        time_scale: 200_000.0,
        start: Some(start()),
        api_key: Some(KEY.to_owned()),
        ..Hotline12345Options::default()
    };
    let expected = generate(&options, start(), TICKETS);
    let versions: HashMap<(String, String), Value> = expected
        .iter()
        .flat_map(|t| &t.versions)
        .map(|v| {
            (
                (
                    text(&v.record, "gdbh").to_owned(),
                    text(&v.record, "gxsj").to_owned(),
                ),
                v.record.clone(),
            )
        })
        .collect();

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    let (stop_api, api_shutdown) = Shutdown::new();
    let api = tokio::spawn(hotline12345::serve(listener, options.clone(), api_shutdown));

    let mut config = readme_config();
    config.url = format!("http://{addr}/api/workorders");
    config.headers.insert("X-Api-Key".into(), KEY.into());
    config.page_size = 25;
    config.poll_interval = Duration::from_millis(20);
    let sink = Arc::new(CollectingSink {
        definition: definition(),
        seen: Mutex::new(Vec::new()),
    });
    let checkpoints = Arc::new(MemoryCheckpointStore::default());
    let run = |shutdown: Shutdown| {
        let mut source = config.build().expect("the README's config builds");
        let ctx = SourceContext {
            connector: CONNECTOR.into(),
            sink: sink.clone(),
            checkpoints: checkpoints.clone(),
            shutdown,
        };
        tokio::spawn(async move { source.run(ctx).await })
    };

    // First run: stop it while tickets are still in the middle of their lives.
    let (stop_first, first_shutdown) = Shutdown::new();
    let first = run(first_shutdown);
    eventually("the first run to read 40 versions", || {
        sink.seen().len() >= 40
    })
    .await;
    stop_first.trigger();
    first
        .await
        .expect("joins")
        .expect("the first run ends cleanly");
    let after_first = sink.seen().len();
    assert!(
        checkpoints.load().await.expect("loads").is_some(),
        "a checkpoint was saved"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Second run, a new source with the same checkpoint store: it must go on where the first stopped.
    let (stop_second, second_shutdown) = Shutdown::new();
    let second = run(second_shutdown);
    let finals: BTreeSet<(String, String)> = expected
        .iter()
        .map(|t| {
            let last = &t.versions.last().expect("a version").record;
            (text(last, "gdbh").to_owned(), text(last, "gxsj").to_owned())
        })
        .collect();
    eventually("every ticket's final version", || {
        let got: BTreeSet<(String, String)> = sink
            .seen()
            .into_iter()
            .map(|s| (s.ticket_no, s.updated))
            .collect();
        finals.is_subset(&got)
    })
    .await;
    stop_second.trigger();
    second
        .await
        .expect("joins")
        .expect("the second run ends cleanly");
    stop_api.trigger();
    let stats = api.await.expect("joins").expect("the API ran");
    assert_eq!(stats.tickets, TICKETS as u64);

    let seen = sink.seen();
    assert!(seen.len() > after_first, "the second run read on");
    // Every input is exactly a version the simulator made, none arrives twice, and each ticket's versions
    // arrive in order.
    let mut by_ticket: BTreeMap<String, Vec<&Seen>> = BTreeMap::new();
    let mut distinct = BTreeSet::new();
    for s in &seen {
        let key = (s.ticket_no.clone(), s.updated.clone());
        assert_eq!(
            versions.get(&key),
            Some(&s.raw),
            "{key:?} is a version the API served"
        );
        assert!(distinct.insert(key.clone()), "{key:?} arrived twice");
        by_ticket.entry(s.ticket_no.clone()).or_default().push(s);
    }
    assert_eq!(by_ticket.len(), TICKETS, "every ticket arrived");
    for (ticket_no, arrivals) in &by_ticket {
        let times: Vec<&str> = arrivals.iter().map(|s| s.updated.as_str()).collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "{ticket_no}: {times:?}"
        );
    }
    // Later states arrive as new versions with their own record ids.
    let tracked = by_ticket
        .values()
        .filter(|a| a.len() >= 2 && a.iter().all(|s| s.outcome.is_ok()))
        .max_by_key(|a| a.len())
        .expect("some valid ticket arrived in several versions");
    let ids: BTreeSet<&String> = tracked
        .iter()
        .filter_map(|s| s.outcome.as_ref().ok())
        .collect();
    assert_eq!(ids.len(), tracked.len());
    for s in tracked {
        assert_eq!(
            s.outcome.as_ref().ok(),
            Some(&unsilo_schemas::record_id(
                SOURCE_SYSTEM,
                &s.ticket_no,
                &s.updated
            ))
        );
    }
    // Malformed tickets went to the dead-letter path, the others were accepted.
    for ticket in &expected {
        for s in &by_ticket[&ticket.ticket_no] {
            assert_eq!(
                s.outcome.is_err(),
                ticket.malformed,
                "{}: {:?}",
                s.ticket_no,
                s.outcome
            );
        }
    }
    assert!(expected.iter().any(|t| t.malformed) && expected.iter().any(|t| !t.malformed));
}

#[tokio::test]
async fn the_api_wants_its_key_and_a_well_formed_cursor() {
    let options = Hotline12345Options {
        api_key: Some("right-key".into()),
        start: Some(start()),
        ..Hotline12345Options::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    let (stop, shutdown) = Shutdown::new();
    let api = tokio::spawn(hotline12345::serve(listener, options, shutdown));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/workorders");
    let status = |r: reqwest::Response| r.status().as_u16();
    let without = client.get(&url).send().await.expect("answers");
    assert_eq!(status(without), 401);
    let wrong = client
        .get(&url)
        .header("X-Api-Key", "wrong")
        .send()
        .await
        .expect("answers");
    assert_eq!(status(wrong), 401);
    let bad_since = client
        .get(format!("{url}?updatedSince=2024-09-14"))
        .header("X-Api-Key", "right-key")
        .send()
        .await
        .expect("answers");
    assert_eq!(status(bad_since), 400);
    let ok = client
        .get(format!("{url}?updatedSince=20240914080000&pageSize=10"))
        .header("X-Api-Key", "right-key")
        .send()
        .await
        .expect("answers");
    assert_eq!(ok.status().as_u16(), 200);
    let body: Value = ok.json().await.expect("JSON");
    assert_eq!(body["code"], 0);
    assert!(body["data"]["items"].is_array());
    stop.trigger();
    let stats = api.await.expect("joins").expect("ran");
    assert_eq!(stats.requests, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_kit_resume_check_passes_against_the_simulator() {
    const TICKETS: usize = 40;
    let options = Hotline12345Options {
        rate: 200.0,
        malformed_share: 0.1,
        seed: 11,
        limit: Some(TICKETS as u64),
        time_scale: 200_000.0,
        start: Some(start()),
        ..Hotline12345Options::default()
    };
    // Every valid ticket's final version must arrive, though the first run's sink fails.
    let expected: BTreeSet<String> = generate(&options, start(), TICKETS)
        .iter()
        .filter(|t| !t.malformed)
        .map(|t| {
            let last = &t.versions.last().expect("a version").record;
            unsilo_schemas::record_id(SOURCE_SYSTEM, text(last, "gdbh"), text(last, "gxsj"))
        })
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    let (stop_api, api_shutdown) = Shutdown::new();
    let api = tokio::spawn(hotline12345::serve(listener, options, api_shutdown));
    let mut config = readme_config();
    config.url = format!("http://{addr}/api/workorders");
    config.headers.clear();
    config.page_size = 10;
    config.poll_interval = Duration::from_millis(20);
    let make_source = move || -> Box<dyn Source> {
        Box::new(config.build().expect("the README's config builds"))
    };
    let sink = Arc::new(CollectingSink {
        definition: definition(),
        seen: Mutex::new(Vec::new()),
    });
    let report = check_resume(
        CONNECTOR,
        &make_source,
        sink,
        Arc::new(MemoryCheckpointStore::default()),
        &expected,
        PATIENCE,
    )
    .await;
    report.assert_passed(CONNECTOR);
    stop_api.trigger();
    api.await.expect("joins").expect("the API ran");
}
