//! `unsilo serve` on the embedded bus, killed with SIGKILL twenty times while a source pushes grid events and a
//! pull subscription is active: no acknowledged record is lost, and the subscriber receives no record twice —
//! the router's position moves in the same atomic write as its releases and their audit entries, and a batch
//! the source sends again after losing the answer is not ingested twice.

mod common;
use common::free_port;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const OPERATOR_TOKEN: &str = "op_crash_4c1f0e7d9b2a4f6e8d3c5b7a9e1f2d4c";
const PUSH_TOKEN: &str = "push_crash_9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d";
/// A second operator, for grants that need two (双人复核).
const REVIEWER_TOKEN: &str = "op_crash_reviewer_0b9a8c7d6e5f4a3b2c1d0e9f";
/// How many times the hub is killed.
const KILLS: usize = 20;
/// Events per pushed batch.
const BATCH: u32 = 10;

/// One `unsilo serve` process, its output appended to a log file.
struct Serve {
    child: Child,
}

impl Serve {
    fn start(config: &Path, dir: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("serve.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_unsilo"))
            .args(["serve", "--config"])
            .arg(config)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn unsilo serve");
        Self { child }
    }

    fn kill(mut self) {
        // std's kill is SIGKILL: no shutdown path runs.
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str, log: &Path) {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "unsilo serve never became ready:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A grid event numbered `i` of this run (the fixture, renumbered).
fn event(template: &Value, run: u32, i: u32) -> Value {
    let mut e = template.clone();
    e["sjbh"] = json!(format!("SJ{run:09}{i:09}"));
    e["msgId"] = json!(format!("7f3c2a91e04b4d6c{run:09}{i:07}"));
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twenty_times_while_a_source_pushes_loses_nothing_and_repeats_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = common::write_grid_hub_config(
        dir.path(),
        port,
        &common::Tokens {
            operator: OPERATOR_TOKEN,
            reviewer: REVIEWER_TOKEN,
            push: PUSH_TOKEN,
        },
    );
    let log = dir.path().join("serve.log");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut serve = Serve::start(&config, dir.path());
    wait_ready(&client, &base, &log).await;

    // An agency with an approved pull subscription to this run's grid events.
    let run: u32 = rand::random::<u32>() % 1_000_000_000;
    let (s, body) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/admin/agencies"),
        OPERATOR_TOKEN,
        Some(json!({ "id": "emergency", "name": "应急管理局", "uscc": "11610921MB12345671", "clearance": "S2" })),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let agency_token = body["token"].as_str().expect("token").to_owned();
    let (s, body) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/admin/subscriptions"),
        &agency_token,
        Some(json!({
            "name": "events", "schema": "grid_event",
            "filter": format!("event_no.startsWith(\"SJ{run:09}\")"),
            "fields": [{ "field": "event_no", "treatment": "clear" }],
            "purpose": "应急事件研判", "legal_basis": "《政务数据共享条例》", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00", "channel": { "kind": "pull" }
        })),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/admin/subscriptions/emergency.events/approve"),
        OPERATOR_TOKEN,
        Some(json!({})),
    )
    .await;
    let (s, body) = if s == 202 {
        // 双人复核: a second operator confirms.
        call(
            &client,
            reqwest::Method::POST,
            format!("{base}/admin/subscriptions/emergency.events/approve"),
            REVIEWER_TOKEN,
            Some(json!({})),
        )
        .await
    } else {
        (s, body)
    };
    assert_eq!(s, 200, "{body}");

    // The source: numbered batches, each sent again until it is acknowledged, as a real source would.
    let template: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../connectors/builtin/grid/fixtures/valid/event_1_reported.json"),
        )
        .expect("fixture"),
    )
    .expect("fixture json");
    let acknowledged: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (client, base, acknowledged, stop) = (
            client.clone(),
            base.clone(),
            acknowledged.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut next = 0u32;
            while !stop.load(Ordering::Acquire) {
                let batch: Vec<Value> = (next..next + BATCH)
                    .map(|i| event(&template, run, i))
                    .collect();
                loop {
                    let sent = client
                        .post(format!("{base}/ingest/grid"))
                        .bearer_auth(PUSH_TOKEN)
                        .json(&batch)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => break,
                        Ok(r) => {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            assert!(status.is_server_error(), "push refused: {status} {text}");
                        }
                        Err(_) => {} // the hub is down: send it again
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let mut acked = acknowledged.lock().expect("lock");
                acked.extend(
                    batch
                        .iter()
                        .map(|e| e["sjbh"].as_str().expect("sjbh").to_owned()),
                );
                next += BATCH;
            }
        })
    };

    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(150 + (rand::random::<u64>() % 350))).await;
        serve.kill();
        serve = Serve::start(&config, dir.path());
        wait_ready(&client, &base, &log).await;
        assert!(
            !pusher.is_finished(),
            "the source stopped after kill {kill}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    pusher.await.expect("the source");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 200,
        "the source pushed too little to mean anything: {}",
        acknowledged.len()
    );

    // Everything the subscription received, from its beginning, until nothing more comes for two seconds.
    let mut received: Vec<Value> = Vec::new();
    let mut cursor = String::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while quiet_since.elapsed() < Duration::from_secs(2) {
        assert!(Instant::now() < deadline, "pulling took over two minutes");
        let url = if cursor.is_empty() {
            format!("{base}/v1/subscriptions/emergency.events/records?max=1000&wait_ms=300")
        } else {
            format!("{base}/v1/subscriptions/emergency.events/records?max=1000&wait_ms=300&cursor={cursor}")
        };
        let (s, body) = call(&client, reqwest::Method::GET, url, &agency_token, None).await;
        assert_eq!(s, 200, "{body}");
        let records = body["records"].as_array().cloned().unwrap_or_default();
        if !records.is_empty() {
            quiet_since = Instant::now();
        }
        received.extend(records);
        cursor = body["cursor"].as_str().expect("cursor").to_owned();
    }

    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    let mut events: BTreeSet<String> = BTreeSet::new();
    for r in &received {
        *by_id
            .entry(r["record_id"].as_str().expect("id").to_owned())
            .or_default() += 1;
        events.insert(
            r["record"]["event_no"]
                .as_str()
                .expect("event_no")
                .to_owned(),
        );
    }
    let twice: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    let lost: Vec<_> = acknowledged.difference(&events).collect();
    println!(
        "{KILLS} kills: {} acknowledged, {} received, {} lost, {} received twice",
        acknowledged.len(),
        received.len(),
        lost.len(),
        twice.len()
    );
    assert!(lost.is_empty(), "acknowledged but never received: {lost:?}");
    assert!(twice.is_empty(), "received twice: {twice:?}");
    assert_eq!(events.len(), received.len(), "one record per event");

    // The evidence agrees: one release entry per record received.
    let (s, audit) = call(
        &client,
        reqwest::Method::GET,
        format!("{base}/admin/audit?subscription=emergency.events&limit=1000000"),
        common::AUDITOR_TOKEN,
        None,
    )
    .await;
    assert_eq!(s, 200, "{audit}");
    let releases = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["event"]["kind"] == "release")
        .count();
    assert_eq!(
        releases,
        received.len(),
        "release entries against records received"
    );
    let (s, verify) = call(
        &client,
        reqwest::Method::GET,
        format!("{base}/admin/audit/verify"),
        common::AUDITOR_TOKEN,
        None,
    )
    .await;
    assert_eq!(s, 200, "{verify}");
    assert_eq!(verify["intact"], true, "{verify}");
    serve.kill();
}
