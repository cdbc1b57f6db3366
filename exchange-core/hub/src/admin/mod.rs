//! The admin API: agencies, subscriptions and their lifecycle, delivery DLQ replay and the audit log, over HTTP.
//!
//! # Layout
//!
//! - errors are [`ApiError`] (shared with the pull API). Who the caller is, is decided before any handler
//!   runs — [`crate::access`] puts the [`Principal`] into the request.
//! - [`lifecycle`]: the operations themselves — create an agency, request, approve (with narrowing), reject,
//!   revoke, expire — each written to `_unsilo.config` and recorded in `_unsilo.audit`.
//! - this file: the routes.
//!
//! Who may do what: operators manage agencies and decide on subscriptions; an agency requests subscriptions and
//! sees only its own agency record and its own subscriptions (another agency's subscription answers 404, so
//! ids cannot be probed). Secrets never leave: tokens are shown once at creation, token digests never; SQL
//! passwords are redacted from every response.
//!
//! | Method and path | Who |
//! |---|---|
//! | `POST /admin/agencies` | operator |
//! | `GET /admin/agencies`, `GET /admin/agencies/{id}` | operator; an agency sees itself |
//! | `GET /admin/agencies/{id}/tokens` | operator; an agency its own (ids and times, never digests) |
//! | `POST /admin/agencies/{id}/tokens` | operator (issues an additional token, optional expiry) |
//! | `POST /admin/agencies/{id}/tokens/{token_id}/revoke` | operator; an agency its own |
//! | `PUT /admin/agencies/{id}/client-certificate` | operator (binds the agency to a TLS client certificate) |
//! | `POST /admin/subscriptions` | agency (for itself); operator (naming the agency) |
//! | `GET /admin/subscriptions`, `GET /admin/subscriptions/{id}` | operator; an agency its own |
//! | `POST /admin/subscriptions/{id}/approve`, `…/reject` | operator (a second, different one for 双人复核) |
//! | `POST /admin/subscriptions/{id}/revoke` | operator, or the owning agency |
//! | `POST /admin/subscriptions/{id}/dlq/replay` | operator, or the owning agency |
//! | `GET /admin/audit`, `GET /admin/audit/verify`, `POST /admin/audit/verify` (with exported checkpoints) | operator |
//! | `GET /admin/audit/keys`, `GET /admin/audit/checkpoints` | operator |

pub mod lifecycle;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::access::Operator;
use crate::api_error::{ApiError, JsonOrDefault, JsonRequest};
use crate::audit::{self, AuditQuery, Checkpoint};
use crate::auth::Principal;
use lifecycle::{
    require_person, Admin, ApproveRequest, ClientCertificateBinding, NewAgency, NewToken,
    ReasonRequest, SubscriptionRequest,
};

/// The admin routes, to be merged into the hub's server behind the access layer of [`crate::access`].
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/admin/agencies", post(create_agency).get(list_agencies))
        .route("/admin/agencies/{id}", get(get_agency))
        .route(
            "/admin/agencies/{id}/tokens",
            post(issue_token).get(list_tokens),
        )
        .route(
            "/admin/agencies/{id}/tokens/{token_id}/revoke",
            post(revoke_token),
        )
        .route(
            "/admin/agencies/{id}/client-certificate",
            put(bind_client_certificate),
        )
        .route(
            "/admin/subscriptions",
            post(request_subscription).get(list_subscriptions),
        )
        .route("/admin/subscriptions/{id}", get(get_subscription))
        .route("/admin/subscriptions/{id}/approve", post(approve))
        .route("/admin/subscriptions/{id}/reject", post(reject))
        .route("/admin/subscriptions/{id}/revoke", post(revoke))
        .route("/admin/subscriptions/{id}/dlq/replay", post(replay_dlq))
        .route("/admin/audit", get(query_audit))
        .route(
            "/admin/audit/verify",
            get(verify_audit).post(verify_audit_with),
        )
        .route("/admin/audit/keys", get(audit_keys))
        .route("/admin/audit/checkpoints", get(audit_checkpoints))
        .route("/admin/whoami", get(whoami))
        .with_state(admin)
}

type ApiResult = Result<Response, ApiError>;

fn ok(status: StatusCode, body: serde_json::Value) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

async fn whoami(who: Principal) -> ApiResult {
    require_person(&who)?;
    ok(StatusCode::OK, json!({ "principal": who.to_string() }))
}

async fn create_agency(
    State(admin): State<Arc<Admin>>,
    Operator(operator): Operator,
    JsonRequest(new): JsonRequest<NewAgency>,
) -> ApiResult {
    let (agency, token) = admin.create_agency(&operator, new).await?;
    ok(
        StatusCode::CREATED,
        json!({ "agency": agency.view(), "token": token, "token_id": agency.tokens.first().map(|t| t.id.clone()), "note": "the token is shown only now; store it" }),
    )
}

async fn list_agencies(State(admin): State<Arc<Admin>>, who: Principal) -> ApiResult {
    require_person(&who)?;
    let state = admin.control().read();
    let list: Vec<_> = state
        .agencies
        .values()
        .filter(|a| who.may_see_agency(&a.id))
        .map(|a| a.view())
        .collect();
    ok(StatusCode::OK, json!({ "agencies": list }))
}

async fn get_agency(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    ok(
        StatusCode::OK,
        json!(admin.visible_agency(&who, &id)?.view()),
    )
}

async fn list_tokens(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    let now = unsilo_bus::now_ms();
    let agency = admin.visible_agency(&who, &id)?;
    let tokens: Vec<_> = agency.tokens.iter().map(|t| t.view(now)).collect();
    ok(StatusCode::OK, json!({ "agency": id, "tokens": tokens }))
}

async fn issue_token(
    State(admin): State<Arc<Admin>>,
    Operator(operator): Operator,
    Path(id): Path<String>,
    JsonOrDefault(new): JsonOrDefault<NewToken>,
) -> ApiResult {
    let expires_at_ms = new.expires_at_ms;
    let (token, token_id) = admin.issue_token(&operator, &id, new).await?;
    ok(
        StatusCode::CREATED,
        json!({ "agency": id, "token": token, "token_id": token_id, "expires_at_ms": expires_at_ms, "note": "the token is shown only now; store it" }),
    )
}

async fn revoke_token(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult {
    require_person(&who)?;
    let revoked = admin.revoke_token(&who, &id, &token_id).await?;
    ok(
        StatusCode::OK,
        json!({ "agency": id, "token": revoked.view(unsilo_bus::now_ms()) }),
    )
}

async fn bind_client_certificate(
    State(admin): State<Arc<Admin>>,
    Operator(operator): Operator,
    Path(id): Path<String>,
    JsonRequest(binding): JsonRequest<ClientCertificateBinding>,
) -> ApiResult {
    let agency = admin
        .bind_client_certificate(&operator, &id, binding)
        .await?;
    ok(StatusCode::OK, json!(agency.view()))
}

async fn request_subscription(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    JsonRequest(request): JsonRequest<SubscriptionRequest>,
) -> ApiResult {
    require_person(&who)?;
    let (subscription, webhook_key) = admin.request(&who, request).await?;
    let mut body = json!({ "subscription": subscription.redacted() });
    if let Some(key) = webhook_key {
        body["webhook_signing_key"] = json!(hex::encode(key));
        body["note"] =
            json!("the webhook signing key is shown only now; verify X-Unsilo-Signature with it");
    }
    ok(StatusCode::CREATED, body)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    agency: Option<String>,
}

async fn list_subscriptions(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    require_person(&who)?;
    let state = admin.control().read();
    let list: Vec<_> = state
        .subscriptions
        .values()
        .filter(|s| who.may_see_agency(&s.agency))
        .filter(|s| q.status.as_deref().is_none_or(|st| st == s.status.as_str()))
        .filter(|s| q.agency.as_deref().is_none_or(|a| a == s.agency))
        .map(|s| s.redacted())
        .collect();
    ok(StatusCode::OK, json!({ "subscriptions": list }))
}

async fn get_subscription(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    let s = admin.visible_subscription(&who, &id)?;
    ok(StatusCode::OK, json!(s.redacted()))
}

async fn approve(
    State(admin): State<Arc<Admin>>,
    Operator(operator): Operator,
    Path(id): Path<String>,
    JsonOrDefault(request): JsonOrDefault<ApproveRequest>,
) -> ApiResult {
    let s = admin.approve(&operator, &id, request).await?;
    if s.status == unsilo_policy::model::SubscriptionStatus::Requested {
        // 双人复核: one approval recorded, a second operator must confirm.
        return ok(
            StatusCode::ACCEPTED,
            json!({ "subscription": s.redacted(), "note": "two different operators must approve this subscription (双人复核); one approval is recorded" }),
        );
    }
    ok(StatusCode::OK, json!(s.redacted()))
}

async fn reject(
    State(admin): State<Arc<Admin>>,
    Operator(operator): Operator,
    Path(id): Path<String>,
    JsonRequest(request): JsonRequest<ReasonRequest>,
) -> ApiResult {
    let s = admin.reject(&operator, &id, request.reason).await?;
    ok(StatusCode::OK, json!(s.redacted()))
}

async fn revoke(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    Path(id): Path<String>,
    JsonRequest(request): JsonRequest<ReasonRequest>,
) -> ApiResult {
    admin.visible_subscription(&who, &id)?;
    let s = admin.revoke(&who, &id, request.reason).await?;
    ok(StatusCode::OK, json!(s.redacted()))
}

async fn replay_dlq(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    let s = admin.visible_subscription(&who, &id)?;
    let replayed = admin
        .delivery()
        .replay_dead_letters(&s)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    admin
        .record_control(
            &who,
            "subscription.dlq_replay",
            &id,
            json!({ "replayed": replayed }),
        )
        .await?;
    ok(
        StatusCode::OK,
        json!({ "subscription": id, "replayed": replayed }),
    )
}

#[derive(Debug, Deserialize)]
struct AuditParams {
    record_id: Option<String>,
    person_key: Option<String>,
    /// An ID number: turned into its person key here, never stored or logged.
    cert_no: Option<String>,
    subscription: Option<String>,
    agency: Option<String>,
    limit: Option<usize>,
}

async fn query_audit(
    State(admin): State<Arc<Admin>>,
    _operator: Operator,
    Query(p): Query<AuditParams>,
) -> ApiResult {
    let person_key = match (&p.person_key, &p.cert_no) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(c)) => Some(admin.person_key_of_cert_no(c)),
        (None, None) => None,
    };
    let q = AuditQuery {
        record_id: p.record_id,
        person_key,
        subscription: p.subscription,
        agency: p.agency,
        limit: p.limit,
    };
    let entries = audit::query(admin.bus().as_ref(), admin.audit().topic(), &q)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    ok(StatusCode::OK, json!({ "entries": entries }))
}

async fn verify_report(admin: &Admin, external: &[Checkpoint]) -> ApiResult {
    let report = audit::verify(
        admin.bus().as_ref(),
        admin.audit().topic(),
        admin.trusted_keys(),
        external,
    )
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    ok(
        StatusCode::OK,
        json!({ "intact": report.is_intact(), "report": report }),
    )
}

async fn verify_audit(State(admin): State<Arc<Admin>>, _operator: Operator) -> ApiResult {
    verify_report(&admin, &[]).await
}

/// Body of `POST /admin/audit/verify`: checkpoints exported earlier and kept elsewhere.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyWith {
    checkpoints: Vec<Checkpoint>,
}

async fn verify_audit_with(
    State(admin): State<Arc<Admin>>,
    _operator: Operator,
    JsonRequest(with): JsonRequest<VerifyWith>,
) -> ApiResult {
    verify_report(&admin, &with.checkpoints).await
}

async fn audit_keys(State(admin): State<Arc<Admin>>, _operator: Operator) -> ApiResult {
    ok(
        StatusCode::OK,
        json!({
            "hub": admin.audit().hub(),
            "public_key": admin.audit().public_key(),
            "algorithm": "Ed25519",
            "trusted": admin.trusted_keys().keys,
        }),
    )
}

async fn audit_checkpoints(State(admin): State<Arc<Admin>>, _operator: Operator) -> ApiResult {
    let checkpoints = audit::checkpoint::read(admin.bus().as_ref(), admin.audit().topic())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    ok(StatusCode::OK, json!({ "checkpoints": checkpoints }))
}
