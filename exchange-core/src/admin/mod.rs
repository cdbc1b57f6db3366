//! The admin API: agencies, subscriptions and their lifecycle, delivery DLQ replay and the audit log, over HTTP.
//!
//! # Layout
//!
//! - [`auth`]: bearer tokens → [`auth::Principal`] (an operator or an agency) and the error type every admin and
//!   pull route answers with.
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
//! | `POST /admin/agencies/{id}/tokens` | operator (issues an additional token) |
//! | `POST /admin/subscriptions` | agency (for itself); operator (naming the agency) |
//! | `GET /admin/subscriptions`, `GET /admin/subscriptions/{id}` | operator; an agency its own |
//! | `POST /admin/subscriptions/{id}/approve`, `…/reject` | operator |
//! | `POST /admin/subscriptions/{id}/revoke` | operator, or the owning agency |
//! | `POST /admin/subscriptions/{id}/dlq/replay` | operator, or the owning agency |
//! | `GET /admin/audit`, `GET /admin/audit/verify` | operator |

pub mod auth;
pub mod lifecycle;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, AuditQuery};
use auth::{ApiError, Principal};
use lifecycle::{Admin, ApproveRequest, NewAgency, ReasonRequest, SubscriptionRequest};

/// The admin routes, to be merged into the hub's server.
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/admin/agencies", post(create_agency).get(list_agencies))
        .route("/admin/agencies/{id}", get(get_agency))
        .route("/admin/agencies/{id}/tokens", post(issue_token))
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
        .route("/admin/audit/verify", get(verify_audit))
        .route("/admin/whoami", get(whoami))
        .with_state(admin)
}

type ApiResult = Result<Response, ApiError>;

fn ok(status: StatusCode, body: serde_json::Value) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

async fn whoami(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    ok(StatusCode::OK, json!({ "principal": who.to_string() }))
}

async fn create_agency(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    let operator = who.require_operator()?;
    let new: NewAgency = auth::parse_json(&body)?;
    let (agency, token) = admin.create_agency(operator, new).await?;
    ok(
        StatusCode::CREATED,
        json!({ "agency": agency.view(), "token": token, "note": "the token is shown only now; store it" }),
    )
}

async fn list_agencies(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> ApiResult {
    let who = admin.authenticate(&headers)?;
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
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    match admin.control().agency(&id) {
        Some(a) if who.may_see_agency(&a.id) => ok(StatusCode::OK, json!(a.view())),
        _ => Err(ApiError::NotFound(format!("agency `{id}`"))),
    }
}

async fn issue_token(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    let operator = who.require_operator()?;
    let token = admin.issue_token(operator, &id).await?;
    ok(
        StatusCode::CREATED,
        json!({ "agency": id, "token": token, "note": "the token is shown only now; store it" }),
    )
}

async fn request_subscription(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    let request: SubscriptionRequest = auth::parse_json(&body)?;
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
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let who = admin.authenticate(&headers)?;
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
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    let s = admin.visible_subscription(&who, &id)?;
    ok(StatusCode::OK, json!(s.redacted()))
}

async fn approve(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    let operator = who.require_operator()?;
    let request: ApproveRequest = if body.is_empty() {
        ApproveRequest::default()
    } else {
        auth::parse_json(&body)?
    };
    let s = admin.approve(operator, &id, request).await?;
    ok(StatusCode::OK, json!(s.redacted()))
}

async fn reject(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    let operator = who.require_operator()?;
    let request: ReasonRequest = auth::parse_json(&body)?;
    let s = admin.reject(operator, &id, request.reason).await?;
    ok(StatusCode::OK, json!(s.redacted()))
}

async fn revoke(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    admin.visible_subscription(&who, &id)?;
    let request: ReasonRequest = auth::parse_json(&body)?;
    let s = admin.revoke(&who, &id, request.reason).await?;
    ok(StatusCode::OK, json!(s.redacted()))
}

async fn replay_dlq(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    let s = admin.visible_subscription(&who, &id)?;
    let replayed = crate::delivery::replay_dlq(admin.bus().as_ref(), &s)
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
    headers: HeaderMap,
    Query(p): Query<AuditParams>,
) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    who.require_operator()?;
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

async fn verify_audit(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> ApiResult {
    let who = admin.authenticate(&headers)?;
    who.require_operator()?;
    let report = audit::verify(admin.bus().as_ref(), admin.audit().topic())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    ok(
        StatusCode::OK,
        json!({ "intact": report.is_intact(), "report": report }),
    )
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Operator(name) => write!(f, "operator:{name}"),
            Principal::Agency(id) => write!(f, "agency:{id}"),
        }
    }
}
