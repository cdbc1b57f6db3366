//! `/console/api`: the hub's OpenAPI document as a readable page — every route by tag, with its
//! parameters, request body and answers — rendered on the server from the same document `/openapi.json` serves
//! (so it works offline and cannot disagree with it).

use std::sync::Arc;

use axum::response::IntoResponse;
use axum::Extension;
use maud::{html, Markup};
use serde_json::Value;

use super::page::{self, PageResult};
use super::Viewer;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn operation(method: &str, path: &str, op: &Value) -> Markup {
    let params = op
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let body_types: Vec<String> = op
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
        .map(|c| c.keys().cloned().collect())
        .unwrap_or_default();
    let responses = op
        .get("responses")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let open = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
        });
    html! {
        details.card.operation id=(format!("{method}-{path}")) {
            summary { code.method { (method.to_uppercase()) } " " code { (path) }
                @let summary = text(op, "summary");
                @if !summary.is_empty() { " — " (summary) } }
            @let description = text(op, "description");
            @if !description.is_empty() { p { (description) } }
            p.muted { @if open { "No credentials needed (or optional)." } @else { "Credentials: Bearer token, or HTTP Basic name:token." } }
            @if !params.is_empty() {
                table { thead { tr { th { "Parameter" } th { "In" } th { "Required" } th { "Description" } } }
                    tbody { @for p in &params { tr {
                        td { code { (text(p, "name")) } } td { (text(p, "in")) }
                        td { (if p.get("required").and_then(Value::as_bool).unwrap_or(false) { "yes" } else { "no" }) }
                        td { (text(p, "description")) }
                    } } } }
            }
            @if !body_types.is_empty() { p { "Request body: " @for t in &body_types { code { (t) } " " } } }
            table { thead { tr { th { "Answer" } th { "Description" } th { "Content" } } }
                tbody { @for (status, r) in &responses { tr {
                    td { code { (status) } } td { (text(r, "description")) }
                    td { @for t in r.get("content").and_then(Value::as_object).map(|c| c.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() { code { (t) } " " } }
                } } } }
        }
    }
}

/// `GET /console/api`.
pub(super) async fn page(
    viewer: Viewer,
    Extension(api): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> PageResult {
    let l = viewer.lang;
    let doc = serde_json::to_value(api.as_ref()).unwrap_or_default();
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut by_tag: std::collections::BTreeMap<String, Vec<(String, String, Value)>> =
        Default::default();
    for (path, item) in &paths {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let tag = op
                    .pointer("/tags/0")
                    .and_then(Value::as_str)
                    .unwrap_or("other")
                    .to_owned();
                by_tag
                    .entry(tag)
                    .or_default()
                    .push((method.to_owned(), path.clone(), op.clone()));
            }
        }
    }
    let body = html! {
        p { (l.t("机器可读的文档：", "The machine-readable document: ")) a href="/openapi.json" { code { "/openapi.json" } }
            " (OpenAPI " (text(&doc, "openapi")) ")" }
        p.hint { (text(doc.get("info").unwrap_or(&Value::Null), "description")) }
        @for (tag, ops) in &by_tag {
            h2 { (tag) }
            @for (method, path, op) in ops { (operation(method, path, op)) }
        }
    };
    Ok(page::page(&viewer, l.t("接口参考", "API reference"), body).into_response())
}
