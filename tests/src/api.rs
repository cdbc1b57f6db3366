//! A client of the hub's admin and pull APIs, and the grid platform's test messages, for end-to-end tests.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use unsilo_connectors::conformance;
use unsilo_hub::auth::token_digest;
use unsilo_hub::auth::{OperatorCredential, Role};
use unsilo_hub::config::{Config, ConnectorConfig, HttpPushConfig, TransportKind};

/// The grid platform's push token.
pub const PUSH_TOKEN: &str = "grid-platform-push-token-5d1e";
/// The security administrator's token (安全管理员 `ops`: agencies, requests, grants).
pub const OPERATOR_TOKEN: &str = "usk_operator-token-for-the-e2e-tests-0123456789";
/// A second security administrator's token, for grants that need two (双人复核).
pub const REVIEWER_TOKEN: &str = "usk_reviewer-token-for-the-e2e-tests-9876543210";
/// The system administrator's token (系统管理员 `sysadmin`: connectors, replay, registry writes, metrics).
pub const SYSTEM_TOKEN: &str = "usk_system-admin-token-for-the-e2e-tests-5432109876";
/// The audit administrator's token (审计管理员 `auditor`: the audit log, verification, person reports).
pub const AUDITOR_TOKEN: &str = "usk_audit-admin-token-for-the-e2e-tests-1098765432";

/// The operators of the tests' hubs, one per role (三员分立) and a second security administrator.
pub fn test_operators() -> Vec<OperatorCredential> {
    [
        ("ops", Role::Security, OPERATOR_TOKEN),
        ("reviewer", Role::Security, REVIEWER_TOKEN),
        ("sysadmin", Role::System, SYSTEM_TOKEN),
        ("auditor", Role::Audit, AUDITOR_TOKEN),
    ]
    .into_iter()
    .map(|(name, role, token)| OperatorCredential {
        name: name.into(),
        role,
        token_sha256: token_digest(token),
        totp_epoch: 0,
        client_cert_sha256: None,
    })
    .collect()
}

/// A hub configuration with the grid push connector and the operators of [`test_operators`].
pub fn with_grid_and_operator(mut config: Config) -> Config {
    config.connectors.push(ConnectorConfig {
        name: "grid".into(),
        definition: "builtin:grid".into(),
        transport: TransportKind::HttpPush,
        http_push: Some(HttpPushConfig {
            token_sha256: token_digest(PUSH_TOKEN),
            report: false,
        }),
        http_poll: None,
        sql_poll: None,
        file_drop: None,
        kafka_topic: None,
        provider: None,
        provider_schemas: None,
    });
    config.admin.operators.extend(test_operators());
    config
}

/// `config` with rate limits that do not get in the way of a test calling every route many times.
pub fn with_generous_limits(mut config: Config) -> Config {
    let generous = unsilo_hub::access::RateLimit {
        per_second: 100_000.0,
        burst: 100_000,
    };
    config.limits.admin = generous;
    config.limits.registry = generous;
    config.limits.pull = generous;
    config.limits.ingest = generous;
    config
}

/// An HTTP client that presents the system administrator's token with every request (registry writes).
pub fn operator_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {SYSTEM_TOKEN}")).expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// A small client of the admin and pull APIs.
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// A client of the hub at `base`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// A client of the hub at `base` through `http` (one that trusts the hub's TLS certificate, say).
    pub fn with_client(base: &str, http: reqwest::Client) -> Self {
        Self {
            base: base.to_owned(),
            http,
        }
    }

    /// Pushes grid messages to the hub as the grid platform; they must all be accepted.
    pub async fn push_grid(&self, messages: &[&Value]) {
        let r = self
            .http
            .post(format!("{}/ingest/grid", self.base))
            .bearer_auth(PUSH_TOKEN)
            .json(&messages)
            .send()
            .await
            .expect("push");
        assert_eq!(
            r.status().as_u16(),
            200,
            "push: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// Calls `method path` with `token`; returns the status and the JSON body (or the text as a JSON string).
    pub async fn call(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POSTs a JSON body.
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, token, path, Some(body))
            .await
    }

    /// GETs a path.
    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, token, path, None).await
    }

    /// Creates an agency and returns its token.
    pub async fn agency(&self, id: &str, name: &str, uscc: &str, clearance: &str) -> String {
        let (s, body) = self
            .post(
                OPERATOR_TOKEN,
                "/admin/agencies",
                json!({ "id": id, "name": name, "uscc": uscc, "clearance": clearance }),
            )
            .await;
        assert_eq!(s, 201, "create agency {id}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Files a subscription request as the agency holding `token` and has the operator approve it with
    /// `approval`; returns the subscription id (`<agency>.<name>`) and the answer to the request.
    pub async fn subscribe_approved(
        &self,
        token: &str,
        agency: &str,
        request: Value,
        approval: Value,
    ) -> (String, Value) {
        let (s, answer) = self.post(token, "/admin/subscriptions", request).await;
        assert_eq!(s, 201, "request: {answer}");
        let id = format!(
            "{agency}.{}",
            answer["subscription"]["name"].as_str().expect("name")
        );
        let (s, body) = self.approve(&id, approval).await;
        assert_eq!(s, 200, "approve {id}: {body}");
        (id, answer)
    }

    /// One agency per USCC in `usccs` (`<prefix><k>-<sfx>`, cleared for S3), each subscribed by pull to every
    /// event of run `sfx` ([`run_events`]) with two clear fields; returns each agency's token and subscription id.
    pub async fn subscribe_to_run_events(
        &self,
        prefix: &str,
        sfx: u64,
        usccs: &[&str],
    ) -> Vec<(String, String)> {
        let mut subscribers = Vec::new();
        for (k, uscc) in usccs.iter().enumerate() {
            let agency = format!("{prefix}{k}-{sfx}");
            let token = self.agency(&agency, "汉阴县应急管理局", uscc, "S3").await;
            let (id, _) = self
                .subscribe_approved(
                    &token,
                    &agency,
                    json!({
                        "name": "events",
                        "schema": "grid_event",
                        "filter": format!("event_no.startsWith(\"SJ{sfx:09}\")"),
                        "fields": [
                            { "field": "event_no", "treatment": "clear" },
                            { "field": "event_type_code", "treatment": "clear" }
                        ],
                        "purpose": "应急事件研判", "legal_basis": "《政务数据共享条例》",
                        "scenario": "test scenario", "scope": "test scope",
                        "expires_at": "2030-12-31T23:59:59+08:00",
                        "channel": { "kind": "pull" }
                    }),
                    json!({}),
                )
                .await;
            subscribers.push((token, id));
        }
        subscribers
    }

    /// Approves subscription `id` as the operator with `approval`; where the grant needs two operators
    /// (双人复核, answered 202), the reviewer confirms it. Returns the last answer.
    pub async fn approve(&self, id: &str, approval: Value) -> (u16, Value) {
        let path = format!("/admin/subscriptions/{id}/approve");
        let (s, body) = self.post(OPERATOR_TOKEN, &path, approval).await;
        if s != 202 {
            return (s, body);
        }
        assert_eq!(body["subscription"]["status"], "requested", "{body}");
        self.post(REVIEWER_TOKEN, &path, json!({})).await
    }

    /// The release entries of subscription `id` in the audit log, as the audit administrator sees them.
    pub async fn release_entries(&self, id: &str) -> Vec<Value> {
        let (s, q) = self
            .get(
                AUDITOR_TOKEN,
                &format!("/admin/audit?subscription={id}&limit=10000"),
            )
            .await;
        assert_eq!(s, 200, "{q}");
        q["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["event"]["kind"] == "release")
            .cloned()
            .collect()
    }

    /// Pulls until at least `want` records arrived (or a minute passed), from the acknowledged position.
    pub async fn pull_at_least(
        &self,
        token: &str,
        subscription: &str,
        want: usize,
    ) -> (Vec<Value>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut records = Vec::new();
        let mut cursor = String::new();
        loop {
            let path = if cursor.is_empty() {
                format!("/v1/subscriptions/{subscription}/records?wait_ms=500")
            } else {
                format!("/v1/subscriptions/{subscription}/records?wait_ms=500&cursor={cursor}")
            };
            let (s, body) = self.get(token, &path).await;
            assert_eq!(s, 200, "pull {subscription}: {body}");
            records.extend(body["records"].as_array().cloned().unwrap_or_default());
            cursor = body["cursor"].as_str().expect("cursor").to_owned();
            if records.len() >= want {
                return (records, cursor);
            }
            assert!(
                Instant::now() < deadline,
                "{subscription}: {} of {want} records after a minute",
                records.len()
            );
        }
    }
}

/// Fixtures of the grid connector with ids made unique for this run, so tests sharing a broker never see each
/// other's records: the RED household, a GREEN one in the same village, and a grid event about the RED head.
pub fn grid_messages(suffix: u64) -> (Value, Value, Value) {
    let fixture = |name: &str| -> Value {
        let all = conformance::read_fixtures(unsilo_connectors::builtin::fixtures("grid"))
            .expect("fixtures");
        let f = all
            .into_iter()
            .find(|f| f.name.contains(name))
            .unwrap_or_else(|| panic!("grid fixture {name}"));
        f.input.parsed.expect("valid fixture")
    };
    let digits = format!("{suffix:09}");
    let mut red = fixture("household_red");
    red["hhbh"] = json!(format!("HH6109211072{digits}"));
    let mut green = fixture("household_green");
    green["hhbh"] = json!(format!("HH6109211073{digits}"));
    let mut event = fixture("event_1_reported");
    event["sjbh"] = json!(format!("SJ61092120240709{}", &digits[..4]));
    event["msgId"] = json!(format!("7f3c2a91e04b4d6c8a1f{digits}000"));
    (red, green, event)
}

/// Grid events of run `sfx` numbered `SJ<run><i>` for each `i` in `range`, each naming the fixture's party
/// (陈德福).
pub fn run_events(sfx: u64, range: std::ops::Range<u32>) -> Vec<Value> {
    let (_, _, event) = grid_messages(sfx);
    range
        .map(|i| {
            let mut e = event.clone();
            e["sjbh"] = json!(format!("SJ{sfx:09}{i:09}"));
            e["msgId"] = json!(format!("7f3c2a91e04b4d6c{sfx:09}{i:07}"));
            e
        })
        .collect()
}

/// Pushes grid messages to the hub as the grid platform.
pub async fn push_grid(base: &str, messages: &[&Value]) {
    Api::new(base).push_grid(messages).await;
}
