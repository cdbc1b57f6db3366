//! Simulator of the 秦务员 government-service platform, which pushes its records to the hub.
//!
//! It `POST`s to the hub's ingest endpoint (`/ingest/qinwuyuan`) with `Authorization: Bearer <token>`, one JSON
//! object per request or an array of `batch_size` records, at `rate` records per second:
//!
//! - **办件** (`dataType` `BJ`): a citizen or enterprise applies for a service item (低保认定, 食品经营许可,
//!   户口迁移 …) online, in the app or at a window; the case is accepted (or not), then completed with a result
//!   and, for licences, a certificate number. Each change is pushed again with `dataVersion` one higher.
//! - **好差评** (`PJ`): most completed cases are rated 1–5; a bad rating (1–2) goes through rectification
//!   (整改中 → 已整改 → 已回访核实), pushed as new versions.
//! - **诉求** (`SQ`): appeals to a department — consultations, complaints (some about a case), suggestions,
//!   praise — accepted, replied to and closed with the appellant's satisfaction; some are transferred to 12345.
//!
//! A `malformed_share` of records carries one defect (no `dataType`, an unknown region, an impossible date, a
//! broken ID number, credit code or mobile number, a score out of range), so they end on the dead-letter topic.
//!
//! The hub answers `200` (all accepted), `207` (some rejected) or `422` (all rejected) with per-record `results`;
//! the simulator counts them, and compares each outcome with what it generated (`Stats::unexpected`). `5xx`,
//! `408`, `429` and connection failures are retried with exponential backoff; other answers (a wrong token,
//! an unknown connector) stop the run with an error.
//!
//! Records carry simulated times: new cases and appeals arrive on average every `4 × time_scale / rate`
//! simulated seconds (each brings about four records over its life), so the simulated clock runs about
//! `time_scale` times faster than the wall clock.
//! [`PushGenerator`] is the same generator without HTTP, deterministic for a seed and a start time. The raw
//! format is documented in `connectors/builtin/qinwuyuan/README.md`.
//!
//! The parts: this file holds the options, counts and errors; `catalogue.rs` the platform's departments, service
//! items and wordings; `generator.rs` the generator; `push.rs` the pushing.

use std::time::Duration;

use chrono::{DateTime, FixedOffset};

use super::clock::format_with;
use super::fake::DEFAULT_COUNTIES;

mod catalogue;
mod generator;
mod push;

pub use generator::{PushGenerator, PushRecord, RecordKind};
pub use push::run;

/// The platform's time format.
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

// ---------------------------------------------------------------------------------------------------------------
// Options, statistics, errors
// ---------------------------------------------------------------------------------------------------------------

/// Options of the 秦务员 simulator.
#[derive(Clone)]
pub struct QinwuyuanOptions {
    /// The hub's ingest endpoint, e.g. `http://127.0.0.1:8080/ingest/qinwuyuan`.
    pub url: String,
    /// The connector's push token, sent as `Authorization: Bearer <token>`. Never logged.
    pub token: String,
    /// Records per (wall-clock) second.
    pub rate: f64,
    /// Share of records with a defect, from 0.0 to 1.0.
    pub malformed_share: f64,
    /// Seed of the random generator: the same seed and start give the same records.
    pub seed: u64,
    /// Stop after this many records.
    pub limit: Option<u64>,
    /// Records per request; 1 sends a single JSON object, more send a JSON array.
    pub batch_size: usize,
    /// How often one request is retried after a `5xx`, `408`, `429` or a connection failure before the run
    /// stops with an error.
    pub max_retries: u32,
    /// About how many simulated seconds pass per wall-clock second.
    pub time_scale: f64,
    /// The simulated time at which the run starts; `None` for the wall clock at start.
    pub start: Option<DateTime<FixedOffset>>,
    /// 6-digit codes of the counties the records come from (unknown ones are ignored).
    pub counties: Vec<String>,
    /// How long one request may take.
    pub timeout: Duration,
}

impl Default for QinwuyuanOptions {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080/ingest/qinwuyuan".to_owned(),
            token: String::new(),
            rate: 20.0,
            malformed_share: 0.02,
            seed: 61,
            limit: None,
            batch_size: 1,
            max_retries: 10,
            time_scale: 600.0,
            start: None,
            counties: DEFAULT_COUNTIES.iter().map(|c| (*c).to_owned()).collect(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for QinwuyuanOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QinwuyuanOptions")
            .field("url", &self.url)
            .field("token", &"***")
            .field("rate", &self.rate)
            .field("malformed_share", &self.malformed_share)
            .field("seed", &self.seed)
            .field("limit", &self.limit)
            .field("batch_size", &self.batch_size)
            .field("max_retries", &self.max_retries)
            .field("time_scale", &self.time_scale)
            .field("start", &self.start)
            .field("counties", &self.counties)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What a simulator run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records the hub answered for.
    pub sent: u64,
    /// Of which generated with a defect.
    pub malformed_sent: u64,
    /// Records the hub accepted.
    pub accepted: u64,
    /// Records the hub rejected (they are on its dead-letter topic).
    pub rejected: u64,
    /// Records whose outcome differs from how they were generated: a valid record rejected or a malformed one
    /// accepted (only counted when the hub's answer lists per-record results).
    pub unexpected: u64,
    /// HTTP requests made, retries included.
    pub requests: u64,
    /// Requests repeated after a `5xx`, `408`, `429` or a connection failure.
    pub retries: u64,
}

/// Why the simulator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options cannot work.
    #[error("invalid 秦务员 simulator options: {0}")]
    Options(String),
    /// The HTTP client could not be set up.
    #[error("HTTP client: {0}")]
    Client(String),
    /// The hub refused the request for a reason retrying cannot fix (wrong token, unknown connector, bad body).
    #[error("the hub refused the push with HTTP {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The hub's message.
        message: String,
    },
    /// The hub kept failing.
    #[error("the hub did not take the push after {attempts} attempts; last: {last}")]
    GaveUp {
        /// Requests made for the batch.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The hub's answer could not be read.
    #[error("unreadable answer from the hub (HTTP {status}): {reason}")]
    BadAnswer {
        /// The HTTP status.
        status: u16,
        /// Why.
        reason: String,
    },
}

use crate::options::{within, SHARE};

/// The slowest and fastest rates (per second) and time scales the simulator takes.
const RATE_RANGE: (f64, f64) = (0.001, 1_000_000.0);
const TIME_SCALE_RANGE: (f64, f64) = (0.001, 10_000_000.0);
/// The largest batch (the hub takes bodies up to 16 MiB).
const MAX_BATCH: usize = 10_000;

fn check(options: &QinwuyuanOptions) -> Result<(), Error> {
    within("rate", options.rate, RATE_RANGE).map_err(Error::Options)?;
    within("malformed_share", options.malformed_share, SHARE).map_err(Error::Options)?;
    within("time_scale", options.time_scale, TIME_SCALE_RANGE).map_err(Error::Options)?;
    if !(1..=MAX_BATCH).contains(&options.batch_size) {
        return Err(Error::Options(format!(
            "batch_size must be between 1 and {MAX_BATCH}, not {}",
            options.batch_size
        )));
    }
    match reqwest::Url::parse(&options.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        _ => Err(Error::Options(
            "url must be an absolute http:// or https:// URL".into(),
        )),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------------------------------------------

fn format_time(ms: i64) -> String {
    format_with(ms, TIME_FORMAT)
}

/// The first `count` records of a run with these options starting at `start`, without HTTP.
pub fn generate(
    options: &QinwuyuanOptions,
    start: DateTime<FixedOffset>,
    count: usize,
) -> Vec<PushRecord> {
    let mut generator = PushGenerator::new(options, start);
    (0..count).map(|_| generator.next_record()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::test_start as start;

    #[test]
    fn records_come_in_time_order_and_versions_count_up() {
        // A slow arrival rate, so that 3 000 records cover weeks and every kind of change.
        let options = QinwuyuanOptions {
            malformed_share: 0.0,
            time_scale: 20_000.0,
            ..QinwuyuanOptions::default()
        };
        let records = generate(&options, start(), 3_000);
        let mut last_version: std::collections::HashMap<String, i64> = Default::default();
        let mut previous = String::new();
        for r in &records {
            let time = r.record["updateTime"]
                .as_str()
                .expect("updateTime")
                .to_owned();
            assert!(time >= previous, "{time} after {previous}");
            previous = time;
            let id = ["projectNo", "evaluateNo", "appealNo"]
                .iter()
                .find_map(|k| match r.kind.schema() {
                    "service_case" if *k == "projectNo" => r.record[*k].as_str(),
                    "rating" if *k == "evaluateNo" => r.record[*k].as_str(),
                    "appeal" if *k == "appealNo" => r.record[*k].as_str(),
                    _ => None,
                })
                .expect("an id")
                .to_owned();
            let version = r.record["dataVersion"].as_i64().expect("a version");
            let before = last_version.insert(id.clone(), version).unwrap_or(0);
            assert_eq!(version, before + 1, "{id}");
        }
        for kind in [
            RecordKind::ServiceCase,
            RecordKind::Rating,
            RecordKind::Appeal,
        ] {
            assert!(records.iter().any(|r| r.kind == kind), "{kind:?}");
        }
        assert!(records
            .iter()
            .any(|r| r.record.get("rectifyStatus").is_some_and(|s| s == "4")));
        assert!(records
            .iter()
            .any(|r| r.record.get("appealStatus").is_some_and(|s| s == "6")));
    }

    #[test]
    fn options_are_checked_and_the_token_never_printed() {
        let options = QinwuyuanOptions {
            token: "s3cret-token".into(),
            ..QinwuyuanOptions::default()
        };
        assert!(!format!("{options:?}").contains("s3cret-token"));
        assert!(check(&options).is_ok());
        let bad = QinwuyuanOptions {
            url: "ftp://hub".into(),
            ..QinwuyuanOptions::default()
        };
        assert!(matches!(check(&bad), Err(Error::Options(_))));
        let bad = QinwuyuanOptions {
            malformed_share: 1.5,
            ..QinwuyuanOptions::default()
        };
        assert!(matches!(check(&bad), Err(Error::Options(_))));
    }
}
