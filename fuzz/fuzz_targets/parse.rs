//! Fuzz target `parse`: see `check_parse` in `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_message_fuzz::checks::check_parse(data));
