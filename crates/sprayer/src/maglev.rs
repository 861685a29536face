//! Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4).
//!
//! Each backend, known by its name, gets a permutation of the table slots
//! from two hashes of its name (`offset`, `skip`); backends take turns
//! claiming their next free preferred slot until the table is full. A lookup
//! is one table read at `hash % size`. The table size is prime so every
//! `skip` visits every slot.
//!
//! Properties: each backend owns `size / n` slots give or take one; when a
//! backend leaves, its slots go to the others and only a small number of
//! other slots change owner (Maglev's disruption is near-minimal, not zero;
//! [`crate::Sprayer`] makes health changes strictly minimal by keeping a table
//! over all configured edges and consulting a second table over the healthy
//! ones only for the slots of a dead edge).
//!
//! Names are hashed with xxh3 and fixed seeds, so two sprayers with the same
//! edge names build identical tables.

use std::net::{IpAddr, SocketAddr};

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The default table size: a prime, 65537 (`2^16 + 1`), so up to a few
/// hundred edges each own hundreds of slots (balance within about 1%).
pub const TABLE_SIZE: usize = 65537;

const SEED_OFFSET: u64 = 0x5350_5241_5945_5231; // "SPRAYER1"
const SEED_SKIP: u64 = 0x5350_5241_5945_5232; // "SPRAYER2"
const SEED_FLOW: u64 = 0x5350_5241_5945_5233; // "SPRAYER3"

/// A Maglev lookup table over a list of backends.
#[derive(Debug, Clone)]
pub struct Maglev {
    /// Slot -> index into the backend list the table was built from.
    table: Vec<u32>,
}

impl Maglev {
    /// Builds the table of [`TABLE_SIZE`] slots for these backend names; the
    /// lookup returns indexes into `names`. An empty list gives a table whose
    /// lookups return `None`.
    #[must_use]
    pub fn new<S: AsRef<str>>(names: &[S]) -> Maglev {
        Maglev::with_prime_size(names, TABLE_SIZE)
    }

    /// Builds a table of `size` slots; `size` must be prime (a composite
    /// size is replaced by [`TABLE_SIZE`]). Small primes make tests fast.
    #[must_use]
    pub fn with_prime_size<S: AsRef<str>>(names: &[S], size: usize) -> Maglev {
        let size = if is_prime(size) { size } else { TABLE_SIZE };
        if names.is_empty() {
            return Maglev { table: Vec::new() };
        }
        let m = size as u64;
        let perms: Vec<(u64, u64)> = names
            .iter()
            .map(|n| {
                let n = n.as_ref().as_bytes();
                let offset = xxh3_64_with_seed(n, SEED_OFFSET) % m;
                let skip = xxh3_64_with_seed(n, SEED_SKIP) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; names.len()];
        let mut table = vec![u32::MAX; size];
        let mut filled = 0usize;
        'fill: loop {
            for ((i, &(offset, skip)), nx) in perms.iter().enumerate().zip(next.iter_mut()) {
                // A permutation of a prime-size table visits every slot once,
                // and a free slot exists while `filled < size`: at most `m`
                // steps (the bound is a guard, not a path).
                while *nx < m {
                    let c = ((offset + *nx * skip) % m) as usize;
                    *nx += 1;
                    if let Some(slot) = table.get_mut(c)
                        && *slot == u32::MAX
                    {
                        *slot = u32::try_from(i).unwrap_or(u32::MAX - 1);
                        filled += 1;
                        break;
                    }
                }
                if filled >= size {
                    break 'fill;
                }
            }
            if next.iter().all(|&nx| nx >= m) {
                break;
            }
        }
        Maglev { table }
    }

    /// The index of the backend owning `hash`, `None` for an empty table.
    #[inline]
    #[must_use]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let len = self.table.len() as u64;
        if len == 0 {
            return None;
        }
        self.table
            .get((hash % len) as usize)
            .map(|&b| b as usize)
            .filter(|&b| b != u32::MAX as usize)
    }

    /// Number of slots (0 for an empty table).
    #[must_use]
    pub fn size(&self) -> usize {
        self.table.len()
    }

    /// How many slots each backend owns (index = backend index), for
    /// balance checks and metrics.
    #[must_use]
    pub fn slot_counts(&self, backends: usize) -> Vec<usize> {
        let mut counts = vec![0usize; backends];
        for &b in &self.table {
            if let Some(c) = counts.get_mut(b as usize) {
                *c += 1;
            }
        }
        counts
    }
}

/// The flow key's hash: the client's IP (IPv4 as IPv4-mapped IPv6) and port,
/// hashed with xxh3 and a fixed seed (stable across processes and hosts).
#[inline]
#[must_use]
pub fn flow_hash(addr: &SocketAddr) -> u64 {
    let ip = match addr.ip() {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
    .octets();
    let port = addr.port().to_be_bytes();
    let mut buf = [0u8; 18];
    for (d, s) in buf.iter_mut().zip(ip.iter().chain(port.iter())) {
        *d = *s;
    }
    xxh3_64_with_seed(&buf, SEED_FLOW)
}

fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2usize;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("e{i}")).collect()
    }

    #[test]
    fn empty_table_looks_up_nothing() {
        let m = Maglev::new::<&str>(&[]);
        assert_eq!(m.lookup(42), None);
        assert_eq!(m.size(), 0);
    }

    #[test]
    fn table_is_full_and_balanced() {
        for n in [1usize, 2, 3, 5, 8, 13] {
            let m = Maglev::new(&names(n));
            let counts = m.slot_counts(n);
            assert_eq!(counts.iter().sum::<usize>(), TABLE_SIZE);
            let ideal = TABLE_SIZE / n;
            for c in counts {
                assert!(c.abs_diff(ideal) <= 1, "n={n}: {c} vs {ideal}");
            }
        }
    }

    #[test]
    fn composite_size_falls_back_to_prime() {
        assert_eq!(Maglev::with_prime_size(&names(2), 1000).size(), TABLE_SIZE);
        assert_eq!(Maglev::with_prime_size(&names(2), 251).size(), 251);
    }

    #[test]
    fn same_names_same_table() {
        let a = Maglev::new(&names(4));
        let b = Maglev::new(&names(4));
        assert_eq!(a.table, b.table);
    }

    #[test]
    fn flow_hash_depends_on_ip_and_port() {
        let a: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:5061".parse().unwrap();
        let c: SocketAddr = "10.0.0.2:5060".parse().unwrap();
        assert_ne!(flow_hash(&a), flow_hash(&b));
        assert_ne!(flow_hash(&a), flow_hash(&c));
        assert_eq!(flow_hash(&a), flow_hash(&"10.0.0.1:5060".parse().unwrap()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Removing one of N backends moves the removed backend's keys (about
        /// 1/N of all) and only a small fraction of the others: Maglev's
        /// near-minimal disruption.
        #[test]
        fn removing_one_backend_moves_about_one_nth(n in 3usize..12, gone_seed in any::<usize>(), key_seed in any::<u64>()) {
            let all = names(n);
            let gone = gone_seed % n;
            let rest: Vec<String> = all.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, s)| s.clone()).collect();
            let before = Maglev::new(&all);
            let after = Maglev::new(&rest);
            let keys = 20_000u64;
            let (mut moved, mut moved_others) = (0u64, 0u64);
            for k in 0..keys {
                let h = xxh3_64_with_seed(&k.to_le_bytes(), key_seed);
                let b = &all[before.lookup(h).unwrap()];
                let a = &rest[after.lookup(h).unwrap()];
                if a != b {
                    moved += 1;
                    if *b != all[gone] {
                        moved_others += 1;
                    }
                }
            }
            let share = moved as f64 / keys as f64;
            let ideal = 1.0 / n as f64;
            prop_assert!(share > ideal * 0.8 && share < ideal * 1.3, "moved {share} ideal {ideal}");
            // Keys of surviving backends that moved: a few percent at most.
            prop_assert!((moved_others as f64) < keys as f64 * 0.03, "others moved: {moved_others}");
        }
    }
}
