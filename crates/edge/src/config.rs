//! The edge's configuration: the TOML file, its validation, and the typed
//! [`EdgeConfig`] the edge runs with.
//!
//! Two stages (the sozu way): the file deserializes into `File`
//! (`deny_unknown_fields`), then [`EdgeConfig::from_source`] checks every
//! value and reports each fault with the file, line and field. The typed
//! config has public fields, so a program (`switchboard dev`) can also build
//! one directly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config_file::{ConfigError, ConfigSource};
use serde::Deserialize;

/// The validated configuration of one edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// This edge's name (`[a-z0-9-]{1,32}`), in logs and metrics.
    pub node: String,
    /// The cluster's public address `host:port` (the sprayer's VIP, or this
    /// edge in a one-edge set-up): the sent-by of the edge's Via, the same on
    /// every edge, and the address that means "the cluster" in a Route or
    /// Request-URI.
    pub public: String,
    /// What to listen on.
    pub listen: Listen,
    /// What initial requests are hashed on.
    pub affinity_key: AffinityKey,
    /// Active health checks.
    pub health: HealthConfig,
    /// The containers behind this edge (static: membership never removes
    /// them).
    pub containers: Vec<ContainerConfig>,
    /// Where containers announce themselves (`members` in the file);
    /// `None`: the static list only.
    pub members: Option<MembersConfig>,
    /// Message size and per-source admission limits (`[limits]`).
    pub limits: LimitsConfig,
    /// The file this config came from (`POST /_sb/admin/reload` re-reads
    /// its container list); `None` for a config built in code.
    pub source: Option<PathBuf>,
}

/// Listening addresses. Port 0 binds an ephemeral port
/// ([`crate::Edge::sip_addr`] and [`crate::Edge::http_addr`] tell which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// UDP sockets (the first one also talks to the containers).
    pub udp: Vec<SocketAddr>,
    /// Reader threads per UDP address, each with its own socket on that
    /// address (`SO_REUSEPORT`); `0`: one per core.
    pub udp_threads: usize,
    /// TCP listeners.
    pub tcp: Vec<SocketAddr>,
    /// TLS listeners (need [`Listen::tls_cert`]).
    pub tls: Vec<SocketAddr>,
    /// WebSocket listeners (RFC 7118).
    pub ws: Vec<SocketAddr>,
    /// Secure WebSocket listeners (need [`Listen::tls_cert`]).
    pub wss: Vec<SocketAddr>,
    /// PEM certificate chain and key files for TLS and WSS.
    pub tls_cert: Option<(PathBuf, PathBuf)>,
    /// The HTTP port: reverse proxy, and the edge's own `/_sb/` routes.
    pub http: SocketAddr,
}

/// The most UDP reader threads per address `[listen] udp_threads` accepts.
pub const MAX_UDP_THREADS: usize = 64;

/// What an initial request (no affinity token) is hashed on (CLUSTER.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AffinityKey {
    /// The Call-ID (default).
    #[default]
    CallId,
    /// The user part of the To URI (a REGISTER and the INVITEs to that
    /// user meet on one container).
    ToUser,
    /// The user part of the From URI.
    FromUser,
    /// The value of a header (the Call-ID when it is absent).
    Header(String),
}

impl AffinityKey {
    fn parse(s: &str) -> Option<AffinityKey> {
        match s {
            "call-id" => Some(AffinityKey::CallId),
            "to-user" => Some(AffinityKey::ToUser),
            "from-user" => Some(AffinityKey::FromUser),
            other => {
                let name = other.strip_prefix("header:")?;
                let token = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
                token.then(|| AffinityKey::Header(name.to_owned()))
            }
        }
    }
}

/// Active health checks of the containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time between two probes of a container.
    pub interval: Duration,
    /// Time a probe may take before it counts as failed.
    pub timeout: Duration,
    /// Consecutive successes to mark a down container up.
    pub rise: u32,
    /// Consecutive failures to mark an up container down.
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> HealthConfig {
        HealthConfig {
            interval: Duration::from_millis(1000),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 2,
        }
    }
}

/// Limits on what one peer can make the edge do (`[limits]`): the size of
/// a message, and how many messages one source may send per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// The largest message in bytes: a larger datagram is dropped and
    /// counted (`reason="too_large"`), a larger stream message closes its
    /// connection. At most 65,535 (a UDP datagram).
    pub max_message_size: u32,
    /// Messages per second one source may send, sustained (a token bucket
    /// refilled at this rate); `0` turns the limit off. Messages from the
    /// containers are never limited.
    pub per_source_rps: u32,
    /// Messages one source may send at once above the sustained rate (the
    /// bucket's size; at least 1 when the limit is on).
    pub per_source_burst: u32,
    /// What a "source" is.
    pub per_source_key: SourceKey,
    /// Sources tracked at once (memory bound: about 100 bytes each); when
    /// the table is full, sources whose bucket has refilled are forgotten
    /// first, then the least indebted.
    pub max_sources: usize,
}

impl Default for LimitsConfig {
    /// 65,535-byte messages; 10,000 messages per second and a burst of
    /// 20,000 per source address; 65,536 sources tracked.
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_message_size: 65_535,
            per_source_rps: 10_000,
            per_source_burst: 20_000,
            per_source_key: SourceKey::Address,
            max_sources: 65_536,
        }
    }
}

/// What the per-source admission limit counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKey {
    /// The source IP address and port (default): right behind the sprayer,
    /// which gives every client flow its own port on one IP address.
    #[default]
    Address,
    /// The source IP address (an IPv6 address by its /64 prefix): right
    /// when clients reach the edge directly.
    Ip,
}

/// Cluster membership from a session store: the containers announce
/// themselves there with a TTL (`SessionStore::announce`), and the edge
/// polls `members()` and reconciles its cluster view with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersConfig {
    /// A session-store URL (`redis://host:port`, `redis-cluster://...`,
    /// `memory`; see docs/SESSION-STORE.md), checked when the config is
    /// loaded. Credentials in it are not logged.
    pub url: String,
    /// Time between two polls of `members()` (default 1 s).
    pub interval: Duration,
}

/// The default time between two membership polls.
pub const DEFAULT_MEMBERS_INTERVAL: Duration = Duration::from_millis(1000);

/// One container behind the edge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerConfig {
    /// The container's node id (`[a-z0-9-]{1,32}`), the node part of its
    /// affinity tokens.
    pub node: String,
    /// The container's UDP SIP address; also the source address of the
    /// requests it sends out, which is how the edge knows a message comes
    /// "from inside".
    pub sip: SocketAddr,
    /// The container's HTTP address (reverse proxy target, `/_sb/health`
    /// probes); `None`: SIP only.
    pub http: Option<SocketAddr>,
    /// Rendezvous weight (default 1; 0 takes no new sessions by hash).
    pub weight: u32,
}

// ---- the file -----------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    node: String,
    public: String,
    listen: FileListen,
    affinity_key: Option<String>,
    #[serde(default)]
    health: FileHealth,
    #[serde(default)]
    containers: Vec<FileContainer>,
    members: Option<String>,
    members_interval_ms: Option<u64>,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_message_size: Option<u32>,
    per_source_rps: Option<u32>,
    per_source_burst: Option<u32>,
    per_source_key: Option<String>,
    max_sources: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListen {
    #[serde(default)]
    udp: Vec<String>,
    udp_threads: Option<usize>,
    #[serde(default)]
    tcp: Vec<String>,
    #[serde(default)]
    tls: Vec<String>,
    #[serde(default)]
    ws: Vec<String>,
    #[serde(default)]
    wss: Vec<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    http: String,
    /// Accepted here too (where the first examples put it).
    affinity_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHealth {
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    rise: Option<u32>,
    fall: Option<u32>,
}

/// One `[[containers]]` entry as written (also the JSON body of
/// `POST /_sb/admin/containers`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileContainer {
    pub(crate) node: String,
    pub(crate) sip: String,
    pub(crate) http: Option<String>,
    pub(crate) weight: Option<u32>,
}

/// Whether `s` is a node id: `[a-z0-9-]{1,32}` (CLUSTER.md).
#[must_use]
pub fn is_node_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl FileContainer {
    /// Validates one container; `err(field, message)` builds the error.
    pub(crate) fn validate<E>(
        &self,
        err: impl Fn(&str, String) -> E,
    ) -> Result<ContainerConfig, E> {
        if !is_node_id(&self.node) {
            return Err(err(
                "node",
                format!("{:?} is not a node id ([a-z0-9-]{{1,32}})", self.node),
            ));
        }
        let sip: SocketAddr = self.sip.parse().map_err(|_| {
            err(
                "sip",
                format!("{:?} is not an IP address and port", self.sip),
            )
        })?;
        let http = match &self.http {
            None => None,
            Some(h) => Some(
                h.parse::<SocketAddr>()
                    .map_err(|_| err("http", format!("{h:?} is not an IP address and port")))?,
            ),
        };
        Ok(ContainerConfig {
            node: self.node.clone(),
            sip,
            http,
            weight: self.weight.unwrap_or(1),
        })
    }
}

fn addrs(src: &ConfigSource, field: &str, list: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse().map_err(|_| {
                src.error_at(
                    &format!("{field}[{i}]"),
                    format!("{a:?} is not an IP address and port"),
                )
            })
        })
        .collect()
}

/// Whether `s` is `host:port` with a non-empty host and a port.
fn is_host_port(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && port.parse::<u16>().is_ok()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }
        None => false,
    }
}

/// Validates the containers of a parsed file (shared with reload).
fn containers(
    src: &ConfigSource,
    list: &[FileContainer],
) -> Result<Vec<ContainerConfig>, ConfigError> {
    let mut out: Vec<ContainerConfig> = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let valid = c.validate(|f, m| src.error_at(&format!("containers[{i}].{f}"), m))?;
        if out.iter().any(|o| o.node == valid.node) {
            return Err(src.error_at(
                &format!("containers[{i}].node"),
                format!("node {} appears twice", valid.node),
            ));
        }
        out.push(valid);
    }
    Ok(out)
}

/// Validates `[limits]`.
fn limits(src: &ConfigSource, file: &FileLimits) -> Result<LimitsConfig, ConfigError> {
    let d = LimitsConfig::default();
    let limits = LimitsConfig {
        max_message_size: file.max_message_size.unwrap_or(d.max_message_size),
        per_source_rps: file.per_source_rps.unwrap_or(d.per_source_rps),
        per_source_burst: file.per_source_burst.unwrap_or(d.per_source_burst),
        per_source_key: match file.per_source_key.as_deref() {
            None => d.per_source_key,
            Some("address") => SourceKey::Address,
            Some("ip") => SourceKey::Ip,
            Some(_) => {
                return Err(src.error_at("limits.per_source_key", "must be address or ip"));
            }
        },
        max_sources: file.max_sources.unwrap_or(d.max_sources),
    };
    // The smallest SIP request worth forwarding is a few hundred bytes.
    if !(256..=65_535).contains(&limits.max_message_size) {
        return Err(src.error_at("limits.max_message_size", "must be 256 to 65535 bytes"));
    }
    if limits.per_source_rps > 0 && limits.per_source_burst == 0 {
        return Err(src.error_at(
            "limits.per_source_burst",
            "must be at least 1 (per_source_rps = 0 turns the limit off)",
        ));
    }
    if limits.max_sources == 0 {
        return Err(src.error_at("limits.max_sources", "must be at least 1"));
    }
    Ok(limits)
}

/// Validates `members` and `members_interval_ms`.
fn members(src: &ConfigSource, file: &File) -> Result<Option<MembersConfig>, ConfigError> {
    let Some(url) = &file.members else {
        if file.members_interval_ms.is_some() {
            return Err(src.error_at("members_interval_ms", "needs members (a store URL)"));
        }
        return Ok(None);
    };
    if let Err(e) = session_store::StoreConfig::parse(url) {
        return Err(src.error_at("members", format!("not a session-store URL: {e}")));
    }
    let interval = file
        .members_interval_ms
        .map_or(DEFAULT_MEMBERS_INTERVAL, Duration::from_millis);
    if interval.is_zero() {
        return Err(src.error_at("members_interval_ms", "must be at least 1"));
    }
    Ok(Some(MembersConfig {
        url: url.clone(),
        interval,
    }))
}

impl EdgeConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<EdgeConfig, ConfigError> {
        let src = ConfigSource::read(path)?;
        let mut config = EdgeConfig::from_source(&src)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Validates a config from its text (`src.path()` names it in errors).
    /// `source` is left `None` (no reload) unless the text came from a file
    /// read by [`EdgeConfig::load`].
    pub fn from_source(src: &ConfigSource) -> Result<EdgeConfig, ConfigError> {
        let file: File = src.parse()?;
        if !is_node_id(&file.node) {
            return Err(src.error_at("node", "must be a node id ([a-z0-9-]{1,32})"));
        }
        if !is_host_port(&file.public) {
            return Err(src.error_at("public", "must be host:port (the cluster's public address)"));
        }
        let affinity_key = match (&file.affinity_key, &file.listen.affinity_key) {
            (Some(_), Some(_)) => {
                return Err(src.error_at(
                    "listen.affinity_key",
                    "given twice (top level and [listen])",
                ));
            }
            (Some(k), None) => Some(("affinity_key", k)),
            (None, Some(k)) => Some(("listen.affinity_key", k)),
            (None, None) => None,
        };
        let affinity_key = match affinity_key {
            None => AffinityKey::CallId,
            Some((field, k)) => AffinityKey::parse(k).ok_or_else(|| {
                src.error_at(
                    field,
                    "must be call-id, to-user, from-user or header:<Name>",
                )
            })?,
        };
        let l = &file.listen;
        let listen = Listen {
            udp: addrs(src, "listen.udp", &l.udp)?,
            udp_threads: l.udp_threads.unwrap_or(0),
            tcp: addrs(src, "listen.tcp", &l.tcp)?,
            tls: addrs(src, "listen.tls", &l.tls)?,
            ws: addrs(src, "listen.ws", &l.ws)?,
            wss: addrs(src, "listen.wss", &l.wss)?,
            tls_cert: match (&l.tls_cert, &l.tls_key) {
                (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(src.error_at("listen.tls_cert", "needs listen.tls_key"));
                }
                (None, Some(_)) => {
                    return Err(src.error_at("listen.tls_key", "needs listen.tls_cert"));
                }
            },
            http: l
                .http
                .parse()
                .map_err(|_| src.error_at("listen.http", "must be an IP address and port"))?,
        };
        if listen.udp_threads > MAX_UDP_THREADS {
            return Err(src.error_at(
                "listen.udp_threads",
                format!("must be 0 (one per core) to {MAX_UDP_THREADS}"),
            ));
        }
        if (!listen.tls.is_empty() || !listen.wss.is_empty()) && listen.tls_cert.is_none() {
            return Err(src.error_at("listen", "tls and wss listeners need tls_cert and tls_key"));
        }
        if listen.udp.is_empty()
            && listen.tcp.is_empty()
            && listen.tls.is_empty()
            && listen.ws.is_empty()
            && listen.wss.is_empty()
        {
            return Err(src.error_at(
                "listen",
                "needs at least one SIP listener (udp, tcp, tls, ws or wss)",
            ));
        }
        let d = HealthConfig::default();
        let h = &file.health;
        let health = HealthConfig {
            interval: h.interval_ms.map_or(d.interval, Duration::from_millis),
            timeout: h.timeout_ms.map_or(d.timeout, Duration::from_millis),
            rise: h.rise.unwrap_or(d.rise),
            fall: h.fall.unwrap_or(d.fall),
        };
        if health.interval.is_zero() {
            return Err(src.error_at("health.interval_ms", "must be at least 1"));
        }
        if health.timeout.is_zero() {
            return Err(src.error_at("health.timeout_ms", "must be at least 1"));
        }
        if health.rise == 0 {
            return Err(src.error_at("health.rise", "must be at least 1"));
        }
        if health.fall == 0 {
            return Err(src.error_at("health.fall", "must be at least 1"));
        }
        let members = members(src, &file)?;
        let limits = limits(src, &file.limits)?;
        Ok(EdgeConfig {
            node: file.node,
            public: file.public,
            listen,
            affinity_key,
            health,
            containers: containers(src, &file.containers)?,
            members,
            limits,
            source: None,
        })
    }

    /// Re-reads the container list of the file at `path` (a reload): the
    /// whole file is validated, only its containers are used.
    pub fn reload_containers(path: &Path) -> Result<Vec<ContainerConfig>, ConfigError> {
        EdgeConfig::load(path).map(|c| c.containers)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const GOOD: &str = r#"
node = "e1"
public = "127.0.0.1:5060"
[listen]
udp = ["127.0.0.1:5070"]
tcp = ["127.0.0.1:5070"]
http = "127.0.0.1:8081"
affinity_key = "call-id"
[health]
interval_ms = 1000
timeout_ms = 500
rise = 2
fall = 2
[[containers]]
node = "c1"
sip = "127.0.0.1:5080"
http = "127.0.0.1:8090"
weight = 1
[[containers]]
node = "c2"
sip = "127.0.0.1:5081"
"#;

    fn parse(text: &str) -> Result<EdgeConfig, ConfigError> {
        EdgeConfig::from_source(&ConfigSource::from_text("edge.toml", text))
    }

    #[test]
    fn udp_threads_default_to_one_per_core_and_are_bounded() {
        assert_eq!(parse(GOOD).unwrap().listen.udp_threads, 0);
        let two = GOOD.replace("[listen]\n", "[listen]\nudp_threads = 2\n");
        assert_eq!(parse(&two).unwrap().listen.udp_threads, 2);
        let many = GOOD.replace("[listen]\n", "[listen]\nudp_threads = 65\n");
        let e = parse(&many).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("listen.udp_threads"));
    }

    #[test]
    fn the_documented_example_parses() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.node, "e1");
        assert_eq!(
            c.listen.udp,
            ["127.0.0.1:5070".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(c.affinity_key, AffinityKey::CallId);
        assert_eq!(c.health.interval, Duration::from_secs(1));
        assert_eq!(c.containers.len(), 2);
        assert_eq!(c.containers[1].http, None);
        assert_eq!(c.containers[1].weight, 1);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad = GOOD.replace("sip = \"127.0.0.1:5081\"", "sip = \"nowhere\"");
        let e = parse(&bad).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("containers[1].sip"));
        assert_eq!(e.line, Some(21));
        assert!(e.to_string().starts_with("edge.toml:21"), "{e}");

        let e = parse(&GOOD.replace("rise = 2", "rise = 0")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("health.rise"));

        let e = parse(&GOOD.replace("\"call-id\"", "\"via\"")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("listen.affinity_key"));

        let e = parse(&GOOD.replace("weight = 1", "weight = 1\ncolour = 3")).unwrap_err();
        assert!(e.message.contains("colour"), "{e}");

        let e = parse(&GOOD.replace("node = \"c2\"", "node = \"c1\"")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("containers[1].node"));

        let e = parse(&GOOD.replace("public = \"127.0.0.1:5060\"", "public = \"x\"")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("public"));
    }

    #[test]
    fn members_url_and_interval() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.members, None);
        let with = |extra: &str| GOOD.replacen("[listen]", &format!("{extra}\n[listen]"), 1);
        let c = parse(&with("members = \"redis://127.0.0.1:6379\"")).unwrap();
        let m = c.members.unwrap();
        assert_eq!(m.url, "redis://127.0.0.1:6379");
        assert_eq!(m.interval, DEFAULT_MEMBERS_INTERVAL);
        let c = parse(&with(
            "members = \"redis://127.0.0.1:6379/0?timeout_ms=200\"\nmembers_interval_ms = 250",
        ))
        .unwrap();
        assert_eq!(c.members.unwrap().interval, Duration::from_millis(250));

        let e = parse(&with("members = \"redis://h:1?wiat=1\"")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("members"));
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().starts_with("edge.toml:4"), "{e}");
        let e = parse(&with("members = \"postgres://x\"")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("members"));
        let e = parse(&with("members = \"memory\"\nmembers_interval_ms = 0")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("members_interval_ms"));
        let e = parse(&with("members_interval_ms = 100")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("members_interval_ms"));
    }

    #[test]
    fn limits_default_and_validate() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.limits, LimitsConfig::default());
        let with = |extra: &str| format!("{GOOD}\n[limits]\n{extra}\n");
        let c = parse(&with(
            "max_message_size = 4096\nper_source_rps = 50\nper_source_burst = 80\n\
             per_source_key = \"ip\"\nmax_sources = 1000",
        ))
        .unwrap();
        assert_eq!(
            c.limits,
            LimitsConfig {
                max_message_size: 4096,
                per_source_rps: 50,
                per_source_burst: 80,
                per_source_key: SourceKey::Ip,
                max_sources: 1000,
            }
        );
        // 0 turns the limit off; the burst then does not matter.
        let c = parse(&with("per_source_rps = 0\nper_source_burst = 0")).unwrap();
        assert_eq!(c.limits.per_source_rps, 0);
        for (text, field) in [
            ("per_source_burst = 0", "limits.per_source_burst"),
            ("max_message_size = 70000", "limits.max_message_size"),
            ("max_message_size = 10", "limits.max_message_size"),
            ("per_source_key = \"port\"", "limits.per_source_key"),
            ("max_sources = 0", "limits.max_sources"),
        ] {
            let e = parse(&with(text)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{text}: {e}");
        }
        let e = parse(&with("per_source_pps = 1")).unwrap_err();
        assert!(e.message.contains("per_source_pps"), "{e}");
    }

    #[test]
    fn the_config_reference_in_edge_md_parses() {
        let doc = include_str!("../../../docs/EDGE.md");
        let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
        let len = doc[start..].find("```").unwrap();
        let c = parse(&doc[start..start + len]).unwrap();
        assert_eq!(c.containers.len(), 1);
        let m = c.members.unwrap();
        assert_eq!(m.url, "redis://127.0.0.1:6379");
        assert_eq!(m.interval, DEFAULT_MEMBERS_INTERVAL);
    }

    #[test]
    fn affinity_keys() {
        assert_eq!(AffinityKey::parse("to-user"), Some(AffinityKey::ToUser));
        assert_eq!(AffinityKey::parse("from-user"), Some(AffinityKey::FromUser));
        assert_eq!(
            AffinityKey::parse("header:X-Session"),
            Some(AffinityKey::Header("X-Session".into()))
        );
        assert_eq!(AffinityKey::parse("header:"), None);
        assert_eq!(AffinityKey::parse("header:a b"), None);
    }
}
