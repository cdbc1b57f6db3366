//! The registry's subjects in the console: the shared schemas every agency may read, and the view schemas
//! of subscriptions (an agency sees its own), each field with its type, sensitivity and PII kind.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::html;
use unsilo_registry::VersionSpec;
use unsilo_schemas::model::SchemaRecord;
use unsilo_schemas::names;

use super::page::{self, PageError, PageResult};
use super::{Shared, Viewer};

/// Whether `viewer` may read `subject`: the registry API's own rule.
fn may_read(viewer: &Viewer, subject: &str) -> bool {
    crate::access::registry_caller(Some(&viewer.principal)).is_some_and(|c| c.may_read(subject))
}

/// `GET /console/schemas`.
pub(super) async fn list(State(console): Shared, viewer: Viewer) -> PageResult {
    let l = viewer.lang;
    let subjects: Vec<String> = console
        .registry
        .subjects(false)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| may_read(&viewer, s))
        .collect();
    let body = html! {
        table #subjects {
            thead { tr { th { (l.t("主题", "Subject")) } th { (l.t("版本", "Versions")) } } }
            tbody { @for s in &subjects {
                tr { td { a href=(format!("/console/schemas/{s}")) { code { (s) } } }
                    td { (console.registry.versions(s, false).map(|v| v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")).unwrap_or_default()) } }
            } }
        }
    };
    Ok(page::page(&viewer, l.t("数据模式", "Schemas"), body).into_response())
}

/// `GET /console/schemas/{subject}`: the latest version's fields.
pub(super) async fn show(
    State(console): Shared,
    viewer: Viewer,
    Path(subject): Path<String>,
) -> PageResult {
    let l = viewer.lang;
    let not_found = || {
        PageError::new(
            l,
            StatusCode::NOT_FOUND,
            format!("{} `{subject}`", l.t("没有主题", "no subject")),
        )
    };
    if !may_read(&viewer, &subject) {
        return Err(not_found());
    }
    let found = console
        .registry
        .version(&subject, VersionSpec::Latest, false)
        .map_err(|_| not_found())?;
    let json: serde_json::Value = serde_json::from_str(&found.schema).unwrap_or_default();
    let tree = SchemaRecord::parse(&json).ok();
    let mut rows = Vec::new();
    if let Some(tree) = &tree {
        let _ = tree.visit_fields(&mut |path, field| -> Result<(), ()> {
            let attr = |k: &str| {
                field
                    .attrs
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("—")
                    .to_owned()
            };
            rows.push((
                path.to_owned(),
                field.ty.describe(),
                attr("x-sensitivity"),
                attr("x-pii"),
                attr("x-treatment"),
                field.doc().to_owned(),
            ));
            Ok(())
        });
    }
    let view = subject.starts_with(names::SUB_PREFIX);
    let body = html! {
        p { (l.t("版本", "Version")) " " (found.version) " · id " (found.id) }
        table #fields {
            thead { tr {
                th { (l.t("字段", "Field")) } th { (l.t("类型", "Type")) }
                th { (l.t("敏感级别", "Sensitivity")) } th { (l.t("个人信息", "PII")) }
                @if view { th { (l.t("处理方式", "Treatment")) } }
                th { (l.t("说明", "Description")) }
            } }
            tbody { @for (path, ty, s, pii, treatment, doc) in &rows {
                tr { td { code { (path) } } td { code { (ty) } } td { (s) } td { (pii) }
                    @if view { td { (treatment) } }
                    td.muted { (doc) } }
            } }
        }
        details { summary { (l.t("模式原文", "Schema text")) }
            pre { (serde_json::to_string_pretty(&json).unwrap_or_default()) } }
    };
    Ok(page::page(&viewer, &subject, body).into_response())
}
