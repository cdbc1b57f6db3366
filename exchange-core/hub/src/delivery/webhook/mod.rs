//! The webhook delivery channel's client: POSTs each record released to a subscription to the subscriber's
//! HTTPS endpoint, signed, retried and protected by a per-endpoint circuit breaker.
//!
//! ## Why it works the way it does
//!
//! - **At-least-once, made safe by idempotency.** A request can fail after the subscriber processed it (the
//!   response is lost), so every retry carries the same `Idempotency-Key` (the record id) and subscribers
//!   deduplicate on it. The signature and its timestamp are made afresh for every attempt, so a retry sent
//!   after a long back-off still passes the subscriber's freshness check.
//! - **Signatures a subscriber can check without trusting the network.** `X-Unsilo-Signature:
//!   hmac-sm3=<hex>` (国密, the default) or `v1=<hex>` (HMAC-SHA256, `[security] crypto = "international"`) is
//!   the keyed hash over `"{timestamp}.{body}"` with the subscription's shared key: the label names the
//!   algorithm. [`verify_signature`] is the reference check (constant-time, with a freshness window against
//!   replays). Several comma-separated values are accepted by the verifier so a subscriber can roll keys.
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
//!
//! # Layout
//!
//! - this file: the options, target, message and outcome types and the [`WebhookClient`] that delivers;
//! - `signing`: [`sign`] and [`verify_signature`];
//! - `breaker`: the per-endpoint circuit breaker;
//! - `failures`: how a failed attempt is classified (retryable or not), delayed and described.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use unsilo_schemas::redact::redact_url;

use crate::egress::{EgressPolicy, GuardedResolver};

mod breaker;
mod failures;
mod signing;
#[cfg(test)]
mod tests;

use breaker::*;
use failures::*;

pub use signing::{sign, signature_label, verify_signature};

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
    /// The keyed hash deliveries are signed with: HMAC-SM3 (`hmac-sm3=`) under gm, the default; HMAC-SHA256
    /// (`v1=`) under international.
    pub suite: unsilo_schemas::crypto::Suite,
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
            suite: unsilo_schemas::crypto::Suite::default(),
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
            // Never through a proxy from the environment (HTTP(S)_PROXY): the egress check must be of the
            // address the hub itself connects to.
            .no_proxy()
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
        let signature = sign(
            self.inner.options.suite,
            &target.signing_key,
            timestamp,
            &message.body,
        );
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
