//! The HTTP push transport: source systems `POST` their records to `/ingest/{connector}`.
//!
//! - **Authentication**: the connector's token, `Authorization: Bearer <token>` or Basic `<connector>:<token>`,
//!   checked by the access layer ([`crate::access`], [`crate::auth`]) before this handler runs; the hub keeps only
//!   its SHA-256. A credential of anyone but this connector's source is refused (403).
//! - **Body**: one JSON object, a JSON array of objects (a batch), or JSON lines
//!   (`Content-Type: application/x-ndjson`). Each record's original bytes are kept exactly as sent.
//! - **Answer** only once everything is durable on the bus: `200` when every record was accepted, `207` when some
//!   were rejected (the rest went through), `422` when all were rejected; each rejected record is listed with its
//!   index and a machine-readable reason, and is on `dlq.<connector>` with its original bytes. A body that is not
//!   JSON at all is a `400`, and is on the dead-letter topic too: nothing is dropped silently.
//! - **Bounded work**: a batch of more than `[limits] max_records_per_push` records (default 20,000) is refused
//!   whole with a `413` naming the cap, counted before any record is copied, so one request cannot make the hub
//!   hold millions of records and their answers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};

use crate::access::Surface;
use crate::auth::Principal;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::value::RawValue;
use tracing::warn;
use unsilo_connectors::sdk::{BatchReport, JsonText, RawInput, RecordSink, RejectReason};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The sinks of the connectors that accept pushes, by connector name.
pub type PushEndpoints = HashMap<String, Arc<dyn RecordSink>>;

/// The push endpoints and the cap on records per batch.
struct PushState {
    endpoints: PushEndpoints,
    max_records: usize,
}

/// The ingest routes for these connectors (by name).
///
/// Mount it behind the access layer of [`crate::access`] (surface `ingest`); `max_body_bytes` bounds a batch's
/// bytes and `max_records` its records.
pub fn router(
    endpoints: PushEndpoints,
    max_body_bytes: usize,
    max_records: usize,
) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(ingest))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(Arc::new(PushState {
            endpoints,
            max_records,
        }))
}

/// An error in the ingest surface's dialect (`{"error_code": <code>, "message": …}`).
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    Surface::Ingest.error(status, code, &message.into())
}

/// Why a body could not be split into records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SplitError {
    /// The body as a whole is unreadable (it becomes one rejected input).
    Unreadable(String),
    /// The batch has more records than the cap (refused whole, with a 413).
    TooMany(usize),
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreadable(reason) => f.write_str(reason),
            Self::TooMany(cap) => write!(
                f,
                "the batch has more than {cap} records ([limits] max_records_per_push); split it into smaller batches"
            ),
        }
    }
}

/// A JSON array's items as raw values, counted as they are read: `over` once there are more than the cap.
struct CappedItems<'a> {
    items: Vec<&'a RawValue>,
    over: bool,
}

/// Reads a JSON array into [`CappedItems`], stopping at `.0` items.
struct CappedSeed(usize);

impl<'de> serde::de::DeserializeSeed<'de> for CappedSeed {
    type Value = CappedItems<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for CappedSeed {
    type Value = CappedItems<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if items.len() == self.0 {
                // Over the cap: read the rest without keeping anything (the parser needs the array closed).
                items = Vec::new();
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                return Ok(CappedItems { items, over: true });
            }
            items.push(item);
        }
        Ok(CappedItems { items, over: false })
    }
}

/// Splits a body into its records' JSON texts, keeping each record's original bytes (the sink parses each where
/// it normalises it). At most `max_records` records: more is [`SplitError::TooMany`], found before any record is
/// copied.
pub fn split_body(
    body: &[u8],
    ndjson: bool,
    connector: &str,
    max_records: usize,
) -> Result<Vec<JsonText>, SplitError> {
    if ndjson {
        let lines = body
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| line.iter().any(|b| !b.is_ascii_whitespace()));
        if lines.clone().nth(max_records).is_some() {
            return Err(SplitError::TooMany(max_records));
        }
        return Ok(lines
            .map(|(n, line)| JsonText {
                original: line.strip_suffix(b"\r").unwrap_or(line).to_vec(),
                origin: format!("POST /ingest/{connector} line {}", n + 1),
            })
            .collect());
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Err(SplitError::Unreadable("the request body is empty".into())),
        Some(b'[') => {
            let unreadable = |e: serde_json::Error| {
                SplitError::Unreadable(format!("the body is not a JSON array: {e}"))
            };
            let mut reader = serde_json::Deserializer::from_slice(body);
            let items =
                serde::de::DeserializeSeed::deserialize(CappedSeed(max_records), &mut reader)
                    .map_err(unreadable)?;
            if items.over {
                return Err(SplitError::TooMany(max_records));
            }
            reader.end().map_err(unreadable)?;
            Ok(items
                .items
                .into_iter()
                .enumerate()
                .map(|(i, raw)| JsonText {
                    original: raw.get().as_bytes().to_vec(),
                    origin: format!("POST /ingest/{connector} item {i}"),
                })
                .collect())
        }
        Some(_) => {
            serde_json::from_slice::<&RawValue>(body)
                .map_err(|e| SplitError::Unreadable(format!("not valid JSON: {e}")))?;
            Ok(vec![JsonText {
                original: body.to_vec(),
                origin: format!("POST /ingest/{connector}"),
            }])
        }
    }
}

/// The answer to a push: counts, then what became of each record, in the order sent.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PushAnswer<'a> {
    /// Records accepted.
    accepted: usize,
    /// Records rejected (each on the dead-letter topic with its reason).
    rejected: usize,
    /// What became of each record, in the order sent.
    results: Vec<Outcome<'a>>,
}

/// What became of one record: `accepted` with its record id and shared schema, or `rejected` with the reason.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Outcome<'a> {
    /// Its position in the batch, from 0.
    index: usize,
    /// `accepted` or `rejected`.
    #[schema(value_type = String)]
    status: &'static str,
    /// For an accepted record: its record id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    record_id: Option<&'a str>,
    /// For an accepted record: the shared schema it was normalised into.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    schema: Option<&'a str>,
    /// For a rejected record: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Rejection>)]
    error: Option<&'a RejectReason>,
}

/// An error of the ingest surface (the whole request refused).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct IngestError {
    /// A stable code: `unauthorized`, `forbidden`, `unknown_connector`, `unreadable`, `too_large`, `rate_limited` ….
    error_code: String,
    /// What is wrong.
    message: String,
}

/// Why a record was rejected (the connector SDK's reason, as it is answered and dead-lettered).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Rejection {
    /// The stage that rejected it: `parse`, `contract`, `mapping` or `validation`.
    stage: String,
    /// A stable code, e.g. `invalid_json`, `missing_required`, `invalid_cert_no`.
    code: String,
    /// The field at fault, when there is one.
    field: Option<String>,
    /// What is wrong (never repeating a full ID or phone number).
    message: String,
}

impl<'a> PushAnswer<'a> {
    fn of(report: &'a BatchReport) -> Self {
        let mut results: Vec<Outcome<'a>> = report
            .accepted
            .iter()
            .map(|a| Outcome {
                index: a.index,
                status: "accepted",
                record_id: Some(&a.record_id),
                schema: Some(&a.schema),
                error: None,
            })
            .chain(report.rejected.iter().map(|r| Outcome {
                index: r.index,
                status: "rejected",
                record_id: None,
                schema: None,
                error: Some(&r.reason),
            }))
            .collect();
        results.sort_by_key(|o| o.index);
        Self {
            accepted: report.accepted.len(),
            rejected: report.rejected.len(),
            results,
        }
    }
}

#[utoipa::path(post, path = "/ingest/{connector}", tag = "ingest",
    params(("connector" = String, Path, description = "The push connector, e.g. `grid`")),
    request_body(description = "One JSON record, a JSON array of records, or NDJSON (one record per line)", content(
        (serde_json::Value = "application/json"), (String = "application/x-ndjson")
    )),
    responses(
        (status = 200, description = "Every record accepted", body = PushAnswer),
        (status = 207, description = "Some accepted, some rejected (on the dead-letter topic with the reason)", body = PushAnswer),
        (status = 422, description = "Every record rejected (on the dead-letter topic with the reason)", body = PushAnswer),
        (status = "default", description = "400 unreadable body (kept on the dead-letter topic), 401, 403, 404 unknown connector, 413, 429, 503", body = IngestError)
    ))]
async fn ingest(
    State(state): State<Arc<PushState>>,
    Path(connector): Path<String>,
    who: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(sink) = state.endpoints.get(&connector) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_connector",
            format!("no connector named `{connector}` accepts pushes"),
        );
    };
    if who != Principal::PushSource(connector.clone()) {
        warn!(connector = %connector, caller = %who, "Push refused: not this connector's credential.");
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this credential may not push to connector `{connector}`"),
        );
    }
    let Submitted {
        report,
        count,
        unreadable: whole_body_error,
    } = match submit_body(
        sink.as_ref(),
        &headers,
        &body,
        state.max_records,
        &connector,
    )
    .await
    {
        Ok(submitted) => submitted,
        Err(SubmitError::TooMany(too_many)) => {
            warn!(connector = %connector, "Push refused: {too_many}.");
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_records",
                too_many.to_string(),
            );
        }
        Err(SubmitError::Sink(e)) => {
            tracing::error!(connector = %connector, error = %e, "Push could not be made durable.");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the hub could not store the records; nothing was accepted, retry later",
            );
        }
    };
    if let Some(reason) = whole_body_error {
        return error(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            format!("{reason}; the body was kept on the dead-letter topic"),
        );
    }
    report.log_acknowledged(&connector, count);
    let status = if report.rejected.is_empty() {
        StatusCode::OK
    } else if report.accepted.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::MULTI_STATUS
    };
    (status, Json(PushAnswer::of(&report))).into_response()
}

/// A push body, submitted to its sink.
#[derive(Debug)]
pub struct Submitted {
    /// The sink's answer.
    pub report: BatchReport,
    /// Records submitted.
    pub count: usize,
    /// Why the body as a whole could not be read, when it could not (it was submitted whole, to be rejected
    /// with that reason and kept on the dead-letter topic).
    pub unreadable: Option<String>,
}

/// Why a push body was not submitted.
#[derive(Debug)]
pub enum SubmitError {
    /// More records than the cap (refused whole, nothing copied).
    TooMany(SplitError),
    /// The sink could not make the batch durable.
    Sink(unsilo_connectors::sdk::SinkError),
}

/// Submits a push body for `connector` to `sink` — split into records (a JSON array or object, or JSON lines
/// when the content type says so), or, when it cannot be read, whole as one input the sink rejects. The hub's
/// ingest endpoint and an edge's local one both answer from this.
pub async fn submit_body(
    sink: &dyn RecordSink,
    headers: &HeaderMap,
    body: &[u8],
    max_records: usize,
    connector: &str,
) -> Result<Submitted, SubmitError> {
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/x-ndjson") || v.starts_with("application/jsonl")
        });
    match split_body(body, ndjson, connector, max_records) {
        Ok(texts) => {
            let count = texts.len();
            let report = sink.submit_json(texts).await.map_err(SubmitError::Sink)?;
            Ok(Submitted {
                report,
                count,
                unreadable: None,
            })
        }
        Err(too_many @ SplitError::TooMany(_)) => Err(SubmitError::TooMany(too_many)),
        Err(SplitError::Unreadable(reason)) => {
            let unreadable = RawInput {
                original: body.to_vec(),
                parsed: Err(reason.clone()),
                origin: format!("POST /ingest/{connector}"),
            };
            let report = sink
                .submit(vec![unreadable])
                .await
                .map_err(SubmitError::Sink)?;
            Ok(Submitted {
                report,
                count: 1,
                unreadable: Some(reason),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_split_into_records_with_their_original_bytes() {
        let inputs = split_body(br#"[ {"a": 1},{"b" : "x"} ]"#, false, "c", 10).expect("array");
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[1].original, br#"{"b" : "x"}"#.to_vec());
        assert_eq!(inputs[1].origin, "POST /ingest/c item 1");

        let inputs =
            split_body(b"{\"a\":1}\n\nnot json\n{\"c\":3}\r\n", true, "c", 10).expect("ndjson");
        assert_eq!(inputs.len(), 3);
        assert!(RawInput::from(inputs[1].clone()).parsed.is_err());
        assert!(RawInput::from(inputs[2].clone()).parsed.is_ok());
        assert_eq!(inputs[2].origin, "POST /ingest/c line 4");

        assert!(split_body(b"  ", false, "c", 10).is_err());
        assert!(split_body(b"{oops", false, "c", 10).is_err());
        assert!(split_body(b"[1, 2", false, "c", 10).is_err());
    }

    #[test]
    fn a_batch_over_the_cap_is_refused_whole_before_it_is_copied() {
        let many = format!("[{}]", vec!["{}"; 2_000_000].join(","));
        assert_eq!(
            split_body(many.as_bytes(), false, "c", 20_000).unwrap_err(),
            SplitError::TooMany(20_000)
        );
        assert_eq!(split_body(b"[{},{},{}]", false, "c", 3).unwrap().len(), 3);
        assert_eq!(
            split_body(b"[{},{},{},{}]", false, "c", 3).unwrap_err(),
            SplitError::TooMany(3)
        );
        assert_eq!(
            split_body(b"{}\n{}\n{}\n{}\n", true, "c", 3).unwrap_err(),
            SplitError::TooMany(3)
        );
        assert!(split_body(b"{}\n{}\n{}\n", true, "c", 3).is_ok());
    }
}
