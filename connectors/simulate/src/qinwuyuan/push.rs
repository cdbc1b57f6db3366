//! Pushing to the hub: bodies posted at the configured rate, transient failures retried with backoff, and the
//! hub's answers read per record ([`run`]).

use std::time::Duration;

use chrono::DateTime;
use serde_json::Value;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};
use unsilo_connectors::sdk::Shutdown;

use super::generator::{PushGenerator, PushRecord};
use super::{check, Error, QinwuyuanOptions, Stats};
use crate::clock::{beijing, floor_second, wall_clock_ms};

/// The longest a retry waits.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first retry's wait.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The hub's answer to one push: per-record outcome (`true` = accepted) when it lists them, and the counts.
struct Answer {
    pub(super) outcomes: Option<Vec<bool>>,
    pub(super) accepted: u64,
    pub(super) rejected: u64,
}

fn read_answer(status: u16, body: &[u8], records: usize) -> Result<Answer, Error> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let outcomes = parsed
        .as_ref()
        .and_then(|v| v.get("results"))
        .and_then(Value::as_array)
        .map(|results| {
            let mut outcomes = vec![status == 200; records];
            for r in results {
                let index = r.get("index").and_then(Value::as_u64).map(|i| i as usize);
                let accepted = r.get("status").and_then(Value::as_str) == Some("accepted");
                if let Some(slot) = index.and_then(|i| outcomes.get_mut(i)) {
                    *slot = accepted;
                }
            }
            outcomes
        })
        .filter(|o| o.len() == records);
    if let Some(o) = &outcomes {
        let accepted = o.iter().filter(|a| **a).count() as u64;
        return Ok(Answer {
            outcomes,
            accepted,
            rejected: records as u64 - accepted,
        });
    }
    let count = |key: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(Value::as_u64)
    };
    match (status, count("accepted"), count("rejected")) {
        (_, Some(accepted), Some(rejected)) => Ok(Answer {
            outcomes: None,
            accepted,
            rejected,
        }),
        // 202: an edge node (前置) holds the batch durably and forwards it to the hub.
        (200 | 202, _, _) => Ok(Answer {
            outcomes: None,
            accepted: records as u64,
            rejected: 0,
        }),
        (422, _, _) => Ok(Answer {
            outcomes: None,
            accepted: 0,
            rejected: records as u64,
        }),
        _ => Err(Error::BadAnswer {
            status,
            reason: "no per-record results or counts in the answer".into(),
        }),
    }
}

/// The hub's message in an error answer, cut short (the hub never echoes secrets, but keep logs small).
fn hub_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    text.chars().take(300).collect()
}

/// Posts one body, retrying transient failures with exponential backoff. `Ok(None)` if shutdown came first.
async fn post(
    client: &reqwest::Client,
    options: &QinwuyuanOptions,
    body: Vec<u8>,
    records: usize,
    stats: &mut Stats,
    shutdown: &mut Shutdown,
) -> Result<Option<Answer>, Error> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        stats.requests += 1;
        let request = client
            .post(&options.url)
            .bearer_auth(&options.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send();
        let result = tokio::select! {
            r = request => r,
            () = shutdown.wait() => return Ok(None),
        };
        let failure = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let bytes = match response.bytes().await {
                    Ok(b) => b.to_vec(),
                    Err(e) => {
                        // The answer was lost on the way: the hub may or may not have stored the records. Pushing
                        // again is safe, as record ids are deterministic.
                        format!("reading the answer: {e}").into_bytes()
                    }
                };
                match status {
                    200 | 202 | 207 | 422 => return read_answer(status, &bytes, records).map(Some),
                    408 | 429 | 500..=599 => format!("HTTP {status}: {}", hub_message(&bytes)),
                    _ => {
                        return Err(Error::Refused {
                            status,
                            message: hub_message(&bytes),
                        })
                    }
                }
            }
            Err(e) => {
                // reqwest errors name the URL, which holds no secret (the token is in a header).
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                text
            }
        };
        if attempts > options.max_retries {
            return Err(Error::GaveUp {
                attempts,
                last: failure,
            });
        }
        stats.retries += 1;
        warn!(
            attempt = attempts,
            wait_ms = backoff.as_millis() as u64,
            failure = %failure,
            "Push failed; retrying."
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.wait() => return Ok(None),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Pushes records to the hub at the configured rate until `limit` records are answered for or `shutdown`
/// fires; returns what the hub made of them.
pub async fn run(options: QinwuyuanOptions, mut shutdown: Shutdown) -> Result<Stats, Error> {
    check(&options)?;
    let start_ms = options
        .start
        .as_ref()
        .map_or_else(|| floor_second(wall_clock_ms()), |s| s.timestamp_millis());
    let start = DateTime::from_timestamp_millis(start_ms)
        .map(|t| t.with_timezone(&beijing()))
        .ok_or_else(|| Error::Options(format!("start {start_ms} ms is out of range")))?;
    let mut generator = PushGenerator::new(&options, start);
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .build()
        .map_err(|e| Error::Client(e.to_string()))?;
    let period = Duration::try_from_secs_f64(options.batch_size as f64 / options.rate)
        .map_err(|e| Error::Options(format!("batch_size / rate is no interval: {e}")))?
        .max(Duration::from_micros(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stats = Stats::default();
    let mut generated: u64 = 0;
    info!(
        rate = options.rate,
        batch_size = options.batch_size,
        malformed_share = options.malformed_share,
        "秦务员 simulator pushing."
    );
    loop {
        let remaining = options.limit.map(|l| l.saturating_sub(generated));
        if remaining == Some(0) {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.wait() => break,
        }
        let n = remaining.map_or(options.batch_size, |r| {
            usize::try_from(r).map_or(options.batch_size, |r| r.min(options.batch_size))
        });
        let batch: Vec<PushRecord> = (0..n).map(|_| generator.next_record()).collect();
        generated += n as u64;
        let body = match batch.as_slice() {
            [one] => serde_json::to_vec(&one.record),
            many => serde_json::to_vec(&many.iter().map(|r| &r.record).collect::<Vec<_>>()),
        }
        .map_err(|e| Error::Client(format!("encoding the batch: {e}")))?;
        let Some(answer) = post(&client, &options, body, n, &mut stats, &mut shutdown).await?
        else {
            break;
        };
        stats.sent += n as u64;
        stats.malformed_sent += batch.iter().filter(|r| r.malformed).count() as u64;
        stats.accepted += answer.accepted;
        stats.rejected += answer.rejected;
        if let Some(outcomes) = &answer.outcomes {
            stats.unexpected += batch
                .iter()
                .zip(outcomes)
                .filter(|(r, accepted)| r.malformed == **accepted)
                .count() as u64;
        }
        debug!(
            records = n,
            accepted = answer.accepted,
            rejected = answer.rejected,
            "Push answered."
        );
    }
    info!(?stats, "秦务员 simulator stopped.");
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::read_answer;

    #[test]
    fn answers_are_read_per_record() {
        let body = br#"{"accepted":1,"rejected":1,"results":[{"index":0,"status":"accepted"},{"index":1,"status":"rejected"}]}"#;
        let a = read_answer(207, body, 2).expect("readable");
        assert_eq!(a.outcomes, Some(vec![true, false]));
        assert_eq!((a.accepted, a.rejected), (1, 1));
        let a = read_answer(200, b"", 3).expect("a bare 200 means all accepted");
        assert_eq!((a.accepted, a.rejected), (3, 0));
        assert!(read_answer(207, b"<html>", 3).is_err());
    }
}
