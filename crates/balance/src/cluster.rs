//! Membership and the atomically swapped cluster view.
//!
//! [`Cluster`] is the one writer-side object: probes, passive signals and the
//! admin API call it, it updates the health trackers under a mutex and, when
//! anything a router can see changed, publishes a new immutable
//! [`ClusterView`] with `arc-swap`. Routers call [`Cluster::view`] and read
//! the snapshot without a lock; a view never changes once published.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::health::{HealthPolicy, HealthTracker, Signal, State};
use crate::rendezvous::{Backend, first_by, ranked};

/// A membership change that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// A backend with this id is already a member.
    #[error("backend {0} is already a member")]
    Duplicate(String),
    /// No backend with this id.
    #[error("no backend {0}")]
    Unknown(String),
}

/// One backend in a published view: its id and weight, its state when the
/// view was published, and the caller's data (addresses, counters).
#[derive(Debug)]
pub struct Member<T> {
    /// Id and weight.
    pub backend: Backend,
    /// State when the view was published (an overload carries its end time,
    /// so it expires without a new view).
    pub state: State,
    /// The caller's data for this backend.
    pub data: Arc<T>,
}

impl<T> Clone for Member<T> {
    fn clone(&self) -> Member<T> {
        Member {
            backend: self.backend.clone(),
            state: self.state,
            data: Arc::clone(&self.data),
        }
    }
}

/// An immutable snapshot of the cluster: members and their states.
#[derive(Debug)]
pub struct ClusterView<T> {
    members: Vec<Member<T>>,
    generation: u64,
}

impl<T> ClusterView<T> {
    /// All members, in the order they were added.
    #[must_use]
    pub fn members(&self) -> &[Member<T>] {
        &self.members
    }

    /// Increases by one with every published view.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The member with this id.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Member<T>> {
        self.members.iter().find(|m| m.backend.id == id)
    }

    /// The member for a new session keyed by `key`: the first in rendezvous
    /// order among those that accept new sessions at `now` (up, not draining,
    /// not overloaded). Allocates nothing.
    #[must_use]
    pub fn pick_new(&self, key: &[u8], now: Instant) -> Option<&Member<T>> {
        first_by(
            key,
            &self.members,
            |m| &m.backend,
            |m| m.state.accepts_new(now),
        )
    }

    /// The member for a request that continues a transaction begun
    /// without a token (a CANCEL, the ACK of a non-2xx): the first in
    /// rendezvous order of `key` that accepts new sessions or is draining,
    /// so a container drained while an INVITE rings still gets its CANCEL.
    #[must_use]
    pub fn pick_continuing(&self, key: &[u8], now: Instant) -> Option<&Member<T>> {
        first_by(
            key,
            &self.members,
            |m| &m.backend,
            |m| m.state.accepts_new(now) || m.state == crate::State::Draining,
        )
    }

    /// The member for traffic of an existing session owned by `node`, whose
    /// token is `token`: `node` itself when it takes its sessions' traffic
    /// (up, draining or overloaded), else the first member in rendezvous
    /// order of the token that accepts new sessions (else, failing that, the
    /// first that is not down). The flag is true when this is a failover.
    #[must_use]
    pub fn pick_owned(&self, node: &str, token: &[u8], now: Instant) -> Option<(&Member<T>, bool)> {
        if let Some(m) = self.get(node)
            && m.state.accepts_existing()
        {
            return Some((m, false));
        }
        let m = first_by(
            token,
            &self.members,
            |m| &m.backend,
            |m| m.state.accepts_new(now),
        )
        .or_else(|| {
            first_by(
                token,
                &self.members,
                |m| &m.backend,
                |m| m.state.accepts_existing(),
            )
        })?;
        Some((m, true))
    }

    /// All members in rendezvous order of `key`, whatever their state.
    #[must_use]
    pub fn order(&self, key: &[u8]) -> Vec<&Member<T>> {
        ranked(key, &self.members, |m| &m.backend)
            .into_iter()
            .filter_map(|i| self.members.get(i))
            .collect()
    }
}

struct Entry<T> {
    backend: Backend,
    tracker: HealthTracker,
    data: Arc<T>,
}

struct Inner<T> {
    entries: Vec<Entry<T>>,
    generation: u64,
}

/// The membership of a cluster and its published view.
pub struct Cluster<T> {
    policy: HealthPolicy,
    inner: Mutex<Inner<T>>,
    view: ArcSwap<ClusterView<T>>,
}

impl<T> std::fmt::Debug for Cluster<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("policy", &self.policy)
            .field("members", &self.view.load().members.len())
            .finish()
    }
}

impl<T> Cluster<T> {
    /// An empty cluster whose backends follow `policy`.
    #[must_use]
    pub fn new(policy: HealthPolicy) -> Cluster<T> {
        Cluster {
            policy,
            inner: Mutex::new(Inner {
                entries: Vec::new(),
                generation: 0,
            }),
            view: ArcSwap::from_pointee(ClusterView {
                members: Vec::new(),
                generation: 0,
            }),
        }
    }

    /// The current view; never blocks.
    #[must_use]
    pub fn view(&self) -> Arc<ClusterView<T>> {
        self.view.load_full()
    }

    /// The health policy.
    #[must_use]
    pub fn policy(&self) -> HealthPolicy {
        self.policy
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A writer that panicked left consistent data (every mutation is a
        // single assignment); keep going rather than poison the router.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish(&self, inner: &mut Inner<T>, now: Instant) {
        inner.generation = inner.generation.wrapping_add(1);
        let members = inner
            .entries
            .iter()
            .map(|e| Member {
                backend: e.backend.clone(),
                state: e.tracker.state(now),
                data: Arc::clone(&e.data),
            })
            .collect();
        self.view.store(Arc::new(ClusterView {
            members,
            generation: inner.generation,
        }));
    }

    /// Adds a backend (state per the policy's `start_up`).
    pub fn add(&self, backend: Backend, data: T) -> Result<(), MembershipError> {
        let mut inner = self.lock();
        if inner.entries.iter().any(|e| e.backend.id == backend.id) {
            return Err(MembershipError::Duplicate(backend.id));
        }
        inner.entries.push(Entry {
            backend,
            tracker: HealthTracker::new(self.policy),
            data: Arc::new(data),
        });
        self.publish(&mut inner, Instant::now());
        Ok(())
    }

    /// Removes a backend; its sessions fail over by rendezvous.
    pub fn remove(&self, id: &str) -> Result<(), MembershipError> {
        let mut inner = self.lock();
        let before = inner.entries.len();
        inner.entries.retain(|e| e.backend.id != id);
        if inner.entries.len() == before {
            return Err(MembershipError::Unknown(id.to_owned()));
        }
        self.publish(&mut inner, Instant::now());
        Ok(())
    }

    /// Sets or clears draining: no new sessions, existing ones stay.
    pub fn set_draining(&self, id: &str, draining: bool) -> Result<(), MembershipError> {
        let mut inner = self.lock();
        let entry = inner
            .entries
            .iter_mut()
            .find(|e| e.backend.id == id)
            .ok_or_else(|| MembershipError::Unknown(id.to_owned()))?;
        if entry.tracker.set_draining(draining) {
            self.publish(&mut inner, Instant::now());
        }
        Ok(())
    }

    /// Feeds a health signal for backend `id` at `now`; returns the new state
    /// when it changed (a new view was published), `None` when it did not
    /// or the backend is unknown.
    pub fn record(&self, id: &str, signal: Signal, now: Instant) -> Option<State> {
        let mut inner = self.lock();
        let entry = inner.entries.iter_mut().find(|e| e.backend.id == id)?;
        if !entry.tracker.record(signal, now) {
            return None;
        }
        let state = entry.tracker.state(now);
        self.publish(&mut inner, now);
        Some(state)
    }

    /// Replaces the membership with `backends` (a config reload): members
    /// that stay keep their health and draining state (weight and data are
    /// updated), new ones start per the policy, missing ones are removed.
    /// Duplicate ids in `backends` keep the first.
    pub fn replace(&self, backends: Vec<(Backend, T)>) {
        let mut inner = self.lock();
        let mut old = std::mem::take(&mut inner.entries);
        for (backend, data) in backends {
            if inner.entries.iter().any(|e| e.backend.id == backend.id) {
                continue;
            }
            let tracker = match old.iter().position(|e| e.backend.id == backend.id) {
                Some(i) => old.swap_remove(i).tracker,
                None => HealthTracker::new(self.policy),
            };
            inner.entries.push(Entry {
                backend,
                tracker,
                data: Arc::new(data),
            });
        }
        self.publish(&mut inner, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn cluster(n: usize) -> Cluster<u32> {
        let c = Cluster::new(HealthPolicy {
            rise: 1,
            fall: 1,
            start_up: true,
        });
        for i in 1..=n {
            c.add(Backend::new(format!("c{i}"), 1), i as u32).unwrap();
        }
        c
    }

    #[test]
    fn views_are_snapshots() {
        let c = cluster(2);
        let v1 = c.view();
        c.add(Backend::new("c3", 1), 3).unwrap();
        assert_eq!(v1.members().len(), 2);
        assert_eq!(c.view().members().len(), 3);
        assert!(c.view().generation() > v1.generation());
        assert_eq!(*c.view().get("c3").unwrap().data, 3);
        assert_eq!(
            c.add(Backend::new("c3", 1), 9),
            Err(MembershipError::Duplicate("c3".into()))
        );
    }

    #[test]
    fn new_sessions_avoid_draining_overloaded_and_down() {
        let c = cluster(3);
        let now = Instant::now();
        c.set_draining("c1", true).unwrap();
        c.record("c2", Signal::ProbeFailed, now).unwrap();
        c.record(
            "c3",
            Signal::Overloaded {
                retry_after: Duration::from_secs(10),
            },
            now,
        )
        .unwrap();
        let v = c.view();
        assert!(v.pick_new(b"k", now).is_none());
        // After the overload ends, c3 takes new sessions again (same view).
        let later = now + Duration::from_secs(11);
        assert_eq!(v.pick_new(b"k", later).unwrap().backend.id, "c3");
        // Draining and overloaded keep their own sessions; down fails over.
        assert_eq!(v.pick_owned("c1", b"c1.x", now).unwrap().0.backend.id, "c1");
        assert_eq!(v.pick_owned("c3", b"c3.x", now).unwrap().0.backend.id, "c3");
        let (m, failover) = v.pick_owned("c2", b"c2.x", later).unwrap();
        assert!(failover);
        assert_eq!(m.backend.id, "c3");
        assert!(c.set_draining("nope", true).is_err());
    }

    #[test]
    fn continuing_requests_still_reach_a_draining_member() {
        let c = cluster(3);
        let now = Instant::now();
        // Keys whose first choice is c1, found before c1 drains.
        let keys: Vec<String> = (0..200)
            .map(|i| format!("call-{i}"))
            .filter(|k| {
                c.view()
                    .pick_new(k.as_bytes(), now)
                    .map(|m| m.backend.id.as_str())
                    == Some("c1")
            })
            .collect();
        assert!(!keys.is_empty());
        c.set_draining("c1", true).unwrap();
        let v = c.view();
        for k in &keys {
            assert_ne!(v.pick_new(k.as_bytes(), now).unwrap().backend.id, "c1");
            assert_eq!(
                v.pick_continuing(k.as_bytes(), now).unwrap().backend.id,
                "c1"
            );
        }
        c.record("c1", Signal::ProbeFailed, now);
        let v = c.view();
        assert_ne!(
            v.pick_continuing(keys[0].as_bytes(), now)
                .unwrap()
                .backend
                .id,
            "c1",
            "not when down"
        );
    }

    #[test]
    fn dead_node_sessions_spread_over_all_survivors() {
        let c = cluster(4);
        let now = Instant::now();
        c.record("c2", Signal::TransportError, now).unwrap();
        let v = c.view();
        let mut landed: HashMap<String, u32> = HashMap::new();
        for i in 0..2000u32 {
            let token = format!("c2.{i:016x}");
            let (m, failover) = v.pick_owned("c2", token.as_bytes(), now).unwrap();
            assert!(failover);
            // Same as the first up member in rendezvous order of the token.
            let first = v
                .order(token.as_bytes())
                .into_iter()
                .find(|m| m.state == State::Up)
                .unwrap();
            assert_eq!(first.backend.id, m.backend.id);
            *landed.entry(m.backend.id.clone()).or_default() += 1;
        }
        assert_eq!(landed.len(), 3, "{landed:?}");
        assert!(landed.values().all(|&n| n > 400), "{landed:?}");
    }

    #[test]
    fn replace_keeps_state_of_members_that_stay() {
        let c = cluster(3);
        let now = Instant::now();
        c.set_draining("c1", true).unwrap();
        c.record("c2", Signal::ProbeFailed, now).unwrap();
        c.replace(vec![
            (Backend::new("c1", 5), 10),
            (Backend::new("c2", 1), 20),
            (Backend::new("c4", 1), 40),
        ]);
        let v = c.view();
        let ids: Vec<_> = v.members().iter().map(|m| m.backend.id.as_str()).collect();
        assert_eq!(ids, ["c1", "c2", "c4"]);
        assert_eq!(v.get("c1").unwrap().state, State::Draining);
        assert_eq!(v.get("c1").unwrap().backend.weight, 5);
        assert_eq!(*v.get("c1").unwrap().data, 10);
        assert_eq!(v.get("c2").unwrap().state, State::Down);
        assert_eq!(v.get("c4").unwrap().state, State::Up);
        c.remove("c4").unwrap();
        assert!(c.remove("c4").is_err());
    }

    #[test]
    fn readers_run_while_writers_swap() {
        let c = Arc::new(cluster(3));
        let reader = {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                let mut picked = 0u32;
                for i in 0..20_000u32 {
                    if c.view()
                        .pick_new(&i.to_le_bytes(), Instant::now())
                        .is_some()
                    {
                        picked += 1;
                    }
                }
                picked
            })
        };
        for i in 0..200 {
            c.set_draining("c1", i % 2 == 0).unwrap();
        }
        // c2 and c3 stay up, so every pick succeeds.
        assert_eq!(reader.join().unwrap(), 20_000);
    }
}
