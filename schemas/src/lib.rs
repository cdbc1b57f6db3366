//! unsilo's shared Avro schemas, reference data and identifier validators.
//!
//! The `.avsc` files under `schemas/avro/` are the single source of truth for every record on the bus; this
//! crate embeds them and everything the rest of unsilo needs to work with them.
//!
//! # Layout
//!
//! - [`catalog`]: the embedded schemas, composed self-contained (envelope inlined) and parsed once —
//!   [`shared_schemas`], [`shared_schema`], [`envelope_schema`], with topic and registry subject names.
//! - [`classification`]: the envelope's sharing classes and data grades, and which of them the gates know.
//! - [`tags`]: the sensitivity view (`x-sensitivity` S1..S4, `x-pii` kinds) the policy engine reads.
//! - [`convert`]: schema-directed conversion of plain JSON into Avro values ([`json_to_avro`]).
//! - [`crypto`]: the deployment's cryptographic suite (国密 SM2/SM3/SM4 or international) and its keyed hash.
//! - [`examples`]: one realistic example record per schema ([`example_record`]).
//! - [`model`]: the one schema model — a schema as a resolved, tagged type tree with dotted paths.
//! - [`mask`]: the one PII masker (ID numbers 6 + 4, mobiles 3 + 4, names their first character).
//! - [`names`]: the shared vocabulary of the bus — topic, subject, consumer-group and header names.
//! - [`record_id`](mod@record_id): the deterministic record id recipe.
//! - [`redact`]: the one URL redactor (passwords and query values never shown).
//! - [`validate`]: resident ID numbers, unified social credit codes, region and grid codes (with the embedded
//!   Shaanxi division tables), mobile numbers.
//! - [`date`]: the small amount of calendar arithmetic the above need.
//!
//! ```
//! let schema = unsilo_schemas::shared_schema("grid_event").unwrap();
//! assert_eq!(schema.subject(), "std.grid_event-value");
//! let record = unsilo_schemas::example_record("grid_event").unwrap();
//! let value = unsilo_schemas::json_to_avro(&record, schema.avro()).unwrap();
//! assert!(value.validate(schema.avro()));
//! ```

pub mod avro;
pub mod catalog;
pub mod classification;
pub mod convert;
pub mod crypto;
pub mod date;
pub mod examples;
pub mod mask;
pub mod model;
pub mod names;
pub mod record_id;
pub mod redact;
pub mod tags;
pub mod validate;

pub use catalog::{
    envelope_schema, shared_schema, shared_schemas, SharedSchema, ENVELOPE_FULL_NAME,
};
/// The resource catalogue entries the shared schemas declare (`schemas/catalogue.toml`): one per shared schema,
/// seeded into a hub's catalogue on its first start. Read by `unsilo_policy::catalogue`.
pub const CATALOGUE_DECLARATIONS: &str = include_str!("../catalogue.toml");

pub use convert::{json_to_avro, AvroConverter, ConvertError, ConvertErrorKind};
pub use examples::example_record;
pub use record_id::record_id;
pub use tags::{FieldTag, PiiKind, Sensitivity};
