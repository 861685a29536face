//! The L4 load balancer that spreads flows over the edge proxies; reads no SIP.
//!
//! Not built yet: this crate holds its place in the workspace so the one-way
//! dependency graph of `docs/ARCHITECTURE.md` exists from the first commit.
//! Its work is tracked in issue 5.
