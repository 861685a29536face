//! Fuzz target `endpoint`: see `check_endpoint` in `src/endpoint.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_message_fuzz::endpoint::check_endpoint(data));
