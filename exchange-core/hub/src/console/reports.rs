//! A person's release report in the console (PIPL Art. 44–45): every release of a record about one person —
//! agency, subscription, purpose, legal basis, fields and treatments, time — printable for the person. The ID
//! number is sent by POST (never in a URL or a browser's history) and turned into its person key; the hub
//! stores neither.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::page::{self, time, Lang, OrPage, PageResult};
use super::{Shared, Viewer};
use crate::governance::{PersonReport, PersonSearch};

fn form(viewer: &Viewer) -> Markup {
    let l = viewer.lang;
    html! {
        form.card.filters.no-print #person-report method="post" action="/console/reports/person" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            div { label for="cert_no" { (l.t("身份证号", "ID number")) }
                input #cert_no type="text" name="cert_no" autocomplete="off" maxlength="18" required; }
            button type="submit" { (l.t("生成报告", "Make the report")) }
        }
        p.hint.no-print { (l.t(
            "身份证号只用于换算假名键，不会被保存或记录。报告可直接打印交给本人。",
            "The ID number is only turned into its pseudonymous key; it is never stored or logged. The report prints for the person."
        )) }
    }
}

fn report_table(report: &PersonReport, l: Lang) -> Markup {
    html! {
        p { (l.t("生成时间", "Made at")) " " (time(report.generated_at_ms)) " · "
            (l.t("假名键", "Person key")) " " code { (report.person_key) } }
        @if report.releases.is_empty() {
            p #no-releases { (l.t("没有向任何部门提供过与此人有关的数据。", "No data about this person has been released to any agency.")) }
        } @else {
            p { (report.releases.len()) " " (l.t("次提供（最早在前）", "releases, oldest first")) }
            table #releases {
                thead { tr {
                    th { (l.t("时间", "Time")) } th { (l.t("接收部门", "Agency")) } th { (l.t("订阅", "Subscription")) }
                    th { (l.t("用途", "Purpose")) } th { (l.t("法律依据", "Legal basis")) } th { (l.t("字段与处理方式", "Fields and treatments")) }
                } }
                tbody { @for r in &report.releases { tr {
                    td { (time(r.time_ms)) }
                    td { (r.agency_name.as_deref().unwrap_or(&r.agency)) br; span.muted { (r.agency) } }
                    td { code { (r.subscription) } br; span.muted { (r.schema) " · " (r.channel) } }
                    td { (r.purpose) }
                    td { (r.legal_basis.as_deref().unwrap_or("—")) }
                    td { @for f in &r.fields { code { (f.field) } " " (f.treatment.as_str()) br; } }
                } } }
            }
        }
    }
}

/// `GET /console/reports/person`: the form.
pub(super) async fn form_page(viewer: Viewer) -> PageResult {
    page::operator_page(&viewer, crate::roles::Action::PersonReport)?;
    let l = viewer.lang;
    Ok(page::page(
        &viewer,
        l.t("个人数据提供报告", "Person's release report"),
        form(&viewer),
    )
    .into_response())
}

/// The report form.
#[derive(Deserialize)]
pub(super) struct ReportForm {
    #[serde(default)]
    cert_no: String,
}

/// `POST /console/reports/person`: the report, printable.
pub(super) async fn report(
    State(console): Shared,
    viewer: Viewer,
    Form(f): Form<ReportForm>,
) -> PageResult {
    let l = viewer.lang;
    let search = PersonSearch {
        cert_no: Some(f.cert_no),
        person_key: None,
    };
    let report = console
        .governance
        .person_report(&viewer.principal, search)
        .await
        .or_page(l)?;
    let body = html! { (form(&viewer)) (report_table(&report, l)) };
    Ok(page::page(
        &viewer,
        l.t("个人数据提供报告", "Person's release report"),
        body,
    )
    .into_response())
}
