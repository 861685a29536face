//! What a handler gets besides the request: the application's state, its
//! application session, and the container's services.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Shared;
use crate::session::{AppSession, SessionCell, TimerRecord, millis};
use crate::{AppError, SessionId};

/// The untyped part of a [`Context`].
#[derive(Clone)]
pub(crate) struct RawContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cell: Arc<SessionCell>,
}

/// A handler's context: state, session, services.
pub struct Context<S> {
    pub(crate) state: Arc<S>,
    pub(crate) raw: RawContext,
}

impl<S> Clone for Context<S> {
    fn clone(&self) -> Self {
        Context {
            state: Arc::clone(&self.state),
            raw: self.raw.clone(),
        }
    }
}

impl<S> std::fmt::Debug for Context<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("session", &self.raw.cell.id)
            .finish_non_exhaustive()
    }
}

impl<S> Context<S> {
    /// The application's state.
    #[must_use]
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The application session this request belongs to.
    #[must_use]
    pub fn session(&self) -> AppSession<'_> {
        AppSession {
            cell: &self.raw.cell,
            now_unix_ms: crate::engine::unix_ms(),
        }
    }

    /// The session id (the affinity token).
    #[must_use]
    pub fn session_id(&self) -> &SessionId {
        &self.raw.cell.id
    }

    /// This container's node id.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.raw.shared.config.node
    }

    /// The session store, for application data beyond the session (the
    /// registrar's bindings).
    #[must_use]
    pub fn store(&self) -> &session_store::Store {
        &self.raw.shared.store
    }

    /// The SIP stack, for requests the application sends itself.
    #[must_use]
    pub fn stack(&self) -> &sip_stack::StackHandle {
        &self.raw.shared.stack
    }

    /// Sets a timer on this session (JSR 289 ServletTimer): after `delay`
    /// the application's `timer` handler runs with `payload`, on whichever
    /// container owns the session then. A timer with the same id is
    /// replaced. `period` makes it repeat.
    pub fn set_timer(
        &self,
        id: &str,
        delay: Duration,
        period: Option<Duration>,
        payload: serde_json::Value,
    ) {
        let due = crate::engine::unix_ms().saturating_add(millis(delay));
        self.raw.cell.with(|d| {
            d.record.timers.retain(|t| t.id != id);
            d.record.timers.push(TimerRecord {
                id: id.to_owned(),
                due_unix_ms: due,
                period_ms: period.map(millis),
                payload,
            });
            d.dirty = true;
        });
        crate::timers::arm(&self.raw.shared, &self.raw.cell.id, id, due);
    }

    /// Cancels a timer of this session.
    pub fn cancel_timer(&self, id: &str) {
        self.raw.cell.with(|d| {
            let before = d.record.timers.len();
            d.record.timers.retain(|t| t.id != id);
            d.dirty |= d.record.timers.len() != before;
        });
    }

    /// Writes the session to the store now (the container also does it
    /// before any message that reveals the session's state leaves).
    pub async fn commit(&self) -> Result<(), AppError> {
        crate::engine::commit(&self.raw.shared, &self.raw.cell).await
    }
}
