//! Realistic example records, one per shared schema, as plain JSON (see [`crate::convert`]).
//!
//! The files live in `schemas/examples/<name>.json`. They use Chinese names, Shaanxi village codes from the
//! embedded region tables, ID numbers and unified social credit codes with correct check characters, mobile
//! numbers, and Beijing-time instants as epoch milliseconds; `envelope.record_id` is computed with
//! [`crate::record_id()`]. The people and organisations are invented. Tests prove every example converts, validates
//! and round-trips through Avro binary, and that its identifiers pass the validators.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

macro_rules! example_file {
    ($name:literal) => {
        ($name, include_str!(concat!("../examples/", $name, ".json")))
    };
}

/// The embedded example files, named like the schemas.
const EXAMPLE_FILES: [(&str, &str); 9] = [
    example_file!("grid_event"),
    example_file!("grid_unit"),
    example_file!("household"),
    example_file!("resident"),
    example_file!("hotline_ticket"),
    example_file!("service_case"),
    example_file!("rating"),
    example_file!("appeal"),
    example_file!("dept_record"),
];

static EXAMPLES: LazyLock<HashMap<&'static str, Value>> = LazyLock::new(|| {
    EXAMPLE_FILES
        .iter()
        .map(|(name, text)| {
            // Compiled-in files; `tests::every_example_parses` proves they are JSON.
            let json = serde_json::from_str(text).unwrap_or_else(|e| {
                panic!("embedded example examples/{name}.json is not JSON: {e}")
            });
            (*name, json)
        })
        .collect()
});

/// The example record of the schema with this short name (e.g. `grid_event`), as plain JSON.
pub fn example_record(name: &str) -> Option<Value> {
    EXAMPLES.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_parses() {
        for (name, text) in EXAMPLE_FILES {
            let json: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(json.is_object(), "{name}");
        }
        assert!(example_record("grid_event").is_some());
        assert!(example_record("nope").is_none());
    }
}
