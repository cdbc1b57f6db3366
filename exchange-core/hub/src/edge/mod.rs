//! `unsilo edge`: the department's exchange node (前置交换节点, GB/T 21062).
//!
//! One process inside the department's network, with its own embedded bus. It
//!
//! - runs the department's source connectors (SQL poll, watched folder, HTTP poll, Kafka topic, and pushes to
//!   its own endpoint, [`push`]) — the
//!   transports are configured here, in `edge.toml`; the connector *definitions* are the hub's, pushed signed
//!   ([`crate::link`]), and a connector runs only once the hub's definition for it has arrived and verified;
//! - keeps what they read in its buffer ([`buffer`]) until the hub acknowledges it, and forwards it over an
//!   outbound HTTPS link with its own client certificate, compressed and paced to a bandwidth cap
//!   ([`forward`]), resuming from the hub's acknowledged position after any interruption;
//! - reports its version, buffer depth, lag and per-connector counts to the hub every few seconds;
//! - optionally delivers the department's own subscriptions into its local database or folder
//!   ([`deliver`]), pulling them over the same outbound link, so the department's systems never reach out.
//!
//! Enrolment (`unsilo edge enrol --code …`) makes the edge's key, has the hub's link CA certify it, and pins the
//! hub's signing key; everything it needs is kept in `<data_dir>/link/`.

pub mod buffer;
pub mod client;
pub mod deliver;
pub mod forward;
pub mod push;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use unsilo_bus::Bus;
use unsilo_connectors::sdk::Shutdown;

use crate::config::ConnectorConfig;
use crate::link::protocol::{EnrolAnswer, EnrolRequest};

/// Why the edge could not start or enrol.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The configuration is wrong; the message says where.
    #[error("edge configuration: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The edge has not enrolled yet.
    #[error("the edge has not enrolled with its hub: run `unsilo edge enrol --config <edge.toml> --code <one-time code>` first")]
    NotEnrolled,
    /// The hub refused or could not be reached.
    #[error("{0}")]
    Link(String),
    /// The edge's bus failed.
    #[error("the edge's buffer: {0}")]
    Bus(#[from] unsilo_bus::Error),
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> EdgeError {
    EdgeError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// `edge.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// The node itself.
    pub edge: EdgeSection,
    /// The link to the hub.
    pub link: LinkSection,
    /// The buffer.
    #[serde(default)]
    pub buffer: BufferSection,
    /// Encryption at rest of the buffer and the crypto profile.
    #[serde(default)]
    pub security: EdgeSecurity,
    /// The department's sources (`[[connectors]]`): their transports; their definitions come from the hub.
    #[serde(default)]
    pub connectors: Vec<EdgeConnector>,
    /// The department's subscriptions delivered here (`[[deliveries]]`).
    #[serde(default)]
    pub deliveries: Vec<deliver::DeliveryConfig>,
}

/// `[edge]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSection {
    /// The edge's id, as the hub's operator registered it.
    pub id: String,
    /// Where the buffer, the checkpoints and the enrolment live (default `./edge-data`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Where the edge takes pushes from the department's systems (`POST /ingest/{connector}`), if any of its
    /// connectors is `http_push`; default none.
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
    /// TLS for `listen` (certificate and key PEM files); without it the endpoint speaks plain HTTP inside the
    /// department's network.
    #[serde(default)]
    pub tls: Option<crate::config::TlsConfig>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("edge-data")
}

/// `[link]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSection {
    /// The hub's address, `https://host:port`.
    pub hub: String,
    /// The CA (PEM) that signed the hub's server certificate; default: the system's roots.
    #[serde(default)]
    pub hub_ca: Option<PathBuf>,
    /// The most bytes per second the link may carry (after compression); default: no cap.
    #[serde(default)]
    pub max_bytes_per_second: Option<u64>,
    /// Most originals per batch (default 500; the hub takes at most 5,000).
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
    /// Compress batches with gzip (default true).
    #[serde(default = "crate::config::default_true")]
    pub compress: bool,
    /// How often the edge reports its status (default 5 s).
    #[serde(
        default = "default_status_every",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub status_every: Duration,
    /// The longest wait between two attempts while the hub is unreachable (default 30 s).
    #[serde(
        default = "default_max_backoff",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub max_backoff: Duration,
}

fn default_batch_records() -> usize {
    500
}
fn default_status_every() -> Duration {
    Duration::from_secs(5)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}

/// `[buffer]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSection {
    /// Bytes waiting for the hub at which the edge stops taking input (default 1 GiB).
    #[serde(default = "default_buffer_bytes")]
    pub max_bytes: u64,
    /// The percentage of `max_bytes` at which the alarm is raised (default 80).
    #[serde(default = "default_alarm_percent")]
    pub alarm_percent: u8,
}

fn default_buffer_bytes() -> u64 {
    1 << 30
}
fn default_alarm_percent() -> u8 {
    80
}

impl Default for BufferSection {
    fn default() -> Self {
        Self {
            max_bytes: default_buffer_bytes(),
            alarm_percent: default_alarm_percent(),
        }
    }
}

/// `[security]` of an edge.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSecurity {
    /// `gm` (default) or `international`: the buffer's encryption.
    #[serde(default)]
    pub crypto: unsilo_schemas::crypto::Suite,
    /// The buffer's keys (`kek_file`, `data_key_dir`; default beside `edge.secret` in the data directory).
    #[serde(default)]
    pub keys: crate::at_rest::KeysConfig,
}

/// One source of the department (`[[connectors]]` in `edge.toml`): as a hub's `[[connectors]]` without
/// `definition`, which comes from the hub.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConnector {
    /// The connector's name: the hub pushes its definition under this name.
    pub name: String,
    /// `sql_poll`, `file_drop`, `http_poll`, `kafka_topic`, or `http_push` (to the edge's `listen`).
    pub transport: crate::config::TransportKind,
    /// Settings of `http_push`: the SHA-256 of the token the department's system pushes with.
    #[serde(default)]
    pub http_push: Option<crate::config::HttpPushConfig>,
    /// Settings of `http_poll`.
    #[serde(default)]
    pub http_poll: Option<unsilo_connectors::transport::http_poll::HttpPollConfig>,
    /// Settings of `sql_poll`.
    #[serde(default)]
    pub sql_poll: Option<unsilo_connectors::transport::sql_poll::SqlPollConfig>,
    /// Settings of `file_drop`.
    #[serde(default)]
    pub file_drop: Option<unsilo_connectors::transport::file_drop::FileDropConfig>,
    /// Settings of `kafka_topic`.
    #[serde(default)]
    pub kafka_topic: Option<unsilo_connectors::transport::kafka_topic::KafkaTopicConfig>,
}

impl EdgeConnector {
    /// As a hub connector (the definition is the hub's, not named here).
    fn as_connector(&self) -> ConnectorConfig {
        ConnectorConfig {
            name: self.name.clone(),
            definition: "hub".into(),
            transport: self.transport,
            http_push: self.http_push.clone(),
            http_poll: self.http_poll.clone(),
            sql_poll: self.sql_poll.clone(),
            file_drop: self.file_drop.clone(),
            kafka_topic: self.kafka_topic.clone(),
            provider: None,
            provider_schemas: None,
        }
    }
}

impl EdgeConfig {
    /// Reads and checks `edge.toml`.
    pub fn load(path: &Path) -> Result<Self, EdgeError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        let config: Self = toml::from_str(&text)
            .map_err(|e| EdgeError::Config(format!("{}: {e}", path.display())))?;
        config.check()?;
        Ok(config)
    }

    /// Checks what the types cannot.
    pub fn check(&self) -> Result<(), EdgeError> {
        if !crate::link::valid_node_id(&self.edge.id) {
            return Err(EdgeError::Config(format!(
                "[edge] id `{}` must be 1–64 characters of a-z, 0-9 and '-'",
                self.edge.id
            )));
        }
        if !self.link.hub.starts_with("https://") {
            return Err(EdgeError::Config(format!(
                "[link] hub `{}` must be an https:// address: the link carries personal data and the edge authenticates by its certificate",
                self.link.hub
            )));
        }
        if self.link.batch_records == 0 || self.link.batch_records > crate::link::MAX_BATCH_RECORDS
        {
            return Err(EdgeError::Config(format!(
                "[link] batch_records must be 1–{}",
                crate::link::MAX_BATCH_RECORDS
            )));
        }
        if self.buffer.alarm_percent == 0 || self.buffer.alarm_percent > 100 {
            return Err(EdgeError::Config(
                "[buffer] alarm_percent must be 1–100".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.connectors {
            if !seen.insert(c.name.as_str()) {
                return Err(EdgeError::Config(format!(
                    "connector `{}` is configured twice",
                    c.name
                )));
            }
            if c.transport == crate::config::TransportKind::HttpPush {
                c.http_push
                    .as_ref()
                    .ok_or_else(|| {
                        EdgeError::Config(format!(
                            "connector `{}`: no [connectors.http_push] section",
                            c.name
                        ))
                    })?
                    .digest()
                    .map_err(|e| EdgeError::Config(format!("connector `{}`: {e}", c.name)))?;
                if self.edge.listen.is_none() {
                    return Err(EdgeError::Config(format!(
                        "connector `{}` takes pushes, but [edge] listen is not set",
                        c.name
                    )));
                }
            }
            crate::ingest::start::build_source(&c.as_connector())
                .map_err(|e| EdgeError::Config(e.to_string()))?;
        }
        for d in &self.deliveries {
            d.check().map_err(EdgeError::Config)?;
        }
        Ok(())
    }

    /// Where the enrolment lives.
    pub fn link_dir(&self) -> PathBuf {
        self.edge.data_dir.join("link")
    }
}

/// What the edge keeps from its enrolment (`<data_dir>/link/enrolment.json`; the key is beside it, 0600).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Enrolment {
    /// The edge's id.
    pub edge: String,
    /// The hub's id.
    pub hub: String,
    /// The edge's certificate, PEM.
    pub certificate_pem: String,
    /// The hub's signing public key (hex), pinned: definitions must verify under it.
    pub hub_public_key: String,
    /// `SM2` or `Ed25519`.
    pub key_algorithm: String,
    /// When the edge enrolled.
    pub enrolled_at_ms: i64,
}

const ENROLMENT_FILE: &str = "enrolment.json";
const KEY_FILE: &str = "edge.key";

impl Enrolment {
    /// The enrolment kept in `dir`, if the edge has enrolled.
    pub fn load(dir: &Path) -> Result<Option<(Self, String)>, EdgeError> {
        let path = dir.join(ENROLMENT_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
        let enrolment: Self = serde_json::from_str(&text).map_err(|e| file_error(&path, e))?;
        let key_path = dir.join(KEY_FILE);
        let key = crate::secrets::read_private(&key_path).map_err(|e| file_error(&key_path, e))?;
        Ok(Some((enrolment, key)))
    }
}

/// Enrols the edge with its hub: makes its key (kept in `<data_dir>/link/edge.key`, 0600), sends a
/// certificate signing request with the one-time code, and keeps the certificate and the hub's signing key.
pub async fn enrol(config: &EdgeConfig, code: &str) -> Result<Enrolment, EdgeError> {
    enrol_node(
        &config.link_dir(),
        &config.edge.id,
        &config.link.hub,
        config.link.hub_ca.as_deref(),
        code,
    )
    .await
}

/// Enrols node `node` (an edge, or a member hub with its parent) with the hub at `hub`, trusting `hub_ca` for
/// its server certificate: makes the node's key, sends a certificate signing request with the one-time code,
/// and keeps in `dir` the key (0600), the certificate, the link CA and the hub's signing key, pinned.
pub async fn enrol_node(
    dir: &Path,
    node: &str,
    hub: &str,
    hub_ca: Option<&Path>,
    code: &str,
) -> Result<Enrolment, EdgeError> {
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    let key = rcgen::KeyPair::generate().map_err(|e| EdgeError::Link(e.to_string()))?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, node.to_owned());
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| EdgeError::Link(e.to_string()))?;
    let client =
        client::LinkClient::new(hub, hub_ca, None, false, None).map_err(EdgeError::Config)?;
    let answer: EnrolAnswer = client
        .enrol(&EnrolRequest {
            edge: node.to_owned(),
            code: code.trim().to_owned(),
            csr_pem: csr,
        })
        .await
        .map_err(|e| EdgeError::Link(format!("enrolment refused: {e}")))?;
    let enrolment = Enrolment {
        edge: answer.edge,
        hub: answer.hub,
        certificate_pem: answer.certificate_pem,
        hub_public_key: answer.hub_public_key,
        key_algorithm: answer.key_algorithm,
        enrolled_at_ms: unsilo_bus::now_ms(),
    };
    let key_path = dir.join(KEY_FILE);
    crate::secrets::write_private(&key_path, key.serialize_pem().as_bytes())
        .map_err(|e| file_error(&key_path, e))?;
    let path = dir.join(ENROLMENT_FILE);
    let json = serde_json::to_vec_pretty(&enrolment).map_err(|e| file_error(&path, e))?;
    std::fs::write(&path, json).map_err(|e| file_error(&path, e))?;
    let ca_path = dir.join("link-ca.pem");
    std::fs::write(&ca_path, answer.ca_pem).map_err(|e| file_error(&ca_path, e))?;
    info!(node = %enrolment.edge, hub = %enrolment.hub, "Enrolled with the hub.");
    Ok(enrolment)
}

/// The edge's bus: embedded in `<data_dir>/bus`, its `raw.` topics encrypted at rest unless switched off.
async fn open_bus(config: &EdgeConfig) -> Result<Arc<dyn Bus>, EdgeError> {
    let bus: Arc<dyn Bus> = Arc::new(unsilo_bus::embedded::EmbeddedBus::open(
        &config.edge.data_dir.join("bus"),
    )?);
    if !config.security.keys.encrypt_at_rest {
        warn!("[security.keys] encrypt_at_rest = false: the edge's buffer holds personal data in clear.");
        return Ok(bus);
    }
    let cipher = crate::at_rest::RecordCipher::open(
        &config.security.keys,
        &secret_file(config),
        config.security.crypto,
        crate::config::RetentionConfig::default(),
    )
    .map_err(|e| EdgeError::Config(format!("encryption at rest: {e}")))?;
    Ok(Arc::new(crate::at_rest::EncryptedBus::new(
        bus,
        Arc::new(cipher),
    )))
}

fn secret_file(config: &EdgeConfig) -> PathBuf {
    config.edge.data_dir.join("edge.secret")
}

/// Runs the edge until `shutdown` fires.
pub async fn run(config: EdgeConfig, shutdown: Shutdown) -> Result<(), EdgeError> {
    let (enrolment, key_pem) =
        Enrolment::load(&config.link_dir())?.ok_or(EdgeError::NotEnrolled)?;
    if enrolment.edge != config.edge.id {
        return Err(EdgeError::Config(format!(
            "the data directory holds the enrolment of edge `{}`, but [edge] id is `{}`",
            enrolment.edge, config.edge.id
        )));
    }
    let identity = format!("{}\n{}", enrolment.certificate_pem, key_pem);
    let client = Arc::new(
        client::LinkClient::new(
            &config.link.hub,
            config.link.hub_ca.as_deref(),
            Some(identity.as_bytes()),
            config.link.compress,
            config.link.max_bytes_per_second,
        )
        .map_err(EdgeError::Config)?,
    );
    let bus = open_bus(&config).await?;
    let secret = crate::secrets::HubSecret::load_or_create(&secret_file(&config))
        .map_err(|e| EdgeError::Config(e.to_string()))?
        .with_suite(config.security.crypto);
    let seal = unsilo_bus::seal::RecordSeal::new(&config.edge.id, secret.seal_key())
        .with_suite(config.security.crypto);
    let names: Vec<String> = config.connectors.iter().map(|c| c.name.clone()).collect();
    let buffer = buffer::Buffer::open(
        bus.clone(),
        &names,
        buffer::BufferLimits {
            max_bytes: config.buffer.max_bytes,
            alarm_percent: config.buffer.alarm_percent,
        },
    )
    .await?;
    let buffer_id = forward::buffer_id(&config.edge.data_dir)?;
    info!(
        edge = %config.edge.id,
        hub = %config.link.hub,
        connectors = names.len(),
        deliveries = config.deliveries.len(),
        "unsilo edge is running."
    );
    let node = Arc::new(forward::EdgeNode::new(
        config.clone(),
        enrolment,
        client.clone(),
        bus.clone(),
        buffer,
        seal,
        buffer_id,
    )?);
    let node_push = node.push_endpoints();
    let mut tasks = vec![
        tokio::spawn(node.clone().forward(shutdown.clone())),
        tokio::spawn(node.clone().report(shutdown.clone())),
    ];
    for d in &config.deliveries {
        tasks.push(tokio::spawn(deliver::run(
            d.clone(),
            client.clone(),
            node.delivery_counts(&d.subscription),
            shutdown.clone(),
        )));
    }
    if let Some(addr) = config.edge.listen {
        let tls = config
            .edge
            .tls
            .as_ref()
            .map(crate::server::load_tls)
            .transpose()
            .map_err(|e| EdgeError::Config(format!("[edge.tls]: {e}")))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| EdgeError::Config(format!("[edge] listen {addr}: {e}")))?;
        info!(%addr, tls = tls.is_some(), "The edge takes pushes from the department's systems.");
        let options = crate::listener::ListenerOptions {
            tls,
            ..crate::listener::ListenerOptions::default()
        };
        let mut until = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let stopped = async move { until.wait().await };
            if let Err(e) =
                crate::listener::serve(listener, push::router(node_push), options, stopped).await
            {
                tracing::error!(error = %e, "The edge's push endpoint stopped.");
            }
        }));
    }
    let mut stopped = shutdown.clone();
    stopped.wait().await;
    node.stop_sources().await;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    bus.shutdown().await?;
    info!("unsilo edge stopped cleanly.");
    Ok(())
}
