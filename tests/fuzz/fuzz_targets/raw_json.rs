//! Fuzz target `raw_json`: see `unsilo_hub::fuzzing::raw_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unsilo_hub::fuzzing::raw_json(data));
