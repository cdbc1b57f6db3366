//! Evidence at the province's size (part of `unsilo bench --only scale`): what release evidence costs on the bus,
//! and how fast the person report answers once the log holds a hundred million releases.
//!
//! - **Bytes per release** ([`evidence_bytes`]): records released as the router releases them — each to
//!   `fan_out` subscriptions, through [`AuditLog::chain_releases`] in appends of 200 records — on a fresh
//!   embedded bus; the stored bytes of the audit topic (values, keys, headers) divided by the releases. Two
//!   shapes: live routing at the province's fan-out, and a history backfill to one new subscription (fan-out 1,
//!   the worst case). Baseline ([`bytes_per_release_entry`]): the same releases written one entry each, as
//!   before batching.
//! - **Person report at size** ([`person_report_at_size`]): a log of `releases` releases (records naming one of
//!   `persons` residents each) is written and indexed; the index is then opened again, as after a restart, and
//!   the person report of random residents is timed — p50 and p99 — with the entries the reopened index read
//!   (0: no scan).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use unsilo_bus::embedded::EmbeddedBus;
use unsilo_bus::Bus;
use unsilo_hub::audit::person::PersonIndex;
use unsilo_hub::audit::{
    AuditEvent, AuditLog, Release, ReleaseTerms, SharedTerms, SigningKey, TrustedKeys,
};
use unsilo_policy::model::{FieldRule, Treatment};
use unsilo_schemas::crypto::Suite;
use unsilo_schemas::names::AUDIT_TOPIC;

use super::BenchError;

/// Subscriptions the releases go to (a province's 10,000).
const SUBSCRIPTIONS: usize = 10_000;

/// Records per append, as a router writes a fetched batch.
const RECORDS_PER_APPEND: usize = 200;

fn failed(e: impl std::fmt::Display) -> BenchError {
    BenchError::Avro(e.to_string())
}

/// The terms of benchmark subscription `i`.
fn terms(i: usize) -> ReleaseTerms {
    ReleaseTerms {
        schema: "grid_event".into(),
        subscription: format!("agency-{}.s{i}", i % 1000),
        agency: format!("agency-{}", i % 1000),
        fields: ["event_no", "event_type_code", "envelope.region_code"]
            .iter()
            .map(|f| FieldRule {
                field: (*f).into(),
                treatment: Treatment::Clear,
            })
            .chain(std::iter::once(FieldRule {
                field: "reporter_cert_no".into(),
                treatment: Treatment::Pseudonymise,
            }))
            .collect(),
        purpose: "网格事件协同处置".into(),
        view_schema_id: 1000 + i as i32,
        channel: "pull".into(),
        retain_days: Some(365),
    }
}

/// A record id as ingest makes them (32 hex characters).
fn record_id(i: u64) -> String {
    format!(
        "{:032x}",
        u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
}

/// A person key as the router makes them (`p2_` and 32 hex characters) of resident `n`.
fn person_key(n: u64) -> String {
    format!(
        "p2_{:032x}",
        u128::from(n).wrapping_mul(0x2545_f491_4f6c_dd1d_9e37_79b9_7f4a_7c15)
    )
}

/// A bare audit log on a fresh embedded bus under `dir`.
async fn fresh_log(dir: &Path) -> Result<(Arc<dyn Bus>, AuditLog, Arc<SigningKey>), BenchError> {
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(&dir.join("bus")).map_err(failed)?);
    let key = Arc::new(SigningKey::generate(Suite::Gm));
    let log = AuditLog::open(bus.clone(), AUDIT_TOPIC, "bench", key.clone())
        .await
        .map_err(failed)?;
    Ok((bus, log, key))
}

/// Writes `records` records, record `i` naming the resident `resident(i)` and released to `fan_out` subscriptions
/// from a window that moves with `i` — or, at fan-out 1, to one subscription, as a backfill is; returns the
/// releases written.
async fn write_releases(
    bus: &dyn Bus,
    log: &AuditLog,
    records: u64,
    fan_out: usize,
    resident: impl Fn(u64) -> u64,
    mut progress: impl FnMut(u64),
) -> Result<u64, BenchError> {
    let all_terms: Vec<Arc<SharedTerms>> = (0..SUBSCRIPTIONS)
        .map(|i| SharedTerms::new(terms(i)))
        .collect();
    let mut written = 0u64;
    let mut i = 0u64;
    while i < records {
        let end = (i + RECORDS_PER_APPEND as u64).min(records);
        let mut releases = Vec::with_capacity((end - i) as usize * fan_out);
        for r in i..end {
            let persons: Arc<[String]> = Arc::from(vec![person_key(resident(r))]);
            let first = if fan_out == 1 {
                0
            } else {
                (r as usize).wrapping_mul(97) % SUBSCRIPTIONS
            };
            for k in 0..fan_out {
                releases.push(Release {
                    record_id: record_id(r).into(),
                    persons: persons.clone(),
                    terms: all_terms[(first + k) % SUBSCRIPTIONS].clone(),
                    history: fan_out == 1,
                });
            }
        }
        written += releases.len() as u64;
        let mut chained = log.chain_releases(&releases).await.map_err(failed)?;
        bus.publish_all(vec![chained.take_entries()])
            .await
            .map_err(failed)?;
        chained.written();
        i = end;
        progress(i);
    }
    Ok(written)
}

/// Bytes per release as batched evidence.
#[derive(Clone, Debug)]
pub struct EvidenceSize {
    /// Subscriptions each record went to.
    pub fan_out: usize,
    /// Releases written.
    pub releases: u64,
    /// Stored bytes of the audit topic per release.
    pub bytes_per_release: f64,
}

/// Releases `records` records to `fan_out` subscriptions each and measures the audit topic's bytes per release
/// in the steady state: the records are released once beforehand, so every subscription's terms are already
/// written (as in a hub that has run a while) and what is measured is the batches alone.
pub async fn evidence_bytes(
    scratch: &super::Scratch,
    records: u64,
    fan_out: usize,
) -> Result<EvidenceSize, BenchError> {
    let dir = scratch.dir()?;
    let (bus, log, _key) = fresh_log(dir.path()).await?;
    let resident = |r: u64| r.wrapping_mul(7919);
    write_releases(bus.as_ref(), &log, records, fan_out, resident, |_| {}).await?;
    let before = topic_bytes(bus.as_ref()).await?;
    let releases = write_releases(bus.as_ref(), &log, records, fan_out, resident, |_| {}).await?;
    let after = topic_bytes(bus.as_ref()).await?;
    Ok(EvidenceSize {
        fan_out,
        releases,
        bytes_per_release: (after.0 - before.0) as f64 / releases.max(1) as f64,
    })
}

/// The baseline: bytes per release written one signed entry per release (the evidence before batching), in
/// appends of 500.
pub async fn bytes_per_release_entry(
    scratch: &super::Scratch,
    releases: u64,
) -> Result<f64, BenchError> {
    let dir = scratch.dir()?;
    let (bus, log, _key) = fresh_log(dir.path()).await?;
    let before = topic_bytes(bus.as_ref()).await?;
    let mut written = 0u64;
    while written < releases {
        let batch: Vec<AuditEvent> = (written..(written + 500).min(releases))
            .map(|i| {
                let t = terms(i as usize % SUBSCRIPTIONS);
                AuditEvent::Release {
                    record_id: record_id(i),
                    schema: t.schema,
                    subscription: t.subscription,
                    agency: t.agency,
                    fields: t.fields,
                    purpose: t.purpose,
                    view_schema_id: t.view_schema_id,
                    channel: t.channel,
                    person_keys: vec![person_key(i)],
                    history: false,
                    retain_days: t.retain_days,
                }
            })
            .collect();
        written += batch.len() as u64;
        log.append(batch).await.map_err(failed)?;
    }
    let after = topic_bytes(bus.as_ref()).await?;
    Ok((after.0 - before.0) as f64 / releases.max(1) as f64)
}

/// The person report over a large log.
#[derive(Clone, Debug)]
pub struct PersonReportAtSize {
    /// Releases in the log.
    pub releases: u64,
    /// Records they release.
    pub records: u64,
    /// Residents the records name.
    pub residents: u64,
    /// Seconds to write the evidence.
    pub write_s: f64,
    /// Records per second the index read while first built.
    pub index_records_per_s: f64,
    /// Entries the index read when opened again (0: it resumed where it stood).
    pub read_after_restart: u64,
    /// Bytes the index takes on disk, per release.
    pub index_bytes_per_release: f64,
    /// Releases per report, on average.
    pub releases_per_report: f64,
    /// Median report time (ms).
    pub p50_ms: f64,
    /// 99th percentile report time (ms).
    pub p99_ms: f64,
}

/// Writes about `releases` releases (records to `fan_out` subscriptions, each naming one of `residents`), builds
/// the person index, opens it again and times `reports` person reports.
pub async fn person_report_at_size(
    scratch: &super::Scratch,
    releases: u64,
    fan_out: usize,
    residents: u64,
    reports: usize,
) -> Result<PersonReportAtSize, BenchError> {
    let dir = scratch.dir()?;
    let (bus, log, key) = fresh_log(dir.path()).await?;
    let records = releases / fan_out.max(1) as u64;
    let resident = |r: u64| r.wrapping_mul(0x9e37_79b9) % residents;
    let started = Instant::now();
    let mut shown = 0;
    let releases = write_releases(bus.as_ref(), &log, records, fan_out, resident, |done| {
        let tenth = done * 10 / records.max(1);
        if tenth > shown {
            shown = tenth;
            eprintln!("bench:   evidence written for {done} of {records} records…");
        }
    })
    .await?;
    let write_s = started.elapsed().as_secs_f64();
    let keys = TrustedKeys::new(Some(("bench", &key)), &Default::default());
    let index_dir = dir.path().join("index");
    let index_records_per_s = {
        let index = PersonIndex::open(&index_dir, AUDIT_TOPIC, &keys, Default::default())
            .map_err(failed)?;
        let started = Instant::now();
        index.catch_up(bus.as_ref()).await.map_err(failed)?;
        records as f64 / started.elapsed().as_secs_f64().max(1e-9)
    };
    // As after a restart: the index opens from disk and resumes where it stood.
    let index =
        PersonIndex::open(&index_dir, AUDIT_TOPIC, &keys, Default::default()).map_err(failed)?;
    let index_bytes = index.flushed_bytes().map_err(failed)?;
    let mut times = Vec::with_capacity(reports);
    let mut found = 0usize;
    for n in 0..reports as u64 {
        let who = person_key(n.wrapping_mul(0x2545_f491) % residents);
        let started = Instant::now();
        let answer = index
            .releases_of(bus.as_ref(), &who)
            .await
            .map_err(failed)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        found += answer.entries.len();
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Ok(PersonReportAtSize {
        releases,
        records,
        residents,
        write_s,
        index_records_per_s,
        read_after_restart: index.entries_read(),
        index_bytes_per_release: index_bytes as f64 / releases.max(1) as f64,
        releases_per_report: found as f64 / reports.max(1) as f64,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    })
}

/// The stored bytes (values, keys, headers) and the number of the records of the audit topic.
async fn topic_bytes(bus: &dyn Bus) -> Result<(u64, u64), BenchError> {
    let records = unsilo_hub::audit::read_all(bus, AUDIT_TOPIC)
        .await
        .map_err(failed)?;
    let bytes = records
        .iter()
        .map(|r| {
            r.record.value.as_ref().map_or(0, |v| v.len() as u64)
                + r.record.key.as_ref().map_or(0, |k| k.len() as u64)
                + r.record
                    .headers
                    .iter()
                    .map(|h| (h.name.len() + h.value.len()) as u64)
                    .sum::<u64>()
        })
        .sum();
    Ok((bytes, records.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batched_evidence_is_smaller_than_an_entry_per_release_and_the_report_finds_it() {
        let scratch = super::super::Scratch::under(None).expect("scratch");
        let live = evidence_bytes(&scratch, 300, 50).await.expect("live");
        let backfill = evidence_bytes(&scratch, 2_000, 1).await.expect("backfill");
        let one_each = bytes_per_release_entry(&scratch, 2_000)
            .await
            .expect("baseline");
        assert_eq!(live.releases, 15_000);
        // So few records to so many subscriptions are mostly the first writing of each subscription's terms.
        assert!(
            live.bytes_per_release < one_each / 2.0,
            "{live:?} against {one_each}"
        );
        assert!(
            backfill.bytes_per_release <= 64.0,
            "{backfill:?} against {one_each}"
        );
        let report = person_report_at_size(&scratch, 20_000, 20, 100, 20)
            .await
            .expect("report");
        assert_eq!(report.records, 1_000);
        assert_eq!(report.read_after_restart, 0, "{report:?}");
        // 1,000 records over 100 residents, 20 releases each: 200 releases per report on average.
        assert!(
            (150.0..250.0).contains(&report.releases_per_report),
            "{report:?}"
        );
    }
}
