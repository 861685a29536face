//! `sip-testkit`: support for Switchboard's tests (a dev-dependency only).
//!
//! It grows with the tests that share it; today it holds:
//! * [`pki`]: a throwaway certificate authority and a server certificate
//!   for loopback, for TLS and WSS tests on real sockets.
//! * [`process`]: real processes (our binary, SIPp) started with deadlines
//!   and killed on drop.
//! * [`sipp`]: SIPp command lines, its final counts, background instances.
//! * [`lab`]: applications tested in process: the engine and scripted
//!   phones on an in-process network, no socket, on a virtual clock.
//!
//! The simulated network and scripted peers of the sans-IO protocol tests
//! (which drive the endpoint without tokio) live with those tests
//! (`crates/sip-proto/tests/sim`).

pub mod lab;
pub mod pki;
pub mod process;
pub mod sipp;
