//! End-to-end: agencies receive exactly what they are approved for.
//!
//! A whole hub over real HTTP on 127.0.0.1: the grid platform pushes a RED-level household and a grid event about
//! the same person; civil affairs (clearance S3) is approved for RED households with a pseudonymous person key and
//! the care level, public security (S2) for the event type and the village code only. Each agency pulls what it
//! was granted — nothing more, no ID number or phone anywhere — cannot see the other's subscription, and after
//! revocation receives nothing; the audit log answers who received data about the person and verifies intact.
//! The same test body runs on the embedded bus and on Kafka (`UNSILO_TEST_KAFKA`, started by tests/run.sh).

use std::time::Duration;

use serde_json::{json, Value};
use unsilo_hub::config::Config;
use unsilo_tests::api::{
    grid_messages, push_grid, with_grid_and_operator, Api, AUDITOR_TOKEN, OPERATOR_TOKEN,
    SYSTEM_TOKEN,
};
use unsilo_tests::{embedded_config, kafka_config, rand_suffix, RunningHub};

/// The head of the RED household, also a party of the grid event.
const PERSON: &str = "610921196105170316";
const PHONE: &str = "15991458236";

/// The leaf paths present in a JSON record, e.g. `location.address`.
fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(v, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// The whole story, on whichever bus `config` names.
async fn agencies_receive_exactly_what_they_are_approved_for(config: Config) {
    let running = RunningHub::start(&with_grid_and_operator(config)).await;
    let api = Api::new(&running.base);
    let sfx = rand_suffix();
    let civil = format!("civil-affairs-{sfx}");
    let police = format!("public-security-{sfx}");
    let civil_token = api
        .agency(&civil, "汉阴县民政局", "11610921016050037T", "S3")
        .await;
    let police_token = api
        .agency(&police, "汉阴县公安局", "11610921MB12345671", "S2")
        .await;
    let (red, green, event) = grid_messages(sfx);
    let red_id = red["hhbh"].as_str().unwrap().to_owned();
    let green_id = green["hhbh"].as_str().unwrap().to_owned();
    let event_no = event["sjbh"].as_str().unwrap().to_owned();

    // Civil affairs asks for RED households of this run, with a pseudonymous person key and the care level.
    let (s, body) = api
        .post(
            &civil_token,
            "/admin/subscriptions",
            json!({
                "name": "red-households",
                "schema": "household",
                "filter": format!("care_level == \"RED\" && household_id in [\"{red_id}\", \"{green_id}\"]"),
                "fields": [
                    { "field": "head_cert_no", "treatment": "pseudonymise" },
                    { "field": "care_level", "treatment": "clear" },
                    { "field": "village_code", "treatment": "clear" }
                ],
                "purpose": "连心户走访帮扶", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00",
                "channel": { "kind": "pull" }
            }),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let civil_sub = format!("{civil}.red-households");
    assert_eq!(body["subscription"]["status"], "requested");

    // A filter naming a field the schema does not have is refused at request time, naming it.
    let (s, body) = api
        .post(
            &police_token,
            "/admin/subscriptions",
            json!({
                "name": "bad", "schema": "grid_event", "filter": "regoin_code == \"6109\"",
                "fields": [{ "field": "event_type_code", "treatment": "clear" }],
                "purpose": "p", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00", "channel": { "kind": "pull" }
            }),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("regoin_code"),
        "{body}"
    );

    // Public security asks for the event type and where (generalised to the village code) of this run's event.
    let (s, body) = api
        .post(
            &police_token,
            "/admin/subscriptions",
            json!({
                "name": "grid-events",
                "schema": "grid_event",
                "filter": format!("region_code.startsWith(\"610921\") && event_no == \"{event_no}\""),
                "fields": [
                    { "field": "event_type_code", "treatment": "clear" },
                    { "field": "location.address", "treatment": "generalise" }
                ],
                "purpose": "社会治安形势研判", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00",
                "channel": { "kind": "pull" }
            }),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let police_sub = format!("{police}.grid-events");

    // Agencies cannot approve; nor can operators approve fields above clearance without saying so.
    let (s, _) = api
        .post(
            &civil_token,
            &format!("/admin/subscriptions/{civil_sub}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            &format!("/admin/subscriptions/{civil_sub}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("head_cert_no (S4)"),
        "{body}"
    );
    let (s, body) = api
        .approve(
            &civil_sub,
            json!({ "approve_above_clearance": ["head_cert_no"] }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "active");
    let (s, body) = api
        .approve(
            &police_sub,
            json!({ "approve_above_clearance": ["location.address"] }),
        )
        .await;
    assert_eq!(s, 200, "{body}");

    // The view schemas are registered, masked and pseudonymised fields as strings.
    let (s, view) = api
        .get(
            OPERATOR_TOKEN,
            &format!("/subjects/sub.{civil}.red-households-value/versions/latest"),
        )
        .await;
    assert_eq!(s, 200, "{view}");
    let view_schema: Value = serde_json::from_str(view["schema"].as_str().unwrap()).unwrap();
    let names: Vec<&str> = view_schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"head_cert_no") && names.contains(&"care_level"));

    push_grid(&running.base, &[&red, &green, &event]).await;

    // Civil affairs: the RED household only, exactly the three fields, the ID number as a stable pseudonym.
    let (records, cursor) = api.pull_at_least(&civil_token, &civil_sub, 1).await;
    let records_seen = records.clone();
    assert_eq!(distinct_records(&records), 1, "{records:?}");
    let record = &records[0]["record"];
    let mut paths = Vec::new();
    leaf_paths(record, "", &mut paths);
    paths.sort();
    assert_eq!(paths, vec!["care_level", "head_cert_no", "village_code"]);
    assert_eq!(record["care_level"], "RED");
    assert_eq!(record["village_code"], "610921107200");
    let person_key = running.hub.governance.person_key_of_cert_no(PERSON);
    assert_eq!(record["head_cert_no"], json!(person_key));
    let text = records[0].to_string();
    assert!(!text.contains(PERSON) && !text.contains(PHONE), "{text}");

    // Public security: the event type and the village code, nothing about the people in it.
    let (records, _) = api.pull_at_least(&police_token, &police_sub, 1).await;
    assert_eq!(distinct_records(&records), 1, "{records:?}");
    let mut paths = Vec::new();
    leaf_paths(&records[0]["record"], "", &mut paths);
    paths.sort();
    assert_eq!(paths, vec!["event_type_code", "location.address"]);
    assert_eq!(records[0]["record"]["location"]["address"], "610921107200");
    let text = records[0].to_string();
    assert!(
        !text.contains(PERSON) && !text.contains(PHONE) && !text.contains("陈德福"),
        "{text}"
    );

    // Operators watch the flow per subscription.
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", running.base))
        .bearer_auth(SYSTEM_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!(
            "unsilo_released_records_total{{subscription=\"{civil_sub}\"}} "
        )),
        "{metrics}"
    );

    // One agency's token cannot read another's subscription; operators do not pull.
    let (s, _) = api
        .get(&police_token, &format!("/admin/subscriptions/{civil_sub}"))
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .get(
            &police_token,
            &format!("/v1/subscriptions/{civil_sub}/records"),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .get(
            OPERATOR_TOKEN,
            &format!("/v1/subscriptions/{civil_sub}/records"),
        )
        .await;
    assert_eq!(s, 403);
    let (s, list) = api.get(&police_token, "/admin/subscriptions").await;
    assert_eq!(s, 200);
    assert!(list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["agency"] == json!(police)));
    let (s, _) = api.get("usk_not-a-token", "/admin/subscriptions").await;
    assert_eq!(s, 401);

    // Acknowledged records are not served again to a cursor-less pull.
    let (s, _) = api
        .post(
            &civil_token,
            &format!("/v1/subscriptions/{civil_sub}/ack"),
            json!({ "cursor": cursor }),
        )
        .await;
    assert_eq!(s, 200);
    let (s, body) = api
        .get(
            &civil_token,
            &format!("/v1/subscriptions/{civil_sub}/records?wait_ms=200"),
        )
        .await;
    assert_eq!(s, 200);
    // Delivery is at-least-once: after the ack only a redelivered copy of an acknowledged record may come.
    let acked: Vec<&Value> = body["records"].as_array().unwrap().iter().collect();
    assert!(
        acked
            .iter()
            .all(|r| r["record_id"] == records_seen[0]["record_id"]),
        "{body}"
    );

    // Evidence: who received data about this person, under which subscription.
    let (s, body) = api
        .post(
            AUDITOR_TOKEN,
            "/admin/audit/query",
            json!({ "cert_no": PERSON }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let receivers: Vec<(String, String)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"]["agency"].as_str().unwrap_or_default().to_owned(),
                e["event"]["subscription"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .filter(|(a, _)| a == &civil || a == &police)
        .collect();
    assert!(
        receivers.contains(&(civil.clone(), civil_sub.clone())),
        "{receivers:?}"
    );
    assert!(
        receivers.contains(&(police.clone(), police_sub.clone())),
        "{receivers:?}"
    );
    assert!(
        !body.to_string().contains(PERSON),
        "the audit log must not hold ID numbers"
    );

    // The person's view: from the person index, exactly the releases the audit log holds about this person.
    let mut expected: Vec<(String, String)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["record_id"].is_string())
        .map(|e| {
            (
                e["event"]["record_id"].as_str().unwrap().to_owned(),
                e["event"]["subscription"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    expected.sort();
    let (s, report) = api
        .post(
            AUDITOR_TOKEN,
            "/admin/reports/person",
            json!({ "cert_no": PERSON }),
        )
        .await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(
        report["person_key"],
        json!(running.hub.governance.person_key_of_cert_no(PERSON))
    );
    let mut reported: Vec<(String, String)> = report["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["record_id"].as_str().unwrap().to_owned(),
                r["subscription"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    reported.sort();
    assert!(!reported.is_empty());
    assert_eq!(reported, expected, "{report}");
    let first = &report["releases"][0];
    assert!(
        first["purpose"].is_string() && first["fields"].is_array(),
        "{report}"
    );
    assert!(!report.to_string().contains(PERSON), "{report}");
    for token in [civil_token.as_str(), unsilo_tests::api::PUSH_TOKEN] {
        let (s, _) = api
            .post(token, "/admin/reports/person", json!({ "cert_no": PERSON }))
            .await;
        assert_eq!(s, 403, "only operators and report-permitted sources");
    }
    let (s, body) = api
        .post(
            AUDITOR_TOKEN,
            "/admin/reports/person",
            json!({ "cert_no": "610921196105170317" }),
        )
        .await;
    assert_eq!(s, 422, "a wrong check digit is named: {body}");

    // Revocation: nothing more is delivered, even for records that match.
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            &format!("/admin/subscriptions/{civil_sub}/revoke"),
            json!({ "reason": "purpose fulfilled" }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let topic = format!("sub.{civil}.red-households");
    let before = released_count(&running, &topic).await;
    // A witness subscription on the same records: once it receives the new household, the router has evaluated
    // (and skipped) the revoked subscription for it.
    let (witness, _) = api
        .subscribe_approved(
            &police_token,
            &police,
            json!({
                "name": "witness", "schema": "household",
                "filter": format!(
                    "household_id == \"{red_id}\" && source_version == \"20240710110230\""
                ),
                "fields": [{ "field": "member_count", "treatment": "clear" }],
                "purpose": "test witness", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00", "channel": { "kind": "pull" }
            }),
            json!({}),
        )
        .await;
    let mut red_again = red.clone();
    red_again["gxsj"] = json!("20240710110230");
    push_grid(&running.base, &[&red_again]).await;
    let (records, _) = api.pull_at_least(&police_token, &witness, 1).await;
    assert_eq!(distinct_records(&records), 1, "{records:?}");
    assert_eq!(
        released_count(&running, &topic).await,
        before,
        "released after revocation"
    );
    let (s, body) = api
        .get(
            &civil_token,
            &format!("/v1/subscriptions/{civil_sub}/records?wait_ms=100"),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("revoked"));

    // The audit log is intact.
    let (s, body) = api.get(AUDITOR_TOKEN, "/admin/audit/verify").await;
    assert_eq!(s, 200);
    assert_eq!(body["intact"], json!(true), "{body}");
    running.stop().await;
}

/// How many distinct records (by record id) a pull returned: delivery is at-least-once, so a record may come twice.
fn distinct_records(records: &[Value]) -> usize {
    records
        .iter()
        .map(|r| r["record_id"].to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// How many records were released to a subscription's topic (read from the start, all partitions).
async fn released_count(running: &RunningHub, topic: &str) -> usize {
    let bus = &running.hub.bus;
    let partitions = bus
        .partition_count(topic)
        .await
        .expect("partitions")
        .expect("topic exists");
    let mut n = 0;
    for p in 0..partitions {
        let mut offset = 0;
        loop {
            let batch = bus
                .fetch(&unsilo_bus::FetchRequest::new(
                    topic,
                    p,
                    offset,
                    1000,
                    Duration::from_millis(200),
                ))
                .await
                .expect("fetch");
            let Some(last) = batch.last() else { break };
            offset = last.position.offset + 1;
            n += batch.len();
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agencies_receive_exactly_what_they_are_approved_for_on_the_embedded_bus() {
    let dir = tempfile::tempdir().expect("tempdir");
    agencies_receive_exactly_what_they_are_approved_for(embedded_config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agencies_receive_exactly_what_they_are_approved_for_on_kafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    agencies_receive_exactly_what_they_are_approved_for(kafka_config(dir.path())).await;
}

/// Two hub processes of one deployment on Kafka: a change made through one is followed by the other — an agency
/// created on A authenticates on B, and a revocation on A stops B's deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubs_of_one_deployment_follow_each_others_control_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_a = with_grid_and_operator(kafka_config(dir.path()));
    let mut config_b = config_a.clone();
    config_b.hub.id = format!("{}-b", config_a.hub.id);
    config_b.connectors.clear();
    let a = RunningHub::start(&config_a).await;
    let b = RunningHub::start(&config_b).await;
    let (api_a, api_b) = (Api::new(&a.base), Api::new(&b.base));
    let sfx = rand_suffix();
    let agency = format!("two-hubs-{sfx}");
    let token = api_a
        .agency(&agency, "汉阴县民政局", "11610921016050037T", "S3")
        .await;

    // Wait for B's control plane, not by presenting the token to B until it works: unknown tokens from one
    // address are failed authentications, and enough of them block the address.
    let started = std::time::Instant::now();
    while b.hub.control.agency(&agency).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "hub B never saw the agency"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, body) = api_b.get(&token, "/admin/whoami").await;
    assert_eq!(s, 200, "B authenticates the agency created on A: {body}");
    eprintln!(
        "hub B followed the agency's creation in {:?}",
        started.elapsed()
    );

    let (red, _, _) = grid_messages(sfx);
    let red_id = red["hhbh"].as_str().unwrap().to_owned();
    let (id, _) = api_a
        .subscribe_approved(
            &token,
            &agency,
            json!({
                "name": "red", "schema": "household",
                "filter": format!("household_id == \"{red_id}\""),
                "fields": [{ "field": "care_level", "treatment": "clear" }],
                "purpose": "帮扶", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00", "channel": { "kind": "pull" }
            }),
            json!({}),
        )
        .await;
    push_grid(&a.base, &[&red]).await;
    let (records, _) = api_b.pull_at_least(&token, &id, 1).await;
    assert_eq!(records[0]["record"]["care_level"], "RED");

    let (s, _) = api_a
        .post(
            OPERATOR_TOKEN,
            &format!("/admin/subscriptions/{id}/revoke"),
            json!({ "reason": "done" }),
        )
        .await;
    assert_eq!(s, 200);
    let started = std::time::Instant::now();
    loop {
        let (s, _) = api_b
            .get(&token, &format!("/v1/subscriptions/{id}/records?wait_ms=0"))
            .await;
        if s == 403 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "hub B still delivers after revocation on A"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("hub B followed the revocation in {:?}", started.elapsed());
    a.stop().await;
    b.stop().await;
}
