//! Authentication and the API error of the admin and pull APIs.
//!
//! Every request carries `Authorization: Bearer <token>`. A token is looked up by its SHA-256 digest: operator
//! tokens among the digests in the configuration (`[[admin.operators]]`), agency tokens among the digests kept
//! with each agency on `_unsilo.config`. Tokens are random 32-byte values, so a plain digest (no salt, no slow
//! hash) is the right tool: there is nothing to brute-force. The token itself is never stored or logged.
//!
//! [`ApiError`] is what every admin and pull handler returns: a stable `{"error": code, "message": …}` body with
//! the right status. Internal failures are logged with their cause and shown to the client only as
//! "internal error", so no internals or secrets leak.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::error;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// An operator of the big-data centre, by name.
    Operator(String),
    /// A subscribing agency, by id.
    Agency(String),
}

impl Principal {
    /// The operator's name, or 403.
    pub fn require_operator(&self) -> Result<&str, ApiError> {
        match self {
            Self::Operator(name) => Ok(name),
            Self::Agency(_) => Err(ApiError::Forbidden(
                "this operation is for operators".into(),
            )),
        }
    }

    /// Whether this principal may see the agency `id` and its subscriptions.
    pub fn may_see_agency(&self, id: &str) -> bool {
        match self {
            Self::Operator(_) => true,
            Self::Agency(own) => own == id,
        }
    }
}

/// A new random token, `usk_` + 64 hex characters, and its digest.
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("usk_{}", hex::encode(bytes));
    let digest = token_digest(&token);
    (token, digest)
}

/// The public id of a token: `tok_` and the first 8 hex characters of its digest — nothing of the token itself.
pub fn token_id(digest: &str) -> String {
    format!("tok_{}", digest.get(..8).unwrap_or(digest))
}

/// The hex SHA-256 of a token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Parses a JSON body, naming what is wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Invalid(format!("request body: {e}")))
}

/// An error answered by the admin and pull APIs.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or unknown token (401).
    #[error("a valid bearer token is required")]
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
    /// A peer (the subscriber's database or broker) refused during activation (502).
    #[error("{0}")]
    Upstream(String),
    /// Something failed inside the hub (500); the cause is logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
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
        let mut response =
            (status, Json(json!({ "error": code, "message": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            if let Ok(v) = "Bearer".parse() {
                response
                    .headers_mut()
                    .insert(axum::http::header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_digested() {
        let (a, da) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with("usk_") && a.len() == 68);
        assert_eq!(token_digest(&a), da);
        assert!(!da.contains(&a[4..]));
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer usk_x".parse().unwrap());
        assert_eq!(bearer(&h), Some("usk_x"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
