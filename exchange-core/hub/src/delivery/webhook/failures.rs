//! How a failed attempt is classified and described: status classes, Retry-After, backoff, transport and
//! TLS errors (URLs redacted).

#[allow(unused_imports)]
use super::*;

/// How a response status is handled.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StatusClass {
    Delivered,
    Retryable,
    Permanent,
}

pub(super) fn classify(status: StatusCode) -> StatusClass {
    match status.as_u16() {
        200..=299 => StatusClass::Delivered,
        408 | 425 | 429 | 500..=599 => StatusClass::Retryable,
        _ => StatusClass::Permanent,
    }
}

pub(super) fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// `Retry-After` in its delay-seconds form; the HTTP-date form is ignored (normal back-off applies).
pub(super) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// The wait before the attempt after `attempt` (1-based): `Retry-After` capped by `max_backoff` when given,
/// else full jitter under the exponential ceiling.
pub(super) fn retry_delay(
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
pub(super) fn backoff_ceiling(options: &WebhookOptions, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1));
    factor
        .and_then(|f| options.initial_backoff.checked_mul(f))
        .map_or(options.max_backoff, |d| d.min(options.max_backoff))
}

/// Describes a transport failure for logs and the GaveUp reason: TLS problems say so; no URL secrets.
pub(super) fn describe_transport_error(
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
pub(super) fn find_tls_error(error: &reqwest::Error) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = tls_inside(e) {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

pub(super) fn tls_inside<'e>(mut error: &'e (dyn StdError + 'static)) -> Option<&'e rustls::Error> {
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
pub(super) fn error_sources(error: &reqwest::Error) -> String {
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
pub(super) fn error_chain(error: &reqwest::Error) -> String {
    let first = error.to_string();
    let rest = error_sources(error);
    if error.source().is_none() {
        first
    } else {
        format!("{first}: {rest}")
    }
}
