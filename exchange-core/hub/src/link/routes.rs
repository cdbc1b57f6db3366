//! The HTTP side of links: the operators' `/admin/edges…` routes and the edge nodes' `/link/v1/…` routes
//! (see [`super::protocol`] for the exchange), all in the OpenAPI document.
//!
//! `POST /link/v1/enrol` is the one link route an unauthenticated caller reaches: the one-time code in its body
//! is the credential. Every other `/link/v1/…` route answers only an enrolled, unrevoked edge presenting its
//! client certificate ([`crate::auth::Principal::Edge`]), and only about itself.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::protocol::{
    BatchAnswer, CatalogueReceipt, Definitions, EdgeReport, EnrolAnswer, EnrolRequest, LinkBatch,
    Positions, PublishedCatalogue, SignedDefinition, StatusAnswer,
};
use super::{EdgeView, LinkError, Links, NodeKind, RegisteredEdge};
use crate::api_error::{ApiError, JsonRequest};
use crate::auth::Principal;

/// The most a batch may grow to when decompressed (a compressed body is bounded by the ingest body limit;
/// this bounds what it expands to, so a small bomb cannot make the hub allocate gigabytes).
pub const MAX_DECOMPRESSED_BATCH_BYTES: u64 = 64 * 1024 * 1024;

type Shared = State<Arc<Links>>;
type ApiResult = Result<Response, ApiError>;

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Forbidden(m) => ApiError::Forbidden(m),
            LinkError::NoEdge(id) => ApiError::NotFound(format!("edge `{id}`")),
            LinkError::Invalid(m) => ApiError::Invalid(m),
            LinkError::BadCode => ApiError::Unauthorized,
            e @ LinkError::Gap { .. } => ApiError::Conflict(e.to_string()),
            LinkError::Failed(m) => ApiError::Internal(m),
        }
    }
}

pub(super) fn ok<T: Serialize>(body: T) -> ApiResult {
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// The operators' routes (behind the access layer and the role matrix).
pub fn admin_router(links: Arc<Links>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_edges, register_edge))
        .routes(routes!(get_edge))
        .routes(routes!(revoke_edge))
        .routes(routes!(push_definition))
        .with_state(links)
}

/// The edge nodes' routes (behind the access layer and the role matrix).
pub fn link_router(links: Arc<Links>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(positions))
        .routes(routes!(batches))
        .routes(routes!(status))
        .routes(routes!(definitions))
        .routes(routes!(publish_catalogue))
        .with_state(links)
}

/// Enrolment: reached without credentials (the one-time code is the credential).
pub fn enrol_router(links: Arc<Links>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(enrol))
        .with_state(links)
}

/// The edges the hub knows.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EdgeList {
    /// Each edge.
    pub edges: Vec<EdgeView>,
}

/// An edge to register.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEdge {
    /// Its id: 1–64 of a-z, 0-9 and '-'. Registering an existing id opens a new enrolment for it.
    pub id: String,
    /// `edge` (default: a department's node) or `member_hub` (a lower-level hub).
    #[serde(default)]
    pub kind: NodeKind,
    /// The organisation (agency id) it runs for.
    #[serde(default)]
    pub organisation: Option<String>,
    /// What it is, for operators.
    #[serde(default)]
    pub description: String,
}

/// A connector definition to push to an edge.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefinitionFiles {
    /// The definition's files by path relative to its folder: `connector.toml`, the contract and the mappings
    /// it names.
    pub files: BTreeMap<String, String>,
}

pub(super) fn edge_of(who: &Principal) -> Result<&str, ApiError> {
    match who {
        Principal::Edge(id) => Ok(id),
        _ => Err(ApiError::Forbidden(
            "this is for an enrolled edge node".into(),
        )),
    }
}

#[utoipa::path(get, path = "/admin/edges", tag = "edges",
    responses((status = 200, description = "Every edge: state, last contact, version, buffer, lag, per-connector counts and errors", body = EdgeList), crate::api_error::ApiFailure))]
async fn list_edges(State(links): Shared, who: Principal) -> ApiResult {
    ok(EdgeList {
        edges: links.list(&who)?,
    })
}

#[utoipa::path(post, path = "/admin/edges", tag = "edges", request_body = NewEdge,
    responses((status = 201, description = "The edge and its one-time enrolment code (shown only now)", body = RegisteredEdge), crate::api_error::ApiFailure))]
async fn register_edge(
    State(links): Shared,
    who: Principal,
    JsonRequest(body): JsonRequest<NewEdge>,
) -> ApiResult {
    let registered = links
        .register(
            &who,
            &body.id,
            body.kind,
            body.organisation,
            body.description,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(registered)).into_response())
}

#[utoipa::path(get, path = "/admin/edges/{id}", tag = "edges",
    params(("id" = String, Path, description = "Edge id")),
    responses((status = 200, description = "The edge", body = EdgeView), crate::api_error::ApiFailure))]
async fn get_edge(State(links): Shared, who: Principal, Path(id): Path<String>) -> ApiResult {
    ok(links.get(&who, &id)?)
}

#[utoipa::path(post, path = "/admin/edges/{id}/revoke", tag = "edges",
    params(("id" = String, Path, description = "Edge id")),
    responses((status = 200, description = "The edge, revoked: its certificate is refused from now on", body = EdgeView), crate::api_error::ApiFailure))]
async fn revoke_edge(State(links): Shared, who: Principal, Path(id): Path<String>) -> ApiResult {
    ok(links.revoke(&who, &id).await?)
}

#[utoipa::path(put, path = "/admin/edges/{id}/connectors/{connector}", tag = "edges",
    params(("id" = String, Path, description = "Edge id"), ("connector" = String, Path, description = "Connector name")),
    request_body = DefinitionFiles,
    responses((status = 200, description = "The definition as signed for the edge: its next version", body = SignedDefinition), crate::api_error::ApiFailure))]
async fn push_definition(
    State(links): Shared,
    who: Principal,
    Path((id, connector)): Path<(String, String)>,
    JsonRequest(body): JsonRequest<DefinitionFiles>,
) -> ApiResult {
    ok(links
        .push_definition(&who, &id, &connector, body.files)
        .await?)
}

#[utoipa::path(post, path = "/link/v1/enrol", tag = "link", request_body = EnrolRequest,
    responses((status = 200, description = "The edge's client certificate, the link CA and the hub's signing key", body = EnrolAnswer), crate::api_error::ApiFailure))]
async fn enrol(State(links): Shared, JsonRequest(body): JsonRequest<EnrolRequest>) -> ApiResult {
    ok(links.enrol(&body).await?)
}

#[utoipa::path(get, path = "/link/v1/positions", tag = "link",
    responses((status = 200, description = "Per connector, the next offset of the edge's buffer the hub has not yet acknowledged", body = Positions), crate::api_error::ApiFailure))]
async fn positions(State(links): Shared, who: Principal) -> ApiResult {
    ok(links.positions(edge_of(&who)?))
}

/// The body of a batch: JSON, or gzip-compressed JSON (`Content-Encoding: gzip`), decompressed here within
/// [`MAX_DECOMPRESSED_BATCH_BYTES`].
pub(super) fn batch_of<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let json: std::borrow::Cow<'_, [u8]> = match encoding.as_str() {
        "identity" => body.as_ref().into(),
        "gzip" => {
            let mut out = Vec::new();
            let read = flate2::read::GzDecoder::new(body.as_ref())
                .take(MAX_DECOMPRESSED_BATCH_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::Invalid(format!("the gzip body does not decompress: {e}"))
                })?;
            if read as u64 > MAX_DECOMPRESSED_BATCH_BYTES {
                return Err(ApiError::Invalid(format!(
                    "the batch decompresses to more than {MAX_DECOMPRESSED_BATCH_BYTES} bytes: send smaller batches"
                )));
            }
            out.into()
        }
        other => {
            return Err(ApiError::Invalid(format!(
                "Content-Encoding `{other}` is not accepted: send gzip or identity"
            )))
        }
    };
    serde_json::from_slice(&json)
        .map_err(|e| ApiError::Invalid(format!("the body is not what this route takes: {e}")))
}

#[utoipa::path(post, path = "/link/v1/batches", tag = "link",
    request_body(content = LinkBatch, description = "One connector's originals in offset order; may be gzip-compressed (`Content-Encoding: gzip`)"),
    responses((status = 200, description = "What is now durable at the hub (`next_offset`) and what was written", body = BatchAnswer), crate::api_error::ApiFailure))]
async fn batches(
    State(links): Shared,
    who: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let edge = edge_of(&who)?.to_owned();
    let batch: LinkBatch = batch_of(&headers, &body)?;
    ok(links.accept(&edge, batch).await?)
}

#[utoipa::path(post, path = "/link/v1/status", tag = "link", request_body = EdgeReport,
    responses((status = 200, description = "The definitions the hub holds for the edge", body = StatusAnswer), crate::api_error::ApiFailure))]
async fn status(
    State(links): Shared,
    who: Principal,
    JsonRequest(report): JsonRequest<EdgeReport>,
) -> ApiResult {
    let edge = edge_of(&who)?.to_owned();
    ok(links.report(&edge, report).await?)
}

#[utoipa::path(get, path = "/link/v1/definitions", tag = "link",
    responses((status = 200, description = "The connector definitions the hub holds for the edge, each signed", body = Definitions), crate::api_error::ApiFailure))]
async fn definitions(State(links): Shared, who: Principal) -> ApiResult {
    ok(links.definitions(edge_of(&who)?))
}

#[utoipa::path(post, path = "/link/v1/catalogue", tag = "link", request_body = PublishedCatalogue,
    responses((status = 200, description = "The catalogue is on record at the parent", body = CatalogueReceipt), crate::api_error::ApiFailure))]
async fn publish_catalogue(
    State(links): Shared,
    who: Principal,
    JsonRequest(body): JsonRequest<PublishedCatalogue>,
) -> ApiResult {
    let member = edge_of(&who)?.to_owned();
    ok(links.publish_catalogue(&member, body.entries).await?)
}
