//! Fuzz target `framed_avro`: see `unsilo_hub::fuzzing::framed_avro`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unsilo_hub::fuzzing::framed_avro(data));
