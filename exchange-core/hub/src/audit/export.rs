//! Signed exports of the audit log for a period (`unsilo audit export --from --to`), which an auditor verifies
//! offline, without unsilo's hub, with `unsilo audit verify-export FILE` — or with any SM2/SM3 tool, since every
//! part of the format is stated here.
//!
//! A bundle is JSON lines:
//!
//! 1. a **header**: `{"kind":"header","format":"unsilo-audit-export-v1","hub","from_ms","to_ms","created_ms",
//!    "public_keys":{hub: key},"algorithm"}` — the keys of every hub whose entries follow, as the exporting hub
//!    trusts them;
//! 2. one **entry** per audit entry written in `[from_ms, to_ms)`, in log order: `{"kind":"entry","offset",
//!    "value","headers"}` — `value` is the entry exactly as stored (the JSON text its hash covers), `headers` its
//!    stored hash and signature headers; an entry stored deflated (header `unsilo.audit.encoding: deflate`, a
//!    batch of releases) has as `value` the standard base64 of the stored bytes its hash covers, which inflate
//!    (RFC 1951, raw) to its JSON text;
//! 3. the **checkpoints** signed in the period: `{"kind":"checkpoint", …checkpoint}`;
//! 4. a **manifest**: `{"kind":"manifest","entries","checkpoints","digest","signature","public_key"}` — `digest`
//!    is the hub's suite hash (`sm3:<hex>` or SHA-256 hex) of every byte before the manifest line, `signature`
//!    the exporting hub's signature over `unsilo-audit-export-v1 NUL <digest>`.
//!
//! Verifying checks the manifest's signature against the exporting hub's key (or the one the auditor pinned),
//! then every entry's hash, its chain link to the entry before it, and the hubs' signatures over every append,
//! and the checkpoints against the chain.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use unsilo_bus::{Bus, ConsumedRecord, Position, Record};
use unsilo_schemas::crypto::{chain_hash_suite, Suite};
use unsilo_schemas::names::HEADER_AUDIT_ENCODING;

use super::{
    checkpoint, read_all, signing, AuditError, AuditLog, EntryBody, TrustedKeys, Verifier,
    VerifyReport,
};

/// The stored record an exported entry line stands for: its value as stored (base64-decoded when the entry is
/// stored deflated) with its headers.
fn stored_record(value: &str, headers: &BTreeMap<String, String>) -> Result<Record, String> {
    let bytes = if headers.contains_key(HEADER_AUDIT_ENCODING) {
        base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|e| format!("the value of a deflated entry is not base64: {e}"))?
    } else {
        value.as_bytes().to_vec()
    };
    let mut record = Record::new(Vec::new(), bytes);
    for (name, v) in headers {
        record = record.with_header(name.clone(), v.as_bytes().to_vec());
    }
    Ok(record)
}

/// An exported entry line's stored record and its body.
fn parse_entry(
    value: &str,
    headers: &BTreeMap<String, String>,
) -> Result<(Record, EntryBody), String> {
    let record = stored_record(value, headers)?;
    let json = super::batch::entry_json(&record)?;
    let body = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
    Ok((record, body))
}

/// The format's name, in the header and the manifest's signed message.
pub const FORMAT: &str = "unsilo-audit-export-v1";

/// One line of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExportLine {
    /// The first line.
    Header {
        /// [`FORMAT`].
        format: String,
        /// The exporting hub.
        hub: String,
        /// The period's start (ms since the epoch, inclusive).
        from_ms: i64,
        /// The period's end (exclusive).
        to_ms: i64,
        /// When the bundle was made.
        created_ms: i64,
        /// The public key of every hub whose entries follow, as the exporting hub trusts them.
        public_keys: BTreeMap<String, String>,
        /// The exporting hub's signature algorithm (`SM2`, `Ed25519`).
        algorithm: String,
    },
    /// One audit entry as stored.
    Entry {
        /// Its offset in the audit topic.
        offset: u64,
        /// The stored bytes (JSON text) its hash covers.
        value: String,
        /// Its stored headers (hash, signature, the signature's first seq).
        headers: BTreeMap<String, String>,
    },
    /// A checkpoint signed in the period.
    Checkpoint(super::Checkpoint),
    /// The last line.
    Manifest {
        /// Entries in the bundle.
        entries: usize,
        /// Checkpoints in the bundle.
        checkpoints: usize,
        /// The suite hash of every byte before this line.
        digest: String,
        /// The exporting hub's signature over `unsilo-audit-export-v1 NUL <digest>`, hex.
        signature: String,
        /// The exporting hub's public key.
        public_key: String,
    },
}

/// What the manifest's signature covers.
pub fn manifest_message(digest: &str) -> Vec<u8> {
    format!("{FORMAT}\0{digest}").into_bytes()
}

/// The bundle of the entries `log`'s topic holds written in `[from_ms, to_ms)`, signed by `log`'s hub.
pub async fn export(
    bus: &dyn Bus,
    log: &AuditLog,
    keys: &TrustedKeys,
    from_ms: i64,
    to_ms: i64,
) -> Result<String, AuditError> {
    let records = read_all(bus, log.topic()).await?;
    let mut lines: Vec<String> = Vec::new();
    let mut public_keys = BTreeMap::new();
    let mut entries = Vec::new();
    for r in &records {
        let Some(value) = r.record.value.as_deref() else {
            continue;
        };
        let Ok(json) = super::batch::entry_json(&r.record) else {
            continue;
        };
        let Ok(body) = serde_json::from_slice::<EntryBody>(&json) else {
            continue;
        };
        if body.time_ms < from_ms || body.time_ms >= to_ms {
            continue;
        }
        if let Some(k) = keys.keys.get(&body.hub) {
            public_keys.insert(body.hub.clone(), k.clone());
        }
        let headers = r
            .record
            .headers
            .iter()
            .filter(|h| h.name.starts_with("unsilo.audit."))
            .map(|h| {
                (
                    h.name.clone(),
                    String::from_utf8_lossy(&h.value).into_owned(),
                )
            })
            .collect();
        let value = if r.record.header(HEADER_AUDIT_ENCODING).is_some() {
            base64::engine::general_purpose::STANDARD.encode(value)
        } else {
            String::from_utf8_lossy(value).into_owned()
        };
        entries.push(ExportLine::Entry {
            offset: r.position.offset,
            value,
            headers,
        });
    }
    public_keys.insert(log.hub().to_owned(), log.public_key());
    let checkpoints: Vec<_> = checkpoint::read(bus, log.topic())
        .await?
        .into_iter()
        .filter(|c| c.time_ms >= from_ms && c.time_ms < to_ms)
        .collect();
    let header = ExportLine::Header {
        format: FORMAT.into(),
        hub: log.hub().to_owned(),
        from_ms,
        to_ms,
        created_ms: unsilo_bus::now_ms(),
        public_keys,
        algorithm: log.key_algorithm().into(),
    };
    let (n_entries, n_checkpoints) = (entries.len(), checkpoints.len());
    for line in std::iter::once(header)
        .chain(entries)
        .chain(checkpoints.into_iter().map(ExportLine::Checkpoint))
    {
        lines.push(serde_json::to_string(&line).map_err(|e| AuditError::Encode(e.to_string()))?);
    }
    let mut body = lines.join("\n");
    body.push('\n');
    let digest = log.suite().chain_hash(body.as_bytes());
    let manifest = ExportLine::Manifest {
        entries: n_entries,
        checkpoints: n_checkpoints,
        signature: log.key().sign_hex(&manifest_message(&digest)),
        digest,
        public_key: log.public_key(),
    };
    body.push_str(
        &serde_json::to_string(&manifest).map_err(|e| AuditError::Encode(e.to_string()))?,
    );
    body.push('\n');
    Ok(body)
}

/// Why a bundle is not a valid export.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// A line is not JSON of the format.
    #[error("line {line}: {reason}")]
    Malformed {
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The bundle's shape is wrong (no header first, no manifest last …).
    #[error("{0}")]
    Shape(String),
    /// The manifest's digest does not match the bundle: lines were added, removed or changed.
    #[error(
        "the bundle's digest does not match its manifest: lines were added, removed or changed"
    )]
    Digest,
    /// The manifest's signature does not verify with the expected key.
    #[error("the manifest is not signed by {0}")]
    Signature(String),
}

/// What verifying a bundle found.
#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    /// The exporting hub.
    pub hub: String,
    /// The period.
    pub from_ms: i64,
    /// The period's end.
    pub to_ms: i64,
    /// Entries checked.
    pub entries: usize,
    /// The chains, signatures and checkpoints.
    pub report: VerifyReport,
}

impl ExportReport {
    /// Whether nothing was found wrong.
    pub fn is_intact(&self) -> bool {
        self.report.is_intact()
    }
}

/// Verifies a bundle offline. `pinned` is the exporting hub's public key as the auditor holds it (from
/// `unsilo audit keys`, handed over separately); without it the key in the manifest is taken, which shows the
/// bundle is whole but not whose it is.
pub fn verify_export(text: &str, pinned: Option<&str>) -> Result<ExportReport, ExportError> {
    let manifest_start = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or_else(|| {
            ExportError::Shape("a bundle has a header, entries and a manifest".into())
        })?;
    let (body, manifest_text) = text.split_at(manifest_start);
    let mut lines = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line: ExportLine = serde_json::from_str(l).map_err(|e| ExportError::Malformed {
            line: n + 1,
            reason: e.to_string(),
        })?;
        lines.push(line);
    }
    let Some(ExportLine::Header {
        format,
        hub,
        from_ms,
        to_ms,
        public_keys,
        ..
    }) = lines.first().cloned()
    else {
        return Err(ExportError::Shape("the first line is not a header".into()));
    };
    if format != FORMAT {
        return Err(ExportError::Shape(format!(
            "format `{format}` is not {FORMAT}"
        )));
    }
    let Ok(ExportLine::Manifest {
        digest,
        signature,
        public_key,
        entries,
        ..
    }) = serde_json::from_str::<ExportLine>(manifest_text.trim())
    else {
        return Err(ExportError::Shape("the last line is not a manifest".into()));
    };
    let key = pinned.unwrap_or(&public_key).trim().to_ascii_lowercase();
    let suite: Suite = chain_hash_suite(&digest);
    if suite.chain_hash(body.as_bytes()) != digest {
        return Err(ExportError::Digest);
    }
    if !signing::verify_hex(&key, &manifest_message(&digest), &signature) {
        return Err(ExportError::Signature(format!("the key {key}")));
    }
    // The chains: each hub's first entry in the period starts from the link it names.
    let mut trusted = TrustedKeys {
        keys: public_keys.clone(),
    };
    trusted.keys.insert(hub.clone(), key);
    let mut verifier = Verifier::new(&trusted);
    // Each hub's first seq in the period; checkpoints are held against the chains from there on.
    // Each entry line read once (a deflated batch inflated once): its stored record and body, or what is wrong.
    let mut parsed: std::collections::VecDeque<Result<(Record, EntryBody), String>> = lines
        .iter()
        .filter_map(|line| match line {
            ExportLine::Entry { value, headers, .. } => Some(parse_entry(value, headers)),
            _ => None,
        })
        .collect();
    let mut first_seq: BTreeMap<String, u64> = BTreeMap::new();
    for (_, body) in parsed.iter().flatten() {
        if let std::collections::btree_map::Entry::Vacant(slot) = first_seq.entry(body.hub.clone())
        {
            // Each hub's chain starts from the link its first entry in the period names.
            verifier.resume(&body.hub, body.seq.saturating_sub(1), &body.prev);
            slot.insert(body.seq);
        }
    }
    let checkpoints: Vec<super::Checkpoint> = lines
        .iter()
        .filter_map(|l| match l {
            ExportLine::Checkpoint(cp)
                if first_seq.get(&cp.hub).is_some_and(|first| cp.seq >= *first) =>
            {
                Some(cp.clone())
            }
            _ => None,
        })
        .collect();
    verifier.note_checkpoints(&checkpoints);
    let mut seen = 0;
    for line in &lines[1..lines.len().saturating_sub(1)] {
        match line {
            ExportLine::Entry { offset, .. } => {
                seen += 1;
                let (mut record, body) = parsed
                    .pop_front()
                    .unwrap_or_else(|| Err("not read".into()))
                    .map_err(|e| ExportError::Malformed {
                        line: seen + 1,
                        reason: format!("entry at offset {offset}: {e}"),
                    })?;
                record.key = Some(body.hub.as_bytes().to_vec());
                verifier.push(&ConsumedRecord {
                    position: Position {
                        topic: "export".into(),
                        partition: 0,
                        offset: *offset,
                    },
                    record,
                });
            }
            ExportLine::Checkpoint(_) => {}
            _ => {
                return Err(ExportError::Shape(
                    "a header or manifest in the middle".into(),
                ))
            }
        }
    }
    if seen != entries {
        return Err(ExportError::Shape(format!(
            "the manifest counts {entries} entries, the bundle holds {seen}"
        )));
    }
    Ok(ExportReport {
        hub,
        from_ms,
        to_ms,
        entries: seen,
        report: verifier.finish(&checkpoints),
    })
}
