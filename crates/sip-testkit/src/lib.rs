//! `sip-testkit`: support for Switchboard's tests (a dev-dependency only).
//!
//! It grows with the tests that share it; today it holds:
//! * [`pki`]: a throwaway certificate authority and a server certificate
//!   for loopback, for TLS and WSS tests on real sockets.
//! * [`process`]: real processes (our binary, SIPp) started with deadlines
//!   and killed on drop.
//! * [`sipp`]: SIPp command lines, its final counts, background instances.
//!
//! The virtual clock, simulated network and scripted peers of the protocol
//! tests live with those tests for now (`crates/sip-proto/tests/sim`).

pub mod pki;
pub mod process;
pub mod sipp;
