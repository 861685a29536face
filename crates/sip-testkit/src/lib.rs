//! `sip-testkit`: support for Switchboard's tests (a dev-dependency only).
//!
//! It grows with the tests that share it; today it holds:
//! * [`pki`]: a throwaway certificate authority and a server certificate
//!   for loopback, for TLS and WSS tests on real sockets.
//!
//! The virtual clock, simulated network and scripted peers of the protocol
//! tests live with those tests for now (`crates/sip-proto/tests/sim`).

pub mod pki;
