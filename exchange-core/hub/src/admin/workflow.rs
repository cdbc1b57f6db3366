//! The admin API of the sharing workflow (政务数据共享条例): the resource catalogue — list and search, one
//! entry, edit, export as JSON or `.xlsx` — a request's deadline extension, the overdue requests, and
//! corrections (校核纠错): file, list, read, answer; suspending an agency's sharing (Art. 27); the usage
//! register (使用登记, Art. 29); disposal when a grant ends — purpose fulfilled, the agency's confirmation of
//! destruction, the list of disposals (Art. 27); the supervisor's monthly report (Art. 38), as JSON or `.xlsx`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{bodies, typed, ApiResult, Ops};
use crate::api_error::{ApiError, JsonRequest, QueryParams};
use crate::auth::Principal;
use crate::governance::catalogue_export::{catalogue_workbook, workbook_response};
use crate::governance::{
    CatalogueEdit, CorrectionReply, DisposalConfirmation, ExtensionRequest, Governance,
    NewCorrection, NewUsage, ReasonRequest,
};
use unsilo_policy::correction::Correction;
use unsilo_policy::model::{AgencyView, Subscription};
use unsilo_policy::usage::UsageRecord;

/// The workflow routes (merged into the admin router).
pub(super) fn router() -> OpenApiRouter<std::sync::Arc<Governance>> {
    OpenApiRouter::new()
        .routes(routes!(list_catalogue))
        .routes(routes!(export_catalogue))
        .routes(routes!(get_catalogue_entry, edit_catalogue_entry))
        .routes(routes!(extend_deadline))
        .routes(routes!(overdue_requests))
        .routes(routes!(file_correction, list_corrections))
        .routes(routes!(get_correction))
        .routes(routes!(answer_correction))
        .routes(routes!(suspend_agency))
        .routes(routes!(lift_suspension))
        .routes(routes!(record_usage))
        .routes(routes!(usage_register))
        .routes(routes!(declare_fulfilled))
        .routes(routes!(confirm_disposal))
        .routes(routes!(list_disposals))
        .routes(routes!(monthly_report))
}

/// The catalogue list's query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CatalogueQuery {
    /// Words that must all occur in an entry (its id, title, classification, provider, conditions or a data
    /// item's name or description), case-insensitively.
    #[serde(default)]
    q: Option<String>,
}

#[utoipa::path(get, path = "/admin/catalogue", tag = "catalogue",
    params(CatalogueQuery),
    responses((status = 200, description = "The catalogue's entries (those matching `q`)", body = bodies::CatalogueList), crate::api_error::ApiFailure))]
async fn list_catalogue(
    State(ops): Ops,
    who: Principal,
    QueryParams(q): QueryParams<CatalogueQuery>,
) -> ApiResult {
    let entries = ops.catalogue(&who, q.q.as_deref())?;
    typed(StatusCode::OK, bodies::CatalogueList { entries })
}

/// The export's query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// `json` (default) or `xlsx`.
    #[serde(default)]
    format: Option<String>,
}

#[utoipa::path(get, path = "/admin/catalogue/export", tag = "catalogue",
    params(ExportQuery),
    responses(
        (status = 200, description = "The whole catalogue: JSON, or an .xlsx workbook (资源目录 and 信息项 sheets)", content_type = "application/json", body = bodies::CatalogueExport),
        crate::api_error::ApiFailure))]
async fn export_catalogue(
    State(ops): Ops,
    who: Principal,
    QueryParams(q): QueryParams<ExportQuery>,
) -> ApiResult {
    let entries = ops.catalogue(&who, None)?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => typed(
            StatusCode::OK,
            bodies::CatalogueExport {
                exported_at_ms: unsilo_bus::now_ms(),
                entries,
            },
        ),
        "xlsx" => {
            let bytes = catalogue_workbook(&entries)
                .map_err(|e| ApiError::Internal(format!("writing the catalogue workbook: {e}")))?;
            Ok(workbook_response(bytes, "catalogue.xlsx"))
        }
        other => Err(ApiError::Invalid(format!(
            "format: `{other}` is not json or xlsx"
        ))),
    }
}

#[utoipa::path(get, path = "/admin/catalogue/{id}", tag = "catalogue",
    params(("id" = String, Path, description = "Entry id (the shared schema's name)")),
    responses((status = 200, description = "The entry, its data items, provider and earlier versions", body = crate::governance::CatalogueView), crate::api_error::ApiFailure))]
async fn get_catalogue_entry(State(ops): Ops, who: Principal, Path(id): Path<String>) -> ApiResult {
    typed(StatusCode::OK, ops.catalogue_entry(&who, &id)?)
}

#[utoipa::path(put, path = "/admin/catalogue/{id}", tag = "catalogue",
    params(("id" = String, Path, description = "Entry id (the shared schema's name)")),
    request_body = CatalogueEdit,
    responses((status = 200, description = "The entry's new version", body = crate::governance::CatalogueView), crate::api_error::ApiFailure))]
async fn edit_catalogue_entry(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(edit): JsonRequest<CatalogueEdit>,
) -> ApiResult {
    typed(
        StatusCode::OK,
        ops.edit_catalogue_entry(&who, &id, edit).await?,
    )
}

#[utoipa::path(post, path = "/admin/subscriptions/{id}/extend", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    request_body = ExtensionRequest,
    responses((status = 200, description = "The request with its extended answer deadline", body = Subscription), crate::api_error::ApiFailure))]
async fn extend_deadline(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(extension): JsonRequest<ExtensionRequest>,
) -> ApiResult {
    let s = ops.extend_deadline(&who, &id, extension).await?;
    typed(StatusCode::OK, s.redacted())
}

#[utoipa::path(get, path = "/admin/requests/overdue", tag = "admin",
    responses((status = 200, description = "The requests past their answer or delivery deadline that the caller may see, longest overdue first", body = bodies::OverdueList), crate::api_error::ApiFailure))]
async fn overdue_requests(State(ops): Ops, who: Principal) -> ApiResult {
    let now = unsilo_bus::now_ms();
    let overdue = ops.overdue_requests(&who, now)?;
    typed(
        StatusCode::OK,
        bodies::OverdueList {
            now_ms: now,
            overdue,
        },
    )
}

#[utoipa::path(post, path = "/admin/corrections", tag = "admin",
    request_body = NewCorrection,
    responses((status = 201, description = "The correction, with its answer due time", body = Correction), crate::api_error::ApiFailure))]
async fn file_correction(
    State(ops): Ops,
    who: Principal,
    JsonRequest(new): JsonRequest<NewCorrection>,
) -> ApiResult {
    typed(StatusCode::CREATED, ops.file_correction(&who, new).await?)
}

#[utoipa::path(get, path = "/admin/corrections", tag = "admin",
    responses((status = 200, description = "The corrections the caller may see, newest first", body = bodies::CorrectionList), crate::api_error::ApiFailure))]
async fn list_corrections(State(ops): Ops, who: Principal) -> ApiResult {
    typed(
        StatusCode::OK,
        bodies::CorrectionList {
            corrections: ops.corrections(&who)?,
        },
    )
}

#[utoipa::path(get, path = "/admin/corrections/{id}", tag = "admin",
    params(("id" = String, Path, description = "Correction id")),
    responses((status = 200, description = "The correction", body = Correction), crate::api_error::ApiFailure))]
async fn get_correction(State(ops): Ops, who: Principal, Path(id): Path<String>) -> ApiResult {
    typed(StatusCode::OK, ops.correction(&who, &id)?)
}

#[utoipa::path(post, path = "/admin/corrections/{id}/answer", tag = "admin",
    params(("id" = String, Path, description = "Correction id")),
    request_body = CorrectionReply,
    responses((status = 200, description = "The answered correction (and the corrected record's id)", body = Correction), crate::api_error::ApiFailure))]
async fn answer_correction(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(reply): JsonRequest<CorrectionReply>,
) -> ApiResult {
    typed(
        StatusCode::OK,
        ops.answer_correction(&who, &id, reply).await?,
    )
}

#[utoipa::path(post, path = "/admin/agencies/{id}/suspend", tag = "admin",
    params(("id" = String, Path, description = "Agency id")),
    request_body = ReasonRequest,
    responses((status = 200, description = "Suspended; the subscriptions it paused", body = bodies::SuspensionAnswer), crate::api_error::ApiFailure))]
async fn suspend_agency(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(body): JsonRequest<ReasonRequest>,
) -> ApiResult {
    let paused = ops.suspend_agency(&who, &id, &body.reason).await?;
    typed(
        StatusCode::OK,
        bodies::SuspensionAnswer { agency: id, paused },
    )
}

#[utoipa::path(post, path = "/admin/agencies/{id}/lift-suspension", tag = "admin",
    params(("id" = String, Path, description = "Agency id")),
    request_body = ReasonRequest,
    responses((status = 200, description = "The agency, no longer suspended (its paused subscriptions stay paused until resumed)", body = AgencyView), crate::api_error::ApiFailure))]
async fn lift_suspension(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(body): JsonRequest<ReasonRequest>,
) -> ApiResult {
    typed(
        StatusCode::OK,
        ops.lift_suspension(&who, &id, &body.reason).await?.view(),
    )
}

#[utoipa::path(post, path = "/admin/subscriptions/{id}/usage", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    request_body = NewUsage,
    responses((status = 201, description = "The usage register's new entry", body = UsageRecord), crate::api_error::ApiFailure))]
async fn record_usage(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(new): JsonRequest<NewUsage>,
) -> ApiResult {
    typed(StatusCode::CREATED, ops.record_usage(&who, &id, new).await?)
}

/// The usage register's query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    /// Only this subscription's entries.
    #[serde(default)]
    subscription: Option<String>,
}

#[utoipa::path(get, path = "/admin/usage", tag = "admin",
    params(UsageQuery),
    responses((status = 200, description = "The usage register's entries the caller may read, newest first", body = bodies::UsageList), crate::api_error::ApiFailure))]
async fn usage_register(
    State(ops): Ops,
    who: Principal,
    QueryParams(q): QueryParams<UsageQuery>,
) -> ApiResult {
    let entries = ops.usage_register(&who, q.subscription.as_deref())?;
    typed(StatusCode::OK, bodies::UsageList { entries })
}

#[utoipa::path(post, path = "/admin/subscriptions/{id}/fulfilled", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    request_body = ReasonRequest,
    responses((status = 200, description = "Ended: its purpose is fulfilled; its disposal is due", body = Subscription), crate::api_error::ApiFailure))]
async fn declare_fulfilled(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(body): JsonRequest<ReasonRequest>,
) -> ApiResult {
    let s = ops.declare_fulfilled(&who, &id, body.reason).await?;
    typed(StatusCode::OK, s.redacted())
}

#[utoipa::path(post, path = "/admin/subscriptions/{id}/disposal", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    request_body = DisposalConfirmation,
    responses((status = 200, description = "The subscription with its disposal confirmed (`late` when after the due time)", body = Subscription), crate::api_error::ApiFailure))]
async fn confirm_disposal(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(body): JsonRequest<DisposalConfirmation>,
) -> ApiResult {
    let s = ops.confirm_disposal(&who, &id, body).await?;
    typed(StatusCode::OK, s.redacted())
}

/// The disposals' query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DisposalQuery {
    /// Only those in this state: `pending`, `overdue`, `confirmed` or `confirmed_late`.
    #[serde(default)]
    state: Option<String>,
}

#[utoipa::path(get, path = "/admin/disposals", tag = "admin",
    params(DisposalQuery),
    responses((status = 200, description = "The disposals of ended grants the caller may see, earliest due first", body = bodies::DisposalList), crate::api_error::ApiFailure))]
async fn list_disposals(
    State(ops): Ops,
    who: Principal,
    QueryParams(q): QueryParams<DisposalQuery>,
) -> ApiResult {
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            unsilo_policy::disposal::DisposalState::parse(s).ok_or_else(|| {
                ApiError::Invalid(format!(
                    "state `{s}` is not one of pending, overdue, confirmed, confirmed_late"
                ))
            })?,
        ),
    };
    typed(
        StatusCode::OK,
        bodies::DisposalList {
            disposals: ops.disposals(&who, state)?,
        },
    )
}

/// The monthly report's query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ReportQuery {
    /// The month, `YYYY-MM` (Beijing time); the current month when left out.
    #[serde(default)]
    month: Option<String>,
    /// `json` (default) or `xlsx`.
    #[serde(default)]
    format: Option<String>,
}

#[utoipa::path(get, path = "/admin/reports/monthly", tag = "admin",
    params(ReportQuery),
    responses(
        (status = 200, description = "The supervisor's monthly report (Art. 38): per organisation as provider and requester, per source; JSON or an .xlsx workbook", body = crate::governance::MonthlyReport),
        crate::api_error::ApiFailure))]
async fn monthly_report(
    State(ops): Ops,
    who: Principal,
    QueryParams(q): QueryParams<ReportQuery>,
) -> ApiResult {
    let month = q
        .month
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(crate::governance::current_month);
    let report = ops.monthly_report(&who, month.trim()).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => typed(StatusCode::OK, report),
        "xlsx" => {
            let bytes = crate::governance::report_export::report_workbook(&report)
                .map_err(|e| ApiError::Internal(format!("writing the report workbook: {e}")))?;
            Ok(workbook_response(
                bytes,
                &format!("report-{}.xlsx", report.month),
            ))
        }
        other => Err(ApiError::Invalid(format!(
            "format: `{other}` is not json or xlsx"
        ))),
    }
}
