//! Tests of the audit log: chaining, signing, verification, checkpoints and queries.

use super::*;
use unsilo_bus::embedded::EmbeddedBus;
use unsilo_policy::model::Treatment;
use unsilo_schemas::crypto::Suite;
use unsilo_schemas::names::AUDIT_TOPIC;

fn release(n: u32) -> AuditEvent {
    AuditEvent::Release {
        record_id: format!("r{n}"),
        schema: "grid_event".into(),
        subscription: "civil-affairs.red".into(),
        agency: "civil-affairs".into(),
        fields: vec![FieldRule {
            field: "care_level".into(),
            treatment: Treatment::Clear,
        }],
        purpose: "care".into(),
        view_schema_id: 7,
        channel: "pull".into(),
        person_keys: vec![format!("p1_{n:032x}")],
        history: n % 2 == 1,
        retain_days: Some(30),
    }
}

struct Written {
    _dir: tempfile::TempDir,
    bus: Arc<dyn Bus>,
    log: Arc<AuditLog>,
    key: Arc<SigningKey>,
    /// Entry 0 is the hub's `audit.key` entry; entry i (1..=n) is the release of record `r{i-1}`.
    records: Vec<ConsumedRecord>,
}

impl Written {
    fn keys(&self) -> TrustedKeys {
        TrustedKeys::new(Some(("hub-a", &self.key)), &BTreeMap::new())
    }
}

async fn written(n: u32) -> Written {
    let dir = tempfile::tempdir().unwrap();
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(dir.path()).unwrap());
    let key = Arc::new(SigningKey::generate(Suite::International));
    let log = Arc::new(
        AuditLog::open(bus.clone(), AUDIT_TOPIC, "hub-a", key.clone())
            .await
            .unwrap(),
    );
    for i in 0..n {
        log.append(vec![release(i)]).await.unwrap();
    }
    let records = read_all(bus.as_ref(), AUDIT_TOPIC).await.unwrap();
    Written {
        _dir: dir,
        bus,
        log,
        key,
        records,
    }
}

fn unsigned(mut r: ConsumedRecord) -> ConsumedRecord {
    r.record
        .headers
        .retain(|h| h.name != HEADER_AUDIT_SIGNATURE);
    r
}

#[tokio::test]
async fn an_intact_log_verifies_and_a_reopened_writer_continues_the_chain() {
    let w = written(5).await;
    let report = verify_records(&w.records, &w.keys(), &[]);
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 6);
    assert_eq!(report.chains["hub-a"].seq, 6);
    assert_eq!(report.chains["hub-a"].signed_through, 6);
    assert_eq!(report.chains["hub-a"].key_source, Some(KeySource::Pinned));
    let log = AuditLog::open(w.bus.clone(), AUDIT_TOPIC, "hub-a", w.key.clone())
        .await
        .unwrap();
    assert_eq!(
        log.head().await.seq,
        7,
        "the reopened writer published its key again"
    );
    log.append(vec![release(9)]).await.unwrap();
    let report = verify(w.bus.as_ref(), AUDIT_TOPIC, &w.keys(), &[])
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.chains["hub-a"].seq, 8);
    // Without a pinned key the chain's published key is used, with a warning.
    let report = verify(w.bus.as_ref(), AUDIT_TOPIC, &TrustedKeys::default(), &[])
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(
        report.chains["hub-a"].key_source,
        Some(KeySource::PublishedInChain)
    );
    assert_eq!(report.warnings.len(), 1);
}

#[tokio::test]
async fn edits_removals_and_reorderings_are_detected() {
    let w = written(6).await;
    let keys = w.keys();
    let records = &w.records;
    // Edited: the record id of entry 3 (r2) changed, hash header left alone.
    let mut edited = records.clone();
    let body = String::from_utf8(edited[3].record.value.clone().unwrap()).unwrap();
    edited[3].record.value = Some(body.replace("\"r2\"", "\"r9\"").into_bytes());
    let report = verify_records(&edited, &keys, &[]);
    assert!(!report.is_intact());
    assert!(
        report.problems[0].message.contains("edited"),
        "{:?}",
        report.problems
    );
    assert_eq!(report.problems[0].offset, 3);

    // Removed: entry 4 gone.
    let mut removed = records.clone();
    removed.remove(4);
    let report = verify_records(&removed, &keys, &[]);
    assert!(report
        .problems
        .iter()
        .any(|p| p.message.contains("removed")));

    // Reordered: entries 2 and 3 swapped.
    let mut swapped = records.clone();
    swapped.swap(2, 3);
    assert!(!verify_records(&swapped, &keys, &[]).is_intact());

    // Edited and re-hashed (a writer without the key): the signature no longer verifies.
    let mut rehashed = records.clone();
    let body = String::from_utf8(rehashed[3].record.value.clone().unwrap()).unwrap();
    let forged = body.replace("\"r2\"", "\"r9\"").into_bytes();
    let hash = Suite::International.chain_hash(&forged);
    rehashed[3].record.value = Some(forged);
    for h in &mut rehashed[3].record.headers {
        if h.name == HEADER_AUDIT_HASH {
            h.value = hash.clone().into_bytes();
        }
    }
    let report = verify_records(&rehashed, &keys, &[]);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("signature does not verify")),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems.iter().any(|p| p.message.contains("prev")),
        "{:?}",
        report.problems
    );
}

/// What an ordinary Kafka client could append: the next seq, prev = the head's hash, a matching hash header.
fn forge(records: &[ConsumedRecord], signature: Option<String>) -> ConsumedRecord {
    let last = records.last().unwrap().clone();
    let head = decode(&last).unwrap();
    let body = EntryBody {
        hub: "hub-a".into(),
        seq: head.body.seq + 1,
        prev: head.hash.clone(),
        time_ms: head.body.time_ms + 1,
        event: release(77),
    };
    let bytes = serde_json::to_vec(&body).unwrap();
    let hash = Suite::International.chain_hash(&bytes);
    let mut record =
        Record::new(b"hub-a".to_vec(), bytes).with_header(HEADER_AUDIT_HASH, hash.into_bytes());
    if let Some(s) = signature {
        record = record.with_header(HEADER_AUDIT_SIGNATURE, s.into_bytes());
    }
    let mut forged = last;
    forged.record = record;
    forged.position.offset += 1;
    forged
}

#[tokio::test]
async fn entries_forged_without_the_hubs_key_are_reported() {
    let w = written(3).await;
    let keys = w.keys();
    let mut with_forgery = w.records.clone();
    with_forgery.push(forge(&w.records, None));
    let report = verify_records(&with_forgery, &keys, &[]);
    assert!(!report.is_intact());
    assert!(
        report.problems[0]
            .message
            .contains("not covered by a valid signature"),
        "{:?}",
        report.problems
    );
    assert_eq!(report.problems[0].offset, 4);

    // Signed, but with another key.
    let other = SigningKey::generate(Suite::International);
    let mut signed_by_other = w.records.clone();
    let f = forge(&w.records, None);
    let entry = decode(&f).unwrap();
    let sig = other.sign_hex(&signing::entry_message(
        "hub-a",
        entry.body.seq,
        entry.body.seq,
        &entry.hash,
    ));
    signed_by_other.push(forge(&w.records, Some(sig)));
    let report = verify_records(&signed_by_other, &keys, &[]);
    assert!(
        report.problems.iter().any(|p| p.message.contains("forged")),
        "{:?}",
        report.problems
    );

    // A stripped signature leaves the entries before it uncovered.
    let mut stripped = w.records.clone();
    let last = stripped.pop().unwrap();
    stripped.push(unsigned(last));
    assert!(!verify_records(&stripped, &keys, &[]).is_intact());
}

#[tokio::test]
async fn a_cut_off_tail_and_a_rewritten_chain_contradict_the_checkpoints() {
    let w = written(4).await;
    let cp = w.log.checkpoint().await.unwrap().expect("the chain moved");
    assert_eq!(cp.seq, 5);
    assert!(w.log.checkpoint().await.unwrap().is_none(), "nothing new");
    let keys = w.keys();
    let report = verify(w.bus.as_ref(), AUDIT_TOPIC, &keys, &[])
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.checkpoints, 1);
    assert_eq!(report.chains["hub-a"].checkpoint, Some((5, cp.time_ms)));

    // The last two entries removed: still a valid, signed chain, but shorter than the checkpoint.
    let cut = &w.records[..4];
    let report = verify_records(cut, &keys, std::slice::from_ref(&cp));
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("cut off")),
        "{:?}",
        report.problems
    );
    // A checkpoint that does not match the entry at its seq.
    let mut wrong = cp.clone();
    wrong.hash = "0".repeat(64);
    let report = verify_records(&w.records, &keys, std::slice::from_ref(&wrong));
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("not signed")),
        "{:?}",
        report.problems
    );
    wrong.signature = w.key.sign_hex(&Checkpoint::message(
        &wrong.hub,
        wrong.seq,
        &wrong.hash,
        wrong.time_ms,
    ));
    let report = verify_records(&w.records, &keys, &[wrong]);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("rewritten")),
        "{:?}",
        report.problems
    );
    // The whole chain gone: the checkpoint still says it existed.
    let report = verify_records(&[], &keys, std::slice::from_ref(&cp));
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("missing from the log")),
        "{:?}",
        report.problems
    );
    // Exported checkpoints parse back.
    let line = serde_json::to_string(&cp).unwrap();
    assert_eq!(
        Checkpoint::parse_lines(&format!("{line}\n\n")).unwrap(),
        vec![cp]
    );
    assert_eq!(Checkpoint::parse_lines("{").unwrap_err().line, 1);
}

#[tokio::test]
async fn queries_find_releases_by_record_and_person() {
    let w = written(4).await;
    let bus = w.bus.clone();
    let keys = w.keys();
    let by_record = query(
        bus.as_ref(),
        AUDIT_TOPIC,
        &keys,
        &AuditQuery {
            record_id: Some("r1".into()),
            ..AuditQuery::default()
        },
    )
    .await
    .unwrap()
    .entries;
    assert_eq!(by_record.len(), 1);
    let by_person = query(
        bus.as_ref(),
        AUDIT_TOPIC,
        &keys,
        &AuditQuery {
            person_key: Some(format!("p1_{:032x}", 3)),
            ..AuditQuery::default()
        },
    )
    .await
    .unwrap()
    .entries;
    assert_eq!(by_person.len(), 1);
    assert!(
        matches!(&by_person[0].body.event, AuditEvent::Release { record_id, .. } if record_id == "r3")
    );
    let none = query(
        bus.as_ref(),
        AUDIT_TOPIC,
        &keys,
        &AuditQuery {
            agency: Some("public-security".into()),
            ..AuditQuery::default()
        },
    )
    .await
    .unwrap()
    .entries;
    assert!(none.is_empty());
}

/// Appends `forged` to the log as an ordinary producer would (no key).
async fn append_raw(bus: &dyn Bus, forged: ConsumedRecord) {
    bus.publish(AUDIT_TOPIC, vec![forged.record]).await.unwrap();
}

#[tokio::test]
async fn a_forged_tail_is_disowned_at_open_never_signed_over_and_left_out_of_answers() {
    let w = written(3).await;
    let keys = w.keys();
    // While the hub is stopped, a writer with produce access appends the next entry: right seq, right prev,
    // matching hash header — a release about person 77.
    let forged = forge(&w.records, None);
    let forged_offset = forged.position.offset;
    append_raw(w.bus.as_ref(), forged).await;
    drop(w.log);

    // The hub restarts: it must not adopt the forged entry as its head.
    let log = AuditLog::open(w.bus.clone(), AUDIT_TOPIC, "hub-a", w.key.clone())
        .await
        .unwrap();
    let tail = log.disowned_tail().expect("the forged tail is found");
    assert_eq!((tail.verified_seq, tail.last_seq), (4, 5));
    assert_eq!(tail.offsets, (forged_offset, forged_offset));
    log.append(vec![release(8)]).await.unwrap();

    let records = read_all(w.bus.as_ref(), AUDIT_TOPIC).await.unwrap();
    // The disowning entry continues from the hub's own last entry, not from the forgery.
    let disown = decode(&records[forged_offset as usize + 1]).unwrap();
    assert!(
        matches!(&disown.body.event, AuditEvent::Control { action, .. } if action == DISOWN_ACTION)
    );
    assert_eq!(disown.body.prev, decode(&records[3]).unwrap().hash);
    assert_eq!(disown.body.seq, 6);

    // `audit verify` still reports the forgery, and only the forgery.
    let report = verify(w.bus.as_ref(), AUDIT_TOPIC, &keys, &[])
        .await
        .unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].message.contains("not covered"));
    assert_eq!(report.problems[0].offset, forged_offset);
    assert_eq!(report.chains["hub-a"].signed_through, 8);

    // Answers come only from verified entries, and say what was left out.
    let answer = query(
        w.bus.as_ref(),
        AUDIT_TOPIC,
        &keys,
        &AuditQuery {
            person_key: Some(format!("p1_{:032x}", 77)),
            ..AuditQuery::default()
        },
    )
    .await
    .unwrap();
    assert!(answer.entries.is_empty());
    assert_eq!(answer.unverified_matches, 1);
    assert_eq!(answer.unverified_in_log, 1);
    let index_dir = tempfile::tempdir().unwrap();
    let index = person::PersonIndex::open(index_dir.path(), AUDIT_TOPIC, &keys, Default::default())
        .unwrap();
    let found = index
        .releases_of(w.bus.as_ref(), &format!("p1_{:032x}", 77))
        .await
        .unwrap();
    assert!(found.entries.is_empty());
    assert_eq!(found.unverified_in_log, 1);
    let genuine = index
        .releases_of(w.bus.as_ref(), &format!("p1_{:032x}", 8))
        .await
        .unwrap();
    assert_eq!(genuine.entries.len(), 1);

    // A third start finds nothing new to disown: the forged entry is behind the hub's verified head.
    let again = AuditLog::open(w.bus.clone(), AUDIT_TOPIC, "hub-a", w.key.clone())
        .await
        .unwrap();
    assert!(again.disowned_tail().is_none());
    let report = verify(w.bus.as_ref(), AUDIT_TOPIC, &keys, &[])
        .await
        .unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
}

#[tokio::test]
async fn a_signature_after_a_forged_entry_does_not_vouch_for_it() {
    // The running hub's next append follows a forged entry: its signature covers its own append only.
    let w = written(2).await;
    let forged = forge(&w.records, None);
    let forged_offset = forged.position.offset;
    append_raw(w.bus.as_ref(), forged).await;
    w.log.append(vec![release(5), release(6)]).await.unwrap();
    let report = verify(w.bus.as_ref(), AUDIT_TOPIC, &w.keys(), &[])
        .await
        .unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.offset == forged_offset && p.message.contains("not covered")),
        "{:?}",
        report.problems
    );
    let answer = query(
        w.bus.as_ref(),
        AUDIT_TOPIC,
        &w.keys(),
        &AuditQuery::default(),
    )
    .await
    .unwrap();
    assert_eq!(answer.unverified_in_log, 1);
    assert!(answer.entries.iter().all(|e| e.offset != forged_offset));
    assert_eq!(answer.entries.len(), 5);
}

#[tokio::test]
async fn a_checkpoint_bounds_what_the_hub_reads_at_open() {
    let w = written(3).await;
    w.log.checkpoint().await.unwrap().expect("a checkpoint");
    w.log.append(vec![release(4)]).await.unwrap();
    let forged = forge(&read_all(w.bus.as_ref(), AUDIT_TOPIC).await.unwrap(), None);
    append_raw(w.bus.as_ref(), forged).await;
    let log = AuditLog::open(w.bus.clone(), AUDIT_TOPIC, "hub-a", w.key.clone())
        .await
        .unwrap();
    let tail = log.disowned_tail().expect("found past the checkpoint");
    assert_eq!((tail.verified_seq, tail.entries), (5, 1));
}
