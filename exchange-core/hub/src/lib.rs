//! # unsilo-hub
//!
//! The runtime of the unsilo data-exchange hub: everything that runs between the bus and the people and systems
//! around it. It stands on [`unsilo_bus`] (topics, the wire format), [`unsilo_registry`] (schemas) and
//! [`unsilo_policy`] (what each subscription may receive), and is driven by the `unsilo` binary
//! (`exchange-core/cli`).
//!
//! ## Layout
//!
//! The shared bottom, used by every stage:
//!
//! - [`auth`]: who a request is from — one authentication for every surface (operators, agencies, push
//!   sources; Bearer or Basic; client certificates).
//! - [`roles`]: 三员分立 — the system, security and audit administrator roles, and the one matrix of who may
//!   do what, enforced on every route.
//! - [`access`]: the middleware of every surface — authentication as an axum extractor, per-credential rate
//!   limits, timeouts.
//! - [`listener`]: the connection layer — TLS and mutual TLS, header limits, graceful shutdown.
//! - [`api_error`]: the error every JSON API (admin, pull) answers with.
//! - [`egress`]: which addresses webhooks may reach (no loopback, private, link-local … unless allowed).
//! - [`control`]: the control plane — agencies and subscriptions on the compacted `_unsilo.config` topic.
//! - [`at_rest`]: sensitive data encrypted at rest — `std.*`, `raw.*` and `dlq.*` sealed with a data key per
//!   topic and day (SM4-GCM or AES-256-GCM) wrapped by a key-encryption key; crypto-shredding with retention.
//! - [`audit`]: the hash-chained, signed evidence log `_unsilo.audit`, its verification and queries.
//! - [`calendar`]: the working-day calendar (holidays and 调休 of each year's State Council notice) the sharing
//!   deadlines of the 政务数据共享条例 run on.
//! - [`secrets`]: the deployment secret and the keys derived from it.
//! - [`totp`]: the administrators' one-time codes (RFC 6238), the second sign-in factor.
//! - [`metrics`]: Prometheus metrics.
//! - [`flows`]: live per-connector and per-subscription figures (per minute, last error, checkpoint) for the
//!   console and the demo.
//! - [`config`]: the typed configuration file (`deploy/*.toml`).
//! - [`governance`]: the operations operators and agencies perform (agencies, tokens, the subscription
//!   lifecycle, dead-letter replay, audit queries), each checking who asks — shared by the admin API and the
//!   console.
//!
//! The stages, siblings over that bottom (none imports another):
//!
//! - [`ingest`]: the runtime side of connectors — normalise and publish to `std.`, `raw.` and `dlq.` topics,
//!   checkpoints on `_unsilo.offsets`, the HTTP push endpoint, the source supervisor.
//! - [`router`]: from `std.<schema>` to each matching subscription's `sub.<agency>.<subscription>` topic,
//!   with the evidence of every release.
//! - [`delivery`]: from a subscription's topic to the agency — webhook, SQL upsert, Kafka, pull API.
//! - [`admin`]: the admin HTTP API (agencies, tokens, subscriptions, audit, dead letters).
//! - [`console`]: the operators' console and the agencies' portal in a browser, over the same operations.
//!
//! With the `tlcp` feature, `tlcp` serves the same routes over TLCP (GB/T 38636-2020) from Tongsuo.
//!
//! On top: [`server`] starts every stage and serves the HTTP surfaces; [`fuzzing`] holds the entry points of
//! the fuzz targets (bytes in, no panic, hang or unbounded allocation).

pub mod access;
pub mod admin;
pub mod api_error;
pub mod at_rest;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod config;
pub mod console;
pub mod control;
pub mod delivery;
pub mod edge;
pub mod egress;
pub mod fault;
pub mod flows;
pub mod fuzzing;
pub mod governance;
pub mod ingest;
pub mod link;
pub mod listener;
pub mod metrics;
pub mod roles;
pub mod router;
pub mod secrets;
pub mod server;
#[cfg(feature = "tlcp")]
pub mod tlcp;
pub mod totp;
