//! The async shell around sip-proto: one shard per core, timers on a timing wheel.
//!
//! Not built yet: this crate holds its place in the workspace so the one-way
//! dependency graph of `docs/ARCHITECTURE.md` exists from the first commit.
//! Its work is tracked in issue 3.
