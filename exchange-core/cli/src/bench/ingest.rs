//! Ingest measurements: normalisation per connector, and records pushed over HTTP into a whole hub until they
//! are durable on `std.`, `raw.` and `dlq.`.
//!
//! | measurement | unsilo | baseline |
//! |---|---|---|
//! | normalisation, per built-in connector | contract + mapping + validators + Avro encode | `json_to_avro` + `to_avro_datum` |
//! | HTTP push, embedded bus (fsync) | 8 senders × 500-record JSON bodies into a whole hub | the bare store: fjall batch insert + fsync of the same bytes (each original and its normalised record) |
//! | the sink alone | the same records handed to the connector's sink as JSON text (no HTTP) | (beside the HTTP figure) |
//! | scale | 1, 2, 4 and 8 push connectors, two senders each | — |
//! | HTTP push, Kafka (`acks=all`) | the same, on a hub on Kafka | raw rdkafka producing the same bytes with the bus's producer settings |

use std::sync::Arc;
use std::time::Instant;

use rdkafka::producer::{FutureProducer, FutureRecord};

use unsilo_bus::wire;
use unsilo_bus::TopicSpec;
use unsilo_connectors::sdk::{JsonText, RawInput, RecordSink as _};
use unsilo_hub::auth::token_digest;
use unsilo_hub::config::{BusKind, Config, ConnectorConfig};
use unsilo_hub::ingest::http_push::split_body;
use unsilo_hub::server::Hub;

use super::{join_senders, rate, BenchError, Row, Stopwatch, Throughput, SENDERS};

/// Records per pushed body, as a source system's batch upload.
const BATCH: usize = 500;

/// The push token of benchmark connector `name` (each has its own, as the hub requires).
fn token_of(name: &str) -> String {
    format!("bench-token-{name}")
}

fn failed(e: impl std::fmt::Display) -> BenchError {
    BenchError::Avro(e.to_string())
}

/// Per built-in connector, on one core: raw contract + mapping + validators + Avro encode of its valid fixtures
/// (cycled), against apache-avro's generic path (`json_to_avro` + `to_avro_datum`) on the already-normalised JSON.
pub(super) fn bench_connectors(n: usize, rows: &mut Vec<Row>) -> Result<(), BenchError> {
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

/// What one grid record costs on one core, stage by stage, in microseconds: the steps of the push path before
/// the write, timed one at a time over the first `bodies` bodies of `load` (the records the push measurements
/// send). The split is the HTTP endpoint's own ([`split_body`]), and its output is what the later stages take.
pub(super) fn stage_costs(
    load: &GridLoad,
    bodies: usize,
) -> Result<Vec<(&'static str, f64)>, BenchError> {
    use std::hint::black_box;
    let bodies = &load.bodies[..bodies.clamp(1, load.bodies.len())];
    let definition = unsilo_connectors::builtin::definition("grid").map_err(failed)?;
    let mut costs = Vec::new();

    let started = Instant::now();
    let mut texts: Vec<JsonText> = Vec::with_capacity(bodies.len() * BATCH);
    for body in bodies {
        texts.extend(
            split_body(body, false, "grid", usize::MAX)
                .map_err(|e| BenchError::Avro(e.to_string()))?,
        );
    }
    let records = texts.len().max(1);
    let per_record = |started: Instant| started.elapsed().as_secs_f64() * 1e6 / records as f64;
    costs.push((
        "split a 500-record body into each record's bytes",
        per_record(started),
    ));

    // Each record parsed and freed at once, as the sink's normalising threads do; the copies are made before
    // the clock starts (the split above paid for them).
    let copies = texts.clone();
    let started = Instant::now();
    for text in copies {
        black_box(RawInput::from(text));
    }
    costs.push((
        "parse into `serde_json::Value`, and free it",
        per_record(started),
    ));

    let inputs: Vec<RawInput> = texts.into_iter().map(RawInput::from).collect();
    let parsed: Vec<&serde_json::Value> = inputs
        .iter()
        .map(|i| i.parsed.as_ref().map_err(|e| BenchError::Avro(e.clone())))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    for raw in &parsed {
        black_box(definition.contract().check(raw).is_ok());
    }
    costs.push(("raw contract (JSON Schema)", per_record(started)));

    let mut out = Vec::with_capacity(4096);
    let started = Instant::now();
    for raw in &parsed {
        out.clear();
        let mapping = definition
            .mappings()
            .iter()
            .find(|m| m.matches(raw))
            .ok_or_else(|| BenchError::Avro("a grid record matched no mapping".into()))?;
        black_box(mapping.encode(raw, &mut out).map_err(failed)?);
    }
    costs.push((
        "mapping selection, mapping, validators, Avro encode",
        per_record(started),
    ));
    Ok(costs)
}

/// Grid records as the grid platform sends them, and the bytes ingest writes for each: the original and its
/// normalised, framed record.
pub(super) struct GridLoad {
    /// The records as JSON array bodies of [`BATCH`].
    bodies: Vec<Vec<u8>>,
    /// Per record: the original bytes and the normalised record as written to `std.`.
    written: Vec<(Vec<u8>, Vec<u8>)>,
}

impl GridLoad {
    /// `n` simulated grid events over two counties; another `seed`, other events (and record ids).
    pub(super) fn new(n: usize, seed: u64) -> Result<Self, BenchError> {
        let records: Vec<serde_json::Value> =
            unsilo_simulate::grid::generate(seed, &["610921", "610114"], 0.0, n)
                .into_iter()
                .map(|g| g.record)
                .collect();
        let bodies = records
            .chunks(BATCH)
            .map(serde_json::to_vec)
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        let definition = unsilo_connectors::builtin::definition("grid").map_err(failed)?;
        let mut written = Vec::with_capacity(n);
        for r in &records {
            let original = serde_json::to_vec(r).map_err(failed)?;
            let input = RawInput::decoded(original.clone(), r.clone(), "bench");
            let mut body = Vec::new();
            definition
                .normalise(&input, &mut body)
                .map_err(|e| BenchError::Avro(e.message))?;
            written.push((original, wire::encode(1, &body)));
        }
        Ok(Self { bodies, written })
    }

    /// Bytes ingest writes for the whole load (originals and normalised records), before headers and framing.
    pub(super) fn bytes(&self) -> usize {
        self.written.iter().map(|(r, s)| r.len() + s.len()).sum()
    }
}

/// A whole hub with `connectors` push connectors (`grid-1`, `grid-2`, …) serving HTTP on 127.0.0.1.
struct PushedHub {
    hub: Hub,
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

/// The bus a [`PushedHub`] runs on.
enum PushedBus<'a> {
    /// The embedded bus (fsync on), in a temporary directory of this scratch space.
    Embedded(&'a super::Scratch),
    /// Kafka, at this broker.
    Kafka(&'a str),
}

impl PushedHub {
    /// Starts it on `bus`, with encryption at rest (the default).
    async fn start(connectors: &[String], bus: PushedBus<'_>) -> Result<Self, BenchError> {
        Self::start_with(connectors, bus, true).await
    }

    /// Starts it on `bus`, encrypting `std.`, `raw.` and `dlq.` at rest or not.
    async fn start_with(
        connectors: &[String],
        bus: PushedBus<'_>,
        encrypt_at_rest: bool,
    ) -> Result<Self, BenchError> {
        let mut config = Config::default();
        config.security.keys.encrypt_at_rest = encrypt_at_rest;
        let dir = match bus {
            PushedBus::Kafka(broker) => {
                config.bus.kind = BusKind::Kafka;
                config.bus.kafka = Some(unsilo_bus::kafka::KafkaOptions::new(broker));
                // Kept between runs: every run on one broker continues the same audit chain with the same key.
                let keys = std::env::temp_dir().join("unsilo-bench-kafka");
                std::fs::create_dir_all(&keys)?;
                config.security.secret_file = Some(keys.join("hub.secret"));
                None
            }
            PushedBus::Embedded(scratch) => {
                let dir = scratch.dir()?;
                config.bus.embedded.data_dir = dir.path().to_owned();
                Some(dir)
            }
        };
        for name in connectors {
            config.connectors.push(ConnectorConfig::http_push(
                name,
                "builtin:grid",
                token_digest(&token_of(name)),
            ));
        }
        let hub = Hub::start(&config).await.map_err(failed)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = hub.clone();
        let server = tokio::spawn(async move {
            let _ = serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            hub,
            base,
            stop: Some(stop),
            server,
            _dir: dir,
        })
    }

    /// Pushes `bodies` to each of `connectors` in turn (body `i` to connector `i % connectors.len()`), from
    /// `senders` concurrent senders per connector; the records per second, counting `records` in all.
    async fn push(
        &self,
        connectors: &[String],
        bodies: &[Vec<u8>],
        senders: usize,
        records: usize,
    ) -> Result<Throughput, BenchError> {
        let client = reqwest::Client::new();
        // Each sender's bodies, shared out before the clock starts.
        let mut plan = Vec::with_capacity(connectors.len() * senders);
        for (c, name) in connectors.iter().enumerate() {
            let mine: Vec<&Vec<u8>> = bodies.iter().skip(c).step_by(connectors.len()).collect();
            for sender in 0..senders {
                let share: Vec<Vec<u8>> = mine
                    .iter()
                    .skip(sender)
                    .step_by(senders)
                    .map(|b| (*b).clone())
                    .collect();
                plan.push((
                    format!("{}/ingest/{name}", self.base),
                    token_of(name),
                    share,
                ));
            }
        }
        let clock = Stopwatch::start();
        let mut tasks = Vec::new();
        for (url, token, share) in plan {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                for body in share {
                    let r = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    if !r.status().is_success() {
                        return Err(format!("push to {url} answered {}", r.status()));
                    }
                }
                Ok::<(), String>(())
            }));
        }
        join_senders(tasks).await?;
        Ok(clock.stop(records))
    }

    async fn stop(mut self) -> Result<(), BenchError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.server.await;
        self.hub.shutdown().await?;
        Ok(())
    }
}

fn connector_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("grid-{i}")).collect()
}

/// The bare store with the same bytes: each original and its normalised record inserted into one fjall
/// partition, in group commits the size of [`SENDERS`] batches, fsync after each.
fn bare_store(scratch: &super::Scratch, load: &GridLoad) -> Result<Throughput, BenchError> {
    let fjall_err = |e: fjall::Error| BenchError::Fjall(e.to_string());
    let dir = scratch.dir()?;
    let keyspace = fjall::Config::new(dir.path()).open().map_err(fjall_err)?;
    let part = keyspace
        .open_partition("log", fjall::PartitionCreateOptions::default())
        .map_err(fjall_err)?;
    let clock = Stopwatch::start();
    let mut key = 0u64;
    for chunk in load.written.chunks(BATCH * SENDERS) {
        let mut batch = keyspace.batch();
        for (raw, normalised) in chunk {
            batch.insert(&part, key.to_be_bytes(), raw.as_slice());
            batch.insert(&part, (key + 1).to_be_bytes(), normalised.as_slice());
            key += 2;
        }
        batch.commit().map_err(fjall_err)?;
        keyspace
            .persist(fjall::PersistMode::SyncAll)
            .map_err(fjall_err)?;
    }
    Ok(clock.stop(load.written.len()))
}

/// The same batches handed to a connector's sink directly, from [`SENDERS`] concurrent senders.
async fn direct_sink(hub: &Hub, load: &GridLoad) -> Result<Throughput, BenchError> {
    let definition = Arc::new(unsilo_connectors::builtin::definition("grid").map_err(failed)?);
    let sink = Arc::new(
        unsilo_hub::ingest::BusSink::open(
            "grid-direct",
            definition,
            hub.bus.clone(),
            &hub.registry,
            &unsilo_hub::config::TopicPlan::with_partitions(4),
        )
        .await
        .map_err(failed)?,
    );
    let batches: Vec<Vec<JsonText>> = load
        .written
        .chunks(BATCH)
        .map(|written| {
            written
                .iter()
                .map(|(original, _)| JsonText {
                    original: original.clone(),
                    origin: "bench".into(),
                })
                .collect()
        })
        .collect();
    let mut batches = batches.into_iter().enumerate().collect::<Vec<_>>();
    let shares: Vec<Vec<Vec<JsonText>>> = (0..SENDERS)
        .rev()
        .map(|sender| {
            batches
                .extract_if(.., |(i, _)| *i % SENDERS == sender)
                .map(|(_, b)| b)
                .collect()
        })
        .collect();
    let clock = Stopwatch::start();
    let mut tasks = Vec::new();
    for mine in shares {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            for batch in mine {
                sink.submit_json(batch).await.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    join_senders(tasks).await?;
    Ok(clock.stop(load.written.len()))
}

/// Ingest figures on the embedded bus, from one run.
pub(super) struct EmbeddedIngest {
    /// HTTP push end to end.
    pub(super) pushed: Throughput,
    /// The bare store with the same bytes.
    pub(super) bare_store: Throughput,
    /// The sink alone.
    pub(super) direct: Throughput,
    /// Records/s with 1, 2, 4 and 8 push connectors.
    pub(super) by_connectors: Vec<(usize, f64)>,
    /// Bytes per record written (original + normalised).
    pub(super) bytes_per_record: f64,
    /// The push path's stages on one core, µs per record ([`stage_costs`]).
    pub(super) stages: Vec<(&'static str, f64)>,
}

/// Bodies the stage costs are timed over: 20,000 records.
const STAGE_BODIES: usize = 40;

/// HTTP push of `n` grid records into a whole hub on the embedded bus, beside the bare store and the sink alone,
/// then with 1, 2, 4 and 8 connectors.
pub(super) async fn embedded(
    scratch: &super::Scratch,
    n: usize,
    rows: &mut Vec<Row>,
) -> Result<EmbeddedIngest, BenchError> {
    let load = GridLoad::new(n, 7)?;
    let bare = bare_store(scratch, &load)?;
    let one = connector_names(1);
    let hub = PushedHub::start(&one, PushedBus::Embedded(scratch)).await?;
    let direct = direct_sink(&hub.hub, &load).await?;
    let pushed = hub.push(&one, &load.bodies, SENDERS, n).await?;
    let read_sealed = read_back(&hub.hub).await?;
    hub.stop().await?;
    eprintln!("bench: the same push with encryption at rest off…");
    let plain_hub = PushedHub::start_with(&one, PushedBus::Embedded(scratch), false).await?;
    let plain = plain_hub.push(&one, &load.bodies, SENDERS, n).await?;
    let read_plain = read_back(&plain_hub.hub).await?;
    plain_hub.stop().await?;
    rows.push(Row::new(
        "Encryption at rest on (SM4-GCM, a data key per topic and day): grid records pushed over HTTP into the embedded bus, 8 senders (records/s)",
        pushed.per_second,
        "the same push, encryption at rest off",
        plain.per_second,
    ));
    rows.push(Row::new(
        "Encryption at rest on: the router's read of what was pushed (std., raw. and dlq. records read back through the hub's bus, decrypted) (records/s)",
        read_sealed.per_second,
        "the same read, encryption at rest off",
        read_plain.per_second,
    ));
    rows.push(Row::new(
        "End to end: grid records pushed over HTTP into the embedded bus (fsync), 8 senders × 500-record bodies (records/s)",
        pushed.per_second,
        "bare store: fjall batch insert + fsync of the same bytes (original + normalised)",
        bare.per_second,
    ));
    rows.push(Row::new(
        "The connector's sink alone (parse + normalise + one atomic write), 8 senders × 500 records (records/s)",
        direct.per_second,
        "bare store, as above",
        bare.per_second,
    ));
    let mut by_connectors = Vec::new();
    for connectors in [1, 2, 4, 8] {
        eprintln!("bench: HTTP push with {connectors} connectors ({n} records)…");
        let names = connector_names(connectors);
        let hub = PushedHub::start(&names, PushedBus::Embedded(scratch)).await?;
        let r = hub.push(&names, &load.bodies, 2, n).await?;
        hub.stop().await?;
        by_connectors.push((connectors, r.per_second));
    }
    eprintln!("bench: the push path's stages, one core…");
    let stages = stage_costs(&load, STAGE_BODIES)?;
    Ok(EmbeddedIngest {
        pushed,
        bare_store: bare,
        direct,
        by_connectors,
        bytes_per_record: load.bytes() as f64 / n.max(1) as f64,
        stages,
    })
}

/// Reads every record of the grid connector's topics back through the hub's bus — what the router, history and
/// re-normalisation do — in batches of 1,000; records per second.
async fn read_back(hub: &Hub) -> Result<Throughput, BenchError> {
    let mut topics: Vec<String> = unsilo_schemas::shared_schemas()
        .iter()
        .map(|s| s.topic())
        .collect();
    topics.extend(connector_names(1).iter().flat_map(|c| {
        [
            unsilo_schemas::names::raw_topic(c),
            unsilo_schemas::names::dlq_topic(c),
        ]
    }));
    let clock = Stopwatch::start();
    let mut read = 0usize;
    for topic in &topics {
        let ends = hub.bus.end_offsets(topic).await.unwrap_or_default();
        for (partition, end) in ends.iter().enumerate() {
            let mut offset = 0;
            while offset < *end {
                let batch = hub
                    .bus
                    .fetch(&unsilo_bus::FetchRequest::new(
                        topic,
                        partition as u32,
                        offset,
                        1000,
                        std::time::Duration::from_millis(10),
                    ))
                    .await?;
                let Some(last) = batch.last() else { break };
                offset = last.position.offset + 1;
                read += batch.len();
            }
        }
    }
    Ok(clock.stop(read))
}

/// Raw rdkafka producing `written` (each original to `raw_topic`, each normalised record to `std_topic`) from
/// [`SENDERS`] concurrent senders, [`BATCH`] records at a time.
async fn raw_rdkafka(
    producer: &FutureProducer,
    raw_topic: &str,
    std_topic: &str,
    written: &[(Vec<u8>, Vec<u8>)],
) -> Result<f64, BenchError> {
    let started = Instant::now();
    let chunks: Vec<&[(Vec<u8>, Vec<u8>)]> = written.chunks(BATCH).collect();
    let senders = (0..SENDERS).map(|sender| {
        let mine: Vec<&[(Vec<u8>, Vec<u8>)]> = chunks
            .iter()
            .skip(sender)
            .step_by(SENDERS)
            .copied()
            .collect();
        async move {
            for chunk in mine {
                let sends = chunk.iter().flat_map(|(raw, normalised)| {
                    // Keyed like ingest, by a few bytes of the record (the source's id leads a grid record).
                    let key = &raw[..raw.len().min(24)];
                    [
                        producer.send(
                            FutureRecord::<[u8], [u8]>::to(raw_topic)
                                .key(key)
                                .payload(raw.as_slice()),
                            rdkafka::util::Timeout::Never,
                        ),
                        producer.send(
                            FutureRecord::<[u8], [u8]>::to(std_topic)
                                .key(key)
                                .payload(normalised.as_slice()),
                            rdkafka::util::Timeout::Never,
                        ),
                    ]
                });
                for r in futures::future::join_all(sends).await {
                    r.map_err(|(e, _)| e)?;
                }
            }
            Ok::<(), BenchError>(())
        }
    });
    for r in futures::future::join_all(senders).await {
        r?;
    }
    Ok(rate(written.len(), started.elapsed()))
}

/// HTTP push of `n` grid records into a whole hub on Kafka (`acks=all`), beside raw rdkafka producing the same
/// bytes with the bus's producer settings. The best of two rounds each.
pub(super) async fn kafka(broker: &str, n: usize, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let suffix = rand::random::<u32>();
    let names = vec![format!("grid-bench-{suffix:08x}")];
    let hub = PushedHub::start(&names, PushedBus::Kafka(broker)).await?;
    let raw_topic = format!("bench.ingest-raw.{suffix:08x}");
    let std_topic = format!("bench.ingest-std.{suffix:08x}");
    for topic in [&raw_topic, &std_topic] {
        hub.hub.bus.create_topic(&TopicSpec::new(topic, 4)).await?;
    }
    let producer = super::foundation::raw_producer(broker)?;
    // Both warmed up before anything is timed.
    let warm = GridLoad::new(BATCH, 1)?;
    raw_rdkafka(&producer, &raw_topic, &std_topic, &warm.written).await?;
    hub.push(&names, &warm.bodies, 1, BATCH).await?;
    let (mut raw, mut pushed) = (0f64, 0f64);
    for round in 0..super::foundation::KAFKA_ROUNDS {
        // New records each round: a source sending the same ids again is answered without writing them twice.
        let load = GridLoad::new(n, 100 + round as u64)?;
        raw = raw.max(raw_rdkafka(&producer, &raw_topic, &std_topic, &load.written).await?);
        pushed = pushed.max(hub.push(&names, &load.bodies, SENDERS, n).await?.per_second);
    }
    hub.stop().await?;
    rows.push(Row::new(
        "End to end on Kafka: grid records pushed over HTTP, normalised, produced with acks=all, 8 senders × 500 (records/s)",
        pushed,
        "raw rdkafka producing the same bytes (original + normalised), same settings",
        raw,
    ));
    Ok(())
}
