//! The index of releases by person, on disk: for each pseudonymous person key, the offsets of the audit entries
//! that released a record naming that person. It answers "who received data about this person" (PIPL Art.
//! 44–45) without scanning the audit log and without the hub ever storing an ID number — the key is the keyed
//! pseudonym the release evidence already carries.
//!
//! Only verified evidence is indexed: every record read goes through the one [`Verifier`], and a release enters
//! the index once a signature of a pinned key covers it. Entries no such signature covers are counted, and the
//! report says how many there are.
//!
//! The index is a fjall keyspace in its own directory (`audit-index-<hub id>` beside the deployment secret):
//!
//! - `persons`: `person key ‖ 0x00 ‖ entry offset (u64 BE)` → nothing, so one prefix scan lists a person's
//!   entries, oldest first;
//! - `terms`: `hub ‖ 0x00 ‖ seq (u64 BE)` → the JSON of the `release_terms` entry, to expand batches
//!   ([`super::batch`]) without reading the log;
//! - `meta`: `state` → where reading stands ([`Position`]): the next offset, each chain's head there, the count
//!   of unverified entries before it, and the hash of the entry just before it.
//!
//! It is kept current as entries are written — [`PersonIndex::follow`] reads what is new every second — and
//! every lookup first reads what is still unread, so an answer includes every release written before it was
//! asked. Reading resumes after a restart from the stored position, never from the log's start; a stored
//! position the log no longer holds (the topic was recreated or cut) is found by its hash and the index is rebuilt.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle};
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use unsilo_bus::{Bus, ConsumedRecord, FetchRequest};
use unsilo_schemas::names::HEADER_AUDIT_HASH;

use super::batch::{expand_with, ReleaseTerms};
use super::{decode, AuditEntry, AuditError, AuditEvent, TrustedKeys, Verifier};

/// Entries read per fetch while catching up.
const CATCH_UP_BATCH: usize = 2_000;

/// How often [`PersonIndex::follow`] reads what is new.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Releases by person key, on disk.
pub struct PersonIndex {
    topic: String,
    keys: TrustedKeys,
    store: Store,
    state: tokio::sync::Mutex<Indexed>,
    /// Audit entries read since this process opened the index (`unsilo_audit_index_entries_read_total`).
    read: Counter,
}

impl std::fmt::Debug for PersonIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonIndex")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// The fjall keyspace and its partitions.
struct Store {
    keyspace: Keyspace,
    persons: PartitionHandle,
    terms: PartitionHandle,
    meta: PartitionHandle,
}

/// Where reading stands, as stored: a point at which no entry of a chain with a pinned key waits for a
/// signature, so reading can resume there with each chain's head and nothing pending.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Position {
    /// The next audit offset to read.
    next: u64,
    /// Each chain's head there: `(hub, seq, hash)`.
    heads: Vec<(String, u64, String)>,
    /// Entries before `next` that no signature of a pinned key covers.
    unverified: u64,
    /// The stored hash of the entry at `next - 1`, to recognise the same log after a restart.
    last_hash: Option<String>,
}

/// What a verified entry adds to the index.
#[derive(Default)]
struct Contribution {
    persons: Vec<String>,
    terms: Option<(Vec<u8>, Vec<u8>)>,
}

/// The index's state in memory while reading.
struct Indexed {
    /// The next audit offset to read.
    next: u64,
    /// Checks what is read.
    verifier: Verifier,
    /// What entries read but not yet covered by a signature would add, by offset.
    pending: HashMap<u64, Contribution>,
    /// Entries read that no signature of a pinned key covers (yet).
    unverified: u64,
    /// The newest point reading could resume from.
    settled: Position,
    /// Whether the log was found to hold the entry the stored position names (checked once after opening).
    log_checked: bool,
}

/// What [`PersonIndex::releases_of`] found.
#[derive(Debug, Default)]
pub struct PersonReleases {
    /// The verified releases naming the person, oldest first: one entry per release (a batch's releases carry
    /// the batch entry's offset, seq and hash).
    pub entries: Vec<AuditEntry>,
    /// Entries of the log no signature of a pinned key covers: never in an answer; not 0 means
    /// `unsilo audit verify` has something to report.
    pub unverified_in_log: u64,
}

/// `text ‖ 0x00 ‖ n (u64 BE)`: a person's entry at offset `n` (`persons`), or a hub's terms entry `n` (`terms`).
/// The separator keeps one text's keys from running into a longer text's, and big-endian numbers sort in order.
fn numbered_key(text: &str, n: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(text.len() + 9);
    key.extend_from_slice(text.as_bytes());
    key.push(0);
    key.extend_from_slice(&n.to_be_bytes());
    key
}

fn store_error(e: impl std::fmt::Display) -> AuditError {
    AuditError::Bus(unsilo_bus::Error::Store(format!("person index: {e}")))
}

impl Store {
    fn open(dir: &Path) -> Result<Self, AuditError> {
        let keyspace = Config::new(dir)
            .cache_size(16 << 20)
            .max_write_buffer_size(32 << 20)
            .open()
            .map_err(store_error)?;
        let open = |name: &str| {
            keyspace
                .open_partition(name, PartitionCreateOptions::default())
                .map_err(store_error)
        };
        Ok(Self {
            persons: open("persons")?,
            terms: open("terms")?,
            meta: open("meta")?,
            keyspace,
        })
    }

    fn position(&self) -> Result<Option<Position>, AuditError> {
        Ok(self
            .meta
            .get("state")
            .map_err(store_error)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }
}

impl Indexed {
    fn resumed(keys: &TrustedKeys, at: Position) -> Self {
        let mut verifier = Verifier::new(keys);
        for (hub, seq, hash) in &at.heads {
            verifier.resume(hub, *seq, hash);
        }
        Self {
            next: at.next,
            verifier,
            pending: HashMap::new(),
            unverified: at.unverified,
            settled: at,
            log_checked: false,
        }
    }
}

/// What `entry` adds to the index once verified.
fn contribution_of(entry: &AuditEntry, raw: &ConsumedRecord) -> Contribution {
    match &entry.body.event {
        AuditEvent::Release { person_keys, .. } => Contribution {
            persons: person_keys.clone(),
            terms: None,
        },
        AuditEvent::Releases { records } => {
            let mut persons: Vec<String> = records
                .iter()
                .flat_map(|r| r.persons.iter().cloned())
                .collect();
            persons.sort_unstable();
            persons.dedup();
            Contribution {
                persons,
                terms: None,
            }
        }
        AuditEvent::ReleaseTerms(terms) => Contribution {
            persons: Vec::new(),
            terms: serde_json::to_vec(terms)
                .ok()
                .map(|json| (numbered_key(&entry.body.hub, entry.body.seq), json))
                .or_else(|| {
                    warn!(offset = raw.position.offset, "Release terms not indexable.");
                    None
                }),
        },
        AuditEvent::Control { .. } => Contribution::default(),
    }
}

impl PersonIndex {
    /// The index over the audit log on `topic`, trusting `keys`, stored in `dir` (created if missing) and
    /// resumed from where it stood; `read` counts the entries it reads.
    pub fn open(
        dir: &Path,
        topic: &str,
        keys: &TrustedKeys,
        read: Counter,
    ) -> Result<Self, AuditError> {
        std::fs::create_dir_all(dir).map_err(store_error)?;
        let store = Store::open(dir)?;
        let at = store.position()?.unwrap_or_default();
        Ok(Self {
            topic: topic.to_owned(),
            keys: keys.clone(),
            state: tokio::sync::Mutex::new(Indexed::resumed(keys, at)),
            store,
            read,
        })
    }

    /// Audit entries this process has read into the index since it opened it: after a restart, only those
    /// written since the index last stood, never the whole log.
    pub fn entries_read(&self) -> u64 {
        self.read.get()
    }

    /// Writes what the index holds in memory to its segment files and returns their bytes (journals not
    /// counted): what the index takes on disk.
    pub fn flushed_bytes(&self) -> Result<u64, AuditError> {
        let mut bytes = 0;
        for partition in [&self.store.persons, &self.store.terms, &self.store.meta] {
            partition.rotate_memtable_and_wait().map_err(store_error)?;
            bytes += partition.disk_space();
        }
        Ok(bytes)
    }

    /// The next audit offset the index will read.
    pub async fn position(&self) -> u64 {
        self.state.lock().await.next
    }

    /// Keeps the index current until `stopped`: reads what is new every second.
    pub async fn follow(
        self: Arc<Self>,
        bus: Arc<dyn Bus>,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if let Err(e) = self.catch_up(bus.as_ref()).await {
                warn!(error = %e, "The person index could not read the audit log; trying again.");
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    /// Every verified release naming `person_key`, oldest first — including those written just before the call.
    pub async fn releases_of(
        &self,
        bus: &dyn Bus,
        person_key: &str,
    ) -> Result<PersonReleases, AuditError> {
        let unverified_in_log = self.catch_up(bus).await?;
        let mut prefix = person_key.as_bytes().to_vec();
        prefix.push(0);
        let mut offsets = Vec::new();
        for item in self.store.persons.prefix(&prefix) {
            let (key, _) = item.map_err(store_error)?;
            let tail: [u8; 8] = key[prefix.len()..]
                .try_into()
                .map_err(|_| store_error("a malformed key"))?;
            offsets.push(u64::from_be_bytes(tail));
        }
        let mut terms: HashMap<(String, u64), Option<Arc<ReleaseTerms>>> = HashMap::new();
        let mut entries = Vec::with_capacity(offsets.len());
        for offset in offsets {
            let read = FetchRequest::new(&self.topic, 0, offset, 1, Duration::ZERO);
            let Some(entry) = bus.fetch(&read).await?.first().and_then(decode) else {
                continue;
            };
            let expanded = expand_with(
                entry,
                |hub, seq| {
                    terms
                        .entry((hub.to_owned(), seq))
                        .or_insert_with(|| {
                            self.store
                                .terms
                                .get(numbered_key(hub, seq))
                                .ok()
                                .flatten()
                                .and_then(|json| serde_json::from_slice(&json).ok())
                                .map(Arc::new)
                        })
                        .clone()
                },
                |record, _| record.persons.iter().any(|p| p == person_key),
            );
            if expanded.unresolved > 0 {
                warn!(
                    offset,
                    releases = expanded.unresolved,
                    "Releases name terms the person index does not hold; they are left out."
                );
            }
            entries.extend(expanded.entries.into_iter().filter(|e| {
                matches!(&e.body.event, AuditEvent::Release { person_keys, .. } if person_keys.iter().any(|p| p == person_key))
            }));
        }
        Ok(PersonReleases {
            entries,
            unverified_in_log,
        })
    }

    /// Reads the entries written since the last call into the index; returns how many entries of the log no
    /// signature of a pinned key covers.
    pub async fn catch_up(&self, bus: &dyn Bus) -> Result<u64, AuditError> {
        let mut state = self.state.lock().await;
        let end = bus
            .end_offsets(&self.topic)
            .await?
            .first()
            .copied()
            .unwrap_or(0);
        if !state.log_checked {
            if !self.still_the_same_log(bus, &state.settled, end).await? {
                warn!(topic = %self.topic, position = state.next, "The audit log no longer holds the entry the person index stood at (the topic was recreated or cut): rebuilding the index.");
                // The store is only written under the state lock, which is held.
                self.clear_store()?;
                *state = Indexed::resumed(&self.keys, Position::default());
            }
            state.log_checked = true;
        }
        let started_at = state.next;
        while state.next < end {
            let read =
                FetchRequest::new(&self.topic, 0, state.next, CATCH_UP_BATCH, Duration::ZERO);
            let batch = bus.fetch(&read).await?;
            let Some(last) = batch.last() else { break };
            let after = last.position.offset + 1;
            let mut writes = self.store.keyspace.batch();
            for record in &batch {
                state.unverified += 1;
                if let Some(entry) = decode(record) {
                    let contribution = contribution_of(&entry, record);
                    if !contribution.persons.is_empty() || contribution.terms.is_some() {
                        state.pending.insert(entry.offset, contribution);
                    }
                }
                for offset in state.verifier.push(record) {
                    state.unverified = state.unverified.saturating_sub(1);
                    let Some(contribution) = state.pending.remove(&offset) else {
                        continue;
                    };
                    for person in &contribution.persons {
                        writes.insert(&self.store.persons, numbered_key(person, offset), []);
                    }
                    if let Some((key, json)) = contribution.terms {
                        writes.insert(&self.store.terms, key, json);
                    }
                }
                // Forged entries are never indexed: once nothing can cover them, they are not held either.
                for offset in state.verifier.take_given_up() {
                    state.pending.remove(&offset);
                }
                if let Some(heads) = state.verifier.settled_heads() {
                    state.settled = Position {
                        next: record.position.offset + 1,
                        heads,
                        unverified: state.unverified,
                        last_hash: record
                            .record
                            .header(HEADER_AUDIT_HASH)
                            .map(|h| String::from_utf8_lossy(h).into_owned()),
                    };
                }
            }
            state.next = after;
            self.read.inc_by(batch.len() as u64);
            let position = serde_json::to_vec(&state.settled).map_err(store_error)?;
            writes.insert(&self.store.meta, "state", position);
            writes.commit().map_err(store_error)?;
        }
        if state.next - started_at > 100_000 {
            info!(topic = %self.topic, from = started_at, to = state.next, "Person index caught up.");
        }
        Ok(state.unverified)
    }

    /// Whether the log still holds, just before `at.next`, the entry the index last stood after.
    async fn still_the_same_log(
        &self,
        bus: &dyn Bus,
        at: &Position,
        end: u64,
    ) -> Result<bool, AuditError> {
        if at.next == 0 {
            return Ok(true);
        }
        if at.next > end {
            return Ok(false);
        }
        let read = FetchRequest::new(&self.topic, 0, at.next - 1, 1, Duration::ZERO);
        let stored = bus.fetch(&read).await?;
        let hash = stored
            .first()
            .filter(|r| r.position.offset == at.next - 1)
            .and_then(|r| r.record.header(HEADER_AUDIT_HASH))
            .map(|h| String::from_utf8_lossy(h).into_owned());
        Ok(hash == at.last_hash)
    }

    /// Empties the store.
    fn clear_store(&self) -> Result<(), AuditError> {
        for (partition, what) in [
            (&self.store.persons, "persons"),
            (&self.store.terms, "terms"),
            (&self.store.meta, "meta"),
        ] {
            let keys: Vec<_> = partition
                .keys()
                .collect::<Result<_, _>>()
                .map_err(|e| store_error(format!("{what}: {e}")))?;
            for key in keys {
                partition.remove(key).map_err(store_error)?;
            }
        }
        Ok(())
    }
}
