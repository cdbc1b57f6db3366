//! The hub process: opens the bus, the schema registry and the HTTP server, and shuts them down gracefully.
//!
//! [`Hub::start`] does the start-up work (open the bus the configuration names, replay the registry, register the
//! shared schemas, create their `std.<schema>` topics); [`Hub::serve`] answers HTTP on a listener the caller
//! binds — so tests bind `127.0.0.1:0` — until the shutdown future completes, then lets in-flight requests finish
//! and closes the registry and the bus. Nothing acknowledged is lost: a publish is acknowledged only once durable.
//!
//! Routes: `/healthz` (the process is up), `/readyz` (the bus answers and the registry has replayed its state),
//! `/metrics` (Prometheus) — the only ones that answer an anonymous caller — and, each behind the access layer
//! of its surface ([`crate::access`]): the Confluent-dialect schema registry API at the root (`/subjects`,
//! `/schemas`, …), `/ingest/{connector}`, `/admin/…` and the pull API `/v1/subscriptions/…`. Connections are
//! served by [`crate::listener`] (plain HTTP or TLS with optional client certificates).

use std::future::Future;
use std::sync::Arc;
use unsilo_schemas::names::{AUDIT_TOPIC, CONFIG_TOPIC};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{info, warn};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Access, Caller, RateLimiter, Surface};
use crate::audit::{AuditLog, SigningKey, TrustedKeys};
use crate::auth::Authenticator;
use crate::config::{BusKind, Config};
use crate::control::ControlPlane;
use crate::delivery::{self, DeliveryContext, ViewDecoder};
use crate::governance::{Governance, GovernanceSettings};
use crate::ingest::http_push::{self, PushEndpoints};
use crate::metrics::{self, InstrumentedBus, Metrics};
use crate::router::RouterContext;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use unsilo_bus::embedded::{EmbeddedBus, EmbeddedOptions};
use unsilo_bus::kafka::KafkaBus;
use unsilo_bus::Bus;
use unsilo_connectors::sdk::{Shutdown, ShutdownTrigger};
use unsilo_registry::Registry;

/// Errors starting or running the hub.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The bus could not be opened or failed.
    #[error("bus: {0}")]
    Bus(#[from] unsilo_bus::Error),
    /// The schema registry failed.
    #[error("schema registry: {0}")]
    Registry(#[from] unsilo_registry::Error),
    /// A shared schema was refused by the registry at start.
    #[error("registering shared schema `{subject}`: {source}")]
    SharedSchema {
        /// The subject.
        subject: String,
        /// Why the registry refused it.
        source: unsilo_registry::Error,
    },
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
    /// A connector could not be started.
    #[error(transparent)]
    Connector(#[from] crate::ingest::StartError),
    /// The TLS certificate or key is unusable.
    #[error("tls: {0}")]
    Tls(String),
    /// The deployment secret could not be loaded.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// The keys of encryption at rest could not be loaded or created.
    #[error("encryption at rest: {0}")]
    Keys(String),
    /// The control plane could not be opened.
    #[error("control plane: {0}")]
    Control(#[from] crate::control::ControlError),
    /// The resource catalogue could not be seeded.
    #[error("seeding the resource catalogue: {0}")]
    Catalogue(String),
    /// The audit log could not be opened.
    #[error("audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The audit signing key could not be loaded.
    #[error(transparent)]
    SigningKey(#[from] crate::audit::signing::KeyError),
    /// The webhook client could not be built.
    #[error("delivery: {0}")]
    Delivery(String),
    /// The links (edge nodes) could not be opened.
    #[error("links: {0}")]
    Link(String),
}

/// A running hub: its bus, registry, metrics and connectors.
#[derive(Clone)]
pub struct Hub {
    /// The bus (wrapped so that publishes are counted in the metrics).
    pub bus: Arc<dyn Bus>,
    /// The schema registry.
    pub registry: Arc<Registry>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Connectors that accept HTTP pushes, by name.
    push_endpoints: PushEndpoints,
    /// The door of every surface: authentication, rate limits, timeouts.
    access: Arc<Access>,
    /// Stops the connectors' sources.
    stop_sources: Arc<ShutdownTrigger>,
    /// The running sources.
    sources: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Agencies and subscriptions.
    pub control: Arc<ControlPlane>,
    /// The evidence log.
    pub audit: Arc<AuditLog>,
    /// The operations operators and agencies perform (the admin API and the console call them).
    pub governance: Arc<Governance>,
    /// Decodes released records for the pull API.
    decoder: ViewDecoder,
    /// The operators' console and the agencies' portal.
    console: Arc<crate::console::Console>,
    /// Stops the routers, the delivery workers and the expiry task.
    stop_routing: Arc<tokio::sync::watch::Sender<bool>>,
    /// The routers, the delivery manager and the expiry task.
    routing: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// The edge nodes linked to this hub.
    pub links: Arc<crate::link::Links>,
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
        // No Avro length prefix may make the hub allocate more than this for one value.
        crate::fuzzing::limit_avro_allocations();
        let metrics = Arc::new(Metrics::new());
        let raw_bus = open_bus(config).await?;
        metrics.set_build_info(raw_bus.kind());
        let instrumented: Arc<dyn Bus> = Arc::new(InstrumentedBus::new(raw_bus, metrics.clone()));
        // Sensitive data encrypted at rest: std., raw. and dlq. records are sealed before they reach the bus.
        let bus: Arc<dyn Bus> = if config.security.keys.encrypt_at_rest {
            let cipher = crate::at_rest::RecordCipher::open(
                &config.security.keys,
                &config.secret_file(),
                config.security.crypto,
                config.bus.retention.clone(),
            )
            .map_err(|e| ServerError::Keys(e.to_string()))?;
            Arc::new(crate::at_rest::EncryptedBus::new(
                instrumented,
                Arc::new(cipher),
            ))
        } else {
            warn!("[security.keys] encrypt_at_rest = false: ID numbers, names and phone numbers lie in clear on std., raw. and dlq. topics.");
            instrumented
        };
        // The deployment secret first: it seals what the hub writes on its own topics, registry included.
        let secret = Arc::new(config.load_secret()?);
        if config.admin.sign_in.second_factor == crate::config::SecondFactor::None {
            warn!(
                "[admin.sign_in] second_factor = \"none\": administrators sign in to the console with a token alone. \
                 等保 level 3 asks for two factors, one cryptographic: use \"totp\" or \"client_certificate\" in production."
            );
        }
        let seal = unsilo_bus::seal::RecordSeal::new(&config.hub.id, secret.seal_key())
            .with_suite(config.security.crypto);
        let registry = Registry::open_with(
            bus.clone(),
            unsilo_registry::RegistryOptions {
                default_compatibility: config.registry.default_compatibility,
                seal: Some(seal.clone()),
                ..unsilo_registry::RegistryOptions::default()
            },
        )
        .await?;
        let topics = config.bus.topic_plan();
        register_shared_schemas(&registry, bus.as_ref(), &topics).await?;
        let (stop_sources, sources_shutdown) = Shutdown::new();
        let mut connectors = crate::ingest::start_connectors(
            &config.connectors,
            &bus,
            &registry,
            &metrics,
            &topics,
            &sources_shutdown,
            &seal,
        )
        .await?;
        let control = ControlPlane::open(bus.clone(), CONFIG_TOPIC, seal.clone()).await?;
        let signing_key = Arc::new(SigningKey::load_or_create(
            &config.signing_key_file(),
            config.security.crypto,
        )?);
        let audit = Arc::new(
            AuditLog::open(
                bus.clone(),
                AUDIT_TOPIC,
                &config.hub.id,
                signing_key.clone(),
            )
            .await?,
        );
        metrics.set_audit_disowned(audit.disowned_tail().map_or(0, |t| t.entries));
        let trusted_keys = TrustedKeys::new(
            Some((&config.hub.id, &signing_key)),
            &config.security.audit_public_keys,
        );
        let person_index = Arc::new(crate::audit::person::PersonIndex::open(
            &config.person_index_dir(),
            AUDIT_TOPIC,
            &trusted_keys,
            metrics.audit_index_read(),
        )?);
        let egress = Arc::new(
            crate::egress::EgressPolicy::new(&config.delivery.egress_allow_cidrs)
                .map_err(|e| crate::config::ConfigError::Invalid(format!("delivery.{e}")))?,
        );
        let decoder = ViewDecoder::new(registry.clone());
        let delivery_context = DeliveryContext {
            bus: bus.clone(),
            control: control.clone(),
            decoder: decoder.clone(),
            webhook: webhook_client(&config.delivery, egress.clone(), config.security.crypto)?,
            secret: secret.clone(),
            metrics: metrics.clone(),
            egress: egress.clone(),
        };
        let summaries = connector_summaries(&config.connectors, &connectors.sinks);
        let governance = Arc::new(Governance::new(
            control.clone(),
            registry.clone(),
            audit.clone(),
            bus.clone(),
            secret.clone(),
            crate::control::StageControls {
                delivery: Arc::new(delivery::DeliveryStage::new(delivery_context.clone())),
                sources: Arc::new(crate::ingest::replay::SourceReplayer::new(
                    bus.clone(),
                    std::mem::take(&mut connectors.sinks),
                    seal.clone(),
                )),
            },
            GovernanceSettings {
                topics: topics.clone(),
                metrics: metrics.clone(),
                auto_approve_unconditional: config.policy.auto_approve_unconditional,
                linked_hub_clearance: config
                    .policy
                    .linked_hub_clearance
                    .as_deref()
                    .map(|c| {
                        c.parse().map_err(|_| {
                            crate::config::ConfigError::Invalid(format!(
                                "policy.linked_hub_clearance `{c}` is not one of S1, S2, S3, S4"
                            ))
                        })
                    })
                    .transpose()?,
                egress: egress.clone(),
                trusted_keys,
                person_index: person_index.clone(),
                report_sources: config
                    .connectors
                    .iter()
                    .filter(|c| c.http_push.as_ref().is_some_and(|p| p.report))
                    .map(|c| c.name.clone())
                    .collect(),
                connectors: config.connectors.iter().map(|c| c.name.clone()).collect(),
                calendar: Arc::new(
                    crate::calendar::WorkingCalendar::for_deployment(
                        config.policy.calendar_dir.as_deref(),
                    )
                    .map_err(|e| {
                        crate::config::ConfigError::Invalid(format!("policy.calendar_dir: {e}"))
                    })?,
                ),
            },
        ));
        governance
            .seed_catalogue(&catalogue_providers(&config.connectors, &summaries)?)
            .await
            .map_err(|e| ServerError::Catalogue(e.to_string()))?;
        let node_certificates = Arc::new(crate::link::NodeCertificates::default());
        let links = crate::link::Links::open(
            crate::link::LinkContext {
                hub: config.hub.id.clone(),
                bus: bus.clone(),
                seal: seal.clone(),
                registry: registry.clone(),
                topics: topics.clone(),
                metrics: metrics.clone(),
                audit: audit.clone(),
                signing_key: signing_key.clone(),
                hub_connectors: config.connectors.iter().map(|c| c.name.clone()).collect(),
            },
            &config.link_ca_dir(),
            node_certificates.clone(),
        )
        .await
        .map_err(|e| ServerError::Link(e.to_string()))?;
        let authenticator = Arc::new(
            Authenticator::new(
                &config.admin.operators,
                connectors.push_tokens,
                control.clone(),
            )
            .with_nodes(node_certificates),
        );
        // The operators' one-time codes, for the console's sign-in and the API alike.
        let operator_codes = Arc::new(crate::totp::OperatorCodes::new(
            secret.clone(),
            &config.admin.operators,
        ));
        let access = Arc::new(Access {
            failures: crate::access::FailureThrottle::default(),
            authenticator,
            limiter: RateLimiter::default(),
            limits: config.limits.clone(),
            registry_anonymous_read: config.registry.anonymous_read,
            operator_api_factor: (config.admin.sign_in.api_second_factor
                && config.admin.sign_in.second_factor == crate::config::SecondFactor::Totp)
                .then(|| operator_codes.clone()),
            metrics: Some(metrics.clone()),
        });
        let (stop_routing, routing_stopped) = tokio::sync::watch::channel(false);
        let mut routing = crate::router::start(
            RouterContext {
                bus: bus.clone(),
                registry: registry.clone(),
                control: control.clone(),
                audit: audit.clone(),
                key: Arc::new(secret.pseudonym_key()),
                group_prefix: config.hub.cluster.clone(),
                metrics: metrics.clone(),
            },
            &routing_stopped,
        );
        routing.push(delivery::start(delivery_context, routing_stopped.clone()));
        routing.push(tokio::spawn(audit.clone().run_checkpoints(
            config.audit.checkpoint_every_entries,
            config.audit.checkpoint_interval,
            routing_stopped.clone(),
        )));
        routing.push(tokio::spawn(
            person_index.follow(bus.clone(), routing_stopped.clone()),
        ));
        routing.push(tokio::spawn(expire_subscriptions(
            governance.clone(),
            routing_stopped.clone(),
        )));
        routing.push(tokio::spawn(enforce_retention(
            bus.clone(),
            config.bus.retention.check_every,
            routing_stopped.clone(),
        )));
        if let Some(parent) = &config.parent {
            routing.push(tokio::spawn(crate::link::parent::run(
                parent.clone(),
                crate::link::parent::enrolment_dir(&config.link_ca_dir()),
                governance.clone(),
                links.clone(),
                routing_stopped.clone(),
            )));
        }
        routing.push(tokio::spawn(remove_expired_agency_rows(
            governance.clone(),
            config.bus.retention.check_every,
            routing_stopped,
        )));
        let console = Arc::new(crate::console::Console {
            governance: governance.clone(),
            access: access.clone(),
            metrics: metrics.clone(),
            bus: bus.clone(),
            registry: registry.clone(),
            connectors: summaries,
            secure_cookies: config.http.tls.is_some(),
            sessions: crate::console::session::Sessions::new((&config.admin.sign_in).into()),
            sign_in: crate::console::SignInGate::new(&config.admin, operator_codes),
            links: links.clone(),
        });
        Ok(Self {
            bus,
            registry,
            metrics,
            push_endpoints: connectors.push_endpoints,
            access,
            stop_sources: Arc::new(stop_sources),
            sources: Arc::new(Mutex::new(connectors.sources)),
            control,
            console,
            audit,
            governance,
            decoder,
            stop_routing: Arc::new(stop_routing),
            routing: Arc::new(Mutex::new(routing)),
            links,
        })
    }

    /// The link CA's certificate (DER): give it to [`load_tls_trusting`] so enrolled edges' certificates are
    /// accepted.
    pub fn link_ca_der(&self) -> Result<Vec<u8>, ServerError> {
        self.links
            .ca_der()
            .map_err(|e| ServerError::Link(e.to_string()))
    }

    /// Stops everything but the HTTP server — connectors, routers, delivery, control plane, registry — and closes
    /// the bus. [`Hub::serve`] calls it after the server has drained; a hub that never served (a benchmark, a
    /// tool) calls it directly.
    pub async fn shutdown(&self) -> Result<(), unsilo_bus::Error> {
        info!("Stopping the connectors.");
        self.stop_sources.trigger();
        for task in self.sources.lock().await.drain(..) {
            if let Err(e) = task.await {
                warn!(error = %e, "A connector task ended abnormally.");
            }
        }
        info!("Connectors stopped; stopping the routers and delivery.");
        self.stop_routing.send_replace(true);
        for task in self.routing.lock().await.drain(..) {
            if let Err(e) = task.await {
                warn!(error = %e, "A routing or delivery task ended abnormally.");
            }
        }
        self.control.shutdown().await;
        info!("Routing stopped; closing the registry and the bus.");
        self.registry.shutdown().await;
        self.bus.shutdown().await
    }

    /// The door of every surface: authentication, rate limits and timeouts.
    pub fn access(&self) -> &Arc<Access> {
        &self.access
    }

    /// The HTTP routes of the hub: health, readiness and metrics open; every other surface behind its access
    /// layer.
    pub fn router(&self) -> Router {
        let limits = &self.access.limits;
        // The access layer (outside) puts the caller in; the role matrix (a route layer, inside, where the
        // matched path is known) decides whether that caller may perform the route's action.
        let guarded = |router: Router, surface: Surface| {
            router
                .route_layer(axum::middleware::from_fn_with_state(
                    surface,
                    crate::roles::authorize_route,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    (self.access.clone(), surface),
                    Access::layer,
                ))
        };
        let (ops, ops_api) = OpenApiRouter::new()
            .routes(routes!(healthz))
            .routes(routes!(readyz))
            .routes(routes!(metrics_text))
            .with_state(self.clone())
            .split_for_parts();
        let (docs, docs_api) = OpenApiRouter::new()
            .routes(routes!(openapi_json))
            .split_for_parts();
        let (registry, registry_api) = unsilo_registry::api::router_with_openapi(
            self.registry.clone(),
            Some(Arc::new(AuditRecorder(self.audit.clone()))),
        );
        let registry = registry
            .layer(axum::middleware::from_fn(registry_caller))
            .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes));
        let (admin, admin_api) = crate::admin::router(self.governance.clone()).split_for_parts();
        let admin = admin
            .layer(axum::middleware::from_fn(
                crate::api_error::require_json_body,
            ))
            .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes));
        let (pull, pull_api) = delivery::pull::router(
            self.control.clone(),
            self.bus.clone(),
            self.decoder.clone(),
            self.access.authenticator.clone(),
            delivery::pull::StreamLimits {
                per_agency: limits.max_event_streams_per_agency,
                lifetime: limits.event_stream_lifetime,
            },
        )
        .split_for_parts();
        let pull = pull.layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes));
        let (ingest, ingest_api) = http_push::router(
            self.push_endpoints.clone(),
            limits.max_ingest_body_bytes,
            limits.max_records_per_push,
        )
        .split_for_parts();
        let cascade = crate::link::cascade_routes::CascadeState {
            links: self.links.clone(),
            governance: self.governance.clone(),
        };
        let (edges, edges_api) = crate::link::routes::admin_router(self.links.clone())
            .merge(crate::link::routes::link_router(self.links.clone()))
            .merge(crate::link::cascade_routes::admin_router(cascade.clone()))
            .merge(crate::link::cascade_routes::link_router(cascade))
            .split_for_parts();
        let edges = edges.layer(axum::extract::DefaultBodyLimit::max(
            limits.max_ingest_body_bytes,
        ));
        let (enrol, enrol_api) =
            crate::link::routes::enrol_router(self.links.clone()).split_for_parts();
        let enrol = enrol
            .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
            .layer(axum::middleware::from_fn_with_state(
                limits.request_timeout,
                crate::access::within_request_timeout,
            ));
        let mut api = api_description();
        for part in [
            ops_api,
            docs_api,
            ingest_api,
            registry_api,
            admin_api,
            pull_api,
            edges_api,
            enrol_api,
        ] {
            api.merge(part);
        }
        allow_flattened_fields(&mut api);
        let api = Arc::new(api);
        let console = crate::console::router(self.console.clone(), api.clone())
            .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
            // Forms are read inside the console's own guard: bound the whole request, its body included.
            .layer(axum::middleware::from_fn_with_state(
                limits.request_timeout,
                crate::access::within_request_timeout,
            ));
        ops.merge(guarded(ingest, Surface::Ingest))
            .merge(guarded(admin, Surface::Admin))
            .merge(guarded(docs, Surface::Admin))
            .merge(guarded(pull, Surface::Pull))
            .merge(guarded(registry, Surface::Registry))
            .merge(guarded(edges, Surface::Admin))
            .merge(enrol)
            .merge(console)
            .fallback(not_found)
            .layer(axum::Extension(api))
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
        self.serve_with(listener, None, shutdown).await
    }

    /// Serves on `listener` — over TLS when `tls` is given — until `shutdown` completes, then drains requests,
    /// stops the connectors and closes the registry and the bus.
    pub async fn serve_with(
        self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let addr = listener.local_addr()?;
        info!(%addr, bus = self.bus.kind(), tls = tls.is_some(), "unsilo is serving.");
        let options = crate::listener::ListenerOptions {
            tls,
            max_header_bytes: self.access.limits.max_header_bytes,
            header_read_timeout: self.access.limits.header_read_timeout,
            max_connections: self.access.limits.max_connections,
            ..crate::listener::ListenerOptions::default()
        };
        let served = crate::listener::serve(listener, self.router(), options, shutdown).await;
        info!("HTTP server stopped.");
        let closed = self.shutdown().await;
        served?;
        closed?;
        info!("unsilo stopped cleanly.");
        Ok(())
    }

    /// Serves the hub's routes over TLCP on `listener` (the `tlcp` feature, `[http.tlcp]`) until `shutdown`
    /// completes, with the same limits as the main listener. It does not close the hub: the main listener's
    /// [`Hub::serve_with`] does.
    #[cfg(feature = "tlcp")]
    pub async fn serve_tlcp(
        &self,
        listener: TcpListener,
        acceptor: crate::tlcp::TlcpAcceptor,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let addr = listener.local_addr()?;
        info!(%addr, "unsilo is serving TLCP (GB/T 38636-2020).");
        let options = crate::listener::ListenerOptions {
            tls: None,
            tlcp: Some(acceptor),
            max_header_bytes: self.access.limits.max_header_bytes,
            header_read_timeout: self.access.limits.header_read_timeout,
            max_connections: self.access.limits.max_connections,
            ..crate::listener::ListenerOptions::default()
        };
        crate::listener::serve(listener, self.router(), options, shutdown).await?;
        info!(%addr, "TLCP listener stopped.");
        Ok(())
    }
}

/// Loads the server certificate chain and private key (PEM files) into a rustls configuration (TLS 1.2 and
/// 1.3, ring as the crypto provider). Errors name the file and what is wrong, never the key's contents.
pub fn load_tls(tls: &crate::config::TlsConfig) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    load_tls_trusting(tls, &[])
}

/// Like [`load_tls`], also trusting `extra_client_cas` (DER) for client certificates — the hub's link CA
/// ([`Hub::link_ca_der`]), which issues the certificates of enrolled edge nodes.
pub fn load_tls_trusting(
    tls: &crate::config::TlsConfig,
    extra_client_cas: &[Vec<u8>],
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &std::path::Path, why: String| {
        ServerError::Tls(format!("{}: {why}", what.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| bad(&tls.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&tls.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&tls.cert, "no certificate in the file".into()));
    }
    crate::secrets::read_private(&tls.key).map_err(|e| bad(&tls.key, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| bad(&tls.key, format!("no usable private key ({e})")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &tls.client_ca {
        let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
            .map_err(|e| bad(ca, e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(ca, e.to_string()))?;
        if cas.is_empty() {
            return Err(bad(ca, "no CA certificate in the file".into()));
        }
        for c in cas {
            roots
                .add(c)
                .map_err(|e| bad(ca, format!("unusable CA certificate: {e}")))?;
        }
    }
    for der in extra_client_cas {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| ServerError::Tls(format!("the link CA is unusable: {e}")))?;
    }
    let builder = if roots.is_empty() {
        builder.with_no_client_auth()
    } else {
        // Presenting a certificate is optional (operators and most agencies use tokens), but one that is
        // presented must chain to these CAs; agencies, operators and edge nodes bound to a certificate are
        // checked per request.
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| ServerError::Tls(format!("unusable client CAs: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        ServerError::Tls(format!(
            "{} and {}: the certificate and key do not form a usable pair: {e}",
            tls.cert.display(),
            tls.key.display()
        ))
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The webhook client the configuration describes.
fn webhook_client(
    config: &crate::config::DeliveryConfig,
    egress: Arc<crate::egress::EgressPolicy>,
    suite: unsilo_schemas::crypto::Suite,
) -> Result<delivery::webhook::WebhookClient, ServerError> {
    let extra = match &config.webhook_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            ServerError::Delivery(format!("webhook_ca_file {}: {e}", path.display()))
        })?),
        None => None,
    };
    let options = delivery::webhook::WebhookOptions {
        max_attempts: config.webhook_max_attempts.max(1),
        extra_root_certificates_pem: extra,
        allow_plain_http: config.webhook_allow_plain_http,
        egress,
        suite,
        ..delivery::webhook::WebhookOptions::default()
    };
    delivery::webhook::WebhookClient::new(options).map_err(|e| ServerError::Delivery(e.to_string()))
}

/// The configured connectors as the console lists them, with the shared schemas their sinks write (from the
/// definitions the connectors were started with, not read again).
fn connector_summaries(
    configs: &[crate::config::ConnectorConfig],
    sinks: &std::collections::HashMap<String, Arc<crate::ingest::BusSink>>,
) -> Vec<crate::console::ConnectorSummary> {
    configs
        .iter()
        .map(|c| crate::console::ConnectorSummary {
            name: c.name.clone(),
            transport: c.transport.as_str().to_owned(),
            definition: c.definition.clone(),
            schemas: sinks
                .get(&c.name)
                .map(|s| s.target_schemas())
                .unwrap_or_default(),
        })
        .collect()
}

/// The providing organisation of each shared schema, as the connectors feeding it name them (`provider` in
/// `[[connectors]]`). Two connectors naming different providers for one schema is a configuration error: a
/// catalogue entry has one provider.
fn catalogue_providers(
    configs: &[crate::config::ConnectorConfig],
    summaries: &[crate::console::ConnectorSummary],
) -> Result<std::collections::BTreeMap<String, String>, crate::config::ConfigError> {
    let mut providers = std::collections::BTreeMap::<String, (String, String)>::new();
    for c in configs {
        let Some(provider) = &c.provider else {
            continue;
        };
        let feeds = summaries
            .iter()
            .find(|s| s.name == c.name)
            .map(|s| s.schemas.clone())
            .unwrap_or_default();
        let schemas = match &c.provider_schemas {
            None => feeds,
            Some(listed) => {
                if let Some(other) = listed.iter().find(|s| !feeds.contains(s)) {
                    return Err(crate::config::ConfigError::Invalid(format!(
                        "connectors: `{}` lists `{other}` in provider_schemas, but it feeds only {}",
                        c.name,
                        feeds.join(", ")
                    )));
                }
                listed.clone()
            }
        };
        for schema in schemas {
            match providers.get(&schema) {
                Some((other, by)) if other != provider => {
                    return Err(crate::config::ConfigError::Invalid(format!(
                        "connectors: `{}` names provider `{provider}` for {schema}, but `{by}` names `{other}`; a catalogue entry has one providing organisation",
                        c.name
                    )))
                }
                _ => {
                    providers.insert(schema, (provider.clone(), c.name.clone()));
                }
            }
        }
    }
    Ok(providers.into_iter().map(|(k, (p, _))| (k, p)).collect())
}

/// Puts the registry's view of the caller ([`crate::access::registry_caller`]) into the request; a caller with
/// no access to the registry (a push source) is refused.
async fn registry_caller(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let caller = request
        .extensions()
        .get::<Caller>()
        .and_then(|c| crate::access::registry_caller(c.0.as_ref()));
    let Some(caller) = caller else {
        return unsilo_registry::Error::Forbidden(
            "this credential has no access to the schema registry".into(),
        )
        .into_response();
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Records registry writes in the audit log.
struct AuditRecorder(Arc<AuditLog>);

impl unsilo_registry::api::WriteRecorder for AuditRecorder {
    fn record(
        &self,
        write: unsilo_registry::api::RegistryWrite,
    ) -> futures::future::BoxFuture<'static, Result<(), unsilo_registry::api::NotRecorded>> {
        let log = self.0.clone();
        let event = crate::audit::AuditEvent::Control {
            actor: write.caller,
            role: None,
            action: write.action,
            target: write.target,
            detail: write.detail,
        };
        Box::pin(async move {
            log.append(vec![event])
                .await
                .map_err(|e| unsilo_registry::api::NotRecorded(e.to_string()))
        })
    }
}

/// Marks subscriptions past their expiry as expired, every second. (Delivery already stops at the expiry time;
/// this records the state change and its audit entry.)
async fn expire_subscriptions(
    governance: Arc<Governance>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        let n = governance.expire_due().await;
        if n > 0 {
            info!(expired = n, "Subscriptions expired.");
        }
        governance.refresh_overdue_metric();
    }
}

/// Removes what the topics' retention allows, every `every` (the embedded bus; Kafka brokers do it
/// themselves, and the call does nothing there).
async fn enforce_retention(
    bus: Arc<dyn Bus>,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every.max(std::time::Duration::from_secs(1))) => {}
        }
        match bus.enforce_retention().await {
            Ok(removed) => {
                for r in removed {
                    info!(topic = %r.topic, partition = r.partition, removed = r.records, first_kept = r.first_kept, "Retention removed old records.");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Retention pass failed; it runs again later."),
        }
    }
}

/// Removes the rows past `retain_until` the hub delivered into agencies' SQL tables, on the retention schedule
/// (both buses). A task of its own, so a slow or unreachable agency database never holds up the bus's retention.
async fn remove_expired_agency_rows(
    governance: Arc<Governance>,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every.max(std::time::Duration::from_secs(1))) => {}
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = governance.sweep_sql_retention() => {}
        }
    }
}

/// Registers every shared schema under `std.<schema>-value` and creates its `std.` topic.
async fn register_shared_schemas(
    registry: &Registry,
    bus: &dyn Bus,
    topics: &crate::config::TopicPlan,
) -> Result<(), ServerError> {
    for schema in unsilo_schemas::shared_schemas() {
        let subject = schema.subject();
        let id = registry
            .register(&subject, &schema.schema_string())
            .await
            .map_err(|source| ServerError::SharedSchema {
                subject: subject.clone(),
                source,
            })?;
        bus.create_topic(&topics.topic(schema.topic())).await?;
        info!(subject = %subject, id, topic = %schema.topic(), "Shared schema registered.");
    }
    Ok(())
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

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(()),
    responses((status = 200, description = "The process is up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The answer of `/healthz` (`ok`) and `/readyz` (`ready` or `not ready`; what is not goes to the log only).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok`, `ready` or `not ready`.
    #[schema(value_type = String)]
    status: &'static str,
}

/// `GET /readyz`: the bus and the registry are ready.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()),
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready: the bus or the registry is not (the hub's log says which)", body = Health)
    ))]
async fn readyz(State(hub): State<Hub>) -> Response {
    let registry_ready = hub.registry.is_ready();
    let bus_ok = match hub
        .bus
        .partition_count(unsilo_schemas::names::SCHEMAS_TOPIC)
        .await
    {
        Ok(Some(_)) => true,
        Ok(None) => {
            warn!(
                topic = unsilo_schemas::names::SCHEMAS_TOPIC,
                "Not ready: the registry's topic is missing."
            );
            false
        }
        Err(e) => {
            warn!(error = %e, "Not ready: the bus does not answer.");
            false
        }
    };
    // Ready or not, and nothing else: internal detail goes to the log, never to an anonymous caller.
    let ready = registry_ready && bus_ok;
    let body = Health {
        status: if ready { "ready" } else { "not ready" },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(()),
    responses((status = 200, description = "Metrics in the OpenMetrics text format: to an anonymous caller without the series that name agencies, subscriptions or topics; to an operator all of them", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
async fn metrics_text(State(hub): State<Hub>, request: axum::extract::Request) -> Response {
    // Operators see every series; anyone else the ones that name no agency, subscription or topic.
    let full = match hub.access.identify(&request) {
        Ok(Some(p)) => crate::roles::allows(&p, crate::roles::Action::ViewOperationalMetrics),
        Ok(None) => false,
        Err(refused) => return refused,
    };
    hub.metrics
        .set_refused_records(CONFIG_TOPIC, hub.control.refused_records());
    hub.metrics.set_refused_records(
        unsilo_schemas::names::SCHEMAS_TOPIC,
        hub.registry.refused_records(),
    );
    // Off the async workers: the store's figures can wait on its locks.
    let bus = hub.bus.clone();
    if let Ok(Some(stats)) = tokio::task::spawn_blocking(move || bus.store_stats()).await {
        hub.metrics.set_store_stats(&stats);
    }
    let text = if full {
        hub.metrics.encode()
    } else {
        hub.metrics.encode_public()
    };
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

/// `GET /openapi.json`: this document (to any authenticated caller).
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses(
        (status = 200, description = "The OpenAPI 3.1 description of every HTTP route of the hub", body = serde_json::Value),
        crate::api_error::ApiFailure
    ))]
async fn openapi_json(
    axum::Extension(api): axum::Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<Arc<utoipa::openapi::OpenApi>> {
    Json(api)
}

/// The document's frame: title, version, description, and the two ways to present a token.
fn api_description() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let mut api = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("unsilo")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The unsilo data-exchange hub: push ingest, the schema registry (Confluent dialect), \
                     the admin API (agencies, subscriptions, audit), the pull API for subscribers, and health, \
                     readiness and metrics. Every route but /healthz, /readyz and /metrics needs a token, \
                     as `Authorization: Bearer <token>` or HTTP Basic `<name>:<token>`.",
                ))
                .build(),
        )
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "basic",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
    );
    // Every operation needs one or the other, unless it says otherwise (health, readiness, metrics).
    api.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("basic", Vec::<String>::new()),
    ]);
    api
}

/// A subscription request flattens its spec into itself (`allOf`), so the spec's own `additionalProperties:
/// false` would forbid the request's `name` and `agency`: it is left out of the document (the server still
/// refuses unknown fields).
fn allow_flattened_fields(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{schema::Schema, RefOr};
    if let Some(RefOr::T(Schema::Object(spec))) = api
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("SubscriptionSpec"))
    {
        spec.additional_properties = None;
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error_code": 404, "message": "HTTP 404 Not Found" })),
    )
        .into_response()
}
