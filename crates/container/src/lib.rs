//! The container: the converged SIP + HTTP application server.
//!
//! It binds the SIP transports and an HTTP port, runs the `sip-app` engine
//! with the built-in applications chosen by its config, and serves the
//! cluster's health and metrics routes (`/_sb/health`, `/_sb/metrics`,
//! docs/CLUSTER.md) on its HTTP port.
//!
//! Built-in applications ([`apps`]): the registrar (§10) with its location
//! service in the session store, the proxy to registered users (§16), and
//! the answering test service at user `answer`.
//!
//! # Layout
//! * `config`: [`ContainerConfig`], read from TOML with every error naming
//!   the file, the line and the field; the development default.
//! * `apps`: the built-in applications.
//! * `http`: the HTTP port.
//! * this file: [`Container`], which starts it all.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = container::ContainerConfig::development("c1", "127.0.0.1:5060".parse()?);
//! let c = container::Container::start(config).await?;
//! println!("SIP on {:?}, HTTP on {}", c.sip_addr(sip_message::TransportKind::Udp), c.http_addr());
//! # Ok(()) }
//! ```

pub mod apps;
pub mod auth;
mod config;
mod http;

use std::net::SocketAddr;

use sip_app::{AppRouter, Engine, EngineConfig, Rule, SipRouter};
use sip_message::TransportKind;
use sip_stack::{Stack, StackConfig};
use sip_transport::TransportConfig;

pub use config::{
    AppsConfig, AuthConfig, ContainerConfig, Credentials, ListenConfig, RegistrarSettings,
    SipTimers,
};
pub use http::{HeapStats, report_heap};

/// Why the container could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    /// The SIP stack could not start (a port in use, ...).
    #[error("SIP: {0}")]
    Stack(#[from] sip_stack::StackError),
    /// The session store could not be opened.
    #[error("session store: {0}")]
    Store(#[from] session_store::StoreError),
    /// The HTTP port could not be bound.
    #[error("HTTP {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running container.
#[derive(Debug)]
pub struct Container {
    engine: Engine,
    http_addr: SocketAddr,
    http_task: tokio::task::JoinHandle<()>,
    announce_task: tokio::task::JoinHandle<()>,
}

/// How often a container announces itself in the store, and for how long
/// an announcement holds: an edge reading membership (`members` in its
/// config) drops a container within this TTL of its death.
pub const ANNOUNCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// See [`ANNOUNCE_INTERVAL`].
pub const ANNOUNCE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Announces the container in the store until aborted (cluster membership,
/// docs/EDGE.md `members`). Failures are logged once per outage.
async fn announce(store: session_store::Store, member: session_store::Member) {
    use session_store::SessionStore as _;
    let mut tick = tokio::time::interval(ANNOUNCE_INTERVAL);
    let mut failing = false;
    loop {
        tick.tick().await;
        match store.announce(&member, ANNOUNCE_TTL).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(node = %member.node, "announcing in the store again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(node = %member.node, error = %e, "cannot announce in the store");
            }
            Err(_) => {}
        }
    }
}

impl Container {
    /// Starts a container on the current tokio runtime.
    pub async fn start(config: ContainerConfig) -> Result<Container, ContainerError> {
        let store = session_store::Store::open(&config.store).await?;
        Container::start_with_store(config, store).await
    }

    /// Starts a container on a store opened by the caller (several
    /// containers of one process sharing a memory store: `switchboard
    /// dev`); `config.store` is ignored.
    pub async fn start_with_store(
        config: ContainerConfig,
        store: session_store::Store,
    ) -> Result<Container, ContainerError> {
        Container::start_with_apps(config, store, AppRouter::new()).await
    }

    /// Starts a container running your applications: the rules of `apps`
    /// are tried first, then the built-in applications the config enables
    /// (turn them off in `[apps]` to run yours alone).
    pub async fn start_with_apps(
        config: ContainerConfig,
        store: session_store::Store,
        apps: AppRouter,
    ) -> Result<Container, ContainerError> {
        let mut stack_config = StackConfig {
            transport: TransportConfig {
                udp: config.listen.udp.clone(),
                tcp: config.listen.tcp.clone(),
                ..TransportConfig::default()
            },
            ..StackConfig::default()
        };
        if let Some(n) = config.shards {
            stack_config.shards = n;
        }
        stack_config.timers = config.sip.to_timers();
        // The edges write the public address as their Via's sent-by: a
        // retransmission one of them relays after another died gets its
        // responses back through it (CLUSTER.md).
        stack_config.relays = config.public.iter().cloned().collect();
        let stack = Stack::start(stack_config).await?;
        let router = apps.then(app_router(&config, &store));
        let mut engine_config = EngineConfig::new(&config.node);
        engine_config.public = config.public.clone();
        engine_config.edges = config.edges.clone();
        let engine = Engine::start(stack, engine_config, store, router);
        let listener = tokio::net::TcpListener::bind(config.listen.http)
            .await
            .map_err(|source| ContainerError::Http {
                addr: config.listen.http,
                source,
            })?;
        let http_addr = listener
            .local_addr()
            .map_err(|source| ContainerError::Http {
                addr: config.listen.http,
                source,
            })?;
        let http_task = tokio::spawn(http::serve(listener, engine.clone()));
        let sip = engine
            .stack()
            .local_addr(TransportKind::Udp)
            .map_or_else(String::new, |a| a.to_string());
        let announce_task = tokio::spawn(announce(
            engine.store().clone(),
            session_store::Member {
                node: config.node.clone(),
                sip,
                http: http_addr.to_string(),
            },
        ));
        tracing::info!(
            node = %config.node,
            sip = ?engine.stack().local_addr(TransportKind::Udp),
            http = %http_addr,
            "container started"
        );
        Ok(Container {
            engine,
            http_addr,
            http_task,
            announce_task,
        })
    }

    /// The engine (sessions, counters).
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The bound SIP address of a transport.
    #[must_use]
    pub fn sip_addr(&self, t: TransportKind) -> Option<SocketAddr> {
        self.engine.stack().local_addr(t)
    }

    /// The bound HTTP address.
    #[must_use]
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Stops serving HTTP and announcing; the SIP stack stops when the
    /// last handle goes.
    pub fn shutdown(self) {
        self.http_task.abort();
        self.announce_task.abort();
    }
}

/// The application router of a config: REGISTER to the registrar, the
/// answering user to the test service, every other initial request to the
/// proxy.
fn app_router(config: &ContainerConfig, store: &session_store::Store) -> AppRouter {
    let location = apps::location::Location::new(store.clone());
    let mut router = AppRouter::new();
    let mut named: Vec<sip_app::Application> = Vec::new();
    let a = &config.apps;
    // Validated with the config: a bad [auth] never gets here.
    let auth = config
        .auth
        .as_ref()
        .and_then(|c| auth::AuthLayer::from_config(c).ok());
    if a.answer {
        let answer = SipRouter::new()
            .invite(apps::answer::on_invite)
            .message(apps::answer::on_ok)
            .options(apps::answer::on_ok)
            .http("GET", "/answer/session", apps::answer::http_get)
            .http("POST", "/answer/session", apps::answer::http_post)
            .http("POST", "/answer/timer", apps::answer::http_timer)
            .timer(apps::answer::on_timer)
            .with_state(
                "answer",
                apps::answer::Answer {
                    ring: a.ring,
                    auth: auth.clone(),
                },
            );
        named.push(answer.clone());
        router = router.route(Rule::any().user(&a.answer_user), answer);
    }
    if a.b2bua && !a.b2bua_prefix.is_empty() {
        let b2bua = SipRouter::new().invite(apps::b2bua::on_invite).with_state(
            "b2bua",
            apps::b2bua::B2bua {
                location: location.clone(),
                prefix: a.b2bua_prefix.clone(),
                credentials: a
                    .b2bua_credentials
                    .as_ref()
                    .map(|c| (c.user.clone(), c.password.clone())),
                auth: auth.clone(),
            },
        );
        named.push(b2bua.clone());
        router = router.route(
            Rule::methods(&["INVITE"]).user_prefix(&a.b2bua_prefix),
            b2bua,
        );
    }
    if a.registrar {
        let registrar = SipRouter::new()
            .register(apps::registrar::on_register)
            .with_state(
                "registrar",
                apps::registrar::Registrar {
                    location: location.clone(),
                    config: config.registrar.to_config(),
                    auth: auth.clone(),
                },
            );
        named.push(registrar.clone());
        router = router.route(Rule::methods(&["REGISTER"]), registrar);
    }
    if a.proxy {
        let proxy = SipRouter::new()
            .fallback(apps::proxy::on_request)
            .with_state(
                "proxy",
                apps::proxy::ProxyApp {
                    location,
                    domains: config.domains.clone(),
                    routes: a.proxy_routes.clone(),
                    auth,
                },
            );
        named.push(proxy.clone());
        router = router.route(Rule::any(), proxy);
    }
    // The screening service runs only where a DAR file composes it.
    named.push(
        SipRouter::new()
            .fallback(apps::screening::on_request)
            .with_state(
                "screening",
                apps::screening::Screening {
                    blocked: a.screening.clone(),
                },
            ),
    );
    match &config.dar {
        // The DAR file's chains first; methods it does not list follow
        // the built-in rules. Validated with the config.
        Some(dar) => AppRouter::from_dar(dar, &named)
            .map(|d| d.then(router.clone()))
            .unwrap_or(router),
        None => router,
    }
}

/// The built-in applications a DAR file may name.
pub const APP_NAMES: &[&str] = &["registrar", "proxy", "answer", "b2bua", "screening"];
