//! # unsilo-connectors
//!
//! The connector SDK and the built-in connectors.
//!
//! A connector is *transport + mapping + raw contract*: it takes records from one source system in that
//! system's own format and normalises them into the shared Avro schemas of [`unsilo_schemas`].
//!
//! ## Layout
//!
//! - [`sdk`]: the source trait (config → build → run), the record sink and checkpoint store the runtime
//!   provides, and errors with retry hints.
//! - [`contract`]: the raw contract — a JSON Schema of what the source sends.
//! - [`builtin`]: the built-in connectors (grid, hotline12345, qinwuyuan, dept-sql, dept-file).
//! - [`conformance`]: the conformance kit every connector passes with its fixtures.
//! - [`definition`]: a connector definition (contract + mappings) and the normaliser that applies it.
//! - [`scaffold`]: `unsilo connector new` — a new definition folder that passes the conformance kit as generated.

pub mod builtin;
pub mod conformance;
pub mod contract;
pub mod definition;
pub mod mapping;
pub mod scaffold;
pub mod sdk;
pub mod transport;

pub use unsilo_schemas as schemas;
