//! Per-source admission, sans-IO: may this source send one more message now?
//!
//! One token bucket per source (`[limits] per_source_rps`, refilled
//! continuously, holding at most `per_source_burst`), kept as the GCRA
//! "theoretical arrival time" (one `Instant` per source: the time at which
//! its bucket would be full again). A source whose time has passed has a
//! full bucket, which is the same as not being tracked at all, so it can
//! be forgotten without changing any decision: that is how the table stays
//! within `max_sources`. When every tracked source is still in debt (a
//! flood from very many addresses), the least indebted are forgotten.
//!
//! Time is an argument ([`Admission::check`] takes `now`); the table is
//! owned by the caller (the edge keeps one behind a mutex, taken for one
//! lookup per message).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::config::{LimitsConfig, SourceKey};

/// How often at most one source's drops are reported in the log.
pub(crate) const WARN_PERIOD: Duration = Duration::from_secs(10);

/// The verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the source's limit.
    Admit,
    /// Over it: drop the message. `warn` is `Some(n)` when a warning is
    /// due (the first drop, then at most once per [`WARN_PERIOD`]): `n`
    /// messages of this source were dropped since the last one.
    Drop {
        /// Drops to report now.
        warn: Option<u64>,
    },
}

#[derive(Debug)]
struct Entry {
    /// When the source's bucket is full again (GCRA's TAT).
    full_at: Instant,
    /// When its drops were last reported.
    warned: Option<Instant>,
    /// Drops since then.
    unreported: u64,
}

/// The admission table of one edge.
#[derive(Debug)]
pub(crate) struct Admission {
    /// One message's worth of refill: `1 s / per_source_rps`.
    interval: Duration,
    /// How far ahead of now a source's bucket may be emptied:
    /// `interval * (burst - 1)`.
    tolerance: Duration,
    key: SourceKey,
    max_sources: usize,
    table: HashMap<SocketAddr, Entry>,
}

impl Admission {
    /// The table for `limits`; `None` when the limit is off
    /// (`per_source_rps = 0`).
    pub(crate) fn new(limits: &LimitsConfig) -> Option<Admission> {
        if limits.per_source_rps == 0 {
            return None;
        }
        let interval =
            Duration::from_nanos((1_000_000_000 / u64::from(limits.per_source_rps)).max(1));
        let tolerance = interval
            .checked_mul(limits.per_source_burst.saturating_sub(1))
            .unwrap_or(Duration::MAX);
        Some(Admission {
            interval,
            tolerance,
            key: limits.per_source_key,
            max_sources: limits.max_sources.max(1),
            table: HashMap::new(),
        })
    }

    /// Sources tracked now.
    pub(crate) fn tracked(&self) -> usize {
        self.table.len()
    }

    /// Whether a message from `source` at `now` is admitted; an admitted
    /// one takes a token.
    pub(crate) fn check(&mut self, source: SocketAddr, now: Instant) -> Verdict {
        let key = self.key_of(source);
        if !self.table.contains_key(&key) && self.table.len() >= self.max_sources {
            self.make_room(now);
        }
        let entry = self.table.entry(key).or_insert(Entry {
            full_at: now,
            warned: None,
            unreported: 0,
        });
        let full_at = entry.full_at.max(now);
        if full_at.saturating_duration_since(now) > self.tolerance {
            entry.unreported += 1;
            let due = entry
                .warned
                .is_none_or(|w| now.saturating_duration_since(w) >= WARN_PERIOD);
            if !due {
                return Verdict::Drop { warn: None };
            }
            entry.warned = Some(now);
            let n = std::mem::take(&mut entry.unreported);
            return Verdict::Drop { warn: Some(n) };
        }
        entry.full_at = full_at.checked_add(self.interval).unwrap_or(full_at);
        Verdict::Admit
    }

    /// The table key of a source: its address, or its IP address (an IPv6
    /// one by its /64, which one subscriber usually holds whole).
    fn key_of(&self, source: SocketAddr) -> SocketAddr {
        match self.key {
            SourceKey::Address => source,
            SourceKey::Ip => {
                let ip = match source.ip() {
                    IpAddr::V4(a) => IpAddr::V4(a),
                    IpAddr::V6(a) => match a.to_ipv4_mapped() {
                        Some(v4) => IpAddr::V4(v4),
                        None => {
                            let prefix = u128::from(a) & !((1u128 << 64) - 1);
                            IpAddr::V6(Ipv6Addr::from(prefix))
                        }
                    },
                };
                SocketAddr::new(ip, 0)
            }
        }
    }

    /// Frees at least an eighth of the table: first the sources whose
    /// bucket has refilled (forgetting them changes nothing), then the least
    /// indebted. Amortised: it runs once per `max_sources / 8` new sources
    /// at most.
    fn make_room(&mut self, now: Instant) {
        self.table.retain(|_, e| e.full_at > now);
        let want_free = (self.max_sources / 8).max(1);
        let excess = (self.table.len() + want_free).saturating_sub(self.max_sources);
        if excess == 0 {
            return;
        }
        let mut times: Vec<Instant> = self.table.values().map(|e| e.full_at).collect();
        if excess > times.len() {
            self.table.clear();
            return;
        }
        let (_, cut, _) = times.select_nth_unstable(excess - 1);
        let cut = *cut;
        self.table.retain(|_, e| e.full_at > cut);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limits(rps: u32, burst: u32, key: SourceKey, max_sources: usize) -> LimitsConfig {
        LimitsConfig {
            per_source_rps: rps,
            per_source_burst: burst,
            per_source_key: key,
            max_sources,
            ..LimitsConfig::default()
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn off_when_the_rate_is_zero() {
        assert!(Admission::new(&limits(0, 10, SourceKey::Address, 10)).is_none());
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut a = Admission::new(&limits(10, 5, SourceKey::Address, 100)).unwrap();
        let src = addr("192.0.2.1:5060");
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(a.check(src, t0), Verdict::Admit);
        }
        assert_eq!(a.check(src, t0), Verdict::Drop { warn: Some(1) });
        assert_eq!(a.check(src, t0), Verdict::Drop { warn: None });
        // Another source has its own bucket.
        assert_eq!(a.check(addr("192.0.2.1:5061"), t0), Verdict::Admit);
        // 100 ms refills one message's worth, no more.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(a.check(src, t1), Verdict::Admit);
        assert_eq!(a.check(src, t1), Verdict::Drop { warn: None });
        // A second refills ten; the bucket holds five.
        let t2 = t1 + Duration::from_secs(2);
        for _ in 0..5 {
            assert_eq!(a.check(src, t2), Verdict::Admit);
        }
        assert!(matches!(a.check(src, t2), Verdict::Drop { .. }));
    }

    #[test]
    fn warnings_once_per_period_with_the_count() {
        let mut a = Admission::new(&limits(1, 1, SourceKey::Address, 100)).unwrap();
        let src = addr("192.0.2.1:5060");
        let t0 = Instant::now();
        assert_eq!(a.check(src, t0), Verdict::Admit);
        assert_eq!(a.check(src, t0), Verdict::Drop { warn: Some(1) });
        // Keep it in debt: one message every 100 ms for 12 s.
        let mut warned = Vec::new();
        for i in 1..=120u32 {
            let now = t0 + Duration::from_millis(100) * i;
            if let Verdict::Drop { warn: Some(n) } = a.check(src, now) {
                warned.push((i, n));
            }
        }
        // The first drop at 10 s or later (at 10 s itself a token was
        // there): the 91 drops since the first warning (every 10th message
        // was admitted).
        assert_eq!(warned, [(101, 91)]);
    }

    #[test]
    fn ip_keys_share_a_bucket_and_ipv6_by_its_64() {
        let mut a = Admission::new(&limits(1, 2, SourceKey::Ip, 100)).unwrap();
        let t0 = Instant::now();
        assert_eq!(a.check(addr("192.0.2.1:1"), t0), Verdict::Admit);
        assert_eq!(a.check(addr("192.0.2.1:2"), t0), Verdict::Admit);
        assert!(matches!(
            a.check(addr("192.0.2.1:3"), t0),
            Verdict::Drop { .. }
        ));
        assert_eq!(a.check(addr("192.0.2.2:1"), t0), Verdict::Admit);
        assert_eq!(a.check(addr("[2001:db8:0:1::1]:1"), t0), Verdict::Admit);
        assert_eq!(
            a.check(addr("[2001:db8:0:1:ffff::9]:2"), t0),
            Verdict::Admit
        );
        assert!(matches!(
            a.check(addr("[2001:db8:0:1::7]:3"), t0),
            Verdict::Drop { .. }
        ));
        assert_eq!(a.check(addr("[2001:db8:0:2::1]:1"), t0), Verdict::Admit);
        // An IPv4-mapped address is its IPv4 address.
        assert!(matches!(
            a.check(addr("[::ffff:192.0.2.2]:9"), t0),
            Verdict::Admit
        ));
        assert!(matches!(
            a.check(addr("[::ffff:192.0.2.2]:9"), t0),
            Verdict::Drop { .. }
        ));
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_refilled_sources_first() {
        let mut a = Admission::new(&limits(1, 1, SourceKey::Address, 64)).unwrap();
        let t0 = Instant::now();
        let flooder = addr("198.51.100.1:9");
        assert_eq!(a.check(flooder, t0), Verdict::Admit);
        // 10,000 sources, one message each, 1 ms apart: each bucket refills
        // in 1 s, so at most ~1,000 are in debt at once, and the table holds
        // 64.
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            assert_eq!(
                a.check(SocketAddr::new(ip.into(), 5060), now),
                Verdict::Admit
            );
            assert!(a.tracked() <= 64);
        }
        // Sources still in debt when the table is full of them: the least
        // indebted go, the new one is admitted.
        let now = t0 + Duration::from_millis(10_000);
        for i in 0..200u32 {
            let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i);
            assert_eq!(
                a.check(SocketAddr::new(ip.into(), 5060), now),
                Verdict::Admit
            );
            assert!(a.tracked() <= 64);
        }
    }
}
