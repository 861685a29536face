//! [`RedisStore`]: the store in a Redis server or a Redis Cluster.
//!
//! Every write is one Lua script (`EVALSHA`), so it is atomic on the server;
//! the key layout is in the crate documentation. Scripts are sent by hash;
//! when the server does not know one (it restarted, or a new cluster node),
//! it is loaded and the failed commands only are sent again.
//!
//! Connections: one multiplexed connection (a [`ConnectionManager`], which
//! reconnects with exponential backoff after the connection drops), or for a
//! cluster one per node (redis-rs' cluster connection, which follows slot
//! moves and reconnects). Every call is bounded by the configured timeout,
//! and a read that finds the connection dropped is retried once within it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, ErrorKind, RedisError, RedisFuture, Script, ServerError, ServerErrorKind, Value};

use crate::memory::next_version;
use crate::url::{RedisConfig, RedisTarget};
use crate::{Member, SessionStore, StoreError, StoredTimer, Versioned, Write};

/// `KEYS[1]` record hash; `ARGV`: value, expected version, new version, TTL
/// in ms (`0`: none). Returns `{1, new}` or `{0, current}`.
const PUT: &str = r"
local cur = redis.call('HGET', KEYS[1], 'v') or '0'
if cur ~= ARGV[2] then return {0, cur} end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'd', ARGV[1])
if ARGV[4] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PERSIST', KEYS[1])
end
return {1, ARGV[3]}
";

/// `KEYS[1]` record hash; `ARGV`: expected version. Returns `{1, expected}`
/// or `{0, current}`.
const DELETE: &str = r"
local cur = redis.call('HGET', KEYS[1], 'v') or '0'
if cur ~= ARGV[1] then return {0, cur} end
if cur ~= '0' then redis.call('DEL', KEYS[1]) end
return {1, cur}
";

/// `KEYS`: timers' sorted set, timers' hash; `ARGV`: field, due (ms),
/// encoded timer.
const PUT_TIMER: &str = r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
";

/// `KEYS`: timers' sorted set, timers' hash; `ARGV`: field.
const REMOVE_TIMER: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
";

/// `KEYS`: timers' sorted set, timers' hash; `ARGV`: now (ms), limit.
/// Removes and returns the encoded timers due, earliest first.
const TAKE_DUE: &str = r"
local fields = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, f in ipairs(fields) do
  local v = redis.call('HGET', KEYS[2], f)
  if v then out[#out + 1] = v end
  redis.call('ZREM', KEYS[1], f)
  redis.call('HDEL', KEYS[2], f)
end
return out
";

/// `KEYS`: members' sorted set, members' hash; `ARGV`: node, JSON, TTL (ms).
/// The lapse time is by the server's clock, the same for every container.
const ANNOUNCE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
";

/// `KEYS`: members' sorted set, members' hash. Drops the lapsed members and
/// returns the JSON of the live ones.
const MEMBERS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('ZREM', KEYS[1], n)
  redis.call('HDEL', KEYS[2], n)
end
local out = {}
for _, n in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('HGET', KEYS[2], n)
  if v then out[#out + 1] = v end
end
return out
";

/// Members are announced for at most this long (about 30 years), so the
/// lapse time stays an exact Lua number.
const MAX_MEMBER_TTL_MS: u64 = 1 << 40;

/// Keys scanned per `SCAN` round trip by [`SessionStore::record_count`].
const SCAN_COUNT: usize = 1000;

/// The store in a Redis server or a Redis Cluster; see the crate
/// documentation for the keys it uses.
///
/// Cloning is cheap: clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Cloned out for each call (an `Arc` clone); replaced when a single
    /// server turns out to be a replica now (see [`RedisStore::on_read_only`]).
    conn: RwLock<Conn>,
    /// What a single server's connection is rebuilt from.
    rebuild: Option<Rebuild>,
    config: RedisConfig,
    scripts: Scripts,
    /// `P r:`: the records' keys are this plus the record key.
    record_prefix: String,
    /// `P r:*`, for `SCAN MATCH`.
    record_pattern: String,
    timers_due: String,
    timers_data: String,
    members_exp: String,
    members_info: String,
}

struct Rebuild {
    client: redis::Client,
    config: ConnectionManagerConfig,
    last: Mutex<Option<std::time::Instant>>,
}

/// Connections are rebuilt at most this often.
const REBUILD_EVERY: Duration = Duration::from_millis(200);

struct Scripts {
    put: Script,
    delete: Script,
    put_timer: Script,
    remove_timer: Script,
    take_due: Script,
    announce: Script,
    members: Script,
    all: [&'static str; 7],
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            put: Script::new(PUT),
            delete: Script::new(DELETE),
            put_timer: Script::new(PUT_TIMER),
            remove_timer: Script::new(REMOVE_TIMER),
            take_due: Script::new(TAKE_DUE),
            announce: Script::new(ANNOUNCE),
            members: Script::new(MEMBERS),
            all: [
                PUT,
                DELETE,
                PUT_TIMER,
                REMOVE_TIMER,
                TAKE_DUE,
                ANNOUNCE,
                MEMBERS,
            ],
        }
    }
}

/// The connection, one server or a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Opens a `redis://`, `redis+unix://` or `redis-cluster://` URL (see
    /// [`Store::open`](crate::Store::open)).
    pub async fn open(url: &str) -> Result<RedisStore, StoreError> {
        match crate::StoreConfig::parse(url)? {
            crate::StoreConfig::Redis(config) => RedisStore::connect(config).await,
            crate::StoreConfig::Memory => Err(StoreError::Config(format!(
                "{url:?} names the memory store, not Redis"
            ))),
        }
    }

    /// Connects, within the configured timeout: [`StoreError::Unavailable`]
    /// when Redis cannot be reached, [`StoreError::Config`] when it refuses
    /// the credentials.
    pub async fn connect(config: RedisConfig) -> Result<RedisStore, StoreError> {
        let timeout = config.timeout;
        let mut rebuild = None;
        let conn = match &config.target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| StoreError::Config(format!("{}: {e}", config.target)))?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_secs(1))
                    .set_exponent_base(2.0)
                    .set_number_of_retries(2);
                let manager = bounded(
                    timeout,
                    &config.target,
                    ConnectionManager::new_with_config(client.clone(), manager_config.clone()),
                )
                .await?;
                rebuild = Some(Rebuild {
                    client,
                    config: manager_config,
                    last: Mutex::new(None),
                });
                Conn::Single(manager)
            }
            RedisTarget::Cluster(nodes) => {
                let client = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(4)
                    .min_retry_wait(10)
                    .max_retry_wait(500)
                    .build()
                    .map_err(|e| StoreError::Config(format!("{}: {e}", config.target)))?;
                let conn = bounded(timeout, &config.target, client.get_async_connection()).await?;
                Conn::Cluster(conn)
            }
        };
        let p = &config.prefix;
        let store = RedisStore {
            inner: Arc::new(Inner {
                conn: RwLock::new(conn),
                rebuild,
                scripts: Scripts::new(),
                record_prefix: format!("{p}r:"),
                record_pattern: format!("{p}r:*"),
                timers_due: format!("{p}{{timers}}:due"),
                timers_data: format!("{p}{{timers}}:data"),
                members_exp: format!("{p}{{members}}:exp"),
                members_info: format!("{p}{{members}}:info"),
                config,
            }),
        };
        // Not needed (a missing script is loaded on first use), but it makes
        // the first calls one round trip each.
        store.load_scripts().await?;
        Ok(store)
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The Redis key of the record `key` (for operators and tests).
    pub fn record_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.record_prefix)
    }

    fn conn(&self) -> Conn {
        self.inner
            .conn
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A single server answered `READONLY`: it was demoted to a replica by a
    /// failover. The connection stays up, so the connection manager would
    /// keep talking to it; replace the connection (lazily connected), so the
    /// next call resolves the address again and reaches whatever is the
    /// primary behind it now (a virtual IP or a DNS name that follows the
    /// failover). A cluster connection refreshes its slots by itself.
    fn on_read_only(&self) {
        let Some(rebuild) = &self.inner.rebuild else {
            return;
        };
        {
            let mut last = rebuild
                .last
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = std::time::Instant::now();
            if last.is_some_and(|at| now.duration_since(at) < REBUILD_EVERY) {
                return;
            }
            *last = Some(now);
        }
        if let Ok(manager) =
            ConnectionManager::new_lazy_with_config(rebuild.client.clone(), rebuild.config.clone())
        {
            *self
                .inner
                .conn
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Conn::Single(manager);
        }
    }

    /// Notices `READONLY` in answers (see [`on_read_only`](Self::on_read_only)).
    fn watch<'v>(&self, answers: impl IntoIterator<Item = &'v Value>) {
        let read_only = answers.into_iter().any(
            |v| matches!(v, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::ReadOnly)),
        );
        if read_only {
            self.on_read_only();
        }
    }

    fn timeout(&self) -> Duration {
        self.inner.config.timeout
    }

    async fn load_scripts(&self) -> Result<(), StoreError> {
        bounded(self.timeout(), &self.inner.config.target, async {
            let mut conn = self.conn();
            for code in self.inner.scripts.all {
                // Routed to every primary of a cluster.
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(code)
                    .query_async::<Value>(&mut conn)
                    .await?;
            }
            Ok::<(), RedisError>(())
        })
        .await
    }

    /// Runs `cmds` (each one key, or several in one slot), pipelined per
    /// node, and returns each one's answer in order; a command's own error
    /// comes back as a `Value::ServerError`. `wait`: after writes, `WAIT` for
    /// the configured replicas.
    async fn exec(&self, cmds: Vec<Op>, wait: bool) -> Result<Vec<Value>, StoreError> {
        let wait = wait && self.inner.config.wait_replicas > 0;
        bounded_store(self.timeout(), async {
            let mut answers = self.exec_once(&cmds, wait).await?;
            self.watch(&answers);
            let missing: Vec<usize> = answers
                .iter()
                .enumerate()
                .filter(|(_, v)| is_noscript(v))
                .map(|(i, _)| i)
                .collect();
            if !missing.is_empty() {
                self.load_scripts().await?;
                let again: Vec<Op> = missing
                    .iter()
                    .filter_map(|&i| cmds.get(i).cloned())
                    .collect();
                let redone = self.exec_once(&again, wait).await?;
                self.watch(&redone);
                for (i, answer) in missing.into_iter().zip(redone) {
                    if let Some(slot) = answers.get_mut(i) {
                        *slot = answer;
                    }
                }
            }
            Ok(answers)
        })
        .await
    }

    async fn exec_once(&self, cmds: &[Op], wait: bool) -> Result<Vec<Value>, StoreError> {
        let config = &self.inner.config;
        let wait_cmd = || {
            let mut c = redis::cmd("WAIT");
            c.arg(config.wait_replicas)
                .arg(config.wait_timeout.as_millis().max(1) as u64);
            c
        };
        match self.conn() {
            Conn::Single(mut conn) => {
                let mut pipe = redis::pipe();
                for op in cmds {
                    pipe.add_command(op.cmd.clone());
                }
                if wait {
                    pipe.add_command(wait_cmd());
                }
                pipe.ignore_errors();
                let mut answers: Vec<Value> = pipe.query_async(&mut conn).await.map_err(map_err)?;
                if wait {
                    self.check_wait(answers.pop())?;
                }
                Ok(answers)
            }
            Conn::Cluster(conn) => {
                // A pipeline must stay in one slot: one per slot, concurrently.
                let mut groups: HashMap<Route, Vec<usize>> = HashMap::new();
                for (i, op) in cmds.iter().enumerate() {
                    let route = Route::with_key(&op.slot_key, SlotAddr::Master);
                    groups.entry(route).or_default().push(i);
                }
                let runs = groups.into_iter().map(|(route, indices)| {
                    let mut conn = conn.clone();
                    let mut pipe = redis::pipe();
                    for &i in &indices {
                        if let Some(op) = cmds.get(i) {
                            pipe.add_command(op.cmd.clone());
                        }
                    }
                    pipe.ignore_errors();
                    let wait_cmd = wait.then(wait_cmd);
                    async move {
                        let answers: Vec<Value> =
                            pipe.query_async(&mut conn).await.map_err(map_err)?;
                        let acked = match wait_cmd {
                            Some(w) => Some(
                                conn.route_command(
                                    w,
                                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                                        route,
                                    )),
                                )
                                .await
                                .map_err(map_err)?,
                            ),
                            None => None,
                        };
                        Ok::<_, StoreError>((indices, answers, acked))
                    }
                });
                let mut out = vec![Value::Nil; cmds.len()];
                let mut first_error = None;
                for run in join_all(runs).await {
                    match run {
                        Ok((indices, answers, acked)) => {
                            for (i, answer) in indices.into_iter().zip(answers) {
                                if let Some(slot) = out.get_mut(i) {
                                    *slot = answer;
                                }
                            }
                            if let Some(acked) = acked
                                && let Err(e) = self.check_wait(Some(acked))
                            {
                                first_error.get_or_insert(e);
                            }
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                match first_error {
                    Some(e) => Err(e),
                    None => Ok(out),
                }
            }
        }
    }

    fn check_wait(&self, answer: Option<Value>) -> Result<(), StoreError> {
        let wanted = u64::from(self.inner.config.wait_replicas);
        match answer {
            Some(Value::Int(acked)) => {
                let acked = u64::try_from(acked).unwrap_or(0);
                if acked < wanted {
                    Err(StoreError::NotReplicated { acked, wanted })
                } else {
                    Ok(())
                }
            }
            Some(Value::ServerError(e)) => Err(map_server_err(&e)),
            other => Err(StoreError::Backend(format!(
                "unexpected answer to WAIT: {other:?}"
            ))),
        }
    }

    /// One command that only reads; retried once, within the timeout, when
    /// the connection had dropped (after a Redis restart the first command
    /// on the old connection fails and starts the reconnection).
    async fn read(&self, cmd: Cmd) -> Result<Value, StoreError> {
        bounded(self.timeout(), &self.inner.config.target, async {
            let mut conn = self.conn();
            match cmd.query_async::<Value>(&mut conn).await {
                Err(e) if e.is_unrecoverable_error() || e.is_io_error() => {
                    cmd.query_async::<Value>(&mut conn).await
                }
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) => {
                    self.on_read_only();
                    Err(e)
                }
                other => other,
            }
        })
        .await
    }

    /// One script call through [`exec`](Self::exec), its error mapped.
    async fn script(&self, cmd: Op, wait: bool) -> Result<Value, StoreError> {
        let answer = self.exec(vec![cmd], wait).await?.into_iter().next();
        match answer {
            Some(Value::ServerError(e)) => Err(map_server_err(&e)),
            Some(v) => Ok(v),
            None => Err(StoreError::Backend("no answer to a script".to_owned())),
        }
    }

    fn put_cmd(
        &self,
        key: &str,
        value: &[u8],
        expected: u64,
        ttl: Option<Duration>,
    ) -> Result<Op, StoreError> {
        let new = next_version(key, expected)?;
        let ttl_ms = ttl.map_or(0, |t| {
            u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        Ok(evalsha(
            &self.inner.scripts.put,
            &[&self.record_key(key)],
            |c| {
                c.arg(value).arg(expected).arg(new).arg(ttl_ms);
            },
        ))
    }

    async fn members_keys_script(
        &self,
        script: &Script,
        args: impl FnOnce(&mut Cmd),
    ) -> Result<Value, StoreError> {
        let cmd = evalsha(
            script,
            &[&self.inner.members_exp, &self.inner.members_info],
            args,
        );
        self.script(cmd, false).await
    }

    fn timers_cmd(&self, script: &Script, args: impl FnOnce(&mut Cmd)) -> Op {
        evalsha(
            script,
            &[&self.inner.timers_due, &self.inner.timers_data],
            args,
        )
    }

    /// The primaries of the cluster, as `(host, port)`.
    async fn primaries(
        &self,
        conn: &mut ClusterConnection,
    ) -> Result<Vec<(String, u16)>, StoreError> {
        let slots = conn
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
            .map_err(map_err)?;
        let mut primaries = Vec::new();
        let Value::Array(ranges) = slots else {
            return Err(StoreError::Backend(format!(
                "CLUSTER SLOTS answered {slots:?}"
            )));
        };
        for range in ranges {
            // [start, end, [host, port, id, ...], replicas...]
            if let Value::Array(fields) = range
                && let Some(Value::Array(primary)) = fields.get(2)
                && let (Some(host), Some(Value::Int(port))) = (primary.first(), primary.get(1))
            {
                let host = match host {
                    Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    Value::SimpleString(s) => s.clone(),
                    _ => continue,
                };
                let Ok(port) = u16::try_from(*port) else {
                    continue;
                };
                if !primaries.contains(&(host.clone(), port)) {
                    primaries.push((host, port));
                }
            }
        }
        Ok(primaries)
    }

    /// The record keys on one node, by `SCAN`, each round trip bounded.
    async fn scan_node(
        &self,
        conn: &mut Conn,
        node: Option<&(String, u16)>,
        keys: &mut HashSet<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let mut cursor = 0u64;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(&self.inner.record_pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let answer = bounded(self.timeout(), &self.inner.config.target, async {
                match (&mut *conn, node) {
                    (Conn::Cluster(c), Some((host, port))) => {
                        c.route_command(
                            cmd,
                            RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                host: host.clone(),
                                port: *port,
                            }),
                        )
                        .await
                    }
                    (c, _) => cmd.query_async::<Value>(c).await,
                }
            })
            .await?;
            let (next, batch): (String, Vec<Vec<u8>>) =
                redis::from_redis_value(answer).map_err(|e| StoreError::Backend(e.to_string()))?;
            keys.extend(batch);
            cursor = next
                .parse()
                .map_err(|_| StoreError::Backend(format!("SCAN cursor {next:?}")))?;
            if cursor == 0 {
                return Ok(());
            }
        }
    }
}

/// A command with the key that decides its cluster slot.
#[derive(Clone)]
struct Op {
    cmd: Cmd,
    slot_key: String,
}

/// `EVALSHA` of `script` on `keys` (at least one, all in one slot), with
/// the arguments `args` adds.
fn evalsha(script: &Script, keys: &[&str], args: impl FnOnce(&mut Cmd)) -> Op {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len());
    for key in keys {
        cmd.arg(*key);
    }
    args(&mut cmd);
    Op {
        cmd,
        slot_key: keys.first().map(|k| (*k).to_owned()).unwrap_or_default(),
    }
}

fn is_noscript(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript))
}

/// `fut` within `timeout`, its redis error mapped; Unavailable past it.
async fn bounded<T>(
    timeout: Duration,
    target: &RedisTarget,
    fut: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result.map_err(map_err),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer from Redis ({target}) within {timeout:?}"
        ))),
    }
}

async fn bounded_store<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer from Redis within {timeout:?}"
        ))),
    }
}

/// Which redis errors mean "unreachable for now" (503) and which a bug or
/// a misconfiguration.
fn map_err(e: RedisError) -> StoreError {
    match e.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound | ErrorKind::Parse => {
            StoreError::Unavailable(e.to_string())
        }
        ErrorKind::Server(kind) if transient(kind) => StoreError::Unavailable(e.to_string()),
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig => {
            StoreError::Config(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

fn map_server_err(e: &ServerError) -> StoreError {
    match e.kind() {
        Some(kind) if transient(kind) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

fn transient(kind: ServerErrorKind) -> bool {
    matches!(
        kind,
        ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask
    )
}

/// The answer of [`PUT`] or [`DELETE`]: `Ok(version)` or the conflict.
fn cas_answer(key: &str, expected: u64, answer: Value) -> Result<u64, StoreError> {
    let (won, version): (i64, String) = match answer {
        Value::ServerError(e) => return Err(map_server_err(&e)),
        other => redis::from_redis_value(other)
            .map_err(|e| StoreError::Backend(format!("compare-and-set answer: {e}")))?,
    };
    let version: u64 = version
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("version {version:?} of {key:?}")))?;
    if won == 1 {
        Ok(version)
    } else {
        Err(StoreError::Conflict {
            key: key.to_owned(),
            expected,
            current: version,
        })
    }
}

/// The timer's field in the timers' hash and sorted set: unambiguous for
/// any session and id.
fn timer_field(session: &str, id: &str) -> String {
    format!("{}:{session}{id}", session.len())
}

/// Encoding version of [`encode_timer`].
const TIMER_FORMAT: u8 = 1;

/// `[1][session len u32][session][id len u32][id][due u64][payload]`, big
/// endian.
fn encode_timer(t: &StoredTimer) -> Result<Vec<u8>, StoreError> {
    let len = |s: &str| {
        u32::try_from(s.len())
            .map(u32::to_be_bytes)
            .map_err(|_| StoreError::Backend("timer session or id over 4 GiB".to_owned()))
    };
    let mut out =
        Vec::with_capacity(1 + 4 + t.session.len() + 4 + t.id.len() + 8 + t.payload.len());
    out.push(TIMER_FORMAT);
    out.extend_from_slice(&len(&t.session)?);
    out.extend_from_slice(t.session.as_bytes());
    out.extend_from_slice(&len(&t.id)?);
    out.extend_from_slice(t.id.as_bytes());
    out.extend_from_slice(&t.due_unix_ms.to_be_bytes());
    out.extend_from_slice(&t.payload);
    Ok(out)
}

fn decode_timer(bytes: &[u8]) -> Result<StoredTimer, StoreError> {
    struct Cursor<'a>(&'a [u8]);
    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let (head, tail) = self.0.split_at_checked(n)?;
            self.0 = tail;
            Some(head)
        }
        fn string(&mut self) -> Option<String> {
            let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
            String::from_utf8(self.take(usize::try_from(len).ok()?)?.to_vec()).ok()
        }
    }
    let corrupt = || StoreError::Corrupt(format!("timer of {} bytes", bytes.len()));
    let mut cursor = Cursor(bytes);
    let format = cursor.take(1).ok_or_else(corrupt)?;
    if format != [TIMER_FORMAT] {
        return Err(StoreError::Corrupt(format!("timer format {format:?}")));
    }
    let session = cursor.string().ok_or_else(corrupt)?;
    let id = cursor.string().ok_or_else(corrupt)?;
    let due = cursor
        .take(8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .ok_or_else(corrupt)?;
    Ok(StoredTimer {
        session,
        id,
        due_unix_ms: u64::from_be_bytes(due),
        // What is left after the fixed fields is the payload.
        payload: cursor.0.to_vec(),
    })
}

fn bulk_list(answer: Value) -> Result<Vec<Vec<u8>>, StoreError> {
    match answer {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::BulkString(b) => Some(Ok(b)),
                Value::Nil => None,
                other => Some(Err(StoreError::Backend(format!(
                    "expected strings, got {other:?}"
                )))),
            })
            .collect(),
        Value::Nil => Ok(Vec::new()),
        other => Err(StoreError::Backend(format!(
            "expected a list, got {other:?}"
        ))),
    }
}

impl SessionStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.record_key(key)).arg("v").arg("d");
        let answer = self.read(cmd).await?;
        let (version, value): (Option<String>, Option<Vec<u8>>) =
            redis::from_redis_value(answer)
                .map_err(|e| StoreError::Corrupt(format!("record {key:?}: {e}")))?;
        match (version, value) {
            (None, _) => Ok(None),
            (Some(version), Some(value)) => {
                let version = version
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("version {version:?} of {key:?}")))?;
                Ok(Some(Versioned { version, value }))
            }
            (Some(_), None) => Err(StoreError::Corrupt(format!("record {key:?} has no value"))),
        }
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: u64,
        ttl: Option<Duration>,
    ) -> Result<u64, StoreError> {
        let cmd = self.put_cmd(key, &value, expected, ttl)?;
        let answer = self.script(cmd, true).await?;
        cas_answer(key, expected, answer)
    }

    async fn delete(&self, key: &str, expected: u64) -> Result<(), StoreError> {
        let cmd = evalsha(&self.inner.scripts.delete, &[&self.record_key(key)], |c| {
            c.arg(expected);
        });
        let answer = self.script(cmd, true).await?;
        cas_answer(key, expected, answer).map(|_| ())
    }

    async fn put_many(
        &self,
        writes: Vec<Write>,
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        // A write that cannot even be built (version overflow) fails alone.
        let mut results: Vec<Option<Result<u64, StoreError>>> = Vec::with_capacity(writes.len());
        let mut cmds = Vec::with_capacity(writes.len());
        for w in &writes {
            match self.put_cmd(&w.key, &w.value, w.expected, w.ttl) {
                Ok(cmd) => {
                    cmds.push(cmd);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let mut answers = self.exec(cmds, true).await?.into_iter();
        Ok(writes
            .iter()
            .zip(results)
            .map(|(w, result)| match result {
                Some(done) => done,
                None => match answers.next() {
                    Some(answer) => cas_answer(&w.key, w.expected, answer),
                    None => Err(StoreError::Backend("missing pipeline answer".to_owned())),
                },
            })
            .collect())
    }

    async fn put_timer(&self, timer: StoredTimer) -> Result<(), StoreError> {
        let encoded = encode_timer(&timer)?;
        let field = timer_field(&timer.session, &timer.id);
        let cmd = self.timers_cmd(&self.inner.scripts.put_timer, |c| {
            c.arg(field).arg(timer.due_unix_ms).arg(encoded);
        });
        self.script(cmd, true).await.map(|_| ())
    }

    async fn remove_timer(&self, session: &str, id: &str) -> Result<(), StoreError> {
        let cmd = self.timers_cmd(&self.inner.scripts.remove_timer, |c| {
            c.arg(timer_field(session, id));
        });
        self.script(cmd, true).await.map(|_| ())
    }

    async fn take_due_timers(
        &self,
        now_unix_ms: u64,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let cmd = self.timers_cmd(&self.inner.scripts.take_due, |c| {
            c.arg(now_unix_ms).arg(limit);
        });
        // No WAIT: a NotReplicated error would lose the timers just taken.
        let answer = self.script(cmd, false).await?;
        bulk_list(answer)?
            .iter()
            .map(|bytes| decode_timer(bytes))
            .collect()
    }

    async fn announce(&self, member: &Member, ttl: Duration) -> Result<(), StoreError> {
        let json = serde_json::to_vec(member)
            .map_err(|e| StoreError::Backend(format!("member as JSON: {e}")))?;
        let ttl_ms = u64::try_from(ttl.as_millis())
            .unwrap_or(u64::MAX)
            .min(MAX_MEMBER_TTL_MS);
        self.members_keys_script(&self.inner.scripts.announce, |c| {
            c.arg(&member.node).arg(json).arg(ttl_ms);
        })
        .await
        .map(|_| ())
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let answer = self
            .members_keys_script(&self.inner.scripts.members, |_| {})
            .await?;
        let mut members = bulk_list(answer)?
            .iter()
            .map(|json| {
                serde_json::from_slice::<Member>(json)
                    .map_err(|e| StoreError::Corrupt(format!("member: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        members.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(members)
    }

    async fn record_count(&self) -> Result<usize, StoreError> {
        let mut keys = HashSet::new();
        let mut conn = self.conn();
        match &mut conn {
            Conn::Cluster(cluster) => {
                let primaries = bounded_store(self.timeout(), self.primaries(cluster)).await?;
                for node in &primaries {
                    self.scan_node(&mut conn, Some(node), &mut keys).await?;
                }
            }
            Conn::Single(_) => self.scan_node(&mut conn, None, &mut keys).await?,
        }
        Ok(keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_round_trip() {
        let t = StoredTimer {
            session: "s:1".into(),
            id: "t{x}".into(),
            due_unix_ms: 1_700_000_000_123,
            payload: vec![0, 1, 2, 255],
        };
        assert_eq!(decode_timer(&encode_timer(&t).unwrap()).unwrap(), t);
        let empty = StoredTimer {
            session: String::new(),
            id: String::new(),
            due_unix_ms: 0,
            payload: Vec::new(),
        };
        assert_eq!(decode_timer(&encode_timer(&empty).unwrap()).unwrap(), empty);
        let bytes = encode_timer(&t).unwrap();
        for cut in 0..(bytes.len() - t.payload.len()) {
            assert!(
                matches!(decode_timer(&bytes[..cut]), Err(StoreError::Corrupt(_))),
                "{cut}"
            );
        }
        assert!(decode_timer(&[9]).is_err());
    }

    #[test]
    fn timer_fields_are_unambiguous() {
        assert_ne!(timer_field("ab", "c"), timer_field("a", "bc"));
        assert_eq!(timer_field("ab", "c"), "2:abc");
    }
}
