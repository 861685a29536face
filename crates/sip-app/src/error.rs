//! The error an application handler returns, and what the container
//! answers for it.

use session_store::StoreError;

/// Why a handler or an answering call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// Answer the request with this status (when it is still unanswered).
    #[error("{status} {reason}")]
    Status {
        /// The SIP status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The session store failed: the request is answered 503 (state cannot
    /// be kept, so nothing is promised to the peer).
    #[error("session store: {0}")]
    Store(#[from] StoreError),
    /// The SIP stack stopped.
    #[error("the SIP stack stopped")]
    Stopped,
    /// The request was already answered (a second final answer).
    #[error("the request was already answered")]
    AlreadyAnswered,
    /// A message could not be built (a bad URI or header value from the
    /// application).
    #[error("cannot build the message: {0}")]
    Build(String),
    /// A target URI the application gave cannot be reached or parsed.
    #[error("bad target {target}: {reason}")]
    Target {
        /// The URI.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl AppError {
    /// Answer with `status` and its default reason phrase.
    #[must_use]
    pub fn status(status: u16) -> AppError {
        AppError::Status {
            status,
            reason: sip_message::default_reason(status).to_owned(),
        }
    }

    /// Answer with `status` and a reason phrase that says what is wrong.
    #[must_use]
    pub fn with_reason(status: u16, reason: impl Into<String>) -> AppError {
        AppError::Status {
            status,
            reason: reason.into(),
        }
    }

    /// The status and reason the container answers an unanswered request
    /// with when a handler fails this way.
    #[must_use]
    pub fn response_status(&self) -> (u16, String) {
        match self {
            AppError::Status { status, reason } => (*status, reason.clone()),
            AppError::Store(StoreError::Conflict { .. }) => (
                500,
                "Server Internal Error (session changed on another container)".to_owned(),
            ),
            AppError::Store(_) => (503, "Session Store Unavailable".to_owned()),
            AppError::Target { reason, .. } => (
                480,
                format!("Temporarily Unavailable ({reason})").replace(['\r', '\n'], " "),
            ),
            AppError::Stopped | AppError::AlreadyAnswered | AppError::Build(_) => {
                (500, "Server Internal Error".to_owned())
            }
        }
    }
}
