//! # unsilo-exchange-core
//!
//! The runtime of the unsilo data-exchange hub.
//!
//! ## Layout
//!
//! - [`bus`]: the message bus trait and its two implementations (embedded on fjall, Kafka through rdkafka).
//! - [`wire`]: the Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro binary).
//! - [`registry`]: the schema registry — subjects, versions, global ids, compatibility checked with Avro
//!   resolution rules, state on the compacted `_unsilo.schemas` topic, and its Confluent-dialect HTTP API.
//! - [`config`]: the typed configuration file (`deploy/*.toml`).
//! - [`demo`]: `unsilo demo` — the hub with every source system simulated.
//! - [`ingest`]: the runtime side of connectors — the sink that normalises and publishes to `std.`, `raw.` and
//!   `dlq.` topics, checkpoints on `_unsilo.offsets`, the HTTP push endpoint, and the source supervisor.
//! - [`server`]: the axum HTTP server (`/healthz`, `/readyz`, `/metrics`, the registry) and graceful shutdown.
//! - [`metrics`]: Prometheus metrics.
//! - [`policy`]: the access policy — agencies, subscriptions, CEL filters, field treatments and view schemas.
//! - [`control`]: the control plane — agencies and subscriptions on the compacted `_unsilo.config` topic.
//! - [`audit`]: the hash-chained evidence log `_unsilo.audit`, its verification and queries.
//! - [`router`]: from `std.<schema>` to each matching subscription's `sub.<agency>.<subscription>` topic.
//! - [`delivery`]: from a subscription's topic to the agency — webhook, SQL upsert, Kafka, pull API.
//! - [`admin`]: the admin HTTP API (agencies, subscriptions, audit) and its authentication.
//! - [`secrets`]: the deployment secret and the keys derived from it.
//! - [`auth`]: who a request is from — one authentication for every surface (operators, agencies, push
//!   sources; Bearer or Basic; client certificates).
//! - [`access`]: the middleware of every surface — authentication, per-credential rate limits, timeouts.
//! - [`listener`]: the connection layer — TLS and mutual TLS, header limits, graceful shutdown.
//! - [`egress`]: which addresses webhooks may reach (no loopback, private, link-local … unless allowed).
//! - [`fuzzing`]: the entry points of the fuzz targets (bytes in, no panic, hang or unbounded allocation).
//! - [`bench`](mod@bench): the `unsilo bench` measurements written to `docs/benchmarks.md`.

pub mod access;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod bus;
pub mod config;
pub mod control;
pub mod delivery;
pub mod demo;
pub mod egress;
pub mod fuzzing;
pub mod ingest;
pub mod listener;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod router;
pub mod secrets;
pub mod server;
pub mod wire;
