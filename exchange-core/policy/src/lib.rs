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
//! - [`catalogue`]: the resource catalogue's entries (政务数据资源目录) and the shipped declarations.
//! - [`correction`]: corrections (校核纠错) a subscriber files on a record it received.
//! - [`usage`]: the usage register (使用登记) an agency keeps for each subscription.
//! - [`disposal`]: what happens when a grant ends — the agency's confirmation of destruction, due and late.
//! - [`check`]: the checks of requests and grants — clearance, legal basis, narrowing.
pub mod catalogue;
pub mod check;
pub mod correction;
pub mod disposal;
pub mod filter;
pub mod model;
pub mod treat;
pub mod usage;
pub mod view;
