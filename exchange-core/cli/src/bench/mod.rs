//! `unsilo bench`: measures the hub's hot paths side by side with their baselines, in one run, and prints a
//! Markdown report (the figures in `docs/benchmarks.md` come from it).
//!
//! | measurement | unsilo path | baseline |
//! |---|---|---|
//! | Avro encode | `grid_event` encoded + Confluent wire framing | `apache_avro::to_avro_datum` alone |
//! | embedded append | `Bus::publish` with durable group commit (fsync) | fjall batch insert + fsync of the same bytes |
//! | embedded read | a replay consumer's `poll` | a raw fjall range scan |
//! | connector normalisation | contract + mapping + validators + direct Avro encode, per built-in connector | `json_to_avro` + `to_avro_datum` |
//! | HTTP push end to end | grid records POSTed to a whole hub on the embedded bus | the same batches into the sink directly |
//! | Kafka produce / consume | `Bus::publish` / `Consumer::poll` on the Kafka bus | raw rdkafka `FutureProducer` / `StreamConsumer` on the same broker |
//! | routing, 1 / 10 / 100 subscriptions | filter + view + view encode per record × subscription ([`routing`]) | one `to_avro_datum` of the full record |
//! | ingest → subscription topic latency | a whole hub on the embedded bus at 10 000 records/s ([`routing`]) | — |
//!
//! Benchmarks measure; tests assert: nothing here fails on a slow machine.

pub mod routing;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use unsilo_bus::embedded::EmbeddedBus;
use unsilo_bus::kafka::{KafkaBus, KafkaOptions};
use unsilo_bus::wire;
use unsilo_bus::{Bus, ConsumerOptions, Record, TopicSpec};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Records per embedded and encode measurement.
    pub records: usize,
    /// Kafka broker for the Kafka measurements; skipped when `None`.
    pub kafka: Option<String>,
    /// Records per Kafka measurement.
    pub kafka_records: usize,
    /// Only these sections (`foundation`, `connectors`, `routing`); all when empty.
    pub only: Vec<String>,
}

/// Errors that stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Encoding the sample record failed.
    #[error("avro: {0}")]
    Avro(String),
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] unsilo_bus::Error),
    /// The raw rdkafka baseline failed.
    #[error("kafka baseline: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The raw fjall baseline failed.
    #[error("fjall baseline: {0}")]
    Fjall(String),
    /// Temporary files could not be made.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

struct Row {
    name: String,
    ours: f64,
    baseline_name: &'static str,
    baseline: f64,
}

impl Row {
    /// A measurement, `ours`, beside its `baseline`.
    fn new(name: impl Into<String>, ours: f64, baseline_name: &'static str, baseline: f64) -> Self {
        Self {
            name: name.into(),
            ours,
            baseline_name,
            baseline,
        }
    }
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

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

fn bench_encode(n: usize, rows: &mut Vec<Row>) -> Result<usize, BenchError> {
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

fn payloads(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut v = vec![0u8; size];
            v[..8].copy_from_slice(&(i as u64).to_be_bytes());
            v
        })
        .collect()
}

async fn bench_embedded(n: usize, size: usize, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    const BATCH: usize = 1_000;
    const PUBLISHERS: usize = 8;
    let data = payloads(n, size);

    // Baseline: the store alone, same bytes, same batch size, one fsync per batch of the publishers' combined load.
    let dir = tempfile::tempdir()?;
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

    let dir = tempfile::tempdir()?;
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
const KAFKA_ROUNDS: usize = 2;

async fn raw_produce(
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

async fn bench_kafka(
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

    // Raw rdkafka with the bus's producer settings; both warmed up before anything is timed.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?;
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

/// Per built-in connector, on one core: raw contract + mapping + validators + Avro encode of its valid fixtures
/// (cycled), against apache-avro's generic path (`json_to_avro` + `to_avro_datum`) on the already-normalised JSON.
fn bench_connectors(n: usize, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    use unsilo_connectors::conformance::read_fixtures;
    for name in unsilo_connectors::builtin::names() {
        let definition = unsilo_connectors::builtin::definition(name)
            .map_err(|e| BenchError::Avro(e.to_string()))?;
        let fixtures: Vec<_> = read_fixtures(unsilo_connectors::builtin::fixtures(name))
            .map_err(|e| BenchError::Avro(e.to_string()))?
            .into_iter()
            .filter(|f| f.expect.is_none())
            .collect();
        if fixtures.is_empty() {
            continue;
        }
        // Baseline input: each fixture normalised to plain JSON by its mapping, and the target schema.
        let mut normalised = Vec::new();
        for f in &fixtures {
            let raw = f
                .input
                .parsed
                .as_ref()
                .map_err(|e| BenchError::Avro(e.clone()))?;
            let mapping = definition
                .mappings()
                .iter()
                .find(|m| m.matches(raw))
                .ok_or_else(|| BenchError::Avro(format!("{}: no mapping", f.name)))?;
            let json = mapping
                .to_json(raw)
                .map_err(|e| BenchError::Avro(e.to_string()))?;
            normalised.push((json, mapping.target().avro()));
        }
        let started = Instant::now();
        for i in 0..n {
            let (json, schema) = &normalised[i % normalised.len()];
            let value = unsilo_schemas::json_to_avro(json, schema)
                .map_err(|e| BenchError::Avro(e.to_string()))?;
            apache_avro::to_avro_datum(schema, value)
                .map_err(|e| BenchError::Avro(e.to_string()))?;
        }
        let baseline = rate(n, started.elapsed());
        let mut out = Vec::with_capacity(2048);
        let started = Instant::now();
        for i in 0..n {
            out.clear();
            definition
                .normalise(&fixtures[i % fixtures.len()].input, &mut out)
                .map_err(|e| BenchError::Avro(e.message))?;
        }
        let ours = rate(n, started.elapsed());
        rows.push(Row {
            name: format!(
                "Connector `{name}`: contract + mapping + validators + Avro encode, {} fixtures cycled, one core (records/s)",
                fixtures.len()
            ),
            ours,
            baseline_name: "json_to_avro + to_avro_datum on the normalised JSON",
            baseline,
        });
    }
    Ok(())
}

/// End to end on the embedded bus: the grid platform's records pushed over HTTP (batches of 500) into a whole
/// hub, answered once durable on `std.`, `raw.` and (none here) `dlq.` topics; against the same batches handed
/// to the connector's sink directly (no HTTP).
async fn bench_http_push(n: usize, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    use unsilo_connectors::sdk::{RawInput, RecordSink as _};
    use unsilo_hub::auth::token_digest;
    use unsilo_hub::config::{Config, ConnectorConfig};
    const BATCH: usize = 500;
    let records: Vec<serde_json::Value> =
        unsilo_simulate::grid::generate(7, &["610921", "610114"], 0.0, n)
            .into_iter()
            .map(|g| g.record)
            .collect();
    let bodies: Vec<Vec<u8>> = records
        .chunks(BATCH)
        .map(|c| serde_json::to_vec(c).unwrap_or_default())
        .collect();

    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.bus.embedded.data_dir = dir.path().to_owned();
    let token = "bench-token";
    config.connectors.push(ConnectorConfig::http_push(
        "grid",
        "builtin:grid",
        token_digest(token),
    ));
    let hub = unsilo_hub::server::Hub::start(&config)
        .await
        .map_err(|e| BenchError::Avro(e.to_string()))?;

    // Baseline: the sink directly, from the same number of concurrent senders.
    let definition = std::sync::Arc::new(
        unsilo_connectors::builtin::definition("grid")
            .map_err(|e| BenchError::Avro(e.to_string()))?,
    );
    let sink = std::sync::Arc::new(
        unsilo_hub::ingest::BusSink::open(
            "grid-direct",
            definition,
            hub.bus.clone(),
            &hub.registry,
            &unsilo_hub::config::TopicPlan::with_partitions(4),
        )
        .await
        .map_err(|e| BenchError::Avro(e.to_string()))?,
    );
    let batches: Vec<Vec<serde_json::Value>> = records
        .chunks(BATCH)
        .map(<[serde_json::Value]>::to_vec)
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let sink = sink.clone();
        let mine = share_of(&batches, sender);
        tasks.push(tokio::spawn(async move {
            for chunk in mine {
                let batch = chunk
                    .iter()
                    .map(|r| {
                        RawInput::decoded(
                            serde_json::to_vec(r).unwrap_or_default(),
                            r.clone(),
                            "bench",
                        )
                    })
                    .collect();
                sink.submit(batch).await.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    join_senders(tasks).await?;
    let direct = rate(n, started.elapsed());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/ingest/grid", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = hub.clone();
    let server = tokio::spawn(async move {
        let _ = serving
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let client = client.clone();
        let url = url.clone();
        let mine = share_of(&bodies, sender);
        tasks.push(tokio::spawn(async move {
            for body in mine {
                let r = client
                    .post(&url)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !r.status().is_success() {
                    return Err(format!("push answered {}", r.status()));
                }
            }
            Ok::<(), String>(())
        }));
    }
    join_senders(tasks).await?;
    let pushed = rate(n, started.elapsed());
    let _ = stop.send(());
    let _ = server.await;
    rows.push(Row::new(
        "End to end: grid records pushed over HTTP into the embedded bus, 8 senders × 500-record batches (records/s)",
        pushed,
        "the same batches handed to the sink directly, 8 senders",
        direct,
    ));
    Ok(())
}

/// Runs every measurement and returns the Markdown report.
pub async fn run(options: BenchOptions) -> Result<String, BenchError> {
    let wants =
        |section: &str| options.only.is_empty() || options.only.iter().any(|o| o == section);
    let mut rows = Vec::new();
    let mut size = 0;
    if wants("foundation") {
        eprintln!("bench: Avro encode ({} records)…", options.records);
        size = bench_encode(options.records, &mut rows)?;
        eprintln!(
            "bench: embedded bus ({} records of {size} bytes)…",
            options.records
        );
        bench_embedded(options.records, size, &mut rows).await?;
        eprintln!(
            "bench: embedded bus ({} records of 256 bytes)…",
            options.records
        );
        bench_embedded(options.records, 256, &mut rows).await?;
    }
    if wants("connectors") {
        eprintln!("bench: connectors ({} records each)…", options.records);
        bench_connectors(options.records, &mut rows)?;
        eprintln!(
            "bench: HTTP push end to end ({} records)…",
            options.records.min(50_000)
        );
        bench_http_push(options.records.min(50_000), &mut rows).await?;
    }
    let mut routing_lines = Vec::new();
    let mut indexed_lines: Vec<String> = Vec::new();
    let mut latency = None;
    if wants("routing") {
        let routed = options.records.min(20_000);
        for subscriptions in [1, 10, 100] {
            eprintln!("bench: routing with {subscriptions} subscriptions ({routed} records)…");
            let (t, baseline, filters) = routing::throughput(routed, subscriptions)?;
            rows.push(Row::new(
                format!("routing, {subscriptions} subscriptions (records/s, one core)"),
                t.records_per_s,
                "to_avro_datum of the full record (records/s)",
                baseline,
            ));
            routing_lines.push(format!(
                "| {subscriptions} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}% |",
                t.records_per_s,
                t.evaluations_per_s,
                t.ns_per_evaluation,
                filters,
                t.released_share * 100.0
            ));
        }
        for subscriptions in [1, 10, 100, 1000] {
            eprintln!(
                "bench: indexed routing, {subscriptions} county subscriptions ({routed} records)…"
            );
            let t = routing::indexed(routed, subscriptions)?;
            rows.push(Row::new(
                format!(
                    "routing, {subscriptions} county subscriptions, indexed (records/s, one core)"
                ),
                t.indexed_per_s,
                "every filter evaluated (records/s)",
                t.scan_per_s,
            ));
            indexed_lines.push(format!(
                "| {subscriptions} | {:.0} | {:.0} | {:.1} | {:.2} |",
                t.indexed_per_s, t.scan_per_s, t.candidates_per_record, t.releases_per_record
            ));
        }
        eprintln!("bench: ingest → subscription topic latency at 10 000 records/s for 10 s…");
        latency = Some(routing::latency(10_000, 10).await?);
    }
    if let (Some(broker), true) = (&options.kafka, wants("foundation")) {
        eprintln!(
            "bench: Kafka at {broker} ({} records)…",
            options.kafka_records
        );
        bench_kafka(broker, options.kafka_records, size, &mut rows).await?;
    } else if options.kafka.is_none() {
        eprintln!("bench: no --kafka broker given; Kafka measurements skipped.");
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "| measurement | unsilo | baseline | baseline figure | unsilo / baseline |\n|---|---:|---|---:|---:|"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {:.0} | {:.2} |",
            r.name,
            r.ours,
            r.baseline_name,
            r.baseline,
            r.ours / r.baseline.max(1e-9)
        );
    }
    if wants("foundation") {
        let _ = writeln!(
            out,
            "\nRecord size {size} bytes (the shipped grid_event example, Confluent-framed); {} records per embedded \
             measurement, {} per Kafka measurement; {} logical CPUs.",
            options.records,
            options.kafka_records,
            std::thread::available_parallelism().map_or(0, usize::from)
        );
    }
    let _ = writeln!(
        out,
        "\n**Routing** (one core; record × subscription evaluations = filter, and for released records the view \
         plan, the view encode and framing):\n\n| subscriptions | records/s | evaluations/s | ns per evaluation | \
         filter-only evaluations/s | released |\n|---:|---:|---:|---:|---:|---:|"
    );
    for line in routing_lines {
        let _ = writeln!(out, "{line}");
    }
    if !indexed_lines.is_empty() {
        let _ = writeln!(
            out,
            "\n**Indexed routing** (one core): each subscription on its own county (`region_code.startsWith`) and two \
             event types; records spread over the counties and four event types, a fifth from outside them. The \
             baseline routes the same filters written `(…) || false`, so every filter runs:\n\n| subscriptions | \
             records/s indexed | records/s every filter | routes evaluated per record | releases per record |\n\
             |---:|---:|---:|---:|---:|"
        );
        for line in indexed_lines {
            let _ = writeln!(out, "{line}");
        }
    }
    if let Some(latency) = latency {
        let _ = writeln!(
            out,
            "\n**Latency**, publish to `std.grid_event` → readable on the subscription's topic, whole hub on the \
             embedded bus (fsync on), {} records/s offered, {} records measured: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms.",
            latency.rate, latency.records, latency.p50_ms, latency.p99_ms, latency.max_ms
        );
    }
    Ok(out)
}

/// Concurrent senders in the HTTP push measurement and its baseline, as several source systems (or one with
/// parallel uploads) push at once.
const SENDERS: usize = 8;

/// The items sender number `sender` of [`SENDERS`] takes: every `SENDERS`-th, from its own offset.
fn share_of<T: Clone>(items: &[T], sender: usize) -> Vec<T> {
    items
        .iter()
        .skip(sender)
        .step_by(SENDERS)
        .cloned()
        .collect()
}

/// Waits for every sender task; the first failure is the benchmark's error.
async fn join_senders(
    tasks: Vec<tokio::task::JoinHandle<Result<(), String>>>,
) -> Result<(), BenchError> {
    for t in tasks {
        t.await
            .map_err(|e| BenchError::Avro(e.to_string()))?
            .map_err(BenchError::Avro)?;
    }
    Ok(())
}
