//! End-to-end: what follows a grant under the 政务数据共享条例, over real HTTP on 127.0.0.1 — disposal when a
//! grant ends (Art. 27: the agency's confirmation, and the hub's removal of rows past `retain_until` from the
//! agency's own PostgreSQL table), and the supervisor's monthly report (Art. 38), its figures checked against the
//! audit log.

use serde_json::{json, Value};
use unsilo_tests::api::{Api, AUDITOR_TOKEN, OPERATOR_TOKEN};
use unsilo_tests::workflow::{
    assert_audited, grid_centre, hub_with_civil, hub_with_civil_on, request,
};

/// Rows of `table` in the test PostgreSQL database: (record id, retain_until in the past).
async fn agency_rows(url: &str, table: &str) -> Vec<(String, bool)> {
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    let rows: Vec<(String, bool)> = sqlx::query_as(&format!(
        "SELECT record_id, retain_until < now() FROM \"{table}\" ORDER BY record_id"
    ))
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    pool.close().await;
    rows
}

#[tokio::test]
async fn a_grant_that_ends_is_disposed_of_and_the_hub_removes_sql_rows_past_retain_until() {
    // The agency's database runs on this machine: the egress policy opens loopback, as an operator opens the
    // government network; retention (and with it the hub's sweep of agencies' tables) runs every second.
    let (_dir, running, api, sfx, civil, token) = hub_with_civil_on(
        |config| {
            config.delivery.egress_allow_cidrs = vec!["127.0.0.0/8".into()];
            config.bus.retention.check_every = std::time::Duration::from_secs(1);
        },
        "S3",
    )
    .await;
    let other = format!("other-{sfx}");
    let other_token = api
        .agency(&other, "汉阴县公安局", "11610921MB12345671", "S3")
        .await;
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let table = format!("disposal_{sfx}");
    let mut asked = request(
        "roster",
        "household",
        &["household_id", "care_level", "member_count"],
    );
    asked["retain_days"] = json!(30);
    asked["channel"] = json!({ "kind": "sql", "url": url, "table": table });
    let (id, _) = api
        .subscribe_approved(&token, &civil, asked, json!({}))
        .await;

    // Before the grant ends there is nothing to confirm.
    let confirm = |method: &str, scope: &str| json!({ "method": method, "scope": scope });
    let (s, body) = api
        .post(
            &token,
            &format!("/admin/subscriptions/{id}/disposal"),
            confirm("删除", "全部"),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert!(body.to_string().contains("has not ended"), "{body}");

    // Deliver the grid's households into the agency's table.
    let (a, b, c) = unsilo_tests::api::grid_messages(sfx);
    unsilo_tests::api::push_grid(&running.base, &[&a, &b, &c]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let rows = loop {
        let rows = agency_rows(url, &table).await;
        if rows.len() >= 2 {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rows delivered: {rows:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert!(rows.iter().all(|(_, past)| !past), "{rows:?}");

    // Time passes for one row: its retain_until lies behind it now. The hub removes that row, and only it.
    let (gone, _) = rows[0].clone();
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query(&format!(
        "UPDATE \"{table}\" SET retain_until = now() - interval '1 hour' WHERE record_id = $1"
    ))
    .bind(&gone)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let now = agency_rows(url, &table).await;
        if !now.iter().any(|(r, _)| r == &gone) {
            assert_eq!(
                now.len(),
                rows.len() - 1,
                "only the row past retain_until goes: {now:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the row past retain_until stays: {now:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_audited(&api, &["disposal.sql_rows_removed", &id, &table]).await;
    let metrics = reqwest::get(format!("{}/metrics", running.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("unsilo_disposal_sql_rows_removed_total 1")
            || metrics
                .lines()
                .any(|l| l.starts_with("unsilo_disposal_sql_rows_removed_total ")
                    && l.split(' ')
                        .nth(1)
                        .and_then(|n| n.parse::<f64>().ok())
                        .is_some_and(|n| n >= 1.0)),
        "{metrics}"
    );

    // Another agency cannot end it; the agency declares its purpose fulfilled: the grant ends, disposal falls due
    // 10 working days on.
    let fulfilled = format!("/admin/subscriptions/{id}/fulfilled");
    let (s, _) = api
        .post(&other_token, &fulfilled, json!({ "reason": "x" }))
        .await;
    assert_eq!(s, 404);
    let ended_at = unsilo_bus::now_ms();
    let (s, body) = api
        .post(
            &token,
            &fulfilled,
            json!({ "reason": "救助对象核查已完成" }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "fulfilled", "{body}");
    let disposal = &body["disposal"];
    assert_eq!(disposal["ended_because"], "purpose_fulfilled", "{body}");
    let due = disposal["due_ms"].as_i64().unwrap();
    assert!(
        due > ended_at + 9 * 86_400_000,
        "ten working days are at least two weeks: {body}"
    );
    let (s, body) = api
        .post(&token, &fulfilled, json!({ "reason": "again" }))
        .await;
    assert_eq!(s, 409, "{body}");

    // It is listed as pending for the agency and the platform, not for another agency.
    let (s, list) = api.get(&token, "/admin/disposals?state=pending").await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["disposals"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["disposals"][0]["subscription"], id.as_str());
    let (_, list) = api.get(&other_token, "/admin/disposals").await;
    assert_eq!(list["disposals"], json!([]), "{list}");
    let (s, list) = api.get(AUDITOR_TOKEN, "/admin/disposals").await;
    assert_eq!(s, 200, "{list}");
    assert!(list.to_string().contains(&id), "{list}");
    let (s, body) = api.get(&token, "/admin/disposals?state=done").await;
    assert_eq!(s, 422, "{body}");

    // A confirmation names everything it leaves out; only the agency confirms; once.
    let path = format!("/admin/subscriptions/{id}/disposal");
    let (s, body) = api.post(&token, &path, confirm(" ", "")).await;
    assert_eq!(s, 422, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("method") && message.contains("scope"),
        "{body}"
    );
    let (s, _) = api
        .post(OPERATOR_TOKEN, &path, confirm("删除", "全部"))
        .await;
    assert_eq!(s, 403);
    let (s, body) = api
        .post(
            &token,
            &path,
            confirm(
                "数据库记录删除，备份同步清除",
                "民政救助系统 roster 表及其备份",
            ),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["disposal"]["confirmation"]["late"], false, "{body}");
    let (s, _) = api.post(&token, &path, confirm("删除", "全部")).await;
    assert_eq!(s, 409);
    let (_, list) = api.get(&token, "/admin/disposals?state=confirmed").await;
    assert_eq!(list["disposals"][0]["subscription"], id.as_str(), "{list}");
    assert_audited(
        &api,
        &[
            "subscription.purpose_fulfilled",
            "disposal.confirm",
            "民政救助系统 roster 表及其备份",
        ],
    )
    .await;

    // The rows still before their retain_until stay until it passes: the agency answers for them.
    assert_eq!(agency_rows(url, &table).await.len(), rows.len() - 1);
}

/// The audit log's entries, as the audit administrator reads them.
async fn audit_entries(api: &Api) -> Vec<Value> {
    let (s, audit) = api.get(AUDITOR_TOKEN, "/admin/audit?limit=100000").await;
    assert_eq!(s, 200, "{audit}");
    audit["entries"].as_array().cloned().unwrap_or_default()
}

/// The report's row of organisation `id`.
fn row<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["organisations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["organisation"] == id)
        .unwrap_or_else(|| panic!("no row for {id}: {report}"))
}

#[tokio::test]
async fn the_monthly_report_counts_what_the_audit_log_holds_per_organisation_and_source() {
    let (_dir, running, api, sfx, civil, civil_token) = hub_with_civil("S3").await;
    let health = format!("health-{sfx}");
    let health_token = api
        .agency(&health, "汉阴县卫生健康局", "12610921MB00000019", "S3")
        .await;
    let (grid, reviewer) = grid_centre(&api, sfx).await;
    let fields = ["household_id", "member_count", "care_level"];

    // Civil affairs' request is approved by the provider, health's refused with a reason, a second one of civil
    // affairs waits.
    let decide = |id: String, verdict: &'static str, body: Value| {
        let api = &api;
        let reviewer = &reviewer;
        async move {
            let (s, answer) = api
                .post(
                    reviewer,
                    &format!("/admin/subscriptions/{id}/{verdict}"),
                    body,
                )
                .await;
            assert_eq!(s, 200, "{answer}");
        }
    };
    for (token, name) in [
        (&civil_token, "roster"),
        (&health_token, "visits"),
        (&civil_token, "later"),
    ] {
        let (s, answer) = api
            .post(
                token,
                "/admin/subscriptions",
                request(name, "household", &fields),
            )
            .await;
        assert_eq!(s, 201, "{answer}");
    }
    decide(format!("{civil}.roster"), "approve", json!({})).await;
    decide(
        format!("{health}.visits"),
        "reject",
        json!({ "reason": "用途与卫生健康职责不符" }),
    )
    .await;

    // The grid sends two households and one message no mapping accepts.
    let (red, green, _) = unsilo_tests::api::grid_messages(sfx);
    unsilo_tests::api::push_grid(&running.base, &[&red, &green]).await;
    let _ = reqwest::Client::new()
        .post(format!("{}/ingest/grid", running.base))
        .bearer_auth(unsilo_tests::api::PUSH_TOKEN)
        .json(&json!([{ "msgType": "not-a-grid-message" }]))
        .send()
        .await
        .expect("push");
    let (records, _) = api
        .pull_at_least(&civil_token, &format!("{civil}.roster"), 2)
        .await;

    // Civil affairs files a correction; the provider refuses it, in time.
    let (s, filed) = api
        .post(
            &civil_token,
            "/admin/corrections",
            json!({
                "subscription": format!("{civil}.roster"), "record_id": records[0]["record_id"],
                "field": "member_count", "problem": "户内人数有误", "evidence": "入户走访"
            }),
        )
        .await;
    assert_eq!(s, 201, "{filed}");
    let (s, body) = api
        .post(
            &reviewer,
            &format!(
                "/admin/corrections/{}/answer",
                filed["id"].as_str().unwrap()
            ),
            json!({ "outcome": "refused", "reason": "源系统登记无误" }),
        )
        .await;
    assert_eq!(s, 200, "{body}");

    // The report: only the platform's administrators read it; a month is YYYY-MM.
    let month = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m")
        .to_string();
    let path = format!("/admin/reports/monthly?month={month}");
    let (s, _) = api.get(&civil_token, &path).await;
    assert_eq!(s, 403);
    let (s, body) = api
        .get(AUDITOR_TOKEN, "/admin/reports/monthly?month=2026-13")
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, report) = api.get(AUDITOR_TOKEN, &path).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["unverified_audit_entries"], 0, "{report}");

    // Its figures, against the audit log's entries.
    let entries = audit_entries(&api).await;
    let control = |action: &str, target: &str| {
        entries
            .iter()
            .filter(|e| {
                e["event"]["kind"] == "control"
                    && e["event"]["action"] == action
                    && e["event"]["target"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(target))
            })
            .count() as u64
    };
    let releases_to = |agency: &str| {
        entries
            .iter()
            .filter(|e| e["event"]["kind"] == "release" && e["event"]["agency"] == agency)
            .count() as u64
    };
    let released = releases_to(&civil);
    assert!(released >= 2, "{released}");
    let c = row(&report, &civil);
    assert_eq!(c["name"], "汉阴县民政局");
    assert_eq!(
        c["as_requester"]["requests_filed"],
        control("subscription.request", &format!("{civil}.")),
        "{c}"
    );
    assert_eq!(c["as_requester"]["requests_filed"], 2, "{c}");
    assert_eq!(c["as_requester"]["approved"], 1, "{c}");
    assert_eq!(c["as_requester"]["waiting"], 1, "{c}");
    assert_eq!(c["as_requester"]["records_received"], released, "{c}");
    assert_eq!(
        c["as_requester"]["corrections_filed"],
        control("correction.file", ""),
        "{c}"
    );
    let h = row(&report, &health);
    assert_eq!(h["as_requester"]["requests_filed"], 1, "{h}");
    assert_eq!(
        h["as_requester"]["refused"],
        control("subscription.reject", &format!("{health}.")),
        "{h}"
    );
    assert_eq!(h["as_requester"]["records_received"], 0, "{h}");
    let g = row(&report, &grid);
    assert_eq!(g["uscc"], "12610921MB0000002C", "{g}");
    let p = &g["as_provider"];
    assert_eq!(p["requests_received"], 3, "{g}");
    assert_eq!(p["answered"], 2, "{g}");
    assert_eq!(p["answered_on_time"], 2, "{g}");
    assert_eq!(p["refused"], 1, "{g}");
    assert_eq!(
        p["refusal_reasons"],
        json!(["用途与卫生健康职责不符"]),
        "{g}"
    );
    assert_eq!(p["records_delivered"], released, "{g}");
    assert_eq!(p["corrections_received"], 1, "{g}");
    assert_eq!(p["corrections_answered_on_time"], 1, "{g}");
    let grid_source = report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "grid")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(grid_source["accepted"], 2, "{grid_source}");
    assert_eq!(grid_source["rejected"], 1, "{grid_source}");
    assert!((grid_source["rejection_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(
        grid_source["reasons"].as_array().unwrap().len(),
        1,
        "{grid_source}"
    );
    assert_eq!(grid_source["reasons"][0]["count"], 1, "{grid_source}");

    // A month before any of it has nothing to report.
    let (_, empty) = api
        .get(AUDITOR_TOKEN, "/admin/reports/monthly?month=2020-01")
        .await;
    assert_eq!(empty["organisations"], json!([]), "{empty}");
    assert_eq!(empty["sources"][0]["accepted"], 0, "{empty}");

    // The workbook carries the same figures.
    let bytes = reqwest::Client::new()
        .get(format!("{}{path}&format=xlsx", running.base))
        .bearer_auth(AUDITOR_TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).expect("an xlsx");
    let sheet = book.worksheet_range("组织").expect("组织 sheet");
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows[1][3], "收到申请");
    let grid_row = rows.iter().find(|r| r[0] == grid).expect("grid's row");
    assert_eq!(grid_row[3], "3", "{grid_row:?}");
    assert_eq!(grid_row[6], "1", "{grid_row:?}");
    let refusals = book.worksheet_range("拒绝理由").expect("拒绝理由 sheet");
    assert!(refusals
        .rows()
        .any(|r| r.iter().any(|c| *c == "用途与卫生健康职责不符")));
}
