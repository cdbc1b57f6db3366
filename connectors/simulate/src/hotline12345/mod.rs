//! Simulator of the 12345 government service hotline's work-order API, which the hub polls.
//!
//! It *serves* the API itself (axum), the way the hotline vendor's system does:
//!
//! ```text
//! GET /api/workorders?updatedSince=20240914092100&pageSize=100      (header X-Api-Key when a key is set)
//! → 200 {"code": 0, "msg": "成功", "data": {"items": [ <work order>, … ]}}
//! ```
//!
//! Items are the tickets whose update time `gxsj` is at or after `updatedSince` (inclusive, as the `updated_since`
//! cursor of [`HttpPollSource`](unsilo_connectors::transport::http_poll::HttpPollSource) requires), oldest first, each
//! ticket in its current version only. Without `updatedSince` the API starts from the oldest ticket.
//!
//! Tickets are created at `rate` per second and then live on a simulated clock that runs `time_scale` times faster
//! than the wall clock: registration, dispatch to a lead unit (and sometimes an assisting town), signing,
//! sometimes a return and re-dispatch (退单改派) or a refused return, sometimes an extension request (延期),
//! completion (办结), a callback with the caller's satisfaction (回访) and archiving. Every change rewrites the
//! ticket with a new `gxsj` (at least one second after the previous one), so ticket number + `gxsj` names one
//! version. A `malformed_share` of tickets carry one defect in every version (content missing, call time in the
//! wrong format or on an impossible date, an unknown appeal type code, an unknown region code), so they end on the
//! dead-letter topic.
//!
//! The raw format is documented in `connectors/builtin/hotline12345/README.md`. [`WorkOrderGenerator`] is the
//! same generator without HTTP, deterministic for a seed and a start time, for tests and benchmarks.
//!
//! The parts: this file holds the options, counts and errors; `catalogue.rs` what callers ring about and the
//! units of a county; `generator.rs` the ticket generator; `api.rs` the HTTP API.

use std::net::SocketAddr;

use chrono::{DateTime, FixedOffset};

use super::clock::format_with;
use super::fake::DEFAULT_COUNTIES;

mod api;
mod catalogue;
mod generator;

pub use api::{run, serve};
pub use generator::{Ticket, TicketVersion, WorkOrderGenerator};

/// The time format of every time field: `yyyyMMddHHmmss`.
const TIME_FORMAT: &str = "%Y%m%d%H%M%S";
/// The largest page the API returns (larger `pageSize` values are cut to it).
const MAX_PAGE_SIZE: usize = 5_000;
/// Who answers consultations directly and completes them (直接答复办结).
const HOTLINE_UNIT: &str = "陕西省12345政务服务便民热线";

// ---------------------------------------------------------------------------------------------------------------
// Options, statistics, errors
// ---------------------------------------------------------------------------------------------------------------

/// Options of the 12345 hotline simulator.
#[derive(Clone, Debug)]
pub struct Hotline12345Options {
    /// Where [`run`] serves the work-order API, e.g. `127.0.0.1:18345`.
    pub addr: SocketAddr,
    /// New tickets per (wall-clock) second.
    pub rate: f64,
    /// Share of tickets with a defect in every version, from 0.0 to 1.0.
    pub malformed_share: f64,
    /// Seed of the random generator: the same seed and start give the same tickets.
    pub seed: u64,
    /// Stop creating tickets after this many (those created live on to the end of their life).
    pub limit: Option<u64>,
    /// Simulated seconds per wall-clock second. At 1440 a simulated day passes in a minute, and a ticket's life
    /// of a few days in a few minutes.
    pub time_scale: f64,
    /// The simulated time at which the run starts; `None` for the wall clock at start.
    pub start: Option<DateTime<FixedOffset>>,
    /// When set, every request must carry this key in an `X-Api-Key` header (401 otherwise).
    pub api_key: Option<String>,
    /// 6-digit codes of the counties the tickets come from (unknown ones are ignored).
    pub counties: Vec<String>,
}

impl Default for Hotline12345Options {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 18345)),
            rate: 1.0,
            malformed_share: 0.02,
            seed: 12345,
            limit: None,
            time_scale: 1440.0,
            start: None,
            api_key: None,
            counties: DEFAULT_COUNTIES.iter().map(|c| (*c).to_owned()).collect(),
        }
    }
}

/// What a simulator run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tickets created.
    pub tickets: u64,
    /// Of which malformed.
    pub malformed_tickets: u64,
    /// Ticket versions that became visible on the API.
    pub versions: u64,
    /// API requests answered (including refused ones).
    pub requests: u64,
}

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options cannot work.
    #[error("invalid 12345 simulator options: {0}")]
    Options(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The HTTP server failed.
    #[error("12345 work-order API server failed: {0}")]
    Serve(String),
}

use crate::options::{within, SHARE};

/// The slowest and fastest rates (per second) and time scales the simulator takes.
const RATE_RANGE: (f64, f64) = (0.001, 100_000.0);
const TIME_SCALE_RANGE: (f64, f64) = (0.001, 10_000_000.0);

fn check(options: &Hotline12345Options) -> Result<(), Error> {
    within("rate", options.rate, RATE_RANGE).map_err(Error::Options)?;
    within("malformed_share", options.malformed_share, SHARE).map_err(Error::Options)?;
    within("time_scale", options.time_scale, TIME_SCALE_RANGE).map_err(Error::Options)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------------------------------------------

/// Epoch milliseconds as `yyyyMMddHHmmss` in Beijing time.
fn format_time(ms: i64) -> String {
    format_with(ms, TIME_FORMAT)
}

fn to_ms(time: &DateTime<FixedOffset>) -> i64 {
    time.timestamp_millis()
}

/// The first `tickets` tickets of a run with these options starting at `start` — the same tickets the API
/// serves, without HTTP.
pub fn generate(
    options: &Hotline12345Options,
    start: DateTime<FixedOffset>,
    tickets: usize,
) -> Vec<Ticket> {
    let mut generator = WorkOrderGenerator::new(options, start);
    (0..tickets).map(|_| generator.next_ticket()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::close_of_business;
    use crate::clock::test_start as start;

    #[test]
    fn times_are_beijing_wall_clock() {
        assert_eq!(format_time(1_631_582_460_000), "20210914092100");
        let due = close_of_business(1_631_582_460_000);
        assert_eq!(format_time(due), "20210914180000");
    }

    #[test]
    fn versions_move_forward_by_whole_seconds() {
        let options = Hotline12345Options {
            malformed_share: 0.0,
            ..Hotline12345Options::default()
        };
        for ticket in generate(&options, start(), 300) {
            assert!(ticket.versions.len() >= 3, "{ticket:?}");
            let times: Vec<&str> = ticket
                .versions
                .iter()
                .map(|v| v.record["gxsj"].as_str().expect("gxsj"))
                .collect();
            assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
            let last = ticket.versions.last().expect("a version");
            assert_eq!(last.record["gdzt"], "08");
            assert!(ticket.versions.iter().all(|v| v.updated_ms % 1000 == 0));
        }
    }
}
