//! Subscriptions in the console: the operator's request queue and decisions (approve with narrowing, reject,
//! revoke, replay dead letters), and the agency's portal (its subscriptions, a request form with a field
//! picker and a live filter check, the last records of a pull subscription).
//!
//! Every action is the same [`Governance`](crate::governance::Governance) operation the admin API calls.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::roles::Action;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use unsilo_bus::FetchRequest;
use unsilo_policy::filter::Filter;
use unsilo_policy::model::{
    Agency, Channel, FieldRule, Subscription, SubscriptionSpec, SubscriptionStatus, Treatment,
};
use unsilo_policy::view::ViewPlan;
use unsilo_schemas::{Sensitivity, SharedSchema};

use super::page::{self, badge, time, Lang, OrPage, PageError, PageResult};
use super::{Console, Shared, Viewer};
use crate::governance::{ApproveRequest, SubscriptionRequest};

/// Every treatment, most revealing first.
const TREATMENTS: [Treatment; 5] = [
    Treatment::Clear,
    Treatment::Mask,
    Treatment::Generalise,
    Treatment::Pseudonymise,
    Treatment::Drop,
];

fn treatment_named(name: &str) -> Option<Treatment> {
    TREATMENTS.into_iter().find(|t| t.as_str() == name)
}

fn treatment_label(t: Treatment, l: Lang) -> &'static str {
    match t {
        Treatment::Clear => l.t("明文", "clear"),
        Treatment::Mask => l.t("掩码", "mask"),
        Treatment::Generalise => l.t("泛化", "generalise"),
        Treatment::Pseudonymise => l.t("假名化", "pseudonymise"),
        Treatment::Drop => l.t("不提供", "drop"),
    }
}

/// The treatments a field of `shared` can take (the view builder accepts them).
fn applicable(shared: &SharedSchema, path: &str) -> Vec<Treatment> {
    TREATMENTS
        .into_iter()
        .filter(|t| {
            let rule = FieldRule {
                field: path.to_owned(),
                treatment: *t,
            };
            ViewPlan::build(shared, &[rule], "probe").is_ok()
        })
        .collect()
}

/// The sensitivity and PII kind of a field, as the shared schema tags it.
fn field_tags(shared: &SharedSchema, path: &str) -> (Sensitivity, Option<String>) {
    let pii = shared
        .field_tag(path)
        .and_then(|t| t.pii)
        .map(|p| p.as_str().to_owned());
    (unsilo_policy::check::sensitivity_of(shared, path), pii)
}

/// The requested (and granted) fields of a subscription, with their tags against the agency's clearance.
fn fields_table(s: &Subscription, agency: Option<&Agency>, l: Lang) -> Markup {
    let shared = unsilo_schemas::shared_schema(&s.requested.schema);
    let granted: BTreeMap<&str, Treatment> = s
        .granted
        .iter()
        .flat_map(|g| g.fields.iter().map(|r| (r.field.as_str(), r.treatment)))
        .collect();
    html! {
        table.fields {
            thead { tr {
                th { (l.t("字段", "Field")) }
                th { (l.t("敏感级别", "Sensitivity")) }
                th { (l.t("个人信息类型", "PII kind")) }
                th { (l.t("申请的处理方式", "Requested treatment")) }
                @if s.granted.is_some() { th { (l.t("批准的处理方式", "Granted treatment")) } }
            } }
            tbody {
                @for r in &s.requested.fields {
                    @let (sensitivity, pii) = shared.map(|sh| field_tags(sh, &r.field)).unwrap_or((Sensitivity::S4, None));
                    @let above = agency.is_some_and(|a| sensitivity > a.clearance);
                    tr class=[above.then_some("above")] {
                        td { code { (r.field) } }
                        td { (sensitivity.as_str())
                            @if above { " " span.above-tag { (l.t("高于部门授权级别", "above the agency's clearance")) } } }
                        td { (pii.as_deref().unwrap_or("—")) }
                        td { (treatment_label(r.treatment, l)) }
                        @if s.granted.is_some() {
                            td { (granted.get(r.field.as_str()).map_or("—", |t| treatment_label(*t, l))) }
                        }
                    }
                }
            }
        }
    }
}

fn spec_summary(spec: &SubscriptionSpec, l: Lang) -> Markup {
    html! {
        table.spec {
            tr { th { (l.t("数据模式", "Schema")) } td { code { (spec.schema) } } }
            tr { th { (l.t("过滤条件", "Filter")) } td { code.filter { (spec.filter) } } }
            tr { th { (l.t("用途", "Purpose")) } td { (spec.purpose) } }
            tr { th { (l.t("申请依据", "Basis")) } td { (spec.legal_basis.as_deref().unwrap_or("—")) } }
            tr { th { (l.t("应用场景", "Scenario")) } td { (spec.scenario.as_deref().unwrap_or("—")) } }
            tr { th { (l.t("共享范围", "Scope")) } td { (spec.scope.as_deref().unwrap_or("—")) } }
            tr { th { (l.t("通道", "Channel")) } td.channel-target { code { (spec.channel.target()) } } }
            tr { th { (l.t("到期", "Expires")) } td { (spec.expires_at_ms.map_or("—".to_owned(), time)) } }
            tr { th { (l.t("历史数据起始", "History from")) } td { (spec.backfill_from_ms.map_or("—".to_owned(), time)) } }
            tr { th { (l.t("保存期限（天）", "Keep for (days)")) } td { (spec.retain_days.map_or("—".to_owned(), |d| d.to_string())) } }
        }
    }
}

fn subscriptions_table(list: &[Subscription], l: Lang) -> Markup {
    html! {
        table.subscriptions {
            thead { tr {
                th { (l.t("订阅", "Subscription")) } th { (l.t("状态", "Status")) }
                th { (l.t("数据模式", "Schema")) } th { (l.t("通道", "Channel")) }
                th { (l.t("用途", "Purpose")) } th { (l.t("申请时间", "Requested")) }
            } }
            tbody { @for s in list {
                tr data-id=(s.id) {
                    td { a href=(format!("/console/subscriptions/{}", s.id)) { (s.id) } }
                    td { (badge(s.status.as_str()))
                        @if s.deadlines.as_ref().is_some_and(|d| d.state(unsilo_bus::now_ms()).is_overdue()) {
                            " " span.badge.overdue { (l.t("逾期", "overdue")) } } }
                    td { (s.requested.schema) }
                    td { (s.spec().channel.kind()) }
                    td { (s.requested.purpose) }
                    td { (time(s.requested_at_ms)) }
                }
            } }
        }
    }
}

/// `GET /console/requests`: the subscriptions waiting for a decision.
pub(super) async fn queue(State(console): Shared, viewer: Viewer) -> PageResult {
    crate::governance::authorize(&viewer.principal, crate::roles::Action::DecideRequest)
        .or_page(viewer.lang)?;
    let l = viewer.lang;
    let mut list = console
        .governance
        .list_subscriptions(&viewer.principal, Some("requested"), None)
        .or_page(l)?;
    list.sort_by_key(|s| s.requested_at_ms);
    let body = html! {
        @if list.is_empty() {
            p.muted { (l.t("没有待审批的申请。", "No requests are waiting.")) }
        } @else {
            p.hint { (l.t("点击订阅查看申请的字段与部门授权级别的对照，并批准（可收窄）或拒绝。",
                "Open a request to see each field against the agency's clearance, then approve (narrowing it if needed) or reject it.")) }
            (subscriptions_table(&list, l))
        }
    };
    Ok(page::page(
        &viewer,
        l.t("待审批的订阅申请", "Subscription requests"),
        body,
    )
    .into_response())
}

/// `GET /console/subscriptions`: every subscription the viewer may see.
pub(super) async fn list(State(console): Shared, viewer: Viewer) -> PageResult {
    let l = viewer.lang;
    let mut list = console
        .governance
        .list_subscriptions(&viewer.principal, None, None)
        .or_page(l)?;
    list.sort_by(|a, b| a.id.cmp(&b.id));
    let body = subscriptions_table(&list, l);
    Ok(page::page(&viewer, l.t("订阅", "Subscriptions"), body).into_response())
}

/// The agency's home page: its subscriptions.
pub(super) async fn portal_home(console: &Console, viewer: &Viewer) -> PageResult {
    let l = viewer.lang;
    let mut list = console
        .governance
        .list_subscriptions(&viewer.principal, None, None)
        .or_page(l)?;
    list.sort_by(|a, b| a.id.cmp(&b.id));
    let body = html! {
        @if viewer.may(Action::RequestSubscription) {
            p { a href="/console/subscriptions/new" { (l.t("申请新的订阅 →", "Request a new subscription →")) } }
        }
        @if list.is_empty() {
            p.muted { (l.t("还没有订阅。", "No subscriptions yet.")) }
        } @else {
            (subscriptions_table(&list, l))
        }
    };
    Ok(page::page(viewer, l.t("我的订阅", "My subscriptions"), body).into_response())
}

/// `GET /console/subscriptions/{id}`.
pub(super) async fn show(
    State(console): Shared,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let l = viewer.lang;
    let s = console
        .governance
        .visible_subscription(&viewer.principal, &id)
        .or_page(l)?;
    let agency = console.governance.control().agency(&s.agency);
    let flow = console
        .metrics
        .flows
        .snapshot()
        .subscriptions
        .get(&s.id)
        .cloned()
        .unwrap_or_default();
    let records = match (&s.status, &s.spec().channel) {
        (SubscriptionStatus::Active, Channel::Pull) => {
            Some(last_records(&console, &s, 10, viewer.may(Action::FileCorrection)).await)
        }
        _ => None,
    };
    let body = html! {
        p { (badge(s.status.as_str())) " "
            (l.t("部门", "Agency")) ": " strong { (s.agency) }
            @if let Some(a) = &agency { " (" (a.name) ", " (l.t("授权级别", "clearance")) " " (a.clearance.as_str()) ")" }
        }
        @if let Some(h) = &s.held_at {
            p.notice #held-at { (l.t("数据由级联平台持有，由其数据提供部门审核", "The data is held at a linked hub, whose providing organisation decides")) ": " strong { (h.hub) }
                @if let Some(there) = &h.subscription { " · " (l.t("对方订阅", "there as")) " " code { (there) } } }
        }
        @if let Some(linked) = agency.as_ref().and_then(|a| a.linked.as_ref()) {
            p.notice #linked-agency { (l.t("申请来自级联平台", "Requested from the linked hub")) " " strong { (linked.hub) } " · " (l.t("对方部门", "its agency")) " " code { (linked.agency) } }
        }
        @if let Some(reason) = &s.reason { p { (l.t("原因", "Reason")) ": " (reason) } }
        @if let (Some(by), Some(at)) = (&s.decided_by, s.decided_at_ms) {
            p.muted { (l.t("最近决定", "Last decided")) ": " (by) " · " (time(at)) }
        }
        @if let Some(d) = &s.deadlines { (deadlines_block(d, l)) }
        (super::disposal::section(&s, &viewer))
        @if !s.approvals.is_empty() {
            p.muted { (l.t("已批准", "Approved by")) ": "
                @for a in &s.approvals {
                    (a.operator) @if a.provider.is_some() { " [" (l.t("提供方", "provider")) "]" } " (" (time(a.at_ms)) ") " } }
            @if s.status == SubscriptionStatus::Requested {
                p.notice #four-eyes { (l.t(
                    "已记录批准；该授权仍待提供方决定（第二十一条）或另一位安全管理员确认（双人复核）。",
                    "An approval is recorded; the grant still waits for the providing organisation's decision (Art. 21) or a second security administrator (双人复核)."
                )) }
            }
        }
        h2 { (l.t("申请内容", "What was asked for")) }
        (spec_summary(&s.requested, l))
        (fields_table(&s, agency.as_ref(), l))
        @if let Some(g) = &s.granted { @if g.filter != s.requested.filter {
            p { (l.t("批准的过滤条件", "Granted filter")) ": " code { (g.filter) } } } }
        @if viewer.may(Action::DecideRequest) && s.status == SubscriptionStatus::Requested {
            (approve_form(&s, agency.as_ref(), &viewer))
            (reject_form(&s, &viewer))
            @if viewer.may(Action::ExtendDeadline)
                && s.deadlines.as_ref().is_some_and(|d| d.extension.is_none() && d.answered_at_ms.is_none()) {
                (extend_form(&s, &viewer))
            }
        }
        @if let Some(h) = &flow.history {
            (history_progress(h, l))
        }
        @if s.status == SubscriptionStatus::Paused && viewer.may(Action::PauseSubscription) {
            h2 { (l.t("已暂停", "Paused")) }
            p { (l.t("暂停期间不发布也不投递任何数据；恢复后先补发暂停期间到达的数据，再继续实时发布。",
                "Nothing is released or delivered while paused; on resume it first receives what arrived meanwhile, then continues live.")) }
            form.card method="post" action=(format!("/console/subscriptions/{}/resume", s.id)) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="resume-reason" { (l.t("说明（可选）", "Note (optional)")) }
                input #resume-reason type="text" name="reason";
                " " button type="submit" { (l.t("恢复订阅", "Resume")) }
            }
        }
        @if s.status == SubscriptionStatus::Active {
            h2 { (l.t("投递", "Delivery")) }
            p { (l.t("已发布", "Released")) " " strong.released { (flow.released) } " · "
                (l.t("已送达", "Delivered")) " " strong { (flow.delivered()) } " · "
                (l.t("投递死信", "Dead-lettered")) " " strong { (flow.dead_lettered) } }
            p { a href=(format!("/console/schemas/{}", s.view_subject())) { (l.t("视图模式", "View schema")) } }
            @if viewer.may(Action::ReplayDeliveryDeadLetters) {
            form.inline method="post" action=(format!("/console/subscriptions/{}/replay", s.id)) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                button type="submit" { (l.t("重放投递死信", "Replay delivery dead letters")) }
            }
            }
            @if viewer.may(Action::PauseSubscription) {
            form.card method="post" action=(format!("/console/subscriptions/{}/pause", s.id)) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="pause-reason" { (l.t("暂停原因", "Reason for pausing")) }
                input #pause-reason type="text" name="reason" required;
                " " button type="submit" { (l.t("暂停订阅", "Pause")) }
            }
            form.card method="post" action=(format!("/console/subscriptions/{}/revoke", s.id))
                data-confirm=(l.t("确定撤销该订阅？撤销后不再发布任何数据。", "Revoke this subscription? Nothing more will be released.")) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="revoke-reason" { (l.t("撤销原因", "Reason for revoking")) }
                input #revoke-reason type="text" name="reason" required;
                " " button.danger type="submit" { (l.t("撤销订阅", "Revoke")) }
            }
            }
        }
        @if let Some(records) = records {
            h2 { (l.t("最近送达的记录", "Last records delivered")) }
            (records)
        }
    };
    Ok(page::page(
        &viewer,
        &format!("{} {}", l.t("订阅", "Subscription"), s.id),
        body,
    )
    .into_response())
}

/// A request's deadlines (政务数据共享条例 Art. 21–22): when the answer and the delivery are due, where it
/// stands, the extension, and whether the deadline is provisional.
fn deadlines_block(d: &unsilo_policy::model::Deadlines, l: Lang) -> Markup {
    let state = d.state(unsilo_bus::now_ms());
    html! {
        table.spec #deadlines {
            tr { th { (l.t("答复期限", "Answer due")) } td {
                (time(d.answer_due_ms)) " (" (d.answer_days) " " (l.t("个工作日", "working days")) ")"
                @if let Some(at) = d.answered_at_ms { " · " (l.t("已答复", "answered")) " " (time(at)) }
            } }
            @if let Some(e) = &d.extension {
                tr { th { (l.t("延期", "Extended")) } td {
                    "+" (e.days) " " (l.t("个工作日", "working days")) " · " (e.reason) " · " (e.by) } }
            }
            @if let Some(due) = d.delivery_due_ms {
                tr { th { (l.t("交付期限", "Delivery due")) } td {
                    (time(due))
                    @if let Some(at) = d.delivered_at_ms { " · " (l.t("已交付", "delivering since")) " " (time(at)) }
                } }
            }
            tr { th { (l.t("时限状态", "Deadline state")) } td {
                span class=(if state.is_overdue() { "badge overdue" } else { "badge" }) #deadline-state { (state.as_str()) }
                @if let Some(p) = &d.provisional { " " span.muted { (l.t("（暂定：", "(provisional: ")) (p) ")" } }
            } }
        }
    }
}

/// The form that extends an answer deadline once (Art. 21).
fn extend_form(s: &Subscription, viewer: &Viewer) -> Markup {
    let l = viewer.lang;
    html! {
        form.card #extend method="post" action=(format!("/console/subscriptions/{}/extend", s.id)) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            label for="extend-days" { (l.t("延长答复期限（工作日，1–10，仅一次）", "Extend the answer deadline (working days, 1–10, once)")) }
            input #extend-days type="number" name="days" min="1" max="10" required;
            label for="extend-reason" { (l.t("延期理由", "Why")) }
            input #extend-reason type="text" name="reason" required;
            " " button type="submit" { (l.t("延期", "Extend")) }
        }
    }
}

fn approve_form(s: &Subscription, agency: Option<&Agency>, viewer: &Viewer) -> Markup {
    let l = viewer.lang;
    let shared = unsilo_schemas::shared_schema(&s.requested.schema);
    html! {
        h2 { (l.t("批准", "Approve")) }
        form.card #approve method="post" action=(format!("/console/subscriptions/{}/approve", s.id)) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            p.hint { (l.t(
                "可以取消字段、改用更严格的处理方式、追加过滤条件、提前到期、推迟或不提供历史数据、缩短保存期限。高于部门授权级别的字段需要逐个确认。",
                "You may leave fields out, choose a stricter treatment, add a filter condition or an earlier expiry, start the history later or refuse it, and shorten the retention. Fields above the agency's clearance must be confirmed one by one."
            )) }
            table {
                thead { tr {
                    th { (l.t("批准", "Grant")) } th { (l.t("字段", "Field")) }
                    th { (l.t("处理方式", "Treatment")) } th { (l.t("确认高于授权级别", "Confirm above clearance")) }
                } }
                tbody {
                    @for (i, r) in s.requested.fields.iter().enumerate() {
                        @let options: Vec<Treatment> = shared.map(|sh| applicable(sh, &r.field)).unwrap_or_default()
                            .into_iter().filter(|t| t.disclosure() <= r.treatment.disclosure()).collect();
                        @let sensitivity = shared.map(|sh| unsilo_policy::check::sensitivity_of(sh, &r.field)).unwrap_or(Sensitivity::S4);
                        @let above = agency.is_some_and(|a| sensitivity > a.clearance);
                        tr class=[above.then_some("above")] {
                            td { input type="checkbox" name=(format!("grant.{i}")) checked aria-label=(r.field); }
                            td { code { (r.field) } input type="hidden" name=(format!("field.{i}")) value=(r.field); }
                            td { select name=(format!("treatment.{i}")) data-field=(r.field) {
                                @for t in &options {
                                    option value=(t.as_str()) selected[*t == r.treatment] { (treatment_label(*t, l)) }
                                }
                            } }
                            td { @if above {
                                label.inline { input type="checkbox" name=(format!("above.{i}")); " " (sensitivity.as_str()) }
                            } @else { span.muted { "—" } } }
                        }
                    }
                }
            }
            label for="and_filter" { (l.t("追加过滤条件（与原条件同时满足）", "An additional filter (AND-ed with the requested one)")) }
            textarea #and_filter name="and_filter" placeholder="village_code.startsWith(\"610921\")" {}
            label for="expires" { (l.t("提前到期（可选）", "An earlier expiry (optional)")) }
            input #expires type="date" name="expires";
            label for="legal_basis" { (l.t("法律依据（S4 字段明文时必填）", "Legal basis (required for S4 fields in clear)")) }
            input #legal_basis type="text" name="legal_basis" value=(s.requested.legal_basis.as_deref().unwrap_or(""));
            @if let Some(from) = s.requested.backfill_from_ms {
                label for="backfill_from" { (l.t("历史数据起始（可推迟）", "History from (may start later)")) " — " (l.t("申请", "requested")) " " (time(from)) }
                input #backfill_from type="date" name="backfill_from";
                label.inline { input type="checkbox" name="no_backfill"; " " (l.t("不提供历史数据", "Refuse the history")) }
            }
            label for="retain_days" { (l.t("保存期限（天，可缩短）", "Keep for at most (days; may be shorter)")) }
            input #retain_days type="number" min="1" max="36500" name="retain_days" value=(s.requested.retain_days.map(|d| d.to_string()).unwrap_or_default());
            p { button type="submit" { (l.t("批准", "Approve")) } }
        }
    }
}

fn reject_form(s: &Subscription, viewer: &Viewer) -> Markup {
    let l = viewer.lang;
    html! {
        h2 { (l.t("拒绝", "Reject")) }
        form.card #reject method="post" action=(format!("/console/subscriptions/{}/reject", s.id)) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            label for="reject-reason" { (l.t("拒绝原因（部门可见）", "Reason (the agency sees it)")) }
            input #reject-reason type="text" name="reason" required;
            " " button.danger type="submit" { (l.t("拒绝", "Reject")) }
        }
    }
}

/// A date (`YYYY-MM-DD`) as the end of that day in Beijing time, in ms since the epoch.
pub(super) fn end_of_day_ms(date: &str) -> Option<i64> {
    let day = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
    let beijing = chrono::FixedOffset::east_opt(8 * 3600)?;
    let end = day
        .and_hms_opt(23, 59, 59)?
        .and_local_timezone(beijing)
        .single()?;
    Some(end.timestamp_millis())
}

/// `POST /console/subscriptions/{id}/approve`: the form becomes the admin API's approval.
pub(super) async fn approve(
    State(console): Shared,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let l = viewer.lang;
    let value = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let current = console
        .governance
        .visible_subscription(&viewer.principal, &id)
        .or_page(l)?;
    let mut fields = Vec::new();
    let mut above = Vec::new();
    for i in 0..current.requested.fields.len() {
        let Some(field) = value(&format!("field.{i}")) else {
            continue;
        };
        if value(&format!("grant.{i}")).is_none() {
            continue;
        }
        let name = value(&format!("treatment.{i}")).unwrap_or_default();
        let treatment = treatment_named(name).ok_or_else(|| {
            PageError::new(
                l,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("unknown treatment `{name}`"),
            )
        })?;
        fields.push(FieldRule {
            field: field.to_owned(),
            treatment,
        });
        if value(&format!("above.{i}")).is_some() {
            above.push(field.to_owned());
        }
    }
    if fields.is_empty() {
        return Err(PageError::new(
            l,
            StatusCode::UNPROCESSABLE_ENTITY,
            l.t(
                "至少批准一个字段；否则请拒绝该申请。",
                "Grant at least one field, or reject the request.",
            ),
        ));
    }
    let expires_at_ms = match value("expires").filter(|v| !v.trim().is_empty()) {
        Some(date) => Some(end_of_day_ms(date).ok_or_else(|| {
            PageError::new(
                l,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a date: {date}"),
            )
        })?),
        None => None,
    };
    let non_empty = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let backfill_from_ms = match non_empty(value("backfill_from")) {
        Some(date) => parse_form_time(&date)
            .map_err(|e| PageError::new(l, StatusCode::UNPROCESSABLE_ENTITY, e))?,
        None => None,
    };
    let retain_days = match non_empty(value("retain_days")) {
        Some(days) => Some(days.parse::<u32>().map_err(|_| {
            PageError::new(
                l,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("retain_days: `{days}` is not a whole number of days"),
            )
        })?),
        None => None,
    };
    let request = ApproveRequest {
        fields: Some(fields),
        and_filter: non_empty(value("and_filter")),
        expires_at_ms,
        legal_basis: non_empty(value("legal_basis")),
        approve_above_clearance: above,
        backfill_from_ms,
        no_backfill: value("no_backfill").is_some(),
        retain_days,
    };
    console
        .governance
        .approve(&viewer.principal, &id, request)
        .await
        .or_page(l)?;
    Ok(Redirect::to(&format!("/console/subscriptions/{id}")).into_response())
}

/// The reason field of reject and revoke forms.
#[derive(Deserialize)]
pub(super) struct ReasonForm {
    #[serde(default)]
    reason: String,
}

fn reason_of(form: ReasonForm, l: Lang) -> Result<String, PageError> {
    let reason = form.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(PageError::new(
            l,
            StatusCode::UNPROCESSABLE_ENTITY,
            l.t("请填写原因。", "Give a reason."),
        ));
    }
    Ok(reason)
}

/// `POST /console/subscriptions/{id}/reject`, `…/revoke`, `…/pause` (each with a reason) and `…/resume`.
pub(super) async fn decide(
    State(console): Shared,
    viewer: Viewer,
    Path((id, ending)): Path<(String, String)>,
    Form(form): Form<ReasonForm>,
) -> PageResult {
    let l = viewer.lang;
    let ops = &console.governance;
    if ending == "resume" {
        ops.resume(&viewer.principal, &id, Some(form.reason))
            .await
            .or_page(l)?;
        return Ok(Redirect::to(&format!("/console/subscriptions/{id}")).into_response());
    }
    let reason = reason_of(form, l)?;
    match ending.as_str() {
        "reject" => ops.reject(&viewer.principal, &id, reason).await,
        "revoke" => ops.revoke(&viewer.principal, &id, reason).await,
        "pause" => ops.pause(&viewer.principal, &id, reason).await,
        _ => {
            return Err(PageError::new(
                l,
                StatusCode::NOT_FOUND,
                l.t("没有这个页面。", "There is no such page."),
            ))
        }
    }
    .or_page(l)?;
    Ok(Redirect::to(&format!("/console/subscriptions/{id}")).into_response())
}

/// `POST /console/subscriptions/{id}/replay`.
pub(super) async fn replay(
    State(console): Shared,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let l = viewer.lang;
    let replayed = console
        .governance
        .replay_dead_letters(&viewer.principal, &id)
        .await
        .or_page(l)?;
    let body = html! {
        p { (replayed) " " (l.t("条投递死信已放回订阅主题。", "dead-lettered record(s) were put back on the subscription's topic.")) }
        p { a href=(format!("/console/subscriptions/{id}")) { (l.t("返回订阅", "Back to the subscription")) } }
    };
    Ok(page::page(&viewer, l.t("已重放", "Replayed"), body).into_response())
}

/// Where a subscription's history stands: a backfill, or the catch-up after a pause.
fn history_progress(h: &crate::flows::HistoryProgress, l: Lang) -> Markup {
    let done = h.read;
    let total = h.read + h.remaining;
    html! {
        h2 { (l.t("历史数据", "History")) }
        @if h.live {
            p.history { (l.t("已追平，实时发布中。", "Caught up; released live.")) " "
                (l.t("补发", "Released from history")) " " strong { (h.released) } }
        } @else {
            p.history {
                (match h.reason.as_deref() { Some("pause") => l.t("正在补发暂停期间的数据", "Catching up what arrived while paused"),
                    _ => l.t("正在补发历史数据", "Backfilling history") })
                ": " (l.t("已读", "read")) " " strong { (done) } " / " (total)
                " · " (l.t("已发布", "released")) " " strong { (h.released) }
            }
            progress max=(total.max(1)) value=(done) {}
        }
    }
}

/// The last `n` records of a pull subscription's topic, rendered as the pull API returns them.
/// With `may_correct`, each record links to the correction form (校核纠错).
async fn last_records(console: &Console, s: &Subscription, n: u64, may_correct: bool) -> Markup {
    let topic = s.topic();
    let decoder = unsilo_registry::decode::FrameDecoder::new(console.registry.clone());
    let ends = console.bus.end_offsets(&topic).await.unwrap_or_default();
    let mut records = Vec::new();
    for (partition, end) in ends.iter().enumerate() {
        let from = end.saturating_sub(n);
        let read = FetchRequest::new(&topic, partition as u32, from, n as usize, Duration::ZERO);
        if let Ok(batch) = console.bus.fetch(&read).await {
            records.extend(batch);
        }
    }
    records.sort_by_key(|r| std::cmp::Reverse(r.record.timestamp_ms));
    records.truncate(n as usize);
    html! {
        @if records.is_empty() {
            p.muted { "—" }
        }
        @for r in &records {
            @let rendered = r.record.value.as_deref()
                .and_then(|v| decoder.decode(v, None).ok())
                .and_then(|(_, value)| unsilo_schemas::avro::to_json(&value).ok())
                .map(|j| serde_json::to_string_pretty(&j).unwrap_or_default());
            details.card.record {
                summary { (time(r.record.timestamp_ms)) " · " code { (r.record.record_id()) }
                    @if may_correct { " · " a.file-correction href=(format!("/console/corrections/new?subscription={}&record_id={}", s.id, r.record.record_id())) { "纠错 / correct" } } }
                pre { (rendered.unwrap_or_else(|| "(undecodable)".to_owned())) }
            }
        }
    }
}

/// The request form's query: the schema picked (the form is shown for one schema at a time).
#[derive(Debug, Default, Deserialize)]
pub(super) struct RequestQuery {
    #[serde(default)]
    schema: Option<String>,
    /// The linked hub that holds the data (级联), if not this one.
    #[serde(default)]
    hub: Option<String>,
}

/// `GET /console/subscriptions/new?schema=`: the agency's request form.
pub(super) async fn request_form(
    State(console): Shared,
    viewer: Viewer,
    Query(q): Query<RequestQuery>,
) -> PageResult {
    let form = RequestDraft {
        schema: q.schema.unwrap_or_else(|| "grid_event".to_owned()),
        hub: q.hub.unwrap_or_default(),
        ..RequestDraft::default()
    };
    Ok(request_page(&console, &viewer, &form, None, StatusCode::OK))
}

/// What the request form holds (to show it again with an error).
#[derive(Debug, Default)]
struct RequestDraft {
    schema: String,
    /// The linked hub that holds the data; empty = this hub.
    hub: String,
    name: String,
    filter: String,
    purpose: String,
    legal_basis: String,
    /// 应用场景.
    scenario: String,
    /// 共享范围, in words.
    scope: String,
    /// The time limit: a date (`YYYY-MM-DD`, China time) or an RFC 3339 time.
    expires_at: String,
    agency: String,
    /// A date (`YYYY-MM-DD`, China time) or an RFC 3339 time; empty = no history.
    backfill_from: String,
    /// Whole days; empty = not stated.
    retain_days: String,
    fields: BTreeMap<String, Treatment>,
}

/// Reads a date of the request form (the history start, the time limit): a date (midnight, China time) or an
/// RFC 3339 time.
fn parse_form_time(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        return Ok(Some(midnight.and_utc().timestamp_millis() - 8 * 3_600_000));
    }
    unsilo_policy::model::time_ms::parse(text).map(Some)
}

fn request_page(
    console: &Console,
    viewer: &Viewer,
    draft: &RequestDraft,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let l = viewer.lang;
    let clearance = match &viewer.principal {
        crate::auth::Principal::Agency(id) => {
            console.governance.control().agency(id).map(|a| a.clearance)
        }
        _ => None,
    };
    let shared = unsilo_schemas::shared_schema(&draft.schema);
    // The linked hubs (级联) whose published catalogue has an entry for the schema: the data may be held there.
    let holders: Vec<String> = console
        .links
        .linked_catalogues(&viewer.principal)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.entries.iter().any(|e| e.schema == draft.schema))
        .map(|c| c.hub)
        .collect();
    let body = html! {
        @if let Some(e) = error { p.error #request-error role="alert" { (e) } }
        form.filters method="get" action="/console/subscriptions/new" {
            div { label for="pick-schema" { (l.t("数据模式", "Schema")) }
                select #pick-schema name="schema" {
                    @for sh in unsilo_schemas::shared_schemas() {
                        option value=(sh.name()) selected[sh.name() == draft.schema] { (sh.name()) }
                    }
                } }
            @if !holders.is_empty() {
                div { label for="pick-hub" { (l.t("数据所在平台", "Held at")) }
                    select #pick-hub name="hub" {
                        option value="" selected[draft.hub.is_empty()] { (l.t("本平台", "this hub")) }
                        @for h in &holders {
                            option value=(h) selected[*h == draft.hub] { (h) }
                        }
                    } }
            }
            button type="submit" { (l.t("选择", "Choose")) }
        }
        @match shared {
            None => { p.error { (l.t("没有这个数据模式。", "There is no such schema.")) } }
            Some(sh) => {
                form.card #request method="post" action="/console/subscriptions/new" {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="schema" value=(sh.name());
                    input type="hidden" name="hub" value=(draft.hub);
                    @if !draft.hub.is_empty() {
                        p.hint #held-at { (l.t("数据由下列平台持有，申请将由该平台的数据提供部门审核：", "The data is held at the linked hub below; its providing organisation decides the request: ")) strong { (draft.hub) } }
                    }
                    @if viewer.is_operator() {
                        label for="agency" { (l.t("代哪个部门申请", "On behalf of agency")) }
                        input #agency type="text" name="agency" value=(draft.agency) required;
                    }
                    label for="name" { (l.t("订阅名称（小写字母、数字、-）", "Subscription name (a-z, 0-9, -)")) }
                    input #name type="text" name="name" value=(draft.name) required pattern="[a-z0-9\\-]{1,40}";
                    h2 { (l.t("字段", "Fields")) }
                    p.hint { (l.t("勾选需要的字段并选择处理方式；高于本部门授权级别的字段需运维人员逐个确认。",
                        "Tick the fields you need and choose how each is treated; fields above your clearance need an operator's explicit approval.")) }
                    table.picker {
                        thead { tr { th {} th { (l.t("字段", "Field")) } th { (l.t("说明", "Description")) }
                            th { (l.t("敏感级别", "Sensitivity")) } th { (l.t("个人信息", "PII")) } th { (l.t("处理方式", "Treatment")) } } }
                        tbody {
                            @for tag in sh.field_tags() {
                                @let above = clearance.is_some_and(|c| tag.sensitivity > c);
                                @let options = applicable(sh, &tag.path);
                                @let chosen = draft.fields.get(&tag.path).copied();
                                @if !options.is_empty() {
                                    tr class=[above.then_some("above")] data-path=(tag.path) {
                                        td { input type="checkbox" name="pick" value=(tag.path) checked[chosen.is_some()] aria-label=(tag.path); }
                                        td { code { (tag.path) } }
                                        td.muted { (tag.doc) }
                                        td { (tag.sensitivity.as_str()) @if above { " " span.above-tag { "↑" } } }
                                        td { (tag.pii.map(|p| p.as_str()).unwrap_or("—")) }
                                        td { select name=(format!("treatment:{}", tag.path)) {
                                            @for t in &options {
                                                option value=(t.as_str()) selected[chosen == Some(*t)] { (treatment_label(*t, l)) }
                                            }
                                        } }
                                    }
                                }
                            }
                        }
                    }
                    label for="filter" { (l.t("过滤条件（CEL）", "Filter (CEL)")) }
                    textarea #filter name="filter" data-check="/console/filter-check" data-result="filter-result" { (draft.filter) }
                    div #filter-result aria-live="polite" {}
                    label for="purpose" { (l.t("用途", "Purpose")) }
                    input #purpose type="text" name="purpose" value=(draft.purpose) required;
                    p.hint { (l.t("依据、场景、范围、时限均须填写（《政务数据共享条例》第二十条）。",
                        "Basis, scenario, scope and time limit are all required (政务数据共享条例 Art. 20).")) }
                    label for="legal_basis" { (l.t("申请依据（法律法规或政策文件）", "Basis (law, regulation or policy)")) }
                    input #legal_basis type="text" name="legal_basis" value=(draft.legal_basis);
                    label for="scenario" { (l.t("应用场景", "Scenario (the duty and process the data serves)")) }
                    input #scenario type="text" name="scenario" value=(draft.scenario);
                    label for="scope" { (l.t("共享范围", "Scope (which records, whose)")) }
                    input #scope type="text" name="scope" value=(draft.scope);
                    label for="expires_at" { (l.t("使用时限（截止日期）", "Time limit (last day of use)")) }
                    input #expires_at type="date" name="expires_at" value=(draft.expires_at);
                    label for="backfill_from" { (l.t("历史数据起始日期（可选：批准后先补发此日期以来的数据）", "History from (optional: on approval, first receive the matching records since this date)")) }
                    input #backfill_from type="date" name="backfill_from" value=(draft.backfill_from);
                    label for="retain_days" { (l.t("保存期限（天，可选）", "Keep each record for at most (days, optional)")) }
                    input #retain_days type="number" min="1" max="36500" name="retain_days" value=(draft.retain_days);
                    p.hint { (l.t("数据通过拉取接口（/v1/subscriptions/…）获取。", "Records are fetched with the pull API (/v1/subscriptions/…).")) }
                    p { button type="submit" { (l.t("提交申请", "Submit the request")) } }
                }
            }
        }
    };
    (
        status,
        page::page(viewer, l.t("申请订阅", "Request a subscription"), body),
    )
        .into_response()
}

/// `POST /console/subscriptions/new`: the form becomes the admin API's request.
pub(super) async fn file_request(
    State(console): Shared,
    viewer: Viewer,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let l = viewer.lang;
    let value = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let mut draft = RequestDraft {
        schema: value("schema"),
        hub: value("hub"),
        name: value("name"),
        filter: value("filter"),
        purpose: value("purpose"),
        legal_basis: value("legal_basis"),
        scenario: value("scenario"),
        scope: value("scope"),
        expires_at: value("expires_at"),
        agency: value("agency"),
        backfill_from: value("backfill_from"),
        retain_days: value("retain_days"),
        fields: BTreeMap::new(),
    };
    let invalid = |message: String, draft: &RequestDraft| {
        request_page(
            &console,
            &viewer,
            draft,
            Some(&message),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    let backfill_from_ms = match parse_form_time(&draft.backfill_from) {
        Ok(t) => t,
        Err(e) => {
            return Ok(invalid(
                format!("{}: {e}", l.t("历史数据起始日期", "History from")),
                &draft,
            ))
        }
    };
    // The time limit is the end of the day given (China time), or the RFC 3339 time given.
    let expires_at_ms = match end_of_day_ms(&draft.expires_at) {
        Some(t) => Ok(Some(t)),
        None => parse_form_time(&draft.expires_at),
    };
    let expires_at_ms = match expires_at_ms {
        Ok(t) => t,
        Err(e) => {
            return Ok(invalid(
                format!("{}: {e}", l.t("使用时限", "Time limit")),
                &draft,
            ))
        }
    };
    let retain_days = match draft.retain_days.as_str() {
        "" => None,
        days => match days.parse::<u32>() {
            Ok(d) => Some(d),
            Err(_) => {
                return Ok(invalid(
                    format!(
                        "{}: `{days}`",
                        l.t("保存期限应为天数", "keep for: a whole number of days, not")
                    ),
                    &draft,
                ))
            }
        },
    };
    for (k, path) in form.iter().filter(|(k, _)| k == "pick") {
        let _ = k;
        let name = value(&format!("treatment:{path}"));
        let Some(t) = treatment_named(&name) else {
            let message = format!(
                "{}: `{path}`",
                l.t("请为字段选择处理方式", "choose a treatment for")
            );
            return Ok(request_page(
                &console,
                &viewer,
                &draft,
                Some(&message),
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        };
        draft.fields.insert(path.clone(), t);
    }
    let request = SubscriptionRequest {
        agency: (!draft.agency.is_empty()).then(|| draft.agency.clone()),
        name: draft.name.clone(),
        spec: SubscriptionSpec {
            schema: draft.schema.clone(),
            filter: if draft.filter.is_empty() {
                "true".to_owned()
            } else {
                draft.filter.clone()
            },
            fields: draft
                .fields
                .iter()
                .map(|(field, treatment)| FieldRule {
                    field: field.clone(),
                    treatment: *treatment,
                })
                .collect(),
            purpose: draft.purpose.clone(),
            legal_basis: (!draft.legal_basis.is_empty()).then(|| draft.legal_basis.clone()),
            scenario: (!draft.scenario.is_empty()).then(|| draft.scenario.clone()),
            scope: (!draft.scope.is_empty()).then(|| draft.scope.clone()),
            expires_at_ms,
            backfill_from_ms,
            retain_days,
            channel: Channel::Pull,
        },
    };
    let filed = if draft.hub.is_empty() {
        console
            .governance
            .request(&viewer.principal, request)
            .await
            .map(|(s, _)| s)
    } else {
        crate::link::cascade_routes::request_from(
            &console.links,
            &console.governance,
            &viewer.principal,
            &draft.hub,
            request,
        )
        .await
        .map(|(s, _)| s)
    };
    match filed {
        Ok(s) => Ok(Redirect::to(&format!("/console/subscriptions/{}", s.id)).into_response()),
        Err(e) => {
            let e = PageError::api(l, e);
            Ok(request_page(
                &console,
                &viewer,
                &draft,
                Some(e.message()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
    }
}

/// The live filter check's query.
#[derive(Debug, Deserialize)]
pub(super) struct FilterCheck {
    #[serde(default)]
    schema: String,
    #[serde(default)]
    filter: String,
}

/// `GET /console/filter-check?schema=&filter=`: the hub's CEL checker on a filter being typed, as a fragment.
pub(super) async fn filter_check(viewer: Viewer, Query(q): Query<FilterCheck>) -> Response {
    let l = viewer.lang;
    let Some(shared) = unsilo_schemas::shared_schema(&q.schema) else {
        return html! { span.check-bad { (l.t("没有这个数据模式。", "There is no such schema.")) } }.into_response();
    };
    let source = if q.filter.trim().is_empty() {
        "true"
    } else {
        q.filter.as_str()
    };
    match Filter::compile(source, shared.avro()) {
        Ok(_) => html! { span.check-ok { "✓ " (l.t("过滤条件有效", "The filter is valid")) } }
            .into_response(),
        Err(e) => html! { span.check-bad { "✗ " (e.to_string()) } }.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn treatments_by_name_and_dates_to_end_of_day() {
        for t in TREATMENTS {
            assert_eq!(treatment_named(t.as_str()), Some(t));
        }
        assert_eq!(treatment_named("nope"), None);
        // 2026-12-31 23:59:59 in Beijing is 15:59:59 UTC.
        assert_eq!(end_of_day_ms("2026-12-31"), Some(1_798_732_799_000));
        assert_eq!(end_of_day_ms("31/12/2026"), None);
    }

    #[test]
    fn applicable_treatments_follow_the_view_builder() {
        let resident = unsilo_schemas::shared_schema("resident").expect("resident");
        let name = applicable(resident, "name");
        assert!(
            name.contains(&Treatment::Clear) && name.contains(&Treatment::Mask),
            "{name:?}"
        );
        let village = applicable(resident, "village_code");
        assert!(village.contains(&Treatment::Clear), "{village:?}");
    }
}
