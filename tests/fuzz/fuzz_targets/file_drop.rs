//! Fuzz target `file_drop`: see `unsilo_exchange_core::fuzzing::file_drop`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unsilo_exchange_core::fuzzing::file_drop(data));
