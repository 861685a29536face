//! Application timers (JSR 289 ServletTimer) that survive their container.
//!
//! A timer is part of its session record ([`crate::TimerRecord`]), so it
//! moves with the session. Two schedules fire it:
//!
//! * **The owner's**: the container holding the session keeps its timers
//!   in a local queue and fires them at their due time.
//! * **The cluster's**: every write of a session also keeps the store's
//!   timer index in step ([`session_store::SessionStore::put_timer`]), with
//!   each timer entered [`GRACE`] after its due time. Every container takes
//!   due entries from the index once a second (each entry goes to exactly
//!   one caller). A live owner has fired and re-armed or removed its timer
//!   by then, so what is left belongs to a container that died: the taker
//!   loads the session and fires the timer.
//!
//! Exactly once: before the handler runs, the timer is removed from the
//! record (or moved to its next period) and the record is written with
//! compare-and-set. When that write conflicts, another container changed
//! the session since this one read it: this one drops its copy and does
//! not fire. A container that dies after the write and before the handler
//! ends loses that one firing (at most once across a crash, never twice).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use session_store::{SessionStore, StoreError, StoredTimer};
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::context::RawContext;
use crate::engine::{Shared, commit, find_or_load, finish, forget, unix_ms};
use crate::session::{SessionCell, SessionId};
use crate::{AppError, TimerEvent};

/// How long after its due time a timer waits in the store's index before
/// any container may take it (its owner fires it before then).
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// How often the store's timer index is polled, and the longest the timer
/// task sleeps.
const POLL: Duration = Duration::from_secs(1);

/// How many stored timers one poll takes.
const TAKE: usize = 64;

fn grace_ms() -> u64 {
    crate::session::millis(GRACE)
}

/// Queues a timer of a session held here.
pub(crate) fn arm(shared: &Shared, session: &SessionId, timer: &str, due: u64) {
    shared
        .local_timers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((due, session.clone(), timer.to_owned()));
    shared.timers_changed.notify_one();
}

/// After a successful write: makes the store's timer index match the
/// record's timers.
pub(crate) async fn sync_index(shared: &Shared, cell: &SessionCell) {
    let (add, gone) = cell.with(|d| {
        let now: Vec<(String, u64)> = d
            .record
            .timers
            .iter()
            .map(|t| (t.id.clone(), t.due_unix_ms))
            .collect();
        let add: Vec<(String, u64)> = now
            .iter()
            .filter(|t| !d.synced_timers.contains(t))
            .cloned()
            .collect();
        let gone: Vec<String> = d
            .synced_timers
            .iter()
            .filter(|(id, _)| !now.iter().any(|(n, _)| n == id))
            .map(|(id, _)| id.clone())
            .collect();
        d.synced_timers = now;
        (add, gone)
    });
    for (id, due) in add {
        let t = StoredTimer {
            session: cell.id.as_str().to_owned(),
            id,
            due_unix_ms: due.saturating_add(grace_ms()),
            payload: Vec::new(),
        };
        if let Err(e) = shared.store.put_timer(t).await {
            shared.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            warn!(session = %cell.id, error = %e, "timer not indexed in the store");
        }
    }
    for id in gone {
        if let Err(e) = shared.store.remove_timer(cell.id.as_str(), &id).await {
            shared.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            debug!(session = %cell.id, error = %e, "timer not removed from the store");
        }
    }
}

/// A session is gone: its timers leave the store's index.
pub(crate) async fn unindex_all(shared: &Shared, cell: &SessionCell) {
    let ids: Vec<String> = cell.with(|d| {
        std::mem::take(&mut d.synced_timers)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    });
    for id in ids {
        if let Err(e) = shared.store.remove_timer(cell.id.as_str(), &id).await {
            debug!(session = %cell.id, error = %e, "timer not removed from the store");
        }
    }
}

/// The timer task: fires local timers when due, and takes orphaned ones
/// from the store once a second. Holds the engine weakly, so it ends with
/// it.
pub(crate) async fn run(shared: Weak<Shared>, wake: Arc<Notify>) {
    let mut next_poll = tokio::time::Instant::now() + POLL;
    loop {
        let sleep_for = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let now = unix_ms();
            for (due, session, timer) in take_local(&shared, now) {
                tokio::spawn(fire(Arc::clone(&shared), session, timer, Due::Local(due)));
            }
            if tokio::time::Instant::now() >= next_poll {
                next_poll = tokio::time::Instant::now() + POLL;
                tokio::spawn(poll_store(Arc::clone(&shared)));
            }
            let next_local = shared
                .local_timers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .first()
                .map(|(due, _, _)| Duration::from_millis(due.saturating_sub(now)));
            let to_poll = next_poll.saturating_duration_since(tokio::time::Instant::now());
            next_local.map_or(to_poll, |d| d.min(to_poll))
        };
        tokio::select! {
            () = tokio::time::sleep(sleep_for) => {}
            () = wake.notified() => {}
        }
    }
}

fn take_local(shared: &Shared, now: u64) -> Vec<(u64, SessionId, String)> {
    let mut q = shared
        .local_timers
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut due = Vec::new();
    while q.first().is_some_and(|(at, _, _)| *at <= now) {
        if let Some(t) = q.pop_first() {
            due.push(t);
        }
    }
    due
}

async fn poll_store(shared: Arc<Shared>) {
    let taken = match shared.store.take_due_timers(unix_ms(), TAKE).await {
        Ok(t) => t,
        Err(e) => {
            shared.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            debug!(error = %e, "stored timers not polled");
            return;
        }
    };
    for t in taken {
        let Some(session) = SessionId::parse(&t.session) else {
            continue;
        };
        debug!(session = %session, timer = %t.id, "taking over a stored timer");
        tokio::spawn(fire(Arc::clone(&shared), session, t.id, Due::Stored));
    }
}

/// Which schedule fired a timer.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// The local queue, for this due time (an entry whose record says
    /// otherwise is stale).
    Local(u64),
    /// The store's index: the timer is overdue at its owner.
    Stored,
}

async fn fire(shared: Arc<Shared>, session: SessionId, timer: String, due: Due) {
    let held = shared
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains_key(&session);
    let Some(cell) = find_or_load(&shared, &session).await else {
        return;
    };
    let app_name = cell.with(|d| d.record.app.clone());
    let Some(app) = shared.router.by_name(&app_name) else {
        return;
    };
    let turn = cell.turn.lock().await;
    let now = unix_ms();
    let event = cell.with(|d| {
        let t = d.record.timers.iter_mut().find(|t| t.id == timer)?;
        let fires = match due {
            Due::Local(at) => t.due_unix_ms == at && at <= now,
            Due::Stored => t.due_unix_ms <= now,
        };
        if !fires {
            return None;
        }
        let ev = TimerEvent {
            id: t.id.clone(),
            payload: t.payload.clone(),
            due_unix_ms: t.due_unix_ms,
            period_ms: t.period_ms,
        };
        match t.period_ms.filter(|p| *p > 0) {
            Some(p) => {
                // The next period after now (missed periods are skipped).
                let behind = now.saturating_sub(t.due_unix_ms) / p + 1;
                t.due_unix_ms = t.due_unix_ms.saturating_add(behind.saturating_mul(p));
            }
            None => d.record.timers.retain(|x| x.id != timer),
        }
        d.dirty = true;
        Some(ev)
    });
    let Some(event) = event else {
        if !held && matches!(due, Due::Stored) {
            // Loaded only to look: the timer had already fired or moved.
            drop(turn);
            forget(&shared, &session);
        }
        return;
    };
    // Claim the firing before running the handler (see the module doc).
    match commit(&shared, &cell).await {
        Err(AppError::Store(StoreError::Conflict { .. })) => {
            debug!(session = %session, timer = %timer, "another container owns the session now");
            drop(turn);
            forget(&shared, &session);
            return;
        }
        Err(e) => {
            // The store is down: fire anyway (the session is held here), and
            // write it once the store is back.
            warn!(session = %session, timer = %timer, error = %e, "timer fired without being recorded");
        }
        Ok(()) => {}
    }
    let next = cell.with(|d| {
        d.record
            .timers
            .iter()
            .find(|t| t.id == timer)
            .map(|t| t.due_unix_ms)
    });
    if let Some(next) = next {
        arm(&shared, &session, &timer, next);
    }
    let raw = RawContext {
        shared: Arc::clone(&shared),
        cell: Arc::clone(&cell),
        listener: app.listener(),
    };
    match app.dispatch_timer(raw, event) {
        Some(fut) => {
            if let Err(e) = fut.await {
                warn!(session = %session, timer = %timer, error = %e, "timer handler failed");
            }
        }
        None => {
            warn!(app = %app_name, timer = %timer, "timer fired; the application has no timer handler")
        }
    }
    drop(turn);
    finish(&shared, &cell).await;
}
