//! The door every HTTP surface shares: authentication into a [`Principal`], per-credential rate limits and
//! request timeouts, applied as one middleware per surface ([`Access::layer`]).
//!
//! - **Default deny.** Ingest, admin and pull need credentials; the registry needs them unless
//!   `[registry] anonymous_read = true` opens reads. Only `/healthz`, `/readyz` and `/metrics` are outside any
//!   surface and answer an anonymous caller. A presented but wrong credential is always a 401, never a silent
//!   downgrade to anonymous.
//! - **Rate limits per credential** ([`RateLimiter`]): a token bucket per (surface, principal) — per client
//!   address for anonymous registry reads and for refused requests (token guessing) — so a client over its
//!   limit gets `429` with `Retry-After` and never slows another. Settings in `[limits]`.
//! - **Guessing costs** ([`FailureThrottle`]): an address that fails authentication `[limits]
//!   auth_failures.max_failures` times within `window` is answered `429` for `block` on every surface and on
//!   `/metrics` — before any credential it presents is checked, so the right token is refused too while the
//!   block lasts.
//! - **Timeouts**: a request whose handler has not answered within `[limits] request_timeout` gets a `503`.
//!   (Header read time, header size and TLS handshakes are bounded by the connection layer,
//!   [`crate::listener`].)
//!
//! The middleware puts a [`Caller`] into the request's extensions; handlers take the [`Principal`] extractor
//! (which fails closed) or the [`Caller`] itself where anonymous reads are allowed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tracing::warn;

pub use crate::auth::Principal;
use crate::auth::{AuthError, Authenticator, ClientCertificate};
use unsilo_registry::api::RegistryCaller;
use unsilo_schemas::names;

/// The surfaces of the hub, each with its own rate limit and error dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Surface {
    /// `POST /ingest/{connector}`: push sources.
    Ingest,
    /// The Confluent-dialect schema registry.
    Registry,
    /// `/admin/…`: operators and agencies.
    Admin,
    /// `/v1/subscriptions/…`: agencies pulling their records.
    Pull,
    /// `/console/…`: the operators' console and the agencies' portal (session cookies).
    Console,
}

impl Surface {
    /// The name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Registry => "registry",
            Self::Admin => "admin",
            Self::Pull => "pull",
            Self::Console => "console",
        }
    }

    /// An error in this surface's dialect: Confluent's `{"error_code": <int>, "message"}` for the registry,
    /// `{"error": <code>, "message"}` elsewhere. A 401 carries the challenge saying which credentials work
    /// (Basic is offered only by the registry).
    pub fn error(self, status: StatusCode, code: &str, message: &str) -> Response {
        let body = match self {
            Self::Registry => {
                // Confluent answers 401/403/429 with error codes 40101, 40301, 42901.
                let numeric = u64::from(status.as_u16()) * 100 + 1;
                json!({ "error_code": numeric, "message": message })
            }
            Self::Ingest => json!({ "error_code": code, "message": message }),
            Self::Admin | Self::Pull | Self::Console => {
                json!({ "error": code, "message": message })
            }
        };
        let mut response = (status, Json(body)).into_response();
        if self == Self::Registry {
            // Confluent's clients expect the registry's own content type on errors too.
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(unsilo_registry::api::CONTENT_TYPE_V1),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            // Basic only where Confluent's clients need it: a browser that is offered Basic caches what it was
            // given and sends it with any later request, a cross-site form's included.
            let challenge = if self == Self::Registry {
                "Bearer, Basic realm=\"unsilo\""
            } else {
                "Bearer realm=\"unsilo\""
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// The authenticated caller of a request: `None` for an anonymous one (only where the surface allows it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            // A route mounted without the access layer: fail closed.
            Surface::Admin.error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "credentials are required",
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller(Some(p)) => Ok(p),
            Caller(None) => Err(Surface::Admin.error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                &AuthError::Missing.to_string(),
            )),
        }
    }
}

/// What a caller may do in the schema registry (the registry API and the console's schema pages apply it):
/// operators read everything, and the system administrator writes (but never the hub-owned subjects); an agency reads the shared `std.*`
/// subjects and its own `sub.<agency>.*` view subjects; an anonymous caller (only where `[registry]
/// anonymous_read` lets one in) the shared ones; a push source nothing (`None`).
pub fn registry_caller(principal: Option<&Principal>) -> Option<RegistryCaller> {
    Some(match principal {
        Some(operator @ Principal::Operator { name, .. }) => RegistryCaller {
            name: format!("operator:{name}"),
            writer: crate::roles::allows(operator, crate::roles::Action::WriteSchemas),
            readable: None,
            anonymous: false,
        },
        Some(Principal::Agency(id)) => RegistryCaller {
            name: format!("agency:{id}"),
            writer: false,
            readable: Some(vec![
                names::STD_PREFIX.into(),
                names::agency_topic_prefix(id),
            ]),
            anonymous: false,
        },
        // A provider's reviewer reads the shared schemas of the requests it decides.
        Some(Principal::Reviewer { agency, name }) => RegistryCaller {
            name: format!("reviewer:{agency}/{name}"),
            writer: false,
            readable: Some(vec![names::STD_PREFIX.into()]),
            anonymous: false,
        },
        None => RegistryCaller {
            name: "anonymous".into(),
            writer: false,
            readable: Some(vec![names::STD_PREFIX.into()]),
            anonymous: true,
        },
        Some(Principal::PushSource(_) | Principal::Hub | Principal::Edge(_)) => return None,
    })
}

/// One token bucket's settings: a sustained rate and a burst.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once before the rate applies.
    pub burst: u32,
}

/// `[limits]`: rate limits per credential and surface, body and header sizes, timeouts.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Pushes per second per push source (each request is a batch). Default 500/s, burst 1000.
    #[serde(default = "default_ingest")]
    pub ingest: RateLimit,
    /// Pull requests per second per agency. Default 100/s, burst 200.
    #[serde(default = "default_pull")]
    pub pull: RateLimit,
    /// Admin requests per second per operator or agency. Default 50/s, burst 100.
    #[serde(default = "default_admin")]
    pub admin: RateLimit,
    /// Registry requests per second per credential (per client address when anonymous). Default 200/s, burst 400.
    #[serde(default = "default_registry")]
    pub registry: RateLimit,
    /// Largest request body on the admin, pull and registry surfaces (default 1 MiB).
    #[serde(default = "default_body")]
    pub max_body_bytes: usize,
    /// Largest ingest body (default 16 MiB); larger batches should be split.
    #[serde(default = "default_ingest_body")]
    pub max_ingest_body_bytes: usize,
    /// Event streams (`/v1/subscriptions/{id}/events`) one agency may hold at once (default 4).
    #[serde(default = "default_streams_per_agency")]
    pub max_event_streams_per_agency: usize,
    /// How long one event stream lives before the hub closes it (default `"1h"`; the client resumes with
    /// `Last-Event-ID`).
    #[serde(
        default = "default_stream_lifetime",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub event_stream_lifetime: Duration,
    /// Most connections open at once (default 4096); more are closed as soon as they are accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most records in one pushed batch (default 20,000); a larger batch is refused whole with a 413.
    #[serde(default = "default_max_records_per_push")]
    pub max_records_per_push: usize,
    /// Largest request head — request line and headers together (default 32 KiB); larger ones get a 431.
    #[serde(default = "default_header_bytes")]
    pub max_header_bytes: usize,
    /// Longest time a handler may take to answer (default `"60s"`; a pull's long poll waits at most 30 s).
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub request_timeout: Duration,
    /// Longest time a client may take to send a request's headers, or a TLS handshake (default `"10s"`).
    #[serde(
        default = "default_header_timeout",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub header_read_timeout: Duration,
    /// Failed authentications per client address before the address is refused for a while.
    #[serde(default)]
    pub auth_failures: AuthFailureLimit,
}

/// `[limits] auth_failures`: how many failed authentications from one address are tolerated, and for how long
/// the address is then refused (before its credentials are even checked).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFailureLimit {
    /// Failures within `window` that block the address (default 10).
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// The window failures are counted in (default `"60s"`).
    #[serde(
        default = "default_failure_window",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub window: Duration,
    /// How long a blocked address is refused (default `"5m"`).
    #[serde(
        default = "default_failure_block",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub block: Duration,
}

fn default_max_failures() -> u32 {
    10
}
fn default_failure_window() -> Duration {
    Duration::from_secs(60)
}
fn default_failure_block() -> Duration {
    Duration::from_secs(300)
}

impl Default for AuthFailureLimit {
    fn default() -> Self {
        Self {
            max_failures: default_max_failures(),
            window: default_failure_window(),
            block: default_failure_block(),
        }
    }
}

/// Failed authentications by client address (see the module docs): an address past its allowance is blocked
/// for a while, whatever it presents.
#[derive(Debug, Default)]
pub struct FailureThrottle {
    addresses: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
    blocked_until: Option<Instant>,
}

impl FailureThrottle {
    /// How long `address` stays blocked, if it is.
    pub fn blocked(&self, address: &str) -> Option<Duration> {
        self.blocked_at(address, Instant::now())
    }

    fn blocked_at(&self, address: &str, now: Instant) -> Option<Duration> {
        let addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let until = addresses.get(address)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failed authentication from `address`; returns the block it now has, if this one started it.
    pub fn failed(&self, address: &str, limit: AuthFailureLimit) -> Option<Duration> {
        self.failed_at(address, limit, Instant::now())
    }

    fn failed_at(&self, address: &str, limit: AuthFailureLimit, now: Instant) -> Option<Duration> {
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if addresses.len() > SWEEP_ABOVE {
            addresses.retain(|_, f| {
                now.duration_since(f.since) < limit.window
                    || f.blocked_until.is_some_and(|u| u > now)
            });
        }
        let f = addresses.entry(address.to_owned()).or_insert(Failures {
            count: 0,
            since: now,
            blocked_until: None,
        });
        if now.duration_since(f.since) >= limit.window && f.blocked_until.is_none_or(|u| u <= now) {
            *f = Failures {
                count: 0,
                since: now,
                blocked_until: None,
            };
        }
        f.count = f.count.saturating_add(1);
        if f.count >= limit.max_failures && f.blocked_until.is_none_or(|u| u <= now) {
            f.blocked_until = Some(now + limit.block);
            return Some(limit.block);
        }
        None
    }
}

fn default_ingest() -> RateLimit {
    RateLimit {
        per_second: 500.0,
        burst: 1000,
    }
}
fn default_pull() -> RateLimit {
    RateLimit {
        per_second: 100.0,
        burst: 200,
    }
}
fn default_admin() -> RateLimit {
    RateLimit {
        per_second: 50.0,
        burst: 100,
    }
}
fn default_registry() -> RateLimit {
    RateLimit {
        per_second: 200.0,
        burst: 400,
    }
}
fn default_body() -> usize {
    1024 * 1024
}
fn default_ingest_body() -> usize {
    16 * 1024 * 1024
}
fn default_streams_per_agency() -> usize {
    4
}
fn default_stream_lifetime() -> Duration {
    Duration::from_secs(3600)
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_records_per_push() -> usize {
    20_000
}
fn default_header_bytes() -> usize {
    32 * 1024
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            ingest: default_ingest(),
            pull: default_pull(),
            admin: default_admin(),
            registry: default_registry(),
            max_body_bytes: default_body(),
            max_ingest_body_bytes: default_ingest_body(),
            max_records_per_push: default_max_records_per_push(),
            max_connections: default_max_connections(),
            max_event_streams_per_agency: default_streams_per_agency(),
            event_stream_lifetime: default_stream_lifetime(),
            max_header_bytes: default_header_bytes(),
            request_timeout: default_request_timeout(),
            header_read_timeout: default_header_timeout(),
            auth_failures: AuthFailureLimit::default(),
        }
    }
}

/// A `[limits]` value that cannot be used; the message names it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidLimits(pub String);

impl LimitsConfig {
    /// Checks the values; names the first unusable one.
    pub fn check(&self) -> Result<(), InvalidLimits> {
        self.problem().map_err(InvalidLimits)
    }

    fn problem(&self) -> Result<(), String> {
        for (name, l) in [
            ("ingest", self.ingest),
            ("pull", self.pull),
            ("admin", self.admin),
            ("registry", self.registry),
        ] {
            if !(l.per_second.is_finite() && l.per_second > 0.0) || l.burst == 0 {
                return Err(format!(
                    "limits.{name}: per_second must be a positive number and burst at least 1"
                ));
            }
        }
        if self.max_body_bytes < 1024 || self.max_ingest_body_bytes < 1024 {
            return Err("limits: body limits must be at least 1024 bytes".into());
        }
        if self.max_event_streams_per_agency == 0 || self.event_stream_lifetime.is_zero() {
            return Err(
                "limits: max_event_streams_per_agency must be at least 1 and event_stream_lifetime above zero"
                    .into(),
            );
        }
        if self.max_connections == 0 {
            return Err("limits.max_connections must be at least 1".into());
        }
        if self.max_records_per_push == 0 {
            return Err("limits.max_records_per_push must be at least 1".into());
        }
        if self.max_header_bytes < 8192 {
            return Err("limits.max_header_bytes must be at least 8192".into());
        }
        if self.request_timeout.is_zero() || self.header_read_timeout.is_zero() {
            return Err("limits: timeouts must be greater than zero".into());
        }
        let f = self.auth_failures;
        if f.max_failures == 0 || f.window.is_zero() || f.block.is_zero() {
            return Err(
                "limits.auth_failures: max_failures must be at least 1, window and block greater than zero"
                    .into(),
            );
        }
        Ok(())
    }

    /// The rate limit of a surface.
    pub fn rate(&self, surface: Surface) -> RateLimit {
        match surface {
            Surface::Ingest => self.ingest,
            Surface::Registry => self.registry,
            // The console is the admin API in a browser: the same budget per person.
            Surface::Admin | Surface::Console => self.admin,
            Surface::Pull => self.pull,
        }
    }
}

/// Token buckets per (surface, caller). Each check takes one short lock; buckets idle long enough to be full
/// again are forgotten, so the table does not grow with every caller ever seen.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(Surface, String), Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before idle ones are swept.
const SWEEP_ABOVE: usize = 10_000;

impl RateLimiter {
    /// Takes one request from the caller's bucket: `Err(wait)` when it is empty, with how long until a token is
    /// back.
    pub fn check(&self, surface: Surface, caller: &str, limit: RateLimit) -> Result<(), Duration> {
        self.check_at(surface, caller, limit, Instant::now())
    }

    /// [`RateLimiter::check`] at a given time (tests step the clock themselves).
    fn check_at(
        &self,
        surface: Surface,
        caller: &str,
        limit: RateLimit,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * limit.per_second
                    < f64::from(limit.burst)
            });
        }
        let bucket = buckets
            .entry((surface, caller.to_owned()))
            .or_insert(Bucket {
                tokens: f64::from(limit.burst),
                at: now,
            });
        let refill = now.duration_since(bucket.at).as_secs_f64() * limit.per_second;
        bucket.tokens = (bucket.tokens + refill).min(f64::from(limit.burst));
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / limit.per_second,
            ))
        }
    }
}

/// What the access middleware needs.
#[derive(Debug)]
pub struct Access {
    /// Turns credentials into principals.
    pub authenticator: Arc<Authenticator>,
    /// The buckets.
    pub limiter: RateLimiter,
    /// The limits.
    pub limits: LimitsConfig,
    /// Whether anonymous callers may read the registry.
    pub registry_anonymous_read: bool,
    /// Counts refusals (by surface and reason) in the metrics.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Failed authentications by address.
    pub failures: FailureThrottle,
    /// The one-time codes operators send with API calls (`X-Unsilo-OTP`) when the deployment asks for the
    /// second factor there too (`[admin.sign_in] api_second_factor`); an operator bound to a client
    /// certificate has theirs checked with the connection instead.
    pub operator_api_factor: Option<Arc<crate::totp::OperatorCodes>>,
}

/// The header an operator's one-time code travels in on the API.
pub const OTP_HEADER: &str = "x-unsilo-otp";

/// A `429` with `Retry-After`, in `surface`'s dialect.
fn too_many(surface: Surface, wait: Duration, message: &str) -> Response {
    let mut r = surface.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Middleware bounding a whole request — its body read included — by `limit`, for routes outside the surfaces'
/// access layer (the console, which has its own session check): past it the client gets a `503`.
pub async fn within_request_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Surface::Console.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took longer than the hub's request timeout",
        ),
    }
}

/// Why [`Access::credentials_of`] refused a request.
enum Refused {
    /// The address failed too often; blocked this much longer.
    Blocked(Duration),
    /// The credential presented is wrong (or missing).
    Bad(AuthError),
}

/// What an address that failed authentication too often is told.
const BLOCKED: &str = "too many failed authentications from this address; every request from it is refused until the Retry-After seconds have passed";

/// The client address of a request, as the connection layer saw it.
fn client_address(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

impl Access {
    /// The credentials a request presents (its headers and its connection's client certificate), from the client
    /// at `address`: the one check every door shares. A blocked address is refused before anything it presents
    /// is checked (guessing gets no answer at all); a bad credential counts towards its address's block.
    fn credentials_of(
        &self,
        request: &Request,
        address: &str,
    ) -> Result<Option<Principal>, Refused> {
        if let Some(wait) = self.failures.blocked(address) {
            return Err(Refused::Blocked(wait));
        }
        let certificate = request.extensions().get::<ClientCertificate>();
        self.authenticator
            .authenticate(request.headers(), certificate)
            .and_then(|principal| match (&principal, &self.operator_api_factor) {
                (Some(Principal::Operator { name, .. }), Some(factor))
                    if !self.authenticator.operator_bound_to_certificate(name) =>
                {
                    let code = request
                        .headers()
                        .get(OTP_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    if factor.is_current(name, code) {
                        Ok(principal)
                    } else {
                        Err(AuthError::SecondFactorRequired(name.clone()))
                    }
                }
                _ => Ok(principal),
            })
            .map_err(|e| {
                if !matches!(e, AuthError::Missing) {
                    if let Some(block) = self.failures.failed(address, self.limits.auth_failures) {
                        warn!(%address, block_secs = block.as_secs(), "Address blocked: too many failed authentications.");
                    }
                }
                Refused::Bad(e)
            })
    }

    /// Who is calling, for a route outside the surfaces (`/metrics`), checked as on every surface. `Err` is the
    /// answer to send (429 for a blocked address, 401 for a bad credential).
    pub fn identify(&self, request: &Request) -> Result<Option<Principal>, Response> {
        self.credentials_of(request, &client_address(request))
            .map_err(|refused| match refused {
                Refused::Blocked(wait) => too_many(Surface::Admin, wait, BLOCKED),
                Refused::Bad(e) => {
                    Surface::Admin.error(StatusCode::UNAUTHORIZED, "unauthorized", &e.to_string())
                }
            })
    }

    /// The middleware of `surface`: use with `axum::middleware::from_fn_with_state((access, surface), Access::layer)`.
    pub async fn layer(
        State((access, surface)): State<(Arc<Access>, Surface)>,
        mut request: Request,
        next: Next,
    ) -> Response {
        let refuse = |status: StatusCode, code: &str, message: &str| {
            if let Some(m) = &access.metrics {
                m.record_refusal(surface.as_str(), code);
            }
            surface.error(status, code, message)
        };
        let count_refusal = |code: &str| {
            if let Some(m) = &access.metrics {
                m.record_refusal(surface.as_str(), code);
            }
        };
        let rate_limited = |wait: Duration| {
            count_refusal("rate_limited");
            too_many(
                surface,
                wait,
                &format!(
                    "too many {} requests from this client; retry after the Retry-After seconds",
                    surface.as_str()
                ),
            )
        };
        let address = client_address(&request);
        let authenticated = match access.credentials_of(&request, &address) {
            Err(Refused::Blocked(wait)) => {
                count_refusal("blocked");
                return too_many(surface, wait, BLOCKED);
            }
            Err(Refused::Bad(e)) => Err(e),
            Ok(principal) => Ok(principal),
        };
        let anonymous_allowed = surface == Surface::Registry && access.registry_anonymous_read;
        let refusal = match &authenticated {
            Err(e) => Some(e.clone()),
            Ok(None) if !anonymous_allowed => Some(AuthError::Missing),
            Ok(_) => None,
        };
        if let Some(e) = refusal {
            // Refused callers have a bucket per client address: guessing tokens, or flooding the log with
            // refusals, is limited like any other traffic.
            if let Err(wait) = access.limiter.check(
                surface,
                &format!("refused:{address}"),
                access.limits.rate(surface),
            ) {
                return rate_limited(wait);
            }
            if !matches!(e, AuthError::Missing) {
                warn!(surface = surface.as_str(), %address, reason = %e, "Request refused: bad credentials.");
            }
            return refuse(StatusCode::UNAUTHORIZED, "unauthorized", &e.to_string());
        }
        let principal = authenticated.ok().flatten();
        let bucket_key = match &principal {
            Some(p) => p.to_string(),
            None => format!("anonymous:{address}"),
        };
        if let Err(wait) = access
            .limiter
            .check(surface, &bucket_key, access.limits.rate(surface))
        {
            return rate_limited(wait);
        }
        request.extensions_mut().insert(Caller(principal));
        match tokio::time::timeout(access.limits.request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the request took longer than the hub's request timeout",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refuse_past_the_burst_and_refill() {
        let limiter = RateLimiter::default();
        let limit = RateLimit {
            per_second: 1000.0,
            burst: 3,
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(Surface::Admin, "a", limit, t0).is_ok());
        }
        let wait = limiter
            .check_at(Surface::Admin, "a", limit, t0)
            .unwrap_err();
        assert_eq!(wait, Duration::from_millis(1));
        // Another caller, or another surface, has its own bucket.
        assert!(limiter.check_at(Surface::Admin, "b", limit, t0).is_ok());
        assert!(limiter.check_at(Surface::Pull, "a", limit, t0).is_ok());
        // One token is back a millisecond later, and only one.
        let t1 = t0 + Duration::from_millis(1);
        assert!(limiter.check_at(Surface::Admin, "a", limit, t1).is_ok());
        assert!(limiter.check_at(Surface::Admin, "a", limit, t1).is_err());
    }

    #[test]
    fn an_address_that_fails_too_often_is_blocked_for_a_while_then_let_in() {
        let throttle = FailureThrottle::default();
        let limit = AuthFailureLimit {
            max_failures: 3,
            window: Duration::from_secs(60),
            block: Duration::from_secs(300),
        };
        let t0 = Instant::now();
        assert!(throttle.failed_at("10.0.0.1", limit, t0).is_none());
        assert!(throttle.failed_at("10.0.0.1", limit, t0).is_none());
        assert!(throttle.blocked_at("10.0.0.1", t0).is_none());
        assert_eq!(
            throttle.failed_at("10.0.0.1", limit, t0),
            Some(Duration::from_secs(300))
        );
        assert!(throttle
            .blocked_at("10.0.0.1", t0 + Duration::from_secs(299))
            .is_some());
        assert!(throttle.blocked_at("10.0.0.2", t0).is_none(), "per address");
        assert!(throttle
            .blocked_at("10.0.0.1", t0 + Duration::from_secs(301))
            .is_none());
        // Failures spread wider than the window never block.
        let spread = FailureThrottle::default();
        for i in 0..10 {
            assert!(spread
                .failed_at("10.0.0.4", limit, t0 + Duration::from_secs(61 * i))
                .is_none());
        }
    }

    #[test]
    fn limits_are_checked() {
        assert!(LimitsConfig::default().check().is_ok());
        let mut l = LimitsConfig::default();
        l.pull.burst = 0;
        assert!(l.check().unwrap_err().0.contains("pull"));
    }

    #[test]
    fn registry_errors_speak_confluent() {
        let r = Surface::Registry.error(StatusCode::UNAUTHORIZED, "unauthorized", "x");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}
