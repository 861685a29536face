//! Weighted rendezvous hashing (highest random weight) with xxh3.
//!
//! For a key, every backend gets a score from a hash of the key seeded with a
//! hash of the backend id, scaled by the weight with the logarithmic method
//! (`score = weight / -ln(u)`, `u` the hash mapped into `(0, 1]`), so a
//! backend's share of keys is proportional to its weight. The preference
//! order is the order of decreasing score. xxh3 is fixed and seedless across
//! processes (never `RandomState`), so the order is the same on every edge.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// One backend: an id (unique in a cluster) and a weight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backend {
    /// The backend's id (a container's node id).
    pub id: String,
    /// Relative weight; 0 means "never chosen by rendezvous" (still reachable
    /// by explicit id).
    pub weight: u32,
}

impl Backend {
    /// A backend with an id and a weight.
    #[must_use]
    pub fn new(id: impl Into<String>, weight: u32) -> Backend {
        Backend {
            id: id.into(),
            weight,
        }
    }
}

/// The score of `backend` for `key`; higher is preferred.
#[must_use]
pub fn rendezvous_score(key: &[u8], backend: &Backend) -> f64 {
    if backend.weight == 0 {
        return 0.0;
    }
    let seed = xxh3_64(backend.id.as_bytes());
    let hash = xxh3_64_with_seed(key, seed);
    // u in (0, 1]: (hash + 1) / 2^64, computed on the top 53 bits so the
    // conversion to f64 is exact.
    let u = ((hash >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let neg_ln = -u.ln();
    if neg_ln <= 0.0 {
        return f64::INFINITY;
    }
    f64::from(backend.weight) / neg_ln
}

/// Indices of `items` in rendezvous preference order for `key`; `backend`
/// reads the [`Backend`] of an item. Ties (equal score) break by id, so the
/// order is total and the same everywhere.
pub(crate) fn ranked<T>(key: &[u8], items: &[T], backend: impl Fn(&T) -> &Backend) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (rendezvous_score(key, backend(item)), i))
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0).then_with(|| {
            let ia = items.get(a.1).map(|x| backend(x).id.as_str());
            let ib = items.get(b.1).map(|x| backend(x).id.as_str());
            ia.cmp(&ib)
        })
    });
    scored.into_iter().map(|(_, i)| i).collect()
}

/// The highest-scoring item among those `accept` admits, without allocating.
pub(crate) fn first_by<'a, T>(
    key: &[u8],
    items: &'a [T],
    backend: impl Fn(&T) -> &Backend,
    mut accept: impl FnMut(&T) -> bool,
) -> Option<&'a T> {
    let mut best: Option<(f64, &'a T)> = None;
    for item in items {
        if !accept(item) {
            continue;
        }
        let b = backend(item);
        let score = rendezvous_score(key, b);
        let better = match best {
            None => true,
            Some((s, cur)) => score > s || (score == s && b.id < backend(cur).id),
        };
        if better {
            best = Some((score, item));
        }
    }
    best.map(|(_, item)| item)
}

/// `backends` in rendezvous preference order for `key` (best first).
pub fn rendezvous_order<'a>(
    key: &[u8],
    backends: &'a [Backend],
) -> impl Iterator<Item = &'a Backend> + 'a {
    ranked(key, backends, |b| b)
        .into_iter()
        .filter_map(move |i| backends.get(i))
}

/// The preferred backend for `key` among those `accept` admits; allocates
/// nothing (one pass over the backends).
pub fn rendezvous_first<'a>(
    key: &[u8],
    backends: &'a [Backend],
    accept: impl FnMut(&Backend) -> bool,
) -> Option<&'a Backend> {
    first_by(key, backends, |b| b, accept)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn backends(n: usize) -> Vec<Backend> {
        (1..=n).map(|i| Backend::new(format!("c{i}"), 1)).collect()
    }

    fn owner(key: &[u8], bs: &[Backend]) -> String {
        rendezvous_order(key, bs).next().unwrap().id.clone()
    }

    #[test]
    fn order_is_a_permutation_and_first_matches() {
        let bs = backends(5);
        for k in 0..200u32 {
            let key = k.to_be_bytes();
            let order: Vec<_> = rendezvous_order(&key, &bs).map(|b| b.id.clone()).collect();
            assert_eq!(order.len(), 5);
            let mut sorted = order.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 5);
            assert_eq!(rendezvous_first(&key, &bs, |_| true).unwrap().id, order[0]);
            // Skipping the first gives the second.
            let skip = order[0].clone();
            assert_eq!(
                rendezvous_first(&key, &bs, |b| b.id != skip).unwrap().id,
                order[1]
            );
        }
    }

    #[test]
    fn stable_known_values() {
        // Pinned: the order must never change between builds or machines
        // (edges and sprayers on different hosts must agree).
        let bs = backends(3);
        let order = |k: &str| -> Vec<String> {
            rendezvous_order(k.as_bytes(), &bs)
                .map(|b| b.id.clone())
                .collect()
        };
        assert_eq!(order("a"), ["c2", "c1", "c3"]);
        assert_eq!(order("b"), ["c2", "c3", "c1"]);
        assert_eq!(order("call-1@host"), ["c1", "c3", "c2"]);
        assert_eq!(order("c2.5f3a9b0c11d2e4f7"), ["c2", "c1", "c3"]);
    }

    #[test]
    fn zero_weight_is_never_preferred() {
        let bs = vec![Backend::new("c1", 0), Backend::new("c2", 1)];
        for k in 0..100u32 {
            assert_eq!(owner(&k.to_be_bytes(), &bs), "c2");
        }
    }

    #[test]
    fn weights_are_respected() {
        let bs = vec![
            Backend::new("c1", 1),
            Backend::new("c2", 2),
            Backend::new("c3", 3),
        ];
        let mut counts: HashMap<String, u32> = HashMap::new();
        let n = 60_000u32;
        for k in 0..n {
            *counts.entry(owner(&k.to_le_bytes(), &bs)).or_default() += 1;
        }
        for (id, w) in [("c1", 1.0), ("c2", 2.0), ("c3", 3.0)] {
            let share = f64::from(counts[id]) / f64::from(n);
            let want = w / 6.0;
            assert!(
                (share - want).abs() < 0.02,
                "{id}: share {share}, want {want}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Removing one backend moves only the keys it held, and they spread
        /// over all survivors.
        #[test]
        fn removal_moves_only_the_removed_keys(n in 3usize..8, removed in 0usize..8, salt in any::<u64>()) {
            let removed = removed % n;
            let bs = backends(n);
            let mut survivors = bs.clone();
            let gone = survivors.remove(removed);
            let mut moved_to: HashMap<String, u32> = HashMap::new();
            for k in 0..3000u64 {
                let key = (k ^ salt).to_le_bytes();
                let before = owner(&key, &bs);
                let after = owner(&key, &survivors);
                if before == gone.id {
                    *moved_to.entry(after).or_default() += 1;
                } else {
                    prop_assert_eq!(before, after);
                }
            }
            // Every survivor took a share of the moved keys.
            prop_assert_eq!(moved_to.len(), n - 1, "moved keys landed on {:?}", moved_to);
            let total: u32 = moved_to.values().sum();
            let fair = f64::from(total) / (n - 1) as f64;
            for (id, c) in &moved_to {
                prop_assert!(f64::from(*c) > fair * 0.5, "{} got {} of {}", id, c, total);
            }
        }

        /// Adding a backend only takes keys onto the new one.
        #[test]
        fn addition_moves_keys_only_to_the_new_backend(n in 2usize..7, salt in any::<u64>()) {
            let bs = backends(n);
            let mut more = bs.clone();
            more.push(Backend::new("new", 1));
            for k in 0..1000u64 {
                let key = (k ^ salt).to_le_bytes();
                let before = owner(&key, &bs);
                let after = owner(&key, &more);
                prop_assert!(after == before || after == "new");
            }
        }
    }
}
