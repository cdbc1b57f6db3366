//! End-to-end: a whole hub (bus + registry + HTTP) over real sockets on 127.0.0.1, on the embedded bus and on
//! a real Kafka-protocol broker (`UNSILO_TEST_KAFKA`, started by tests/run.sh; these tests fail without it).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use unsilo_bus::wire;
use unsilo_bus::{ConsumerOptions, Record};
use unsilo_hub::server::Hub;
use unsilo_tests::api::{operator_client, with_grid_and_operator};
use unsilo_tests::{embedded_config, kafka_config, rand_suffix, RunningHub as Running};

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

/// Health, readiness, metrics and the shared schemas, as an operator sees them.
/// `fresh_registry`: this hub is the first on its bus, so it registered the shared schemas itself (on a shared
/// Kafka, another test's hub may have done it first).
async fn operator_surfaces(base: &str, fresh_registry: bool) {
    let client = operator_client();
    let (s, body) = get_json(&client, &format!("{base}/healthz")).await;
    assert_eq!((s, body), (200, json!({"status": "ok"})));
    let (s, body) = get_json(&client, &format!("{base}/readyz")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "ready");

    let (s, subjects) = get_json(&client, &format!("{base}/subjects")).await;
    assert_eq!(s, 200);
    for schema in unsilo_schemas::shared_schemas() {
        assert!(
            subjects
                .as_array()
                .expect("array")
                .contains(&json!(schema.subject())),
            "{} not registered: {subjects}",
            schema.subject()
        );
    }
    let (s, latest) = get_json(
        &client,
        &format!("{base}/subjects/std.grid_event-value/versions/latest"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(latest["version"], 1);
    let schema_text = latest["schema"].as_str().expect("schema text");
    assert!(
        schema_text.contains("x-sensitivity"),
        "custom attributes must survive registration"
    );

    let (s, err) = get_json(&client, &format!("{base}/no/such/path")).await;
    assert_eq!(s, 404);
    assert_eq!(err["error_code"], 404);

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert!(metrics
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/openmetrics-text")));
    let text = metrics.text().await.expect("text");
    assert!(text.contains("unsilo_http_requests_total{"), "{text}");
    assert!(text.contains("route=\"/subjects\""), "{text}");
    assert!(text.contains("unsilo_build_info{"), "{text}");
    assert!(
        text.contains("# TYPE unsilo_bus_published_records counter"),
        "{text}"
    );
    if fresh_registry {
        // This hub registered the shared schemas itself, so it published them.
        assert!(
            text.contains("unsilo_bus_published_records_total{topic=\"_unsilo.schemas\"}"),
            "{text}"
        );
    }
}

/// A record framed with a registered id round-trips through the bus and decodes with the registry's schema.
async fn wire_format_round_trip(hub: &Hub) {
    let shared = unsilo_schemas::shared_schema("grid_event").expect("grid_event");
    let id = hub
        .registry
        .register(&shared.subject(), &shared.schema_string())
        .await
        .expect("register");
    let json = unsilo_schemas::example_record("grid_event").expect("example");
    let value = unsilo_schemas::json_to_avro(&json, shared.avro()).expect("convert");
    let body = apache_avro::to_avro_datum(shared.avro(), value.clone()).expect("encode");
    let framed = wire::encode(id as u32, &body);
    let topic = shared.topic();
    // A key of its own: on a shared Kafka, other tests write to the same topic.
    let key = format!("evt-{}", rand_suffix());
    hub.bus
        .publish(&topic, vec![Record::new(key.clone(), framed)])
        .await
        .expect("publish");
    let mut c = hub
        .bus
        .consumer(ConsumerOptions::replay(&topic))
        .await
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(60);
    let last = 'search: loop {
        assert!(Instant::now() < deadline, "record not read back");
        for r in c
            .poll(1_000, Duration::from_millis(300))
            .await
            .expect("poll")
        {
            if r.record.key.as_deref() == Some(key.as_bytes()) {
                break 'search r.record.value.expect("value");
            }
        }
    };
    let (read_id, avro) = wire::decode(&last).expect("wire decode");
    assert_eq!(read_id, id as u32);
    let writer = hub.registry.schema_by_id(id).expect("schema by id");
    let writer = apache_avro::Schema::parse_str(&writer).expect("parse");
    let decoded = apache_avro::from_avro_datum(&writer, &mut &avro[..], None).expect("decode");
    assert_eq!(decoded, value);
}

#[tokio::test]
async fn embedded_hub_serves_registry_health_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(&with_grid_and_operator(embedded_config(dir.path()))).await;
    operator_surfaces(&running.base, true).await;
    wire_format_round_trip(&running.hub).await;
    // The store's own state is on /metrics, read at the scrape: at least the active journal, and what was just
    // written still in memory.
    let store = store_gauges(&running.base).await;
    assert!(store["unsilo_bus_store_journals"] >= 1, "{store:?}");
    assert!(
        store["unsilo_bus_store_write_buffer_bytes"] > 0,
        "{store:?}"
    );
    assert!(
        store.contains_key("unsilo_bus_store_log_segments"),
        "{store:?}"
    );
    assert!(
        store.contains_key("unsilo_bus_store_segment_bytes"),
        "{store:?}"
    );
    // Whether the data directory's file system trims synchronously, as the mount table says.
    let discard = unsilo_bus::embedded::FileSystem::of(dir.path())
        .expect("the test machine has a mount table")
        .online_discard();
    assert_eq!(
        store["unsilo_bus_store_online_discard"],
        u64::from(discard),
        "{store:?}"
    );
    running.stop().await;

    // Restart on the same data directory: the registry comes back with the same ids.
    let running = Running::start(&with_grid_and_operator(embedded_config(dir.path()))).await;
    let client = operator_client();
    let (_, versions) = get_json(
        &client,
        &format!("{}/subjects/std.grid_event-value/versions", running.base),
    )
    .await;
    assert_eq!(versions, json!([1]), "restart must not add versions");
    running.stop().await;
}

#[tokio::test]
async fn kafka_hub_serves_registry_health_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(&with_grid_and_operator(kafka_config(dir.path()))).await;
    operator_surfaces(&running.base, false).await;
    wire_format_round_trip(&running.hub).await;
    // The broker reports its own storage: no store series here, rather than zeros.
    let store = store_gauges(&running.base).await;
    assert!(store.is_empty(), "{store:?}");
    running.stop().await;
}

/// The `unsilo_bus_store_*` series on `/metrics`, by metric name (anonymous: /metrics needs no token).
async fn store_gauges(base: &str) -> std::collections::BTreeMap<String, u64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with("unsilo_bus_store_"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let name = series.split('{').next()?.to_owned();
            Some((name, value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn two_hubs_on_one_kafka_share_the_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Running::start(&with_grid_and_operator(kafka_config(dir.path()))).await;
    let b = Running::start(&with_grid_and_operator(kafka_config(dir.path()))).await;
    let client = operator_client();
    let subject = format!("t.shared.{:016x}-value", rand_suffix());
    let schema =
        json!({"type": "record", "name": "Probe", "fields": [{"name": "n", "type": "long"}]})
            .to_string();
    let r = client
        .post(format!("{}/subjects/{subject}/versions", a.base))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&json!({ "schema": schema }))
        .send()
        .await
        .expect("register on a");
    assert_eq!(r.status().as_u16(), 200);
    let id = r.json::<Value>().await.expect("json")["id"].clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, body) = get_json(
            &client,
            &format!("{}/subjects/{subject}/versions/1", b.base),
        )
        .await;
        if s == 200 {
            assert_eq!(body["id"], id, "hub b sees another id");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hub b never saw the subject registered on hub a"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.stop().await;
    b.stop().await;
}
