//! Helpers the transports share: durations in configs (one syntax for all), URLs safe to log, and waiting for
//! the next poll.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::sdk::Shutdown;

/// Deserialises a duration written as `"5s"`, `"500ms"`, `"2m"`, `"1h"` or a bare number of seconds.
pub fn deserialize_duration<'de, D>(deserializer: D) -> Result<Duration, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Seconds(u64),
        Text(String),
    }
    match Written::deserialize(deserializer)? {
        Written::Seconds(secs) => Ok(Duration::from_secs(secs)),
        Written::Text(text) => parse_duration(&text).map_err(serde::de::Error::custom),
    }
}

/// A duration that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?} (write e.g. \"500ms\", \"5s\", \"2m\", \"1h30m\", or a number of seconds)")]
pub struct InvalidDuration {
    /// The text given.
    pub text: String,
}

/// Parses a duration: a bare number of seconds (`"5"`), or what `humantime` reads — a sum of number-unit parts
/// such as `"500ms"`, `"5s"`, `"2m"`, `"1h30m"`, `"1d"`. One syntax for every transport's and the hub's settings.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t).map_err(|_| InvalidDuration {
        text: text.to_owned(),
    })
}

/// Removes every occurrence of `secret` (a password, a header value) from a message.
pub(crate) fn scrub(message: String, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 3)
        .fold(message, |m, s| m.replace(s, "***"))
}

/// Waits `interval`, or less if shutdown is requested. Returns `true` if shutdown was requested.
pub(crate) async fn sleep_or_shutdown(shutdown: &mut Shutdown, interval: Duration) -> bool {
    if shutdown.is_requested() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(interval) => shutdown.is_requested(),
        () = shutdown.wait() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2 sec"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn secrets_are_scrubbed_from_messages() {
        assert_eq!(
            scrub("auth s3cret failed".into(), &["s3cret"]),
            "auth *** failed"
        );
    }
}
