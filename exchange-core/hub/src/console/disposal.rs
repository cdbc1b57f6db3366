//! The console's part of disposal (政务数据共享条例 Art. 27): on a subscription's page, ending a grant whose
//! purpose is fulfilled, and — once the grant has ended — when destruction is due, the agency's confirmation form,
//! or the confirmation given (flagged when late); `/console/disposals` lists every disposal the viewer may see.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use unsilo_policy::disposal::{Disposal, DisposalState, GrantEnd};
use unsilo_policy::model::{Subscription, SubscriptionStatus};

use super::page::{self, badge, time, Lang, OrPage, PageError, PageResult};
use super::{Shared, Viewer};
use crate::governance::DisposalConfirmation;
use crate::roles::Action;

fn ended_label(e: GrantEnd, l: Lang) -> &'static str {
    match e {
        GrantEnd::Expired => l.t("到期", "expired"),
        GrantEnd::Revoked => l.t("撤销", "revoked"),
        GrantEnd::PurposeFulfilled => l.t("目的已实现", "purpose fulfilled"),
    }
}

fn state_badge(state: DisposalState, l: Lang) -> Markup {
    let (text, class) = match state {
        DisposalState::Pending => (l.t("待确认销毁", "destruction due"), "badge wait"),
        DisposalState::Overdue => (l.t("销毁确认逾期", "confirmation overdue"), "badge overdue"),
        DisposalState::Confirmed => (l.t("已确认销毁", "destruction confirmed"), "badge ok"),
        DisposalState::ConfirmedLate => (l.t("逾期确认销毁", "confirmed late"), "badge overdue"),
    };
    html! { span class=(class) .disposal-state data-state=(state.as_str()) { (text) } }
}

fn disposal_table(d: &Disposal, l: Lang) -> Markup {
    let state = d.state(unsilo_bus::now_ms());
    html! {
        table.spec #disposal {
            tr { th { (l.t("授权结束", "Grant ended")) } td { (ended_label(d.ended_because, l)) " · " (time(d.ended_at_ms)) } }
            tr { th { (l.t("销毁确认期限", "Confirmation due")) } td { (time(d.due_ms))
                @if d.provisional.is_some() { " " span.badge { (l.t("暂定", "provisional")) } } } }
            tr { th { (l.t("状态", "State")) } td { (state_badge(state, l)) } }
            @if let Some(c) = &d.confirmation {
                tr { th { (l.t("确认", "Confirmed")) } td { (c.by) " · " (time(c.at_ms)) } }
                tr { th { (l.t("销毁方式", "Method")) } td { (c.method) } }
                tr { th { (l.t("销毁范围", "Scope")) } td { (c.scope) } }
            }
        }
    }
}

/// The disposal part of a subscription's page: the form ending a live grant whose purpose is fulfilled (the
/// owning agency or security), and for an ended grant its disposal with the agency's confirmation form.
pub(super) fn section(s: &Subscription, viewer: &Viewer) -> Markup {
    let l = viewer.lang;
    let live = matches!(
        s.status,
        SubscriptionStatus::Active | SubscriptionStatus::Paused
    );
    html! {
        @if live && viewer.may(Action::DeclareFulfilled) {
            form.card #fulfilled method="post" action=(format!("/console/subscriptions/{}/fulfilled", s.id))
                data-confirm=(l.t("确认使用目的已经实现？授权随即结束，须在期限内销毁并确认。", "Is the purpose fulfilled? The grant ends now, and destruction must be confirmed in time.")) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="fulfilled-reason" { (l.t("目的已实现：说明", "Purpose fulfilled: how")) }
                input #fulfilled-reason type="text" name="reason" required;
                " " button type="submit" { (l.t("结束授权", "End the grant")) }
            }
        }
        @if let Some(d) = &s.disposal {
            h2 { (l.t("数据销毁（第二十七条）", "Disposal (Art. 27)")) }
            (disposal_table(d, l))
            @if d.confirmation.is_none() && viewer.may(Action::ConfirmDisposal) {
                form.card #confirm-disposal method="post" action=(format!("/console/subscriptions/{}/disposal", s.id)) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label for="disposal-method" { (l.t("销毁方式", "How it was destroyed")) }
                    input #disposal-method type="text" name="method" required;
                    label for="disposal-scope" { (l.t("销毁范围（系统、表、文件、副本）", "What was destroyed (systems, tables, files, copies)")) }
                    input #disposal-scope type="text" name="scope" required;
                    " " button type="submit" { (l.t("确认已销毁", "Confirm destruction")) }
                }
            }
        }
    }
}

/// The purpose-fulfilled form.
#[derive(Debug, Deserialize)]
pub(super) struct FulfilledForm {
    #[serde(default)]
    reason: String,
}

/// `POST /console/subscriptions/{id}/fulfilled`: ends the grant, its purpose fulfilled.
pub(super) async fn fulfilled(
    State(console): Shared,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<FulfilledForm>,
) -> PageResult {
    console
        .governance
        .declare_fulfilled(&viewer.principal, &id, form.reason)
        .await
        .or_page(viewer.lang)?;
    Ok(Redirect::to(&format!("/console/subscriptions/{id}")).into_response())
}

/// The confirmation form.
#[derive(Debug, Deserialize)]
pub(super) struct ConfirmForm {
    #[serde(default)]
    method: String,
    #[serde(default)]
    scope: String,
}

/// `POST /console/subscriptions/{id}/disposal`: the agency confirms destruction.
pub(super) async fn confirm(
    State(console): Shared,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> PageResult {
    console
        .governance
        .confirm_disposal(
            &viewer.principal,
            &id,
            DisposalConfirmation {
                method: form.method,
                scope: form.scope,
            },
        )
        .await
        .or_page(viewer.lang)?;
    Ok(Redirect::to(&format!("/console/subscriptions/{id}")).into_response())
}

/// The disposals page's query.
#[derive(Debug, Default, Deserialize)]
pub(super) struct DisposalsQuery {
    #[serde(default)]
    state: Option<String>,
}

/// `GET /console/disposals?state=`: the disposals of ended grants the viewer may see, earliest due first.
pub(super) async fn list(
    State(console): Shared,
    viewer: Viewer,
    Query(q): Query<DisposalsQuery>,
) -> PageResult {
    let l = viewer.lang;
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(DisposalState::parse(s).ok_or_else(|| {
            PageError::new(
                l,
                axum::http::StatusCode::BAD_REQUEST,
                l.t("未知的状态。", "Unknown state."),
            )
        })?),
    };
    let list = console
        .governance
        .disposals(&viewer.principal, state)
        .or_page(l)?;
    let body = html! {
        p.muted { (l.t(
            "授权结束（到期、撤销、目的已实现）后，需求部门须在 10 个工作日内销毁所获数据并确认；逾期确认将被标记。平台按 retain_until 自动删除其写入部门数据库表中的到期记录。",
            "When a grant ends (expiry, revocation, purpose fulfilled) the agency destroys what it received and confirms it within 10 working days; a late confirmation is flagged. The hub itself removes the rows past retain_until it wrote into agencies' SQL tables."
        )) }
        p { @for (s, zh, en) in [("", "全部", "all"), ("pending", "待确认", "pending"), ("overdue", "逾期未确认", "overdue"), ("confirmed_late", "逾期确认", "confirmed late")] {
            a href=(format!("/console/disposals?state={s}")) { (l.t(zh, en)) } " "
        } }
        @if list.is_empty() {
            p.muted #no-disposals { (l.t("没有需要销毁确认的授权。", "No disposals.")) }
        } @else {
            table #disposals {
                tr { th { (l.t("订阅", "Subscription")) } th { (l.t("数据", "Schema")) } th { (l.t("结束", "Ended")) } th { (l.t("期限", "Due")) } th { (l.t("状态", "State")) } }
                @for d in &list {
                    tr data-subscription=(d.subscription) {
                        td { a href=(format!("/console/subscriptions/{}", d.subscription)) { (d.subscription) } }
                        td { (d.schema) }
                        td { (ended_label(d.disposal.ended_because, l)) " " (time(d.disposal.ended_at_ms)) }
                        td { (time(d.disposal.due_ms)) }
                        td { (state_badge(d.state, l)) " " (badge(if d.disposal.confirmation.is_some() { "closed" } else { "open" })) }
                    }
                }
            }
        }
    };
    Ok(page::page(&viewer, l.t("数据销毁", "Disposals"), body).into_response())
}
