//! The shared bus test body run against the embedded bus, plus what only the embedded bus promises:
//! records and committed offsets survive a restart, and acknowledged records survive a `kill -9`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use unsilo_bus::embedded::EmbeddedBus;
use unsilo_bus::testkit::{self, BusFactory};
use unsilo_bus::{Bus, ConsumerOptions, Error, FetchRequest, Record, Retention, TopicSpec};

struct EmbeddedFactory {
    dir: PathBuf,
}

#[async_trait]
impl BusFactory for EmbeddedFactory {
    async fn open(&self) -> Arc<dyn Bus> {
        Arc::new(EmbeddedBus::open(&self.dir).expect("open embedded bus"))
    }
}

fn temp_bus() -> (tempfile::TempDir, EmbeddedBus) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path()).expect("open");
    (dir, bus)
}

#[tokio::test]
async fn keys_headers_and_order() {
    let (_dir, bus) = temp_bus();
    testkit::keys_headers_and_order(&bus).await;
}

#[tokio::test]
async fn group_members_split_partitions() {
    let (_dir, bus) = temp_bus();
    testkit::group_members_split_partitions(&bus).await;
}

#[tokio::test]
async fn restarted_consumer_resumes_from_committed_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let factory = EmbeddedFactory {
        dir: dir.path().to_owned(),
    };
    testkit::restarted_consumer_resumes_from_committed_offset(&factory).await;
}

#[tokio::test]
async fn compacted_topic_replays_latest_value_per_key() {
    let (_dir, bus) = temp_bus();
    testkit::compacted_topic_replays_latest_value_per_key(&bus).await;
}

#[tokio::test]
async fn publishing_to_an_unknown_topic_is_an_error() {
    let (_dir, bus) = temp_bus();
    let err = bus
        .publish("no.such.topic", vec![Record::new("k", "v")])
        .await
        .expect_err("unknown topic must fail");
    assert!(
        matches!(err, Error::UnknownTopic(ref t) if t == "no.such.topic"),
        "{err}"
    );
    let err = bus
        .create_topic(&TopicSpec::new("bad name", 1))
        .await
        .expect_err("bad name must fail");
    assert!(err.to_string().contains("bad name"), "{err}");
}

#[tokio::test]
async fn records_and_topics_survive_a_restart_and_compaction_keeps_the_latest() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let bus = EmbeddedBus::open(dir.path()).expect("open");
        bus.create_topic(&TopicSpec::new("std.grid_event", 2))
            .await
            .expect("create");
        bus.create_topic(&TopicSpec::compacted("_unsilo.config"))
            .await
            .expect("create");
        let records: Vec<Record> = (0..100)
            .map(|i| Record::new(format!("k{i}"), format!("v{i}")))
            .collect();
        bus.publish("std.grid_event", records)
            .await
            .expect("publish");
        bus.publish(
            "_unsilo.config",
            vec![
                Record::new("a", "1"),
                Record::new("a", "2"),
                Record::new("b", "1"),
            ],
        )
        .await
        .expect("publish config");
        bus.shutdown().await.expect("shutdown");
    }
    let bus = EmbeddedBus::open(dir.path()).expect("reopen");
    assert_eq!(
        bus.partition_count("std.grid_event").await.expect("count"),
        Some(2)
    );
    let end: u64 = bus
        .end_offsets("std.grid_event")
        .await
        .expect("end")
        .iter()
        .sum();
    assert_eq!(end, 100);
    let mut c = bus
        .consumer(ConsumerOptions::replay("std.grid_event"))
        .await
        .expect("consumer");
    let got = testkit::poll_exactly(c.as_mut(), 100).await;
    let mut values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.record.value.clone().expect("value")).expect("utf8"))
        .collect();
    values.sort();
    let mut want: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(values, want);

    // The compacted topic kept offsets (end is still 3) but only the latest record per key.
    assert_eq!(
        bus.end_offsets("_unsilo.config").await.expect("end"),
        vec![3]
    );
    let mut c = bus
        .consumer(ConsumerOptions::replay("_unsilo.config"))
        .await
        .expect("consumer");
    let got = testkit::poll_exactly(c.as_mut(), 2).await;
    let pairs: Vec<(Vec<u8>, Vec<u8>, u64)> = got
        .into_iter()
        .map(|r| {
            (
                r.record.key.expect("key"),
                r.record.value.expect("value"),
                r.position.offset,
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![
            (b"a".to_vec(), b"2".to_vec(), 1),
            (b"b".to_vec(), b"1".to_vec(), 2)
        ]
    );
    // New records continue after the highest offset, never reusing a compacted one.
    let pos = bus
        .publish("_unsilo.config", vec![Record::new("c", "1")])
        .await
        .expect("publish");
    assert_eq!(pos[0].offset, 3);
}

/// Set in the child process of the crash test: the data directory to publish into until killed.
const CRASH_CHILD_DIR: &str = "UNSILO_TEST_CRASH_CHILD_DIR";

/// The child half of the crash test: publishes batches forever, printing each acknowledged batch.
async fn crash_child(dir: &str) {
    let bus = EmbeddedBus::open(std::path::Path::new(dir)).expect("child open");
    bus.create_topic(&TopicSpec::new("t.crash", 3))
        .await
        .expect("create");
    let mut out = std::io::stdout();
    for batch in 0u64.. {
        let records: Vec<Record> = (0..50)
            .map(|i| Record::new(format!("b{batch}-r{i}"), format!("{batch}:{i}")))
            .collect();
        bus.publish("t.crash", records).await.expect("publish");
        writeln!(out, "acked {batch}").expect("stdout");
        out.flush().expect("flush");
    }
}

#[tokio::test]
async fn acknowledged_records_survive_kill_9() {
    if let Ok(dir) = std::env::var(CRASH_CHILD_DIR) {
        crash_child(&dir).await;
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "acknowledged_records_survive_kill_9",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut last_acked = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        if let Some(n) = line.strip_prefix("acked ") {
            let n: u64 = n.trim().parse().expect("batch number");
            last_acked = Some(n);
            if n >= 40 {
                break;
            }
        }
    }
    // SIGKILL: no destructor, no flush, no shutdown.
    child.kill().expect("kill child");
    child.wait().expect("reap child");
    let last_acked = last_acked.expect("child acknowledged nothing");

    tokio::time::sleep(Duration::from_millis(100)).await;
    let bus = EmbeddedBus::open(dir.path()).expect("reopen after crash");
    let end: u64 = bus.end_offsets("t.crash").await.expect("end").iter().sum();
    assert!(
        end >= (last_acked + 1) * 50,
        "only {end} records after crash, {} acknowledged",
        (last_acked + 1) * 50
    );
    let mut c = bus
        .consumer(ConsumerOptions::replay("t.crash"))
        .await
        .expect("consumer");
    let got = testkit::poll_exactly(c.as_mut(), end as usize).await;
    let values: std::collections::HashSet<Vec<u8>> = got
        .into_iter()
        .map(|r| r.record.value.expect("value"))
        .collect();
    for batch in 0..=last_acked {
        for i in 0..50 {
            assert!(
                values.contains(format!("{batch}:{i}").as_bytes()),
                "acknowledged record {batch}:{i} lost"
            );
        }
    }
}

#[tokio::test]
async fn fetch_by_offset_and_commit_from_outside_a_group() {
    let (_dir, bus) = temp_bus();
    testkit::fetch_by_offset_and_commit_from_outside_a_group(&bus).await;
}

#[tokio::test]
async fn publish_all_writes_every_part() {
    let (_dir, bus) = temp_bus();
    testkit::publish_all_writes_every_part(&bus).await;
}

#[tokio::test]
async fn offsets_for_time_finds_the_first_record_at_or_after() {
    let (_dir, bus) = temp_bus();
    testkit::offsets_for_time_finds_the_first_record_at_or_after(&bus).await;
}

#[tokio::test]
async fn publish_and_commit_moves_the_group() {
    let (_dir, bus) = temp_bus();
    testkit::publish_and_commit_moves_the_group(&bus).await;
}

/// Publishes `n` records to `topic`, each `size` bytes of value, stamped `age_ms` ago.
async fn publish_aged(bus: &EmbeddedBus, topic: &str, n: usize, size: usize, age_ms: i64) {
    let records = (0..n)
        .map(|i| {
            let mut r = Record::new(format!("k{i}"), vec![b'x'; size]);
            r.timestamp_ms = unsilo_bus::now_ms() - age_ms;
            r
        })
        .collect();
    bus.publish(topic, records).await.expect("publish");
}

#[tokio::test]
async fn retention_by_age_removes_old_records_and_keeps_recent_ones() {
    let (_dir, bus) = temp_bus();
    let day = 86_400_000;
    let spec = TopicSpec::new("std.aged", 1).with_retention(Retention {
        max_age_ms: Some(7 * day as u64),
        max_bytes: None,
    });
    bus.create_topic(&spec).await.expect("create");
    let forever = TopicSpec::new("_unsilo.audit-like", 1);
    bus.create_topic(&forever).await.expect("create");
    publish_aged(&bus, "std.aged", 50, 100, 30 * day).await;
    publish_aged(&bus, "std.aged", 20, 100, 10 * day).await;
    publish_aged(&bus, "std.aged", 30, 100, day).await;
    publish_aged(&bus, "_unsilo.audit-like", 10, 100, 400 * day).await;

    let removed = bus.enforce_retention().await.expect("retention");
    assert_eq!(
        removed.len(),
        1,
        "only the topic with a policy: {removed:?}"
    );
    assert_eq!(removed[0].topic, "std.aged");
    assert_eq!(removed[0].records, 70);
    assert_eq!(removed[0].first_kept, 70);
    let left = bus
        .fetch(&FetchRequest::new("std.aged", 0, 0, 1000, Duration::ZERO))
        .await
        .expect("fetch");
    assert_eq!(left.len(), 30);
    assert_eq!(left[0].position.offset, 70);
    // Offsets go on; nothing else is touched; a second pass removes nothing.
    assert_eq!(bus.end_offsets("std.aged").await.expect("end"), vec![100]);
    assert_eq!(
        bus.end_offsets("_unsilo.audit-like").await.expect("end"),
        vec![10]
    );
    assert!(bus.enforce_retention().await.expect("again").is_empty());
    // The time index still answers after removal.
    assert_eq!(
        bus.offsets_for_time("std.aged", 0).await.expect("time"),
        vec![70]
    );
}

#[tokio::test]
async fn retention_by_size_keeps_the_newest_records_within_the_limit() {
    let (dir, bus) = temp_bus();
    bus.create_topic(&TopicSpec::new("raw.sized", 1))
        .await
        .expect("create");
    // Five seconds' worth of writes, 100 records of ~1 KB each.
    for s in 0..5 {
        publish_aged(&bus, "raw.sized", 100, 1000, (5 - s) * 1000).await;
    }
    // A policy given later applies to what is already there (and survives a restart).
    let limit = 250_000;
    bus.create_topic(&TopicSpec::new("raw.sized", 1).with_retention(Retention {
        max_age_ms: None,
        max_bytes: Some(limit),
    }))
    .await
    .expect("set retention");
    bus.shutdown().await.expect("shutdown");
    drop(bus);
    let bus = EmbeddedBus::open(dir.path()).expect("reopen");
    let removed = bus.enforce_retention().await.expect("retention");
    assert_eq!(removed.len(), 1);
    let left = bus
        .fetch(&FetchRequest::new("raw.sized", 0, 0, 1000, Duration::ZERO))
        .await
        .expect("fetch");
    let kept_bytes: usize = left
        .iter()
        .map(|r| r.record.value.as_ref().map_or(0, Vec::len))
        .sum();
    assert!(kept_bytes as u64 <= limit, "kept {kept_bytes} bytes");
    // Removal goes by whole seconds of the index: at most one second (100 records) more than needed.
    assert!(left.len() >= 100, "kept only {} records", left.len());
    assert_eq!(left.last().map(|r| r.position.offset), Some(499));
}
