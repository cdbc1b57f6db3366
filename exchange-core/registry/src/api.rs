//! The registry's HTTP API in the Confluent Schema Registry dialect: the same paths, JSON shapes, status codes,
//! error bodies (`{"error_code": 40401, "message": "Subject 'x' not found."}`) and content type
//! (`application/vnd.schemaregistry.v1+json`), so Confluent serializers, `kafka-avro-console-*` and other
//! existing clients work against unsilo unchanged.
//!
//! Only AVRO schemas are served, and schema references are not supported.
//!
//! **Who may do what.** Every route needs a [`RegistryCaller`] in the request's extensions, which the hub's
//! access layer puts there after authenticating the request (without one the answer is 401):
//!
//! - a *writer* (an operator) may register, delete and change compatibility — except on the subjects the hub
//!   itself owns ([`HUB_OWNED_PREFIXES`]: the shared `std.*` schemas and the agencies' `sub.*` view schemas),
//!   which answer 403 naming why for a new version, a delete and a per-subject compatibility change;
//! - a reader sees only the subjects its `readable` prefixes allow, and the schema ids those use; anything
//!   else answers 404 as if it did not exist.
//!
//! Every write that happened is handed to a [`WriteRecorder`] (the hub's audit log): who, what, and for
//! compatibility changes the level before and after.

use std::collections::HashMap;
use std::sync::Arc;
use unsilo_schemas::names;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::error;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// Subject prefixes written only by the hub itself, never through the API: `std.` (the shared schemas, which
/// change with a release of unsilo) and `sub.` (each subscription's view schema, which changes with its grant).
pub const HUB_OWNED_PREFIXES: [&str; 2] = [names::STD_PREFIX, names::SUB_PREFIX];

/// The caller of a registry route, as the hub's access layer decided it; a request extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryCaller {
    /// The name recorded with its writes, e.g. `operator:ops`.
    pub name: String,
    /// Whether it may register, delete and configure.
    pub writer: bool,
    /// The subject prefixes it may read; `None` = every subject.
    pub readable: Option<Vec<String>>,
    /// Whether it presented no credentials (a write then answers 401, not 403).
    pub anonymous: bool,
}

impl RegistryCaller {
    /// Whether `subject` is visible to this caller.
    pub fn may_read(&self, subject: &str) -> bool {
        self.readable
            .as_ref()
            .is_none_or(|prefixes| prefixes.iter().any(|p| subject.starts_with(p.as_str())))
    }

    fn require_writer(&self) -> Result<()> {
        if self.writer {
            Ok(())
        } else if self.anonymous {
            Err(Error::Unauthorized(
                "credentials are required to change the schema registry".into(),
            ))
        } else {
            Err(Error::Forbidden(
                "only an operator may change the schema registry".into(),
            ))
        }
    }

    /// A subject it may read, or 404 (so that names cannot be probed).
    fn readable_subject(&self, subject: &str) -> Result<()> {
        if self.may_read(subject) {
            Ok(())
        } else {
            Err(Error::SubjectNotFound(subject.to_owned()))
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RegistryCaller {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RegistryCaller>()
            .cloned()
            .ok_or_else(|| Error::Unauthorized("credentials are required".into()))
    }
}

/// Refuses API writes to a subject the hub owns.
fn refuse_hub_owned(subject: &str, what: &str) -> Result<()> {
    if HUB_OWNED_PREFIXES.iter().any(|p| subject.starts_with(p)) {
        let why = if subject.starts_with(names::STD_PREFIX) {
            "it is a shared schema, which changes only with a release of unsilo"
        } else {
            "it is a subscription's view schema, which changes only with its grant"
        };
        return Err(Error::Forbidden(format!(
            "subject '{subject}' is written only by the hub itself ({why}): {what} through the API is refused"
        )));
    }
    Ok(())
}

/// Where registry writes are recorded as evidence (the hub's audit log).
pub trait WriteRecorder: Send + Sync {
    /// Records a write; the future is done once the record is durable.
    fn record(
        &self,
        write: RegistryWrite,
    ) -> futures::future::BoxFuture<'static, std::result::Result<(), NotRecorded>>;
}

/// One registry write, as the evidence log records it: `caller` did `action` (e.g. `registry.register`) to
/// `target` (a subject, or `config`).
#[derive(Clone, Debug)]
pub struct RegistryWrite {
    /// Who.
    pub caller: String,
    /// What (`registry.register`, `registry.delete`, `registry.config`).
    pub action: String,
    /// To what: a subject, or `config`.
    pub target: String,
    /// The particulars (ids, versions, compatibility before and after).
    pub detail: serde_json::Value,
}

/// A registry write the evidence log did not take; the write is then refused.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotRecorded(pub String);

/// The state of the registry's routes.
#[derive(Clone)]
pub struct RegistryApi {
    registry: Arc<Registry>,
    recorder: Option<Arc<dyn WriteRecorder>>,
}

impl RegistryApi {
    async fn record(
        &self,
        caller: &RegistryCaller,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        match &self.recorder {
            Some(r) => r
                .record(RegistryWrite {
                    caller: caller.name.clone(),
                    action: action.to_owned(),
                    target: target.to_owned(),
                    detail,
                })
                .await
                .map_err(|e| Error::Internal(format!("recording {action} in the audit log: {e}"))),
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for RegistryApi {
    type Target = Registry;

    fn deref(&self) -> &Registry {
        &self.registry
    }
}

/// The registry's routes in the Confluent dialect, and their OpenAPI description.
pub fn router_with_openapi(
    registry: Arc<Registry>,
    recorder: Option<Arc<dyn WriteRecorder>>,
) -> (Router, utoipa::openapi::OpenApi) {
    let (router, api) = OpenApiRouter::<RegistryApi>::new()
        .routes(routes!(root))
        .routes(routes!(schema_types))
        .routes(routes!(schema_by_id))
        .routes(routes!(raw_schema_by_id))
        .routes(routes!(versions_of_id))
        .routes(routes!(subjects_of_id))
        .routes(routes!(list_subjects))
        .routes(routes!(lookup, delete_subject))
        .routes(routes!(list_versions, register))
        .routes(routes!(get_version, delete_version))
        .routes(routes!(get_raw_schema))
        .routes(routes!(referenced_by))
        .routes(routes!(check_against_all))
        .routes(routes!(check_against_version))
        .routes(routes!(
            get_global_config,
            put_global_config,
            delete_global_config
        ))
        .routes(routes!(
            get_subject_config,
            put_subject_config,
            delete_subject_config
        ))
        .split_for_parts();
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(RegistryApi { registry, recorder });
    (router, api)
}

/// The registry's routes in the Confluent dialect (see [`router_with_openapi`]).
pub fn router(registry: Arc<Registry>, recorder: Option<Arc<dyn WriteRecorder>>) -> Router {
    router_with_openapi(registry, recorder).0
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

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Flags {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Flags(q))
            .map_err(|e| Error::InvalidRequest(format!("Invalid query string: {}", e.body_text())))
    }
}

impl Flags {
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

/// What follows the subject in a route's path: nothing (`/subjects/{subject}`) or a version
/// (`/subjects/{subject}/versions/{version}`).
trait SubjectTail: Sized + Send {
    /// The path parameters as axum reads them.
    type Raw: DeserializeOwned + Send;
    /// Splits the raw parameters into the subject and what is left to parse.
    fn subject(raw: Self::Raw) -> (String, Option<String>);
    /// Parses what follows the subject.
    fn parse(rest: Option<String>) -> Result<Self>;
}

impl SubjectTail for () {
    type Raw = String;
    fn subject(raw: String) -> (String, Option<String>) {
        (raw, None)
    }
    fn parse(_: Option<String>) -> Result<()> {
        Ok(())
    }
}

impl SubjectTail for VersionSpec {
    type Raw = (String, String);
    fn subject((subject, version): (String, String)) -> (String, Option<String>) {
        (subject, Some(version))
    }
    fn parse(rest: Option<String>) -> Result<VersionSpec> {
        rest.unwrap_or_default().parse()
    }
}

/// A route's subject (and, with `T = VersionSpec`, its version) that the caller may reach: with
/// `WRITE`, only a writer may (401 without credentials, 403 otherwise); then only a subject the
/// caller may read (404 otherwise, so that names cannot be probed).
struct SubjectRoute<T: SubjectTail = (), const WRITE: bool = false> {
    caller: RegistryCaller,
    subject: String,
    version: T,
}

/// A route's subject (and version) that only a writer may change.
type WritableSubject<T = ()> = SubjectRoute<T, true>;

impl<T: SubjectTail, const WRITE: bool> axum::extract::FromRequestParts<RegistryApi>
    for SubjectRoute<T, WRITE>
{
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        registry: &RegistryApi,
    ) -> Result<Self> {
        let caller = RegistryCaller::from_request_parts(parts, registry).await?;
        let raw = Path::<T::Raw>::from_request_parts(parts, registry).await;
        let (subject, rest) = T::subject(path(raw)?);
        if WRITE {
            caller.require_writer()?;
        }
        caller.readable_subject(&subject)?;
        Ok(Self {
            caller,
            subject,
            version: T::parse(rest)?,
        })
    }
}

/// A schema id from a path; not a number means no such schema (Confluent answers 404 too).
fn schema_id(raw: &str) -> Option<i32> {
    raw.parse::<i32>().ok()
}

/// A registry error, as Confluent answers it (for the OpenAPI document).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegistryErrorBody {
    /// Confluent's error code, e.g. `40401` (subject not found), `42201` (invalid schema).
    pub error_code: i64,
    /// What is wrong.
    pub message: String,
}

/// Any error of a registry route, as the OpenAPI document describes it: 401, 403, 404 (40401 subject, 40402
/// version, 40403 schema), 409, 422 (42201 invalid schema …), 429.
#[derive(utoipa::IntoResponses)]
#[response(
    status = "default",
    content_type = "application/vnd.schemaregistry.v1+json"
)]
pub struct RegistryFailure(#[to_schema] pub RegistryErrorBody);

/// The body of schema registrations, lookups and compatibility checks (for the OpenAPI document).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaBody {
    /// The Avro schema, as JSON text.
    pub schema: String,
    /// `AVRO` (the only type served); optional.
    pub schema_type: Option<String>,
}

/// `GET /`: an empty object, as Confluent answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmptyAnswer {}

/// A schema's text (`GET /schemas/ids/{id}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SchemaText {
    /// The Avro schema, as JSON text.
    pub schema: String,
}

/// A subject and a version of it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The version.
    pub version: i32,
}

/// A registered schema's id (`POST /subjects/{subject}/versions`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SchemaId {
    /// The schema's global id.
    pub id: i32,
}

/// A compatibility check's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompatibilityAnswer {
    /// Whether the schema is compatible.
    pub is_compatible: bool,
    /// With `verbose=true`: why not.
    pub messages: Option<Vec<String>>,
}

/// A compatibility level as read or reset (`compatibilityLevel`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompatibilityLevel {
    /// `BACKWARD`, `BACKWARD_TRANSITIVE`, `FORWARD`, `FORWARD_TRANSITIVE`, `FULL`, `FULL_TRANSITIVE` or `NONE`.
    pub compatibility_level: String,
}

/// The body of compatibility changes (for the OpenAPI document).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigBody {
    /// `BACKWARD`, `BACKWARD_TRANSITIVE`, `FORWARD`, `FORWARD_TRANSITIVE`, `FULL`, `FULL_TRANSITIVE` or `NONE`.
    pub compatibility: String,
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

#[utoipa::path(get, path = "/", tag = "registry",
    responses((status = 200, description = "An empty object", body = EmptyAnswer, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn root(_caller: RegistryCaller) -> Response {
    Vnd(json!({})).into_response()
}

#[utoipa::path(get, path = "/schemas/types", tag = "registry",
    responses((status = 200, description = "The schema types served (AVRO)", body = Vec<String>, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn schema_types(_caller: RegistryCaller) -> Response {
    Vnd(["AVRO"]).into_response()
}

/// The schema id, if the caller may see a subject that uses it (404 otherwise).
/// The schema id in the path, checked as visible to the caller; `None` when the path is not a schema id (the
/// handler answers 404, as Confluent does).
struct VisibleSchemaId(Option<i32>);

impl axum::extract::FromRequestParts<RegistryApi> for VisibleSchemaId {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        registry: &RegistryApi,
    ) -> Result<Self> {
        let caller = RegistryCaller::from_request_parts(parts, registry).await?;
        let id = Path::<String>::from_request_parts(parts, registry).await;
        let Some(id) = schema_id(&path(id)?) else {
            return Ok(Self(None));
        };
        visible_id(registry, &caller, id)?;
        Ok(Self(Some(id)))
    }
}

fn visible_id(registry: &Registry, caller: &RegistryCaller, id: i32) -> Result<()> {
    if caller.readable.is_none() {
        return Ok(());
    }
    let visible = registry
        .versions_of_id(id, true)
        .unwrap_or_default()
        .iter()
        .any(|(subject, _)| caller.may_read(subject));
    if visible {
        Ok(())
    } else {
        Err(Error::SchemaIdNotFound(id))
    }
}

#[utoipa::path(get, path = "/schemas/ids/{id}", tag = "registry",
    params(("id" = String, Path, description = "Schema id")),
    responses((status = 200, description = "The schema", body = SchemaText, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn schema_by_id(
    State(registry): State<RegistryApi>,
    VisibleSchemaId(id): VisibleSchemaId,
) -> Result<Response> {
    let Some(id) = id else {
        return Ok(not_found().await);
    };
    let schema = registry.schema_by_id(id)?;
    Ok(Vnd(json!({ "schema": schema })).into_response())
}

#[utoipa::path(get, path = "/schemas/ids/{id}/schema", tag = "registry",
    params(("id" = String, Path, description = "Schema id")),
    responses((status = 200, description = "The schema text", body = serde_json::Value, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn raw_schema_by_id(
    State(registry): State<RegistryApi>,
    VisibleSchemaId(id): VisibleSchemaId,
) -> Result<Response> {
    let Some(id) = id else {
        return Ok(not_found().await);
    };
    Ok(raw_json(registry.schema_by_id(id)?))
}

#[utoipa::path(get, path = "/schemas/ids/{id}/versions", tag = "registry",
    params(("id" = String, Path, description = "Schema id"), ("deleted" = Option<bool>, Query, description = "Include soft-deleted ones")),
    responses((status = 200, description = "Subject-version pairs using it", body = Vec<SubjectVersion>, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn versions_of_id(
    State(registry): State<RegistryApi>,
    caller: RegistryCaller,
    VisibleSchemaId(id): VisibleSchemaId,
    flags: Flags,
) -> Result<Response> {
    let Some(id) = id else {
        return Ok(not_found().await);
    };
    let pairs: Vec<_> = registry
        .versions_of_id(id, flags.get("deleted"))?
        .into_iter()
        .filter(|(subject, _)| caller.may_read(subject))
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect();
    Ok(Vnd(pairs).into_response())
}

#[utoipa::path(get, path = "/schemas/ids/{id}/subjects", tag = "registry",
    params(("id" = String, Path, description = "Schema id"), ("deleted" = Option<bool>, Query, description = "Include soft-deleted ones")),
    responses((status = 200, description = "Subjects using it", body = Vec<String>, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn subjects_of_id(
    State(registry): State<RegistryApi>,
    caller: RegistryCaller,
    VisibleSchemaId(id): VisibleSchemaId,
    flags: Flags,
) -> Result<Response> {
    let Some(id) = id else {
        return Ok(not_found().await);
    };
    let mut subjects: Vec<String> = registry
        .versions_of_id(id, flags.get("deleted"))?
        .into_iter()
        .map(|(subject, _)| subject)
        .filter(|subject| caller.may_read(subject))
        .collect();
    subjects.dedup();
    Ok(Vnd(subjects).into_response())
}

#[utoipa::path(get, path = "/subjects", tag = "registry",
    params(("subjectPrefix" = Option<String>, Query, description = "Only subjects starting so"), ("deleted" = Option<bool>, Query, description = "Include soft-deleted ones")),
    responses((status = 200, description = "Subjects the caller may read", body = Vec<String>, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn list_subjects(
    State(registry): State<RegistryApi>,
    caller: RegistryCaller,
    flags: Flags,
) -> Result<Response> {
    let prefix = flags.0.get("subjectPrefix").cloned().unwrap_or_default();
    let subjects: Vec<String> = registry
        .subjects(flags.get("deleted"))?
        .into_iter()
        .filter(|s| s.starts_with(&prefix) && caller.may_read(s))
        .collect();
    Ok(Vnd(subjects).into_response())
}

#[utoipa::path(post, path = "/subjects/{subject}", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`"), ("deleted" = Option<bool>, Query, description = "Include soft-deleted ones")),
    request_body(content((SchemaBody = "application/vnd.schemaregistry.v1+json"), (SchemaBody = "application/json"))),
    responses((status = 200, description = "The version registered with this schema", body = crate::SchemaVersion, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn lookup(
    State(registry): State<RegistryApi>,
    at: SubjectRoute,
    flags: Flags,
    JsonBody(body): JsonBody<SchemaRequest>,
) -> Result<Response> {
    let found = registry.lookup(&at.subject, body.avro_text()?, flags.get("deleted"))?;
    Ok(Vnd(found).into_response())
}

#[utoipa::path(delete, path = "/subjects/{subject}", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`"), ("permanent" = Option<bool>, Query, description = "Delete for good (after a soft delete)")),
    responses((status = 200, description = "The deleted versions", body = Vec<i32>, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn delete_subject(
    State(registry): State<RegistryApi>,
    at: WritableSubject,
    flags: Flags,
) -> Result<Response> {
    refuse_hub_owned(&at.subject, "deleting it")?;
    let permanent = flags.get("permanent");
    let versions = registry.delete_subject(&at.subject, permanent).await?;
    registry
        .record(
            &at.caller,
            "registry.delete_subject",
            &at.subject,
            json!({ "versions": versions, "permanent": permanent }),
        )
        .await?;
    Ok(Vnd(versions).into_response())
}

#[utoipa::path(get, path = "/subjects/{subject}/versions", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`"), ("deleted" = Option<bool>, Query, description = "Include soft-deleted ones")),
    responses((status = 200, description = "Its versions", body = Vec<i32>, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn list_versions(
    State(registry): State<RegistryApi>,
    at: SubjectRoute,
    flags: Flags,
) -> Result<Response> {
    Ok(Vnd(registry.versions(&at.subject, flags.get("deleted"))?).into_response())
}

#[utoipa::path(post, path = "/subjects/{subject}/versions", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`")),
    request_body(content((SchemaBody = "application/vnd.schemaregistry.v1+json"), (SchemaBody = "application/json"))),
    responses((status = 200, description = "The schema id", body = SchemaId, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn register(
    State(registry): State<RegistryApi>,
    at: WritableSubject,
    JsonBody(body): JsonBody<SchemaRequest>,
) -> Result<Response> {
    let text = body.avro_text()?;
    if HUB_OWNED_PREFIXES.iter().any(|p| at.subject.starts_with(p)) {
        // Registering the schema a hub-owned subject already has changes nothing (clients that always
        // register before producing keep working); anything else would be a new version.
        return match registry.lookup(&at.subject, text, false) {
            Ok(found) => Ok(Vnd(json!({ "id": found.id })).into_response()),
            Err(_) => Err(refuse_hub_owned(&at.subject, "registering a new version")
                .err()
                .unwrap_or_else(|| Error::Forbidden("refused".into()))),
        };
    }
    let before = registry
        .versions(&at.subject, false)
        .map(|v| v.len())
        .unwrap_or(0);
    let id = registry.register(&at.subject, text).await?;
    let after = registry
        .versions(&at.subject, false)
        .map(|v| v.len())
        .unwrap_or(0);
    if after != before {
        registry
            .record(
                &at.caller,
                "registry.register",
                &at.subject,
                json!({ "id": id }),
            )
            .await?;
    }
    Ok(Vnd(json!({ "id": id })).into_response())
}

#[utoipa::path(get, path = "/subjects/{subject}/versions/{version}", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`"), ("version" = String, Path, description = "A version number, or `latest`"), ("deleted" = Option<bool>, Query, description = "Include soft-deleted ones")),
    responses((status = 200, description = "The version", body = crate::SchemaVersion, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn get_version(
    State(registry): State<RegistryApi>,
    at: SubjectRoute<VersionSpec>,
    flags: Flags,
) -> Result<Response> {
    Ok(Vnd(registry.version(&at.subject, at.version, flags.get("deleted"))?).into_response())
}

#[utoipa::path(get, path = "/subjects/{subject}/versions/{version}/schema", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`"), ("version" = String, Path, description = "A version number, or `latest`"), ("deleted" = Option<bool>, Query, description = "Include soft-deleted ones")),
    responses((status = 200, description = "The schema text", body = serde_json::Value, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn get_raw_schema(
    State(registry): State<RegistryApi>,
    at: SubjectRoute<VersionSpec>,
    flags: Flags,
) -> Result<Response> {
    let found = registry.version(&at.subject, at.version, flags.get("deleted"))?;
    Ok(raw_json(found.schema))
}

#[utoipa::path(get, path = "/subjects/{subject}/versions/{version}/referencedby", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`"), ("version" = String, Path, description = "A version number, or `latest`")),
    responses((status = 200, description = "Always empty: references are not supported", body = Vec<i32>, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn referenced_by(
    State(registry): State<RegistryApi>,
    at: SubjectRoute<VersionSpec>,
) -> Result<Response> {
    registry.version(&at.subject, at.version, false)?;
    // Schema references are not supported, so nothing refers to anything.
    Ok(Vnd(Vec::<i32>::new()).into_response())
}

#[utoipa::path(delete, path = "/subjects/{subject}/versions/{version}", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`"), ("version" = String, Path, description = "A version number, or `latest`"), ("permanent" = Option<bool>, Query, description = "Delete for good (after a soft delete)")),
    responses((status = 200, description = "The deleted version", body = i32, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn delete_version(
    State(registry): State<RegistryApi>,
    at: WritableSubject<VersionSpec>,
    flags: Flags,
) -> Result<Response> {
    refuse_hub_owned(&at.subject, "deleting a version")?;
    let permanent = flags.get("permanent");
    let deleted = registry
        .delete_version(&at.subject, at.version, permanent)
        .await?;
    registry
        .record(
            &at.caller,
            "registry.delete_version",
            &at.subject,
            json!({ "version": deleted, "permanent": permanent }),
        )
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

#[utoipa::path(post, path = "/compatibility/subjects/{subject}/versions", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`"), ("verbose" = Option<bool>, Query, description = "Explain incompatibilities")),
    request_body(content((SchemaBody = "application/vnd.schemaregistry.v1+json"), (SchemaBody = "application/json"))),
    responses((status = 200, description = "Whether it is compatible", body = CompatibilityAnswer, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn check_against_all(
    State(registry): State<RegistryApi>,
    at: SubjectRoute,
    flags: Flags,
    JsonBody(body): JsonBody<SchemaRequest>,
) -> Result<Response> {
    let report = registry.check_compatibility(&at.subject, None, body.avro_text()?)?;
    Ok(compatibility_response(report, flags.get("verbose")))
}

#[utoipa::path(post, path = "/compatibility/subjects/{subject}/versions/{version}", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`"), ("version" = String, Path, description = "A version number, or `latest`"), ("verbose" = Option<bool>, Query, description = "Explain incompatibilities")),
    request_body(content((SchemaBody = "application/vnd.schemaregistry.v1+json"), (SchemaBody = "application/json"))),
    responses((status = 200, description = "Whether it is compatible", body = CompatibilityAnswer, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn check_against_version(
    State(registry): State<RegistryApi>,
    at: SubjectRoute<VersionSpec>,
    flags: Flags,
    JsonBody(body): JsonBody<SchemaRequest>,
) -> Result<Response> {
    let report = registry.check_compatibility(&at.subject, Some(at.version), body.avro_text()?)?;
    Ok(compatibility_response(report, flags.get("verbose")))
}

/// Records a change of compatibility level (of `target`: a subject, or `config` for the global
/// level) with the level before and after.
async fn record_compatibility(
    registry: &RegistryApi,
    caller: &RegistryCaller,
    action: &str,
    target: &str,
    before: impl Serialize,
    after: Compatibility,
) -> Result<()> {
    let change = json!({ "before": before, "after": after });
    registry.record(caller, action, target, change).await
}

#[utoipa::path(get, path = "/config", tag = "registry",
    responses((status = 200, description = "The global compatibility level", body = CompatibilityLevel, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn get_global_config(
    State(registry): State<RegistryApi>,
    _caller: RegistryCaller,
) -> Response {
    Vnd(json!({ "compatibilityLevel": registry.global_compatibility() })).into_response()
}

#[utoipa::path(put, path = "/config", tag = "registry",
    request_body(content((ConfigBody = "application/vnd.schemaregistry.v1+json"), (ConfigBody = "application/json"))),
    responses((status = 200, description = "The new level", body = ConfigBody, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn put_global_config(
    State(registry): State<RegistryApi>,
    caller: RegistryCaller,
    JsonBody(body): JsonBody<ConfigRequest>,
) -> Result<Response> {
    caller.require_writer()?;
    let level = body.level()?;
    let before = registry.global_compatibility();
    registry.set_global_compatibility(level).await?;
    record_compatibility(
        &registry,
        &caller,
        "registry.set_compatibility",
        "config",
        before,
        level,
    )
    .await?;
    Ok(Vnd(json!({ "compatibility": level })).into_response())
}

#[utoipa::path(delete, path = "/config", tag = "registry",
    responses((status = 200, description = "The level before the reset", body = CompatibilityLevel, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn delete_global_config(
    State(registry): State<RegistryApi>,
    caller: RegistryCaller,
) -> Result<Response> {
    caller.require_writer()?;
    let before = registry.reset_global_compatibility().await?;
    record_compatibility(
        &registry,
        &caller,
        "registry.reset_compatibility",
        "config",
        before,
        registry.global_compatibility(),
    )
    .await?;
    Ok(Vnd(json!({ "compatibilityLevel": before })).into_response())
}

#[utoipa::path(get, path = "/config/{subject}", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`"), ("defaultToGlobal" = Option<bool>, Query, description = "Fall back to the global level")),
    responses((status = 200, description = "The subject's level", body = CompatibilityLevel, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn get_subject_config(
    State(registry): State<RegistryApi>,
    at: SubjectRoute,
    flags: Flags,
) -> Result<Response> {
    let level = match registry.subject_compatibility(&at.subject) {
        Some(level) => level,
        None if flags.get("defaultToGlobal") => registry.global_compatibility(),
        None => return Err(Error::SubjectCompatibilityNotConfigured(at.subject)),
    };
    Ok(Vnd(json!({ "compatibilityLevel": level })).into_response())
}

#[utoipa::path(put, path = "/config/{subject}", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`")),
    request_body(content((ConfigBody = "application/vnd.schemaregistry.v1+json"), (ConfigBody = "application/json"))),
    responses((status = 200, description = "The new level", body = ConfigBody, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn put_subject_config(
    State(registry): State<RegistryApi>,
    at: WritableSubject,
    JsonBody(body): JsonBody<ConfigRequest>,
) -> Result<Response> {
    refuse_hub_owned(&at.subject, "changing its compatibility")?;
    let level = body.level()?;
    let before = registry.subject_compatibility(&at.subject);
    registry
        .set_subject_compatibility(&at.subject, level)
        .await?;
    record_compatibility(
        &registry,
        &at.caller,
        "registry.set_compatibility",
        &at.subject,
        before,
        level,
    )
    .await?;
    Ok(Vnd(json!({ "compatibility": level })).into_response())
}

#[utoipa::path(delete, path = "/config/{subject}", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `std.grid_event-value`")),
    responses((status = 200, description = "The level before the reset", body = CompatibilityLevel, content_type = "application/vnd.schemaregistry.v1+json"), RegistryFailure))]
async fn delete_subject_config(
    State(registry): State<RegistryApi>,
    at: WritableSubject,
) -> Result<Response> {
    refuse_hub_owned(&at.subject, "changing its compatibility")?;
    let before = registry.delete_subject_compatibility(&at.subject).await?;
    record_compatibility(
        &registry,
        &at.caller,
        "registry.reset_compatibility",
        &at.subject,
        before,
        registry.global_compatibility(),
    )
    .await?;
    Ok(Vnd(json!({ "compatibilityLevel": before })).into_response())
}
