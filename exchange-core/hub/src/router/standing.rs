//! Where each subscription stands against its schema's router, per partition of `std.<schema>`: **live** (the
//! router releases to it as records arrive) or **behind** at an offset — history it has yet to receive, because
//! its grant asked for a backfill or because it was paused.
//!
//! Standings live on the compacted topic [`ROUTER_PROGRESS_TOPIC`], key `<subscription>/<partition>`, and every
//! change is written in the same atomic write as the releases it accounts for (and, for live routing, the
//! router's consumer offsets): after a crash the router resumes exactly where its last write left it, so a
//! record is released to a subscription once — never twice, never not at all.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use unsilo_bus::{Bus, ConsumerOptions, Record, TopicSpec};
use unsilo_schemas::names::ROUTER_PROGRESS_TOPIC;

/// Why a subscription is behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BehindReason {
    /// Its grant asked for history (`backfill_from`).
    Backfill,
    /// It was paused; what arrived meanwhile is released on resume.
    Pause,
}

impl BehindReason {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backfill => "backfill",
            Self::Pause => "pause",
        }
    }
}

/// A subscription behind the router on one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Behind {
    /// The offset of the next record of `std.<schema>` it is to be released (or not) from.
    pub next: u64,
    /// Why it is behind.
    pub reason: BehindReason,
    /// Records of history read so far.
    #[serde(default)]
    pub read: u64,
    /// Records of history released so far.
    #[serde(default)]
    pub released: u64,
}

/// Where a subscription stands on one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Standing {
    /// Released to by the live router.
    Live {
        /// When it went live on this partition (ms since the epoch).
        since_ms: i64,
        /// Records of history it was released before going live, if any.
        #[serde(default)]
        history_released: u64,
    },
    /// Behind the live router.
    Behind(Behind),
}

impl Standing {
    /// Live from now on.
    pub fn live_now(history_released: u64) -> Self {
        Standing::Live {
            since_ms: unsilo_bus::now_ms(),
            history_released,
        }
    }
}

/// The standings of one router's subscriptions, and the changes not yet written.
#[derive(Debug, Default)]
pub struct Standings {
    /// By subscription, then partition (looked up by `&str` on the hot path, without allocating).
    map: HashMap<String, BTreeMap<u32, Standing>>,
    /// How many subscriptions are live on each partition (derived from `map`, kept with it).
    live_on: HashMap<u32, usize>,
    unwritten: BTreeMap<(String, u32), Standing>,
}

fn key(subscription: &str, partition: u32) -> String {
    format!("{subscription}/{partition}")
}

impl Standings {
    /// Creates the progress topic if needed and reads the standings of the subscriptions `mine` accepts.
    pub async fn load(
        bus: &dyn Bus,
        mine: impl Fn(&str) -> bool,
    ) -> Result<Self, unsilo_bus::Error> {
        bus.create_topic(&TopicSpec::compacted(ROUTER_PROGRESS_TOPIC))
            .await?;
        let end: u64 = bus.end_offsets(ROUTER_PROGRESS_TOPIC).await?.iter().sum();
        let mut standings = Standings::default();
        if end == 0 {
            return Ok(standings);
        }
        let mut consumer = bus
            .consumer(ConsumerOptions::replay(ROUTER_PROGRESS_TOPIC))
            .await?;
        // Read to the end offset, and on until a poll comes back empty (a Kafka-protocol broker's end offset can
        // lag the last batch; compaction leaves gaps).
        let mut seen: Option<u64> = None;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(unsilo_bus::Error::Store(format!(
                    "reading {ROUTER_PROGRESS_TOPIC} took over a minute"
                )));
            }
            let batch = consumer
                .poll(10_000, std::time::Duration::from_millis(200))
                .await?;
            if batch.is_empty() {
                if seen.is_some_and(|o| o + 1 >= end) || bus.kind() == "embedded" {
                    break;
                }
                continue;
            }
            for r in batch {
                seen = Some(seen.map_or(r.position.offset, |o| o.max(r.position.offset)));
                let Some(k) = r.record.key.as_deref() else {
                    continue;
                };
                let k = String::from_utf8_lossy(k);
                let Some((subscription, partition)) = k.rsplit_once('/') else {
                    continue;
                };
                let Ok(partition) = partition.parse::<u32>() else {
                    continue;
                };
                if !mine(subscription) {
                    continue;
                }
                let of_subscription = standings.map.entry(subscription.to_owned()).or_default();
                match r
                    .record
                    .value
                    .as_deref()
                    .map(serde_json::from_slice::<Standing>)
                {
                    Some(Ok(s)) => {
                        of_subscription.insert(partition, s);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(key = %k, error = %e, "Unreadable router standing ignored.");
                    }
                    None => {
                        of_subscription.remove(&partition);
                    }
                }
            }
        }
        for partitions in standings.map.values() {
            for (p, s) in partitions {
                if matches!(s, Standing::Live { .. }) {
                    *standings.live_on.entry(*p).or_default() += 1;
                }
            }
        }
        Ok(standings)
    }

    /// Where `subscription` stands on `partition` (`None`: the router has not placed it yet).
    pub fn get(&self, subscription: &str, partition: u32) -> Option<&Standing> {
        self.map.get(subscription)?.get(&partition)
    }

    /// Whether the live router releases to `subscription` on `partition`.
    pub fn is_live(&self, subscription: &str, partition: u32) -> bool {
        matches!(
            self.get(subscription, partition),
            Some(Standing::Live { .. })
        )
    }

    /// Whether any subscription is live on `partition`: if none, its records need not even be decoded.
    pub fn any_live_on(&self, partition: u32) -> bool {
        self.live_on.get(&partition).is_some_and(|n| *n > 0)
    }

    /// Sets a standing, to be written with the next write.
    pub fn set(&mut self, subscription: &str, partition: u32, standing: Standing) {
        let now_live = matches!(standing, Standing::Live { .. });
        self.unwritten
            .insert((subscription.to_owned(), partition), standing.clone());
        let was = self
            .map
            .entry(subscription.to_owned())
            .or_default()
            .insert(partition, standing);
        let was_live = matches!(was, Some(Standing::Live { .. }));
        let count = self.live_on.entry(partition).or_default();
        match (was_live, now_live) {
            (false, true) => *count += 1,
            (true, false) => *count = count.saturating_sub(1),
            _ => {}
        }
    }

    /// Counts records of a granted history the live loop released (it reached them before the history reader
    /// did): written with the releases.
    pub fn count_live_history(&mut self, subscription: &str, partition: u32, n: u64) {
        let Some(Standing::Live {
            since_ms,
            history_released,
        }) = self.get(subscription, partition).cloned()
        else {
            return;
        };
        self.set(
            subscription,
            partition,
            Standing::Live {
                since_ms,
                history_released: history_released + n,
            },
        );
    }

    /// Every `(subscription, partition)` behind, with where.
    pub fn behind(&self) -> Vec<(String, u32, Behind)> {
        let mut out: Vec<(String, u32, Behind)> = self
            .map
            .iter()
            .flat_map(|(s, partitions)| {
                partitions
                    .iter()
                    .filter_map(move |(p, standing)| match standing {
                        Standing::Behind(b) => Some((s.clone(), *p, b.clone())),
                        Standing::Live { .. } => None,
                    })
            })
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }

    /// The standings of one subscription, by partition.
    pub fn of(&self, subscription: &str) -> BTreeMap<u32, Standing> {
        self.map.get(subscription).cloned().unwrap_or_default()
    }

    /// Whether any subscription is behind anywhere (cheap: no allocation).
    pub fn any_behind(&self) -> bool {
        self.map
            .values()
            .flat_map(BTreeMap::values)
            .any(|s| matches!(s, Standing::Behind(_)))
    }

    /// Whether changes wait to be written.
    pub fn has_unwritten(&self) -> bool {
        !self.unwritten.is_empty()
    }

    /// The unwritten changes as records of the progress topic (they stay unwritten until [`Self::written`]).
    pub fn unwritten_part(&self) -> Option<(String, Vec<Record>)> {
        if self.unwritten.is_empty() {
            return None;
        }
        let records = self
            .unwritten
            .iter()
            .map(|((s, p), standing)| {
                let value = serde_json::to_vec(standing).unwrap_or_default();
                Record::new(key(s, *p), value)
            })
            .collect();
        Some((ROUTER_PROGRESS_TOPIC.to_owned(), records))
    }

    /// The changes are durable.
    pub fn written(&mut self) {
        self.unwritten.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standings_round_trip_as_json() {
        let behind = Standing::Behind(Behind {
            next: 42,
            reason: BehindReason::Backfill,
            read: 5,
            released: 3,
        });
        let text = serde_json::to_string(&behind).expect("json");
        assert!(text.contains("\"state\":\"behind\""), "{text}");
        assert_eq!(
            serde_json::from_str::<Standing>(&text).expect("back"),
            behind
        );
        let live = Standing::live_now(3);
        let text = serde_json::to_string(&live).expect("json");
        assert_eq!(serde_json::from_str::<Standing>(&text).expect("back"), live);
    }

    #[test]
    fn changes_wait_until_written() {
        let mut s = Standings::default();
        s.set("a.x", 0, Standing::live_now(0));
        s.set("a.x", 1, Standing::live_now(0));
        assert!(s.is_live("a.x", 1));
        assert!(s.any_live_on(1) && !s.any_live_on(2));
        s.set(
            "a.x",
            1,
            Standing::Behind(Behind {
                next: 3,
                reason: BehindReason::Pause,
                read: 0,
                released: 0,
            }),
        );
        assert!(!s.any_live_on(1) && s.any_live_on(0));
        let (topic, records) = s.unwritten_part().expect("changes");
        assert_eq!(topic, ROUTER_PROGRESS_TOPIC);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key.as_deref(), Some(&b"a.x/0"[..]));
        s.written();
        assert!(s.unwritten_part().is_none());
        assert!(s.is_live("a.x", 0));
    }
}
