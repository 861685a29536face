//! Per-backend health: rise/fall thresholds over active and passive signals.
//!
//! A backend flips from up to down after `fall` consecutive failures and
//! back after `rise` consecutive successes (pingora's rule: one lost probe
//! does not move traffic). Draining is set by an operator; overload comes
//! from the backend itself (a 503 with Retry-After) and lasts until a time.

use std::time::{Duration, Instant};

/// What a backend can take, as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Healthy: takes new sessions and its sessions' traffic.
    Up,
    /// Failed its health checks: takes nothing; its sessions fail over.
    Down,
    /// Taken out by an operator: no new sessions, keeps its sessions' traffic.
    Draining,
    /// Asked for no new sessions until `until` (503 with Retry-After); keeps
    /// its sessions' traffic.
    Overloaded {
        /// When the backend takes new sessions again.
        until: Instant,
    },
}

impl State {
    /// Whether the backend may get a new session at `now`.
    #[must_use]
    pub fn accepts_new(self, now: Instant) -> bool {
        match self {
            State::Up => true,
            State::Overloaded { until } => until <= now,
            State::Down | State::Draining => false,
        }
    }

    /// Whether the backend may get traffic of a session it already owns.
    #[must_use]
    pub fn accepts_existing(self) -> bool {
        !matches!(self, State::Down)
    }

    /// A short lowercase name (`up`, `down`, `draining`, `overloaded`), as
    /// shown in metrics and the admin API. An overload that has expired at
    /// `now` shows as `up`.
    #[must_use]
    pub fn name(self, now: Instant) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Draining => "draining",
            State::Overloaded { until } if until <= now => "up",
            State::Overloaded { .. } => "overloaded",
        }
    }
}

/// One observation about a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// An active probe succeeded.
    ProbeOk,
    /// An active probe failed (no answer in time, refused, bad status).
    ProbeFailed,
    /// Passive: the backend answered something (a response was seen).
    ResponseSeen,
    /// Passive: sending to the backend failed (ICMP unreachable, reset).
    TransportError,
    /// Passive: the backend did not answer in time.
    Timeout,
    /// The backend asked for no new work for this long (503 Retry-After).
    Overloaded {
        /// The Retry-After duration.
        retry_after: Duration,
    },
}

/// Thresholds for flipping a backend's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive successes to go from down to up.
    pub rise: u32,
    /// Consecutive failures to go from up to down.
    pub fall: u32,
    /// Whether a backend starts up (true) or must first pass `rise` probes.
    pub start_up: bool,
}

impl Default for HealthPolicy {
    fn default() -> HealthPolicy {
        HealthPolicy {
            rise: 2,
            fall: 2,
            start_up: true,
        }
    }
}

/// The health state machine of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthTracker {
    policy: HealthPolicy,
    alive: bool,
    /// Consecutive results that disagree with `alive`.
    streak: u32,
    draining: bool,
    overloaded_until: Option<Instant>,
}

impl HealthTracker {
    /// A tracker with `policy`; starts up or down per `policy.start_up`.
    #[must_use]
    pub fn new(policy: HealthPolicy) -> HealthTracker {
        HealthTracker {
            policy,
            alive: policy.start_up,
            streak: 0,
            draining: false,
            overloaded_until: None,
        }
    }

    /// Feeds one signal observed at `now`; returns whether [`Self::state`]
    /// changed.
    pub fn record(&mut self, signal: Signal, now: Instant) -> bool {
        let before = self.state(now);
        match signal {
            Signal::ProbeOk | Signal::ResponseSeen => self.observe(true),
            Signal::ProbeFailed | Signal::TransportError | Signal::Timeout => self.observe(false),
            Signal::Overloaded { retry_after } => {
                // An overloaded backend is alive: it answered.
                self.observe(true);
                self.overloaded_until = now.checked_add(retry_after);
            }
        }
        self.state(now) != before
    }

    fn observe(&mut self, ok: bool) {
        if ok == self.alive {
            self.streak = 0;
            return;
        }
        self.streak = self.streak.saturating_add(1);
        let needed = if ok {
            self.policy.rise
        } else {
            self.policy.fall
        };
        if self.streak >= needed.max(1) {
            self.alive = ok;
            self.streak = 0;
        }
    }

    /// Sets or clears draining (operator action); returns whether it changed.
    pub fn set_draining(&mut self, draining: bool) -> bool {
        std::mem::replace(&mut self.draining, draining) != draining
    }

    /// Whether the operator set draining.
    #[must_use]
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Whether the probes say the backend is alive.
    #[must_use]
    pub fn alive(&self) -> bool {
        self.alive
    }

    /// The state at `now`: down wins over draining, draining over overload.
    #[must_use]
    pub fn state(&self, now: Instant) -> State {
        if !self.alive {
            return State::Down;
        }
        if self.draining {
            return State::Draining;
        }
        match self.overloaded_until {
            Some(until) if until > now => State::Overloaded { until },
            _ => State::Up,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rise: u32, fall: u32) -> HealthPolicy {
        HealthPolicy {
            rise,
            fall,
            start_up: true,
        }
    }

    #[test]
    fn fall_needs_consecutive_failures() {
        let now = Instant::now();
        let mut t = HealthTracker::new(policy(2, 3));
        assert!(!t.record(Signal::ProbeFailed, now));
        assert!(!t.record(Signal::Timeout, now));
        // A success in between resets the streak.
        assert!(!t.record(Signal::ProbeOk, now));
        assert!(!t.record(Signal::ProbeFailed, now));
        assert!(!t.record(Signal::TransportError, now));
        assert_eq!(t.state(now), State::Up);
        assert!(t.record(Signal::ProbeFailed, now));
        assert_eq!(t.state(now), State::Down);
    }

    #[test]
    fn rise_needs_consecutive_successes() {
        let now = Instant::now();
        let mut t = HealthTracker::new(HealthPolicy {
            rise: 2,
            fall: 1,
            start_up: false,
        });
        assert_eq!(t.state(now), State::Down);
        assert!(!t.record(Signal::ProbeOk, now));
        assert!(!t.record(Signal::ProbeFailed, now));
        assert!(!t.record(Signal::ProbeOk, now));
        assert!(t.record(Signal::ResponseSeen, now));
        assert_eq!(t.state(now), State::Up);
        assert!(t.record(Signal::ProbeFailed, now));
        assert_eq!(t.state(now), State::Down);
    }

    #[test]
    fn overload_lasts_until_retry_after() {
        let now = Instant::now();
        let mut t = HealthTracker::new(policy(1, 1));
        assert!(t.record(
            Signal::Overloaded {
                retry_after: Duration::from_secs(5)
            },
            now
        ));
        let until = now + Duration::from_secs(5);
        assert_eq!(t.state(now), State::Overloaded { until });
        assert!(!t.state(now).accepts_new(now));
        assert!(t.state(now).accepts_existing());
        assert!(t.state(now).accepts_new(until));
        assert_eq!(t.state(until), State::Up);
        assert_eq!(State::Overloaded { until }.name(until), "up");
    }

    #[test]
    fn draining_keeps_existing_traffic_and_down_wins() {
        let now = Instant::now();
        let mut t = HealthTracker::new(policy(1, 1));
        assert!(t.set_draining(true));
        assert!(!t.set_draining(true));
        assert_eq!(t.state(now), State::Draining);
        assert!(!t.state(now).accepts_new(now));
        assert!(t.state(now).accepts_existing());
        t.record(Signal::ProbeFailed, now);
        assert_eq!(t.state(now), State::Down);
        assert!(!t.state(now).accepts_existing());
    }
}
