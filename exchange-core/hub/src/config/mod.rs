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

use unsilo_registry::Compatibility;

mod admin;
mod bus;
#[cfg(test)]
mod tests;

pub use admin::{AdminConfig, SecondFactor, SignInConfig};
pub use bus::{
    parse_size, BusConfig, BusKind, EmbeddedConfig, RetentionClass, RetentionConfig, TopicPlan,
};

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
    /// The parent hub this hub is a member of (级联), if any.
    #[serde(default)]
    pub parent: Option<crate::link::parent::ParentConfig>,
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
    /// A directory of working-day calendar files (`<year>.toml`, see docs/workflow.md) adding years to the
    /// shipped ones or replacing them; the sharing deadlines run on the result.
    #[serde(default)]
    pub calendar_dir: Option<PathBuf>,
    /// The highest clearance this hub grants an agency of a linked hub (级联: the parent's agencies asking for
    /// this hub's data, or a member's), whatever that hub declares for it: `S1`..`S4`, default `S1` — a hub it
    /// does not vouch for is treated as the most restrictive case. Fields above it need the provider's explicit
    /// above-clearance approval, as for any agency.
    #[serde(default)]
    pub linked_hub_clearance: Option<String>,
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
    /// The providing organisation (提供方, an agency id) of the resources this connector feeds: named in their
    /// catalogue entries when the hub seeds them, so its reviewers decide the 有条件 requests.
    #[serde(default)]
    pub provider: Option<String>,
    /// Which of the connector's schemas `provider` provides (default: all it feeds) — for a connector that
    /// also contributes records to a resource another organisation provides.
    #[serde(default)]
    pub provider_schemas: Option<Vec<String>>,
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
            provider: None,
            provider_schemas: None,
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
        if let Some(parent) = &self.parent {
            parent.check().map_err(ConfigError::Invalid)?;
        }
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
        self.admin.check()?;
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

    /// Where the link CA's key and certificate live: beside the deployment secret.
    pub fn link_ca_dir(&self) -> PathBuf {
        self.secret_file()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// The deployment secret (created if missing), deriving its keys under `[security] crypto`.
    pub fn load_secret(&self) -> Result<crate::secrets::HubSecret, crate::secrets::SecretError> {
        crate::secrets::HubSecret::load_or_create(&self.secret_file())
            .map(|s| s.with_suite(self.security.crypto))
    }

    /// Where the on-disk person index of this hub's audit log lives: `audit-index-<hub id>` beside the deployment
    /// secret (see [`crate::audit::person`]). It can be deleted; the hub rebuilds it from the log.
    pub fn person_index_dir(&self) -> PathBuf {
        let secret = self.secret_file();
        let dir = secret.parent().map(Path::to_path_buf).unwrap_or_default();
        dir.join(format!("audit-index-{}", self.safe_hub_id()))
    }

    /// The hub id with every character but ASCII letters, digits, `-` and `_` replaced by `_`: safe in a file name.
    fn safe_hub_id(&self) -> String {
        self.hub
            .id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// This hub's audit signing key file: `[security] signing_key_file`, else `audit-signing-<hub id>.sm2.pem`
    /// (gm) or `audit-signing-<hub id>.key` (international) beside the deployment secret.
    pub fn signing_key_file(&self) -> PathBuf {
        self.security.signing_key_file.clone().unwrap_or_else(|| {
            let secret = self.secret_file();
            let dir = secret.parent().map(Path::to_path_buf).unwrap_or_default();
            let safe = self.safe_hub_id();
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

/// `true`, for `#[serde(default = …)]`.
pub(crate) fn default_true() -> bool {
    true
}
