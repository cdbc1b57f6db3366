//! # unsilo-policy
//!
//! Access policy: what each subscription may receive, and in what form. Depends on `unsilo-schemas` only: pure
//! functions over schemas and values, no I/O, so the router, the admin API and the benchmarks share one policy.
//!
//! # Layout
//!
//! - [`model`]: agencies, subscriptions, field rules, treatments, channels and lifecycle states.
//! - [`filter`]: subscription filters in CEL, compiled and type-checked against the schema, evaluated per record.
//! - [`treat`]: the value treatments of GB/T 37964 — masking, keyed pseudonyms, generalisation, free-text redaction.
//! - [`view`]: a subscription's view schema and the plan that turns a shared record into a view record.
//! - [`check`]: the checks of requests and grants — clearance, legal basis, narrowing.
pub mod check;
pub mod filter;
pub mod model;
pub mod treat;
pub mod view;
