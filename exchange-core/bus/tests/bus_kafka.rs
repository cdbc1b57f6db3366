//! The shared bus test body run against a real Kafka-protocol broker (Tansu, started by `tests/run.sh`).
//!
//! The broker address comes from `UNSILO_TEST_KAFKA`; without it these tests fail — they never skip.

use std::sync::Arc;

use async_trait::async_trait;
use unsilo_bus::kafka::{KafkaBus, KafkaOptions};
use unsilo_bus::testkit::{self, BusFactory};
use unsilo_bus::Bus;

fn broker() -> String {
    std::env::var("UNSILO_TEST_KAFKA").expect(
        "UNSILO_TEST_KAFKA is not set: run the tests with tests/run.sh, which starts a Kafka-protocol broker",
    )
}

async fn connect() -> KafkaBus {
    KafkaBus::connect(KafkaOptions::new(broker()))
        .await
        .expect("connect to the test broker")
}

struct KafkaFactory;

#[async_trait]
impl BusFactory for KafkaFactory {
    async fn open(&self) -> Arc<dyn Bus> {
        Arc::new(connect().await)
    }
}

#[tokio::test]
async fn keys_headers_and_order() {
    testkit::keys_headers_and_order(&connect().await).await;
}

#[tokio::test]
async fn group_members_split_partitions() {
    testkit::group_members_split_partitions(&connect().await).await;
}

#[tokio::test]
async fn restarted_consumer_resumes_from_committed_offset() {
    testkit::restarted_consumer_resumes_from_committed_offset(&KafkaFactory).await;
}

#[tokio::test]
async fn compacted_topic_replays_latest_value_per_key() {
    testkit::compacted_topic_replays_latest_value_per_key(&connect().await).await;
}

#[tokio::test]
async fn connecting_to_a_dead_broker_fails_with_a_clear_error() {
    let err = match KafkaBus::connect(KafkaOptions::new("127.0.0.1:1")).await {
        Ok(_) => panic!("connecting to a closed port must fail"),
        Err(e) => e,
    };
    assert!(
        err.to_string().contains("127.0.0.1:1"),
        "error should name the address: {err}"
    );
}

#[tokio::test]
async fn fetch_by_offset_and_commit_from_outside_a_group() {
    testkit::fetch_by_offset_and_commit_from_outside_a_group(&connect().await).await;
}

#[tokio::test]
async fn publish_all_writes_every_part() {
    testkit::publish_all_writes_every_part(&connect().await).await;
}

#[tokio::test]
async fn offsets_for_time_finds_the_first_record_at_or_after() {
    testkit::offsets_for_time_finds_the_first_record_at_or_after(&connect().await).await;
}

#[tokio::test]
async fn publish_and_commit_moves_the_group() {
    testkit::publish_and_commit_moves_the_group(&connect().await).await;
}
