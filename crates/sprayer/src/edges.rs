//! The edge set: edges with their health and counters, the prober task of
//! each, and the [`Picker`] that maps a flow hash to an edge.
//!
//! Picking is two Maglev tables. The primary table is built over every
//! configured edge and changes only when the edge set changes; a flow whose
//! primary edge is usable goes there. The fallback table is built over the
//! usable edges and consulted only when the primary edge is down, so when an
//! edge fails exactly its flows move (spread over the survivors by Maglev)
//! and no other flow does; when it comes back its flows return. If no edge is
//! usable the fallback covers all edges (fail open: a broken health endpoint
//! must not black-hole all traffic).
//!
//! The current [`Picker`] sits in an `ArcSwap`: the data path loads it
//! without a lock; health flips and [`EdgeSet::set`] swap in a new one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use crate::config::{EdgeSpec, HealthConfig};
use crate::health::{RiseFall, probe};
use crate::maglev::Maglev;

/// Counters of one edge (monotonic unless named a gauge).
#[derive(Debug, Default)]
pub(crate) struct EdgeStats {
    pub(crate) udp_to_edge_packets: AtomicU64,
    pub(crate) udp_to_edge_bytes: AtomicU64,
    pub(crate) udp_to_client_packets: AtomicU64,
    pub(crate) udp_to_client_bytes: AtomicU64,
    pub(crate) udp_send_errors: AtomicU64,
    pub(crate) tcp_connections: AtomicU64,
    /// Gauge.
    pub(crate) tcp_active: AtomicU64,
    pub(crate) tcp_to_edge_bytes: AtomicU64,
    pub(crate) tcp_to_client_bytes: AtomicU64,
    pub(crate) tcp_connect_failures: AtomicU64,
    pub(crate) probe_failures: AtomicU64,
    pub(crate) transitions: AtomicU64,
}

/// One edge: its address, its health, its counters.
#[derive(Debug)]
pub(crate) struct Edge {
    pub(crate) spec: EdgeSpec,
    up: AtomicBool,
    retired: AtomicBool,
    /// Bumped when the edge is found dead (down and unreachable): its TCP
    /// connections close.
    dead: watch::Sender<u64>,
    pub(crate) stats: EdgeStats,
}

impl Edge {
    fn new(spec: EdgeSpec) -> Edge {
        Edge {
            spec,
            up: AtomicBool::new(true),
            retired: AtomicBool::new(false),
            dead: watch::Sender::new(0),
            stats: EdgeStats::default(),
        }
    }

    /// Passes its health checks and is still in the edge set.
    #[inline]
    pub(crate) fn is_usable(&self) -> bool {
        self.up.load(Ordering::Relaxed) && !self.retired.load(Ordering::Relaxed)
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A receiver that changes when the edge is found dead.
    pub(crate) fn dead_signal(&self) -> watch::Receiver<u64> {
        self.dead.subscribe()
    }
}

/// Maps a flow hash to an edge (see the module doc).
#[derive(Debug)]
pub(crate) struct Picker {
    edges: Vec<Arc<Edge>>,
    primary: Arc<Maglev>,
    fallback: Maglev,
    /// Fallback slot -> index into `edges`.
    members: Vec<usize>,
}

impl Picker {
    fn build(edges: Vec<Arc<Edge>>, primary: Arc<Maglev>) -> Picker {
        let mut members: Vec<usize> = (0..edges.len())
            .filter(|&i| edges.get(i).is_some_and(|e| e.is_usable()))
            .collect();
        if members.is_empty() {
            members = (0..edges.len()).collect();
        }
        let names: Vec<&str> = members
            .iter()
            .filter_map(|&i| edges.get(i).map(|e| e.spec.name.as_str()))
            .collect();
        let fallback = Maglev::new(&names);
        Picker {
            edges,
            primary,
            fallback,
            members,
        }
    }

    /// The edge for a flow hash: the primary table's if usable, else the
    /// fallback table's. `None` only with no edge at all.
    #[inline]
    pub(crate) fn pick(&self, hash: u64) -> Option<&Arc<Edge>> {
        let e = self.edges.get(self.primary.lookup(hash)?)?;
        if e.is_usable() {
            return Some(e);
        }
        let i = self.members.get(self.fallback.lookup(hash)?)?;
        self.edges.get(*i)
    }

    /// Edges to try in order for a new connection: the picked one, then the
    /// other usable edges (from a position given by the hash), then, when no
    /// edge is usable, all others.
    pub(crate) fn candidates(&self, hash: u64) -> Vec<Arc<Edge>> {
        let mut out: Vec<Arc<Edge>> = self.pick(hash).into_iter().cloned().collect();
        let n = self.edges.len();
        if n == 0 {
            return out;
        }
        let start = (hash % n as u64) as usize;
        let any_usable = self.edges.iter().any(|e| e.is_usable());
        for k in 0..n {
            if let Some(e) = self.edges.get((start + k) % n)
                && (e.is_usable() || !any_usable)
                && !out.iter().any(|o| Arc::ptr_eq(o, e))
            {
                out.push(Arc::clone(e));
            }
        }
        out
    }
}

struct Registry {
    edges: Vec<Arc<Edge>>,
    probers: Vec<AbortHandle>,
    primary: Arc<Maglev>,
}

/// The edge set and its prober tasks.
pub(crate) struct EdgeSet {
    picker: ArcSwap<Picker>,
    registry: Mutex<Registry>,
    health: HealthConfig,
    changes: watch::Sender<u64>,
    runtime: tokio::runtime::Handle,
}

impl EdgeSet {
    pub(crate) fn new(health: HealthConfig, runtime: tokio::runtime::Handle) -> Arc<EdgeSet> {
        let primary = Arc::new(Maglev::new::<&str>(&[]));
        Arc::new(EdgeSet {
            picker: ArcSwap::from_pointee(Picker::build(Vec::new(), Arc::clone(&primary))),
            registry: Mutex::new(Registry {
                edges: Vec::new(),
                probers: Vec::new(),
                primary,
            }),
            health,
            changes: watch::Sender::new(0),
            runtime,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current picker (lock-free).
    #[inline]
    pub(crate) fn picker(&self) -> arc_swap::Guard<Arc<Picker>> {
        self.picker.load()
    }

    /// The edges in the set now.
    pub(crate) fn snapshot(&self) -> Vec<Arc<Edge>> {
        self.lock().edges.clone()
    }

    /// Bumped on every health flip and edge-set change.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Replaces the edge set. Edges whose name and addresses are unchanged
    /// keep their health and counters; new ones start up and get a prober;
    /// removed ones stop being picked (their UDP flows move on their next
    /// datagram; their TCP connections are left to finish).
    pub(crate) fn set(self: &Arc<Self>, specs: Vec<EdgeSpec>) {
        let mut reg = self.lock();
        let old_edges = std::mem::take(&mut reg.edges);
        let old_probers = std::mem::take(&mut reg.probers);
        let mut old: Vec<(Arc<Edge>, AbortHandle)> =
            old_edges.into_iter().zip(old_probers).collect();
        let mut edges: Vec<Arc<Edge>> = Vec::with_capacity(specs.len());
        let mut probers = Vec::with_capacity(specs.len());
        for spec in specs {
            if edges.iter().any(|e| e.spec.name == spec.name) {
                warn!(edge = %spec.name, "duplicate edge name ignored");
                continue;
            }
            if let Some(pos) = old.iter().position(|(e, _)| e.spec == spec) {
                let (e, p) = old.swap_remove(pos);
                edges.push(e);
                probers.push(p);
                continue;
            }
            info!(edge = %spec.name, sip = %spec.sip, http = %spec.http, "edge added");
            let edge = Arc::new(Edge::new(spec));
            let task = self.runtime.spawn(run_prober(
                Arc::downgrade(self),
                Arc::clone(&edge),
                self.health,
            ));
            edges.push(edge);
            probers.push(task.abort_handle());
        }
        for (e, p) in old {
            info!(edge = %e.spec.name, "edge removed");
            e.retired.store(true, Ordering::Relaxed);
            p.abort();
        }
        let names: Vec<&str> = edges.iter().map(|e| e.spec.name.as_str()).collect();
        reg.primary = Arc::new(Maglev::new(&names));
        reg.edges = edges;
        reg.probers = probers;
        self.publish(&reg);
    }

    /// Rebuilds the fallback table from the edges' health now.
    fn rebuild(&self) {
        let reg = self.lock();
        self.publish(&reg);
    }

    fn publish(&self, reg: &Registry) {
        let picker = Picker::build(reg.edges.clone(), Arc::clone(&reg.primary));
        self.picker.store(Arc::new(picker));
        self.changes.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Stops every prober.
    pub(crate) fn stop(&self) {
        let reg = self.lock();
        for p in &reg.probers {
            p.abort();
        }
    }
}

/// Probes one edge every interval until it is removed.
async fn run_prober(set: Weak<EdgeSet>, edge: Arc<Edge>, health: HealthConfig) {
    let mut tick = tokio::time::interval(health.interval.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut counter = RiseFall::new(health.rise, health.fall);
    let mut dead_signalled = false;
    let name = edge.spec.name.as_str();
    loop {
        tick.tick().await;
        if edge.retired.load(Ordering::Relaxed) {
            return;
        }
        let result = probe(edge.spec.http, health.timeout).await;
        if let Err(why) = &result {
            edge.stats.probe_failures.fetch_add(1, Ordering::Relaxed);
            debug!(edge = name, %why, "health check failed");
        }
        if let Some(up) = counter.record(result.is_ok()) {
            edge.up.store(up, Ordering::Relaxed);
            edge.stats.transitions.fetch_add(1, Ordering::Relaxed);
            match &result {
                Ok(()) => info!(
                    edge = name,
                    passes = health.rise,
                    "edge is up: passed its health checks"
                ),
                Err(why) => info!(
                    edge = name,
                    failures = health.fall,
                    last = %why,
                    "edge is down: failed its health checks"
                ),
            }
            if up {
                dead_signalled = false;
            }
            let Some(set) = set.upgrade() else { return };
            set.rebuild();
        }
        if !counter.is_up()
            && !dead_signalled
            && result.as_ref().err().is_some_and(|f| f.is_unreachable())
        {
            dead_signalled = true;
            info!(edge = name, "edge unreachable: closing its TCP connections");
            edge.dead.send_modify(|g| *g = g.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use xxhash_rust::xxh3::xxh3_64;

    fn edges(n: usize) -> Vec<Arc<Edge>> {
        (0..n)
            .map(|i| {
                Arc::new(Edge::new(EdgeSpec {
                    name: format!("e{i}"),
                    sip: ([127, 0, 0, 1], 5000 + i as u16).into(),
                    http: ([127, 0, 0, 1], 6000 + i as u16).into(),
                }))
            })
            .collect()
    }

    fn picker(es: &[Arc<Edge>]) -> Picker {
        let names: Vec<&str> = es.iter().map(|e| e.spec.name.as_str()).collect();
        Picker::build(es.to_vec(), Arc::new(Maglev::new(&names)))
    }

    /// When one of N edges fails, exactly its keys move (about 1/N), spread
    /// over all survivors; when it returns they come back.
    #[test]
    fn a_failed_edge_moves_only_its_flows() {
        for n in [2usize, 3, 5, 8] {
            let es = edges(n);
            let before = picker(&es);
            let keys: Vec<u64> = (0..30_000u64).map(|k| xxh3_64(&k.to_le_bytes())).collect();
            let owner: Vec<String> = keys
                .iter()
                .map(|&h| before.pick(h).unwrap().spec.name.clone())
                .collect();
            es[1].up.store(false, Ordering::Relaxed);
            let after = picker(&es);
            let mut moved = 0usize;
            let mut landed = std::collections::HashMap::new();
            for (h, was) in keys.iter().zip(&owner) {
                let now = &after.pick(*h).unwrap().spec.name;
                if now != was {
                    assert_eq!(was, "e1", "a flow of a healthy edge moved");
                    moved += 1;
                    *landed.entry(now.clone()).or_insert(0usize) += 1;
                } else {
                    assert_ne!(now, "e1", "a flow stayed on the dead edge");
                }
            }
            let share = moved as f64 / keys.len() as f64;
            assert!(
                (share - 1.0 / n as f64).abs() < 0.3 / n as f64,
                "n={n}: {share}"
            );
            assert_eq!(landed.len(), n - 1, "spread over all survivors");
            es[1].up.store(true, Ordering::Relaxed);
            let back = picker(&es);
            for (h, was) in keys.iter().zip(&owner) {
                assert_eq!(&back.pick(*h).unwrap().spec.name, was);
            }
        }
    }

    #[test]
    fn all_down_fails_open() {
        let es = edges(3);
        for e in &es {
            e.up.store(false, Ordering::Relaxed);
        }
        let p = picker(&es);
        assert!(p.pick(7).is_some());
        assert_eq!(p.candidates(7).len(), 3);
    }

    #[test]
    fn candidates_start_with_the_pick_and_skip_down_edges() {
        let es = edges(4);
        es[2].up.store(false, Ordering::Relaxed);
        let p = picker(&es);
        for h in 0..200u64 {
            let c = p.candidates(h);
            assert_eq!(c.len(), 3);
            assert!(Arc::ptr_eq(&c[0], p.pick(h).unwrap()));
            assert!(c.iter().all(|e| e.spec.name != "e2"));
        }
        assert!(picker(&[]).candidates(1).is_empty());
    }
}
