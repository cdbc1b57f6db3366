//! Fuzz target `registry_schema`: see `unsilo_hub::fuzzing::registry_schema`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unsilo_hub::fuzzing::registry_schema(data));
