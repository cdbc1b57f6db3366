//! The harness shared by the end-to-end tests in `tests/tests/`: a whole hub serving on an ephemeral loopback
//! port ([`RunningHub`]), the configurations of the two buses ([`embedded_config`], [`kafka_config`]), and a
//! client of the admin and pull APIs ([`api`]).
//!
//! Kafka tests need `UNSILO_TEST_KAFKA` (set by tests/run.sh, which starts a broker); without it they fail with a
//! message saying so, never skip.

pub mod api;
pub mod console;
pub mod topology;
pub mod workflow;

use std::path::Path;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use unsilo_bus::kafka::KafkaOptions;
use unsilo_hub::config::{BusKind, Config};
use unsilo_hub::server::Hub;

/// A hub serving HTTP on 127.0.0.1 on a port of its own, with a handle to stop it.
pub struct RunningHub {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The hub (bus, registry, control plane, admin …).
    pub hub: Hub,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningHub {
    /// Starts a hub with `config` and serves it.
    pub async fn start(config: &Config) -> Self {
        // Logs go to the test's output (shown for failed tests); RUST_LOG picks the level.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_test_writer()
            .try_init();
        let hub = Hub::start(config).await.expect("hub starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = hub.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Self {
            base,
            hub,
            stop: Some(stop),
            task,
        }
    }

    /// Stops the hub gracefully and waits until it has closed its bus.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.expect("server task");
    }
}

/// A random suffix for names that must not collide with other tests on a shared broker.
pub fn rand_suffix() -> u64 {
    rand_u64() % 1_000_000_000
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A record of shared schema `schema` as a connector would publish it to `std.<schema>`: `record` (the schema's
/// JSON form) framed with the registered schema's id, keyed and headed by `record_id` — for tests that put records
/// on the shared topic directly.
pub fn shared_record(
    hub: &Hub,
    schema: &str,
    record: &serde_json::Value,
    record_id: &str,
) -> unsilo_bus::Record {
    let shared = unsilo_schemas::shared_schema(schema).expect("a shared schema");
    let value = unsilo_schemas::json_to_avro(record, shared.avro()).expect("avro");
    let id = hub
        .registry
        .lookup(&shared.subject(), &shared.schema_string(), false)
        .expect("registered")
        .id;
    let mut framed = Vec::new();
    unsilo_bus::wire::write_header(&mut framed, id as u32);
    framed.extend(apache_avro::to_avro_datum(shared.avro(), value).expect("encode"));
    unsilo_bus::Record::new(record_id.as_bytes().to_vec(), framed).with_header(
        unsilo_schemas::names::HEADER_RECORD_ID,
        record_id.as_bytes().to_vec(),
    )
}

/// The embedded bus in `dir`.
pub fn embedded_config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.bus.embedded.data_dir = dir.to_owned();
    without_api_second_factor(&mut c);
    c
}

/// The suite's hubs take operators' tokens alone on the API, so tests can call it as any client would;
/// `security::operators_give_the_second_factor_on_the_api_too` tests the production default.
fn without_api_second_factor(c: &mut Config) {
    c.admin.sign_in.api_second_factor = false;
}

/// The Kafka bus on the test broker, with a deployment secret in `secret_dir`, a hub id of its own (hubs of
/// different tests share the broker's audit topic, each with its own chain) and a cluster name of its own.
/// Hubs that must share routing work use the same configuration value.
pub fn kafka_config(secret_dir: &Path) -> Config {
    let broker = std::env::var("UNSILO_TEST_KAFKA").expect(
        "UNSILO_TEST_KAFKA is not set: run the tests with tests/run.sh, which starts a broker",
    );
    let mut c = Config::default();
    c.bus.kind = BusKind::Kafka;
    c.bus.kafka = Some(KafkaOptions::new(broker));
    c.security.secret_file = Some(secret_dir.join("hub.secret"));
    c.hub.id = format!("test-hub-{:016x}", rand_u64());
    // Each test is its own deployment on the shared broker: its routers never wait on another test's hubs.
    c.hub.cluster = format!("test-{:016x}", rand_u64());
    without_api_second_factor(&mut c);
    c
}
