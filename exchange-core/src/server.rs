//! The hub process: opens the bus, the schema registry and the HTTP server, and shuts them down gracefully.
//!
//! [`Hub::start`] does the start-up work (open the bus the configuration names, replay the registry, register the
//! shared schemas, create their `std.<schema>` topics); [`Hub::serve`] answers HTTP on a listener the caller
//! binds — so tests bind `127.0.0.1:0` — until the shutdown future completes, then lets in-flight requests finish
//! and closes the registry and the bus. Nothing acknowledged is lost: a publish is acknowledged only once durable.
//!
//! Routes: `/healthz` (the process is up), `/readyz` (the bus answers and the registry has replayed its state),
//! `/metrics` (Prometheus), and the Confluent-dialect schema registry API at the root (`/subjects`, `/schemas`, …).

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::bus::embedded::{EmbeddedBus, EmbeddedOptions};
use crate::bus::kafka::KafkaBus;
use crate::bus::{self, Bus, TopicSpec};
use crate::config::{BusKind, Config};
use crate::metrics::{self, InstrumentedBus, Metrics};
use crate::registry::{self, Registry};

/// Errors starting or running the hub.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The bus could not be opened or failed.
    #[error("bus: {0}")]
    Bus(#[from] bus::Error),
    /// The schema registry failed.
    #[error("schema registry: {0}")]
    Registry(#[from] registry::Error),
    /// A shared schema was refused by the registry at start.
    #[error("registering shared schema `{subject}`: {source}")]
    SharedSchema {
        /// The subject.
        subject: String,
        /// Why the registry refused it.
        source: registry::Error,
    },
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
}

/// A running hub: its bus, registry and metrics.
#[derive(Clone)]
pub struct Hub {
    /// The bus (wrapped so that publishes are counted in the metrics).
    pub bus: Arc<dyn Bus>,
    /// The schema registry.
    pub registry: Arc<Registry>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("bus", &self.bus.kind())
            .finish_non_exhaustive()
    }
}

/// Opens the bus the configuration names.
pub async fn open_bus(config: &Config) -> Result<Arc<dyn Bus>, ServerError> {
    config.check()?;
    Ok(match config.bus.kind {
        BusKind::Embedded => {
            let e = &config.bus.embedded;
            let bus = EmbeddedBus::open_with(&e.data_dir, EmbeddedOptions { fsync: e.fsync })?;
            Arc::new(bus)
        }
        BusKind::Kafka => {
            let options = config.bus.kafka.clone().ok_or_else(|| {
                crate::config::ConfigError::Invalid(
                    "bus.kind is \"kafka\" but [bus.kafka] is missing".into(),
                )
            })?;
            Arc::new(KafkaBus::connect(options).await?)
        }
    })
}

impl Hub {
    /// Opens the bus and the registry, registers the shared schemas and creates their `std.<schema>` topics.
    pub async fn start(config: &Config) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::new());
        let raw_bus = open_bus(config).await?;
        metrics.set_build_info(raw_bus.kind());
        let bus: Arc<dyn Bus> = Arc::new(InstrumentedBus::new(raw_bus, metrics.clone()));
        let registry = Registry::open(bus.clone(), config.registry.default_compatibility).await?;
        for schema in unsilo_schemas::shared_schemas() {
            let subject = schema.subject();
            let id = registry
                .register(&subject, &schema.schema_string())
                .await
                .map_err(|source| ServerError::SharedSchema {
                    subject: subject.clone(),
                    source,
                })?;
            bus.create_topic(&TopicSpec::new(schema.topic(), config.bus.partitions))
                .await?;
            info!(subject = %subject, id, topic = %schema.topic(), "Shared schema registered.");
        }
        Ok(Self {
            bus,
            registry,
            metrics,
        })
    }

    /// The HTTP routes of the hub.
    pub fn router(&self) -> Router {
        let ops = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .with_state(self.clone());
        ops.merge(registry::router(self.registry.clone()))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                self.metrics.clone(),
                metrics::track_http,
            ))
    }

    /// Serves HTTP on `listener` until `shutdown` completes, then drains requests and closes registry and bus.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let addr = listener.local_addr()?;
        info!(%addr, bus = self.bus.kind(), "unsilo is serving HTTP.");
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        info!("HTTP server stopped; closing the registry and the bus.");
        self.registry.shutdown().await;
        let closed = self.bus.shutdown().await;
        served?;
        closed?;
        info!("unsilo stopped cleanly.");
        Ok(())
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "Cannot listen for Ctrl-C.");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "Cannot listen for SIGTERM.");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("Received SIGINT; shutting down."),
        () = terminate => info!("Received SIGTERM; shutting down."),
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(hub): State<Hub>) -> Response {
    let registry_ready = hub.registry.is_ready();
    let bus_ok = match hub.bus.partition_count(registry::SCHEMAS_TOPIC).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("topic {} is missing", registry::SCHEMAS_TOPIC)),
        Err(e) => Err(e.to_string()),
    };
    let body = json!({
        "status": if registry_ready && bus_ok.is_ok() { "ready" } else { "not ready" },
        "bus": { "kind": hub.bus.kind(), "ok": bus_ok.is_ok(), "error": bus_ok.as_ref().err() },
        "registry": { "ready": registry_ready },
    });
    let status = if registry_ready && bus_ok.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics_text(State(hub): State<Hub>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        hub.metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error_code": 404, "message": "HTTP 404 Not Found" })),
    )
        .into_response()
}
