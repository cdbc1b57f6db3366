//! Live flow figures, for the operator console and the demo's progress line: per connector, the records
//! accepted and rejected since the hub started and per minute over the last hour, its last source error and
//! its last checkpoint; per subscription, the records released, delivered and dead-lettered.
//!
//! They live in memory and start at zero with the hub. Prometheus (`/metrics`) carries the same counts for
//! long-term graphs; this is what a person glancing at the hub wants to see without a Prometheus server.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// How many minutes of per-minute counts each connector keeps.
pub const HISTORY_MINUTES: usize = 60;

/// The longest text kept for an error or a checkpoint.
const MAX_NOTE_CHARS: usize = 500;

/// The counts of one minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MinuteCount {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    /// Records accepted in that minute.
    pub accepted: u64,
    /// Records rejected (to the dead-letter topic) in that minute.
    pub rejected: u64,
}

/// Something noted at a time: a source error, a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Noted {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// What (cut to a few hundred characters).
    pub text: String,
}

impl Noted {
    fn now(text: &str) -> Self {
        Self {
            at_ms: unsilo_bus::now_ms(),
            text: text.chars().take(MAX_NOTE_CHARS).collect(),
        }
    }
}

/// One connector's flow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConnectorFlow {
    /// Records accepted since the hub started.
    pub accepted: u64,
    /// Records rejected since the hub started.
    pub rejected: u64,
    /// Per-minute counts, oldest first; minutes without records are absent.
    pub minutes: VecDeque<MinuteCount>,
    /// The source's last failure, if any.
    pub last_error: Option<Noted>,
    /// The source's last saved checkpoint (its JSON), if any.
    pub checkpoint: Option<Noted>,
}

impl ConnectorFlow {
    /// The counts of the last `n` minutes up to `now_minute`, oldest first, with zeros where nothing came.
    pub fn last_minutes(&self, now_minute: i64, n: usize) -> Vec<MinuteCount> {
        let first = now_minute - n as i64 + 1;
        (first..=now_minute)
            .map(|minute| {
                self.minutes
                    .iter()
                    .find(|m| m.minute == minute)
                    .copied()
                    .unwrap_or(MinuteCount {
                        minute,
                        ..MinuteCount::default()
                    })
            })
            .collect()
    }
}

/// One subscription's flow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SubscriptionFlow {
    /// Records released to its topic.
    pub released: u64,
    /// Records its delivery worker finished with: delivered, or dead-lettered.
    pub committed: u64,
    /// Records its channel refused for good (on its delivery dead-letter topic).
    pub dead_lettered: u64,
    /// Its history — a backfill, or the catch-up after a pause — as the router last reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryProgress>,
}

/// How far a subscription's history has come ([`crate::router`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HistoryProgress {
    /// Caught up on every partition this hub routes: released live.
    pub live: bool,
    /// Why it is behind, while it is: `backfill` or `pause`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Records of `std.<schema>` read for its history so far.
    pub read: u64,
    /// Records of history released to it so far.
    pub released: u64,
    /// Records of `std.<schema>` between where it stands and the live position.
    pub remaining: u64,
}

impl SubscriptionFlow {
    /// Records its channel delivered.
    pub fn delivered(&self) -> u64 {
        self.committed.saturating_sub(self.dead_lettered)
    }
}

/// Everything at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowSnapshot {
    /// By connector name.
    pub connectors: BTreeMap<String, ConnectorFlow>,
    /// By subscription id.
    pub subscriptions: BTreeMap<String, SubscriptionFlow>,
}

/// The live figures; cheap to update (one short lock per batch).
#[derive(Debug, Default)]
pub struct Flows {
    state: Mutex<FlowSnapshot>,
}

/// The entry of `name` in `map`, created empty if missing — without allocating a key when it is there (the
/// common case, on every batch).
fn entry<'m, T: Default>(map: &'m mut BTreeMap<String, T>, name: &str) -> &'m mut T {
    if !map.contains_key(name) {
        map.insert(name.to_owned(), T::default());
    }
    map.get_mut(name).expect("inserted above")
}

/// The current minute since the Unix epoch.
pub fn current_minute() -> i64 {
    unsilo_bus::now_ms().div_euclid(60_000)
}

impl Flows {
    fn with<T>(&self, f: impl FnOnce(&mut FlowSnapshot) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Counts a batch a connector made durable.
    pub fn ingest(&self, connector: &str, accepted: usize, rejected: usize) {
        self.ingest_at(connector, accepted, rejected, current_minute());
    }

    fn ingest_at(&self, connector: &str, accepted: usize, rejected: usize, minute: i64) {
        let (accepted, rejected) = (accepted as u64, rejected as u64);
        self.with(|s| {
            let flow = entry(&mut s.connectors, connector);
            flow.accepted += accepted;
            flow.rejected += rejected;
            match flow.minutes.back_mut() {
                Some(last) if last.minute == minute => {
                    last.accepted += accepted;
                    last.rejected += rejected;
                }
                _ => flow.minutes.push_back(MinuteCount {
                    minute,
                    accepted,
                    rejected,
                }),
            }
            while flow
                .minutes
                .front()
                .is_some_and(|m| m.minute <= minute - HISTORY_MINUTES as i64)
            {
                flow.minutes.pop_front();
            }
        });
    }

    /// Notes a connector's source failure.
    pub fn source_error(&self, connector: &str, error: &str) {
        self.with(|s| {
            s.connectors
                .entry(connector.to_owned())
                .or_default()
                .last_error = Some(Noted::now(error));
        });
    }

    /// Notes a connector's saved checkpoint.
    pub fn checkpoint(&self, connector: &str, checkpoint: &serde_json::Value) {
        self.with(|s| {
            s.connectors
                .entry(connector.to_owned())
                .or_default()
                .checkpoint = Some(Noted::now(&checkpoint.to_string()));
        });
    }

    /// Counts records released to a subscription.
    pub fn release(&self, subscription: &str, n: usize) {
        self.with(|s| {
            entry(&mut s.subscriptions, subscription).released += n as u64;
        });
    }

    /// Counts a subscription's delivery outcome: `committed` records (delivered, or dead-lettered after every
    /// retry) or `dead_lettered` ones.
    pub fn delivery(&self, subscription: &str, outcome: &str, n: usize) {
        self.with(|s| {
            let flow = entry(&mut s.subscriptions, subscription);
            match outcome {
                "dead_lettered" => flow.dead_lettered += n as u64,
                _ => flow.committed += n as u64,
            }
        });
    }

    /// Notes how far a subscription's history has come.
    pub fn history(&self, subscription: &str, progress: HistoryProgress) {
        self.with(|s| {
            entry(&mut s.subscriptions, subscription).history = Some(progress);
        });
    }

    /// A copy of everything now.
    pub fn snapshot(&self) -> FlowSnapshot {
        self.with(|s| s.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_roll_over_and_keep_one_hour() {
        let flows = Flows::default();
        flows.ingest_at("grid", 3, 1, 100);
        flows.ingest_at("grid", 2, 0, 100);
        flows.ingest_at("grid", 5, 0, 102);
        let snap = flows.snapshot();
        let grid = &snap.connectors["grid"];
        assert_eq!((grid.accepted, grid.rejected), (10, 1));
        let last = grid.last_minutes(102, 4);
        let counts: Vec<(i64, u64, u64)> = last
            .iter()
            .map(|m| (m.minute, m.accepted, m.rejected))
            .collect();
        assert_eq!(counts, [(99, 0, 0), (100, 5, 1), (101, 0, 0), (102, 5, 0)]);
        flows.ingest_at("grid", 1, 0, 100 + HISTORY_MINUTES as i64 + 1);
        let snap = flows.snapshot();
        let minutes: Vec<i64> = snap.connectors["grid"]
            .minutes
            .iter()
            .map(|m| m.minute)
            .collect();
        assert_eq!(minutes, [102, 161], "older than an hour is dropped");
    }

    #[test]
    fn dead_letters_are_committed_but_not_delivered() {
        let flows = Flows::default();
        flows.release("a.s", 10);
        flows.delivery("a.s", "dead_lettered", 2);
        flows.delivery("a.s", "committed", 10);
        let snap = flows.snapshot();
        let s = &snap.subscriptions["a.s"];
        assert_eq!((s.released, s.delivered(), s.dead_lettered), (10, 8, 2));
    }

    #[test]
    fn notes_are_cut_short() {
        let flows = Flows::default();
        flows.source_error("sql", &"x".repeat(2_000));
        let snap = flows.snapshot();
        let error = snap.connectors["sql"].last_error.as_ref().expect("noted");
        assert_eq!(error.text.chars().count(), MAX_NOTE_CHARS);
    }
}
