//! Exactly-once routing on Kafka, against the real Kafka-protocol broker tests/run.sh starts (`UNSILO_TEST_KAFKA`;
//! these tests fail without it): a hub process is made to die at the worst moments of a router write — after its
//! evidence and every release are durable but before its standings and offsets are (`router.after-releases`),
//! and after its first destination topic only (`router.between-releases`) — by the fault injection of
//! `unsilo_hub::fault`, not by a random kill. Started again, it must deliver every record to every subscription
//! once, and record each release in the audit log once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use unsilo_hub::fault::{FAULT_ENV, ROUTER_AFTER_RELEASES, ROUTER_BETWEEN_RELEASES};
use unsilo_tests::api::{run_events, Api};
use unsilo_tests::rand_suffix;
use unsilo_tests::topology::{hub_config, tls_files, trusting_client, wait_ready, Proc};

/// Writes `hub.toml` in `dir` for a hub on the test broker, with its own hub id, cluster and secret.
fn kafka_hub_config(dir: &Path, port: u16, sfx: u64) {
    let broker = std::env::var("UNSILO_TEST_KAFKA").expect(
        "UNSILO_TEST_KAFKA is not set: run the tests with tests/run.sh, which starts a broker",
    );
    let path = hub_config(
        dir,
        port,
        &format!(
            "[hub]\nid = \"eos-hub-{sfx}\"\ncluster = \"eos-{sfx}\"\n[security]\nsecret_file = \"hub.secret\"\n"
        ),
    );
    let text = std::fs::read_to_string(&path).expect("hub.toml");
    let embedded = "kind = \"embedded\"\n[bus.embedded]\ndata_dir = \"hub-data\"\n";
    assert!(text.contains(embedded), "hub_config's bus section changed");
    let kafka = format!(
        "kind = \"kafka\"\n[bus.kafka]\nbootstrap_servers = \"{broker}\"\nreplication_factor = 1\n"
    );
    std::fs::write(&path, text.replace(embedded, &kafka)).expect("hub.toml");
}

/// A hub process on the test broker, started in `dir` with `env`, ready to serve.
async fn start(dir: &Path, name: &str, port: u16, env: &[(&str, &str)]) -> (Proc, Api) {
    let mut hub = Proc::spawn_with_env(name, dir, &["serve", "--config", "hub.toml"], env);
    let base = format!("https://127.0.0.1:{port}");
    let http = trusting_client(dir);
    wait_ready(&mut hub, &http, &base).await;
    (hub, Api::with_client(&base, http))
}

/// Pushes events `range` as the grid platform.
async fn push(api: &Api, sfx: u64, range: std::ops::Range<u32>) {
    let batch = run_events(sfx, range);
    api.push_grid(&batch.iter().collect::<Vec<_>>()).await;
}

/// Pulls `subscription` (acknowledging) until it has received `want` distinct records, then once more after a
/// pause so anything sent twice has had time to arrive; returns how often each record id arrived.
async fn receive(
    api: &Api,
    token: &str,
    subscription: &str,
    want: usize,
    seen: &mut BTreeMap<String, u32>,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut settled = false;
    loop {
        let batch = unsilo_tests::topology::pull_all(api, token, subscription).await;
        for r in &batch {
            let id = r["record_id"].as_str().expect("record_id").to_owned();
            *seen.entry(id).or_default() += 1;
        }
        if seen.len() >= want {
            if settled {
                return;
            }
            settled = true;
            tokio::time::sleep(Duration::from_secs(3)).await;
            continue;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{subscription}: {} of {want} records",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Every record arrived once; returns the ones that did not.
fn twice(seen: &BTreeMap<String, u32>) -> Vec<(&String, &u32)> {
    seen.iter().filter(|(_, n)| **n != 1).collect()
}

/// Kills the hub at `fault` while it routes events `range`, starts it again and checks that both subscriptions
/// receive every event of the run once and that the audit log records each release once.
#[allow(clippy::too_many_arguments)]
async fn kill_at_and_recover(
    dir: &Path,
    port: u16,
    sfx: u64,
    fault: &str,
    round: &str,
    range: std::ops::Range<u32>,
    subscribers: &[(String, String)],
    seen: &mut [BTreeMap<String, u32>],
) -> Api {
    let (mut hub, api) = start(
        dir,
        &format!("hub-{round}-faulty"),
        port,
        &[(FAULT_ENV, fault)],
    )
    .await;
    push(&api, sfx, range.clone()).await;
    let status = hub.exited(Duration::from_secs(60)).await;
    assert!(!status.success(), "the fault should have killed the hub");
    assert!(
        hub.log().contains(&format!("injected fault `{fault}`")),
        "the hub ended, but not at the injected fault:\n{}",
        hub.log()
    );
    let (mut hub, api) = start(dir, &format!("hub-{round}-recovered"), port, &[]).await;
    for ((token, id), seen) in subscribers.iter().zip(seen.iter_mut()) {
        receive(&api, token, id, range.end as usize, seen).await;
        assert_eq!(seen.len(), range.end as usize, "{id}: every record");
        assert!(
            twice(seen).is_empty(),
            "{id} after `{fault}`: received more than once: {:?}",
            twice(seen)
        );
        let recorded = api.release_entries(id).await;
        let mut per_record: BTreeMap<String, u32> = BTreeMap::new();
        for e in &recorded {
            *per_record
                .entry(
                    e["event"]["record_id"]
                        .as_str()
                        .expect("record_id")
                        .to_owned(),
                )
                .or_default() += 1;
        }
        assert_eq!(
            per_record.len(),
            range.end as usize,
            "{id}: a release entry per record"
        );
        assert!(
            twice(&per_record).is_empty(),
            "{id} after `{fault}`: recorded more than once: {:?}",
            twice(&per_record)
        );
    }
    assert!(
        hub.log().contains("Resuming an interrupted router write"),
        "the restarted hub did not recover the interrupted write:\n{}",
        hub.log()
    );
    hub.assert_running();
    drop(hub);
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_between_its_releases_and_its_offsets_delivers_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    tls_files(d);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let sfx = rand_suffix();
    kafka_hub_config(d, port, sfx);

    // Two agencies subscribe to every event of the run, so each router write has two destination topics.
    let (hub, api) = start(d, "hub-setup", port, &[]).await;
    let subscribers = api
        .subscribe_to_run_events("eos", sfx, &["11610921016050037T", "116109210160500883"])
        .await;
    let mut seen = vec![BTreeMap::new(), BTreeMap::new()];
    push(&api, sfx, 0..20).await;
    for ((token, id), seen) in subscribers.iter().zip(seen.iter_mut()) {
        receive(&api, token, id, 20, seen).await;
    }
    drop(hub);

    // The worst moment: every release durable, the offsets not committed.
    kill_at_and_recover(
        d,
        port,
        sfx,
        ROUTER_AFTER_RELEASES,
        "after",
        20..50,
        &subscribers,
        &mut seen,
    )
    .await;
    // Half a write: the evidence and the first subscription's releases durable, the second's not.
    kill_at_and_recover(
        d,
        port,
        sfx,
        ROUTER_BETWEEN_RELEASES,
        "between",
        50..80,
        &subscribers,
        &mut seen,
    )
    .await;
}
