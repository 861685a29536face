//! The stateless SIP edge proxy and HTTP reverse proxy with affinity, health and failover.
//!
//! Not built yet: this crate holds its place in the workspace so the one-way
//! dependency graph of `docs/ARCHITECTURE.md` exists from the first commit.
//! Its work is tracked in issue 5.
