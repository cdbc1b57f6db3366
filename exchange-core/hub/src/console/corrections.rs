//! The console's corrections (校核纠错, 政务数据共享条例 Art. 26): an agency files one on a record it received
//! (from the record on its subscription's page, or the form), the providing organisation's reviewer answers it —
//! corrected with the right value, or refused with reasons — and everyone involved follows it on one list.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use unsilo_policy::correction::{Correction, CorrectionStatus};

use super::page::{self, badge, time, Lang, OrPage, PageError, PageResult};
use super::{Shared, Viewer};
use crate::governance::{CorrectionOutcome, CorrectionReply, NewCorrection};
use crate::roles::Action;

/// `GET /console/corrections`: the corrections the viewer may see, with the answer form where it answers.
pub(super) async fn list(State(console): Shared, viewer: Viewer) -> PageResult {
    let l = viewer.lang;
    let list = console
        .governance
        .corrections(&viewer.principal)
        .or_page(l)?;
    let now = unsilo_bus::now_ms();
    let body = html! {
        @if viewer.may(Action::FileCorrection) {
            p { a #file-correction href="/console/corrections/new" { (l.t("对收到的记录提出纠错 →", "File a correction on a record received →")) } }
        }
        @if list.is_empty() {
            p.muted #no-corrections { (l.t("没有纠错申请。", "No corrections.")) }
        }
        @for c in &list {
            (correction_card(c, &viewer, now))
        }
    };
    Ok(page::page(&viewer, l.t("校核纠错", "Corrections"), body).into_response())
}

fn status_label(s: CorrectionStatus, l: Lang) -> &'static str {
    match s {
        CorrectionStatus::Filed => l.t("待答复", "filed"),
        CorrectionStatus::Corrected => l.t("已更正", "corrected"),
        CorrectionStatus::Refused => l.t("不予更正", "refused"),
    }
}

fn correction_card(c: &Correction, viewer: &Viewer, now: i64) -> Markup {
    let l = viewer.lang;
    let answers = match (&viewer.principal, &c.provider) {
        (crate::auth::Principal::Reviewer { agency, .. }, Some(p)) => agency == p,
        (crate::auth::Principal::Operator { .. }, None) => viewer.may(Action::AnswerCorrection),
        _ => false,
    } && c.status == CorrectionStatus::Filed;
    html! {
        section.card.correction data-id=(c.id) {
            h2 { code { (c.id) } " " (badge(status_label(c.status, l)))
                @if c.is_late(now) { " " span.badge.overdue { (l.t("逾期", "late")) } } }
            table.spec {
                tr { th { (l.t("记录", "Record")) } td { code { (c.record_id) } " (" (c.schema) ")" } }
                tr { th { (l.t("字段", "Field")) } td { code.field { (c.field) } } }
                tr { th { (l.t("问题", "Problem")) } td { (c.problem) } }
                tr { th { (l.t("依据", "Evidence")) } td { (c.evidence) } }
                @if let Some(v) = &c.proposed_value { tr { th { (l.t("建议值", "Proposed")) } td { code { (v.to_string()) } } } }
                tr { th { (l.t("申请部门", "Filed by")) } td { (c.agency) " · " (c.subscription) " · " (time(c.filed_at_ms)) } }
                tr { th { (l.t("答复单位", "Answered by")) } td { (c.provider.as_deref().unwrap_or(l.t("平台安全管理员", "the platform's security administrators"))) } }
                tr { th { (l.t("答复期限", "Answer due")) } td { (time(c.due_ms)) @if let Some(p) = &c.provisional { " " span.muted { "(" (p) ")" } } } }
                @if let Some(a) = &c.answer {
                    tr { th { (l.t("答复", "Answer")) } td.answer {
                        (a.reason) " · " (a.by) " · " (time(a.at_ms))
                        @if let Some(v) = &a.value { " · " (l.t("更正为", "corrected to")) " " code { (v.to_string()) } }
                        @if let Some(id) = &a.corrected_record_id { " · " (l.t("新版本", "new version")) " " code.new-record { (id) } }
                    } }
                }
            }
            @if answers {
                form.answer method="post" action=(format!("/console/corrections/{}/answer", c.id)) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label { input type="radio" name="outcome" value="corrected" checked; " " (l.t("更正", "Correct it")) }
                    label { input type="radio" name="outcome" value="refused"; " " (l.t("不予更正", "Refuse")) }
                    label for=(format!("value-{}", c.id)) { (l.t("更正后的值（JSON；文字可不加引号）", "Corrected value (JSON; text may go without quotes)")) }
                    input id=(format!("value-{}", c.id)) type="text" name="value" value=(c.proposed_value.as_ref().map(|v| v.to_string()).unwrap_or_default());
                    label for=(format!("reason-{}", c.id)) { (l.t("说明或不予更正的理由", "Note, or the reasons for refusing")) }
                    input id=(format!("reason-{}", c.id)) type="text" name="reason" required;
                    " " button type="submit" { (l.t("答复", "Answer")) }
                }
            }
        }
    }
}

/// The filing form's query: prefilled from a record on a subscription's page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct FileQuery {
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default)]
    record_id: Option<String>,
}

/// `GET /console/corrections/new`: the agency's filing form.
pub(super) async fn file_form(
    State(console): Shared,
    viewer: Viewer,
    Query(q): Query<FileQuery>,
) -> PageResult {
    let draft = CorrectionForm {
        subscription: q.subscription.unwrap_or_default(),
        record_id: q.record_id.unwrap_or_default(),
        ..CorrectionForm::default()
    };
    file_page(&console, &viewer, &draft, None, StatusCode::OK)
}

/// The filing form, as posted.
#[derive(Debug, Default, Deserialize)]
pub(super) struct CorrectionForm {
    #[serde(default)]
    subscription: String,
    #[serde(default)]
    record_id: String,
    #[serde(default)]
    field: String,
    #[serde(default)]
    problem: String,
    #[serde(default)]
    evidence: String,
    #[serde(default)]
    proposed: String,
}

fn file_page(
    console: &super::Console,
    viewer: &Viewer,
    draft: &CorrectionForm,
    error: Option<&str>,
    status: StatusCode,
) -> PageResult {
    let l = viewer.lang;
    crate::governance::authorize(&viewer.principal, Action::FileCorrection).or_page(l)?;
    let subscriptions = console
        .governance
        .list_subscriptions(&viewer.principal, None, None)
        .or_page(l)?;
    let body = html! {
        @if let Some(e) = error { p.error #correction-error role="alert" { (e) } }
        form.card #correction method="post" action="/console/corrections/new" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            label for="subscription" { (l.t("收到该记录的订阅", "The subscription it was received under")) }
            select #subscription name="subscription" {
                @for s in subscriptions.iter().filter(|s| s.granted.is_some()) {
                    option value=(s.id) selected[s.id == draft.subscription] { (s.id) }
                }
            }
            label for="record_id" { (l.t("记录标识（record_id）", "Record id")) }
            input #record_id type="text" name="record_id" value=(draft.record_id) required;
            label for="field" { (l.t("有误的字段", "The field that is wrong")) }
            input #field type="text" name="field" value=(draft.field) required;
            label for="problem" { (l.t("问题描述", "What is wrong")) }
            input #problem type="text" name="problem" value=(draft.problem) required;
            label for="evidence" { (l.t("依据（核查记录、文书编号等）", "Evidence (a check made, a document number)")) }
            input #evidence type="text" name="evidence" value=(draft.evidence) required;
            label for="proposed" { (l.t("建议值（可选，JSON；文字可不加引号）", "Proposed value (optional; JSON, text may go without quotes)")) }
            input #proposed type="text" name="proposed" value=(draft.proposed);
            p { button type="submit" { (l.t("提交纠错", "File the correction")) } }
        }
    };
    Ok((
        status,
        page::page(viewer, l.t("提出纠错", "File a correction"), body),
    )
        .into_response())
}

/// A value typed into a form: JSON when it reads as JSON, else the text itself; `None` when empty.
fn typed_value(text: &str) -> Option<serde_json::Value> {
    let text = text.trim();
    (!text.is_empty()).then(|| {
        serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
    })
}

/// `POST /console/corrections/new`.
pub(super) async fn file(
    State(console): Shared,
    viewer: Viewer,
    Form(form): Form<CorrectionForm>,
) -> PageResult {
    let l = viewer.lang;
    let new = NewCorrection {
        subscription: form.subscription.clone(),
        record_id: form.record_id.clone(),
        field: form.field.clone(),
        problem: form.problem.clone(),
        evidence: form.evidence.clone(),
        proposed_value: typed_value(&form.proposed),
    };
    match console
        .governance
        .file_correction(&viewer.principal, new)
        .await
    {
        Ok(_) => Ok(Redirect::to("/console/corrections").into_response()),
        Err(e) => {
            let e = PageError::api(l, e);
            file_page(
                &console,
                &viewer,
                &form,
                Some(e.message()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

/// The answer form, as posted.
#[derive(Debug, Deserialize)]
pub(super) struct AnswerForm {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/corrections/{id}/answer`.
pub(super) async fn answer(
    State(console): Shared,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<AnswerForm>,
) -> PageResult {
    let l = viewer.lang;
    let outcome = match form.outcome.as_str() {
        "refused" => CorrectionOutcome::Refused,
        _ => CorrectionOutcome::Corrected,
    };
    let reply = CorrectionReply {
        outcome,
        reason: form.reason,
        value: match outcome {
            CorrectionOutcome::Corrected => typed_value(&form.value),
            CorrectionOutcome::Refused => None,
        },
    };
    console
        .governance
        .answer_correction(&viewer.principal, &id, reply)
        .await
        .or_page(l)?;
    Ok(Redirect::to("/console/corrections").into_response())
}
