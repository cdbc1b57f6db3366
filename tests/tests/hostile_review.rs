//! End-to-end: the doors a hostile review found ajar, each tried again from outside over real sockets on
//! 127.0.0.1 as the attacker did — metadata for strangers, ID numbers in URLs, free token guessing, batches
//! that exhaust memory, grants widened after the fact, pauses lifted by the wrong party, delivery targets inside
//! the hub's own network, and connections held open forever. (The forged audit entry adopted after a restart
//! and the gates that failed open are in `security.rs`, beside the other evidence and gate checks.)

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use unsilo_tests::api::{
    with_grid_and_operator, Api, AUDITOR_TOKEN, OPERATOR_TOKEN, PUSH_TOKEN, SYSTEM_TOKEN,
};
use unsilo_tests::{embedded_config, kafka_config, rand_suffix, RunningHub as Running};

const USCC_A: &str = "11610921016050037T";
const PERSON: &str = "610921196105170316";

async fn hub(
    adjust: impl FnOnce(&mut unsilo_hub::config::Config),
) -> (tempfile::TempDir, Running, Api) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = with_grid_and_operator(embedded_config(dir.path()));
    adjust(&mut config);
    let running = Running::start(&config).await;
    let api = Api::new(&running.base);
    (dir, running, api)
}

async fn text_of(r: reqwest::RequestBuilder) -> (u16, String) {
    let r = r.send().await.expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

fn household(name: &str, channel: Value) -> Value {
    json!({
        "name": name,
        "schema": "household",
        "filter": "village_code.startsWith(\"610921\")",
        "fields": [
            { "field": "care_level", "treatment": "clear" },
            { "field": "village_code", "treatment": "clear" }
        ],
        "purpose": "连心户台账", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00",
        "channel": channel
    })
}

/// The agency that owns subscription `id` (with `token`) cannot resume it; an operator can.
async fn only_an_operator_lifts_the_pause(api: &Api, token: &str, id: &str) {
    let resume = format!("/admin/subscriptions/{id}/resume");
    let (s, body) = api.post(token, &resume, json!({})).await;
    assert_eq!(s, 403, "the agency lifted a pause it did not make: {body}");
    let (s, body) = api.post(OPERATOR_TOKEN, &resume, json!({})).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn strangers_get_no_metadata_and_id_numbers_never_travel_in_urls() {
    let (_dir, running, api) = hub(|_| {}).await;
    let http = reqwest::Client::new();
    let base = &running.base;
    api.agency("civil-affairs", "民政局", USCC_A, "S3").await;

    // Anonymous /metrics: no topic, subscription or agency names; an operator sees them.
    let (s, public) = text_of(http.get(format!("{base}/metrics"))).await;
    assert_eq!(s, 200);
    for label in ["topic=\"", "subscription=\"", "agency=\""] {
        assert!(
            !public.contains(label),
            "anonymous /metrics names {label}: {public}"
        );
    }
    assert!(public.contains("unsilo_http_requests_total"), "{public}");
    let (s, full) = text_of(
        http.get(format!("{base}/metrics"))
            .bearer_auth(SYSTEM_TOKEN),
    )
    .await;
    assert_eq!(s, 200);
    assert!(full.contains("topic=\"_unsilo."), "{full}");

    // /readyz: ready or not, nothing else.
    let (s, ready) = text_of(http.get(format!("{base}/readyz"))).await;
    assert_eq!(
        (s, serde_json::from_str::<Value>(&ready).expect("json")),
        (200, json!({ "status": "ready" }))
    );

    // An ID number in a URL is refused, pointing at the POST form; in a body it is answered.
    for path in [
        format!("/admin/audit?cert_no={PERSON}"),
        format!("/admin/reports/person?cert_no={PERSON}"),
    ] {
        let (s, body) = api.get(AUDITOR_TOKEN, &path).await;
        assert_eq!(s, 422, "{path}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("POST"),
            "{body}"
        );
    }
    let (s, body) = api
        .post(
            AUDITOR_TOKEN,
            "/admin/audit/query",
            json!({ "cert_no": PERSON }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body["entries"].is_array() && body["unverified_in_log"] == 0,
        "{body}"
    );
    let (s, body) = api
        .post(
            AUDITOR_TOKEN,
            "/admin/reports/person",
            json!({ "cert_no": PERSON }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["releases"], json!([]));

    // The admin API offers Bearer only (a browser offered Basic caches credentials a cross-site form reuses),
    // and a change needs a JSON body: a form post is refused before any handler runs.
    let r = http
        .get(format!("{base}/admin/agencies"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"unsilo\"");
    let (s, _) = text_of(
        http.post(format!("{base}/admin/subscriptions/civil-affairs.x/revoke"))
            .bearer_auth(OPERATOR_TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("reason=csrf"),
    )
    .await;
    assert_eq!(s, 415);
    running.stop().await;
}

#[tokio::test]
async fn guessing_tokens_blocks_the_address_even_for_the_right_token() {
    let (_dir, running, api) = hub(|c| {
        c.limits.auth_failures.max_failures = 5;
    })
    .await;
    for i in 0..5 {
        let (s, _) = api.get(&format!("usk_guess_{i}"), "/admin/whoami").await;
        assert_eq!(s, 401, "guess {i}");
    }
    // The right token now gets a 429 too, on every surface and on /metrics.
    let r = reqwest::Client::new()
        .get(format!("{}/admin/whoami", running.base))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(api.get(OPERATOR_TOKEN, "/subjects").await.0, 429);
    let (s, _) = text_of(
        reqwest::Client::new()
            .get(format!("{}/metrics", running.base))
            .bearer_auth(SYSTEM_TOKEN),
    )
    .await;
    assert_eq!(s, 429);
    running.stop().await;
}

#[tokio::test]
async fn a_batch_over_the_cap_is_refused_whole_with_413() {
    let (_dir, running, _api) = hub(|c| {
        c.limits.max_records_per_push = 100;
    })
    .await;
    let body = Value::Array(vec![json!({}); 101]);
    let r = reqwest::Client::new()
        .post(format!("{}/ingest/grid", running.base))
        .bearer_auth(PUSH_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("push");
    assert_eq!(r.status().as_u16(), 413);
    let answer: Value = r.json().await.expect("json");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("100"),
        "{answer}"
    );
    running.stop().await;
}

#[tokio::test]
async fn grants_stay_grants_and_an_operators_pause_is_lifted_only_by_an_operator() {
    let (_dir, running, api) = hub(|_| {}).await;
    let token = api.agency("civil-affairs", "民政局", USCC_A, "S3").await;
    let (s, body) = api
        .post(
            &token,
            "/admin/subscriptions",
            household("care", json!({ "kind": "pull" })),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let approve = "/admin/subscriptions/civil-affairs.care/approve";
    // An extra condition that would close the requested filter's parentheses is refused.
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            approve,
            json!({ "and_filter": "true) || (true" }),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            approve,
            json!({ "and_filter": "care_level == \"RED\" && data_grade != \"CORE\"" }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let id = "civil-affairs.care";
    let (_, sub) = api
        .get(OPERATOR_TOKEN, &format!("/admin/subscriptions/{id}"))
        .await;
    let granted = sub["granted"]["filter"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        granted.ends_with("&& (care_level == \"RED\" && data_grade != \"CORE\")"),
        "{sub}"
    );
    assert_eq!(sub["status"], "active", "{sub}");

    // Paused by an operator: the agency cannot lift it; an operator can.
    {
        let (s, body) = api
            .post(
                OPERATOR_TOKEN,
                &format!("/admin/subscriptions/{id}/pause"),
                json!({ "reason": "review" }),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        only_an_operator_lifts_the_pause(&api, &token, id).await;
    }
    running.stop().await;
}

#[tokio::test]
async fn sql_kafka_and_webhook_targets_inside_the_hubs_network_are_refused_at_request() {
    let (_dir, running, api) = hub(|_| {}).await;
    let token = api.agency("civil-affairs", "民政局", USCC_A, "S3").await;
    let cases = [
        (
            json!({ "kind": "sql", "url": "postgres://postgres:secret@127.0.0.1:5432/test", "table": "t" }),
            "loopback",
        ),
        (
            json!({ "kind": "sql", "url": "postgres://postgres@db.example/test?host=/var/run/postgresql", "table": "t" }),
            "Unix sockets",
        ),
        (
            json!({ "kind": "kafka", "bootstrap_servers": "127.0.0.1:9092" }),
            "loopback",
        ),
        (
            json!({ "kind": "kafka", "bootstrap_servers": "kafka.example:9092", "topic": "_unsilo.audit" }),
            "namespace",
        ),
        (
            json!({ "kind": "kafka", "bootstrap_servers": "kafka.example:9092", "topic": "sub.public-security.events" }),
            "namespace",
        ),
        (
            json!({ "kind": "webhook", "url": "https://[64:ff9b::7f00:1]/hook" }),
            "loopback",
        ),
        (
            json!({ "kind": "webhook", "url": "https://198.18.0.1/hook" }),
            "benchmarking",
        ),
        (
            json!({ "kind": "webhook", "url": "https://[fec0::1]/hook" }),
            "private",
        ),
    ];
    for (i, (channel, why)) in cases.into_iter().enumerate() {
        let (s, body) = api
            .post(
                &token,
                "/admin/subscriptions",
                household(&format!("t{i}"), channel.clone()),
            )
            .await;
        assert_eq!(s, 422, "{channel}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{channel}: {message}");
        assert!(
            !message.contains("secret"),
            "the password leaked: {message}"
        );
    }
    running.stop().await;
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed_after_the_header_timeout() {
    let (_dir, running, _api) = hub(|c| {
        c.limits.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = running.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    for mut stream in idle {
        let mut buf = [0u8; 16];
        // The hub closes each: the read ends (0 bytes) well before this test's own bound.
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .expect("the hub kept an idle connection open");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    // A connection that sent one request and then nothing more is closed too: the header timeout runs for
    // every request head, not only the first.
    let mut kept = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut kept,
        b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: keep-alive\r\n\r\n",
    )
    .await
    .expect("request");
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 1024];
        loop {
            match kept.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "an idle keep-alive connection was held open"
    );
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{answer:?}"
    );
    // The hub still answers.
    let (s, _) = text_of(reqwest::Client::new().get(format!("{}/healthz", running.base))).await;
    assert_eq!(s, 200);
    running.stop().await;
}

#[tokio::test]
async fn a_token_an_ordinary_kafka_client_adds_to_an_agency_is_never_accepted() {
    // The hub on Kafka; the attacker is another Kafka client with produce access to `_unsilo.config`.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_grid_and_operator(kafka_config(dir.path()));
    let running = Running::start(&config).await;
    let api = Api::new(&running.base);
    let agency = format!("forge-{}", rand_suffix());
    api.agency(&agency, "民政局", USCC_A, "S3").await;
    let forger = unsilo_hub::server::open_bus(&config).await.expect("forger");
    let topic = unsilo_schemas::names::CONFIG_TOPIC;
    let key = format!("agency/{agency}");
    let records = unsilo_hub::audit::read_all(forger.as_ref(), topic)
        .await
        .expect("read the topic");
    let genuine = records
        .iter()
        .rev()
        .find(|r| r.record.key.as_deref() == Some(key.as_bytes()))
        .expect("the agency's record");
    // Its record with one more token, whose digest the attacker knows — and a higher revision.
    let stolen = "usk_attacker-chosen-token-0123456789abcdef";
    let mut value: Value =
        serde_json::from_slice(genuine.record.value.as_deref().expect("value")).expect("json");
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(stolen.as_bytes()));
    let mut token = value["tokens"][0].clone();
    token["id"] = json!("tok_forged00");
    token["sha256"] = json!(digest);
    value["tokens"].as_array_mut().expect("tokens").push(token);
    value["revision"] = json!(99);
    // Unsealed, and with the genuine record's seal copied onto it.
    let mut copied =
        unsilo_bus::Record::new(key.clone(), serde_json::to_vec(&value).expect("json"));
    copied.headers = genuine.record.headers.clone();
    let unsealed = unsilo_bus::Record::new(key.clone(), serde_json::to_vec(&value).expect("json"));
    forger
        .publish(topic, vec![unsealed, copied])
        .await
        .expect("forge");
    // The hub has read past both (a later write of its own is applied) and refused them.
    api.agency(&format!("{agency}-later"), "民政局", USCC_A, "S3")
        .await;
    let (s, _) = api.get(stolen, "/admin/whoami").await;
    assert_eq!(s, 401, "a forged token digest was accepted");
    assert!(running.hub.control.refused_records() >= 2);
    let (_, metrics) = text_of(
        reqwest::Client::new()
            .get(format!("{}/metrics", running.base))
            .bearer_auth(SYSTEM_TOKEN),
    )
    .await;
    assert!(metrics.contains("unsilo_refused_records"), "{metrics}");
    forger.shutdown().await.expect("close");
    running.stop().await;
}

#[tokio::test]
async fn an_agency_holds_a_bounded_number_of_event_streams_each_for_a_bounded_time() {
    let (_dir, running, api) = hub(|c| {
        c.limits.max_event_streams_per_agency = 2;
        c.limits.event_stream_lifetime = Duration::from_secs(2);
    })
    .await;
    let token = api.agency("civil-affairs", "民政局", USCC_A, "S3").await;
    let mut request = household("stream", json!({ "kind": "pull" }));
    request["filter"] = json!("data_grade != \"CORE\"");
    let (s, body) = api.post(&token, "/admin/subscriptions", request).await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            "/admin/subscriptions/civil-affairs.stream/approve",
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let url = format!(
        "{}/v1/subscriptions/civil-affairs.stream/events",
        running.base
    );
    let http = reqwest::Client::new();
    let open = || http.get(&url).bearer_auth(&token).send();
    let first = open().await.expect("first");
    let second = open().await.expect("second");
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open().await.expect("third");
    assert_eq!(third.status().as_u16(), 429);
    // A stream ends by itself at its lifetime, with a `closed` event saying how to resume.
    let text = tokio::time::timeout(Duration::from_secs(30), first.text())
        .await
        .expect("the stream outlived its lifetime")
        .expect("body");
    assert!(
        text.contains("event: closed") && text.contains("Last-Event-ID"),
        "{text}"
    );
    // Its slot is given back.
    drop(second);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = open().await.expect("again");
    assert_eq!(again.status().as_u16(), 200);
    drop(again);
    running.stop().await;
}

#[tokio::test]
async fn a_filter_that_costs_more_than_a_record_may_pauses_its_subscription_until_an_operator_resumes_it(
) {
    let (_dir, running, api) = hub(|_| {}).await;
    let token = api.agency("civil-affairs", "民政局", USCC_A, "S3").await;
    // Five scans of a free-text field: cheap on short texts, over the per-record budget on a long one.
    let costly = ["a", "b", "c", "d", "e"]
        .map(|p| format!("description.matches(\"{p}\")"))
        .join(" || ");
    let request = json!({
        "name": "costly",
        "schema": "grid_event",
        "filter": format!("({costly}) && data_grade != \"CORE\""),
        "fields": [{ "field": "event_type_code", "treatment": "clear" }],
        "purpose": "矛盾纠纷排查", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00",
        "channel": { "kind": "pull" }
    });
    let (s, body) = api.post(&token, "/admin/subscriptions", request).await;
    assert_eq!(s, 201, "{body}");
    let id = "civil-affairs.costly";
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            &format!("/admin/subscriptions/{id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let mut record = unsilo_schemas::example_record("grid_event").expect("example");
    let record_id = format!("costly-{}", rand_suffix());
    record["envelope"]["record_id"] = json!(record_id);
    record["description"] = json!("网格".repeat(unsilo_policy::filter::MATCH_BUDGET_BYTES / 12));
    let framed = unsilo_tests::shared_record(&running.hub, "grid_event", &record, &record_id);
    running
        .hub
        .bus
        .publish("std.grid_event", vec![framed])
        .await
        .expect("publish");
    let started = std::time::Instant::now();
    while running
        .hub
        .control
        .subscription(id)
        .map(|s| s.status.as_str())
        != Some("paused")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the subscription was not paused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, sub) = api
        .get(OPERATOR_TOKEN, &format!("/admin/subscriptions/{id}"))
        .await;
    assert!(
        sub["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("matches()"),
        "{sub}"
    );
    only_an_operator_lifts_the_pause(&api, &token, id).await;
    running.stop().await;
}
