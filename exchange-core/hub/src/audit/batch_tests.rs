//! Tests of batched release evidence: no release a batch records is lost to the audit query, the person index,
//! the period report or an export; the on-disk person index resumes after a restart without reading the log
//! again; and a batch that does not inflate is reported, never panicked on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::audit::person::PersonIndex;
use crate::audit::{
    export, query, read_all, verified_between, verify_records, AuditLog, AuditQuery, SigningKey,
    TrustedKeys,
};
use unsilo_bus::embedded::EmbeddedBus;
use unsilo_bus::{Bus, ConsumedRecord, Position};
use unsilo_policy::model::Treatment;
use unsilo_schemas::crypto::Suite;
use unsilo_schemas::names::{AUDIT_TOPIC, HEADER_AUDIT_HASH};

/// The terms of subscription `n`: three agencies, a view schema each.
fn terms(n: usize) -> Arc<SharedTerms> {
    SharedTerms::new(ReleaseTerms {
        schema: "grid_event".into(),
        subscription: format!("agency-{}.s{n}", n % 3),
        agency: format!("agency-{}", n % 3),
        fields: vec![
            FieldRule {
                field: "event_no".into(),
                treatment: Treatment::Clear,
            },
            FieldRule {
                field: "reporter.cert_no".into(),
                treatment: Treatment::Pseudonymise,
            },
        ],
        purpose: format!("purpose {n}"),
        view_schema_id: 100 + n as i32,
        channel: "pull".into(),
        retain_days: n.is_multiple_of(2).then_some(30),
    })
}

fn person(n: u32) -> String {
    format!("p1_{n:032x}")
}

/// Record `r{i}` names persons `i % 40` and `(i + 7) % 40` (none when `i % 10 == 9`) and goes to subscriptions
/// `i % 8 ..= i % 8 + i % 4` (one to four of them); odd records come from history.
fn releases(records: std::ops::Range<u32>, subs: &[Arc<SharedTerms>]) -> Vec<Release> {
    let mut out = Vec::new();
    for i in records {
        let persons: Arc<[String]> = if i % 10 == 9 {
            Arc::from(Vec::new())
        } else {
            Arc::from(vec![person(i % 40), person((i + 7) % 40)])
        };
        for terms in &subs[(i % 8) as usize..=(i % 8 + i % 4) as usize] {
            out.push(Release {
                record_id: format!("r{i}").into(),
                persons: persons.clone(),
                terms: terms.clone(),
                history: i % 2 == 1,
            });
        }
    }
    out
}

/// `(record, subscription)` of every release naming `who` (every release when `None`).
fn expected(all: &[Release], who: Option<&str>) -> BTreeSet<(String, String)> {
    all.iter()
        .filter(|r| who.is_none_or(|p| r.persons.iter().any(|q| q == p)))
        .map(|r| {
            (
                r.record_id.to_string(),
                r.terms.terms().subscription.clone(),
            )
        })
        .collect()
}

/// `(record, subscription)` of the release entries among `entries`.
fn found(entries: &[AuditEntry]) -> Vec<(String, String)> {
    entries
        .iter()
        .filter_map(|e| match &e.body.event {
            AuditEvent::Release {
                record_id,
                subscription,
                ..
            } => Some((record_id.clone(), subscription.clone())),
            _ => None,
        })
        .collect()
}

async fn write(log: &AuditLog, releases: &[Release]) {
    let mut chained = log.chain_releases(releases).await.unwrap();
    log.bus()
        .publish_all(vec![chained.take_entries()])
        .await
        .unwrap();
    chained.written();
}

struct Hub {
    dir: tempfile::TempDir,
    bus: Arc<dyn Bus>,
    key: Arc<SigningKey>,
    subs: Vec<Arc<SharedTerms>>,
}

impl Hub {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(&dir.path().join("bus")).unwrap());
        Self {
            dir,
            bus,
            key: Arc::new(SigningKey::generate(Suite::International)),
            subs: (0..12).map(terms).collect(),
        }
    }

    async fn log(&self) -> AuditLog {
        AuditLog::open(self.bus.clone(), AUDIT_TOPIC, "hub-a", self.key.clone())
            .await
            .unwrap()
    }

    fn keys(&self) -> TrustedKeys {
        TrustedKeys::new(Some(("hub-a", &self.key)), &BTreeMap::new())
    }

    fn index(&self) -> PersonIndex {
        PersonIndex::open(
            &self.dir.path().join("index"),
            AUDIT_TOPIC,
            &self.keys(),
            Default::default(),
        )
        .unwrap()
    }
}

#[tokio::test]
async fn every_release_of_a_batch_is_found_by_query_person_index_and_period_report() {
    let hub = Hub::new().await;
    let all = releases(0..600, &hub.subs);
    let log = hub.log().await;
    write(&log, &all[..700]).await;
    write(&log, &all[700..1200]).await;
    drop(log);
    // A restarted writer writes the terms it uses again, under new seqs; both are found.
    let log = hub.log().await;
    write(&log, &all[1200..]).await;

    let records = read_all(hub.bus.as_ref(), AUDIT_TOPIC).await.unwrap();
    let report = verify_records(&records, &hub.keys(), &[]);
    assert!(report.is_intact(), "{:?}", report.problems);
    let batches = records
        .iter()
        .filter(|r| r.record.header(HEADER_AUDIT_ENCODING).is_some())
        .count();
    assert!(
        (3..10).contains(&batches),
        "{batches} deflated batch entries"
    );

    // The period report counts every release once.
    let mut entries = Vec::new();
    let unverified = verified_between(
        hub.bus.as_ref(),
        AUDIT_TOPIC,
        &hub.keys(),
        0,
        i64::MAX,
        |e| entries.push(e),
    )
    .await
    .unwrap();
    assert_eq!(unverified, 0);
    let period = found(&entries);
    assert_eq!(period.len(), all.len());
    assert_eq!(
        period.iter().cloned().collect::<BTreeSet<_>>(),
        expected(&all, None)
    );

    let index = hub.index();
    for p in [0, 7, 13, 39] {
        let who = person(p);
        let want = expected(&all, Some(&who));
        assert!(!want.is_empty());
        let answer = query(
            hub.bus.as_ref(),
            AUDIT_TOPIC,
            &hub.keys(),
            &AuditQuery {
                person_key: Some(who.clone()),
                limit: Some(100_000),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
        let by_query = found(&answer.entries);
        assert_eq!(by_query.len(), want.len(), "person {p} by query");
        assert_eq!(by_query.into_iter().collect::<BTreeSet<_>>(), want);
        let by_index = index.releases_of(hub.bus.as_ref(), &who).await.unwrap();
        let releases = found(&by_index.entries);
        assert_eq!(releases.len(), want.len(), "person {p} by index");
        assert_eq!(releases.into_iter().collect::<BTreeSet<_>>(), want);
        // Each release carries its terms and the batch entry's place in the chain.
        for e in &by_index.entries {
            let AuditEvent::Release {
                record_id,
                subscription,
                fields,
                purpose,
                history,
                person_keys,
                retain_days,
                view_schema_id,
                ..
            } = &e.body.event
            else {
                panic!("not a release");
            };
            let n: usize = subscription.rsplit('s').next().unwrap().parse().unwrap();
            let t = terms(n);
            assert_eq!(fields, &t.terms().fields);
            assert_eq!(purpose, &t.terms().purpose);
            assert_eq!(retain_days, &t.terms().retain_days);
            assert_eq!(*view_schema_id, t.terms().view_schema_id);
            let i: u32 = record_id[1..].parse().unwrap();
            assert_eq!(*history, i % 2 == 1);
            assert!(person_keys.contains(&who));
            let stored = records
                .iter()
                .find(|r| r.position.offset == e.offset)
                .unwrap();
            assert_eq!(
                stored.record.header(HEADER_AUDIT_HASH).unwrap(),
                e.hash.as_bytes()
            );
        }
    }

    // By record and by subscription.
    let r42 = query(
        hub.bus.as_ref(),
        AUDIT_TOPIC,
        &hub.keys(),
        &AuditQuery {
            record_id: Some("r42".into()),
            ..AuditQuery::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(found(&r42.entries).len(), 42 % 4 + 1);
    let sub = hub.subs[5].terms().subscription.clone();
    let to_sub = query(
        hub.bus.as_ref(),
        AUDIT_TOPIC,
        &hub.keys(),
        &AuditQuery {
            subscription: Some(sub.clone()),
            limit: Some(100_000),
            ..AuditQuery::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        found(&to_sub.entries).len(),
        all.iter()
            .filter(|r| r.terms.terms().subscription == sub)
            .count()
    );

    // An export of the period verifies offline, batches and all.
    let bundle = export::export(hub.bus.as_ref(), &log, &hub.keys(), 0, i64::MAX)
        .await
        .unwrap();
    let checked = export::verify_export(&bundle, Some(&log.public_key())).unwrap();
    assert!(checked.report.is_intact(), "{:?}", checked.report.problems);
    assert_eq!(checked.entries, records.len());
}

#[tokio::test]
async fn the_person_index_resumes_after_a_restart_without_reading_the_log_again() {
    let hub = Hub::new().await;
    let all = releases(0..2_000, &hub.subs);
    let log = hub.log().await;
    for chunk in all[..4_000].chunks(400) {
        write(&log, chunk).await;
    }
    let who = person(11);
    let first_count = {
        let index = hub.index();
        let answer = index.releases_of(hub.bus.as_ref(), &who).await.unwrap();
        let entries = read_all(hub.bus.as_ref(), AUDIT_TOPIC).await.unwrap().len() as u64;
        assert_eq!(index.entries_read(), entries);
        answer.entries.len()
    };
    assert_eq!(first_count, expected(&all[..4_000], Some(&who)).len());

    // The hub stops; more is written; the index opens again and reads only what is new.
    let before = read_all(hub.bus.as_ref(), AUDIT_TOPIC).await.unwrap().len() as u64;
    write(&log, &all[4_000..]).await;
    let after = read_all(hub.bus.as_ref(), AUDIT_TOPIC).await.unwrap().len() as u64;
    let index = hub.index();
    let answer = index.releases_of(hub.bus.as_ref(), &who).await.unwrap();
    assert_eq!(
        index.entries_read(),
        after - before,
        "a restarted index reads only the entries written since it last stood"
    );
    assert_eq!(
        found(&answer.entries).into_iter().collect::<BTreeSet<_>>(),
        expected(&all, Some(&who))
    );
    assert_eq!(answer.entries.len(), expected(&all, Some(&who)).len());
    drop(index);

    // A different log under the same index directory (the topic was recreated): the index is rebuilt from it,
    // and nothing of the old log is reported.
    let other_bus = tempfile::tempdir().unwrap();
    let other = Hub {
        dir: hub.dir,
        bus: Arc::new(EmbeddedBus::open(other_bus.path()).unwrap()),
        key: hub.key.clone(),
        subs: hub.subs.clone(),
    };
    let new_log = other.log().await;
    write(&new_log, &all[..10]).await;
    let index = other.index();
    let answer = index.releases_of(other.bus.as_ref(), &who).await.unwrap();
    assert_eq!(
        found(&answer.entries).into_iter().collect::<BTreeSet<_>>(),
        expected(&all[..10], Some(&who))
    );
}

fn stored(value: Vec<u8>, encoding: &str) -> ConsumedRecord {
    let hash = Suite::International.chain_hash(&value);
    ConsumedRecord {
        position: Position {
            topic: AUDIT_TOPIC.into(),
            partition: 0,
            offset: 0,
        },
        record: unsilo_bus::Record::new(b"hub-a".to_vec(), value)
            .with_header(HEADER_AUDIT_HASH, hash.into_bytes())
            .with_header(HEADER_AUDIT_ENCODING, encoding.as_bytes().to_vec()),
    }
}

#[test]
fn a_batch_that_does_not_inflate_is_reported_never_panicked_on() {
    let keys = TrustedKeys::new(None, &BTreeMap::new());
    let garbage = stored(b"not deflate at all".to_vec(), DEFLATE);
    let report = verify_records(std::slice::from_ref(&garbage), &keys, &[]);
    assert!(
        report.problems[0].message.contains("does not inflate"),
        "{:?}",
        report.problems
    );
    assert!(crate::audit::decode(&garbage).is_none());

    let unknown = stored(b"{}".to_vec(), "zstd");
    let report = verify_records(std::slice::from_ref(&unknown), &keys, &[]);
    assert!(
        report.problems[0]
            .message
            .contains("unknown unsilo.audit.encoding `zstd`"),
        "{:?}",
        report.problems
    );

    // A deflate bomb is refused at the limit, not inflated.
    let bomb = deflate(&vec![b' '; (MAX_INFLATED_BYTES + 1) as usize]).unwrap();
    assert!(bomb.len() < 1 << 20);
    let bomb = stored(bomb, DEFLATE);
    let error = entry_json(&bomb.record).unwrap_err();
    assert!(error.contains("inflates past"), "{error}");
}
