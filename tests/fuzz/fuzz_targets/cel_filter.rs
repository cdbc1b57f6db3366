//! Fuzz target `cel_filter`: see `unsilo_exchange_core::fuzzing::cel_filter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unsilo_exchange_core::fuzzing::cel_filter(data));
