//! The registry's HTTP API in the Confluent Schema Registry dialect: the same paths, JSON shapes, status codes,
//! error bodies (`{"error_code": 40401, "message": "Subject 'x' not found."}`) and content type
//! (`application/vnd.schemaregistry.v1+json`), so Confluent serializers, `kafka-avro-console-*` and other
//! existing clients work against unsilo unchanged.
//!
//! Only AVRO schemas are served, and schema references are not supported.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::error;

use super::{Compatibility, Error, Registry, Result, VersionSpec};

/// The content type of every response, as Confluent sends it.
pub const CONTENT_TYPE_V1: &str = "application/vnd.schemaregistry.v1+json";

/// Request body media types accepted (as Confluent's resources accept them).
const ACCEPTED_BODY_TYPES: [&str; 4] = [
    CONTENT_TYPE_V1,
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

/// The registry's routes, to be nested or merged into the hub's server.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_raw_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_against_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_against_version),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(registry)
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if self.is_internal() {
            error!(error = %self, "Schema registry request failed.");
        }
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ "error_code": self.error_code(), "message": self.client_message() });
        (status, Vnd(body)).into_response()
    }
}

/// A JSON response with Confluent's content type.
struct Vnd<T>(T);

impl<T: Serialize> IntoResponse for Vnd<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => raw_json(body),
            Err(e) => Error::Internal(format!("serialising a response: {e}")).into_response(),
        }
    }
}

fn raw_json(body: impl Into<axum::body::Body>) -> Response {
    let mut response = Response::new(body.into());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1));
    response
}

fn error_response(status: StatusCode, message: &str) -> Response {
    let body = json!({ "error_code": status.as_u16(), "message": message });
    (status, Vnd(body)).into_response()
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "HTTP 404 Not Found")
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP 405 Method Not Allowed",
    )
}

/// A JSON request body: checks the media type and answers a malformed body with a 422 that says what is wrong.
struct JsonBody<T>(T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(value) = req.headers().get(CONTENT_TYPE) {
            let text = value.to_str().unwrap_or_default();
            let essence = text
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if !ACCEPTED_BODY_TYPES.contains(&essence.as_str()) {
                return Err(Error::UnsupportedMediaType(text.to_owned()));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            Error::InvalidRequest(format!(
                "Could not read the request body: {}",
                e.body_text()
            ))
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Error::InvalidRequest(format!("Unrecognized request body: {e}")))
    }
}

/// Query flags (`deleted`, `permanent`, `verbose`, `defaultToGlobal`), each true only if given as `true`.
struct Flags(HashMap<String, String>);

impl Flags {
    fn from(query: Result<Query<HashMap<String, String>>, QueryRejection>) -> Result<Self> {
        query
            .map(|Query(q)| Flags(q))
            .map_err(|e| Error::InvalidRequest(format!("Invalid query string: {}", e.body_text())))
    }

    fn get(&self, name: &str) -> bool {
        self.0
            .get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T> {
    p.map(|Path(t)| t)
        .map_err(|e| Error::InvalidRequest(format!("Invalid path: {}", e.body_text())))
}

/// A schema id from a path; not a number means no such schema (Confluent answers 404 too).
fn schema_id(raw: &str) -> Option<i32> {
    raw.parse::<i32>().ok()
}

/// The body of `POST /subjects/{subject}/versions`, `POST /subjects/{subject}` and the compatibility checks.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<serde_json::Value>>,
}

impl SchemaRequest {
    /// Rejects what this registry does not serve: other schema types and references.
    fn avro_text(&self) -> Result<&str> {
        if let Some(t) = &self.schema_type {
            if !t.eq_ignore_ascii_case("AVRO") {
                return Err(Error::UnsupportedSchemaType(t.clone()));
            }
        }
        if self.references.as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(Error::ReferencesNotSupported);
        }
        Ok(&self.schema)
    }
}

#[derive(Debug, Deserialize)]
struct ConfigRequest {
    #[serde(default)]
    compatibility: Option<String>,
}

impl ConfigRequest {
    fn level(&self) -> Result<Compatibility> {
        match &self.compatibility {
            Some(level) => level.parse(),
            None => Err(Error::InvalidCompatibilityLevel(String::new())),
        }
    }
}

async fn root() -> Response {
    Vnd(json!({})).into_response()
}

async fn schema_types() -> Response {
    Vnd(["AVRO"]).into_response()
}

async fn schema_by_id(
    State(registry): State<Arc<Registry>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let Some(id) = schema_id(&path(id)?) else {
        return Ok(not_found().await);
    };
    let schema = registry.schema_by_id(id)?;
    Ok(Vnd(json!({ "schema": schema })).into_response())
}

async fn raw_schema_by_id(
    State(registry): State<Arc<Registry>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let Some(id) = schema_id(&path(id)?) else {
        return Ok(not_found().await);
    };
    Ok(raw_json(registry.schema_by_id(id)?))
}

async fn versions_of_id(
    State(registry): State<Arc<Registry>>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response> {
    let flags = Flags::from(query)?;
    let Some(id) = schema_id(&path(id)?) else {
        return Ok(not_found().await);
    };
    let pairs: Vec<_> = registry
        .versions_of_id(id, flags.get("deleted"))?
        .into_iter()
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect();
    Ok(Vnd(pairs).into_response())
}

async fn subjects_of_id(
    State(registry): State<Arc<Registry>>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response> {
    let flags = Flags::from(query)?;
    let Some(id) = schema_id(&path(id)?) else {
        return Ok(not_found().await);
    };
    let mut subjects: Vec<String> = registry
        .versions_of_id(id, flags.get("deleted"))?
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    subjects.dedup();
    Ok(Vnd(subjects).into_response())
}

async fn list_subjects(
    State(registry): State<Arc<Registry>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response> {
    let flags = Flags::from(query)?;
    let prefix = flags.0.get("subjectPrefix").cloned().unwrap_or_default();
    let subjects: Vec<String> = registry
        .subjects(flags.get("deleted"))?
        .into_iter()
        .filter(|s| s.starts_with(&prefix))
        .collect();
    Ok(Vnd(subjects).into_response())
}

async fn lookup(
    State(registry): State<Arc<Registry>>,
    subject: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    JsonBody(body): JsonBody<SchemaRequest>,
) -> Result<Response> {
    let subject = path(subject)?;
    let flags = Flags::from(query)?;
    let found = registry.lookup(&subject, body.avro_text()?, flags.get("deleted"))?;
    Ok(Vnd(found).into_response())
}

async fn delete_subject(
    State(registry): State<Arc<Registry>>,
    subject: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response> {
    let subject = path(subject)?;
    let flags = Flags::from(query)?;
    let versions = registry
        .delete_subject(&subject, flags.get("permanent"))
        .await?;
    Ok(Vnd(versions).into_response())
}

async fn list_versions(
    State(registry): State<Arc<Registry>>,
    subject: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response> {
    let subject = path(subject)?;
    let flags = Flags::from(query)?;
    Ok(Vnd(registry.versions(&subject, flags.get("deleted"))?).into_response())
}

async fn register(
    State(registry): State<Arc<Registry>>,
    subject: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<SchemaRequest>,
) -> Result<Response> {
    let subject = path(subject)?;
    let id = registry.register(&subject, body.avro_text()?).await?;
    Ok(Vnd(json!({ "id": id })).into_response())
}

async fn get_version(
    State(registry): State<Arc<Registry>>,
    params: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response> {
    let (subject, version) = path(params)?;
    let flags = Flags::from(query)?;
    let version: VersionSpec = version.parse()?;
    Ok(Vnd(registry.version(&subject, version, flags.get("deleted"))?).into_response())
}

async fn get_raw_schema(
    State(registry): State<Arc<Registry>>,
    params: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response> {
    let (subject, version) = path(params)?;
    let flags = Flags::from(query)?;
    let version: VersionSpec = version.parse()?;
    let found = registry.version(&subject, version, flags.get("deleted"))?;
    Ok(raw_json(found.schema))
}

async fn referenced_by(
    State(registry): State<Arc<Registry>>,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response> {
    let (subject, version) = path(params)?;
    let version: VersionSpec = version.parse()?;
    registry.version(&subject, version, false)?;
    // Schema references are not supported, so nothing refers to anything.
    Ok(Vnd(Vec::<i32>::new()).into_response())
}

async fn delete_version(
    State(registry): State<Arc<Registry>>,
    params: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response> {
    let (subject, version) = path(params)?;
    let flags = Flags::from(query)?;
    let version: VersionSpec = version.parse()?;
    let deleted = registry
        .delete_version(&subject, version, flags.get("permanent"))
        .await?;
    Ok(Vnd(deleted).into_response())
}

fn compatibility_response(report: super::CompatibilityReport, verbose: bool) -> Response {
    if verbose {
        Vnd(json!({ "is_compatible": report.is_compatible(), "messages": report.messages }))
            .into_response()
    } else {
        Vnd(json!({ "is_compatible": report.is_compatible() })).into_response()
    }
}

async fn check_against_all(
    State(registry): State<Arc<Registry>>,
    subject: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    JsonBody(body): JsonBody<SchemaRequest>,
) -> Result<Response> {
    let subject = path(subject)?;
    let flags = Flags::from(query)?;
    let report = registry.check_compatibility(&subject, None, body.avro_text()?)?;
    Ok(compatibility_response(report, flags.get("verbose")))
}

async fn check_against_version(
    State(registry): State<Arc<Registry>>,
    params: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    JsonBody(body): JsonBody<SchemaRequest>,
) -> Result<Response> {
    let (subject, version) = path(params)?;
    let flags = Flags::from(query)?;
    let version: VersionSpec = version.parse()?;
    let report = registry.check_compatibility(&subject, Some(version), body.avro_text()?)?;
    Ok(compatibility_response(report, flags.get("verbose")))
}

async fn get_global_config(State(registry): State<Arc<Registry>>) -> Response {
    Vnd(json!({ "compatibilityLevel": registry.global_compatibility() })).into_response()
}

async fn put_global_config(
    State(registry): State<Arc<Registry>>,
    JsonBody(body): JsonBody<ConfigRequest>,
) -> Result<Response> {
    let level = body.level()?;
    registry.set_global_compatibility(level).await?;
    Ok(Vnd(json!({ "compatibility": level })).into_response())
}

async fn delete_global_config(State(registry): State<Arc<Registry>>) -> Result<Response> {
    let before = registry.reset_global_compatibility().await?;
    Ok(Vnd(json!({ "compatibilityLevel": before })).into_response())
}

async fn get_subject_config(
    State(registry): State<Arc<Registry>>,
    subject: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response> {
    let subject = path(subject)?;
    let flags = Flags::from(query)?;
    let level = match registry.subject_compatibility(&subject) {
        Some(level) => level,
        None if flags.get("defaultToGlobal") => registry.global_compatibility(),
        None => return Err(Error::SubjectCompatibilityNotConfigured(subject)),
    };
    Ok(Vnd(json!({ "compatibilityLevel": level })).into_response())
}

async fn put_subject_config(
    State(registry): State<Arc<Registry>>,
    subject: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<ConfigRequest>,
) -> Result<Response> {
    let subject = path(subject)?;
    let level = body.level()?;
    registry.set_subject_compatibility(&subject, level).await?;
    Ok(Vnd(json!({ "compatibility": level })).into_response())
}

async fn delete_subject_config(
    State(registry): State<Arc<Registry>>,
    subject: Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let subject = path(subject)?;
    let before = registry.delete_subject_compatibility(&subject).await?;
    Ok(Vnd(json!({ "compatibilityLevel": before })).into_response())
}
