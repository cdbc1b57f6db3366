//! Release evidence in batches, end to end over HTTP on 127.0.0.1: every release the router writes in a batch is
//! in the person report and the audit query — one per record per subscription, nothing lost, nothing twice — and a
//! hub started again resumes its on-disk person index where it stood instead of reading the whole audit log.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use unsilo_tests::api::{push_grid, run_events, with_grid_and_operator, Api, AUDITOR_TOKEN};
use unsilo_tests::{embedded_config, rand_suffix, RunningHub};

/// The party every event of the grid fixture names (陈德福).
const CERT_NO: &str = "610921196105170316";

/// Grid events of run `sfx` numbered `i` in `range`, each naming [`CERT_NO`] as a party.
fn events(sfx: u64, range: std::ops::Range<u32>) -> Vec<Value> {
    let events = run_events(sfx, range);
    assert!(
        events.iter().all(|e| e["dsr"][0]["sfzh"] == CERT_NO),
        "the fixture's party"
    );
    events
}

async fn push_events(base: &str, sfx: u64, range: std::ops::Range<u32>) {
    let batch = events(sfx, range);
    let refs: Vec<&Value> = batch.iter().collect();
    push_grid(base, &refs).await;
}

/// `(record id, subscription)` of each release in `entries`, and how many there were.
fn releases(entries: &Value) -> (BTreeSet<(String, String)>, usize) {
    let list: Vec<&Value> = entries
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| e.get("event").is_none_or(|ev| ev["kind"] == "release"))
        .collect();
    let set = list
        .iter()
        .map(|e| {
            let e = e.get("event").unwrap_or(e);
            (
                e["record_id"].as_str().expect("record_id").to_owned(),
                e["subscription"].as_str().expect("subscription").to_owned(),
            )
        })
        .collect();
    (set, list.len())
}

async fn person_report(api: &Api) -> Value {
    let (s, report) = api
        .post(
            AUDITOR_TOKEN,
            "/admin/reports/person",
            json!({ "cert_no": CERT_NO }),
        )
        .await;
    assert_eq!(s, 200, "{report}");
    report
}

/// The person index's `unsilo_audit_index_entries_read_total`, from `/metrics`.
async fn index_entries_read(base: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix("unsilo_audit_index_entries_read_total "))
        .unwrap_or_else(|| panic!("no unsilo_audit_index_entries_read_total in {text}"))
        .trim()
        .parse()
        .expect("a count")
}

async fn audit_end(running: &RunningHub) -> u64 {
    running
        .hub
        .bus
        .end_offsets(unsilo_schemas::names::AUDIT_TOPIC)
        .await
        .expect("end")[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_evidence_reaches_the_person_report_and_a_restarted_hub_does_not_read_the_log_again(
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_grid_and_operator(embedded_config(dir.path()));
    let running = RunningHub::start(&config).await;
    let api = Api::new(&running.base);
    let sfx = rand_suffix();

    // Three agencies each receive every event of the run.
    let subscribers = api
        .subscribe_to_run_events(
            "agency",
            sfx,
            &[
                "11610921016050037T",
                "116109210160500883",
                "11610921016050046Q",
            ],
        )
        .await;
    push_events(&running.base, sfx, 0..40).await;
    for (token, id) in &subscribers {
        api.pull_at_least(token, id, 40).await;
    }

    // 40 records × 3 subscriptions: 120 releases about the person, each once, in the report and the query.
    let report = person_report(&api).await;
    let (by_report, n) = releases(&report["releases"]);
    assert_eq!(n, 120);
    assert_eq!(by_report.len(), 120, "each release once");
    let (s, answer) = api
        .post(
            AUDITOR_TOKEN,
            "/admin/audit/query",
            json!({ "cert_no": CERT_NO, "limit": 10_000 }),
        )
        .await;
    assert_eq!(s, 200, "{answer}");
    let (by_query, n) = releases(&answer["entries"]);
    assert_eq!(n, 120);
    assert_eq!(by_query, by_report);
    for (_, id) in &subscribers {
        let (mine, n) = releases(&Value::Array(api.release_entries(id).await));
        assert_eq!(n, 40, "{id}");
        assert!(mine.iter().all(|(_, s)| s == id));
    }
    let read_before = index_entries_read(&running.base).await;
    assert!(read_before > 0);
    // A report reads every entry written before it: the index stands at the log's end.
    person_report(&api).await;
    let indexed_to = audit_end(&running).await;
    running.stop().await;

    // Started again: the index resumes where it stood; it reads only what was written since.
    let running = RunningHub::start(&config).await;
    let api = Api::new(&running.base);
    push_events(&running.base, sfx, 40..50).await;
    // Nothing was acknowledged: a pull starts from the first record, so 50 means the new ten were released.
    for (token, id) in &subscribers {
        api.pull_at_least(token, id, 50).await;
    }
    let report = person_report(&api).await;
    let (after, n) = releases(&report["releases"]);
    assert_eq!(n, 150);
    assert!(after.is_superset(&by_report));
    let read_after = index_entries_read(&running.base).await;
    let end = audit_end(&running).await;
    assert!(
        read_after <= end - indexed_to,
        "the restarted index read {read_after} entries; only {} were written since it stood at {indexed_to}",
        end - indexed_to
    );
    running.stop().await;
}
