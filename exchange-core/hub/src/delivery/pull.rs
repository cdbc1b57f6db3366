//! The pull API: an agency reads its subscription's records in cursor batches or as server-sent events, and
//! acknowledges what it has durably processed.
//!
//! - `GET /v1/subscriptions/{id}/records?cursor=&max=&wait_ms=` → `{"records": [...], "cursor": "..."}`. Without a
//!   cursor it starts after the last acknowledged position. `wait_ms` (default 1000, at most 30000) long-polls
//!   for the first record.
//! - `GET /v1/subscriptions/{id}/events?cursor=` → `text/event-stream`; each event's `id` is the cursor after it, so
//!   a client that reconnects with `Last-Event-ID` resumes exactly.
//! - `POST /v1/subscriptions/{id}/ack` with `{"cursor": "..."}` → commits the position for consumer group
//!   `unsilo.pull.<id>`: the next cursor-less read starts there.
//!
//! Event streams are bounded: an agency holds at most `[limits] max_event_streams_per_agency` at once (default 4;
//! one more is answered `429`), and a stream ends after `[limits] event_stream_lifetime` (default 1 h) with a
//! `closed` event — the client reconnects with `Last-Event-ID` and resumes exactly.
//!
//! A cursor is the next offset per partition of the subscription's topic, `p-o.p-o…` (e.g. `0-15.1-3`); clients
//! should treat it as opaque. Only the owning agency can pull (another agency's subscription is 404), only while
//! the subscription is active and unexpired, and only a subscription whose channel is `pull`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::Stream;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ViewDecoder;
use crate::api_error::{parse_json, ApiError, QueryParams};
use crate::auth::{Authenticator, ClientCertificate, Principal};
use crate::control::ControlPlane;
use unsilo_bus::{Bus, ConsumedRecord};
use unsilo_policy::model::{Channel, Subscription};

/// Most records in one batch.
const MAX_BATCH: usize = 1000;

/// The pull API's state.
#[derive(Clone)]
pub struct PullApi {
    control: Arc<ControlPlane>,
    bus: Arc<dyn Bus>,
    decoder: ViewDecoder,
    authenticator: Arc<Authenticator>,
    streams: Arc<StreamSlots>,
}

/// How many event streams an agency may hold, and for how long each.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// Event streams open at once per agency.
    pub per_agency: usize,
    /// How long one stream lives before it is closed (the client reconnects and resumes).
    pub lifetime: Duration,
}

/// The event streams open, by agency.
struct StreamSlots {
    limits: StreamLimits,
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One open event stream of an agency: its slot is given back when the stream ends (dropped).
struct StreamSlot {
    slots: Arc<StreamSlots>,
    agency: String,
}

impl StreamSlots {
    /// A slot for one more stream of `agency`, if it holds fewer than its limit.
    fn take(self: &Arc<Self>, agency: &str) -> Option<StreamSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(agency.to_owned()).or_default();
        if *n >= self.limits.per_agency {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            slots: self.clone(),
            agency: agency.to_owned(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.agency) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.agency);
            }
        }
    }
}

/// What a caller presented: checked again before every batch a long poll or an event stream sends, so a
/// revoked token or subscription stops delivery mid-stream.
#[derive(Clone)]
struct Presented {
    headers: HeaderMap,
    certificate: Option<ClientCertificate>,
}

impl std::fmt::Debug for PullApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullApi").finish_non_exhaustive()
    }
}

/// The pull routes and their OpenAPI description, to be mounted behind the access layer of [`crate::access`].
pub fn router(
    control: Arc<ControlPlane>,
    bus: Arc<dyn Bus>,
    decoder: ViewDecoder,
    authenticator: Arc<Authenticator>,
    stream_limits: StreamLimits,
) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(records))
        .routes(routes!(events))
        .routes(routes!(ack))
        .with_state(PullApi {
            control,
            bus,
            decoder,
            authenticator,
            streams: Arc::new(StreamSlots {
                limits: stream_limits,
                open: std::sync::Mutex::new(std::collections::HashMap::new()),
            }),
        })
}

/// The consumer group whose offsets pull acknowledgements commit.
pub fn ack_group(subscription: &str) -> String {
    unsilo_schemas::names::pull_group(subscription)
}

/// Positions per partition: the next offset to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor(pub BTreeMap<u32, u64>);

impl Cursor {
    /// Parses `p-o.p-o…`.
    pub fn parse(text: &str) -> Result<Cursor, ApiError> {
        let bad = || ApiError::Invalid(format!("cursor `{text}` is not a cursor this API issued"));
        let mut map = BTreeMap::new();
        if text.is_empty() {
            return Ok(Cursor(map));
        }
        for part in text.split('.') {
            let (p, o) = part.split_once('-').ok_or_else(bad)?;
            let p: u32 = p.parse().map_err(|_| bad())?;
            let o: u64 = o.parse().map_err(|_| bad())?;
            if map.insert(p, o).is_some() {
                return Err(bad());
            }
        }
        Ok(Cursor(map))
    }

    /// The text form.
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(p, o)| format!("{p}-{o}"))
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl PullApi {
    /// The subscription, if the caller is its agency and it is pullable now.
    fn pullable(&self, presented: &Presented, id: &str) -> Result<Subscription, ApiError> {
        let who = self
            .authenticator
            .require(&presented.headers, presented.certificate.as_ref())
            .map_err(|_| ApiError::Unauthorized)?;
        if !matches!(who, Principal::Agency(_)) {
            return Err(ApiError::Forbidden(
                "only the subscribing agency pulls its records".into(),
            ));
        }
        let s = self
            .control
            .subscription_visible_to(&who, id)
            .ok_or_else(|| ApiError::NotFound(format!("subscription `{id}`")))?;
        if s.spec().channel != Channel::Pull {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` delivers by {}, not pull",
                s.spec().channel.kind()
            )));
        }
        if !s.is_delivering(unsilo_bus::now_ms()) {
            return Err(ApiError::Forbidden(format!(
                "subscription `{id}` is {}: nothing is delivered",
                if s.status == unsilo_policy::model::SubscriptionStatus::Active {
                    "expired"
                } else {
                    s.status.as_str()
                }
            )));
        }
        Ok(s)
    }

    /// The cursor to start from: the given one, else the acknowledged position, else the beginning.
    async fn start(&self, s: &Subscription, given: Option<&str>) -> Result<Cursor, ApiError> {
        let bus = &self.bus;
        let topic = s.topic();
        let partitions = bus
            .partition_count(&topic)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .unwrap_or(0);
        let mut cursor = match given {
            Some(text) => Cursor::parse(text)?,
            None => {
                let committed = bus
                    .committed_offsets(&ack_group(&s.id), &topic)
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                Cursor(
                    committed
                        .into_iter()
                        .enumerate()
                        .map(|(p, o)| (p as u32, o.unwrap_or(0)))
                        .collect(),
                )
            }
        };
        if cursor.0.keys().any(|p| *p >= partitions) {
            return Err(ApiError::Invalid(
                "cursor names a partition the subscription's topic does not have".into(),
            ));
        }
        for p in 0..partitions {
            cursor.0.entry(p).or_insert(0);
        }
        Ok(cursor)
    }

    /// Reads up to `max` records after `cursor`, waiting up to `wait` for the first; advances the cursor.
    async fn read(
        &self,
        s: &Subscription,
        cursor: &mut Cursor,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ConsumedRecord>, ApiError> {
        let bus = &self.bus;
        let topic = s.topic();
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            let positions: Vec<(u32, u64)> = cursor.0.iter().map(|(p, o)| (*p, *o)).collect();
            for (p, o) in positions {
                if out.len() >= max {
                    break;
                }
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                // A short wait per partition: long enough for a Kafka fetch round trip.
                let wait = left.min(Duration::from_millis(100));
                let batch = bus
                    .fetch(&unsilo_bus::FetchRequest::new(
                        &topic,
                        p,
                        o,
                        max - out.len(),
                        wait,
                    ))
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                if let Some(last) = batch.last() {
                    cursor.0.insert(p, last.position.offset + 1);
                }
                out.extend(batch);
            }
            if !out.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(out);
            }
        }
    }

    fn pulled(&self, s: &Subscription, records: &[ConsumedRecord]) -> Vec<PulledRecord> {
        records
            .iter()
            .map(|r| {
                let (partition, offset) = (r.position.partition, r.position.offset);
                match self.decoder.released(&s.id, r) {
                    Ok(released) => PulledRecord {
                        subscription: Some(released.subscription),
                        record_id: released.record_id,
                        schema_id: Some(released.schema_id),
                        record: Some(released.record),
                        retain_days: released.retain_days,
                        retain_until: released.retain_until,
                        history: released.history,
                        partition,
                        offset,
                        error: None,
                    },
                    Err(e) => PulledRecord {
                        record_id: r.record.record_id(),
                        partition,
                        offset,
                        error: Some(e.to_string()),
                        ..PulledRecord::default()
                    },
                }
            })
            .collect()
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RecordsQuery {
    /// Where to continue: the `cursor` of the previous batch (default: after the last acknowledged record).
    cursor: Option<String>,
    /// Most records in the batch (1–1000, default 100).
    max: Option<usize>,
    /// How long to wait for the first record, in ms (up to 30 000, default 1 000).
    wait_ms: Option<u64>,
}

/// The credentials of a request, for re-checking.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Presented {
    type Rejection = std::convert::Infallible;

    /// What the request presented: its headers and, under mutual TLS, the client certificate.
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Presented {
            headers: parts.headers.clone(),
            certificate: parts.extensions.get::<ClientCertificate>().cloned(),
        })
    }
}

/// A batch of released records (`GET /v1/subscriptions/{id}/records`).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct RecordBatch {
    /// The subscription.
    subscription: String,
    /// The records, oldest first.
    records: Vec<PulledRecord>,
    /// Where the next batch starts: pass it back as `cursor`, and to `…/ack` once the batch is stored.
    cursor: String,
}

/// One released record as the pull API and its event stream give it: the webhook's form
/// ([`super::ReleasedRecord`]) with the position it came from; a record that cannot be decoded comes with `error`
/// instead of `record`.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
struct PulledRecord {
    /// The subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription: Option<String>,
    /// The record's id.
    record_id: String,
    /// The view schema's id in the registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_id: Option<u32>,
    /// The record in the subscription's view schema: its fields as granted, treated (timestamps as RFC 3339 UTC,
    /// dates as `YYYY-MM-DD`, bytes as hex). Its shape is the view schema's (`GET /subjects/sub.<agency>.<name>-value/versions/latest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    record: Option<serde_json::Value>,
    /// How many days the agency may keep it, when the grant says.
    #[serde(skip_serializing_if = "Option::is_none")]
    retain_days: Option<u64>,
    /// Until when (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    retain_until: Option<String>,
    /// Released from history (a backfill, or the catch-up after a pause).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    history: bool,
    /// The partition it came from.
    partition: u32,
    /// Its offset there.
    offset: u64,
    /// Why it could not be decoded, instead of `record`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// An acknowledgement (`POST /v1/subscriptions/{id}/ack`).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Acknowledged {
    /// The subscription.
    subscription: String,
    /// The cursor acknowledged.
    acknowledged: String,
}

#[utoipa::path(get, path = "/v1/subscriptions/{id}/records", tag = "pull",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`"), RecordsQuery),
    responses((status = 200, description = "A batch of released records and the cursor after it", body = RecordBatch), crate::api_error::ApiFailure))]
async fn records(
    State(api): State<PullApi>,
    presented: Presented,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<RecordsQuery>,
) -> Result<Response, ApiError> {
    let s = api.pullable(&presented, &id)?;
    let mut cursor = api.start(&s, q.cursor.as_deref()).await?;
    let max = q.max.unwrap_or(100).clamp(1, MAX_BATCH);
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(1000).min(30_000));
    let read = api.read(&s, &mut cursor, max, wait).await?;
    // A revocation during the wait stops delivery of what was read.
    let s = api.pullable(&presented, &id)?;
    let body = RecordBatch {
        records: api.pulled(&s, &read),
        subscription: s.id,
        cursor: cursor.encode(),
    };
    Ok((StatusCode::OK, Json(body)).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AckBody {
    /// The cursor of the last batch processed.
    cursor: String,
}

#[utoipa::path(post, path = "/v1/subscriptions/{id}/ack", tag = "pull",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`")),
    request_body = AckBody,
    responses((status = 200, description = "Acknowledged up to the cursor", body = Acknowledged), crate::api_error::ApiFailure))]
async fn ack(
    State(api): State<PullApi>,
    presented: Presented,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let s = api.pullable(&presented, &id)?;
    let body: AckBody = parse_json(&body)?;
    let cursor = api.start(&s, Some(&body.cursor)).await?;
    let offsets: Vec<(u32, u64)> = cursor.0.iter().map(|(p, o)| (*p, *o)).collect();
    api.bus
        .commit_offsets(&ack_group(&s.id), &s.topic(), &offsets)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        Json(Acknowledged {
            acknowledged: cursor.encode(),
            subscription: s.id,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/subscriptions/{id}/events", tag = "pull",
    params(("id" = String, Path, description = "Subscription id, `<agency>.<name>`"), ("cursor" = Option<String>, Query, description = "Resume after this cursor (or send Last-Event-ID)")),
    responses((status = 200, description = "Server-sent events, one per released record", content_type = "text/event-stream", body = String), crate::api_error::ApiFailure))]
async fn events(
    State(api): State<PullApi>,
    presented: Presented,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let s = api.pullable(&presented, &id)?;
    let Some(slot) = api.streams.take(&s.agency) else {
        return Err(ApiError::TooMany(format!(
            "agency `{}` already holds {} event streams ([limits] max_event_streams_per_agency); close one first",
            s.agency, api.streams.limits.per_agency
        )));
    };
    let ends_at = tokio::time::Instant::now() + api.streams.limits.lifetime;
    let resume = presented
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.cursor);
    let cursor = api.start(&s, resume.as_deref()).await?;
    let stream = futures::stream::unfold(
        (api, presented, id, cursor, Vec::<Event>::new(), false, slot),
        move |(api, presented, id, mut cursor, mut pending, mut closed, slot)| async move {
            loop {
                if let Some(e) = pending.pop() {
                    return Some((Ok(e), (api, presented, id, cursor, pending, closed, slot)));
                }
                if closed {
                    return None;
                }
                if tokio::time::Instant::now() >= ends_at {
                    closed = true;
                    pending.push(Event::default().event("closed").data(
                        "the stream reached its maximum lifetime; reconnect with Last-Event-ID to resume",
                    ));
                    continue;
                }
                let s = match api.pullable(&presented, &id) {
                    Ok(s) => s,
                    Err(e) => {
                        closed = true;
                        pending.push(Event::default().event("closed").data(e.to_string()));
                        continue;
                    }
                };
                let read = match api.read(&s, &mut cursor, 100, Duration::from_secs(5)).await {
                    Ok(r) => r,
                    Err(e) => {
                        closed = true;
                        pending.push(Event::default().event("error").data(e.to_string()));
                        continue;
                    }
                };
                // Re-check after the wait: a revoked subscription delivers nothing more.
                if api.pullable(&presented, &id).is_err() {
                    continue;
                }
                // Each event's id is the cursor after it, so Last-Event-ID resumes exactly.
                let mut events = Vec::with_capacity(read.len());
                let mut step = start_of(&cursor, &read);
                for (r, pulled) in read.iter().zip(api.pulled(&s, &read)) {
                    step.0.insert(r.position.partition, r.position.offset + 1);
                    events.push(
                        Event::default()
                            .event("record")
                            .id(step.encode())
                            .data(serde_json::to_string(&pulled).unwrap_or_default()),
                    );
                }
                events.reverse();
                pending = events;
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The cursor before `read` (which was read from it and advanced `after` past it).
fn start_of(after: &Cursor, read: &[ConsumedRecord]) -> Cursor {
    let mut start = after.clone();
    for r in read {
        let e = start
            .0
            .entry(r.position.partition)
            .or_insert(r.position.offset);
        *e = (*e).min(r.position.offset);
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor::parse("0-15.1-3").unwrap();
        assert_eq!(c.0[&0], 15);
        assert_eq!(c.encode(), "0-15.1-3");
        assert_eq!(Cursor::parse("").unwrap(), Cursor::default());
        for bad in ["x", "0-", "0-1.0-2", "-1-2", "0-1,1-2"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }
}
