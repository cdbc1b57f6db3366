//! Helpers of the sharing-workflow tests (政务数据共享条例): a complete Art. 20 request, catalogue entries read and
//! edited, providing organisations with a reviewer, a hub with this run's civil-affairs bureau, and the check that
//! the audit log holds an entry.

use serde_json::{json, Value};

use crate::api::{with_grid_and_operator, Api, AUDITOR_TOKEN, OPERATOR_TOKEN};
use crate::{embedded_config, rand_suffix, RunningHub};

/// A complete request (Art. 20: basis, scenario, scope, time limit) for `schema`'s `fields`, all in clear, of no
/// CORE-grade record.
pub fn request(name: &str, schema: &str, fields: &[&str]) -> Value {
    let rules: Vec<Value> = fields
        .iter()
        .map(|f| json!({ "field": f, "treatment": "clear" }))
        .collect();
    json!({
        "name": name, "schema": schema, "fields": rules,
        // Without CORE records, one decision suffices (no 双人复核).
        "filter": "data_grade != \"CORE\"",
        "purpose": "走访帮扶", "legal_basis": "《社会救助暂行办法》",
        "scenario": "民政救助对象动态管理", "scope": "本县红色关爱等级的户",
        "expires_at": "2030-12-31T23:59:59+08:00",
        "channel": { "kind": "pull" }
    })
}

/// The current version and terms of catalogue entry `id`.
pub async fn entry(api: &Api, id: &str) -> Value {
    let (s, body) = api
        .get(OPERATOR_TOKEN, &format!("/admin/catalogue/{id}"))
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

/// Puts `terms` as the next version of entry `id` with `note`.
pub async fn edit(api: &Api, id: &str, terms: Value, note: &str) -> (u16, Value) {
    let version = entry(api, id).await["version"].clone();
    api.call(
        reqwest::Method::PUT,
        OPERATOR_TOKEN,
        &format!("/admin/catalogue/{id}"),
        Some(json!({ "version": version, "note": note, "terms": terms })),
    )
    .await
}

/// Registers a providing organisation `org` (named `name`, `uscc`), issues a reviewer's token to 王芳 of it, and
/// names it the provider of the catalogue entries `schemas`; returns the reviewer's token.
pub async fn provider(api: &Api, org: &str, name: &str, uscc: &str, schemas: &[&str]) -> String {
    api.agency(org, name, uscc, "S1").await;
    let (s, body) = api
        .post(
            OPERATOR_TOKEN,
            &format!("/admin/agencies/{org}/tokens"),
            json!({ "reviewer": "王芳" }),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    for schema in schemas {
        let mut terms = entry(api, schema).await["terms"].clone();
        terms["provider"] = json!(org);
        let (s, body) = edit(api, schema, terms, "提供方").await;
        assert_eq!(s, 200, "{body}");
    }
    body["token"].as_str().unwrap().to_owned()
}

/// The grid centre of this run as the provider of households; its reviewer's token.
pub async fn grid_centre(api: &Api, sfx: u64) -> (String, String) {
    let grid = format!("grid-center-{sfx}");
    let token = provider(
        api,
        &grid,
        "汉阴县网格化服务管理中心",
        "12610921MB0000002C",
        &["household"],
    )
    .await;
    (grid, token)
}

/// A hub of its own (embedded bus, grid connector, the test operators) and this run's civil-affairs bureau at
/// `clearance`: the directory, the hub, its API client, the run's suffix, the agency's id and token.
pub async fn hub_with_civil(
    clearance: &str,
) -> (tempfile::TempDir, RunningHub, Api, u64, String, String) {
    hub_with_civil_on(|_| {}, clearance).await
}

/// As [`hub_with_civil`], on the embedded configuration as `adjust` leaves it.
pub async fn hub_with_civil_on(
    adjust: impl FnOnce(&mut unsilo_hub::config::Config),
    clearance: &str,
) -> (tempfile::TempDir, RunningHub, Api, u64, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    adjust(&mut config);
    let running = RunningHub::start(&with_grid_and_operator(config)).await;
    let api = Api::new(&running.base);
    let sfx = rand_suffix();
    let civil = format!("civil-{sfx}");
    let token = api
        .agency(&civil, "汉阴县民政局", "11610921016050037T", clearance)
        .await;
    (dir, running, api, sfx, civil, token)
}

/// The audit log holds an entry with each of `words`.
pub async fn assert_audited(api: &Api, words: &[&str]) {
    let (s, audit) = api.get(AUDITOR_TOKEN, "/admin/audit?limit=1000").await;
    assert_eq!(s, 200, "{audit}");
    let text = audit.to_string();
    for w in words {
        assert!(text.contains(w), "{w} is not on record: {text}");
    }
}
