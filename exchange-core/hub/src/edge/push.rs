//! The edge's local push endpoint: department systems that push (rather than being polled) send their records
//! to `POST /ingest/{connector}` on the edge, inside their own network, with the connector's token — the same
//! body forms as the hub's endpoint (a JSON array, one object, or JSON lines). What they send goes into the
//! edge's buffer and on to the hub like any other source's; the answer comes once it is durable at the edge.
//!
//! Default deny: `GET /healthz` answers anyone; every push needs the connector's token (its SHA-256 is in
//! `edge.toml`), and a connector whose definition the hub has not pushed yet takes nothing. A full buffer
//! answers 503 with `Retry-After`, so the sender keeps the records and tries again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::buffer::BufferSink;
use crate::ingest::http_push::{submit_body, SubmitError, Submitted};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

/// Most records in one push.
pub const MAX_RECORDS_PER_PUSH: usize = 10_000;
/// Largest push body.
pub const MAX_PUSH_BYTES: usize = 32 * 1024 * 1024;

/// One connector's endpoint: the SHA-256 of its token and the sink its pushes go to.
type Endpoint = ([u8; 32], Arc<BufferSink>);

/// The push connectors the edge runs now, by name.
#[derive(Default)]
pub struct PushEndpoints {
    endpoints: RwLock<HashMap<String, Endpoint>>,
}

impl std::fmt::Debug for PushEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushEndpoints").finish_non_exhaustive()
    }
}

impl PushEndpoints {
    /// Opens `connector` for pushes with the token whose SHA-256 is `digest`.
    pub fn open(&self, connector: &str, digest: [u8; 32], sink: Arc<BufferSink>) {
        if let Ok(mut e) = self.endpoints.write() {
            e.insert(connector.to_owned(), (digest, sink));
        }
    }

    /// Whether `connector` takes pushes now.
    pub fn is_open(&self, connector: &str) -> bool {
        self.endpoints
            .read()
            .is_ok_and(|e| e.contains_key(connector))
    }

    fn get(&self, connector: &str) -> Option<Endpoint> {
        self.endpoints.read().ok()?.get(connector).cloned()
    }
}

fn answer(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response()
}

/// The edge's local routes.
pub fn router(endpoints: Arc<PushEndpoints>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/ingest/{connector}", post(ingest))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_PUSH_BYTES))
        .with_state(endpoints)
}

async fn ingest(
    State(endpoints): State<Arc<PushEndpoints>>,
    Path(connector): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return answer(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a push needs the connector's token: Authorization: Bearer <token>".into(),
        );
    };
    let presented = crate::auth::token_digest(token);
    let Some((digest, sink)) = endpoints.get(&connector) else {
        // The same answer as a wrong token: which connectors exist is not told to a caller without one.
        return answer(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is not valid for this connector (or the connector takes no pushes yet)"
                .into(),
        );
    };
    if !crate::auth::digests_equal(hex::encode(digest).as_bytes(), presented.as_bytes()) {
        return answer(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is not valid for this connector (or the connector takes no pushes yet)"
                .into(),
        );
    }
    let submitted = submit_body(
        sink.as_ref(),
        &headers,
        &body,
        MAX_RECORDS_PER_PUSH,
        &connector,
    )
    .await;
    match submitted {
        // An unreadable body is kept whole too: the hub rejects it to its dead-letter topic with the reason.
        Ok(Submitted { count, .. }) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"buffered": count, "message": "durable at the edge; the hub normalises and acknowledges it when the link allows"})),
        )
            .into_response(),
        Err(SubmitError::TooMany(e)) => {
            answer(StatusCode::PAYLOAD_TOO_LARGE, "too_many_records", e.to_string())
        }
        Err(SubmitError::Sink(e)) => {
            let mut r = answer(StatusCode::SERVICE_UNAVAILABLE, "buffer_full", e.0);
            r.headers_mut()
                .insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("30"));
            r
        }
    }
}
