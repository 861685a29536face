//! The container's config file (TOML), and the development default.
//!
//! ```toml
//! node = "c1"                      # [a-z0-9-]{1,32}, unique in the cluster
//! public = "127.0.0.1:5060"        # the cluster's address (Record-Route, Contact)
//! store = "memory"                 # or redis://host:port
//! edges = ["127.0.0.1:5070"]       # send outbound requests through these
//! domains = ["example.com"]        # the registrar/proxy domains; empty = any
//!
//! [listen]
//! udp = ["127.0.0.1:5080"]
//! tcp = ["127.0.0.1:5080"]
//! http = "127.0.0.1:8090"
//!
//! [apps]
//! registrar = true
//! proxy = true
//! answer = true
//! answer_user = "answer"
//! ring = true
//! b2bua = true
//! b2bua_prefix = "b2bua-"
//! proxy_routes = ["sip:10.0.0.5:5060"]  # next hops for unregistered users
//! screening = ["sip:spam@example.com", "*@bad.example"]
//! router = "apps.dar"              # JSR 289 DAR file: chains of applications
//!
//! [auth]                          # optional: digest authentication
//! realm = "example.com"
//! secret = "the cluster's shared nonce secret"
//! algorithms = ["SHA-256", "MD5"]
//! methods = ["REGISTER", "INVITE", "MESSAGE", "SUBSCRIBE"]
//! users = { alice = "wonderland", bob = "builder" }
//!
//! [sip]                           # optional: RFC 3261 timers, ms
//! t1_ms = 500
//! t2_ms = 4000
//! t4_ms = 5000
//!
//! [registrar]
//! min_expires = 60
//! max_expires = 7200
//! default_expires = 3600
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use config_file::{ConfigError, ConfigSource};
use serde::Deserialize;

/// Everything a container needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    /// This node's id: `[a-z0-9-]{1,32}`, unique in the cluster; the first
    /// part of every session id (the affinity token) it creates.
    pub node: String,
    /// The cluster's public address (`host:port`) for Record-Route and
    /// Contact; default: the container's own UDP address.
    #[serde(default)]
    pub public: Option<String>,
    /// Session store URL: `memory` (default) or `redis://host:port`.
    #[serde(default = "default_store")]
    pub store: String,
    /// Edges to send requests to the outside through; empty: directly.
    #[serde(default)]
    pub edges: Vec<SocketAddr>,
    /// Domains the registrar and proxy serve; empty: any.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Shards (SIP endpoint threads); default: one per CPU.
    #[serde(default)]
    pub shards: Option<usize>,
    /// What to listen on.
    pub listen: ListenConfig,
    /// Which built-in applications run.
    #[serde(default)]
    pub apps: AppsConfig,
    /// Registrar settings.
    #[serde(default)]
    pub registrar: RegistrarSettings,
    /// Digest authentication (none when absent).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// SIP timer values.
    #[serde(default)]
    pub sip: SipTimers,
    /// The DAR file `[apps] router` names, read and checked with the config.
    #[serde(skip)]
    pub dar: Option<sip_app::Dar>,
}

/// SIP timer values (RFC 3261 §17.1.1.1), in milliseconds. The defaults
/// are the RFC's; a smaller T1 on a network known to be fast shortens
/// retransmissions and how long finished transactions linger (64*T1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipTimers {
    /// T1, the round-trip estimate. Default 500.
    pub t1_ms: Option<u64>,
    /// T2, the longest retransmission interval. Default 4000.
    pub t2_ms: Option<u64>,
    /// T4, how long a message stays in the network. Default 5000.
    pub t4_ms: Option<u64>,
}

impl SipTimers {
    pub(crate) fn to_timers(&self) -> sip_proto::Timers {
        let mut t = sip_proto::Timers::default();
        if let Some(v) = self.t1_ms {
            t.t1 = Duration::from_millis(v);
        }
        if let Some(v) = self.t2_ms {
            t.t2 = Duration::from_millis(v);
        }
        if let Some(v) = self.t4_ms {
            t.t4 = Duration::from_millis(v);
        }
        t
    }
}

/// Digest authentication of initial requests (RFC 3261 §22, RFC 8760):
/// REGISTER is challenged with 401, other methods with 407.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The realm.
    pub realm: String,
    /// The nonce secret, at least 16 bytes, the same on every container of
    /// the cluster (any container then verifies a nonce another issued).
    pub secret: String,
    /// Algorithms offered, strongest first: `SHA-256`, `MD5`. Default both
    /// (offer `MD5` alone for UAs that stop at the first challenge they
    /// cannot answer, SIPp among them).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Methods challenged (initial requests only). Default REGISTER,
    /// INVITE, MESSAGE, SUBSCRIBE.
    #[serde(default = "default_auth_methods")]
    pub methods: Vec<String>,
    /// How long a nonce is good for, in seconds (then `stale=true`).
    /// Default 300.
    #[serde(default = "nonce_lifetime")]
    pub nonce_lifetime_s: u64,
    /// Check that the credentials' `uri` is the Request-URI (RFC 2617
    /// §3.2.2.5). Default true; some UAs (SIPp 3.6) put another URI there.
    #[serde(default = "yes")]
    pub check_uri: bool,
    /// Users: name = password.
    pub users: std::collections::BTreeMap<String, String>,
}

fn default_algorithms() -> Vec<String> {
    vec!["SHA-256".to_owned(), "MD5".to_owned()]
}

fn default_auth_methods() -> Vec<String> {
    ["REGISTER", "INVITE", "MESSAGE", "SUBSCRIBE"]
        .iter()
        .map(|m| (*m).to_owned())
        .collect()
}

fn nonce_lifetime() -> u64 {
    300
}

fn default_store() -> String {
    "memory".to_owned()
}

/// Listening addresses (port 0: any free port).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// SIP over UDP.
    #[serde(default)]
    pub udp: Vec<SocketAddr>,
    /// SIP over TCP.
    #[serde(default)]
    pub tcp: Vec<SocketAddr>,
    /// HTTP (health, metrics, application routes).
    pub http: SocketAddr,
}

/// The built-in applications.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppsConfig {
    /// The registrar (REGISTER). Default on.
    #[serde(default = "yes")]
    pub registrar: bool,
    /// The proxy to registered users (every other initial request).
    /// Default on.
    #[serde(default = "yes")]
    pub proxy: bool,
    /// The answering test service. Default on.
    #[serde(default = "yes")]
    pub answer: bool,
    /// The user the test service answers as. Default `answer`.
    #[serde(default = "answer_user")]
    pub answer_user: String,
    /// Whether the test service sends 180 before its 200. Default on.
    #[serde(default = "yes")]
    pub ring: bool,
    /// The B2BUA service: an INVITE for `<b2bua_prefix><user>@domain` is
    /// answered back to back, leg B going to `<user>`'s registered
    /// contact. Default on.
    #[serde(default = "yes")]
    pub b2bua: bool,
    /// The user prefix of the B2BUA service. Default `b2bua-`.
    #[serde(default = "b2bua_prefix")]
    pub b2bua_prefix: String,
    /// Credentials the B2BUA answers a 401/407 from leg B's side with:
    /// `{ user = "..", password = ".." }`. Default none.
    #[serde(default)]
    pub b2bua_credentials: Option<Credentials>,
    /// Static next hops of the proxy (a dispatcher set): a request for a
    /// user with no registered contact goes to one of these, chosen by a
    /// hash of its Call-ID, the others tried in turn if it fails. Default
    /// none (404 for unregistered users).
    #[serde(default)]
    pub proxy_routes: Vec<String>,
    /// Callers the screening application declines (603): URIs or
    /// `*@domain`. It runs where a DAR file composes it.
    #[serde(default)]
    pub screening: Vec<String>,
    /// A JSR 289 default application router file (DAR), relative to this
    /// config file: the methods it lists go through its chains of
    /// applications (registrar, proxy, answer, b2bua, screening) in order;
    /// other methods follow the built-in rules.
    #[serde(default)]
    pub router: Option<std::path::PathBuf>,
}

/// A user name and password (digest authentication as a client).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

fn b2bua_prefix() -> String {
    "b2bua-".to_owned()
}

fn yes() -> bool {
    true
}

fn answer_user() -> String {
    "answer".to_owned()
}

impl Default for AppsConfig {
    fn default() -> Self {
        AppsConfig {
            registrar: true,
            proxy: true,
            answer: true,
            answer_user: answer_user(),
            ring: true,
            b2bua: true,
            b2bua_prefix: b2bua_prefix(),
            b2bua_credentials: None,
            proxy_routes: Vec::new(),
            screening: Vec::new(),
            router: None,
        }
    }
}

/// Registrar settings, in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrarSettings {
    /// Shortest registration accepted (423 below). Default 60.
    #[serde(default = "min_expires")]
    pub min_expires: u64,
    /// Longest registration granted. Default 7200.
    #[serde(default = "max_expires")]
    pub max_expires: u64,
    /// Registration length when the REGISTER names none. Default 3600.
    #[serde(default = "default_expires")]
    pub default_expires: u64,
}

fn min_expires() -> u64 {
    60
}
fn max_expires() -> u64 {
    7200
}
fn default_expires() -> u64 {
    3600
}

impl Default for RegistrarSettings {
    fn default() -> Self {
        RegistrarSettings {
            min_expires: min_expires(),
            max_expires: max_expires(),
            default_expires: default_expires(),
        }
    }
}

impl RegistrarSettings {
    pub(crate) fn to_config(&self) -> crate::apps::registrar::RegistrarConfig {
        crate::apps::registrar::RegistrarConfig {
            min_expires: Duration::from_secs(self.min_expires),
            max_expires: Duration::from_secs(self.max_expires),
            default_expires: Duration::from_secs(self.default_expires),
        }
    }
}

impl ContainerConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<ContainerConfig, ConfigError> {
        ContainerConfig::from_source(&ConfigSource::read(path)?)
    }

    /// Parses and validates config text.
    pub fn from_source(src: &ConfigSource) -> Result<ContainerConfig, ConfigError> {
        let mut c: ContainerConfig = src.parse()?;
        c.validate(src)?;
        if let Some(rel) = &c.apps.router {
            let path = src
                .path()
                .parent()
                .map_or_else(|| rel.clone(), |d| d.join(rel));
            let text = std::fs::read_to_string(&path).map_err(|e| {
                src.error_at(
                    "apps.router",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let dar = sip_app::Dar::parse(&text)
                .map_err(|e| src.error_at("apps.router", format!("{}:{e}", path.display())))?;
            let a = &c.apps;
            let enabled = |name: &str| match name {
                "registrar" => a.registrar,
                "proxy" => a.proxy,
                "answer" => a.answer,
                "b2bua" => a.b2bua && !a.b2bua_prefix.is_empty(),
                _ => true,
            };
            if let Some(off) = dar
                .apps()
                .find(|n| crate::APP_NAMES.contains(n) && !enabled(n))
            {
                return Err(src.error_at(
                    "apps.router",
                    format!(
                        "{} names {off:?}, which is turned off in [apps]",
                        path.display()
                    ),
                ));
            }
            if let Some(unknown) = dar.apps().find(|a| !crate::APP_NAMES.contains(a)) {
                return Err(src.error_at(
                    "apps.router",
                    format!(
                        "{} names {unknown:?}; the applications are {}",
                        path.display(),
                        crate::APP_NAMES.join(", ")
                    ),
                ));
            }
            c.dar = Some(dar);
        }
        Ok(c)
    }

    fn validate(&self, src: &ConfigSource) -> Result<(), ConfigError> {
        let node_ok = !self.node.is_empty()
            && self.node.len() <= 32
            && self
                .node
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !node_ok {
            return Err(src.error_at("node", "must be 1 to 32 of a-z, 0-9 and -"));
        }
        if self.listen.udp.is_empty() && self.listen.tcp.is_empty() {
            return Err(src.error_at("listen", "needs at least one udp or tcp address"));
        }
        if let Some(p) = &self.public {
            let ok = p
                .rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(src.error_at("public", "must be host:port"));
            }
        }
        if !(self.store == "memory"
            || self.store.starts_with("memory:")
            || self.store.starts_with("redis"))
        {
            return Err(src.error_at("store", "must be `memory` or a redis:// URL"));
        }
        let r = &self.registrar;
        if r.min_expires > r.default_expires || r.default_expires > r.max_expires {
            return Err(src.error_at(
                "registrar",
                "needs min_expires <= default_expires <= max_expires",
            ));
        }
        for (i, r) in self.apps.proxy_routes.iter().enumerate() {
            let ok = matches!(sip_message::Uri::parse(r), Ok(sip_message::Uri::Sip(_)));
            if !ok {
                return Err(src.error_at(
                    &format!("apps.proxy_routes[{i}]"),
                    format!("{r:?} is not a sip: or sips: URI"),
                ));
            }
        }
        if self.apps.answer_user.is_empty() {
            return Err(src.error_at("apps.answer_user", "must not be empty"));
        }
        if self.shards == Some(0) {
            return Err(src.error_at("shards", "must be at least 1"));
        }
        let t = self.sip.to_timers();
        if t.t1.is_zero() || t.t2 < t.t1 {
            return Err(src.error_at("sip", "needs 0 < t1_ms <= t2_ms"));
        }
        if let Some(a) = &self.auth
            && let Err((field, msg)) = crate::auth::AuthLayer::from_config(a)
        {
            return Err(src.error_at(&format!("auth.{field}"), msg));
        }
        Ok(())
    }

    /// The development default (`switchboard container --listen ADDR`
    /// without a config file): registrar and proxy for any domain without
    /// authentication, the test service at user `answer`, memory store,
    /// HTTP on any free port of the same host.
    #[must_use]
    pub fn development(node: &str, listen: SocketAddr) -> ContainerConfig {
        ContainerConfig {
            node: node.to_owned(),
            public: None,
            store: default_store(),
            edges: Vec::new(),
            domains: Vec::new(),
            shards: None,
            listen: ListenConfig {
                udp: vec![listen],
                tcp: vec![listen],
                http: SocketAddr::new(listen.ip(), 0),
            },
            apps: AppsConfig::default(),
            registrar: RegistrarSettings::default(),
            auth: None,
            sip: SipTimers::default(),
            dar: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let src = ConfigSource::from_text(
            "c.toml",
            "node = \"c1\"\npublic = \"127.0.0.1:5060\"\nedges = [\"127.0.0.1:5070\"]\n\
             [listen]\nudp = [\"127.0.0.1:0\"]\nhttp = \"127.0.0.1:0\"\n[apps]\nring = false\n",
        );
        let c = ContainerConfig::from_source(&src).unwrap();
        assert_eq!(c.node, "c1");
        assert!(!c.apps.ring);
        assert!(c.apps.registrar);
    }

    #[test]
    fn auth_settings_are_checked_with_their_line() {
        let base = "node = \"c1\"\n[listen]\nudp = [\"127.0.0.1:0\"]\nhttp = \"127.0.0.1:0\"\n";
        let ok = format!(
            "{base}[auth]\nrealm = \"example.com\"\nsecret = \"sixteen bytes at least\"\nusers = {{ alice = \"pw\" }}\n"
        );
        let c = ContainerConfig::from_source(&ConfigSource::from_text("c.toml", ok)).unwrap();
        assert_eq!(c.auth.unwrap().algorithms, ["SHA-256", "MD5"]);
        let short = format!(
            "{base}[auth]\nrealm = \"example.com\"\nsecret = \"short\"\nusers = {{ alice = \"pw\" }}\n"
        );
        let e = ContainerConfig::from_source(&ConfigSource::from_text("c.toml", short))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:7:"), "{e}");
        assert!(e.contains("field auth.secret"), "{e}");
        let alg = format!(
            "{base}[auth]\nrealm = \"r\"\nsecret = \"sixteen bytes at least\"\nalgorithms = [\"SHA-1\"]\nusers = {{ a = \"b\" }}\n"
        );
        let e = ContainerConfig::from_source(&ConfigSource::from_text("c.toml", alg))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("field auth.algorithms") && e.contains("SHA-1"),
            "{e}"
        );
    }

    #[test]
    fn a_dar_file_is_read_and_checked_with_the_config() {
        let dir = std::env::temp_dir().join(format!("sb-dar-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = "node = \"c1\"\n[listen]\nudp = [\"127.0.0.1:0\"]\nhttp = \"127.0.0.1:0\"\n";
        let write = |name: &str, dar: &str| {
            std::fs::write(dir.join(name), dar).unwrap();
            let cfg = dir.join("c.toml");
            std::fs::write(&cfg, format!("{base}[apps]\nrouter = \"{name}\"\n")).unwrap();
            ContainerConfig::load(&cfg)
        };
        let ok = write(
            "good.dar",
            "INVITE: (\"screening\", \"DAR:From\", \"ORIGINATING\", \"\", \"NO_ROUTE\", \"0\"), (\"proxy\", \"DAR:To\", \"TERMINATING\", \"\", \"NO_ROUTE\", \"1\")\n",
        )
        .unwrap();
        assert_eq!(ok.dar.unwrap().chain("INVITE").len(), 2);
        let e = write(
            "bad.dar",
            "\nINVITE: (\"nosuchapp\", \"DAR:To\", \"NEUTRAL\", \"\", \"NO_ROUTE\", \"0\")\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("field apps.router") && e.contains("nosuchapp"),
            "{e}"
        );
        let e = write("worse.dar", "\n\nINVITE: (\"proxy\")\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("worse.dar:line 3:"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let src = ConfigSource::from_text(
            "c.toml",
            "node = \"C 1\"\n[listen]\nudp = [\"127.0.0.1:0\"]\nhttp = \"127.0.0.1:0\"\n",
        );
        let e = ContainerConfig::from_source(&src).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:1:1: field node:"), "{e}");
        let src = ConfigSource::from_text(
            "c.toml",
            "node = \"c1\"\n[listen]\nudp = [\"127.0.0.1:0\"]\nhttp = \"127.0.0.1:0\"\n[registrar]\nmin_expires = 100\ndefault_expires = 50\n",
        );
        let e = ContainerConfig::from_source(&src).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:5:"), "{e}");
        let src = ConfigSource::from_text(
            "c.toml",
            "node = \"c1\"\n[listen]\nudp = [\"not an address\"]\nhttp = \"127.0.0.1:0\"\n",
        );
        let e = ContainerConfig::from_source(&src).unwrap_err().to_string();
        assert!(e.contains("c.toml:3:") && e.contains("listen.udp"), "{e}");
    }
}
