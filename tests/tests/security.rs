//! End-to-end: every door of a whole hub, tried over real sockets on 127.0.0.1 as an anonymous caller, a
//! stranger, an agency, a push source and an operator would — the registry, admin, pull and ingest surfaces,
//! agencies' tokens (expiry, rotation, revocation) and client certificates (mutual TLS), webhook targets,
//! rate, body and header limits, the classification gates, and forged or cut-off evidence.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use unsilo_bus::{Bus, Record, TopicSpec};
use unsilo_hub::audit::{self, AuditLog, SigningKey, TrustedKeys};
use unsilo_hub::server::Hub;
use unsilo_tests::api::{
    with_grid_and_operator, Api, AUDITOR_TOKEN, OPERATOR_TOKEN, PUSH_TOKEN, REVIEWER_TOKEN,
    SYSTEM_TOKEN,
};
use unsilo_tests::{embedded_config, kafka_config, rand_suffix, RunningHub as Running};

const USCC_A: &str = "11610921016050037T";
const USCC_B: &str = "11610921MB12345671";

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let r = request.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn message(body: &Value) -> String {
    body["message"].as_str().unwrap_or_default().to_owned()
}

/// A pull subscription of `agency` on household care levels, filtered by `filter`.
fn household_request(name: &str, filter: &str) -> Value {
    json!({
        "name": name,
        "schema": "household",
        "filter": filter,
        "fields": [
            { "field": "care_level", "treatment": "clear" },
            { "field": "village_code", "treatment": "clear" }
        ],
        "purpose": "连心户台账", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00",
        "channel": { "kind": "pull" }
    })
}

/// A hub on the embedded bus in a fresh directory, configured by `adjust`, with the grid push connector, two
/// operators and the agency `civil-affairs` at `clearance`; returns the agency's token too.
async fn hub_with_agency(
    adjust: impl FnOnce(&mut unsilo_hub::config::Config),
    clearance: &str,
) -> (tempfile::TempDir, Running, Api, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = with_grid_and_operator(embedded_config(dir.path()));
    adjust(&mut config);
    let running = Running::start(&config).await;
    let api = Api::new(&running.base);
    let token = api
        .agency("civil-affairs", "民政局", USCC_A, clearance)
        .await;
    (dir, running, api, token)
}

#[tokio::test]
async fn no_door_opens_without_credentials_and_each_principal_sees_only_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(&with_grid_and_operator(embedded_config(dir.path()))).await;
    let base = running.base.clone();
    let http = reqwest::Client::new();
    let api = Api::new(&base);

    // Only health, readiness and metrics answer an anonymous caller.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (s, _) = send(http.get(format!("{base}{path}"))).await;
        assert_eq!(s, 200, "{path}");
    }
    let probe = json!({"schema": "{\"type\":\"string\"}"});
    let anonymous = [
        http.get(format!("{base}/")),
        http.get(format!("{base}/subjects")),
        http.get(format!("{base}/schemas/ids/1")),
        http.get(format!("{base}/subjects/std.appeal-value/versions/latest")),
        http.put(format!("{base}/config"))
            .json(&json!({"compatibility": "NONE"})),
        http.delete(format!("{base}/subjects/std.appeal-value")),
        http.post(format!("{base}/subjects/std.appeal-value/versions"))
            .json(&probe),
        http.get(format!("{base}/admin/agencies")),
        http.post(format!("{base}/admin/agencies")).json(&json!({})),
        http.get(format!("{base}/admin/audit/verify")),
        http.get(format!("{base}/v1/subscriptions/x.y/records")),
        http.post(format!("{base}/ingest/grid")).json(&json!({})),
    ];
    for request in anonymous {
        let (s, body) = send(request).await;
        assert_eq!(s, 401, "anonymous: {body}");
    }
    // A wrong token, and a right token with the wrong name in Basic, are refused too.
    let (s, _) = send(http.get(format!("{base}/subjects")).bearer_auth("usk_nope")).await;
    assert_eq!(s, 401);
    let (s, _) = send(
        http.get(format!("{base}/subjects"))
            .basic_auth("mallory", Some(OPERATOR_TOKEN)),
    )
    .await;
    assert_eq!(s, 401);
    // Nothing changed: the shared schema is still there.
    let (s, versions) = api
        .get(SYSTEM_TOKEN, "/subjects/std.appeal-value/versions")
        .await;
    assert_eq!((s, versions), (200, json!([1])));

    // An operator, with HTTP Basic as the Confluent clients send it, reads and writes the registry …
    let (s, subjects) = send(
        http.get(format!("{base}/subjects"))
            .basic_auth("sysadmin", Some(SYSTEM_TOKEN)),
    )
    .await;
    assert_eq!(s, 200);
    assert!(subjects
        .as_array()
        .expect("list")
        .contains(&json!("std.appeal-value")));
    let probe_subject = "ops.probe-value";
    let (s, body) = api
        .post(
            SYSTEM_TOKEN,
            &format!("/subjects/{probe_subject}/versions"),
            probe.clone(),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let probe_id = body["id"].clone();
    let (s, _) = api
        .call(
            reqwest::Method::PUT,
            SYSTEM_TOKEN,
            "/config",
            Some(json!({"compatibility": "FULL"})),
        )
        .await;
    assert_eq!(s, 200);

    // … but not the subjects the hub owns, whatever the operator tries; the answer says why.
    let std_text = api
        .get(SYSTEM_TOKEN, "/subjects/std.appeal-value/versions/latest")
        .await
        .1["schema"]
        .as_str()
        .expect("schema")
        .to_owned();
    for (method, path, body) in [
        (reqwest::Method::DELETE, "/subjects/std.appeal-value", None),
        (
            reqwest::Method::DELETE,
            "/subjects/std.appeal-value/versions/1",
            None,
        ),
        (
            reqwest::Method::POST,
            "/subjects/std.appeal-value/versions",
            Some(probe.clone()),
        ),
        (
            reqwest::Method::PUT,
            "/config/std.appeal-value",
            Some(json!({"compatibility": "NONE"})),
        ),
        (reqwest::Method::DELETE, "/config/std.appeal-value", None),
    ] {
        let (s, body) = api.call(method.clone(), SYSTEM_TOKEN, path, body).await;
        assert_eq!(s, 403, "{method} {path}: {body}");
        assert_eq!(body["error_code"], 40301, "{body}");
        assert!(message(&body).contains("written only by the hub"), "{body}");
    }
    // Registering what a shared subject already holds changes nothing and is allowed (clients that always
    // register before producing keep working).
    let (s, body) = api
        .post(
            SYSTEM_TOKEN,
            "/subjects/std.appeal-value/versions",
            json!({ "schema": std_text }),
        )
        .await;
    assert_eq!(s, 200, "{body}");

    // Registry writes are evidence: who, what, and the compatibility before and after.
    let (_, audit_log) = api.get(AUDITOR_TOKEN, "/admin/audit?limit=1000").await;
    let entries = audit_log["entries"].as_array().expect("entries");
    let find = |action: &str, target: &str| {
        entries
            .iter()
            .find(|e| e["event"]["action"] == action && e["event"]["target"] == target)
            .cloned()
    };
    let registered = find("registry.register", probe_subject).expect("register audited");
    assert_eq!(registered["event"]["actor"], "operator:sysadmin");
    assert_eq!(registered["event"]["detail"]["id"], probe_id);
    let configured = find("registry.set_compatibility", "config").expect("config audited");
    assert_eq!(configured["event"]["detail"]["before"], "BACKWARD");
    assert_eq!(configured["event"]["detail"]["after"], "FULL");

    // Two agencies, each with an approved subscription and so a view subject of its own.
    let token_a = api.agency("agency-a", "甲局", USCC_A, "S3").await;
    let token_b = api.agency("agency-b", "乙局", USCC_B, "S3").await;
    let filter = "data_grade != \"CORE\"";
    api.subscribe_approved(
        &token_a,
        "agency-a",
        household_request("care", filter),
        json!({}),
    )
    .await;
    api.subscribe_approved(
        &token_b,
        "agency-b",
        household_request("care", filter),
        json!({}),
    )
    .await;
    let view_id = |token: String, subject: &'static str| {
        let api = Api::new(&base);
        async move {
            api.get(&token, &format!("/subjects/{subject}/versions/latest"))
                .await
        }
    };
    let (s, a_view) = view_id(token_a.clone(), "sub.agency-a.care-value").await;
    assert_eq!(s, 200, "an agency reads its own view subject: {a_view}");
    let (_, b_view) = view_id(OPERATOR_TOKEN.to_owned(), "sub.agency-b.care-value").await;

    // Agency A sees the shared schemas and its own view, nothing else; another agency's view is not there.
    let (s, seen) = api.get(&token_a, "/subjects").await;
    assert_eq!(s, 200);
    let seen: Vec<&str> = seen
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(seen.contains(&"std.household-value"), "{seen:?}");
    assert!(seen.contains(&"sub.agency-a.care-value"), "{seen:?}");
    assert!(
        !seen.iter().any(|s| s.starts_with("sub.agency-b.")),
        "{seen:?}"
    );
    assert!(!seen.contains(&probe_subject), "{seen:?}");
    for path in [
        "/subjects/sub.agency-b.care-value/versions/latest".to_owned(),
        "/subjects/sub.agency-b.care-value/versions".to_owned(),
        format!("/schemas/ids/{}", b_view["id"]),
        format!("/schemas/ids/{probe_id}"),
        format!("/subjects/{probe_subject}/versions"),
    ] {
        let (s, body) = api.get(&token_a, &path).await;
        assert_eq!(s, 404, "{path}: {body}");
    }
    let (s, _) = api
        .get(&token_a, &format!("/schemas/ids/{}", a_view["id"]))
        .await;
    assert_eq!(s, 200);
    // Agencies do not write to the registry, nor act as operators.
    let (s, _) = api
        .post(
            &token_a,
            "/subjects/agency-a.own-value/versions",
            probe.clone(),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = api
        .post(
            &token_a,
            "/admin/agencies",
            json!({"id": "x", "name": "x", "uscc": USCC_A, "clearance": "S1"}),
        )
        .await;
    assert_eq!(s, 403);
    // Agency A cannot pull, see or revoke agency B's subscription.
    let (s, _) = api
        .get(
            &token_a,
            "/v1/subscriptions/agency-b.care/records?wait_ms=0",
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .get(&token_a, "/admin/subscriptions/agency-b.care")
        .await;
    assert_eq!(s, 404);
    // A push source's token opens only its ingest endpoint.
    let (s, _) = api.get(PUSH_TOKEN, "/admin/agencies").await;
    assert_eq!(s, 403);
    let (s, _) = api.get(PUSH_TOKEN, "/subjects").await;
    assert_eq!(s, 403);
    // An agency cannot push records.
    let (s, _) = api.post(&token_a, "/ingest/grid", json!({})).await;
    assert_eq!(s, 403);
    running.stop().await;
}

#[tokio::test]
async fn anonymous_reads_open_only_the_shared_schemas_and_only_when_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = with_grid_and_operator(embedded_config(dir.path()));
    config.registry.anonymous_read = true;
    let running = Running::start(&config).await;
    let http = reqwest::Client::new();
    let (s, subjects) = send(http.get(format!("{}/subjects", running.base))).await;
    assert_eq!(s, 200);
    let subjects = subjects.as_array().expect("list");
    assert!(!subjects.is_empty());
    assert!(subjects
        .iter()
        .all(|s| s.as_str().is_some_and(|s| s.starts_with("std."))));
    let (s, _) = send(
        http.put(format!("{}/config", running.base))
            .json(&json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!(s, 401, "anonymous writes stay closed");
    let (s, _) = send(http.get(format!("{}/admin/agencies", running.base))).await;
    assert_eq!(s, 401, "anonymous_read opens the registry's reads only");
    running.stop().await;
}

#[tokio::test]
async fn agency_tokens_rotate_with_overlap_expire_and_are_refused_once_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(&with_grid_and_operator(embedded_config(dir.path()))).await;
    let api = Api::new(&running.base);
    let first = api.agency("civil-affairs", "民政局", USCC_A, "S3").await;
    let (s, who) = api.get(&first, "/admin/whoami").await;
    assert_eq!(
        (s, who["principal"].clone()),
        (200, json!("agency:civil-affairs"))
    );

    // Rotation: a second token works alongside the first until the first is revoked.
    let (s, issued) = api
        .post(
            OPERATOR_TOKEN,
            "/admin/agencies/civil-affairs/tokens",
            json!({}),
        )
        .await;
    assert_eq!(s, 201, "{issued}");
    let second = issued["token"].as_str().expect("token").to_owned();
    let second_id = issued["token_id"].as_str().expect("id").to_owned();
    assert_eq!(api.get(&first, "/admin/whoami").await.0, 200);
    assert_eq!(api.get(&second, "/admin/whoami").await.0, 200);
    let (s, listed) = api
        .get(&second, "/admin/agencies/civil-affairs/tokens")
        .await;
    assert_eq!(s, 200);
    let tokens = listed["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 2, "{listed}");
    let text = listed.to_string();
    assert!(
        !text.contains(&first) && !text.contains(&second),
        "tokens are never shown again"
    );
    assert!(
        !text.contains(&unsilo_hub::auth::token_digest(&first)),
        "digests are never shown"
    );
    let first_id = tokens
        .iter()
        .find(|t| t["id"] != json!(second_id))
        .expect("first")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            &format!("/admin/agencies/civil-affairs/tokens/{first_id}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = api.get(&first, "/admin/whoami").await;
    assert_eq!(
        s, 401,
        "a revoked token is refused at the next request: {body}"
    );
    assert!(message(&body).contains("revoked"), "{body}");
    assert_eq!(api.get(&second, "/admin/whoami").await.0, 200);

    // An agency may revoke its own tokens, never another agency's or issue new ones.
    let (s, _) = api
        .post(&second, "/admin/agencies/civil-affairs/tokens", json!({}))
        .await;
    assert_eq!(s, 403);

    // Expiry: a token issued for a short time is refused once it has passed.
    let expires = unsilo_bus::now_ms() + 3000;
    let (s, issued) = api
        .post(
            OPERATOR_TOKEN,
            "/admin/agencies/civil-affairs/tokens",
            json!({ "expires_at_ms": expires }),
        )
        .await;
    assert_eq!(s, 201, "{issued}");
    let short = issued["token"].as_str().expect("token").to_owned();
    assert_eq!(api.get(&short, "/admin/whoami").await.0, 200);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (s, body) = api.get(&short, "/admin/whoami").await;
    assert_eq!(s, 401, "{body}");
    assert!(message(&body).contains("expired"), "{body}");
    let (s, _) = api
        .post(
            OPERATOR_TOKEN,
            "/admin/agencies/civil-affairs/tokens",
            json!({ "expires_at_ms": 1000 }),
        )
        .await;
    assert_eq!(s, 422, "an expiry in the past is refused");
    running.stop().await;
}

#[tokio::test]
async fn webhooks_to_the_hubs_own_network_are_refused_naming_the_address_class() {
    let (_dir, running, api, token) = hub_with_agency(
        |config| {
            config.delivery.webhook_allow_plain_http = true;
        },
        "S3",
    )
    .await;
    for (i, (url, class)) in [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://localhost:8080/hook", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("https://[::1]/hook", "loopback"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://224.0.0.1/hook", "multicast"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut request = household_request(&format!("hook-{i}"), "true");
        request["channel"] = json!({ "kind": "webhook", "url": url });
        let (s, body) = api.post(&token, "/admin/subscriptions", request).await;
        assert_eq!(s, 422, "{url}: {body}");
        assert!(message(&body).contains(class), "{url}: {body}");
    }
    running.stop().await;

    // Allowed networks pass.
    let (_dir, running, api, token) = hub_with_agency(
        |config| {
            config.delivery.webhook_allow_plain_http = true;
            config.delivery.egress_allow_cidrs = vec!["127.0.0.0/8".into()];
        },
        "S3",
    )
    .await;
    let mut request = household_request("hook", "true");
    request["channel"] = json!({ "kind": "webhook", "url": "http://127.0.0.1:9/hook" });
    let (s, body) = api.post(&token, "/admin/subscriptions", request).await;
    assert_eq!(s, 201, "{body}");
    running.stop().await;
}

#[tokio::test]
async fn limits_answer_429_413_and_431_and_one_client_never_uses_up_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = with_grid_and_operator(embedded_config(dir.path()));
    config.limits.admin = unsilo_hub::access::RateLimit {
        // One token back every 20 s: nothing refills while the test runs, however slow the machine.
        per_second: 0.05,
        burst: 4,
    };
    config.limits.max_body_bytes = 64 * 1024;
    config.limits.max_header_bytes = 16 * 1024;
    let running = Running::start(&config).await;
    let api = Api::new(&running.base);
    let http = reqwest::Client::new();
    let token = api.agency("civil-affairs", "民政局", USCC_A, "S3").await;
    // The operator used one request; three more pass, the next is refused with a Retry-After.
    for _ in 0..3 {
        assert_eq!(api.get(OPERATOR_TOKEN, "/admin/whoami").await.0, 200);
    }
    let r = http
        .get(format!("{}/admin/whoami", running.base))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=20).contains(&retry), "{retry}");
    // The agency has its own bucket, and the registry its own limit.
    assert_eq!(api.get(&token, "/admin/whoami").await.0, 200);
    assert_eq!(api.get(OPERATOR_TOKEN, "/subjects").await.0, 200);

    // Bodies over the limit: 413; request heads over the limit: 431. The hub stays up.
    let big = "x".repeat(128 * 1024);
    let (s, _) = api
        .post(&token, "/admin/subscriptions", json!({ "name": big }))
        .await;
    assert_eq!(s, 413);
    let r = http
        .get(format!("{}/healthz", running.base))
        .header("x-padding", "y".repeat(32 * 1024))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 431);
    assert_eq!(
        send(http.get(format!("{}/healthz", running.base))).await.0,
        200
    );

    // Guessing tokens is limited per client address too, without touching the agency's own allowance.
    let mut codes = Vec::new();
    for i in 0..6 {
        codes.push(api.get(&format!("usk_guess_{i}"), "/admin/whoami").await.0);
    }
    assert_eq!(codes[..4], [401; 4], "{codes:?}");
    assert!(codes[4..].iter().all(|c| *c == 429), "{codes:?}");
    assert_eq!(api.get(&token, "/admin/whoami").await.0, 200);

    // Refusals are counted.
    let (_, metrics) = send(http.get(format!("{}/metrics", running.base))).await;
    let text = metrics.as_str().expect("text").to_owned();
    assert!(
        text.contains(
            "unsilo_http_refused_requests_total{surface=\"admin\",reason=\"rate_limited\"}"
        ),
        "{text}"
    );
    running.stop().await;
}

/// A household record as a connector would publish it to `std.household`, with the given classification.
fn household_record(hub: &Hub, record_id: &str, share: &str, grade: &str) -> Record {
    let mut record = unsilo_schemas::example_record("household").expect("example");
    record["envelope"]["record_id"] = json!(record_id);
    record["envelope"]["share_attribute"] = json!(share);
    record["envelope"]["data_grade"] = json!(grade);
    unsilo_tests::shared_record(hub, "household", &record, record_id)
}

#[tokio::test]
async fn not_shared_records_reach_no_one_and_core_data_needs_two_operators() {
    let (_dir, running, api, token) = hub_with_agency(|_| {}, "S4").await;

    // A subscription that can release CORE-grade records: the first operator's approval is not enough.
    let (s, _) = api
        .post(
            &token,
            "/admin/subscriptions",
            household_request("all", "true"),
        )
        .await;
    assert_eq!(s, 201);
    let path = "/admin/subscriptions/civil-affairs.all/approve";
    let (s, body) = api.post(OPERATOR_TOKEN, path, json!({})).await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["subscription"]["status"], "requested", "{body}");
    assert_eq!(
        body["subscription"]["approvals"].as_array().map(Vec::len),
        Some(1)
    );
    let (s, body) = api.post(OPERATOR_TOKEN, path, json!({})).await;
    assert_eq!(s, 409, "the same operator cannot be the second: {body}");
    assert!(message(&body).contains("双人复核"), "{body}");
    let (s, body) = api.post(REVIEWER_TOKEN, path, json!({})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "active");
    // One that rules CORE out needs one operator.
    let (s, _) = api
        .post(
            &token,
            "/admin/subscriptions",
            household_request("general", "data_grade != \"CORE\""),
        )
        .await;
    assert_eq!(s, 201);
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            "/admin/subscriptions/civil-affairs.general/approve",
            json!({}),
        )
        .await;
    assert_eq!(
        (s, body["status"].clone()),
        (200, json!("active")),
        "{body}"
    );

    // Records of every class, straight onto the shared topic.
    let suffix = rand_suffix();
    let id = |what: &str| format!("gate-{what}-{suffix}");
    let records = vec![
        household_record(&running.hub, &id("not-shared"), "NOT_SHARED", "GENERAL"),
        household_record(&running.hub, &id("not-shared-core"), "NOT_SHARED", "CORE"),
        household_record(&running.hub, &id("conditional"), "CONDITIONAL", "IMPORTANT"),
        household_record(&running.hub, &id("core"), "UNCONDITIONAL", "CORE"),
        // Fail closed: a grade the gates do not know is gated as CORE.
        household_record(
            &running.hub,
            &id("unknown-grade"),
            "UNCONDITIONAL",
            "UNKNOWN",
        ),
    ];
    running
        .hub
        .bus
        .publish("std.household", records)
        .await
        .expect("publish");
    let ids = |records: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = records
            .iter()
            .filter_map(|r| r["record_id"].as_str().map(str::to_owned))
            .collect();
        v.sort();
        v
    };
    let (all, _) = api.pull_at_least(&token, "civil-affairs.all", 3).await;
    assert_eq!(
        ids(&all),
        vec![id("conditional"), id("core"), id("unknown-grade")]
    );
    let (general, _) = api.pull_at_least(&token, "civil-affairs.general", 1).await;
    assert_eq!(ids(&general), vec![id("conditional")]);
    // Nothing else arrives later, and the audit log shows no release of the NOT_SHARED records.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, more) = api
        .get(
            &token,
            "/v1/subscriptions/civil-affairs.all/records?wait_ms=300&max=100",
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        ids(more["records"].as_array().expect("records"))
            .iter()
            .all(|r| !r.contains("not-shared")),
        "{more}"
    );
    for held in [id("not-shared"), id("not-shared-core")] {
        let (_, q) = api
            .get(AUDITOR_TOKEN, &format!("/admin/audit?record_id={held}"))
            .await;
        assert_eq!(q["entries"], json!([]), "{held} was released: {q}");
    }
    let (_, metrics) = send(reqwest::Client::new().get(format!("{}/metrics", running.base))).await;
    let text = metrics.as_str().expect("text").to_owned();
    assert!(
        text.contains("unsilo_gate_held_records_total{schema=\"household\",gate=\"not_shared\"} 2"),
        "{text}"
    );
    running.stop().await;
}

/// A CA, and certificates it signs for the hub and for clients (rcgen), as PEM.
struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("key");
        Self {
            ca: rcgen::CertifiedIssuer::self_signed(params, key).expect("ca"),
        }
    }

    /// `(certificate PEM, key PEM, DER)` of a leaf for `names`, for a server or a client.
    fn leaf(&self, names: &[&str], client: bool) -> (String, String, Vec<u8>) {
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    fn pem(&self) -> String {
        self.ca.pem()
    }
}

#[tokio::test]
async fn an_agency_bound_to_a_certificate_is_refused_without_exactly_that_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new("unsilo test CA");
    let (server_cert, server_key, _) = pki.leaf(&["localhost"], false);
    let (cert_a, key_a, der_a) = pki.leaf(&["agency-a"], true);
    let (cert_b, key_b, _) = pki.leaf(&["agency-b"], true);
    let stranger = Pki::new("another CA");
    let (cert_x, key_x, _) = stranger.leaf(&["agency-a"], true);
    let write = |name: &str, text: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        // The hub refuses a private key others can read.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    };
    let mut config = with_grid_and_operator(embedded_config(&dir.path().join("data")));
    let tls = unsilo_hub::config::TlsConfig {
        cert: write("server.pem", &server_cert),
        key: write("server.key", &server_key),
        client_ca: Some(write("ca.pem", &pki.pem())),
    };
    config.http.tls = Some(tls.clone());
    let hub = Hub::start(&config).await.expect("hub");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_tls = unsilo_hub::server::load_tls(&tls).expect("tls");
    let task = tokio::spawn(async move {
        hub.serve_with(listener, Some(server_tls), async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    let base = format!("https://localhost:{port}");
    let client = |identity: Option<(&str, &str)>| {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(pki.pem().as_bytes()).expect("ca"))
            .timeout(Duration::from_secs(10));
        if let Some((cert, key)) = identity {
            b = b.identity(
                reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).expect("identity"),
            );
        }
        b.build().expect("client")
    };
    let plain = client(None);
    let fingerprint = unsilo_hub::auth::ClientCertificate::of_der(&der_a).0;
    let (s, created) = send(
        plain
            .post(format!("{base}/admin/agencies"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&json!({
                "id": "agency-a", "name": "甲局", "uscc": USCC_A, "clearance": "S2",
                "client_cert_sha256": fingerprint,
            })),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let token = created["token"].as_str().expect("token").to_owned();
    let whoami = |c: reqwest::Client| {
        let url = format!("{base}/admin/whoami");
        let token = token.clone();
        async move { send(c.get(url).bearer_auth(token)).await }
    };
    // The token alone, or with another certificate of the same CA: refused, saying why.
    let (s, body) = whoami(plain.clone()).await;
    assert_eq!(s, 401, "{body}");
    assert!(message(&body).contains("client certificate"), "{body}");
    let (s, _) = whoami(client(Some((&cert_b, &key_b)))).await;
    assert_eq!(s, 401);
    // A certificate from a CA the hub does not trust does not even complete the handshake.
    let refused = client(Some((&cert_x, &key_x)))
        .get(format!("{base}/admin/whoami"))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    // The registered certificate and the token: accepted.
    let (s, body) = whoami(client(Some((&cert_a, &key_a)))).await;
    assert_eq!(
        (s, body["principal"].clone()),
        (200, json!("agency:agency-a")),
        "{body}"
    );
    // Operators still need no certificate.
    let (s, _) = send(
        plain
            .get(format!("{base}/admin/whoami"))
            .bearer_auth(OPERATOR_TOKEN),
    )
    .await;
    assert_eq!(s, 200);
    let _ = stop.send(());
    task.await.expect("server");
}

/// What an ordinary Kafka client with produce access could append: the next seq, prev = the head's hash, and a
/// matching hash header — everything but the hub's signature.
fn forged_entry(head: &audit::AuditEntry) -> Record {
    let body = audit::EntryBody {
        hub: head.body.hub.clone(),
        seq: head.body.seq + 1,
        prev: head.hash.clone(),
        time_ms: head.body.time_ms + 1,
        event: audit::AuditEvent::Control {
            actor: "operator:ops".into(),
            role: None,
            action: "subscription.revoke".into(),
            target: "civil-affairs.all".into(),
            detail: json!({"reason": "forged"}),
        },
    };
    let bytes = serde_json::to_vec(&body).expect("json");
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    Record::new(head.body.hub.as_bytes().to_vec(), bytes)
        .with_header(unsilo_schemas::names::HEADER_AUDIT_HASH, hash.into_bytes())
}

async fn last_entry(bus: &dyn Bus, topic: &str) -> audit::AuditEntry {
    let records = audit::read_all(bus, topic).await.expect("read");
    records
        .iter()
        .rev()
        .find_map(audit::decode)
        .expect("an entry")
}

/// Copies every record of `from` but the last `drop` into `to`: the tail cut off.
async fn copy_without_tail(bus: &dyn Bus, from: &str, to: &str, drop: usize) {
    let records = audit::read_all(bus, from).await.expect("read");
    bus.create_topic(&TopicSpec::new(to, 1))
        .await
        .expect("topic");
    let kept: Vec<Record> = records[..records.len() - drop]
        .iter()
        .map(|r| r.record.clone())
        .collect();
    bus.publish(to, kept).await.expect("publish");
}

/// The evidence checks on any bus: an entry appended by `forger` (another client of the same topics, without the
/// hub's key) and a tail cut off after a checkpoint are reported.
async fn forged_and_cut_off_evidence_is_reported(bus: Arc<dyn Bus>, forger: Arc<dyn Bus>) {
    let topic = format!("_unsilo.audit.test-{}", rand_suffix());
    let key = Arc::new(SigningKey::generate(unsilo_schemas::crypto::Suite::Gm));
    let hub = format!("hub-{}", rand_suffix());
    let log = AuditLog::open(bus.clone(), &topic, &hub, key.clone())
        .await
        .expect("open");
    for i in 0..5 {
        log.append(vec![audit::AuditEvent::Control {
            actor: "operator:ops".into(),
            role: None,
            action: "agency.create".into(),
            target: format!("agency-{i}"),
            detail: Value::Null,
        }])
        .await
        .expect("append");
    }
    let checkpoint = log.checkpoint().await.expect("checkpoint").expect("moved");
    let keys = TrustedKeys::new(Some((&hub, &key)), &Default::default());
    let report = audit::verify(bus.as_ref(), &topic, &keys, &[])
        .await
        .expect("verify");
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.checkpoints, 1);

    // Cut off: a copy of the log without its last two entries contradicts the exported checkpoint.
    let cut = format!("{topic}.cut");
    copy_without_tail(bus.as_ref(), &topic, &cut, 2).await;
    let report = audit::verify(bus.as_ref(), &cut, &keys, std::slice::from_ref(&checkpoint))
        .await
        .expect("verify");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("cut off")),
        "{:?}",
        report.problems
    );

    // Forged: the next entry with a valid hash and chain link, but no signature.
    let head = last_entry(forger.as_ref(), &topic).await;
    forger
        .publish(&topic, vec![forged_entry(&head)])
        .await
        .expect("forge");
    drop(log);
    // The hub restarts after the forgery: it must not adopt it as its head (before the fix, its next signature
    // covered the forged entry and `verify` said intact).
    let restarted = AuditLog::open(bus.clone(), &topic, &hub, key.clone())
        .await
        .expect("reopen");
    let tail = restarted
        .disowned_tail()
        .expect("the forged tail is found at open");
    assert_eq!(tail.entries, 1);
    restarted
        .append(vec![audit::AuditEvent::Control {
            actor: "operator:ops".into(),
            role: None,
            action: "agency.create".into(),
            target: "agency-after".into(),
            detail: Value::Null,
        }])
        .await
        .expect("append after restart");
    for keys in [keys, TrustedKeys::default()] {
        // With the pinned key, and with only the key the chain published itself.
        let report = audit::verify(bus.as_ref(), &topic, &keys, &[])
            .await
            .expect("verify");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.message.contains("not covered by a valid signature")),
            "{:?}",
            report.problems
        );
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(
            report.chains[&hub].signed_through, report.chains[&hub].seq,
            "everything the hub wrote after the restart is signed"
        );
    }
}

#[tokio::test]
async fn forged_and_cut_off_evidence_is_reported_on_the_embedded_bus() {
    // The embedded store admits one process: the forger writes through it without the key, as anyone with
    // write access to the data directory could.
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = unsilo_hub::server::open_bus(&embedded_config(dir.path()))
        .await
        .expect("bus");
    forged_and_cut_off_evidence_is_reported(bus.clone(), bus.clone()).await;
    bus.shutdown().await.expect("close");
}

#[tokio::test]
async fn forged_and_cut_off_evidence_is_reported_on_kafka() {
    // The forger is an ordinary Kafka client of its own.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kafka_config(dir.path());
    let open = || unsilo_hub::server::open_bus(&config);
    let (bus, forger) = (open().await.expect("bus"), open().await.expect("forger"));
    forged_and_cut_off_evidence_is_reported(bus.clone(), forger.clone()).await;
    forger.shutdown().await.expect("close");
    bus.shutdown().await.expect("close");
}

#[tokio::test]
async fn audit_verify_reports_a_forged_entry_through_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(&with_grid_and_operator(embedded_config(dir.path()))).await;
    let api = Api::new(&running.base);
    api.agency("civil-affairs", "民政局", USCC_A, "S3").await;
    let (_, report) = api.get(AUDITOR_TOKEN, "/admin/audit/verify").await;
    assert_eq!(report["intact"], true, "{report}");
    let (s, keys) = api.get(AUDITOR_TOKEN, "/admin/audit/keys").await;
    assert_eq!(s, 200);
    // 国密 by default: an SM2 key (04‖x‖y), SM3 chain hashes.
    assert_eq!(keys["algorithm"], "SM2", "{keys}");
    assert_eq!(keys["hash"], "sm3", "{keys}");
    assert_eq!(
        keys["public_key"].as_str().map(str::len),
        Some(130),
        "{keys}"
    );
    // A checkpoint is written when asked for (and every N entries / T seconds by the hub itself).
    running.hub.audit.checkpoint().await.expect("checkpoint");
    let (_, cps) = api.get(AUDITOR_TOKEN, "/admin/audit/checkpoints").await;
    let exported = cps["checkpoints"].as_array().expect("list").clone();
    assert!(!exported.is_empty(), "{cps}");
    // An outside tool verifies an exported checkpoint without unsilo: gmssl (Python) from the hex key, and
    // OpenSSL from the PEM key with the SM2 OIDs — neither is a library the hub uses.
    independent_tools_verify(&keys, &exported[0]);

    let head = last_entry(running.hub.bus.as_ref(), unsilo_schemas::names::AUDIT_TOPIC).await;
    running
        .hub
        .bus
        .publish(
            unsilo_schemas::names::AUDIT_TOPIC,
            vec![forged_entry(&head)],
        )
        .await
        .expect("forge");
    let (_, report) = api.get(AUDITOR_TOKEN, "/admin/audit/verify").await;
    assert_eq!(report["intact"], false, "{report}");
    assert!(report.to_string().contains("forged"), "{report}");
    let (s, report) = api
        .post(
            AUDITOR_TOKEN,
            "/admin/audit/verify",
            json!({ "checkpoints": exported }),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        report["report"]["checkpoints"].as_u64().map(|n| n >= 2),
        Some(true),
        "{report}"
    );
    let started = Instant::now();
    running.stop().await;
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn unconditional_data_within_clearance_is_approved_automatically_when_enabled() {
    let (_dir, running, api, token) = hub_with_agency(
        |config| {
            config.policy.auto_approve_unconditional = true;
        },
        "S3",
    )
    .await;
    // Households are 有条件 data in the catalogue: the hub never approves them by itself, whatever the fields.
    let (s, body) = api
        .post(
            &token,
            "/admin/subscriptions",
            household_request("conditional", "true"),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["subscription"]["status"], "requested", "{body}");
    // Grid units are 无条件: approved at once, for UNCONDITIONAL, non-CORE records only.
    let mut open = household_request("open", "true");
    open["schema"] = json!("grid_unit");
    open["fields"] = json!([
        { "field": "grid_code", "treatment": "clear" },
        { "field": "village_code", "treatment": "clear" }
    ]);
    let (s, body) = api.post(&token, "/admin/subscriptions", open).await;
    assert_eq!(s, 201, "{body}");
    let granted = &body["subscription"];
    assert_eq!(granted["status"], "active", "{body}");
    assert_eq!(granted["auto_approved"], true, "{body}");
    let filter = granted["granted"]["filter"].as_str().expect("filter");
    assert!(
        filter.contains("share_attribute == \"UNCONDITIONAL\"")
            && filter.contains("data_grade != \"CORE\""),
        "{filter}"
    );
    let (_, q) = api
        .get(
            AUDITOR_TOKEN,
            "/admin/audit?subscription=civil-affairs.open",
        )
        .await;
    assert!(
        q["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["event"]["action"] == "subscription.approve"
                && e["event"]["detail"]["automatic"] == true
                && e["event"]["actor"] == "hub"),
        "{q}"
    );
    // A field above the agency's clearance still waits for an operator.
    let mut above = household_request("above", "true");
    above["schema"] = json!("grid_unit");
    above["fields"] = json!([{ "field": "grid_leader.phone", "treatment": "mask" }]);
    let (s, body) = api.post(&token, "/admin/subscriptions", above).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["subscription"]["status"], "requested", "{body}");
    running.stop().await;
}

#[tokio::test]
async fn a_forged_tail_found_at_restart_is_disowned_and_shown_to_operators() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_grid_and_operator(embedded_config(dir.path()));
    let running = Running::start(&config).await;
    Api::new(&running.base)
        .agency("civil-affairs", "民政局", USCC_A, "S3")
        .await;
    running.stop().await;
    // While the hub is stopped, someone with write access to its data appends an entry without its key.
    let bus = unsilo_hub::server::open_bus(&config).await.expect("bus");
    let topic = unsilo_schemas::names::AUDIT_TOPIC;
    let head = last_entry(bus.as_ref(), topic).await;
    bus.publish(topic, vec![forged_entry(&head)])
        .await
        .expect("forge");
    bus.shutdown().await.expect("close");

    let running = Running::start(&config).await;
    let tail = running
        .hub
        .audit
        .disowned_tail()
        .expect("disowned at start");
    assert_eq!(tail.entries, 1);
    let session =
        unsilo_tests::console::operator_session(&running.base, &config, "auditor", AUDITOR_TOKEN)
            .await;
    let (s, page) = {
        let r = reqwest::Client::new()
            .get(format!("{}/console/", running.base))
            .header("cookie", format!("unsilo_session={session}"))
            .send()
            .await
            .expect("overview");
        (r.status().as_u16(), r.text().await.expect("page"))
    };
    assert_eq!(s, 200);
    assert!(page.contains("evidence-alarm"), "{page}");
    let (_, metrics) = send(
        reqwest::Client::new()
            .get(format!("{}/metrics", running.base))
            .bearer_auth(SYSTEM_TOKEN),
    )
    .await;
    assert!(
        metrics
            .as_str()
            .expect("text")
            .contains("unsilo_audit_disowned_entries 1"),
        "{metrics}"
    );
    // The API's verification still names the forged entry; everything the restarted hub wrote is signed.
    let (_, report) = Api::new(&running.base)
        .get(AUDITOR_TOKEN, "/admin/audit/verify")
        .await;
    assert_eq!(report["intact"], false, "{report}");
    let chain = &report["report"]["chains"][&running.hub.audit.hub()];
    assert_eq!(chain["signed_through"], chain["seq"], "{report}");
    running.stop().await;
}

/// A hub whose sessions go idle after a second, for the idle-expiry test.
fn hub_with_quick_idle(dir: &std::path::Path) -> unsilo_hub::config::Config {
    let mut config = with_grid_and_operator(embedded_config(dir));
    config.admin.sign_in.idle_timeout = std::time::Duration::from_secs(1);
    config
}

#[tokio::test]
async fn administrators_sign_in_with_two_factors_and_five_failures_lock_the_name() {
    use unsilo_tests::console::{operator_code, post_sign_in, set_cookie_value};
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hub_with_quick_idle(dir.path());
    let running = Running::start(&config).await;
    let base = running.base.clone();

    // The token alone, or with a wrong code, is refused; a push source's token never signs in.
    for code in ["", "000000", "12345"] {
        let r = post_sign_in(&base, "ops", OPERATOR_TOKEN, code).await;
        assert_eq!(r.status().as_u16(), 401, "code {code:?}");
        assert!(set_cookie_value(&r, "unsilo_session").is_none());
    }
    // The right token under another operator's name is refused too.
    let code = operator_code(&config, "ops").await;
    let r = post_sign_in(&base, "reviewer", OPERATOR_TOKEN, &code).await;
    assert_eq!(r.status().as_u16(), 401);
    // A fifth failure for `ops` locks the name: now even the right token and code are refused.
    let r = post_sign_in(&base, "ops", "usk_wrong", "000000").await;
    assert_eq!(r.status().as_u16(), 401);
    let r = post_sign_in(&base, "ops", "usk_wrong", "000000").await;
    assert_eq!(r.status().as_u16(), 401);
    let code = operator_code(&config, "ops").await;
    let r = post_sign_in(&base, "ops", OPERATOR_TOKEN, &code).await;
    assert_eq!(r.status().as_u16(), 423, "locked");
    assert!(r.text().await.expect("page").contains("锁定"));
    // Another name is not locked: the auditor signs in with token and code.
    let code = operator_code(&config, "auditor").await;
    let r = post_sign_in(&base, "auditor", AUDITOR_TOKEN, &code).await;
    assert_eq!(r.status().as_u16(), 303, "signed in");
    let session = set_cookie_value(&r, "unsilo_session").expect("session");
    // The same code again is a replay: refused.
    let r = post_sign_in(&base, "auditor", AUDITOR_TOKEN, &code).await;
    assert_eq!(r.status().as_u16(), 401, "a code is good once");
    let page = |cookie: String| {
        let base = base.clone();
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client")
                .get(format!("{base}/console/audit"))
                .header("cookie", format!("unsilo_session={cookie}"))
                .send()
                .await
                .expect("page")
                .status()
                .as_u16()
        }
    };
    assert_eq!(page(session.clone()).await, 200);
    // Unused past the idle timeout (one second here), the session is over.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(page(session).await, 303, "idle sessions end");

    // Every sign-in, failure and lock is on record, with name, role and address.
    let (_, log) = Api::new(&base)
        .get(AUDITOR_TOKEN, "/admin/audit?limit=1000")
        .await;
    let entries = log["entries"].as_array().expect("entries");
    let of = |action: &str, outcome: Option<&str>| {
        entries
            .iter()
            .filter(|e| {
                e["event"]["action"] == action
                    && outcome.is_none_or(|o| e["event"]["detail"]["outcome"] == o)
            })
            .count()
    };
    assert!(of("console.sign_in", Some("refused")) >= 6, "{log}");
    assert_eq!(of("console.lock", None), 1, "{log}");
    assert_eq!(of("console.sign_in", Some("locked")), 1, "{log}");
    let ok = entries
        .iter()
        .find(|e| {
            e["event"]["action"] == "console.sign_in" && e["event"]["detail"]["outcome"] == "ok"
        })
        .expect("the auditor's sign-in");
    assert_eq!(ok["event"]["actor"], "operator:auditor");
    assert_eq!(ok["event"]["role"], "audit");
    assert_eq!(ok["event"]["detail"]["address"], "127.0.0.1");
    let lock = entries
        .iter()
        .find(|e| e["event"]["action"] == "console.lock")
        .expect("lock");
    assert_eq!(lock["event"]["actor"], "operator:ops");
    assert_eq!(lock["event"]["role"], "security");
    running.stop().await;
}

/// Verifies `checkpoint` with gmssl and with OpenSSL's SM2, from what `GET /admin/audit/keys` published, and
/// checks that both refuse a checkpoint whose seq was changed. Fails (never skips) when a tool is missing:
/// `tests/run.sh` installs gmssl; OpenSSL 3 ships with the system.
fn independent_tools_verify(keys: &Value, checkpoint: &Value) {
    use std::process::Command;
    let public = keys["public_key"].as_str().expect("public key");
    let pem = keys["public_key_pem"].as_str().expect("public key PEM");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tools/verify_sm2_checkpoint.py"
    );
    let mut tampered = checkpoint.clone();
    tampered["seq"] = json!(checkpoint["seq"].as_u64().expect("seq") + 1);
    for (cp, expect_ok) in [(checkpoint, true), (&tampered, false)] {
        let out = Command::new("python3")
            .args([script, public, &cp.to_string()])
            .output()
            .expect("python3 runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains("ModuleNotFoundError"),
            "gmssl is missing (tests/run.sh installs it): {text}"
        );
        assert_eq!(out.status.success(), expect_ok, "gmssl on {cp}: {text}");

        // OpenSSL: the message, byte for byte as docs/compliance.md states it, and the DER signature.
        let dir = tempfile::tempdir().expect("tempdir");
        let message = format!(
            "unsilo-audit-checkpoint-v1\0{}\0{}\0{}\0{}",
            cp["hub"].as_str().expect("hub"),
            cp["seq"],
            cp["hash"].as_str().expect("hash"),
            cp["time_ms"]
        );
        std::fs::write(dir.path().join("msg"), message).expect("write");
        std::fs::write(dir.path().join("pub.pem"), pem).expect("write");
        std::fs::write(
            dir.path().join("sig.der"),
            hex::decode(cp["signature"].as_str().expect("signature")).expect("hex"),
        )
        .expect("write");
        let out = Command::new("openssl")
            .current_dir(dir.path())
            .args([
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "pub.pem",
                "-rawin",
                "-in",
                "msg",
                "-sigfile",
                "sig.der",
                "-digest",
                "sm3",
                "-pkeyopt",
                "distid:1234567812345678",
            ])
            .output()
            .expect("openssl runs");
        assert_eq!(
            out.status.success(),
            expect_ok,
            "openssl on {cp}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn operators_give_the_second_factor_on_the_api_too() {
    use unsilo_tests::console::operator_code;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = with_grid_and_operator(embedded_config(dir.path()));
    // The production default.
    config.admin.sign_in.api_second_factor = true;
    let running = Running::start(&config).await;
    let http = reqwest::Client::new();
    let whoami = |otp: Option<String>| {
        let mut r = http
            .get(format!("{}/admin/whoami", running.base))
            .bearer_auth(AUDITOR_TOKEN);
        if let Some(code) = otp {
            r = r.header("X-Unsilo-OTP", code);
        }
        send(r)
    };
    // A stolen token alone opens nothing: the answer says what is missing.
    let (s, body) = whoami(None).await;
    assert_eq!(s, 401, "{body}");
    assert!(body.to_string().contains("X-Unsilo-OTP"), "{body}");
    let (s, _) = whoami(Some("000000".into())).await;
    assert_eq!(s, 401, "a wrong code");
    // With the current code, the call goes through — and the same code serves the calls of its 30 seconds.
    let code = operator_code(&config, "auditor").await;
    let (s, body) = whoami(Some(code.clone())).await;
    assert_eq!((s, &body["role"]), (200, &json!("audit")), "{body}");
    let (s, _) = whoami(Some(code)).await;
    assert_eq!(s, 200);
    // Agencies are not administrators: an agency's token works as before.
    let code = operator_code(&config, "ops").await;
    let (s, created) = send(
        http.post(format!("{}/admin/agencies", running.base))
            .bearer_auth(OPERATOR_TOKEN)
            .header("X-Unsilo-OTP", code)
            .json(&json!({ "id": "civil-affairs", "name": "民政局", "uscc": USCC_A, "clearance": "S3" })),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let agency = created["token"].as_str().expect("token").to_owned();
    let (s, body) = send(
        http.get(format!("{}/admin/whoami", running.base))
            .bearer_auth(&agency),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    running.stop().await;
}
