//! Foundation measurements: what every path of the hub is built on, beside the library or store it wraps.
//!
//! - Avro encode + Confluent framing of a `grid_event`, against `apache_avro::to_avro_datum` alone.
//! - Embedded bus append (8 publishers, group commit, fsync) and replay read, against fjall batch insert + fsync
//!   and a raw fjall range scan of the same bytes.
//! - Kafka produce and consume through the bus layer, against raw rdkafka on the same broker.

use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use unsilo_bus::embedded::EmbeddedBus;
use unsilo_bus::kafka::{KafkaBus, KafkaOptions};
use unsilo_bus::wire;
use unsilo_bus::{Bus, ConsumerOptions, Record, TopicSpec};

use super::{rate, BenchError, Row};

/// The sample record: the shipped `grid_event` example, encoded as Avro binary.
fn sample_grid_event() -> Result<(apache_avro::Schema, apache_avro::types::Value), BenchError> {
    let shared = unsilo_schemas::shared_schema("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event schema".into()))?;
    let json = unsilo_schemas::example_record("grid_event")
        .ok_or_else(|| BenchError::Avro("no grid_event example".into()))?;
    let value = unsilo_schemas::json_to_avro(&json, shared.avro())
        .map_err(|e| BenchError::Avro(e.to_string()))?;
    Ok((shared.avro().clone(), value))
}

pub(super) fn bench_encode(n: usize, rows: &mut Vec<Row>) -> Result<usize, BenchError> {
    let (schema, value) = sample_grid_event()?;
    let started = Instant::now();
    let mut size = 0;
    for _ in 0..n {
        let body = apache_avro::to_avro_datum(&schema, value.clone())
            .map_err(|e| BenchError::Avro(e.to_string()))?;
        size = body.len();
    }
    let baseline = rate(n, started.elapsed());
    let started = Instant::now();
    let mut framed = Vec::with_capacity(size + 5);
    for _ in 0..n {
        let body = apache_avro::to_avro_datum(&schema, value.clone())
            .map_err(|e| BenchError::Avro(e.to_string()))?;
        framed.clear();
        wire::encode_into(&mut framed, 1, &body);
    }
    let ours = rate(n, started.elapsed());
    rows.push(Row::new(
        "Avro encode + wire framing of a grid_event (records/s)",
        ours,
        "apache_avro::to_avro_datum",
        baseline,
    ));
    Ok(size + 5)
}

pub(super) fn payloads(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut v = vec![0u8; size];
            v[..8].copy_from_slice(&(i as u64).to_be_bytes());
            v
        })
        .collect()
}

pub(super) async fn bench_embedded(
    scratch: &super::Scratch,
    n: usize,
    size: usize,
    rows: &mut Vec<Row>,
) -> Result<(), BenchError> {
    const BATCH: usize = 1_000;
    const PUBLISHERS: usize = 8;
    let data = payloads(n, size);

    // Baseline: the store alone, same bytes, same batch size, one fsync per batch of the publishers' combined load.
    let dir = scratch.dir()?;
    let keyspace = fjall::Config::new(dir.path())
        .open()
        .map_err(|e| BenchError::Fjall(e.to_string()))?;
    let part = keyspace
        .open_partition("log", fjall::PartitionCreateOptions::default())
        .map_err(|e| BenchError::Fjall(e.to_string()))?;
    let started = Instant::now();
    for (chunk_no, chunk) in data.chunks(BATCH * PUBLISHERS).enumerate() {
        let mut batch = keyspace.batch();
        for (i, v) in chunk.iter().enumerate() {
            let key = ((chunk_no * BATCH * PUBLISHERS + i) as u64).to_be_bytes();
            batch.insert(&part, key, v.as_slice());
        }
        batch
            .commit()
            .map_err(|e| BenchError::Fjall(e.to_string()))?;
        keyspace
            .persist(fjall::PersistMode::SyncAll)
            .map_err(|e| BenchError::Fjall(e.to_string()))?;
    }
    let raw_append = rate(n, started.elapsed());
    let started = Instant::now();
    let mut count = 0usize;
    for item in part.iter() {
        let (_, v) = item.map_err(|e| BenchError::Fjall(e.to_string()))?;
        count += usize::from(!v.is_empty());
    }
    let raw_read = rate(count, started.elapsed());
    drop(part);
    drop(keyspace);

    let dir = scratch.dir()?;
    let bus = EmbeddedBus::open(dir.path())?;
    bus.create_topic(&TopicSpec::new("bench.append", 4)).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per = n.div_ceil(PUBLISHERS);
    for part_no in 0..PUBLISHERS {
        let bus = bus.clone();
        let mine: Vec<Vec<u8>> = data.iter().skip(part_no * per).take(per).cloned().collect();
        tasks.push(tokio::spawn(async move {
            for chunk in mine.chunks(BATCH) {
                let records = chunk
                    .iter()
                    .map(|v| Record {
                        key: Some(v[..8].to_vec()),
                        value: Some(v.clone()),
                        headers: Vec::new(),
                        timestamp_ms: 0,
                    })
                    .collect();
                bus.publish("bench.append", records).await?;
            }
            Ok::<(), unsilo_bus::Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| BenchError::Fjall(e.to_string()))??;
    }
    let ours_append = rate(n, started.elapsed());
    rows.push(Row::new(
        format!("Embedded bus append, {size}-byte records, 8 publishers × 1000-record batches, fsync (records/s)"),
        ours_append,
        "fjall batch insert + fsync",
        raw_append,
    ));

    let mut consumer = bus
        .consumer(ConsumerOptions::replay("bench.append"))
        .await?;
    let started = Instant::now();
    let mut read = 0usize;
    while read < n {
        read += consumer.poll(10_000, Duration::from_secs(5)).await?.len();
    }
    let ours_read = rate(read, started.elapsed());
    rows.push(Row::new(
        format!("Embedded bus read, {size}-byte records, replay consumer (records/s)"),
        ours_read,
        "fjall range scan",
        raw_read,
    ));
    bus.shutdown().await?;
    Ok(())
}

/// Rounds of each Kafka measurement; the best round counts, so a cold start or a broker hiccup does not decide.
pub(super) const KAFKA_ROUNDS: usize = 2;

/// Raw rdkafka with the Kafka bus's producer settings (idempotent, `acks=all`, murmur2, 5 ms linger): the
/// baseline of every Kafka produce measurement.
pub(super) fn raw_producer(broker: &str) -> Result<FutureProducer, BenchError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?)
}

pub(super) async fn raw_produce(
    producer: &FutureProducer,
    topic: &str,
    data: &[Vec<u8>],
) -> Result<f64, BenchError> {
    let started = Instant::now();
    for chunk in data.chunks(1_000) {
        let sends = chunk.iter().map(|v| {
            producer.send(
                FutureRecord::<[u8], [u8]>::to(topic)
                    .key(&v[..8])
                    .payload(v.as_slice()),
                rdkafka::util::Timeout::Never,
            )
        });
        for r in futures::future::join_all(sends).await {
            r.map_err(|(e, _)| e)?;
        }
    }
    Ok(rate(data.len(), started.elapsed()))
}

async fn bus_produce(bus: &KafkaBus, topic: &str, data: &[Vec<u8>]) -> Result<f64, BenchError> {
    let started = Instant::now();
    for chunk in data.chunks(1_000) {
        let records = chunk
            .iter()
            .map(|v| Record::new(&v[..8], v.clone()))
            .collect();
        bus.publish(topic, records).await?;
    }
    Ok(rate(data.len(), started.elapsed()))
}

async fn raw_consume(broker: &str, topic: &str, n: usize) -> Result<f64, BenchError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set(
            "group.id",
            format!("bench-raw-{:08x}", rand::random::<u32>()),
        )
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let mut stream = consumer.stream();
    let mut read = 0usize;
    while read < n {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(_))) => read += 1,
            Ok(Some(Err(e))) => return Err(e.into()),
            _ => break,
        }
    }
    Ok(rate(read, started.elapsed()))
}

async fn bus_consume(bus: &KafkaBus, topic: &str, n: usize) -> Result<f64, BenchError> {
    let mut consumer = bus.consumer(ConsumerOptions::replay(topic)).await?;
    let started = Instant::now();
    let mut read = 0usize;
    while read < n {
        let got = consumer.poll(n - read, Duration::from_secs(30)).await?;
        if got.is_empty() {
            break;
        }
        read += got.len();
    }
    Ok(rate(read, started.elapsed()))
}

pub(super) async fn bench_kafka(
    broker: &str,
    n: usize,
    size: usize,
    rows: &mut Vec<Row>,
) -> Result<(), BenchError> {
    let data = payloads(n, size);
    let suffix = rand::random::<u32>();
    let bus = KafkaBus::connect(KafkaOptions::new(broker)).await?;
    let raw_topic = format!("bench.raw.{suffix:08x}");
    let bus_topic = format!("bench.bus.{suffix:08x}");
    bus.create_topic(&TopicSpec::new(&raw_topic, 1)).await?;
    bus.create_topic(&TopicSpec::new(&bus_topic, 1)).await?;

    // Both warmed up before anything is timed.
    let producer = raw_producer(broker)?;
    raw_produce(&producer, &raw_topic, &data[..100.min(n)]).await?;
    bus_produce(&bus, &bus_topic, &data[..100.min(n)]).await?;

    let (mut raw_p, mut bus_p, mut raw_c, mut bus_c) = (0f64, 0f64, 0f64, 0f64);
    for _ in 0..KAFKA_ROUNDS {
        raw_p = raw_p.max(raw_produce(&producer, &raw_topic, &data).await?);
        bus_p = bus_p.max(bus_produce(&bus, &bus_topic, &data).await?);
    }
    for _ in 0..KAFKA_ROUNDS {
        raw_c = raw_c.max(raw_consume(broker, &raw_topic, n).await?);
        bus_c = bus_c.max(bus_consume(&bus, &bus_topic, n).await?);
    }
    rows.push(Row::new(
        "Kafka produce through the bus layer, 1000-record batches (records/s)",
        bus_p,
        "raw rdkafka FutureProducer, same settings",
        raw_p,
    ));
    rows.push(Row::new(
        "Kafka consume through the bus layer (records/s)",
        bus_c,
        "raw rdkafka StreamConsumer",
        raw_c,
    ));
    bus.shutdown().await?;
    Ok(())
}
