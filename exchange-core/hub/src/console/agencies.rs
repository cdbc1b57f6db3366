//! Agencies and their tokens: create an agency, issue and revoke tokens. A new token is shown once, on the
//! page that answers the form, and never again (the hub keeps only its digest).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::page::{self, badge, time, Lang, OrPage, PageError, PageResult};
use super::subscriptions::end_of_day_ms;
use super::{Shared, Viewer};
use crate::governance::{NewAgency, NewToken};

/// `GET /console/agencies`.
pub(super) async fn list(State(console): Shared, viewer: Viewer) -> PageResult {
    page::operator_page(&viewer, crate::roles::Action::ViewAgencies)?;
    let l = viewer.lang;
    let mut agencies = console
        .governance
        .list_agencies(&viewer.principal)
        .or_page(l)?;
    agencies.sort_by(|a, b| a.id.cmp(&b.id));
    let now = unsilo_bus::now_ms();
    let body = html! {
        table #agencies {
            thead { tr {
                th { "ID" } th { (l.t("名称", "Name")) } th { (l.t("统一社会信用代码", "USCC")) }
                th { (l.t("授权级别", "Clearance")) } th.num { (l.t("有效令牌", "Live tokens")) }
            } }
            tbody { @for a in &agencies {
                tr {
                    td { a href=(format!("/console/agencies/{}", a.id)) { (a.id) } }
                    td { (a.name) } td { code { (a.uscc) } } td { (a.clearance.as_str()) }
                    td.num { (a.tokens.iter().filter(|t| t.revoked_at_ms.is_none() && t.expires_at_ms.is_none_or(|e| e > now)).count()) }
                }
            } }
        }
        @if viewer.may(crate::roles::Action::ManageAgencies) {
        h2 { (l.t("新建部门", "Create an agency")) }
        form.card #create-agency method="post" action="/console/agencies" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            label for="id" { "ID" (l.t("（小写字母、数字、-）", " (a-z, 0-9, -)")) }
            input #id type="text" name="id" required pattern="[a-z0-9\\-]+";
            label for="name" { (l.t("名称", "Name")) }
            input #name type="text" name="name" required;
            label for="uscc" { (l.t("统一社会信用代码", "Unified social credit code")) }
            input #uscc type="text" name="uscc" required maxlength="18";
            label for="clearance" { (l.t("授权级别", "Clearance")) }
            select #clearance name="clearance" {
                @for c in ["S1", "S2", "S3", "S4"] { option value=(c) selected[c == "S2"] { (c) } }
            }
            p { button type="submit" { (l.t("创建并签发令牌", "Create and issue a token")) } }
        }
        }
    };
    Ok(page::page(&viewer, l.t("部门", "Agencies"), body).into_response())
}

/// The new-agency form.
#[derive(Deserialize)]
pub(super) struct NewAgencyForm {
    id: String,
    name: String,
    uscc: String,
    clearance: String,
}

fn token_shown_once(l: Lang, agency: &str, token: &str, token_id: &str) -> Markup {
    html! {
        p.notice { (l.t("令牌只显示这一次，请立即安全地交给该部门；中枢只保存它的摘要。",
            "The token is shown only now: hand it to the agency securely. The hub keeps only its digest.")) }
        p { (l.t("部门", "Agency")) " " strong { (agency) } " · " (l.t("令牌编号", "token id")) " " code { (token_id) } }
        p.secret #new-token { (token) }
        p { a href=(format!("/console/agencies/{agency}")) { (l.t("查看部门", "Go to the agency")) } }
    }
}

/// `POST /console/agencies`.
pub(super) async fn create(
    State(console): Shared,
    viewer: Viewer,
    Form(form): Form<NewAgencyForm>,
) -> PageResult {
    let l = viewer.lang;
    let new = NewAgency {
        id: form.id.trim().to_owned(),
        name: form.name.trim().to_owned(),
        uscc: form.uscc.trim().to_owned(),
        clearance: form.clearance,
        client_cert_sha256: None,
        token_expires_at_ms: None,
    };
    let (agency, token) = console
        .governance
        .create_agency(&viewer.principal, new)
        .await
        .or_page(l)?;
    let token_id = agency
        .tokens
        .first()
        .map(|t| t.id.clone())
        .unwrap_or_default();
    let body = token_shown_once(l, &agency.id, &token, &token_id);
    Ok(page::page(&viewer, l.t("部门已创建", "Agency created"), body).into_response())
}

/// `GET /console/agencies/{id}`: the agency and its tokens (ids and times, never digests).
pub(super) async fn show(
    State(console): Shared,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let l = viewer.lang;
    let agency = console
        .governance
        .visible_agency(&viewer.principal, &id)
        .or_page(l)?;
    let now = unsilo_bus::now_ms();
    let body = html! {
        p { (agency.name) " · " code { (agency.uscc) } " · " (l.t("授权级别", "clearance")) " " (agency.clearance.as_str()) }
        h2 { (l.t("令牌", "Tokens")) }
        table #tokens {
            thead { tr { th { (l.t("编号", "Id")) } th { (l.t("签发", "Issued")) } th { (l.t("到期", "Expires")) } th { (l.t("状态", "State")) } th {} } }
            tbody { @for t in &agency.tokens {
                @let state = if t.revoked_at_ms.is_some() { "revoked" } else if t.expires_at_ms.is_some_and(|e| e <= now) { "expired" } else { "active" };
                tr {
                    td { code { (t.id) } }
                    td { (time(t.issued_at_ms)) }
                    td { (t.expires_at_ms.map_or("—".to_owned(), time)) }
                    td { (badge(state)) }
                    td { @if state == "active" && viewer.may(crate::roles::Action::RevokeAgencyCredentials) {
                        form.inline method="post" action=(format!("/console/agencies/{}/tokens/{}/revoke", agency.id, t.id))
                            data-confirm=(l.t("确定吊销该令牌？", "Revoke this token?")) {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button.danger type="submit" { (l.t("吊销", "Revoke")) }
                        }
                    } }
                }
            } }
        }
        @if viewer.may(crate::roles::Action::IssueAgencyCredentials) {
            form.card #issue-token method="post" action=(format!("/console/agencies/{}/tokens", agency.id)) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="expires" { (l.t("到期日（可选）", "Expiry date (optional)")) }
                input #expires type="date" name="expires";
                " " button type="submit" { (l.t("签发新令牌", "Issue a new token")) }
            }
        }
    };
    Ok(page::page(
        &viewer,
        &format!("{} {}", l.t("部门", "Agency"), agency.id),
        body,
    )
    .into_response())
}

/// The issue-token form.
#[derive(Deserialize)]
pub(super) struct IssueForm {
    #[serde(default)]
    expires: String,
}

/// `POST /console/agencies/{id}/tokens`.
pub(super) async fn issue_token(
    State(console): Shared,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<IssueForm>,
) -> PageResult {
    let l = viewer.lang;
    let expires_at_ms = match form.expires.trim() {
        "" => None,
        date => Some(end_of_day_ms(date).ok_or_else(|| {
            PageError::new(
                l,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a date: {date}"),
            )
        })?),
    };
    let (token, token_id) = console
        .governance
        .issue_token(
            &viewer.principal,
            &id,
            NewToken {
                expires_at_ms,
                reviewer: None,
            },
        )
        .await
        .or_page(l)?;
    let body = token_shown_once(l, &id, &token, &token_id);
    Ok(page::page(&viewer, l.t("新令牌", "New token"), body).into_response())
}

/// `POST /console/agencies/{id}/tokens/{token_id}/revoke`.
pub(super) async fn revoke_token(
    State(console): Shared,
    viewer: Viewer,
    Path((id, token_id)): Path<(String, String)>,
) -> PageResult {
    let l = viewer.lang;
    console
        .governance
        .revoke_token(&viewer.principal, &id, &token_id)
        .await
        .or_page(l)?;
    Ok(Redirect::to(&format!("/console/agencies/{id}")).into_response())
}
