//! The Kafka-topic transport against a real Kafka-protocol broker (`UNSILO_TEST_KAFKA`, started by
//! tests/run.sh): a departmental system's topic is consumed, and a restarted source resumes after the last
//! acknowledged batch. Without a broker these tests fail; they never skip.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use unsilo_connectors::sdk::{
    MemoryCheckpointStore, RecordingSink, Shutdown, Source, SourceContext,
};
use unsilo_connectors::transport::kafka_topic::KafkaTopicConfig;

fn broker() -> String {
    std::env::var("UNSILO_TEST_KAFKA").expect(
        "UNSILO_TEST_KAFKA is not set: run the tests with tests/run.sh, which starts a broker",
    )
}

async fn produce(topic: &str, values: &[String]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .expect("producer");
    for v in values {
        producer
            .send(
                FutureRecord::<(), str>::to(topic).payload(v.as_str()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

/// Runs the source until `sink` has seen `want` inputs, then stops it.
async fn run_until(config: &KafkaTopicConfig, sink: Arc<RecordingSink>, want: usize) {
    let (trigger, shutdown) = Shutdown::new();
    let ctx = SourceContext {
        connector: "ga-kafka".into(),
        sink: sink.clone(),
        checkpoints: Arc::new(MemoryCheckpointStore::default()),
        shutdown,
    };
    let mut source = config.build().expect("build");
    let task = tokio::spawn(async move { source.run(ctx).await });
    sink.wait_for(want, Duration::from_secs(60)).await;
    trigger.trigger();
    task.await.expect("join").expect("source stopped cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumes_a_topic_and_resumes_after_the_last_acknowledged_batch() {
    let topic = format!("ga.jqxx.{:016x}", rand::random::<u64>());
    let first: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"jqbh":"J{i:04}","fadd":"汉阴县城关镇{i}号"}}"#))
        .chain(std::iter::once("not json".to_owned()))
        .collect();
    produce(&topic, &first).await;
    let mut config = KafkaTopicConfig::new(broker(), &topic);
    config.group_id = Some(format!("unsilo-test-{:016x}", rand::random::<u64>()));
    config.batch_size = 7;

    let sink = Arc::new(RecordingSink::new());
    run_until(&config, sink.clone(), 21).await;
    {
        let seen = sink.inputs();
        assert_eq!(seen.len(), 21);
        assert!(seen.iter().filter(|i| i.parsed.is_ok()).count() == 20);
        let bad = seen
            .iter()
            .find(|i| i.parsed.is_err())
            .expect("the bad message arrived");
        assert_eq!(
            bad.original,
            b"not json".to_vec(),
            "the original bytes are kept"
        );
        let third = seen
            .iter()
            .filter_map(|i| i.parsed.as_ref().ok())
            .find(|v| v["jqbh"] == "J0003")
            .expect("J0003 arrived");
        assert_eq!(third["fadd"], "汉阴县城关镇3号", "Chinese text intact");
    }

    // More messages arrive while the connector is down; the restarted source reads only those.
    let second: Vec<String> = (20..25)
        .map(|i| format!(r#"{{"jqbh":"J{i:04}"}}"#))
        .collect();
    produce(&topic, &second).await;
    let sink = Arc::new(RecordingSink::new());
    run_until(&config, sink.clone(), 5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = sink.inputs();
    let mut ids: Vec<String> = seen
        .iter()
        .map(|i| {
            i.parsed.as_ref().expect("json")["jqbh"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    // Messages without a key are spread over the partitions: order holds per partition, not across them.
    ids.sort();
    assert_eq!(
        ids,
        (20..25).map(|i| format!("J{i:04}")).collect::<Vec<_>>()
    );
}
