//! End-to-end: the sharing workflow of the 政务数据共享条例 over real HTTP on 127.0.0.1.
//!
//! The catalogue is seeded from the shared schemas, browsable, searchable and exportable (JSON and a workbook
//! read back with calamine); a security administrator edits an entry into a new version, on record. A request
//! that leaves out Art. 20's items is told all of them at once. A providing organisation's reviewer decides
//! only the 有条件 requests on its own entries, with deadlines on the working-day calendar, one extension, and
//! overdue requests listed and counted. A 不予共享 entry cannot be requested, and making an entry 不予共享 ends
//! the grants on it.

use serde_json::{json, Value};
use unsilo_tests::api::{with_grid_and_operator, Api, AUDITOR_TOKEN, OPERATOR_TOKEN, SYSTEM_TOKEN};
use unsilo_tests::workflow::{
    assert_audited, edit, entry, grid_centre, hub_with_civil, provider, request,
};
use unsilo_tests::{rand_suffix, RunningHub};

#[tokio::test]
async fn the_catalogue_is_seeded_browsed_exported_and_edited_in_versions() {
    let (_dir, running, api, _, agency, agency_token) = hub_with_civil("S3").await;

    // Every shared schema has an entry, browsable by an agency too.
    let (s, list) = api.get(&agency_token, "/admin/catalogue").await;
    assert_eq!(s, 200, "{list}");
    let entries = list["entries"].as_array().unwrap();
    assert_eq!(entries.len(), unsilo_schemas::shared_schemas().len());
    let household = entries.iter().find(|e| e["id"] == "household").unwrap();
    assert_eq!(household["terms"]["share_attribute"], "CONDITIONAL");
    assert_eq!(household["version"], 1);
    let cert = household["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["field"] == "head_cert_no")
        .unwrap();
    assert_eq!(cert["sensitivity"], "S4");
    // Searching: the words must all occur (a data item's description counts).
    let (_, found) = api
        .get(
            &agency_token,
            "/admin/catalogue?q=%E7%BD%91%E6%A0%BC%20%E6%88%B7",
        )
        .await; // "网格 户"
    let ids: Vec<&str> = found["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"household") && !ids.contains(&"hotline_ticket"),
        "{ids:?}"
    );
    let (_, none) = api
        .get(&agency_token, "/admin/catalogue?q=zzzz-nothing")
        .await;
    assert!(none["entries"].as_array().unwrap().is_empty());

    // The workbook: a resources sheet and a data items sheet, Chinese headers, one row per entry and item.
    let xlsx = reqwest::Client::new()
        .get(format!(
            "{}/admin/catalogue/export?format=xlsx",
            running.base
        ))
        .bearer_auth(&agency_token)
        .send()
        .await
        .unwrap();
    assert_eq!(xlsx.status(), 200);
    let bytes = xlsx.bytes().await.unwrap().to_vec();
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).expect("an xlsx workbook");
    assert_eq!(
        book.sheet_names(),
        vec!["资源目录".to_owned(), "信息项".to_owned()]
    );
    let resources = book.worksheet_range("资源目录").unwrap();
    assert_eq!(resources.height(), 1 + entries.len());
    assert_eq!(resources.get((0, 0)).unwrap().to_string(), "资源代码");
    let row = (1..resources.height())
        .find(|r| resources.get((*r, 0)).unwrap() == "household")
        .unwrap();
    assert_eq!(resources.get((row, 7)).unwrap().to_string(), "有条件共享");
    let items = book.worksheet_range("信息项").unwrap();
    let item_rows: usize = entries
        .iter()
        .map(|e| e["items"].as_array().unwrap().len())
        .sum();
    assert_eq!(items.height(), 1 + item_rows);
    let (s, json_export) = api.get(&agency_token, "/admin/catalogue/export").await;
    assert_eq!(s, 200);
    assert_eq!(
        json_export["entries"].as_array().unwrap().len(),
        entries.len()
    );

    // Editing is the security administrator's: not an agency's, not the system administrator's.
    let mut terms = household["terms"].clone();
    terms["provider"] = json!(agency);
    terms["update_frequency"] = json!("每日");
    for token in [agency_token.as_str(), SYSTEM_TOKEN, AUDITOR_TOKEN] {
        let (s, body) = api
            .call(
                reqwest::Method::PUT,
                token,
                "/admin/catalogue/household",
                Some(json!({ "version": 1, "note": "x", "terms": terms })),
            )
            .await;
        assert_eq!(s, 403, "{body}");
    }
    // An incomplete edit names every problem at once.
    let mut broken = terms.clone();
    broken["title"] = json!("");
    broken["conditions"] = Value::Null;
    broken["grade"] = json!("SECRET");
    broken["provider"] = json!("no-such-org");
    let (s, body) = edit(&api, "household", broken, "").await;
    assert_eq!(s, 422, "{body}");
    let message = body["message"].as_str().unwrap();
    for named in ["title", "conditions", "grade", "note", "no-such-org"] {
        assert!(message.contains(named), "{named}: {message}");
    }
    let (s, body) = edit(&api, "household", terms.clone(), "民政局提供户籍台账").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["version"], 2);
    assert_eq!(body["provider_name"], "汉阴县民政局");
    assert_eq!(body["earlier"][0]["version"], 1);
    assert_eq!(body["earlier"][0]["terms"]["update_frequency"], "实时");
    // A stale version is refused.
    let (s, body) = api
        .call(
            reqwest::Method::PUT,
            OPERATOR_TOKEN,
            "/admin/catalogue/household",
            Some(json!({ "version": 1, "note": "late", "terms": terms })),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    // The change is on record.
    assert_audited(&api, &["民政局提供户籍台账", "ops"]).await;
    running.stop().await;
}

#[tokio::test]
async fn providers_decide_their_own_requests_on_deadlines_and_an_incomplete_request_hears_everything_missing(
) {
    let (_dir, running, api, sfx, civil, civil_token) = hub_with_civil("S4").await;
    let (grid, grid_reviewer) = grid_centre(&api, sfx).await;
    let hotline = format!("hotline-{sfx}");
    let hotline_reviewer = provider(
        &api,
        &hotline,
        "汉阴县12345热线",
        "12610921MB0000005M",
        &["hotline_ticket"],
    )
    .await;

    // An incomplete request: every missing item at once.
    let mut incomplete = request("bare", "household", &["care_level"]);
    for key in ["legal_basis", "scenario", "scope", "expires_at"] {
        incomplete.as_object_mut().unwrap().remove(key);
    }
    let (s, body) = api
        .post(&civil_token, "/admin/subscriptions", incomplete)
        .await;
    assert_eq!(s, 422, "{body}");
    let message = body["message"].as_str().unwrap();
    for named in ["legal_basis", "scenario", "scope", "expires_at"] {
        assert!(message.contains(named), "{named}: {message}");
    }
    // A field that is not a data item of the entry is refused when filed.
    let (s, body) = api
        .post(
            &civil_token,
            "/admin/subscriptions",
            request("odd", "household", &["no_such_item"]),
        )
        .await;
    assert_eq!(s, 422, "{body}");

    // A complete 有条件 request gets 10 working days for its answer.
    let (s, body) = api
        .post(
            &civil_token,
            "/admin/subscriptions",
            request("red", "household", &["care_level", "village_code"]),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let id = format!("{civil}.red");
    let deadlines = &body["subscription"]["deadlines"];
    assert_eq!(deadlines["answer_days"], 10, "{body}");
    let requested = body["subscription"]["requested_at_ms"].as_i64().unwrap();
    let due = deadlines["answer_due_ms"].as_i64().unwrap();
    assert!(
        due > requested + 10 * 86_400_000,
        "ten working days are at least two weeks: {body}"
    );

    // The hotline's reviewer neither sees nor decides it; the requester's own token cannot decide either.
    let (s, _) = api
        .get(&hotline_reviewer, &format!("/admin/subscriptions/{id}"))
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .post(
            &hotline_reviewer,
            &format!("/admin/subscriptions/{id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .post(
            &civil_token,
            &format!("/admin/subscriptions/{id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 403);
    let (_, list) = api.get(&hotline_reviewer, "/admin/subscriptions").await;
    assert!(
        list["subscriptions"].as_array().unwrap().is_empty(),
        "{list}"
    );
    // A reviewer cannot request or pull data.
    let (s, _) = api
        .post(
            &grid_reviewer,
            "/admin/subscriptions",
            request("x", "household", &["care_level"]),
        )
        .await;
    assert_eq!(s, 403);

    // The security administrator's approval alone does not activate a 有条件 request with a provider.
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            &format!("/admin/subscriptions/{id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 202, "{body}");

    // The grid centre's reviewer sees it, extends the deadline once (with a reason), and approves it.
    let (_, list) = api.get(&grid_reviewer, "/admin/subscriptions").await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1, "{list}");
    let extend = format!("/admin/subscriptions/{id}/extend");
    let (s, body) = api
        .post(
            &grid_reviewer,
            &extend,
            json!({ "days": 11, "reason": "需核实" }),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = api
        .post(
            &grid_reviewer,
            &extend,
            json!({ "days": 5, "reason": "需核实申请范围" }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let extended = body["deadlines"]["answer_due_ms"].as_i64().unwrap();
    assert!(extended >= due + 5 * 86_400_000, "{body}");
    assert_eq!(body["deadlines"]["extension"]["previous_due_ms"], due);
    let (s, body) = api
        .post(
            &grid_reviewer,
            &extend,
            json!({ "days": 1, "reason": "again" }),
        )
        .await;
    assert_eq!(s, 409, "one extension only: {body}");
    let (s, body) = api
        .post(
            &grid_reviewer,
            &format!("/admin/subscriptions/{id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "active", "{body}");
    let d = &body["deadlines"];
    assert!(d["answered_at_ms"].as_i64().unwrap() <= d["answer_due_ms"].as_i64().unwrap());
    assert!(
        d["delivery_due_ms"].is_i64() && d["delivered_at_ms"].is_i64(),
        "{body}"
    );
    assert!(
        body["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["provider"] == json!(grid)),
        "{body}"
    );

    // A 无条件 request gets one working day.
    let (s, body) = api
        .post(
            &civil_token,
            "/admin/subscriptions",
            request("units", "grid_unit", &["grid_code"]),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        body["subscription"]["deadlines"]["answer_days"], 1,
        "{body}"
    );

    // A request the provider refuses carries the reason; the refusal is an answer in time.
    let (s, _) = api
        .post(
            &civil_token,
            "/admin/subscriptions",
            request("tickets", "hotline_ticket", &["ticket_no"]),
        )
        .await;
    assert_eq!(s, 201);
    let tickets = format!("{civil}.tickets");
    let (s, body) = api
        .post(
            &hotline_reviewer,
            &format!("/admin/subscriptions/{tickets}/reject"),
            json!({ "reason": "超出职责范围" }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["reason"], "超出职责范围");
    assert!(body["deadlines"]["answered_at_ms"].is_i64(), "{body}");

    // Time passes: a request left unanswered past its due time is listed as overdue, to operators and to its
    // provider, and counted on /metrics. (The deadline is moved into the past on the control plane, as the
    // clock would.)
    let (s, _) = api
        .post(
            &civil_token,
            "/admin/subscriptions",
            request("late", "household", &["care_level"]),
        )
        .await;
    assert_eq!(s, 201);
    let late = format!("{civil}.late");
    let mut stale = running.hub.control.subscription(&late).unwrap();
    stale.deadlines.as_mut().unwrap().answer_due_ms = unsilo_bus::now_ms() - 60_000;
    stale.revision += 1;
    running.hub.control.put_subscription(&stale).await.unwrap();
    for token in [OPERATOR_TOKEN, AUDITOR_TOKEN, grid_reviewer.as_str()] {
        let (s, body) = api.get(token, "/admin/requests/overdue").await;
        assert_eq!(s, 200, "{body}");
        let overdue = body["overdue"].as_array().unwrap();
        assert_eq!(overdue.len(), 1, "{body}");
        assert_eq!(overdue[0]["subscription"], json!(late));
        assert_eq!(overdue[0]["state"], "answer_overdue");
        assert_eq!(overdue[0]["provider"], json!(grid));
    }
    let (_, body) = api.get(&hotline_reviewer, "/admin/requests/overdue").await;
    assert!(body["overdue"].as_array().unwrap().is_empty(), "{body}");
    // The gauge is refreshed every second.
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = reqwest::get(format!("{}/metrics", running.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("unsilo_requests_overdue{deadline=\"answer\"} 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("unsilo_requests_overdue{deadline=\"answer\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("unsilo_requests_overdue{deadline=\"delivery\"} 0"),
        "{metrics}"
    );

    // The entry made 不予共享 (with its basis): the active grant is revoked, and the entry cannot be requested.
    let mut terms = entry(&api, "household").await["terms"].clone();
    terms["share_attribute"] = json!("NOT_SHARED");
    let (s, body) = edit(&api, "household", terms.clone(), "依法不予共享").await;
    assert_eq!(s, 422, "a 不予共享 entry cites its basis: {body}");
    terms["not_shared_basis"] = json!("《某某条例》第十条");
    let (s, body) = edit(&api, "household", terms, "依法不予共享").await;
    assert_eq!(s, 200, "{body}");
    let (_, revoked) = api
        .get(OPERATOR_TOKEN, &format!("/admin/subscriptions/{id}"))
        .await;
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert!(
        revoked["reason"].as_str().unwrap().contains("第十条"),
        "{revoked}"
    );
    let (s, body) = api
        .post(
            &civil_token,
            "/admin/subscriptions",
            request("again", "household", &["care_level"]),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("不予共享"),
        "{body}"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_correction_reaches_every_subscriber_of_the_record_as_a_new_version() {
    let (_dir, running, api, sfx, civil, civil_token) = hub_with_civil("S3").await;
    let health = format!("health-{sfx}");
    let health_token = api
        .agency(&health, "汉阴县卫生健康局", "12610921MB00000019", "S3")
        .await;
    let (grid, reviewer) = grid_centre(&api, sfx).await;

    // Both agencies receive this run's RED household, with its member count and its source identity.
    let (red, _, _) = unsilo_tests::api::grid_messages(sfx);
    let household_id = red["hhbh"].as_str().unwrap().to_owned();
    let mut subscriptions = Vec::new();
    for (agency, token) in [(&civil, &civil_token), (&health, &health_token)] {
        let mut body = request(
            "red",
            "household",
            &[
                "member_count",
                "care_level",
                "envelope.source_record_id",
                "envelope.source_version",
            ],
        );
        body["filter"] = json!(format!(
            "household_id == \"{household_id}\" && data_grade != \"CORE\""
        ));
        let (s, answer) = api.post(token, "/admin/subscriptions", body).await;
        assert_eq!(s, 201, "{answer}");
        let id = format!("{agency}.red");
        let (s, answer) = api
            .post(
                &reviewer,
                &format!("/admin/subscriptions/{id}/approve"),
                json!({}),
            )
            .await;
        assert_eq!(s, 200, "{answer}");
        subscriptions.push((id, token.clone()));
    }
    unsilo_tests::api::push_grid(&running.base, &[&red]).await;
    let (records, cursor) = api
        .pull_at_least(&civil_token, &subscriptions[0].0, 1)
        .await;
    let original = &records[0];
    let original_id = original["record_id"].as_str().unwrap().to_owned();
    let members = original["record"]["member_count"].clone();

    // A filing names everything missing; a record the agency never received is not found.
    let (s, body) = api.post(&civil_token, "/admin/corrections", json!({
        "subscription": subscriptions[0].0, "record_id": "", "field": "", "problem": "", "evidence": ""
    })).await;
    assert_eq!(s, 422, "{body}");
    for named in ["record_id", "field", "problem", "evidence"] {
        assert!(
            body["message"].as_str().unwrap().contains(named),
            "{named}: {body}"
        );
    }
    let (s, body) = api
        .post(
            &civil_token,
            "/admin/corrections",
            json!({
                "subscription": subscriptions[0].0, "record_id": "0123456789abcdef0123456789abcdef",
                "field": "member_count", "problem": "户内人数有误", "evidence": "入户核查"
            }),
        )
        .await;
    assert_eq!(s, 404, "{body}");
    // The reviewer cannot file; the other agency cannot file under civil affairs' subscription.
    let (s, _) = api.post(&reviewer, "/admin/corrections", json!({})).await;
    assert_eq!(s, 403);
    let (s, _) = api
        .post(
            &health_token,
            "/admin/corrections",
            json!({
                "subscription": subscriptions[0].0, "record_id": original_id,
                "field": "member_count", "problem": "x", "evidence": "y"
            }),
        )
        .await;
    assert_eq!(s, 404);

    // Civil affairs files it; it reaches the provider, due in 10 working days.
    let (s, filed) = api.post(&civil_token, "/admin/corrections", json!({
        "subscription": subscriptions[0].0, "record_id": original_id, "field": "member_count",
        "problem": "户内人数有误：走访核实为 5 人", "evidence": "2026 年入户走访记录", "proposed_value": 5
    })).await;
    assert_eq!(s, 201, "{filed}");
    assert_eq!(filed["status"], "filed");
    assert_eq!(filed["provider"], json!(grid));
    assert!(
        filed["due_ms"].as_i64().unwrap()
            > filed["filed_at_ms"].as_i64().unwrap() + 10 * 86_400_000
    );
    let correction = filed["id"].as_str().unwrap().to_owned();
    let (_, listed) = api.get(&reviewer, "/admin/corrections").await;
    assert_eq!(
        listed["corrections"][0]["id"],
        json!(correction),
        "{listed}"
    );
    let (_, other) = api.get(&health_token, "/admin/corrections").await;
    assert!(
        other["corrections"].as_array().unwrap().is_empty(),
        "{other}"
    );

    // The security administrator does not answer for the provider; the provider corrects it.
    let answer = format!("/admin/corrections/{correction}/answer");
    let (s, _) = api
        .post(
            OPERATOR_TOKEN,
            &answer,
            json!({ "outcome": "corrected", "reason": "x", "value": 5 }),
        )
        .await;
    assert_eq!(s, 403);
    let (s, body) = api
        .post(
            &reviewer,
            &answer,
            json!({ "outcome": "corrected", "reason": "已核实" }),
        )
        .await;
    assert_eq!(s, 422, "a correction states the value: {body}");
    let (s, answered) = api
        .post(
            &reviewer,
            &answer,
            json!({ "outcome": "corrected", "reason": "已核实，更正为 5 人", "value": 5 }),
        )
        .await;
    assert_eq!(s, 200, "{answered}");
    assert_eq!(answered["status"], "corrected");
    let corrected_id = answered["answer"]["corrected_record_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(corrected_id, original_id);
    let (s, again) = api
        .post(
            &reviewer,
            &answer,
            json!({ "outcome": "refused", "reason": "x" }),
        )
        .await;
    assert_eq!(s, 409, "{again}");

    // Every subscriber of the record receives the new version: same source record, the correction in its
    // version, the corrected value.
    let check = |r: &Value| {
        assert_eq!(r["record_id"], json!(corrected_id), "{r}");
        assert_eq!(r["record"]["member_count"], 5, "{r}");
        assert_eq!(
            r["record"]["envelope"]["source_record_id"],
            original["record"]["envelope"]["source_record_id"]
        );
        let version = r["record"]["envelope"]["source_version"].as_str().unwrap();
        assert!(
            version.ends_with(&format!("+corr.{correction}")),
            "{version}"
        );
    };
    let path = format!("/v1/subscriptions/{}/ack", subscriptions[0].0);
    let (s, _) = api
        .post(&civil_token, &path, json!({ "cursor": cursor }))
        .await;
    assert_eq!(s, 200);
    let (records, _) = api
        .pull_at_least(&civil_token, &subscriptions[0].0, 1)
        .await;
    check(
        records
            .iter()
            .find(|r| r["record_id"] != json!(original_id))
            .expect("the new version"),
    );
    let (records, _) = api
        .pull_at_least(&health_token, &subscriptions[1].0, 2)
        .await;
    // The two versions may come from different partitions, in either order.
    let old = records
        .iter()
        .find(|r| r["record_id"] == json!(original_id))
        .expect("the original");
    assert_eq!(old["record"]["member_count"], members);
    check(
        records
            .iter()
            .find(|r| r["record_id"] != json!(original_id))
            .expect("the new version"),
    );

    // It is on record: filed and answered.
    assert_audited(&api, &["correction.file", "correction.answer"]).await;
    running.stop().await;
}

#[tokio::test]
async fn a_suspended_agency_is_paused_files_nothing_and_resumes_only_after_the_suspension_is_lifted(
) {
    let (_dir, running, api, _, civil, token) = hub_with_civil("S3").await;
    let (s, body) = api
        .post(
            &token,
            "/admin/subscriptions",
            request("red", "household", &["care_level"]),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let id = format!("{civil}.red");
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            &format!("/admin/subscriptions/{id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");

    // Only security suspends, and only with a reason.
    let suspend = format!("/admin/agencies/{civil}/suspend");
    let (s, _) = api
        .post(SYSTEM_TOKEN, &suspend, json!({ "reason": "x" }))
        .await;
    assert_eq!(s, 403);
    let (s, _) = api
        .post(OPERATOR_TOKEN, &suspend, json!({ "reason": " " }))
        .await;
    assert_eq!(s, 422);
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            &suspend,
            json!({ "reason": "超范围使用：将数据提供给第三方" }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["paused"], json!([id]));
    let (_, sub) = api
        .get(OPERATOR_TOKEN, &format!("/admin/subscriptions/{id}"))
        .await;
    assert_eq!(sub["status"], "paused");
    assert!(sub["reason"].as_str().unwrap().contains("Art. 27"), "{sub}");
    let (_, agency) = api
        .get(OPERATOR_TOKEN, &format!("/admin/agencies/{civil}"))
        .await;
    assert_eq!(
        agency["suspended"]["reason"], "超范围使用：将数据提供给第三方",
        "{agency}"
    );

    // Suspended: no new request, no resume, nothing pulled.
    let (s, body) = api
        .post(
            &token,
            "/admin/subscriptions",
            request("more", "household", &["care_level"]),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("suspended"),
        "{body}"
    );
    let resume = format!("/admin/subscriptions/{id}/resume");
    let (s, _) = api.post(OPERATOR_TOKEN, &resume, json!({})).await;
    assert_eq!(s, 409);
    let (s, _) = api
        .get(&token, &format!("/v1/subscriptions/{id}/records?max=1"))
        .await;
    assert_eq!(s, 403);

    // Lifted (with a reason): security resumes it.
    let lift = format!("/admin/agencies/{civil}/lift-suspension");
    let (s, _) = api
        .post(OPERATOR_TOKEN, &lift, json!({ "reason": "整改完成" }))
        .await;
    assert_eq!(s, 200);
    let (s, body) = api.post(OPERATOR_TOKEN, &resume, json!({})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "active");
    assert_audited(&api, &["agency.suspend", "agency.lift_suspension"]).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_register_is_read_by_platform_and_provider_and_outlives_retention_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // Retention as short as it goes: every record class older than 2 s is removed each second.
    let mut config: unsilo_hub::config::Config = toml::from_str(
        "[bus.retention]\ncheck_every = \"1s\"\n[bus.retention.raw]\nmax_age = \"2s\"\n[bus.retention.std]\nmax_age = \"2s\"\n[bus.retention.sub]\nmax_age = \"2s\"\n",
    )
    .unwrap();
    config.bus.embedded.data_dir = dir.path().to_owned();
    config.admin.sign_in.api_second_factor = false;
    let config = with_grid_and_operator(config);
    let running = RunningHub::start(&config).await;
    let api = Api::new(&running.base);
    let sfx = rand_suffix();
    let civil = format!("civil-{sfx}");
    let token = api
        .agency(&civil, "汉阴县民政局", "11610921016050037T", "S3")
        .await;
    let other = format!("other-{sfx}");
    let other_token = api
        .agency(&other, "汉阴县公安局", "11610921MB12345671", "S3")
        .await;
    let (_, reviewer) = grid_centre(&api, sfx).await;
    let (s, _) = api
        .post(
            &token,
            "/admin/subscriptions",
            request("red", "household", &["care_level"]),
        )
        .await;
    assert_eq!(s, 201);
    let id = format!("{civil}.red");
    let path = format!("/admin/subscriptions/{id}/usage");
    // Not before it is granted; every missing item named.
    let (s, _) = api
        .post(
            &token,
            &path,
            json!({ "scenario": "a", "process": "b", "outcome": "c", "storage": "d" }),
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = api
        .post(
            &reviewer,
            &format!("/admin/subscriptions/{id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, body) = api
        .post(
            &token,
            &path,
            json!({ "scenario": "", "process": "", "outcome": "x", "storage": "" }),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    for named in ["scenario", "process", "storage"] {
        assert!(
            body["message"].as_str().unwrap().contains(named),
            "{named}: {body}"
        );
    }
    // Another agency cannot record on it; the reviewer cannot either.
    let (s, _) = api
        .post(
            &other_token,
            &path,
            json!({ "scenario": "a", "process": "b", "outcome": "c", "storage": "d" }),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .post(
            &reviewer,
            &path,
            json!({ "scenario": "a", "process": "b", "outcome": "c", "storage": "d" }),
        )
        .await;
    assert_eq!(s, 403);
    let (s, recorded) = api
        .post(
            &token,
            &path,
            json!({
                "scenario": "红色等级户走访", "process": "按月导出走访名单交乡镇民政办",
                "outcome": "走访 12 户，发放临时救助 3 户", "storage": "民政业务系统，加密存储",
                "destruction": "保存期满后由系统自动删除"
            }),
        )
        .await;
    assert_eq!(s, 201, "{recorded}");

    // Read by the agency itself, the provider's reviewer and the platform; not by another agency.
    for t in [
        token.as_str(),
        reviewer.as_str(),
        OPERATOR_TOKEN,
        AUDITOR_TOKEN,
    ] {
        let (s, body) = api.get(t, &format!("/admin/usage?subscription={id}")).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["entries"].as_array().unwrap().len(), 1, "{body}");
    }
    let (_, body) = api.get(&other_token, "/admin/usage").await;
    assert!(body["entries"].as_array().unwrap().is_empty(), "{body}");

    // Retention passes run meanwhile (every record class but the control plane ages out after 2 s); the register
    // stays, across a restart too.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    running.stop().await;
    let running = RunningHub::start(&config).await;
    let api = Api::new(&running.base);
    let (_, body) = api
        .get(OPERATOR_TOKEN, &format!("/admin/usage?subscription={id}"))
        .await;
    assert_eq!(body["entries"][0]["id"], recorded["id"], "{body}");
    assert_eq!(
        body["entries"][0]["outcome"],
        "走访 12 户，发放临时救助 3 户"
    );
    running.stop().await;
}
