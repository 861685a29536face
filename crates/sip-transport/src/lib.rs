//! SIP transports: UDP, TCP, TLS, WebSocket (RFC 7118), with rport (RFC 3581) and keepalives (RFC 5626).
//!
//! Not built yet: this crate holds its place in the workspace so the one-way
//! dependency graph of `docs/ARCHITECTURE.md` exists from the first commit.
//! Its work is tracked in issue 3.
