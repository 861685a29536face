//! The UDP flow table: client address -> flow, bounded, with idle expiry.
//!
//! Sans-IO: time comes in as milliseconds since the sprayer started, and a
//! flow says when it last carried a datagram ([`Activity`]), so the table is
//! tested without sockets or clocks. It is soft state: losing an entry only
//! loses the mapping (the next datagram makes a new flow by the same hash).
//!
//! Eviction when full is "second chance" (CLOCK): flows are queued in
//! creation order; the oldest is evicted unless it carried traffic since it
//! was queued, in which case it goes to the back of the queue. Amortised
//! O(1) per insert; an idle flow goes before a busy one.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// What the table needs to know of a flow.
pub(crate) trait Activity {
    /// Milliseconds (sprayer clock) of the last datagram either way.
    fn last_active(&self) -> u64;
}

struct Slot<V> {
    id: u64,
    value: V,
}

/// A bounded map from client address to flow.
pub(crate) struct FlowTable<V> {
    map: HashMap<SocketAddr, Slot<V>>,
    /// (client, flow id, when queued): creation order for eviction; entries
    /// whose id no longer matches the map are stale and skipped.
    order: VecDeque<(SocketAddr, u64, u64)>,
    max: usize,
    next_id: u64,
}

impl<V: Activity> FlowTable<V> {
    /// An empty table holding at most `max` flows (at least 1).
    pub(crate) fn new(max: usize) -> FlowTable<V> {
        FlowTable {
            map: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            next_id: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get(&self, client: &SocketAddr) -> Option<&V> {
        self.map.get(client).map(|s| &s.value)
    }

    pub(crate) fn remove(&mut self, client: &SocketAddr) -> Option<V> {
        self.map.remove(client).map(|s| s.value)
    }

    /// Adds a flow at `now`; returns the flow evicted to make room, if any
    /// (and the replaced flow if `client` already had one).
    pub(crate) fn insert(&mut self, client: SocketAddr, value: V, now: u64) -> Option<V> {
        let mut out = self.remove(&client);
        if self.map.len() >= self.max {
            out = self.evict_one(now).or(out);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.map.insert(client, Slot { id, value });
        self.order.push_back((client, id, now));
        out
    }

    fn evict_one(&mut self, now: u64) -> Option<V> {
        // Two passes at most: the first gives every busy flow its second
        // chance (re-queued at `now`), the second finds one idle since.
        let mut budget = self.order.len().saturating_mul(2).saturating_add(1);
        while budget > 0 {
            budget -= 1;
            let (client, id, queued) = self.order.pop_front()?;
            let Some(slot) = self.map.get(&client) else {
                continue;
            };
            if slot.id != id {
                continue;
            }
            if slot.value.last_active() > queued && queued < now {
                self.order.push_back((client, id, now));
                continue;
            }
            return self.remove(&client);
        }
        None
    }

    /// Removes the flows idle for `idle_ms` or more; returns them.
    pub(crate) fn expire(&mut self, now: u64, idle_ms: u64) -> Vec<V> {
        let gone: Vec<SocketAddr> = self
            .map
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.value.last_active()) >= idle_ms)
            .map(|(k, _)| *k)
            .collect();
        let out: Vec<V> = gone.iter().filter_map(|k| self.remove(k)).collect();
        let map = &self.map;
        self.order
            .retain(|(k, id, _)| map.get(k).is_some_and(|s| s.id == *id));
        out
    }

    /// Drops every flow.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[derive(Clone)]
    struct F(Rc<Cell<u64>>);
    impl Activity for F {
        fn last_active(&self) -> u64 {
            self.0.get()
        }
    }
    fn flow(at: u64) -> F {
        F(Rc::new(Cell::new(at)))
    }
    fn client(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn bounded_evicts_the_oldest() {
        let mut t = FlowTable::new(3);
        for p in 1..=3 {
            assert!(t.insert(client(p), flow(p.into()), p.into()).is_none());
        }
        let evicted = t.insert(client(4), flow(4), 4);
        assert_eq!(evicted.unwrap().last_active(), 1);
        assert_eq!(t.len(), 3);
        assert!(t.get(&client(1)).is_none());
        assert!(t.get(&client(4)).is_some());
    }

    #[test]
    fn a_busy_flow_gets_a_second_chance() {
        let mut t = FlowTable::new(3);
        let first = flow(1);
        t.insert(client(1), first.clone(), 1);
        t.insert(client(2), flow(2), 2);
        t.insert(client(3), flow(3), 3);
        first.0.set(10); // client 1 talked since it was queued
        t.insert(client(4), flow(11), 11);
        assert!(t.get(&client(1)).is_some(), "busy flow kept");
        assert!(t.get(&client(2)).is_none(), "idle flow 2 evicted");
    }

    #[test]
    fn all_busy_still_evicts_one() {
        let mut t = FlowTable::new(2);
        let a = flow(1);
        let b = flow(2);
        t.insert(client(1), a.clone(), 1);
        t.insert(client(2), b.clone(), 2);
        a.0.set(5);
        b.0.set(5);
        assert!(t.insert(client(3), flow(6), 6).is_some());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn idle_flows_expire_busy_ones_stay() {
        let mut t = FlowTable::new(10);
        let busy = flow(0);
        t.insert(client(1), busy.clone(), 0);
        t.insert(client(2), flow(0), 0);
        busy.0.set(90);
        let gone = t.expire(100, 50);
        assert_eq!(gone.len(), 1);
        assert!(t.get(&client(1)).is_some());
        assert!(t.get(&client(2)).is_none());
        assert_eq!(t.order.len(), 1, "stale queue entries dropped");
        assert_eq!(t.expire(140, 50).len(), 1);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn reinsert_replaces_and_leaves_no_duplicate() {
        let mut t = FlowTable::new(2);
        t.insert(client(1), flow(1), 1);
        assert!(t.insert(client(1), flow(2), 2).is_some());
        t.insert(client(2), flow(3), 3);
        // Full: the stale queue entry of the first client-1 flow is skipped.
        let ev = t.insert(client(3), flow(4), 4).unwrap();
        assert_eq!(ev.last_active(), 2);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn many_inserts_stay_bounded() {
        let mut t = FlowTable::new(100);
        for i in 0..10_000u16 {
            t.insert(client(i), flow(i.into()), i.into());
            assert!(t.len() <= 100);
        }
        assert!(t.order.len() <= 200);
    }
}
