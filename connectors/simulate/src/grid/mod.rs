//! Simulator of the county grid-management platforms (网格化服务管理平台) behind the built-in `grid` connector.
//!
//! The platform pushes JSON to the hub's `POST /ingest/grid` with `Authorization: Bearer <token>`, in the dialect
//! documented in `connectors/builtin/grid/README.md`: pinyin-initial field names, codes and numbers as strings,
//! `sbsj` as `2021/9/14 9:21`, `gxsj` as `20210914092100`, a `msgType` discriminator.
//!
//! Traffic looks like a platform coming online: first the grid units of a few real villages per county, each
//! followed by its households (care level green / yellow / red, about 10 % red) and their residents; then events.
//! An event is reported by the grid member (上报) and re-sent each time it moves on — one more `lcjl` step and a
//! newer `gxsj` — through 受理, 分流, 办理, 督办 or 退回 until it is closed (结案) after 3 to 6 steps. Now and then
//! a household is re-tagged or a resident's data changes, which makes a new version of them.
//!
//! A configurable share of the records is malformed with exactly one [`Malformation`] (a wrong check digit, a
//! missing required field, a garbage date, an unknown code, an unknown `msgType`), so the dead-letter topic has
//! something to show; each knows the stage that must reject it.
//!
//! [`GridGenerator`] makes the records, pure and deterministic from its seed (a simulated clock starts on
//! 2024-06-03 08:00 Beijing time), so tests and benchmarks use the dialect without HTTP ([`generate`]). [`run`]
//! POSTs them at the configured rate, retries on 5xx and connection errors with backoff, counts what the hub
//! accepted and rejected, and logs progress every few seconds.
//!
//! The parts: this file holds the options, counts, errors and malformations; `reference.rs` the platform's
//! reference data (the event-type table, tags, time formats); `state.rs` what it remembers between records;
//! `generator.rs` the generator; `push.rs` the pushing.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::fake::DEFAULT_COUNTIES;

mod generator;
mod push;
mod reference;
mod state;

pub use generator::GridGenerator;
pub use push::run;

/// The connector the simulator pushes to: `POST {hub_url}/ingest/grid`.
pub const CONNECTOR: &str = "grid";

// ---------------------------------------------------------------------------------------------------------------
// Options, statistics, errors
// ---------------------------------------------------------------------------------------------------------------

/// Options of the grid simulator (`unsilo simulate grid`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSimulatorOptions {
    /// Base URL of the hub, e.g. `http://127.0.0.1:8080`; records go to `{hub_url}/ingest/grid`.
    #[serde(default = "default_hub_url")]
    pub hub_url: String,
    /// The `grid` connector's push token (sent as `Authorization: Bearer <token>`).
    pub token: String,
    /// Records per second (on average); `0` sends as fast as the hub answers.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Share of malformed records, 0.0–1.0.
    #[serde(default = "default_malformed_share")]
    pub malformed_share: f64,
    /// Seed of the data: the same seed gives the same records (and record ids).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Stop after this many records; without it, run until shut down.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Records per request (a JSON array); 1 sends single objects.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// 6-digit county codes whose grid platforms are simulated (default 汉阴县 610921 and 阎良区 610114).
    #[serde(default = "default_counties")]
    pub counties: Vec<String>,
}

fn default_hub_url() -> String {
    "http://127.0.0.1:8080".into()
}
fn default_rate() -> f64 {
    20.0
}
fn default_malformed_share() -> f64 {
    0.05
}
fn default_seed() -> u64 {
    1
}
fn default_batch_size() -> usize {
    20
}
fn default_counties() -> Vec<String> {
    DEFAULT_COUNTIES.iter().map(|c| (*c).to_owned()).collect()
}

impl Default for GridSimulatorOptions {
    fn default() -> Self {
        Self {
            hub_url: default_hub_url(),
            token: String::new(),
            rate: default_rate(),
            malformed_share: default_malformed_share(),
            seed: default_seed(),
            limit: None,
            batch_size: default_batch_size(),
            counties: default_counties(),
        }
    }
}

impl fmt::Debug for GridSimulatorOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: never print it.
        f.debug_struct("GridSimulatorOptions")
            .field("hub_url", &self.hub_url)
            .field("rate", &self.rate)
            .field("malformed_share", &self.malformed_share)
            .field("seed", &self.seed)
            .field("limit", &self.limit)
            .field("batch_size", &self.batch_size)
            .field("counties", &self.counties)
            .finish_non_exhaustive()
    }
}

impl GridSimulatorOptions {
    /// Checks the options; the error names the option at fault.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |m: String| Err(Error::InvalidOptions(m));
        if !(self.hub_url.starts_with("http://") || self.hub_url.starts_with("https://")) {
            return invalid(format!(
                "hub_url `{}` must start with http:// or https://",
                self.hub_url
            ));
        }
        if self.token.trim().is_empty() {
            return invalid("token is empty; the hub needs the grid connector's push token".into());
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return invalid(format!(
                "rate {} must be a number of records per second, 0 or more",
                self.rate
            ));
        }
        if let Err(e) = crate::options::within(
            "malformed_share",
            self.malformed_share,
            crate::options::SHARE,
        ) {
            return invalid(e);
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return invalid(format!(
                "batch_size {} must be between 1 and 10000",
                self.batch_size
            ));
        }
        Ok(())
    }
}

/// What a simulator run did, as the hub answered it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records the hub answered for (accepted + rejected).
    pub sent: u64,
    /// Records the hub accepted.
    pub accepted: u64,
    /// Records the hub rejected (they are on `dlq.grid`).
    pub rejected: u64,
    /// Records the simulator malformed on purpose.
    pub malformed_sent: u64,
    /// Well-formed records the hub rejected anyway (a bug in the connector or the simulator: should stay 0).
    pub unexpected_rejections: u64,
    /// Malformed records the hub accepted anyway (should stay 0).
    pub malformed_accepted: u64,
    /// Accepted records per shared schema, e.g. `grid_event`.
    pub accepted_by_schema: BTreeMap<String, u64>,
    /// Rejected records per reason, as `stage/code`, e.g. `validation/validator(cert_no)`.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// HTTP requests that got an answer.
    pub requests: u64,
    /// Requests repeated after a 5xx, 408, 429 or connection error.
    pub retries: u64,
}

/// Why the simulator stopped before its limit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options are not usable (the message names the option).
    #[error("invalid simulator options: {0}")]
    InvalidOptions(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The hub refused the token (401 or 403).
    #[error("the hub refused the grid connector's token (HTTP {status})")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// The hub refused the request for a reason retrying will not fix (404 unknown connector, 400, 413, …).
    #[error("the hub refused the request (HTTP {status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The hub's message (shortened).
        message: String,
    },
    /// The hub stayed unreachable or unavailable through every retry.
    #[error("the hub is unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The hub answered 207 or 422 with a body the simulator cannot read.
    #[error("the hub's answer cannot be read: {0}")]
    BadAnswer(String),
}

// ---------------------------------------------------------------------------------------------------------------
// Malformations
// ---------------------------------------------------------------------------------------------------------------

/// How a malformed record is broken. Each breaks exactly one thing and is rejected at a known stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformation {
    /// An identifier fails its validator: an ID number with a wrong check digit (event party, household head,
    /// resident), or — on records without one — a grid code with serial `000`.
    BadIdentifier,
    /// A required field is missing (the record id, `gxsj`, or another required field).
    MissingField,
    /// A date that is not one: `2024/6/31 9:21`, month 13, February 30.
    GarbageDate,
    /// A code outside its code table: a care level `5`, a workflow step `35`, an ethnicity `60`.
    UnknownCode,
    /// A `msgType` the connector has no mapping for (`PATROL`, `VISIT`, …).
    UnknownMsgType,
}

impl Malformation {
    /// Every malformation.
    pub const ALL: [Malformation; 5] = [
        Self::BadIdentifier,
        Self::MissingField,
        Self::GarbageDate,
        Self::UnknownCode,
        Self::UnknownMsgType,
    ];

    /// The stage of the hub's normaliser that rejects it: `validation`, `contract` or `mapping`.
    pub fn expected_stage(self) -> &'static str {
        match self {
            Self::BadIdentifier => "validation",
            Self::MissingField => "contract",
            Self::GarbageDate | Self::UnknownCode | Self::UnknownMsgType => "mapping",
        }
    }

    /// The reject code the hub gives it, or the code's prefix for validator failures (`validator(`).
    pub fn expected_code_prefix(self) -> &'static str {
        match self {
            Self::BadIdentifier => "validator(",
            Self::MissingField => "contract_violation",
            Self::GarbageDate => "bad_datetime",
            Self::UnknownCode => "bad_code",
            Self::UnknownMsgType => "no_mapping",
        }
    }
}

/// One raw record of the grid dialect, as the platform would push it.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedRecord {
    /// The message (a JSON object).
    pub record: Value,
    /// How it was broken, if it was.
    pub malformation: Option<Malformation>,
}

/// The first `count` records of a generator with this seed, counties and malformed share — for tests and
/// benchmarks that want the grid dialect without HTTP.
pub fn generate(
    seed: u64,
    counties: &[&str],
    malformed_share: f64,
    count: usize,
) -> Vec<GeneratedRecord> {
    GridGenerator::new(seed, counties, malformed_share).next_batch(count)
}
