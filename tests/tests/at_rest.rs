//! Sensitive data encrypted at rest, from outside: someone holding the bus's files (embedded) or reading the
//! Kafka topics, without the key-encryption key, finds no ID number, name, phone number or address on `std.*`,
//! `raw.*` or `dlq.*` — while the hub itself reads and routes them; and a retention pass removes a day's data
//! key with the day, so a backup of the bus taken before it cannot be read either.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use unsilo_bus::{Bus, FetchRequest};
use unsilo_hub::at_rest::{RecordCipher, HEADER_ENCRYPTED, HEADER_REFUSED};
use unsilo_hub::config::Config;
use unsilo_tests::api::{grid_messages, with_grid_and_operator, PUSH_TOKEN};
use unsilo_tests::{embedded_config, kafka_config, rand_suffix, RunningHub};

/// What the grid's RED household fixture says about its head: ID number, name, phone, address.
const SECRETS: [&str; 4] = [
    "610921196105170316",
    "陈德福",
    "15991458236",
    "三塘村7组21号",
];

/// Every record of `topic`, as stored.
async fn all_records(bus: &dyn Bus, topic: &str) -> Vec<unsilo_bus::ConsumedRecord> {
    let mut out = Vec::new();
    let ends = bus.end_offsets(topic).await.unwrap_or_default();
    for (partition, end) in ends.iter().enumerate() {
        let mut offset = 0;
        while offset < *end {
            let batch = bus
                .fetch(&FetchRequest::new(
                    topic,
                    partition as u32,
                    offset,
                    500,
                    Duration::from_millis(100),
                ))
                .await
                .expect("fetch");
            let Some(last) = batch.last() else { break };
            offset = last.position.offset + 1;
            out.extend(batch);
        }
    }
    out
}

/// The topics the grid connector writes: its std. topics, raw.grid, dlq.grid.
fn grid_topics() -> Vec<String> {
    let mut topics = vec!["raw.grid".to_owned(), "dlq.grid".to_owned()];
    topics.extend(unsilo_schemas::shared_schemas().iter().map(|s| s.topic()));
    topics
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Pushes the RED household and one that fails validation, then waits until the hub has both on its topics.
async fn push_and_wait(running: &RunningHub) {
    let (red, _, _) = grid_messages(rand_suffix() % 1_000_000_000);
    let mut bad = red.clone();
    bad["hzsfzh"] = json!("61092119610517031X");
    bad["hhbh"] = json!(format!("HH6109211079{:09}", rand_suffix() % 1_000_000_000));
    let pushed = reqwest::Client::new()
        .post(format!("{}/ingest/grid", running.base))
        .bearer_auth(PUSH_TOKEN)
        .json(&[&red, &bad])
        .send()
        .await
        .expect("push");
    assert_eq!(pushed.status().as_u16(), 207, "one accepted, one rejected");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let raw = running
            .hub
            .bus
            .end_offsets("raw.grid")
            .await
            .unwrap_or_default();
        let dlq = running
            .hub
            .bus
            .end_offsets("dlq.grid")
            .await
            .unwrap_or_default();
        if raw.iter().sum::<u64>() >= 1 && dlq.iter().sum::<u64>() >= 1 {
            return;
        }
        assert!(Instant::now() < deadline, "the records did not arrive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads every grid topic through `bus` and says which of [`SECRETS`] it finds, and how many values it saw.
async fn secrets_found(bus: &dyn Bus) -> (Vec<String>, usize, usize) {
    let mut found = Vec::new();
    let mut values = 0;
    let mut marked = 0;
    for topic in grid_topics() {
        for r in all_records(bus, &topic).await {
            let Some(v) = &r.record.value else { continue };
            values += 1;
            if r.record.header(HEADER_ENCRYPTED).is_some() {
                marked += 1;
            }
            for s in SECRETS {
                if contains(v, s) {
                    found.push(format!("{s} on {topic}"));
                }
            }
        }
    }
    (found, values, marked)
}

/// The hub reads its own records in clear: the RED household's ID number is on raw.grid as the hub sees it.
async fn hub_reads_in_clear(running: &RunningHub) {
    let (found, values, marked) = secrets_found(running.hub.bus.as_ref()).await;
    assert!(values >= 3, "raw, dlq and std records: {values}");
    assert_eq!(marked, 0, "the hub's own reads are decrypted");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with(SECRETS[0]) && f.ends_with("raw.grid")),
        "the hub reads its originals: {found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_id_number_is_readable_in_the_embedded_bus_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_grid_and_operator(embedded_config(dir.path()));
    let running = RunningHub::start(&config).await;
    push_and_wait(&running).await;
    hub_reads_in_clear(&running).await;
    running.stop().await;

    // Someone with the bus's files but not the key-encryption key.
    let bus = unsilo_hub::server::open_bus(&config).await.expect("bus");
    let (found, values, marked) = secrets_found(bus.as_ref()).await;
    assert!(values >= 3);
    assert_eq!(
        marked, values,
        "every value on std., raw. and dlq. is encrypted"
    );
    assert!(found.is_empty(), "readable without the key: {found:?}");
    bus.shutdown().await.expect("close");
    // Nor in the store's files themselves.
    let mut files = Vec::new();
    collect_files(&config.bus.embedded.data_dir, &mut files);
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !contains(&bytes, SECRETS[0]),
            "the ID number is in {}",
            file.display()
        );
    }
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else if !out.contains(&p) {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_id_number_is_readable_in_the_kafka_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_grid_and_operator(kafka_config(dir.path()));
    let running = RunningHub::start(&config).await;
    push_and_wait(&running).await;
    hub_reads_in_clear(&running).await;
    // A plain Kafka client of the same cluster, without the keys.
    let outsider = unsilo_hub::server::open_bus(&config).await.expect("bus");
    let (found, values, marked) = secrets_found(outsider.as_ref()).await;
    assert!(values >= 3);
    assert_eq!(
        marked, values,
        "every value on std., raw. and dlq. is encrypted"
    );
    assert!(found.is_empty(), "readable without the key: {found:?}");
    outsider.shutdown().await.expect("close");
    running.stop().await;
}

/// A hub whose raw originals are kept one day, checked every second.
fn short_retention(dir: &Path) -> Config {
    let mut config = with_grid_and_operator(embedded_config(dir));
    config.bus.retention.raw.max_age = Some(Duration::from_secs(86_400));
    config.bus.retention.check_every = Duration::from_secs(1);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_pass_leaves_a_removed_day_unreadable_even_in_an_earlier_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    let config = short_retention(&live);
    let three_days_ago = unsilo_bus::now_ms() - 3 * 86_400_000;
    let old_day = unsilo_hub::at_rest::day_of(three_days_ago);

    // A record of three days ago, written (sealed) by the hub while retention keeps raw originals 180 days.
    let writing = with_grid_and_operator(embedded_config(&live));
    let running = RunningHub::start(&writing).await;
    let mut record = unsilo_bus::Record::new(b"old".to_vec(), SECRETS[0].as_bytes().to_vec());
    record.timestamp_ms = three_days_ago;
    running
        .hub
        .bus
        .publish("raw.grid", vec![record])
        .await
        .expect("publish");
    let key_file = live
        .join("data-keys")
        .join("raw.grid")
        .join(format!("{old_day}.json"));
    assert!(key_file.exists(), "the day has its data key");
    running.stop().await;

    // A backup of the bus, taken before retention gets to the day (the keys are not the bus's: not in it).
    let backup = dir.path().join("backup");
    copy_dir(&live, &backup);

    // The hub runs again: retention removes the day's records and its data key.
    let running = RunningHub::start(&config).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while key_file.exists() {
        assert!(Instant::now() < deadline, "the day's key was not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.stop().await;

    // The backup still holds the sealed record, but nothing can open it any more.
    let mut backup_config = config.clone();
    backup_config.bus.embedded.data_dir = backup.clone();
    let bus = unsilo_hub::server::open_bus(&backup_config)
        .await
        .expect("backup bus");
    let stored = all_records(bus.as_ref(), "raw.grid").await;
    let old: Vec<_> = stored
        .into_iter()
        .filter(|r| r.record.key.as_deref() == Some(b"old".as_slice()))
        .collect();
    assert_eq!(old.len(), 1, "the backup holds the old record");
    let sealed = old[0].record.clone();
    assert!(!contains(
        sealed.value.as_deref().unwrap_or_default(),
        SECRETS[0]
    ));
    // The live keys (the KEK and every data key left) do not open it.
    let cipher = RecordCipher::open(
        &config.security.keys,
        &config.secret_file(),
        config.security.crypto,
        config.bus.retention.clone(),
    )
    .expect("keys");
    let opened = cipher.open_record("raw.grid", sealed);
    assert_eq!(opened.value, None, "unreadable");
    let why =
        String::from_utf8_lossy(opened.header(HEADER_REFUSED).unwrap_or_default()).into_owned();
    assert!(why.contains("no data key"), "{why}");
    bus.shutdown().await.expect("close");
}

/// Copies a bus's data directory, less the keys kept beside it (the KEK and the data keys).
fn copy_dir(from: &Path, to: &Path) {
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    std::fs::create_dir_all(to).expect("mkdir");
    for e in entries.flatten() {
        let p = e.path();
        if ["data-keys", "kek.json"].contains(&e.file_name().to_str().unwrap_or_default()) {
            continue;
        }
        let target = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).expect("copy");
        }
    }
}
