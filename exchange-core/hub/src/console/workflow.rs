//! The console's pages of the sharing workflow (政务数据共享条例): the resource catalogue — browse and search it,
//! read an entry with its data items and versions, download it as `.xlsx` — and extending a request's answer
//! deadline. Operators, agencies and providers' reviewers all browse the catalogue; only the operations decide
//! who may do more.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::page::{self, badge, time, OrPage, PageError, PageResult};
use super::{Shared, Viewer};
use crate::governance::catalogue_export::{catalogue_workbook, workbook_response};
use crate::governance::ExtensionRequest;
use crate::roles::Action;

/// The catalogue page's query.
#[derive(Debug, Default, Deserialize)]
pub(super) struct CatalogueQuery {
    #[serde(default)]
    q: Option<String>,
}

/// `GET /console/catalogue?q=`: the catalogue, searchable.
pub(super) async fn list(
    State(console): Shared,
    viewer: Viewer,
    Query(query): Query<CatalogueQuery>,
) -> PageResult {
    let l = viewer.lang;
    let q = query.q.unwrap_or_default();
    let q = q.trim();
    let entries = console
        .governance
        .catalogue(&viewer.principal, (!q.is_empty()).then_some(q))
        .or_page(l)?;
    let body = html! {
        form.filters method="get" action="/console/catalogue" {
            div { label for="catalogue-q" { (l.t("搜索（名称、分类、提供方、信息项）", "Search (title, classification, provider, data items)")) }
                input #catalogue-q type="search" name="q" value=(q); }
            button type="submit" { (l.t("搜索", "Search")) }
        }
        p { a #catalogue-xlsx href="/console/catalogue/export.xlsx" { (l.t("导出目录（.xlsx）", "Download the catalogue (.xlsx)")) } }
        @if entries.is_empty() {
            p.muted #catalogue-empty { (l.t("没有匹配的目录条目。", "No entry matches.")) }
        } @else {
            table #catalogue {
                thead { tr {
                    th { (l.t("资源代码", "Code")) } th { (l.t("资源名称", "Title")) } th { (l.t("分类", "Classification")) }
                    th { (l.t("提供方", "Provider")) } th { (l.t("共享属性", "Sharing")) } th { (l.t("分级", "Grade")) }
                    th { (l.t("共享方式", "Modes")) } th { (l.t("版本", "Version")) }
                } }
                tbody { @for v in &entries {
                    @let t = &v.entry.terms;
                    tr data-id=(v.entry.id) {
                        td { a href=(format!("/console/catalogue/{}", v.entry.id)) { code { (v.entry.id) } } }
                        td { (t.title) } td { (t.classification) }
                        td { (v.provider_name.as_deref().or(t.provider.as_deref()).unwrap_or("—")) }
                        td { (badge(t.share_attribute.title_zh())) } td { (t.grade) }
                        td { (t.share_modes.iter().map(|m| m.title_zh()).collect::<Vec<_>>().join("、")) }
                        td.num { (v.entry.version) }
                    }
                } }
            }
        }
    };
    Ok(page::page(&viewer, l.t("政务数据资源目录", "Resource catalogue"), body).into_response())
}

/// `GET /console/catalogue/{id}`: one entry, its data items and its versions.
pub(super) async fn show(
    State(console): Shared,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let l = viewer.lang;
    let v = console
        .governance
        .catalogue_entry(&viewer.principal, &id)
        .or_page(l)?;
    let t = &v.entry.terms;
    let may_request = viewer.may(Action::RequestSubscription) && t.refusal().is_none();
    let body = html! {
        table.spec #entry {
            tr { th { (l.t("资源名称", "Title")) } td { (t.title) } }
            tr { th { (l.t("资源分类", "Classification")) } td { (t.classification) } }
            tr { th { (l.t("提供方", "Provider")) } td {
                (v.provider_name.as_deref().or(t.provider.as_deref()).unwrap_or("—"))
                @if let Some(u) = &v.provider_uscc { " · " code { (u) } } } }
            tr { th { (l.t("共享属性", "Sharing")) } td #share-attribute { (t.share_attribute.title_zh()) } }
            @if let Some(c) = &t.conditions { tr { th { (l.t("共享条件", "Conditions")) } td { (c) } } }
            @if let Some(b) = &t.not_shared_basis { tr { th { (l.t("不予共享依据", "Not shared, on the basis of")) } td { (b) } } }
            tr { th { (l.t("共享方式", "Modes")) } td { (t.share_modes.iter().map(|m| m.title_zh()).collect::<Vec<_>>().join("、")) } }
            tr { th { (l.t("更新频率", "Update frequency")) } td { (t.update_frequency) } }
            tr { th { (l.t("数据格式", "Format")) } td { (t.format) } }
            tr { th { (l.t("使用条件", "Conditions of use")) } td { (t.conditions_of_use) } }
            tr { th { (l.t("数据分级", "Grade")) } td { (t.grade) } }
            tr { th { (l.t("版本", "Version")) } td { (v.entry.version) " · " (v.entry.changed_by) " · " (time(v.entry.changed_at_ms)) " · " (v.entry.note) } }
        }
        @if may_request {
            p { a #request-entry href=(format!("/console/subscriptions/new?schema={}", v.entry.schema)) { (l.t("申请使用该资源 →", "Request this resource →")) } }
        }
        h2 { (l.t("信息项", "Data items")) }
        table #items {
            thead { tr { th { (l.t("信息项", "Item")) } th { (l.t("说明", "Description")) } th { (l.t("敏感级别", "Sensitivity")) } } }
            tbody { @for i in &v.items {
                tr { td { code { (i.field) } } td { (i.title) } td { (i.sensitivity.as_str()) } }
            } }
        }
        @if !v.entry.earlier.is_empty() {
            h2 { (l.t("历史版本", "Earlier versions")) }
            table #versions {
                thead { tr { th { (l.t("版本", "Version")) } th { (l.t("共享属性", "Sharing")) } th { (l.t("提供方", "Provider")) } th { (l.t("修改人", "By")) } th { (l.t("时间", "When")) } th { (l.t("说明", "Note")) } } }
                tbody { @for e in v.entry.earlier.iter().rev() {
                    tr { td.num { (e.version) } td { (e.terms.share_attribute.title_zh()) }
                        td { (e.terms.provider.as_deref().unwrap_or("—")) }
                        td { (e.changed_by) } td { (time(e.changed_at_ms)) } td { (e.note) } }
                } }
            }
        }
    };
    Ok(page::page(
        &viewer,
        &format!("{} {}", l.t("目录条目", "Catalogue entry"), v.entry.id),
        body,
    )
    .into_response())
}

/// `GET /console/catalogue/export.xlsx`: the workbook a provincial catalogue system imports.
pub(super) async fn export(State(console): Shared, viewer: Viewer) -> PageResult {
    let l = viewer.lang;
    let entries = console
        .governance
        .catalogue(&viewer.principal, None)
        .or_page(l)?;
    let bytes = catalogue_workbook(&entries).map_err(|e| {
        tracing::error!(error = %e, "Writing the catalogue workbook failed.");
        PageError::new(
            l,
            StatusCode::INTERNAL_SERVER_ERROR,
            l.t("导出失败。", "The export failed."),
        )
    })?;
    Ok(workbook_response(bytes, "catalogue.xlsx"))
}

/// The extension form.
#[derive(Debug, Deserialize)]
pub(super) struct ExtendForm {
    #[serde(default)]
    days: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/subscriptions/{id}/extend`: extends the answer deadline once.
pub(super) async fn extend(
    State(console): Shared,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ExtendForm>,
) -> PageResult {
    let l = viewer.lang;
    let days = form.days.trim().parse::<u32>().map_err(|_| {
        PageError::new(
            l,
            StatusCode::UNPROCESSABLE_ENTITY,
            l.t(
                "延期天数应为 1–10 个工作日。",
                "days: a whole number of working days, 1–10.",
            ),
        )
    })?;
    console
        .governance
        .extend_deadline(
            &viewer.principal,
            &id,
            ExtensionRequest {
                days,
                reason: form.reason,
            },
        )
        .await
        .or_page(l)?;
    Ok(Redirect::to(&format!("/console/subscriptions/{id}")).into_response())
}
