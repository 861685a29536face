//! The sprayer's config: the TOML file (`deny_unknown_fields`) and the
//! validated, typed config the sprayer runs from.
//!
//! Two stages (the sozu way): serde reads the file into private `File*`
//! structs, then [`SprayerConfig::from_source`] checks the values and turns
//! them into [`SprayerConfig`]; every fault names the file, the line and the
//! field (`sprayer.toml:12:1: field edges[1].sip: ...`). See
//! `docs/SPRAYER.md` for the reference of every field.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use config_file::{ConfigError, ConfigSource};
use serde::Deserialize;

/// A transport protocol a service listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// UDP: datagrams relayed through a soft flow table.
    Udp,
    /// TCP: connections proxied byte for byte.
    Tcp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        })
    }
}

/// Which address of each edge a service forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The edge's SIP address ([`EdgeSpec::sip`]).
    Sip,
    /// The edge's HTTP address ([`EdgeSpec::http`]).
    Http,
}

/// One edge proxy the sprayer spreads flows over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgeSpec {
    /// The edge's name: its identity in the Maglev table (keep it stable:
    /// renaming an edge moves its flows) and its label in metrics.
    pub name: String,
    /// The edge's SIP address (UDP and TCP on the same port).
    pub sip: SocketAddr,
    /// The edge's HTTP address; the health check is `GET /_sb/health` there.
    pub http: SocketAddr,
}

impl EdgeSpec {
    /// The address a service with this target forwards to.
    #[must_use]
    pub fn addr(&self, target: Target) -> SocketAddr {
        match target {
            Target::Sip => self.sip,
            Target::Http => self.http,
        }
    }
}

/// One listening service: an address, its protocols, and which edge address
/// it forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The service's name (for [`crate::Sprayer::local_addr`], logs, metrics).
    pub name: String,
    /// The address to listen on (port 0: the system picks one).
    pub listen: SocketAddr,
    /// The protocols to listen on (UDP and TCP share the port number; with
    /// port 0 the UDP port is picked first and TCP binds the same number).
    pub protocols: Vec<Proto>,
    /// Which address of each edge to forward to.
    pub target: Target,
}

/// Active health checks of the edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time between two probes of one edge.
    pub interval: Duration,
    /// A probe without a full status line within this time is a failure.
    pub timeout: Duration,
    /// Consecutive failures that take an up edge out.
    pub fall: u32,
    /// Consecutive successes that bring a down edge back.
    pub rise: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(300),
            fall: 2,
            rise: 2,
        }
    }
}

/// The UDP flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpConfig {
    /// A flow with no datagram either way for this long is forgotten.
    pub idle_timeout: Duration,
    /// The most flows one UDP service keeps; a new flow beyond it evicts the
    /// oldest one not recently used.
    pub max_flows: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            idle_timeout: Duration::from_secs(120),
            max_flows: 100_000,
        }
    }
}

/// TCP proxying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    /// Time allowed to connect to an edge before trying the next one.
    pub connect_timeout: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// The validated config a [`crate::Sprayer`] runs from. Build it from a
/// file ([`SprayerConfig::load`]) or in code (`switchboard dev`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SprayerConfig {
    /// The listening services.
    pub services: Vec<ServiceConfig>,
    /// Health checks of the edges.
    pub health: HealthConfig,
    /// The UDP flow table.
    pub udp: UdpConfig,
    /// TCP proxying.
    pub tcp: TcpConfig,
    /// The initial edge set (may be empty and set later with
    /// [`crate::Sprayer::set_edges`]).
    pub edges: Vec<EdgeSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    service: Vec<FileService>,
    #[serde(default)]
    health: FileHealth,
    #[serde(default)]
    udp: FileUdp,
    #[serde(default)]
    tcp: FileTcp,
    #[serde(default)]
    edges: Vec<FileEdge>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileService {
    name: String,
    listen: String,
    protocols: Vec<Proto>,
    target: Target,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileHealth {
    interval_ms: u64,
    timeout_ms: u64,
    fall: u32,
    rise: u32,
}

impl Default for FileHealth {
    fn default() -> Self {
        let d = HealthConfig::default();
        FileHealth {
            interval_ms: millis(d.interval),
            timeout_ms: millis(d.timeout),
            fall: d.fall,
            rise: d.rise,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileUdp {
    idle_timeout_s: u64,
    max_flows: usize,
}

impl Default for FileUdp {
    fn default() -> Self {
        let d = UdpConfig::default();
        FileUdp {
            idle_timeout_s: d.idle_timeout.as_secs(),
            max_flows: d.max_flows,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileTcp {
    connect_timeout_ms: u64,
}

impl Default for FileTcp {
    fn default() -> Self {
        FileTcp {
            connect_timeout_ms: millis(TcpConfig::default().connect_timeout),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEdge {
    name: String,
    sip: String,
    http: String,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Longest accepted health interval / timeout / connect timeout (one hour):
/// a larger value is a typo.
const MAX_MS: u64 = 3_600_000;

impl SprayerConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<SprayerConfig, ConfigError> {
        SprayerConfig::from_source(&ConfigSource::read(path)?)
    }

    /// Validates a config from its source text (the file's path or label
    /// names errors).
    pub fn from_source(src: &ConfigSource) -> Result<SprayerConfig, ConfigError> {
        let file: FileConfig = src.parse()?;
        if file.service.is_empty() {
            return Err(src.error("at least one [[service]] is needed"));
        }
        let mut services = Vec::with_capacity(file.service.len());
        let mut names = HashSet::new();
        let mut bound = HashSet::new();
        for (i, s) in file.service.iter().enumerate() {
            let at = |f: &str| format!("service[{i}].{f}");
            check_name(src, &at("name"), &s.name)?;
            if !names.insert(s.name.as_str()) {
                return Err(src.error_at(&at("name"), format!("duplicate service {:?}", s.name)));
            }
            let listen: SocketAddr = s.listen.parse().map_err(|_| {
                src.error_at(
                    &at("listen"),
                    format!("{:?} is not an IP:port address", s.listen),
                )
            })?;
            if s.protocols.is_empty() {
                return Err(src.error_at(&at("protocols"), "name at least one of \"udp\", \"tcp\""));
            }
            let mut protocols = Vec::new();
            for p in &s.protocols {
                if protocols.contains(p) {
                    return Err(src.error_at(&at("protocols"), format!("{p} is listed twice")));
                }
                if listen.port() != 0 && !bound.insert((listen, *p)) {
                    return Err(src.error_at(
                        &at("listen"),
                        format!("{p} {listen} is already used by another service"),
                    ));
                }
                protocols.push(*p);
            }
            services.push(ServiceConfig {
                name: s.name.clone(),
                listen,
                protocols,
                target: s.target,
            });
        }

        let h = &file.health;
        let in_range = |field: &str, v: u64| {
            if v == 0 || v > MAX_MS {
                Err(src.error_at(field, format!("must be between 1 and {MAX_MS} ms")))
            } else {
                Ok(v)
            }
        };
        let health = HealthConfig {
            interval: Duration::from_millis(in_range("health.interval_ms", h.interval_ms)?),
            timeout: Duration::from_millis(in_range("health.timeout_ms", h.timeout_ms)?),
            fall: nonzero(src, "health.fall", h.fall)?,
            rise: nonzero(src, "health.rise", h.rise)?,
        };
        if file.udp.idle_timeout_s == 0 || file.udp.idle_timeout_s > 86_400 {
            return Err(src.error_at("udp.idle_timeout_s", "must be between 1 and 86400 s"));
        }
        if file.udp.max_flows == 0 {
            return Err(src.error_at("udp.max_flows", "must be at least 1"));
        }
        let udp = UdpConfig {
            idle_timeout: Duration::from_secs(file.udp.idle_timeout_s),
            max_flows: file.udp.max_flows,
        };
        let tcp = TcpConfig {
            connect_timeout: Duration::from_millis(in_range(
                "tcp.connect_timeout_ms",
                file.tcp.connect_timeout_ms,
            )?),
        };

        let mut edges = Vec::with_capacity(file.edges.len());
        let mut edge_names = HashSet::new();
        for (i, e) in file.edges.iter().enumerate() {
            let at = |f: &str| format!("edges[{i}].{f}");
            check_name(src, &at("name"), &e.name)?;
            if !edge_names.insert(e.name.as_str()) {
                return Err(src.error_at(&at("name"), format!("duplicate edge {:?}", e.name)));
            }
            let addr = |f: &str, v: &str| -> Result<SocketAddr, ConfigError> {
                let a: SocketAddr = v.parse().map_err(|_| {
                    src.error_at(&at(f), format!("{v:?} is not an IP:port address"))
                })?;
                if a.port() == 0 || a.ip().is_unspecified() {
                    return Err(src.error_at(&at(f), format!("{a} cannot be connected to")));
                }
                Ok(a)
            };
            edges.push(EdgeSpec {
                name: e.name.clone(),
                sip: addr("sip", &e.sip)?,
                http: addr("http", &e.http)?,
            });
        }
        Ok(SprayerConfig {
            services,
            health,
            udp,
            tcp,
            edges,
        })
    }
}

fn nonzero(src: &ConfigSource, field: &str, v: u32) -> Result<u32, ConfigError> {
    if v == 0 {
        Err(src.error_at(field, "must be at least 1"))
    } else {
        Ok(v)
    }
}

/// Names label metrics and logs: `[A-Za-z0-9_.-]{1,64}`.
fn check_name(src: &ConfigSource, field: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(src.error_at(field, format!("{name:?}: use 1 to 64 of A-Z a-z 0-9 _ . -")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = r#"
[[service]]
name = "sip"
listen = "127.0.0.1:5060"
protocols = ["udp", "tcp"]
target = "sip"

[[service]]
name = "http"
listen = "127.0.0.1:8080"
protocols = ["tcp"]
target = "http"

[health]
interval_ms = 500
timeout_ms = 300
fall = 2
rise = 2

[udp]
idle_timeout_s = 120
max_flows = 100000

[[edges]]
name = "e1"
sip = "127.0.0.1:5070"
http = "127.0.0.1:8081"
"#;

    fn parse(text: &str) -> Result<SprayerConfig, ConfigError> {
        SprayerConfig::from_source(&ConfigSource::from_text("sprayer.toml", text))
    }

    #[test]
    fn the_documented_example_parses() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.services.len(), 2);
        assert_eq!(c.services[0].protocols, vec![Proto::Udp, Proto::Tcp]);
        assert_eq!(c.services[1].target, Target::Http);
        assert_eq!(c.health, HealthConfig::default());
        assert_eq!(c.udp, UdpConfig::default());
        assert_eq!(c.tcp, TcpConfig::default());
        assert_eq!(c.edges[0].sip, "127.0.0.1:5070".parse().unwrap());
    }

    #[test]
    fn sections_default() {
        let c = parse(
            "[[service]]\nname = \"s\"\nlisten = \"127.0.0.1:0\"\nprotocols = [\"udp\"]\ntarget = \"sip\"\n",
        )
        .unwrap();
        assert!(c.edges.is_empty());
        assert_eq!(c.health, HealthConfig::default());
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let text = GOOD.replace("fall = 2", "fal = 2");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("health.fal"), "{e}");
        assert_eq!(e.line, Some(17), "{e}");
    }

    #[test]
    fn bad_address_names_the_edge() {
        let text = GOOD.replace("\"127.0.0.1:5070\"", "\"edge-one:5070\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("edges[0].sip"), "{e}");
        assert_eq!(e.line, Some(26), "{e}");
        assert!(e.to_string().starts_with("sprayer.toml:26:"), "{e}");
    }

    #[test]
    fn bad_protocol_and_target() {
        let e = parse(&GOOD.replace("[\"udp\", \"tcp\"]", "[\"udp\", \"sctp\"]")).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(
            e.field
                .as_deref()
                .unwrap()
                .starts_with("service[0].protocols"),
            "{e}"
        );
        let e = parse(&GOOD.replace("target = \"http\"", "target = \"rtp\"")).unwrap_err();
        assert_eq!(e.line, Some(12), "{e}");
    }

    #[test]
    fn zero_values_are_refused() {
        for (from, to, field) in [
            ("fall = 2", "fall = 0", "health.fall"),
            ("interval_ms = 500", "interval_ms = 0", "health.interval_ms"),
            ("max_flows = 100000", "max_flows = 0", "udp.max_flows"),
            (
                "idle_timeout_s = 120",
                "idle_timeout_s = 0",
                "udp.idle_timeout_s",
            ),
        ] {
            let e = parse(&GOOD.replace(from, to)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
            assert!(e.line.is_some(), "{e}");
        }
    }

    #[test]
    fn duplicates_are_refused() {
        let text = format!(
            "{GOOD}\n[[edges]]\nname = \"e1\"\nsip = \"127.0.0.1:1\"\nhttp = \"127.0.0.1:2\"\n"
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("edges[1].name"), "{e}");
        let e = parse(&GOOD.replace("name = \"http\"", "name = \"sip\"")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("service[1].name"), "{e}");
        let e = parse(&GOOD.replace("127.0.0.1:8080", "127.0.0.1:5060")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("service[1].listen"), "{e}");
    }

    #[test]
    fn no_service_is_an_error() {
        let e = parse("").unwrap_err();
        assert!(e.message.contains("service"), "{e}");
    }
}
