//! The admin API: agencies, subscriptions and their lifecycle, delivery DLQ replay and the audit log, over HTTP.
//!
//! # Layout
//!
//! - errors are [`ApiError`] (shared with the pull API). Who the caller is, is decided before any handler
//!   runs — [`crate::access`] puts the [`Principal`] into the request.
//! - the operations themselves — and who may perform each — are [`crate::governance`]'s, shared with the
//!   console; each handler here only reads the request and writes the JSON answer.
//!
//! Who may do what is the role matrix's ([`crate::roles::MATRIX`], `unsilo roles`, docs/compliance.md): the
//! security administrator manages agencies and decides on subscriptions, the system administrator replays dead
//! letters and re-normalises, the audit administrator reads, verifies and exports the evidence; an agency
//! requests subscriptions and sees only its own agency record and its own subscriptions (another agency's
//! subscription answers 404, so ids cannot be probed). Every route is checked against the matrix before its
//! handler runs ([`crate::roles::authorize_route`]) and again in the operation. Secrets never leave: tokens are
//! shown once at creation, token digests never; SQL passwords are redacted from every response. Every request
//! that changes something must send `Content-Type: application/json`
//! ([`crate::api_error::require_json_body`]), which no cross-site form can.
//!
//! | Method and path | Who |
//! |---|---|
//! | `POST /admin/agencies` | security |
//! | `GET /admin/agencies`, `GET /admin/agencies/{id}`, `GET /admin/agencies/{id}/tokens` | any administrator; an agency itself (ids and times, never digests) |
//! | `POST /admin/agencies/{id}/tokens`, `PUT /admin/agencies/{id}/client-certificate` | security |
//! | `POST /admin/agencies/{id}/tokens/{token_id}/revoke` | security; an agency its own |
//! | `POST /admin/subscriptions` | an agency (for itself); security (naming the agency) |
//! | `GET /admin/subscriptions`, `GET /admin/subscriptions/{id}`, `GET /admin/subscriptions/{id}/progress` | any administrator; an agency its own |
//! | `POST /admin/subscriptions/{id}/approve`, `…/reject` | the providing organisation's reviewer (有条件 requests on its entries); security (a second, different one for 双人复核) |
//! | `POST /admin/subscriptions/{id}/extend` | the providing organisation's reviewer; security |
//! | `GET /admin/requests/overdue` | any administrator; an agency or reviewer its own |
//! | `GET /admin/catalogue`, `GET /admin/catalogue/{id}`, `GET /admin/catalogue/export` | everyone signed in but push sources |
//! | `PUT /admin/catalogue/{id}` | security |
//! | `POST /admin/subscriptions/{id}/revoke`, `…/pause`, `…/resume` | security, or the owning agency (which resumes only a pause it made) |
//! | `POST /admin/subscriptions/{id}/fulfilled` | security, or the owning agency |
//! | `POST /admin/subscriptions/{id}/disposal` | the owning agency |
//! | `GET /admin/disposals` | any administrator; an agency its own; a reviewer its organisation's resources' |
//! | `POST /admin/subscriptions/{id}/dlq/replay` | system, or the owning agency |
//! | `POST /admin/connectors/{name}/dlq/replay`, `POST /admin/connectors/{name}/renormalise` | system |
//! | `POST /admin/audit/query` (an ID number in the body), `GET /admin/audit` (no `cert_no`) | audit |
//! | `GET`/`POST /admin/audit/verify`, `GET /admin/audit/keys`, `GET /admin/audit/checkpoints`, `GET /admin/audit/export` | audit |
//! | `POST /admin/reports/person` (the ID number in the body), `GET /admin/reports/person?person_key=` | audit; a push source whose connector has `report = true` |

pub mod bodies;
mod workflow;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use unsilo_policy::model::{AgencyView, Subscription};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_error::{ApiError, JsonOrDefault, JsonRequest, QueryParams};
use crate::audit::{AuditAnswer, Checkpoint};
use crate::auth::Principal;
use crate::control::DeadLetterFilter;
use crate::governance::{
    ApproveRequest, AuditSearch, ClientCertificateBinding, Governance, NewAgency, NewToken,
    PersonReport, PersonSearch, ReasonRequest, RenormaliseRequest, SubscriptionRequest,
};

/// The shared operations, as the handlers reach them.
type Ops = State<Arc<Governance>>;

/// The admin routes and their OpenAPI description, to be merged into the hub's server behind the access
/// layer of [`crate::access`].
pub fn router(governance: Arc<Governance>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_agency, list_agencies))
        .routes(routes!(get_agency))
        .routes(routes!(issue_token, list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(bind_client_certificate))
        .routes(routes!(request_subscription, list_subscriptions))
        .routes(routes!(get_subscription))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(revoke))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(history_progress))
        .routes(routes!(replay_dlq))
        .routes(routes!(query_audit))
        .routes(routes!(query_audit_by_body))
        .routes(routes!(verify_audit, verify_audit_with))
        .routes(routes!(audit_keys))
        .routes(routes!(audit_checkpoints))
        .routes(routes!(export_audit))
        .routes(routes!(person_report, person_report_by_body))
        .routes(routes!(replay_source_dlq))
        .routes(routes!(renormalise))
        .routes(routes!(whoami))
        .merge(workflow::router())
        .with_state(governance)
}

type ApiResult = Result<Response, ApiError>;

/// A typed answer ([`bodies`] or a model type) as JSON with `status`.
fn typed<T: serde::Serialize>(status: StatusCode, body: T) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

/// The note that goes with a secret shown in an answer.
const SHOWN_ONCE: &str = "the token is shown only now; store it";

#[utoipa::path(get, path = "/admin/whoami", tag = "admin",
    responses((status = 200, description = "Who the credentials belong to", body = bodies::WhoAmI), crate::api_error::ApiFailure))]
async fn whoami(who: Principal) -> ApiResult {
    crate::governance::authorize(&who, crate::roles::Action::ViewSelf)?;
    typed(
        StatusCode::OK,
        bodies::WhoAmI {
            principal: who.to_string(),
            role: who.role().map(|r| r.as_str().to_owned()),
        },
    )
}

#[utoipa::path(post, path = "/admin/agencies", tag = "admin",
    request_body = NewAgency,
    responses((status = 201, description = "The agency and its first token (shown once)", body = bodies::AgencyCreated), crate::api_error::ApiFailure))]
async fn create_agency(
    State(ops): Ops,
    who: Principal,
    JsonRequest(new): JsonRequest<NewAgency>,
) -> ApiResult {
    let (agency, token) = ops.create_agency(&who, new).await?;
    let token_id = agency.tokens.first().map(|t| t.id.clone());
    typed(
        StatusCode::CREATED,
        bodies::AgencyCreated {
            agency: agency.view(),
            token,
            token_id,
            note: SHOWN_ONCE.to_owned(),
        },
    )
}

#[utoipa::path(get, path = "/admin/agencies", tag = "admin",
    responses((status = 200, description = "The agencies the caller may see", body = bodies::AgencyList), crate::api_error::ApiFailure))]
async fn list_agencies(State(ops): Ops, who: Principal) -> ApiResult {
    let list: Vec<_> = ops.list_agencies(&who)?.iter().map(|a| a.view()).collect();
    typed(StatusCode::OK, bodies::AgencyList { agencies: list })
}

#[utoipa::path(get, path = "/admin/agencies/{id}", tag = "admin",
    params(("id" = String, Path, description = "Agency id")),
    responses((status = 200, description = "The agency", body = AgencyView), crate::api_error::ApiFailure))]
async fn get_agency(State(ops): Ops, who: Principal, Path(id): Path<String>) -> ApiResult {
    typed(StatusCode::OK, ops.visible_agency(&who, &id)?.view())
}

#[utoipa::path(get, path = "/admin/agencies/{id}/tokens", tag = "admin",
    params(("id" = String, Path, description = "Agency id")),
    responses((status = 200, description = "Its tokens: ids and times, never digests", body = bodies::TokenList), crate::api_error::ApiFailure))]
async fn list_tokens(State(ops): Ops, who: Principal, Path(id): Path<String>) -> ApiResult {
    let now = unsilo_bus::now_ms();
    let agency = ops.visible_agency(&who, &id)?;
    let tokens: Vec<_> = agency.tokens.iter().map(|t| t.view(now)).collect();
    typed(StatusCode::OK, bodies::TokenList { agency: id, tokens })
}

#[utoipa::path(post, path = "/admin/agencies/{id}/tokens", tag = "admin",
    params(("id" = String, Path, description = "Agency id")),
    request_body = NewToken,
    responses((status = 201, description = "A new token (shown once)", body = bodies::TokenIssued), crate::api_error::ApiFailure))]
async fn issue_token(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonOrDefault(new): JsonOrDefault<NewToken>,
) -> ApiResult {
    let expires_at_ms = new.expires_at_ms;
    let (token, token_id) = ops.issue_token(&who, &id, new).await?;
    typed(
        StatusCode::CREATED,
        bodies::TokenIssued {
            agency: id,
            token,
            token_id,
            expires_at_ms,
            note: SHOWN_ONCE.to_owned(),
        },
    )
}

#[utoipa::path(post, path = "/admin/agencies/{id}/tokens/{token_id}/revoke", tag = "admin",
    params(("id" = String, Path, description = "Agency id"), ("token_id" = String, Path, description = "Token id")),
    responses((status = 200, description = "The revoked token", body = bodies::TokenRevoked), crate::api_error::ApiFailure))]
async fn revoke_token(
    State(ops): Ops,
    who: Principal,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult {
    let revoked = ops.revoke_token(&who, &id, &token_id).await?;
    typed(
        StatusCode::OK,
        bodies::TokenRevoked {
            agency: id,
            token: revoked.view(unsilo_bus::now_ms()),
        },
    )
}

#[utoipa::path(put, path = "/admin/agencies/{id}/client-certificate", tag = "admin",
    params(("id" = String, Path, description = "Agency id")),
    request_body = ClientCertificateBinding,
    responses((status = 200, description = "The agency", body = AgencyView), crate::api_error::ApiFailure))]
async fn bind_client_certificate(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(binding): JsonRequest<ClientCertificateBinding>,
) -> ApiResult {
    let agency = ops.bind_client_certificate(&who, &id, binding).await?;
    typed(StatusCode::OK, agency.view())
}

#[utoipa::path(post, path = "/admin/subscriptions", tag = "admin",
    request_body = SubscriptionRequest,
    responses((status = 201, description = "The requested subscription", body = bodies::SubscriptionRequested), crate::api_error::ApiFailure))]
async fn request_subscription(
    State(ops): Ops,
    who: Principal,
    JsonRequest(request): JsonRequest<SubscriptionRequest>,
) -> ApiResult {
    let (subscription, webhook_key) = ops.request(&who, request).await?;
    let note = webhook_key.as_ref().map(|_| {
        "the webhook signing key is shown only now; verify X-Unsilo-Signature with it".to_owned()
    });
    typed(
        StatusCode::CREATED,
        bodies::SubscriptionRequested {
            subscription: subscription.redacted(),
            webhook_signing_key: webhook_key.map(hex::encode),
            note,
        },
    )
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    agency: Option<String>,
}

#[utoipa::path(get, path = "/admin/subscriptions", tag = "admin",
    params(("status" = Option<String>, Query, description = "Only this status"), ("agency" = Option<String>, Query, description = "Only this agency")),
    responses((status = 200, description = "The subscriptions the caller may see", body = bodies::SubscriptionList), crate::api_error::ApiFailure))]
async fn list_subscriptions(
    State(ops): Ops,
    who: Principal,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult {
    let list: Vec<_> = ops
        .list_subscriptions(&who, q.status.as_deref(), q.agency.as_deref())?
        .iter()
        .map(|s| s.redacted())
        .collect();
    typed(
        StatusCode::OK,
        bodies::SubscriptionList {
            subscriptions: list,
        },
    )
}

#[utoipa::path(get, path = "/admin/subscriptions/{id}", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    responses((status = 200, description = "The subscription (secrets redacted)", body = Subscription), crate::api_error::ApiFailure))]
async fn get_subscription(State(ops): Ops, who: Principal, Path(id): Path<String>) -> ApiResult {
    typed(
        StatusCode::OK,
        ops.visible_subscription(&who, &id)?.redacted(),
    )
}

#[utoipa::path(post, path = "/admin/subscriptions/{id}/approve", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    request_body = ApproveRequest,
    responses((status = 200, description = "Approved and active", body = Subscription), (status = 202, description = "One approval recorded: the grant waits for the provider or a second security administrator (双人复核)", body = bodies::ApprovalRecorded), crate::api_error::ApiFailure))]
async fn approve(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonOrDefault(request): JsonOrDefault<ApproveRequest>,
) -> ApiResult {
    let s = ops.approve(&who, &id, request).await?;
    if s.status == unsilo_policy::model::SubscriptionStatus::Requested {
        // 双人复核: one approval recorded, a second operator must confirm.
        return typed(
            StatusCode::ACCEPTED,
            bodies::ApprovalRecorded {
                subscription: s.redacted(),
                note: "the approval is recorded; the grant still waits for the providing organisation's decision (Art. 21) or a second security administrator (双人复核)".to_owned(),
            },
        );
    }
    typed(StatusCode::OK, s.redacted())
}

#[utoipa::path(post, path = "/admin/subscriptions/{id}/reject", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    request_body = ReasonRequest,
    responses((status = 200, description = "Rejected", body = Subscription), crate::api_error::ApiFailure))]
async fn reject(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(request): JsonRequest<ReasonRequest>,
) -> ApiResult {
    let s = ops.reject(&who, &id, request.reason).await?;
    typed(StatusCode::OK, s.redacted())
}

#[utoipa::path(post, path = "/admin/subscriptions/{id}/revoke", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    request_body = ReasonRequest,
    responses((status = 200, description = "Revoked", body = Subscription), crate::api_error::ApiFailure))]
async fn revoke(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(request): JsonRequest<ReasonRequest>,
) -> ApiResult {
    let s = ops.revoke(&who, &id, request.reason).await?;
    typed(StatusCode::OK, s.redacted())
}

#[utoipa::path(post, path = "/admin/subscriptions/{id}/pause", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    request_body = ReasonRequest,
    responses((status = 200, description = "Paused: nothing is released or delivered until it is resumed", body = Subscription), crate::api_error::ApiFailure))]
async fn pause(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(request): JsonRequest<ReasonRequest>,
) -> ApiResult {
    let s = ops.pause(&who, &id, request.reason).await?;
    typed(StatusCode::OK, s.redacted())
}

/// Body of `POST /admin/subscriptions/{id}/resume` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResumeRequest {
    /// A note for the audit log.
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(post, path = "/admin/subscriptions/{id}/resume", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    request_body(content = ResumeRequest, description = "Optional"),
    responses((status = 200, description = "Active again: what arrived while it was paused is released first", body = Subscription), crate::api_error::ApiFailure))]
async fn resume(
    State(ops): Ops,
    who: Principal,
    Path(id): Path<String>,
    JsonOrDefault(request): JsonOrDefault<ResumeRequest>,
) -> ApiResult {
    let s = ops.resume(&who, &id, request.reason).await?;
    typed(StatusCode::OK, s.redacted())
}

#[utoipa::path(get, path = "/admin/subscriptions/{id}/progress", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    responses((status = 200, description = "Where its history stands: `history` is null before the router has placed it", body = bodies::ProgressAnswer), crate::api_error::ApiFailure))]
async fn history_progress(State(ops): Ops, who: Principal, Path(id): Path<String>) -> ApiResult {
    let history = ops.history_progress(&who, &id)?;
    let status = ops.visible_subscription(&who, &id)?.status;
    typed(
        StatusCode::OK,
        bodies::ProgressAnswer {
            subscription: id,
            status,
            history,
        },
    )
}

#[utoipa::path(post, path = "/admin/subscriptions/{id}/dlq/replay", tag = "admin",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    responses((status = 200, description = "How many dead letters were put back", body = bodies::DeadLettersReplayed), crate::api_error::ApiFailure))]
async fn replay_dlq(State(ops): Ops, who: Principal, Path(id): Path<String>) -> ApiResult {
    let replayed = ops.replay_dead_letters(&who, &id).await?;
    typed(
        StatusCode::OK,
        bodies::DeadLettersReplayed {
            subscription: id,
            replayed: replayed as u64,
        },
    )
}

/// The answer when an ID number comes in a URL: it belongs in a POST body.
fn no_id_number_in_urls(cert_no: Option<&String>, post_to: &str) -> Result<(), ApiError> {
    if cert_no.is_some() {
        return Err(ApiError::Invalid(format!(
            "cert_no: an ID number never travels in a URL (proxies and browsers keep URLs); send it in the JSON body of POST {post_to}"
        )));
    }
    Ok(())
}

#[utoipa::path(get, path = "/admin/audit", tag = "admin",
    params(AuditSearch),
    responses((status = 200, description = "Matching audit entries verified by a pinned key, oldest first, and how many were left out unverified; `cert_no` is refused here (POST /admin/audit/query)", body = AuditAnswer), crate::api_error::ApiFailure))]
async fn query_audit(
    State(ops): Ops,
    who: Principal,
    QueryParams(search): QueryParams<AuditSearch>,
) -> ApiResult {
    no_id_number_in_urls(search.cert_no.as_ref(), "/admin/audit/query")?;
    let answer = ops.query_audit(&who, search).await?;
    typed(StatusCode::OK, answer)
}

#[utoipa::path(post, path = "/admin/audit/query", tag = "admin",
    request_body = AuditSearch,
    responses((status = 200, description = "Matching audit entries verified by a pinned key, oldest first, and how many were left out unverified", body = AuditAnswer), crate::api_error::ApiFailure))]
async fn query_audit_by_body(
    State(ops): Ops,
    who: Principal,
    JsonRequest(search): JsonRequest<AuditSearch>,
) -> ApiResult {
    let answer = ops.query_audit(&who, search).await?;
    typed(StatusCode::OK, answer)
}

async fn verify_report(ops: &Governance, who: &Principal, external: &[Checkpoint]) -> ApiResult {
    let report = ops.verify_audit(who, external).await?;
    typed(
        StatusCode::OK,
        bodies::VerifyAnswer {
            intact: report.is_intact(),
            report,
        },
    )
}

#[utoipa::path(get, path = "/admin/audit/verify", tag = "admin",
    responses((status = 200, description = "The verification report", body = bodies::VerifyAnswer), crate::api_error::ApiFailure))]
async fn verify_audit(State(ops): Ops, who: Principal) -> ApiResult {
    verify_report(&ops, &who, &[]).await
}

/// Body of `POST /admin/audit/verify`: checkpoints exported earlier and kept elsewhere.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct VerifyWith {
    /// Checkpoints as `GET /admin/audit/checkpoints` gave them.
    checkpoints: Vec<Checkpoint>,
}

#[utoipa::path(post, path = "/admin/audit/verify", tag = "admin",
    request_body = VerifyWith,
    responses((status = 200, description = "The verification report against exported checkpoints", body = bodies::VerifyAnswer), crate::api_error::ApiFailure))]
async fn verify_audit_with(
    State(ops): Ops,
    who: Principal,
    JsonRequest(with): JsonRequest<VerifyWith>,
) -> ApiResult {
    verify_report(&ops, &who, &with.checkpoints).await
}

#[utoipa::path(get, path = "/admin/audit/keys", tag = "admin",
    responses((status = 200, description = "The hub's audit key and the trusted keys", body = bodies::AuditKeys), crate::api_error::ApiFailure))]
async fn audit_keys(State(ops): Ops, who: Principal) -> ApiResult {
    typed(StatusCode::OK, ops.audit_keys(&who)?)
}

#[utoipa::path(get, path = "/admin/audit/checkpoints", tag = "admin",
    responses((status = 200, description = "The audit checkpoints", body = bodies::CheckpointList), crate::api_error::ApiFailure))]
async fn audit_checkpoints(State(ops): Ops, who: Principal) -> ApiResult {
    let checkpoints = ops.audit_checkpoints(&who).await?;
    typed(StatusCode::OK, bodies::CheckpointList { checkpoints })
}

/// The period of an export.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportPeriod {
    /// Start, inclusive (ms since the epoch).
    from_ms: i64,
    /// End, exclusive (ms since the epoch).
    to_ms: i64,
}

#[utoipa::path(get, path = "/admin/audit/export", tag = "admin",
    params(ExportPeriod),
    responses((status = 200, description = "The audit log of the period as a signed bundle (JSON lines: header, entries, checkpoints, manifest), for `unsilo audit verify-export`", body = String, content_type = "application/x-ndjson"), crate::api_error::ApiFailure))]
async fn export_audit(
    State(ops): Ops,
    who: Principal,
    QueryParams(period): QueryParams<ExportPeriod>,
) -> ApiResult {
    let bundle = ops.export_audit(&who, period.from_ms, period.to_ms).await?;
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        bundle,
    )
        .into_response())
}

#[utoipa::path(get, path = "/admin/reports/person", tag = "admin",
    params(PersonSearch),
    responses((status = 200, description = "By person key (`cert_no` is refused here: POST it). Every verified release of a record about the person: agency, subscription, purpose, legal basis, fields and treatments, time", body = PersonReport), crate::api_error::ApiFailure))]
async fn person_report(
    State(ops): Ops,
    who: Principal,
    QueryParams(search): QueryParams<PersonSearch>,
) -> ApiResult {
    no_id_number_in_urls(search.cert_no.as_ref(), "/admin/reports/person")?;
    let report = ops.person_report(&who, search).await?;
    typed(StatusCode::OK, report)
}

#[utoipa::path(post, path = "/admin/reports/person", tag = "admin",
    request_body = PersonSearch,
    responses((status = 200, description = "Every verified release of a record about the person: agency, subscription, purpose, legal basis, fields and treatments, time", body = PersonReport), crate::api_error::ApiFailure))]
async fn person_report_by_body(
    State(ops): Ops,
    who: Principal,
    JsonRequest(search): JsonRequest<PersonSearch>,
) -> ApiResult {
    let report = ops.person_report(&who, search).await?;
    typed(StatusCode::OK, report)
}

#[utoipa::path(post, path = "/admin/connectors/{name}/dlq/replay", tag = "admin",
    params(("name" = String, Path, description = "The connector, e.g. `grid`")),
    request_body = DeadLetterFilter,
    responses((status = 200, description = "What the replay took, accepted, rejected again and passed over", body = bodies::SourceReplayAnswer), crate::api_error::ApiFailure))]
async fn replay_source_dlq(
    State(ops): Ops,
    who: Principal,
    Path(name): Path<String>,
    JsonOrDefault(filter): JsonOrDefault<DeadLetterFilter>,
) -> ApiResult {
    let outcome = ops.replay_source_dead_letters(&who, &name, filter).await?;
    typed(
        StatusCode::OK,
        bodies::SourceReplayAnswer {
            connector: name,
            replay: outcome,
        },
    )
}

#[utoipa::path(post, path = "/admin/connectors/{name}/renormalise", tag = "admin",
    params(("name" = String, Path, description = "The connector, e.g. `grid`")),
    request_body = RenormaliseRequest,
    responses((status = 200, description = "What was run again from raw. and published to std.", body = bodies::RenormaliseAnswer), crate::api_error::ApiFailure))]
async fn renormalise(
    State(ops): Ops,
    who: Principal,
    Path(name): Path<String>,
    JsonRequest(range): JsonRequest<RenormaliseRequest>,
) -> ApiResult {
    let outcome = ops.renormalise(&who, &name, range).await?;
    typed(
        StatusCode::OK,
        bodies::RenormaliseAnswer {
            connector: name,
            renormalise: outcome,
        },
    )
}
