//! The record ids a connector accepted lately, so a batch sent again is not ingested twice.
//!
//! A source that lost the answer to a push — the hub was killed between making the batch durable and replying —
//! sends it again. Its records have the same record ids (the id is the source's record id and version), so the
//! sink answers them as accepted without writing them a second time, and no subscriber receives them twice.
//! The window holds the last [`WINDOW`] ids, in memory; at start it is refilled from the tail of
//! `raw.<connector>`, where every accepted original carries its record id.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use unsilo_bus::{Bus, FetchRequest};
use unsilo_schemas::names::raw_topic;

/// How many recent record ids a connector remembers.
pub const WINDOW: usize = 100_000;

/// The last [`WINDOW`] record ids a connector accepted.
#[derive(Debug, Default)]
pub struct RecentIds {
    inner: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Window {
    fn insert(&mut self, id: String) -> bool {
        if !self.ids.insert(id.clone()) {
            return false;
        }
        self.order.push_back(id);
        while self.order.len() > WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

impl RecentIds {
    /// Refills the window from the last records of `raw.<connector>`.
    pub async fn load(bus: &dyn Bus, connector: &str) -> Result<Self, unsilo_bus::Error> {
        let topic = raw_topic(connector);
        let ends = bus.end_offsets(&topic).await?;
        let per_partition = (WINDOW / ends.len().max(1)) as u64;
        let recent = RecentIds::default();
        for (partition, end) in ends.iter().enumerate() {
            let mut next = end.saturating_sub(per_partition);
            while next < *end {
                let want = usize::try_from(end - next).unwrap_or(usize::MAX).min(5_000);
                let read = bus
                    .fetch(&FetchRequest::new(
                        &topic,
                        partition as u32,
                        next,
                        want,
                        Duration::ZERO,
                    ))
                    .await?;
                let Some(last) = read.last().map(|r| r.position.offset) else {
                    break;
                };
                let mut window = recent.lock();
                for r in &read {
                    let id = r.record.record_id();
                    if !id.is_empty() {
                        window.insert(id);
                    }
                }
                next = last + 1;
            }
        }
        Ok(recent)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims `ids` for a write: returns, for each, whether it is new (to be written). The new ones count as
    /// seen from now on; [`Self::release`] gives them back if the write fails.
    pub fn claim<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<bool> {
        let mut window = self.lock();
        ids.into_iter()
            .map(|id| window.insert(id.to_owned()))
            .collect()
    }

    /// Forgets ids whose write failed, so a retry writes them.
    pub fn release<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut window = self.lock();
        for id in ids {
            if window.ids.remove(id) {
                window.order.retain(|o| o != id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_sent_again_is_claimed_once() {
        let recent = RecentIds::default();
        assert_eq!(recent.claim(["a", "b"]), [true, true]);
        assert_eq!(recent.claim(["b", "c", "c"]), [false, true, false]);
        recent.release(["c"]);
        assert_eq!(recent.claim(["c"]), [true]);
    }

    #[test]
    fn the_window_forgets_the_oldest() {
        let recent = RecentIds::default();
        let ids: Vec<String> = (0..=WINDOW).map(|i| i.to_string()).collect();
        recent.claim(ids.iter().map(String::as_str));
        assert_eq!(recent.claim(["0"]), [true], "the oldest id was forgotten");
        assert_eq!(recent.claim([WINDOW.to_string().as_str()]), [false]);
    }
}
