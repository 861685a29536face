//! Sans-IO SIP transaction (RFC 3261 section 17, RFC 6026) and dialog (section 12) layers.
//!
//! Not built yet: this crate holds its place in the workspace so the one-way
//! dependency graph of `docs/ARCHITECTURE.md` exists from the first commit.
//! Its work is tracked in issue 3.
