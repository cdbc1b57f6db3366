//! Reading one partition from an offset to its end (or to a given offset), outside any consumer group: what the
//! audit log's readers, a router recovering an interrupted write and the benchmarks do.
//!
//! The end is the partition's high watermark, but not blindly: a fetch may come back empty before it (a broker
//! still answering, a slow disk), so empty fetches are retried until it is reached; past it, the first empty fetch
//! ends the read, and reading goes on while records keep coming, since a broker may report a watermark below its
//! last records (Tansu 0.6 does after a multi-record batch).

use std::time::Duration;

use super::{Bus, ConsumedRecord, Error, FetchRequest, Result};

/// Records asked for per fetch.
const READ_BATCH: usize = 5000;
/// How long a fetch waits for records before it counts as empty.
const READ_WAIT: Duration = Duration::from_millis(300);
/// Empty fetches before the watermark after which the read fails.
const MAX_EMPTY_FETCHES: u32 = 100;

/// Reads `topic`'s `partition` from `from` up to `until` (exclusive; the partition's end when `None`), handing
/// each record to `visit` in offset order until it answers `false`.
pub async fn read_partition(
    bus: &dyn Bus,
    topic: &str,
    partition: u32,
    mut from: u64,
    until: Option<u64>,
    mut visit: impl FnMut(ConsumedRecord) -> bool,
) -> Result<()> {
    let watermark = bus
        .end_offsets(topic)
        .await?
        .get(partition as usize)
        .copied()
        .unwrap_or(0);
    let mut empty = 0;
    loop {
        if until.is_some_and(|u| from >= u) {
            return Ok(());
        }
        let batch = bus
            .fetch(&FetchRequest::new(
                topic, partition, from, READ_BATCH, READ_WAIT,
            ))
            .await?;
        let Some(last) = batch.last() else {
            let end = until.unwrap_or(watermark);
            if until.is_none() && from >= end {
                return Ok(());
            }
            empty += 1;
            if empty >= MAX_EMPTY_FETCHES {
                return Err(Error::Store(format!(
                    "{topic}/{partition}: no records readable at offset {from} although it ends at {end}"
                )));
            }
            continue;
        };
        empty = 0;
        from = last.position.offset + 1;
        for record in batch {
            if until.is_some_and(|u| record.position.offset >= u) || !visit(record) {
                return Ok(());
            }
        }
    }
}
