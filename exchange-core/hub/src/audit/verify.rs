//! Checking the audit log: one streaming [`Verifier`] that every reader of evidence goes through.
//!
//! Records are pushed in log order. Per hub chain the verifier checks that each entry's bytes match its hash,
//! that `seq` counts up by one and that `prev` is the hash of the chain's previous entry. An entry is
//! *verified* only once a valid signature of its hub covers it: a signature names the range of the append it
//! closes (`from_seq` … its own seq, see [`super::signing::entry_message`]), and covers exactly the entries
//! that link, hash by `prev`, from the signed entry back to `from_seq`. Nothing before `from_seq` is vouched
//! for — so a hub that signs after a forged entry never adopts it — and an entry no signature covers is
//! reported as forged.
//!
//! Three readers use it:
//!
//! - [`super::verify()`] (`unsilo audit verify`) reads the whole log and reports every break ([`VerifyReport`]);
//! - [`super::AuditLog::open`] checks its own chain's tail (from its newest checkpoint) before it appends, and
//!   disowns a tail it cannot verify ([`super::DISOWN_ACTION`]);
//! - [`super::query`] and the person index ([`super::person`]) answer only from entries verified against a
//!   pinned key ([`Verifier::push`] returns them), and count the rest.

use std::collections::BTreeMap;

use serde::Serialize;
use unsilo_bus::ConsumedRecord;
use unsilo_schemas::names::{HEADER_AUDIT_HASH, HEADER_AUDIT_SIGNATURE};

use super::signing::{self, KeySource, TrustedKeys};
use super::{AuditEvent, Checkpoint, EntryBody, DISOWN_ACTION, GENESIS, KEY_ACTION};

/// One break in the chain found by [`super::verify()`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Offset of the entry where the break shows.
    pub offset: u64,
    /// What is wrong.
    pub message: String,
}

/// What [`super::verify()`] found of one hub's chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChainReport {
    /// Sequence number of the newest entry.
    pub seq: u64,
    /// Hash of the newest entry.
    pub hash: String,
    /// The public key the chain was checked with (hex), if one was known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Where that key came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_source: Option<KeySource>,
    /// The newest seq covered by a valid signature.
    pub signed_through: u64,
    /// The newest checkpoint of the chain that was checked, `(seq, time_ms)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<i64>>)]
    pub checkpoint: Option<(u64, i64)>,
}

/// The result of [`super::verify()`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// Entries read.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Each hub's chain.
    pub chains: BTreeMap<String, ChainReport>,
    /// Every break found; empty when the log is intact.
    pub problems: Vec<Problem>,
    /// What is not a break but weakens the evidence (a chain whose key is not pinned).
    pub warnings: Vec<String>,
}

impl VerifyReport {
    /// Whether no break was found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// An entry read but not yet covered by a signature.
#[derive(Clone, Debug)]
struct Pending {
    offset: u64,
    seq: u64,
    hash: String,
    prev: String,
    /// Whether the stored bytes match the stored hash.
    hash_ok: bool,
}

/// The verifier's state of one chain.
#[derive(Default)]
struct ChainState {
    report: ChainReport,
    /// Entries no valid signature covers yet, in log order.
    pending: Vec<Pending>,
    /// The hashes at the seqs that checkpoints name.
    hashes_at: BTreeMap<u64, String>,
    last_offset: u64,
    /// The newest entry a valid signature covered: `(seq, hash)`.
    verified_head: Option<(u64, String)>,
}

impl ChainState {
    fn started() -> Self {
        Self {
            report: ChainReport {
                hash: GENESIS.to_owned(),
                ..ChainReport::default()
            },
            ..Self::default()
        }
    }

    /// Reports every pending entry as uncovered and forgets them: no later signature can cover them. Returns
    /// their offsets.
    fn report_uncovered(&mut self, hub: &str, problems: &mut Vec<Problem>) -> Vec<u64> {
        if let (Some(first), Some(last)) = (self.pending.first(), self.pending.last()) {
            let which = if self.report.public_key.is_some() {
                "a valid signature of the hub's key"
            } else {
                "any signature: no public key of the hub is known (pin it in [security] audit_public_keys)"
            };
            let n = self.pending.len();
            problems.push(Problem {
                offset: first.offset,
                message: format!(
                    "hub `{hub}`: {n} entr{} (seq {}–{}, offsets {}–{}) not covered by {which}: forged, or written by something other than the hub",
                    if n == 1 { "y is" } else { "ies are" },
                    first.seq,
                    last.seq,
                    first.offset,
                    last.offset
                ),
            });
        }
        self.pending.drain(..).map(|p| p.offset).collect()
    }
}

/// The tail of one chain that no signature covers, as [`Verifier::unverified_tail`] finds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnverifiedTail {
    /// The newest entry a valid signature covers (`0` and [`GENESIS`] when none does).
    pub verified_seq: u64,
    /// Its hash.
    pub verified_hash: String,
    /// The seq of the chain's newest entry (what a writer must count on from).
    pub last_seq: u64,
    /// Offsets of the entries after `verified_seq` that no signature covers, first and last.
    pub offsets: (u64, u64),
    /// How many such entries.
    pub entries: u64,
}

/// Checks audit records pushed in log order (see the module docs).
pub struct Verifier {
    keys: TrustedKeys,
    chains: BTreeMap<String, ChainState>,
    report: VerifyReport,
    /// Offsets of entries found uncoverable since the last [`Verifier::take_given_up`].
    given_up: Vec<u64>,
}

impl Verifier {
    /// A verifier trusting `keys` (pinned and own; a chain's published key is used, with a warning, for the
    /// report but never for [`Verifier::push`]'s verified entries).
    pub fn new(keys: &TrustedKeys) -> Self {
        Self {
            keys: keys.clone(),
            chains: BTreeMap::new(),
            report: VerifyReport::default(),
            given_up: Vec::new(),
        }
    }

    /// Starts `hub`'s chain at a point already known good (a checkpoint signed by the hub's key): the next entry
    /// must have `seq + 1` and `prev == hash`.
    pub fn resume(&mut self, hub: &str, seq: u64, hash: &str) {
        let mut chain = ChainState::started();
        chain.report.seq = seq;
        chain.report.hash = hash.to_owned();
        chain.report.signed_through = seq;
        chain.verified_head = Some((seq, hash.to_owned()));
        self.chains.insert(hub.to_owned(), chain);
    }

    /// Notes the checkpoints the chains will be held against (before any entry is pushed).
    pub fn note_checkpoints(&mut self, checkpoints: &[Checkpoint]) {
        for cp in checkpoints {
            self.chains
                .entry(cp.hub.clone())
                .or_insert_with(ChainState::started)
                .hashes_at
                .insert(cp.seq, String::new());
        }
    }

    /// Checks the next record. Returns the offsets of the entries this record's signature newly covered, when
    /// their hub's key is pinned (own or `[security] audit_public_keys`): those are verified evidence.
    pub fn push(&mut self, r: &ConsumedRecord) -> Vec<u64> {
        let problems = &mut self.report.problems;
        self.report.entries += 1;
        let offset = r.position.offset;
        let Some(value) = r.record.value.as_deref() else {
            problems.push(Problem {
                offset,
                message: "entry has no body".into(),
            });
            return Vec::new();
        };
        let Some(stored) = r
            .record
            .header(HEADER_AUDIT_HASH)
            .and_then(|h| String::from_utf8(h.to_vec()).ok())
        else {
            problems.push(Problem {
                offset,
                message: format!("entry has no {HEADER_AUDIT_HASH} header"),
            });
            return Vec::new();
        };
        // Each stored hash names its algorithm (`sm3:` or SHA-256 hex): chains of both suites verify.
        let hash_ok = unsilo_schemas::crypto::chain_hash_matches(&stored, value);
        if !hash_ok {
            problems.push(Problem {
                offset,
                message: "body does not match its hash: the entry was edited".into(),
            });
        }
        let json = match super::batch::entry_json(&r.record) {
            Ok(json) => json,
            Err(e) => {
                problems.push(Problem {
                    offset,
                    message: format!("body is not an audit entry: {e}"),
                });
                return Vec::new();
            }
        };
        let body: EntryBody = match serde_json::from_slice(&json) {
            Ok(b) => b,
            Err(e) => {
                problems.push(Problem {
                    offset,
                    message: format!("body is not an audit entry: {e}"),
                });
                return Vec::new();
            }
        };
        let chain = self
            .chains
            .entry(body.hub.clone())
            .or_insert_with(ChainState::started);
        if body.seq != chain.report.seq + 1 {
            problems.push(Problem {
                offset,
                message: format!(
                    "hub `{}`: seq {} follows seq {}: entries were removed, duplicated or reordered",
                    body.hub, body.seq, chain.report.seq
                ),
            });
        }
        // A disowning entry continues the chain from the hub's newest verified entry, past the entries it
        // disowns (which stay pending, and are reported when the disowning entry's signature comes).
        let disowns = matches!(&body.event, AuditEvent::Control { action, .. } if action == DISOWN_ACTION)
            && chain
                .verified_head
                .as_ref()
                .map_or(body.prev == GENESIS, |(_, h)| *h == body.prev);
        if body.prev != chain.report.hash && !disowns {
            problems.push(Problem {
                offset,
                message: format!(
                    "hub `{}` seq {}: prev does not match the hash of the chain's previous entry",
                    body.hub, body.seq
                ),
            });
        }
        if chain.report.public_key.is_none() {
            if let Some(pinned) = self.keys.keys.get(&body.hub) {
                chain.report.public_key = Some(pinned.clone());
                chain.report.key_source = Some(KeySource::Pinned);
            }
        }
        if let AuditEvent::Control { action, detail, .. } = &body.event {
            if action == KEY_ACTION {
                let published = detail["public_key"].as_str().unwrap_or_default().to_owned();
                match &chain.report.public_key {
                    None => {
                        chain.report.public_key = Some(published);
                        chain.report.key_source = Some(KeySource::PublishedInChain);
                    }
                    Some(known) if *known != published => problems.push(Problem {
                        offset,
                        message: format!(
                            "hub `{}` seq {}: publishes a signing key other than the one {}",
                            body.hub,
                            body.seq,
                            if chain.report.key_source == Some(KeySource::Pinned) {
                                "pinned for it"
                            } else {
                                "it published first"
                            }
                        ),
                    }),
                    Some(_) => {}
                }
            }
        }
        chain.pending.push(Pending {
            offset,
            seq: body.seq,
            hash: stored.clone(),
            prev: body.prev.clone(),
            hash_ok,
        });
        let mut covered = Vec::new();
        if let Some(signature) = r
            .record
            .header(HEADER_AUDIT_SIGNATURE)
            .and_then(|h| std::str::from_utf8(h).ok())
        {
            let from_seq = signing::signed_from(r).unwrap_or(body.seq);
            let message = signing::entry_message(&body.hub, from_seq, body.seq, &stored);
            let valid = from_seq <= body.seq
                && chain
                    .report
                    .public_key
                    .as_deref()
                    .is_some_and(|k| signing::verify_hex(k, &message, signature));
            if !valid {
                problems.push(Problem {
                    offset,
                    message: format!(
                        "hub `{}` seq {}: the signature does not verify with the hub's key: the entry is forged",
                        body.hub, body.seq
                    ),
                });
            } else if hash_ok {
                // Walk back from the signed entry by `prev` to `from_seq`: exactly those entries are covered.
                let mut want = stored.clone();
                let mut keep = Vec::new();
                for p in chain.pending.drain(..).rev() {
                    if p.seq >= from_seq && p.hash == want && p.hash_ok {
                        want.clone_from(&p.prev);
                        covered.push(p.offset);
                    } else {
                        keep.push(p);
                    }
                }
                keep.reverse();
                chain.pending = keep;
                // What is left before the signed range can no longer be covered by any later signature.
                self.given_up
                    .extend(chain.report_uncovered(&body.hub, problems));
                covered.reverse();
                chain.report.signed_through = body.seq;
                chain.verified_head = Some((body.seq, stored.clone()));
            }
        }
        if let Some(slot) = chain.hashes_at.get_mut(&body.seq) {
            slot.clone_from(&stored);
        }
        chain.last_offset = offset;
        chain.report.seq = body.seq;
        chain.report.hash = stored;
        if chain.report.key_source == Some(KeySource::Pinned) {
            covered
        } else {
            Vec::new()
        }
    }

    /// The offsets of entries found since the last call that no signature can cover any more (reported as
    /// forged): a reader holding them pending can let them go.
    pub fn take_given_up(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.given_up)
    }

    /// The entries of `hub`'s chain after its newest verified one that no signature covers (yet), if any: what
    /// a writer must not sign over.
    pub fn unverified_tail(&self, hub: &str) -> Option<UnverifiedTail> {
        let chain = self.chains.get(hub)?;
        let (first, last) = (chain.pending.first()?, chain.pending.last()?);
        let (verified_seq, verified_hash) = chain
            .verified_head
            .clone()
            .unwrap_or((0, GENESIS.to_owned()));
        Some(UnverifiedTail {
            verified_seq,
            verified_hash,
            last_seq: chain.report.seq,
            offsets: (first.offset, last.offset),
            entries: chain.pending.len() as u64,
        })
    }

    /// Each chain's head — `(hub, seq, hash)` — when no entry of a chain whose key is pinned waits for a
    /// signature: a point a reader can resume from with [`Verifier::resume`] and lose nothing it would count.
    /// `None` while such an entry is pending.
    pub fn settled_heads(&self) -> Option<Vec<(String, u64, String)>> {
        let waiting = self
            .chains
            .iter()
            .any(|(hub, chain)| !chain.pending.is_empty() && self.keys.keys.contains_key(hub));
        (!waiting).then(|| {
            self.chains
                .iter()
                .map(|(hub, c)| (hub.clone(), c.report.seq, c.report.hash.clone()))
                .collect()
        })
    }

    /// The newest entry of `hub`'s chain: `(seq, hash)`, `(0, GENESIS)` when it has none.
    pub fn head(&self, hub: &str) -> (u64, String) {
        self.chains.get(hub).map_or((0, GENESIS.to_owned()), |c| {
            (c.report.seq, c.report.hash.clone())
        })
    }

    /// Ends the check against `checkpoints`: reports what no signature covered, chains that end before a
    /// checkpoint (cut off), and checkpoints the chain does not match (rewritten) or whose signature does not
    /// verify.
    pub fn finish(mut self, checkpoints: &[Checkpoint]) -> VerifyReport {
        let report = &mut self.report;
        for (hub, chain) in &mut self.chains {
            let _ = chain.report_uncovered(hub, &mut report.problems);
            if chain.report.key_source == Some(KeySource::PublishedInChain) {
                report.warnings.push(format!(
                    "hub `{hub}`: its key is only the one its chain published; pin it in [security] audit_public_keys"
                ));
            }
        }
        for cp in checkpoints {
            report.checkpoints += 1;
            let Some(chain) = self.chains.get_mut(&cp.hub) else {
                continue;
            };
            let at = chain.last_offset;
            let key = chain
                .report
                .public_key
                .as_deref()
                .or_else(|| self.keys.keys.get(&cp.hub).map(String::as_str));
            let key_ok = key.is_some_and(|k| cp.verify(k));
            if chain.report.seq == 0 && key_ok {
                report.problems.push(Problem {
                    offset: at,
                    message: format!(
                        "hub `{}`: its chain is missing from the log but a checkpoint signed at {} ms vouches for seq {}: the entries were removed",
                        cp.hub, cp.time_ms, cp.seq
                    ),
                });
                continue;
            }
            if !key_ok {
                report.problems.push(Problem {
                    offset: at,
                    message: format!(
                        "hub `{}`: the checkpoint of seq {} is not signed by the hub's key",
                        cp.hub, cp.seq
                    ),
                });
                continue;
            }
            if chain.report.seq < cp.seq {
                report.problems.push(Problem {
                    offset: at,
                    message: format!(
                        "hub `{}`: the chain ends at seq {} but a checkpoint signed at {} ms vouches for seq {}: the newest entries were cut off",
                        cp.hub, chain.report.seq, cp.time_ms, cp.seq
                    ),
                });
            } else if chain.hashes_at.get(&cp.seq).map(String::as_str) != Some(cp.hash.as_str()) {
                report.problems.push(Problem {
                    offset: at,
                    message: format!(
                        "hub `{}`: the checkpoint of seq {} does not match the chain's entry there: the chain was rewritten",
                        cp.hub, cp.seq
                    ),
                });
            }
            if chain.report.checkpoint.is_none_or(|(seq, _)| seq < cp.seq) {
                chain.report.checkpoint = Some((cp.seq, cp.time_ms));
            }
        }
        let mut report = self.report;
        report.chains = self
            .chains
            .into_iter()
            .filter(|(_, c)| c.report.seq > 0)
            .map(|(h, c)| (h, c.report))
            .collect();
        report
    }
}

/// Checks a sequence of audit records (in log order) against the trusted keys and the checkpoints, and reports
/// every break: an entry whose bytes do not match its hash (edited), whose `seq` skips or repeats (removed,
/// duplicated or reordered), whose `prev` is not the hash of its chain's previous entry, that no valid signature
/// of its hub covers (forged), a chain that ends before a checkpoint's seq (cut off), and a checkpoint the
/// chain does not match (rewritten) or whose signature does not verify.
pub fn verify_records<'a>(
    records: impl IntoIterator<Item = &'a ConsumedRecord>,
    keys: &TrustedKeys,
    checkpoints: &[Checkpoint],
) -> VerifyReport {
    let mut verifier = Verifier::new(keys);
    verifier.note_checkpoints(checkpoints);
    for r in records {
        verifier.push(r);
    }
    verifier.finish(checkpoints)
}
