//! Starting the connectors a configuration names: each one's definition loaded, its `std.`, `raw.` and `dlq.`
//! topics and schemas prepared ([`BusSink::open`]), and its transport either served by the HTTP push endpoint or
//! run under the source supervisor.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::info;
use unsilo_bus::Bus;
use unsilo_connectors::definition::{ConnectorDefinition, DefinitionError};
use unsilo_connectors::sdk::{Shutdown, SinkError, Source, SourceContext};
use unsilo_registry::Registry;

use super::http_push::PushEndpoints;
use super::{runtime, BusCheckpoints, BusSink};
use crate::config::{ConnectorConfig, TransportKind};
use crate::metrics::Metrics;

/// A connector that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its definition does not load.
    #[error("connector `{connector}`: {source}")]
    Definition {
        /// The connector instance.
        connector: String,
        /// Why its definition does not load (file, line and reason).
        source: DefinitionError,
    },
    /// Its transport settings cannot work.
    #[error("connector `{connector}`: {message}")]
    Transport {
        /// The connector instance.
        connector: String,
        /// What is wrong with the settings.
        message: String,
    },
    /// Its topics, schemas or checkpoints could not be prepared.
    #[error("connector `{connector}`: {source}")]
    Connector {
        /// The connector instance.
        connector: String,
        /// What failed.
        source: SinkError,
    },
}

/// The running connectors.
pub struct StartedConnectors {
    /// Connectors that take HTTP pushes, by name.
    pub push_endpoints: PushEndpoints,
    /// `(connector, hex SHA-256 of its push token)`, for the authenticator.
    pub push_tokens: Vec<(String, String)>,
    /// The supervised sources (poll, file drop, Kafka topic); they stop when `shutdown` is triggered.
    pub sources: Vec<JoinHandle<()>>,
    /// Every connector's sink, by name (source replay re-normalises through them).
    pub sinks: HashMap<String, Arc<BusSink>>,
}

/// Starts every configured connector.
pub async fn start_connectors(
    configs: &[ConnectorConfig],
    bus: &Arc<dyn Bus>,
    registry: &Registry,
    metrics: &Arc<Metrics>,
    topics: &crate::config::TopicPlan,
    shutdown: &Shutdown,
    seal: &unsilo_bus::seal::RecordSeal,
) -> Result<StartedConnectors, StartError> {
    let mut push_endpoints: PushEndpoints = HashMap::new();
    let mut push_tokens = Vec::new();
    let mut sources = Vec::new();
    let mut sinks = HashMap::new();
    for c in configs {
        let definition =
            load_definition(&c.definition).map_err(|source| StartError::Definition {
                connector: c.name.clone(),
                source,
            })?;
        let sink = BusSink::open(
            &c.name,
            Arc::new(definition),
            Arc::clone(bus),
            registry,
            topics,
        )
        .await
        .map_err(|source| StartError::Connector {
            connector: c.name.clone(),
            source,
        })?;
        let sink = Arc::new(sink.with_metrics(Arc::clone(metrics)));
        sinks.insert(c.name.clone(), Arc::clone(&sink));
        let Some(source) = build_source(c)? else {
            let digest = c
                .http_push
                .as_ref()
                .ok_or_else(|| transport_error(c, "no [connectors.http_push] section".into()))?
                .digest()
                .map_err(|e| transport_error(c, e))?;
            push_tokens.push((c.name.clone(), hex::encode(digest)));
            push_endpoints.insert(
                c.name.clone(),
                sink as Arc<dyn unsilo_connectors::sdk::RecordSink>,
            );
            info!(connector = %c.name, definition = %c.definition, transport = c.transport.as_str(), "Connector ready.");
            continue;
        };
        let checkpoints = BusCheckpoints::open(&c.name, Arc::clone(bus), seal.clone())
            .await
            .map_err(|source| StartError::Connector {
                connector: c.name.clone(),
                source,
            })?
            .with_metrics(Arc::clone(metrics));
        let ctx = SourceContext {
            connector: c.name.clone(),
            sink,
            checkpoints: Arc::new(checkpoints),
            shutdown: shutdown.clone(),
        };
        sources.push(tokio::spawn(runtime::supervise(
            source,
            ctx,
            Arc::clone(metrics),
        )));
        info!(connector = %c.name, definition = %c.definition, transport = ?c.transport, "Connector ready.");
    }
    Ok(StartedConnectors {
        push_endpoints,
        push_tokens,
        sources,
        sinks,
    })
}

fn transport_error(c: &ConnectorConfig, message: String) -> StartError {
    StartError::Transport {
        connector: c.name.clone(),
        message,
    }
}

/// The source a connector's transport section describes: `None` for `http_push`, whose records come to the
/// hub's ingest endpoint rather than from a source it runs. An edge node builds its sources here too.
pub fn build_source(c: &ConnectorConfig) -> Result<Option<Box<dyn Source>>, StartError> {
    fn boxed<S: Source + 'static, E: std::fmt::Display>(
        c: &ConnectorConfig,
        built: Result<S, E>,
    ) -> Result<Option<Box<dyn Source>>, StartError> {
        built
            .map(|s| Some(Box::new(s) as Box<dyn Source>))
            .map_err(|e| transport_error(c, e.to_string()))
    }
    let missing = || {
        transport_error(
            c,
            format!("no [connectors.{}] section", c.transport.as_str()),
        )
    };
    match c.transport {
        TransportKind::HttpPush => Ok(None),
        TransportKind::HttpPoll => boxed(c, c.http_poll.as_ref().ok_or_else(missing)?.build()),
        TransportKind::SqlPoll => boxed(c, c.sql_poll.as_ref().ok_or_else(missing)?.build()),
        TransportKind::FileDrop => boxed(c, c.file_drop.clone().ok_or_else(missing)?.build()),
        TransportKind::KafkaTopic => boxed(c, c.kafka_topic.as_ref().ok_or_else(missing)?.build()),
    }
}

/// Loads a connector definition: `builtin:<name>` or a folder.
pub fn load_definition(
    spec: &str,
) -> Result<ConnectorDefinition, unsilo_connectors::definition::DefinitionError> {
    match spec.strip_prefix("builtin:") {
        Some(name) => unsilo_connectors::builtin::definition(name),
        None => ConnectorDefinition::load(std::path::Path::new(spec)),
    }
}
