//! Exactly-once routing over a bus whose multi-topic writes are not atomic (Kafka).
//!
//! On the embedded bus a router write — evidence, releases, standings, consumer offsets — is one atomic batch.
//! Over Kafka it is a sequence: each part durable before the next is sent, the offsets committed last. A hub
//! that dies between its releases and its offset commit would route the same records again when it restarts,
//! and its subscribers would receive them twice. Kafka transactions would close that gap, but a broker that hands
//! aborted transactions' records to `read_committed` readers (Tansu 0.6 does; see `docs/decisions.md`) cannot
//! give exactly-once through them. So the router makes its writes recoverable itself:
//!
//! 1. **Intent, with the evidence.** The write's last audit entry — the signed one, written before any release —
//!    carries the write's [`WriteIntent`] in a header: a fresh write id, the source offsets it routes (live, and
//!    per subscription for history), the subscription of each release terms `seq` its evidence names, and, per
//!    destination topic and partition, an offset at or before where its releases will land and how many.
//! 2. **Releases, marked.** Every released record carries the write id (header
//!    [`unsilo_schemas::names::HEADER_ROUTER_WRITE_ID`]).
//! 3. **Recovery.** A router that opens finds the newest intent of its schema in its hub's verified chain
//!    ([`crate::audit::AuditLog::router_intent`]). If the committed offsets and standings are past what the intent
//!    routes, the write completed. Otherwise it reads each destination from the intent's offsets for records
//!    with the write id — those releases are out — and reads the write's evidence back from the audit log. As it
//!    routes the same records again, a release already out is dropped, and a release the evidence already
//!    records is sent without recording it twice ([`Recovery::verdict`]).
//!
//! The write's evidence is all-or-nothing for this purpose: its signature is on its last entry, and the hub
//! disowns an unsigned tail at open. No release is sent before the whole evidence is durable, so an intent that
//! is not found means nothing of its write went out.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::standing::{Standing, Standings};
use crate::audit::{AuditEvent, RouterIntentEntry};
use unsilo_bus::read::read_partition;
use unsilo_bus::Bus;
use unsilo_schemas::names::{HEADER_RECORD_ID, HEADER_ROUTER_WRITE_ID, HEADER_SUBSCRIPTION};

/// What a router write over Kafka is about to do, recorded with its evidence before any release is sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct WriteIntent {
    /// The shared schema whose router writes.
    pub(super) schema: String,
    /// The write id its released records carry.
    pub(super) write: String,
    /// The first `seq` of its evidence in the hub's chain.
    pub(super) from_seq: u64,
    /// The last `seq` of its evidence (the signed entry carrying this intent).
    pub(super) to_seq: u64,
    /// Source offsets the live loop routes, per partition: `[from, through)`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) live: BTreeMap<u32, (u64, u64)>,
    /// Source offsets of history it releases: `(subscription, partition, from, through)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) history: Vec<(String, u32, u64, u64)>,
    /// The subscription of each release terms `seq` its evidence names.
    pub(super) terms: BTreeMap<u64, String>,
    /// Per destination topic, per partition: an offset at or before which its releases land, and how many it
    /// sends there.
    pub(super) scan: BTreeMap<String, Vec<(u64, u32)>>,
    /// The interrupted write this one completes, if it does: its releases sent now carry the earlier write's id,
    /// and a crash during this write is recovered against both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) previous: Option<Box<PreviousWrite>>,
}

/// An interrupted write a later write completes, and where its intent's entry is in the audit topic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PreviousWrite {
    /// Its intent (without a previous write of its own).
    pub(super) intent: WriteIntent,
    /// The audit topic's offset of its signed entry.
    pub(super) offset: u64,
}

impl WriteIntent {
    /// A fresh write id: 16 random hex digits.
    pub(super) fn new_write_id() -> String {
        format!("{:016x}", rand::random::<u64>())
    }

    /// Notes that the write releases the record at `(partition, offset)` to `subscription`, from the live loop
    /// or from history.
    pub(super) fn note_source(
        &mut self,
        subscription: &str,
        partition: u32,
        offset: u64,
        history: bool,
    ) {
        let widen = |range: &mut (u64, u64)| {
            range.0 = range.0.min(offset);
            range.1 = range.1.max(offset + 1);
        };
        if !history {
            widen(self.live.entry(partition).or_insert((offset, offset + 1)));
            return;
        }
        match self
            .history
            .iter_mut()
            .find(|(s, p, _, _)| s == subscription && *p == partition)
        {
            Some((_, _, from, through)) => {
                let mut range = (*from, *through);
                widen(&mut range);
                (*from, *through) = range;
            }
            None => self
                .history
                .push((subscription.to_owned(), partition, offset, offset + 1)),
        }
    }

    /// Notes where the write's releases, `per_topic`, land: per destination partition (by each record's key, as
    /// the bus partitions), how many, and from an offset at or before the partition's end (`ends`, by topic).
    pub(super) fn note_destinations(
        &mut self,
        per_topic: &BTreeMap<String, Vec<unsilo_bus::Record>>,
        ends: &std::collections::HashMap<String, Vec<u64>>,
    ) {
        for (topic, records) in per_topic {
            let Some(ends) = ends.get(topic) else {
                continue;
            };
            let mut scan: Vec<(u64, u32)> = ends.iter().map(|&end| (end, 0)).collect();
            for record in records {
                let key = record.key.as_deref().unwrap_or_default();
                let p = unsilo_bus::partition_for_key(key, ends.len() as u32) as usize;
                if let Some((_, sent)) = scan.get_mut(p) {
                    *sent += 1;
                }
            }
            self.scan.insert(topic.clone(), scan);
        }
    }

    /// Whether the write routes the record at `(partition, offset)` to `subscription`'s range.
    fn covers(&self, subscription: &str, partition: u32, offset: u64) -> bool {
        let within = |from: u64, through: u64| offset >= from && offset < through;
        self.live
            .get(&partition)
            .is_some_and(|&(from, through)| within(from, through))
            || self.history.iter().any(|(s, p, from, through)| {
                s == subscription && *p == partition && within(*from, *through)
            })
    }

    /// Whether what the intent routes is behind the router's positions: its live records behind `live_next` (the
    /// next offset per partition: at open, the committed ones) and its history past every subscription's standing.
    pub(super) fn completed(&self, live_next: &BTreeMap<u32, u64>, standings: &Standings) -> bool {
        let live_done = self
            .live
            .iter()
            .all(|(p, &(_, through))| live_next.get(p).is_some_and(|&c| c >= through));
        let history_done =
            self.history
                .iter()
                .all(|(s, p, _, through)| match standings.get(s, *p) {
                    Some(Standing::Live { .. }) => true,
                    Some(Standing::Behind(b)) => b.next >= *through,
                    None => false,
                });
        live_done
            && history_done
            && self
                .previous
                .as_ref()
                .is_none_or(|p| p.intent.completed(live_next, standings))
    }
}

/// What a release of an interrupted write's range is to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not part of the interrupted write: release it and record it.
    Fresh,
    /// The interrupted write recorded it but did not send it: send it, and do not record it again.
    Recorded,
    /// The interrupted write sent it: drop it.
    Out,
}

/// What the router knows of its interrupted write while it routes the same records again.
#[derive(Debug)]
pub(super) struct Recovery {
    /// The interrupted write (and the one it was completing, if any).
    intent: WriteIntent,
    /// Where its signed evidence entry is in the audit topic.
    offset: u64,
    /// `(subscription, record id)` of each release already out.
    out: HashSet<(String, String)>,
    /// `(subscription, record id)` of each release its evidence records.
    recorded: HashSet<(String, String)>,
}

impl Recovery {
    /// Finds out what of the write `entry` names went out, unless the router's durable positions say it
    /// completed (then `None`).
    pub(super) async fn of(
        bus: &dyn Bus,
        audit_topic: &str,
        hub: &str,
        entry: &RouterIntentEntry,
        committed: &BTreeMap<u32, u64>,
        standings: &Standings,
    ) -> Result<Option<Self>, unsilo_bus::Error> {
        let intent: WriteIntent = match serde_json::from_slice(&entry.intent) {
            Ok(i) => i,
            Err(e) => {
                warn!(error = %e, offset = entry.offset, "A router write intent in the audit log is unreadable; ignored.");
                return Ok(None);
            }
        };
        if intent.completed(committed, standings) {
            return Ok(None);
        }
        let mut out = HashSet::new();
        let mut recorded = HashSet::new();
        let mut writes = vec![(&intent, entry.offset)];
        if let Some(previous) = &intent.previous {
            writes.push((&previous.intent, previous.offset));
        }
        for (write, offset) in writes {
            out.extend(released_by(bus, write).await?);
            recorded.extend(recorded_releases(bus, audit_topic, hub, offset, write).await?);
        }
        info!(
            schema = %intent.schema,
            write = %intent.write,
            out = out.len(),
            recorded = recorded.len(),
            "Resuming an interrupted router write: releases already out are not sent again, releases already recorded are not recorded again."
        );
        Ok(Some(Self {
            intent,
            offset: entry.offset,
            out,
            recorded,
        }))
    }

    /// The interrupted write, as the write completing it names it.
    pub(super) fn previous(&self) -> PreviousWrite {
        let mut intent = self.intent.clone();
        intent.previous = None;
        PreviousWrite {
            intent,
            offset: self.offset,
        }
    }

    /// The id the releases of the interrupted write carry.
    pub(super) fn write_id(&self) -> &str {
        &self.intent.write
    }

    /// What to do with a release of the record `record_id` at `(partition, offset)` to `subscription`.
    pub(super) fn verdict(
        &self,
        subscription: &str,
        partition: u32,
        offset: u64,
        record_id: &str,
    ) -> Verdict {
        let in_range = self.intent.covers(subscription, partition, offset)
            || self
                .intent
                .previous
                .as_ref()
                .is_some_and(|p| p.intent.covers(subscription, partition, offset));
        if !in_range {
            return Verdict::Fresh;
        }
        let pair = (subscription.to_owned(), record_id.to_owned());
        if self.out.contains(&pair) {
            Verdict::Out
        } else if self.recorded.contains(&pair) {
            Verdict::Recorded
        } else {
            Verdict::Fresh
        }
    }

    /// Whether the router's positions are past the interrupted write (recovery is over).
    pub(super) fn completed(&self, live_next: &BTreeMap<u32, u64>, standings: &Standings) -> bool {
        self.intent.completed(live_next, standings)
    }
}

/// `(subscription, record id)` of each release `write` sent: its destinations read from the intent's offsets
/// for records carrying its write id.
async fn released_by(
    bus: &dyn Bus,
    write: &WriteIntent,
) -> Result<HashSet<(String, String)>, unsilo_bus::Error> {
    let mut out = HashSet::new();
    for (topic, partitions) in &write.scan {
        for (partition, &(from, sent)) in partitions.iter().enumerate() {
            if sent == 0 {
                continue;
            }
            let mut found = 0u32;
            read_partition(bus, topic, partition as u32, from, None, |consumed| {
                let record = &consumed.record;
                if record.header(HEADER_ROUTER_WRITE_ID) == Some(write.write.as_bytes()) {
                    let text = |name| {
                        String::from_utf8_lossy(record.header(name).unwrap_or_default())
                            .into_owned()
                    };
                    out.insert((text(HEADER_SUBSCRIPTION), text(HEADER_RECORD_ID)));
                    found += 1;
                }
                // Every release the write sent here is found: no need to read on to the end.
                found < sent
            })
            .await?;
        }
    }
    Ok(out)
}

/// The `(subscription, record id)` pairs the write's evidence records: its entries, `intent.from_seq ..=
/// intent.to_seq` of `hub`, read back from the audit topic going back from `last_offset` (where the signed last
/// one is).
async fn recorded_releases(
    bus: &dyn Bus,
    audit_topic: &str,
    hub: &str,
    last_offset: u64,
    intent: &WriteIntent,
) -> Result<HashSet<(String, String)>, unsilo_bus::Error> {
    const STEP: u64 = 256;
    let wanted = intent.to_seq.saturating_sub(intent.from_seq) + 1;
    let mut entries = BTreeMap::new();
    let mut until = last_offset + 1;
    while (entries.len() as u64) < wanted && until > 0 {
        let from = until.saturating_sub(STEP);
        read_partition(bus, audit_topic, 0, from, Some(until), |consumed| {
            if let Some(entry) = crate::audit::decode(&consumed) {
                if entry.body.hub == hub
                    && (intent.from_seq..=intent.to_seq).contains(&entry.body.seq)
                {
                    entries.insert(entry.body.seq, entry.body.event);
                }
            }
            true
        })
        .await?;
        until = from;
    }
    let mut terms = intent.terms.clone();
    for (seq, event) in &entries {
        if let AuditEvent::ReleaseTerms(t) = event {
            terms.insert(*seq, t.subscription.clone());
        }
    }
    let mut recorded = HashSet::new();
    for event in entries.values() {
        if let AuditEvent::Releases { records } = event {
            for record in records {
                for seq in &record.to {
                    if let Some(subscription) = terms.get(seq) {
                        recorded.insert((subscription.clone(), record.id.clone()));
                    }
                }
            }
        }
    }
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intent_widens_its_ranges_per_path() {
        let mut intent = WriteIntent::default();
        intent.note_source("a.s", 0, 10, false);
        intent.note_source("b.s", 0, 4, false);
        intent.note_source("a.s", 1, 7, true);
        intent.note_source("a.s", 1, 9, true);
        assert_eq!(intent.live[&0], (4, 11));
        assert_eq!(intent.history, vec![("a.s".to_owned(), 1, 7, 10)]);
        let json = serde_json::to_vec(&intent).unwrap();
        assert_eq!(
            serde_json::from_slice::<WriteIntent>(&json).unwrap(),
            intent
        );
    }

    #[test]
    fn verdicts_hold_only_inside_the_interrupted_range() {
        let mut intent = WriteIntent::default();
        intent.note_source("a.s", 0, 10, false);
        intent.note_source("a.s", 0, 12, false);
        let recovery = Recovery {
            intent,
            offset: 0,
            out: [("a.s".to_owned(), "r-10".to_owned())].into(),
            recorded: [
                ("a.s".to_owned(), "r-10".to_owned()),
                ("a.s".to_owned(), "r-12".to_owned()),
            ]
            .into(),
        };
        assert_eq!(recovery.verdict("a.s", 0, 10, "r-10"), Verdict::Out);
        assert_eq!(recovery.verdict("a.s", 0, 12, "r-12"), Verdict::Recorded);
        assert_eq!(recovery.verdict("a.s", 0, 11, "r-11"), Verdict::Fresh);
        // The same record id released again later, or on another partition, is a new release.
        assert_eq!(recovery.verdict("a.s", 0, 13, "r-10"), Verdict::Fresh);
        assert_eq!(recovery.verdict("a.s", 1, 10, "r-10"), Verdict::Fresh);
        assert_eq!(recovery.verdict("b.s", 0, 10, "r-10"), Verdict::Fresh);
    }
}
