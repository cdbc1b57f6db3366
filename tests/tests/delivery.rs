//! End-to-end delivery over each channel, each against a real peer on 127.0.0.1:
//!
//! - webhook: an HTTPS (rustls) receiver verifies the HMAC signature with the key the agency got at request time,
//!   sees the same idempotency key on a retry, and a record that keeps failing lands in the delivery DLQ and is
//!   delivered after `dlq replay`;
//! - SQL: upserts into the subscriber's own PostgreSQL and MariaDB tables (one test body per dialect);
//! - Kafka: from an embedded hub to the agency's own cluster (the test broker), Confluent-framed with the view
//!   schema's id; and in place on a Kafka hub, where the subscription's topic is the delivery;
//! - pull: the server-sent-event stream, resumable with `Last-Event-ID`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use unsilo_bus::wire;
use unsilo_bus::ConsumerOptions;
use unsilo_hub::config::Config;
use unsilo_hub::delivery::webhook::verify_signature;
use unsilo_tests::api::{
    grid_messages, push_grid, with_grid_and_operator, Api, OPERATOR_TOKEN, SYSTEM_TOKEN,
};
use unsilo_tests::{embedded_config, kafka_config, rand_suffix, RunningHub};

const PERSON: &str = "610921196105170316";

/// Starts a hub with an agency `agency-<sfx>` (clearance S4) and returns it, the agency's token and the suffix.
/// The subscribers' databases and broker run on this machine, so the egress policy opens loopback deliberately
/// (`[delivery] egress_allow_cidrs`), as an operator would open a government private network.
async fn hub_with_agency(mut config: Config) -> (RunningHub, Api, String, String, u64) {
    config.delivery.egress_allow_cidrs = vec!["127.0.0.0/8".into(), "::1/128".into()];
    let running = RunningHub::start(&with_grid_and_operator(config)).await;
    let api = Api::new(&running.base);
    let sfx = rand_suffix();
    let agency = format!("agency-{sfx}");
    let token = api
        .agency(&agency, "汉阴县应急管理局", "11610921016050037T", "S4")
        .await;
    (running, api, agency, token, sfx)
}

/// Requests and approves a subscription to this run's RED household; returns its id and the request's answer.
async fn subscribe_red(
    api: &Api,
    agency: &str,
    token: &str,
    name: &str,
    red_id: &str,
    channel: Value,
) -> (String, Value) {
    api.subscribe_approved(
        token,
        agency,
        json!({
                "name": name,
                "schema": "household",
                "filter": format!("household_id == \"{red_id}\""),
                "fields": [
                    { "field": "household_id", "treatment": "clear" },
                    { "field": "head_cert_no", "treatment": "pseudonymise" },
                    { "field": "head_name", "treatment": "mask" },
                    { "field": "care_level", "treatment": "clear" },
                    { "field": "member_count", "treatment": "clear" }
                ],
                "purpose": "应急救助", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00",
                "retain_days": 30,
                "channel": channel
        }),
        json!({}),
    )
    .await
}

fn red_household(sfx: u64, version: &str) -> Value {
    let (mut red, _, _) = grid_messages(sfx);
    red["gxsj"] = json!(version);
    red
}

/// What the test webhook receiver saw.
#[derive(Default)]
struct Receiver {
    /// (headers, body) of every request.
    requests: Mutex<Vec<(HeaderMap, Vec<u8>)>>,
    /// Requests answered so far.
    count: AtomicUsize,
    /// How to answer: 0 = 503 on the first request then 200, 1 = always 500, 2 = always 200.
    mode: AtomicUsize,
}

async fn https_receiver(dir: &std::path::Path) -> (String, std::path::PathBuf, Arc<Receiver>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("certificate");
    let ca_file = dir.join("receiver-ca.pem");
    std::fs::write(&ca_file, cert.cert.pem()).expect("write ca");
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        cert.cert.pem().into_bytes(),
        cert.signing_key.serialize_pem().into_bytes(),
    )
    .await
    .expect("tls config");
    let state = Arc::new(Receiver::default());
    let seen = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let n = seen.count.fetch_add(1, Ordering::SeqCst);
                seen.requests.lock().unwrap().push((headers, body.to_vec()));
                match seen.mode.load(Ordering::SeqCst) {
                    0 if n == 0 => StatusCode::SERVICE_UNAVAILABLE,
                    1 => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::OK,
                }
            }
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let server = axum_server::from_tcp_rustls(listener, tls).expect("server");
    tokio::spawn(async move {
        let _ = server.serve(app.into_make_service()).await;
    });
    (format!("https://127.0.0.1:{port}/hook"), ca_file, state)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivers_signed_records_retries_and_replays_its_dlq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, ca_file, receiver) = https_receiver(dir.path()).await;
    let mut config = embedded_config(dir.path());
    config.delivery.webhook_ca_file = Some(ca_file);
    config.delivery.webhook_max_attempts = 2;
    // The test's subscriber listens on loopback, which webhooks may not reach unless allowed.
    config.delivery.egress_allow_cidrs = vec!["127.0.0.0/8".into()];
    let (running, api, agency, token, sfx) = hub_with_agency(config).await;
    let (red, _, _) = grid_messages(sfx);
    let red_id = red["hhbh"].as_str().unwrap().to_owned();
    let (id, answer) = subscribe_red(
        &api,
        &agency,
        &token,
        "hook",
        &red_id,
        json!({ "kind": "webhook", "url": url }),
    )
    .await;
    let key =
        hex::decode(answer["webhook_signing_key"].as_str().expect("signing key")).expect("hex key");
    let (s, shown) = api.get(&token, &format!("/admin/subscriptions/{id}")).await;
    assert_eq!(s, 200);
    assert!(
        !shown.to_string().contains(&hex::encode(&key)),
        "the signing key is shown only once"
    );

    // First delivery: a 503, then delivered on the retry with the same idempotency key.
    push_grid(&running.base, &[&red_household(sfx, "20240709110230")]).await;
    wait_for("the retried webhook delivery", || {
        receiver.count.load(Ordering::SeqCst) >= 2
    })
    .await;
    {
        let requests = receiver.requests.lock().unwrap();
        let keys: Vec<&str> = requests
            .iter()
            .map(|(h, _)| h["idempotency-key"].to_str().unwrap())
            .collect();
        assert_eq!(keys[0], keys[1], "a retry carries the same idempotency key");
        let (headers, body) = &requests[1];
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(verify_signature(
            &key,
            headers["x-unsilo-timestamp"].to_str().unwrap(),
            headers["x-unsilo-signature"].to_str().unwrap(),
            body,
            now,
            300
        ));
        assert!(!verify_signature(
            &key,
            headers["x-unsilo-timestamp"].to_str().unwrap(),
            headers["x-unsilo-signature"].to_str().unwrap(),
            b"{}",
            now,
            300
        ));
        let delivered: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(delivered["subscription"], json!(id));
        assert_eq!(delivered["record"]["care_level"], "RED");
        assert_eq!(delivered["record"]["head_name"], "陈**");
        assert!(!String::from_utf8_lossy(body).contains(PERSON));
    }

    // A record the endpoint keeps refusing goes to the delivery DLQ after the configured attempts …
    receiver.mode.store(1, Ordering::SeqCst);
    push_grid(&running.base, &[&red_household(sfx, "20240710110230")]).await;
    let dlq = format!("dlq.sub.{agency}.hook");
    let bus = running.hub.bus.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut consumer = bus
        .consumer(ConsumerOptions::replay(&dlq))
        .await
        .expect("dlq consumer");
    let dead = loop {
        let batch = consumer
            .poll(10, Duration::from_millis(300))
            .await
            .expect("poll");
        if let Some(r) = batch.into_iter().next() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "nothing reached the delivery DLQ"
        );
    };
    let reason = String::from_utf8_lossy(dead.record.header("unsilo.reason").unwrap()).into_owned();
    assert!(reason.contains("500"), "{reason}");
    assert!(receiver.count.load(Ordering::SeqCst) >= 4);

    // … and is delivered once the endpoint is back and the DLQ is replayed.
    receiver.mode.store(2, Ordering::SeqCst);
    let before = receiver.count.load(Ordering::SeqCst);
    let (s, body) = api
        .post(
            SYSTEM_TOKEN,
            &format!("/admin/subscriptions/{id}/dlq/replay"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["replayed"], 1);
    wait_for("the replayed delivery", || {
        receiver.count.load(Ordering::SeqCst) > before
    })
    .await;
    let last_body = receiver.requests.lock().unwrap().last().unwrap().1.clone();
    let replayed: Value = serde_json::from_slice(&last_body).unwrap();
    assert_eq!(
        replayed["record_id"],
        json!(String::from_utf8_lossy(
            dead.record.header("unsilo.record_id").unwrap()
        ))
    );
    running.stop().await;
}

/// The SQL channel: the RED household is upserted into the subscriber's table, twice without duplicating.
async fn sql_channel_upserts_into_the_subscribers_table(url: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, api, agency, token, sfx) = hub_with_agency(embedded_config(dir.path())).await;
    let (red, _, _) = grid_messages(sfx);
    let red_id = red["hhbh"].as_str().unwrap().to_owned();
    let table = format!("red_households_{sfx}");
    subscribe_red(
        &api,
        &agency,
        &token,
        "sql",
        &red_id,
        json!({ "kind": "sql", "url": url, "table": table }),
    )
    .await;
    push_grid(&running.base, &[&red_household(sfx, "20240709110230")]).await;
    push_grid(&running.base, &[&red_household(sfx, "20240709110230")]).await;
    push_grid(&running.base, &[&red_household(sfx, "20240710110230")]).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows: Vec<(String, String, i64)> = if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(url).await.expect("pg");
            let rows = sqlx::query_as(&format!(
                "SELECT record_id, care_level, member_count FROM \"{table}\" ORDER BY record_id"
            ))
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
            pool.close().await;
            rows
        } else {
            let pool = sqlx::MySqlPool::connect(url).await.expect("mysql");
            let rows: Vec<(Vec<u8>, String, i64)> = sqlx::query_as(&format!(
                "SELECT record_id, care_level, member_count FROM `{table}` ORDER BY record_id"
            ))
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
            pool.close().await;
            rows.into_iter()
                .map(|(id, c, m)| (String::from_utf8_lossy(&id).into_owned(), c, m))
                .collect()
        };
        if rows.len() >= 2 {
            assert_eq!(
                rows.len(),
                2,
                "one row per record id (two versions): {rows:?}"
            );
            assert!(
                rows.iter()
                    .all(|(_, care, members)| care == "RED" && *members == 4),
                "{rows:?}"
            );
            // Data life: every row says until when the subscriber may keep it (30 days from now, give or take).
            let quoted = if url.starts_with("postgres") {
                format!("\"{table}\"")
            } else {
                format!("`{table}`")
            };
            let query = format!(
                "SELECT COUNT(*) FROM {quoted} WHERE retain_until > NOW() + INTERVAL '29' DAY AND retain_until < NOW() + INTERVAL '31' DAY"
            );
            let kept: i64 = if url.starts_with("postgres") {
                let pool = sqlx::PgPool::connect(url).await.expect("pg");
                let n = sqlx::query_scalar(&query)
                    .fetch_one(&pool)
                    .await
                    .expect("retain_until");
                pool.close().await;
                n
            } else {
                let pool = sqlx::MySqlPool::connect(url).await.expect("mysql");
                let n = sqlx::query_scalar(&query)
                    .fetch_one(&pool)
                    .await
                    .expect("retain_until");
                pool.close().await;
                n
            };
            assert_eq!(kept, 2, "rows with retain_until 30 days on");
            break;
        }
        assert!(Instant::now() < deadline, "rows in {table}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_channel_upserts_into_postgresql() {
    sql_channel_upserts_into_the_subscribers_table("postgres://postgres@127.0.0.1:5432/test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_channel_upserts_into_mariadb() {
    sql_channel_upserts_into_the_subscribers_table("mysql://root@127.0.0.1:3306/test").await;
}

/// Reads `topic` on `bus` until a record arrives, and decodes it with the view schema from the hub's registry.
async fn first_view_record(running: &RunningHub, bus: &dyn unsilo_bus::Bus, topic: &str) -> Value {
    let mut consumer = bus
        .consumer(ConsumerOptions::replay(topic))
        .await
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(90);
    let record = loop {
        let batch = consumer
            .poll(10, Duration::from_millis(500))
            .await
            .expect("poll");
        if let Some(r) = batch.into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "nothing on {topic}");
    };
    let (id, mut body) =
        wire::decode(record.record.value.as_deref().unwrap()).expect("Confluent frame");
    let text = running
        .hub
        .registry
        .schema_by_id(id as i32)
        .expect("view schema registered");
    let schema = apache_avro::Schema::parse_str(&text).expect("view schema parses");
    let value = apache_avro::from_avro_datum(&schema, &mut body, None)
        .expect("decodes with the view schema");
    Value::try_from(value).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_channel_copies_to_the_agencys_own_cluster() {
    let broker = std::env::var("UNSILO_TEST_KAFKA").expect(
        "UNSILO_TEST_KAFKA is not set: run the tests with tests/run.sh, which starts a broker",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, api, agency, token, sfx) = hub_with_agency(embedded_config(dir.path())).await;
    let (red, _, _) = grid_messages(sfx);
    let red_id = red["hhbh"].as_str().unwrap().to_owned();
    // A Kafka copy stays in the agency's own namespace on its cluster too.
    let topic = format!("sub.{agency}.inbox");
    subscribe_red(
        &api,
        &agency,
        &token,
        "kafka",
        &red_id,
        json!({ "kind": "kafka", "bootstrap_servers": broker, "topic": topic }),
    )
    .await;
    push_grid(&running.base, &[&red_household(sfx, "20240709110230")]).await;
    let theirs = unsilo_bus::kafka::KafkaBus::connect(unsilo_bus::kafka::KafkaOptions::new(broker))
        .await
        .expect("agency cluster");
    let record = first_view_record(&running, &theirs, &topic).await;
    assert_eq!(record["care_level"], "RED");
    assert_eq!(record["household_id"], json!(red_id));
    assert!(!record.to_string().contains(PERSON));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_kafka_hub_the_subscription_topic_is_the_delivery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, api, agency, token, sfx) = hub_with_agency(kafka_config(dir.path())).await;
    let (red, _, _) = grid_messages(sfx);
    let red_id = red["hhbh"].as_str().unwrap().to_owned();
    subscribe_red(
        &api,
        &agency,
        &token,
        "inplace",
        &red_id,
        json!({ "kind": "kafka" }),
    )
    .await;
    push_grid(&running.base, &[&red_household(sfx, "20240709110230")]).await;
    let bus = running.hub.bus.clone();
    let record = first_view_record(&running, bus.as_ref(), &format!("sub.{agency}.inplace")).await;
    assert_eq!(record["household_id"], json!(red_id));
    assert_eq!(record["head_name"], "陈**");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_events_stream_and_resume_with_last_event_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, api, agency, token, sfx) = hub_with_agency(embedded_config(dir.path())).await;
    let (red, _, _) = grid_messages(sfx);
    let red_id = red["hhbh"].as_str().unwrap().to_owned();
    let (id, _) = subscribe_red(
        &api,
        &agency,
        &token,
        "stream",
        &red_id,
        json!({ "kind": "pull" }),
    )
    .await;
    push_grid(
        &running.base,
        &[
            &red_household(sfx, "20240709110230"),
            &red_household(sfx, "20240710110230"),
        ],
    )
    .await;

    let client = reqwest::Client::new();
    let read_events = |last: Option<String>, want: usize| {
        let client = client.clone();
        let url = format!("{}/v1/subscriptions/{id}/events", running.base);
        let token = token.clone();
        async move {
            let mut request = client.get(url).bearer_auth(token);
            if let Some(l) = last {
                request = request.header("last-event-id", l);
            }
            let mut response = request.send().await.expect("sse");
            assert_eq!(response.status().as_u16(), 200);
            let mut text = String::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut events: Vec<(String, Value)> = Vec::new();
            while events.len() < want {
                assert!(Instant::now() < deadline, "events: {text}");
                let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
                    .await
                    .expect("sse chunk in time")
                    .expect("chunk")
                    .expect("stream open");
                text.push_str(&String::from_utf8_lossy(&chunk));
                events = text
                    .split("\n\n")
                    .filter(|e| e.contains("event: record"))
                    .filter_map(|e| {
                        let id = e.lines().find_map(|l| l.strip_prefix("id: "))?.to_owned();
                        let data = e.lines().find_map(|l| l.strip_prefix("data: "))?;
                        Some((id, serde_json::from_str(data).ok()?))
                    })
                    .collect();
            }
            events
        }
    };
    let events = read_events(None, 2).await;
    assert_eq!(events[0].1["record"]["household_id"], json!(red_id));
    assert_ne!(events[0].1["record_id"], events[1].1["record_id"]);
    // Resuming after the first event yields the second first.
    let resumed = read_events(Some(events[0].0.clone()), 1).await;
    assert_eq!(resumed[0].1["record_id"], events[1].1["record_id"]);
    running.stop().await;
}

/// An approval whose channel cannot be prepared (the subscriber's schema does not exist yet) answers 502 and leaves
/// the subscription approved but not delivering; approving again once the subscriber has fixed it activates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_activation_can_be_retried() {
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, api, agency, token, sfx) = hub_with_agency(embedded_config(dir.path())).await;
    let schema = format!("inbox_{sfx}");
    let (s, body) = api
        .post(
            &token,
            "/admin/subscriptions",
            json!({
                "name": "late-table", "schema": "household", "filter": "true",
                "fields": [{ "field": "care_level", "treatment": "clear" }],
                "purpose": "应急救助", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00",
                "channel": { "kind": "sql", "url": url, "table": format!("{schema}.households") }
            }),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let id = format!("{agency}.late-table");
    let (s, body) = api.approve(&id, json!({})).await;
    assert_eq!(s, 502, "{body}");
    assert!(body["message"].as_str().unwrap().contains("sql"), "{body}");
    let (_, shown) = api
        .get(OPERATOR_TOKEN, &format!("/admin/subscriptions/{id}"))
        .await;
    assert_eq!(shown["status"], "approved");

    let pool = sqlx::PgPool::connect(url).await.expect("pg");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("create schema");
    let (s, body) = api.approve(&id, json!({})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "active");
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .expect("drop schema");
    running.stop().await;
}
