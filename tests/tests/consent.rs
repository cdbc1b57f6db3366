//! Consent over time, end to end over HTTP on 127.0.0.1, on both buses: a subscription granted history
//! (`backfill_from`) receives exactly the records its grant allows from that time and then the live ones, with no
//! gap and nothing twice, marked as history in the audit log and in what it receives; `retain_days` travels with
//! every record and every release entry; a paused subscription receives nothing and, resumed, gets what arrived
//! meanwhile, once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use unsilo_hub::config::Config;
use unsilo_tests::api::{
    grid_messages, push_grid, with_grid_and_operator, Api, AUDITOR_TOKEN, OPERATOR_TOKEN,
};
use unsilo_tests::{embedded_config, kafka_config, rand_suffix, RunningHub};

/// Grid events numbered `SJ<run><i>` for each `i` in `range`, all in county 610921.
fn events(sfx: u64, range: std::ops::Range<u32>) -> Vec<Value> {
    let (_, _, event) = grid_messages(sfx);
    range
        .map(|i| {
            let mut e = event.clone();
            e["sjbh"] = json!(event_no(sfx, i));
            e["msgId"] = json!(format!("7f3c2a91e04b4d6c{sfx:09}{i:07}"));
            e
        })
        .collect()
}

fn event_no(sfx: u64, i: u32) -> String {
    format!("SJ{sfx:09}{i:09}")
}

async fn push_events(base: &str, sfx: u64, range: std::ops::Range<u32>) {
    let batch = events(sfx, range);
    let refs: Vec<&Value> = batch.iter().collect();
    push_grid(base, &refs).await;
}

/// The event numbers of pulled records, with how often each came.
fn counted(records: &[Value]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for r in records {
        let no = r["record"]["event_no"]
            .as_str()
            .expect("event_no")
            .to_owned();
        *seen.entry(no).or_insert(0) += 1;
    }
    seen
}

fn numbers(sfx: u64, range: std::ops::Range<u32>) -> BTreeSet<String> {
    range.map(|i| event_no(sfx, i)).collect()
}

/// Pulls from `cursor` until `want` records came, then once more to be sure nothing else follows; acknowledges.
async fn pull_exactly(api: &Api, token: &str, id: &str, want: usize) -> Vec<Value> {
    let (mut records, cursor) = api.pull_at_least(token, id, want).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (s, more) = api
        .get(
            token,
            &format!("/v1/subscriptions/{id}/records?wait_ms=300&cursor={cursor}"),
        )
        .await;
    assert_eq!(s, 200, "{more}");
    records.extend(more["records"].as_array().cloned().unwrap_or_default());
    let last = more["cursor"].as_str().expect("cursor");
    let (s, body) = api
        .post(
            token,
            &format!("/v1/subscriptions/{id}/ack"),
            json!({ "cursor": last }),
        )
        .await;
    assert_eq!(s, 200, "ack: {body}");
    records
}

async fn history_then_live_then_pause_and_resume(config: Config) {
    let running = RunningHub::start(&with_grid_and_operator(config)).await;
    let api = Api::new(&running.base);
    let sfx = rand_suffix();
    let agency = format!("emergency-{sfx}");
    let token = api
        .agency(&agency, "汉阴县应急管理局", "11610921MB12345671", "S2")
        .await;

    // Before the history starts: 3 events. Then the time the agency asks history from, then 4 more events.
    push_events(&running.base, sfx, 0..3).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let from = unsilo_bus::now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    push_events(&running.base, sfx, 3..7).await;

    let request = |name: &str, extra: Value| {
        let mut r = json!({
            "name": name,
            "schema": "grid_event",
            "filter": format!("event_no.startsWith(\"SJ{sfx:09}\")"),
            "fields": [
                { "field": "event_no", "treatment": "clear" },
                { "field": "event_type_code", "treatment": "clear" }
            ],
            "purpose": "应急事件研判", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00",
            "channel": { "kind": "pull" }
        });
        for (k, v) in extra.as_object().expect("object") {
            r[k] = v.clone();
        }
        r
    };

    // What a request may say is checked: a future start, and a retention of 0 days, are refused by name.
    let (s, body) = api
        .post(
            &token,
            "/admin/subscriptions",
            request(
                "future",
                json!({ "backfill_from_ms": unsilo_bus::now_ms() + 3_600_000 }),
            ),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("backfill_from"),
        "{body}"
    );
    let (s, body) = api
        .post(
            &token,
            "/admin/subscriptions",
            request("zero", json!({ "retain_days": 0 })),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("retain_days"),
        "{body}"
    );

    // The agency asks history from an hour earlier (as RFC 3339 text) and to keep records for 90 days; the
    // operator narrows both: history from `from`, 30 days.
    let asked = chrono::DateTime::from_timestamp_millis(from - 3_600_000)
        .expect("time")
        .to_rfc3339();
    let (s, body) = api
        .post(
            &token,
            "/admin/subscriptions",
            request(
                "history",
                json!({ "backfill_from": asked, "retain_days": 90 }),
            ),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let id = format!("{agency}.history");
    assert_eq!(
        body["subscription"]["requested"]["backfill_from_ms"],
        from - 3_600_000,
        "the RFC 3339 time is read to the millisecond: {body}"
    );
    // Widening is refused: an earlier start, or a longer retention, than asked.
    let (s, body) = api
        .approve(&id, json!({ "backfill_from_ms": from - 7_200_000 }))
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = api.approve(&id, json!({ "retain_days": 365 })).await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = api
        .approve(&id, json!({ "backfill_from_ms": from, "retain_days": 30 }))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["granted"]["backfill_from_ms"], from, "{body}");
    assert_eq!(body["granted"]["retain_days"], 30, "{body}");

    // A second subscription, without history: it is paused and resumed alongside the first.
    let (s, body) = api
        .post(&token, "/admin/subscriptions", request("plain", json!({})))
        .await;
    assert_eq!(s, 201, "{body}");
    let plain = format!("{agency}.plain");
    let (s, body) = api.approve(&plain, json!({})).await;
    assert_eq!(s, 200, "{body}");

    // Live records after activation.
    push_events(&running.base, sfx, 7..10).await;

    // Exactly the history since `from` (3..7) and the live records (7..10), each once.
    let records = pull_exactly(&api, &token, &id, 7).await;
    let seen = counted(&records);
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        numbers(sfx, 3..10),
        "{records:#?}"
    );
    assert!(
        seen.values().all(|n| *n == 1),
        "a record came twice: {seen:?}"
    );
    for r in &records {
        let no = r["record"]["event_no"].as_str().unwrap();
        let from_history = numbers(sfx, 3..7).contains(no);
        assert_eq!(r["history"] == true, from_history, "{r}");
        assert_eq!(r["retain_days"], 30, "{r}");
        assert!(
            r["retain_until"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{r}"
        );
    }
    // The evidence says the same: 7 releases, the 4 of history marked, each with the retention.
    let entries = api.release_entries(&id).await;
    assert_eq!(entries.len(), 7, "{entries:#?}");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["event"]["history"] == true)
            .count(),
        4,
        "{entries:#?}"
    );
    assert!(entries.iter().all(|e| e["event"]["retain_days"] == 30));
    // Progress: live, with the 4 released from history.
    let (s, progress) = api
        .get(&token, &format!("/admin/subscriptions/{id}/progress"))
        .await;
    assert_eq!(s, 200, "{progress}");
    assert_eq!(progress["history"]["live"], true, "{progress}");
    assert_eq!(progress["history"]["released"], 4, "{progress}");

    // The agency pauses it: nothing is released or delivered while paused.
    let (s, body) = api
        .post(
            &token,
            &format!("/admin/subscriptions/{id}/pause"),
            json!({ "reason": "系统维护" }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "paused");
    let (s, body) = api
        .post(
            &token,
            &format!("/admin/subscriptions/{id}/pause"),
            json!({ "reason": "again" }),
        )
        .await;
    assert_eq!(s, 409, "pausing twice: {body}");
    let plain_before = pull_exactly(&api, &token, &plain, 3).await;
    assert_eq!(
        counted(&plain_before)
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        numbers(sfx, 7..10),
        "without history, only records after approval"
    );
    let (s, body) = api
        .post(
            &token,
            &format!("/admin/subscriptions/{plain}/pause"),
            json!({ "reason": "系统维护" }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    push_events(&running.base, sfx, 10..13).await;
    let (s, body) = api
        .get(
            &token,
            &format!("/v1/subscriptions/{id}/records?wait_ms=200"),
        )
        .await;
    assert_eq!(s, 403, "pulling a paused subscription: {body}");
    assert!(
        body["message"].as_str().unwrap().contains("paused"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        api.release_entries(&id).await.len(),
        7,
        "released while paused"
    );

    // The operator resumes it: what arrived while paused comes first, then live records; nothing twice.
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            &format!("/admin/subscriptions/{id}/resume"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "active");
    let (s, body) = api
        .post(
            &token,
            &format!("/admin/subscriptions/{plain}/resume"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    push_events(&running.base, sfx, 13..15).await;
    // Resumed, it gets what arrived while paused though that is older than the resume.
    let plain_after = pull_exactly(&api, &token, &plain, 5).await;
    let seen = counted(&plain_after);
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        numbers(sfx, 10..15),
        "{plain_after:#?}"
    );
    assert!(
        seen.values().all(|n| *n == 1),
        "a record came twice: {seen:?}"
    );
    let more = pull_exactly(&api, &token, &id, 5).await;
    let seen = counted(&more);
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        numbers(sfx, 10..15),
        "{more:#?}"
    );
    assert!(
        seen.values().all(|n| *n == 1),
        "a record came twice: {seen:?}"
    );
    assert_eq!(api.release_entries(&id).await.len(), 12);

    // The lifecycle is on record.
    let (_, q) = api
        .get(AUDITOR_TOKEN, &format!("/admin/audit?subscription={id}"))
        .await;
    let actions: Vec<&str> = q["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"]["action"].as_str())
        .collect();
    assert!(actions.contains(&"subscription.pause"), "{actions:?}");
    assert!(actions.contains(&"subscription.resume"), "{actions:?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_then_live_then_pause_and_resume_on_the_embedded_bus() {
    let dir = tempfile::tempdir().expect("tempdir");
    history_then_live_then_pause_and_resume(embedded_config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_then_live_then_pause_and_resume_on_kafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    history_then_live_then_pause_and_resume(kafka_config(dir.path())).await;
}

/// `[bus.retention]` applies to the hub's topics by class and is enforced while the hub runs; the audit log is
/// never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_per_topic_class_is_enforced_and_never_touches_the_audit_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config: Config = toml::from_str(
        r#"
[bus.retention]
check_every = "1s"
[bus.retention.raw]
max_age = "2s"
[bus.retention.std]
max_bytes = "1MiB"
"#,
    )
    .expect("retention config");
    config.bus.embedded.data_dir = dir.path().to_owned();
    // As every hub of the suite: operators' tokens alone on the API (the production default is tested in
    // security::operators_give_the_second_factor_on_the_api_too).
    config.admin.sign_in.api_second_factor = false;
    assert_eq!(
        config.bus.retention.sub.max_age,
        Some(Duration::from_secs(30 * 86_400)),
        "classes not named keep their defaults"
    );
    let running = RunningHub::start(&with_grid_and_operator(config)).await;
    let api = Api::new(&running.base);
    let sfx = rand_suffix();
    push_events(&running.base, sfx, 0..20).await;
    let bus = running.hub.bus.clone();
    let raw_before: u64 = bus.end_offsets("raw.grid").await.expect("raw").iter().sum();
    let audit_before: u64 = bus
        .end_offsets(unsilo_schemas::names::AUDIT_TOPIC)
        .await
        .expect("audit")
        .iter()
        .sum();
    assert!(raw_before >= 20 && audit_before > 0);
    // Within a few seconds the raw originals are older than 2 s and go; std. (under its size limit) stays.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let raw_left = loop {
        let mut left = 0;
        for p in 0..bus
            .partition_count("raw.grid")
            .await
            .expect("count")
            .unwrap_or(0)
        {
            left += bus
                .fetch(&unsilo_bus::FetchRequest::new(
                    "raw.grid",
                    p,
                    0,
                    10_000,
                    Duration::ZERO,
                ))
                .await
                .expect("fetch")
                .len();
        }
        if left == 0 || std::time::Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        raw_left, 0,
        "raw originals older than max_age were not removed"
    );
    let mut std_left = 0;
    for p in 0..4 {
        std_left += bus
            .fetch(&unsilo_bus::FetchRequest::new(
                "std.grid_event",
                p,
                0,
                10_000,
                Duration::ZERO,
            ))
            .await
            .expect("fetch")
            .len();
    }
    assert!(
        std_left >= 20,
        "std. records under the size limit must stay: {std_left}"
    );
    // The audit log is whole and verifies.
    let mut audit_left = 0u64;
    let audit_partitions = bus
        .partition_count(unsilo_schemas::names::AUDIT_TOPIC)
        .await
        .expect("count")
        .unwrap_or(0);
    for p in 0..audit_partitions {
        audit_left += bus
            .fetch(&unsilo_bus::FetchRequest::new(
                unsilo_schemas::names::AUDIT_TOPIC,
                p,
                0,
                100_000,
                Duration::ZERO,
            ))
            .await
            .expect("fetch")
            .len() as u64;
    }
    assert!(audit_left >= audit_before, "the audit log lost entries");
    let (s, verify) = api.get(AUDITOR_TOKEN, "/admin/audit/verify").await;
    assert_eq!(s, 200, "{verify}");
    assert_eq!(verify["intact"], true, "{verify}");
    running.stop().await;
}
