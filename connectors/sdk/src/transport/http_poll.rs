//! HTTP poll: reads new and changed records from a source system's REST API with an incremental cursor.
//!
//! ## Cursors
//!
//! - **`updated_since`**: every request carries the update time of the newest record seen so far (as the
//!   records write it, e.g. `?updated_since=2024-05-01 08:00:00&page_size=100`); the API answers with the
//!   records updated *at or after* that time, oldest first. Several records may share one update time, and a
//!   page may end among them, so the boundary is kept inclusive: the hub asks again from the same time and
//!   skips the records it already has — those whose id it saw at exactly that time (`seen_ids`). The API
//!   must compare with `>=`: one that compares with `>` loses the records sharing the boundary time that did
//!   not fit on the page. When a whole page shares the boundary time (so asking again brings nothing new), the
//!   hub doubles the page size for the next request, up to 16 × `page_size`; beyond that (or without a page
//!   size parameter) the poll stops with an error that says to raise `page_size`. A record that changes gets a
//!   new update time and is read again. Checkpoint: `{"updated_since": <time>, "seen_ids": [...]}`.
//! - **`page_token`**: the response carries the token of the next page (at `next_pointer`) and the next
//!   request sends it. When there is no next page, the hub keeps the token of the last page and asks for
//!   that page again at the next poll, skipping the records whose ids it already has on it; records appended
//!   after them come through. Checkpoint: `{"page_token": <token or null>, "seen_ids": [...]}`.
//!
//! In both, the checkpoint is saved only after the sink acknowledged the page (at-least-once).
//!
//! ## Failures
//!
//! Connection refused, timeouts, HTTP 5xx, 408 and 429 are transient. 401, 403, 404 and other 4xx are fatal
//! (credentials or configuration). A `200` whose body is not JSON, or has no array at `records_pointer`, is
//! transient (a proxy's error page, a maintenance notice) and its body goes to the sink as one rejected input,
//! so it is on the dead-letter topic for the operator. Header values (API keys) and the URL's query string
//! never appear in logs, errors or origins.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use super::poll::{deserialize_duration, scrub, sleep_or_shutdown};
use crate::sdk::{RawInput, Source, SourceContext, SourceError};
use unsilo_schemas::redact::redact_url;

/// The largest response body read (a bigger one is a transient error: lower `page_size`).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// How far the page size may grow, as a multiple of `page_size`, to get past records sharing one update time.
const MAX_PAGE_GROWTH: u32 = 16;

/// Configuration of an HTTP poll source.
///
/// ```toml
/// url = "https://12345.example.gov.cn/api/v1/workorders"
/// headers = { "X-Api-Key" = "…" }
/// records_pointer = "/data/items"
/// record_id_pointer = "/ticket_no"
/// updated_pointer = "/updated_at"
/// cursor = { kind = "updated_since", param = "updated_since", time_format = "%Y-%m-%d %H:%M:%S" }
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpPollConfig {
    /// The API endpoint. Fixed query parameters may be part of it (`…/workorders?type=complaint`).
    pub url: String,
    /// `GET` (the default) or `POST`. With `POST`, the cursor and page size go in a JSON body instead of the
    /// query string.
    #[serde(default)]
    pub method: HttpMethod,
    /// Headers sent with every request, e.g. `{ "X-Api-Key" = "…" }`. Their values never appear in logs or
    /// errors.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How the hub asks for what is new: `updated_since` or `page_token` (see the module docs).
    pub cursor: HttpCursor,
    /// JSON pointer to the array of records in a response, e.g. `/data/items`; `""` if the response is the
    /// array itself.
    pub records_pointer: String,
    /// JSON pointer to a record's id within the record, e.g. `/ticket_no`.
    pub record_id_pointer: String,
    /// JSON pointer to a record's update time within the record, e.g. `/updated_at`. Required by the
    /// `updated_since` cursor.
    #[serde(default)]
    pub updated_pointer: Option<String>,
    /// How many records to ask for per page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// The name of the page size parameter; `""` to send none (then set `page_size` to the API's own page
    /// size, so the hub knows when a page is full).
    #[serde(default = "default_page_size_param")]
    pub page_size_param: String,
    /// How long to wait before asking again once everything has been read, e.g. `"30s"`.
    #[serde(
        default = "default_poll_interval",
        deserialize_with = "deserialize_duration"
    )]
    pub poll_interval: Duration,
    /// The longest one request may take, connecting included.
    #[serde(default = "default_timeout", deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
}

/// The HTTP method of the requests.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum HttpMethod {
    /// Parameters in the query string.
    #[default]
    #[serde(rename = "GET", alias = "get")]
    Get,
    /// Parameters in a JSON body.
    #[serde(rename = "POST", alias = "post")]
    Post,
}

/// How the hub asks the API for what is new.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpCursor {
    /// A parameter carrying the update time of the newest record seen.
    UpdatedSince {
        /// The parameter's name.
        #[serde(default = "default_updated_since_param")]
        param: String,
        /// How records write their update time, which is also how the parameter is sent: a pattern such as
        /// `%Y-%m-%d %H:%M:%S` (the default) or `%Y%m%d%H%M%S`, or `rfc3339`, `unix` (seconds) or
        /// `unix_ms` (milliseconds).
        #[serde(default = "default_time_format")]
        time_format: String,
        /// The time to start from when there is no checkpoint, written in `time_format`. Without it, the first
        /// request has no time parameter and the API should answer with everything.
        #[serde(default)]
        start: Option<String>,
    },
    /// A next-page token in each response, sent back in the next request.
    PageToken {
        /// The parameter's name.
        #[serde(default = "default_page_token_param")]
        param: String,
        /// JSON pointer to the next-page token in a response, e.g. `/data/next_page_token`. A missing, null
        /// or empty token means there is no next page yet.
        next_pointer: String,
    },
}

fn default_page_size() -> u32 {
    100
}

fn default_page_size_param() -> String {
    "page_size".to_owned()
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_updated_since_param() -> String {
    "updated_since".to_owned()
}

fn default_page_token_param() -> String {
    "page_token".to_owned()
}

fn default_time_format() -> String {
    "%Y-%m-%d %H:%M:%S".to_owned()
}

impl fmt::Debug for HttpPollConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&String> = self.headers.keys().collect();
        f.debug_struct("HttpPollConfig")
            .field("url", &redact_url(&self.url))
            .field("method", &self.method)
            .field("headers", &header_names)
            .field("cursor", &self.cursor)
            .field("records_pointer", &self.records_pointer)
            .field("record_id_pointer", &self.record_id_pointer)
            .field("updated_pointer", &self.updated_pointer)
            .field("page_size", &self.page_size)
            .field("page_size_param", &self.page_size_param)
            .field("poll_interval", &self.poll_interval)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An HTTP poll configuration that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpPollConfigError {
    /// The URL is not an absolute `http` or `https` URL.
    #[error("url {0:?} is not an absolute http:// or https:// URL")]
    BadUrl(String),
    /// A header name or value is not valid in HTTP.
    #[error("header {0:?}: invalid name or value")]
    BadHeader(String),
    /// A JSON pointer does not start with `/` (and is not empty).
    #[error("{field} {pointer:?} is not a JSON pointer (it starts with `/`, e.g. `/data/items`)")]
    BadPointer {
        /// The config field.
        field: &'static str,
        /// The value given.
        pointer: String,
    },
    /// The `updated_since` cursor needs `updated_pointer`.
    #[error(
        "the updated_since cursor needs updated_pointer (where a record keeps its update time)"
    )]
    MissingUpdatedPointer,
    /// The time format is not a valid pattern.
    #[error("time_format {0:?} is not rfc3339, unix, unix_ms or a valid pattern such as %Y-%m-%d %H:%M:%S")]
    BadTimeFormat(String),
    /// The configured start cannot be read with the time format.
    #[error("start {start:?} does not match time_format {format:?}")]
    BadStart {
        /// The start given.
        start: String,
        /// The time format.
        format: String,
    },
    /// `page_size` is 0.
    #[error("page_size must be at least 1")]
    ZeroPageSize,
    /// The HTTP client could not be set up.
    #[error("HTTP client: {0}")]
    Client(String),
}

impl From<HttpPollConfigError> for SourceError {
    fn from(e: HttpPollConfigError) -> Self {
        SourceError::fatal(format!("HTTP poll configuration: {e}"))
    }
}

fn check_pointer(field: &'static str, pointer: &str) -> Result<(), HttpPollConfigError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(HttpPollConfigError::BadPointer {
            field,
            pointer: pointer.to_owned(),
        })
    }
}

impl HttpPollConfig {
    /// Checks the configuration and builds the source. Does not contact the API.
    pub fn build(&self) -> Result<HttpPollSource, HttpPollConfigError> {
        let masked_url = redact_url(&self.url);
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => return Err(HttpPollConfigError::BadUrl(masked_url)),
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let bad = || HttpPollConfigError::BadHeader(name.clone());
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let mut header_value = HeaderValue::from_str(value).map_err(|_| bad())?;
            header_value.set_sensitive(true);
            headers.insert(header_name, header_value);
        }
        check_pointer("records_pointer", &self.records_pointer)?;
        check_pointer("record_id_pointer", &self.record_id_pointer)?;
        if self.page_size == 0 {
            return Err(HttpPollConfigError::ZeroPageSize);
        }
        let mode = match &self.cursor {
            HttpCursor::UpdatedSince {
                param,
                time_format,
                start,
            } => {
                let updated_pointer = self
                    .updated_pointer
                    .clone()
                    .ok_or(HttpPollConfigError::MissingUpdatedPointer)?;
                check_pointer("updated_pointer", &updated_pointer)?;
                let format = TimeFormat::parse(time_format)?;
                let start = match start {
                    None => None,
                    Some(s) => {
                        let raw = Value::String(s.clone());
                        let key =
                            format
                                .key(&raw)
                                .ok_or_else(|| HttpPollConfigError::BadStart {
                                    start: s.clone(),
                                    format: time_format.clone(),
                                })?;
                        Some(Since { raw, key })
                    }
                };
                Mode::UpdatedSince {
                    param: param.clone(),
                    format,
                    updated_pointer,
                    start,
                }
            }
            HttpCursor::PageToken {
                param,
                next_pointer,
            } => {
                check_pointer("next_pointer", next_pointer)?;
                Mode::PageToken {
                    param: param.clone(),
                    next_pointer: next_pointer.clone(),
                }
            }
        };
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| HttpPollConfigError::Client(error_chain(&e)))?;
        let mut secrets: Vec<String> = self.headers.values().cloned().collect();
        if let Ok(u) = reqwest::Url::parse(&self.url) {
            secrets.extend(u.password().map(str::to_owned));
            secrets.extend(u.query().map(str::to_owned));
        }
        Ok(HttpPollSource {
            client,
            url: self.url.clone(),
            masked_url,
            method: self.method,
            mode,
            records_pointer: self.records_pointer.clone(),
            record_id_pointer: self.record_id_pointer.clone(),
            page_size: self.page_size,
            page_size_param: self.page_size_param.clone(),
            poll_interval: self.poll_interval,
            timeout: self.timeout,
            secrets,
        })
    }
}

/// How update times are written.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TimeFormat {
    Rfc3339,
    Unix,
    UnixMs,
    Pattern(String),
}

impl TimeFormat {
    fn parse(text: &str) -> Result<TimeFormat, HttpPollConfigError> {
        match text {
            "rfc3339" => Ok(TimeFormat::Rfc3339),
            "unix" => Ok(TimeFormat::Unix),
            "unix_ms" => Ok(TimeFormat::UnixMs),
            pattern => {
                let valid = !pattern.is_empty()
                    && StrftimeItems::new(pattern).all(|item| !matches!(item, Item::Error));
                if valid {
                    Ok(TimeFormat::Pattern(pattern.to_owned()))
                } else {
                    Err(HttpPollConfigError::BadTimeFormat(pattern.to_owned()))
                }
            }
        }
    }

    /// An ordering key for an update time: microseconds since the epoch (times without an offset are
    /// taken as UTC, which orders them correctly among themselves).
    fn key(&self, value: &Value) -> Option<i64> {
        let number = || match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match self {
            TimeFormat::Unix => number()?.checked_mul(1_000_000),
            TimeFormat::UnixMs => number()?.checked_mul(1_000),
            TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(value.as_str()?.trim())
                .ok()
                .map(|t| t.timestamp_micros()),
            TimeFormat::Pattern(p) => {
                let text = value.as_str()?.trim();
                DateTime::parse_from_str(text, p)
                    .map(|t| t.timestamp_micros())
                    .or_else(|_| {
                        NaiveDateTime::parse_from_str(text, p)
                            .map(|t| t.and_utc().timestamp_micros())
                    })
                    .ok()
                    .or_else(|| {
                        NaiveDate::parse_from_str(text, p)
                            .ok()
                            .and_then(|d| d.and_hms_opt(0, 0, 0))
                            .map(|t| t.and_utc().timestamp_micros())
                    })
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Since {
    /// The time as the records write it, and as it is sent.
    raw: Value,
    /// Its ordering key.
    key: i64,
}

#[derive(Clone, Debug)]
enum Mode {
    UpdatedSince {
        param: String,
        format: TimeFormat,
        updated_pointer: String,
        start: Option<Since>,
    },
    PageToken {
        param: String,
        next_pointer: String,
    },
}

/// The cursor between pages and runs.
#[derive(Clone, Debug, PartialEq)]
enum CursorState {
    UpdatedSince {
        since: Option<Since>,
        seen_ids: BTreeSet<String>,
    },
    PageToken {
        token: Option<String>,
        seen_ids: BTreeSet<String>,
    },
}

impl CursorState {
    fn to_json(&self) -> Value {
        match self {
            CursorState::UpdatedSince { since, seen_ids } => serde_json::json!({
                "updated_since": since.as_ref().map_or(Value::Null, |s| s.raw.clone()),
                "seen_ids": seen_ids,
            }),
            CursorState::PageToken { token, seen_ids } => serde_json::json!({
                "page_token": token,
                "seen_ids": seen_ids,
            }),
        }
    }
}

/// A running HTTP poll source (see the [module docs](self)).
pub struct HttpPollSource {
    client: reqwest::Client,
    url: String,
    masked_url: String,
    method: HttpMethod,
    mode: Mode,
    records_pointer: String,
    record_id_pointer: String,
    page_size: u32,
    page_size_param: String,
    poll_interval: Duration,
    timeout: Duration,
    secrets: Vec<String>,
}

impl fmt::Debug for HttpPollSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPollSource")
            .field("url", &self.masked_url)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// One page as received.
struct Page {
    /// Each record's exact bytes.
    records: Vec<Box<RawValue>>,
    /// The whole body, parsed.
    body: Value,
}

/// Why a page could not be had.
enum PageError {
    /// Not an answer with records: the body goes to the dead-letter topic, then a transient error.
    BadBody { body: Vec<u8>, reason: String },
    /// Any other failure.
    Failed(SourceError),
}

impl From<SourceError> for PageError {
    fn from(e: SourceError) -> Self {
        PageError::Failed(e)
    }
}

/// A pointer's reference tokens, unescaped (`~1` is `/`, `~0` is `~`).
fn pointer_tokens(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
}

/// The exact JSON text at `pointer` in `body`.
fn raw_at(body: &str, pointer: &str) -> Option<Box<RawValue>> {
    let mut current: Box<RawValue> = serde_json::from_str(body).ok()?;
    for token in pointer_tokens(pointer) {
        let text = current.get();
        current = if text.starts_with('{') {
            let mut object: HashMap<String, Box<RawValue>> = serde_json::from_str(text).ok()?;
            object.remove(&token)?
        } else if text.starts_with('[') {
            let array: Vec<Box<RawValue>> = serde_json::from_str(text).ok()?;
            let index: usize = token.parse().ok()?;
            array.into_iter().nth(index)?
        } else {
            return None;
        };
    }
    Some(current)
}

/// A record's id or token as text: strings as they are, numbers in decimal.
fn as_key(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

impl HttpPollSource {
    fn scrub(&self, message: String) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        scrub(message, &secrets)
    }

    fn initial_state(&self, checkpoint: Option<Value>) -> Result<CursorState, SourceError> {
        let bad = |checkpoint: &Value, why: &str| {
            SourceError::fatal(format!(
                "HTTP poll of {}: the checkpoint {checkpoint} does not fit: {why}",
                self.masked_url
            ))
        };
        let seen_ids = |checkpoint: &Value| -> BTreeSet<String> {
            checkpoint
                .get("seen_ids")
                .and_then(Value::as_array)
                .map(|ids| ids.iter().filter_map(|v| as_key(Some(v))).collect())
                .unwrap_or_default()
        };
        match (&self.mode, checkpoint) {
            (Mode::UpdatedSince { start, .. }, None) => Ok(CursorState::UpdatedSince {
                since: start.clone(),
                seen_ids: BTreeSet::new(),
            }),
            (Mode::PageToken { .. }, None) => Ok(CursorState::PageToken {
                token: None,
                seen_ids: BTreeSet::new(),
            }),
            (Mode::UpdatedSince { format, .. }, Some(checkpoint)) => {
                let since = match checkpoint.get("updated_since") {
                    Some(Value::Null) => None,
                    Some(raw) => {
                        let key = format.key(raw).ok_or_else(|| {
                            bad(&checkpoint, "updated_since does not match time_format")
                        })?;
                        Some(Since {
                            raw: raw.clone(),
                            key,
                        })
                    }
                    None => return Err(bad(&checkpoint, "no updated_since")),
                };
                Ok(CursorState::UpdatedSince {
                    since,
                    seen_ids: seen_ids(&checkpoint),
                })
            }
            (Mode::PageToken { .. }, Some(checkpoint)) => {
                let token = match checkpoint.get("page_token") {
                    Some(Value::Null) => None,
                    Some(t) => Some(
                        as_key(Some(t))
                            .ok_or_else(|| bad(&checkpoint, "page_token is not text"))?,
                    ),
                    None => return Err(bad(&checkpoint, "no page_token")),
                };
                Ok(CursorState::PageToken {
                    token,
                    seen_ids: seen_ids(&checkpoint),
                })
            }
        }
    }

    /// The request parameters for the next page.
    fn params(&self, state: &CursorState, page_size: u32) -> Vec<(String, Value)> {
        let mut params = Vec::new();
        match (&self.mode, state) {
            (
                Mode::UpdatedSince { param, .. },
                CursorState::UpdatedSince { since: Some(s), .. },
            ) => {
                params.push((param.clone(), s.raw.clone()));
            }
            (Mode::PageToken { param, .. }, CursorState::PageToken { token: Some(t), .. }) => {
                params.push((param.clone(), Value::String(t.clone())));
            }
            _ => {}
        }
        if !self.page_size_param.is_empty() {
            params.push((self.page_size_param.clone(), Value::from(page_size)));
        }
        params
    }

    async fn fetch_page(&self, params: &[(String, Value)]) -> Result<Page, PageError> {
        let request = match self.method {
            HttpMethod::Get => {
                let query: Vec<(&str, String)> = params
                    .iter()
                    .map(|(k, v)| {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.as_str(), text)
                    })
                    .collect();
                self.client.get(&self.url).query(&query)
            }
            HttpMethod::Post => {
                let body: Map<String, Value> = params.iter().cloned().collect();
                self.client.post(&self.url).json(&body)
            }
        };
        let mut response = request.send().await.map_err(|e| self.request_error(e))?;
        let status = response.status();
        if !status.is_success() {
            let message = format!(
                "HTTP poll of {}: the API answered HTTP {status}",
                self.masked_url
            );
            let fatal = status.is_client_error()
                && status != reqwest::StatusCode::REQUEST_TIMEOUT
                && status != reqwest::StatusCode::TOO_MANY_REQUESTS;
            return Err(PageError::Failed(if fatal {
                SourceError::fatal(message)
            } else {
                SourceError::transient(message)
            }));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.request_error(e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(PageError::Failed(SourceError::transient(format!(
                    "HTTP poll of {}: the answer is larger than {MAX_BODY_BYTES} bytes; lower page_size",
                    self.masked_url
                ))));
            }
            body.extend_from_slice(&chunk);
        }
        let text = match std::str::from_utf8(&body) {
            Ok(t) => t,
            Err(_) => {
                return Err(PageError::BadBody {
                    body,
                    reason: "the answer is not UTF-8 JSON".to_owned(),
                })
            }
        };
        let parsed: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return Err(PageError::BadBody {
                    reason: format!("the answer is not JSON: {e}"),
                    body,
                })
            }
        };
        let records = raw_at(text, &self.records_pointer)
            .and_then(|raw| serde_json::from_str::<Vec<Box<RawValue>>>(raw.get()).ok());
        match records {
            Some(records) => Ok(Page {
                records,
                body: parsed,
            }),
            None => Err(PageError::BadBody {
                reason: format!(
                    "the answer has no array of records at {:?}",
                    self.records_pointer
                ),
                body,
            }),
        }
    }

    fn request_error(&self, e: reqwest::Error) -> PageError {
        let kind = if e.is_timeout() {
            format!("no answer within {:?}", self.timeout)
        } else if e.is_connect() {
            "could not connect".to_owned()
        } else {
            "the request failed".to_owned()
        };
        let e = e.without_url();
        let message = self.scrub(format!(
            "HTTP poll of {}: {kind}: {}",
            self.masked_url,
            error_chain(&e)
        ));
        PageError::Failed(SourceError::transient(message))
    }

    fn origin(&self, page: u64) -> String {
        format!("{} page {page}", self.masked_url)
    }
}

/// What one page brought, and the cursor after it.
struct PageResult {
    inputs: Vec<RawInput>,
    next: CursorState,
    /// Whether to ask for the next page right away (the page was full, or there is a next page).
    more: bool,
    /// A full page of records already read, all at the boundary time: asking again brings nothing new.
    stuck: bool,
}

impl HttpPollSource {
    fn process(
        &self,
        state: &CursorState,
        page: Page,
        page_no: u64,
        page_size: u32,
        connector: &str,
    ) -> Result<PageResult, SourceError> {
        let origin = self.origin(page_no);
        let full = page.records.len() >= page_size as usize;
        let mut inputs = Vec::new();
        match (&self.mode, state) {
            (
                Mode::UpdatedSince {
                    format,
                    updated_pointer,
                    ..
                },
                CursorState::UpdatedSince { since, seen_ids },
            ) => {
                let old_key = since.as_ref().map(|s| s.key);
                let mut newest = since.clone();
                let mut at_newest: Vec<(i64, String)> = Vec::new();
                let mut timeless = 0usize;
                for (i, raw) in page.records.iter().enumerate() {
                    let input = RawInput::from_json_bytes(
                        raw.get().as_bytes().to_vec(),
                        format!("{origin} item {i}"),
                    );
                    let record = input.parsed.as_ref().ok();
                    let id = as_key(record.and_then(|r| r.pointer(&self.record_id_pointer)));
                    let updated = record.and_then(|r| r.pointer(updated_pointer)).cloned();
                    let key = updated.as_ref().and_then(|u| format.key(u));
                    let already = match (&id, key, old_key) {
                        (Some(id), Some(k), Some(old)) => k <= old && seen_ids.contains(id),
                        _ => false,
                    };
                    if !already {
                        inputs.push(input);
                    }
                    match (key, updated) {
                        (Some(k), Some(u)) => {
                            if newest.as_ref().is_none_or(|n| k > n.key) {
                                newest = Some(Since { raw: u, key: k });
                            }
                            if let Some(id) = id {
                                at_newest.push((k, id));
                            }
                        }
                        _ => timeless += 1,
                    }
                }
                if timeless > 0 {
                    warn!(
                        connector = %connector,
                        page = page_no,
                        records = timeless,
                        "Records without a readable update time: sent on, but they do not move the cursor."
                    );
                }
                let newest_key = newest.as_ref().map(|n| n.key);
                let mut next_seen: BTreeSet<String> = at_newest
                    .into_iter()
                    .filter(|(k, _)| Some(*k) == newest_key)
                    .map(|(_, id)| id)
                    .collect();
                if newest_key == old_key {
                    next_seen.extend(seen_ids.iter().cloned());
                }
                let stuck = full && inputs.is_empty() && newest_key == old_key;
                Ok(PageResult {
                    inputs,
                    next: CursorState::UpdatedSince {
                        since: newest,
                        seen_ids: next_seen,
                    },
                    more: full,
                    stuck,
                })
            }
            (Mode::PageToken { next_pointer, .. }, CursorState::PageToken { token, seen_ids }) => {
                let mut page_ids = BTreeSet::new();
                for (i, raw) in page.records.iter().enumerate() {
                    let input = RawInput::from_json_bytes(
                        raw.get().as_bytes().to_vec(),
                        format!("{origin} item {i}"),
                    );
                    let id = as_key(
                        input
                            .parsed
                            .as_ref()
                            .ok()
                            .and_then(|r| r.pointer(&self.record_id_pointer)),
                    );
                    let already = id.as_ref().is_some_and(|id| seen_ids.contains(id));
                    if let Some(id) = id {
                        page_ids.insert(id);
                    }
                    if !already {
                        inputs.push(input);
                    }
                }
                let next_token =
                    as_key(page.body.pointer(next_pointer)).filter(|t| Some(t) != token.as_ref());
                let next = match &next_token {
                    Some(t) => CursorState::PageToken {
                        token: Some(t.clone()),
                        seen_ids: BTreeSet::new(),
                    },
                    None => {
                        let mut seen = seen_ids.clone();
                        seen.extend(page_ids);
                        CursorState::PageToken {
                            token: token.clone(),
                            seen_ids: seen,
                        }
                    }
                };
                Ok(PageResult {
                    inputs,
                    next,
                    more: next_token.is_some() && (full || self.page_size_param.is_empty()),
                    stuck: false,
                })
            }
            _ => Err(SourceError::fatal(
                "HTTP poll: cursor state does not match the cursor kind",
            )),
        }
    }
}

#[async_trait]
impl Source for HttpPollSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), SourceError> {
        let mut shutdown = ctx.shutdown.clone();
        let checkpoint = ctx.checkpoints.load().await?;
        let mut state = self.initial_state(checkpoint)?;
        info!(connector = %ctx.connector, url = %self.masked_url, "HTTP poll started.");
        let mut page_no: u64 = 0;
        let mut page_size = self.page_size;
        loop {
            if shutdown.is_requested() {
                return Ok(());
            }
            page_no += 1;
            let params = self.params(&state, page_size);
            let fetched = tokio::select! {
                page = self.fetch_page(&params) => page,
                () = shutdown.wait() => return Ok(()),
            };
            let page = match fetched {
                Ok(page) => page,
                Err(PageError::Failed(e)) => return Err(e),
                Err(PageError::BadBody { body, reason }) => {
                    let reject = RawInput {
                        original: body,
                        parsed: Err(reason.clone()),
                        origin: self.origin(page_no),
                    };
                    ctx.sink.submit(vec![reject]).await?;
                    return Err(SourceError::transient(format!(
                        "HTTP poll of {}: {reason} (the answer is on the dead-letter topic)",
                        self.masked_url
                    )));
                }
            };
            let received = page.records.len();
            let result = self.process(&state, page, page_no, page_size, &ctx.connector)?;
            if result.stuck {
                let since = match &state {
                    CursorState::UpdatedSince { since: Some(s), .. } => s.raw.clone(),
                    _ => Value::Null,
                };
                let limit = self.page_size.saturating_mul(MAX_PAGE_GROWTH);
                if self.page_size_param.is_empty() || page_size >= limit {
                    return Err(SourceError::fatal(format!(
                        "HTTP poll of {}: more than {page_size} records share the update time {since}, so paging \
                         by update time cannot get past them; raise page_size",
                        self.masked_url
                    )));
                }
                page_size = page_size.saturating_mul(2).min(limit);
                warn!(
                    connector = %ctx.connector,
                    page_size,
                    since = %since,
                    "A whole page shares one update time: asking again with a larger page."
                );
                continue;
            }
            // A grown page stays grown while the boundary time stays the same.
            let advanced = match (&state, &result.next) {
                (
                    CursorState::UpdatedSince { since: before, .. },
                    CursorState::UpdatedSince { since: after, .. },
                ) => before != after,
                _ => true,
            };
            if advanced {
                page_size = self.page_size;
            }
            let records = result.inputs.len();
            if records > 0 {
                let report = ctx.sink.submit(result.inputs).await?;
                report.log_acknowledged(&ctx.connector, records);
            } else {
                debug!(connector = %ctx.connector, page = page_no, received, "No new records.");
            }
            if result.next != state {
                ctx.checkpoints.save(&result.next.to_json()).await?;
                state = result.next;
            }
            if !result.more && sleep_or_shutdown(&mut shutdown, self.poll_interval).await {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_records_keep_their_exact_bytes() {
        let body = r#"{"data": {"items": [{"b": 1.10, "a": "张三"}, {"x": [1, 2]}]}, "code": 0}"#;
        let raw = raw_at(body, "/data/items")
            .and_then(|r| serde_json::from_str::<Vec<Box<RawValue>>>(r.get()).ok());
        let texts: Option<Vec<String>> =
            raw.map(|r| r.iter().map(|v| v.get().to_owned()).collect());
        assert_eq!(
            texts,
            Some(vec![
                r#"{"b": 1.10, "a": "张三"}"#.to_owned(),
                r#"{"x": [1, 2]}"#.to_owned()
            ])
        );
        assert_eq!(
            raw_at(r#"[1, 2]"#, "").map(|r| r.get().to_owned()),
            Some("[1, 2]".to_owned())
        );
        assert_eq!(
            raw_at(r#"{"a~/b": [7]}"#, "/a~0~1b/0").map(|r| r.get().to_owned()),
            Some("7".to_owned())
        );
        assert!(raw_at(r#"{"data": {}}"#, "/data/items").is_none());
        assert!(raw_at("<html>", "/data").is_none());
    }

    #[test]
    fn time_formats_order_times() {
        let f = |text: &str| TimeFormat::parse(text);
        let pattern = f("%Y-%m-%d %H:%M:%S");
        let Ok(pattern) = pattern else {
            panic!("{pattern:?}")
        };
        let a = pattern.key(&serde_json::json!("2024-05-01 08:00:00"));
        let b = pattern.key(&serde_json::json!("2024-05-01 08:00:01"));
        assert!(a.is_some() && a < b);
        assert_eq!(pattern.key(&serde_json::json!("yesterday")), None);
        assert_eq!(
            f("unix").map(|u| u.key(&serde_json::json!(1714550400))),
            Ok(Some(1_714_550_400_000_000))
        );
        assert_eq!(
            f("rfc3339").map(|u| u.key(&serde_json::json!("2024-05-01T08:00:00+08:00"))),
            Ok(Some(1_714_521_600_000_000))
        );
        assert!(f("%Q").is_err());
    }

    #[test]
    fn config_checks_and_debug_hides_secrets() {
        let config: Result<HttpPollConfig, _> = serde_json::from_value(serde_json::json!({
            "url": "http://127.0.0.1:1/api?key=querysecret",
            "headers": {"X-Api-Key": "headersecret"},
            "cursor": {"kind": "updated_since"},
            "records_pointer": "/data/items",
            "record_id_pointer": "/ticket_no",
        }));
        let Ok(config) = config else {
            panic!("{config:?}")
        };
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("headersecret") && !debug.contains("querysecret"),
            "{debug}"
        );
        assert!(matches!(
            config.build(),
            Err(HttpPollConfigError::MissingUpdatedPointer)
        ));
        let unknown: Result<HttpPollConfig, _> = serde_json::from_value(serde_json::json!({
            "url": "http://127.0.0.1:1/api",
            "cursor": {"kind": "page_token", "next_pointer": "/next", "nxt": 1},
            "records_pointer": "/data/items",
            "record_id_pointer": "/ticket_no",
        }));
        assert!(
            matches!(&unknown, Err(e) if e.to_string().contains("nxt")),
            "{unknown:?}"
        );
    }
}
