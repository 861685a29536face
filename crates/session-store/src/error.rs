//! [`StoreError`]: what a store call can fail with, and how the container
//! answers each.

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Compare-and-set lost: the stored version is not the expected one.
    /// Nothing was written; read the record again (it may belong to another
    /// container now).
    #[error("version conflict on {key:?}: expected {expected}, stored {current}")]
    Conflict {
        /// The record's key.
        key: String,
        /// The version the caller expected.
        expected: u64,
        /// The version stored (0: absent).
        current: u64,
    },

    /// The store cannot be reached (Redis down): callers answer 503.
    ///
    /// Also for a call that did not finish within the store's timeout, and
    /// for the transient states of a Redis server or cluster (loading its
    /// data, a read-only replica after a failover, cluster down). A write
    /// that fails this way may or may not have been applied: re-read before
    /// writing again.
    #[error("session store unavailable: {0}")]
    Unavailable(String),

    /// A bad URL / config.
    #[error("session store configuration: {0}")]
    Config(String),

    /// The write was applied on the Redis primary, but fewer replicas than
    /// configured (`?wait=N`) acknowledged it within `wait_timeout_ms`: it
    /// could be lost if the primary fails now. Callers answer 503 and
    /// re-read before writing again (the version did move).
    #[error("write not replicated: {acked} of {wanted} replicas acknowledged it")]
    NotReplicated {
        /// How many replicas acknowledged the write.
        acked: u64,
        /// How many were asked for.
        wanted: u64,
    },

    /// Something stored under the store's prefix is not in the shape this
    /// crate writes (another program wrote there, or a different version of
    /// this crate): the record or timer cannot be read.
    #[error("corrupt data in the session store: {0}")]
    Corrupt(String),

    /// The Redis server refused a command for a reason that is not about
    /// reachability (a script error, out of memory, a permission): a bug or a
    /// misconfigured server, not a transient state.
    #[error("session store backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// True for errors that a later retry may not have (the store is
    /// unreachable, or replication lagged), as opposed to a conflict or a
    /// configuration or data problem.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::NotReplicated { .. }
        )
    }
}
