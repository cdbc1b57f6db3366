//! Release evidence in batches: what the router writes for the records it releases, compact enough that the
//! evidence does not outgrow the data.
//!
//! One entry per release does not scale to a province: a record released to 186 subscriptions, or forty million
//! residents backfilled to fifty subscriptions, wrote more evidence than data. So the router writes, in each
//! append:
//!
//! - a `release_terms` entry ([`ReleaseTerms`]) the first time the hub process releases under a subscription's
//!   terms — schema, subscription, agency, the fields with their treatment, purpose, view schema, channel and
//!   retention — which later entries name by its `seq` in the hub's chain;
//! - `releases` entries ([`ReleasedRecord`]): for each record released, its id, the pseudonymous keys of the
//!   persons it names, whether it came from history, and the `seq`s of the terms it was released under — one per
//!   subscription that received it.
//!
//! Both are ordinary entries of the hub's chain, hashed and signed like every other: an edited batch breaks the
//! chain as an edited release did. A `releases` entry is stored deflated (RFC 1951, raw; header
//! `unsilo.audit.encoding: deflate`): the chain hash and the signature cover the stored bytes, and any zlib tool
//! inflates them to the entry's JSON text.
//!
//! Readers expand a batch back into one [`AuditEvent::Release`] per release ([`TermsBook::expand`],
//! [`expand_with`]), each carrying the batch entry's offset, seq and hash, so the audit query, the person report
//! and the monthly report count exactly the releases written, as they did when each release was an entry.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use unsilo_bus::Record;
use unsilo_policy::model::FieldRule;
use unsilo_schemas::names::HEADER_AUDIT_ENCODING;

use super::{AuditEntry, AuditEvent, EntryBody};

/// The value of [`HEADER_AUDIT_ENCODING`] on entries stored deflated.
pub const DEFLATE: &str = "deflate";

/// No stored entry may inflate to more than this (a rogue writer's deflate bomb is refused, not inflated).
pub const MAX_INFLATED_BYTES: u64 = 64 << 20;

/// A `releases` entry is cut once its records' estimated JSON reaches this size, so an entry stays well below a
/// Kafka broker's default message limit (1 MB) after compression and far below it before.
const MAX_BATCH_JSON_BYTES: usize = 512 << 10;

/// What a subscription's records are released under: everything a release entry said about the release except
/// the record itself. Written once per hub process as a `release_terms` entry, named by its `seq` after that.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseTerms {
    /// The shared schema.
    pub schema: String,
    /// The subscription id.
    pub subscription: String,
    /// The agency.
    pub agency: String,
    /// The fields released and their treatment (fields absent were not released).
    pub fields: Vec<FieldRule>,
    /// The subscription's stated purpose.
    pub purpose: String,
    /// The view schema's id the records are encoded with.
    pub view_schema_id: i32,
    /// The delivery channel kind.
    pub channel: String,
    /// How many days the agency may keep a record (the grant's `retain_days`), when the grant says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_days: Option<u32>,
}

/// [`ReleaseTerms`] with a fingerprint of their content, built once per route so the writer can tell in
/// constant time whether this hub process has written them already.
#[derive(Debug)]
pub struct SharedTerms {
    terms: ReleaseTerms,
    fingerprint: [u8; 16],
}

impl SharedTerms {
    /// Terms and their fingerprint (the first 16 bytes of the SHA-256 of their JSON).
    pub fn new(terms: ReleaseTerms) -> Arc<Self> {
        let json = serde_json::to_vec(&terms).unwrap_or_default();
        let digest = Sha256::digest(&json);
        let mut fingerprint = [0u8; 16];
        fingerprint.copy_from_slice(&digest[..16]);
        Arc::new(Self { terms, fingerprint })
    }

    /// The terms.
    pub fn terms(&self) -> &ReleaseTerms {
        &self.terms
    }

    /// Their fingerprint.
    pub(crate) fn fingerprint(&self) -> [u8; 16] {
        self.fingerprint
    }
}

/// One record of a `releases` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleasedRecord {
    /// The record id.
    pub id: String,
    /// Pseudonymous keys of the persons the record names (never the ID numbers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub persons: Vec<String>,
    /// The `seq`s, in the same hub's chain, of the `release_terms` entries it was released under: one per
    /// subscription that received it.
    pub to: Vec<u64>,
    /// Released from history — a backfill, or the catch-up after a pause — rather than live.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history: bool,
}

/// One release handed to the writer ([`super::AuditLog::chain_releases`]).
#[derive(Clone, Debug)]
pub struct Release {
    /// The record id, shared by every release of the record.
    pub record_id: Arc<str>,
    /// Pseudonymous keys of the persons the record names, shared by every release of the record.
    pub persons: Arc<[String]>,
    /// The terms it was released under.
    pub terms: Arc<SharedTerms>,
    /// Released from history rather than live.
    pub history: bool,
}

/// Groups `releases` into `releases` events: consecutive releases of one record become one
/// [`ReleasedRecord`], whose `to` names each release's terms by the `seq` `seq_of` gives; an event is cut at
/// [`MAX_BATCH_JSON_BYTES`] (estimated).
pub(crate) fn batch_events(
    releases: &[Release],
    seq_of: impl Fn(&SharedTerms) -> u64,
) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    let mut records: Vec<ReleasedRecord> = Vec::new();
    let mut estimate = 0usize;
    for release in releases {
        let seq = seq_of(&release.terms);
        if let Some(last) = records.last_mut() {
            if *last.id == *release.record_id && last.history == release.history {
                last.to.push(seq);
                estimate += 8;
                continue;
            }
        }
        if estimate >= MAX_BATCH_JSON_BYTES {
            events.push(AuditEvent::Releases {
                records: std::mem::take(&mut records),
            });
            estimate = 0;
        }
        estimate += 48 + release.record_id.len() + 40 * release.persons.len();
        records.push(ReleasedRecord {
            id: release.record_id.to_string(),
            persons: release.persons.to_vec(),
            to: vec![seq],
            history: release.history,
        });
    }
    if !records.is_empty() {
        events.push(AuditEvent::Releases { records });
    }
    events
}

/// Whether an event is stored deflated.
pub(crate) fn stored_deflated(event: &AuditEvent) -> bool {
    matches!(event, AuditEvent::Releases { .. })
}

/// Deflates an entry's JSON for storage.
pub(crate) fn deflate(json: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(json.len() / 3),
        flate2::Compression::new(2),
    );
    encoder.write_all(json)?;
    encoder.finish()
}

/// The JSON text of a stored audit entry: its value, inflated when [`HEADER_AUDIT_ENCODING`] says `deflate`.
/// An unknown encoding, a value that does not inflate, or one that inflates past [`MAX_INFLATED_BYTES`] is an
/// error naming what is wrong.
pub fn entry_json(record: &Record) -> Result<Cow<'_, [u8]>, String> {
    let value = record.value.as_deref().ok_or("entry has no body")?;
    match record.header(HEADER_AUDIT_ENCODING) {
        None => Ok(Cow::Borrowed(value)),
        Some(b"deflate") => {
            let mut out = Vec::with_capacity(value.len() * 4);
            flate2::read::DeflateDecoder::new(value)
                .take(MAX_INFLATED_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("the deflated body does not inflate: {e}"))?;
            if out.len() as u64 > MAX_INFLATED_BYTES {
                return Err(format!(
                    "the deflated body inflates past {MAX_INFLATED_BYTES} bytes"
                ));
            }
            Ok(Cow::Owned(out))
        }
        Some(other) => Err(format!(
            "unknown {HEADER_AUDIT_ENCODING} `{}`",
            String::from_utf8_lossy(other)
        )),
    }
}

/// The release a record of a batch became under `terms`.
fn release_event(terms: &ReleaseTerms, record: &ReleasedRecord) -> AuditEvent {
    AuditEvent::Release {
        record_id: record.id.clone(),
        schema: terms.schema.clone(),
        subscription: terms.subscription.clone(),
        agency: terms.agency.clone(),
        fields: terms.fields.clone(),
        purpose: terms.purpose.clone(),
        view_schema_id: terms.view_schema_id,
        channel: terms.channel.clone(),
        person_keys: record.persons.clone(),
        history: record.history,
        retain_days: terms.retain_days,
    }
}

/// What expanding found: the releases, and how many releases named terms the reader did not have.
#[derive(Debug, Default)]
pub struct Expanded {
    /// One entry per release (or the entry itself when it is not a batch), in the order written.
    pub entries: Vec<AuditEntry>,
    /// Releases whose terms were not found (never the case on a verified chain read from its start).
    pub unresolved: u64,
}

/// Expands `entry`: a `releases` entry becomes one [`AuditEvent::Release`] entry per release `keep` accepts (a
/// record and the terms it went out under, looked at before anything is built), with the batch's offset, seq and
/// hash, its terms found by `terms_of(hub, seq)`; any other entry is returned as it is.
pub fn expand_with(
    entry: AuditEntry,
    mut terms_of: impl FnMut(&str, u64) -> Option<Arc<ReleaseTerms>>,
    keep: impl Fn(&ReleasedRecord, &ReleaseTerms) -> bool,
) -> Expanded {
    let AuditEvent::Releases { records } = &entry.body.event else {
        return Expanded {
            entries: vec![entry],
            unresolved: 0,
        };
    };
    let mut out = Expanded::default();
    for record in records {
        for &seq in &record.to {
            let Some(terms) = terms_of(&entry.body.hub, seq) else {
                out.unresolved += 1;
                continue;
            };
            if !keep(record, &terms) {
                continue;
            }
            out.entries.push(AuditEntry {
                offset: entry.offset,
                hash: entry.hash.clone(),
                body: EntryBody {
                    hub: entry.body.hub.clone(),
                    seq: entry.body.seq,
                    prev: entry.body.prev.clone(),
                    time_ms: entry.body.time_ms,
                    event: release_event(&terms, record),
                },
            });
        }
    }
    out
}

/// The terms a reader has met, by `(hub, seq)`: fed every verified entry in log order, it expands the batches
/// after them.
#[derive(Debug, Default)]
pub struct TermsBook {
    /// By hub, then by seq (looked up by `&str`, without building a key per release).
    terms: HashMap<String, HashMap<u64, Arc<ReleaseTerms>>>,
}

impl TermsBook {
    /// Notes `entry` if it is a `release_terms` entry.
    pub fn note(&mut self, entry: &AuditEntry) {
        if let AuditEvent::ReleaseTerms(terms) = &entry.body.event {
            self.terms
                .entry(entry.body.hub.clone())
                .or_default()
                .insert(entry.body.seq, Arc::new(terms.clone()));
        }
    }

    /// The terms `hub` wrote as its entry `seq`, if noted.
    pub fn get(&self, hub: &str, seq: u64) -> Option<Arc<ReleaseTerms>> {
        self.terms.get(hub)?.get(&seq).cloned()
    }

    /// Expands `entry` with the terms noted so far (see [`expand_with`]).
    pub fn expand(&self, entry: AuditEntry) -> Expanded {
        expand_with(entry, |hub, seq| self.get(hub, seq), |_, _| true)
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
