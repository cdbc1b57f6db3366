//! The webhook delivery channel's client: POSTs each record released to a subscription to the subscriber's
//! HTTPS endpoint, signed, retried and protected by a per-endpoint circuit breaker.
//!
//! ## Why it works the way it does
//!
//! - **At-least-once, made safe by idempotency.** A request can fail after the subscriber processed it (the
//!   response is lost), so every retry carries the same `Idempotency-Key` (the record id) and subscribers
//!   deduplicate on it. The signature and its timestamp are made afresh for every attempt, so a retry sent
//!   after a long back-off still passes the subscriber's freshness check.
//! - **Signatures a subscriber can check without trusting the network.** `X-Unsilo-Signature: v1=<hex>` is
//!   HMAC-SHA256 over `"{timestamp}.{body}"` with the subscription's shared key; [`verify_signature`] is the
//!   reference check (constant-time, with a freshness window against replays). Several comma-separated `v1=`
//!   values are accepted by the verifier so a subscriber can roll keys.
//! - **Retry only what can get better.** 2xx is delivered. 408, 425, 429, 5xx and transport failures
//!   (connect, TLS, timeout) are retried with exponential back-off and *full jitter* (a uniformly random wait
//!   in `[0, min(max_backoff, initial_backoff·2^(n-1))]`), so many deliveries failing together don't retry in
//!   lock-step. A `Retry-After: <seconds>` answer is obeyed instead, capped by `max_backoff`. Any other status
//!   (other 4xx, and 3xx — redirects are never followed, since following one would send signed data to a
//!   host the subscription never named) is a permanent rejection of this message: retrying cannot help, so
//!   the caller gets [`DeliveryOutcome::GaveUp`] at once and routes the record to its delivery DLQ.
//! - **A circuit breaker per endpoint.** When an endpoint is down, hammering it with every pending record
//!   wastes both sides' resources and delays recovery. After `breaker_threshold` consecutive failed attempts
//!   (over all deliveries to that URL) the breaker opens; deliveries then *wait* (cancellably, sending
//!   nothing) until `breaker_cooldown` has passed. Then exactly one delivery sends a half-open probe while the
//!   others keep waiting: success closes the breaker, failure re-opens it for another cooldown. Waiting on
//!   the breaker does not use up a message's attempts — an outage is not the message's fault. Permanent
//!   rejections (e.g. 400) do not count as breaker failures: the endpoint answered, it is up.
//! - **Secrets stay out of logs and errors.** The signing key is never logged or printed (the `Debug` of
//!   [`WebhookTarget`] hides it), bodies are never logged, and URLs in logs and errors go through
//!   [`redact_url`] (password and query values hidden, since subscribers sometimes put tokens there).
//! - **HTTPS only**, with the built-in web PKI roots plus, optionally, extra trusted CAs (a subscriber's
//!   private CA). `allow_plain_http` exists for tests and local development only.
//!
//! Cancellation: [`WebhookClient::deliver`] takes a `tokio::sync::watch::Receiver<bool>`; it stops promptly —
//! mid-request, mid-back-off or while waiting on the breaker — once the value is `true` **or the sender is
//! dropped** (the same convention as the connectors' `Shutdown`).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use unsilo_schemas::redact::redact_url;

use crate::egress::{EgressPolicy, GuardedResolver};

type HmacSha256 = Hmac<Sha256>;

/// The `User-Agent` sent with every delivery.
pub const USER_AGENT: &str = concat!("unsilo/", env!("CARGO_PKG_VERSION"));
/// Header carrying the record id; identical on every retry of one message so subscribers can deduplicate.
pub const HEADER_IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Header naming the subscription the record was released to.
pub const HEADER_SUBSCRIPTION: &str = "X-Unsilo-Subscription";
/// Header with the signing time, in Unix seconds.
pub const HEADER_TIMESTAMP: &str = "X-Unsilo-Timestamp";
/// Header with the signature, `v1=<hex HMAC-SHA256>`.
pub const HEADER_SIGNATURE: &str = "X-Unsilo-Signature";

/// The longest duration accepted for any option (one day); longer values are almost certainly unit mistakes.
pub const MAX_OPTION_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// At most this much of a response body is read (and thrown away) so the connection can be reused.
const MAX_DRAINED_BODY: usize = 64 * 1024;

/// Tuning of the webhook client. `Default` gives the production values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookOptions {
    /// Attempts per message before giving up (the caller then routes it to its delivery DLQ). Default 8.
    pub max_attempts: u32,
    /// Back-off ceiling before the second attempt; doubled per attempt, full jitter. Default 200 ms.
    pub initial_backoff: Duration,
    /// Upper bound of any back-off, including one asked for with `Retry-After`. Default 30 s.
    pub max_backoff: Duration,
    /// Whole-request timeout (connect, TLS, sending, response). Default 10 s.
    pub request_timeout: Duration,
    /// Consecutive failed attempts to one URL that open its circuit breaker. Default 5.
    pub breaker_threshold: u32,
    /// How long an open breaker stays open before one half-open probe is let through. Default 30 s.
    pub breaker_cooldown: Duration,
    /// Extra trusted CA certificates (one or more PEM `CERTIFICATE` blocks), e.g. a subscriber's private CA.
    /// They are trusted in addition to the built-in web PKI roots.
    pub extra_root_certificates_pem: Option<Vec<u8>>,
    /// Allow `http://` targets. **For tests and local development only**: plain HTTP exposes the records
    /// (government data) and the signatures on the wire. Default `false`.
    pub allow_plain_http: bool,
    /// Which non-public addresses may be reached (default: none — loopback, private, link-local … are refused
    /// at every connection).
    pub egress: Arc<EgressPolicy>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            extra_root_certificates_pem: None,
            allow_plain_http: false,
            egress: Arc::new(EgressPolicy::default()),
        }
    }
}

impl WebhookOptions {
    /// Checks the options; names the first unusable value.
    fn validate(&self) -> Result<(), WebhookError> {
        if self.max_attempts == 0 {
            return Err(WebhookError::InvalidOptions(
                "max_attempts must be at least 1".into(),
            ));
        }
        if self.breaker_threshold == 0 {
            return Err(WebhookError::InvalidOptions(
                "breaker_threshold must be at least 1".into(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(WebhookError::InvalidOptions(
                "request_timeout must be greater than zero".into(),
            ));
        }
        for (name, value) in [
            ("initial_backoff", self.initial_backoff),
            ("max_backoff", self.max_backoff),
            ("request_timeout", self.request_timeout),
            ("breaker_cooldown", self.breaker_cooldown),
        ] {
            if value > MAX_OPTION_DURATION {
                return Err(WebhookError::InvalidOptions(format!(
                    "{name} is {value:?}, more than the maximum of {MAX_OPTION_DURATION:?}"
                )));
            }
        }
        Ok(())
    }
}

/// Where and how to deliver: the subscriber's endpoint and the subscription's signing key.
#[derive(Clone)]
pub struct WebhookTarget {
    /// The endpoint, `https://…` (or `http://…` only when [`WebhookOptions::allow_plain_http`]).
    pub url: String,
    /// The shared HMAC key the subscriber verifies signatures with. Never printed or logged.
    pub signing_key: Vec<u8>,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &redact_url(&self.url))
            .field("signing_key", &format_args!("<redacted>"))
            .finish()
    }
}

/// One record to deliver.
#[derive(Clone)]
pub struct WebhookMessage {
    /// The record's id; sent as the `Idempotency-Key`, the same on every retry.
    pub record_id: String,
    /// The subscription the record was released to; sent as `X-Unsilo-Subscription`.
    pub subscription: String,
    /// The JSON body, exactly as built by the caller (and as signed).
    pub body: Bytes,
}

impl fmt::Debug for WebhookMessage {
    /// Prints the body's length only: bodies are data released under an access policy, not log material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookMessage")
            .field("record_id", &self.record_id)
            .field("subscription", &self.subscription)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// How a delivery ended (when it was not cancelled and the target was usable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The subscriber answered 2xx.
    Delivered {
        /// Requests sent, including the successful one (waits on the circuit breaker are not counted).
        attempts: u32,
        /// The 2xx status the subscriber answered.
        status: u16,
    },
    /// The message could not be delivered; the caller routes it to its delivery DLQ.
    GaveUp {
        /// Requests sent (0 when the message itself could not be sent, e.g. an id unusable as a header).
        attempts: u32,
        /// Why, for the DLQ record and the operator: the status or transport error (a TLS failure says
        /// "TLS"). Contains no key, body or URL secrets.
        reason: String,
    },
}

/// The state of one endpoint's circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow normally.
    Closed,
    /// Too many consecutive failures: no requests are sent until the cooldown has passed.
    Open,
    /// The cooldown has passed (or a probe is in flight): the next single request decides.
    HalfOpen,
}

/// Errors of the webhook client. Only set-up problems, unusable targets and cancellation are errors;
/// failed deliveries are [`DeliveryOutcome::GaveUp`].
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A [`WebhookOptions`] value is unusable.
    #[error("invalid webhook options: {0}")]
    InvalidOptions(String),
    /// `extra_root_certificates_pem` could not be used.
    #[error("extra_root_certificates_pem is unusable: {0}")]
    InvalidRootCertificate(String),
    /// The HTTPS client could not be built.
    #[error("could not build the webhook HTTPS client: {0}")]
    ClientBuild(String),
    /// The target URL does not parse as an absolute URL with a host (the URL itself is not repeated, as it
    /// may carry credentials).
    #[error("webhook target URL is not a valid absolute URL with a host: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The target URL's scheme is neither https nor http.
    #[error("webhook target {url} uses scheme `{scheme}`; only https is supported")]
    UnsupportedScheme {
        /// The redacted URL.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// The target URL is plain http and [`WebhookOptions::allow_plain_http`] is off.
    #[error("webhook target {url} uses plain http, which is refused; use https (allow_plain_http is for tests and development only)")]
    PlainHttpNotAllowed {
        /// The redacted URL.
        url: String,
    },
    /// The target has an empty signing key, so its signatures would be forgeable.
    #[error("webhook target {url} has an empty signing key")]
    EmptySigningKey {
        /// The redacted URL.
        url: String,
    },
    /// The delivery was cancelled before it finished.
    #[error("delivery of record {record_id} to {url} was cancelled after {attempts} attempt(s)")]
    Cancelled {
        /// The redacted URL.
        url: String,
        /// The record being delivered.
        record_id: String,
        /// Requests sent before the cancellation (one may have been in flight).
        attempts: u32,
    },
}

/// The webhook client: one per hub, cheap to clone (shares its HTTP connection pool and breakers).
#[derive(Clone)]
pub struct WebhookClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    http: reqwest::Client,
    options: WebhookOptions,
    /// One breaker per target URL, keyed by the URL string as given.
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
}

impl fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookClient")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl WebhookClient {
    /// Builds the client (reqwest over rustls, HTTP/1.1, no redirects, https-only unless allowed).
    pub fn new(options: WebhookOptions) -> Result<Self, WebhookError> {
        options.validate()?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(USER_AGENT)
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver::new(options.egress.clone())))
            .https_only(!options.allow_plain_http);
        if let Some(pem) = &options.extra_root_certificates_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| WebhookError::InvalidRootCertificate(error_chain(&e)))?;
            if certificates.is_empty() {
                return Err(WebhookError::InvalidRootCertificate(
                    "it contains no PEM CERTIFICATE block".into(),
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| {
            if options.extra_root_certificates_pem.is_some() {
                // The only per-certificate failure left at build time is an unparseable certificate.
                WebhookError::InvalidRootCertificate(error_chain(&e))
            } else {
                WebhookError::ClientBuild(error_chain(&e))
            }
        })?;
        Ok(Self {
            inner: Arc::new(ClientInner {
                http,
                options,
                breakers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options the client was built with.
    pub fn options(&self) -> &WebhookOptions {
        &self.inner.options
    }

    /// The circuit breaker state of a target URL (`Closed` for a URL never delivered to). An open breaker
    /// whose cooldown has passed reports `HalfOpen`: the next delivery will probe.
    pub fn breaker_state(&self, url: &str) -> BreakerState {
        let breakers = lock(&self.inner.breakers);
        match breakers.get(url) {
            Some(breaker) => lock(&breaker.state).public_state(Instant::now()),
            None => BreakerState::Closed,
        }
    }

    /// Delivers one message, retrying as described in the module docs.
    ///
    /// Returns `Ok(Delivered)` or `Ok(GaveUp)` (route to the delivery DLQ); `Err` only when the target is
    /// unusable (bad URL, plain http not allowed, empty key) or when `cancel` fires (`true`, or its sender
    /// dropped) before the delivery finished.
    pub async fn deliver(
        &self,
        target: &WebhookTarget,
        message: &WebhookMessage,
        cancel: &watch::Receiver<bool>,
    ) -> Result<DeliveryOutcome, WebhookError> {
        let url = self.check_target(target)?;
        if let Some(ip) = EgressPolicy::literal_host(&url) {
            // Names are checked by the client's resolver at every connection; literals never reach it.
            if let Err(refused) = self
                .inner
                .options
                .egress
                .check_ip(url.host_str().unwrap_or_default(), ip)
            {
                warn!(url = %redact_url(&target.url), reason = %refused, "Webhook target refused.");
                return Ok(DeliveryOutcome::GaveUp {
                    attempts: 0,
                    reason: refused.to_string(),
                });
            }
        }
        let redacted = redact_url(&target.url);
        let mut cancel = cancel.clone();
        let cancelled = |attempts: u32| WebhookError::Cancelled {
            url: redacted.clone(),
            record_id: message.record_id.clone(),
            attempts,
        };
        if is_cancelled(&cancel) {
            return Err(cancelled(0));
        }
        let Ok(idempotency_key) = HeaderValue::from_str(&message.record_id) else {
            return Ok(DeliveryOutcome::GaveUp {
                attempts: 0,
                reason: "the record id cannot be sent as an Idempotency-Key header (control characters or non-ASCII)".into(),
            });
        };
        let Ok(subscription) = HeaderValue::from_str(&message.subscription) else {
            return Ok(DeliveryOutcome::GaveUp {
                attempts: 0,
                reason: format!("the subscription name cannot be sent as an {HEADER_SUBSCRIPTION} header (control characters or non-ASCII)"),
            });
        };
        let options = &self.inner.options;
        let breaker = self.breaker_for(&target.url);
        let mut attempts: u32 = 0;
        loop {
            let Some(permit) = self.admit(&breaker, &mut cancel, &redacted).await else {
                return Err(cancelled(attempts));
            };
            attempts += 1;
            let request = self.send_once(&url, target, message, &idempotency_key, &subscription);
            let result = tokio::select! {
                biased;
                _ = wait_cancelled(&mut cancel) => return Err(cancelled(attempts)),
                result = request => result,
            };
            let (reason, retry_after) = match result {
                Ok((status, retry_after)) => match classify(status) {
                    StatusClass::Delivered => {
                        permit.succeeded(&redacted);
                        debug!(url = %redacted, attempt = attempts, status = status.as_u16(), "Webhook delivered.");
                        return Ok(DeliveryOutcome::Delivered {
                            attempts,
                            status: status.as_u16(),
                        });
                    }
                    StatusClass::Permanent => {
                        // The endpoint answered: it is up, so this is no breaker failure.
                        permit.succeeded(&redacted);
                        let reason = format!(
                            "the endpoint rejected the message with HTTP {} (permanent, not retried)",
                            status_text(status)
                        );
                        warn!(url = %redacted, attempt = attempts, status = status.as_u16(), "Webhook delivery rejected permanently; giving up.");
                        return Ok(DeliveryOutcome::GaveUp { attempts, reason });
                    }
                    StatusClass::Retryable => {
                        permit.failed(&redacted, options);
                        if attempts < options.max_attempts {
                            warn!(url = %redacted, attempt = attempts, status = status.as_u16(), "Webhook delivery failed; retrying.");
                        }
                        (format!("HTTP {}", status_text(status)), retry_after)
                    }
                },
                Err(error) => {
                    permit.failed(&redacted, options);
                    let reason = describe_transport_error(&error, options, &target.url, &redacted);
                    if attempts < options.max_attempts {
                        warn!(url = %redacted, attempt = attempts, error = %reason, "Webhook delivery failed; retrying.");
                    }
                    (reason, None)
                }
            };
            if attempts >= options.max_attempts {
                warn!(url = %redacted, attempts, error = %reason, "Webhook delivery failed; giving up after the last attempt.");
                return Ok(DeliveryOutcome::GaveUp {
                    attempts,
                    reason: format!("gave up after {attempts} attempt(s); last failure: {reason}"),
                });
            }
            let delay = retry_delay(options, attempts, retry_after, &mut rand::rng());
            tokio::select! {
                biased;
                _ = wait_cancelled(&mut cancel) => return Err(cancelled(attempts)),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Parses and checks the target; errors name the problem with the URL redacted.
    fn check_target(&self, target: &WebhookTarget) -> Result<Url, WebhookError> {
        let url = Url::parse(&target.url).map_err(|e| WebhookError::InvalidUrl {
            reason: e.to_string(),
        })?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(WebhookError::InvalidUrl {
                reason: "it has no host".into(),
            });
        }
        let redacted = || redact_url(&target.url);
        match url.scheme() {
            "https" => {}
            "http" if self.inner.options.allow_plain_http => {}
            "http" => return Err(WebhookError::PlainHttpNotAllowed { url: redacted() }),
            other => {
                return Err(WebhookError::UnsupportedScheme {
                    url: redacted(),
                    scheme: other.to_owned(),
                })
            }
        }
        if target.signing_key.is_empty() {
            return Err(WebhookError::EmptySigningKey { url: redacted() });
        }
        Ok(url)
    }

    fn breaker_for(&self, url: &str) -> Arc<Breaker> {
        let mut breakers = lock(&self.inner.breakers);
        Arc::clone(breakers.entry(url.to_owned()).or_default())
    }

    /// Waits until the breaker lets a request through; `None` when cancelled while waiting.
    async fn admit<'b>(
        &self,
        breaker: &'b Breaker,
        cancel: &mut watch::Receiver<bool>,
        redacted: &str,
    ) -> Option<Permit<'b>> {
        loop {
            // Register for state changes before looking, so a change between the look and the wait is seen.
            let changed = breaker.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let admission = lock(&breaker.state).admit(Instant::now());
            match admission {
                Admission::Send { probe } => {
                    if probe {
                        info!(url = %redacted, "Webhook circuit breaker half-open; sending one probe.");
                    }
                    return Some(Permit {
                        breaker,
                        probe,
                        settled: false,
                    });
                }
                Admission::WaitUntil(until) => {
                    debug!(url = %redacted, "Webhook circuit breaker open; waiting for the cooldown.");
                    tokio::select! {
                        biased;
                        _ = wait_cancelled(cancel) => return None,
                        _ = tokio::time::sleep_until(until) => {}
                        _ = &mut changed => {}
                    }
                }
                Admission::WaitForProbe => {
                    tokio::select! {
                        biased;
                        _ = wait_cancelled(cancel) => return None,
                        _ = &mut changed => {}
                        // Safety net only: the probe always settles or is abandoned, both of which notify.
                        _ = tokio::time::sleep(self.inner.options.request_timeout) => {}
                    }
                }
            }
        }
    }

    /// Sends one signed POST; returns the status and any `Retry-After`.
    async fn send_once(
        &self,
        url: &Url,
        target: &WebhookTarget,
        message: &WebhookMessage,
        idempotency_key: &HeaderValue,
        subscription: &HeaderValue,
    ) -> Result<(StatusCode, Option<Duration>), reqwest::Error> {
        let timestamp = unix_now();
        let signature = sign(&target.signing_key, timestamp, &message.body);
        let mut response = self
            .inner
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(HEADER_IDEMPOTENCY_KEY, idempotency_key.clone())
            .header(HEADER_SUBSCRIPTION, subscription.clone())
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(message.body.clone())
            .send()
            .await?;
        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        // Read a small body to the end so the connection goes back to the pool; a large one is dropped.
        let mut drained = 0usize;
        while let Ok(Some(chunk)) = response.chunk().await {
            drained += chunk.len();
            if drained > MAX_DRAINED_BODY {
                break;
            }
        }
        Ok((status, retry_after))
    }
}

/// How a response status is handled.
#[derive(Debug, PartialEq, Eq)]
enum StatusClass {
    Delivered,
    Retryable,
    Permanent,
}

fn classify(status: StatusCode) -> StatusClass {
    match status.as_u16() {
        200..=299 => StatusClass::Delivered,
        408 | 425 | 429 | 500..=599 => StatusClass::Retryable,
        _ => StatusClass::Permanent,
    }
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// `Retry-After` in its delay-seconds form; the HTTP-date form is ignored (normal back-off applies).
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// The wait before the attempt after `attempt` (1-based): `Retry-After` capped by `max_backoff` when given,
/// else full jitter under the exponential ceiling.
fn retry_delay(
    options: &WebhookOptions,
    attempt: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    if let Some(asked) = retry_after {
        return asked.min(options.max_backoff);
    }
    let ceiling = backoff_ceiling(options, attempt);
    let max_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=max_nanos))
}

/// `min(max_backoff, initial_backoff · 2^(attempt-1))`, without overflow.
fn backoff_ceiling(options: &WebhookOptions, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1));
    factor
        .and_then(|f| options.initial_backoff.checked_mul(f))
        .map_or(options.max_backoff, |d| d.min(options.max_backoff))
}

/// Describes a transport failure for logs and the GaveUp reason: TLS problems say so; no URL secrets.
fn describe_transport_error(
    error: &reqwest::Error,
    options: &WebhookOptions,
    raw_url: &str,
    redacted: &str,
) -> String {
    let text = if let Some(tls) = find_tls_error(error) {
        format!("TLS handshake failed: {tls}")
    } else if error.is_timeout() {
        format!(
            "request timed out after {:?} ({})",
            options.request_timeout,
            error_sources(error)
        )
    } else if error.is_connect() {
        format!("connection failed: {}", error_sources(error))
    } else {
        format!("request failed: {}", error_sources(error))
    };
    // reqwest's own message names the URL; the sources should not, but never let a raw one through.
    if raw_url.is_empty() {
        text
    } else {
        text.replace(raw_url, redacted)
    }
}

/// The rustls error somewhere in the chain. rustls errors travel inside (possibly nested) `io::Error`s,
/// whose `source()` skips the wrapped error, so look inside those too.
fn find_tls_error(error: &reqwest::Error) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = tls_inside(e) {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

fn tls_inside<'e>(mut error: &'e (dyn StdError + 'static)) -> Option<&'e rustls::Error> {
    loop {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let io = error.downcast_ref::<std::io::Error>()?;
        let inner: &(dyn StdError + Send + Sync + 'static) = io.get_ref()?;
        error = inner;
    }
}

/// The messages of an error's sources (not the error itself, whose reqwest message carries the URL).
fn error_sources(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = error.source();
    while let Some(e) = current {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        "no further detail".into()
    } else {
        parts.join(": ")
    }
}

/// An error and all its sources, joined (for errors that carry no URL).
fn error_chain(error: &reqwest::Error) -> String {
    let first = error.to_string();
    let rest = error_sources(error);
    if error.source().is_none() {
        first
    } else {
        format!("{first}: {rest}")
    }
}

/// Signs a delivery: `"v1=" + hex(HMAC-SHA256(key, "{timestamp}.{body}"))`.
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac_sha256(key);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a delivery's signature as a subscriber would: the timestamp must be within `tolerance_secs` of
/// `now_unix` (either way), and one of the comma-separated `v1=<hex>` values in `signature_header` must
/// match (constant-time comparison). An empty key never verifies.
pub fn verify_signature(
    key: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> bool {
    if key.is_empty() || tolerance_secs < 0 {
        return false;
    }
    let Ok(timestamp) = timestamp_header.trim().parse::<i64>() else {
        return false;
    };
    if now_unix.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return false;
    }
    let mut valid = false;
    for candidate in signature_header.split(',') {
        let Some(hex_signature) = candidate.trim().strip_prefix("v1=") else {
            continue;
        };
        let Ok(signature) = hex::decode(hex_signature) else {
            continue;
        };
        let mut mac = hmac_sha256(key);
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        // No early exit: every candidate is checked the same way.
        valid |= mac.verify_slice(&signature).is_ok();
    }
    valid
}

/// HMAC-SHA256 keyed per RFC 2104 (keys longer than the 64-byte block are hashed, shorter ones zero-padded),
/// done here so no fallible constructor is needed.
fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <HmacSha256 as hmac::digest::KeyInit>::new(&block.into())
}

fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn is_cancelled(cancel: &watch::Receiver<bool>) -> bool {
    *cancel.borrow() || cancel.has_changed().is_err()
}

/// Completes when the value becomes `true` or the sender is dropped.
async fn wait_cancelled(cancel: &mut watch::Receiver<bool>) {
    let _ = cancel.wait_for(|cancelled| *cancelled).await;
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; if one ever did, its state is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One endpoint's circuit breaker.
#[derive(Default)]
struct Breaker {
    state: Mutex<BreakerInner>,
    /// Woken on every state change, so waiting deliveries look again.
    changed: Notify,
}

/// The breaker's state machine, kept free of I/O and clocks so it can be tested directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerInner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl Default for BreakerInner {
    fn default() -> Self {
        Self::Closed { failures: 0 }
    }
}

/// What a delivery may do now.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    /// Send; `probe` when this request is the half-open probe that decides.
    Send { probe: bool },
    /// The breaker is open until then.
    WaitUntil(Instant),
    /// Another delivery's probe is in flight.
    WaitForProbe,
}

impl BreakerInner {
    fn admit(&mut self, now: Instant) -> Admission {
        match *self {
            Self::Closed { .. } => Admission::Send { probe: false },
            Self::Open { until } if now < until => Admission::WaitUntil(until),
            Self::Open { .. } | Self::HalfOpen { probing: false } => {
                *self = Self::HalfOpen { probing: true };
                Admission::Send { probe: true }
            }
            Self::HalfOpen { probing: true } => Admission::WaitForProbe,
        }
    }

    /// Records a success (or a permanent rejection: the endpoint is up). Returns whether it was not closed.
    fn on_success(&mut self) -> bool {
        let was_closed = matches!(self, Self::Closed { .. });
        *self = Self::Closed { failures: 0 };
        !was_closed
    }

    /// Records a failed attempt. Returns whether the breaker opened because of it.
    fn on_failure(
        &mut self,
        probe: bool,
        now: Instant,
        threshold: u32,
        cooldown: Duration,
    ) -> bool {
        let until = now.checked_add(cooldown).unwrap_or(now);
        match self {
            Self::Closed { failures } => {
                *failures = failures.saturating_add(1);
                if *failures >= threshold {
                    *self = Self::Open { until };
                    true
                } else {
                    false
                }
            }
            Self::HalfOpen { .. } if probe => {
                *self = Self::Open { until };
                true
            }
            // A request sent before the breaker opened: the probe decides, not this straggler.
            Self::HalfOpen { .. } | Self::Open { .. } => false,
        }
    }

    /// The probe was dropped (its delivery cancelled) without a result: let another delivery probe.
    fn on_probe_abandoned(&mut self) {
        if *self == (Self::HalfOpen { probing: true }) {
            *self = Self::HalfOpen { probing: false };
        }
    }

    fn public_state(&self, now: Instant) -> BreakerState {
        match *self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Open { until } if now < until => BreakerState::Open,
            Self::Open { .. } | Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// Permission to send one request; reports its result to the breaker. Dropped unsettled (cancelled
/// mid-request), a probe hands the probing turn back.
struct Permit<'b> {
    breaker: &'b Breaker,
    probe: bool,
    settled: bool,
}

impl Permit<'_> {
    fn succeeded(mut self, redacted: &str) {
        self.settled = true;
        let reopened = lock(&self.breaker.state).on_success();
        self.breaker.changed.notify_waiters();
        if reopened {
            info!(url = %redacted, "Webhook circuit breaker closed; the endpoint answered.");
        }
    }

    fn failed(mut self, redacted: &str, options: &WebhookOptions) {
        self.settled = true;
        let opened = lock(&self.breaker.state).on_failure(
            self.probe,
            Instant::now(),
            options.breaker_threshold,
            options.breaker_cooldown,
        );
        self.breaker.changed.notify_waiters();
        if opened {
            warn!(
                url = %redacted,
                cooldown_ms = u64::try_from(options.breaker_cooldown.as_millis()).unwrap_or(u64::MAX),
                probe = self.probe,
                "Webhook circuit breaker opened; pausing deliveries to this endpoint."
            );
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            lock(&self.breaker.state).on_probe_abandoned();
            self.breaker.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    // ---------- signing ----------

    #[test]
    fn hmac_matches_rfc4231_vectors() {
        // Test case 2: short key.
        let mut mac = hmac_sha256(b"Jefe");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: key longer than the block (hashed first).
        let mut mac = hmac_sha256(&[0xaa; 131]);
        mac.update(b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // Exactly one block long: used as is.
        let key = [0x0b; 64];
        let mut ours = hmac_sha256(&key);
        let mut reference = <HmacSha256 as Mac>::new_from_slice(&key).unwrap();
        ours.update(b"x");
        reference.update(b"x");
        assert_eq!(
            ours.finalize().into_bytes(),
            reference.finalize().into_bytes()
        );
    }

    #[test]
    fn sign_covers_timestamp_dot_body() {
        let signature = sign(b"Jefe", 1_700_000_000, br#"{"a":1}"#);
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(br#"1700000000.{"a":1}"#);
        assert_eq!(
            signature,
            format!("v1={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(signature, sign(b"Jefe", 1_700_000_001, br#"{"a":1}"#));
        assert_ne!(signature, sign(b"Jefe", 1_700_000_000, br#"{"a":2}"#));
        assert_ne!(signature, sign(b"jefe", 1_700_000_000, br#"{"a":1}"#));
    }

    #[test]
    fn verify_accepts_valid_and_rejects_tampering() {
        let key = b"subscription-key";
        let body = br#"{"record":"r-1"}"#;
        let ts = 1_700_000_000;
        let sig = sign(key, ts, body);
        let ts_header = ts.to_string();
        assert!(verify_signature(key, &ts_header, &sig, body, ts, 300));
        assert!(verify_signature(key, &ts_header, &sig, body, ts + 300, 300));
        assert!(verify_signature(key, &ts_header, &sig, body, ts - 300, 300));
        // Stale or from the future.
        assert!(!verify_signature(
            key,
            &ts_header,
            &sig,
            body,
            ts + 301,
            300
        ));
        assert!(!verify_signature(
            key,
            &ts_header,
            &sig,
            body,
            ts - 301,
            300
        ));
        // Tampered body, wrong key, timestamp swapped for another.
        assert!(!verify_signature(
            key,
            &ts_header,
            &sig,
            br#"{"record":"r-2"}"#,
            ts,
            300
        ));
        assert!(!verify_signature(
            b"other-key",
            &ts_header,
            &sig,
            body,
            ts,
            300
        ));
        assert!(!verify_signature(
            key,
            &(ts + 1).to_string(),
            &sig,
            body,
            ts,
            300
        ));
        // Malformed headers.
        assert!(!verify_signature(key, "soon", &sig, body, ts, 300));
        assert!(!verify_signature(key, &ts_header, &sig[3..], body, ts, 300));
        assert!(!verify_signature(key, &ts_header, "v1=zz", body, ts, 300));
        assert!(!verify_signature(key, &ts_header, "", body, ts, 300));
        assert!(!verify_signature(key, &ts_header, &sig, body, ts, -1));
        assert!(!verify_signature(
            b"",
            &ts_header,
            &sign(b"", ts, body),
            body,
            ts,
            300
        ));
        // Truncated signature.
        assert!(!verify_signature(
            key,
            &ts_header,
            &sig[..sig.len() - 2],
            body,
            ts,
            300
        ));
        // Key rotation: any listed v1 value may match.
        let rotated = format!("v1={}, {sig}", "00".repeat(32));
        assert!(verify_signature(key, &ts_header, &rotated, body, ts, 300));
        // Extreme timestamps do not overflow.
        assert!(!verify_signature(
            key,
            &i64::MIN.to_string(),
            &sig,
            body,
            i64::MAX,
            300
        ));
    }

    // ---------- back-off ----------

    fn options_with_backoff(initial_ms: u64, max_ms: u64) -> WebhookOptions {
        WebhookOptions {
            initial_backoff: Duration::from_millis(initial_ms),
            max_backoff: Duration::from_millis(max_ms),
            ..WebhookOptions::default()
        }
    }

    #[test]
    fn backoff_ceiling_doubles_and_caps() {
        let options = options_with_backoff(200, 30_000);
        let ceilings: Vec<u128> = (1..=10)
            .map(|a| backoff_ceiling(&options, a).as_millis())
            .collect();
        assert_eq!(
            ceilings,
            [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]
        );
        assert_eq!(backoff_ceiling(&options, u32::MAX), Duration::from_secs(30));
        assert_eq!(backoff_ceiling(&options, 0), Duration::from_millis(200));
    }

    #[test]
    fn full_jitter_stays_under_the_ceiling_and_spreads() {
        let options = options_with_backoff(200, 30_000);
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..=12 {
            let ceiling = backoff_ceiling(&options, attempt);
            let delays: Vec<Duration> = (0..200)
                .map(|_| retry_delay(&options, attempt, None, &mut rng))
                .collect();
            assert!(delays.iter().all(|d| *d <= ceiling));
            // Full jitter: both the lower and the upper half of the range are used.
            assert!(delays.iter().any(|d| *d < ceiling / 2));
            assert!(delays.iter().any(|d| *d > ceiling / 2));
        }
    }

    #[test]
    fn retry_after_is_obeyed_and_capped() {
        let options = options_with_backoff(200, 30_000);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            retry_delay(&options, 1, Some(Duration::from_secs(7)), &mut rng),
            Duration::from_secs(7)
        );
        assert_eq!(
            retry_delay(&options, 1, Some(Duration::from_secs(3600)), &mut rng),
            Duration::from_secs(30)
        );
        let mut headers = HeaderMap::new();
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 12 "));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(12)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("-3"));
        assert_eq!(parse_retry_after(&headers), None);
    }

    #[test]
    fn statuses_are_classified() {
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(
                classify(StatusCode::from_u16(code).unwrap()),
                StatusClass::Delivered
            );
        }
        for code in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(
                classify(StatusCode::from_u16(code).unwrap()),
                StatusClass::Retryable
            );
        }
        for code in [301, 302, 307, 400, 401, 403, 404, 409, 410, 413, 422] {
            assert_eq!(
                classify(StatusCode::from_u16(code).unwrap()),
                StatusClass::Permanent
            );
        }
    }

    // ---------- breaker state machine ----------

    #[test]
    fn breaker_opens_after_threshold_consecutive_failures() {
        let cooldown = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut b = BreakerInner::default();
        assert!(!b.on_failure(false, t0, 3, cooldown));
        assert!(!b.on_failure(false, t0, 3, cooldown));
        // A success resets the count.
        b.on_success();
        assert!(!b.on_failure(false, t0, 3, cooldown));
        assert!(!b.on_failure(false, t0, 3, cooldown));
        assert_eq!(b.admit(t0), Admission::Send { probe: false });
        assert!(b.on_failure(false, t0, 3, cooldown));
        assert_eq!(b.public_state(t0), BreakerState::Open);
        assert_eq!(
            b.admit(t0 + Duration::from_secs(29)),
            Admission::WaitUntil(t0 + cooldown)
        );
        // Cooldown over: exactly one probe; others wait for it.
        let t1 = t0 + cooldown;
        assert_eq!(b.public_state(t1), BreakerState::HalfOpen);
        assert_eq!(b.admit(t1), Admission::Send { probe: true });
        assert_eq!(b.admit(t1), Admission::WaitForProbe);
        assert_eq!(b.public_state(t1), BreakerState::HalfOpen);
        // A straggler's failure does not decide; the probe's does.
        assert!(!b.on_failure(false, t1, 3, cooldown));
        assert!(b.on_failure(true, t1, 3, cooldown));
        assert_eq!(b.admit(t1), Admission::WaitUntil(t1 + cooldown));
        // Next probe succeeds: closed, everybody sends.
        let t2 = t1 + cooldown;
        assert_eq!(b.admit(t2), Admission::Send { probe: true });
        assert!(b.on_success());
        assert_eq!(b.public_state(t2), BreakerState::Closed);
        assert_eq!(b.admit(t2), Admission::Send { probe: false });
        assert_eq!(b, BreakerInner::Closed { failures: 0 });
    }

    #[test]
    fn abandoned_probe_lets_another_delivery_probe() {
        let cooldown = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut b = BreakerInner::default();
        assert!(b.on_failure(false, t0, 1, cooldown));
        let t1 = t0 + cooldown;
        assert_eq!(b.admit(t1), Admission::Send { probe: true });
        assert_eq!(b.admit(t1), Admission::WaitForProbe);
        b.on_probe_abandoned();
        assert_eq!(b.admit(t1), Admission::Send { probe: true });
    }

    #[test]
    fn dropped_probe_permit_hands_back_the_probe() {
        let breaker = Breaker::default();
        let t0 = Instant::now();
        *lock(&breaker.state) = BreakerInner::Open { until: t0 };
        let admission = lock(&breaker.state).admit(t0);
        assert_eq!(admission, Admission::Send { probe: true });
        let permit = Permit {
            breaker: &breaker,
            probe: true,
            settled: false,
        };
        assert_eq!(lock(&breaker.state).admit(t0), Admission::WaitForProbe);
        drop(permit);
        assert_eq!(
            lock(&breaker.state).admit(t0),
            Admission::Send { probe: true }
        );
    }

    // ---------- options, targets, redaction ----------

    #[test]
    fn defaults_are_the_documented_values() {
        let o = WebhookOptions::default();
        assert_eq!(o.max_attempts, 8);
        assert_eq!(o.initial_backoff, Duration::from_millis(200));
        assert_eq!(o.max_backoff, Duration::from_secs(30));
        assert_eq!(o.request_timeout, Duration::from_secs(10));
        assert_eq!(o.breaker_threshold, 5);
        assert_eq!(o.breaker_cooldown, Duration::from_secs(30));
        assert_eq!(o.extra_root_certificates_pem, None);
        assert!(!o.allow_plain_http);
    }

    #[test]
    fn unusable_options_are_refused_by_name() {
        let cases: Vec<(WebhookOptions, &str)> = vec![
            (
                WebhookOptions {
                    max_attempts: 0,
                    ..Default::default()
                },
                "max_attempts",
            ),
            (
                WebhookOptions {
                    breaker_threshold: 0,
                    ..Default::default()
                },
                "breaker_threshold",
            ),
            (
                WebhookOptions {
                    request_timeout: Duration::ZERO,
                    ..Default::default()
                },
                "request_timeout",
            ),
            (
                WebhookOptions {
                    breaker_cooldown: Duration::from_secs(2 * 86_400),
                    ..Default::default()
                },
                "breaker_cooldown",
            ),
        ];
        for (options, name) in cases {
            let err = WebhookClient::new(options).unwrap_err();
            assert!(matches!(err, WebhookError::InvalidOptions(_)), "{err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let err = WebhookClient::new(WebhookOptions {
            extra_root_certificates_pem: Some(b"not a certificate".to_vec()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            matches!(err, WebhookError::InvalidRootCertificate(_)),
            "{err}"
        );
    }

    #[test]
    fn debug_output_hides_key_and_body() {
        let target = WebhookTarget {
            url: "https://u:pw-s3cret@example.com/hook?token=tok-s3cret".into(),
            signing_key: b"top-secret-key".to_vec(),
        };
        let text = format!("{target:?}");
        assert!(!text.contains("top-secret-key"), "{text}");
        assert!(
            !text.contains(&format!("{:?}", b"top-secret-key".to_vec())),
            "{text}"
        );
        assert!(
            !text.contains("pw-s3cret") && !text.contains("tok-s3cret"),
            "{text}"
        );
        let message = WebhookMessage {
            record_id: "r-1".into(),
            subscription: "s".into(),
            body: Bytes::from_static(b"{\"citizen_id\":\"110101\"}"),
        };
        let text = format!("{message:?}");
        assert!(!text.contains("citizen_id"), "{text}");
        assert!(text.contains("r-1"), "{text}");
    }

    // ---------- over real HTTPS ----------

    mod https {
        use super::super::*;
        use std::net::SocketAddr;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

        use axum::extract::State;
        use axum::http::{HeaderMap as AxumHeaderMap, StatusCode as AxumStatus};
        use axum::response::{IntoResponse, Response};
        use axum::routing::post;
        use axum::Router;

        const KEY: &[u8] = b"test-signing-key";
        /// Upper bound for things that must finish; only a hang or a broken implementation reaches it.
        const GUARD: Duration = Duration::from_secs(60);

        type Responder = Box<dyn Fn(usize) -> Response + Send + Sync>;

        struct Seen {
            headers: AxumHeaderMap,
            body: Bytes,
            signature_ok: bool,
        }

        struct ServerState {
            seen: Mutex<Vec<Seen>>,
            count: AtomicUsize,
            respond: Responder,
        }

        struct TestServer {
            url: String,
            state: Arc<ServerState>,
            cert_pem: String,
            task: tokio::task::JoinHandle<()>,
        }

        impl Drop for TestServer {
            fn drop(&mut self) {
                self.task.abort();
            }
        }

        impl TestServer {
            fn count(&self) -> usize {
                self.state.count.load(Ordering::SeqCst)
            }

            fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
                self.state.seen.lock().unwrap()
            }

            async fn wait_for_count(&self, n: usize) {
                tokio::time::timeout(GUARD, async {
                    while self.count() < n {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
                .await
                .expect("the server never saw the expected requests");
            }
        }

        async fn hook(
            State(state): State<Arc<ServerState>>,
            headers: AxumHeaderMap,
            body: Bytes,
        ) -> Response {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let signature_ok = verify_signature(
                KEY,
                &header(HEADER_TIMESTAMP),
                &header(HEADER_SIGNATURE),
                &body,
                unix_now(),
                300,
            );
            let n = {
                let mut seen = state.seen.lock().unwrap();
                seen.push(Seen {
                    headers: headers.clone(),
                    body,
                    signature_ok,
                });
                seen.len()
            };
            state.count.store(n, Ordering::SeqCst);
            (state.respond)(n)
        }

        fn install_provider() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }

        fn self_signed() -> (String, String) {
            let certified = rcgen::generate_simple_self_signed(vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
            ])
            .unwrap();
            (certified.cert.pem(), certified.signing_key.serialize_pem())
        }

        fn router(respond: Responder) -> (Router, Arc<ServerState>) {
            let state = Arc::new(ServerState {
                seen: Mutex::new(Vec::new()),
                count: AtomicUsize::new(0),
                respond,
            });
            let app = Router::new()
                .route("/hook", post(hook))
                .with_state(Arc::clone(&state));
            (app, state)
        }

        async fn https_server(
            respond: impl Fn(usize) -> Response + Send + Sync + 'static,
        ) -> TestServer {
            install_provider();
            let (cert_pem, key_pem) = self_signed();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem(
                cert_pem.clone().into_bytes(),
                key_pem.into_bytes(),
            )
            .await
            .unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr: SocketAddr = listener.local_addr().unwrap();
            let (app, state) = router(Box::new(respond));
            let server = axum_server::from_tcp_rustls(listener, config).unwrap();
            let task = tokio::spawn(async move {
                let _ = server.serve(app.into_make_service()).await;
            });
            TestServer {
                url: format!("https://127.0.0.1:{}/hook", addr.port()),
                state,
                cert_pem,
                task,
            }
        }

        async fn http_server(
            respond: impl Fn(usize) -> Response + Send + Sync + 'static,
        ) -> TestServer {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (app, state) = router(Box::new(respond));
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            TestServer {
                url: format!("http://127.0.0.1:{}/hook", addr.port()),
                state,
                cert_pem: String::new(),
                task,
            }
        }

        fn status(code: u16) -> Response {
            AxumStatus::from_u16(code).unwrap().into_response()
        }

        fn fast_options(server: &TestServer) -> WebhookOptions {
            WebhookOptions {
                max_attempts: 4,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
                request_timeout: Duration::from_secs(30),
                breaker_threshold: 100,
                breaker_cooldown: Duration::from_millis(5),
                extra_root_certificates_pem: Some(server.cert_pem.clone().into_bytes()),
                allow_plain_http: false,
                egress: Arc::new(EgressPolicy::new(&["127.0.0.0/8".into()]).unwrap()),
            }
        }

        #[tokio::test]
        async fn internal_targets_are_refused_at_every_delivery_unless_allowed() {
            let server = https_server(|_| status(200)).await;
            let (_tx, rx) = never();
            for url in [
                server.url.clone(),
                server.url.replace("127.0.0.1", "localhost"),
            ] {
                let client = WebhookClient::new(WebhookOptions {
                    egress: Arc::new(EgressPolicy::default()),
                    max_attempts: 1,
                    ..fast_options(&server)
                })
                .unwrap();
                let target = WebhookTarget {
                    url,
                    signing_key: KEY.to_vec(),
                };
                let outcome = deliver(&client, &target, &rx).await.unwrap();
                let DeliveryOutcome::GaveUp { reason, .. } = outcome else {
                    panic!("expected GaveUp, got {outcome:?}");
                };
                assert!(reason.contains("loopback"), "{reason}");
            }
            assert_eq!(server.count(), 0, "nothing reached the internal endpoint");
        }

        fn target(server: &TestServer) -> WebhookTarget {
            WebhookTarget {
                url: server.url.clone(),
                signing_key: KEY.to_vec(),
            }
        }

        fn message() -> WebhookMessage {
            WebhookMessage {
                record_id: "rec-0001".into(),
                subscription: "sub-health-bureau".into(),
                body: Bytes::from_static(br#"{"record_id":"rec-0001","name":"\u5f20\u4e09"}"#),
            }
        }

        fn never() -> (watch::Sender<bool>, watch::Receiver<bool>) {
            watch::channel(false)
        }

        async fn deliver(
            client: &WebhookClient,
            target: &WebhookTarget,
            cancel: &watch::Receiver<bool>,
        ) -> Result<DeliveryOutcome, WebhookError> {
            tokio::time::timeout(GUARD, client.deliver(target, &message(), cancel))
                .await
                .expect("deliver did not finish")
        }

        #[tokio::test]
        async fn delivers_signed_request_with_all_headers() {
            let server = https_server(|_| status(204)).await;
            let client = WebhookClient::new(fast_options(&server)).unwrap();
            let (_tx, rx) = never();
            let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
            assert_eq!(
                outcome,
                DeliveryOutcome::Delivered {
                    attempts: 1,
                    status: 204
                }
            );
            let seen = server.seen();
            assert_eq!(seen.len(), 1);
            let request = &seen[0];
            assert!(
                request.signature_ok,
                "the server could not verify the signature"
            );
            assert_eq!(request.body, message().body);
            let h = |name: &str| {
                request
                    .headers
                    .get(name)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned()
            };
            assert_eq!(h("content-type"), "application/json");
            assert_eq!(h("idempotency-key"), "rec-0001");
            assert_eq!(h("x-unsilo-subscription"), "sub-health-bureau");
            assert!(
                h("user-agent").starts_with("unsilo/"),
                "{}",
                h("user-agent")
            );
            assert!(h("x-unsilo-signature").starts_with("v1="));
            let timestamp: i64 = h("x-unsilo-timestamp").parse().unwrap();
            assert!((unix_now() - timestamp).abs() < 3600);
            // The signature does not verify with another key.
            assert!(!verify_signature(
                b"another-key",
                &h("x-unsilo-timestamp"),
                &h("x-unsilo-signature"),
                &request.body,
                unix_now(),
                300
            ));
            drop(seen);
            assert_eq!(client.breaker_state(&server.url), BreakerState::Closed);
        }

        #[tokio::test]
        async fn retries_503_with_the_same_idempotency_key() {
            let server = https_server(|n| if n <= 2 { status(503) } else { status(200) }).await;
            let client = WebhookClient::new(fast_options(&server)).unwrap();
            let (_tx, rx) = never();
            let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
            assert_eq!(
                outcome,
                DeliveryOutcome::Delivered {
                    attempts: 3,
                    status: 200
                }
            );
            let seen = server.seen();
            assert_eq!(seen.len(), 3);
            for request in seen.iter() {
                assert_eq!(request.headers.get("idempotency-key").unwrap(), "rec-0001");
                assert!(request.signature_ok);
                assert_eq!(request.body, message().body);
            }
        }

        #[tokio::test]
        async fn retryable_statuses_408_425_429_are_retried() {
            let server = https_server(|n| match n {
                1 => status(408),
                2 => status(425),
                3 => status(429),
                _ => status(200),
            })
            .await;
            let options = WebhookOptions {
                max_attempts: 5,
                ..fast_options(&server)
            };
            let client = WebhookClient::new(options).unwrap();
            let (_tx, rx) = never();
            let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
            assert_eq!(
                outcome,
                DeliveryOutcome::Delivered {
                    attempts: 4,
                    status: 200
                }
            );
        }

        #[tokio::test]
        async fn always_500_gives_up_after_max_attempts() {
            let server = https_server(|_| status(500)).await;
            let client = WebhookClient::new(fast_options(&server)).unwrap();
            let (_tx, rx) = never();
            let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
            let DeliveryOutcome::GaveUp { attempts, reason } = outcome else {
                panic!("expected GaveUp, got {outcome:?}");
            };
            assert_eq!(attempts, 4);
            assert!(reason.contains("500"), "{reason}");
            assert_eq!(server.count(), 4);
        }

        #[tokio::test]
        async fn client_error_gives_up_at_once() {
            let server = https_server(|_| status(400)).await;
            let client = WebhookClient::new(fast_options(&server)).unwrap();
            let (_tx, rx) = never();
            let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
            let DeliveryOutcome::GaveUp { attempts, reason } = outcome else {
                panic!("expected GaveUp, got {outcome:?}");
            };
            assert_eq!(attempts, 1);
            assert!(reason.contains("400"), "{reason}");
            assert_eq!(server.count(), 1);
            // A permanent rejection is no breaker failure.
            assert_eq!(client.breaker_state(&server.url), BreakerState::Closed);
        }

        #[tokio::test]
        async fn redirects_are_not_followed() {
            let server = https_server(|_| {
                (
                    AxumStatus::FOUND,
                    [("location", "https://127.0.0.1:1/elsewhere")],
                )
                    .into_response()
            })
            .await;
            let client = WebhookClient::new(fast_options(&server)).unwrap();
            let (_tx, rx) = never();
            let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
            let DeliveryOutcome::GaveUp { attempts, reason } = outcome else {
                panic!("expected GaveUp, got {outcome:?}");
            };
            assert_eq!(attempts, 1);
            assert!(reason.contains("302"), "{reason}");
        }

        #[tokio::test]
        async fn breaker_opens_sends_nothing_while_open_and_can_be_cancelled() {
            let server = https_server(|_| status(500)).await;
            let options = WebhookOptions {
                max_attempts: 50,
                breaker_threshold: 3,
                breaker_cooldown: Duration::from_secs(3600),
                ..fast_options(&server)
            };
            let client = WebhookClient::new(options).unwrap();
            let (tx, rx) = never();
            let task = {
                let client = client.clone();
                let target = target(&server);
                tokio::spawn(async move { client.deliver(&target, &message(), &rx).await })
            };
            server.wait_for_count(3).await;
            // The third failure opened the breaker; no fourth request may reach the server while it is open.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(client.breaker_state(&server.url), BreakerState::Open);
            assert_eq!(server.count(), 3);
            // Other deliveries to the same endpoint wait too.
            let (_tx2, rx2) = never();
            let second = {
                let client = client.clone();
                let target = target(&server);
                tokio::spawn(async move { client.deliver(&target, &message(), &rx2).await })
            };
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(server.count(), 3);
            assert!(!second.is_finished());
            second.abort();
            tx.send(true).unwrap();
            let result = tokio::time::timeout(GUARD, task).await.unwrap().unwrap();
            match result {
                Err(WebhookError::Cancelled { attempts, .. }) => assert_eq!(attempts, 3),
                other => panic!("expected Cancelled, got {other:?}"),
            }
            assert_eq!(server.count(), 3);
        }

        #[tokio::test]
        async fn breaker_probe_success_closes_it() {
            let healthy = Arc::new(AtomicBool::new(false));
            let server = {
                let healthy = Arc::clone(&healthy);
                https_server(move |_| {
                    if healthy.load(Ordering::SeqCst) {
                        status(200)
                    } else {
                        status(503)
                    }
                })
                .await
            };
            let options = WebhookOptions {
                max_attempts: 3,
                breaker_threshold: 2,
                breaker_cooldown: Duration::from_secs(3600),
                ..fast_options(&server)
            };
            let client = WebhookClient::new(options.clone()).unwrap();
            let (_tx, rx) = never();
            let task = {
                let client = client.clone();
                let target = target(&server);
                tokio::spawn(async move { client.deliver(&target, &message(), &rx).await })
            };
            server.wait_for_count(2).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(client.breaker_state(&server.url), BreakerState::Open);
            assert_eq!(server.count(), 2);
            // Make the endpoint healthy and end the cooldown early (as if it had passed).
            healthy.store(true, Ordering::SeqCst);
            {
                let breaker = client.breaker_for(&server.url);
                *lock(&breaker.state) = BreakerInner::Open {
                    until: Instant::now(),
                };
                breaker.changed.notify_waiters();
            }
            let outcome = tokio::time::timeout(GUARD, task)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            // Two failures plus the probe: time spent waiting on the breaker used no attempt,
            // even though max_attempts is 3.
            assert_eq!(
                outcome,
                DeliveryOutcome::Delivered {
                    attempts: 3,
                    status: 200
                }
            );
            assert_eq!(server.count(), 3);
            assert_eq!(client.breaker_state(&server.url), BreakerState::Closed);
        }

        #[tokio::test]
        async fn breaker_failed_probe_reopens_then_later_probe_closes() {
            // Requests 1-2 open the breaker, probe 3 fails and re-opens it, probe 4 succeeds.
            let server = https_server(|n| if n <= 3 { status(500) } else { status(200) }).await;
            let options = WebhookOptions {
                max_attempts: 4,
                breaker_threshold: 2,
                breaker_cooldown: Duration::from_millis(20),
                ..fast_options(&server)
            };
            let client = WebhookClient::new(options).unwrap();
            let (_tx, rx) = never();
            let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
            assert_eq!(
                outcome,
                DeliveryOutcome::Delivered {
                    attempts: 4,
                    status: 200
                }
            );
            assert_eq!(server.count(), 4);
            assert_eq!(client.breaker_state(&server.url), BreakerState::Closed);
        }

        #[tokio::test]
        async fn retry_after_is_honoured() {
            let server = https_server(|n| {
                if n == 1 {
                    (AxumStatus::TOO_MANY_REQUESTS, [("retry-after", "3600")]).into_response()
                } else {
                    status(200)
                }
            })
            .await;
            // Without Retry-After the next attempt would come within 1 ms.
            let options = WebhookOptions {
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_secs(7200),
                ..fast_options(&server)
            };
            let client = WebhookClient::new(options).unwrap();
            let (tx, rx) = never();
            let task = {
                let client = client.clone();
                let target = target(&server);
                tokio::spawn(async move { client.deliver(&target, &message(), &rx).await })
            };
            server.wait_for_count(1).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(server.count(), 1, "the retry did not wait for Retry-After");
            tx.send(true).unwrap();
            let result = tokio::time::timeout(GUARD, task).await.unwrap().unwrap();
            assert!(
                matches!(result, Err(WebhookError::Cancelled { attempts: 1, .. })),
                "{result:?}"
            );
            assert_eq!(server.count(), 1);
        }

        #[tokio::test]
        async fn retry_after_is_capped_by_max_backoff() {
            let server = https_server(|n| {
                if n == 1 {
                    (AxumStatus::SERVICE_UNAVAILABLE, [("retry-after", "86400")]).into_response()
                } else {
                    status(200)
                }
            })
            .await;
            let client = WebhookClient::new(fast_options(&server)).unwrap();
            let (_tx, rx) = never();
            // Completes only if the one-day Retry-After was capped to max_backoff (5 ms).
            let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
            assert_eq!(
                outcome,
                DeliveryOutcome::Delivered {
                    attempts: 2,
                    status: 200
                }
            );
        }

        #[tokio::test]
        async fn plain_http_is_refused_unless_allowed() {
            let server = http_server(|_| status(200)).await;
            let mut options = fast_options(&server);
            options.extra_root_certificates_pem = None;
            let client = WebhookClient::new(options.clone()).unwrap();
            let (_tx, rx) = never();
            let secret_target = WebhookTarget {
                url: server.url.replace("http://", "http://alice:pa55word@") + "?token=t0ken",
                signing_key: KEY.to_vec(),
            };
            let err = deliver(&client, &secret_target, &rx).await.unwrap_err();
            assert!(
                matches!(err, WebhookError::PlainHttpNotAllowed { .. }),
                "{err}"
            );
            let text = err.to_string();
            assert!(text.contains("127.0.0.1"), "{text}");
            for secret in ["pa55word", "t0ken", "test-signing-key"] {
                assert!(!text.contains(secret), "{text}");
            }
            assert_eq!(server.count(), 0);

            let client = WebhookClient::new(WebhookOptions {
                allow_plain_http: true,
                ..options
            })
            .unwrap();
            let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
            assert_eq!(
                outcome,
                DeliveryOutcome::Delivered {
                    attempts: 1,
                    status: 200
                }
            );
            assert!(server.seen()[0].signature_ok);
        }

        #[tokio::test]
        async fn unusable_targets_are_errors() {
            let client = WebhookClient::new(WebhookOptions::default()).unwrap();
            let (_tx, rx) = never();
            let bad = |url: &str, key: &[u8]| WebhookTarget {
                url: url.into(),
                signing_key: key.to_vec(),
            };
            let err = deliver(&client, &bad("not a url", KEY), &rx)
                .await
                .unwrap_err();
            assert!(matches!(err, WebhookError::InvalidUrl { .. }), "{err}");
            let err = deliver(&client, &bad("ftp://u:pw@example.com/x?k=v", KEY), &rx)
                .await
                .unwrap_err();
            assert!(
                matches!(err, WebhookError::UnsupportedScheme { .. }),
                "{err}"
            );
            assert!(
                !err.to_string().contains("pw") && !err.to_string().contains("k=v"),
                "{err}"
            );
            let err = deliver(&client, &bad("https://127.0.0.1:9/hook", b""), &rx)
                .await
                .unwrap_err();
            assert!(matches!(err, WebhookError::EmptySigningKey { .. }), "{err}");
        }

        #[tokio::test]
        async fn untrusted_certificate_is_refused_as_tls_failure() {
            let server = https_server(|_| status(200)).await;
            // Trust a different self-signed certificate, not the server's.
            let (other_cert, _) = self_signed();
            let options = WebhookOptions {
                max_attempts: 2,
                extra_root_certificates_pem: Some(other_cert.into_bytes()),
                ..fast_options(&server)
            };
            let client = WebhookClient::new(options).unwrap();
            let (_tx, rx) = never();
            let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
            let DeliveryOutcome::GaveUp { attempts, reason } = outcome else {
                panic!("expected GaveUp, got {outcome:?}");
            };
            assert_eq!(attempts, 2);
            assert!(reason.contains("TLS"), "{reason}");
            assert_eq!(
                server.count(),
                0,
                "no request may pass an untrusted TLS handshake"
            );
        }

        #[tokio::test]
        async fn cancellation_stops_an_in_flight_request() {
            // A server that never answers.
            let hanging = {
                install_provider();
                let (cert_pem, key_pem) = self_signed();
                let config = axum_server::tls_rustls::RustlsConfig::from_pem(
                    cert_pem.clone().into_bytes(),
                    key_pem.into_bytes(),
                )
                .await
                .unwrap();
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                listener.set_nonblocking(true).unwrap();
                let port = listener.local_addr().unwrap().port();
                let seen = Arc::new(AtomicUsize::new(0));
                let app = {
                    let seen = Arc::clone(&seen);
                    Router::new().route(
                        "/hook",
                        post(move || {
                            let seen = Arc::clone(&seen);
                            async move {
                                seen.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                AxumStatus::OK
                            }
                        }),
                    )
                };
                let srv = axum_server::from_tcp_rustls(listener, config).unwrap();
                let task = tokio::spawn(async move {
                    let _ = srv.serve(app.into_make_service()).await;
                });
                (
                    format!("https://127.0.0.1:{port}/hook"),
                    cert_pem,
                    seen,
                    task,
                )
            };
            let (url, cert_pem, seen, task) = hanging;
            let options = WebhookOptions {
                request_timeout: Duration::from_secs(3600),
                extra_root_certificates_pem: Some(cert_pem.into_bytes()),
                egress: Arc::new(EgressPolicy::new(&["127.0.0.0/8".into()]).unwrap()),
                ..WebhookOptions::default()
            };
            let client = WebhookClient::new(options).unwrap();
            let (tx, rx) = never();
            let delivery = {
                let client = client.clone();
                let target = WebhookTarget {
                    url,
                    signing_key: KEY.to_vec(),
                };
                tokio::spawn(async move { client.deliver(&target, &message(), &rx).await })
            };
            tokio::time::timeout(GUARD, async {
                while seen.load(Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
            .await
            .unwrap();
            tx.send(true).unwrap();
            // The request would hang for an hour; only cancellation can end it within the guard.
            let result = tokio::time::timeout(GUARD, delivery)
                .await
                .unwrap()
                .unwrap();
            assert!(
                matches!(result, Err(WebhookError::Cancelled { attempts: 1, .. })),
                "{result:?}"
            );
            task.abort();
        }

        #[tokio::test]
        async fn cancelled_before_start_or_by_dropped_sender_sends_nothing() {
            let server = https_server(|_| status(200)).await;
            let client = WebhookClient::new(fast_options(&server)).unwrap();
            let (tx, rx) = watch::channel(true);
            let err = deliver(&client, &target(&server), &rx).await.unwrap_err();
            assert!(
                matches!(err, WebhookError::Cancelled { attempts: 0, .. }),
                "{err}"
            );
            drop(tx);
            let (tx, rx) = watch::channel(false);
            drop(tx);
            let err = deliver(&client, &target(&server), &rx).await.unwrap_err();
            assert!(
                matches!(err, WebhookError::Cancelled { attempts: 0, .. }),
                "{err}"
            );
            assert_eq!(server.count(), 0);
        }

        #[tokio::test]
        async fn unusable_record_id_gives_up_without_sending() {
            let server = https_server(|_| status(200)).await;
            let client = WebhookClient::new(fast_options(&server)).unwrap();
            let (_tx, rx) = never();
            let mut bad = message();
            bad.record_id = "rec\r\nX-Injected: 1".into();
            let outcome = client.deliver(&target(&server), &bad, &rx).await.unwrap();
            assert!(
                matches!(outcome, DeliveryOutcome::GaveUp { attempts: 0, .. }),
                "{outcome:?}"
            );
            assert_eq!(server.count(), 0);
        }
    }
}
