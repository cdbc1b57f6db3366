//! The evidence log in the console: verify its chains and signatures (with the report), and find entries by
//! ID number (turned into its person key, never stored), record id, subscription or agency. The search is sent
//! by POST, so an ID number never travels in a URL (nor lands in a proxy's log or the browser's history).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Form;
use maud::html;

use super::page::{self, badge, time, OrPage, PageResult};
use super::{Shared, Viewer};
use crate::audit::AuditEvent;
use crate::governance::AuditSearch;

/// `GET /console/audit`: the query form.
pub(super) async fn form_page(State(console): Shared, viewer: Viewer) -> PageResult {
    page(State(console), viewer, AuditSearch::default()).await
}

/// The search form: the criteria of [`AuditSearch`] (the session's CSRF token beside them is checked by the
/// guard and ignored here).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct SearchForm {
    #[serde(default)]
    cert_no: Option<String>,
    #[serde(default)]
    record_id: Option<String>,
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default)]
    agency: Option<String>,
}

/// `POST /console/audit`: the query form, and what it found.
pub(super) async fn search(
    State(console): Shared,
    viewer: Viewer,
    Form(f): Form<SearchForm>,
) -> PageResult {
    let search = AuditSearch {
        cert_no: f.cert_no,
        record_id: f.record_id,
        subscription: f.subscription,
        agency: f.agency,
        ..AuditSearch::default()
    };
    page(State(console), viewer, search).await
}

async fn page(State(console): Shared, viewer: Viewer, search: AuditSearch) -> PageResult {
    page::operator_page(&viewer, crate::roles::Action::ReadAuditLog)?;
    let l = viewer.lang;
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|v| v.trim().is_empty());
    let asked = !(blank(&search.cert_no)
        && blank(&search.record_id)
        && blank(&search.subscription)
        && blank(&search.agency)
        && blank(&search.person_key));
    let keep = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let shown = (
        search.record_id.clone().unwrap_or_default(),
        search.subscription.clone().unwrap_or_default(),
        search.agency.clone().unwrap_or_default(),
    );
    let entries = if asked {
        let search = AuditSearch {
            record_id: keep(search.record_id),
            person_key: keep(search.person_key),
            cert_no: keep(search.cert_no),
            subscription: keep(search.subscription),
            agency: keep(search.agency),
            limit: Some(search.limit.unwrap_or(200).min(1000)),
        };
        Some(
            console
                .governance
                .query_audit(&viewer.principal, search)
                .await
                .or_page(l)?,
        )
    } else {
        None
    };
    let body = html! {
        p { a href="/console/audit/verify" { (l.t("校验证据链 →", "Verify the evidence chain →")) } }
        form.card.filters #audit-query method="post" action="/console/audit" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            div { label for="cert_no" { (l.t("身份证号", "ID number")) }
                input #cert_no type="text" name="cert_no" autocomplete="off" maxlength="18"; }
            div { label for="record_id" { (l.t("记录编号", "Record id")) }
                input #record_id type="text" name="record_id" value=(shown.0); }
            div { label for="subscription" { (l.t("订阅", "Subscription")) }
                input #subscription type="text" name="subscription" value=(shown.1); }
            div { label for="agency" { (l.t("部门", "Agency")) }
                input #agency type="text" name="agency" value=(shown.2); }
            button type="submit" { (l.t("查询", "Search")) }
        }
        p.hint { (l.t("身份证号只在本次查询中换算为假名键，不会被保存或记录。",
            "An ID number is turned into its pseudonymous key for this search only; it is never stored or logged.")) }
        @if let Some(answer) = &entries {
            @let entries = &answer.entries;
            p.muted { (entries.len()) " " (l.t("条记录（最早在前）", "entries, oldest first")) }
            @if answer.unverified_matches > 0 || answer.unverified_in_log > 0 {
                p.error #unverified { (l.t("未经签名验证的记录不作为证据：", "Entries no hub signature vouches for are not evidence: "))
                    (answer.unverified_matches) (l.t(" 条符合条件的记录被排除；日志中共有 ", " matching entries left out; ")) (answer.unverified_in_log)
                    (l.t(" 条未验证记录。请运行证据链校验。", " unverified in the whole log. Verify the evidence chain.")) }
            }
            table #audit-entries {
                thead { tr { th { (l.t("时间", "Time")) } th { (l.t("事件", "Event")) } th { (l.t("详情", "Details")) } th { "seq" } } }
                tbody { @for e in entries {
                    tr { td { (time(e.body.time_ms)) }
                        @match &e.body.event {
                            AuditEvent::Release { record_id, subscription, agency, fields, purpose, channel, .. } => {
                                td { (l.t("发布", "release")) }
                                td { code { (record_id) } " → " (subscription) " (" (agency) ", " (channel) ")" br;
                                    span.muted { (purpose) " · "
                                        @for f in fields { code { (f.field) } ":" (f.treatment.as_str()) " " } } }
                            }
                            AuditEvent::Control { actor, action, target, .. } => {
                                td { (action) }
                                td { (actor) " → " code { (target) } }
                            }
                            AuditEvent::ReleaseTerms(terms) => {
                                td { (l.t("发布条件", "release terms")) }
                                td { (terms.subscription) " (" (terms.agency) ", " (terms.channel) ")" }
                            }
                            AuditEvent::Releases { records } => {
                                td { (l.t("批量发布", "releases")) }
                                td { (records.len()) (l.t(" 条记录", " records")) }
                            }
                        }
                        td { (e.body.hub) "#" (e.body.seq) }
                    }
                } }
            }
        }
    };
    Ok(page::page(&viewer, l.t("审计", "Audit"), body).into_response())
}

/// `GET /console/audit/verify`: the verification report.
pub(super) async fn verify(State(console): Shared, viewer: Viewer) -> PageResult {
    let l = viewer.lang;
    let report = console
        .governance
        .verify_audit(&viewer.principal, &[])
        .await
        .or_page(l)?;
    let body = html! {
        p #verdict { @if report.is_intact() {
            (badge("intact")) " " (l.t("证据链完整：每条记录的哈希链和签名均校验通过。", "The evidence is intact: every entry's hash chain and signature check out."))
        } @else {
            (badge("broken")) " " (l.t("发现问题：", "Problems were found:"))
        } }
        p { (l.t("记录数", "Entries")) " " strong { (report.entries) } " · " (l.t("检查点", "checkpoints")) " " strong { (report.checkpoints) } }
        @if !report.problems.is_empty() {
            ul.error { @for p in &report.problems { li { "@" (p.offset) ": " (p.message) } } }
        }
        @if !report.warnings.is_empty() {
            ul { @for w in &report.warnings { li.muted { (w) } } }
        }
        table #chains {
            thead { tr { th { (l.t("中枢", "Hub")) } th.num { "seq" } th.num { (l.t("已签名至", "Signed through")) } th { (l.t("公钥来源", "Key source")) } } }
            tbody { @for (hub, c) in &report.chains {
                tr { td { (hub) } td.num { (c.seq) } td.num { (c.signed_through) }
                    td { (c.key_source.as_ref().map(|k| format!("{k:?}")).unwrap_or_else(|| "—".into())) } }
            } }
        }
        p { a href="/console/audit" { (l.t("返回审计", "Back to the audit")) } }
    };
    Ok(page::page(&viewer, l.t("证据链校验", "Audit verification"), body).into_response())
}
