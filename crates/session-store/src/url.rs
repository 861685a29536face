//! Store URLs: `memory`, `redis://…`, `redis+unix://…`,
//! `redis-cluster://h1:p1,h2:p2`, with this crate's options in the query.

use std::fmt;
use std::time::Duration;

use crate::StoreError;

/// The default bound on every Redis call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The default `WAIT` timeout when `wait` is given without `wait_timeout_ms`.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_millis(100);
/// The default key prefix (a `:` is appended to the `prefix` option).
pub const DEFAULT_PREFIX: &str = "sb:";

/// Query parameters this crate reads itself.
const OURS: &[&str] = &["wait", "wait_timeout_ms", "prefix", "timeout_ms"];
/// Query parameters handed to redis-rs (single server only, except
/// `protocol`).
const PASSED: &[&str] = &["db", "user", "pass", "protocol"];

/// What a store URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// `memory` or `memory://`: a [`MemoryStore`](crate::MemoryStore).
    Memory,
    /// A Redis server or cluster: a [`RedisStore`](crate::RedisStore).
    Redis(RedisConfig),
}

/// How to reach Redis and how to use it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// The server or the cluster.
    pub target: RedisTarget,
    /// Prepended to every key, `:`-terminated (`sb:` by default; `prefix=x`
    /// in the URL gives `x:`).
    pub prefix: String,
    /// Bound on every call, connecting included (`timeout_ms`, default 1 s):
    /// past it the call fails with [`StoreError::Unavailable`].
    pub timeout: Duration,
    /// After each write, `WAIT` for this many replicas (`wait`, default 0:
    /// do not wait).
    pub wait_replicas: u32,
    /// How long `WAIT` waits (`wait_timeout_ms`, default 100 ms); below
    /// `timeout`.
    pub wait_timeout: Duration,
}

/// A single Redis server or a Redis Cluster.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// A URL redis-rs understands (`redis://…`, `redis+unix://…`), without
    /// this crate's options.
    Single(String),
    /// The seed nodes of a cluster, each as `redis://[user:pass@]host:port`.
    Cluster(Vec<String>),
}

impl RedisConfig {
    /// Defaults for one server at `url` (a redis-rs URL).
    pub fn single(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            target: RedisTarget::Single(url.into()),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            wait_replicas: 0,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
        }
    }
}

impl StoreConfig {
    /// Parses a store URL; [`StoreError::Config`] says what is wrong.
    ///
    /// ```
    /// use session_store::{RedisTarget, StoreConfig};
    ///
    /// let StoreConfig::Redis(c) =
    ///     StoreConfig::parse("redis://10.0.0.5:6379/2?wait=1&wait_timeout_ms=50&prefix=prod")?
    /// else { unreachable!() };
    /// assert_eq!(c.target, RedisTarget::Single("redis://10.0.0.5:6379/2".into()));
    /// assert_eq!((c.wait_replicas, c.wait_timeout.as_millis()), (1, 50));
    /// assert_eq!(c.prefix, "prod:");
    /// assert_eq!(StoreConfig::parse("memory")?, StoreConfig::Memory);
    /// # Ok::<(), session_store::StoreError>(())
    /// ```
    pub fn parse(url: &str) -> Result<StoreConfig, StoreError> {
        let url = url.trim();
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let (scheme, rest) = match base.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => (base.trim_end_matches(':'), ""),
        };
        let params = parse_query(query)?;
        match scheme {
            "memory" => {
                if !rest.is_empty() || !params.is_empty() {
                    return Err(config(format!(
                        "{url:?}: the memory store takes no address or options"
                    )));
                }
                Ok(StoreConfig::Memory)
            }
            "redis" | "redis+unix" | "unix" => {
                let mut config = options(url, &params)?;
                let passed = passed_query(&params);
                let single = if passed.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{passed}")
                };
                redis::IntoConnectionInfo::into_connection_info(single.as_str())
                    .map_err(|e| config_err(url, &e.to_string()))?;
                config.target = RedisTarget::Single(single);
                Ok(StoreConfig::Redis(config))
            }
            "redis-cluster" => {
                let mut config = options(url, &params)?;
                if params
                    .iter()
                    .any(|(k, _)| *k != "protocol" && PASSED.contains(k))
                {
                    return Err(config_err(
                        url,
                        "a cluster takes only `protocol` besides this crate's options \
                         (credentials go before the hosts, and a cluster has only db 0)",
                    ));
                }
                let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
                if !path.is_empty() && path != "0" {
                    return Err(config_err(url, "a cluster has only db 0"));
                }
                let (creds, hosts) = match hosts.rsplit_once('@') {
                    Some((creds, hosts)) => (format!("{creds}@"), hosts),
                    None => (String::new(), hosts),
                };
                let passed = passed_query(&params);
                let mut nodes = Vec::new();
                for host in hosts.split(',').map(str::trim) {
                    if host.is_empty() {
                        return Err(config_err(url, "empty host in the cluster's host list"));
                    }
                    let mut node = format!("redis://{creds}{host}");
                    if !passed.is_empty() {
                        node = format!("{node}/?{passed}");
                    }
                    redis::IntoConnectionInfo::into_connection_info(node.as_str())
                        .map_err(|e| config_err(url, &format!("host {host:?}: {e}")))?;
                    nodes.push(node);
                }
                config.target = RedisTarget::Cluster(nodes);
                Ok(StoreConfig::Redis(config))
            }
            "rediss" | "rediss-cluster" => Err(config_err(
                url,
                "TLS to Redis is not built in; use a local TLS tunnel or a private network",
            )),
            _ => Err(config(format!(
                "{url:?}: unknown store; expected memory, redis://host:port/db, \
                 redis+unix:///path or redis-cluster://host:port,host:port"
            ))),
        }
    }
}

fn config(message: String) -> StoreError {
    StoreError::Config(message)
}

fn config_err(url: &str, message: &str) -> StoreError {
    StoreError::Config(format!("{}: {message}", redact(url)))
}

/// `url` with any password replaced by `***`, for logs and errors.
pub(crate) fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    // `scheme://user:pass@host`
    if let Some(start) = out.find("://").map(|i| i + 3)
        && let Some(at) = out
            .get(start..)
            .and_then(|s| s.rfind('@'))
            .map(|i| i + start)
        && let Some(colon) = out
            .get(start..at)
            .and_then(|s| s.find(':'))
            .map(|i| i + start)
    {
        out.replace_range(colon + 1..at, "***");
    }
    // `?pass=…`
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("pass", _)) => "pass=***".to_owned(),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

fn parse_query(query: &str) -> Result<Vec<(&str, &str)>, StoreError> {
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !OURS.contains(&key) && !PASSED.contains(&key) {
            return Err(config(format!(
                "unknown store option {key:?}; known: {}",
                [OURS, PASSED].concat().join(", ")
            )));
        }
        if params.iter().any(|(k, _)| *k == key) {
            return Err(config(format!("store option {key:?} given twice")));
        }
        params.push((key, value));
    }
    Ok(params)
}

fn passed_query(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .filter(|(k, _)| PASSED.contains(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// This crate's options, on a config whose target the caller sets.
fn options(url: &str, params: &[(&str, &str)]) -> Result<RedisConfig, StoreError> {
    let mut config = RedisConfig::single(String::new());
    let number = |key: &str, value: &str| -> Result<u64, StoreError> {
        value
            .parse::<u64>()
            .map_err(|_| config_err(url, &format!("{key}={value:?} is not a whole number")))
    };
    let mut wait_timeout = None;
    for &(key, value) in params {
        match key {
            "wait" => {
                config.wait_replicas = u32::try_from(number(key, value)?)
                    .map_err(|_| config_err(url, "wait: too many replicas"))?;
            }
            "wait_timeout_ms" => {
                let ms = number(key, value)?;
                if ms == 0 {
                    return Err(config_err(
                        url,
                        "wait_timeout_ms=0 would make WAIT block forever",
                    ));
                }
                wait_timeout = Some(Duration::from_millis(ms));
            }
            "timeout_ms" => {
                let ms = number(key, value)?;
                if ms == 0 {
                    return Err(config_err(url, "timeout_ms must be above 0"));
                }
                config.timeout = Duration::from_millis(ms);
            }
            "prefix" => {
                let ok = value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
                if !ok {
                    return Err(config_err(
                        url,
                        "prefix: letters, digits and _ - . : only (no hash tag, no glob)",
                    ));
                }
                config.prefix = if value.is_empty() || value.ends_with(':') {
                    value.to_owned()
                } else {
                    format!("{value}:")
                };
            }
            _ => {} // passed to redis-rs
        }
    }
    config.wait_timeout = wait_timeout.unwrap_or(DEFAULT_WAIT_TIMEOUT.min(config.timeout / 2));
    if config.wait_replicas > 0 && config.wait_timeout >= config.timeout {
        return Err(config_err(
            url,
            "wait_timeout_ms must be below timeout_ms (the bound on the whole call)",
        ));
    }
    Ok(config)
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Single(url) => f.write_str(&redact(url)),
            RedisTarget::Cluster(nodes) => {
                let nodes: Vec<String> = nodes.iter().map(|n| redact(n)).collect();
                write!(f, "cluster {}", nodes.join(","))
            }
        }
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout", &self.wait_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(url: &str) -> RedisConfig {
        match StoreConfig::parse(url) {
            Ok(StoreConfig::Redis(c)) => c,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn error(url: &str) -> String {
        match StoreConfig::parse(url) {
            Err(StoreError::Config(message)) => message,
            other => panic!("{url}: expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn memory() {
        for url in ["memory", "memory://", "memory:", " memory "] {
            assert_eq!(
                StoreConfig::parse(url).unwrap(),
                StoreConfig::Memory,
                "{url}"
            );
        }
        assert!(error("memory://x").contains("no address"));
        assert!(error("memory?prefix=a").contains("no address or options"));
    }

    #[test]
    fn single_defaults() {
        let c = redis("redis://127.0.0.1:6379");
        assert_eq!(
            c.target,
            RedisTarget::Single("redis://127.0.0.1:6379".into())
        );
        assert_eq!(c.prefix, "sb:");
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.wait_replicas, 0);
        assert_eq!(c.wait_timeout, Duration::from_millis(100));
    }

    #[test]
    fn options_are_taken_out_and_redis_ones_passed() {
        let c = redis("redis://h:1/3?wait=2&wait_timeout_ms=50&prefix=p&timeout_ms=500&protocol=3");
        assert_eq!(
            c.target,
            RedisTarget::Single("redis://h:1/3?protocol=3".into())
        );
        assert_eq!(c.wait_replicas, 2);
        assert_eq!(c.wait_timeout, Duration::from_millis(50));
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert_eq!(c.prefix, "p:");
        assert_eq!(redis("redis://h?prefix=a:b:").prefix, "a:b:");
        assert_eq!(redis("redis://h?prefix=").prefix, "");
        // wait without a timeout: the default, kept under a short call timeout.
        assert_eq!(
            redis("redis://h?wait=1&timeout_ms=60").wait_timeout,
            Duration::from_millis(30)
        );
    }

    #[test]
    fn unix_socket() {
        let c = redis("redis+unix:///run/redis.sock?db=2&prefix=x");
        assert_eq!(
            c.target,
            RedisTarget::Single("redis+unix:///run/redis.sock?db=2".into())
        );
        assert_eq!(c.prefix, "x:");
        redis("unix:///tmp/r.sock");
    }

    #[test]
    fn cluster() {
        let c = redis("redis-cluster://10.0.0.1:7000,10.0.0.2:7001?prefix=c");
        assert_eq!(
            c.target,
            RedisTarget::Cluster(vec![
                "redis://10.0.0.1:7000".into(),
                "redis://10.0.0.2:7001".into()
            ])
        );
        assert_eq!(c.prefix, "c:");
        let c = redis("redis-cluster://u:secret@a:1,b:2/?protocol=3");
        assert_eq!(
            c.target,
            RedisTarget::Cluster(vec![
                "redis://u:secret@a:1/?protocol=3".into(),
                "redis://u:secret@b:2/?protocol=3".into()
            ])
        );
        assert!(!format!("{c:?}").contains("secret"));
        assert!(error("redis-cluster://a:1,,b:2").contains("empty host"));
        assert!(error("redis-cluster://a:1/2").contains("db 0"));
        assert!(error("redis-cluster://a:1?db=1").contains("only `protocol`"));
    }

    #[test]
    fn errors() {
        assert!(error("mysql://h").contains("unknown store"));
        assert!(error("redis://h?wiat=1").contains("unknown store option \"wiat\""));
        assert!(error("redis://h?wait=x").contains("not a whole number"));
        assert!(error("redis://h?wait=1&wait=2").contains("twice"));
        assert!(error("redis://h?wait=1&wait_timeout_ms=0").contains("forever"));
        assert!(error("redis://h?wait=1&wait_timeout_ms=2000").contains("below timeout_ms"));
        assert!(error("redis://h?timeout_ms=0").contains("above 0"));
        assert!(error("redis://h?prefix=a{b}").contains("hash tag"));
        assert!(error("redis://h?prefix=a*").contains("glob"));
        assert!(error("rediss://h").contains("TLS"));
    }

    #[test]
    fn passwords_do_not_leak() {
        let c = redis("redis://user:hunter2@h:1/0");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            redact("redis://user:hunter2@h:1/0"),
            "redis://user:***@h:1/0"
        );
        assert_eq!(
            redact("redis+unix:///s?db=1&pass=hunter2"),
            "redis+unix:///s?db=1&pass=***"
        );
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        assert!(!error("redis://u:hunter2@h?wait=x").contains("hunter2"));
    }
}
