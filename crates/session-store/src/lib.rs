//! Versioned records, timers and cluster membership for the container, in
//! memory or in Redis; knows no SIP.
//!
//! The container keeps its application sessions here as opaque bytes. Every
//! record carries a version, and every write is a compare-and-set on it: a
//! container that loaded version 7 can only write version 8, so when two
//! containers race for one session (a failover while the old owner still
//! runs), exactly one write wins and the other gets
//! [`StoreError::Conflict`]. Timers (JSR 289 `ServletTimer`s) are stored
//! beside the sessions so whichever container owns a session fires them, and
//! containers announce themselves here so edges can find them.
//!
//! Two implementations of one trait, [`SessionStore`]:
//!
//! * [`MemoryStore`]: one process, sharded mutexes, no I/O; the default, and
//!   what tests and `switchboard dev` use.
//! * [`RedisStore`]: a Redis server (optionally with replicas and `WAIT`) or
//!   a Redis Cluster, through redis-rs with automatic reconnection; what a
//!   cluster that survives the death of a container uses.
//!
//! [`Store`] is the one a server runs with, chosen by URL at start-up
//! ([`Store::open`]): `memory`, `redis://host:port/db`,
//! `redis+unix:///path`, `redis-cluster://h1:p1,h2:p2`, with options in the
//! query (`?wait=1&wait_timeout_ms=50&prefix=sb&timeout_ms=1000`). The URL
//! syntax, the semantics and deployment notes are in `docs/SESSION-STORE.md`.
//!
//! # Example
//!
//! A read-modify-write loop, the way the container updates a session:
//!
//! ```
//! use session_store::{SessionStore, Store, StoreError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), StoreError> {
//! let store = Store::open("memory").await?;
//! loop {
//!     let (version, mut value) = match store.get("counter").await? {
//!         Some(record) => (record.version, record.value),
//!         None => (0, Vec::new()),
//!     };
//!     value.push(b'+');
//!     match store.put("counter", value, version, None).await {
//!         Ok(_new_version) => break,
//!         Err(StoreError::Conflict { .. }) => continue, // somebody else wrote: read again
//!         Err(other) => return Err(other),
//!     }
//! }
//! assert_eq!(store.get("counter").await?.map(|r| r.version), Some(1));
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! * `lib.rs`: the data types ([`Versioned`], [`StoredTimer`], [`Member`],
//!   [`Write`]), the [`SessionStore`] trait and the [`Store`] enum.
//! * `error.rs`: [`StoreError`].
//! * `url.rs`: parsing of store URLs into [`StoreConfig`] / [`RedisConfig`].
//! * `memory.rs`: [`MemoryStore`].
//! * `redis_store.rs`: [`RedisStore`], its Lua scripts and key layout.
//! * `testing.rs` (feature `testing`): `testing::RedisServer` and
//!   `testing::RedisCluster`, real servers on loopback for tests.
//!
//! # Data model in Redis
//!
//! Every key starts with the prefix (`sb:` by default, `?prefix=` in the
//! URL). `P` below stands for it.
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `P` `r:` *key* | hash | `v`: the version (decimal); `d`: the value (bytes). `PEXPIRE`d when written with a TTL, `PERSIST`ed when without. One per record. |
//! | `P` `{timers}:due` | sorted set | member: the timer's field (below); score: its due time, Unix milliseconds. |
//! | `P` `{timers}:data` | hash | field: `<session length>:<session><id>`; value: the encoded [`StoredTimer`] (binary, see `redis_store.rs`). |
//! | `P` `{members}:exp` | sorted set | member: the node name; score: when its announcement lapses, Unix milliseconds by the Redis server's clock. |
//! | `P` `{members}:info` | hash | field: the node name; value: the [`Member`] as JSON. |
//!
//! A record is one key, so each compare-and-set script touches one key. The
//! timer keys share the hash tag `{timers}` and the member keys `{members}`,
//! so in a Redis Cluster each pair lives in one slot and its scripts are
//! legal there. A record key has no hash tag of its own: records spread over
//! the cluster by key, and a container that wants related records on one
//! node can put a tag in its keys (`{call-17}:a`, `{call-17}:b`).
//!
//! Every write is a Lua script or a `MULTI`, so it is atomic on the server;
//! versions are compared as decimal strings, never as Lua numbers, so they
//! are exact up to `u64::MAX`.

use std::future::Future;
use std::time::Duration;

mod error;
mod memory;
mod redis_store;
#[cfg(feature = "testing")]
pub mod testing;
mod url;

pub use error::StoreError;
pub use memory::{MemoryStore, SWEEP_INTERVAL};
pub use redis_store::RedisStore;
pub use url::{
    DEFAULT_PREFIX, DEFAULT_TIMEOUT, DEFAULT_WAIT_TIMEOUT, RedisConfig, RedisTarget, StoreConfig,
};

/// A stored record with its version (the compare-and-set token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The version of the record: 1 after its first write, one more after
    /// each write. Absent records have version 0.
    pub version: u64,
    /// The bytes last written.
    pub value: Vec<u8>,
}

/// A timer stored with its session (JSR 289 ServletTimer), so whichever container owns the session fires it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredTimer {
    /// The session the timer belongs to (the container's key for it).
    pub session: String,
    /// The timer's id, unique within its session.
    pub id: String,
    /// When it is due, in Unix milliseconds.
    pub due_unix_ms: u64,
    /// What the container needs to fire it (opaque here).
    pub payload: Vec<u8>,
}

/// A cluster member announcing itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// The node's name, unique in the cluster.
    pub node: String,
    /// Where it takes SIP (`host:port`).
    pub sip: String,
    /// Where it takes HTTP (`host:port`).
    pub http: String,
}

/// One compare-and-set write of [`SessionStore::put_many`]; the fields are
/// the arguments of [`SessionStore::put`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The record's key.
    pub key: String,
    /// The new value.
    pub value: Vec<u8>,
    /// The version the record must have now (0: it must not exist).
    pub expected: u64,
    /// The record expires after this (None: never); each write resets it.
    pub ttl: Option<Duration>,
}

/// The operations the container needs: versioned records with
/// compare-and-set, timers taken exactly once, and cluster membership.
///
/// Both implementations have the same semantics, checked by the same tests
/// (`tests/store.rs`). Every Redis round trip of [`RedisStore`] is bounded
/// by its timeout (1 s by default; one call is one round trip, except
/// `record_count`, which scans): [`StoreError::Unavailable`] when Redis
/// cannot be reached, never a hang.
pub trait SessionStore: Send + Sync + 'static {
    /// The record at `key`, or None.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Compare-and-set write: succeeds when the stored version equals `expected`
    /// (0 = the key must not exist); returns the new version (expected + 1).
    /// `ttl`: the record expires after it (None = no expiry); each put resets it.
    ///
    /// Fails with [`StoreError::Conflict`] (and writes nothing) when the
    /// stored version is another one. An expired record counts as absent
    /// (version 0).
    fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: u64,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Compare-and-delete (expected version must match). Deleting an absent key with expected 0 is Ok.
    fn delete(
        &self,
        key: &str,
        expected: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Several puts in one round trip (pipelined on Redis); each is its own CAS; results in order.
    ///
    /// The writes are applied in order, so a later write may build on an
    /// earlier one of the same batch (expected 0 then expected 1 on one
    /// key). They are not a transaction: some may succeed while others
    /// conflict. The outer error is for the batch as a whole (Redis
    /// unreachable); the inner ones are per write.
    fn put_many(
        &self,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<Vec<Result<u64, StoreError>>, StoreError>> + Send;

    /// Schedules (or replaces, same session+id) a timer.
    fn put_timer(&self, timer: StoredTimer) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a timer; absent is Ok.
    fn remove_timer(
        &self,
        session: &str,
        id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Atomically removes and returns up to `limit` timers due at or before `now_unix_ms`,
    /// so exactly one caller (container) gets each timer.
    ///
    /// The earliest due come first.
    fn take_due_timers(
        &self,
        now_unix_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredTimer>, StoreError>> + Send;

    /// Announces a member for `ttl` (refresh before it lapses).
    ///
    /// Announcing a node again replaces its addresses and restarts its TTL.
    fn announce(
        &self,
        member: &Member,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Live members.
    ///
    /// Sorted by node name.
    fn members(&self) -> impl Future<Output = Result<Vec<Member>, StoreError>> + Send;

    /// How many records (not timers, not members) are live: for leak tests and metrics.
    ///
    /// On Redis this scans the keyspace (every primary of a cluster): it is
    /// for tests and occasional metrics, not for the per-message path.
    fn record_count(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// The store a server runs with, chosen by URL at start-up.
#[derive(Clone, Debug)]
pub enum Store {
    /// In this process only ([`MemoryStore`]).
    Memory(MemoryStore),
    /// In Redis ([`RedisStore`]).
    Redis(RedisStore),
}

impl Store {
    /// Opens the store a URL names: `memory` (or `memory://`),
    /// `redis://[user:pass@]host:port[/db]`, `redis+unix:///path[?db=N]`,
    /// `redis-cluster://[user:pass@]h1:p1,h2:p2`; optional query
    /// `?wait=1&wait_timeout_ms=50` (acknowledged replication with `WAIT`
    /// after each write), `&prefix=sb` (key prefix, default `sb`),
    /// `&timeout_ms=1000` (bound on every call).
    ///
    /// Connects to Redis before returning: [`StoreError::Unavailable`] when
    /// it cannot be reached within the timeout, [`StoreError::Config`] for a
    /// bad URL.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        match StoreConfig::parse(url)? {
            StoreConfig::Memory => Ok(Store::Memory(MemoryStore::new())),
            StoreConfig::Redis(config) => Ok(Store::Redis(RedisStore::connect(config).await?)),
        }
    }

    /// `memory` or `redis`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }
}

impl From<MemoryStore> for Store {
    fn from(store: MemoryStore) -> Store {
        Store::Memory(store)
    }
}

impl From<RedisStore> for Store {
    fn from(store: RedisStore) -> Store {
        Store::Redis(store)
    }
}

impl SessionStore for Store {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        match self {
            Store::Memory(s) => s.get(key).await,
            Store::Redis(s) => Box::pin(s.get(key)).await,
        }
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: u64,
        ttl: Option<Duration>,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Memory(s) => s.put(key, value, expected, ttl).await,
            Store::Redis(s) => Box::pin(s.put(key, value, expected, ttl)).await,
        }
    }

    async fn delete(&self, key: &str, expected: u64) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.delete(key, expected).await,
            Store::Redis(s) => Box::pin(s.delete(key, expected)).await,
        }
    }

    async fn put_many(
        &self,
        writes: Vec<Write>,
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        match self {
            Store::Memory(s) => s.put_many(writes).await,
            Store::Redis(s) => Box::pin(s.put_many(writes)).await,
        }
    }

    async fn put_timer(&self, timer: StoredTimer) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.put_timer(timer).await,
            Store::Redis(s) => Box::pin(s.put_timer(timer)).await,
        }
    }

    async fn remove_timer(&self, session: &str, id: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.remove_timer(session, id).await,
            Store::Redis(s) => Box::pin(s.remove_timer(session, id)).await,
        }
    }

    async fn take_due_timers(
        &self,
        now_unix_ms: u64,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, StoreError> {
        match self {
            Store::Memory(s) => s.take_due_timers(now_unix_ms, limit).await,
            Store::Redis(s) => Box::pin(s.take_due_timers(now_unix_ms, limit)).await,
        }
    }

    async fn announce(&self, member: &Member, ttl: Duration) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.announce(member, ttl).await,
            Store::Redis(s) => Box::pin(s.announce(member, ttl)).await,
        }
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        match self {
            Store::Memory(s) => s.members().await,
            Store::Redis(s) => Box::pin(s.members()).await,
        }
    }

    async fn record_count(&self) -> Result<usize, StoreError> {
        match self {
            Store::Memory(s) => s.record_count().await,
            Store::Redis(s) => Box::pin(s.record_count()).await,
        }
    }
}
