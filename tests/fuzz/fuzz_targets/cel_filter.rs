//! Fuzz target `cel_filter`: see `unsilo_hub::fuzzing::cel_filter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unsilo_hub::fuzzing::cel_filter(data));
