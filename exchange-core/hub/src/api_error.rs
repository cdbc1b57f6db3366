//! The error every JSON API handler (admin, pull) answers with.
//!
//! [`ApiError`] is a stable `{"error": code, "message": …}` body with the right status. Internal failures are
//! logged with their cause and shown to the client only as "internal error", so no internals or secrets leak.
//! (Who the caller is, is decided before any handler runs: see [`crate::auth`] and [`crate::access`].)

use axum::extract::FromRequest;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tracing::error;

/// Parses a JSON body, naming what is wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Invalid(format!("request body: {e}")))
}

/// The body of every error the admin and pull APIs (and the ingest endpoint's refusals by the access layer)
/// answer, as the OpenAPI document describes it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `forbidden`, `not_found`, `invalid`, `conflict`, `upstream`,
    /// `internal`, `rate_limited`, `timeout`.
    pub error: String,
    /// What is wrong, for a person.
    pub message: String,
}

/// Any error of an admin or pull route, as the OpenAPI document describes it: 401 without credentials, 403,
/// 404, 409, 422 naming what is wrong, 429 with `Retry-After`, 503 on timeout.
#[derive(utoipa::IntoResponses)]
#[response(status = "default")]
pub struct ApiFailure(#[to_schema] pub ErrorBody);

/// An error answered by the admin and pull APIs.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or unknown credentials (401).
    #[error("valid credentials are required")]
    Unauthorized,
    /// Authenticated, but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// Not found — or not visible to the caller (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The request is wrong; the message says how (422).
    #[error("{0}")]
    Invalid(String),
    /// The state does not allow it (409).
    #[error("{0}")]
    Conflict(String),
    /// The caller holds as much of something as it may (429), e.g. event streams.
    #[error("{0}")]
    TooMany(String),
    /// A peer (the subscriber's database or broker) refused during activation (502).
    #[error("{0}")]
    Upstream(String),
    /// Something failed inside the hub (500); the cause is logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status it is answered with (the admin API and the console alike).
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Internal(cause) => {
                error!(cause = %cause, "Admin API request failed.");
                "internal error; the hub's log has the cause".to_owned()
            }
            other => other.to_string(),
        };
        crate::access::Surface::Admin.error(status, code, &message)
    }
}

/// A request's query string, read into `T`; one that does not fit answers 422 in JSON naming what is wrong
/// (axum's own `Query` answers plain text).
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| Self(q))
            .map_err(|e| {
                ApiError::Invalid(format!("query string: {}", e.body_text())).into_response()
            })
    }
}

/// A JSON request body, required: an empty or malformed body answers 422 naming what is wrong; a body
/// over the limit keeps axum's 413.
pub struct JsonRequest<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonRequest<T> {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        match read_json(request, state).await? {
            Some(value) => Ok(Self(value)),
            None => Err(
                ApiError::Invalid("request body: a JSON body is required".into()).into_response(),
            ),
        }
    }
}

/// A JSON request body, or `T::default()` when the body is empty; otherwise as [`JsonRequest`].
#[derive(Debug)]
pub struct JsonOrDefault<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for JsonOrDefault<T> {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        Ok(Self(read_json(request, state).await?.unwrap_or_default()))
    }
}

/// Middleware of the admin API: a request that can change something (any method but GET, HEAD and OPTIONS)
/// must say its body is JSON (`Content-Type: application/json`), or it is answered 415 before any handler runs.
/// A browser sends no such request across sites without asking the hub first (CORS), so a cross-site form
/// cannot make an operator's browser approve, revoke or pause anything.
pub async fn require_json_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let json = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
    if json {
        return next.run(request).await;
    }
    crate::access::Surface::Admin.error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid",
        "a request that changes something takes a JSON body (Content-Type: application/json); send {} when there is nothing more to say",
    )
}

/// A request's body parsed as JSON; `None` when it is empty.
async fn read_json<T: DeserializeOwned, S: Send + Sync>(
    request: axum::extract::Request,
    state: &S,
) -> Result<Option<T>, Response> {
    let body = axum::body::Bytes::from_request(request, state)
        .await
        .map_err(IntoResponse::into_response)?;
    if body.is_empty() {
        return Ok(None);
    }
    parse_json(&body)
        .map(Some)
        .map_err(IntoResponse::into_response)
}
