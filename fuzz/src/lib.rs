//! Fuzz harness for `sip-message` and sip-proto's `Endpoint`.
//!
//! The fuzz targets in `fuzz_targets/` are one line each; what they check
//! lives in [`checks`], which the ordinary test
//! `crates/sip-message/tests/fuzz_corpus.rs` also includes to replay the
//! committed corpus in CI on the stable toolchain.

pub mod checks;
pub mod endpoint;
