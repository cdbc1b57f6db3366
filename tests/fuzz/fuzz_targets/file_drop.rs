//! Fuzz target `file_drop`: see `unsilo_hub::fuzzing::file_drop`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unsilo_hub::fuzzing::file_drop(data));
