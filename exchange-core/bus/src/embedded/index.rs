//! The embedded bus's time and size index, and what it serves: finding the first record at or after a time
//! ([`Bus::offsets_for_time`](crate::Bus::offsets_for_time)) and removing what retention allows.
//!
//! One entry per partition per second of record time, keyed `topic id | partition | second` — the second of the
//! running maximum of the record timestamps, so keys only grow — valued `end offset | bytes written so far`. Every
//! record before an entry's end offset is older than the end of its second.

use std::sync::atomic::Ordering;

use tracing::debug;

use super::{log_key, offset_of_log_key, store_err, EmbeddedBus, TopicState};
use crate::{Error, Record, Result, Retention, RetentionRemoval};

/// The index key of `second` (of record time) in one partition.
pub(super) fn index_key(topic_id: u32, partition: u32, second: u64) -> [u8; 16] {
    log_key(topic_id, partition, second)
}

/// The second of a record timestamp, as the index counts (times before the epoch count as second 0).
pub(super) fn second_of(timestamp_ms: i64) -> u64 {
    u64::try_from(timestamp_ms.max(0) / 1000).unwrap_or(0)
}

/// An index entry's value: the end offset and the bytes written up to it.
pub(super) fn index_value(end_offset: u64, bytes: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&end_offset.to_be_bytes());
    v[8..].copy_from_slice(&bytes.to_be_bytes());
    v
}

pub(super) fn read_index_value(value: &[u8]) -> Result<(u64, u64)> {
    let end = value.get(..8).and_then(|s| <[u8; 8]>::try_from(s).ok());
    let bytes = value.get(8..16).and_then(|s| <[u8; 8]>::try_from(s).ok());
    match (end, bytes) {
        (Some(e), Some(b)) => Ok((u64::from_be_bytes(e), u64::from_be_bytes(b))),
        _ => Err(Error::Store(format!(
            "index entry of {} bytes, expected 16",
            value.len()
        ))),
    }
}

impl EmbeddedBus {
    /// The end offset of the last index entry of a second before `timestamp_ms`'s: every record before it is
    /// older than `timestamp_ms` (0 when the index knows no such second).
    pub(super) fn older_than(
        &self,
        t: &TopicState,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        let range =
            index_key(t.id, partition, 0)..index_key(t.id, partition, second_of(timestamp_ms));
        match self.inner.index.range(range).next_back() {
            Some(item) => {
                let (_, v) = item.map_err(store_err)?;
                Ok(read_index_value(&v)?.0)
            }
            None => Ok(0),
        }
    }

    /// The first offset of one partition whose record is at or after `timestamp_ms` (the end when none is).
    pub(super) fn offset_for_time(
        &self,
        t: &TopicState,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        let end = t.next_offsets[partition as usize].load(Ordering::Acquire);
        let first = t.first_kept[partition as usize].load(Ordering::Acquire);
        let mut from = self.older_than(t, partition, timestamp_ms)?.max(first);
        // The index's entry is at most a second's records short of the answer: read forward from it.
        while from < end {
            let range = log_key(t.id, partition, from)..log_key(t.id, partition, end);
            let mut last = None;
            for item in self.inner.log.range(range).take(1024) {
                let (k, v) = item.map_err(store_err)?;
                let offset = offset_of_log_key(&k)?;
                let record: Record = postcard::from_bytes(&v).map_err(store_err)?;
                if record.timestamp_ms >= timestamp_ms {
                    return Ok(offset);
                }
                last = Some(offset);
            }
            match last {
                Some(o) => from = o + 1,
                None => break,
            }
        }
        Ok(end)
    }

    /// Removes what one partition's retention allows to go: records older than the age limit, then the oldest
    /// records beyond the size limit, found through the index.
    pub(super) fn apply_retention(
        &self,
        t: &TopicState,
        partition: u32,
        retention: Retention,
        now_ms: i64,
    ) -> Result<Option<RetentionRemoval>> {
        let p = partition as usize;
        let first = t.first_kept[p].load(Ordering::Acquire);
        let mut cut = first;
        let mut index_below = 0u64; // index entries of seconds before this one go
        if let Some(age) = retention.max_age_ms {
            let cutoff = now_ms.saturating_sub(i64::try_from(age).unwrap_or(i64::MAX));
            cut = cut.max(self.older_than(t, partition, cutoff)?);
            index_below = second_of(cutoff);
        }
        if let Some(max_bytes) = retention.max_bytes {
            let written = t.bytes_written[p].load(Ordering::Acquire);
            if written > max_bytes {
                let range = index_key(t.id, partition, 0)..=index_key(t.id, partition, u64::MAX);
                for item in self.inner.index.range(range) {
                    let (k, v) = item.map_err(store_err)?;
                    let (end, bytes) = read_index_value(&v)?;
                    if written - bytes <= max_bytes {
                        cut = cut.max(end);
                        index_below = index_below.max(offset_of_log_key(&k)?);
                        break;
                    }
                }
            }
        }
        if cut <= first {
            return Ok(None);
        }
        let removed = self.remove_range(t, partition, first, cut)?;
        let stale: Vec<_> = self
            .inner
            .index
            .range(index_key(t.id, partition, 0)..index_key(t.id, partition, index_below))
            .map(|item| item.map(|(k, _)| k))
            .collect::<std::result::Result<_, _>>()
            .map_err(store_err)?;
        let mut batch = self.inner.keyspace.batch();
        for k in &stale {
            batch.remove(&self.inner.index, k.as_ref());
        }
        batch.commit().map_err(store_err)?;
        t.first_kept[p].fetch_max(cut, Ordering::Release);
        debug!(topic = %t.spec.name, partition, removed, first_kept = cut, "Retention removed records.");
        Ok(Some(RetentionRemoval {
            topic: t.spec.name.clone(),
            partition,
            records: removed,
            first_kept: cut,
        }))
    }

    /// Deletes the records of one partition in `[first, cut)`, in batches, and moves its first kept offset to
    /// `cut`; returns how many were deleted.
    pub(super) fn remove_range(
        &self,
        t: &TopicState,
        partition: u32,
        first: u64,
        cut: u64,
    ) -> Result<u64> {
        let mut removed = 0u64;
        loop {
            let keys: Vec<_> = self
                .inner
                .log
                .range(log_key(t.id, partition, first)..log_key(t.id, partition, cut))
                .take(10_000)
                .map(|item| item.map(|(k, _)| k))
                .collect::<std::result::Result<_, _>>()
                .map_err(store_err)?;
            if keys.is_empty() {
                break;
            }
            let mut batch = self.inner.keyspace.batch();
            for k in &keys {
                batch.remove(&self.inner.log, k.as_ref());
            }
            batch.commit().map_err(store_err)?;
            removed += keys.len() as u64;
        }
        t.first_kept[partition as usize].fetch_max(cut, Ordering::Release);
        Ok(removed)
    }
}
