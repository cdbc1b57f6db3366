//! The index of releases by person: for each pseudonymous person key, the offsets of the audit entries that
//! released a record naming that person. It answers "who received data about this person" (PIPL Art. 44–45)
//! without scanning the audit log and without the hub ever storing an ID number — the key is the keyed
//! pseudonym the release entries already carry.
//!
//! Only verified evidence is indexed: every record read goes through the one [`Verifier`], and a release enters
//! the index once a signature of a pinned key covers it. Entries no such signature covers are counted, and the
//! report says how many there are.
//!
//! The index lives in memory. It is built on first use by one pass over the log, then kept current
//! incrementally: every lookup first reads only the entries written since the last one, so an answer includes
//! every release written before it was asked (by this hub or any other writing to the same log).

use std::collections::HashMap;
use std::time::Duration;

use unsilo_bus::{Bus, FetchRequest};

use super::{decode, AuditEntry, AuditError, AuditEvent, TrustedKeys, Verifier};

/// Entries read per fetch while catching up.
const CATCH_UP_BATCH: usize = 2_000;

/// Releases by person key.
pub struct PersonIndex {
    topic: String,
    keys: TrustedKeys,
    state: tokio::sync::Mutex<Option<Indexed>>,
}

impl std::fmt::Debug for PersonIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonIndex")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

struct Indexed {
    /// The next audit offset to read.
    next: u64,
    /// Checks what is read.
    verifier: Verifier,
    /// Person keys of release entries read but not yet covered by a signature, by offset.
    pending: HashMap<u64, Vec<String>>,
    /// Entries read that no signature of a pinned key covers (yet).
    unverified: u64,
    /// Offsets of verified release entries, by person key, oldest first.
    by_person: HashMap<String, Vec<u64>>,
}

/// What [`PersonIndex::releases_of`] found.
#[derive(Debug, Default)]
pub struct PersonReleases {
    /// The verified release entries naming the person, oldest first.
    pub entries: Vec<AuditEntry>,
    /// Entries of the log no signature of a pinned key covers: never in an answer; not 0 means
    /// `unsilo audit verify` has something to report.
    pub unverified_in_log: u64,
}

impl PersonIndex {
    /// An index over the audit log on `topic` (read on first use), trusting `keys`.
    pub fn new(topic: &str, keys: &TrustedKeys) -> Self {
        Self {
            topic: topic.to_owned(),
            keys: keys.clone(),
            state: tokio::sync::Mutex::new(None),
        }
    }

    /// Every verified release entry naming `person_key`, oldest first — including those written just before
    /// the call.
    pub async fn releases_of(
        &self,
        bus: &dyn Bus,
        person_key: &str,
    ) -> Result<PersonReleases, AuditError> {
        let (offsets, unverified_in_log) = {
            let mut guard = self.state.lock().await;
            let state = guard.get_or_insert_with(|| Indexed {
                next: 0,
                verifier: Verifier::new(&self.keys),
                pending: HashMap::new(),
                unverified: 0,
                by_person: HashMap::new(),
            });
            self.catch_up(bus, state).await?;
            (
                state.by_person.get(person_key).cloned().unwrap_or_default(),
                state.unverified,
            )
        };
        let mut entries = Vec::with_capacity(offsets.len());
        for offset in offsets {
            let read = FetchRequest::new(&self.topic, 0, offset, 1, Duration::ZERO);
            if let Some(entry) = bus.fetch(&read).await?.first().and_then(decode) {
                entries.push(entry);
            }
        }
        Ok(PersonReleases {
            entries,
            unverified_in_log,
        })
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
                state.unverified += 1;
                if let Some(entry) = decode(record) {
                    if let AuditEvent::Release { person_keys, .. } = entry.body.event {
                        state.pending.insert(entry.offset, person_keys);
                    }
                }
                for offset in state.verifier.push(record) {
                    state.unverified = state.unverified.saturating_sub(1);
                    for key in state.pending.remove(&offset).unwrap_or_default() {
                        state.by_person.entry(key).or_default().push(offset);
                    }
                }
                // Forged entries are never indexed: once nothing can cover them, they are not held either.
                for offset in state.verifier.take_given_up() {
                    state.pending.remove(&offset);
                }
            }
            state.next = after;
        }
        Ok(())
    }
}
