//! The entry points of the fuzz targets: each takes arbitrary bytes, as an attacker or a broken source system
//! could send them, and must return without panicking, hanging or allocating without bound.
//!
//! The coverage-guided targets in `tests/fuzz/` (cargo-fuzz, run for a bounded time by `tests/fuzz/run.sh`) call
//! these functions, and so does the corpus replay test (`tests/tests/fuzz_corpus.rs`) that CI runs on the saved
//! corpus and on every crash found (each kept as a regression case in `tests/fuzz/regressions/`).
//!
//! | target | what it feeds |
//! |---|---|
//! | [`raw_json`] | a raw JSON record through a built-in connector's contract and mappings (`grid`, `hotline12345`, `qinwuyuan`) |
//! | [`cel_filter`] | a subscription filter compiled against a shared schema, then evaluated on its example record |
//! | [`framed_avro`] | a Confluent-framed record decoded with the shared schemas as the registry serves them |
//! | [`registry_schema`] | schema text parsed as the registry parses it, then checked for compatibility both ways |
//! | [`file_drop`] | a dropped file (CSV, XLSX, JSON lines; UTF-8, GBK, GB18030) read into records |

use std::sync::OnceLock;

use unsilo_connectors::definition::ConnectorDefinition;
use unsilo_connectors::sdk::RawInput;

/// The largest allocation Avro decoding may make for one value (16 MiB): a length prefix cannot make the hub
/// allocate more. [`limit_avro_allocations`] sets it; the hub does at start.
pub const MAX_AVRO_ALLOCATION: usize = 16 * 1024 * 1024;

/// Caps apache-avro's allocations for one decoded value at [`MAX_AVRO_ALLOCATION`] (once per process).
pub fn limit_avro_allocations() {
    apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION);
}

fn definitions() -> &'static [ConnectorDefinition] {
    static DEFINITIONS: OnceLock<Vec<ConnectorDefinition>> = OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        ["grid", "hotline12345", "qinwuyuan"]
            .iter()
            .filter_map(|name| unsilo_connectors::builtin::definition(name).ok())
            .collect()
    })
}

/// A raw record through a connector: the first byte picks the connector, the rest is the record's bytes.
pub fn raw_json(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let definitions = definitions();
    if definitions.is_empty() {
        return;
    }
    let definition = &definitions[usize::from(pick) % definitions.len()];
    let input = RawInput::from_json_bytes(body.to_vec(), "fuzz");
    let mut out = Vec::new();
    let _ = definition.normalise(&input, &mut out);
}

/// A filter: the first byte picks the shared schema, the rest is the filter's source text.
pub fn cel_filter(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let Ok(source) = std::str::from_utf8(body) else {
        return;
    };
    let schemas = unsilo_schemas::shared_schemas();
    let shared = &schemas[usize::from(pick) % schemas.len()];
    let Ok(filter) = unsilo_policy::filter::Filter::compile(source, shared.avro()) else {
        return;
    };
    let Some(json) = unsilo_schemas::example_record(shared.name()) else {
        return;
    };
    if let Ok(value) = unsilo_schemas::json_to_avro(&json, shared.avro()) {
        let _ = filter.evaluate(&value);
    }
}

/// A framed record: the schema id in the frame picks the shared schema (as if the registry had assigned ids 1..N
/// to them), and the body is decoded with it, then resolved to every other shared schema of the same name.
pub fn framed_avro(data: &[u8]) {
    limit_avro_allocations();
    let Ok((id, mut body)) = unsilo_bus::wire::decode(data) else {
        return;
    };
    let schemas = unsilo_schemas::shared_schemas();
    let shared = &schemas[id as usize % schemas.len()];
    let _ = apache_avro::from_avro_datum(shared.avro(), &mut body, None);
}

/// Schema text as the registry parses it, then checked for compatibility with a shared schema both ways and at
/// every level.
pub fn registry_schema(data: &[u8]) {
    limit_avro_allocations();
    unsilo_registry::check_schema_text_for_fuzzing(data);
}

/// A dropped file: the first byte picks the name the file was dropped as (`.csv`, `.xlsx`, `.jsonl`, `.json`),
/// the rest is its content; at most 10 000 records are read.
pub fn file_drop(data: &[u8]) {
    use unsilo_connectors::transport::file_drop::{read_file_bytes, FileFormat};
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let name = [
        "drop.csv",
        "drop.xlsx",
        "drop.jsonl",
        "drop.json",
        "drop.xls",
    ][usize::from(pick) % 5];
    let _ = read_file_bytes(name, body.to_vec(), FileFormat::Auto, 10_000);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_point_takes_garbage() {
        for data in [
            &b""[..],
            b"\x00",
            b"\x00{\"a\":1}",
            b"\x01region_code.startsWith('61') &&",
            b"\x00\x00\x00\x00\x01\xff\xff\xff\xff\x0f",
            br#"{"type":"record","name":"x","fields":[{"name":"a","type":"long"}]}"#,
            b"\x00a,b\n1,2\n",
            b"\x01PK\x03\x04garbage",
        ] {
            raw_json(data);
            cel_filter(data);
            framed_avro(data);
            registry_schema(data);
            file_drop(data);
        }
    }
}
