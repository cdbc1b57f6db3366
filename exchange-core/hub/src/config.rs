//! The typed configuration of `unsilo serve` (`deploy/embedded.toml`, `deploy/kafka.toml`).
//!
//! Every section has defaults, so an empty file — or no file at all — runs the hub on the embedded bus with its
//! data in `./data` and HTTP on `127.0.0.1:8080`. Unknown keys are errors that name the key and its line, so a
//! typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use unsilo_connectors::transport::file_drop::FileDropConfig;
use unsilo_connectors::transport::http_poll::HttpPollConfig;
use unsilo_connectors::transport::kafka_topic::KafkaTopicConfig;
use unsilo_connectors::transport::sql_poll::SqlPollConfig;

use unsilo_bus::kafka::KafkaOptions;
use unsilo_registry::Compatibility;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys (the message names key and line).
    #[error("invalid configuration in {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, as the TOML parser says it (with line and column).
        message: String,
    },
    /// The settings contradict each other.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP server.
    #[serde(default)]
    pub http: HttpConfig,
    /// The message bus.
    #[serde(default)]
    pub bus: BusConfig,
    /// The schema registry.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Source connectors this hub runs (`[[connectors]]`, one table each).
    #[serde(default)]
    pub connectors: Vec<ConnectorConfig>,
    /// This hub process.
    #[serde(default)]
    pub hub: HubConfig,
    /// Keys.
    #[serde(default)]
    pub security: SecurityConfig,
    /// The admin API.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Delivery channels.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Rate limits, body and header sizes, timeouts of every HTTP surface.
    #[serde(default)]
    pub limits: crate::access::LimitsConfig,
    /// Policy settings of the deployment.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The evidence log.
    #[serde(default)]
    pub audit: AuditConfig,
}

/// Policy settings of the deployment.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Approve at once a request whose fields are all within the agency's clearance (none in clear at S4),
    /// granting it only UNCONDITIONAL (无条件共享), non-CORE records: `share_attribute == "UNCONDITIONAL" &&
    /// data_grade != "CORE"` is AND-ed to its filter and the audit log records the approval as automatic.
    /// Default false: every request waits for an operator.
    #[serde(default)]
    pub auto_approve_unconditional: bool,
}

/// The evidence log.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Sign a checkpoint of this hub's chain after this many new entries (default 1000).
    #[serde(default = "default_checkpoint_entries")]
    pub checkpoint_every_entries: u64,
    /// …and at least this often while the chain grows (default `"10s"`).
    #[serde(
        default = "default_checkpoint_interval",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub checkpoint_interval: std::time::Duration,
}

fn default_checkpoint_entries() -> u64 {
    1000
}

fn default_checkpoint_interval() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every_entries: default_checkpoint_entries(),
            checkpoint_interval: default_checkpoint_interval(),
        }
    }
}

/// This hub process.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// The process's name in the audit log: its chain of evidence. Stable across restarts; unique per process
    /// when several share one Kafka cluster (default `hub`).
    #[serde(default = "default_hub_id")]
    pub id: String,
    /// The name shared by the hub processes that split the routing work between them: routers join consumer
    /// group `<cluster>.router.<schema>` (default `unsilo`). Processes of one deployment use the same name.
    #[serde(default = "default_cluster")]
    pub cluster: String,
}

fn default_cluster() -> String {
    "unsilo".to_owned()
}

fn default_hub_id() -> String {
    "hub".to_owned()
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            id: default_hub_id(),
            cluster: default_cluster(),
        }
    }
}

/// Keys.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// The deployment secret (64 hex characters), root of the pseudonymisation and webhook signing keys. Created
    /// with a random secret if missing. Default: `hub.secret` in the embedded bus's data directory. Every hub
    /// process of one deployment must use the same secret, or pseudonyms will differ between them.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The algorithms in every cryptographic slot: `"gm"` (国密: SM2 signatures, SM3 hashes, HMAC-SM3, SM4-GCM;
    /// the default) or `"international"` (Ed25519, SHA-256, HMAC-SHA256, AES-256-GCM). Every hub of one
    /// deployment must agree (pseudonyms and seals depend on it).
    #[serde(default)]
    pub crypto: unsilo_schemas::crypto::Suite,
    /// This hub's key that signs its audit chain and checkpoints: SM2 (PKCS#8 PEM) under `gm`, Ed25519 (hex
    /// PKCS#8) under `international`. Created if missing.
    /// Default: `audit-signing-<hub id>.key` beside the deployment secret. One key per hub id; never shared.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// Public keys (hex, as `unsilo audit keys` prints them) of the other hubs whose chains share the audit
    /// topic, by hub id, so `audit verify` checks their signatures against pinned keys.
    #[serde(default)]
    pub audit_public_keys: std::collections::BTreeMap<String, String>,
    /// Encryption at rest and its keys (`[security.keys]`).
    #[serde(default)]
    pub keys: crate::at_rest::KeysConfig,
}

/// The admin API.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Operators, their one role and the SHA-256 of their tokens (`[[admin.operators]] name = "…", role =
    /// "system" | "security" | "audit", token_sha256 = "…"`: 三员分立). Without any, only agencies can call the
    /// admin API (and nothing can be approved). One name, or one token, with two roles is refused.
    #[serde(default)]
    pub operators: Vec<crate::auth::OperatorCredential>,
    /// How administrators sign in to the console (等保 8.1.4.1).
    #[serde(default)]
    pub sign_in: SignInConfig,
}

/// The administrators' second sign-in factor, besides their token.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactor {
    /// A one-time code (RFC 6238) from an authenticator app: `unsilo operator totp enrol <name>`. The default.
    #[default]
    Totp,
    /// The TLS client certificate bound to the operator (`client_cert_sha256`), under mutual TLS.
    ClientCertificate,
    /// None: the token alone. For a laboratory, never for production — the hub warns at every start.
    None,
}

/// `[admin.sign_in]`: the console's sign-in for administrators — second factor, lockout, session limits.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignInConfig {
    /// The second factor operators give with their token (default `"totp"`). Agencies sign in to the portal
    /// with their token (and their client certificate when bound to one).
    #[serde(default)]
    pub second_factor: SecondFactor,
    /// Failed sign-ins that lock a name (default 5).
    #[serde(default = "default_lockout_failures")]
    pub lockout_failures: u32,
    /// How long a locked name stays locked (default `"30m"`); the right credentials are refused meanwhile.
    #[serde(
        default = "default_lockout_duration",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub lockout_duration: std::time::Duration,
    /// A session unused this long ends (default `"15m"`).
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub idle_timeout: std::time::Duration,
    /// A session ends this long after sign-in, however busy (default `"8h"`).
    #[serde(
        default = "default_session_lifetime",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub session_lifetime: std::time::Duration,
    /// Sessions one person may hold at once (default 3); signing in past it ends their oldest session.
    #[serde(default = "default_max_sessions")]
    pub max_sessions_per_person: usize,
    /// Ask operators for the second factor on the API as well (default true): with `second_factor = "totp"`,
    /// an operator's API call carries the current one-time code in `X-Unsilo-OTP` (`unsilo … --otp`); an
    /// operator bound to a client certificate presents it instead. Only a laboratory turns it off.
    #[serde(default = "default_true")]
    pub api_second_factor: bool,
}

fn default_lockout_failures() -> u32 {
    5
}
fn default_lockout_duration() -> std::time::Duration {
    std::time::Duration::from_secs(30 * 60)
}
fn default_idle_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(15 * 60)
}
fn default_session_lifetime() -> std::time::Duration {
    std::time::Duration::from_secs(8 * 3600)
}
fn default_max_sessions() -> usize {
    3
}

impl Default for SignInConfig {
    fn default() -> Self {
        Self {
            second_factor: SecondFactor::default(),
            lockout_failures: default_lockout_failures(),
            lockout_duration: default_lockout_duration(),
            idle_timeout: default_idle_timeout(),
            session_lifetime: default_session_lifetime(),
            max_sessions_per_person: default_max_sessions(),
            api_second_factor: true,
        }
    }
}

/// Delivery channels.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Extra CA certificates (PEM file) trusted for webhook endpoints, e.g. a government private CA.
    #[serde(default)]
    pub webhook_ca_file: Option<PathBuf>,
    /// Allow `http://` webhook URLs (only for development; default false).
    #[serde(default)]
    pub webhook_allow_plain_http: bool,
    /// Attempts per record before a webhook delivery goes to the delivery DLQ (default 8).
    #[serde(default = "default_webhook_attempts")]
    pub webhook_max_attempts: u32,
    /// Non-public networks deliveries — webhook, SQL and Kafka — may reach anyway (e.g. `["10.8.0.0/16"]` for a
    /// government private network). By default every address of the IANA special-purpose registries is
    /// refused (loopback, link-local, private, reserved …). `webhook_allow_cidrs` is the older name.
    #[serde(default, alias = "webhook_allow_cidrs")]
    pub egress_allow_cidrs: Vec<String>,
}

fn default_webhook_attempts() -> u32 {
    8
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            webhook_ca_file: None,
            webhook_allow_plain_http: false,
            webhook_max_attempts: default_webhook_attempts(),
            egress_allow_cidrs: Vec::new(),
        }
    }
}

/// One source connector instance.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Instance name (names its `raw.` and `dlq.` topics and its checkpoint): a-z, 0-9, `-`, `_`.
    pub name: String,
    /// Which definition (contract + mappings) to use: `builtin:<name>` for a built-in connector, or the path
    /// of a definition folder (see docs/writing-a-connector.md).
    pub definition: String,
    /// How records arrive: `http_push`, `http_poll`, `sql_poll`, `file_drop` or `kafka_topic`; the section
    /// of the same name holds its settings.
    pub transport: TransportKind,
    /// Settings of the `http_push` transport.
    pub http_push: Option<HttpPushConfig>,
    /// Settings of the `http_poll` transport.
    pub http_poll: Option<HttpPollConfig>,
    /// Settings of the `sql_poll` transport.
    pub sql_poll: Option<SqlPollConfig>,
    /// Settings of the `file_drop` transport.
    pub file_drop: Option<FileDropConfig>,
    /// Settings of the `kafka_topic` transport.
    pub kafka_topic: Option<KafkaTopicConfig>,
}

impl ConnectorConfig {
    /// A connector `name` of `definition` whose source pushes over HTTP with a token of this SHA-256.
    pub fn http_push(name: &str, definition: &str, token_sha256: String) -> Self {
        Self {
            name: name.to_owned(),
            definition: definition.to_owned(),
            transport: TransportKind::HttpPush,
            http_push: Some(HttpPushConfig {
                token_sha256,
                report: false,
            }),
            http_poll: None,
            sql_poll: None,
            file_drop: None,
            kafka_topic: None,
        }
    }
}

/// How a connector's records arrive.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// The source POSTs JSON to the hub's `/ingest/<connector>` endpoint.
    HttpPush,
    /// The hub polls the source's HTTP API with an incremental cursor.
    HttpPoll,
    /// The hub polls a PostgreSQL or MySQL table by a monotonic column.
    SqlPoll,
    /// The hub watches a folder for CSV, XLSX and JSON-lines files.
    FileDrop,
    /// The hub consumes a topic of the source's own Kafka cluster.
    KafkaTopic,
}

impl TransportKind {
    /// The name used in the configuration file (and as the section name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpPush => "http_push",
            Self::HttpPoll => "http_poll",
            Self::SqlPoll => "sql_poll",
            Self::FileDrop => "file_drop",
            Self::KafkaTopic => "kafka_topic",
        }
    }
}

/// The HTTP push transport.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpPushConfig {
    /// SHA-256 of the token the source presents (`Authorization: Bearer <token>`), as 64 hex digits. The hub
    /// never stores the token itself: make one with `openssl rand -hex 32`, give it to the source system, and put
    /// `printf %s "$TOKEN" | sha256sum` here.
    pub token_sha256: String,
    /// Whether this source's credential may ask for person release reports (`POST /admin/reports/person`):
    /// for a platform such as 秦务员 that answers citizens asking who received their data. Default `false`.
    #[serde(default)]
    pub report: bool,
}

impl HttpPushConfig {
    /// The digest as bytes, or why it is not 64 hex digits.
    pub fn digest(&self) -> Result<[u8; 32], String> {
        let bytes = hex::decode(self.token_sha256.trim())
            .map_err(|e| format!("token_sha256 is not hex: {e}"))?;
        bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "token_sha256 has {} bytes, expected 32 (64 hex digits)",
                b.len()
            )
        })
    }
}

/// The HTTP server.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on (default `127.0.0.1:8080`; loopback only unless you say otherwise).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Serve HTTPS (rustls) with this certificate and key instead of plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Also serve TLCP (GB/T 38636-2020, 国密 SSL) on a port of its own, with an SM2 signing and an SM2
    /// encryption certificate (`[http.tlcp]`; needs a build with the `tlcp` feature).
    #[serde(default)]
    pub tlcp: Option<TlcpConfig>,
}

/// `[http.tlcp]`: the TLCP listener's address and its SM2 certificate pair.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlcpConfig {
    /// Address to listen on, e.g. `0.0.0.0:8443`.
    pub listen: SocketAddr,
    /// PEM file of the SM2 signing certificate (chain, leaf first).
    pub sign_cert: PathBuf,
    /// PEM file of its private key (readable by the hub's user only).
    pub sign_key: PathBuf,
    /// PEM file of the SM2 encryption certificate.
    pub enc_cert: PathBuf,
    /// PEM file of its private key.
    pub enc_key: PathBuf,
    /// PEM file of the CA(s) whose client certificates the listener accepts (optional, as with `[http] tls`).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// The server's TLS certificate and key.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1). Keep it readable by the hub's user only.
    pub key: PathBuf,
    /// PEM file of the CA(s) whose client certificates the hub accepts (mutual TLS). Presenting one is
    /// optional for a connection, but an agency registered with `client_cert_sha256` is accepted only on a
    /// connection that presented exactly that certificate.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tls: None,
            tlcp: None,
        }
    }
}

/// Which bus implementation runs the hub.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// The embedded bus in a local data directory (the default).
    #[default]
    Embedded,
    /// A Kafka-protocol cluster.
    Kafka,
}

/// The message bus.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// `embedded` (default) or `kafka`.
    #[serde(default)]
    pub kind: BusKind,
    /// Settings of the embedded bus (used when `kind = "embedded"`).
    #[serde(default)]
    pub embedded: EmbeddedConfig,
    /// Settings of the Kafka bus (required when `kind = "kafka"`).
    pub kafka: Option<KafkaOptions>,
    /// Partitions of each `std.<schema>` topic the hub creates at start (default 4).
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// How long and how much each class of topic keeps (`[bus.retention]`).
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// Retention per topic class (`[bus.retention.std]`, `.raw`, `.dlq`, `.sub`), by age and by size per
/// partition. Kafka topics get it as `retention.ms` / `retention.bytes` when the hub creates them; the embedded
/// bus enforces it every `check_every`. The control topics and the audit log (`_unsilo.*`) have none: evidence
/// is never removed by retention.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// How often the embedded bus removes what retention allows (default `1m`).
    #[serde(
        default = "default_retention_check",
        deserialize_with = "duration_text"
    )]
    pub check_every: std::time::Duration,
    /// Normalised records, `std.<schema>` (default: 365 days) — what backfills can reach.
    #[serde(default = "RetentionClass::std_default")]
    pub std: RetentionClass,
    /// Raw originals, `raw.<connector>` (default: 180 days) — what re-normalisation can reach.
    #[serde(default = "RetentionClass::raw_default")]
    pub raw: RetentionClass,
    /// Rejected originals, `dlq.<connector>` and `dlq.<agency>.<subscription>` (default: 180 days).
    #[serde(default = "RetentionClass::raw_default")]
    pub dlq: RetentionClass,
    /// Released records waiting for their subscriber, `sub.<agency>.<subscription>` (default: 30 days).
    #[serde(default = "RetentionClass::sub_default")]
    pub sub: RetentionClass,
}

fn default_retention_check() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            check_every: default_retention_check(),
            std: RetentionClass::std_default(),
            raw: RetentionClass::raw_default(),
            dlq: RetentionClass::raw_default(),
            sub: RetentionClass::sub_default(),
        }
    }
}

impl RetentionConfig {
    /// The retention of a topic, by its class (none for control topics and the audit log).
    pub fn for_topic(&self, topic: &str) -> unsilo_bus::Retention {
        use unsilo_schemas::names::{DLQ_PREFIX, RAW_PREFIX, STD_PREFIX, SUB_PREFIX};
        let class = if topic.starts_with(STD_PREFIX) {
            &self.std
        } else if topic.starts_with(RAW_PREFIX) {
            &self.raw
        } else if topic.starts_with(DLQ_PREFIX) {
            &self.dlq
        } else if topic.starts_with(SUB_PREFIX) {
            &self.sub
        } else {
            return unsilo_bus::Retention::FOREVER;
        };
        class.retention()
    }

    /// The spec of a topic the hub creates: its name, partitions and its class's retention.
    pub fn topic(&self, name: impl Into<String>, partitions: u32) -> unsilo_bus::TopicSpec {
        let name = name.into();
        let retention = self.for_topic(&name);
        unsilo_bus::TopicSpec::new(name, partitions).with_retention(retention)
    }
}

/// The retention of one topic class.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionClass {
    /// Records older than this are removed (`30d`, `12h`; `"forever"` keeps them).
    #[serde(default, deserialize_with = "age_limit")]
    pub max_age: Option<std::time::Duration>,
    /// Each partition keeps at most about this much, removing its oldest records (`500MiB`, `10GB`, or bytes).
    #[serde(default, deserialize_with = "size_limit")]
    pub max_bytes: Option<u64>,
}

impl RetentionClass {
    fn days(days: u64) -> Self {
        Self {
            max_age: Some(std::time::Duration::from_secs(days * 86_400)),
            max_bytes: None,
        }
    }
    fn std_default() -> Self {
        Self::days(365)
    }
    fn raw_default() -> Self {
        Self::days(180)
    }
    fn sub_default() -> Self {
        Self::days(30)
    }

    /// As the bus takes it.
    pub fn retention(&self) -> unsilo_bus::Retention {
        unsilo_bus::Retention {
            max_age_ms: self
                .max_age
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            max_bytes: self.max_bytes,
        }
    }
}

fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim())
        .map_err(|e| serde::de::Error::custom(format!("`{text}`: {e} (e.g. \"1m\", \"30s\")")))
}

fn age_limit<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim() == "forever" {
        return Ok(None);
    }
    humantime::parse_duration(text.trim())
        .map(Some)
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "max_age `{text}`: {e} (e.g. \"30d\", \"12h\", \"forever\")"
            ))
        })
}

/// Parses a size: a number of bytes, or a number with `KB`, `MB`, `GB`, `TB` (powers of 1000) or `KiB`, `MiB`,
/// `GiB`, `TiB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 500MiB, 10GB, 1048576)"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

fn size_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Bytes(u64),
        Text(String),
    }
    match Given::deserialize(d)? {
        Given::Bytes(n) => Ok(Some(n)),
        Given::Text(t) => parse_size(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

fn default_partitions() -> u32 {
    4
}

impl BusConfig {
    /// How the hub lays out the topics it creates: partitions and retention per class.
    pub fn topic_plan(&self) -> TopicPlan {
        TopicPlan {
            partitions: self.partitions,
            retention: self.retention.clone(),
        }
    }
}

/// How the hub lays out the topics it creates: partition count and the retention of each topic class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPlan {
    /// Partitions of `std.`, `raw.` and `sub.` topics.
    pub partitions: u32,
    /// Retention by topic class.
    pub retention: RetentionConfig,
}

impl Default for TopicPlan {
    fn default() -> Self {
        Self::with_partitions(default_partitions())
    }
}

impl TopicPlan {
    /// The plan of a test or a benchmark: `partitions` partitions, the default retention.
    pub fn with_partitions(partitions: u32) -> Self {
        Self {
            partitions,
            retention: RetentionConfig::default(),
        }
    }

    /// A topic with the plan's partition count and its class's retention.
    pub fn topic(&self, name: impl Into<String>) -> unsilo_bus::TopicSpec {
        self.retention.topic(name, self.partitions)
    }

    /// A topic with one partition (dead letters: one total order) and its class's retention.
    pub fn single(&self, name: impl Into<String>) -> unsilo_bus::TopicSpec {
        self.retention.topic(name, 1)
    }
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            kind: BusKind::Embedded,
            embedded: EmbeddedConfig::default(),
            kafka: None,
            partitions: default_partitions(),
            retention: RetentionConfig::default(),
        }
    }
}

/// The embedded bus.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Data directory (default `./data`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// fsync before acknowledging (default `true`; turn off only for throw-away demos).
    #[serde(default = "default_true")]
    pub fsync: bool,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

fn default_true() -> bool {
    true
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            fsync: true,
        }
    }
}

/// The schema registry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Global compatibility level until an operator changes it (default `BACKWARD`).
    #[serde(default = "default_compatibility")]
    pub default_compatibility: Compatibility,
    /// Let callers without credentials read the registry (subjects, versions, schemas; never the agencies'
    /// `sub.*` view subjects). Writes always need an operator. Default false.
    #[serde(default)]
    pub anonymous_read: bool,
}

fn default_compatibility() -> Compatibility {
    Compatibility::Backward
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            default_compatibility: default_compatibility(),
            anonymous_read: false,
        }
    }
}

/// Logging.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `info,unsilo_hub=debug` (`RUST_LOG` overrides it).
    #[serde(default = "default_filter")]
    pub filter: String,
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A directory for daily log files (`unsilo.YYYY-MM-DD.log`), besides standard error. Without it the log
    /// goes to standard error only — under systemd, to journald, whose retention must then be set to at least
    /// six months (网络安全法 Art. 21; see docs/compliance.md).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Daily files kept in `dir` (default 180: six months, 网络安全法 Art. 21); older ones are removed.
    #[serde(default = "default_keep_days")]
    pub keep_days: usize,
}

fn default_filter() -> String {
    "info".to_owned()
}

fn default_keep_days() -> usize {
    180
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: default_filter(),
            format: LogFormat::Text,
            dir: None,
            keep_days: default_keep_days(),
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks settings that depend on each other.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.bus.kind == BusKind::Kafka && self.bus.kafka.is_none() {
            return Err(ConfigError::Invalid(
                "bus.kind is \"kafka\" but there is no [bus.kafka] section with bootstrap_servers"
                    .into(),
            ));
        }
        if self.bus.partitions == 0 || self.bus.partitions > 10_000 {
            return Err(ConfigError::Invalid(format!(
                "bus.partitions must be between 1 and 10000, got {}",
                self.bus.partitions
            )));
        }
        if self.bus.kind == BusKind::Kafka && self.security.secret_file.is_none() {
            return Err(ConfigError::Invalid(
                "bus.kind is \"kafka\": set [security] secret_file, one file shared by every hub process (pseudonyms must agree)"
                    .into(),
            ));
        }
        if self.http.tlcp.is_some() && !cfg!(feature = "tlcp") {
            return Err(ConfigError::Invalid(
                "[http.tlcp] is set but this build has no TLCP: build unsilo with `--features tlcp` (Tongsuo), or terminate TLCP at a certified 国密 gateway".into(),
            ));
        }
        let sign_in = &self.admin.sign_in;
        if sign_in.lockout_failures == 0
            || sign_in.lockout_duration.is_zero()
            || sign_in.idle_timeout.is_zero()
            || sign_in.session_lifetime < sign_in.idle_timeout
            || sign_in.max_sessions_per_person == 0
        {
            return Err(ConfigError::Invalid(
                "admin.sign_in: lockout_failures, lockout_duration, idle_timeout and max_sessions_per_person must be greater than zero, and session_lifetime at least idle_timeout".into(),
            ));
        }
        if sign_in.second_factor == SecondFactor::ClientCertificate {
            if let Some(o) = self
                .admin
                .operators
                .iter()
                .find(|o| o.client_cert_sha256.is_none())
            {
                return Err(ConfigError::Invalid(format!(
                    "admin.sign_in.second_factor is \"client_certificate\" but operator `{}` has no client_cert_sha256",
                    o.name
                )));
            }
        }
        let mut operator_names = std::collections::HashMap::new();
        for o in &self.admin.operators {
            // 三员分立: one name holds one role. The same name twice — with two roles or one — is refused.
            if o.name.trim().is_empty() || o.name == "hub" {
                return Err(ConfigError::Invalid(format!(
                    "admin operator name `{}` is reserved or empty; give each operator their own name",
                    o.name
                )));
            }
            if let Some(first) = operator_names.insert(o.name.as_str(), o.role) {
                return Err(ConfigError::Invalid(format!(
                    "admin operator `{}` is configured twice (as {first} and as {}); one person holds one role (三员分立)",
                    o.name, o.role
                )));
            }
            if o.token_sha256.len() != 64 || !o.token_sha256.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(ConfigError::Invalid(format!(
                    "admin operator `{}`: token_sha256 must be 64 hex characters",
                    o.name
                )));
            }
            if crate::auth::is_obvious_token_digest(&o.token_sha256) {
                return Err(ConfigError::Invalid(format!(
                    "admin operator `{}`: token_sha256 is the digest of an obvious token anyone would try; make a real one with `unsilo operator token new --name {}`",
                    o.name, o.name
                )));
            }
        }
        for c in &self.connectors {
            if c.http_push
                .as_ref()
                .is_some_and(|p| crate::auth::is_obvious_token_digest(&p.token_sha256))
            {
                return Err(ConfigError::Invalid(format!(
                    "connector `{}`: http_push.token_sha256 is the digest of an obvious token anyone would try; make a real one with `unsilo operator token new`",
                    c.name
                )));
            }
        }
        if self.hub.id.is_empty() || self.hub.id.chars().any(char::is_control) {
            return Err(ConfigError::Invalid(
                "hub.id must be a non-empty name".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.connectors {
            let name_ok = !c.name.is_empty()
                && c.name.len() <= 64
                && c.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !name_ok {
                return Err(ConfigError::Invalid(format!(
                    "connector name `{}` must be 1–64 characters of a-z, 0-9, '-' and '_'",
                    c.name
                )));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "connector `{}` is configured twice",
                    c.name
                )));
            }
            let has_section = match c.transport {
                TransportKind::HttpPush => c.http_push.is_some(),
                TransportKind::HttpPoll => c.http_poll.is_some(),
                TransportKind::SqlPoll => c.sql_poll.is_some(),
                TransportKind::FileDrop => c.file_drop.is_some(),
                TransportKind::KafkaTopic => c.kafka_topic.is_some(),
            };
            if !has_section {
                let t = c.transport.as_str();
                return Err(ConfigError::Invalid(format!(
                    "connector `{}` uses transport \"{t}\" but has no [connectors.{t}] section",
                    c.name
                )));
            }
            if let Some(push) = &c.http_push {
                push.digest()
                    .map_err(|e| ConfigError::Invalid(format!("connector `{}`: {e}", c.name)))?;
            }
        }
        // A credential names one principal: no two operators or push connectors may share a token.
        let mut digests = std::collections::HashMap::new();
        let pushes = self
            .connectors
            .iter()
            .filter_map(|c| {
                Some((
                    format!("connector `{}`", c.name),
                    c.http_push.as_ref()?.digest().ok()?,
                ))
            })
            .map(|(who, d)| (who, hex::encode(d)));
        let operators = self.admin.operators.iter().map(|o| {
            (
                format!("operator `{}`", o.name),
                o.token_sha256.to_ascii_lowercase(),
            )
        });
        for (who, digest) in pushes.chain(operators) {
            if let Some(first) = digests.insert(digest, who.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "{first} and {who} have the same token; give each its own"
                )));
            }
        }
        self.limits
            .check()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        crate::egress::EgressPolicy::new(&self.delivery.egress_allow_cidrs)
            .map_err(|e| ConfigError::Invalid(format!("delivery.{e}")))?;
        if self.audit.checkpoint_every_entries == 0 || self.audit.checkpoint_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "audit: checkpoint_every_entries and checkpoint_interval must be greater than zero"
                    .into(),
            ));
        }
        if let Some(k) = &self.bus.kafka {
            if k.bootstrap_servers.trim().is_empty() {
                return Err(ConfigError::Invalid(
                    "bus.kafka.bootstrap_servers is empty".into(),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// The deployment secret's file: `[security] secret_file`, else `hub.secret` in the embedded data directory.
    pub fn secret_file(&self) -> PathBuf {
        self.security
            .secret_file
            .clone()
            .unwrap_or_else(|| self.bus.embedded.data_dir.join("hub.secret"))
    }

    /// The deployment secret (created if missing), deriving its keys under `[security] crypto`.
    pub fn load_secret(&self) -> Result<crate::secrets::HubSecret, crate::secrets::SecretError> {
        crate::secrets::HubSecret::load_or_create(&self.secret_file())
            .map(|s| s.with_suite(self.security.crypto))
    }

    /// This hub's audit signing key file: `[security] signing_key_file`, else `audit-signing-<hub id>.sm2.pem`
    /// (gm) or `audit-signing-<hub id>.key` (international) beside the deployment secret.
    pub fn signing_key_file(&self) -> PathBuf {
        self.security.signing_key_file.clone().unwrap_or_else(|| {
            let secret = self.secret_file();
            let dir = secret.parent().map(Path::to_path_buf).unwrap_or_default();
            let safe: String = self
                .hub
                .id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            // The suites' keys live in different files, so a deployment that changes suite keeps the old key.
            match self.security.crypto {
                unsilo_schemas::crypto::Suite::Gm => {
                    dir.join(format!("audit-signing-{safe}.sm2.pem"))
                }
                unsilo_schemas::crypto::Suite::International => {
                    dir.join(format!("audit-signing-{safe}.key"))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_embedded_defaults() {
        let c = Config::parse("").expect("parse");
        assert_eq!(c.bus.kind, BusKind::Embedded);
        assert_eq!(c.bus.embedded.data_dir, PathBuf::from("./data"));
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.registry.default_compatibility, Compatibility::Backward);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err =
            Config::parse("[http]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n").expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("listne"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn kafka_needs_its_section() {
        let err = Config::parse("[bus]\nkind = \"kafka\"\n").expect_err("must fail");
        assert!(err.to_string().contains("[bus.kafka]"), "{err}");
        let kafka =
            "[bus]\nkind = \"kafka\"\n[bus.kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n";
        let err = Config::parse(kafka).expect_err("a Kafka hub needs a shared secret file");
        assert!(err.to_string().contains("secret_file"), "{err}");
        let c = Config::parse(&format!(
            "{kafka}[security]\nsecret_file = \"/etc/unsilo/hub.secret\"\n"
        ))
        .expect("parse");
        assert_eq!(c.bus.kafka.expect("kafka").replication_factor, 1);
    }

    #[test]
    fn connectors_are_checked() {
        let ok = "[[connectors]]\nname = \"grid\"\ndefinition = \"builtin:grid\"\ntransport = \"http_push\"\n\
                  [connectors.http_push]\ntoken_sha256 = \"a3441838fdce64b1baee82b7b285f6153f583b672251831340cb950da075bdeb\"\n";
        let c = Config::parse(ok).expect("parse");
        assert_eq!(c.connectors[0].transport, TransportKind::HttpPush);
        let err = Config::parse(&ok.replace("a344", "zz44")).expect_err("bad hex");
        assert!(err.to_string().contains("token_sha256"), "{err}");
        let err = Config::parse(&format!("{ok}{ok}")).expect_err("twice");
        assert!(err.to_string().contains("configured twice"), "{err}");
        let err = Config::parse(&ok.replace(
            "transport = \"http_push\"",
            "transport = \"carrier_pigeon\"",
        ))
        .expect_err("unknown transport");
        assert!(err.to_string().contains("carrier_pigeon"), "{err}");
        let missing = "[[connectors]]\nname = \"grid\"\ndefinition = \"builtin:grid\"\ntransport = \"http_push\"\n";
        let err = Config::parse(missing).expect_err("no section");
        assert!(err.to_string().contains("[connectors.http_push]"), "{err}");
    }

    #[test]
    fn the_commented_connector_examples_parse_when_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/embedded.toml");
        let text = std::fs::read_to_string(path).expect("read");
        let start = text.find("# [[connectors]]").expect("examples");
        let uncommented: String = text[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .map(|l| {
                l.replace(
                    "\"…\"",
                    "\"a3441838fdce64b1baee82b7b285f6153f583b672251831340cb950da075bdeb\"",
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(c.connectors.len(), 5);
    }

    #[test]
    fn one_token_names_one_principal_and_security_settings_are_checked() {
        let digest = "a3441838fdce64b1baee82b7b285f6153f583b672251831340cb950da075bdeb";
        let twice = format!(
            "[[admin.operators]]\nname = \"a\"\nrole = \"system\"\ntoken_sha256 = \"{digest}\"\n\n[[admin.operators]]\nname = \"b\"\nrole = \"audit\"\ntoken_sha256 = \"{digest}\"\n"
        );
        let err = Config::parse(&twice).expect_err("shared token");
        assert!(err.to_string().contains("same token"), "{err}");
        let err = Config::parse("[delivery]\negress_allow_cidrs = [\"10.0.0.0/33\"]\n")
            .expect_err("bad cidr");
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
        let err = Config::parse("[limits]\nadmin = { per_second = 0.0, burst = 1 }\n")
            .expect_err("zero rate");
        assert!(err.to_string().contains("limits.admin"), "{err}");
        let c = Config::parse(
            "[limits]\nrequest_timeout = \"5s\"\n[registry]\nanonymous_read = true\n",
        )
        .expect("parses");
        assert_eq!(c.limits.request_timeout, std::time::Duration::from_secs(5));
        assert!(c.registry.anonymous_read);
    }

    #[test]
    fn an_obvious_operator_or_push_token_is_refused_naming_the_command_that_makes_one() {
        let digest = crate::auth::token_digest("changeme");
        let err = Config::parse(&format!(
            "[[admin.operators]]\nname = \"ops\"\nrole = \"security\"\ntoken_sha256 = \"{digest}\"\n"
        ))
        .expect_err("obvious operator token");
        let err = err.to_string();
        assert!(
            err.contains("obvious") && err.contains("unsilo operator token new"),
            "{err}"
        );
        let (_, strong) = crate::auth::new_token();
        Config::parse(&format!(
            "[[admin.operators]]\nname = \"ops\"\nrole = \"security\"\ntoken_sha256 = \"{strong}\"\n"
        ))
        .expect("a real token");
    }

    #[test]
    fn an_operator_holds_exactly_one_role() {
        let (_, a) = crate::auth::new_token();
        let (_, b) = crate::auth::new_token();
        let err = Config::parse(&format!(
            "[[admin.operators]]\nname = \"li\"\nrole = \"system\"\ntoken_sha256 = \"{a}\"\n\n[[admin.operators]]\nname = \"li\"\nrole = \"audit\"\ntoken_sha256 = \"{b}\"\n"
        ))
        .expect_err("one name, two roles");
        assert!(err.to_string().contains("三员分立"), "{err}");
        let err = Config::parse(&format!(
            "[[admin.operators]]\nname = \"li\"\ntoken_sha256 = \"{a}\"\n"
        ))
        .expect_err("no role");
        assert!(err.to_string().contains("role"), "{err}");
        let err = Config::parse(&format!(
            "[[admin.operators]]\nname = \"li\"\nrole = \"root\"\ntoken_sha256 = \"{a}\"\n"
        ))
        .expect_err("no such role");
        assert!(err.to_string().contains("security"), "{err}");
        let c = Config::parse(&format!(
            "[[admin.operators]]\nname = \"li\"\nrole = \"audit\"\ntoken_sha256 = \"{a}\"\n"
        ))
        .expect("one role");
        assert_eq!(c.admin.operators[0].role, crate::roles::Role::Audit);
    }

    #[test]
    fn shipped_deploy_files_parse() {
        for file in ["embedded.toml", "kafka.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../deploy")
                .join(file);
            Config::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}
