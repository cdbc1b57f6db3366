//! # unsilo-connectors
//!
//! The connector SDK, the built-in connectors and the source-system simulators.
//!
//! A connector is *transport + mapping + raw contract*: it takes records from one source system in that
//! system's own format and normalises them into the shared Avro schemas of [`unsilo_schemas`].
//! The SDK, mapping engine and built-in connectors are built in the connectors issue; today this crate
//! only re-exports the shared schemas it will map onto, so the dependency direction
//! (schemas ← connectors ← exchange-core) is already in place.

pub use unsilo_schemas as schemas;
