//! Small shared types: configuration, identifiers and the seeded generator
//! that makes them.

use std::fmt;
use std::time::Duration;

/// Timer values (RFC 3261 §17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// T1, the RTT estimate (default 500 ms).
    pub t1: Duration,
    /// T2, the maximum retransmit interval for non-INVITE requests and
    /// INVITE responses (default 4 s).
    pub t2: Duration,
    /// T4, the maximum time a message stays in the network (default 5 s).
    pub t4: Duration,
    /// Timer D on unreliable transports: at least 32 s (§17.1.1.2).
    pub d: Duration,
    /// How long an INVITE server transaction waits before sending 100
    /// Trying itself (§17.2.1: 200 ms).
    pub trying: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            d: Duration::from_secs(32),
            trying: Duration::from_millis(200),
        }
    }
}

impl Timers {
    /// 64*T1: timers B, F, H, J, L, M.
    #[must_use]
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Hashes a [`TxId`] (or a key that starts with one) by its number: ids
/// are assigned by the endpoint, not chosen by a peer, so tables keyed by
/// them need no flood-resistant hash. Feed it only `TxId`s.
#[derive(Debug, Default, Clone, Copy)]
pub struct TxIdHasher(u64);

impl std::hash::Hasher for TxIdHasher {
    fn finish(&self) -> u64 {
        // Spread the sequential ids over the table's buckets.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(5) ^ n;
    }
}

/// A map keyed by [`TxId`], hashed with [`TxIdHasher`].
pub type TxMap<V> = std::collections::HashMap<TxId, V, std::hash::BuildHasherDefault<TxIdHasher>>;

/// Gives a map's room back after a burst: once it holds under an eighth of
/// its capacity (and the capacity is over [`SHRINK_FLOOR`]), it shrinks to
/// twice what it holds. Called after removals; a map shrinks again only
/// after losing three quarters of what it kept, so the rehashing costs
/// O(1) per removal over time. Without it, the maps of transactions that a
/// burst filled (every transaction lingers 32 s) kept their capacity for
/// the life of the process: about a kilobyte per call of the burst.
pub fn shrink_after_burst<K, V, S>(map: &mut std::collections::HashMap<K, V, S>)
where
    K: Eq + std::hash::Hash,
    S: std::hash::BuildHasher,
{
    let cap = map.capacity();
    if cap > SHRINK_FLOOR && map.len() < cap / 8 {
        map.shrink_to(map.len() * 2);
    }
}

/// Maps at or below this capacity are left alone.
pub const SHRINK_FLOOR: usize = 1024;

/// A transaction's identifier inside one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub(crate) u64);

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// A deterministic generator for branches, tags and Call-IDs
/// (SplitMix64). The protocol core has no randomness of its own: the seed
/// comes from outside, so a simulation replays exactly.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    state: u64,
}

impl IdGenerator {
    /// A generator from a seed.
    #[must_use]
    pub fn new(seed: u64) -> IdGenerator {
        IdGenerator { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A new Via branch with the RFC 3261 magic cookie (§8.1.1.7), with
    /// room for `extra` more bytes (a caller's suffix).
    pub fn branch_with_room(&mut self, extra: usize) -> String {
        let mut b = String::with_capacity(31 + extra);
        b.push_str("z9hG4bK");
        push_hex(&mut b, self.next_u64(), 16);
        push_hex(&mut b, self.next_u64(), 8);
        b
    }

    /// A new Via branch with the RFC 3261 magic cookie (§8.1.1.7).
    pub fn branch(&mut self) -> String {
        self.branch_with_room(0)
    }

    /// A new From or To tag (§19.3: at least 32 bits of randomness).
    pub fn tag(&mut self) -> String {
        let mut t = String::with_capacity(16);
        push_hex(&mut t, self.next_u64(), 16);
        t
    }

    /// A new Call-ID (§8.1.1.4), `random@host`.
    pub fn call_id(&mut self, host: &str) -> String {
        let mut c = String::with_capacity(33 + host.len());
        push_hex(&mut c, self.next_u64(), 16);
        push_hex(&mut c, self.next_u64(), 16);
        c.push('@');
        c.push_str(host);
        c
    }
}

/// Appends the low `digits` hex digits of `value` (lowercase, zero-padded;
/// `digits` at most 16): what `{:0digits$x}` writes, without the
/// formatting machinery (identifiers are made several times per call).
pub fn push_hex(out: &mut String, value: u64, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits.min(16)).rev() {
        let nibble = (value >> (i * 4)) & 0xf;
        out.push(char::from(
            HEX.get(nibble as usize).copied().unwrap_or(b'0'),
        ));
    }
}

#[cfg(test)]
mod hex_tests {
    use super::*;

    #[test]
    fn push_hex_writes_what_format_writes() {
        for v in [0u64, 1, 0xabc, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            let mut s = String::new();
            push_hex(&mut s, v, 16);
            assert_eq!(s, format!("{v:016x}"));
            let mut s = String::new();
            push_hex(&mut s, v, 8);
            assert_eq!(s, format!("{:08x}", v as u32));
        }
        let mut g = IdGenerator::new(7);
        let mut h = IdGenerator::new(7);
        let b = g.branch();
        assert_eq!(
            b,
            format!("z9hG4bK{:016x}{:08x}", h.next_u64(), h.next_u64() as u32)
        );
        assert_eq!(g.tag(), format!("{:016x}", h.next_u64()));
        assert_eq!(
            g.call_id("x"),
            format!("{:016x}{:016x}@x", h.next_u64(), h.next_u64())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_gives_its_room_back_after_a_burst_and_only_then() {
        let mut m: TxMap<u64> = TxMap::default();
        for i in 0..20_000 {
            m.insert(TxId(i), i);
        }
        let full = m.capacity();
        // Three quarters gone: still room for the next burst.
        for i in 0..15_000 {
            m.remove(&TxId(i));
            shrink_after_burst(&mut m);
        }
        assert_eq!(m.capacity(), full);
        for i in 15_000..19_990 {
            m.remove(&TxId(i));
            shrink_after_burst(&mut m);
        }
        assert_eq!(m.len(), 10);
        assert!(
            m.capacity() <= SHRINK_FLOOR,
            "{} after the burst",
            m.capacity()
        );
        assert!((19_990..20_000).all(|i| m.get(&TxId(i)) == Some(&i)));
    }
}
