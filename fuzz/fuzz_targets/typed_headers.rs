//! Fuzz target `typed_headers`: see `check_typed_headers` in `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_message_fuzz::checks::check_typed_headers(data));
