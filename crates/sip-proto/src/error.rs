//! Errors of the transaction layer's API. Peer input never produces one:
//! a bad message from the network is answered or dropped, not returned.

use sip_message::BuildError;

use crate::transaction::TxState;
use crate::types::TxId;

/// Why the transaction user's call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// No transaction with this id (it may have terminated).
    #[error("no transaction {0}")]
    UnknownTransaction(TxId),
    /// The transaction's state does not allow this.
    #[error("{tx} is {state:?}")]
    InvalidState {
        /// The transaction.
        tx: TxId,
        /// Its state.
        state: TxState,
    },
    /// A request was expected.
    #[error("not a request")]
    NotARequest,
    /// A response was expected.
    #[error("not a response")]
    NotAResponse,
    /// A request to send has no top Via with a branch.
    #[error("request has no Via branch")]
    MissingBranch,
    /// A client transaction with this branch and method already exists.
    #[error("a transaction with this branch exists")]
    DuplicateBranch,
    /// ACK is never a client transaction (§17.1.1.3); send it statelessly.
    #[error("ACK is not sent through a transaction")]
    AckIsNotATransaction,
    /// Building a message (ACK, CANCEL, 100 Trying) failed.
    #[error("building a message failed: {0}")]
    Build(#[from] BuildError),
}
