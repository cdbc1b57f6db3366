//! End-to-end ingest: source systems push to a whole hub over real HTTP on 127.0.0.1, and what they sent ends
//! up normalised on `std.<schema>` (Confluent wire format, decodable with the registered schema), as originals on
//! `raw.<connector>`, and — when bad — on `dlq.<connector>` with the original bytes and a machine-readable reason.
//! Every built-in connector also passes the conformance kit through the real bus sink.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use unsilo_bus::wire;
use unsilo_bus::{Bus, ConsumedRecord, ConsumerOptions};
use unsilo_connectors::conformance::{self, Fixture};
use unsilo_connectors::sdk::RecordSink as _;
use unsilo_hub::auth::token_digest;
use unsilo_hub::config::{Config, ConnectorConfig, HttpPushConfig, TransportKind};
use unsilo_hub::ingest::BusSink;
use unsilo_hub::server::Hub;
use unsilo_tests::{embedded_config as embedded, kafka_config, rand_suffix, RunningHub as Running};

const TOKEN: &str = "grid-platform-token-7f3a";

/// Each connector's own push token (a credential names one principal).
fn token_of(connector: &str) -> String {
    format!("{TOKEN}-{connector}")
}

fn push_connector(name: &str) -> ConnectorConfig {
    ConnectorConfig {
        name: name.into(),
        definition: format!("builtin:{name}"),
        transport: TransportKind::HttpPush,
        http_push: Some(HttpPushConfig {
            token_sha256: token_digest(&token_of(name)),
            // The 秦务员 platform answers citizens asking who received their data.
            report: name == "qinwuyuan",
        }),
        http_poll: None,
        sql_poll: None,
        file_drop: None,
        kafka_topic: None,
        provider: None,
        provider_schemas: None,
    }
}

fn config_with(bus: Config, connectors: &[&str]) -> Config {
    let mut c = bus;
    c.connectors = connectors.iter().map(|n| push_connector(n)).collect();
    c
}

fn fixtures(name: &str) -> Vec<Fixture> {
    conformance::read_fixtures(unsilo_connectors::builtin::fixtures(name)).expect("fixtures")
}

/// Reads `topic` from the start until `want` records arrived.
async fn read_topic(bus: &dyn Bus, topic: &str, want: usize) -> Vec<ConsumedRecord> {
    let mut c = bus
        .consumer(ConsumerOptions::replay(topic))
        .await
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            Instant::now() < deadline,
            "{topic}: {} of {want} records",
            got.len()
        );
        got.extend(
            c.poll(1_000, Duration::from_millis(300))
                .await
                .expect("poll"),
        );
    }
    got
}

/// The whole push path for one connector: fixtures POSTed as one batch over HTTP.
async fn push_fixtures_and_check_topics(running: &Running, connector: &str) {
    let client = reqwest::Client::new();
    let fx = fixtures(connector);
    let json_fixtures: Vec<&Fixture> = fx.iter().filter(|f| f.input.parsed.is_ok()).collect();
    let body: Vec<Value> = json_fixtures
        .iter()
        .map(|f| f.input.parsed.clone().expect("json"))
        .collect();
    let url = format!("{}/ingest/{connector}", running.base);

    // No token, wrong token: refused, nothing stored.
    let r = client.post(&url).json(&body).send().await.expect("post");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"unsilo\"");
    let r = client
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401);
    let text = r.text().await.expect("body");
    assert!(!text.contains(TOKEN), "the answer must not echo secrets");
    // Another connector's token may not push here.
    let other = if connector == "grid" {
        "qinwuyuan"
    } else {
        "grid"
    };
    let r = client
        .post(&url)
        .bearer_auth(token_of(other))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert!(matches!(r.status().as_u16(), 401 | 403), "{}", r.status());
    // Basic <connector>:<token> is the same credential as Bearer <token>.
    let r = client
        .post(&url)
        .basic_auth(connector, Some("wrong"))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401);

    let r = client
        .post(&url)
        .bearer_auth(token_of(connector))
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    let report: Value = r.json().await.expect("json report");
    let valid = json_fixtures.iter().filter(|f| f.expect.is_none()).count();
    let invalid = json_fixtures.len() - valid;
    assert_eq!(report["accepted"], valid, "{report}");
    assert_eq!(report["rejected"], invalid, "{report}");
    assert_eq!(status, if invalid == 0 { 200 } else { 207 }, "{report}");
    let results = report["results"].as_array().expect("results");
    for (i, f) in json_fixtures.iter().enumerate() {
        let r = &results[i];
        assert_eq!(r["index"], i);
        match &f.expect {
            None => assert_eq!(r["status"], "accepted", "{}: {r}", f.name),
            Some(want) => {
                assert_eq!(r["status"], "rejected", "{}: {r}", f.name);
                assert_eq!(r["error"]["stage"], want.stage.as_str(), "{}: {r}", f.name);
            }
        }
    }

    // std.<schema>: wire format with a registered id, decodable, carrying the record id header.
    let accepted: Vec<&Value> = results
        .iter()
        .filter(|r| r["status"] == "accepted")
        .collect();
    let mut per_schema: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in &accepted {
        per_schema
            .entry(a["schema"].as_str().expect("schema").to_owned())
            .or_default()
            .insert(a["record_id"].as_str().expect("id").to_owned());
    }
    for (schema, ids) in &per_schema {
        let shared = unsilo_schemas::shared_schema(schema).expect("shared schema");
        let mut consumer = running
            .hub
            .bus
            .consumer(ConsumerOptions::replay(&shared.topic()))
            .await
            .expect("consumer");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = BTreeSet::new();
        while &seen != ids {
            assert!(
                Instant::now() < deadline,
                "{schema}: only {} of {} accepted records are on {}",
                seen.len(),
                ids.len(),
                shared.topic()
            );
            for c in consumer
                .poll(1_000, Duration::from_millis(300))
                .await
                .expect("poll")
            {
                // Other tests share the Kafka topics; their records may lack the header or carry other ids.
                let Some(id) = c.record.header(unsilo_schemas::names::HEADER_RECORD_ID) else {
                    continue;
                };
                let id = String::from_utf8(id.to_vec()).expect("utf8");
                if !ids.contains(&id) {
                    continue; // another test's record on a shared Kafka topic
                }
                let value = c.record.value.as_ref().expect("value");
                let (schema_id, body) = wire::decode(value).expect("wire format");
                let writer = running
                    .hub
                    .registry
                    .schema_by_id(schema_id as i32)
                    .expect("registered id");
                let writer = apache_avro::Schema::parse_str(&writer).expect("parse");
                let decoded =
                    apache_avro::from_avro_datum(&writer, &mut &body[..], None).expect("decodes");
                let apache_avro::types::Value::Record(fields) = decoded else {
                    panic!("not a record");
                };
                let envelope = &fields
                    .iter()
                    .find(|(n, _)| n == "envelope")
                    .expect("envelope")
                    .1;
                let apache_avro::types::Value::Record(env) = envelope else {
                    panic!("envelope not a record");
                };
                let record_id = env
                    .iter()
                    .find(|(n, _)| n == "record_id")
                    .expect("record_id");
                assert_eq!(record_id.1, apache_avro::types::Value::String(id.clone()));
                seen.insert(id);
            }
        }
    }

    // dlq.<connector>: the original bytes, and the reason as JSON.
    if invalid > 0 {
        let got = read_topic(
            &*running.hub.bus,
            &unsilo_schemas::names::dlq_topic(connector),
            invalid,
        )
        .await;
        let originals: BTreeSet<Vec<u8>> =
            got.iter().filter_map(|c| c.record.value.clone()).collect();
        for f in json_fixtures.iter().filter(|f| f.expect.is_some()) {
            let original =
                serde_json::to_vec(f.input.parsed.as_ref().expect("json")).expect("bytes");
            assert!(
                originals.contains(&original),
                "{} is not on the DLQ",
                f.name
            );
        }
        for c in &got {
            let reason: Value = serde_json::from_slice(
                c.record
                    .header(unsilo_schemas::names::HEADER_REASON)
                    .expect("reason header"),
            )
            .expect("reason is JSON");
            assert!(
                reason["stage"].is_string() && reason["code"].is_string(),
                "{reason}"
            );
        }
    }
    // raw.<connector>: the originals of the accepted records.
    let raw = read_topic(
        &*running.hub.bus,
        &unsilo_schemas::names::raw_topic(connector),
        valid,
    )
    .await;
    assert!(raw.len() >= valid);

    // A body that is not JSON: 400, and kept on the DLQ (found by its bytes: end offsets are not exact on
    // Tansu, see bus::testkit).
    let garbage = format!("{{not json at all {}", rand_suffix());
    let r = client
        .post(&url)
        .basic_auth(connector, Some(token_of(connector)))
        .body(garbage.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("dead-letter"),
        "{body}"
    );
    let mut consumer = running
        .hub
        .bus
        .consumer(ConsumerOptions::replay(&unsilo_schemas::names::dlq_topic(
            connector,
        )))
        .await
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(60);
    'search: loop {
        assert!(
            Instant::now() < deadline,
            "the unreadable body is not on the DLQ"
        );
        for c in consumer
            .poll(1_000, Duration::from_millis(300))
            .await
            .expect("poll")
        {
            if c.record.value.as_deref() == Some(garbage.as_bytes()) {
                let reason: Value = serde_json::from_slice(
                    c.record
                        .header(unsilo_schemas::names::HEADER_REASON)
                        .expect("reason"),
                )
                .expect("json reason");
                assert_eq!(reason["stage"], "parse", "{reason}");
                break 'search;
            }
        }
    }
}

#[tokio::test]
async fn pushed_records_are_normalised_kept_and_rejected_on_the_embedded_bus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(&config_with(embedded(dir.path()), &["grid", "qinwuyuan"])).await;
    push_fixtures_and_check_topics(&running, "grid").await;
    push_fixtures_and_check_topics(&running, "qinwuyuan").await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/ingest/no-such-connector", running.base))
        .bearer_auth(token_of("grid"))
        .json(&json!({}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 404);
    running.stop().await;
}

/// NDJSON with a line that is not JSON: the good lines are accepted, the bad one is rejected at the `parse` stage
/// by its index and kept on the dead-letter topic byte for byte; a body that is not JSON at all is a 400 and is
/// kept there too.
#[tokio::test]
async fn json_lines_with_a_broken_line_and_an_unreadable_body_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(&config_with(embedded(dir.path()), &["grid"])).await;
    let valid: Vec<Value> = fixtures("grid")
        .into_iter()
        .filter(|f| f.expect.is_none())
        .filter_map(|f| f.input.parsed.ok())
        .take(2)
        .collect();
    assert_eq!(valid.len(), 2, "two valid grid fixtures");
    let broken = "{\"msgType\": \"EVENT\", \"sjbh\": 网格";
    let body = format!(
        "{}\r\n\n{broken}\n{}\n",
        serde_json::to_string(&valid[0]).expect("json"),
        serde_json::to_string(&valid[1]).expect("json")
    );
    let client = reqwest::Client::new();
    let url = format!("{}/ingest/grid", running.base);
    let r = client
        .post(&url)
        .bearer_auth(token_of("grid"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 207);
    let report: Value = r.json().await.expect("report");
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(report["rejected"], 1, "{report}");
    let results = report["results"].as_array().expect("results");
    assert_eq!(
        results
            .iter()
            .map(|r| r["index"].as_u64().unwrap_or(99))
            .collect::<Vec<_>>(),
        [0, 1, 2],
        "{report}"
    );
    assert_eq!(results[1]["status"], "rejected", "{report}");
    assert_eq!(results[1]["error"]["stage"], "parse", "{report}");
    assert!(
        results[1]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not valid JSON")),
        "{report}"
    );
    assert_eq!(results[0]["status"], "accepted", "{report}");
    assert_eq!(results[2]["status"], "accepted", "{report}");

    let r = client
        .post(&url)
        .bearer_auth(token_of("grid"))
        .header("content-type", "application/json")
        .body("{not json at all")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);
    let answer: Value = r.json().await.expect("error body");
    assert_eq!(answer["error_code"], "unreadable_body", "{answer}");

    let dlq = read_topic(
        running.hub.bus.as_ref(),
        &unsilo_schemas::names::dlq_topic("grid"),
        2,
    )
    .await;
    let kept: Vec<&[u8]> = dlq
        .iter()
        .filter_map(|c| c.record.value.as_deref())
        .collect();
    assert!(
        kept.contains(&broken.as_bytes()),
        "the broken line, byte for byte"
    );
    assert!(
        kept.contains(&b"{not json at all".as_slice()),
        "the unreadable body"
    );
    let origins: Vec<String> = dlq
        .iter()
        .filter_map(|c| c.record.header(unsilo_schemas::names::HEADER_ORIGIN))
        .map(|o| String::from_utf8_lossy(o).into_owned())
        .collect();
    assert!(
        origins.iter().any(|o| o == "POST /ingest/grid line 3"),
        "{origins:?}"
    );
    running.stop().await;
}

#[tokio::test]
async fn pushed_records_are_normalised_kept_and_rejected_on_kafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(&config_with(kafka_config(dir.path()), &["grid"])).await;
    push_fixtures_and_check_topics(&running, "grid").await;
    running.stop().await;
}

#[tokio::test]
async fn every_builtin_connector_passes_conformance_through_the_bus_sink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(&embedded(dir.path())).await.expect("hub");
    for name in unsilo_connectors::builtin::names() {
        let definition = Arc::new(
            unsilo_hub::ingest::load_definition(&format!("builtin:{name}")).expect("definition"),
        );
        let fx = fixtures(name);
        conformance::check_fixtures(&definition, &fx).assert_passed(name);
        let sink = BusSink::open(
            name,
            definition.clone(),
            hub.bus.clone(),
            &hub.registry,
            &unsilo_hub::config::TopicPlan::with_partitions(2),
        )
        .await
        .expect("sink");
        conformance::check_sink(&definition, &sink, &fx)
            .await
            .expect("sink works")
            .assert_passed(name);
        let rejected = fx.iter().filter(|f| f.expect.is_some()).count();
        let on_dlq: u64 = hub
            .bus
            .end_offsets(&unsilo_schemas::names::dlq_topic(name))
            .await
            .expect("end")
            .iter()
            .sum();
        assert_eq!(
            on_dlq, rejected as u64,
            "{name}: every rejected fixture must be on the DLQ"
        );
    }
}

/// A batch sent again with new records among the old (a source retrying after a lost answer, then catching up)
/// writes only the new ones to `std.` and `raw.`, each original beside its own normalised record; rejects go to
/// the dead-letter topic every time they are sent.
#[tokio::test]
async fn a_batch_sent_again_with_new_records_writes_only_the_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(&embedded(dir.path())).await.expect("hub");
    let definition =
        Arc::new(unsilo_hub::ingest::load_definition("builtin:grid").expect("definition"));
    let sink = BusSink::open(
        "grid-again",
        definition,
        hub.bus.clone(),
        &hub.registry,
        &unsilo_hub::config::TopicPlan::with_partitions(2),
    )
    .await
    .expect("sink");
    let fx = fixtures("grid");
    let (valid, invalid): (Vec<&Fixture>, Vec<&Fixture>) =
        fx.iter().partition(|f| f.expect.is_none());
    assert!(
        valid.len() >= 6 && !invalid.is_empty(),
        "grid has too few fixtures"
    );
    let first = &valid[..valid.len() / 2];
    let inputs =
        |fixtures: &[&Fixture]| -> Vec<_> { fixtures.iter().map(|f| f.input.clone()).collect() };

    let mut once = inputs(first);
    once.push(invalid[0].input.clone());
    let report = sink.submit(once).await.expect("first batch");
    assert_eq!(
        (report.accepted.len(), report.rejected.len()),
        (first.len(), 1)
    );

    // Again, old and new records interleaved, the reject among them.
    let mut again = Vec::new();
    for (i, f) in valid.iter().enumerate() {
        again.push(f.input.clone());
        if i == 1 {
            again.push(invalid[0].input.clone());
        }
    }
    let report = sink.submit(again).await.expect("second batch");
    assert_eq!(
        (report.accepted.len(), report.rejected.len()),
        (valid.len(), 1)
    );
    let mut schemas: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in &report.accepted {
        schemas
            .entry(a.schema.clone())
            .or_default()
            .insert(a.record_id.clone());
    }

    assert!(
        schemas.len() >= 3,
        "the batch must span several shared schemas: {schemas:?}"
    );
    let count = |topic: String| {
        let bus = hub.bus.clone();
        async move {
            bus.end_offsets(&topic)
                .await
                .expect("end offsets")
                .iter()
                .sum::<u64>()
        }
    };
    let raw = read_topic(&*hub.bus, "raw.grid-again", valid.len()).await;
    assert_eq!(
        count("raw.grid-again".into()).await,
        valid.len() as u64,
        "every original once"
    );
    let raw_ids: BTreeSet<String> = raw.iter().map(|r| r.record.record_id()).collect();
    assert_eq!(raw_ids.len(), valid.len(), "no original twice");
    for (schema, ids) in &schemas {
        let topic = unsilo_schemas::names::std_topic(schema);
        assert_eq!(
            count(topic.clone()).await,
            ids.len() as u64,
            "{topic}: each record once"
        );
        let on_std = read_topic(&*hub.bus, &topic, ids.len()).await;
        let std_ids: BTreeSet<String> = on_std.iter().map(|r| r.record.record_id()).collect();
        assert_eq!(&std_ids, ids, "{topic}: the records accepted, each once");
        for r in &on_std {
            let original = raw
                .iter()
                .find(|o| o.record.record_id() == r.record.record_id())
                .expect("its original is on raw.");
            assert_eq!(
                original.record.key, r.record.key,
                "an original keyed as its record"
            );
        }
    }
    assert_eq!(
        count("dlq.grid-again".into()).await,
        2,
        "the reject each time it was sent"
    );
    hub.shutdown().await.expect("shutdown");
}

/// A polled source through the whole hub: departmental GBK exports dropped in a folder are ingested by the
/// file-drop connector the configuration names, the files move to `done/`, and after a restart of the hub the
/// checkpoint on `_unsilo.offsets` keeps them from being read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_gbk_exports_are_ingested_by_a_configured_file_drop_connector() {
    use unsilo_connectors::transport::file_drop::FileDropConfig;
    use unsilo_simulate::dept_file::{DeptFileGenerator, DeptFileOptions};

    let data = tempfile::tempdir().expect("tempdir");
    let dropbox = tempfile::tempdir().expect("dropbox");
    let mut config = embedded(data.path());
    let mut drop = FileDropConfig::new(dropbox.path());
    drop.poll_interval = Duration::from_millis(100);
    drop.settle = Duration::from_millis(100);
    config.connectors.push(ConnectorConfig {
        name: "rosters".into(),
        definition: "builtin:dept-file".into(),
        transport: TransportKind::FileDrop,
        http_push: None,
        http_poll: None,
        sql_poll: None,
        file_drop: Some(drop),
        kafka_topic: None,
        provider: None,
        provider_schemas: None,
    });

    let mut options = DeptFileOptions::new(dropbox.path());
    options.malformed_share = 0.0;
    options.corrupt_file_share = Some(0.0);
    options.xlsx_share = 0.0;
    options.rows_per_file = 25;
    let mut generator = DeptFileGenerator::new(&options).expect("generator");
    let mut names = Vec::new();
    for _ in 0..2 {
        let file = generator.next_file().expect("file");
        std::fs::write(dropbox.path().join(&file.name), &file.bytes).expect("write export");
        names.push(file.name);
    }

    let running = Running::start(&config).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !names
        .iter()
        .all(|n| dropbox.path().join("done").join(n).exists())
    {
        assert!(Instant::now() < deadline, "exports were not moved to done/");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accepted: u64 = running
        .hub
        .bus
        .end_offsets(&unsilo_schemas::names::raw_topic("rosters"))
        .await
        .expect("end")
        .iter()
        .sum();
    assert_eq!(accepted, 50, "both files' 50 rows must be accepted");
    let residents = read_topic(&*running.hub.bus, "std.resident", 50).await;
    assert_eq!(residents.len(), 50);
    let rejected: u64 = running
        .hub
        .bus
        .end_offsets(&unsilo_schemas::names::dlq_topic("rosters"))
        .await
        .expect("end")
        .iter()
        .sum();
    assert_eq!(rejected, 0);
    let metrics = reqwest::get(format!("{}/metrics", running.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .contains("unsilo_ingest_records_total{connector=\"rosters\",outcome=\"accepted\"} 50"),
        "{metrics}"
    );
    running.stop().await;

    // Restart: nothing is read twice (the files are in done/ and the checkpoint says so).
    let running = Running::start(&config).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let after: u64 = running
        .hub
        .bus
        .end_offsets(&unsilo_schemas::names::raw_topic("rosters"))
        .await
        .expect("end")
        .iter()
        .sum();
    assert_eq!(after, 50, "a restart must not ingest the files again");
    running.stop().await;
}

#[tokio::test]
async fn a_source_platform_with_the_report_permission_gets_person_reports_and_others_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(&config_with(embedded(dir.path()), &["grid", "qinwuyuan"])).await;
    let client = reqwest::Client::new();
    let ask = |connector: &str| {
        client
            .post(format!("{}/admin/reports/person", running.base))
            .json(&json!({ "cert_no": "610921196105170316" }))
            .bearer_auth(token_of(connector))
            .send()
    };
    let permitted = ask("qinwuyuan").await.expect("request");
    assert_eq!(permitted.status().as_u16(), 200);
    let report: Value = permitted.json().await.expect("json");
    assert!(report["person_key"].is_string(), "{report}");
    assert_eq!(report["releases"], json!([]), "nothing released yet");
    let refused = ask("grid").await.expect("request");
    assert_eq!(refused.status().as_u16(), 403);
    running.stop().await;
}

/// Copies a folder (a connector definition) recursively.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Records on `topic` carrying `record_id`.
async fn copies_of(bus: &dyn Bus, topic: &str, record_id: &str) -> usize {
    let ends = bus.end_offsets(topic).await.expect("end offsets");
    let total: u64 = ends.iter().sum();
    read_topic(bus, topic, total as usize)
        .await
        .iter()
        .filter(|r| r.record.record_id() == record_id)
        .count()
}

/// Source replay and re-normalisation after a code-table fix, across a hub restart with the fixed definition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dlq_replayed_after_a_mapping_fix_lands_its_records_on_std_once() {
    use unsilo_tests::api::{grid_messages, AUDITOR_TOKEN, PUSH_TOKEN, SYSTEM_TOKEN};
    let dir = tempfile::tempdir().expect("tempdir");
    let definition = dir.path().join("grid-definition");
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/builtin/grid"),
        &definition,
    );
    let mapping = definition.join("mappings/grid_event.toml");
    let fixed = std::fs::read_to_string(&mapping).expect("mapping");
    // A code-table gap: CRITICAL urgency is missing, so such events are rejected.
    let broken = fixed.replace(r#", "3" = "CRITICAL""#, "");
    assert_ne!(broken, fixed, "the gap is made");
    std::fs::write(&mapping, &broken).expect("write");
    let mut config = embedded(dir.path().join("bus").as_path());
    config.connectors.push(ConnectorConfig {
        definition: definition.display().to_string(),
        http_push: Some(HttpPushConfig {
            token_sha256: token_digest(PUSH_TOKEN),
            report: false,
        }),
        ..push_connector("grid")
    });
    config
        .admin
        .operators
        .extend(unsilo_tests::api::test_operators());
    let client = reqwest::Client::new();
    let replay = |base: String, body: Value| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{base}/admin/connectors/grid/dlq/replay"))
                .bearer_auth(SYSTEM_TOKEN)
                .json(&body)
                .send()
                .await
                .expect("replay");
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.expect("json")["replay"].clone()
        }
    };

    let running = Running::start(&config).await;
    let (_, _, mut event) = grid_messages(rand_suffix());
    event["jjcd"] = json!("3");
    let pushed = client
        .post(format!("{}/ingest/grid", running.base))
        .bearer_auth(PUSH_TOKEN)
        .json(&[&event])
        .send()
        .await
        .expect("push");
    assert_eq!(pushed.status().as_u16(), 422, "rejected by the gap");
    assert_eq!(
        read_topic(running.hub.bus.as_ref(), "dlq.grid", 1)
            .await
            .len(),
        1
    );
    // Replayed before the fix: rejected again, with the entry marked and a new dead letter.
    let outcome = replay(running.base.clone(), json!({})).await;
    assert_eq!(
        (
            outcome["taken"].as_u64(),
            outcome["accepted"].as_u64(),
            outcome["rejected"].as_u64()
        ),
        (Some(1), Some(0), Some(1)),
        "{outcome}"
    );
    running.stop().await;

    // The mapping is fixed and the hub restarted with it.
    std::fs::write(&mapping, &fixed).expect("write");
    let running = Running::start(&config).await;
    // A code filter takes only dead letters with that reason code.
    let outcome = replay(running.base.clone(), json!({ "code": "no_such_code" })).await;
    assert_eq!(outcome["taken"].as_u64(), Some(0), "{outcome}");
    let dead = read_topic(running.hub.bus.as_ref(), "dlq.grid", 2).await;
    let reason: Value =
        serde_json::from_slice(dead[1].record.header("unsilo.reason").expect("reason"))
            .expect("json");
    let outcome = replay(running.base.clone(), json!({ "code": reason["code"] })).await;
    assert_eq!(
        (
            outcome["taken"].as_u64(),
            outcome["accepted"].as_u64(),
            outcome["already_replayed"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{outcome}"
    );
    let record_id = {
        let std_records = read_topic(running.hub.bus.as_ref(), "std.grid_event", 1).await;
        std_records[0].record.record_id()
    };
    assert_eq!(
        copies_of(running.hub.bus.as_ref(), "std.grid_event", &record_id).await,
        1
    );
    assert_eq!(
        copies_of(running.hub.bus.as_ref(), "raw.grid", &record_id).await,
        1
    );

    // A second replay takes nothing: std. keeps one copy.
    let outcome = replay(running.base.clone(), json!({})).await;
    assert_eq!(outcome["taken"].as_u64(), Some(0), "{outcome}");
    assert_eq!(outcome["already_replayed"].as_u64(), Some(2), "{outcome}");
    assert_eq!(
        copies_of(running.hub.bus.as_ref(), "std.grid_event", &record_id).await,
        1
    );
    // Re-normalising raw. (after a mapping fix or a new schema version): the same record id again on std.,
    // nothing new on raw.
    let renormalised: Value = client
        .post(format!(
            "{}/admin/connectors/grid/renormalise",
            running.base
        ))
        .bearer_auth(SYSTEM_TOKEN)
        .json(&json!({ "from_ms": 0 }))
        .send()
        .await
        .expect("renormalise")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            renormalised["renormalise"]["taken"].as_u64(),
            renormalised["renormalise"]["accepted"].as_u64()
        ),
        (Some(1), Some(1)),
        "{renormalised}"
    );
    assert_eq!(
        copies_of(running.hub.bus.as_ref(), "std.grid_event", &record_id).await,
        2,
        "the same record id, for idempotent subscribers"
    );
    assert_eq!(
        copies_of(running.hub.bus.as_ref(), "raw.grid", &record_id).await,
        1
    );

    // Evidence of the replays.
    let audit: Value = client
        .get(format!("{}/admin/audit", running.base))
        .bearer_auth(AUDITOR_TOKEN)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let replays = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["event"]["action"] == "connector.dlq_replay")
        .count();
    assert!(replays >= 3, "{audit}");
    running.stop().await;
}
