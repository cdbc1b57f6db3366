//! The registry's log on `_unsilo.schemas`, and the in-memory view materialised from it.
//!
//! # Records
//!
//! Keys and values are JSON, in the style of Confluent's `_schemas` topic:
//!
//! | key | value | meaning |
//! | --- | --- | --- |
//! | `{"keytype":"SCHEMA","subject":s,"version":v,"id":i,"claim":c,"magic":1}` | `{"subject","version","id","schema"}` | a *claim*: schema id `i` as version `v` of `s` |
//! | `{"keytype":"DELETE_VERSION","subject":s,"version":v,"claim":c,"magic":0}` | `{"deleted":true}` | soft delete of the version that claim `c` holds |
//! | `{"keytype":"CONFIG","subject":s or null,"magic":0}` | `{"compatibilityLevel":"FULL"}` | compatibility level of a subject, or global |
//! | `{"keytype":"ID_FLOOR","id":i,"magic":0}` | `{"id":i}` | ids up to `i` were handed out: never reuse them |
//!
//! A permanent delete is a tombstone of the claim (and of its delete marker).
//!
//! # Why the view survives compaction
//!
//! Compaction keeps the latest record of each key, in log order. The view is designed to be a pure function
//! of exactly that: the live (not tombstoned) records in offset order.
//!
//! - Every claim has its own key (the random `claim` token in it), and a claim record is never rewritten —
//!   soft delete is a separate marker — so a claim's offset never changes while it lives.
//! - Claims are judged in offset order: a claim is *valid* if its subject and version are not held by an
//!   earlier valid claim, its id is not bound to another schema by an earlier valid claim, its schema is not
//!   bound to another id, and a newly bound id is above every `ID_FLOOR` before it. Two processes that race for
//!   the same version or id both keep their records; the first in log order wins, everywhere and forever.
//! - When a valid claim is tombstoned, the derived state is recomputed from the remaining claims, exactly as a
//!   replay of the compacted log would compute it.
//! - `ID_FLOOR` keys carry their id, so they are never superseded; a permanent delete writes one first, so an
//!   id that data on the bus may still carry is never given to a different schema.
//!
//! Records that cannot be understood (another tool's, a future version's) are skipped with a warning.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::avro::{self, ParsedSchema};
use super::compat::Compatibility;
use unsilo_bus::{now_ms, Record};

/// A record key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Key {
    /// A claim of a subject version for a schema id.
    Schema {
        subject: String,
        version: u32,
        id: i32,
        claim: String,
        magic: u8,
    },
    /// A soft delete of the version held by a claim.
    DeleteVersion {
        subject: String,
        version: u32,
        claim: String,
        magic: u8,
    },
    /// A compatibility level; `subject: null` is the global one.
    Config { subject: Option<String>, magic: u8 },
    /// A high-water mark of handed-out ids.
    IdFloor { id: i32, magic: u8 },
}

/// The value of a claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SchemaValue {
    subject: String,
    version: u32,
    id: i32,
    schema: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeleteValue {
    deleted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigValue {
    compatibility_level: Compatibility,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FloorValue {
    id: i32,
}

fn key_bytes(key: &Key) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(key).unwrap_or_default()
}

fn value_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// A new random claim token.
pub(crate) fn new_claim_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The record claiming `version` of `subject` for schema `id`, and its key.
pub(crate) fn claim_record(
    subject: &str,
    version: u32,
    id: i32,
    claim: &str,
    text: &str,
) -> (Vec<u8>, Record) {
    let key = key_bytes(&Key::Schema {
        subject: subject.to_owned(),
        version,
        id,
        claim: claim.to_owned(),
        magic: 1,
    });
    let value = value_bytes(&SchemaValue {
        subject: subject.to_owned(),
        version,
        id,
        schema: text.to_owned(),
    });
    (key.clone(), Record::new(key, value))
}

/// The key of the soft-delete marker of a claim.
pub(crate) fn delete_marker_key(subject: &str, version: u32, claim: &str) -> Vec<u8> {
    key_bytes(&Key::DeleteVersion {
        subject: subject.to_owned(),
        version,
        claim: claim.to_owned(),
        magic: 0,
    })
}

/// The record soft-deleting the version a claim holds.
pub(crate) fn delete_marker_record(subject: &str, version: u32, claim: &str) -> Record {
    Record::new(
        delete_marker_key(subject, version, claim),
        value_bytes(&DeleteValue { deleted: true }),
    )
}

/// The record setting (or, with `None`, removing) the compatibility level of a subject or, with `subject: None`,
/// the global one.
pub(crate) fn config_record(subject: Option<&str>, level: Option<Compatibility>) -> Record {
    let key = key_bytes(&Key::Config {
        subject: subject.map(str::to_owned),
        magic: 0,
    });
    match level {
        Some(level) => Record::new(
            key,
            value_bytes(&ConfigValue {
                compatibility_level: level,
            }),
        ),
        None => tombstone(key),
    }
}

/// The record raising the id floor to `id`.
pub(crate) fn floor_record(id: i32) -> Record {
    Record::new(
        key_bytes(&Key::IdFloor { id, magic: 0 }),
        value_bytes(&FloorValue { id }),
    )
}

/// A tombstone for `key`.
pub(crate) fn tombstone(key: Vec<u8>) -> Record {
    Record {
        key: Some(key),
        value: None,
        headers: Vec::new(),
        timestamp_ms: now_ms(),
    }
}

/// A record decoded outside the view's lock (parsing a schema is the costly part).
pub(crate) enum Decoded {
    Claim(Claim),
    DeleteMarker {
        claim: String,
    },
    Config {
        subject: Option<String>,
        level: Compatibility,
    },
    Floor(i32),
    Tombstone,
    Skip,
}

/// A claim: a schema id as a version of a subject.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(crate) subject: String,
    pub(crate) version: u32,
    pub(crate) id: i32,
    pub(crate) token: String,
    pub(crate) schema: Arc<ParsedSchema>,
}

/// Decodes one record at `offset`.
pub(crate) fn decode(offset: u64, record: &Record) -> (Option<Vec<u8>>, Decoded) {
    let Some(key_raw) = record.key.clone() else {
        warn!(offset, "Skipping a keyless record in the schema topic.");
        return (None, Decoded::Skip);
    };
    let Some(value) = &record.value else {
        return (Some(key_raw), Decoded::Tombstone);
    };
    let key: Key = match serde_json::from_slice(&key_raw) {
        Ok(k) => k,
        Err(e) => {
            warn!(offset, error = %e, "Skipping a schema-topic record with an unknown key.");
            return (Some(key_raw), Decoded::Skip);
        }
    };
    let decoded = match key {
        Key::Schema {
            subject,
            version,
            id,
            claim,
            ..
        } => match serde_json::from_slice::<SchemaValue>(value) {
            Ok(v) if v.subject == subject && v.version == version && v.id == id && id > 0 => {
                match avro::parse(&v.schema) {
                    Ok(parsed) => Decoded::Claim(Claim {
                        subject,
                        version,
                        id,
                        token: claim,
                        schema: Arc::new(parsed),
                    }),
                    Err(reason) => {
                        warn!(offset, %reason, "Skipping a claim whose schema does not parse.");
                        Decoded::Skip
                    }
                }
            }
            Ok(_) => {
                warn!(
                    offset,
                    "Skipping a claim whose value disagrees with its key."
                );
                Decoded::Skip
            }
            Err(e) => {
                warn!(offset, error = %e, "Skipping a claim with an unreadable value.");
                Decoded::Skip
            }
        },
        Key::DeleteVersion { claim, .. } => match serde_json::from_slice::<DeleteValue>(value) {
            Ok(DeleteValue { deleted: true }) => Decoded::DeleteMarker { claim },
            Ok(DeleteValue { deleted: false }) => Decoded::Tombstone,
            Err(e) => {
                warn!(offset, error = %e, "Skipping a delete marker with an unreadable value.");
                Decoded::Skip
            }
        },
        Key::Config { subject, .. } => match serde_json::from_slice::<ConfigValue>(value) {
            Ok(v) => Decoded::Config {
                subject,
                level: v.compatibility_level,
            },
            Err(e) => {
                warn!(offset, error = %e, "Skipping a config record with an unreadable value.");
                Decoded::Skip
            }
        },
        Key::IdFloor { id, .. } => Decoded::Floor(id),
    };
    (Some(key_raw), decoded)
}

/// What a live key holds, to undo it on a tombstone.
#[derive(Debug, Clone)]
enum Held {
    Claim(u64),
    Marker(String),
    Config(Option<String>),
    Floor,
}

/// The state derived from the live claims and floors, in offset order.
#[derive(Debug, Default, Clone)]
struct Derived {
    /// Subject → version → offset of the valid claim.
    subjects: BTreeMap<String, BTreeMap<u32, u64>>,
    /// Id → offset of the first valid claim with it (whose text answers "schema by id").
    ids: HashMap<i32, u64>,
    /// Identity form → id.
    id_by_identity: HashMap<String, i32>,
    /// Offsets of valid claims.
    valid: HashSet<u64>,
    /// Highest id bound by a valid claim.
    max_id: i32,
    /// Highest id floor seen.
    floor: i32,
}

impl Derived {
    fn admit(&mut self, offset: u64, claim: &Claim) -> bool {
        let slot_free = self
            .subjects
            .get(&claim.subject)
            .is_none_or(|versions| !versions.contains_key(&claim.version));
        let id_ok = match self.id_by_identity.get(&claim.schema.identity) {
            Some(&bound) => bound == claim.id,
            None => !self.ids.contains_key(&claim.id) && claim.id > self.floor,
        };
        if !(slot_free && id_ok) {
            return false;
        }
        self.subjects
            .entry(claim.subject.clone())
            .or_default()
            .insert(claim.version, offset);
        self.ids.entry(claim.id).or_insert(offset);
        self.id_by_identity
            .insert(claim.schema.identity.clone(), claim.id);
        self.valid.insert(offset);
        self.max_id = self.max_id.max(claim.id);
        true
    }
}

/// A version of a subject as the view holds it.
#[derive(Debug, Clone)]
pub(crate) struct VersionEntry {
    pub(crate) version: u32,
    pub(crate) deleted: bool,
    pub(crate) claim: Claim,
    /// The claim's key, to tombstone it.
    pub(crate) key: Vec<u8>,
    /// The key of its soft-delete marker.
    pub(crate) marker_key: Vec<u8>,
}

/// The registry's state, materialised from the log.
#[derive(Debug, Default)]
pub(crate) struct View {
    /// The next offset to apply (everything before it has been applied).
    next_offset: u64,
    /// Live claims by offset, with their key.
    claims: BTreeMap<u64, (Vec<u8>, Claim)>,
    /// Live id floors by offset.
    floors: BTreeMap<u64, i32>,
    /// Live keys and what they hold.
    keys: HashMap<Vec<u8>, Held>,
    /// Claim tokens that are soft-deleted (with how many live markers say so).
    deleted: HashMap<String, u32>,
    /// Compatibility levels: `None` is the global one.
    configs: HashMap<Option<String>, Compatibility>,
    derived: Derived,
}

impl View {
    /// The next offset to apply: every record before it is reflected in the view.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Applies one decoded record at `offset`. Offsets must increase.
    pub(crate) fn apply(&mut self, offset: u64, key: Option<Vec<u8>>, decoded: Decoded) {
        self.next_offset = self.next_offset.max(offset.saturating_add(1));
        let Some(key) = key else { return };
        // A key written again replaces what it held (tombstone or update).
        let mut rebuild = false;
        if let Some(held) = self.keys.remove(&key) {
            rebuild |= self.undo(held);
        }
        match decoded {
            Decoded::Claim(claim) => {
                if !rebuild {
                    self.derived.admit(offset, &claim);
                }
                self.claims.insert(offset, (key.clone(), claim));
                self.keys.insert(key, Held::Claim(offset));
            }
            Decoded::DeleteMarker { claim } => {
                *self.deleted.entry(claim.clone()).or_default() += 1;
                self.keys.insert(key, Held::Marker(claim));
            }
            Decoded::Config { subject, level } => {
                self.configs.insert(subject.clone(), level);
                self.keys.insert(key, Held::Config(subject));
            }
            Decoded::Floor(id) => {
                if !rebuild {
                    self.derived.floor = self.derived.floor.max(id);
                }
                self.floors.insert(offset, id);
                self.keys.insert(key, Held::Floor);
            }
            Decoded::Tombstone | Decoded::Skip => {}
        }
        if rebuild {
            self.rebuild();
        }
    }

    /// Removes what a key held; returns whether the derived state must be rebuilt.
    fn undo(&mut self, held: Held) -> bool {
        match held {
            Held::Claim(offset) => {
                self.claims.remove(&offset);
                self.derived.valid.contains(&offset)
            }
            Held::Marker(token) => {
                if let Some(n) = self.deleted.get_mut(&token) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.deleted.remove(&token);
                    }
                }
                false
            }
            Held::Config(subject) => {
                self.configs.remove(&subject);
                false
            }
            Held::Floor => true,
        }
    }

    /// Recomputes the derived state from the live claims and floors, in offset order.
    fn rebuild(&mut self) {
        let mut derived = Derived::default();
        let mut floors = self.floors.iter().peekable();
        for (&offset, (_, claim)) in &self.claims {
            while let Some((_, &id)) = floors.next_if(|(&f, _)| f < offset) {
                derived.floor = derived.floor.max(id);
            }
            derived.admit(offset, claim);
        }
        for (_, &id) in floors {
            derived.floor = derived.floor.max(id);
        }
        self.derived = derived;
    }

    /// Whether the claim written at `offset` is live and won its version.
    pub(crate) fn claim_won(&self, offset: u64) -> bool {
        self.derived.valid.contains(&offset)
    }

    fn entry(&self, offset: u64) -> Option<VersionEntry> {
        let (key, claim) = self.claims.get(&offset)?;
        Some(VersionEntry {
            version: claim.version,
            deleted: self.deleted.contains_key(&claim.token),
            marker_key: delete_marker_key(&claim.subject, claim.version, &claim.token),
            key: key.clone(),
            claim: claim.clone(),
        })
    }

    /// Every version of `subject`, ascending; soft-deleted ones only if `include_deleted`.
    pub(crate) fn versions(&self, subject: &str, include_deleted: bool) -> Vec<VersionEntry> {
        self.derived
            .subjects
            .get(subject)
            .into_iter()
            .flat_map(|versions| versions.values())
            .filter_map(|&offset| self.entry(offset))
            .filter(|e| include_deleted || !e.deleted)
            .collect()
    }

    /// One version of `subject`, deleted or not.
    #[cfg(test)]
    pub(crate) fn version(&self, subject: &str, version: u32) -> Option<VersionEntry> {
        let offset = *self.derived.subjects.get(subject)?.get(&version)?;
        self.entry(offset)
    }

    /// Subjects with at least one version (soft-deleted ones count only if `include_deleted`), sorted.
    pub(crate) fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.derived
            .subjects
            .keys()
            .filter(|s| !self.versions(s, include_deleted).is_empty())
            .cloned()
            .collect()
    }

    /// The schema text and identity that `id` stands for.
    pub(crate) fn schema_by_id(&self, id: i32) -> Option<Arc<ParsedSchema>> {
        let offset = self.derived.ids.get(&id)?;
        self.claims.get(offset).map(|(_, c)| c.schema.clone())
    }

    /// The `(subject, version)` pairs that hold schema `id`, sorted.
    pub(crate) fn versions_of_id(&self, id: i32, include_deleted: bool) -> Vec<(String, u32)> {
        let mut out = BTreeSet::new();
        for versions in self.derived.subjects.values() {
            for &offset in versions.values() {
                if let Some(entry) = self.entry(offset) {
                    if entry.claim.id == id && (include_deleted || !entry.deleted) {
                        out.insert((entry.claim.subject.clone(), entry.version));
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// The id bound to a schema identity, if any.
    pub(crate) fn id_for_identity(&self, identity: &str) -> Option<i32> {
        self.derived.id_by_identity.get(identity).copied()
    }

    /// The id a new schema would get.
    pub(crate) fn next_id(&self) -> Option<i32> {
        self.derived
            .max_id
            .max(self.derived.floor)
            .max(0)
            .checked_add(1)
    }

    /// The highest id ever handed out that the view knows of.
    pub(crate) fn highest_id(&self) -> i32 {
        self.derived.max_id.max(self.derived.floor)
    }

    /// The version a new schema in `subject` would get (after every version, soft-deleted ones included).
    pub(crate) fn next_version(&self, subject: &str) -> Option<u32> {
        let last = self
            .derived
            .subjects
            .get(subject)
            .and_then(|v| v.keys().next_back().copied())
            .unwrap_or(0);
        last.checked_add(1).filter(|v| *v <= i32::MAX as u32)
    }

    /// The compatibility level set for `subject` (`None`: the global one), if any.
    pub(crate) fn config(&self, subject: Option<&str>) -> Option<Compatibility> {
        self.configs.get(&subject.map(str::to_owned)).copied()
    }

    /// Keys of live claims that lost their race (their writer normally tombstones them at once).
    pub(crate) fn losing_claim_keys(&self) -> Vec<Vec<u8>> {
        self.claims
            .iter()
            .filter(|(offset, _)| !self.derived.valid.contains(offset))
            .map(|(_, (key, _))| key.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#;
    const A_DOC: &str =
        r#"{"type":"record","name":"A","doc":"说明","fields":[{"name":"x","type":"int"}]}"#;
    const B: &str = r#"{"type":"record","name":"B","fields":[{"name":"x","type":"int"}]}"#;
    const C: &str = r#"{"type":"record","name":"C","fields":[{"name":"x","type":"int"}]}"#;

    /// An in-memory log with Kafka's compaction, to compare the live view with a replay of the compacted log.
    #[derive(Default)]
    struct Log {
        records: Vec<(u64, Record)>,
        next: u64,
    }

    impl Log {
        fn push(&mut self, view: &mut View, record: Record) -> u64 {
            let offset = self.next;
            self.next += 1;
            let (key, decoded) = decode(offset, &record);
            view.apply(offset, key, decoded);
            self.records.push((offset, record));
            offset
        }

        fn claim(
            &mut self,
            view: &mut View,
            subject: &str,
            version: u32,
            id: i32,
            text: &str,
        ) -> (u64, Vec<u8>, String) {
            let token = new_claim_token();
            let (key, record) = claim_record(subject, version, id, &token, text);
            (self.push(view, record), key, token)
        }

        /// Keeps the latest record per key, tombstones included (as Kafka does before delete.retention).
        fn compacted(&self, drop_tombstones: bool) -> Vec<(u64, Record)> {
            let mut latest: HashMap<Vec<u8>, u64> = HashMap::new();
            for (offset, r) in &self.records {
                latest.insert(r.key.clone().unwrap_or_default(), *offset);
            }
            self.records
                .iter()
                .filter(|(o, r)| latest.get(&r.key.clone().unwrap_or_default()) == Some(o))
                .filter(|(_, r)| !(drop_tombstones && r.value.is_none()))
                .cloned()
                .collect()
        }

        fn replay(records: &[(u64, Record)]) -> View {
            let mut view = View::default();
            for (offset, r) in records {
                let (key, decoded) = decode(*offset, r);
                view.apply(*offset, key, decoded);
            }
            view
        }
    }

    /// What a client can observe of a view.
    fn observable(view: &View) -> Vec<String> {
        let mut out = Vec::new();
        for s in view.subjects(true) {
            for e in view.versions(&s, true) {
                out.push(format!(
                    "{s} v{} id{} deleted={} {}",
                    e.version, e.claim.id, e.deleted, e.claim.schema.text
                ));
            }
        }
        for id in 1..=view.highest_id() {
            if let Some(s) = view.schema_by_id(id) {
                out.push(format!("id{id} = {}", s.text));
            }
        }
        out.push(format!("next id {:?}", view.next_id()));
        out.push(format!("global {:?}", view.config(None)));
        out
    }

    fn assert_replays_the_same(log: &Log, view: &View) {
        let live = observable(view);
        assert_eq!(observable(&Log::replay(&log.records)), live, "full replay");
        assert_eq!(
            observable(&Log::replay(&log.compacted(false))),
            live,
            "compacted replay"
        );
        assert_eq!(
            observable(&Log::replay(&log.compacted(true))),
            live,
            "compacted replay without tombstones"
        );
    }

    #[test]
    fn keys_look_like_confluent_keys() {
        let (key, _) = claim_record("s", 1, 7, "00ff", A);
        assert_eq!(
            String::from_utf8(key).unwrap(),
            r#"{"keytype":"SCHEMA","subject":"s","version":1,"id":7,"claim":"00ff","magic":1}"#
        );
        let r = config_record(None, Some(Compatibility::Full));
        assert_eq!(
            r.key.unwrap(),
            br#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert_eq!(r.value.unwrap(), br#"{"compatibilityLevel":"FULL"}"#);
    }

    #[test]
    fn the_first_claim_in_log_order_wins_a_version() {
        let mut log = Log::default();
        let mut view = View::default();
        let (first, _, _) = log.claim(&mut view, "s", 1, 1, A);
        let (second, _, _) = log.claim(&mut view, "s", 1, 2, B);
        assert!(view.claim_won(first));
        assert!(!view.claim_won(second));
        assert_eq!(view.versions("s", false).len(), 1);
        assert_eq!(view.next_id(), Some(2));
        assert_replays_the_same(&log, &view);
    }

    #[test]
    fn an_id_is_bound_to_one_schema_and_a_schema_to_one_id() {
        let mut log = Log::default();
        let mut view = View::default();
        let (a, _, _) = log.claim(&mut view, "s1", 1, 1, A);
        // Another process used id 1 for B at the same time: loses.
        let (b, _, _) = log.claim(&mut view, "s2", 1, 1, B);
        // A again under another subject with a fresh id (a stale view): loses, A is id 1.
        let (a2, _, _) = log.claim(&mut view, "s3", 1, 2, A);
        // A with a different doc under id 1: the same schema, wins.
        let (a3, _, _) = log.claim(&mut view, "s4", 1, 1, A_DOC);
        assert!(
            view.claim_won(a) && !view.claim_won(b) && !view.claim_won(a2) && view.claim_won(a3)
        );
        assert_eq!(view.schema_by_id(1).unwrap().text, A);
        assert_eq!(
            view.versions_of_id(1, false),
            vec![("s1".into(), 1), ("s4".into(), 1)]
        );
        assert_eq!(view.losing_claim_keys().len(), 2);
        assert_replays_the_same(&log, &view);
    }

    #[test]
    fn soft_delete_hides_and_permanent_delete_removes_and_compaction_agrees() {
        let mut log = Log::default();
        let mut view = View::default();
        log.claim(&mut view, "s", 1, 1, A);
        let (_, key2, token2) = log.claim(&mut view, "s", 2, 2, B);
        // A losing claim for version 2 lingers (its writer crashed before tombstoning it).
        let (loser, loser_key, _) = log.claim(&mut view, "s", 2, 3, C);
        assert!(!view.claim_won(loser));
        log.push(&mut view, delete_marker_record("s", 2, &token2));
        assert_eq!(view.versions("s", false).len(), 1);
        assert_eq!(view.versions("s", true).len(), 2);
        assert!(view.version("s", 2).unwrap().deleted);
        assert_replays_the_same(&log, &view);

        // Permanent delete as the registry writes it: floor, losers, marker, claim.
        let highest = view.highest_id();
        log.push(&mut view, floor_record(highest));
        for k in view.losing_claim_keys() {
            log.push(&mut view, tombstone(k));
        }
        log.push(&mut view, tombstone(delete_marker_key("s", 2, &token2)));
        log.push(&mut view, tombstone(key2));
        assert!(view.version("s", 2).is_none());
        assert!(view.schema_by_id(2).is_none());
        assert!(view.losing_claim_keys().is_empty());
        let _ = loser_key;
        // Ids that were bound are never reused (3 only ever lost a race); versions after the highest live one are.
        assert_eq!(view.next_id(), Some(3));
        assert_eq!(view.next_version("s"), Some(2));
        assert_replays_the_same(&log, &view);
    }

    #[test]
    fn a_promoted_loser_matches_a_replay() {
        // If a winner is tombstoned while a loser still lives, the loser wins — live and on replay alike.
        let mut log = Log::default();
        let mut view = View::default();
        let (_, key_a, _) = log.claim(&mut view, "s", 1, 1, A);
        let (b, _, _) = log.claim(&mut view, "s", 1, 2, B);
        assert!(!view.claim_won(b));
        log.push(&mut view, tombstone(key_a));
        assert!(view.claim_won(b));
        assert_replays_the_same(&log, &view);
    }

    #[test]
    fn a_stale_claim_below_the_floor_cannot_take_a_retired_id() {
        let mut log = Log::default();
        let mut view = View::default();
        let (_, key_a, _) = log.claim(&mut view, "s", 1, 1, A);
        log.push(&mut view, floor_record(1));
        log.push(&mut view, tombstone(key_a));
        let (late, _, _) = log.claim(&mut view, "t", 1, 1, B);
        assert!(!view.claim_won(late));
        assert_eq!(view.next_id(), Some(2));
        assert_replays_the_same(&log, &view);
    }

    #[test]
    fn config_is_last_writer_wins_and_tombstones_remove_it() {
        let mut log = Log::default();
        let mut view = View::default();
        log.push(&mut view, config_record(None, Some(Compatibility::Full)));
        log.push(
            &mut view,
            config_record(Some("s"), Some(Compatibility::None)),
        );
        log.push(&mut view, config_record(None, Some(Compatibility::Forward)));
        assert_eq!(view.config(None), Some(Compatibility::Forward));
        assert_eq!(view.config(Some("s")), Some(Compatibility::None));
        log.push(&mut view, config_record(Some("s"), None));
        assert_eq!(view.config(Some("s")), None);
        assert_replays_the_same(&log, &view);
    }

    #[test]
    fn foreign_and_garbage_records_are_skipped() {
        let mut view = View::default();
        for (i, (k, v)) in [
            (&br#"{"keytype":"NOOP","magic":0}"#[..], &b"{}"[..]),
            (b"not json", b"x"),
            (
                br#"{"keytype":"SCHEMA","subject":"s","version":1,"id":1,"claim":"c","magic":1}"#,
                b"{}",
            ),
            (
                br#"{"keytype":"SCHEMA","subject":"s","version":1,"id":1,"claim":"c","magic":1}"#,
                br#"{"subject":"s","version":1,"id":1,"schema":"{nope"}"#,
            ),
            (
                br#"{"keytype":"SCHEMA","subject":"s","version":1,"id":1,"claim":"c","magic":1}"#,
                br#"{"subject":"other","version":1,"id":1,"schema":"\"int\""}"#,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let record = Record::new(k.to_vec(), v.to_vec());
            let (key, decoded) = decode(i as u64, &record);
            view.apply(i as u64, key, decoded);
        }
        assert!(view.subjects(true).is_empty());
        assert_eq!(view.next_offset(), 5);
    }
}
