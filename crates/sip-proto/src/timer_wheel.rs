//! The endpoint's timers on a hierarchical timing wheel.
//!
//! Every transaction arms a few timers (RFC 3261 §17, Table 4) and most of
//! them are disarmed long before they fire (Trying when the TU answers, the
//! 2xx retransmission when the ACK arrives), while Timers J and L keep an
//! answered transaction for 64*T1 = 32 s: at tens of thousands of calls per
//! second hundreds of thousands of timers are armed at once. A sorted set
//! pays O(log n) and an allocation per arm and per disarm; the wheel pays
//! O(1) for both.
//!
//! # Shape
//! Time is cut into 1 ms ticks counted from the first `now` the wheel sees.
//! Six levels of 64 slots each cover 64^k ticks per slot at level k (1 ms,
//! 64 ms, 4.1 s, 4.4 min, 4.7 h, 12.4 days), 2^36 ms (about two years) in
//! all; a later deadline is parked in the top level and placed again each
//! time its slot comes round. A timer goes into the level where its tick
//! first differs from the wheel's current tick (as in the Linux kernel's
//! and tokio's wheels), so every timer on a lower level is due before every
//! timer on a higher one, and within a level slots are in time order. When
//! time reaches a slot of a higher level, its timers cascade down into
//! finer slots.
//!
//! Timers whose tick has been reached sit in a small sorted `due` set,
//! keyed by (deadline, transaction, timer): the wheel only ever narrows
//! down *which* timers may be due, their exact deadlines decide. So a timer
//! never fires before its deadline, timers fire in deadline order with the
//! same tie-breaking as before (transaction, then timer name), and a timer
//! armed while others fire, due already, fires in the same pass.
//!
//! Each slot is an intrusive doubly linked list through a slab of entries,
//! and each transaction's timers are a second list through the same
//! entries, found by the transaction's id: arm, disarm and disarming every
//! timer of a transaction touch only that transaction's (at most a handful
//! of) timers, never the whole table.
//!
//! # Exactness of `next_deadline`
//! Each slot keeps the earliest deadline it has held. It stays exact while
//! timers are only added; disarming that earliest timer leaves a value that
//! is earlier than the slot's true minimum, which is still a correct answer
//! for [`TimerWheel::next_deadline`]: never later than the earliest armed
//! deadline. The caller then wakes early, [`TimerWheel::advance`] cascades
//! that slot, and the next answer is exact (at most one early wake per
//! level). Slots on level 0 (one tick each) recompute their minimum at once.
//!
//! # Why by hand
//! The crates that exist either read the clock themselves or own the
//! expired values behind their own keys (`tokio-util`'s `DelayQueue` is
//! tied to tokio's clock and driver; `hierarchical_hash_wheel_timer` and
//! `timer-queue`-style crates fire at tick granularity, earlier or later
//! than the deadline). The protocol core needs time as an argument, exact
//! deadlines and lookup by (transaction, timer) for disarming, all without
//! `unsafe`; that is about 300 lines.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::transaction::TimerName;
use crate::types::{TxId, TxMap, shrink_after_burst};

/// Bits of tick per level: 64 slots.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels: 64^6 ticks = 2^36 ms in all.
const LEVELS: usize = 6;
/// The farthest a timer is placed ahead of the current tick; later
/// deadlines wait in the top level and are placed again.
const MAX_AHEAD: u64 = (1 << (SLOT_BITS as u64 * LEVELS as u64)) - 1;
/// "No entry" in the intrusive lists.
const NIL: u32 = u32::MAX;

/// Where an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// On the free list.
    Free,
    /// Its tick has been reached: in the `due` set.
    Due,
    /// In a slot of the wheel.
    Slot { level: u8, slot: u8 },
}

/// One armed timer.
#[derive(Debug, Clone)]
struct Entry {
    at: Instant,
    tx: TxId,
    name: TimerName,
    place: Place,
    /// Neighbours in the slot's list (`next` also links the free list).
    prev: u32,
    next: u32,
    /// Neighbours in the transaction's list.
    tx_prev: u32,
    tx_next: u32,
}

/// One slot: the head of its list and a lower bound of its deadlines.
#[derive(Debug, Clone, Copy)]
struct Slot {
    head: u32,
    /// The earliest deadline placed here since the slot was last empty;
    /// never later than the earliest deadline in it.
    min: Option<Instant>,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            head: NIL,
            min: None,
        }
    }
}

/// Armed timers, keyed by (transaction, timer name).
#[derive(Debug)]
pub(crate) struct TimerWheel {
    /// Tick 0; set by the first call that passes `now`.
    origin: Option<Instant>,
    /// Every slot whose ticks are up to here has been emptied into `due`.
    elapsed: u64,
    levels: Vec<[Slot; SLOTS]>,
    /// Per level, a bit per non-empty slot.
    occupied: [u64; LEVELS],
    /// Timers whose tick has been reached, in firing order.
    due: BTreeSet<(Instant, TxId, TimerName, u32)>,
    entries: Vec<Entry>,
    free: u32,
    /// The first entry of each transaction's list.
    by_tx: TxMap<u32>,
    armed: usize,
}

impl Default for TimerWheel {
    fn default() -> Self {
        TimerWheel {
            origin: None,
            elapsed: 0,
            levels: vec![[Slot::default(); SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            due: BTreeSet::new(),
            entries: Vec::new(),
            free: NIL,
            by_tx: TxMap::default(),
            armed: 0,
        }
    }
}

impl TimerWheel {
    /// How many timers are armed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.armed
    }

    /// Arms `name` for `tx` at `at` (`now` is the caller's present time),
    /// replacing its earlier deadline if it was armed.
    pub(crate) fn arm(&mut self, now: Instant, tx: TxId, name: TimerName, at: Instant) {
        self.origin.get_or_insert(now);
        let idx = match self.find(tx, name) {
            Some(idx) => {
                self.unplace(idx);
                if let Some(e) = self.entries.get_mut(idx as usize) {
                    e.at = at;
                }
                idx
            }
            None => self.insert(tx, name, at),
        };
        self.place(idx);
    }

    /// Disarms `name` for `tx`, if armed.
    pub(crate) fn disarm(&mut self, tx: TxId, name: TimerName) {
        if let Some(idx) = self.find(tx, name) {
            self.remove(idx);
        }
    }

    /// Whether `name` is armed for `tx`.
    pub(crate) fn is_armed(&self, tx: TxId, name: TimerName) -> bool {
        self.find(tx, name).is_some()
    }

    /// Disarms every timer of `tx`.
    pub(crate) fn disarm_all(&mut self, tx: TxId) {
        while let Some(&head) = self.by_tx.get(&tx) {
            self.remove(head);
        }
    }

    /// A time no later than the earliest armed deadline (exact unless a
    /// slot's earliest timer was disarmed; see the module doc), or `None`
    /// when nothing is armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if let Some(&(at, ..)) = self.due.first() {
            return Some(at);
        }
        let (level, slot, _) = self.next_slot()?;
        self.slot(level, slot).and_then(|s| s.min)
    }

    /// Moves the wheel's time to `now`: every timer whose tick is reached
    /// becomes a candidate for [`TimerWheel::pop_due`].
    pub(crate) fn advance(&mut self, now: Instant) {
        let target = self.tick(now);
        while let Some((level, slot, start)) = self.next_slot() {
            if start > target {
                break;
            }
            self.elapsed = self.elapsed.max(start);
            self.cascade(level, slot);
        }
        self.elapsed = self.elapsed.max(target);
    }

    /// Removes and returns the earliest timer due at `now` (call
    /// [`TimerWheel::advance`] with `now` first).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TxId, TimerName)> {
        let &(at, tx, name, idx) = self.due.first()?;
        if at > now {
            return None;
        }
        self.remove(idx);
        Some((tx, name))
    }

    // ---- inside ------------------------------------------------------------

    /// The tick of `at`: whole milliseconds since the origin (0 before it).
    fn tick(&self, at: Instant) -> u64 {
        let Some(origin) = self.origin else {
            return 0;
        };
        let d = at.saturating_duration_since(origin);
        d.as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(d.subsec_millis()))
    }

    fn slot(&self, level: usize, slot: usize) -> Option<&Slot> {
        self.levels.get(level).and_then(|l| l.get(slot))
    }

    fn slot_mut(&mut self, level: usize, slot: usize) -> Option<&mut Slot> {
        self.levels.get_mut(level).and_then(|l| l.get_mut(slot))
    }

    fn find(&self, tx: TxId, name: TimerName) -> Option<u32> {
        let mut idx = *self.by_tx.get(&tx)?;
        while let Some(e) = self.entries.get(idx as usize) {
            if e.name == name {
                return Some(idx);
            }
            idx = e.tx_next;
        }
        None
    }

    /// A new entry, first in its transaction's list, not yet placed.
    fn insert(&mut self, tx: TxId, name: TimerName, at: Instant) -> u32 {
        let head = self.by_tx.get(&tx).copied().unwrap_or(NIL);
        let entry = Entry {
            at,
            tx,
            name,
            place: Place::Free,
            prev: NIL,
            next: NIL,
            tx_prev: NIL,
            tx_next: head,
        };
        let idx = if let Some(e) = self.entries.get_mut(self.free as usize) {
            let idx = self.free;
            self.free = e.next;
            *e = entry;
            idx
        } else {
            // More than 4 billion timers cannot be armed: memory runs out first.
            let idx = u32::try_from(self.entries.len()).unwrap_or(NIL - 1);
            self.entries.push(entry);
            idx
        };
        if let Some(h) = self.entries.get_mut(head as usize) {
            h.tx_prev = idx;
        }
        self.by_tx.insert(tx, idx);
        self.armed += 1;
        idx
    }

    /// Unplaces an entry, unlinks it from its transaction and frees it.
    fn remove(&mut self, idx: u32) {
        self.unplace(idx);
        let Some(e) = self.entries.get_mut(idx as usize) else {
            return;
        };
        let (tx, prev, next) = (e.tx, e.tx_prev, e.tx_next);
        e.place = Place::Free;
        e.next = self.free;
        self.free = idx;
        self.armed -= 1;
        if let Some(n) = self.entries.get_mut(next as usize) {
            n.tx_prev = prev;
        }
        if let Some(p) = self.entries.get_mut(prev as usize) {
            p.tx_next = next;
        } else if next == NIL {
            self.by_tx.remove(&tx);
            shrink_after_burst(&mut self.by_tx);
        } else {
            self.by_tx.insert(tx, next);
        }
    }

    /// Puts an entry where its deadline says: `due` if its tick has been
    /// reached, else the slot of the level where its tick first differs
    /// from the current one.
    fn place(&mut self, idx: u32) {
        let Some(e) = self.entries.get(idx as usize) else {
            return;
        };
        let (at, tx, name) = (e.at, e.tx, e.name);
        let when = self.tick(at);
        if when <= self.elapsed {
            self.due.insert((at, tx, name, idx));
            if let Some(e) = self.entries.get_mut(idx as usize) {
                e.place = Place::Due;
            }
            return;
        }
        let when = when.min(self.elapsed.saturating_add(MAX_AHEAD));
        let (level, slot) = level_and_slot(self.elapsed, when);
        let head = match self.slot_mut(level, slot) {
            Some(s) => {
                let head = s.head;
                s.head = idx;
                s.min = Some(s.min.map_or(at, |m| m.min(at)));
                head
            }
            None => NIL,
        };
        if let Some(h) = self.entries.get_mut(head as usize) {
            h.prev = idx;
        }
        if let Some(e) = self.entries.get_mut(idx as usize) {
            e.prev = NIL;
            e.next = head;
            // Both fit: LEVELS and SLOTS are far below 256.
            e.place = Place::Slot {
                level: level as u8,
                slot: slot as u8,
            };
        }
        if let Some(bits) = self.occupied.get_mut(level) {
            *bits |= 1 << slot;
        }
    }

    /// Takes an entry out of its slot or the `due` set (it stays in its
    /// transaction's list).
    fn unplace(&mut self, idx: u32) {
        let Some(e) = self.entries.get(idx as usize) else {
            return;
        };
        let (at, tx, name, place, prev, next) = (e.at, e.tx, e.name, e.place, e.prev, e.next);
        match place {
            Place::Free => {}
            Place::Due => {
                self.due.remove(&(at, tx, name, idx));
            }
            Place::Slot { level, slot } => {
                let (level, slot) = (usize::from(level), usize::from(slot));
                if let Some(n) = self.entries.get_mut(next as usize) {
                    n.prev = prev;
                }
                if let Some(p) = self.entries.get_mut(prev as usize) {
                    p.next = next;
                } else if let Some(s) = self.slot_mut(level, slot) {
                    s.head = next;
                }
                let empty = self.slot(level, slot).is_none_or(|s| s.head == NIL);
                if empty {
                    if let Some(s) = self.slot_mut(level, slot) {
                        s.min = None;
                    }
                    if let Some(bits) = self.occupied.get_mut(level) {
                        *bits &= !(1 << slot);
                    }
                } else if level == 0 && self.slot(level, slot).and_then(|s| s.min) == Some(at) {
                    // One tick's worth of timers: keep the minimum exact.
                    let min = self.slot_entries(level, slot).map(|e| e.at).min();
                    if let Some(s) = self.slot_mut(level, slot) {
                        s.min = min;
                    }
                }
            }
        }
        if let Some(e) = self.entries.get_mut(idx as usize) {
            e.place = Place::Free;
            e.prev = NIL;
            e.next = NIL;
        }
    }

    fn slot_entries(&self, level: usize, slot: usize) -> impl Iterator<Item = &Entry> {
        let mut idx = self.slot(level, slot).map_or(NIL, |s| s.head);
        std::iter::from_fn(move || {
            let e = self.entries.get(idx as usize)?;
            idx = e.next;
            Some(e)
        })
    }

    /// The earliest non-empty slot: its level, index and first tick.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for (level, &bits) in self.occupied.iter().enumerate() {
            if bits == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let current = (self.elapsed >> shift) & (SLOTS as u64 - 1);
            // Slots at or after the current one, in wheel order.
            let slot = (u64::from(bits.rotate_right(current as u32).trailing_zeros()) + current)
                % SLOTS as u64;
            let level_span = 1u64 << (shift + SLOT_BITS);
            let level_start = self.elapsed & !(level_span - 1);
            let mut start = level_start + (slot << shift);
            if start <= self.elapsed && level > 0 {
                // Behind the current slot: the slot's next turn (only the
                // top level, holding deadlines beyond the wheel, wraps).
                start = start.saturating_add(level_span);
            }
            return Some((level, slot as usize, start));
        }
        None
    }

    /// Empties a slot whose first tick has been reached, placing its
    /// timers again relative to the new current tick.
    fn cascade(&mut self, level: usize, slot: usize) {
        let Some(s) = self.slot_mut(level, slot) else {
            return;
        };
        let mut idx = std::mem::take(s).head;
        if let Some(bits) = self.occupied.get_mut(level) {
            *bits &= !(1 << slot);
        }
        while let Some(e) = self.entries.get_mut(idx as usize) {
            let next = e.next;
            e.place = Place::Free;
            self.place(idx);
            idx = next;
        }
    }
}

/// The level where `when` first differs from `elapsed` (both ticks,
/// `when > elapsed`), and the slot for `when` there.
fn level_and_slot(elapsed: u64, when: u64) -> (usize, usize) {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros();
    let level = ((significant / SLOT_BITS) as usize).min(LEVELS - 1);
    let slot = ((when >> (SLOT_BITS * level as u32)) & (SLOTS as u64 - 1)) as usize;
    (level, slot)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::collections::BTreeMap;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    const NAMES: [TimerName; 16] = [
        TimerName::A,
        TimerName::B,
        TimerName::D,
        TimerName::E,
        TimerName::F,
        TimerName::G,
        TimerName::H,
        TimerName::I,
        TimerName::J,
        TimerName::K,
        TimerName::L,
        TimerName::M,
        TimerName::Trying,
        TimerName::Retransmit2xx,
        TimerName::Reliable1xx,
        TimerName::Cancelled,
    ];

    fn t0() -> Instant {
        // Tests are a clock source like the bench; the wheel sees values.
        #[allow(clippy::disallowed_methods)]
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Advances to `now` and returns what fired.
    fn fire(w: &mut TimerWheel, now: Instant) -> Vec<(TxId, TimerName)> {
        w.advance(now);
        std::iter::from_fn(|| w.pop_due(now)).collect()
    }

    /// Sleeps from deadline to deadline as a shard does, until something
    /// fires; returns when and what.
    fn run_to_next(w: &mut TimerWheel, mut now: Instant) -> (Instant, Vec<(TxId, TimerName)>) {
        for _ in 0..=LEVELS + 1 {
            let at = w.next_deadline().expect("armed");
            now = now.max(at);
            let fired = fire(w, now);
            if !fired.is_empty() {
                return (now, fired);
            }
        }
        panic!("no timer fired after {} wakes", LEVELS + 2);
    }

    #[test]
    fn arm_fires_at_its_deadline_not_before() {
        let t = t0();
        let mut w = TimerWheel::default();
        w.arm(t, TxId(1), TimerName::E, t + ms(500));
        assert_eq!(w.next_deadline(), Some(t + ms(500)));
        assert!(fire(&mut w, t + ms(499)).is_empty());
        assert!(fire(&mut w, t + ms(500) - Duration::from_nanos(1)).is_empty());
        assert_eq!(fire(&mut w, t + ms(500)), vec![(TxId(1), TimerName::E)]);
        assert_eq!(w.next_deadline(), None);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn rearm_replaces_and_disarm_removes() {
        let t = t0();
        let mut w = TimerWheel::default();
        w.arm(t, TxId(1), TimerName::G, t + ms(500));
        w.arm(t, TxId(1), TimerName::G, t + ms(1000));
        assert_eq!(w.len(), 1);
        assert!(w.is_armed(TxId(1), TimerName::G));
        assert!(fire(&mut w, t + ms(999)).is_empty());
        assert_eq!(fire(&mut w, t + ms(1000)), vec![(TxId(1), TimerName::G)]);
        w.arm(t, TxId(2), TimerName::H, t + ms(32_000));
        w.disarm(TxId(2), TimerName::H);
        w.disarm(TxId(2), TimerName::H);
        assert!(!w.is_armed(TxId(2), TimerName::H));
        assert_eq!(w.next_deadline(), None);
        assert!(fire(&mut w, t + ms(40_000)).is_empty());
    }

    #[test]
    fn disarm_all_takes_only_that_transaction() {
        let t = t0();
        let mut w = TimerWheel::default();
        for (i, name) in NAMES.iter().enumerate() {
            w.arm(t, TxId(7), *name, t + ms(10 * i as u64 + 1));
            w.arm(t, TxId(8), *name, t + ms(10 * i as u64 + 1));
        }
        w.disarm_all(TxId(7));
        assert_eq!(w.len(), NAMES.len());
        assert!(NAMES.iter().all(|n| !w.is_armed(TxId(7), *n)));
        let fired = fire(&mut w, t + ms(1000));
        assert_eq!(fired.len(), NAMES.len());
        assert!(fired.iter().all(|(tx, _)| *tx == TxId(8)));
        w.disarm_all(TxId(8));
        w.disarm_all(TxId(9));
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn cascades_across_levels_firing_each_exactly() {
        let t = t0();
        let mut w = TimerWheel::default();
        // One per level: 1 ms, 100 ms, 5 s, 5 min, 4 h, 20 days; and past
        // the wheel's span, three years.
        let delays = [
            Duration::from_micros(1_500),
            ms(100),
            ms(5_000) + Duration::from_nanos(7),
            ms(300_000),
            ms(4 * 3_600_000),
            ms(20 * 86_400_000),
            ms(3 * 365 * 86_400_000),
        ];
        for (i, d) in delays.iter().enumerate() {
            w.arm(t, TxId(i as u64), TimerName::L, t + *d);
        }
        let mut now = t;
        for (i, d) in delays.iter().enumerate() {
            let (at, fired) = run_to_next(&mut w, now);
            assert_eq!(at, t + *d, "timer {i} fired at its deadline");
            assert_eq!(fired, vec![(TxId(i as u64), TimerName::L)]);
            now = at;
        }
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn four_hour_timer_survives_traffic() {
        let t = t0();
        let mut w = TimerWheel::default();
        w.arm(t, TxId(1), TimerName::B, t + ms(4 * 3_600_000));
        // Short timers come and go around it every 30 s of wheel time.
        let mut now = t;
        for n in 2..470u64 {
            w.arm(now, TxId(n), TimerName::J, now + ms(30_000));
            now += ms(30_000);
            assert_eq!(fire(&mut w, now), vec![(TxId(n), TimerName::J)]);
        }
        let (at, fired) = run_to_next(&mut w, now);
        assert_eq!(at, t + ms(4 * 3_600_000));
        assert_eq!(fired, vec![(TxId(1), TimerName::B)]);
    }

    #[test]
    fn same_deadline_fires_by_transaction_then_name() {
        let t = t0();
        let mut w = TimerWheel::default();
        let at = t + ms(64);
        w.arm(t, TxId(3), TimerName::Trying, at);
        w.arm(t, TxId(1), TimerName::L, at);
        w.arm(t, TxId(3), TimerName::A, at);
        w.arm(t, TxId(2), TimerName::J, at);
        // Same tick, a microsecond earlier: first.
        w.arm(t, TxId(9), TimerName::M, at - Duration::from_micros(1));
        assert_eq!(
            fire(&mut w, at),
            vec![
                (TxId(9), TimerName::M),
                (TxId(1), TimerName::L),
                (TxId(2), TimerName::J),
                (TxId(3), TimerName::A),
                (TxId(3), TimerName::Trying),
            ]
        );
    }

    #[test]
    fn a_timer_armed_in_the_past_fires_at_the_next_advance() {
        let t = t0();
        let mut w = TimerWheel::default();
        w.arm(t, TxId(1), TimerName::I, t);
        assert_eq!(w.next_deadline(), Some(t));
        assert_eq!(fire(&mut w, t), vec![(TxId(1), TimerName::I)]);
        let later = t + ms(10_000);
        w.advance(later);
        w.arm(later, TxId(2), TimerName::K, t + ms(5));
        assert_eq!(fire(&mut w, later), vec![(TxId(2), TimerName::K)]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Arm(u64, usize, Duration),
        Disarm(u64, usize),
        DisarmAll(u64),
        Advance(Duration),
        RunToNext,
    }

    fn delay() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..5_000_000).prop_map(Duration::from_nanos),
            (0u64..300).prop_map(ms),
            (0u64..70_000).prop_map(ms),
            (0u64..20_000_000).prop_map(ms),
            (0u64..2_000_000_000_000).prop_map(Duration::from_micros),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..12, 0usize..16, delay()).prop_map(|(t, n, d)| Op::Arm(t, n, d)),
            2 => (0u64..12, 0usize..16).prop_map(|(t, n)| Op::Disarm(t, n)),
            1 => (0u64..12).prop_map(Op::DisarmAll),
            2 => delay().prop_map(Op::Advance),
            2 => Just(Op::RunToNext),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), ..ProptestConfig::default() })]

        /// The wheel against a sorted map: same timers fire, in the same
        /// order, never early; `next_deadline` is never late, and waking
        /// at it reaches the earliest timer within a wake per level.
        #[test]
        fn matches_a_sorted_map(ops in proptest::collection::vec(op(), 1..200)) {
            let t = t0();
            let mut now = t;
            let mut w = TimerWheel::default();
            let mut model: BTreeMap<(TxId, TimerName), Instant> = BTreeMap::new();
            let due = |model: &mut BTreeMap<(TxId, TimerName), Instant>, now: Instant| {
                let mut d: Vec<_> = model.iter().filter(|(_, at)| **at <= now)
                    .map(|(k, at)| (*at, k.0, k.1)).collect();
                d.sort();
                for (_, tx, name) in &d {
                    model.remove(&(*tx, *name));
                }
                d.into_iter().map(|(_, tx, name)| (tx, name)).collect::<Vec<_>>()
            };
            for op in ops {
                match op {
                    Op::Arm(tx, n, d) => {
                        w.arm(now, TxId(tx), NAMES[n], now + d);
                        model.insert((TxId(tx), NAMES[n]), now + d);
                    }
                    Op::Disarm(tx, n) => {
                        w.disarm(TxId(tx), NAMES[n]);
                        model.remove(&(TxId(tx), NAMES[n]));
                    }
                    Op::DisarmAll(tx) => {
                        w.disarm_all(TxId(tx));
                        model.retain(|k, _| k.0 != TxId(tx));
                    }
                    Op::Advance(d) => {
                        now += d;
                        prop_assert_eq!(fire(&mut w, now), due(&mut model, now));
                    }
                    Op::RunToNext => {
                        let Some(&earliest) = model.values().min() else {
                            prop_assert_eq!(w.next_deadline(), None);
                            continue;
                        };
                        let (at, fired) = run_to_next(&mut w, now);
                        prop_assert_eq!(at, earliest.max(now));
                        now = at;
                        prop_assert_eq!(fired, due(&mut model, now));
                    }
                }
                prop_assert_eq!(w.len(), model.len());
                match model.values().min() {
                    Some(min) => prop_assert!(w.next_deadline().is_some_and(|d| d <= *min)),
                    None => prop_assert_eq!(w.next_deadline(), None),
                }
                for (tx, name) in model.keys() {
                    prop_assert!(w.is_armed(*tx, *name));
                }
            }
        }
    }
}
