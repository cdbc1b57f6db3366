//! The supervisor's monthly report in the console (政务数据共享条例 Art. 38): pick a month; per organisation as a
//! provider and as a requester, tables and bar charts of requests answered on time, refusals with reasons,
//! deliveries and corrections; per source its rejection rate and reasons. Downloadable as `.xlsx`, and printable
//! (the print stylesheet leaves the navigation and the form out).

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use maud::{html, Markup};
use serde::Deserialize;

use super::page::{self, time, Lang, OrPage, PageResult};
use super::{Shared, Viewer};
use crate::governance::catalogue_export::workbook_response;
use crate::governance::report_export::report_workbook;
use crate::governance::{current_month, MonthlyReport};

/// The report page's query.
#[derive(Debug, Default, Deserialize)]
pub(super) struct MonthQuery {
    #[serde(default)]
    month: Option<String>,
}

impl MonthQuery {
    fn month(&self) -> String {
        self.month
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map_or_else(current_month, str::to_owned)
    }
}

/// A horizontal bar of `part` out of `whole`, as inline SVG, with the figures beside it.
fn bar(part: u64, whole: u64, class: &str) -> Markup {
    const WIDTH: u64 = 160;
    let filled = (part * WIDTH).checked_div(whole).unwrap_or(0);
    html! {
        svg.bar width=(WIDTH) height="12" role="img" aria-label=(format!("{part}/{whole}")) {
            rect x="0" y="0" width=(WIDTH) height="12" fill="#eee" {}
            rect class=(class) x="0" y="0" width=(filled) height="12" fill=(if class == "bad" { "#c0392b" } else { "#2e7d32" }) {}
        }
        " " (part) "/" (whole)
    }
}

fn organisations(report: &MonthlyReport, l: Lang) -> Markup {
    html! {
        h2 { (l.t("作为提供方", "As providers")) }
        table #as-provider {
            tr { th { (l.t("组织", "Organisation")) } th { (l.t("收到申请", "Requests")) } th { (l.t("按时答复", "Answered on time")) }
                 th { (l.t("拒绝", "Refused")) } th { (l.t("提供记录", "Records delivered")) } th { (l.t("纠错按时答复", "Corrections answered on time")) } }
            @for o in report.organisations.iter().filter(|o| o.as_provider.requests_received + o.as_provider.records_delivered + o.as_provider.corrections_received > 0) {
                @let p = &o.as_provider;
                tr data-organisation=(o.organisation) {
                    td { (o.name) br; code { (o.organisation) } }
                    td.requests-received { (p.requests_received) }
                    td.answered-on-time { (bar(p.answered_on_time, p.requests_received, "ok")) }
                    td.refused { (p.refused)
                        @for r in &p.refusal_reasons { br; span.muted { "· " (r) } } }
                    td.records-delivered { (p.records_delivered) }
                    td.corrections { (bar(p.corrections_answered_on_time, p.corrections_received, "ok")) }
                }
            }
        }
        h2 { (l.t("作为需求方", "As requesters")) }
        table #as-requester {
            tr { th { (l.t("组织", "Organisation")) } th { (l.t("提出申请", "Requests filed")) } th { (l.t("获批", "Approved")) }
                 th { (l.t("被拒", "Refused")) } th { (l.t("待答复", "Waiting")) } th { (l.t("收到记录", "Records received")) } th { (l.t("提出纠错", "Corrections filed")) } }
            @for o in report.organisations.iter().filter(|o| o.as_requester.requests_filed + o.as_requester.records_received + o.as_requester.corrections_filed > 0) {
                @let q = &o.as_requester;
                tr data-organisation=(o.organisation) {
                    td { (o.name) br; code { (o.organisation) } }
                    td.requests-filed { (q.requests_filed) }
                    td.approved { (bar(q.approved, q.requests_filed, "ok")) }
                    td.refused { (q.refused) }
                    td.waiting { (q.waiting) }
                    td.records-received { (q.records_received) }
                    td.corrections-filed { (q.corrections_filed) }
                }
            }
        }
    }
}

fn sources(report: &MonthlyReport, l: Lang) -> Markup {
    html! {
        h2 { (l.t("数据源拒收率", "Sources' rejection rates")) }
        table #sources {
            tr { th { (l.t("数据源", "Source")) } th { (l.t("接收", "Accepted")) } th { (l.t("拒收率", "Rejected")) } th { (l.t("原因", "Reasons")) } }
            @for s in &report.sources {
                tr data-source=(s.source) {
                    td { code { (s.source) } }
                    td.accepted { (s.accepted) }
                    td.rejected { (bar(s.rejected, s.accepted + s.rejected, "bad")) " (" (format!("{:.1}%", s.rejection_rate * 100.0)) ")" }
                    td { @for r in &s.reasons { code { (r.code) } " ×" (r.count) br; } }
                }
            }
        }
    }
}

/// `GET /console/reports/monthly?month=YYYY-MM`: the report, with the month picker, the download and print.
pub(super) async fn show(
    State(console): Shared,
    viewer: Viewer,
    Query(q): Query<MonthQuery>,
) -> PageResult {
    let l = viewer.lang;
    let month = q.month();
    let report = console
        .governance
        .monthly_report(&viewer.principal, &month)
        .await
        .or_page(l)?;
    let body = html! {
        form.card.filters.no-print #month method="get" action="/console/reports/monthly" {
            label for="month-input" { (l.t("月份", "Month")) }
            input #month-input type="month" name="month" value=(report.month);
            button type="submit" { (l.t("查看", "Show")) }
        }
        p.no-print {
            a #download href=(format!("/console/reports/monthly.xlsx?month={}", report.month)) { (l.t("下载 .xlsx", "Download .xlsx")) }
            " · " a href="#" data-print="1" { (l.t("打印", "Print")) }
        }
        p { (l.t("统计期间", "Period")) " " (time(report.from_ms)) " – " (time(report.to_ms - 1)) " · "
            (l.t("生成时间", "Made at")) " " (time(report.generated_at_ms)) }
        @if report.unverified_audit_entries > 0 {
            p.error { (report.unverified_audit_entries) " " (l.t("条审计记录未通过验证，未计入。请运行 unsilo audit verify。", "audit entries did not verify and were left out; run unsilo audit verify.")) }
        }
        (organisations(&report, l))
        (sources(&report, l))
    };
    Ok(page::page(
        &viewer,
        &format!("{} {}", l.t("共享工作月报", "Monthly report"), report.month),
        body,
    )
    .into_response())
}

/// `GET /console/reports/monthly.xlsx?month=YYYY-MM`: the report as a workbook.
pub(super) async fn export(
    State(console): Shared,
    viewer: Viewer,
    Query(q): Query<MonthQuery>,
) -> PageResult {
    let l = viewer.lang;
    let report = console
        .governance
        .monthly_report(&viewer.principal, &q.month())
        .await
        .or_page(l)?;
    let bytes = report_workbook(&report).map_err(|e| {
        page::PageError::new(
            l,
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "{}: {e}",
                l.t("无法生成工作簿", "The workbook could not be written")
            ),
        )
    })?;
    Ok(workbook_response(
        bytes,
        &format!("report-{}.xlsx", report.month),
    ))
}
