//! Backends, rendezvous hashing, health checks and membership; knows no SIP.
//!
//! Not built yet: this crate holds its place in the workspace so the one-way
//! dependency graph of `docs/ARCHITECTURE.md` exists from the first commit.
//! Its work is tracked in issue 5.
