//! History beside live traffic: a whole hub on the embedded bus (fsync on) holds a history of `grid_event`
//! records when a new subscription is granted all of it, while live records keep arriving at a steady rate for
//! a subscription that is already live.
//!
//! Measured, in one run:
//!
//! - **history released**: records of history per second from the grant until the new subscription's reader
//!   has every one of them;
//! - **live beside it**: each live record from its publish until the live subscription's reader has it, p50 /
//!   p99 / maximum, while the history is released;
//! - the baselines: the same live rate **before** the grant (the hub with nothing else to do), and reading the
//!   history from the bus alone (what any release of it must at least do).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use unsilo_bus::Record;
use unsilo_schemas::names::HEADER_RECORD_ID;

use super::latency::{
    active_subscription, between, bodies, hub_with_agency, spawn_reader, write_steadily, Quantiles,
    Sent,
};
use super::routing::spec;
use super::scale::setup;
use super::BenchError;

/// Seconds of live traffic measured before the grant.
const ALONE_SECONDS: u32 = 5;
/// History records per publish while the history is written.
const HISTORY_BATCH: usize = 1000;

/// What [`history_beside_live`] measured.
#[derive(Clone, Debug)]
pub struct HistoryBesideLive {
    /// Records of history granted to the new subscription.
    pub history_records: usize,
    /// Records of history released per second, from the grant until the subscriber had them all.
    pub history_per_s: f64,
    /// Records of that history read per second from the bus alone (the baseline).
    pub read_per_s: f64,
    /// Live records per second, before the grant and beside the history.
    pub live_rate: u32,
    /// Live records from publish to the live subscriber, before the grant.
    pub live_alone: Quantiles,
    /// The same while the history was released.
    pub live_beside: Quantiles,
    /// Live records measured while the history was released.
    pub live_beside_records: usize,
}

/// Writes `history_records` records of history, then measures live records at `live_rate` records/s alone and
/// while a new subscription is granted and released the whole history.
pub async fn history_beside_live(
    scratch: &super::Scratch,
    history_records: usize,
    live_rate: u32,
) -> Result<HistoryBesideLive, BenchError> {
    let dir = scratch.dir()?;
    let hub = hub_with_agency(dir.path()).await?;
    let shared = unsilo_schemas::shared_schema("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event schema".into()))?;
    let topic = shared.topic();
    let schema_id = hub
        .registry
        .lookup(&shared.subject(), &shared.schema_string(), false)
        .map_err(setup)?
        .id as u32;
    let templates = bodies(schema_id, 132)?;
    let history_from_ms = unsilo_bus::now_ms() - 1000;

    // The history, then the router past it (nothing subscribes yet).
    for start in (0..history_records).step_by(HISTORY_BATCH) {
        let batch = (start..(start + HISTORY_BATCH).min(history_records))
            .map(|i| {
                let id = format!("hist-{i}");
                Record::new(id.as_bytes(), templates[i % templates.len()].clone())
                    .with_header(HEADER_RECORD_ID, id.as_bytes().to_vec())
            })
            .collect();
        hub.bus.publish(&topic, batch).await?;
    }
    let cluster = unsilo_hub::config::Config::default().hub.cluster;
    super::scale::router_caught_up(&hub, &cluster).await?;
    let read_per_s = read_all(&hub, &topic, history_records).await?;
    let everything = "region_code.startsWith(\"61\")".to_owned();
    let live = active_subscription(&hub, "live", spec(everything.clone(), 1)).await?;
    let deadline = Instant::now() + Duration::from_secs(1800);

    // Live alone.
    let alone_total = (live_rate * ALONE_SECONDS) as usize;
    let on_live = spawn_reader(
        &hub,
        "bench.history.live-alone",
        live.topic(),
        "alone-",
        Arc::new(AtomicUsize::new(alone_total)),
        deadline,
    );
    let alone = write_steadily(
        &hub,
        &topic,
        &templates,
        live_rate,
        "alone-",
        alone_total,
        &AtomicBool::new(false),
    )
    .await?;
    let seen = on_live.await.map_err(setup)??;
    let live_alone = Quantiles::of(between(&alone.sent, &seen));

    // Live beside the history: the grant, then live records until the new subscriber has all the history.
    let beside_target = Arc::new(AtomicUsize::new(usize::MAX));
    let on_live = spawn_reader(
        &hub,
        "bench.history.live-beside",
        live.topic(),
        "beside-",
        beside_target.clone(),
        deadline,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (hub, topic, templates, stop) =
            (hub.clone(), topic.clone(), templates.clone(), stop.clone());
        tokio::spawn(async move {
            write_steadily(
                &hub,
                &topic,
                &templates,
                live_rate,
                "beside-",
                usize::MAX,
                &stop,
            )
            .await
        })
    };
    let granted = Instant::now();
    let mut history_spec = spec(everything, 2);
    history_spec.backfill_from_ms = Some(history_from_ms);
    let history = active_subscription(&hub, "history", history_spec).await?;
    let on_history = spawn_reader(
        &hub,
        "bench.history.sub",
        history.topic(),
        "hist-",
        Arc::new(AtomicUsize::new(history_records)),
        deadline,
    );
    let history_seen = on_history.await.map_err(setup);
    stop.store(true, Ordering::Relaxed);
    let beside: Result<Sent, BenchError> = writer.await.map_err(setup)?;
    let beside = beside?;
    beside_target.store(beside.sent.len(), Ordering::Relaxed);
    let live_seen = on_live.await.map_err(setup)??;
    let history_seen = history_seen??;
    hub.shutdown().await?;
    if history_seen.len() < history_records {
        return Err(BenchError::Avro(format!(
            "the new subscription received {} of {history_records} records of history in half an hour",
            history_seen.len()
        )));
    }
    let last = history_seen.values().max().copied().unwrap_or(granted);
    let seconds = last.saturating_duration_since(granted).as_secs_f64();
    Ok(HistoryBesideLive {
        history_records,
        history_per_s: history_records as f64 / seconds.max(1e-9),
        read_per_s,
        live_rate,
        live_alone,
        live_beside: Quantiles::of(between(&beside.sent, &live_seen)),
        live_beside_records: live_seen.len(),
    })
}

/// Reads every record of `topic` from its start through the bus, checking there are at least `records`:
/// records/s.
async fn read_all(
    hub: &unsilo_hub::server::Hub,
    topic: &str,
    records: usize,
) -> Result<f64, BenchError> {
    let started = Instant::now();
    let mut read = 0usize;
    let partitions = hub.bus.partition_count(topic).await?.unwrap_or(0);
    for partition in 0..partitions {
        unsilo_bus::read::read_partition(hub.bus.as_ref(), topic, partition, 0, None, |_| {
            read += 1;
            true
        })
        .await?;
    }
    if read < records {
        return Err(BenchError::Avro(format!(
            "read {read} of the {records} records of history"
        )));
    }
    Ok(read as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_history_reaches_the_new_subscriber_while_live_records_flow() {
        let scratch = super::super::Scratch::under(None).expect("scratch");
        let h = history_beside_live(&scratch, 3_000, 200)
            .await
            .expect("measured");
        assert_eq!(h.history_records, 3_000);
        assert!(h.history_per_s > 0.0 && h.read_per_s > 0.0, "{h:?}");
        assert!(h.live_alone.p99_ms.is_finite(), "{h:?}");
        assert!(h.live_beside_records > 0, "{h:?}");
    }
}
