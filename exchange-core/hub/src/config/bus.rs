//! `[bus]`: which bus runs the hub (embedded or Kafka), its partitions, and the retention of each topic class
//! (`[bus.retention]`), with the size and age notations they are written in.

use std::path::PathBuf;

use serde::Deserialize;
use unsilo_bus::kafka::KafkaOptions;

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
    #[serde(default = "super::default_true")]
    pub fsync: bool,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            fsync: true,
        }
    }
}
