//! The mapping engine against its oracle and its users' expectations.
//!
//! - Every shared schema's example record goes through a mapping (an identity mapping generated from the
//!   schema, and for grid_event, hotline_ticket and dept_record a mapping from an invented raw dialect in
//!   `tests/fixtures/mapping/`), and the fast path's Avro bytes must decode (apache-avro) to exactly what
//!   `unsilo_schemas::json_to_avro` makes of `to_json`'s output — and re-encode to the same bytes.
//! - Randomised and malformed raw records give the same answer on both paths, a `RecordError` instead of a
//!   panic, and leave the output buffer as it was.
//! - Each kind of load error names its line.
//!
//! The parts: `identity.rs` (identity mappings generated from the schemas), `dialects.rs` (invented raw dialects),
//! `records.rs` (record-level behaviour), `load_errors.rs`, `randomised.rs`; the oracle helpers are here.

mod dialects;
mod identity;
mod load_errors;
mod randomised;
mod records;

use std::path::{Path, PathBuf};

use apache_avro::types::Value as Avro;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value as Json};
use unsilo_connectors::mapping::{
    parse_samples, test_mapping, CompiledMapping, Mapping, MappingError, RecordError,
    RecordErrorKind, TestMappingError, Validator,
};
use unsilo_schemas::{example_record, json_to_avro, shared_schema, shared_schemas, SharedSchema};

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mapping")
        .join(name)
}

pub(crate) fn load(name: &str) -> CompiledMapping {
    Mapping::load(fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn raw(name: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

pub(crate) fn has_map_with_several_entries(v: &Avro) -> bool {
    match v {
        Avro::Map(m) => m.len() > 1 || m.values().any(has_map_with_several_entries),
        Avro::Record(fields) => fields.iter().any(|(_, v)| has_map_with_several_entries(v)),
        Avro::Array(items) => items.iter().any(has_map_with_several_entries),
        Avro::Union(_, inner) => has_map_with_several_entries(inner),
        _ => false,
    }
}

/// The oracle: `encode` appends bytes that apache-avro decodes to `json_to_avro(to_json(raw))`, and that
/// apache-avro's own encoder reproduces byte for byte.
pub(crate) fn assert_oracle(mapping: &CompiledMapping, raw: &Json, ingest: i64) -> Json {
    let schema = mapping.target().avro();
    let mut out = vec![0xAB, 0xCD];
    let normalised = mapping
        .encode_at(raw, ingest, &mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", mapping.origin()));
    assert_eq!(&out[..2], [0xAB, 0xCD], "encode must append");
    let bytes = out[2..].to_vec();
    let json = mapping
        .to_json_at(raw, ingest)
        .unwrap_or_else(|e| panic!("{}: {e}", mapping.origin()));
    let expected = json_to_avro(&json, schema).unwrap_or_else(|e| {
        panic!(
            "{}: to_json output does not convert: {e}\n{json:#}",
            mapping.origin()
        )
    });
    let mut reader = &bytes[..];
    let decoded = apache_avro::from_avro_datum(schema, &mut reader, None)
        .unwrap_or_else(|e| panic!("{}: bytes do not decode: {e}", mapping.origin()));
    assert!(
        reader.is_empty(),
        "{}: {} trailing bytes",
        mapping.origin(),
        reader.len()
    );
    assert_eq!(decoded, expected, "{}", mapping.origin());
    if !has_map_with_several_entries(&expected) {
        let reference = apache_avro::to_avro_datum(schema, expected).unwrap();
        assert_eq!(
            reference,
            bytes,
            "{}: bytes differ from apache-avro's",
            mapping.origin()
        );
    }
    assert_eq!(json["envelope"]["record_id"], normalised.record_id);
    assert_eq!(json["envelope"]["source_system"], mapping.source_system());
    json
}

/// Two plain-JSON records are the same Avro record.
pub(crate) fn assert_same_record(schema: &SharedSchema, actual: &Json, expected: &Json) {
    let a = json_to_avro(actual, schema.avro()).unwrap();
    let e = json_to_avro(expected, schema.avro()).unwrap();
    if a != e {
        panic!(
            "{}: records differ\nactual:   {}\nexpected: {}",
            schema.name(),
            serde_json::to_string_pretty(actual).unwrap(),
            serde_json::to_string_pretty(expected).unwrap()
        );
    }
}
