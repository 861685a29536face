//! Fuzz target `uri`: see `check_uri` in `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_message_fuzz::checks::check_uri(data));
