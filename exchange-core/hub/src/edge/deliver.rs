//! Local delivery at the edge: the department's subscriptions written into its own database or folder, so its
//! systems never reach out of their network.
//!
//! Each `[[deliveries]]` entry pulls one subscription from the hub over the edge's outbound link (the pull API,
//! with the agency's token), writes each batch — upserted by record id into a table (the SQL channel's table
//! shape, made from the subscription's view schema), or as one JSON-lines file per batch, written to a temporary
//! name and renamed — and only then acknowledges it. A batch written and not acknowledged (the link cut in
//! between) is pulled and written again: the same rows, the same file, nothing twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tracing::{info, warn};
use unsilo_connectors::sdk::Shutdown;

use super::buffer::ConnectorCounts;
use super::client::LinkClient;
use crate::delivery::sql::{SqlTarget, SqlWriter, RETAIN_UNTIL_COLUMN};

/// `[[deliveries]]` in `edge.toml`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// The subscription, `<agency>.<name>`.
    pub subscription: String,
    /// A file holding the agency's token (its first line).
    pub token_file: PathBuf,
    /// Most records per batch (1–1000, default 500).
    #[serde(default = "default_max")]
    pub max: usize,
    /// Write into a table of the department's PostgreSQL or MySQL database.
    #[serde(default)]
    pub sql: Option<LocalTable>,
    /// Write JSON-lines files into a folder.
    #[serde(default)]
    pub folder: Option<LocalFolder>,
}

impl std::fmt::Debug for DeliveryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryConfig")
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

fn default_max() -> usize {
    500
}

/// A table in the department's database.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTable {
    /// `postgres://…` or `mysql://…` (holds a password: never logged).
    pub url: String,
    /// `name` or `schema.name`.
    pub table: String,
}

/// A folder the department's systems read.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalFolder {
    /// The folder (created if missing).
    pub path: PathBuf,
}

impl DeliveryConfig {
    /// Checks what the types cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.sql.is_some() == self.folder.is_some() {
            return Err(format!(
                "delivery of `{}` needs exactly one of [deliveries.sql] and [deliveries.folder]",
                self.subscription
            ));
        }
        if self.max == 0 || self.max > 1000 {
            return Err(format!(
                "delivery of `{}`: max must be 1–1000",
                self.subscription
            ));
        }
        if !self.subscription.contains('.') {
            return Err(format!(
                "delivery `{}`: a subscription id is `<agency>.<name>`",
                self.subscription
            ));
        }
        Ok(())
    }

    /// `sql` or `folder`.
    pub fn target_kind(&self) -> &'static str {
        if self.sql.is_some() {
            "sql"
        } else {
            "folder"
        }
    }
}

/// One batch of the pull API, as much of it as the edge uses.
#[derive(Deserialize)]
struct PulledBatch {
    records: Vec<serde_json::Value>,
    cursor: String,
}

/// A registered schema as the registry answers it.
#[derive(Deserialize)]
struct RegisteredSchema {
    schema: String,
}

/// Writes one subscription's batches where the department wants them.
struct Writer {
    config: DeliveryConfig,
    /// The table writers, by view schema id.
    tables: HashMap<u32, (SqlWriter, apache_avro::Schema)>,
}

impl Writer {
    async fn write(
        &mut self,
        client: &LinkClient,
        token: &str,
        batch: &PulledBatch,
    ) -> Result<usize, String> {
        if batch.records.is_empty() {
            return Ok(0);
        }
        if let Some(folder) = &self.config.folder {
            return write_file(folder, &self.config.subscription, batch)
                .map(|()| batch.records.len());
        }
        let Some(table) = self.config.sql.clone() else {
            return Ok(0);
        };
        let mut by_schema: HashMap<u32, Vec<(String, apache_avro::types::Value)>> = HashMap::new();
        for r in &batch.records {
            let record_id = r["record_id"].as_str().unwrap_or_default().to_owned();
            let (Some(schema_id), Some(record)) = (
                r["schema_id"].as_u64().and_then(|i| u32::try_from(i).ok()),
                r.get("record"),
            ) else {
                return Err(format!(
                    "record {record_id} came without its record: {}",
                    r["error"].as_str().unwrap_or("no reason given")
                ));
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = self.tables.entry(schema_id) {
                let schema = view_schema(client, token, schema_id).await?;
                let writer = SqlWriter::connect(
                    &SqlTarget {
                        url: table.url.clone(),
                        table: table.table.clone(),
                        retain_until: true,
                    },
                    &schema,
                )
                .await
                .map_err(|e| e.to_string())?;
                slot.insert((writer, schema));
            }
            let (_, schema) = &self.tables[&schema_id];
            let mut value = unsilo_schemas::convert::json_to_avro(record, schema)
                .map_err(|e| format!("record {record_id} does not fit its view schema: {e}"))?;
            if let apache_avro::types::Value::Record(fields) = &mut value {
                let until = r["retain_until"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map_or(apache_avro::types::Value::Null, |t| {
                        apache_avro::types::Value::TimestampMillis(t.timestamp_millis())
                    });
                fields.push((RETAIN_UNTIL_COLUMN.to_owned(), until));
            }
            by_schema
                .entry(schema_id)
                .or_default()
                .push((record_id, value));
        }
        let mut written = 0;
        for (schema_id, rows) in by_schema {
            let (writer, _) = &self.tables[&schema_id];
            writer.upsert(&rows).await.map_err(|e| e.to_string())?;
            written += rows.len();
        }
        Ok(written)
    }
}

/// The view schema with this id, from the hub's registry (the agency may read its own views).
async fn view_schema(
    client: &LinkClient,
    token: &str,
    id: u32,
) -> Result<apache_avro::Schema, String> {
    let response = client
        .http()
        .get(format!("{}/schemas/ids/{id}", client.base()))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("reading view schema {id}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "reading view schema {id}: the hub answered {}",
            response.status()
        ));
    }
    let registered: RegisteredSchema = response
        .json()
        .await
        .map_err(|e| format!("reading view schema {id}: {e}"))?;
    apache_avro::Schema::parse_str(&registered.schema)
        .map_err(|e| format!("view schema {id} does not parse: {e}"))
}

/// Writes a batch as `<subscription>-<cursor digest>.jsonl`: a temporary file renamed into place, so the
/// department's readers never see half a file; the same batch written again makes the same file.
fn write_file(folder: &LocalFolder, subscription: &str, batch: &PulledBatch) -> Result<(), String> {
    use sha2::Digest;
    std::fs::create_dir_all(&folder.path).map_err(|e| format!("{}: {e}", folder.path.display()))?;
    let first = batch.records.first().map_or(String::new(), |r| {
        format!("{}-{}", r["partition"], r["offset"])
    });
    let name = format!(
        "{subscription}-{}.jsonl",
        &hex::encode(sha2::Sha256::digest(format!("{first}/{}", batch.cursor)))[..16]
    );
    let mut text = String::new();
    for r in &batch.records {
        text.push_str(&r.to_string());
        text.push('\n');
    }
    let tmp = folder.path.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let path = folder.path.join(&name);
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Pulls, writes and acknowledges one subscription until `shutdown` fires.
pub async fn run(
    config: DeliveryConfig,
    client: Arc<LinkClient>,
    counts: Arc<ConnectorCounts>,
    mut shutdown: Shutdown,
) {
    let subscription = config.subscription.clone();
    let mut writer = Writer {
        config: config.clone(),
        tables: HashMap::new(),
    };
    let mut backoff = Duration::from_secs(1);
    let mut cursor: Option<String> = None;
    info!(subscription = %subscription, target = config.target_kind(), "Local delivery started.");
    loop {
        if shutdown.is_requested() {
            break;
        }
        let outcome = async {
            let token = std::fs::read_to_string(&config.token_file)
                .map_err(|e| format!("{}: {e}", config.token_file.display()))?;
            let token = token.lines().next().unwrap_or_default().trim().to_owned();
            let mut request = client
                .http()
                .get(format!(
                    "{}/v1/subscriptions/{subscription}/records",
                    client.base()
                ))
                .bearer_auth(&token)
                .query(&[("max", config.max.to_string()), ("wait_ms", "5000".into())]);
            if let Some(c) = &cursor {
                request = request.query(&[("cursor", c)]);
            }
            let response = request.send().await.map_err(|e| format!("pulling: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("pulling: the hub answered {}", response.status()));
            }
            let batch: PulledBatch = response.json().await.map_err(|e| format!("pulling: {e}"))?;
            let written = writer.write(&client, &token, &batch).await?;
            if !batch.records.is_empty() {
                let response = client
                    .http()
                    .post(format!(
                        "{}/v1/subscriptions/{subscription}/ack",
                        client.base()
                    ))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"cursor": batch.cursor}))
                    .send()
                    .await
                    .map_err(|e| format!("acknowledging: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!(
                        "acknowledging: the hub answered {}",
                        response.status()
                    ));
                }
            }
            Ok::<_, String>((written, batch.cursor))
        }
        .await;
        match outcome {
            Ok((written, next)) => {
                counts
                    .forwarded
                    .fetch_add(written as u64, Ordering::Relaxed);
                cursor = Some(next);
                backoff = Duration::from_secs(1);
            }
            Err(message) => {
                warn!(subscription = %subscription, error = %message, "Local delivery failed; it tries again.");
                counts.error(message);
                // Start again after the last acknowledged record: nothing unacknowledged is skipped.
                cursor = None;
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.wait() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    info!(subscription = %subscription, "Local delivery stopped.");
}
