//! [`MemoryStore`]: the store in this process.
//!
//! Records live in shards (a `std::sync::Mutex<HashMap>` each, chosen by
//! the key's hash), so concurrent calls on different keys rarely contend and
//! no lock is ever held across an `.await` (no method awaits at all). Expiry
//! is lazy (an expired record is dropped when met) plus a sweep of a shard
//! at most once per [`SWEEP_INTERVAL`], done by the write that finds it due,
//! so memory held by records nobody touches again is bounded without a
//! background task. Time is `tokio::time::Instant`, so tests can pause and
//! advance it.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::{Member, SessionStore, StoreError, StoredTimer, Versioned, Write};

/// How often a shard drops its expired records, at most.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Shards of the record map; a power of two.
const SHARDS: usize = 64;

/// The store in this process: compare-and-set semantics identical to
/// [`RedisStore`](crate::RedisStore), nothing survives the process.
///
/// Cloning is cheap and clones share the records.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    timers: Mutex<Timers>,
    /// Each member with when its announcement lapses (None: never, for a
    /// TTL beyond the clock's range).
    members: Mutex<HashMap<String, (Member, Option<Instant>)>>,
}

impl Default for Inner {
    fn default() -> Inner {
        let now = Instant::now();
        Inner {
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        next_sweep: now + SWEEP_INTERVAL,
                    })
                })
                .collect(),
            timers: Mutex::default(),
            members: Mutex::default(),
        }
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

struct Shard {
    map: HashMap<String, Entry>,
    next_sweep: Instant,
}

struct Entry {
    version: u64,
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

impl Shard {
    /// The live entry at `key`, dropping it when it has expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.map.get(key).is_some_and(|e| !e.live(now)) {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    fn sweep_if_due(&mut self, now: Instant) {
        if now >= self.next_sweep {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.map.retain(|_, e| e.live(now));
        self.next_sweep = now + SWEEP_INTERVAL;
    }

    fn put(
        &mut self,
        key: &str,
        value: Vec<u8>,
        expected: u64,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<u64, StoreError> {
        self.sweep_if_due(now);
        let expires = ttl.and_then(|ttl| now.checked_add(ttl));
        let current = self.live(key, now).map_or(0, |e| e.version);
        if current != expected {
            return Err(conflict(key, expected, current));
        }
        let version = next_version(key, expected)?;
        match self.map.get_mut(key) {
            Some(entry) => {
                entry.version = version;
                entry.value = value;
                entry.expires = expires;
            }
            None => {
                self.map.insert(
                    key.to_owned(),
                    Entry {
                        version,
                        value,
                        expires,
                    },
                );
            }
        }
        Ok(version)
    }
}

/// Timers ordered by due time, plus an index to replace or remove one by
/// session and id.
#[derive(Default)]
struct Timers {
    by_due: BTreeMap<(u64, String, String), Vec<u8>>,
    due_of: HashMap<(String, String), u64>,
}

fn conflict(key: &str, expected: u64, current: u64) -> StoreError {
    StoreError::Conflict {
        key: key.to_owned(),
        expected,
        current,
    }
}

/// `expected + 1`, or an error at `u64::MAX` (which no real record reaches).
pub(crate) fn next_version(key: &str, expected: u64) -> Result<u64, StoreError> {
    expected
        .checked_add(1)
        .ok_or_else(|| StoreError::Backend(format!("version of {key:?} would overflow")))
}

/// A poisoned lock still holds consistent data here: every critical section
/// only moves values in and out of maps, and panics in none.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let index = (self.inner.hasher.hash_one(key) as usize) & (SHARDS - 1);
        // `index < SHARDS == shards.len()` by the mask.
        #[allow(clippy::indexing_slicing)]
        &self.inner.shards[index]
    }

    /// Drops every expired record now (writes do it lazily, shard by shard)
    /// and returns how many records are live.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        self.inner
            .shards
            .iter()
            .map(|shard| {
                let mut shard = lock(shard);
                shard.sweep(now);
                shard.map.len()
            })
            .sum()
    }

    /// How many timers are scheduled (due or not).
    pub fn timer_count(&self) -> usize {
        lock(&self.inner.timers).by_due.len()
    }

    fn put_sync(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: u64,
        ttl: Option<Duration>,
    ) -> Result<u64, StoreError> {
        lock(self.shard(key)).put(key, value, expected, ttl, Instant::now())
    }
}

impl SessionStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let now = Instant::now();
        let mut shard = lock(self.shard(key));
        Ok(shard.live(key, now).map(|e| Versioned {
            version: e.version,
            value: e.value.clone(),
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: u64,
        ttl: Option<Duration>,
    ) -> Result<u64, StoreError> {
        self.put_sync(key, value, expected, ttl)
    }

    async fn delete(&self, key: &str, expected: u64) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut shard = lock(self.shard(key));
        let current = shard.live(key, now).map_or(0, |e| e.version);
        if current != expected {
            return Err(conflict(key, expected, current));
        }
        shard.map.remove(key);
        Ok(())
    }

    async fn put_many(
        &self,
        writes: Vec<Write>,
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        Ok(writes
            .into_iter()
            .map(|w| self.put_sync(&w.key, w.value, w.expected, w.ttl))
            .collect())
    }

    async fn put_timer(&self, timer: StoredTimer) -> Result<(), StoreError> {
        let mut timers = lock(&self.inner.timers);
        let Timers { by_due, due_of } = &mut *timers;
        let ident = (timer.session, timer.id);
        if let Some(old_due) = due_of.insert(ident.clone(), timer.due_unix_ms) {
            by_due.remove(&(old_due, ident.0.clone(), ident.1.clone()));
        }
        by_due.insert((timer.due_unix_ms, ident.0, ident.1), timer.payload);
        Ok(())
    }

    async fn remove_timer(&self, session: &str, id: &str) -> Result<(), StoreError> {
        let mut timers = lock(&self.inner.timers);
        let ident = (session.to_owned(), id.to_owned());
        if let Some(due) = timers.due_of.remove(&ident) {
            timers.by_due.remove(&(due, ident.0, ident.1));
        }
        Ok(())
    }

    async fn take_due_timers(
        &self,
        now_unix_ms: u64,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, StoreError> {
        let mut timers = lock(&self.inner.timers);
        let mut taken = Vec::new();
        while taken.len() < limit {
            let Some(entry) = timers.by_due.first_entry() else {
                break;
            };
            if entry.key().0 > now_unix_ms {
                break;
            }
            let ((due_unix_ms, session, id), payload) = entry.remove_entry();
            let ident = (session, id);
            timers.due_of.remove(&ident);
            taken.push(StoredTimer {
                session: ident.0,
                id: ident.1,
                due_unix_ms,
                payload,
            });
        }
        Ok(taken)
    }

    async fn announce(&self, member: &Member, ttl: Duration) -> Result<(), StoreError> {
        let until = Instant::now().checked_add(ttl);
        lock(&self.inner.members).insert(member.node.clone(), (member.clone(), until));
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let now = Instant::now();
        let mut members = lock(&self.inner.members);
        members.retain(|_, (_, until)| until.is_none_or(|at| at > now));
        let mut live: Vec<Member> = members.values().map(|(m, _)| m.clone()).collect();
        drop(members);
        live.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(live)
    }

    async fn record_count(&self) -> Result<usize, StoreError> {
        Ok(self.sweep())
    }
}
