//! One schema's router task: the live loop over `std.<schema>`, and the history each subscription behind it is
//! still owed (a backfill, or what arrived while it was paused), released from the same topic through the same
//! route until it reaches the live position and joins it.
//!
//! Every write is the audit entries, the released records, the changed [standings](super::standing) and — live —
//! the router's consumer offsets, together. On the embedded bus that is one atomic batch
//! ([`unsilo_bus::Consumer::publish_and_commit`]), so a crash repeats nothing and loses nothing. On Kafka the parts
//! are made durable in order and the offsets committed after; the write's intent travels with its evidence and
//! its releases carry its id, so a router restarted after a crash anywhere in between sends nothing twice
//! ([`super::recovery`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::recovery::{Recovery, Verdict, WriteIntent};
use super::standing::{Behind, BehindReason, Standing, Standings};
use super::{ActiveSubscription, Decoder, RouterContext, RoutingTable};
use crate::flows::HistoryProgress;
use unsilo_bus::{ConsumedRecord, Consumer, ConsumerOptions, FetchRequest, Record};
use unsilo_policy::model::SubscriptionStatus;
use unsilo_policy::view::person_keys;
use unsilo_schemas::names::{
    HEADER_BACKFILL, HEADER_RECORD_ID, HEADER_RETAIN_DAYS, HEADER_ROUTER_INTENT,
    HEADER_ROUTER_WRITE_ID, HEADER_SUBSCRIPTION,
};
use unsilo_schemas::SharedSchema;

/// How often the live loop commits the offsets of records that released nothing.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);
/// Most records of history read per subscription and partition in one step.
const HISTORY_STEP: usize = 500;

/// One release on its way to the bus: the subscription, its topic, the record and its evidence.
struct Outgoing {
    subscription: String,
    topic: String,
    record: Record,
    /// Its evidence.
    release: crate::audit::Release,
    /// Where the released record sits in `std.<schema>`: partition and offset.
    source: (u32, u64),
    /// Released by a history step rather than the live loop.
    by_history_step: bool,
}

/// The router of one shared schema.
pub(super) struct SchemaRouter {
    context: RouterContext,
    schema: &'static SharedSchema,
    topic: String,
    group: String,
    table: RoutingTable,
    changes: watch::Receiver<u64>,
    decoder: Decoder,
    standings: Standings,
    /// The live loop's position: the offset of the next record it will route, per partition.
    live_next: BTreeMap<u32, u64>,
    /// The position of the last routed record per partition whose offset is not committed yet.
    uncommitted: BTreeMap<u32, ConsumedRecord>,
    last_commit: Instant,
    /// What the router knows of a write a crash interrupted, until its positions are past it (Kafka only).
    recovery: Option<Recovery>,
    /// Per destination topic and partition, an offset at or before the topic's end, from its watermarks or this
    /// router's own writes: where a write's intent says its releases land from (Kafka only).
    destination_ends: HashMap<String, Vec<u64>>,
}

impl SchemaRouter {
    /// Reads where the router and its subscriptions stand.
    pub(super) async fn open(
        context: RouterContext,
        schema: &'static SharedSchema,
    ) -> Result<Self, unsilo_bus::Error> {
        let topic = schema.topic();
        let group = unsilo_schemas::names::router_group(&context.group_prefix, schema.name());
        let of_schema: BTreeSet<String> = context
            .control
            .read()
            .subscriptions
            .values()
            .filter(|s| s.spec().schema == schema.name())
            .map(|s| s.id.clone())
            .collect();
        let standings = Standings::load(context.bus.as_ref(), |id| of_schema.contains(id)).await?;
        let live_next: BTreeMap<u32, u64> = context
            .bus
            .committed_offsets(&group, &topic)
            .await?
            .into_iter()
            .enumerate()
            .map(|(p, o)| (p as u32, o.unwrap_or(0)))
            .collect();
        let recovery = match context.audit.router_intent(schema.name()) {
            Some(entry) if !context.bus.writes_atomically() => {
                Recovery::of(
                    context.bus.as_ref(),
                    context.audit.topic(),
                    context.audit.hub(),
                    &entry,
                    &live_next,
                    &standings,
                )
                .await?
            }
            _ => None,
        };
        let changes = context.control.changes();
        let table = RoutingTable::build(
            &context.control.read(),
            schema.name(),
            &RoutingTable::default(),
        );
        Ok(Self {
            decoder: Decoder::new(context.registry.clone(), schema.avro()),
            context,
            schema,
            topic,
            group,
            table,
            changes,
            standings,
            live_next,
            uncommitted: BTreeMap::new(),
            last_commit: Instant::now(),
            recovery,
            destination_ends: HashMap::new(),
        })
    }

    /// Runs until `stop` turns true.
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let topic = self.topic.clone();
        let Some(mut consumer) = self.join_group(&mut stop).await else {
            return;
        };
        self.changes.borrow_and_update();
        info!(topic = %topic, subscriptions = self.table.subscriptions.len(), "Router started.");
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                break;
            }
            let step = async {
                let behind =
                    self.history_pending(&owned_partitions(consumer.as_ref(), &topic, &[]));
                let wait = if behind {
                    Duration::from_millis(5)
                } else {
                    Duration::from_millis(200)
                };
                let batch = consumer.poll(500, wait).await?;
                // Asked after the poll: on Kafka the first poll is what brings the group's assignment.
                let owned = owned_partitions(consumer.as_ref(), &topic, &batch);
                if batch.is_empty() {
                    self.refresh_table(&owned, None).await?;
                    self.place_new_subscriptions(&owned).await?;
                    self.write(Vec::new(), Some(consumer.as_mut())).await?;
                    self.commit_idle(consumer.as_mut()).await;
                } else {
                    self.route_live(consumer.as_mut(), &owned, &batch).await?;
                }
                if behind {
                    self.release_history(&owned).await?;
                }
                Ok::<(), unsilo_bus::Error>(())
            };
            let outcome = tokio::select! {
                _ = stop.changed() => break,
                outcome = step => outcome,
            };
            match outcome {
                Ok(()) => failures = 0,
                Err(unsilo_bus::Error::Closed) => break,
                Err(e) => {
                    // Nothing of the failed write is durable: start again from what is.
                    failures = failures.saturating_add(1);
                    error!(topic = %topic, error = %e, failures, "Routing failed; resuming from the last durable write.");
                    let backoff =
                        Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)));
                    tokio::time::sleep(backoff).await;
                    drop(consumer);
                    match SchemaRouter::open(self.context.clone(), self.schema).await {
                        Ok(fresh) => self = fresh,
                        Err(e) => {
                            error!(topic = %topic, error = %e, "Router cannot reload its position.")
                        }
                    }
                    consumer = match self.join_group(&mut stop).await {
                        Some(c) => c,
                        None => return,
                    };
                }
            }
        }
        self.commit_idle(consumer.as_mut()).await;
        info!(topic = %topic, "Router stopped.");
    }

    /// Joins the router's consumer group, retrying until it works or `stop` turns true.
    async fn join_group(&self, stop: &mut watch::Receiver<bool>) -> Option<Box<dyn Consumer>> {
        loop {
            match self
                .context
                .bus
                .consumer(ConsumerOptions::group(&self.group, &[&self.topic]))
                .await
            {
                Ok(c) => return Some(c),
                Err(e) => {
                    error!(topic = %self.topic, error = %e, "Router cannot consume; retrying.");
                    tokio::select! {
                        _ = stop.changed() => return None,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    /// Rebuilds the routes if the control plane changed, and places the subscriptions that joined them. A
    /// subscription that left the routes — paused, revoked, expired — and is paused (or active again) now is set
    /// behind where the live loop stands, or at `batch_start` for partitions of the batch being routed (whose
    /// releases to it are then dropped). Returns the subscriptions that left.
    async fn refresh_table(
        &mut self,
        owned: &[u32],
        batch_start: Option<&BTreeMap<u32, u64>>,
    ) -> Result<BTreeSet<String>, unsilo_bus::Error> {
        let mut left = BTreeSet::new();
        if !self.changes.has_changed().unwrap_or(false) {
            return Ok(left);
        }
        self.changes.borrow_and_update();
        {
            let state = self.context.control.read();
            let table = RoutingTable::build(&state, self.schema.name(), &self.table);
            for old in &self.table.subscriptions {
                let still = table.subscriptions.iter().any(|r| {
                    r.subscription == old.subscription && r.view_schema_id == old.view_schema_id
                });
                if still {
                    continue;
                }
                left.insert(old.subscription.clone());
                let paused_or_back = state.subscriptions.get(&old.subscription).is_some_and(|s| {
                    matches!(
                        s.status,
                        SubscriptionStatus::Paused | SubscriptionStatus::Active
                    )
                });
                if !paused_or_back {
                    continue;
                }
                for &p in owned {
                    if !self.standings.is_live(&old.subscription, p) {
                        continue;
                    }
                    let at = batch_start
                        .and_then(|b| b.get(&p))
                        .or_else(|| self.live_next.get(&p))
                        .copied()
                        .unwrap_or(0);
                    self.standings.set(
                        &old.subscription,
                        p,
                        Standing::Behind(Behind {
                            next: at,
                            reason: BehindReason::Pause,
                            read: 0,
                            released: 0,
                        }),
                    );
                    info!(subscription = %old.subscription, partition = p, offset = at, "Subscription paused; its position is kept.");
                }
            }
            self.table = table;
        }
        debug!(topic = %self.topic, routes = self.table.subscriptions.len(), "Routes updated.");
        self.place_new_subscriptions(owned).await?;
        Ok(left)
    }

    /// Places every routed subscription the router has not placed yet on an owned partition: behind at the
    /// first record of its granted history (`backfill_from`) when that is before the live position, or live
    /// from the next record the live loop routes.
    async fn place_new_subscriptions(&mut self, owned: &[u32]) -> Result<(), unsilo_bus::Error> {
        let routes: Vec<ActiveSubscription> = self
            .table
            .subscriptions
            .iter()
            .filter(|r| {
                owned
                    .iter()
                    .any(|&p| self.standings.get(&r.subscription, p).is_none())
            })
            .cloned()
            .collect();
        for route in routes {
            let history_from = match route.backfill_from_ms {
                Some(from) => Some(self.context.bus.offsets_for_time(&self.topic, from).await?),
                None => None,
            };
            for &p in owned {
                if self.standings.get(&route.subscription, p).is_some() {
                    continue;
                }
                let live = self.live_next.get(&p).copied().unwrap_or(0);
                let standing = match &history_from {
                    Some(starts) if starts.get(p as usize).is_some_and(|&s| s < live) => {
                        Standing::Behind(Behind {
                            next: starts[p as usize],
                            reason: BehindReason::Backfill,
                            read: 0,
                            released: 0,
                        })
                    }
                    _ => Standing::live_now(0),
                };
                info!(subscription = %route.subscription, partition = p, standing = ?standing, "Subscription placed.");
                self.standings.set(&route.subscription, p, standing);
            }
            self.report_history(&route.subscription, 0);
        }
        Ok(())
    }

    /// Routes one live batch and writes its releases, standings and offsets in one write.
    async fn route_live(
        &mut self,
        consumer: &mut dyn Consumer,
        owned: &[u32],
        batch: &[ConsumedRecord],
    ) -> Result<(), unsilo_bus::Error> {
        let mut batch_start: BTreeMap<u32, u64> = BTreeMap::new();
        for r in batch {
            batch_start
                .entry(r.position.partition)
                .or_insert(r.position.offset);
        }
        // The live position is the batch's first record on each of its partitions; subscriptions not placed yet
        // (a partition newly assigned to this member) are placed there before any of it is routed.
        for (&p, &first) in &batch_start {
            self.live_next.insert(p, first);
        }
        self.place_new_subscriptions(owned).await?;
        let mut left: BTreeSet<String> = BTreeSet::new();
        // (subscription, partition) of each release of granted history the live loop made.
        let mut history_counts: Vec<(String, u32)> = Vec::new();
        let mut outgoing = Vec::new();
        let mut releases = Vec::new();
        for consumed in batch {
            let partition = consumed.position.partition;
            // The live position is this record: a subscription placed now is live from it, or behind it.
            self.live_next.insert(partition, consumed.position.offset);
            // Pauses, revocations and expiries take effect before the next record; activations from it.
            left.extend(self.refresh_table(owned, Some(&batch_start)).await?);
            self.live_next
                .insert(partition, consumed.position.offset + 1);
            if self.table.subscriptions.is_empty() {
                continue;
            }
            if !self.standings.any_live_on(partition) {
                continue;
            }
            releases.clear();
            let Some(record) = decode_and_route(
                &mut self.decoder,
                &self.table,
                &self.context,
                self.schema,
                consumed,
                &mut releases,
            ) else {
                continue;
            };
            let stamped = consumed.record.timestamp_ms;
            releases.retain(|r| {
                let route = &self.table.subscriptions[r.route];
                // Never a record from before what the grant covers, however far the router lags.
                route.covers(stamped) && self.standings.is_live(&route.subscription, partition)
            });
            if releases.is_empty() {
                continue;
            }
            let about = ReleasedRecordIds::of(self.schema, &record, consumed, &self.context.key);
            for release in releases.drain(..) {
                let route = &self.table.subscriptions[release.route];
                // A granted history's record the live loop reached first is history all the same.
                let history = route.is_history(stamped, false);
                if history {
                    history_counts.push((route.subscription.clone(), partition));
                }
                outgoing.push(outgoing_release(
                    route,
                    consumed,
                    &about,
                    release.value,
                    history,
                    false,
                ));
            }
        }
        left.extend(self.refresh_table(owned, Some(&batch_start)).await?);
        history_counts.retain(|(s, _)| !left.contains(s));
        let mut touched: BTreeMap<String, usize> = BTreeMap::new();
        for (subscription, partition) in history_counts {
            self.standings
                .count_live_history(&subscription, partition, 1);
            *touched.entry(subscription).or_default() += 1;
        }
        for (subscription, n) in touched {
            self.report_history(&subscription, n);
        }
        // A subscription that left during the batch gets nothing of it: a paused one was set behind at the
        // batch's start, and receives it on resume.
        outgoing.retain(|o| !left.contains(&o.subscription));
        // Committing needs positions only: keep each partition's last one, not a copy of the record.
        for r in batch {
            self.uncommitted.insert(
                r.position.partition,
                ConsumedRecord {
                    position: r.position.clone(),
                    record: Record::default(),
                },
            );
        }
        if outgoing.is_empty() && !self.standings.has_unwritten() {
            if self.last_commit.elapsed() >= COMMIT_INTERVAL {
                self.commit_idle(consumer).await;
            }
            return Ok(());
        }
        self.write(outgoing, Some(consumer)).await
    }

    /// Whether a routed subscription is behind on an owned partition.
    fn history_pending(&self, owned: &[u32]) -> bool {
        if !self.standings.any_behind() {
            return false;
        }
        self.standings.behind().iter().any(|(s, p, _)| {
            owned.contains(p)
                && self
                    .table
                    .subscriptions
                    .iter()
                    .any(|r| &r.subscription == s)
        })
    }

    /// One step of history for every routed subscription behind on an owned partition: up to
    /// [`HISTORY_STEP`] records from where it stands, never past the live position; at the live position it
    /// joins the live loop. Each step is one write.
    async fn release_history(&mut self, owned: &[u32]) -> Result<(), unsilo_bus::Error> {
        for (subscription, partition, behind) in self.standings.behind() {
            if !owned.contains(&partition) {
                continue;
            }
            let Some(route) = self
                .table
                .subscriptions
                .iter()
                .find(|r| r.subscription == subscription)
                .cloned()
            else {
                continue; // paused, or no longer active: it waits where it is
            };
            let live = self.live_next.get(&partition).copied().unwrap_or(0);
            let mut next = behind.next;
            let mut outgoing = Vec::new();
            let mut read = 0u64;
            if next < live {
                let fetched = self
                    .context
                    .bus
                    .fetch(&FetchRequest::new(
                        &self.topic,
                        partition,
                        next,
                        // Never more than up to the live position: a fetch that gets all it asked for
                        // returns at once.
                        HISTORY_STEP.min(usize::try_from(live - next).unwrap_or(HISTORY_STEP)),
                        Duration::ZERO,
                    ))
                    .await?;
                let single = RoutingTable::of(vec![route.clone()]);
                let mut releases = Vec::new();
                for consumed in fetched.iter().filter(|c| c.position.offset < live) {
                    next = consumed.position.offset + 1;
                    read += 1;
                    let stamped = consumed.record.timestamp_ms;
                    if !route.covers(stamped) {
                        continue;
                    }
                    releases.clear();
                    let Some(record) = decode_and_route(
                        &mut self.decoder,
                        &single,
                        &self.context,
                        self.schema,
                        consumed,
                        &mut releases,
                    ) else {
                        continue;
                    };
                    if releases.is_empty() {
                        continue;
                    }
                    let about =
                        ReleasedRecordIds::of(self.schema, &record, consumed, &self.context.key);
                    let history = route.is_history(stamped, behind.reason == BehindReason::Pause);
                    for release in releases.drain(..) {
                        outgoing.push(outgoing_release(
                            &route,
                            consumed,
                            &about,
                            release.value,
                            history,
                            true,
                        ));
                    }
                }
                if fetched.iter().all(|c| c.position.offset >= live) {
                    next = live; // nothing left below the live position (removed by retention, or compacted)
                }
            }
            let from_history = outgoing.iter().filter(|o| o.release.history).count();
            let released = behind.released + from_history as u64;
            let standing = if next >= live {
                info!(subscription = %subscription, partition, released, reason = behind.reason.as_str(), "History caught up; the subscription is live.");
                Standing::live_now(released)
            } else {
                Standing::Behind(Behind {
                    next,
                    read: behind.read + read,
                    released,
                    ..behind
                })
            };
            self.standings.set(&subscription, partition, standing);
            self.write(outgoing, None).await?;
            self.report_history(&subscription, from_history);
        }
        Ok(())
    }

    /// Writes releases, their evidence, the changed standings and — given the live consumer — the offsets of
    /// what the live loop routed, in one write. Does nothing when there is nothing to write.
    async fn write(
        &mut self,
        mut outgoing: Vec<Outgoing>,
        consumer: Option<&mut dyn Consumer>,
    ) -> Result<(), unsilo_bus::Error> {
        // Releases an interrupted write already sent are dropped; those it recorded are sent, not recorded again.
        let mut recorded_earlier = Vec::new();
        if let Some(recovery) = &self.recovery {
            let mut kept = Vec::with_capacity(outgoing.len());
            for o in outgoing {
                let (partition, offset) = o.source;
                match recovery.verdict(&o.subscription, partition, offset, &o.release.record_id) {
                    Verdict::Out => {}
                    Verdict::Recorded => recorded_earlier.push(o),
                    Verdict::Fresh => kept.push(o),
                }
            }
            outgoing = kept;
        }
        if outgoing.is_empty() && recorded_earlier.is_empty() && !self.standings.has_unwritten() {
            return Ok(());
        }
        let atomic = self.context.bus.writes_atomically();
        let mut intent = (!atomic && !outgoing.is_empty()).then(|| WriteIntent {
            schema: self.schema.name().to_owned(),
            write: WriteIntent::new_write_id(),
            previous: self.recovery.as_ref().map(|r| Box::new(r.previous())),
            ..WriteIntent::default()
        });
        let mut per_topic: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        let mut per_subscription: BTreeMap<String, usize> = BTreeMap::new();
        let mut evidence = Vec::with_capacity(outgoing.len());
        for mut o in outgoing {
            if let Some(intent) = intent.as_mut() {
                intent.note_source(&o.subscription, o.source.0, o.source.1, o.by_history_step);
                o.record = o
                    .record
                    .with_header(HEADER_ROUTER_WRITE_ID, intent.write.as_bytes().to_vec());
            }
            per_topic.entry(o.topic).or_default().push(o.record);
            *per_subscription.entry(o.subscription).or_default() += 1;
            evidence.push(o.release);
        }
        if let Some(intent) = intent.as_mut() {
            for topic in per_topic.keys() {
                if !self.destination_ends.contains_key(topic) {
                    let ends = self.context.bus.end_offsets(topic).await?;
                    self.destination_ends.insert(topic.clone(), ends);
                }
            }
            intent.note_destinations(&per_topic, &self.destination_ends);
        }
        if let Some(recovery) = &self.recovery {
            for o in recorded_earlier {
                let record = o.record.with_header(
                    HEADER_ROUTER_WRITE_ID,
                    recovery.write_id().as_bytes().to_vec(),
                );
                per_topic.entry(o.topic).or_default().push(record);
                *per_subscription.entry(o.subscription).or_default() += 1;
            }
        }
        let mut parts = Vec::with_capacity(2 + per_topic.len());
        // Evidence first: on Kafka each part is durable before the next is sent.
        let audit = Arc::clone(&self.context.audit);
        let mut chained = if evidence.is_empty() {
            None
        } else {
            Some(
                audit
                    .chain_releases(&evidence)
                    .await
                    .map_err(|e| unsilo_bus::Error::Store(e.to_string()))?,
            )
        };
        let mut intent_json = None;
        if let (Some(intent), Some(chained)) = (intent.as_mut(), chained.as_mut()) {
            intent.from_seq = chained.first_seq();
            intent.to_seq = chained.last_entry().seq;
            intent.terms = chained.terms_seqs(&evidence);
            let json = serde_json::to_vec(&*intent)
                .map_err(|e| unsilo_bus::Error::Store(format!("router write intent: {e}")))?;
            chained.mark_last(HEADER_ROUTER_INTENT, json.clone());
            intent_json = Some(json);
        }
        if let Some(chained) = chained.as_mut() {
            parts.push(chained.take_entries());
        }
        let releases = per_topic.len();
        parts.extend(per_topic);
        parts.extend(self.standings.unwritten_part());
        let committing: Vec<ConsumedRecord> = self.uncommitted.values().cloned().collect();
        if atomic {
            match consumer {
                Some(c) if !committing.is_empty() => {
                    c.publish_and_commit(self.context.bus.as_ref(), parts, &committing)
                        .await?;
                    self.uncommitted.clear();
                    self.last_commit = Instant::now();
                }
                _ => {
                    self.context.bus.publish_all(parts).await?;
                }
            }
            if let Some(chained) = chained {
                chained.written();
            }
        } else {
            self.write_in_order(parts, chained, intent_json, releases)
                .await?;
            if let Some(c) = consumer.filter(|_| !committing.is_empty()) {
                c.commit(&committing).await?;
                self.uncommitted.clear();
                self.last_commit = Instant::now();
            }
        }
        self.standings.written();
        for (subscription, n) in per_subscription {
            self.context.metrics.record_release(&subscription, n);
        }
        // Past the interrupted write's records in this process (each routed again once, under the verdicts), the
        // recovery has done its work.
        if self
            .recovery
            .as_ref()
            .is_some_and(|r| r.completed(&self.live_next, &self.standings))
        {
            info!(topic = %self.topic, "The interrupted router write is complete.");
            self.recovery = None;
        }
        Ok(())
    }

    /// Writes `parts` one after the other, each durable before the next (a bus without atomic writes): the
    /// evidence first — the chain's head moves and the intent is noted as soon as it is durable — then the
    /// `releases` destination topics, then the standings. Where a test injects a fault, the process dies between
    /// them ([`crate::fault`]).
    async fn write_in_order(
        &mut self,
        parts: Vec<(String, Vec<Record>)>,
        mut chained: Option<crate::audit::ChainedEntries<'_>>,
        intent_json: Option<Vec<u8>>,
        releases: usize,
    ) -> Result<(), unsilo_bus::Error> {
        let mut parts = parts.into_iter();
        if let Some(chained) = chained.take() {
            let (topic, records) = parts.next().unwrap_or_default();
            let positions = self.context.bus.publish(&topic, records).await?;
            if let (Some(intent), Some(last)) = (intent_json, positions.last()) {
                self.context.audit.note_router_intent(
                    self.schema.name(),
                    crate::audit::RouterIntentEntry {
                        offset: last.offset,
                        intent,
                    },
                );
            }
            chained.written();
        }
        for (i, (topic, records)) in parts.enumerate() {
            let positions = self.context.bus.publish(&topic, records).await?;
            if let Some(ends) = self.destination_ends.get_mut(&topic) {
                for p in &positions {
                    if let Some(end) = ends.get_mut(p.partition as usize) {
                        *end = (*end).max(p.offset + 1);
                    }
                }
            }
            if i == 0 && releases > 1 {
                crate::fault::reached(crate::fault::ROUTER_BETWEEN_RELEASES);
            }
            if i + 1 == releases {
                crate::fault::reached(crate::fault::ROUTER_AFTER_RELEASES);
            }
        }
        Ok(())
    }

    /// Commits the offsets of routed records that released nothing (a failed commit only means they are
    /// routed again, which releases nothing again).
    async fn commit_idle(&mut self, consumer: &mut dyn Consumer) {
        if self.uncommitted.is_empty() {
            return;
        }
        let last: Vec<ConsumedRecord> = std::mem::take(&mut self.uncommitted)
            .into_values()
            .collect();
        if let Err(e) = consumer.commit(&last).await {
            warn!(topic = %self.topic, error = %e, "Router commit failed; the records may be routed again.");
        }
        self.last_commit = Instant::now();
    }

    /// Publishes where a subscription's history stands to the live figures and the metrics.
    fn report_history(&self, subscription: &str, released_now: usize) {
        let standings = self.standings.of(subscription);
        let mut progress = HistoryProgress {
            live: true,
            ..HistoryProgress::default()
        };
        for (p, standing) in &standings {
            match standing {
                Standing::Behind(b) => {
                    progress.live = false;
                    progress.reason = Some(b.reason.as_str().to_owned());
                    progress.read += b.read;
                    progress.released += b.released;
                    let live = self.live_next.get(p).copied().unwrap_or(0);
                    progress.remaining += live.saturating_sub(b.next);
                }
                Standing::Live {
                    history_released, ..
                } => progress.released += history_released,
            }
        }
        self.context
            .metrics
            .record_history(subscription, progress.remaining, released_now);
        self.context.metrics.flows.history(subscription, progress);
    }
}

/// The partitions of `topic` this member of the router's group owns: its assignment, and any partition it was
/// just given records of.
fn owned_partitions(consumer: &dyn Consumer, topic: &str, batch: &[ConsumedRecord]) -> Vec<u32> {
    let mut owned: BTreeSet<u32> = consumer
        .assignment()
        .into_iter()
        .filter(|(t, _)| t == topic)
        .map(|(_, p)| p)
        .collect();
    owned.extend(batch.iter().map(|r| r.position.partition));
    owned.into_iter().collect()
}

/// Decodes one record and routes it through `table` into `releases`, counting what the classification gates
/// held back; `None` if it cannot be routed (logged).
fn decode_and_route(
    decoder: &mut Decoder,
    table: &RoutingTable,
    context: &RouterContext,
    schema: &'static SharedSchema,
    consumed: &ConsumedRecord,
    releases: &mut Vec<super::Release>,
) -> Option<apache_avro::types::Value> {
    let framed = consumed.record.value.as_deref()?;
    let record = match decoder.decode(framed) {
        Ok(r) => r,
        Err(e) => {
            warn!(topic = %consumed.position.topic, offset = consumed.position.offset, error = %e, "Record not routable; skipped.");
            return None;
        }
    };
    match table.route(&record, unsilo_bus::now_ms(), &context.key, releases) {
        Ok(gated) => {
            let metrics = &context.metrics;
            metrics.record_held(schema.name(), "not_shared", u64::from(gated.not_shared));
            metrics.record_held(
                schema.name(),
                "core_needs_four_eyes",
                u64::from(gated.core_held),
            );
            if let Some(route) = gated.over_budget.and_then(|i| table.subscriptions.get(i)) {
                tokio::spawn(pause_over_budget(
                    context.clone(),
                    route.subscription.clone(),
                ));
            }
            Some(record)
        }
        Err(e) => {
            error!(offset = consumed.position.offset, error = %e, "Record not routed.");
            None
        }
    }
}

/// Pauses a subscription whose filter costs more than one record may (see
/// [`unsilo_policy::filter::MATCH_BUDGET_BYTES`]), with the reason, on the control plane and in the audit log. Only
/// an operator can resume it. A subscription no longer active (paused by an earlier record) is left alone.
async fn pause_over_budget(context: RouterContext, id: String) {
    let Some(mut paused) = context
        .control
        .subscription(&id)
        .filter(|s| s.status == unsilo_policy::model::SubscriptionStatus::Active)
    else {
        return;
    };
    let reason = format!(
        "its filter's matches() would scan more than {} bytes of text for one record; narrow the filter and ask an operator to resume it",
        unsilo_policy::filter::MATCH_BUDGET_BYTES
    );
    paused.status = unsilo_policy::model::SubscriptionStatus::Paused;
    paused.reason = Some(reason.clone());
    paused.decided_by = Some("hub".into());
    paused.decided_at_ms = Some(unsilo_bus::now_ms());
    paused.revision += 1;
    if let Err(e) = context.control.put_subscription(&paused).await {
        debug!(subscription = %id, error = %e, "Over-budget pause not written (changed meanwhile).");
        return;
    }
    warn!(subscription = %id, "Subscription paused: its filter costs more than one record may.");
    let entry = crate::audit::AuditEvent::Control {
        actor: "hub".into(),
        role: None,
        action: "subscription.pause".into(),
        target: id.clone(),
        detail: serde_json::json!({ "reason": reason }),
    };
    if let Err(e) = context.audit.append(vec![entry]).await {
        error!(subscription = %id, error = %e, "The over-budget pause could not be recorded in the audit log.");
    }
}

/// What every release of one record shares: its id and the pseudonymous keys of the persons it names, worked
/// out once per record, not once per release.
struct ReleasedRecordIds {
    record_id: Arc<str>,
    persons: Arc<[String]>,
}

impl ReleasedRecordIds {
    fn of(
        schema: &SharedSchema,
        record: &apache_avro::types::Value,
        consumed: &ConsumedRecord,
        key: &unsilo_policy::treat::PseudonymKey,
    ) -> Self {
        Self {
            record_id: consumed.record.record_id().into(),
            persons: person_keys(schema, record, key).into(),
        }
    }
}

/// The record released to `route` and its evidence.
fn outgoing_release(
    route: &ActiveSubscription,
    consumed: &ConsumedRecord,
    about: &ReleasedRecordIds,
    value: Vec<u8>,
    history: bool,
    by_history_step: bool,
) -> Outgoing {
    let record_id = &about.record_id;
    let release = crate::audit::Release {
        record_id: Arc::clone(record_id),
        persons: Arc::clone(&about.persons),
        terms: Arc::clone(&route.terms),
        history,
    };
    let mut out = Record::new(record_id.as_bytes(), value)
        .with_header(HEADER_RECORD_ID, record_id.as_bytes().to_vec())
        .with_header(HEADER_SUBSCRIPTION, route.subscription.as_bytes().to_vec());
    if let Some(days) = route.retain_days {
        out = out.with_header(HEADER_RETAIN_DAYS, days.to_string().into_bytes());
    }
    if history {
        out = out.with_header(HEADER_BACKFILL, b"true".to_vec());
    }
    out.timestamp_ms = consumed.record.timestamp_ms;
    Outgoing {
        subscription: route.subscription.clone(),
        topic: route.topic.clone(),
        record: out,
        release,
        source: (consumed.position.partition, consumed.position.offset),
        by_history_step,
    }
}
