//! The index of releases by person: for each pseudonymous person key, the offsets of the audit entries that
//! released a record naming that person. It answers "who received data about this person" (PIPL Art. 44–45)
//! without scanning the audit log and without the hub ever storing an ID number — the key is the keyed
//! pseudonym the release entries already carry.
//!
//! The index lives in memory. It is built on first use by one pass over the log, then kept current
//! incrementally: every lookup first reads only the entries written since the last one, so an answer includes
//! every release written before it was asked (by this hub or any other writing to the same log).

use std::collections::HashMap;
use std::time::Duration;

use unsilo_bus::{Bus, FetchRequest};

use super::{decode, AuditEntry, AuditError, AuditEvent};

/// Entries read per fetch while catching up.
const CATCH_UP_BATCH: usize = 2_000;

/// Releases by person key.
pub struct PersonIndex {
    topic: String,
    state: tokio::sync::Mutex<Indexed>,
}

impl std::fmt::Debug for PersonIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonIndex")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Indexed {
    /// The next audit offset to read.
    next: u64,
    /// Offsets of release entries, by person key, oldest first.
    by_person: HashMap<String, Vec<u64>>,
}

impl PersonIndex {
    /// An index over the audit log on `topic` (read on first use).
    pub fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            state: tokio::sync::Mutex::new(Indexed::default()),
        }
    }

    /// Every release entry naming `person_key`, oldest first — including those written just before the call.
    pub async fn releases_of(
        &self,
        bus: &dyn Bus,
        person_key: &str,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        let offsets = {
            let mut state = self.state.lock().await;
            self.catch_up(bus, &mut state).await?;
            state.by_person.get(person_key).cloned().unwrap_or_default()
        };
        let mut entries = Vec::with_capacity(offsets.len());
        for offset in offsets {
            let read = FetchRequest::new(&self.topic, 0, offset, 1, Duration::ZERO);
            if let Some(entry) = bus.fetch(&read).await?.first().and_then(decode) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// Reads the entries written since the last call into the index.
    async fn catch_up(&self, bus: &dyn Bus, state: &mut Indexed) -> Result<(), AuditError> {
        let end = bus
            .end_offsets(&self.topic)
            .await?
            .first()
            .copied()
            .unwrap_or(0);
        while state.next < end {
            let read =
                FetchRequest::new(&self.topic, 0, state.next, CATCH_UP_BATCH, Duration::ZERO);
            let batch = bus.fetch(&read).await?;
            let Some(last) = batch.last() else { break };
            let after = last.position.offset + 1;
            for record in &batch {
                if let Some(entry) = decode(record) {
                    if let AuditEvent::Release { person_keys, .. } = &entry.body.event {
                        for key in person_keys {
                            state
                                .by_person
                                .entry(key.clone())
                                .or_default()
                                .push(entry.offset);
                        }
                    }
                }
            }
            state.next = after;
        }
        Ok(())
    }
}
