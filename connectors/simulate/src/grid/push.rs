//! Pushing generated records to the hub's `POST /ingest/grid`: batches, retries with backoff, counts and
//! progress ([`run`]).

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;
use tracing::{info, warn};
use unsilo_connectors::sdk::Shutdown;

use super::{Error, GeneratedRecord, GridGenerator, GridSimulatorOptions, Stats, CONNECTOR};

/// Attempts per batch before the simulator gives up on an unavailable hub.
const MAX_ATTEMPTS: u32 = 8;
/// First retry delay; doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// How often [`run`] logs its progress.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The hub's answer to one push, as far as the simulator reads it.
#[derive(Debug, Default, Deserialize)]
struct IngestAnswer {
    #[serde(default)]
    accepted: Option<u64>,
    #[serde(default)]
    rejected: Option<u64>,
    #[serde(default)]
    results: Vec<IngestResult>,
}

#[derive(Debug, Deserialize)]
struct IngestResult {
    #[serde(default)]
    index: Option<usize>,
    status: String,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    error: Option<IngestError>,
}

#[derive(Debug, Deserialize)]
struct IngestError {
    #[serde(default)]
    stage: String,
    #[serde(default)]
    code: String,
}

impl Stats {
    /// Adds the hub's answer for one batch.
    fn absorb(&mut self, status: u16, body: &[u8], batch: &[GeneratedRecord]) -> Result<(), Error> {
        let answer: IngestAnswer = match serde_json::from_slice(body) {
            Ok(a) => a,
            Err(_) if status == 200 || status == 202 => IngestAnswer::default(),
            Err(e) => return Err(Error::BadAnswer(format!("HTTP {status}: {e}"))),
        };
        self.requests += 1;
        self.malformed_sent += batch.iter().filter(|r| r.malformation.is_some()).count() as u64;
        if answer.results.is_empty() {
            // No per-record results: trust the totals, or take every record as accepted on a 200 — or on a 202,
            // an edge node's answer that the batch is durable there and goes on to the hub.
            let accepted = answer
                .accepted
                .unwrap_or(if status == 200 || status == 202 {
                    batch.len() as u64
                } else {
                    0
                });
            let rejected = answer
                .rejected
                .unwrap_or((batch.len() as u64).saturating_sub(accepted));
            self.accepted += accepted;
            self.rejected += rejected;
            self.sent += accepted + rejected;
            return Ok(());
        }
        for (position, result) in answer.results.iter().enumerate() {
            let index = result.index.unwrap_or(position);
            let malformed = batch.get(index).and_then(|r| r.malformation).is_some();
            self.sent += 1;
            if result.status == "accepted" {
                self.accepted += 1;
                if malformed {
                    self.malformed_accepted += 1;
                }
                let schema = result.schema.clone().unwrap_or_else(|| "unknown".into());
                *self.accepted_by_schema.entry(schema).or_insert(0) += 1;
            } else {
                self.rejected += 1;
                if !malformed {
                    self.unexpected_rejections += 1;
                }
                let reason = result.error.as_ref().map_or_else(
                    || "unknown".to_owned(),
                    |e| format!("{}/{}", e.stage, e.code),
                );
                *self.rejected_by_reason.entry(reason).or_insert(0) += 1;
            }
        }
        Ok(())
    }
}

/// POSTs one batch, retrying on 5xx, 408, 429 and connection errors with exponential backoff.
/// `Ok(None)`: shutdown was requested while waiting to retry.
async fn post_with_retry(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
    shutdown: &mut Shutdown,
    stats: &mut Stats,
) -> Result<Option<(u16, Vec<u8>)>, Error> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = client
            .post(url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                match status {
                    200 | 202 | 207 | 422 => {
                        return match response.bytes().await {
                            Ok(b) => Ok(Some((status, b.to_vec()))),
                            Err(e) => Err(Error::BadAnswer(format!(
                                "HTTP {status}: cannot read the body: {e}"
                            ))),
                        };
                    }
                    401 | 403 => return Err(Error::Unauthorized { status }),
                    408 | 429 | 500..=599 => format!("HTTP {status}"),
                    _ => {
                        let text = response.text().await.unwrap_or_default();
                        let message: String = text.chars().take(300).collect();
                        return Err(Error::Refused { status, message });
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        if attempt >= MAX_ATTEMPTS {
            return Err(Error::Unavailable {
                attempts: attempt,
                last: failure,
            });
        }
        warn!(
            attempt,
            retry_in_ms = backoff.as_millis() as u64,
            error = %failure,
            "Push failed, retrying."
        );
        stats.retries += 1;
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.wait() => return Ok(None),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Runs the simulator: POSTs generated records to `{hub_url}/ingest/grid` at `rate` records per second in
/// batches of `batch_size`, until `limit` records were answered for or `shutdown` fires. Returns what the hub
/// answered; fails on a refused token, a refused request or a hub that stays unavailable through the retries.
pub async fn run(options: GridSimulatorOptions, mut shutdown: Shutdown) -> Result<Stats, Error> {
    options.validate()?;
    let counties: Vec<&str> = options.counties.iter().map(String::as_str).collect();
    let mut generator = GridGenerator::new(options.seed, &counties, options.malformed_share);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Client(e.to_string()))?;
    let url = format!(
        "{}/ingest/{CONNECTOR}",
        options.hub_url.trim_end_matches('/')
    );
    info!(url = %url, rate = options.rate, malformed_share = options.malformed_share, seed = options.seed, "Grid simulator started.");
    let started = Instant::now();
    let mut last_log = started;
    let mut generated: u64 = 0;
    let mut stats = Stats::default();
    loop {
        if shutdown.is_requested() {
            break;
        }
        let room = options
            .limit
            .map_or(u64::MAX, |l| l.saturating_sub(generated));
        if room == 0 {
            break;
        }
        let n = (options.batch_size as u64).min(room) as usize;
        if options.rate > 0.0 {
            // The batch goes out when the records before it have had their time at the configured rate.
            let due = started + Duration::from_secs_f64(generated as f64 / options.rate);
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = shutdown.wait() => break,
            }
        }
        let batch = generator.next_batch(n);
        generated += n as u64;
        let body = match batch.as_slice() {
            [one] => serde_json::to_vec(&one.record),
            many => serde_json::to_vec(&many.iter().map(|r| &r.record).collect::<Vec<_>>()),
        }
        .map_err(|e| Error::BadAnswer(format!("cannot encode the batch: {e}")))?;
        let Some((status, answer)) = post_with_retry(
            &client,
            &url,
            &options.token,
            body,
            &mut shutdown,
            &mut stats,
        )
        .await?
        else {
            break;
        };
        stats.absorb(status, &answer, &batch)?;
        if last_log.elapsed() >= LOG_EVERY {
            last_log = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            info!(
                sent = stats.sent,
                accepted = stats.accepted,
                rejected = stats.rejected,
                malformed = stats.malformed_sent,
                unexpected_rejections = stats.unexpected_rejections,
                records_per_s = format!("{:.1}", stats.sent as f64 / secs),
                "Grid simulator progress."
            );
        }
    }
    info!(
        sent = stats.sent,
        accepted = stats.accepted,
        rejected = stats.rejected,
        retries = stats.retries,
        elapsed_s = format!("{:.1}", started.elapsed().as_secs_f64()),
        "Grid simulator finished."
    );
    Ok(stats)
}
