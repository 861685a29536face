//! Fuzz target `framer`: see `check_framer` in `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_message_fuzz::checks::check_framer(data));
